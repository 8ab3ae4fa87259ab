/* Shared memory only this process maps, and files no node has by name:
 *  - MAP_SHARED|MAP_ANONYMOUS memory, half of it written by a forked helper that has
 *    exited (pages this process never touched);
 *  - a memfd mapped shared, its descriptor closed;
 *  - a file mapped privately, then deleted;
 *  - a memfd mapped privately.
 * Their contents are checked and changed across the window, twice. */
#include "prog.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#define PG 4096
static unsigned long sum(const unsigned char *p, size_t n) {
    unsigned long h = 0;
    for (size_t i = 0; i < n; i++) h = mix(h, p[i]);
    return h;
}
static void fill(unsigned char *p, size_t n, int seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed);
}
static int same(const unsigned char *p, size_t n, int seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31 + seed)) return 0;
    return 1;
}
int main(void) {
    unsigned char *shared = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    check(shared != MAP_FAILED, "mmap shared");
    fill(shared, 4 * PG, 1);
    pid_t child = fork();
    check(child >= 0, "fork");
    if (child == 0) {
        fill(shared + 4 * PG, 4 * PG, 2);
        _exit(0);
    }
    int st;
    check(waitpid(child, &st, 0) == child && WIFEXITED(st), "wait for the helper");

    int mfd = memfd_create("omtest-shared", 0);
    check(mfd >= 0, "memfd_create");
    check(ftruncate(mfd, 4 * PG) == 0, "ftruncate");
    unsigned char buf[4 * PG];
    fill(buf, sizeof buf, 3);
    check(pwrite(mfd, buf, sizeof buf, 0) == sizeof buf, "pwrite memfd");
    unsigned char *mshared = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    check(mshared != MAP_FAILED, "mmap memfd shared");
    close(mfd);

    int dfd = open("deleted.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    check(dfd >= 0, "create deleted.dat");
    fill(buf, sizeof buf, 4);
    check(write(dfd, buf, sizeof buf) == sizeof buf, "write deleted.dat");
    unsigned char *deleted = mmap(NULL, 4 * PG, PROT_READ, MAP_PRIVATE, dfd, 0);
    check(deleted != MAP_FAILED, "mmap deleted.dat");
    close(dfd);
    check(unlink("deleted.dat") == 0, "unlink");

    int pfd = memfd_create("omtest-private", 0);
    check(pfd >= 0, "memfd_create private");
    fill(buf, sizeof buf, 5);
    check(write(pfd, buf, sizeof buf) == sizeof buf, "write memfd");
    unsigned char *mprivate = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, pfd, 0);
    check(mprivate != MAP_FAILED, "mmap memfd private");
    close(pfd);

    for (int round = 0; round < 2; round++) {
        if (round == 0) window(0.5); else spin(0.5);
        check(same(shared, 4 * PG, 1 + 10 * round), "shared memory, own half");
        check(same(shared + 4 * PG, 4 * PG, 2 + 10 * round), "shared memory, helper's half");
        check(same(mshared, 4 * PG, 3 + 10 * round), "shared memfd");
        check(same(deleted, 4 * PG, 4), "deleted file");
        check(same(mprivate, 4 * PG, 5 + 10 * round), "private memfd");
        printf("round %d: %016lx %016lx %016lx %016lx\n", round, sum(shared, 8 * PG), sum(mshared, 4 * PG),
               sum(deleted, 4 * PG), sum(mprivate, 4 * PG));
        fflush(stdout);
        fill(shared, 4 * PG, 11 + 10 * round);
        fill(shared + 4 * PG, 4 * PG, 12 + 10 * round);
        fill(mshared, 4 * PG, 13 + 10 * round);
        fill(mprivate, 4 * PG, 15 + 10 * round);
    }
    return 0;
}

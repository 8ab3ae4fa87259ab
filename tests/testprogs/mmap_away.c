/* Files mapped while away: a small data file mapped privately again and again (read,
 * changed privately, unmapped), a page of it at an offset, one mapping kept with private
 * changes across later moves, and a page deep in a large sparse file. Every mapping must
 * show the file's bytes (zeros past its end in the last page), private changes must stay
 * private, and the files must never change. With argument "maps", it also says whether
 * /proc/self/maps shows the kept mapping as the file's (at home it must). */
#include "prog.h"
#include <fcntl.h>
#include <sys/mman.h>
#define SIZE (3 * 4096 + 100)
#define BIG (80L << 20)
#define DEEP (70L << 20)
static unsigned char pat(long i) { return (unsigned char)(i * 7 + 3); }
int main(int argc, char **argv) {
    int fd = open("data", O_RDWR | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0, "create data");
    for (long i = 0; i < SIZE; i++) {
        unsigned char b = pat(i);
        check(write(fd, &b, 1) == 1, "write data");
    }
    close(fd);
    fd = open("big", O_RDWR | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0 && ftruncate(fd, BIG) == 0, "create big");
    check(pwrite(fd, "marker", 6, DEEP) == 6, "write marker");
    close(fd);
    spin(0.2);
    int bad = 0, rounds = 0;
    double end = now() + 0.6;
    while (now() < end || rounds < 3) {
        fd = open("data", O_RDONLY);
        check(fd >= 0, "open data");
        unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        check(p != MAP_FAILED, "mmap data");
        for (long i = 0; i < SIZE; i++) bad += p[i] != pat(i);
        for (long i = SIZE; i < 4 * 4096; i++) bad += p[i] != 0;
        p[5] ^= 0xff;
        bad += p[5] != (unsigned char)(pat(5) ^ 0xff);
        check(munmap(p, SIZE) == 0, "munmap");
        unsigned char *q = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 8192);
        check(q != MAP_FAILED, "mmap at an offset");
        for (long i = 0; i < 4096; i++) bad += q[i] != pat(8192 + i);
        munmap(q, 4096);
        close(fd);
        rounds++;
        spin(0.02);
    }
    fd = open("data", O_RDONLY);
    unsigned char *keep = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    check(keep != MAP_FAILED, "mmap kept");
    close(fd);
    memset(keep, 'K', 4096);
    window(0.6);
    int kept_bad = 0;
    for (long i = 0; i < SIZE; i++) kept_bad += keep[i] != (i < 4096 ? 'K' : pat(i));
    fd = open("big", O_RDONLY);
    char *deep = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, DEEP);
    check(deep != MAP_FAILED, "mmap deep");
    close(fd);
    int marker = !memcmp(deep, "marker", 6) && deep[6] == 0;
    fd = open("data", O_RDONLY);
    int file_bad = 0;
    for (long i = 0; i < SIZE; i++) {
        unsigned char b;
        check(read(fd, &b, 1) == 1, "read data");
        file_bad += b != pat(i);
    }
    close(fd);
    if (argc > 1 && !strcmp(argv[1], "maps")) {
        char want[32], line[512];
        snprintf(want, sizeof want, "%lx-", (unsigned long)keep);
        FILE *m = fopen("/proc/self/maps", "r");
        int shows = 0;
        while (m && fgets(line, sizeof line, m))
            if (!strncmp(line, want, strlen(want)) && strstr(line, "/data\n")) shows = 1;
        if (m) fclose(m);
        printf("kept mapping shows the file %d\n", shows);
    }
    printf("mapped right %d, kept right %d, deep page %d, file untouched %d, %s rounds\n",
           bad == 0, kept_bad == 0, marker, file_bad == 0, rounds >= 3 ? ">= 3" : "few");
    return 0;
}

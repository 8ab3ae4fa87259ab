/* Pages shared copy-on-write with a child forked before a move stay shared after it.
 * The parent fills 32 MiB, forks a child that waits on a pipe, and after the window
 * changes 1 MiB of the area and reads in /proc/self/smaps how much of it it still
 * shares: natively, and after any move, the 31 MiB it left alone are shared with the
 * child. (Away, /proc/self is home's process, which holds the pages as they were.)
 * The child then checks that it still sees the bytes it was forked with, and the
 * parent that it sees its own changes. It makes the file "forked" once it has forked. */
#include "prog.h"
#include <sys/mman.h>
#include <sys/wait.h>
#define N (32UL << 20)
#define CHANGED (1UL << 20)
static unsigned char pat(size_t i) { return (unsigned char)(i / 4096 * 13 + 5); }

/* kB of the Shared_Clean and Shared_Dirty lines of the mapping holding `area`. */
static long shared_kb(void *area) {
    FILE *f = fopen("/proc/self/smaps", "r");
    check(f != NULL, "open /proc/self/smaps");
    char line[512];
    int in = 0;
    long kb = 0, n;
    unsigned long a = (unsigned long)area, start, end;
    while (fgets(line, sizeof line, f)) {
        /* A mapping's line starts with its address in lower-case hex; its fields with
         * a capital. */
        if (strchr("0123456789abcdef", line[0]) && sscanf(line, "%lx-%lx ", &start, &end) == 2) {
            in = start <= a && a < end;
        } else if (in && (sscanf(line, "Shared_Clean: %ld kB", &n) == 1 ||
                          sscanf(line, "Shared_Dirty: %ld kB", &n) == 1)) {
            kb += n;
        }
    }
    fclose(f);
    return kb;
}

static unsigned long hash(const unsigned char *p) {
    unsigned long h = 0;
    for (size_t i = 0; i < N; i += 64) h = mix(h, p[i]);
    return h;
}

int main(void) {
    unsigned char *p = mmap(NULL, N, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(p != MAP_FAILED, "mmap");
    for (size_t i = 0; i < N; i += 4096) memset(p + i, pat(i), 4096);
    unsigned long forked_with = hash(p);
    int go[2];
    check(pipe(go) == 0, "pipe");
    pid_t c = fork();
    check(c >= 0, "fork");
    if (c == 0) {
        char b;
        close(go[1]);
        check(read(go[0], &b, 1) == 1, "child read");
        int same = hash(p) == forked_with;
        for (size_t i = 0; i < CHANGED; i++) same &= p[i] == pat(i);
        _exit(same ? 42 : 1);
    }
    close(go[0]);
    /* Forked: the file tells a runner that waits for it that it may move it now; a
     * runner with the handshake moves it in the window, however long its hops take. */
    int fd = open("forked", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0, "create forked");
    close(fd);
    window(0.6);
    for (size_t i = 0; i < CHANGED; i++) p[i] = (unsigned char)~pat(i);
    long kb = shared_kb(p);
    printf("shared with the child: %s\n", kb >= 30 * 1024 ? "at least 30 MiB" : "less");
    if (kb < 30 * 1024) printf("(only %ld kB)\n", kb);
    int mine = 1;
    for (size_t i = 0; i < CHANGED; i++) mine &= p[i] == (unsigned char)~pat(i);
    for (size_t i = CHANGED; i < N; i += 4096) mine &= p[i] == pat(i);
    printf("parent sees its changes: %d\n", mine);
    check(write(go[1], "x", 1) == 1, "write");
    int st;
    check(waitpid(c, &st, 0) == c, "waitpid");
    printf("child exit %d\n", WEXITSTATUS(st));
    return 0;
}

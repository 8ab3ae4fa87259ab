/* Shared helpers of the checkpoint test programs. Each program exercises one feature,
 * prints deterministic output, checks its own state and exits 0 ("FAIL ..." and exit 1
 * on a broken check). Time only decides how long a program waits, never what it prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

__attribute__((unused)) static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Busy for `sec` seconds (a window for the checkpoint to land in). */
__attribute__((unused)) static void spin(double sec) {
    double end = now() + sec;
    while (now() < end) {
    }
}

__attribute__((unused)) static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s (errno %d: %s)\n", what, errno, strerror(errno));
        fflush(stdout);
        exit(1);
    }
}

__attribute__((unused)) static unsigned long mix(unsigned long h, unsigned long v) {
    h ^= v + 0x9e3779b97f4a7c15UL + (h << 6) + (h >> 2);
    return h;
}

/* Makes the fifo `in` in the working directory and returns it open for reading and
 * writing, after `sec` seconds busy (a window for the runner to move the program in);
 * the fifo appears under its name only then, which tells the runner the program is
 * ready. */
__attribute__((unused)) static int ready_fifo(double sec) {
    check(mkfifo("in.tmp", 0600) == 0, "mkfifo");
    int fd = open("in.tmp", O_RDWR);
    check(fd >= 0, "open fifo");
    spin(sec);
    check(rename("in.tmp", "in") == 0, "rename fifo");
    return fd;
}

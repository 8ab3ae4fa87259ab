/* The workload of mig-bench. Each mode prints "ready" once set up, spins until SIGUSR1
 * (so that it can be moved first), does its measured work and prints one result line.
 *   mem MIB    fill MIB of memory, then time reading one byte of every page
 *   rtt N      time N getppid() calls and N 4 KiB write()s to a file
 *   cpu N      time N rounds of an integer loop (wall and CPU time) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

static double clock_ms(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void ready(void) {
    printf("ready %d\n", getpid());
    fflush(stdout);
    while (!go) {
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: migbench mem MIB | rtt N | cpu N\n");
        return 2;
    }
    signal(SIGUSR1, on_usr1);
    long n = atol(argv[2]);
    if (!strcmp(argv[1], "mem")) {
        size_t len = (size_t)n << 20;
        unsigned char *p = malloc(len);
        if (!p) return 1;
        for (size_t i = 0; i < len; i += 4096) p[i] = (unsigned char)(i >> 12);
        ready();
        double t = clock_ms(CLOCK_MONOTONIC);
        unsigned long sum = 0;
        for (size_t i = 0; i < len; i += 4096) sum += p[i];
        printf("touch_ms %.1f sum %lu\n", clock_ms(CLOCK_MONOTONIC) - t, sum);
    } else if (!strcmp(argv[1], "rtt")) {
        int fd = open("rtt.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return 1;
        static char buf[4096];
        memset(buf, 'x', sizeof buf);
        ready();
        double t = clock_ms(CLOCK_MONOTONIC);
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        double g = clock_ms(CLOCK_MONOTONIC) - t;
        t = clock_ms(CLOCK_MONOTONIC);
        for (long i = 0; i < n; i++)
            if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) return 1;
        double w = clock_ms(CLOCK_MONOTONIC) - t;
        printf("getppid_us %.2f write4k_us %.2f\n", g * 1e3 / n, w * 1e3 / n);
        close(fd);
        unlink("rtt.out");
    } else if (!strcmp(argv[1], "cpu")) {
        ready();
        double t = clock_ms(CLOCK_MONOTONIC), c = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
        uint64_t x = 88172645463325252ull;
        for (long r = 0; r < n; r++)
            for (int i = 0; i < 1000000; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
        printf("wall_ms %.1f cpu_ms %.1f x %llu\n", clock_ms(CLOCK_MONOTONIC) - t,
               clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c, (unsigned long long)x);
    } else {
        return 2;
    }
    return 0;
}

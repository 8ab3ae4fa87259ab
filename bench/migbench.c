/* The workload of mig-bench. Each of the first modes prints "ready" once set up, spins
 * until SIGUSR1 (so that it can be moved first), does its measured work and prints one
 * result line.
 *   mem MIB       fill MIB of memory, then time reading one byte of every page
 *   vmas N        make N mappings of one page each (alternately writable and read-only,
 *                 so that none merge), then time reading every one
 *   rtt N         time N each of getppid(), 4 KiB write() and pread() of a file, stat()
 *                 of it, and open()+close() of it (microseconds per call)
 *   io MIB        write a MIB file in 4 KiB write()s, read it in 4 KiB read()s, then the
 *                 same in 64 KiB calls (MB/s each)
 *   cpu N         time N rounds of an integer loop (wall and CPU time)
 * After its result line, each of those waits for another SIGUSR1 before it exits.
 * The others measure the machine, once:
 *   memcpy MIB    memcpy() between two MIB buffers, best of 5 (MB/s)
 *   sink PORT     accept one TCP connection on PORT (after printing "listening"), read it
 *                 to its end and print the bytes and MB/s from the first byte to the end
 *   source ADDR PORT MIB   send MIB MiB to ADDR:PORT in 4 MiB writes */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

static int measured;

static void ready(void) {
    printf("ready %d\n", getpid());
    fflush(stdout);
    while (!go) {
    }
    go = 0;
    measured = 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: migbench mem MIB | vmas N | rtt N | io MIB | cpu N | memcpy MIB | sink PORT | source ADDR PORT MIB\n");
        return 2;
    }
    signal(SIGUSR1, on_usr1);
    long n = atol(argv[2]);
    if (!strcmp(argv[1], "source")) n = 0;
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
    } else if (!strcmp(argv[1], "vmas")) {
        size_t len = (size_t)n * 4096;
        unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        for (size_t i = 0; i < len; i += 4096) p[i] = (unsigned char)(i >> 12);
        for (size_t i = 4096; i < len; i += 8192)
            if (mprotect(p + i, 4096, PROT_READ)) return 1;
        ready();
        double t = clock_ms(CLOCK_MONOTONIC);
        unsigned long sum = 0;
        for (size_t i = 0; i < len; i += 4096) sum += p[i];
        printf("touch_ms %.1f sum %lu\n", clock_ms(CLOCK_MONOTONIC) - t, sum);
    } else if (!strcmp(argv[1], "rtt")) {
        int fd = open("rtt.out", O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return 1;
        static char buf[4096];
        memset(buf, 'x', sizeof buf);
        ready();
        double us[5], t = clock_ms(CLOCK_MONOTONIC);
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        us[0] = clock_ms(CLOCK_MONOTONIC) - t;
        t = clock_ms(CLOCK_MONOTONIC);
        for (long i = 0; i < n; i++)
            if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) return 1;
        us[1] = clock_ms(CLOCK_MONOTONIC) - t;
        t = clock_ms(CLOCK_MONOTONIC);
        for (long i = 0; i < n; i++)
            if (pread(fd, buf, sizeof buf, (i % 64) * 4096) != (ssize_t)sizeof buf) return 1;
        us[2] = clock_ms(CLOCK_MONOTONIC) - t;
        struct stat st;
        t = clock_ms(CLOCK_MONOTONIC);
        for (long i = 0; i < n; i++)
            if (stat("rtt.out", &st) != 0) return 1;
        us[3] = clock_ms(CLOCK_MONOTONIC) - t;
        t = clock_ms(CLOCK_MONOTONIC);
        for (long i = 0; i < n; i++) {
            int f = open("rtt.out", O_RDONLY);
            if (f < 0) return 1;
            close(f);
        }
        us[4] = clock_ms(CLOCK_MONOTONIC) - t;
        printf("getppid_us %.2f write4k_us %.2f pread4k_us %.2f stat_us %.2f open_close_us %.2f\n",
               us[0] * 1e3 / n, us[1] * 1e3 / n, us[2] * 1e3 / n, us[3] * 1e3 / n,
               us[4] * 1e3 / n);
        close(fd);
        unlink("rtt.out");
    } else if (!strcmp(argv[1], "io")) {
        size_t len = (size_t)n << 20;
        static char buf[65536];
        memset(buf, 'y', sizeof buf);
        ready();
        double mbs[4];
        for (int k = 0; k < 2; k++) {
            size_t chunk = k ? 65536 : 4096;
            int fd = open("io.out", O_RDWR | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) return 1;
            double t = clock_ms(CLOCK_MONOTONIC);
            for (size_t done = 0; done < len; done += chunk)
                if (write(fd, buf, chunk) != (ssize_t)chunk) return 1;
            mbs[2 * k] = len / 1e3 / (clock_ms(CLOCK_MONOTONIC) - t);
            if (lseek(fd, 0, SEEK_SET) != 0) return 1;
            t = clock_ms(CLOCK_MONOTONIC);
            for (size_t done = 0; done < len; done += chunk)
                if (read(fd, buf, chunk) != (ssize_t)chunk) return 1;
            mbs[2 * k + 1] = len / 1e3 / (clock_ms(CLOCK_MONOTONIC) - t);
            close(fd);
            unlink("io.out");
        }
        printf("write4k_mbs %.1f read4k_mbs %.1f write64k_mbs %.1f read64k_mbs %.1f\n", mbs[0],
               mbs[1], mbs[2], mbs[3]);
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
    } else if (!strcmp(argv[1], "memcpy")) {
        size_t len = (size_t)n << 20;
        char *a = malloc(len), *b = malloc(len);
        if (!a || !b) return 1;
        memset(a, 1, len);
        memset(b, 2, len);
        double best = 0;
        for (int k = 0; k < 5; k++) {
            double t = clock_ms(CLOCK_MONOTONIC);
            memcpy(k % 2 ? a : b, k % 2 ? b : a, len);
            double mbs = len / 1e3 / (clock_ms(CLOCK_MONOTONIC) - t);
            if (mbs > best) best = mbs;
        }
        printf("memcpy_mbs %.0f check %d\n", best, a[len / 2] + b[len / 3]);
    } else if (!strcmp(argv[1], "sink")) {
        int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(n)};
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, 1)) return 1;
        printf("listening\n");
        fflush(stdout);
        int s = accept(l, NULL, NULL);
        if (s < 0) return 1;
        static char buf[1 << 20];
        ssize_t got = read(s, buf, sizeof buf);
        if (got <= 0) return 1;
        double t = clock_ms(CLOCK_MONOTONIC);
        size_t total = got, first = got;
        while ((got = read(s, buf, sizeof buf)) > 0) total += got;
        double ms = clock_ms(CLOCK_MONOTONIC) - t;
        printf("bytes %zu mbs %.1f\n", total, (total - first) / 1e3 / ms);
    } else if (!strcmp(argv[1], "source") && argc > 4) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        if (s < 0 || inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1 ||
            connect(s, (struct sockaddr *)&sa, sizeof sa))
            return 1;
        static char buf[4 << 20];
        memset(buf, 'z', sizeof buf);
        for (long left = atol(argv[4]); left > 0; left -= 4)
            for (size_t off = 0; off < sizeof buf;) {
                ssize_t w = write(s, buf + off, sizeof buf - off);
                if (w <= 0) return 1;
                off += w;
            }
        close(s);
    } else {
        return 2;
    }
    /* Stay until told again, so that mig-bench can ask where the result was measured. */
    fflush(stdout);
    while (measured && !go) usleep(1000);
    return 0;
}

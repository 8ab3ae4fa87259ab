/* heartbeat MiB RESULT-FILE: touch MiB of heap, say "ready", then beat: every iteration takes a
 * timestamp and reads one more page of the heap (so a lazily restored process must fetch
 * its memory while it runs). On SIGUSR1 it prints the longest gap between two beats
 * (microseconds, CLOCK_MONOTONIC: the process's own view of how long it was stopped) and
 * whether its heap is intact into RESULT-FILE, then exits. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_usr1(int s) { (void)s; stop = 1; }
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, n = mib << 20;
    unsigned char *p = malloc(n);
    for (size_t i = 0; i < n; i += 4096) p[i] = (unsigned char)(i >> 12);
    signal(SIGUSR1, on_usr1);
    printf("ready\n");
    fflush(stdout);
    double prev = now(), gap = 0;
    size_t at = 0;
    unsigned long sum = 0;
    while (!stop) {
        sum += p[at];
        at = (at + 4096) % n;
        double t = now();
        if (t - prev > gap) gap = t - prev;
        prev = t;
    }
    for (size_t i = 0; i < n; i += 4096) sum += p[i] == (unsigned char)(i >> 12);
    FILE *f = fopen(argc > 2 ? argv[2] : "heartbeat.result", "w");
    if (!f) return 1;
    fprintf(f, "gap_us %.0f ok %d\n", gap * 1e6, sum > 0 && p[4096] == 1);
    fclose(f);
    return 0;
}

/* POSIX timers across the window: a periodic one that signals SIGRTMIN+1 with a value,
 * a one-shot SIGEV_NONE one far in the future, and one made during the window. Their
 * ids, signals, values and times must be as they were. A fourth, every 250 ms, signals
 * SIGRTMIN+2, which stays blocked: its signal waits queued while it misses expirations,
 * and each sigtimedwait must count them all (1 + si_overrun per signal, the way programs
 * count ticks); timer_getoverrun must say what the last signal said whenever no signal
 * of the timer waits, checked all the time. */
#include "prog.h"
#include <signal.h>
#include <time.h>
static volatile int ticks, bad_value;
static void on_tick(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    ticks++;
    if (si->si_value.sival_ptr != (void *)0x1234) bad_value++;
}
int main(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_tick;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGRTMIN + 1, &sa, NULL);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN + 1;
    ev.sigev_value.sival_ptr = (void *)0x1234;
    timer_t tick, far;
    check(timer_create(CLOCK_MONOTONIC, &ev, &tick) == 0, "timer_create tick");
    struct itimerspec every = {{0, 20000000}, {0, 20000000}};
    check(timer_settime(tick, 0, &every, NULL) == 0, "timer_settime tick");
    struct sigevent none = {0};
    none.sigev_notify = SIGEV_NONE;
    check(timer_create(CLOCK_REALTIME, &none, &far) == 0, "timer_create far");
    struct itimerspec once = {{0, 0}, {30, 0}};
    check(timer_settime(far, 0, &once, NULL) == 0, "timer_settime far");
    sigset_t ovset;
    sigemptyset(&ovset);
    sigaddset(&ovset, SIGRTMIN + 2);
    check(sigprocmask(SIG_BLOCK, &ovset, NULL) == 0, "block SIGRTMIN+2");
    struct sigevent oev = {0};
    oev.sigev_notify = SIGEV_SIGNAL;
    oev.sigev_signo = SIGRTMIN + 2;
    timer_t ov;
    check(timer_create(CLOCK_MONOTONIC, &oev, &ov) == 0, "timer_create ov");
    struct itimerspec every250 = {{0, 250000000}, {0, 10000000}};
    double ov0 = now() + 0.01;
    check(timer_settime(ov, 0, &every250, NULL) == 0, "timer_settime ov");
    long counted = 0;
    int overrun_right = 1, last = 0;
    /* Takes the queued signal: between the expirations elapsed just before and just
     * after, as counted from the first. */
#define TAKE()                                                                        \
    do {                                                                              \
        long lo = (long)((now() - ov0) / 0.25) + 1;                                    \
        siginfo_t si;                                                                 \
        struct timespec zero = {0, 0};                                                \
        check(sigtimedwait(&ovset, &si, &zero) == SIGRTMIN + 2, "sigtimedwait ov");   \
        long hi = (long)((now() - ov0) / 0.25) + 1;                                    \
        counted += 1 + si.si_overrun;                                                 \
        last = si.si_overrun;                                                         \
        if (counted < lo || counted > hi) {                                           \
            printf("  (counted %ld expirations, elapsed %ld..%ld)\n", counted, lo, hi); \
            overrun_right = 0;                                                        \
        }                                                                             \
        GETOVERRUN();                                                                 \
    } while (0)
/* Whether a signal of the timer waits is asked before and after: a move may fall
 * between the two calls, and a signal restore queued then makes timer_getoverrun read 0
 * until it is delivered (the one thing a restore cannot set). */
#define GETOVERRUN()                                                                  \
    do {                                                                              \
        sigset_t before, after;                                                       \
        sigpending(&before);                                                          \
        int o = timer_getoverrun(ov);                                                 \
        sigpending(&after);                                                           \
        int waits = sigismember(&before, SIGRTMIN + 2) || sigismember(&after, SIGRTMIN + 2); \
        if (o != last && !waits && overrun_right) {                                   \
            printf("  (timer_getoverrun %d, the last signal's %d)\n", o, last);        \
            overrun_right = 0;                                                        \
        }                                                                             \
    } while (0)
#define SPIN(sec)                                                                     \
    do {                                                                              \
        double end = now() + (sec);                                                   \
        while (now() < end) GETOVERRUN();                                             \
    } while (0)
    printf("ids %ld %ld\n", (long)tick, (long)far);
    SPIN(0.6);
    TAKE();
    timer_t late;
    check(timer_create(CLOCK_MONOTONIC, &none, &late) == 0, "timer_create late");
    struct itimerspec soon = {{0, 0}, {20, 0}};
    check(timer_settime(late, 0, &soon, NULL) == 0, "timer_settime late");
    SPIN(0.6);
    TAKE();
    SPIN(0.2);
    struct itimerspec left;
    check(timer_gettime(far, &left) == 0, "timer_gettime far");
    printf("far: %d, ", left.it_value.tv_sec >= 28 && left.it_value.tv_sec < 30);
    check(timer_gettime(late, &left) == 0, "timer_gettime late");
    printf("late: %d, ", left.it_value.tv_sec >= 18 && left.it_value.tv_sec < 20);
    check(timer_gettime(tick, &left) == 0, "timer_gettime tick");
    printf("tick interval %ld ns\n", left.it_interval.tv_nsec);
    printf("ticks %s, values %s\n", ticks >= 30 ? ">= 30" : "FEW", bad_value ? "WRONG" : "right");
    printf("overruns %s (%s)\n", overrun_right ? "right" : "WRONG", counted >= 5 ? ">= 5" : "FEW");
    if (ticks < 30) printf("  (%d ticks)\n", ticks);
    return 0;
}

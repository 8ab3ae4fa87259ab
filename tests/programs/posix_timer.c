/* POSIX timers across the window: a periodic one that signals SIGRTMIN+1 with a value,
 * a one-shot SIGEV_NONE one far in the future, and one made during the window. Their
 * ids, signals, values and times must be as they were. */
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
    printf("ids %ld %ld\n", (long)tick, (long)far);
    spin(0.6);
    timer_t late;
    check(timer_create(CLOCK_MONOTONIC, &none, &late) == 0, "timer_create late");
    struct itimerspec soon = {{0, 0}, {20, 0}};
    check(timer_settime(late, 0, &soon, NULL) == 0, "timer_settime late");
    spin(0.6);
    struct itimerspec left;
    check(timer_gettime(far, &left) == 0, "timer_gettime far");
    printf("far: %d, ", left.it_value.tv_sec >= 28 && left.it_value.tv_sec < 30);
    check(timer_gettime(late, &left) == 0, "timer_gettime late");
    printf("late: %d, ", left.it_value.tv_sec >= 18 && left.it_value.tv_sec < 20);
    check(timer_gettime(tick, &left) == 0, "timer_gettime tick");
    printf("tick interval %ld ns\n", left.it_interval.tv_nsec);
    printf("ticks %s, values %s\n", ticks >= 30 ? ">= 30" : "FEW", bad_value ? "WRONG" : "right");
    if (ticks < 30) printf("  (%d ticks)\n", ticks);
    return 0;
}

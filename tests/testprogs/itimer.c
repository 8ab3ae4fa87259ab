/* An interval timer (ITIMER_REAL) ticking through the window, waited for with pause(). */
#include "prog.h"
#include <signal.h>
#include <sys/time.h>
static volatile int ticks;
static void on_alarm(int sig) { (void)sig; ticks++; }
int main(void) {
    signal(SIGALRM, on_alarm);
    struct itimerval it = {.it_interval = {0, 10000}, .it_value = {0, 10000}};
    setitimer(ITIMER_REAL, &it, NULL);
    while (ticks < 70) pause();
    struct itimerval cur;
    getitimer(ITIMER_REAL, &cur);
    printf("ticks reached 70, interval %ld us, running %d\n", (long)cur.it_interval.tv_usec,
           cur.it_value.tv_sec != 0 || cur.it_value.tv_usec != 0);
    it.it_interval.tv_usec = it.it_value.tv_usec = 0;
    setitimer(ITIMER_REAL, &it, NULL);
    return 0;
}

/* A signal queued while blocked stays pending across the window and is handled when
 * unblocked; a queued real-time signal keeps its value. */
#include "prog.h"
#include <signal.h>
static volatile int usr1, rt_value = -1;
static void on_usr1(int sig) { (void)sig; usr1++; }
static void on_rt(int sig, siginfo_t *si, void *ctx) { (void)sig; (void)ctx; rt_value = si->si_value.sival_int; }
int main(void) {
    signal(SIGUSR1, on_usr1);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 3, &sa, NULL);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGRTMIN + 3);
    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR1);
    union sigval v = {.sival_int = 4242};
    sigqueue(getpid(), SIGRTMIN + 3, v);
    window(0.7);
    sigset_t pend;
    sigpending(&pend);
    printf("pending usr1 %d rt %d\n", sigismember(&pend, SIGUSR1), sigismember(&pend, SIGRTMIN + 3));
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    printf("handled usr1 %d rt value %d\n", usr1, rt_value);
    return 0;
}

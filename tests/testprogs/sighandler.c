/* Signal handlers and a blocked signal mask: handled signals keep arriving across the
 * window; SIGUSR2 stays blocked throughout. */
#include "prog.h"
#include <signal.h>
static volatile int got;
static void on_usr1(int sig) { (void)sig; got++; }
int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGWINCH);
    sigprocmask(SIG_BLOCK, &block, NULL);
    for (int i = 0; i < 40; i++) {
        raise(SIGUSR1);
        if (i == 20) window(0.02); else spin(0.02);
    }
    sigset_t now_mask;
    sigprocmask(SIG_BLOCK, NULL, &now_mask);
    struct sigaction cur;
    sigaction(SIGUSR1, NULL, &cur);
    struct sigaction pipe_act;
    sigaction(SIGPIPE, NULL, &pipe_act);
    printf("handled %d\n", got);
    printf("usr2 blocked %d winch blocked %d usr1 blocked %d\n", sigismember(&now_mask, SIGUSR2),
           sigismember(&now_mask, SIGWINCH), sigismember(&now_mask, SIGUSR1));
    printf("handler kept %d restart %d mask-term %d pipe ignored %d\n", cur.sa_handler == on_usr1,
           !!(cur.sa_flags & SA_RESTART), sigismember(&cur.sa_mask, SIGTERM), pipe_act.sa_handler == SIG_IGN);
    return 0;
}

/* Signals a process sends itself are delivered before the call that sends them returns:
 * kill(getpid()), raise (tgkill), killpg of its own group, each checked right after the
 * call; then kill(getpid(), SIGTERM) ends it (status 143), and nothing after it runs. */
#include "prog.h"
#include <signal.h>
static volatile int usr1, usr2;
static void on_usr1(int sig) { (void)sig; usr1++; }
static void on_usr2(int sig) { (void)sig; usr2++; }
int main(void) {
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    /* Its own group, so that killpg reaches no one else. */
    check(setpgid(0, 0) == 0, "setpgid");
    spin(0.3);
    for (int i = 1; i <= 20; i++) {
        check(kill(getpid(), SIGUSR1) == 0, "kill");
        check(usr1 == 2 * i - 1, "handler ran before kill returned");
        check(raise(SIGUSR1) == 0, "raise");
        check(usr1 == 2 * i, "handler ran before raise returned");
        check(killpg(0, SIGUSR2) == 0, "killpg");
        check(usr2 == i, "handler ran before killpg returned");
        spin(0.01);
    }
    printf("usr1 %d usr2 %d\n", usr1, usr2);
    fflush(stdout);
    kill(getpid(), SIGTERM);
    printf("FAIL still running after kill(getpid(), SIGTERM)\n");
    return 0;
}

/* Signals read through a signalfd: blocked SIGUSR1, SIGUSR2 and SIGTERM, sent by the
 * process to itself (kill, sigqueue with a value, raise) in rounds spread over about a
 * second, so that a move finds it anywhere in a round. Each round, poll must see the
 * signalfd readable and reads must return the signals sent, with their values and
 * sender; nothing may be left over, and none may act. */
#include "prog.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
int main(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGTERM);
    check(sigprocmask(SIG_BLOCK, &set, NULL) == 0, "sigprocmask");
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    check(sfd >= 0, "signalfd");
    int rounds = 0, right = 0;
    pid_t me = getpid();
    for (int i = 1; i <= 24; i++) {
        if (i == 12) window(0.04); else spin(0.04);
        check(kill(me, SIGUSR1) == 0, "kill");
        union sigval v = {.sival_int = 1000 + i};
        check(sigqueue(me, SIGUSR2, v) == 0, "sigqueue");
        check(raise(SIGTERM) == 0, "raise");
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        check(poll(&p, 1, 5000) == 1 && (p.revents & POLLIN), "poll sees the signals");
        /* The thread's own queue (raise) is read before the process's. */
        int want[3] = {SIGTERM, SIGUSR1, SIGUSR2}, ok = 1;
        for (int k = 0; k < 3; k++) {
            struct signalfd_siginfo si;
            ssize_t n = read(sfd, &si, sizeof si);
            check(n == (ssize_t)sizeof si, "read signalfd");
            int good = (int)si.ssi_signo == want[k] && (pid_t)si.ssi_pid == me;
            if (want[k] == SIGUSR2 && si.ssi_int != 1000 + i) good = 0;
            if (!good) printf("round %d: got signal %u from %s (value %d)\n", i, si.ssi_signo,
                              (pid_t)si.ssi_pid == me ? "itself" : "elsewhere", si.ssi_int);
            ok &= good;
        }
        rounds++;
        right += ok;
    }
    /* Nothing is left, neither queued for the signalfd nor pending. */
    sigset_t left;
    check(sigpending(&left) == 0, "sigpending");
    struct pollfd p = {.fd = sfd, .events = POLLIN};
    int more = poll(&p, 1, 0);
    printf("rounds %d right %d, left over: %d %d\n", rounds, right, more,
           sigismember(&left, SIGUSR1) + sigismember(&left, SIGUSR2) + sigismember(&left, SIGTERM));
    return 0;
}

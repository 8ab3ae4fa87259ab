/* remote MODE [ARG]: what a migrated process must see as at home.
 *   open PATH  spin, then try to open PATH and print the errno
 *   usr1       spin until SIGUSR1 arrives (the handler prints), then exit 0
 *   exit42     spin, then exit with status 42
 *   segv       spin, then write through a null pointer
 *   sigfd      block SIGUSR1, spin, then wait for it in a read of a signalfd
 *   nodeath    spin, wait for the runner's go (prog.h's window), clear its parent-death
 *              signal (say "cleared"), then spin 60 s
 * It spins 0.6 s, or $REMOTE_SPIN seconds. */
#include "prog.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>

static volatile sig_atomic_t got;
static void on_usr1(int s) { (void)s; got = 1; }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    /* The handler is there from the start, so a signal at any moment finds it. */
    if (!strcmp(argv[1], "usr1")) signal(SIGUSR1, on_usr1);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    int sfd = -1;
    if (!strcmp(argv[1], "sigfd")) {
        sigprocmask(SIG_BLOCK, &usr1, NULL);
        sfd = signalfd(-1, &usr1, 0);
    }
    const char *secs = getenv("REMOTE_SPIN");
    spin(secs ? atof(secs) : 0.6);
    if (!strcmp(argv[1], "open") && argc > 2) {
        int fd = open(argv[2], O_RDONLY);
        printf("open %s: %s\n", argv[2], fd < 0 ? strerror(errno) : "found");
        return 0;
    }
    if (!strcmp(argv[1], "usr1")) {
        printf("waiting\n");
        fflush(stdout);
        double end = now() + 20;
        while (!got && now() < end) {
        }
        printf("handler ran: %d\n", (int)got);
        return 0;
    }
    if (!strcmp(argv[1], "sigfd")) {
        printf("waiting\n");
        fflush(stdout);
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof si);
        printf("read %zd: signal %u from %s\n", n, si.ssi_signo,
               si.ssi_pid == (unsigned)getpid() ? "itself" : "another process");
        return 0;
    }
    if (!strcmp(argv[1], "nodeath")) {
        window(0);
        check(prctl(PR_SET_PDEATHSIG, 0) == 0, "PR_SET_PDEATHSIG");
        printf("cleared\n");
        fflush(stdout);
        spin(60);
        return 0;
    }
    if (!strcmp(argv[1], "exit42")) return 42;
    if (!strcmp(argv[1], "segv")) {
        fflush(stdout);
        *(volatile int *)0 = 1;
    }
    return 1;
}

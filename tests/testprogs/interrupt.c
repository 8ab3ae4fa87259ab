/* Calls blocked at home interrupted by signals: the runner sends each signal while the
 * program waits in the call (it watches /proc/PID/syscall), then writes a line into the
 * fifo `in`. Natively:
 *  - SIGWINCH, ignored by default, interrupts nothing: read returns the line;
 *  - SIGUSR1 with an SA_RESTART handler: the handler runs, read restarts and returns it;
 *  - SIGUSR2 with a handler without SA_RESTART: read fails with EINTR, the handler having
 *    run first, and the next read returns the line;
 *  - a poll with a 400 ms timeout that SIGWINCH hits after 100 ms still waits 400 ms;
 *  - a ppoll in `while (!stop)` interrupted by SIGUSR2, whose handler sets stop: the
 *    handler has run when ppoll returns EINTR.
 * No kernel-internal value (ERESTARTSYS, 512) may reach the program. */
#include "prog.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
static volatile int usr1, usr2;
static void on_usr1(int sig) { (void)sig; usr1++; }
static void on_usr2(int sig) { (void)sig; usr2++; }
static int fd;
static void line(const char *what) {
    char buf[64] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) {
        printf("%s: read failed, errno %d (%s)\n", what, errno, strerror(errno));
        check(errno == EINTR, "read fails only with EINTR");
        n = read(fd, buf, sizeof buf - 1);
        check(n > 0, "read after EINTR");
    }
    printf("%s: read %s", what, buf);
    fflush(stdout);
}
int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr2;
    sa.sa_flags = 0;
    sigaction(SIGUSR2, &sa, NULL);
    fd = ready_fifo(0.3);
    line("winch");
    line("usr1");
    printf("usr1 handled %d\n", usr1);
    line("usr2");
    printf("usr2 handled %d\n", usr2);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    double t0 = now();
    int r = poll(&p, 1, 400);
    double waited = now() - t0;
    printf("poll returned %d, waited its time %d\n", r, waited >= 0.39);
    if (waited < 0.39) printf("  (only %.3f s)\n", waited);
    int before = usr2;
    while (usr2 == before) {
        r = ppoll(&p, 1, NULL, NULL);
        check(r == -1 && errno == EINTR, "poll ends with EINTR");
        check(usr2 == before + 1, "handler ran before poll returned");
    }
    printf("poll interrupted after the handler ran\n");
    close(fd);
    unlink("in");
    return 0;
}

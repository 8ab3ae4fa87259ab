/* A timed wait that is in flight (at home, for a process away) when the process is
 * brought home: it must return after its own timeout, as natively, not start over with
 * the full timeout once home. argv[1] names the call: poll (the default, a timeout by
 * value), ppoll, select or pselect (a timeout in the process's memory, which the kernel
 * updates as the call waits). */
#include "prog.h"
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "poll";
    int fd = ready_fifo(0.3);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    fd_set set;
    FD_ZERO(&set);
    FD_SET(fd, &set);
    struct timespec ts = {.tv_sec = 2};
    struct timeval tv = {.tv_sec = 2};
    double t0 = now();
    int r;
    if (!strcmp(how, "ppoll"))
        r = ppoll(&p, 1, &ts, NULL);
    else if (!strcmp(how, "select"))
        r = select(fd + 1, &set, NULL, NULL, &tv);
    else if (!strcmp(how, "pselect"))
        r = pselect(fd + 1, &set, NULL, NULL, &ts, NULL);
    else
        r = poll(&p, 1, 2000);
    double waited = now() - t0;
    printf("%s returned %d after its own timeout %d\n", how, r, waited >= 1.95 && waited < 2.6);
    if (waited < 1.95 || waited >= 2.6) printf("  (it waited %.3f s)\n", waited);
    close(fd);
    unlink("in");
    return 0;
}

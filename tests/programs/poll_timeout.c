/* A poll with a timeout that is in flight (at home, for a process away) when the process
 * is brought home: it must return after its own timeout, as natively, not start over
 * with the full timeout once home. */
#include "prog.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
int main(void) {
    int fd = ready_fifo(0.3);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    double t0 = now();
    int r = poll(&p, 1, 2000);
    double waited = now() - t0;
    printf("poll returned %d after its own timeout %d\n", r, waited >= 1.95 && waited < 2.6);
    if (waited < 1.95 || waited >= 2.6) printf("  (it waited %.3f s)\n", waited);
    close(fd);
    unlink("in");
    return 0;
}

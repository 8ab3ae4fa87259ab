/* A read that blocks at home when the process is away (a fifo nobody has written to
 * yet): the runner asks the process home while it waits there, then writes a line. The
 * read must be made again once it is home and return the line. */
#include "prog.h"
#include <fcntl.h>
#include <sys/stat.h>
int main(void) {
    int fd = ready_fifo(0.3);
    char buf[64] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    check(n > 0, "read");
    printf("read %s", buf);
    close(fd);
    unlink("in");
    return 0;
}

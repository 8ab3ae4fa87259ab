/* Descriptor numbers, O_APPEND, close-on-exec and a read-only file all survive. */
#include "prog.h"
#include <fcntl.h>
int main(void) {
    int a = open("log.txt", O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0600);
    check(dup2(a, 9) == 9, "dup2");
    close(a);
    int r = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    check(r >= 0, "open /etc/hostname");
    check(dup3(r, 12, O_CLOEXEC) == 12, "dup3");
    close(r);
    for (int i = 0; i < 30; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "entry %d\n", i);
        if (i == 15) lseek(9, 0, SEEK_SET); /* O_APPEND ignores this */
        check(write(9, line, (size_t)n) == n, "append");
        if (i == 15) window(0.02); else spin(0.02);
    }
    printf("fd 9 flags append %d cloexec %d\n", !!(fcntl(9, F_GETFL) & O_APPEND), fcntl(9, F_GETFD));
    printf("fd 12 cloexec %d readonly %d\n", fcntl(12, F_GETFD), (fcntl(12, F_GETFL) & O_ACCMODE) == O_RDONLY);
    printf("log size %ld\n", (long)lseek(9, 0, SEEK_END));
    return 0;
}

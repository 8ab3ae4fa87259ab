/* I/O-bound: writes 16 bytes at a time to the file `iowrite.out` (in its directory at
 * home), COUNT (default 100000) times, then prints how many bytes it wrote. */
#include "../prog.h"
#include <fcntl.h>
int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 100000;
    int fd = open("iowrite.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0, "open");
    long total = 0;
    for (long i = 0; i < count; i++) {
        char line[32];
        snprintf(line, sizeof line, "%015ld\n", i % 1000000000000000L);
        check(write(fd, line, 16) == 16, "write");
        total += 16;
    }
    close(fd);
    printf("wrote %ld bytes\n", total);
    return 0;
}

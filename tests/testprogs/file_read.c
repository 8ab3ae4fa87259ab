/* A regular file read in small pieces: the offset must survive the window. */
#include "prog.h"
#include <fcntl.h>
int main(void) {
    FILE *f = fopen("input.dat", "w");
    for (int i = 0; i < 200000; i++) fprintf(f, "%d\n", i * 7);
    fclose(f);
    int fd = open("input.dat", O_RDONLY);
    check(fd >= 0, "open");
    char buf[4096];
    unsigned long h = 0;
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) h = mix(h, (unsigned char)buf[i]);
        total += n;
        if (total == 100 * 4096) window(0.2); else spin(0.002);
    }
    printf("read %ld bytes, hash %016lx\n", total, h);
    return 0;
}

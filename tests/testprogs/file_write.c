/* A regular file open mid-write: lines written across the window must all be there, in
 * order, at the right offsets. */
#include "prog.h"
#include <fcntl.h>
int main(void) {
    int fd = open("out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    check(fd >= 0, "open out.txt");
    for (int i = 0; i < 40; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "line %02d of the output file\n", i);
        check(write(fd, line, (size_t)n) == n, "write");
        if (i == 20) window(0.02); else spin(0.02);
    }
    off_t end = lseek(fd, 0, SEEK_CUR);
    close(fd);
    FILE *f = fopen("out.txt", "r");
    unsigned long h = 0;
    int c, count = 0;
    while ((c = fgetc(f)) != EOF) { h = mix(h, (unsigned long)c); count++; }
    fclose(f);
    printf("offset %ld, %d bytes, hash %016lx\n", (long)end, count, h);
    return 0;
}

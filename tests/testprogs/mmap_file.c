/* A private mapping of a file: modified pages belong to the process, unmodified ones
 * still show the file, and the file itself never changes. */
#include "prog.h"
#include <fcntl.h>
#include <sys/mman.h>
int main(void) {
    int fd = open("data.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 64 * 1024; i++) { unsigned char b = (unsigned char)(i * 13); check(write(fd, &b, 1) == 1, "write"); }
    unsigned char *m = mmap(NULL, 64 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    check(m != MAP_FAILED, "mmap");
    close(fd);
    for (int p = 0; p < 16; p += 3) memset(m + p * 4096, 0xA0 + p, 100);
    window(0.6);
    unsigned long h = 0;
    for (int i = 0; i < 64 * 1024; i++) h = mix(h, m[i]);
    for (int p = 1; p < 16; p += 3) check(m[p * 4096 + 5] == (unsigned char)((p * 4096 + 5) * 13), "file page");
    fd = open("data.bin", O_RDONLY);
    unsigned char b;
    pread(fd, &b, 1, 0);
    printf("mapping hash %016lx, file untouched %d\n", h, b == 0);
    return 0;
}

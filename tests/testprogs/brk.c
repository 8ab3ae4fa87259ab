/* The heap grows with brk before and after the window. */
#include "prog.h"
int main(void) {
    char *base = sbrk(0);
    for (int i = 0; i < 12; i++) {
        char *p = sbrk(256 * 1024);
        check(p != (void *)-1, "sbrk");
        memset(p, 'a' + i, 256 * 1024);
        if (i == 6) window(0.05); else spin(0.05);
    }
    char *end = sbrk(0);
    for (int i = 0; i < 12; i++) check(base[i * 256 * 1024 + 1000] == 'a' + i, "heap contents");
    check(brk(base + 1024 * 1024) == 0, "shrink");
    check(sbrk(0) == base + 1024 * 1024, "shrunk");
    printf("grew %ld KiB, shrank to 1024 KiB\n", (long)(end - base) / 1024);
    return 0;
}

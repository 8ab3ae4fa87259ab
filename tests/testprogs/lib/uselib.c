/* A long computation through a shared library (omlib.c), printed step by step. */
#include "../prog.h"
unsigned long omlib_step(unsigned long x);
const char *omlib_banner(void);
int main(void) {
    unsigned long x = 1;
    printf("%s\n", omlib_banner());
    for (int i = 0; i < 12; i++) {
        for (long j = 0; j < 25000000; j++) x = omlib_step(x);
        printf("step %d %016lx %s\n", i, x, omlib_banner());
    }
    return 0;
}

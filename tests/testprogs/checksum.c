/* A long computation with a checksum, printed step by step. */
#include "prog.h"
int main(void) {
    unsigned long x = 1;
    for (int i = 0; i < 12; i++) {
        for (long j = 0; j < 40000000; j++) x = x * 6364136223846793005UL + 1442695040888963407UL;
        printf("step %d %016lx\n", i, x);
    }
    return 0;
}

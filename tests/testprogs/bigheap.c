/* A big heap (256 MiB), filled, then verified after the checkpoint window. */
#include "prog.h"
#define N (256UL << 20)
int main(void) {
    unsigned long *p = malloc(N);
    check(p != NULL, "malloc");
    size_t n = N / sizeof *p;
    for (size_t i = 0; i < n; i++) p[i] = i * 2654435761UL;
    printf("filled %lu MiB\n", N >> 20);
    fflush(stdout);
    unsigned long h = 0;
    for (int round = 0; round < 4; round++) {
        if (round == 1) window(0.12); else spin(0.12);
        for (size_t i = round; i < n; i += 4096 + round) h = mix(h, p[i]);
        printf("round %d %016lx\n", round, h);
    }
    for (size_t i = 0; i < n; i++) check(p[i] == i * 2654435761UL, "heap contents");
    printf("heap ok\n");
    return 0;
}

/* CPU-bound work of SPIN_SECONDS (default 8) seconds of a standard CPU's time, in fixed
 * units, then prints how many units it did and a checksum of them. */
#include "../prog.h"
int main(int argc, char **argv) {
    double sec = argc > 1 ? atof(argv[1]) : 8.0;
    /* About 3 * 10^8 mixes a second on a standard CPU. */
    unsigned long units = (unsigned long)(sec * 300), h = 0;
    for (unsigned long u = 0; u < units; u++)
        for (unsigned long i = 0; i < 1000000; i++)
            h = mix(h, i ^ u);
    printf("%lu units, checksum %lx\n", units, h);
    return 0;
}

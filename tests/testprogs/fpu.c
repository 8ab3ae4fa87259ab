/* x87 and SSE floating-point state held in registers through long loops. */
#include "prog.h"
int main(void) {
    for (int round = 0; round < 6; round++) {
        long double a = 1.0L + round;
        double b = 0.5 + round, c = 1e-3;
        for (long i = 0; i < 25000000; i++) {
            a = a * 1.0000001L + 1e-9L;
            b = b * 0.9999999 + c;
            c = c * 1.0000000001;
        }
        printf("round %d %.15Lg %.15g %.15g\n", round, a, b, c);
    }
    return 0;
}

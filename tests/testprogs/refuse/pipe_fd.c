/* Refused: a pipe open beyond descriptors 0-2. */
#include "../prog.h"
int main(void) {
    int p[2];
    check(pipe(p) == 0, "pipe");
    spin(1.2);
    printf("pipe still open\n");
    return 0;
}

/* Output buffered inside the process (stdio on a pipe) at the moment of the checkpoint is
 * part of its memory: it comes out of the restored process, once, in order. */
#include "prog.h"
int main(void) {
    for (int i = 0; i < 300; i++) {
        printf("buffered line %03d\n", i);
        if (i == 150) window(0.1);
        else if (i % 50 == 0) spin(0.1);
    }
    return 0;
}

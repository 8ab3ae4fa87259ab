/* Grows its heap by 32 MiB at a time, touching every page, to 768 MiB: at a node with
 * less memory than that, the node's out-of-memory killer ends it. */
#include "prog.h"
int main(void) {
    spin(0.5);
    size_t total = 0;
    for (int i = 0; i < 24; i++) {
        char *p = malloc(32 << 20);
        check(p != NULL, "malloc");
        memset(p, i + 1, 32 << 20);
        total += 32;
    }
    printf("grew to %zu MiB\n", total);
    return 0;
}

/* Deep recursion: the stack grows before the window, stays deep across it, and grows
 * further afterwards (past what the image held). */
#include "prog.h"
static unsigned long deep(int depth, int spin_at, unsigned long acc) {
    volatile char frame[200];
    for (int i = 0; i < 200; i++) frame[i] = (char)(depth + i);
    if (depth == spin_at) window(0.4);
    unsigned long r = depth == 0 ? acc : deep(depth - 1, spin_at, mix(acc, depth));
    for (int i = 0; i < 200; i++) check(frame[i] == (char)(depth + i), "frame contents");
    return r;
}
int main(void) {
    printf("first %016lx\n", deep(12000, 100, 1));
    fflush(stdout);
    printf("deeper %016lx\n", deep(30000, 30000, 2));
    return 0;
}

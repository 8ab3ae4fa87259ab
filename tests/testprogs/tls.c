/* Thread-local storage (fs_base) updated across the window. */
#include "prog.h"
static __thread unsigned long counter = 7;
static __thread char name[32] = "tls-initial";
int main(void) {
    for (int i = 0; i < 8; i++) {
        counter = mix(counter, i);
        if (i == 4) window(0.08); else spin(0.08);
        snprintf(name, sizeof name, "tls-%d", i);
    }
    printf("%s %016lx\n", name, counter);
    return 0;
}

/* Grows its heap 8 MiB at a time, every 0.2 s, to USHER_MIB (default 640) MiB, filling
 * each step with its own pattern, then checks every byte and prints a checksum. At a node
 * with less memory than that it lives only if its node sends it elsewhere in time. */
#include "../prog.h"
#include <time.h>
int main(void) {
    const char *env = getenv("USHER_MIB");
    int steps = (env ? atoi(env) : 640) / 8;
    char **blocks = calloc(steps, sizeof *blocks);
    check(blocks != NULL, "calloc");
    for (int i = 0; i < steps; i++) {
        blocks[i] = malloc(8 << 20);
        check(blocks[i] != NULL, "malloc");
        memset(blocks[i], i + 1, 8 << 20);
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    unsigned long h = 0;
    for (int i = 0; i < steps; i++) {
        for (size_t j = 0; j < (8u << 20); j += 4096) {
            check(blocks[i][j] == (char)(i + 1), "contents");
            h = mix(h, (unsigned char)blocks[i][j]);
        }
    }
    printf("grew to %d MiB, checksum %lx\n", steps * 8, h);
    return 0;
}

/* Changes its memory map all the time, for captures that read the map while the process
 * still runs (ckpt/tests/early.rs). Prints the address it works on, then, forever:
 *   flip: madvise(MADV_DONTDUMP) and madvise(MADV_DODUMP) in turn on one mapping of its
 *         own (PROT_NONE guards keep it apart), which changes its flags, not its layout
 *         (2000 other mappings make its map take a while to read);
 *   grow: its stack deeper by a page every millisecond or so, without a system call, to
 *         7 MiB; then it spins on. */
#include "prog.h"
#include <sys/mman.h>

static void spin_a_little(void) {
    for (volatile int i = 0; i < 2000000; i++) {
    }
}

static void deeper(int left) {
    volatile char page[4096];
    page[0] = (char)left;
    page[4095] = (char)left;
    spin_a_little();
    if (left > 0) deeper(left - 1);
    (void)page[0];
}

int main(int argc, char **argv) {
    check(argc == 2, "usage: map_window flip|grow");
    long pg = 4096;
    if (!strcmp(argv[1], "flip")) {
        char *m = mmap(NULL, 3 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        check(m != MAP_FAILED, "mmap");
        check(!mprotect(m + pg, pg, PROT_READ | PROT_WRITE), "mprotect");
        char *more = mmap(NULL, 2000 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        check(more != MAP_FAILED, "mmap");
        for (int i = 0; i < 2000; i += 2) check(!mprotect(more + i * pg, pg, PROT_NONE), "mprotect");
        printf("%lx\n", (unsigned long)(m + pg));
        fflush(stdout);
        for (;;) {
            check(!madvise(m + pg, pg, MADV_DONTDUMP), "madvise DONTDUMP");
            check(!madvise(m + pg, pg, MADV_DODUMP), "madvise DODUMP");
        }
    }
    check(!strcmp(argv[1], "grow"), "usage: map_window flip|grow");
    printf("%lx\n", (unsigned long)__builtin_frame_address(0));
    fflush(stdout);
    deeper(7 * 256);
    /* The stack stays as deep as it went. */
    for (;;) spin_a_little();
}

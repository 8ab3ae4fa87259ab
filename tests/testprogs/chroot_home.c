/* A process in a chroot of its own (made before it moves) comes home into it, where
 * none of the files it maps (its executable, libc) can be opened by their paths, and
 * runs on there. (Run as root.) */
#include "prog.h"
#include <sys/stat.h>
int main(void) {
    unsigned long x = 1;
    check(mkdir("newroot", 0755) == 0, "mkdir newroot");
    check(chroot("newroot") == 0, "chroot");
    check(chdir("/") == 0, "chdir");
    struct stat st;
    printf("libc visible after chroot: %d\n", stat("/usr/lib/x86_64-linux-gnu/libc.so.6", &st) == 0);
    for (int i = 0; i < 6; i++) {
        if (i == 2) window(0.1); else spin(0.1);
        for (long j = 0; j < 5000000; j++) x = x * 6364136223846793005UL + 1;
        printf("step %d %016lx\n", i, x);
    }
    return 0;
}

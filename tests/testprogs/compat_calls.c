/* System calls of the other ABIs that a 64-bit program may still make: the 32-bit entry
 * (`int $0x80`: getpid and getppid by their i386 numbers) and x32 numbers (getpid with
 * the x32 bit). Each must be answered as at home, whatever the home kernel answers:
 * away from home, the process goes home to make them. */
#include "prog.h"
#include <sys/syscall.h>

/* An i386 system call without arguments. The 32-bit entry clobbers r8-r11. */
static long int80(long nr) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr) : "r8", "r9", "r10", "r11", "memory");
    return ret;
}

static const char *same(long got, long want) {
    if (got == want) {
        return "the same";
    }
    return got < 0 && got > -4096 ? strerror((int)-got) : "another number";
}

int main(void) {
    window(0.3);
    printf("int 0x80 getpid: %s\n", same(int80(20), getpid()));
    printf("int 0x80 getppid: %s\n", same(int80(64), getppid()));
    long x = syscall(0x40000000L | SYS_getpid);
    printf("x32 getpid: %s\n", same(x < 0 ? -errno : x, getpid()));
    spin(0.2);
    return 0;
}

/* Refused without harm: a seccomp filter of its own (here one that fails getppid with
 * EPERM), which a capture does not carry: moved without it, the process would be free
 * of what it chose to forbid itself. */
#include "../prog.h"
int main(void) {
    forbid_getppid();
    spin(1.2);
    printf("getppid under the filter: %s\n", syscall(SYS_getppid) < 0 ? strerror(errno) : "allowed");
    return 0;
}

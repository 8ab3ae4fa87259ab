/* Refused without harm: seccomp strict mode, where any call but read, write, _exit and
 * sigreturn kills the process (a capture's injected calls would). */
#include "../prog.h"
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
int main(void) {
    fflush(stdout);
    check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) == 0, "PR_SET_SECCOMP");
    /* No clock: on a VM without a vDSO clock, clock_gettime is a system call. */
    for (volatile unsigned long i = 0; i < 1500000000UL; i++) {
    }
    static const char msg[] = "strict mode survived\n";
    syscall(SYS_write, 1, msg, sizeof msg - 1);
    syscall(SYS_exit, 0); /* exit_group is not allowed */
    return 0;
}

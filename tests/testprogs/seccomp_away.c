/* A seccomp filter installed away from home (one that fails getppid with EPERM) is
 * installed at home, where the process goes to make the call, and is enforced there as
 * natively; no_new_privs, set before it, is home's too. (A process with a filter of its
 * own moves no more: see refuse/seccomp_filter.) */
#include "prog.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
int main(void) {
    window(0.6);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    printf("getppid before: %s\n", syscall(SYS_getppid) > 0 ? "a pid" : strerror(errno));
    check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
    printf("no_new_privs %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0, "PR_SET_SECCOMP");
    errno = 0;
    long r = syscall(SYS_getppid);
    printf("getppid under the filter: %s\n", r < 0 ? strerror(errno) : "allowed");
    FILE *st = fopen("/proc/self/status", "r");
    check(st != NULL, "open /proc/self/status");
    char line[256];
    while (fgets(line, sizeof line, st))
        if (!strncmp(line, "Seccomp:", 8) || !strncmp(line, "NoNewPrivs:", 11)) fputs(line, stdout);
    fclose(st);
    return 0;
}

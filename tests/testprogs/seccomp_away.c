/* A seccomp filter installed away from home (one that fails getppid with EPERM) is
 * installed at home, where the process goes to make the call, and is enforced there as
 * natively; no_new_privs, set before it, is home's too. (A process with a filter of its
 * own moves no more: see refuse/seccomp_filter.) */
#include "prog.h"
int main(void) {
    window(0.6);
    printf("getppid before: %s\n", syscall(SYS_getppid) > 0 ? "a pid" : strerror(errno));
    forbid_getppid();
    printf("no_new_privs %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
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

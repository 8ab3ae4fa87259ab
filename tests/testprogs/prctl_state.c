/* Process state the kernel answers for through prctl, the same away as at home:
 * no_new_privs and dumpable (a guest's own kernel would say otherwise), the parent-death
 * signal and the child subreaper flag (about processes at home), and the name ps shows
 * at home. */
#include "prog.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
int main(void) {
    window(0.3);
    printf("no_new_privs %d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    printf("dumpable %d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    check(prctl(PR_SET_PDEATHSIG, SIGUSR1) == 0, "PR_SET_PDEATHSIG");
    int sig = -1;
    check(prctl(PR_GET_PDEATHSIG, &sig) == 0, "PR_GET_PDEATHSIG");
    printf("pdeathsig %d\n", sig);
    check(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER");
    int reaper = -1;
    check(prctl(PR_GET_CHILD_SUBREAPER, &reaper) == 0, "PR_GET_CHILD_SUBREAPER");
    printf("subreaper %d\n", reaper);
    check(prctl(PR_SET_NAME, "om-renamed") == 0, "PR_SET_NAME");
    char name[17] = {0};
    check(prctl(PR_GET_NAME, name) == 0, "PR_GET_NAME");
    char comm[64] = {0};
    int fd = open("/proc/self/comm", O_RDONLY);
    check(fd >= 0, "open comm");
    check(read(fd, comm, sizeof comm - 1) > 0, "read comm");
    close(fd);
    printf("name %s, comm %s", name, comm);
    spin(0.2);
    return 0;
}

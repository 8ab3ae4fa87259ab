/* Process attributes: umask, resource limits, name, personality, tid address. */
#include "prog.h"
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
int main(void) {
    umask(027);
    struct rlimit rl = {200, 300};
    check(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit");
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
    prctl(PR_SET_NAME, "attrs-renamed");
    personality(PER_LINUX | UNAME26);
    int *tid_addr = NULL;
    prctl(PR_GET_TID_ADDRESS, &tid_addr);
    window(0.6);
    int *tid_after = NULL;
    prctl(PR_GET_TID_ADDRESS, &tid_after);
    mode_t m = umask(0);
    getrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_CORE, &core);
    char name[32] = {0};
    prctl(PR_GET_NAME, name);
    printf("umask %03o nofile %ld/%ld core %ld name %s\n", m, (long)rl.rlim_cur, (long)rl.rlim_max, (long)core.rlim_cur, name);
    printf("personality %#x tid address same %d\n", personality(0xffffffff), tid_addr == tid_after && tid_addr != NULL);
    return 0;
}

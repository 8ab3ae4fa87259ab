/* Calls that name a process by pid, made with the process's own pid (getpid(), its
 * home pid wherever it runs): at home they are about itself, and so they must be away,
 * where the remote kernel may have no process of that number or another one. And a
 * personality set away is the one /proc/self/personality shows (home's /proc). */
#include "prog.h"
#include <sched.h>
#include <sys/personality.h>
#include <sys/syscall.h>

static const char *same(int r, int equal) {
    return r < 0 ? strerror(errno) : equal ? "the same" : "another answer";
}

/* The personality /proc/self/personality shows (hex). */
static long proc_personality(void) {
    FILE *f = fopen("/proc/self/personality", "r");
    check(f != NULL, "open /proc/self/personality");
    long v = -1;
    check(fscanf(f, "%lx", &v) == 1, "read /proc/self/personality");
    fclose(f);
    return v;
}

int main(void) {
    window(0.6);
    pid_t me = getpid();
    cpu_set_t a, b;
    check(sched_getaffinity(0, sizeof a, &a) == 0, "sched_getaffinity(0)");
    int r = sched_getaffinity(me, sizeof b, &b);
    printf("sched_getaffinity(own pid): %s\n", same(r, r == 0 && CPU_EQUAL(&a, &b)));
    r = sched_getscheduler(me);
    printf("sched_getscheduler(own pid): %s\n", same(r, r == sched_getscheduler(0)));
    struct sched_param p0, p1;
    check(sched_getparam(0, &p0) == 0, "sched_getparam(0)");
    r = sched_getparam(me, &p1);
    printf("sched_getparam(own pid): %s\n", same(r, r == 0 && p0.sched_priority == p1.sched_priority));
    void *h0, *h1;
    size_t l0, l1;
    check(syscall(SYS_get_robust_list, 0, &h0, &l0) == 0, "get_robust_list(0)");
    r = (int)syscall(SYS_get_robust_list, me, &h1, &l1);
    printf("get_robust_list(own pid): %s\n", same(r, r == 0 && h0 == h1 && l0 == l1));
    int pers = personality(0xffffffff);
    printf("personality %#x, /proc agrees %d\n", pers, proc_personality() == pers);
    check(personality(pers | ADDR_NO_RANDOMIZE) != -1, "set personality");
    pers = personality(0xffffffff);
    printf("personality %#x, /proc agrees %d\n", pers, proc_personality() == pers);
    return 0;
}

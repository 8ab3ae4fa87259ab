/* Kernel-registered per-thread areas: rseq (glibc registers it; the kernel keeps its
 * cpu_id current), the robust futex list and clear_child_tid. */
#include "prog.h"
#include <sched.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
int main(void) {
    void *head1; size_t len1;
    syscall(SYS_get_robust_list, 0, &head1, &len1);
    window(0.6);
    void *head2; size_t len2;
    syscall(SYS_get_robust_list, 0, &head2, &len2);
    int registered = __rseq_size > 0;
    int agrees = 1;
    if (registered) {
        struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
        for (int i = 0; i < 1000; i++) {
            int a = (int)rs->cpu_id, b = sched_getcpu();
            if (a < 0 || (a != b && (int)rs->cpu_id == b)) agrees = 0;
        }
        agrees = agrees && (int)rs->cpu_id >= 0;
    }
    printf("robust list same %d, rseq registered %d, rseq cpu_id valid %d\n", head1 == head2 && len1 == len2, registered, agrees);
    return 0;
}

/* An alternate signal stack: handlers run on it (some of them spin there, so the
 * checkpoint can land while on it). */
#include "prog.h"
#include <signal.h>
static char stack_mem[64 * 1024];
static volatile int on_alt, total;
static void handler(int sig) {
    (void)sig;
    char here;
    if (&here >= stack_mem && &here < stack_mem + sizeof stack_mem) on_alt++;
    total++;
    if (total == 10) window(0.03); /* on the alternate stack */
    else spin(0.03);
}
int main(void) {
    stack_t ss = {.ss_sp = stack_mem, .ss_size = sizeof stack_mem, .ss_flags = 0};
    check(sigaltstack(&ss, NULL) == 0, "sigaltstack");
    struct sigaction sa = {0};
    sa.sa_handler = handler;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    for (int i = 0; i < 20; i++) {
        raise(SIGUSR1);
        spin(0.01);
    }
    stack_t cur;
    sigaltstack(NULL, &cur);
    printf("handled %d, on the alternate stack %d\n", total, on_alt);
    printf("altstack same %d size %zu flags %d\n", cur.ss_sp == stack_mem, cur.ss_size, cur.ss_flags);
    return 0;
}

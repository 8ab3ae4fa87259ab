/* Regions with different protections, including PROT_NONE holding data and a guard page
 * that must still fault. */
#include "prog.h"
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
static sigjmp_buf jb;
static void on_segv(int sig) { (void)sig; siglongjmp(jb, 1); }
int main(void) {
    long pg = 4096;
    unsigned char *m = mmap(NULL, 16 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 16 * pg; i++) m[i] = (unsigned char)(i * 7);
    mprotect(m, 4 * pg, PROT_READ);
    mprotect(m + 4 * pg, 4 * pg, PROT_NONE);
    mprotect(m + 8 * pg, 4 * pg, PROT_READ | PROT_EXEC);
    window(0.6);
    signal(SIGSEGV, on_segv);
    int faulted = 0;
    if (sigsetjmp(jb, 1) == 0) { volatile unsigned char x = m[5 * pg]; (void)x; } else faulted = 1;
    int write_faulted = 0;
    if (sigsetjmp(jb, 1) == 0) { m[pg] = 1; } else write_faulted = 1;
    mprotect(m, 16 * pg, PROT_READ | PROT_WRITE);
    for (int i = 0; i < 16 * pg; i++) check(m[i] == (unsigned char)(i * 7), "contents");
    printf("PROT_NONE faults %d, read-only write faults %d, contents ok\n", faulted, write_faulted);
    return 0;
}

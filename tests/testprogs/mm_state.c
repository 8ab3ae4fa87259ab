/* Memory-wide state the kernel keeps: locked memory (VM_LOCKED), transparent huge pages
 * disabled, a membarrier registration (a private expedited barrier fails with EPERM
 * without it), and madvise advice (MADV_DONTFORK) on a mapping. After the window, each
 * must be as before: read from the process's own smaps and calls. */
#include "prog.h"
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
static int membarrier(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }
/* The VmFlags line of the mapping at `addr`, from /proc/self/smaps. */
static int has_flag(void *addr, const char *flag) {
    FILE *f = fopen("/proc/self/smaps", "r");
    check(f != NULL, "open smaps");
    char line[512];
    int in = 0, found = 0;
    unsigned long a = (unsigned long)addr;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') == line + strcspn(line, "-")) {
            in = a >= s && a < e;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            char pat[8];
            snprintf(pat, sizeof pat, " %s", flag);
            found = strstr(line, pat) != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}
int main(void) {
    char *locked = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(locked != MAP_FAILED, "mmap locked");
    memset(locked, 7, 8 * 4096);
    check(mlock(locked, 8 * 4096) == 0, "mlock");
    char *nofork = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(nofork != MAP_FAILED, "mmap nofork");
    check(madvise(nofork, 4 * 4096, MADV_DONTFORK) == 0, "madvise");
    check(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0, "PR_SET_THP_DISABLE");
    check(membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0, "membarrier register");
    window(0.6);
    printf("locked %d, dontfork %d, thp disabled %d, membarrier %d\n", has_flag(locked, "lo"),
           has_flag(nofork, "dc"), prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0),
           membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED));
    return 0;
}

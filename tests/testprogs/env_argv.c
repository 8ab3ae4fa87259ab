/* Arguments and environment, also as the kernel shows them (/proc/self/cmdline and
 * environ). The environ file is opened first and read last, so that a checkpoint or a
 * migration finds it open: restored, it must be this process's own; migrated, the home
 * process's, whose environment pages stay at home. */
#include "prog.h"
#include <fcntl.h>
int main(int argc, char **argv) {
    int env = open("/proc/self/environ", O_RDONLY);
    check(env >= 0, "open /proc/self/environ");
    window(0.6);
    for (int i = 1; i < argc; i++) printf("argv[%d] = %s\n", i, argv[i]);
    printf("OMTEST = %s\n", getenv("OMTEST") ? getenv("OMTEST") : "(unset)");
    char buf[4096];
    int fd = open("/proc/self/cmdline", O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    ssize_t want = 0;
    for (int i = 0; i < argc; i++) want += (ssize_t)strlen(argv[i]) + 1;
    check(n == want, "cmdline length");
    check(memcmp(buf, argv[0], (size_t)want) == 0, "cmdline bytes");
    n = read(env, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    int found = 0;
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) found |= strncmp(buf + i, "OMTEST=", 7) == 0;
    printf("cmdline matches argv, environ has OMTEST %d\n", found);
    return 0;
}

/* Shared helpers of the checkpoint test programs. Each program exercises one feature,
 * prints deterministic output, checks its own state and exits 0 ("FAIL ..." and exit 1
 * on a broken check). Time only decides how long a program waits, never what it prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

__attribute__((unused)) static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Busy for `sec` seconds (a window for the checkpoint to land in). */
__attribute__((unused)) static void spin(double sec) {
    double end = now() + sec;
    while (now() < end) {
    }
}

__attribute__((unused)) static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAIL %s (errno %d: %s)\n", what, errno, strerror(errno));
        fflush(stdout);
        exit(1);
    }
}

/* The runner's handshake. A runner that moves a program at a known point sets
 * OMTEST_SYNC to a directory of its own (at home); the program's window() then makes
 * the file "ready" there and stays busy until the runner, done with its moves, has made
 * "go" (a runner that moves nothing makes "go" beforehand). Without OMTEST_SYNC
 * (natively, or under a runner that moves at random moments), window(sec) is busy for
 * `sec` seconds. One window per run: a second one finds "go" and returns at once. The
 * directory is opened before main (before a program chroots or lowers its descriptor
 * limit) at a descriptor of 100 or above, which no program uses. */
static int sync_dir = -1;

__attribute__((constructor)) static void open_sync_dir(void) {
    const char *dir = getenv("OMTEST_SYNC");
    if (!dir || !*dir) return;
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    check(fd >= 0, "open OMTEST_SYNC");
    sync_dir = fcntl(fd, F_DUPFD_CLOEXEC, 100);
    check(sync_dir >= 0, "move OMTEST_SYNC's descriptor");
    close(fd);
}

/* The window in which a runner moves the program (see above). */
__attribute__((unused, noinline)) static void window(double sec) {
    if (sync_dir < 0) {
        spin(sec);
        return;
    }
    int fd = openat(sync_dir, "ready", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    check(fd >= 0, "make OMTEST_SYNC/ready");
    close(fd);
    double give_up = now() + 300;
    while (faccessat(sync_dir, "go", F_OK, 0) != 0) {
        check(now() < give_up, "no OMTEST_SYNC/go within 300 s");
        spin(0.002);
    }
}

__attribute__((unused)) static unsigned long mix(unsigned long h, unsigned long v) {
    h ^= v + 0x9e3779b97f4a7c15UL + (h << 6) + (h >> 2);
    return h;
}

/* Makes the fifo `in` in the working directory and returns it open for reading and
 * writing, after `sec` seconds busy (a window for the runner to move the program in);
 * the fifo appears under its name only then, which tells the runner the program is
 * ready. */
__attribute__((unused)) static int ready_fifo(double sec) {
    check(mkfifo("in.tmp", 0600) == 0, "mkfifo");
    int fd = open("in.tmp", O_RDWR);
    check(fd >= 0, "open fifo");
    spin(sec);
    check(rename("in.tmp", "in") == 0, "rename fifo");
    return fd;
}

/* Gives the process a seccomp filter of its own that fails getppid with EPERM (setting
 * no_new_privs first, as an unprivileged process must). */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
__attribute__((unused)) static void forbid_getppid(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
    check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0, "PR_SET_SECCOMP");
}

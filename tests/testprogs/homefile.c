/* homefile: reads and writes of home files keep their meaning away from home, where
 * they may be made for the process on a copy of its descriptor (remote's fast path).
 * Run in a directory holding `data` (16 KiB of pattern()) and `big` (64 KiB), with
 * descriptor 3 open on `data` for reading and descriptor 4 open on `log` for appending,
 * both by the shell that started it (so it shares their open file descriptions):
 *   1. 256 reads of 16 bytes from descriptor 3 see the pattern; its offset is then 4096,
 *      which the shell sees too once the program has ended;
 *   2. reading on to the end, then (after "step1", "go1") the line the shell appended
 *      meanwhile;
 *   3. "guest 1" and (after "step2", "go2", while the shell appended "home") "guest 2"
 *      appended through descriptor 4: nothing overwritten;
 *   4. `big` read 4 KiB in, truncated by the shell to "new" (after "step3", "go3"): the
 *      next read finds the end, fstat the new size, a read from the start "new".
 * The step files are made and the go files awaited in the working directory (at home,
 * however far the program is). After a spin of $HOMEFILE_SPIN seconds (default 0), in
 * which a runner can move it. Last it prints "reads made by the home process: N", the
 * change of /proc/self/io's syscr over steps 1-4 (reads the process made itself, at
 * home: 0 when they were made on its behalf, 256 and more natively). */
#include "prog.h"

static char pattern(long i) { return (char)('a' + (i * 7 + i / 26) % 26); }

static long syscr(void) {
    char buf[512];
    int fd = open("/proc/self/io", O_RDONLY);
    check(fd >= 0, "open /proc/self/io");
    ssize_t n = read(fd, buf, sizeof buf - 1);
    check(n > 0, "read /proc/self/io");
    close(fd);
    buf[n] = 0;
    char *at = strstr(buf, "syscr: ");
    check(at != NULL, "syscr in /proc/self/io");
    return atol(at + 7);
}

/* Tells the shell `step` and waits for its `go`. */
static void handshake(const char *step, const char *go) {
    int fd = open(step, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    check(fd >= 0, step);
    close(fd);
    double give_up = now() + 60;
    while (access(go, F_OK) != 0) {
        check(now() < give_up, go);
        usleep(5000);
    }
}

static void write_all(int fd, const char *s) {
    check(write(fd, s, strlen(s)) == (ssize_t)strlen(s), "write to descriptor 4");
}

int main(void) {
    const char *secs = getenv("HOMEFILE_SPIN");
    spin(secs ? atof(secs) : 0);
    long before = syscr();

    /* 1. Small reads on the shell's descriptor. */
    char buf[4096];
    for (int i = 0; i < 256; i++) {
        check(read(3, buf, 16) == 16, "read 16 bytes of data");
        for (int j = 0; j < 16; j++) check(buf[j] == pattern(i * 16 + j), "data's bytes");
    }
    off_t at = lseek(3, 0, SEEK_CUR);
    check(at == 4096, "offset 4096 after 256 reads");
    printf("read 4096 bytes in 16-byte reads, offset %ld\n", (long)at);

    /* 2. To the end, then what the shell appended. */
    long got = 0;
    ssize_t n;
    while ((n = read(3, buf, sizeof buf)) > 0) got += n;
    check(n == 0 && got == 16384 - 4096, "the rest of data");
    handshake("step1", "go1");
    n = read(3, buf, sizeof buf - 1);
    check(n > 0, "read what the shell appended");
    buf[n] = 0;
    printf("after the end, appended at home: %s", buf);

    /* 3. Appends interleaved with the shell's. */
    write_all(4, "guest 1\n");
    handshake("step2", "go2");
    write_all(4, "guest 2\n");
    printf("appended twice\n");

    /* 4. Truncated at home while read here. */
    int big = open("big", O_RDONLY | O_CLOEXEC);
    check(big >= 0, "open big");
    check(read(big, buf, 4096) == 4096, "read 4 KiB of big");
    handshake("step3", "go3");
    n = read(big, buf, sizeof buf);
    struct stat st;
    check(fstat(big, &st) == 0, "fstat big");
    printf("after truncation at home: read %zd, size %ld", n, (long)st.st_size);
    n = pread(big, buf, sizeof buf - 1, 0);
    check(n >= 0, "pread big");
    buf[n] = 0;
    printf(", from the start \"%s\"\n", buf);
    close(big);

    printf("reads made by the home process: %ld\n", syscr() - before - 1);
    return 0;
}

/* Blocked in read() on standard input; the input arrives after the restore. */
#include "prog.h"
#include <ctype.h>
int main(void) {
    char buf[256];
    long total = 0, lines = 0;
    printf("waiting for input\n");
    fflush(stdout);
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            buf[i] = (char)toupper((unsigned char)buf[i]);
            lines += buf[i] == '\n';
        }
        fwrite(buf, 1, (size_t)n, stdout);
        total += n;
    }
    check(n == 0, "read error");
    printf("%ld bytes, %ld lines\n", total, lines);
    return 0;
}

/* fork after the window: the child must see the whole heap (lazily restored memory
 * included) and its exit status must reach the parent. */
#include "prog.h"
#include <sys/wait.h>
#define N (32UL << 20)
int main(void) {
    unsigned char *p = malloc(N);
    for (size_t i = 0; i < N; i++) p[i] = (unsigned char)(i * 31 + 7);
    window(0.6);
    pid_t c = fork();
    if (c == 0) {
        unsigned long h = 0;
        for (size_t i = 0; i < N; i += 64) h = mix(h, p[i]);
        printf("child hash %016lx\n", h);
        fflush(stdout);
        _exit(h == 0 ? 1 : 42);
    }
    int st;
    check(waitpid(c, &st, 0) == c, "waitpid");
    unsigned long h = 0;
    for (size_t i = 0; i < N; i += 64) h = mix(h, p[i]);
    printf("parent hash %016lx, child exit %d\n", h, WEXITSTATUS(st));
    return 0;
}

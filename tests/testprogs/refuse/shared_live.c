/* Refused: shared anonymous memory that a live child maps too (a copy elsewhere would
 * no longer be shared with it). */
#include "../prog.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
int main(void) {
    char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    check(p != MAP_FAILED, "mmap");
    pid_t child = fork();
    check(child >= 0, "fork");
    if (child == 0) {
        strcpy(p, "shared");
        for (;;) pause();
    }
    while (strcmp((const char *)(volatile char *)p, "shared") != 0) {
        __sync_synchronize();
    }
    spin(1.2);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    printf("child wrote %s\n", p);
    return 0;
}

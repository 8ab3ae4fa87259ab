/* launch PROG ARGS...: run PROG with every descriptor above 2 closed, so that the
 * program's descriptor table is exactly what it opens itself. */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: launch PROG ARGS...\n"); return 2; }
    closefrom(3);
    execv(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}

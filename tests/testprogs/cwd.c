/* The working directory: relative paths still resolve after the window. */
#include "prog.h"
#include <sys/stat.h>
int main(void) {
    mkdir("sub", 0755);
    check(chdir("sub") == 0, "chdir");
    FILE *f = fopen("note.txt", "w");
    fputs("written in sub\n", f);
    fclose(f);
    window(0.6);
    char buf[64] = {0};
    f = fopen("note.txt", "r");
    check(f != NULL, "relative open");
    check(fgets(buf, sizeof buf, f) != NULL, "read");
    fclose(f);
    char cwd[4096];
    check(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    const char *base = strrchr(cwd, '/') + 1;
    printf("cwd ends in %s, note says: %s", base, buf);
    return 0;
}

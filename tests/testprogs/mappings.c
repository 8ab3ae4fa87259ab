/* Many anonymous mappings with holes; after the window some are dropped (MADV_DONTNEED),
 * some moved (mremap) and some unmapped: contents must follow exactly. */
#include "prog.h"
#include <sys/mman.h>
#define M 60
int main(void) {
    unsigned char *maps[M];
    size_t sizes[M];
    for (int i = 0; i < M; i++) {
        sizes[i] = (size_t)(1 + i % 7) * 4096 * 3;
        maps[i] = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        check(maps[i] != MAP_FAILED, "mmap");
        for (size_t j = 0; j < sizes[i]; j += 512) maps[i][j] = (unsigned char)(i + j / 512);
    }
    for (int i = 0; i < M; i += 5) munmap(maps[i], sizes[i]), maps[i] = NULL;
    window(0.6);
    unsigned long h = 0;
    for (int i = 0; i < M; i++) {
        if (!maps[i]) continue;
        if (i % 5 == 1) {
            madvise(maps[i], sizes[i], MADV_DONTNEED);
            for (size_t j = 0; j < sizes[i]; j++) check(maps[i][j] == 0, "dropped page not zero");
        } else if (i % 5 == 2) {
            unsigned char *n = mremap(maps[i], sizes[i], sizes[i] * 2, MREMAP_MAYMOVE);
            check(n != MAP_FAILED, "mremap");
            maps[i] = n;
            for (size_t j = 0; j < sizes[i]; j += 512) check(n[j] == (unsigned char)(i + j / 512), "moved contents");
            for (size_t j = sizes[i]; j < 2 * sizes[i]; j++) check(n[j] == 0, "grown part");
        } else {
            for (size_t j = 0; j < sizes[i]; j += 512) h = mix(h, maps[i][j]);
        }
    }
    printf("kept mappings hash %016lx\n", h);
    return 0;
}

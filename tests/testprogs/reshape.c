/* Mappings reshaped the moment a file named `go` appears in the working directory
 * (after a lazy restore, while a 64 MiB ballast below them keeps the pager's background
 * pass busy, so that their pages are still to come): one moved elsewhere and grown, one moved onto another, one shrunk in
 * place, one dropped (MADV_DONTNEED), one unmapped. Each must then hold exactly what it
 * would natively. */
#include "prog.h"
#include <sys/mman.h>

#define PG 4096UL
#define T (16 * PG)

static unsigned char *map(size_t len, int prot) {
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(p != MAP_FAILED, "mmap");
    return p;
}

/* Byte j of mapping `tag`: differs from page to page and mapping to mapping. */
static unsigned char val(int tag, size_t j) {
    return (unsigned char)(tag * 37 + j / PG * 7 + j);
}

static void fill(unsigned char *p, int tag) {
    for (size_t j = 0; j < T; j++) p[j] = val(tag, j);
}

static void same(const unsigned char *p, size_t len, int tag, const char *what) {
    for (size_t j = 0; j < len; j++) check(p[j] == val(tag, j), what);
}

static void zero(const unsigned char *p, size_t len, const char *what) {
    for (size_t j = 0; j < len; j++) check(p[j] == 0, what);
}

int main(void) {
    unsigned char *moved = map(T, PROT_READ | PROT_WRITE);
    unsigned char *onto = map(T, PROT_READ | PROT_WRITE);
    unsigned char *target = map(T, PROT_READ | PROT_WRITE);
    unsigned char *shrunk = map(T, PROT_READ | PROT_WRITE);
    unsigned char *dropped = map(T, PROT_READ | PROT_WRITE);
    unsigned char *gone = map(T, PROT_READ | PROT_WRITE);
    unsigned char *kept = map(T, PROT_READ | PROT_WRITE);
    unsigned char *all[] = {moved, onto, target, shrunk, dropped, gone, kept};
    for (int i = 0; i < 7; i++) fill(all[i], i + 1);
    const size_t blen = 64UL << 20;
    unsigned char *ballast = map(blen, PROT_READ | PROT_WRITE);
    for (size_t j = 0; j < blen; j += PG) ballast[j] = (unsigned char)(j / PG + 1);

    double end = now() + 30;
    /* A file, not a signal: the kernel writing a signal frame onto a lost stack page
     * would make that SIGSEGV, where the process's own touch gives SIGBUS. */
    while (access("go", F_OK) != 0) check(now() < end, "no file go within 30 s");

    /* Moved to a fresh place and grown there. */
    unsigned char *dst = map(2 * T, PROT_NONE);
    unsigned char *m = mremap(moved, T, 2 * T, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    check(m == dst, "mremap elsewhere");
    /* Moved onto another mapping, whose own contents go. */
    check(mremap(onto, T, T, MREMAP_MAYMOVE | MREMAP_FIXED, target) == target, "mremap onto");
    /* Shrunk in place. */
    check(mremap(shrunk, T, T / 2, 0) == shrunk, "mremap shrink");
    check(madvise(dropped, T, MADV_DONTNEED) == 0, "madvise");
    check(munmap(gone, T) == 0, "munmap");

    same(m, T, 1, "moved contents");
    zero(m + T, T, "grown part not zero");
    same(target, T, 2, "contents moved onto another mapping");
    same(shrunk, T / 2, 4, "shrunk mapping's contents");
    zero(dropped, T, "dropped page not zero");
    same(kept, T, 7, "kept contents");
    unsigned long h = 0;
    for (size_t j = 0; j < blen; j += PG) {
        check(ballast[j] == (unsigned char)(j / PG + 1), "ballast contents");
        h = mix(h, ballast[j]);
    }
    printf("reshaped: moved, moved onto another, shrunk, dropped, unmapped; ballast %016lx\n", h);
    return 0;
}

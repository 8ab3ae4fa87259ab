/* A small shared library for the test of a library that differs between nodes: built
 * plainly at the home node, and with -DVARIANT (other constants, other code, the same
 * symbols) at another node at the same path. A process that moved there must keep using
 * the home node's bytes. */
#ifndef VARIANT
#define MUL 6364136223846793005UL
#define ADD 1442695040888963407UL
static const char banner[] = "omlib home build";
#else
#define MUL 2862933555777941757UL
#define ADD 3037000493UL
static const char banner[] = "omlib VARIANT build, other bytes at the same path";
#endif
unsigned long omlib_step(unsigned long x) { return x * MUL + ADD; }
const char *omlib_banner(void) { return banner; }

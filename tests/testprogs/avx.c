/* AVX registers (ymm0-ymm15) loaded with patterns, kept through a long register-only
 * loop, then compared: a checkpoint in the loop must carry the whole XSAVE state. */
#include "prog.h"
#include <stdint.h>
int main(void) {
    static uint8_t in[16][32] __attribute__((aligned(32))), out[16][32] __attribute__((aligned(32)));
    for (int r = 0; r < 16; r++)
        for (int b = 0; b < 32; b++) in[r][b] = (uint8_t)(r * 37 + b * 11 + 1);
    for (int round = 0; round < 3; round++) {
        /* About 1 s a round here: long enough for a loaded machine to make every hop of an
         * eager migration while it runs. */
        unsigned long n = 3500000000UL;
        __asm__ volatile(
            "vmovdqa 0(%1), %%ymm0\n vmovdqa 32(%1), %%ymm1\n vmovdqa 64(%1), %%ymm2\n vmovdqa 96(%1), %%ymm3\n"
            "vmovdqa 128(%1), %%ymm4\n vmovdqa 160(%1), %%ymm5\n vmovdqa 192(%1), %%ymm6\n vmovdqa 224(%1), %%ymm7\n"
            "vmovdqa 256(%1), %%ymm8\n vmovdqa 288(%1), %%ymm9\n vmovdqa 320(%1), %%ymm10\n vmovdqa 352(%1), %%ymm11\n"
            "vmovdqa 384(%1), %%ymm12\n vmovdqa 416(%1), %%ymm13\n vmovdqa 448(%1), %%ymm14\n vmovdqa 480(%1), %%ymm15\n"
            "1: dec %0\n jnz 1b\n"
            "vmovdqa %%ymm0, 0(%2)\n vmovdqa %%ymm1, 32(%2)\n vmovdqa %%ymm2, 64(%2)\n vmovdqa %%ymm3, 96(%2)\n"
            "vmovdqa %%ymm4, 128(%2)\n vmovdqa %%ymm5, 160(%2)\n vmovdqa %%ymm6, 192(%2)\n vmovdqa %%ymm7, 224(%2)\n"
            "vmovdqa %%ymm8, 256(%2)\n vmovdqa %%ymm9, 288(%2)\n vmovdqa %%ymm10, 320(%2)\n vmovdqa %%ymm11, 352(%2)\n"
            "vmovdqa %%ymm12, 384(%2)\n vmovdqa %%ymm13, 416(%2)\n vmovdqa %%ymm14, 448(%2)\n vmovdqa %%ymm15, 480(%2)\n"
            "vzeroupper\n"
            : "+r"(n) : "r"(in), "r"(out)
            : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
              "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
        check(memcmp(in, out, sizeof in) == 0, "ymm registers changed");
        printf("round %d: 16 ymm registers intact\n", round);
        for (int r = 0; r < 16; r++)
            for (int b = 0; b < 32; b++) in[r][b] = (uint8_t)(in[r][b] * 3 + round);
    }
    return 0;
}

/*
 * expf_check.c -- the AVX-512 expf of the core (math.c, ouro_expf16) against
 * the C library's expf over all 2^32 float inputs, bit for bit (NaN inputs
 * must give NaN).  A one-off check for a new C library or compiler; the
 * suite's test_math checks a spread of inputs on every run.  About a minute
 * on one core.
 *
 *   cc -std=c11 -O2 -Icore test/bench/expf_check.c build/libouro.a -lcjson -lutf8proc -lm -fopenmp
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "internal.h"

int main(void)
{
    printf("SIMD level %s\n", ouro_simd_level());
    uint64_t bad = 0;
    for (uint64_t b0 = 0; b0 < (1ull << 32); b0 += 16) {
        float x[16], y[16];
        for (int i = 0; i < 16; i++) {
            uint32_t u = (uint32_t)(b0 + i);
            memcpy(&x[i], &u, 4);
        }
        ouro_expf16(y, x);
        for (int i = 0; i < 16; i++) {
            float r = expf(x[i]);
            if (isnan(r) ? !isnan(y[i]) : memcmp(&r, &y[i], 4) != 0) {
                if (bad < 10)
                    printf("differs: x %a (0x%08x): expf %a, ouro %a\n", x[i], (uint32_t)(b0 + i), r, y[i]);
                bad++;
            }
        }
    }
    printf("%llu of 2^32 inputs differ\n", (unsigned long long)bad);
    return bad != 0;
}

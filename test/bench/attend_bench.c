/*
 * attend_bench.c -- the attention kernels of one head over a prompt, one
 * thread: every row of an N-token prompt attends to its own position and
 * those before it, four rows at a time (attend4), two at a time (attend2) or
 * one at a time (attend), as attention() in core/forward.c runs a prompt.
 * Prints the best of 5 timings of each, in microseconds per head, and the
 * multiply-adds' rate (4 * head_dim flops per row and position: scores and
 * values).
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -fopenmp -Icore test/bench/attend_bench.c \
 *      build/libouro.a -lcjson -lutf8proc -lm -o build/bench/attend_bench
 *   build/bench/attend_bench [N [head_dim [f16 [offset]]]]   (defaults 256 128 0 0)
 *
 * offset puts every buffer that many bytes past a 64-byte boundary (16 is
 * where glibc's malloc puts large blocks; a session aligns them to 64).
 *
 * OURO_SIMD=avx2 or generic times another level's kernels.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* n bytes `off` bytes past a 64-byte boundary (off 0: aligned, as a session
 * allocates its cache and rows; 16: where glibc's malloc puts large blocks).
 * The blocks live until the program exits. */
static void *amalloc(size_t n, size_t off)
{
    char *p = aligned_alloc(64, (n + off + 63) / 64 * 64);
    return p ? p + off : NULL;
}

int main(int argc, char **argv)
{
    int N = argc > 1 ? atoi(argv[1]) : 256, hd = argc > 2 ? atoi(argv[2]) : 128;
    int f16 = argc > 3 ? atoi(argv[3]) : 0, off = argc > 4 ? atoi(argv[4]) : 0;
    if (N < 4 || N % 4 != 0 || hd < 2 || hd > 4096 || off < 0 || off > 60 || off % 4 != 0) {
        fprintf(stderr, "usage: attend_bench [N (a multiple of 4) [head_dim [f16 0|1 "
                        "[offset 0..60, a multiple of 4]]]]\n");
        return 2;
    }
    ouro_kv_kernels k = ouro_kv_kernels_for(f16);
    size_t el = f16 ? 2 : 4, stride = (size_t)hd * el;
    char *kc = amalloc((size_t)N * stride, off), *vc = amalloc((size_t)N * stride, off);
    float *src = amalloc((size_t)hd * sizeof(float), off);
    float *q = amalloc((size_t)N * hd * sizeof(float), off);
    float *o = amalloc((size_t)N * hd * sizeof(float), off);
    float *sc = amalloc((size_t)4 * N * sizeof(float), off);
    if (!kc || !vc || !src || !q || !o || !sc) {
        fprintf(stderr, "attend_bench: out of memory\n");
        return 1;
    }
    for (int p = 0; p < N; p++) {
        for (int j = 0; j < hd; j++)
            src[j] = sinf(0.3f * (float)p + (float)j);
        ouro_kv_store(kc + (size_t)p * stride, f16, src, 1.0f, hd);
        for (int j = 0; j < hd; j++)
            src[j] = cosf(0.7f * (float)p + (float)j);
        ouro_kv_store(vc + (size_t)p * stride, f16, src, 1.0f, hd);
    }
    for (size_t i = 0; i < (size_t)N * hd; i++)
        q[i] = sinf(0.01f * (float)i);
    float scale = 1.0f / sqrtf((float)hd);
    double flops = 0;
    for (int i = 0; i < N; i++)
        flops += 4.0 * hd * (i + 1);
    int reps = (int)(2e8 / flops) + 1;
    static const char *names[] = { "attend4", "attend2", "attend" };
    printf("prompt of %d rows, head_dim %d, %s cache, %s, buffers %d bytes past 64\n", N, hd,
           f16 ? "f16" : "f32", ouro_simd_level(), off);
    for (int way = 0; way < 3; way++) {
        double best = 1e30;
        for (int t = 0; t < 5; t++) {
            double t0 = now();
            for (int r = 0; r < reps; r++)
                for (int i = 0; i < N; i += 4) {
                    float *oi = o + (size_t)i * hd;
                    const float *qi = q + (size_t)i * hd;
                    if (way == 0) {
                        float *oo[4] = { oi, oi + hd, oi + 2 * hd, oi + 3 * hd };
                        const float *qq[4] = { qi, qi + hd, qi + 2 * hd, qi + 3 * hd };
                        float *ss[4] = { sc, sc + N, sc + 2 * N, sc + 3 * N };
                        int n[4] = { i + 1, i + 2, i + 3, i + 4 };
                        k.attend4(oo, qq, kc, vc, stride, n, scale, ss, hd);
                    } else if (way == 1) {
                        for (int a = 0; a < 4; a += 2)
                            k.attend2(oi + a * hd, oi + (a + 1) * hd, qi + a * hd,
                                      qi + (a + 1) * hd, kc, vc, stride, i + a + 1, i + a + 2,
                                      scale, sc, sc + N, hd);
                    } else {
                        for (int a = 0; a < 4; a++)
                            k.attend(oi + a * hd, qi + a * hd, kc, vc, stride, i + a + 1, scale,
                                     sc, hd);
                    }
                }
            double dt = (now() - t0) / reps;
            best = dt < best ? dt : best;
        }
        printf("  %-8s %9.1f us per head  %6.1f GFLOP/s\n", names[way], best * 1e6,
               flops / best / 1e9);
    }
    return 0;
}

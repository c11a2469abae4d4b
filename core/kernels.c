/*
 * kernels.c -- the matrix products of the forward pass.
 *
 * Every matrix product of ouro goes through ouro_matmul(): y = x . W^T for a
 * batch of rows x, with W stored as the checkpoint stores it (F32, F16 or
 * BF16, row-major (d_out, d_in)) and converted to f32 on the fly; sums are
 * accumulated in f32.  The SIMD path (AVX-512 F+BW, AVX2+FMA+F16C, or
 * portable C) is chosen at run time from what the processor reports (the
 * x86-64 paths are compiled on x86-64 only: OURO_X86_SIMD in base.h); the
 * environment variable OURO_SIMD=generic|avx2|avx512 lowers it (for tests and
 * for comparing paths).  On AVX-512 the product is register-tiled and
 * cache-blocked (see "AVX-512 blocked product"); the AVX2 and portable paths
 * are one dot product per (row, token).  Where the processor has AMX tiles
 * (ouro_cpu_amx: Sapphire Rapids and later, OURO_SIMD unset or "amx"), bf16
 * weights go to the tile product instead (see "AMX tile product for BF16
 * weights"): for exact precision x is split into three bf16 pieces whose
 * sum is x, so every product is exact and every sum f32, as on the FMA
 * paths (measured against double on the shapes of test_amx.c: at most 0.1
 * of the f32 summation bound (d_in + 1) 2^-24 sum|w x|); exact products of
 * one token stay on AVX-512 (as fast: memory-bound), bf16 precision and
 * the invariant order take the tiles for every n.  test/bench/matmul_bench.c
 * times the products and, with --check, compares every path with a
 * double-precision reference.
 * Q8 and Q4 weights (written by `ouro convert`) are handed to core/quant.c
 * and core/quant4.c.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#ifdef OURO_X86_SIMD
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

void ouro_row_to_f32(float *out, const void *w, ouro_dtype dt, size_t row, int cols)
{
    size_t off = row * (size_t)cols;
    if (dt == OURO_Q8) {
        ouro_q8_row_to_f32(out, w, row, cols);
    } else if (dt == OURO_Q4) {
        ouro_q4_row_to_f32(out, w, row, cols);
    } else if (dt == OURO_F32) {
        memcpy(out, (const float *)w + off, (size_t)cols * sizeof(float));
    } else if (dt == OURO_F16) {
        const uint16_t *p = (const uint16_t *)w + off;
        for (int j = 0; j < cols; j++)
            out[j] = ouro_f16_to_f32(p[j]);
    } else {
        const uint16_t *p = (const uint16_t *)w + off;
        for (int j = 0; j < cols; j++)
            out[j] = ouro_bf16_to_f32(p[j]);
    }
}

/* ------------------------------------------------------------------------
 * Dot products: portable C
 * ------------------------------------------------------------------------ */

typedef float (*dot_fn)(const void *w, const float *x, int n);

static float dot_f32_c(const void *wv, const float *x, int n)
{
    const float *w = wv;
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += w[i + j] * x[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

static float dot_f16_c(const void *wv, const float *x, int n)
{
    const uint16_t *w = wv;
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += ouro_f16_to_f32(w[i + j]) * x[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += ouro_f16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_bf16_c(const void *wv, const float *x, int n)
{
    const uint16_t *w = wv;
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += ouro_bf16_to_f32(w[i + j]) * x[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += ouro_bf16_to_f32(w[i]) * x[i];
    return s;
}

#ifdef OURO_X86_SIMD   /* the x86-64 paths, to the run-time dispatch */
/* ------------------------------------------------------------------------
 * Dot products: AVX2 + FMA + F16C
 * ------------------------------------------------------------------------ */

#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

AVX2_TARGET static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

AVX2_TARGET static float dot_f32_avx2(const void *wv, const float *x, int n)
{
    const float *w = wv;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

AVX2_TARGET static float dot_f16_avx2(const void *wv, const float *x, int n)
{
    const uint16_t *w = wv;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
    }
    float s = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        s += ouro_f16_to_f32(w[i]) * x[i];
    return s;
}

AVX2_TARGET static inline __m256 bf16x8_to_f32(const uint16_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

AVX2_TARGET static float dot_bf16_avx2(const void *wv, const float *x, int n)
{
    const uint16_t *w = wv;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(bf16x8_to_f32(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(bf16x8_to_f32(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(bf16x8_to_f32(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum256(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        s += ouro_bf16_to_f32(w[i]) * x[i];
    return s;
}

/* ------------------------------------------------------------------------
 * Dot products: AVX-512F
 * ------------------------------------------------------------------------ */

#define AVX512_TARGET __attribute__((target("avx512f")))

AVX512_TARGET static float dot_f32_avx512(const void *wv, const float *x, int n)
{
    const float *w = wv;
    __m512 a = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16)
        a = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a);
    float s = _mm512_reduce_add_ps(a);
    for (; i < n; i++)
        s += w[i] * x[i];
    return s;
}

AVX512_TARGET static float dot_f16_avx512(const void *wv, const float *x, int n)
{
    const uint16_t *w = wv;
    __m512 a = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 wf = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i)));
        a = _mm512_fmadd_ps(wf, _mm512_loadu_ps(x + i), a);
    }
    float s = _mm512_reduce_add_ps(a);
    for (; i < n; i++)
        s += ouro_f16_to_f32(w[i]) * x[i];
    return s;
}

AVX512_TARGET static float dot_bf16_avx512(const void *wv, const float *x, int n)
{
    const uint16_t *w = wv;
    __m512 a = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i)));
        a = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), _mm512_loadu_ps(x + i), a);
    }
    float s = _mm512_reduce_add_ps(a);
    for (; i < n; i++)
        s += ouro_bf16_to_f32(w[i]) * x[i];
    return s;
}

#endif /* OURO_X86_SIMD */

/* ------------------------------------------------------------------------
 * Run-time dispatch
 * ------------------------------------------------------------------------ */

static dot_fn pick_dot(ouro_dtype dt)
{
    static const dot_fn table[3][3] = {
        /* F32            F16             BF16 */
        { dot_f32_c,      dot_f16_c,      dot_bf16_c },
#ifdef OURO_X86_SIMD
        { dot_f32_avx2,   dot_f16_avx2,   dot_bf16_avx2 },
        { dot_f32_avx512, dot_f16_avx512, dot_bf16_avx512 },
#endif
    };
    return table[ouro_simd() - 1][dt];   /* generic (row 0) where there are no x86 paths */
}

#ifdef OURO_X86_SIMD
/* ------------------------------------------------------------------------
 * AVX-512 blocked product
 *
 * y (n, d_out) = x (n, d_in) . W^T in the dot-product form: a microkernel
 * holds MR x NR accumulators (MR weight rows by NR tokens, 16 f32 lanes each
 * along d_in), converts each 16-element piece of a weight row to f32 once and
 * multiplies it with the NR tokens, and reduces the lanes at the end.
 *
 * Cache blocking: d_in is cut into blocks of KB elements; for each block the
 * tokens' slice of x is packed into a small buffer on the stack (KB x NR f32,
 * stays in L1), rows are walked in blocks of RB (RB x KB weights, stay in L2
 * while every token tile passes over them), so each weight is read from
 * memory once per call.  Partial sums of later d_in blocks are added to y.
 *
 * BF16 rows are read 32 elements (one 64-byte load) at a time: as 16 32-bit
 * lanes, lane j holds element 2j in its low half and 2j + 1 in its high
 * half, so a shift left by 16 gives the even elements as f32 and a mask the
 * odd ones, with no shuffle.  The packed x is stored in that order (per 32
 * elements: the 16 even ones, then the 16 odd ones).  F16 and F32 keep the
 * natural order.  The d_in tail (d_in % 32) uses masked loads, and the packed
 * x is zero-padded to a multiple of 32.
 *
 * Threads take the rows of W in chunks of MM_CHUNK (x packed once for all of
 * them, see "Products"), so at n = 1 each chunk is streamed from start to end.
 *
 * One-token decode.  At n = 1 the product is bound by how fast one core reads
 * the weights, and that depends on the pattern: one stream in memory order
 * reads faster than several interleaved ones (four rows of 4 KiB at a time,
 * the MM_MR kernel).  So a single token takes the rows one by one with the
 * one-row kernel, which prefetches MM_PF1 bytes ahead; past the end of a row
 * that is the start of the next one, the next call's.  Each row's sums are
 * those of the MM_MR kernel (the same two chains per row), so the bits do not
 * change.  Measured on Ouro-1.4B shapes, bf16 weights, exact precision,
 * 2 threads: 25.1 -> 27.2 GB/s over a decode step's products.  The bf16
 * kernels below (precision bf16) do the same at n = 1: on an AMD EPYC (Zen 4)
 * the products of 8 layers read 19.0-19.6 -> 26.6-27.0 GB/s on one thread,
 * 28.9-30.6 -> 33.2-34.4 on two.
 *
 * Order of the sums.  The product above is fastest when the order depends on
 * the tokens of the call: the d_in block KB grows as fewer tokens share a
 * tile (up to all of d_in at n = 1), and a single token keeps two chains of
 * accumulators (even and odd 16-element pieces) that are added at the end.
 * So a token's sums, and every activation after them, change in the last
 * bits with the number of tokens processed together.  OURO_PRECISION_INVARIANT
 * (classification) fixes both: KB is MM_KB_INV whatever the tiles, and one
 * token takes the same single chain as a token of a tile; each output element
 * is then summed in one order whatever the row count or the token's place in
 * the call.  The tiles, the row blocks and the threads never change the
 * order (each (row, token) sum is computed whole by one kernel call per KB
 * block, blocks added in order).  Decode keeps the faster order.
 * ------------------------------------------------------------------------ */

#define AVX512_MM_TARGET __attribute__((target("avx512f,avx512bw")))
#define MM_MR 4          /* weight rows per microkernel */
#define MM_NR 6          /* tokens per microkernel (kernels exist for 1 .. 6) */
#define MM_XBUF 8192     /* floats of packed x per thread (32 KiB, on the stack) */
#define MM_RB 64         /* rows per cache block */
#ifndef MM_PF
#define MM_PF 1024       /* software prefetch distance at decode, bytes */
#endif
#ifndef MM_PF1
#define MM_PF1 3072      /* the same for the one-row decode kernel (one stream), bytes */
#endif
#define MM_KB_INV (MM_XBUF / MM_NR / 32 * 32)   /* d_in block of the invariant order (1344) */
#define MM_KB 2048       /* largest d_in block of several tokens (and the bf16 order's block) */

/* Half h (elements 16h .. 16h+15 of the 32 at p) of a weight piece as f32;
 * rem < 32: only the first rem elements are read, the rest are 0. */
AVX512_MM_TARGET static inline __attribute__((always_inline))
__m512 w_half(ouro_dtype dt, const char *p, int h, int rem)
{
    if (dt == OURO_BF16) {
        __m512i v = rem == 32 ? _mm512_loadu_si512(p)
                              : _mm512_maskz_loadu_epi16((__mmask32)((1ull << rem) - 1), p);
        return h == 0 ? _mm512_castsi512_ps(_mm512_slli_epi32(v, 16))
                      : _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
    }
    if (dt == OURO_F16) {
        if (rem == 32)
            return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32 * h)));
        __m512i v = _mm512_maskz_loadu_epi16((__mmask32)((1ull << rem) - 1), p);
        return _mm512_cvtph_ps(h == 0 ? _mm512_castsi512_si256(v) : _mm512_extracti64x4_epi64(v, 1));
    }
    if (rem == 32)
        return _mm512_loadu_ps(p + 64 * h);
    int r = rem - 16 * h;
    __mmask16 m = r >= 16 ? 0xffff : r <= 0 ? 0 : (__mmask16)((1u << r) - 1);
    return _mm512_maskz_loadu_ps(m, p + 64 * h);
}

/* Accumulates mr rows x nr tokens over kv elements (w: row 0 at element 0 of
 * the block, rows ldw bytes apart; xp: nr packed tokens, kpad floats apart),
 * then stores (or adds, when add) the sums to y[t * ldy + r].  split (nr = 1
 * only): two chains per row, the decode order; otherwise one chain per
 * (row, token), the same order for every nr. */
AVX512_MM_TARGET static inline __attribute__((always_inline))
void mm_kernel(ouro_dtype dt, int mr, int nr, int split, const char *w, size_t ldw, const float *xp,
               int kpad, int kv, float *y, size_t ldy, int add)
{
    __m512 acc[MM_MR][MM_NR];
    size_t esz = dt == OURO_F32 ? 4 : 2;
    #pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        #pragma GCC unroll 8
        for (int t = 0; t < MM_NR; t++)
            acc[r][t] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= kv; k += 32) {
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512 xv[MM_NR];
            #pragma GCC unroll 8
            for (int t = 0; t < nr; t++)
                xv[t] = _mm512_load_ps(xp + (size_t)t * kpad + k + 16 * h);
            #pragma GCC unroll 4
            for (int r = 0; r < mr; r++) {
                __m512 wv = w_half(dt, w + r * ldw + k * esz, h, 32);
                if (split) {   /* decode: the two halves in separate chains */
                    if (h == 0 && (mr == 1 ? MM_PF1 > 0 : MM_PF > 0))
                        _mm_prefetch(w + r * ldw + k * esz + (mr == 1 ? MM_PF1 : MM_PF), _MM_HINT_T0);
                    acc[r][h] = _mm512_fmadd_ps(wv, xv[0], acc[r][h]);
                    continue;
                }
                #pragma GCC unroll 8
                for (int t = 0; t < nr; t++)
                    acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
            }
        }
    }
    if (k < kv) {
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512 xv[MM_NR];
            #pragma GCC unroll 8
            for (int t = 0; t < nr; t++)
                xv[t] = _mm512_load_ps(xp + (size_t)t * kpad + k + 16 * h);
            #pragma GCC unroll 4
            for (int r = 0; r < mr; r++) {
                __m512 wv = w_half(dt, w + r * ldw + k * esz, h, kv - k);
                #pragma GCC unroll 8
                for (int t = 0; t < nr; t++)
                    acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        #pragma GCC unroll 8
        for (int t = 0; t < nr; t++) {
            float s = _mm512_reduce_add_ps(split ? _mm512_add_ps(acc[r][0], acc[r][1]) : acc[r][t]);
            float *o = y + (size_t)t * ldy + r;
            *o = add ? *o + s : s;
        }
}

typedef void (*mm_kernel_fn)(const char *w, size_t ldw, const float *xp, int kpad, int kv,
                             float *y, size_t ldy, int add);

#define MM_K(DT, MR, NR) \
    AVX512_MM_TARGET static void mm_##DT##_##MR##x##NR(const char *w, size_t ldw, const float *xp, \
        int kpad, int kv, float *y, size_t ldy, int add) \
    { mm_kernel(DT, MR, NR, NR == 1, w, ldw, xp, kpad, kv, y, ldy, add); }
/* one token in the order of a tile's tokens (OURO_PRECISION_INVARIANT) */
#define MM_KI(DT, MR) \
    AVX512_MM_TARGET static void mm_##DT##_##MR##x1i(const char *w, size_t ldw, const float *xp, \
        int kpad, int kv, float *y, size_t ldy, int add) \
    { mm_kernel(DT, MR, 1, 0, w, ldw, xp, kpad, kv, y, ldy, add); }
#define MM_K_DT(DT) \
    MM_K(DT, 1, 1) MM_K(DT, 1, 2) MM_K(DT, 1, 3) MM_K(DT, 1, 4) \
    MM_K(DT, 1, 5) MM_K(DT, 1, 6) \
    MM_K(DT, 4, 1) MM_K(DT, 4, 2) MM_K(DT, 4, 3) MM_K(DT, 4, 4) \
    MM_K(DT, 4, 5) MM_K(DT, 4, 6) MM_KI(DT, 1) MM_KI(DT, 4)
MM_K_DT(OURO_F32)
MM_K_DT(OURO_F16)
MM_K_DT(OURO_BF16)

#define MM_ROW(DT) { { mm_##DT##_1x1, mm_##DT##_1x2, mm_##DT##_1x3, mm_##DT##_1x4, \
                       mm_##DT##_1x5, mm_##DT##_1x6 }, \
                     { mm_##DT##_4x1, mm_##DT##_4x2, mm_##DT##_4x3, mm_##DT##_4x4, \
                       mm_##DT##_4x5, mm_##DT##_4x6 } }
static const mm_kernel_fn mm_kernels[3][2][6] = {   /* [dtype][mr == 4][nr - 1], nr <= MM_NR */
    MM_ROW(OURO_F32), MM_ROW(OURO_F16), MM_ROW(OURO_BF16),
};
static const mm_kernel_fn mm_kernels_1i[3][2] = {   /* [dtype][mr == 4], one token, invariant */
    { mm_OURO_F32_1x1i, mm_OURO_F32_4x1i }, { mm_OURO_F16_1x1i, mm_OURO_F16_4x1i },
    { mm_OURO_BF16_1x1i, mm_OURO_BF16_4x1i },
};

/* Packs tokens t0 .. t0+nr-1 of x, elements k0 .. k0+kv-1, into xp (nr, kpad),
 * in the element order of the dtype's kernel, zero-padded to kpad. */
static void mm_pack(float *xp, int kpad, const float *x, size_t ldx, int t0, int nr,
                    int k0, int kv, ouro_dtype dt)
{
    for (int t = 0; t < nr; t++) {
        const float *src = x + (size_t)(t0 + t) * ldx + k0;
        float *dst = xp + (size_t)t * kpad;
        if (dt == OURO_BF16) {
            for (int c = 0; c < kpad; c += 32)
                for (int j = 0; j < 16; j++) {
                    int e = c + 2 * j;
                    dst[c + j] = e < kv ? src[e] : 0.0f;
                    dst[c + 16 + j] = e + 1 < kv ? src[e + 1] : 0.0f;
                }
        } else {
            memcpy(dst, src, (size_t)kv * sizeof(float));
            memset(dst + kv, 0, (size_t)(kpad - kv) * sizeof(float));
        }
    }
}

/* Token tiles of n tokens: as few as MM_NR allows, of balanced sizes (n = 8:
 * 4 + 4, not 6 + 2); tile i starts at tile_start(n, nt, i). */
static inline int tile_count(int n) { return (n + MM_NR - 1) / MM_NR; }
static inline int tile_start(int n, int nt, int i) { return (int)((long)n * i / nt); }

/* The d_in block of the AVX-512 products for n tokens: the widest token tile
 * times the block fills xbuf elements (a multiple of 32; at most 2048 for
 * several tokens); MM_KB_INV in the invariant order.  It depends on n alone,
 * like the token tiles, so every split of the rows sums each output in the
 * same order. */
static int mm_kb(int n, int xbuf, bool inv)
{
    if (inv)
        return MM_KB_INV;
    int n_tiles = tile_count(n);
    int nr_max = (n + n_tiles - 1) / n_tiles;
    int kb = xbuf / nr_max / 32 * 32;
    return kb > MM_KB && n > 1 ? MM_KB : kb;
}

/* Rows r0 .. r1-1 of the product, on the calling thread; inv: in the order
 * that does not depend on n (see "Order of the sums").
 *
 * xpre, when not NULL, is x packed whole by mm_prep_fill: the block at k0 of
 * token t at xpre + n * k0 + t * kpad.  Otherwise, with several token tiles,
 * x's block of every token is packed once per block into a buffer of this
 * call and each row block runs every tile over it; where that buffer cannot
 * be had, each tile is packed on the stack before its pass over a row block
 * (the same sums, more packing). */
static void mm_avx512_rows(float *y, const float *x, const float *xpre, const void *w, ouro_dtype dt,
                           int n, int d_in, int d_out, int r0, int r1, bool inv)
{
    _Alignas(64) float xs[MM_XBUF];
    int n_tiles = tile_count(n);
    int kb = mm_kb(n, MM_XBUF, inv);
    size_t esz = ouro_dtype_size(dt), ldw = (size_t)d_in * esz;
    /* One token tile: walk all rows per pack (the decode case). */
    int rb = n_tiles == 1 ? r1 - r0 : MM_RB;
    int kpad_max = (kb < d_in ? kb : d_in + 31) / 32 * 32;
    /* One token (decode order): row after row, the rows one stream in memory
     * order (see "One-token decode" above) */
    bool one_stream = n == 1 && !inv;
    float *own = !xpre && n_tiles > 1 ? aligned_alloc(64, (size_t)n * kpad_max * sizeof(float)) : NULL;
    for (int k0 = 0; k0 < d_in; k0 += kb) {
        int kv = d_in - k0 < kb ? d_in - k0 : kb;
        int kpad = (kv + 31) / 32 * 32;
        const float *xall = xpre ? xpre + (size_t)n * k0 : own;
        if (own)
            mm_pack(own, kpad, x, (size_t)d_in, 0, n, k0, kv, dt);   /* token t at t * kpad */
        for (int b0 = r0; b0 < r1; b0 += rb) {
            int b1 = r1 - b0 < rb ? r1 : b0 + rb;
            for (int ti = 0; ti < n_tiles; ti++) {
                int t0 = tile_start(n, n_tiles, ti), nr = tile_start(n, n_tiles, ti + 1) - t0;
                const float *xp = xall ? xall + (size_t)t0 * kpad : xs;
                if (!xall)
                    mm_pack(xs, kpad, x, (size_t)d_in, t0, nr, k0, kv, dt);
                int r = b0;
                mm_kernel_fn k4 = mm_kernels[dt][1][nr - 1], k1 = mm_kernels[dt][0][nr - 1];
                if (inv && nr == 1) {
                    k4 = mm_kernels_1i[dt][1];
                    k1 = mm_kernels_1i[dt][0];
                }
                for (; r + MM_MR <= b1 && !one_stream; r += MM_MR)
                    k4((const char *)w + (size_t)r * ldw + (size_t)k0 * esz, ldw, xp, kpad, kv,
                       y + (size_t)t0 * d_out + r, (size_t)d_out, k0 > 0);
                for (; r < b1; r++)
                    k1((const char *)w + (size_t)r * ldw + (size_t)k0 * esz, ldw, xp, kpad, kv,
                       y + (size_t)t0 * d_out + r, (size_t)d_out, k0 > 0);
            }
        }
    }
    free(own);
}

/* ------------------------------------------------------------------------
 * AVX-512 BF16 product (approximate: OURO_PRECISION_BF16)
 *
 * The same blocking and register tiling as above, for bf16 weights against
 * activations rounded to bf16 (nearest even): vdpbf16ps multiplies 32 bf16
 * pairs of a weight row and a token and adds each adjacent pair of products
 * into one of 16 f32 lanes, so one 64-byte load of a weight row feeds one
 * instruction per token, with no conversion.  The packed x is bf16 in the
 * natural order, zero-padded to a multiple of 32; the d_in tail of a weight
 * row uses a masked load.  Sums are f32.
 *
 * Unlike the exact path's, these sums are in one order whatever the number
 * of tokens in the call: each (row, token) is one chain of vdpbf16ps over
 * d_in blocks of MM_KB (what mm_kb gives every call of several tokens), each
 * block's chain reduced across its lanes and added to the row's total.  One
 * token reads its rows over the whole of d_in in one pass (one stream), and
 * at every MM_KB boundary adds its chain to the total and starts a new one,
 * as a tile does.  So a token gets the same bits alone or among others (from
 * a batch of rows, or a prompt against one token per call), which matters
 * more here than on the exact path: a difference in the last bit of an
 * activation can move its bf16 rounding, and greedy text with it.  The AMX
 * tiles (ouro_cpu_amx) sum in their own order; precision auto never takes
 * this path where there are tiles.
 * ------------------------------------------------------------------------ */

#define BF16DP_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

BF16DP_TARGET static inline __attribute__((always_inline))
__m512 dpbf16(__m512 acc, __m512i w, __m512i x)
{
    return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x);
}

/* Like mm_kernel, for bf16 weights and bf16 packed x (xp: nr tokens, kpad
 * bf16 apart). */
BF16DP_TARGET static inline __attribute__((always_inline))
void mmb_kernel(int mr, int nr, const char *w, size_t ldw, const uint16_t *xp,
                int kpad, int kv, float *y, size_t ldy, int add)
{
    __m512 acc[MM_MR][MM_NR];
    #pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        #pragma GCC unroll 8
        for (int t = 0; t < MM_NR; t++)
            acc[r][t] = _mm512_setzero_ps();
    int k = 0;
/* the chain's sum of the block that ends at k into y; a new chain */
#define MMB_FLUSH() do { \
        float s_ = _mm512_reduce_add_ps(acc[0][0]); \
        *y = add ? *y + s_ : s_; \
        acc[0][0] = _mm512_setzero_ps(); \
        add = 1; \
    } while (0)
    if (nr == 1) {   /* decode: one row (mr = 1), one chain, 64 elements a step, a block every MM_KB */
        for (; k + 64 <= kv; k += 64) {
            if (k > 0 && k % MM_KB == 0)
                MMB_FLUSH();
            const char *p = w + (size_t)k * 2;
            if (MM_PF1 > 0) {   /* both 64-byte lines of the step, further ahead: one stream */
                _mm_prefetch(p + MM_PF1, _MM_HINT_T0);
                _mm_prefetch(p + MM_PF1 + 64, _MM_HINT_T0);
            }
            acc[0][0] = dpbf16(acc[0][0], _mm512_loadu_si512(p), _mm512_load_si512(xp + k));
            acc[0][0] = dpbf16(acc[0][0], _mm512_loadu_si512(p + 64), _mm512_load_si512(xp + k + 32));
        }
        if (k < kv && k > 0 && k % MM_KB == 0)   /* the tail starts a block */
            MMB_FLUSH();
    }
#undef MMB_FLUSH
    for (; k < kv; k += 32) {
        int rem = kv - k;
        __mmask32 m = rem >= 32 ? 0xffffffffu : (__mmask32)((1u << rem) - 1);
        __m512i xv[MM_NR];
        #pragma GCC unroll 8
        for (int t = 0; t < nr; t++)
            xv[t] = _mm512_load_si512(xp + (size_t)t * kpad + k);
        #pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            const char *p = w + r * ldw + (size_t)k * 2;
            __m512i wv = rem >= 32 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16(m, p);
            #pragma GCC unroll 8
            for (int t = 0; t < nr; t++)
                acc[r][t] = dpbf16(acc[r][t], wv, xv[t]);
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
        #pragma GCC unroll 8
        for (int t = 0; t < nr; t++) {
            float s = _mm512_reduce_add_ps(acc[r][t]);
            float *o = y + (size_t)t * ldy + r;
            *o = add ? *o + s : s;
        }
}

typedef void (*mmb_kernel_fn)(const char *w, size_t ldw, const uint16_t *xp, int kpad, int kv,
                              float *y, size_t ldy, int add);

#define MMB_K(MR, NR) \
    BF16DP_TARGET static void mmb_##MR##x##NR(const char *w, size_t ldw, const uint16_t *xp, \
        int kpad, int kv, float *y, size_t ldy, int add) \
    { mmb_kernel(MR, NR, w, ldw, xp, kpad, kv, y, ldy, add); }
MMB_K(1, 1) MMB_K(1, 2) MMB_K(1, 3) MMB_K(1, 4) MMB_K(1, 5) MMB_K(1, 6)
MMB_K(4, 2) MMB_K(4, 3) MMB_K(4, 4) MMB_K(4, 5) MMB_K(4, 6)

/* [mr == 4][nr - 1]; no 4 x 1: one token reads one row at a time (mmb_rows),
 * and a tile of several tokens has at least 2 */
static const mmb_kernel_fn mmb_kernels[2][6] = {
    { mmb_1x1, mmb_1x2, mmb_1x3, mmb_1x4, mmb_1x5, mmb_1x6 },
    { NULL, mmb_4x2, mmb_4x3, mmb_4x4, mmb_4x5, mmb_4x6 },
};

/* Packs tokens t0 .. t0+nr-1 of x, elements k0 .. k0+kv-1, into xp (nr, kpad)
 * as bf16 (round to nearest even), zero-padded to kpad. */
BF16DP_TARGET static void mmb_pack(uint16_t *xp, int kpad, const float *x, size_t ldx, int t0,
                                   int nr, int k0, int kv)
{
    for (int t = 0; t < nr; t++) {
        const float *src = x + (size_t)(t0 + t) * ldx + k0;
        uint16_t *dst = xp + (size_t)t * kpad;
        for (int c = 0; c < kpad; c += 32) {
            int r0 = kv - c, r1 = kv - c - 16;
            __mmask16 m0 = r0 >= 16 ? 0xffff : r0 <= 0 ? 0 : (__mmask16)((1u << r0) - 1);
            __mmask16 m1 = r1 >= 16 ? 0xffff : r1 <= 0 ? 0 : (__mmask16)((1u << r1) - 1);
            __m512 lo = _mm512_maskz_loadu_ps(m0, src + c);
            __m512 hi = _mm512_maskz_loadu_ps(m1, src + c + 16);
            _mm512_store_si512(dst + c, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

/* Rows r0 .. r1-1 of the bf16 product, on the calling thread; x is packed
 * (or xpre given) as in mm_avx512_rows, as bf16. */
BF16DP_TARGET static void mmb_rows(float *y, const float *x, const uint16_t *xpre, const void *w,
                                   int n, int d_in, int d_out, int r0, int r1)
{
    _Alignas(64) uint16_t xs[2 * MM_XBUF];
    int n_tiles = tile_count(n);
    int kb = mm_kb(n, 2 * MM_XBUF, false);
    size_t ldw = (size_t)d_in * 2;
    int rb = n_tiles == 1 ? r1 - r0 : MM_RB;
    int kpad_max = (kb < d_in ? kb : d_in + 31) / 32 * 32;
    uint16_t *own = !xpre && n_tiles > 1 ? aligned_alloc(64, (size_t)n * kpad_max * 2 + 64) : NULL;
    for (int k0 = 0; k0 < d_in; k0 += kb) {
        int kv = d_in - k0 < kb ? d_in - k0 : kb;
        int kpad = (kv + 31) / 32 * 32;
        const uint16_t *xall = xpre ? xpre + (size_t)n * k0 : own;
        if (own)
            mmb_pack(own, kpad, x, (size_t)d_in, 0, n, k0, kv);
        for (int b0 = r0; b0 < r1; b0 += rb) {
            int b1 = r1 - b0 < rb ? r1 : b0 + rb;
            for (int ti = 0; ti < n_tiles; ti++) {
                int t0 = tile_start(n, n_tiles, ti), nr = tile_start(n, n_tiles, ti + 1) - t0;
                const uint16_t *xp = xall ? xall + (size_t)t0 * kpad : xs;
                if (!xall)
                    mmb_pack(xs, kpad, x, (size_t)d_in, t0, nr, k0, kv);
                int r = b0;
                mmb_kernel_fn k4 = mmb_kernels[1][nr - 1], k1 = mmb_kernels[0][nr - 1];
                for (; r + MM_MR <= b1 && n > 1; r += MM_MR)   /* n = 1: one stream, as above */
                    k4((const char *)w + (size_t)r * ldw + (size_t)k0 * 2, ldw, xp, kpad, kv,
                       y + (size_t)t0 * d_out + r, (size_t)d_out, k0 > 0);
                for (; r < b1; r++)
                    k1((const char *)w + (size_t)r * ldw + (size_t)k0 * 2, ldw, xp, kpad, kv,
                       y + (size_t)t0 * d_out + r, (size_t)d_out, k0 > 0);
            }
        }
    }
    free(own);
}

/* ------------------------------------------------------------------------
 * AMX tile product for BF16 weights
 *
 * Where the processor has AMX tiles (ouro_cpu_amx), bf16 weights are
 * multiplied by TDPBF16PS, which computes C (16 x 16 f32) += A (16 x 32 bf16)
 * . B (32 x 16 bf16), every product of two bf16 exact in f32 and every sum
 * in f32.  The weights stay as they are stored (row-major (d_out, d_in),
 * mapped in place): an A tile is 16 weight rows by 32 elements of d_in,
 * loaded straight from the rows (stride: one row).  So the tiles compute
 * y^T: C[m][t] is the output of weight row m for token t.  B holds x of 16
 * tokens in the pair layout of the instruction (B row r: for each of the 16
 * tokens, elements 2r and 2r + 1), packed once per product for every thread
 * (mm_prep_fill): per token tile of 16 tokens (zero-padded past n), per step
 * of 32 elements of d_in (zero-padded past d_in), one 1 KiB block per piece.
 *
 * Exact precision splits each f32 activation into three bf16 pieces,
 * hi = bf16(x), mid = bf16(x - hi), lo = bf16(x - hi - mid) (each rounded
 * to nearest even; x - hi and x - hi - mid are exact in f32, and the three
 * pieces hold x's 24 significant bits, so hi + mid + lo = x), and runs the
 * three B tiles against the same A tile into the same C tile: each
 * w * piece is exact and the sums are f32, as on the f32 FMA path.  Only
 * activations below about 1e-36 lose low bits (the instruction reads
 * subnormal bf16 as zero).  bf16 precision takes hi alone.
 *
 * Blocking: 8 tile registers hold C for 2 row tiles x 2 token tiles, the 2
 * A tiles and 2 B tiles (the pieces go through them in turn).  Up to 32
 * tokens each weight is used once: a thread streams its 64-row chunks, a
 * row pair over the whole of d_in at a time.  With more tokens a thread
 * takes 256 rows at a time and walks d_in in blocks whose packed x (every
 * token) stays in L2 while every row pair passes over it (see amx_rows).
 * Each C is summed in one order: step by step, piece by piece (between d_in
 * blocks it waits in memory, stored and loaded whole, which changes
 * nothing).  The last step of a d_in that is not a multiple of 32
 * reads its A tile from a zero-padded copy; a row tile of fewer than 16 rows
 * (d_out % 16, or the edge of a share) reads all of its A tiles from a
 * zero-padded copy of its rows.  So every output element is summed in the
 * same order whatever n, the token's place, the row's place or the thread:
 * the tile path is invariant by construction (OURO_PRECISION_INVARIANT
 * takes it for every n).
 * ------------------------------------------------------------------------ */

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,amx-int8,avx512f,avx512bw,avx512bf16")))
#define AMX_RB 256         /* weight rows per cache block: a thread's share at a time */
#define AMX_XL2 (512 << 10) /* bytes of packed x of one d_in block for all tokens (kept in L2) */
#define AMX_BLOCK 1024     /* bytes of one packed B tile: 16 rows of 16 tokens x 2 bf16 */

/* Number of 16-token tiles and of 32-element steps of x packed for n tokens. */
static inline int amx_tiles(int n) { return (n + 15) / 16; }
static inline int amx_steps(int d_in) { return (d_in + 31) / 32; }

/* Tokens from which the tile product is used, per precision (measured: see
 * the README, "AMX tiles for bf16 weights"); the invariant order takes it for every n. */
#define AMX_MIN_N_EXACT 2
#define AMX_MIN_N_BF16 1

/* Whether products of n tokens with bf16 weights take the tile product. */
static bool amx_wanted(int n, bool bf16, bool inv)
{
    if (!ouro_cpu_amx())
        return false;
    return inv || n >= (bf16 ? AMX_MIN_N_BF16 : AMX_MIN_N_EXACT);
}

/* Packs step s (elements 32s .. 32s+31) of tokens 16tt .. 16tt+15 of x
 * (n, d_in) into dst: `pieces` B tiles of AMX_BLOCK bytes (1: bf16(x);
 * 3: hi, mid, lo), zeros past n and past d_in. */
AMX_TARGET static void amx_pack(uint32_t *dst, const float *x, int n, int d_in, int tt, int s,
                                int pieces)
{
    int k0 = 32 * s, r0 = d_in - k0, r1 = d_in - k0 - 16;
    __mmask16 m0 = r0 >= 16 ? 0xffff : r0 <= 0 ? 0 : (__mmask16)((1u << r0) - 1);
    __mmask16 m1 = r1 >= 16 ? 0xffff : r1 <= 0 ? 0 : (__mmask16)((1u << r1) - 1);
    for (int t = 0; t < 16; t++) {
        int tok = 16 * tt + t;
        __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
        if (tok < n) {
            const float *src = x + (size_t)tok * d_in + k0;
            lo = _mm512_maskz_loadu_ps(m0, src);
            hi = _mm512_maskz_loadu_ps(m1, src + 16);
        }
        for (int p = 0; p < pieces; p++) {
            __m512i b = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);   /* elements 0..31, in order */
            _Alignas(64) uint32_t pair[16];                      /* pair r: elements 2r, 2r + 1 */
            _mm512_store_si512(pair, b);
            for (int r = 0; r < 16; r++)
                dst[p * 256 + r * 16 + t] = pair[r];
            if (p + 1 < pieces) {   /* what the piece left: exact in f32 */
                __m512 blo = _mm512_castsi512_ps(_mm512_slli_epi32(
                    _mm512_cvtepu16_epi32(_mm512_castsi512_si256(b)), 16));
                __m512 bhi = _mm512_castsi512_ps(_mm512_slli_epi32(
                    _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(b, 1)), 16));
                lo = _mm512_sub_ps(lo, blo);
                hi = _mm512_sub_ps(hi, bhi);
            }
        }
    }
}

/* C tiles 0 (row tile 0, token tile 0), 1 (0, 1), 2 (1, 0), 3 (1, 1) +=
 * A (tiles 4, 5: row tiles 0, 1) . B (tiles 6, 7 in turn) over `steps` steps
 * of 32 elements.  a: row tile 0 at the first step, lda bytes between rows
 * (row tile 1 16 rows further); tail, when not NULL: the A tiles of one more
 * step, 64 bytes between rows.  b0, b1: packed x of the two token tiles at
 * the first step.  rt2 / tt2: whether row tile 1 / token tile 1 take part.
 * The C tiles start from cin (4 tiles of 16 x 16 f32, in order), or from 0
 * where cin is NULL, and are left in the tiles, and stored to cout where it
 * is not NULL.  (Prefetching the 16 or 32 row streams of A ahead, as the
 * AVX-512 kernels do, made single-token products slower: measured in the
 * README, "Huge pages and prefetch".) */
AMX_TARGET static inline __attribute__((always_inline))
void amx_kernel(int rt2, int tt2, int pieces, const char *a, size_t lda, const char *tail,
                const char *b0, const char *b1, int steps, const float *cin, float *cout)
{
    size_t bs = (size_t)pieces * AMX_BLOCK;   /* bytes of packed x per step */
    if (cin) {
        _tile_loadd(0, cin, 64);
        if (tt2)
            _tile_loadd(1, cin + 256, 64);
        if (rt2)
            _tile_loadd(2, cin + 512, 64);
        if (rt2 && tt2)
            _tile_loadd(3, cin + 768, 64);
    } else {
        _tile_zero(0);
        if (tt2)
            _tile_zero(1);
        if (rt2)
            _tile_zero(2);
        if (rt2 && tt2)
            _tile_zero(3);
    }
    int all = steps + (tail != NULL);
    for (int s = 0; s < all; s++) {
        const char *ap = s < steps ? a + 64 * (size_t)s : tail;
        size_t as = s < steps ? lda : 64;
        const char *bp = b0 + s * bs, *bq = b1 + s * bs;
        _tile_loadd(4, ap, as);
        if (rt2)
            _tile_loadd(5, ap + 16 * as, as);
        _tile_loadd(6, bp, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (rt2)
            _tile_dpbf16ps(2, 5, 6);
        if (pieces == 3) {
            _tile_loadd(7, bp + AMX_BLOCK, 64);
            _tile_dpbf16ps(0, 4, 7);
            if (rt2)
                _tile_dpbf16ps(2, 5, 7);
            _tile_loadd(6, bp + 2 * AMX_BLOCK, 64);
            _tile_dpbf16ps(0, 4, 6);
            if (rt2)
                _tile_dpbf16ps(2, 5, 6);
        }
        if (tt2) {
            _tile_loadd(7, bq, 64);
            _tile_dpbf16ps(1, 4, 7);
            if (rt2)
                _tile_dpbf16ps(3, 5, 7);
            if (pieces == 3) {
                _tile_loadd(6, bq + AMX_BLOCK, 64);
                _tile_dpbf16ps(1, 4, 6);
                if (rt2)
                    _tile_dpbf16ps(3, 5, 6);
                _tile_loadd(7, bq + 2 * AMX_BLOCK, 64);
                _tile_dpbf16ps(1, 4, 7);
                if (rt2)
                    _tile_dpbf16ps(3, 5, 7);
            }
        }
    }
    if (cout) {
        _tile_stored(0, cout, 64);
        if (tt2)
            _tile_stored(1, cout + 256, 64);
        if (rt2)
            _tile_stored(2, cout + 512, 64);
        if (rt2 && tt2)
            _tile_stored(3, cout + 768, 64);
    }
}

typedef void (*amx_kernel_fn)(const char *a, size_t lda, const char *tail, const char *b0,
                              const char *b1, int steps, const float *cin, float *cout);

#define AMX_K(RT2, TT2, P) \
    AMX_TARGET static void amx_##RT2##TT2##_##P(const char *a, size_t lda, const char *tail, \
        const char *b0, const char *b1, int steps, const float *cin, float *cout) \
    { amx_kernel(RT2, TT2, P, a, lda, tail, b0, b1, steps, cin, cout); }
AMX_K(0, 0, 1) AMX_K(0, 1, 1) AMX_K(1, 0, 1) AMX_K(1, 1, 1)
AMX_K(0, 0, 3) AMX_K(0, 1, 3) AMX_K(1, 0, 3) AMX_K(1, 1, 3)
static const amx_kernel_fn amx_kernels[2][2][2] = {   /* [pieces == 3][rt2][tt2] */
    { { amx_00_1, amx_01_1 }, { amx_10_1, amx_11_1 } },
    { { amx_00_3, amx_01_3 }, { amx_10_3, amx_11_3 } },
};

/* Writes C tiles stored by amx_kernel (c: 4 tiles of 16 x 16 f32) to y:
 * rows r .. r+rows-1 (rows <= 32: tiles 0/1 then 2/3), tokens t0 .. t0+nt-1
 * (nt <= 32: tiles 0/2 then 1/3). */
AMX_TARGET static void amx_store(float *y, size_t d_out, const float *c, int r, int rows, int t0, int nt)
{
    /* column t of a C tile is 16 rows of token t: gathered, 64 bytes apart */
    const __m512i col = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4,
                                                             3, 2, 1, 0), _mm512_set1_epi32(16));
    __mmask16 m0 = rows >= 16 ? 0xffff : (__mmask16)((1u << rows) - 1);
    __mmask16 m1 = rows >= 32 ? 0xffff : rows <= 16 ? 0 : (__mmask16)((1u << (rows - 16)) - 1);
    for (int t = 0; t < nt; t++) {
        float *o = y + (size_t)(t0 + t) * d_out + r;
        const float *ct = c + (t >= 16) * 256 + (t & 15);
        _mm512_mask_storeu_ps(o, m0, _mm512_i32gather_ps(col, ct, 4));
        if (m1)
            _mm512_mask_storeu_ps(o + 16, m1, _mm512_i32gather_ps(col, ct + 512, 4));
    }
}

/* Copies rows r .. r+rows-1 (rows <= 32), elements k0 .. d_in-1, of w into
 * dst (rows of dk elements, zero-padded to dk and to 32 rows); k0 and dk
 * are multiples of 32. */
static void amx_copy_rows(uint16_t *dst, const uint16_t *w, int d_in, int r, int rows, int k0, int dk)
{
    for (int m = 0; m < 32; m++) {
        uint16_t *o = dst + (size_t)m * dk;
        int kv = m < rows ? d_in - k0 : 0;
        if (kv > 0)
            memcpy(o, w + (size_t)(r + m) * d_in + k0, (size_t)kv * 2);
        memset(o + (kv > 0 ? kv : 0), 0, (size_t)(dk - (kv > 0 ? kv : 0)) * 2);
    }
}

/* Rows r0 .. r1-1 of the product of bf16 weights w (d_out, d_in) with x
 * packed by amx_pack in px (token tile tt, step s at px + (tt * steps + s)
 * * pieces * AMX_BLOCK), on the calling thread.  Returns false, having
 * written nothing, where the memory it needs cannot be had.
 *
 * Order of the loops: row blocks of AMX_RB rows (a thread's chunk); d_in
 * blocks of kbs steps, as many as keep the packed x of every token in
 * AMX_XL2 bytes (one block when there are at most two token tiles: each
 * weight is then used once); row pairs; token tile pairs.  So the packed x
 * of a d_in block stays in L2 while every row pair of the chunk passes over
 * it (x is read from memory once per chunk, not once per row pair), and a
 * row pair's weights of the block stay in L1 or L2 while every token tile
 * pair passes over them.  Between d_in blocks each pair's C tiles wait in cs
 * (stored and loaded whole, so the sums are those of one pass). */
AMX_TARGET static bool amx_rows(float *y, const char *px, const uint16_t *w, int n, int d_in,
                                int d_out, int r0, int r1, int pieces)
{
    int ntt = amx_tiles(n), ntp = (ntt + 1) / 2, steps = d_in / 32, all = amx_steps(d_in);
    size_t lda = (size_t)d_in * 2, tts = (size_t)all * pieces * AMX_BLOCK;
    int rfull = r0 + (r1 - r0) / 16 * 16;
    int kbs = ntt <= 2 ? all : AMX_XL2 / (ntt * pieces * AMX_BLOCK);
    kbs = kbs < 4 ? 4 : kbs > all ? all : kbs;
    uint16_t *part = NULL;   /* the zero-padded rows of a short row tile (rows rfull .. r1-1) */
    float *cs = NULL;        /* C of every (row pair, token pair) of a row block, 4 KiB each */
    if (rfull < r1 && !(part = aligned_alloc(64, (size_t)32 * all * 64)))
        return false;
    /* a block holds at most AMX_RB / 16 row tiles: as many row pairs at worst */
    if (kbs < all && !(cs = aligned_alloc(64, (size_t)(AMX_RB / 16) * ntp * 4096))) {
        free(part);
        return false;
    }
    if (part)
        amx_copy_rows(part, w, d_in, rfull, r1 - rfull, 0, 32 * all);
    ouro_amx_config cfg = { .palette = 1 };   /* the 8 tiles 16 rows x 64 bytes */
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    ouro_amx_load(&cfg);
    _Alignas(64) uint16_t tail[32 * 32];   /* the last, short step of a row pair */
    _Alignas(64) float c[1024];             /* C of the last d_in block, on its way to y */
    for (int b0 = r0; b0 < r1; b0 += AMX_RB) {
        int b1 = r1 - b0 < AMX_RB ? r1 : b0 + AMX_RB;
        for (int k0 = 0; k0 < all; k0 += kbs) {
            int ks = all - k0 < kbs ? all - k0 : kbs;
            bool last = k0 + ks == all;
            for (int r = b0, rp = 0; r < b1; rp++) {
                int rows;
                const char *a, *tp = NULL;
                size_t as;
                int full = ks;   /* steps read straight from a */
                if (r >= rfull) {   /* the short row tile, from its copy */
                    rows = r1 - r;
                    a = (const char *)(part + (size_t)32 * k0);
                    as = (size_t)all * 64;
                } else {
                    rows = (b1 < rfull ? b1 : rfull) - r;   /* 16 or more, a multiple of 16 */
                    /* one token tile (decode): 16 rows, 16 streams of weights in
                     * flight rather than 32 (faster, measured; each C tile's
                     * sums are the same either way) */
                    if (rows > (ntt == 1 ? 16 : 32))
                        rows = ntt == 1 ? 16 : 32;
                    a = (const char *)(w + (size_t)r * d_in + (size_t)32 * k0);
                    as = lda;
                    if (last && steps < all) {
                        amx_copy_rows(tail, w, d_in, r, rows, 32 * steps, 32);
                        tp = (const char *)tail;
                        full = ks - 1;
                    }
                }
                const amx_kernel_fn *kf = amx_kernels[pieces == 3][rows > 16];
                for (int tt = 0; tt < ntt; tt += 2) {
                    int tt2 = tt + 1 < ntt;
                    const char *bp = px + (size_t)tt * tts + (size_t)k0 * pieces * AMX_BLOCK;
                    float *cp = cs ? cs + ((size_t)rp * ntp + tt / 2) * 1024 : NULL;
                    kf[tt2](a, as, tp, bp, tt2 ? bp + tts : bp, full, k0 > 0 ? cp : NULL,
                            last ? c : cp);
                    if (last)
                        amx_store(y, (size_t)d_out, c, r, rows, 16 * tt,
                                  n - 16 * tt < 32 ? n - 16 * tt : 32);
                }
                r += rows;
            }
        }
    }
    _tile_release();
    free(part);
    free(cs);
    return true;
}

#endif /* OURO_X86_SIMD */

/* ------------------------------------------------------------------------
 * Products
 * ------------------------------------------------------------------------ */

float ouro_dot_row(const void *w, ouro_dtype dt, size_t row, const float *x, int d_in)
{
    if (dt == OURO_Q8)   /* not used by the forward pass: the exit gate is never quantized */
        return ouro_q8_dot_row(w, row, x, d_in);
    if (dt == OURO_Q4)
        return ouro_q4_dot_row(w, row, x, d_in);
    const char *p = (const char *)w + row * (size_t)d_in * ouro_dtype_size(dt);
    return pick_dot(dt)(p, x, d_in);
}

/* Rows a thread takes at a time when x is prepared for all of them: a
 * multiple of 16 (q8 row groups) and of MM_RB (AMX_RB for the tile product
 * of more than 32 tokens, see mm_prep_init).  Threads take them from
 * shares (mm_sched below): their own first, then the others', so a thread the
 * system deschedules (other work on the machine) holds back one chunk, not
 * half the product. */
#define MM_CHUNK 64

/* x prepared once per product for every thread: quantized for q8 weights
 * (ouro_q8_prepare), packed for the AVX-512 kernels (mm_pack_all), or neither
 * (the AVX2 and portable dot products read x as it is). */
typedef struct mm_prep {
    const void *qx;     /* quantized x, or NULL */
    void *px;           /* packed x (float, or uint16_t when bf16), or NULL; owned */
    ouro_dtype pdt;     /* the dtype px is packed for */
    bool bf16;          /* px is bf16 for the vdpbf16ps kernels */
    int amx;            /* px is packed for the tile product, with this many pieces (1 or 3); or 0 */
    int chunk;          /* rows a thread takes at a time (MM_FOR_ROWS) */
    bool self_pack;     /* a product with no px packs x itself: rows in large shares */
    int kb;             /* d_in block of px */
} mm_prep;

/* Rows r0 .. r1-1 of one product, on the calling thread, by the fastest path
 * for its dtype and precision; q8 and q4: pp->qx holds x quantized by
 * ouro_q8_prepare.  inv: the AVX-512 path in its invariant order (the q8, q4,
 * AVX2 and portable paths sum in one order whatever n). */
static void mm_rows(float *y, const float *x, const mm_prep *pp, const void *w, ouro_dtype dt, int n,
                    int d_in, int d_out, int r0, int r1, bool bf16, bool inv)
{
    if (dt == OURO_Q8) {
        ouro_q8_rows(y, pp->qx, w, n, d_in, d_out, r0, r1);
        return;
    }
    if (dt == OURO_Q4) {
        ouro_q4_rows(y, pp->qx, w, n, d_in, d_out, r0, r1);
        return;
    }
#ifdef OURO_X86_SIMD
    if (pp->amx && pp->px && dt == OURO_BF16
        && amx_rows(y, pp->px, w, n, d_in, d_out, r0, r1, pp->amx))
        return;
    bool mine = pp->px && dt == pp->pdt && !pp->amx;   /* px packed for this dtype's kernels */
    if (bf16 && dt == OURO_BF16 && ouro_cpu_bf16dp()) {
        mmb_rows(y, x, mine && pp->bf16 ? pp->px : NULL, w, n, d_in, d_out, r0, r1);
        return;
    }
    if (ouro_simd() == OURO_SIMD_AVX512) {
        mm_avx512_rows(y, x, mine && !pp->bf16 ? pp->px : NULL, w, dt, n, d_in, d_out, r0, r1, inv);
        return;
    }
#endif
    dot_fn dot = pick_dot(dt);
    size_t row_bytes = (size_t)d_in * ouro_dtype_size(dt);
    for (int o = r0; o < r1; o++) {
        const char *row = (const char *)w + (size_t)o * row_bytes;
        for (int i = 0; i < n; i++)
            y[(size_t)i * d_out + o] = dot(row, x + (size_t)i * d_in, d_in);
    }
}

/* x quantized for q8 or q4 weights, in ws when it is large enough, else in memory
 * of its own (*owned, freed by the caller); NULL when that cannot be had. */
static void *mm_q8_prepare(const float *x, int n, int d_in, int threads, ouro_dtype wdt,
                           ouro_mm_ws *ws, void **owned)
{
    size_t need = ouro_q8_act_bytes(n, d_in);
    void *buf = ws && ws->bytes >= need ? ws->buf : NULL;
    *owned = NULL;
    if (!buf && !(buf = *owned = malloc(need))) {
        ouro_log(OURO_LOG_WARNING, "out of memory for %zu bytes of quantized activations; "
                 "the product is NaN", need);
        return NULL;
    }
    ouro_q8_prepare(buf, x, n, d_in, threads, wdt);
    return buf;
}

/* Sets up pp for products of x (n, d_in) with weights of dtypes dts[0..count):
 * allocates the packed x of the AVX-512 kernels when their non-q8 weights
 * share one dtype (filled by mm_prep_fill inside the parallel region).  With
 * no packed x, products whose kernels pack x themselves keep large shares. */
static void mm_prep_init(mm_prep *pp, const ouro_dtype *dts, int count, int n, int d_in, bool bf16,
                         bool inv)
{
    memset(pp, 0, sizeof *pp);
    pp->chunk = MM_CHUNK;
#ifdef OURO_X86_SIMD
    int pdt = -1;
    for (int i = 0; i < count; i++) {
        if (dts[i] == OURO_Q8 || dts[i] == OURO_Q4 || pdt == -2)
            continue;
        pdt = pdt == -1 || pdt == (int)dts[i] ? (int)dts[i] : -2;   /* -2: several dtypes */
    }
    if (pdt == -1)
        return;                          /* q8 / q4 alone: nothing to pack */
    bool self = ouro_simd() == OURO_SIMD_AVX512 || (bf16 && ouro_cpu_bf16dp());
    pp->self_pack = self;
    if (pdt == OURO_BF16 && amx_wanted(n, bf16, inv)) {
        int pieces = bf16 ? 1 : 3;
        size_t bytes = (size_t)amx_tiles(n) * amx_steps(d_in) * pieces * AMX_BLOCK;
        if ((pp->px = aligned_alloc(64, bytes))) {
            pp->pdt = OURO_BF16;
            pp->amx = pieces;
            if (amx_tiles(n) > 2)   /* x is reused: by as many rows as the L2 blocking allows */
                pp->chunk = AMX_RB;
            pp->self_pack = false;
            return;
        }
    }
    if (pdt == -2 || !self)
        return;
    pp->pdt = (ouro_dtype)pdt;
    pp->bf16 = bf16 && pdt == OURO_BF16 && ouro_cpu_bf16dp();
    if (!pp->bf16 && ouro_simd() != OURO_SIMD_AVX512)
        return;                          /* bf16 kernels for another dtype's sake: not this one */
    pp->kb = mm_kb(n, pp->bf16 ? 2 * MM_XBUF : MM_XBUF, inv && !pp->bf16);
    size_t el = pp->bf16 ? 2 : 4, d_pad = ((size_t)d_in + 31) / 32 * 32;
    pp->px = aligned_alloc(64, ((size_t)n * d_pad * el + 63) / 64 * 64);
    if (pp->px)
        pp->self_pack = false;
#else
    (void)dts; (void)count; (void)n; (void)d_in; (void)bf16; (void)inv;
#endif
}

/* Packs x into pp->px, block by block, the tokens split among the team
 * (ends with the team's barrier); inside a parallel region. */
static void mm_prep_fill(const mm_prep *pp, const float *x, int n, int d_in)
{
    if (!pp->px)
        return;
#ifdef OURO_X86_SIMD
    if (pp->amx) {
        int all = amx_steps(d_in), units = amx_tiles(n) * all;
        #pragma omp for schedule(static)
        for (int i = 0; i < units; i++)
            amx_pack((uint32_t *)((char *)pp->px + (size_t)i * pp->amx * AMX_BLOCK), x, n, d_in,
                     i / all, i % all, pp->amx);
        return;
    }
    #pragma omp for schedule(static)
    for (int t = 0; t < n; t++)
        for (int k0 = 0; k0 < d_in; k0 += pp->kb) {
            int kv = d_in - k0 < pp->kb ? d_in - k0 : pp->kb;
            int kpad = (kv + 31) / 32 * 32;
            size_t at = (size_t)n * k0 + (size_t)t * kpad;
            if (pp->bf16)
                mmb_pack((uint16_t *)pp->px + at, kpad, x, (size_t)d_in, t, 1, k0, kv);
            else
                mm_pack((float *)pp->px + at, kpad, x, (size_t)d_in, t, 1, k0, kv, pp->pdt);
        }
#else
    (void)x; (void)n; (void)d_in;
#endif
}

static void fill_nan(float *y, size_t count)
{
    for (size_t i = 0; i < count; i++)
        y[i] = NAN;
}

/* Threads for a product of `work` multiply-adds over `rows` rows. */
static int mm_threads(size_t work, int rows, int threads)
{
    int nt = work < 65536 ? 1 : threads;   /* small products are not worth waking the team */
    if (nt > rows / 16)
        nt = rows / 16 > 0 ? rows / 16 : 1;
    return nt < 1 ? 1 : nt;
}

/* This thread's share [*r0, *r1) of `rows` rows split among cnt threads in
 * contiguous ranges, multiples of 16 except the last. */
static void mm_share(int rows, int id, int cnt, int *r0, int *r1)
{
    int per = (rows + cnt - 1) / cnt;
    per = (per + 15) / 16 * 16;
    *r0 = id * per < rows ? id * per : rows;
    *r1 = *r0 + per < rows ? *r0 + per : rows;
}

/* Chunks of a product shared by the team.  Each thread walks a contiguous
 * share of the chunks from its start, so that at one token it reads its
 * weights as one stream in memory order (each kernel call's prefetches reach
 * into the next call's rows, which the same thread reads next); a thread that
 * has finished its share takes chunks from the end of the others', so a
 * thread the system deschedules (other work on the machine) holds back the
 * chunk it is on, not its share.  Share i holds chunks [front, back), packed
 * in one atomic word (front in the low 32 bits).  Measured on Ouro-1.4B
 * shapes, 2 threads, a decode step's products against chunks taken in turn by
 * whichever thread is free: q4 25.9 -> 27.0 GB/s, q8 29.5 -> 30.3, bf16
 * weights (exact) 27.5 -> 28.5. */
#define MM_SHARES 64         /* most threads of a team that get a share (the rest only take) */

typedef struct mm_sched {
    _Atomic uint64_t share[MM_SHARES];
    int n_shares;
} mm_sched;

/* Splits n_chunks chunks into shares for `threads` threads (before the region). */
static void mm_sched_init(mm_sched *sc, int n_chunks, int threads)
{
    int ns = threads < 1 ? 1 : threads > MM_SHARES ? MM_SHARES : threads;
    sc->n_shares = ns;
    for (int i = 0; i < ns; i++) {
        uint64_t f = (uint64_t)((int64_t)n_chunks * i / ns), b = (uint64_t)((int64_t)n_chunks * (i + 1) / ns);
        atomic_init(&sc->share[i], f | b << 32);
    }
}

/* Takes a chunk of share i, from its front (own) or its back; false when it is empty. */
static bool mm_sched_take(mm_sched *sc, int i, bool own, int *chunk)
{
    uint64_t v = atomic_load_explicit(&sc->share[i], memory_order_relaxed);
    for (;;) {
        uint32_t f = (uint32_t)v, b = (uint32_t)(v >> 32);
        if (f >= b)
            return false;
        uint64_t nv = own ? (uint64_t)(f + 1) | (uint64_t)b << 32 : (uint64_t)f | (uint64_t)(b - 1) << 32;
        if (atomic_compare_exchange_weak_explicit(&sc->share[i], &v, nv, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *chunk = (int)(own ? f : b - 1);
            return true;
        }
    }
}

/* The next chunk for thread id of the team: its own share first, then the
 * others' from their ends; false when none is left. */
static bool mm_sched_next(mm_sched *sc, int id, int *chunk)
{
    if (id < sc->n_shares && mm_sched_take(sc, id, true, chunk))
        return true;
    for (int k = 1; k <= sc->n_shares; k++)
        if (mm_sched_take(sc, (id + k) % sc->n_shares, false, chunk))
            return true;
    return false;
}

/* Runs the statements given last over the rows [lo, hi) of [0, rows), on
 * the calling thread of the team: in chunks of `chunk` rows from the shares
 * of sched (initialized for (rows + chunk - 1) / chunk chunks), or
 * (self_pack) in one contiguous share per thread.  Inside a parallel region. */
#define MM_FOR_ROWS(rows, self_pack, chunk, sched, lo, hi, ...) do { \
        int id_ = 0, cnt_ = 1; \
        MM_TEAM(id_, cnt_); \
        if (self_pack) { \
            int lo, hi; \
            mm_share((rows), id_, cnt_, &lo, &hi); \
            if (lo < hi) { __VA_ARGS__ } \
        } else { \
            int ch_ = (chunk), c_; \
            while (mm_sched_next((sched), id_, &c_)) { \
                int lo = c_ * ch_, hi = lo + ch_ < (rows) ? lo + ch_ : (rows); \
                __VA_ARGS__ \
            } \
        } \
    } while (0)
#ifdef _OPENMP
#define MM_TEAM(id, cnt) do { (id) = omp_get_thread_num(); (cnt) = omp_get_num_threads(); } while (0)
#else
#define MM_TEAM(id, cnt) do { (id) = 0; (cnt) = 1; } while (0)
#endif

void ouro_matmul_multi(const ouro_mm_out *outs, int count, const float *x, int n, int d_in,
                       int threads, ouro_precision prec, ouro_mm_ws *ws)
{
    int rows = 0;
    bool q8 = false;
    ouro_dtype dts[8] = {0}, qdt = OURO_Q8;   /* q4 if any output is: its tiles start lower */
    for (int i = 0; i < count; i++) {
        rows += outs[i].d_out;
        q8 = q8 || outs[i].dt == OURO_Q8 || outs[i].dt == OURO_Q4;
        qdt = outs[i].dt == OURO_Q4 ? OURO_Q4 : qdt;
        dts[i < 8 ? i : 7] = outs[i].dt;
    }
    if (d_in <= 0) {   /* empty sums: the SIMD kernels would store nothing */
        for (int i = 0; i < count; i++)
            memset(outs[i].y, 0, (size_t)n * outs[i].d_out * sizeof(float));
        return;
    }
    void *owned = NULL, *qx = NULL;
    if (q8 && !(qx = mm_q8_prepare(x, n, d_in, threads, qdt, ws, &owned))) {
        for (int i = 0; i < count; i++)
            fill_nan(outs[i].y, (size_t)n * outs[i].d_out);
        return;
    }
    bool bf16 = prec == OURO_PRECISION_BF16, inv = prec == OURO_PRECISION_INVARIANT;
    mm_prep pp;
    mm_prep_init(&pp, dts, count < 8 ? count : 8, n, d_in, bf16, inv);
    if (count > 8)
        pp.self_pack = true;   /* never in the forward pass (at most 3 outputs) */
    pp.qx = qx;
    int nt = mm_threads((size_t)n * d_in * rows, rows, threads);
    mm_sched sched;
    mm_sched_init(&sched, (rows + pp.chunk - 1) / pp.chunk, nt);
    #pragma omp parallel num_threads(nt)
    {
        ouro_worker_signals();
        mm_prep_fill(&pp, x, n, d_in);
        MM_FOR_ROWS(rows, pp.self_pack, pp.chunk, &sched, g0, g1, {
            int base = 0;
            for (int i = 0; i < count && base < g1; base += outs[i].d_out, i++) {
                int r0 = g0 - base, r1 = g1 - base;
                if (r0 < 0)
                    r0 = 0;
                if (r1 > outs[i].d_out)
                    r1 = outs[i].d_out;
                if (r0 < r1)
                    mm_rows(outs[i].y, x, &pp, outs[i].w, outs[i].dt, n, d_in, outs[i].d_out, r0, r1,
                            bf16, inv);
            }
        });
    }
    free(pp.px);
    free(owned);
}

void ouro_matmul_glu(float *h, float *tmp, const float *x, const void *w_gate, const void *w_up,
                     ouro_dtype dt, int n, int d_in, int d_out, int threads, ouro_precision prec,
                     ouro_mm_ws *ws)
{
    if (d_in <= 0) {   /* silu(0) * 0 */
        memset(h, 0, (size_t)n * d_out * sizeof(float));
        return;
    }
    void *owned = NULL, *qx = NULL;
    if ((dt == OURO_Q8 || dt == OURO_Q4) && !(qx = mm_q8_prepare(x, n, d_in, threads, dt, ws, &owned))) {
        fill_nan(h, (size_t)n * d_out);
        return;
    }
    bool bf16 = prec == OURO_PRECISION_BF16, inv = prec == OURO_PRECISION_INVARIANT;
    mm_prep pp;
    mm_prep_init(&pp, &dt, 1, n, d_in, bf16, inv);
    pp.qx = qx;
    int nt = mm_threads((size_t)2 * n * d_in * d_out, d_out, threads);
    mm_sched sched;
    mm_sched_init(&sched, (d_out + pp.chunk - 1) / pp.chunk, nt);
    #pragma omp parallel num_threads(nt)
    {
        ouro_worker_signals();
        mm_prep_fill(&pp, x, n, d_in);
        MM_FOR_ROWS(d_out, pp.self_pack, pp.chunk, &sched, r0, r1, {
            mm_rows(h, x, &pp, w_gate, dt, n, d_in, d_out, r0, r1, bf16, inv);
            mm_rows(tmp, x, &pp, w_up, dt, n, d_in, d_out, r0, r1, bf16, inv);
            for (int i = 0; i < n; i++)
                ouro_silu_mul(h + (size_t)i * d_out + r0, tmp + (size_t)i * d_out + r0, r1 - r0);
        });
    }
    free(pp.px);
    free(owned);
}

void ouro_matmul_prec(float *y, const float *x, const void *w, ouro_dtype dt,
                      int n, int d_in, int d_out, int threads, ouro_precision prec, ouro_mm_ws *ws)
{
    ouro_mm_out o = { .y = y, .w = w, .dt = dt, .d_out = d_out };
    ouro_matmul_multi(&o, 1, x, n, d_in, threads, prec, ws);
}

void ouro_matmul(float *y, const float *x, const void *w, ouro_dtype dt,
                 int n, int d_in, int d_out, int threads)
{
    ouro_matmul_prec(y, x, w, dt, n, d_in, d_out, threads, OURO_PRECISION_EXACT, NULL);
}

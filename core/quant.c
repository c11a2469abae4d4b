/*
 * quant.c -- the 8-bit block-quantized weight format (q8) and its products.
 *
 * `ouro convert` (core/convert.c) writes every matrix of a checkpoint in this
 * format once; the loader maps the file and the kernels here read it in
 * place.  A matrix W (rows, cols) is cut into groups of 16 rows (the last
 * group padded with zero rows) and each row into blocks of 32 columns (the
 * last block padded with zeros), so any row length works.  Each (row, block)
 * has its own scale d (f16) and 32 integers w_q in [-127, 127] with
 * W[r][k] ~ d * w_q[r][k]; d = max|W[r][block]| / 127 rounded to f16, and
 * w_q = round(W / d) with that rounded d.
 *
 * Bytes of group g (ouro_q8_group_bytes(cols) each, groups one after another):
 *   quants: nb blocks of 512 bytes; in block b the byte
 *           b * 512 + j * 64 + i * 4 + e  holds  w_q[16g + i][32b + 4j + e] + 128
 *           (j = 0..7 the 4-column quad, i = 0..15 the row, e = 0..3),
 *   scales: nb * 16 f16 values, d of row 16g + i, block b at index b * 16 + i,
 *           then zero padding to a multiple of 64 bytes.
 * One 64-byte load of quants thus holds 4 columns of 16 rows, which is what
 * the AVX-512 VNNI instruction vpdpbusd multiplies with 4 bytes of one
 * activation row broadcast to every lane: 64 multiply-adds, one sum per row.
 *
 * Products with q8 weights round the activations too (as llama.cpp's Q8_0
 * does): each token's x is cut into the same blocks of 32 and quantized to
 * int8 with a scale s = max|x[block]| / 127.  Then
 *   y[t][r] = sum over blocks b, in order, of
 *             (d[r][b] * s[t][b]) * (sum_k (w_q + 128) * x_q  -  128 * sum_k x_q)
 * with the integer sums exact and each block's term added with one fused
 * multiply-add in f32.  Every path (AMX tiles, AVX-512 VNNI, AVX2, portable C) computes
 * exactly these operations in this order, so all give the same bits; tests
 * compare them for equality.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#ifdef OURO_X86_SIMD   /* the AVX2, AVX-512 and VNNI paths: x86-64 only (base.h) */
#include <immintrin.h>
#endif

#define Q8_ROWS 16           /* rows of a group */
#define Q8_BLOCK 32          /* columns of a block */
#define Q8_QBYTES 512        /* quant bytes of one block of one group */

static inline int q8_nb(int64_t cols) { return (int)((cols + Q8_BLOCK - 1) / Q8_BLOCK); }

size_t ouro_q8_group_bytes(int64_t cols)
{
    size_t nb = (size_t)q8_nb(cols);
    return nb * Q8_QBYTES + (nb * Q8_ROWS * 2 + 63) / 64 * 64;
}

size_t ouro_q8_bytes(int64_t rows, int64_t cols)
{
    return (size_t)((rows + Q8_ROWS - 1) / Q8_ROWS) * ouro_q8_group_bytes(cols);
}

/* ------------------------------------------------------------------------
 * Weights: quantize, dequantize
 * ------------------------------------------------------------------------ */

void ouro_q8_quantize_group(uint8_t *dst, const float *rows, int n_rows, int64_t cols)
{
    int nb = q8_nb(cols);
    uint16_t *scales = (uint16_t *)(dst + (size_t)nb * Q8_QBYTES);
    memset(dst, 128, (size_t)nb * Q8_QBYTES);
    memset(scales, 0, ouro_q8_group_bytes(cols) - (size_t)nb * Q8_QBYTES);
    for (int i = 0; i < n_rows; i++) {
        const float *w = rows + (size_t)i * cols;
        for (int b = 0; b < nb; b++) {
            int k0 = b * Q8_BLOCK, len = cols - k0 < Q8_BLOCK ? (int)(cols - k0) : Q8_BLOCK;
            float amax = 0.0f;
            for (int k = 0; k < len; k++)
                amax = fmaxf(amax, fabsf(w[k0 + k]));
            uint16_t dh = ouro_f32_to_f16(amax / 127.0f);
            float d = ouro_f16_to_f32(dh);
            scales[b * Q8_ROWS + i] = dh;
            if (!(d > 0.0f) || !isfinite(d))   /* all zero, or a value f16 cannot scale */
                continue;
            uint8_t *q = dst + (size_t)b * Q8_QBYTES;
            for (int k = 0; k < len; k++) {
                float v = nearbyintf(w[k0 + k] / d);
                v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
                q[(k / 4) * 64 + i * 4 + k % 4] = (uint8_t)((int)v + 128);
            }
        }
    }
}

void ouro_q8_row_to_f32(float *out, const void *w, size_t row, int64_t cols)
{
    int nb = q8_nb(cols);
    const uint8_t *g = (const uint8_t *)w + (row / Q8_ROWS) * ouro_q8_group_bytes(cols);
    const uint16_t *scales = (const uint16_t *)(g + (size_t)nb * Q8_QBYTES);
    int i = (int)(row % Q8_ROWS);
    for (int b = 0; b < nb; b++) {
        float d = ouro_f16_to_f32(scales[b * Q8_ROWS + i]);
        const uint8_t *q = g + (size_t)b * Q8_QBYTES + i * 4;
        for (int k = b * Q8_BLOCK; k < cols && k < (b + 1) * Q8_BLOCK; k++) {
            int kk = k - b * Q8_BLOCK;
            out[k] = d * (float)((int)q[(kk / 4) * 64 + kk % 4] - 128);
        }
    }
}

float ouro_q8_dot_row(const void *w, size_t row, const float *x, int64_t cols)
{
    int nb = q8_nb(cols);
    const uint8_t *g = (const uint8_t *)w + (row / Q8_ROWS) * ouro_q8_group_bytes(cols);
    const uint16_t *scales = (const uint16_t *)(g + (size_t)nb * Q8_QBYTES);
    int i = (int)(row % Q8_ROWS);
    float acc = 0.0f;
    for (int64_t k = 0; k < cols; k++) {
        int b = (int)(k / Q8_BLOCK), kk = (int)(k % Q8_BLOCK);
        float d = ouro_f16_to_f32(scales[b * Q8_ROWS + i]);
        acc += d * (float)((int)g[(size_t)b * Q8_QBYTES + (kk / 4) * 64 + i * 4 + kk % 4] - 128) * x[k];
    }
    return acc;
}

/* ------------------------------------------------------------------------
 * Activations
 * ------------------------------------------------------------------------ */

/* n rounded up to 16: the tokens of whole AMX tiles. */
static inline size_t q8_act_rows(int n) { return ((size_t)n + 15) / 16 * 16; }

size_t ouro_q8_act_bytes(int n, int d_in)
{
    size_t nb = (size_t)q8_nb(d_in);
    return (size_t)n * nb * (Q8_BLOCK + sizeof(float) + sizeof(int32_t))
           + q8_act_rows(n) * nb * (Q8_BLOCK + sizeof(float)) + 128;
}

/* The activation blocks as the kernels read them, inside a workspace
 * (internal.h: q, s, c, nb, and xt, st for the AMX tiles). */
typedef ouro_q8_act q8_act;

/* One block of one token: len (1..32) values of x. */
static void q8_act_block(int8_t *q, float *s, int32_t *c, const float *x, int len)
{
    float amax = 0.0f;
    bool finite = true;
    for (int k = 0; k < len; k++) {
        amax = fmaxf(amax, fabsf(x[k]));
        finite = finite && isfinite(x[k]);
    }
    int sum = 0;
    if (!finite) {                    /* inf or nan in x: the products become nan */
        memset(q, 0, Q8_BLOCK);
        *s = NAN;
        *c = 0;
        return;
    }
    float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int k = 0; k < Q8_BLOCK; k++) {
        int v = k < len ? (int)nearbyintf(x[k] * inv) : 0;
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        q[k] = (int8_t)v;
        sum += v;
    }
    *s = amax / 127.0f;
    *c = -128 * sum;
}

#ifdef OURO_X86_SIMD
#define AVX512_Q_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

/* The same block with AVX-512: the same operations on 16 lanes (conversion
 * rounds to nearest even, as nearbyintf in the default rounding mode). */
AVX512_Q_TARGET static void q8_act_block_avx512(int8_t *q, float *s, int32_t *c, const float *x, int len)
{
    __mmask16 m0 = len >= 16 ? 0xffff : (__mmask16)((1u << len) - 1);
    __mmask16 m1 = len >= 32 ? 0xffff : len <= 16 ? 0 : (__mmask16)((1u << (len - 16)) - 1);
    __m512 a = _mm512_maskz_loadu_ps(m0, x), b = _mm512_maskz_loadu_ps(m1, x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    if (!isfinite(amax) || _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) || _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q)) {
        memset(q, 0, Q8_BLOCK);
        *s = NAN;
        *c = 0;
        return;
    }
    __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    __m512i lim = _mm512_set1_epi32(127), nlim = _mm512_set1_epi32(-127);
    __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, inv));
    __m512i qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, inv));
    qa = _mm512_max_epi32(_mm512_min_epi32(qa, lim), nlim);
    qb = _mm512_max_epi32(_mm512_min_epi32(qb, lim), nlim);
    _mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(qa));
    _mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(qb));
    *s = amax / 127.0f;
    *c = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
}
#endif /* OURO_X86_SIMD */

/* The activation blocks of n tokens of d_in values inside ws (laid out for
 * ouro_q8_act_bytes(n, d_in) bytes: x_q 64-byte aligned, then s, c; xt
 * 64-byte aligned, then st). */
static q8_act q8_act_at(const void *ws, int n, int d_in)
{
    int nb = q8_nb(d_in);
    const int8_t *q = (const int8_t *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    const float *s = (const float *)(q + (size_t)n * nb * Q8_BLOCK);
    const int32_t *c = (const int32_t *)(s + (size_t)n * nb);
    const int8_t *xt = (const int8_t *)(((uintptr_t)(c + (size_t)n * nb) + 63) & ~(uintptr_t)63);
    return (q8_act){ q, s, c, nb, xt, (const float *)(xt + q8_act_rows(n) * nb * Q8_BLOCK) };
}

/* Tokens from which ouro_q8_prepare splits its work over the threads (each
 * token's blocks are computed by one thread either way: the same bits). */
#define Q8_PREP_PAR 8

void ouro_q8_prepare(void *ws, const float *x, int n, int d_in, int threads, ouro_dtype wdt)
{
    q8_act a = q8_act_at(ws, n, d_in);
    threads = threads < 1 ? 1 : threads;
    /* the views are read-only for the kernels; here they are filled */
    int8_t *q = (int8_t *)a.q;
    float *s = (float *)a.s;
    int32_t *c = (int32_t *)a.c;
#ifdef OURO_X86_SIMD
    bool v512 = ouro_simd() == OURO_SIMD_AVX512;
    bool tiles = n >= (wdt == OURO_Q4 ? OURO_Q4_AMX_MIN : OURO_Q8_AMX_MIN) && ouro_cpu_amx();
#endif
    #pragma omp parallel for num_threads(threads) schedule(static) if (n >= Q8_PREP_PAR && threads > 1)
    for (int t = 0; t < n; t++) {
        ouro_worker_signals();
        for (int b = 0; b < a.nb; b++) {
            size_t i = (size_t)t * a.nb + b;
            int len = d_in - b * Q8_BLOCK < Q8_BLOCK ? d_in - b * Q8_BLOCK : Q8_BLOCK;
            const float *xb = x + (size_t)t * d_in + (size_t)b * Q8_BLOCK;
#ifdef OURO_X86_SIMD
            if (v512)
                q8_act_block_avx512(q + i * Q8_BLOCK, s + i, c + i, xb, len);
            else
#endif
                q8_act_block(q + i * Q8_BLOCK, s + i, c + i, xb, len);
        }
    }
#ifdef OURO_X86_SIMD
    if (tiles)
        ouro_q8_prepare_tiles(ws, n, d_in, threads);
#endif
}

void ouro_q8_prepare_tiles(void *ws, int n, int d_in, int threads)
{
    q8_act a = q8_act_at(ws, n, d_in);
    int8_t *xt = (int8_t *)a.xt;
    float *st = (float *)a.st;
    int n16 = (n + 15) / 16;
    threads = threads < 1 ? 1 : threads;
    #pragma omp parallel for num_threads(threads) schedule(static) if (n >= Q8_PREP_PAR && threads > 1)
    for (int tb0 = 0; tb0 < n16 * a.nb; tb0++) {
        ouro_worker_signals();
        int t0 = tb0 / a.nb * 16, b = tb0 % a.nb;
        size_t tb = (size_t)tb0;
        for (int u = 0; u < 16; u++) {
            int t = t0 + u;
            if (t < n) {
                memcpy(xt + tb * 512 + u * Q8_BLOCK, a.q + ((size_t)t * a.nb + b) * Q8_BLOCK,
                       Q8_BLOCK);
                st[tb * 16 + u] = a.s[(size_t)t * a.nb + b];
            } else {
                memset(xt + tb * 512 + u * Q8_BLOCK, 0, Q8_BLOCK);
                st[tb * 16 + u] = 0.0f;
            }
        }
    }
}

/* ------------------------------------------------------------------------
 * Products: portable C (the reference the other paths equal)
 * ------------------------------------------------------------------------ */

/* Rows lo .. hi-1 (inside group g) for token t. */
static void q8_group_c(float *y, const q8_act *a, int t, const uint8_t *g, int lo, int hi)
{
    int nb = a->nb;
    const uint16_t *scales = (const uint16_t *)(g + (size_t)nb * Q8_QBYTES);
    const int8_t *xq = a->q + (size_t)t * nb * Q8_BLOCK;
    for (int i = lo; i < hi; i++) {
        float acc = 0.0f;
        for (int b = 0; b < nb; b++) {
            const uint8_t *q = g + (size_t)b * Q8_QBYTES + i * 4;
            const int8_t *xb = xq + b * Q8_BLOCK;
            int32_t dot = a->c[(size_t)t * nb + b];
            for (int j = 0; j < 8; j++)
                for (int e = 0; e < 4; e++)
                    dot += (int32_t)q[j * 64 + e] * xb[j * 4 + e];
            float sc = ouro_f16_to_f32(scales[b * Q8_ROWS + i]) * a->s[(size_t)t * nb + b];
            acc = fmaf((float)dot, sc, acc);
        }
        y[i] = acc;
    }
}

/* ------------------------------------------------------------------------
 * Products: AVX2 (no VNNI needed)
 *
 * 32 bytes of quants (4 columns of 8 rows) at a time.  vpmaddubsw multiplies
 * unsigned by signed bytes with 16-bit sums that could overflow for w_q + 128,
 * so the signed w_q is used: |w_q| (unsigned) times x_q with w_q's sign
 * (vpsignb); pairs then sum to at most 2 * 127 * 127, and vpmaddwd with ones
 * adds the pairs into one 32-bit sum per row: sum_k w_q * x_q, the same
 * integer as the reference's.
 * ------------------------------------------------------------------------ */

#ifdef OURO_X86_SIMD
#define AVX2_Q_TARGET __attribute__((target("avx2,fma,f16c")))

/* One group, tokens t0 .. t0+nr-1 (nr 1 or 2); rows lo .. hi-1 stored. */
AVX2_Q_TARGET static inline __attribute__((always_inline))
void q8_group_avx2(int nr, float *y, size_t ldy, const q8_act *a, int t0, const uint8_t *g,
                   int lo, int hi)
{
    int nb = a->nb;
    const uint8_t *scales = g + (size_t)nb * Q8_QBYTES;
    const __m256i bias = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    __m256 f[2][2] = { { _mm256_setzero_ps(), _mm256_setzero_ps() },
                       { _mm256_setzero_ps(), _mm256_setzero_ps() } };
    for (int b = 0; b < nb; b++) {
        __m256i ia[2][2] = { { _mm256_setzero_si256(), _mm256_setzero_si256() },
                             { _mm256_setzero_si256(), _mm256_setzero_si256() } };
        const uint8_t *qb = g + (size_t)b * Q8_QBYTES;
        for (int j = 0; j < 8; j++) {
            __m256i xb[2];
            for (int t = 0; t < nr; t++) {
                int32_t v;
                memcpy(&v, a->q + ((size_t)(t0 + t) * nb + b) * Q8_BLOCK + 4 * j, 4);
                xb[t] = _mm256_set1_epi32(v);
            }
            for (int h = 0; h < 2; h++) {
                __m256i ws = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(qb + j * 64 + h * 32)), bias);
                __m256i aw = _mm256_abs_epi8(ws);
                for (int t = 0; t < nr; t++) {
                    __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xb[t], ws));
                    ia[h][t] = _mm256_add_epi32(ia[h][t], _mm256_madd_epi16(p, ones));
                }
            }
        }
        for (int h = 0; h < 2; h++) {
            __m256 sw = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(scales + b * 32 + h * 16)));
            for (int t = 0; t < nr; t++) {
                __m256 sc = _mm256_mul_ps(sw, _mm256_set1_ps(a->s[(size_t)(t0 + t) * nb + b]));
                f[h][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[h][t]), sc, f[h][t]);
            }
        }
    }
    for (int t = 0; t < nr; t++) {
        _Alignas(32) float tmp[16];
        _mm256_store_ps(tmp, f[0][t]);
        _mm256_store_ps(tmp + 8, f[1][t]);
        memcpy(y + (size_t)t * ldy + lo, tmp + lo, (size_t)(hi - lo) * sizeof(float));
    }
}

AVX2_Q_TARGET static void q8_group_avx2_1(float *y, size_t ldy, const q8_act *a, int t0,
                                          const uint8_t *g, int lo, int hi)
{
    q8_group_avx2(1, y, ldy, a, t0, g, lo, hi);
}

AVX2_Q_TARGET static void q8_group_avx2_2(float *y, size_t ldy, const q8_act *a, int t0,
                                          const uint8_t *g, int lo, int hi)
{
    q8_group_avx2(2, y, ldy, a, t0, g, lo, hi);
}
#endif /* OURO_X86_SIMD */

/* ------------------------------------------------------------------------
 * Products: AVX-512 VNNI
 *
 * A microkernel holds mg groups (16 rows each, one row per lane) by nr tokens
 * of 32-bit block sums and f32 totals: per block it loads each 64-byte quad of
 * quants once and feeds it to nr vpdpbusd (one per token, 4 bytes of x_q
 * broadcast), so at nr = 6 one weight byte serves 6 tokens.  The block sums
 * start at -128 * sum(x_q) and end as one fused multiply-add per group and
 * token.  Rows outside the caller's range are masked off at the store.
 *
 * More tokens than one microkernel holds (up to Q8_RUN) are cut into tiles
 * that take the blocks b0 .. b1-1 of the same groups in turn, Q8_CHUNK
 * blocks at a time (ouro_qrows): the first tile reads a chunk from memory,
 * the others find it in L1, so each weight byte comes from memory once for
 * all the tokens.  Between chunks a tile's f32 totals wait in acc (one
 * 16-float row per group and token, Q8_MG groups per token).  pf says which
 * prefetches a call makes: 1 (the first tile, and a lone one) the lines and
 * scales described next, 2 (the second tile) the lines of the next chunk,
 * 0 (the others) none: they read what the first one brought into L1.
 *
 * Each group's quants are one stream of nb * 512 bytes, read once: every
 * 64-byte line is prefetched Q8_PF bytes ahead (the hardware prefetchers
 * alone keep too few lines in flight for mg streams at once; measured in the
 * README, "Huge pages and prefetch"), and its scales Q8_SPF bytes ahead, a
 * line every other block, as q4 does.  Prefetches stay inside the group (the
 * one-token kernel's run on into the next groups of the same matrix, q8k_4x1
 * below), so they never reach past the mapping.
 * ------------------------------------------------------------------------ */

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c")))
#define Q8_MG 4              /* most groups per microkernel */
#define Q8_NR OURO_Q_NR      /* most tokens per microkernel */
#ifndef Q8_PF
#define Q8_PF 1024           /* software prefetch distance in each group's quants, bytes */
#endif
#ifndef Q8_SPF
#define Q8_SPF 256           /* the same in each group's scales, bytes */
#endif
#ifndef Q8_FPF
#define Q8_FPF 2048          /* one token (q8k_4x1): far prefetch in the quants, bytes */
#endif
#ifndef Q8_CHUNK
#define Q8_CHUNK 4           /* blocks of a group that every token tile takes in turn (q4: twice) */
#endif
#define Q8_RUN 32            /* most tokens that share one read of the weights */

#ifdef OURO_X86_SIMD

VNNI_TARGET static inline __attribute__((always_inline))
void q8_kernel_vnni(int mg, int nr, float *y, size_t ldy, const q8_act *a, int t0,
                    const uint8_t *g, size_t gstride, const __mmask16 *mask, int b0, int b1,
                    float *acc, int pf)
{
    int nb = a->nb;
    __m512 f[Q8_MG][Q8_NR];
    #pragma GCC unroll 4
    for (int m = 0; m < mg; m++)
        #pragma GCC unroll 6
        for (int t = 0; t < nr; t++)
            f[m][t] = b0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(acc + (t * Q8_MG + m) * 16);
    const int8_t *xq = a->q + (size_t)t0 * nb * Q8_BLOCK;
    const float *xs = a->s + (size_t)t0 * nb;
    const int32_t *xc = a->c + (size_t)t0 * nb;
    size_t ldq = (size_t)nb * Q8_BLOCK;
    for (int b = b0; b < b1; b++) {
        __m512i ia[Q8_MG][Q8_NR];
        #pragma GCC unroll 6
        for (int t = 0; t < nr; t++) {
            __m512i c0 = _mm512_set1_epi32(xc[(size_t)t * nb + b]);
            #pragma GCC unroll 4
            for (int m = 0; m < mg; m++)
                ia[m][t] = c0;
        }
        const uint8_t *qb = g + (size_t)b * Q8_QBYTES;
        /* the lines Q8_PF bytes ahead, or (past the group's quants) the block's own */
        const uint8_t *qa = pf == 2 ? qb + (b + (b1 - b0) < nb ? (size_t)(b1 - b0) * Q8_QBYTES : 0)
                                    : qb + (b + Q8_PF / Q8_QBYTES < nb ? Q8_PF : 0);
        if (pf == 1 && Q8_SPF > 0 && b % 2 == 0 && b + Q8_SPF / 32 < nb)   /* the line ahead is a scale */
            #pragma GCC unroll 4
            for (int m = 0; m < mg; m++)
                _mm_prefetch((const char *)g + m * gstride + (size_t)nb * Q8_QBYTES + (size_t)b * 32
                             + Q8_SPF, _MM_HINT_T0);
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i wv[Q8_MG];
            #pragma GCC unroll 4
            for (int m = 0; m < mg; m++) {
                if (pf && Q8_PF > 0)
                    _mm_prefetch((const char *)qa + m * gstride + j * 64, _MM_HINT_T0);
                wv[m] = _mm512_load_si512(qb + m * gstride + j * 64);
            }
            #pragma GCC unroll 6
            for (int t = 0; t < nr; t++) {
                int32_t v;
                memcpy(&v, xq + (size_t)t * ldq + (size_t)b * Q8_BLOCK + 4 * j, 4);
                __m512i xb = _mm512_set1_epi32(v);
                #pragma GCC unroll 4
                for (int m = 0; m < mg; m++)
                    ia[m][t] = _mm512_dpbusd_epi32(ia[m][t], wv[m], xb);
            }
        }
        #pragma GCC unroll 4
        for (int m = 0; m < mg; m++) {
            __m512 sw = _mm512_cvtph_ps(_mm256_load_si256(
                (const __m256i *)(g + m * gstride + (size_t)nb * Q8_QBYTES + (size_t)b * 32)));
            #pragma GCC unroll 6
            for (int t = 0; t < nr; t++) {
                __m512 sc = _mm512_mul_ps(sw, _mm512_set1_ps(xs[(size_t)t * nb + b]));
                f[m][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[m][t]), sc, f[m][t]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int m = 0; m < mg; m++)
        #pragma GCC unroll 6
        for (int t = 0; t < nr; t++) {
            if (b1 == nb)
                _mm512_mask_storeu_ps(y + (size_t)t * ldy + m * Q8_ROWS, mask[m], f[m][t]);
            else
                _mm512_store_ps(acc + (t * Q8_MG + m) * 16, f[m][t]);
        }
}

#define Q8K(MG, NR) \
    VNNI_TARGET static void q8k_##MG##x##NR(float *y, size_t ldy, const q8_act *a, int t0, \
        const uint8_t *g, size_t gstride, const __mmask16 *mask, int b0, int b1, float *acc, int pf) \
    { \
        if (pf == 1) \
            q8_kernel_vnni(MG, NR, y, ldy, a, t0, g, gstride, mask, b0, b1, acc, 1); \
        else if (pf == 2) \
            q8_kernel_vnni(MG, NR, y, ldy, a, t0, g, gstride, mask, b0, b1, acc, 2); \
        else \
            q8_kernel_vnni(MG, NR, y, ldy, a, t0, g, gstride, mask, b0, b1, acc, 0); \
    }
Q8K(1, 1) Q8K(1, 2) Q8K(1, 3) Q8K(1, 4) Q8K(1, 5) Q8K(1, 6)
Q8K(2, 1) Q8K(2, 2) Q8K(2, 3) Q8K(2, 4) Q8K(2, 5) Q8K(2, 6)
/* One token, four groups: the kernel of single-sequence decode, where a
 * product reads every weight once and the memory's pace bounds it.  The
 * four groups are four streams; each line of quants is prefetched twice,
 * Q8_PF bytes ahead into L1 and Q8_FPF bytes ahead with the hint for the
 * outer caches, and the scales Q8_SPF bytes ahead.  Near a group's end the
 * prefetches run on into `next` (the four groups at g + 4 * gstride, which a
 * thread walking its rows in memory order reads next; NULL where they are
 * past the matrix), so the next call starts on lines already on their way.
 * Each block's eight quads feed two integer sums per group (even and odd
 * quads, added at the end of the block: the same exact integer as one
 * chain, in half the latency). */
VNNI_TARGET static void q8k_4x1(float *y, const q8_act *a, const uint8_t *g, size_t gstride,
                                const uint8_t *next, const __mmask16 *mask)
{
    int nb = a->nb;
    size_t qend = (size_t)nb * Q8_QBYTES, send = qend + (size_t)nb * 32;
    /* from an offset past this group's quants (or scales) to the same place in next */
    size_t d = next ? (size_t)(next - g) : 0;
    size_t skip = next ? d - qend : 0, sskip = next ? d - (size_t)nb * 32 : 0;
    const uint8_t *gm[4] = { g, g + gstride, g + 2 * gstride, g + 3 * gstride };
    __m512 zf = _mm512_setzero_ps(), f[4] = { zf, zf, zf, zf };
    for (int b = 0; b < nb; b++) {
        size_t qo = (size_t)b * Q8_QBYTES, o = qo + Q8_PF, of = qo + Q8_FPF;
        o = o < qend ? o : next && o < 2 * qend ? o + skip : qo;   /* else: the block's */
        of = of < qend ? of : next && of < 2 * qend ? of + skip : qo;   /* own lines */
        if (Q8_SPF > 0 && b % 2 == 0) {                 /* a line of scales every other block */
            size_t so = qend + (size_t)b * 32 + Q8_SPF;
            if (so < send || (next && so < send + (size_t)nb * 32))
                #pragma GCC unroll 4
                for (int m = 0; m < 4; m++)
                    _mm_prefetch((const char *)gm[m] + (so < send ? so : so + sskip), _MM_HINT_T0);
        }
        const int8_t *xb = a->q + (size_t)b * Q8_BLOCK;
        __m512i c0 = _mm512_set1_epi32(a->c[b]), z = _mm512_setzero_si512();
        __m512i i0[4] = { c0, c0, c0, c0 }, i1[4] = { z, z, z, z };
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            int32_t v;
            memcpy(&v, xb + 4 * j, 4);
            __m512i xv = _mm512_set1_epi32(v);
            #pragma GCC unroll 4
            for (int m = 0; m < 4; m++) {
                if (Q8_PF > 0)
                    _mm_prefetch((const char *)gm[m] + o + j * 64, _MM_HINT_T0);
                if (Q8_FPF > 0)
                    _mm_prefetch((const char *)gm[m] + of + j * 64, _MM_HINT_T2);
                __m512i w = _mm512_load_si512(gm[m] + qo + j * 64);
                if (j % 2)
                    i1[m] = _mm512_dpbusd_epi32(i1[m], w, xv);
                else
                    i0[m] = _mm512_dpbusd_epi32(i0[m], w, xv);
            }
        }
        #pragma GCC unroll 4
        for (int m = 0; m < 4; m++) {
            const __m256i *sp = (const __m256i *)(gm[m] + qend + (size_t)b * 32);
            __m512 sw = _mm512_cvtph_ps(_mm256_load_si256(sp));
            __m512 sc = _mm512_mul_ps(sw, _mm512_set1_ps(a->s[b]));
            f[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(i0[m], i1[m])), sc, f[m]);
        }
    }
    #pragma GCC unroll 4
    for (int m = 0; m < 4; m++)
        _mm512_mask_storeu_ps(y + m * Q8_ROWS, mask[m], f[m]);
}
#endif /* OURO_X86_SIMD */

/* ------------------------------------------------------------------------
 * Products: AMX int8 tiles (q8 and q4)
 *
 * One tile product multiplies an A tile of 16 tokens by 32 int8 x_q (one
 * block of each token; ouro_q8_prepare_tiles lays them out 16 tokens by 32
 * bytes, tile after tile) with a B tile of the same block of 16 weight rows
 * (8 rows of 64 bytes: the q8 layout above, byte j * 64 + i * 4 + e = column
 * 4j + e of row i) into a C tile of 16 x 16 int32: exact integer sums of 16
 * tokens by 16 rows.  Two ways to get the B tiles:
 *  - unpacked (q4 always, q8 from AMX_INPLACE + 1 token tiles): the weights
 *    are first written as signed int8 w_q in that layout into a buffer on the
 *    stack, 16 or 64 blocks of one group at a time (q8: each byte minus 128;
 *    q4: both nibbles minus 8), and the buffer serves every token tile of a
 *    pass (tdpbssd), so the sums are sum_k w_q * x_q;
 *  - in place (q8, at most AMX_INPLACE token tiles, where the unpack served
 *    one or two tiles only): the file's bytes w_q + 128 are the B tile
 *    (tdpbsud: signed x_q by unsigned bytes), and a second product of the
 *    same A tile with a tile of -128 adds -128 * sum x_q, the correction the
 *    other paths add, so the integer sums are the same.  AMX_GS groups take
 *    each chunk of blocks in turn, so the chunk's A tiles come from L1.
 *    (Starting the C tile from a tile of the tokens' corrections instead, 1
 *    KB a block and token tile read from L2, or adding them in the vector
 *    work, were slower.)
 * Each block's C tile is stored to memory and added to 16 f32 accumulators
 * (one zmm per token, 16 rows per zmm) as the other paths do: (d * s) *
 * (float)sum, one fused multiply-add per block in block order, so this path
 * gives the same bits.  The C tiles of four blocks are stored while the
 * vector work adds those of the four before.  Tokens come 16 at a time; the
 * A tile of the last 16 holds zeros past n, whose sums are never used.  Each
 * call loads its tile configuration and releases it at the end.  The vector
 * work (a load, conversion, multiply and fused multiply-add per 16 sums) and
 * the wait for the weights from memory bound it, not the tile products.
 * ------------------------------------------------------------------------ */

#ifdef OURO_X86_SIMD
#define AMX_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vbmi,f16c")))
#define AMX_KB 64            /* blocks of one group unpacked at a time, at most (32 KB) */
#define AMX_KB_FEW 16        /* the same for passes of at most AMX_FEW token tiles */
#define AMX_FEW 4
#define AMX_TT 16            /* token tiles (of 16) per pass over the weights */
#define AMX_INPLACE 2        /* q8: most token tiles that read the weights in place */
#define AMX_GS 4             /* groups that take a chunk in turn, in place */
_Static_assert(AMX_GS * AMX_INPLACE <= AMX_TT, "in place, the accumulators of AMX_GS groups' "
               "token tiles share the AMX_TT sets of ouro_qamx_rows");

/* Blocks b0 .. b0+kn-1 of a q8 group g as signed int8 (each byte - 128). */
AMX_TARGET static void amx_unpack_q8(int8_t *dst, const uint8_t *g, int b0, int kn)
{
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const uint8_t *src = g + (size_t)b0 * Q8_QBYTES;
    for (int i = 0; i < kn * Q8_QBYTES / 64; i++)
        _mm512_store_si512(dst + i * 64, _mm512_xor_si512(_mm512_load_si512(src + i * 64), bias));
}

/* Blocks b0 .. b0+kn-1 of a q4 group g (256 bytes a block, see quant4.c) as
 * signed int8 in q8's layout: the low nibbles of quad j (columns 4j + e) are
 * the quad j, the high nibbles (columns 16 + 4j + e) the quad 4 + j; each
 * value u - 8 through a table indexed by the low 6 bits of a byte. */
AMX_TARGET static void amx_unpack_q4(int8_t *dst, const uint8_t *g, int b0, int kn)
{
    _Alignas(64) static const int8_t lut[64] = {
        -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7,
        -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7,
        -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7,
        -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7,
    };
    const __m512i t = _mm512_load_si512(lut);
    const uint8_t *src = g + (size_t)b0 * (Q8_QBYTES / 2);
    for (int b = 0; b < kn; b++)
        for (int j = 0; j < 4; j++) {
            __m512i v = _mm512_load_si512(src + (size_t)b * 256 + j * 64);
            _mm512_store_si512(dst + (size_t)b * Q8_QBYTES + j * 64, _mm512_permutexvar_epi8(v, t));
            _mm512_store_si512(dst + (size_t)b * Q8_QBYTES + 256 + j * 64,
                               _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), t));
        }
}

/* Adds block k's C tile (stored at cb, 16 tokens x 16 int32) to the nt
 * accumulators, with the group's f16 scales of the block and the tokens' s
 * of the block (st + k * 16). */
#define AMX_SCALE(cb, k) do { \
        __m512 sw_ = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(scales + (size_t)(k) * 16))); \
        const float *s_ = st + (size_t)(k) * 16; \
        _Pragma("GCC unroll 16") \
        for (int t = 0; t < nt; t++) { \
            __m512 sc_ = _mm512_mul_ps(sw_, _mm512_set1_ps(s_[t])); \
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512((cb) + t * 16)), sc_, acc[t]); \
            if (inplace) \
                for (pacc += pq; pacc >= nt && npf > 0; pacc -= nt, npf--, pf += 64) \
                    _mm_prefetch(pf, _MM_HINT_T1); \
        } \
    } while (0)

_Alignas(64) static const int8_t amx_m128[8 * 64] = { [0 ... 8 * 64 - 1] = -128 };

/* C tile tc += A tile ta (x_q) times block k's weights: in place, the
 * file's unsigned bytes w_q + 128 (tdpbsud) loaded into tmm2, then x_q
 * times a tile of -128 (tmm3) adds the correction -128 * sum x_q; else the
 * unpacked signed w_q in tb (tdpbssd). */
#define AMX_DP(tc, ta, tb, k) do { \
        if (inplace) { \
            _tile_loadd(2, wq + (size_t)(k) * Q8_QBYTES, 64); \
            _tile_dpbsud(tc, ta, 2); \
            _tile_dpbssd(tc, ta, 3); \
        } else { \
            _tile_loadd(tb, wq + (size_t)(k) * Q8_QBYTES, 64); \
            _tile_dpbssd(tc, ta, tb); \
        } \
    } while (0)

/* The tile products of blocks k .. k+c-1 (c 1..4) of 16 tokens by one group,
 * their C tiles stored to cb[0 .. c-1]. */
#define AMX_PRODUCTS(cb, k, c) do { \
        _tile_zero(4); \
        if ((c) > 1) \
            _tile_zero(5); \
        if ((c) > 2) \
            _tile_zero(6); \
        if ((c) > 3) \
            _tile_zero(7); \
        _tile_loadd(0, xt + (size_t)(k) * 512, Q8_BLOCK); \
        AMX_DP(4, 0, 2, (k)); \
        if ((c) > 1) { \
            _tile_loadd(1, xt + (size_t)((k) + 1) * 512, Q8_BLOCK); \
            AMX_DP(5, 1, 3, ((k) + 1)); \
        } \
        if ((c) > 2) { \
            _tile_loadd(0, xt + (size_t)((k) + 2) * 512, Q8_BLOCK); \
            AMX_DP(6, 0, 2, ((k) + 2)); \
        } \
        if ((c) > 3) { \
            _tile_loadd(1, xt + (size_t)((k) + 3) * 512, Q8_BLOCK); \
            AMX_DP(7, 1, 3, ((k) + 3)); \
        } \
        _tile_stored(4, (cb)[0], 64); \
        if ((c) > 1) \
            _tile_stored(5, (cb)[1], 64); \
        if ((c) > 2) \
            _tile_stored(6, (cb)[2], 64); \
        if ((c) > 3) \
            _tile_stored(7, (cb)[3], 64); \
    } while (0)

/* nt (1..16) tokens by one group over kn blocks: wq the blocks' weights
 * (in place: the file's q8 bytes; else signed, unpacked), scales, and xt, st
 * at the first of them (the tiles' x_q and s, ouro_q8_act).  acc_io holds
 * the nt accumulators between calls: read unless first; written unless
 * last, when the rows in mask are stored to y (nt rows ldy apart) instead.
 * The C tiles of up to 4 blocks are stored while those of the 4 before are
 * added: a load right after a tile store of the same bytes would wait for
 * that store to complete.  The npf lines from pf (the next chunk's weights,
 * or none) are prefetched into L2 along the way, an even share every 4
 * blocks; in place, where the products read the weights
 * from L2 themselves, spread further: one now and then between the tokens'
 * vector work, so that the line fill buffers never run out and stall it. */
AMX_TARGET static inline __attribute__((always_inline))
void amx_kernel(bool inplace, int nt, float *acc_io, bool first, bool last, float *y, size_t ldy,
                __mmask16 mask, const int8_t *wq, const uint16_t *scales, const int8_t *xt,
                const float *st, int kn, const char *pf, int npf)
{
    int ppi = (npf * 4 + kn - 1) / (kn > 0 ? kn : 1);   /* lines of pf prefetched per 4 blocks */
    __m512 acc[16];
    #pragma GCC unroll 16
    for (int t = 0; t < nt; t++)
        acc[t] = first ? _mm512_setzero_ps() : _mm512_load_ps(acc_io + t * 16);
    _Alignas(64) int32_t cb[2][4][256];
    int pq = (ppi + 3) / 4, pacc = 0;   /* in place: lines per block's vector work */
    if (inplace)
        _tile_loadd(3, amx_m128, 64);
    int pk = 0, pc = 0;            /* blocks pk .. pk+pc-1 stored, not yet added */
    for (int k = 0; k < kn; k += 4) {
        int c = kn - k < 4 ? kn - k : 4, h = (k / 4) & 1;
        if (!inplace || !(c == 4 && pc == 4))
            for (int j = 0; j < ppi && npf > 0; j++, npf--, pf += 64)
                _mm_prefetch(pf, _MM_HINT_T1);
        if (c == 4 && pc == 4) {   /* the vector work between the products */
            _tile_zero(4);
            _tile_zero(5);
            _tile_zero(6);
            _tile_zero(7);
            _tile_loadd(0, xt + (size_t)k * 512, Q8_BLOCK);
            AMX_DP(4, 0, 2, k);
            _tile_loadd(1, xt + (size_t)(k + 1) * 512, Q8_BLOCK);
            AMX_DP(5, 1, 3, (k + 1));
            AMX_SCALE(cb[!h][0], pk);
            _tile_loadd(0, xt + (size_t)(k + 2) * 512, Q8_BLOCK);
            AMX_DP(6, 0, 2, (k + 2));
            AMX_SCALE(cb[!h][1], pk + 1);
            _tile_loadd(1, xt + (size_t)(k + 3) * 512, Q8_BLOCK);
            AMX_DP(7, 1, 3, (k + 3));
            AMX_SCALE(cb[!h][2], pk + 2);
            _tile_stored(4, cb[h][0], 64);
            _tile_stored(5, cb[h][1], 64);
            AMX_SCALE(cb[!h][3], pk + 3);
            _tile_stored(6, cb[h][2], 64);
            _tile_stored(7, cb[h][3], 64);
        } else {
            AMX_PRODUCTS(cb[h], k, c);
            for (int u = 0; u < pc; u++)
                AMX_SCALE(cb[!h][u], pk + u);
        }
        pk = k;
        pc = c;
    }
    for (int u = 0; u < pc; u++)
        AMX_SCALE(cb[((pk / 4) & 1)][u], pk + u);
    #pragma GCC unroll 16
    for (int t = 0; t < nt; t++) {
        if (last)
            _mm512_mask_storeu_ps(y + (size_t)t * ldy, mask, acc[t]);
        else
            _mm512_store_ps(acc_io + t * 16, acc[t]);
    }
}

typedef void (*amx_kernel_fn)(float *acc_io, bool first, bool last, float *y, size_t ldy,
                              __mmask16 mask, const int8_t *wq, const uint16_t *scales,
                              const int8_t *xt, const float *st, int kn, const char *pf, int npf);

#define AMXK(NT) \
    AMX_TARGET static void amxk_##NT(float *acc_io, bool first, bool last, float *y, size_t ldy, \
        __mmask16 mask, const int8_t *wq, const uint16_t *scales, const int8_t *xt, \
        const float *st, int kn, const char *pf, int npf) \
    { amx_kernel(false, NT, acc_io, first, last, y, ldy, mask, wq, scales, xt, st, kn, pf, npf); } \
    AMX_TARGET static void amxi_##NT(float *acc_io, bool first, bool last, float *y, size_t ldy, \
        __mmask16 mask, const int8_t *wq, const uint16_t *scales, const int8_t *xt, \
        const float *st, int kn, const char *pf, int npf) \
    { amx_kernel(true, NT, acc_io, first, last, y, ldy, mask, wq, scales, xt, st, kn, pf, npf); }
AMXK(1) AMXK(2) AMXK(3) AMXK(4) AMXK(5) AMXK(6) AMXK(7) AMXK(8)
AMXK(9) AMXK(10) AMXK(11) AMXK(12) AMXK(13) AMXK(14) AMXK(15) AMXK(16)

static const amx_kernel_fn amx_kernels[2][16] = {   /* [in place][nt - 1] */
    { amxk_1, amxk_2, amxk_3, amxk_4, amxk_5, amxk_6, amxk_7, amxk_8,
      amxk_9, amxk_10, amxk_11, amxk_12, amxk_13, amxk_14, amxk_15, amxk_16 },
    { amxi_1, amxi_2, amxi_3, amxi_4, amxi_5, amxi_6, amxi_7, amxi_8,
      amxi_9, amxi_10, amxi_11, amxi_12, amxi_13, amxi_14, amxi_15, amxi_16 },
};

AMX_TARGET void ouro_qamx_rows(float *y, const ouro_q8_act *a, const void *wv, bool q4, int n,
                               int d_out, int r0, int r1)
{
    int nb = a->nb;
    size_t qb = q4 ? Q8_QBYTES / 2 : Q8_QBYTES;
    size_t gb = (size_t)nb * qb + ((size_t)nb * Q8_ROWS * 2 + 63) / 64 * 64;
    const uint8_t *w = wv;
    _Alignas(64) int8_t wq[AMX_KB * Q8_QBYTES];      /* unpacked blocks of one group */
    /* Blocks unpacked at a time: few token tiles read the x_q of every tile of
     * a pass again for each group, so 16 blocks keep those (4 tiles, 32 KB)
     * and the weights (8 KB) in L1; more tiles stream them from L2 anyway,
     * and 64 blocks (a group of 2048 inputs whole) halve the calls and their
     * accumulator loads and stores. */
    int kb = (n + 15) / 16 <= AMX_FEW ? AMX_KB_FEW : AMX_KB;
    _Alignas(64) float accs[AMX_TT][16 * 16];         /* accumulators of each token tile */
    /* tmm0, tmm1 A (16 x 32 bytes), tmm2, tmm3 B (8 x 64 bytes), tmm4 .. tmm7 C (16 x 16 int32) */
    ouro_amx_config cfg = { .palette = 1 };
    for (int i = 0; i < 8; i++) {
        cfg.rows[i] = i == 2 || i == 3 ? 8 : 16;
        cfg.colsb[i] = i < 2 ? 32 : 64;
    }
    ouro_amx_load(&cfg);
    int g0 = r0 / Q8_ROWS, g1 = (r1 + Q8_ROWS - 1) / Q8_ROWS;
    for (int p0 = 0; p0 < n; p0 += AMX_TT * 16) {
        int p1 = n - p0 < AMX_TT * 16 ? n : p0 + AMX_TT * 16;
        int tiles = (p1 - p0 + 15) / 16;
        /* q8 for at most AMX_INPLACE token tiles: the weights in place, and
         * AMX_GS groups take each chunk of blocks in turn, so that chunk's x_q
         * serve all of them from L1 (an accumulator set each) */
        bool inplace = !q4 && tiles <= AMX_INPLACE;
        int gs = inplace ? AMX_GS : 1;
        for (int gs0 = g0; gs0 < g1; gs0 += gs) {
            int gs1 = g1 - gs0 < gs ? g1 : gs0 + gs;
            for (int k0 = 0; k0 < nb; k0 += kb) {
                int kn = nb - k0 < kb ? nb - k0 : kb;
                for (int g = gs0; g < gs1; g++) {
                    int base = g * Q8_ROWS;
                    int lo = r0 > base ? r0 - base : 0, hi = r1 < base + Q8_ROWS ? r1 - base : Q8_ROWS;
                    __mmask16 mask = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
                    const uint8_t *gp = w + (size_t)g * gb;
                    const uint16_t *scales = (const uint16_t *)(gp + (size_t)nb * qb);
                    if (q4)
                        amx_unpack_q4(wq, gp, k0, kn);
                    else if (!inplace)
                        amx_unpack_q8(wq, gp, k0, kn);
                    /* The next chunk's quants and scales (in the order above)
                     * are prefetched into L2 while this one's products run
                     * (the kernels spread each tile's share of the quants over
                     * their blocks: a burst of prefetches stalls on the line
                     * fill buffers), so the next one does not wait on memory. */
                    int ng = g + 1, nk = k0;
                    if (ng == gs1) {
                        ng = gs0;
                        nk = k0 + kb;
                        if (nk >= nb) {
                            ng = gs1;
                            nk = 0;
                        }
                    }
                    const uint8_t *nq = NULL, *ns = NULL;
                    size_t nql = 0, nsl = 0;
                    if (ng < g1) {
                        const uint8_t *ngp = w + (size_t)ng * gb;
                        int nkn = nb - nk < kb ? nb - nk : kb;
                        nq = ngp + (size_t)nk * qb;
                        nql = ((size_t)nkn * qb + 63) / 64;
                        ns = ngp + (size_t)nb * qb + (size_t)nk * Q8_ROWS * 2;
                        nsl = ((size_t)nkn * Q8_ROWS * 2 + 63) / 64;
                    }
                    for (int t0 = p0; t0 < p1; t0 += 16) {
                        int nt = p1 - t0 < 16 ? p1 - t0 : 16, ti = (t0 - p0) / 16;
                        for (size_t l = nsl * ti / tiles; l < nsl * (ti + 1) / tiles; l++)
                            _mm_prefetch((const char *)ns + l * 64, _MM_HINT_T1);
                        size_t l0 = nql * ti / tiles, l1 = nql * (ti + 1) / tiles;
                        size_t tb = (size_t)(t0 / 16) * nb + k0;
                        amx_kernels[inplace][nt - 1](
                            accs[(g - gs0) * tiles + ti], k0 == 0, k0 + kn == nb,
                            y + (size_t)t0 * d_out + base, (size_t)d_out, mask,
                            inplace ? (const int8_t *)gp + (size_t)k0 * Q8_QBYTES : wq,
                            scales + (size_t)k0 * Q8_ROWS, a->xt + tb * 512, a->st + tb * 16, kn,
                            nq ? (const char *)nq + l0 * 64 : NULL, (int)(l1 - l0));
                    }
                }
            }
        }
    }
    _tile_release();
}
#else
void ouro_qamx_rows(float *y, const ouro_q8_act *a, const void *w, bool q4, int n, int d_out,
                    int r0, int r1)
{
    for (int t = 0; t < n; t++)   /* never called: no tiles off x86-64 */
        for (int r = r0; r < r1; r++)
            y[(size_t)t * d_out + r] = NAN;
}
#endif /* OURO_X86_SIMD */

/* ------------------------------------------------------------------------
 * Rows of a product
 * ------------------------------------------------------------------------ */

/* Groups that straddle r0 or r1 are computed whole and stored in part.  The
 * path: AMX tiles from f->amx_min tokens, else VNNI, AVX2 or portable C. */
void ouro_qrows(const ouro_qformat *f, float *y, const void *ws, const void *wv, int n, int d_in,
                int d_out, int r0, int r1)
{
    q8_act act = q8_act_at(ws, n, d_in);
    const q8_act *a = &act;
    const uint8_t *w = wv;
#ifdef OURO_X86_SIMD
    if (n >= f->amx_min && ouro_cpu_amx()) {
        ouro_qamx_rows(y, a, w, f->q4, n, d_out, r0, r1);
        return;
    }
#endif
    size_t gb = f->group_bytes(d_in);
    int g0 = r0 / Q8_ROWS, g1 = (r1 + Q8_ROWS - 1) / Q8_ROWS;
#ifdef OURO_X86_SIMD
    int path = ouro_cpu_vnni() ? 2 : ouro_simd() >= OURO_SIMD_AVX2 ? 1 : 0;
    /* VNNI: tokens in runs of at most Q8_RUN, each cut in tiles of at most
     * OURO_Q_NR; the tiles of a run take the weights a chunk of blocks at a
     * time, so the later tiles find the chunk in L1 */
    int n_super = (n + Q8_RUN - 1) / Q8_RUN;
    int n_groups = (d_out + Q8_ROWS - 1) / Q8_ROWS;   /* of the whole matrix */
    int chunk = (f->q4 ? Q8_CHUNK * 2 : Q8_CHUNK);
    float acc[Q8_RUN * Q8_MG * 16] __attribute__((aligned(64)));
#endif
    int mg = n == 1 ? 4 : 2;
    for (int g = g0; g < g1; g += mg) {
        int cnt = g1 - g < mg ? g1 - g : mg;
        int lo[4], hi[4];
        for (int m = 0; m < cnt; m++) {
            int base = (g + m) * Q8_ROWS;
            lo[m] = r0 > base ? r0 - base : 0;
            hi[m] = r1 < base + Q8_ROWS ? r1 - base : Q8_ROWS;
        }
        const uint8_t *gp = w + (size_t)g * gb;
        float *yg = y + (size_t)g * Q8_ROWS;
#ifdef OURO_X86_SIMD
        if (path == 2) {
            __mmask16 mask[4];   /* the rows of each group the kernels store */
            for (int m = 0; m < cnt; m++)
                mask[m] = (__mmask16)(((1u << hi[m]) - 1) & ~((1u << lo[m]) - 1));
            if (n == 1 && cnt == 4) {   /* next: the four groups after these, if in the matrix */
                f->vnni_4x1(yg, a, gp, gb, g + 8 <= n_groups ? gp + 4 * gb : NULL, mask);
                continue;
            }
            for (int m0 = 0; m0 < cnt; m0 += 2) {
                int mc = cnt - m0 < 2 ? cnt - m0 : 2;
                for (int si = 0; si < n_super; si++) {
                    int s0 = (int)((long)n * si / n_super), s1 = (int)((long)n * (si + 1) / n_super);
                    int ns = s1 - s0, nt = (ns + OURO_Q_NR - 1) / OURO_Q_NR;
                    int kb = nt == 1 && a->nb > 0 ? a->nb : chunk;
                    for (int b0 = 0; b0 == 0 || b0 < a->nb; b0 += kb) {   /* once where nb = 0 */
                        int b1 = a->nb - b0 < kb ? a->nb : b0 + kb;
                        for (int ti = 0; ti < nt; ti++) {
                            int t0 = s0 + ns * ti / nt, t1 = s0 + ns * (ti + 1) / nt;
                            f->vnni[mc - 1][t1 - t0 - 1](yg + (size_t)t0 * d_out + m0 * Q8_ROWS,
                                                         (size_t)d_out, a, t0, gp + m0 * gb, gb,
                                                         mask + m0, b0, b1,
                                                         acc + (size_t)(t0 - s0) * Q8_MG * 16,
                                                         ti == 0 ? 1 : ti == 1 ? 2 : 0);
                        }
                    }
                }
            }
            continue;
        }
#endif
        for (int m = 0; m < cnt; m++) {
            const uint8_t *gm = gp + m * gb;
            float *ym = yg + m * Q8_ROWS;
            int t = 0;
#ifdef OURO_X86_SIMD
            if (path == 1)
                for (; t + 2 <= n; t += 2)
                    f->group_avx2[1](ym + (size_t)t * d_out, (size_t)d_out, a, t, gm, lo[m], hi[m]);
#endif
            for (; t < n; t++) {
#ifdef OURO_X86_SIMD
                if (path == 1)
                    f->group_avx2[0](ym + (size_t)t * d_out, (size_t)d_out, a, t, gm, lo[m], hi[m]);
                else
#endif
                    f->group_c(ym + (size_t)t * d_out, a, t, gm, lo[m], hi[m]);
            }
        }
    }
}

static const ouro_qformat q8_format = {
    .q4 = false, .amx_min = OURO_Q8_AMX_MIN, .group_bytes = ouro_q8_group_bytes,
    .group_c = q8_group_c,
#ifdef OURO_X86_SIMD
    .group_avx2 = { q8_group_avx2_1, q8_group_avx2_2 },
    .vnni = { { q8k_1x1, q8k_1x2, q8k_1x3, q8k_1x4, q8k_1x5, q8k_1x6 },
              { q8k_2x1, q8k_2x2, q8k_2x3, q8k_2x4, q8k_2x5, q8k_2x6 } },
    .vnni_4x1 = q8k_4x1,
#endif
};

void ouro_q8_rows(float *y, const void *ws, const void *w, int n, int d_in, int d_out, int r0, int r1)
{
    ouro_qrows(&q8_format, y, ws, w, n, d_in, d_out, r0, r1);
}

ouro_q8_act ouro_q8_act_view(const void *ws, int n, int d_in)
{
    return q8_act_at(ws, n, d_in);
}

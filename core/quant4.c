/*
 * quant4.c -- the 4-bit block-quantized weight format (q4) and its products.
 *
 * `ouro convert --type q4` (core/convert.c) writes every matrix of a
 * checkpoint in this format once; the loader maps the file and the kernels
 * here read it in place.  It is cut like q8 (quant.c): a matrix W (rows,
 * cols) in groups of 16 rows (the last group padded with zero rows), each row
 * in blocks of 32 columns (the last block padded with zeros), so any row
 * length works.  Each (row, block) has its own scale d (f16) and 32 integers
 * w_q in [-8, 7] with W[r][k] ~ d * w_q[r][k], w_q = round(W / d) clamped to
 * [-8, 7].  The file stores u = w_q + 8 in [0, 15], four bits.  Any f16 d is
 * valid; the converter chooses it per block (ouro_q4_quantize_group): m is
 * the value of the block with the largest magnitude, and d the f16 value, of
 * m / -8 (llama.cpp Q4_0's choice: m is -8 d, all 16 levels in use; d may be
 * negative) and a few scales near it refined by least squares, that gives the
 * smallest squared error over the block.
 *
 * Bytes of group g (ouro_q4_group_bytes(cols) each, groups one after another):
 *   quants: nb blocks of 256 bytes; in block b the byte
 *           b * 256 + j * 64 + i * 4 + e  holds
 *             low nibble:  u[16g + i][32b + 4j + e]
 *             high nibble: u[16g + i][32b + 16 + 4j + e]
 *           (j = 0..3 the 4-column quad, i = 0..15 the row, e = 0..3),
 *   scales: nb * 16 f16 values, d of row 16g + i, block b at index b * 16 + i,
 *           then zero padding to a multiple of 64 bytes.
 * One 64-byte load of quants thus holds, in its low nibbles, 4 columns of 16
 * rows (as one load of q8 does) and in its high nibbles the 4 columns 16 to
 * the right: masked and shifted, each is what the AVX-512 VNNI instruction
 * vpdpbusd multiplies with 4 bytes of one activation row broadcast to every
 * lane.  A weight takes 9/16 of a byte (4 bits and a 16-bit scale per 32),
 * 53% of q8 and 28% of bf16.
 *
 * Products take the activations quantized exactly as for q8 (blocks of 32,
 * int8, scale s; ouro_q8_prepare).  Then
 *   y[t][r] = sum over blocks b, in order, of
 *             (d[r][b] * s[t][b]) * (sum_k u * x_q  -  8 * sum_k x_q)
 * with the integer sums exact and each block's term added with one fused
 * multiply-add in f32.  Every path (AMX tiles, AVX-512 VNNI, AVX2, portable C)
 * computes exactly these operations in this order, so all give the same bits;
 * tests compare them for equality.  The AMX path (quant.c, "Products: AMX
 * int8 tiles", from OURO_Q4_AMX_MIN tokens on) unpacks a group's blocks to
 * signed int8 w_q = u - 8 in q8's layout once for all the token tiles, so
 * its integer sums sum_k w_q * x_q equal the ones above.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#ifdef OURO_X86_SIMD   /* the AVX2 and VNNI paths: x86-64 only (base.h) */
#include <immintrin.h>
#endif

#define Q4_ROWS 16           /* rows of a group */
#define Q4_BLOCK 32          /* columns of a block */
#define Q4_QBYTES 256        /* quant bytes of one block of one group */
#define Q4_MG 4              /* most groups per microkernel (VNNI) */
#define Q4_NR OURO_Q_NR      /* most tokens per microkernel (VNNI) */
#ifndef Q4_PF
#define Q4_PF 1024           /* software prefetch distance in each group's quants (VNNI), bytes */
#endif
#ifndef Q4_SPF
#define Q4_SPF 256           /* the same in each group's scales (VNNI), bytes */
#endif
#ifndef Q4_FPF
#define Q4_FPF 2048          /* one token (q4k_4x1): far prefetch in the quants, bytes */
#endif

static inline int q4_nb(int64_t cols) { return (int)((cols + Q4_BLOCK - 1) / Q4_BLOCK); }

size_t ouro_q4_group_bytes(int64_t cols)
{
    size_t nb = (size_t)q4_nb(cols);
    return nb * Q4_QBYTES + (nb * Q4_ROWS * 2 + 63) / 64 * 64;
}

size_t ouro_q4_bytes(int64_t rows, int64_t cols)
{
    return (size_t)((rows + Q4_ROWS - 1) / Q4_ROWS) * ouro_q4_group_bytes(cols);
}

/* Byte offset, inside a block, of column k (0..31) of row i, and its nibble's shift. */
static inline int q4_at(int i, int k) { return (k % 16 / 4) * 64 + i * 4 + k % 4; }
static inline int q4_shift(int k) { return k < 16 ? 0 : 4; }

/* ------------------------------------------------------------------------
 * Weights: quantize, dequantize
 * ------------------------------------------------------------------------ */

/* w_q of the values w (len) at scale d (f16-exact, finite, non-zero) into l;
 * returns the squared error of d * w_q. */
static float q4_try(const float *w, int len, float d, int8_t *l)
{
    float err = 0.0f;
    for (int k = 0; k < len; k++) {
        float v = nearbyintf(w[k] / d);
        v = v > 7.0f ? 7.0f : v < -8.0f ? -8.0f : v;
        l[k] = (int8_t)v;
        float e = w[k] - d * v;
        err += e * e;
    }
    return err;
}

/* The f16 scale of one block (len values), its w_q in l (zero for a zero scale). */
static uint16_t q4_block(const float *w, int len, int8_t *l)
{
    float amax = 0.0f, m = 0.0f;
    for (int k = 0; k < len; k++)
        if (fabsf(w[k]) > amax) {
            amax = fabsf(w[k]);
            m = w[k];
        }
    uint16_t best = ouro_f32_to_f16(m / -8.0f);
    float d = ouro_f16_to_f32(best);
    memset(l, 0, Q4_BLOCK);
    if (d == 0.0f || !isfinite(d))   /* all zero, or a value f16 cannot scale */
        return best;
    float best_err = q4_try(w, len, d, l);
    int8_t t[Q4_BLOCK];
    /* m / -(8 + k / 4) for k = -4 .. 8, each refined to the least-squares
     * scale of the levels it gives: sum w * w_q / sum w_q^2 */
    for (int k = -4; k <= 8; k++) {
        float dc = m / -(8.0f + 0.25f * (float)k);
        q4_try(w, len, dc, t);
        float swl = 0.0f, sll = 0.0f;
        for (int i = 0; i < len; i++) {
            swl += w[i] * (float)t[i];
            sll += (float)t[i] * (float)t[i];
        }
        if (!(sll > 0.0f))
            continue;
        uint16_t h = ouro_f32_to_f16(swl / sll);
        float dh = ouro_f16_to_f32(h);
        if (dh == 0.0f || !isfinite(dh))
            continue;
        float e = q4_try(w, len, dh, t);
        if (e < best_err) {
            best_err = e;
            best = h;
            memcpy(l, t, Q4_BLOCK);
        }
    }
    return best;
}

void ouro_q4_quantize_group(uint8_t *dst, const float *rows, int n_rows, int64_t cols)
{
    int nb = q4_nb(cols);
    uint16_t *scales = (uint16_t *)(dst + (size_t)nb * Q4_QBYTES);
    memset(dst, 0x88, (size_t)nb * Q4_QBYTES);    /* u = 8: w_q = 0 */
    memset(scales, 0, ouro_q4_group_bytes(cols) - (size_t)nb * Q4_QBYTES);
    for (int i = 0; i < n_rows; i++) {
        const float *w = rows + (size_t)i * cols;
        for (int b = 0; b < nb; b++) {
            int k0 = b * Q4_BLOCK, len = cols - k0 < Q4_BLOCK ? (int)(cols - k0) : Q4_BLOCK;
            int8_t l[Q4_BLOCK];
            scales[b * Q4_ROWS + i] = q4_block(w + k0, len, l);
            uint8_t *q = dst + (size_t)b * Q4_QBYTES;
            for (int k = 0; k < len; k++) {
                int at = q4_at(i, k), sh = q4_shift(k);
                q[at] = (uint8_t)((q[at] & ~(0x0f << sh)) | ((l[k] + 8) << sh));
            }
        }
    }
}

/* w_q + 8 of column k of row i in block q. */
static inline int q4_u(const uint8_t *q, int i, int k)
{
    return (q[q4_at(i, k)] >> q4_shift(k)) & 0x0f;
}

void ouro_q4_row_to_f32(float *out, const void *w, size_t row, int64_t cols)
{
    int nb = q4_nb(cols);
    const uint8_t *g = (const uint8_t *)w + (row / Q4_ROWS) * ouro_q4_group_bytes(cols);
    const uint16_t *scales = (const uint16_t *)(g + (size_t)nb * Q4_QBYTES);
    int i = (int)(row % Q4_ROWS);
    for (int b = 0; b < nb; b++) {
        float d = ouro_f16_to_f32(scales[b * Q4_ROWS + i]);
        const uint8_t *q = g + (size_t)b * Q4_QBYTES;
        for (int k = b * Q4_BLOCK; k < cols && k < (b + 1) * Q4_BLOCK; k++)
            out[k] = d * (float)(q4_u(q, i, k - b * Q4_BLOCK) - 8);
    }
}

float ouro_q4_dot_row(const void *w, size_t row, const float *x, int64_t cols)
{
    int nb = q4_nb(cols);
    const uint8_t *g = (const uint8_t *)w + (row / Q4_ROWS) * ouro_q4_group_bytes(cols);
    const uint16_t *scales = (const uint16_t *)(g + (size_t)nb * Q4_QBYTES);
    int i = (int)(row % Q4_ROWS);
    float acc = 0.0f;
    for (int64_t k = 0; k < cols; k++) {
        int b = (int)(k / Q4_BLOCK), kk = (int)(k % Q4_BLOCK);
        float d = ouro_f16_to_f32(scales[b * Q4_ROWS + i]);
        acc += d * (float)(q4_u(g + (size_t)b * Q4_QBYTES, i, kk) - 8) * x[k];
    }
    return acc;
}

/* ------------------------------------------------------------------------
 * Products: portable C (the reference the other paths equal)
 *
 * The activations are q8's (ouro_q8_prepare): its c is -128 * sum(x_q), so
 * -8 * sum(x_q) is c / 16, exactly.
 * ------------------------------------------------------------------------ */

static inline int32_t q4_corr(const ouro_q8_act *a, size_t tb) { return a->c[tb] / 16; }

/* Rows lo .. hi-1 (inside group g) for token t. */
static void q4_group_c(float *y, const ouro_q8_act *a, int t, const uint8_t *g, int lo, int hi)
{
    int nb = a->nb;
    const uint16_t *scales = (const uint16_t *)(g + (size_t)nb * Q4_QBYTES);
    const int8_t *xq = a->q + (size_t)t * nb * Q4_BLOCK;
    for (int i = lo; i < hi; i++) {
        float acc = 0.0f;
        for (int b = 0; b < nb; b++) {
            const uint8_t *q = g + (size_t)b * Q4_QBYTES;
            const int8_t *xb = xq + b * Q4_BLOCK;
            int32_t dot = q4_corr(a, (size_t)t * nb + b);
            for (int k = 0; k < Q4_BLOCK; k++)
                dot += q4_u(q, i, k) * xb[k];
            float sc = ouro_f16_to_f32(scales[b * Q4_ROWS + i]) * a->s[(size_t)t * nb + b];
            acc = fmaf((float)dot, sc, acc);
        }
        y[i] = acc;
    }
}

#ifdef OURO_X86_SIMD
/* ------------------------------------------------------------------------
 * Products: AVX2 (no VNNI needed)
 *
 * 32 bytes of quants (4 columns of 8 rows in each nibble) at a time.  u is
 * at most 15, so vpmaddubsw (unsigned u times signed x_q, pairs summed in 16
 * bits) cannot saturate: two of its results add to at most 4 * 15 * 127;
 * vpmaddwd with ones then gives one 32-bit sum per row.
 * ------------------------------------------------------------------------ */

#define AVX2_Q_TARGET __attribute__((target("avx2,fma,f16c")))

/* One group, tokens t0 .. t0+nr-1 (nr 1 or 2); rows lo .. hi-1 stored. */
AVX2_Q_TARGET static inline __attribute__((always_inline))
void q4_group_avx2(int nr, float *y, size_t ldy, const ouro_q8_act *a, int t0, const uint8_t *g,
                   int lo, int hi)
{
    int nb = a->nb;
    const uint8_t *scales = g + (size_t)nb * Q4_QBYTES;
    const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 f[2][2] = { { _mm256_setzero_ps(), _mm256_setzero_ps() },
                       { _mm256_setzero_ps(), _mm256_setzero_ps() } };
    for (int b = 0; b < nb; b++) {
        __m256i ia[2][2];
        for (int t = 0; t < nr; t++) {
            __m256i c0 = _mm256_set1_epi32(q4_corr(a, (size_t)(t0 + t) * nb + b));
            ia[0][t] = ia[1][t] = c0;
        }
        const uint8_t *qb = g + (size_t)b * Q4_QBYTES;
        for (int j = 0; j < 4; j++) {
            __m256i xl[2], xh[2];
            for (int t = 0; t < nr; t++) {
                int32_t v;
                const int8_t *xb = a->q + ((size_t)(t0 + t) * nb + b) * Q4_BLOCK;
                memcpy(&v, xb + 4 * j, 4);
                xl[t] = _mm256_set1_epi32(v);
                memcpy(&v, xb + 16 + 4 * j, 4);
                xh[t] = _mm256_set1_epi32(v);
            }
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_load_si256((const __m256i *)(qb + j * 64 + h * 32));
                __m256i ul = _mm256_and_si256(v, low);
                __m256i uh = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                for (int t = 0; t < nr; t++) {
                    __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(ul, xl[t]),
                                                 _mm256_maddubs_epi16(uh, xh[t]));
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

AVX2_Q_TARGET static void q4_group_avx2_1(float *y, size_t ldy, const ouro_q8_act *a, int t0,
                                          const uint8_t *g, int lo, int hi)
{
    q4_group_avx2(1, y, ldy, a, t0, g, lo, hi);
}

AVX2_Q_TARGET static void q4_group_avx2_2(float *y, size_t ldy, const ouro_q8_act *a, int t0,
                                          const uint8_t *g, int lo, int hi)
{
    q4_group_avx2(2, y, ldy, a, t0, g, lo, hi);
}

/* ------------------------------------------------------------------------
 * Products: AVX-512 VNNI
 *
 * As q8's microkernel: mg groups (16 rows each, one row per lane) by nr
 * tokens of 32-bit block sums and f32 totals.  Per block each 64-byte load of
 * quants is split into its low and high nibbles and each feeds nr vpdpbusd
 * (one per token, 4 bytes of x_q broadcast); the block sums start at
 * -8 * sum(x_q) and end as one fused multiply-add per group and token.  Rows
 * outside the caller's range are masked off at the store.  Each group's
 * quants are prefetched Q4_PF bytes ahead, inside the group, as for q8, and
 * its scales Q4_SPF bytes ahead (a line every other block): the scales are a
 * stream of their own, and left to the hardware their loads stalled the
 * kernel (one-token decode 7.6 -> 8.7 tok/s on Ouro-1.4B shapes, 2 threads).
 * Several token tiles share the weights a chunk of blocks at a time, with
 * the same b0, b1, acc and pf as q8's kernel (quant.c).  One token takes its
 * own kernel (q4k_4x1, below), whose prefetches run on into the next groups.
 * ------------------------------------------------------------------------ */

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c")))

VNNI_TARGET static inline __attribute__((always_inline))
void q4_kernel_vnni(int mg, int nr, float *y, size_t ldy, const ouro_q8_act *a, int t0,
                    const uint8_t *g, size_t gstride, const __mmask16 *mask, int b0, int b1,
                    float *acc, int pf)
{
    int nb = a->nb;
    const __m512i low = _mm512_set1_epi8(0x0f);
    __m512 f[Q4_MG][Q4_NR];
    #pragma GCC unroll 4
    for (int m = 0; m < mg; m++)
        #pragma GCC unroll 6
        for (int t = 0; t < nr; t++)
            f[m][t] = b0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(acc + (t * Q4_MG + m) * 16);
    const int8_t *xq = a->q + (size_t)t0 * nb * Q4_BLOCK;
    const float *xs = a->s + (size_t)t0 * nb;
    const int32_t *xc = a->c + (size_t)t0 * nb;
    size_t ldq = (size_t)nb * Q4_BLOCK;
    for (int b = b0; b < b1; b++) {
        __m512i ia[Q4_MG][Q4_NR];
        #pragma GCC unroll 6
        for (int t = 0; t < nr; t++) {
            __m512i c0 = _mm512_set1_epi32(xc[(size_t)t * nb + b] / 16);
            #pragma GCC unroll 4
            for (int m = 0; m < mg; m++)
                ia[m][t] = c0;
        }
        const uint8_t *qb = g + (size_t)b * Q4_QBYTES;
        /* the lines Q4_PF bytes ahead, or (past the group's quants) the block's own */
        const uint8_t *qa = pf == 2 ? qb + (b + (b1 - b0) < nb ? (size_t)(b1 - b0) * Q4_QBYTES : 0)
                                    : qb + (b + Q4_PF / Q4_QBYTES < nb ? Q4_PF : 0);
        if (pf == 1 && Q4_SPF > 0 && b % 2 == 0 && b + Q4_SPF / 32 < nb)   /* the line ahead is a scale */
            #pragma GCC unroll 4
            for (int m = 0; m < mg; m++)
                _mm_prefetch((const char *)g + m * gstride + (size_t)nb * Q4_QBYTES + (size_t)b * 32
                             + Q4_SPF, _MM_HINT_T0);
        #pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m512i wl[Q4_MG], wh[Q4_MG];
            #pragma GCC unroll 4
            for (int m = 0; m < mg; m++) {
                if (pf && Q4_PF > 0)
                    _mm_prefetch((const char *)qa + m * gstride + j * 64, _MM_HINT_T0);
                __m512i v = _mm512_load_si512(qb + m * gstride + j * 64);
                wl[m] = _mm512_and_si512(v, low);
                wh[m] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
            }
            #pragma GCC unroll 6
            for (int t = 0; t < nr; t++) {
                int32_t v;
                const int8_t *xb = xq + (size_t)t * ldq + (size_t)b * Q4_BLOCK;
                memcpy(&v, xb + 4 * j, 4);
                __m512i xl = _mm512_set1_epi32(v);
                memcpy(&v, xb + 16 + 4 * j, 4);
                __m512i xh = _mm512_set1_epi32(v);
                #pragma GCC unroll 4
                for (int m = 0; m < mg; m++) {
                    ia[m][t] = _mm512_dpbusd_epi32(ia[m][t], wl[m], xl);
                    ia[m][t] = _mm512_dpbusd_epi32(ia[m][t], wh[m], xh);
                }
            }
        }
        #pragma GCC unroll 4
        for (int m = 0; m < mg; m++) {
            __m512 sw = _mm512_cvtph_ps(_mm256_load_si256(
                (const __m256i *)(g + m * gstride + (size_t)nb * Q4_QBYTES + (size_t)b * 32)));
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
                _mm512_mask_storeu_ps(y + (size_t)t * ldy + m * Q4_ROWS, mask[m], f[m][t]);
            else
                _mm512_store_ps(acc + (t * Q4_MG + m) * 16, f[m][t]);
        }
}

#define Q4K(MG, NR) \
    VNNI_TARGET static void q4k_##MG##x##NR(float *y, size_t ldy, const ouro_q8_act *a, int t0, \
        const uint8_t *g, size_t gstride, const __mmask16 *mask, int b0, int b1, float *acc, int pf) \
    { \
        if (pf == 1) \
            q4_kernel_vnni(MG, NR, y, ldy, a, t0, g, gstride, mask, b0, b1, acc, 1); \
        else if (pf == 2) \
            q4_kernel_vnni(MG, NR, y, ldy, a, t0, g, gstride, mask, b0, b1, acc, 2); \
        else \
            q4_kernel_vnni(MG, NR, y, ldy, a, t0, g, gstride, mask, b0, b1, acc, 0); \
    }
Q4K(1, 1) Q4K(1, 2) Q4K(1, 3) Q4K(1, 4) Q4K(1, 5) Q4K(1, 6)
Q4K(2, 1) Q4K(2, 2) Q4K(2, 3) Q4K(2, 4) Q4K(2, 5) Q4K(2, 6)
/* One token, four groups, as q8's (quant.c, q8k_4x1): each line of quants
 * prefetched Q4_PF bytes ahead into L1 and Q4_FPF bytes ahead for the outer
 * caches, the scales Q4_SPF bytes ahead, all running on into `next` near the
 * groups' end.  The low and high nibbles feed two integer sums per group,
 * added at the end of each block (exact: the same integer as one chain). */
VNNI_TARGET static void q4k_4x1(float *y, const ouro_q8_act *a, const uint8_t *g, size_t gstride,
                                const uint8_t *next, const __mmask16 *mask)
{
    int nb = a->nb;
    size_t qend = (size_t)nb * Q4_QBYTES, send = qend + (size_t)nb * 32;
    size_t d = next ? (size_t)(next - g) : 0;
    size_t skip = next ? d - qend : 0, sskip = next ? d - (size_t)nb * 32 : 0;
    const uint8_t *gm[4] = { g, g + gstride, g + 2 * gstride, g + 3 * gstride };
    const __m512i low = _mm512_set1_epi8(0x0f);
    __m512 zf = _mm512_setzero_ps(), f[4] = { zf, zf, zf, zf };
    for (int b = 0; b < nb; b++) {
        size_t qo = (size_t)b * Q4_QBYTES, o = qo + Q4_PF, of = qo + Q4_FPF;
        o = o < qend ? o : next && o < 2 * qend ? o + skip : qo;   /* else: the block's */
        of = of < qend ? of : next && of < 2 * qend ? of + skip : qo;   /* own lines */
        if (Q4_SPF > 0 && b % 2 == 0) {
            size_t so = qend + (size_t)b * 32 + Q4_SPF;
            if (so < send || (next && so < send + (size_t)nb * 32))
                #pragma GCC unroll 4
                for (int m = 0; m < 4; m++)
                    _mm_prefetch((const char *)gm[m] + (so < send ? so : so + sskip), _MM_HINT_T0);
        }
        const int8_t *xb = a->q + (size_t)b * Q4_BLOCK;
        __m512i c0 = _mm512_set1_epi32(a->c[b] / 16), z = _mm512_setzero_si512();
        __m512i il[4] = { c0, c0, c0, c0 }, ih[4] = { z, z, z, z };
        #pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            int32_t vl, vh;
            memcpy(&vl, xb + 4 * j, 4);
            memcpy(&vh, xb + 16 + 4 * j, 4);
            __m512i xl = _mm512_set1_epi32(vl), xh = _mm512_set1_epi32(vh);
            #pragma GCC unroll 4
            for (int m = 0; m < 4; m++) {
                if (Q4_PF > 0)
                    _mm_prefetch((const char *)gm[m] + o + j * 64, _MM_HINT_T0);
                if (Q4_FPF > 0)
                    _mm_prefetch((const char *)gm[m] + of + j * 64, _MM_HINT_T2);
                __m512i v = _mm512_load_si512(gm[m] + qo + j * 64);
                il[m] = _mm512_dpbusd_epi32(il[m], _mm512_and_si512(v, low), xl);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
                ih[m] = _mm512_dpbusd_epi32(ih[m], hi, xh);
            }
        }
        #pragma GCC unroll 4
        for (int m = 0; m < 4; m++) {
            const __m256i *sp = (const __m256i *)(gm[m] + qend + (size_t)b * 32);
            __m512 sw = _mm512_cvtph_ps(_mm256_load_si256(sp));
            __m512 sc = _mm512_mul_ps(sw, _mm512_set1_ps(a->s[b]));
            f[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(il[m], ih[m])), sc, f[m]);
        }
    }
    #pragma GCC unroll 4
    for (int m = 0; m < 4; m++)
        _mm512_mask_storeu_ps(y + m * Q4_ROWS, mask[m], f[m]);
}
#endif /* OURO_X86_SIMD */

/* ------------------------------------------------------------------------
 * Rows of a product
 * ------------------------------------------------------------------------ */

static const ouro_qformat q4_format = {
    .q4 = true, .amx_min = OURO_Q4_AMX_MIN, .group_bytes = ouro_q4_group_bytes,
    .group_c = q4_group_c,
#ifdef OURO_X86_SIMD
    .group_avx2 = { q4_group_avx2_1, q4_group_avx2_2 },
    .vnni = { { q4k_1x1, q4k_1x2, q4k_1x3, q4k_1x4, q4k_1x5, q4k_1x6 },
              { q4k_2x1, q4k_2x2, q4k_2x3, q4k_2x4, q4k_2x5, q4k_2x6 } },
    .vnni_4x1 = q4k_4x1,
#endif
};

/* The row driver is q8's (ouro_qrows, quant.c), with this format's kernels. */
void ouro_q4_rows(float *y, const void *ws, const void *wv, int n, int d_in, int d_out,
                  int r0, int r1)
{
    ouro_qrows(&q4_format, y, ws, wv, n, d_in, d_out, r0, r1);
}

/*
 * math.c -- the element-wise pieces of the forward pass: RMSNorm, rotary
 * position embedding, softmax and the exit distribution of the loop.
 *
 * Everything is f32 as the reference computes it in float32; where a sum over
 * a whole vector is taken, it is accumulated in double so that the result is
 * the correctly rounded f32 value the reference's pairwise sums approach.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "internal.h"
#ifdef OURO_X86_SIMD
#include <immintrin.h>
#endif

/* ------------------------------------------------------------------------
 * RMSNorm: out = weight * x / sqrt(mean(x^2) + eps)
 * ------------------------------------------------------------------------ */

#ifdef OURO_X86_SIMD
/* The AVX-512 pieces of ouro_rmsnorm, with its bits.  Adds x^2 of the first
 * d / 8 * 8 elements into the eight lanes a (x^2 is exact in double, so a
 * fused multiply-add rounds as product-then-sum does); returns how many. */
__attribute__((target("avx512f"))) static int rms_sumsq_avx512(double *a, const float *x, int d)
{
    __m512d acc = _mm512_setzero_pd();
    int i = 0;
    for (; i + 8 <= d; i += 8) {
        __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
        acc = _mm512_fmadd_pd(v, v, acc);
    }
    _mm512_storeu_pd(a, acc);
    return i;
}

/* out = w * (x * r) for the first d / 16 * 16 elements; returns how many. */
__attribute__((target("avx512f,f16c")))
static int rms_scale_avx512(float *out, const float *x, const void *weight, ouro_dtype dt, int d,
                            float r)
{
    __m512 rv = _mm512_set1_ps(r);
    const uint16_t *w16 = weight;
    int i = 0;
    for (; i + 16 <= d; i += 16) {
        __m512 w;
        if (dt == OURO_F32)
            w = _mm512_loadu_ps((const float *)weight + i);
        else if (dt == OURO_F16)
            w = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w16 + i)));
        else   /* bf16: the top half of an f32 */
            w = _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w16 + i))), 16));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(w, _mm512_mul_ps(_mm512_loadu_ps(x + i), rv)));
    }
    return i;
}
#endif

void ouro_rmsnorm(float *out, const float *x, const void *weight, ouro_dtype dt, int d, float eps)
{
    /* eight independent double sums (each product x^2 is exact in double),
     * added in a fixed tree: the same bits on every processor, and no chain
     * of d dependent additions */
    double a[8] = {0};
    int i = 0;
#ifdef OURO_X86_SIMD
    bool v512 = ouro_simd() >= OURO_SIMD_AVX512;
    if (v512)
        i = rms_sumsq_avx512(a, x, d);
#endif
    for (; i + 8 <= d; i += 8)
        for (int u = 0; u < 8; u++)
            a[u] += (double)x[i + u] * x[i + u];
    double ss = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; i < d; i++)
        ss += (double)x[i] * x[i];
    float var = (float)(ss / d);
    float r = 1.0f / sqrtf(var + eps);
    i = 0;
#ifdef OURO_X86_SIMD
    if (v512)
        i = rms_scale_avx512(out, x, weight, dt, d, r);
#endif
    if (dt == OURO_F32) {
        const float *w = weight;
        for (; i < d; i++)
            out[i] = w[i] * (x[i] * r);
    } else if (dt == OURO_F16) {
        const uint16_t *w = weight;
        for (; i < d; i++)
            out[i] = ouro_f16_to_f32(w[i]) * (x[i] * r);
    } else {
        const uint16_t *w = weight;
        for (; i < d; i++) {
            uint32_t u = (uint32_t)w[i] << 16;   /* bf16 is the top half of an f32 */
            float wf;
            memcpy(&wf, &u, sizeof wf);
            out[i] = wf * (x[i] * r);
        }
    }
}

/* x += y, element by element (the residual adds between blocks). */
#ifdef OURO_X86_SIMD
__attribute__((target("avx512f"))) static void add_avx512(float *x, const float *y, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++)
        x[i] += y[i];
}
#endif

void ouro_add(float *x, const float *y, int n)
{
#ifdef OURO_X86_SIMD
    if (ouro_simd() >= OURO_SIMD_AVX512) {
        add_avx512(x, y, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        x[i] += y[i];
}

/* ------------------------------------------------------------------------
 * RoPE, rotate-half form
 *
 * inv_freq[i] = 1 / theta^(2i / head_dim) (f32); the angle of pair i at
 * position p is inv_freq[i] * p (f32).  With c = cos, s = sin of that angle,
 * element i and element i + head_dim/2 of each head rotate together:
 *   out[i]        = x[i] * c - x[i + half] * s
 *   out[i + half] = x[i + half] * c + x[i] * s
 * ------------------------------------------------------------------------ */

void ouro_rope_inv_freq(float *inv_freq, int head_dim, double theta)
{
    for (int i = 0; i < head_dim / 2; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        inv_freq[i] = 1.0f / powf((float)theta, e);
    }
}

void ouro_rope(float *q, int nq, float *k, int nk, int head_dim, const float *inv_freq, int pos)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float angle = inv_freq[i] * (float)pos;
        float c = cosf(angle), s = sinf(angle);   /* once for the q and k heads alike */
        for (int h = 0; h < nq + nk; h++) {
            float *x = h < nq ? q + (size_t)h * head_dim : k + (size_t)(h - nq) * head_dim;
            float x1 = x[i], x2 = x[i + half];
            x[i] = x1 * c - x2 * s;
            x[i + half] = x2 * c + x1 * s;
        }
    }
}

/* ------------------------------------------------------------------------
 * expf on AVX-512, with the C library's bits
 *
 * glibc (2.27 on) computes expf as: x in double; z = x * 32/ln2 + 1.5 * 2^52
 * in one fused multiply-add, whose low bits are k = round(x * 32/ln2);
 * r = x * 32/ln2 - (z - 1.5 * 2^52), fused; s = 2^(k/32) from a 32-entry
 * table with k / 32 added to its exponent; the result (C0 r + C1) r^2 +
 * (C2 r + 1), times s, rounded to f32 once; |x| >= about 88 and NaN take
 * other branches.  expf16 below does the same operations in the same order
 * on 8 doubles at a time (the constants are glibc's __exp2f_data), and hands
 * the lanes of the other branches to expf itself, so each lane equals expf
 * bit for bit (checked over all 2^32 inputs with test/bench/expf_check.c;
 * test_math checks a spread of them and the edges on every run).
 * ------------------------------------------------------------------------ */

#ifdef OURO_X86_SIMD
#define EXPF_TARGET __attribute__((target("avx512f,avx512dq")))

static const uint64_t expf_tab[32] __attribute__((aligned(64))) = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

EXPF_TARGET static inline __attribute__((always_inline)) __m512d expf_dbits(uint64_t b)
{
    return _mm512_castsi512_pd(_mm512_set1_epi64((long long)b));
}

/* The main branch for 8 floats, as doubles until the final rounding. */
EXPF_TARGET static inline __attribute__((always_inline)) __m256 expf8_main(__m256 x)
{
    const __m512d inv_ln2_n = expf_dbits(0x40471547652b82fe), shift = expf_dbits(0x4338000000000000);
    const __m512d c0 = expf_dbits(0x3ebc6af84b912394), c1 = expf_dbits(0x3f2ebfce50fac4f3);
    const __m512d c2 = expf_dbits(0x3f962e42ff0c52d6), one = _mm512_set1_pd(1.0);
    __m512d xd = _mm512_cvtps_pd(x);
    __m512d z = _mm512_fmadd_pd(inv_ln2_n, xd, shift);
    __m512i ki = _mm512_castpd_si512(z);
    __m512d kd = _mm512_sub_pd(z, shift);
    __m512d r = _mm512_fmsub_pd(inv_ln2_n, xd, kd);
    __m512i idx = _mm512_and_si512(ki, _mm512_set1_epi64(31));
    const __m512i *tab = (const __m512i *)expf_tab;
    __m512i tlo = _mm512_permutex2var_epi64(_mm512_load_si512(tab), idx, _mm512_load_si512(tab + 1));
    __m512i thi = _mm512_permutex2var_epi64(_mm512_load_si512(tab + 2), idx, _mm512_load_si512(tab + 3));
    __mmask8 high = _mm512_test_epi64_mask(idx, _mm512_set1_epi64(16));
    __m512i t = _mm512_add_epi64(_mm512_mask_blend_epi64(high, tlo, thi), _mm512_slli_epi64(ki, 47));
    __m512d p = _mm512_fmadd_pd(c0, r, c1);
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d q = _mm512_fmadd_pd(c2, r, one);
    __m512d y = _mm512_mul_pd(_mm512_fmadd_pd(p, r2, q), _mm512_castsi512_pd(t));
    return _mm512_cvtpd_ps(y);
}

/* expf of 16 floats, each with the bits of expf. */
EXPF_TARGET static inline __attribute__((always_inline)) __m512 expf16(__m512 x)
{
    __m512i top = _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(x), 20),
                                   _mm512_set1_epi32(0x7ff));
    __mmask16 other = _mm512_cmpgt_epu32_mask(top, _mm512_set1_epi32(0x42a));   /* |x| >= ~88, NaN */
    __m256 lo = expf8_main(_mm512_castps512_ps256(x));
    __m256 hi = expf8_main(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    __m512 y = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
    if (other) {
        float xs[16], ys[16];
        _mm512_storeu_ps(xs, x);
        _mm512_storeu_ps(ys, y);
        for (int i = 0; i < 16; i++)
            if (other >> i & 1)
                ys[i] = expf(xs[i]);
        y = _mm512_loadu_ps(ys);
    }
    return y;
}

EXPF_TARGET static void exp_sub_avx512(float *x, int n, float m)
{
    __m512 mv = _mm512_set1_ps(m);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, expf16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv)));
    if (i < n) {   /* the last 1..15, the lanes past n zero (expf16 is per lane) */
        __mmask16 t = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, t, expf16(_mm512_maskz_sub_ps(t, _mm512_maskz_loadu_ps(t, x + i), mv)));
    }
}

/* x *= a, n entries. */
EXPF_TARGET static void scale_avx512(float *x, int n, float a)
{
    __m512 av = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), av));
    if (i < n) {
        __mmask16 t = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, t, _mm512_mul_ps(_mm512_maskz_loadu_ps(t, x + i), av));
    }
}

EXPF_TARGET static void silu_mul_avx512(float *h, const float *u, int n)
{
    __m512 one = _mm512_set1_ps(1.0f);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(h + i);
        __m512 e = expf16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_storeu_ps(h + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)),
                                              _mm512_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        h[i] = h[i] / (1.0f + expf(-h[i])) * u[i];
}

EXPF_TARGET static void expf16_array(float *y, const float *x)
{
    _mm512_storeu_ps(y, expf16(_mm512_loadu_ps(x)));
}
#endif /* OURO_X86_SIMD */

void ouro_expf16(float *y, const float *x)
{
#ifdef OURO_X86_SIMD
    if (ouro_simd() >= OURO_SIMD_AVX512) {
        expf16_array(y, x);
        return;
    }
#endif
    for (int i = 0; i < 16; i++)
        y[i] = expf(x[i]);
}

void ouro_silu_mul(float *h, const float *u, int n)
{
#ifdef OURO_X86_SIMD
    if (ouro_simd() >= OURO_SIMD_AVX512) {
        silu_mul_avx512(h, u, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        h[i] = h[i] / (1.0f + expf(-h[i])) * u[i];
}

/* ------------------------------------------------------------------------
 * Softmax
 * ------------------------------------------------------------------------ */

/* The pieces of a softmax, each row's in order: its maximum from m over
 * entries lo..n-1 (m is the maximum of those before), expf(x - m) of every
 * entry, and x / sum, the sum (in double) of the first lo entries given and
 * the rest added after them in order. */
static float softmax_max_rest(const float *x, int lo, int n, float m)
{
    for (int i = lo > 1 ? lo : 1; i < n; i++)
        if (x[i] > m)
            m = x[i];
    return m;
}

static void softmax_exp(float *x, int n, float m)
{
#ifdef OURO_X86_SIMD
    if (ouro_simd() >= OURO_SIMD_AVX512) {
        exp_sub_avx512(x, n, m);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        x[i] = expf(x[i] - m);
}

static void softmax_div(float *x, int lo, int n, double sum)
{
    for (int i = lo; i < n; i++)
        sum += x[i];
    float inv = (float)(1.0 / sum);
#ifdef OURO_X86_SIMD
    if (ouro_simd() >= OURO_SIMD_AVX512) {
        scale_avx512(x, n, inv);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void ouro_softmax(float *x, int n)
{
    softmax_exp(x, n, softmax_max_rest(x, 1, n, x[0]));
    softmax_div(x, 0, n, 0.0);
}

/* ouro_softmax of two or four rows with the same bits, the rows side by
 * side: the running maximum and the running sum are chains of dependent
 * operations (about 4 cycles an entry), and the chains of different rows
 * overlap.  Each row's maximum and sum still take its entries one by one in
 * order: its own and the other rows' entries together up to the shortest
 * row's count lo, then the rest of its own.  (For the AVX-512 attention
 * kernels: x86-64 only.) */
#ifdef OURO_X86_SIMD
static void softmax2(float *a, int na, float *b, int nb)
{
    int lo = na < nb ? na : nb;
    float ma = a[0], mb = b[0];
    for (int i = 1; i < lo; i++) {
        if (a[i] > ma)
            ma = a[i];
        if (b[i] > mb)
            mb = b[i];
    }
    softmax_exp(a, na, softmax_max_rest(a, lo, na, ma));
    softmax_exp(b, nb, softmax_max_rest(b, lo, nb, mb));
    double sa = 0.0, sb = 0.0;
    for (int i = 0; i < lo; i++) {
        sa += a[i];
        sb += b[i];
    }
    softmax_div(a, lo, na, sa);
    softmax_div(b, lo, nb, sb);
}

static void softmax4(float *const x[4], const int n[4])
{
    float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    int lo = n[0];
    for (int r = 1; r < 4; r++)
        lo = n[r] < lo ? n[r] : lo;
    float m0 = x0[0], m1 = x1[0], m2 = x2[0], m3 = x3[0];
    for (int i = 1; i < lo; i++) {
        if (x0[i] > m0)
            m0 = x0[i];
        if (x1[i] > m1)
            m1 = x1[i];
        if (x2[i] > m2)
            m2 = x2[i];
        if (x3[i] > m3)
            m3 = x3[i];
    }
    softmax_exp(x0, n[0], softmax_max_rest(x0, lo, n[0], m0));
    softmax_exp(x1, n[1], softmax_max_rest(x1, lo, n[1], m1));
    softmax_exp(x2, n[2], softmax_max_rest(x2, lo, n[2], m2));
    softmax_exp(x3, n[3], softmax_max_rest(x3, lo, n[3], m3));
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (int i = 0; i < lo; i++) {
        s0 += x0[i];
        s1 += x1[i];
        s2 += x2[i];
        s3 += x3[i];
    }
    softmax_div(x0, lo, n[0], s0);
    softmax_div(x1, lo, n[1], s1);
    softmax_div(x2, lo, n[2], s2);
    softmax_div(x3, lo, n[3], s3);
}
#endif /* OURO_X86_SIMD */

double ouro_logsumexp(const float *x, int n)
{
    float m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m)
            m = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += exp((double)x[i] - m);
    return m + log(sum);
}

/* ------------------------------------------------------------------------
 * Exit distribution of the loop
 * ------------------------------------------------------------------------ */

void ouro_exit_pdf(float *pdf, const float *gate, int L)
{
    float remaining = 1.0f;
    for (int t = 0; t < L - 1; t++)
        pdf[t] = ouro_exit_advance(gate[t], &remaining);
    if (L > 0)
        pdf[L - 1] = remaining;
}

int ouro_exit_qstep(const float *pdf, int L, float q)
{
    float cdf = 0.0f;
    for (int t = 0; t < L; t++) {
        cdf += pdf[t];
        if (cdf >= q)
            return t + 1;
    }
    return L;
}

/* ------------------------------------------------------------------------
 * Attention over the KV cache: q . k and o += a * v, for cache rows stored
 * in f32 or f16.  AVX-512 / AVX2+F16C paths chosen at run time (the level
 * ouro_simd_level() reports, so OURO_SIMD applies here too), and a plain one.
 * ------------------------------------------------------------------------ */

static float kv_dot_f32_c(const float *q, const void *kv, int n)
{
    const float *k = kv;
    float acc[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++)
            acc[u] += q[j + u] * k[j + u];
    float d = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < n; j++)
        d += q[j] * k[j];
    return d;
}

static float kv_dot_f16_c(const float *q, const void *kv, int n)
{
    const uint16_t *k = kv;
    float acc[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++)
            acc[u] += q[j + u] * ouro_f16_to_f32(k[j + u]);
    float d = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < n; j++)
        d += q[j] * ouro_f16_to_f32(k[j]);
    return d;
}

static void kv_axpy_f32_c(float *o, float a, const void *kv, int n)
{
    const float *v = kv;
    for (int j = 0; j < n; j++)
        o[j] += a * v[j];
}

static void kv_axpy_f16_c(float *o, float a, const void *kv, int n)
{
    const uint16_t *v = kv;
    for (int j = 0; j < n; j++)
        o[j] += a * ouro_f16_to_f32(v[j]);
}

/* One query head over npos cache rows: sc[p] = dot(q, k_p) * scale, the
 * softmax of sc, o = sum_p sc[p] * v_p (accumulated in position order from
 * zero), through a level's dot and axpy: the reference every fused kernel
 * below reproduces bit for bit. */
static void kv_attend_loop(float (*dot)(const float *, const void *, int),
                           void (*axpy)(float *, float, const void *, int), float *o,
                           const float *q, const char *k, const char *v, size_t stride, int npos,
                           float scale, float *sc, int hd)
{
    for (int p = 0; p < npos; p++)
        sc[p] = dot(q, k + (size_t)p * stride, hd) * scale;
    ouro_softmax(sc, npos);
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int p = 0; p < npos; p++)
        axpy(o, sc[p], v + (size_t)p * stride, hd);
}

static void kv_attend_f32_c(float *o, const float *q, const void *k, const void *v, size_t stride,
                            int npos, float scale, float *sc, int hd)
{
    kv_attend_loop(kv_dot_f32_c, kv_axpy_f32_c, o, q, k, v, stride, npos, scale, sc, hd);
}

static void kv_attend_f16_c(float *o, const float *q, const void *k, const void *v, size_t stride,
                            int npos, float scale, float *sc, int hd)
{
    kv_attend_loop(kv_dot_f16_c, kv_axpy_f16_c, o, q, k, v, stride, npos, scale, sc, hd);
}

/* Two query heads over the same cache rows, the first over na positions,
 * the second over nb >= na: each as attend alone. */
#define KV_ATTEND2_OF(NAME, ATTEND) \
static void NAME(float *oa, float *ob, const float *qa, const float *qb, const void *k, \
                 const void *v, size_t stride, int na, int nb, float scale, float *sca, \
                 float *scb, int hd) \
{ \
    ATTEND(oa, qa, k, v, stride, na, scale, sca, hd); \
    ATTEND(ob, qb, k, v, stride, nb, scale, scb, hd); \
}
KV_ATTEND2_OF(kv_attend2_f32_c, kv_attend_f32_c)
KV_ATTEND2_OF(kv_attend2_f16_c, kv_attend_f16_c)

/* Four query heads over the same cache rows, over n[0] <= n[1] <= n[2] <=
 * n[3] positions: two pairs, each as attend2. */
#define KV_ATTEND4_OF(NAME, ATTEND2) \
static void NAME(float *const o[4], const float *const q[4], const void *k, const void *v, \
                 size_t stride, const int n[4], float scale, float *const sc[4], int hd) \
{ \
    ATTEND2(o[0], o[1], q[0], q[1], k, v, stride, n[0], n[1], scale, sc[0], sc[1], hd); \
    ATTEND2(o[2], o[3], q[2], q[3], k, v, stride, n[2], n[3], scale, sc[2], sc[3], hd); \
}
KV_ATTEND4_OF(kv_attend4_f32_c, kv_attend2_f32_c)
KV_ATTEND4_OF(kv_attend4_f16_c, kv_attend2_f16_c)

#ifdef OURO_X86_SIMD   /* the x86-64 kernels; elsewhere the portable ones above alone */
#define KV_AVX2 __attribute__((target("avx2,fma,f16c")))
#define KV_AVX512 __attribute__((target("avx512f")))

KV_AVX2 static float hsum8(__m256 v)
{
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

KV_AVX2 static float kv_dot_f32_avx2(const float *q, const void *kv, int n)
{
    const float *k = kv;
    __m256 a = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8)
        a = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(k + j), a);
    float d = hsum8(a);
    for (; j < n; j++)
        d += q[j] * k[j];
    return d;
}

KV_AVX2 static float kv_dot_f16_avx2(const float *q, const void *kv, int n)
{
    const uint16_t *k = kv;
    __m256 a = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8)
        a = _mm256_fmadd_ps(_mm256_loadu_ps(q + j),
                            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + j))), a);
    float d = hsum8(a);
    for (; j < n; j++)
        d += q[j] * ouro_f16_to_f32(k[j]);
    return d;
}

KV_AVX2 static void kv_axpy_f32_avx2(float *o, float a, const void *kv, int n)
{
    const float *v = kv;
    __m256 av = _mm256_set1_ps(a);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(o + j, _mm256_fmadd_ps(av, _mm256_loadu_ps(v + j), _mm256_loadu_ps(o + j)));
    for (; j < n; j++)
        o[j] += a * v[j];
}

KV_AVX2 static void kv_axpy_f16_avx2(float *o, float a, const void *kv, int n)
{
    const uint16_t *v = kv;
    __m256 av = _mm256_set1_ps(a);
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(o + j, _mm256_fmadd_ps(av, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + j))),
                                                _mm256_loadu_ps(o + j)));
    for (; j < n; j++)
        o[j] += a * ouro_f16_to_f32(v[j]);
}

KV_AVX512 static float kv_dot_f32_avx512(const float *q, const void *kv, int n)
{
    const float *k = kv;
    __m512 a = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16)
        a = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), _mm512_loadu_ps(k + j), a);
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1);
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + j), _mm512_maskz_loadu_ps(m, k + j), a);
    }
    return _mm512_reduce_add_ps(a);
}

KV_AVX512 static float kv_dot_f16_avx512(const float *q, const void *kv, int n)
{
    const uint16_t *k = kv;
    __m512 a = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16)
        a = _mm512_fmadd_ps(_mm512_loadu_ps(q + j),
                            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + j))), a);
    float d = _mm512_reduce_add_ps(a);
    for (; j < n; j++)
        d += q[j] * ouro_f16_to_f32(k[j]);
    return d;
}

KV_AVX512 static void kv_axpy_f32_avx512(float *o, float a, const void *kv, int n)
{
    const float *v = kv;
    __m512 av = _mm512_set1_ps(a);
    int j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(o + j, _mm512_fmadd_ps(av, _mm512_loadu_ps(v + j), _mm512_loadu_ps(o + j)));
    for (; j < n; j++)
        o[j] += a * v[j];
}

KV_AVX512 static void kv_axpy_f16_avx512(float *o, float a, const void *kv, int n)
{
    const uint16_t *v = kv;
    __m512 av = _mm512_set1_ps(a);
    int j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(o + j, _mm512_fmadd_ps(av, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + j))),
                                                _mm512_loadu_ps(o + j)));
    for (; j < n; j++)
        o[j] += a * ouro_f16_to_f32(v[j]);
}

KV_AVX2 static void kv_attend_f32_avx2(float *o, const float *q, const void *k, const void *v,
                                       size_t stride, int npos, float scale, float *sc, int hd)
{
    kv_attend_loop(kv_dot_f32_avx2, kv_axpy_f32_avx2, o, q, k, v, stride, npos, scale, sc, hd);
}

KV_AVX2 static void kv_attend_f16_avx2(float *o, const float *q, const void *k, const void *v,
                                       size_t stride, int npos, float scale, float *sc, int hd)
{
    kv_attend_loop(kv_dot_f16_avx2, kv_axpy_f16_avx2, o, q, k, v, stride, npos, scale, sc, hd);
}

/* The AVX-512 attention of one query head, fused, for head_dim a multiple of
 * 16 (up to 512): the scores of four positions at a time (four independent
 * accumulators, each the same chain of fused multiply-adds and the same
 * reduction as kv_dot_*_avx512), and o held in registers, up to 8 vectors at
 * a time, while every position's a * v is added (the same fused multiply-add
 * per element, in position order, as kv_axpy_*_avx512 on a zeroed o).  The
 * bits equal those of kv_attend_loop with the AVX-512 dot and axpy. */
/* The sums of 16 vectors at once, lane i of the result the sum of a[i] with
 * the bits of _mm512_reduce_add_ps(a[i]): the same additions in the same
 * pairs (lane k + 8 with k, then k + 4 with k, then 2 with 0 and 3 with 1,
 * then the two), done for 16 vectors side by side with shuffles between, so
 * about 3 instructions a vector instead of 9. */
KV_AVX512 static inline __attribute__((always_inline)) __m512 kv_reduce16(const __m512 *a)
{
    __m512 s1[8], s2[4], s3[2];
    _Pragma("GCC unroll 8")
    for (int i = 0; i < 8; i++)        /* 8 lanes: a[k + 8] + a[k] */
        s1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE),
                              _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44));
    _Pragma("GCC unroll 4")
    for (int i = 0; i < 4; i++)        /* 4 lanes: k + 4 with k */
        s2[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], 0xDD),
                              _mm512_shuffle_f32x4(s1[2 * i], s1[2 * i + 1], 0x88));
    _Pragma("GCC unroll 2")
    for (int i = 0; i < 2; i++)        /* 2 lanes: 0 + 2, 1 + 3 */
        s3[i] = _mm512_add_ps(_mm512_shuffle_ps(s2[2 * i], s2[2 * i + 1], 0x44),
                              _mm512_shuffle_ps(s2[2 * i], s2[2 * i + 1], 0xEE));
    __m512 r = _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], 0x88),   /* 0 + 1 */
                             _mm512_shuffle_ps(s3[0], s3[1], 0xDD));
    /* the sum of a[k] is now at 4 * (k % 4) + k / 4 */
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(idx, r);
}

#define KV_LOAD_F32(p) _mm512_loadu_ps((const float *)(p))
#define KV_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))

#define KV_ATTEND_AVX512(NAME, LOAD, EL) \
KV_AVX512 static inline __attribute__((always_inline)) \
void NAME##_cols(float *o, const char *v, size_t stride, int npos, const float *sc, int c0, int nv) \
{ \
    __m512 acc[8]; \
    _Pragma("GCC unroll 8") \
    for (int u = 0; u < nv; u++) \
        acc[u] = _mm512_setzero_ps(); \
    for (int p = 0; p < npos; p++) { \
        __m512 a = _mm512_set1_ps(sc[p]); \
        const char *vp = v + (size_t)p * stride + (size_t)c0 * (EL); \
        _Pragma("GCC unroll 8") \
        for (int u = 0; u < nv; u++) \
            acc[u] = _mm512_fmadd_ps(a, LOAD(vp + (size_t)u * 16 * (EL)), acc[u]); \
    } \
    _Pragma("GCC unroll 8") \
    for (int u = 0; u < nv; u++) \
        _mm512_storeu_ps(o + c0 + u * 16, acc[u]); \
} \
KV_AVX512 static void NAME(float *o, const float *q, const void *kv_k, const void *kv_v, \
                           size_t stride, int npos, float scale, float *sc, int hd) \
{ \
    const char *k = kv_k, *v = kv_v; \
    int nv = hd / 16; \
    int p = 0; \
    for (; p + 16 <= npos; p += 16) { \
        const char *k0 = k + (size_t)p * stride; \
        __m512 acc[16]; \
        _Pragma("GCC unroll 16") \
        for (int u = 0; u < 16; u++) \
            acc[u] = _mm512_setzero_ps(); \
        for (int j = 0; j < nv; j++) { \
            __m512 qj = _mm512_loadu_ps(q + j * 16); \
            size_t off = (size_t)j * 16 * (EL); \
            _Pragma("GCC unroll 16") \
            for (int u = 0; u < 16; u++) \
                acc[u] = _mm512_fmadd_ps(qj, LOAD(k0 + (size_t)u * stride + off), acc[u]); \
        } \
        _mm512_storeu_ps(sc + p, _mm512_mul_ps(kv_reduce16(acc), _mm512_set1_ps(scale))); \
    } \
    for (; p + 4 <= npos; p += 4) { \
        const char *k0 = k + (size_t)p * stride; \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; \
        for (int j = 0; j < nv; j++) { \
            __m512 qj = _mm512_loadu_ps(q + j * 16); \
            size_t off = (size_t)j * 16 * (EL); \
            a0 = _mm512_fmadd_ps(qj, LOAD(k0 + off), a0); \
            a1 = _mm512_fmadd_ps(qj, LOAD(k0 + stride + off), a1); \
            a2 = _mm512_fmadd_ps(qj, LOAD(k0 + 2 * stride + off), a2); \
            a3 = _mm512_fmadd_ps(qj, LOAD(k0 + 3 * stride + off), a3); \
        } \
        sc[p] = _mm512_reduce_add_ps(a0) * scale; \
        sc[p + 1] = _mm512_reduce_add_ps(a1) * scale; \
        sc[p + 2] = _mm512_reduce_add_ps(a2) * scale; \
        sc[p + 3] = _mm512_reduce_add_ps(a3) * scale; \
    } \
    for (; p < npos; p++) { \
        const char *kp = k + (size_t)p * stride; \
        __m512 a0 = _mm512_setzero_ps(); \
        for (int j = 0; j < nv; j++) \
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j * 16), LOAD(kp + (size_t)j * 16 * (EL)), a0); \
        sc[p] = _mm512_reduce_add_ps(a0) * scale; \
    } \
    ouro_softmax(sc, npos); \
    int c = 0; \
    for (; c + 128 <= hd; c += 128) \
        NAME##_cols(o, v, stride, npos, sc, c, 8); \
    if (c + 64 <= hd) { \
        NAME##_cols(o, v, stride, npos, sc, c, 4); \
        c += 64; \
    } \
    if (c + 32 <= hd) { \
        NAME##_cols(o, v, stride, npos, sc, c, 2); \
        c += 32; \
    } \
    if (c < hd) \
        NAME##_cols(o, v, stride, npos, sc, c, 1); \
}
KV_ATTEND_AVX512(kv_attend_f32_fused, KV_LOAD_F32, 4)
KV_ATTEND_AVX512(kv_attend_f16_fused, KV_LOAD_F16, 2)

/* Two query heads of one sequence over the same cache rows (na <= nb
 * positions), fused: each key and value row is loaded once for both, and each
 * query's operations are those of the one-query kernel above, in the same
 * order, so each gets the bits it gets alone. */
#define KV_ATTEND2_AVX512(NAME, ONE, LOAD, EL) \
KV_AVX512 static inline __attribute__((always_inline)) \
void NAME##_cols(float *oa, float *ob, const char *v, size_t stride, int na, int nb, \
                 const float *sa, const float *sb, int c0, int nv) \
{ \
    __m512 acc_a[8], acc_b[8]; \
    _Pragma("GCC unroll 8") \
    for (int u = 0; u < nv; u++) \
        acc_a[u] = acc_b[u] = _mm512_setzero_ps(); \
    int p = 0; \
    for (; p < na; p++) { \
        __m512 a = _mm512_set1_ps(sa[p]), b = _mm512_set1_ps(sb[p]); \
        const char *vp = v + (size_t)p * stride + (size_t)c0 * (EL); \
        _Pragma("GCC unroll 8") \
        for (int u = 0; u < nv; u++) { \
            __m512 x = LOAD(vp + (size_t)u * 16 * (EL)); \
            acc_a[u] = _mm512_fmadd_ps(a, x, acc_a[u]); \
            acc_b[u] = _mm512_fmadd_ps(b, x, acc_b[u]); \
        } \
    } \
    for (; p < nb; p++) { \
        __m512 b = _mm512_set1_ps(sb[p]); \
        const char *vp = v + (size_t)p * stride + (size_t)c0 * (EL); \
        _Pragma("GCC unroll 8") \
        for (int u = 0; u < nv; u++) \
            acc_b[u] = _mm512_fmadd_ps(b, LOAD(vp + (size_t)u * 16 * (EL)), acc_b[u]); \
    } \
    _Pragma("GCC unroll 8") \
    for (int u = 0; u < nv; u++) { \
        _mm512_storeu_ps(oa + c0 + u * 16, acc_a[u]); \
        _mm512_storeu_ps(ob + c0 + u * 16, acc_b[u]); \
    } \
} \
KV_AVX512 static void NAME(float *oa, float *ob, const float *qa, const float *qb, \
                           const void *kv_k, const void *kv_v, size_t stride, int na, int nb, \
                           float scale, float *sca, float *scb, int hd) \
{ \
    const char *k = kv_k, *v = kv_v; \
    int nv = hd / 16; \
    int p = 0; \
    for (; p + 8 <= na; p += 8) { \
        const char *k0 = k + (size_t)p * stride; \
        __m512 acc[16];   /* positions p .. p+7 of qa, then of qb */ \
        _Pragma("GCC unroll 16") \
        for (int u = 0; u < 16; u++) \
            acc[u] = _mm512_setzero_ps(); \
        for (int j = 0; j < nv; j++) { \
            __m512 qaj = _mm512_loadu_ps(qa + j * 16), qbj = _mm512_loadu_ps(qb + j * 16); \
            size_t off = (size_t)j * 16 * (EL); \
            _Pragma("GCC unroll 8") \
            for (int u = 0; u < 8; u++) { \
                __m512 x = LOAD(k0 + (size_t)u * stride + off); \
                acc[u] = _mm512_fmadd_ps(qaj, x, acc[u]); \
                acc[8 + u] = _mm512_fmadd_ps(qbj, x, acc[8 + u]); \
            } \
        } \
        __m512 r = _mm512_mul_ps(kv_reduce16(acc), _mm512_set1_ps(scale)); \
        _mm256_storeu_ps(sca + p, _mm512_castps512_ps256(r)); \
        _mm256_storeu_ps(scb + p, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r), 1))); \
    } \
    for (; p + 2 <= na; p += 2) { \
        const char *k0 = k + (size_t)p * stride; \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0; \
        for (int j = 0; j < nv; j++) { \
            __m512 qaj = _mm512_loadu_ps(qa + j * 16), qbj = _mm512_loadu_ps(qb + j * 16); \
            size_t off = (size_t)j * 16 * (EL); \
            __m512 x0 = LOAD(k0 + off), x1 = LOAD(k0 + stride + off); \
            a0 = _mm512_fmadd_ps(qaj, x0, a0); \
            b0 = _mm512_fmadd_ps(qbj, x0, b0); \
            a1 = _mm512_fmadd_ps(qaj, x1, a1); \
            b1 = _mm512_fmadd_ps(qbj, x1, b1); \
        } \
        sca[p] = _mm512_reduce_add_ps(a0) * scale; \
        scb[p] = _mm512_reduce_add_ps(b0) * scale; \
        sca[p + 1] = _mm512_reduce_add_ps(a1) * scale; \
        scb[p + 1] = _mm512_reduce_add_ps(b1) * scale; \
    } \
    for (; p < nb; p++) { \
        const char *kp = k + (size_t)p * stride; \
        bool both = p < na; \
        __m512 a0 = _mm512_setzero_ps(), b0 = a0; \
        for (int j = 0; j < nv; j++) { \
            __m512 x0 = LOAD(kp + (size_t)j * 16 * (EL)); \
            if (both) \
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(qa + j * 16), x0, a0); \
            b0 = _mm512_fmadd_ps(_mm512_loadu_ps(qb + j * 16), x0, b0); \
        } \
        if (both) \
            sca[p] = _mm512_reduce_add_ps(a0) * scale; \
        scb[p] = _mm512_reduce_add_ps(b0) * scale; \
    } \
    softmax2(sca, na, scb, nb); \
    int c = 0; \
    for (; c + 128 <= hd; c += 128) \
        NAME##_cols(oa, ob, v, stride, na, nb, sca, scb, c, 8); \
    if (c + 64 <= hd) { \
        NAME##_cols(oa, ob, v, stride, na, nb, sca, scb, c, 4); \
        c += 64; \
    } \
    if (c + 32 <= hd) { \
        NAME##_cols(oa, ob, v, stride, na, nb, sca, scb, c, 2); \
        c += 32; \
    } \
    if (c < hd) \
        NAME##_cols(oa, ob, v, stride, na, nb, sca, scb, c, 1); \
}
KV_ATTEND2_AVX512(kv_attend2_f32_fused, kv_attend_f32_fused, KV_LOAD_F32, 4)
KV_ATTEND2_AVX512(kv_attend2_f16_fused, kv_attend_f16_fused, KV_LOAD_F16, 2)

/* Four query heads of one sequence over the same cache rows (n[0] <= n[1] <=
 * n[2] <= n[3] positions), fused: each key and value vector is loaded once
 * for all four, where two heads at a time (above) load it once for two and
 * are bound by the reads from L2.  Each query's operations are still those of
 * the one-query kernel, in the same order: per position one chain of fused
 * multiply-adds over the head's elements and the reduction of
 * _mm512_reduce_add_ps (kv_reduce16 for 4 positions of the 4 queries), times
 * scale; the softmax of its own positions; o from zero, one fused
 * multiply-add per element and position, in position order.  So each gets
 * the bits it gets alone.  The scores of a block of 4 positions are taken
 * for all four queries, the ones past a query's own count thrown away (in a
 * prompt they are the last three positions); the values are added only for
 * a query's own positions. */
#define KV_ATTEND4_AVX512(NAME, LOAD, EL) \
KV_AVX512 static inline __attribute__((always_inline)) \
void NAME##_cols(float *const o[4], const char *v, size_t stride, const int n[4], \
                 float *const sc[4], int c0, int nv) \
{ \
    __m512 acc[16];   /* query r's vector u at r * nv + u */ \
    _Pragma("GCC unroll 16") \
    for (int u = 0; u < 4 * nv; u++) \
        acc[u] = _mm512_setzero_ps(); \
    const float *s0 = sc[0], *s1 = sc[1], *s2 = sc[2], *s3 = sc[3]; \
    int p = 0; \
    for (; p < n[0]; p++) { \
        __m512 a0 = _mm512_set1_ps(s0[p]), a1 = _mm512_set1_ps(s1[p]); \
        __m512 a2 = _mm512_set1_ps(s2[p]), a3 = _mm512_set1_ps(s3[p]); \
        const char *vp = v + (size_t)p * stride + (size_t)c0 * (EL); \
        _Pragma("GCC unroll 4") \
        for (int u = 0; u < nv; u++) { \
            __m512 x = LOAD(vp + (size_t)u * 16 * (EL)); \
            acc[u] = _mm512_fmadd_ps(a0, x, acc[u]); \
            acc[nv + u] = _mm512_fmadd_ps(a1, x, acc[nv + u]); \
            acc[2 * nv + u] = _mm512_fmadd_ps(a2, x, acc[2 * nv + u]); \
            acc[3 * nv + u] = _mm512_fmadd_ps(a3, x, acc[3 * nv + u]); \
        } \
    } \
    for (; p < n[3]; p++) {   /* the positions of the later queries alone */ \
        bool on1 = p < n[1], on2 = p < n[2]; \
        __m512 a1 = _mm512_set1_ps(on1 ? s1[p] : 0.0f), a2 = _mm512_set1_ps(on2 ? s2[p] : 0.0f); \
        __m512 a3 = _mm512_set1_ps(s3[p]); \
        const char *vp = v + (size_t)p * stride + (size_t)c0 * (EL); \
        _Pragma("GCC unroll 4") \
        for (int u = 0; u < nv; u++) { \
            __m512 x = LOAD(vp + (size_t)u * 16 * (EL)); \
            if (on1) \
                acc[nv + u] = _mm512_fmadd_ps(a1, x, acc[nv + u]); \
            if (on2) \
                acc[2 * nv + u] = _mm512_fmadd_ps(a2, x, acc[2 * nv + u]); \
            acc[3 * nv + u] = _mm512_fmadd_ps(a3, x, acc[3 * nv + u]); \
        } \
    } \
    _Pragma("GCC unroll 4") \
    for (int u = 0; u < nv; u++) { \
        _mm512_storeu_ps(o[0] + c0 + u * 16, acc[u]); \
        _mm512_storeu_ps(o[1] + c0 + u * 16, acc[nv + u]); \
        _mm512_storeu_ps(o[2] + c0 + u * 16, acc[2 * nv + u]); \
        _mm512_storeu_ps(o[3] + c0 + u * 16, acc[3 * nv + u]); \
    } \
} \
KV_AVX512 static void NAME(float *const o[4], const float *const q[4], const void *kv_k, \
                           const void *kv_v, size_t stride, const int n[4], float scale, \
                           float *const sc[4], int hd) \
{ \
    const char *k = kv_k, *v = kv_v; \
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3]; \
    int nv = hd / 16, p = 0; \
    for (; p + 4 <= n[3]; p += 4) { \
        const char *k0 = k + (size_t)p * stride; \
        __m512 acc[16];   /* query r at position p + u: acc[4 * r + u] */ \
        _Pragma("GCC unroll 16") \
        for (int u = 0; u < 16; u++) \
            acc[u] = _mm512_setzero_ps(); \
        _Pragma("GCC unroll 2") \
        for (int j = 0; j < nv; j++) { \
            __m512 q0j = _mm512_loadu_ps(q0 + j * 16), q1j = _mm512_loadu_ps(q1 + j * 16); \
            __m512 q2j = _mm512_loadu_ps(q2 + j * 16), q3j = _mm512_loadu_ps(q3 + j * 16); \
            size_t off = (size_t)j * 16 * (EL); \
            _Pragma("GCC unroll 4") \
            for (int u = 0; u < 4; u++) { \
                __m512 x = LOAD(k0 + (size_t)u * stride + off); \
                acc[u] = _mm512_fmadd_ps(q0j, x, acc[u]); \
                acc[4 + u] = _mm512_fmadd_ps(q1j, x, acc[4 + u]); \
                acc[8 + u] = _mm512_fmadd_ps(q2j, x, acc[8 + u]); \
                acc[12 + u] = _mm512_fmadd_ps(q3j, x, acc[12 + u]); \
            } \
        } \
        __m512 r = _mm512_mul_ps(kv_reduce16(acc), _mm512_set1_ps(scale)); \
        _Pragma("GCC unroll 4") \
        for (int i = 0; i < 4; i++) {   /* lanes 4i .. 4i+3 to sc[i] + p, those < n[i] */ \
            int m = n[i] - p < 4 ? n[i] - p : 4; \
            if (m > 0)   /* a masked store: the lanes off the mask touch no memory */ \
                _mm512_mask_storeu_ps((void *)((uintptr_t)(sc[i] + p) - 16 * (uintptr_t)i), \
                                      (__mmask16)(((1u << m) - 1) << (4 * i)), r); \
        } \
    } \
    for (; p < n[3]; p++) { \
        const char *kp = k + (size_t)p * stride; \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0; \
        for (int j = 0; j < nv; j++) { \
            __m512 x = LOAD(kp + (size_t)j * 16 * (EL)); \
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q0 + j * 16), x, a0); \
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q1 + j * 16), x, a1); \
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(q2 + j * 16), x, a2); \
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(q3 + j * 16), x, a3); \
        } \
        if (p < n[0]) \
            sc[0][p] = _mm512_reduce_add_ps(a0) * scale; \
        if (p < n[1]) \
            sc[1][p] = _mm512_reduce_add_ps(a1) * scale; \
        if (p < n[2]) \
            sc[2][p] = _mm512_reduce_add_ps(a2) * scale; \
        sc[3][p] = _mm512_reduce_add_ps(a3) * scale; \
    } \
    softmax4(sc, n); \
    int c = 0; \
    for (; c + 64 <= hd; c += 64) \
        NAME##_cols(o, v, stride, n, sc, c, 4); \
    if (c + 32 <= hd) { \
        NAME##_cols(o, v, stride, n, sc, c, 2); \
        c += 32; \
    } \
    if (c < hd) \
        NAME##_cols(o, v, stride, n, sc, c, 1); \
}
KV_ATTEND4_AVX512(kv_attend4_f32_fused, KV_LOAD_F32, 4)
KV_ATTEND4_AVX512(kv_attend4_f16_fused, KV_LOAD_F16, 2)

/* The AVX-512 attention of one, two and four query heads for cache elements
 * EL: the fused kernels where head_dim allows, else the dot and axpy loop
 * (two heads: one after the other; four: two pairs). */
#define KV_AVX512_OF(EL) \
KV_AVX512 static void kv_attend_##EL##_avx512(float *o, const float *q, const void *k, \
                                             const void *v, size_t stride, int npos, float scale, \
                                             float *sc, int hd) \
{ \
    if (hd % 16 == 0 && hd <= 512) \
        kv_attend_##EL##_fused(o, q, k, v, stride, npos, scale, sc, hd); \
    else \
        kv_attend_loop(kv_dot_##EL##_avx512, kv_axpy_##EL##_avx512, o, q, k, v, stride, npos, \
                       scale, sc, hd); \
} \
KV_AVX512 static void kv_attend2_##EL##_avx512(float *oa, float *ob, const float *qa, \
                                              const float *qb, const void *k, const void *v, \
                                              size_t stride, int na, int nb, float scale, \
                                              float *sca, float *scb, int hd) \
{ \
    if (hd % 16 == 0 && hd <= 512) { \
        kv_attend2_##EL##_fused(oa, ob, qa, qb, k, v, stride, na, nb, scale, sca, scb, hd); \
        return; \
    } \
    kv_attend_##EL##_avx512(oa, qa, k, v, stride, na, scale, sca, hd); \
    kv_attend_##EL##_avx512(ob, qb, k, v, stride, nb, scale, scb, hd); \
} \
KV_AVX512 static void kv_attend4_##EL##_avx512(float *const o[4], const float *const q[4], \
                                              const void *k, const void *v, size_t stride, \
                                              const int n[4], float scale, float *const sc[4], \
                                              int hd) \
{ \
    if (hd % 16 == 0 && hd <= 512) { \
        kv_attend4_##EL##_fused(o, q, k, v, stride, n, scale, sc, hd); \
        return; \
    } \
    kv_attend2_##EL##_avx512(o[0], o[1], q[0], q[1], k, v, stride, n[0], n[1], scale, sc[0], \
                             sc[1], hd); \
    kv_attend2_##EL##_avx512(o[2], o[3], q[2], q[3], k, v, stride, n[2], n[3], scale, sc[2], \
                             sc[3], hd); \
}
KV_AVX512_OF(f32)
KV_AVX512_OF(f16)

KV_ATTEND2_OF(kv_attend2_f32_avx2, kv_attend_f32_avx2)
KV_ATTEND2_OF(kv_attend2_f16_avx2, kv_attend_f16_avx2)
KV_ATTEND4_OF(kv_attend4_f32_avx2, kv_attend2_f32_avx2)
KV_ATTEND4_OF(kv_attend4_f16_avx2, kv_attend2_f16_avx2)

#endif /* OURO_X86_SIMD */

ouro_kv_kernels ouro_kv_kernels_for(bool f16)
{
    const char *lv = ouro_simd_level();
    int l = strcmp(lv, "avx512") == 0 ? 2 : strcmp(lv, "avx2") == 0 ? 1 : 0;
    static const ouro_kv_kernels table[3][2] = {
        { { kv_dot_f32_c, kv_axpy_f32_c, kv_attend_f32_c, kv_attend2_f32_c, kv_attend4_f32_c },
          { kv_dot_f16_c, kv_axpy_f16_c, kv_attend_f16_c, kv_attend2_f16_c, kv_attend4_f16_c } },
#ifdef OURO_X86_SIMD
        { { kv_dot_f32_avx2, kv_axpy_f32_avx2, kv_attend_f32_avx2, kv_attend2_f32_avx2,
            kv_attend4_f32_avx2 },
          { kv_dot_f16_avx2, kv_axpy_f16_avx2, kv_attend_f16_avx2, kv_attend2_f16_avx2,
            kv_attend4_f16_avx2 } },
        { { kv_dot_f32_avx512, kv_axpy_f32_avx512, kv_attend_f32_avx512, kv_attend2_f32_avx512,
            kv_attend4_f32_avx512 },
          { kv_dot_f16_avx512, kv_axpy_f16_avx512, kv_attend_f16_avx512, kv_attend2_f16_avx512,
            kv_attend4_f16_avx512 } },
#endif
    };
    return table[l][f16];   /* generic (row 0) where there are no x86 kernels */
}

#ifdef OURO_X86_SIMD
/* f32 entries 16 at a time: whole-line stores let the store buffer reach
 * several cache rows ahead, so their reads for ownership overlap (the
 * destinations are rarely cached; the scalar loop held 2% of a 16-sequence
 * decode step's perf samples).  The same products. */
__attribute__((target("avx512f"))) static void kv_store_f32_avx512(float *d, const float *src,
                                                                   float scale, int n)
{
    __m512 sc = _mm512_set1_ps(scale);
    int j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(d + j, _mm512_mul_ps(_mm512_loadu_ps(src + j), sc));
    for (; j < n; j++)
        d[j] = src[j] * scale;
}
#endif

void ouro_kv_store(void *dst, bool f16, const float *src, float scale, int n)
{
#ifdef OURO_X86_SIMD
    if (!f16 && ouro_simd() >= OURO_SIMD_AVX512) {
        kv_store_f32_avx512(dst, src, scale, n);
        return;
    }
#endif
    if (!f16) {
        float *d = dst;
        for (int j = 0; j < n; j++)
            d[j] = src[j] * scale;
        return;
    }
    uint16_t *d = dst;
    for (int j = 0; j < n; j++)
        d[j] = ouro_f32_to_f16(src[j] * scale);
}

/*
 * kernels.c -- number formats and the matrix products of the forward pass.
 *
 * Every matrix product of ouro goes through ouro_matmul(): y = x . W^T for a
 * batch of rows x, with W stored as the checkpoint stores it (F32, F16 or
 * BF16, row-major (d_out, d_in)) and converted to f32 on the fly; sums are
 * accumulated in f32.  The SIMD path (AVX-512, AVX2+FMA+F16C, or portable C)
 * is chosen at run time from what the processor reports.  A later
 * performance pass replaces what is below this interface, not its callers.
 */
#include <math.h>
#include <string.h>
#include <immintrin.h>
#include "internal.h"

/* ------------------------------------------------------------------------
 * Half-precision conversion (IEEE fp16 and bfloat16)
 * ------------------------------------------------------------------------ */

static inline float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float ouro_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float f = (float)man * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31)
        return bits_to_f32(sign | 0x7f800000u | (man << 13));
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ouro_f32_to_f16(float f)
{
    uint32_t u = f32_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t absu = u & 0x7fffffffu;
    if (absu >= 0x7f800000u)                       /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absu > 0x7f800000u ? 0x200 : 0));
    if (absu >= 0x477ff000u)                       /* rounds to >= 65520: inf */
        return (uint16_t)(sign | 0x7c00);
    if (absu < 0x38800000u) {                      /* below 2^-14: subnormal */
        float a = bits_to_f32(absu);
        /* a / 2^-24 rounded to nearest even */
        float m = nearbyintf(a * 16777216.0f);
        return (uint16_t)(sign | (uint32_t)m);
    }
    uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u);   /* round to nearest even */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float ouro_bf16_to_f32(uint16_t h)
{
    return bits_to_f32((uint32_t)h << 16);
}

uint16_t ouro_f32_to_bf16(float f)
{
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)           /* nan stays nan */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

size_t ouro_dtype_size(ouro_dtype dt)
{
    return dt == OURO_F32 ? 4 : 2;
}

const char *ouro_dtype_name(ouro_dtype dt)
{
    switch (dt) {
    case OURO_F32:  return "F32";
    case OURO_F16:  return "F16";
    case OURO_BF16: return "BF16";
    }
    return "?";
}

void ouro_row_to_f32(float *out, const void *w, ouro_dtype dt, size_t row, int cols)
{
    size_t off = row * (size_t)cols;
    if (dt == OURO_F32) {
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

/* ------------------------------------------------------------------------
 * Run-time dispatch
 * ------------------------------------------------------------------------ */

enum { SIMD_GENERIC = 1, SIMD_AVX2, SIMD_AVX512 };

static int simd_level(void)
{
    static volatile int level;   /* 0 = not yet known; every thread computes the same */
    if (!level) {
        int l = SIMD_GENERIC;
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f"))
            l = SIMD_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            l = SIMD_AVX2;   /* F16C comes with every AVX2 processor */
        level = l;
    }
    return level;
}

const char *ouro_simd_level(void)
{
    switch (simd_level()) {
    case SIMD_AVX512: return "avx512";
    case SIMD_AVX2:   return "avx2";
    default:          return "generic";
    }
}

static dot_fn pick_dot(ouro_dtype dt)
{
    static const dot_fn table[3][3] = {
        /* F32            F16             BF16 */
        { dot_f32_c,      dot_f16_c,      dot_bf16_c },
        { dot_f32_avx2,   dot_f16_avx2,   dot_bf16_avx2 },
        { dot_f32_avx512, dot_f16_avx512, dot_bf16_avx512 },
    };
    return table[simd_level() - 1][dt];
}

/* ------------------------------------------------------------------------
 * Products
 * ------------------------------------------------------------------------ */

float ouro_dot_row(const void *w, ouro_dtype dt, size_t row, const float *x, int d_in)
{
    const char *p = (const char *)w + row * (size_t)d_in * ouro_dtype_size(dt);
    return pick_dot(dt)(p, x, d_in);
}

void ouro_matmul(float *y, const float *x, const void *w, ouro_dtype dt,
                 int n, int d_in, int d_out, int threads)
{
    dot_fn dot = pick_dot(dt);
    size_t row_bytes = (size_t)d_in * ouro_dtype_size(dt);
    /* Small products are not worth waking the thread team. */
    int nt = (size_t)n * d_in * d_out < 16384 ? 1 : threads;
    #pragma omp parallel for num_threads(nt) schedule(static)
    for (int o = 0; o < d_out; o++) {
        const char *row = (const char *)w + (size_t)o * row_bytes;
        for (int i = 0; i < n; i++)
            y[(size_t)i * d_out + o] = dot(row, x + (size_t)i * d_in, d_in);
    }
}

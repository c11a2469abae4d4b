/*
 * test_math.c -- the numeric pieces of the core against independent
 * references computed in double: the exit distribution and the Q-exit step
 * (math.c), fp16 / bfloat16 conversion with round-to-nearest-even, infinities,
 * NaN and subnormals, RMSNorm, softmax, log-sum-exp, RoPE, and ouro_matmul for
 * every weight dtype, odd sizes, batches of 1..9 rows and 1 or 2 threads
 * (kernels.c).
 *
 * The SIMD path under test is the one this processor selects (printed as a
 * note); run on machines of each kind to cover the others.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64*: a fixed sequence, so failures reproduce. */
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Uniform in [lo, hi). */
static float rng_float(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next() >> 40) / 16777216.0);
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ------------------------------------------------------------------------
 * Exit distribution and Q-exit
 * ------------------------------------------------------------------------ */

/* The exit pdf in double: lambda_t = sigmoid(g_t), p_t = lambda_t prod(1 - lambda_j), p_L the rest. */
static void pdf_ref(double *p, const float *g, int L)
{
    double rem = 1.0;
    for (int t = 0; t < L; t++) {
        double lam = 1.0 / (1.0 + exp(-(double)g[t]));
        p[t] = t < L - 1 ? lam * rem : rem;
        rem *= 1.0 - lam;
    }
}

static void test_exit_pdf(void)
{
    float pdf[OURO_MAX_LOOPS];
    double ref[OURO_MAX_LOOPS];

    float g0[3] = { 0, 0, 0 };
    ouro_exit_pdf(pdf, g0, 3);
    check(pdf[0] == 0.5f && pdf[1] == 0.25f && pdf[2] == 0.25f,
          "exit pdf: gates 0,0,0 give exactly 1/2, 1/4, 1/4");

    /* by hand: lambda = 3/4, 1/2, 1/4 -> 3/4, 1/4*1/2, 1/8*1/4, the rest 1/8*3/4 */
    float g1[4] = { logf(3.0f), 0.0f, -logf(3.0f), 5.0f };
    ouro_exit_pdf(pdf, g1, 4);
    double hand[4] = { 0.75, 0.125, 0.03125, 0.09375 };
    double worst = 0;
    for (int t = 0; t < 4; t++) {   /* not fmax: gcc 12 for aarch64 crashes vectorizing it */
        double e = fabs(pdf[t] - hand[t]);
        if (e > worst)
            worst = e;
    }
    check(worst < 1e-6, "exit pdf: matches the hand computation 3/4, 1/8, 1/32, 3/32 (%.1e)",
          worst);

    float g2[1] = { -3.0f };
    ouro_exit_pdf(pdf, g2, 1);
    check(pdf[0] == 1.0f, "exit pdf: one step takes all the mass");

    float g3[4] = { 100.0f, -2.0f, 1.0f, 0.0f };
    ouro_exit_pdf(pdf, g3, 4);
    check(pdf[0] == 1.0f && pdf[1] == 0.0f && pdf[2] == 0.0f && pdf[3] == 0.0f,
          "exit pdf: a saturated first gate exits at step 1");

    float g4[4] = { -100.0f, -100.0f, -100.0f, -100.0f };
    ouro_exit_pdf(pdf, g4, 4);
    check(pdf[0] < 1e-40f && pdf[1] < 1e-40f && pdf[2] < 1e-40f && pdf[3] == 1.0f,
          "exit pdf: closed gates leave all the mass to the last step");

    float g5[3] = { -INFINITY, INFINITY, 0.0f };
    ouro_exit_pdf(pdf, g5, 3);
    check(pdf[0] == 0.0f && pdf[1] == 1.0f && pdf[2] == 0.0f,
          "exit pdf: infinite gate logits are clean 0 / 1");

    /* random gates, every length up to OURO_MAX_LOOPS */
    double worst_sum = 0, worst_ref = 0;
    bool in_range = true;
    for (int rep = 0; rep < 200; rep++) {
        int L = 1 + rep % OURO_MAX_LOOPS;
        float g[OURO_MAX_LOOPS];
        for (int t = 0; t < L; t++)
            g[t] = rng_float(-8.0f, 8.0f);
        ouro_exit_pdf(pdf, g, L);
        pdf_ref(ref, g, L);
        double sum = 0;
        for (int t = 0; t < L; t++) {
            sum += pdf[t];
            worst_ref = fmax(worst_ref, fabs(pdf[t] - ref[t]));
            in_range &= pdf[t] >= 0.0f && pdf[t] <= 1.0f;
        }
        worst_sum = fmax(worst_sum, fabs(sum - 1.0));
    }
    check(worst_sum < 1e-6, "exit pdf: sums to 1 for 200 random gate vectors (%.1e)", worst_sum);
    check(worst_ref < 1e-6, "exit pdf: within 1e-6 of the double computation (%.1e)", worst_ref);
    check(in_range, "exit pdf: every probability in [0, 1]");
}

/* The Q-exit step by its definition: first t whose f32 running sum reaches q, else L. */
static int qstep_ref(const float *pdf, int L, float q)
{
    float c = 0;
    for (int t = 0; t < L; t++) {
        c += pdf[t];
        if (c >= q)
            return t + 1;
    }
    return L;
}

static void test_qstep(void)
{
    float u[4] = { 0.25f, 0.25f, 0.25f, 0.25f };
    check(ouro_exit_qstep(u, 4, 0.0f) == 1, "qstep: q = 0 exits at step 1");
    check(ouro_exit_qstep(u, 4, 0.25f) == 1, "qstep: q equal to p_1 exits at step 1");
    check(ouro_exit_qstep(u, 4, nextafterf(0.25f, 1.0f)) == 2, "qstep: q just above p_1: step 2");
    check(ouro_exit_qstep(u, 4, 0.5f) == 2, "qstep: q = 0.5 on a uniform pdf: step 2");
    check(ouro_exit_qstep(u, 4, 1.0f) == 4, "qstep: q = 1 on a uniform pdf: the last step");
    check(ouro_exit_qstep(u, 4, 1.5f) == 4, "qstep: q above 1 is never reached: the last step");

    float z[4] = { 0.0f, 0.0f, 0.0f, 1.0f };
    check(ouro_exit_qstep(z, 4, 0.0f) == 1, "qstep: q = 0 exits at step 1 even with p_1 = 0");
    check(ouro_exit_qstep(z, 4, 1e-30f) == 4, "qstep: tiny q waits for the first mass");

    float pdf[OURO_MAX_LOOPS];
    float sat[4] = { 60.0f, 0.0f, 0.0f, 0.0f };
    ouro_exit_pdf(pdf, sat, 4);
    check(ouro_exit_qstep(pdf, 4, 1.0f) == 1 && ouro_exit_qstep(pdf, 4, 0.5f) == 1,
          "qstep: a saturated first gate exits at step 1 for q = 1 and 0.5");
    float shut[4] = { -60.0f, -60.0f, -60.0f, 0.0f };
    ouro_exit_pdf(pdf, shut, 4);
    check(ouro_exit_qstep(pdf, 4, 0.5f) == 4 && ouro_exit_qstep(pdf, 4, 1e-30f) == 1,
          "qstep: closed gates exit last for q = 0.5, first for q below p_1 (%g)", pdf[0]);

    /* the default of ouro's configs (threshold 1.0) on real-looking pdfs:
     * the f32 running sum may fall short of 1, and then the last step is taken */
    int mismatch = 0;
    for (int rep = 0; rep < 2000; rep++) {
        int L = 1 + rep % OURO_MAX_LOOPS;
        float g[OURO_MAX_LOOPS];
        for (int t = 0; t < L; t++)
            g[t] = rng_float(-6.0f, 6.0f);
        ouro_exit_pdf(pdf, g, L);
        float qs[] = { 0.0f, 0.1f, 0.5f, 0.9f, 0.99f, 1.0f, rng_float(0.0f, 1.0f) };
        for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
            int s = ouro_exit_qstep(pdf, L, qs[k]);
            mismatch += s != qstep_ref(pdf, L, qs[k]) || s < 1 || s > L;
        }
    }
    check(mismatch == 0, "qstep: first step whose f32 CDF reaches q, else L, on 14000 cases (%d off)",
          mismatch);
}

/* ------------------------------------------------------------------------
 * bfloat16
 * ------------------------------------------------------------------------ */

/* Value of a non-negative bf16 magnitude for rounding: 0x7f80 counts as 2^128. */
static double bf16_mag_value(uint32_t h)
{
    return h >= 0x7f80 ? ldexp(1.0, 128) : (double)bits_f(h << 16);
}

/* f32 -> bf16, round to nearest even, computed from values. */
static uint16_t bf16_ref(float f)
{
    uint32_t u = f_bits(f), sign = (u >> 16) & 0x8000;
    if (isnan(f))
        return 0;   /* not used: NaN checked separately */
    double a = fabs((double)f);
    uint32_t lo = (u & 0x7fffffff) >> 16;      /* truncation: val(lo) <= a */
    if (lo >= 0x7f80)
        return (uint16_t)(sign | 0x7f80);
    double dl = a - bf16_mag_value(lo), dh = bf16_mag_value(lo + 1) - a;
    uint32_t r = dl < dh ? lo : dh < dl ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    return (uint16_t)(sign | r);
}

static void test_bf16(void)
{
    int bad_widen = 0, bad_trip = 0, bad_nan = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ouro_bf16_to_f32((uint16_t)h);
        bad_widen += f_bits(f) != h << 16;
        uint16_t back = ouro_f32_to_bf16(f);
        if (isnan(f))
            bad_nan += (back & 0x7f80) != 0x7f80 || (back & 0x7f) == 0 || (back & 0x8000) != (h & 0x8000);
        else
            bad_trip += back != h;
    }
    check(bad_widen == 0, "bf16 -> f32: all 65536 values are the high half of the f32");
    check(bad_trip == 0, "bf16 round trip: every non-NaN bf16 comes back unchanged (%d off)",
          bad_trip);
    check(bad_nan == 0, "bf16 round trip: every NaN stays a NaN with its sign (%d off)", bad_nan);

    check(ouro_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "bf16: tie 1 + 2^-8 rounds down to even 1.0");
    check(ouro_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82,
          "bf16: tie 1 + 3*2^-8 rounds up to even 1 + 2^-6");
    check(ouro_f32_to_bf16(nextafterf(1.0f + 0x1p-8f, 2.0f)) == 0x3f81,
          "bf16: just above a tie rounds up");
    check(ouro_f32_to_bf16(-(1.0f + 0x1p-8f)) == 0xbf80, "bf16: negative ties to even as well");
    check(ouro_f32_to_bf16(INFINITY) == 0x7f80 && ouro_f32_to_bf16(-INFINITY) == 0xff80,
          "bf16: +-inf");
    check(ouro_f32_to_bf16(3.4028235e38f) == 0x7f80, "bf16: FLT_MAX rounds to inf (nearest even)");
    check(ouro_f32_to_bf16(bits_f(0x7f7f7fff)) == 0x7f7f, "bf16: just below the overflow tie stays finite");
    check(ouro_f32_to_bf16(-0.0f) == 0x8000 && ouro_f32_to_bf16(0.0f) == 0, "bf16: signed zeros");
    check(ouro_f32_to_bf16(bits_f(0x00008000)) == 0x0000 && ouro_f32_to_bf16(bits_f(0x00018000)) == 0x0002
          && ouro_f32_to_bf16(bits_f(0x00008001)) == 0x0001,
          "bf16: f32 subnormals round to nearest even");
    uint16_t qn = ouro_f32_to_bf16(bits_f(0x7f800001));   /* NaN whose payload is in the low half */
    check((qn & 0x7f80) == 0x7f80 && (qn & 0x7f) != 0, "bf16: a NaN with a low payload stays NaN (0x%04x)",
          qn);

    /* sampled f32 values and near-tie values against the value-based reference */
    int bad = 0;
    uint32_t first_bad = 0;
    for (uint64_t i = 0; i < 400000; i++) {
        uint32_t u = (uint32_t)rng_next();
        if (i % 4 == 1)
            u = (u & 0xffff0000u) | 0x8000u;            /* exact tie */
        else if (i % 4 == 2)
            u = (u & 0xffff0000u) | (0x7fffu + (uint32_t)(rng_next() % 3));
        float f = bits_f(u);
        if (isnan(f))
            continue;
        if (ouro_f32_to_bf16(f) != bf16_ref(f) && bad++ == 0)
            first_bad = u;
    }
    check(bad == 0, "bf16: 400000 sampled and near-tie f32 values round to nearest even (%d off, "
          "first 0x%08x)", bad, first_bad);
}

/* ------------------------------------------------------------------------
 * IEEE half
 * ------------------------------------------------------------------------ */

/* Value of an f16 bit pattern, from the definition. */
static double f16_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static double f16_pos[0x7c01];   /* values of 0x0000..0x7c00, 0x7c00 counting as 2^16 */

/* f32 -> f16, round to nearest even, from values (binary search). */
static uint16_t f16_ref(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65536.0)
        return sign | 0x7c00;
    int lo = 0, hi = 0x7c00;   /* largest k with f16_pos[k] <= a */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (f16_pos[mid] <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (f16_pos[lo] == a || lo == 0x7c00)
        return sign | (uint16_t)lo;
    double dl = a - f16_pos[lo], dh = f16_pos[lo + 1] - a;
    int r = dl < dh ? lo : dh < dl ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    return sign | (uint16_t)r;
}

static void test_f16(void)
{
    for (int k = 0; k < 0x7c00; k++)
        f16_pos[k] = f16_value((uint16_t)k);
    f16_pos[0x7c00] = 65536.0;

    int bad_widen = 0, bad_trip = 0, bad_nan = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = ouro_f16_to_f32((uint16_t)h);
        double v = f16_value((uint16_t)h);
        if (isnan(v))
            bad_widen += !isnan(f) || (signbit(f) != 0) != ((h & 0x8000) != 0);
        else
            bad_widen += (double)f != v || (signbit(f) != 0) != ((h & 0x8000) != 0);
        uint16_t back = ouro_f32_to_f16(f);
        if (isnan(f))
            bad_nan += (back & 0x7c00) != 0x7c00 || (back & 0x3ff) == 0 || (back & 0x8000) != (h & 0x8000);
        else
            bad_trip += back != h;
    }
    check(bad_widen == 0, "f16 -> f32: all 65536 values exact, subnormals, inf and NaN included "
          "(%d off)", bad_widen);
    check(bad_trip == 0, "f16 round trip: every non-NaN f16 comes back unchanged (%d off)", bad_trip);
    check(bad_nan == 0, "f16 round trip: every NaN stays a NaN with its sign (%d off)", bad_nan);

    check(ouro_f32_to_f16(65504.0f) == 0x7bff, "f16: 65504 is the largest finite");
    check(ouro_f32_to_f16(nextafterf(65520.0f, 0.0f)) == 0x7bff, "f16: just below 65520 stays finite");
    check(ouro_f32_to_f16(65520.0f) == 0x7c00 && ouro_f32_to_f16(-65520.0f) == 0xfc00,
          "f16: 65520 (the tie above 65504) rounds to inf");
    check(ouro_f32_to_f16(1e10f) == 0x7c00, "f16: overflow gives inf");
    check(ouro_f32_to_f16(INFINITY) == 0x7c00 && ouro_f32_to_f16(-INFINITY) == 0xfc00, "f16: +-inf");
    uint16_t n = ouro_f32_to_f16(NAN);
    check((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0, "f16: NaN stays NaN (0x%04x)", n);
    check(ouro_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00, "f16: tie 1 + 2^-11 rounds down to even");
    check(ouro_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "f16: tie 1 + 3*2^-11 rounds up to even");
    check(ouro_f32_to_f16(0x1p-14f) == 0x0400, "f16: 2^-14 is the smallest normal");
    check(ouro_f32_to_f16(0x1p-24f) == 0x0001, "f16: 2^-24 is the smallest subnormal");
    check(ouro_f32_to_f16(0x1p-25f) == 0x0000, "f16: 2^-25 (tie) rounds to even zero");
    check(ouro_f32_to_f16(nextafterf(0x1p-25f, 1.0f)) == 0x0001, "f16: just above 2^-25 rounds up");
    check(ouro_f32_to_f16(3 * 0x1p-25f) == 0x0002, "f16: 3*2^-25 (tie) rounds to even 2*2^-24");
    check(ouro_f32_to_f16(1023.5f * 0x1p-24f) == 0x0400,
          "f16: the tie above the largest subnormal rounds up to the smallest normal");
    check(ouro_f32_to_f16(-0.0f) == 0x8000, "f16: -0");
    check(ouro_f32_to_f16(1e-30f) == 0x0000 && ouro_f32_to_f16(-1e-30f) == 0x8000,
          "f16: underflow keeps the sign");

    int bad = 0;
    uint32_t first_bad = 0;
    for (uint64_t i = 0; i < 400000; i++) {
        uint32_t u = (uint32_t)rng_next();
        if (i % 2)   /* exponents near the f16 range, where rounding happens */
            u = (u & 0x807fffffu) | ((uint32_t)(100 + rng_next() % 60) << 23);
        if (i % 8 == 3)
            u = (u & 0xffffe000u) | 0x1000u;   /* exact tie of a normal f16 */
        float f = bits_f(u);
        if (isnan(f))
            continue;
        if (ouro_f32_to_f16(f) != f16_ref(f) && bad++ == 0)
            first_bad = u;
    }
    check(bad == 0, "f16: 400000 sampled and tie f32 values round to nearest even (%d off, "
          "first 0x%08x)", bad, first_bad);
}

/* ------------------------------------------------------------------------
 * RMSNorm, softmax, log-sum-exp
 * ------------------------------------------------------------------------ */

/* Stores f (n) in dtype dt; returns a malloc'd buffer and the values it holds in dec. */
static void *encode(const float *f, int n, ouro_dtype dt, float *dec)
{
    void *buf = malloc((size_t)n * ouro_dtype_size(dt) + 1);
    for (int i = 0; i < n; i++) {
        if (dt == OURO_F32) {
            ((float *)buf)[i] = f[i];
            dec[i] = f[i];
        } else if (dt == OURO_F16) {
            uint16_t h = ouro_f32_to_f16(f[i]);
            ((uint16_t *)buf)[i] = h;
            dec[i] = (float)f16_value(h);
        } else {
            uint16_t h = ouro_f32_to_bf16(f[i]);
            ((uint16_t *)buf)[i] = h;
            dec[i] = bits_f((uint32_t)h << 16);
        }
    }
    return buf;
}

static const ouro_dtype dtypes[3] = { OURO_F32, OURO_F16, OURO_BF16 };

/* The RMSNorm every SIMD level must give bit for bit: x^2 summed in eight
 * double lanes (lane i % 8) added in a fixed tree, the tail after, then
 * w * (x * r) in f32 (wd holds the weights decoded to f32). */
static void rmsnorm_spec(float *out, const float *x, const float *wd, int d, float eps)
{
    double a[8] = { 0 };
    int i = 0;
    for (; i + 8 <= d; i += 8)
        for (int u = 0; u < 8; u++)
            a[u] += (double)x[i + u] * x[i + u];
    double ss = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; i < d; i++)
        ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / d) + eps);
    for (i = 0; i < d; i++)
        out[i] = wd[i] * (x[i] * r);
}

static void test_rmsnorm(void)
{
    static const int sizes[] = { 1, 2, 7, 15, 16, 17, 64, 257, 2047, 2048 };
    for (int k = 0; k < 3; k++) {
        ouro_dtype dt = dtypes[k];
        double worst = 0;
        int alias_bad = 0, spec_bad = 0;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int d = sizes[si];
            float *x = malloc((size_t)d * sizeof *x), *w = malloc((size_t)d * sizeof *w);
            float *wd = malloc((size_t)d * sizeof *wd), *out = malloc((size_t)d * sizeof *out);
            float scale = si % 2 ? 30.0f : 0.01f;
            for (int i = 0; i < d; i++) {
                x[i] = rng_float(-scale, scale);
                w[i] = rng_float(0.5f, 1.5f);
            }
            void *wb = encode(w, d, dt, wd);
            float eps = 1e-6f;
            ouro_rmsnorm(out, x, wb, dt, d, eps);
            float *spec = malloc((size_t)d * sizeof *spec);
            rmsnorm_spec(spec, x, wd, d, eps);
            spec_bad += memcmp(spec, out, (size_t)d * sizeof *out) != 0;
            free(spec);
            double ss = 0;
            for (int i = 0; i < d; i++)
                ss += (double)x[i] * x[i];
            double r = 1.0 / sqrt(ss / d + eps);
            for (int i = 0; i < d; i++) {
                double ref = wd[i] * x[i] * r;
                worst = fmax(worst, fabs(out[i] - ref) / fmax(fabs(ref), 1e-30));
            }
            ouro_rmsnorm(x, x, wb, dt, d, eps);   /* in place */
            alias_bad += memcmp(x, out, (size_t)d * sizeof *x) != 0;
            free(x); free(w); free(wd); free(out); free(wb);
        }
        check(worst < 1e-6, "rmsnorm %s: within 1e-6 relative of double, sizes 1..2048 (%.1e)",
              ouro_dtype_name(dt), worst);
        check(alias_bad == 0, "rmsnorm %s: out may alias x", ouro_dtype_name(dt));
        check(spec_bad == 0, "rmsnorm %s (%s): the bits of the 8-lane double sum (%d of %d sizes differ)",
              ouro_dtype_name(dt), ouro_simd_level(), spec_bad, (int)(sizeof sizes / sizeof sizes[0]));
    }
    float z[5] = { 0 }, w1[5] = { 1, 1, 1, 1, 1 }, o[5];
    ouro_rmsnorm(o, z, w1, OURO_F32, 5, 1e-6f);
    check(o[0] == 0 && o[4] == 0, "rmsnorm: a zero vector gives zeros (eps keeps it finite)");
}

static void test_add(void)
{
    int bad = 0;
    for (int n = 0; n <= 40; n++) {
        float x[40] = { 0 }, y[40] = { 0 }, ref[40] = { 0 };
        for (int i = 0; i < n; i++) {
            x[i] = rng_float(-3, 3);
            y[i] = rng_float(-3, 3);
            ref[i] = x[i] + y[i];
        }
        ouro_add(x, y, n);
        bad += n && memcmp(x, ref, (size_t)n * sizeof *x) != 0;
    }
    check(bad == 0, "add (%s): x += y element by element, n = 0..40", ouro_simd_level());
}

/* expf on 16 lanes (AVX-512: the C library's algorithm on doubles) gives the
 * bits of expf: a spread over every exponent, the edges of each branch, and
 * SiLU and softmax built on it give the bits of their scalar formulas.
 * (test/bench/expf_check.c checks all 2^32 inputs once.) */

/* The softmax every level must give bit for bit: the maximum, expf of each
 * entry less it, the sum in double in order, one multiply by its inverse. */
static void softmax_ref(float *ref, const float *x, int n)
{
    float m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m)
            m = x[i];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        ref[i] = expf(x[i] - m);
        sum += ref[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        ref[i] *= inv;
}
static void test_expf(void)
{
    int bad = 0, cases = 0;
    float x[16], y[16];
    uint32_t u = 0x9e3779b9u;
    for (int rep = 0; rep < 65536; rep++) {   /* 1M bit patterns from an LCG */
        for (int i = 0; i < 16; i++) {
            u = u * 1664525u + 1013904223u;
            memcpy(&x[i], &u, 4);
        }
        ouro_expf16(y, x);
        for (int i = 0; i < 16; i++, cases++) {
            float r = expf(x[i]);
            bad += isnan(r) ? !isnan(y[i]) : memcmp(&r, &y[i], 4) != 0;
        }
    }
    static const float edges[] = {
        0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-45f, -1e-45f, 1e-30f, 1.0f, -1.0f,
        87.99f, 88.0f, -88.0f, 88.7228f, 88.72284f, 88.7229f, 89.0f, -87.3f, -87.34f,
        -103.0f, -103.28f, -103.3f, -103.97f, -104.0f, -150.0f, 0x1.62e42ep6f, -0x1.9fe368p6f,
        -0x1.9d1d9ep6f, 0x1.62e430p6f, -0x1.9fe36ap6f, 3.4e38f, -3.4e38f, 0.5f, -0.5f,
    };
    int ne = (int)(sizeof edges / sizeof edges[0]);
    for (int e0 = 0; e0 < ne; e0 += 16) {
        for (int i = 0; i < 16; i++)
            x[i] = edges[(e0 + i) % ne];
        ouro_expf16(y, x);
        for (int i = 0; i < 16; i++, cases++) {
            float r = expf(x[i]);
            bad += isnan(r) ? !isnan(y[i]) : memcmp(&r, &y[i], 4) != 0;
        }
    }
    check(bad == 0, "expf x16 (%s): the bits of expf (%d of %d inputs differ)", ouro_simd_level(),
          bad, cases);
    enum { N = 1000 };
    float h[N], g[N], up[N], ref[N];
    for (int i = 0; i < N; i++) {
        g[i] = h[i] = i < 8 ? edges[i] : rng_float(-100, 100) / (1 + i % 7);
        up[i] = rng_float(-3, 3);
        ref[i] = g[i] / (1.0f + expf(-g[i])) * up[i];
    }
    ouro_silu_mul(h, up, N);
    int silu_bad = 0;
    for (int i = 0; i < N; i++)
        silu_bad += isnan(ref[i]) ? !isnan(h[i]) : memcmp(&ref[i], &h[i], 4) != 0;
    check(silu_bad == 0, "silu (%s): g / (1 + expf(-g)) * u bit for bit (%d of %d differ)",
          ouro_simd_level(), silu_bad, N);
    float sm[N], sref[N];
    for (int i = 0; i < N; i++)
        sm[i] = rng_float(-120, 30);
    softmax_ref(sref, sm, N);
    ouro_softmax(sm, N);
    check(memcmp(sm, sref, sizeof sm) == 0, "softmax (%s): expf of x - max, a double sum in order, "
          "one f32 scale: bit for bit", ouro_simd_level());
}

/* ouro_softmax gives the bits of the plain loop (the maximum, expf of each
 * entry less it, the sum in double in order, one multiply by its inverse)
 * for every count 1..70, whatever the level does for the last partial
 * vector. */
static void test_softmax_bits(void)
{
    enum { N = 70 };
    int same = 1;
    for (int n = 1; n <= N; n++)
        for (int rep = 0; rep < 3; rep++) {
            float x[N], ref[N];
            float spread = rep == 0 ? 1.0f : rep == 1 ? 20.0f : 300.0f;
            for (int i = 0; i < n; i++)
                x[i] = rng_float(-spread, spread);
            softmax_ref(ref, x, n);
            ouro_softmax(x, n);
            same &= memcmp(x, ref, (size_t)n * sizeof(float)) == 0;
        }
    check(same, "softmax (%s): the bits of the plain loop with expf, n = 1..%d", ouro_simd_level(), N);
}

static void test_softmax(void)
{
    static const int sizes[] = { 1, 2, 5, 100, 49152 };
    double worst = 0, worst_sum = 0, worst_lse = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (int rep = 0; rep < 3; rep++) {
            int n = sizes[si];
            float *x = malloc((size_t)n * sizeof *x);
            float spread = rep == 0 ? 1.0f : rep == 1 ? 20.0f : 300.0f;
            float shift = rep == 2 ? 1000.0f : 0.0f;
            for (int i = 0; i < n; i++)
                x[i] = shift + rng_float(-spread, spread);
            double m = x[0];
            for (int i = 1; i < n; i++)
                m = fmax(m, x[i]);
            double s = 0;
            for (int i = 0; i < n; i++)
                s += exp(x[i] - m);
            double lse = m + log(s);
            worst_lse = fmax(worst_lse, fabs(ouro_logsumexp(x, n) - lse) / fmax(1.0, fabs(lse)));
            double *ref = malloc((size_t)n * sizeof *ref);
            for (int i = 0; i < n; i++)
                ref[i] = exp(x[i] - m) / s;
            ouro_softmax(x, n);
            double sum = 0;
            for (int i = 0; i < n; i++) {
                sum += x[i];
                /* relative error where the value is representable, absolute below */
                worst = fmax(worst, fabs(x[i] - ref[i]) / fmax(ref[i], 1e-30) * (ref[i] > 1e-30)
                                    + fabs(x[i] - ref[i]) * (ref[i] <= 1e-30));
            }
            worst_sum = fmax(worst_sum, fabs(sum - 1.0));
            free(x);
            free(ref);
        }
    }
    check(worst < 2e-5, "softmax: within 2e-5 relative of double, n up to 49152, shifts of 1000 "
          "(%.1e)", worst);
    check(worst_sum < 1e-5, "softmax: sums to 1 (%.1e)", worst_sum);
    check(worst_lse < 1e-6, "logsumexp: within 1e-6 of double (%.1e)", worst_lse);

    float one[1] = { 123.0f };
    ouro_softmax(one, 1);
    check(one[0] == 1.0f, "softmax: one element is 1");
    float big[3] = { 1e30f, -1e30f, 1e30f };
    ouro_softmax(big, 3);
    check(big[0] == 0.5f && big[1] == 0.0f && big[2] == 0.5f, "softmax: no overflow at +-1e30");
    float ninf[3] = { -INFINITY, 0.0f, -INFINITY };
    ouro_softmax(ninf, 3);
    check(ninf[0] == 0.0f && ninf[1] == 1.0f && ninf[2] == 0.0f, "softmax: -inf entries (masks) give 0");
}

/* ------------------------------------------------------------------------
 * RoPE
 * ------------------------------------------------------------------------ */

static void test_rope(void)
{
    static const int dims[] = { 2, 16, 64, 128 };
    static const double thetas[] = { 10000.0, 1000000.0 };
    double worst_freq = 0, worst = 0, worst_norm = 0;
    int ident_bad = 0, split_bad = 0;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        for (size_t ti = 0; ti < 2; ti++) {
            int hd = dims[di], half = hd / 2, nh = 3;
            float *inv = malloc((size_t)half * sizeof *inv);
            ouro_rope_inv_freq(inv, hd, thetas[ti]);
            for (int i = 0; i < half; i++) {
                double ref = 1.0 / pow(thetas[ti], (double)(2 * i) / hd);
                worst_freq = fmax(worst_freq, fabs(inv[i] - ref) / ref);
            }
            static const int positions[] = { 0, 1, 2, 17, 1000, 4095, 32767, 65535 };
            float *v = malloc((size_t)nh * hd * sizeof *v), *v0 = malloc((size_t)nh * hd * sizeof *v0);
            for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
                int pos = positions[pi];
                for (int i = 0; i < nh * hd; i++)
                    v[i] = v0[i] = rng_float(-2.0f, 2.0f);
                /* the first head as q, the others as k: the same as each alone */
                float *w = malloc((size_t)nh * hd * sizeof *w);
                memcpy(w, v, (size_t)nh * hd * sizeof *w);
                ouro_rope(w, 1, NULL, 0, hd, inv, pos);
                ouro_rope(w + hd, nh - 1, NULL, 0, hd, inv, pos);
                ouro_rope(v, 1, v + hd, nh - 1, hd, inv, pos);
                split_bad += memcmp(v, w, (size_t)nh * hd * sizeof *v) != 0;
                free(w);
                if (pos == 0)
                    ident_bad += memcmp(v, v0, (size_t)nh * hd * sizeof *v) != 0;
                for (int h = 0; h < nh; h++) {
                    const float *a = v0 + h * hd, *b = v + h * hd;
                    for (int i = 0; i < half; i++) {
                        /* the angle as the reference forms it: f32 inv_freq * f32 position */
                        double ang = (double)(float)(inv[i] * (float)pos);
                        double c = cos(ang), s = sin(ang);
                        double r1 = a[i] * c - a[i + half] * s;
                        double r2 = a[i + half] * c + a[i] * s;
                        worst = fmax(worst, fmax(fabs(b[i] - r1), fabs(b[i + half] - r2)));
                        double n0 = (double)a[i] * a[i] + (double)a[i + half] * a[i + half];
                        double n1 = (double)b[i] * b[i] + (double)b[i + half] * b[i + half];
                        worst_norm = fmax(worst_norm, fabs(n1 - n0) / fmax(n0, 1e-12));
                    }
                }
            }
            free(v);
            free(v0);
            free(inv);
        }
    }
    check(worst_freq < 1e-6, "rope: inv_freq within 1e-6 relative of 1/theta^(2i/d) (%.1e)",
          worst_freq);
    check(worst < 2e-6, "rope: rotate-half rotation within 2e-6 of double, positions up to 65535, "
          "head_dim 2..128 (%.1e)", worst);
    check(worst_norm < 1e-5, "rope: each rotated pair keeps its length (%.1e)", worst_norm);
    check(ident_bad == 0, "rope: position 0 leaves the vector unchanged");
    check(split_bad == 0, "rope: q and k heads in one call give the bits of a call each");
}

/* ------------------------------------------------------------------------
 * Matrix products
 * ------------------------------------------------------------------------ */

static void test_matmul(void)
{
    check_note("SIMD path on this processor: %s", ouro_simd_level());
    /* 3001: more than one d_in block of the blocked kernel from n = 2 up */
    static const int d_ins[] = { 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 100, 257, 1029,
                                 3001 };
    static const int d_outs[] = { 1, 3, 17, 130 };
    for (int k = 0; k < 3; k++) {
        ouro_dtype dt = dtypes[k];
        for (size_t ii = 0; ii < sizeof d_ins / sizeof d_ins[0]; ii++) {
            int d_in = d_ins[ii];
            double worst = 0, worst_dot = 0;   /* error / (bound) */
            int thread_diff = 0, row_diff = 0, runs = 0;
            for (size_t oi = 0; oi < sizeof d_outs / sizeof d_outs[0]; oi++) {
                int d_out = d_outs[oi];
                size_t nw = (size_t)d_out * d_in;
                float *wf = malloc(nw * sizeof *wf), *wd = malloc(nw * sizeof *wd);
                for (size_t i = 0; i < nw; i++)
                    wf[i] = rng_float(-1.0f, 1.0f);
                /* the weights one element past an aligned start, to test unaligned loads */
                void *w0 = encode(wf, (int)nw, dt, wd);
                size_t es = ouro_dtype_size(dt);
                char *wbuf = malloc(nw * es + es);
                memcpy(wbuf + es, w0, nw * es);
                const void *w = wbuf + es;
                float *xbuf = malloc((size_t)9 * d_in * sizeof(float) + sizeof(float));
                float *x = xbuf + 1;
                for (int i = 0; i < 9 * d_in; i++)
                    x[i] = rng_float(-1.0f, 1.0f);
                float *row = malloc((size_t)d_in * sizeof *row);
                for (int o = 0; o < d_out; o++) {
                    ouro_row_to_f32(row, w, dt, (size_t)o, d_in);
                    row_diff += memcmp(row, wd + (size_t)o * d_in, (size_t)d_in * sizeof *row) != 0;
                }
                for (int n = 1; n <= 9; n++) {
                    float *y1 = malloc((size_t)n * d_out * sizeof *y1);
                    float *y2 = malloc((size_t)n * d_out * sizeof *y2);
                    ouro_matmul(y1, x, w, dt, n, d_in, d_out, 1);
                    ouro_matmul(y2, x, w, dt, n, d_in, d_out, 2);
                    runs += 2;
                    thread_diff += memcmp(y1, y2, (size_t)n * d_out * sizeof *y1) != 0;
                    for (int i = 0; i < n; i++)
                        for (int o = 0; o < d_out; o++) {
                            double ref = 0, mag = 0;
                            for (int j = 0; j < d_in; j++) {
                                double p = (double)wd[(size_t)o * d_in + j] * x[(size_t)i * d_in + j];
                                ref += p;
                                mag += fabs(p);
                            }
                            /* worst case of any f32 summation order: (d_in + 1) u sum|w x| */
                            double bound = (d_in + 1) * 0x1p-24 * mag + 1e-30;
                            worst = fmax(worst, fabs(y1[(size_t)i * d_out + o] - ref) / bound);
                            if (n == 9) {
                                float dr = ouro_dot_row(w, dt, (size_t)o, x + (size_t)i * d_in, d_in);
                                worst_dot = fmax(worst_dot, fabs(dr - ref) / bound);
                            }
                        }
                    free(y1);
                    free(y2);
                }
                free(wf); free(wd); free(w0); free(wbuf); free(xbuf); free(row);
            }
            check(worst <= 1.0 && worst_dot <= 1.0,
                  "matmul %s d_in %d: n 1..9, d_out 1..130, 1 and 2 threads, and dot_row: within "
                  "the f32 summation bound (d_in + 1) 2^-24 sum|w x| of double (%.3f, %.3f of it; "
                  "%d runs)", ouro_dtype_name(dt), d_in, worst, worst_dot, runs);
            check(thread_diff == 0, "matmul %s d_in %d: 1 and 2 threads give the same bits",
                  ouro_dtype_name(dt), d_in);
            check(row_diff == 0, "row_to_f32 %s d_in %d: rows decode exactly", ouro_dtype_name(dt),
                  d_in);
        }
    }
}

/* With small integers every product and partial sum is exact in f32, so any
 * summation order gives the exact result: a dropped, repeated or misplaced
 * element (tails, blocks, thread ranges, packing) shows as a wrong value. */
static void test_matmul_exact(void)
{
    static const int d_ins[] = { 1, 5, 16, 31, 32, 33, 47, 64, 95, 100, 513, 2049, 3001, 4100 };
    static const int d_outs[] = { 1, 2, 4, 5, 16, 19, 67, 130 };
    for (int k = 0; k < 3; k++) {
        ouro_dtype dt = dtypes[k];
        int wrong = 0, runs = 0;
        char first[128] = "";
        for (size_t ii = 0; ii < sizeof d_ins / sizeof d_ins[0]; ii++) {
            for (size_t oi = 0; oi < sizeof d_outs / sizeof d_outs[0]; oi++) {
                int d_in = d_ins[ii], d_out = d_outs[oi];
                size_t nw = (size_t)d_out * d_in;
                float *wf = malloc(nw * sizeof *wf), *wd = malloc(nw * sizeof *wd);
                for (size_t i = 0; i < nw; i++)
                    wf[i] = (float)((int)(rng_next() % 9) - 4);
                void *w = encode(wf, (int)nw, dt, wd);
                float *x = malloc((size_t)9 * d_in * sizeof *x);
                for (int i = 0; i < 9 * d_in; i++)
                    x[i] = (float)((int)(rng_next() % 17) - 8);
                float *y = malloc((size_t)9 * d_out * sizeof *y);
                double *refs = malloc((size_t)9 * d_out * sizeof *refs);
                for (int i = 0; i < 9; i++)
                    for (int o = 0; o < d_out; o++) {
                        double r = 0;
                        for (int j = 0; j < d_in; j++)
                            r += (double)wd[(size_t)o * d_in + j] * x[(size_t)i * d_in + j];
                        refs[(size_t)i * d_out + o] = r;
                    }
                for (int n = 1; n <= 9; n++)
                    for (int th = 1; th <= 2; th++) {
                        ouro_matmul(y, x, w, dt, n, d_in, d_out, th);
                        runs++;
                        for (int i = 0; i < n; i++)
                            for (int o = 0; o < d_out; o++) {
                                double ref = refs[(size_t)i * d_out + o];
                                if (y[(size_t)i * d_out + o] != ref && wrong++ == 0)
                                    snprintf(first, sizeof first, "n %d d_in %d d_out %d threads %d "
                                             "y[%d][%d] = %g, want %g", n, d_in, d_out, th, i, o,
                                             y[(size_t)i * d_out + o], ref);
                            }
                    }
                free(wf); free(wd); free(w); free(x); free(y); free(refs);
            }
        }
        check(wrong == 0, "matmul %s, integer data: exact for d_in 1..4100, d_out 1..130, n 1..9, "
              "1 and 2 threads (%d runs, %d wrong)", ouro_dtype_name(dt), runs, wrong);
        if (wrong)
            check_note("first wrong: %s", first);
    }
}

/* ------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

/* Attention kernels over f32 and f16 cache rows against plain loops. */
static void test_kv_kernels(void)
{
    for (int f16 = 0; f16 < 2; f16++) {
        ouro_kv_kernels k = ouro_kv_kernels_for(f16);
        double worst_dot = 0, worst_axpy = 0;
        int stored_ok = 1;
        for (int n = 1; n <= 300; n += (n < 40 ? 1 : 37)) {
            float q[300], src[300], o[300], ref[300];
            uint16_t h[300];
            float f[300];
            for (int j = 0; j < n; j++) {
                q[j] = (float)((j * 37 % 23) - 11) / 7.0f;
                src[j] = (float)((j * 53 % 29) - 14) / 5.0f;
                o[j] = ref[j] = (float)(j % 5) - 2.0f;
            }
            void *row = f16 ? (void *)h : (void *)f;
            ouro_kv_store(row, f16, src, 0.5f, n);
            double d = 0, scale = 0;
            for (int j = 0; j < n; j++) {
                float v = f16 ? ouro_f16_to_f32(h[j]) : f[j];
                float want = f16 ? ouro_f16_to_f32(ouro_f32_to_f16(src[j] * 0.5f)) : src[j] * 0.5f;
                stored_ok &= v == want;
                d += (double)q[j] * v;
                scale += fabs((double)q[j] * v);
                ref[j] += 0.75f * v;
            }
            worst_dot = fmax(worst_dot, fabs(k.dot(q, row, n) - d) / (scale + 1e-30));
            k.axpy(o, 0.75f, row, n);
            for (int j = 0; j < n; j++)
                worst_axpy = fmax(worst_axpy, fabs((double)o[j] - ref[j]));
        }
        check(stored_ok, "kv store (%s): entries are the rounded scaled values", f16 ? "f16" : "f32");
        check(worst_dot < 1e-6, "kv dot (%s, %s): within f32 rounding of the exact sum (%.1e)",
              f16 ? "f16" : "f32", ouro_simd_level(), worst_dot);
        check(worst_axpy < 1e-5, "kv axpy (%s, %s): equals the plain loop (%.1e)",
              f16 ? "f16" : "f32", ouro_simd_level(), worst_axpy);
    }
}

/* Fills np positions of kvh heads of head_dim hd of a K and a V cache (f32
 * or f16 entries, positions kvh * hd entries apart) with spread values. */
static void fill_cache(unsigned char *kc, unsigned char *vc, int np, int kvh, int hd, int f16)
{
    size_t el = f16 ? 2 : 4, stride = (size_t)kvh * hd * el;
    float src[512];
    for (int p = 0; p < np; p++)
        for (int kh = 0; kh < kvh; kh++) {
            for (int j = 0; j < hd; j++)
                src[j] = (float)(((p * 131 + kh * 17 + j * 29) % 61) - 30) / 9.0f;
            ouro_kv_store(kc + p * stride + (size_t)kh * hd * el, f16, src, 1.0f, hd);
            for (int j = 0; j < hd; j++)
                src[j] = (float)(((p * 71 + kh * 13 + j * 43) % 53) - 26) / 7.0f;
            ouro_kv_store(vc + p * stride + (size_t)kh * hd * el, f16, src, 1.0f, hd);
        }
}

/* The fused attention of one head gives the bits of the level's dot, softmax
 * and axpy in position order, for head sizes on and off the fused path. */
static void test_kv_attend(void)
{
    static const int hds[] = { 16, 48, 64, 128, 200, 256 };
    enum { MAXP = 37, MAXH = 256, KVH = 3 };
    for (int f16 = 0; f16 < 2; f16++) {
        ouro_kv_kernels k = ouro_kv_kernels_for(f16);
        size_t el = f16 ? 2 : 4;
        int same = 1, cases = 0, same2 = 1, cases2 = 0;
        static unsigned char kc[MAXP * KVH * MAXH * 4], vc[MAXP * KVH * MAXH * 4];
        float q[MAXH], o[MAXH], ref[MAXH], sc[MAXP], sr[MAXP];
        for (size_t h = 0; h < sizeof hds / sizeof hds[0]; h++) {
            int hd = hds[h];
            size_t stride = (size_t)KVH * hd * el;
            fill_cache(kc, vc, MAXP, KVH, hd, f16);
            for (int j = 0; j < hd; j++)
                q[j] = (float)(((j * 37) % 23) - 11) / 13.0f;
            float scale = 1.0f / sqrtf((float)hd);
            for (int npos = 1; npos <= MAXP; npos += 3) {
                const unsigned char *kb = kc + (size_t)hd * el, *vb = vc + (size_t)hd * el;  /* head 1 */
                for (int p = 0; p < npos; p++)
                    sr[p] = k.dot(q, kb + p * stride, hd) * scale;
                ouro_softmax(sr, npos);
                memset(ref, 0, sizeof ref);
                for (int p = 0; p < npos; p++)
                    k.axpy(ref, sr[p], vb + p * stride, hd);
                k.attend(o, q, kb, vb, stride, npos, scale, sc, hd);
                same &= memcmp(o, ref, (size_t)hd * sizeof(float)) == 0
                        && memcmp(sc, sr, (size_t)npos * sizeof(float)) == 0;
                cases++;
                /* two queries at once: q over na <= npos positions, q2 over npos */
                for (int na = npos > 2 ? npos - 2 : 1; na <= npos; na++) {
                    float q2[MAXH], o2[MAXH], oa[MAXH], ob[MAXH], s2[MAXP], sa[MAXP], sb[MAXP];
                    for (int j = 0; j < hd; j++)
                        q2[j] = (float)(((j * 19) % 31) - 15) / 11.0f;
                    k.attend(o, q, kb, vb, stride, na, scale, sc, hd);
                    k.attend(o2, q2, kb, vb, stride, npos, scale, s2, hd);
                    k.attend2(oa, ob, q, q2, kb, vb, stride, na, npos, scale, sa, sb, hd);
                    same2 &= memcmp(oa, o, (size_t)hd * sizeof(float)) == 0
                             && memcmp(ob, o2, (size_t)hd * sizeof(float)) == 0
                             && memcmp(sa, sc, (size_t)na * sizeof(float)) == 0
                             && memcmp(sb, s2, (size_t)npos * sizeof(float)) == 0;
                    cases2++;
                }
            }
        }
        check(same, "kv attend (%s, %s): the bits of dot, softmax and axpy (%d cases)",
              f16 ? "f16" : "f32", ouro_simd_level(), cases);
        check(same2, "kv attend2 (%s, %s): each query gets the bits of attend alone (%d cases)",
              f16 ? "f16" : "f32", ouro_simd_level(), cases2);
    }
}

/* Four queries at once give each the bits of the level's dot, softmax and
 * axpy alone (the reference loop), for head sizes on the fused path (64, 128)
 * and off it (80), every count of positions 1..70 for the last query, and
 * the others at the counts of a prompt's neighbours, equal, or far apart. */
static void test_kv_attend4(void)
{
    static const int hds[] = { 64, 128, 80 };
    enum { MAXP = 70, MAXH = 128, KVH = 2 };
    for (int f16 = 0; f16 < 2; f16++) {
        ouro_kv_kernels k = ouro_kv_kernels_for(f16);
        size_t el = f16 ? 2 : 4;
        int same = 1, cases = 0;
        char first[160] = "";
        static unsigned char kc[MAXP * KVH * MAXH * 4], vc[MAXP * KVH * MAXH * 4];
        static float qs[4][MAXH], os[4][MAXH], ref[MAXH], scs[4][MAXP], sr[MAXP];
        for (size_t h = 0; h < sizeof hds / sizeof hds[0]; h++) {
            int hd = hds[h];
            size_t stride = (size_t)KVH * hd * el;
            fill_cache(kc, vc, MAXP, KVH, hd, f16);
            for (int r = 0; r < 4; r++)
                for (int j = 0; j < hd; j++)
                    qs[r][j] = (float)(((j * (37 + 6 * r) + 5 * r) % 23) - 11) / (13.0f - r);
            float scale = 1.0f / sqrtf((float)hd);
            const unsigned char *kb = kc + (size_t)hd * el, *vb = vc + (size_t)hd * el;  /* head 1 */
            for (int n3 = 1; n3 <= MAXP; n3++)
                for (int shape = 0; shape < 4; shape++) {
                    int n[4];
                    for (int r = 0; r < 4; r++) {
                        int d = 3 - r;
                        n[r] = shape == 0 ? n3 - d                       /* neighbours */
                             : shape == 1 ? n3                           /* equal */
                             : shape == 2 ? n3 - d * (n3 / 4)            /* spread */
                             : (r < 2 ? n3 - 5 * (2 - r) : n3);          /* two and two */
                        if (n[r] < 1)
                            n[r] = 1;
                    }
                    float *o[4] = { os[0], os[1], os[2], os[3] };
                    const float *q[4] = { qs[0], qs[1], qs[2], qs[3] };
                    float *sc[4] = { scs[0], scs[1], scs[2], scs[3] };
                    k.attend4(o, q, kb, vb, stride, n, scale, sc, hd);
                    for (int r = 0; r < 4; r++) {
                        for (int p = 0; p < n[r]; p++)
                            sr[p] = k.dot(qs[r], kb + p * stride, hd) * scale;
                        ouro_softmax(sr, n[r]);
                        memset(ref, 0, sizeof ref);
                        for (int p = 0; p < n[r]; p++)
                            k.axpy(ref, sr[p], vb + p * stride, hd);
                        bool ok = memcmp(os[r], ref, (size_t)hd * sizeof(float)) == 0
                                  && memcmp(scs[r], sr, (size_t)n[r] * sizeof(float)) == 0;
                        if (!ok && same)
                            snprintf(first, sizeof first, "head_dim %d, n %d %d %d %d, query %d",
                                     hd, n[0], n[1], n[2], n[3], r);
                        same &= ok;
                    }
                    cases++;
                }
        }
        check(same, "kv attend4 (%s, %s): each of four queries gets the bits of the dot, softmax "
              "and axpy loop alone (%d cases)", f16 ? "f16" : "f32", ouro_simd_level(), cases);
        if (!same)
            check_note("first wrong: %s", first);
    }
}

int main(void)
{
    test_exit_pdf();
    test_qstep();
    test_bf16();
    test_f16();
    test_rmsnorm();
    test_add();
    test_expf();
    test_softmax();
    test_softmax_bits();
    test_rope();
    test_matmul();
    test_matmul_exact();
    test_kv_kernels();
    test_kv_attend();
    test_kv_attend4();
    return check_done();
}

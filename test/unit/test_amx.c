/*
 * test_amx.c -- the AMX tile product of bf16 weights (core/kernels.c, "AMX
 * tile product for BF16 weights") against a double-precision reference.
 *
 * On shapes with every kind of edge (n = 1 .. 40, 64, 100 tokens: partial
 * token tiles and pairs; d_in 32, 64, 2048, 70, 33: a short last step;
 * d_out 16, 48, 5, 100: odd and short row tiles), 1 and 2 threads:
 *   - exact precision (x split into three bf16 pieces) within the summation
 *     bound of the f32 path, (d_in + 1) 2^-24 sum|w x|, of the product of
 *     the weights with x;
 *   - bf16 precision within the same bound of the product with x rounded to
 *     bf16 (nearest even);
 *   - the invariant order within that bound too, and each token's outputs
 *     the same bits alone and in every call of 2 .. 40 tokens, at any place;
 *   - several outputs at once (ouro_matmul_multi, whose row shares cut
 *     across outputs) and the gated form give the bits of separate products;
 *   - a NaN or an infinity in one token's x reaches that token's outputs
 *     alone.
 *
 * Where ouro_cpu_amx() is false (no tiles, OURO_SIMD set, or Linux refused
 * them) every check is skipped with a message: the other paths have their
 * own tests (test_math.c, test_kernels.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

static unsigned rng = 2024;
static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float bf16_round(float v)
{
    return ouro_bf16_to_f32(ouro_f32_to_bf16(v));
}

#define NMAX 100

static const int d_ins[] = { 32, 64, 2048, 70, 33 };
static const int d_outs[] = { 16, 48, 5, 100 };

/* The token counts tested: 1 .. 40, 64, 100. */
static int n_count(void) { return 42; }
static int n_at(int i) { return i < 40 ? i + 1 : i == 40 ? 64 : 100; }

/* Worst error of y (n, d_out) against ref / mag (NMAX, d_out), in units of
 * the f32 summation bound. */
static double worst_of(const float *y, const double *ref, const double *mag, int n, int d_in,
                       int d_out)
{
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < d_out; o++) {
            size_t at = (size_t)i * d_out + o;
            double bound = (d_in + 1) * 0x1p-24 * mag[at] + 1e-30;
            double e = fabs(y[at] - ref[at]) / bound;
            worst = isnan(e) || e > worst ? (isnan(e) ? INFINITY : e) : worst;
        }
    return worst;
}

static void check_shapes(void)
{
    static const ouro_precision precs[] = { OURO_PRECISION_EXACT, OURO_PRECISION_BF16,
                                            OURO_PRECISION_INVARIANT };
    static const char *names[] = { "exact", "bf16", "invariant" };
    double worst[3] = {0};
    int bad[3] = {0}, runs[3] = {0}, var_bad = 0, var_runs = 0;
    for (size_t ii = 0; ii < sizeof d_ins / sizeof d_ins[0]; ii++)
        for (size_t oi = 0; oi < sizeof d_outs / sizeof d_outs[0]; oi++) {
            int d_in = d_ins[ii], d_out = d_outs[oi];
            size_t nw = (size_t)d_out * d_in;
            uint16_t *w = malloc(nw * 2);
            float *x = malloc((size_t)NMAX * d_in * sizeof(float));
            float *y = malloc((size_t)NMAX * d_out * sizeof(float));
            float *alone = malloc((size_t)NMAX * d_out * sizeof(float));
            double *ref = malloc((size_t)NMAX * d_out * sizeof(double));
            double *refb = malloc((size_t)NMAX * d_out * sizeof(double));
            double *mag = malloc((size_t)NMAX * d_out * sizeof(double));
            for (size_t i = 0; i < nw; i++)
                w[i] = ouro_f32_to_bf16(frand());
            /* activations of several magnitudes, as between the layers of a model */
            for (size_t i = 0; i < (size_t)NMAX * d_in; i++)
                x[i] = frand() * (i % 7 == 0 ? 40.0f : i % 3 == 0 ? 0.01f : 2.0f);
            for (int i = 0; i < NMAX; i++)
                for (int o = 0; o < d_out; o++) {
                    double s = 0, sb = 0, m = 0;
                    for (int k = 0; k < d_in; k++) {
                        double wv = ouro_bf16_to_f32(w[(size_t)o * d_in + k]);
                        float xv = x[(size_t)i * d_in + k];
                        s += wv * xv;
                        sb += wv * bf16_round(xv);
                        m += fabs(wv * xv);
                    }
                    size_t at = (size_t)i * d_out + o;
                    ref[at] = s;
                    refb[at] = sb;
                    mag[at] = m;
                }
            for (int p = 0; p < 3; p++)
                for (int ni = 0; ni < n_count(); ni++)
                    for (int th = 1; th <= 2; th++) {
                        int n = n_at(ni);
                        ouro_matmul_prec(y, x, w, OURO_BF16, n, d_in, d_out, th, precs[p], NULL);
                        double e = worst_of(y, p == 1 ? refb : ref, mag, n, d_in, d_out);
                        runs[p]++;
                        bad[p] += !(e <= 1.0);
                        worst[p] = e > worst[p] ? e : worst[p];
                    }
            /* invariant order: every token alone, then within calls of 2 .. 40 tokens
             * starting at several places */
            for (int t = 0; t < NMAX; t++)
                ouro_matmul_prec(alone + (size_t)t * d_out, x + (size_t)t * d_in, w, OURO_BF16, 1,
                                 d_in, d_out, 1, OURO_PRECISION_INVARIANT, NULL);
            for (int ni = 1; ni < n_count(); ni++) {
                int n = n_at(ni);
                for (int t0 = 0; t0 + n <= NMAX; t0 += 37) {
                    int th = 1 + (ni + t0) % 2;
                    ouro_matmul_prec(y, x + (size_t)t0 * d_in, w, OURO_BF16, n, d_in, d_out, th,
                                     OURO_PRECISION_INVARIANT, NULL);
                    var_runs++;
                    var_bad += memcmp(y, alone + (size_t)t0 * d_out, (size_t)n * d_out * sizeof(float)) != 0;
                }
            }
            free(w); free(x); free(y); free(alone); free(ref); free(refb); free(mag);
        }
    for (int p = 0; p < 3; p++)
        check(bad[p] == 0, "AMX %s products of bf16 weights within the f32 summation bound "
              "(d_in + 1) 2^-24 sum|w x| of double: %d of %d products outside it, worst %.3f of "
              "the bound", names[p], bad[p], runs[p], worst[p]);
    check(var_bad == 0, "AMX invariant order: each token's outputs are those it gets alone, bit for "
          "bit, in calls of 2 .. 100 tokens (%d of %d calls differ)", var_bad, var_runs);
}

/* ouro_matmul_multi cuts its row shares across the outputs (a share can start
 * inside an output and hold a short row tile): the results must still be the
 * bits of separate products; and the gated form silu(gate) * up. */
static void check_multi(void)
{
    static const int shapes[][2] = { { 70, 37 }, { 2048, 100 }, { 33, 5 }, { 64, 48 } };
    static const int ns[] = { 1, 2, 17, 33, 64 };
    int bad = 0, bad_glu = 0, runs = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int d_in = shapes[si][0], d_out = shapes[si][1];
        size_t nw = (size_t)d_out * d_in, ny = (size_t)64 * d_out;
        uint16_t *w1 = malloc(nw * 2), *w2 = malloc(nw * 2), *w3 = malloc(nw * 2);
        float *x = malloc((size_t)64 * d_in * sizeof(float));
        float *y[6];
        for (int i = 0; i < 6; i++)
            y[i] = malloc(ny * sizeof(float));
        for (size_t i = 0; i < nw; i++) {
            w1[i] = ouro_f32_to_bf16(frand());
            w2[i] = ouro_f32_to_bf16(frand());
            w3[i] = ouro_f32_to_bf16(frand());
        }
        for (size_t i = 0; i < (size_t)64 * d_in; i++)
            x[i] = frand() * 3;
        for (int p = 0; p < 3; p++) {
            ouro_precision prec = p == 0 ? OURO_PRECISION_EXACT : p == 1 ? OURO_PRECISION_BF16
                                                                          : OURO_PRECISION_INVARIANT;
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                for (int th = 1; th <= 2; th++) {
                    int n = ns[ni];
                    size_t bytes = (size_t)n * d_out * sizeof(float);
                    ouro_matmul_prec(y[0], x, w1, OURO_BF16, n, d_in, d_out, th, prec, NULL);
                    ouro_matmul_prec(y[1], x, w2, OURO_BF16, n, d_in, d_out, th, prec, NULL);
                    ouro_matmul_prec(y[2], x, w3, OURO_BF16, n, d_in, d_out, th, prec, NULL);
                    ouro_mm_out outs[3] = { { y[3], w1, OURO_BF16, d_out }, { y[4], w2, OURO_BF16, d_out },
                                            { y[5], w3, OURO_BF16, d_out } };
                    ouro_matmul_multi(outs, 3, x, n, d_in, th, prec, NULL);
                    runs++;
                    bad += memcmp(y[0], y[3], bytes) || memcmp(y[1], y[4], bytes)
                           || memcmp(y[2], y[5], bytes);
                    for (size_t j = 0; j < (size_t)n * d_out; j++) {
                        float g = y[0][j];
                        y[0][j] = g / (1.0f + expf(-g)) * y[1][j];
                    }
                    ouro_matmul_glu(y[3], y[4], x, w1, w2, OURO_BF16, n, d_in, d_out, th, prec, NULL);
                    bad_glu += memcmp(y[0], y[3], bytes) != 0;
                }
        }
        free(w1); free(w2); free(w3); free(x);
        for (int i = 0; i < 6; i++)
            free(y[i]);
    }
    check(bad == 0, "AMX: ouro_matmul_multi of 3 outputs gives the bits of separate products "
          "(%d of %d differ)", bad, runs);
    check(bad_glu == 0, "AMX: ouro_matmul_glu gives silu(gate) * up of separate products "
          "(%d of %d differ)", bad_glu, runs);
}

/* A NaN or an infinity in one token's x makes that token's outputs NaN or
 * infinite and leaves every other token's outputs as they were, bit for bit
 * (each output column of a tile sums its own token alone). */
static void check_nonfinite(void)
{
    int d_in = 70, d_out = 48, n = 40, bad = 0, runs = 0;
    uint16_t *w = malloc((size_t)d_out * d_in * 2);
    float *x = malloc((size_t)n * d_in * sizeof(float));
    float *y0 = malloc((size_t)n * d_out * sizeof(float)), *y = malloc((size_t)n * d_out * sizeof(float));
    for (int i = 0; i < d_out * d_in; i++)
        w[i] = ouro_f32_to_bf16(frand());
    for (int i = 0; i < n * d_in; i++)
        x[i] = frand() * 3;
    for (int p = 0; p < 3; p++) {
        ouro_precision prec = p == 0 ? OURO_PRECISION_EXACT : p == 1 ? OURO_PRECISION_BF16
                                                                      : OURO_PRECISION_INVARIANT;
        ouro_matmul_prec(y0, x, w, OURO_BF16, n, d_in, d_out, 2, prec, NULL);
        for (int v = 0; v < 2; v++) {
            int t = 17 + v * 5;   /* a token of the second tile */
            float keep = x[(size_t)t * d_in + 3];
            x[(size_t)t * d_in + 3] = v ? INFINITY : NAN;
            ouro_matmul_prec(y, x, w, OURO_BF16, n, d_in, d_out, 2, prec, NULL);
            x[(size_t)t * d_in + 3] = keep;
            runs++;
            for (int i = 0; i < n; i++)
                for (int o = 0; o < d_out; o++) {
                    float a = y[(size_t)i * d_out + o], b = y0[(size_t)i * d_out + o];
                    bad += i == t ? isfinite(a) : memcmp(&a, &b, sizeof a) != 0;
                }
        }
    }
    check(bad == 0, "AMX: a NaN or an infinity in one token's x reaches that token's outputs alone "
          "(%d of %d calls wrong)", bad, runs);
    free(w); free(x); free(y0); free(y);
}

int main(void)
{
    if (!ouro_cpu_amx()) {
        printf("ok 1 - AMX tile product # SKIP no AMX tiles here (simd %s, OURO_SIMD %s): the "
               "AVX-512, AVX2 and portable products are tested in test_math and test_kernels\n",
               ouro_simd_level(), getenv("OURO_SIMD") ? getenv("OURO_SIMD") : "unset");
        return 0;
    }
    check_note("AMX tiles in use; build %s", ouro_build_info());
    check_shapes();
    check_multi();
    check_nonfinite();
    return check_done();
}

/*
 * test_quant4.c -- the q4 weight format and its products (core/quant4.c).
 *
 *   - quantizing rows of any length (48, 80, 176, 1, 31, 33, 2051 ...) and
 *     any row count (not a multiple of 16): every stored w_q the nearest
 *     level round(w / d) (clamped to [-8, 7]) of its block's scale, so within
 *     half a step of the original unless clamped; no block's squared error
 *     above that of llama.cpp Q4_0's scale m / -8 (m the block's value of
 *     largest magnitude); padding rows and columns zero;
 *   - ouro_matmul on q4 weights equals, bit for bit, a reference written
 *     here from the format's definition (activations quantized per block of
 *     32, exact integer sums, one fused multiply-add per block in order) for
 *     n = 1 .. 17, 31 and 64 tokens, 1 and 2 threads, on the path the processor
 *     runs; test/run.sh runs it again with OURO_SIMD=avx2 and generic, so
 *     every path is held to the same bits;
 *   - and stays within a bound of the f32 product of the original weights;
 *   - ouro_matmul_multi / ouro_matmul_glu with q4 weights equal separate
 *     products, also mixed with q8 weights in one list; a workspace that is
 *     too small (or none) gives the same bits;
 *   - NaN or infinity in x gives NaN for that token only; a non-finite scale
 *     in the weights gives NaN in its row only;
 *   - the AMX tile path, called directly, equals the reference at n = 1 .. 40,
 *     64 and 100 on every shape and on row ranges that cut groups (skipped
 *     where the process has no tiles, as under OURO_SIMD=avx512).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

/* A q4 (or q8) matrix made from f32 rows w (rows, cols), 64-byte aligned. */
static uint8_t *make_q(const float *w, int rows, int cols, bool q8)
{
    size_t gb = q8 ? ouro_q8_group_bytes(cols) : ouro_q4_group_bytes(cols);
    size_t bytes = q8 ? ouro_q8_bytes(rows, cols) : ouro_q4_bytes(rows, cols);
    uint8_t *q = aligned_alloc(64, (bytes + 63) / 64 * 64);
    for (int g = 0; g * 16 < rows; g++) {
        int n = rows - g * 16 < 16 ? rows - g * 16 : 16;
        if (q8)
            ouro_q8_quantize_group(q + (size_t)g * gb, w + (size_t)g * 16 * cols, n, cols);
        else
            ouro_q4_quantize_group(q + (size_t)g * gb, w + (size_t)g * 16 * cols, n, cols);
    }
    return q;
}
#define make_q4(w, rows, cols) make_q(w, rows, cols, false)

/* The reference, from the format's definition alone (not quant.c's code):
 * weight byte and scale by their documented offsets. */
static int ref_wq(const uint8_t *q, int cols, int r, int k)
{
    int nb = (cols + 31) / 32;
    size_t gb = (size_t)nb * 256 + ((size_t)nb * 32 + 63) / 64 * 64;
    const uint8_t *g = q + (size_t)(r / 16) * gb;
    int b = k / 32, kk = k % 32;
    uint8_t byte = g[(size_t)b * 256 + (kk % 16 / 4) * 64 + (r % 16) * 4 + kk % 4];
    return (kk < 16 ? byte & 15 : byte >> 4) - 8;
}

static float ref_d(const uint8_t *q, int cols, int r, int b)
{
    int nb = (cols + 31) / 32;
    size_t gb = (size_t)nb * 256 + ((size_t)nb * 32 + 63) / 64 * 64;
    const uint8_t *g = q + (size_t)(r / 16) * gb;
    uint16_t h;
    memcpy(&h, g + (size_t)nb * 256 + ((size_t)b * 16 + r % 16) * 2, 2);
    return ouro_f16_to_f32(h);
}

#include "quant_check.h"

static const int shapes[][2] = {   /* d_in, d_out */
    {48, 80}, {80, 176}, {176, 48}, {31, 7}, {33, 13}, {64, 64}, {100, 37}, {1, 17},
    {2048, 96}, {2051, 21}, {5632, 40}, {256, 200},
};
static const int ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 31, 64};

static void check_format(void)
{
    int bad_err = 0, bad_pad = 0, bad_scale = 0, rows_done = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int cols = shapes[s][0], rows = shapes[s][1];
        float *w = malloc((size_t)rows * cols * sizeof(float));
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            w[i] = frand() * (1.0f + (float)(i % 7));   /* blocks of different ranges */
        if (rows > 3)
            memset(w + (size_t)2 * cols, 0, (size_t)cols * sizeof(float));   /* an all-zero row */
        uint8_t *q = make_q4(w, rows, cols);
        float *row = malloc((size_t)cols * sizeof(float));
        int nb = (cols + 31) / 32;
        for (int r = 0; r < rows; r++, rows_done++) {
            ouro_row_to_f32(row, q, OURO_Q4, (size_t)r, cols);
            for (int b = 0; b < nb; b++) {
                const float *wb = w + (size_t)r * cols + b * 32;
                int len = cols - b * 32 < 32 ? cols - b * 32 : 32;
                float amax = 0, m = 0;
                for (int k = 0; k < len; k++)
                    if (fabsf(wb[k]) > amax) {
                        amax = fabsf(wb[k]);
                        m = wb[k];
                    }
                /* the error of llama.cpp Q4_0's scale m / -8, from the definition */
                float d0 = ouro_f16_to_f32(ouro_f32_to_f16(m / -8.0f)), err0 = 0, err = 0;
                for (int k = 0; k < len; k++) {
                    float v = d0 != 0 ? nearbyintf(wb[k] / d0) : 0;
                    v = v > 7 ? 7 : v < -8 ? -8 : v;
                    err0 += (wb[k] - d0 * v) * (wb[k] - d0 * v);
                }
                float d = ref_d(q, cols, r, b);
                for (int k = 0; k < len; k++) {
                    int wq = ref_wq(q, cols, r, b * 32 + k);
                    float v = d != 0 ? nearbyintf(wb[k] / d) : 0;
                    v = v > 7 ? 7 : v < -8 ? -8 : v;
                    float e = fabsf(row[b * 32 + k] - wb[k]);
                    err += e * e;
                    /* the nearest level of its scale; within half a step unless clamped */
                    if (wq != (int)v || row[b * 32 + k] != d * (float)wq
                        || (fabsf(wb[k] / d) < 7.5f && e > fabsf(d) * 0.5f * 1.0001f))
                        bad_err++;
                }
                if (amax == 0 ? d != 0 : !(err <= err0 * 1.0001f))
                    bad_scale++;
            }
            for (int k = cols; k < nb * 32; k++)   /* padding columns */
                bad_pad += ref_wq(q, cols, r, k) != 0;
        }
        for (int r = rows; r < (rows + 15) / 16 * 16; r++)   /* padding rows */
            for (int k = 0; k < nb * 32; k++)
                bad_pad += ref_wq(q, cols, r, k) != 0 || ref_d(q, cols, r, k / 32) != 0.0f;
        free(row);
        free(q);
        free(w);
    }
    check(bad_scale == 0, "q4 scales: no block's squared error above that of Q4_0's scale m / -8; "
          "zero blocks have d = 0 (%d bad)", bad_scale);
    check(bad_err == 0, "q4 values are the nearest level of their scale, within |d| / 2 of the weights "
          "unless clamped, over %d rows (%d bad)",
          rows_done, bad_err);
    check(bad_pad == 0, "q4 padding rows and columns are zero (%d bad)", bad_pad);
    check(ouro_q4_group_bytes(48) == 2 * 256 + 64 && ouro_q4_group_bytes(2048) == 64 * 256 + 2048
          && ouro_q4_bytes(17, 80) == 2 * ouro_q4_group_bytes(80)
          && ouro_q4_bytes(2048, 2048) * 16 == (size_t)2048 * 2048 * 9,
          "q4 sizes follow the documented layout (9/16 byte a weight)");
}

static void check_products(void)
{
    int runs = 0, bad_ref = 0, bad_err = 0, bad_multi = 0, bad_glu = 0, bad_ws = 0;
    double worst_rel = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int d_in = shapes[s][0], d_out = shapes[s][1];
        int nmax = 64;
        float *w = malloc((size_t)d_out * d_in * sizeof(float));
        float *w2 = malloc((size_t)d_out * d_in * sizeof(float));
        float *x = malloc((size_t)nmax * d_in * sizeof(float));
        size_t ny = (size_t)nmax * d_out;
        float *y = malloc(ny * sizeof(float)), *yr = malloc(ny * sizeof(float));
        float *y2 = malloc(ny * sizeof(float)), *y3 = malloc(ny * sizeof(float));
        float *y4 = malloc(ny * sizeof(float));
        for (size_t i = 0; i < (size_t)d_out * d_in; i++) {
            w[i] = frand() * 0.05f;
            w2[i] = frand() * 0.05f;
        }
        for (size_t i = 0; i < (size_t)nmax * d_in; i++)
            x[i] = frand() * (1.0f + (float)(i % 5));
        uint8_t *q = make_q4(w, d_out, d_in), *q2 = make_q4(w2, d_out, d_in);
        uint8_t *q8 = make_q(w2, d_out, d_in, true);
        float *y5 = malloc(ny * sizeof(float));
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int n = ns[ni];
            ref_product(yr, x, q, n, d_in, d_out);
            for (int th = 1; th <= 2; th++) {
                runs++;
                ouro_matmul(y, x, q, OURO_Q4, n, d_in, d_out, th);
                if (!same_bits(y, yr, (size_t)n * d_out)) {
                    if (bad_ref++ < 3)
                        check_note("q4 product differs from the reference: d_in %d d_out %d n %d "
                                   "threads %d", d_in, d_out, n, th);
                }
                /* against the f32 product of the original weights: the error of 8-bit
                 * weights and activations, relative to sum |w| |x| */
                for (int t = 0; t < n; t++)
                    for (int r = 0; r < d_out; r++) {
                        double exact = 0, mag = 0;
                        for (int k = 0; k < d_in; k++) {
                            exact += (double)w[(size_t)r * d_in + k] * x[(size_t)t * d_in + k];
                            mag += fabs((double)w[(size_t)r * d_in + k] * x[(size_t)t * d_in + k]);
                        }
                        double rel = fabs(y[(size_t)t * d_out + r] - exact) / (mag + 1e-30);
                        if (rel > worst_rel)
                            worst_rel = rel;
                        if (rel > 0.15)
                            bad_err++;
                    }
                /* multi: the two outputs as one list */
                ouro_mm_out outs[2] = { { y2, q, OURO_Q4, d_out }, { y3, q2, OURO_Q4, d_out } };
                ouro_matmul_multi(outs, 2, x, n, d_in, th, OURO_PRECISION_EXACT, NULL);
                ouro_matmul(y4, x, q2, OURO_Q4, n, d_in, d_out, th);
                if (!same_bits(y2, y, (size_t)n * d_out) || !same_bits(y3, y4, (size_t)n * d_out))
                    bad_multi++;
                /* q4 and q8 weights in one list */
                ouro_mm_out mixed[2] = { { y2, q, OURO_Q4, d_out }, { y3, q8, OURO_Q8, d_out } };
                ouro_matmul_multi(mixed, 2, x, n, d_in, th, OURO_PRECISION_EXACT, NULL);
                ouro_matmul(y5, x, q8, OURO_Q8, n, d_in, d_out, th);
                if (!same_bits(y2, y, (size_t)n * d_out) || !same_bits(y3, y5, (size_t)n * d_out))
                    bad_multi++;
                /* glu: silu(x . Wg) * (x . Wu) */
                ouro_matmul_glu(y2, y3, x, q, q2, OURO_Q4, n, d_in, d_out, th, OURO_PRECISION_EXACT, NULL);
                for (size_t i = 0; i < (size_t)n * d_out; i++) {
                    float g = y[i], want = g / (1.0f + expf(-g)) * y4[i];
                    if (memcmp(&want, &y2[i], sizeof want) != 0)
                        bad_glu++;
                }
                /* a workspace large enough and one too small give the same bits */
                size_t need = ouro_q8_act_bytes(n, d_in);
                ouro_mm_ws big = { malloc(need), need }, small = { malloc(16), 16 };
                ouro_matmul_prec(y2, x, q, OURO_Q4, n, d_in, d_out, th, OURO_PRECISION_EXACT, &big);
                ouro_matmul_prec(y3, x, q, OURO_Q4, n, d_in, d_out, th, OURO_PRECISION_BF16, &small);
                if (!same_bits(y2, y, (size_t)n * d_out) || !same_bits(y3, y, (size_t)n * d_out))
                    bad_ws++;
                free(big.buf);
                free(small.buf);
            }
        }
        free(q); free(q2); free(q8); free(y5); free(w); free(w2); free(x);
        free(y); free(yr); free(y2); free(y3); free(y4);
    }
    check_note("q4 products on the %s path; worst error vs f32 weights and activations: %.2e of sum |w x|",
               ouro_simd_level(), worst_rel);
    check(bad_ref == 0, "q4 products equal the reference bit for bit (%d/%d runs differ)", bad_ref, runs);
    check(bad_err == 0, "q4 products within 15%% of sum |w x| of the f32 product (%d bad)", bad_err);
    check(bad_multi == 0, "q4 ouro_matmul_multi equals separate products, alone and with q8 weights (%d bad)", bad_multi);
    check(bad_glu == 0, "q4 ouro_matmul_glu equals silu(gate) * up (%d bad)", bad_glu);
    check(bad_ws == 0, "q4 products are the same with a workspace, a too-small one, or none (%d bad)",
          bad_ws);
}

static void check_nonfinite(void)
{
    int d_in = 80, d_out = 48, n = 3;
    float *w = malloc((size_t)d_out * d_in * sizeof(float));
    float *x = malloc((size_t)n * d_in * sizeof(float));
    float y[3 * 48];
    for (int i = 0; i < d_out * d_in; i++)
        w[i] = frand();
    for (int i = 0; i < n * d_in; i++)
        x[i] = frand();
    x[d_in + 40] = NAN;          /* token 1 */
    x[2 * d_in + 3] = INFINITY;  /* token 2 */
    uint8_t *q = make_q4(w, d_out, d_in);
    ouro_matmul(y, x, q, OURO_Q4, n, d_in, d_out, 1);
    int finite0 = 0, nan12 = 0;
    for (int r = 0; r < d_out; r++) {
        finite0 += isfinite(y[r]);
        nan12 += isnan(y[d_out + r]) + isnan(y[2 * d_out + r]);
    }
    check(finite0 == d_out && nan12 == 2 * d_out,
          "q4: NaN or infinity in a token's x gives NaN for that token only (%d/%d, %d/%d)",
          finite0, d_out, nan12, 2 * d_out);
    /* a NaN scale (row 5, block 1) in the weights: row 5 is NaN, the others not */
    uint16_t nanh = 0x7e00;
    memcpy(q + 3 * 256 + (1 * 16 + 5) * 2, &nanh, 2);
    x[d_in + 40] = 0.5f;
    x[2 * d_in + 3] = 0.5f;
    ouro_matmul(y, x, q, OURO_Q4, n, d_in, d_out, 1);
    int bad = 0;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < d_out; r++)
            bad += (r == 5) != (bool)isnan(y[t * d_out + r]);
    check(bad == 0, "q4: a NaN scale in the weights gives NaN in its row only (%d wrong)", bad);
    free(q);
    free(w);
    free(x);
}

/* q4 weights alone, for check_qamx. */
static uint8_t *make_q4_only(const float *w, int rows, int cols)
{
    return make_q4(w, rows, cols);
}

int main(void)
{
    check_note("SIMD path: %s", ouro_simd_level());
    check_format();
    check_products();
    check_nonfinite();
    check_qamx("q4", true, make_q4_only, shapes, sizeof shapes / sizeof shapes[0]);
    return check_done();
}

/*
 * quant_check.h -- what test_quant.c (q8) and test_quant4.c (q4) share: the
 * random numbers, the reference product written from the formats'
 * definition (the including file defines ref_wq() and ref_d() for its
 * format first: a weight's integer and a block's scale), bit-for-bit
 * comparison, and the check of the AMX int8 tile path (ouro_qamx_rows,
 * core/quant.c) against the reference.
 */
#ifndef OURO_QUANT_CHECK_H
#define OURO_QUANT_CHECK_H

static unsigned rng = 4242;
static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* y (n, d_out) = x . W^T as the formats define it: x quantized per block of
 * 32 (s = max|x| / 127, round to nearest), exact integer sums, each block's
 * term added with one fused multiply-add in block order; NaN for a token
 * with a non-finite x. */
static void ref_product(float *y, const float *x, const uint8_t *q, int n, int d_in, int d_out)
{
    int nb = (d_in + 31) / 32;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d_in;
        for (int r = 0; r < d_out; r++) {
            float acc = 0.0f;
            bool bad = false;
            for (int b = 0; b < nb; b++) {
                int k0 = b * 32, len = d_in - k0 < 32 ? d_in - k0 : 32;
                float amax = 0.0f;
                for (int k = 0; k < len; k++) {
                    bad = bad || !isfinite(xt[k0 + k]);
                    amax = fmaxf(amax, fabsf(xt[k0 + k]));
                }
                float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
                int32_t dot = 0;
                for (int k = 0; k < len; k++) {
                    int v = (int)nearbyintf(xt[k0 + k] * inv);
                    v = v > 127 ? 127 : v < -127 ? -127 : v;
                    dot += v * ref_wq(q, d_in, r, k0 + k);
                }
                float sc = ref_d(q, d_in, r, b) * (amax / 127.0f);
                acc = fmaf((float)dot, sc, acc);
            }
            y[(size_t)t * d_out + r] = bad ? NAN : acc;
        }
    }
}

static bool same_bits(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0 && !(isnan(a[i]) && isnan(b[i])))
            return false;
    return true;
}

typedef uint8_t *(*qamx_make_fn)(const float *w, int rows, int cols);

/* The AMX tile path (quant.c) called directly, at every n from 1 to 40 and
 * 64 and 100, for all rows and for row ranges that cut groups: the same bits
 * as the reference in the range (NaN for the two tokens with NaN or infinity
 * in x), nothing written outside it.  Skipped where
 * this process has no tiles (another processor, or OURO_SIMD set). */
static void check_qamx(const char *fmt, bool q4, qamx_make_fn make, const int (*shape_list)[2],
                       size_t n_shapes)
{
    if (!ouro_cpu_amx()) {
        check(1, "%s AMX tile products equal the reference # SKIP no AMX tiles here (SIMD level %s%s)",
              fmt, ouro_simd_level(), getenv("OURO_SIMD") ? ", OURO_SIMD set" : "");
        return;
    }
    enum { NMAX = 100 };
    int runs = 0, bad = 0, bad_out = 0;
    const float fill = 12345.0f;
    for (size_t s = 0; s < n_shapes; s++) {
        int d_in = shape_list[s][0], d_out = shape_list[s][1];
        float *w = malloc((size_t)d_out * d_in * sizeof(float));
        float *x = malloc((size_t)NMAX * d_in * sizeof(float));
        float *y = malloc((size_t)NMAX * d_out * sizeof(float));
        float *yr = malloc((size_t)NMAX * d_out * sizeof(float));
        for (size_t i = 0; i < (size_t)d_out * d_in; i++)
            w[i] = frand() * 0.05f;
        for (size_t i = 0; i < (size_t)NMAX * d_in; i++)
            x[i] = frand() * (1.0f + (float)(i % 7));
        x[(size_t)1 * d_in + d_in / 2] = NAN;          /* tokens 1 and 37: NaN for them alone */
        x[(size_t)37 * d_in] = INFINITY;
        uint8_t *q = make(w, d_out, d_in);
        ref_product(yr, x, q, NMAX, d_in, d_out);   /* token by token: its first n rows serve any n */
        for (int n = 1; n <= NMAX; n = n < 40 ? n + 1 : n < 64 ? 64 : n < NMAX ? NMAX : NMAX + 1) {
            size_t need = ouro_q8_act_bytes(n, d_in);
            void *ws = malloc(need);
            ouro_q8_prepare(ws, x, n, d_in, 1 + n % 3, q4 ? OURO_Q4 : OURO_Q8);
            ouro_q8_prepare_tiles(ws, n, d_in, 1 + n % 2);
            ouro_q8_act a = ouro_q8_act_view(ws, n, d_in);
            int ranges[3][2] = { { 0, d_out }, { 3, d_out - 2 }, { 17, 40 } };
            for (int ri = 0; ri < 3; ri++) {
                int r0 = ranges[ri][0], r1 = ranges[ri][1];
                if (r1 > d_out || r0 >= r1)
                    continue;
                runs++;
                for (size_t i = 0; i < (size_t)n * d_out; i++)
                    y[i] = fill;
                ouro_qamx_rows(y, &a, q, q4, n, d_out, r0, r1);
                bool same = true, outside = true;
                for (int t = 0; t < n; t++)
                    for (int r = 0; r < d_out; r++) {
                        size_t i = (size_t)t * d_out + r;
                        if (r >= r0 && r < r1)
                            same = same && same_bits(&y[i], &yr[i], 1);
                        else
                            outside = outside && y[i] == fill;
                    }
                if (!same && bad++ < 3)
                    check_note("%s AMX product differs from the reference: d_in %d d_out %d n %d rows %d..%d",
                               fmt, d_in, d_out, n, r0, r1);
                bad_out += !outside;
            }
            free(ws);
        }
        free(q); free(w); free(x); free(y); free(yr);
    }
    check(bad == 0, "%s AMX tile products equal the reference bit for bit (%d/%d runs differ)", fmt, bad,
          runs);
    check(bad_out == 0, "%s AMX tile products write only their rows (%d runs wrote others)", fmt,
          bad_out);
}

#endif

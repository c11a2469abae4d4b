/*
 * test_kernels.c -- the matrix-product paths of core/kernels.c against plain
 * references, and the accuracy of the approximate modes (bf16 precision,
 * q8 weights) on the golden models.
 *
 *   - ouro_matmul_prec(OURO_PRECISION_BF16) on bf16 weights equals a
 *     double-precision product of the weights with x rounded to bf16 (odd
 *     shapes, n = 1 .. 17, 1 and 2 threads); on F32/F16 weights, and
 *     wherever the processor lacks AVX-512 BF16, it equals the exact path;
 *   - ouro_matmul_multi and ouro_matmul_glu give exactly what separate
 *     ouro_matmul calls (and silu(g) * u) give, for both precisions;
 *   - OURO_PRECISION_BF16 on the golden models (test/data/models): the
 *     logits of the last position of every case and exit mode within
 *     BF16_LOGIT_TOL of the reference, the same top-1 id, and the same 12
 *     greedy tokens for every case but tiny-mha-bf16/plain (see
 *     greedy_must_hold_bf16).  The measured figures are printed as notes.
 *   - q8: each golden model converted by ouro_convert_q8 (into a temporary
 *     folder) loads and runs; logits within Q8_LOGIT_TOL, top-1 ids the
 *     reference's in at least Q8_TOP1_MIN of the cases and modes, and at
 *     least q8_greedy_min whole greedy cases identical.  (The q8 kernels
 *     themselves are held to a bit-exact reference in test_quant.c.)
 *   - q4: the same with ouro_convert_q4 and the bounds Q4_LOGIT_TOL,
 *     Q4_TOP1_MIN and q4_greedy_min (kernels: test_quant4.c).
 *   - OURO_PRECISION_INVARIANT (classification): a token's outputs have the
 *     same bits alone and among 2 .. 13 tokens, for every dtype.
 *
 * Run from the repository root (test/run.sh does).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdbool.h>
#include "check.h"
#include "internal.h"
#include "golden.h"

/* Documented tolerance of OURO_PRECISION_BF16 on the golden models: the
 * logits (largest ~35 to 44) move by up to this much (measured worst 0.18, on
 * tiny-mha-bf16; the f32 and f16 models take the exact path). */
#define BF16_LOGIT_TOL 0.25

/* Documented tolerance of q8 weights (8-bit weights and activations) on the
 * golden models: logits move by up to Q8_LOGIT_TOL (measured worst 1.08 of
 * ~40; these tiny random models have 64-wide rows, two blocks of 32 each)
 * and at least Q8_TOP1_MIN of the top-1 ids stay the reference's (measured
 * 40/40, 32/35, 35/40).  Products with bf16 precision keep every top-1. */
#define Q8_LOGIT_TOL 1.25
#define Q8_TOP1_MIN 0.85

/* The same for q4 weights (4-bit weights, 8-bit activations): logits move by
 * up to Q4_LOGIT_TOL (measured worst 24.7, 35.7, 24.7 of ~40) and at least
 * Q4_TOP1_MIN of the top-1 ids stay the reference's (measured 14/40, 7/35,
 * 13/40); whole greedy cases: 1/5, 0/5, 0/5.  A 4-bit step is 16 times an
 * 8-bit one and these random models have no structure for it to keep: they
 * bound the error rather than show what it does to a trained model, for
 * which the README gives models/ouro-demo's held-out figures. */
#define Q4_LOGIT_TOL 40
#define Q4_TOP1_MIN 0.15

static const char *models[] = { "tiny-mha-bf16", "tiny-gqa-f32-tied", "tiny-mqa-f16-sharded" };

static unsigned rng = 12345;
static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float bf16_round(float v)
{
    return ouro_bf16_to_f32(ouro_f32_to_bf16(v));
}

/* ------------------------------------------------------------------------
 * Kernel paths against references
 * ------------------------------------------------------------------------ */

static void check_products(void)
{
    static const int shapes[][2] = {   /* d_in, d_out */
        {48, 80}, {80, 176}, {176, 48}, {31, 7}, {33, 13}, {64, 64}, {100, 37}, {2048, 96},
        {2051, 21}, {5000, 9},
    };
    static const int ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 17};
    bool bf16dp = ouro_cpu_bf16dp();   /* avx512 level and AVX-512 BF16 */
    check_note("simd %s, avx512bf16 dot products %s", ouro_simd_level(), bf16dp ? "yes" : "no");
    int bad_bf16 = 0, bad_exact = 0, bad_multi = 0, bad_glu = 0, runs = 0;
    double worst = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int d_in = shapes[si][0], d_out = shapes[si][1], nmax = 17;
        float *x = malloc((size_t)nmax * d_in * sizeof(float));
        float *wf = malloc((size_t)d_out * d_in * sizeof(float));
        uint16_t *wh = malloc((size_t)d_out * d_in * 2), *wb = malloc((size_t)d_out * d_in * 2);
        uint16_t *wb2 = malloc((size_t)d_out * d_in * 2);
        float *y = malloc((size_t)nmax * d_out * sizeof(float));
        float *y2 = malloc((size_t)nmax * d_out * sizeof(float));
        float *y3 = malloc((size_t)nmax * d_out * sizeof(float));
        float *y4 = malloc((size_t)nmax * d_out * sizeof(float));
        for (size_t i = 0; i < (size_t)nmax * d_in; i++)
            x[i] = frand() * 3;
        for (size_t i = 0; i < (size_t)d_out * d_in; i++) {
            wf[i] = frand();
            wh[i] = ouro_f32_to_f16(wf[i]);
            wb[i] = ouro_f32_to_bf16(wf[i]);
            wb2[i] = ouro_f32_to_bf16(frand());
        }
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int n = ns[ni];
            for (int th = 1; th <= 2; th++) {
                runs++;
                /* bf16 weights, bf16 precision: vs double with x rounded to bf16 */
                ouro_matmul_prec(y, x, wb, OURO_BF16, n, d_in, d_out, th, OURO_PRECISION_BF16, NULL);
                double me = 0;
                for (int i = 0; i < n; i++)
                    for (int o = 0; o < d_out; o++) {
                        double s = 0, sa = 0;
                        for (int k = 0; k < d_in; k++) {
                            float xv = x[(size_t)i * d_in + k];
                            double t = (double)ouro_bf16_to_f32(wb[(size_t)o * d_in + k])
                                       * (bf16dp ? bf16_round(xv) : xv);
                            s += t;
                            sa += fabs(t);
                        }
                        double err = fabs(y[(size_t)i * d_out + o] - s) / (sa + 1e-30);
                        me = isnan(err) || err > me ? (isnan(err) ? INFINITY : err) : me;
                    }
                if (me > worst)
                    worst = me;
                bad_bf16 += !(me < 1e-5 * (1 + d_in / 256.0));
                /* other dtypes: bf16 precision is the exact path */
                for (int dt = OURO_F32; dt <= OURO_F16; dt++) {
                    const void *w = dt == OURO_F32 ? (const void *)wf : (const void *)wh;
                    ouro_matmul(y2, x, w, (ouro_dtype)dt, n, d_in, d_out, th);
                    ouro_matmul_prec(y3, x, w, (ouro_dtype)dt, n, d_in, d_out, th, OURO_PRECISION_BF16, NULL);
                    bad_exact += memcmp(y2, y3, (size_t)n * d_out * sizeof(float)) != 0;
                }
                /* multi-output and gated forms equal separate products */
                for (int p = 0; p < 2; p++) {
                    ouro_precision prec = p ? OURO_PRECISION_BF16 : OURO_PRECISION_EXACT;
                    ouro_matmul_prec(y, x, wb, OURO_BF16, n, d_in, d_out, th, prec, NULL);
                    ouro_matmul_prec(y2, x, wb2, OURO_BF16, n, d_in, d_out, th, prec, NULL);
                    ouro_mm_out outs[2] = { { y3, wb, OURO_BF16, d_out }, { y4, wb2, OURO_BF16, d_out } };
                    ouro_matmul_multi(outs, 2, x, n, d_in, th, prec, NULL);
                    bad_multi += memcmp(y, y3, (size_t)n * d_out * sizeof(float)) != 0
                                 || memcmp(y2, y4, (size_t)n * d_out * sizeof(float)) != 0;
                    for (size_t j = 0; j < (size_t)n * d_out; j++) {
                        float g = y[j];
                        y[j] = g / (1.0f + expf(-g)) * y2[j];
                    }
                    ouro_matmul_glu(y3, y4, x, wb, wb2, OURO_BF16, n, d_in, d_out, th, prec, NULL);
                    bad_glu += memcmp(y, y3, (size_t)n * d_out * sizeof(float)) != 0;
                }
            }
        }
        free(x); free(wf); free(wh); free(wb); free(wb2);
        free(y); free(y2); free(y3); free(y4);
    }
    check(bad_bf16 == 0, "bf16 precision on bf16 weights matches the reference (%d/%d bad, worst rel %.2e)",
          bad_bf16, runs, worst);
    check(bad_exact == 0, "bf16 precision on f32/f16 weights is the exact path (%d bad)", bad_exact);
    check(bad_multi == 0, "ouro_matmul_multi equals separate products (%d bad)", bad_multi);
    check(bad_glu == 0, "ouro_matmul_glu equals silu(gate) * up (%d bad)", bad_glu);
}

/* Products of nmax tokens of x against w at precision prec, in calls of each
 * of the ns token counts (1 and 2 threads): how many calls give some token
 * other bits than it gets alone; *runs counts the calls. */
static int differ_from_alone(const float *x, const void *w, ouro_dtype dt, ouro_precision prec,
                             int d_in, int d_out, int nmax, const int *ns, int n_ns, float *alone,
                             float *y, int *runs)
{
    int bad = 0;
    for (int t = 0; t < nmax; t++)
        ouro_matmul_prec(alone + (size_t)t * d_out, x + (size_t)t * d_in, w, dt, 1, d_in, d_out, 1,
                         prec, NULL);
    for (int ni = 0; ni < n_ns; ni++)
        for (int th = 1; th <= 2; th++)
            for (int t0 = 0; t0 + ns[ni] <= nmax; t0 += nmax - ns[ni] > 0 ? nmax - ns[ni] : 1) {
                (*runs)++;
                ouro_matmul_prec(y, x + (size_t)t0 * d_in, w, dt, ns[ni], d_in, d_out, th, prec, NULL);
                bad += memcmp(y, alone + (size_t)t0 * d_out, (size_t)ns[ni] * d_out * sizeof(float)) != 0;
            }
    return bad;
}

/* OURO_PRECISION_INVARIANT: every token's outputs have the same bits whatever
 * the number of tokens in the call and the token's place among them, for each
 * dtype, row lengths on both sides of the d_in blocks, 1 and 2 threads.  So
 * does OURO_PRECISION_BF16 on bf16 weights where precision auto takes it. */
static void check_invariant(void)
{
    static const int d_ins[] = { 64, 100, 1344, 1400, 2048, 2100, 4200, 4111 };
    static const int ns[] = { 2, 3, 5, 6, 7, 8, 12, 13 };
    int n_ns = (int)(sizeof ns / sizeof ns[0]);
    int d_out = 37, nmax = 13, bad = 0, runs = 0, bf16_bad = 0, bf16_runs = 0;
    /* kernels.c, "AVX-512 BF16 product" */
    bool bf16_order = ouro_precision_resolve(OURO_PRECISION_AUTO) == OURO_PRECISION_BF16;
    for (size_t di = 0; di < sizeof d_ins / sizeof d_ins[0]; di++) {
        int d_in = d_ins[di];
        float *x = malloc((size_t)nmax * d_in * sizeof(float));
        float *wf = malloc((size_t)d_out * d_in * sizeof(float));
        uint16_t *wh = malloc((size_t)d_out * d_in * 2), *wb = malloc((size_t)d_out * d_in * 2);
        float *alone = malloc((size_t)nmax * d_out * sizeof(float));
        float *y = malloc((size_t)nmax * d_out * sizeof(float));
        for (size_t i = 0; i < (size_t)nmax * d_in; i++)
            x[i] = frand() * 3;
        for (size_t i = 0; i < (size_t)d_out * d_in; i++) {
            wf[i] = frand();
            wh[i] = ouro_f32_to_f16(wf[i]);
            wb[i] = ouro_f32_to_bf16(wf[i]);
        }
        for (int dt = OURO_F32; dt <= OURO_BF16; dt++) {
            const void *w = dt == OURO_F32 ? (const void *)wf : dt == OURO_F16 ? (const void *)wh
                                                                               : (const void *)wb;
            bad += differ_from_alone(x, w, (ouro_dtype)dt, OURO_PRECISION_INVARIANT, d_in, d_out,
                                     nmax, ns, n_ns, alone, y, &runs);
        }
        if (bf16_order)
            bf16_bad += differ_from_alone(x, wb, OURO_BF16, OURO_PRECISION_BF16, d_in, d_out, nmax,
                                          ns, n_ns, alone, y, &bf16_runs);
        free(x); free(wf); free(wh); free(wb); free(alone); free(y);
    }
    check(bad == 0, "invariant products: each token's outputs are those it gets alone, bit for bit, "
          "for 2 .. 13 tokens in a call (%d of %d products differ)", bad, runs);
    if (bf16_order)
        check(bf16_bad == 0, "bf16 precision: each token's outputs are those it gets alone, bit for "
              "bit, for 2 .. 13 tokens in a call (%d of %d products differ)", bf16_bad, bf16_runs);
    else
        check_note("bf16 precision's one order: not checked (%s)", ouro_cpu_amx()
                   ? "AMX tiles sum in their own order" : "no AVX-512 BF16 dot products");
}

/* ------------------------------------------------------------------------
 * bf16 precision on the golden models
 * ------------------------------------------------------------------------ */


/* Whether the greedy tokens of a case stay the reference's at bf16 precision.
 * tiny-mha-bf16/plain drifts at its 8th token (7 of 12 the same): a near tie
 * the bf16 rounding tips the other way. */
static bool greedy_must_hold_bf16(const char *model, const char *cname)
{
    return !(strcmp(model, "tiny-mha-bf16") == 0 && strcmp(cname, "plain") == 0);
}

/* With q8 weights a number of whole greedy cases stay the reference's rather
 * than named ones (measured 5/5, 3/5, 2/5 for the models in order): ties in
 * these tiny models are close enough for 8-bit rounding to tip. */
static bool greedy_must_hold_q8(const char *model, const char *cname)
{
    (void)model;
    (void)cname;
    return false;
}
static const int q8_greedy_min[] = { 4, 2, 1 };
static const int q4_greedy_min[] = { 1, 0, 0 };

/* An approximate mode on one golden model: label "bf16" (precision BF16 on
 * the model as it is) or "q8" (the model converted by ouro_convert_q8). */
static void check_approx_model(const char *label, const char *name, ouro_model *m, const cJSON *cases,
                               ouro_precision prec, double tol, double top1_min,
                               bool (*greedy_must_hold)(const char *, const char *), int greedy_min)
{
    const ouro_config *c = ouro_model_config(m);
    int V = c->vocab_size;
    float *logits = malloc((size_t)V * sizeof(float));
    double worst = 0;
    int modes = 0, top1 = 0, greedy_same = 0, greedy_tok = 0, greedy_all = 0, nc = 0, failed = 0;
    int must = 0, must_same = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        nc++;
        int32_t *ids, *ref;
        int n = json_ints(cJSON_GetObjectItem(cs, "input_ids"), &ids);
        int nref = json_ints(cJSON_GetObjectItem(cs, "greedy_new_ids"), &ref);
        int32_t *seq = calloc((size_t)n, sizeof(int32_t));
        const cJSON *md;
        cJSON_ArrayForEach(md, cJSON_GetObjectItem(cs, "logits")) {
            ouro_session *s = NULL;
            ouro_error e;
            ouro_session_options so = { .n_ctx = n, .threads = 2, .precision = prec };
            ouro_forward_options fo = { .exit = mode_exit(md->string) };
            ouro_batch b = { .n = n, .token = ids, .seq = seq };   /* want = NULL: the last token */
            ouro_outputs out = { .logits = logits };
            ouro_status st = ouro_session_new(m, &so, &s, &e);
            if (st == OURO_OK)
                st = ouro_session_forward(s, &b, &fo, &out, &e);
            ouro_session_free(s);
            if (st != OURO_OK) {
                check_note("%s: %s", name, e.message);
                failed++;
                continue;
            }
            modes++;
            const char *parts[][2] = { { "top_ids", "top_logits" }, { "probe_ids", "probe_logits" } };
            for (int p = 0; p < 2; p++) {
                const cJSON *pi = cJSON_GetObjectItem(md, parts[p][0]);
                const cJSON *pl = cJSON_GetObjectItem(md, parts[p][1]);
                for (int i = 0; i < cJSON_GetArraySize(pi); i++) {
                    double d = fabs(logits[cJSON_GetArrayItem(pi, i)->valueint]
                                    - cJSON_GetArrayItem(pl, i)->valuedouble);
                    if (d > worst)
                        worst = d;
                }
            }
            int best = 0;
            for (int j = 1; j < V; j++)
                if (logits[j] > logits[best])
                    best = j;
            top1 += best == cJSON_GetArrayItem(cJSON_GetObjectItem(md, "top_ids"), 0)->valueint;
        }
        /* greedy decode with the KV cache */
        ouro_session *s = NULL;
        ouro_error e;
        ouro_session_options so = { .n_ctx = n + nref, .threads = 2, .precision = prec };
        ouro_gen_params gp = { .max_tokens = nref };
        ouro_gen_result r = {0};
        ouro_status st = ouro_session_new(m, &so, &s, &e);
        if (st == OURO_OK)
            st = ouro_generate(s, 1, (const int32_t *const *)&ids, &n, &gp, &r, &e);
        const char *cname = cJSON_GetObjectItem(cs, "name")->valuestring;
        if (st == OURO_OK) {
            int k = 0;
            while (k < r.n_ids && k < nref && r.ids[k] == ref[k])
                k++;
            greedy_tok += k;
            greedy_all += nref;
            greedy_same += k == nref && r.n_ids == nref;
            if (k < nref)
                check_note("%s/%s: %s greedy tokens differ from token %d on", name, cname, label, k + 1);
            if (greedy_must_hold(name, cname)) {
                must++;
                must_same += k == nref && r.n_ids == nref;
            }
        } else {
            check_note("%s: %s", name, e.message);
            failed++;
        }
        ouro_gen_result_clear(&r);
        ouro_session_free(s);
        free(ids);
        free(ref);
        free(seq);
    }
    check_note("%s %s: max logit error %.4f, top-1 %d/%d, greedy cases identical %d/%d, "
               "greedy tokens before the first difference %d/%d", name, label, worst, top1, modes,
               greedy_same, nc, greedy_tok, greedy_all);
    check(failed == 0, "%s: %s forward and generate run (%d failed)", name, label, failed);
    check(worst <= tol, "%s: %s logits within %g (worst %.4f)", name, label, tol, worst);
    check(modes > 0 && top1 >= top1_min * modes, "%s: %s top-1 id as the reference in at least %.0f%% "
          "of the cases and modes (%d/%d)", name, label, top1_min * 100, top1, modes);
    check(must_same == must, "%s: %s 12 greedy tokens as the reference (%d/%d cases that hold)",
          name, label, must_same, must);
    check(greedy_same >= greedy_min, "%s: %s greedy cases identical to the reference: %d, at least %d",
          name, label, greedy_same, greedy_min);
    free(logits);
}

/* Products with no inputs (d_in = 0): every output is the empty sum, 0, on
 * every path (tiles, AVX-512, AVX2, portable) and precision, and the gated
 * form gives silu(0) * 0 = 0; no weight is read. */
static void check_empty_inner(void)
{
    static const ouro_dtype dts[] = { OURO_F32, OURO_F16, OURO_BF16 };
    static const ouro_precision precs[] = { OURO_PRECISION_EXACT, OURO_PRECISION_BF16,
                                            OURO_PRECISION_INVARIANT };
    static const int ns[] = { 1, 3, 40 };
    enum { D_OUT = 20, NMAX = 40 };
    static float y[NMAX * D_OUT], tmp[NMAX * D_OUT], x[1], w[1];
    int bad = 0, runs = 0;
    for (size_t di = 0; di < 3; di++)
        for (size_t pi = 0; pi < 3; pi++)
            for (size_t ni = 0; ni < 3; ni++) {
                int n = ns[ni];
                for (int glu = 0; glu < 2; glu++) {
                    for (int i = 0; i < n * D_OUT; i++)
                        y[i] = 7.0f;
                    if (glu)
                        ouro_matmul_glu(y, tmp, x, w, w, dts[di], n, 0, D_OUT, 2, precs[pi], NULL);
                    else
                        ouro_matmul_prec(y, x, w, dts[di], n, 0, D_OUT, 2, precs[pi], NULL);
                    runs++;
                    for (int i = 0; i < n * D_OUT; i++)
                        if (y[i] != 0.0f) {
                            bad++;
                            break;
                        }
                }
            }
    check(bad == 0, "d_in = 0: every output 0, plain and gated (%d of %d runs wrong)", bad, runs);
}

/* The rows of a product are shared among the threads in chunks (each thread
 * its own share first, then the others'): whatever the number of threads, and
 * with a team smaller than asked for (omp_set_dynamic lets the runtime give
 * fewer), every row is computed once and gets the bits it gets on one
 * thread, for every weight format, one token and several, plain, several
 * outputs and gated. */
static void check_thread_shares(void)
{
    static const ouro_dtype dts[] = { OURO_F32, OURO_BF16, OURO_Q8, OURO_Q4 };
    static const int threads[] = { 2, 3, 7 };
    enum { D_IN = 96, D_OUT = 1000, NMAX = 3 };
    float *wf = malloc(sizeof(float) * D_IN * 1008), *x = malloc(sizeof(float) * NMAX * D_IN);
    float *y1 = malloc(sizeof(float) * NMAX * D_OUT * 3), *y = malloc(sizeof(float) * NMAX * D_OUT * 3);
    float *t1 = malloc(sizeof(float) * NMAX * D_OUT), *t = malloc(sizeof(float) * NMAX * D_OUT);
    void *w = aligned_alloc(64, ouro_q8_bytes(1008, D_IN) + sizeof(float) * D_IN * 1008);
    for (int i = 0; i < D_IN * 1008; i++)
        wf[i] = frand();
    for (int i = 0; i < NMAX * D_IN; i++)
        x[i] = frand();
    int bad = 0, runs = 0;
    for (int dyn = 0; dyn < 2; dyn++) {
#ifdef _OPENMP
        omp_set_dynamic(dyn);
#endif
        for (size_t di = 0; di < sizeof dts / sizeof *dts; di++) {
            ouro_dtype dt = dts[di];
            size_t gb = dt == OURO_Q8 ? ouro_q8_group_bytes(D_IN) : ouro_q4_group_bytes(D_IN);
            for (int g = 0; g < 1008 / 16; g++) {
                int nr = D_OUT - g * 16 < 16 ? D_OUT - g * 16 : 16;
                if (dt == OURO_Q8)
                    ouro_q8_quantize_group((uint8_t *)w + g * gb, wf + (size_t)g * 16 * D_IN, nr, D_IN);
                else if (dt == OURO_Q4)
                    ouro_q4_quantize_group((uint8_t *)w + g * gb, wf + (size_t)g * 16 * D_IN, nr, D_IN);
            }
            for (int i = 0; i < D_OUT * D_IN && (dt == OURO_F32 || dt == OURO_BF16); i++) {
                if (dt == OURO_F32)
                    ((float *)w)[i] = wf[i];
                else {
                    uint32_t u;
                    memcpy(&u, &wf[i], 4);
                    ((uint16_t *)w)[i] = (uint16_t)(u >> 16);
                }
            }
            for (int n = 1; n <= NMAX; n += 2)
                for (int ti = -1; ti < (int)(sizeof threads / sizeof *threads); ti++) {
                    int nt = ti < 0 ? 1 : threads[ti];
                    float *yy = ti < 0 ? y1 : y, *tt = ti < 0 ? t1 : t;
                    for (int i = 0; i < NMAX * D_OUT * 3; i++)
                        yy[i] = NAN;
                    ouro_mm_out outs[3] = {
                        { yy, w, dt, D_OUT }, { yy + NMAX * D_OUT, w, dt, 500 },
                        { yy + 2 * NMAX * D_OUT, w, dt, 17 },
                    };
                    ouro_matmul_multi(outs, 3, x, n, D_IN, nt, OURO_PRECISION_EXACT, NULL);
                    ouro_matmul_glu(tt, yy + NMAX * D_OUT * 2 + 17 * NMAX, x, w, w, dt, n, D_IN, 400, nt,
                                    OURO_PRECISION_EXACT, NULL);
                    if (ti < 0)
                        continue;
                    runs++;
                    bool same = true;
                    for (int i = 0; i < n * D_OUT; i++)
                        same = same && !isnan(y[i]) && memcmp(&y[i], &y1[i], 4) == 0;
                    for (int i = 0; i < n * 500; i++)
                        same = same && !isnan(y[NMAX * D_OUT + i])
                               && memcmp(&y[NMAX * D_OUT + i], &y1[NMAX * D_OUT + i], 4) == 0;
                    for (int i = 0; i < n * 17; i++)
                        same = same && !isnan(y[2 * NMAX * D_OUT + i])
                               && memcmp(&y[2 * NMAX * D_OUT + i], &y1[2 * NMAX * D_OUT + i], 4) == 0;
                    for (int i = 0; i < n * 400; i++)
                        same = same && !isnan(t[i]) && memcmp(&t[i], &t1[i], 4) == 0;
                    bad += !same;
                }
        }
    }
#ifdef _OPENMP
    omp_set_dynamic(0);
#endif
    check(bad == 0, "products on 2, 3 and 7 threads (teams as asked and as the runtime gives) equal "
          "those on one thread, every row written (%d of %d runs differ)", bad, runs);
    free(wf);
    free(x);
    free(y1);
    free(y);
    free(t1);
    free(t);
    free(w);
}

int main(void)
{
    check_products();
    check_empty_inner();
    check_thread_shares();
    check_invariant();
    char tmp[256];
    if (!check(check_tmpdir(tmp, sizeof tmp, "ouro-test-q8") != NULL, "a temporary folder for the q8 models"))
        return check_done();
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
        char dir[256], path[300];
        snprintf(dir, sizeof dir, "test/data/models/%s", models[k]);
        snprintf(path, sizeof path, "%s/expected.json", dir);
        ouro_model *m = NULL;
        ouro_error e;
        if (!check(ouro_model_load(dir, &m, &e) == OURO_OK, "%s: loads", models[k])) {
            check_note("%s", e.message);
            continue;
        }
        cJSON *exp = check_read_json(path);
        if (check(exp != NULL, "%s: expected.json", models[k]))
            check_approx_model("bf16", models[k], m, cJSON_GetObjectItem(exp, "cases"),
                               OURO_PRECISION_BF16, BF16_LOGIT_TOL, 1.0, greedy_must_hold_bf16, 0);
        ouro_model_free(m);
        /* the same model converted to q8 */
        char q8dir[512];
        snprintf(q8dir, sizeof q8dir, "%s/%s", tmp, models[k]);
        ouro_model *mq = NULL;
        if (check(ouro_convert_q8(dir, q8dir, 2, &e) == OURO_OK
                  && ouro_model_load(q8dir, &mq, &e) == OURO_OK, "%s: converts to q8 and loads", models[k])
            && exp)
            check_approx_model("q8", models[k], mq, cJSON_GetObjectItem(exp, "cases"),
                               OURO_PRECISION_EXACT, Q8_LOGIT_TOL, Q8_TOP1_MIN, greedy_must_hold_q8,
                               q8_greedy_min[k]);
        else
            check_note("%s", e.message);
        ouro_model_free(mq);
        check_remove_tree(q8dir);
        /* and to q4 */
        mq = NULL;
        if (check(ouro_convert_q4(dir, q8dir, 2, &e) == OURO_OK
                  && ouro_model_load(q8dir, &mq, &e) == OURO_OK, "%s: converts to q4 and loads", models[k])
            && exp)
            check_approx_model("q4", models[k], mq, cJSON_GetObjectItem(exp, "cases"),
                               OURO_PRECISION_EXACT, Q4_LOGIT_TOL, Q4_TOP1_MIN, greedy_must_hold_q8,
                               q4_greedy_min[k]);
        else
            check_note("%s", e.message);
        ouro_model_free(mq);
        cJSON_Delete(exp);
        check_remove_tree(q8dir);
    }
    rmdir(tmp);
    return check_done();
}

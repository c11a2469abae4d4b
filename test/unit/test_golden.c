/*
 * test_golden.c -- the forward pass, generation and adaptive depth against the
 * reference outputs of the upstream code (test/data/models/<name>/expected.json
 * and expected_adaptive.json; see test/data/README.md).
 *
 * For each model and case:
 *   - every exit mode: logits of the last position within 2e-3 at the 20 top
 *     and 64 probe ids, the log-sum-exp within 2e-3, the same top-1 id and set
 *     of top-5 ids; the exit pdf of every position within 1e-4;
 *   - the 12 greedy tokens, decoded with the KV cache, identical (alone, and
 *     with every case of the model decoded together in one batch, with small
 *     forward chunks);
 *   - a prompt in one forward call and one token per call: every position's
 *     exit pdf the same bits (ouro_depth), with f32 and f16 caches, and at
 *     bf16 precision too on bf16 weights where precision auto is bf16;
 *   - expected_adaptive.json: every robust case gives the reference new ids
 *     and exit steps in all six depth / cache modes;
 *   - q8 and q4 copies of every model (ouro_convert_q8 / _q4 into a temporary
 *     folder): a prompt in one call and one token per call the same bits.
 *     One token per call runs the one-token kernels (q8k_4x1, q4k_4x1), a
 *     prompt the batched ones, and the two agree only if every q8 / q4 path
 *     sums in the one order the formats define.
 *
 * Run from the repository root (test/run.sh does).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "ouro.h"
#include "golden.h"

static const char *models[] = { "tiny-mha-bf16", "tiny-gqa-f32-tied", "tiny-mqa-f16-sharded" };

#define LOGIT_TOL 2e-3
#define PDF_TOL 1e-4

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */


/* Indices of the k largest logits (k <= 8), in order. */
static void top_k(const float *logits, int V, int k, int *out)
{
    for (int i = 0; i < k; i++)
        out[i] = -1;
    for (int j = 0; j < V; j++) {
        int pos = k;
        while (pos > 0 && (out[pos - 1] < 0 || logits[j] > logits[out[pos - 1]]))
            pos--;
        if (pos < k) {
            memmove(out + pos + 1, out + pos, (size_t)(k - pos - 1) * sizeof *out);
            out[pos] = j;
        }
    }
}

/* ------------------------------------------------------------------------
 * Logits and exit pdf, every mode
 * ------------------------------------------------------------------------ */

static void check_logits(const char *name, ouro_model *m, const cJSON *cs)
{
    const ouro_config *c = ouro_model_config(m);
    int V = c->vocab_size, T = c->total_ut_steps;
    const char *cname = cJSON_GetObjectItem(cs, "name")->valuestring;
    int32_t *ids;
    int n = json_ints(cJSON_GetObjectItem(cs, "input_ids"), &ids);
    const cJSON *modes = cJSON_GetObjectItem(cs, "logits");
    const cJSON *ref_pdf = cJSON_GetObjectItem(cs, "exit_pdf");

    float *logits = malloc((size_t)V * sizeof(float));
    float *pdf = malloc((size_t)n * T * sizeof(float));
    int32_t *seq = calloc((size_t)n, sizeof(int32_t));
    uint8_t *want = malloc((size_t)n);
    memset(want, 1, (size_t)n);
    const cJSON *md;
    cJSON_ArrayForEach(md, modes) {
        ouro_session *s = NULL;
        ouro_error e;
        ouro_session_options so = { .n_ctx = n, .threads = 2 };
        if (!check(ouro_session_new(m, &so, &s, &e) == OURO_OK, "%s/%s: session", name, cname))
            break;
        ouro_forward_options fo = { .exit = mode_exit(md->string) };
        /* all but the last position: exit pdf only; the last: logits too */
        ouro_status st = OURO_OK;
        if (n > 1) {
            ouro_batch b = { .n = n - 1, .token = ids, .seq = seq, .want = want };
            ouro_outputs out = { .exit_pdf = pdf };
            st = ouro_session_forward(s, &b, &fo, &out, &e);
        }
        if (st == OURO_OK) {
            ouro_batch b = { .n = 1, .token = ids + n - 1, .seq = seq };
            ouro_outputs out = { .logits = logits, .exit_pdf = pdf + (size_t)(n - 1) * T };
            st = ouro_session_forward(s, &b, &fo, &out, &e);
        }
        ouro_session_free(s);
        if (!check(st == OURO_OK, "%s/%s/%s: forward", name, cname, md->string)) {
            check_note("%s", e.message);
            continue;
        }
        double worst = 0;
        const char *parts[][2] = { { "top_ids", "top_logits" }, { "probe_ids", "probe_logits" } };
        for (int p = 0; p < 2; p++) {
            const cJSON *pi = cJSON_GetObjectItem(md, parts[p][0]);
            const cJSON *pl = cJSON_GetObjectItem(md, parts[p][1]);
            for (int i = 0; i < cJSON_GetArraySize(pi); i++) {
                int id = cJSON_GetArrayItem(pi, i)->valueint;
                double d = fabs(logits[id] - cJSON_GetArrayItem(pl, i)->valuedouble);
                if (d > worst)
                    worst = d;
            }
        }
        check(worst <= LOGIT_TOL, "%s/%s/%s: logits within %g (worst %.2e)", name, cname,
              md->string, LOGIT_TOL, worst);
        double lse = 0, mx = logits[0];
        for (int j = 1; j < V; j++)
            if (logits[j] > mx)
                mx = logits[j];
        for (int j = 0; j < V; j++)
            lse += exp(logits[j] - mx);
        lse = mx + log(lse);
        double ref_lse = cJSON_GetObjectItem(md, "logsumexp")->valuedouble;
        check(fabs(lse - ref_lse) <= LOGIT_TOL, "%s/%s/%s: logsumexp %.5f vs %.5f", name, cname,
              md->string, lse, ref_lse);
        int top[5];
        top_k(logits, V, 5, top);
        const cJSON *ti = cJSON_GetObjectItem(md, "top_ids");
        int same = 0;
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < 5; k++)
                same += top[i] == cJSON_GetArrayItem(ti, k)->valueint;
        check(top[0] == cJSON_GetArrayItem(ti, 0)->valueint && same == 5,
              "%s/%s/%s: same top-1 id and top-5 set", name, cname, md->string);
        double pworst = 0;
        for (int i = 0; i < n; i++)
            for (int t = 0; t < T; t++) {
                double r = cJSON_GetArrayItem(cJSON_GetArrayItem(ref_pdf, i), t)->valuedouble;
                double d = fabs(pdf[(size_t)i * T + t] - r);
                if (d > pworst)
                    pworst = d;
            }
        check(pworst <= PDF_TOL, "%s/%s/%s: exit pdf within %g (worst %.2e)", name, cname,
              md->string, PDF_TOL, pworst);
    }
    free(logits);
    free(pdf);
    free(seq);
    free(want);
    free(ids);
}

/* ------------------------------------------------------------------------
 * A prompt in one call, or one token at a time: the same bits
 * ------------------------------------------------------------------------ */

/* The exit pdf of every position of a prompt (the first case of 30 tokens or
 * more) is the same bits whether the prompt goes through in one forward call
 * (attention takes its rows four at a time) or one token per call (one row
 * at a time), with f32 and f16 caches.  ouro_depth's products sum in one
 * order whatever the number of tokens in a call, so that attention is what
 * the two ways could differ in. */
static void check_rows_alone(const char *name, ouro_model *m, const cJSON *cases, ouro_precision prec)
{
    int32_t *ids = NULL;
    int n = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        n = json_ints(cJSON_GetObjectItem(cs, "input_ids"), &ids);
        if (n >= 30)
            break;
        free(ids);
        ids = NULL;
    }
    if (!check(ids != NULL, "%s: a case of 30 tokens or more", name))
        return;
    int T = ouro_model_config(m)->total_ut_steps;
    for (int kv = 0; kv < 2; kv++) {
        ouro_status st = OURO_OK;
        ouro_error e = { 0 };
        float *pdf[2];
        double *ex[2];
        for (int way = 0; way < 2; way++) {
            pdf[way] = calloc((size_t)n * T, sizeof(float));
            ex[way] = calloc((size_t)n, sizeof(double));
            ouro_session *s = NULL;
            ouro_session_options so = { .n_ctx = n, .threads = 2, .max_batch = way ? 1 : 0,
                                        .kv_type = kv ? OURO_KV_F16 : OURO_KV_F32,
                                        .precision = prec };
            if (st == OURO_OK)
                st = ouro_session_new(m, &so, &s, &e);
            if (st == OURO_OK && ouro_session_max_loops(s) != T)
                st = OURO_ERR_ARG;
            if (st == OURO_OK)
                st = ouro_depth(s, ids, n, 0.5f, pdf[way], ex[way], NULL, NULL, NULL, &e);
            ouro_session_free(s);
        }
        if (check(st == OURO_OK, "%s: ouro_depth, %s cache", name, kv ? "f16" : "f32"))
            check(memcmp(pdf[0], pdf[1], (size_t)n * T * sizeof(float)) == 0
                  && memcmp(ex[0], ex[1], (size_t)n * sizeof(double)) == 0,
                  "%s: a prompt of %d tokens in one call gives every position the exit pdf of "
                  "one token per call, bit for bit (%s cache%s)", name, n, kv ? "f16" : "f32",
                  prec == OURO_PRECISION_BF16 ? ", precision bf16" : "");
        else
            check_note("%s", e.message);
        for (int way = 0; way < 2; way++) {
            free(pdf[way]);
            free(ex[way]);
        }
    }
    free(ids);
}

/* ------------------------------------------------------------------------
 * Greedy decoding with the KV cache, alone and batched
 * ------------------------------------------------------------------------ */

static void check_greedy(const char *name, ouro_model *m, const cJSON *cases)
{
    int nc = cJSON_GetArraySize(cases);
    int32_t **prompts = calloc((size_t)nc, sizeof *prompts);
    int *lens = calloc((size_t)nc, sizeof *lens);
    int32_t **ref = calloc((size_t)nc, sizeof *ref);
    int *nref = calloc((size_t)nc, sizeof *nref);
    for (int i = 0; i < nc; i++) {
        const cJSON *cs = cJSON_GetArrayItem(cases, i);
        lens[i] = json_ints(cJSON_GetObjectItem(cs, "input_ids"), &prompts[i]);
        nref[i] = json_ints(cJSON_GetObjectItem(cs, "greedy_new_ids"), &ref[i]);
    }
    ouro_gen_params gp = { .max_tokens = 12 };
    ouro_error e;

    /* one request at a time */
    for (int i = 0; i < nc; i++) {
        const char *cname = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "name")->valuestring;
        const char *ref_text = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "greedy_text")->valuestring;
        ouro_session *s = NULL;
        ouro_session_options so = { .n_ctx = lens[i] + 12, .threads = 2 };
        ouro_gen_result r = {0};
        ouro_status st = ouro_session_new(m, &so, &s, &e);
        if (st == OURO_OK)
            st = ouro_generate(s, 1, (const int32_t *const *)&prompts[i], &lens[i], &gp, &r, &e);
        if (check(st == OURO_OK, "%s/%s: generate", name, cname)) {
            check(r.n_ids == nref[i] && memcmp(r.ids, ref[i], (size_t)nref[i] * sizeof(int32_t)) == 0,
                  "%s/%s: 12 greedy tokens with the KV cache", name, cname);
            check(r.text && strcmp(r.text, ref_text) == 0, "%s/%s: greedy text", name, cname);
            check(r.stop_reason == OURO_STOP_LENGTH, "%s/%s: stop reason length", name, cname);
        } else {
            check_note("%s", e.message);
        }
        ouro_gen_result_clear(&r);
        ouro_session_free(s);
    }

    /* stop strings, spanning token boundaries: the text ends where the
     * string first appears in the greedy text */
    for (int i = 0; i < nc; i++) {
        const char *ref_text = cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "greedy_text")->valuestring;
        size_t rl = strlen(ref_text);
        if (rl < 12)
            continue;
        char stop[16];
        memcpy(stop, ref_text + rl / 2 - 4, 8);   /* 8 bytes from the middle of the text */
        stop[8] = 0;
        if (strchr(stop, (char)0xEF) || (stop[0] & 0xC0) == 0x80 || (stop[7] & 0x80))
            continue;   /* keep the stop string whole characters */
        const char *want_end = strstr(ref_text, stop);
        const char *stops[1] = { stop };
        ouro_gen_params gs = { .max_tokens = 12, .stop = stops, .n_stop = 1 };
        ouro_session *s = NULL;
        ouro_session_options so = { .n_ctx = lens[i] + 12, .threads = 2 };
        ouro_gen_result r = {0};
        ouro_status st = ouro_session_new(m, &so, &s, &e);
        if (st == OURO_OK)
            st = ouro_generate(s, 1, (const int32_t *const *)&prompts[i], &lens[i], &gs, &r, &e);
        check(st == OURO_OK && r.stop_reason == OURO_STOP_STRING && r.text
              && r.text_len == (size_t)(want_end - ref_text) && memcmp(r.text, ref_text, r.text_len) == 0,
              "%s/%d: stop string \"%s\" ends the text where it first appears", name, i, stop);
        ouro_gen_result_clear(&r);
        ouro_session_free(s);
    }

    /* every case at once, in one batched decode, with forward chunks of 3 tokens */
    ouro_session *s = NULL;
    ouro_session_options so = { .n_ctx = 96, .n_seq = nc, .max_batch = 3, .threads = 2 };
    ouro_gen_result *rs = calloc((size_t)nc, sizeof *rs);
    ouro_status st = ouro_session_new(m, &so, &s, &e);
    if (st == OURO_OK)
        st = ouro_generate(s, nc, (const int32_t *const *)prompts, lens, &gp, rs, &e);
    if (check(st == OURO_OK, "%s: batched generate of %d prompts", name, nc)) {
        int good = 0;
        for (int i = 0; i < nc; i++)
            good += rs[i].n_ids == nref[i]
                    && memcmp(rs[i].ids, ref[i], (size_t)nref[i] * sizeof(int32_t)) == 0;
        check(good == nc, "%s: batched decode gives every case's greedy tokens (%d/%d)", name, good, nc);
    } else {
        check_note("%s", e.message);
    }
    for (int i = 0; i < nc; i++)
        ouro_gen_result_clear(&rs[i]);
    free(rs);
    ouro_session_free(s);

    /* the 16-bit cache (approximate): the same greedy tokens */
    s = NULL;
    ouro_session_options so16 = { .n_ctx = 96, .n_seq = nc, .kv_type = OURO_KV_F16, .threads = 2 };
    rs = calloc((size_t)nc, sizeof *rs);
    st = ouro_session_new(m, &so16, &s, &e);
    if (st == OURO_OK)
        st = ouro_generate(s, nc, (const int32_t *const *)prompts, lens, &gp, rs, &e);
    if (check(st == OURO_OK, "%s: generate with the f16 KV cache", name)) {
        int good = 0;
        for (int i = 0; i < nc; i++)
            good += rs[i].n_ids == nref[i]
                    && memcmp(rs[i].ids, ref[i], (size_t)nref[i] * sizeof(int32_t)) == 0;
        check(good == nc, "%s: the f16 KV cache gives every case's greedy tokens (%d/%d)", name, good, nc);
        check(ouro_session_kv_bytes(s) * 2 == (size_t)2 * 4 * ouro_model_config(m)->num_layers
              * ouro_model_config(m)->num_kv_heads * ouro_model_config(m)->head_dim
              * ouro_session_max_loops(s) * 96 * nc,
              "%s: the f16 cache holds 2 bytes per entry (%zu bytes)", name, ouro_session_kv_bytes(s));
    }
    for (int i = 0; i < nc; i++)
        ouro_gen_result_clear(&rs[i]);
    free(rs);
    ouro_session_free(s);

    /* two waves through a session of 2 sequences */
    s = NULL;
    ouro_session_options so2 = { .n_ctx = 96, .n_seq = 2, .threads = 1 };
    rs = calloc((size_t)nc, sizeof *rs);
    st = ouro_session_new(m, &so2, &s, &e);
    if (st == OURO_OK)
        st = ouro_generate(s, nc, (const int32_t *const *)prompts, lens, &gp, rs, &e);
    if (check(st == OURO_OK, "%s: %d prompts in waves of 2", name, nc)) {
        int good = 0;
        for (int i = 0; i < nc; i++)
            good += rs[i].n_ids == nref[i]
                    && memcmp(rs[i].ids, ref[i], (size_t)nref[i] * sizeof(int32_t)) == 0;
        check(good == nc, "%s: waves give every case's greedy tokens (%d/%d)", name, good, nc);
    }
    for (int i = 0; i < nc; i++)
        ouro_gen_result_clear(&rs[i]);
    free(rs);
    ouro_session_free(s);

    for (int i = 0; i < nc; i++) {
        free(prompts[i]);
        free(ref[i]);
    }
    free(prompts);
    free(lens);
    free(ref);
    free(nref);
}

/* ------------------------------------------------------------------------
 * Adaptive depth and the decode caches (expected_adaptive.json)
 * ------------------------------------------------------------------------ */

typedef struct adaptive_mode {
    const char *name;
    ouro_depth_mode depth;
    float threshold;         /* < 0: the default exit */
    ouro_kv_mode kv;
} adaptive_mode;

static const adaptive_mode adaptive_modes[] = {
    { "full_copy", OURO_DEPTH_FULL, -1, OURO_KV_PER_STEP },
    { "q0.5_copy", OURO_DEPTH_ADAPTIVE, 0.5f, OURO_KV_PER_STEP },
    { "q0.8_copy", OURO_DEPTH_ADAPTIVE, 0.8f, OURO_KV_PER_STEP },
    { "full_last", OURO_DEPTH_FULL, -1, OURO_KV_LAST },
    { "full_avg", OURO_DEPTH_FULL, -1, OURO_KV_AVG },
    { "q0.5_last", OURO_DEPTH_ADAPTIVE, 0.5f, OURO_KV_LAST },
};

static void check_adaptive(const char *name, ouro_model *m, const cJSON *cases)
{
    int nc = cJSON_GetArraySize(cases);
    for (size_t mi = 0; mi < sizeof adaptive_modes / sizeof *adaptive_modes; mi++) {
        const adaptive_mode *am = &adaptive_modes[mi];
        int robust = 0, exact = 0, nonrobust_same = 0;
        for (int i = 0; i < nc; i++) {
            const cJSON *cs = cJSON_GetArrayItem(cases, i);
            const cJSON *md = cJSON_GetObjectItem(cJSON_GetObjectItem(cs, "modes"), am->name);
            if (!md)
                continue;
            int32_t *ids, *ref_ids, *ref_steps;
            int n = json_ints(cJSON_GetObjectItem(cs, "input_ids"), &ids);
            int nr = json_ints(cJSON_GetObjectItem(md, "new_ids"), &ref_ids);
            json_ints(cJSON_GetObjectItem(md, "exit_steps"), &ref_steps);
            bool is_robust = cJSON_IsTrue(cJSON_GetObjectItem(md, "robust"));

            ouro_session *s = NULL;
            ouro_error e;
            ouro_session_options so = { .n_ctx = n + nr, .kv = am->kv, .threads = 2 };
            ouro_gen_params gp = { .max_tokens = nr, .depth = am->depth };
            if (am->threshold >= 0) {
                gp.exit.kind = OURO_EXIT_THRESHOLD;
                gp.exit.threshold = am->threshold;
            }
            ouro_gen_result r = {0};
            ouro_status st = ouro_session_new(m, &so, &s, &e);
            if (st == OURO_OK)
                st = ouro_generate(s, 1, (const int32_t *const *)&ids, &n, &gp, &r, &e);
            bool same = st == OURO_OK && r.n_ids == nr
                        && memcmp(r.ids, ref_ids, (size_t)nr * sizeof(int32_t)) == 0
                        && memcmp(r.exit_steps, ref_steps, (size_t)nr * sizeof(int32_t)) == 0;
            if (st != OURO_OK)
                check_note("%s/%s: %s", name, am->name, e.message);
            if (is_robust) {
                robust++;
                exact += same;
                if (!same)
                    check_note("%s/%s/%s differs", name, am->name,
                               cJSON_GetObjectItem(cs, "name")->valuestring);
            } else {
                nonrobust_same += same;
            }
            ouro_gen_result_clear(&r);
            ouro_session_free(s);
            free(ids);
            free(ref_ids);
            free(ref_steps);
        }
        check(exact == robust, "%s/%s: new ids and exit steps of every robust case (%d/%d; "
              "%d of %d non-robust cases also equal)", name, am->name, exact, robust,
              nonrobust_same, nc - robust);

        /* every case in one batched decode: tokens of one batch stop at
         * different steps; each sequence gives what it gives alone */
        int32_t **prompts = calloc((size_t)nc, sizeof *prompts);
        int *lens = calloc((size_t)nc, sizeof *lens);
        ouro_gen_result *alone = calloc((size_t)nc, sizeof *alone);
        ouro_gen_result *batched = calloc((size_t)nc, sizeof *batched);
        ouro_gen_params gp = { .max_tokens = 12, .depth = am->depth };
        if (am->threshold >= 0) {
            gp.exit.kind = OURO_EXIT_THRESHOLD;
            gp.exit.threshold = am->threshold;
        }
        ouro_status st = OURO_OK;
        ouro_error e;
        for (int i = 0; i < nc; i++)
            lens[i] = json_ints(cJSON_GetObjectItem(cJSON_GetArrayItem(cases, i), "input_ids"), &prompts[i]);
        for (int i = 0; i < nc && st == OURO_OK; i++) {
            ouro_session *s = NULL;
            ouro_session_options so = { .n_ctx = 96, .kv = am->kv, .threads = 1 };
            st = ouro_session_new(m, &so, &s, &e);
            if (st == OURO_OK)
                st = ouro_generate(s, 1, (const int32_t *const *)&prompts[i], &lens[i], &gp, &alone[i], &e);
            ouro_session_free(s);
        }
        if (st == OURO_OK) {
            ouro_session *s = NULL;
            ouro_session_options so = { .n_ctx = 96, .n_seq = nc, .kv = am->kv, .threads = 2 };
            st = ouro_session_new(m, &so, &s, &e);
            if (st == OURO_OK)
                st = ouro_generate(s, nc, (const int32_t *const *)prompts, lens, &gp, batched, &e);
            ouro_session_free(s);
        }
        int same = 0, mixed = 0;
        for (int i = 0; i < nc && st == OURO_OK; i++) {
            same += alone[i].n_ids == batched[i].n_ids
                    && memcmp(alone[i].ids, batched[i].ids, (size_t)alone[i].n_ids * 4) == 0
                    && memcmp(alone[i].exit_steps, batched[i].exit_steps, (size_t)alone[i].n_ids * 4) == 0;
            for (int j = 1; j < batched[i].n_ids; j++)
                mixed |= batched[i].exit_steps[j] != batched[0].exit_steps[j < batched[0].n_ids ? j : 0];
        }
        check(st == OURO_OK && same == nc, "%s/%s: a batch of %d sequences decodes as each alone "
              "(%d/%d%s)", name, am->name, nc, same, nc, mixed ? ", steps differ within the batch" : "");
        for (int i = 0; i < nc; i++) {
            ouro_gen_result_clear(&alone[i]);
            ouro_gen_result_clear(&batched[i]);
            free(prompts[i]);
        }
        free(prompts);
        free(lens);
        free(alone);
        free(batched);
    }

    /* the decode caches: last and avg hold a quarter of per-step for 4 steps */
    size_t bytes[3] = {0};
    for (int kv = 0; kv < 3; kv++) {
        ouro_session *s = NULL;
        ouro_session_options so = { .n_ctx = 64, .kv = (ouro_kv_mode)kv, .threads = 1 };
        if (ouro_session_new(m, &so, &s, NULL) == OURO_OK)
            bytes[kv] = ouro_session_kv_bytes(s);
        ouro_session_free(s);
    }
    int T = ouro_model_config(m)->total_ut_steps;
    check(bytes[0] > 0 && bytes[1] * (size_t)T == bytes[0],
          "%s: the last cache holds 1/%d of the per-step cache (%zu vs %zu bytes)", name, T,
          bytes[1], bytes[0]);
    check(bytes[2] > 0 && bytes[2] <= bytes[0] / 2,
          "%s: the avg cache holds at most half the per-step cache (%zu vs %zu bytes)", name,
          bytes[2], bytes[0]);
}

/* The rows-alone check on q8 and q4 copies of model `name`, written into tmp. */
static void check_quantized(const char *name, const char *tmp)
{
    for (int q = 0; q < 2; q++) {
        char src[256], dst[512], label[128], path[512];
        snprintf(src, sizeof src, "test/data/models/%s", name);
        snprintf(dst, sizeof dst, "%s/%s-%s", tmp, name, q ? "q4" : "q8");
        snprintf(label, sizeof label, "%s %s", name, q ? "q4" : "q8");
        ouro_error e = { 0 };
        ouro_model *m = NULL;
        ouro_status st = q ? ouro_convert_q4(src, dst, 1, &e) : ouro_convert_q8(src, dst, 1, &e);
        if (st == OURO_OK)
            st = ouro_model_load(dst, &m, &e);
        if (check(st == OURO_OK, "%s: converted and loaded", label)) {
            snprintf(path, sizeof path, "%s/expected.json", src);
            cJSON *ex = check_read_json(path);
            check_rows_alone(label, m, cJSON_GetObjectItem(ex, "cases"), OURO_PRECISION_EXACT);
            cJSON_Delete(ex);
        } else {
            check_note("%s", e.message);
        }
        ouro_model_free(m);
        check_remove_tree(dst);
    }
}

int main(void)
{
    for (size_t k = 0; k < sizeof models / sizeof *models; k++) {
        char dir[256], path[512];
        snprintf(dir, sizeof dir, "test/data/models/%s", models[k]);
        ouro_model *m = NULL;
        ouro_error e;
        if (!check(ouro_model_load(dir, &m, &e) == OURO_OK, "%s: loads", models[k])) {
            check_note("%s", e.message);
            continue;
        }
        snprintf(path, sizeof path, "%s/expected.json", dir);
        cJSON *ex = check_read_json(path);
        const cJSON *cases = cJSON_GetObjectItem(ex, "cases");
        if (check(cJSON_GetArraySize(cases) > 0, "%s: expected.json has cases", models[k])) {
            const cJSON *cs;
            cJSON_ArrayForEach(cs, cases)
                check_logits(models[k], m, cs);
            check_greedy(models[k], m, cases);
            check_rows_alone(models[k], m, cases, OURO_PRECISION_EXACT);
            /* bf16 precision on bf16 weights, where precision auto takes it, sums in
             * one order too (other weights take the exact path, in its decode order) */
            if (ouro_precision_resolve(OURO_PRECISION_AUTO) == OURO_PRECISION_BF16
                && ouro_model_config(m)->dtype == OURO_BF16)
                check_rows_alone(models[k], m, cases, OURO_PRECISION_BF16);
        }
        cJSON_Delete(ex);

        snprintf(path, sizeof path, "%s/expected_adaptive.json", dir);
        cJSON *ad = check_read_json(path);
        const cJSON *acases = cJSON_GetObjectItem(ad, "cases");
        if (check(cJSON_GetArraySize(acases) > 0, "%s: expected_adaptive.json has cases", models[k]))
            check_adaptive(models[k], m, acases);
        cJSON_Delete(ad);
        ouro_model_free(m);
    }

    char tmp[256];
    if (check(check_tmpdir(tmp, sizeof tmp, "ouro-golden") != NULL,
              "a temporary folder for the q8 and q4 copies")) {
        for (size_t k = 0; k < sizeof models / sizeof *models; k++)
            check_quantized(models[k], tmp);
        rmdir(tmp);
    }
    return check_done();
}

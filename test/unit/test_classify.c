/*
 * test_classify.c -- classification and batched generation agree with their
 * one-at-a-time forms.
 *
 *   - ouro_classify_batch over many inputs (shared prompt prefix computed once,
 *     inputs in waves, label groups) gives the probabilities of one
 *     ouro_classify per input to 1e-9 (the products sum in an order that does
 *     not depend on the batch), for sessions of 1, 2, 4 and 16 sequences, with
 *     labels of one and of several tokens;
 *   - the probabilities sum to 1 and agree with the label log-probabilities
 *     computed by hand from single forward calls;
 *   - bad labels are errors, and their messages count items from 1;
 *   - ouro_generate's progress callback ends at every request done, with the
 *     tokens generated;
 *   - ouro_classify_n_ctx gives the exact context a classification needs: a
 *     session of that n_ctx runs it, one token less is a context error;
 *   - ouro_depth_batch gives every input the exit pdf, expected and Q-exit
 *     steps of one ouro_depth, bit for bit, whatever the sequences and the
 *     tokens per forward call (inputs spanning calls, inputs in waves); an
 *     input too long or without tokens is an error naming it.
 *
 * Run from the repository root (test/run.sh does).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ouro.h"

#define N_IN 5
#define N_LAB 4

static const char *inputs[N_IN] = {
    "I loved this film, the acting was wonderful.",
    "Terrible service, I will never come back.",
    "The package arrived on Tuesday.",
    "x",
    "A much longer input that goes on for a while, with numbers 12345 and punctuation!?",
};
static const char *labels[N_LAB] = { "positive", "negative", "neutral", "not sure at all" };

/* log-softmax of logits (V) at id */
static double log_prob(const float *l, int V, int id)
{
    double mx = l[0], s = 0;
    for (int j = 1; j < V; j++)
        mx = l[j] > mx ? l[j] : mx;
    for (int j = 0; j < V; j++)
        s += exp(l[j] - mx);
    return l[id] - mx - log(s);
}

/* Total log-probability of `label` after `prompt`, from one forward call over
 * prompt + label with every position's logits. */
static double label_logprob_by_hand(ouro_model *m, const int32_t *p, size_t np, const char *label)
{
    const ouro_tokenizer *tok = ouro_model_tokenizer(m);
    int V = ouro_model_config(m)->vocab_size;
    int32_t *lt = NULL;
    size_t nl = 0;
    ouro_tokenizer_encode(tok, label, strlen(label), &lt, &nl, NULL);
    size_t n = np + nl - 1;
    int32_t *all = malloc(n * sizeof *all), *seq = calloc(n, sizeof *seq);
    uint8_t *want = calloc(n, 1);
    float *rows = malloc(nl * (size_t)V * sizeof(float));
    memcpy(all, p, np * sizeof *all);
    memcpy(all + np, lt, (nl - 1) * sizeof *all);
    for (size_t i = np - 1; i < n; i++)
        want[i] = 1;
    ouro_session *s = NULL;
    ouro_session_options so = { .n_ctx = (int)n, .threads = 1 };
    double total = NAN;
    if (ouro_session_new(m, &so, &s, NULL) == OURO_OK) {
        ouro_batch b = { .n = (int)n, .token = all, .seq = seq, .want = want };
        ouro_outputs o = { .logits = rows };
        if (ouro_session_forward(s, &b, NULL, &o, NULL) == OURO_OK) {
            total = 0;
            for (size_t j = 0; j < nl; j++)
                total += log_prob(rows + j * V, V, lt[j]);
        }
    }
    ouro_session_free(s);
    free(all);
    free(seq);
    free(want);
    free(rows);
    ouro_free(lt);
    return total;
}

/* What the progress callback of ouro_generate reported. */
typedef struct gen_progress {
    int calls;
    ouro_progress last;
    bool monotonic;          /* done and tokens never went back */
} gen_progress;

static void on_progress(void *ctx, const ouro_progress *p)
{
    gen_progress *g = ctx;
    if (g->calls > 0 && (p->done < g->last.done || p->tokens < g->last.tokens))
        g->monotonic = false;
    g->last = *p;
    g->calls++;
}

int main(void)
{
    ouro_model *m = NULL;
    ouro_error e;
    if (!check(ouro_model_load("test/data/models/tiny-mha-bf16", &m, &e) == OURO_OK, "model loads")) {
        check_note("%s", e.message);
        return check_done();
    }

    /* one input at a time */
    double single[N_IN][N_LAB], single_lp[N_IN][N_LAB];
    ouro_session *s1 = NULL;
    ouro_session_options so1 = { .n_ctx = 256, .n_seq = 1, .threads = 2 };
    int ok = ouro_session_new(m, &so1, &s1, &e) == OURO_OK;
    for (int k = 0; k < N_IN && ok; k++)
        ok = ouro_classify(s1, inputs[k], labels, N_LAB, NULL, NULL, single[k], single_lp[k],
                           NULL, NULL, &e) == OURO_OK;
    ouro_session_free(s1);
    if (!check(ok, "ouro_classify, one input at a time")) {
        check_note("%s", e.message);
        ouro_model_free(m);
        return check_done();
    }
    double worst_sum = 0;
    for (int k = 0; k < N_IN; k++) {
        double sum = 0;
        for (int i = 0; i < N_LAB; i++)
            sum += single[k][i];
        worst_sum = fmax(worst_sum, fabs(sum - 1));
    }
    check(worst_sum < 1e-9, "probabilities sum to 1 (worst %.1e)", worst_sum);

    /* the log-probabilities by hand, from the rendered prompt */
    const ouro_tokenizer *tok = ouro_model_tokenizer(m);
    double worst_hand = 0;
    for (int k = 0; k < 2; k++) {
        char content[512];
        snprintf(content, sizeof content, "Classify the input into one of the labels. Answer with the "
                 "label only.\n\nLabels: positive, negative, neutral, not sure at all\n\nInput: %s", inputs[k]);
        ouro_chat_message msg = { "user", content };
        char *text = NULL;
        int32_t *p = NULL;
        size_t np = 0;
        ouro_chat_render(tok, &msg, 1, true, &text, NULL);
        ouro_tokenizer_encode(tok, text, strlen(text), &p, &np, NULL);
        for (int i = 0; i < N_LAB; i++)
            worst_hand = fmax(worst_hand, fabs(label_logprob_by_hand(m, p, np, labels[i]) - single_lp[k][i]));
        ouro_free(text);
        ouro_free(p);
    }
    check(worst_hand < 1e-4, "label log-probabilities equal those computed by hand (worst %.1e)", worst_hand);

    /* batched, over sessions of several sizes */
    int sizes[] = { 1, 2, 4, 16 };
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
        double probs[N_IN][N_LAB], lp[N_IN][N_LAB];
        ouro_session *s = NULL;
        ouro_session_options so = { .n_ctx = 256, .n_seq = sizes[z], .threads = 2 };
        ok = ouro_session_new(m, &so, &s, &e) == OURO_OK
             && ouro_classify_batch(s, N_IN, inputs, labels, N_LAB, NULL, NULL, &probs[0][0], &lp[0][0],
                                    NULL, NULL, &e) == OURO_OK;
        ouro_session_free(s);
        if (!check(ok, "ouro_classify_batch with %d sequences", sizes[z])) {
            check_note("%s", e.message);
            continue;
        }
        double worst = 0, worst_p = 0;
        for (int k = 0; k < N_IN; k++)
            for (int i = 0; i < N_LAB; i++) {
                worst = fmax(worst, fabs(lp[k][i] - single_lp[k][i]));
                worst_p = fmax(worst_p, fabs(probs[k][i] - single[k][i]));
            }
        check(worst <= 1e-9 && worst_p <= 1e-9, "batched log-probabilities and probabilities with %d "
              "sequences equal one-at-a-time to 1e-9 (worst %.1e and %.1e)", sizes[z], worst, worst_p);
    }

    /* the progress callback of a batched generation */
    {
        static const int32_t p0[] = { 504, 3575, 282 }, p1[] = { 19556 }, p2[] = { 504, 19556 };
        const int32_t *ps[3] = { p0, p1, p2 };
        int pl[3] = { 3, 1, 2 };
        gen_progress gpr = { 0, { 0, 0, 0 }, true };
        ouro_gen_params gp = { .max_tokens = 5, .progress = on_progress, .progress_ctx = &gpr };
        ouro_gen_result res[3];
        ouro_session *sg = NULL;
        ouro_session_options sgo = { .n_ctx = 64, .n_seq = 2, .threads = 1 };
        ok = ouro_session_new(m, &sgo, &sg, &e) == OURO_OK
             && ouro_generate(sg, 3, ps, pl, &gp, res, &e) == OURO_OK;
        int64_t toks = 0;
        for (int r = 0; ok && r < 3; r++) {
            toks += res[r].n_ids;
            ouro_gen_result_clear(&res[r]);
        }
        ouro_session_free(sg);
        check(ok && gpr.calls >= 5 && gpr.monotonic && gpr.last.done == 3 && gpr.last.total == 3
              && gpr.last.tokens == toks,
              "ouro_generate's progress callback: %d calls, never going back, last %lld/%lld "
              "requests and %lld tokens (generated %lld)", gpr.calls, (long long)gpr.last.done,
              (long long)gpr.last.total, (long long)gpr.last.tokens, (long long)toks);
    }

    /* errors */
    ouro_session *s = NULL;
    ouro_session_options so = { .n_ctx = 256, .n_seq = 2, .threads = 1 };
    double pr[N_LAB];
    if (ouro_session_new(m, &so, &s, &e) == OURO_OK) {
        const char *dup[2] = { "a", "a" }, *empty[2] = { "a", "" };
        check(ouro_classify(s, "x", dup, 2, NULL, NULL, pr, NULL, NULL, NULL, &e) == OURO_ERR_ARG
              && strstr(e.message, "twice"), "a label given twice is an error: %s", e.message);
        check(ouro_classify(s, "x", empty, 2, NULL, NULL, pr, NULL, NULL, NULL, &e) == OURO_ERR_ARG
              && strstr(e.message, "label 2 "), "an empty label is an error naming it 1-based: %s",
              e.message);
        check(ouro_classify(s, "x", labels, 0, NULL, NULL, pr, NULL, NULL, NULL, &e) == OURO_ERR_ARG,
              "no labels is an error: %s", e.message);
        ouro_session_options tiny = { .n_ctx = 8, .threads = 1 };
        ouro_session *st = NULL;
        if (ouro_session_new(m, &tiny, &st, NULL) == OURO_OK)
            check(ouro_classify(st, "x", labels, 2, NULL, NULL, pr, NULL, NULL, NULL, &e) == OURO_ERR_CONTEXT,
                  "a prompt longer than the context is an error: %s", e.message);
        ouro_session_free(st);
    }

    /* the exact context of a classification */
    int need[N_IN], max_need = 0;
    ok = ouro_classify_n_ctx(m, N_IN, inputs, labels, N_LAB, NULL, need, &max_need, &e) == OURO_OK;
    check(ok && max_need > 0, "ouro_classify_n_ctx gives a context size (%d tokens)", max_need);
    for (int k = 0; ok && k < N_IN; k++) {
        for (int d = 0; d <= 1; d++) {
            ouro_session_options o = { .n_ctx = need[k] - d, .threads = 1 };
            ouro_session *sx = NULL;
            ouro_status st = ouro_session_new(m, &o, &sx, &e);
            if (st == OURO_OK)
                st = ouro_classify(sx, inputs[k], labels, N_LAB, NULL, NULL, pr, NULL, NULL, NULL, &e);
            ouro_session_free(sx);
            check(d == 0 ? st == OURO_OK : st == OURO_ERR_CONTEXT,
                  "input %d: a session of %d tokens %s", k + 1, need[k] - d,
                  d == 0 ? "runs the classification (exactly enough)" : "is one token short");
        }
    }
    ouro_session_free(s);
    /* depth: ouro_depth_batch against one ouro_depth per input, bit for bit */
    {
        const ouro_tokenizer *tk = ouro_model_tokenizer(m);
        int32_t *ids[N_IN];
        int n_ids[N_IN];
        size_t total = 0;
        for (int k = 0; k < N_IN; k++) {
            size_t n = 0;
            ids[k] = NULL;
            ouro_tokenizer_encode(tk, inputs[k], strlen(inputs[k]), &ids[k], &n, NULL);
            n_ids[k] = (int)n;
            total += n;
        }
        int L = 0;
        float *pdf1 = NULL, *pdf = NULL;
        double *exp1 = malloc(total * sizeof(double)), *ex = malloc(total * sizeof(double));
        int32_t *step1 = malloc(total * sizeof(int32_t)), *step = malloc(total * sizeof(int32_t));
        ouro_session *sd = NULL;
        ouro_session_options sdo = { .n_ctx = 64, .n_seq = 1, .threads = 2 };
        ok = ouro_session_new(m, &sdo, &sd, &e) == OURO_OK;
        if (ok) {
            L = ouro_session_max_loops(sd);
            pdf1 = malloc(total * L * sizeof(float));
            pdf = malloc(total * L * sizeof(float));
        }
        for (size_t k = 0, at = 0; ok && k < N_IN; at += n_ids[k], k++)
            ok = ouro_depth(sd, ids[k], n_ids[k], 0.5f, pdf1 + at * L, exp1 + at, step1 + at, NULL,
                            NULL, &e) == OURO_OK;
        ouro_session_free(sd);
        if (check(ok, "ouro_depth, one input at a time (%zu tokens in all)", total)) {
            int seqs[] = { 1, 2, 4, 16 }, batches[] = { 3, 16, 0 };
            for (size_t z = 0; z < sizeof seqs / sizeof *seqs; z++)
                for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
                    ouro_session_options o = { .n_ctx = 64, .n_seq = seqs[z],
                                               .max_batch = batches[b], .threads = 2 };
                    ouro_session *sb = NULL;
                    memset(pdf, 0, total * L * sizeof(float));
                    ok = ouro_session_new(m, &o, &sb, &e) == OURO_OK
                         && ouro_depth_batch(sb, N_IN, (const int32_t *const *)ids, n_ids, 0.5f, pdf,
                                             ex, step, NULL, NULL, &e) == OURO_OK;
                    ouro_session_free(sb);
                    char calls[32];
                    snprintf(calls, sizeof calls, batches[b] ? "%d tokens" : "the default size",
                             batches[b]);
                    check(ok && !memcmp(pdf, pdf1, total * L * sizeof(float))
                          && !memcmp(ex, exp1, total * sizeof(double))
                          && !memcmp(step, step1, total * sizeof(int32_t)),
                          "ouro_depth_batch with %d sequences and calls of %s: every input's exit "
                          "pdf, expected and Q-exit steps equal ouro_depth's bit for bit",
                          seqs[z], calls);
                }
            int bad_n[N_IN];
            memcpy(bad_n, n_ids, sizeof bad_n);
            ouro_session_options o = { .n_ctx = 12, .n_seq = 2, .threads = 1 };
            ouro_session *sb = NULL;
            if (ouro_session_new(m, &o, &sb, &e) == OURO_OK) {
                int longest = 0;
                for (int k = 1; k < N_IN; k++)
                    longest = n_ids[k] > n_ids[longest] ? k : longest;
                char want[32];
                snprintf(want, sizeof want, "input %d:", longest + 1);
                ouro_status st = ouro_depth_batch(sb, N_IN, (const int32_t *const *)ids, n_ids, 0.5f,
                                                  NULL, ex, NULL, NULL, NULL, &e);
                check(n_ids[longest] > 12 && st == OURO_ERR_CONTEXT && strstr(e.message, want),
                      "an input longer than the context is an error naming it from 1: %s", e.message);
                bad_n[2] = 0;
                st = ouro_depth_batch(sb, N_IN, (const int32_t *const *)ids, bad_n, 0.5f, NULL, ex,
                                      NULL, NULL, NULL, &e);
                check(st == OURO_ERR_ARG && strstr(e.message, "input 3 has no tokens"),
                      "an input without tokens is an error naming it: %s", e.message);
            }
            ouro_session_free(sb);
        }
        for (int k = 0; k < N_IN; k++)
            ouro_free(ids[k]);
        free(pdf1);
        free(pdf);
        free(exp1);
        free(ex);
        free(step1);
        free(step);
    }

    ouro_model_free(m);
    return check_done();
}

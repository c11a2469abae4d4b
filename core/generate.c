/*
 * generate.c -- what runs on top of the forward pass: sampling, batched
 * generation, label classification and the depth profile of a text.
 *
 * Generation prefills each prompt into its own sequence, then decodes every
 * active sequence together, one forward call per step.  Requests beyond the
 * session's n_seq run in successive waves.  The host's cancel callback is
 * called on the calling thread between prefill chunks and decode steps.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "internal.h"
#include "tokenizer_internal.h"

/* ------------------------------------------------------------------------
 * Random numbers: splitmix64 (deterministic; same seed, same stream)
 * ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 bits. */
static double rng_uniform(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* ------------------------------------------------------------------------
 * Sampling
 * ------------------------------------------------------------------------ */

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Orders candidate indices by probability, descending; ties by id. */
static const float *cmp_p;
static int cmp_desc(const void *a, const void *b)
{
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (cmp_p[i] != cmp_p[j])
        return cmp_p[i] > cmp_p[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* Moves the k most probable of idx[0..n) to the front (any order); quickselect. */
static void select_top(int32_t *idx, int n, int k, const float *p)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t pivot = idx[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (p[idx[i]] > p[pivot] || (p[idx[i]] == p[pivot] && idx[i] < pivot)) i++;
            while (p[idx[j]] < p[pivot] || (p[idx[j]] == p[pivot] && idx[j] > pivot)) j--;
            if (i <= j) {
                int32_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
                i++; j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

/* Draws a token from logits (V): temperature, then top-k, then top-p.
 * Uses the session's sampling scratch; temperature 0 is greedy. */
static int sample(ouro_session *s, const float *logits, const ouro_gen_params *gp, uint64_t *rng)
{
    int V = s->model->cfg.vocab_size;
    if (gp->temperature <= 0.0f)
        return argmax(logits, V);
    float *p = s->samp_p;
    int32_t *idx = s->samp_idx;
    float m = logits[argmax(logits, V)];
    double total = 0.0;
    for (int i = 0; i < V; i++) {
        p[i] = expf((logits[i] - m) / gp->temperature);
        idx[i] = i;
        total += p[i];
    }
    int n = V;
    cmp_p = p;
    if (gp->top_k > 0 && gp->top_k < V) {
        select_top(idx, V, gp->top_k, p);
        n = gp->top_k;
        total = 0.0;
        for (int i = 0; i < n; i++)
            total += p[idx[i]];
    }
    if (gp->top_p > 0.0f && gp->top_p < 1.0f) {
        if (n == V) {
            /* tokens below this share cannot be in the nucleus (llama2.c's cut) */
            double cut = (1.0 - gp->top_p) / (V - 1) * total;
            int k = 0;
            for (int i = 0; i < V; i++)
                if (p[i] >= cut)
                    idx[k++] = i;
            n = k;
        }
        qsort(idx, (size_t)n, sizeof *idx, cmp_desc);
        double cum = 0.0, target = gp->top_p * total;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += p[idx[i]];
            if (cum >= target) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        total = cum < target ? cum : 0.0;
        if (total == 0.0)
            for (int i = 0; i < n; i++)
                total += p[idx[i]];
    } else if (n < V) {
        qsort(idx, (size_t)n, sizeof *idx, cmp_desc);
    }
    double r = rng_uniform(rng) * total, acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += p[idx[i]];
        if (r < acc)
            return idx[i];
    }
    return idx[n - 1];
}

/* ------------------------------------------------------------------------
 * Generation
 * ------------------------------------------------------------------------ */

const char *ouro_stop_reason_str(ouro_stop_reason r)
{
    switch (r) {
    case OURO_STOP_LENGTH: return "length";
    case OURO_STOP_EOS:    return "eos";
    case OURO_STOP_STRING: return "stop";
    }
    return "?";
}

void ouro_gen_result_clear(ouro_gen_result *r)
{
    if (!r)
        return;
    free(r->ids);
    free(r->exit_steps);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool is_eos(const ouro_config *c, int32_t id)
{
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id)
            return true;
    return false;
}

/* Earliest occurrence of any stop string in text, or NULL. */
static const char *find_stop(const char *text, const char *const *stop, int n_stop)
{
    const char *best = NULL;
    for (int i = 0; i < n_stop; i++) {
        const char *p = strstr(text, stop[i]);
        if (p && (!best || p < best))
            best = p;
    }
    return best;
}

/* Validates the exit choice against the session. */
static ouro_status check_exit(const ouro_session *s, const ouro_exit *ex, ouro_error *err)
{
    if (ex->kind == OURO_EXIT_STEP && (ex->step < 1 || ex->step > s->max_loops))
        return ouro_err(err, OURO_ERR_ARG, "exit step %d is out of range 1..%d (max_loops)",
                        ex->step, s->max_loops);
    if (ex->kind == OURO_EXIT_THRESHOLD && !(ex->threshold >= 0.0f && ex->threshold <= 1.0f))
        return ouro_err(err, OURO_ERR_ARG, "exit threshold %g is out of range 0..1",
                        (double)ex->threshold);
    if (ex->kind < OURO_EXIT_DEFAULT || ex->kind > OURO_EXIT_WEIGHTED)
        return ouro_err(err, OURO_ERR_ARG, "unknown exit kind %d", (int)ex->kind);
    return OURO_OK;
}

/* Prefills `n` tokens into sequence `seq` in chunks of max_batch, checking
 * cancel between chunks; the last token's outputs go to `out`. */
static ouro_status prefill(ouro_session *s, int seq, const int32_t *ids, int n,
                           const ouro_forward_options *fo, ouro_outputs *out,
                           ouro_cancel_fn cancel, void *cancel_ctx, ouro_error *err)
{
    for (int c0 = 0; c0 < n; c0 += s->max_batch) {
        int cn = n - c0 < s->max_batch ? n - c0 : s->max_batch;
        for (int i = 0; i < cn; i++)
            s->gen_seq_fill[i] = seq;
        ouro_batch b = { .n = cn, .token = ids + c0, .seq = s->gen_seq_fill, .want = NULL };
        ouro_outputs none = {0};
        ouro_status st = ouro_session_forward(s, &b, fo, c0 + cn == n ? out : &none, err);
        if (st != OURO_OK)
            return st;
        if (cancel && c0 + cn < n && cancel(cancel_ctx))
            return ouro_err(err, OURO_ERR_INTERRUPTED, "interrupted during prefill");
    }
    return OURO_OK;
}

typedef struct gen_slot {
    int req;                 /* request index */
    bool active;
    int row;                 /* row of gen_logits holding this sequence's next logits */
    int cap;                 /* capacity of ids / exit_steps */
    uint64_t rng;
    uint8_t *tail;           /* (win) last bytes of the continuation, for stop strings */
    size_t n_tail;
} gen_slot;

/* Appends token id's bytes to the slot's window of the last `win` bytes and
 * says whether a stop string now appears in it.  A stop string (valid UTF-8)
 * found in the raw bytes is also in the decoded text, so the whole text is
 * decoded only once, when one is found; the window holds the longest stop
 * string plus the longest token, so no new occurrence is missed. */
static bool stop_in_tail(gen_slot *g, size_t win, const ouro_tokenizer *tok, int32_t id,
                         const char *const *stop, int n_stop)
{
    if (id < 0 || id >= tok->n_ids || !tok->token[id])
        return true;     /* not decodable: let the full decode report it */
    const uint8_t *b = tok->bytes[id];
    size_t nb = tok->n_bytes[id];
    if (g->n_tail + nb > win) {
        size_t drop = g->n_tail + nb - win;
        memmove(g->tail, g->tail + drop, g->n_tail - drop);
        g->n_tail -= drop;
    }
    memcpy(g->tail + g->n_tail, b, nb);
    g->n_tail += nb;
    for (int i = 0; i < n_stop; i++)
        if (memmem(g->tail, g->n_tail, stop[i], strlen(stop[i])))
            return true;
    return false;
}

static ouro_status generate(ouro_session *s, int n_req, const int32_t *const *prompts,
                           const int *prompt_lens, const ouro_gen_params *params,
                           ouro_gen_result *results, ouro_error *err)
{
    if (!s || !prompts || !prompt_lens || !results || n_req < 1)
        return ouro_err(err, OURO_ERR_ARG, "ouro_generate: no requests or a NULL argument");
    const ouro_model *m = s->model;
    const ouro_config *c = &m->cfg;
    const ouro_tokenizer *tok = m->tok;
    int V = c->vocab_size, L = s->max_loops;
    ouro_gen_params gp = {0};
    if (params)
        gp = *params;
    if (gp.max_tokens == 0)
        gp.max_tokens = 128;
    ouro_status st;
    if (gp.max_tokens < 0)
        return ouro_err(err, OURO_ERR_ARG, "max_tokens %d is negative", gp.max_tokens);
    if (!(gp.temperature >= 0.0f) || !isfinite(gp.temperature))
        return ouro_err(err, OURO_ERR_ARG, "temperature %g must be a finite number >= 0",
                        (double)gp.temperature);
    if (gp.top_k < 0)
        return ouro_err(err, OURO_ERR_ARG, "top_k %d is negative", gp.top_k);
    if (!(gp.top_p >= 0.0f && gp.top_p <= 1.0f))
        return ouro_err(err, OURO_ERR_ARG, "top_p %g is out of range 0..1", (double)gp.top_p);
    if (gp.n_stop < 0 || (gp.n_stop > 0 && !gp.stop))
        return ouro_err(err, OURO_ERR_ARG, "invalid stop strings");
    for (int i = 0; i < gp.n_stop; i++)
        if (!gp.stop[i] || !gp.stop[i][0])
            return ouro_err(err, OURO_ERR_ARG, "stop string %d is empty", i + OURO_ITEM_BASE);
    if (gp.n_stop > 0 && !tok)
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "stop strings need the model's tokenizer, "
                        "which is not loaded");
    if (gp.depth != OURO_DEPTH_FULL && gp.depth != OURO_DEPTH_ADAPTIVE)
        return ouro_err(err, OURO_ERR_ARG, "unknown depth mode %d", (int)gp.depth);
    if ((st = check_exit(s, &gp.exit, err)) != OURO_OK)
        return st;
    for (int r = 0; r < n_req; r++) {
        if (!prompts[r] || prompt_lens[r] < 1)
            return ouro_err(err, OURO_ERR_ARG, "prompt %d is empty", r + OURO_ITEM_BASE);
        if (prompt_lens[r] > s->n_ctx - 1)
            return ouro_err(err, OURO_ERR_CONTEXT, "prompt %d has %d tokens; the session's "
                            "context of %d tokens leaves room for at most %d", r + OURO_ITEM_BASE, prompt_lens[r],
                            s->n_ctx, s->n_ctx - 1);
        for (int i = 0; i < prompt_lens[r]; i++)
            if (prompts[r][i] < 0 || prompts[r][i] >= V)
                return ouro_err(err, OURO_ERR_ARG, "prompt %d: token %d is out of range 0..%d",
                                r + OURO_ITEM_BASE, prompts[r][i], V - 1);
    }

    double t0 = now_s();
    memset(results, 0, (size_t)n_req * sizeof *results);
    gen_slot *slots = calloc((size_t)s->n_seq, sizeof *slots);
    if (!slots)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    ouro_forward_options fo = { .exit = gp.exit, .depth = gp.depth };
    char *text = NULL;
    ouro_progress prog = { .done = 0, .total = n_req, .tokens = 0 };
    st = OURO_OK;

    /* stop strings: a window of raw bytes per sequence, allocated once; a stop
     * string holding U+FFFD can only match the decoded text, checked in full */
    size_t win = 0;
    bool stop_full_decode = false;
    uint8_t *tails = NULL;
    if (gp.n_stop > 0) {
        size_t max_stop = 0, max_tok = 0;
        for (int i = 0; i < gp.n_stop; i++) {
            max_stop = strlen(gp.stop[i]) > max_stop ? strlen(gp.stop[i]) : max_stop;
            stop_full_decode |= strstr(gp.stop[i], "\xEF\xBF\xBD") != NULL;
        }
        for (int id = 0; id < tok->n_ids; id++)
            max_tok = tok->n_bytes[id] > max_tok ? tok->n_bytes[id] : max_tok;
        win = max_stop + max_tok;
        if (!(tails = malloc((size_t)s->n_seq * win))) {
            free(slots);
            return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        }
    }

    for (int w0 = 0; w0 < n_req && st == OURO_OK; w0 += s->n_seq) {
        int nb = n_req - w0 < s->n_seq ? n_req - w0 : s->n_seq;

        /* prefill every prompt of the wave into its own sequence */
        for (int j = 0; j < nb && st == OURO_OK; j++) {
            int r = w0 + j;
            gen_slot *g = &slots[j];
            memset(g, 0, sizeof *g);
            g->req = r;
            g->rng = gp.seed;          /* the same seed gives the same text in any slot */
            g->row = j;
            g->tail = tails ? tails + (size_t)j * win : NULL;
            g->n_tail = 0;
            int room = s->n_ctx - prompt_lens[r];
            g->cap = gp.max_tokens < room ? gp.max_tokens : room;
            results[r].ids = malloc((size_t)(g->cap > 0 ? g->cap : 1) * sizeof(int32_t));
            results[r].exit_steps = malloc((size_t)(g->cap > 0 ? g->cap : 1) * sizeof(int32_t));
            if (!results[r].ids || !results[r].exit_steps) {
                st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
                break;
            }
            ouro_session_seq_reset(s, j);
            ouro_outputs out = { .logits = s->gen_logits + (size_t)j * V,
                                 .exit_pdf = s->gen_pdf + (size_t)j * L,
                                 .exit_step = s->gen_step + j };
            st = prefill(s, j, prompts[r], prompt_lens[r], &fo, &out, gp.cancel, gp.cancel_ctx, err);
            g->active = g->cap > 0;
            if (!g->active) {
                results[r].seconds = now_s() - t0;
                prog.done++;
            }
            if (st == OURO_OK && gp.progress)
                gp.progress(gp.progress_ctx, &prog);
            if (st == OURO_OK && gp.cancel && gp.cancel(gp.cancel_ctx))
                st = ouro_err(err, OURO_ERR_INTERRUPTED, "interrupted after prefill");
        }

        /* decode: sample every active sequence, then one forward for all */
        while (st == OURO_OK) {
            int na = 0;
            for (int j = 0; j < nb; j++) {
                gen_slot *g = &slots[j];
                if (!g->active)
                    continue;
                ouro_gen_result *res = &results[g->req];
                int32_t id = sample(s, s->gen_logits + (size_t)g->row * V, &gp, &g->rng);
                int32_t step = s->gen_step[g->row];
                if (is_eos(c, id)) {
                    res->stop_reason = OURO_STOP_EOS;
                    g->active = false;
                } else {
                    res->ids[res->n_ids] = id;
                    res->exit_steps[res->n_ids] = step;
                    res->n_ids++;
                    prog.tokens++;
                    if (gp.n_stop > 0 && (stop_full_decode
                                          || stop_in_tail(g, win, tok, id, gp.stop, gp.n_stop))) {
                        st = ouro_tokenizer_decode(tok, res->ids, (size_t)res->n_ids, false,
                                                   &text, NULL, err);
                        if (st != OURO_OK)
                            break;
                        const char *hit = find_stop(text, gp.stop, gp.n_stop);
                        if (hit) {
                            res->n_ids--;              /* the token that stopped is dropped */
                            prog.tokens--;
                            res->text_len = (size_t)(hit - text);
                            text[res->text_len] = 0;
                            res->text = text;
                            text = NULL;
                            res->stop_reason = OURO_STOP_STRING;
                            g->active = false;
                        }
                        free(text);
                        text = NULL;
                    }
                    if (gp.on_token && res->stop_reason != OURO_STOP_STRING)
                        gp.on_token(gp.token_ctx, g->req, res->ids, res->n_ids);
                    if (g->active && res->n_ids >= g->cap) {
                        res->stop_reason = OURO_STOP_LENGTH;
                        g->active = false;
                    }
                }
                if (!g->active) {
                    res->seconds = now_s() - t0;
                    prog.done++;
                    continue;
                }
                s->gen_tok[na] = id;
                s->gen_seq[na] = j;
                na++;
            }
            if (st == OURO_OK && gp.progress)
                gp.progress(gp.progress_ctx, &prog);
            if (st != OURO_OK || na == 0)
                break;
            if (gp.cancel && gp.cancel(gp.cancel_ctx)) {
                st = ouro_err(err, OURO_ERR_INTERRUPTED, "interrupted during generation");
                break;
            }
            /* rows of this call follow the batch order; logits go to rows 0..na-1 */
            ouro_batch b = { .n = na, .token = s->gen_tok, .seq = s->gen_seq, .want = NULL };
            ouro_outputs out = { .logits = s->gen_logits, .exit_pdf = s->gen_pdf,
                                 .exit_step = s->gen_step };
            st = ouro_session_forward(s, &b, &fo, &out, err);
            for (int r = 0; r < na; r++)
                slots[s->gen_seq[r]].row = r;
        }
        for (int j = 0; j < nb; j++)
            ouro_session_seq_reset(s, j);
    }

    /* texts of the requests that did not stop at a stop string */
    for (int r = 0; r < n_req && st == OURO_OK && tok; r++) {
        if (results[r].text)
            continue;
        st = ouro_tokenizer_decode(tok, results[r].ids, (size_t)results[r].n_ids, false,
                                   &results[r].text, &results[r].text_len, err);
    }
    free(slots);
    free(tails);
    if (st != OURO_OK)
        for (int r = 0; r < n_req; r++)
            ouro_gen_result_clear(&results[r]);
    return st;
}

/* ------------------------------------------------------------------------
 * Classification: which label continues the chat prompt best
 * ------------------------------------------------------------------------ */

#define DEFAULT_INSTRUCTION "Classify the input into one of the labels. Answer with the label only."

/* log-softmax of row (V) at id. */
static double log_prob(const float *row, int V, int32_t id)
{
    return (double)row[id] - ouro_logsumexp(row, V);
}


/* The classification prompt of one input: the chat template around one user
 * message "<instruction>\n\nLabels: a, b\n\nInput: <input>", with the
 * assistant's turn opened, encoded.  *ids is malloc'd. */
static ouro_status classify_prompt(const ouro_tokenizer *tok, const char *ins, const char *input,
                                   const char *const *labels, int n_labels, int32_t **ids,
                                   size_t *n_ids, ouro_error *err)
{
    size_t len = strlen(ins) + strlen("\n\nLabels: ") + strlen("\n\nInput: ") + strlen(input) + 1;
    for (int i = 0; i < n_labels; i++)
        if (!ouro_add_ok(len, strlen(labels[i]) + 2, &len))
            return ouro_err(err, OURO_ERR_ARG, "labels too long");
    char *content = malloc(len), *text = NULL;
    if (!content)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    char *w = content;
    w += sprintf(w, "%s\n\nLabels: ", ins);
    for (int i = 0; i < n_labels; i++)
        w += sprintf(w, "%s%s", i ? ", " : "", labels[i]);
    sprintf(w, "\n\nInput: %s", input);
    ouro_chat_message msg = { .role = "user", .content = content };
    ouro_status st = ouro_chat_render(tok, &msg, 1, true, &text, err);
    if (st == OURO_OK)
        st = ouro_tokenizer_encode(tok, text, strlen(text), ids, n_ids, err);
    free(content);
    ouro_free(text);
    return st;
}

ouro_status ouro_classify_n_ctx(const ouro_model *model, int n_inputs, const char *const *inputs,
                                const char *const *labels, int n_labels, const char *instruction,
                                int *need, int *max_need, ouro_error *err)
{
    if (!model || !inputs || !labels || !max_need || n_inputs < 1 || n_labels < 1)
        return ouro_err(err, OURO_ERR_ARG, "ouro_classify_n_ctx: NULL argument, no inputs or no labels");
    const ouro_tokenizer *tok = model->tok;
    if (!tok)
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "classification needs the model's tokenizer "
                        "(tokenizer.json), which is not loaded");
    *max_need = 0;
    size_t max_lab = 0;
    for (int i = 0; i < n_labels; i++) {
        if (!labels[i] || !labels[i][0])
            return ouro_err(err, OURO_ERR_ARG, "label %d is empty", i + OURO_ITEM_BASE);
        int32_t *ids = NULL;
        size_t n = 0;
        ouro_status st = ouro_tokenizer_encode(tok, labels[i], strlen(labels[i]), &ids, &n, err);
        ouro_free(ids);
        if (st != OURO_OK)
            return st;
        if (n == 0)
            return ouro_err(err, OURO_ERR_ARG, "label \"%s\" encodes to no tokens", labels[i]);
        max_lab = n > max_lab ? n : max_lab;
    }
    const char *ins = instruction ? instruction : DEFAULT_INSTRUCTION;
    for (int k = 0; k < n_inputs; k++) {
        if (!inputs[k])
            return ouro_err(err, OURO_ERR_ARG, "input %d is NULL", k + OURO_ITEM_BASE);
        int32_t *ids = NULL;
        size_t n = 0;
        ouro_status st = classify_prompt(tok, ins, inputs[k], labels, n_labels, &ids, &n, err);
        ouro_free(ids);
        if (st != OURO_OK)
            return st;
        /* the prompt, then every label token but the last (whose
         * probability the last position gives) */
        size_t total = n + max_lab - 1;
        int v = total > (size_t)INT32_MAX ? INT32_MAX : (int)total;
        if (need)
            need[k] = v;
        if (v > *max_need)
            *max_need = v;
    }
    return OURO_OK;
}

ouro_status ouro_classify(ouro_session *s, const char *input, const char *const *labels,
                          int n_labels, const char *instruction, const ouro_exit *exit,
                          double *probs, double *logprobs, ouro_cancel_fn cancel,
                          void *cancel_ctx, ouro_error *err)
{
    if (!input)
        return ouro_err(err, OURO_ERR_ARG, "ouro_classify: NULL argument");
    return ouro_classify_batch(s, 1, &input, labels, n_labels, instruction, exit, probs, logprobs,
                               cancel, cancel_ctx, err);
}

/*
 * Batched classification.  The prompts of all inputs share their first tokens
 * (chat template, instruction, label list), so that prefix is computed once,
 * in a sequence of its own, and copied.  Then inputs run in waves: each input
 * of a wave owns G sequences (G = the labels of one group); one forward call
 * runs the rest of every prompt of the wave, giving the first label token's
 * log-probability; the prompt is copied into the group's other sequences and
 * one more call runs every label's remaining tokens.  Label groups smaller
 * than the label count are used when the session has too few sequences.
 */
static ouro_status classify_batch(ouro_session *s, int n_inputs, const char *const *inputs,
                                  const char *const *labels, int n_labels, const char *instruction,
                                  const ouro_exit *exit, double *probs, double *logprobs,
                                  ouro_cancel_fn cancel, void *cancel_ctx, ouro_error *err)
{
    if (!s || !inputs || !labels || !probs || n_inputs < 1)
        return ouro_err(err, OURO_ERR_ARG, "ouro_classify: NULL argument or no inputs");
    for (int k = 0; k < n_inputs; k++)
        if (!inputs[k])
            return ouro_err(err, OURO_ERR_ARG, "input %d is NULL", k + OURO_ITEM_BASE);
    if (n_labels < 1)
        return ouro_err(err, OURO_ERR_ARG, "classification needs at least one label");
    for (int i = 0; i < n_labels; i++) {
        if (!labels[i] || !labels[i][0])
            return ouro_err(err, OURO_ERR_ARG, "label %d is empty", i + OURO_ITEM_BASE);
        for (int j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                return ouro_err(err, OURO_ERR_ARG, "label \"%s\" appears twice", labels[i]);
    }
    const ouro_model *m = s->model;
    const ouro_tokenizer *tok = m->tok;
    if (!tok)
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "classification needs the model's tokenizer "
                        "(tokenizer.json), which is not loaded");
    ouro_forward_options fo = { .depth = OURO_DEPTH_FULL };
    if (exit)
        fo.exit = *exit;
    ouro_status st = check_exit(s, &fo.exit, err);
    if (st != OURO_OK)
        return st;
    int V = m->cfg.vocab_size;
    const char *ins = instruction ? instruction : DEFAULT_INSTRUCTION;

    int32_t **ids = calloc((size_t)n_inputs, sizeof *ids), **lab = calloc((size_t)n_labels, sizeof *lab);
    size_t *n_ids = calloc((size_t)n_inputs, sizeof *n_ids), *lab_n = calloc((size_t)n_labels, sizeof *lab_n);
    int32_t *btok = NULL, *bseq = NULL;
    uint8_t *bwant = NULL;
    float *rows = NULL;
    if (!ids || !lab || !n_ids || !lab_n) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        goto done;
    }

    /* labels and prompts, tokenized */
    size_t max_lab = 0;
    for (int i = 0; i < n_labels; i++) {
        if ((st = ouro_tokenizer_encode(tok, labels[i], strlen(labels[i]), &lab[i], &lab_n[i], err)) != OURO_OK)
            goto done;
        if (lab_n[i] == 0) {
            st = ouro_err(err, OURO_ERR_ARG, "label \"%s\" encodes to no tokens", labels[i]);
            goto done;
        }
        max_lab = lab_n[i] > max_lab ? lab_n[i] : max_lab;
    }
    for (int k = 0; k < n_inputs; k++) {
        if ((st = classify_prompt(tok, ins, inputs[k], labels, n_labels, &ids[k], &n_ids[k], err)) != OURO_OK)
            goto done;
        if (n_ids[k] == 0 || n_ids[k] + max_lab - 1 > (size_t)s->n_ctx) {
            st = ouro_err(err, OURO_ERR_CONTEXT, "the classification prompt (%zu tokens) and the "
                          "longest label (%zu tokens) do not fit the session's context of %d",
                          n_ids[k], max_lab, s->n_ctx);
            goto done;
        }
    }

    /* the shared prefix: every input keeps at least its last token */
    size_t P = 0;
    if (n_inputs > 1) {
        P = n_ids[0] - 1;
        for (int k = 1; k < n_inputs; k++) {
            size_t j = 0, lim = n_ids[k] - 1 < P ? n_ids[k] - 1 : P;
            while (j < lim && ids[k][j] == ids[0][j])
                j++;
            P = j;
        }
    }
    int S = s->n_seq, pseq = P > 0 ? S - 1 : -1;
    int avail = P > 0 ? S - 1 : S;
    if (avail < 1) {     /* a single sequence: no room to keep the prefix */
        P = 0;
        pseq = -1;
        avail = S;
    }
    int G = n_labels < avail ? n_labels : avail;      /* labels per group */
    int W = avail / G;                                /* inputs per wave */
    if (W > n_inputs)
        W = n_inputs;

    size_t max_rest = 0;
    for (int k = 0; k < n_inputs; k++)
        max_rest = n_ids[k] - P > max_rest ? n_ids[k] - P : max_rest;
    size_t cap = (size_t)W * (max_rest > (size_t)G * (max_lab - 1) ? max_rest : (size_t)G * (max_lab - 1));
    size_t nb;
    btok = malloc(cap * sizeof *btok);
    bseq = malloc(cap * sizeof *bseq);
    bwant = malloc(cap);
    if (!ouro_mul_ok((size_t)W * G * (max_lab > 1 ? max_lab - 1 : 1), (size_t)V * sizeof(float), &nb)) {
        st = ouro_err(err, OURO_ERR_NOMEM, "the label logits of classification do not fit in memory");
        goto done;
    }
    if ((st = ouro_session_check_extra(s, nb + cap * 9, "the label logits of classification",
                                       err)) != OURO_OK)
        goto done;
    if (!btok || !bseq || !bwant || !(rows = malloc(nb))) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory for classification");
        goto done;
    }
    for (int q = 0; q < S; q++)
        ouro_session_seq_reset(s, q);
    if (P > 0 && (st = prefill(s, pseq, ids[0], (int)P, &fo, &(ouro_outputs){0}, cancel,
                               cancel_ctx, err)) != OURO_OK)
        goto done;

    for (int k0 = 0; k0 < n_inputs && st == OURO_OK; k0 += W) {
        int nw = n_inputs - k0 < W ? n_inputs - k0 : W;
        /* the rest of each prompt, every input of the wave in one call */
        int n = 0;
        for (int w = 0; w < nw && st == OURO_OK; w++) {
            int base = w * G, k = k0 + w;
            ouro_session_seq_reset(s, base);
            if (P > 0)
                st = ouro_session_seq_copy(s, pseq, base, err);
            for (size_t j = P; j < n_ids[k]; j++) {
                btok[n] = ids[k][j];
                bseq[n] = base;
                n++;
            }
        }
        if (st != OURO_OK)
            break;
        if (cancel && cancel(cancel_ctx)) {
            st = ouro_err(err, OURO_ERR_INTERRUPTED, "interrupted during classification");
            break;
        }
        /* want NULL: the last token of each sequence, in batch order = wave order */
        ouro_batch b = { .n = n, .token = btok, .seq = bseq, .want = NULL };
        if ((st = ouro_session_forward(s, &b, &fo, &(ouro_outputs){ .logits = rows }, err)) != OURO_OK)
            break;
        for (int w = 0; w < nw; w++)
            for (int i = 0; i < n_labels; i++)
                probs[(size_t)(k0 + w) * n_labels + i] = log_prob(rows + (size_t)w * V, V, lab[i][0]);

        /* the remaining tokens of every label, one group of labels at a time */
        for (int g0 = 0; g0 < n_labels && max_lab > 1 && st == OURO_OK; g0 += G) {
            int g1 = g0 + G < n_labels ? g0 + G : n_labels;
            n = 0;
            for (int w = 0; w < nw && st == OURO_OK; w++) {
                int base = w * G;
                ouro_session_seq_truncate(s, base, (int)n_ids[k0 + w]);
                for (int i = g0; i < g1 && st == OURO_OK; i++) {
                    int sq = base + (i - g0);
                    if (lab_n[i] < 2)
                        continue;
                    if (sq != base && (st = ouro_session_seq_copy(s, base, sq, err)) != OURO_OK)
                        break;
                    for (size_t j = 0; j + 1 < lab_n[i]; j++) {
                        btok[n] = lab[i][j];
                        bseq[n] = sq;
                        bwant[n] = 1;
                        n++;
                    }
                }
            }
            if (st != OURO_OK || n == 0)
                continue;
            if (cancel && cancel(cancel_ctx)) {
                st = ouro_err(err, OURO_ERR_INTERRUPTED, "interrupted during classification");
                break;
            }
            b = (ouro_batch){ .n = n, .token = btok, .seq = bseq, .want = bwant };
            if ((st = ouro_session_forward(s, &b, &fo, &(ouro_outputs){ .logits = rows }, err)) != OURO_OK)
                break;
            int r = 0;
            for (int w = 0; w < nw; w++)
                for (int i = g0; i < g1; i++)
                    for (size_t j = 0; j + 1 < lab_n[i]; j++, r++)
                        probs[(size_t)(k0 + w) * n_labels + i] += log_prob(rows + (size_t)r * V, V, lab[i][j + 1]);
            for (int w = 0; w < nw; w++)
                for (int i = 1; i < G; i++)
                    ouro_session_seq_reset(s, w * G + i);
        }
        for (int w = 0; w < nw; w++)
            ouro_session_seq_reset(s, w * G);
    }
    if (st != OURO_OK)
        goto done;

    /* probabilities: softmax over each input's label totals */
    for (int k = 0; k < n_inputs; k++) {
        double *p = probs + (size_t)k * n_labels, mx = p[0], sum = 0.0;
        for (int i = 1; i < n_labels; i++)
            mx = p[i] > mx ? p[i] : mx;
        for (int i = 0; i < n_labels; i++) {
            if (logprobs)
                logprobs[(size_t)k * n_labels + i] = p[i];
            sum += exp(p[i] - mx);
        }
        for (int i = 0; i < n_labels; i++)
            p[i] = exp(p[i] - mx) / sum;
    }

done:
    for (int q = 0; q < s->n_seq; q++)
        ouro_session_seq_reset(s, q);
    for (int k = 0; ids && k < n_inputs; k++)
        ouro_free(ids[k]);
    for (int i = 0; lab && i < n_labels; i++)
        ouro_free(lab[i]);
    free(ids);
    free(n_ids);
    free(lab);
    free(lab_n);
    free(btok);
    free(bseq);
    free(bwant);
    free(rows);
    return st;
}

/* ------------------------------------------------------------------------
 * Depth profile: the exit distribution of every token of a text
 * ------------------------------------------------------------------------ */

/* The exit pdf of every token of inputs 0..n_in-1 (pdf: their rows one input
 * after another), up to s->n_seq inputs at a time, each in a sequence of its
 * own, their tokens in forward calls of up to max_batch tokens. */
static ouro_status depth_pdfs(ouro_session *s, int n_in, const int32_t *const *ids,
                              const int *n_ids, float *pdf, ouro_cancel_fn cancel,
                              void *cancel_ctx, ouro_error *err)
{
    int L = s->max_loops, B = s->max_batch;
    int32_t *tok = malloc((size_t)B * sizeof *tok), *seq = malloc((size_t)B * sizeof *seq);
    uint8_t *want = malloc((size_t)B);
    if (!tok || !seq || !want) {
        free(tok);
        free(seq);
        free(want);
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    }
    memset(want, 1, (size_t)B);
    ouro_status st = OURO_OK;
    ouro_forward_options fo = { .depth = OURO_DEPTH_FULL };
    size_t row = 0;   /* the pdf row of the next token */
    for (int w0 = 0; w0 < n_in && st == OURO_OK; w0 += s->n_seq) {
        int wn = n_in - w0 < s->n_seq ? n_in - w0 : s->n_seq;
        for (int q = 0; q < wn; q++)
            ouro_session_seq_reset(s, q);
        /* the wave's tokens in input order, B at a time (an input may span calls) */
        int k = 0, i = 0;
        while (k < wn && st == OURO_OK) {
            int cn = 0;
            for (; k < wn && cn < B; k++, i = 0) {
                int take = n_ids[w0 + k] - i < B - cn ? n_ids[w0 + k] - i : B - cn;
                memcpy(tok + cn, ids[w0 + k] + i, (size_t)take * sizeof *tok);
                for (int j = 0; j < take; j++)
                    seq[cn + j] = k;
                cn += take;
                i += take;
                if (i < n_ids[w0 + k])
                    break;   /* the rest of this input in the next call */
            }
            ouro_batch b = { .n = cn, .token = tok, .seq = seq, .want = want };
            ouro_outputs o = { .exit_pdf = pdf + row * L };
            if ((st = ouro_session_forward(s, &b, &fo, &o, err)) != OURO_OK)
                break;
            row += (size_t)cn;
            if (cancel && (k < wn || w0 + wn < n_in) && cancel(cancel_ctx))
                st = ouro_err(err, OURO_ERR_INTERRUPTED, "interrupted");
        }
        for (int q = 0; q < wn; q++)
            ouro_session_seq_reset(s, q);
    }
    free(tok);
    free(seq);
    free(want);
    return st;
}

static ouro_status depth(ouro_session *s, int n_in, const int32_t *const *ids, const int *n_ids,
                         float threshold, float *pdf, double *expected, int32_t *step,
                         ouro_cancel_fn cancel, void *cancel_ctx, ouro_error *err)
{
    if (!s || n_in < 1 || !ids || !n_ids)
        return ouro_err(err, OURO_ERR_ARG, "ouro_depth: no tokens");
    size_t total = 0;
    for (int k = 0; k < n_in; k++) {
        if (!ids[k] || n_ids[k] < 1)
            return n_in == 1 ? ouro_err(err, OURO_ERR_ARG, "ouro_depth: no tokens")
                             : ouro_err(err, OURO_ERR_ARG, "ouro_depth: input %d has no tokens",
                                        k + OURO_ITEM_BASE);
        if (n_ids[k] > s->n_ctx)
            return n_in == 1 ? ouro_err(err, OURO_ERR_CONTEXT,
                                        "%d tokens do not fit the session's context of %d",
                                        n_ids[k], s->n_ctx)
                             : ouro_err(err, OURO_ERR_CONTEXT, "input %d: %d tokens do not fit the "
                                        "session's context of %d", k + OURO_ITEM_BASE, n_ids[k],
                                        s->n_ctx);
        total += (size_t)n_ids[k];
    }
    if (!(threshold <= 1.0f) || isnan(threshold))
        return ouro_err(err, OURO_ERR_ARG, "threshold %g is above 1", (double)threshold);
    const ouro_model *m = s->model;
    int L = s->max_loops;
    float *buf = pdf ? pdf : malloc(total * L * sizeof(float));
    if (!buf)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    ouro_status st = depth_pdfs(s, n_in, ids, n_ids, buf, cancel, cancel_ctx, err);
    if (st == OURO_OK) {
        for (size_t i = 0; i < total; i++) {
            const float *p = buf + i * L;
            if (expected) {
                double e = 0.0;
                for (int t = 0; t < L; t++)
                    e += (t + 1) * (double)p[t];
                expected[i] = e;
            }
            if (step) {
                if (threshold >= 0.0f)
                    step[i] = ouro_exit_qstep(p, L, threshold);
                else if (m->exit_threshold_null)
                    step[i] = L;
                else
                    step[i] = ouro_exit_qstep(p, L, m->cfg.early_exit_threshold);
            }
        }
    }
    if (buf != pdf)
        free(buf);
    return st;
}

/* ------------------------------------------------------------------------
 * Entry points: the caller's cancel check is polled inside every forward
 * call for the length of the call (forward.c), then the session's own is
 * restored.
 * ------------------------------------------------------------------------ */

ouro_status ouro_generate(ouro_session *s, int n_req, const int32_t *const *prompts,
                          const int *prompt_lens, const ouro_gen_params *params,
                          ouro_gen_result *results, ouro_error *err)
{
    if (!s || !params)
        return generate(s, n_req, prompts, prompt_lens, params, results, err);
    ouro_cancel_fn fn = s->cancel;
    void *ctx = s->cancel_ctx;
    ouro_session_set_cancel(s, params->cancel, params->cancel_ctx);
    ouro_status st = generate(s, n_req, prompts, prompt_lens, params, results, err);
    ouro_session_set_cancel(s, fn, ctx);
    return st;
}

ouro_status ouro_classify_batch(ouro_session *s, int n_inputs, const char *const *inputs,
                                const char *const *labels, int n_labels, const char *instruction,
                                const ouro_exit *exit, double *probs, double *logprobs,
                                ouro_cancel_fn cancel, void *cancel_ctx, ouro_error *err)
{
    if (!s)
        return ouro_err(err, OURO_ERR_ARG, "ouro_classify: NULL argument or no inputs");
    ouro_cancel_fn fn = s->cancel;
    void *ctx = s->cancel_ctx;
    ouro_precision prec = s->precision;
    /* exact products in the order that does not depend on the batch: an input
     * gets the same scores alone or among others (the prefix they share is
     * computed apart, and the inputs' tokens go through in varying numbers) */
    if (prec == OURO_PRECISION_EXACT)
        s->precision = OURO_PRECISION_INVARIANT;
    ouro_session_set_cancel(s, cancel, cancel_ctx);
    ouro_status st = classify_batch(s, n_inputs, inputs, labels, n_labels, instruction, exit,
                                    probs, logprobs, cancel, cancel_ctx, err);
    ouro_session_set_cancel(s, fn, ctx);
    s->precision = prec;
    return st;
}

ouro_status ouro_depth_batch(ouro_session *s, int n_inputs, const int32_t *const *ids,
                             const int *n_ids, float threshold, float *pdf, double *expected,
                             int32_t *step, ouro_cancel_fn cancel, void *cancel_ctx,
                             ouro_error *err)
{
    if (!s)
        return ouro_err(err, OURO_ERR_ARG, "ouro_depth: no tokens");
    ouro_cancel_fn fn = s->cancel;
    void *ctx = s->cancel_ctx;
    ouro_precision prec = s->precision;
    /* exact products in the order that does not depend on the batch: an input
     * gets the same depths alone or among others */
    if (prec == OURO_PRECISION_EXACT)
        s->precision = OURO_PRECISION_INVARIANT;
    ouro_session_set_cancel(s, cancel, cancel_ctx);
    ouro_status st = depth(s, n_inputs, ids, n_ids, threshold, pdf, expected, step, cancel,
                           cancel_ctx, err);
    ouro_session_set_cancel(s, fn, ctx);
    s->precision = prec;
    return st;
}

ouro_status ouro_depth(ouro_session *s, const int32_t *ids, int n_ids, float threshold,
                       float *pdf, double *expected, int32_t *step,
                       ouro_cancel_fn cancel, void *cancel_ctx, ouro_error *err)
{
    return ouro_depth_batch(s, 1, &ids, &n_ids, threshold, pdf, expected, step, cancel,
                            cancel_ctx, err);
}

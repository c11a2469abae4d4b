/*
 * forward.c -- sessions, the KV cache and the looped forward pass.
 *
 * THE LOOP.  Ouro applies one stack of N decoder layers T times per token
 * (T = total_ut_steps, or the session's max_loops, 1..16).  For each loop
 * step t = 1..T:
 *     for each layer l:   h = h + RMSNorm_in2(Attn(RMSNorm_in(h)))
 *                         h = h + RMSNorm_post2(MLP(RMSNorm_post(h)))
 *     h = RMSNorm_final(h)         the normed state is what step t+1 receives
 *     g_t = w_gate . h + b_gate    the exit gate
 * Attention is causal, with RoPE (rotate-half) and grouped-query heads;
 * MLP(x) = down(silu(gate(x)) * up(x)).
 *
 * THE GATE.  lambda_t = sigmoid(g_t); the exit distribution over the steps is
 *     p_t = lambda_t * prod_{j<t} (1 - lambda_j)   for t < L
 *     p_L = 1 - sum_{t<L} p_t                      (the remaining mass)
 * where L is the number of steps the session runs (max_loops).  With L equal
 * to total_ut_steps this is upstream's distribution; with L different it is
 * the same rule truncated or extended: the last step the session runs takes
 * the remaining mass, so the pdf always sums to one.  Everything is f32, as
 * upstream computes it, and the CDF is the running f32 sum of the p_t.
 *
 * THE EXIT.  Which step's normed state goes through lm_head:
 *     DEFAULT    Q-exit with the config's early_exit_threshold (upstream's
 *                default; a null threshold means the last step)
 *     STEP k     step k
 *     THRESHOLD  the first step whose CDF >= q, else the last
 *     WEIGHTED   logits averaged over the steps with weights p_t
 *
 * THE KV CACHE.  Per-step (the default, upstream's layout): one slot per
 * (loop step, layer), because the same layer sees a different input at every
 * step; the K/V that layer l computes at step t go to slot t * N + l.  Each
 * slot holds n_seq sequences of n_kv_heads heads of n_ctx positions of
 * head_dim values, each head's positions one after the other (attention
 * reads one head over every position: one contiguous stream):
 *     k_cache[(((slot * n_seq + seq) * n_kv_heads + kh) * n_ctx + pos) * head_dim + j]
 * Storage is f32 (exactness first) and is allocated once by ouro_session_new:
 *     2 * max_loops * N * n_seq * n_ctx * kv_dim * 4 bytes.
 * A token written at step t attends to positions 0..pos of its own sequence
 * in the slots of step t.
 *
 * The last and avg caches (the paper's smaller decode caches) keep one slot
 * per layer: L times less memory.  While a forward call runs, each of its
 * tokens writes its K/V of the current step into its own position of the
 * layer's slot, so the tokens of one call see each other's K/V of the same
 * step (as in the per-step cache) and the tokens of earlier calls through
 * what those left behind: their final step's K/V (last) or the mean over the
 * steps they ran (avg).  A prompt prefilled in one call therefore behaves
 * exactly as the reference defines these caches; a prompt longer than
 * max_batch is prefilled in several calls, and its later chunks see the
 * earlier chunks' collapsed K/V.
 *
 * ADAPTIVE DEPTH.  With OURO_DEPTH_ADAPTIVE, a decode token (the only token
 * of its sequence in the call, in a sequence that holds tokens already) stops
 * at the first step whose running exit CDF reaches the threshold (or at step
 * k for a fixed-step exit); the layers of deeper steps are not run for it,
 * and its row leaves the batch, so later steps run over fewer rows.  In the
 * per-step cache it leaves its step-k K/V in every deeper step's slot, so
 * later tokens still find a full column.  Prefill tokens run every step.
 * The exit pdf reported for a token that stopped at step k holds p_1..p_k
 * as computed and 0 for the steps it did not run.
 *
 * BATCHES.  A forward call takes tokens of many sequences; each token is
 * appended at its sequence's current length.  Calls longer than max_batch are
 * processed in chunks; all scratch memory belongs to the session.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "internal.h"

/* ------------------------------------------------------------------------
 * Sessions
 * ------------------------------------------------------------------------ */

/* calloc of a * b * c floats (or ints: el bytes), overflow-checked, on a
 * 64-byte boundary: glibc's calloc gives 16, so every AVX-512 load of a
 * cache row or an activation row would straddle two cache lines.  The byte
 * before the block holds its distance from calloc's pointer; afree frees it. */
static void *alloc3(size_t a, size_t b, size_t c, size_t el, bool *fail)
{
    size_t n;
    if (!ouro_mul_ok(a, b, &n) || !ouro_mul_ok(n, c, &n) || !ouro_mul_ok(n, el, &n)
        || !ouro_add_ok(n, 64, &n)) {
        *fail = true;
        return NULL;
    }
    unsigned char *raw = calloc(n, 1);
    if (!raw) {
        *fail = true;
        return NULL;
    }
    unsigned char *p = raw + 64 - ((uintptr_t)raw & 63);   /* 1 .. 64 bytes on */
    p[-1] = (unsigned char)(p - raw);
    return p;
}

static void afree(void *p)
{
    if (p)
        free((unsigned char *)p - ((unsigned char *)p)[-1]);
}

void ouro_session_free(ouro_session *s)
{
    if (!s)
        return;
    afree(s->seq_len);
    afree(s->seq_cnt);
    afree(s->seq_last);
    afree(s->k_cache);
    afree(s->v_cache);
    afree(s->x);
    afree(s->xb);
    afree(s->q);
    afree(s->k);
    afree(s->v);
    afree(s->att);
    afree(s->hb);
    afree(s->hb2);
    afree(s->scores);
    afree(s->hsteps);
    afree(s->gates);
    afree(s->hsel);
    afree(s->ltmp);
    afree(s->pos);
    afree(s->widx);
    afree(s->cseq);
    afree(s->act);
    afree(s->row_of);
    afree(s->done_step);
    afree(s->early);
    afree(s->rem);
    afree(s->cdf);
    afree(s->k_acc);
    afree(s->v_acc);
    afree(s->gen_logits);
    afree(s->gen_pdf);
    afree(s->gen_step);
    afree(s->gen_tok);
    afree(s->gen_seq);
    afree(s->gen_seq_fill);
    afree(s->samp_p);
    afree(s->samp_idx);
    afree(s->mm_ws.buf);
    free(s);
}

/* AUTO: exact where the tiles make it fast (ouro_cpu_amx: it runs at the
 * bf16 speed there) or where there are no bf16 dot products (bf16 would run
 * the exact kernels anyway); bf16 on AVX-512 BF16 without tiles, where the
 * exact path's f32 products run at half the speed of vdpbf16ps. */
ouro_precision ouro_precision_resolve(ouro_precision p)
{
    if (p != OURO_PRECISION_AUTO)
        return p;
    return ouro_cpu_bf16dp() && !ouro_cpu_amx() ? OURO_PRECISION_BF16 : OURO_PRECISION_EXACT;
}

/* The options with every default filled in, checked. */
static ouro_status resolve_options(const ouro_model *model, const ouro_session_options *opts,
                                   ouro_session_options *out, ouro_error *err)
{
    ouro_session_options o = {0};
    if (opts)
        o = *opts;
    const ouro_config *c = &model->cfg;
    int max_pos = c->max_position_embeddings;
    if (o.n_ctx == 0)
        o.n_ctx = max_pos < 4096 ? max_pos : 4096;
    if (o.n_seq == 0)
        o.n_seq = 1;
    if (o.max_batch == 0)
        o.max_batch = 512;
    if (o.max_loops == 0)
        o.max_loops = c->total_ut_steps;
    if (o.threads == 0)
        o.threads = ouro_default_threads();
    if (o.n_ctx < 1 || o.n_ctx > max_pos)
        return ouro_err(err, OURO_ERR_ARG, "n_ctx %d is out of range 1..%d "
                        "(max_position_embeddings)", o.n_ctx, max_pos);
    if (o.n_seq < 1 || o.n_seq > 65536)
        return ouro_err(err, OURO_ERR_ARG, "n_seq %d is out of range 1..65536", o.n_seq);
    if (o.max_batch < 1 || o.max_batch > 65536)
        return ouro_err(err, OURO_ERR_ARG, "max_batch %d is out of range 1..65536", o.max_batch);
    if (o.max_loops < 1 || o.max_loops > OURO_MAX_LOOPS)
        return ouro_err(err, OURO_ERR_ARG, "max_loops %d is out of range 1..%d",
                        o.max_loops, OURO_MAX_LOOPS);
    if (o.threads < 1 || o.threads > 1024)
        return ouro_err(err, OURO_ERR_ARG, "threads %d is out of range 1..1024", o.threads);
    if (o.kv != OURO_KV_PER_STEP && o.kv != OURO_KV_LAST && o.kv != OURO_KV_AVG)
        return ouro_err(err, OURO_ERR_ARG, "unknown KV cache mode %d", (int)o.kv);
    if (o.kv_type != OURO_KV_F16 && o.kv_type != OURO_KV_F32)
        return ouro_err(err, OURO_ERR_ARG, "unknown KV cache type %d", (int)o.kv_type);
    if (o.precision != OURO_PRECISION_EXACT && o.precision != OURO_PRECISION_BF16
        && o.precision != OURO_PRECISION_AUTO)
        return ouro_err(err, OURO_ERR_ARG, "unknown precision %d", (int)o.precision);
    o.precision = ouro_precision_resolve(o.precision);

    *out = o;
    return OURO_OK;
}

/* sum += a * b * c * el, overflow-checked. */
static bool add_bytes(size_t *sum, size_t a, size_t b, size_t c, size_t el)
{
    size_t n;
    return ouro_mul_ok(a, b, &n) && ouro_mul_ok(n, c, &n) && ouro_mul_ok(n, el, &n)
           && ouro_add_ok(*sum, n, sum);
}

/* Bytes of the KV cache and of everything else ouro_session_new allocates
 * for resolved options o (the same sizes, in the same order); false on
 * overflow. */
static bool session_sizes(const ouro_model *model, const ouro_session_options *o,
                          size_t *kv_bytes, size_t *total)
{
    const ouro_config *c = &model->cfg;
    size_t B = (size_t)o->max_batch, L = (size_t)o->max_loops, S = (size_t)o->n_seq;
    size_t D = (size_t)c->hidden_size, I = (size_t)c->intermediate_size, V = (size_t)c->vocab_size;
    size_t QD = (size_t)c->num_heads * c->head_dim, KD = (size_t)c->num_kv_heads * c->head_dim;
    size_t slots = o->kv == OURO_KV_PER_STEP ? L * (size_t)c->num_layers : (size_t)c->num_layers;
    size_t el = o->kv_type == OURO_KV_F16 ? sizeof(uint16_t) : sizeof(float);
    size_t kv = 0, t = 0;
    bool ok = add_bytes(&kv, slots, S, (size_t)o->n_ctx, KD * el * 2)
        && add_bytes(&t, S, 3, 1, sizeof(int32_t))                   /* seq_len, seq_cnt, seq_last */
        && add_bytes(&t, B, 3 * D + 2 * QD + 2 * KD + 2 * I, 1, sizeof(float)) /* x..hb2, hsel */
        && add_bytes(&t, (size_t)o->threads, (size_t)o->n_ctx, 4, sizeof(float))  /* scores */
        && add_bytes(&t, L, B, D, sizeof(float))                     /* hsteps */
        && add_bytes(&t, B, L, 1, sizeof(float))                     /* gates */
        && add_bytes(&t, OURO_LTMP_ROWS, V, 1, sizeof(float))        /* ltmp */
        && add_bytes(&t, B, 10, 1, sizeof(int32_t))                  /* pos .. cdf, gen_seq_fill */
        && (o->kv != OURO_KV_AVG || add_bytes(&t, B, (size_t)c->num_layers, KD, 2 * sizeof(float)))
        && add_bytes(&t, S, V + L + 3, 1, sizeof(float))             /* gen_logits .. gen_seq */
        && add_bytes(&t, V, 2, 1, sizeof(float));                    /* samp_p, samp_idx */
    if (ok && model->quantized) {
        size_t d_max = D > I ? D : I;
        d_max = d_max > QD ? d_max : QD;
        ok = ouro_add_ok(t, ouro_q8_act_bytes((int)B, (int)d_max), &t);
    }
    if (!ok || !ouro_add_ok(t, kv, &t))
        return false;
    *kv_bytes = kv;
    *total = t;
    return true;
}

size_t ouro_session_bytes_for(const ouro_model *model, const ouro_session_options *opts)
{
    ouro_session_options o;
    size_t kv, total;
    if (!model || resolve_options(model, opts, &o, NULL) != OURO_OK
        || !session_sizes(model, &o, &kv, &total))
        return 0;
    return total;
}

static double mib(size_t n) { return (double)n / (1024.0 * 1024.0); }

ouro_status ouro_session_check_extra(const ouro_session *s, size_t extra, const char *what,
                                     ouro_error *err)
{
    size_t want;
    if (s->max_bytes == 0)
        return OURO_OK;
    if (!ouro_add_ok(s->bytes, extra, &want) || want > s->max_bytes)
        return ouro_err(err, OURO_ERR_LIMIT, "%s needs %.1f MiB besides the session's %.1f MiB; "
                        "the limit is %.1f MiB in all", what, mib(extra), mib(s->bytes),
                        mib(s->max_bytes));
    return OURO_OK;
}

ouro_status ouro_session_new(const ouro_model *model, const ouro_session_options *opts,
                             ouro_session **out, ouro_error *err)
{
    if (out)
        *out = NULL;
    if (!model || !out)
        return ouro_err(err, OURO_ERR_ARG, "ouro_session_new: NULL argument");
    ouro_session_options o;
    ouro_status rst = resolve_options(model, opts, &o, err);
    if (rst != OURO_OK)
        return rst;
    const ouro_config *c = &model->cfg;
    size_t need_kv, need;
    if (!session_sizes(model, &o, &need_kv, &need))
        return ouro_err(err, OURO_ERR_NOMEM, "the KV cache for n_ctx %d x n_seq %d x %d loops "
                        "does not fit in memory", o.n_ctx, o.n_seq, o.max_loops);
    if (o.max_bytes && need > o.max_bytes)
        return ouro_err(err, OURO_ERR_LIMIT, "the session needs %.1f MiB (KV cache %.1f MiB for "
                        "n_ctx %d, n_seq %d, %d loops; scratch %.1f MiB for max_batch %d); "
                        "the limit is %.1f MiB", mib(need), mib(need_kv), o.n_ctx, o.n_seq,
                        o.max_loops, mib(need - need_kv), o.max_batch, mib(o.max_bytes));

    ouro_session *s = calloc(1, sizeof *s);
    if (!s)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    s->model = model;
    s->n_ctx = o.n_ctx;
    s->n_seq = o.n_seq;
    s->max_batch = o.max_batch;
    s->max_loops = o.max_loops;
    s->threads = o.threads;
    s->kv = o.kv;
    s->kv_f16 = o.kv_type == OURO_KV_F16;
    s->kv_el = s->kv_f16 ? sizeof(uint16_t) : sizeof(float);
    s->kvk = ouro_kv_kernels_for(s->kv_f16);
    s->precision = o.precision;
    s->bytes = need;
    s->max_bytes = o.max_bytes;

    size_t B = (size_t)o.max_batch, L = (size_t)o.max_loops;
    size_t D = (size_t)c->hidden_size, I = (size_t)c->intermediate_size, V = (size_t)c->vocab_size;
    size_t QD = (size_t)c->num_heads * c->head_dim, KD = (size_t)c->num_kv_heads * c->head_dim;
    size_t slots = o.kv == OURO_KV_PER_STEP ? L * (size_t)c->num_layers : (size_t)c->num_layers;
    bool fail = false;
    s->n_slots = slots;

    s->seq_len = alloc3(o.n_seq, 1, 1, sizeof(int), &fail);
    s->seq_cnt = alloc3(o.n_seq, 1, 1, sizeof(int32_t), &fail);
    s->seq_last = alloc3(o.n_seq, 1, 1, sizeof(int32_t), &fail);
    size_t kv_el = 0;
    if (!fail && (!ouro_mul_ok(slots, (size_t)o.n_seq, &kv_el) || !ouro_mul_ok(kv_el, (size_t)o.n_ctx, &kv_el)
                  || !ouro_mul_ok(kv_el, KD, &kv_el) || !ouro_mul_ok(kv_el, 2 * s->kv_el, &s->kv_bytes))) {
        ouro_session_free(s);
        return ouro_err(err, OURO_ERR_NOMEM, "the KV cache for n_ctx %d x n_seq %d x %zu slots "
                        "does not fit in memory", o.n_ctx, o.n_seq, slots);
    }
    s->k_cache = alloc3(kv_el, 1, 1, s->kv_el, &fail);
    s->v_cache = alloc3(kv_el, 1, 1, s->kv_el, &fail);
    if (fail) {
        ouro_session_free(s);
        return ouro_err(err, OURO_ERR_NOMEM, "cannot allocate the KV cache (%zu bytes for n_ctx %d, "
                        "n_seq %d, %d loops)", s->kv_bytes, o.n_ctx, o.n_seq, o.max_loops);
    }
    s->x = alloc3(B, D, 1, sizeof(float), &fail);
    s->xb = alloc3(B, D, 1, sizeof(float), &fail);
    s->q = alloc3(B, QD, 1, sizeof(float), &fail);
    s->k = alloc3(B, KD, 1, sizeof(float), &fail);
    s->v = alloc3(B, KD, 1, sizeof(float), &fail);
    s->att = alloc3(B, QD, 1, sizeof(float), &fail);
    s->hb = alloc3(B, I, 1, sizeof(float), &fail);
    s->hb2 = alloc3(B, I, 1, sizeof(float), &fail);
    s->scores = alloc3((size_t)o.threads, (size_t)o.n_ctx, 4, sizeof(float), &fail);
    s->hsteps = alloc3(L, B, D, sizeof(float), &fail);
    s->gates = alloc3(B, L, 1, sizeof(float), &fail);
    s->hsel = alloc3(B, D, 1, sizeof(float), &fail);
    s->ltmp = alloc3(OURO_LTMP_ROWS, V, 1, sizeof(float), &fail);
    s->pos = alloc3(B, 1, 1, sizeof(int32_t), &fail);
    s->widx = alloc3(B, 1, 1, sizeof(int32_t), &fail);
    s->cseq = alloc3(B, 1, 1, sizeof(int32_t), &fail);
    s->act = alloc3(B, 1, 1, sizeof(int32_t), &fail);
    s->row_of = alloc3(B, 1, 1, sizeof(int32_t), &fail);
    s->done_step = alloc3(B, 1, 1, sizeof(int32_t), &fail);
    s->early = alloc3(B, 1, 1, 1, &fail);
    s->rem = alloc3(B, 1, 1, sizeof(float), &fail);
    s->cdf = alloc3(B, 1, 1, sizeof(float), &fail);
    if (o.kv == OURO_KV_AVG) {
        s->k_acc = alloc3(B, (size_t)c->num_layers, KD, sizeof(float), &fail);
        s->v_acc = alloc3(B, (size_t)c->num_layers, KD, sizeof(float), &fail);
    }
    s->gen_logits = alloc3((size_t)o.n_seq, V, 1, sizeof(float), &fail);
    s->gen_pdf = alloc3((size_t)o.n_seq, L, 1, sizeof(float), &fail);
    s->gen_step = alloc3((size_t)o.n_seq, 1, 1, sizeof(int32_t), &fail);
    s->gen_tok = alloc3((size_t)o.n_seq, 1, 1, sizeof(int32_t), &fail);
    s->gen_seq = alloc3((size_t)o.n_seq, 1, 1, sizeof(int32_t), &fail);
    s->gen_seq_fill = alloc3(B, 1, 1, sizeof(int32_t), &fail);
    s->samp_p = alloc3(V, 1, 1, sizeof(float), &fail);
    s->samp_idx = alloc3(V, 1, 1, sizeof(int32_t), &fail);
    if (model->quantized) {   /* activations quantized for q8 and q4 products, widest input */
        size_t d_max = D > I ? D : I;
        d_max = d_max > QD ? d_max : QD;
        s->mm_ws.bytes = ouro_q8_act_bytes((int)B, (int)d_max);
        s->mm_ws.buf = alloc3(s->mm_ws.bytes, 1, 1, 1, &fail);
    }
    if (fail) {
        ouro_session_free(s);
        return ouro_err(err, OURO_ERR_NOMEM, "cannot allocate the session's scratch memory "
                        "(max_batch %d, n_seq %d)", o.max_batch, o.n_seq);
    }
    ouro_log(OURO_LOG_DEBUG, "session: n_ctx %d, n_seq %d, %d loops, KV cache %zu bytes",
             o.n_ctx, o.n_seq, o.max_loops, s->kv_bytes);
    *out = s;
    return OURO_OK;
}

size_t ouro_session_kv_bytes(const ouro_session *s) { return s->kv_bytes; }
size_t ouro_session_bytes(const ouro_session *s) { return s->bytes; }
int ouro_session_max_loops(const ouro_session *s) { return s->max_loops; }
int ouro_session_n_ctx(const ouro_session *s) { return s->n_ctx; }
int ouro_session_n_seq(const ouro_session *s) { return s->n_seq; }

int ouro_session_seq_len(const ouro_session *s, int seq)
{
    if (seq < 0 || seq >= s->n_seq)
        return 0;
    return s->seq_len[seq];
}

void ouro_session_seq_reset(ouro_session *s, int seq)
{
    if (seq >= 0 && seq < s->n_seq)
        s->seq_len[seq] = 0;
}

void ouro_session_seq_truncate(ouro_session *s, int seq, int len)
{
    if (seq >= 0 && seq < s->n_seq && len >= 0 && len < s->seq_len[seq])
        s->seq_len[seq] = len;
}

/* Address of the head_dim entries of head kh at (slot, seq, pos) in a cache. */
static inline void *kv_at(const ouro_session *s, void *cache, size_t slot, int seq, int kh, int pos)
{
    size_t kvh = (size_t)s->model->cfg.num_kv_heads, hd = (size_t)s->model->cfg.head_dim;
    return (char *)cache
           + ((((slot * (size_t)s->n_seq + (size_t)seq) * kvh + (size_t)kh) * (size_t)s->n_ctx
               + (size_t)pos) * hd) * s->kv_el;
}

/* One token's K or V (kv_dim = n_kv_heads * head_dim values, src) times
 * scale into its entries at (slot, seq, pos). */
static void kv_put(const ouro_session *s, void *cache, size_t slot, int seq, int pos,
                   const float *src, float scale)
{
    int kvh = s->model->cfg.num_kv_heads, hd = s->model->cfg.head_dim;
    for (int kh = 0; kh < kvh; kh++)
        ouro_kv_store(kv_at(s, cache, slot, seq, kh, pos), s->kv_f16, src + (size_t)kh * hd, scale, hd);
}

ouro_status ouro_session_seq_copy(ouro_session *s, int src, int dst, ouro_error *err)
{
    if (src < 0 || src >= s->n_seq || dst < 0 || dst >= s->n_seq)
        return ouro_err(err, OURO_ERR_ARG, "sequence %d or %d is out of range 0..%d",
                        src, dst, s->n_seq - 1);
    if (src == dst)
        return OURO_OK;
    size_t slots = s->n_slots;
    int kvh = s->model->cfg.num_kv_heads;
    size_t n = (size_t)s->seq_len[src] * (size_t)s->model->cfg.head_dim * s->kv_el;
    for (size_t sl = 0; sl < slots; sl++)
        for (int kh = 0; kh < kvh; kh++) {
            memcpy(kv_at(s, s->k_cache, sl, dst, kh, 0), kv_at(s, s->k_cache, sl, src, kh, 0), n);
            memcpy(kv_at(s, s->v_cache, sl, dst, kh, 0), kv_at(s, s->v_cache, sl, src, kh, 0), n);
        }
    s->seq_len[dst] = s->seq_len[src];
    return OURO_OK;
}

/* ------------------------------------------------------------------------
 * One decoder layer over a chunk of n tokens at loop step `step`
 * ------------------------------------------------------------------------ */

/* Causal attention of the chunk's tokens over their sequences' cache in
 * `slot`.  Rows go four by four: four rows of one sequence (a prompt's
 * neighbours) read each cache row once for all four (attend4); otherwise the
 * four go as two pairs, two rows of one sequence reading each cache row once
 * for both (attend2), any other pair one row after the other.  Either way
 * each row gets the same bits.  The work items are head-major, a head's
 * groups one after another, so that threads working at the same time read
 * the same head's cache rows. */
static void attention(ouro_session *s, size_t slot, int n, const int32_t *seq)
{
    const ouro_config *c = &s->model->cfg;
    int H = c->num_heads, KVH = c->num_kv_heads, hd = c->head_dim;
    int group = H / KVH;
    size_t QD = (size_t)H * hd;
    float scale = 1.0f / sqrtf((float)hd);
    size_t stride = (size_t)hd * s->kv_el;   /* bytes from one position to the next */
    int ng = (n + 3) / 4;   /* groups of four rows */
    int nt = n * H < 4 ? 1 : s->threads;

    #pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int ih = 0; ih < ng * H; ih++) {
        ouro_worker_signals();
        int i = ih % ng * 4, h = ih / ng, kh = h / group;
        size_t off = (size_t)h * hd;
#ifdef _OPENMP
        float *sc = s->scores + (size_t)omp_get_thread_num() * 4 * s->n_ctx;   /* (4, n_ctx) */
#else
        float *sc = s->scores;
#endif
        if (i + 3 < n && seq[i + 1] == seq[i] && seq[i + 2] == seq[i] && seq[i + 3] == seq[i]) {
            int r[4] = { i, i + 1, i + 2, i + 3 };
            for (int a = 1; a < 4; a++)   /* by position: the rows' counts ascend */
                for (int b = a; b > 0 && s->pos[r[b]] < s->pos[r[b - 1]]; b--) {
                    int t = r[b];
                    r[b] = r[b - 1];
                    r[b - 1] = t;
                }
            float *o[4];
            const float *q[4];
            float *scr[4];
            int np[4];
            for (int a = 0; a < 4; a++) {
                o[a] = s->att + (size_t)r[a] * QD + off;
                q[a] = s->q + (size_t)r[a] * QD + off;
                scr[a] = sc + (size_t)a * s->n_ctx;
                np[a] = s->pos[r[a]] + 1;
            }
            s->kvk.attend4(o, q, kv_at(s, s->k_cache, slot, seq[i], kh, 0),
                           kv_at(s, s->v_cache, slot, seq[i], kh, 0), stride, np, scale, scr, hd);
            continue;
        }
        for (int j = i; j < i + 4 && j < n; j += 2) {
            if (j + 1 < n && seq[j + 1] == seq[j]) {
                int a = s->pos[j] <= s->pos[j + 1] ? j : j + 1, b = a == j ? j + 1 : j;
                s->kvk.attend2(s->att + (size_t)a * QD + off, s->att + (size_t)b * QD + off,
                               s->q + (size_t)a * QD + off, s->q + (size_t)b * QD + off,
                               kv_at(s, s->k_cache, slot, seq[j], kh, 0),
                               kv_at(s, s->v_cache, slot, seq[j], kh, 0), stride,
                               s->pos[a] + 1, s->pos[b] + 1, scale, sc, sc + s->n_ctx, hd);
                continue;
            }
            for (int r = j; r < j + 2 && r < n; r++)
                s->kvk.attend(s->att + (size_t)r * QD + off, s->q + (size_t)r * QD + off,
                              kv_at(s, s->k_cache, slot, seq[r], kh, 0),
                              kv_at(s, s->v_cache, slot, seq[r], kh, 0), stride,
                              s->pos[r] + 1, scale, sc, hd);
        }
    }
}

static ouro_status poll(ouro_session *s, ouro_error *err);

/* The element-wise work between the products runs over the chunk's rows in
 * parallel from this many rows on (below it, on the calling thread: starting
 * the team would cost more than the work).  Each row is computed by one
 * thread with the same code either way, so its bits do not depend on n. */
#define OURO_ROWS_PAR 8

/* out (n, D) = RMSNorm_w(x) row by row; out may be x. */
static void norm_rows(ouro_session *s, float *out, const float *x, const ouro_tensor *w, int n)
{
    int D = s->model->cfg.hidden_size;
    float eps = s->model->cfg.rms_norm_eps;
    #pragma omp parallel for num_threads(s->threads) schedule(static) if (n >= OURO_ROWS_PAR)
    for (int i = 0; i < n; i++) {
        ouro_worker_signals();
        ouro_rmsnorm(out + (size_t)i * D, x + (size_t)i * D, w->data, w->dtype, D, eps);
    }
}

/* The end of a block, row by row: xb = RMSNorm_post(xb); x += xb; then, when
 * next is given, xb = RMSNorm_next(x) (the next block's input). */
static void residual_rows(ouro_session *s, const ouro_tensor *post, const ouro_tensor *next, int n)
{
    int D = s->model->cfg.hidden_size;
    float eps = s->model->cfg.rms_norm_eps;
    #pragma omp parallel for num_threads(s->threads) schedule(static) if (n >= OURO_ROWS_PAR)
    for (int i = 0; i < n; i++) {
        ouro_worker_signals();
        float *xb = s->xb + (size_t)i * D, *x = s->x + (size_t)i * D;
        ouro_rmsnorm(xb, xb, post->data, post->dtype, D, eps);
        ouro_add(x, xb, D);
        if (next)
            ouro_rmsnorm(xb, x, next->data, next->dtype, D, eps);
    }
}

/* RoPE on each row's q and k, and its k, v into the cache in `slot` at the
 * row's position of its sequence (every row writes its own entries). */
static void rope_store_rows(ouro_session *s, size_t slot, int n, const int32_t *seq)
{
    const ouro_model *m = s->model;
    const ouro_config *c = &m->cfg;
    int QD = c->num_heads * c->head_dim, KD = c->num_kv_heads * c->head_dim;
    #pragma omp parallel for num_threads(s->threads) schedule(static) if (n >= OURO_ROWS_PAR)
    for (int i = 0; i < n; i++) {
        ouro_worker_signals();
        ouro_rope(s->q + (size_t)i * QD, c->num_heads, s->k + (size_t)i * KD, c->num_kv_heads,
                  c->head_dim, m->inv_freq, s->pos[i]);
        kv_put(s, s->k_cache, slot, seq[i], s->pos[i], s->k + (size_t)i * KD, 1.0f);
        kv_put(s, s->v_cache, slot, seq[i], s->pos[i], s->v + (size_t)i * KD, 1.0f);
    }
}

/* One decoder layer; polls (below) between its attention and MLP blocks. */
static ouro_status decoder_layer(ouro_session *s, const ouro_layer *ly, size_t slot, int n,
                                 const int32_t *seq, ouro_error *err)
{
    const ouro_model *m = s->model;
    const ouro_config *c = &m->cfg;
    int D = c->hidden_size, I = c->intermediate_size;
    int QD = c->num_heads * c->head_dim, KD = c->num_kv_heads * c->head_dim;
    int nt = s->threads;

    /* attention block: x += RMSNorm_in2(Attn(RMSNorm_in(x))) */
    norm_rows(s, s->xb, s->x, &ly->ln_in, n);
    ouro_mm_out qkv[3] = {
        { s->q, ly->wq.data, ly->wq.dtype, QD },                         /* (n, QD) */
        { s->k, ly->wk.data, ly->wk.dtype, KD },                         /* (n, KD) */
        { s->v, ly->wv.data, ly->wv.dtype, KD },                         /* (n, KD) */
    };
    ouro_matmul_multi(qkv, 3, s->xb, n, D, nt, s->precision, &s->mm_ws);
    rope_store_rows(s, slot, n, seq);
    attention(s, slot, n, seq);                                          /* (n, QD) */
    ouro_matmul_prec(s->xb, s->att, ly->wo.data, ly->wo.dtype, n, QD, D, nt, s->precision, &s->mm_ws); /* (n, D) */
    /* and the MLP block's input y = RMSNorm_post(x) in the same pass */
    residual_rows(s, &ly->ln_in2, &ly->ln_post, n);

    ouro_status st = poll(s, err);
    if (st != OURO_OK)
        return st;

    /* MLP block: x += RMSNorm_post2(down(silu(gate(y)) * up(y))) */
    if (ly->w_gate.dtype == ly->w_up.dtype) {   /* hb = silu(gate) * up, one parallel region */
        ouro_matmul_glu(s->hb, s->hb2, s->xb, ly->w_gate.data, ly->w_up.data, ly->w_gate.dtype,
                        n, D, I, nt, s->precision, &s->mm_ws);                      /* (n, I) */
    } else {
        ouro_mm_out gu[2] = {
            { s->hb, ly->w_gate.data, ly->w_gate.dtype, I },                        /* (n, I) */
            { s->hb2, ly->w_up.data, ly->w_up.dtype, I },                           /* (n, I) */
        };
        ouro_matmul_multi(gu, 2, s->xb, n, D, nt, s->precision, &s->mm_ws);
        for (int i = 0; i < n; i++)
            ouro_silu_mul(s->hb + (size_t)i * I, s->hb2 + (size_t)i * I, I);
    }
    ouro_matmul_prec(s->xb, s->hb, ly->w_down.data, ly->w_down.dtype, n, I, D, nt, s->precision,
                     &s->mm_ws); /* (n, D) */
    residual_rows(s, &ly->ln_post2, NULL, n);
    return OURO_OK;
}

/* ------------------------------------------------------------------------
 * Forward
 * ------------------------------------------------------------------------ */

/* Step (1-based) whose state gives the logits for one exit pdf (L). */
static int choose_step(const ouro_session *s, const ouro_exit *ex, const float *pdf)
{
    int L = s->max_loops;
    switch (ex->kind) {
    case OURO_EXIT_DEFAULT:
        if (s->model->exit_threshold_null)
            return L;
        return ouro_exit_qstep(pdf, L, s->model->cfg.early_exit_threshold);
    case OURO_EXIT_STEP:
        return ex->step;
    case OURO_EXIT_THRESHOLD:
        return ouro_exit_qstep(pdf, L, ex->threshold);
    case OURO_EXIT_WEIGHTED:
        return L;
    }
    return L;
}

/* Cache slot of layer l at loop step t (0-based). */
static inline size_t slot_of(const ouro_session *s, int t, int l)
{
    return s->kv == OURO_KV_PER_STEP ? (size_t)t * s->model->cfg.num_layers + l : (size_t)l;
}

/* Whether a token that may stop early stops after 0-based step t, given its
 * running CDF: the adaptive counterpart of choose_step. */
static bool stops_after(const ouro_session *s, const ouro_exit *ex, int t, float cdf)
{
    switch (ex->kind) {
    case OURO_EXIT_DEFAULT:
        return !s->model->exit_threshold_null && cdf >= s->model->cfg.early_exit_threshold;
    case OURO_EXIT_STEP:
        return t + 1 >= ex->step;
    case OURO_EXIT_THRESHOLD:
        return cdf >= ex->threshold;
    case OURO_EXIT_WEIGHTED:
        return false;       /* needs every step */
    }
    return false;
}

/* A token of the chunk (chunk index i, active row r) stops after 0-based step
 * t: the per-step cache gets its step-t K/V in every deeper step's slot, the
 * avg cache the mean over the steps it ran. */
static void finish_token(ouro_session *s, int i, int r, int t)
{
    const ouro_config *c = &s->model->cfg;
    int NL = c->num_layers, L = s->max_loops;
    size_t KD = (size_t)c->num_kv_heads * c->head_dim;
    int sq = s->cseq[r], p = s->pos[r];
    s->done_step[i] = t + 1;
    if (s->kv == OURO_KV_PER_STEP) {
        size_t hb = (size_t)c->head_dim * s->kv_el;
        for (int l = 0; l < NL; l++)
            for (int t2 = t + 1; t2 < L; t2++)
                for (int kh = 0; kh < c->num_kv_heads; kh++) {
                    memcpy(kv_at(s, s->k_cache, slot_of(s, t2, l), sq, kh, p),
                           kv_at(s, s->k_cache, slot_of(s, t, l), sq, kh, p), hb);
                    memcpy(kv_at(s, s->v_cache, slot_of(s, t2, l), sq, kh, p),
                           kv_at(s, s->v_cache, slot_of(s, t, l), sq, kh, p), hb);
                }
    } else if (s->kv == OURO_KV_AVG) {
        float inv = 1.0f / (float)(t + 1);
        for (int l = 0; l < NL; l++) {
            const float *ka = s->k_acc + ((size_t)i * NL + l) * KD;
            const float *va = s->v_acc + ((size_t)i * NL + l) * KD;
            kv_put(s, s->k_cache, (size_t)l, sq, p, ka, inv);
            kv_put(s, s->v_cache, (size_t)l, sq, p, va, inv);
        }
    }
    /* the last cache already holds the K/V of the token's final step */
}

#define OURO_LM_HEAD_ROWS 128   /* rows of logits computed between two polls */

/* Between layers and between the two blocks of a layer, on the calling
 * thread (no parallel region is running): stops the call when a model file
 * shrank under its mapping (guard.c) or the host's cancel check asks to.  The
 * longest stretch between two polls is one block (attention or MLP) of one
 * layer over one chunk (max_batch tokens), or lm_head over 128 rows. */
static ouro_status poll(ouro_session *s, ouro_error *err)
{
    if (ouro_model_check(s->model, err) != OURO_OK)
        return OURO_ERR_MODEL_CHANGED;
    if (s->cancel && s->cancel(s->cancel_ctx))
        return ouro_err(err, OURO_ERR_INTERRUPTED, "interrupted during a forward call");
    return OURO_OK;
}

/* Runs n tokens (n <= max_batch; s->pos and s->early set per chunk index) of
 * which nw are wanted (chunk indices s->widx); writes output rows row0 ..
 * row0 + nw - 1.  Polls (above) between layers; on a stop, the outputs and
 * the chunk's cache entries are undefined.
 *
 * The rows being run are kept compact: when a token stops early (adaptive
 * depth), its row leaves x / pos / cseq and the later steps run over fewer
 * rows, so no token waits for work it does not need. */
static ouro_status forward_chunk(ouro_session *s, const int32_t *token, const int32_t *seq, int n,
                                 int nw, const ouro_exit *ex, ouro_outputs *out, int row0,
                                 ouro_error *err)
{
    ouro_status st;
    const ouro_model *m = s->model;
    const ouro_config *c = &m->cfg;
    int D = c->hidden_size, V = c->vocab_size, L = s->max_loops, NL = c->num_layers;
    size_t KD = (size_t)c->num_kv_heads * c->head_dim;
    bool want_logits = out && out->logits;

    for (int i = 0; i < n; i++) {  /* x (n, D) = embedding rows */
        ouro_row_to_f32(s->x + (size_t)i * D, m->embed.data, m->embed.dtype, (size_t)token[i], D);
        s->cseq[i] = seq[i];
        s->act[i] = i;
        s->row_of[i] = i;
        s->done_step[i] = 0;
    }
    for (int w = 0; w < nw; w++) {
        s->rem[w] = 1.0f;
        s->cdf[w] = 0.0f;
    }
    if (s->kv == OURO_KV_AVG) {
        memset(s->k_acc, 0, (size_t)n * NL * KD * sizeof(float));
        memset(s->v_acc, 0, (size_t)n * NL * KD * sizeof(float));
    }
    float bias = m->gate_b.dtype == OURO_F32 ? *(const float *)m->gate_b.data
               : m->gate_b.dtype == OURO_F16 ? ouro_f16_to_f32(*(const uint16_t *)m->gate_b.data)
               : ouro_bf16_to_f32(*(const uint16_t *)m->gate_b.data);

    int na = n;    /* active rows */
    for (int t = 0; t < L && na > 0; t++) {
        for (int l = 0; l < NL; l++) {
            if ((st = poll(s, err)) != OURO_OK)
                return st;
            if ((st = decoder_layer(s, &m->layers[l], slot_of(s, t, l), na, s->cseq, err)) != OURO_OK)
                return st;
            if (s->kv == OURO_KV_AVG)
                for (int r = 0; r < na; r++) {
                    float *ka = s->k_acc + ((size_t)s->act[r] * NL + l) * KD;
                    float *va = s->v_acc + ((size_t)s->act[r] * NL + l) * KD;
                    const float *kr = s->k + (size_t)r * KD, *vr = s->v + (size_t)r * KD;
                    for (size_t j = 0; j < KD; j++) {
                        ka[j] += kr[j];
                        va[j] += vr[j];
                    }
                }
        }
        norm_rows(s, s->x, s->x, &m->norm, na);
        int stopped = 0;
        for (int w = 0; w < nw; w++) {
            int i = s->widx[w], r = s->row_of[i];
            if (r < 0)
                continue;
            const float *x = s->x + (size_t)r * D;
            float g = ouro_dot_row(m->gate_w.data, m->gate_w.dtype, 0, x, D) + bias;
            s->gates[(size_t)w * L + t] = g;
            if (want_logits)
                memcpy(s->hsteps + ((size_t)t * s->max_batch + w) * D, x, (size_t)D * sizeof(float));
            if (!s->early[i] || t == L - 1)
                continue;
            /* the running exit CDF, in the order ouro_exit_pdf and ouro_exit_qstep use */
            s->cdf[w] += ouro_exit_advance(g, &s->rem[w]);
            if (stops_after(s, ex, t, s->cdf[w])) {
                finish_token(s, i, r, t);
                s->row_of[i] = -1;
                stopped++;
            }
        }
        if (stopped) {   /* compact the rows still running */
            int keep = 0;
            for (int r = 0; r < na; r++) {
                int i = s->act[r];
                if (s->row_of[i] < 0)
                    continue;
                if (keep != r) {
                    memcpy(s->x + (size_t)keep * D, s->x + (size_t)r * D, (size_t)D * sizeof(float));
                    s->pos[keep] = s->pos[r];
                    s->cseq[keep] = s->cseq[r];
                    s->act[keep] = i;
                }
                s->row_of[i] = keep++;
            }
            na = keep;
        }
    }
    for (int r = 0; r < na; r++)     /* tokens that ran every step */
        finish_token(s, s->act[r], r, L - 1);

    /* exit distribution and the chosen step of each wanted token */
    bool weighted = ex->kind == OURO_EXIT_WEIGHTED;
    for (int w = 0; w < nw; w++) {
        int i = s->widx[w], k = s->done_step[i];
        float pdf[OURO_MAX_LOOPS];
        int step;
        if (k < L) {
            /* stopped early at step k: the distribution of the steps it ran,
             * nothing on the steps it did not run */
            float rem = 1.0f;
            for (int t = 0; t < L; t++)
                pdf[t] = t < k ? ouro_exit_advance(s->gates[(size_t)w * L + t], &rem) : 0.0f;
            step = k;
        } else {
            ouro_exit_pdf(pdf, s->gates + (size_t)w * L, L);
            step = choose_step(s, ex, pdf);
        }
        memcpy(s->gates + (size_t)w * L, pdf, (size_t)L * sizeof(float));   /* gates now hold the pdf */
        if (out && out->exit_pdf)
            memcpy(out->exit_pdf + (size_t)(row0 + w) * L, pdf, (size_t)L * sizeof(float));
        if (out && out->exit_step)
            out->exit_step[row0 + w] = step;
        if (want_logits && !weighted)
            memcpy(s->hsel + (size_t)w * D, s->hsteps + ((size_t)(step - 1) * s->max_batch + w) * D,
                   (size_t)D * sizeof(float));
    }
    if (!want_logits || nw == 0)
        return poll(s, err);

    float *logits = out->logits + (size_t)row0 * V;   /* (nw, V) */
    if ((st = poll(s, err)) != OURO_OK)
        return st;
    if (!weighted) {
        /* in blocks of OURO_LM_HEAD_ROWS rows, with a poll after each */
        for (int w0 = 0; w0 < nw; w0 += OURO_LM_HEAD_ROWS) {
            int nr = nw - w0 < OURO_LM_HEAD_ROWS ? nw - w0 : OURO_LM_HEAD_ROWS;
            ouro_matmul_prec(logits + (size_t)w0 * V, s->hsel + (size_t)w0 * D, m->lm_head.data,
                             m->lm_head.dtype, nr, D, V, s->threads, s->precision, &s->mm_ws);
            if ((st = poll(s, err)) != OURO_OK)
                return st;
        }
        return OURO_OK;
    }
    /* weighted: logits = sum_t p_t * lm_head(h_t), accumulated in step order */
    for (int w0 = 0; w0 < nw; w0 += OURO_LTMP_ROWS) {
        int nr = nw - w0 < OURO_LTMP_ROWS ? nw - w0 : OURO_LTMP_ROWS;
        for (int t = 0; t < L; t++) {
            if ((st = poll(s, err)) != OURO_OK)
                return st;
            ouro_matmul_prec(s->ltmp, s->hsteps + ((size_t)t * s->max_batch + w0) * D, m->lm_head.data,
                             m->lm_head.dtype, nr, D, V, s->threads, s->precision, &s->mm_ws);
            for (int r = 0; r < nr; r++) {
                float p = s->gates[(size_t)(w0 + r) * L + t];
                float *dst = logits + (size_t)(w0 + r) * V;
                const float *src = s->ltmp + (size_t)r * V;
                if (t == 0)
                    for (int j = 0; j < V; j++)
                        dst[j] = src[j] * p;
                else
                    for (int j = 0; j < V; j++)
                        dst[j] += src[j] * p;
            }
        }
    }
    return poll(s, err);
}

ouro_status ouro_session_forward(ouro_session *s, const ouro_batch *batch,
                                 const ouro_forward_options *fopts, ouro_outputs *out,
                                 ouro_error *err)
{
    if (!s || !batch)
        return ouro_err(err, OURO_ERR_ARG, "ouro_session_forward: NULL argument");
    const ouro_config *c = &s->model->cfg;
    int n = batch->n;
    if (n < 1 || !batch->token || !batch->seq)
        return ouro_err(err, OURO_ERR_ARG, "the batch is empty");
    ouro_threads_prepare(s->threads);
    ouro_exit ex = {0};
    bool adaptive = false;
    if (fopts) {
        ex = fopts->exit;
        if (fopts->depth != OURO_DEPTH_FULL && fopts->depth != OURO_DEPTH_ADAPTIVE)
            return ouro_err(err, OURO_ERR_ARG, "unknown depth mode %d", (int)fopts->depth);
        adaptive = fopts->depth == OURO_DEPTH_ADAPTIVE;
    }
    switch (ex.kind) {
    case OURO_EXIT_DEFAULT:
    case OURO_EXIT_WEIGHTED:
        break;
    case OURO_EXIT_STEP:
        if (ex.step < 1 || ex.step > s->max_loops)
            return ouro_err(err, OURO_ERR_ARG, "exit step %d is out of range 1..%d (max_loops)",
                            ex.step, s->max_loops);
        break;
    case OURO_EXIT_THRESHOLD:
        if (!(ex.threshold >= 0.0f && ex.threshold <= 1.0f))
            return ouro_err(err, OURO_ERR_ARG, "exit threshold %g is out of range 0..1",
                            (double)ex.threshold);
        break;
    default:
        return ouro_err(err, OURO_ERR_ARG, "unknown exit kind %d", (int)ex.kind);
    }

    /* Validate everything before touching the cache. */
    memset(s->seq_cnt, 0, (size_t)s->n_seq * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int32_t tk = batch->token[i], sq = batch->seq[i];
        if (tk < 0 || tk >= c->vocab_size)
            return ouro_err(err, OURO_ERR_ARG, "token %d (batch entry %d) is out of range 0..%d",
                            tk, i, c->vocab_size - 1);
        if (sq < 0 || sq >= s->n_seq)
            return ouro_err(err, OURO_ERR_ARG, "sequence %d (batch entry %d) is out of range 0..%d",
                            sq, i, s->n_seq - 1);
        s->seq_cnt[sq]++;
        s->seq_last[sq] = i;
    }
    for (int q = 0; q < s->n_seq; q++)
        if (s->seq_cnt[q] && s->seq_len[q] + s->seq_cnt[q] > s->n_ctx)
            return ouro_err(err, OURO_ERR_CONTEXT, "sequence %d would hold %d tokens; the "
                            "session's context is %d", q, s->seq_len[q] + s->seq_cnt[q], s->n_ctx);

    /* Chunks of at most max_batch tokens, in batch order. */
    int row = 0;
    for (int c0 = 0; c0 < n; c0 += s->max_batch) {
        int cn = n - c0 < s->max_batch ? n - c0 : s->max_batch;
        const int32_t *tok = batch->token + c0, *sq = batch->seq + c0;
        int nw = 0;
        for (int i = 0; i < cn; i++) {
            s->pos[i] = s->seq_len[sq[i]]++;
            bool w = batch->want ? batch->want[c0 + i] != 0 : s->seq_last[sq[i]] == c0 + i;
            if (w)
                s->widx[nw++] = i;
            /* adaptive depth: a decode step (the only token of a sequence that
             * holds tokens already) may stop early; prefill runs every step */
            s->early[i] = adaptive && w && s->seq_cnt[sq[i]] == 1 && s->pos[i] > 0;
        }
        ouro_status st = forward_chunk(s, tok, sq, cn, nw, &ex, out, row, err);
        if (st != OURO_OK) {
            /* the chunk's tokens are not in the cache: earlier chunks stay */
            for (int i = 0; i < cn; i++)
                s->seq_len[sq[i]]--;
            return st;
        }
        row += nw;
    }
    return OURO_OK;
}

void ouro_session_set_cancel(ouro_session *s, ouro_cancel_fn cancel, void *ctx)
{
    s->cancel = cancel;
    s->cancel_ctx = ctx;
}

/*
 * internal.h -- structures and helpers shared by the files of the ouro core.
 *
 * Nothing here is part of the public contract (core/ouro.h).  The files of the
 * core, in the order data flows through them:
 *   base.c      the ground floor (base.h): fp16/bf16, dtypes, CPU detection
 *   util.c      status strings, errors, logging, build information
 *   kernels.c   the matrix products (y = W x)
 *   quant.c     the 8-bit block-quantized weight format (q8) and its products
 *   quant4.c    the 4-bit block-quantized weight format (q4) and its products
 *   math.c      RMSNorm, RoPE, softmax, the exit distribution
 *   loader.c    config.json + safetensors -> ouro_model (mmap, validation)
 *   forward.c   sessions, KV cache and the looped forward pass
 *   generate.c  sampling, generation, classification, depth
 *   convert.c   `ouro convert`: writes a checkpoint's matrices as q8
 *   guard.c     SIGBUS on a model file truncated under its mapping ends the
 *               call (OURO_ERR_MODEL_CHANGED), not the process
 */
#ifndef OURO_INTERNAL_H
#define OURO_INTERNAL_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>
#include "ouro.h"
#include "base.h"
#ifdef OURO_X86_SIMD
#include <immintrin.h>   /* the AMX tile configuration below */
#endif
#include "ouro_surface.h"

/* ------------------------------------------------------------------------
 * Errors and logging (util.c)
 * ------------------------------------------------------------------------ */

/* Fills err (when not NULL) with status and a printf-style message; returns status. */
ouro_status ouro_err(ouro_error *err, ouro_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Worker threads and signals.  A host's signal handlers (PostgreSQL's
 * SIGINT, SIGALRM, SIGTERM...) must run on the host's thread, never on one of
 * the core's OpenMP workers.  A new thread inherits the signal mask of the
 * thread that starts it, so ouro_threads_prepare(threads) starts the calling
 * thread's team from a region run with every asynchronous signal blocked
 * (faults stay deliverable for guard.c; work only when
 * the count differs from its last call on this thread); every compute entry
 * point calls it.  ouro_worker_signals(), first in every parallel region,
 * blocks every signal in a worker the team started later (libgomp may start
 * new workers when team sizes change); once per thread. */
void ouro_threads_prepare(int threads);
void ouro_worker_signals(void);

/* Sends a message to the log callback, if one is set. */
void ouro_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checked size arithmetic: return false on overflow. */
static inline bool ouro_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool ouro_add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* ------------------------------------------------------------------------
 * Kernels (kernels.c): the one place matrix products happen
 * ------------------------------------------------------------------------ */

/* Memory for what a product needs besides x and W (x quantized for q8
 * weights): ouro_q8_act_bytes(n, d_in) bytes.  The products take one; NULL
 * or too small: they allocate for the call (and write NaN to y if they cannot). */
typedef struct ouro_mm_ws {
    void *buf;
    size_t bytes;
} ouro_mm_ws;

/* Converts row `row` of a (rows, cols) matrix w of dtype dt into out (cols) f32. */
void ouro_row_to_f32(float *out, const void *w, ouro_dtype dt, size_t row, int cols);

/* y (n, d_out) = x (n, d_in) . W^T, W (d_out, d_in) row-major in dtype dt,
 * converted to f32 on the fly, f32 accumulation.  Parallel over the rows of W
 * with `threads` OpenMP threads. */
void ouro_matmul(float *y, const float *x, const void *w, ouro_dtype dt,
                 int n, int d_in, int d_out, int threads);

/* ouro_matmul with a choice of precision: OURO_PRECISION_BF16 rounds x to
 * bf16 (nearest even) and uses AVX-512 BF16 dot products (f32 sums) for BF16
 * weights where the processor has them; other dtypes and processors take the
 * exact path.  Q8 weights always take quantized activations (quant.c). */
void ouro_matmul_prec(float *y, const float *x, const void *w, ouro_dtype dt,
                      int n, int d_in, int d_out, int threads, ouro_precision prec, ouro_mm_ws *ws);

/* A precision of the core's own (no session is created with it): the exact
 * products, each output element summed in one order whatever the number of
 * tokens in the call (kernels.c, "Order of the sums").  Classification runs
 * its forward calls with it, so that an input's scores do not depend on the
 * inputs batched with it.  Slower than exact only on AVX-512 at one token. */
#define OURO_PRECISION_INVARIANT ((ouro_precision)0x100)

/* One output of ouro_matmul_multi: y (n, d_out) = x . W^T, W (d_out, d_in). */
typedef struct ouro_mm_out {
    float *y;                /* (n, d_out), written */
    const void *w;           /* (d_out, d_in) in dtype dt, not owned */
    ouro_dtype dt;
    int d_out;
} ouro_mm_out;

/* Several products of the same x (n, d_in) in one parallel region: the rows
 * of all the W are split among the threads as one list.  Each y is exactly
 * what ouro_matmul_prec would write. */
void ouro_matmul_multi(const ouro_mm_out *outs, int count, const float *x, int n, int d_in,
                       int threads, ouro_precision prec, ouro_mm_ws *ws);

/* The gated MLP input in one parallel region:
 * h (n, d_out) = silu(x . Wg^T) * (x . Wu^T), computed as
 * g / (1 + expf(-g)) * u; tmp (n, d_out) is scratch. */
void ouro_matmul_glu(float *h, float *tmp, const float *x, const void *w_gate, const void *w_up,
                     ouro_dtype dt, int n, int d_in, int d_out, int threads, ouro_precision prec,
                     ouro_mm_ws *ws);

/* Dot product of row `row` of W (d_in) with x (d_in) in f32. */
float ouro_dot_row(const void *w, ouro_dtype dt, size_t row, const float *x, int d_in);

/* ------------------------------------------------------------------------
 * q8 weights (quant.c; the format is described there).  Data is 64-byte aligned.
 * ------------------------------------------------------------------------ */

/* Bytes of one group of 16 rows of a q8 matrix with cols columns, and of a
 * (rows, cols) matrix. */
size_t ouro_q8_group_bytes(int64_t cols);
size_t ouro_q8_bytes(int64_t rows, int64_t cols);

/* Writes n_rows (1..16) f32 rows (n_rows, cols) as one q8 group at dst
 * (ouro_q8_group_bytes(cols) bytes, 64-byte aligned); missing rows are zero. */
void ouro_q8_quantize_group(uint8_t *dst, const float *rows, int n_rows, int64_t cols);

/* Row `row` of q8 matrix w dequantized into out (cols); its dot product with x. */
void ouro_q8_row_to_f32(float *out, const void *w, size_t row, int64_t cols);
float ouro_q8_dot_row(const void *w, size_t row, const float *x, int64_t cols);

#ifdef OURO_X86_SIMD
/* An AMX tile configuration (palette 1): tile i has rows[i] rows of
 * colsb[i] bytes.  ouro_amx_load loads it on the calling thread; every
 * thread that uses the tiles loads one and calls _tile_release() when done. */
typedef struct ouro_amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} ouro_amx_config;

__attribute__((target("amx-tile"))) static inline void ouro_amx_load(const ouro_amx_config *cfg)
{
    /* GCC 12 does not count ldtilecfg as a read of *cfg, and may drop the
     * stores that filled it (seen in a test program): a compiler barrier */
    __asm__ volatile("" : : "r"(cfg) : "memory");
    _tile_loadconfig(cfg);
}
#endif

/* Quantized activations: ouro_q8_prepare fills ws (ouro_q8_act_bytes(n, d_in)
 * bytes) from x (n, d_in) for products with weights of format wdt (OURO_Q8
 * or OURO_Q4: the AMX tile layout is written only where that format's
 * products take the tiles), over up to `threads` threads from 8 tokens on
 * (each token on one thread: the same bytes for any count); ouro_q8_rows
 * then computes rows r0 .. r1-1 of y (n, d_out) = x . W^T for q8 weights w,
 * on the calling thread. */
size_t ouro_q8_act_bytes(int n, int d_in);
void ouro_q8_prepare(void *ws, const float *x, int n, int d_in, int threads, ouro_dtype wdt);
void ouro_q8_rows(float *y, const void *ws, const void *w, int n, int d_in, int d_out, int r0, int r1);

/* The quantized activations inside ws as the kernels read them (the layout
 * ouro_q8_prepare wrote for n tokens of d_in values). */
typedef struct ouro_q8_act {
    const int8_t *q;         /* (n, nb * 32) x_q, zero-padded */
    const float *s;          /* (n, nb) scales */
    const int32_t *c;        /* (n, nb) -128 * sum of the block's x_q */
    int nb;                  /* blocks of 32 per token */
    /* for the AMX tiles (ouro_q8_prepare_tiles, called by ouro_q8_prepare
     * where those will be used), the same again in tiles of 16 tokens (the
     * tokens past n zero), tile after tile and block after block: */
    const int8_t *xt;        /* (ceil(n / 16), nb, 16, 32) x_q */
    const float *st;         /* (ceil(n / 16), nb, 16) s */
} ouro_q8_act;
ouro_q8_act ouro_q8_act_view(const void *ws, int n, int d_in);

/* Fills xt and st of ws from its x_q and s: ouro_q8_prepare does it where
 * the AMX path will read them; tests call it to run that path at any n. */
void ouro_q8_prepare_tiles(void *ws, int n, int d_in, int threads);

/* Rows r0 .. r1-1 of y (n, d_out) = x . W^T for q8 weights w (q4 weights
 * when q4) with AMX int8 tiles (quant.c), the same bits as the other paths;
 * only where ouro_cpu_amx(), on the activations of ouro_q8_prepare_tiles.
 * q8 and q4 products take this path from OURO_Q8_AMX_MIN / OURO_Q4_AMX_MIN
 * tokens on: below, the VNNI kernels (their token tiles sharing each chunk
 * of weights) were as fast or faster (Ouro-1.4B shapes, 2 threads, Sapphire
 * Rapids, batched decode: q4 VNNI 5% ahead at 12, the tiles 14% ahead at 16;
 * q8 VNNI 12-17% ahead of the unpacked tiles at 16, level at 24, and 3%
 * behind the tiles reading the weights in place at 16 at the median of
 * seven pairs, from 6% ahead to 8% behind; VNNI ahead at 8 either way). */
#define OURO_Q8_AMX_MIN 16
#define OURO_Q4_AMX_MIN 16
void ouro_qamx_rows(float *y, const ouro_q8_act *a, const void *w, bool q4, int n, int d_out,
                    int r0, int r1);

/* The kernels of one block-quantized format (q8: quant.c, q4: quant4.c),
 * for the row driver both share (ouro_qrows, quant.c).  Each kernel takes
 * the quantized activations a, tokens from t0, and a group's bytes g, and
 * stores rows lo .. hi-1 (or the rows in mask) of the group. */
#define OURO_Q_NR 6   /* most tokens per VNNI microkernel */
typedef struct ouro_qformat {
    bool q4;                              /* the weights' format, for ouro_qamx_rows */
    int amx_min;                          /* tokens from which the AMX tiles take the product */
    size_t (*group_bytes)(int64_t cols);
    void (*group_c)(float *y, const ouro_q8_act *a, int t, const uint8_t *g, int lo, int hi);
#ifdef OURO_X86_SIMD
    /* AVX2, 1 and 2 tokens */
    void (*group_avx2[2])(float *y, size_t ldy, const ouro_q8_act *a, int t0, const uint8_t *g,
                          int lo, int hi);
    /* AVX-512 VNNI: [groups - 1][tokens - 1] for 1 or 2 groups over blocks b0 .. b1-1
     * (totals kept in acc between calls; prefetch mode pf: quant.c), and 4 groups of 1
     * token over all blocks (next: the 4 groups read next, or NULL, for its prefetches) */
    void (*vnni[2][OURO_Q_NR])(float *y, size_t ldy, const ouro_q8_act *a, int t0,
                               const uint8_t *g, size_t gstride, const __mmask16 *mask,
                               int b0, int b1, float *acc, int pf);
    void (*vnni_4x1)(float *y, const ouro_q8_act *a, const uint8_t *g, size_t gstride,
                     const uint8_t *next, const __mmask16 *mask);
#endif
} ouro_qformat;

/* Rows r0 .. r1-1 of y (n, d_out) = x . W^T for weights w of format f, on
 * the activations ouro_q8_prepare wrote into ws, on the calling thread. */
void ouro_qrows(const ouro_qformat *f, float *y, const void *ws, const void *w, int n, int d_in,
                int d_out, int r0, int r1);

/* ------------------------------------------------------------------------
 * q4 weights (quant4.c; the format is described there).  Data is 64-byte
 * aligned.  The products take the activations of ouro_q8_prepare.
 * ------------------------------------------------------------------------ */

size_t ouro_q4_group_bytes(int64_t cols);
size_t ouro_q4_bytes(int64_t rows, int64_t cols);

/* Writes n_rows (1..16) f32 rows (n_rows, cols) as one q4 group at dst
 * (ouro_q4_group_bytes(cols) bytes, 64-byte aligned); missing rows are zero. */
void ouro_q4_quantize_group(uint8_t *dst, const float *rows, int n_rows, int64_t cols);

/* Row `row` of q4 matrix w dequantized into out (cols); its dot product with x. */
void ouro_q4_row_to_f32(float *out, const void *w, size_t row, int64_t cols);
float ouro_q4_dot_row(const void *w, size_t row, const float *x, int64_t cols);

/* Rows r0 .. r1-1 of y (n, d_out) = x . W^T for q4 weights w, on the calling
 * thread; ws holds x quantized by ouro_q8_prepare. */
void ouro_q4_rows(float *y, const void *ws, const void *w, int n, int d_in, int d_out, int r0, int r1);

/* ------------------------------------------------------------------------
 * Math (math.c), f32 throughout, as the reference computes it
 * ------------------------------------------------------------------------ */

/* out (d) = weight (d, dtype) * x / sqrt(mean(x^2) + eps); out may alias x. */
void ouro_rmsnorm(float *out, const float *x, const void *weight, ouro_dtype dt, int d, float eps);
void ouro_add(float *x, const float *y, int n);   /* x += y */
/* h = silu(h) * u element by element (silu(g) = g / (1 + expf(-g))), and
 * expf of 16 values: on AVX-512 with the C library expf's bits (math.c). */
void ouro_silu_mul(float *h, const float *u, int n);
void ouro_expf16(float *y, const float *x);

/* inv_freq (head_dim / 2) = 1 / theta^(2i / head_dim), in f32 as the reference. */
void ouro_rope_inv_freq(float *inv_freq, int head_dim, double theta);

/* Rotates the nq heads of q (nq, head_dim) and the nk heads of k (nk,
 * head_dim; k may be NULL when nk is 0) in place at position pos
 * (rotate-half form: x * cos + rotate_half(x) * sin), each angle's cosine
 * and sine computed once for both. */
void ouro_rope(float *q, int nq, float *k, int nk, int head_dim, const float *inv_freq, int pos);

/* x (n) = softmax(x) in place (max-subtracted). */
void ouro_softmax(float *x, int n);

/* log(sum(exp(x))) of x (n). */
double ouro_logsumexp(const float *x, int n);

/* One step of the exit recurrence, the one place it is written:
 * lambda = sigmoid(g); returns the exit probability of this step,
 * lambda * *rem, and leaves *rem = *rem * (1 - lambda), the mass not yet
 * assigned.  f32, in this order, as the reference computes it. */
static inline float ouro_exit_advance(float g, float *rem)
{
    float lambda = 1.0f / (1.0f + expf(-g));
    float p = lambda * *rem;
    *rem = *rem * (1.0f - lambda);
    return p;
}

/* Exit distribution from the per-step gate logits g (L):
 * lambda_t = sigmoid(g_t); p_t = lambda_t * prod_{j<t} (1 - lambda_j) for
 * t < L, p_L = the remaining mass; f32 as the reference. */
void ouro_exit_pdf(float *pdf, const float *gate, int L);

/* 1-based Q-exit step: the first t whose f32 running sum of pdf reaches q,
 * else L. */
int ouro_exit_qstep(const float *pdf, int L, float q);

/* Attention over cache rows stored as f32 or f16 (math.c). */
typedef struct ouro_kv_kernels {
    float (*dot)(const float *q, const void *k, int n);        /* q . k */
    void (*axpy)(float *o, float a, const void *v, int n);      /* o += a * v */
    /* One query head q (n) over npos cache rows k_p, v_p (n each, stride
     * bytes apart from k, v): sc (npos, scratch) = softmax(q . k_p * scale),
     * o (n) = sum_p sc[p] * v_p; the same bits as dot, softmax and axpy on a
     * zeroed o in position order. */
    void (*attend)(float *o, const float *q, const void *k, const void *v, size_t stride,
                   int npos, float scale, float *sc, int n);
    /* attend for two queries qa, qb of one head over the same rows, the
     * first over na, the second over nb >= na positions (sca, scb: their
     * scratch); each result has the bits attend gives it alone. */
    void (*attend2)(float *oa, float *ob, const float *qa, const float *qb, const void *k,
                    const void *v, size_t stride, int na, int nb, float scale, float *sca,
                    float *scb, int n);
    /* attend for four queries q[r] of one head over the same rows, query r
     * over n[r] positions, n[0] <= n[1] <= n[2] <= n[3] (sc[r]: its scratch,
     * n[r] entries); each result has the bits attend gives it alone. */
    void (*attend4)(float *const o[4], const float *const q[4], const void *k, const void *v,
                    size_t stride, const int n[4], float scale, float *const sc[4], int hd);
} ouro_kv_kernels;

/* The fastest kernels this processor runs for the cache's element type. */
ouro_kv_kernels ouro_kv_kernels_for(bool f16);

/* dst (n, f16 or f32) = src * scale, rounded to nearest even for f16. */
void ouro_kv_store(void *dst, bool f16, const float *src, float scale, int n);

/* ------------------------------------------------------------------------
 * Model (loader.c)
 * ------------------------------------------------------------------------ */

/* A tensor used in place inside a mapped file. */
typedef struct ouro_tensor {
    const void *data;        /* points into a read-only mapping, not owned */
    ouro_dtype dtype;
    int64_t shape[2];        /* rows, cols (cols = 1 for vectors: shape[1] unused) */
} ouro_tensor;

typedef struct ouro_layer {
    ouro_tensor wq;          /* (n_heads * head_dim, hidden) */
    ouro_tensor wk;          /* (n_kv_heads * head_dim, hidden) */
    ouro_tensor wv;          /* (n_kv_heads * head_dim, hidden) */
    ouro_tensor wo;          /* (hidden, n_heads * head_dim) */
    ouro_tensor w_gate;      /* (intermediate, hidden) */
    ouro_tensor w_up;        /* (intermediate, hidden) */
    ouro_tensor w_down;      /* (hidden, intermediate) */
    ouro_tensor ln_in;       /* (hidden) input_layernorm */
    ouro_tensor ln_in2;      /* (hidden) input_layernorm_2 (after attention) */
    ouro_tensor ln_post;     /* (hidden) post_attention_layernorm */
    ouro_tensor ln_post2;    /* (hidden) post_attention_layernorm_2 (after the MLP) */
} ouro_layer;

/* Names of a layer's tensors after "model.layers.N.", in the order of the
 * fields of ouro_layer (loader.c). */
#define OURO_LAYER_TENSORS 11
extern const char *const ouro_layer_tensor_names[OURO_LAYER_TENSORS];

/* ------------------------------------------------------------------------
 * Mapped files that change under a call (guard.c)
 * ------------------------------------------------------------------------ */

/* Registers a read-only file mapping (installing the SIGBUS handler on first
 * use); returns its slot, or -1 when every slot is taken (the mapping is then
 * unguarded).  Unregister before munmap. */
int ouro_guard_register(void *map, size_t len);
void ouro_guard_unregister(int slot);

/* True once a read of the mapping in `slot` faulted (its file shrank): the
 * mapping now reads as zeros. */
bool ouro_guard_faulted(int slot);

typedef struct ouro_mapped_file {
    char *path;              /* absolute path, owned */
    void *map;               /* mmap'd read-only, NULL for files only stat'ed */
    int guard;               /* guard.c slot of map, -1 when none */
    size_t size;
    size_t map_len;          /* bytes to munmap at map: size, or a copy's (OURO_WEIGHTS_MEMORY)
                                rounded length */
    dev_t dev;
    ino_t ino;
    int64_t mtime_ns;
} ouro_mapped_file;

/* Of the model's weight files: *mapped their bytes, *huge the bytes the
 * process maps with 2 MB pages now (FilePmdMapped of /proc/self/smaps, or
 * AnonHugePages for a copy in memory: OURO_WEIGHTS_MEMORY).  Pages
 * are mapped as they are first read, so only after a forward call is the
 * figure meaningful.  Returns false when /proc/self/smaps cannot be read (no
 * procfs, not Linux): the page size is unknown then. */
bool ouro_model_huge_bytes(const ouro_model *m, size_t *mapped, size_t *huge);

/* *huge: the bytes of this process's mappings inside [p, p + n) that are mapped
 * with 2 MB pages now (FilePmdMapped or AnonHugePages of /proc/self/smaps).  Returns false when
 * that file cannot be read. */
bool ouro_pmd_bytes(const void *p, size_t n, size_t *huge);

struct ouro_model {
    ouro_config cfg;
    bool exit_threshold_null;    /* early_exit_threshold was null: default = last step */
    char *path;                  /* absolute folder path, owned */
    ouro_mapped_file *files;     /* (n_files) weights, config, tokenizer..., owned */
    int n_files;
    ouro_tokenizer *tok;         /* owned; NULL without tokenizer.json */
    size_t n_params;
    size_t mapped_bytes;
    ouro_weights weights;        /* how the weight files were brought in */
    bool quantized;              /* the matrices are q8 or q4 (written by ouro_convert) */

    ouro_tensor embed;           /* (vocab, hidden) */
    ouro_tensor norm;            /* (hidden) final RMSNorm */
    ouro_tensor gate_w;          /* (1, hidden) exit gate */
    ouro_tensor gate_b;          /* (1) */
    ouro_tensor lm_head;         /* (vocab, hidden); = embed when tied */
    ouro_layer *layers;          /* (num_layers), owned */
    float *inv_freq;             /* (head_dim / 2) RoPE frequencies, owned */
};

/* ------------------------------------------------------------------------
 * Session (forward.c)
 * ------------------------------------------------------------------------ */

struct ouro_session {
    const ouro_model *model;     /* not owned */
    ouro_cancel_fn cancel;       /* polled between layers; NULL = never */
    void *cancel_ctx;
    size_t bytes;                /* KV cache and scratch held */
    size_t max_bytes;            /* limit on bytes + a call's own buffers; 0 = none */
    int n_ctx, n_seq, max_batch, max_loops, threads;
    ouro_kv_mode kv;
    int *seq_len;                /* (n_seq) tokens held by each sequence */
    int32_t *seq_cnt;            /* (n_seq) tokens of each sequence in a forward call */
    int32_t *seq_last;           /* (n_seq) batch index of each sequence's last token */

    /* KV cache, f32: slot = step * num_layers + layer (per-step cache) or
     * layer (last / avg caches); n_slots of them;
     * k_cache[((slot * n_seq + seq) * n_ctx + pos) * kv_dim + j] */
    void *k_cache;               /* f16 (uint16_t) or f32 entries */
    void *v_cache;
    bool kv_f16;
    size_t kv_el;                /* bytes of one entry: 2 or 4 */
    ouro_kv_kernels kvk;         /* attention kernels for the entry type */
    ouro_precision precision;    /* matrix products: exact or bf16 activations */
    size_t n_slots;
    size_t kv_bytes;
    float *k_acc;                /* (B, num_layers, kv_dim) avg cache: sums over steps; else NULL */
    float *v_acc;

    /* scratch, allocated once (B = max_batch) */
    float *x;                    /* (B, hidden) residual stream */
    float *xb;                   /* (B, hidden) normed input / branch output */
    float *q;                    /* (B, n_heads * head_dim) */
    float *k;                    /* (B, kv_dim) */
    float *v;                    /* (B, kv_dim) */
    float *att;                  /* (B, n_heads * head_dim) attention output */
    float *hb;                   /* (B, intermediate) */
    float *hb2;                  /* (B, intermediate) */
    float *scores;               /* (threads, 4, n_ctx) attention scores */
    float *hsteps;               /* (max_loops, B, hidden) normed state of wanted tokens per step */
    float *gates;                /* (B, max_loops) gate logits, then exit pdf, of wanted tokens */
    float *hsel;                 /* (B, hidden) selected state for lm_head */
    float *ltmp;                 /* (OURO_LTMP_ROWS, vocab) logits of one step (weighted mode) */
    int32_t *pos;                /* (B) position of each token of the chunk */
    int32_t *widx;               /* (B) row in the chunk of each wanted token */
    int32_t *cseq;               /* (B) sequence of each active row */
    int32_t *act;                /* (B) chunk index of each active row */
    int32_t *row_of;             /* (B) active row of each chunk index, -1 once stopped */
    int32_t *done_step;          /* (B) 1-based step each chunk token stopped at, 0 = running */
    uint8_t *early;              /* (B) the chunk token may stop before the last step */
    float *rem;                  /* (B) per wanted token: exit mass not yet assigned */
    float *cdf;                  /* (B) per wanted token: running exit CDF */

    /* generation scratch */
    float *gen_logits;           /* (n_seq, vocab) */
    float *gen_pdf;              /* (n_seq, max_loops) */
    int32_t *gen_step;           /* (n_seq) exit step of each row of gen_logits */
    int32_t *gen_tok;            /* (n_seq) decode tokens of one step */
    int32_t *gen_seq;            /* (n_seq) sequence of each decode token */
    int32_t *gen_seq_fill;       /* (B) sequence ids of a prefill chunk */
    float *samp_p;               /* (vocab) */
    int32_t *samp_idx;           /* (vocab) */
    ouro_mm_ws mm_ws;            /* quantized activations (q8 models; else empty) */
};

#define OURO_LTMP_ROWS 8

/* OURO_ERR_LIMIT when `extra` more bytes for `what` would take the session
 * past its max_bytes; else OURO_OK. */
ouro_status ouro_session_check_extra(const ouro_session *s, size_t extra, const char *what,
                                     ouro_error *err);

/* Shortens sequence `seq` to its first `len` tokens (len <= its length). */
void ouro_session_seq_truncate(ouro_session *s, int seq, int len);

#endif /* OURO_INTERNAL_H */

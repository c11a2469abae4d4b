/*
 * ouro.h -- the one public header of the ouro runtime.
 *
 * ouro runs ByteDance's Ouro looped language models on the CPU.  A model is a
 * folder as published on Hugging Face (config.json, safetensors weights,
 * tokenizer.json); its weights are mapped read-only and used in place, so every
 * process that loads the same files shares one copy in the page cache.
 *
 * Conventions (see STYLE in the README):
 *   - Opaque handles (ouro_model, ouro_tokenizer, ouro_session), functions named
 *     ouro_<thing>_<verb>.
 *   - Every fallible function returns an ouro_status and, when `err` is not
 *     NULL, fills it with a message that names the file / tensor / argument.
 *   - The library never exits, aborts or prints.  Diagnostics go to the log
 *     callback set with ouro_set_log().
 *   - Memory handed to the caller is allocated with malloc() and released with
 *     the matching ouro_*_free / ouro_free() call, as each function says.
 *   - Thread safety: a loaded ouro_model and ouro_tokenizer are immutable and may
 *     be used from many threads at once.  An ouro_session belongs to one thread
 *     at a time.
 */
#ifndef OURO_H
#define OURO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OURO_VERSION "0.2.0"
#define OURO_MAX_LOOPS 16   /* most loop steps a forward pass may run */
#define OURO_MAX_EOS 64     /* most distinct end-of-sequence ids; more is an error */

/* ------------------------------------------------------------------------
 * Status, errors, logging
 * ------------------------------------------------------------------------ */

typedef enum ouro_status {
    OURO_OK = 0,
    OURO_ERR_IO,           /* a file is missing or unreadable */
    OURO_ERR_FORMAT,       /* a file is malformed (bad JSON, truncated, wrong shape) */
    OURO_ERR_UNSUPPORTED,  /* well-formed, but a configuration ouro does not run */
    OURO_ERR_ARG,          /* a caller's argument is out of range */
    OURO_ERR_NOMEM,        /* out of memory */
    OURO_ERR_CONTEXT,      /* a sequence would exceed the session's context */
    OURO_ERR_INTERRUPTED,  /* the host's cancel check asked to stop */
    OURO_ERR_INTERNAL,     /* a broken invariant (a bug in ouro) */
    OURO_ERR_MODEL_CHANGED,/* a model file was truncated or overwritten while a call
                              read it: the call stopped; free the model and load again */
    OURO_ERR_LIMIT         /* the call needs more than a limit the host set
                              (ouro_session_options.max_bytes) */
} ouro_status;

/* Short constant name of a status, e.g. "format error". */
const char *ouro_status_str(ouro_status status);

/* Filled by fallible calls when not NULL; message is NUL-terminated. */
typedef struct ouro_error {
    ouro_status status;
    char message[512];
} ouro_error;

enum { OURO_LOG_DEBUG = 0, OURO_LOG_INFO = 1, OURO_LOG_WARNING = 2 };

typedef void (*ouro_log_fn)(int level, const char *message, void *ctx);

/* Process-wide log sink; NULL (the default) drops messages. */
void ouro_set_log(ouro_log_fn fn, void *ctx);

/* Releases memory that an ouro function handed to the caller (malloc'd). */
void ouro_free(void *p);

/* Reads the whole regular file `path` (at most max_bytes; `what` names it in
 * the message otherwise) into *data (malloc'd, NUL-terminated, *len bytes;
 * ouro_free).  *missing (when not NULL) says whether the file does not
 * exist.  The one file reader of the core and the tool. */
ouro_status ouro_read_file(const char *path, const char *what, size_t max_bytes, char **data,
                           size_t *len, bool *missing, ouro_error *err);

/* "0.2.0" */
const char *ouro_version(void);

/* JSON object describing the build: {"version", "simd", "amx" (whether the
 * bf16 products use AMX tiles), "bf16_dot" (AVX-512 BF16 dot products),
 * "precision_auto" (what precision auto runs at here: "bf16" or "exact"),
 * "openmp", "blas", "threads"}.  Static storage; valid for the life of the
 * process. */
const char *ouro_build_info(void);

/* ------------------------------------------------------------------------
 * Tokenizer (tokenizer.json: byte-level BPE, and the ChatML chat template)
 * ------------------------------------------------------------------------ */

typedef struct ouro_tokenizer ouro_tokenizer;

/* Loads dir/tokenizer.json (and dir/tokenizer_config.json for the chat
 * template when present).  Needs no weights. */
ouro_status ouro_tokenizer_load(const char *dir, ouro_tokenizer **out, ouro_error *err);
void ouro_tokenizer_free(ouro_tokenizer *tok);

int ouro_tokenizer_vocab_size(const ouro_tokenizer *tok);

/* Id of an exact token string (added tokens included), or -1. */
int32_t ouro_tokenizer_token_id(const ouro_tokenizer *tok, const char *token);

/* True for added tokens marked "special" in tokenizer.json. */
bool ouro_tokenizer_is_special(const ouro_tokenizer *tok, int32_t id);

/* Encodes `len` bytes of UTF-8 text as the Hugging Face tokenizer does with
 * add_special_tokens=false.  *ids is malloc'd (free with ouro_free).
 * Invalid UTF-8 is not an error: each maximal invalid subsequence is read as
 * U+FFFD, as Rust's String::from_utf8_lossy does. */
ouro_status ouro_tokenizer_encode(const ouro_tokenizer *tok, const char *text, size_t len,
                                  int32_t **ids, size_t *n_ids, ouro_error *err);

/* Decodes ids to UTF-8 text (NUL-terminated, malloc'd; *len excludes the NUL;
 * `len` may be NULL).  Bytes that do not form a complete character become
 * U+FFFD, as the reference does; so does a 0x00 byte (U+0000), which the
 * reference keeps: the text never holds a NUL, so strlen(text) == *len and
 * every host (PostgreSQL text, SQLite, JSON) sees the same characters.  Ids
 * out of range are OURO_ERR_ARG. */
ouro_status ouro_tokenizer_decode(const ouro_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                  bool skip_special, char **text, size_t *len, ouro_error *err);

typedef struct ouro_chat_message {
    const char *role;     /* "system", "user", "assistant" */
    const char *content;
} ouro_chat_message;

/* Renders messages with the model's chat template (malloc'd, NUL-terminated).
 * Templates ouro cannot render exactly are OURO_ERR_UNSUPPORTED. */
ouro_status ouro_chat_render(const ouro_tokenizer *tok, const ouro_chat_message *msgs, size_t n_msgs,
                             bool add_generation_prompt, char **text, ouro_error *err);

/* ------------------------------------------------------------------------
 * Model (config.json + safetensors, mapped read-only)
 * ------------------------------------------------------------------------ */

typedef struct ouro_model ouro_model;

typedef enum ouro_dtype {
    OURO_F32 = 0, OURO_F16, OURO_BF16,
    OURO_Q8,                 /* 8-bit blocks written by ouro_convert (see core/quant.c) */
    OURO_Q4                  /* 4-bit blocks written by ouro_convert (see core/quant4.c) */
} ouro_dtype;

typedef struct ouro_config {
    int vocab_size;
    int hidden_size;
    int intermediate_size;
    int num_layers;              /* num_hidden_layers */
    int num_heads;               /* num_attention_heads */
    int num_kv_heads;            /* num_key_value_heads */
    int head_dim;                /* head_dim, else hidden_size / num_heads */
    int total_ut_steps;          /* loop steps the model was trained with */
    int max_position_embeddings;
    float rms_norm_eps;
    double rope_theta;
    float early_exit_threshold;
    bool tie_word_embeddings;
    int bos_token_id;            /* -1 when absent */
    int eos_token_id;            /* -1 when absent */
    int pad_token_id;            /* -1 when absent */
    int n_eos;                   /* ids that end generation: config and */
    int32_t eos_ids[OURO_MAX_EOS]; /* generation_config.json eos, <|im_end|> */
    ouro_dtype dtype;            /* dtype of the weight matrices */
} ouro_config;

/* Loads the model folder `dir`: config.json, model.safetensors or the shards
 * of model.safetensors.index.json, and the tokenizer when tokenizer.json is
 * there.  Every tensor is validated (presence, shape, dtype, bounds) before
 * use; weights are mapped, not copied (see ouro_model_load_opts). */
ouro_status ouro_model_load(const char *dir, ouro_model **out, ouro_error *err);

/* How a model's weight files are read (ouro_load_options). */
typedef enum ouro_weights {
    /* mapped from the files (the default): no copy, processes share the page
     * cache; read speed depends on how much of it the kernel maps with 2 MB
     * pages, which depends on how the files came into the page cache */
    OURO_WEIGHTS_MAP = 0,
    /* read into a private copy in anonymous memory with 2 MB pages: the
     * process holds the weights' size in memory itself (each process its own
     * copy), the load reads every byte (about a second per GB from the page
     * cache), and a file changed after the load no longer affects the model.
     * Single-sequence decode, bound by reading the weights, runs as fast as
     * from a file the kernel maps well and no slower when it does not (q8
     * +10%, q4 +17-32% when the files were partly in small pages; README,
     * "Weights in memory or mapped") */
    OURO_WEIGHTS_MEMORY = 1,
} ouro_weights;

typedef struct ouro_load_options {
    ouro_weights weights;
} ouro_load_options;

/* ouro_model_load with options (NULL: the defaults, as ouro_model_load). */
ouro_status ouro_model_load_opts(const char *dir, const ouro_load_options *opts, ouro_model **out,
                                 ouro_error *err);
ouro_weights ouro_model_weights(const ouro_model *model);   /* how it was loaded */
void ouro_model_free(ouro_model *model);

const ouro_config *ouro_model_config(const ouro_model *model);

/* The folder's tokenizer, or NULL when it has none.  Owned by the model. */
const ouro_tokenizer *ouro_model_tokenizer(const ouro_model *model);

/* Absolute path of the folder the model was loaded from.  Owned by the model. */
const char *ouro_model_path(const ouro_model *model);

/* True when any file the model was loaded from was replaced, changed size or
 * modification time, or disappeared since the load (callers reload then). */
bool ouro_model_files_changed(const ouro_model *model);

/* OURO_ERR_MODEL_CHANGED (naming the file) when a read of the model's
 * mapped weights faulted because the file was truncated or overwritten in
 * place while mapped; else OURO_OK.  Such a model reads as zeros from then
 * on: free it and load the folder again.  Every forward call checks this
 * between layers and before it returns; ouro_model_files_changed() is true
 * for such a model too.
 *
 * How: the first ouro_model_load() of the process installs a SIGBUS handler
 * (sigaction, SA_SIGINFO) that handles faults inside model mappings by
 * mapping zero pages over the mapping, and passes every other SIGBUS to the
 * action installed before it. */
ouro_status ouro_model_check(const ouro_model *model, ouro_error *err);

/* Progress of a long call (a generation, a conversion), handed to a callback
 * the host sets, on the calling thread; the core never prints.  A host that
 * draws a progress bar limits how often it redraws. */
typedef struct ouro_progress {
    int64_t done;            /* units finished: requests (generation), bytes of
                                tensors written (conversion) */
    int64_t total;           /* units in all */
    int64_t tokens;          /* tokens generated so far (generation; else 0) */
} ouro_progress;
typedef void (*ouro_progress_fn)(void *ctx, const ouro_progress *p);

/* Writes the model of folder src_dir to folder dst_dir (created when missing)
 * with its matrices (embeddings, lm_head and the seven matrices of every
 * layer) in ouro's 8-bit block format, q8: a scale per 32 values of a row,
 * any row length.  The new model.safetensors is mapped in place by
 * ouro_model_load like any checkpoint (about 53% of the bf16 size); config,
 * generation config and tokenizer files are copied.  Products with q8
 * weights quantize the activations to 8 bits too: an approximate mode (the
 * README gives its measured error).  threads: 0 = all processors. */
ouro_status ouro_convert_q8(const char *src_dir, const char *dst_dir, int threads, ouro_error *err);

/* ouro_convert_q8 that reports its progress (bytes of tensors written, after
 * each tensor) to progress (NULL: none). */
ouro_status ouro_convert_q8_progress(const char *src_dir, const char *dst_dir, int threads,
                                     ouro_progress_fn progress, void *progress_ctx, ouro_error *err);

/* ouro_convert_q8 with the matrices in ouro's 4-bit block format, q4: 4-bit
 * integers with an f16 scale per 32 values of a row, any row length, about
 * 28% of the bf16 size.  Products take 8-bit activations as with q8; the
 * weights are coarser (the README gives the measured error). */
ouro_status ouro_convert_q4(const char *src_dir, const char *dst_dir, int threads, ouro_error *err);
ouro_status ouro_convert_q4_progress(const char *src_dir, const char *dst_dir, int threads,
                                     ouro_progress_fn progress, void *progress_ctx, ouro_error *err);

/* Worker threads a call uses for a `threads` option: threads when > 0, else
 * the number of processors. */
int ouro_thread_count(int threads);

/* JSON object: config, parameter count, dtypes, file bytes, mapped bytes.
 * malloc'd; free with ouro_free. */
char *ouro_model_info_json(const ouro_model *model);

/* ------------------------------------------------------------------------
 * Sessions: KV cache and scratch for a batch of sequences
 *
 * A session holds up to n_seq sequences of up to n_ctx tokens each.  Tokens
 * are appended to sequences by ouro_session_forward(); a token's position is
 * its sequence's length before it.  All memory is allocated by
 * ouro_session_new(); forward and generation allocate nothing per token.
 * ------------------------------------------------------------------------ */

typedef struct ouro_session ouro_session;

/* Host cancel check.  Called on the thread that made the call (never on a
 * worker thread), between the attention and MLP blocks of every decoder layer
 * of every forward call, around its lm_head product and between decode
 * steps; nonzero stops the call with OURO_ERR_INTERRUPTED.  The longest work
 * between two checks is one block of one layer over max_batch tokens, or
 * lm_head over 128 rows. */
typedef int (*ouro_cancel_fn)(void *ctx);

typedef enum ouro_exit_kind {
    OURO_EXIT_DEFAULT = 0,   /* Q-exit with the config's early_exit_threshold (upstream default) */
    OURO_EXIT_STEP,          /* a fixed step `step` (1-based) */
    OURO_EXIT_THRESHOLD,     /* first step whose exit CDF >= `threshold`, else the last */
    OURO_EXIT_WEIGHTED       /* logits averaged over steps, weights = exit pdf */
} ouro_exit_kind;

typedef struct ouro_exit {
    ouro_exit_kind kind;
    int step;                /* OURO_EXIT_STEP: 1..max_loops */
    float threshold;         /* OURO_EXIT_THRESHOLD: 0..1 */
} ouro_exit;

typedef enum ouro_depth_mode {
    OURO_DEPTH_FULL = 0,     /* every token runs every step (upstream) */
    OURO_DEPTH_ADAPTIVE      /* decoded tokens stop at their exit step */
} ouro_depth_mode;

typedef enum ouro_kv_mode {
    OURO_KV_PER_STEP = 0,    /* one slot per (step, layer), upstream layout */
    OURO_KV_LAST,            /* one slot per layer while decoding: last step's K/V */
    OURO_KV_AVG              /* one slot per layer while decoding: mean over steps */
} ouro_kv_mode;

typedef enum ouro_kv_type {
    OURO_KV_F32 = 0,         /* 32-bit entries: the exact path (the default) */
    OURO_KV_F16              /* 16-bit entries: half the memory; approximate (on the
                                golden models logits move by up to 0.034 of ~30 and
                                every default-mode greedy token stays the same) */
} ouro_kv_type;

typedef enum ouro_precision {
    OURO_PRECISION_EXACT = 0, /* f32 activations against the stored weights (zeroed
                                 options): within the golden tolerance of the reference */
    OURO_PRECISION_BF16,      /* activations rounded to bf16 for the matrix products
                                 (AVX-512 BF16 dot products where the CPU has them):
                                 faster, approximate: on the golden bf16 model logits
                                 move by up to 0.18 of ~40, top-1 unchanged, 4 of 5
                                 greedy cases identical.  f32/f16 weights and CPUs
                                 without AVX-512 BF16 use the exact path.  q8 and q4
                                 weights (ouro_convert_q8, ouro_convert_q4) take 8-bit
                                 activations at either precision */
    OURO_PRECISION_AUTO       /* the processor decides (ouro_precision_resolve): bf16 where
                                 it has AVX-512 BF16 dot products but no AMX tiles (there
                                 exact runs at half the bf16 speed), exact elsewhere.  The
                                 default of the SQL settings and the ouro tool */
} ouro_precision;

/* The precision a session given `p` runs at: EXACT or BF16, AUTO decided by
 * the processor (and OURO_SIMD) as above; the same answer for the life of
 * the process. */
ouro_precision ouro_precision_resolve(ouro_precision p);

typedef struct ouro_session_options {
    int n_ctx;               /* tokens per sequence; 0 = min(max_position_embeddings, 4096) */
    int n_seq;               /* sequences held at once; 0 = 1 */
    int max_batch;           /* most tokens in one forward call; 0 = 512 */
    int max_loops;           /* loop steps, 1..OURO_MAX_LOOPS; 0 = total_ut_steps */
    ouro_kv_mode kv;
    int threads;             /* worker threads; 0 = the number of cores */
    ouro_kv_type kv_type;    /* element type of the cache; 0 = f32 */
    ouro_precision precision;   /* matrix products; 0 = exact, AUTO resolved at creation */
    size_t max_bytes;        /* most bytes the session may allocate, KV cache, scratch and
                                each call's own buffers (classification logits) together;
                                checked before allocating (OURO_ERR_LIMIT says how much
                                was asked and allowed); 0 = no limit */
} ouro_session_options;

/* Zero-initialised options mean every default. */
ouro_status ouro_session_new(const ouro_model *model, const ouro_session_options *opts,
                             ouro_session **out, ouro_error *err);
void ouro_session_free(ouro_session *s);

/* Bytes held by the KV cache (what n_ctx, n_seq and the cache mode cost). */
size_t ouro_session_kv_bytes(const ouro_session *s);

/* Bytes a session with these options would allocate (KV cache and scratch),
 * computed without allocating; 0 when the options are invalid or the size
 * overflows. */
size_t ouro_session_bytes_for(const ouro_model *model, const ouro_session_options *opts);

/* Bytes the session holds (KV cache and scratch). */
size_t ouro_session_bytes(const ouro_session *s);
int ouro_session_max_loops(const ouro_session *s);
int ouro_session_n_ctx(const ouro_session *s);
int ouro_session_n_seq(const ouro_session *s);

/* Tokens currently held by sequence `seq`. */
int ouro_session_seq_len(const ouro_session *s, int seq);

/* Forgets every token of `seq` (the slot can start a new sequence). */
void ouro_session_seq_reset(ouro_session *s, int seq);

/* Makes `dst` hold a copy of `src`'s cached tokens (shared prompt prefixes). */
ouro_status ouro_session_seq_copy(ouro_session *s, int src, int dst, ouro_error *err);

/* The cancel check ouro_session_forward() polls (NULL: none).  ouro_generate,
 * ouro_classify* and ouro_depth set their own for the length of the call and
 * restore this one.  A stopped call leaves every sequence as it was before
 * the chunk (max_batch tokens) that was running. */
void ouro_session_set_cancel(ouro_session *s, ouro_cancel_fn cancel, void *ctx);

/* One forward call: n tokens, each appended to its sequence.  Within one
 * sequence tokens must appear in order. */
typedef struct ouro_batch {
    int n;
    const int32_t *token;    /* (n) token ids */
    const int32_t *seq;      /* (n) sequence slot of each token, 0..n_seq-1 */
    const uint8_t *want;     /* (n) nonzero: produce outputs for this token;
                                NULL: the last token of each sequence in the batch */
} ouro_batch;

typedef struct ouro_forward_options {
    ouro_exit exit;          /* which step's state gives the logits */
    ouro_depth_mode depth;   /* ADAPTIVE: tokens stop at the exit step (decode) */
} ouro_forward_options;

/* Outputs of a forward call, one row per wanted token in batch order.  Any
 * pointer may be NULL to skip that output (logits NULL skips lm_head). */
typedef struct ouro_outputs {
    float *logits;           /* (n_want, vocab_size) */
    float *exit_pdf;         /* (n_want, max_loops) */
    int32_t *exit_step;      /* (n_want) 1-based step that gave the logits */
} ouro_outputs;

ouro_status ouro_session_forward(ouro_session *s, const ouro_batch *batch,
                                 const ouro_forward_options *fopts, ouro_outputs *out,
                                 ouro_error *err);

/* ------------------------------------------------------------------------
 * Generation
 * ------------------------------------------------------------------------ */

typedef enum ouro_stop_reason {
    OURO_STOP_LENGTH = 0,    /* max_tokens reached */
    OURO_STOP_EOS,           /* an end-of-sequence id */
    OURO_STOP_STRING         /* a stop string appeared in the text */
} ouro_stop_reason;

const char *ouro_stop_reason_str(ouro_stop_reason r);   /* "length", "eos", "stop" */


typedef struct ouro_gen_params {
    int max_tokens;          /* new tokens at most; 0 = 128 */
    float temperature;       /* 0 = greedy */
    int top_k;               /* 0 = off */
    float top_p;             /* 0 or 1 = off */
    uint64_t seed;           /* same seed, same text */
    ouro_exit exit;
    ouro_depth_mode depth;
    const char *const *stop; /* stop strings (not included in the text) */
    int n_stop;
    ouro_cancel_fn cancel;
    void *cancel_ctx;
    /* Called on the calling thread each time request `req` gets a new token
     * it keeps, with all its new ids so far (ids, n_ids); NULL = none.  For
     * streaming: the text of ids up to a stop string is the final text. */
    void (*on_token)(void *ctx, int req, const int32_t *ids, int n_ids);
    void *token_ctx;
    /* Called on the calling thread after each prompt's prefill and after every
     * decode step: requests finished (done, of total n_req) and tokens
     * generated so far by all requests; NULL = none. */
    ouro_progress_fn progress;
    void *progress_ctx;
} ouro_gen_params;

typedef struct ouro_gen_result {
    int32_t *ids;            /* (n_ids) new ids, malloc'd */
    int n_ids;
    int32_t *exit_steps;     /* (n_ids) step that gave each new token's logits, malloc'd */
    char *text;              /* decoded new ids, malloc'd; NULL without a tokenizer */
    size_t text_len;
    ouro_stop_reason stop_reason;
    double seconds;          /* wall time of this request */
} ouro_gen_result;

/* Generates continuations for n_req prompts, running up to n_seq of them
 * together in one batched decode.  results[i] belongs to prompts[i]; release
 * each with ouro_gen_result_clear.  The session's sequences are reset. */
ouro_status ouro_generate(ouro_session *s, int n_req, const int32_t *const *prompts,
                          const int *prompt_lens, const ouro_gen_params *params,
                          ouro_gen_result *results, ouro_error *err);
void ouro_gen_result_clear(ouro_gen_result *r);

/* ------------------------------------------------------------------------
 * Analysis: classification and depth (shared by both database extensions)
 * ------------------------------------------------------------------------ */

/* Scores each label as a continuation of the chat prompt built from
 * `instruction` (NULL = a default instruction), `input` and the label list;
 * probs[i] = softmax over labels of the total log-probability of label i's
 * tokens.  logprobs may be NULL. */
ouro_status ouro_classify(ouro_session *s, const char *input, const char *const *labels,
                          int n_labels, const char *instruction, const ouro_exit *exit,
                          double *probs, double *logprobs, ouro_cancel_fn cancel,
                          void *cancel_ctx, ouro_error *err);

/* The context (n_ctx) a classification needs: need[k] (when need is not
 * NULL) is the tokens of input k's prompt plus the longest label but one,
 * *max_need their maximum.  A session whose n_ctx is at least *max_need
 * never fails ouro_classify_batch with OURO_ERR_CONTEXT. */
ouro_status ouro_classify_n_ctx(const ouro_model *model, int n_inputs, const char *const *inputs,
                                const char *const *labels, int n_labels, const char *instruction,
                                int *need, int *max_need, ouro_error *err);

/* ouro_classify for n_inputs inputs and the same labels: probs (and logprobs
 * when not NULL) are (n_inputs, n_labels).  The prompt tokens the inputs share
 * are computed once, and inputs run together over the session's sequences
 * (n_seq >= n_labels + 1 lets a whole input run in one wave; more sequences,
 * more inputs at once).  Gives the numbers of one ouro_classify per input,
 * bit for bit: the shared prefix is computed in a call of its own, but
 * classification's matrix products sum in one order whatever the number of
 * tokens in a call (kernels.c, "Order of the sums"). */
ouro_status ouro_classify_batch(ouro_session *s, int n_inputs, const char *const *inputs,
                                const char *const *labels, int n_labels, const char *instruction,
                                const ouro_exit *exit, double *probs, double *logprobs,
                                ouro_cancel_fn cancel, void *cancel_ctx, ouro_error *err);

/* Exit distribution of every token of `ids` (one full-depth forward):
 * pdf is (n_ids, max_loops); expected[i] = sum_t t * p_t; step[i] = the
 * Q-exit step for `threshold`, or the config's threshold when threshold < 0.
 * Any output may be NULL. */
ouro_status ouro_depth(ouro_session *s, const int32_t *ids, int n_ids, float threshold,
                       float *pdf, double *expected, int32_t *step,
                       ouro_cancel_fn cancel, void *cancel_ctx, ouro_error *err);

/* ouro_depth for n_inputs inputs (ids[k], n_ids[k] tokens, each at least 1 and
 * at most the session's n_ctx): the outputs hold every input's rows one input
 * after another (pdf (sum n_ids, max_loops), expected and step (sum n_ids)).
 * The session's sequences take an input each, so up to n_seq inputs run
 * together, their tokens in forward calls of up to max_batch tokens.  Each
 * input gets the numbers of one ouro_depth, bit for bit: both sum the matrix
 * products in an order that does not depend on the tokens in a call. */
ouro_status ouro_depth_batch(ouro_session *s, int n_inputs, const int32_t *const *ids,
                             const int *n_ids, float threshold, float *pdf, double *expected,
                             int32_t *step, ouro_cancel_fn cancel, void *cancel_ctx,
                             ouro_error *err);

#ifdef __cplusplus
}
#endif

#endif /* OURO_H */

/*
 * make_synthetic.c -- writes a full-size Ouro checkpoint with random weights, for benchmarks.
 *
 * The output folder has the exact layout of the Hugging Face release: the real config.json and
 * tokenizer files (copied from a folder that holds them, by default test/data/ouro-1.4b-config),
 * and one model.safetensors holding every tensor of the model under its upstream name, in bf16.
 * For Ouro-1.4B that is 1.44 billion parameters, about 2.9 GB.  Speed does not depend on the
 * weight values, so anyone can measure the runtime without downloading the real weights.
 *
 * safetensors format written here: an 8-byte little-endian header length N, then N bytes of JSON
 * ({"__metadata__": {"format": "pt"}, name: {"dtype", "shape", "data_offsets": [begin, end]}}),
 * padded with spaces to a multiple of 8, then the tensor bytes, in the header's order.  Tensors
 * are ordered by name as the Hugging Face writer orders them (so model.layers.10 precedes
 * model.layers.2); data_offsets are relative to the end of the header.
 *
 * Weight values (uniform distributions, so every figure below is a standard deviation):
 *   - every RMSNorm weight is 1 and every projection and embedding has std `--std` (default
 *     0.02, the config's initializer_range).  Ouro's layers norm each sublayer's output before
 *     the residual add, so activations stay finite and of order 1 through 24 layers x 4 steps.
 *   - the exit gate: weight std = gate_std / sqrt(hidden_size), bias = `--gate-bias B`.  The gate
 *     reads the final RMSNorm's output, whose squared norm is hidden_size, so its logit at each
 *     step is about B + gate_std * z with z a standard normal that varies from token to token.
 *
 * Bias and depth: the exit probability of step t is lambda_t = sigmoid(B + gate_std * z_t); the
 * exit pdf is p_t = lambda_t * prod_{s<t} (1 - lambda_s) (the last step takes the rest) and a
 * token under Q-exit with threshold q stops at the first step whose running sum reaches q.  With
 * the logits of the steps treated as independent, the mean exit step for a given B and q is
 * computed here by Monte Carlo and printed as a table (the real steps of one token are
 * correlated, so measured depths differ somewhat: the bench prints the depth it measured).
 * Roughly: a token stops at step 1 when B + gate_std * z >= logit(q), so B = logit(q) + 2 gives
 * a mean near 1 step, and B far below logit(q) gives full depth.  The config's threshold 1.0
 * (upstream's default) is reached before the last step only where the float32 sigmoid
 * saturates to exactly 1 (logit above about 17).  `--mean-depth D --threshold q` solves for B.
 *
 * Output is written to a temporary file and renamed, so an interrupted run leaves no checkpoint
 * that looks complete; synthetic.json records the parameters used.  Generation is deterministic
 * for a given seed (each 1 Mi-element chunk has its own generator) and runs in parallel.
 *
 * With --gate-bias or --mean-depth and no --out, the folder is models/synthetic/ouro-1.4b-bias<B>
 * (B with two decimals), so checkpoints with different gates sit side by side.
 *
 *   build/make_synthetic [--config DIR] [--out DIR] [--seed N] [--std S]
 *                        [--gate-bias B | --mean-depth D] [--gate-std S] [--threshold Q] [--force]
 *   build/make_synthetic --table [--gate-std S]     prints the bias/depth mapping only
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define MAX_TENSORS 4096
#define CHUNK_ELEMS (1u << 20)          /* elements per independently seeded chunk */
#define BUF_ELEMS (32u * CHUNK_ELEMS)   /* elements generated per write() batch (64 MiB) */

/* ------------------------------------------------------------------------
 * Options and model shape
 * ------------------------------------------------------------------------ */

typedef struct options {
    const char *config_dir;   /* folder with config.json and tokenizer files (borrowed) */
    const char *out_dir;      /* folder to write (borrowed) */
    uint64_t seed;
    double std;               /* std of projections and embeddings */
    double gate_bias;
    double gate_std;          /* std of the gate logit across tokens */
    double threshold;         /* threshold for --mean-depth */
    double mean_depth;        /* < 0: not asked */
    int force;
    int table_only;
} options;

typedef struct shape {
    int vocab, hidden, inter, layers, heads, kv_heads, head_dim, steps;
    int tied;
    double threshold;         /* config's early_exit_threshold */
} shape;

typedef enum fill_kind { FILL_ONES, FILL_UNIFORM, FILL_CONST } fill_kind;

typedef struct tensor {
    char name[96];
    int ndim;
    int64_t dims[2];
    fill_kind fill;
    double std;               /* FILL_UNIFORM: standard deviation; FILL_CONST: the value */
    uint64_t offset;          /* byte offset in the data section */
    uint64_t n;               /* elements */
} tensor;

/* Seconds since an arbitrary origin. */
static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

/* ------------------------------------------------------------------------
 * Random numbers: splitmix64 seeds a xoshiro256+ state per chunk
 * ------------------------------------------------------------------------ */

typedef struct rng { uint64_t s[4]; } rng;

/* Advances *x and returns the next splitmix64 output. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A generator for (seed, stream, chunk); distinct triples give independent streams. */
static void rng_init(rng *r, uint64_t seed, uint64_t stream, uint64_t chunk)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull) ^ (chunk * 0x8CB92BA72F3D8DD7ull);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* Next 64 random bits (xoshiro256+; the low bits are weaker, so callers use high ones). */
static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = s[0] + s[3];
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A standard normal (Box-Muller; one of the pair is dropped, speed does not matter here). */
static double rng_normal(rng *r)
{
    double u1 = ((rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = (rng_next(r) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* float -> bf16 bits, rounding to nearest even (inputs here are finite). */
static inline uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ------------------------------------------------------------------------
 * Exit depth model (see the header comment)
 * ------------------------------------------------------------------------ */

/* Mean exit step under Q-exit with threshold q, for gate logits bias + gate_std * z, z ~ N(0,1)
 * independent per step; arithmetic in float32 as upstream computes the CDF.  Also fills
 * frac[t] (t = 0..steps-1) with the share of tokens exiting at step t+1 when frac != NULL. */
static double mean_exit_step(double bias, double gate_std, double q, int steps, double *frac)
{
    enum { N = 100000 };
    rng r;
    rng_init(&r, 12345, 1, 0);
    long count[64] = {0};
    double sum = 0;
    for (int i = 0; i < N; i++) {
        float remain = 1.0f, cdf = 0.0f;
        int exit_step = steps;
        for (int t = 1; t <= steps; t++) {
            float logit = (float)(bias + gate_std * rng_normal(&r));
            float lambda = 1.0f / (1.0f + expf(-logit));
            float p = t < steps ? lambda * remain : remain;
            remain = remain * (1.0f - lambda);
            cdf += p;
            if (t < steps && cdf >= (float)q) {
                exit_step = t;
                break;
            }
        }
        count[exit_step - 1]++;
        sum += exit_step;
    }
    if (frac)
        for (int t = 0; t < steps; t++)
            frac[t] = (double)count[t] / N;
    return sum / N;
}

/* Bias whose mean exit step under threshold q is `target` (bisection; mean falls as bias rises). */
static double solve_bias(double target, double gate_std, double q, int steps)
{
    double lo = -40, hi = 40;
    for (int it = 0; it < 60; it++) {
        double mid = 0.5 * (lo + hi);
        if (mean_exit_step(mid, gate_std, q, steps, NULL) > target)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Prints the mean exit step for a few thresholds at `bias`, and the bias giving each mean. */
static void print_depth_table(double bias, double gate_std, double config_q, int steps)
{
    const double qs[] = {0.5, 0.7, 0.9, 0.99, 0.999};
    printf("exit gate: logit = %.3f + %.3f * N(0,1) per token and step\n", bias, gate_std);
    printf("  threshold   mean exit step   share exiting at step 1..%d\n", steps);
    for (size_t i = 0; i <= sizeof qs / sizeof qs[0]; i++) {
        double q = i < sizeof qs / sizeof qs[0] ? qs[i] : config_q;
        double frac[64];
        double m = mean_exit_step(bias, gate_std, q, steps, frac);
        printf("  %-9g   %-14.3f  ", q, m);
        for (int t = 0; t < steps; t++)
            printf(" %5.3f", frac[t]);
        printf("%s\n", i == sizeof qs / sizeof qs[0] ? "   (config's early_exit_threshold)" : "");
    }
    printf("  bias giving a mean exit step of 1.25 / 2 / 3 at threshold 0.5: %.2f / %.2f / %.2f;"
           " at 0.9: %.2f / %.2f / %.2f\n",
           solve_bias(1.25, gate_std, 0.5, steps), solve_bias(2, gate_std, 0.5, steps),
           solve_bias(3, gate_std, 0.5, steps), solve_bias(1.25, gate_std, 0.9, steps),
           solve_bias(2, gate_std, 0.9, steps), solve_bias(3, gate_std, 0.9, steps));
}

/* ------------------------------------------------------------------------
 * Config
 * ------------------------------------------------------------------------ */

/* Reads a whole file into a malloc'd NUL-terminated buffer (caller frees); NULL on error. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (cap + 65536) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, 65536, f);
        n += got;
        if (got < 65536)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

/* Integer field of the config, or `def` when absent; -1 when present but not a number. */
static int json_int(const cJSON *o, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return def;
    return cJSON_IsNumber(v) ? (int)v->valuedouble : -1;
}

/* Fills *s from dir/config.json; returns 0 or prints why and returns -1. */
static int load_shape(const char *dir, shape *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = read_file(path, NULL);
    if (!text) {
        fprintf(stderr, "make_synthetic: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    cJSON *c = cJSON_Parse(text);
    free(text);
    if (!c) {
        fprintf(stderr, "make_synthetic: %s is not valid JSON\n", path);
        return -1;
    }
    s->vocab = json_int(c, "vocab_size", -1);
    s->hidden = json_int(c, "hidden_size", -1);
    s->inter = json_int(c, "intermediate_size", -1);
    s->layers = json_int(c, "num_hidden_layers", -1);
    s->heads = json_int(c, "num_attention_heads", -1);
    s->kv_heads = json_int(c, "num_key_value_heads", s->heads);
    s->head_dim = json_int(c, "head_dim", s->heads > 0 ? s->hidden / s->heads : -1);
    s->steps = json_int(c, "total_ut_steps", 4);
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    s->tied = cJSON_IsTrue(tie);
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(c, "early_exit_threshold");
    s->threshold = cJSON_IsNumber(thr) ? thr->valuedouble : 1.0;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(c, "torch_dtype");
    int bf16 = !cJSON_IsString(dt) || strcmp(dt->valuestring, "bfloat16") == 0;
    cJSON_Delete(c);
    if (s->vocab <= 0 || s->hidden <= 0 || s->inter <= 0 || s->layers <= 0 || s->heads <= 0 ||
        s->kv_heads <= 0 || s->head_dim <= 0 || s->steps <= 0 || s->steps > 64 ||
        s->layers > 1000) {
        fprintf(stderr, "make_synthetic: %s lacks a usable model shape\n", path);
        return -1;
    }
    if (!bf16)
        fprintf(stderr, "make_synthetic: note: %s is not bfloat16; weights are written in bf16\n",
                path);
    return 0;
}

/* ------------------------------------------------------------------------
 * Tensor list and header
 * ------------------------------------------------------------------------ */

/* Appends a tensor; returns its index. */
static int add_tensor(tensor *t, int *n, const char *name, int64_t d0, int64_t d1,
                      fill_kind fill, double std)
{
    tensor *x = &t[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = d1 > 0 ? 2 : 1;
    x->dims[0] = d0;
    x->dims[1] = d1;
    x->n = (uint64_t)d0 * (uint64_t)(d1 > 0 ? d1 : 1);
    x->fill = fill;
    x->std = std;
    return *n - 1;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const tensor *)a)->name, ((const tensor *)b)->name);
}

/* Builds the tensor list of the model in header order; returns the count. */
static int build_tensors(const shape *s, const options *o, tensor *t)
{
    int n = 0;
    char name[96];
    int64_t h = s->hidden, q = (int64_t)s->heads * s->head_dim, kv = (int64_t)s->kv_heads * s->head_dim;
    add_tensor(t, &n, "model.embed_tokens.weight", s->vocab, h, FILL_UNIFORM, o->std);
    if (!s->tied)
        add_tensor(t, &n, "lm_head.weight", s->vocab, h, FILL_UNIFORM, o->std);
    add_tensor(t, &n, "model.norm.weight", h, 0, FILL_ONES, 0);
    add_tensor(t, &n, "model.early_exit_gate.weight", 1, h, FILL_UNIFORM, o->gate_std / sqrt((double)h));
    add_tensor(t, &n, "model.early_exit_gate.bias", 1, 0, FILL_CONST, o->gate_bias);
    for (int l = 0; l < s->layers; l++) {
        static const char *norms[] = {"input_layernorm", "input_layernorm_2",
                                      "post_attention_layernorm", "post_attention_layernorm_2"};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, norms[k]);
            add_tensor(t, &n, name, h, 0, FILL_ONES, 0);
        }
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_proj.weight", l);
        add_tensor(t, &n, name, q, h, FILL_UNIFORM, o->std);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_proj.weight", l);
        add_tensor(t, &n, name, kv, h, FILL_UNIFORM, o->std);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.v_proj.weight", l);
        add_tensor(t, &n, name, kv, h, FILL_UNIFORM, o->std);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", l);
        add_tensor(t, &n, name, h, q, FILL_UNIFORM, o->std);
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate_proj.weight", l);
        add_tensor(t, &n, name, s->inter, h, FILL_UNIFORM, o->std);
        snprintf(name, sizeof name, "model.layers.%d.mlp.up_proj.weight", l);
        add_tensor(t, &n, name, s->inter, h, FILL_UNIFORM, o->std);
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
        add_tensor(t, &n, name, h, s->inter, FILL_UNIFORM, o->std);
    }
    qsort(t, (size_t)n, sizeof *t, cmp_tensor);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        t[i].offset = off;
        off += t[i].n * 2;
    }
    return n;
}

/* The JSON header, padded with spaces to a multiple of 8 (malloc'd; *len set). */
static char *build_header(const tensor *t, int n, size_t *len)
{
    size_t cap = 256 + (size_t)n * 200, pos = 0;
    char *h = malloc(cap);
    if (!h)
        return NULL;
    pos += (size_t)snprintf(h + pos, cap - pos, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        if (t[i].ndim == 2)
            pos += (size_t)snprintf(h + pos, cap - pos,
                                    ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld,%lld],"
                                    "\"data_offsets\":[%llu,%llu]}",
                                    t[i].name, (long long)t[i].dims[0], (long long)t[i].dims[1],
                                    (unsigned long long)t[i].offset,
                                    (unsigned long long)(t[i].offset + t[i].n * 2));
        else
            pos += (size_t)snprintf(h + pos, cap - pos,
                                    ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%lld],"
                                    "\"data_offsets\":[%llu,%llu]}",
                                    t[i].name, (long long)t[i].dims[0],
                                    (unsigned long long)t[i].offset,
                                    (unsigned long long)(t[i].offset + t[i].n * 2));
    }
    pos += (size_t)snprintf(h + pos, cap - pos, "}");
    while (pos % 8)
        h[pos++] = ' ';
    *len = pos;
    return h;
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

/* Writes all `len` bytes or returns -1. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Fills out[0..count) with the values of chunk `chunk` of tensor `ti`. */
static void fill_chunk(const tensor *t, int ti, uint64_t seed, uint64_t chunk, uint16_t *out,
                       size_t count)
{
    if (t->fill == FILL_ONES || t->fill == FILL_CONST) {
        uint16_t v = f32_to_bf16(t->fill == FILL_ONES ? 1.0f : (float)t->std);
        for (size_t i = 0; i < count; i++)
            out[i] = v;
        return;
    }
    /* uniform on [-a, a) has std a / sqrt(3); four 16-bit draws per 64-bit output */
    rng r;
    rng_init(&r, seed, (uint64_t)ti + 1, chunk);
    const float a = (float)(t->std * 1.7320508075688772);
    const float scale = 2.0f * a / 65536.0f;
    const float base = -a + 0.5f * scale;
    size_t i = 0;
    for (; i + 4 <= count; i += 4) {
        uint64_t x = rng_next(&r);
        out[i] = f32_to_bf16(base + scale * (float)(x >> 48));
        out[i + 1] = f32_to_bf16(base + scale * (float)((x >> 32) & 0xFFFF));
        out[i + 2] = f32_to_bf16(base + scale * (float)((x >> 16) & 0xFFFF));
        out[i + 3] = f32_to_bf16(base + scale * (float)(x & 0xFFFF));
    }
    for (; i < count; i++)
        out[i] = f32_to_bf16(base + scale * (float)(rng_next(&r) >> 48));
}

/* Writes the data section: each tensor in chunks, generated in parallel into `buf`. */
static int write_data(int fd, const tensor *t, int n, uint64_t seed, uint16_t *buf)
{
    for (int ti = 0; ti < n; ti++) {
        uint64_t total = t[ti].n;
        for (uint64_t start = 0; start < total; start += BUF_ELEMS) {
            uint64_t count = total - start < BUF_ELEMS ? total - start : BUF_ELEMS;
            long n_chunks = (long)((count + CHUNK_ELEMS - 1) / CHUNK_ELEMS);
#pragma omp parallel for schedule(dynamic, 1)
            for (long c = 0; c < n_chunks; c++) {
                uint64_t lo = (uint64_t)c * CHUNK_ELEMS;
                uint64_t cnt = count - lo < CHUNK_ELEMS ? count - lo : CHUNK_ELEMS;
                fill_chunk(&t[ti], ti, seed, (start + lo) / CHUNK_ELEMS, buf + lo, (size_t)cnt);
            }
            if (write_all(fd, buf, (size_t)count * 2) != 0)
                return -1;
        }
    }
    return 0;
}

/* Copies src to dst (small files); returns 0 or -1. */
static int copy_file(const char *src, const char *dst)
{
    size_t len;
    char *data = read_file(src, &len);
    if (!data)
        return -1;
    FILE *f = fopen(dst, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    free(data);
    return ok ? 0 : -1;
}

/* Creates every missing component of `dir` (mkdir -p). */
static int make_dirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *c = p + 1; *c; c++) {
        if (*c == '/') {
            *c = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return -1;
            *c = '/';
        }
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: make_synthetic [--config DIR] [--out DIR] [--seed N] [--std S]\n"
            "                      [--gate-bias B | --mean-depth D] [--gate-std S] [--threshold Q]\n"
            "                      [--force] [--table]\n"
            "  --config DIR     config.json and tokenizer files (test/data/ouro-1.4b-config)\n"
            "  --out DIR        output folder (models/synthetic/ouro-1.4b; with --gate-bias or\n"
            "                   --mean-depth: models/synthetic/ouro-1.4b-bias<B>)\n"
            "  --seed N         random seed (1)\n"
            "  --std S          std of projections and embeddings (0.02)\n"
            "  --gate-bias B    exit-gate bias (2.0: a mean exit step near 1.2 at threshold 0.5)\n"
            "  --gate-std S     std of the exit-gate logit across tokens (1.0)\n"
            "  --mean-depth D   choose the bias giving mean exit step D at --threshold Q (0.5)\n"
            "  --force          overwrite an existing checkpoint\n"
            "  --table          print the bias/depth table and exit\n");
}

int main(int argc, char **argv)
{
    options o = {"test/data/ouro-1.4b-config", "models/synthetic/ouro-1.4b", 1, 0.02, 2.0, 1.0,
                 0.5, -1, 0, 0};
    int gate_set = 0, out_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--force")) { o.force = 1; continue; }
        if (!strcmp(a, "--table")) { o.table_only = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (!v) { usage(); return 2; }
        i++;
        if (!strcmp(a, "--config")) o.config_dir = v;
        else if (!strcmp(a, "--out")) { o.out_dir = v; out_set = 1; }
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--std")) o.std = atof(v);
        else if (!strcmp(a, "--gate-bias")) { o.gate_bias = atof(v); gate_set = 1; }
        else if (!strcmp(a, "--gate-std")) o.gate_std = atof(v);
        else if (!strcmp(a, "--threshold")) o.threshold = atof(v);
        else if (!strcmp(a, "--mean-depth")) { o.mean_depth = atof(v); gate_set = 1; }
        else { usage(); return 2; }
    }
    if (!(o.std > 0 && o.std < 1) || !(o.gate_std >= 0 && o.gate_std < 100) ||
        !(fabs(o.gate_bias) < 1000) || !(o.threshold > 0 && o.threshold <= 1)) {
        fprintf(stderr, "make_synthetic: --std must be in (0,1), --gate-std in [0,100), "
                        "--threshold in (0,1]\n");
        return 2;
    }

    shape s;
    if (load_shape(o.config_dir, &s) != 0)
        return 1;
    if (o.mean_depth >= 0) {
        if (!(o.mean_depth >= 1 && o.mean_depth <= s.steps)) {
            fprintf(stderr, "make_synthetic: --mean-depth must be in [1, %d]\n", s.steps);
            return 2;
        }
        o.gate_bias = solve_bias(o.mean_depth, o.gate_std, o.threshold, s.steps);
        printf("gate bias %.4f gives a mean exit step of %.3f at threshold %g\n", o.gate_bias,
               mean_exit_step(o.gate_bias, o.gate_std, o.threshold, s.steps, NULL), o.threshold);
    }
    /* a checkpoint with another gate goes to its own folder unless --out names one */
    static char gate_dir[256];
    if (gate_set && !out_set) {
        snprintf(gate_dir, sizeof gate_dir, "models/synthetic/ouro-1.4b-bias%.2f", o.gate_bias);
        o.out_dir = gate_dir;
    }
    print_depth_table(o.gate_bias, o.gate_std, s.threshold, s.steps);
    if (o.table_only)
        return 0;

    char path[4096], tmp[4096], meta[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", o.out_dir);
    snprintf(meta, sizeof meta, "%s/synthetic.json", o.out_dir);
    struct stat st;
    if (!o.force && stat(path, &st) == 0 && stat(meta, &st) == 0) {
        printf("%s exists (use --force to rewrite it)\n", path);
        return 0;
    }
    if (make_dirs(o.out_dir) != 0) {
        fprintf(stderr, "make_synthetic: cannot create %s: %s\n", o.out_dir, strerror(errno));
        return 1;
    }
    unlink(meta);   /* the checkpoint counts as complete only once this is rewritten */

    static tensor tensors[MAX_TENSORS];
    if (3 + 11 * (size_t)s.layers > MAX_TENSORS) {
        fprintf(stderr, "make_synthetic: too many layers\n");
        return 1;
    }
    int n = build_tensors(&s, &o, tensors);
    size_t hlen;
    char *header = build_header(tensors, n, &hlen);
    uint16_t *buf = malloc((size_t)BUF_ELEMS * 2);
    if (!header || !buf) {
        fprintf(stderr, "make_synthetic: out of memory\n");
        return 1;
    }
    uint64_t data_bytes = tensors[n - 1].offset + tensors[n - 1].n * 2, params = data_bytes / 2;

    double t0 = now_s();
    snprintf(tmp, sizeof tmp, "%s/model.safetensors.tmp", o.out_dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if (fd < 0 || write_all(fd, len8, 8) != 0 || write_all(fd, header, hlen) != 0 ||
        write_data(fd, tensors, n, o.seed, buf) != 0 || close(fd) != 0 ||
        rename(tmp, path) != 0) {
        fprintf(stderr, "make_synthetic: writing %s failed: %s\n", tmp, strerror(errno));
        unlink(tmp);
        return 1;
    }
    double t1 = now_s();

    static const char *copied[] = {"config.json", "generation_config.json", "tokenizer.json",
                                   "tokenizer_config.json", "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s/%s", o.config_dir, copied[i]);
        snprintf(dst, sizeof dst, "%s/%s", o.out_dir, copied[i]);
        if (stat(src, &st) != 0)
            continue;
        if (copy_file(src, dst) != 0) {
            fprintf(stderr, "make_synthetic: cannot copy %s to %s\n", src, dst);
            return 1;
        }
    }
    FILE *f = fopen(meta, "w");
    if (!f) {
        fprintf(stderr, "make_synthetic: cannot write %s\n", meta);
        return 1;
    }
    fprintf(f,
            "{\"synthetic\": true, \"seed\": %llu, \"std\": %g, \"gate_bias\": %.6g, "
            "\"gate_std\": %g, \"parameters\": %llu, \"bytes\": %llu,\n"
            " \"mean_exit_step\": {\"0.5\": %.4f, \"0.9\": %.4f, \"0.99\": %.4f, \"config\": %.4f}}\n",
            (unsigned long long)o.seed, o.std, o.gate_bias, o.gate_std,
            (unsigned long long)params, (unsigned long long)(8 + hlen + data_bytes),
            mean_exit_step(o.gate_bias, o.gate_std, 0.5, s.steps, NULL),
            mean_exit_step(o.gate_bias, o.gate_std, 0.9, s.steps, NULL),
            mean_exit_step(o.gate_bias, o.gate_std, 0.99, s.steps, NULL),
            mean_exit_step(o.gate_bias, o.gate_std, s.threshold, s.steps, NULL));
    fclose(f);
    printf("wrote %s: %d tensors, %.3f billion parameters, %.2f GB in %.1f s (%.2f GB/s)\n", path,
           n, params / 1e9, (8 + hlen + data_bytes) / 1e9, t1 - t0,
           (8 + hlen + data_bytes) / 1e9 / (t1 - t0));
    free(header);
    free(buf);
    return 0;
}

/*
 * model_bench.c -- the model figures of `make bench`, each next to the machine limit that bounds it.
 *
 * Run by test/bench/run.sh after test/bench/limits.c, whose bandwidth and GEMM figures it is given
 * (--bw, --gemm), on a full-size checkpoint (models/make_synthetic.c writes one).  It prints:
 *   - our own matrix kernel (ouro_matmul, bf16 weights): GB/s streamed at 1 row of activations
 *     (the decode case) and GFLOP/s at 64 and 256 rows (the prefill case);
 *   - load time with a cold page cache (every file of the folder is evicted with
 *     posix_fadvise(DONTNEED) first; the share still resident is printed, so a failed eviction
 *     shows) and a warm one, with and without the tokenizer, and the RSS right after loading;
 *   - prefill tokens/s for each prompt length, as a share of the compute peak that bounds it
 *     (FLOPs / time against the f32 FMA peak on the exact path, the bf16 dot peak with
 *     --precision bf16, the 8-bit dot peak for q8 and q4 weights; limits.c measures them; where
 *     the products run on AMX tiles, their share of the tile peak beside it);
 *   - single-sequence decode tokens/s, as a share of the bandwidth limit (weight bytes read per
 *     token / time vs. measured bandwidth);
 *   - batched decode tokens/s (one ouro_session_forward call carries one token of each of n
 *     sequences), as a share of whichever limit bounds it (weights read once per step, or FLOPs
 *     against the compute peak above).
 *   Every speed is a mean, as llama-bench reports it: decode is the mean over every decoded token
 *   of a run (after one untimed warm-up step), prefill the whole prompt's time; each is measured
 *   in --runs separate runs and printed as the median of the runs with their range.  The fastest
 *   step is printed beside, never instead, and so is the ratio of the slowest decode step of a
 *   run to its median step (steady step times: target <= 1.5).  A line "FIGURE name value
 *   min max" per figure is for scripts (test/bench/compare.sh);
 *   - KV cache bytes per token of context for each cache mode (per-step, last, avg);
 *   - adaptive depth: decode time per token and the mean number of loop steps run, for each
 *     checkpoint given with --adaptive (the generator's --gate-bias sets the gate so that random
 *     weights give a chosen mean depth), next to full depth;
 *   - peak RSS, split into the weights' file size, the largest KV cache and the rest.
 * A figure the core does not support yet (OURO_ERR_UNSUPPORTED) prints "not supported yet".
 * Measurements are short (few tokens) because a full-size forward pass is slow; the numbers of
 * tokens are options.  Token ids are fixed pseudo-random ids, so runs are repeatable.
 *
 *   model_bench --model DIR [--threads N] [--precision exact|bf16] [--weights map|memory]
 *               [--bw GB/s] [--bw-file GB/s]
 *               [--gemm GFLOP/s] [--fma GFLOP/s] [--bf16dot GFLOP/s] [--int8dot GOP/s] [--runs N]
 *               [--amxbf16 GFLOP/s] [--amxint8 GOP/s]
 *               [--prefill 64,256,1024] [--decode N] [--batch 4,8,16,32] [--batch-steps N]
 *               [--adaptive DIR,DIR,...] [--threshold Q] [--skip-load] [--skip-kernels]
 *               [--skip-kv] [--skip-adaptive] [--budget SECONDS]
 * With --budget, a prefill length or batch size whose time, estimated from the figure measured
 * before it, would overrun the budget is skipped with a note saying so.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ouro.h"
#include "internal.h"   /* ouro_matmul, for the kernel figures */
#include "../../tool/omp_wait.h"   /* the tool's bounded OpenMP spinning, measured as users get it */

#define MAX_LIST 16
#define PROMPT_LEN 8    /* tokens already in a sequence before decoding is timed */
#define MAX_RUNS 32     /* --runs at most */
#define MAX_STEPS 256   /* timed decode steps of one run at most */

/* Seconds on a monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Resident set size now, in bytes (from /proc/self/statm); 0 if unknown. */
static double rss_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    fclose(f);
    return (double)res * (double)sysconf(_SC_PAGESIZE);
}

/* Peak resident set size of the process, in bytes. */
static double rss_peak(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

/* Largest anonymous and file-backed resident sizes seen by rss_sample(), in bytes. */
static double g_anon_peak, g_file_peak;

/* Samples RssAnon (heap, KV cache, scratch) and RssFile (mapped weights) from /proc/self/status. */
static void rss_sample(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "RssAnon: %lf", &kb) == 1 && kb * 1024 > g_anon_peak)
            g_anon_peak = kb * 1024;
        if (sscanf(line, "RssFile: %lf", &kb) == 1 && kb * 1024 > g_file_peak)
            g_file_peak = kb * 1024;
    }
    fclose(f);
}

/* The 1-minute load average: other work on the machine skews every figure. */
static double load_avg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

/* Parses "a,b,c" into out (at most MAX_LIST); returns the count. */
static int parse_list(const char *s, int *out)
{
    int n = 0;
    while (*s && n < MAX_LIST) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c)
            break;
        s = c + 1;
    }
    return n;
}

/* Fills ids[0..n) with repeatable pseudo-random ordinary token ids. */
static void fake_ids(int32_t *ids, int n, int vocab, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = 256 + (int32_t)((x >> 8) % (uint32_t)(vocab - 512));
    }
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* ------------------------------------------------------------------------
 * Cost model: bytes and FLOPs of the Ouro forward pass, from the config
 * ------------------------------------------------------------------------ */

typedef struct cost {
    double layer_params;   /* matrix parameters of one decoder layer */
    double layers_bytes;   /* bytes of the matrices of all layers: read once per loop step */
    double head_bytes;     /* lm_head bytes: read once per forward that wants logits */
    double head_flops;     /* 2 * D * V */
    int n_layers, steps, qd;
    double file_bytes;     /* bytes of the weight files */
} cost;

static void cost_init(cost *c, const ouro_config *cfg, int steps)
{
    double D = cfg->hidden_size, I = cfg->intermediate_size, V = cfg->vocab_size;
    double QD = (double)cfg->num_heads * cfg->head_dim, KD = (double)cfg->num_kv_heads * cfg->head_dim;
    /* q8: 512 bytes of quants and 32 of f16 scales per 512 weights (core/quant.c);
     * q4: 256 and 32 (core/quant4.c) */
    double el = cfg->dtype == OURO_F32 ? 4 : cfg->dtype == OURO_Q8 ? 544.0 / 512.0
              : cfg->dtype == OURO_Q4 ? 288.0 / 512.0 : 2;
    c->layer_params = D * QD + 2 * D * KD + QD * D + 3 * D * I;
    c->n_layers = cfg->num_layers;
    c->steps = steps;
    c->qd = (int)QD;
    c->layers_bytes = c->layer_params * cfg->num_layers * el;
    c->head_bytes = D * V * el;
    c->head_flops = 2 * D * V;
}

/* FLOPs of one token at position `ctx` (attending to ctx + 1 positions) run for `depth` steps,
 * without lm_head. */
static double token_flops(const cost *c, double ctx, double depth)
{
    return depth * c->n_layers * (2 * c->layer_params + 4.0 * (ctx + 1) * c->qd);
}

/* Weight bytes read by one decode step at mean depth `depth` (each weight once per step run). */
static double step_bytes(const cost *c, double depth)
{
    return depth * c->layers_bytes + c->head_bytes;
}

/* ------------------------------------------------------------------------
 * Page cache
 * ------------------------------------------------------------------------ */

/* For every regular file of dir: evict its pages (evict != 0), then add its size and the bytes of
 * it resident in the page cache to *total and *resident. */
static void dir_pages(const char *dir, int evict, double *total, double *resident)
{
    *total = *resident = 0;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    long pg = sysconf(_SC_PAGESIZE);
    while ((e = readdir(d))) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
            continue;
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        if (evict) {
            fdatasync(fd);   /* dirty pages cannot be dropped */
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        }
        *total += (double)st.st_size;
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) {
            size_t np = ((size_t)st.st_size + (size_t)pg - 1) / (size_t)pg;
            unsigned char *vec = malloc(np);
            if (vec && mincore(m, (size_t)st.st_size, vec) == 0)
                for (size_t i = 0; i < np; i++)
                    *resident += (vec[i] & 1) ? (double)pg : 0;
            free(vec);
            munmap(m, (size_t)st.st_size);
        }
        close(fd);
    }
    closedir(d);
}

/* ------------------------------------------------------------------------
 * Sections
 * ------------------------------------------------------------------------ */

typedef struct bench {
    const char *model_dir;
    int threads;
    ouro_precision precision;   /* --precision exact|bf16 */
    ouro_load_options load;     /* --weights map|memory */
    double bw;          /* GB/s, the memory read limit (0: unknown) */
    double bw_file;     /* GB/s, reading a mapped file (limits' second figure; 0: unknown) */
    double gemm;        /* GFLOP/s, OpenBLAS sgemm (0: unknown), beside the kernel figures */
    double fma, bf16dot, int8dot;   /* in-register peaks: f32 FMA, bf16 dot (GFLOP/s), 8-bit dot
                                       (GOP/s); 0: unknown */
    double amx_bf16, amx_int8;      /* AMX tile peaks, bf16 (GFLOP/s) and int8 (GOP/s); 0: unknown */
    double peak;        /* the compute peak of this model's path (one of the three) */
    const char *peak_name;
    double peak_amx;    /* where the path runs on AMX tiles: their peak for it (0: none) */
    const char *peak_amx_name;
    int runs;           /* separate runs per figure (median and range are printed) */
    int skip_kv, skip_adaptive;   /* --skip-kv, --skip-adaptive: leave those sections out */
    int prefill[MAX_LIST], n_prefill;
    int batch[MAX_LIST], n_batch;
    int decode, batch_steps;
    const char *adaptive;   /* comma-separated checkpoint folders, or NULL */
    float threshold;
    int skip_load;
    int skip_kernels;           /* --skip-kernels: no ouro_matmul figures */
    double budget, t_start;   /* seconds the run may take (0: no limit), and when it started */
    double kv_peak;     /* largest KV cache allocated, bytes */
} bench;

/* Seconds left of the run's budget (a large number without a budget). */
static double budget_left(const bench *b)
{
    return b->budget > 0 ? b->budget - (now_s() - b->t_start) : 1e30;
}

/* "  (NN% of LIMIT)" for an achieved rate against a limit, or nothing without a limit. */
static void print_share(double achieved, double limit, const char *what)
{
    if (limit > 0)
        printf("  (%.0f%% of %s)", 100.0 * achieved / limit, what);
}

/* Median, smallest and largest of n values (sorts v). */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct spread { double med, lo, hi; } spread;

static spread spread_of(double *v, int n)
{
    spread r = {0, 0, 0};
    if (n < 1)
        return r;
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    r.med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    r.lo = v[0];
    r.hi = v[n - 1];
    return r;
}

/* "X (range A-B over N runs)" for a spread of rates. */
static void print_spread(spread s, int runs, const char *unit)
{
    printf("%8.2f %s", s.med, unit);
    if (runs > 1)
        printf(" (median of %d runs, range %.2f-%.2f)", runs, s.lo, s.hi);
}

/* The machine-readable line of one figure. */
static void print_figure(const char *name, spread s)
{
    printf("FIGURE %s %.4f %.4f %.4f\n", name, s.med, s.lo, s.hi);
}

/* Best time of reps - 1 calls of ouro_matmul (the first call warms up). */
static double time_matmul(float *y, const float *x, const void *w, ouro_dtype dt, int n, int d_in,
                          int d_out, int threads, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        ouro_matmul(y, x, w, dt, n, d_in, d_out, threads);
        double dt_s = now_s() - t0;
        if (r > 0 && dt_s < best)
            best = dt_s;
    }
    return best;
}

/* One dtype's figures: GB/s streamed over (d_big, d_in) of `bytes` bytes at n = 1, and
 * GOP/s for n = 64, 256 over its first d_out rows. */
static void kernel_figures(const bench *b, const void *w, ouro_dtype dt, size_t bytes, float *y,
                           const float *x, int d_in, int d_big, int d_out, const char *ops)
{
    double gbs = bytes / time_matmul(y, x, w, dt, 1, d_in, d_big, b->threads, 4) / 1e9;
    printf("  1 x %d -> %d (decode, weights streamed)   %7.1f GB/s", d_in, d_big, gbs);
    print_share(gbs, b->bw, "memory bandwidth");
    printf("\n");
    int ns[] = {64, 256};
    for (int k = 0; k < 2; k++) {
        double best = time_matmul(y, x, w, dt, ns[k], d_in, d_out, b->threads, 3);
        double gf = 2.0 * ns[k] * d_in * d_out / best / 1e9;
        printf("  %d x %d -> %d (prefill-shaped)        %7.1f %s", ns[k], d_in, d_out, gf, ops);
        if (dt != OURO_Q8 && dt != OURO_Q4) {
            print_share(gf, b->fma, "f32 FMA peak");
            print_share(gf, b->gemm, "sgemm");
        } else {
            print_share(gf, b->int8dot, "8-bit dot peak");
        }
        printf("\n");
    }
}

/* ouro_matmul on bf16 weights, then the same matrix as q8 and q4: GB/s streamed for n = 1
 * and GFLOP/s (GOP/s for q8 and q4) for n = 64, 256. */
static void bench_kernels(const bench *b)
{
    printf("\n== ouro_matmul, bf16 weights (f32 activations), %d threads ==\n", b->threads);
    int d_in = 2048, d_big = 65536, d_out = 5632;
    size_t wn = (size_t)d_big * d_in;               /* 256 MiB of bf16: far beyond the caches */
    uint16_t *w = malloc(wn * 2);                   /* (d_big, d_in) */
    float *x = malloc(sizeof(float) * 256 * d_in);  /* (256, d_in) */
    float *y = malloc(sizeof(float) * (size_t)d_big * 32);   /* (1, d_big) or (256, d_out) */
    if (!w || !x || !y) {
        printf("  out of memory\n");
        free(w); free(x); free(y);
        return;
    }
    for (size_t i = 0; i < wn; i++)
        w[i] = (uint16_t)(0x3C00 + (i * 7919) % 512);   /* small normal bf16 values */
    for (size_t i = 0; i < 256 * (size_t)d_in; i++)
        x[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    kernel_figures(b, w, OURO_BF16, wn * 2, y, x, d_in, d_big, d_out, "GFLOP/s");

    /* the same matrix as q8 (8-bit weights and activations, VNNI where the CPU has it) */
    printf("\n== ouro_matmul, q8 weights (8-bit activations), %d threads ==\n", b->threads);
    size_t qbytes = ouro_q8_bytes(d_big, d_in), gb = ouro_q8_group_bytes(d_in);
    uint8_t *q = aligned_alloc(64, (qbytes + 63) / 64 * 64);
    float *rows = malloc(sizeof(float) * 16 * d_in);
    if (q && rows) {
        for (int g = 0; g < d_big / 16; g++) {
            for (size_t i = 0; i < (size_t)16 * d_in; i++)
                rows[i] = ouro_bf16_to_f32(w[(size_t)g * 16 * d_in + i]);
            ouro_q8_quantize_group(q + (size_t)g * gb, rows, 16, d_in);
        }
        kernel_figures(b, q, OURO_Q8, qbytes, y, x, d_in, d_big, d_out, "GOP/s (int8)");
    } else {
        printf("  out of memory\n");
    }
    free(q);

    /* and as q4 (4-bit weights, 8-bit activations) */
    printf("\n== ouro_matmul, q4 weights (8-bit activations), %d threads ==\n", b->threads);
    qbytes = ouro_q4_bytes(d_big, d_in);
    gb = ouro_q4_group_bytes(d_in);
    q = aligned_alloc(64, (qbytes + 63) / 64 * 64);
    if (q && rows) {
        for (int g = 0; g < d_big / 16; g++) {
            for (size_t i = 0; i < (size_t)16 * d_in; i++)
                rows[i] = ouro_bf16_to_f32(w[(size_t)g * 16 * d_in + i]);
            ouro_q4_quantize_group(q + (size_t)g * gb, rows, 16, d_in);
        }
        kernel_figures(b, q, OURO_Q4, qbytes, y, x, d_in, d_big, d_out, "GOP/s (int8)");
    } else {
        printf("  out of memory\n");
    }
    free(q); free(rows);
    free(w); free(x); free(y);
}

/* Loads the model with a cold and a warm page cache, with and without its tokenizer. */
static void bench_load(bench *b)
{
    printf("\n== load ==\n");
    /* a folder with only config.json and the weights, for the load time without the tokenizer */
    char notok[4096], src[8192], dst[8192], real[4096];
    snprintf(notok, sizeof notok, "build/bench/notok-%d", (int)getpid());
    int have_notok = mkdir(notok, 0755) == 0 && realpath(b->model_dir, real) != NULL;
    DIR *d = have_notok ? opendir(b->model_dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "config.json", 12) != 0 && strncmp(e->d_name, "model", 5) != 0)
            continue;
        snprintf(src, sizeof src, "%s/%s", real, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", notok, e->d_name);
        if (symlink(src, dst) != 0)
            have_notok = 0;
    }
    if (d)
        closedir(d);

    double total, resident;
    for (int pass = 0; pass < 2; pass++) {
        const char *what = pass == 0 ? "cold" : "warm";
        if (pass == 0) {
            dir_pages(b->model_dir, 1, &total, &resident);
            printf("  evicted %s: %.0f MiB of files, %.1f%% still in the page cache\n",
                   b->model_dir, mib(total), total > 0 ? 100.0 * resident / total : 0);
        }
        ouro_model *m = NULL;
        ouro_error err;
        double rss0 = rss_now(), t0 = now_s();
        ouro_status st = ouro_model_load_opts(b->model_dir, &b->load, &m, &err);
        double dt = now_s() - t0, rss1 = rss_now();
        if (st != OURO_OK) {
            printf("  load failed: %s\n", err.message);
            break;
        }
        printf("  load, %s page cache, weights + tokenizer: %8.1f ms   (RSS grew %.1f MiB)\n",
               what, dt * 1e3, mib(rss1 - rss0));
        ouro_model_free(m);
        if (have_notok) {
            if (pass == 0)
                dir_pages(b->model_dir, 1, &total, &resident);
            t0 = now_s();
            st = ouro_model_load_opts(notok, &b->load, &m, &err);
            dt = now_s() - t0;
            if (st == OURO_OK) {
                printf("  load, %s page cache, weights only:       %8.1f ms\n", what, dt * 1e3);
                ouro_model_free(m);
            } else {
                printf("  load without tokenizer failed: %s\n", err.message);
            }
        }
    }
    printf("  (targets: weights < 50 ms and with the tokenizer < 150 ms, warm)\n");
    d = opendir(notok);
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(dst, sizeof dst, "%s/%s", notok, e->d_name);
        unlink(dst);
    }
    if (d)
        closedir(d);
    rmdir(notok);
}

/* A session for n_seq sequences of n_ctx tokens; prints why and returns NULL on failure. */
static ouro_session *new_session(const bench *b, const ouro_model *m, int n_ctx, int n_seq,
                                 int max_batch, ouro_kv_mode kv, ouro_error *err)
{
    ouro_session_options so = {0};
    so.n_ctx = n_ctx;
    so.n_seq = n_seq;
    so.max_batch = max_batch;
    so.kv = kv;
    so.threads = b->threads;
    so.precision = b->precision;
    ouro_session *s = NULL;
    if (ouro_session_new(m, &so, &s, err) != OURO_OK)
        return NULL;
    return s;
}

/* Prefill tokens/s for each prompt length: b->runs runs, each in a fresh session. */
static void bench_prefill(bench *b, const ouro_model *m, const cost *c)
{
    const ouro_config *cfg = ouro_model_config(m);
    printf("\n== prefill (one prompt, full depth, logits of the last token; %d run%s each) ==\n",
           b->runs, b->runs > 1 ? "s" : "");
    double rate = 0;   /* FLOP/s of the last length measured, to estimate the next one */
    for (int i = 0; i < b->n_prefill; i++) {
        int P = b->prefill[i];
        double flops = c->head_flops;
        for (int p = 0; p < P; p++)
            flops += token_flops(c, p, c->steps);
        if (rate > 0 && b->runs * flops / rate > budget_left(b)) {
            printf("  %4d tokens: skipped: about %.0f s at the rate measured above, over the %.0f s"
                   " left of the bench's budget (model_bench --budget, OURO_BENCH_BUDGET)\n",
                   P, b->runs * flops / rate, budget_left(b));
            continue;
        }
        double tps[MAX_RUNS], gfs[MAX_RUNS];
        int ok = 0;
        for (int r = 0; r < b->runs; r++) {
            ouro_error err;
            ouro_session *s = new_session(b, m, P + 1, 1, P, OURO_KV_PER_STEP, &err);
            int32_t *ids = malloc(sizeof(int32_t) * (size_t)P), *seq = calloc((size_t)P, sizeof(int32_t));
            float *logits = malloc(sizeof(float) * (size_t)cfg->vocab_size);
            ouro_status st = OURO_ERR_NOMEM;
            if (s && ids && seq && logits) {
                if ((double)ouro_session_kv_bytes(s) > b->kv_peak)
                    b->kv_peak = (double)ouro_session_kv_bytes(s);
                fake_ids(ids, P, cfg->vocab_size, (uint32_t)P);
                ouro_batch bt = {P, ids, seq, NULL};
                ouro_outputs out = {logits, NULL, NULL};
                double t0 = now_s();
                st = ouro_session_forward(s, &bt, NULL, &out, &err);
                double dt = now_s() - t0;
                rss_sample();
                if (st == OURO_OK) {
                    tps[ok] = P / dt;
                    gfs[ok++] = flops / dt / 1e9;
                    rate = flops / dt;
                }
            }
            if (st != OURO_OK)
                printf("  %4d tokens: %s\n", P, !s ? err.message : st == OURO_ERR_NOMEM
                       ? "out of memory" : err.message);
            ouro_session_free(s);
            free(ids); free(seq); free(logits);
            if (st != OURO_OK)
                break;
        }
        if (ok == 0)
            continue;
        spread t = spread_of(tps, ok), g = spread_of(gfs, ok);
        printf("  %4d tokens: ", P);
        print_spread(t, ok, "tok/s");
        printf("  %7.1f GFLOP/s", g.med);
        print_share(g.med, b->peak, b->peak_name);
        print_share(g.med, b->peak_amx, b->peak_amx_name);
        printf("\n");
        char name[64];
        snprintf(name, sizeof name, "prefill_%d", P);
        print_figure(name, t);
        fflush(stdout);
    }
}

/* Step times of one decode run, in seconds. */
typedef struct run_stats {
    double mean;      /* mean over every timed step: the figure */
    double fastest, median, slowest;
} run_stats;

/* Decodes `steps` tokens in each of n sequences (after a shared PROMPT_LEN-token prompt and one
 * untimed warm-up step); fills *rs from the step times (each[]: every step's seconds, in order,
 * when not NULL) and returns 0, or < 0 after printing why (-2: not supported).  exit_steps
 * (n * steps), when not NULL, receives the step that gave each token's logits. */
static int decode_run(bench *b, const ouro_model *m, int n, int steps,
                      const ouro_forward_options *fo, int32_t *exit_steps, const char *label,
                      run_stats *rs, double *each)
{
    const ouro_config *cfg = ouro_model_config(m);
    int V = cfg->vocab_size;
    ouro_error err;
    ouro_session *s = new_session(b, m, PROMPT_LEN + steps + 2, n, n > PROMPT_LEN ? n : PROMPT_LEN,
                                  OURO_KV_PER_STEP, &err);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(n > PROMPT_LEN ? n : PROMPT_LEN));
    int32_t *seq = calloc((size_t)(n > PROMPT_LEN ? n : PROMPT_LEN), sizeof(int32_t));
    int32_t *ex = malloc(sizeof(int32_t) * (size_t)n);
    float *logits = malloc(sizeof(float) * (size_t)V * (size_t)n);
    int result = -1;
    if (!s || !tok || !seq || !ex || !logits) {
        printf("  %s: %s\n", label, s ? "out of memory" : err.message);
        goto done;
    }
    if ((double)ouro_session_kv_bytes(s) > b->kv_peak)
        b->kv_peak = (double)ouro_session_kv_bytes(s);
    /* the prompt, once, then copied to every sequence */
    fake_ids(tok, PROMPT_LEN, V, 7);
    ouro_batch bt = {PROMPT_LEN, tok, seq, NULL};
    ouro_outputs out = {logits, NULL, NULL};
    if (ouro_session_forward(s, &bt, NULL, &out, &err) != OURO_OK) {
        printf("  %s: %s\n", label, err.message);
        goto done;
    }
    for (int q = 1; q < n; q++)
        if (ouro_session_seq_copy(s, 0, q, &err) != OURO_OK) {
            printf("  %s: %s\n", label, err.message);
            goto done;
        }
    int32_t first = argmax(logits, V);
    for (int q = 0; q < n; q++) {
        tok[q] = (first + 97 * q) % V;   /* sequences diverge from here */
        seq[q] = q;
    }
    double times[MAX_STEPS];   /* seconds of each timed step */
    if (steps > MAX_STEPS)
        steps = MAX_STEPS;
    if (steps < 1)
        steps = 1;
    for (int it = 0; it <= steps; it++) {
        double t0 = now_s();    /* the first step (it == 0) warms up and is not counted */
        ouro_batch bd = {n, tok, seq, NULL};
        ouro_outputs od = {logits, NULL, ex};
        ouro_status st = ouro_session_forward(s, &bd, fo, &od, &err);
        if (st != OURO_OK) {
            printf("  %s: %s%s\n", label, st == OURO_ERR_UNSUPPORTED ? "not supported yet: " : "",
                   err.message);
            result = st == OURO_ERR_UNSUPPORTED ? -2 : -1;
            goto done;
        }
        if (it > 0)
            times[it - 1] = now_s() - t0;
        for (int q = 0; q < n; q++) {
            tok[q] = argmax(logits + (size_t)q * V, V);
            if (it > 0 && exit_steps)
                exit_steps[(size_t)(it - 1) * n + q] = ex[q];
        }
    }
    if (each)
        memcpy(each, times, sizeof(double) * (size_t)steps);
    rs->mean = 0;
    for (int i = 0; i < steps; i++)
        rs->mean += times[i] / steps;
    spread sp = spread_of(times, steps);
    rs->fastest = sp.lo;
    rs->median = sp.med;
    rs->slowest = sp.hi;
    result = 0;
    rss_sample();
done:
    ouro_session_free(s);
    free(tok); free(seq); free(ex); free(logits);
    return result;
}

/* b->runs decode runs of n sequences; tok/s of each run's mean step in rate[], and over all runs
 * the fastest step, the largest slowest/median ratio of a run; returns the runs that succeeded. */
static int decode_runs(bench *b, const ouro_model *m, int n, int steps, const char *label,
                       double *rate, double *fastest, double *steady)
{
    *fastest = 1e30;
    *steady = 0;
    int ok = 0;
    for (int r = 0; r < b->runs; r++) {
        run_stats rs;
        if (decode_run(b, m, n, steps, NULL, NULL, label, &rs, NULL) < 0)
            break;
        rate[ok++] = n / rs.mean;
        if (rs.fastest < *fastest)
            *fastest = rs.fastest;
        if (rs.slowest / rs.median > *steady)
            *steady = rs.slowest / rs.median;
    }
    return ok;
}

/* Single-sequence and batched decode. */
static void bench_decode(bench *b, const ouro_model *m, const cost *c)
{
    printf("\n== decode (full depth, %d loop steps; after a %d-token prompt; mean over every decoded"
           " token, %d run%s each) ==\n", c->steps, PROMPT_LEN, b->runs, b->runs > 1 ? "s" : "");
    double rate[MAX_RUNS], fastest, steady;
    double bytes = step_bytes(c, c->steps);
    int ok = decode_runs(b, m, 1, b->decode, "1 sequence", rate, &fastest, &steady);
    double tok_s = 0;   /* seconds per token of the last figure, for estimates */
    if (ok > 0) {
        spread t = spread_of(rate, ok);
        printf("  1 sequence:   ");
        print_spread(t, ok, "tok/s");
        printf(", %d tokens a run  %.1f GB/s of weights", b->decode, bytes * t.med / 1e9);
        print_share(bytes * t.med / 1e9, b->bw, "memory bandwidth");
        print_share(bytes * t.med / 1e9, b->bw_file, "mapped-file read");
        printf("\n                fastest step %.0f ms (%.2f tok/s); slowest/median step %.2f"
               " (worst run; target <= 1.5)\n", fastest * 1e3, 1 / fastest, steady);
        size_t mapped, huge;   /* which case was measured: 2 MB or 4 KB pages of the weights */
        if (ouro_model_huge_bytes(m, &mapped, &huge))
            printf("                weights mapped with 2 MB pages: %.0f%% (%.2f of %.2f GB; the rest"
                   " 4 KB pages)\n", mapped ? 100.0 * huge / mapped : 0, huge / 1e9, mapped / 1e9);
        else
            printf("                weights mapped with 2 MB pages: unknown (no /proc/self/smaps)\n");
        print_figure("decode_1", t);
        printf("FIGURE steady_1 %.4f %.4f %.4f\n", steady, steady, steady);
        tok_s = 1 / t.med;
    }
    fflush(stdout);
    for (int i = 0; i < b->n_batch; i++) {
        int n = b->batch[i];
        double est = b->runs * tok_s * (n * (b->batch_steps + 1) + PROMPT_LEN);
        if (tok_s > 0 && est > budget_left(b)) {
            printf("  %2d sequences: skipped: about %.0f s at the rate measured above, over the %.0f s"
                   " left of the bench's budget\n", n, est, budget_left(b));
            continue;
        }
        char label[64];
        snprintf(label, sizeof label, "%d sequences", n);
        ok = decode_runs(b, m, n, b->batch_steps, label, rate, &fastest, &steady);
        if (ok == 0)
            continue;
        spread t = spread_of(rate, ok);
        tok_s = 1 / t.med;
        double flops = n * (token_flops(c, PROMPT_LEN + 1 + b->batch_steps / 2.0, c->steps) + c->head_flops);
        double dt = n / t.med;   /* seconds per step */
        double t_bw = b->bw > 0 ? bytes / (b->bw * 1e9) : 0;
        double t_fl = b->peak > 0 ? flops / (b->peak * 1e9) : 0;
        printf("  %2d sequences: ", n);
        print_spread(t, ok, "tok/s total");
        printf("  %.1f GFLOP/s", flops / dt / 1e9);
        if (t_bw > 0 || t_fl > 0)
            printf("  (%.0f%% of the %s)", 100.0 * (t_bw > t_fl ? t_bw : t_fl) / dt,
                   t_bw > t_fl ? "bandwidth limit" : b->peak_name);
        print_share(flops / dt / 1e9, b->peak_amx, b->peak_amx_name);
        printf("; fastest step %.0f ms, slowest/median %.2f\n", fastest * 1e3, steady);
        snprintf(label, sizeof label, "decode_%d", n);
        print_figure(label, t);
        fflush(stdout);
    }
}

/* KV cache bytes per token of context, per cache mode. */
static void bench_kv(bench *b, const ouro_model *m)
{
    printf("\n== KV cache bytes per token of context ==\n");
    static const char *names[] = {"per-step", "last", "avg"};
    double per_step = 0;
    for (int k = 0; k < 3; k++) {
        ouro_error err;
        ouro_session *s = new_session(b, m, 1024, 1, 1, (ouro_kv_mode)k, &err);
        if (!s) {
            printf("  %-9s %s%s\n", names[k],
                   err.status == OURO_ERR_UNSUPPORTED ? "not supported yet: " : "", err.message);
            continue;
        }
        double per = (double)ouro_session_kv_bytes(s) / ouro_session_n_ctx(s);
        if (k == 0)
            per_step = per;
        printf("  %-9s %10.0f bytes/token  (%.3f MiB)", names[k], per, mib(per));
        if (k > 0 && per_step > 0)
            printf("  = %.2f x per-step", per / per_step);
        printf("\n");
        ouro_session_free(s);
    }
}

/* Mean of n exit steps. */
static double mean_steps(const int32_t *x, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    return n ? sum / n : 0;
}

/* Gate bias recorded in dir/synthetic.json, or NAN-like 1e9 when absent. */
static double read_gate_bias(const char *dir)
{
    char path[4096], buf[1024];
    snprintf(path, sizeof path, "%s/synthetic.json", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1e9;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strstr(buf, "\"gate_bias\":");
    return p ? atof(p + 12) : 1e9;
}

/* Adaptive depth: decode time per token against the mean steps run, per checkpoint. */
static void bench_adaptive(bench *b, const ouro_model *base, const cost *c)
{
    printf("\n== adaptive depth (exit threshold %g, %d decoded tokens per figure) ==\n",
           (double)b->threshold, b->decode);
    int32_t *ex = malloc(sizeof(int32_t) * (size_t)b->decode);
    if (!ex)
        return;
    ouro_forward_options full = {{OURO_EXIT_THRESHOLD, 0, b->threshold}, OURO_DEPTH_FULL};
    ouro_forward_options adapt = {{OURO_EXIT_THRESHOLD, 0, b->threshold}, OURO_DEPTH_ADAPTIVE};
    /* Tokens stop at different depths.  Printed: the mean time per token next to the mean
     * number of steps run, and the median over tokens of (token time / steps it ran), which
     * other work on the machine disturbs far less; "x faster" compares that median times the
     * mean depth with full depth's median per step. */
    double mean = 0, *each = malloc(sizeof(double) * (size_t)(b->decode > 256 ? 256 : b->decode));
    double per_step[256];
    int nd = b->decode > 256 ? 256 : b->decode;
    if (!each) {
        free(ex);
        return;
    }
    run_stats rs;
    double t_full = 0;
    if (decode_run(b, base, 1, b->decode, &full, ex, "full depth", &rs, each) == 0) {
        mean = rs.mean;
        for (int i = 0; i < nd; i++)
            per_step[i] = each[i] / c->steps;
        qsort(per_step, (size_t)nd, sizeof(double), cmp_double);
        t_full = per_step[nd / 2];   /* median seconds per step run */
        printf("  full depth:       %7.0f ms/token  %6.2f tok/s  mean steps run %.2f of %d"
               "  median %5.1f ms per step run  (its gate would stop at %.2f)\n", mean * 1e3,
               1 / mean, (double)c->steps, c->steps, t_full * 1e3, mean_steps(ex, b->decode));
    }
    fflush(stdout);
    char list[8192];
    snprintf(list, sizeof list, "%s", b->adaptive ? b->adaptive : "");
    int first = 1;
    for (char *dir = strtok(list, ","); dir; dir = strtok(NULL, ","), first = 0) {
        ouro_model *m = NULL;
        ouro_error err;
        if (ouro_model_load_opts(dir, &b->load, &m, &err) != OURO_OK) {
            printf("  %s: %s\n", dir, err.message);
            continue;
        }
        double bias = read_gate_bias(dir);
        char label[4200];
        snprintf(label, sizeof label, "gate bias %.2f", bias);
        int got = decode_run(b, m, 1, b->decode, &adapt, ex, label, &rs, each);
        mean = rs.mean;
        if (got == -2) {   /* unsupported: say what depth the gate asks for, then stop */
            if (decode_run(b, m, 1, first ? 1 : b->decode, &full, ex, label, &rs, NULL) == 0)
                printf("  gate bias %6.2f: the gate would stop at step %.2f on average\n", bias,
                       mean_steps(ex, first ? 1 : b->decode));
            ouro_model_free(m);
            continue;
        }
        if (got == 0) {
            double depth = mean_steps(ex, b->decode);
            for (int i = 0; i < nd; i++)
                per_step[i] = each[i] / (ex[i] > 0 ? ex[i] : 1);
            qsort(per_step, (size_t)nd, sizeof(double), cmp_double);
            double med_step = per_step[nd / 2];
            printf("  gate bias %6.2f: %7.0f ms/token  %6.2f tok/s  mean steps run %.2f of %d"
                   "  median %5.1f ms per step run", bias, mean * 1e3, 1 / mean, depth, c->steps,
                   med_step * 1e3);
            if (t_full > 0)
                printf("  -> %.0f ms/token at that depth, %.2fx faster than full depth",
                       med_step * depth * 1e3, t_full * c->steps / (med_step * depth));
            print_share(step_bytes(c, depth) / (med_step * depth) / 1e9, b->bw, "bandwidth");
            printf("\n");
        }
        fflush(stdout);
        ouro_model_free(m);
    }
    free(each);
    free(ex);
}

/* ------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: model_bench --model DIR [--threads N] [--precision exact|bf16] [--weights map|memory]\n"
            "                   [--bw GB/s]\n"
            "                   [--bw-file GB/s] [--gemm GFLOP/s] [--fma GFLOP/s] [--bf16dot GFLOP/s] [--int8dot GOP/s]\n"
            "                   [--amxbf16 GFLOP/s] [--amxint8 GOP/s]\n"
            "                   [--runs N] [--prefill 64,256,1024] [--decode N] [--batch 4,8,16,32]\n"
            "                   [--batch-steps N] [--adaptive DIR,DIR,...] [--threshold Q]\n"
            "                   [--skip-load] [--skip-kernels] [--skip-kv] [--skip-adaptive]\n"
            "                   [--budget SECONDS]\n");
}

int main(int argc, char **argv)
{
    omp_wait_bound(argv);
    bench b = {0};
    b.t_start = now_s();
    b.decode = 8;
    b.batch_steps = 4;
    b.threshold = 0.5f;
    b.runs = 3;
    b.n_prefill = parse_list("64,256,1024", b.prefill);
    b.n_batch = parse_list("4,8,16,32", b.batch);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--skip-load")) { b.skip_load = 1; continue; }
        if (!strcmp(a, "--skip-kernels")) { b.skip_kernels = 1; continue; }
        if (!strcmp(a, "--skip-kv")) { b.skip_kv = 1; continue; }
        if (!strcmp(a, "--skip-adaptive")) { b.skip_adaptive = 1; continue; }
        if (!v || !strncmp(v, "--", 2)) {   /* "--bw --fma 400" would read --fma as 0 */
            fprintf(stderr, "model_bench: %s needs a value\n", a);
            usage();
            return 2;
        }
        i++;
        if (!strcmp(a, "--model")) b.model_dir = v;
        else if (!strcmp(a, "--threads")) b.threads = atoi(v);
        else if (!strcmp(a, "--precision")) {
            if (!strcmp(v, "exact")) b.precision = OURO_PRECISION_EXACT;
            else if (!strcmp(v, "bf16")) b.precision = OURO_PRECISION_BF16;
            else { fprintf(stderr, "model_bench: --precision must be exact or bf16\n"); return 2; }
        }
        else if (!strcmp(a, "--weights")) {
            if (!strcmp(v, "map")) b.load.weights = OURO_WEIGHTS_MAP;
            else if (!strcmp(v, "memory")) b.load.weights = OURO_WEIGHTS_MEMORY;
            else { fprintf(stderr, "model_bench: --weights must be map or memory\n"); return 2; }
        }
        else if (!strcmp(a, "--bw")) b.bw = atof(v);
        else if (!strcmp(a, "--bw-file")) b.bw_file = atof(v);
        else if (!strcmp(a, "--gemm")) b.gemm = atof(v);
        else if (!strcmp(a, "--fma")) b.fma = atof(v);
        else if (!strcmp(a, "--bf16dot")) b.bf16dot = atof(v);
        else if (!strcmp(a, "--int8dot")) b.int8dot = atof(v);
        else if (!strcmp(a, "--amxbf16")) b.amx_bf16 = atof(v);
        else if (!strcmp(a, "--amxint8")) b.amx_int8 = atof(v);
        else if (!strcmp(a, "--runs")) b.runs = atoi(v);
        else if (!strcmp(a, "--prefill")) b.n_prefill = *v ? parse_list(v, b.prefill) : 0;
        else if (!strcmp(a, "--batch")) b.n_batch = *v ? parse_list(v, b.batch) : 0;
        else if (!strcmp(a, "--decode")) b.decode = atoi(v);
        else if (!strcmp(a, "--batch-steps")) b.batch_steps = atoi(v);
        else if (!strcmp(a, "--adaptive")) b.adaptive = v;
        else if (!strcmp(a, "--threshold")) b.threshold = (float)atof(v);
        else if (!strcmp(a, "--budget")) b.budget = atof(v);
        else { usage(); return 2; }
    }
    if (!b.model_dir || b.decode < 1 || b.batch_steps < 1 || b.runs < 1 || b.runs > MAX_RUNS || !(b.threshold >= 0 && b.threshold <= 1)) {
        usage();
        return 2;
    }
    for (int i = 0; i < b.n_prefill; i++)
        if (b.prefill[i] < 1) { usage(); return 2; }
    for (int i = 0; i < b.n_batch; i++)
        if (b.batch[i] < 1) { usage(); return 2; }
    if (b.threads <= 0)
        b.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    printf("ouro %s, build %s\n", ouro_version(), ouro_build_info());
    printf("precision: %s\n", b.precision == OURO_PRECISION_BF16 ? "bf16 activations (approximate)"
                                                                   : "exact (f32 activations), "
                                                                     "or 8-bit for q8 and q4 weights");
    printf("weights: %s\n", b.load.weights == OURO_WEIGHTS_MEMORY
                                ? "memory (a private copy, 2 MB pages)" : "map (the files mapped)");
    printf("model %s, %d threads; limits: memory read %.1f GB/s, f32 FMA %.1f GFLOP/s, bf16 dot"
           " %.1f GFLOP/s, 8-bit dot %.1f GOP/s, sgemm %.1f GFLOP/s, AMX bf16 %.1f GFLOP/s, AMX"
           " int8 %.1f GOP/s (%s); load average %.2f\n",
           b.model_dir, b.threads, b.bw, b.fma, b.bf16dot, b.int8dot, b.gemm, b.amx_bf16,
           b.amx_int8, ouro_cpu_amx() ? "tiles in use" : "no tiles", load_avg());
    fflush(stdout);

    if (!b.skip_load)
        bench_load(&b);

    ouro_model *m = NULL;
    ouro_error err;
    if (ouro_model_load_opts(b.model_dir, &b.load, &m, &err) != OURO_OK) {
        printf("cannot load %s: %s\n", b.model_dir, err.message);
        return 1;
    }
    const ouro_config *cfg = ouro_model_config(m);
    cost c;
    cost_init(&c, cfg, cfg->total_ut_steps);
    /* the compute peak of the path this model runs (kernels.c: bf16 activations need bf16
     * weights and AVX-512 BF16; q8 and q4 weights always take 8-bit activations) */
    if (cfg->dtype == OURO_Q8 || cfg->dtype == OURO_Q4) {
        b.peak = b.int8dot;
        b.peak_name = "8-bit dot peak";
    } else if (b.precision == OURO_PRECISION_BF16 && cfg->dtype == OURO_BF16 && ouro_cpu_bf16dp()) {
        b.peak = b.bf16dot;
        b.peak_name = "bf16 dot peak";
    } else {
        b.peak = b.fma;
        b.peak_name = "f32 FMA peak";
    }
    /* and where the products run on AMX tiles (kernels.c, quant.c, quant4.c): their peak; the
     * exact path multiplies each activation as three bf16 pieces, so a third of the bf16 rate */
    if (ouro_cpu_amx()) {
        if (cfg->dtype == OURO_Q8 || cfg->dtype == OURO_Q4) {
            b.peak_amx = b.amx_int8;
            b.peak_amx_name = "AMX int8 peak";
        } else if (cfg->dtype == OURO_BF16 && b.precision == OURO_PRECISION_BF16) {
            b.peak_amx = b.amx_bf16;
            b.peak_amx_name = "AMX bf16 peak";
        } else if (cfg->dtype == OURO_BF16) {
            b.peak_amx = b.amx_bf16 / 3;
            b.peak_amx_name = "AMX bf16 peak / 3";
        }
    }
    double total, resident;
    dir_pages(b.model_dir, 0, &total, &resident);
    c.file_bytes = total;
    printf("\nmodel: %d layers x %d loop steps, hidden %d, vocab %d, %s; %.2f GB of layer weights "
           "(read once per step) + %.2f GB lm_head; %.2f GB of files\n",
           cfg->num_layers, cfg->total_ut_steps, cfg->hidden_size, cfg->vocab_size,
           cfg->dtype == OURO_BF16 ? "bf16" : cfg->dtype == OURO_F16 ? "f16"
           : cfg->dtype == OURO_Q8 ? "q8 (8-bit weights and activations)"
           : cfg->dtype == OURO_Q4 ? "q4 (4-bit weights, 8-bit activations)" : "f32",
           c.layers_bytes / 1e9, c.head_bytes / 1e9, total / 1e9);
    fflush(stdout);

    if (!b.skip_kv)
        bench_kv(&b, m);
    bench_decode(&b, m, &c);
    bench_prefill(&b, m, &c);

    /* before the adaptive checkpoints and the kernel buffers add to it */
    double peak = rss_peak();
    printf("\n== memory (one model) ==\n");
    printf("  peak RSS %.0f MiB: mapped weights at most %.0f MiB (shared page cache, not a copy;"
           " files %.0f MiB), anonymous at most %.0f MiB, of which the largest KV cache %.0f MiB:"
           " %.0f MiB of working memory\n",
           mib(peak), mib(g_file_peak), mib(c.file_bytes), mib(g_anon_peak), mib(b.kv_peak),
           mib(g_anon_peak - b.kv_peak));
    fflush(stdout);

    if (!b.skip_adaptive)
        bench_adaptive(&b, m, &c);
    ouro_model_free(m);
    if (!b.skip_kernels)
        bench_kernels(&b);
    printf("\nload average at the end: %.2f (other work on the machine slows every figure)\n",
           load_avg());
    return 0;
}

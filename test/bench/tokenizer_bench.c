/*
 * tokenizer_bench.c -- speed of the ouro tokenizer: loading tokenizer.json, and
 * encoding the texts of test/data/tokenizer/cases.json and a corpus of real
 * text documents, on one thread and on several threads sharing one loaded
 * tokenizer.  test/bench/tokenizer.sh builds it and runs the same work through
 * the Hugging Face `tokenizers` Node binding (tokenizer_bench_hf.js) for
 * comparison.
 *
 *   tokenizer_bench MODEL_DIR CASES_JSON CORPUS_LIST [THREADS]
 *
 * CORPUS_LIST names one document file per line; each document is encoded as
 * one text (as a caller would encode one file).  Every figure is the best of
 * several repetitions; MB/s is 10^6 bytes of input text per second.  Besides
 * the speeds the program prints a checksum of all corpus ids (FNV-1a over the
 * ids of every document in order) and the token count, which
 * tokenizer_bench_hf.js prints the same way: equal checksums mean both
 * tokenizers gave identical ids for the whole corpus.  The last line, for
 * scripts, is
 *   TOKBENCH load_ms=X cases_mbs=X corpus_mbs=X corpus_mt_mbs=X threads=N tokens=N checksum=HEX
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "ouro.h"

/* ------------------------------------------------------------------------
 * Inputs
 * ------------------------------------------------------------------------ */

/* One text to encode: `len` bytes at `text` (malloc'd). */
typedef struct doc { char *text; size_t len; } doc;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads a whole file (malloc'd, NUL-terminated); NULL when unreadable. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *b = realloc(buf, cap * 2);
        if (!b) { free(buf); buf = NULL; break; }
        buf = b;
        cap *= 2;
    }
    fclose(f);
    if (buf) { buf[n] = '\0'; *len = n; }
    return buf;
}

/* The "text" of every case in cases.json; *n gets the count. */
static doc *read_cases(const char *path, size_t *n)
{
    size_t len;
    char *data = slurp(path, &len);
    cJSON *root = data ? cJSON_ParseWithLength(data, len) : NULL;
    free(data);
    *n = 0;
    if (!cJSON_IsArray(root)) { cJSON_Delete(root); return NULL; }
    doc *d = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *d);
    const cJSON *c;
    cJSON_ArrayForEach(c, root) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
        if (!cJSON_IsString(t)) continue;
        d[*n].len = strlen(t->valuestring);
        d[*n].text = strdup(t->valuestring);
        (*n)++;
    }
    cJSON_Delete(root);
    return d;
}

/* Every file named in the list (one path a line); *n gets the count. */
static doc *read_corpus(const char *list, size_t *n)
{
    size_t len;
    char *names = slurp(list, &len);
    *n = 0;
    if (!names) return NULL;
    size_t cap = 1;
    for (char *p = names; *p; p++) cap += *p == '\n';
    doc *d = calloc(cap, sizeof *d);
    for (char *line = strtok(names, "\n"); line; line = strtok(NULL, "\n")) {
        size_t l;
        char *t = slurp(line, &l);
        if (!t) { fprintf(stderr, "tokenizer_bench: cannot read %s\n", line); continue; }
        d[*n].text = t;
        d[*n].len = l;
        (*n)++;
    }
    free(names);
    return d;
}

/* ------------------------------------------------------------------------
 * Encoding runs
 * ------------------------------------------------------------------------ */

/* Shared state of a multi-threaded run: threads take documents in turn. */
typedef struct run {
    const ouro_tokenizer *tok;
    const doc *docs;
    size_t n_docs;
    atomic_size_t next;       /* next document to take */
    atomic_int failed;
    size_t *n_ids;            /* (n_docs) token count of each document */
    uint64_t *sum;            /* (n_docs) FNV-1a of each document's ids */
} run;

static uint64_t fnv_ids(uint64_t h, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int k = 0; k < 4; k++) {
            h ^= (v >> (8 * k)) & 0xff;
            h *= 0x100000001b3ULL;
        }
    }
    return h;
}

static void *worker(void *arg)
{
    run *r = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->n_docs) break;
        int32_t *ids;
        size_t n;
        if (ouro_tokenizer_encode(r->tok, r->docs[i].text, r->docs[i].len, &ids, &n, NULL) != OURO_OK) {
            atomic_store(&r->failed, 1);
            continue;
        }
        r->n_ids[i] = n;
        r->sum[i] = fnv_ids(0xcbf29ce484222325ULL, ids, n);
        ouro_free(ids);
    }
    return NULL;
}

/* Encodes every document `reps` times on `threads` threads; returns the best
 * seconds of one pass, or -1 when an encode failed.  n_ids and sum are
 * filled per document. */
static double encode_all(const ouro_tokenizer *tok, const doc *docs, size_t n_docs, int threads,
                         int reps, size_t *n_ids, uint64_t *sum)
{
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        run r = { .tok = tok, .docs = docs, .n_docs = n_docs, .n_ids = n_ids, .sum = sum };
        atomic_init(&r.next, 0);
        atomic_init(&r.failed, 0);
        pthread_t th[64];
        double t0 = now();
        if (threads <= 1) {
            worker(&r);
        } else {
            for (int k = 0; k < threads; k++) pthread_create(&th[k], NULL, worker, &r);
            for (int k = 0; k < threads; k++) pthread_join(th[k], NULL);
        }
        double t = now() - t0;
        if (atomic_load(&r.failed)) return -1;
        if (t < best) best = t;
    }
    return best;
}

static size_t total_bytes(const doc *d, size_t n)
{
    size_t b = 0;
    for (size_t i = 0; i < n; i++) b += d[i].len;
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: tokenizer_bench MODEL_DIR CASES_JSON CORPUS_LIST [THREADS]\n");
        return 2;
    }
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;

    /* load: best of 10 */
    double load_best = 1e30;
    ouro_tokenizer *tok = NULL;
    for (int rep = 0; rep < 10; rep++) {
        ouro_error e;
        ouro_tokenizer_free(tok);
        tok = NULL;
        double t0 = now();
        if (ouro_tokenizer_load(argv[1], &tok, &e) != OURO_OK) {
            fprintf(stderr, "tokenizer_bench: %s\n", e.message);
            return 1;
        }
        double t = now() - t0;
        if (t < load_best) load_best = t;
    }
    printf("ouro load tokenizer.json: %.1f ms (best of 10)\n", load_best * 1e3);

    size_t n_cases, n_docs;
    doc *cases = read_cases(argv[2], &n_cases);
    doc *docs = read_corpus(argv[3], &n_docs);
    if (!cases || !n_cases || !docs || !n_docs) {
        fprintf(stderr, "tokenizer_bench: no cases or no corpus documents\n");
        return 1;
    }
    size_t *n_ids = calloc(n_docs > n_cases ? n_docs : n_cases, sizeof *n_ids);
    uint64_t *sum = calloc(n_docs > n_cases ? n_docs : n_cases, sizeof *sum);

    /* the case texts: small, so 20 passes per repetition */
    size_t case_bytes = total_bytes(cases, n_cases);
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        for (int k = 0; k < 20; k++)
            if (encode_all(tok, cases, n_cases, 1, 1, n_ids, sum) < 0) return 1;
        double t = (now() - t0) / 20;
        if (t < best) best = t;
    }
    double cases_mbs = case_bytes / best / 1e6;
    printf("ouro cases.json texts: %zu texts, %zu bytes, %.1f MB/s (1 thread)\n", n_cases, case_bytes,
           cases_mbs);

    /* the corpus, one thread then several */
    size_t corpus_bytes = total_bytes(docs, n_docs);
    double t1 = encode_all(tok, docs, n_docs, 1, 3, n_ids, sum);
    if (t1 < 0) { fprintf(stderr, "tokenizer_bench: encode failed\n"); return 1; }
    size_t tokens = 0;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n_docs; i++) {
        tokens += n_ids[i];
        h ^= sum[i];
        h *= 0x100000001b3ULL;
    }
    double tm = encode_all(tok, docs, n_docs, threads, 3, n_ids, sum);
    uint64_t h2 = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n_docs; i++) {
        h2 ^= sum[i];
        h2 *= 0x100000001b3ULL;
    }
    printf("ouro corpus: %zu documents, %zu bytes, %zu tokens, checksum %016llx\n", n_docs, corpus_bytes,
           tokens, (unsigned long long)h);
    printf("ouro corpus: %.1f MB/s (1 thread), %.1f MB/s (%d threads, one shared tokenizer%s)\n",
           corpus_bytes / t1 / 1e6, tm > 0 ? corpus_bytes / tm / 1e6 : 0.0, threads,
           h2 == h ? ", same ids" : ", IDS DIFFER");
    printf("TOKBENCH load_ms=%.2f cases_mbs=%.2f corpus_mbs=%.2f corpus_mt_mbs=%.2f threads=%d "
           "tokens=%zu checksum=%016llx\n", load_best * 1e3, cases_mbs, corpus_bytes / t1 / 1e6,
           tm > 0 ? corpus_bytes / tm / 1e6 : 0.0, threads, tokens, (unsigned long long)h);

    for (size_t i = 0; i < n_cases; i++) free(cases[i].text);
    for (size_t i = 0; i < n_docs; i++) free(docs[i].text);
    free(cases);
    free(docs);
    free(n_ids);
    free(sum);
    ouro_tokenizer_free(tok);
    return h2 == h ? 0 : 1;
}

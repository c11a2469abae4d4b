/*
 * ouro.c -- the `ouro` command-line tool: entry point and the model commands.
 *
 *   ouro logits   --model DIR --ids 1,2,3 [--exit MODE] [--max-loops N]
 *   ouro generate --model DIR (--ids 1,2,3 | --prompt TEXT [--chat]) [options] [--json]
 *   ouro info     --model DIR
 *   ouro enrich   DB --table T --input C --output C --model DIR  (enrich.c)
 *   ouro build-info | version
 *
 * and the tokenizer commands of tokenize.c.  Results go to stdout (JSON where
 * the help says so), errors to stderr; exit status 0, 1 on an error, 2 on a
 * usage error.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "omp_wait.h"   /* bounded OpenMP spinning */
#include "ouro.h"
#include "ouro_surface.h"

/* ------------------------------------------------------------------------
 * Help
 * ------------------------------------------------------------------------ */

static const char *usage_main =
    "usage: ouro COMMAND [options]\n"
    "\n"
    "Runs Ouro looped language models (Hugging Face folders: config.json,\n"
    "safetensors weights, tokenizer.json) on the CPU.\n"
    "\n"
    "commands:\n"
    "  generate        continue a prompt (text, or JSON with --json)\n"
    "  logits          exit distribution and last-position logits of ids (JSON)\n"
    "  tokenize        text -> ids (JSON)\n"
    "  detokenize      ids -> text (JSON)\n"
    "  chat-template   render messages with the model's chat template (JSON)\n"
    "  info            the model's configuration and files (JSON)\n"
    "  convert         write a model's matrices as 8-bit (q8) or 4-bit (q4) blocks\n"
    "  sql-surface     the SQL surface of both extensions: settings, options, functions\n"
    "  enrich          fill a column of a SQLite table, resumable, with a progress bar\n"
    "  build-info      how this build was made: SIMD, OpenMP, threads (JSON)\n"
    "  version         the version\n"
    "\n"
    "`ouro COMMAND --help` describes a command's options.\n";

static const char *usage_logits =
    "usage: ouro logits --model DIR --ids 1,2,3 [--exit MODE] [--max-loops N] [--threads N]\n"
    "                   [--precision exact|bf16|auto]\n"
    "\n"
    "Runs one full forward pass over the ids (no BOS is added) and prints\n"
    "  {\"exit_pdf\": [[p_1..p_T] for each position], \"exit_step\": K,\n"
    "   \"logits\": [the last position's logits]}\n"
    "MODE chooses the loop step whose state gives the logits:\n"
    "  default       Q-exit with the config's early_exit_threshold (upstream's default)\n"
    "  step:K        step K (1-based)\n"
    "  threshold:Q   the first step whose cumulative exit probability reaches Q, else the last\n"
    "  weighted      logits averaged over the steps, weighted by the exit distribution\n"
    "--max-loops N runs N loop steps (1..16; default the model's total_ut_steps); the last step\n"
    "run takes the exit probability left over by the earlier ones.\n"
    "--precision bf16 rounds activations to bf16 for the matrix products (AVX-512 BF16 dot\n"
    "products on bf16 weights; faster, approximate); exact (default here, where the logits\n"
    "are compared with a reference) keeps them f32; auto is generate's default.\n";

static const char *usage_generate =
    "usage: ouro generate [--model DIR] [--ids 1,2,3 | --prompt TEXT | --file FILE] [options]\n"
    "\n"
    "Prints the continuation (new tokens only; special tokens stay in the text, the token that\n"
    "stopped generation does not).  --model defaults to $OURO_MODEL; every option may also be\n"
    "written --option=value.  Without --ids, --prompt or --file the prompt is read from\n"
    "standard input.  On a terminal the text is printed as it is generated.  Options:\n"
    "  --file FILE          one prompt per line (FILE - = standard input); a line may also be\n"
    "                       JSON: a string, or {\"prompt\": ..., \"id\": ...}.  The prompts are\n"
    "                       decoded together, --batch-size at a time, and every result is one\n"
    "                       JSON line {\"line\", \"id\", \"text\", \"n_tokens\", \"stop_reason\"}\n"
    "                       in input order, or {\"line\", \"error\"} for a prompt that cannot run\n"
    "  --batch-size N       with --file: prompts decoded together (default 16, 1..256)\n"
    "  --stream / --no-stream  print tokens as they are generated (default: on a terminal)\n"
    "  --chat               wrap the prompt as a user message with the model's chat template\n"
    "  --system TEXT        with --chat: a system message\n"
    "  --max-tokens N       new tokens at most (default 128)\n"
    "  --temperature X      0 (default) is greedy; otherwise sample\n"
    "  --top-k K            sample among the K most likely tokens (0 = off)\n"
    "  --top-p P            sample from the smallest set holding probability P (1 = off)\n"
    "  --seed S             the same seed gives the same text (default 0)\n"
    "  --stop STR           stop before this string (may repeat)\n"
    "  --exit MODE          default | step:K | threshold:Q | weighted (see `ouro logits --help`)\n"
    "  --depth full|adaptive  adaptive: decoded tokens stop running loop steps at their exit\n"
    "                       step (default: adaptive when --exit threshold:Q is given)\n"
    "  --kv per-step|last|avg  decode KV cache (default per-step, as upstream)\n"
    "  --kv-type f32|f16    cache entries: f32 (default, exact) or f16 (half the memory,\n"
    "                       approximate)\n"
    "  --max-loops N        loop steps, 1..16 (default the model's total_ut_steps)\n"
    "  --n-ctx N            context length of the session (default min(4096, model's))\n"
    "  --threads N          worker threads (default: every core)\n"
    "  --precision auto|exact|bf16  matrix products: f32 activations (exact) or activations\n"
    "                       rounded to bf16 (faster on AVX-512 BF16, approximate); auto\n"
    "                       (default) is bf16 on a CPU with AVX-512 BF16 and no AMX tiles,\n"
    "                       exact elsewhere\n"
    "  --weights map|memory  weights mapped from the files (default; shared page cache) or\n"
    "                       read into this process's memory (2 MB pages: steadier decode)\n"
    "  --json               print {\"ids\", \"text\", \"stop_reason\", \"exit_steps\",\n"
    "                       \"prompt_tokens\", \"tokens_per_s\"}\n"
    "  --progress WHEN      a progress bar on stderr (rows, tokens/s, ETA; one prompt: its\n"
    "                       tokens): auto (default: when stderr is a terminal and the text\n"
    "                       is not streamed there), always or never\n";

static const char *usage_info =
    "usage: ouro info --model DIR\n"
    "\n"
    "Loads the model (validating every tensor) and prints its configuration, parameter count,\n"
    "dtypes and file sizes as JSON.\n";

static const char *usage_convert =
    "usage: ouro convert --model DIR --out DIR [--type q8|q4] [--threads N] [--progress WHEN]\n"
    "\n"
    "Writes the model of --model into the folder --out (created when missing) with its\n"
    "matrices in 8-bit blocks (q8, the default: one f16 scale per 32 values of a row),\n"
    "about 53% of the bf16 size, or in 4-bit blocks (--type q4: the same scales), about\n"
    "28%, and copies its config and tokenizer files.  Load the new folder like any model:\n"
    "it is mapped as it is.  Products with q8 or q4 weights round the activations to\n"
    "8 bits too, like llama.cpp's Q8_0 and Q4_0: faster, approximate, q4 more so (see\n"
    "the README).\n"
    "--progress auto|always|never: a progress bar on stderr (MB written, ETA); auto (the\n"
    "default) draws it when stderr is a terminal.\n";

/* ------------------------------------------------------------------------
 * Argument helpers
 * ------------------------------------------------------------------------ */

/* Option `opt` of command cmd: one of the values of the SQL setting `id`
 * (the values the surface table lists, e.g. exact|bf16); prints an error
 * and returns false on anything else. */
static bool parse_enum(const char *cmd, const char *opt, ouro_param_id id, const char *s,
                       int *out)
{
    const ouro_param *p = &ouro_params[id];
    int v = ouro_param_enum_value(p, s);
    if (v >= 0) {
        *out = v;
        return true;
    }
    fprintf(stderr, "ouro %s: %s must be ", cmd, opt);
    for (int i = 0; i < p->n_values; i++)
        fprintf(stderr, "%s%s", i == 0 ? "" : i == p->n_values - 1 ? " or " : ", ", p->values[i].name);
    fprintf(stderr, ", not \"%s\"\n", s);
    return false;
}

bool ouro_tool_parse_precision(const char *cmd, const char *s, ouro_precision *out)
{
    int v = 0;
    if (!parse_enum(cmd, "--precision", OURO_P_PRECISION, s, &v))
        return false;
    *out = (ouro_precision)v;
    return true;
}

bool ouro_tool_parse_weights(const char *cmd, const char *s, ouro_weights *out)
{
    int v = 0;
    if (!parse_enum(cmd, "--weights", OURO_P_WEIGHTS, s, &v))
        return false;
    *out = (ouro_weights)v;
    return true;
}

/* Parses a decimal integer in [lo, hi]; prints an error and returns false
 * otherwise. */
static bool parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "ouro %s: %s must be an integer in %ld..%ld, not \"%s\"\n",
                cmd, opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_float(const char *cmd, const char *opt, const char *s, double lo, double hi,
                        double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "ouro %s: %s must be a number in %g..%g, not \"%s\"\n",
                cmd, opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

/* Parses "1,2,3" into a malloc'd array; prints an error and returns NULL. */
static int32_t *parse_ids(const char *cmd, const char *s, int *n_out)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "ouro %s: out of memory\n", cmd);
        return NULL;
    }
    int n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "ouro %s: --ids must be comma-separated token ids, not \"%s\"\n", cmd, s);
            free(ids);
            return NULL;
        }
        ids[n++] = (int32_t)v;
        if (!*end)
            break;
        p = end + 1;
    }
    *n_out = n;
    return ids;
}

/* Parses an exit mode: default | step:K | threshold:Q | weighted. */
static bool parse_exit(const char *cmd, const char *s, ouro_exit *ex)
{
    memset(ex, 0, sizeof *ex);
    if (strcmp(s, "default") == 0) {
        ex->kind = OURO_EXIT_DEFAULT;
        return true;
    }
    if (strcmp(s, "weighted") == 0) {
        ex->kind = OURO_EXIT_WEIGHTED;
        return true;
    }
    if (strncmp(s, "step:", 5) == 0) {
        long k;
        if (!parse_int(cmd, "--exit step:K", s + 5, 1, OURO_MAX_LOOPS, &k))
            return false;
        ex->kind = OURO_EXIT_STEP;
        ex->step = (int)k;
        return true;
    }
    if (strncmp(s, "threshold:", 10) == 0) {
        double q;
        if (!parse_float(cmd, "--exit threshold:Q", s + 10, 0.0, 1.0, &q))
            return false;
        ex->kind = OURO_EXIT_THRESHOLD;
        ex->threshold = (float)q;
        return true;
    }
    fprintf(stderr, "ouro %s: --exit must be default, step:K, threshold:Q or weighted, not \"%s\"\n",
            cmd, s);
    return false;
}

/* Prints a cJSON value on one line; frees it. */
static int print_json(cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) {
        fputs("ouro: out of memory\n", stderr);
        return 1;
    }
    puts(s);
    cJSON_free(s);
    return 0;
}

/* Adds an array of n numbers to obj under name, from f (floats) or else i
 * (ints); false on out of memory. */
static bool add_numbers(cJSON *obj, const char *name, const float *f, const int32_t *i, int n)
{
    cJSON *a = cJSON_AddArrayToObject(obj, name);
    if (!a)
        return false;
    for (int k = 0; k < n; k++) {
        cJSON *x = cJSON_CreateNumber(f ? (double)f[k] : (double)i[k]);
        if (!x)
            return false;
        cJSON_AddItemToArray(a, x);
    }
    return true;
}

/* Loads a model; prints the error and returns NULL on failure. */
static ouro_model *load_model_opts(const char *cmd, const char *dir, const ouro_load_options *lo)
{
    ouro_model *m = NULL;
    ouro_error e;
    if (ouro_model_load_opts(dir, lo, &m, &e) != OURO_OK) {
        fprintf(stderr, "ouro %s: %s\n", cmd, e.message);
        return NULL;
    }
    return m;
}

static ouro_model *load_model(const char *cmd, const char *dir)
{
    return load_model_opts(cmd, dir, NULL);
}

/* Sends the library's warnings to stderr (debug messages with OURO_DEBUG set). */
static void log_stderr(int level, const char *msg, void *ctx)
{
    (void)ctx;
    if (level >= OURO_LOG_WARNING || getenv("OURO_DEBUG"))
        fprintf(stderr, "ouro: %s\n", msg);
}

/* ------------------------------------------------------------------------
 * ouro logits
 * ------------------------------------------------------------------------ */

int cmd_logits(int argc, char **argv)
{
    const char *model = NULL, *ids_s = NULL;
    ouro_exit ex = { .kind = OURO_EXIT_DEFAULT };
    long max_loops = 0, threads = 0;
    ouro_precision precision = OURO_PRECISION_EXACT;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            fputs(usage_logits, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ouro logits: unknown option or missing value: %s\n%s", o, usage_logits);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(o, "--model") == 0) model = v;
        else if (strcmp(o, "--ids") == 0) ids_s = v;
        else if (strcmp(o, "--exit") == 0) { if (!parse_exit("logits", v, &ex)) return 2; }
        else if (strcmp(o, "--max-loops") == 0) { if (!parse_int("logits", o, v, 1, OURO_MAX_LOOPS, &max_loops)) return 2; }
        else if (strcmp(o, "--threads") == 0) { if (!parse_int("logits", o, v, 1, 1024, &threads)) return 2; }
        else if (strcmp(o, "--precision") == 0) { if (!ouro_tool_parse_precision("logits", v, &precision)) return 2; }
        else {
            fprintf(stderr, "ouro logits: unknown option %s\n%s", o, usage_logits);
            return 2;
        }
    }
    if (!model || !ids_s) {
        fprintf(stderr, "ouro logits: --model and --ids are required\n%s", usage_logits);
        return 2;
    }
    int n = 0;
    int32_t *ids = parse_ids("logits", ids_s, &n);
    if (!ids)
        return 2;

    int rc = 1;
    ouro_model *m = load_model("logits", model);
    ouro_session *s = NULL;
    float *pdf = NULL, *logits = NULL;
    int32_t *step = NULL;
    uint8_t *want = NULL;
    int32_t *seq = NULL;
    ouro_error e;
    if (!m)
        goto done;
    const ouro_config *c = ouro_model_config(m);
    /* The context is exactly the ids: the cache costs no more than needed. */
    ouro_session_options so = { .n_ctx = n, .n_seq = 1, .max_loops = (int)max_loops,
                                .threads = (int)threads, .precision = precision };
    if (n > c->max_position_embeddings) {
        fprintf(stderr, "ouro logits: %d ids exceed the model's max_position_embeddings %d\n",
                n, c->max_position_embeddings);
        goto done;
    }
    if (ouro_session_new(m, &so, &s, &e) != OURO_OK) {
        fprintf(stderr, "ouro logits: %s\n", e.message);
        goto done;
    }
    int L = ouro_session_max_loops(s), V = c->vocab_size;
    pdf = malloc((size_t)n * L * sizeof *pdf);
    logits = malloc((size_t)V * sizeof *logits);
    step = malloc((size_t)n * sizeof *step);
    want = calloc((size_t)n, 1);
    seq = calloc((size_t)n, sizeof *seq);
    if (!pdf || !logits || !step || !want || !seq) {
        fputs("ouro logits: out of memory\n", stderr);
        goto done;
    }
    /* Two calls over one sequence: every position but the last gives only
     * its exit distribution, the last one gives the logits too. */
    ouro_forward_options fo = { .exit = ex, .depth = OURO_DEPTH_FULL };
    if (n > 1) {
        memset(want, 1, (size_t)n - 1);
        ouro_batch b = { .n = n - 1, .token = ids, .seq = seq, .want = want };
        ouro_outputs out = { .exit_pdf = pdf, .exit_step = step };
        if (ouro_session_forward(s, &b, &fo, &out, &e) != OURO_OK) {
            fprintf(stderr, "ouro logits: %s\n", e.message);
            goto done;
        }
    }
    ouro_batch b = { .n = 1, .token = ids + n - 1, .seq = seq, .want = NULL };
    ouro_outputs out = { .logits = logits, .exit_pdf = pdf + (size_t)(n - 1) * L,
                         .exit_step = step + n - 1 };
    if (ouro_session_forward(s, &b, &fo, &out, &e) != OURO_OK) {
        fprintf(stderr, "ouro logits: %s\n", e.message);
        goto done;
    }

    cJSON *j = cJSON_CreateObject();
    cJSON *pa = j ? cJSON_AddArrayToObject(j, "exit_pdf") : NULL;
    bool ok = pa != NULL;
    for (int i = 0; ok && i < n; i++) {
        cJSON *row = cJSON_CreateArray();
        ok = row != NULL;
        if (ok)
            cJSON_AddItemToArray(pa, row);
        for (int t = 0; ok && t < L; t++) {
            cJSON *x = cJSON_CreateNumber((double)pdf[(size_t)i * L + t]);
            ok = x != NULL;
            if (ok)
                cJSON_AddItemToArray(row, x);
        }
    }
    ok = ok && cJSON_AddNumberToObject(j, "exit_step", step[n - 1]) && add_numbers(j, "logits", logits, NULL, V);
    if (!ok) {
        cJSON_Delete(j);
        fputs("ouro logits: out of memory\n", stderr);
        goto done;
    }
    rc = print_json(j);
done:
    free(ids);
    free(pdf);
    free(logits);
    free(step);
    free(want);
    free(seq);
    ouro_session_free(s);
    ouro_model_free(m);
    return rc;
}

/* ------------------------------------------------------------------------
 * ouro generate
 * ------------------------------------------------------------------------ */

#define MAX_STOP 16

/* Streaming: prints the text of a growing list of ids as it becomes final.
 * A prefix is printed once two decodes agree on it (a token that ends
 * inside a UTF-8 character decodes differently once the character is whole)
 * and it is at least `hold` bytes before the end (a stop string could still
 * remove that much). */
typedef struct stream_state {
    const ouro_tokenizer *tok;
    size_t hold;                 /* longest stop string - 1 */
    size_t printed;              /* bytes of the text written to stdout */
    char *prev;                  /* the previous decode, ouro_free */
    size_t prev_len;
} stream_state;

static void stream_token(void *ctx, int req, const int32_t *ids, int n)
{
    stream_state *st = ctx;
    char *text = NULL;
    size_t len = 0;
    (void)req;
    if (ouro_tokenizer_decode(st->tok, ids, (size_t)n, false, &text, &len, NULL) != OURO_OK) {
        ouro_free(text);
        return;
    }
    size_t common = 0;
    while (common < len && common < st->prev_len && text[common] == st->prev[common])
        common++;
    size_t upto = common > st->hold ? common - st->hold : 0;
    if (upto > st->printed) {
        fwrite(text + st->printed, 1, upto - st->printed, stdout);
        fflush(stdout);
        st->printed = upto;
    }
    ouro_free(st->prev);
    st->prev = text;
    st->prev_len = len;
}

/* Reads all of the stream f (standard input: a pipe has no size to read a file
 * by; files go through ouro_read_file) into a malloc'd NUL-terminated string
 * (NULL on failure). */
static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = cap < ((size_t)1 << 31) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (!buf || ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* One prompt of a --file. */
typedef struct file_item {
    int line;                    /* 1-based line of the file */
    cJSON *id;                   /* "id" of a JSON line (owned by the line's tree), or NULL */
    cJSON *tree;                 /* the line's JSON, owned, or NULL */
    const char *prompt;          /* borrowed from the file or tree */
    int32_t *ids;                /* ouro_free */
    int n;
    char *error;                 /* malloc'd, or NULL */
} file_item;

/* Sets item->error (printf-style). */
static void item_fail(file_item *it, const char *fmt, const char *arg)
{
    char buf[512];
    snprintf(buf, sizeof buf, fmt, arg);
    free(it->error);
    it->error = strdup(buf);
}

/* Prints the JSON line of one item. */
static int print_item(const file_item *it, const ouro_gen_result *r)
{
    cJSON *j = cJSON_CreateObject();
    bool ok = j && cJSON_AddNumberToObject(j, "line", it->line);
    if (ok && it->id)
        ok = cJSON_AddItemToObject(j, "id", cJSON_Duplicate(it->id, true));
    if (ok && (it->error || !r))
        ok = cJSON_AddStringToObject(j, "error", it->error ? it->error : "not run") != NULL;
    else if (ok)
        ok = cJSON_AddStringToObject(j, "text", r->text ? r->text : "") &&
             cJSON_AddNumberToObject(j, "n_tokens", r->n_ids) &&
             cJSON_AddStringToObject(j, "stop_reason", ouro_stop_reason_str(r->stop_reason));
    if (!ok) {
        cJSON_Delete(j);
        fputs("ouro generate: out of memory\n", stderr);
        return 1;
    }
    return print_json(j);
}

/* `ouro generate --file`: every prompt of the file, batch_size at a time,
 * one JSON line each in input order.  Returns the exit status (1 when some
 * prompt could not run). */
static int generate_file(ouro_model *m, const char *path, bool chat, const char *system,
                         const ouro_gen_params *gp_in, ouro_session_options so, int batch_size,
                         bool show_progress)
{
    ouro_gen_params gpl = *gp_in, *gp = &gpl;
    const ouro_tokenizer *tok = ouro_model_tokenizer(m);
    if (!tok) {
        fputs("ouro generate: --file needs the model's tokenizer.json\n", stderr);
        return 1;
    }
    size_t len = 0;
    char *data = NULL;           /* the whole file, NUL-terminated (free) */
    if (strcmp(path, "-") == 0) {
        if (!(data = read_all(stdin, &len))) {
            fputs("ouro generate: cannot read standard input\n", stderr);
            return 1;
        }
    } else {
        ouro_error e;
        if (ouro_read_file(path, "a file of prompts (1 GiB at most)", (size_t)1 << 30, &data, &len,
                           NULL, &e) != OURO_OK) {
            fprintf(stderr, "ouro generate: %s\n", e.message);
            return 1;
        }
    }
    int cap = 64, n = 0, rc = 0;
    file_item *items = calloc((size_t)cap, sizeof *items);
    int line = 0;
    for (char *p = data, *next; items && p && *p; p = next) {
        next = strchr(p, '\n');
        if (next)
            *next++ = '\0';
        line++;
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r')
            p[--l] = '\0';
        if (l == 0)
            continue;
        if (n == cap) {
            file_item *ni = realloc(items, (size_t)cap * 2 * sizeof *items);
            if (!ni) {
                free(items);
                items = NULL;
                break;
            }
            items = ni;
            memset(items + cap, 0, (size_t)cap * sizeof *items);
            cap *= 2;
        }
        file_item *it = &items[n++];
        it->line = line;
        it->prompt = p;
        if (p[0] == '{' || p[0] == '"') {
            it->tree = cJSON_Parse(p);
            const cJSON *pr = cJSON_IsObject(it->tree) ? cJSON_GetObjectItem(it->tree, "prompt") : it->tree;
            it->id = cJSON_IsObject(it->tree) ? cJSON_GetObjectItem(it->tree, "id") : NULL;
            if (!cJSON_IsString(pr)) {
                item_fail(it, "%s", "a JSON line must be a string or an object with a \"prompt\" string");
                continue;
            }
            it->prompt = pr->valuestring;
        }
    }
    if (!items) {
        free(data);
        fputs("ouro generate: out of memory\n", stderr);
        return 1;
    }

    /* tokens of every prompt, and the context the longest needs */
    int longest = 0;
    int cap_ctx = ouro_model_config(m)->max_position_embeddings;
    if (so.n_ctx > 0)
        cap_ctx = so.n_ctx;
    for (int i = 0; i < n; i++) {
        file_item *it = &items[i];
        if (it->error)
            continue;
        char *rendered = NULL;
        const char *text = it->prompt;
        ouro_error e;
        size_t nn = 0;
        if (chat) {
            ouro_chat_message msgs[2];
            size_t nm = 0;
            if (system)
                msgs[nm++] = (ouro_chat_message){ "system", system };
            msgs[nm++] = (ouro_chat_message){ "user", text };
            if (ouro_chat_render(tok, msgs, nm, true, &rendered, &e) != OURO_OK) {
                item_fail(it, "%s", e.message);
                continue;
            }
            text = rendered;
        }
        if (ouro_tokenizer_encode(tok, text, strlen(text), &it->ids, &nn, &e) != OURO_OK)
            item_fail(it, "%s", e.message);
        else if (nn == 0)
            item_fail(it, "%s", "the prompt has no tokens");
        else if (nn >= (size_t)cap_ctx)
            item_fail(it, "%s", "the prompt is too long for the context");
        else {
            it->n = (int)nn;
            longest = it->n > longest ? it->n : longest;
        }
        ouro_free(rendered);
    }
    if (so.n_ctx == 0) {
        long want = (long)longest + gp->max_tokens;
        so.n_ctx = (int)(want < cap_ctx ? want : cap_ctx);
    }
    so.n_seq = batch_size;
    ouro_session *s = NULL;
    ouro_error e;
    if (longest > 0 && ouro_session_new(m, &so, &s, &e) != OURO_OK) {
        fprintf(stderr, "ouro generate: %s\n", e.message);
        rc = 1;
    }
    /* waves of batch_size prompts that can run; results printed in input order */
    const int32_t **wp = malloc((size_t)batch_size * sizeof *wp);
    int *wl = malloc((size_t)batch_size * sizeof *wl), *wi = malloc((size_t)batch_size * sizeof *wi);
    ouro_gen_result *res = calloc((size_t)batch_size, sizeof *res);
    int next_print = 0;
    tool_progress bar;
    tool_gen_progress gprog = { &bar, 0, 0 };
    progress_start(&bar, show_progress, "rows", 1, n, true);
    progress_update(&bar, 0, 0, true);
    gp->progress = progress_on_generate;
    gp->progress_ctx = &gprog;
    for (int i = 0; rc == 0 && wp && wl && wi && res && i < n;) {
        int nw = 0;
        int first = i;
        for (; i < n && nw < batch_size; i++)
            if (!items[i].error) {
                wp[nw] = items[i].ids;
                wl[nw] = items[i].n;
                wi[nw++] = i;
            }
        gprog.rows = next_print;
        ouro_status st = nw > 0 ? ouro_generate(s, nw, wp, wl, gp, res, &e) : OURO_OK;
        progress_clear(&bar);
        if (st != OURO_OK) {
            fprintf(stderr, "ouro generate: %s\n", e.message);
            rc = 1;
            break;
        }
        (void)first;
        for (int k = 0; k < nw; k++) {
            gprog.tokens += res[k].n_ids;
            for (; next_print < wi[k]; next_print++)
                print_item(&items[next_print], NULL);
            print_item(&items[wi[k]], &res[k]);
            next_print = wi[k] + 1;
            ouro_gen_result_clear(&res[k]);
        }
        fflush(stdout);
        progress_update(&bar, next_print, gprog.tokens, true);
    }
    progress_clear(&bar);
    for (; rc == 0 && next_print < n; next_print++)
        print_item(&items[next_print], NULL);
    if (rc == 0)
        progress_end(&bar, n, gprog.tokens);
    else
        progress_clear(&bar);
    for (int i = 0; i < n; i++) {
        if (items[i].error)
            rc = rc ? rc : 1;
        free(items[i].error);
        ouro_free(items[i].ids);
        cJSON_Delete(items[i].tree);
    }
    free(wp);
    free(wl);
    free(wi);
    free(res);
    free(items);
    free(data);
    ouro_session_free(s);
    return rc;
}

int cmd_generate(int argc, char **argv)
{
    const char *model = NULL, *ids_s = NULL, *prompt = NULL, *system = NULL, *file = NULL;
    const char *progress_when = "auto";
    const char *stop[MAX_STOP];
    int n_stop = 0, stream = -1;
    long batch_size = (long)ouro_params[OURO_P_BATCH_SIZE].dflt;
    bool chat = false, json = false, depth_given = false;
    char *stdin_prompt = NULL;
    ouro_gen_params gp = { .max_tokens = (int)ouro_params[OURO_P_MAX_TOKENS].dflt };
    ouro_session_options so = { .n_seq = 1,
                                .precision = (ouro_precision)ouro_params[OURO_P_PRECISION].dflt };
    ouro_load_options lo = { .weights = OURO_WEIGHTS_MAP };
    long lv;
    double dv;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            fputs(usage_generate, stdout);
            return 0;
        }
        if (strcmp(o, "--chat") == 0) { chat = true; continue; }
        if (strcmp(o, "--json") == 0) { json = true; continue; }
        if (strcmp(o, "--stream") == 0) { stream = 1; continue; }
        if (strcmp(o, "--no-stream") == 0) { stream = 0; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "ouro generate: unknown option or missing value: %s\n%s", o, usage_generate);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(o, "--model") == 0) model = v;
        else if (strcmp(o, "--ids") == 0) ids_s = v;
        else if (strcmp(o, "--prompt") == 0) prompt = v;
        else if (strcmp(o, "--system") == 0) system = v;
        else if (strcmp(o, "--file") == 0) file = v;
        else if (strcmp(o, "--progress") == 0) {
            bool on;
            if (!progress_parse("generate", v, &on)) return 2;
            progress_when = v;
        }
        else if (strcmp(o, "--batch-size") == 0) {
            if (!parse_int("generate", o, v, (long)ouro_params[OURO_P_BATCH_SIZE].min,
                           (long)ouro_params[OURO_P_BATCH_SIZE].max, &batch_size)) return 2;
        }
        else if (strcmp(o, "--stop") == 0) {
            if (n_stop == MAX_STOP || !*v) {
                fprintf(stderr, "ouro generate: at most %d non-empty --stop strings\n", MAX_STOP);
                return 2;
            }
            stop[n_stop++] = v;
        } else if (strcmp(o, "--max-tokens") == 0) {
            if (!parse_int("generate", o, v, (long)ouro_params[OURO_P_MAX_TOKENS].min,
                           (long)ouro_params[OURO_P_MAX_TOKENS].max, &lv)) return 2;
            gp.max_tokens = (int)lv;
        } else if (strcmp(o, "--temperature") == 0) {
            if (!parse_float("generate", o, v, 0.0, 100.0, &dv)) return 2;
            gp.temperature = (float)dv;
        } else if (strcmp(o, "--top-k") == 0) {
            if (!parse_int("generate", o, v, 0, INT_MAX, &lv)) return 2;
            gp.top_k = (int)lv;
        } else if (strcmp(o, "--top-p") == 0) {
            if (!parse_float("generate", o, v, 0.0, 1.0, &dv)) return 2;
            gp.top_p = (float)dv;
        } else if (strcmp(o, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long sd = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "ouro generate: --seed must be a non-negative integer, not \"%s\"\n", v);
                return 2;
            }
            gp.seed = sd;
        } else if (strcmp(o, "--exit") == 0) {
            if (!parse_exit("generate", v, &gp.exit)) return 2;
        } else if (strcmp(o, "--depth") == 0) {
            if (strcmp(v, "full") == 0) gp.depth = OURO_DEPTH_FULL;
            else if (strcmp(v, "adaptive") == 0) gp.depth = OURO_DEPTH_ADAPTIVE;
            else {
                fprintf(stderr, "ouro generate: --depth must be full or adaptive, not \"%s\"\n", v);
                return 2;
            }
            depth_given = true;
        } else if (strcmp(o, "--kv") == 0) {
            if (strcmp(v, "per-step") == 0) so.kv = OURO_KV_PER_STEP;
            else if (strcmp(v, "last") == 0) so.kv = OURO_KV_LAST;
            else if (strcmp(v, "avg") == 0) so.kv = OURO_KV_AVG;
            else {
                fprintf(stderr, "ouro generate: --kv must be per-step, last or avg, not \"%s\"\n", v);
                return 2;
            }
        } else if (strcmp(o, "--precision") == 0) {
            if (!ouro_tool_parse_precision("generate", v, &so.precision))
                return 2;
        } else if (strcmp(o, "--weights") == 0) {
            if (!ouro_tool_parse_weights("generate", v, &lo.weights))
                return 2;
        } else if (strcmp(o, "--kv-type") == 0) {
            if (strcmp(v, "f32") == 0) so.kv_type = OURO_KV_F32;
            else if (strcmp(v, "f16") == 0) so.kv_type = OURO_KV_F16;
            else {
                fprintf(stderr, "ouro generate: --kv-type must be f32 or f16, not \"%s\"\n", v);
                return 2;
            }
        } else if (strcmp(o, "--max-loops") == 0) {
            if (!parse_int("generate", o, v, 1, OURO_MAX_LOOPS, &lv)) return 2;
            so.max_loops = (int)lv;
        } else if (strcmp(o, "--n-ctx") == 0) {
            if (!parse_int("generate", o, v, 2, 1 << 20, &lv)) return 2;
            so.n_ctx = (int)lv;
        } else if (strcmp(o, "--threads") == 0) {
            if (!parse_int("generate", o, v, 1, 1024, &lv)) return 2;
            so.threads = (int)lv;
        } else {
            fprintf(stderr, "ouro generate: unknown option %s\n%s", o, usage_generate);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "ouro generate: --model DIR (or $OURO_MODEL) is required\n%s", usage_generate);
        return 2;
    }
    if ((ids_s != NULL) + (prompt != NULL) + (file != NULL) > 1) {
        fprintf(stderr, "ouro generate: give one of --ids, --prompt and --file\n%s", usage_generate);
        return 2;
    }
    if (!ids_s && !prompt && !file) {
        size_t len = 0;
        if (isatty(STDIN_FILENO))
            fputs("ouro generate: reading the prompt from standard input (end it with Ctrl-D)\n", stderr);
        if (!(stdin_prompt = read_all(stdin, &len))) {
            fputs("ouro generate: cannot read standard input\n", stderr);
            return 1;
        }
        if (len > 0 && stdin_prompt[len - 1] == '\n')
            stdin_prompt[--len] = '\0';
        prompt = stdin_prompt;
    }
    if ((chat || system) && ids_s) {
        fputs("ouro generate: --chat and --system need a text prompt\n", stderr);
        free(stdin_prompt);
        return 2;
    }
    /* A threshold means adaptive depth unless --depth full asks otherwise. */
    if (!depth_given && gp.exit.kind == OURO_EXIT_THRESHOLD)
        gp.depth = OURO_DEPTH_ADAPTIVE;
    gp.stop = stop;
    gp.n_stop = n_stop;

    int rc = 1, n = 0;
    int32_t *ids = NULL;
    char *rendered = NULL;
    ouro_session *s = NULL;
    ouro_gen_result res = {0};
    ouro_error e;
    ouro_model *m = load_model_opts("generate", model, &lo);
    if (!m)
        goto done;
    bool show_progress = false;
    progress_parse("generate", progress_when, &show_progress);
    if (file) {
        rc = generate_file(m, file, chat, system, &gp, so, (int)batch_size, show_progress);
        goto done;
    }
    if (ids_s) {
        if (!(ids = parse_ids("generate", ids_s, &n))) {
            rc = 2;
            goto done;
        }
    } else {
        const ouro_tokenizer *tok = ouro_model_tokenizer(m);
        if (!tok) {
            fprintf(stderr, "ouro generate: %s has no tokenizer.json; use --ids\n", model);
            goto done;
        }
        const char *text = prompt;
        if (chat) {
            ouro_chat_message msgs[2];
            size_t nm = 0;
            if (system)
                msgs[nm++] = (ouro_chat_message){ "system", system };
            msgs[nm++] = (ouro_chat_message){ "user", prompt };
            if (ouro_chat_render(tok, msgs, nm, true, &rendered, &e) != OURO_OK) {
                fprintf(stderr, "ouro generate: %s\n", e.message);
                goto done;
            }
            text = rendered;
        }
        size_t nn = 0;
        if (ouro_tokenizer_encode(tok, text, strlen(text), &ids, &nn, &e) != OURO_OK) {
            fprintf(stderr, "ouro generate: %s\n", e.message);
            goto done;
        }
        if (nn == 0) {
            fputs("ouro generate: the prompt encodes to no tokens\n", stderr);
            goto done;
        }
        if (nn > INT_MAX / 2) {
            fputs("ouro generate: the prompt is too long\n", stderr);
            goto done;
        }
        n = (int)nn;
    }
    /* Default context: the prompt plus max_tokens, within the model's limit. */
    if (so.n_ctx == 0) {
        long want = (long)n + gp.max_tokens;
        long cap = ouro_model_config(m)->max_position_embeddings;
        so.n_ctx = (int)(want < cap ? want : cap);
    }
    if (ouro_session_new(m, &so, &s, &e) != OURO_OK) {
        fprintf(stderr, "ouro generate: %s\n", e.message);
        goto done;
    }
    const int32_t *prompts[1] = { ids };
    int lens[1] = { n };
    stream_state ss = { .tok = ouro_model_tokenizer(m) };
    if (stream < 0)
        stream = !json && isatty(STDOUT_FILENO);
    if (stream && !json && ss.tok) {
        for (int k = 0; k < n_stop; k++)
            if (strlen(stop[k]) > ss.hold + 1)
                ss.hold = strlen(stop[k]) - 1;
        gp.on_token = stream_token;
        gp.token_ctx = &ss;
    }
    /* one prompt: a bar of its tokens, unless the text is streamed to the same terminal */
    tool_progress bar;
    if (stream && strcmp(progress_when, "always") != 0)
        show_progress = false;
    progress_start(&bar, show_progress, "tokens", 1, gp.max_tokens < so.n_ctx - n ? gp.max_tokens : so.n_ctx - n,
                   true);
    gp.progress = progress_on_tokens;
    gp.progress_ctx = &bar;
    ouro_status gst = ouro_generate(s, 1, prompts, lens, &gp, &res, &e);
    if (gst == OURO_OK)
        progress_end(&bar, res.n_ids, res.n_ids);
    else
        progress_clear(&bar);
    ouro_free(ss.prev);
    if (gst != OURO_OK) {
        if (ss.printed)
            putchar('\n');
        fprintf(stderr, "ouro generate: %s\n", e.message);
        goto done;
    }
    if (!json) {
        if (res.text && ss.printed <= res.text_len)
            fwrite(res.text + ss.printed, 1, res.text_len - ss.printed, stdout);
        else if (res.text)
            fwrite(res.text, 1, res.text_len, stdout);
        else
            for (int i = 0; i < res.n_ids; i++)
                printf("%s%d", i ? "," : "", res.ids[i]);
        putchar('\n');
        rc = 0;
        goto done;
    }
    cJSON *j = cJSON_CreateObject();
    bool ok = j && add_numbers(j, "ids", NULL, res.ids, res.n_ids);
    if (ok && res.text) {
        /* cJSON strings end at NUL: a text holding NUL bytes is cut there. */
        ok = cJSON_AddStringToObject(j, "text", res.text) != NULL;
    } else if (ok) {
        ok = cJSON_AddNullToObject(j, "text") != NULL;
    }
    ok = ok && cJSON_AddStringToObject(j, "stop_reason", ouro_stop_reason_str(res.stop_reason))
            && add_numbers(j, "exit_steps", NULL, res.exit_steps, res.n_ids)
            && cJSON_AddNumberToObject(j, "prompt_tokens", n)
            && cJSON_AddNumberToObject(j, "tokens_per_s",
                                       res.seconds > 0 ? res.n_ids / res.seconds : 0.0);
    if (!ok) {
        cJSON_Delete(j);
        fputs("ouro generate: out of memory\n", stderr);
        goto done;
    }
    rc = print_json(j);
done:
    ouro_gen_result_clear(&res);
    ouro_session_free(s);
    ouro_model_free(m);
    ouro_free(ids);
    ouro_free(rendered);
    free(stdin_prompt);
    return rc;
}

/* ------------------------------------------------------------------------
 * ouro info, build-info, version
 * ------------------------------------------------------------------------ */

static int cmd_info(int argc, char **argv)
{
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_info, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else {
            fprintf(stderr, "ouro info: unknown option or missing value: %s\n%s", argv[i], usage_info);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "ouro info: --model is required\n%s", usage_info);
        return 2;
    }
    ouro_model *m = load_model("info", model);
    if (!m)
        return 1;
    char *js = ouro_model_info_json(m);
    ouro_model_free(m);
    if (!js) {
        fputs("ouro info: out of memory\n", stderr);
        return 1;
    }
    puts(js);
    ouro_free(js);
    return 0;
}

static int cmd_convert(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *type = "q8", *progress_when = "auto";
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            fputs(usage_convert, stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "ouro convert: unknown option or missing value: %s\n%s", o, usage_convert);
            return 2;
        }
        i++;
        if (strcmp(o, "--model") == 0) model = v;
        else if (strcmp(o, "--out") == 0) out = v;
        else if (strcmp(o, "--type") == 0) type = v;
        else if (strcmp(o, "--threads") == 0) { if (!parse_int("convert", o, v, 1, 1024, &threads)) return 2; }
        else if (strcmp(o, "--progress") == 0) progress_when = v;
        else {
            fprintf(stderr, "ouro convert: unknown option %s\n%s", o, usage_convert);
            return 2;
        }
    }
    if (!model || !out) {
        fprintf(stderr, "ouro convert: --model and --out are required\n%s", usage_convert);
        return 2;
    }
    bool q4 = strcmp(type, "q4") == 0;
    if (!q4 && strcmp(type, "q8") != 0) {
        fprintf(stderr, "ouro convert: unknown --type \"%s\" (q8 or q4)\n", type);
        return 2;
    }
    bool show_progress;
    if (!progress_parse("convert", progress_when, &show_progress))
        return 2;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ouro_error err;
    tool_progress bar;
    progress_start(&bar, show_progress, "MB", 1e6, 0, false);
    ouro_status st = q4 ? ouro_convert_q4_progress(model, out, (int)threads, progress_on_bytes, &bar, &err)
                        : ouro_convert_q8_progress(model, out, (int)threads, progress_on_bytes, &bar, &err);
    if (st != OURO_OK) {
        progress_clear(&bar);
        if (bar.drawn)
            fputc('\n', stderr);
        fprintf(stderr, "ouro convert: %s\n", err.message);
        return 1;
    }
    progress_end(&bar, bar.total, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "ouro convert: wrote %s/model.safetensors (%s) in %.1f s\n", out, type,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    return 0;
}

/* ------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------ */

/* The commands that read a model folder (--model; $OURO_MODEL by default). */
static bool takes_model(const char *cmd)
{
    static const char *const cmds[] = {"logits", "generate", "info", "convert", "tokenize",
                                       "detokenize", "chat-template"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmd, cmds[i]) == 0)
            return true;
    return false;
}

/* The arguments as every command reads them: "--option=value" becomes
 * "--option" "value", and a command that takes --model gets
 * "--model $OURO_MODEL" when none is given and the variable is set.
 * Returns a malloc'd argv (strings borrowed or malloc'd, never freed: they
 * live as long as the process) and sets *argc_out; NULL when out of memory. */
static char **normalize_args(int argc, char **argv, int *argc_out)
{
    char **out = malloc(((size_t)argc * 2 + 3) * sizeof *out);
    if (!out)
        return NULL;
    int n = 0;
    bool has_model = false, help = false;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        char *eq = i > 1 && strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq) {
            char *name = strndup(a, (size_t)(eq - a));
            if (!name)
                return NULL;
            out[n++] = name;
            out[n++] = eq + 1;
            a = name;
        } else {
            out[n++] = a;
        }
        if (i > 1 && strcmp(a, "--model") == 0)
            has_model = true;
        if (i > 1 && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0))
            help = true;
    }
    const char *env = getenv("OURO_MODEL");
    if (argc > 1 && takes_model(argv[1]) && !has_model && !help && env && env[0]) {
        out[n++] = "--model";
        out[n++] = (char *)env;
    }
    out[n] = NULL;
    *argc_out = n;
    return out;
}

int main(int argc, char **argv)
{
    omp_wait_bound(argv);
    ouro_set_log(log_stderr, NULL);
    argv = normalize_args(argc, argv, &argc);
    if (!argv) {
        fputs("ouro: out of memory\n", stderr);
        return 1;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "help") == 0) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    bool help = argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (help) {
            puts("usage: ouro version\nPrints the version of ouro.");
            return 0;
        }
        printf("ouro %s\n", ouro_version());
        return 0;
    }
    if (strcmp(cmd, "build-info") == 0) {
        if (help) {
            puts("usage: ouro build-info\nPrints how this build was made (JSON): version, SIMD path,\n"
                 "OpenMP, BLAS and the threads a call uses by default.");
            return 0;
        }
        puts(ouro_build_info());
        return 0;
    }
    if (strcmp(cmd, "logits") == 0) return cmd_logits(argc - 1, argv + 1);
    if (strcmp(cmd, "generate") == 0) return cmd_generate(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "convert") == 0) return cmd_convert(argc - 1, argv + 1);
    if (strcmp(cmd, "enrich") == 0) return cmd_enrich(argc - 1, argv + 1);
    if (strcmp(cmd, "tokenize") == 0) return cmd_tokenize(argc - 1, argv + 1);
    if (strcmp(cmd, "detokenize") == 0) return cmd_detokenize(argc - 1, argv + 1);
    if (strcmp(cmd, "chat-template") == 0) return cmd_chat_template(argc - 1, argv + 1);
    if (strcmp(cmd, "sql-surface") == 0) return cmd_sql_surface(argc - 1, argv + 1);
    fprintf(stderr, "ouro: unknown command \"%s\"\n%s", cmd, usage_main);
    return 2;
}

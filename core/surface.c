/*
 * surface.c -- the SQL surface of ouro as data (ouro_surface.h): the table of
 * parameters and functions both database extensions and the tool read, and
 * the rules they apply.  Changing a default or a range here changes it in
 * PostgreSQL, SQLite and the tool at once.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "ouro_surface.h"

/* ------------------------------------------------------------------------
 * Parameters
 * ------------------------------------------------------------------------ */

static const ouro_enum_value on_error_values[] = {
    {"error", OURO_ON_ERROR_ERROR}, {"null", OURO_ON_ERROR_NULL},
};
static const ouro_enum_value depth_values[] = {
    {"adaptive", OURO_DEPTH_ADAPTIVE}, {"full", OURO_DEPTH_FULL},
};
static const ouro_enum_value kv_cache_values[] = {
    {"per-step", OURO_KV_PER_STEP}, {"last", OURO_KV_LAST}, {"avg", OURO_KV_AVG},
};
static const ouro_enum_value kv_type_values[] = {
    {"f32", OURO_KV_F32}, {"f16", OURO_KV_F16},
};
static const ouro_enum_value precision_values[] = {
    {"auto", OURO_PRECISION_AUTO}, {"exact", OURO_PRECISION_EXACT}, {"bf16", OURO_PRECISION_BF16},
};
static const ouro_enum_value weights_values[] = {
    {"map", OURO_WEIGHTS_MAP}, {"memory", OURO_WEIGHTS_MEMORY},
};

#define ENUM(v) .values = v, .n_values = (int)(sizeof v / sizeof v[0])
#define SET OURO_PARAM_SETTING
#define ARG OURO_PARAM_ARG
/* a ceiling of PostgreSQL: superuser only */
#define CEILING (SET | OURO_PARAM_PG_ONLY | OURO_PARAM_SUPERUSER | OURO_PARAM_LIMIT)

/* Ranges shared by a setting and its ceiling. */
#define MAX_TOKENS_MAX 1048576
#define CONTEXT_MIN 16
#define CONTEXT_MAX 1048576
#define BATCH_SIZE_MAX 256
#define THREADS_MAX 1024

const ouro_param ouro_params[OURO_P_COUNT] = {
    [OURO_P_MODEL_PATH] = {
        .name = "model_path", .kind = OURO_PARAM_TEXT,
        .flags = SET | OURO_PARAM_PG_ONLY | OURO_PARAM_SUPERUSER, .dflt_doc = "empty",
        .summary = "Folder of the default model (config.json, safetensors, tokenizer.json).",
        .detail = "An absolute path on the server; empty means no default model. Only superusers "
                  "may set it."},
    [OURO_P_THREADS] = {
        .name = "threads", .kind = OURO_PARAM_INT, .flags = SET,
        .dflt = 0, .min = 0, .max = THREADS_MAX, .dflt_doc = "0",
        .summary = "Worker threads of one generation (0 = the number of processors).",
        .detail = "Parallel query workers each use this many."},
    [OURO_P_MAX_TOKENS] = {
        .name = "max_tokens", .kind = OURO_PARAM_INT, .flags = SET | ARG,
        .dflt = 128, .min = 1, .max = MAX_TOKENS_MAX, .dflt_doc = "128",
        .summary = "Default number of new tokens a generation may produce.",
        .detail = "The context limit also applies: a reply ends where the context ends."},
    [OURO_P_MAX_LOOPS] = {
        .name = "max_loops", .kind = OURO_PARAM_INT, .flags = SET | ARG,
        .dflt = 0, .min = 1, .max = OURO_MAX_LOOPS, .has_unset = true, .unset = 0,
        .dflt_doc = "the model's total_ut_steps",
        .summary = "Default number of loop steps (0 = the model's total_ut_steps)."},
    [OURO_P_EXIT_THRESHOLD] = {
        .name = "exit_threshold", .kind = OURO_PARAM_REAL, .flags = SET | ARG,
        .dflt = -1, .min = 0, .max = 1, .has_unset = true, .unset = -1,
        .dflt_doc = "the model's own rule",
        .summary = "Default early-exit threshold (-1 = the model's own rule).",
        .detail = "A value in 0 .. 1 exits at the first loop step whose cumulative exit "
                  "probability reaches it (see depth); -1 uses the model's early_exit_threshold."},
    [OURO_P_CONTEXT_LENGTH] = {
        .name = "context_length", .kind = OURO_PARAM_INT, .flags = SET,
        .dflt = 4096, .min = CONTEXT_MIN, .max = CONTEXT_MAX, .dflt_doc = "4096",
        .summary = "Most tokens one sequence may hold (prompt plus generated text).",
        .detail = "The model's max_position_embeddings also caps it. Memory of the KV cache grows "
                  "with the tokens a call needs."},
    [OURO_P_ON_ERROR] = {
        .name = "on_error", .kind = OURO_PARAM_ENUM, .flags = SET,
        .dflt = OURO_ON_ERROR_ERROR, ENUM(on_error_values), .dflt_doc = "error",
        .summary = "What a row with bad input gives: error or null.",
        .detail = "Valid values are error (abort the statement) and null (return NULL for the "
                  "row, or for the item of a batch array, with a warning). Configuration errors "
                  "and cancels always abort."},
    [OURO_P_DEPTH] = {
        .name = "depth", .kind = OURO_PARAM_ENUM, .flags = SET,
        .dflt = OURO_DEPTH_ADAPTIVE, ENUM(depth_values), .dflt_doc = "adaptive",
        .summary = "How an exit threshold is used: adaptive or full depth.",
        .detail = "Valid values are adaptive (a decoded token stops at the first loop step whose "
                  "cumulative exit probability reaches the threshold; deeper steps are not run) "
                  "and full (every step runs; the threshold only picks the step whose state gives "
                  "the logits). Without a threshold every step runs."},
    [OURO_P_KV_CACHE] = {
        .name = "kv_cache", .kind = OURO_PARAM_ENUM, .flags = SET,
        .dflt = OURO_KV_PER_STEP, ENUM(kv_cache_values), .dflt_doc = "per-step",
        .summary = "Decode KV cache layout: per-step, last or avg.",
        .detail = "Valid values are per-step (one slot per loop step and layer, as upstream), "
                  "last and avg (one slot per layer while decoding: the last step's K/V or their "
                  "mean over steps; a quarter of the memory for 4 steps)."},
    [OURO_P_KV_TYPE] = {
        .name = "kv_type", .kind = OURO_PARAM_ENUM, .flags = SET,
        .dflt = OURO_KV_F32, ENUM(kv_type_values), .dflt_doc = "f32",
        .summary = "Element type of the generation KV cache: f32 or f16.",
        .detail = "Valid values are f32 (32-bit entries, exact; the default) and f16 (16-bit "
                  "entries: half the KV memory, approximate). Applies to the generation "
                  "functions; classification and depth always use f32."},
    [OURO_P_PRECISION] = {
        .name = "precision", .kind = OURO_PARAM_ENUM, .flags = SET,
        .dflt = OURO_PRECISION_AUTO, ENUM(precision_values), .dflt_doc = "auto",
        .summary = "Precision of the generation matrix products: auto, exact or bf16.",
        .detail = "Valid values are auto (the default: bf16 on a CPU with AVX-512 BF16 dot "
                  "products and no AMX tiles, exact elsewhere), exact (f32 activations, within "
                  "the reference's tolerance) and bf16 (activations rounded to bf16: faster "
                  "where the CPU has bf16 dot products, approximate). Applies to the generation "
                  "functions; classification and depth always use exact."},
    [OURO_P_WEIGHTS] = {
        .name = "weights", .kind = OURO_PARAM_ENUM, .flags = SET | OURO_PARAM_SUPERUSER,
        .dflt = OURO_WEIGHTS_MAP, ENUM(weights_values), .dflt_doc = "map",
        .summary = "Where a model loaded from now on reads its weights: map or memory.",
        .detail = "Valid values are map (the model files are mapped and read in place, shared "
                  "through the page cache; the default) and memory (each process that loads the "
                  "model copies the weights into its own memory with 2 MB pages: faster "
                  "single-sequence decoding, but every PostgreSQL backend that loads a model "
                  "this way holds its own copy, so server memory grows by the model size times "
                  "those backends). Only superusers may set it in PostgreSQL. A model already "
                  "loaded the other way is loaded again."},
    [OURO_P_BATCH_SIZE] = {
        .name = "batch_size", .kind = OURO_PARAM_INT, .flags = SET,
        .dflt = 16, .min = 1, .max = BATCH_SIZE_MAX, .dflt_doc = "16",
        .summary = "Sequences the batch functions run at once.",
        .detail = "ouro_generate_batch decodes this many prompts together (more run in waves); "
                  "the classification batches use max(batch_size, labels + 1) sequences. Each "
                  "sequence holds a KV cache for the longest prompt and its reply."},
    [OURO_P_AUTO_BATCH] = {
        .name = "auto_batch", .kind = OURO_PARAM_BOOL, .flags = SET | OURO_PARAM_PG_ONLY,
        .dflt = 1, .min = 0, .max = 1, .dflt_doc = "on",
        .summary = "Runs per-row generation and classification calls in batches.",
        .detail = "When on, a query whose select list (or UPDATE ... SET list) calls "
                  "ouro_generate, ouro_chat, ouro_classify or ouro_classify_scores once per row "
                  "evaluates those calls ouro.batch_size rows at a time, with the same results. "
                  "Applies to statements planned while it is on."},
    [OURO_P_PROGRESS_NOTICE_INTERVAL] = {
        .name = "progress_notice_interval", .kind = OURO_PARAM_INT,
        .flags = SET | OURO_PARAM_PG_ONLY, .dflt = 0, .min = 0, .max = 86400, .unit = "s",
        .dflt_doc = "0",
        .summary = "Seconds between progress NOTICEs of a long statement (0 = none).",
        .detail = "The NOTICE gives the function, rows done, tokens generated, tokens per second "
                  "and elapsed time."},
    [OURO_P_TIMEOUT_MS] = {
        .name = "timeout_ms", .kind = OURO_PARAM_INT, .flags = SET | OURO_PARAM_SQLITE_ONLY,
        .dflt = 0, .min = 0, .max = 2147483647, .unit = "ms", .dflt_doc = "0",
        .equivalent = "statement_timeout",
        .summary = "Most wall time of one call in milliseconds (0 = none).",
        .detail = "Checked between the layers of every forward call."},
    [OURO_P_MEMORY_LIMIT] = {
        .name = "memory_limit", .kind = OURO_PARAM_INT, .flags = SET | OURO_PARAM_SQLITE_ONLY,
        .min = 16, .max = 1073741824, .unit = "MB", .machine = OURO_DEFAULT_QUARTER_MEMORY,
        .dflt_doc = "a quarter of the machine's memory", .equivalent = "limit_memory",
        .summary = "Most memory one call may allocate, in MiB: KV cache, logits and scratch "
                   "together.",
        .detail = "Checked before allocating."},
    [OURO_P_LIMIT_MEMORY] = {
        .name = "limit_memory", .kind = OURO_PARAM_INT, .flags = CEILING,
        .min = 16, .max = 1073741823, .unit = "MB", .machine = OURO_DEFAULT_QUARTER_MEMORY,
        .dflt_doc = "a quarter of the machine's memory", .equivalent = "memory_limit",
        .summary = "Most memory one call may allocate: KV cache, logits and scratch together.",
        .detail = "Checked before allocating; the error says how much was asked and allowed."},
    [OURO_P_LIMIT_THREADS] = {
        .name = "limit_threads", .kind = OURO_PARAM_INT, .flags = CEILING,
        .min = 1, .max = THREADS_MAX, .machine = OURO_DEFAULT_PROCESSORS,
        .dflt_doc = "the number of processors", .bounds = "threads",
        .summary = "Most worker threads one call may use (ceiling of ouro.threads).",
        .detail = "ouro.threads = 0 means the smaller of the processors and this."},
    [OURO_P_LIMIT_BATCH_SIZE] = {
        .name = "limit_batch_size", .kind = OURO_PARAM_INT, .flags = CEILING,
        .dflt = BATCH_SIZE_MAX, .min = 1, .max = BATCH_SIZE_MAX, .dflt_doc = "256",
        .bounds = "batch_size",
        .summary = "Most sequences one call may run at once (ceiling of ouro.batch_size)."},
    [OURO_P_LIMIT_CONTEXT_LENGTH] = {
        .name = "limit_context_length", .kind = OURO_PARAM_INT, .flags = CEILING,
        .dflt = CONTEXT_MAX, .min = CONTEXT_MIN, .max = CONTEXT_MAX, .dflt_doc = "1048576",
        .bounds = "context_length",
        .summary = "Most tokens one sequence may hold (ceiling of ouro.context_length).",
        .detail = "Bounds the context one call asks for as well."},
    [OURO_P_LIMIT_MAX_TOKENS] = {
        .name = "limit_max_tokens", .kind = OURO_PARAM_INT, .flags = CEILING,
        .dflt = MAX_TOKENS_MAX, .min = 1, .max = MAX_TOKENS_MAX, .dflt_doc = "1048576",
        .bounds = "max_tokens",
        .summary = "Most new tokens one generation may ask for (ceiling of max_tokens)."},
    [OURO_P_LIMIT_MAX_LOOPS] = {
        .name = "limit_max_loops", .kind = OURO_PARAM_INT, .flags = CEILING,
        .dflt = OURO_MAX_LOOPS, .min = 1, .max = OURO_MAX_LOOPS, .dflt_doc = "16",
        .bounds = "max_loops",
        .summary = "Most loop steps one call may run (ceiling of max_loops).",
        .detail = "A model's own total_ut_steps is bounded too."},
    [OURO_P_TEMPERATURE] = {
        .name = "temperature", .kind = OURO_PARAM_REAL, .flags = ARG,
        .dflt = 0, .min = 0, .max = 100, .dflt_doc = "0",
        .summary = "Sampling temperature; 0 is greedy and deterministic."},
    [OURO_P_SEED] = {
        .name = "seed", .kind = OURO_PARAM_INT, .flags = ARG,
        .dflt = 42, .min = -9223372036854775808.0, .max = 9223372036854775807.0, .dflt_doc = "42",
        .summary = "Seed of the sampler: equal calls give equal results."},
    [OURO_P_STOP] = {
        .name = "stop", .kind = OURO_PARAM_TEXT_LIST, .flags = ARG,
        .min = 1, .max = 16, .dflt_doc = "none",
        .summary = "Stop strings: generation ends before the first one that appears."},
    [OURO_P_SYSTEM] = {
        .name = "system", .kind = OURO_PARAM_TEXT, .flags = ARG, .dflt_doc = "none",
        .summary = "System message of ouro_chat."},
    [OURO_P_INSTRUCTION] = {
        .name = "instruction", .kind = OURO_PARAM_TEXT, .flags = ARG,
        .dflt_doc = "a default instruction",
        .summary = "Instruction of a classification prompt."},
    [OURO_P_LABELS] = {
        .name = "labels", .kind = OURO_PARAM_TEXT_LIST, .flags = ARG,
        .min = 1, .max = 10000, .dflt_doc = "required",
        .summary = "The labels a classification chooses from."},
    [OURO_P_MODEL] = {
        .name = "model", .kind = OURO_PARAM_TEXT, .flags = ARG, .dflt_doc = "the default model",
        .summary = "Which model: a registered name (PostgreSQL) or a name given to ouro_load "
                   "(SQLite)."},
};

const ouro_param *ouro_param_find(const char *name)
{
    if (!name)
        return NULL;
    if (strncmp(name, "ouro.", 5) == 0)
        name += 5;
    for (int i = 0; i < OURO_P_COUNT; i++)
        if (strcmp(ouro_params[i].name, name) == 0)
            return &ouro_params[i];
    return NULL;
}

int ouro_param_enum_value(const ouro_param *p, const char *name)
{
    for (int i = 0; name && i < p->n_values; i++)
        if (strcmp(p->values[i].name, name) == 0)
            return p->values[i].value;
    return -1;
}

const char *ouro_param_enum_name(const ouro_param *p, int value)
{
    for (int i = 0; i < p->n_values; i++)
        if (p->values[i].value == value)
            return p->values[i].name;
    return NULL;
}

const char *ouro_param_enum_list(const ouro_param *p)
{
    static const char *lists[OURO_P_COUNT];    /* built once per parameter, never freed */
    static char bufs[OURO_P_COUNT][96];
    int id = (int)(p - ouro_params);
    if (id < 0 || id >= OURO_P_COUNT || p->kind != OURO_PARAM_ENUM)
        return "";
    if (!lists[id]) {
        char *w = bufs[id];
        size_t left = sizeof bufs[id];
        for (int i = 0; i < p->n_values; i++) {
            int n = snprintf(w, left, "%s'%s'", i == 0 ? "" : i == p->n_values - 1 ? " or " : ", ",
                             p->values[i].name);
            if (n < 0 || (size_t)n >= left)
                break;
            w += n;
            left -= (size_t)n;
        }
        lists[id] = bufs[id];
    }
    return lists[id];
}

double ouro_param_default(const ouro_param *p)
{
    double v = p->dflt;
    if (p->machine == OURO_DEFAULT_QUARTER_MEMORY) {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        v = pages > 0 && page > 0 ? floor((double)pages * (double)page / (1024.0 * 1024.0) / 4)
                                  : 1024;
        if (v < 64)
            v = 64;
    } else if (p->machine == OURO_DEFAULT_PROCESSORS) {
        v = ouro_thread_count(0);
    }
    if (p->machine != OURO_DEFAULT_FIXED && v > p->max)
        v = p->max;
    if (p->machine != OURO_DEFAULT_FIXED && v < p->min)
        v = p->min;
    return v;
}

bool ouro_param_in_range(const ouro_param *p, double v, bool as_setting)
{
    if (isnan(v))
        return false;
    if (as_setting && p->has_unset && v == p->unset)
        return true;
    if (p->kind == OURO_PARAM_INT && v != floor(v))
        return false;
    return v >= p->min && v <= p->max;
}

/* A bound as documents write it: integers without a fraction. */
static void bound_str(const ouro_param *p, double v, char *buf, size_t size)
{
    if (p->kind == OURO_PARAM_INT)
        snprintf(buf, size, "%lld", (long long)v);
    else
        snprintf(buf, size, "%g", v);
}

void ouro_param_range_message(const ouro_param *p, bool as_setting, char *buf, size_t size)
{
    char lo[32], hi[32];
    bound_str(p, as_setting && p->has_unset && p->unset < p->min ? p->unset : p->min, lo, sizeof lo);
    bound_str(p, p->max, hi, sizeof hi);
    if (p->kind == OURO_PARAM_ENUM)
        snprintf(buf, size, "%s must be %s", p->name, ouro_param_enum_list(p));
    else if (p->kind == OURO_PARAM_TEXT_LIST)
        snprintf(buf, size, "%s must hold between %s and %s items", p->name, lo, hi);
    else if (p->kind == OURO_PARAM_INT && p->min <= -9.2e18)
        snprintf(buf, size, "%s must be an integer", p->name);
    else
        snprintf(buf, size, "%s must be between %s and %s", p->name, lo, hi);
}

/* ------------------------------------------------------------------------
 * Functions, in the order of the install script
 * ------------------------------------------------------------------------ */

#define GEN_OPTS "max_loops", "max_tokens", "temperature", "exit_threshold", "seed", "stop", "model"
#define CLS_OPTS "instruction", "max_loops", "model"

const ouro_sql_function ouro_sql_functions[] = {
    {"ouro_generate", OURO_FN_BOTH, 1, {"prompt", GEN_OPTS},
     "continues prompt as raw text"},
    {"ouro_chat", OURO_FN_BOTH, 1, {"message", "system", GEN_OPTS},
     "the assistant's reply to message, through the model's chat template"},
    {"ouro_generate_detail", OURO_FN_BOTH, 1, {"prompt", GEN_OPTS},
     "ouro_generate with the loop step each token used"},
    {"ouro_generate_batch", OURO_FN_BOTH, 1, {"prompts", GEN_OPTS},
     "ouro_generate for every item of an array, decoded together"},
    {"ouro_classify", OURO_FN_BOTH, 2, {"input", "labels", CLS_OPTS},
     "the label the model finds most likely for input"},
    {"ouro_classify_scores", OURO_FN_BOTH, 2, {"input", "labels", CLS_OPTS},
     "the probability of every label"},
    {"ouro_classify_batch", OURO_FN_BOTH, 2, {"inputs", "labels", CLS_OPTS},
     "ouro_classify for every item of an array"},
    {"ouro_classify_scores_batch", OURO_FN_BOTH, 2, {"inputs", "labels", CLS_OPTS},
     "ouro_classify_scores for every item of an array"},
    {"ouro_depth", OURO_FN_BOTH, 1, {"input", "exit_threshold", "model"},
     "the mean loop steps the exit gate spends on input"},
    {"ouro_depth_batch", OURO_FN_BOTH, 1, {"inputs", "exit_threshold", "model"},
     "ouro_depth for every item of an array, computed together"},
    {"ouro_token_depths", OURO_FN_BOTH, 1, {"input", "exit_threshold", "model"},
     "the exit gate token by token"},
    {"ouro_tokenize", OURO_FN_BOTH, 1, {"input", "model"}, "the model's token ids"},
    {"ouro_detokenize", OURO_FN_BOTH, 1, {"ids", "model"}, "the text of token ids"},
    {"ouro_token_count", OURO_FN_BOTH, 1, {"input", "model"}, "the number of tokens"},
    {"ouro_model_info", OURO_FN_BOTH, 0, {"model"}, "the model and this process's state"},
    {"ouro_version", OURO_FN_BOTH, 0, {NULL}, "the version"},
    {"ouro_build_info", OURO_FN_BOTH, 0, {NULL}, "the build"},
    {"ouro_register_model", OURO_FN_PG, 2, {"name", "path"},
     "superuser only: a name for the model argument"},
    {"ouro_unregister_model", OURO_FN_PG, 1, {"name"}, "superuser only: forgets a name"},
    {"ouro_load", OURO_FN_SQLITE, 1, {"name", "path"},
     "ouro_load(path) sets the default model, ouro_load(name, path) names one"},
    {"ouro_unload", OURO_FN_SQLITE, 1, {"name"}, "forgets a model"},
    {"ouro_setting", OURO_FN_SQLITE, 1, {"name", "value"}, "reads or sets a setting"},
};

const int ouro_sql_function_count = (int)(sizeof ouro_sql_functions / sizeof ouro_sql_functions[0]);

int ouro_sql_function_nargs(const ouro_sql_function *f)
{
    int n = 0;
    while (n < OURO_FN_MAX_ARGS && f->args[n])
        n++;
    return n;
}

static bool add_string_or_null(cJSON *o, const char *key, const char *v)
{
    return v ? cJSON_AddStringToObject(o, key, v) != NULL : cJSON_AddNullToObject(o, key) != NULL;
}

/* "default_value": the default on this machine as a setting shows it ("128",
 * "-1", "on", "per-step", "" for text); absent for options without one. */
static bool add_default_value(cJSON *o, const ouro_param *p)
{
    char buf[32];
    double v = ouro_param_default(p);
    switch (p->kind) {
    case OURO_PARAM_INT:
    case OURO_PARAM_REAL:
        bound_str(p, v, buf, sizeof buf);
        return cJSON_AddStringToObject(o, "default_value", buf) != NULL;
    case OURO_PARAM_BOOL:
        return cJSON_AddStringToObject(o, "default_value", v != 0 ? "on" : "off") != NULL;
    case OURO_PARAM_ENUM:
        return cJSON_AddStringToObject(o, "default_value", ouro_param_enum_name(p, (int)v)) != NULL;
    case OURO_PARAM_TEXT:
        return (p->flags & OURO_PARAM_SETTING) == 0 ||
               cJSON_AddStringToObject(o, "default_value", "") != NULL;
    default:
        return true;
    }
}

char *ouro_surface_json(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *params = root ? cJSON_AddArrayToObject(root, "params") : NULL;
    cJSON *fns = root ? cJSON_AddArrayToObject(root, "functions") : NULL;
    bool ok = params && fns && cJSON_AddNumberToObject(root, "item_base", OURO_ITEM_BASE);
    static const char *const kinds[] = {"int", "real", "enum", "text", "text[]", "bool"};
    for (int i = 0; ok && i < OURO_P_COUNT; i++) {
        const ouro_param *p = &ouro_params[i];
        cJSON *o = cJSON_CreateObject();
        ok = o != NULL;
        if (ok)
            cJSON_AddItemToArray(params, o);
        ok = ok && cJSON_AddStringToObject(o, "name", p->name) &&
             cJSON_AddStringToObject(o, "kind", kinds[p->kind]) &&
             cJSON_AddBoolToObject(o, "setting", (p->flags & OURO_PARAM_SETTING) != 0) &&
             cJSON_AddBoolToObject(o, "argument", (p->flags & OURO_PARAM_ARG) != 0) &&
             cJSON_AddBoolToObject(o, "postgresql_only", (p->flags & OURO_PARAM_PG_ONLY) != 0) &&
             cJSON_AddBoolToObject(o, "sqlite_only", (p->flags & OURO_PARAM_SQLITE_ONLY) != 0) &&
             cJSON_AddBoolToObject(o, "superuser", (p->flags & OURO_PARAM_SUPERUSER) != 0) &&
             cJSON_AddBoolToObject(o, "limit", (p->flags & OURO_PARAM_LIMIT) != 0) &&
             cJSON_AddStringToObject(o, "default", p->dflt_doc) &&
             add_default_value(o, p) &&
             add_string_or_null(o, "unit", p->unit) &&
             add_string_or_null(o, "bounds", p->bounds) &&
             add_string_or_null(o, "equivalent", p->equivalent) &&
             cJSON_AddStringToObject(o, "summary", p->summary) &&
             add_string_or_null(o, "detail", p->detail);
        if (ok && (p->kind == OURO_PARAM_INT || p->kind == OURO_PARAM_REAL ||
                   p->kind == OURO_PARAM_TEXT_LIST)) {
            char lo[32], hi[32];
            bound_str(p, p->min, lo, sizeof lo);
            bound_str(p, p->max, hi, sizeof hi);
            ok = cJSON_AddStringToObject(o, "min", lo) && cJSON_AddStringToObject(o, "max", hi);
            if (ok && p->has_unset) {
                bound_str(p, p->unset, lo, sizeof lo);
                ok = cJSON_AddStringToObject(o, "unset", lo) != NULL;
            }
        }
        if (ok && p->kind == OURO_PARAM_ENUM) {
            cJSON *v = cJSON_AddArrayToObject(o, "values");
            ok = v != NULL;
            for (int k = 0; ok && k < p->n_values; k++) {
                cJSON *s = cJSON_CreateString(p->values[k].name);
                ok = s != NULL;
                if (ok)
                    cJSON_AddItemToArray(v, s);
            }
        }
    }
    for (int i = 0; ok && i < ouro_sql_function_count; i++) {
        const ouro_sql_function *f = &ouro_sql_functions[i];
        cJSON *o = cJSON_CreateObject();
        ok = o != NULL;
        if (ok)
            cJSON_AddItemToArray(fns, o);
        cJSON *args = ok ? cJSON_AddArrayToObject(o, "args") : NULL;
        ok = args && cJSON_AddStringToObject(o, "name", f->name) &&
             cJSON_AddBoolToObject(o, "postgresql", (f->hosts & OURO_FN_PG) != 0) &&
             cJSON_AddBoolToObject(o, "sqlite", (f->hosts & OURO_FN_SQLITE) != 0) &&
             cJSON_AddNumberToObject(o, "required", f->n_required) &&
             cJSON_AddStringToObject(o, "summary", f->summary);
        for (int k = 0; ok && k < ouro_sql_function_nargs(f); k++) {
            cJSON *s = cJSON_CreateString(f->args[k]);
            ok = s != NULL;
            if (ok)
                cJSON_AddItemToArray(args, s);
        }
    }
    char *out = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!out)
        return NULL;
    /* handed out as ouro_free memory (cJSON allocates with malloc by default) */
    return out;
}

/* ------------------------------------------------------------------------
 * Rules
 * ------------------------------------------------------------------------ */

int ouro_context_limit(const ouro_model *model, int context_length)
{
    int n = ouro_model_config(model)->max_position_embeddings;
    int limit = context_length > 0 ? context_length : (int)ouro_params[OURO_P_CONTEXT_LENGTH].dflt;
    return n > 0 && n < limit ? n : limit;
}

int ouro_session_ctx_for(int need, int n_seq, int limit)
{
    int round = n_seq > 1 ? 32 : 256;
    if (need < 1)
        need = 1;
    int n = need > limit - (round - 1) ? limit : (need + round - 1) / round * round;
    if (n > limit)
        n = limit;
    return n < need ? need : n;
}

int ouro_batch_seqs(int batch_size, int n)
{
    int s = n < batch_size ? n : batch_size;
    return s > 0 ? s : 1;
}

int ouro_classify_seqs(int batch_size, int n_labels, int n_inputs)
{
    int s = n_labels + 1 < 257 ? n_labels + 1 : 257;
    if (batch_size > s)
        s = batch_size;
    if ((int64_t)n_inputs * n_labels + 1 < s)
        s = n_inputs * n_labels + 1;
    return s > 0 ? s : 1;
}

void ouro_gen_params_from_sql(ouro_gen_params *p, int max_tokens, double temperature,
                              double exit_threshold, ouro_depth_mode depth, int64_t seed,
                              const char *const *stop, int n_stop)
{
    memset(p, 0, sizeof *p);
    p->max_tokens = max_tokens;
    p->temperature = (float)temperature;
    p->seed = (uint64_t)seed;
    if (exit_threshold >= 0) {
        p->exit.kind = OURO_EXIT_THRESHOLD;
        p->exit.threshold = (float)exit_threshold;
        p->depth = depth;
    } else {
        p->exit.kind = OURO_EXIT_DEFAULT;
        p->depth = OURO_DEPTH_FULL;
    }
    p->stop = stop;
    p->n_stop = n_stop;
}

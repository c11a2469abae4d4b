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
    {"exact", OURO_PRECISION_EXACT}, {"bf16", OURO_PRECISION_BF16},
};

#define ENUM(v) v, (int)(sizeof v / sizeof v[0])
#define SET OURO_PARAM_SETTING
#define ARG OURO_PARAM_ARG

const ouro_param ouro_params[OURO_P_COUNT] = {
    [OURO_P_MODEL_PATH] = {
        "model_path", OURO_PARAM_TEXT, SET | OURO_PARAM_PG_ONLY | OURO_PARAM_SUPERUSER,
        0, 0, 0, false, 0, NULL, 0, "empty",
        "Folder of the default model (config.json, safetensors, tokenizer.json).",
        "An absolute path on the server; empty means no default model. Only superusers may set it."},
    [OURO_P_THREADS] = {
        "threads", OURO_PARAM_INT, SET, 0, 0, 1024, false, 0, NULL, 0, "0",
        "Worker threads of one generation (0 = the number of processors).",
        "Parallel query workers each use this many."},
    [OURO_P_MAX_TOKENS] = {
        "max_tokens", OURO_PARAM_INT, SET | ARG, 128, 1, 1048576, false, 0, NULL, 0, "128",
        "Default number of new tokens a generation may produce.",
        "The context limit also applies: a reply ends where the context ends."},
    [OURO_P_MAX_LOOPS] = {
        "max_loops", OURO_PARAM_INT, SET | ARG, 0, 1, OURO_MAX_LOOPS, true, 0, NULL, 0,
        "the model's total_ut_steps",
        "Default number of loop steps (0 = the model's total_ut_steps).", NULL},
    [OURO_P_EXIT_THRESHOLD] = {
        "exit_threshold", OURO_PARAM_REAL, SET | ARG, -1, 0, 1, true, -1, NULL, 0,
        "the model's own rule",
        "Default early-exit threshold (-1 = the model's own rule).",
        "A value in 0 .. 1 exits at the first loop step whose cumulative exit probability "
        "reaches it (see depth); -1 uses the model's early_exit_threshold."},
    [OURO_P_CONTEXT_LENGTH] = {
        "context_length", OURO_PARAM_INT, SET, 4096, 16, 1048576, false, 0, NULL, 0, "4096",
        "Most tokens one sequence may hold (prompt plus generated text).",
        "The model's max_position_embeddings also caps it. Memory of the KV cache grows with "
        "the tokens a call needs."},
    [OURO_P_ON_ERROR] = {
        "on_error", OURO_PARAM_ENUM, SET, OURO_ON_ERROR_ERROR, 0, 0, false, 0,
        ENUM(on_error_values), "error",
        "What a row with bad input gives: error or null.",
        "Valid values are error (abort the statement) and null (return NULL for the row, or "
        "for the item of a batch array, with a warning). Configuration errors and cancels "
        "always abort."},
    [OURO_P_DEPTH] = {
        "depth", OURO_PARAM_ENUM, SET, OURO_DEPTH_ADAPTIVE, 0, 0, false, 0,
        ENUM(depth_values), "adaptive",
        "How an exit threshold is used: adaptive or full depth.",
        "Valid values are adaptive (a decoded token stops at the first loop step whose "
        "cumulative exit probability reaches the threshold; deeper steps are not run) and full "
        "(every step runs; the threshold only picks the step whose state gives the logits). "
        "Without a threshold every step runs."},
    [OURO_P_KV_CACHE] = {
        "kv_cache", OURO_PARAM_ENUM, SET, OURO_KV_PER_STEP, 0, 0, false, 0,
        ENUM(kv_cache_values), "per-step",
        "Decode KV cache layout: per-step, last or avg.",
        "Valid values are per-step (one slot per loop step and layer, as upstream), last and avg "
        "(one slot per layer while decoding: the last step's K/V or their mean over steps; a "
        "quarter of the memory for 4 steps)."},
    [OURO_P_KV_TYPE] = {
        "kv_type", OURO_PARAM_ENUM, SET, OURO_KV_F32, 0, 0, false, 0,
        ENUM(kv_type_values), "f32",
        "Element type of the generation KV cache: f32 or f16.",
        "Valid values are f32 (32-bit entries, exact; the default) and f16 (16-bit entries: half "
        "the KV memory, approximate). Applies to the generation functions; classification and "
        "depth always use f32."},
    [OURO_P_PRECISION] = {
        "precision", OURO_PARAM_ENUM, SET, OURO_PRECISION_EXACT, 0, 0, false, 0,
        ENUM(precision_values), "exact",
        "Precision of the generation matrix products: exact or bf16.",
        "Valid values are exact (f32 activations; the default) and bf16 (activations rounded to "
        "bf16: faster where the CPU has bf16 dot products, approximate). Applies to the "
        "generation functions; classification and depth always use exact."},
    [OURO_P_BATCH_SIZE] = {
        "batch_size", OURO_PARAM_INT, SET, 16, 1, 256, false, 0, NULL, 0, "16",
        "Sequences the batch functions run at once.",
        "ouro_generate_batch decodes this many prompts together (more run in waves); the "
        "classification batches use max(batch_size, labels + 1) sequences. Each sequence holds "
        "a KV cache for the longest prompt and its reply."},
    [OURO_P_TIMEOUT_MS] = {
        "timeout_ms", OURO_PARAM_INT, SET | OURO_PARAM_SQLITE_ONLY, 0, 0, 2147483647, false, 0,
        NULL, 0, "0",
        "Most wall time of one call in milliseconds (0 = none).",
        "Checked between the layers of every forward call."},
    [OURO_P_MEMORY_LIMIT] = {
        "memory_limit", OURO_PARAM_INT, SET | OURO_PARAM_SQLITE_ONLY, 0, 16, 1073741824, false, 0,
        NULL, 0, "a quarter of the machine's memory",
        "Most memory one call may allocate, in MiB: KV cache, logits and scratch together.",
        "Checked before allocating."},
    [OURO_P_TEMPERATURE] = {
        "temperature", OURO_PARAM_REAL, ARG, 0, 0, 100, false, 0, NULL, 0, "0",
        "Sampling temperature; 0 is greedy and deterministic.", NULL},
    [OURO_P_SEED] = {
        "seed", OURO_PARAM_INT, ARG, 42, -9223372036854775808.0, 9223372036854775807.0, false, 0,
        NULL, 0, "42",
        "Seed of the sampler: equal calls give equal results.", NULL},
    [OURO_P_STOP] = {
        "stop", OURO_PARAM_TEXT_LIST, ARG, 0, 1, 16, false, 0, NULL, 0, "none",
        "Stop strings: generation ends before the first one that appears.", NULL},
    [OURO_P_SYSTEM] = {
        "system", OURO_PARAM_TEXT, ARG, 0, 0, 0, false, 0, NULL, 0, "none",
        "System message of ouro_chat.", NULL},
    [OURO_P_INSTRUCTION] = {
        "instruction", OURO_PARAM_TEXT, ARG, 0, 0, 0, false, 0, NULL, 0, "a default instruction",
        "Instruction of a classification prompt.", NULL},
    [OURO_P_LABELS] = {
        "labels", OURO_PARAM_TEXT_LIST, ARG, 0, 1, 10000, false, 0, NULL, 0, "required",
        "The labels a classification chooses from.", NULL},
    [OURO_P_MODEL] = {
        "model", OURO_PARAM_TEXT, ARG, 0, 0, 0, false, 0, NULL, 0, "the default model",
        "Which model: a registered name (PostgreSQL) or a name given to ouro_load (SQLite).",
        NULL},
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

char *ouro_surface_json(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *params = root ? cJSON_AddArrayToObject(root, "params") : NULL;
    cJSON *fns = root ? cJSON_AddArrayToObject(root, "functions") : NULL;
    bool ok = params && fns && cJSON_AddNumberToObject(root, "item_base", OURO_ITEM_BASE);
    static const char *const kinds[] = {"int", "real", "enum", "text", "text[]"};
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
             cJSON_AddStringToObject(o, "default", p->dflt_doc) &&
             cJSON_AddStringToObject(o, "summary", p->summary);
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

/*
 * extension.c -- the SQLite loadable extension: entry point and the scalar
 * SQL functions of the ouro surface (the per-connection state they use is in
 * connection.c).
 *
 *     .load build/ouro                                  -- sqlite3 shell
 *     conn.load_extension("build/ouro")                 -- Python
 *     SELECT ouro_load('test/data/models/tiny-mha-bf16');
 *     SELECT id, ouro_generate(prompt, 4) FROM questions;
 *
 * The functions take positional arguments and write arrays as JSON text; the
 * surface (names, argument order, defaults) is the one shared with the
 * PostgreSQL extension.  A NULL option means its default; a NULL prompt or
 * input gives NULL.  Out-of-range arguments are SQL errors that state the
 * valid range.  Every message starts with "ouro: ".
 *
 * Flags: ouro_load and ouro_unload open files named in SQL (or change which
 * model a connection uses), and ouro_setting(name, value) changes the
 * connection's settings, so they are SQLITE_DIRECTONLY: no view or trigger
 * of a database file can call them.  SQLite up to 3.40 does not apply
 * SQLITE_DIRECTONLY to CHECK constraints, which run inside INSERT, UPDATE
 * and PRAGMA integrity_check; so these functions also refuse to run while
 * the connection has any statement under way that writes or that is not a
 * SELECT / WITH / VALUES (app_statement_only): a CHECK constraint, a stored
 * generated column or an integrity check can never reach them.  (Generated
 * columns refuse them anyway: they are not deterministic.)  Nothing that depends on a model file is
 * SQLITE_DETERMINISTIC (the files may be replaced); nothing that runs a model
 * is SQLITE_INNOCUOUS (it can use a lot of CPU).  ouro_version and
 * ouro_build_info are constant for the process: deterministic and innocuous.
 *
 * Beyond the shared surface: ouro_generate_detail (ouro_generate's arguments;
 * JSON with the text, its token count and the loop step each token used) and
 * ouro_setting(name [, value]), the SQLite form of PostgreSQL's ouro.*
 * settings (all but model_path, from the core's table: threads, max_tokens,
 * max_loops, exit_threshold, context_length, on_error, depth, kv_cache,
 * kv_type, precision, batch_size), kept per connection.  Defaults, ranges
 * and the rules for NULLs, item numbering (from 1) and on_error are the
 * core's (core/ouro_surface.h), the same as PostgreSQL's: under
 * ouro_setting('on_error', 'null') a bad row gives NULL and a bad item of a
 * batch array a null item, the message going to sqlite3_log.  kv_cache, kv_type and precision apply to the generation
 * functions only; classification and depth always run the exact upstream
 * path (per-step f32 cache, exact matrix products).
 *
 * Batching rows: ouro_generate_batch, ouro_classify_batch,
 * ouro_classify_scores_batch and ouro_depth_batch take a JSON array of
 * prompts / inputs and give a JSON array of results in the same order (null
 * for a null item), computed together in batches of batch_size sequences; json_group_array
 * builds the argument and json_each matches the results back to rows.  An
 * exit_threshold given to a generation means adaptive depth (decoded tokens
 * stop at their exit step) unless the depth setting is 'full'.
 *
 * Models: a process-wide cache (model_cache.c) shares loaded weights between
 * connections.  Each connection keeps its own registry (default model, named
 * models, the $OURO_MODEL model) and its own ouro_session, which is never
 * shared with another connection.  All of it is released when the connection
 * closes: every function is registered with the same state pointer and a
 * destructor, and the last destructor frees the state.
 *
 * Interruption: with SQLite 3.41 or later (at build time and at run time) a
 * generation checks sqlite3_is_interrupted() between decode steps and stops
 * with SQLITE_INTERRUPT.  Older SQLite (Debian 12 ships 3.40) offers a
 * function no way to see sqlite3_interrupt(): the running call finishes (at
 * most max_tokens new tokens) and the statement then fails with
 * "interrupted" at its next step, before the next row is computed.
 */
#include <dlfcn.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ouro_sqlite.h"

#pragma GCC visibility push(hidden)
SQLITE_EXTENSION_INIT1
#pragma GCC visibility pop

/* The SQL name of enum setting `id`'s value v ('per-step'). */
static const char *enum_name(ouro_param_id id, int v)
{
    const char *n = ouro_param_enum_name(&ouro_params[id], v);
    return n ? n : "?";
}

/* ========================================================================
 * Errors: translated here, once, into SQLite results
 * ======================================================================== */

/* Sets a formatted error on ctx ("ouro: ..." is part of fmt). */
static void result_errorf(sqlite3_context *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    if (!msg) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_error(ctx, msg, -1);
    sqlite3_free(msg);
}

/* Sets a message produced by conn_model; NULL means out of memory.  Frees msg. */
static void result_errmsg(sqlite3_context *ctx, char *msg)
{
    if (!msg) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_error(ctx, msg, -1);
    sqlite3_free(msg);
}

/* Translates a core failure: NOMEM -> SQLITE_NOMEM, INTERRUPTED ->
 * SQLITE_INTERRUPT, anything else an error with the core's message. */
static void result_ouro_error(sqlite3_context *ctx, ouro_status st, const ouro_error *err)
{
    if (st == OURO_ERR_NOMEM) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    if (st == OURO_ERR_INTERRUPTED) {
        conn_state *c = sqlite3_user_data(ctx);
        if (c && c->timed_out) {
            result_errorf(ctx, "ouro: the call ran past its timeout_ms of %d ms and was stopped",
                          c->timeout_ms);
            return;
        }
        sqlite3_result_error(ctx, "interrupted", -1);
        sqlite3_result_error_code(ctx, SQLITE_INTERRUPT);
        return;
    }
    result_errorf(ctx, "ouro: %s", err && err->message[0] ? err->message : ouro_status_str(st));
}

/* A bad row (see "on_error" in core/ouro_surface.h): an error, or under
 * on_error = null a NULL result, the message going to sqlite3_log. */
static void row_error(sqlite3_context *ctx, const conn_state *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    if (!msg) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    if (c->on_error == OURO_ON_ERROR_NULL) {
        sqlite3_log(SQLITE_WARNING, "%s", msg);
        sqlite3_result_null(ctx);
    } else {
        sqlite3_result_error(ctx, msg, -1);
    }
    sqlite3_free(msg);
}

/* A bad item of a batch array: returns true when the item gives null and the
 * call goes on (on_error = null; the message goes to sqlite3_log), false
 * after setting the error that ends the call. */
static bool item_error(sqlite3_context *ctx, const conn_state *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    if (!msg) {
        sqlite3_result_error_nomem(ctx);
        return false;
    }
    bool go_on = c->on_error == OURO_ON_ERROR_NULL;
    if (go_on)
        sqlite3_log(SQLITE_WARNING, "%s", msg);
    else
        sqlite3_result_error(ctx, msg, -1);
    sqlite3_free(msg);
    return go_on;
}

/* A core failure of one row: bad input (OURO_ERR_ARG, OURO_ERR_CONTEXT) is
 * a row error; anything else as result_ouro_error. */
static void row_ouro_error(sqlite3_context *ctx, const conn_state *c, ouro_status st,
                           const ouro_error *err)
{
    if (st == OURO_ERR_ARG || st == OURO_ERR_CONTEXT)
        row_error(ctx, c, "ouro: %s", err && err->message[0] ? err->message : ouro_status_str(st));
    else
        result_ouro_error(ctx, st, err);
}

/* ========================================================================
 * Who may change the connection
 * ======================================================================== */

/* True when every statement the connection has under way writes nothing and
 * is a SELECT, WITH or VALUES, i.e. the call comes from the application's
 * own query, not from a CHECK constraint (INSERT, UPDATE, UPSERT, ALTER
 * TABLE) or an integrity check (PRAGMA, also behind pragma_integrity_check()).
 * Else sets an error naming fn and returns false. */
static bool app_statement_only(sqlite3_context *ctx, const char *fn)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    for (sqlite3_stmt *st = sqlite3_next_stmt(db, NULL); st; st = sqlite3_next_stmt(db, st)) {
        if (!sqlite3_stmt_busy(st))
            continue;
        const char *sql = sqlite3_sql(st);
        bool select = false;
        if (sql) {
            while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r' || *sql == '(')
                sql++;
            select = sqlite3_strnicmp(sql, "SELECT", 6) == 0 || sqlite3_strnicmp(sql, "WITH", 4) == 0
                     || sqlite3_strnicmp(sql, "VALUES", 6) == 0;
        }
        if (!select || !sqlite3_stmt_readonly(st)) {
            result_errorf(ctx, "ouro: %s changes the connection and runs only in the application's "
                          "own SELECT, never inside a statement that writes or checks the database "
                          "(CHECK constraints, INSERT, UPDATE, PRAGMA)", fn);
            return false;
        }
    }
    return true;
}

/* ========================================================================
 * Arguments
 * ======================================================================== */

static bool arg_is_null(int argc, sqlite3_value **argv, int i)
{
    return i >= argc || sqlite3_value_type(argv[i]) == SQLITE_NULL;
}

/* Text of argument i, or NULL when absent or NULL. */
static const char *arg_text(int argc, sqlite3_value **argv, int i)
{
    return arg_is_null(argc, argv, i) ? NULL : (const char *)sqlite3_value_text(argv[i]);
}

/* Sets the error for a value of parameter id out of its range: the core's
 * message, the same in PostgreSQL. */
static void range_error(sqlite3_context *ctx, ouro_param_id id, bool as_setting)
{
    char msg[160];
    ouro_param_range_message(&ouro_params[id], as_setting, msg, sizeof msg);
    result_errorf(ctx, "ouro: %s", msg);
}

/* Optional integer argument i, a value of parameter id (as_setting: the
 * setting's range, which may take an "unset" value): absent or NULL leaves
 * *out as is.  Returns false after setting an error that states the range. */
static bool arg_int(sqlite3_context *ctx, int argc, sqlite3_value **argv, int i, ouro_param_id id,
                    bool as_setting, sqlite3_int64 *out)
{
    if (arg_is_null(argc, argv, i))
        return true;
    int t = sqlite3_value_numeric_type(argv[i]);
    sqlite3_int64 v = 0;
    bool ok = false;
    if (t == SQLITE_INTEGER) {
        v = sqlite3_value_int64(argv[i]);
        ok = ouro_param_in_range(&ouro_params[id], (double)v, as_setting);
    } else if (t == SQLITE_FLOAT) {
        double d = sqlite3_value_double(argv[i]);
        ok = d == floor(d) && fabs(d) < 9.2e18 && ouro_param_in_range(&ouro_params[id], d, as_setting);
        v = ok ? (sqlite3_int64)d : 0;
    }
    if (!ok) {
        range_error(ctx, id, as_setting);
        return false;
    }
    *out = v;
    return true;
}

/* Optional number argument i, a value of parameter id; as arg_int. */
static bool arg_double(sqlite3_context *ctx, int argc, sqlite3_value **argv, int i, ouro_param_id id,
                       bool as_setting, double *out)
{
    if (arg_is_null(argc, argv, i))
        return true;
    int t = sqlite3_value_numeric_type(argv[i]);
    double d = sqlite3_value_double(argv[i]);
    if ((t != SQLITE_INTEGER && t != SQLITE_FLOAT) || !ouro_param_in_range(&ouro_params[id], d, as_setting)) {
        range_error(ctx, id, as_setting);
        return false;
    }
    *out = d;
    return true;
}

/* Parses a JSON array of strings (labels, stop; the core checks that they
 * are non-empty and distinct).
 * Returns the tree (caller frees with cJSON_Delete) and fills strs (borrowed
 * from the tree, sqlite3_malloc'd array) and *n; NULL after setting an error. */
static cJSON *arg_string_array(sqlite3_context *ctx, sqlite3_value *v, ouro_param_id id,
                               const char ***strs, int *n)
{
    const char *name = ouro_params[id].name;
    int max_n = (int)ouro_params[id].max;
    const char *text = (const char *)sqlite3_value_text(v);
    int len = sqlite3_value_bytes(v);
    *strs = NULL;
    *n = 0;
    if (!text) {
        sqlite3_result_error_nomem(ctx);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(text, (size_t)len);
    int count = root && cJSON_IsArray(root) ? cJSON_GetArraySize(root) : -1;
    if (count < 1 || count > max_n) {
        result_errorf(ctx, "ouro: %s must be a JSON array of 1 to %d strings, e.g. '[\"yes\",\"no\"]'",
                      name, max_n);
        cJSON_Delete(root);
        return NULL;
    }
    const char **out = sqlite3_malloc64((sqlite3_uint64)count * sizeof *out);
    if (!out) {
        cJSON_Delete(root);
        sqlite3_result_error_nomem(ctx);
        return NULL;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        const char *s = cJSON_GetStringValue(item);
        if (!s) {
            result_errorf(ctx, "ouro: item %d of %s is not a string", i + OURO_ITEM_BASE, name);
            sqlite3_free(out);
            cJSON_Delete(root);
            return NULL;
        }
        out[i++] = s;
    }
    *strs = out;
    *n = i;
    return root;
}

/* Most items of one *_batch call's array. */
#define BATCH_ITEMS_MAX 1000000

/* Parses the array argument of a *_batch function: JSON text of an array
 * whose items are strings or nulls (a null item gives a null result).
 * Returns the tree (caller frees with cJSON_Delete) and fills strs (borrowed
 * from the tree; NULL for a null item; sqlite3_malloc'd array, or NULL when
 * the array is empty) and *n; NULL after setting an error. */
static cJSON *arg_batch_array(sqlite3_context *ctx, sqlite3_value *v, const char *name,
                              const char ***strs, int *n)
{
    const char *text = (const char *)sqlite3_value_text(v);
    *strs = NULL;
    *n = 0;
    if (!text) {
        sqlite3_result_error_nomem(ctx);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(text, (size_t)sqlite3_value_bytes(v));
    int count = root && cJSON_IsArray(root) ? cJSON_GetArraySize(root) : -1;
    if (count < 0 || count > BATCH_ITEMS_MAX) {
        result_errorf(ctx, "ouro: %s must be a JSON array of at most %d strings or nulls, "
                      "e.g. '[\"a\", null]'", name, BATCH_ITEMS_MAX);
        cJSON_Delete(root);
        return NULL;
    }
    const char **out = NULL;
    if (count > 0 && !(out = sqlite3_malloc64((sqlite3_uint64)count * sizeof *out))) {
        cJSON_Delete(root);
        sqlite3_result_error_nomem(ctx);
        return NULL;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (!cJSON_IsString(item) && !cJSON_IsNull(item)) {
            result_errorf(ctx, "ouro: item %d of %s is not a string or null", i + OURO_ITEM_BASE, name);
            sqlite3_free(out);
            cJSON_Delete(root);
            return NULL;
        }
        out[i++] = cJSON_IsString(item) ? item->valuestring : NULL;
    }
    *strs = out;
    *n = count;
    return root;
}

/* Encodes text with the model's tokenizer; false after setting an error.
 * *ids is malloc'd by the core (ouro_free). */
static bool encode(sqlite3_context *ctx, cache_entry *e, const char *text, int len,
                   int32_t **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    const ouro_tokenizer *tok = ouro_model_tokenizer(e->model);
    if (!tok) {
        result_errorf(ctx, "ouro: model '%s' has no tokenizer.json", e->path);
        return false;
    }
    size_t n_ids = 0;
    ouro_error err = {0};
    ouro_status st = ouro_tokenizer_encode(tok, text, (size_t)len, ids, &n_ids, &err);
    if (st != OURO_OK) {
        result_ouro_error(ctx, st, &err);
        return false;
    }
    if (n_ids > INT_MAX) {
        ouro_free(*ids);
        *ids = NULL;
        result_errorf(ctx, "ouro: the text is too long");
        return false;
    }
    *n = (int)n_ids;
    return true;
}

/* ========================================================================
 * ouro_load, ouro_unload
 * ======================================================================== */

/* ouro_load(path): loads the folder and makes it the connection's default;
 * returns its canonical path.  ouro_load(name, path): registers it under
 * name (replacing any model of that name); returns name. */
static void fn_load(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    conn_state *c = sqlite3_user_data(ctx);
    if (!app_statement_only(ctx, "ouro_load"))
        return;
    const char *name = argc == 2 ? arg_text(argc, argv, 0) : NULL;
    const char *path = arg_text(argc, argv, argc - 1);
    if (argc == 2 && !name) {
        result_errorf(ctx, "ouro: ouro_load(name, path) needs a name");
        return;
    }
    if (!path) {
        result_errorf(ctx, "ouro: ouro_load needs the path of a model folder");
        return;
    }
    cache_entry *e;
    ouro_error err = {0};
    ouro_status st = model_cache_acquire(path, (ouro_weights)c->weights, &e, &err);
    if (st != OURO_OK) {
        if (st == OURO_ERR_NOMEM)
            sqlite3_result_error_nomem(ctx);
        else
            result_errorf(ctx, "ouro: cannot load model '%s': %s", path, err.message);
        return;
    }
    if (!name) {
        if (c->session_entry == c->default_model)
            conn_drop_session(c);
        model_cache_release(c->default_model);
        c->default_model = e;
        sqlite3_result_text(ctx, e->path, -1, SQLITE_TRANSIENT);
        return;
    }
    for (named_model *n = c->named; n; n = n->next) {
        if (strcmp(n->name, name) == 0) {
            if (c->session_entry == n->entry)
                conn_drop_session(c);
            model_cache_release(n->entry);
            n->entry = e;
            sqlite3_result_text(ctx, name, -1, SQLITE_TRANSIENT);
            return;
        }
    }
    named_model *n = sqlite3_malloc(sizeof *n);
    char *copy = sqlite3_mprintf("%s", name);
    if (!n || !copy) {
        sqlite3_free(n);
        sqlite3_free(copy);
        model_cache_release(e);
        sqlite3_result_error_nomem(ctx);
        return;
    }
    n->name = copy;
    n->entry = e;
    n->next = c->named;
    c->named = n;
    sqlite3_result_text(ctx, name, -1, SQLITE_TRANSIENT);
}

/* ouro_unload(name): forgets the named model (NULL: the default model set by
 * ouro_load(path)); 1 when something was unloaded, else 0.  The weights are
 * freed when no connection of the process holds them any more. */
static void fn_unload(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    if (!app_statement_only(ctx, "ouro_unload"))
        return;
    conn_state *c = sqlite3_user_data(ctx);
    const char *name = arg_text(argc, argv, 0);
    int done = 0;
    conn_drop_session(c);
    if (!name) {
        done = c->default_model != NULL;
        model_cache_release(c->default_model);
        c->default_model = NULL;
    } else {
        for (named_model **pp = &c->named; *pp; pp = &(*pp)->next) {
            named_model *n = *pp;
            if (strcmp(n->name, name) == 0) {
                *pp = n->next;
                model_cache_release(n->entry);
                sqlite3_free(n->name);
                sqlite3_free(n);
                done = 1;
                break;
            }
        }
    }
    sqlite3_result_int(ctx, done);
}

/* ========================================================================
 * ouro_generate, ouro_chat
 * ======================================================================== */

typedef struct gen_args {
    sqlite3_int64 max_loops;     /* 0 = the model's total_ut_steps */
    sqlite3_int64 max_tokens;
    double temperature;
    bool has_threshold;
    double threshold;
    sqlite3_int64 seed;
    cJSON *stop_json;            /* owned; the stop strings point into it */
    const char **stop;           /* (n_stop) sqlite3_malloc'd */
    int n_stop;
    const char *model;           /* name, or NULL = default */
} gen_args;

static void gen_args_clear(gen_args *a)
{
    cJSON_Delete(a->stop_json);
    sqlite3_free((void *)a->stop);
    a->stop_json = NULL;
    a->stop = NULL;
}

/* Reads the options (max_loops, max_tokens, temperature, exit_threshold,
 * seed, stop, model) starting at argument `first`; NULL means the
 * connection's setting of the same name, else the table's default. */
static bool gen_args_parse(sqlite3_context *ctx, const conn_state *c, int argc, sqlite3_value **argv,
                           int first, gen_args *a)
{
    memset(a, 0, sizeof *a);
    a->max_loops = c->max_loops;
    a->max_tokens = c->max_tokens;
    a->temperature = ouro_params[OURO_P_TEMPERATURE].dflt;
    a->has_threshold = c->exit_threshold >= 0;
    a->threshold = c->exit_threshold;
    a->seed = (sqlite3_int64)ouro_params[OURO_P_SEED].dflt;
    if (!arg_int(ctx, argc, argv, first, OURO_P_MAX_LOOPS, false, &a->max_loops) ||
        !arg_int(ctx, argc, argv, first + 1, OURO_P_MAX_TOKENS, false, &a->max_tokens) ||
        !arg_double(ctx, argc, argv, first + 2, OURO_P_TEMPERATURE, false, &a->temperature))
        return false;
    if (!arg_is_null(argc, argv, first + 3)) {
        if (!arg_double(ctx, argc, argv, first + 3, OURO_P_EXIT_THRESHOLD, false, &a->threshold))
            return false;
        a->has_threshold = true;
    }
    if (!arg_int(ctx, argc, argv, first + 4, OURO_P_SEED, false, &a->seed))
        return false;
    if (!arg_is_null(argc, argv, first + 5)) {
        a->stop_json = arg_string_array(ctx, argv[first + 5], OURO_P_STOP, &a->stop, &a->n_stop);
        if (!a->stop_json)
            return false;
        /* an argument error, whatever on_error says: no row is to blame */
        for (int i = 0; i < a->n_stop; i++)
            if (!a->stop[i][0]) {
                result_errorf(ctx, "ouro: stop string %d is empty", i + OURO_ITEM_BASE);
                return false;
            }
    }
    a->model = arg_text(argc, argv, first + 6);
    return true;
}

/* Sets the result of a detailed generation: a JSON object
 *   {"text", "ids", "n_tokens", "prompt_tokens", "exit_steps", "mean_depth",
 *    "stop_reason", "depth", "kv_cache", "kv_type", "precision", "seconds"}
 * where exit_steps[i] is the 1-based loop step whose state gave new token i
 * (the first belongs to the last prompt token, as the core reports it) and
 * precision the one the products ran at (auto resolved: exact or bf16). */
static void result_detail(sqlite3_context *ctx, const conn_state *c, const ouro_gen_result *r,
                          int prompt_tokens, bool adaptive)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON *ids = obj ? cJSON_AddArrayToObject(obj, "ids") : NULL;
    cJSON *steps = obj ? cJSON_CreateArray() : NULL;
    bool ok = ids && steps;
    double sum = 0;
    for (int i = 0; ok && i < r->n_ids; i++) {
        cJSON *a = cJSON_CreateNumber(r->ids[i]);
        cJSON *b = cJSON_CreateNumber(r->exit_steps ? r->exit_steps[i] : 0);
        ok = a && b;
        if (a)
            cJSON_AddItemToArray(ids, a);
        if (b)
            cJSON_AddItemToArray(steps, b);
        sum += r->exit_steps ? r->exit_steps[i] : 0;
    }
    ok = ok && cJSON_AddStringToObject(obj, "text", r->text ? r->text : "") &&
         cJSON_AddNumberToObject(obj, "n_tokens", r->n_ids) &&
         cJSON_AddNumberToObject(obj, "prompt_tokens", prompt_tokens);
    if (ok) {
        cJSON_AddItemToObject(obj, "exit_steps", steps);
        steps = NULL;            /* owned by obj now */
        ok = (r->n_ids ? cJSON_AddNumberToObject(obj, "mean_depth", sum / r->n_ids)
                       : cJSON_AddNullToObject(obj, "mean_depth")) &&
             cJSON_AddStringToObject(obj, "stop_reason", ouro_stop_reason_str(r->stop_reason)) &&
             cJSON_AddStringToObject(obj, "depth", adaptive ? "adaptive" : "full") &&
             cJSON_AddStringToObject(obj, "kv_cache", enum_name(OURO_P_KV_CACHE, c->kv)) &&
             cJSON_AddStringToObject(obj, "kv_type", enum_name(OURO_P_KV_TYPE, c->kv_type)) &&
             cJSON_AddStringToObject(obj, "precision",
                                     enum_name(OURO_P_PRECISION, ouro_precision_resolve(c->precision))) &&
             cJSON_AddNumberToObject(obj, "seconds", r->seconds);
    }
    char *out = ok ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(steps);
    cJSON_Delete(obj);
    if (out)
        sqlite3_result_text(ctx, out, -1, cJSON_free);
    else
        sqlite3_result_error_nomem(ctx);
}

/* The core's parameters for the options `a`, max_tokens new tokens at most.
 * An exit_threshold means adaptive depth unless the connection's depth
 * setting is 'full'.  p borrows the stop strings of a. */
static void gen_params_fill(conn_state *c, const gen_args *a, int max_tokens, ouro_gen_params *p)
{
    ouro_gen_params_from_sql(p, max_tokens, a->temperature, a->has_threshold ? a->threshold : -1.0,
                             (ouro_depth_mode)c->depth, a->seed, a->stop, a->n_stop);
    p->cancel = conn_cancel;
    p->cancel_ctx = c;
}

/* Generates a continuation of `text` (text_len bytes) and sets it as the
 * result: the text, or with `detail` the JSON of result_detail.  An
 * exit_threshold means adaptive depth unless the connection's depth setting
 * is 'full'. */
static void generate_text(sqlite3_context *ctx, conn_state *c, cache_entry *e, const char *text,
                          int text_len, const gen_args *a, bool detail)
{
    int32_t *ids = NULL;         /* (n) prompt ids, malloc'd by the core */
    int n = 0;
    if (!encode(ctx, e, text, text_len, &ids, &n))
        return;
    int limit = ctx_limit(c, e->model);
    if (n == 0) {
        row_error(ctx, c, "ouro: the prompt has no tokens");
        goto done;
    }
    if (n >= limit) {
        row_error(ctx, c, "ouro: the prompt is too long: it is %d tokens; the context holds %d "
                  "tokens (prompt and reply)", n, limit);
        goto done;
    }
    /* A reply ends where the context ends. */
    int max_tokens = (int)(a->max_tokens < limit - n ? a->max_tokens : limit - n);

    ouro_error err = {0};
    ouro_session *s = conn_session(c, e, (int)a->max_loops, n + max_tokens, 1, true, &err);
    if (!s) {
        if (err.status == OURO_ERR_UNSUPPORTED && c->kv != OURO_KV_PER_STEP)
            result_errorf(ctx, "ouro: %s (SELECT ouro_setting('kv_cache', 'per-step') uses the "
                          "upstream cache)", err.message);
        else
            result_ouro_error(ctx, err.status, &err);
        goto done;
    }
    bool adaptive = a->has_threshold && c->depth == OURO_DEPTH_ADAPTIVE;
    ouro_gen_params p;
    gen_params_fill(c, a, max_tokens, &p);

    ouro_gen_result r;
    memset(&r, 0, sizeof r);
    const int32_t *prompts[1] = {ids};
    int lens[1] = {n};
    ouro_status st = ouro_generate(s, 1, prompts, lens, &p, &r, &err);
    if (st == OURO_ERR_UNSUPPORTED && adaptive)
        result_errorf(ctx, "ouro: %s (SELECT ouro_setting('depth', 'full') runs every loop step "
                      "for every token)", err.message);
    else if (st != OURO_OK)
        row_ouro_error(ctx, c, st, &err);
    else if (detail)
        result_detail(ctx, c, &r, n, adaptive);
    else
        sqlite3_result_text64(ctx, r.text ? r.text : "", r.text ? r.text_len : 0, SQLITE_TRANSIENT,
                              SQLITE_UTF8);
    ouro_gen_result_clear(&r);
done:
    ouro_free(ids);
}

/* ouro_generate(prompt [, max_loops, max_tokens, temperature, exit_threshold,
 * seed, stop, model]) -> the continuation of prompt as raw text;
 * ouro_generate_detail(same arguments) -> JSON with the text, its token count
 * and the loop step each token used (result_detail). */
static void generate_common(sqlite3_context *ctx, int argc, sqlite3_value **argv, bool detail)
{
    conn_state *c = sqlite3_user_data(ctx);
    if (arg_is_null(argc, argv, 0))
        return;                                  /* NULL prompt, NULL result */
    gen_args a;
    if (!gen_args_parse(ctx, c, argc, argv, 1, &a)) {
        gen_args_clear(&a);
        return;
    }
    char *msg;
    cache_entry *e = conn_model(c, a.model, &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        gen_args_clear(&a);
        return;
    }
    const char *prompt = (const char *)sqlite3_value_text(argv[0]);
    if (!prompt) {
        sqlite3_result_error_nomem(ctx);
        gen_args_clear(&a);
        return;
    }
    generate_text(ctx, c, e, prompt, sqlite3_value_bytes(argv[0]), &a, detail);
    gen_args_clear(&a);
}

static void fn_generate(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    generate_common(ctx, argc, argv, false);
}

static void fn_generate_detail(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    generate_common(ctx, argc, argv, true);
}

/* ouro_chat(message [, system, max_loops, max_tokens, temperature,
 * exit_threshold, seed, stop, model]) -> the assistant's reply to message,
 * rendered with the model's chat template. */
static void fn_chat(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    conn_state *c = sqlite3_user_data(ctx);
    if (arg_is_null(argc, argv, 0))
        return;
    gen_args a;
    if (!gen_args_parse(ctx, c, argc, argv, 2, &a)) {
        gen_args_clear(&a);
        return;
    }
    char *msg;
    cache_entry *e = conn_model(c, a.model, &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        gen_args_clear(&a);
        return;
    }
    const ouro_tokenizer *tok = ouro_model_tokenizer(e->model);
    if (!tok) {
        result_errorf(ctx, "ouro: model '%s' has no tokenizer.json", e->path);
        gen_args_clear(&a);
        return;
    }
    ouro_chat_message msgs[2];
    size_t n_msgs = 0;
    const char *system = arg_text(argc, argv, 1);
    if (system)
        msgs[n_msgs++] = (ouro_chat_message){"system", system};
    msgs[n_msgs++] = (ouro_chat_message){"user", (const char *)sqlite3_value_text(argv[0])};
    if (!msgs[n_msgs - 1].content) {
        sqlite3_result_error_nomem(ctx);
        gen_args_clear(&a);
        return;
    }
    char *text = NULL;           /* rendered prompt, malloc'd by the core */
    ouro_error err = {0};
    ouro_status st = ouro_chat_render(tok, msgs, n_msgs, true, &text, &err);
    if (st != OURO_OK) {
        result_ouro_error(ctx, st, &err);
        gen_args_clear(&a);
        return;
    }
    size_t len = strlen(text);
    if (len > INT_MAX)
        result_errorf(ctx, "ouro: the message is too long");
    else
        generate_text(ctx, c, e, text, (int)len, &a, false);
    ouro_free(text);
    gen_args_clear(&a);
}

/* Sets a JSON array result of n items: items[i] as a JSON string, or with
 * `raw` as JSON text inserted as it is; NULL gives null. */
static void result_json_array(sqlite3_context *ctx, int n, char *const *items, bool raw)
{
    sqlite3_str *out = sqlite3_str_new(NULL);
    sqlite3_str_appendchar(out, 1, '[');
    for (int i = 0; i < n; i++) {
        if (i)
            sqlite3_str_appendchar(out, 1, ',');
        if (!items[i]) {
            sqlite3_str_appendall(out, "null");
        } else if (raw) {
            sqlite3_str_appendall(out, items[i]);
        } else {
            char *q = cJSON_PrintUnformatted(&(cJSON){ .type = cJSON_String, .valuestring = items[i] });
            if (!q) {
                sqlite3_free(sqlite3_str_finish(out));
                sqlite3_result_error_nomem(ctx);
                return;
            }
            sqlite3_str_appendall(out, q);
            cJSON_free(q);
        }
    }
    sqlite3_str_appendchar(out, 1, ']');
    if (sqlite3_str_errcode(out) != SQLITE_OK) {
        sqlite3_free(sqlite3_str_finish(out));
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, sqlite3_str_finish(out), -1, sqlite3_free);
}

/* ouro_generate_batch(prompts [, max_loops, max_tokens, temperature,
 * exit_threshold, seed, stop, model]) -> JSON array: item i is
 * ouro_generate(prompts[i], ...) with the same options (null for a null
 * item).  `prompts` is a JSON array of strings or nulls; '[]' gives '[]'.
 * The prompts run together in one batched decode, batch_size sequences at
 * a time (ouro_setting('batch_size')); every text equals the per-row one.
 * An item that cannot run (no tokens, longer than the context) fails the
 * call with an error naming the item (counted from 1), or under
 * ouro_setting('on_error', 'null') gives null alone. */
static void fn_generate_batch(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    conn_state *c = sqlite3_user_data(ctx);
    if (arg_is_null(argc, argv, 0))
        return;
    gen_args a;
    const char **prompts = NULL;     /* (n) borrowed from json */
    int n = 0, n_run = 0;
    cJSON *json = NULL;
    int32_t **ids = NULL;            /* (n) malloc'd by the core, or NULL */
    int *lens = NULL;                /* (n) */
    const int32_t **run_ids = NULL;  /* (n_run) the prompts that run */
    int *run_lens = NULL;            /* (n_run) */
    int *run_item = NULL;            /* (n_run) item of each prompt that runs */
    ouro_gen_result *res = NULL;     /* (n_run) */
    char **texts = NULL;             /* (n) borrowed from res, NULL for a null item */
    bool have_res = false;
    if (!gen_args_parse(ctx, c, argc, argv, 1, &a))
        goto done;
    json = arg_batch_array(ctx, argv[0], "prompts", &prompts, &n);
    if (!json)
        goto done;
    if (n == 0) {
        sqlite3_result_text(ctx, "[]", 2, SQLITE_STATIC);
        goto done;
    }
    char *msg;
    cache_entry *e = conn_model(c, a.model, &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        goto done;
    }
    ids = sqlite3_malloc64((sqlite3_uint64)n * sizeof *ids);
    lens = sqlite3_malloc64((sqlite3_uint64)n * sizeof *lens);
    run_ids = sqlite3_malloc64((sqlite3_uint64)n * sizeof *run_ids);
    run_lens = sqlite3_malloc64((sqlite3_uint64)n * sizeof *run_lens);
    run_item = sqlite3_malloc64((sqlite3_uint64)n * sizeof *run_item);
    res = sqlite3_malloc64((sqlite3_uint64)n * sizeof *res);
    texts = sqlite3_malloc64((sqlite3_uint64)n * sizeof *texts);
    if (!ids || !lens || !run_ids || !run_lens || !run_item || !res || !texts) {
        sqlite3_result_error_nomem(ctx);
        goto done;
    }
    memset(ids, 0, (size_t)n * sizeof *ids);
    memset(texts, 0, (size_t)n * sizeof *texts);

    /* every prompt checked as ouro_generate checks it, before any runs */
    int limit = ctx_limit(c, e->model), longest = 0;
    for (int i = 0; i < n; i++) {
        lens[i] = 0;
        if (!prompts[i])
            continue;
        if (!encode(ctx, e, prompts[i], (int)strlen(prompts[i]), &ids[i], &lens[i]))
            goto done;
        if (lens[i] == 0) {
            if (item_error(ctx, c, "ouro: item %d of prompts: the prompt has no tokens",
                           i + OURO_ITEM_BASE))
                continue;
            goto done;
        }
        if (lens[i] >= limit) {
            if (item_error(ctx, c, "ouro: item %d of prompts: the prompt is too long: it is %d "
                           "tokens; the context holds %d tokens (prompt and reply)",
                           i + OURO_ITEM_BASE, lens[i], limit))
                continue;
            goto done;
        }
        run_item[n_run] = i;
        run_ids[n_run] = ids[i];
        run_lens[n_run++] = lens[i];
        longest = lens[i] > longest ? lens[i] : longest;
    }
    if (n_run > 0) {
        /* Room for the longest prompt and its reply (a reply ends where the
         * context ends, as in ouro_generate: the core caps each request at
         * the session's context). */
        int need = a.max_tokens < limit - longest ? longest + (int)a.max_tokens : limit;
        ouro_error err = {0};
        ouro_session *s = conn_session(c, e, (int)a.max_loops, need,
                                       ouro_batch_seqs(c->batch_size, n_run), true, &err);
        if (!s) {
            if (err.status == OURO_ERR_UNSUPPORTED && c->kv != OURO_KV_PER_STEP)
                result_errorf(ctx, "ouro: %s (SELECT ouro_setting('kv_cache', 'per-step') uses the "
                              "upstream cache)", err.message);
            else if (err.status == OURO_ERR_NOMEM)
                result_errorf(ctx, "ouro: %s (a smaller ouro_setting('batch_size', n) needs less "
                              "memory)", err.message);
            else
                result_ouro_error(ctx, err.status, &err);
            goto done;
        }
        ouro_gen_params p;
        gen_params_fill(c, &a, (int)a.max_tokens, &p);
        ouro_status st = ouro_generate(s, n_run, run_ids, run_lens, &p, res, &err);
        if (st == OURO_ERR_UNSUPPORTED && p.depth == OURO_DEPTH_ADAPTIVE) {
            result_errorf(ctx, "ouro: %s (SELECT ouro_setting('depth', 'full') runs every loop step "
                          "for every token)", err.message);
            goto done;
        }
        if (st != OURO_OK) {
            /* bad input under on_error = null: every item null */
            if ((st == OURO_ERR_ARG || st == OURO_ERR_CONTEXT) &&
                item_error(ctx, c, "ouro: %s", err.message))
                n_run = 0;
            else {
                result_ouro_error(ctx, st, &err);
                goto done;
            }
        }
        have_res = n_run > 0;
    }
    for (int r = 0; have_res && r < n_run; r++)
        texts[run_item[r]] = res[r].text ? res[r].text : "";
    result_json_array(ctx, n, texts, false);
done:
    if (have_res)
        for (int r = 0; r < n_run; r++)
            ouro_gen_result_clear(&res[r]);
    if (ids)
        for (int i = 0; i < n; i++)
            ouro_free(ids[i]);
    sqlite3_free(ids);
    sqlite3_free(lens);
    sqlite3_free((void *)run_ids);
    sqlite3_free(run_lens);
    sqlite3_free(run_item);
    sqlite3_free(res);
    sqlite3_free(texts);
    sqlite3_free((void *)prompts);
    cJSON_Delete(json);
    gen_args_clear(&a);
}

/* ========================================================================
 * ouro_classify, ouro_classify_scores
 * ======================================================================== */

/* Scores labels for the n_inputs inputs (none NULL, each known to fit) in a
 * session of `need` tokens and at least n_seq sequences; on success fills
 * probs (n_inputs, n_labels) and returns 1; returns 0 after setting an
 * error, -1 for bad input under on_error = null (the result set to NULL). */
static int classify_run(sqlite3_context *ctx, conn_state *c, cache_entry *e, int n_inputs,
                         const char *const *inputs, const char *const *labels, int n_labels,
                         const char *instruction, int max_loops, int need, int n_seq, double *probs)
{
    ouro_exit exit_rule = {OURO_EXIT_DEFAULT, 0, 0};
    ouro_error err = {0};
    ouro_session *s = conn_session(c, e, max_loops, need, n_seq, false, &err);
    if (!s) {
        if (err.status == OURO_ERR_NOMEM && n_seq > 1)
            result_errorf(ctx, "ouro: %s (a smaller ouro_setting('batch_size', n) needs less "
                          "memory)", err.message);
        else
            result_ouro_error(ctx, err.status, &err);
        return 0;
    }
    ouro_status st = ouro_classify_batch(s, n_inputs, inputs, labels, n_labels, instruction,
                                         &exit_rule, probs, NULL, conn_cancel, c, &err);
    if (st != OURO_OK) {
        row_ouro_error(ctx, c, st, &err);
        return (st == OURO_ERR_ARG || st == OURO_ERR_CONTEXT) && c->on_error == OURO_ON_ERROR_NULL
               ? -1 : 0;
    }
    return 1;
}

/* Scores labels for input; on success fills probs (n_labels) and returns
 * true, else sets an error.  Arguments: input, labels, instruction,
 * max_loops, model. */
static bool classify(sqlite3_context *ctx, int argc, sqlite3_value **argv, cJSON **labels_json,
                     const char ***labels, int *n_labels, double **probs)
{
    conn_state *c = sqlite3_user_data(ctx);
    *labels_json = NULL;
    *labels = NULL;
    *probs = NULL;
    sqlite3_int64 max_loops = c->max_loops;
    if (!arg_int(ctx, argc, argv, 3, OURO_P_MAX_LOOPS, false, &max_loops))
        return false;
    *labels_json = arg_string_array(ctx, argv[1], OURO_P_LABELS, labels, n_labels);
    if (!*labels_json)
        return false;
    const char *input = (const char *)sqlite3_value_text(argv[0]);
    const char *instruction = arg_text(argc, argv, 2);
    char *msg;
    cache_entry *e = conn_model(c, arg_text(argc, argv, 4), &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        return false;
    }
    if (!input) {
        sqlite3_result_error_nomem(ctx);
        return false;
    }
    *probs = sqlite3_malloc64((sqlite3_uint64)*n_labels * sizeof **probs);
    if (!*probs) {
        sqlite3_result_error_nomem(ctx);
        return false;
    }
    /* the core's exact context for this prompt */
    int need = 0;
    ouro_error err = {0};
    ouro_status st = ouro_classify_n_ctx(e->model, 1, &input, *labels, *n_labels, instruction, NULL,
                                         &need, &err);
    if (st != OURO_OK) {
        row_ouro_error(ctx, c, st, &err);
        return false;
    }
    int limit = ctx_limit(c, e->model);
    if (need > limit) {
        row_error(ctx, c, "ouro: the classification prompt is too long: it is %d tokens; the "
                  "context holds %d tokens", need, limit);
        return false;
    }
    return classify_run(ctx, c, e, 1, &input, *labels, *n_labels, instruction, (int)max_loops, need,
                        1, *probs) == 1;
}

/* JSON object {"label": probability, ...} in the order of labels
 * (cJSON_malloc'd; cJSON_free), or NULL when out of memory. */
static char *scores_json(const char *const *labels, int n, const double *probs)
{
    cJSON *obj = cJSON_CreateObject();
    bool ok = obj != NULL;
    for (int i = 0; ok && i < n; i++)
        ok = cJSON_AddNumberToObject(obj, labels[i], probs[i]) != NULL;
    char *out = ok ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    return out;
}

/* ouro_classify(input, labels [, instruction, max_loops, model]) -> the label
 * with the highest probability (the first of equals). */
static void fn_classify(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    if (arg_is_null(argc, argv, 0) || arg_is_null(argc, argv, 1))
        return;
    cJSON *json;
    const char **labels;
    int n = 0;
    double *probs;
    if (classify(ctx, argc, argv, &json, &labels, &n, &probs)) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (probs[i] > probs[best])
                best = i;
        sqlite3_result_text(ctx, labels[best], -1, SQLITE_TRANSIENT);
    }
    sqlite3_free(probs);
    sqlite3_free((void *)labels);
    cJSON_Delete(json);
}

/* ouro_classify_scores(input, labels [, instruction, max_loops, model]) ->
 * JSON object {"label": probability, ...} in the order of labels. */
static void fn_classify_scores(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    if (arg_is_null(argc, argv, 0) || arg_is_null(argc, argv, 1))
        return;
    cJSON *json;
    const char **labels;
    int n = 0;
    double *probs;
    if (classify(ctx, argc, argv, &json, &labels, &n, &probs)) {
        char *out = scores_json(labels, n, probs);
        if (out)
            sqlite3_result_text(ctx, out, -1, cJSON_free);
        else
            sqlite3_result_error_nomem(ctx);
    }
    sqlite3_free(probs);
    sqlite3_free((void *)labels);
    cJSON_Delete(json);
}

/* ouro_classify_batch(inputs, labels [, instruction, max_loops, model]) and
 * ouro_classify_scores_batch(same) -> JSON array: item i is
 * ouro_classify(inputs[i], ...) (a label) or ouro_classify_scores(inputs[i],
 * ...) (an object), null for a null item; `inputs` is a JSON array of strings
 * or nulls, '[]' gives '[]'; NULL inputs or labels give NULL.  The prompt
 * tokens the inputs share (template, instruction, label list) are computed
 * once, and max(batch_size, labels + 1) sequences run inputs together;
 * every result equals the per-row one. */
static void classify_batch_common(sqlite3_context *ctx, int argc, sqlite3_value **argv, bool scores)
{
    conn_state *c = sqlite3_user_data(ctx);
    if (arg_is_null(argc, argv, 0) || arg_is_null(argc, argv, 1))
        return;
    const char **inputs = NULL;      /* (n) borrowed from json */
    const char **run = NULL;         /* (n_run) the non-null inputs */
    const char **labels = NULL;      /* (n_labels) borrowed from labels_json */
    int n = 0, n_run = 0, n_labels = 0;
    cJSON *json = NULL, *labels_json = NULL;
    double *probs = NULL;            /* (n_run, n_labels) */
    char **items = NULL;             /* (n) results as JSON text (cJSON_malloc'd) or labels */
    int *run_item = NULL;            /* (n) item of each input in run */
    int *need = NULL;                /* (n) context each input needs */
    sqlite3_int64 max_loops = c->max_loops;
    if (!arg_int(ctx, argc, argv, 3, OURO_P_MAX_LOOPS, false, &max_loops))
        return;
    labels_json = arg_string_array(ctx, argv[1], OURO_P_LABELS, &labels, &n_labels);
    if (!labels_json)
        goto done;
    json = arg_batch_array(ctx, argv[0], "inputs", &inputs, &n);
    if (!json)
        goto done;
    if (n == 0) {
        sqlite3_result_text(ctx, "[]", 2, SQLITE_STATIC);
        goto done;
    }
    char *msg;
    cache_entry *e = conn_model(c, arg_text(argc, argv, 4), &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        goto done;
    }
    run = sqlite3_malloc64((sqlite3_uint64)n * sizeof *run);
    items = sqlite3_malloc64((sqlite3_uint64)n * sizeof *items);
    run_item = sqlite3_malloc64((sqlite3_uint64)n * sizeof *run_item);
    need = sqlite3_malloc64((sqlite3_uint64)n * sizeof *need);
    if (!run || !items || !run_item || !need) {
        sqlite3_result_error_nomem(ctx);
        goto done;
    }
    memset(items, 0, (size_t)n * sizeof *items);
    int n_in = 0;
    for (int i = 0; i < n; i++)
        if (inputs[i]) {
            run[n_in] = inputs[i];
            run_item[n_in++] = i;
        }
    const char *instruction = arg_text(argc, argv, 2);
    if (n_in > 0) {
        /* the core's exact context for every input: too long is a bad item */
        int max_need = 0, limit = ctx_limit(c, e->model);
        ouro_error err = {0};
        ouro_status st = ouro_classify_n_ctx(e->model, n_in, run, labels, n_labels, instruction,
                                             need, &max_need, &err);
        if (st != OURO_OK) {
            if ((st == OURO_ERR_ARG || st == OURO_ERR_CONTEXT) &&
                item_error(ctx, c, "ouro: %s", err.message))
                n_in = 0;        /* on_error = null: every item null */
            else {
                if (st != OURO_ERR_ARG && st != OURO_ERR_CONTEXT)
                    result_ouro_error(ctx, st, &err);
                goto done;
            }
        }
        max_need = 0;
        for (int k = 0; k < n_in; k++) {
            if (need[k] > limit) {
                if (item_error(ctx, c, "ouro: item %d of inputs: the classification prompt is too "
                               "long: it is %d tokens; the context holds %d tokens",
                               run_item[k] + OURO_ITEM_BASE, need[k], limit))
                    continue;
                goto done;
            }
            max_need = need[k] > max_need ? need[k] : max_need;
            run[n_run] = run[k];
            run_item[n_run++] = run_item[k];
        }
        if (n_run > 0) {
            probs = sqlite3_malloc64((sqlite3_uint64)n_run * (sqlite3_uint64)n_labels * sizeof *probs);
            if (!probs) {
                sqlite3_result_error_nomem(ctx);
                goto done;
            }
            int ok = classify_run(ctx, c, e, n_run, run, labels, n_labels, instruction,
                                  (int)max_loops, max_need,
                                  ouro_classify_seqs(c->batch_size, n_labels, n_run), probs);
            if (ok == 0)
                goto done;
            if (ok < 0)
                n_run = 0;       /* bad input under on_error = null: every item null */
        }
    }
    for (int r = 0; r < n_run; r++) {
        int i = run_item[r];
        const double *p = probs + (size_t)r * n_labels;
        if (scores) {
            if (!(items[i] = scores_json(labels, n_labels, p))) {
                sqlite3_result_error_nomem(ctx);
                goto done;
            }
        } else {
            int best = 0;
            for (int j = 1; j < n_labels; j++)
                if (p[j] > p[best])
                    best = j;
            items[i] = (char *)labels[best];
        }
    }
    result_json_array(ctx, n, items, scores);
done:
    if (items && scores)
        for (int i = 0; i < n; i++)
            cJSON_free(items[i]);
    sqlite3_free(items);
    sqlite3_free(probs);
    sqlite3_free((void *)run);
    sqlite3_free(run_item);
    sqlite3_free(need);
    sqlite3_free((void *)inputs);
    sqlite3_free((void *)labels);
    cJSON_Delete(json);
    cJSON_Delete(labels_json);
}

static void fn_classify_batch(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    classify_batch_common(ctx, argc, argv, false);
}

static void fn_classify_scores_batch(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    classify_batch_common(ctx, argc, argv, true);
}

/* ========================================================================
 * ouro_depth
 * ======================================================================== */

/* ouro_depth(input [, exit_threshold, model]) -> the mean over input's tokens
 * of the expected exit step (with exit_threshold: of the Q-exit step); NULL
 * for NULL input or input without tokens. */
static void fn_depth(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    conn_state *c = sqlite3_user_data(ctx);
    if (arg_is_null(argc, argv, 0))
        return;
    double threshold = -1;
    if (!arg_double(ctx, argc, argv, 1, OURO_P_EXIT_THRESHOLD, false, &threshold))
        return;
    bool has_threshold = !arg_is_null(argc, argv, 1);
    char *msg;
    cache_entry *e = conn_model(c, arg_text(argc, argv, 2), &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        return;
    }
    const char *input = (const char *)sqlite3_value_text(argv[0]);
    if (!input) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    int32_t *ids = NULL;
    int n = 0;
    if (!encode(ctx, e, input, sqlite3_value_bytes(argv[0]), &ids, &n))
        return;
    int limit = ctx_limit(c, e->model);
    double *expected = NULL;     /* (n) sqlite3_malloc'd */
    int32_t *step = NULL;        /* (n) sqlite3_malloc'd */
    if (n == 0)
        goto done;
    if (n > limit) {
        row_error(ctx, c, "ouro: the input is too long: it is %d tokens; the context holds %d "
                  "tokens", n, limit);
        goto done;
    }
    expected = sqlite3_malloc64((sqlite3_uint64)n * sizeof *expected);
    step = sqlite3_malloc64((sqlite3_uint64)n * sizeof *step);
    if (!expected || !step) {
        sqlite3_result_error_nomem(ctx);
        goto done;
    }
    ouro_error err = {0};
    ouro_session *s = conn_session(c, e, 0, n, 1, false, &err);
    if (!s) {
        result_ouro_error(ctx, err.status, &err);
        goto done;
    }
    ouro_status st = ouro_depth(s, ids, n, has_threshold ? (float)threshold : -1.0f, NULL, expected,
                                step, conn_cancel, c, &err);
    if (st != OURO_OK) {
        result_ouro_error(ctx, st, &err);
        goto done;
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += has_threshold ? (double)step[i] : expected[i];
    sqlite3_result_double(ctx, sum / n);
done:
    sqlite3_free(expected);
    sqlite3_free(step);
    ouro_free(ids);
}

/* ouro_depth_batch(inputs [, exit_threshold, model]) -> JSON array: item i is
 * ouro_depth(inputs[i], ...), null for a null item or one without tokens;
 * `inputs` is a JSON array of strings or nulls, '[]' gives '[]', NULL inputs
 * NULL.  The inputs run together, batch_size at a time, each as a sequence of
 * one forward pass; every value equals the per-row one.  An input too long
 * for the context is an error naming the item (a null item under on_error
 * 'null'). */
static void fn_depth_batch(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    conn_state *c = sqlite3_user_data(ctx);
    if (arg_is_null(argc, argv, 0))
        return;
    double threshold = -1;
    if (!arg_double(ctx, argc, argv, 1, OURO_P_EXIT_THRESHOLD, false, &threshold))
        return;
    bool has_threshold = !arg_is_null(argc, argv, 1);
    const char **inputs = NULL;      /* (n) borrowed from json */
    int n = 0, n_run = 0, need = 1;
    int32_t **ids = NULL;            /* (n) ouro_malloc'd, the run's first n_run */
    int *n_ids = NULL;               /* (n) */
    int *run_item = NULL;            /* (n) item of each input in the run */
    char **items = NULL;             /* (n) results as JSON numbers (cJSON_malloc'd) */
    double *expected = NULL;         /* (total) */
    int32_t *step = NULL;            /* (total) */
    cJSON *json = arg_batch_array(ctx, argv[0], "inputs", &inputs, &n);
    if (!json)
        return;
    if (n == 0) {
        sqlite3_result_text(ctx, "[]", 2, SQLITE_STATIC);
        goto done;
    }
    char *msg;
    cache_entry *e = conn_model(c, arg_text(argc, argv, 2), &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        goto done;
    }
    ids = sqlite3_malloc64((sqlite3_uint64)n * sizeof *ids);
    n_ids = sqlite3_malloc64((sqlite3_uint64)n * sizeof *n_ids);
    run_item = sqlite3_malloc64((sqlite3_uint64)n * sizeof *run_item);
    items = sqlite3_malloc64((sqlite3_uint64)n * sizeof *items);
    if (!ids || !n_ids || !run_item || !items) {
        sqlite3_result_error_nomem(ctx);
        goto done;
    }
    memset(items, 0, (size_t)n * sizeof *items);
    int limit = ctx_limit(c, e->model);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!inputs[i])
            continue;
        int32_t *t = NULL;
        int nt = 0;
        if (!encode(ctx, e, inputs[i], (int)strlen(inputs[i]), &t, &nt))
            goto done;
        if (nt == 0 || nt > limit) {
            ouro_free(t);
            if (nt > limit && !item_error(ctx, c, "ouro: item %d of inputs: the input is too long: "
                                          "it is %d tokens; the context holds %d tokens",
                                          i + OURO_ITEM_BASE, nt, limit))
                goto done;
            continue;
        }
        ids[n_run] = t;
        n_ids[n_run] = nt;
        run_item[n_run++] = i;
        need = nt > need ? nt : need;
        total += (size_t)nt;
    }
    if (n_run > 0) {
        expected = sqlite3_malloc64(total * sizeof *expected);
        step = sqlite3_malloc64(total * sizeof *step);
        if (!expected || !step) {
            sqlite3_result_error_nomem(ctx);
            goto done;
        }
        ouro_error err = {0};
        int n_seq = c->batch_size < n_run ? c->batch_size : n_run;
        ouro_session *s = conn_session(c, e, 0, need, n_seq, false, &err);
        if (!s) {
            if (err.status == OURO_ERR_NOMEM && n_seq > 1)
                result_errorf(ctx, "ouro: %s (a smaller ouro_setting('batch_size', n) needs less "
                              "memory)", err.message);
            else
                result_ouro_error(ctx, err.status, &err);
            goto done;
        }
        ouro_status st = ouro_depth_batch(s, n_run, (const int32_t *const *)ids, n_ids,
                                          has_threshold ? (float)threshold : -1.0f, NULL, expected,
                                          step, conn_cancel, c, &err);
        if (st != OURO_OK) {
            result_ouro_error(ctx, st, &err);
            goto done;
        }
        for (int k = 0, at = 0; k < n_run; at += n_ids[k], k++) {
            double sum = 0;
            for (int j = at; j < at + n_ids[k]; j++)
                sum += has_threshold ? (double)step[j] : expected[j];
            cJSON num = { .type = cJSON_Number, .valuedouble = sum / n_ids[k] };
            if (!(items[run_item[k]] = cJSON_PrintUnformatted(&num))) {
                sqlite3_result_error_nomem(ctx);
                goto done;
            }
        }
    }
    result_json_array(ctx, n, items, true);
done:
    for (int k = 0; ids && k < n_run; k++)
        ouro_free(ids[k]);
    for (int i = 0; items && i < n; i++)
        cJSON_free(items[i]);
    sqlite3_free(ids);
    sqlite3_free(n_ids);
    sqlite3_free(run_item);
    sqlite3_free(items);
    sqlite3_free(expected);
    sqlite3_free(step);
    sqlite3_free((void *)inputs);
    cJSON_Delete(json);
}

/* ========================================================================
 * Tokenizer: ouro_tokenize, ouro_detokenize, ouro_token_count
 * ======================================================================== */

/* Resolves the model named by argument i and encodes argument 0. */
static bool encode_arg(sqlite3_context *ctx, int argc, sqlite3_value **argv, int model_arg,
                       int32_t **ids, int *n)
{
    conn_state *c = sqlite3_user_data(ctx);
    char *msg;
    cache_entry *e = conn_model(c, arg_text(argc, argv, model_arg), &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        return false;
    }
    const char *text = (const char *)sqlite3_value_text(argv[0]);
    if (!text) {
        sqlite3_result_error_nomem(ctx);
        return false;
    }
    return encode(ctx, e, text, sqlite3_value_bytes(argv[0]), ids, n);
}

/* ouro_tokenize(text [, model]) -> JSON array of token ids. */
static void fn_tokenize(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    if (arg_is_null(argc, argv, 0))
        return;
    int32_t *ids;
    int n;
    if (!encode_arg(ctx, argc, argv, 1, &ids, &n))
        return;
    sqlite3_str *out = sqlite3_str_new(NULL);
    sqlite3_str_appendchar(out, 1, '[');
    for (int i = 0; i < n; i++)
        sqlite3_str_appendf(out, i ? ",%d" : "%d", (int)ids[i]);
    sqlite3_str_appendchar(out, 1, ']');
    ouro_free(ids);
    if (sqlite3_str_errcode(out) != SQLITE_OK) {
        sqlite3_free(sqlite3_str_finish(out));
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, sqlite3_str_finish(out), -1, sqlite3_free);
}

/* ouro_token_count(text [, model]) -> number of tokens of text. */
static void fn_token_count(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    if (arg_is_null(argc, argv, 0))
        return;
    int32_t *ids;
    int n;
    if (!encode_arg(ctx, argc, argv, 1, &ids, &n))
        return;
    ouro_free(ids);
    sqlite3_result_int(ctx, n);
}

/* ouro_detokenize(ids_json [, model]) -> text of a JSON array of token ids
 * (special tokens kept, so it inverts ouro_tokenize). */
static void fn_detokenize(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    conn_state *c = sqlite3_user_data(ctx);
    if (arg_is_null(argc, argv, 0))
        return;
    char *msg;
    cache_entry *e = conn_model(c, arg_text(argc, argv, 1), &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        return;
    }
    const ouro_tokenizer *tok = ouro_model_tokenizer(e->model);
    if (!tok) {
        result_errorf(ctx, "ouro: model '%s' has no tokenizer.json", e->path);
        return;
    }
    const char *json = (const char *)sqlite3_value_text(argv[0]);
    if (!json) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    cJSON *root = cJSON_ParseWithLength(json, (size_t)sqlite3_value_bytes(argv[0]));
    int count = root && cJSON_IsArray(root) ? cJSON_GetArraySize(root) : -1;
    int vocab = ouro_tokenizer_vocab_size(tok);
    int32_t *ids = NULL;         /* (count) sqlite3_malloc'd */
    if (count < 0) {
        result_errorf(ctx, "ouro: ids must be a JSON array of token ids, e.g. '[1, 2, 3]'");
        goto done;
    }
    ids = sqlite3_malloc64((sqlite3_uint64)(count ? count : 1) * sizeof *ids);
    if (!ids) {
        sqlite3_result_error_nomem(ctx);
        goto done;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        double d = cJSON_IsNumber(item) ? item->valuedouble : 0.5;
        if (d != floor(d)) {
            result_errorf(ctx, "ouro: item %d of ids is not an integer", i + OURO_ITEM_BASE);
            goto done;
        }
        if (d < 0 || d >= vocab) {
            row_error(ctx, c, "ouro: token id %.0f is out of range: item %d is not between 0 and "
                      "%d, the model's vocabulary", d, i + OURO_ITEM_BASE, vocab - 1);
            goto done;
        }
        ids[i++] = (int32_t)d;
    }
    char *text = NULL;
    size_t len = 0;
    ouro_error err = {0};
    ouro_status st = ouro_tokenizer_decode(tok, ids, (size_t)count, false, &text, &len, &err);
    if (st != OURO_OK)
        result_ouro_error(ctx, st, &err);
    else
        sqlite3_result_text64(ctx, text, len, SQLITE_TRANSIENT, SQLITE_UTF8);
    ouro_free(text);
done:
    sqlite3_free(ids);
    cJSON_Delete(root);
}

/* ========================================================================
 * ouro_setting: the connection's settings
 * ======================================================================== */

/* Current value of a setting as text (sqlite3_malloc'd); NULL when out of memory. */
static char *setting_value(conn_state *c, ouro_param_id id)
{
    const ouro_param *p = &ouro_params[id];
    void *v = conn_setting(c, id);
    if (p->kind == OURO_PARAM_REAL)
        return sqlite3_mprintf("%g", *(double *)v);
    if (p->kind == OURO_PARAM_ENUM)
        return sqlite3_mprintf("%s", enum_name(id, *(int *)v));
    return sqlite3_mprintf("%d", *(int *)v);
}

/* The names of SQLite's settings: "threads, max_tokens, ... and batch_size" (static). */
static const char *setting_names(void)
{
    static char buf[256];
    if (!buf[0]) {
        size_t used = 0;
        int n = 0, total = 0;
        for (int i = 0; i < OURO_P_COUNT; i++)
            total += (ouro_params[i].flags & OURO_PARAM_SETTING) &&
                     !(ouro_params[i].flags & OURO_PARAM_PG_ONLY);
        for (int i = 0; i < OURO_P_COUNT && used < sizeof buf; i++) {
            if (!(ouro_params[i].flags & OURO_PARAM_SETTING) || (ouro_params[i].flags & OURO_PARAM_PG_ONLY))
                continue;
            n++;
            used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s",
                                     n == 1 ? "" : n == total ? " and " : ", ", ouro_params[i].name);
        }
    }
    return buf;
}

/* ouro_setting(name) -> the connection's value of a setting, as text.
 * ouro_setting(name, value) sets it (NULL = back to its default) and returns
 * the new value.  The settings are those of PostgreSQL's ouro.* (an "ouro."
 * prefix is accepted) but PostgreSQL's own (model_path, auto_batch,
 * progress_notice_interval and the limit_* ceilings: naming one is an error
 * that gives SQLite's equivalent, if any): names, defaults, ranges and
 * values come from the core's table (core/ouro_surface.h), and what each
 * does is the same in both databases:
 *   threads, max_tokens, max_loops (0 = the model's), exit_threshold (-1 =
 *   the model's rule), context_length, on_error (error | null), depth
 *   (adaptive | full), kv_cache (per-step | last | avg), kv_type (f32 |
 *   f16), precision (auto | exact | bf16), batch_size; and two of SQLite alone:
 *   timeout_ms 0 (default, none) .. 2^31-1: the most wall time one call may
 *             run; the core checks it between layers, so a call ends within
 *             one layer's work after it (the way to bound a call on SQLite
 *             3.40, which gives functions no view of sqlite3_interrupt)
 *   memory_limit 16 .. 2^30 MiB (default: a quarter of the machine's memory):
 *             the most one call may allocate, KV cache, logits and scratch
 *             together, checked before allocating
 * max_tokens, max_loops and exit_threshold are what a NULL argument means.
 * Setting a value is refused outside the application's own SELECT (see
 * app_statement_only). */
static void fn_setting(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    conn_state *c = sqlite3_user_data(ctx);
    const char *name = arg_text(argc, argv, 0);
    if (!name) {
        result_errorf(ctx, "ouro: ouro_setting needs a setting name: %s", setting_names());
        return;
    }
    const ouro_param *p = ouro_param_find(name);
    ouro_param_id id = p ? (ouro_param_id)(p - ouro_params) : OURO_P_COUNT;
    void *v = p ? conn_setting(c, id) : NULL;
    if (!v && p && (p->flags & OURO_PARAM_PG_ONLY)) {
        const ouro_param *eq = ouro_param_find(p->equivalent);
        result_errorf(ctx, "ouro: %s is a setting of PostgreSQL only%s%s%s; the settings are %s",
                      p->name, eq ? " (here: " : "", eq ? eq->name : "", eq ? ")" : "",
                      setting_names());
        return;
    }
    if (!v) {
        result_errorf(ctx, "ouro: unknown setting '%s'; the settings are %s", name, setting_names());
        return;
    }
    if (argc == 2 && !app_statement_only(ctx, "ouro_setting(name, value)"))
        return;
    if (argc == 2) {
        if (arg_is_null(argc, argv, 1)) {
            conn_setting_reset(c, id);
        } else if (p->kind == OURO_PARAM_ENUM) {
            const char *t = (const char *)sqlite3_value_text(argv[1]);
            if (!t) {
                sqlite3_result_error_nomem(ctx);
                return;
            }
            int e = ouro_param_enum_value(p, t);
            if (e < 0) {
                result_errorf(ctx, "ouro: %s must be %s, not '%s'", p->name, ouro_param_enum_list(p), t);
                return;
            }
            *(int *)v = e;
        } else if (p->kind == OURO_PARAM_REAL) {
            if (!arg_double(ctx, argc, argv, 1, id, true, (double *)v))
                return;
        } else {
            sqlite3_int64 n = 0;
            if (!arg_int(ctx, argc, argv, 1, id, true, &n))
                return;
            *(int *)v = (int)n;
        }
    }
    char *out = setting_value(c, id);
    if (!out) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, out, -1, sqlite3_free);
}

/* ========================================================================
 * ouro_model_info, ouro_version, ouro_build_info
 * ======================================================================== */

/* ouro_model_info([model]) -> JSON: the core's description of the model
 * (config, parameters, dtypes, file and mapped bytes) plus "path",
 * "loaded_in_process" (always true here: SQLite names only loaded models),
 * "references" (holders in this process), "session_kv_bytes" (this
 * connection's KV cache for the model, 0 when none) and "session_kv_type" /
 * "session_precision" (that session's kv_type and precision; null when
 * none).  The session is the last call's: a classification or depth call
 * leaves an exact one (f32, exact). */
static void fn_model_info(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    conn_state *c = sqlite3_user_data(ctx);
    char *msg;
    cache_entry *e = conn_model(c, arg_text(argc, argv, 0), &msg);
    if (!e) {
        result_errmsg(ctx, msg);
        return;
    }
    char *core = ouro_model_info_json(e->model);     /* malloc'd by the core */
    if (!core) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    cJSON *obj = cJSON_Parse(core);
    ouro_free(core);
    if (!obj || !cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        result_errorf(ctx, "ouro: the model description is not a JSON object");
        return;
    }
    bool mine = c->session && c->session_entry == e;
    double kv = mine ? (double)ouro_session_kv_bytes(c->session) : 0;
    /* the core's object has "path" already: each key once */
    bool ok = (cJSON_HasObjectItem(obj, "path") || cJSON_AddStringToObject(obj, "path", e->path)) &&
              cJSON_AddTrueToObject(obj, "loaded_in_process") &&
              cJSON_AddNumberToObject(obj, "references", model_cache_refs(e)) &&
              cJSON_AddNumberToObject(obj, "session_kv_bytes", kv) &&
              (mine ? cJSON_AddStringToObject(obj, "session_kv_type",
                                              enum_name(OURO_P_KV_TYPE, c->session_kv_type)) &&
                      cJSON_AddStringToObject(obj, "session_precision",
                                              enum_name(OURO_P_PRECISION, c->session_precision))
                    : cJSON_AddNullToObject(obj, "session_kv_type") &&
                      cJSON_AddNullToObject(obj, "session_precision"));
    char *out = ok ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!out) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, out, -1, cJSON_free);
}

/* ouro_version() -> "0.2.0". */
static void fn_version(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    (void)argv;
    sqlite3_result_text(ctx, ouro_version(), -1, SQLITE_STATIC);
}

/* ouro_build_info() -> JSON: the core's build (version, simd, openmp, blas,
 * threads) plus "sqlite": the SQLite versions at build and run time and
 * whether a running generation can see sqlite3_interrupt. */
static void fn_build_info(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    conn_state *c = sqlite3_user_data(ctx);
    (void)argc;
    (void)argv;
    cJSON *obj = cJSON_Parse(ouro_build_info());
    if (!obj || !cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        sqlite3_result_text(ctx, ouro_build_info(), -1, SQLITE_STATIC);
        return;
    }
    cJSON *sq = cJSON_AddObjectToObject(obj, "sqlite");
    bool ok = sq && cJSON_AddStringToObject(sq, "compiled", SQLITE_VERSION) &&
              cJSON_AddStringToObject(sq, "runtime", sqlite3_libversion()) &&
              cJSON_AddBoolToObject(sq, "interruptible", c->interrupt_check);
    char *out = ok ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!out) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, out, -1, cJSON_free);
}

/* ========================================================================
 * Registration
 * ======================================================================== */

#define F_MODEL  (SQLITE_UTF8)                      /* depends on a model: not deterministic */
#define F_LOAD   (SQLITE_UTF8 | SQLITE_DIRECTONLY)  /* opens files named in SQL, changes settings */
#define F_CONST  (SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS)

/* Every scalar function, registered once for each arity: n_min..n_max, or
 * (n_min < 0) from its number of required and of all arguments in the core's
 * table of the SQL surface (ouro_sql_functions). */
static const struct {
    const char *name;
    int n_min, n_max;
    int flags;
    void (*fn)(sqlite3_context *, int, sqlite3_value **);
} functions[] = {
    {"ouro_load",            -1, -1, F_LOAD,  fn_load},
    {"ouro_unload",          -1, -1, F_LOAD,  fn_unload},
    {"ouro_setting",          1,  1, F_MODEL, fn_setting},
    {"ouro_setting",          2,  2, F_LOAD,  fn_setting},
    {"ouro_generate",        -1, -1, F_MODEL, fn_generate},
    {"ouro_generate_detail", -1, -1, F_MODEL, fn_generate_detail},
    {"ouro_chat",            -1, -1, F_MODEL, fn_chat},
    {"ouro_classify",        -1, -1, F_MODEL, fn_classify},
    {"ouro_classify_scores", -1, -1, F_MODEL, fn_classify_scores},
    {"ouro_generate_batch",  -1, -1, F_MODEL, fn_generate_batch},
    {"ouro_classify_batch",  -1, -1, F_MODEL, fn_classify_batch},
    {"ouro_classify_scores_batch", -1, -1, F_MODEL, fn_classify_scores_batch},
    {"ouro_depth",           -1, -1, F_MODEL, fn_depth},
    {"ouro_depth_batch",     -1, -1, F_MODEL, fn_depth_batch},
    {"ouro_tokenize",        -1, -1, F_MODEL, fn_tokenize},
    {"ouro_detokenize",      -1, -1, F_MODEL, fn_detokenize},
    {"ouro_token_count",     -1, -1, F_MODEL, fn_token_count},
    {"ouro_model_info",      -1, -1, F_MODEL, fn_model_info},
    {"ouro_version",         -1, -1, F_CONST, fn_version},
    {"ouro_build_info",      -1, -1, F_CONST, fn_build_info},
};

/* The arities of the function called `name` in the core's table; false when
 * it is not there for SQLite. */
static bool table_arity(const char *name, int *n_min, int *n_max)
{
    for (int i = 0; i < ouro_sql_function_count; i++) {
        const ouro_sql_function *f = &ouro_sql_functions[i];
        if ((f->hosts & OURO_FN_SQLITE) && strcmp(f->name, name) == 0) {
            *n_min = f->n_required;
            *n_max = ouro_sql_function_nargs(f);
            return true;
        }
    }
    return false;
}

/* Keeps this shared object (and with it libgomp) loaded until the process
 * ends.  SQLite dlcloses an extension when the last connection that loaded it
 * closes; OpenMP's idle worker threads would then run unmapped code (a crash
 * at exit or at the next close).  Best effort: on failure nothing changes. */
static void pin_shared_object(void)
{
    Dl_info info;
    if (dladdr((void *)pin_shared_object, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);  /* handle kept */
}

static pthread_once_t pin_once = PTHREAD_ONCE_INIT;

/* Entry point: SQLite derives its name from build/ouro.so.  Registers every
 * function and the ouro_token_depths table on db. */
__attribute__((visibility("default")))
int sqlite3_ouro_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)
{
    SQLITE_EXTENSION_INIT2(pApi);
    pthread_once(&pin_once, pin_shared_object);
    conn_state *c = sqlite3_malloc(sizeof *c);
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    c->refs = 1;                 /* held by this function until the end */
    c->db = db;
    conn_settings_init(c);
#if SQLITE_VERSION_NUMBER >= 3041000
    c->interrupt_check = sqlite3_libversion_number() >= 3041000;
#endif
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof functions / sizeof functions[0]; i++) {
        int n_min = functions[i].n_min, n_max = functions[i].n_max;
        if (n_min < 0 && !table_arity(functions[i].name, &n_min, &n_max)) {
            rc = SQLITE_INTERNAL;        /* the table and this list disagree */
            break;
        }
        for (int n = n_min; rc == SQLITE_OK && n <= n_max; n++) {
            c->refs++;           /* dropped by the destructor, also when registration fails */
            rc = sqlite3_create_function_v2(db, functions[i].name, n, functions[i].flags, c,
                                            functions[i].fn, NULL, NULL, conn_state_unref);
        }
    }
    if (rc == SQLITE_OK)
        rc = token_depths_register(db, c);
    if (rc != SQLITE_OK && pzErrMsg)
        *pzErrMsg = sqlite3_mprintf("ouro: cannot register functions: %s", sqlite3_errstr(rc));
    conn_state_unref(c);
    return rc;
}

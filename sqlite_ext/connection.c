/*
 * connection.c -- the per-connection state of the SQLite extension: the
 * connection's models (default, named, $OURO_MODEL), reloaded when their files
 * change, and its one decoding session, reused from call to call.
 *
 * The state is shared by every function and module registered on the
 * connection (ouro_sqlite.h describes its ownership) and freed with the last
 * of them.  SQLite never runs two calls of one connection at once, so nothing
 * here takes a lock; the model cache (model_cache.c) has its own.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ouro_sqlite.h"

SQLITE_EXTENSION_INIT3

void conn_drop_session(conn_state *c)
{
    ouro_session_free(c->session);
    model_cache_release(c->session_entry);
    c->session = NULL;
    c->session_entry = NULL;
    c->session_loops = 0;
    c->session_ctx = 0;
    c->session_seq = 0;
}

void conn_state_unref(void *p)
{
    conn_state *c = p;
    if (!c || --c->refs > 0)
        return;
    conn_drop_session(c);
    model_cache_release(c->default_model);
    model_cache_release(c->env_model);
    sqlite3_free(c->env_path);
    for (named_model *n = c->named, *next; n; n = next) {
        next = n->next;
        model_cache_release(n->entry);
        sqlite3_free(n->name);
        sqlite3_free(n);
    }
    sqlite3_free(c);
}

int ctx_limit(const conn_state *c, const ouro_model *m)
{
    return ouro_context_limit(m, c->context_length);
}

void *conn_setting(conn_state *c, ouro_param_id id)
{
    switch (id) {
    case OURO_P_THREADS:        return &c->threads;
    case OURO_P_MAX_TOKENS:     return &c->max_tokens;
    case OURO_P_MAX_LOOPS:      return &c->max_loops;
    case OURO_P_EXIT_THRESHOLD: return &c->exit_threshold;
    case OURO_P_CONTEXT_LENGTH: return &c->context_length;
    case OURO_P_ON_ERROR:       return &c->on_error;
    case OURO_P_DEPTH:          return &c->depth;
    case OURO_P_KV_CACHE:       return &c->kv;
    case OURO_P_KV_TYPE:        return &c->kv_type;
    case OURO_P_PRECISION:      return &c->precision;
    case OURO_P_WEIGHTS:        return &c->weights;
    case OURO_P_BATCH_SIZE:     return &c->batch_size;
    case OURO_P_TIMEOUT_MS:     return &c->timeout_ms;
    case OURO_P_MEMORY_LIMIT:   return &c->memory_mb;
    default:                    return NULL;
    }
}

void conn_settings_init(conn_state *c)
{
    for (int i = 0; i < OURO_P_COUNT; i++) {
        void *v = conn_setting(c, (ouro_param_id)i);
        if (!v)
            continue;
        conn_setting_reset(c, (ouro_param_id)i);
    }
}

void conn_setting_reset(conn_state *c, ouro_param_id id)
{
    void *v = conn_setting(c, id);
    if (!v)
        return;
    /* the table's default; memory_limit's depends on the machine */
    if (ouro_params[id].kind == OURO_PARAM_REAL)
        *(double *)v = ouro_param_default(&ouro_params[id]);
    else
        *(int *)v = (int)ouro_param_default(&ouro_params[id]);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Called by the core on the connection's thread between the layers of every
 * forward call: sqlite3_interrupt() (SQLite 3.41 and later) or the call's
 * timeout_ms deadline (any version) stop the call. */
int conn_cancel(void *ctx)
{
    conn_state *c = ctx;
    if (c->deadline > 0 && now_s() >= c->deadline) {
        c->timed_out = true;
        return 1;
    }
#if SQLITE_VERSION_NUMBER >= 3041000
    if (c->interrupt_check)
        return sqlite3_is_interrupted(c->db);
#endif
    return 0;
}

/* A new call starts: its deadline, from timeout_ms. */
static void conn_call_start(conn_state *c)
{
    c->timed_out = false;
    c->deadline = c->timeout_ms > 0 ? now_s() + c->timeout_ms / 1000.0 : 0;
}

/* Reloads *slot when its files changed on disk.  Returns false with *errmsg
 * set (NULL = out of memory) when the new files cannot be loaded. */
static bool slot_refresh(conn_state *c, cache_entry **slot, char **errmsg)
{
    if (!ouro_model_files_changed((*slot)->model))
        return true;
    cache_entry *fresh;
    ouro_error err = {0};
    ouro_status st = model_cache_acquire((*slot)->path, ouro_model_weights((*slot)->model), &fresh,
                                         &err);
    if (st != OURO_OK) {
        *errmsg = st == OURO_ERR_NOMEM ? NULL
                : sqlite3_mprintf("ouro: the files of model '%s' changed and cannot be loaded: %s",
                                  (*slot)->path, err.message);
        return false;
    }
    if (c->session_entry == *slot)
        conn_drop_session(c);
    model_cache_release(*slot);
    *slot = fresh;
    return true;
}

cache_entry *conn_model(conn_state *c, const char *name, char **errmsg)
{
    *errmsg = NULL;
    cache_entry **slot = NULL;
    if (name) {
        for (named_model *n = c->named; n; n = n->next)
            if (strcmp(n->name, name) == 0)
                slot = &n->entry;
        if (!slot) {
            *errmsg = sqlite3_mprintf("ouro: no model named '%s' is loaded; call ouro_load('%s', path)",
                                      name, name);
            return NULL;
        }
    } else if (c->default_model) {
        slot = &c->default_model;
    } else {
        const char *env = getenv("OURO_MODEL");
        if (!env || !env[0]) {
            *errmsg = sqlite3_mprintf("ouro: no model loaded; call ouro_load(path) or set OURO_MODEL");
            return NULL;
        }
        if (!c->env_model || strcmp(env, c->env_path) != 0 ||
            ouro_model_weights(c->env_model->model) != (ouro_weights)c->weights) {
            cache_entry *e;
            ouro_error err = {0};
            ouro_status st = model_cache_acquire(env, (ouro_weights)c->weights, &e, &err);
            if (st != OURO_OK) {
                *errmsg = st == OURO_ERR_NOMEM ? NULL
                        : sqlite3_mprintf("ouro: cannot load OURO_MODEL: %s", err.message);
                return NULL;
            }
            char *copy = sqlite3_mprintf("%s", env);
            if (!copy) {
                model_cache_release(e);
                return NULL;
            }
            if (c->session_entry == c->env_model)
                conn_drop_session(c);
            model_cache_release(c->env_model);
            sqlite3_free(c->env_path);
            c->env_model = e;
            c->env_path = copy;
        }
        slot = &c->env_model;
    }
    if (!slot_refresh(c, slot, errmsg))
        return NULL;
    return *slot;
}

ouro_session *conn_session(conn_state *c, cache_entry *e, int max_loops, int n_ctx, int n_seq,
                           bool generation, ouro_error *err)
{
    int loops = max_loops > 0 ? max_loops : ouro_model_config(e->model)->total_ut_steps;
    ouro_kv_mode kv = generation ? (ouro_kv_mode)c->kv : OURO_KV_PER_STEP;
    ouro_kv_type kv_type = generation ? (ouro_kv_type)c->kv_type : OURO_KV_F32;
    ouro_precision precision = generation ? ouro_precision_resolve((ouro_precision)c->precision)
                                          : OURO_PRECISION_EXACT;
    size_t max_bytes = (size_t)c->memory_mb * 1024 * 1024;
    conn_call_start(c);
    if (n_seq < 1)
        n_seq = 1;
    if (c->session && ouro_session_bytes(c->session) <= max_bytes && c->session_entry == e && c->session_loops == loops && c->session_ctx >= n_ctx &&
        c->session_seq >= n_seq && c->session_kv == kv && c->session_kv_type == kv_type &&
        c->session_precision == precision && c->session_threads == c->threads)
        return c->session;
    conn_drop_session(c);

    /* sized for the call, rounded up so that similar calls reuse it */
    int want = ouro_session_ctx_for(n_ctx, n_seq, ctx_limit(c, e->model));

    ouro_session_options opts = {0};
    opts.n_ctx = want;
    opts.n_seq = n_seq;
    opts.max_loops = loops;
    opts.kv = kv;
    opts.kv_type = kv_type;
    opts.precision = precision;
    opts.threads = c->threads;
    opts.max_bytes = max_bytes;
    ouro_session *s = NULL;
    ouro_status st = ouro_session_new(e->model, &opts, &s, err);
    if (st != OURO_OK)
        return NULL;
    model_cache_retain(e);
    c->session = s;
    c->session_entry = e;
    c->session_loops = loops;
    c->session_ctx = want;
    c->session_seq = n_seq;
    c->session_kv = kv;
    c->session_kv_type = kv_type;
    c->session_precision = precision;
    c->session_threads = c->threads;
    return s;
}

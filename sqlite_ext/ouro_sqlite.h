/*
 * ouro_sqlite.h -- internal header of the SQLite extension (sqlite_ext/).
 *
 * The extension is four files:
 *   model_cache.c   the process-wide cache of loaded models (no SQLite code)
 *   connection.c    the per-connection state: models and the session
 *   extension.c     the entry point and the scalar SQL functions
 *   token_depths.c  the table-valued function ouro_token_depths
 *
 * Only sqlite3_ouro_init is exported from the shared object; everything
 * declared here has hidden visibility so that two extensions loaded into one
 * process never bind to each other's symbols.
 */
#ifndef OURO_SQLITE_H
#define OURO_SQLITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3ext.h>

#include "ouro.h"
#include "ouro_surface.h"

#pragma GCC visibility push(hidden)

/* ------------------------------------------------------------------------
 * Process-wide model cache (model_cache.c)
 *
 * One entry per canonical (realpath) model folder, shared by every connection
 * of the process.  A loaded ouro_model is immutable, so entries are used
 * without a lock; the lock only guards the list and the reference counts.
 * ------------------------------------------------------------------------ */

typedef struct cache_entry {
    char *path;                 /* canonical folder; malloc'd, owned by the entry */
    ouro_model *model;          /* owned; freed when refs drops to 0 */
    int refs;                   /* holders: connection slots and sessions */
    bool linked;                /* still in the list (false once replaced by a reload) */
    struct cache_entry *next;
} cache_entry;

/* Returns (in *out) a referenced entry for the model folder `dir`, loading it
 * when no entry for the same canonical folder exists or when the cached
 * entry's files changed on disk.  Release with model_cache_release. */
ouro_status model_cache_acquire(const char *dir, ouro_weights weights, cache_entry **out,
                                ouro_error *err);

/* Adds a reference to an entry the caller already holds. */
void model_cache_retain(cache_entry *e);

/* Drops one reference; the model is freed with its last reference. */
void model_cache_release(cache_entry *e);

/* Current reference count (for ouro_model_info). */
int model_cache_refs(cache_entry *e);

/* ------------------------------------------------------------------------
 * Per-connection state (connection.c)
 *
 * Owned jointly by every function and module registered on the connection:
 * `refs` counts the registrations, each destructor drops one, and the last
 * one releases the models and the session.  SQLite never runs two calls of
 * one connection at once, so the state itself needs no lock.
 * ------------------------------------------------------------------------ */

typedef struct named_model {
    char *name;                 /* sqlite3_malloc'd, owned */
    cache_entry *entry;         /* one reference held */
    struct named_model *next;
} named_model;

typedef struct conn_state {
    int refs;                   /* registrations that point here */
    sqlite3 *db;
    bool interrupt_check;       /* sqlite3_is_interrupted is usable here */
    cache_entry *default_model; /* from ouro_load(path); one reference, or NULL */
    cache_entry *env_model;     /* from $OURO_MODEL; one reference, or NULL */
    char *env_path;             /* sqlite3_malloc'd value of $OURO_MODEL env_model came from */
    named_model *named;         /* from ouro_load(name, path) */
    /* Settings (ouro_setting): what an argument does not say.  Names,
     * defaults and ranges are the core's table (ouro_params); conn_setting
     * says where each one lives. */
    int threads;                /* threads: worker threads, 0 = every core */
    int max_tokens;             /* max_tokens: new tokens when the argument is NULL */
    int max_loops;              /* max_loops: 0 = the model's total_ut_steps */
    double exit_threshold;      /* exit_threshold: < 0 = the model's own rule */
    int context_length;         /* context_length: most tokens of one sequence */
    int on_error;               /* on_error: ouro_on_error */
    int depth;                  /* depth: ouro_depth_mode used with a threshold */
    int kv;                     /* kv_cache: ouro_kv_mode of generation sessions */
    int kv_type;                /* kv_type: ouro_kv_type of generation sessions */
    int precision;              /* precision: ouro_precision of generation sessions */
    int weights;                /* weights: ouro_weights of models loaded from now on */
    int batch_size;             /* batch_size: sequences of the *_batch functions */
    int timeout_ms;             /* timeout_ms: most wall time of one call, 0 = none */
    int memory_mb;              /* memory_limit: most MiB one call may allocate */
    double deadline;            /* CLOCK_MONOTONIC seconds the running call must end by; 0 = none */
    bool timed_out;             /* the running call passed its deadline */
    /* The connection's decoding state, reused from call to call. */
    ouro_session *session;      /* owned, or NULL */
    cache_entry *session_entry; /* one reference held while session is set */
    int session_loops;          /* max_loops the session was made for */
    int session_ctx;            /* n_ctx of the session */
    int session_seq;            /* n_seq of the session */
    ouro_kv_mode session_kv;    /* kv mode of the session */
    ouro_kv_type session_kv_type;       /* cache entry type of the session */
    ouro_precision session_precision;   /* matrix-product precision of the session */
    int session_threads;        /* threads setting the session was made with */
} conn_state;

void conn_state_unref(void *p);

/* Sets every setting of c to its default (the core's table), or one. */
void conn_settings_init(conn_state *c);
void conn_setting_reset(conn_state *c, ouro_param_id id);

/* Where setting `id` lives in c: an int, or (exit_threshold) a double;
 * NULL for a parameter that is no setting of SQLite. */
void *conn_setting(conn_state *c, ouro_param_id id);

/* Frees the connection's session (the next call makes a new one). */
void conn_drop_session(conn_state *c);

/* Finds the model a call names: `name` (may be NULL = the default), after
 * reloading it when its files changed.  Returns a borrowed entry valid for the
 * rest of the call, or NULL with *errmsg set (sqlite3_malloc'd). */
cache_entry *conn_model(conn_state *c, const char *name, char **errmsg);

/* The connection's session for `e`, with `max_loops` loop steps (0 = the
 * model's) and at least `n_seq` sequences of room for `n_ctx` tokens each.
 * `generation` true: the connection's kv_cache, kv_type and precision
 * settings; false (classification and depth, which must match upstream): the
 * exact path, per-step f32 cache and exact matrix products.  NULL with *err
 * filled on failure.  A session of more sequences is reused as it is. */
ouro_session *conn_session(conn_state *c, cache_entry *e, int max_loops, int n_ctx, int n_seq,
                           bool generation, ouro_error *err);

/* Longest sequence a call may use on this model: the context_length setting
 * capped by the model's max_position_embeddings. */
int ctx_limit(const conn_state *c, const ouro_model *m);

/* The cancel check handed to the core: sqlite3_is_interrupted where
 * available, and the call's timeout_ms deadline (set by conn_session). */
int conn_cancel(void *ctx);

/* Registers ouro_token_depths on db with `c` as its state (token_depths.c). */
int token_depths_register(sqlite3 *db, conn_state *c);

#pragma GCC visibility pop

#endif /* OURO_SQLITE_H */

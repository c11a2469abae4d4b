/*
 * ouro_surface.h -- the SQL surface of ouro, described once for every host.
 *
 * The PostgreSQL extension, the SQLite extension and the `ouro` tool read
 * this description instead of keeping their own copies: every option with
 * its default, range and meaning, every setting, the enum names, every SQL
 * function's arguments in order, and the few rules that decide what a call
 * does (session sizing, batch sizes, how an exit threshold becomes a depth
 * mode).  An adapter only translates between its host (GUCs and ereport,
 * ouro_setting and sqlite3_result_error) and this table.  surface.c holds
 * the table; the shared design document sql-surface.md is its contract, and
 * test/suites/surface.sh checks that the PostgreSQL install script, the
 * SQLite registration and the README agree with it.
 *
 * The rules, in words (the README's "SQL surface" section says the same):
 *   NULLs      A NULL option means its default: the matching ouro.* setting
 *              when there is one, else the model's own or the default below.
 *              A NULL prompt / input / message / ids gives NULL (no rows for
 *              ouro_token_depths); a NULL item of a batch array gives a NULL
 *              item.  Nothing that takes options is STRICT.
 *   Numbering  Items of an array (prompts, inputs, labels, stop strings,
 *              token ids) are counted from 1 in every message of both
 *              databases and of the tool: "item 2" is the second item.
 *              Token positions in results (ouro_token_depths.pos) count
 *              from 0, loop steps (exit_step, exit_steps) from 1.
 *   on_error   The setting on_error = error (default) makes a bad row fail
 *              the statement; on_error = null gives NULL for that row, or
 *              for that item of a batch array, and goes on (PostgreSQL adds
 *              a WARNING; SQLite reports the message to sqlite3_log).  A bad
 *              row is bad input of one row: a prompt without tokens, one
 *              longer than the context, a token id outside the vocabulary,
 *              a label that encodes to no tokens.  Out-of-range options,
 *              missing models, unreadable files, out-of-memory and cancels
 *              always fail the statement.
 */
#ifndef OURO_SURFACE_H
#define OURO_SURFACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ouro.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Items of an array are numbered from this in every message. */
#define OURO_ITEM_BASE 1

/* What a bad row gives (the on_error setting). */
typedef enum ouro_on_error {
    OURO_ON_ERROR_ERROR = 0,     /* the statement fails */
    OURO_ON_ERROR_NULL           /* the row (or batch item) gives NULL */
} ouro_on_error;

/* ------------------------------------------------------------------------
 * Parameters: the options of the functions and the settings
 * ------------------------------------------------------------------------ */

typedef enum ouro_param_kind {
    OURO_PARAM_INT,              /* integer in min..max */
    OURO_PARAM_REAL,             /* number in min..max (NaN refused) */
    OURO_PARAM_ENUM,             /* one of `values` */
    OURO_PARAM_TEXT,             /* text */
    OURO_PARAM_TEXT_LIST,        /* array of distinct non-empty texts, min..max items */
    OURO_PARAM_BOOL              /* on / off (0 / 1) */
} ouro_param_kind;

/* Where a parameter appears. */
enum {
    OURO_PARAM_ARG = 1,          /* an argument of SQL functions (ouro_sql_functions) */
    OURO_PARAM_SETTING = 2,      /* a setting: ouro.<name> in PostgreSQL, ouro_setting('<name>') in SQLite */
    OURO_PARAM_PG_ONLY = 4,      /* a setting of PostgreSQL only (SQLite loads models with
                                    ouro_load, and only the application sets anything) */
    OURO_PARAM_SUPERUSER = 8,    /* PostgreSQL: only superusers may set it (PGC_SUSET); a TEXT
                                    one is a server path, hidden from other roles as well */
    OURO_PARAM_SQLITE_ONLY = 16, /* a setting of SQLite only (`equivalent` names what
                                    PostgreSQL has instead, if anything) */
    OURO_PARAM_LIMIT = 32        /* a ceiling a superuser sets over what any call of any role
                                    may use (`bounds` names the setting it bounds, if one) */
};

/* A default that depends on the machine (ouro_param_default computes it). */
typedef enum ouro_param_machine {
    OURO_DEFAULT_FIXED = 0,      /* dflt */
    OURO_DEFAULT_QUARTER_MEMORY, /* a quarter of the physical memory in MiB, at least 64 */
    OURO_DEFAULT_PROCESSORS      /* the number of processors this process may use */
} ouro_param_machine;

typedef struct ouro_enum_value {
    const char *name;            /* as written in SQL: 'per-step' */
    int value;                   /* the core's enum value */
} ouro_enum_value;

typedef struct ouro_param {
    const char *name;            /* "max_tokens" */
    ouro_param_kind kind;
    int flags;                   /* OURO_PARAM_* */
    double dflt;                 /* default (ENUM: the value; TEXT: unused) */
    double min, max;             /* range of values (TEXT_LIST: of items) */
    bool has_unset;              /* the setting also takes `unset`: "no value, use the model's" */
    double unset;                /* max_loops 0, exit_threshold -1 */
    const ouro_enum_value *values;   /* ENUM: n_values names, in the order documents list them */
    int n_values;
    const char *dflt_doc;        /* the default as documents state it: "128", "the model's total_ut_steps" */
    const char *summary;         /* one line: what it does */
    const char *detail;          /* more, or NULL */
    ouro_param_machine machine;  /* FIXED, or how the machine decides the default */
    const char *unit;            /* unit of an INT: "MB" (MiB), "s", "ms"; NULL = none */
    const char *bounds;          /* LIMIT: the setting it is the ceiling of, or NULL */
    const char *equivalent;      /* the other database's setting that does the same (a name
                                    of this table, or PostgreSQL's own statement_timeout),
                                    or NULL */
} ouro_param;

/* Indices of ouro_params: settings first (in the order documents list them),
 * then the options that are function arguments only. */
typedef enum ouro_param_id {
    OURO_P_MODEL_PATH = 0,
    OURO_P_THREADS,
    OURO_P_MAX_TOKENS,
    OURO_P_MAX_LOOPS,
    OURO_P_EXIT_THRESHOLD,
    OURO_P_CONTEXT_LENGTH,
    OURO_P_ON_ERROR,
    OURO_P_DEPTH,
    OURO_P_KV_CACHE,
    OURO_P_KV_TYPE,
    OURO_P_PRECISION,
    OURO_P_WEIGHTS,
    OURO_P_BATCH_SIZE,
    OURO_P_AUTO_BATCH,
    OURO_P_PROGRESS_NOTICE_INTERVAL,
    OURO_P_TIMEOUT_MS,
    OURO_P_MEMORY_LIMIT,
    OURO_P_LIMIT_MEMORY,
    OURO_P_LIMIT_THREADS,
    OURO_P_LIMIT_BATCH_SIZE,
    OURO_P_LIMIT_CONTEXT_LENGTH,
    OURO_P_LIMIT_MAX_TOKENS,
    OURO_P_LIMIT_MAX_LOOPS,
    OURO_P_TEMPERATURE,
    OURO_P_SEED,
    OURO_P_STOP,
    OURO_P_SYSTEM,
    OURO_P_INSTRUCTION,
    OURO_P_LABELS,
    OURO_P_MODEL,
    OURO_P_COUNT
} ouro_param_id;

extern const ouro_param ouro_params[OURO_P_COUNT];

/* The parameter called `name` ("ouro." prefix accepted), or NULL. */
const ouro_param *ouro_param_find(const char *name);

/* The value of enum name `name`, or -1; the name of enum value `value`, or NULL. */
int ouro_param_enum_value(const ouro_param *p, const char *name);
const char *ouro_param_enum_name(const ouro_param *p, int value);

/* The enum names as one phrase: "'per-step', 'last' or 'avg'" (static). */
const char *ouro_param_enum_list(const ouro_param *p);

/* The default of p on this machine: dflt, or what `machine` says, within
 * min..max. */
double ouro_param_default(const ouro_param *p);

/* Whether v is in the parameter's range (setting: the unset value as well;
 * NaN never is). */
bool ouro_param_in_range(const ouro_param *p, double v, bool as_setting);

/* The message for a value out of range, the same in every host:
 * "max_tokens must be between 1 and 1048576". */
void ouro_param_range_message(const ouro_param *p, bool as_setting, char *buf, size_t size);

/* ------------------------------------------------------------------------
 * Functions
 * ------------------------------------------------------------------------ */

enum {
    OURO_FN_PG = 1,              /* registered in PostgreSQL */
    OURO_FN_SQLITE = 2,          /* registered in SQLite */
    OURO_FN_BOTH = 3
};

#define OURO_FN_MAX_ARGS 10

typedef struct ouro_sql_function {
    const char *name;
    int hosts;                   /* OURO_FN_* */
    int n_required;              /* leading arguments without a default */
    const char *args[OURO_FN_MAX_ARGS];  /* argument names in SQL order, NULL-terminated;
                                            the optional ones default to NULL */
    const char *summary;
} ouro_sql_function;

extern const ouro_sql_function ouro_sql_functions[];
extern const int ouro_sql_function_count;

/* Number of arguments of f. */
int ouro_sql_function_nargs(const ouro_sql_function *f);

/* The whole description as JSON (malloc'd; ouro_free): {"params": [...],
 * "functions": [...], "item_base": 1}.  NULL when out of memory. */
char *ouro_surface_json(void);

/* ------------------------------------------------------------------------
 * The rules every host applies
 * ------------------------------------------------------------------------ */

/* Most tokens one sequence may hold: the context_length setting capped by
 * the model's max_position_embeddings. */
int ouro_context_limit(const ouro_model *model, int context_length);

/* n_ctx of a session made for `need` tokens in each of n_seq sequences:
 * rounded up so that similar calls reuse it (to 256 tokens for one sequence,
 * to 32 for many, whose KV cache costs n_seq times as much), within limit,
 * never below need. */
int ouro_session_ctx_for(int need, int n_seq, int limit);

/* Sequences a generation batch of n prompts runs at once: batch_size, no
 * more than n, at least 1. */
int ouro_batch_seqs(int batch_size, int n);

/* Sequences a classification batch runs at once: one input per group of
 * n_labels sequences plus one for the shared prefix, max(batch_size,
 * n_labels + 1) capped at 257, and no more than n_inputs inputs can use. */
int ouro_classify_seqs(int batch_size, int n_labels, int n_inputs);

/* The core's generation parameters for the SQL options: an exit_threshold
 * (>= 0; < 0 = none) means exit at that threshold with the depth setting
 * (adaptive: decoded tokens stop at their exit step); none means the model's
 * own exit rule at full depth.  p borrows stop. */
void ouro_gen_params_from_sql(ouro_gen_params *p, int max_tokens, double temperature,
                              double exit_threshold, ouro_depth_mode depth, int64_t seed,
                              const char *const *stop, int n_stop);

#ifdef __cplusplus
}
#endif

#endif /* OURO_SURFACE_H */

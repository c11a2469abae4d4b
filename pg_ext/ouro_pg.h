/*
 * ouro_pg.h -- shared declarations of the PostgreSQL extension (pg_ext/).
 *
 * ouro_pg.c owns the settings, the per-backend model and session caches, the
 * cancel check and the translation of core statuses into ereport(); the SQL
 * functions in ouro_fn.c use them; model registration is in ouro_fn.c too.  Everything here runs on the backend's own
 * thread: the core's worker threads never reach this code.
 */
#ifndef OURO_PG_H
#define OURO_PG_H

#include "postgres.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/timestamp.h"

#include "ouro.h"
#include "ouro_surface.h"

/*
 * Settings (ouro.*), declared in _PG_init from the core's table of the SQL
 * surface (ouro_params in core/ouro_surface.h): names, defaults, ranges,
 * enum values and descriptions all come from there.
 */
extern char *ouro_model_path_setting;	/* "" = none */
extern int	ouro_threads_setting;		/* 0 = number of processors */
extern int	ouro_max_tokens_setting;
extern int	ouro_max_loops_setting;		/* 0 = the model's total_ut_steps */
extern double ouro_exit_threshold_setting;	/* < 0 = the model's own rule */
extern int	ouro_context_length_setting;
extern int	ouro_on_error_setting;		/* ouro_on_error */
extern int	ouro_depth_setting;			/* ouro_depth_mode used with a threshold */
extern int	ouro_kv_cache_setting;		/* ouro_kv_mode of generation sessions */
extern int	ouro_kv_type_setting;		/* ouro_kv_type of generation sessions */
extern int	ouro_precision_setting;		/* ouro_precision of generation sessions */
extern int	ouro_weights_setting;		/* ouro_weights of models loaded from now on */
extern int	ouro_batch_size_setting;	/* sequences of the *_batch functions and of
										 * the batching node */
extern bool ouro_auto_batch_setting;	/* the planner places the batching node */
extern int	ouro_progress_notice_setting;	/* seconds between progress NOTICEs; 0 = off */

/* Ceilings set by superusers (ouro.limit_*, from the same table); see ouro_pg.c. */
extern int	ouro_limit_memory_mb;
extern int	ouro_limit_threads;
extern int	ouro_limit_batch_size;
extern int	ouro_limit_context_length;
extern int	ouro_limit_max_tokens;
extern int	ouro_limit_max_loops;

/* A cached session bigger than this is freed at the end of each transaction. */
#define OURO_PG_KEEP_SESSION_BYTES ((size_t) 64 * 1024 * 1024)

/* ERROR when value is above limit, naming both settings. */
extern void pg_ouro_check_limit(const char *what, int value, const char *limit_name, int limit);

/* Checks the user-level settings against the ceilings (every call does). */
extern void pg_ouro_check_limits(void);

/* ouro.batch_size and ouro.max_tokens under their ceilings (ERROR above). */
extern int	pg_ouro_batch_size(void);
extern int	pg_ouro_max_tokens(void);

/* msg with model folders replaced by "<model>" (palloc'd): for non-superusers. */
extern const char *pg_ouro_hide_paths(const char *msg);

/*
 * A model loaded in this backend.  The weights are mapped read-only by the
 * core, so every backend that loads the same files shares them in the page
 * cache.  Entries live for the life of the backend (or until their files
 * change, or they are evicted).
 */
typedef struct OuroModelEntry
{
	char	   *path;			/* folder, as configured (TopMemoryContext) */
	ouro_model *model;			/* core-owned (malloc); ouro_model_free */
	TimestampTz checked_at;		/* statement start when files were last checked */
	uint64		last_used;		/* LRU tick */
	int			loads;			/* times this path was loaded in this backend */
	double		load_ms;		/* wall time of the last load */
} OuroModelEntry;

/* What a call resolved its `model` argument to. */
typedef struct OuroModelRef
{
	OuroModelEntry *entry;
	const char *label;			/* name for messages: registered name or path (palloc) */
	bool		was_loaded;		/* already in the cache before this call */
} OuroModelRef;

/*
 * Resolves the model argument (argno of fcinfo; NULL there = ouro.model_path)
 * to a loaded model, loading or reloading it as needed.  Raises ERROR when no
 * model is configured, the name is not registered or the files do not load.
 */
extern void pg_ouro_model_resolve(FunctionCallInfo fcinfo, int argno, OuroModelRef *ref);

/* The model's tokenizer; ERROR when the folder has none. */
extern const ouro_tokenizer *pg_ouro_tokenizer(const OuroModelRef *ref);

/*
 * A session of the model able to hold n_seq sequences of need_ctx tokens with
 * max_loops loop steps (0 = the model's), reused across calls when it fits.
 * generation true: the ouro.kv_cache, ouro.kv_type and ouro.precision
 * settings; false (classification and depth, which must match upstream): the
 * exact path (per-step f32 cache, exact matrix products).  The session is
 * owned by the cache; callers must not free it.
 */
extern ouro_session *pg_ouro_session(const OuroModelRef *ref, int need_ctx, int n_seq,
									 int max_loops, bool generation);

/* Tokens one sequence may hold: ouro.context_length capped by the model. */
extern int	pg_ouro_context_limit(const ouro_model *model);

/* Threads a call uses: ouro.threads, or the number of processors. */
extern int	pg_ouro_threads(void);

/* ouro_cancel_fn: nonzero when a cancel or termination is pending. */
extern int	pg_ouro_cancel_check(void *ctx);

/*
 * Reports a failed core call.  `what` is the errmsg ("could not generate
 * text").  Returns true only for a row error (bad argument, input too long)
 * under ouro.on_error = null, after a WARNING: the caller returns NULL.
 * Otherwise it raises ERROR (or the cancel error) and does not return.
 * Free core memory before calling it.
 */
extern bool pg_ouro_report(const ouro_error *err, const char *what, const OuroModelRef *ref);

/*
 * Reports a row error (sqlerrcode, message, optional detail and hint):
 * ERROR, or under ouro.on_error = null a WARNING and returns true.
 */
extern bool pg_ouro_row_error(int sqlerrcode, const char *msg, const char *detail,
							  const char *hint);

/*
 * errhint() naming the operating system user the server runs as (to
 * superusers; others get the hint without the name), for a file or folder it
 * could not read (errnum EACCES or EPERM); 0 (no hint) for any other errnum.
 * For use inside ereport().
 */
extern int	pg_ouro_errhint_access(int errnum);

/* Shortest text of a double that reads back the same (JSON-safe when finite). */
extern void pg_ouro_append_double(StringInfo buf, double v);

/*
 * The cached session's KV bytes when it belongs to `model` (else 0, and the
 * outputs are left alone), with its n_ctx, loop steps, kv_type and precision
 * (for ouro_model_info).
 */
extern size_t pg_ouro_session_bytes(const ouro_model *model, int *n_ctx, int *max_loops,
									ouro_kv_type *kv_type, ouro_precision *precision);

/* ------------------------------------------------------------------------
 * Rows: what the row-level entry points (the per-row functions, the batching
 * node of ouro_batch.c, ouro_enrich) share with the SQL functions.
 * ------------------------------------------------------------------------ */

/* Options shared by the generation functions, in SQL argument order. */
typedef struct OuroGenArgs
{
	int			max_loops;		/* 0 = the model's total_ut_steps */
	int			max_tokens;
	double		temperature;
	double		threshold;		/* < 0: none (the model's own rule, full depth) */
	int64		seed;
	char	  **stop;			/* (n_stop) palloc'd */
	int			n_stop;
} OuroGenArgs;

/*
 * Reads max_loops, max_tokens, temperature, exit_threshold, seed, stop
 * starting at argument `first`; NULLs fall back to the ouro.* settings.
 * Out-of-range values are ERRORs.
 */
extern void pg_ouro_gen_args_read(FunctionCallInfo fcinfo, int first, OuroGenArgs *a);

/* The classification options: labels (arg 1), instruction (2), max_loops (3). */
extern void pg_ouro_classify_args_read(FunctionCallInfo fcinfo, char ***labels, int *n_labels,
									   char **instruction, int *max_loops);

/* message (and system) in the model's chat template (palloc); NULL after a row error. */
extern char *pg_ouro_chat_prompt(const OuroModelRef *ref, const char *message, const char *system);

/*
 * Which row of the statement a call works on, for messages: while a row's
 * work runs, an error context callback (pg_ouro_row_push) adds
 * "ouro_generate, row 7 of the statement: prompt \"Once upon a...\"" to every
 * error and warning.  position 0 = no row (work shared by a whole batch).
 */
typedef struct OuroRowRef
{
	const char *fn;				/* SQL function name (static) */
	int64		position;		/* 1-based row of the statement; 0 = none */
	const char *input;			/* the row's prompt or input (not owned) */
	int			input_len;
} OuroRowRef;

extern void pg_ouro_row_push(OuroRowRef *row, ErrorContextCallback *cb);
extern void pg_ouro_row_pop(ErrorContextCallback *cb);

/*
 * A row error sink: when set, pg_ouro_row_error hands row errors to it (and
 * the row gives NULL) instead of raising them or warning.  ouro_enrich uses
 * it to record failed rows in a table.
 */
typedef void (*OuroRowErrorSink) (void *ctx, int sqlerrcode, const char *msg,
								  const char *detail);
extern OuroRowErrorSink pg_ouro_row_sink;
extern void *pg_ouro_row_sink_ctx;

/*
 * Generates for n prompts (prompts[i] NULL: a NULL item) with one set of
 * options and one model, ouro.batch_size sequences at a time, as
 * ouro_generate would one by one.  out / out_null (n) receive the texts; a
 * row error under ouro.on_error = null (or a sink) leaves that item NULL.
 * row: the pushed row context, whose position is set to positions[i] while
 * item i is checked (NULL: items of an array named "prompt k of the batch",
 * k = lbound + i).  fn names the work in the progress report.
 */
extern void pg_ouro_generate_rows(const OuroModelRef *ref, const OuroGenArgs *a, int n,
								  const char *const *prompts, const int *lens,
								  OuroRowRef *row, const int64 *positions, int lbound,
								  const char *fn, Datum *out, bool *out_null);

/*
 * Classifies n inputs (inputs[i] NULL: a NULL item) with one label list,
 * instruction, loop count and model, as ouro_classify (scores false: the
 * label, text) or ouro_classify_scores (true: jsonb) would one by one.
 * Arguments as for pg_ouro_generate_rows.
 */
extern void pg_ouro_classify_rows(const OuroModelRef *ref, char **labels, int n_labels,
								  const char *instruction, int max_loops, int n,
								  const char *const *inputs, OuroRowRef *row,
								  const int64 *positions, int lbound, bool scores,
								  const char *fn, Datum *out, bool *out_null);

/* ouro_depth's exit_threshold (argument 1): checked, -1 when NULL. */
extern double pg_ouro_depth_args_read(FunctionCallInfo fcinfo);

/*
 * ouro_depth of n inputs (inputs[i], lens[i] bytes; NULL: a NULL item) with
 * one threshold and model, computed together (ouro_depth_batch), each the
 * float8 one ouro_depth call gives it; an input without tokens gives NULL, a
 * bad or too long one is a row error naming its row (or, row NULL, its item).
 * Arguments as for pg_ouro_generate_rows.
 */
extern void pg_ouro_depth_rows(const OuroModelRef *ref, double threshold, int n,
							   const char *const *inputs, const int *lens, OuroRowRef *row,
							   const int64 *positions, const char *fn, Datum *out,
							   bool *out_null);

/* ------------------------------------------------------------------------
 * Counters and progress (ouro_progress.c)
 * ------------------------------------------------------------------------ */

/* This backend's counters since it started (ouro_stats()). */
typedef struct OuroStats
{
	int64		rows;			/* calls computed on a non-NULL input */
	int64		batched_rows;	/* of those, rows the batching node computed */
	int64		batches;		/* batched core calls (array forms, node, enrich) */
	int64		tokens;			/* tokens generated */
} OuroStats;

extern OuroStats pg_ouro_stats;

/*
 * Adds rows and tokens done by `fn` on `model` to this backend's counters and
 * to its slot of the shared progress table (when the library is preloaded),
 * and emits a progress NOTICE when ouro.progress_notice_interval has passed.
 * rows_total: rows the job has in all, when known (else 0).
 */
extern void pg_ouro_progress(const char *fn, const char *model, int64 rows, int64 tokens,
							 int64 rows_total);

/* Sets up the shared progress table; _PG_init calls it while preloading. */
extern void pg_ouro_progress_init(void);

/* The batching node and the planner hook (ouro_batch.c); _PG_init calls it. */
extern void pg_ouro_batch_init(void);

#endif							/* OURO_PG_H */

/*
 * ouro_pg.c -- the PostgreSQL side of ouro: settings, model and session
 * caches, cancellation and error translation.
 *
 * Data flows through this file in this order:
 *   _PG_init      declares the ouro.* settings (from the core's table of the
 *                 SQL surface) and the core's log sink;
 *   models        the `model` argument becomes a folder (ouro.model_path, or a
 *                 name a superuser registered in the extension's ouro_models
 *                 table), and the folder becomes a loaded ouro_model, cached
 *                 per backend and reloaded when its files change;
 *   sessions      one cached ouro_session (KV cache and scratch), reused by
 *                 every call whose size and loop count it fits;
 *   cancel        the ouro_cancel_fn the core calls between decode steps;
 *   errors        core statuses become ereport() with specific SQLSTATEs.
 *
 * Threads: the core starts its worker threads itself, with every signal
 * blocked, so PostgreSQL's handlers only ever run on the backend's thread.
 *
 * Memory: the core allocates with malloc and is released with its own free
 * functions; nothing from palloc is handed to it to keep.  Cached models and
 * the session live for the backend's life; nothing here runs when no ouro
 * function is called, so loading the library (even from
 * shared_preload_libraries) starts no thread and maps nothing.
 */
#include "postgres.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/pg_class.h"
#include "access/xact.h"
#include "commands/extension.h"
#include "common/shortest_dec.h"
#include "mb/pg_wchar.h"
#include "libpq/libpq.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"

#include "ouro_pg.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* ------------------------------------------------------------------------
 * Settings
 * ------------------------------------------------------------------------ */

char	   *ouro_model_path_setting = NULL;
int			ouro_threads_setting = 0;
int			ouro_max_tokens_setting = 0;
int			ouro_max_loops_setting = 0;
double		ouro_exit_threshold_setting = -1.0;
int			ouro_context_length_setting = 0;
int			ouro_on_error_setting = OURO_ON_ERROR_ERROR;
int			ouro_depth_setting = OURO_DEPTH_ADAPTIVE;
int			ouro_kv_cache_setting = OURO_KV_PER_STEP;
int			ouro_kv_type_setting = OURO_KV_F32;
int			ouro_precision_setting = OURO_PRECISION_AUTO;
int			ouro_weights_setting = OURO_WEIGHTS_MAP;
int			ouro_batch_size_setting = 0;
bool		ouro_auto_batch_setting = true;
int			ouro_progress_notice_setting = 0;

/* Ceilings (superuser settings); _PG_init sets their defaults from the core's table. */
int			ouro_limit_memory_mb = 0;
int			ouro_limit_threads = 0;
int			ouro_limit_batch_size = 0;
int			ouro_limit_context_length = 0;
int			ouro_limit_max_tokens = 0;
int			ouro_limit_max_loops = OURO_MAX_LOOPS;

static pthread_t backend_thread;	/* the thread _PG_init ran on */

/* ouro.model_path must be empty or an absolute path. */
static bool
check_model_path(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && (*newval)[0] != '\0' && (*newval)[0] != '/')
	{
		GUC_check_errdetail("ouro.model_path must be an absolute path to a model folder.");
		return false;
	}
	return true;
}

/*
 * Log sink of the core.  Messages are passed on only when they come from the
 * backend's thread; anything a worker thread logs is dropped, since nothing
 * of PostgreSQL may run there.
 */
static void
core_log(int level, const char *message, void *ctx)
{
	if (!pthread_equal(pthread_self(), backend_thread))
		return;
	if (level >= OURO_LOG_WARNING)
		ereport(WARNING, (errmsg_internal("ouro: %s", message)));
	else
		ereport(level == OURO_LOG_INFO ? DEBUG1 : DEBUG2,
				(errmsg_internal("ouro: %s", message)));
}

/* Where each setting of the core's table lives in this backend. */
static void *
setting_storage(ouro_param_id id)
{
	switch (id)
	{
		case OURO_P_MODEL_PATH:
			return &ouro_model_path_setting;
		case OURO_P_THREADS:
			return &ouro_threads_setting;
		case OURO_P_MAX_TOKENS:
			return &ouro_max_tokens_setting;
		case OURO_P_MAX_LOOPS:
			return &ouro_max_loops_setting;
		case OURO_P_EXIT_THRESHOLD:
			return &ouro_exit_threshold_setting;
		case OURO_P_CONTEXT_LENGTH:
			return &ouro_context_length_setting;
		case OURO_P_ON_ERROR:
			return &ouro_on_error_setting;
		case OURO_P_DEPTH:
			return &ouro_depth_setting;
		case OURO_P_KV_CACHE:
			return &ouro_kv_cache_setting;
		case OURO_P_KV_TYPE:
			return &ouro_kv_type_setting;
		case OURO_P_PRECISION:
			return &ouro_precision_setting;
		case OURO_P_WEIGHTS:
			return &ouro_weights_setting;
		case OURO_P_BATCH_SIZE:
			return &ouro_batch_size_setting;
		case OURO_P_AUTO_BATCH:
			return &ouro_auto_batch_setting;
		case OURO_P_PROGRESS_NOTICE_INTERVAL:
			return &ouro_progress_notice_setting;
		case OURO_P_LIMIT_MEMORY:
			return &ouro_limit_memory_mb;
		case OURO_P_LIMIT_THREADS:
			return &ouro_limit_threads;
		case OURO_P_LIMIT_BATCH_SIZE:
			return &ouro_limit_batch_size;
		case OURO_P_LIMIT_CONTEXT_LENGTH:
			return &ouro_limit_context_length;
		case OURO_P_LIMIT_MAX_TOKENS:
			return &ouro_limit_max_tokens;
		case OURO_P_LIMIT_MAX_LOOPS:
			return &ouro_limit_max_loops;
		default:
			return NULL;
	}
}

/* The GUC unit flag of a unit of the core's table. */
static int
guc_unit(const char *unit)
{
	if (unit == NULL)
		return 0;
	if (strcmp(unit, "MB") == 0)
		return GUC_UNIT_MB;
	if (strcmp(unit, "s") == 0)
		return GUC_UNIT_S;
	if (strcmp(unit, "ms") == 0)
		return GUC_UNIT_MS;
	elog(ERROR, "ouro: no GUC unit for \"%s\"", unit);
	return 0;
}

/*
 * Declares one setting of the core's table as ouro.<name>: its default (the
 * machine's, for the ceilings of memory and threads), range or values, unit
 * and descriptions come from the table; the long description states who may
 * set it and the valid range.  Ceilings and paths are PGC_SUSET; a path is
 * also hidden from other roles.
 */
static void
define_setting(ouro_param_id id)
{
	const ouro_param *p = &ouro_params[id];
	char	   *name = psprintf("ouro.%s", p->name);
	void	   *storage = setting_storage(id);
	GucContext	context = (p->flags & OURO_PARAM_SUPERUSER) ? PGC_SUSET : PGC_USERSET;
	int			flags = guc_unit(p->unit);
	double		lo = p->has_unset && p->unset < p->min ? p->unset : p->min;
	double		dflt = ouro_param_default(p);
	StringInfoData desc;

	if (storage == NULL)
		elog(ERROR, "ouro: setting %s has no storage", name);
	initStringInfo(&desc);
	if (p->flags & OURO_PARAM_LIMIT)
		appendStringInfoString(&desc, "Superuser only. ");
	if (p->kind == OURO_PARAM_INT)
		appendStringInfo(&desc, "Valid range is %d .. %d%s%s.", (int) lo, (int) p->max,
						 p->unit ? " " : "", p->unit ? p->unit : "");
	else if (p->kind == OURO_PARAM_REAL)
		appendStringInfo(&desc, "Valid range is %g .. %g.", lo, p->max);
	if (p->machine != OURO_DEFAULT_FIXED)
		appendStringInfo(&desc, " The default is %s.", p->dflt_doc);
	if (p->detail)
		appendStringInfo(&desc, "%s%s", desc.len > 0 ? " " : "", p->detail);

	switch (p->kind)
	{
		case OURO_PARAM_INT:
			*(int *) storage = (int) dflt;
			DefineCustomIntVariable(name, p->summary, desc.data, (int *) storage,
									(int) dflt, (int) lo, (int) p->max,
									context, flags, NULL, NULL, NULL);
			break;
		case OURO_PARAM_REAL:
			*(double *) storage = dflt;
			DefineCustomRealVariable(name, p->summary, desc.data, (double *) storage,
									 dflt, lo, p->max, context, flags, NULL, NULL, NULL);
			break;
		case OURO_PARAM_BOOL:
			*(bool *) storage = dflt != 0;
			DefineCustomBoolVariable(name, p->summary, desc.data, (bool *) storage,
									 dflt != 0, context, flags, NULL, NULL, NULL);
			break;
		case OURO_PARAM_ENUM:
			{
				struct config_enum_entry *options =
					palloc0(sizeof(struct config_enum_entry) * (p->n_values + 1));

				for (int k = 0; k < p->n_values; k++)
				{
					options[k].name = p->values[k].name;
					options[k].val = p->values[k].value;
				}
				*(int *) storage = (int) dflt;
				DefineCustomEnumVariable(name, p->summary, desc.data, (int *) storage,
										 (int) dflt, options, context, flags, NULL, NULL, NULL);
				break;
			}
		case OURO_PARAM_TEXT:
			DefineCustomStringVariable(name, p->summary, desc.data, (char **) storage, "",
									   context,
									   flags | ((p->flags & OURO_PARAM_SUPERUSER) ? GUC_SUPERUSER_ONLY : 0),
									   id == OURO_P_MODEL_PATH ? check_model_path : NULL,
									   NULL, NULL);
			break;
		default:
			elog(ERROR, "ouro: setting %s has a kind no GUC takes", name);
	}
}

/* ------------------------------------------------------------------------
 * Ceilings: superuser-only settings (ouro.limit_*, OURO_PARAM_LIMIT in the
 * core's table) that bound what any call of any role may use.  The
 * user-level settings and the function arguments are checked against them
 * (pg_ouro_check_limits and the callers); a value above a ceiling is an
 * error that names both.
 * ------------------------------------------------------------------------ */

static void release_idle_memory(XactEvent event, void *arg);

void
pg_ouro_check_limit(const char *what, int value, const char *limit_name, int limit)
{
	if (value > limit)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("%s %d is above the limit %s = %d", what, value, limit_name, limit),
				 errhint("A superuser sets %s.", limit_name)));
}

/*
 * The value of the user-level setting `setting` under its ceiling `ceiling`
 * (both of the core's table; value and limit: their values here).  A value
 * above the ceiling is an error, except the setting's own default, which
 * follows a ceiling set lower (an administrator lowering
 * ouro.limit_batch_size does not break the calls of roles that never set
 * ouro.batch_size).
 */
static int
under_limit(ouro_param_id setting, int value, ouro_param_id ceiling, int limit)
{
	char		name[64],
				limit_name[64];

	Assert(ouro_params[ceiling].bounds != NULL &&
		   strcmp(ouro_params[ceiling].bounds, ouro_params[setting].name) == 0);
	if (value > limit && value == (int) ouro_params[setting].dflt)
		return limit;
	snprintf(name, sizeof(name), "ouro.%s", ouro_params[setting].name);
	snprintf(limit_name, sizeof(limit_name), "ouro.%s", ouro_params[ceiling].name);
	pg_ouro_check_limit(name, value, limit_name, limit);
	return value;
}

int
pg_ouro_batch_size(void)
{
	return under_limit(OURO_P_BATCH_SIZE, ouro_batch_size_setting,
					   OURO_P_LIMIT_BATCH_SIZE, ouro_limit_batch_size);
}

int
pg_ouro_max_tokens(void)
{
	return under_limit(OURO_P_MAX_TOKENS, ouro_max_tokens_setting,
					   OURO_P_LIMIT_MAX_TOKENS, ouro_limit_max_tokens);
}

static int
context_length(void)
{
	return under_limit(OURO_P_CONTEXT_LENGTH, ouro_context_length_setting,
					   OURO_P_LIMIT_CONTEXT_LENGTH, ouro_limit_context_length);
}

void
pg_ouro_check_limits(void)
{
	if (ouro_threads_setting > 0)
		pg_ouro_check_limit("ouro.threads", ouro_threads_setting, "ouro.limit_threads",
							ouro_limit_threads);
	(void) pg_ouro_batch_size();
	(void) context_length();
	(void) pg_ouro_max_tokens();
	if (ouro_max_loops_setting > 0)
		pg_ouro_check_limit("ouro.max_loops", ouro_max_loops_setting, "ouro.limit_max_loops",
							ouro_limit_max_loops);
}

/* Declares the settings.  Starts no thread and loads no model. */
void
_PG_init(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	backend_thread = pthread_self();
	for (int i = 0; i < OURO_P_COUNT; i++)
		if ((ouro_params[i].flags & OURO_PARAM_SETTING) && !(ouro_params[i].flags & OURO_PARAM_SQLITE_ONLY))
			define_setting((ouro_param_id) i);
	MemoryContextSwitchTo(old);

	MarkGUCPrefixReserved("ouro");

	ouro_set_log(core_log, NULL);
	pg_ouro_batch_init();
	if (process_shared_preload_libraries_in_progress)
		pg_ouro_progress_init();
	RegisterXactCallback(release_idle_memory, NULL);
}

/* ------------------------------------------------------------------------
 * Files the server cannot read
 * ------------------------------------------------------------------------ */

int
pg_ouro_errhint_access(int errnum)
{
	struct passwd *pw;
	const char *user;

	if (errnum != EACCES && errnum != EPERM)
		return 0;
	/* what the server runs as is shown to superusers only, as its paths are */
	if (!superuser())
		return errhint("The database server's operating system user must be able to read the "
					   "model's files; ask a superuser to check their permissions.");
	pw = getpwuid(geteuid());
	user = pw != NULL ? pw->pw_name : psprintf("%u", (unsigned) geteuid());
	return errhint("The database server runs as the operating system user \"%s\", which must be "
				   "able to enter every folder of the path and read the model's files "
				   "(a folder under a home directory usually is not readable by it).",
				   user);
}

/* ------------------------------------------------------------------------
 * Models: the `model` argument -> a folder -> a cached ouro_model
 * ------------------------------------------------------------------------ */

#define OURO_PG_MAX_MODELS 4

static OuroModelEntry model_cache[OURO_PG_MAX_MODELS];
static int	model_cache_len = 0;
static uint64 model_cache_tick = 0;

/* The session cache (below) forgets a model that is about to be freed. */
static void session_forget_model(const ouro_model *model);

/*
 * Path of the model registered under `name`, read from the extension's
 * ouro_models table (palloc'd), or NULL when there is none.  The table sits
 * in the schema of the calling function and must belong to the extension, so
 * a table of the same name that a user created elsewhere is never consulted.
 * The read is a plain heap scan under the statement's snapshot: callers need
 * no privilege on the table, which PUBLIC cannot read.
 */
static char *
registered_model_path(Oid fn_oid, const char *name)
{
	Oid			nsp = get_func_namespace(fn_oid);
	Oid			relid = get_relname_relid("ouro_models", nsp);
	Oid			extoid = get_extension_oid("ouro", true);
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	Snapshot	snapshot;
	char	   *path = NULL;

	if (!OidIsValid(relid) || !OidIsValid(extoid) ||
		getExtensionOfObject(RelationRelationId, relid) != extoid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the ouro_models table of extension \"ouro\" is missing"),
				 errhint("Recreate the extension with DROP EXTENSION ouro; CREATE EXTENSION ouro;")));

	rel = table_open(relid, AccessShareLock);
	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, 1, RelationGetDescr(rel), &isnull);

		if (!isnull && strcmp(TextDatumGetCString(d), name) == 0)
		{
			d = heap_getattr(tuple, 2, RelationGetDescr(rel), &isnull);
			if (!isnull)
				path = TextDatumGetCString(d);
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return path;
}

/* Frees the core model of a cache entry and empties it. */
static void
model_entry_release(OuroModelEntry *e)
{
	if (e->model != NULL)
	{
		session_forget_model(e->model);
		ouro_model_free(e->model);
		e->model = NULL;
	}
}

/*
 * Frees every cached model whose files changed, the one a read faulted on
 * included (its mapping reads as zeros): the next call loads it again.
 */
static void
drop_changed_models(void)
{
	for (int i = 0; i < model_cache_len; i++)
		if (model_cache[i].model != NULL && ouro_model_files_changed(model_cache[i].model))
			model_entry_release(&model_cache[i]);
}

/*
 * msg with the folder of every cached model (and ouro.model_path) replaced
 * by "<model>": file names inside a model folder stay, the server's paths
 * are shown to superusers only.  palloc'd.
 */
/* out with every occurrence of dir replaced by "<model>" (palloc'd). */
static char *
replace_dir(char *out, const char *dir)
{
	size_t		n = dir ? strlen(dir) : 0;
	StringInfoData buf;
	const char *p,
			   *q;

	if (n == 0 || strstr(out, dir) == NULL)
		return out;
	initStringInfo(&buf);
	for (p = out; (q = strstr(p, dir)) != NULL; p = q + n)
	{
		appendBinaryStringInfo(&buf, p, q - p);
		appendStringInfoString(&buf, "<model>");
	}
	appendStringInfoString(&buf, p);
	return buf.data;
}

const char *
pg_ouro_hide_paths(const char *msg)
{
	char	   *out = pstrdup(msg);

	for (int i = -1; i < model_cache_len; i++)
	{
		const char *dir = i < 0 ? ouro_model_path_setting : model_cache[i].path;
		char	   *real;

		if (dir == NULL || dir[0] == '\0')
			continue;
		/* the core names files under the folder's real path */
		real = realpath(dir, NULL);
		if (real != NULL)
		{
			out = replace_dir(out, real);
			free(real);
		}
		out = replace_dir(out, dir);
	}
	return out;
}

/*
 * Loads `path` into entry e (whose old model, if any, is already released).
 * On failure raises ERROR naming `label` with the core's message as detail.
 */
static void
model_entry_load(OuroModelEntry *e, const char *label)
{
	struct stat st;
	ouro_model *model = NULL;
	ouro_error	err;
	ouro_load_options lo = {0};
	ouro_status status;
	instr_time	start,
				end;

	/* The folder itself is checked here, to report errno faithfully. */
	if (stat(e->path, &st) != 0)
	{
		int			save_errno = errno;

		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model folder \"%s\": %m",
						superuser() ? e->path : label),
				 pg_ouro_errhint_access(save_errno)));
	}
	if (!S_ISDIR(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model path \"%s\" is not a folder", superuser() ? e->path : label),
				 errhint("A model is a folder holding config.json, safetensors weights and tokenizer.json.")));

	INSTR_TIME_SET_CURRENT(start);
	lo.weights = (ouro_weights) ouro_weights_setting;
	status = ouro_model_load_opts(e->path, &lo, &model, &err);
	INSTR_TIME_SET_CURRENT(end);
	INSTR_TIME_SUBTRACT(end, start);
	if (status != OURO_OK)
	{
		if (model != NULL)
			ouro_model_free(model);
		/* a file of the folder the server may not read: the core says so in its message */
		if (err.status == OURO_ERR_IO && strstr(err.message, strerror(EACCES)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("could not load model \"%s\"", label),
					 errdetail_internal("%s", err.message),
					 pg_ouro_errhint_access(EACCES)));
		(void) pg_ouro_report(&err, psprintf("could not load model \"%s\"", label), NULL);
		pg_unreachable();
	}
	e->model = model;
	e->loads++;
	e->load_ms = INSTR_TIME_GET_MILLISEC(end);
}

/*
 * Finds or loads the model of `path`.  A cached model is checked once per
 * statement for changed files and reloaded then.
 */
static OuroModelEntry *
model_cache_get(const char *path, const char *label, bool *was_loaded)
{
	OuroModelEntry *e = NULL;
	TimestampTz stmt = GetCurrentStatementStartTimestamp();
	int			i;

	for (i = 0; i < model_cache_len; i++)
		if (strcmp(model_cache[i].path, path) == 0)
		{
			e = &model_cache[i];
			break;
		}

	if (e == NULL)
	{
		if (model_cache_len < OURO_PG_MAX_MODELS)
			e = &model_cache[model_cache_len++];
		else
		{
			/* evict the least recently used model */
			e = &model_cache[0];
			for (i = 1; i < model_cache_len; i++)
				if (model_cache[i].last_used < e->last_used)
					e = &model_cache[i];
			model_entry_release(e);
			pfree(e->path);
		}
		memset(e, 0, sizeof(*e));
		e->path = MemoryContextStrdup(TopMemoryContext, path);
	}

	*was_loaded = e->model != NULL;
	/* a model loaded the other way (ouro.weights changed) is loaded again */
	if (e->model != NULL && ouro_model_weights(e->model) != (ouro_weights) ouro_weights_setting)
	{
		model_entry_release(e);
		*was_loaded = false;
	}
	if (e->model != NULL && e->checked_at != stmt)
	{
		if (ouro_model_files_changed(e->model))
		{
			ereport(DEBUG1, (errmsg_internal("ouro: files of model \"%s\" changed; reloading", label)));
			model_entry_release(e);
			*was_loaded = false;
		}
	}
	if (e->model == NULL)
		model_entry_load(e, label);
	e->checked_at = stmt;
	e->last_used = ++model_cache_tick;
	return e;
}

void
pg_ouro_model_resolve(FunctionCallInfo fcinfo, int argno, OuroModelRef *ref)
{
	const char *path;

	if (argno >= 0 && argno < PG_NARGS() && !PG_ARGISNULL(argno))
	{
		char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(argno));

		path = registered_model_path(fcinfo->flinfo->fn_oid, name);
		if (path == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" is not registered", name),
					 errhint("A superuser registers models with ouro_register_model(name, path); "
							 "leave model NULL to use ouro.model_path.")));
		ref->label = name;
	}
	else
	{
		if (ouro_model_path_setting == NULL || ouro_model_path_setting[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("no model is configured"),
					 errdetail("The model argument is NULL and ouro.model_path is empty."),
					 errhint("A superuser sets ouro.model_path to a model folder, or registers "
							 "models with ouro_register_model(name, path) for the model argument.")));
		path = ouro_model_path_setting;
		/* server paths are shown to superusers only */
		ref->label = superuser() ? pstrdup(path) : "ouro.model_path";
	}
	pg_ouro_check_limits();
	ref->entry = model_cache_get(path, ref->label, &ref->was_loaded);
}

const ouro_tokenizer *
pg_ouro_tokenizer(const OuroModelRef *ref)
{
	const ouro_tokenizer *tok = ouro_model_tokenizer(ref->entry->model);

	if (tok == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no tokenizer", ref->label),
				 errhint("Put the model's tokenizer.json in its folder.")));
	return tok;
}

int
pg_ouro_context_limit(const ouro_model *model)
{
	return ouro_context_limit(model, context_length());
}

/* ------------------------------------------------------------------------
 * Sessions: one cached KV cache, reused while it fits
 * ------------------------------------------------------------------------ */

static ouro_session *cached_session = NULL;	/* core-owned; ouro_session_free */
static const ouro_model *cached_session_model = NULL;
static int	cached_n_ctx,
			cached_n_seq,
			cached_loops,
			cached_threads,
			cached_kv,
			cached_kv_type,
			cached_precision;

static void
session_forget_model(const ouro_model *model)
{
	if (cached_session != NULL && cached_session_model == model)
	{
		ouro_session_free(cached_session);
		cached_session = NULL;
		cached_session_model = NULL;
	}
}

int
pg_ouro_threads(void)
{
	if (ouro_threads_setting > 0)
	{
		pg_ouro_check_limit("ouro.threads", ouro_threads_setting, "ouro.limit_threads",
							ouro_limit_threads);
		return ouro_threads_setting;
	}
	return Max(Min(ouro_thread_count(0), ouro_limit_threads), 1);
}

ouro_session *
pg_ouro_session(const OuroModelRef *ref, int need_ctx, int n_seq, int max_loops,
				bool generation)
{
	const ouro_model *model = ref->entry->model;
	const ouro_config *cfg = ouro_model_config(model);
	int			limit = pg_ouro_context_limit(model);
	int			threads = pg_ouro_threads();
	int			loops = max_loops > 0 ? max_loops : cfg->total_ut_steps;
	int			kv = generation ? ouro_kv_cache_setting : OURO_KV_PER_STEP;
	int			kv_type = generation ? ouro_kv_type_setting : OURO_KV_F32;
	int			precision = OURO_PRECISION_EXACT;
	int			n_ctx;
	ouro_session_options opts;
	ouro_session *s = NULL;
	ouro_error	err;

	if (generation)				/* auto: what this processor runs */
		precision = ouro_precision_resolve((ouro_precision) ouro_precision_setting);
	need_ctx = Max(need_ctx, 1);
	n_seq = Max(n_seq, 1);
	pg_ouro_check_limit("max_loops", loops, "ouro.limit_max_loops", ouro_limit_max_loops);
	pg_ouro_check_limit("the call's context length", need_ctx, "ouro.limit_context_length",
						ouro_limit_context_length);
	if (cached_session != NULL && cached_session_model == model &&
		cached_n_ctx >= need_ctx && cached_n_seq >= n_seq &&
		cached_loops == loops && cached_threads == threads &&
		cached_kv == kv && cached_kv_type == kv_type && cached_precision == precision &&
		ouro_session_bytes(cached_session) <= (size_t) ouro_limit_memory_mb * 1024 * 1024)
	{
		for (int i = 0; i < cached_n_seq; i++)
			ouro_session_seq_reset(cached_session, i);
		return cached_session;
	}

	if (cached_session != NULL)
	{
		ouro_session_free(cached_session);
		cached_session = NULL;
		cached_session_model = NULL;
	}

	/* rounded up so that a batch of similar rows reuses one session */
	n_ctx = ouro_session_ctx_for(need_ctx, n_seq, limit);

	memset(&opts, 0, sizeof(opts));
	opts.n_ctx = n_ctx;
	opts.n_seq = n_seq;
	opts.max_loops = loops;
	opts.kv = (ouro_kv_mode) kv;
	opts.kv_type = (ouro_kv_type) kv_type;
	opts.precision = (ouro_precision) precision;
	opts.threads = threads;
	opts.max_bytes = (size_t) ouro_limit_memory_mb * 1024 * 1024;
	if (ouro_session_new(model, &opts, &s, &err) != OURO_OK)
	{
		if (s != NULL)
			ouro_session_free(s);
		(void) pg_ouro_report(&err, "could not create a session for the model", ref);
		pg_unreachable();
	}
	cached_session = s;
	cached_session_model = model;
	cached_n_ctx = n_ctx;
	cached_n_seq = n_seq;
	cached_loops = loops;
	cached_threads = threads;
	cached_kv = kv;
	cached_kv_type = kv_type;
	cached_precision = precision;
	return s;
}

/*
 * At the end of every transaction, a cached session larger than
 * OURO_PG_KEEP_SESSION_BYTES is freed and malloc's free memory given back
 * to the system, so an idle backend does not hold the KV cache of its
 * largest call.  Smaller sessions stay for the next call.
 */
static void
release_idle_memory(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	if (cached_session != NULL && ouro_session_bytes(cached_session) > OURO_PG_KEEP_SESSION_BYTES)
	{
		ouro_session_free(cached_session);
		cached_session = NULL;
		cached_session_model = NULL;
		malloc_trim(0);
	}
}

size_t
pg_ouro_session_bytes(const ouro_model *model, int *n_ctx, int *max_loops,
					  ouro_kv_type *kv_type, ouro_precision *precision)
{
	if (cached_session == NULL || cached_session_model != model)
		return 0;
	*n_ctx = cached_n_ctx;
	*max_loops = cached_loops;
	*kv_type = (ouro_kv_type) cached_kv_type;
	*precision = (ouro_precision) cached_precision;
	return ouro_session_kv_bytes(cached_session);
}

/* ------------------------------------------------------------------------
 * Cancel
 * ------------------------------------------------------------------------ */

/*
 * Called by the core on the backend's thread (never on a worker thread)
 * between the layers of every forward call and between decode steps.  It
 * reads the flags PostgreSQL's signal handlers set (cancel, statement
 * timeout, termination) and, when client_connection_check_interval's timer
 * has fired, checks the client connection itself, as ProcessInterrupts
 * does; it never raises.  Nonzero makes the core return
 * OURO_ERR_INTERRUPTED, and pg_ouro_report() then runs
 * CHECK_FOR_INTERRUPTS(), which raises PostgreSQL's own error (or FATAL for
 * a termination or a lost client).
 */
int
pg_ouro_cancel_check(void *ctx)
{
	if (!InterruptPending)
		return 0;
	if (QueryCancelPending || ProcDiePending || ClientConnectionLost)
		return 1;
	if (CheckClientConnectionPending)
	{
		CheckClientConnectionPending = false;
		if (client_connection_check_interval > 0)
		{
			if (!pq_check_connection())
			{
				ClientConnectionLost = true;
				return 1;
			}
			enable_timeout_after(CLIENT_CONNECTION_CHECK_TIMEOUT,
								 client_connection_check_interval);
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Rows: the error context naming the row a call works on
 * ------------------------------------------------------------------------ */

OuroRowErrorSink pg_ouro_row_sink = NULL;
void	   *pg_ouro_row_sink_ctx = NULL;

#define OURO_ROW_INPUT_SHOWN 40	/* bytes of the input a message shows */

/* Set while pg_ouro_row_error reports: the row is named in the message itself. */
static bool row_named_in_message = false;

/* "ouro_generate row 7 (prompt \"Once upon a...\")" (palloc). */
static char *
row_name(const OuroRowRef *row)
{
	int			len;
	char	   *shown;

	if (row->input == NULL)
		return psprintf("%s row " INT64_FORMAT, row->fn, row->position);
	len = row->input_len <= OURO_ROW_INPUT_SHOWN ? row->input_len :
		pg_mbcliplen(row->input, row->input_len, OURO_ROW_INPUT_SHOWN);
	shown = pnstrdup(row->input, len);
	for (char *c = shown; *c; c++)
		if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
	return psprintf("%s row " INT64_FORMAT " (%s \"%s%s\")", row->fn, row->position,
					strncmp(row->fn, "ouro_classify", 13) == 0 || strcmp(row->fn, "ouro_depth") == 0 ?
					"input" : strcmp(row->fn, "ouro_chat") == 0 ? "message" : "prompt",
					shown, len < row->input_len ? "..." : "");
}

static void
row_context(void *arg)
{
	OuroRowRef *row = (OuroRowRef *) arg;

	if (row_named_in_message)
	{
		row_named_in_message = false;
		return;
	}
	if (row->position > 0)
		errcontext("%s", row_name(row));
}

/* The row of the innermost row context with a position, or NULL. */
static OuroRowRef *
current_row(void)
{
	for (ErrorContextCallback *cb = error_context_stack; cb != NULL; cb = cb->previous)
		if (cb->callback == row_context)
			return ((OuroRowRef *) cb->arg)->position > 0 ? (OuroRowRef *) cb->arg : NULL;
	return NULL;
}

void
pg_ouro_row_push(OuroRowRef *row, ErrorContextCallback *cb)
{
	cb->callback = row_context;
	cb->arg = row;
	cb->previous = error_context_stack;
	error_context_stack = cb;
}

void
pg_ouro_row_pop(ErrorContextCallback *cb)
{
	error_context_stack = cb->previous;
}

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

bool
pg_ouro_row_error(int sqlerrcode, const char *msg, const char *detail, const char *hint)
{
	int			elevel = ouro_on_error_setting == OURO_ON_ERROR_NULL ? WARNING : ERROR;

	OuroRowRef *row = current_row();

	if (pg_ouro_row_sink != NULL)
	{
		pg_ouro_row_sink(pg_ouro_row_sink_ctx, sqlerrcode, msg, detail);
		return true;
	}
	if (row != NULL)
	{
		msg = psprintf("%s: %s", row_name(row), msg);
		row_named_in_message = true;
	}

	ereport(elevel,
			(errcode(sqlerrcode),
			 errmsg_internal("%s", msg),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
	row_named_in_message = false;
	return true;
}

bool
pg_ouro_report(const ouro_error *err, const char *what, const OuroModelRef *ref)
{
	const char *detail = err->message[0] ? err->message : ouro_status_str(err->status);

	if (!superuser())
		detail = pg_ouro_hide_paths(detail);
	switch (err->status)
	{
		case OURO_ERR_MODEL_CHANGED:
			drop_changed_models();
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("%s", what),
					 errdetail_internal("%s", detail),
					 errhint("Replace model files with mv (a new file), never by writing over them; "
							 "the next call loads the folder again.")));
			break;
		case OURO_ERR_LIMIT:
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg_internal("%s", what),
					 errdetail_internal("%s", detail),
					 errhint("Lower ouro.context_length, max_tokens or ouro.batch_size; a superuser "
							 "sets the limit with ouro.limit_memory.")));
			break;
		case OURO_ERR_INTERRUPTED:
			CHECK_FOR_INTERRUPTS();
			/* the flags were cleared or held off: still stop the statement */
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("canceling statement due to user request")));
			break;
		case OURO_ERR_CONTEXT:
			return pg_ouro_row_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
									 psprintf("%s: the input is too long", what), detail,
									 "Raise ouro.context_length, lower max_tokens or shorten the input.");
		case OURO_ERR_ARG:
			return pg_ouro_row_error(ERRCODE_INVALID_PARAMETER_VALUE, what, detail, NULL);
		case OURO_ERR_IO:
			ereport(ERROR,
					(errcode(ERRCODE_IO_ERROR),
					 errmsg_internal("%s", what),
					 errdetail_internal("%s", detail)));
			break;
		case OURO_ERR_FORMAT:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg_internal("%s", what),
					 errdetail_internal("%s", detail),
					 errhint("The model files are malformed or truncated; replace them with a complete copy.")));
			break;
		case OURO_ERR_UNSUPPORTED:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg_internal("%s", what),
					 errdetail_internal("%s", detail)));
			break;
		case OURO_ERR_NOMEM:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg_internal("%s", what),
					 errdetail_internal("%s", detail),
					 errhint("Lower ouro.context_length, max_tokens or ouro.batch_size.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg_internal("%s", what),
					 errdetail_internal("%s", detail)));
			break;
	}
	pg_unreachable();
	return false;
}

void
pg_ouro_append_double(StringInfo buf, double v)
{
	char		tmp[DOUBLE_SHORTEST_DECIMAL_LEN];

	if (isnan(v) || isinf(v))
	{
		appendStringInfoString(buf, "null");
		return;
	}
	double_to_shortest_decimal_buf(v, tmp);
	appendStringInfoString(buf, tmp);
}

/*
 * ouro_progress.c -- what a backend tells about the work it is doing: its
 * counters (ouro_stats), the shared progress table another session reads
 * (ouro_progress, the view of the same name) and progress NOTICEs.
 *
 * Every row-level entry point (the per-row functions, the batch functions,
 * the batching node, ouro_enrich) calls pg_ouro_progress after each row or
 * batch it computes.  That adds to:
 *   - this backend's counters since it started (pg_ouro_stats);
 *   - the counters of the current statement (keyed by its start time), sent
 *     as a NOTICE every ouro.progress_notice_interval seconds;
 *   - this backend's slot of a table in shared memory, one slot per backend
 *     id, when the library was loaded by shared_preload_libraries (shared
 *     memory can only be reserved then).  A slot has one writer, its
 *     backend; readers copy it under a change counter (odd while it is
 *     written) and retry, as pgstat reads backend entries.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "ouro_pg.h"

OuroStats	pg_ouro_stats;

/* ------------------------------------------------------------------------
 * The shared table
 * ------------------------------------------------------------------------ */

#define OURO_PROGRESS_FN_LEN 32
#define OURO_PROGRESS_MODEL_LEN 128

typedef struct ProgressSlot
{
	uint32		changecount;	/* odd while the backend writes the slot */
	int			pid;			/* 0 = never used */
	TimestampTz stmt_start;		/* the statement the counters belong to */
	TimestampTz updated;		/* last report */
	int64		rows;			/* rows done in the statement */
	int64		rows_total;		/* rows of the job, when known (else 0) */
	int64		tokens;			/* tokens generated in the statement */
	char		fn[OURO_PROGRESS_FN_LEN];	/* SQL function of the last report */
	char		model[OURO_PROGRESS_MODEL_LEN];	/* its model (name or path) */
} ProgressSlot;

static ProgressSlot *slots = NULL;	/* (MaxBackends) in shared memory; NULL = not preloaded */
static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;

static Size
progress_size(void)
{
	return mul_size(sizeof(ProgressSlot), MaxBackends);
}

static void
progress_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	RequestAddinShmemSpace(progress_size());
}

static void
progress_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup)
		prev_shmem_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	slots = ShmemInitStruct("ouro progress", progress_size(), &found);
	if (!found)
		memset(slots, 0, progress_size());
	LWLockRelease(AddinShmemInitLock);
}

void
pg_ouro_progress_init(void)
{
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = progress_shmem_request;
	prev_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = progress_shmem_startup;
}

/* ------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------ */

/* The current statement's counters in this backend. */
static TimestampTz cur_stmt = 0;
static int64 cur_rows = 0;
static int64 cur_tokens = 0;
static TimestampTz last_notice = 0;

void
pg_ouro_progress(const char *fn, const char *model, int64 rows, int64 tokens, int64 rows_total)
{
	TimestampTz stmt = GetCurrentStatementStartTimestamp();
	TimestampTz now = GetCurrentTimestamp();

	pg_ouro_stats.rows += rows;
	pg_ouro_stats.tokens += tokens;
	if (stmt != cur_stmt)
	{
		cur_stmt = stmt;
		cur_rows = 0;
		cur_tokens = 0;
		last_notice = stmt;
	}
	cur_rows += rows;
	cur_tokens += tokens;

	if (slots != NULL && MyBackendId != InvalidBackendId && MyBackendId <= MaxBackends)
	{
		ProgressSlot *slot = &slots[MyBackendId - 1];
		bool		new_stmt = slot->pid != MyProcPid || slot->stmt_start != stmt;

		slot->changecount++;
		pg_write_barrier();
		slot->pid = MyProcPid;
		slot->stmt_start = stmt;
		slot->updated = now;
		slot->rows = cur_rows;
		slot->tokens = cur_tokens;
		if (rows_total > 0 || new_stmt)
			slot->rows_total = rows_total;
		strlcpy(slot->fn, fn, sizeof(slot->fn));
		strlcpy(slot->model, model ? model : "", sizeof(slot->model));
		pg_write_barrier();
		slot->changecount++;
	}

	if (ouro_progress_notice_setting > 0 &&
		TimestampDifferenceExceeds(last_notice, now, ouro_progress_notice_setting * 1000))
	{
		double		secs = (double) (now - stmt) / USECS_PER_SEC;

		last_notice = now;
		ereport(NOTICE,
				(errmsg("%s: " INT64_FORMAT " rows, " INT64_FORMAT " tokens, %.1f tokens/s, %.0f s",
						fn, cur_rows, cur_tokens, secs > 0 ? cur_tokens / secs : 0.0, secs)));
	}
}

/* ------------------------------------------------------------------------
 * SQL: ouro_stats(), ouro_progress()
 * ------------------------------------------------------------------------ */

PG_FUNCTION_INFO_V1(pg_ouro_stats_fn);

/*
 * ouro_stats() -> jsonb: this backend's counters since it started: "rows"
 * (generation, classification and depth calls computed on a non-NULL
 * input, batched or not), "batched_rows" (of those, rows the batching node
 * computed), "batches" (batched core calls) and "tokens" (generated).
 */
Datum
pg_ouro_stats_fn(PG_FUNCTION_ARGS)
{
	char	   *json = psprintf("{\"rows\": " INT64_FORMAT ", \"batched_rows\": " INT64_FORMAT
							   ", \"batches\": " INT64_FORMAT ", \"tokens\": " INT64_FORMAT "}",
							   pg_ouro_stats.rows, pg_ouro_stats.batched_rows,
							   pg_ouro_stats.batches, pg_ouro_stats.tokens);

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

PG_FUNCTION_INFO_V1(pg_ouro_progress_fn);

/*
 * ouro_progress() -> SETOF (pid, function, model, rows_done, rows_total,
 * tokens, tokens_per_second, elapsed_seconds, statement_start, updated_at):
 * every backend slot that has reported, with the counters of the statement
 * it last worked on (the view ouro_progress keeps the statements still
 * running).  ERROR when the library was not preloaded.
 */
Datum
pg_ouro_progress_fn(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();

	if (slots == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("ouro_progress needs the ouro library in shared_preload_libraries"),
				 errdetail("The progress table lives in shared memory, which a library can only "
						   "reserve when the server starts."),
				 errhint("Add ouro to shared_preload_libraries in postgresql.conf and restart the "
						 "server; ouro_stats() and ouro.progress_notice_interval work without it.")));

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < MaxBackends; i++)
	{
		ProgressSlot copy;
		Datum		values[10];
		bool		nulls[10] = {0};
		double		secs;

		for (;;)
		{
			uint32		before = slots[i].changecount;

			pg_read_barrier();
			memcpy(&copy, &slots[i], sizeof(copy));
			pg_read_barrier();
			if (before == slots[i].changecount && (before & 1) == 0)
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (copy.pid == 0)
			continue;
		copy.fn[sizeof(copy.fn) - 1] = '\0';
		copy.model[sizeof(copy.model) - 1] = '\0';
		secs = (double) (now - copy.stmt_start) / USECS_PER_SEC;
		values[0] = Int32GetDatum(copy.pid);
		values[1] = CStringGetTextDatum(copy.fn);
		/* server paths are for superusers only: other roles see registered names */
		if (copy.model[0] == '/' && !superuser())
			nulls[2] = true;
		else
			values[2] = CStringGetTextDatum(copy.model);
		values[3] = Int64GetDatum(copy.rows);
		if (copy.rows_total > 0)
			values[4] = Int64GetDatum(copy.rows_total);
		else
			nulls[4] = true;
		values[5] = Int64GetDatum(copy.tokens);
		values[6] = Float8GetDatum(secs > 0 ? copy.tokens / secs : 0.0);
		values[7] = Float8GetDatum(secs);
		values[8] = TimestampTzGetDatum(copy.stmt_start);
		values[9] = TimestampTzGetDatum(copy.updated);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

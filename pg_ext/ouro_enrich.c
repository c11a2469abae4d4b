/*
 * ouro_enrich.c -- CALL ouro_enrich(table, input column, output column, ...):
 * fills a text column with ouro_generate(input) where it is NULL, as a job
 * that survives bad rows and interruptions.
 *
 * The job runs in chunks of chunk_size rows, one transaction each:
 *   1. the next rows whose output is NULL, whose input is not NULL and that
 *      are not listed as failed are read (ORDER BY primary key, FOR UPDATE
 *      SKIP LOCKED, so two jobs on one table share the work);
 *   2. their prompts run as one batched generation (ouro.batch_size
 *      sequences at a time), with a row error sink instead of ouro.on_error:
 *      a bad row (empty prompt, too long...) is recorded, not raised;
 *   3. the outputs are written, the failed rows recorded in
 *      ouro_enrich_errors (table, column, primary key as text, start of the
 *      input, SQLSTATE, message), and the chunk commits.
 * ouro_enrich runs with the caller's privileges: it needs SELECT on the
 * table and UPDATE on the output column.  ouro_enrich_errors is a view over
 * the extension's table ouro_enrich_failures that shows and lets change the
 * rows of exactly such tables, so a caller records its own failures and
 * cannot read or write another role's (see the install script).
 * A cancel, a crash or a restart loses at most the chunk in progress: run
 * the same CALL again and it goes on with the rows still NULL.  Rows listed
 * as failed are skipped until their entry is deleted.  Progress is reported
 * like any statement's (ouro_progress, ouro.progress_notice_interval).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "ouro_pg.h"

#define ENRICH_INPUT_KEPT 200	/* bytes of a failed row's input recorded */

/* What the row error sink records for the rows of a chunk. */
typedef struct EnrichChunk
{
	OuroRowRef *row;			/* the pushed row context: which row reports */
	int64		base;			/* position of the chunk's row 0, minus 1 */
	int			n;
	char	  **error;			/* (n) message of a failed row, or NULL */
	char	  **sqlstate;		/* (n) */
	char	   *batch_error;	/* a failure of the whole chunk's batch */
} EnrichChunk;

static void
enrich_sink(void *ctx, int sqlerrcode, const char *msg, const char *detail)
{
	EnrichChunk *c = (EnrichChunk *) ctx;
	char	   *text = detail ? psprintf("%s: %s", msg, detail) : pstrdup(msg);
	int64		i = c->row->position - c->base - 1;

	if (c->row->position > 0 && i >= 0 && i < c->n)
	{
		c->error[i] = text;
		c->sqlstate[i] = pstrdup(unpack_sql_state(sqlerrcode));
	}
	else
		c->batch_error = text;
}

/* A column's type, checked to exist (ERROR otherwise). */
static Oid
column_type(Oid relid, const char *column)
{
	AttrNumber	att = get_attnum(relid, column);

	if (att == InvalidAttrNumber || att < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist", column,
						get_rel_name(relid))));
	return get_atttype(relid, att);
}

/* The primary key columns of relid as "a, b" (quoted), or ERROR. */
static char *
primary_key(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		isnull;
	Datum		d;

	if (SPI_execute_with_args("SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) "
							  "FROM pg_catalog.pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord), "
							  "pg_catalog.pg_attribute a "
							  "WHERE i.indrelid = $1 AND i.indisprimary "
							  "AND a.attrelid = i.indrelid AND a.attnum = k.attnum",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "ouro_enrich: could not read the primary key");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"%s\" has no primary key", get_rel_name(relid)),
				 errdetail("ouro_enrich records failed rows by their primary key."),
				 errhint("Add a primary key to the table.")));
	return TextDatumGetCString(d);
}

PG_FUNCTION_INFO_V1(pg_ouro_enrich);

/*
 * ouro_enrich(relation regclass, input_column text, output_column text,
 * max_loops, max_tokens, temperature, exit_threshold, seed, stop, model,
 * chunk_size int) -- a procedure: see the file header.  Must be CALLed
 * outside a transaction block (it commits every chunk).
 */
Datum
pg_ouro_enrich(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *input_col,
			   *output_col,
			   *rel,
			   *key,
			   *errors_table,
			   *where,
			   *select_sql,
			   *update_sql,
			   *fail_sql;
	int			chunk_size;
	OuroGenArgs a;
	OuroModelRef ref;
	bool		atomic = !(fcinfo->context && IsA(fcinfo->context, CallContext) &&
						   !castNode(CallContext, fcinfo->context)->atomic);
	MemoryContext job_cxt;
	MemoryContext chunk_cxt;
	OuroRowRef	row = {"ouro_enrich", 0, NULL, 0};
	ErrorContextCallback cb;
	int64		done = 0,
				filled = 0,
				failed = 0,
				total = 0;
	Oid			sel_types[3] = {REGCLASSOID, TEXTOID, INT4OID};
	Datum		sel_values[3];
	Oid			upd_types[2] = {TEXTOID, TIDOID};
	Oid			fail_types[6] = {REGCLASSOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};

	if (atomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("ouro_enrich must be called outside a transaction block"),
				 errdetail("It commits after every chunk of rows, so that an interrupted job keeps its work."),
				 errhint("Run CALL ouro_enrich(...) on its own, not inside BEGIN ... COMMIT or a function.")));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("relation, input_column and output_column must not be NULL")));
	relid = PG_GETARG_OID(0);
	input_col = text_to_cstring(PG_GETARG_TEXT_PP(1));
	output_col = text_to_cstring(PG_GETARG_TEXT_PP(2));
	chunk_size = PG_ARGISNULL(10) ? 64 : PG_GETARG_INT32(10);
	if (chunk_size < 1 || chunk_size > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("chunk_size must be between 1 and 100000"),
				 errdetail("The value given is %d.", chunk_size)));
	pg_ouro_gen_args_read(fcinfo, 3, &a);

	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	(void) column_type(relid, input_col);
	if (column_type(relid, output_col) != TEXTOID && column_type(relid, output_col) != VARCHAROID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("output column \"%s\" must be of type text", output_col)));

	/* SPI's procedure context outlives the commits: the job's state lives there */
	SPI_connect_ext(SPI_OPT_NONATOMIC);
	job_cxt = CurrentMemoryContext;
	rel = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									 get_rel_name(relid));
	key = primary_key(relid);
	errors_table = quote_qualified_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)),
											  "ouro_enrich_errors");
	where = psprintf("t.%s IS NULL AND t.%s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %s e "
					 "WHERE e.relation = $1 AND e.output_column = $2 AND e.row_key = ROW(t.%s)::text)",
					 quote_identifier(output_col), quote_identifier(input_col), errors_table,
					 key);
	select_sql = psprintf("SELECT t.ctid, ROW(t.%s)::text, t.%s::text FROM %s t WHERE %s "
						  "ORDER BY %s LIMIT $3 FOR UPDATE OF t SKIP LOCKED",
						  key, quote_identifier(input_col), rel, where, key);
	update_sql = psprintf("UPDATE %s SET %s = $1 WHERE ctid = $2", rel, quote_identifier(output_col));
	fail_sql = psprintf("INSERT INTO %s (relation, output_column, row_key, input, sqlstate, error) "
						"VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (relation, output_column, row_key) "
						"DO UPDATE SET input = EXCLUDED.input, sqlstate = EXCLUDED.sqlstate, "
						"error = EXCLUDED.error, failed_at = now()", errors_table);
	sel_values[0] = ObjectIdGetDatum(relid);
	sel_values[1] = CStringGetTextDatum(output_col);
	sel_values[2] = Int32GetDatum(chunk_size);

	/* the rows still to do, for the progress report's total */
	if (SPI_execute_with_args(psprintf("SELECT count(*) FROM %s t WHERE %s", rel, where),
							  2, sel_types, sel_values, NULL, true, 1) == SPI_OK_SELECT)
	{
		bool		isnull;

		total = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	pg_ouro_model_resolve(fcinfo, 9, &ref);
	ref.label = MemoryContextStrdup(job_cxt, ref.label);
	pg_ouro_progress("ouro_enrich", ref.label, 0, 0, total);

	chunk_cxt = AllocSetContextCreate(job_cxt, "ouro_enrich chunk", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContext old;
		EnrichChunk c;
		int			n;
		Datum	   *ctids;
		char	  **keys;
		const char **inputs;
		int		   *lens;
		int64	   *positions;
		Datum	   *out;
		bool	   *out_null;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(chunk_cxt);
		old = MemoryContextSwitchTo(chunk_cxt);
		if (SPI_execute_with_args(select_sql, 3, sel_types, sel_values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "ouro_enrich: could not read the next rows");
		n = (int) SPI_processed;
		if (n == 0)
		{
			MemoryContextSwitchTo(old);
			break;
		}
		ctids = palloc(sizeof(Datum) * n);
		keys = palloc(sizeof(char *) * n);
		inputs = palloc(sizeof(char *) * n);
		lens = palloc(sizeof(int) * n);
		positions = palloc(sizeof(int64) * n);
		out = palloc(sizeof(Datum) * n);
		out_null = palloc(sizeof(bool) * n);
		for (int i = 0; i < n; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 1, &isnull));
			ItemPointer copy = palloc(sizeof(ItemPointerData));

			ItemPointerCopy(tid, copy);
			ctids[i] = PointerGetDatum(copy);
			keys[i] = SPI_getvalue(tup, desc, 2);
			inputs[i] = SPI_getvalue(tup, desc, 3);
			lens[i] = strlen(inputs[i]);
			positions[i] = done + i + 1;
		}

		/* the chunk as one batch; bad rows go to the sink */
		memset(&c, 0, sizeof(c));
		c.row = &row;
		c.base = done;
		c.n = n;
		c.error = palloc0(sizeof(char *) * n);
		c.sqlstate = palloc0(sizeof(char *) * n);
		pg_ouro_row_push(&row, &cb);
		pg_ouro_row_sink = enrich_sink;
		pg_ouro_row_sink_ctx = &c;
		PG_TRY();
		{
			pg_ouro_generate_rows(&ref, &a, n, inputs, lens, &row, positions, 1, "ouro_enrich",
								  out, out_null);
		}
		PG_FINALLY();
		{
			pg_ouro_row_sink = NULL;
			pg_ouro_row_sink_ctx = NULL;
		}
		PG_END_TRY();
		pg_ouro_row_pop(&cb);

		for (int i = 0; i < n; i++)
		{
			if (!out_null[i])
			{
				Datum		v[2] = {out[i], ctids[i]};

				if (SPI_execute_with_args(update_sql, 2, upd_types, v, NULL, false, 0) != SPI_OK_UPDATE)
					elog(ERROR, "ouro_enrich: could not update a row");
				filled++;
			}
			else
			{
				int			keep = lens[i] <= ENRICH_INPUT_KEPT ? lens[i] :
					pg_mbcliplen(inputs[i], lens[i], ENRICH_INPUT_KEPT);
				Datum		v[6];

				v[0] = ObjectIdGetDatum(relid);
				v[1] = CStringGetTextDatum(output_col);
				v[2] = CStringGetTextDatum(keys[i]);
				v[3] = PointerGetDatum(cstring_to_text_with_len(inputs[i], keep));
				v[4] = CStringGetTextDatum(c.sqlstate[i] ? c.sqlstate[i] : "22000");
				v[5] = CStringGetTextDatum(c.error[i] ? c.error[i] :
										   c.batch_error ? c.batch_error : "no result");
				if (SPI_execute_with_args(fail_sql, 6, fail_types, v, NULL, false, 0) != SPI_OK_INSERT)
					elog(ERROR, "ouro_enrich: could not record a failed row");
				failed++;
			}
		}
		done += n;
		MemoryContextSwitchTo(old);
		SPI_commit();
	}
	SPI_finish();
	ereport(NOTICE,
			(errmsg("ouro_enrich: " INT64_FORMAT " rows filled, " INT64_FORMAT " failed", filled, failed),
			 failed > 0 ? errhint("The failed rows and their errors are in ouro_enrich_errors.") : 0));
	PG_RETURN_VOID();
}

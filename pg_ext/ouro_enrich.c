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
 *
 * On a Citus distributed table the job runs on the workers: the same CALL,
 * with the shard's name for the table, on every shard through Citus's
 * run_command_on_shards (the shards in parallel, each on the worker that
 * holds it, committing its own chunks and recording its failed rows in that
 * worker's ouro_enrich_errors under the shard's name).  The coordinator only
 * counts the rows before and after and reports; a failed shard raises an
 * error naming it and its node, after the other shards kept their rows.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

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

/* The named arguments after output_column, in order (fcinfo positions 3..10). */
static const struct
{
	const char *name;
	Oid			type;
}			enrich_options[] = {
	{"max_loops", INT4OID}, {"max_tokens", INT4OID}, {"temperature", FLOAT8OID},
	{"exit_threshold", FLOAT8OID}, {"seed", INT8OID}, {"stop", TEXTARRAYOID},
	{"model", TEXTOID}, {"chunk_size", INT4OID},
};

/* Whether relid is a table of Citus's (distributed, reference or local). */
static bool
is_citus_table(Oid relid)
{
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		found;

	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return false;			/* no Citus in this database */
	SPI_connect();
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "ouro_enrich: could not read pg_dist_partition");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/* The rows of rel (quoted) whose output is NULL and input is not. */
static int64
rows_to_fill(const char *rel, const char *input_col, const char *output_col)
{
	bool		isnull;

	if (SPI_execute(psprintf("SELECT count(*) FROM %s WHERE %s IS NULL AND %s IS NOT NULL", rel,
							 quote_identifier(output_col), quote_identifier(input_col)),
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "ouro_enrich: could not count the rows to fill");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* s with every % doubled: run_command_on_shards passes its command through
 * format(), whose one %s is the shard's name. */
static char *
format_escaped(const char *s)
{
	StringInfoData b;

	initStringInfo(&b);
	for (; *s; s++)
	{
		if (*s == '%')
			appendStringInfoChar(&b, '%');
		appendStringInfoChar(&b, *s);
	}
	return b.data;
}

/*
 * The job of a Citus table, run on its shards (see the file header).
 * The arguments have been checked against the table.
 */
static void
enrich_on_shards(FunctionCallInfo fcinfo, Oid relid, const char *input_col,
				 const char *output_col)
{
	char	   *rel = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												 get_rel_name(relid));
	char	   *schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));
	StringInfoData call;
	char	   *command;
	Oid			types[2] = {REGCLASSOID, TEXTOID};
	Datum		values[2];
	int64		before,
				after,
				failed_rows = 0;
	int			shards,
				failures = 0;
	char	   *first_failure = NULL;

	/* CALL schema.ouro_enrich($s$<shard>$s$, 'input', 'output', name => value::type, ...) */
	initStringInfo(&call);
	appendStringInfo(&call, ", %s, %s", quote_literal_cstr(input_col), quote_literal_cstr(output_col));
	for (int i = 0; i < (int) lengthof(enrich_options); i++)
	{
		Oid			out;
		bool		varlena;

		if (PG_ARGISNULL(3 + i))
			continue;
		getTypeOutputInfo(enrich_options[i].type, &out, &varlena);
		appendStringInfo(&call, ", %s => %s::%s", enrich_options[i].name,
						 quote_literal_cstr(OidOutputFunctionCall(out, PG_GETARG_DATUM(3 + i))),
						 format_type_be(enrich_options[i].type));
	}
	command = psprintf("CALL %s.ouro_enrich($ouro_shard$%%s$ouro_shard$%s)",
					   format_escaped(quote_identifier(schema)), format_escaped(call.data));

	SPI_connect();
	/* run_command_on_shards runs on one copy of each shard: copies would differ */
	values[0] = ObjectIdGetDatum(relid);
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_shard_placement "
							  "JOIN pg_catalog.pg_dist_shard USING (shardid) "
							  "WHERE logicalrelid = $1 GROUP BY shardid HAVING count(*) > 1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "ouro_enrich: could not read the shard placements");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("relation \"%s\" has shards with more than one copy", get_rel_name(relid)),
				 errdetail("ouro_enrich fills one copy of each shard; the copies would differ."),
				 errhint("Use it on hash-distributed tables with one copy of each shard.")));
	before = rows_to_fill(rel, input_col, output_col);

	values[1] = CStringGetTextDatum(command);
	if (SPI_execute_with_args("SELECT s.shardid, s.success, s.result, p.nodename || ':' || p.nodeport "
							  "FROM pg_catalog.run_command_on_shards($1, $2) s "
							  "JOIN pg_catalog.pg_dist_shard_placement p USING (shardid) "
							  "ORDER BY s.shardid", 2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "ouro_enrich: could not run the job on the shards");
	shards = (int) SPI_processed;
	for (int i = 0; i < shards; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull)))
			continue;
		if (failures++ == 0)
		{
			char	   *result = SPI_getvalue(tup, desc, 3);

			if (result && strncmp(result, "ERROR:", 6) == 0)
				for (result += 6; *result == ' '; result++)
					;
			first_failure = psprintf("shard %s on %s: %s", SPI_getvalue(tup, desc, 1),
									 SPI_getvalue(tup, desc, 4), result ? result : "no result");
		}
	}
	after = rows_to_fill(rel, input_col, output_col);
	if (failures > 0)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("ouro_enrich: the job failed on %d of %d shards of \"%s\"", failures, shards,
						get_rel_name(relid)),
				 errdetail("First failure: %s", first_failure),
				 errhint("The other shards kept the " INT64_FORMAT " rows they filled; CALL ouro_enrich again to do the rest.",
						 before - after)));

	/* the rows the shards list as failed, in their workers' ouro_enrich_errors */
	values[1] = CStringGetTextDatum(psprintf("SELECT count(*) FROM %s.ouro_enrich_errors "
											 "WHERE relation = $ouro_shard$%%s$ouro_shard$::regclass "
											 "AND output_column = %s",
											 format_escaped(quote_identifier(schema)),
											 format_escaped(quote_literal_cstr(output_col))));
	if (SPI_execute_with_args("SELECT sum(result::bigint) FROM pg_catalog.run_command_on_shards($1, $2) "
							  "WHERE success", 2, types, values, NULL, false, 0) == SPI_OK_SELECT)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		failed_rows = isnull ? 0 : DatumGetInt64(DirectFunctionCall1(numeric_int8, d));
	}
	SPI_finish();
	ereport(NOTICE,
			(errmsg("ouro_enrich: " INT64_FORMAT " rows filled on %d shards of \"%s\", " INT64_FORMAT " listed as failed",
					before - after, shards, get_rel_name(relid), failed_rows),
			 failed_rows > 0 ? errhint("The failed rows are in ouro_enrich_errors on the workers, under their shards' names.") : 0));
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
	if (is_citus_table(relid))
	{
		enrich_on_shards(fcinfo, relid, input_col, output_col);
		PG_RETURN_VOID();
	}

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

/*
 * ouro_fn.c -- the SQL functions of the PostgreSQL extension.
 *
 * Each function reads its arguments (a NULL option means: the matching ouro.*
 * setting, else the model's default), resolves its model through the
 * per-backend cache of ouro_pg.c, calls the core on the backend's thread and
 * copies what the core returned into palloc'd memory before anything can
 * raise an ERROR, so that no core allocation leaks on a longjmp.
 *
 * Order follows sql/ouro--0.2.0.sql: argument helpers, generation
 * (ouro_generate, ouro_chat, ouro_generate_detail, ouro_generate_batch),
 * classification (with the batch forms), depth, tokenizer, information,
 * model registration.
 *
 * Errors: out-of-range arguments are always ERRORs (they are the query's
 * fault, not a row's); bad input of one row (a prompt longer than the
 * context, an empty prompt, an unknown token id) goes through
 * pg_ouro_row_error, which honours ouro.on_error.
 */
#include "postgres.h"

#include <math.h>
#include <sys/stat.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "ouro_pg.h"


/* ------------------------------------------------------------------------
 * Argument helpers
 * ------------------------------------------------------------------------ */

/* True when argument i is absent or NULL. */
static bool
arg_null(FunctionCallInfo fcinfo, int i)
{
	return i >= PG_NARGS() || PG_ARGISNULL(i);
}

/*
 * ERROR for an option out of its range.  The message is the core's, the same
 * in every host; the hint names the setting only where there is one.
 */
static void
range_error(ouro_param_id id, const char *value)
{
	const ouro_param *p = &ouro_params[id];
	char		msg[160];

	ouro_param_range_message(p, false, msg, sizeof(msg));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg_internal("%s", msg),
			 errdetail("The value given is %s.", value),
			 (p->flags & OURO_PARAM_SETTING) ?
			 errhint("Pass NULL for the default: the ouro.%s setting.", p->name) :
			 errhint("Pass NULL for the default (%s).", p->dflt_doc)));
}

/* Integer option i (ouro_params[id]), or dflt when NULL. */
static int
arg_int(FunctionCallInfo fcinfo, int i, ouro_param_id id, int dflt)
{
	int32		v;

	if (arg_null(fcinfo, i))
		return dflt;
	v = PG_GETARG_INT32(i);
	if (!ouro_param_in_range(&ouro_params[id], v, false))
		range_error(id, psprintf("%d", v));
	return v;
}

/* float8 option i (ouro_params[id]; NaN rejected), or dflt when NULL. */
static double
arg_double(FunctionCallInfo fcinfo, int i, ouro_param_id id, double dflt)
{
	float8		v;

	if (arg_null(fcinfo, i))
		return dflt;
	v = PG_GETARG_FLOAT8(i);
	if (!ouro_param_in_range(&ouro_params[id], v, false))
		range_error(id, psprintf("%g", v));
	return v;
}

/* text argument i as a C string (palloc), or NULL. */
static char *
arg_cstring(FunctionCallInfo fcinfo, int i)
{
	return arg_null(fcinfo, i) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(i));
}

/*
 * text[] argument i as C strings (palloc'd array of palloc'd strings).  NULL
 * elements, empty arrays and arrays of more than max_items are errors.
 */
static char **
arg_text_array(FunctionCallInfo fcinfo, int i, ouro_param_id id, int *n)
{
	const char *name = ouro_params[id].name;
	int			max_items = (int) ouro_params[id].max;
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(i);
	Datum	   *elems;
	bool	   *nulls;
	int			count;
	char	  **out;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
	if (count < 1 || count > max_items)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must hold between 1 and %d items", name, max_items),
				 errdetail("The array given holds %d items.", count)));
	out = palloc(sizeof(char *) * count);
	for (int k = 0; k < count; k++)
	{
		if (nulls[k])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", name),
					 errdetail("Item %d is NULL.", k + OURO_ITEM_BASE)));
		out[k] = TextDatumGetCString(elems[k]);
	}
	*n = count;
	return out;
}

/*
 * Encodes len bytes of text with the model's tokenizer; the ids are palloc'd.
 * Returns false (a row error under ouro.on_error = null) on failure.
 */
static bool
encode_text(const OuroModelRef *ref, const char *text, size_t len, int32 **ids, int *n)
{
	const ouro_tokenizer *tok = pg_ouro_tokenizer(ref);
	int32_t    *core_ids = NULL;	/* malloc'd by the core */
	size_t		n_ids = 0;
	ouro_error	err;

	if (ouro_tokenizer_encode(tok, text, len, &core_ids, &n_ids, &err) != OURO_OK)
	{
		ouro_free(core_ids);
		if (pg_ouro_report(&err, "could not tokenize the text", ref))
			return false;
	}
	if (n_ids > (size_t) (MaxAllocSize / sizeof(int32)))
	{
		ouro_free(core_ids);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the text has too many tokens")));
	}
	*ids = palloc(sizeof(int32) * Max(n_ids, 1));
	if (n_ids > 0)
		memcpy(*ids, core_ids, sizeof(int32) * n_ids);
	*n = (int) n_ids;
	ouro_free(core_ids);
	return true;
}

/* Row error for an input that does not fit the context. */
static bool
too_long(const char *what, int n, int limit, const ouro_model *model)
{
	const ouro_config *cfg = ouro_model_config(model);

	return pg_ouro_row_error(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
							 psprintf("%s is too long", what),
							 psprintf("It is %d tokens; the context holds %d tokens.", n, limit),
							 psprintf("Shorten it, or raise ouro.context_length (the model allows %d).",
									  cfg->max_position_embeddings));
}

/* ------------------------------------------------------------------------
 * Generation: ouro_generate, ouro_chat, ouro_generate_detail
 * ------------------------------------------------------------------------ */

void
pg_ouro_gen_args_read(FunctionCallInfo fcinfo, int first, OuroGenArgs *a)
{
	memset(a, 0, sizeof(*a));
	a->max_loops = arg_int(fcinfo, first, OURO_P_MAX_LOOPS, ouro_max_loops_setting);
	a->max_tokens = arg_int(fcinfo, first + 1, OURO_P_MAX_TOKENS, pg_ouro_max_tokens());
	a->temperature = arg_double(fcinfo, first + 2, OURO_P_TEMPERATURE,
								ouro_params[OURO_P_TEMPERATURE].dflt);
	a->threshold = arg_double(fcinfo, first + 3, OURO_P_EXIT_THRESHOLD, ouro_exit_threshold_setting);
	a->seed = arg_null(fcinfo, first + 4) ? (int64) ouro_params[OURO_P_SEED].dflt : PG_GETARG_INT64(first + 4);
	if (!arg_null(fcinfo, first + 5))
		a->stop = arg_text_array(fcinfo, first + 5, OURO_P_STOP, &a->n_stop);
	/* argument errors, whatever ouro.on_error says: no row is to blame */
	for (int i = 0; i < a->n_stop; i++)
		if (a->stop[i] == NULL || a->stop[i][0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stop string %d is empty", i + OURO_ITEM_BASE),
					 errhint("Pass non-empty stop strings, or NULL for none.")));
	pg_ouro_check_limit("max_tokens", a->max_tokens, "ouro.limit_max_tokens", ouro_limit_max_tokens);
}

/* What a generation produced, copied out of the core (palloc). */
typedef struct GenOut
{
	text	   *text;
	int			n_ids;
	int32	   *exit_steps;		/* (n_ids) */
	const char *stop_reason;	/* static */
} GenOut;

/*
 * Continues len bytes of `prompt`.  Returns false when the row gives NULL
 * (a row error under ouro.on_error = null).
 */
static bool
generate_text(const OuroModelRef *ref, const char *prompt, size_t len, const OuroGenArgs *a,
			  GenOut *out)
{
	const ouro_model *model = ref->entry->model;
	int32	   *ids;
	int			n;
	int			limit = pg_ouro_context_limit(model);
	int			max_tokens;
	ouro_session *s;
	ouro_gen_params p;
	ouro_gen_result r;
	ouro_error	err;
	const int32_t *prompts[1];
	int			lens[1];

	if (!encode_text(ref, prompt, len, &ids, &n))
		return false;
	if (n == 0)
		return !pg_ouro_row_error(ERRCODE_ZERO_LENGTH_CHARACTER_STRING,
								  "the prompt has no tokens", NULL,
								  "Pass a non-empty prompt.");
	if (n >= limit)
		return !too_long("the prompt", n, limit, model);
	/* A reply ends where the context ends. */
	max_tokens = Min(a->max_tokens, limit - n);

	s = pg_ouro_session(ref, n + max_tokens, 1, a->max_loops, true);

	memset(&p, 0, sizeof(p));
	p.max_tokens = max_tokens;
	p.temperature = (float) a->temperature;
	p.seed = (uint64_t) a->seed;
	if (a->threshold >= 0)
	{
		p.exit.kind = OURO_EXIT_THRESHOLD;
		p.exit.threshold = (float) a->threshold;
		p.depth = (ouro_depth_mode) ouro_depth_setting;
	}
	else
	{
		p.exit.kind = OURO_EXIT_DEFAULT;
		p.depth = OURO_DEPTH_FULL;
	}
	p.stop = (const char *const *) a->stop;
	p.n_stop = a->n_stop;
	p.cancel = pg_ouro_cancel_check;
	p.cancel_ctx = NULL;

	memset(&r, 0, sizeof(r));
	prompts[0] = ids;
	lens[0] = n;
	if (ouro_generate(s, 1, prompts, lens, &p, &r, &err) != OURO_OK)
	{
		ouro_gen_result_clear(&r);
		if (pg_ouro_report(&err, "could not generate text", ref))
			return false;
	}
	/* copy out of malloc'd memory before anything can raise */
	out->text = cstring_to_text_with_len(r.text ? r.text : "", r.text ? (int) r.text_len : 0);
	out->n_ids = r.n_ids;
	out->exit_steps = palloc(sizeof(int32) * Max(r.n_ids, 1));
	if (r.n_ids > 0 && r.exit_steps != NULL)
		memcpy(out->exit_steps, r.exit_steps, sizeof(int32) * r.n_ids);
	else if (r.n_ids > 0)
		memset(out->exit_steps, 0, sizeof(int32) * r.n_ids);
	out->stop_reason = ouro_stop_reason_str(r.stop_reason);
	ouro_gen_result_clear(&r);
	return true;
}

char *
pg_ouro_chat_prompt(const OuroModelRef *ref, const char *message, const char *system)
{
	const ouro_tokenizer *tok = pg_ouro_tokenizer(ref);
	ouro_chat_message msgs[2];
	size_t		n_msgs = 0;
	char	   *core_text = NULL;	/* malloc'd by the core */
	char	   *result;
	ouro_error	err;

	if (system != NULL)
	{
		msgs[n_msgs].role = "system";
		msgs[n_msgs++].content = system;
	}
	msgs[n_msgs].role = "user";
	msgs[n_msgs++].content = message;
	if (ouro_chat_render(tok, msgs, n_msgs, true, &core_text, &err) != OURO_OK)
	{
		ouro_free(core_text);
		(void) pg_ouro_report(&err, "could not render the chat template", ref);
		/* an ARG row error under on_error = null: give NULL */
		return NULL;
	}
	result = pstrdup(core_text);
	ouro_free(core_text);
	return result;
}

/*
 * Starts the row context of a per-row call (pg_ouro_row_push): its position
 * counts the calls of this expression in the statement (kept in fn_extra),
 * so for a call in a select list it is the row's number.
 */
/* Points the row context (when there is one: positions is NULL where it is
 * not) at item i of a batch, the row that reports next. */
static void
row_at(OuroRowRef *row, const int64 *positions, int i, const char *input, int len)
{
	if (row == NULL)
		return;
	row->position = positions[i];
	row->input = input;
	row->input_len = len;
}

static void
row_begin(FunctionCallInfo fcinfo, const char *fn, const char *input, int len,
		  OuroRowRef *row, ErrorContextCallback *cb)
{
	int64	   *count = (int64 *) fcinfo->flinfo->fn_extra;

	if (count == NULL)
	{
		count = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(int64));
		fcinfo->flinfo->fn_extra = count;
	}
	(*count)++;
	row->fn = fn;
	row->position = *count;
	row->input = input;
	row->input_len = len;
	pg_ouro_row_push(row, cb);
}

/*
 * One generation of a per-row function: options from argument gen_first,
 * model from argument model_arg, prompt = message (rendered with the chat
 * template when chat).  False when the row gives NULL.
 */
static bool
generate_row(FunctionCallInfo fcinfo, const char *fn, int gen_first, int model_arg, bool chat,
			 GenOut *out)
{
	OuroGenArgs a;
	OuroModelRef ref;
	text	   *message = PG_GETARG_TEXT_PP(0);
	OuroRowRef	row;
	ErrorContextCallback cb;
	const char *prompt = VARDATA_ANY(message);
	int			len = VARSIZE_ANY_EXHDR(message);
	bool		ok;

	row_begin(fcinfo, fn, prompt, len, &row, &cb);
	pg_ouro_gen_args_read(fcinfo, gen_first, &a);
	pg_ouro_model_resolve(fcinfo, model_arg, &ref);
	if (chat)
	{
		prompt = pg_ouro_chat_prompt(&ref, text_to_cstring(message), arg_cstring(fcinfo, 1));
		len = prompt ? strlen(prompt) : 0;
	}
	ok = prompt != NULL && generate_text(&ref, prompt, len, &a, out);
	pg_ouro_progress(fn, ref.label, 1, ok ? out->n_ids : 0, 0);
	pg_ouro_row_pop(&cb);
	return ok;
}

PG_FUNCTION_INFO_V1(pg_ouro_generate);

/*
 * ouro_generate(prompt, max_loops, max_tokens, temperature, exit_threshold,
 * seed, stop, model) -> text: the continuation of prompt as raw text.
 */
Datum
pg_ouro_generate(PG_FUNCTION_ARGS)
{
	GenOut		out;

	if (arg_null(fcinfo, 0) || !generate_row(fcinfo, "ouro_generate", 1, 7, false, &out))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(out.text);
}

PG_FUNCTION_INFO_V1(pg_ouro_chat);

/*
 * ouro_chat(message, system, max_loops, max_tokens, temperature,
 * exit_threshold, seed, stop, model) -> text: the assistant's reply.
 */
Datum
pg_ouro_chat(PG_FUNCTION_ARGS)
{
	GenOut		out;

	if (arg_null(fcinfo, 0) || !generate_row(fcinfo, "ouro_chat", 2, 8, true, &out))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(out.text);
}

PG_FUNCTION_INFO_V1(pg_ouro_generate_detail);

/*
 * ouro_generate_detail(same arguments as ouro_generate) -> record (text,
 * n_tokens, exit_steps int[], mean_depth, stop_reason): the text with the
 * loop step that gave each new token's logits, so the depth spent can be
 * seen and aggregated.
 */
Datum
pg_ouro_generate_detail(PG_FUNCTION_ARGS)
{
	GenOut		out;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	Datum	   *steps;
	double		sum = 0;

	if (arg_null(fcinfo, 0))
		PG_RETURN_NULL();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "ouro_generate_detail must return a record");
	tupdesc = BlessTupleDesc(tupdesc);
	if (!generate_row(fcinfo, "ouro_generate_detail", 1, 7, false, &out))
		PG_RETURN_NULL();

	steps = palloc(sizeof(Datum) * Max(out.n_ids, 1));
	for (int i = 0; i < out.n_ids; i++)
	{
		steps[i] = Int32GetDatum(out.exit_steps[i]);
		sum += out.exit_steps[i];
	}
	values[0] = PointerGetDatum(out.text);
	values[1] = Int32GetDatum(out.n_ids);
	values[2] = PointerGetDatum(construct_array(steps, out.n_ids, INT4OID, sizeof(int32), true,
												TYPALIGN_INT));
	if (out.n_ids > 0)
		values[3] = Float8GetDatum(sum / out.n_ids);
	else
		nulls[3] = true;
	values[4] = CStringGetTextDatum(out.stop_reason);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* ------------------------------------------------------------------------
 * Batching rows: ouro_generate_batch
 * ------------------------------------------------------------------------ */

/*
 * The items of a one-dimensional text[] argument (empty arrays have none):
 * Datums and NULL flags (palloc'd), their count and the array's lower bound,
 * so that results keep the subscripts of their inputs.
 */
static void
batch_items(FunctionCallInfo fcinfo, int i, const char *name, Datum **elems, bool **nulls,
			int *n, int *lbound)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(i);

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name),
				 errhint("Build it with array_agg(column ORDER BY key).")));
	*lbound = ARR_NDIM(arr) == 1 ? ARR_LBOUND(arr)[0] : 1;
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, elems, nulls, n);
}

/* The texts of n array items (NULL for a NULL item) as pointers into the
 * items and byte lengths (palloc'd arrays). */
static void
batch_texts(const Datum *elems, const bool *nulls, int n, const char ***texts, int **lens)
{
	*texts = palloc(sizeof(char *) * Max(n, 1));
	*lens = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		text	   *t = nulls[i] ? NULL : DatumGetTextPP(elems[i]);

		(*texts)[i] = t ? VARDATA_ANY(t) : NULL;
		(*lens)[i] = t ? VARSIZE_ANY_EXHDR(t) : 0;
	}
}

/* A one-dimensional array of n Datums of `type` with lower bound lbound. */
static Datum
batch_result(Datum *values, bool *nulls, int n, int lbound, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1];
	int			lbs[1];

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	if (n == 0)
		return PointerGetDatum(construct_empty_array(type));
	dims[0] = n;
	lbs[0] = lbound;
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, type, typlen, typbyval,
											  typalign));
}

/* The core's parameters for the options `a` (p borrows a's stop strings). */
static void
gen_params(const OuroGenArgs *a, int max_tokens, ouro_gen_params *p)
{
	ouro_gen_params_from_sql(p, max_tokens, a->temperature, a->threshold,
							 (ouro_depth_mode) ouro_depth_setting, a->seed,
							 (const char *const *) a->stop, a->n_stop);
	p->cancel = pg_ouro_cancel_check;
	p->cancel_ctx = NULL;
}

void
pg_ouro_generate_rows(const OuroModelRef *ref, const OuroGenArgs *a, int n,
					  const char *const *prompts, const int *lens, OuroRowRef *row,
					  const int64 *positions, int lbound, const char *fn,
					  Datum *out, bool *out_null)
{
	int			n_run = 0,
				longest = 0,
				limit = pg_ouro_context_limit(ref->entry->model);
	int32	  **ids = palloc0(sizeof(int32 *) * Max(n, 1));
	const int32_t **run_ids = palloc(sizeof(int32_t *) * Max(n, 1));
	int		   *run_lens = palloc(sizeof(int) * Max(n, 1));
	int		   *run_item = palloc(sizeof(int) * Max(n, 1));
	int64		tokens = 0;
	int			n_rows = 0;

	/* every prompt checked as ouro_generate checks it, before any runs */
	for (int i = 0; i < n; i++)
	{
		int			len;

		CHECK_FOR_INTERRUPTS();
		out[i] = (Datum) 0;
		out_null[i] = true;
		if (prompts[i] == NULL)
			continue;
		n_rows++;
		row_at(row, positions, i, prompts[i], lens[i]);
		if (!encode_text(ref, prompts[i], lens[i], &ids[i], &len))
			continue;
		if (len == 0)
		{
			if (row != NULL)
				(void) pg_ouro_row_error(ERRCODE_ZERO_LENGTH_CHARACTER_STRING,
										 "the prompt has no tokens", NULL,
										 "Pass a non-empty prompt.");
			else
				(void) pg_ouro_row_error(ERRCODE_ZERO_LENGTH_CHARACTER_STRING,
										 psprintf("item %d of prompts: the prompt has no tokens", i + OURO_ITEM_BASE),
										 NULL, "Pass non-empty prompts, or NULL for no result.");
			continue;
		}
		if (len >= limit)
		{
			(void) too_long(row != NULL ? "the prompt" : psprintf("item %d of prompts: the prompt", i + OURO_ITEM_BASE),
							len, limit, ref->entry->model);
			continue;
		}
		run_ids[n_run] = ids[i];
		run_lens[n_run] = len;
		run_item[n_run++] = i;
		longest = Max(longest, len);
	}
	if (row != NULL)
		row->position = 0;

	if (n_run > 0)
	{
		/*
		 * Room for the longest prompt and its reply.  A reply ends where the
		 * context ends, as in ouro_generate: the core caps each request at
		 * the session's context.
		 */
		int			need = a->max_tokens < limit - longest ? longest + a->max_tokens : limit;
		ouro_session *s = pg_ouro_session(ref, need, ouro_batch_seqs(pg_ouro_batch_size(), n_run),
										  a->max_loops, true);
		ouro_gen_params p;
		ouro_gen_result *r = palloc0(sizeof(ouro_gen_result) * n_run);
		ouro_error	err;

		gen_params(a, Min(a->max_tokens, limit), &p);
		/* the statement shows in ouro_progress from its first batch on */
		pg_ouro_progress(fn, ref->label, 0, 0, 0);
		if (ouro_generate(s, n_run, run_ids, run_lens, &p, r, &err) != OURO_OK)
		{
			for (int k = 0; k < n_run; k++)
				ouro_gen_result_clear(&r[k]);
			/* a row error under ouro.on_error = null: every item NULL */
			(void) pg_ouro_report(&err, "could not generate text", ref);
		}
		else
		{
			/* copy out of malloc'd memory, then release it all */
			for (int k = 0; k < n_run; k++)
			{
				out[run_item[k]] = PointerGetDatum(cstring_to_text_with_len(r[k].text ? r[k].text : "",
																			r[k].text ? (int) r[k].text_len : 0));
				out_null[run_item[k]] = false;
				tokens += r[k].n_ids;
			}
			for (int k = 0; k < n_run; k++)
				ouro_gen_result_clear(&r[k]);
		}
		pg_ouro_stats.batches++;
	}
	if (n_rows > 0)
		pg_ouro_progress(fn, ref->label, n_rows, tokens, 0);
}

PG_FUNCTION_INFO_V1(pg_ouro_generate_batch);

/*
 * ouro_generate_batch(prompts text[], max_loops, max_tokens, temperature,
 * exit_threshold, seed, stop, model) -> text[]: item i is
 * ouro_generate(prompts[i], ...) with the same options, NULL for a NULL item;
 * the subscripts are those of prompts.  The prompts run together in one
 * batched decode of ouro.batch_size sequences (more run in waves).  A bad
 * item (no tokens, longer than the context) is a row error: ERROR, or under
 * ouro.on_error = null a WARNING and NULL for that item alone.
 */
Datum
pg_ouro_generate_batch(PG_FUNCTION_ARGS)
{
	OuroGenArgs a;
	OuroModelRef ref;
	Datum	   *elems;
	bool	   *in_null;
	int			n,
				lbound;
	Datum	   *out;
	bool	   *out_null;
	const char **prompts;
	int		   *lens;

	if (arg_null(fcinfo, 0))
		PG_RETURN_NULL();
	pg_ouro_gen_args_read(fcinfo, 1, &a);
	batch_items(fcinfo, 0, "prompts", &elems, &in_null, &n, &lbound);
	if (n == 0)
		PG_RETURN_DATUM(batch_result(NULL, NULL, 0, lbound, TEXTOID));
	pg_ouro_model_resolve(fcinfo, 7, &ref);

	out = palloc0(sizeof(Datum) * n);
	out_null = palloc(sizeof(bool) * n);
	batch_texts(elems, in_null, n, &prompts, &lens);
	pg_ouro_generate_rows(&ref, &a, n, prompts, lens, NULL, NULL, lbound, "ouro_generate_batch",
						  out, out_null);
	PG_RETURN_DATUM(batch_result(out, out_null, n, lbound, TEXTOID));
}

/* ------------------------------------------------------------------------
 * Classification: ouro_classify, ouro_classify_scores
 * ------------------------------------------------------------------------ */

void
pg_ouro_classify_args_read(FunctionCallInfo fcinfo, char ***labels, int *n_labels,
						   char **instruction, int *max_loops)
{
	*max_loops = arg_int(fcinfo, 3, OURO_P_MAX_LOOPS, ouro_max_loops_setting);
	*labels = arg_text_array(fcinfo, 1, OURO_P_LABELS, n_labels);
	*instruction = arg_cstring(fcinfo, 2);
}

/*
 * Scores labels for input; arguments: input, labels, instruction, max_loops,
 * model.  Returns the probabilities (palloc, n_labels), or NULL when the row
 * gives NULL.
 */
static double *
classify(FunctionCallInfo fcinfo, const char *fn, char ***labels_out, int *n_labels)
{
	int			max_loops;
	char	  **labels;
	char	   *instruction;
	text	   *input_text = PG_GETARG_TEXT_PP(0);
	char	   *input;
	OuroModelRef ref;
	double	   *probs;
	int			need = 0;
	int			limit;
	ouro_exit	exit_rule = {OURO_EXIT_DEFAULT, 0, 0};
	OuroRowRef	row;
	ErrorContextCallback cb;

	row_begin(fcinfo, fn, VARDATA_ANY(input_text), VARSIZE_ANY_EXHDR(input_text), &row, &cb);
	pg_ouro_classify_args_read(fcinfo, &labels, n_labels, &instruction, &max_loops);
	pg_ouro_model_resolve(fcinfo, 4, &ref);
	input = text_to_cstring(input_text);
	probs = palloc(sizeof(double) * *n_labels);

	/* the session holds exactly what the core says the prompt needs */
	{
		ouro_session *s;
		ouro_error	err;
		const char *in = input;

		if (ouro_classify_n_ctx(ref.entry->model, 1, &in, (const char *const *) labels, *n_labels,
								instruction, NULL, &need, &err) != OURO_OK)
		{
			if (pg_ouro_report(&err, "could not classify the input", &ref))
				goto row_null;
		}
		limit = pg_ouro_context_limit(ref.entry->model);
		if (need > limit)
		{
			(void) too_long("the classification prompt", need, limit, ref.entry->model);
			goto row_null;		/* a row error under ouro.on_error = null */
		}
		s = pg_ouro_session(&ref, need, 1, max_loops, false);
		if (ouro_classify(s, input, (const char *const *) labels, *n_labels, instruction,
						  &exit_rule, probs, NULL, pg_ouro_cancel_check, NULL, &err) != OURO_OK)
		{
			if (pg_ouro_report(&err, "could not classify the input", &ref))
				goto row_null;
		}
	}
	pg_ouro_progress(fn, ref.label, 1, 0, 0);
	pg_ouro_row_pop(&cb);
	*labels_out = labels;
	return probs;

row_null:
	pg_ouro_progress(fn, ref.label, 1, 0, 0);
	pg_ouro_row_pop(&cb);
	return NULL;
}

/* The likeliest label of probs (the first of equals). */
static int
best_label(const double *probs, int n)
{
	int			best = 0;

	for (int i = 1; i < n; i++)
		if (probs[i] > probs[best])
			best = i;
	return best;
}

PG_FUNCTION_INFO_V1(pg_ouro_classify);

/* ouro_classify(input, labels, instruction, max_loops, model) -> text: the likeliest label. */
Datum
pg_ouro_classify(PG_FUNCTION_ARGS)
{
	char	  **labels;
	int			n;
	double	   *probs;

	if (arg_null(fcinfo, 0) || arg_null(fcinfo, 1))
		PG_RETURN_NULL();
	probs = classify(fcinfo, "ouro_classify", &labels, &n);
	if (probs == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(labels[best_label(probs, n)]));
}

/* jsonb {"label": probability, ...} in the order of labels. */
static Datum
scores_jsonb(const char *const *labels, int n, const double *probs)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, labels[i]);
		appendStringInfoString(&buf, ": ");
		pg_ouro_append_double(&buf, probs[i]);
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

PG_FUNCTION_INFO_V1(pg_ouro_classify_scores);

/* ouro_classify_scores(input, labels, instruction, max_loops, model) -> jsonb {label: probability}. */
Datum
pg_ouro_classify_scores(PG_FUNCTION_ARGS)
{
	char	  **labels;
	int			n;
	double	   *probs;

	if (arg_null(fcinfo, 0) || arg_null(fcinfo, 1))
		PG_RETURN_NULL();
	probs = classify(fcinfo, "ouro_classify_scores", &labels, &n);
	if (probs == NULL)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(scores_jsonb((const char *const *) labels, n, probs));
}

/* ------------------------------------------------------------------------
 * Batching rows: ouro_classify_batch, ouro_classify_scores_batch
 * ------------------------------------------------------------------------ */

void
pg_ouro_classify_rows(const OuroModelRef *ref, char **labels, int n_labels,
					  const char *instruction, int max_loops, int n,
					  const char *const *inputs, OuroRowRef *row, const int64 *positions,
					  int lbound, bool scores, const char *fn, Datum *out, bool *out_null)
{
	int			n_run = 0,
				need = 1,
				limit = pg_ouro_context_limit(ref->entry->model),
				n_seq;
	const char **run = palloc(sizeof(char *) * Max(n, 1));
	int		   *run_item = palloc(sizeof(int) * Max(n, 1));
	bool	   *run_ok;
	double	   *probs;
	ouro_exit	exit_rule = {OURO_EXIT_DEFAULT, 0, 0};
	bool		all_ok = false;
	int			n_rows = 0;

	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		out[i] = (Datum) 0;
		out_null[i] = true;
		if (inputs[i] == NULL)
			continue;
		n_rows++;
		row_at(row, positions, i, inputs[i], strlen(inputs[i]));
		run[n_run] = inputs[i];
		run_item[n_run++] = i;
	}
	if (row != NULL)
		row->position = 0;
	if (n_run == 0)
		goto done;

	/* the core's exact context for every input; one too long is a row error */
	{
		int		   *needs = palloc(sizeof(int) * n_run);
		int			kept = 0,
					max_need = 0;
		ouro_error	err;

		if (ouro_classify_n_ctx(ref->entry->model, n_run, run, (const char *const *) labels,
								n_labels, instruction, needs, &max_need, &err) != OURO_OK)
		{
			/* a row error under ouro.on_error = null: every item NULL */
			(void) pg_ouro_report(&err, "could not classify the inputs", ref);
			goto done;
		}
		for (int k = 0; k < n_run; k++)
		{
			if (needs[k] > limit)
			{
				row_at(row, positions, run_item[k], run[k], strlen(run[k]));
				(void) too_long(row != NULL ? "the classification prompt" :
								psprintf("item %d of inputs: the classification prompt",
										 run_item[k] + OURO_ITEM_BASE),
								needs[k], limit, ref->entry->model);
				if (row != NULL)
					row->position = 0;
				continue;
			}
			need = Max(need, needs[k]);
			run[kept] = run[k];
			run_item[kept++] = run_item[k];
		}
		n_run = kept;
		if (n_run == 0)
			goto done;
	}

	/*
	 * One whole input per group of n_labels sequences plus one for the shared
	 * prefix: max(batch_size, labels + 1) sequences (at most 257 for a long
	 * label list), no more than the inputs can use.
	 */
	n_seq = ouro_classify_seqs(pg_ouro_batch_size(), n_labels, n_run);
	probs = palloc(mul_size(sizeof(double) * n_run, n_labels));
	run_ok = palloc0(sizeof(bool) * n_run);
	pg_ouro_stats.batches++;
	pg_ouro_progress(fn, ref->label, 0, 0, 0);
	for (;;)
	{
		ouro_session *s = pg_ouro_session(ref, Min(need, limit), n_seq, max_loops, false);
		ouro_error	err;
		ouro_status st;

		st = ouro_classify_batch(s, n_run, run, (const char *const *) labels, n_labels, instruction,
								 &exit_rule, probs, NULL, pg_ouro_cancel_check, NULL, &err);
		if (st == OURO_OK)
		{
			all_ok = true;
			break;
		}
		if (st == OURO_ERR_CONTEXT && ouro_session_n_ctx(s) < limit)
		{
			need = limit;
			continue;
		}
		if (st != OURO_ERR_CONTEXT)
		{
			/* a row error under ouro.on_error = null: every item NULL */
			(void) pg_ouro_report(&err, "could not classify the inputs", ref);
			break;
		}

		/* some input does not fit: one input at a time, to name it */
		for (int k = 0; k < n_run; k++)
		{
			CHECK_FOR_INTERRUPTS();
			st = ouro_classify_batch(s, 1, &run[k], (const char *const *) labels, n_labels,
									 instruction, &exit_rule, probs + (size_t) k * n_labels, NULL,
									 pg_ouro_cancel_check, NULL, &err);
			run_ok[k] = st == OURO_OK;
			row_at(row, positions, run_item[k], run[k], strlen(run[k]));
			if (st == OURO_ERR_CONTEXT)
				(void) too_long(row != NULL ? "the classification prompt" :
								psprintf("item %d of inputs: the classification prompt",
										 run_item[k] + OURO_ITEM_BASE),
								need, limit, ref->entry->model);
			else if (st != OURO_OK)
				(void) pg_ouro_report(&err, "could not classify the input", ref);
		}
		if (row != NULL)
			row->position = 0;
		break;
	}
	for (int k = 0; k < n_run; k++)
	{
		const double *p = probs + (size_t) k * n_labels;

		if (!all_ok && !run_ok[k])
			continue;
		if (scores)
			out[run_item[k]] = scores_jsonb((const char *const *) labels, n_labels, p);
		else
			out[run_item[k]] = PointerGetDatum(cstring_to_text(labels[best_label(p, n_labels)]));
		out_null[run_item[k]] = false;
	}
done:
	if (n_rows > 0)
		pg_ouro_progress(fn, ref->label, n_rows, 0, 0);
}

/*
 * ouro_classify_batch / ouro_classify_scores_batch(inputs text[], labels,
 * instruction, max_loops, model) -> text[] / jsonb[]: item i is
 * ouro_classify(inputs[i], ...) or ouro_classify_scores(inputs[i], ...), NULL
 * for a NULL item.  The prompt tokens the inputs share (template,
 * instruction, label list) are computed once and max(ouro.batch_size,
 * labels + 1) sequences run inputs together.  An input too long for the
 * context is a row error for that item alone.
 */
static Datum
classify_batch(FunctionCallInfo fcinfo, bool scores)
{
	int			max_loops;
	int			n_labels;
	char	  **labels;
	char	   *instruction;
	Oid			type = scores ? JSONBOID : TEXTOID;
	OuroModelRef ref;
	Datum	   *elems;
	bool	   *in_null;
	int			n,
				lbound;
	const char **inputs;
	Datum	   *out;
	bool	   *out_null;

	pg_ouro_classify_args_read(fcinfo, &labels, &n_labels, &instruction, &max_loops);
	batch_items(fcinfo, 0, "inputs", &elems, &in_null, &n, &lbound);
	if (n == 0)
		return batch_result(NULL, NULL, 0, lbound, type);
	pg_ouro_model_resolve(fcinfo, 4, &ref);
	out = palloc0(sizeof(Datum) * n);
	out_null = palloc(sizeof(bool) * n);
	inputs = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
		inputs[i] = in_null[i] ? NULL : TextDatumGetCString(elems[i]);
	pg_ouro_classify_rows(&ref, labels, n_labels, instruction, max_loops, n, inputs, NULL, NULL,
						  lbound, scores,
						  scores ? "ouro_classify_scores_batch" : "ouro_classify_batch",
						  out, out_null);
	return batch_result(out, out_null, n, lbound, type);
}

PG_FUNCTION_INFO_V1(pg_ouro_classify_batch);

/* ouro_classify_batch(inputs, labels, instruction, max_loops, model) -> text[]. */
Datum
pg_ouro_classify_batch(PG_FUNCTION_ARGS)
{
	if (arg_null(fcinfo, 0) || arg_null(fcinfo, 1))
		PG_RETURN_NULL();
	PG_RETURN_DATUM(classify_batch(fcinfo, false));
}

PG_FUNCTION_INFO_V1(pg_ouro_classify_scores_batch);

/* ouro_classify_scores_batch(inputs, labels, instruction, max_loops, model) -> jsonb[]. */
Datum
pg_ouro_classify_scores_batch(PG_FUNCTION_ARGS)
{
	if (arg_null(fcinfo, 0) || arg_null(fcinfo, 1))
		PG_RETURN_NULL();
	PG_RETURN_DATUM(classify_batch(fcinfo, true));
}

/* ------------------------------------------------------------------------
 * Depth: ouro_depth, ouro_token_depths
 * ------------------------------------------------------------------------ */

/* The gate's view of every token of input (palloc'd outputs). */
typedef struct DepthOut
{
	int32	   *ids;			/* (n) */
	int			n;
	int			loops;			/* columns of pdf */
	float	   *pdf;			/* (n, loops) */
	double	   *expected;		/* (n) */
	int32	   *step;			/* (n) */
} DepthOut;

/* Runs ouro_depth on argument 0; false when the row gives NULL. */
static bool
depth_run(FunctionCallInfo fcinfo, const OuroModelRef *ref, double threshold, bool want_pdf,
		  DepthOut *d)
{
	text	   *input = PG_GETARG_TEXT_PP(0);
	int			limit = pg_ouro_context_limit(ref->entry->model);
	ouro_session *s;
	ouro_error	err;

	memset(d, 0, sizeof(*d));
	if (!encode_text(ref, VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input), &d->ids, &d->n))
		return false;
	if (d->n == 0)
		return true;
	if (d->n > limit)
		return !too_long("the input", d->n, limit, ref->entry->model);
	s = pg_ouro_session(ref, d->n, 1, 0, false);
	d->loops = ouro_session_max_loops(s);
	d->expected = palloc(sizeof(double) * d->n);
	d->step = palloc(sizeof(int32) * d->n);
	if (want_pdf)
		d->pdf = palloc(mul_size(sizeof(float) * d->n, d->loops));
	if (ouro_depth(s, d->ids, d->n, (float) threshold, d->pdf, d->expected, d->step,
				   pg_ouro_cancel_check, NULL, &err) != OURO_OK)
	{
		if (pg_ouro_report(&err, "could not compute the depth", ref))
			return false;
	}
	return true;
}

double
pg_ouro_depth_args_read(FunctionCallInfo fcinfo)
{
	return arg_double(fcinfo, 1, OURO_P_EXIT_THRESHOLD, -1.0);
}

/*
 * Sequences a batch of depth inputs of up to need tokens runs at once: up to
 * ouro.batch_size, fewer when the per-step f32 cache of that many would pass
 * ouro.limit_memory_mb (one input alone is the row-by-row call's session).
 */
static int
depth_seqs(const ouro_model *model, int need, int n_run)
{
	int			n_seq = Min(pg_ouro_batch_size(), n_run);
	ouro_session_options o;

	memset(&o, 0, sizeof(o));
	o.kv = OURO_KV_PER_STEP;
	o.kv_type = OURO_KV_F32;
	o.precision = OURO_PRECISION_EXACT;
	for (; n_seq > 1; n_seq /= 2)
	{
		o.n_seq = n_seq;
		o.n_ctx = ouro_session_ctx_for(need, n_seq, pg_ouro_context_limit(model));
		if (ouro_session_bytes_for(model, &o) <= (size_t) ouro_limit_memory_mb * 1024 * 1024)
			break;
	}
	return Max(n_seq, 1);
}

void
pg_ouro_depth_rows(const OuroModelRef *ref, double threshold, int n, const char *const *inputs,
				   const int *lens, OuroRowRef *row, const int64 *positions, const char *fn,
				   Datum *out, bool *out_null)
{
	int			limit = pg_ouro_context_limit(ref->entry->model),
				n_run = 0,
				need = 1,
				n_rows = 0;
	int32	  **ids = palloc(sizeof(int32 *) * Max(n, 1));
	int		   *n_ids = palloc(sizeof(int) * Max(n, 1));
	int		   *run_item = palloc(sizeof(int) * Max(n, 1));
	size_t		total = 0;

	for (int i = 0; i < n; i++)
	{
		int32	   *t;
		int			nt;

		CHECK_FOR_INTERRUPTS();
		out[i] = (Datum) 0;
		out_null[i] = true;
		if (inputs[i] == NULL)
			continue;
		n_rows++;
		row_at(row, positions, i, inputs[i], lens[i]);
		/* as row by row: a text that cannot be encoded or is too long is a row error */
		if (!encode_text(ref, inputs[i], lens[i], &t, &nt) || nt == 0)
			continue;
		if (nt > limit)
		{
			(void) too_long(row != NULL ? "the input" :
							psprintf("item %d of inputs: the input", i + OURO_ITEM_BASE),
							nt, limit, ref->entry->model);
			continue;
		}
		ids[n_run] = t;
		n_ids[n_run] = nt;
		run_item[n_run++] = i;
		need = Max(need, nt);
		total += nt;
	}
	if (row != NULL)
		row->position = 0;
	if (n_run > 0)
	{
		ouro_session *s = pg_ouro_session(ref, need, depth_seqs(ref->entry->model, need, n_run),
										  0, false);
		double	   *expected = palloc(sizeof(double) * total);
		int32	   *step = palloc(sizeof(int32) * total);
		ouro_error	err;

		pg_ouro_stats.batches++;
		if (ouro_depth_batch(s, n_run, (const int32_t *const *) ids, n_ids, (float) threshold, NULL,
							 expected, step, pg_ouro_cancel_check, NULL, &err) != OURO_OK)
			/* a row error under ouro.on_error = null: every item NULL */
			(void) pg_ouro_report(&err, "could not compute the depth", ref);
		else
			for (int k = 0, at = 0; k < n_run; at += n_ids[k], k++)
			{
				double		sum = 0;

				for (int j = at; j < at + n_ids[k]; j++)
					sum += threshold >= 0 ? (double) step[j] : expected[j];
				out[run_item[k]] = Float8GetDatum(sum / n_ids[k]);
				out_null[run_item[k]] = false;
			}
	}
	if (n_rows > 0)
		pg_ouro_progress(fn, ref->label, n_rows, 0, 0);
}

PG_FUNCTION_INFO_V1(pg_ouro_depth);

/*
 * ouro_depth(input, exit_threshold, model) -> float8: mean over input's
 * tokens of the expected exit step (with exit_threshold: the Q-exit step).
 * NULL for NULL input or input without tokens.
 */
Datum
pg_ouro_depth(PG_FUNCTION_ARGS)
{
	double		threshold;
	OuroModelRef ref;
	DepthOut	d;
	double		sum = 0;
	text	   *input;
	OuroRowRef	row;
	ErrorContextCallback cb;
	bool		ok;

	if (arg_null(fcinfo, 0))
		PG_RETURN_NULL();
	input = PG_GETARG_TEXT_PP(0);
	row_begin(fcinfo, "ouro_depth", VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input), &row, &cb);
	threshold = pg_ouro_depth_args_read(fcinfo);
	pg_ouro_model_resolve(fcinfo, 2, &ref);
	ok = depth_run(fcinfo, &ref, threshold, false, &d) && d.n > 0;
	pg_ouro_progress("ouro_depth", ref.label, 1, 0, 0);
	pg_ouro_row_pop(&cb);
	if (!ok)
		PG_RETURN_NULL();
	for (int i = 0; i < d.n; i++)
		sum += threshold >= 0 ? (double) d.step[i] : d.expected[i];
	PG_RETURN_FLOAT8(sum / d.n);
}

PG_FUNCTION_INFO_V1(pg_ouro_depth_batch);

/*
 * ouro_depth_batch(inputs text[], exit_threshold, model) -> float8[]: item i
 * is ouro_depth(inputs[i], ...), NULL for a NULL item or one without tokens;
 * the inputs run together as sequences of one forward pass (ouro.batch_size
 * at a time).  An input too long for the context is a row error for that
 * item alone.
 */
Datum
pg_ouro_depth_batch(PG_FUNCTION_ARGS)
{
	double		threshold;
	OuroModelRef ref;
	Datum	   *elems;
	bool	   *in_null;
	int			n,
				lbound;
	const char **inputs;
	int		   *lens;
	Datum	   *out;
	bool	   *out_null;

	if (arg_null(fcinfo, 0))
		PG_RETURN_NULL();
	threshold = pg_ouro_depth_args_read(fcinfo);
	batch_items(fcinfo, 0, "inputs", &elems, &in_null, &n, &lbound);
	if (n == 0)
		return batch_result(NULL, NULL, 0, lbound, FLOAT8OID);
	pg_ouro_model_resolve(fcinfo, 2, &ref);
	out = palloc0(sizeof(Datum) * n);
	out_null = palloc(sizeof(bool) * n);
	batch_texts(elems, in_null, n, &inputs, &lens);
	pg_ouro_depth_rows(&ref, threshold, n, inputs, lens, NULL, NULL, "ouro_depth_batch", out,
					   out_null);
	return batch_result(out, out_null, n, lbound, FLOAT8OID);
}

PG_FUNCTION_INFO_V1(pg_ouro_token_depths);

/*
 * ouro_token_depths(input, exit_threshold, model) -> SETOF (pos, token,
 * exit_pdf float8[], expected_depth, exit_step): the same, token by token.
 */
Datum
pg_ouro_token_depths(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	double		threshold;
	OuroModelRef ref;
	DepthOut	d;
	const ouro_tokenizer *tok;

	InitMaterializedSRF(fcinfo, 0);
	if (arg_null(fcinfo, 0))
		return (Datum) 0;
	threshold = arg_double(fcinfo, 1, OURO_P_EXIT_THRESHOLD, -1.0);
	pg_ouro_model_resolve(fcinfo, 2, &ref);
	tok = pg_ouro_tokenizer(&ref);
	if (!depth_run(fcinfo, &ref, threshold, true, &d))
		return (Datum) 0;
	for (int i = 0; i < d.n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		Datum	   *pdf = palloc(sizeof(Datum) * d.loops);
		char	   *piece = NULL;	/* malloc'd by the core */
		size_t		piece_len = 0;
		ouro_error	err;

		if (ouro_tokenizer_decode(tok, &d.ids[i], 1, false, &piece, &piece_len, &err) != OURO_OK)
		{
			ouro_free(piece);
			piece = NULL;
		}
		for (int t = 0; t < d.loops; t++)
			pdf[t] = Float8GetDatum((double) d.pdf[(size_t) i * d.loops + t]);
		values[0] = Int32GetDatum(i);
		if (piece != NULL)
			values[1] = PointerGetDatum(cstring_to_text_with_len(piece, (int) piece_len));
		else
			nulls[1] = true;
		ouro_free(piece);
		values[2] = PointerGetDatum(construct_array(pdf, d.loops, FLOAT8OID, sizeof(float8),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[3] = Float8GetDatum(d.expected[i]);
		values[4] = Int32GetDatum(d.step[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		pfree(pdf);
	}
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * Tokenizer: ouro_tokenize, ouro_detokenize, ouro_token_count
 * ------------------------------------------------------------------------ */

PG_FUNCTION_INFO_V1(pg_ouro_tokenize);

/* ouro_tokenize(text, model) -> int[]: the token ids of text. */
Datum
pg_ouro_tokenize(PG_FUNCTION_ARGS)
{
	OuroModelRef ref;
	text	   *input;
	int32	   *ids;
	int			n;
	Datum	   *elems;

	if (arg_null(fcinfo, 0))
		PG_RETURN_NULL();
	pg_ouro_model_resolve(fcinfo, 1, &ref);
	input = PG_GETARG_TEXT_PP(0);
	if (!encode_text(&ref, VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input), &ids, &n))
		PG_RETURN_NULL();
	elems = palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
		elems[i] = Int32GetDatum(ids[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(pg_ouro_token_count);

/* ouro_token_count(text, model) -> int: the number of tokens of text. */
Datum
pg_ouro_token_count(PG_FUNCTION_ARGS)
{
	OuroModelRef ref;
	text	   *input;
	int32	   *ids;
	int			n;

	if (arg_null(fcinfo, 0))
		PG_RETURN_NULL();
	pg_ouro_model_resolve(fcinfo, 1, &ref);
	input = PG_GETARG_TEXT_PP(0);
	if (!encode_text(&ref, VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input), &ids, &n))
		PG_RETURN_NULL();
	PG_RETURN_INT32(n);
}

PG_FUNCTION_INFO_V1(pg_ouro_detokenize);

/*
 * ouro_detokenize(ids int[], model) -> text (special tokens kept, so that it
 * inverts ouro_tokenize).
 */
Datum
pg_ouro_detokenize(PG_FUNCTION_ARGS)
{
	OuroModelRef ref;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int32_t    *ids;
	int			vocab;
	const ouro_tokenizer *tok;
	char	   *core_text = NULL;	/* malloc'd by the core */
	size_t		len = 0;
	ouro_error	err;
	text	   *result;

	if (arg_null(fcinfo, 0))
		PG_RETURN_NULL();
	pg_ouro_model_resolve(fcinfo, 1, &ref);
	tok = pg_ouro_tokenizer(&ref);
	vocab = ouro_tokenizer_vocab_size(tok);
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("ids must be a one-dimensional array")));
	deconstruct_array(arr, INT4OID, sizeof(int32), true, TYPALIGN_INT, &elems, &nulls, &n);
	ids = palloc(sizeof(int32_t) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("ids must not contain NULL"),
					 errdetail("Item %d is NULL.", i + OURO_ITEM_BASE)));
		ids[i] = DatumGetInt32(elems[i]);
		if (ids[i] < 0 || ids[i] >= vocab)
		{
			if (pg_ouro_row_error(ERRCODE_INVALID_PARAMETER_VALUE,
								  psprintf("token id %d is out of range", ids[i]),
								  psprintf("Item %d is not between 0 and %d, the model's vocabulary.",
										   i + 1, vocab - 1),
								  NULL))
				PG_RETURN_NULL();
		}
	}
	if (ouro_tokenizer_decode(tok, ids, (size_t) n, false, &core_text, &len, &err) != OURO_OK)
	{
		ouro_free(core_text);
		if (pg_ouro_report(&err, "could not decode the ids", &ref))
			PG_RETURN_NULL();
	}
	result = cstring_to_text_with_len(core_text, (int) len);
	ouro_free(core_text);
	PG_RETURN_TEXT_P(result);
}

/* ------------------------------------------------------------------------
 * Information: ouro_model_info, ouro_version, ouro_build_info
 * ------------------------------------------------------------------------ */

/* Appends the members of the JSON object `obj` (without its braces) to buf. */
static void
append_object_members(StringInfo buf, const char *obj)
{
	const char *start = strchr(obj, '{');
	const char *end = strrchr(obj, '}');

	if (start == NULL || end == NULL || end <= start)
		elog(ERROR, "ouro: the core returned a malformed JSON object");
	appendBinaryStringInfo(buf, start + 1, end - start - 1);
}

PG_FUNCTION_INFO_V1(pg_ouro_model_info);

/*
 * ouro_model_info(model) -> jsonb: the core's description (config, parameter
 * count, dtypes, file and mapped bytes) plus this backend's state: "name",
 * "path", "loaded_in_process" (loaded before this call), "loads", "load_ms",
 * "session_kv_bytes", "session_n_ctx", "session_max_loops", "session_kv_type"
 * and "session_precision" (the backend's cached session, left by the last
 * call: a generation's settings, or f32 / exact after classification and
 * depth; 0, 0, 0, null, null when it belongs to another model or none).
 */
Datum
pg_ouro_model_info(PG_FUNCTION_ARGS)
{
	OuroModelRef ref;
	char	   *core_json;		/* malloc'd by the core */
	char	   *copy;
	StringInfoData buf;
	int			n_ctx = 0,
				loops = 0;
	size_t		kv;
	ouro_kv_type kv_type = OURO_KV_F32;
	ouro_precision precision = OURO_PRECISION_EXACT;

	pg_ouro_model_resolve(fcinfo, 0, &ref);
	core_json = ouro_model_info_json(ref.entry->model);
	if (core_json == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	copy = pstrdup(core_json);
	ouro_free(core_json);
	if (!superuser())
		copy = (char *) pg_ouro_hide_paths(copy);	/* "path": "<model>" */
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_object_members(&buf, copy);
	appendStringInfoString(&buf, ", \"name\": ");
	escape_json(&buf, arg_null(fcinfo, 0) ? "" : ref.label);
	appendStringInfoString(&buf, ", \"path\": ");
	if (superuser())
		escape_json(&buf, ref.entry->path);
	else
		appendStringInfoString(&buf, "null");	/* server paths: superusers only */
	appendStringInfo(&buf, ", \"loaded_in_process\": %s, \"loads\": %d, \"load_ms\": ",
					 ref.was_loaded ? "true" : "false", ref.entry->loads);
	pg_ouro_append_double(&buf, ref.entry->load_ms);
	kv = pg_ouro_session_bytes(ref.entry->model, &n_ctx, &loops, &kv_type, &precision);
	appendStringInfo(&buf, ", \"session_kv_bytes\": %zu, \"session_n_ctx\": %d, "
					 "\"session_max_loops\": %d", kv, n_ctx, loops);
	if (kv > 0)
		appendStringInfo(&buf, ", \"session_kv_type\": \"%s\", \"session_precision\": \"%s\"}",
						 kv_type == OURO_KV_F16 ? "f16" : "f32",
						 precision == OURO_PRECISION_BF16 ? "bf16" : "exact");
	else
		appendStringInfoString(&buf, ", \"session_kv_type\": null, \"session_precision\": null}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

PG_FUNCTION_INFO_V1(pg_ouro_version);

/* ouro_version() -> text: "0.2.0". */
Datum
pg_ouro_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(ouro_version()));
}

PG_FUNCTION_INFO_V1(pg_ouro_build_info);

/*
 * ouro_build_info() -> jsonb: the core's build (version, simd, openmp, blas,
 * threads) plus "postgres" (the server version built against) and
 * "threads_used" (what ouro.threads gives now).
 */
Datum
pg_ouro_build_info(PG_FUNCTION_ARGS)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	append_object_members(&buf, ouro_build_info());
	appendStringInfo(&buf, ", \"postgres\": \"%s\", \"threads_used\": %d}",
					 PG_VERSION, pg_ouro_threads());
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* ------------------------------------------------------------------------
 * Model registration: ouro_register_model, ouro_unregister_model
 *
 * Named models live in the extension's table ouro_models (name, path), not
 * in backend memory: a registration must be seen by every backend and by the
 * parallel workers of a query, survive reconnects and be dumped with the
 * database.  PUBLIC has no privilege on the table; these functions check
 * superuser() themselves, so GRANT EXECUTE cannot hand the right to choose
 * server paths to an ordinary role.
 * ------------------------------------------------------------------------ */

static void
require_superuser(const char *fn)
{
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", fn),
				 errdetail("Only superusers may choose which files the server loads."),
				 errhint("Ask a superuser to register the model, then pass its name as the model argument.")));
}

/* Qualified name of the ouro_models table, in the schema of the calling function. */
static char *
models_table(FunctionCallInfo fcinfo)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);

	return quote_qualified_identifier(get_namespace_name(nsp), "ouro_models");
}

PG_FUNCTION_INFO_V1(pg_ouro_register_model);

/*
 * ouro_register_model(name, path) -> void: makes `name` select the model
 * folder `path` (replacing an earlier registration of the name).
 */
Datum
pg_ouro_register_model(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *path;
	struct stat st;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	require_superuser("ouro_register_model");
	if (arg_null(fcinfo, 0) || arg_null(fcinfo, 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name and path must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model name must not be empty")));
	if (path[0] != '/')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model path must be absolute"),
				 errdetail("The path given is \"%s\".", path),
				 errhint("Give the absolute path of a model folder on the server.")));
	if (stat(path, &st) != 0)
	{
		int			save_errno = errno;

		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model folder \"%s\": %m", path),
				 pg_ouro_errhint_access(save_errno)));
	}
	if (!S_ISDIR(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model path \"%s\" is not a folder", path),
				 errhint("A model is a folder holding config.json, safetensors weights and tokenizer.json.")));

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(path);
	SPI_connect();
	if (SPI_execute_with_args(psprintf("INSERT INTO %s (name, path) VALUES ($1, $2) "
									   "ON CONFLICT (name) DO UPDATE SET path = EXCLUDED.path",
									   models_table(fcinfo)),
							  2, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "ouro: could not insert into ouro_models");
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(pg_ouro_unregister_model);

/* ouro_unregister_model(name) -> bool: forgets a name; false when it was not registered. */
Datum
pg_ouro_unregister_model(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		found;

	require_superuser("ouro_unregister_model");
	if (arg_null(fcinfo, 0))
		PG_RETURN_NULL();
	values[0] = PointerGetDatum(PG_GETARG_TEXT_PP(0));
	SPI_connect();
	if (SPI_execute_with_args(psprintf("DELETE FROM %s WHERE name = $1", models_table(fcinfo)),
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "ouro: could not delete from ouro_models");
	found = SPI_processed > 0;
	SPI_finish();
	PG_RETURN_BOOL(found);
}

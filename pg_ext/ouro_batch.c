/*
 * ouro_batch.c -- automatic batching of per-row calls: a planner hook and the
 * custom scan node "OuroBatch" it places.
 *
 * The query users write is `SELECT id, ouro_generate(prompt) FROM questions`
 * (or `UPDATE questions SET answer = ouro_generate(prompt)`): one call per
 * row, each a single-sequence decode.  The same machine decodes several
 * times more tokens per second when rows share a batch, so:
 *
 *   planning   after the standard planner, the hook walks down the plan's
 *              spine (through Limit, Sort, LockRows, Gather, ModifyTable...)
 *              to the first node whose target list calls ouro_generate,
 *              ouro_chat, ouro_classify, ouro_classify_scores or ouro_depth
 *              at top level.
 *              That node N keeps computing everything else, but instead of
 *              each call it outputs the call's arguments as extra (junk)
 *              columns; an OuroBatch node B is put over N:
 *
 *                  ... -> B (the calls' results, N's other columns) -> N
 *
 *   execution  B pulls a batch of rows from N, reads each call's arguments,
 *              groups the rows whose options are equal (same max_tokens,
 *              model, labels...), runs each group as one batched decode,
 *              classification or depth profile (through the same code as
 *              ouro_generate_batch and ouro_classify_batch; ouro_depth_batch
 *              of the core), then returns the rows in their order.
 *
 * Results are those of row-by-row evaluation: the batched decode gives each
 * prompt the text it gets alone (same seed per sequence, same context room),
 * NULL inputs give NULL without reading options, and a bad row is a row
 * error (ouro.on_error) whose message names the row.  What changes is the
 * order of evaluation: a batch's calls run before its first row is returned.
 *
 * Batch sizes: under a LIMIT with a constant count a batch is never larger
 * than the rows still wanted; for cursors and other limits batches start at
 * one row and double; otherwise (the whole result is read: SELECT, UPDATE,
 * INSERT ... SELECT, CREATE TABLE AS) every batch has ouro.batch_size rows.
 * A batch's rows are copied into a memory context reset per batch, so memory
 * is bounded by ouro.batch_size, not by the table.
 *
 * Calls in WHERE, join conditions or nested inside other expressions are
 * left alone and run row by row.  Parallel plans put B under the Gather, so
 * every worker batches its own rows; there B is marked parallel-aware, only
 * so that it gets a few bytes of the parallel query's shared memory, where
 * the workers add their batch counters for the leader's EXPLAIN ANALYZE (as
 * Sort and Hash hand their statistics back).  The hook only runs once the library is
 * loaded: with ouro in shared_preload_libraries (or session_preload_libraries)
 * every statement is batched; otherwise the first statement of a session
 * that loads the library is planned before it and runs row by row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/parallel.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/planner.h"
#include "port/atomics.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "ouro_pg.h"

/* ------------------------------------------------------------------------
 * The functions batched
 * ------------------------------------------------------------------------ */

typedef enum BatchKind
{
	BATCH_GENERATE,
	BATCH_CHAT,
	BATCH_CLASSIFY,
	BATCH_SCORES,
	BATCH_DEPTH
} BatchKind;

#define BATCH_MAX_ARGS 9

static const struct
{
	const char *prosrc;			/* C symbol of the SQL function */
	const char *fn;				/* SQL name, for messages */
	int			nargs;
	int			opt_first;		/* first option argument */
	int			model_arg;
} batch_kinds[] = {
	[BATCH_GENERATE] = {"pg_ouro_generate", "ouro_generate", 8, 1, 7},
	[BATCH_CHAT] = {"pg_ouro_chat", "ouro_chat", 9, 2, 8},
	[BATCH_CLASSIFY] = {"pg_ouro_classify", "ouro_classify", 5, 1, 4},
	[BATCH_SCORES] = {"pg_ouro_classify_scores", "ouro_classify_scores", 5, 1, 4},
	[BATCH_DEPTH] = {"pg_ouro_depth", "ouro_depth", 3, 1, 2},
};

/* How batch sizes grow (custom_private). */
typedef enum BatchGrowth
{
	GROWTH_FULL,				/* every batch ouro.batch_size rows */
	GROWTH_BOUNDED,				/* no more than the LIMIT still wants, then doubling */
	GROWTH_DOUBLING				/* 1, 2, 4 ... ouro.batch_size */
} BatchGrowth;

/* Which batch kind funcid is (a C function of this library), or -1. */
static int
call_kind(Oid funcid)
{
	HeapTuple	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Form_pg_proc proc;
	Datum		d;
	bool		isnull;
	int			kind = -1;

	if (!HeapTupleIsValid(tp))
		return -1;
	proc = (Form_pg_proc) GETSTRUCT(tp);
	if (proc->prolang == ClanguageId && !proc->proretset)
	{
		d = SysCacheGetAttr(PROCOID, tp, Anum_pg_proc_probin, &isnull);
		if (!isnull && strstr(TextDatumGetCString(d), "ouro") != NULL)
		{
			char	   *src;

			d = SysCacheGetAttr(PROCOID, tp, Anum_pg_proc_prosrc, &isnull);
			src = isnull ? "" : TextDatumGetCString(d);
			for (int k = 0; k < lengthof(batch_kinds); k++)
				if (strcmp(src, batch_kinds[k].prosrc) == 0 && proc->pronargs == batch_kinds[k].nargs)
					kind = k;
		}
	}
	ReleaseSysCache(tp);
	return kind;
}

/* The batch kind of a target entry's expression, or -1. */
static int
tle_kind(TargetEntry *tle)
{
	FuncExpr   *fe;

	if (!IsA(tle->expr, FuncExpr))
		return -1;
	fe = (FuncExpr *) tle->expr;
	if (fe->funcretset || list_length(fe->args) > BATCH_MAX_ARGS ||
		expression_returns_set((Node *) fe->args))
		return -1;
	{
		int			kind = call_kind(fe->funcid);

		if (kind >= 0 && list_length(fe->args) != batch_kinds[kind].nargs)
			return -1;
		return kind;
	}
}

/* ------------------------------------------------------------------------
 * Planning: the hook and the placement of the node
 * ------------------------------------------------------------------------ */

static planner_hook_type prev_planner = NULL;
static CustomScanMethods batch_scan_methods;
static CustomExecMethods batch_exec_methods;

/* Nodes whose target list may hold the calls (they project, row by row). */
static bool
projects_rows(Plan *plan)
{
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
		case T_SubqueryScan:
		case T_FunctionScan:
		case T_ValuesScan:
		case T_CteScan:
		case T_Result:
		case T_NestLoop:
		case T_MergeJoin:
		case T_HashJoin:
		case T_Gather:
			return true;
		default:
			return false;
	}
}

/* Largest plan_node_id of a plan tree. */
static int
max_node_id(Plan *plan)
{
	int			m;
	ListCell   *lc;
	List	   *children = NIL;

	if (plan == NULL)
		return -1;
	m = plan->plan_node_id;
	m = Max(m, max_node_id(plan->lefttree));
	m = Max(m, max_node_id(plan->righttree));
	if (IsA(plan, Append))
		children = ((Append *) plan)->appendplans;
	else if (IsA(plan, MergeAppend))
		children = ((MergeAppend *) plan)->mergeplans;
	else if (IsA(plan, BitmapAnd))
		children = ((BitmapAnd *) plan)->bitmapplans;
	else if (IsA(plan, BitmapOr))
		children = ((BitmapOr *) plan)->bitmapplans;
	else if (IsA(plan, CustomScan))
		children = ((CustomScan *) plan)->custom_plans;
	else if (IsA(plan, SubqueryScan))
		m = Max(m, max_node_id(((SubqueryScan *) plan)->subplan));
	foreach(lc, children)
		m = Max(m, max_node_id((Plan *) lfirst(lc)));
	return m;
}

/*
 * Puts an OuroBatch node over `child`, whose target list holds batchable
 * calls: the child outputs the calls' arguments instead (see the file
 * header), the node outputs what the child output before.
 */
static Plan *
make_batch_node(PlannedStmt *stmt, Plan *child, BatchGrowth growth, int64 bound,
				bool under_gather)
{
	CustomScan *cs = makeNode(CustomScan);
	List	   *child_tlist = NIL;
	List	   *extra = NIL;
	List	   *scan_tlist = NIL;
	List	   *out_tlist = NIL;
	List	   *calls = NIL;
	int			next_resno = list_length(child->targetlist) + 1;
	ListCell   *lc;
	int			node_id = max_node_id(stmt->planTree);

	foreach(lc, stmt->subplans)
		node_id = Max(node_id, max_node_id((Plan *) lfirst(lc)));

	foreach(lc, child->targetlist)
	{
		TargetEntry *tle = (TargetEntry *) lfirst(lc);
		Oid			type = exprType((Node *) tle->expr);
		int32		typmod = exprTypmod((Node *) tle->expr);
		Oid			coll = exprCollation((Node *) tle->expr);
		int			kind = tle_kind(tle);
		TargetEntry *out;

		if (kind >= 0)
		{
			FuncExpr   *fe = (FuncExpr *) tle->expr;
			FuncExpr   *shown = (FuncExpr *) copyObject(fe);
			TargetEntry *placeholder = flatCopyTargetEntry(tle);
			List	   *call = list_make5_int(kind, tle->resno, (int) fe->funcid,
											  (int) fe->inputcollid, list_length(fe->args));
			ListCell   *ac;

			/* the child outputs NULL in the call's place, and its arguments */
			placeholder->expr = (Expr *) makeNullConst(type, typmod, coll);
			child_tlist = lappend(child_tlist, placeholder);
			shown->args = NIL;
			foreach(ac, fe->args)
			{
				Expr	   *arg = (Expr *) lfirst(ac);

				extra = lappend(extra, makeTargetEntry((Expr *) copyObject(arg), next_resno,
													   NULL, true));
				call = lappend_int(call, next_resno);
				/* what EXPLAIN VERBOSE shows: the call over the child's columns */
				shown->args = lappend(shown->args,
									  makeVar(OUTER_VAR, next_resno, exprType((Node *) arg),
											  exprTypmod((Node *) arg),
											  exprCollation((Node *) arg), 0));
				next_resno++;
			}
			scan_tlist = lappend(scan_tlist, makeTargetEntry((Expr *) shown, tle->resno,
															 tle->resname, false));
			calls = lappend(calls, call);
		}
		else
		{
			child_tlist = lappend(child_tlist, tle);
			scan_tlist = lappend(scan_tlist,
								 makeTargetEntry((Expr *) makeVar(OUTER_VAR, tle->resno, type,
																  typmod, coll, 0),
												 tle->resno, tle->resname, false));
		}
		out = makeTargetEntry((Expr *) makeVar(INDEX_VAR, tle->resno, type, typmod, coll, 0),
							  tle->resno, tle->resname, tle->resjunk);
		out->ressortgroupref = tle->ressortgroupref;
		out->resorigtbl = tle->resorigtbl;
		out->resorigcol = tle->resorigcol;
		out_tlist = lappend(out_tlist, out);
	}
	child->targetlist = list_concat(child_tlist, extra);

	cs->scan.plan.startup_cost = child->startup_cost;
	cs->scan.plan.total_cost = child->total_cost;
	cs->scan.plan.plan_rows = child->plan_rows;
	cs->scan.plan.plan_width = child->plan_width;
	/* under a Gather: shares its counters with the leader (see the file header) */
	cs->scan.plan.parallel_aware = under_gather && child->parallel_safe;
	cs->scan.plan.parallel_safe = child->parallel_safe;
	cs->scan.plan.async_capable = false;
	cs->scan.plan.plan_node_id = node_id + 1;
	cs->scan.plan.targetlist = out_tlist;
	cs->scan.plan.qual = NIL;
	cs->scan.plan.lefttree = child;
	cs->scan.plan.righttree = NULL;
	cs->scan.plan.extParam = bms_copy(child->extParam);
	cs->scan.plan.allParam = bms_copy(child->allParam);
	cs->scan.scanrelid = 0;
	cs->flags = 0;
	cs->custom_plans = NIL;
	cs->custom_exprs = NIL;
	cs->custom_private = lcons(list_make2_int((int) growth, (int) Min(bound, PG_INT32_MAX)), calls);
	cs->custom_scan_tlist = scan_tlist;
	cs->custom_relids = NULL;
	cs->methods = &batch_scan_methods;
	return (Plan *) cs;
}

/* A Limit's row bound (count + offset) when both are constants, else -1. */
static int64
limit_bound(Limit *limit)
{
	int64		count,
				offset = 0;

	if (limit->limitCount == NULL || !IsA(limit->limitCount, Const) ||
		((Const *) limit->limitCount)->constisnull || limit->limitOption != LIMIT_OPTION_COUNT)
		return -1;
	count = DatumGetInt64(((Const *) limit->limitCount)->constvalue);
	if (limit->limitOffset != NULL)
	{
		if (!IsA(limit->limitOffset, Const))
			return -1;
		if (!((Const *) limit->limitOffset)->constisnull)
			offset = DatumGetInt64(((Const *) limit->limitOffset)->constvalue);
	}
	if (count < 0 || offset < 0 || count > PG_INT64_MAX - offset)
		return -1;
	return count + offset;
}

/*
 * Walks down the spine of the plan (nodes that pass their child's rows up)
 * to the first node that computes batchable calls, and puts the node there.
 */
static Plan *
place(PlannedStmt *stmt, Plan *plan, BatchGrowth growth, int64 bound, bool under_gather)
{
	if (plan == NULL)
		return NULL;
	if (projects_rows(plan))
	{
		ListCell   *lc;

		foreach(lc, plan->targetlist)
			if (tle_kind((TargetEntry *) lfirst(lc)) >= 0)
				return make_batch_node(stmt, plan, growth, bound, under_gather);
		if (!IsA(plan, Gather) && !(IsA(plan, Result) && plan->lefttree != NULL))
			return plan;
	}
	switch (nodeTag(plan))
	{
		case T_Limit:
			bound = limit_bound((Limit *) plan);
			growth = bound >= 0 ? GROWTH_BOUNDED : GROWTH_DOUBLING;
			break;
		case T_Sort:
			/* a sort reads all its input before it returns a row */
			growth = GROWTH_FULL;
			break;
		case T_Agg:
			/* so does a hashed or plain aggregate (GROUP BY ouro_classify(...)) */
			if (((Agg *) plan)->aggstrategy == AGG_HASHED || ((Agg *) plan)->aggstrategy == AGG_PLAIN)
				growth = GROWTH_FULL;
			break;
		case T_Gather:
		case T_GatherMerge:
			under_gather = true;
			break;
		case T_Result:
		case T_IncrementalSort:
		case T_LockRows:
		case T_ModifyTable:
		case T_Unique:
		case T_Material:
			break;
		default:
			return plan;
	}
	plan->lefttree = place(stmt, plan->lefttree, growth, bound, under_gather);
	return plan;
}

static PlannedStmt *
batch_planner(Query *parse, const char *query_string, int cursorOptions,
			  ParamListInfo boundParams)
{
	PlannedStmt *stmt;

	if (prev_planner)
		stmt = prev_planner(parse, query_string, cursorOptions, boundParams);
	else
		stmt = standard_planner(parse, query_string, cursorOptions, boundParams);

	/* scrollable cursors need nodes that run backwards: left row by row */
	if (ouro_auto_batch_setting && (cursorOptions & CURSOR_OPT_SCROLL) == 0 &&
		(stmt->commandType == CMD_SELECT || stmt->commandType == CMD_UPDATE ||
		 stmt->commandType == CMD_INSERT))
		stmt->planTree = place(stmt, stmt->planTree,
							   (cursorOptions & CURSOR_OPT_FAST_PLAN) ? GROWTH_DOUBLING : GROWTH_FULL,
							   -1, false);
	return stmt;
}

/* ------------------------------------------------------------------------
 * Execution
 * ------------------------------------------------------------------------ */

typedef struct BatchCall
{
	BatchKind	kind;
	int			out_col;		/* 0-based column of the result */
	int			nargs;
	int			argcol[BATCH_MAX_ARGS];	/* 0-based columns of the child */
	FmgrInfo	flinfo;
	Oid			collid;
	Datum	   *results;		/* (batch) in batch_cxt */
	bool	   *nulls;
} BatchCall;

/*
 * The counters the parallel workers of one node add to, in the parallel
 * query's shared memory; the leader moves them into its own state before
 * that memory goes away.
 */
typedef struct BatchShared
{
	pg_atomic_uint64 batches;
	pg_atomic_uint32 largest;
} BatchShared;

typedef struct BatchState
{
	CustomScanState css;
	BatchGrowth growth;
	int64		bound;			/* GROWTH_BOUNDED: rows the LIMIT wants */
	int			n_calls;
	BatchCall  *calls;
	int			max_batch;		/* ouro.batch_size when the node started */
	int			ramp;			/* next size while doubling */
	bool		per_row;		/* ouro.auto_batch was off when the node started */
	MemoryContext batch_cxt;	/* the current batch's rows and results */
	int			child_natts;
	int16	   *typlen;			/* (child_natts) */
	bool	   *typbyval;
	Datum	  **values;			/* (n_rows, child_natts) */
	bool	  **isnull;
	int64	   *positions;		/* (n_rows) row numbers in the statement */
	int			n_rows;
	int			pos;			/* next row to return */
	bool		child_done;
	int64		rows_in;		/* rows read from the child */
	int64		rows_out;		/* rows returned */
	int64		n_batches;		/* batches this process ran */
	int			largest;
	BatchShared *shared;		/* under a Gather: the workers' counters, else NULL */
	int64		worker_batches; /* leader: the workers' batches, moved from shared */
	int			worker_largest;
} BatchState;

static Node *
batch_create_state(CustomScan *cscan)
{
	BatchState *st = (BatchState *) newNode(sizeof(BatchState), T_CustomScanState);
	List	   *growth = (List *) linitial(cscan->custom_private);
	ListCell   *lc;
	int			i = 0;

	st->css.methods = &batch_exec_methods;
	st->growth = (BatchGrowth) linitial_int(growth);
	st->bound = lsecond_int(growth);
	st->n_calls = list_length(cscan->custom_private) - 1;
	st->calls = palloc0(sizeof(BatchCall) * st->n_calls);
	for_each_from(lc, cscan->custom_private, 1)
	{
		List	   *call = (List *) lfirst(lc);
		BatchCall  *c = &st->calls[i++];
		Oid			funcid = (Oid) lthird_int(call);

		c->kind = (BatchKind) linitial_int(call);
		c->out_col = lsecond_int(call) - 1;
		c->collid = (Oid) lfourth_int(call);
		c->nargs = list_nth_int(call, 4);
		for (int a = 0; a < c->nargs; a++)
			c->argcol[a] = list_nth_int(call, 5 + a) - 1;
		fmgr_info(funcid, &c->flinfo);
	}
	return (Node *) st;
}

static void
batch_begin(CustomScanState *node, EState *estate, int eflags)
{
	BatchState *st = (BatchState *) node;
	PlanState  *child;
	TupleDesc	desc;

	child = ExecInitNode(outerPlan(node->ss.ps.plan), estate, eflags);
	outerPlanState(node) = child;
	desc = ExecGetResultType(child);
	st->child_natts = desc->natts;
	st->typlen = palloc(sizeof(int16) * desc->natts);
	st->typbyval = palloc(sizeof(bool) * desc->natts);
	for (int i = 0; i < desc->natts; i++)
	{
		st->typlen[i] = TupleDescAttr(desc, i)->attlen;
		st->typbyval[i] = TupleDescAttr(desc, i)->attbyval;
	}
	st->per_row = !ouro_auto_batch_setting;
	st->max_batch = st->per_row ? 1 : pg_ouro_batch_size();
	st->ramp = 1;
	st->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "ouro batch",
										  ALLOCSET_DEFAULT_SIZES);
}

/* Rows of the next batch. */
static int
next_batch_size(BatchState *st)
{
	int			size;

	if (st->growth == GROWTH_FULL)
		return st->max_batch;
	if (st->growth == GROWTH_BOUNDED && st->rows_out < st->bound)
		return (int) Min((int64) st->max_batch, st->bound - st->rows_out);
	size = Min(st->ramp, st->max_batch);
	st->ramp = Min(st->ramp * 2, st->max_batch);
	return size;
}

/* Sets fcinfo's arguments to call c's arguments in batch row r. */
static void
set_args(BatchState *st, BatchCall *c, int r, FunctionCallInfo fcinfo)
{
	InitFunctionCallInfoData(*fcinfo, &c->flinfo, c->nargs, c->collid, NULL, NULL);
	for (int a = 0; a < c->nargs; a++)
	{
		fcinfo->args[a].value = st->values[r][c->argcol[a]];
		fcinfo->args[a].isnull = st->isnull[r][c->argcol[a]];
	}
}

/* The text of a non-NULL text argument (palloc'd C string). */
static char *
arg_text(FunctionCallInfo fcinfo, int i)
{
	return fcinfo->args[i].isnull ? NULL : TextDatumGetCString(fcinfo->args[i].value);
}

static bool
same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
same_gen_args(const OuroGenArgs *a, const OuroGenArgs *b)
{
	if (a->max_loops != b->max_loops || a->max_tokens != b->max_tokens ||
		a->temperature != b->temperature || a->threshold != b->threshold ||
		a->seed != b->seed || a->n_stop != b->n_stop)
		return false;
	for (int i = 0; i < a->n_stop; i++)
		if (strcmp(a->stop[i], b->stop[i]) != 0)
			return false;
	return true;
}

/* The options of one row of a classification call. */
typedef struct ClassArgs
{
	char	  **labels;
	int			n_labels;
	char	   *instruction;
	int			max_loops;
} ClassArgs;

static bool
same_class_args(const ClassArgs *a, const ClassArgs *b)
{
	if (a->n_labels != b->n_labels || a->max_loops != b->max_loops ||
		!same_text(a->instruction, b->instruction))
		return false;
	for (int i = 0; i < a->n_labels; i++)
		if (strcmp(a->labels[i], b->labels[i]) != 0)
			return false;
	return true;
}

/*
 * Computes call c for the n rows of the batch: options read row by row (in
 * row order, so option errors are those row-by-row evaluation raises), rows
 * grouped by equal options and model, each group run as one batch.
 */
static void
run_call(BatchState *st, BatchCall *c, int n)
{
	const char *fn = batch_kinds[c->kind].fn;
	int			model_arg = batch_kinds[c->kind].model_arg;
	bool		generation = c->kind == BATCH_GENERATE || c->kind == BATCH_CHAT;
	bool		depth = c->kind == BATCH_DEPTH;
	LOCAL_FCINFO(fcinfo, BATCH_MAX_ARGS);
	OuroRowRef	row = {fn, 0, NULL, 0};
	ErrorContextCallback cb;
	int		   *group = palloc(sizeof(int) * n);	/* representative row, -1 = NULL input */
	char	  **model = palloc0(sizeof(char *) * n);
	OuroGenArgs *ga = generation ? palloc0(sizeof(OuroGenArgs) * n) : NULL;
	ClassArgs  *ca = generation || depth ? NULL : palloc0(sizeof(ClassArgs) * n);
	double	   *threshold = depth ? palloc(sizeof(double) * n) : NULL;
	const char **inputs = palloc(sizeof(char *) * n);
	int		   *lens = palloc(sizeof(int) * n);
	int64	   *positions = palloc(sizeof(int64) * n);
	Datum	   *out = palloc(sizeof(Datum) * n);
	bool	   *out_null = palloc(sizeof(bool) * n);
	int			n_computed = 0;

	c->results = palloc0(sizeof(Datum) * n);
	c->nulls = palloc(sizeof(bool) * n);

	if (st->per_row)
	{
		/* ouro.auto_batch was turned off after planning: the function itself, row by row */
		for (int r = 0; r < n; r++)
		{
			set_args(st, c, r, fcinfo);
			c->results[r] = FunctionCallInvoke(fcinfo);
			c->nulls[r] = fcinfo->isnull;
		}
		return;
	}

	pg_ouro_row_push(&row, &cb);
	for (int r = 0; r < n; r++)
	{
		set_args(st, c, r, fcinfo);
		c->nulls[r] = true;
		group[r] = -1;
		/* NULL input (or NULL labels) gives NULL before any option is read */
		if (fcinfo->args[0].isnull || (!generation && !depth && fcinfo->args[1].isnull))
			continue;
		row.position = st->positions[r];
		{
			text	   *t = DatumGetTextPP(fcinfo->args[0].value);

			row.input = VARDATA_ANY(t);
			row.input_len = VARSIZE_ANY_EXHDR(t);
		}
		if (generation)
			pg_ouro_gen_args_read(fcinfo, batch_kinds[c->kind].opt_first, &ga[r]);
		else if (depth)
			threshold[r] = pg_ouro_depth_args_read(fcinfo);
		else
			pg_ouro_classify_args_read(fcinfo, &ca[r].labels, &ca[r].n_labels,
									   &ca[r].instruction, &ca[r].max_loops);
		model[r] = arg_text(fcinfo, model_arg);
		group[r] = r;
		for (int q = 0; q < r; q++)
			if (group[q] == q && same_text(model[q], model[r]) &&
				(generation ? same_gen_args(&ga[q], &ga[r]) :
				 depth ? threshold[q] == threshold[r] : same_class_args(&ca[q], &ca[r])))
			{
				group[r] = q;
				break;
			}
	}
	row.position = 0;

	/* each group in the order of its first row */
	for (int g = 0; g < n; g++)
	{
		OuroModelRef ref;
		int			m = 0;
		int		   *member;

		if (group[g] != g)
			continue;
		member = palloc(sizeof(int) * n);
		for (int r = g; r < n; r++)
			if (group[r] == g)
				member[m++] = r;
		set_args(st, c, g, fcinfo);
		pg_ouro_model_resolve(fcinfo, model_arg, &ref);
		for (int k = 0; k < m; k++)
		{
			int			r = member[k];
			text	   *t;

			set_args(st, c, r, fcinfo);
			t = DatumGetTextPP(fcinfo->args[0].value);
			positions[k] = st->positions[r];
			if (c->kind == BATCH_CHAT)
			{
				row.position = positions[k];
				row.input = VARDATA_ANY(t);
				row.input_len = VARSIZE_ANY_EXHDR(t);
				inputs[k] = pg_ouro_chat_prompt(&ref, text_to_cstring(t), arg_text(fcinfo, 1));
				lens[k] = inputs[k] ? strlen(inputs[k]) : 0;
				row.position = 0;
			}
			else if (generation || depth)
			{
				inputs[k] = VARDATA_ANY(t);
				lens[k] = VARSIZE_ANY_EXHDR(t);
			}
			else
				inputs[k] = text_to_cstring(t);
		}
		if (generation)
			pg_ouro_generate_rows(&ref, &ga[g], m, inputs, lens, &row, positions, 1, fn,
								  out, out_null);
		else if (depth)
			pg_ouro_depth_rows(&ref, threshold[g], m, inputs, lens, &row, positions, fn, out,
							   out_null);
		else
			pg_ouro_classify_rows(&ref, ca[g].labels, ca[g].n_labels, ca[g].instruction,
								  ca[g].max_loops, m, inputs, &row, positions, 1,
								  c->kind == BATCH_SCORES, fn, out, out_null);
		for (int k = 0; k < m; k++)
		{
			c->results[member[k]] = out[k];
			c->nulls[member[k]] = out_null[k];
		}
		n_computed += m;
	}
	pg_ouro_row_pop(&cb);
	pg_ouro_stats.batched_rows += n_computed;
}

/* Reads the next batch from the child and computes its calls. */
static void
fill_batch(BatchState *st)
{
	PlanState  *child = outerPlanState(&st->css);
	int			size = next_batch_size(st);
	MemoryContext old;

	MemoryContextReset(st->batch_cxt);
	st->values = MemoryContextAlloc(st->batch_cxt, sizeof(Datum *) * size);
	st->isnull = MemoryContextAlloc(st->batch_cxt, sizeof(bool *) * size);
	st->positions = MemoryContextAlloc(st->batch_cxt, sizeof(int64) * size);
	st->n_rows = 0;
	st->pos = 0;
	while (st->n_rows < size)
	{
		TupleTableSlot *slot;
		Datum	   *values;
		bool	   *isnull;

		CHECK_FOR_INTERRUPTS();
		/* the child runs in the caller's context: it may keep what it allocates */
		slot = ExecProcNode(child);
		if (TupIsNull(slot))
		{
			st->child_done = true;
			break;
		}
		slot_getallattrs(slot);
		old = MemoryContextSwitchTo(st->batch_cxt);
		values = palloc(sizeof(Datum) * Max(st->child_natts, 1));
		isnull = palloc(sizeof(bool) * Max(st->child_natts, 1));
		for (int i = 0; i < st->child_natts; i++)
		{
			isnull[i] = slot->tts_isnull[i];
			values[i] = isnull[i] ? (Datum) 0 :
				datumCopy(slot->tts_values[i], st->typbyval[i], st->typlen[i]);
		}
		MemoryContextSwitchTo(old);
		st->values[st->n_rows] = values;
		st->isnull[st->n_rows] = isnull;
		st->positions[st->n_rows] = ++st->rows_in;
		st->n_rows++;
	}
	if (st->n_rows == 0)
		return;

	old = MemoryContextSwitchTo(st->batch_cxt);
	for (int i = 0; i < st->n_calls; i++)
		run_call(st, &st->calls[i], st->n_rows);
	MemoryContextSwitchTo(old);
	st->n_batches++;
	st->largest = Max(st->largest, st->n_rows);
	if (st->shared != NULL && IsParallelWorker())
	{
		uint32		cur = pg_atomic_read_u32(&st->shared->largest);

		pg_atomic_fetch_add_u64(&st->shared->batches, 1);
		while (cur < (uint32) st->n_rows &&
			   !pg_atomic_compare_exchange_u32(&st->shared->largest, &cur, (uint32) st->n_rows))
			;
	}
}

static TupleTableSlot *
batch_exec(CustomScanState *node)
{
	BatchState *st = (BatchState *) node;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	int			r;

	if (st->pos >= st->n_rows)
	{
		if (st->child_done)
			return NULL;
		fill_batch(st);
		if (st->n_rows == 0)
			return NULL;
	}
	r = st->pos++;
	ExecClearTuple(slot);
	for (int i = 0; i < slot->tts_tupleDescriptor->natts; i++)
	{
		slot->tts_values[i] = st->values[r][i];
		slot->tts_isnull[i] = st->isnull[r][i];
	}
	for (int i = 0; i < st->n_calls; i++)
	{
		slot->tts_values[st->calls[i].out_col] = st->calls[i].results[r];
		slot->tts_isnull[st->calls[i].out_col] = st->calls[i].nulls[r];
	}
	ExecStoreVirtualTuple(slot);
	st->rows_out++;
	if (node->ss.ps.ps_ProjInfo != NULL)
	{
		node->ss.ps.ps_ExprContext->ecxt_scantuple = slot;
		ResetExprContext(node->ss.ps.ps_ExprContext);
		return ExecProject(node->ss.ps.ps_ProjInfo);
	}
	return slot;
}

static void
batch_end(CustomScanState *node)
{
	BatchState *st = (BatchState *) node;

	ExecEndNode(outerPlanState(node));
	MemoryContextDelete(st->batch_cxt);
}

static void
batch_rescan(CustomScanState *node)
{
	BatchState *st = (BatchState *) node;
	PlanState  *child = outerPlanState(node);

	MemoryContextReset(st->batch_cxt);
	st->n_rows = 0;
	st->pos = 0;
	st->child_done = false;
	st->rows_out = 0;
	st->ramp = 1;
	if (child->chgParam == NULL)
		ExecReScan(child);
}

/* ------------------------------------------------------------------------
 * Parallel query: the workers' counters for the leader's EXPLAIN ANALYZE
 * ------------------------------------------------------------------------ */

static Size
batch_estimate_dsm(CustomScanState *node, ParallelContext *pcxt)
{
	return sizeof(BatchShared);
}

static void
batch_init_dsm(CustomScanState *node, ParallelContext *pcxt, void *coordinate)
{
	BatchState *st = (BatchState *) node;

	st->shared = (BatchShared *) coordinate;
	pg_atomic_init_u64(&st->shared->batches, 0);
	pg_atomic_init_u32(&st->shared->largest, 0);
}

static void
batch_init_worker(CustomScanState *node, shm_toc *toc, void *coordinate)
{
	((BatchState *) node)->shared = (BatchShared *) coordinate;
}

/*
 * Leader: adds the workers' counters to its own and zeroes them, so that
 * calling it again (a rescan of the Gather relaunches the workers, and the
 * shutdown may come twice) counts nothing twice.  The workers have finished
 * when the whole result was read; a leader that stops early (LIMIT) keeps
 * the batches reported by then.
 */
static void
batch_collect_workers(BatchState *st)
{
	int			largest;

	if (st->shared == NULL || IsParallelWorker())
		return;
	st->worker_batches += (int64) pg_atomic_exchange_u64(&st->shared->batches, 0);
	largest = (int) pg_atomic_exchange_u32(&st->shared->largest, 0);
	st->worker_largest = Max(st->worker_largest, largest);
}

static void
batch_reinit_dsm(CustomScanState *node, ParallelContext *pcxt, void *coordinate)
{
	batch_collect_workers((BatchState *) node);
}

/* The shared memory goes away after this (the Gather shuts down after its children). */
static void
batch_shutdown(CustomScanState *node)
{
	BatchState *st = (BatchState *) node;

	batch_collect_workers(st);
	st->shared = NULL;
}

static void
batch_explain(CustomScanState *node, List *ancestors, ExplainState *es)
{
	BatchState *st = (BatchState *) node;
	StringInfoData fns;

	initStringInfo(&fns);
	for (int i = 0; i < st->n_calls; i++)
		appendStringInfo(&fns, "%s%s", i ? ", " : "", batch_kinds[st->calls[i].kind].fn);
	ExplainPropertyText("Batched Calls", fns.data, es);
	ExplainPropertyInteger("Batch Size", NULL, st->max_batch, es);
	if (st->per_row)
		ExplainPropertyText("Batch Growth", "none (ouro.auto_batch is off)", es);
	else if (st->growth == GROWTH_BOUNDED)
		ExplainPropertyText("Batch Growth", psprintf("up to the limit of " INT64_FORMAT " rows, then doubling from 1", st->bound), es);
	else if (st->growth == GROWTH_DOUBLING)
		ExplainPropertyText("Batch Growth", "doubling from 1", es);
	if (es->analyze)
	{
		/* the leader's own and its parallel workers' */
		ExplainPropertyInteger("Batches", NULL, st->n_batches + st->worker_batches, es);
		ExplainPropertyInteger("Largest Batch", NULL, Max(st->largest, st->worker_largest), es);
		if (st->worker_batches > 0 && es->verbose)
			ExplainPropertyInteger("Batches in Workers", NULL, st->worker_batches, es);
	}
}

static CustomExecMethods batch_exec_methods = {
	.CustomName = "OuroBatch",
	.BeginCustomScan = batch_begin,
	.ExecCustomScan = batch_exec,
	.EndCustomScan = batch_end,
	.ReScanCustomScan = batch_rescan,
	.EstimateDSMCustomScan = batch_estimate_dsm,
	.InitializeDSMCustomScan = batch_init_dsm,
	.ReInitializeDSMCustomScan = batch_reinit_dsm,
	.InitializeWorkerCustomScan = batch_init_worker,
	.ShutdownCustomScan = batch_shutdown,
	.ExplainCustomScan = batch_explain,
};

static CustomScanMethods batch_scan_methods = {
	.CustomName = "OuroBatch",
	.CreateCustomScanState = batch_create_state,
};

void
pg_ouro_batch_init(void)
{
	RegisterCustomScanMethods(&batch_scan_methods);
	prev_planner = planner_hook;
	planner_hook = batch_planner;
}

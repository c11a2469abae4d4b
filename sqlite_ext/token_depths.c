/*
 * token_depths.c -- ouro_token_depths, the table-valued function of the
 * SQLite extension: the exit gate's view of every token of a text.
 *
 *     SELECT * FROM ouro_token_depths('some text');
 *     SELECT pos, token, exit_step FROM ouro_token_depths('some text', 0.5, 'big');
 *
 * An eponymous-only virtual table.  Columns:
 *   pos             0-based position of the token
 *   token           the token's text (its decode alone; a piece of a
 *                   multi-byte character decodes to U+FFFD)
 *   exit_pdf        JSON array: probability of exiting at each loop step
 *   expected_depth  sum over steps t of t * p_t
 *   exit_step       1-based Q-exit step for exit_threshold (NULL: the
 *                   model's early_exit_threshold)
 * and the hidden columns that take the arguments: input, exit_threshold,
 * model.  A NULL input gives no rows.  The whole input runs through one
 * forward pass in xFilter; the rows are then read from the cursor.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ouro_sqlite.h"

#pragma GCC visibility push(hidden)
SQLITE_EXTENSION_INIT3
#pragma GCC visibility pop

enum { COL_POS, COL_TOKEN, COL_EXIT_PDF, COL_EXPECTED, COL_EXIT_STEP,
       COL_INPUT, COL_THRESHOLD, COL_MODEL };
enum { ARG_INPUT = 1, ARG_THRESHOLD = 2, ARG_MODEL = 4 };   /* idxNum bits */

typedef struct depths_vtab {
    sqlite3_vtab base;
    conn_state *conn;            /* borrowed: the module's state outlives its tables */
} depths_vtab;

typedef struct depths_cursor {
    sqlite3_vtab_cursor base;
    cache_entry *entry;          /* one reference while rows are held, or NULL */
    int32_t *ids;                /* (n) token ids, malloc'd by the core */
    int n;
    int loops;                   /* width of a pdf row */
    float *pdf;                  /* (n, loops) sqlite3_malloc'd */
    double *expected;            /* (n) sqlite3_malloc'd */
    int32_t *step;               /* (n) sqlite3_malloc'd */
    int row;                     /* current row, 0..n */
} depths_cursor;

/* Connects the eponymous table (there is no CREATE VIRTUAL TABLE form). */
static int depths_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                          sqlite3_vtab **out, char **errmsg)
{
    (void)argc;
    (void)argv;
    (void)errmsg;
    int rc = sqlite3_declare_vtab(db,
        "CREATE TABLE x(pos INTEGER, token TEXT, exit_pdf TEXT, expected_depth REAL, "
        "exit_step INTEGER, input HIDDEN, exit_threshold HIDDEN, model HIDDEN)");
    if (rc != SQLITE_OK)
        return rc;
    depths_vtab *v = sqlite3_malloc(sizeof *v);
    if (!v)
        return SQLITE_NOMEM;
    memset(v, 0, sizeof *v);
    v->conn = aux;
    *out = &v->base;
    return SQLITE_OK;
}

static int depths_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

/* Passes the equality constraints on the hidden columns to xFilter, in the
 * order input, exit_threshold, model; idxNum says which are present.  A plan
 * that cannot supply a constrained argument is refused (SQLITE_CONSTRAINT),
 * so that in a join the table holding the input is scanned first. */
static int depths_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    (void)vt;
    int where[3] = {-1, -1, -1};
    int unusable = 0;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *k = &info->aConstraint[i];
        if (k->iColumn < COL_INPUT)
            continue;
        if (k->op != SQLITE_INDEX_CONSTRAINT_EQ)
            continue;
        if (!k->usable) {
            unusable |= 1 << (k->iColumn - COL_INPUT);
            continue;
        }
        where[k->iColumn - COL_INPUT] = i;
    }
    int idx = 0, argv_i = 0;
    for (int j = 0; j < 3; j++) {
        if (where[j] < 0)
            continue;
        info->aConstraintUsage[where[j]].argvIndex = ++argv_i;
        info->aConstraintUsage[where[j]].omit = 1;
        idx |= 1 << j;
    }
    if (unusable & ~idx)
        return SQLITE_CONSTRAINT;
    info->idxNum = idx;
    info->estimatedCost = (idx & ARG_INPUT) ? 1000.0 : 1e12;
    info->estimatedRows = 100;
    return SQLITE_OK;
}

static int depths_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    depths_cursor *cur = sqlite3_malloc(sizeof *cur);
    if (!cur)
        return SQLITE_NOMEM;
    memset(cur, 0, sizeof *cur);
    *out = &cur->base;
    return SQLITE_OK;
}

/* Forgets the rows of the last xFilter. */
static void cursor_reset(depths_cursor *cur)
{
    ouro_free(cur->ids);
    sqlite3_free(cur->pdf);
    sqlite3_free(cur->expected);
    sqlite3_free(cur->step);
    model_cache_release(cur->entry);
    cur->ids = NULL;
    cur->pdf = NULL;
    cur->expected = NULL;
    cur->step = NULL;
    cur->entry = NULL;
    cur->n = 0;
    cur->row = 0;
}

static int depths_close(sqlite3_vtab_cursor *vc)
{
    cursor_reset((depths_cursor *)vc);
    sqlite3_free(vc);
    return SQLITE_OK;
}

/* Sets the table's error message (printf-style); returns SQLITE_ERROR. */
static int vtab_error(sqlite3_vtab *vt, const char *fmt, const char *a, const char *b)
{
    sqlite3_free(vt->zErrMsg);
    vt->zErrMsg = sqlite3_mprintf(fmt, a, b);
    return vt->zErrMsg ? SQLITE_ERROR : SQLITE_NOMEM;
}

/* Status of a core failure as an SQLite code, with the message set. */
static int vtab_ouro_error(sqlite3_vtab *vt, ouro_status st, const ouro_error *err)
{
    if (st == OURO_ERR_NOMEM)
        return SQLITE_NOMEM;
    if (st == OURO_ERR_INTERRUPTED)
        return SQLITE_INTERRUPT;
    return vtab_error(vt, "ouro: %s%s", err->message[0] ? err->message : ouro_status_str(st), "");
}

/* Runs the input through the model: one full-depth forward of every token. */
static int depths_filter(sqlite3_vtab_cursor *vc, int idx, const char *idx_str, int argc,
                         sqlite3_value **argv)
{
    (void)idx_str;
    (void)argc;
    depths_cursor *cur = (depths_cursor *)vc;
    sqlite3_vtab *vt = vc->pVtab;
    conn_state *c = ((depths_vtab *)vt)->conn;
    cursor_reset(cur);

    sqlite3_value *input = NULL, *threshold = NULL, *model = NULL;
    int i = 0;
    if (idx & ARG_INPUT)
        input = argv[i++];
    if (idx & ARG_THRESHOLD)
        threshold = argv[i++];
    if (idx & ARG_MODEL)
        model = argv[i++];
    if (!(idx & ARG_INPUT))
        return vtab_error(vt, "ouro: ouro_token_depths needs an input, e.g. "
                              "SELECT * FROM ouro_token_depths('some text')%s%s", "", "");
    if (sqlite3_value_type(input) == SQLITE_NULL)
        return SQLITE_OK;        /* no rows */

    float q = -1.0f;
    if (threshold && sqlite3_value_type(threshold) != SQLITE_NULL) {
        int t = sqlite3_value_numeric_type(threshold);
        double d = sqlite3_value_double(threshold);
        if ((t != SQLITE_INTEGER && t != SQLITE_FLOAT) ||
            !ouro_param_in_range(&ouro_params[OURO_P_EXIT_THRESHOLD], d, false)) {
            char msg[160];
            ouro_param_range_message(&ouro_params[OURO_P_EXIT_THRESHOLD], false, msg, sizeof msg);
            return vtab_error(vt, "ouro: %s%s", msg, "");
        }
        q = (float)d;
    }
    const char *name = model && sqlite3_value_type(model) != SQLITE_NULL
                     ? (const char *)sqlite3_value_text(model) : NULL;
    char *msg;
    cache_entry *e = conn_model(c, name, &msg);
    if (!e) {
        if (!msg)
            return SQLITE_NOMEM;
        sqlite3_free(vt->zErrMsg);
        vt->zErrMsg = msg;
        return SQLITE_ERROR;
    }
    const ouro_tokenizer *tok = ouro_model_tokenizer(e->model);
    if (!tok)
        return vtab_error(vt, "ouro: model '%s' has no tokenizer.json%s", e->path, "");
    const char *text = (const char *)sqlite3_value_text(input);
    if (!text)
        return SQLITE_NOMEM;

    ouro_error err = {0};
    size_t n_ids = 0;
    ouro_status st = ouro_tokenizer_encode(tok, text, (size_t)sqlite3_value_bytes(input), &cur->ids,
                                           &n_ids, &err);
    if (st != OURO_OK)
        return vtab_ouro_error(vt, st, &err);
    if (n_ids == 0)
        return SQLITE_OK;
    int limit = ctx_limit(c, e->model);
    if (n_ids > (size_t)limit) {
        char why[160];
        snprintf(why, sizeof why, "ouro: the input is too long: it is %zu tokens; the context "
                 "holds %d tokens", n_ids, limit);
        if (c->on_error == OURO_ON_ERROR_NULL) {     /* a bad row: no rows */
            sqlite3_log(SQLITE_WARNING, "%s", why);
            cursor_reset(cur);
            return SQLITE_OK;
        }
        return vtab_error(vt, "%s%s", why, "");
    }
    int n = (int)n_ids;
    ouro_session *s = conn_session(c, e, 0, n, 1, false, &err);
    if (!s)
        return vtab_ouro_error(vt, err.status, &err);
    int loops = ouro_session_max_loops(s);
    cur->pdf = sqlite3_malloc64((sqlite3_uint64)n * (sqlite3_uint64)loops * sizeof *cur->pdf);
    cur->expected = sqlite3_malloc64((sqlite3_uint64)n * sizeof *cur->expected);
    cur->step = sqlite3_malloc64((sqlite3_uint64)n * sizeof *cur->step);
    if (!cur->pdf || !cur->expected || !cur->step) {
        cursor_reset(cur);
        return SQLITE_NOMEM;
    }
    st = ouro_depth(s, cur->ids, n, q, cur->pdf, cur->expected, cur->step, conn_cancel, c, &err);
    if (st != OURO_OK) {
        cursor_reset(cur);
        return vtab_ouro_error(vt, st, &err);
    }
    model_cache_retain(e);       /* the token column decodes with its tokenizer */
    cur->entry = e;
    cur->n = n;
    cur->loops = loops;
    cur->row = 0;
    return SQLITE_OK;
}

static int depths_next(sqlite3_vtab_cursor *vc)
{
    ((depths_cursor *)vc)->row++;
    return SQLITE_OK;
}

static int depths_eof(sqlite3_vtab_cursor *vc)
{
    depths_cursor *cur = (depths_cursor *)vc;
    return cur->row >= cur->n;
}

static int depths_column(sqlite3_vtab_cursor *vc, sqlite3_context *ctx, int col)
{
    depths_cursor *cur = (depths_cursor *)vc;
    int r = cur->row;
    switch (col) {
    case COL_POS:
        sqlite3_result_int(ctx, r);
        break;
    case COL_TOKEN: {
        char *text = NULL;
        size_t len = 0;
        ouro_error err = {0};
        ouro_status st = ouro_tokenizer_decode(ouro_model_tokenizer(cur->entry->model), &cur->ids[r], 1,
                                               false, &text, &len, &err);
        if (st == OURO_ERR_NOMEM)
            sqlite3_result_error_nomem(ctx);
        else if (st != OURO_OK)
            sqlite3_result_error(ctx, err.message, -1);
        else
            sqlite3_result_text64(ctx, text, len, SQLITE_TRANSIENT, SQLITE_UTF8);
        ouro_free(text);
        break;
    }
    case COL_EXIT_PDF: {
        sqlite3_str *s = sqlite3_str_new(NULL);
        sqlite3_str_appendchar(s, 1, '[');
        for (int t = 0; t < cur->loops; t++) {
            float p = cur->pdf[(size_t)r * (size_t)cur->loops + (size_t)t];
            if (t)
                sqlite3_str_appendchar(s, 1, ',');
            if (isfinite(p))
                sqlite3_str_appendf(s, "%.9g", (double)p);
            else
                sqlite3_str_appendall(s, "null");
        }
        sqlite3_str_appendchar(s, 1, ']');
        if (sqlite3_str_errcode(s) != SQLITE_OK) {
            sqlite3_free(sqlite3_str_finish(s));
            sqlite3_result_error_nomem(ctx);
        } else {
            sqlite3_result_text(ctx, sqlite3_str_finish(s), -1, sqlite3_free);
        }
        break;
    }
    case COL_EXPECTED:
        sqlite3_result_double(ctx, cur->expected[r]);
        break;
    case COL_EXIT_STEP:
        sqlite3_result_int(ctx, cur->step[r]);
        break;
    default:                     /* hidden argument columns are not read back */
        sqlite3_result_null(ctx);
        break;
    }
    return SQLITE_OK;
}

static int depths_rowid(sqlite3_vtab_cursor *vc, sqlite3_int64 *rowid)
{
    *rowid = ((depths_cursor *)vc)->row;
    return SQLITE_OK;
}

static const sqlite3_module depths_module = {
    .iVersion = 0,
    .xCreate = NULL,             /* eponymous only */
    .xConnect = depths_connect,
    .xBestIndex = depths_best_index,
    .xDisconnect = depths_disconnect,
    .xDestroy = NULL,
    .xOpen = depths_open,
    .xClose = depths_close,
    .xFilter = depths_filter,
    .xNext = depths_next,
    .xEof = depths_eof,
    .xColumn = depths_column,
    .xRowid = depths_rowid,
};

int token_depths_register(sqlite3 *db, conn_state *c)
{
    c->refs++;                   /* dropped by the module destructor, also on failure */
    return sqlite3_create_module_v2(db, "ouro_token_depths", &depths_module, c, conn_state_unref);
}

/*
 * enrich.c -- `ouro enrich DB --table T --input C --output C`: fills a text
 * column of a SQLite table with the model's continuation of another column,
 * as a job that survives bad rows and interruptions.
 *
 * The job runs in chunks of --chunk rows:
 *   1. the next rows (by rowid) whose output is NULL, whose input is not NULL
 *      and that are not listed in ouro_enrich_errors are read;
 *   2. their prompts run as one batched generation (--batch-size sequences at
 *      a time) outside any transaction, so readers and writers of the
 *      database are not blocked meanwhile;
 *   3. in one transaction the outputs are written (only where the output is
 *      still NULL) and the bad rows (no tokens, too long for the context)
 *      recorded in ouro_enrich_errors (table, column, rowid, start of the
 *      input, message), then committed.
 * Ctrl-C stops within a decode step and keeps every committed chunk; so does
 * a kill or a crash (SQLite's journal keeps a chunk whole or absent).  Run the
 * same command again and it goes on with the rows still NULL.  The results
 * are those of ouro_generate in the SQLite extension with the same options.
 *
 * On a terminal, stderr shows a progress bar (rows, tokens/s, ETA; progress.c),
 * redrawn during and after every chunk; the last line of stdout sums the job up.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli.h"
#include "ouro_surface.h"
#include "ouro.h"

static const char *usage_enrich =
    "usage: ouro enrich DB --table T --input COLUMN --output COLUMN --model DIR [options]\n"
    "\n"
    "Fills the text column COLUMN of table T of the SQLite database DB with the model's\n"
    "continuation of the input column, where the output is NULL: in chunks, each one\n"
    "batched generation and one transaction.  Bad rows (empty prompt, too long) are\n"
    "recorded in the table ouro_enrich_errors and skipped; interrupted (Ctrl-C, kill,\n"
    "crash), the command goes on where it stopped when run again.\n"
    "\n"
    "options:\n"
    "  --max-tokens N      new tokens per row (default 128)\n"
    "  --max-loops N       loop steps 1..16 (default: the model's)\n"
    "  --temperature T     0 = greedy (default), up to 100\n"
    "  --seed N            sampling seed (default 42, as the SQL functions)\n"
    "  --batch-size N      sequences decoded together (default 16)\n"
    "  --chunk N           rows per transaction (default 64)\n"
    "  --threads N         worker threads (default: all processors)\n"
    "  --precision P       auto (default: bf16 on a CPU with AVX-512 BF16 and no AMX tiles,\n"
    "                      exact elsewhere), exact or bf16 (see `ouro generate --help`)\n"
    "  --weights WHERE     map (default: the files mapped, shared page cache) or memory\n"
    "                      (read into this process's memory, 2 MB pages: steadier decode)\n"
    "  --progress WHEN     auto (on a terminal, default), always or never\n";

/* ------------------------------------------------------------------------
 * Interrupts and the progress bar
 * ------------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int cancel_check(void *ctx)
{
    (void)ctx;
    return interrupted;
}

/* ------------------------------------------------------------------------
 * SQLite helpers
 * ------------------------------------------------------------------------ */

/* "name" with quotes doubled (malloc'd), for an identifier in SQL text. */
static char *quote_ident(const char *name)
{
    return sqlite3_mprintf("\"%w\"", name);
}

static bool exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "ouro enrich: %s\n", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return false;
    }
    return true;
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "ouro enrich: %s\n", sqlite3_errmsg(db));
        return NULL;
    }
    return st;
}

/* ------------------------------------------------------------------------
 * The job
 * ------------------------------------------------------------------------ */

typedef struct chunk_row {
    sqlite3_int64 rowid;
    char *input;          /* sqlite3_malloc'd copy */
    int32_t *ids;         /* core-owned (ouro_free) */
    int n_ids;
    const char *error;    /* static message of a bad row, or NULL */
    ouro_gen_result res;
} chunk_row;

int cmd_enrich(int argc, char **argv)
{
    const char *db_path = NULL, *table = NULL, *input = NULL, *output = NULL, *model_dir = NULL;
    ouro_load_options load = { .weights = OURO_WEIGHTS_MAP };
    const char *progress = "auto";
    long max_tokens = 128, max_loops = 0, seed = 42, batch = 16, chunk = 64, threads = 0;
    double temperature = 0;
    ouro_precision precision = (ouro_precision)ouro_params[OURO_P_PRECISION].dflt;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            fputs(usage_enrich, stdout);
            return 0;
        }
        if (o[0] != '-') {
            if (db_path) {
                fprintf(stderr, "ouro enrich: one database only (got %s and %s)\n", db_path, o);
                return 2;
            }
            db_path = o;
            continue;
        }
        if (!v) {
            fprintf(stderr, "ouro enrich: unknown option or missing value: %s\n%s", o, usage_enrich);
            return 2;
        }
        i++;
        char *end = NULL;
        errno = 0;
        if (strcmp(o, "--table") == 0) table = v;
        else if (strcmp(o, "--input") == 0) input = v;
        else if (strcmp(o, "--output") == 0) output = v;
        else if (strcmp(o, "--model") == 0) model_dir = v;
        else if (strcmp(o, "--progress") == 0) progress = v;
        else if (strcmp(o, "--weights") == 0) {
            if (!ouro_tool_parse_weights("enrich", v, &load.weights))
                return 2;
        }
        else if (strcmp(o, "--precision") == 0) {
            if (!ouro_tool_parse_precision("enrich", v, &precision))
                return 2;
        }
        else if (strcmp(o, "--temperature") == 0) {
            temperature = strtod(v, &end);
            if (*end || errno || !(temperature >= 0 && temperature <= 100)) {
                fprintf(stderr, "ouro enrich: --temperature must be between 0 and 100 (got %s)\n", v);
                return 2;
            }
        } else {
            struct { const char *name; long *dst, lo, hi; } ints[] = {
                { "--max-tokens", &max_tokens, 1, 1 << 20 }, { "--max-loops", &max_loops, 1, OURO_MAX_LOOPS },
                { "--seed", &seed, LONG_MIN, LONG_MAX }, { "--batch-size", &batch, 1, 256 },
                { "--chunk", &chunk, 1, 100000 }, { "--threads", &threads, 0, 1024 },
            };
            size_t k = 0;
            for (; k < sizeof ints / sizeof ints[0]; k++)
                if (strcmp(o, ints[k].name) == 0)
                    break;
            if (k == sizeof ints / sizeof ints[0]) {
                fprintf(stderr, "ouro enrich: unknown option %s\n%s", o, usage_enrich);
                return 2;
            }
            long lv = strtol(v, &end, 10);
            if (*end || errno || lv < ints[k].lo || lv > ints[k].hi) {
                fprintf(stderr, "ouro enrich: %s must be between %ld and %ld (got %s)\n", o,
                        ints[k].lo, ints[k].hi, v);
                return 2;
            }
            *ints[k].dst = lv;
        }
    }
    if (!db_path || !table || !input || !output || !model_dir) {
        fprintf(stderr, "ouro enrich: DB, --table, --input, --output and --model are required\n%s",
                usage_enrich);
        return 2;
    }
    bool show;
    if (!progress_parse("enrich", progress, &show))
        return 2;
    tool_progress bar;

    int rc = 1;
    sqlite3 *db = NULL;
    sqlite3_stmt *sel = NULL, *upd = NULL, *fail = NULL, *cnt = NULL;
    ouro_model *m = NULL;
    ouro_session *s = NULL;
    ouro_error e;
    chunk_row *rows = NULL;
    const int32_t **prompts = NULL;
    int *lens = NULL, *run = NULL;
    char *qt = quote_ident(table), *qi = quote_ident(input), *qo = quote_ident(output);
    char *where = NULL, *sql = NULL;
    long done = 0, filled = 0, failed = 0, tokens = 0, total = 0;

    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(stderr, "ouro enrich: cannot open %s: %s\n", db_path, db ? sqlite3_errmsg(db) : "out of memory");
        goto done;
    }
    sqlite3_busy_timeout(db, 10000);
    if (!exec_sql(db, "CREATE TABLE IF NOT EXISTS ouro_enrich_errors ("
                      "relation TEXT NOT NULL, output_column TEXT NOT NULL, row_key TEXT NOT NULL, "
                      "input TEXT, error TEXT NOT NULL, failed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, "
                      "PRIMARY KEY (relation, output_column, row_key))"))
        goto done;
    where = sqlite3_mprintf("%s IS NULL AND %s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                            "ouro_enrich_errors e WHERE e.relation = %Q AND e.output_column = %Q "
                            "AND e.row_key = CAST(t.rowid AS TEXT))", qo, qi, table, output);
    sql = sqlite3_mprintf("SELECT count(*) FROM %s t WHERE %s", qt, where);
    if (!(cnt = prepare(db, sql)))
        goto done;
    if (sqlite3_step(cnt) == SQLITE_ROW)
        total = (long)sqlite3_column_int64(cnt, 0);
    sqlite3_free(sql);
    sql = sqlite3_mprintf("SELECT t.rowid, CAST(%s AS TEXT) FROM %s t WHERE %s ORDER BY t.rowid LIMIT %ld",
                          qi, qt, where, chunk);
    if (!(sel = prepare(db, sql)))
        goto done;
    sqlite3_free(sql);
    sql = sqlite3_mprintf("UPDATE %s SET %s = ?1 WHERE rowid = ?2 AND %s IS NULL", qt, qo, qo);
    if (!(upd = prepare(db, sql)))
        goto done;
    sqlite3_free(sql);
    sql = sqlite3_mprintf("INSERT OR REPLACE INTO ouro_enrich_errors (relation, output_column, row_key, "
                          "input, error) VALUES (%Q, %Q, CAST(?1 AS TEXT), substr(?2, 1, 200), ?3)",
                          table, output);
    if (!(fail = prepare(db, sql)))
        goto done;

    if (ouro_model_load_opts(model_dir, &load, &m, &e) != OURO_OK) {
        fprintf(stderr, "ouro enrich: cannot load %s: %s\n", model_dir, e.message);
        goto done;
    }
    const ouro_tokenizer *tok = ouro_model_tokenizer(m);
    if (!tok) {
        fprintf(stderr, "ouro enrich: %s has no tokenizer.json\n", model_dir);
        goto done;
    }
    int ctx_limit = ouro_model_config(m)->max_position_embeddings;
    if (ctx_limit <= 0 || ctx_limit > 4096)
        ctx_limit = 4096;   /* ouro.context_length's default in the extensions */
    rows = calloc((size_t)chunk, sizeof *rows);
    prompts = calloc((size_t)chunk, sizeof *prompts);
    lens = calloc((size_t)chunk, sizeof *lens);
    run = calloc((size_t)chunk, sizeof *run);
    if (!rows || !prompts || !lens || !run) {
        fputs("ouro enrich: out of memory\n", stderr);
        goto done;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    progress_start(&bar, show, "rows", 1, total, true);
    progress_update(&bar, 0, 0, true);

    for (;;) {
        int n = 0, n_run = 0, longest = 0;
        if (interrupted)
            break;
        /* 1. the next rows */
        sqlite3_reset(sel);
        int step;
        while (n < chunk && (step = sqlite3_step(sel)) == SQLITE_ROW) {
            chunk_row *r = &rows[n];
            const char *text = (const char *)sqlite3_column_text(sel, 1);
            int len = sqlite3_column_bytes(sel, 1);
            memset(r, 0, sizeof *r);
            r->rowid = sqlite3_column_int64(sel, 0);
            r->input = sqlite3_malloc(len + 1);
            if (!r->input) {
                fputs("ouro enrich: out of memory\n", stderr);
                goto done;
            }
            memcpy(r->input, text ? text : "", (size_t)len);
            r->input[len] = 0;
            n++;
        }
        sqlite3_reset(sel);
        if (n == 0)
            break;
        for (int i = 0; i < n; i++) {
            chunk_row *r = &rows[i];
            size_t nn = 0;
            if (ouro_tokenizer_encode(tok, r->input, strlen(r->input), &r->ids, &nn, &e) != OURO_OK)
                r->error = "the prompt could not be tokenized";
            else if (nn == 0)
                r->error = "the prompt has no tokens";
            else if ((long)nn >= ctx_limit)
                r->error = "the prompt is too long for the context";
            if (r->error)
                continue;
            r->n_ids = (int)nn;
            prompts[n_run] = r->ids;
            lens[n_run] = r->n_ids;
            run[n_run++] = i;
            longest = r->n_ids > longest ? r->n_ids : longest;
        }

        /* 2. one batched generation, outside any transaction */
        if (n_run > 0) {
            ouro_session_options so = { .precision = precision };
            long want = (long)longest + max_tokens;
            so.n_ctx = (int)(want < ctx_limit ? want : ctx_limit);
            so.n_seq = (int)(batch < n_run ? batch : n_run);
            so.max_loops = (int)max_loops;
            so.threads = (int)threads;
            if (s && (ouro_session_n_ctx(s) < so.n_ctx || ouro_session_n_seq(s) < so.n_seq)) {
                ouro_session_free(s);
                s = NULL;
            }
            if (!s && ouro_session_new(m, &so, &s, &e) != OURO_OK) {
                fprintf(stderr, "ouro enrich: %s\n", e.message);
                goto done;
            }
            ouro_gen_params gp = { 0 };
            gp.max_tokens = (int)max_tokens;
            gp.temperature = (float)temperature;
            gp.seed = (uint64_t)seed;
            gp.exit.kind = OURO_EXIT_DEFAULT;
            gp.depth = OURO_DEPTH_FULL;
            gp.cancel = cancel_check;
            tool_gen_progress gprog = { &bar, done, tokens };   /* redrawn within the chunk */
            gp.progress = progress_on_generate;
            gp.progress_ctx = &gprog;
            ouro_gen_result *res = calloc((size_t)n_run, sizeof *res);
            if (!res) {
                fputs("ouro enrich: out of memory\n", stderr);
                goto done;
            }
            ouro_status st = ouro_generate(s, n_run, prompts, lens, &gp, res, &e);
            if (st == OURO_ERR_INTERRUPTED) {
                free(res);
                break;
            }
            if (st != OURO_OK) {
                fprintf(stderr, "ouro enrich: %s\n", e.message);
                free(res);
                goto done;
            }
            for (int k = 0; k < n_run; k++)
                rows[run[k]].res = res[k];
            free(res);
        }

        /* 3. one transaction for the chunk */
        if (!exec_sql(db, "BEGIN IMMEDIATE"))
            goto done;
        bool ok = true;
        for (int i = 0; i < n && ok; i++) {
            chunk_row *r = &rows[i];
            sqlite3_stmt *w = r->error ? fail : upd;
            sqlite3_reset(w);
            if (r->error) {
                sqlite3_bind_int64(w, 1, r->rowid);
                sqlite3_bind_text(w, 2, r->input, -1, SQLITE_STATIC);
                sqlite3_bind_text(w, 3, r->error, -1, SQLITE_STATIC);
            } else {
                sqlite3_bind_text(w, 1, r->res.text ? r->res.text : "", (int)r->res.text_len,
                                  SQLITE_STATIC);
                sqlite3_bind_int64(w, 2, r->rowid);
            }
            ok = sqlite3_step(w) == SQLITE_DONE;
            if (!ok)
                fprintf(stderr, "ouro enrich: %s\n", sqlite3_errmsg(db));
            else if (r->error)
                failed++;
            else {
                filled += sqlite3_changes(db);
                tokens += r->res.n_ids;
            }
        }
        if (!ok || !exec_sql(db, "COMMIT")) {
            exec_sql(db, "ROLLBACK");
            goto done;
        }
        for (int i = 0; i < n; i++) {
            sqlite3_free(rows[i].input);
            ouro_free(rows[i].ids);
            ouro_gen_result_clear(&rows[i].res);
            memset(&rows[i], 0, sizeof rows[i]);
        }
        done += n;
        progress_update(&bar, done, tokens, true);
    }
    progress_end(&bar, done, tokens);
    printf("ouro enrich: %ld rows computed, %ld filled, %ld failed (listed in ouro_enrich_errors)%s\n",
           done, filled, failed, interrupted ? "; interrupted: run the command again to go on" : "");
    rc = interrupted ? 130 : 0;
done:
    if (rows)
        for (long i = 0; i < chunk; i++) {
            sqlite3_free(rows[i].input);
            ouro_free(rows[i].ids);
            ouro_gen_result_clear(&rows[i].res);
        }
    free(rows);
    free(prompts);
    free(lens);
    free(run);
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    sqlite3_finalize(fail);
    sqlite3_finalize(cnt);
    sqlite3_close(db);
    sqlite3_free(qt);
    sqlite3_free(qi);
    sqlite3_free(qo);
    sqlite3_free(where);
    sqlite3_free(sql);
    ouro_session_free(s);
    ouro_model_free(m);
    return rc;
}

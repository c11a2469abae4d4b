/*
 * surface.c -- `ouro sql-surface`: prints the core's description of the SQL
 * surface (core/ouro_surface.h) as JSON, or as the Markdown tables of the
 * README's "SQL surface" section, which test/suites/surface.sh compares
 * with the README, the PostgreSQL install script and the SQLite
 * registration.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ouro.h"
#include "ouro_surface.h"

static const char *usage_surface =
    "usage: ouro sql-surface [--json | --markdown]\n"
    "\n"
    "Prints the SQL surface both database extensions share: every setting and option with\n"
    "its range and default, and every function's arguments in order.  --json (default) is\n"
    "the core's table; --markdown the tables of the README's \"SQL surface\" section.\n";

/* "1 .. 16", "'error', 'null'", or "text" for p (as a setting when as_setting). */
static void range_text(const ouro_param *p, bool as_setting, char *buf, size_t size)
{
    double lo = as_setting && p->has_unset && p->unset < p->min ? p->unset : p->min;
    switch (p->kind) {
    case OURO_PARAM_INT:
        if (p->min <= -9.2e18)
            snprintf(buf, size, "any integer");
        else
            snprintf(buf, size, "%lld .. %lld%s%s", (long long)lo, (long long)p->max,
                     p->unit ? " " : "", p->unit ? p->unit : "");
        break;
    case OURO_PARAM_BOOL:
        snprintf(buf, size, "`on`, `off`");
        break;
    case OURO_PARAM_REAL:
        snprintf(buf, size, "%g .. %g", lo, p->max);
        break;
    case OURO_PARAM_ENUM: {
        size_t used = 0;
        buf[0] = '\0';
        for (int i = 0; i < p->n_values && used < size; i++)
            used += (size_t)snprintf(buf + used, size - used, "%s`%s`", i ? ", " : "",
                                     p->values[i].name);
        break;
    }
    case OURO_PARAM_TEXT_LIST:
        snprintf(buf, size, "%lld .. %lld items", (long long)p->min, (long long)p->max);
        break;
    default:
        snprintf(buf, size, "text");
    }
}

/* Which database has setting p: "both", "SQLite", "PostgreSQL, superuser", with the
 * other database's equivalent: "SQLite (PostgreSQL: `statement_timeout`)". */
static void where_text(const ouro_param *p, char *buf, size_t size)
{
    const char *host = p->flags & OURO_PARAM_PG_ONLY ? "PostgreSQL"
                       : p->flags & OURO_PARAM_SQLITE_ONLY ? "SQLite" : "both";
    int n = snprintf(buf, size, "%s%s", host, p->flags & OURO_PARAM_SUPERUSER ? ", superuser" : "");
    if (p->equivalent && n >= 0 && (size_t)n < size) {
        const ouro_param *eq = ouro_param_find(p->equivalent);
        snprintf(buf + n, size - (size_t)n, " (%s: `%s%s`)",
                 p->flags & OURO_PARAM_PG_ONLY ? "SQLite" : "PostgreSQL",
                 eq && (eq->flags & OURO_PARAM_PG_ONLY) ? "ouro." : "", p->equivalent);
    }
}

static void print_markdown(void)
{
    char range[160], where[160];
    puts("| setting | range | default | where | meaning |");
    puts("|---|---|---|---|---|");
    for (int i = 0; i < OURO_P_COUNT; i++) {
        const ouro_param *p = &ouro_params[i];
        if (!(p->flags & OURO_PARAM_SETTING))
            continue;
        range_text(p, true, range, sizeof range);
        where_text(p, where, sizeof where);
        printf("| `%s` | %s | %s | %s | %s |\n", p->name, range, p->dflt_doc, where, p->summary);
    }
    puts("");
    puts("| option | range | default | meaning |");
    puts("|---|---|---|---|");
    for (int i = 0; i < OURO_P_COUNT; i++) {
        const ouro_param *p = &ouro_params[i];
        if (!(p->flags & OURO_PARAM_ARG))
            continue;
        range_text(p, false, range, sizeof range);
        printf("| `%s` | %s | %s | %s |\n", p->name, range,
               p->flags & OURO_PARAM_SETTING ? "the setting of the same name" : p->dflt_doc,
               p->summary);
    }
    puts("");
    puts("| function | arguments (required, then optional) | where |");
    puts("|---|---|---|");
    for (int i = 0; i < ouro_sql_function_count; i++) {
        const ouro_sql_function *f = &ouro_sql_functions[i];
        printf("| `%s` | ", f->name);
        int n = ouro_sql_function_nargs(f);
        for (int k = 0; k < n; k++)
            printf("%s%s%s%s", k ? ", " : "", k == f->n_required ? "[" : "", f->args[k],
                   k == n - 1 && f->n_required < n ? "]" : "");
        if (n == 0)
            printf("none");
        printf(" | %s |\n", f->hosts == OURO_FN_BOTH ? "both" : f->hosts == OURO_FN_PG
               ? "PostgreSQL" : "SQLite");
    }
}

int cmd_sql_surface(int argc, char **argv)
{
    bool markdown = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_surface, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--markdown") == 0)
            markdown = true;
        else if (strcmp(argv[i], "--json") == 0)
            markdown = false;
        else {
            fprintf(stderr, "ouro sql-surface: unknown option %s\n%s", argv[i], usage_surface);
            return 2;
        }
    }
    if (markdown) {
        print_markdown();
        return 0;
    }
    char *js = ouro_surface_json();
    if (!js) {
        fputs("ouro sql-surface: out of memory\n", stderr);
        return 1;
    }
    puts(js);
    ouro_free(js);
    return 0;
}

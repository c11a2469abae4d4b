/*
 * check.h -- the tiny test harness shared by the C tests in test/unit/.
 *
 * Each check prints one TAP line ("ok N - name" or "not ok N - name"), which
 * test/run.sh counts.  A test program returns check_done(): 0 when every
 * check passed.
 */
#ifndef OURO_CHECK_H
#define OURO_CHECK_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int check_n, check_failed;

/* Records one check; name is a printf format. */
static int check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));
static int check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", ok ? "" : "not ", ++check_n);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (!ok)
        check_failed++;
    return ok;
}

/* Prints a diagnostic line (TAP comment). */
static void check_note(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void check_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* Reads and parses a JSON file (NULL on failure, with a note).  Needs
 * <cjson/cJSON.h> included before this header. */
#ifdef cJSON__h
static cJSON *check_read_json(const char *path) __attribute__((unused));
static cJSON *check_read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        check_note("cannot open %s", path);
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 > cap) {
            char *b = realloc(buf, cap = 2 * cap + 65536);
            if (!b)
                break;
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    cJSON *j = buf ? cJSON_ParseWithLength(buf, n) : NULL;
    free(buf);
    if (!j)
        check_note("cannot parse %s", path);
    return j;
}
#endif

/* A new temporary folder named prefix-XXXXXX under $TMPDIR (else /tmp) into
 * buf (size n); NULL when it cannot be made. */
static char *check_tmpdir(char *buf, size_t n, const char *prefix) __attribute__((unused));
static char *check_tmpdir(char *buf, size_t n, const char *prefix)
{
    const char *tdir = getenv("TMPDIR");
    snprintf(buf, n, "%s/%s-XXXXXX", tdir && *tdir ? tdir : "/tmp", prefix);
    return mkdtemp(buf);
}

/* Removes a folder of plain files (the converted models the tests write). */
static void check_remove_tree(const char *dir) __attribute__((unused));
static void check_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int check_done(void) __attribute__((unused));
static int check_done(void)
{
    printf("1..%d\n", check_n);
    return check_failed ? 1 : 0;
}

#endif

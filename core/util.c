/*
 * util.c -- status strings, error filling, the log sink, version and build
 * information.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* ------------------------------------------------------------------------
 * Status and errors
 * ------------------------------------------------------------------------ */

const char *ouro_status_str(ouro_status status)
{
    switch (status) {
    case OURO_OK:               return "ok";
    case OURO_ERR_IO:           return "i/o error";
    case OURO_ERR_FORMAT:       return "format error";
    case OURO_ERR_UNSUPPORTED:  return "unsupported";
    case OURO_ERR_ARG:          return "invalid argument";
    case OURO_ERR_NOMEM:        return "out of memory";
    case OURO_ERR_CONTEXT:      return "context exceeded";
    case OURO_ERR_INTERRUPTED:  return "interrupted";
    case OURO_ERR_INTERNAL:     return "internal error";
    case OURO_ERR_MODEL_CHANGED: return "model file changed";
    case OURO_ERR_LIMIT:        return "limit exceeded";
    }
    return "unknown status";
}

ouro_status ouro_err(ouro_error *err, ouro_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* ------------------------------------------------------------------------
 * Logging: one process-wide sink, NULL by default
 * ------------------------------------------------------------------------ */

static ouro_log_fn log_fn;
static void *log_ctx;

void ouro_set_log(ouro_log_fn fn, void *ctx)
{
    log_fn = fn;
    log_ctx = ctx;
}

void ouro_log(int level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    ouro_log_fn fn = log_fn;
    if (!fn)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fn(level, buf, log_ctx);
}

void ouro_free(void *p)
{
    free(p);
}

/* ------------------------------------------------------------------------
 * Version and build information
 * ------------------------------------------------------------------------ */

const char *ouro_version(void)
{
    return OURO_VERSION;
}

static char build_info[256];
static pthread_once_t build_info_once = PTHREAD_ONCE_INIT;

static void build_info_init(void)
{
    snprintf(build_info, sizeof build_info,
             "{\"version\": \"%s\", \"simd\": \"%s\", \"openmp\": %s, \"blas\": \"none\", "
             "\"threads\": %d}",
             OURO_VERSION, ouro_simd_level(),
#ifdef _OPENMP
             "true",
#else
             "false",
#endif
             ouro_default_threads());
}

const char *ouro_build_info(void)
{
    pthread_once(&build_info_once, build_info_init);
    return build_info;
}

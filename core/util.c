/*
 * util.c -- status strings, error filling, the log sink, version and build
 * information.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif
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
 * Whole files
 * ------------------------------------------------------------------------ */

ouro_status ouro_read_file(const char *path, const char *what, size_t max_bytes, char **data,
                           size_t *len, bool *missing, ouro_error *err)
{
    *data = NULL;
    *len = 0;
    if (missing)
        *missing = false;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (missing)
            *missing = errno == ENOENT;
        return ouro_err(err, OURO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return ouro_err(err, OURO_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(fp);
        return ouro_err(err, OURO_ERR_FORMAT, "%s: %lld bytes is too large for %s",
                        path, (long long)st.st_size, what);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return ouro_err(err, OURO_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, fp);
    fclose(fp);
    if (got != n) {
        free(buf);
        return ouro_err(err, OURO_ERR_IO, "%s: short read", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return OURO_OK;
}

/* ------------------------------------------------------------------------
 * Worker threads
 * ------------------------------------------------------------------------ */

/* The OpenMP team size last started on this thread with signals blocked. */
static _Thread_local int team_threads;

/* Every signal but the synchronous faults: a SIGBUS, SIGSEGV, SIGFPE or
 * SIGILL a thread's own instruction raises must reach a handler (guard.c
 * turns a read of a truncated model file into an error); blocked, it would
 * kill the process instead. */
static void async_signals(sigset_t *set)
{
    sigfillset(set);
    sigdelset(set, SIGBUS);
    sigdelset(set, SIGSEGV);
    sigdelset(set, SIGFPE);
    sigdelset(set, SIGILL);
}

void ouro_threads_prepare(int threads)
{
#ifdef _OPENMP
    if (threads < 1 || threads == team_threads)
        return;
    sigset_t all, old;
    async_signals(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    #pragma omp parallel num_threads(threads)
    {
        /* nothing: starting the team with this mask is the point */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    team_threads = threads;
#else
    (void)threads;
#endif
}

void ouro_worker_signals(void)
{
#ifdef _OPENMP
    static _Thread_local bool blocked;
    if (blocked || omp_get_thread_num() == 0)
        return;
    sigset_t all;
    async_signals(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    blocked = true;
#endif
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

int ouro_thread_count(int threads)
{
    return threads > 0 ? threads : ouro_default_threads();
}

static char build_info[256];
static pthread_once_t build_info_once = PTHREAD_ONCE_INIT;

static void build_info_init(void)
{
    snprintf(build_info, sizeof build_info,
             "{\"version\": \"%s\", \"simd\": \"%s\", \"amx\": %s, \"bf16_dot\": %s, "
             "\"precision_auto\": \"%s\", \"openmp\": %s, \"blas\": \"none\", \"threads\": %d}",
             OURO_VERSION, ouro_simd_level(), ouro_cpu_amx() ? "true" : "false",
             ouro_cpu_bf16dp() ? "true" : "false",
             ouro_precision_resolve(OURO_PRECISION_AUTO) == OURO_PRECISION_BF16 ? "bf16" : "exact",
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

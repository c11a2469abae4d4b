/*
 * model_cache.c -- the process-wide cache of loaded models for the SQLite
 * extension.
 *
 * Every connection of a process that loads the same model folder gets the
 * same ouro_model: the weights are mapped once and the model is immutable, so
 * connections on different threads (SQLite's multi-thread and serialized
 * modes) use it at once without locking.  The cache is keyed by the folder's
 * canonical path (realpath), so "m", "./m" and a symlink to m share one entry,
 * and by the weights mode: a model mapped is not shared with a connection that
 * asks for it in memory, nor the other way round.
 *
 * Entries are reference counted.  When a folder's files change on disk
 * (ouro_model_files_changed) the next acquire loads the folder again into a
 * new entry and unlinks the old one; the old entry lives on until its last
 * holder lets go, so calls running on other connections never see a model
 * freed under them.
 *
 * One pthread mutex guards the list and the counts.  Loading happens under
 * the lock, so two connections asking for the same new folder load it once.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ouro_sqlite.h"

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_entry *cache_head;     /* linked entries, newest first */

/* Removes e from the list (cache_lock held). */
static void unlink_entry(cache_entry *e)
{
    for (cache_entry **pp = &cache_head; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    e->linked = false;
    e->next = NULL;
}

static void set_err(ouro_error *err, ouro_status st, const char *fmt, const char *a, const char *b)
{
    if (!err)
        return;
    err->status = st;
    snprintf(err->message, sizeof err->message, fmt, a, b);
}

ouro_status model_cache_acquire(const char *dir, ouro_weights weights, cache_entry **out,
                                ouro_error *err)
{
    *out = NULL;
    char *canon = realpath(dir, NULL);      /* malloc'd by libc */
    if (!canon) {
        int e = errno;
        if (e == ENOMEM) {
            set_err(err, OURO_ERR_NOMEM, "out of memory%s%s", "", "");
            return OURO_ERR_NOMEM;
        }
        set_err(err, OURO_ERR_IO, "cannot open model folder '%s': %s", dir, strerror(e));
        return OURO_ERR_IO;
    }

    pthread_mutex_lock(&cache_lock);
    for (cache_entry *e = cache_head; e; e = e->next) {
        if (strcmp(e->path, canon) != 0 || ouro_model_weights(e->model) != weights)
            continue;
        if (ouro_model_files_changed(e->model)) {
            unlink_entry(e);        /* holders keep it alive; a new load follows */
            break;
        }
        e->refs++;
        pthread_mutex_unlock(&cache_lock);
        free(canon);
        *out = e;
        return OURO_OK;
    }

    cache_entry *e = calloc(1, sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&cache_lock);
        free(canon);
        set_err(err, OURO_ERR_NOMEM, "out of memory%s%s", "", "");
        return OURO_ERR_NOMEM;
    }
    ouro_load_options lo = { .weights = weights };
    ouro_status st = ouro_model_load_opts(canon, &lo, &e->model, err);
    if (st != OURO_OK) {
        pthread_mutex_unlock(&cache_lock);
        free(canon);
        free(e);
        return st;
    }
    e->path = canon;
    e->refs = 1;
    e->linked = true;
    e->next = cache_head;
    cache_head = e;
    pthread_mutex_unlock(&cache_lock);
    *out = e;
    return OURO_OK;
}

void model_cache_retain(cache_entry *e)
{
    pthread_mutex_lock(&cache_lock);
    e->refs++;
    pthread_mutex_unlock(&cache_lock);
}

void model_cache_release(cache_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&cache_lock);
    bool last = --e->refs == 0;
    if (last && e->linked)
        unlink_entry(e);
    pthread_mutex_unlock(&cache_lock);
    if (last) {
        ouro_model_free(e->model);
        free(e->path);
        free(e);
    }
}

int model_cache_refs(cache_entry *e)
{
    pthread_mutex_lock(&cache_lock);
    int n = e->refs;
    pthread_mutex_unlock(&cache_lock);
    return n;
}

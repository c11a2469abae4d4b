/* test/asan_preload.c -- preloaded after libasan into the PostgreSQL server by `make asan-ext`
 * (test/asan_ext.sh), so that ASan initialises outside glibc's gettext lock.
 *
 * With libasan preloaded (not linked into the program, so no .preinit_array), ASan initialises
 * lazily, at the first call it intercepts.  In `postgres` that is the malloc inside glibc's
 * bindtextdomain, called by libgpg-error's constructor while it holds _nl_state_lock for
 * writing; ASan's start-up calls dlerror, which takes the same lock through dcgettext and
 * releases it, and bindtextdomain's own unlock then underflows the reader count.  The next
 * bindtextdomain (set_pglocale_pgservice in postgres' main) waits on that lock for ever.
 * This bindtextdomain runs first: one malloc initialises ASan with no lock held, then glibc's
 * bindtextdomain does the work. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

char *bindtextdomain(const char *domainname, const char *dirname)
{
    static char *(*next)(const char *, const char *);
    void *volatile p = malloc(1); /* ASan's malloc: starts ASan here if it has not started */

    free(p);
    if (!next)
        next = (char *(*)(const char *, const char *))dlsym(RTLD_NEXT, "bindtextdomain");
    return next ? next(domainname, dirname) : NULL;
}

/*
 * guard.c -- model files that change under a running call end that call,
 * not the process.
 *
 * Weights are read straight from a shared read-only mapping of the model
 * file.  When the file is truncated (or overwritten by a copy that truncates
 * first) while it is mapped, a read of a page past the new end raises SIGBUS
 * on whichever thread touched it, an OpenMP worker as often as the caller.
 * Left alone, SIGBUS kills the process: inside PostgreSQL the postmaster
 * then restarts every session.
 *
 * So every model mapping is registered here, and a SIGBUS handler is
 * installed once per process (when the first model is mapped).  For a fault
 * whose address lies in a registered mapping, the handler maps anonymous
 * zero pages over that whole mapping (mmap with MAP_FIXED: the address range
 * stays valid) and marks the mapping as faulted; the faulting instruction
 * then runs again and reads zeros, so every thread finishes its share of the
 * work with meaningless numbers.  The forward pass checks the mark between
 * layers and at the end of every call (ouro_model_check) and ends the call
 * with OURO_ERR_MODEL_CHANGED naming the file; callers then free the model
 * and load the folder again.
 *
 * A fault at any other address goes to the handler that was installed
 * before this one (or to the default action, which ends the process as it
 * would have without ouro).  Other signals are not touched.
 *
 * The registry is a fixed array read by the handler without locks: each
 * entry's fields are atomics, written under a mutex by normal code.  An entry
 * is cleared before its mapping is unmapped.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include "internal.h"

#define GUARD_SLOTS 256     /* mapped files of all models loaded at once */

typedef struct guard_slot {
    _Atomic(uintptr_t) start;   /* 0 = free */
    _Atomic(size_t) len;
    atomic_int faulted;         /* the file shrank under the mapping */
} guard_slot;

static guard_slot slots[GUARD_SLOTS];
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction previous;   /* the SIGBUS action before ours */
static atomic_int installed;

/* Passes a fault that is not ours to the previous action. */
static void chain(int sig, siginfo_t *info, void *uctx)
{
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction)
            previous.sa_sigaction(sig, info, uctx);
        return;
    }
    if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
        /* the default action: restore it; the instruction faults again and
         * the process ends as it would have without this handler */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGBUS, &dfl, NULL);
        return;
    }
    previous.sa_handler(sig);
}

static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
    uintptr_t a = (uintptr_t)info->si_addr;
    for (int i = 0; i < GUARD_SLOTS; i++) {
        uintptr_t s = atomic_load(&slots[i].start);
        size_t n = atomic_load(&slots[i].len);
        if (s == 0 || a < s || a - s >= n)
            continue;
        /* mmap is a system call, safe in a handler; the range stays mapped */
        void *p = mmap((void *)s, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED)
            break;
        atomic_store(&slots[i].faulted, 1);
        return;
    }
    chain(sig, info, uctx);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &previous) == 0)
        atomic_store(&installed, 1);
}

int ouro_guard_register(void *map, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);
    int slot = -1;
    pthread_mutex_lock(&guard_lock);
    for (int i = 0; i < GUARD_SLOTS; i++)
        if (atomic_load(&slots[i].start) == 0) {
            atomic_store(&slots[i].faulted, 0);
            atomic_store(&slots[i].len, len);
            atomic_store(&slots[i].start, (uintptr_t)map);
            slot = i;
            break;
        }
    pthread_mutex_unlock(&guard_lock);
    if (slot < 0)
        ouro_log(OURO_LOG_WARNING, "more than %d model files mapped at once: a file truncated "
                 "while in use ends the process", GUARD_SLOTS);
    return slot;
}

void ouro_guard_unregister(int slot)
{
    if (slot < 0 || slot >= GUARD_SLOTS)
        return;
    pthread_mutex_lock(&guard_lock);
    atomic_store(&slots[slot].start, 0);
    atomic_store(&slots[slot].len, 0);
    atomic_store(&slots[slot].faulted, 0);
    pthread_mutex_unlock(&guard_lock);
}

bool ouro_guard_faulted(int slot)
{
    return slot >= 0 && slot < GUARD_SLOTS && atomic_load(&slots[slot].faulted) != 0;
}

bool ouro_guard_active(void)
{
    return atomic_load(&installed) != 0;
}

/*
 * test_threads.c -- the core starts its worker threads with every signal
 * blocked, so that a host's signal handlers (PostgreSQL's SIGINT, SIGALRM,
 * SIGTERM, SIGUSR1) only ever run on the host's own thread.
 *
 * Runs generations with 1, 3 and 2 threads (the team is started, resized,
 * shrunk), then reads the signal mask of every thread of the process from
 * /proc/self/task/<tid>/status: every thread but the caller blocks those
 * signals, and the caller's own mask is what it was.
 *
 * Run from the repository root (test/run.sh does).
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ouro.h"

/* The SigBlk mask of thread tid in *m; false when the thread is gone. */
static bool sigblk_of(const char *tid, unsigned long long *m)
{
    char path[64], line[256];
    bool found = false;
    snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "SigBlk:", 7) == 0) {
            *m = strtoull(line + 7, NULL, 16);
            found = true;
        }
    fclose(f);
    return found;
}

static unsigned long long sigblk(const char *tid)
{
    unsigned long long m = 0;
    return sigblk_of(tid, &m) ? m : 0;
}

static int task_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    while (d && (de = readdir(d)))
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* Waits (at most a second) until the process's thread count holds still:
 * a smaller team than the last one makes OpenMP end the threads it no
 * longer needs, and a thread on its way out blocks every signal (glibc)
 * and then disappears, which is not what the checks below are about. */
static void settle(void)
{
    int last = task_count();
    for (int i = 0; i < 100; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        int now = task_count();
        if (now == last && i >= 2)
            return;
        last = now;
    }
}

static unsigned long long bit(int sig)
{
    return 1ull << (sig - 1);
}

int main(void)
{
    ouro_model *m = NULL;
    ouro_error e;
    if (!check(ouro_model_load("test/data/models/tiny-mha-bf16", &m, &e) == OURO_OK, "model loads")) {
        check_note("%s", e.message);
        return check_done();
    }
    const unsigned long long want = bit(SIGINT) | bit(SIGALRM) | bit(SIGTERM) | bit(SIGUSR1) |
                                    bit(SIGQUIT) | bit(SIGHUP);
    char self[32];
    snprintf(self, sizeof self, "%d", (int)getpid());
    unsigned long long before = sigblk(self);

    static const int counts[] = {1, 3, 2};
    const int32_t prompt[] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int32_t *prompts[1] = {prompt};
    int lens[1] = {8};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        ouro_session_options so = { .n_ctx = 64, .threads = counts[c] };
        ouro_session *s = NULL;
        ouro_gen_params p = { .max_tokens = 4 };
        ouro_gen_result r;
        int ok = ouro_session_new(m, &so, &s, &e) == OURO_OK &&
                 ouro_generate(s, 1, prompts, lens, &p, &r, &e) == OURO_OK;
        if (ok)
            ouro_gen_result_clear(&r);
        ouro_session_free(s);
        check(ok, "a generation with %d thread(s) runs", counts[c]);
    }

    settle();
    DIR *d = opendir("/proc/self/task");
    int workers = 0, open_workers = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        unsigned long long mask;
        if (de->d_name[0] == '.' || strcmp(de->d_name, self) == 0 || !sigblk_of(de->d_name, &mask))
            continue;
        workers++;
        if ((mask & want) != want) {
            open_workers++;
            check_note("thread %s: SigBlk %llx", de->d_name, mask);
        }
    }
    if (d)
        closedir(d);
    check(workers >= 1, "the core started worker threads (%d)", workers);
    check(open_workers == 0, "every worker thread blocks SIGINT, SIGALRM, SIGTERM, SIGUSR1, "
          "SIGQUIT and SIGHUP (%d of %d do not)", open_workers, workers);
    int fault_blocked = 0;
    d = opendir("/proc/self/task");
    while (d && (de = readdir(d))) {
        unsigned long long mask;
        if (de->d_name[0] != '.' && sigblk_of(de->d_name, &mask) && (mask & (bit(SIGBUS) | bit(SIGSEGV)))) {
            fault_blocked++;
            check_note("thread %s: SigBlk %llx", de->d_name, mask);
        }
    }
    if (d)
        closedir(d);
    check(fault_blocked == 0, "no thread blocks SIGBUS or SIGSEGV (a fault must reach its handler)");
    check(sigblk(self) == before, "the calling thread's signal mask is unchanged (%llx)", sigblk(self));
    ouro_model_free(m);
    return check_done();
}

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
#include <unistd.h>

#include "check.h"
#include "ouro.h"

/* The SigBlk mask of thread tid, or 0 when it cannot be read. */
static unsigned long long sigblk(const char *tid)
{
    char path[64], line[256];
    unsigned long long m = 0;
    snprintf(path, sizeof path, "/proc/self/task/%s/status", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "SigBlk:", 7) == 0)
            m = strtoull(line + 7, NULL, 16);
    fclose(f);
    return m;
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

    DIR *d = opendir("/proc/self/task");
    int workers = 0, open_workers = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, self) == 0)
            continue;
        workers++;
        if ((sigblk(de->d_name) & want) != want) {
            open_workers++;
            check_note("thread %s: SigBlk %llx", de->d_name, sigblk(de->d_name));
        }
    }
    if (d)
        closedir(d);
    check(workers >= 1, "the core started worker threads (%d)", workers);
    check(open_workers == 0, "every worker thread blocks SIGINT, SIGALRM, SIGTERM, SIGUSR1, "
          "SIGQUIT and SIGHUP (%d of %d do not)", open_workers, workers);
    int fault_blocked = 0;
    d = opendir("/proc/self/task");
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.' && (sigblk(de->d_name) & (bit(SIGBUS) | bit(SIGSEGV))))
            fault_blocked++;
    if (d)
        closedir(d);
    check(fault_blocked == 0, "no thread blocks SIGBUS or SIGSEGV (a fault must reach its handler)");
    check(sigblk(self) == before, "the calling thread's signal mask is unchanged (%llx)", sigblk(self));
    ouro_model_free(m);
    return check_done();
}

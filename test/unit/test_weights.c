/*
 * test_weights.c -- weights read from the mapped files or copied into memory.
 *
 * A test model of test/data/models is loaded both ways: the logits must be
 * bit-identical.  A copy of the model in a temporary folder is loaded in
 * memory mode and its model.safetensors is then truncated and overwritten:
 * the loaded model keeps computing the same logits (it reads its own copy)
 * while ouro_model_files_changed() reports the change.  In a child process
 * whose address space is capped just above what it uses, the copy cannot be
 * allocated: the load fails with OURO_ERR_NOMEM and a message, and loads
 * again once the cap is lifted.
 *
 * The copy's reads go through this file's pread (defined here, it takes the
 * place of the C library's for the core linked into this program), which can
 * make them fail: interrupted (EINTR) or short reads still give the model,
 * bit for bit; a file that ends early (as one cut while it is read) and a
 * read error are OURO_ERR_IO with a message, and no model.
 */
#include "ouro.h"
#include "check.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MODEL "test/data/models/tiny-gqa-f32-tied"

/* ------------------------------------------------------------------------
 * Failing reads
 * ------------------------------------------------------------------------ */

enum { READ_PLAIN, READ_EINTR, READ_SHORT, READ_EOF, READ_EIO };
static int read_mode = READ_PLAIN;
static int read_calls;

ssize_t pread(int fd, void *buf, size_t n, off_t off);
ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    read_calls++;
    switch (read_mode) {
    case READ_EINTR:   /* every other call is interrupted before it reads */
        if (read_calls % 2 == 1) {
            errno = EINTR;
            return -1;
        }
        break;
    case READ_SHORT:   /* at most 1000 bytes a call */
        n = n < 1000 ? n : 1000;
        break;
    case READ_EOF:     /* the file ends after its first 4096 bytes */
        if (off >= 4096)
            return 0;
        n = n < (size_t)(4096 - off) ? n : (size_t)(4096 - off);
        break;
    case READ_EIO:
        errno = EIO;
        return -1;
    }
    return syscall(SYS_pread64, fd, buf, n, off);
}

/* A memory-mode load with reads in `mode`: the status, the model in *out. */
static ouro_status load_reading(int mode, ouro_model **out, ouro_error *e)
{
    ouro_load_options lo = { .weights = OURO_WEIGHTS_MEMORY };
    read_mode = mode;
    read_calls = 0;
    ouro_status st = ouro_model_load_opts(MODEL, &lo, out, e);
    read_mode = READ_PLAIN;
    return st;
}

/* Logits of the last token of a fixed prompt; malloc'd, NULL on error. */
static float *logits_of(const ouro_model *m, int *vocab)
{
    static const int32_t ids[] = { 1, 5, 9, 2, 7 };
    int32_t seq[5] = { 0 };
    ouro_session *s = NULL;
    ouro_error e;
    ouro_session_options so = { .n_seq = 1, .n_ctx = 16, .threads = 1 };
    if (ouro_session_new(m, &so, &s, &e) != OURO_OK) {
        check_note("session: %s", e.message);
        return NULL;
    }
    *vocab = ouro_model_config(m)->vocab_size;
    float *lg = malloc((size_t)*vocab * sizeof *lg);
    ouro_batch b = { .n = 5, .token = ids, .seq = seq };
    ouro_outputs out = { .logits = lg };
    if (!lg || ouro_session_forward(s, &b, NULL, &out, &e) != OURO_OK) {
        check_note("forward: %s", e.message);
        free(lg);
        lg = NULL;
    }
    ouro_session_free(s);
    return lg;
}

#ifndef __SANITIZE_ADDRESS__   /* the sanitizer reserves terabytes of address space */
/* Bytes of address space the process uses now (VmSize), or 0. */
static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

/* Run in a child: 1 when the capped load failed as it should, 2 when the
 * load after the cap works too, and 0 otherwise. */
static int capped_load(void)
{
    struct rlimit old, cap;
    size_t used = vm_size();
    if (used == 0 || getrlimit(RLIMIT_AS, &old) != 0)
        return 0;
    /* room for the header and the config, not for the 9.7 MB copy */
    cap = old;
    cap.rlim_cur = (rlim_t)(used + ((size_t)4 << 20));
    if (setrlimit(RLIMIT_AS, &cap) != 0)
        return 0;
    ouro_load_options lo = { .weights = OURO_WEIGHTS_MEMORY };
    ouro_model *m = NULL;
    ouro_error e;
    ouro_status st = ouro_model_load_opts(MODEL, &lo, &m, &e);
    bool failed = st == OURO_ERR_NOMEM && !m && strstr(e.message, "in memory");
    if (setrlimit(RLIMIT_AS, &old) != 0 || !failed) {
        ouro_model_free(m);
        return 0;
    }
    st = ouro_model_load_opts(MODEL, &lo, &m, &e);
    ouro_model_free(m);
    return st == OURO_OK ? 2 : 1;
}
#endif

static bool copy_path(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    bool ok = in && out;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        ok = false;
    return ok;
}

int main(void)
{
    ouro_error e;
    ouro_model *map = NULL, *mem = NULL;
    if (!check(ouro_model_load(MODEL, &map, &e) == OURO_OK, "map: loads (run from the repository root)"))
        return check_done();
    ouro_load_options lo = { .weights = OURO_WEIGHTS_MEMORY };
    check(ouro_model_load_opts(MODEL, &lo, &mem, &e) == OURO_OK, "memory: loads");
    if (!mem)
        return check_done();
    check(ouro_model_weights(map) == OURO_WEIGHTS_MAP && ouro_model_weights(mem) == OURO_WEIGHTS_MEMORY,
          "the models report their mode");
    char *info = ouro_model_info_json(mem);
    check(info && strstr(info, "\"weights\":\"memory\""), "info JSON names the memory mode");
    ouro_free(info);

    int v1 = 0, v2 = 0;
    float *a = logits_of(map, &v1), *b = logits_of(mem, &v2);
    check(a && b && v1 == v2 && memcmp(a, b, (size_t)v1 * sizeof *a) == 0,
          "memory and map give bit-identical logits");

    /* reads that are interrupted or short: the same model */
    static const struct { int mode; const char *what; } good_reads[] = {
        { READ_EINTR, "every other read interrupted (EINTR)" },
        { READ_SHORT, "reads of at most 1000 bytes" },
    };
    for (size_t i = 0; i < sizeof good_reads / sizeof *good_reads; i++) {
        ouro_model *m = NULL;
        ouro_status st = load_reading(good_reads[i].mode, &m, &e);
        int calls = read_calls, vm = 0;
        float *c = st == OURO_OK ? logits_of(m, &vm) : NULL;
        check(st == OURO_OK && calls >= 2 && c && a && vm == v1 && memcmp(a, c, (size_t)v1 * sizeof *a) == 0,
              "memory: %s: loads, bit-identical logits (%d reads)", good_reads[i].what, calls);
        free(c);
        ouro_model_free(m);
    }
    /* a file that ends while it is read, a read error: OURO_ERR_IO, no model */
    static const struct { int mode; const char *what, *msg; } bad_reads[] = {
        { READ_EOF, "the file ends after 4096 bytes while it is read", "ended at 4096 of" },
        { READ_EIO, "a read error (EIO)", "read failed" },
    };
    for (size_t i = 0; i < sizeof bad_reads / sizeof *bad_reads; i++) {
        ouro_model *m = (ouro_model *)&read_calls;   /* must come back NULL */
        ouro_status st = load_reading(bad_reads[i].mode, &m, &e);
        check(st == OURO_ERR_IO && !m && read_calls > 0 && strstr(e.message, bad_reads[i].msg)
              && strstr(e.message, "model.safetensors"),
              "memory: %s: OURO_ERR_IO naming the file (%s)", bad_reads[i].what,
              st == OURO_OK ? "loaded" : e.message);
        if (st == OURO_OK)
            ouro_model_free(m);
    }
    ouro_model *again = NULL;
    check(load_reading(READ_PLAIN, &again, &e) == OURO_OK, "memory: loads again after the failed reads");
    ouro_model_free(again);

    lo.weights = (ouro_weights)7;
    ouro_model *bad = NULL;
    check(ouro_model_load_opts(MODEL, &lo, &bad, &e) == OURO_ERR_ARG && !bad,
          "an unknown weights mode is OURO_ERR_ARG");

#ifndef __SANITIZE_ADDRESS__   /* the sanitizer reserves terabytes of address space */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(capped_load());
    int ws = 0;
    bool waited = pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws);
    check(waited && WEXITSTATUS(ws) >= 1, "memory: no room for the copy is OURO_ERR_NOMEM, with a message");
    check(waited && WEXITSTATUS(ws) == 2, "memory: the same process loads once there is room");
#endif

    /* a copy of the folder, loaded in memory mode, then its weights file changed */
    char dir[] = "/tmp/ouro-test-weights-XXXXXX";
    if (!check(mkdtemp(dir) != NULL, "temporary folder"))
        return check_done();
    static const char *files[] = { "config.json", "model.safetensors", "tokenizer.json",
                                   "tokenizer_config.json", "special_tokens_map.json" };
    char from[PATH_MAX], to[PATH_MAX], st_path[PATH_MAX];
    bool copied = true;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(from, sizeof from, "%s/%s", MODEL, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        copied = copied && copy_path(from, to);
    }
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    check(copied, "model copied to %s", dir);
    lo.weights = OURO_WEIGHTS_MEMORY;
    ouro_model *tmp = NULL;
    check(ouro_model_load_opts(dir, &lo, &tmp, &e) == OURO_OK, "memory: the copy loads");
    if (tmp) {
        check(!ouro_model_files_changed(tmp), "unchanged files: no change reported");
        /* truncate in place, then overwrite with other bytes */
        int fd = open(st_path, O_WRONLY);
        bool changed = fd >= 0 && ftruncate(fd, 100) == 0;
        char junk[4096];
        memset(junk, 0x5a, sizeof junk);
        changed = changed && pwrite(fd, junk, sizeof junk, 0) == (ssize_t)sizeof junk;
        if (fd >= 0)
            close(fd);
        check(changed, "model.safetensors truncated and overwritten");
        check(ouro_model_files_changed(tmp), "files_changed() reports the change");
        int v3 = 0;
        float *c = logits_of(tmp, &v3);
        check(c && a && v3 == v1 && memcmp(a, c, (size_t)v1 * sizeof *a) == 0,
              "the memory copy still gives the same logits");
        check(ouro_model_check(tmp, &e) == OURO_OK, "ouro_model_check stays OK");
        free(c);
        ouro_model_free(tmp);
        /* the changed file now fails to load, in memory mode too */
        tmp = NULL;
        check(ouro_model_load_opts(dir, &lo, &tmp, &e) != OURO_OK && !tmp,
              "the damaged copy is refused at load");
    }
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        unlink(to);
    }
    rmdir(dir);

    free(a);
    free(b);
    ouro_model_free(map);
    ouro_model_free(mem);
    return check_done();
}

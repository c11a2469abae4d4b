/*
 * test_safety.c -- what the core guarantees a host process (a database
 * server) when files change, calls are cancelled or limits are set.
 *
 *   - a model file truncated under a loaded model: the next forward call
 *     ends with OURO_ERR_MODEL_CHANGED naming the file (no SIGBUS reaches the
 *     process), the model reports changed files, it can be freed, and the
 *     folder loads again once the file is whole;
 *   - a SIGBUS outside any model mapping still reaches the handler the
 *     process had installed before;
 *   - the cancel check is polled inside one forward call (between layers),
 *     the stopped call leaves the sequence as it was, and the next call gives
 *     the same logits as an uninterrupted session;
 *   - a session's memory is computed before allocating and refused above
 *     max_bytes, with the sizes in the message; classification's own
 *     buffers count too;
 *   - decoded text never holds a NUL byte (U+0000 becomes U+FFFD);
 *   - more end-of-sequence ids than fit are an error, and many ids are kept.
 *
 * Run from the repository root (test/run.sh does).
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "ouro.h"

#define SRC "test/data/models/tiny-mha-bf16"

static char root[256];

static void sh(const char *fmt, const char *a, const char *b)
{
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    if (system(cmd) != 0)
        check_note("command failed: %s", cmd);
}

/* ------------------------------------------------------------------------
 * A SIGBUS handler of the process's own, installed before any model loads
 * ------------------------------------------------------------------------ */

static sigjmp_buf own_jump;
static volatile sig_atomic_t own_calls;

static void own_sigbus(int sig, siginfo_t *info, void *uctx)
{
    own_calls++;
    siglongjmp(own_jump, 1);
}

static void install_own_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = own_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

/* A SIGBUS on a truncated file that is not a model: the own handler runs. */
static void test_foreign_sigbus(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/other.bin", root);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    char page[8192] = {1};
    if (fd < 0 || write(fd, page, sizeof page) != (ssize_t)sizeof page) {
        check(0, "foreign SIGBUS: scratch file");
        return;
    }
    volatile char *p = mmap(NULL, sizeof page, PROT_READ, MAP_SHARED, fd, 0);
    if (ftruncate(fd, 0) != 0)
        check_note("ftruncate failed");
    close(fd);
    int before = own_calls;
    if (sigsetjmp(own_jump, 1) == 0) {
        char c = p[4096];
        (void)c;
    }
    check(own_calls == before + 1, "a SIGBUS outside model mappings reaches the handler installed "
          "before ouro's (%d call)", own_calls - before);
    munmap((void *)p, sizeof page);
}

/* ------------------------------------------------------------------------
 * Truncated model file
 * ------------------------------------------------------------------------ */

static ouro_status forward_prompt(ouro_session *s, int n, float *logits, ouro_error *err)
{
    int32_t tok[16], seq[16];
    for (int i = 0; i < n; i++) {
        tok[i] = 100 + 7 * i;
        seq[i] = 0;
    }
    ouro_batch b = { .n = n, .token = tok, .seq = seq };
    ouro_outputs o = { .logits = logits };
    return ouro_session_forward(s, &b, NULL, &o, err);
}

static void test_truncate(void)
{
    char dir[PATH_MAX], file[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/model", root);
    sh("cp -r %s %s", SRC, dir);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);

    ouro_model *m = NULL;
    ouro_session *s = NULL;
    ouro_error err = {0};
    if (!check(ouro_model_load(dir, &m, &err) == OURO_OK, "truncate: the copy loads") ||
        !check(ouro_session_new(m, &(ouro_session_options){ .n_ctx = 64, .threads = 2 }, &s, &err)
               == OURO_OK, "truncate: a session")) {
        ouro_model_free(m);
        return;
    }
    int V = ouro_model_config(m)->vocab_size;
    float *logits = malloc((size_t)V * sizeof(float));
    check(forward_prompt(s, 8, logits, &err) == OURO_OK, "truncate: a forward call before");
    ouro_session_seq_reset(s, 0);

    /* what `truncate -s 4096` or a `cp` over the live file does */
    if (truncate(file, 4096) != 0)
        check_note("truncate failed");
    ouro_status st = forward_prompt(s, 8, logits, &err);
    check(st == OURO_ERR_MODEL_CHANGED, "truncate: the forward call ends with \"%s\" (got \"%s\")",
          ouro_status_str(OURO_ERR_MODEL_CHANGED), ouro_status_str(st));
    check(strstr(err.message, "model.safetensors") != NULL, "truncate: the message names the file: %s",
          err.message);
    check(ouro_model_check(m, NULL) == OURO_ERR_MODEL_CHANGED && ouro_model_files_changed(m),
          "truncate: the model reports its files changed");
    check(ouro_session_seq_len(s, 0) == 0, "truncate: the stopped call left the sequence empty");
    ouro_session_free(s);
    ouro_model_free(m);
    m = NULL;
    check(ouro_model_load(dir, &m, &err) == OURO_ERR_FORMAT, "truncate: the truncated folder is a "
          "format error on reload: %s", err.message);
    ouro_model_free(m);
    m = NULL;
    sh("cp %s/model.safetensors %s", SRC, file);
    check(ouro_model_load(dir, &m, &err) == OURO_OK, "truncate: the folder loads again once whole");
    if (m && ouro_session_new(m, &(ouro_session_options){ .n_ctx = 64, .threads = 2 }, &s, &err) == OURO_OK) {
        check(forward_prompt(s, 8, logits, &err) == OURO_OK, "truncate: and computes again");
        ouro_session_free(s);
    }
    ouro_model_free(m);
    free(logits);
}

/* ------------------------------------------------------------------------
 * Cancel inside a forward call
 * ------------------------------------------------------------------------ */

static int polls, stop_at;

static int cancel_at(void *ctx)
{
    return ++polls >= stop_at;
}

static void test_cancel(ouro_model *m)
{
    int V = ouro_model_config(m)->vocab_size;
    float *ref = malloc((size_t)V * sizeof(float)), *got = malloc((size_t)V * sizeof(float));
    ouro_session *s = NULL;
    ouro_error err = {0};
    if (ouro_session_new(m, &(ouro_session_options){ .n_ctx = 64 }, &s, &err) != OURO_OK) {
        check(0, "cancel: a session: %s", err.message);
        return;
    }
    forward_prompt(s, 8, ref, &err);
    ouro_session_seq_reset(s, 0);

    /* count the polls of one call (2 layers x 4 steps, lm_head) */
    polls = 0;
    stop_at = INT_MAX;
    ouro_session_set_cancel(s, cancel_at, NULL);
    forward_prompt(s, 8, got, &err);
    int per_call = polls;
    check(per_call >= 8, "cancel: one forward call polls the cancel check between layers "
          "(%d polls for 2 layers x 4 steps)", per_call);
    ouro_session_seq_reset(s, 0);

    polls = 0;
    stop_at = 3;   /* inside the first loop step */
    ouro_status st = forward_prompt(s, 8, got, &err);
    check(st == OURO_ERR_INTERRUPTED && polls == 3, "cancel: the call stops at the poll that asks "
          "(status \"%s\", %d polls)", ouro_status_str(st), polls);
    check(ouro_session_seq_len(s, 0) == 0, "cancel: the stopped call left the sequence as it was");
    ouro_session_set_cancel(s, NULL, NULL);
    check(forward_prompt(s, 8, got, &err) == OURO_OK && memcmp(ref, got, (size_t)V * sizeof(float)) == 0,
          "cancel: the next call gives the logits of an uninterrupted session");

    /* through ouro_generate: the prompt's own forward call is stopped */
    int32_t prompt[8] = { 100, 107, 114, 121, 128, 135, 142, 149 };
    const int32_t *pp = prompt;
    int plen = 8;
    ouro_gen_result r;
    memset(&r, 0, sizeof r);
    polls = 0;
    stop_at = 2;
    ouro_gen_params gp = { .max_tokens = 4, .cancel = cancel_at };
    st = ouro_generate(s, 1, &pp, &plen, &gp, &r, &err);
    check(st == OURO_ERR_INTERRUPTED && polls == 2, "cancel: ouro_generate stops inside the prefill's "
          "forward call (%d polls)", polls);
    ouro_gen_result_clear(&r);
    ouro_session_free(s);
    free(ref);
    free(got);
}

/* ------------------------------------------------------------------------
 * Memory limit
 * ------------------------------------------------------------------------ */

static void test_limit(ouro_model *m)
{
    ouro_session_options o = { .n_ctx = 256, .n_seq = 4 };
    size_t need = ouro_session_bytes_for(m, &o);
    ouro_session *s = NULL;
    ouro_error err = {0};
    check(need > 0, "limit: the bytes of a session are known before allocating (%zu)", need);
    o.max_bytes = need - 1;
    ouro_status st = ouro_session_new(m, &o, &s, &err);
    check(st == OURO_ERR_LIMIT && s == NULL && strstr(err.message, "MiB") && strstr(err.message, "limit"),
          "limit: one byte below is refused, saying how much: %s", err.message);
    o.max_bytes = need;
    st = ouro_session_new(m, &o, &s, &err);
    check(st == OURO_OK && ouro_session_bytes(s) == need, "limit: exactly enough is accepted");
    if (st != OURO_OK)
        return;
    const char *in = "some text", *labels[2] = { "yes", "no" };
    double probs[2];
    st = ouro_classify(s, in, labels, 2, NULL, NULL, probs, NULL, NULL, NULL, &err);
    check(st == OURO_ERR_LIMIT, "limit: classification's logits count against the limit: %s",
          err.message);
    ouro_session_free(s);
    o.max_bytes = 0;
    check(ouro_session_new(m, &o, &s, &err) == OURO_OK &&
          ouro_classify(s, in, labels, 2, NULL, NULL, probs, NULL, NULL, NULL, &err) == OURO_OK,
          "limit: without a limit the same classification runs");
    ouro_session_free(s);
}

/* ------------------------------------------------------------------------
 * NUL bytes in decoded text
 * ------------------------------------------------------------------------ */

static void test_nul(ouro_model *m)
{
    const ouro_tokenizer *tok = ouro_model_tokenizer(m);
    int32_t nul = ouro_tokenizer_token_id(tok, "\xC4\x80");   /* byte-level 'Ā' = byte 0x00 */
    int32_t x = ouro_tokenizer_token_id(tok, "x");
    if (!check(nul >= 0 && x >= 0, "nul: the byte-level token of 0x00 is %d", nul))
        return;
    int32_t ids[3] = { x, nul, x };
    char *text = NULL;
    size_t len = 0;
    ouro_error err;
    ouro_status st = ouro_tokenizer_decode(tok, ids, 3, false, &text, &len, &err);
    check(st == OURO_OK && len == 5 && strlen(text) == len && memcmp(text, "x\xEF\xBF\xBDx", 5) == 0,
          "nul: x, 0x00, x decodes to \"x\\uFFFDx\" with no NUL inside");
    ouro_free(text);
}

/* ------------------------------------------------------------------------
 * End-of-sequence ids
 * ------------------------------------------------------------------------ */

static void write_eos(const char *dir, int n)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 1 << 16);
    size_t got = f ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    if (f)
        fclose(f);
    cJSON *cfg = cJSON_ParseWithLength(buf, got);
    cJSON *ids = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(1000 + i));
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "eos_token_id", ids);
    char *out = cJSON_Print(cfg);
    f = fopen(path, "wb");
    fputs(out, f);
    fclose(f);
    free(out);
    free(buf);
    cJSON_Delete(cfg);
}

static void test_eos(void)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/eos", root);
    sh("mkdir -p %s%s", dir, "");
    sh("cp %s/config.json %s/", SRC, dir);
    sh("ln -s $PWD/%s/model.safetensors %s/", SRC, dir);
    ouro_model *m = NULL;
    ouro_error err = {0};
    write_eos(dir, 20);
    ouro_status st = ouro_model_load(dir, &m, &err);
    check(st == OURO_OK && ouro_model_config(m)->n_eos == 20, "eos: 20 eos_token_id values are all "
          "kept (%d)", m ? ouro_model_config(m)->n_eos : -1);
    ouro_model_free(m);
    m = NULL;
    write_eos(dir, OURO_MAX_EOS + 1);
    st = ouro_model_load(dir, &m, &err);
    check(st == OURO_ERR_UNSUPPORTED && strstr(err.message, "eos_token_id"), "eos: %d values are an "
          "error, not silently cut: %s", OURO_MAX_EOS + 1, err.message);
    ouro_model_free(m);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/ouro-safety-XXXXXX");
    if (!mkdtemp(root)) {
        check(0, "a temporary folder");
        return check_done();
    }
    install_own_handler();

    test_truncate();
    ouro_model *m = NULL;
    ouro_error err;
    if (check(ouro_model_load(SRC, &m, &err) == OURO_OK, "the tiny model loads")) {
        test_cancel(m);
        test_limit(m);
        test_nul(m);
        ouro_model_free(m);
    }
    test_eos();
    test_foreign_sigbus();
    sh("rm -rf %s%s", root, "");
    return check_done();
}

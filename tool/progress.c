/*
 * progress.c -- the progress bar of the long commands (`ouro generate --file`,
 * `ouro generate` of one prompt, `ouro convert`, `ouro enrich`), on stderr.
 *
 *   [#########.....................] 120/400 rows  35.2 tokens/s  ETA 1m20s
 *
 * One line, redrawn in place (carriage return, erase to the end of the line)
 * at most PROGRESS_HZ times a second, and a last time with a newline at the
 * end.  --progress auto (the default) draws it when stderr is a terminal,
 * always and never force it.  The numbers come from the core's progress
 * callback (ouro_gen_params.progress, ouro_convert_q8_progress), which is
 * called from the decode and conversion loops; the core itself never prints.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define PROGRESS_HZ 5
#define PROGRESS_WIDTH 30

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

bool progress_parse(const char *cmd, const char *when, bool *on)
{
    if (strcmp(when, "auto") == 0)
        *on = isatty(STDERR_FILENO);
    else if (strcmp(when, "always") == 0)
        *on = true;
    else if (strcmp(when, "never") == 0)
        *on = false;
    else {
        fprintf(stderr, "ouro %s: --progress must be auto, always or never (got %s)\n", cmd, when);
        return false;
    }
    return true;
}

void progress_start(tool_progress *p, bool on, const char *unit, double scale, int64_t total,
                    bool rate)
{
    memset(p, 0, sizeof *p);
    p->on = on;
    p->unit = unit;
    p->scale = scale > 0 ? scale : 1;
    p->total = total;
    p->rate = rate;
    p->t0 = now_s();
    p->last = -1;
    p->stdout_tty = isatty(STDOUT_FILENO);
}

/* Draws the line for `done` units and `tokens` tokens. */
static void draw(tool_progress *p, int64_t done, int64_t tokens, bool final)
{
    double secs = now_s() - p->t0;
    double per_s = secs > 0 ? done / secs : 0;
    char eta[32] = "--";
    int fill = p->total > 0 ? (int)((double)done / p->total * PROGRESS_WIDTH) : 0;
    if (fill > PROGRESS_WIDTH)
        fill = PROGRESS_WIDTH;
    if (done >= p->total)
        snprintf(eta, sizeof eta, "0s");
    else if (per_s > 0) {
        long left = (long)((p->total - done) / per_s + 0.5);
        snprintf(eta, sizeof eta, "%ldm%02lds", left / 60, left % 60);
    }
    char bar[PROGRESS_WIDTH + 1];
    for (int i = 0; i < PROGRESS_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[PROGRESS_WIDTH] = 0;
    char rate[48] = "";
    if (p->rate)
        snprintf(rate, sizeof rate, "  %.1f tokens/s", secs > 0 ? tokens / secs : 0.0);
    fprintf(stderr, "\r[%s] %lld/%lld %s%s  ETA %s \033[K%s", bar, (long long)(done / p->scale),
            (long long)(p->total / p->scale), p->unit, rate, eta, final ? "\n" : "");
    fflush(stderr);
    p->drawn = !final;
}

void progress_update(tool_progress *p, int64_t done, int64_t tokens, bool force)
{
    if (!p->on)
        return;
    double t = now_s();
    if (!force && p->last >= 0 && t - p->last < 1.0 / PROGRESS_HZ)
        return;
    p->last = t;
    draw(p, done, tokens, false);
}

void progress_clear(tool_progress *p)
{
    if (p->on && p->drawn && p->stdout_tty) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->drawn = false;
    }
}

void progress_end(tool_progress *p, int64_t done, int64_t tokens)
{
    if (p->on)
        draw(p, done, tokens, true);
    p->on = false;
}

void progress_on_generate(void *ctx, const ouro_progress *p)
{
    tool_gen_progress *g = ctx;
    progress_update(g->bar, g->rows + p->done, g->tokens + p->tokens, false);
}

void progress_on_tokens(void *ctx, const ouro_progress *p)
{
    progress_update(ctx, p->tokens, p->tokens, false);
}

void progress_on_bytes(void *ctx, const ouro_progress *p)
{
    tool_progress *bar = ctx;
    bar->total = p->total;
    progress_update(bar, p->done, 0, p->done >= p->total);
}

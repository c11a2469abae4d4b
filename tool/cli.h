/*
 * cli.h -- the subcommands of the `ouro` command-line tool.
 *
 * Each command takes the arguments after its name (argv[0] is the command
 * name), prints its result on stdout (JSON where the help says so) and errors
 * on stderr, and returns the process exit status.
 */
#ifndef OURO_CLI_H
#define OURO_CLI_H

int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_chat_template(int argc, char **argv);
int cmd_sql_surface(int argc, char **argv);
int cmd_enrich(int argc, char **argv);

/* The progress bar of the long commands, on stderr (progress.c). */
#include <stdbool.h>
#include <stdint.h>
#include "ouro.h"

typedef struct tool_progress {
    bool on;                 /* drawing at all */
    const char *unit;        /* "rows", "tokens", "MB" */
    double scale;            /* units shown = done / scale */
    int64_t total;           /* units in all, before scaling */
    bool rate;               /* show tokens/s */
    bool stdout_tty;         /* stdout shares the terminal: clear the bar before printing */
    bool drawn;              /* the bar is on the line now */
    double t0, last;         /* start, last draw (monotonic seconds) */
} tool_progress;

/* --weights map|memory and --precision auto|exact|bf16 into *out; false
 * after printing an error naming the command (ouro.c, from the values of the
 * SQL settings weights and precision). */
bool ouro_tool_parse_weights(const char *cmd, const char *s, ouro_weights *out);
bool ouro_tool_parse_precision(const char *cmd, const char *s, ouro_precision *out);

/* --progress WHEN (auto|always|never) into *on; false after printing an
 * error naming the command. */
bool progress_parse(const char *cmd, const char *when, bool *on);
void progress_start(tool_progress *p, bool on, const char *unit, double scale, int64_t total,
                    bool rate);
/* Redraws (at most a few times a second unless force). */
void progress_update(tool_progress *p, int64_t done, int64_t tokens, bool force);
/* Erases the bar before a line of stdout when both share the terminal. */
void progress_clear(tool_progress *p);
/* The last drawing, with a newline; the bar is off afterwards. */
void progress_end(tool_progress *p, int64_t done, int64_t tokens);

/* ouro_gen_params.progress for a bar in rows: ctx is a tool_gen_progress, whose
 * rows and tokens (those of earlier calls) are added to the call's own. */
typedef struct tool_gen_progress {
    tool_progress *bar;
    int64_t rows, tokens;
} tool_gen_progress;
void progress_on_generate(void *ctx, const ouro_progress *p);
/* ouro_gen_params.progress for one prompt's bar in tokens: ctx is the tool_progress. */
void progress_on_tokens(void *ctx, const ouro_progress *p);
/* ouro_convert_q8_progress's callback: ctx is the tool_progress, its total set from the call. */
void progress_on_bytes(void *ctx, const ouro_progress *p);

#endif

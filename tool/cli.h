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

#endif

/*
 * tokenize.c -- the tokenizer commands of the `ouro` tool:
 *
 *   ouro tokenize --model DIR (--text STR | --file F)      ids as a JSON array
 *   ouro detokenize --model DIR --ids 1,2,3 [--skip-special]   {"text": "..."}
 *   ouro chat-template --model DIR --messages FILE.json [--no-generation-prompt]
 *                                                          {"text": "..."}
 *
 * They need only the tokenizer files of DIR (tokenizer.json, and
 * tokenizer_config.json for the chat template), no weights.  Results go to
 * stdout, errors to stderr; exit status 0, 1 on an error, 2 on a usage error.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "ouro.h"

/* ------------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------------ */

/* Prints the usage of a command to f. */
static void usage(FILE *f, const char *cmd)
{
    if (strcmp(cmd, "tokenize") == 0)
        fputs("usage: ouro tokenize --model DIR (--text STR | --file F)\n"
              "Prints the token ids of the text (UTF-8; invalid bytes count as U+FFFD) as a JSON\n"
              "array, as the Hugging Face tokenizer gives them with add_special_tokens=false.\n"
              "DIR needs only tokenizer.json.\n", f);
    else if (strcmp(cmd, "detokenize") == 0)
        fputs("usage: ouro detokenize --model DIR --ids 1,2,3 [--skip-special]\n"
              "Prints {\"text\": \"...\"}: the ids decoded to text; --skip-special drops special\n"
              "tokens such as <|im_end|>.  DIR needs only tokenizer.json.\n", f);
    else
        fputs("usage: ouro chat-template --model DIR --messages FILE.json [--no-generation-prompt]\n"
              "Prints {\"text\": \"...\"}: the messages ([{\"role\": ..., \"content\": ...}]) rendered\n"
              "with the model's chat template (tokenizer_config.json), ending with the assistant\n"
              "prompt unless --no-generation-prompt.  DIR needs only the tokenizer files.\n", f);
}

/* Command-line options of the three commands. */
typedef struct tok_args {
    const char *model, *text, *file, *ids, *messages;
    int skip_special, no_gen_prompt;
} tok_args;

/* Parses argv (argv[0] is the command); `allowed` lists the options the
 * command takes.  Returns 0, 1 after --help (printed), or 2 after a usage
 * error (printed). */
static int parse_args(int argc, char **argv, const char *allowed, tok_args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char **val = NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout, argv[0]);
            return 1;
        }
        if (!strstr(allowed, o) || strncmp(o, "--", 2) != 0) {
            fprintf(stderr, "ouro %s: unknown option %s\n", argv[0], o);
            usage(stderr, argv[0]);
            return 2;
        }
        if (strcmp(o, "--model") == 0) val = &a->model;
        else if (strcmp(o, "--text") == 0) val = &a->text;
        else if (strcmp(o, "--file") == 0) val = &a->file;
        else if (strcmp(o, "--ids") == 0) val = &a->ids;
        else if (strcmp(o, "--messages") == 0) val = &a->messages;
        else if (strcmp(o, "--skip-special") == 0) a->skip_special = 1;
        else if (strcmp(o, "--no-generation-prompt") == 0) a->no_gen_prompt = 1;
        else {
            fprintf(stderr, "ouro %s: unknown option %s\n", argv[0], o);
            usage(stderr, argv[0]);
            return 2;
        }
        if (val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ouro %s: %s needs a value\n", argv[0], o);
                return 2;
            }
            *val = argv[++i];
        }
    }
    if (!a->model) {
        fprintf(stderr, "ouro %s: --model DIR is required\n", argv[0]);
        usage(stderr, argv[0]);
        return 2;
    }
    return 0;
}

/* Loads the tokenizer of dir; prints the error and returns NULL on failure. */
static ouro_tokenizer *load(const char *cmd, const char *dir)
{
    ouro_tokenizer *tok = NULL;
    ouro_error e;
    if (ouro_tokenizer_load(dir, &tok, &e) != OURO_OK) {
        fprintf(stderr, "ouro %s: %s\n", cmd, e.message);
        return NULL;
    }
    return tok;
}

/* Most bytes of a file these commands read (text to tokenize, messages). */
#define TOOL_MAX_FILE ((size_t)1 << 30)

/* Reads a whole file with the core's reader (ouro_free; NUL-terminated);
 * NULL after printing an error. */
static char *read_file(const char *cmd, const char *path, const char *what, size_t *len)
{
    char *data = NULL;
    ouro_error e;
    if (ouro_read_file(path, what, TOOL_MAX_FILE, &data, len, NULL, &e) != OURO_OK) {
        fprintf(stderr, "ouro %s: %s\n", cmd, e.message);
        return NULL;
    }
    return data;
}

/* Prints {"text": "..."} with s (len bytes of UTF-8) as a JSON string:
 * quotes, backslashes and control characters escaped, the rest as is. */
static void print_text_json(const char *s, size_t len)
{
    fputs("{\"text\": \"", stdout);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\b': fputs("\\b", stdout); break;
        case '\f': fputs("\\f", stdout); break;
        default:
            if (c < 0x20 || c == 0x7f) printf("\\u%04x", c);
            else putchar(c);
        }
    }
    fputs("\"}\n", stdout);
}

/* ------------------------------------------------------------------------
 * The commands
 * ------------------------------------------------------------------------ */

int cmd_tokenize(int argc, char **argv)
{
    tok_args a;
    int r = parse_args(argc, argv, "--model --text --file", &a);
    if (r) return r == 1 ? 0 : 2;
    if (!a.text == !a.file) {
        fprintf(stderr, "ouro tokenize: give one of --text STR or --file F\n");
        return 2;
    }
    size_t len = 0;
    char *owned = NULL;      /* the file's text (ouro_free) */
    const char *text = a.text;
    if (a.file) {
        if (!(owned = read_file(argv[0], a.file, "text to tokenize (1 GiB at most)", &len)))
            return 1;
        text = owned;
    } else {
        len = strlen(text);
    }
    ouro_tokenizer *tok = load(argv[0], a.model);
    if (!tok) { ouro_free(owned); return 1; }
    int32_t *ids = NULL;
    size_t n = 0;
    ouro_error e;
    if (ouro_tokenizer_encode(tok, text, len, &ids, &n, &e) != OURO_OK) {
        fprintf(stderr, "ouro tokenize: %s\n", e.message);
        ouro_tokenizer_free(tok);
        ouro_free(owned);
        return 1;
    }
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)ids[i]);
    puts("]");
    ouro_free(ids);
    ouro_tokenizer_free(tok);
    ouro_free(owned);
    return ferror(stdout) ? 1 : 0;
}

int cmd_detokenize(int argc, char **argv)
{
    tok_args a;
    int r = parse_args(argc, argv, "--model --ids --skip-special", &a);
    if (r) return r == 1 ? 0 : 2;
    if (!a.ids) {
        fprintf(stderr, "ouro detokenize: --ids 1,2,3 is required\n");
        return 2;
    }
    /* parse the comma-separated ids (an empty list is allowed) */
    size_t cap = 1;
    for (const char *p = a.ids; *p; p++) cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) { fprintf(stderr, "ouro detokenize: out of memory\n"); return 1; }
    size_t n = 0;
    const char *p = a.ids;
    while (*p == ' ') p++;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX) {
            fprintf(stderr, "ouro detokenize: --ids: \"%s\" is not a list of integers like 1,2,3\n", a.ids);
            free(ids);
            return 2;
        }
        ids[n++] = (int32_t)v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') {
            p++;
            while (*p == ' ') p++;
            if (!*p) { fprintf(stderr, "ouro detokenize: --ids ends with a comma\n"); free(ids); return 2; }
        } else if (*p) {
            fprintf(stderr, "ouro detokenize: --ids: \"%s\" is not a list of integers like 1,2,3\n", a.ids);
            free(ids);
            return 2;
        }
    }
    ouro_tokenizer *tok = load(argv[0], a.model);
    if (!tok) { free(ids); return 1; }
    char *text = NULL;
    size_t len = 0;
    ouro_error e;
    int rc = 0;
    if (ouro_tokenizer_decode(tok, ids, n, a.skip_special, &text, &len, &e) != OURO_OK) {
        fprintf(stderr, "ouro detokenize: %s\n", e.message);
        rc = 1;
    } else {
        print_text_json(text, len);
    }
    ouro_free(text);
    ouro_tokenizer_free(tok);
    free(ids);
    return rc ? rc : ferror(stdout) ? 1 : 0;
}

int cmd_chat_template(int argc, char **argv)
{
    tok_args a;
    int r = parse_args(argc, argv, "--model --messages --no-generation-prompt", &a);
    if (r) return r == 1 ? 0 : 2;
    if (!a.messages) {
        fprintf(stderr, "ouro chat-template: --messages FILE.json is required\n");
        return 2;
    }
    size_t len;
    char *data = read_file(argv[0], a.messages, "a messages file (1 GiB at most)", &len);
    if (!data) return 1;
    cJSON *root = cJSON_ParseWithLength(data, len);
    ouro_free(data);
    int n = cJSON_IsArray(root) ? cJSON_GetArraySize(root) : -1;
    ouro_chat_message *msgs = n >= 0 ? calloc((size_t)n + 1, sizeof *msgs) : NULL;
    int i = 0;
    const cJSON *m;
    if (msgs) {
        cJSON_ArrayForEach(m, root) {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
            if (!cJSON_IsString(role) || !cJSON_IsString(content)) break;
            msgs[i].role = role->valuestring;
            msgs[i].content = content->valuestring;
            i++;
        }
    }
    if (!msgs || i != n) {
        fprintf(stderr, "ouro chat-template: %s: expected a JSON array of {\"role\": string, "
                "\"content\": string}\n", a.messages);
        free(msgs);
        cJSON_Delete(root);
        return 1;
    }
    ouro_tokenizer *tok = load(argv[0], a.model);
    int rc = 1;
    if (tok) {
        char *text = NULL;
        ouro_error e;
        if (ouro_chat_render(tok, msgs, (size_t)n, !a.no_gen_prompt, &text, &e) != OURO_OK) {
            fprintf(stderr, "ouro chat-template: %s\n", e.message);
        } else {
            print_text_json(text, strlen(text));
            rc = ferror(stdout) ? 1 : 0;
        }
        ouro_free(text);
        ouro_tokenizer_free(tok);
    }
    free(msgs);
    cJSON_Delete(root);
    return rc;
}

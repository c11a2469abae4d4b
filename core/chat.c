/*
 * chat.c -- the chat template: recognises the ChatML templates ouro can
 * render exactly and renders a list of messages with them.
 *
 * tokenizer_config.json's "chat_template" is a Jinja program.  ouro carries
 * no Jinja engine: it compares the template with the ChatML templates it
 * knows, after removing the whitespace inside {{ }}, {% %} and {# #} tags
 * that is outside string literals (that whitespace has no effect on the
 * output; text between tags, "-" trim markers and string literals are
 * compared exactly).  A template that matches none is refused at render time
 * with OURO_ERR_UNSUPPORTED; tokenization works all the same.
 *
 * The known templates (as published; '\n' inside a template string literal is
 * Jinja's escape for a newline):
 *   - Ouro (Ouro-1.4B / 2.6B): a system turn first -- the first message if it
 *     is a system message, else "You are a helpful assistant." -- then every
 *     other message, then "<|im_start|>assistant\n" when add_generation_prompt.
 *   - SmolLM2 instruct: the same output with its own default system message.
 *   - Plain ChatML: every message, then the generation prompt.
 * Each turn is "<|im_start|>" + role + "\n" + content + "<|im_end|>\n".
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tokenizer_internal.h"

/* ------------------------------------------------------------------------
 * Known templates
 * ------------------------------------------------------------------------ */

typedef struct known_template {
    const char *text;          /* the template as published */
    tok_chat_kind kind;
    const char *system;        /* default system message for TOK_CHAT_CHATML_SYSTEM */
} known_template;

static const known_template known[] = {
    {   /* ByteDance/Ouro-1.4B, Ouro-2.6B tokenizer_config.json */
        "{%- if messages[0]['role'] == 'system' -%}"
        "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
        "{%- else -%}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif -%}"
        "{%- for message in messages -%}"
        "{%- if message.role == 'system' and loop.first -%}{# Skip #}"
        "{%- else -%}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' }}{%- endif -%}",
        TOK_CHAT_CHATML_SYSTEM, "You are a helpful assistant."
    },
    {   /* HuggingFaceTB/SmolLM2 instruct models */
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
        "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        TOK_CHAT_CHATML_SYSTEM, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    },
    {   /* plain ChatML, as in the transformers documentation */
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        TOK_CHAT_CHATML, NULL
    },
};

/* Copy of a template without the whitespace inside tags outside string
 * literals (malloc'd; NULL when out of memory). */
static char *normalise(const char *t)
{
    size_t n = strlen(t), o = 0;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    char close = 0;      /* '}', '%' or '#' while inside a tag */
    char quote = 0;      /* the quote character while inside a literal */
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!close) {
            if (c == '{' && (t[i + 1] == '{' || t[i + 1] == '%' || t[i + 1] == '#')) {
                close = t[i + 1] == '{' ? '}' : t[i + 1];
                out[o++] = c;
                out[o++] = t[++i];
                continue;
            }
            out[o++] = c;
        } else if (quote) {
            out[o++] = c;
            if (c == '\\' && t[i + 1]) out[o++] = t[++i];
            else if (c == quote) quote = 0;
        } else if (c == close && t[i + 1] == '}') {
            out[o++] = c;
            out[o++] = t[++i];
            close = 0;
        } else if ((c == '\'' || c == '"') && close != '#') {
            quote = c;
            out[o++] = c;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
}

ouro_status tok_chat_recognise(const char *template_text, tok_chat_kind *kind, char **system)
{
    *kind = TOK_CHAT_UNKNOWN;
    *system = NULL;
    char *t = normalise(template_text);
    if (!t) return OURO_ERR_NOMEM;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        char *kt = normalise(known[k].text);
        if (!kt) {
            free(t);
            return OURO_ERR_NOMEM;
        }
        bool same = strcmp(t, kt) == 0;
        free(kt);
        if (!same) continue;
        if (known[k].system && !(*system = strdup(known[k].system))) {
            free(t);
            return OURO_ERR_NOMEM;
        }
        *kind = known[k].kind;
        break;
    }
    free(t);
    return OURO_OK;
}

/* ------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------ */

/* Appends one ChatML turn (or its byte count when out is NULL) at *o. */
static void put_turn(char *out, size_t *o, const char *role, const char *content)
{
    const char *parts[5] = { "<|im_start|>", role, "\n", content, "<|im_end|>\n" };
    for (int k = 0; k < 5; k++) {
        size_t n = strlen(parts[k]);
        if (out) memcpy(out + *o, parts[k], n);
        *o += n;
    }
}

/* Writes the rendering to out, or only counts its bytes when out is NULL. */
static size_t render(const ouro_tokenizer *tok, const ouro_chat_message *msgs, size_t n_msgs,
                     bool add_generation_prompt, char *out)
{
    size_t o = 0, first = 0;
    if (tok->chat_kind == TOK_CHAT_CHATML_SYSTEM) {
        if (strcmp(msgs[0].role, "system") == 0) {
            put_turn(out, &o, "system", msgs[0].content);
            first = 1;
        } else {
            put_turn(out, &o, "system", tok->chat_system);
        }
    }
    for (size_t i = first; i < n_msgs; i++)
        put_turn(out, &o, msgs[i].role, msgs[i].content);
    if (add_generation_prompt) {
        static const char gen[] = "<|im_start|>assistant\n";
        if (out) memcpy(out + o, gen, sizeof gen - 1);
        o += sizeof gen - 1;
    }
    return o;
}

ouro_status ouro_chat_render(const ouro_tokenizer *tok, const ouro_chat_message *msgs, size_t n_msgs,
                             bool add_generation_prompt, char **text, ouro_error *err)
{
    ouro_status st = OURO_OK;
    const char *why = NULL;
    if (text) *text = NULL;
    if (!tok || !text || (!msgs && n_msgs)) {
        st = OURO_ERR_ARG;
        why = "ouro_chat_render: NULL argument";
    } else if (tok->chat_kind == TOK_CHAT_NONE) {
        st = OURO_ERR_UNSUPPORTED;
        why = "the model has no chat_template (tokenizer_config.json)";
    } else if (tok->chat_kind == TOK_CHAT_UNKNOWN) {
        st = OURO_ERR_UNSUPPORTED;
        why = "the chat_template in tokenizer_config.json is not one ouro can render exactly "
              "(it knows the ChatML templates of Ouro, SmolLM2 and plain ChatML)";
    } else if (n_msgs == 0 && tok->chat_kind == TOK_CHAT_CHATML_SYSTEM) {
        /* the Ouro template reads messages[0]: Jinja fails on an empty list */
        st = OURO_ERR_ARG;
        why = "the chat template needs at least one message";
    }
    for (size_t i = 0; st == OURO_OK && i < n_msgs; i++) {
        if (!msgs[i].role || !msgs[i].content) {
            st = OURO_ERR_ARG;
            why = "a chat message has a NULL role or content";
        }
    }
    if (st != OURO_OK) {
        return ouro_err(err, st, "%s", why);
    }
    size_t n = render(tok, msgs, n_msgs, add_generation_prompt, NULL);
    char *out = malloc(n + 1);
    if (!out) {
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory rendering the chat template");
    }
    render(tok, msgs, n_msgs, add_generation_prompt, out);
    out[n] = '\0';
    *text = out;
    return OURO_OK;
}

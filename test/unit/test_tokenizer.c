/*
 * test_tokenizer.c -- the tokenizer and chat template against the Hugging Face
 * reference (the JSON files in test/data/tokenizer/, with test/data/ouro-1.4b-config), and
 * unit tests of the pieces: the pre-tokenizer split, merges, added tokens,
 * the byte mapping, invalid UTF-8, refused configurations, and concurrent
 * encode/decode on one shared tokenizer.
 *
 * Run from the repository root (test/run.sh does).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "ouro.h"
#include "tokenizer_internal.h"

#define TOK_DIR "test/data/ouro-1.4b-config"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Parses a JSON file (NULL on failure, with a note). */
static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { check_note("cannot open %s", path); return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); return NULL; }
    fclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_ParseWithLength(buf, (size_t)n);
    free(buf);
    return j;
}

/* ids of a JSON array (malloc'd, *n its length). */
static int32_t *json_ids(const cJSON *a, size_t *n)
{
    *n = (size_t)cJSON_GetArraySize(a);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = (int32_t)e->valuedouble;
    return v;
}

/* True when the encoding of s is exactly the n ids of want. */
static int encodes_to(const ouro_tokenizer *tok, const char *s, size_t len, const int32_t *want, size_t n)
{
    int32_t *ids;
    size_t n_ids;
    if (ouro_tokenizer_encode(tok, s, len, &ids, &n_ids, NULL) != OURO_OK) return 0;
    int ok = n_ids == n && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!ok) {
        printf("# got:");
        for (size_t i = 0; i < n_ids && i < 40; i++) printf(" %d", ids[i]);
        printf("\n# want:");
        for (size_t i = 0; i < n && i < 40; i++) printf(" %d", want[i]);
        printf("\n");
    }
    ouro_free(ids);
    return ok;
}

/* True when decoding the ids gives exactly `want`. */
static int decodes_to(const ouro_tokenizer *tok, const int32_t *ids, size_t n, bool skip, const char *want)
{
    char *text;
    size_t len;
    if (ouro_tokenizer_decode(tok, ids, n, skip, &text, &len, NULL) != OURO_OK) return 0;
    int ok = len == strlen(want) && strcmp(text, want) == 0;
    if (!ok) check_note("decoded \"%s\", want \"%s\"", text, want);
    ouro_free(text);
    return ok;
}

/* Collects pre-tokenized words joined by '|'. */
typedef struct words { char buf[1024]; size_t n; } words;

static int add_word(const uint8_t *w, size_t len, void *ctx)
{
    words *ws = ctx;
    if (ws->n + len + 2 >= sizeof ws->buf) return 1;
    if (ws->n) ws->buf[ws->n++] = '|';
    memcpy(ws->buf + ws->n, w, len);
    ws->n += len;
    ws->buf[ws->n] = '\0';
    return 0;
}

/* Checks that the pre-tokenizer splits s into `want` (words joined by '|'). */
static void check_split(const ouro_tokenizer *tok, const char *s, const char *want, const char *name)
{
    words ws = { .n = 0 };
    ws.buf[0] = '\0';
    tok_pretokenize(tok, (const uint8_t *)s, strlen(s), add_word, &ws);
    if (!check(strcmp(ws.buf, want) == 0, "split: %s", name))
        check_note("got [%s] want [%s]", ws.buf, want);
}

/* Writes a tokenizer.json (and no config) into dir. */
static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) { fputs(text, f); fclose(f); }
}

/* ------------------------------------------------------------------------
 * Reference cases
 * ------------------------------------------------------------------------ */

static void test_cases(const ouro_tokenizer *tok)
{
    cJSON *cases = read_json("test/data/tokenizer/cases.json");
    if (!check(cases && cJSON_GetArraySize(cases) > 0, "cases.json read")) return;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        size_t n;
        int32_t *ids = json_ids(cJSON_GetObjectItem(c, "ids"), &n);
        check(encodes_to(tok, text, strlen(text), ids, n), "encode %s", name);
        check(decodes_to(tok, ids, n, false, cJSON_GetObjectItem(c, "decoded")->valuestring),
              "decode %s", name);
        check(decodes_to(tok, ids, n, true, cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring),
              "decode skip_special %s", name);
        free(ids);
    }
    cJSON_Delete(cases);
}

static void test_decode_cases(const ouro_tokenizer *tok)
{
    cJSON *cases = read_json("test/data/tokenizer/decode_cases.json");
    if (!check(cases && cJSON_GetArraySize(cases) > 0, "decode_cases.json read")) return;
    int bad = 0, bad_skip = 0, total = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        size_t n;
        int32_t *ids = json_ids(cJSON_GetObjectItem(c, "ids"), &n);
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        if (!decodes_to(tok, ids, n, false, cJSON_GetObjectItem(c, "decoded")->valuestring)) {
            bad++;
            check_note("decode case %s differs", name);
        }
        if (!decodes_to(tok, ids, n, true, cJSON_GetObjectItem(c, "decoded_skip_special")->valuestring)) {
            bad_skip++;
            check_note("decode case %s (skip_special) differs", name);
        }
        total++;
        free(ids);
    }
    check(bad == 0, "decode_cases: %d cases decode as the reference", total);
    check(bad_skip == 0, "decode_cases: %d cases decode as the reference with skip_special", total);
    cJSON_Delete(cases);
}

static void test_chat_cases(const ouro_tokenizer *tok)
{
    cJSON *cases = read_json("test/data/tokenizer/chat_cases.json");
    if (!check(cases && cJSON_GetArraySize(cases) > 0, "chat_cases.json read")) return;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *msgs = cJSON_GetObjectItem(c, "messages");
        size_t n = (size_t)cJSON_GetArraySize(msgs), i = 0;
        ouro_chat_message *m = calloc(n + 1, sizeof *m);
        const cJSON *e;
        cJSON_ArrayForEach(e, msgs) {
            m[i].role = cJSON_GetObjectItem(e, "role")->valuestring;
            m[i].content = cJSON_GetObjectItem(e, "content")->valuestring;
            i++;
        }
        char *text = NULL;
        ouro_status st = ouro_chat_render(tok, m, n, cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")),
                                          &text, NULL);
        const char *want = cJSON_GetObjectItem(c, "rendered")->valuestring;
        check(st == OURO_OK && strcmp(text, want) == 0, "chat %s", cJSON_GetObjectItem(c, "name")->valuestring);
        ouro_free(text);
        free(m);
    }
    cJSON_Delete(cases);
}

/* ------------------------------------------------------------------------
 * Pieces
 * ------------------------------------------------------------------------ */

static void test_split(const ouro_tokenizer *tok)
{
    check_split(tok, "Hello world", "Hello| world", "letters with a leading space");
    check_split(tok, "I'm he's they'll 'sun", "I|'m| he|'s| they|'ll| '|sun", "contractions");
    check_split(tok, "WON'T It'S", "WON|'|T| It|'|S", "contractions are lower case only");
    check_split(tok, "a  b", "a| | b", "two spaces: the last joins the word");
    check_split(tok, "a \n b", "a| \n| b", "whitespace run before a word keeps its last space");
    check_split(tok, "x\ny", "x|\n|y", "a lone newline");
    check_split(tok, "end   ", "end|   ", "trailing whitespace to the end");
    check_split(tok, "12345", "1|2|3|4|5", "digits one by one");
    check_split(tok, "x 42", "x| |4|2", "space before digits stays apart (Digits splits first)");
    check_split(tok, "a  1", "a|  |1", "whitespace lookahead stops at the digit piece");
    check_split(tok, "v\xc2\xb2", "v|\xc2\xb2", "superscript two is numeric (No)");
    check_split(tok, "\xe2\x85\xa0x", "\xe2\x85\xa0|x", "roman numeral one is numeric (Nl)");
    check_split(tok, "caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9| na\xc3\xafve", "Latin letters");
    check_split(tok, "\xd0\x9f\xd1\x80\xd0\xb8", "\xd0\x9f\xd1\x80\xd0\xb8", "Cyrillic letters");
    check_split(tok, "a\xc2\xa0" "b", "a|\xc2\xa0|b", "no-break space is \\s but not ' '");
    check_split(tok, "a\xe3\x80\x80\xe3\x80\x80" "b", "a|\xe3\x80\x80|\xe3\x80\x80|b",
                "ideographic spaces: the run gives back its last character, which is not ' '");
    check_split(tok, "a\xe2\x80\x8b" "b", "a|\xe2\x80\x8b|b", "zero width space is not \\s (Cf)");
    check_split(tok, "(x) + y;", "(|x|)| +| y|;", "punctuation runs take one leading space");
    check_split(tok, "...!!", "...!!", "a punctuation run");
    check_split(tok, " \t \n ", " \t \n ", "all whitespace");
    check_split(tok, "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d",
                "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8|\xe0\xa5\x8d", "a combining mark (Mn) is not a letter");

    /* the other pre-tokenizer settings, on a copy of the loaded tokenizer */
    ouro_tokenizer t = *tok;
    t.digits = TOK_DIGITS_CONTIGUOUS;
    check_split(&t, "x 42\xc2\xb2\xc2\xbd" "ab 7", "x| |42\xc2\xb2\xc2\xbd|ab| |7",
                "Digits contiguous: a run of numeric characters (char::is_numeric) is one piece");
    t.digits = TOK_DIGITS_NONE;
    check_split(&t, "x 42 a", "x| 42| a", "ByteLevel alone: ' ?\\p{N}+' takes the space");
    t.use_regex = false;
    check_split(&t, "x 42 a", "x 42 a", "ByteLevel without use_regex: one word");
}

static void test_merges(const ouro_tokenizer *tok)
{
    /* one-word BPE: ids from the reference (cases.json texts) */
    int32_t hello[] = { 19556 };
    int32_t h = ouro_tokenizer_token_id(tok, "Hello");
    check(h == 19556 && encodes_to(tok, "Hello", 5, hello, 1), "merges: Hello is one token");
    int32_t sp = ouro_tokenizer_token_id(tok, "\xc4\xa0world");   /* "Ġworld" */
    int32_t w1[] = { h, sp };
    check(sp > 0 && encodes_to(tok, "Hello world", 11, w1, 2), "merges: ' world' is one token (Ġworld)");

    /* a long word takes the priority-queue path; compare with the same word
     * split in two places where the pieces are known tokens */
    char dots[200];
    memset(dots, '.', sizeof dots);
    int32_t *a, *b;
    size_t na, nb;
    ouro_tokenizer_encode(tok, dots, 200, &a, &na, NULL);
    ouro_tokenizer_encode(tok, dots, 48, &b, &nb, NULL);
    char *t = NULL;
    ouro_tokenizer_decode(tok, a, na, false, &t, NULL, NULL);
    check(na > 1 && na < 200 && t && strlen(t) == 200 && strspn(t, ".") == 200,
          "merges: a 200-byte word merges and round-trips (%zu tokens)", na);
    ouro_free(t);
    ouro_free(a);
    ouro_free(b);

    /* short and long paths agree: a word of 64 bytes and of 65 bytes */
    char ab[130];
    for (int i = 0; i < 130; i++) ab[i] = "ab"[i % 2];
    ouro_tokenizer_encode(tok, ab, 64, &a, &na, NULL);
    ouro_tokenizer_encode(tok, ab, 128, &b, &nb, NULL);
    check(nb == 2 * na && memcmp(a, b, na * sizeof *a) == 0 && memcmp(a, b + na, na * sizeof *a) == 0,
          "merges: 'ab'x64 (heap path) is 'ab'x32 (in-place path) twice");
    ouro_free(a);
    ouro_free(b);
}

static void test_special(const ouro_tokenizer *tok)
{
    check(ouro_tokenizer_token_id(tok, "<|im_start|>") == 1, "special: <|im_start|> is id 1");
    check(ouro_tokenizer_is_special(tok, 2) && !ouro_tokenizer_is_special(tok, 100), "special: flags");
    check(ouro_tokenizer_vocab_size(tok) == 49152, "vocab size 49152");
    int32_t want[] = { 0, 0 };
    check(encodes_to(tok, "<|endoftext|><|endoftext|>", 26, want, 2), "special: two in a row");
    int32_t *ids;
    size_t n;
    const char *s = "a<|im_end|";  /* an incomplete special token is text */
    ouro_tokenizer_encode(tok, s, strlen(s), &ids, &n, NULL);
    int has = 0;
    for (size_t i = 0; i < n; i++) has |= ids[i] == 2;
    check(!has && n > 1, "special: an incomplete special string is plain text");
    ouro_free(ids);
    int32_t think[] = { 3, 4 };
    check(decodes_to(tok, think, 2, false, "<think></think>") && decodes_to(tok, think, 2, true, ""),
          "special: decode keeps or skips them");
}

static void test_bytes(const ouro_tokenizer *tok)
{
    /* every byte with a token round-trips through encode and decode */
    int bad = 0, dropped = 0;
    for (int b = 1; b < 128; b++) {
        char s[2] = { (char)b, 0 };
        int32_t *ids;
        size_t n;
        ouro_tokenizer_encode(tok, s, 1, &ids, &n, NULL);
        if (n == 0) { dropped++; ouro_free(ids); continue; }
        char *t;
        ouro_tokenizer_decode(tok, ids, n, false, &t, NULL, NULL);
        if (strcmp(t, s) != 0) bad++;
        ouro_free(t);
        ouro_free(ids);
    }
    check(bad == 0, "bytes: ASCII characters round-trip");
    check(dropped == 6, "bytes: the 6 ASCII bytes without a token (4 6 19 20 22 29) are dropped (%d)", dropped);
    /* the byte-level alphabet: Ġ is the space, Ċ the newline */
    int32_t g = ouro_tokenizer_token_id(tok, "\xc4\xa0"), c = ouro_tokenizer_token_id(tok, "\xc4\x8a");
    check(decodes_to(tok, &g, 1, false, " ") && decodes_to(tok, &c, 1, false, "\n"),
          "bytes: \xc4\xa0 decodes to a space and \xc4\x8a to a newline");
    /* a token ending inside a character decodes to U+FFFD */
    int32_t *ids;
    size_t n;
    ouro_tokenizer_encode(tok, "\xe6\x9d\xb1", 3, &ids, &n, NULL);   /* 東: two tokens */
    check(n == 2 && decodes_to(tok, ids, 1, false, "\xef\xbf\xbd"), "bytes: half a character is U+FFFD");
    ouro_free(ids);
    int32_t oob = 49152, neg = -1;
    char *t;
    ouro_error e;
    check(ouro_tokenizer_decode(tok, &oob, 1, false, &t, NULL, &e) == OURO_ERR_ARG &&
          ouro_tokenizer_decode(tok, &neg, 1, false, &t, NULL, NULL) == OURO_ERR_ARG,
          "decode: ids out of range are OURO_ERR_ARG");
}

static void test_invalid_utf8(const ouro_tokenizer *tok)
{
    /* each maximal invalid subpart is U+FFFD: the text encodes as the text with U+FFFD there */
    static const struct { const char *bad, *good; } cases[] = {
        { "a\xff" "b", "a\xef\xbf\xbd" "b" },
        { "x\xe6\x9d" "y", "x\xef\xbf\xbd" "y" },                       /* truncated 3-byte */
        { "\xf0\x9f\x98", "\xef\xbf\xbd" },                             /* truncated 4-byte at the end */
        { "\xed\xa0\x80z", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz" },    /* surrogate: 3 subparts */
        { "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },                      /* overlong */
        { "\x80\x80 hi", "\xef\xbf\xbd\xef\xbf\xbd hi" },                /* stray continuation bytes */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int32_t *want;
        size_t nw;
        ouro_status st = ouro_tokenizer_encode(tok, cases[k].good, strlen(cases[k].good), &want, &nw, NULL);
        check(st == OURO_OK && encodes_to(tok, cases[k].bad, strlen(cases[k].bad), want, nw),
              "invalid UTF-8 case %zu encodes as U+FFFD", k);
        ouro_free(want);
    }
    /* the lossy conversion itself */
    uint8_t out[32];
    size_t n = tok_lossy_copy((const uint8_t *)"\xf4\x90\x80\x80", 4, out);
    check(n == 12, "lossy: F4 90 80 80 (above U+10FFFF) is four U+FFFD");
    n = tok_lossy_copy((const uint8_t *)"\xe0\xa0", 2, out);
    check(n == 3, "lossy: E0 A0 (a truncated character) is one U+FFFD");
}

static void test_chat_refusals(void)
{
    char dir[] = "/tmp/ouro_tok_chatXXXXXX";
    if (!mkdtemp(dir)) { check(0, "mkdtemp"); return; }
    /* the real tokenizer.json with other templates */
    FILE *src = fopen(TOK_DIR "/tokenizer.json", "rb");
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *dst = fopen(path, "wb");
    char buf[65536];
    size_t r;
    while (src && dst && (r = fread(buf, 1, sizeof buf, src)) > 0) fwrite(buf, 1, r, dst);
    if (src) fclose(src);
    if (dst) fclose(dst);

    ouro_tokenizer *tok = NULL;
    ouro_error e;
    ouro_chat_message m = { "user", "hi" };
    char *text = NULL;
    check(ouro_tokenizer_load(dir, &tok, &e) == OURO_OK && tok, "chat: loads without tokenizer_config.json");
    check(tok && ouro_chat_render(tok, &m, 1, true, &text, &e) == OURO_ERR_UNSUPPORTED,
          "chat: no template is unsupported (%s)", e.message);
    ouro_tokenizer_free(tok);

    write_file(dir, "tokenizer_config.json",
               "{\"chat_template\": \"{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}\"}");
    tok = NULL;
    check(ouro_tokenizer_load(dir, &tok, &e) == OURO_OK, "chat: loads with an unknown template");
    check(tok && ouro_chat_render(tok, &m, 1, true, &text, &e) == OURO_ERR_UNSUPPORTED &&
          strstr(e.message, "chat_template"), "chat: an unknown template is unsupported (%s)", e.message);
    ouro_tokenizer_free(tok);

    /* the plain ChatML template, with different spacing inside tags */
    write_file(dir, "tokenizer_config.json",
               "{\"chat_template\": \"{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\\\n' + "
               "message['content'] + '<|im_end|>' + '\\\\n' }}{% endfor %}{% if add_generation_prompt %}"
               "{{'<|im_start|>assistant\\\\n'}}{% endif %}\"}");
    tok = NULL;
    ouro_status st = ouro_tokenizer_load(dir, &tok, &e);
    text = NULL;
    if (st == OURO_OK) st = ouro_chat_render(tok, &m, 1, true, &text, &e);
    check(st == OURO_OK && text && strcmp(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") == 0,
          "chat: plain ChatML is recognised and rendered without a system turn");
    ouro_free(text);
    ouro_tokenizer_free(tok);

    /* a literal-text difference (a space between tags) is not normalised away */
    write_file(dir, "tokenizer_config.json",
               "{\"chat_template\": \"{% for message in messages %} {{ '<|im_start|>' + message['role'] + '\\\\n' + "
               "message['content'] + '<|im_end|>' + '\\\\n' }}{% endfor %}{% if add_generation_prompt %}"
               "{{'<|im_start|>assistant\\\\n'}}{% endif %}\"}");
    tok = NULL;
    st = ouro_tokenizer_load(dir, &tok, &e);
    check(st == OURO_OK && ouro_chat_render(tok, &m, 1, true, &text, &e) == OURO_ERR_UNSUPPORTED,
          "chat: text between tags counts");
    ouro_tokenizer_free(tok);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir); unlink(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir); unlink(path);
    rmdir(dir);
}

/* A small tokenizer.json with one part replaced: {PRE} {NORM} {DEC} {MODEL_EXTRA} {ADDED} {MERGES}. */
static void write_small(const char *dir, const char *pre, const char *norm, const char *dec,
                        const char *model_extra, const char *added, const char *merges)
{
    char json[4096];
    snprintf(json, sizeof json,
             "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,"
             " \"added_tokens\": [%s], \"normalizer\": %s, \"pre_tokenizer\": %s,"
             " \"post_processor\": null, \"decoder\": %s,"
             " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, %s"
             " \"byte_fallback\": false, \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"\xc4\xa0\": 3,"
             " \"\xc4\xa0" "ab\": 4, \"<x>\": 5}, \"merges\": %s}}",
             added, norm, pre, dec, model_extra, merges);
    write_file(dir, "tokenizer.json", json);
}

static void test_small_and_refusals(void)
{
    char dir[] = "/tmp/ouro_tok_cfgXXXXXX";
    if (!mkdtemp(dir)) { check(0, "mkdtemp"); return; }
    const char *bl = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}";
    const char *added = "{\"id\": 5, \"content\": \"<x>\", \"special\": true, \"normalized\": false}";
    ouro_tokenizer *tok = NULL;
    ouro_error e;

    /* merges as "a b" strings; both formats give the same ids */
    static const char *const merge_forms[2] = { "[\"a b\", \"\xc4\xa0 ab\"]", "[[\"a\", \"b\"], [\"\xc4\xa0\", \"ab\"]]" };
    for (int f = 0; f < 2; f++) {
        write_small(dir, bl, "null", bl, "", added, merge_forms[f]);
        tok = NULL;
        ouro_status st = ouro_tokenizer_load(dir, &tok, &e);
        int32_t want[] = { 2, 4, 5, 0, 1 };
        check(st == OURO_OK && encodes_to(tok, "ab ab<x>a\x04" "b", 11, want, 5),
              "small tokenizer, merges as %s: ab, \xc4\xa0" "ab, <x>, a, b (0x04 dropped)",
              f ? "pairs" : "strings");
        ouro_tokenizer_free(tok);
    }

    static const struct { const char *pre, *norm, *dec, *extra, *added, *merges, *want; ouro_status st; } bad[] = {
        { "{\"type\": \"Metaspace\"}", "null", NULL, "", "", "[]", "pre_tokenizer type Metaspace", OURO_ERR_UNSUPPORTED },
        { NULL, "{\"type\": \"NFC\"}", NULL, "", "", "[]", "normalizer type NFC", OURO_ERR_UNSUPPORTED },
        { NULL, "null", "{\"type\": \"WordPiece\"}", "", "", "[]", "decoder type WordPiece", OURO_ERR_UNSUPPORTED },
        { NULL, "null", NULL, "\"continuing_subword_prefix\": \"##\",", "", "[]", "continuing_subword_prefix",
          OURO_ERR_UNSUPPORTED },
        { NULL, "null", NULL, "\"ignore_merges\": true,", "", "[]", "ignore_merges", OURO_ERR_UNSUPPORTED },
        { NULL, "null", NULL, "", "{\"id\": 5, \"content\": \"<x>\", \"lstrip\": true}", "[]", "lstrip",
          OURO_ERR_UNSUPPORTED },
        { NULL, "null", NULL, "", "", "[\"a c\"]", "merges[0]", OURO_ERR_FORMAT },
        { NULL, "null", NULL, "", "", "[\"abc\"]", "merges[0]", OURO_ERR_FORMAT },
        { "{\"type\": \"ByteLevel\", \"add_prefix_space\": true}", "null", NULL, "", "", "[]", "add_prefix_space",
          OURO_ERR_UNSUPPORTED },
        { "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\"}, {\"type\": \"ByteLevel\"}]}",
          "null", NULL, "", "", "[]", "pre_tokenizer type Split", OURO_ERR_UNSUPPORTED },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        write_small(dir, bad[k].pre ? bad[k].pre : bl, bad[k].norm, bad[k].dec ? bad[k].dec : bl,
                    bad[k].extra, bad[k].added, bad[k].merges);
        tok = NULL;
        memset(&e, 0, sizeof e);
        ouro_status st = ouro_tokenizer_load(dir, &tok, &e);
        check(st == bad[k].st && !tok && strstr(e.message, bad[k].want) != NULL,
              "refused: %s (%s)", bad[k].want, e.message);
    }

    write_file(dir, "tokenizer.json", "{\"model\": ");
    tok = NULL;
    check(ouro_tokenizer_load(dir, &tok, &e) == OURO_ERR_FORMAT && !tok, "refused: truncated JSON");
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    unlink(path);
    check(ouro_tokenizer_load(dir, &tok, &e) == OURO_ERR_IO && !tok, "refused: no tokenizer.json (%s)", e.message);
    rmdir(dir);
}

/* ------------------------------------------------------------------------
 * Threads: one loaded tokenizer shared by several threads
 * ------------------------------------------------------------------------ */

enum { THR_N = 4, THR_REPS = 25 };

/* Texts every thread encodes, with the ids one thread got first. */
typedef struct thr_work {
    const ouro_tokenizer *tok;
    const char **text;        /* (n) NUL-terminated texts, owned by the cJSON tree */
    int32_t **ids;            /* (n) reference ids, malloc'd */
    size_t *n_ids;            /* (n) */
    size_t n;
    int mismatches;           /* set by the thread that runs this copy */
} thr_work;

static void *thr_main(void *arg)
{
    thr_work *w = arg;
    for (int rep = 0; rep < THR_REPS; rep++) {
        for (size_t i = 0; i < w->n; i++) {
            size_t k = (i + (size_t)rep * 7) % w->n;   /* threads start at different texts */
            int32_t *ids;
            size_t n;
            char *text;
            if (ouro_tokenizer_encode(w->tok, w->text[k], strlen(w->text[k]), &ids, &n, NULL) != OURO_OK) {
                w->mismatches++;
                continue;
            }
            if (n != w->n_ids[k] || (n && memcmp(ids, w->ids[k], n * sizeof *ids) != 0))
                w->mismatches++;
            if (ouro_tokenizer_decode(w->tok, ids, n, false, &text, NULL, NULL) != OURO_OK)
                w->mismatches++;
            ouro_free(text);
            ouro_free(ids);
        }
    }
    return NULL;
}

static void test_threads(const ouro_tokenizer *tok)
{
    cJSON *cases = read_json("test/data/tokenizer/cases.json");
    if (!check(cases != NULL, "threads: cases.json read")) return;
    size_t n = (size_t)cJSON_GetArraySize(cases), i = 0;
    thr_work base = { .tok = tok, .n = n };
    base.text = calloc(n, sizeof *base.text);
    base.ids = calloc(n, sizeof *base.ids);
    base.n_ids = calloc(n, sizeof *base.n_ids);
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        base.text[i] = cJSON_GetObjectItem(c, "text")->valuestring;
        ouro_tokenizer_encode(tok, base.text[i], strlen(base.text[i]), &base.ids[i], &base.n_ids[i], NULL);
        i++;
    }
    thr_work w[THR_N];
    pthread_t th[THR_N];
    int started = 0;
    for (int t = 0; t < THR_N; t++) {
        w[t] = base;
        if (pthread_create(&th[t], NULL, thr_main, &w[t]) == 0) started++;
        else break;
    }
    int bad = 0;
    for (int t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        bad += w[t].mismatches;
    }
    check(started == THR_N && bad == 0, "threads: %d threads x %d passes over the %zu cases on one "
          "tokenizer give the single-thread ids (%d differ)", started, THR_REPS, n, bad);
    for (i = 0; i < n; i++) ouro_free(base.ids[i]);
    free(base.text);
    free(base.ids);
    free(base.n_ids);
    cJSON_Delete(cases);
}

int main(void)
{
    ouro_tokenizer *tok = NULL;
    ouro_error e;
    ouro_status st = ouro_tokenizer_load(TOK_DIR, &tok, &e);
    if (!check(st == OURO_OK && tok, "load " TOK_DIR)) {
        check_note("%s", e.message);
        return check_done();
    }
    test_cases(tok);
    test_decode_cases(tok);
    test_chat_cases(tok);
    test_split(tok);
    test_merges(tok);
    test_special(tok);
    test_bytes(tok);
    test_invalid_utf8(tok);
    test_threads(tok);
    ouro_tokenizer_free(tok);
    test_chat_refusals();
    test_small_and_refusals();
    return check_done();
}

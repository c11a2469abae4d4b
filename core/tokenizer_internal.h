/*
 * tokenizer_internal.h -- the inside of ouro_tokenizer, shared by tokenizer.c
 * (tokenizer.json: load, encode, decode) and chat.c (the chat template), and
 * the internal entry points the unit tests call directly.
 *
 * Not part of the public interface: only core/ and test/unit/ include it.
 */
#ifndef OURO_TOKENIZER_INTERNAL_H
#define OURO_TOKENIZER_INTERNAL_H

#include <stdint.h>
#include "ouro.h"

/* Chat templates ouro renders; anything else is OURO_ERR_UNSUPPORTED. */
typedef enum tok_chat_kind {
    TOK_CHAT_NONE = 0,        /* no tokenizer_config.json or no chat_template in it */
    TOK_CHAT_UNKNOWN,         /* a template ouro does not recognise */
    TOK_CHAT_CHATML,          /* plain ChatML: every message as <|im_start|>role\n...<|im_end|>\n */
    TOK_CHAT_CHATML_SYSTEM    /* ChatML with a default system message when the first is not one */
} tok_chat_kind;

/* One entry of tokenizer.json's added_tokens. */
typedef struct tok_added {
    char *content;            /* UTF-8, NUL-terminated; owned by the tokenizer */
    size_t len;               /* bytes in content */
    int32_t id;
    bool special;
    bool normalized;
} tok_added;

/* Slot of the merge table: the pair (left, right) merges into new_id at rank. */
typedef struct tok_merge {
    uint32_t left, right;     /* UINT32_MAX in an empty slot */
    int32_t rank;             /* index in "merges"; lower merges first */
    int32_t new_id;
} tok_merge;

enum { TOK_DIGITS_NONE = 0, TOK_DIGITS_INDIVIDUAL, TOK_DIGITS_CONTIGUOUS };

struct ouro_tokenizer {
    int32_t n_ids;            /* ids 0..n_ids-1 (vocab and added tokens) */
    char **token;             /* (n_ids) token text as written in tokenizer.json, NULL for an
                                 id nobody uses; points into `arena` */
    uint8_t **bytes;          /* (n_ids) what the ByteLevel decoder makes of the token;
                                 points into `arena` */
    uint32_t *n_bytes;        /* (n_ids) bytes in bytes[id] */
    uint8_t *skip;            /* (n_ids) 1: a special added token (skipped by skip_special) */
    char *arena;              /* owns the strings above */

    int32_t *vocab_slot;      /* (vocab_mask+1) open-addressed: model vocab id or -1 */
    uint32_t vocab_mask;

    tok_merge *merge;         /* (merge_mask+1) open-addressed pair table */
    uint32_t merge_mask;
    int32_t n_merges;

    int32_t byte_id[256];     /* id of the one-byte token of each byte, or -1 */
    int32_t unk_id;           /* model.unk_token's id, or -1 */
    bool fuse_unk;

    tok_added *added;         /* (n_added) sorted by length, longest first */
    int n_added;
    uint8_t added_first[2][256]; /* [normalized][byte]: some added token starts with it */

    int digits;               /* TOK_DIGITS_*: the Digits pre-tokenizer before ByteLevel */
    bool use_regex;           /* ByteLevel splits with the GPT-2 pattern */

    tok_chat_kind chat_kind;
    char *chat_system;        /* TOK_CHAT_CHATML_SYSTEM: the default system message (owned) */
};

/* Callback for every pre-tokenized word: `len` bytes at `word` (raw UTF-8). */
typedef int (*tok_word_fn)(const uint8_t *word, size_t len, void *ctx);

/* Runs the pre-tokenizer (Digits, then the ByteLevel split) on valid UTF-8
 * that holds no added token, calling fn for each word in order.  Stops with
 * fn's nonzero result and returns it; 0 when every word was delivered. */
int tok_pretokenize(const ouro_tokenizer *tok, const uint8_t *s, size_t n, tok_word_fn fn,
                    void *ctx);

/* Number of bytes Rust's String::from_utf8_lossy makes of n bytes at s
 * (each maximal invalid subpart becomes U+FFFD, 3 bytes). */
size_t tok_lossy_len(const uint8_t *s, size_t n);

/* Writes the lossy conversion of n bytes at s to out (tok_lossy_len bytes);
 * returns the bytes written. */
size_t tok_lossy_copy(const uint8_t *s, size_t n, uint8_t *out);

/* Recognises a chat template text (see chat.c); *system receives a malloc'd
 * copy of the default system message for TOK_CHAT_CHATML_SYSTEM, else NULL.
 * Returns OURO_ERR_NOMEM or OURO_OK. */
ouro_status tok_chat_recognise(const char *template_text, tok_chat_kind *kind, char **system);

#endif

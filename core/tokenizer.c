/*
 * tokenizer.c -- the byte-level BPE tokenizer of tokenizer.json: load, encode,
 * decode, exactly as the Hugging Face `tokenizers` library (Rust) does with
 * add_special_tokens=false.
 *
 * What is read from dir/tokenizer.json (anything else is refused with
 * OURO_ERR_UNSUPPORTED naming the part):
 *
 *   model            {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ...]
 *                     or [["a", "b"], ...], "unk_token": null or a vocab token,
 *                     "fuse_unk", "byte_fallback": false, "dropout": null or 0,
 *                     "continuing_subword_prefix"/"end_of_word_suffix": null or "",
 *                     "ignore_merges": false}
 *                    Tokens are written in the byte-level alphabet: each byte is a
 *                    character (printable Latin-1 bytes stand for themselves, the
 *                    others for U+0100 + n), so "Ġthe" is the bytes " the".
 *                    Merge i joins two vocab tokens into a third; lower i first.
 *   added_tokens     [{"id", "content", "special", "normalized", "lstrip": false,
 *                     "rstrip": false, "single_word": false}]: strings cut out of
 *                    the text before anything else (leftmost, then longest), each
 *                    becoming its single id; "special" ones are dropped by
 *                    skip_special on decode.
 *   normalizer       null.
 *   pre_tokenizer    ByteLevel, or Sequence[Digits, ByteLevel]; Digits with
 *                    individual_digits true (each numeric character alone) or false
 *                    (each run of numeric characters); ByteLevel with add_prefix_space false
 *                    and use_regex (the GPT-2 split pattern below) true or false.
 *   post_processor   null or ByteLevel (it only moves offsets).
 *   decoder          ByteLevel.
 *   truncation, padding   null.
 *
 * Encoding, in the reference's order: cut out added tokens (first those with
 * normalized=false, then in the gaps those with normalized=true; the normalizer
 * is null so both match the raw text); split the rest with Digits; split each
 * piece with the GPT-2 pattern
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (the lookahead and the end of text are those of the piece); map each word's
 * bytes to their one-byte tokens, dropping bytes that have none (the model has
 * no unk token); apply merges lowest rank first, leftmost first on ties.
 *
 * The pattern is matched by hand, with utf8proc for the Unicode categories.
 * A hand-written matcher (rather than PCRE2) because the pattern is fixed and
 * tiny, and a direct scan is several times faster than a backtracking regex
 * engine and keeps the exact Oniguruma semantics in plain view: \p{L} is
 * Lu/Ll/Lt/Lm/Lo, \p{N} (and Rust's char::is_numeric, used by Digits) is
 * Nd/Nl/No, \s is U+0009..U+000D, U+0085 and Zs/Zl/Zp (the same set as
 * Rust's char::is_whitespace).  utf8proc is the library that supplies the
 * categories (Unicode 15 in Debian 12, as the reference's Oniguruma).
 *
 * Invalid UTF-8 in the input: the reference takes Rust strings, which cannot
 * hold it, so a caller must convert first.  ouro converts as Rust's
 * String::from_utf8_lossy (and Python's errors="replace") do: each maximal
 * invalid subpart becomes U+FFFD, which then tokenizes like any character.
 *
 * Decoding: each id's token is mapped back to bytes (a token with a character
 * outside the byte-level alphabet, such as an added token with a space, stays
 * its own UTF-8), the bytes are joined, and the result is made valid UTF-8 as
 * String::from_utf8_lossy does.
 *
 * A loaded tokenizer is immutable: encode and decode may run on many threads.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "internal.h"
#include "tokenizer_internal.h"

#define TOK_MAX_FILE   ((size_t)1 << 30)   /* tokenizer.json larger than 1 GiB is refused */
#define TOK_MAX_ID     (1 << 24)           /* ids above 16M are refused */
#define TOK_SHORT_WORD 64                  /* words up to this many symbols merge in place */

/* ------------------------------------------------------------------------
 * UTF-8: lengths, the lossy conversion, code points
 * ------------------------------------------------------------------------ */

/* Length (1..4) of the valid UTF-8 character at s[0..n), or 0 when there is
 * none; then *bad is the length (1..3) of the maximal invalid subpart there,
 * the unit that String::from_utf8_lossy replaces with one U+FFFD. */
static size_t utf8_char_len(const uint8_t *s, size_t n, size_t *bad)
{
    uint8_t c = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;   /* range of the second byte */

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c == 0xE0) { need = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) need = 3;
    else if (c == 0xED) { need = 3; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) need = 3;
    else if (c == 0xF0) { need = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 4;
    else if (c == 0xF4) { need = 4; hi = 0x8F; }
    else { *bad = 1; return 0; }

    size_t i = 1;
    for (; i < need; i++) {
        if (i >= n) break;
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
            break;
    }
    if (i == need)
        return need;
    *bad = i;
    return 0;
}

/* True when n bytes at s are valid UTF-8. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t bad, l = utf8_char_len(s + i, n - i, &bad);
        if (!l) return false;
        i += l;
    }
    return true;
}

size_t tok_lossy_len(const uint8_t *s, size_t n)
{
    size_t out = 0, i = 0;
    while (i < n) {
        if (s[i] < 0x80) { out++; i++; continue; }
        size_t bad = 0, l = utf8_char_len(s + i, n - i, &bad);
        if (l) { out += l; i += l; }
        else { out += 3; i += bad; }
    }
    return out;
}

size_t tok_lossy_copy(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        if (s[i] < 0x80) { out[o++] = s[i++]; continue; }
        size_t bad = 0, l = utf8_char_len(s + i, n - i, &bad);
        if (l) {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        } else {
            out[o++] = 0xEF; out[o++] = 0xBF; out[o++] = 0xBD;   /* U+FFFD */
            i += bad;
        }
    }
    return o;
}

/* Decodes the character at s (valid UTF-8, at least one byte); *len gets its length. */
static inline uint32_t utf8_decode(const uint8_t *s, size_t *len)
{
    uint8_t c = s[0];
    if (c < 0x80) { *len = 1; return c; }
    if (c < 0xE0) { *len = 2; return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F); }
    if (c < 0xF0) {
        *len = 3;
        return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *len = 4;
    return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* Writes cp as UTF-8 to out (4 bytes room); returns its length. */
static size_t utf8_encode(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------------
 * Character classes of the split pattern
 * ------------------------------------------------------------------------ */

enum { CL_OTHER = 0, CL_LETTER, CL_NUMBER, CL_SPACE };

/* Class of an ASCII character: letters, digits, \s (9..13, space), other. */
static const uint8_t ascii_class[128] = {
    ['\t'] = CL_SPACE, ['\n'] = CL_SPACE, ['\v'] = CL_SPACE, ['\f'] = CL_SPACE,
    ['\r'] = CL_SPACE, [' '] = CL_SPACE,
    ['0'] = CL_NUMBER, ['1'] = CL_NUMBER, ['2'] = CL_NUMBER, ['3'] = CL_NUMBER,
    ['4'] = CL_NUMBER, ['5'] = CL_NUMBER, ['6'] = CL_NUMBER, ['7'] = CL_NUMBER,
    ['8'] = CL_NUMBER, ['9'] = CL_NUMBER,
    ['A'] = CL_LETTER, ['B'] = CL_LETTER, ['C'] = CL_LETTER, ['D'] = CL_LETTER,
    ['E'] = CL_LETTER, ['F'] = CL_LETTER, ['G'] = CL_LETTER, ['H'] = CL_LETTER,
    ['I'] = CL_LETTER, ['J'] = CL_LETTER, ['K'] = CL_LETTER, ['L'] = CL_LETTER,
    ['M'] = CL_LETTER, ['N'] = CL_LETTER, ['O'] = CL_LETTER, ['P'] = CL_LETTER,
    ['Q'] = CL_LETTER, ['R'] = CL_LETTER, ['S'] = CL_LETTER, ['T'] = CL_LETTER,
    ['U'] = CL_LETTER, ['V'] = CL_LETTER, ['W'] = CL_LETTER, ['X'] = CL_LETTER,
    ['Y'] = CL_LETTER, ['Z'] = CL_LETTER,
    ['a'] = CL_LETTER, ['b'] = CL_LETTER, ['c'] = CL_LETTER, ['d'] = CL_LETTER,
    ['e'] = CL_LETTER, ['f'] = CL_LETTER, ['g'] = CL_LETTER, ['h'] = CL_LETTER,
    ['i'] = CL_LETTER, ['j'] = CL_LETTER, ['k'] = CL_LETTER, ['l'] = CL_LETTER,
    ['m'] = CL_LETTER, ['n'] = CL_LETTER, ['o'] = CL_LETTER, ['p'] = CL_LETTER,
    ['q'] = CL_LETTER, ['r'] = CL_LETTER, ['s'] = CL_LETTER, ['t'] = CL_LETTER,
    ['u'] = CL_LETTER, ['v'] = CL_LETTER, ['w'] = CL_LETTER, ['x'] = CL_LETTER,
    ['y'] = CL_LETTER, ['z'] = CL_LETTER,
};

/* Class of a code point: \p{L}, \p{N}, \s or anything else. */
static inline int cp_class(uint32_t cp)
{
    if (cp < 128)
        return ascii_class[cp];
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return CL_LETTER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return CL_NUMBER;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        return CL_SPACE;
    default:
        return cp == 0x85 ? CL_SPACE : CL_OTHER;
    }
}

/* Class of the character at s[0..) (valid UTF-8); *len gets its length. */
static inline int char_class(const uint8_t *s, size_t *len)
{
    if (s[0] < 0x80) { *len = 1; return ascii_class[s[0]]; }
    return cp_class(utf8_decode(s, len));
}

/* ------------------------------------------------------------------------
 * Pre-tokenizer: Digits, then the GPT-2 split pattern
 * ------------------------------------------------------------------------ */

/* Splits the piece s[0..n) with the GPT-2 pattern (the alternatives are tried
 * in order at each position, as the regex engine does; some alternative
 * always matches, so the words cover the piece). */
static int split_gpt2(const uint8_t *s, size_t n, tok_word_fn fn, void *ctx)
{
    size_t pos = 0;
    while (pos < n) {
        size_t start = pos, l;
        uint8_t c = s[pos];

        /* 's|'t|'re|'ve|'m|'ll|'d */
        if (c == '\'' && pos + 1 < n) {
            uint8_t d = s[pos + 1];
            size_t m = 0;
            if (d == 's' || d == 't' || d == 'm' || d == 'd')
                m = 2;
            else if (pos + 2 < n && ((d == 'r' && s[pos + 2] == 'e') || (d == 'v' && s[pos + 2] == 'e') ||
                                     (d == 'l' && s[pos + 2] == 'l')))
                m = 3;
            if (m) {
                int r = fn(s + pos, m, ctx);
                if (r) return r;
                pos += m;
                continue;
            }
        }

        int cl = char_class(s + pos, &l);
        int run = -1;                       /* class of the ` ?X+` run, if one matches */
        size_t run_from = pos;
        if (c == ' ' && pos + 1 < n) {
            size_t l2;
            int cl2 = char_class(s + pos + 1, &l2);
            if (cl2 != CL_SPACE) { run = cl2; run_from = pos + 1; }
        }
        if (run < 0 && cl != CL_SPACE) { run = cl; run_from = pos; }

        if (run >= 0) {
            /* ` ?\p{L}+` | ` ?\p{N}+` | ` ?[^\s\p{L}\p{N}]+` */
            size_t p = run_from;
            while (p < n) {
                size_t l3;
                if (char_class(s + p, &l3) != run) break;
                p += l3;
            }
            pos = p;
        } else {
            /* \s+(?!\S) | \s+ : the whitespace run, less its last character
             * when a non-space follows and the run has more than one. */
            size_t p = pos, last = pos;
            while (p < n) {
                size_t l3;
                if (char_class(s + p, &l3) != CL_SPACE) break;
                last = p;
                p += l3;
            }
            pos = (p < n && last > start) ? last : p;
        }
        int r = fn(s + start, pos - start, ctx);
        if (r) return r;
    }
    return 0;
}

/* Runs the ByteLevel split on one piece left by Digits. */
static int split_bytelevel(const ouro_tokenizer *tok, const uint8_t *s, size_t n, tok_word_fn fn,
                           void *ctx)
{
    if (n == 0) return 0;
    if (!tok->use_regex) return fn(s, n, ctx);
    return split_gpt2(s, n, fn, ctx);
}

int tok_pretokenize(const ouro_tokenizer *tok, const uint8_t *s, size_t n, tok_word_fn fn,
                    void *ctx)
{
    int r;
    if (tok->digits == TOK_DIGITS_NONE)
        return split_bytelevel(tok, s, n, fn, ctx);

    size_t piece = 0, i = 0;
    while (i < n) {
        size_t l;
        /* char::is_numeric (Nd, Nl, No) in both modes: each numeric character
         * is a piece of its own (individual), or each run of them (contiguous) */
        bool isolate = char_class(s + i, &l) == CL_NUMBER;
        if (isolate && tok->digits == TOK_DIGITS_CONTIGUOUS) {
            size_t l2;
            while (i + l < n && char_class(s + i + l, &l2) == CL_NUMBER)
                l += l2;
        }
        if (isolate) {
            if ((r = split_bytelevel(tok, s + piece, i - piece, fn, ctx))) return r;
            if ((r = split_bytelevel(tok, s + i, l, fn, ctx))) return r;
            piece = i + l;
        }
        i += l;
    }
    return split_bytelevel(tok, s + piece, n - piece, fn, ctx);
}

/* ------------------------------------------------------------------------
 * Hash tables: vocab strings and merge pairs
 * ------------------------------------------------------------------------ */

/* 64-bit FNV-1a of n bytes. */
static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static inline uint32_t hash_pair(uint32_t a, uint32_t b, uint32_t mask)
{
    uint64_t k = ((uint64_t)a << 32) | b;
    k *= 0x9E3779B97F4A7C15ULL;
    return (uint32_t)(k >> 32) & mask;
}

/* Model vocab id of the token text s[0..n), or -1. */
static int32_t vocab_find(const ouro_tokenizer *tok, const char *s, size_t n)
{
    uint32_t i = (uint32_t)hash_bytes(s, n) & tok->vocab_mask;
    for (;;) {
        int32_t id = tok->vocab_slot[i];
        if (id < 0) return -1;
        const char *t = tok->token[id];
        if (strlen(t) == n && memcmp(t, s, n) == 0) return id;
        i = (i + 1) & tok->vocab_mask;
    }
}

/* The merge of (a, b), or NULL. */
static inline const tok_merge *merge_find(const ouro_tokenizer *tok, int32_t a, int32_t b)
{
    uint32_t i = hash_pair((uint32_t)a, (uint32_t)b, tok->merge_mask);
    for (;;) {
        const tok_merge *m = &tok->merge[i];
        if (m->left == (uint32_t)a && m->right == (uint32_t)b) return m;
        if (m->left == UINT32_MAX) return NULL;
        i = (i + 1) & tok->merge_mask;
    }
}

/* ------------------------------------------------------------------------
 * BPE on one word
 * ------------------------------------------------------------------------ */

/* A growing array of ids (the output of encode). */
typedef struct idvec {
    int32_t *v;               /* (cap) malloc'd */
    size_t n, cap;
} idvec;

/* Makes room for `more` ids; 0 or -1 (out of memory). */
static int idvec_reserve(idvec *iv, size_t more)
{
    if (iv->cap - iv->n >= more) return 0;
    size_t cap = iv->cap ? iv->cap : 64;
    while (cap - iv->n < more) {
        if (cap > SIZE_MAX / 2 / sizeof(int32_t)) return -1;
        cap *= 2;
    }
    int32_t *v = realloc(iv->v, cap * sizeof *v);
    if (!v) return -1;
    iv->v = v;
    iv->cap = cap;
    return 0;
}

/* The initial symbols of a word: the one-byte token of each byte; bytes
 * without one become unk (fused when fuse_unk) or are dropped when the model
 * has no unk token.  sym has room for n; returns the count. */
static size_t word_symbols(const ouro_tokenizer *tok, const uint8_t *w, size_t n, int32_t *sym)
{
    size_t m = 0;
    bool last_unk = false;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[w[i]];
        if (id < 0) {
            if (tok->unk_id < 0) continue;
            /* each byte is one character of the byte-level text the
             * reference merges, so each is one unk unless fused */
            if (!(tok->fuse_unk && last_unk))
                sym[m++] = tok->unk_id;
            last_unk = true;
            continue;
        }
        sym[m++] = id;
        last_unk = false;
    }
    return m;
}

/* Merges m symbols in place (m <= TOK_SHORT_WORD): repeatedly the pair of
 * lowest rank, the leftmost of equals.  Returns the new count. */
static size_t merge_short(const ouro_tokenizer *tok, int32_t *sym, size_t m)
{
    int32_t rank[TOK_SHORT_WORD], nid[TOK_SHORT_WORD];   /* pair (i, i+1) */
    for (size_t i = 0; i + 1 < m; i++) {
        const tok_merge *mg = merge_find(tok, sym[i], sym[i + 1]);
        rank[i] = mg ? mg->rank : INT32_MAX;
        nid[i] = mg ? mg->new_id : -1;
    }
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == INT32_MAX) break;
        sym[best] = nid[best];
        size_t tail = m - best - 2;   /* symbols after best+1 */
        memmove(sym + best + 1, sym + best + 2, tail * sizeof *sym);
        memmove(rank + best + 1, rank + best + 2, (tail ? tail - 1 : 0) * sizeof *rank);
        memmove(nid + best + 1, nid + best + 2, (tail ? tail - 1 : 0) * sizeof *nid);
        m--;
        if (best > 0) {
            const tok_merge *mg = merge_find(tok, sym[best - 1], sym[best]);
            rank[best - 1] = mg ? mg->rank : INT32_MAX;
            nid[best - 1] = mg ? mg->new_id : -1;
        }
        if (best + 1 < m) {
            const tok_merge *mg = merge_find(tok, sym[best], sym[best + 1]);
            rank[best] = mg ? mg->rank : INT32_MAX;
            nid[best] = mg ? mg->new_id : -1;
        }
    }
    return m;
}

/* Heap entry of merge_long: the pair starting at symbol pos, with its rank. */
typedef struct heap_item { int32_t rank, pos; } heap_item;

static inline bool heap_less(heap_item a, heap_item b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(heap_item *h, size_t *n, heap_item x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
    heap_item top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

/* Merges m symbols of a long word with a priority queue (the reference's
 * algorithm: O(m log m)); the result is compacted into sym.  Returns the new
 * count, or SIZE_MAX when out of memory. */
static size_t merge_long(const ouro_tokenizer *tok, int32_t *sym, size_t m)
{
    if (m > (size_t)INT32_MAX / 4) return SIZE_MAX;
    int32_t *next = malloc(m * sizeof *next);     /* (m) following live symbol or -1 */
    int32_t *prev = malloc(m * sizeof *prev);     /* (m) preceding live symbol or -1 */
    heap_item *heap = malloc(3 * m * sizeof *heap); /* (3m) every pair ever queued */
    if (!next || !prev || !heap) {
        free(next); free(prev); free(heap);
        return SIZE_MAX;
    }
    size_t hn = 0;
    for (size_t i = 0; i < m; i++) {
        next[i] = i + 1 < m ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
        if (i + 1 < m) {
            const tok_merge *mg = merge_find(tok, sym[i], sym[i + 1]);
            if (mg) heap_push(heap, &hn, (heap_item){ mg->rank, (int32_t)i });
        }
    }
    while (hn) {
        heap_item top = heap_pop(heap, &hn);
        int32_t p = top.pos, q = next[p];
        if (sym[p] < 0 || q < 0) continue;
        const tok_merge *mg = merge_find(tok, sym[p], sym[q]);
        if (!mg || mg->rank != top.rank) continue;   /* a stale entry */
        sym[p] = mg->new_id;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (prev[p] >= 0) {
            const tok_merge *a = merge_find(tok, sym[prev[p]], sym[p]);
            if (a) heap_push(heap, &hn, (heap_item){ a->rank, prev[p] });
        }
        if (next[p] >= 0) {
            const tok_merge *b = merge_find(tok, sym[p], sym[next[p]]);
            if (b) heap_push(heap, &hn, (heap_item){ b->rank, p });
        }
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i])
        sym[k++] = sym[i];
    free(next); free(prev); free(heap);
    return k;
}

/* State of one encode call. */
typedef struct encode_ctx {
    const ouro_tokenizer *tok;
    idvec out;
    int32_t *scratch;         /* (scratch_cap) symbols of a long word; malloc'd */
    size_t scratch_cap;
} encode_ctx;

/* tok_word_fn: appends the BPE ids of one word.  -1 when out of memory. */
static int encode_word(const uint8_t *w, size_t n, void *vctx)
{
    encode_ctx *c = vctx;
    int32_t small[TOK_SHORT_WORD], *sym = small;
    if (n > TOK_SHORT_WORD) {
        if (n > c->scratch_cap) {
            if (n > SIZE_MAX / sizeof(int32_t)) return -1;
            int32_t *s = realloc(c->scratch, n * sizeof *s);
            if (!s) return -1;
            c->scratch = s;
            c->scratch_cap = n;
        }
        sym = c->scratch;
    }
    size_t m = word_symbols(c->tok, w, n, sym);
    if (m > 1)
        m = m <= TOK_SHORT_WORD ? merge_short(c->tok, sym, m) : merge_long(c->tok, sym, m);
    if (m == SIZE_MAX || idvec_reserve(&c->out, m)) return -1;
    memcpy(c->out.v + c->out.n, sym, m * sizeof *sym);
    c->out.n += m;
    return 0;
}

/* Encodes valid UTF-8 s[0..n): added tokens of pass `normalized` (0: those
 * with normalized=false, 1: the others) are cut out, the gaps go to the next
 * pass and finally to the pre-tokenizer and BPE.  -1 when out of memory. */
static int encode_added(encode_ctx *c, const uint8_t *s, size_t n, int normalized)
{
    const ouro_tokenizer *tok = c->tok;
    if (normalized > 1)
        return tok_pretokenize(tok, s, n, encode_word, c);

    const uint8_t *first = tok->added_first[normalized];
    size_t start = 0;
    for (size_t pos = 0; pos < n; pos++) {
        if (!first[s[pos]]) continue;
        /* leftmost, then longest: tokens are sorted longest first */
        for (int k = 0; k < tok->n_added; k++) {
            const tok_added *a = &tok->added[k];
            if (a->normalized != (normalized == 1) || a->len > n - pos ||
                memcmp(a->content, s + pos, a->len) != 0)
                continue;
            if (encode_added(c, s + start, pos - start, normalized + 1)) return -1;
            if (idvec_reserve(&c->out, 1)) return -1;
            c->out.v[c->out.n++] = a->id;
            pos += a->len - 1;
            start = pos + 1;
            break;
        }
    }
    return encode_added(c, s + start, n - start, normalized + 1);
}

ouro_status ouro_tokenizer_encode(const ouro_tokenizer *tok, const char *text, size_t len,
                                  int32_t **ids, size_t *n_ids, ouro_error *err)
{
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!tok || !ids || !n_ids || (!text && len))
        return ouro_err(err, OURO_ERR_ARG, "ouro_tokenizer_encode: NULL argument");
    if (len > SIZE_MAX / 4)
        return ouro_err(err, OURO_ERR_ARG, "ouro_tokenizer_encode: text too long");

    /* invalid UTF-8 becomes U+FFFD first (see the top of the file) */
    const uint8_t *s = (const uint8_t *)text;
    uint8_t *fixed = NULL;       /* malloc'd lossy copy, when needed */
    if (!utf8_valid(s, len)) {
        size_t fixed_len = tok_lossy_len(s, len);
        fixed = malloc(fixed_len ? fixed_len : 1);
        if (!fixed) return ouro_err(err, OURO_ERR_NOMEM, "out of memory encoding %zu bytes", len);
        tok_lossy_copy(s, len, fixed);
        s = fixed;
        len = fixed_len;
    }

    encode_ctx c = { .tok = tok };
    if (idvec_reserve(&c.out, len / 3 + 16) || encode_added(&c, s, len, 0)) {
        free(c.out.v);
        free(c.scratch);
        free(fixed);
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory encoding %zu bytes", len);
    }
    free(c.scratch);
    free(fixed);
    *ids = c.out.v;
    *n_ids = c.out.n;
    return OURO_OK;
}

/* ------------------------------------------------------------------------
 * Decode
 * ------------------------------------------------------------------------ */

ouro_status ouro_tokenizer_decode(const ouro_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                  bool skip_special, char **text, size_t *len, ouro_error *err)
{
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!tok || !text || (!ids && n_ids))
        return ouro_err(err, OURO_ERR_ARG, "ouro_tokenizer_decode: NULL argument");

    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_ids || !tok->token[id])
            return ouro_err(err, OURO_ERR_ARG, "token id %d at position %zu is not in the vocabulary "
                            "(size %d)", (int)id, i, (int)tok->n_ids);
        if (!(skip_special && tok->skip[id]))
            total += tok->n_bytes[id];   /* each at most 2^30: cannot wrap in practice */
        if (total > SIZE_MAX / 4)
            return ouro_err(err, OURO_ERR_ARG, "ouro_tokenizer_decode: text too long");
    }
    uint8_t *raw = malloc(total + 1);   /* the joined bytes */
    if (!raw) return ouro_err(err, OURO_ERR_NOMEM, "out of memory decoding %zu ids", n_ids);
    size_t o = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (skip_special && tok->skip[id]) continue;
        memcpy(raw + o, tok->bytes[id], tok->n_bytes[id]);
        o += tok->n_bytes[id];
    }
    raw[o] = 0;   /* o == total */
    if (!utf8_valid(raw, total)) {
        size_t fixed_len = tok_lossy_len(raw, total);
        uint8_t *fixed = malloc(fixed_len + 1);
        if (!fixed) {
            free(raw);
            return ouro_err(err, OURO_ERR_NOMEM, "out of memory decoding %zu ids", n_ids);
        }
        tok_lossy_copy(raw, total, fixed);
        free(raw);
        raw = fixed;
        total = fixed_len;
    }
    /* U+0000 becomes U+FFFD: the text goes to hosts (PostgreSQL text, C
     * strings) that cannot hold a NUL, and stays the same length in
     * characters. */
    size_t nuls = 0;
    for (size_t i = 0; i < total; i++)
        nuls += raw[i] == 0;
    if (nuls) {
        uint8_t *fixed = malloc(total + 2 * nuls + 1);
        if (!fixed) {
            free(raw);
            return ouro_err(err, OURO_ERR_NOMEM, "out of memory decoding %zu ids", n_ids);
        }
        size_t k = 0;
        for (size_t i = 0; i < total; i++) {
            if (raw[i]) {
                fixed[k++] = raw[i];
            } else {
                fixed[k++] = 0xEF; fixed[k++] = 0xBF; fixed[k++] = 0xBD;
            }
        }
        free(raw);
        raw = fixed;
        total = k;
    }
    raw[total] = '\0';
    *text = (char *)raw;
    if (len) *len = total;
    return OURO_OK;
}

/* ------------------------------------------------------------------------
 * Small queries
 * ------------------------------------------------------------------------ */

int ouro_tokenizer_vocab_size(const ouro_tokenizer *tok)
{
    return tok ? tok->n_ids : 0;
}

int32_t ouro_tokenizer_token_id(const ouro_tokenizer *tok, const char *token)
{
    if (!tok || !token) return -1;
    for (int k = 0; k < tok->n_added; k++)
        if (strcmp(tok->added[k].content, token) == 0) return tok->added[k].id;
    return vocab_find(tok, token, strlen(token));
}

bool ouro_tokenizer_is_special(const ouro_tokenizer *tok, int32_t id)
{
    return tok && id >= 0 && id < tok->n_ids && tok->skip[id];
}

void ouro_tokenizer_free(ouro_tokenizer *tok)
{
    if (!tok) return;
    free(tok->token);
    free(tok->bytes);
    free(tok->n_bytes);
    free(tok->skip);
    free(tok->arena);
    free(tok->vocab_slot);
    free(tok->merge);
    if (tok->added)
        for (int k = 0; k < tok->n_added; k++) free(tok->added[k].content);
    free(tok->added);
    free(tok->chat_system);
    free(tok);
}

/* ------------------------------------------------------------------------
 * Load: files and JSON helpers
 * ------------------------------------------------------------------------ */

/* Reads dir/name whole into *data (malloc'd, NUL-terminated).  OURO_ERR_IO
 * when it cannot be read; *missing (when not NULL) is set when it does not exist. */
static ouro_status read_whole(const char *dir, const char *name, char **data, size_t *len,
                              bool *missing, ouro_error *err)
{
    char path[4096];
    *data = NULL;
    if (missing) *missing = false;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return ouro_err(err, OURO_ERR_ARG, "%s/%s: path too long", dir, name);
    return ouro_read_file(path, "a tokenizer file (1 GiB at most)", TOK_MAX_FILE, data, len,
                          missing, err);
}

/* True when obj[key] is absent or JSON null. */
static bool json_absent(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return !v || cJSON_IsNull(v);
}

/* obj[key] as a bool: `dflt` when absent or null; -1 when it is another type. */
static int json_bool(const cJSON *obj, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (!cJSON_IsBool(v)) return -1;
    return cJSON_IsTrue(v);
}

/* The "type" string of a component object, or "?" */
static const char *json_type(const cJSON *obj)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : "?";
}

/* True when v is a number holding an integer 0 <= v < TOK_MAX_ID. */
static bool json_id(const cJSON *v, int32_t *id)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TOK_MAX_ID) || d != (double)(int32_t)d) return false;
    *id = (int32_t)d;
    return true;
}

/* ------------------------------------------------------------------------
 * Load: the components
 * ------------------------------------------------------------------------ */

/* Checks normalizer, pre_tokenizer, post_processor, decoder, truncation and
 * padding, and records the pre-tokenizer settings. */
static ouro_status parse_pipeline(ouro_tokenizer *tok, const cJSON *root, ouro_error *err)
{
    const cJSON *v;
    if (!json_absent(root, "normalizer"))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: normalizer type %s is not "
                        "supported (only null)", json_type(cJSON_GetObjectItemCaseSensitive(root, "normalizer")));
    if (!json_absent(root, "truncation"))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: truncation is not supported (only null)");
    if (!json_absent(root, "padding"))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: padding is not supported (only null)");

    /* pre_tokenizer: ByteLevel, or Sequence[Digits?, ByteLevel] */
    v = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!v || cJSON_IsNull(v))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: a null pre_tokenizer is not "
                        "supported (ByteLevel needed)");
    if (!cJSON_IsObject(v))
        return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: pre_tokenizer is not an object");
    const cJSON *parts[2] = { v, NULL };
    int n_parts = 1;
    if (strcmp(json_type(v), "Sequence") == 0) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(v, "pretokenizers");
        if (!cJSON_IsArray(seq))
            return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: pre_tokenizer Sequence has no "
                            "pretokenizers array");
        n_parts = cJSON_GetArraySize(seq);
        if (n_parts < 1 || n_parts > 2)
            return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: a pre_tokenizer Sequence of "
                            "%d parts is not supported (Digits then ByteLevel)", n_parts);
        parts[0] = cJSON_GetArrayItem(seq, 0);
        parts[1] = n_parts == 2 ? cJSON_GetArrayItem(seq, 1) : NULL;
    }
    tok->digits = TOK_DIGITS_NONE;
    if (n_parts == 2) {
        if (!cJSON_IsObject(parts[0]) || strcmp(json_type(parts[0]), "Digits") != 0)
            return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer type %s is not "
                            "supported (a Sequence may hold Digits then ByteLevel)",
                            cJSON_IsObject(parts[0]) ? json_type(parts[0]) : "?");
        int ind = json_bool(parts[0], "individual_digits", false);
        if (ind < 0)
            return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: Digits.individual_digits is not a boolean");
        tok->digits = ind ? TOK_DIGITS_INDIVIDUAL : TOK_DIGITS_CONTIGUOUS;
        parts[0] = parts[1];
    }
    const cJSON *bl = parts[0];
    if (!cJSON_IsObject(bl) || strcmp(json_type(bl), "ByteLevel") != 0)
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer type %s is not "
                        "supported (ByteLevel, or Sequence[Digits, ByteLevel])",
                        cJSON_IsObject(bl) ? json_type(bl) : "?");
    int aps = json_bool(bl, "add_prefix_space", true);
    int rx = json_bool(bl, "use_regex", true);
    if (aps < 0 || rx < 0)
        return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: ByteLevel options are not booleans");
    if (aps)
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer ByteLevel with "
                        "add_prefix_space true is not supported");
    tok->use_regex = rx;

    v = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsObject(v) && strcmp(json_type(v), "ByteLevel") == 0))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: post_processor type %s is not "
                        "supported (null or ByteLevel)", json_type(v));

    v = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (!v || cJSON_IsNull(v))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: a null decoder is not supported "
                        "(ByteLevel needed)");
    if (!cJSON_IsObject(v) || strcmp(json_type(v), "ByteLevel") != 0)
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: decoder type %s is not supported "
                        "(ByteLevel only)", json_type(v));
    return OURO_OK;
}

/* Byte-level alphabet: the character standing for each byte (GPT-2's
 * bytes_to_unicode: printable Latin-1 bytes are themselves, the other 68
 * bytes are U+0100.. in byte order). */
static void byte_alphabet(uint32_t cp_of[256])
{
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp_of[b] = printable ? b : next++;
    }
}

/* The ByteLevel decoder's bytes for a token text: each character's byte, or
 * the text's own UTF-8 when a character is outside the alphabet.  out has
 * room for strlen(s); returns the byte count. */
static uint32_t token_bytes(const char *s, const int16_t *byte_of, uint8_t *out)
{
    size_t n = strlen(s), i = 0, o = 0;
    while (i < n) {
        size_t bad, l = utf8_char_len((const uint8_t *)s + i, n - i, &bad);
        if (!l) break;
        uint32_t cp = utf8_decode((const uint8_t *)s + i, &l);
        if (cp >= 512 || byte_of[cp] < 0) break;
        out[o++] = (uint8_t)byte_of[cp];
        i += l;
    }
    if (i < n) {             /* not all in the alphabet: the raw text */
        memcpy(out, s, n);
        o = n;
    }
    return (uint32_t)o;
}

/* Compares added tokens longest first (ties by id, for a stable order). */
static int added_cmp(const void *a, const void *b)
{
    const tok_added *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Parses "model" and "added_tokens" into tok. */
static ouro_status parse_model(ouro_tokenizer *tok, const cJSON *root, ouro_error *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: no \"model\" object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "BPE") == 0))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: model type %s is not supported "
                        "(BPE only)", cJSON_IsString(type) ? type->valuestring : "?");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: BPE dropout is not supported");
    if (json_bool(model, "byte_fallback", false) != 0)
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: BPE byte_fallback is not supported");
    if (json_bool(model, "ignore_merges", false) != 0)
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: BPE ignore_merges is not supported");
    int fuse = json_bool(model, "fuse_unk", false);
    if (fuse < 0)
        return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: model.fuse_unk is not a boolean");
    tok->fuse_unk = fuse;
    static const char *const affixes[] = { "continuing_subword_prefix", "end_of_word_suffix" };
    for (int k = 0; k < 2; k++) {
        v = cJSON_GetObjectItemCaseSensitive(model, affixes[k]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && v->valuestring[0] == '\0'))
            return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: BPE %s is not supported", affixes[k]);
    }

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab))
        return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: model.vocab is not an object");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: added_tokens is not an array");

    /* sizes: ids, and the text of every token twice (its text and its bytes) */
    int32_t max_id = -1, n_vocab = 0;
    size_t text_bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id;
        if (!json_id(e, &id))
            return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: vocab entry \"%.100s\" has no valid id",
                            e->string);
        if (id > max_id) max_id = id;
        n_vocab++;
        text_bytes += strlen(e->string) + 1;
    }
    int n_added = 0;
    cJSON_ArrayForEach(e, added) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        int32_t id;
        if (!cJSON_IsString(c) || c->valuestring[0] == '\0' ||
            !json_id(cJSON_GetObjectItemCaseSensitive(e, "id"), &id))
            return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: added_tokens[%d] needs a content "
                            "string and an id", n_added);
        if (id > max_id) max_id = id;
        text_bytes += strlen(c->valuestring) + 1;
        n_added++;
    }
    if (n_vocab == 0)
        return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: model.vocab is empty");

    tok->n_ids = max_id + 1;
    size_t nid = (size_t)tok->n_ids;
    tok->token = calloc(nid, sizeof *tok->token);
    tok->bytes = calloc(nid, sizeof *tok->bytes);
    tok->n_bytes = calloc(nid, sizeof *tok->n_bytes);
    tok->skip = calloc(nid, 1);
    tok->arena = malloc(2 * text_bytes);
    uint32_t vslots = 64;
    while (vslots < 2u * (uint32_t)n_vocab) vslots *= 2;
    tok->vocab_mask = vslots - 1;
    tok->vocab_slot = malloc(vslots * sizeof *tok->vocab_slot);
    tok->added = calloc(n_added ? (size_t)n_added : 1, sizeof *tok->added);
    if (!tok->token || !tok->bytes || !tok->n_bytes || !tok->skip || !tok->arena ||
        !tok->vocab_slot || !tok->added)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory loading tokenizer.json");
    memset(tok->vocab_slot, 0xff, vslots * sizeof *tok->vocab_slot);

    /* vocab: texts, and the string table */
    char *a = tok->arena;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = (int32_t)e->valuedouble;
        size_t n = strlen(e->string);
        if (tok->token[id])
            return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: id %d is given to \"%.100s\" and "
                            "\"%.100s\"", (int)id, tok->token[id], e->string);
        if (vocab_find(tok, e->string, n) >= 0)
            return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: vocab token \"%.100s\" appears twice",
                            e->string);
        memcpy(a, e->string, n + 1);
        tok->token[id] = a;
        a += n + 1;
        uint32_t i = (uint32_t)hash_bytes(e->string, n) & tok->vocab_mask;
        while (tok->vocab_slot[i] >= 0) i = (i + 1) & tok->vocab_mask;
        tok->vocab_slot[i] = id;
    }

    /* added tokens */
    cJSON_ArrayForEach(e, added) {
        const char *content = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        static const char *const flags[] = { "lstrip", "rstrip", "single_word" };
        for (int k = 0; k < 3; k++) {
            int f = json_bool(e, flags[k], false);
            if (f != 0)
                return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: added token \"%.100s\" "
                                "with %s %s is not supported", content, flags[k], f < 0 ? "not a boolean" : "true");
        }
        int special = json_bool(e, "special", false), normalized = json_bool(e, "normalized", true);
        if (special < 0 || normalized < 0)
            return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: added token \"%.100s\" has a "
                            "non-boolean flag", content);
        size_t n = strlen(content);
        int32_t vid = vocab_find(tok, content, n);
        if (vid >= 0 && vid != id)
            return ouro_err(err, OURO_ERR_UNSUPPORTED, "tokenizer.json: added token \"%.100s\" has id "
                            "%d but the vocab gives it %d", content, (int)id, (int)vid);
        if (vid < 0) {
            if (tok->token[id])
                return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: added token \"%.100s\" reuses "
                                "id %d of \"%.100s\"", content, (int)id, tok->token[id]);
            memcpy(a, content, n + 1);
            tok->token[id] = a;
            a += n + 1;
        }
        tok_added *t = &tok->added[tok->n_added];
        if (!(t->content = malloc(n + 1)))
            return ouro_err(err, OURO_ERR_NOMEM, "out of memory loading tokenizer.json");
        tok->n_added++;
        memcpy(t->content, content, n + 1);
        t->len = n;
        t->id = id;
        t->special = special;
        t->normalized = normalized;
        if (special) tok->skip[id] = 1;
        tok->added_first[normalized][(uint8_t)content[0]] = 1;
    }
    qsort(tok->added, (size_t)tok->n_added, sizeof *tok->added, added_cmp);

    /* what the decoder makes of each token */
    uint32_t cp_of[256];
    int16_t byte_of[512];
    byte_alphabet(cp_of);
    memset(byte_of, 0xff, sizeof byte_of);
    for (int b = 0; b < 256; b++) byte_of[cp_of[b]] = (int16_t)b;
    for (int32_t id = 0; id < tok->n_ids; id++) {
        if (!tok->token[id]) continue;
        tok->bytes[id] = (uint8_t *)a;
        tok->n_bytes[id] = token_bytes(tok->token[id], byte_of, (uint8_t *)a);
        a += tok->n_bytes[id];
    }

    /* the one-byte tokens the BPE starts from */
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t l = utf8_encode(cp_of[b], u);
        tok->byte_id[b] = vocab_find(tok, (const char *)u, l);
    }
    tok->unk_id = -1;
    v = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v) || (tok->unk_id = vocab_find(tok, v->valuestring, strlen(v->valuestring))) < 0)
            return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: model.unk_token is not a vocab token");
    }
    return OURO_OK;
}

/* Parses model.merges ("a b" strings or ["a", "b"] pairs) into the pair table. */
static ouro_status parse_merges(ouro_tokenizer *tok, const cJSON *root, ouro_error *err)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "model"), "merges");
    if (merges && !cJSON_IsNull(merges) && !cJSON_IsArray(merges))
        return ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: model.merges is not an array");
    int n = merges ? cJSON_GetArraySize(merges) : 0;
    uint32_t slots = 64;
    while (slots < 2u * (uint32_t)n) slots *= 2;
    tok->merge_mask = slots - 1;
    tok->merge = malloc(slots * sizeof *tok->merge);
    char *buf = malloc(4096);   /* the joined text of a pair */
    if (!tok->merge || !buf) {
        free(buf);
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory loading tokenizer.json");
    }
    memset(tok->merge, 0xff, slots * sizeof *tok->merge);

    ouro_status st = OURO_OK;
    int rank = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        const char *l = NULL, *r = NULL;
        size_t ln = 0, rn = 0;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                l = e->valuestring; ln = (size_t)(sp - l);
                r = sp + 1; rn = strlen(r);
            }
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            l = cJSON_GetArrayItem(e, 0)->valuestring; ln = strlen(l);
            r = cJSON_GetArrayItem(e, 1)->valuestring; rn = strlen(r);
        }
        if (!l) {
            st = ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: merges[%d] is neither \"a b\" nor [a, b]", rank);
            break;
        }
        int32_t li = vocab_find(tok, l, ln), ri = vocab_find(tok, r, rn), ni = -1;
        if (ln + rn < 4096) {
            memcpy(buf, l, ln);
            memcpy(buf + ln, r, rn);
            ni = vocab_find(tok, buf, ln + rn);
        }
        if (li < 0 || ri < 0 || ni < 0) {
            st = ouro_err(err, OURO_ERR_FORMAT, "tokenizer.json: merges[%d] (\"%.60s\" \"%.60s\") uses "
                          "a token not in the vocab", rank, l, r);
            break;
        }
        /* a pair listed twice keeps its last rank, as the reference's map does */
        uint32_t i = hash_pair((uint32_t)li, (uint32_t)ri, tok->merge_mask);
        while (tok->merge[i].left != UINT32_MAX &&
               !(tok->merge[i].left == (uint32_t)li && tok->merge[i].right == (uint32_t)ri))
            i = (i + 1) & tok->merge_mask;
        tok->merge[i] = (tok_merge){ (uint32_t)li, (uint32_t)ri, rank, ni };
        rank++;
    }
    tok->n_merges = rank;
    free(buf);
    return st;
}

/* Reads dir/tokenizer_config.json's chat_template when the file exists. */
static ouro_status load_chat_template(ouro_tokenizer *tok, const char *dir, ouro_error *err)
{
    char *data;
    size_t len;
    bool missing;
    ouro_status st = read_whole(dir, "tokenizer_config.json", &data, &len, &missing, err);
    tok->chat_kind = TOK_CHAT_NONE;
    if (st != OURO_OK)
        return missing ? OURO_OK : st;
    cJSON *root = cJSON_ParseWithLength(data, len);
    free(data);
    if (!root)
        return ouro_err(err, OURO_ERR_FORMAT, "%s/tokenizer_config.json: not valid JSON", dir);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    const char *text = NULL;
    if (cJSON_IsString(t)) {
        text = t->valuestring;
    } else if (cJSON_IsArray(t)) {
        /* named templates: [{"name": "default", "template": "..."}] */
        const cJSON *e;
        cJSON_ArrayForEach(e, t) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *tt = cJSON_GetObjectItemCaseSensitive(e, "template");
            if (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0 && cJSON_IsString(tt))
                text = tt->valuestring;
        }
        if (!text) tok->chat_kind = TOK_CHAT_UNKNOWN;
    }
    if (text && tok_chat_recognise(text, &tok->chat_kind, &tok->chat_system) != OURO_OK) {
        cJSON_Delete(root);
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory loading tokenizer_config.json");
    }
    cJSON_Delete(root);
    return OURO_OK;
}

ouro_status ouro_tokenizer_load(const char *dir, ouro_tokenizer **out, ouro_error *err)
{
    if (out) *out = NULL;
    if (!dir || !out)
        return ouro_err(err, OURO_ERR_ARG, "ouro_tokenizer_load: NULL argument");
    char *data;
    size_t len;
    ouro_status st = read_whole(dir, "tokenizer.json", &data, &len, NULL, err);
    if (st != OURO_OK) return st;
    cJSON *root = cJSON_ParseWithLength(data, len);
    free(data);
    if (!root)
        return ouro_err(err, OURO_ERR_FORMAT, "%s/tokenizer.json: not valid JSON", dir);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ouro_err(err, OURO_ERR_FORMAT, "%s/tokenizer.json: not a JSON object", dir);
    }
    ouro_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        cJSON_Delete(root);
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory loading tokenizer.json");
    }
    st = parse_pipeline(tok, root, err);
    if (st == OURO_OK) st = parse_model(tok, root, err);
    if (st == OURO_OK) st = parse_merges(tok, root, err);
    cJSON_Delete(root);
    if (st == OURO_OK) st = load_chat_template(tok, dir, err);
    if (st != OURO_OK) {
        ouro_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return OURO_OK;
}

/*
 * loader.c -- loads a model folder: config.json and safetensors weights.
 *
 * A model folder is laid out as Hugging Face publishes it:
 *   config.json                      architecture (read with cJSON)
 *   model.safetensors                all weights, or
 *   model.safetensors.index.json     {"weight_map": {tensor name: shard file}}
 *   model-0000K-of-0000N.safetensors the shards it lists
 *   generation_config.json           optional, more eos ids
 *   tokenizer.json                   optional, loaded with ouro_tokenizer_load
 *
 * The safetensors format:
 *   u64 little-endian N | N bytes of JSON header | data
 *   header = {"__metadata__": {...} (optional),
 *             name: {"dtype": "BF16", "shape": [rows, cols],
 *                    "data_offsets": [begin, end]}, ...}
 *   offsets are relative to the first byte after the header; end - begin
 *   must be the tensor's size in bytes.
 *
 * Files are mapped read-only and the tensors used in place: nothing is copied
 * or converted, so every process that maps the same files shares one copy in
 * the page cache (OURO_WEIGHTS_MEMORY instead reads the weight files into a
 * private copy, see copy_file; the tensors are used in place there too).  Everything is validated before use (header length, JSON,
 * dtype, shape, offsets inside the file and not overlapping, every expected
 * tensor present, lm_head.weight absent exactly when embeddings are tied);
 * every error names the file and, where there is one, the tensor.
 *
 * A folder written by `ouro convert` has the same layout; its file's
 * __metadata__ holds "ouro.quantization": "q8" and its matrices (the
 * embeddings, lm_head and the seven matrices of each layer) are U8 tensors
 * of shape [ceil(rows / 16), ouro_q8_group_bytes(cols)] in the q8 format of
 * quant.c, 64-byte aligned.  The norms and the exit gate stay as they were.
 * With "ouro.quantization": "q4" the matrices are U8 tensors of shape
 * [ceil(rows / 16), ouro_q4_group_bytes(cols)] in the q4 format of quant4.c,
 * 64-byte aligned: the shape fixes the number of groups and of blocks per
 * row, so a matrix of the wrong row count, row length or block count, or a
 * file cut short, is refused before use.  Scale values are not read at load
 * (that would touch every page of the file): like a NaN in a bf16 file, a
 * non-finite scale makes the products of its rows NaN, never a crash.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "internal.h"

#define MAX_JSON_BYTES   (64u << 20)    /* config / index / header size limit */
#define MAX_FILES        4096

/* ------------------------------------------------------------------------
 * Files: reading small JSON files, mapping weights, stat for change checks
 * ------------------------------------------------------------------------ */

/* Joins dir and name into a malloc'd path, or NULL. */
static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void record_stat(ouro_mapped_file *f, const struct stat *st)
{
    f->size = (size_t)st->st_size;
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Reads a whole JSON file and parses it; *out is freed with cJSON_Delete. */
static ouro_status read_json(const char *path, const char *name, cJSON **out, ouro_error *err)
{
    *out = NULL;
    char *buf;
    size_t n;
    ouro_status st = ouro_read_file(path, name, MAX_JSON_BYTES, &buf, &n, NULL, err);
    if (st != OURO_OK)
        return st;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!j)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: invalid JSON", path);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ouro_err(err, OURO_ERR_FORMAT, "%s: the top level is not a JSON object", path);
    }
    *out = j;
    return OURO_OK;
}

/* Reads the open file fd (f->size bytes, from fstat) into a private copy in
 * anonymous memory (OURO_WEIGHTS_MEMORY): 2 MB aligned and asked for 2 MB
 * pages before the first byte is written (the first faults decide the page
 * size), then made read-only like a mapping.  The file is read with pread,
 * so a file that shrinks meanwhile is an error, not a SIGBUS. */
#define COPY_ALIGN ((size_t)2 << 20)
static ouro_status copy_file(ouro_mapped_file *f, int fd, ouro_error *err)
{
    size_t len;
    if (!ouro_add_ok(f->size, COPY_ALIGN - 1, &len))
        return ouro_err(err, OURO_ERR_NOMEM, "%s: too large to copy into memory", f->path);
    len &= ~(COPY_ALIGN - 1);
    /* COPY_ALIGN more, so that an aligned start fits; the rest is unmapped */
    size_t all = len + COPY_ALIGN;
    char *raw = mmap(NULL, all, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return ouro_err(err, OURO_ERR_NOMEM, "%s: cannot allocate %zu bytes to hold the weights "
                        "in memory (weights = memory): %s", f->path, f->size, strerror(errno));
    char *p = (char *)(((uintptr_t)raw + COPY_ALIGN - 1) & ~(uintptr_t)(COPY_ALIGN - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    if (p + len < raw + all)
        munmap(p + len, (size_t)(raw + all - (p + len)));
    (void)madvise(p, len, MADV_HUGEPAGE);   /* failure: 4 KB pages */
    f->map = p;
    f->map_len = len;
    size_t done = 0;
    while (done < f->size) {
        size_t want = f->size - done < ((size_t)1 << 30) ? f->size - done : (size_t)1 << 30;
        ssize_t r = pread(fd, p + done, want, (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return ouro_err(err, OURO_ERR_IO, "%s: read failed: %s", f->path, strerror(errno));
        if (r == 0)
            return ouro_err(err, OURO_ERR_IO, "%s: the file ended at %zu of %zu bytes while it "
                            "was read (changed while loading)", f->path, done, f->size);
        done += (size_t)r;
    }
    if (mprotect(p, len, PROT_READ) != 0)
        return ouro_err(err, OURO_ERR_IO, "%s: mprotect failed: %s", f->path, strerror(errno));
    return OURO_OK;
}

/* Appends a file record to the model (map = NULL: stat only). */
static ouro_status add_file(ouro_model *m, const char *path, bool map, ouro_mapped_file **out,
                            ouro_error *err)
{
    if (m->n_files >= MAX_FILES)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: too many files", path);
    ouro_mapped_file *nf = realloc(m->files, (size_t)(m->n_files + 1) * sizeof *nf);
    if (!nf)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    m->files = nf;
    ouro_mapped_file *f = &m->files[m->n_files];
    memset(f, 0, sizeof *f);
    f->guard = -1;
    f->path = strdup(path);
    if (!f->path)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    m->n_files++;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ouro_err(err, OURO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ouro_err(err, OURO_ERR_IO, "%s: not a regular file", path);
    }
    record_stat(f, &st);
    if (map && m->weights == OURO_WEIGHTS_MEMORY) {
        if (f->size == 0) {
            close(fd);
            return ouro_err(err, OURO_ERR_FORMAT, "%s: empty file", path);
        }
        ouro_status cs = copy_file(f, fd, err);
        close(fd);
        if (cs != OURO_OK)
            return cs;
        m->mapped_bytes += f->size;
        if (out)
            *out = f;
        return OURO_OK;
    }
    if (map) {
        if (f->size == 0) {
            close(fd);
            return ouro_err(err, OURO_ERR_FORMAT, "%s: empty file", path);
        }
        void *p = mmap(NULL, f->size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return ouro_err(err, OURO_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        /* 2 MB pages where the kernel gives them (see ouro_model_huge_bytes): asked for
         * before anything touches the mapping, as the first faults decide the page size;
         * a kernel or filesystem without them keeps 4 KB pages, so failure is ignored */
        (void)madvise(p, f->size, MADV_HUGEPAGE);
        f->map = p;
        f->map_len = f->size;
        f->guard = ouro_guard_register(p, f->size);
        m->mapped_bytes += f->size;
    }
    close(fd);
    if (out)
        *out = f;
    return OURO_OK;
}

/* Records a file for change checks when it exists. */
static ouro_status add_optional_file(ouro_model *m, const char *dir, const char *name, ouro_error *err)
{
    char *p = path_join(dir, name);
    if (!p)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    ouro_status st = OURO_OK;
    if (file_exists(p))
        st = add_file(m, p, false, NULL, err);
    free(p);
    return st;
}

/* ------------------------------------------------------------------------
 * config.json
 * ------------------------------------------------------------------------ */

/* Reads integer field `key`: absent/null -> def (or an error when required). */
static ouro_status cfg_int(const cJSON *j, const char *path, const char *key, bool required,
                           int def, int lo, int hi, int *out, ouro_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return ouro_err(err, OURO_ERR_FORMAT, "%s: missing field \"%s\"", path, key);
        *out = def;
        return OURO_OK;
    }
    double d = cJSON_GetNumberValue(v);
    if (!cJSON_IsNumber(v) || d != floor(d) || d < lo || d > hi)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: \"%s\" must be an integer in %d..%d",
                        path, key, lo, hi);
    *out = (int)d;
    return OURO_OK;
}

static ouro_status cfg_num(const cJSON *j, const char *path, const char *key, double def,
                           double lo, double hi, double *out, ouro_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return OURO_OK;
    }
    double d = cJSON_GetNumberValue(v);
    if (!cJSON_IsNumber(v) || !isfinite(d) || d < lo || d > hi)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: \"%s\" must be a number in %g..%g",
                        path, key, lo, hi);
    *out = d;
    return OURO_OK;
}

/* Adds eos id(s) from an int or an array of ints to cfg (deduplicated; ids
 * outside the vocabulary are skipped).  False when the ids do not fit in
 * eos_ids (OURO_MAX_EOS): the caller reports it rather than drop any. */
static bool add_eos(ouro_config *cfg, const cJSON *v)
{
    if (!v)
        return true;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d != floor(d) || d < 0 || d >= cfg->vocab_size)
            return true;
        for (int i = 0; i < cfg->n_eos; i++)
            if (cfg->eos_ids[i] == (int32_t)d)
                return true;
        if (cfg->n_eos >= OURO_MAX_EOS)
            return false;
        cfg->eos_ids[cfg->n_eos++] = (int32_t)d;
    } else if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
            if (cJSON_IsNumber(e) && !add_eos(cfg, e))
                return false;
    }
    return true;
}

static ouro_status parse_config(ouro_model *m, const char *path, const cJSON *j, ouro_error *err)
{
    ouro_config *c = &m->cfg;
    ouro_status st;
#define INT(key, req, def, lo, hi, dst) \
    if ((st = cfg_int(j, path, key, req, def, lo, hi, dst, err)) != OURO_OK) return st
    INT("hidden_size", true, 0, 1, 1 << 16, &c->hidden_size);
    INT("intermediate_size", true, 0, 1, 1 << 20, &c->intermediate_size);
    INT("num_hidden_layers", true, 0, 1, 1024, &c->num_layers);
    INT("num_attention_heads", true, 0, 1, 1024, &c->num_heads);
    INT("vocab_size", true, 0, 1, 1 << 24, &c->vocab_size);
    INT("num_key_value_heads", false, c->num_heads, 1, 1024, &c->num_kv_heads);
    INT("head_dim", false, c->hidden_size / c->num_heads, 1, 1024, &c->head_dim);
    INT("total_ut_steps", false, 4, 1, OURO_MAX_LOOPS, &c->total_ut_steps);
    INT("max_position_embeddings", false, 32768, 1, INT_MAX, &c->max_position_embeddings);
    INT("bos_token_id", false, -1, 0, INT_MAX, &c->bos_token_id);
    INT("pad_token_id", false, -1, 0, INT_MAX, &c->pad_token_id);
#undef INT
    double eps, theta, thr;
    if ((st = cfg_num(j, path, "rms_norm_eps", 1e-6, 1e-30, 1.0, &eps, err)) != OURO_OK)
        return st;
    if ((st = cfg_num(j, path, "rope_theta", 10000.0, 1e-6, 1e30, &theta, err)) != OURO_OK)
        return st;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "early_exit_threshold");
    m->exit_threshold_null = !v || cJSON_IsNull(v);
    if ((st = cfg_num(j, path, "early_exit_threshold", 1.0, 0.0, 1.0, &thr, err)) != OURO_OK)
        return st;
    c->rms_norm_eps = (float)eps;
    c->rope_theta = theta;
    c->early_exit_threshold = (float)thr;

    if (c->hidden_size % c->num_heads != 0 && !cJSON_GetObjectItemCaseSensitive(j, "head_dim"))
        return ouro_err(err, OURO_ERR_FORMAT, "%s: hidden_size %d is not a multiple of "
                        "num_attention_heads %d", path, c->hidden_size, c->num_heads);
    if (c->head_dim % 2 != 0 || c->head_dim < 2)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: head_dim %d must be even", path, c->head_dim);
    if (c->num_heads % c->num_kv_heads != 0)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple of "
                        "num_key_value_heads %d", path, c->num_heads, c->num_kv_heads);

    v = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    if (v && !cJSON_IsNull(v) && !cJSON_IsBool(v))
        return ouro_err(err, OURO_ERR_FORMAT, "%s: \"tie_word_embeddings\" must be true or false", path);
    c->tie_word_embeddings = v && cJSON_IsTrue(v);

    /* What ouro does not run is an error, never a guess. */
    v = cJSON_GetObjectItemCaseSensitive(j, "hidden_act");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && strcmp(v->valuestring, "silu") == 0))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported "
                        "(ouro runs \"silu\")", path, cJSON_IsString(v) ? v->valuestring : "?");
    v = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (v && !cJSON_IsNull(v))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: rope_scaling is set; ouro supports only "
                        "plain RoPE (rope_scaling null)", path);
    v = cJSON_GetObjectItemCaseSensitive(j, "use_sliding_window");
    if (v && cJSON_IsTrue(v))
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: use_sliding_window is true; ouro supports "
                        "only full attention", path);
    v = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    if (v && cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
            if (!cJSON_IsString(e) || strcmp(e->valuestring, "full_attention") != 0)
                return ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: layer type \"%s\" is not supported "
                                "(ouro supports only \"full_attention\")", path,
                                cJSON_IsString(e) ? e->valuestring : "?");
    }

    v = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
    if (!add_eos(c, v))    /* keeps only ids inside the vocabulary */
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: more than %d distinct eos_token_id values",
                        path, OURO_MAX_EOS);
    c->eos_token_id = c->n_eos > 0 ? c->eos_ids[0] : -1;
    return OURO_OK;
}

/* ------------------------------------------------------------------------
 * safetensors headers
 * ------------------------------------------------------------------------ */

typedef struct st_file {
    const char *path;        /* = the mapped file's path, not owned */
    const char *name;        /* file name within the folder, not owned */
    cJSON *header;           /* parsed header, owned */
    const uint8_t *data;     /* first byte after the header */
    size_t data_size;
    bool q8;                 /* __metadata__ "ouro.quantization" is "q8" or "q4" */
    ouro_dtype qdt;          /* then OURO_Q8 or OURO_Q4: the dtype of its U8 matrices */
} st_file;

typedef struct st_range {
    size_t begin, end;
    const char *name;
} st_range;

static int range_cmp(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Bytes per element of a safetensors dtype string, 0 when unknown. */
static size_t st_dtype_size(const char *s)
{
    static const struct { const char *name; size_t size; } t[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
        {"I8", 1}, {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1},
        {"F8_E4M3", 1}, {"F8_E5M2", 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(s, t[i].name) == 0)
            return t[i].size;
    return 0;
}

/* A non-negative integer below 2^53 held by a JSON number. */
static bool json_size(const cJSON *v, size_t *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= 0) || d != floor(d) || d > 9007199254740992.0)
        return false;
    *out = (size_t)d;
    return true;
}

/* Parses and validates the header of one mapped safetensors file. */
static ouro_status st_open(const ouro_mapped_file *f, const char *name, st_file *out, ouro_error *err)
{
    memset(out, 0, sizeof *out);
    out->path = f->path;
    out->name = name;
    if (f->size < 8)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: truncated (%zu bytes, no header)", f->path, f->size);
    uint64_t n = 0;
    const uint8_t *p = f->map;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | p[i];
    if (n == 0 || n > f->size - 8 || n > MAX_JSON_BYTES)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: not a safetensors file (its first 8 bytes "
                        "are not a header length that fits its %zu bytes)", f->path, f->size);
    cJSON *h = cJSON_ParseWithLength((const char *)p + 8, (size_t)n);
    if (!h || !cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return ouro_err(err, OURO_ERR_FORMAT, "%s: header is not a valid JSON object", f->path);
    }
    out->header = h;
    out->data = p + 8 + n;
    out->data_size = f->size - 8 - (size_t)n;

    int count = cJSON_GetArraySize(h);
    st_range *r = malloc((size_t)(count > 0 ? count : 1) * sizeof *r);
    if (!r)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    int nr = 0;
    ouro_status st = OURO_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, h) {
        const char *tn = e->string;
        if (strcmp(tn, "__metadata__") == 0) {
            const cJSON *qv = cJSON_GetObjectItemCaseSensitive(e, "ouro.quantization");
            if (qv && !(cJSON_IsString(qv) && (strcmp(qv->valuestring, "q8") == 0
                                                || strcmp(qv->valuestring, "q4") == 0))) {
                st = ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: __metadata__ names quantization "
                              "\"%s\"; ouro reads \"q8\" and \"q4\"", f->path,
                              cJSON_IsString(qv) ? qv->valuestring : "(not a string)");
                break;
            }
            out->q8 = qv != NULL;
            out->qdt = qv && strcmp(qv->valuestring, "q4") == 0 ? OURO_Q4 : OURO_Q8;
            continue;
        }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off)
            || cJSON_GetArraySize(off) != 2) {
            st = ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s: malformed header entry", f->path, tn);
            break;
        }
        size_t esize = st_dtype_size(dt->valuestring);
        if (!esize) {
            st = ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s: unknown dtype \"%s\"",
                          f->path, tn, dt->valuestring);
            break;
        }
        size_t numel = 1, dim;
        const cJSON *d;
        bool ok = cJSON_GetArraySize(sh) <= 8;
        cJSON_ArrayForEach(d, sh)
            ok = ok && json_size(d, &dim) && ouro_mul_ok(numel, dim, &numel);
        size_t nbytes, b, en;
        ok = ok && ouro_mul_ok(numel, esize, &nbytes);
        if (!ok) {
            st = ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s: invalid shape", f->path, tn);
            break;
        }
        if (!json_size(cJSON_GetArrayItem(off, 0), &b) || !json_size(cJSON_GetArrayItem(off, 1), &en)
            || b > en || en > out->data_size) {
            st = ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s: data offsets outside the file "
                          "(%zu data bytes)", f->path, tn, out->data_size);
            break;
        }
        if (en - b != nbytes) {
            st = ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s: data offsets span %zu bytes, "
                          "its shape and dtype need %zu", f->path, tn, en - b, nbytes);
            break;
        }
        r[nr].begin = b;
        r[nr].end = en;
        r[nr].name = tn;
        nr++;
    }
    if (st == OURO_OK) {
        qsort(r, (size_t)nr, sizeof *r, range_cmp);
        for (int i = 1; i < nr; i++)
            if (r[i].begin < r[i - 1].end) {
                st = ouro_err(err, OURO_ERR_FORMAT, "%s: tensors %s and %s overlap",
                              f->path, r[i - 1].name, r[i].name);
                break;
            }
    }
    free(r);
    return st;
}

/* ------------------------------------------------------------------------
 * Expected tensors
 * ------------------------------------------------------------------------ */

typedef struct loader {
    ouro_model *m;
    st_file *sf;             /* (n_sf) */
    int n_sf;
    const cJSON *weight_map; /* sharded: name -> file name; NULL for one file */
    const char *index_path;
} loader;

const char *const ouro_layer_tensor_names[OURO_LAYER_TENSORS] = {
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
    "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
    "mlp.down_proj.weight", "input_layernorm.weight", "input_layernorm_2.weight",
    "post_attention_layernorm.weight", "post_attention_layernorm_2.weight",
};

/* True for a tensor name the architecture uses (or may carry harmlessly). */
static bool expected_name(const ouro_model *m, const char *name)
{
    static const char *const top[] = {
        "model.embed_tokens.weight", "model.norm.weight", "model.early_exit_gate.weight",
        "model.early_exit_gate.bias",
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (strcmp(name, top[i]) == 0)
            return true;
    if (strcmp(name, "lm_head.weight") == 0)
        return !m->cfg.tie_word_embeddings;
    size_t len = strlen(name), suf = strlen("rotary_emb.inv_freq");
    if (len > suf && strcmp(name + len - suf, "rotary_emb.inv_freq") == 0)
        return true;   /* a buffer some exports save; recomputed from the config */
    if (strncmp(name, "model.layers.", 13) != 0)
        return false;
    /* a plain decimal layer number: no sign, space or leading zero */
    if (!isdigit((unsigned char)name[13]) || (name[13] == '0' && isdigit((unsigned char)name[14])))
        return false;
    char *end;
    long l = strtol(name + 13, &end, 10);
    if (end == name + 13 || *end != '.' || l < 0 || l >= m->cfg.num_layers)
        return false;
    for (size_t i = 0; i < OURO_LAYER_TENSORS; i++)
        if (strcmp(end + 1, ouro_layer_tensor_names[i]) == 0)
            return true;
    return false;
}

/* Finds tensor `name` with shape (rows, cols) (cols = 0: a vector of rows);
 * a matrix that may be quantized (mat) is accepted as U8 in a q8 or q4 file. */
static ouro_status get_tensor(loader *ld, const char *name, int64_t rows, int64_t cols, bool mat,
                              ouro_tensor *t, ouro_error *err)
{
    const st_file *f = &ld->sf[0];
    if (ld->weight_map) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(ld->weight_map, name);
        if (!cJSON_IsString(fn))
            return ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s is missing from the weight map",
                            ld->index_path, name);
        f = NULL;
        for (int i = 0; i < ld->n_sf; i++)
            if (strcmp(ld->sf[i].name, fn->valuestring) == 0)
                f = &ld->sf[i];
        if (!f)
            return ouro_err(err, OURO_ERR_INTERNAL, "%s: shard %s of tensor %s was not opened",
                            ld->index_path, fn->valuestring, name);
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->header, name);
    if (!e)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s is missing", f->path, name);
    const char *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring;
    int64_t want0 = rows, want1 = cols;
    if (strcmp(dt, "U8") == 0 && mat && f->q8) {
        t->dtype = f->qdt;
        want0 = (rows + 15) / 16;
        want1 = (int64_t)(f->qdt == OURO_Q4 ? ouro_q4_group_bytes(cols) : ouro_q8_group_bytes(cols));
    } else if (strcmp(dt, "U8") == 0 && f->q8) {
        return ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s is U8, but only matrices are %s",
                        f->path, name, f->qdt == OURO_Q4 ? "q4" : "q8");
    } else if (strcmp(dt, "F32") == 0)
        t->dtype = OURO_F32;
    else if (strcmp(dt, "F16") == 0)
        t->dtype = OURO_F16;
    else if (strcmp(dt, "BF16") == 0)
        t->dtype = OURO_BF16;
    else
        return ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s; ouro runs F32, "
                        "F16 and BF16 weights, and q8 and q4 files written by ouro convert", f->path, name, dt);
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    int nd = cJSON_GetArraySize(sh);
    int64_t s0 = nd > 0 ? (int64_t)cJSON_GetArrayItem(sh, 0)->valuedouble : -1;
    int64_t s1 = nd > 1 ? (int64_t)cJSON_GetArrayItem(sh, 1)->valuedouble : -1;
    bool ok = cols ? (nd == 2 && s0 == want0 && s1 == want1) : (nd == 1 && s0 == rows);
    if (!ok) {
        char got[64], want[64];
        if (nd == 1)
            snprintf(got, sizeof got, "[%lld]", (long long)s0);
        else if (nd == 2)
            snprintf(got, sizeof got, "[%lld, %lld]", (long long)s0, (long long)s1);
        else
            snprintf(got, sizeof got, "%d dimensions", nd);
        if (cols)
            snprintf(want, sizeof want, "[%lld, %lld]%s", (long long)want0, (long long)want1,
                     t->dtype == OURO_Q8 ? " (q8)" : t->dtype == OURO_Q4 ? " (q4)" : "");
        else
            snprintf(want, sizeof want, "[%lld]", (long long)rows);
        return ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s has shape %s, expected %s",
                        f->path, name, got, want);
    }
    size_t b = (size_t)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "data_offsets"), 0)->valuedouble;
    const uint8_t *p = f->data + b;
    if ((uintptr_t)p % ouro_dtype_size(t->dtype) != 0)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s is not aligned to its element size",
                        f->path, name);
    if ((t->dtype == OURO_Q8 || t->dtype == OURO_Q4) && (uintptr_t)p % 64 != 0)
        return ouro_err(err, OURO_ERR_FORMAT, "%s: %s tensor %s is not aligned to 64 bytes",
                        f->path, t->dtype == OURO_Q4 ? "q4" : "q8", name);
    t->data = p;
    t->shape[0] = rows;
    t->shape[1] = cols ? cols : 1;
    ld->m->n_params += (size_t)rows * (size_t)(cols ? cols : 1);
    return OURO_OK;
}

static ouro_status load_tensors(loader *ld, ouro_error *err)
{
    ouro_model *m = ld->m;
    const ouro_config *c = &m->cfg;
    int64_t D = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t QD = (int64_t)c->num_heads * c->head_dim, KD = (int64_t)c->num_kv_heads * c->head_dim;
    ouro_status st;

    /* Every tensor in the files must be one the architecture has. */
    for (int i = 0; i < ld->n_sf; i++) {
        const cJSON *e;
        cJSON_ArrayForEach(e, ld->sf[i].header) {
            if (strcmp(e->string, "__metadata__") == 0 || expected_name(m, e->string))
                continue;
            if (strcmp(e->string, "lm_head.weight") == 0)
                return ouro_err(err, OURO_ERR_FORMAT, "%s: tensor lm_head.weight is present but "
                                "tie_word_embeddings is true", ld->sf[i].path);
            return ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: tensor %s is not part of the Ouro "
                            "architecture ouro runs", ld->sf[i].path, e->string);
        }
    }
    if ((st = get_tensor(ld, "model.embed_tokens.weight", V, D, true, &m->embed, err)) != OURO_OK ||
        (st = get_tensor(ld, "model.norm.weight", D, 0, false, &m->norm, err)) != OURO_OK ||
        (st = get_tensor(ld, "model.early_exit_gate.weight", 1, D, false, &m->gate_w, err)) != OURO_OK ||
        (st = get_tensor(ld, "model.early_exit_gate.bias", 1, 0, false, &m->gate_b, err)) != OURO_OK)
        return st;
    if (c->tie_word_embeddings) {
        m->lm_head = m->embed;
    } else if ((st = get_tensor(ld, "lm_head.weight", V, D, true, &m->lm_head, err)) != OURO_OK) {
        return st;
    }
    m->layers = calloc((size_t)c->num_layers, sizeof *m->layers);
    if (!m->layers)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->num_layers; l++) {
        ouro_layer *L = &m->layers[l];
        struct { ouro_tensor *t; int64_t r, c; } want[] = {
            {&L->wq, QD, D}, {&L->wk, KD, D}, {&L->wv, KD, D}, {&L->wo, D, QD},
            {&L->w_gate, I, D}, {&L->w_up, I, D}, {&L->w_down, D, I},
            {&L->ln_in, D, 0}, {&L->ln_in2, D, 0}, {&L->ln_post, D, 0}, {&L->ln_post2, D, 0},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, ouro_layer_tensor_names[i]);
            if ((st = get_tensor(ld, name, want[i].r, want[i].c, want[i].c != 0, want[i].t, err)) != OURO_OK)
                return st;
        }
    }
    m->cfg.dtype = m->embed.dtype;
    m->quantized = false;
    for (int i = 0; i < ld->n_sf; i++)
        m->quantized = m->quantized || ld->sf[i].q8;
    return OURO_OK;
}

/* Maps and validates the weight files: one file, or the shards of the index. */
static ouro_status load_weights(loader *ld, const char *dir, cJSON **index, ouro_error *err)
{
    ouro_model *m = ld->m;
    ouro_status st;
    char *single = path_join(dir, "model.safetensors");
    char *idx = path_join(dir, "model.safetensors.index.json");
    if (!single || !idx) {
        free(single);
        free(idx);
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    }
    int n_names = 0;
    const char **names = NULL;   /* (n_names) shard file names, pointing into *index */
    if (file_exists(single)) {
        n_names = 1;
        names = malloc(sizeof *names);
        if (!names) {
            st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
            goto done;
        }
        names[0] = "model.safetensors";
    } else if (file_exists(idx)) {
        if ((st = read_json(idx, "a weight index", index, err)) != OURO_OK)
            goto done;
        if ((st = add_file(m, idx, false, NULL, err)) != OURO_OK)
            goto done;
        ld->index_path = m->files[m->n_files - 1].path;
        ld->weight_map = cJSON_GetObjectItemCaseSensitive(*index, "weight_map");
        if (!cJSON_IsObject(ld->weight_map)) {
            st = ouro_err(err, OURO_ERR_FORMAT, "%s: no \"weight_map\" object", idx);
            goto done;
        }
        int cap = cJSON_GetArraySize(ld->weight_map);
        names = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *names);
        if (!names) {
            st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
            goto done;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, ld->weight_map) {
            if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/')
                || e->valuestring[0] == '.') {
                st = ouro_err(err, OURO_ERR_FORMAT, "%s: tensor %s: invalid shard file name",
                              idx, e->string);
                goto done;
            }
            int k = 0;
            while (k < n_names && strcmp(names[k], e->valuestring) != 0)
                k++;
            if (k == n_names)
                names[n_names++] = e->valuestring;
        }
        if (n_names == 0) {
            st = ouro_err(err, OURO_ERR_FORMAT, "%s: the weight map is empty", idx);
            goto done;
        }
    } else {
        st = ouro_err(err, OURO_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json",
                      dir);
        goto done;
    }

    ld->sf = calloc((size_t)n_names, sizeof *ld->sf);
    if (!ld->sf) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_names; i++) {
        char *p = path_join(dir, names[i]);
        if (!p) {
            st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
            goto done;
        }
        ouro_mapped_file *f;
        if (ld->weight_map && !file_exists(p)) {
            const char *tn = "?";
            const cJSON *e;
            cJSON_ArrayForEach(e, ld->weight_map)
                if (strcmp(e->valuestring, names[i]) == 0) {
                    tn = e->string;
                    break;
                }
            st = ouro_err(err, OURO_ERR_IO, "%s: missing shard (listed by %s for tensor %s)",
                          p, idx, tn);
            free(p);
            goto done;
        }
        st = add_file(m, p, true, &f, err);
        free(p);
        if (st != OURO_OK)
            goto done;
        st = st_open(f, names[i], &ld->sf[i], err);
        ld->n_sf = i + 1;
        if (st != OURO_OK)
            goto done;
    }
    st = load_tensors(ld, err);
done:
    /* names point into *index or are literals; the sf names are kept by st_file
     * only for lookups during the load, which ends before *index is freed. */
    free(names);
    free(single);
    free(idx);
    return st;
}

/* ------------------------------------------------------------------------
 * Model
 * ------------------------------------------------------------------------ */

void ouro_model_free(ouro_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_files; i++) {
        if (m->files[i].map) {
            ouro_guard_unregister(m->files[i].guard);
            munmap(m->files[i].map, m->files[i].map_len);
        }
        free(m->files[i].path);
    }
    free(m->files);
    if (m->tok)
        ouro_tokenizer_free(m->tok);
    free(m->layers);
    free(m->inv_freq);
    free(m->path);
    free(m);
}

ouro_weights ouro_model_weights(const ouro_model *m)
{
    return m->weights;
}

static const char *weights_name(ouro_weights w)   /* as the info JSON names it */
{
    return w == OURO_WEIGHTS_MEMORY ? "memory" : "map";
}

ouro_status ouro_model_load(const char *dir, ouro_model **out, ouro_error *err)
{
    return ouro_model_load_opts(dir, NULL, out, err);
}

ouro_status ouro_model_load_opts(const char *dir, const ouro_load_options *opts, ouro_model **out,
                                 ouro_error *err)
{
    if (out)
        *out = NULL;
    if (!dir || !out)
        return ouro_err(err, OURO_ERR_ARG, "ouro_model_load: NULL argument");
    ouro_weights w = opts ? opts->weights : OURO_WEIGHTS_MAP;
    if (w != OURO_WEIGHTS_MAP && w != OURO_WEIGHTS_MEMORY)
        return ouro_err(err, OURO_ERR_ARG, "ouro_model_load: weights must be map or memory (%d)",
                        (int)w);
    ouro_model *m = calloc(1, sizeof *m);
    if (!m)
        return ouro_err(err, OURO_ERR_NOMEM, "out of memory");
    m->weights = w;
    ouro_status st;
    cJSON *cfg = NULL, *index = NULL, *gen = NULL;
    char *p = NULL;
    loader ld = { .m = m };

    m->path = realpath(dir, NULL);
    if (!m->path) {
        st = ouro_err(err, OURO_ERR_IO, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    /* config.json */
    if (!(p = path_join(m->path, "config.json"))) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = read_json(p, "a config", &cfg, err)) != OURO_OK ||
        (st = add_file(m, p, false, NULL, err)) != OURO_OK ||
        (st = parse_config(m, p, cfg, err)) != OURO_OK)
        goto fail;
    free(p);
    p = NULL;

    /* weights */
    if ((st = load_weights(&ld, m->path, &index, err)) != OURO_OK)
        goto fail;

    m->inv_freq = malloc((size_t)(m->cfg.head_dim / 2) * sizeof(float));
    if (!m->inv_freq) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    ouro_rope_inv_freq(m->inv_freq, m->cfg.head_dim, m->cfg.rope_theta);

    /* generation_config.json: more eos ids */
    if (!(p = path_join(m->path, "generation_config.json"))) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (file_exists(p)) {
        if ((st = read_json(p, "a generation config", &gen, err)) != OURO_OK ||
            (st = add_file(m, p, false, NULL, err)) != OURO_OK)
            goto fail;
        if (!add_eos(&m->cfg, cJSON_GetObjectItemCaseSensitive(gen, "eos_token_id"))) {
            st = ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: more than %d distinct eos_token_id values "
                          "(with config.json's)", p, OURO_MAX_EOS);
            goto fail;
        }
    }
    free(p);
    p = NULL;

    /* tokenizer */
    if (!(p = path_join(m->path, "tokenizer.json"))) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (file_exists(p)) {
        ouro_error terr = {0};
        ouro_status ts = ouro_tokenizer_load(m->path, &m->tok, &terr);
        if (ts == OURO_ERR_UNSUPPORTED) {
            m->tok = NULL;
            ouro_log(OURO_LOG_INFO, "%s: tokenizer not loaded: %s", m->path, terr.message);
        } else if (ts != OURO_OK) {
            m->tok = NULL;
            st = ouro_err(err, ts, "%s", terr.message);
            goto fail;
        } else {
            if ((st = add_file(m, p, false, NULL, err)) != OURO_OK ||
                (st = add_optional_file(m, m->path, "tokenizer_config.json", err)) != OURO_OK)
                goto fail;
            int32_t id = ouro_tokenizer_token_id(m->tok, "<|im_end|>");
            if (id >= 0 && id < m->cfg.vocab_size) {
                cJSON *n = cJSON_CreateNumber(id);
                if (n) {
                    bool fits = add_eos(&m->cfg, n);
                    cJSON_Delete(n);
                    if (!fits) {
                        st = ouro_err(err, OURO_ERR_UNSUPPORTED, "%s: more than %d distinct end "
                                      "of sequence ids with <|im_end|>", m->path, OURO_MAX_EOS);
                        goto fail;
                    }
                }
            }
        }
    }
    free(p);
    p = NULL;
    if ((st = ouro_model_check(m, err)) != OURO_OK)   /* a file shrank while validated */
        goto fail;

    for (int i = 0; i < ld.n_sf; i++)
        cJSON_Delete(ld.sf[i].header);
    free(ld.sf);
    cJSON_Delete(cfg);
    cJSON_Delete(index);
    cJSON_Delete(gen);
    ouro_log(OURO_LOG_INFO, "%s: loaded %zu parameters (%s), %zu bytes mapped", m->path,
             m->n_params, ouro_dtype_name(m->cfg.dtype), m->mapped_bytes);
    *out = m;
    return OURO_OK;

fail:
    free(p);
    for (int i = 0; i < ld.n_sf; i++)
        cJSON_Delete(ld.sf[i].header);
    free(ld.sf);
    cJSON_Delete(cfg);
    cJSON_Delete(index);
    cJSON_Delete(gen);
    ouro_model_free(m);
    return st;
}

const ouro_config *ouro_model_config(const ouro_model *m)
{
    return &m->cfg;
}

const ouro_tokenizer *ouro_model_tokenizer(const ouro_model *m)
{
    return m->tok;
}

const char *ouro_model_path(const ouro_model *m)
{
    return m->path;
}

bool ouro_model_files_changed(const ouro_model *m)
{
    for (int i = 0; i < m->n_files; i++) {
        struct stat st;
        const ouro_mapped_file *f = &m->files[i];
        if (ouro_guard_faulted(f->guard) || stat(f->path, &st) != 0)
            return true;
        int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        if (st.st_dev != f->dev || st.st_ino != f->ino || (size_t)st.st_size != f->size
            || mt != f->mtime_ns)
            return true;
    }
    return false;
}

ouro_status ouro_model_check(const ouro_model *m, ouro_error *err)
{
    for (int i = 0; i < m->n_files; i++)
        if (ouro_guard_faulted(m->files[i].guard))
            return ouro_err(err, OURO_ERR_MODEL_CHANGED, "model file \"%s\" was truncated or "
                            "overwritten while in use; the call was stopped and the model must "
                            "be loaded again", m->files[i].path);
    return OURO_OK;
}

bool ouro_pmd_bytes(const void *p, size_t n, size_t *huge)
{
    *huge = 0;
    FILE *fp = fopen("/proc/self/smaps", "re");
    if (!fp)
        return false;
    /* each mapping of the process: a header line "start-end perms ...", then
     * "Name: value kB" lines; a file may be one mapping or several where the
     * kernel split it (they are counted while inside the range) */
    char line[512];
    bool in = false;
    while (fgets(line, sizeof line, fp)) {
        unsigned long lo, hi;
        size_t kb;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)   /* no field line reads as this */
            in = p && lo >= (uintptr_t)p && hi <= (uintptr_t)p + n + 4095;
        else if (in && (sscanf(line, "FilePmdMapped: %zu kB", &kb) == 1
                        || sscanf(line, "AnonHugePages: %zu kB", &kb) == 1))
            *huge += kb << 10;   /* the file mapped, or its copy (weights = memory) */
    }
    fclose(fp);
    return true;
}

bool ouro_model_huge_bytes(const ouro_model *m, size_t *mapped, size_t *huge)
{
    *mapped = m->mapped_bytes;
    *huge = 0;
    for (int i = 0; i < m->n_files; i++) {
        size_t h;
        if (!m->files[i].map)
            continue;
        if (!ouro_pmd_bytes(m->files[i].map, m->files[i].map_len, &h))
            return false;
        *huge += h;
    }
    return true;
}

char *ouro_model_info_json(const ouro_model *m)
{
    const ouro_config *c = &m->cfg;
    cJSON *o = cJSON_CreateObject(), *cfg = cJSON_CreateObject(), *eos = cJSON_CreateArray();
    if (!o || !cfg || !eos) {
        cJSON_Delete(o);
        cJSON_Delete(cfg);
        cJSON_Delete(eos);
        return NULL;
    }
    cJSON_AddItemToObject(o, "config", cfg);
    cJSON_AddNumberToObject(cfg, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(cfg, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(cfg, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(cfg, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(cfg, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(cfg, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(cfg, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(cfg, "total_ut_steps", c->total_ut_steps);
    cJSON_AddNumberToObject(cfg, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(cfg, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(cfg, "rope_theta", c->rope_theta);
    if (m->exit_threshold_null)
        cJSON_AddNullToObject(cfg, "early_exit_threshold");
    else
        cJSON_AddNumberToObject(cfg, "early_exit_threshold", c->early_exit_threshold);
    cJSON_AddBoolToObject(cfg, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddNumberToObject(cfg, "bos_token_id", c->bos_token_id);
    cJSON_AddNumberToObject(cfg, "eos_token_id", c->eos_token_id);
    cJSON_AddNumberToObject(cfg, "pad_token_id", c->pad_token_id);
    for (int i = 0; i < c->n_eos; i++)
        cJSON_AddItemToArray(eos, cJSON_CreateNumber(c->eos_ids[i]));
    cJSON_AddItemToObject(o, "eos_ids", eos);
    cJSON_AddStringToObject(o, "path", m->path);
    cJSON_AddNumberToObject(o, "parameters", (double)m->n_params);
    cJSON_AddStringToObject(o, "dtype", ouro_dtype_name(c->dtype));
    size_t fb = 0;
    for (int i = 0; i < m->n_files; i++)
        fb += m->files[i].size;
    cJSON_AddNumberToObject(o, "file_bytes", (double)fb);
    cJSON_AddNumberToObject(o, "mapped_bytes", (double)m->mapped_bytes);
    cJSON_AddStringToObject(o, "weights", weights_name(m->weights));
    cJSON_AddNumberToObject(o, "files", m->n_files);
    cJSON_AddBoolToObject(o, "tokenizer", m->tok != NULL);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        return NULL;
    char *r = strdup(s);   /* handed out as malloc'd memory for ouro_free */
    cJSON_free(s);
    return r;
}

/*
 * convert.c -- `ouro convert`: writes a checkpoint with its matrices as q8.
 *
 * The source folder is loaded (and so validated) like any model; the output
 * is one model.safetensors with the tensors in the order of the architecture:
 * the matrices as U8 tensors in the q8 format of quant.c, the norms and the
 * exit gate as they were.  Every tensor starts on a 64-byte boundary (the
 * header is padded with spaces, as the safetensors format allows), so the
 * loader can use the mapped file in place.  The file is written under a
 * temporary name and renamed when complete, so a failed or interrupted
 * conversion never leaves a file that looks whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "internal.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* Files of a model folder copied as they are (those present). */
static const char *const copied_files[] = {
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json",
};

typedef struct cv_tensor {
    char name[128];
    const ouro_tensor *t;
    bool mat;                /* written as q8 */
    bool vector;             /* shape [rows] */
    size_t bytes, offset;
} cv_tensor;

static ouro_status write_all(int fd, const void *p, size_t n, const char *path, ouro_error *err)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return ouro_err(err, OURO_ERR_IO, "%s: write failed: %s", path,
                            w < 0 ? strerror(errno) : "no progress");
        c += w;
        n -= (size_t)w;
    }
    return OURO_OK;
}

static ouro_status copy_file(const char *src, const char *dst, ouro_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return ouro_err(err, OURO_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return ouro_err(err, OURO_ERR_IO, "%s: cannot create: %s", dst, strerror(errno));
    }
    ouro_status st = OURO_OK;
    char buf[65536];
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = ouro_err(err, OURO_ERR_IO, "%s: read failed: %s", src, strerror(errno));
            break;
        }
        if (r == 0 || (st = write_all(out, buf, (size_t)r, dst, err)) != OURO_OK)
            break;
    }
    if (close(out) != 0 && st == OURO_OK)
        st = ouro_err(err, OURO_ERR_IO, "%s: close failed: %s", dst, strerror(errno));
    close(in);
    return st;
}

/* The q8 bytes of matrix t, quantized with `threads` threads (NULL: out of memory). */
static uint8_t *quantize_matrix(const ouro_tensor *t, int threads)
{
    int64_t rows = t->shape[0], cols = t->shape[1];
    size_t gb = ouro_q8_group_bytes(cols), groups = (size_t)(rows + 15) / 16;
    uint8_t *q = aligned_alloc(64, groups * gb);
    if (!q)
        return NULL;
    bool fail = false;
    #pragma omp parallel num_threads(threads)
    {
        ouro_worker_signals();
        float *buf = malloc((size_t)16 * cols * sizeof(float));
        if (!buf) {
            #pragma omp atomic write
            fail = true;
        }
        #pragma omp for schedule(dynamic, 16)
        for (size_t g = 0; g < groups; g++) {
            if (!buf)
                continue;
            int n = rows - (int64_t)g * 16 < 16 ? (int)(rows - (int64_t)g * 16) : 16;
            for (int i = 0; i < n; i++)
                ouro_row_to_f32(buf + (size_t)i * cols, t->data, t->dtype, g * 16 + i, (int)cols);
            ouro_q8_quantize_group(q + g * gb, buf, n, cols);
        }
        free(buf);
    }
    if (fail) {
        free(q);
        return NULL;
    }
    return q;
}

/* Writes the q8 checkpoint of m to path; progress (may be NULL) gets the
 * bytes of tensors written after each tensor. */
static ouro_status write_model(const ouro_model *m, const char *path, int threads,
                               ouro_progress_fn progress, void *progress_ctx, ouro_error *err)
{
    const ouro_config *c = &m->cfg;
    size_t n_t = (size_t)c->num_layers * OURO_LAYER_TENSORS + 5;
    cv_tensor *ts = calloc(n_t, sizeof *ts);
    cJSON *h = cJSON_CreateObject();
    char *json = NULL;
    int fd = -1;
    ouro_status st = OURO_OK;
    if (!ts || !h) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t k = 0;
#define ADD(NAME, T, MAT, VEC) do { \
        snprintf(ts[k].name, sizeof ts[k].name, "%s", NAME); \
        ts[k].t = (T); ts[k].mat = (MAT); ts[k].vector = (VEC); k++; } while (0)
    ADD("model.embed_tokens.weight", &m->embed, true, false);
    for (int l = 0; l < c->num_layers; l++) {
        const ouro_layer *L = &m->layers[l];
        const ouro_tensor *lt[OURO_LAYER_TENSORS] = {
            &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down,
            &L->ln_in, &L->ln_in2, &L->ln_post, &L->ln_post2,
        };
        for (int i = 0; i < OURO_LAYER_TENSORS; i++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, ouro_layer_tensor_names[i]);
            ADD(name, lt[i], i < 7, i >= 7);
        }
    }
    ADD("model.norm.weight", &m->norm, false, true);
    ADD("model.early_exit_gate.weight", &m->gate_w, false, false);
    ADD("model.early_exit_gate.bias", &m->gate_b, false, true);
    if (!c->tie_word_embeddings)
        ADD("lm_head.weight", &m->lm_head, true, false);
#undef ADD
    n_t = k;

    /* header */
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    if (!meta || !cJSON_AddStringToObject(meta, "format", "pt")
        || !cJSON_AddStringToObject(meta, "ouro.quantization", "q8")) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t off = 0;
    for (size_t i = 0; i < n_t; i++) {
        const ouro_tensor *t = ts[i].t;
        double shape[2];
        int nd;
        if (ts[i].mat) {
            ts[i].bytes = ouro_q8_bytes(t->shape[0], t->shape[1]);
            shape[0] = (double)((t->shape[0] + 15) / 16);
            shape[1] = (double)ouro_q8_group_bytes(t->shape[1]);
            nd = 2;
        } else {
            ts[i].bytes = (size_t)t->shape[0] * (size_t)t->shape[1] * ouro_dtype_size(t->dtype);
            shape[0] = (double)t->shape[0];
            shape[1] = (double)t->shape[1];
            nd = ts[i].vector ? 1 : 2;
        }
        off = (off + 63) / 64 * 64;
        ts[i].offset = off;
        off += ts[i].bytes;
        cJSON *e = cJSON_AddObjectToObject(h, ts[i].name);
        double offs[2] = { (double)ts[i].offset, (double)off };
        if (!e || !cJSON_AddStringToObject(e, "dtype", ts[i].mat ? "U8" : ouro_dtype_name(t->dtype))
            || !cJSON_AddItemToObject(e, "shape", cJSON_CreateDoubleArray(shape, nd))
            || !cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateDoubleArray(offs, 2))) {
            st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    if (!(json = cJSON_PrintUnformatted(h))) {
        st = ouro_err(err, OURO_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t jlen = strlen(json), hlen = (8 + jlen + 63) / 64 * 64 - 8;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = ouro_err(err, OURO_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    static const char spaces[64] = "                                                               ";
    static const uint8_t zeros[64];
    if ((st = write_all(fd, len8, 8, path, err)) != OURO_OK
        || (st = write_all(fd, json, jlen, path, err)) != OURO_OK
        || (st = write_all(fd, spaces, hlen - jlen, path, err)) != OURO_OK)
        goto done;
    size_t pos = 0;
    for (size_t i = 0; i < n_t && st == OURO_OK; i++) {
        if ((st = write_all(fd, zeros, ts[i].offset - pos, path, err)) != OURO_OK)
            break;
        if (ts[i].mat) {
            uint8_t *q = quantize_matrix(ts[i].t, threads);
            if (!q) {
                st = ouro_err(err, OURO_ERR_NOMEM, "out of memory quantizing %s (%zu bytes)",
                              ts[i].name, ts[i].bytes);
                break;
            }
            st = write_all(fd, q, ts[i].bytes, path, err);
            free(q);
        } else {
            st = write_all(fd, ts[i].t->data, ts[i].bytes, path, err);
        }
        pos = ts[i].offset + ts[i].bytes;
        if (st == OURO_OK && progress) {
            ouro_progress p = { .done = (int64_t)pos, .total = (int64_t)off, .tokens = 0 };
            progress(progress_ctx, &p);
        }
    }
    if (st == OURO_OK && fsync(fd) != 0)
        st = ouro_err(err, OURO_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
done:
    if (fd >= 0 && close(fd) != 0 && st == OURO_OK)
        st = ouro_err(err, OURO_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    free(json);
    cJSON_Delete(h);
    free(ts);
    return st;
}

ouro_status ouro_convert_q8(const char *src_dir, const char *dst_dir, int threads, ouro_error *err)
{
    return ouro_convert_q8_progress(src_dir, dst_dir, threads, NULL, NULL, err);
}

ouro_status ouro_convert_q8_progress(const char *src_dir, const char *dst_dir, int threads,
                                     ouro_progress_fn progress, void *progress_ctx, ouro_error *err)
{
    if (!src_dir || !dst_dir)
        return ouro_err(err, OURO_ERR_ARG, "source and destination folders are required");
    if (threads <= 0)
        threads = ouro_default_threads();
    ouro_threads_prepare(threads);
    if (mkdir(dst_dir, 0755) != 0 && errno != EEXIST)
        return ouro_err(err, OURO_ERR_IO, "%s: cannot create the folder: %s", dst_dir, strerror(errno));
    char src_real[PATH_MAX], dst_real[PATH_MAX];
    if (!realpath(src_dir, src_real))
        return ouro_err(err, OURO_ERR_IO, "%s: %s", src_dir, strerror(errno));
    if (!realpath(dst_dir, dst_real))
        return ouro_err(err, OURO_ERR_IO, "%s: %s", dst_dir, strerror(errno));
    if (strcmp(src_real, dst_real) == 0)
        return ouro_err(err, OURO_ERR_ARG, "the destination must be another folder than the source");
    char path[PATH_MAX + 64], tmp[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dst_real);
    if (access(path, F_OK) == 0)
        return ouro_err(err, OURO_ERR_ARG, "%s: the destination holds a sharded checkpoint's index; "
                        "choose an empty folder", path);

    ouro_model *m = NULL;
    ouro_status st = ouro_model_load(src_real, &m, err);
    if (st != OURO_OK)
        return st;
    if (m->quantized) {
        ouro_model_free(m);
        return ouro_err(err, OURO_ERR_ARG, "%s is already q8", src_real);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dst_real);
    snprintf(tmp, sizeof tmp, "%s/model.safetensors.tmp", dst_real);
    st = write_model(m, tmp, threads, progress, progress_ctx, err);
    ouro_model_free(m);
    if (st == OURO_OK && rename(tmp, path) != 0)
        st = ouro_err(err, OURO_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (st != OURO_OK) {
        unlink(tmp);
        return st;
    }
    for (size_t i = 0; i < sizeof copied_files / sizeof copied_files[0]; i++) {
        char from[PATH_MAX + 64], to[PATH_MAX + 64];
        snprintf(from, sizeof from, "%s/%s", src_real, copied_files[i]);
        snprintf(to, sizeof to, "%s/%s", dst_real, copied_files[i]);
        if (access(from, F_OK) != 0)
            continue;
        if ((st = copy_file(from, to, err)) != OURO_OK)
            return st;
    }
    ouro_log(OURO_LOG_INFO, "converted %s to q8 in %s", src_real, dst_real);
    return OURO_OK;
}

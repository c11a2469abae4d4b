/*
 * matmul_bench.c -- micro-benchmark and cross-check of ouro_matmul (core/kernels.c).
 *
 * Times ouro_matmul on random bf16 weights in the shapes of one Ouro-1.4B layer (q, k, v, o:
 * 2048 x 2048; gate, up: 5632 x 2048; down: 2048 x 5632) and of its lm_head (49152 x 2048), for
 * n = 1, 4, 8, 16, 32, 64, 256 tokens and 1 and 2 threads.  For n = 1 it prints the rate at which
 * weights are streamed (GB/s, memory bound); for n > 1 the arithmetic rate (GFLOP/s, 2 flops per
 * multiply-add).  Each figure is the median of --reps timed runs (the machine is shared).
 * Built with -DWITH_OPENBLAS (and -lopenblas) it also times cblas_sgemm on the same products
 * with the weights converted to f32 beforehand: the f32 GEMM ceiling to compare with.
 *
 * --check compares ouro_matmul against a double-precision reference on odd shapes, for all
 * three weight formats; run it under each OURO_SIMD=generic|avx2|avx512 to test every path.
 *
 * Build (from the repository root, after `make core`):
 *   cc -std=c11 -D_GNU_SOURCE -O2 -fopenmp -Icore test/bench/matmul_bench.c build/libouro.a \
 *      -lcjson -lutf8proc -lm -fopenmp [-DWITH_OPENBLAS -lopenblas] -o build/matmul_bench
 *   build/matmul_bench [--reps N] [--n LIST] [--threads LIST] [--lm-head] [--precision exact|bf16|invariant] [--check]
 *
 * --precision invariant times the order classification uses (sums in one order whatever n,
 * see kernels.c "Order of the sums"), to compare with exact.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "internal.h"
#ifdef WITH_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int);
#endif

/* ------------------------------------------------------------------------
 * Setup
 * ------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    int d_out, d_in;
    uint16_t *w;     /* (d_out, d_in) bf16, owned */
    float *wf;       /* (d_out, d_in) f32 copy for OpenBLAS, owned, or NULL */
} mat;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)   /* uniform in [-1, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *xmalloc(size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void mat_init(mat *m, const char *name, int d_out, int d_in, int with_f32)
{
    size_t cnt = (size_t)d_out * d_in;
    m->name = name;
    m->d_out = d_out;
    m->d_in = d_in;
    m->w = xmalloc(cnt * 2);
    for (size_t i = 0; i < cnt; i++)
        m->w[i] = ouro_f32_to_bf16(frand() * 0.05f);
    m->wf = NULL;
    if (with_f32) {
        m->wf = xmalloc(cnt * 4);
        for (size_t i = 0; i < cnt; i++)
            m->wf[i] = ouro_bf16_to_f32(m->w[i]);
    }
}

/* ------------------------------------------------------------------------
 * Correctness: ouro_matmul against a double-precision reference
 * ------------------------------------------------------------------------ */

static int check(void)
{
    static const int shapes[][3] = {   /* n, d_in, d_out */
        {1, 48, 80}, {3, 80, 48}, {5, 176, 37}, {1, 1, 1}, {2, 17, 5}, {7, 33, 9},
        {9, 2048, 13}, {16, 100, 64}, {1, 5632, 21}, {37, 176, 129}, {64, 1031, 70},
        {1, 9000, 11}, {6, 9000, 7}, {300, 64, 40},
    };
    int bad = 0;
    printf("check: simd path %s\n", ouro_simd_level());
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int n = shapes[si][0], d_in = shapes[si][1], d_out = shapes[si][2];
        float *x = xmalloc((size_t)n * d_in * 4), *y = xmalloc((size_t)n * d_out * 4);
        float *wf = xmalloc((size_t)d_out * d_in * 4);
        uint16_t *wh = xmalloc((size_t)d_out * d_in * 2), *wb = xmalloc((size_t)d_out * d_in * 2);
        for (size_t i = 0; i < (size_t)n * d_in; i++)
            x[i] = frand();
        for (size_t i = 0; i < (size_t)d_out * d_in; i++) {
            float v = frand();
            wf[i] = v;
            wh[i] = ouro_f32_to_f16(v);
            wb[i] = ouro_f32_to_bf16(v);
        }
        for (int dt = 0; dt < 3; dt++) {
            const void *w = dt == OURO_F32 ? (const void *)wf : dt == OURO_F16 ? (const void *)wh : (const void *)wb;
            for (int th = 1; th <= 2; th++) {
                for (size_t i = 0; i < (size_t)n * d_out; i++)
                    y[i] = NAN;
                ouro_matmul(y, x, w, (ouro_dtype)dt, n, d_in, d_out, th);
                double maxerr = 0;
                for (int i = 0; i < n; i++)
                    for (int o = 0; o < d_out; o++) {
                        double s = 0, sa = 0;
                        for (int k = 0; k < d_in; k++) {
                            float wv = dt == OURO_F32 ? wf[(size_t)o * d_in + k]
                                     : dt == OURO_F16 ? ouro_f16_to_f32(wh[(size_t)o * d_in + k])
                                     : ouro_bf16_to_f32(wb[(size_t)o * d_in + k]);
                            s += (double)wv * x[(size_t)i * d_in + k];
                            sa += fabs((double)wv * x[(size_t)i * d_in + k]);
                        }
                        /* f32 accumulation: error bound ~ d_in * eps * sum|terms| */
                        double err = fabs(y[(size_t)i * d_out + o] - s) / (sa + 1e-30);
                        if (!(err <= maxerr))
                            maxerr = isnan(err) ? INFINITY : fmax(maxerr, err);
                    }
                int ok = maxerr < 1e-5 * (1 + d_in / 256.0);
                bad += !ok;
                printf("%s n=%d d_in=%d d_out=%d %s threads=%d rel.err %.2e\n", ok ? "ok  " : "FAIL",
                       n, d_in, d_out, ouro_dtype_name((ouro_dtype)dt), th, maxerr);
            }
            if (n == 1) {   /* ouro_dot_row */
                double maxerr = 0;
                for (int o = 0; o < d_out; o++) {
                    double s = 0, sa = 0;
                    float r = ouro_dot_row(w, (ouro_dtype)dt, (size_t)o, x, d_in);
                    for (int k = 0; k < d_in; k++) {
                        float wv = dt == OURO_F32 ? wf[(size_t)o * d_in + k]
                                 : dt == OURO_F16 ? ouro_f16_to_f32(wh[(size_t)o * d_in + k])
                                 : ouro_bf16_to_f32(wb[(size_t)o * d_in + k]);
                        s += (double)wv * x[k];
                        sa += fabs((double)wv * x[k]);
                    }
                    maxerr = fmax(maxerr, fabs(r - s) / (sa + 1e-30));
                }
                int ok = maxerr < 1e-5 * (1 + d_in / 256.0);
                bad += !ok;
                printf("%s dot_row d_in=%d %s rel.err %.2e\n", ok ? "ok  " : "FAIL", d_in,
                       ouro_dtype_name((ouro_dtype)dt), maxerr);
            }
        }
        free(x); free(y); free(wf); free(wh); free(wb);
    }
    printf("check: %d failed\n", bad);
    return bad != 0;
}

/* ------------------------------------------------------------------------
 * Timing
 * ------------------------------------------------------------------------ */

/* Median seconds of one pass over mats (each multiplied once) with n tokens. */
static double best_time;   /* the fastest run of the last time_pass */
static ouro_precision precision = OURO_PRECISION_EXACT;   /* --precision */

static double time_pass(mat *mats, int nm, int n, int threads, int reps, int blas,
                        float *x, float *y)
{
    double t[64];
    if (reps > 64)
        reps = 64;
    for (int r = -1; r < reps; r++) {   /* r = -1: warm-up */
        double t0 = now();
        for (int i = 0; i < nm; i++) {
            mat *m = &mats[i];
#ifdef WITH_OPENBLAS
            if (blas) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m->d_out, m->d_in, 1.0f,
                            x, m->d_in, m->wf, m->d_in, 0.0f, y, m->d_out);
                continue;
            }
#endif
            ouro_matmul_prec(y, x, m->w, OURO_BF16, n, m->d_in, m->d_out, threads, precision, NULL);
        }
        if (r >= 0)
            t[r] = now() - t0;
    }
    (void)blas;
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    best_time = t[0];
    return t[reps / 2];
}

static int parse_list(const char *s, int *out, int max)
{
    int k = 0;
    while (*s && k < max) {
        out[k++] = atoi(s);
        while (*s && *s != ',')
            s++;
        if (*s == ',')
            s++;
    }
    return k;
}

int main(int argc, char **argv)
{
    const char *prec_name = "exact";
    int ns[16] = {1, 4, 8, 16, 32, 64, 256}, nn = 7;
    int ths[4] = {1, 2}, nth = 2;
    int reps = 7, lm_head = 0, blas = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--check"))
            return check();
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            nn = parse_list(argv[++i], ns, 16);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nth = parse_list(argv[++i], ths, 4);
        else if (!strcmp(argv[i], "--lm-head"))
            lm_head = 1;
        else if (!strcmp(argv[i], "--blas"))
            blas = 1;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc && (!strcmp(argv[i + 1], "exact")
                                                                    || !strcmp(argv[i + 1], "bf16")
                                                                    || !strcmp(argv[i + 1], "invariant"))) {
            prec_name = argv[++i];
            precision = !strcmp(prec_name, "bf16") ? OURO_PRECISION_BF16
                        : !strcmp(prec_name, "invariant") ? OURO_PRECISION_INVARIANT : OURO_PRECISION_EXACT;
        }
        else {
            fprintf(stderr, "usage: %s [--reps N] [--n LIST] [--threads LIST] [--lm-head] [--blas] [--precision exact|bf16|invariant] [--check]\n", argv[0]);
            return 2;
        }
    }
#ifndef WITH_OPENBLAS
    if (blas) {
        fprintf(stderr, "--blas needs a build with -DWITH_OPENBLAS -lopenblas\n");
        return 2;
    }
#endif
    if (reps < 1)
        reps = 1;

    mat mats[7];
    int nm;
    if (lm_head) {
        mat_init(&mats[0], "lm_head", 49152, 2048, blas);
        nm = 1;
    } else {
        mat_init(&mats[0], "q", 2048, 2048, blas);
        mat_init(&mats[1], "k", 2048, 2048, blas);
        mat_init(&mats[2], "v", 2048, 2048, blas);
        mat_init(&mats[3], "o", 2048, 2048, blas);
        mat_init(&mats[4], "gate", 5632, 2048, blas);
        mat_init(&mats[5], "up", 5632, 2048, blas);
        mat_init(&mats[6], "down", 2048, 5632, blas);
        nm = 7;
    }
    double params = 0;
    int dmax = 0;
    for (int i = 0; i < nm; i++) {
        params += (double)mats[i].d_out * mats[i].d_in;
        if (mats[i].d_out > dmax) dmax = mats[i].d_out;
        if (mats[i].d_in > dmax) dmax = mats[i].d_in;
    }
    int nmax = 1;
    for (int i = 0; i < nn; i++)
        if (ns[i] > nmax) nmax = ns[i];
    float *x = xmalloc((size_t)nmax * dmax * 4), *y = xmalloc((size_t)nmax * dmax * 4);
    for (size_t i = 0; i < (size_t)nmax * dmax; i++)
        x[i] = frand();

    printf("ouro_matmul %s, precision %s, simd %s, %s, %.1f MB of bf16 weights per pass, median of %d\n",
           blas ? "vs OpenBLAS sgemm (f32 weights)" : "bf16", prec_name, ouro_simd_level(),
           lm_head ? "lm_head 49152x2048" : "one layer q,k,v,o,gate,up,down", params * 2 / 1e6, reps);
    for (int ti = 0; ti < nth; ti++) {
        int th = ths[ti];
#ifdef WITH_OPENBLAS
        openblas_set_num_threads(th);
#endif
        for (int i = 0; i < nn; i++) {
            int n = ns[i];
            double t = time_pass(mats, nm, n, th, reps, blas, x, y);
            double gbs = params * (blas ? 4 : 2) / t / 1e9;
            double gflops = 2.0 * params * n / t / 1e9;
            if (n == 1)
                printf("%-8s threads=%d n=%-4d %8.3f ms  %7.1f GB/s   (%6.1f GFLOP/s)  best %7.1f GB/s\n",
                       blas ? "sgemm" : "matmul", th, n, t * 1e3, gbs, gflops, gbs * t / best_time);
            else
                printf("%-8s threads=%d n=%-4d %8.3f ms  %7.1f GFLOP/s (%6.1f GB/s)  best %7.1f GFLOP/s\n",
                       blas ? "sgemm" : "matmul", th, n, t * 1e3, gflops, gbs, gflops * t / best_time);
            fflush(stdout);
        }
    }
    for (int i = 0; i < nm; i++) {
        free(mats[i].w);
        free(mats[i].wf);
    }
    free(x);
    free(y);
    return 0;
}

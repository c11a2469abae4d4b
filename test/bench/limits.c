/*
 * limits.c -- measures this machine's own limits, the ceilings the model figures are compared to.
 *
 *   - memory read bandwidth: a streaming read (sum of 64-bit lanes, several independent
 *     accumulators, unrolled, with and without software prefetch) over a buffer far larger than
 *     the last-level cache, with plain, AVX2 and AVX-512 loads (and AVX-512 with every line
 *     prefetched 1 KiB and 2 KiB ahead), on 1 thread and on every core; over anonymous memory
 *     with 2 MiB pages and with 4 KiB pages, and (--file PATH) over a read-only mapping of a
 *     file, mapped as the runtime maps its weights (madvise(MADV_HUGEPAGE) before the first
 *     read; the share the kernel mapped with 2 MiB pages is printed).  The best figure is the
 *     ceiling for memory-bound work (single-sequence decode).
 *   - peak f32 GEMM: OpenBLAS cblas_sgemm on a square 2048 product and on a prefill-shaped one
 *     (256 tokens x 2048 -> 5632), 1 thread and every core.
 *   - peak in-register FMA rates: AVX-512 (or AVX2) f32 FMA and, where the CPU has AVX-512 BF16,
 *     vdpbf16ps (two bf16 products per f32 lane), and the 8-bit dot product (AVX-512 VNNI
 *     vpdpbusd, or AVX-VNNI on 256-bit registers: four u8 x s8 products per i32 lane, counted as
 *     2 operations each, as the q8 kernels' GOP/s are), with many independent accumulators.
 *     Where the CPU has AMX tiles (and Linux grants them), the bf16 (TDPBF16PS) and int8
 *     (TDPBSUD) tile products, 4 independent accumulator tiles per thread.
 *     These are what the cores can issue, an upper bound no real kernel reaches; they are the
 *     compute limits of the exact path (f32 FMA, or AMX bf16 with the activations in three bf16
 *     pieces), `precision bf16` (bf16 dot, AMX bf16) and q8/q4 weights (8-bit dot, AMX int8).
 *
 * Every figure is the best of several repetitions.  The last line, for scripts, is
 *   LIMITS bw_gbs=X bw_file_gbs=X sgemm_gflops=X fma_f32_gflops=X bf16_gflops=X int8_gops=X
 *          amx_bf16_gflops=X amx_int8_gops=X
 * (0 where not measured).  Build: see test/bench/run.sh (links OpenBLAS, OpenMP and
 * build/libouro.a).
 *
 *   limits [--mib N] [--reps N] [--file PATH] [--threads N] [--quick]
 * --threads N measures with at most N threads (default: every core), so that the limits match a
 * model run with N threads.
 */
#include <fcntl.h>
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "internal.h"   /* ouro_pmd_bytes: the loader's reading of /proc/self/smaps */

/* OpenBLAS extensions (declared in its cblas.h; repeated for other cblas headers). */
extern void openblas_set_num_threads(int n);
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);

/* Seconds on a monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------
 * Memory read bandwidth
 * ------------------------------------------------------------------------ */

/* A read kernel: returns a value depending on every byte of p[0..bytes) (bytes % 1024 == 0). */
typedef uint64_t (*read_fn)(const uint8_t *p, size_t bytes);

/* Plain C loop over 64-bit words (what a simple benchmark measures). */
static uint64_t read_plain(const uint8_t *p, size_t bytes)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t s = 0;
    for (size_t i = 0; i < bytes / 8; i++)
        s += w[i];
    return s;
}

__attribute__((target("avx2")))
static uint64_t read_avx2(const uint8_t *p, size_t bytes)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < bytes; i += 256) {
        const __m256i *v = (const __m256i *)(p + i);
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + 0));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 1));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 2));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 3));
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + 4));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + 5));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + 6));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + 7));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, s);
    return out[0] + out[1] + out[2] + out[3];
}

__attribute__((target("avx512f")))
static uint64_t read_avx512(const uint8_t *p, size_t bytes)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < bytes; i += 512) {
        const __m512i *v = (const __m512i *)(p + i);
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(v + 0));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(v + 1));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(v + 2));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(v + 3));
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(v + 4));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(v + 5));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(v + 6));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(v + 7));
    }
    return (uint64_t)_mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

/* AVX-512 loads with a software prefetch of every 64-byte line PF bytes ahead (the end of the
 * range may prefetch past it; prefetches never fault).  1 KiB is the distance the runtime's
 * weight-streaming kernels use (the best measured here, with 2 MiB pages), 2 KiB beside it. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline))
uint64_t read_avx512_prefetch(const uint8_t *p, size_t bytes, size_t pf)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < bytes; i += 512) {
        const __m512i *v = (const __m512i *)(p + i);
        for (int k = 0; k < 8; k++)
            _mm_prefetch((const char *)(p + i + pf + 64 * k), _MM_HINT_T0);
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(v + 0));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(v + 1));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(v + 2));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(v + 3));
        a0 = _mm512_add_epi64(a0, _mm512_load_si512(v + 4));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512(v + 5));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512(v + 6));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512(v + 7));
    }
    return (uint64_t)_mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

__attribute__((target("avx512f")))
static uint64_t read_avx512_pf1k(const uint8_t *p, size_t bytes)
{
    return read_avx512_prefetch(p, bytes, 1024);
}

__attribute__((target("avx512f")))
static uint64_t read_avx512_pf2k(const uint8_t *p, size_t bytes)
{
    return read_avx512_prefetch(p, bytes, 2048);
}

static volatile uint64_t sink;   /* keeps the reads from being optimised away */

/* Best GB/s of `reps` passes of `fn` over buf[0..bytes) split evenly over `threads` threads. */
static double measure_read(read_fn fn, const uint8_t *buf, size_t bytes, int threads, int reps)
{
    size_t per = bytes / (size_t)threads / 4096 * 4096;
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = 0, t1 = 0;
        uint64_t total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        {
#pragma omp barrier
#pragma omp master
            t0 = now_s();
            total += fn(buf + (size_t)omp_get_thread_num() * per, per);
#pragma omp barrier
#pragma omp master
            t1 = now_s();
        }
        sink += total;
        double gbs = (double)per * threads / (t1 - t0) / 1e9;
        if (gbs > best)
            best = gbs;
    }
    return best;
}

typedef struct read_kernel { const char *name; read_fn fn; int ok; } read_kernel;

/* Measures every usable kernel over buf on 1 and n_cpu threads; prints one line per figure and
 * returns the best.  `what` names the memory. */
static double bandwidth_suite(const char *what, const uint8_t *buf, size_t bytes, int n_cpu,
                              int reps, int quick)
{
    read_kernel k[] = {
        {"plain C", read_plain, 1},
        {"AVX2", read_avx2, __builtin_cpu_supports("avx2")},
        {"AVX-512", read_avx512, __builtin_cpu_supports("avx512f")},
        {"AVX-512 + prefetch 1K", read_avx512_pf1k, __builtin_cpu_supports("avx512f")},
        {"AVX-512 + prefetch 2K", read_avx512_pf2k, __builtin_cpu_supports("avx512f")},
    };
    double best = 0;
    const char *best_name = "";
    int best_threads = 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        if (!k[i].ok || (quick && i == 0))
            continue;
        for (int t = 1; t <= n_cpu; t = t < n_cpu && t * 2 > n_cpu ? n_cpu : t * 2) {
            double g = measure_read(k[i].fn, buf, bytes, t, reps);
            printf("  memory read, %-22s %-21s %d thread%s  %7.1f GB/s\n", what, k[i].name, t,
                   t > 1 ? "s" : " ", g);
            fflush(stdout);
            if (g > best) {
                best = g;
                best_name = k[i].name;
                best_threads = t;
            }
        }
    }
    printf("memory read bandwidth, %s: %.1f GB/s (best: %s, %d thread%s)\n", what, best,
           best_name, best_threads, best_threads > 1 ? "s" : "");
    return best;
}

/* Anonymous buffer of `bytes`, filled with nonzero data; huge != 0 asks for 2 MiB pages. */
static uint8_t *anon_buffer(size_t bytes, int huge)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    uint64_t *w = p;
#pragma omp parallel for
    for (size_t i = 0; i < bytes / 8; i++)
        w[i] = i * 0x9E3779B97F4A7C15ull;
    return p;
}

/* ------------------------------------------------------------------------
 * GEMM (OpenBLAS)
 * ------------------------------------------------------------------------ */

/* Best GFLOP/s of C(m,n) = A(m,k) * B(k,n)^T-like row-major sgemm on `threads` threads. */
static double measure_sgemm(int m, int n, int k, int threads, int reps)
{
    float *a = malloc(sizeof(float) * (size_t)m * k);   /* (m, k) */
    float *b = malloc(sizeof(float) * (size_t)n * k);   /* (n, k): weights as stored, rows out */
    float *c = malloc(sizeof(float) * (size_t)m * n);   /* (m, n) */
    if (!a || !b || !c) {
        free(a); free(b); free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)n * k; i++)
        b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    openblas_set_num_threads(threads);
    double best = 0;
    for (int r = 0; r < reps + 1; r++) {   /* the first run warms up */
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        double dt = now_s() - t0;
        double g = 2.0 * m * n * k / dt / 1e9;
        if (r > 0 && g > best)
            best = g;
    }
    sink += (uint64_t)c[0];
    free(a); free(b); free(c);
    return best;
}

/* ------------------------------------------------------------------------
 * In-register peaks
 * ------------------------------------------------------------------------ */

#define PEAK_ITERS 20000000L

/* FLOPs done by `iters` rounds of 16 independent 512-bit FMAs (32 FLOPs each). */
__attribute__((target("avx512f")))
static double fma512_loop(long iters)
{
    __m512 acc[16];
    for (int i = 0; i < 16; i++)
        acc[i] = _mm512_set1_ps((float)i * 1e-3f);
    __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++)
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    __m512 s = acc[0];
    for (int i = 1; i < 16; i++)
        s = _mm512_add_ps(s, acc[i]);
    sink += (uint64_t)_mm512_reduce_add_ps(s);
    return (double)iters * 16 * 32;
}

/* FLOPs done by `iters` rounds of 12 independent 256-bit FMAs (16 FLOPs each). */
__attribute__((target("avx2,fma")))
static double fma256_loop(long iters)
{
    __m256 acc[12];
    for (int i = 0; i < 12; i++)
        acc[i] = _mm256_set1_ps((float)i * 1e-3f);
    __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++)
#pragma GCC unroll 16
        for (int i = 0; i < 12; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    __m256 s = acc[0];
    for (int i = 1; i < 12; i++)
        s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    sink += (uint64_t)out[0];
    return (double)iters * 12 * 16;
}

/* FLOPs done by `iters` rounds of 16 independent vdpbf16ps (32 bf16 pairs: 64 FLOPs each). */
__attribute__((target("avx512f,avx512bf16")))
static double bf16_loop(long iters)
{
    __m512 acc[16];
    for (int i = 0; i < 16; i++)
        acc[i] = _mm512_set1_ps((float)i * 1e-3f);
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3F80), y = (__m512bh)_mm512_set1_epi16(0x3380);
    for (long it = 0; it < iters; it++)
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
    __m512 s = acc[0];
    for (int i = 1; i < 16; i++)
        s = _mm512_add_ps(s, acc[i]);
    sink += (uint64_t)_mm512_reduce_add_ps(s);
    return (double)iters * 16 * 64;
}

/* Operations done by `iters` rounds of 16 independent vpdpbusd on 512-bit registers (64 u8 x s8
 * products added into 16 i32 lanes: 128 operations each). */
__attribute__((target("avx512f,avx512vnni")))
static double vnni512_loop(long iters)
{
    __m512i acc[16];
    for (int i = 0; i < 16; i++)
        acc[i] = _mm512_set1_epi32(i);
    __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
    for (long it = 0; it < iters; it++)
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            acc[i] = _mm512_dpbusd_epi32(acc[i], x, y);
    __m512i s = acc[0];
    for (int i = 1; i < 16; i++)
        s = _mm512_add_epi32(s, acc[i]);
    sink += (uint64_t)_mm512_reduce_add_epi32(s);
    return (double)iters * 16 * 128;
}

/* The same with AVX-VNNI on 256-bit registers (64 operations each). */
__attribute__((target("avx2,avxvnni")))
static double vnni256_loop(long iters)
{
    __m256i acc[12];
    for (int i = 0; i < 12; i++)
        acc[i] = _mm256_set1_epi32(i);
    __m256i x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(-2);
    for (long it = 0; it < iters; it++)
#pragma GCC unroll 16
        for (int i = 0; i < 12; i++)
            acc[i] = _mm256_dpbusd_avx_epi32(acc[i], x, y);
    __m256i s = acc[0];
    for (int i = 1; i < 12; i++)
        s = _mm256_add_epi32(s, acc[i]);
    int out[8];
    _mm256_storeu_si256((__m256i *)out, s);
    sink += (uint64_t)out[0];
    return (double)iters * 12 * 64;
}

/* AMX tiles: a configuration of eight 16 x 64-byte tiles, and the rate of their products.
 * Linux hands the tile state to a process that asks (arch_prctl ARCH_REQ_XCOMP_PERM); each
 * thread loads the configuration itself. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

static int amx_allowed(void)
{
    return __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16")
        && __builtin_cpu_supports("amx-int8")
        && syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
}

__attribute__((target("amx-tile")))
static void amx_begin(void)
{
    amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    __asm__ volatile("" : : "r"(&c) : "memory");   /* GCC 12 does not see ldtilecfg read c */
    _tile_loadconfig(&c);
    static const uint8_t zeros[1024];
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    _tile_loadd(4, zeros, 64); _tile_loadd(5, zeros, 64);
    _tile_loadd(6, zeros, 64); _tile_loadd(7, zeros, 64);
}

/* FLOPs of `iters` rounds of 4 independent TDPBF16PS (16 x 16 outputs, 32 bf16 pairs each:
 * 16384 FLOPs). */
__attribute__((target("amx-tile,amx-bf16")))
static double amx_bf16_loop(long iters)
{
    amx_begin();
    iters *= 4;
    for (long it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_release();
    return (double)iters * 4 * 16384;
}

/* Operations of `iters` rounds of 4 independent TDPBSUD (16 x 16 outputs, 64 s8 x u8 products
 * each, counted as 2 operations: 32768). */
__attribute__((target("amx-tile,amx-int8")))
static double amx_int8_loop(long iters)
{
    amx_begin();
    iters *= 4;
    for (long it = 0; it < iters; it++) {
        _tile_dpbsud(0, 4, 6);
        _tile_dpbsud(1, 4, 7);
        _tile_dpbsud(2, 5, 6);
        _tile_dpbsud(3, 5, 7);
    }
    _tile_release();
    return (double)iters * 4 * 32768;
}

/* Best GFLOP/s of `loop` run on `threads` threads at once. */
static double measure_peak(double (*loop)(long), long iters, int threads, int reps)
{
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double flops = 0, t0 = now_s();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
        flops += loop(iters);
        double g = flops / (now_s() - t0) / 1e9;
        if (g > best)
            best = g;
    }
    return best;
}

/* ------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    size_t mib = 1024;
    int reps = 5, quick = 0, max_threads = 0;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mib") && i + 1 < argc) mib = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) max_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: limits [--mib N] [--reps N] [--file PATH] [--threads N] [--quick]\n");
            return 2;
        }
    }
    if (quick) {
        mib = mib > 256 ? 256 : mib;
        reps = reps > 2 ? 2 : reps;
    }
    if (mib < 16 || reps < 1) {
        fprintf(stderr, "limits: --mib must be at least 16 and --reps at least 1\n");
        return 2;
    }
    int n_cpu = omp_get_num_procs();
    if (max_threads > 0 && max_threads < n_cpu)
        n_cpu = max_threads;
    size_t bytes = mib << 20;
    __builtin_cpu_init();

    /* memory */
    double bw = 0, bw4k = 0, bw_file = 0;
    uint8_t *buf = anon_buffer(bytes, 1);
    if (!buf) {
        fprintf(stderr, "limits: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    printf("memory read over %zu MiB (%d cores):\n", mib, n_cpu);
    bw = bandwidth_suite("anonymous, 2 MiB pages", buf, bytes, n_cpu, reps, quick);
    munmap(buf, bytes);
    if (!quick) {
        buf = anon_buffer(bytes, 0);
        if (buf) {
            bw4k = bandwidth_suite("anonymous, 4 KiB pages", buf, bytes, n_cpu, reps, quick);
            munmap(buf, bytes);
        }
    }
    if (file) {
        int fd = open(file, O_RDONLY);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size >= (off_t)(64 << 20)) {
            size_t len = (size_t)st.st_size / 4096 * 4096 / 1024 * 1024;
            uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
            if (m != MAP_FAILED) {
                /* mapped as the loader maps weights: 2 MiB pages asked for before the first
                 * fault; one untimed pass brings the file into the page cache and the page
                 * tables, which then say which page size the kernel gave */
                madvise(m, (size_t)st.st_size, MADV_HUGEPAGE);
                sink += read_plain(m, len);
                size_t pmd;
                if (!ouro_pmd_bytes(m, (size_t)st.st_size, &pmd))
                    printf("mapped file: page size unknown (no /proc/self/smaps)\n");
                else
                    printf("mapped file: %.0f%% of %zu MiB mapped with 2 MiB pages%s\n",
                           100.0 * (double)pmd / (double)st.st_size, (size_t)st.st_size >> 20,
                           pmd == 0 ? " (none: the page cache holds the file in 4 KiB pages, or "
                           "the kernel maps files so; a fresh copy of the file, or its cache "
                           "dropped, gives 2 MiB pages where the kernel can)" : "");
                bw_file = bandwidth_suite("mapped file (weights)", m, len, n_cpu, reps, 1);
                munmap(m, (size_t)st.st_size);
            }
        } else {
            printf("memory read, mapped file: %s is missing or small; skipped\n", file);
        }
        if (fd >= 0)
            close(fd);
    }
    double bw_best = bw > bw4k ? bw : bw4k;
    if (bw_file > bw_best)
        bw_best = bw_file;

    /* GEMM */
    printf("OpenBLAS: %s (core %s)\n", openblas_get_config(), openblas_get_corename());
    double sg_best = 0;
    struct { int m, n, k; const char *what; } g[] = {
        {2048, 2048, 2048, "2048 x 2048 x 2048"},
        {256, 5632, 2048, "prefill 256 tok x 2048 -> 5632"},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        for (int t = 1; t <= n_cpu; t = t < n_cpu && t * 2 > n_cpu ? n_cpu : t * 2) {
            double v = measure_sgemm(g[i].m, g[i].n, g[i].k, t, quick ? 1 : 3);
            printf("  sgemm %-32s %d thread%s  %7.1f GFLOP/s\n", g[i].what, t, t > 1 ? "s" : " ", v);
            fflush(stdout);
            if (v > sg_best)
                sg_best = v;
        }
    }
    printf("peak f32 GEMM (OpenBLAS cblas_sgemm): %.1f GFLOP/s\n", sg_best);

    /* in-register peaks */
    long iters = quick ? PEAK_ITERS / 10 : PEAK_ITERS;
    double fma = 0, bf = 0;
    int have512 = __builtin_cpu_supports("avx512f");
    int have_bf16 = have512 && __builtin_cpu_supports("avx512bf16");
    double (*fma_loop)(long) = have512 ? fma512_loop
                               : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                                   ? fma256_loop : NULL;
    if (fma_loop) {
        printf("  f32 FMA in registers, 1 thread: %.1f GFLOP/s\n", measure_peak(fma_loop, iters, 1, 3));
        fma = measure_peak(fma_loop, iters, n_cpu, 3);
    }
    printf("peak f32 FMA in registers (%s, %d threads): %.1f GFLOP/s\n",
           have512 ? "AVX-512" : "AVX2", n_cpu, fma);
    if (have_bf16) {
        printf("  bf16 dot product in registers, 1 thread: %.1f GFLOP/s\n",
               measure_peak(bf16_loop, iters, 1, 3));
        bf = measure_peak(bf16_loop, iters, n_cpu, 3);
        printf("peak bf16 dot product in registers (AVX-512 BF16 vdpbf16ps, %d threads): %.1f GFLOP/s\n",
               n_cpu, bf);
    } else {
        printf("peak bf16 dot product: no AVX-512 BF16 on this CPU\n");
    }
    double i8 = 0;
    int have_vnni512 = have512 && __builtin_cpu_supports("avx512vnni");
    int have_vnni256 = __builtin_cpu_supports("avxvnni");
    if (have_vnni512 || have_vnni256) {
        double (*vloop)(long) = have_vnni512 ? vnni512_loop : vnni256_loop;
        printf("  8-bit dot product in registers, 1 thread: %.1f GOP/s\n",
               measure_peak(vloop, iters, 1, 3));
        i8 = measure_peak(vloop, iters, n_cpu, 3);
        printf("peak 8-bit dot product in registers (%s vpdpbusd, %d threads): %.1f GOP/s\n",
               have_vnni512 ? "AVX-512 VNNI" : "AVX-VNNI", n_cpu, i8);
    } else {
        printf("peak 8-bit dot product: no VNNI on this CPU\n");
    }
    double amx_bf = 0, amx_i8 = 0;
    if (amx_allowed()) {
        printf("  AMX bf16 tile products, 1 thread: %.1f GFLOP/s\n",
               measure_peak(amx_bf16_loop, iters, 1, 3));
        amx_bf = measure_peak(amx_bf16_loop, iters, n_cpu, 3);
        printf("peak AMX bf16 tile products (TDPBF16PS, %d threads): %.1f GFLOP/s\n", n_cpu, amx_bf);
        printf("  AMX int8 tile products, 1 thread: %.1f GOP/s\n",
               measure_peak(amx_int8_loop, iters, 1, 3));
        amx_i8 = measure_peak(amx_int8_loop, iters, n_cpu, 3);
        printf("peak AMX int8 tile products (TDPBSUD, %d threads): %.1f GOP/s\n", n_cpu, amx_i8);
    } else {
        printf("peak AMX tile products: no AMX on this CPU (or Linux refused the tile state)\n");
    }
    printf("LIMITS bw_gbs=%.2f bw_file_gbs=%.2f sgemm_gflops=%.1f fma_f32_gflops=%.1f "
           "bf16_gflops=%.1f int8_gops=%.1f amx_bf16_gflops=%.1f amx_int8_gops=%.1f\n",
           bw_best, bw_file, sg_best, fma, bf, i8, amx_bf, amx_i8);
    return 0;
}

/*
 * base.c -- the ground floor of the core: IEEE fp16 and bfloat16 conversion,
 * dtype sizes and names, and what the processor can do (the SIMD path chosen
 * at run time, a few optional instruction sets, the processor count).
 *
 * Depends on no other file of the core.  The CPU checks are x86-64 only; on
 * every other processor the generic path is chosen.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base.h"
#if defined(OURO_X86_SIMD) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------------------------
 * Half-precision conversion (IEEE fp16 and bfloat16)
 * ------------------------------------------------------------------------ */

static inline float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float ouro_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float f = (float)man * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31)
        return bits_to_f32(sign | 0x7f800000u | (man << 13));
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ouro_f32_to_f16(float f)
{
    uint32_t u = f32_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t absu = u & 0x7fffffffu;
    if (absu >= 0x7f800000u)                       /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absu > 0x7f800000u ? 0x200 : 0));
    if (absu >= 0x477ff000u)                       /* rounds to >= 65520: inf */
        return (uint16_t)(sign | 0x7c00);
    if (absu < 0x38800000u) {                      /* below 2^-14: subnormal */
        float a = bits_to_f32(absu);
        /* a / 2^-24 rounded to nearest even */
        float m = nearbyintf(a * 16777216.0f);
        return (uint16_t)(sign | (uint32_t)m);
    }
    uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u);   /* round to nearest even */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float ouro_bf16_to_f32(uint16_t h)
{
    return bits_to_f32((uint32_t)h << 16);
}

uint16_t ouro_f32_to_bf16(float f)
{
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)           /* nan stays nan */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

size_t ouro_dtype_size(ouro_dtype dt)
{
    return dt == OURO_F32 ? 4 : dt == OURO_Q8 || dt == OURO_Q4 ? 1 : 2;
}

const char *ouro_dtype_name(ouro_dtype dt)
{
    switch (dt) {
    case OURO_F32:  return "F32";
    case OURO_F16:  return "F16";
    case OURO_BF16: return "BF16";
    case OURO_Q8:   return "Q8";
    case OURO_Q4:   return "Q4";
    }
    return "?";
}

/* ------------------------------------------------------------------------
 * The processor
 * ------------------------------------------------------------------------ */

int ouro_simd(void)
{
    static volatile int level;   /* 0 = not yet known; every thread computes the same */
    if (!level) {
        int l = OURO_SIMD_GENERIC;
#ifdef OURO_X86_SIMD
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
            l = OURO_SIMD_AVX512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            l = OURO_SIMD_AVX2;   /* F16C comes with every AVX2 processor */
#endif
        const char *env = getenv("OURO_SIMD");
        if (env) {
            int want = !strcmp(env, "generic") ? OURO_SIMD_GENERIC
                     : !strcmp(env, "avx2") ? OURO_SIMD_AVX2
                     : !strcmp(env, "avx512") ? OURO_SIMD_AVX512 : l;
            if (want < l)
                l = want;
        }
        level = l;
    }
    return level;
}

const char *ouro_simd_level(void)
{
    switch (ouro_simd()) {
    case OURO_SIMD_AVX512: return "avx512";
    case OURO_SIMD_AVX2:   return "avx2";
    default:               return "generic";
    }
}

bool ouro_cpu_bf16dp(void)
{
    static volatile int have;   /* 0 = not yet known, 1 = no, 2 = yes */
    if (!have) {
        int h = 1;
#ifdef OURO_X86_SIMD
        __builtin_cpu_init();
        if (ouro_simd() == OURO_SIMD_AVX512 && __builtin_cpu_supports("avx512bf16"))
            h = 2;
#endif
        have = h;
    }
    return have == 2;
}

bool ouro_cpu_vnni(void)
{
    static volatile int have;   /* 0 = not yet known, 1 = no, 2 = yes */
    if (!have) {
        int h = 1;
#ifdef OURO_X86_SIMD
        __builtin_cpu_init();
        if (ouro_simd() == OURO_SIMD_AVX512 && __builtin_cpu_supports("avx512vnni")
            && __builtin_cpu_supports("avx512vl"))
            h = 2;
#endif
        have = h;
    }
    return have == 2;
}

bool ouro_cpu_amx(void)
{
    static volatile int have;   /* 0 = not yet known, 1 = no, 2 = yes */
    if (!have) {
        int h = 1;
#if defined(OURO_X86_SIMD) && defined(__linux__)
        __builtin_cpu_init();
        const char *env = getenv("OURO_SIMD");
        if (ouro_simd() == OURO_SIMD_AVX512 && (!env || !strcmp(env, "amx"))
            && __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16")
            && __builtin_cpu_supports("amx-int8")
            && syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                       18 /* XFEATURE_XTILEDATA */) == 0)
            h = 2;
#endif
        have = h;
    }
    return have == 2;
}

int ouro_default_threads(void)
{
#ifdef _OPENMP
    int n = omp_get_num_procs();   /* reads the CPU count; starts no thread */
#else
    int n = 1;
#endif
    return n > 0 ? n : 1;
}

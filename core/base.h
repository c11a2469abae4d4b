/*
 * base.h -- the ground floor of the core: number formats and the processor.
 *
 * Everything here depends on nothing else of the core (only on the types of
 * ouro.h), so every other file may use it: the kernels, the q8 format, the
 * math and the build information.  base.c implements it.
 */
#ifndef OURO_BASE_H
#define OURO_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ouro.h"

/* ------------------------------------------------------------------------
 * Number formats
 * ------------------------------------------------------------------------ */

float ouro_f16_to_f32(uint16_t h);
uint16_t ouro_f32_to_f16(float f);      /* round to nearest even */
float ouro_bf16_to_f32(uint16_t h);
uint16_t ouro_f32_to_bf16(float f);     /* round to nearest even */

/* Bytes of one element of dtype, and its safetensors-style name ("BF16"). */
size_t ouro_dtype_size(ouro_dtype dt);
const char *ouro_dtype_name(ouro_dtype dt);

/* ------------------------------------------------------------------------
 * The processor
 * ------------------------------------------------------------------------ */

/* The x86-64 SIMD paths (AVX2, AVX-512 and their intrinsics) are compiled
 * only where the compiler targets x86-64; elsewhere (aarch64...) the core
 * is the portable C path alone and ouro_simd() says generic. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define OURO_X86_SIMD 1
#endif

/* SIMD path chosen at run time from what the processor reports, lowered
 * (never raised) by the environment variable OURO_SIMD=generic|avx2|avx512
 * (amx, the default where there are tiles: see ouro_cpu_amx), read once.
 * Not x86-64: always generic.  ouro_simd_level() names it: "avx512", "avx2",
 * "generic". */
enum { OURO_SIMD_GENERIC = 1, OURO_SIMD_AVX2, OURO_SIMD_AVX512 };
int ouro_simd(void);
const char *ouro_simd_level(void);

/* AVX-512 BF16 dot products, and AVX-512 VNNI + VL int8 dot products, where
 * the processor has them and the SIMD level is avx512. */
bool ouro_cpu_bf16dp(void);
bool ouro_cpu_vnni(void);

/* AMX tiles with their BF16 and INT8 products (Intel Sapphire Rapids and
 * later), usable by this process: the processor has them, the SIMD level is
 * avx512 and not set by OURO_SIMD (OURO_SIMD=avx512 keeps the AVX-512 paths
 * alone, for tests and comparisons), and Linux granted the process the tile
 * data state (arch_prctl ARCH_REQ_XCOMP_PERM, asked once here; refused, for
 * one, where a signal stack of the process is too small for it).  Every
 * thread that uses the tiles loads its own tile configuration and releases
 * it when done. */
bool ouro_cpu_amx(void);

/* Number of processors (0 threads = this many). */
int ouro_default_threads(void);

#endif /* OURO_BASE_H */

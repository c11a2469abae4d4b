#!/usr/bin/env bash
# test/asan_pg_install.sh -- installs the PostgreSQL extension built with AddressSanitizer and
# UBSan on build-asan/libouro.a (used by test/asan_ext.sh through OURO_PG_INSTALL).
set -eu
cd "$(dirname "$0")/.."
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"
make -s -C pg_ext clean
make -s -C pg_ext install with_llvm=no CORE_LIB=../build-asan/libouro.a \
    PG_CFLAGS="-fopenmp $SAN" \
    SHLIB_LINK="../build-asan/libouro.a -Wl,--exclude-libs,ALL -lcjson -lutf8proc -lm -fopenmp $SAN"
make -s -C pg_ext clean

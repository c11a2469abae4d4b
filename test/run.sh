#!/usr/bin/env bash
# test/run.sh -- runs every test suite and prints the closing "N passed, N failed" line.
#
# Every suite prints TAP lines ("ok N - name" / "not ok N - name"); this script
# counts them.  A suite that exits non-zero without printing a failure is
# counted as one failure of its own, so a crash is never silent.
#
#   bash test/run.sh           the C suites on build/ and, when built, on build-asan/
#                              (AddressSanitizer), the kernel and golden tests again on
#                              the AVX2 and generic paths (and AVX-512 where the processor
#                              has AMX tiles), then every test/suites/*.sh
#   bash test/run.sh --asan    the C suites on build-asan/ only
#   bash test/run.sh --aarch64 the C suites on build-aarch64/ (make test-aarch64 cross-builds
#                              them), each under qemu-aarch64 with Debian's arm64 libraries
#                              (libc6:arm64, libgomp1:arm64, ...; QEMU_AARCH64 names another
#                              command).  Not the cross toolchain's own C library in
#                              /usr/aarch64-linux-gnu: its pthread_create hangs under
#                              Debian 12's qemu-user 7.2
set -u
cd "$(dirname "$0")/.."
builds="build build-asan"
runner=()
[ "${1:-}" = "--asan" ] && builds=build-asan
if [ "${1:-}" = "--aarch64" ]; then
    builds=build-aarch64
    # OpenMP workers wait passively: spinning threads only slow the emulation down
    export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
    read -r -a runner <<<"${QEMU_AARCH64:-qemu-aarch64 -L /}"
    if ! command -v "${runner[0]}" >/dev/null 2>&1; then
        echo "not ok - ${runner[0]} is not installed (Debian: qemu-user)"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
[ -f test/asan.supp ] && export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/test/asan.supp}

passed=0 failed=0
log=$(mktemp)
run_suite() {   # name, command...
    local name=$1; shift
    echo "=== $name"
    "$@" >"$log" 2>&1
    local rc=$?
    cat "$log"
    local p f
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^not ok ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $name exited with status $rc"
        f=1
    fi
    passed=$((passed + p)); failed=$((failed + f))
    echo "--- $name: $p passed, $f failed"
}

for B in $builds; do
    for t in "$B"/test/*; do
        [ -x "$t" ] || continue
        # test_threads reads each thread's signal mask in /proc: under qemu-user those are
        # the emulator's host threads (its own RCU thread blocks every signal), not the core's
        if [ ${#runner[@]} -gt 0 ] && [ "$(basename "$t")" = test_threads ]; then
            echo "ok - $B/test_threads # SKIP thread signal masks cannot be read under emulation"
            passed=$((passed + 1))
            continue
        fi
        OURO_TEST_BUILD=$B run_suite "$B/$(basename "$t")" "${runner[@]}" "$t"
    done
done
# Every SIMD path below the best one this processor has: the kernels' tests
# and the golden test again, forced through OURO_SIMD.  Where the processor
# has AMX tiles (the default path for bf16 weights), the AVX-512 path too.
if [ "$builds" = "build build-asan" ]; then
    levels="avx2 generic"
    grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null && levels="avx512 $levels"
    for level in $levels; do
        tests="build/test/test_math build/test/test_quant build/test/test_quant4 build/test/test_golden"
        # the invariant order and bf16 precision of the AVX-512 products (test_kernels)
        [ "$level" = avx512 ] && tests="$tests build/test/test_kernels"
        for t in $tests; do
            [ -x "$t" ] && OURO_SIMD=$level run_suite "$t (OURO_SIMD=$level)" "$t"
        done
    done
fi
if [ "$builds" = "build build-asan" ]; then
    for s in test/suites/*.sh; do
        [ -f "$s" ] && run_suite "$(basename "$s" .sh)" bash "$s"
    done
fi
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

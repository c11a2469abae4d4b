#!/usr/bin/env bash
# test/asan_ext.sh -- `make asan-ext`: the database extensions themselves under AddressSanitizer
# and UBSan, over their suites, once.  Slow (minutes), so not part of `make test`.
#
#   - SQLite: build-asan/ouro.so (core and extension built with -fsanitize=address,undefined)
#     loaded by Debian's Python with libasan preloaded, over test/sqlite/test_sqlite.py and
#     test/sqlite/test_safety.py (leak checking off: Python itself is not instrumented);
#   - PostgreSQL, only with OURO_ASAN_PG=1 (as root): the extension built the same way and
#     installed, the throw-away clusters of pg.sh and pg_safety.sh started with libasan
#     preloaded into the postmaster; any ASan or UBSan report in the servers' logs is a
#     failure.  Off by default: on Debian 12 (PostgreSQL 15, GCC 12's libasan) `postgres`
#     with libasan preloaded hangs before main's first line of its own (a deadlock on glibc's
#     _nl_state_lock in bindtextdomain, called by set_pglocale_pgservice), so no server
#     starts; and ASan refuses a runtime linked into the extension itself ("ASan runtime does
#     not come first in initial library list").  The normal build is installed again by the
#     next run of pg.sh (make test).
set -u
cd "$(dirname "$0")/.."
LIBASAN=$(gcc -print-file-name=libasan.so)
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"
failed=0
# instrumented code runs several times slower: the stop-latency checks get a wider bound
export OURO_TEST_STOP_BOUND_MS=${OURO_TEST_STOP_BOUND_MS:-20000}

echo "== SQLite extension under ASan ($LIBASAN)"
for t in test/sqlite/test_sqlite.py test/sqlite/test_safety.py; do
    log=$(mktemp)
    LD_PRELOAD=$LIBASAN ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0 \
        UBSAN_OPTIONS=print_stacktrace=1 OURO_SQLITE_EXT=build-asan/ouro.so \
        /usr/bin/python3 "$t" >"$log" 2>&1
    rc=$?
    grep -v '^ok ' "$log" | tail -40
    echo "$t: $(grep -c '^ok ' "$log") ok, $(grep -c '^not ok ' "$log") not ok, exit $rc"
    if [ $rc -ne 0 ] || grep -q 'ERROR: AddressSanitizer\|runtime error:' "$log"; then failed=1; fi
    rm -f "$log"
done

if [ "${OURO_ASAN_PG:-0}" = 1 ] && [ "$(id -u)" -eq 0 ] && command -v pg_config >/dev/null; then
    echo "== PostgreSQL extension under ASan"
    export OURO_PG_INSTALL="bash test/asan_pg_install.sh"
    export OURO_PG_SERVER_ENV="LD_PRELOAD=$LIBASAN ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:log_path=/tmp/ouro-asan-pg.log UBSAN_OPTIONS=print_stacktrace=1:log_path=/tmp/ouro-asan-pg.log"
    rm -f /tmp/ouro-asan-pg.log*
    for s in test/suites/pg.sh test/suites/pg_safety.sh; do
        bash "$s" >/tmp/ouro-asan-suite.log 2>&1
        rc=$?
        grep -v '^ok ' /tmp/ouro-asan-suite.log | tail -30
        echo "$s: $(grep -c '^ok ' /tmp/ouro-asan-suite.log) ok, $(grep -c '^not ok ' /tmp/ouro-asan-suite.log) not ok, exit $rc"
        [ $rc -eq 0 ] || failed=1
    done
    if ls /tmp/ouro-asan-pg.log* >/dev/null 2>&1; then
        echo "ASan/UBSan reports from the PostgreSQL servers:"
        head -60 /tmp/ouro-asan-pg.log*
        failed=1
    else
        echo "no ASan/UBSan report from the PostgreSQL servers"
    fi
    make -s -C pg_ext clean >/dev/null 2>&1
else
    echo "== PostgreSQL part skipped (OURO_ASAN_PG=1 runs it; see the top of this file for why it is off)"
fi
[ $failed -eq 0 ] && echo "asan-ext: clean" || echo "asan-ext: FAILED"
[ $failed -eq 0 ]

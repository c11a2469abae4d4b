#!/usr/bin/env bash
# test/asan_ext.sh -- `make asan-ext`: the database extensions themselves under AddressSanitizer
# and UBSan, over their suites, once.  Slow (minutes), so not part of `make test`.
#
#   - SQLite: build-asan/ouro.so (core and extension built with -fsanitize=address,undefined)
#     loaded by Debian's Python with libasan preloaded, over test/sqlite/test_sqlite.py and
#     test/sqlite/test_safety.py (leak checking off: Python itself is not instrumented);
#   - PostgreSQL, only with OURO_ASAN_PG=1 (as root): the extension built the same way and
#     installed once (test/asan_pg_install.sh), then pg.sh, pg_safety.sh and pg_batch.sh, whose
#     throw-away clusters start with libasan and build-asan/asan_preload.so preloaded into the
#     postmaster (only there: LD_PRELOAD is in the server's environment alone); any ASan or
#     UBSan report in the servers' logs is a failure.  asan_preload.so makes ASan start outside
#     glibc's gettext lock: without it `postgres` hangs in bindtextdomain before main's first
#     line (test/asan_preload.c says why).  The lock /tmp/ouro-pg-suite.lock is held on fd 9
#     for the whole part (the suites are told so by OURO_PG_LOCK_HELD=1), and the normal build
#     is installed again before it is released.
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
    exec 9>/tmp/ouro-pg-suite.lock
    flock 9
    # the normal build goes back into the server before the lock is released, however this ends
    restore_pg() {
        make -s -C pg_ext clean >/dev/null 2>&1
        if make -s -j2 >/tmp/ouro-asan-restore.log 2>&1 && make -s -C pg_ext install >>/tmp/ouro-asan-restore.log 2>&1; then
            echo "normal build of the PostgreSQL extension installed again"
        else
            tail -20 /tmp/ouro-asan-restore.log
            echo "FAILED to install the normal build again: run make && sudo make -C pg_ext install"
        fi
    }
    trap restore_pg EXIT
    trap "exit 1" INT TERM
    gcc -O1 -shared -fPIC -o build-asan/asan_preload.so test/asan_preload.c
    if ! bash test/asan_pg_install.sh >/tmp/ouro-asan-install.log 2>&1; then
        tail -20 /tmp/ouro-asan-install.log
        echo "asan-ext: FAILED (installing the ASan build of the PostgreSQL extension)"
        exit 1
    fi
    export OURO_PG_LOCK_HELD=1 OURO_PG_INSTALL=true OURO_TEST_SKIP_BIG_CALL=1
    export OURO_PG_SERVER_ENV="LD_PRELOAD=$LIBASAN:$PWD/build-asan/asan_preload.so ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:log_path=/tmp/ouro-asan-pg.log UBSAN_OPTIONS=print_stacktrace=1:log_path=/tmp/ouro-asan-pg.log"
    rm -f /tmp/ouro-asan-pg.log*
    # OURO_ASAN_PG_SUITES: a shorter list of suites
    for s in ${OURO_ASAN_PG_SUITES:-test/suites/pg.sh test/suites/pg_safety.sh test/suites/pg_batch.sh}; do
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
else
    echo "== PostgreSQL part skipped (OURO_ASAN_PG=1, as root, runs it)"
fi
[ $failed -eq 0 ] && echo "asan-ext: clean" || echo "asan-ext: FAILED"
[ $failed -eq 0 ]

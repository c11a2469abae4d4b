# test/tap.sh -- what every test/suites/*.sh script shares: TAP lines and the PostgreSQL lock.
#
# Sourced from the repository root after setting SUITE (the name each line carries):
#   SUITE=pg; . test/tap.sh
# ok / not_ok / check DESC CMD... print "ok N - SUITE: ..." lines (with TAP_T0 set, each ok
# also shows the seconds since then); finish exits non-zero when a check failed.

n=0 failed=0
ok()     { n=$((n + 1)); echo "ok $n - $SUITE: $*${TAP_T0:+ [$(( $(date +%s) - TAP_T0 )) s]}"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $SUITE: $*"; }
check()  { local desc=$1; shift; if "$@"; then ok "$desc"; else not_ok "$desc"; fi; }
finish() {
    [ -n "${suite_start:-}" ] && echo "# $(( $(date +%s) - suite_start )) s after the lock"
    [ "$failed" -eq 0 ]; exit $?
}

# The extension is installed into the one server the machine has: two suites (or two
# checkouts) running at once would replace each other's library, so they take turns on an
# flock held on fd 9 until the suite exits.  OURO_PG_LOCK_HELD=1: the caller already holds it
# on fd 9 for several suites (make asan-ext).  A server a suite starts must not inherit fd 9
# (start it with 9>&-), or the lock outlives the suite.
pg_suite_lock() {
    [ "${OURO_PG_LOCK_HELD:-0}" = 1 ] || exec 9>/tmp/ouro-pg-suite.lock
    local t; t=$(date +%s)
    flock 9
    echo "# waited $(( $(date +%s) - t )) s for /tmp/ouro-pg-suite.lock"
    suite_start=$(date +%s)
}

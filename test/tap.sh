# test/tap.sh -- what every test/suites/*.sh script shares: TAP lines, the PostgreSQL lock and
# the extension's install.
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

# pg_install_ext [TARGET...]: builds the make targets (default: core) and installs the
# extension into that server (as root, under pg_suite_lock); ok, or not_ok with the build's
# last lines and the suite ends.  OURO_PG_INSTALL: another install command (make asan-ext
# installs an ASan build and sets it to true).
pg_install_ext() {
    local log; log=$(mktemp)
    if { make -s "${@:-core}" && ${OURO_PG_INSTALL:-make -s -C pg_ext install}; } >"$log" 2>&1; then
        rm -f "$log"
        ok "make -C pg_ext install"
    else
        tail -20 "$log"
        rm -f "$log"
        not_ok "make -C pg_ext install"
        finish
    fi
}

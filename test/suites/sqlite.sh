#!/usr/bin/env bash
# test/suites/sqlite.sh -- the SQLite extension's suites (test/sqlite/test_sqlite.py, then
# test/sqlite/test_safety.py), run from the repo root.
#
# Uses Debian's /usr/bin/python3: its sqlite3 module can load extensions (some
# other Python builds are compiled without that).  Prints TAP lines; exits
# non-zero when a check fails.
set -u
cd "$(dirname "$0")/../.."
if [ ! -f build/ouro.so ] || [ ! -x build/ouro ]; then
    echo "not ok 1 - sqlite: build/ouro.so and build/ouro are needed (run make)"
    exit 1
fi
/usr/bin/python3 test/sqlite/test_sqlite.py
rc=$?
/usr/bin/python3 test/sqlite/test_safety.py || rc=1
exit $rc

#!/usr/bin/env bash
# test/suites/version.sh -- every place that states the version agrees: the runtime's
# OURO_VERSION (core/ouro.h), the extension's default_version (pg_ext/ouro.control), its install
# script, PGXN's META.json, debian/changelog and the newest entry of CHANGELOG.md.
# Prints TAP lines; exits non-zero on a failure.
set -u
cd "$(dirname "$0")/../.."
n=0 failed=0
check() {
    local desc=$1; shift
    n=$((n + 1))
    if "$@"; then echo "ok $n - version: $desc"; else echo "not ok $n - version: $desc"; failed=$((failed + 1)); fi
}
v=$(sed -nE 's/^#define OURO_VERSION "([^"]+)".*/\1/p' core/ouro.h)
check "core/ouro.h states OURO_VERSION ($v)" test -n "$v"
check "pg_ext/ouro.control: default_version = '$v'" grep -Eq "^default_version *= *'$v'" pg_ext/ouro.control
check "sql/ouro--$v.sql exists and pg_ext/Makefile installs it" \
    bash -c "[ -f sql/ouro--$v.sql ] && grep -q 'ouro--$v.sql' pg_ext/Makefile"
check "every sql/ouro--*.sql script is installed by pg_ext/Makefile" \
    bash -c 'for f in sql/ouro--*.sql; do grep -q "$(basename "$f")" pg_ext/Makefile || exit 1; done'
check "META.json is JSON of version $v, its provides.ouro too" \
    python3 -c "import json, sys; m = json.load(open('META.json')); sys.exit(not (m['version'] == m['provides']['ouro']['version'] == '$v'))"
check "debian/changelog's newest entry is $v" \
    bash -c "head -1 debian/changelog | grep -q '^ouro ($v\\(-[0-9]*\\)\\?) '"
check "CHANGELOG.md's newest entry is $v" \
    bash -c "grep -m1 '^## ' CHANGELOG.md | grep -q '^## $v\\b'"
[ "$failed" -eq 0 ]

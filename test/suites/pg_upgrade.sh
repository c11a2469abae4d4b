#!/usr/bin/env bash
# test/suites/pg_upgrade.sh -- every released version of the extension updates to the current
# one (ouro.control's default_version) and then equals a fresh install.
#
# Run from the repo root by test/run.sh (as root: it installs the extension with
# `make -C pg_ext install`).  On a throw-away cluster (initdb in a temporary folder, own socket,
# no TCP, library not preloaded), for each version V that has an install script sql/ouro--V.sql
# other than the current one:
#   - CREATE EXTENSION ouro VERSION 'V' works with the current ouro.so (every C function its
#     script names still exists), and a model registered then answers;
#   - ALTER EXTENSION ouro UPDATE reaches the current version;
#   - the schema then equals a fresh install's: `pg_dump --schema-only --binary-upgrade` (the
#     mode that writes out every object of an extension, not just CREATE EXTENSION) of both
#     databases, less the lines that carry object ids, are the same;
#   - the registered models survive the update and still answer.
# Prints TAP lines; exits non-zero on a failure.
set -u
cd "$(dirname "$0")/../.."
SUITE=pg_upgrade; . test/tap.sh

# Installs into the machine's one server installation: take turns with the other suites.
pg_suite_lock

PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=$($PG_CONFIG --bindir 2>/dev/null)
if [ "$(id -u)" -ne 0 ] || [ ! -x "$PGBIN/initdb" ]; then
    ok "extension upgrades # SKIP needs root and the PostgreSQL server (initdb)"
    finish
fi
pg_install_ext

current=$(sed -nE "s/^default_version *= *'([^']+)'.*/\1/p" pg_ext/ouro.control)
olds=$(ls sql/ | sed -nE 's/^ouro--([0-9][^-]*)\.sql$/\1/p' | grep -vx "$current" | sort -V)

TMP=$(mktemp -d /tmp/ouro-up.XXXXXX)
chmod 755 "$TMP"
PORT=54441
cleanup() {
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop 9>&- >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
cp -r test/data/models/tiny-mha-bf16 "$TMP/model"
chown -R postgres "$TMP"
if ! runuser -u postgres -- "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust --no-sync \
        >"$TMP/initdb.log" 2>&1; then
    cat "$TMP/initdb.log"
    not_ok "initdb"
    finish
fi
cat >>"$TMP/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$TMP'
port = $PORT
fsync = off
EOF
if ! runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/server.log" -w start \
        9>&- >/dev/null 2>&1; then
    cat "$TMP/server.log"
    not_ok "throw-away cluster started"
    finish
fi

pg() { "$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 -h "$TMP" -p "$PORT" -U postgres "$@" 2>&1; }
# The schema of a database, less what differs between any two databases: object ids and
# transaction ids (the binary_upgrade_* calls, the pg_class updates that set relfrozenxid),
# psql's \restrict keys, and SQL comments.
schema() {
    "$PGBIN/pg_dump" -h "$TMP" -p "$PORT" -U postgres --schema-only --binary-upgrade "$1" |
        grep -v -e 'binary_upgrade_' -e '^UPDATE pg_catalog.pg_class$' -e '^SET relfrozenxid = ' \
                -e "^WHERE oid = " -e '^\\\(un\)\?restrict ' -e '^--' -e '^$'
}

pg -d postgres -c "CREATE DATABASE fresh" >/dev/null
if out=$(pg -d fresh -c "CREATE EXTENSION ouro" -c "SELECT extversion FROM pg_extension WHERE extname = 'ouro'"); then
    check "CREATE EXTENSION ouro installs the default version $current" test "$(tail -1 <<<"$out")" = "$current"
else
    echo "$out" | sed 's/^/# /'
    not_ok "CREATE EXTENSION ouro (fresh $current)"
    finish
fi
schema fresh >"$TMP/fresh.sql"
check "pg_dump --binary-upgrade of a fresh install lists the extension's functions" \
    grep -q "ALTER EXTENSION ouro ADD FUNCTION" "$TMP/fresh.sql"

gen="SELECT length(ouro_generate('The capital of France is', max_tokens := 4, model := 'tiny')) > 0"
for v in $olds; do
    db="from_${v//./_}"
    pg -d postgres -c "CREATE DATABASE $db" >/dev/null
    out=$(pg -d "$db" -c "CREATE EXTENSION ouro VERSION '$v'" \
              -c "SELECT ouro_register_model('tiny', '$TMP/model')" -c "$gen")
    rc=$?
    echo "$out" | sed 's/^/# /'
    check "CREATE EXTENSION ouro VERSION '$v' with the current library; a registered model answers" \
        test "$rc" -eq 0 -a "$(tail -1 <<<"$out")" = t
    out=$(pg -d "$db" -c "ALTER EXTENSION ouro UPDATE" -c "SELECT extversion FROM pg_extension WHERE extname = 'ouro'")
    rc=$?
    echo "$out" | sed 's/^/# /'
    check "ALTER EXTENSION ouro UPDATE: $v to $current" test "$rc" -eq 0 -a "$(tail -1 <<<"$out")" = "$current"
    schema "$db" >"$TMP/$db.sql"
    if diff -u "$TMP/fresh.sql" "$TMP/$db.sql" >"$TMP/$db.diff"; then
        ok "after the update from $v the schema equals a fresh $current install ($(wc -l <"$TMP/fresh.sql") lines of pg_dump)"
    else
        head -60 "$TMP/$db.diff" | sed 's/^/# /'
        not_ok "after the update from $v the schema equals a fresh $current install"
    fi
    out=$(pg -d "$db" -c "SELECT name || '=' || path FROM ouro_models" -c "$gen")
    check "the registered model survives the update from $v and answers" \
        test "$out" = "tiny=$TMP/model"$'\n'"t"
done
[ -n "$olds" ] || ok "no earlier version to update from # SKIP"

check "no backend crashed" bash -c "! grep -q 'terminated by signal' '$TMP/server.log'"
finish

#!/usr/bin/env bash
# test/suites/pg_quickstart.sh -- the test of record for the README's PostgreSQL set-up: its
# steps performed as written, as a user does them, on fresh clusters made the Debian way.
#
# Run from the repo root by test/run.sh (as root: it installs the extension with
# `make -C pg_ext install` and makes clusters with pg_createcluster).  Twice, on a cluster
# without and then with shared_preload_libraries = 'ouro' (own port, own socket folder, data in
# a temporary folder; pg_dropcluster removes it):
#   - without preloading only: `make installcheck` against the stock cluster (a superuser role
#     for the current user, as a developer makes with createuser -s);
#   - the README's blocks marked quickstart:setup and quickstart:use, extracted from README.md
#     and run by psql as written (as `sudo -u postgres psql` does), the setup in one session and
#     the use in a new one; only the model folder /srv/models/ is replaced by a temporary one
#     holding the tiny test model;
#   - a model folder the server's user cannot read gives a hint naming that user;
#   - DROP EXTENSION drops the registered models (as the README says), then the README's
#     quickstart:uninstall block leaves no ouro setting in postgresql.auto.conf.
# Prints TAP lines; exits non-zero on a failure.
set -u
cd "$(dirname "$0")/../.."
SUITE=pg_quickstart; . test/tap.sh
ROOT=$PWD

# The extension is installed into the one server installation of the machine: runs take turns
# with the other suites that install it.  Servers are started with the lock's descriptor
# closed (9>&-), so that they never hold it.
pg_suite_lock

if [ "$(id -u)" -ne 0 ] || ! command -v pg_createcluster >/dev/null 2>&1; then
    ok "README quick start # SKIP needs root and postgresql-common (pg_createcluster)"
    finish
fi
PGVER=$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')

pg_install_ext core tool

# The README's fenced block that follows the line `<!-- quickstart:NAME ... -->`.
readme_block() {
    awk -v tag="<!-- quickstart:$1 " '
        index($0, tag) == 1 { found = 1; next }
        found && /^```/ { if (inside) exit; inside = 1; next }
        inside { print }' README.md
}
for b in setup use uninstall; do
    if [ -z "$(readme_block $b)" ]; then
        not_ok "README.md has a block marked quickstart:$b"
        finish
    fi
done

TMP=$(mktemp -d /tmp/ouro-qs.XXXXXX)
chmod 755 "$TMP"
CLUSTER=ouro_qs_$$
PORT=54431
SOCK=$TMP/sock
drop_cluster() {
    if pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}' | grep -qx "$PGVER/$CLUSTER"; then
        pg_dropcluster --stop "$PGVER" "$CLUSTER" 9>&- >/dev/null 2>&1
    fi
}
cleanup() { drop_cluster; rm -rf "$TMP"; }
trap cleanup EXIT

# The README's model folder /srv/models/ becomes $TMP/srv/models/, holding the tiny model.
mkdir -p "$TMP/srv/models"
cp -r test/data/models/tiny-mha-bf16 "$TMP/srv/models/Ouro-1.4B"
chmod -R a+rX "$TMP/srv"
srv() { sed "s#/srv/models/#$TMP/srv/models/#g"; }
readme_block setup | srv >"$TMP/setup.sql"
readme_block use | srv >"$TMP/use.sql"
readme_block uninstall | srv >"$TMP/uninstall.sql"
# A model folder under a folder only root may enter (as a home folder is).
mkdir -m 700 "$TMP/private"
cp -r test/data/models/tiny-mha-bf16 "$TMP/private/model"

# psql as the postgres user on the cluster's socket (peer authentication, as on Debian).
# psql runs as postgres from /: the checkout may sit in a folder only root can enter (mktemp -d),
# and psql's "could not change directory" would end up in the output the checks compare.
pg() { (cd / && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -d postgres "$@" 2>&1); }

for mode in plain preload; do
    opts=(-p "$PORT" -s "$SOCK" -d "$TMP/data-$mode" -l "$TMP/server-$mode.log" --start-conf=manual -q)
    [ "$mode" = preload ] && opts+=(-o "shared_preload_libraries=ouro")
    label="($mode: shared_preload_libraries $([ "$mode" = preload ] && echo "= 'ouro'" || echo unset))"
    if pg_createcluster "${opts[@]}" "$PGVER" "$CLUSTER" 9>&- >"$TMP/create.log" 2>&1 &&
       pg_ctlcluster "$PGVER" "$CLUSTER" start 9>&- >>"$TMP/create.log" 2>&1; then
        ok "pg_createcluster $PGVER $CLUSTER and start $label"
    else
        cat "$TMP/create.log" "$TMP/server-$mode.log" 2>/dev/null
        not_ok "pg_createcluster $PGVER $CLUSTER and start $label"
        drop_cluster
        continue
    fi

    if [ "$mode" = plain ]; then
        # make installcheck on the stock cluster, as the current user made a superuser.
        me=$(id -un)
        pg -c "CREATE ROLE \"$me\" SUPERUSER LOGIN" >/dev/null
        if PGHOST=$SOCK PGPORT=$PORT PGUSER=$me PGDATABASE=postgres make -s installcheck \
                >"$TMP/installcheck.log" 2>&1; then
            ok "make installcheck on a stock cluster $label: $(grep -Eo 'All [0-9]+ tests passed' "$TMP/installcheck.log")"
        else
            cat "$TMP/installcheck.log"
            [ -f build/pg_regress/regression.diffs ] && head -100 build/pg_regress/regression.diffs
            not_ok "make installcheck on a stock cluster $label"
        fi
    else
        # Preloaded: a fresh session knows the settings before any ouro call.
        check "preloaded: a new session shows ouro.batch_size before any ouro call" \
            test "$(pg -c "SHOW ouro.batch_size")" = 16
    fi

    # The README's set-up, in one session, then its use in a new one.
    out=$(pg -f "$TMP/setup.sql")
    check "README quickstart:setup runs as written $label" test $? -eq 0
    echo "$out" | sed 's/^/# /'
    out=$(pg -f "$TMP/use.sql")
    rc=$?
    echo "$out" | sed 's/^/# /'
    check "README quickstart:use in a new session gives text $label" \
        test "$rc" -eq 0 -a -n "$out"
    check "a new session knows ouro.model_path from postgresql.auto.conf $label" \
        test "$(pg -c "SHOW ouro.model_path")" = "$TMP/srv/models/Ouro-1.4B"

    # A folder the server's user cannot enter: the hint names that user.
    out=$(pg -c "SELECT ouro_register_model('private', '$TMP/private/model')")
    echo "$out" | sed 's/^/# /'
    check "an unreadable model folder gives a hint naming the server's user (postgres) $label" \
        grep -q 'HINT:  The database server runs as the operating system user "postgres"' <<<"$out"

    out=$(pg -c "CREATE ROLE qs_user_$mode" -c "SET ouro.model_path = '$TMP/private/model'" \
             -c "SET ROLE qs_user_$mode" -c "SELECT ouro_generate('Hi')")
    echo "$out" | sed 's/^/# /'
    check "the same for another role: a hint without the user's name $label" \
        bash -c 'grep -q "HINT:  The database server.s operating system user must be able to read" <<<"$1" &&
                 ! grep -q "\"postgres\"" <<<"$1"' _ "$out"

    # DROP EXTENSION drops the registrations with the extension's table.
    pg -c "SELECT ouro_register_model('tiny', '$TMP/srv/models/Ouro-1.4B')" >/dev/null
    out=$(pg -c "DROP EXTENSION ouro" -c "CREATE EXTENSION ouro" -c "SELECT count(*) FROM ouro_models")
    check "DROP EXTENSION drops the registered models $label" test "$(tail -1 <<<"$out")" = 0

    # The README's uninstall block.
    out=$(pg -f "$TMP/uninstall.sql")
    rc=$?
    echo "$out" | sed 's/^/# /'
    check "README quickstart:uninstall runs as written and leaves no ouro.* setting $label" \
        bash -c '[ "$1" -eq 0 ] && [ -z "$2" ] && ! grep -q "^ouro\." "$3"' _ "$rc" \
            "$(pg -c "SELECT extname FROM pg_extension WHERE extname = 'ouro'")" \
            "$TMP/data-$mode/postgresql.auto.conf"

    check "no backend crashed $label" bash -c "! grep -q 'terminated by signal' '$TMP/server-$mode.log'"
    drop_cluster
    check "pg_dropcluster removed the cluster $label" \
        bash -c "! pg_lsclusters -h | awk '{print \$2}' | grep -qx '$CLUSTER' && [ ! -d /etc/postgresql/$PGVER/$CLUSTER ]"
done

finish

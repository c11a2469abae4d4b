#!/usr/bin/env bash
# test/suites/deb.sh -- the Debian packages: built from the tree by `make deb`, lintian clean,
# installed with dpkg -i in place of the `make install` copy, used, purged.
#
# Run from the repo root by test/run.sh, as root (it installs packages).  Steps:
#   - make deb (debian/build.sh): postgresql-<v>-ouro, sqlite3-ouro and ouro in build/deb/;
#   - lintian finds no error or warning (its informational tags are printed);
#   - the extension's files installed by `make install` are set aside, the packages installed
#     with dpkg -i; on a throw-away cluster CREATE EXTENSION ouro and a generation with the tiny
#     test model work, as do /usr/bin/ouro and the SQLite extension from its packaged path;
#   - dpkg --purge removes the packages and every file they installed;
#   - the files set aside are put back, so the machine is left as it was found.
# Skipped (not failed) without root, dpkg-buildpackage or debhelper, or when a package of the
# same name is already installed (this test would replace it).
# Prints TAP lines; exits non-zero on a failure.
set -u
cd "$(dirname "$0")/../.."
SUITE=deb; . test/tap.sh

# The PostgreSQL extension's files are shared by every suite on the machine: take turns.
pg_suite_lock

PG_CONFIG=${PG_CONFIG:-pg_config}
if [ "$(id -u)" -ne 0 ] || ! command -v dpkg-buildpackage >/dev/null 2>&1 || ! command -v dh >/dev/null 2>&1 ||
   ! command -v "$PG_CONFIG" >/dev/null 2>&1; then
    ok "Debian packages # SKIP needs root, dpkg-dev, debhelper and PostgreSQL (make deps)"
    finish
fi
PGVER=$($PG_CONFIG --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
PGBIN=$($PG_CONFIG --bindir)
PKGLIB=$($PG_CONFIG --pkglibdir)
SHARE=$($PG_CONFIG --sharedir)
PKGS=(postgresql-$PGVER-ouro sqlite3-ouro ouro)
for p in "${PKGS[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        ok "Debian packages # SKIP $p is already installed on this machine"
        finish
    fi
done

TMP=$(mktemp -d /tmp/ouro-deb.XXXXXX)
chmod 755 "$TMP"
PORT=54451

# --- build and lintian ----------------------------------------------------------------------

start=$(date +%s)
if make -s deb >"$TMP/deb.log" 2>&1; then
    ok "make deb ($(( $(date +%s) - start )) s): $(cd build/deb && ls *.deb | tr '\n' ' ')"
else
    tail -40 "$TMP/deb.log"
    not_ok "make deb"
    rm -rf "$TMP"
    finish
fi
debs=()
for p in "${PKGS[@]}"; do
    f=$(ls build/deb/"${p}"_*.deb 2>/dev/null | head -1)
    if [ -n "$f" ]; then debs+=("$f"); else not_ok "make deb built $p"; fi
done
[ ${#debs[@]} -eq ${#PKGS[@]} ] || { rm -rf "$TMP"; finish; }
if command -v lintian >/dev/null 2>&1; then
    sed 's/^/# /' build/deb/lintian.txt
    check "lintian: no error or warning" bash -c "! grep -q '^[EW]:' build/deb/lintian.txt"
else
    not_ok "lintian is not installed (make deps)"
fi

# --- the make-install copy aside, the packages in ---------------------------------------------

# Everything `make install` puts into the server's folders (the library, its JIT bitcode, the
# control file and the scripts), saved with their paths to be put back at the end.
installed=$(ls -d "$PKGLIB/ouro.so" "$PKGLIB/bitcode/ouro" "$PKGLIB/bitcode/ouro.index.bc" \
                  "$SHARE/extension/ouro.control" "$SHARE"/extension/ouro--*.sql 2>/dev/null)
if [ -n "$installed" ]; then
    tar -cPf "$TMP/make-install.tar" $installed
    rm -rf $installed
fi
restore() {
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' &&
            dpkg --purge "$p" >/dev/null 2>&1
    done
    [ -f "$TMP/make-install.tar" ] && tar -xPf "$TMP/make-install.tar"
    [ -f "$TMP/data/postmaster.pid" ] &&
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop 9>&- >/dev/null 2>&1
    rm -rf "$TMP"
}
trap restore EXIT

if dpkg -i "${debs[@]}" >"$TMP/dpkg.log" 2>&1; then
    ok "dpkg -i ${PKGS[*]}"
else
    cat "$TMP/dpkg.log"
    not_ok "dpkg -i ${PKGS[*]}"
    finish
fi
check "the packages own the extension's files" \
    bash -c "dpkg -S '$PKGLIB/ouro.so' '$SHARE/extension/ouro.control' | grep -q postgresql-$PGVER-ouro"

# --- use them ---------------------------------------------------------------------------------

cp -r test/data/models/tiny-mha-bf16 "$TMP/model"
chown -R postgres "$TMP"
if runuser -u postgres -- "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust --no-sync >"$TMP/initdb.log" 2>&1 &&
   printf "listen_addresses = ''\nunix_socket_directories = '%s'\nport = %s\nfsync = off\n" "$TMP" "$PORT" \
       >>"$TMP/data/postgresql.conf" &&
   runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/server.log" -w start 9>&- >/dev/null 2>&1; then
    out=$("$PGBIN/psql" -X -At -v ON_ERROR_STOP=1 -h "$TMP" -p "$PORT" -U postgres -d postgres 2>&1 <<EOF
CREATE EXTENSION ouro;
SELECT extversion FROM pg_extension WHERE extname = 'ouro';
SET ouro.model_path = '$TMP/model';
SET ouro.threads = 1;
SELECT 'generated:' || (length(ouro_generate('The capital of France is', max_tokens := 4)) > 0);
EOF
)
    echo "$out" | sed 's/^/# /'
    check "packaged extension: CREATE EXTENSION ouro and a generation" grep -qx "generated:true" <<<"$out"
else
    cat "$TMP/initdb.log" "$TMP/server.log" 2>/dev/null
    not_ok "throw-away cluster for the packaged extension"
fi
check "packaged tool: /usr/bin/ouro version" bash -c "/usr/bin/ouro version | grep -q '^ouro '"
sqlite_so=$(dpkg -L sqlite3-ouro | grep '/ouro\.so$')
if command -v sqlite3 >/dev/null 2>&1; then
    out=$(sqlite3 :memory: ".load ${sqlite_so%.so}" "SELECT ouro_version();" 2>&1)
    check "packaged SQLite extension loads from $sqlite_so in the sqlite3 shell (ouro_version() = $out)" \
        grep -Eqx '[0-9]+\.[0-9]+\.[0-9]+' <<<"$out"
else
    not_ok "the sqlite3 shell is not installed (make deps)"
fi

# --- purge, and the machine as it was ---------------------------------------------------------

files=$(dpkg -L "${PKGS[@]}" 2>/dev/null | grep -E '\.(so|sql|control|bc)$|/usr/bin/ouro$')
if dpkg --purge "${PKGS[@]}" >"$TMP/purge.log" 2>&1; then
    left=$(for f in $files; do [ -e "$f" ] && echo "$f"; done)
    check "dpkg --purge removes the packages and their files" test -z "$left"
else
    cat "$TMP/purge.log"
    not_ok "dpkg --purge ${PKGS[*]}"
fi
restore
trap - EXIT
if [ -n "$installed" ]; then
    back=yes
    for f in $installed; do [ -e "$f" ] || back=no; done
    check "the make-install copy is back" test "$back" = yes
fi
finish

#!/usr/bin/env bash
# test/suites/pg.sh -- the PostgreSQL extension's suite, run from the repo root by test/run.sh.
#
# Installs the extension (as root: `make -C pg_ext install`), starts a throw-away
# cluster in a temporary folder (unix socket there, no TCP; owned by the
# `postgres` user when run as root, else by the current user), then runs:
#   - pg_regress: test/sql/*.sql against test/expected/*.out;
#   - multi-process tests: statement_timeout stops a generation (and an
#     ouro_generate_batch) promptly and the backend stays usable; a parallel plan gives the serial plan's results; two
#     backends use one model at once; the postmaster (which preloads the
#     library) runs no extra thread;
# and stops and removes the cluster.  Prints TAP lines; exits non-zero on a failure.
#
#   bash test/suites/pg.sh           the suite
#   OURO_PG_KEEP=1 bash ...          leaves the cluster running (prints how to reach it)
set -u
cd "$(dirname "$0")/../.."
SUITE=pg; . test/tap.sh
ROOT=$PWD

# The extension is installed into the one server the machine has: two checkouts running
# this suite at once would replace each other's library, so runs take turns.
pg_suite_lock

# --- PostgreSQL and the extension -----------------------------------------------------------

PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || PGBIN=$($PG_CONFIG --bindir 2>/dev/null || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ] || ! command -v "$PG_CONFIG" >/dev/null 2>&1; then
    not_ok "PostgreSQL (initdb and pg_config) is not installed; run make deps"
    finish
fi
PG_REGRESS=$(dirname "$($PG_CONFIG --pgxs)")/../test/regress/pg_regress

if [ "$(id -u)" -eq 0 ]; then
    pg_install_ext
    RUNAS=(runuser -u postgres --)
    OWNER=postgres
else
    if [ -f "$($PG_CONFIG --sharedir)/extension/ouro.control" ]; then
        ok "extension is installed (not root: install skipped)"
    else
        not_ok "extension is not installed and installing needs root (sudo make install)"
        finish
    fi
    RUNAS=()
    OWNER=$(id -un)
fi

# --- the throw-away cluster -----------------------------------------------------------------

TMP=$(mktemp -d /tmp/ouro-pg.XXXXXX)
chmod 755 "$TMP"
DATA=$TMP/data
PORT=54329
cleanup() {
    if [ -z "${OURO_PG_KEEP:-}" ]; then
        "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1
        rm -rf "$TMP"
    else
        echo "# cluster kept: psql -h $TMP -p $PORT -U postgres postgres  (stop: pg_ctl -D $DATA stop)"
    fi
}
trap cleanup EXIT

# The server reads the models, so they are copied where its user can read them, with the
# fixtures the tests need (the q8 conversion, a corrupt copy): test/pg_fixtures.sh.
bash test/pg_fixtures.sh "$TMP/models" || not_ok "test/pg_fixtures.sh (model fixtures of the tests)"
mkdir -p "$TMP/regress"
chown -R "$OWNER" "$TMP"
MODELS=$TMP/models

if ! "${RUNAS[@]}" "$PGBIN/initdb" -D "$DATA" -U postgres -A trust --no-sync >"$TMP/initdb.log" 2>&1; then
    cat "$TMP/initdb.log"
    not_ok "initdb"
    finish
fi
cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$TMP'
port = $PORT
fsync = off
shared_preload_libraries = 'ouro'
max_worker_processes = 8
max_parallel_workers = 4
ouro.threads = 1
EOF
# OURO_PG_SERVER_ENV: VAR=value words for the server (make asan-ext preloads libasan)
if "${RUNAS[@]}" env ${OURO_PG_SERVER_ENV:-} "$PGBIN/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w start >/dev/null 2>&1 9>&-; then
    ok "throw-away cluster started (socket in $TMP, no TCP)"
else
    cat "$TMP/server.log"
    not_ok "throw-away cluster started"
    finish
fi

PSQL=("$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$TMP" -p "$PORT" -U postgres)
psql_db() { "${PSQL[@]}" -d "$@"; }

# The postmaster loaded the library (shared_preload_libraries) and must not have started threads.
pm_pid=$(head -1 "$DATA/postmaster.pid")
check "postmaster preloads ouro and runs one thread" \
    test "$(ls "/proc/$pm_pid/task" | wc -l)" -eq 1

# The GUCs are the core's table of settings (test/surface_gucs.py): names, types, defaults on this
# machine, ranges, values, units, who may set them, descriptions.
if [ -x build/ouro ]; then
    build/ouro sql-surface --json >"$TMP/surface.json"
    psql_db postgres -c "SELECT json_agg(json_build_object('name', name, 'vartype', vartype,
        'boot_val', boot_val, 'min_val', min_val, 'max_val', max_val, 'enumvals', enumvals,
        'context', context, 'unit', unit, 'short_desc', short_desc))
        FROM pg_settings WHERE name LIKE 'ouro.%' OR name = 'statement_timeout'" >"$TMP/gucs.json"
    out=$(/usr/bin/python3 test/surface_gucs.py "$TMP/surface.json" "$TMP/gucs.json" 2>&1)
    rc=$?
    [ -n "$out" ] && echo "$out" | sed 's/^/# /'
    check "the ouro.* GUCs are the core's table of settings (names, defaults, ranges, units, context)" \
        test "$rc" -eq 0
else
    ok "the ouro.* GUCs are the core's table # SKIP build/ouro is not built"
fi

# --- pg_regress -------------------------------------------------------------------------------

# The tests find the models through settings of the role they connect as.
psql_db postgres -c "ALTER ROLE postgres SET ouro.model_path = '$MODELS/tiny-mha-bf16'" || true
psql_db postgres -c "DROP DATABASE IF EXISTS ouro_regress" -c "CREATE DATABASE ouro_regress" 2>/dev/null
tests=$(cd test/sql && ls *.sql | sed 's/\.sql$//' | sort | tr '\n' ' ')
if "$PG_REGRESS" --use-existing --host="$TMP" --port="$PORT" --user=postgres \
        --inputdir=test --outputdir="$TMP/regress" --dbname=ouro_regress $tests \
        >"$TMP/regress.log" 2>&1; then
    ok "pg_regress: $tests"
else
    cat "$TMP/regress.log"
    [ -f "$TMP/regress/regression.diffs" ] && head -200 "$TMP/regress/regression.diffs"
    not_ok "pg_regress: $tests"
fi

# --- multi-process tests ----------------------------------------------------------------------

psql_db postgres -c "CREATE DATABASE ouro_mp" && psql_db ouro_mp <<'EOF' >/dev/null
CREATE EXTENSION ouro;
CREATE TABLE questions (id int PRIMARY KEY, prompt text);
INSERT INTO questions
SELECT i, (ARRAY['The capital of France is', 'Hi', 'Q: What is 17 * 23? A:',
                 'Once upon a time', 'SELECT 1'])[1 + i % 5] || ' #' || i
FROM generate_series(1, 24) AS i;
EOF

# statement_timeout: a long generation stops within a decode step or so, the same backend then
# works.  The model is loaded first, so that the time measured is the generation's alone.  With
# one thread the time is checked; with two (signals must still reach the backend's thread, not
# an OpenMP worker) only the cancel is, since on a loaded machine one decode step of a thread
# team can take long.
timeout_run() {   # threads
    psql_db ouro_mp 2>&1 <<EOF
SET ouro.threads = $1;
SET ouro.context_length = 8192;
SELECT 'loaded:' || ouro_token_count('Hi');
SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
SET statement_timeout = '500ms';
\\set ON_ERROR_STOP 0
SELECT length(ouro_generate('Once upon a time', max_tokens := 8000, max_loops := 16));
\\set ON_ERROR_STOP 1
RESET statement_timeout;
SELECT 'elapsed_ms:' || round((extract(epoch FROM clock_timestamp()) - :t0) * 1000);
SELECT 'usable:' || ouro_token_count('Hi');
EOF
}
for threads in 1 2; do
    out=$(timeout_run $threads)
    ms=$(sed -n 's/^elapsed_ms://p' <<<"$out")
    ms=${ms:-99999}
    echo "# statement_timeout, $threads thread(s): $(echo "$out" | tr '\n' ' ')"
    check "statement_timeout cancels a generation ($threads thread(s), ${ms} ms)" \
        grep -q "canceling statement due to statement timeout" <<<"$out"
    [ "$threads" -eq 1 ] && check "statement_timeout acts promptly (${ms} ms for a 500 ms timeout, < 1500 ms)" \
        test "$ms" -lt 1500
    check "the backend stays usable after the cancel ($threads thread(s))" grep -q "^usable:1$" <<<"$out"
done

# statement_timeout on a long ouro_generate_batch (8 prompts decoded together, one thread): the
# batched decode checks for the cancel between steps as the per-row form does; the backend then
# works, and a short batch runs in it.
batch_timeout_run() {
    psql_db ouro_mp 2>&1 <<EOF
SET ouro.threads = 1;
SET ouro.context_length = 8192;
SELECT 'loaded:' || ouro_token_count('Hi');
SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
SET statement_timeout = '500ms';
\\set ON_ERROR_STOP 0
SELECT array_length(ouro_generate_batch(array_agg(prompt ORDER BY id), max_tokens := 8000, max_loops := 16), 1)
FROM questions WHERE id <= 8;
\\set ON_ERROR_STOP 1
RESET statement_timeout;
SELECT 'elapsed_ms:' || round((extract(epoch FROM clock_timestamp()) - :t0) * 1000);
SELECT 'usable:' || ouro_token_count('Hi');
SELECT 'batch_after:' || array_length(ouro_generate_batch(ARRAY['Hi', 'SELECT 1'], max_tokens := 2), 1);
EOF
}
out=$(batch_timeout_run)
ms=$(sed -n 's/^elapsed_ms://p' <<<"$out")
ms=${ms:-99999}
echo "# statement_timeout, ouro_generate_batch: $(echo "$out" | tr '\n' ' ')"
check "statement_timeout cancels an ouro_generate_batch (${ms} ms)" \
    grep -q "canceling statement due to statement timeout" <<<"$out"
check "statement_timeout acts promptly on a batch (${ms} ms for a 500 ms timeout, < 1500 ms)" \
    test "$ms" -lt 1500
check "the backend stays usable after the batch cancel (ouro_token_count and a new batch run)" \
    bash -c 'grep -q "^usable:1$" <<<"$1" && grep -q "^batch_after:2$" <<<"$1"' _ "$out"

# Parallel plan == serial plan.
q="SELECT id, ouro_generate(prompt, max_tokens := 6), ouro_token_count(prompt), ouro_depth(prompt) FROM questions ORDER BY id"
serial=$(psql_db ouro_mp -c "SET max_parallel_workers_per_gather = 0" -c "$q" 2>&1)
par_settings=(-c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0"
              -c "SET min_parallel_table_scan_size = 0" -c "SET max_parallel_workers_per_gather = 2"
              -c "SET parallel_leader_participation = off" -c "SET enable_indexscan = off"
              -c "SET enable_bitmapscan = off")
plan=$(psql_db ouro_mp "${par_settings[@]}" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) $q" 2>&1)
parallel=$(psql_db ouro_mp "${par_settings[@]}" -c "$q" 2>&1)
echo "$plan" | sed 's/^/# /'
check "a parallel plan is used (Gather, workers launched)" \
    grep -Eq "Workers Launched: [1-9]" <<<"$plan"
check "parallel plan results equal the serial plan's (24 rows)" \
    test "$serial" = "$parallel" -a "$(wc -l <<<"$serial")" -eq 24

# Two backends use one model at once.
want=$(psql_db ouro_mp -c "SELECT string_agg(ouro_generate(prompt, max_tokens := 8), '|' ORDER BY id) FROM questions WHERE id <= 8")
psql_db ouro_mp -c "SELECT string_agg(ouro_generate(prompt, max_tokens := 8), '|' ORDER BY id) FROM questions WHERE id <= 8" >"$TMP/b1.out" 2>&1 &
p1=$!
psql_db ouro_mp -c "SELECT string_agg(ouro_generate(prompt, max_tokens := 8), '|' ORDER BY id) FROM questions WHERE id <= 8" >"$TMP/b2.out" 2>&1 &
p2=$!
wait "$p1"; r1=$?
wait "$p2"; r2=$?
check "two backends generate with one model at once, same results" \
    test "$r1" -eq 0 -a "$r2" -eq 0 -a "$(cat "$TMP/b1.out")" = "$want" -a "$(cat "$TMP/b2.out")" = "$want"

# Golden prompts give the same text as in the SQLite extension (when it is built).
if [ -f build/ouro.so ] && [ -x /usr/bin/python3 ]; then
    for m in "$MODELS"/tiny-*; do
        psql_db ouro_mp -c "SELECT ouro_register_model('$(basename "$m")', '$m')" >/dev/null
    done
    pg_md5=$(psql_db ouro_mp <<EOF
SELECT md5(string_agg(ouro_generate(c ->> 'prompt', max_tokens := 12, model := m), E'\x1f'
                      ORDER BY m COLLATE "C", c ->> 'name' COLLATE "C"))
FROM unnest(ARRAY['tiny-mha-bf16', 'tiny-gqa-f32-tied', 'tiny-mqa-f16-sharded']) AS m,
     jsonb_array_elements(pg_read_file('$MODELS/' || m || '/expected.json')::jsonb -> 'cases') AS c;
EOF
)
    sq_md5=$(/usr/bin/python3 - <<'EOF'
import hashlib, json, sqlite3
out = []
for m in sorted(['tiny-mha-bf16', 'tiny-gqa-f32-tied', 'tiny-mqa-f16-sharded']):
    db = sqlite3.connect(':memory:')
    db.enable_load_extension(True)
    db.load_extension('build/ouro')
    db.execute('SELECT ouro_load(?)', ('test/data/models/' + m,))
    cases = json.load(open('test/data/models/%s/expected.json' % m))['cases']
    for c in sorted(cases, key=lambda c: c['name'].encode()):
        out.append(db.execute('SELECT ouro_generate(?, NULL, 12)', (c['prompt'],)).fetchone()[0])
print(hashlib.md5('\x1f'.join(out).encode()).hexdigest())
EOF
)
    check "golden texts equal the SQLite extension's ($pg_md5 = $sq_md5)" test -n "$pg_md5" -a "$pg_md5" = "$sq_md5"
else
    ok "golden texts equal the SQLite extension's # SKIP build/ouro.so not built"
fi

# The server survived everything (no backend crashed: no "terminated by signal" in the log).
check "no backend crashed" bash -c "! grep -q 'terminated by signal' '$TMP/server.log'"

finish

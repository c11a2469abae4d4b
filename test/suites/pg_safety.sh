#!/usr/bin/env bash
# test/suites/pg_safety.sh -- the PostgreSQL extension inside a server that must keep serving:
# multi-process tests of what ouro guarantees the server, run from the repo root by test/run.sh.
#
# Installs the extension (as root), starts a throw-away cluster (its own port and socket
# folder), then checks:
#   - a model file truncated under a running statement: that statement fails with an error
#     naming the file, another session's statement finishes, the postmaster did not restart,
#     and the next call loads the folder again;
#   - cancel, statement_timeout, pg_terminate_backend and a lost client (with
#     client_connection_check_interval) stop a long prefill and a long classification each
#     within STOP_BOUND_MS;
#   - an ordinary role cannot raise or pass any ouro.limit_* ceiling;
#   - an idle backend holds no session bigger than 64 MiB after a big call (RssAnon checked);
#   - returned text never holds a NUL: a decoded 0x00 survives pg_dump and restore;
#   - model paths are shown to superusers only, errors about files never quote their bytes,
#     an empty stop string is an argument error even under ouro.on_error = null.
# Prints TAP lines; exits non-zero on a failure.
set -u
cd "$(dirname "$0")/../.."
SUITE=pg_safety; . test/tap.sh

# The extension is installed into the one server the machine has: runs take turns (pg.sh too).
pg_suite_lock

# cancel / timeout / terminate / disconnect to stop, on the test models (make asan-ext raises it:
# instrumented code is slower)
STOP_BOUND_MS=${OURO_TEST_STOP_BOUND_MS:-1500}

PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || PGBIN=$($PG_CONFIG --bindir 2>/dev/null || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    not_ok "PostgreSQL (initdb) is not installed; run make deps"
    finish
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ok 1 - pg_safety # SKIP needs root (installs the extension, runs the server as postgres)"
    exit 0
fi
pg_install_ext

TMP=$(mktemp -d /tmp/ouro-pg-safety.XXXXXX)
chmod 755 "$TMP"
DATA=$TMP/data
PORT=54339
cleanup() {
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

MODELS=$TMP/models
mkdir -p "$MODELS"
for m in victim other; do cp -r test/data/models/tiny-mha-bf16 "$MODELS/$m"; done
# A "model" whose weights file is the server's pg_control (added once the cluster exists).
mkdir -p "$MODELS/notmodel"
cp test/data/models/tiny-mha-bf16/config.json "$MODELS/notmodel/"
chown -R postgres "$TMP"

if ! runuser -u postgres -- "$PGBIN/initdb" -D "$DATA" -U postgres -A trust --no-sync >"$TMP/initdb.log" 2>&1; then
    cat "$TMP/initdb.log"
    not_ok "initdb"
    finish
fi
ln -s "$DATA/global/pg_control" "$MODELS/notmodel/model.safetensors"
cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$TMP'
port = $PORT
fsync = off
shared_preload_libraries = 'ouro'
ouro.threads = 1
EOF
# 9>&- : the server must not inherit the suite's lock
# OURO_PG_SERVER_ENV: VAR=value words for the server (make asan-ext preloads libasan)
if runuser -u postgres -- env ${OURO_PG_SERVER_ENV:-} "$PGBIN/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w start >/dev/null 2>&1 9>&-; then
    ok "throw-away cluster started"
else
    cat "$TMP/server.log"
    not_ok "throw-away cluster started"
    finish
fi
PSQL=("$PGBIN/psql" -X -q -At -h "$TMP" -p "$PORT" -d ouro_safety)
sql()  { "${PSQL[@]}" -U postgres -v ON_ERROR_STOP=1 "$@"; }
usql() { "${PSQL[@]}" -U ouro_user "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

"$PGBIN/psql" -X -q -h "$TMP" -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE ouro_safety"
sql <<EOF >/dev/null
CREATE EXTENSION ouro;
SELECT ouro_register_model('victim', '$MODELS/victim');
SELECT ouro_register_model('other', '$MODELS/other');
SELECT ouro_register_model('notmodel', '$MODELS/notmodel');
ALTER DATABASE ouro_safety SET ouro.model_path = '$MODELS/other';
CREATE ROLE ouro_user LOGIN;
EOF
pm_pid=$(head -1 "$DATA/postmaster.pid")
pm_start=$(sql -c "SELECT pg_postmaster_start_time()")

# Long work on the tiny model: a 3490-token prompt prefilled at 16 loop steps (about 2.4 s on
# one core here), a 7891-token one (LONGER, in a context of 8192: about 6 s on two cores) that
# must still be running after 2 s, and a classification whose labels are 200 words each, scored
# in one forward call of their tokens (about 3.3 s on two cores; at 100 words a label it took
# 0.9 s once attention took four rows at a time, less than the 1.5 s the stops wait).
LONG="(SELECT string_agg('word' || i, ' ') FROM generate_series(0, 899) AS i)"
LONGER="(SELECT string_agg('word' || i, ' ') FROM generate_series(0, 1799) AS i)"
LABELS="(SELECT array_agg('label ' || k || ' ' || (SELECT string_agg('w' || i, ' ') FROM generate_series(0, 199) AS i)) FROM generate_series(1, 4) AS k)"
PREFILL="SELECT length(ouro_generate($LONG, max_loops := 16, max_tokens := 1))"
CLASSIFY="SELECT ouro_classify('x', $LABELS, NULL, 16)"

# --- 1. a model file truncated under a running statement ------------------------------------

(sql -v ON_ERROR_STOP=0 -c "SET ouro.threads = 2" -c "SET ouro.context_length = 8192" \
     -c "SELECT length(ouro_generate($LONGER, max_loops := 16, max_tokens := 1, model := 'victim'))" \
     -c "\\! cp test/data/models/tiny-mha-bf16/model.safetensors $MODELS/victim/" \
     -c "SELECT 'reloaded:' || length(ouro_generate('Hi', max_tokens := 2, model := 'victim'))" \
     >"$TMP/victim.out" 2>&1) &
victim=$!
(sql -c "SELECT 'other:' || length(ouro_generate($LONG, max_loops := 4, max_tokens := 1, model := 'other'))" \
     >"$TMP/other.out" 2>&1) &
other=$!
sleep 2
truncate -s 4096 "$MODELS/victim/model.safetensors"
wait "$victim"; wait "$other"
sed 's/^/# victim: /' "$TMP/victim.out"
check "truncated model file: the statement fails with an error naming the file" \
    grep -q 'model file ".*/victim/model.safetensors" was truncated or overwritten while in use' "$TMP/victim.out"
check "truncated model file: the same backend loads the restored folder again and generates" \
    grep -q '^reloaded:' "$TMP/victim.out"
check "truncated model file: another session's statement finished" grep -q '^other:' "$TMP/other.out"
check "truncated model file: the postmaster did not restart" \
    test "$(head -1 "$DATA/postmaster.pid")" = "$pm_pid" -a "$(sql -c "SELECT pg_postmaster_start_time()")" = "$pm_start"
check "truncated model file: no backend was terminated by a signal" \
    bash -c "! grep -q 'terminated by signal' '$TMP/server.log'"

# --- 2. cancel, timeout, terminate, lost client, each within STOP_BOUND_MS ------------------

# Waits until no backend has application_name $1; prints the milliseconds since $2.
wait_gone() {
    local i
    for i in $(seq 1 600); do
        [ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1'")" = 0 ] && break
        sleep 0.02
    done
    echo $(( $(now_ms) - $2 ))
}
stop_run() {   # kind workload-name sql
    local kind=$1 what=$2 q=$3 app="ouro_stop_$1_$2" out="$TMP/stop.out" t0 ms pid
    if [ "$kind" = timeout ]; then
        t0=$(now_ms)
        PGAPPNAME=$app sql -v ON_ERROR_STOP=0 -c "SELECT ouro_token_count('Hi')" \
            -c "SET statement_timeout = '1s'" -c "$q" >"$out" 2>&1
        ms=$(( $(now_ms) - t0 - 1000 ))
        grep -q "canceling statement due to statement timeout" "$out" || ms=99999
    else
        local opts=()
        [ "$kind" = disconnect ] && opts=(-c "SET client_connection_check_interval = '100ms'")
        # psql itself in the background (not a function's subshell): $! is the client to kill
        PGAPPNAME=$app "${PSQL[@]}" -U postgres "${opts[@]}" -c "$q" >"$out" 2>&1 &
        pid=$!
        sleep 1.5
        local running
        running=$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app' AND state = 'active' AND query LIKE '%ouro_%'")
        t0=$(now_ms)
        case $kind in
        cancel)     sql -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = '$app'" >/dev/null ;;
        terminate)  sql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$app'" >/dev/null ;;
        disconnect) kill -9 "$pid" ;;
        esac
        if [ "$kind" = cancel ]; then
            wait "$pid"
            ms=$(( $(now_ms) - t0 ))
            grep -q "canceling statement due to user request" "$out" || ms=99999
        else
            ms=$(wait_gone "$app" "$t0")
            wait "$pid" 2>/dev/null
        fi
        [ "$running" = 1 ] || ms=99999   # the statement was not running when asked to stop
    fi
    echo "# $kind during $what: stopped ${ms} ms after the request ($(tr '\n' ' ' <"$out" | cut -c1-160))"
    check "$kind stops a $what within ${STOP_BOUND_MS} ms (${ms} ms)" test "$ms" -lt "$STOP_BOUND_MS"
}
for kind in cancel timeout terminate disconnect; do
    stop_run $kind prefill "$PREFILL"
    stop_run $kind classification "$CLASSIFY"
done
check "stopped statements left the server serving (postmaster not restarted, no signal deaths)" \
    bash -c "test \"\$(head -1 '$DATA/postmaster.pid')\" = '$pm_pid' && ! grep -q 'terminated by signal' '$TMP/server.log'"

# --- 3. ceilings an ordinary role cannot exceed ---------------------------------------------

for limit in limit_memory limit_threads limit_batch_size limit_context_length limit_max_tokens limit_max_loops; do
    out=$(usql -c "SET ouro.$limit = 1000" 2>&1)
    check "an ordinary role cannot set ouro.$limit" grep -q "permission denied to set parameter" <<<"$out"
done
out=$(usql -c "SET ouro.threads = 1024" -c "SELECT ouro_generate('Hi', max_tokens := 1)" 2>&1)
check "ouro.threads above ouro.limit_threads (default: the processors) is refused" \
    grep -q "ouro.threads 1024 is above the limit ouro.limit_threads" <<<"$out"
sql >/dev/null <<EOF
ALTER DATABASE ouro_safety SET ouro.limit_max_tokens = 64;
ALTER DATABASE ouro_safety SET ouro.limit_max_loops = 4;
ALTER DATABASE ouro_safety SET ouro.limit_context_length = 4096;
ALTER DATABASE ouro_safety SET ouro.limit_batch_size = 8;
ALTER DATABASE ouro_safety SET ouro.limit_memory = '32MB';
EOF
out=$(usql -c "SELECT ouro_generate('Hi', max_tokens := 100)" 2>&1)
check "max_tokens above ouro.limit_max_tokens is refused" grep -q "max_tokens 100 is above the limit ouro.limit_max_tokens = 64" <<<"$out"
out=$(usql -c "SET ouro.max_tokens = 100" -c "SELECT ouro_generate('Hi')" 2>&1)
echo "# $out"
check "ouro.max_tokens above the ceiling is refused" grep -q "ouro.max_tokens 100 is above the limit" <<<"$out"
out=$(usql -c "SELECT ouro_generate('Hi', max_loops := 8, max_tokens := 1)" 2>&1)
echo "# $out"
check "max_loops above ouro.limit_max_loops is refused" grep -q "max_loops 8 is above the limit ouro.limit_max_loops = 4" <<<"$out"
out=$(usql -c "SET ouro.context_length = 8192" -c "SELECT ouro_generate('Hi', max_tokens := 1)" 2>&1)
echo "# $out"
check "ouro.context_length above ouro.limit_context_length is refused" grep -q "ouro.context_length 8192 is above the limit" <<<"$out"
out=$(usql -c "SET ouro.batch_size = 20" -c "SELECT ouro_generate_batch(ARRAY['Hi'], max_tokens := 1)" 2>&1)
check "ouro.batch_size above ouro.limit_batch_size is refused" grep -q "ouro.batch_size 20 is above the limit" <<<"$out"
out=$(usql -c "SELECT ouro_generate_batch(ARRAY['Hi', 'there'], max_tokens := 1)" 2>&1)
check "ouro.batch_size left at its default follows a lower ceiling" grep -q "^{" <<<"$out"
out=$(usql -c "SELECT ouro_classify('x', $LABELS, NULL, 4)" 2>&1)
echo "# $out"
check "memory above ouro.limit_memory is refused before allocating, saying asked and allowed" \
    grep -Eq "needs [0-9.]+ MiB .*the limit is 32.0 MiB" <<<"$out"
out=$(usql -c "SELECT length(ouro_generate('Hi', max_tokens := 2))" 2>&1)
check "within the ceilings the ordinary role generates" test "$out" -ge 0 2>/dev/null
sql -c "ALTER DATABASE ouro_safety RESET ALL" -c "ALTER DATABASE ouro_safety SET ouro.model_path = '$MODELS/other'" >/dev/null

# --- 4. an idle backend gives back a big call's memory --------------------------------------

# OURO_TEST_SKIP_BIG_CALL=1 (make asan-ext): the 16 x 400-token call takes over 10 minutes
# instrumented, so it is left out there.
if [ "${OURO_TEST_SKIP_BIG_CALL:-0}" = 1 ]; then
    ok "# SKIP an idle backend gives back a big call's memory (OURO_TEST_SKIP_BIG_CALL=1)"
else
    idle=$(sql <<'EOF' 2>&1
SET ouro.batch_size = 16;
SET ouro.context_length = 4096;
SELECT 'pid:' || pg_backend_pid();
BEGIN;
SELECT 'n:' || array_length(ouro_generate_batch(
    (SELECT array_agg((SELECT string_agg('w' || (i * k) % 997, ' ') FROM generate_series(1, 400) AS i))
     FROM generate_series(1, 16) AS k), max_loops := 8, max_tokens := 1), 1);
SELECT 'kv_in_call:' || (ouro_model_info() ->> 'session_kv_bytes');
SELECT 'rss_in_call:' || (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'RssAnon:\s+(\d+)'))[1];
COMMIT;
SELECT 'kv:' || (ouro_model_info() ->> 'session_kv_bytes');
SELECT 'rss:' || (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'RssAnon:\s+(\d+)'))[1];
EOF
)
    echo "# idle backend: $(tr '\n' ' ' <<<"$idle")"
    rss_kb=$(sed -n 's/^rss://p' <<<"$idle")
    kv_in=$(sed -n 's/^kv_in_call://p' <<<"$idle")
    check "the big call's session held more than 64 MiB of KV cache (${kv_in:-?} bytes) and is gone after it" \
        bash -c 'test "${1:-0}" -gt 67108864 && grep -q "^kv:0$" <<<"$2"' _ "$kv_in" "$idle"
    check "after that call the idle backend's anonymous memory is under 64 MiB (${rss_kb:-?} kB)" \
        test "${rss_kb:-999999}" -lt 65536
fi

# --- 5. no NUL in returned text -------------------------------------------------------------

sql >/dev/null <<'EOF'
CREATE TABLE answers AS SELECT ouro_detokenize(ARRAY[104, 190, 104]) AS t;
EOF
before=$(sql -c "SELECT octet_length(t) || ':' || md5(t) || ':' || (strpos(t, U&'\FFFD') > 0) FROM answers")
check "ouro_detokenize of a 0x00 token gives U+FFFD, no NUL ($before)" grep -q '^5:.*:true$' <<<"$before"
"$PGBIN/psql" -X -q -h "$TMP" -p "$PORT" -U postgres -d postgres -c "CREATE DATABASE ouro_restore"
"$PGBIN/pg_dump" -h "$TMP" -p "$PORT" -U postgres -t answers ouro_safety \
    | "$PGBIN/psql" -X -q -h "$TMP" -p "$PORT" -U postgres -d ouro_restore >/dev/null 2>&1
after=$("$PGBIN/psql" -X -q -At -h "$TMP" -p "$PORT" -U postgres -d ouro_restore \
    -c "SELECT octet_length(t) || ':' || md5(t) || ':' || (strpos(t, U&'\FFFD') > 0) FROM answers")
check "that text survives pg_dump and restore byte for byte ($after)" test -n "$after" -a "$before" = "$after"

# --- 6. paths, file contents in errors, argument errors -------------------------------------

out=$(usql -c "SHOW ouro.model_path" 2>&1)
check "an ordinary role cannot read ouro.model_path" grep -q "must be superuser" <<<"$out"
out=$(usql -c "SELECT ouro_model_info()" 2>&1)
check "ouro_model_info shows an ordinary role no server path" \
    bash -c "grep -q '\"path\": null' <<<\"\$1\" && ! grep -q '$TMP' <<<\"\$1\"" _ "$out"
out=$(sql -c "SELECT ouro_model_info() ->> 'path'" 2>&1)
check "ouro_model_info shows a superuser the path" test "$out" = "$MODELS/other"
out=$(usql -c "SELECT ouro_generate('Hi', model := 'notmodel')" 2>&1)
echo "# $out"
ctl=$(od -An -t u8 -N 8 "$DATA/global/pg_control" | tr -d ' ')
check "an error about a non-model file quotes none of its bytes and no server path" \
    bash -c "grep -q 'not a safetensors file' <<<\"\$1\" && ! grep -q '$ctl' <<<\"\$1\" && ! grep -q '$TMP' <<<\"\$1\"" _ "$out"
out=$(usql -c "SET ouro.on_error = 'null'" -c "SELECT ouro_generate('Hi', stop := ARRAY[''])" 2>&1)
check "an empty stop string is an argument error even under ouro.on_error = null" \
    grep -q "ERROR:  stop string 1 is empty" <<<"$out"

check "no backend crashed during the suite" bash -c "! grep -q 'terminated by signal' '$TMP/server.log'"
finish

#!/usr/bin/env bash
# test/bench/pg_batch.sh -- the per-row query in PostgreSQL with automatic batching, against the
# explicit ouro_generate_batch call and against batching off, from the repository root.
#
#   bash test/bench/pg_batch.sh [model_dir]    default models/synthetic/ouro-1.4b-q8 (make bench
#                                              writes it), else test/data/models/tiny-mha-bf16
#   ROWS=32 MAX_TOKENS=32 THREADS=0 bash test/bench/pg_batch.sh
#   SKIP_OFF=1 ...                             only the two batched queries (the third is slow)
#   ONLY_DEPTH=1 ...                           only the ouro_depth part (below)
#
# Installs the extension (root) and starts a throw-away cluster (socket in a temporary folder,
# no TCP, ouro preloaded), holding the lock the PostgreSQL suites take.  With OURO_BENCH_NO_INSTALL=1
# it installs nothing and takes no lock (for a machine whose server others use): the cluster loads
# pg_ext/ouro.so by its path and the functions come from sql/ouro--0.2.0.sql.  The three queries:
#   per-row, batched   SELECT id, ouro_generate(prompt, max_tokens := 32) FROM q   (ouro.auto_batch on)
#   explicit batch     SELECT ouro_generate_batch(array_agg(prompt ORDER BY id), max_tokens := 32) FROM q
#   per-row, off       the first query with ouro.auto_batch = off
# each in a new backend, after a warm-up there (one token for every prompt: the model is mapped
# and its weights touched); ouro.batch_size stays 16.  Prints rows/s and
# tokens/s of each and checks that the three give the same texts.  Then
# SELECT id, ouro_depth(prompt) FROM q with ouro.auto_batch on and off: rows/s of each, and
# whether the two give the same values.
set -eu
cd "$(dirname "$0")/../.."
MODEL=${1:-${OURO_MODEL:-models/synthetic/ouro-1.4b-q8}}
[ -f "$MODEL/config.json" ] || MODEL=test/data/models/tiny-mha-bf16
MODEL=$(cd "$MODEL" && pwd)
ROWS=${ROWS:-32}
MAX_TOKENS=${MAX_TOKENS:-32}
THREADS=${THREADS:-0}
PGBIN=/usr/lib/postgresql/15/bin
if [ "$(id -u)" -ne 0 ] || [ ! -x "$PGBIN/initdb" ]; then
    echo "pg_batch bench: needs root and PostgreSQL 15 (it installs the extension); skipped"
    exit 0
fi

TMP=$(mktemp -d /tmp/ouro-pg-bench.XXXXXX)
chmod 755 "$TMP"
LIB=ouro
if [ "${OURO_BENCH_NO_INSTALL:-0}" = 1 ]; then
    make -s core >/dev/null && make -s -C pg_ext >/dev/null
    cp pg_ext/ouro.so "$TMP/ouro.so"
    LIB=$TMP/ouro.so
else
    exec 9>/tmp/ouro-pg-suite.lock
    flock 9
    make -s core >/dev/null && make -s -C pg_ext install >/dev/null
fi
trap 'runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1; rm -rf "$TMP"' EXIT
chown postgres "$TMP"
runuser -u postgres -- "$PGBIN/initdb" -D "$TMP/data" -U postgres -A trust --no-sync >/dev/null
cat >>"$TMP/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$TMP'
port = 54338
fsync = off
shared_preload_libraries = '$LIB'
max_parallel_workers_per_gather = 0
ouro.model_path = '$MODEL'
ouro.threads = $THREADS
EOF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$TMP/data" -l "$TMP/server.log" -w start >/dev/null
q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$TMP" -p 54338 -U postgres -d postgres "$@"; }

if [ "$LIB" = ouro ]; then
    q -c "CREATE EXTENSION ouro" >/dev/null
else
    sed -e "s|MODULE_PATHNAME|$LIB|g" -e '/^\\echo/d' -e 's/pg_catalog.pg_extension_config_dump(.*)/1/' \
        sql/ouro--0.2.0.sql | q >/dev/null
fi
q >/dev/null <<EOF
CREATE TABLE q (id int PRIMARY KEY, prompt text);
INSERT INTO q
SELECT i, (ARRAY['The capital of France is', 'Once upon a time', 'Q: What is 17 * 23? A:', 'SELECT 1',
                 'The best way to learn is', 'In 1969, the first', 'def fib(n):', 'Dear customer,'])[1 + i % 8]
          || ' #' || i
FROM generate_series(1, $ROWS) AS i;
SELECT ouro_generate('warm up', max_tokens := 2);
EOF

# The backend's CPU time (utime + stime, clock ticks of 1/100 s) from /proc: on a shared machine
# it moves much less than the wall time.
CPU="(SELECT f[12]::bigint + f[13]::bigint FROM string_to_array(split_part(pg_read_file('/proc/' || pg_backend_pid() || '/stat'), ') ', 2), ' ') AS f)"
run() {   # label, settings, query -> prints the line; leaves the texts in $TMP/<label>.out
    local label=$1 set=$2 sql=$3 out t tokens
    out=$(q <<EOF
$set;
SELECT count(*) FROM unnest((SELECT ouro_generate_batch(array_agg(prompt), max_tokens := 1) FROM q));
SELECT extract(epoch FROM clock_timestamp()) AS t0, $CPU AS c0 \\gset
CREATE TEMP TABLE r AS $sql;
SELECT round(extract(epoch FROM clock_timestamp()) - :t0, 3) || ' ' || ($CPU - :c0) || ' ' || sum(ouro_token_count(a)) FROM r;
\\copy (SELECT * FROM r ORDER BY 1) TO '$TMP/$label.out'
EOF
)
    out=$(tail -1 <<<"$out")
    t=${out%% *} tokens=${out##* }
    cpu=$(awk -v s="$out" 'BEGIN { split(s, f, " "); print f[2] / 100 }')
    printf "%-18s %8.2f rows/s  %8.1f tokens/s  (%s s, %s tokens; backend CPU %s s: %.1f tokens per CPU second)\n" \
        "$label" "$(awk "BEGIN { print $ROWS / $t }")" "$(awk "BEGIN { print $tokens / $t }")" "$t" "$tokens" \
        "$cpu" "$(awk "BEGIN { print $tokens / $cpu }")"
    echo "$t" >"$TMP/$label.t"
    echo "$cpu" >"$TMP/$label.c"
}
# SELECT id, ouro_depth(prompt) FROM q in a new backend (after one depth call there), with the
# settings given: prints "seconds md5-of-the-values".
depth_run() {
    q <<EOF | tail -1
$1;
SELECT ouro_depth('warm up');
SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
CREATE TEMP TABLE d AS SELECT id, ouro_depth(prompt) AS v FROM q;
SELECT round(extract(epoch FROM clock_timestamp()) - :t0, 3) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM d;
EOF
}
depth_part() {
    local on off md_on md_off
    read -r on md_on <<<"$(depth_run "SET ouro.auto_batch = on")"
    read -r off md_off <<<"$(depth_run "SET ouro.auto_batch = off")"
    printf "ouro_depth per row, %s rows: batched %.2f rows/s (%s s), batching off %.2f rows/s (%s s): %.2fx   same values: %s\n" \
        "$ROWS" "$(awk "BEGIN { print $ROWS / $on }")" "$on" "$(awk "BEGIN { print $ROWS / $off }")" "$off" \
        "$(awk "BEGIN { print $off / $on }")" "$([ "$md_on" = "$md_off" ] && echo yes || echo no)"
}
if [ "${ONLY_DEPTH:-0}" = 1 ]; then
    echo "# PostgreSQL, model $MODEL, ouro.batch_size 16, threads ${THREADS/#0/all}"
    depth_part
    exit 0
fi

echo "# PostgreSQL, model $MODEL, $ROWS rows x $MAX_TOKENS new tokens, ouro.batch_size 16, threads ${THREADS/#0/all}"
run per-row-batched "SET ouro.auto_batch = on" \
    "SELECT id, ouro_generate(prompt, max_tokens := $MAX_TOKENS) AS a FROM q"
run explicit-batch "SET ouro.auto_batch = on" \
    "SELECT u.id, u.a FROM (SELECT unnest(array_agg(id ORDER BY id)) AS id,
            unnest(ouro_generate_batch(array_agg(prompt ORDER BY id), max_tokens := $MAX_TOKENS)) AS a FROM q) u"
if [ "${SKIP_OFF:-0}" = 1 ]; then   # the slow one, for a quick comparison of the batched two
    b=$(cat "$TMP/per-row-batched.t") e=$(cat "$TMP/explicit-batch.t")
    bc=$(cat "$TMP/per-row-batched.c") ec=$(cat "$TMP/explicit-batch.c")
    same=no
    cmp -s "$TMP/per-row-batched.out" "$TMP/explicit-batch.out" && same=yes
    printf "per-row batched / explicit batch: %.2fx wall, %.2fx CPU   same texts: %s\n" \
        "$(awk "BEGIN { print $e / $b }")" "$(awk "BEGIN { print $ec / $bc }")" "$same"
    exit 0
fi
run per-row-off "SET ouro.auto_batch = off" \
    "SELECT id, ouro_generate(prompt, max_tokens := $MAX_TOKENS) AS a FROM q"
same=no
cmp -s "$TMP/per-row-batched.out" "$TMP/explicit-batch.out" && cmp -s "$TMP/per-row-batched.out" "$TMP/per-row-off.out" && same=yes
b=$(cat "$TMP/per-row-batched.t") e=$(cat "$TMP/explicit-batch.t") o=$(cat "$TMP/per-row-off.t")
bc=$(cat "$TMP/per-row-batched.c") ec=$(cat "$TMP/explicit-batch.c") oc=$(cat "$TMP/per-row-off.c")
printf "speed of the per-row query batched: %.2fx the explicit batch call, %.2fx batching off (wall time)\n" \
    "$(awk "BEGIN { print $e / $b }")" "$(awk "BEGIN { print $o / $b }")"
printf "                                    %.2fx the explicit batch call, %.2fx batching off (backend CPU time)   same texts: %s\n" \
    "$(awk "BEGIN { print $ec / $bc }")" "$(awk "BEGIN { print $oc / $bc }")" "$same"
depth_part

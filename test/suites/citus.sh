#!/usr/bin/env bash
# test/suites/citus.sh -- ouro on a Citus cluster, run from the repo root by test/run.sh.
#
# Runs only where Citus is installed in the same PostgreSQL server as ouro (its
# citus.control in the server's extension folder); elsewhere it prints one
# "ok ... # SKIP" line and exits 0.  The project does not depend on Citus.
#
# Installs ouro (as root: `make -C pg_ext install`, under the same lock as
# test/suites/pg.sh), then starts three throw-away PostgreSQL instances on this
# machine, each with its own data folder and port and a unix socket in one
# temporary folder (no TCP): a coordinator and two workers, each preloading
# citus and ouro.  Each worker reads its own copy of the model (ouro.model_path
# in its postgresql.conf); the coordinator has no model at all, so any model
# work evaluated there would fail.  A plain database on worker 1, without
# Citus, gives the single-node results.  Then:
#   - the mission's queries on a distributed table (SELECT per row, enrichment
#     by CALL ouro_enrich on the coordinator (run on the shards, a bad row
#     listed on its worker, resumed), by ouro_update_shards, by an UPDATE
#     from a MATERIALIZED CTE, by
#     INSERT ... SELECT into a co-located table and by a distributed function,
#     classification, ouro_depth aggregated) equal the single-node results row
#     for row, and the plain UPDATE is refused by Citus as the README says;
#   - EXPLAIN (VERBOSE) shows the calls in the workers' task queries, and the
#     nodes' own function counters (track_functions) show that the workers ran
#     every call and the coordinator none;
#   - a worker without the model gives an error naming that worker, also
#     through ouro_update_shards and ouro_enrich, whose other shards commit;
#   - statement_timeout on the coordinator stops the workers' generations.
# Prints TAP lines; exits non-zero on a failure.
#
#   bash test/suites/citus.sh            the suite
#   OURO_CITUS_KEEP=1 bash ...           leaves the cluster running (prints how to reach it)
#   OURO_CITUS_BENCH=1 bash ...          then prints throughput on 1 node and on the cluster
#                                        (OURO_CITUS_BENCH_ROWS rows, default 96)
set -u
cd "$(dirname "$0")/../.."
SUITE=citus; . test/tap.sh

# --- PostgreSQL, Citus and ouro -------------------------------------------------------------

PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || PGBIN=$($PG_CONFIG --bindir 2>/dev/null || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ] || ! command -v "$PG_CONFIG" >/dev/null 2>&1; then
    ok "skipped (PostgreSQL is not installed) # SKIP"
    exit 0
fi
if [ ! -f "$($PG_CONFIG --sharedir)/extension/citus.control" ]; then
    ok "skipped (Citus not installed) # SKIP no citus.control in $($PG_CONFIG --sharedir)/extension"
    exit 0
fi

# ouro is installed into the one server the machine has, as test/suites/pg.sh does: runs take
# turns on this lock from the install to the end.
pg_suite_lock

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

# --- three instances: a coordinator and two workers -----------------------------------------

TMP=$(mktemp -d /tmp/ouro-citus.XXXXXX)
chmod 755 "$TMP"
# The sockets of all three live in $TMP, so the ports only need to differ from each other.
PORT_C=54341 PORT_W1=54342 PORT_W2=54343
NODES="c w1 w2"
port_of() { case $1 in c) echo $PORT_C ;; w1) echo $PORT_W1 ;; w2) echo $PORT_W2 ;; esac; }
cleanup() {
    if [ -z "${OURO_CITUS_KEEP:-}" ]; then
        for node in $NODES; do
            [ -f "$TMP/$node/postmaster.pid" ] &&
                "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$TMP/$node" -m immediate stop >/dev/null 2>&1
        done
        rm -rf "$TMP"
    else
        for node in $NODES; do
            echo "# $node kept: psql -h $TMP -p $(port_of $node) -U postgres ouro_citus  (stop: pg_ctl -D $TMP/$node stop)"
        done
    fi
}
trap cleanup EXIT

# Each worker has its own copy of the model, as separate machines would.
for node in w1 w2; do
    mkdir -p "$TMP/models-$node"
    cp -r test/data/models/tiny-mha-bf16 "$TMP/models-$node/"
done
chown -R "$OWNER" "$TMP"

for node in $NODES; do
    if ! "${RUNAS[@]}" "$PGBIN/initdb" -D "$TMP/$node" -U postgres -A trust --no-sync >"$TMP/initdb-$node.log" 2>&1; then
        cat "$TMP/initdb-$node.log"
        not_ok "initdb ($node)"
        finish
    fi
    # citus must come first in shared_preload_libraries.  track_functions counts the calls of
    # ouro's C functions on each node (pg_stat_user_functions).
    cat >>"$TMP/$node/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$TMP'
port = $(port_of $node)
cluster_name = 'ouro-citus-$node'
fsync = off
shared_buffers = 32MB
max_connections = 40
shared_preload_libraries = 'citus,ouro'
track_functions = 'all'
ouro.threads = 1
EOF
    [ "$node" != c ] && echo "ouro.model_path = '$TMP/models-$node/tiny-mha-bf16'" >>"$TMP/$node/postgresql.conf"
    if ! "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$TMP/$node" -l "$TMP/server-$node.log" -w start >/dev/null 2>&1; then
        cat "$TMP/server-$node.log"
        not_ok "instance $node started"
        finish
    fi
done
ok "coordinator and two workers started (sockets in $TMP, ports $PORT_C, $PORT_W1, $PORT_W2)"

PSQL=("$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$TMP" -U postgres)
on() { local node=$1 db=$2; shift 2; "${PSQL[@]}" -p "$(port_of "$node")" -d "$db" "$@"; }

# The cluster's database exists on every node before Citus links them; CREATE EXTENSION on the
# coordinator then reaches the workers (Citus propagates extensions to the nodes it knows).
for node in $NODES; do
    on "$node" postgres -c "CREATE DATABASE ouro_citus" || { not_ok "CREATE DATABASE ($node)"; finish; }
    on "$node" ouro_citus -c "CREATE EXTENSION citus" || { not_ok "CREATE EXTENSION citus ($node)"; finish; }
done
if on c ouro_citus >"$TMP/setup.log" 2>&1 <<EOF
SELECT citus_set_coordinator_host('$TMP', $PORT_C);
SELECT citus_add_node('$TMP', $PORT_W1);
SELECT citus_add_node('$TMP', $PORT_W2);
CREATE EXTENSION ouro;
EOF
then
    ok "citus_add_node for both workers, CREATE EXTENSION ouro"
else
    cat "$TMP/setup.log"
    not_ok "citus_add_node for both workers, CREATE EXTENSION ouro"
    finish
fi
check "ouro and Citus are installed on every node (run_command_on_all_nodes)" \
    test "$(on c ouro_citus -c "SELECT string_agg(result, ',' ORDER BY nodeid) FROM run_command_on_all_nodes(\$\$SELECT extversion FROM pg_extension WHERE extname = 'ouro'\$\$)")" \
        = "$(on c ouro_citus -c "SELECT string_agg(default_version, ',') FROM pg_available_extensions, generate_series(1, 3) WHERE name = 'ouro'")"
echo "# $(on c ouro_citus -c "SELECT citus_version()")"

# --- the tables: distributed on the cluster, local on one node for the reference -----------

ROWS=24
table_sql="CREATE TABLE questions (id int PRIMARY KEY, prompt text, answer text, label text);
INSERT INTO questions (id, prompt)
SELECT i, (ARRAY['The capital of France is', 'Hi', 'Q: What is 17 * 23? A:',
                 'Once upon a time', 'SELECT 1'])[1 + i % 5] || ' #' || i
FROM generate_series(1, $ROWS) AS i;"
# The single-node reference: a plain database (no Citus) on worker 1, with worker 1's model.
on w1 postgres -c "CREATE DATABASE single" && on w1 single -c "CREATE EXTENSION ouro" -c "$table_sql" \
    || { not_ok "single-node reference database"; finish; }
# Four shards, two on each worker; answers is co-located with questions.
on c ouro_citus -c "$table_sql" \
    -c "SELECT create_distributed_table('questions', 'id', shard_count := 4)" \
    -c "CREATE TABLE answers (id int PRIMARY KEY, answer text)" \
    -c "SELECT create_distributed_table('answers', 'id', colocate_with := 'questions')" >"$TMP/tables.log" 2>&1 \
    || cat "$TMP/tables.log"
placement=$(on c ouro_citus -c "SELECT string_agg(nodeport || ':' || n, ',' ORDER BY nodeport) FROM (SELECT nodeport, count(*) AS n FROM citus_shards WHERE table_name = 'questions'::regclass GROUP BY nodeport) s")
check "questions is distributed: 4 shards, 2 on each worker ($placement)" \
    test "$placement" = "$PORT_W1:2,$PORT_W2:2"

GEN="ouro_generate(prompt, max_loops := 4, max_tokens := 8)"
LABELS="ARRAY['question', 'story', 'code']"
CLS_Q="SELECT id, ouro_classify(prompt, $LABELS), ouro_classify_scores(prompt, $LABELS) FROM questions ORDER BY id"
# Two outputs of CLS_Q agree: the same ids and labels, scores within 1e-5 (batches of other
# sizes may move the last digits).  Prints the largest score difference.
same_classes() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
a, b = [[l.split('|', 2) for l in s.splitlines()] for s in sys.argv[1:3]]
worst, same = 0.0, len(a) == len(b) > 0
for x, y in zip(a, b):
    sx, sy = json.loads(x[2]), json.loads(y[2])
    same = same and x[:2] == y[:2] and sx.keys() == sy.keys()
    worst = max([worst] + [abs(sx[k] - sy.get(k, 1e9)) for k in sx])
print('%.1e' % worst)
sys.exit(0 if same and worst <= 1e-5 else 1)
EOF
}

# Calls of ouro's model functions counted by a node (track_functions).  Backends report them
# when they go idle (within a second) or exit, so a count is read once it has stopped changing.
calls_on() { on "$1" ouro_citus -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname LIKE 'ouro\\_%'"; }
settled_calls() {   # node, at least: prints the node's count once at least that and steady for 1 s
    local prev=-1 same=0 cur i
    for i in $(seq 1 40); do
        cur=$(calls_on "$1")
        if [ "$cur" = "$prev" ]; then same=$((same + 1)); else same=0; fi
        [ "$cur" -ge "$2" ] && [ "$same" -ge 4 ] && break
        prev=$cur
        sleep 0.33
    done
    echo "$cur"
}
calls_c0=$(calls_on c)

# --- SELECT per row ---------------------------------------------------------------------------

ref_gen=$(on w1 single -c "SELECT id, $GEN FROM questions ORDER BY id")
plan=$(on c ouro_citus -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT id, $GEN FROM questions" 2>&1)
echo "$plan" | sed 's/^/# /'
check "EXPLAIN (VERBOSE): the call is in the workers' task query, one task per shard" \
    bash -c 'grep -q "Task Count: 4" <<<"$1" && grep -q "Query: SELECT id, public.ouro_generate(prompt, 4, 8" <<<"$1" &&
             grep -q "Node: host=.* port=5434[23]" <<<"$1"' _ "$plan"
dist_gen=$(on c ouro_citus -c "SELECT id, $GEN FROM questions ORDER BY id" 2>&1)
check "SELECT id, ouro_generate(prompt, max_loops := 4) on the distributed table = single node ($ROWS rows)" \
    test "$dist_gen" = "$ref_gen" -a "$(wc -l <<<"$ref_gen")" -eq "$ROWS"
# Where ouro batches per-row calls (ouro.auto_batch), each worker batches its shards' rows.  The
# batching node computes the rows without one function call each, so the statements whose calls
# are counted below run with it turned off on the workers (a SET LOCAL that Citus passes on).
UNBATCHED=()
if [ "$(on w1 ouro_citus -c "SELECT count(*) FROM pg_settings WHERE name = 'ouro.auto_batch'")" = 1 ]; then
    check "EXPLAIN (VERBOSE): each worker batches its shard's rows (OuroBatch in the task's plan)" \
        grep -q "Custom Scan (OuroBatch)" <<<"$plan"
    UNBATCHED=(-c "SET citus.propagate_set_commands = 'local'" -c "BEGIN" -c "SET LOCAL ouro.auto_batch = off")
fi
unbatched() { on c ouro_citus "${UNBATCHED[@]}" -c "$1" ${UNBATCHED[0]:+-c COMMIT}; }
calls_w10=$(settled_calls w1 0) calls_w20=$(settled_calls w2 0)
out=$(unbatched "SELECT id, $GEN FROM questions ORDER BY id" 2>&1)
calls_w1=$(settled_calls w1 $((calls_w10 + 1))) calls_w2=$(settled_calls w2 $((calls_w20 + 1))) calls_c=$(calls_on c)
d1=$((calls_w1 - calls_w10)) d2=$((calls_w2 - calls_w20))
check "the workers ran the $ROWS calls (worker 1: $d1, worker 2: $d2), the coordinator none ($((calls_c - calls_c0))), same texts" \
    test $((d1 + d2)) -eq "$ROWS" -a "$d1" -gt 0 -a "$d2" -gt 0 -a "$calls_c" -eq "$calls_c0" -a "$out" = "$ref_gen"
out=$(on c ouro_citus -c "SELECT ouro_model_info()" 2>&1)
check "the coordinator has no model (ouro_model_info there: no model is configured)" \
    grep -q "no model is configured" <<<"$out"

# --- classification and depth ---------------------------------------------------------------------

ref_cls=$(on w1 single -c "$CLS_Q")
dist_cls=$(on c ouro_citus -c "$CLS_Q" 2>&1)
diff=$(same_classes "$ref_cls" "$dist_cls"); cls_rc=$?
check "ouro_classify and ouro_classify_scores per row on the distributed table = single node ($ROWS rows, scores within $diff)" \
    test "$cls_rc" -eq 0 -a "$(wc -l <<<"$ref_cls")" -eq "$ROWS"

ref_depth=$(on w1 single -c "SELECT round(avg(ouro_depth(prompt))::numeric, 9), count(*) FROM questions")
base=$(( $(settled_calls w1 0) + $(settled_calls w2 0) ))
dist_depth=$(unbatched "SELECT round(avg(d)::numeric, 9), count(*) FROM (SELECT ouro_depth(prompt) AS d FROM questions) s" 2>&1)
spent=$(( $(settled_calls w1 0) + $(settled_calls w2 0) - base ))
check "avg(ouro_depth) over a subquery: the workers' partial aggregates give the single-node mean ($dist_depth), one call per row ($spent)" \
    test "$dist_depth" = "$ref_depth" -a "$spent" -eq "$ROWS"
# avg(ouro_depth(prompt)) written directly is split by Citus into sum() and count() of the call:
# the same mean, at two calls per row (the README says to aggregate over a subquery).
dist_depth2=$(on c ouro_citus -c "SELECT round(avg(ouro_depth(prompt))::numeric, 9), count(*) FROM questions" 2>&1)
check "avg(ouro_depth(prompt)) written directly gives the same mean" test "$dist_depth2" = "$ref_depth"

# --- enrichment: UPDATE and INSERT ... SELECT ------------------------------------------------------

ref_upd=$(on w1 single -c "UPDATE questions SET answer = $GEN" -c "SELECT id, answer FROM questions ORDER BY id")
on w1 single -c "UPDATE questions SET answer = NULL"

out=$(on c ouro_citus -c "UPDATE questions SET answer = $GEN" 2>&1)
check "a plain UPDATE ... SET answer = ouro_generate(...) is refused by Citus (VOLATILE functions in UPDATE)" \
    grep -q "functions used in UPDATE queries on distributed tables must not be VOLATILE" <<<"$out"

# ouro_update_shards: each shard's UPDATE runs on its worker and commits there.
out=$(on c ouro_citus -c "SELECT sum(updated) || ':' || count(DISTINCT node) FROM ouro_update_shards('questions', 'answer = $GEN', 'answer IS NULL')" 2>&1)
dist_upd=$(on c ouro_citus -c "SELECT id, answer FROM questions ORDER BY id" 2>&1)
check "ouro_update_shards fills every row on both workers ($out) = single-node UPDATE" \
    test "$out" = "$ROWS:2" -a "$dist_upd" = "$ref_upd"
out=$(on c ouro_citus -c "SELECT coalesce(sum(updated), -1) FROM ouro_update_shards('questions', 'answer = $GEN', 'answer IS NULL')" 2>&1)
check "ouro_update_shards run again with answer IS NULL updates nothing ($out)" test "$out" = 0

# CALL ouro_enrich on the coordinator: the job runs on every shard, on its worker, with one bad
# row (an empty prompt) recorded in its worker's ouro_enrich_errors under the shard's name.
# Options with quotes and % travel intact (the stop string is never generated, so the texts stay).
on c ouro_citus -c "UPDATE questions SET answer = NULL" -c "UPDATE questions SET prompt = '' WHERE id = 3"
out=$(on c ouro_citus -c "CALL ouro_enrich('questions', 'prompt', 'answer', max_loops := 4, max_tokens := 8,
                                          stop := ARRAY['it''s 100%% %s'], chunk_size := 5)" 2>&1)
echo "$out" | sed 's/^/# /'
dist_upd=$(on c ouro_citus -c "SELECT id, answer FROM questions WHERE id <> 3 ORDER BY id" 2>&1)
errs=$(on c ouro_citus -c "SELECT string_agg(result, ',') FROM run_command_on_shards('questions',
        \$\$SELECT count(*) || ':' || coalesce(min(row_key || ' ' || sqlstate), '') FROM ouro_enrich_errors
          WHERE relation = '%s'::regclass AND output_column = 'answer'\$\$) WHERE result <> '0:'" 2>&1)
check "CALL ouro_enrich on the coordinator fills the rows on the shards' workers = single-node UPDATE ($((ROWS - 1)) rows)" \
    bash -c 'grep -q "NOTICE:  ouro_enrich: $4 rows filled on 4 shards of \"questions\", 1 listed as failed" <<<"$1" &&
             test "$2" = "$3"' _ "$out" "$dist_upd" "$(grep -v '^3|' <<<"$ref_upd")" $((ROWS - 1))
check "its bad row is listed on its worker, under the shard's name ($errs)" test "$errs" = "1:(3) 2200F"
out=$(on c ouro_citus -c "CALL ouro_enrich('questions', 'prompt', 'answer', max_loops := 4, max_tokens := 8)" 2>&1)
check "run again, it has nothing left to do ($out)" \
    grep -q "ouro_enrich: 0 rows filled on 4 shards of \"questions\", 1 listed as failed" <<<"$out"
on c ouro_citus -c "UPDATE questions SET prompt = 'Once upon a time #3' WHERE id = 3" \
    -c "SELECT run_command_on_shards('questions', \$\$DELETE FROM ouro_enrich_errors WHERE relation = '%s'::regclass\$\$)" >/dev/null
out=$(on c ouro_citus -c "CALL ouro_enrich('questions', 'prompt', 'answer', max_loops := 4, max_tokens := 8)" 2>&1)
dist_upd=$(on c ouro_citus -c "SELECT id, answer FROM questions ORDER BY id" 2>&1)
check "with the row mended and its error deleted, a rerun fills it ($out): every row = single node" \
    bash -c 'grep -q "1 rows filled on 4 shards" <<<"$1" && test "$2" = "$3"' _ "$out" "$dist_upd" "$ref_upd"

# The same enrichment as one distributed transaction: the generation in a materialized CTE runs
# on the workers, and the UPDATE joins its result.
on c ouro_citus -c "UPDATE questions SET answer = NULL"
out=$(on c ouro_citus -c "WITH g AS MATERIALIZED (SELECT id, $GEN AS answer FROM questions)
                           UPDATE questions q SET answer = g.answer FROM g WHERE q.id = g.id" 2>&1)
dist_upd=$(on c ouro_citus -c "SELECT id, answer FROM questions ORDER BY id" 2>&1)
check "UPDATE from a MATERIALIZED CTE of ouro_generate = single-node UPDATE" test "$dist_upd" = "$ref_upd"

plan=$(on c ouro_citus -c "EXPLAIN (VERBOSE, COSTS OFF) INSERT INTO answers SELECT id, $GEN FROM questions" 2>&1)
out=$(on c ouro_citus -c "INSERT INTO answers SELECT id, $GEN FROM questions" 2>&1)
dist_ins=$(on c ouro_citus -c "SELECT id, answer FROM answers ORDER BY id" 2>&1)
check "INSERT INTO answers (co-located) SELECT id, ouro_generate(...) = single node; the SELECT runs on the workers" \
    bash -c 'test "$1" = "$2" && grep -q "INSERT/SELECT method: repartition" <<<"$3" &&
             grep -q "Query: SELECT id, public.ouro_generate(prompt" <<<"$3"' _ "$dist_ins" "$ref_upd" "$plan"

# One row's enrichment in a function distributed by its argument: Citus runs the call on the
# worker that holds the row.  Inside it the UPDATE sets a value computed before (a parameter),
# which Citus accepts, where SET answer = ouro_generate(...) would be refused.
out=$(on c ouro_citus 2>&1 <<EOF
CREATE FUNCTION answer_question(qid int) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE
    a text;
BEGIN
    SELECT $GEN INTO a FROM questions WHERE id = qid;
    UPDATE questions SET answer = a WHERE id = qid;
    RETURN a;
END \$\$;
SELECT create_distributed_function('answer_question(int)', '\$1', colocate_with := 'questions');
UPDATE questions SET answer = NULL WHERE id = 7;
SET citus.log_remote_commands = on;
SELECT answer_question(7) AS returned \gset
SELECT 'returned:' || :'returned';
RESET citus.log_remote_commands;
SELECT 'stored:' || answer FROM questions WHERE id = 7;
EOF
)
want=$(sed -n 's/^7|//p' <<<"$ref_upd")
check "a function distributed with create_distributed_function runs on the row's worker and stores its answer" \
    bash -c 'grep -q "issuing SELECT public.answer_question(7)" <<<"$1" && grep -qxF "returned:$2" <<<"$1" &&
             grep -qxF "stored:$2" <<<"$1"' _ "$out" "$want"

# --- the model per node ----------------------------------------------------------------------------

# A name registered on each worker with that worker's own folder.
for node in w1 w2; do
    on $node ouro_citus -c "SELECT ouro_register_model('tiny', '$TMP/models-$node/tiny-mha-bf16')" >/dev/null
done
out=$(on c ouro_citus -c "SELECT id, ouro_generate(prompt, max_loops := 4, max_tokens := 8, model := 'tiny') FROM questions ORDER BY id" 2>&1)
check "model := 'tiny', registered on each worker with its own path, gives the same texts" test "$out" = "$ref_gen"

# Worker 2 loses its model: the error says which node.
on w2 ouro_citus -c "ALTER SYSTEM SET ouro.model_path = '$TMP/models-w2/absent'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
out=$(on c ouro_citus -c "SELECT count($GEN) FROM questions" 2>&1)
echo "$out" | sed 's/^/# /'
check "a worker without its model: the error names the folder and the worker ($TMP:$PORT_W2)" \
    bash -c 'grep -q "could not open model folder \".*models-w2/absent\"" <<<"$1" &&
             grep -q "while executing command on $2:$3" <<<"$1"' _ "$out" "$TMP" "$PORT_W2"
# ouro_update_shards with worker 2 lacking its model: worker 1's shards commit, the error names
# a shard of worker 2 and its node; once the model is back, a second run fills the rest.
on c ouro_citus -c "UPDATE questions SET answer = NULL"
rows_w1=$(on c ouro_citus -c "SELECT sum(r.result::int) FROM run_command_on_shards('questions', 'SELECT count(*) FROM %s') r
                              JOIN citus_shards s USING (shardid) WHERE s.nodeport = $PORT_W1" 2>&1)
out=$(on c ouro_citus -c "SELECT * FROM ouro_update_shards('questions', 'answer = $GEN', 'answer IS NULL')" 2>&1)
echo "$out" | sed 's/^/# /'
filled=$(on c ouro_citus -c "SELECT count(answer) FROM questions")
check "ouro_update_shards with worker 2 lacking its model: an error naming the shard and $TMP:$PORT_W2, worker 1's $rows_w1 rows committed ($filled)" \
    bash -c 'grep -q "the UPDATE failed on 2 shard(s)" <<<"$1" && grep -q "DETAIL:  First failure: shard [0-9]* on $2:$3: .*could not open model folder" <<<"$1" &&
             test "$4" = "$5"' _ "$out" "$TMP" "$PORT_W2" "$filled" "$rows_w1"
# ouro_enrich the same way: worker 1's shards fill their rows, the error names a shard of worker 2.
on c ouro_citus -c "UPDATE questions SET answer = NULL"
out=$(on c ouro_citus -c "CALL ouro_enrich('questions', 'prompt', 'answer', max_loops := 4, max_tokens := 8)" 2>&1)
echo "$out" | sed 's/^/# /'
filled=$(on c ouro_citus -c "SELECT count(answer) FROM questions")
check "CALL ouro_enrich with worker 2 lacking its model: an error naming the shard and $TMP:$PORT_W2, worker 1's $rows_w1 rows kept ($filled)" \
    bash -c 'grep -q "ouro_enrich: the job failed on 2 of 4 shards of \"questions\"" <<<"$1" &&
             grep -q "DETAIL:  First failure: shard [0-9]* on $2:$3: could not open model folder" <<<"$1" &&
             test "$4" = "$5"' _ "$out" "$TMP" "$PORT_W2" "$filled" "$rows_w1"
on w2 ouro_citus -c "ALTER SYSTEM RESET ouro.model_path" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
out=$(on c ouro_citus -c "SELECT sum(updated) FROM ouro_update_shards('questions', 'answer = $GEN', 'answer IS NULL')" 2>&1)
dist_upd=$(on c ouro_citus -c "SELECT id, answer FROM questions ORDER BY id" 2>&1)
check "ouro_update_shards run again with the model back fills the other $out rows = single-node UPDATE" \
    test "$out" -eq $((ROWS - rows_w1)) -a "$dist_upd" = "$ref_upd"

# --- cancel ----------------------------------------------------------------------------------------

# statement_timeout on the coordinator while both workers generate: the coordinator cancels the
# workers' statements, so no generation goes on there afterwards.
active_on() { on "$1" ouro_citus -c "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%public.ouro_generate(%' AND pid <> pg_backend_pid()"; }
on c ouro_citus >"$TMP/cancel.out" 2>&1 <<EOF &
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SET statement_timeout = '2s';
\set ON_ERROR_STOP 0
SELECT count(ouro_generate(prompt, max_tokens := 4000, max_loops := 16)) FROM questions;
\set ON_ERROR_STOP 1
RESET statement_timeout;
SELECT 'elapsed_ms:' || round((extract(epoch FROM clock_timestamp()) - :t0) * 1000);
SELECT 'usable:' || count(*) FROM questions;
EOF
cancel_pid=$!
sleep 1
during="$(active_on w1)+$(active_on w2)"
wait "$cancel_pid"
after=""
for i in $(seq 1 12); do
    after="$(active_on w1)+$(active_on w2)"
    [ "$after" = "0+0" ] && break
    sleep 0.25
done
echo "# cancel: $(tr '\n' ' ' <"$TMP/cancel.out") generating on the workers during: $during, after: $after"
check "statement_timeout on the coordinator cancels the distributed generation" \
    grep -q "canceling statement due to statement timeout" "$TMP/cancel.out"
check "the workers were generating before the cancel ($during) and are not after it ($after)" \
    bash -c '[[ "$1" =~ ^[1-9][0-9]*\+[1-9][0-9]*$ ]] && test "$2" = "0+0"' _ "$during" "$after"
check "the coordinator session stays usable after the cancel" grep -q "^usable:$ROWS$" "$TMP/cancel.out"

# --- throughput (OURO_CITUS_BENCH=1; figures only, no test) ---------------------------------------

if [ -n "${OURO_CITUS_BENCH:-}" ]; then
    BROWS=${OURO_CITUS_BENCH_ROWS:-96}
    bench_sql="CREATE TABLE bench AS SELECT i AS id, (ARRAY['The capital of France is', 'Hi',
        'Q: What is 17 * 23? A:', 'Once upon a time', 'SELECT 1'])[1 + i % 5] || ' #' || i AS prompt
        FROM generate_series(1, $BROWS) AS i;"
    on w1 single -c "$bench_sql" >/dev/null
    on c ouro_citus -c "$bench_sql" -c "SELECT create_distributed_table('bench', 'id', shard_count := 4)" >/dev/null 2>&1
    # The query's wall time, and the CPU time of the backend that ran it (utime + stime of
    # /proc/self/stat, in clock ticks of 10 ms): on the coordinator, what coordinating costs.
    timed() {   # node db settings...: prints "ms cpu_ms"
        local node=$1 db=$2; shift 2
        on "$node" "$db" <<EOF | tail -1
$*
SELECT split_part(pg_read_file('/proc/self/stat'), ' ', 14)::int + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::int AS c0,
       extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(ouro_generate(prompt, max_loops := 4, max_tokens := 32)) FROM bench \g /dev/null
SELECT round((extract(epoch FROM clock_timestamp()) - :t0) * 1000) || ' ' ||
       (split_part(pg_read_file('/proc/self/stat'), ' ', 14)::int + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::int - :c0) * 10;
EOF
    }
    # new tokens in all, counted once (greedy: every run makes the same ones)
    tokens=$(on w1 single -c "SELECT sum((ouro_generate_detail(prompt, max_loops := 4, max_tokens := 32)).n_tokens) FROM bench")
    for run in 1 2; do
        read -r ms1 cpu1 <<<"$(timed w1 single)"
        read -r ms2 cpu2 <<<"$(timed c ouro_citus "SET citus.max_adaptive_executor_pool_size = 1;")"
        read -r ms3 cpu3 <<<"$(timed c ouro_citus)"
        echo "# bench run $run, $BROWS rows, $tokens new tokens (max_tokens 32), max_loops 4, tiny-mha-bf16, ouro.threads 1:"
        echo "#   1 node (one backend):                             $ms1 ms, $((tokens * 1000 / ms1)) tokens/s, $((BROWS * 1000 / ms1)) rows/s"
        echo "#   coordinator + 2 workers, 1 connection per worker: $ms2 ms, $((tokens * 1000 / ms2)) tokens/s, $((BROWS * 1000 / ms2)) rows/s; coordinator backend CPU $cpu2 ms"
        echo "#   coordinator + 2 workers, Citus's default pool:    $ms3 ms, $((tokens * 1000 / ms3)) tokens/s, $((BROWS * 1000 / ms3)) rows/s; coordinator backend CPU $cpu3 ms"
    done
fi

# The servers survived everything.
check "no backend crashed on any node" bash -c "! grep -q 'terminated by signal' '$TMP'/server-*.log"

finish

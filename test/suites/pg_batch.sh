#!/usr/bin/env bash
# test/suites/pg_batch.sh -- automatic batching, progress and ouro_enrich in PostgreSQL.
#
# Installs the extension (as root), starts a throw-away cluster (ouro in
# shared_preload_libraries, unix socket in a temporary folder, no TCP), and checks:
#   - per-row SELECT, UPDATE and CREATE TABLE AS over 40 rows give the same results with
#     ouro.auto_batch on and off: the golden models' greedy texts, ouro_chat, classification
#     labels and scores; mixed options and models in one statement;
#   - ouro_depth per row gives the same values batched (ouro_depth_batch) as row by row, and
#     a too-long row among them is a row error for that row alone;
#   - EXPLAIN shows the OuroBatch node and its batch size;
#   - LIMIT 1 over 1000 rows, a cursor's FETCH and EXISTS compute a bounded number of rows
#     (counted by ouro_stats());
#   - a parallel plan batches in its workers and gives the serial results;
#   - statement_timeout stops a batch promptly and the backend stays usable;
#   - an UPDATE with one bad row under ouro.on_error = null fills every other row and its
#     WARNING names the bad row;
#   - ouro_progress, read from a second session, shows a long statement's rows growing;
#   - CALL ouro_enrich: cancelled half-way, then its backend killed with SIGKILL, and run
#     again each time: every good row filled exactly once, rows committed before an
#     interruption not computed again, failed rows listed in ouro_enrich_errors.
# Prints TAP lines; exits non-zero on a failure.
set -u
cd "$(dirname "$0")/../.."
SUITE=pg_batch; . test/tap.sh
TAP_T0=$(date +%s)

# The extension is installed into the one server of the machine: runs take turns.
pg_suite_lock

PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || PGBIN=$($PG_CONFIG --bindir 2>/dev/null || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ] || ! command -v "$PG_CONFIG" >/dev/null 2>&1; then
    not_ok "PostgreSQL (initdb and pg_config) is not installed; run make deps"
    finish
fi
if [ "$(id -u)" -eq 0 ]; then
    pg_install_ext
    RUNAS=(runuser -u postgres --)
    OWNER=postgres
else
    RUNAS=()
    OWNER=$(id -un)
fi

TMP=$(mktemp -d /tmp/ouro-pg-batch.XXXXXX)
chmod 755 "$TMP"
DATA=$TMP/data
PORT=54339
cleanup() {
    "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
cp -r test/data/models "$TMP/models"
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
ouro.model_path = '$MODELS/tiny-mha-bf16'
EOF
# OURO_PG_SERVER_ENV: VAR=value words for the server (make asan-ext preloads libasan)
if "${RUNAS[@]}" env ${OURO_PG_SERVER_ENV:-} "$PGBIN/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w start >/dev/null 2>&1 9>&-; then
    ok "throw-away cluster started (ouro preloaded)"
else
    cat "$TMP/server.log"
    not_ok "throw-away cluster started"
    finish
fi
PSQL=("$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$TMP" -p "$PORT" -U postgres)
# the golden texts are the exact path's (the default precision, auto, is bf16 on CPUs
# without tiles)
q() { PGOPTIONS="${PGOPTIONS:-} -c ouro.precision=exact" "${PSQL[@]}" -d ouro_b "$@"; }

"${PSQL[@]}" -d postgres -c "CREATE DATABASE ouro_b" >/dev/null
q >/dev/null <<EOF
CREATE EXTENSION ouro;
SELECT ouro_register_model(m, '$MODELS/' || m)
FROM unnest(ARRAY['tiny-mha-bf16', 'tiny-gqa-f32-tied', 'tiny-mqa-f16-sharded']) AS m;
-- 40 rows per model: the 5 golden cases 8 times each
CREATE TABLE golden AS
SELECT row_number() OVER (ORDER BY m, c ->> 'name', k)::int AS id, m AS model,
       c ->> 'prompt' AS prompt, c ->> 'greedy_text' AS greedy_text
FROM unnest(ARRAY['tiny-mha-bf16', 'tiny-gqa-f32-tied', 'tiny-mqa-f16-sharded']) AS m,
     jsonb_array_elements(pg_read_file('$MODELS/' || m || '/expected.json')::jsonb -> 'cases') AS c,
     generate_series(1, 8) AS k;
ALTER TABLE golden ADD PRIMARY KEY (id);
CREATE TABLE questions (id int PRIMARY KEY, prompt text, answer text);
INSERT INTO questions
SELECT i, (ARRAY['The capital of France is', 'Hi', 'Q: What is 17 * 23? A:',
                 'Once upon a time', 'SELECT 1'])[1 + i % 5] || ' #' || i
FROM generate_series(1, 48) AS i;
CREATE TABLE big AS SELECT i AS id, 'prompt ' || i AS prompt FROM generate_series(1, 1000) AS i;
EOF

# --- same results with batching on and off ----------------------------------------------------

# The query of each check, run with ouro.auto_batch on and off; the outputs must be equal,
# and with it on the batching node must have computed rows (ouro_stats' batched_rows).
same_on_off() {   # description, sql
    local on off batched
    on=$(q -c "SET ouro.auto_batch = on" -c "$2" -c "SELECT 'batched_rows:' || (ouro_stats() ->> 'batched_rows')" 2>&1)
    batched=$(sed -n 's/^batched_rows://p' <<<"$on")
    on=$(grep -v '^batched_rows:' <<<"$on")
    off=$(q -c "SET ouro.auto_batch = off" -c "$2" 2>&1)
    if [ -n "$on" ] && [ "$on" = "$off" ] && [ "${batched:-0}" -gt 0 ]; then
        ok "$1 (on = off, $(wc -l <<<"$on") lines, $batched rows batched)"
    else
        not_ok "$1"
        diff <(echo "$on") <(echo "$off") | head -10 | sed 's/^/# /'
    fi
}
same_on_off "per-row SELECT of the golden prompts, 3 models x 40 rows" \
    "SELECT id, ouro_generate(prompt, max_tokens := 12, model := model) FROM golden ORDER BY id"
check "the batched per-row SELECT gives every golden greedy_text (120 rows)" \
    test "$(q -c "SELECT count(*) FROM (SELECT ouro_generate(prompt, max_tokens := 12, model := model) AS g, greedy_text FROM golden OFFSET 0) s WHERE g = greedy_text")" = 120
same_on_off "ouro_chat per row, with a system message on some rows" \
    "SELECT id, ouro_chat(prompt, CASE WHEN id % 3 = 0 THEN 'Be brief.' END, max_tokens := 6) FROM questions ORDER BY id"
same_on_off "mixed options and models in one statement (max_tokens, max_loops, model, NULL inputs)" \
    "SELECT id, ouro_generate(CASE WHEN id % 7 = 0 THEN NULL ELSE prompt END, max_tokens := 2 + id % 3,
                              max_loops := 1 + id % 2, exit_threshold := CASE WHEN id % 5 = 0 THEN 0.5 END,
                              model := CASE WHEN id % 4 = 0 THEN 'tiny-gqa-f32-tied' END)
     FROM questions ORDER BY id"
same_on_off "ouro_classify per row: the same labels" \
    "SELECT id, ouro_classify(prompt, ARRAY['math', 'story', 'code'], model := model) FROM golden ORDER BY id"
scores=$(q <<'EOF'
SET ouro.auto_batch = on;
CREATE TEMP TABLE s_on AS SELECT id, ouro_classify_scores(prompt, ARRAY['yes', 'no'], 'Is it a question?') AS s FROM questions;
SET ouro.auto_batch = off;
CREATE TEMP TABLE s_off AS SELECT id, ouro_classify_scores(prompt, ARRAY['yes', 'no'], 'Is it a question?') AS s FROM questions;
-- the array form: the 48 prompts of mixed lengths in one call
CREATE TEMP TABLE s_arr AS
SELECT unnest(ids) AS id, unnest(ouro_classify_scores_batch(ps, ARRAY['yes', 'no'], 'Is it a question?')) AS s
FROM (SELECT array_agg(id ORDER BY id) AS ids, array_agg(prompt ORDER BY id) AS ps FROM questions) q;
SELECT count(*) || ':' || max(abs((a.s ->> k)::float8 - (b.s ->> k)::float8)) || ':' ||
       max(abs((c.s ->> k)::float8 - (b.s ->> k)::float8))
FROM s_on a JOIN s_off b USING (id) JOIN s_arr c USING (id), jsonb_object_keys(a.s) AS k;
EOF
)
IFS=: read -r n_scores d_node d_arr <<<"$scores"
check "ouro_classify_scores: each row's scores alone, in the batching node and in ouro_classify_scores_batch agree to 1e-9 ($n_scores scores, largest differences $d_node and $d_arr)" \
    bash -c '[ "$1" = 96 ] && awk -v a="$2" -v b="$3" "BEGIN { exit !(a <= 1e-9 && b <= 1e-9) }"' _ "$n_scores" "$d_node" "$d_arr"
same_on_off "ouro_depth per row: the same float8 (thresholds, models, NULL and empty inputs mixed)" \
    "SELECT id, ouro_depth(CASE WHEN id % 7 = 0 THEN NULL WHEN id % 11 = 0 THEN '' ELSE prompt END,
                           exit_threshold := CASE WHEN id % 3 = 0 THEN 0.5 END,
                           model := CASE WHEN id % 4 = 0 THEN 'tiny-gqa-f32-tied' END)
     FROM questions ORDER BY id"
check "EXPLAIN (VERBOSE): per-row ouro_depth goes through the batching node" \
    grep -q "Batched Calls: ouro_depth" <<<"$(q -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT id, ouro_depth(prompt) FROM questions")"
out=$(q -c "SET ouro.on_error = 'null'" -c "SET ouro.context_length = 64" \
        -c "SELECT id || ':' || (ouro_depth(CASE WHEN id = 5 THEN repeat('word ', 200) ELSE prompt END) IS NULL)
            FROM questions WHERE id <= 8 ORDER BY id" 2>&1)
echo "$out" | grep -v '^[0-9]' | sed 's/^/# /'
check "a too-long row among batched ouro_depth calls: a WARNING naming it, NULL for it alone" \
    bash -c 'grep -q "WARNING:  ouro_depth row 5 (input \"word word .*): the input is too long" <<<"$1" &&
             test "$(grep "^[0-9]" <<<"$1" | tr "\n" " ")" = "1:false 2:false 3:false 4:false 5:true 6:false 7:false 8:false "' _ "$out"
same_on_off "UPDATE ... SET answer = ouro_generate(...) fills the same answers" \
    "UPDATE questions SET answer = ouro_generate(prompt, max_tokens := 5, max_loops := 1 + id % 3);
     SELECT id, answer FROM questions ORDER BY id"
same_on_off "CREATE TABLE AS with a classification and a generation" \
    "CREATE TEMP TABLE t AS SELECT id, ouro_classify(prompt, ARRAY['a', 'b']) AS c,
                                   ouro_generate(prompt, max_tokens := 3) AS g FROM questions;
     SELECT id, c, g FROM t ORDER BY id"

# --- EXPLAIN and bounded work ---------------------------------------------------------------

plan=$(q -c "EXPLAIN (COSTS OFF) SELECT id, ouro_generate(prompt) FROM questions")
echo "$plan" | sed 's/^/# /'
check "EXPLAIN shows the OuroBatch node and its batch size" \
    bash -c 'grep -q "Custom Scan (OuroBatch)" <<<"$1" && grep -q "Batch Size: 16" <<<"$1"' _ "$plan"
check "EXPLAIN with ouro.auto_batch = off has no OuroBatch node" \
    bash -c '! grep -q OuroBatch <<<"$1"' _ \
    "$(q -c "SET ouro.auto_batch = off" -c "EXPLAIN (COSTS OFF) SELECT id, ouro_generate(prompt) FROM questions")"
check "a call in WHERE stays row by row (no OuroBatch) and works" \
    test "$(q -c "SELECT count(*) FROM questions WHERE ouro_generate(prompt, max_tokens := 2) IS NOT NULL" \
             -c "EXPLAIN (COSTS OFF) SELECT * FROM questions WHERE ouro_generate(prompt) IS NOT NULL" | grep -c OuroBatch)" = 0

rows_for() {   # sql -> rows ouro_stats() counted for it
    q <<EOF | tail -1
SELECT (ouro_stats() ->> 'rows')::int AS r0 \\gset
$1;
SELECT (ouro_stats() ->> 'rows')::int - :r0;
EOF
}
r=$(rows_for "SELECT id, ouro_generate(prompt, max_tokens := 2) FROM big LIMIT 1")
check "LIMIT 1 over 1000 rows computes 1 row (ouro_stats counted $r)" test "$r" = 1
r=$(rows_for "SELECT id, ouro_generate(prompt, max_tokens := 2) FROM big ORDER BY id LIMIT 3")
check "ORDER BY id LIMIT 3 over 1000 rows computes 3 rows (counted $r)" test "$r" = 3
r=$(rows_for "SELECT EXISTS (SELECT ouro_generate(prompt, max_tokens := 2) FROM big)")
check "EXISTS over 1000 rows computes no row (counted $r)" test "$r" = 0
r=$(q <<'EOF' | sed -n 's/^n=//p'
BEGIN;
DECLARE c CURSOR FOR SELECT id, ouro_generate(prompt, max_tokens := 2) FROM big;
SELECT (ouro_stats() ->> 'rows')::int AS r0 \gset
FETCH 2 FROM c;
SELECT 'n=' || ((ouro_stats() ->> 'rows')::int - :r0);
COMMIT;
EOF
)
check "a cursor's FETCH 2 over 1000 rows computes at most 3 rows (batches of 1 then 2; counted $r)" \
    test "${r:-999}" -le 3

# --- parallel plan --------------------------------------------------------------------------

par=(-c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" -c "SET min_parallel_table_scan_size = 0"
     -c "SET max_parallel_workers_per_gather = 2" -c "SET parallel_leader_participation = off"
     -c "SET enable_indexscan = off" -c "SET enable_bitmapscan = off")
pq="SELECT id, ouro_generate(prompt, max_tokens := 6) FROM questions ORDER BY id"
plan=$(q "${par[@]}" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) $pq")
echo "$plan" | sed 's/^/# /'
check "a parallel plan batches in its workers (OuroBatch under Gather, workers launched)" \
    bash -c 'grep -Eq "Workers Launched: [1-9]" <<<"$1" && grep -B30 "Custom Scan (OuroBatch)" <<<"$1" | grep -q Gather' _ "$plan"
# the leader runs no batch itself (parallel_leader_participation = off): its EXPLAIN ANALYZE
# shows the workers' batches, at least 48 rows / 4 = 12 of them, the largest of 4 rows
plan=$(q "${par[@]}" -c "SET ouro.batch_size = 4" -c "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF) $pq")
pb=$(sed -nE 's/^ *Batches: ([0-9]+)$/\1/p' <<<"$plan")
pw=$(sed -nE 's/^ *Batches in Workers: ([0-9]+)$/\1/p' <<<"$plan")
pl=$(sed -nE 's/^ *Largest Batch: ([0-9]+)$/\1/p' <<<"$plan")
check "the leader's EXPLAIN ANALYZE counts the workers' batches (Batches: ${pb:-none}, in workers ${pw:-none}, largest ${pl:-none})" \
    bash -c '[ "${1:-0}" -ge 12 ] && [ "$2" = "$1" ] && [ "$3" = 4 ]' _ "$pb" "$pw" "$pl"
check "the parallel plan's results equal the serial row-by-row results" \
    test "$(q "${par[@]}" -c "$pq")" = "$(q -c "SET ouro.auto_batch = off" -c "SET max_parallel_workers_per_gather = 0" -c "$pq")"

# --- cancel ---------------------------------------------------------------------------------

out=$(q 2>&1 <<'EOF'
SET ouro.context_length = 8192;
SELECT 'loaded:' || ouro_token_count('Hi');
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SET statement_timeout = '500ms';
\set ON_ERROR_STOP 0
SELECT length(ouro_generate(prompt, max_tokens := 8000, max_loops := 16)) FROM questions;
\set ON_ERROR_STOP 1
RESET statement_timeout;
SELECT 'elapsed_ms:' || round((extract(epoch FROM clock_timestamp()) - :t0) * 1000);
SELECT 'usable:' || count(ouro_generate(prompt, max_tokens := 2)) FROM questions WHERE id <= 4;
EOF
)
ms=$(sed -n 's/^elapsed_ms://p' <<<"$out")
check "statement_timeout cancels a batch within 1500 ms (${ms:-?} ms for 500 ms)" \
    bash -c 'grep -q "canceling statement due to statement timeout" <<<"$1" && [ "${2:-99999}" -lt 1500 ]' _ "$out" "$ms"
check "the backend stays usable after the cancel (a batched statement runs)" grep -q "^usable:4$" <<<"$out"

# --- a bad row under ouro.on_error = null ---------------------------------------------------

out=$(q 2>&1 <<'EOF'
UPDATE questions SET answer = NULL;
UPDATE questions SET prompt = '' WHERE id = 17;
SET ouro.on_error = 'null';
UPDATE questions SET answer = ouro_generate(prompt, max_tokens := 3) WHERE id <= 40;
SELECT 'filled:' || count(answer) || '/' || count(*) FROM questions WHERE id <= 40;
SELECT 'null_row:' || string_agg(id::text, ',') FROM questions WHERE id <= 40 AND answer IS NULL;
-- a prompt longer than the context: the WARNING shows its start
SET ouro.context_length = 64;
SELECT count(g) FROM (SELECT ouro_generate(CASE WHEN id = 5 THEN repeat('Very long prompt ', 40) ELSE prompt END,
                                           max_tokens := 2) AS g FROM questions WHERE id <= 8 OFFSET 0) s;
EOF
)
echo "$out" | grep -i warning | sed 's/^/# /'
check "UPDATE with one bad row under on_error = null fills the 39 others" grep -q "^filled:39/40$" <<<"$out"
check "only the bad row is NULL" grep -q "^null_row:17$" <<<"$out"
check "the WARNING names the bad row (its position and its prompt)" \
    grep -Eq 'WARNING:  ouro_generate row [0-9]+ \(prompt ""\): the prompt has no tokens' <<<"$out"
check "a too-long row's WARNING gives its position and the start of its prompt" \
    grep -Eq 'WARNING:  ouro_generate row [1-8] \(prompt "Very long prompt Very long prompt Very l\.\.\."\): the prompt is too long' <<<"$out"
q -c "UPDATE questions SET prompt = 'Once upon a time #17' WHERE id = 17" >/dev/null

# --- progress from another session ----------------------------------------------------------

# (each row's prompt waits 50 ms, so that the statement lasts about 2.4 s on any machine)
q -c "SET ouro.batch_size = 2" -c "SET application_name = 'long_job'" -c "SET ouro.progress_notice_interval = 1" \
  -c "SELECT count(ouro_generate(prompt || pg_sleep(0.05)::text, max_tokens := 8)) FROM questions" >"$TMP/long.out" 2>&1 &
job=$!
seen=""
for _ in $(seq 1 100); do
    r=$(q -c "SELECT rows_done FROM ouro_progress p JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = 'long_job'" 2>&1)
    [ -n "$r" ] && [ "$r" != "${seen##* }" ] && seen="$seen $r"
    [ "$(wc -w <<<"$seen")" -ge 3 ] && break
    sleep 0.1
done
wait "$job"
echo "# rows_done seen: $seen; job: $(tr '\n' ' ' <"$TMP/long.out")"
check "ouro_progress from another session shows rows done growing ($seen)" \
    bash -c 'set -- $1; [ $# -ge 2 ] && [ "$2" -gt "$1" ]' _ "$seen"
check "ouro.progress_notice_interval = 1 gives NOTICEs with rows, tokens and tokens/s" \
    grep -Eq "NOTICE:  ouro_generate: [0-9]+ rows, [0-9]+ tokens, [0-9.]+ tokens/s" "$TMP/long.out"
check "ouro_progress has the function, tokens/s and model columns" \
    test "$(q -c "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'ouro_progress'::regclass AND attnum > 0" | tr ',' '\n' | grep -cE '^(function|rows_done|tokens|tokens_per_second|elapsed_seconds|model)$')" = 6

# --- ouro_enrich: cancel, SIGKILL, resume ----------------------------------------------------

q >/dev/null <<'EOF'
CREATE TABLE jobs (id int PRIMARY KEY, prompt text, answer text);
INSERT INTO jobs SELECT i, 'Tell me about item ' || i FROM generate_series(1, 96) AS i;
UPDATE jobs SET prompt = '' WHERE id IN (10, 50, 90);
-- every fill of a row is logged; a rolled-back chunk's entries roll back with it
CREATE TABLE fills (id int);
CREATE FUNCTION log_fill() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO fills VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER fill AFTER UPDATE OF answer ON jobs FOR EACH ROW
WHEN (OLD.answer IS NULL AND NEW.answer IS NOT NULL) EXECUTE FUNCTION log_fill();
CREATE TABLE want AS SELECT id, ouro_generate(prompt, max_tokens := 24) AS answer FROM jobs WHERE prompt <> '';
EOF
enrich_bg() {   # runs the job in the background; $job is its psql
    q -c "SET application_name = 'enrich_job'" -c "SET ouro.batch_size = 4" \
      -c "CALL ouro_enrich('jobs', 'prompt', 'answer', max_tokens := 24, chunk_size := 4)" >"$TMP/enrich.out" 2>&1 &
    job=$!
}
wait_filled() {   # until at least $1 rows are filled (committed); prints the count
    local c=0
    for _ in $(seq 1 300); do
        c=$(q -c "SELECT count(answer) FROM jobs")
        [ "$c" -ge "$1" ] && break
        sleep 0.05
    done
    echo "$c"
}
job_pid() { q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'enrich_job'"; }

enrich_bg
c=$(wait_filled 12)
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'enrich_job'" >/dev/null
wait "$job"
after_cancel=$(q -c "SELECT count(answer) FROM jobs")
echo "# cancelled at $c filled: $(tr '\n' ' ' <"$TMP/enrich.out")"
check "a cancelled ouro_enrich keeps the chunks it committed ($after_cancel rows filled, job cancelled)" \
    bash -c 'grep -q "canceling statement due to user request" "$1" && [ "$2" -ge 12 ] && [ "$2" -lt 93 ]' _ "$TMP/enrich.out" "$after_cancel"

enrich_bg
c=$(wait_filled $((after_cancel + 12)))
pid=$(job_pid)
[ -n "$pid" ] && kill -9 "$pid"
wait "$job"
for _ in $(seq 1 100); do q -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
after_kill=$(q -c "SELECT count(answer) FROM jobs")
echo "# killed (pid $pid) at $c filled; $after_kill filled after the restart"
check "after SIGKILL and crash recovery the committed chunks are kept ($after_kill rows filled)" \
    test "$after_kill" -gt "$after_cancel" -a "$after_kill" -lt 93

todo=$(q -c "SELECT count(*) FROM jobs WHERE answer IS NULL AND prompt <> ''
             AND NOT EXISTS (SELECT 1 FROM ouro_enrich_errors e WHERE e.relation = 'jobs'::regclass AND e.row_key = ROW(jobs.id)::text)")
bad_todo=$(q -c "SELECT count(*) FROM jobs WHERE prompt = ''
                 AND NOT EXISTS (SELECT 1 FROM ouro_enrich_errors e WHERE e.relation = 'jobs'::regclass AND e.row_key = ROW(jobs.id)::text)")
computed=$(q 2>/dev/null <<'EOF' | tail -1
SELECT (ouro_stats() ->> 'rows')::int AS r0 \gset
SET ouro.batch_size = 4;
CALL ouro_enrich('jobs', 'prompt', 'answer', max_tokens := 24, chunk_size := 4);
SELECT (ouro_stats() ->> 'rows')::int - :r0;
EOF
)
check "the rerun computes only the rows not yet done ($computed = $todo good + $bad_todo bad rows left)" \
    test "$computed" = $((todo + bad_todo))
check "every good row is filled, with the answer ouro_generate gives it" \
    test "$(q -c "SELECT count(*) FROM jobs j JOIN want w USING (id) WHERE j.answer = w.answer")" = 93
check "every row was filled exactly once (the fill log has 93 rows, one per id)" \
    test "$(q -c "SELECT count(*) || '/' || count(DISTINCT id) FROM fills")" = "93/93"
check "the failed rows are listed with their errors" \
    test "$(q -c "SELECT string_agg(row_key || ':' || sqlstate || ':' || error, '|' ORDER BY row_key) FROM ouro_enrich_errors")" \
         = "(10):2200F:the prompt has no tokens|(50):2200F:the prompt has no tokens|(90):2200F:the prompt has no tokens"
check "a second rerun has nothing left to do" \
    bash -c 'grep -q "0 rows filled, 0 failed" <<<"$1"' _ "$(q -c "CALL ouro_enrich('jobs', 'prompt', 'answer', max_tokens := 24)" 2>&1)"

# --- who may read and write the failed rows ----------------------------------------------------

# Two roles without any special privilege: each enriches a table it owns; neither can read,
# record, rewrite or delete the other's failed rows, nor touch the table that holds them all.
q >/dev/null <<'EOF'
CREATE ROLE ouro_alice LOGIN;
CREATE ROLE ouro_bob LOGIN;
GRANT CREATE ON SCHEMA public TO ouro_alice, ouro_bob;
EOF
qa() { "${PSQL[@]}" -U ouro_alice -d ouro_b "$@"; }
qb() { "${PSQL[@]}" -U ouro_bob -d ouro_b "$@"; }
qa >/dev/null 2>&1 <<'EOF'
CREATE TABLE a_jobs (id int PRIMARY KEY, prompt text, answer text);
INSERT INTO a_jobs VALUES (1, 'Hello there'), (2, ''), (3, 'Once upon a time');
CALL ouro_enrich('a_jobs', 'prompt', 'answer', max_tokens := 2);
EOF
qb >/dev/null 2>&1 <<'EOF'
CREATE TABLE b_jobs (id int PRIMARY KEY, prompt text, answer text);
INSERT INTO b_jobs VALUES (1, ''), (2, 'Hi');
CALL ouro_enrich('b_jobs', 'prompt', 'answer', max_tokens := 2);
EOF
check "a non-superuser's ouro_enrich records its failed row and sees only its own (not the 3 of jobs)" \
    test "$(qa -c "SELECT string_agg(relation || ' ' || row_key, ',') FROM ouro_enrich_errors")" = "a_jobs (2)"
check "another non-superuser sees only the failures of its own table" \
    test "$(qb -c "SELECT string_agg(relation || ' ' || row_key, ',') FROM ouro_enrich_errors")" = "b_jobs (1)"
out=$(qb 2>&1 <<'EOF'
\set ON_ERROR_STOP 0
SELECT count(*) FROM ouro_enrich_failures;
DELETE FROM ouro_enrich_errors WHERE relation = 'a_jobs'::regclass;
UPDATE ouro_enrich_errors SET error = 'rewritten' WHERE relation = 'a_jobs'::regclass;
INSERT INTO ouro_enrich_errors (relation, output_column, row_key, sqlstate, error)
VALUES ('a_jobs', 'answer', '(3)', 'XX000', 'forged');
INSERT INTO ouro_enrich_errors (relation, output_column, row_key, sqlstate, error)
VALUES ('a_jobs', 'answer', '(2)', 'XX000', 'forged')
ON CONFLICT (relation, output_column, row_key) DO UPDATE SET error = EXCLUDED.error;
UPDATE ouro_enrich_errors SET relation = 'a_jobs'::regclass WHERE relation = 'b_jobs'::regclass;
EOF
)
echo "$out" | sed 's/^/# bob: /'
check "the table of all failures is closed to other roles" \
    grep -q 'permission denied for table ouro_enrich_failures' <<<"$out"
check "a role cannot record, rewrite or move failures into another's table (3 refusals)" \
    test "$(grep -cE 'new row violates check option for view "ouro_enrich_errors"|conflicting row is not visible through view "ouro_enrich_errors"' <<<"$out")" = 3
check "the other's failed row is unchanged after the attempts to delete and rewrite it" \
    test "$(q -c "SELECT string_agg(relation || ' ' || row_key || ' ' || error, ',' ORDER BY relation::text, row_key)
                  FROM ouro_enrich_failures WHERE relation::text IN ('a_jobs', 'b_jobs')")" \
         = "a_jobs (2) the prompt has no tokens,b_jobs (1) the prompt has no tokens"
qa -c "GRANT SELECT, UPDATE (answer) ON a_jobs TO ouro_bob" >/dev/null
check "a role that may fill the table's column sees its failures" \
    test "$(qb -c "SELECT count(*) FROM ouro_enrich_errors WHERE relation = 'a_jobs'::regclass")" = 1
check "the owner deletes its entry to retry the row" \
    test "$(qa -c "DELETE FROM ouro_enrich_errors WHERE row_key = '(2)' RETURNING row_key")" = "(2)"

# The 0.1.0 to 0.2.0 upgrade script makes the same objects as a fresh 0.2.0 install.
describe() {
    "${PSQL[@]}" -d "$1" <<'EOF'
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
    SELECT pg_describe_object(d.classid, d.objid, 0) || ' ' ||
           coalesce((SELECT p.provolatile::text || p.proparallel::text || p.prokind::text || p.proisstrict::text || ' ' ||
                            pg_get_function_arguments(p.oid) || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
                     FROM pg_proc p WHERE d.classid = 'pg_proc'::regclass AND p.oid = d.objid), '') ||
           coalesce((SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum)
                     FROM pg_attribute a WHERE d.classid = 'pg_class'::regclass AND a.attrelid = d.objid
                     AND a.attnum > 0), '') AS x
    FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'ouro'
    WHERE d.deptype = 'e') s;
EOF
}
"${PSQL[@]}" -d postgres -c "CREATE DATABASE ouro_up" -c "CREATE DATABASE ouro_fresh" >/dev/null
"${PSQL[@]}" -d ouro_up -c "CREATE EXTENSION ouro VERSION '0.1.0'" -c "ALTER EXTENSION ouro UPDATE TO '0.2.0'" >/dev/null
"${PSQL[@]}" -d ouro_fresh -c "CREATE EXTENSION ouro" >/dev/null
up=$(describe ouro_up) fresh=$(describe ouro_fresh)
check "ALTER EXTENSION ouro UPDATE from 0.1.0 gives a fresh 0.2.0's objects ($(wc -l <<<"$fresh") objects)" \
    test -n "$fresh" -a "$up" = "$fresh"
[ "$up" = "$fresh" ] || diff <(echo "$up") <(echo "$fresh") | head -10 | sed 's/^/# /'

check "no backend crashed except the one the test killed" \
    test "$(grep -c 'terminated by signal' "$TMP/server.log")" -le 1
finish

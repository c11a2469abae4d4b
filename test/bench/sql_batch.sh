#!/usr/bin/env bash
# test/bench/sql_batch.sh -- rows/s of 64 rows through the SQLite extension: one call per row
# (ouro_generate, ouro_classify) against one batched call (ouro_generate_batch,
# ouro_classify_batch), from the repository root.
#
#   bash test/bench/sql_batch.sh [model_dir]     default $OURO_MODEL, else test/data/models/tiny-mha-bf16
#   ROWS=64 MAX_TOKENS=16 BATCH_SIZE=16 THREADS=0 bash test/bench/sql_batch.sh
#
# Needs build/ouro.so (make sqlite) and Debian's /usr/bin/python3 (it loads SQLite extensions).
# Prints one line per measurement; the batched results are checked equal to the per-row ones.
set -eu
cd "$(dirname "$0")/../.."
MODEL=${1:-${OURO_MODEL:-test/data/models/tiny-mha-bf16}}
[ -f build/ouro.so ] || { echo "sql_batch: build/ouro.so is missing (run make sqlite)" >&2; exit 1; }
export MODEL ROWS=${ROWS:-64} MAX_TOKENS=${MAX_TOKENS:-16} BATCH_SIZE=${BATCH_SIZE:-16} THREADS=${THREADS:-0}
exec /usr/bin/python3 - <<'PY'
import json, os, sqlite3, sys, time

model, rows = os.environ["MODEL"], int(os.environ["ROWS"])
max_tokens, batch_size, threads = int(os.environ["MAX_TOKENS"]), int(os.environ["BATCH_SIZE"]), int(os.environ["THREADS"])
db = sqlite3.connect(":memory:")
db.enable_load_extension(True)
db.load_extension("build/ouro")
db.execute("SELECT ouro_load(?)", (model,))
db.execute("SELECT ouro_setting('batch_size', ?)", (batch_size,))
db.execute("SELECT ouro_setting('threads', ?)", (threads,))
starts = ["The capital of France is", "Once upon a time", "Q: What is 17 * 23? A:", "SELECT 1",
          "The best way to learn is", "In 1969, the first", "def fib(n):", "Dear customer,"]
db.execute("CREATE TABLE q(id INTEGER PRIMARY KEY, prompt TEXT, review TEXT)")
db.executemany("INSERT INTO q VALUES (?, ?, ?)",
               [(i, "%s #%d" % (starts[i % len(starts)], i),
                 ["I loved it", "awful, never again", "it was fine", "best purchase ever"][i % 4] + " (%d)" % i)
                for i in range(rows)])
labels = json.dumps(["positive", "negative", "neutral"])
db.execute("SELECT ouro_generate('warm up', NULL, 2)").fetchall()

def timed(sql, *args):
    t0 = time.perf_counter()
    out = db.execute(sql, args).fetchall()
    return time.perf_counter() - t0, out

print("# model %s, %d rows, max_tokens %d, batch_size %d, threads %s" %
      (model, rows, max_tokens, batch_size, threads or "all"))
t1, per = timed("SELECT ouro_generate(prompt, NULL, ?) FROM q ORDER BY id", max_tokens)
t2, bat = timed("SELECT ouro_generate_batch(json_group_array(prompt), NULL, ?) "
                "FROM (SELECT prompt FROM q ORDER BY id)", max_tokens)
same = [r[0] for r in per] == json.loads(bat[0][0])
print("generate  per-row  %8.2f rows/s  (%.3f s)" % (rows / t1, t1))
print("generate  batch    %8.2f rows/s  (%.3f s)  x%.2f  results equal: %s" % (rows / t2, t2, t1 / t2, same))
t3, per = timed("SELECT ouro_classify(review, ?) FROM q ORDER BY id", labels)
t4, bat = timed("SELECT ouro_classify_batch(json_group_array(review), ?) "
                "FROM (SELECT review FROM q ORDER BY id)", labels)
same_c = [r[0] for r in per] == json.loads(bat[0][0])
print("classify  per-row  %8.2f rows/s  (%.3f s)" % (rows / t3, t3))
print("classify  batch    %8.2f rows/s  (%.3f s)  x%.2f  results equal: %s" % (rows / t4, t4, t3 / t4, same_c))
sys.exit(0 if same and same_c else 1)
PY

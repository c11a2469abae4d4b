#!/usr/bin/env bash
# test/suites/tool_enrich.sh -- `ouro enrich` on a SQLite database: interrupted with SIGINT, then
# killed with SIGKILL, and run again each time; every good row filled exactly once, with the text
# the SQLite extension's ouro_generate gives it; rows committed before an interruption not
# computed again; the bad rows listed in ouro_enrich_errors; the progress bar drawn.
# Needs build/ouro, build/ouro.so, the sqlite3 shell and Debian's /usr/bin/python3.  Prints TAP lines.
set -u
cd "$(dirname "$0")/../.."
SUITE=tool_enrich; . test/tap.sh
if [ ! -x build/ouro ] || [ ! -f build/ouro.so ] || [ ! -x /usr/bin/python3 ] || ! command -v sqlite3 >/dev/null; then
    ok "# SKIP build/ouro, build/ouro.so, sqlite3 or /usr/bin/python3 missing"
    exit 0
fi
TMP=$(mktemp -d /tmp/ouro-enrich.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
DB=$TMP/q.db
MODEL=test/data/models/tiny-mha-bf16
py() { /usr/bin/python3 - "$DB" "$@"; }

# 80 rows, 2 of them bad (empty prompts); a trigger logs every fill of an answer.
py <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript("""
CREATE TABLE questions (id INTEGER PRIMARY KEY, prompt TEXT, answer TEXT);
CREATE TABLE fills (id INTEGER);
CREATE TRIGGER fill AFTER UPDATE OF answer ON questions
WHEN old.answer IS NULL AND new.answer IS NOT NULL BEGIN INSERT INTO fills VALUES (new.id); END;
""")
db.executemany("INSERT INTO questions (id, prompt) VALUES (?, ?)",
               [(i, "" if i % 40 == 7 else "Tell me about item %d" % i) for i in range(1, 81)])
db.commit()
EOF
count() { sqlite3 -cmd ".timeout 5000" "$DB" "SELECT count(answer) FROM questions"; }
enrich() { exec build/ouro enrich "$DB" --table questions --input prompt --output answer --model "$MODEL" \
               --max-tokens 96 --chunk 2 --batch-size 2 --threads 1 "$@"; }
wait_filled() {   # until at least $1 rows are committed, or the job ended
    for _ in $(seq 1 400); do
        [ "$(count)" -ge "$1" ] && return
        kill -0 "$job" 2>/dev/null || return
        sleep 0.05
    done
}

# SIGINT: stops within a decode step, keeps the committed chunks, exits 130.
enrich --progress always >"$TMP/run1.out" 2>"$TMP/run1.err" &
job=$!
wait_filled 6
kill -INT "$job"
wait "$job"
rc=$?
after_int=$(count)
echo "# after SIGINT: rc $rc, $after_int filled; $(cat "$TMP/run1.out")"
check "SIGINT stops the job with status 130 and keeps its committed chunks ($after_int rows filled)" \
    test "$rc" -eq 130 -a "$after_int" -ge 6 -a "$after_int" -lt 78
check "the progress bar shows rows, tokens/s and an ETA" \
    grep -Eq '\] [0-9]+/[0-9]+ rows  [0-9.]+ tokens/s  ETA ' "$TMP/run1.err"

# SIGKILL: nothing to clean up; the journal keeps every chunk whole or absent.
enrich --progress never >"$TMP/run2.out" 2>&1 &
job=$!
wait_filled $((after_int + 6))
kill -KILL "$job"
wait "$job" 2>/dev/null
after_kill=$(count)
echo "# after SIGKILL: $after_kill filled"
check "SIGKILL keeps the committed chunks ($after_kill rows filled)" \
    test "$after_kill" -gt "$after_int" -a "$after_kill" -lt 78

# The rerun computes exactly the rows still to do: the good rows not filled and the bad rows
# not yet recorded.
todo=$(py <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE IF NOT EXISTS ouro_enrich_errors (relation TEXT, output_column TEXT, row_key TEXT, input TEXT, error TEXT, failed_at TEXT, PRIMARY KEY (relation, output_column, row_key))")
print(db.execute("SELECT count(*) FROM questions q WHERE answer IS NULL AND NOT EXISTS "
                 "(SELECT 1 FROM ouro_enrich_errors e WHERE e.row_key = CAST(q.rowid AS TEXT))").fetchone()[0])
EOF
)
out=$(enrich --progress never --weights memory)
rc=$?
echo "# rerun: $out"
check "the rerun (weights read into memory) finishes and computes only the $todo rows left" \
    bash -c '[ "$1" -eq 0 ] && grep -q "^ouro enrich: $2 rows computed" <<<"$3"' _ "$rc" "$todo" "$out"

result=$(py <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.enable_load_extension(True)
db.load_extension("build/ouro")
db.execute("SELECT ouro_load('test/data/models/tiny-mha-bf16')")
db.execute("SELECT ouro_setting('threads', 1)")
same = db.execute("SELECT count(*) FROM questions WHERE prompt <> '' AND answer = ouro_generate(prompt, NULL, 96)").fetchone()[0]
fills = db.execute("SELECT count(*) || '/' || count(DISTINCT id) FROM fills").fetchone()[0]
errors = db.execute("SELECT group_concat(row_key || ':' || error, '|') FROM "
                    "(SELECT * FROM ouro_enrich_errors ORDER BY CAST(row_key AS INTEGER))").fetchone()[0]
print(same, fills, errors, sep="\n")
EOF
)
check "every good row is filled with the text ouro_generate gives it (78 rows)" \
    test "$(sed -n 1p <<<"$result")" = 78
check "every row was filled exactly once (78 fills of 78 rows)" test "$(sed -n 2p <<<"$result")" = "78/78"
check "the bad rows are listed with their errors" \
    test "$(sed -n 3p <<<"$result")" = "7:the prompt has no tokens|47:the prompt has no tokens"
check "a second rerun (--precision exact) has nothing to do" \
    bash -c 'grep -q "^ouro enrich: 0 rows computed, 0 filled, 0 failed" <<<"$1"' _ "$(enrich --progress never --precision exact)"
check "bad arguments are usage errors (status 2)" \
    bash -c 'build/ouro enrich "$1" --table questions --input prompt >/dev/null 2>&1; [ $? -eq 2 ]' _ "$DB"
check "a bad --precision is a usage error naming the values (status 2)" \
    bash -c 'e=$(build/ouro enrich "$1" --table questions --input prompt --output answer --model "$2" \
                 --precision fast 2>&1 >/dev/null); [ $? -eq 2 ] && grep -q "precision must be auto, exact or bf16" <<<"$e"' \
    _ "$DB" "$MODEL"
check "a missing table is an error (status 1)" \
    bash -c 'build/ouro enrich "$1" --table nope --input a --output b --model "$2" >/dev/null 2>&1; [ $? -eq 1 ]' _ "$DB" "$MODEL"
[ "$failed" -eq 0 ]

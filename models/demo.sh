#!/usr/bin/env bash
# models/demo.sh -- `make demo`: the SQLite extension on a small questions table.
#
# Builds a SQLite database with a `questions` table and runs, through the
# loadable extension build/ouro.so:
#   SELECT id, ouro_generate(prompt, 4) FROM questions;   -- 4 loop steps
#   an ouro_classify over a few rows, and ouro_depth per row.
#
# By default the model is the tiny checkpoint bundled for the tests
# (test/data/models/tiny-mha-bf16).  ITS WEIGHTS ARE RANDOM: the text it writes
# is gibberish and its labels are arbitrary; it only shows the plumbing.  For
# real answers point the demo at a downloaded Ouro model:
#   OURO_MODEL=/path/to/Ouro-1.4B make demo
# Other variables: DEMO_DB (the database file; default a temporary file, removed
# at the end), DEMO_MAX_TOKENS (new tokens per answer; default the SQL default,
# 128), SQLITE3 (the sqlite3 shell to use).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${OURO_MODEL:-test/data/models/tiny-mha-bf16}"
MAX_TOKENS="${DEMO_MAX_TOKENS:-}"
SQLITE3="${SQLITE3:-sqlite3}"

if ! command -v "$SQLITE3" >/dev/null 2>&1; then
    echo "demo: the sqlite3 shell is needed (Debian: apt-get install sqlite3)" >&2
    exit 1
fi
if [ ! -f build/ouro.so ]; then
    echo "demo: build/ouro.so is missing; run make" >&2
    exit 1
fi
if [ ! -f "$MODEL/config.json" ]; then
    echo "demo: $MODEL is not a model folder (config.json missing)" >&2
    exit 1
fi
GEN="ouro_generate(prompt, 4)"                  # 4 loop steps, greedy, 128 new tokens at most
if [ -n "$MAX_TOKENS" ]; then
    case "$MAX_TOKENS" in *[!0-9]*) echo "demo: DEMO_MAX_TOKENS must be a number" >&2; exit 1;; esac
    GEN="ouro_generate(prompt, 4, $MAX_TOKENS)"
fi

if [ -n "${DEMO_DB:-}" ]; then
    DB="$DEMO_DB"
else
    DB="$(mktemp /tmp/ouro-demo.XXXXXX.db)"
    trap 'rm -f "$DB"' EXIT
fi
rm -f "$DB"

echo "== ouro SQLite demo"
echo "   model:    $MODEL"
if [ -z "${OURO_MODEL:-}" ]; then
    echo "   NOTE: this bundled test model has RANDOM weights. Its answers are gibberish and"
    echo "   its labels arbitrary: the demo only shows the plumbing. For real answers run"
    echo "   OURO_MODEL=/path/to/Ouro-1.4B make demo"
fi
echo "   database: $DB"
echo

# The model path is passed as a SQL string literal: double any single quote.
MODEL_SQL="$(printf '%s' "$MODEL" | sed "s/'/''/g")"

"$SQLITE3" "$DB" <<SQL
.bail on
.load build/ouro
.headers on
.mode box
CREATE TABLE questions (id INTEGER PRIMARY KEY, prompt TEXT NOT NULL, review TEXT);
INSERT INTO questions (prompt, review) VALUES
  ('The capital of France is',            'I loved this film, the acting was wonderful.'),
  ('Water boils at a temperature of',     'Terrible service, I will never come back.'),
  ('The three primary colors are',        'The package arrived on Tuesday.'),
  ('def fibonacci(n):',                   'Best purchase I have made all year!');

.print '-- ouro_load: the model, cached for every connection of this process'
SELECT ouro_version() AS version, ouro_load('$MODEL_SQL') AS model;

.print '-- SELECT id, $GEN FROM questions  (4 loop steps, greedy)'
SELECT id, $GEN AS answer FROM questions;

.print '-- ouro_classify over a few rows (always one of the labels)'
SELECT id, review,
       ouro_classify(review, '["positive","negative","neutral"]') AS label,
       ouro_classify_scores(review, '["positive","negative","neutral"]') AS scores
FROM questions WHERE id <= 3;

.print '-- ouro_depth: loop steps the exit gate spends on each prompt (mean expected exit step)'
SELECT id, ouro_token_count(prompt) AS tokens, round(ouro_depth(prompt), 3) AS depth
FROM questions;

.print '-- the same, token by token, for one row'
SELECT d.pos, d.token, round(d.expected_depth, 3) AS expected_depth, d.exit_step
FROM questions q, ouro_token_depths(q.prompt) d WHERE q.id = 1;
SQL

echo
if [ -z "${OURO_MODEL:-}" ]; then
    echo "Done. Reminder: random weights, so the answers above mean nothing; see README for real models."
else
    echo "Done."
fi

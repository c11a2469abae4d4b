#!/usr/bin/env bash
# models/demo.sh -- `make demo`: the SQLite extension on a small questions table.
#
# Builds a SQLite database with a `questions` table and a `reviews` table and
# runs, through the loadable extension build/ouro.so:
#   SELECT id, ouro_chat(prompt, NULL, 4, 16) FROM questions;   -- answers, 4 loop steps
#   the same answers with 1 and 2 loop steps (what looping adds),
#   ouro_classify over the reviews, and per question ouro_depth and the depth of
#   the tokens that produce its answer (ouro_token_depths).
#
# By default the model is models/ouro-demo, a small LoopLM trained from scratch
# in this repository (models/train.py; see README "The demonstration model") on
# exactly these kinds of inputs: additions, sorting and reversing short lists,
# lookups in a small fact table, short questions, and sentiment / topic labels.
# It is a demonstration model, not a general assistant: other questions get
# wrong or empty answers.  Any other model folder:
#   OURO_MODEL=/path/to/Ouro-1.4B make demo
# Other variables: DEMO_DB (the database file; default a temporary file, removed
# at the end), DEMO_MAX_TOKENS (new tokens per answer; default 16), SQLITE3 (the
# sqlite3 shell to use).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${OURO_MODEL:-models/ouro-demo}"
MAX_TOKENS="${DEMO_MAX_TOKENS:-16}"
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
case "$MAX_TOKENS" in ''|*[!0-9]*) echo "demo: DEMO_MAX_TOKENS must be a number" >&2; exit 1;; esac

if [ -n "${DEMO_DB:-}" ]; then
    DB="$DEMO_DB"
else
    DB="$(mktemp /tmp/ouro-demo.XXXXXX.db)"
    trap 'rm -f "$DB"' EXIT
fi
rm -f "$DB"

echo "== ouro SQLite demo"
echo "   model:    $MODEL"
echo "   database: $DB"
echo

# The model path is passed as a SQL string literal: double any single quote.
MODEL_SQL="$(printf '%s' "$MODEL" | sed "s/'/''/g")"

"$SQLITE3" "$DB" <<SQL
.bail on
.load build/ouro
.headers on
.mode box
CREATE TABLE questions (id INTEGER PRIMARY KEY, prompt TEXT NOT NULL, expected TEXT, kind TEXT);
INSERT INTO questions (prompt, expected, kind) VALUES
  ('What is 4 + 5?',                                  '9',        'add, 1 digit'),
  ('What is 36 + 47?',                                '83',       'add, 2 digits'),
  ('What is 528 + 396?',                              '924',      'add, 3 digits'),
  ('What is 4071 + 958?',                             '5029',     'add, 4 digits'),
  ('Sort the numbers: 7 2 9 4 1',                     '1 2 4 7 9', 'sort'),
  ('Reverse the letters: d e m o',                    'o m e d',  'reverse'),
  ('Facts: k=3, b=8, q=1. What is k?',                '3',        'lookup, 1 hop'),
  ('Facts: k=m, m=4, b=7, q=1. What is k?',           '4',        'lookup, 2 hops'),
  ('Facts: a=w, z=5, w=z, r=2, c=9. What is a?',      '5',        'lookup, 3 hops'),
  ('What number comes after 199?',                    '200',      'question'),
  ('Which is larger, 38 or 83?',                      '83',       'question'),
  ('What day comes after Friday?',                    'Saturday', 'question'),
  ('What is the capital of Japan?',                   'Tokyo',    'question (memorised)');
CREATE TABLE reviews (id INTEGER PRIMARY KEY, review TEXT NOT NULL);
INSERT INTO reviews (review) VALUES
  ('I loved this film, the acting was wonderful.'),
  ('Terrible service, I will never come back.'),
  ('The hotel was awful and so was the staff.'),
  ('What a delightful meal! Worth every penny.'),
  ('The team won the match in the final minute.'),
  ('Heavy snow closed the roads.'),
  ('Restart the router to fix the network.'),
  ('We baked fresh bread this morning.');

.print '-- ouro_load: the model, cached for every connection of this process'
SELECT ouro_version() AS version, ouro_load('$MODEL_SQL') AS model;

.print '-- SELECT id, ouro_chat(prompt, NULL, 4, $MAX_TOKENS) FROM questions  (4 loop steps, greedy)'
SELECT id, kind, prompt, ouro_chat(prompt, NULL, 4, $MAX_TOKENS) AS answer, expected FROM questions;

.print '-- what the loop adds: the same questions with 1, 2 and 4 loop steps'
SELECT id, kind,
       ouro_chat(prompt, NULL, 1, $MAX_TOKENS) AS steps_1,
       ouro_chat(prompt, NULL, 2, $MAX_TOKENS) AS steps_2,
       ouro_chat(prompt, NULL, 4, $MAX_TOKENS) AS steps_4,
       expected
FROM questions WHERE kind LIKE 'add%' OR kind LIKE 'lookup%' OR kind IN ('sort', 'reverse');

.print '-- ouro_classify: sentiment, then topic (always one of the labels)'
SELECT id, review,
       ouro_classify(review, '["positive","negative"]') AS sentiment,
       round(json_extract(ouro_classify_scores(review, '["positive","negative"]'), '$.positive'), 4)
         AS p_positive
FROM reviews WHERE id <= 4;
SELECT id, review, ouro_classify(review, '["sports","food","technology","weather"]') AS topic
FROM reviews WHERE id >= 5;

.print '-- ouro_depth: loop steps the exit gate spends, in the chat template the model was trained'
.print '-- with (expected exit step, 1..4): depth = mean over every token of the conversation (most'
.print '-- are template text); answer_depth = mean over the tokens that produce the answer'
WITH t AS (
  SELECT id, kind, expected,
         '<|im_start|>system' || char(10) || 'You are a helpful assistant.<|im_end|>' || char(10)
         || '<|im_start|>user' || char(10) || prompt || '<|im_end|>' || char(10)
         || '<|im_start|>assistant' || char(10) AS p
  FROM questions)
SELECT id, kind, round(ouro_depth(p || expected || '<|im_end|>'), 3) AS depth,
       round((SELECT avg(d.expected_depth) FROM ouro_token_depths(p || expected || '<|im_end|>') d
              WHERE d.pos >= (SELECT count(*) FROM ouro_token_depths(p)) - 1
                AND d.pos < (SELECT count(*) FROM ouro_token_depths(p || expected || '<|im_end|>')) - 1),
             3) AS answer_depth
FROM t;

.print '-- the same, token by token, for the end of the 4-digit addition (the answer is 5029);'
.print '-- exit_step: where a token stops with exit threshold 0.5'
SELECT * FROM (
  SELECT d.pos, d.token, round(d.expected_depth, 3) AS expected_depth, d.exit_step
  FROM questions q, ouro_token_depths('<|im_start|>system' || char(10) || 'You are a helpful assistant.<|im_end|>'
         || char(10) || '<|im_start|>user' || char(10) || q.prompt || '<|im_end|>' || char(10)
         || '<|im_start|>assistant' || char(10) || q.expected || '<|im_end|>', 0.5) d
  WHERE q.id = 4 ORDER BY d.pos DESC LIMIT 8)
ORDER BY pos;
SQL

echo
echo "Done."

#!/usr/bin/env bash
# test/bench/tokenizer_fuzz.sh -- differential test of the ouro tokenizer against the Hugging
# Face `tokenizers` library (npm, in test/bench/node_modules: `cd test/bench && npm install`):
# random strings (tokenizer_fuzz.js) encoded and decoded by both, outputs compared byte for
# byte.  A development tool, not part of `make test` (CI has no network for npm).
#
#   bash test/bench/tokenizer_fuzz.sh [MODEL_DIR [ROUNDS [COUNT [MAXPIECES]]]]
#   (defaults: test/data/ouro-1.4b-config, 3 rounds of 3000 strings of up to 25 pieces)
# Prints TAP lines, one per round.
set -u
cd "$(dirname "$0")/../.."
model=${1:-test/data/ouro-1.4b-config}
rounds=${2:-3}
count=${3:-3000}
pieces=${4:-25}
if [ ! -d test/bench/node_modules/tokenizers ]; then
    echo "tokenizer_fuzz.sh: test/bench/node_modules/tokenizers is missing (cd test/bench && npm install)" >&2
    exit 1
fi
mkdir -p build/bench
cc -std=c11 -D_GNU_SOURCE -O2 -Icore test/bench/tokenizer_fuzz.c build/libouro.a \
    -lcjson -lutf8proc -lm -fopenmp -o build/bench/tokenizer_fuzz || exit 1
failed=0
for r in $(seq 1 "$rounds"); do
    d=build/bench/fuzz
    mkdir -p "$d"
    node test/bench/tokenizer_fuzz.js "$model" "$d/texts.json" "$r" "$count" "$pieces" >"$d/hf.txt" &&
        build/bench/tokenizer_fuzz "$model" "$d/texts.json" >"$d/ouro.txt"
    if cmp -s "$d/hf.txt" "$d/ouro.txt"; then
        echo "ok $r - seed $r: $count strings encode and decode as Hugging Face"
    else
        echo "not ok $r - seed $r: outputs differ ($d/hf.txt, $d/ouro.txt)"
        diff -a "$d/hf.txt" "$d/ouro.txt" | head -6 | sed 's/^/# /'
        failed=$((failed + 1))
    fi
done
echo "1..$rounds"
[ "$failed" -eq 0 ]

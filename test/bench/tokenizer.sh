#!/usr/bin/env bash
# test/bench/tokenizer.sh -- tokenizer speed in MB/s: ouro against the Hugging Face
# `tokenizers` library on the same text, on this machine, in one run.
#
# Builds build/bench/tokenizer_bench from test/bench/tokenizer_bench.c and build/libouro.a
# (make core first), assembles the corpus -- the licence texts and copyright files Debian
# installs (/usr/share/common-licenses/*, /usr/share/doc/*/copyright), in sorted order, whole
# files until OURO_TOKBENCH_MB megabytes (default 4) -- and runs:
#   - tokenizer_bench: load time of tokenizer.json; the cases.json texts; the corpus, one
#     document per encode, on 1 thread and on OURO_TOKBENCH_THREADS threads (default: the
#     number of cores) sharing one loaded tokenizer;
#   - tokenizer_bench_hf.js: the same through npm `tokenizers` (the official binding of the
#     Rust library), when test/bench/node_modules holds it (`cd test/bench && npm install`);
#     otherwise it says so and prints ouro's figures only.
# Equal checksums mean ouro and Hugging Face gave identical ids for the whole corpus.
#
#   bash test/bench/tokenizer.sh [MODEL_DIR]     (default test/data/ouro-1.4b-config)
set -u
cd "$(dirname "$0")/../.."
model=${1:-test/data/ouro-1.4b-config}
mb=${OURO_TOKBENCH_MB:-4}
threads=${OURO_TOKBENCH_THREADS:-$(nproc 2>/dev/null || echo 2)}
CC=${CC:-cc}

if [ ! -f build/libouro.a ]; then
    echo "tokenizer.sh: build/libouro.a is missing (run make core)" >&2
    exit 1
fi
mkdir -p build/bench
$CC -std=c11 -D_GNU_SOURCE -O2 -Icore test/bench/tokenizer_bench.c build/libouro.a \
    -lcjson -lutf8proc -lm -fopenmp -lpthread -o build/bench/tokenizer_bench || exit 1

list=build/bench/tokenizer_corpus.list
limit=$((mb * 1000000))
total=0
: >"$list"
for f in $(ls /usr/share/common-licenses/* /usr/share/doc/*/copyright 2>/dev/null | LC_ALL=C sort); do
    [ -f "$f" ] && [ -r "$f" ] || continue
    [ "$total" -ge "$limit" ] && break
    echo "$f" >>"$list"
    total=$((total + $(stat -L -c %s "$f")))
done
if [ ! -s "$list" ]; then
    echo "tokenizer.sh: no corpus files under /usr/share/common-licenses or /usr/share/doc" >&2
    exit 1
fi
echo "corpus: $(wc -l <"$list") files, $total bytes (Debian licence and copyright texts)"

build/bench/tokenizer_bench "$model" test/data/tokenizer/cases.json "$list" "$threads" | tee build/bench/tokenizer_ouro.txt
rc=${PIPESTATUS[0]}

if [ -d test/bench/node_modules/tokenizers ] && command -v node >/dev/null; then
    RAYON_NUM_THREADS=$threads node test/bench/tokenizer_bench_hf.js "$model" \
        test/data/tokenizer/cases.json "$list" "$threads" | tee build/bench/tokenizer_hf.txt
    o=$(grep -o 'checksum=[0-9a-f]*' build/bench/tokenizer_ouro.txt)
    h=$(grep -o 'checksum=[0-9a-f]*' build/bench/tokenizer_hf.txt)
    if [ -n "$o" ] && [ "$o" = "$h" ]; then
        echo "ids: identical to Hugging Face tokenizers on the whole corpus ($o)"
    else
        echo "ids: DIFFER from Hugging Face tokenizers (ouro $o, hf $h)"
        rc=1
    fi
    awk '/^TOKBENCH/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); o[kv[1]] = kv[2] } }
         /^HFBENCH/  { for (i = 2; i <= NF; i++) { split($i, kv, "="); h[kv[1]] = kv[2] } }
         END { if (h["corpus_mbs"] > 0 && h["cases_mbs"] > 0)
                   printf "ouro/hf speed: corpus %.2fx (1 thread), %.2fx (%s threads), cases %.2fx, load %.2fx faster\n",
                          o["corpus_mbs"] / h["corpus_mbs"], o["corpus_mt_mbs"] / h["corpus_mt_mbs"], o["threads"],
                          o["cases_mbs"] / h["cases_mbs"], h["load_ms"] / o["load_ms"] }' \
        build/bench/tokenizer_ouro.txt build/bench/tokenizer_hf.txt
else
    echo "hf: test/bench/node_modules/tokenizers not installed (cd test/bench && npm install); ouro figures only"
fi
exit "$rc"

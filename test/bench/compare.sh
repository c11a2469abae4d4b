#!/usr/bin/env bash
# compare.sh -- what `make bench-compare` runs: ouro and llama.cpp on the same checkpoint, side by
# side, in one run, and the ratio of every column.
#
# llama.cpp is never built or installed here: LLAMA_CPP names a build the user made (the folder
# holding llama-bench and llama-batched-bench, or its build/bin or bin), and the GGUF variables
# name GGUF files of the same checkpoint that ouro's folders hold (llama.cpp's
# convert_hf_to_gguf.py, then llama-quantize for Q8_0 / Q4_0).  Each format with a GGUF is
# compared with ouro's matching format:
#   GGUF_BF16   llama.cpp BF16  vs the bf16 folder OURO_BF16 at `precision exact`
#               (and, with a second row, at `precision bf16`; the default, auto, is
#               one of the two: `build/ouro build-info` says which)
#   GGUF_Q8_0   llama.cpp Q8_0  vs the q8 folder OURO_Q8 (`ouro convert`)
#   GGUF_Q4_0   llama.cpp Q4_0  vs the 4-bit folder OURO_Q4, when one is given
# Columns: prefill of each PROMPTS length, decode of 1 sequence (mean over DECODE tokens; llama-bench
# -n), and batched decode of each BATCHES size (total tok/s over BATCH_STEPS steps after a shared
# 8-token prompt; llama-batched-bench -pps -npp 8).  The two runtimes alternate, in the opposite
# order every run, COMPARE_RUNS times; each column prints both medians with their ranges, the
# ratio of the medians (ouro / llama.cpp) and the issue's target (1.2x; 2.5x for batches).
#
# Environment (make variables of the same names are passed through):
#   LLAMA_CPP, GGUF_BF16, GGUF_Q8_0, GGUF_Q4_0   see above; without LLAMA_CPP: a note, exit 0
#   OURO_BF16 (models/synthetic/ouro-1.4b), OURO_Q8 (models/synthetic/ouro-1.4b-q8), OURO_Q4
#   THREADS (every core), COMPARE_RUNS (3), PROMPTS (64,256), DECODE (16), BATCHES (8,16),
#   BATCH_STEPS (4)
#   MODEL_BENCH   the ouro program (default build/bench/model_bench, built when missing)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${LLAMA_CPP:-}" ]; then
    echo "bench-compare: LLAMA_CPP is not set; nothing to compare."
    echo "  usage: make bench-compare LLAMA_CPP=/path/to/llama.cpp GGUF_BF16=m-bf16.gguf" \
         "[GGUF_Q8_0=m-q8_0.gguf] [GGUF_Q4_0=m-q4_0.gguf]"
    exit 0
fi

find_tool() {   # find_tool NAME: the path of a llama.cpp program under $LLAMA_CPP, or nothing
    local d
    for d in "$LLAMA_CPP/build/bin" "$LLAMA_CPP/bin" "$LLAMA_CPP"; do
        if [ -x "$d/$1" ] && [ -f "$d/$1" ]; then
            echo "$d/$1"
            return
        fi
    done
}
LB=$(find_tool llama-bench)
LBB=$(find_tool llama-batched-bench)
if [ -z "$LB" ]; then
    echo "bench-compare: no llama-bench under $LLAMA_CPP (looked in build/bin, bin and the folder itself)" >&2
    exit 1
fi
[ -n "$LBB" ] || echo "bench-compare: no llama-batched-bench under $LLAMA_CPP: the batch columns are left out"

THREADS=${THREADS:-$(nproc)}
RUNS=${COMPARE_RUNS:-3}
PROMPTS=${PROMPTS:-64,256}
DECODE=${DECODE:-16}
BATCHES=${BATCHES:-8,16}
BATCH_STEPS=${BATCH_STEPS:-4}
OURO_BF16=${OURO_BF16:-models/synthetic/ouro-1.4b}
OURO_Q8=${OURO_Q8:-models/synthetic/ouro-1.4b-q8}
OURO_Q4=${OURO_Q4:-}
MODEL_BENCH=${MODEL_BENCH:-}
if [ -z "$MODEL_BENCH" ]; then
    MODEL_BENCH=build/bench/model_bench
    # rebuilt when missing or older than its source or the library: a program
    # linked against an earlier library would time the earlier code
    if [ ! -x "$MODEL_BENCH" ] || [ test/bench/model_bench.c -nt "$MODEL_BENCH" ] ||
       [ build/libouro.a -nt "$MODEL_BENCH" ]; then
        mkdir -p build/bench
        ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -g -fopenmp -Icore test/bench/model_bench.c \
            build/libouro.a -lcjson -lutf8proc -lm -fopenmp -o "$MODEL_BENCH"
    fi
fi

# rows: "LABEL|OURO_DIR|OURO_PRECISION|GGUF"
rows=()
if [ -n "${GGUF_BF16:-}" ]; then
    rows+=("bf16 (ouro precision exact) vs BF16|$OURO_BF16|exact|$GGUF_BF16")
    rows+=("bf16 (ouro precision bf16) vs BF16|$OURO_BF16|bf16|$GGUF_BF16")
fi
[ -n "${GGUF_Q8_0:-}" ] && rows+=("q8 vs Q8_0|$OURO_Q8||$GGUF_Q8_0")
if [ -n "${GGUF_Q4_0:-}" ]; then
    if [ -n "$OURO_Q4" ]; then
        rows+=("q4 vs Q4_0|$OURO_Q4||$GGUF_Q4_0")
    else
        echo "bench-compare: GGUF_Q4_0 is given but OURO_Q4 (an ouro 4-bit folder) is not: Q4_0 left out"
    fi
fi
if [ ${#rows[@]} -eq 0 ]; then
    echo "bench-compare: no GGUF file given (GGUF_BF16, GGUF_Q8_0, GGUF_Q4_0)" >&2
    exit 1
fi
for r in "${rows[@]}"; do
    IFS='|' read -r label dir prec gguf <<<"$r"
    for f in "$gguf" "$dir/config.json"; do
        if [ ! -f "$f" ]; then
            echo "bench-compare: $f is missing ($label)" >&2
            exit 1
        fi
    done
done

results=$(mktemp)
trap 'rm -f "$results"' EXIT
max_batch=$(echo "$BATCHES" | tr ',' '\n' | sort -n | tail -n 1)

run_ouro() {   # run_ouro LABEL DIR PRECISION: appends "LABEL|column|ouro|tok/s" lines
    local args=(--model "$2" --threads "$THREADS" --runs 1 --prefill "$PROMPTS" --decode "$DECODE"
                --batch "$BATCHES" --batch-steps "$BATCH_STEPS" --skip-load --skip-kernels --skip-kv
                --skip-adaptive)
    [ -n "$3" ] && args+=(--precision "$3")
    "$MODEL_BENCH" "${args[@]}" | awk -v l="$1" '$1 == "FIGURE" {
        c = $2; sub(/^prefill_/, "pp", c); sub(/^decode_1$/, "tg", c); sub(/^decode_/, "batch", c)
        if (c !~ /^steady/) print l "|" c "|ouro|" $3 }' >>"$results"
}

run_llama() {  # run_llama LABEL GGUF: the same columns from llama-bench and llama-batched-bench
    "$LB" -m "$2" -t "$THREADS" -p "$PROMPTS" -n "$DECODE" -r 1 -o jsonl | awk -v l="$1" '
        function field(name,   m) {
            if (match($0, "\"" name "\": *[-0-9.e+]+")) {
                m = substr($0, RSTART, RLENGTH); sub(/^[^:]*: */, "", m); return m + 0
            }
            return -1
        }
        /^\{/ { p = field("n_prompt"); g = field("n_gen"); ts = field("avg_ts")
                if (p > 0 && g == 0) print l "|pp" p "|llama|" ts
                else if (p == 0 && g > 0) print l "|tg|llama|" ts }' >>"$results"
    [ -n "$LBB" ] || return 0
    # the markdown table: | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
    "$LBB" -m "$2" -t "$THREADS" -c $((8 + max_batch * (BATCH_STEPS + 1) + 64)) -pps -npp 8 \
        -ntg "$BATCH_STEPS" -npl "$BATCHES" 2>/dev/null | awk -F'|' -v l="$1" '
        NF >= 10 && $2 ~ /^ *[0-9]+ *$/ { b = $4 + 0; s = $9 + 0; print l "|batch" b "|llama|" s }' >>"$results"
}

# llama.cpp's GGUF is read into the page cache right before each row's runs: a GGUF of Ouro
# repeats the shared layers per loop step, so it is four times ouro's file, and the rows before
# would otherwise have pushed parts of it out (its figures then include reads from disk).  ouro's
# folder is left to its own loader, which faults its pages in as 2 MB pages where the kernel
# allows; reading it here first would fill the page cache with small pages instead.
warm() {   # warm GGUF: reads it into the page cache; says so when it cannot stay there
    local kb avail
    cat "$1" >/dev/null 2>&1 || true
    kb=$(du -kL "$1" 2>/dev/null | cut -f1 || true)
    avail=$(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo)
    if [ -n "$kb" ] && [ -n "$avail" ] && [ "$kb" -gt $((avail * 8 / 10)) ]; then
        echo "  note: $1 takes $((kb >> 20)) GiB, close to what the page cache can hold" \
             "($((avail >> 20)) GiB available): llama.cpp's figures may include reads from disk" >&2
    fi
}

echo "bench-compare: $RUNS runs, $THREADS threads, ouro $MODEL_BENCH, llama.cpp $LB${LBB:+ and $LBB}"
echo "  load average before: $(cut -d' ' -f1 /proc/loadavg)"
for ((run = 1; run <= RUNS; run++)); do
    for r in "${rows[@]}"; do
        IFS='|' read -r label dir prec gguf <<<"$r"
        echo "  run $run: $label" >&2
        warm "$gguf"
        if [ $((run % 2)) = 1 ]; then
            run_ouro "$label" "$dir" "$prec"
            run_llama "$label" "$gguf"
        else
            run_llama "$label" "$gguf"
            run_ouro "$label" "$dir" "$prec"
        fi
    done
done
echo "  load average after: $(cut -d' ' -f1 /proc/loadavg)"
bash test/bench/compare_report.sh "$results"

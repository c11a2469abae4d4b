#!/usr/bin/env bash
# bench_compare.sh -- `make bench-compare` (test/bench/compare.sh) on stand-in programs: a fake
# llama-bench, llama-batched-bench and model_bench print known figures that change from run to
# run, and the suite checks the medians, ranges and ratios printed, the interleaved order, and
# what happens without LLAMA_CPP or without llama-bench.  Runs no model: a few seconds.
set -u
cd "$(dirname "$0")/../.."
SUITE=bench_compare; . test/tap.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/llama/build/bin" "$tmp/ouro-bf16"
echo '{}' >"$tmp/ouro-bf16/config.json"
: >"$tmp/m-bf16.gguf"
log=$tmp/order.log

# run i (1-based, counted per program and precision) multiplies every figure by mult[i]
cat >"$tmp/common.sh" <<'EOF'
next_mult() {   # next_mult COUNTER "m1 m2 ...": the multiplier of this call
    local n=0
    [ -f "$1" ] && n=$(cat "$1")
    n=$((n + 1))
    echo "$n" >"$1"
    echo "$2" | cut -d' ' -f"$n"
}
EOF
cat >"$tmp/model_bench" <<EOF
#!/usr/bin/env bash
. "$tmp/common.sh"
scale=1; prec=exact
case " \$* " in *" --precision bf16 "*) scale=2; prec=bf16 ;; esac
case " \$* " in *" --runs 1 "*) ;; *) echo "model_bench: expected --runs 1" >&2; exit 2 ;; esac
echo ouro >>"$log"
m=\$(next_mult "$tmp/ouro.\$prec" "1.0 1.2 0.9")
awk -v m="\$m" -v s="\$scale" 'BEGIN {
    printf "some text the report ignores\n"
    printf "FIGURE prefill_64 %.4f %.4f %.4f\n", 10*m*s, 10*m*s, 10*m*s
    printf "FIGURE prefill_256 %.4f %.4f %.4f\n", 11*m*s, 11*m*s, 11*m*s
    printf "FIGURE decode_1 %.4f %.4f %.4f\n", 2*m*s, 2*m*s, 2*m*s
    printf "FIGURE steady_1 1.2 1.2 1.2\n"
    printf "FIGURE decode_8 %.4f %.4f %.4f\n", 20*m*s, 20*m*s, 20*m*s
    printf "FIGURE decode_16 %.4f %.4f %.4f\n", 30*m*s, 30*m*s, 30*m*s }'
EOF
cat >"$tmp/llama/build/bin/llama-bench" <<EOF
#!/usr/bin/env bash
. "$tmp/common.sh"
case " \$* " in *" -o jsonl "*) ;; *) echo "llama-bench: expected -o jsonl" >&2; exit 2 ;; esac
echo llama >>"$log"
m=\$(next_mult "$tmp/llama.count" "1.0 1.0 1.1 1.1 0.8 0.8")
awk -v m="\$m" 'BEGIN {
    printf "{\"build_commit\": \"abc\", \"cpu_info\": \"x, y\", \"n_prompt\": 64, \"n_gen\": 0, \"avg_ns\": 1, \"avg_ts\": %.6f, \"stddev_ts\": 0.1}\n", 20*m
    printf "{\"build_commit\": \"abc\", \"n_prompt\": 256, \"n_gen\": 0, \"avg_ts\": %.6f, \"stddev_ts\": 0.1}\n", 22*m
    printf "{\"build_commit\": \"abc\", \"n_prompt\": 0, \"n_gen\": 16, \"avg_ts\": %.6f, \"stddev_ts\": 0.1}\n", 4*m }'
EOF
cat >"$tmp/llama/build/bin/llama-batched-bench" <<EOF
#!/usr/bin/env bash
. "$tmp/common.sh"
m=\$(next_mult "$tmp/batched.count" "1.0 1.0 1.1 1.1 0.8 0.8")
echo "main: n_kv_max = 200"
echo
echo "|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |"
echo "|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|"
awk -v m="\$m" 'BEGIN {
    printf "|     8 |      4 |    8 |     40 |    0.100 |    80.00 |    1.000 | %8.3f |    1.100 |    36.36 |\n", 8*m
    printf "|     8 |      4 |   16 |     72 |    0.100 |    80.00 |    1.000 | %8.3f |    1.100 |    65.45 |\n", 12*m }'
EOF
chmod +x "$tmp/model_bench" "$tmp/llama/build/bin/llama-bench" "$tmp/llama/build/bin/llama-batched-bench"

# --- without LLAMA_CPP: a note, status 0, nothing run ---------------------
out=$(env -u LLAMA_CPP MODEL_BENCH="$tmp/model_bench" bash test/bench/compare.sh 2>&1)
rc=$?
check "without LLAMA_CPP it exits 0" test "$rc" = 0
check "without LLAMA_CPP it says so" grep -q 'LLAMA_CPP is not set' <<<"$out"
check "without LLAMA_CPP nothing runs" test ! -e "$log"
out=$(make -s bench-compare LLAMA_CPP= 2>&1)
check "make bench-compare without LLAMA_CPP exits 0 and says so" grep -q 'LLAMA_CPP is not set' <<<"$out"

# --- a folder without llama-bench: an error ------------------------------
mkdir -p "$tmp/empty"
out=$(LLAMA_CPP=$tmp/empty GGUF_BF16=$tmp/m-bf16.gguf MODEL_BENCH=$tmp/model_bench \
      bash test/bench/compare.sh 2>&1)
rc=$?
check "a LLAMA_CPP without llama-bench fails" test "$rc" != 0
check "... and names what it looked for" grep -q 'no llama-bench under' <<<"$out"

# --- three interleaved runs ------------------------------------------------
out=$(LLAMA_CPP=$tmp/llama GGUF_BF16=$tmp/m-bf16.gguf OURO_BF16=$tmp/ouro-bf16 \
      MODEL_BENCH=$tmp/model_bench COMPARE_RUNS=3 THREADS=2 bash test/bench/compare.sh 2>/dev/null)
rc=$?
echo "$out" | sed 's/^/# /'
check "the comparison exits 0" test "$rc" = 0
ratio() { grep -F "RATIO $1|$2|" <<<"$out" | cut -d'|' -f3; }
row="bf16 (ouro precision exact) vs BF16"
row2="bf16 (ouro precision bf16) vs BF16"
check "prefill 64: ratio of the medians 10 / 20" test "$(ratio "$row" pp64)" = 0.50
check "prefill 256: 11 / 22" test "$(ratio "$row" pp256)" = 0.50
check "decode 1 sequence: 2 / 4" test "$(ratio "$row" tg)" = 0.50
check "decode 8 sequences: 20 / 8 (llama-batched-bench's S_TG)" test "$(ratio "$row" batch8)" = 2.50
check "decode 16 sequences: 30 / 12" test "$(ratio "$row" batch16)" = 2.50
check "the precision bf16 row runs model_bench with --precision bf16" test "$(ratio "$row2" pp64)" = 1.00
check "the precision bf16 row, 16 sequences: 60 / 12" test "$(ratio "$row2" batch16)" = 5.00
check "ouro's prefill 64 median and range over the runs" \
    grep -qE "^bf16 \(ouro precision exact\) vs BF16 +prefill 64 +10\.00 \(9\.00-12\.00\) +20\.00 \(16\.00-22\.00\) +0\.50x +>= 1\.2x$" <<<"$out"
check "batch columns carry the 2.5x target" grep -qE "decode 8 seqs .*2\.50x +>= 2\.5x$" <<<"$out"
check "the steady-step figure is not a column" bash -c '! grep -q steady <<<"$1"' _ "$out"
check "columns in order: prefill 64, 256, decode 1, 8, 16" \
    test "$(grep -F "RATIO $row|" <<<"$out" | cut -d'|' -f2 | tr '\n' ' ')" = "pp64 pp256 tg batch8 batch16 "
# per run, rows inner: run 1 ouro first, run 2 llama.cpp first, run 3 ouro first
check "the runtimes alternate which goes first" \
    test "$(tr '\n' ' ' <"$log")" = "ouro llama ouro llama llama ouro llama ouro ouro llama ouro llama "

# --- the report alone: a column one side lacks ----------------------------
printf 'r|pp64|ouro|5\nr|pp64|llama|4\nr|tg|ouro|3\n' >"$tmp/res"
out=$(bash test/bench/compare_report.sh "$tmp/res")
check "a single run prints no range, and the ratio" grep -qE "^r +prefill 64 +5\.00 +4\.00 +1\.25x" <<<"$out"
check "a column llama.cpp lacks prints - for its side and the ratio" grep -qE "^r +decode 1 seq +3\.00 +- +- " <<<"$out"
finish

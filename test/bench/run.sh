#!/usr/bin/env bash
# run.sh -- what `make bench` runs (after `make all`): this machine's speed figures for ouro.
#
# 1. builds the checkpoint generator and the bench programs with cc against build/libouro.a
#    into build/bench/;
# 2. writes the full-size synthetic Ouro-1.4B checkpoint into models/synthetic/ (ignored by git)
#    if it is absent, plus two copies with lower exit-gate biases, whose random gates stop
#    decoded tokens later (for the adaptive-depth figures; the depth reached is measured);
# 3. prints the machine's limits (test/bench/limits.c, with the same number of threads), then the
#    model figures (test/bench/model_bench.c), each a mean with its spread over OURO_BENCH_RUNS runs
#    and a share of the limit that bounds it (memory bandwidth for single-sequence decode; the
#    f32 FMA, bf16 dot or 8-bit dot peak for prefill and batched decode, by path);
# 4. times llama.cpp's llama-bench and PyTorch on the same model when they are on PATH / importable
#    (never built or installed here).
#
# Environment:
#   OURO_BENCH_THREADS   threads (default: every core)
#   OURO_BENCH_BUDGET    seconds the model figures may take; longer ones are skipped (default 780)
#   OURO_BENCH_RUNS      runs per figure, printed as their median and range (default 3)
#   OURO_BENCH_QUICK=1   a smoke run: short prompts, 2 tokens, batches 4 and 8, 1 run
#   OURO_BENCH_GGUF      a GGUF of the same model for llama-bench (else models/synthetic/*.gguf)
#
# The q8 figures run on models/synthetic/ouro-1.4b-q8, which `ouro convert` writes from the
# synthetic checkpoint when it is absent or older; the q4 figures on models/synthetic/ouro-1.4b-q4
# (`ouro convert --type q4`), likewise.
#   OURO_BENCH_TORCH_CODE  folder with modeling_ouro.py / configuration_ouro.py for PyTorch
set -euo pipefail
cd "$(dirname "$0")/../.."

CC=${CC:-cc}
B=build/bench
SYN=models/synthetic
MODEL=$SYN/ouro-1.4b
THRESHOLD=0.5
THREADS=${OURO_BENCH_THREADS:-$(nproc)}
BUDGET=${OURO_BENCH_BUDGET:-780}
RUNS=${OURO_BENCH_RUNS:-3}
if [ "${OURO_BENCH_QUICK:-0}" = 1 ]; then
    RUNS=${OURO_BENCH_RUNS:-1}
fi
CFLAGS="-std=c11 -D_GNU_SOURCE -O2 -g -fopenmp -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla -Icore"
LIBS="-lcjson -lutf8proc -lm -fopenmp"

if [ ! -f build/libouro.a ]; then
    echo "bench: build/libouro.a is missing; run 'make bench' (it builds the library first)" >&2
    exit 1
fi
mkdir -p "$B"
$CC $CFLAGS models/make_synthetic.c -lcjson -lm -o "$B/make_synthetic"
$CC $CFLAGS test/bench/limits.c build/libouro.a -lopenblas $LIBS -o "$B/limits"
$CC $CFLAGS test/bench/model_bench.c build/libouro.a $LIBS -o "$B/model_bench"

# --- the synthetic checkpoints ---------------------------------------------
echo "== synthetic checkpoints (models/synthetic/, not in git) =="
gen() {   # gen DIR [generator options]: writes DIR unless it is complete already
    local dir=$1
    shift
    if [ -f "$dir/model.safetensors" ] && [ -f "$dir/synthetic.json" ]; then
        echo "$dir: present ($(cat "$dir/synthetic.json" | tr -d '\n' | cut -c1-120)...)"
    else
        "$B/make_synthetic" --out "$dir" "$@" | tail -n 1
    fi
}
gen "$MODEL"                                  # gate bias 2: mean exit step about 1 at q = 0.5
gen "$SYN/ouro-1.4b-bias-0.50" --gate-bias -0.5   # deeper exits: the bench prints the depth
gen "$SYN/ouro-1.4b-bias0.50" --gate-bias 0.5     # measured, which the gate decides per token
echo

# --- machine limits --------------------------------------------------------
echo "== machine limits =="
"$B/limits" --threads "$THREADS" --file "$MODEL/model.safetensors" | tee "$B/limits.txt"
LIMITS_OUT=$(grep '^LIMITS ' "$B/limits.txt" || true)
BW=$(echo "$LIMITS_OUT" | sed -n 's/.*bw_gbs=\([0-9.]*\).*/\1/p')
BWFILE=$(echo "$LIMITS_OUT" | sed -n 's/.*bw_file_gbs=\([0-9.]*\).*/\1/p')
GEMM=$(echo "$LIMITS_OUT" | sed -n 's/.*sgemm_gflops=\([0-9.]*\).*/\1/p')
FMA=$(echo "$LIMITS_OUT" | sed -n 's/.*fma_f32_gflops=\([0-9.]*\).*/\1/p')
BF16DOT=$(echo "$LIMITS_OUT" | sed -n 's/.* bf16_gflops=\([0-9.]*\).*/\1/p')
INT8DOT=$(echo "$LIMITS_OUT" | sed -n 's/.* int8_gops=\([0-9.]*\).*/\1/p')
AMXBF16=$(echo "$LIMITS_OUT" | sed -n 's/.*amx_bf16_gflops=\([0-9.]*\).*/\1/p')
AMXINT8=$(echo "$LIMITS_OUT" | sed -n 's/.*amx_int8_gops=\([0-9.]*\).*/\1/p')
PEAKS=(--bw "${BW:-0}" --bw-file "${BWFILE:-0}" --gemm "${GEMM:-0}" --fma "${FMA:-0}" --bf16dot "${BF16DOT:-0}"
       --int8dot "${INT8DOT:-0}" --amxbf16 "${AMXBF16:-0}" --amxint8 "${AMXINT8:-0}" --runs "$RUNS")
echo

# --- model figures ---------------------------------------------------------
# The SQL settings' default precision, auto, is one of the two runs below.
AUTO=$(build/ouro build-info 2>/dev/null | sed -n 's/.*"precision_auto": "\([a-z0-9]*\)".*/\1/p')
echo "default precision here (auto): ${AUTO:-unknown}"
echo "== ouro on $MODEL, precision exact =="
ARGS=(--model "$MODEL" --threads "$THREADS" "${PEAKS[@]}"
      --threshold $THRESHOLD --budget "$BUDGET"
      --adaptive "$MODEL,$SYN/ouro-1.4b-bias0.50,$SYN/ouro-1.4b-bias-0.50")
if [ "${OURO_BENCH_QUICK:-0}" = 1 ]; then
    ARGS+=(--prefill 16,64 --decode 2 --batch 4,8 --batch-steps 1)
else
    ARGS+=(--prefill 64,256,1024 --decode 8 --batch 4,8,16,32 --batch-steps 2)
fi
"$B/model_bench" "${ARGS[@]}"
echo

# --- the approximate bf16-activation path, where the CPU has AVX-512 BF16 ---
echo "== ouro on $MODEL, precision bf16 (approximate) =="
if [ "${OURO_BENCH_QUICK:-0}" = 1 ]; then
    BARGS=(--prefill 64 --decode 2 --batch 8 --batch-steps 1)
else
    BARGS=(--prefill 64,256 --decode 8 --batch 8,16 --batch-steps 2)
fi
"$B/model_bench" --model "$MODEL" --threads "$THREADS" "${PEAKS[@]}" \
    --budget "$BUDGET" --skip-load --skip-kernels --skip-kv --precision bf16 "${BARGS[@]}"
echo

# --- q8 weights (ouro convert), approximate like llama.cpp's Q8_0 ----------
Q8=$SYN/ouro-1.4b-q8
echo "== ouro on $Q8: q8 weights from ouro convert (8-bit weights and activations, approximate) =="
if [ ! -f "$Q8/model.safetensors" ] || [ "$MODEL/model.safetensors" -nt "$Q8/model.safetensors" ]; then
    build/ouro convert --model "$MODEL" --out "$Q8" --threads "$THREADS"
fi
if [ "${OURO_BENCH_QUICK:-0}" = 1 ]; then
    QARGS=(--prefill 16,64 --decode 2 --batch 4,8 --batch-steps 1)
else
    QARGS=(--prefill 64,256,1024 --decode 8 --batch 4,8,16,32 --batch-steps 2)
fi
"$B/model_bench" --model "$Q8" --threads "$THREADS" "${PEAKS[@]}" \
    --budget "$BUDGET" --skip-kernels --skip-kv "${QARGS[@]}"
echo

# --- q4 weights (ouro convert --type q4), approximate like llama.cpp's Q4_0 --
Q4=$SYN/ouro-1.4b-q4
echo "== ouro on $Q4: q4 weights from ouro convert --type q4 (4-bit weights, 8-bit activations, approximate) =="
if [ ! -f "$Q4/model.safetensors" ] || [ "$MODEL/model.safetensors" -nt "$Q4/model.safetensors" ]; then
    build/ouro convert --model "$MODEL" --out "$Q4" --type q4 --threads "$THREADS"
fi
"$B/model_bench" --model "$Q4" --threads "$THREADS" "${PEAKS[@]}" \
    --budget "$BUDGET" --skip-kernels "${QARGS[@]}"
echo

# --- tokenizer and SQL batching ---------------------------------------------
echo "== tokenizer: ouro and Hugging Face tokenizers on the same text =="
bash test/bench/tokenizer.sh || echo "tokenizer bench failed"
echo
if [ -f test/bench/sql_batch.sh ]; then
    echo "== SQL: 64 rows, one call per row versus one batched call =="
    bash test/bench/sql_batch.sh || echo "SQL batch bench failed"
    echo
fi

if [ -f test/bench/pg_batch.sh ]; then
    echo "== PostgreSQL on $Q8: 32 rows x 32 new tokens, the per-row query batched, the explicit batch call, batching off =="
    ROWS=32 MAX_TOKENS=32 bash test/bench/pg_batch.sh "$Q8" || echo "PostgreSQL batch bench failed"
    echo
fi

# --- other runtimes, when the user has them --------------------------------
echo "== other runtimes on the same model (not built here) =="
if command -v llama-bench >/dev/null 2>&1; then
    GGUF=${OURO_BENCH_GGUF:-$(ls "$SYN"/*.gguf "$MODEL"/*.gguf 2>/dev/null | head -n 1 || true)}
    if [ -n "$GGUF" ] && [ -f "$GGUF" ]; then
        echo "llama-bench on $GGUF ($THREADS threads):"
        llama-bench -m "$GGUF" -t "$THREADS" -p 64,256 -n 8 -r 1 || echo "llama-bench failed"
    else
        echo "llama-bench: found, but no GGUF of the model (convert $MODEL with llama.cpp's"
        echo "  convert_hf_to_gguf.py and set OURO_BENCH_GGUF)"
    fi
else
    echo "llama-bench: not found"
fi
PY=${PYTHON:-python3}
if command -v "$PY" >/dev/null 2>&1 && "$PY" -c 'import torch, transformers' >/dev/null 2>&1; then
    OURO_MODEL="$MODEL" OURO_THREADS="$THREADS" OURO_CODE="${OURO_BENCH_TORCH_CODE:-}" "$PY" - <<'PYEOF' || echo "PyTorch: failed (see above)"
# PyTorch timing of the same checkpoint: prefill of 64 / 256 tokens, decode of 8 tokens.
import os, shutil, tempfile, time, torch, transformers
model_dir, code = os.environ["OURO_MODEL"], os.environ["OURO_CODE"]
torch.set_num_threads(int(os.environ["OURO_THREADS"]))
if code:   # upstream modeling code next to the weights, for trust_remote_code
    tmp = tempfile.mkdtemp()
    for f in os.listdir(model_dir):
        os.symlink(os.path.abspath(os.path.join(model_dir, f)), os.path.join(tmp, f))
    for f in os.listdir(code):
        if f.endswith(".py"):
            shutil.copy(os.path.join(code, f), tmp)
    model_dir = tmp
print(f"PyTorch {torch.__version__}, transformers {transformers.__version__}, "
      f"{torch.get_num_threads()} threads")
m = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16,
                                                      trust_remote_code=True).eval()
with torch.no_grad():
    for n in (64, 256):
        ids = torch.randint(256, 40000, (1, n))
        t = time.time(); m(ids); dt = time.time() - t
        print(f"  prefill {n:4d} tokens: {n / dt:8.2f} tok/s")
    ids = torch.randint(256, 40000, (1, 8))
    t = time.time()
    m.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    dt = time.time() - t
    print(f"  decode 8 tokens (with an 8-token prompt): {8 / dt:8.2f} tok/s")
PYEOF
else
    echo "PyTorch: not found (python3 cannot import torch and transformers)"
fi

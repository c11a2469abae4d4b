#!/usr/bin/env bash
# test/suites/tool_safety.sh -- the `ouro` tool when its model file changes under it, and the
# NUL rule of its JSON, run from the repo root by test/run.sh.
#   - a generation whose model.safetensors is truncated while it runs ends with an error
#     naming the file (exit status 1), not a SIGBUS;
#   - decoded text in the tool's JSON never holds U+0000: a 0x00 byte is U+FFFD there too.
set -u
cd "$(dirname "$0")/../.."
SUITE=tool_safety; . test/tap.sh

TMP=$(mktemp -d /tmp/ouro-tool-safety.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cp -r test/data/models/tiny-mha-bf16 "$TMP/m"
# 7891 tokens at 16 loop steps (about 6 s on two cores here): still running after the 1.5 s below
prompt=$(for i in $(seq 0 1799); do printf 'word%d ' "$i"; done)
build/ouro generate --model "$TMP/m" --prompt "$prompt" --max-loops 16 --max-tokens 1 --threads 2 \
    --n-ctx 8192 >"$TMP/out" 2>"$TMP/err" &
pid=$!
sleep 1.5
truncate -s 4096 "$TMP/m/model.safetensors"
wait "$pid"
rc=$?
echo "# exit status $rc: $(head -c 300 "$TMP/err")"
check "a model file truncated under a generation ends it with an error naming the file (status 1)" \
    bash -c "test $rc -eq 1 && grep -q 'm/model.safetensors\" was truncated or overwritten while in use' '$TMP/err'"

out=$(build/ouro detokenize --model test/data/models/tiny-mha-bf16 --ids 104,190,104)
check "detokenize JSON: a 0x00 byte is U+FFFD, never \\u0000 ($out)" \
    test "$out" = $'{"text": "x\xef\xbf\xbdx"}'
echo "1..$n"
[ "$failed" -eq 0 ]

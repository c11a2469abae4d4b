#!/usr/bin/env bash
# gguf_standin.sh -- models/gguf_standin.py (the llama.cpp stand-in of an Ouro checkpoint that
# `make bench-compare` runs) on the tiny bf16 test model (2 layers x 4 loop steps), read back
# by a GGUF reader written here from the format's description: header, metadata, tensor table,
# alignment and size; block k holds layer k mod 2; bf16 bytes equal the checkpoint's, q8_0 and
# q4_0 blocks dequantize to within half a step of it; rows that are not whole blocks stay bf16.
set -u
cd "$(dirname "$0")/../.."
SUITE=gguf_standin; . test/tap.sh

PY=/usr/bin/python3
if ! "$PY" -c 'import numpy' 2>/dev/null; then
    not_ok "numpy for /usr/bin/python3 (Debian: python3-numpy; .ci/deps.sh installs it)"
    finish
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=test/data/models/tiny-mha-bf16

cat >"$tmp/check.py" <<'EOF'
import json, struct, sys
import numpy as np

model, path, kind = sys.argv[1:]
buf = open(path, "rb").read()
pos = 0

def take(fmt):
    global pos
    v = struct.unpack_from("<" + fmt, buf, pos)
    pos += struct.calcsize("<" + fmt)
    return v[0] if len(v) == 1 else v

def string():
    global pos
    n = take("Q")
    pos += n
    return buf[pos - n:pos].decode()

def value(t):
    if t == 8:
        return string()
    if t == 9:
        et, n = take("I"), take("Q")
        return [value(et) for _ in range(n)]
    return take({0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q",
                 11: "q", 12: "d"}[t])

def say(ok, what):
    print(("ok " if ok else "not ok ") + what)

magic, version, n_tensors, n_kv = buf[:4], *struct.unpack_from("<IQQ", buf, 4)
pos = 24
say(magic == b"GGUF" and version == 3, f"{kind}: GGUF magic and version 3")
kv = {}
for _ in range(n_kv):
    k = string()
    kv[k] = value(take("I"))
cfg = json.load(open(model + "/config.json"))
N, T = cfg["num_hidden_layers"], cfg["total_ut_steps"]
say(kv.get("general.architecture") == "llama" and kv.get("llama.block_count") == N * T
    and kv.get("llama.embedding_length") == cfg["hidden_size"]
    and kv.get("llama.feed_forward_length") == cfg["intermediate_size"]
    and kv.get("llama.attention.head_count") == cfg["num_attention_heads"],
    f"{kind}: llama metadata with {N} x {T} = {N * T} blocks and the checkpoint's shapes")
tok = json.load(open(model + "/tokenizer.json"))
say(len(kv.get("tokenizer.ggml.tokens", [])) == len(tok["model"]["vocab"])
    and kv["tokenizer.ggml.tokens"][tok["model"]["vocab"]["the"]] == "the"
    and len(kv.get("tokenizer.ggml.merges", [])) == len(tok["model"]["merges"]),
    f"{kind}: the checkpoint's vocabulary and merges")
align = kv.get("general.alignment", 32)
infos = {}
for _ in range(n_tensors):
    name = string()
    nd = take("I")
    dims = [take("Q") for _ in range(nd)]
    infos[name] = (dims, take("I"), take("Q"))
data = pos + (-pos % align)
say(len(infos) == 1 + 9 * N * T + 2, f"{kind}: {len(infos)} tensors (embeddings, 9 per block, norm, lm_head)")
say(all(off % align == 0 for _, _, off in infos.values()), f"{kind}: every tensor aligned to {align}")

hdr_n = struct.unpack_from("<Q", open(model + "/model.safetensors", "rb").read(8))[0]
st = open(model + "/model.safetensors", "rb").read()
hdr = json.loads(st[8:8 + hdr_n])
def ref(name):   # the checkpoint's tensor as float32 (bf16 bits), and its shape
    t = hdr[name]
    a, b = t["data_offsets"]
    u = np.frombuffer(st[8 + hdr_n + a:8 + hdr_n + b], dtype="<u2")
    return (u.astype(np.uint32) << 16).view(np.float32).reshape(t["shape"]), u

SIZE = {0: 4, 30: 2}
def read(name):  # the stand-in's tensor as float32, its ggml type, and its byte span
    dims, t, off = infos[name]
    n = int(np.prod(dims))
    at = data + off
    if t in SIZE:
        raw = buf[at:at + n * SIZE[t]]
        if t == 0:
            return np.frombuffer(raw, "<f4").copy(), t, at + n * SIZE[t], None
        u = np.frombuffer(raw, "<u2")
        return (u.astype(np.uint32) << 16).view(np.float32), t, at + n * 2, None
    nb = n // 32
    if t == 8:
        blk = np.frombuffer(buf[at:at + nb * 34], dtype=[("d", "<f2"), ("q", "i1", 32)])
        q = blk["q"].astype(np.float32)
    else:
        blk = np.frombuffer(buf[at:at + nb * 18], dtype=[("d", "<f2"), ("q", "u1", 16)])
        q = np.concatenate([blk["q"] & 15, blk["q"] >> 4], axis=1).astype(np.float32) - 8
    d = blk["d"].astype(np.float32)
    return (q * d[:, None]).ravel(), t, at + nb * (34 if t == 8 else 18), np.repeat(np.abs(d), 32)

want = {"bf16": 30, "q8_0": 8, "q4_0": 2}[kind]
bad, end = [], 0
for k in range(N * T):
    for g, s in [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                 ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                 ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                 ("ffn_down", "mlp.down_proj"), ("attn_norm", "input_layernorm"),
                 ("ffn_norm", "post_attention_layernorm")]:
        x, u = ref(f"model.layers.{k % N}.{s}.weight")
        dims = infos[f"blk.{k}.{g}.weight"][0]
        if dims != list(reversed(x.shape)):
            bad.append(f"blk.{k}.{g} dims {dims}")
            continue
        y, t, e, step = read(f"blk.{k}.{g}.weight")
        end = max(end, e)
        x = x.ravel()
        if x.ndim and g.endswith("norm"):
            good = t == 0 and np.array_equal(y, x)
        elif x.size and ref(f"model.layers.{k % N}.{s}.weight")[0].shape[-1] % 32:
            good = t == 30 and np.array_equal(y, x)          # not whole blocks: stays bf16
        elif t == 30:
            good = want == 30 and np.array_equal(y, x)
        else:
            # half a step, and the f16 rounding of d over the block's largest value
            lim = step * (1.0 if t == 2 else 0.5) + 1e-3 * np.abs(x).max()
            good = t == want and np.all(np.abs(y - x) <= lim)
        if not good:
            bad.append(f"blk.{k}.{g} (type {t})")
say(not bad, f"{kind}: block k holds layer k mod {N}, values right" + (": " + ", ".join(bad[:4]) if bad else ""))
for name, src in [("token_embd.weight", "model.embed_tokens.weight"), ("output.weight", "lm_head.weight")]:
    x, _ = ref(src)
    y, t, e, step = read(name)
    end = max(end, e)
    lim = 0 if t == 30 else (step * (1.0 if t == 2 else 0.5) + 1e-3 * np.abs(x).max())
    say(t == want and np.all(np.abs(y - x.ravel()) <= lim), f"{kind}: {name} ({t})")
say(len(buf) >= end and len(buf) - end < align, f"{kind}: file ends with the last tensor ({len(buf)} bytes)")
EOF

for t in bf16 q8_0 q4_0; do
    if out=$("$PY" models/gguf_standin.py "$model" "$tmp/$t.gguf" --type "$t" 2>&1); then
        ok "writes a $t file: $out"
    else
        not_ok "writes a $t file: $out"
        continue
    fi
    while IFS= read -r line; do
        case $line in
            "ok "*) ok "${line#ok }" ;;
            *) not_ok "${line#not ok }" ;;
        esac
    done < <("$PY" "$tmp/check.py" "$model" "$tmp/$t.gguf" "$t" 2>&1)
done
finish

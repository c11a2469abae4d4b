#!/usr/bin/python3
"""gguf_standin.py -- a GGUF file for llama.cpp that does the work of an Ouro checkpoint.

llama.cpp has no Ouro architecture (its loader knows "llama" and many others, not "ouro"), so
`make bench-compare` cannot give it an Ouro checkpoint as it is.  This writes the closest thing
it can run: a Llama-architecture model whose N x T blocks are the checkpoint's N layers repeated
T times (block k is layer k mod N), the order in which Ouro applies them, with the checkpoint's
own weights, embeddings, final norm and lm_head.  Per token it then reads the same bytes and does
the same products as ouro does at full depth (T loop steps); it leaves out only what Ouro adds
to a Llama block: the second RMSNorm after attention and after the MLP, and the final norm and
exit gate after each loop step (vectors of the hidden size: under 0.1% of the work).  It is a
speed stand-in: its text is not Ouro's (the q and k rows are not permuted for llama.cpp's rope).

    /usr/bin/python3 models/gguf_standin.py MODEL_DIR OUT.gguf --type bf16|q8_0|q4_0

MODEL_DIR is an Ouro folder with bf16 weights (config.json, model.safetensors, tokenizer.json).
q8_0 and q4_0 quantize every matrix (embeddings and lm_head included, as llama-quantize --pure
does) with llama.cpp's reference rounding; a matrix whose rows are not whole blocks of 32 stays
bf16.  Needs numpy (Debian: python3-numpy).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

ALIGN = 32
GGML_TYPE = {"f32": 0, "q4_0": 2, "q8_0": 8, "bf16": 30}
FILE_TYPE = {"bf16": 32, "q8_0": 7, "q4_0": 2}    # llama_ftype
T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9


def gstr(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == T_STRING:
        return out + gstr(value)
    if vtype == T_ARRAY:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        if etype == T_STRING:
            return out + b"".join(gstr(x) for x in items)
        return out + np.asarray(items, dtype="<i4").tobytes()
    fmt = {T_UINT32: "<I", T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?"}[vtype]
    return out + struct.pack(fmt, value)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    tensors = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "BF16":
            sys.exit(f"gguf_standin: {name} is {t['dtype']}; a bf16 folder is needed")
        a, b = t["data_offsets"]
        tensors[name] = (data[a:b].view("<u2").reshape(t["shape"]))
    return tensors


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def quantize(u16, kind):
    """Rows of bf16 bits as GGUF bytes of `kind` (blocks of 32 along each row)."""
    if kind == "bf16":
        return np.ascontiguousarray(u16).tobytes()
    out, rows = [], u16.shape[0]
    for r0 in range(0, rows, 1024):      # a slice at a time keeps memory small
        x = bf16_to_f32(u16[r0:r0 + 1024]).reshape(-1, 32)
        if kind == "q8_0":             # d = max|x| / 127, q = round(x / d)
            d = np.abs(x).max(axis=1) / 127.0
            inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
            q = np.rint(x * inv[:, None]).astype(np.int8)
            blk = np.empty(len(x), dtype=[("d", "<f2"), ("q", "i1", 32)])
            blk["d"], blk["q"] = d.astype(np.float16), q
        else:                          # q4_0: d = (signed value of max |x|) / -8
            i = np.abs(x).argmax(axis=1)
            d = x[np.arange(len(x)), i] / -8.0
            inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
            q = np.minimum(15, (x * inv[:, None] + 8.5).astype(np.int8)).astype(np.uint8)
            blk = np.empty(len(x), dtype=[("d", "<f2"), ("q", "u1", 16)])
            blk["d"], blk["q"] = d.astype(np.float16), q[:, :16] | (q[:, 16:] << 4)
        out.append(blk.tobytes())
    return b"".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--type", choices=["bf16", "q8_0", "q4_0"], default="bf16")
    a = ap.parse_args()

    cfg = json.load(open(os.path.join(a.model_dir, "config.json")))
    n_layer, steps = cfg["num_hidden_layers"], cfg.get("total_ut_steps", 4)
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim", hidden // heads)
    w = read_safetensors(os.path.join(a.model_dir, "model.safetensors"))
    tok = json.load(open(os.path.join(a.model_dir, "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    tokens = [""] * len(vocab)
    for s, i in vocab.items():
        tokens[i] = s
    types = [1] * len(tokens)
    for t in tok.get("added_tokens", []):
        if t["id"] < len(tokens):
            tokens[t["id"]], types[t["id"]] = t["content"], 3 if t.get("special") else 4
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]

    # (gguf name, safetensors name, matrix?) in file order
    plan = [("token_embd.weight", "model.embed_tokens.weight", True)]
    layer_names = [("attn_norm", "input_layernorm", False), ("attn_q", "self_attn.q_proj", True),
                   ("attn_k", "self_attn.k_proj", True), ("attn_v", "self_attn.v_proj", True),
                   ("attn_output", "self_attn.o_proj", True),
                   ("ffn_norm", "post_attention_layernorm", False),
                   ("ffn_gate", "mlp.gate_proj", True), ("ffn_up", "mlp.up_proj", True),
                   ("ffn_down", "mlp.down_proj", True)]
    for k in range(n_layer * steps):
        for g, s, mat in layer_names:
            plan.append((f"blk.{k}.{g}.weight", f"model.layers.{k % n_layer}.{s}.weight", mat))
    plan.append(("output_norm.weight", "model.norm.weight", False))
    if "lm_head.weight" in w:   # tied checkpoints have none: llama.cpp then uses token_embd
        plan.append(("output.weight", "lm_head.weight", True))

    meta = [
        kv("general.architecture", T_STRING, "llama"),
        kv("general.name", T_STRING, f"ouro stand-in ({n_layer} layers x {steps} steps)"),
        kv("general.alignment", T_UINT32, ALIGN),
        kv("general.file_type", T_UINT32, FILE_TYPE[a.type]),
        kv("llama.block_count", T_UINT32, n_layer * steps),
        kv("llama.context_length", T_UINT32, min(cfg.get("max_position_embeddings", 4096), 65536)),
        kv("llama.embedding_length", T_UINT32, hidden),
        kv("llama.feed_forward_length", T_UINT32, cfg["intermediate_size"]),
        kv("llama.attention.head_count", T_UINT32, heads),
        kv("llama.attention.head_count_kv", T_UINT32, cfg.get("num_key_value_heads", heads)),
        kv("llama.attention.key_length", T_UINT32, head_dim),
        kv("llama.attention.value_length", T_UINT32, head_dim),
        kv("llama.rope.dimension_count", T_UINT32, head_dim),
        kv("llama.rope.freq_base", T_FLOAT32, float(cfg.get("rope_theta", 10000.0))),
        kv("llama.attention.layer_norm_rms_epsilon", T_FLOAT32, float(cfg["rms_norm_eps"])),
        kv("llama.vocab_size", T_UINT32, len(tokens)),
        kv("tokenizer.ggml.model", T_STRING, "gpt2"),
        kv("tokenizer.ggml.pre", T_STRING, "default"),
        kv("tokenizer.ggml.tokens", T_ARRAY, (T_STRING, tokens)),
        kv("tokenizer.ggml.token_type", T_ARRAY, (T_INT32, types)),
        kv("tokenizer.ggml.merges", T_ARRAY, (T_STRING, merges)),
        kv("tokenizer.ggml.bos_token_id", T_UINT32, cfg.get("bos_token_id", 0) or 0),
        kv("tokenizer.ggml.eos_token_id", T_UINT32, cfg.get("eos_token_id", 0) or 0),
        kv("tokenizer.ggml.add_bos_token", T_BOOL, False),
    ]

    def nbytes(shape, kind):
        n = int(np.prod(shape))
        return {"f32": 4 * n, "bf16": 2 * n, "q8_0": n // 32 * 34, "q4_0": n // 32 * 18}[kind]

    def kind_of(s, mat):   # rows that are not whole blocks stay bf16, as llama-quantize does
        if not mat:
            return "f32"
        return a.type if w[s].shape[-1] % 32 == 0 else "bf16"

    infos, offset = [], 0
    for g, s, mat in plan:
        shape = list(w[s].shape)
        kind = kind_of(s, mat)
        infos.append(gstr(g) + struct.pack("<I", len(shape)) +
                     b"".join(struct.pack("<Q", d) for d in reversed(shape)) +
                     struct.pack("<IQ", GGML_TYPE[kind], offset))
        offset += (nbytes(shape, kind) + ALIGN - 1) // ALIGN * ALIGN

    with open(a.out, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, len(plan), len(meta)))
        f.write(b"".join(meta) + b"".join(infos))
        f.write(b"\0" * (-f.tell() % ALIGN))
        cache, unsynced = {}, 0
        for g, s, mat in plan:
            if s not in cache:   # each layer is quantized once and written T times
                kind = kind_of(s, mat)
                cache[s] = quantize(w[s], kind) if mat else bf16_to_f32(w[s]).tobytes()
            b = cache[s]
            f.write(b)
            f.write(b"\0" * (-len(b) % ALIGN))
            unsynced += len(b)
            if unsynced > 1 << 28:   # written pages leave the page cache, not the reader's
                f.flush()
                os.fdatasync(f.fileno())
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                unsynced = 0
    print(f"{a.out}: {os.path.getsize(a.out) / 1e9:.2f} GB, {n_layer * steps} blocks ({n_layer} layers"
          f" x {steps} steps), {a.type}")


if __name__ == "__main__":
    main()

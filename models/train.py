#!/usr/bin/python3
"""
train.py -- trains the demonstration LoopLM (models/ouro-demo) from scratch on
the CPU, with the training objective of the Ouro paper ("Scaling Latent
Reasoning via Looped Language Models", arXiv 2510.25741, section 3).

    /usr/bin/python3 models/train.py all --out models/ouro-demo     (what `make model` runs)
    /usr/bin/python3 models/train.py stage1 | stage2 | export        (the parts)

THE MODEL is the architecture of OuroForCausalLM as core/forward.c computes it
(so that the saved folder loads and runs in ouro exactly):
  - one stack of N decoder layers applied T = total_ut_steps times;
  - layer: h = h + RMSNorm_in2(Attn(RMSNorm_in(h)));  h = h + RMSNorm_post2(MLP(RMSNorm_post(h)))
    (the four "sandwich" norms); MLP(x) = down(silu(gate(x)) * up(x));
    causal attention with rotate-half RoPE, no biases;
  - after every step h = RMSNorm_final(h): the normed state is what the next
    step receives and what lm_head reads at that step;
  - the exit gate g_t = w . h_t + b on the normed state, lambda_t = sigmoid(g_t),
    exit pdf p_t = lambda_t prod_{j<t}(1 - lambda_j) for t < T, p_T = the rest.

THE OBJECTIVE (paper section 3.3 "Training objective" and 3.4 "adaptive exit"):

  Stage I, the entropy-regularised expected loss over the exit distribution,
  per answer token i:
      L_I = sum_t p_t(i) * CE_t(i)  -  beta * H(p(.|i)),   H(p) = -sum_t p_t log p_t
  where CE_t is the next-token cross-entropy of the logits read at step t.
  The entropy term is the KL to a uniform prior over the T steps up to a
  constant (KL(p || U) = log T - H(p)), which keeps the gate from collapsing
  onto one step while the deeper steps are still worse.  beta = 0.05 in the
  end, after a warm start: beta = 1.0 for the first 20% of the steps, falling
  linearly to 0.05 at 50%.  (With beta = 0.05 from the start this small model
  put 90% of the exit mass on step 1 within 100 steps, while the untrained
  deeper steps were worse; steps 3 and 4 then got almost no gradient, the
  self-reinforcing collapse the paper describes.  A large beta first trains
  every step about equally; the paper's beta then lets the gate specialise.)

  Stage II, the adaptive gate with the language model frozen: per-step losses
  are computed without gradient, and the gate learns whether one more step
  still helps.  For t = 1..T-1 and token i:
      I_t(i) = max(0, CE_t(i) - CE_{t+1}(i))            (improvement of step t+1)
      w_t(i) = sigmoid(k * (I_t(i) - gamma))           (target: continue)
      L_II = -mean_{i,t} [ w_t log(1 - lambda_t) + (1 - w_t) log lambda_t ]
  with k = 50, gamma = 0.005 (the paper's values).  Only the gate's weight
  and bias change in stage II.

The loss is taken on the assistant's answer tokens (and its closing
<|im_end|>) only: the prompts are generated text whose prediction teaches
nothing, and the compute budget is small.

Training runs on one CPU thread (torch.set_num_threads(1)).
"""
import argparse
import json
import math
import os
import random
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402

BETA = 0.05            # stage I entropy weight (final)
BETA_START = 1.0       # stage I entropy weight of the warm start


def beta_at(step, total):
    """The entropy weight at a stage I step: BETA_START, then down to BETA."""
    f = step / max(1, total)
    if f < 0.2:
        return BETA_START
    if f < 0.5:
        return BETA_START + (BETA - BETA_START) * (f - 0.2) / 0.3
    return BETA
GATE_K = 50.0          # stage II slope
GATE_GAMMA = 0.005     # stage II improvement threshold


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

def default_config(vocab_size):
    return {
        "architectures": ["OuroForCausalLM"], "model_type": "ouro",
        "vocab_size": vocab_size, "hidden_size": 256, "intermediate_size": 768,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
        "hidden_act": "silu", "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0, "rope_scaling": None, "tie_word_embeddings": False,
        "total_ut_steps": 4, "early_exit_threshold": 1.0, "use_cache": True,
        "use_sliding_window": False, "sliding_window": None, "max_window_layers": 2,
        "attention_dropout": 0.0, "initializer_range": 0.02,
        "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": None, "torch_dtype": "bfloat16",
    }


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        D, I = c["hidden_size"], c["intermediate_size"]
        H, KVH = c["num_attention_heads"], c["num_key_value_heads"]
        hd = D // H
        self.H, self.KVH, self.hd = H, KVH, hd
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)  # noqa: E731
        self.self_attn = torch.nn.Module()
        a = self.self_attn
        a.q_proj, a.k_proj, a.v_proj = lin(D, H * hd), lin(D, KVH * hd), lin(D, KVH * hd)
        a.o_proj = lin(H * hd, D)
        self.mlp = torch.nn.Module()
        self.mlp.gate_proj, self.mlp.up_proj, self.mlp.down_proj = lin(D, I), lin(D, I), lin(I, D)
        eps = c["rms_norm_eps"]
        self.input_layernorm, self.input_layernorm_2 = RMSNorm(D, eps), RMSNorm(D, eps)
        self.post_attention_layernorm, self.post_attention_layernorm_2 = RMSNorm(D, eps), RMSNorm(D, eps)

    def forward(self, h, cos, sin, mask):
        B, S, _ = h.shape
        a, mlp = self.self_attn, self.mlp
        x = self.input_layernorm(h)
        q = a.q_proj(x).view(B, S, self.H, self.hd).transpose(1, 2)
        k = a.k_proj(x).view(B, S, self.KVH, self.hd).transpose(1, 2)
        v = a.v_proj(x).view(B, S, self.KVH, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if self.KVH != self.H:
            k = k.repeat_interleave(self.H // self.KVH, dim=1)
            v = v.repeat_interleave(self.H // self.KVH, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, S, self.H * self.hd)
        h = h + self.input_layernorm_2(a.o_proj(o))
        x = self.post_attention_layernorm(h)
        m = mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
        return h + self.post_attention_layernorm_2(m)


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class LoopLM(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        D, V = c["hidden_size"], c["vocab_size"]
        self.embed_tokens = torch.nn.Embedding(V, D)
        self.layers = torch.nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(D, c["rms_norm_eps"])
        self.early_exit_gate = torch.nn.Linear(D, 1)
        self.lm_head = torch.nn.Linear(D, V, bias=False)
        hd = D // c["num_attention_heads"]
        self.register_buffer("inv_freq", 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd)),
                             persistent=False)
        std = c["initializer_range"]
        for mod in self.modules():
            if isinstance(mod, (torch.nn.Linear, torch.nn.Embedding)):
                torch.nn.init.normal_(mod.weight, std=std)
        torch.nn.init.zeros_(self.early_exit_gate.bias)

    def forward(self, ids, steps=None):
        """Normed states (T, B, S, D) and gate logits (T, B, S) of every step."""
        T = steps or self.c["total_ut_steps"]
        B, S = ids.shape
        pos = torch.arange(S, dtype=torch.float32)
        ang = pos[:, None] * self.inv_freq[None, :]
        cos, sin = ang.cos(), ang.sin()
        mask = torch.full((S, S), float("-inf")).triu(1)
        h = self.embed_tokens(ids)
        hs, gs = [], []
        for _ in range(T):
            for ly in self.layers:
                h = ly(h, cos, sin, mask)
            h = self.norm(h)
            hs.append(h)
            gs.append(self.early_exit_gate(h).squeeze(-1))
        return torch.stack(hs), torch.stack(gs)


def exit_pdf(g):
    """Exit distribution (T, ...) from gate logits (T, ...), as core/math.c ouro_exit_pdf."""
    lam = torch.sigmoid(g)
    T = g.shape[0]
    rem = torch.ones_like(g[0])
    ps = []
    for t in range(T):
        if t < T - 1:
            ps.append(lam[t] * rem)
            rem = rem * (1 - lam[t])
        else:
            ps.append(rem)
    return torch.stack(ps)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def encode_example(tok, user, answer):
    """Token ids of prompt + answer + <|im_end|>, and the index where the answer starts.
    Prompt and answer are encoded apart, as ouro_classify encodes the prompt and
    each label apart."""
    p = tok.encode(tasks.render_prompt(user))
    a = tok.encode(answer) + [tok.vocab["<|im_end|>"]]
    return p + a, len(p)


def make_batch(seqs):
    S = max(len(s) for s, _ in seqs) - 1
    n = len(seqs)
    x = torch.zeros((n, S), dtype=torch.long)
    y = torch.full((n, S), -100, dtype=torch.long)
    for b, (ids, a0) in enumerate(seqs):
        t = torch.tensor(ids)
        x[b, :len(ids) - 1] = t[:-1]
        y[b, a0 - 1:len(ids) - 1] = t[a0:]     # targets: the answer tokens and <|im_end|>
    return x, y


class Batches:
    """Training batches; examples are drawn `pool` batches at a time and grouped by
    length, so little of each batch is padding.  pool = 1 (the default) keeps each
    batch a random mix of tasks: grouping by length makes most batches one task,
    and the loss then swings from batch to batch with the task (the first
    committed model was trained with pool 8, and its additions stayed at 0%)."""

    def __init__(self, tok, r, n, max_len, pool=1):
        self.tok, self.r, self.n, self.max_len, self.ready = tok, r, n, max_len, []
        self.POOL = pool

    def next(self):
        if not self.ready:
            seqs = []
            while len(seqs) < self.n * self.POOL:
                _, user, ans, _ = tasks.sample(self.r)
                ids, a0 = encode_example(self.tok, user, ans)
                if len(ids) <= self.max_len + 1:
                    seqs.append((ids, a0))
            seqs.sort(key=lambda s: len(s[0]))
            self.ready = [seqs[i:i + self.n] for i in range(0, len(seqs), self.n)]
            self.r.shuffle(self.ready)
        return make_batch(self.ready.pop())


def build_tokenizer(vocab_size, seed):
    r = random.Random(seed)
    texts = []
    for _ in range(20000):
        _, user, ans, _ = tasks.sample(r)
        texts.append(tasks.render_prompt(user) + ans + "<|im_end|>")
    # every heldout-side generator shares the same words and digits, so the
    # vocabulary sees nothing of the held-out examples themselves
    vocab, merges = tasks.train_bpe(texts, vocab_size)
    return tasks.Tokenizer(vocab, merges)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def per_step_ce(model, hs, y):
    """CE (T, M) of every step's logits at the M target positions (y != -100)."""
    sel = y != -100
    h = hs[:, sel]                                          # (T, M, D)
    logits = model.lm_head(h)                               # (T, M, V)
    T, M = h.shape[0], h.shape[1]
    ce = F.cross_entropy(logits.reshape(T * M, -1), y[sel].repeat(T), reduction="none")
    return ce.view(T, M)


def stage1_loss(model, x, y, beta=BETA):
    hs, gs = model(x)
    ce = per_step_ce(model, hs, y)                          # (T, B, S)
    p = exit_pdf(gs[:, y != -100])                          # (T, M)
    expected = (p * ce).sum(0)                              # sum_t p_t CE_t
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(0)   # H(p)
    loss = (expected - beta * entropy).mean()
    with torch.no_grad():
        stats = {"ce_t": [float(v) for v in ce.mean(1)], "p_t": [float(v) for v in p.mean(1)]}
    return loss, stats


def stage2_loss(model, x, y):
    with torch.no_grad():
        hs, _ = model(x)
        ce = per_step_ce(model, hs, y)
    gs = model.early_exit_gate(hs[:, y != -100]).squeeze(-1)  # (T, M); only the gate has gradients
    lam = torch.sigmoid(gs[:-1])                            # (T-1, M)
    imp = (ce[:-1] - ce[1:]).clamp_min(0)                   # I_t = max(0, CE_t - CE_{t+1})
    w = torch.sigmoid(GATE_K * (imp - GATE_GAMMA))          # target: continue
    eps = 1e-7
    bce = -(w * torch.log((1 - lam).clamp_min(eps)) + (1 - w) * torch.log(lam.clamp_min(eps)))
    loss = bce.mean()
    with torch.no_grad():
        stats = {"cont_target": float(w.mean()), "cont_pred": float((1 - lam).mean())}
    return loss, stats


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------

def hf_state(model):
    sd = {}
    for k, v in model.state_dict().items():
        if k == "inv_freq":
            continue
        name = k if k.startswith("lm_head") else "model." + k
        sd[name] = v
    return sd


def save_safetensors(path, tensors):
    """bf16 safetensors (round to nearest even, as torch's .to(bfloat16))."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.bfloat16).contiguous()
        raw = t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        assert info["dtype"] == "BF16"
        raw = np.frombuffer(data[a:b], dtype=np.int16).copy()
        t = torch.from_numpy(raw).view(torch.bfloat16).float().view(info["shape"])
        out[name] = t
    return out


def load_model(folder):
    """The model of a saved folder, in f32 (the bf16 weights exactly), and its tokenizer."""
    c = json.load(open(os.path.join(folder, "config.json")))
    model = LoopLM(c)
    sd = load_safetensors(os.path.join(folder, "model.safetensors"))
    model.load_state_dict({(k[6:] if k.startswith("model.") else k): v for k, v in sd.items()})
    model.eval()
    tok = tasks.Tokenizer.from_json(json.load(open(os.path.join(folder, "tokenizer.json"))))
    return model, tok


def export(model, tok, out):
    os.makedirs(out, exist_ok=True)
    save_safetensors(os.path.join(out, "model.safetensors"), hf_state(model))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(model.c, f, indent=2)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok.to_json(), f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tasks.tokenizer_config(), f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"additional_special_tokens": tasks.SPECIALS, "bos_token": "<|endoftext|>",
                   "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>"}, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 0, "eos_token_id": [2, 0], "do_sample": False}, f, indent=2)


def save_ckpt(path, model, opt, step, tok, stage):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "config": model.c,
                "tokenizer": tok.to_json(), "stage": stage}, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def log(f, msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    if f:
        f.write(line + "\n")
        f.flush()


def run_stage1(a, lf):
    ck = os.path.join(a.work, "stage1.pt")
    torch.manual_seed(a.seed)
    if os.path.exists(ck) and a.resume:
        st = torch.load(ck)
        tok = tasks.Tokenizer.from_json(st["tokenizer"])
        model = LoopLM(st["config"])
        model.load_state_dict(st["model"])
        step0 = st["step"]
    else:
        tok = build_tokenizer(a.vocab, a.seed)
        c = default_config(len(tok.vocab))
        c.update(hidden_size=a.hidden, intermediate_size=a.inter, num_hidden_layers=a.layers,
                 num_attention_heads=a.heads, num_key_value_heads=a.heads, max_window_layers=a.layers)
        model = LoopLM(c)
        step0 = 0
        st = None
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01)
    if st:
        opt.load_state_dict(st["opt"])
    nparam = sum(p.numel() for p in model.parameters())
    log(lf, "stage I: %d parameters, vocab %d, config %s" % (nparam, len(tok.vocab), json.dumps(
        {k: model.c[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                 "num_attention_heads", "total_ut_steps")})))
    data = Batches(tok, random.Random(a.seed * 1000 + step0), a.batch, a.max_len, a.pool)
    t0 = time.time()
    model.train()
    last = min(a.steps1, a.stop_after or a.steps1)
    for step in range(step0, last):
        warm = min(1.0, (step + 1) / a.warmup)
        lr = a.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / a.steps1)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = data.next()
        beta = beta_at(step, a.steps1)
        loss, stats = stage1_loss(model, x, y, beta)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % a.log_every == 0 or step == step0:
            log(lf, "stage I step %d beta %.3f loss %.4f ce_t %s p_t %s lr %.2e %.2f s/step" % (
                step + 1, beta, float(loss), " ".join("%.3f" % v for v in stats["ce_t"]),
                " ".join("%.2f" % v for v in stats["p_t"]), lr, (time.time() - t0) / (step + 1 - step0)))
        if (step + 1) % a.ckpt_every == 0 or step + 1 == last:
            save_ckpt(ck, model, opt, step + 1, tok, 1)
            export(model, tok, a.out)
    return model, tok


def run_stage2(a, lf):
    st = torch.load(os.path.join(a.work, "stage1.pt"))
    tok = tasks.Tokenizer.from_json(st["tokenizer"])
    model = LoopLM(st["config"])
    model.load_state_dict(st["model"])
    for p in model.parameters():
        p.requires_grad_(False)
    gate = model.early_exit_gate
    for p in gate.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(gate.parameters(), lr=a.lr2)
    data = Batches(tok, random.Random(a.seed * 7919 + 2), a.batch, a.max_len)
    t0 = time.time()
    model.eval()
    for step in range(a.steps2):
        x, y = data.next()
        loss, stats = stage2_loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % a.log_every == 0 or step == 0:
            log(lf, "stage II step %d loss %.4f continue target %.3f predicted %.3f %.2f s/step" % (
                step + 1, float(loss), stats["cont_target"], stats["cont_pred"], (time.time() - t0) / (step + 1)))
        if (step + 1) % a.ckpt_every == 0 or step + 1 == a.steps2:
            save_ckpt(os.path.join(a.work, "stage2.pt"), model, opt, step + 1, tok, 2)
            export(model, tok, a.out)
    return model, tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["all", "stage1", "stage2", "export", "speed"])
    ap.add_argument("--out", default="models/ouro-demo")
    ap.add_argument("--work", default="build/model-train")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--inter", type=int, default=576)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=96)
    ap.add_argument("--pool", type=int, default=1,
                    help="batches drawn at once and grouped by length (1: each batch a random mix)")
    ap.add_argument("--steps1", type=int, default=5500)
    ap.add_argument("--stop-after", type=int, default=0,
                    help="end stage I after this step of the --steps1 schedule (0: at its end)")
    ap.add_argument("--steps2", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr2", type=float, default=1e-2)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--resume", action="store_true", help="continue stage I from the checkpoint")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    random.seed(a.seed)
    os.makedirs(a.work, exist_ok=True)
    lf = open(os.path.join(a.work, "train.log"), "a")
    log(lf, "command: " + " ".join(sys.argv))
    t0 = time.time()
    if a.what in ("all", "stage1"):
        run_stage1(a, lf)
    if a.what in ("all", "stage2"):
        run_stage2(a, lf)
    if a.what == "export":
        st = torch.load(os.path.join(a.work, "stage2.pt" if os.path.exists(os.path.join(a.work, "stage2.pt"))
                                     else "stage1.pt"))
        model = LoopLM(st["config"])
        model.load_state_dict(st["model"])
        export(model, tasks.Tokenizer.from_json(st["tokenizer"]), a.out)
    if a.what == "speed":
        tok = build_tokenizer(a.vocab, a.seed)
        c = default_config(len(tok.vocab))
        c.update(hidden_size=a.hidden, intermediate_size=a.inter, num_hidden_layers=a.layers,
                 num_attention_heads=a.heads, num_key_value_heads=a.heads)
        model = LoopLM(c)
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr)
        data = Batches(tok, random.Random(0), a.batch, a.max_len)
        lens = []
        for i in range(6):
            x, y = data.next()
            lens.append(x.shape[1])
            t = time.time()
            loss, _ = stage1_loss(model, x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            print("step %d: %.3f s, seq %d, loss %.3f" % (i, time.time() - t, x.shape[1], float(loss)))
    log(lf, "done in %.1f min" % ((time.time() - t0) / 60))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""
check_exact.py -- the training program's forward pass against `ouro logits`
on a saved model: last-position logits (f32) within 2e-3 and the exit pdf of
every position within 1e-4, at 1..total_ut_steps loop steps and the default
exit.

    /usr/bin/python3 models/check_exact.py [--model models/ouro-demo] [--ouro build/ouro]
    /usr/bin/python3 models/check_exact.py --write test/data/ouro-demo-ref.json
        (stores the reference outputs, so that the test needs no PyTorch)
"""
import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402
import train  # noqa: E402

PROMPTS = ["What is 4071 + 958?", "Facts: k=m, m=4, b=7, q=1. What is k?",
           tasks.classify_message(["positive", "negative"], "I loved this film, the acting was wonderful.")]


def reference(model, tok):
    """For each prompt and each step count L: ids, exit pdf of every position, logits of the last."""
    out = []
    T = model.c["total_ut_steps"]
    with torch.no_grad():
        for p in PROMPTS:
            ids = tok.encode(tasks.render_prompt(p))
            x = torch.tensor([ids])
            for L in range(1, T + 1):
                hs, gs = model(x, steps=L)
                pdf = train.exit_pdf(gs)[:, 0]                  # (L, S)
                logits = model.lm_head(hs[L - 1, 0, -1])        # step L (--exit step:L)
                out.append({"ids": ids, "max_loops": L, "exit_pdf": pdf.t().tolist(),
                            "logits": logits.tolist()})
    return out


def compare(refs, model_dir, ouro):
    worst_l, worst_p = 0.0, 0.0
    for r in refs:
        L = r["max_loops"]
        res = subprocess.run([ouro, "logits", "--model", model_dir, "--ids", ",".join(map(str, r["ids"])),
                              "--max-loops", str(L), "--exit", "step:%d" % L, "--threads", "1"],
                             check=True, capture_output=True, text=True)
        j = json.loads(res.stdout)
        dl = max(abs(a - b) for a, b in zip(j["logits"], r["logits"]))
        dp = max(abs(a - b) for ra, rb in zip(j["exit_pdf"], r["exit_pdf"]) for a, b in zip(ra, rb))
        if len(j["logits"]) != len(r["logits"]) or len(j["exit_pdf"]) != len(r["exit_pdf"]):
            raise SystemExit("shape mismatch")
        worst_l, worst_p = max(worst_l, dl), max(worst_p, dp)
    return worst_l, worst_p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/ouro-demo")
    ap.add_argument("--ouro", default="build/ouro")
    ap.add_argument("--write", help="write the reference outputs to this JSON file")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model, tok = train.load_model(a.model)
    refs = reference(model, tok)
    if a.write:
        with open(a.write, "w") as f:
            json.dump({"model": "models/ouro-demo", "made_by": "models/check_exact.py --write",
                       "cases": refs}, f)
    dl, dp = compare(refs, a.model, a.ouro)
    ok = dl <= 2e-3 and dp <= 1e-4
    print("%d cases: max |logit diff| %.2e (limit 2e-3), max |exit pdf diff| %.2e (limit 1e-4): %s"
          % (len(refs), dl, dp, "ok" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

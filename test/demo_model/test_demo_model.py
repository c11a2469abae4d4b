"""test_demo_model.py -- the trained demonstration model (models/ouro-demo).

Run from the repository root with Debian's Python (no PyTorch needed):
    /usr/bin/python3 test/demo_model/test_demo_model.py
Prints TAP lines; exits non-zero when a check fails.

1. Exactness: `ouro logits` on the model against the outputs of the training
   program's own PyTorch forward pass (test/data/ouro-demo-ref.json, written by
   `models/check_exact.py --write` on the committed weights): last-position
   logits within 2e-3 and every position's exit pdf within 1e-4, at 1..4 loop
   steps.  `make model-check` runs the same comparison live with PyTorch.
2. Behaviour: the fixed held-out set test/data/ouro-demo-heldout.json (examples
   the training never saw) answered through the tool (`ouro generate --chat`)
   and through SQLite (ouro_chat; ouro_classify for the classification cases):
   each path must get at least `min_correct` right (the accuracy recorded in
   the README, less the stated margin).  test/sql/ouro_demo_model.sql checks
   the same set through PostgreSQL.
"""
import json
import os
import sqlite3
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "build", "ouro")
EXT = os.path.join(ROOT, "build", "ouro.so")
MODEL = os.path.join(ROOT, "models", "ouro-demo")
DATA = os.path.join(ROOT, "test", "data")

n_run = 0
n_failed = 0


def report(ok, name, detail=""):
    global n_run, n_failed
    n_run += 1
    if not ok:
        n_failed += 1
    print("%s %d - demo model: %s" % ("ok" if ok else "not ok", n_run, name))
    if detail:
        for line in detail.splitlines():
            print("# " + line)


def tool(*args):
    r = subprocess.run([TOOL] + list(args), capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("ouro %s: %s" % (args[0], r.stderr.strip()))
    return r.stdout


def test_exactness():
    with open(os.path.join(DATA, "ouro-demo-ref.json")) as f:
        ref = json.load(f)
    worst_l = worst_p = 0.0
    for c in ref["cases"]:
        L = c["max_loops"]
        j = json.loads(tool("logits", "--model", MODEL, "--ids", ",".join(map(str, c["ids"])),
                            "--max-loops", str(L), "--exit", "step:%d" % L, "--threads", "1"))
        if len(j["logits"]) != len(c["logits"]) or len(j["exit_pdf"]) != len(c["exit_pdf"]):
            report(False, "exactness: output shapes differ")
            return
        worst_l = max(worst_l, max(abs(a - b) for a, b in zip(j["logits"], c["logits"])))
        worst_p = max(worst_p, max(abs(a - b) for ra, rb in zip(j["exit_pdf"], c["exit_pdf"])
                                   for a, b in zip(ra, rb)))
    detail = "%d cases: max |logit diff| %.2e, max |exit pdf diff| %.2e" % (len(ref["cases"]), worst_l, worst_p)
    report(worst_l <= 2e-3, "ouro logits = the training program's forward (logits within 2e-3)", detail)
    report(worst_p <= 1e-4, "ouro logits = the training program's forward (exit pdf within 1e-4)")


def test_heldout():
    with open(os.path.join(DATA, "ouro-demo-heldout.json")) as f:
        hs = json.load(f)
    cases, need = hs["cases"], hs["min_correct"]
    right = sum(tool("generate", "--model", MODEL, "--chat", "--prompt", c["user"], "--max-tokens", "16",
                     "--threads", "1").strip() == c["answer"] for c in cases)
    report(right >= need, "held-out set through the tool: %d of %d right (at least %d)" % (right, len(cases), need))

    con = sqlite3.connect(":memory:")
    con.enable_load_extension(True)
    con.load_extension(EXT)
    con.execute("SELECT ouro_load(?)", (MODEL,))
    right = 0
    for c in cases:
        if c["task"] == "classify":
            got = con.execute("SELECT ouro_classify(?, ?)", (c["input"], json.dumps(c["labels"]))).fetchone()[0]
        else:
            got = con.execute("SELECT ouro_chat(?, NULL, NULL, 16)", (c["user"],)).fetchone()[0]
        right += got.strip() == c["answer"]
    report(right >= need, "held-out set through SQLite: %d of %d right (at least %d)" % (right, len(cases), need))


def test_demo():
    """`make demo` (models/demo.sh) on the committed model runs to the end and shows
    what the README says it shows: sorting and reversing answered right, the four
    labels right, and a larger answer depth for 4-digit than for 1-digit additions."""
    res = subprocess.run(["bash", "models/demo.sh"], capture_output=True, text=True, timeout=600)
    out = res.stdout
    report(res.returncode == 0 and out.rstrip().endswith("Done."),
           "make demo runs to the end", "rc %d, stderr: %s" % (res.returncode, res.stderr[-300:]))
    rows = {}
    for line in out.splitlines():      # the box tables: "│ id │ kind │ ... │"
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) >= 3 and cells[0].isdigit():
            rows.setdefault(cells[1], []).append(cells)
    first = {k: v[0] for k, v in rows.items()}
    ok = all(k in first and first[k][3] == first[k][4] for k in ("sort", "reverse"))
    report(ok, "make demo: sorting and reversing answered right", str([first.get(k) for k in ("sort", "reverse")]))
    labels = {r[1]: r[2] for v in rows.values() for r in v if len(r) >= 3}
    want = {"I loved this film, the acting was wonderful.": "positive",
            "Terrible service, I will never come back.": "negative",
            "Heavy snow closed the roads.": "weather", "We baked fresh bread this morning.": "food"}
    report(all(labels.get(k) == v for k, v in want.items()), "make demo: labels right",
           str({k: labels.get(k) for k in want}))
    depth = {v[-1][1]: float(v[-1][-1]) for k, v in rows.items()
             if k in ("add, 1 digit", "add, 4 digits", "sort") and len(v[-1]) == 4}
    report(len(depth) == 3 and depth["add, 4 digits"] > depth["add, 1 digit"]
           and depth["add, 4 digits"] > depth["sort"],
           "make demo: answer depth larger for 4-digit additions than for 1-digit ones and sorting", str(depth))


def main():
    if not (os.path.exists(TOOL) and os.path.exists(EXT)):
        report(False, "build/ouro and build/ouro.so are needed (run make)")
    else:
        for t in (test_exactness, test_heldout, test_demo):
            try:
                t()
            except Exception as e:   # a crash is a failure, not a silent skip
                report(False, "%s raised %s: %s" % (t.__name__, type(e).__name__, e))
    print("1..%d" % n_run)
    sys.exit(1 if n_failed else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""
eval.py -- the demonstration model on its held-out set, through the runtime.

    /usr/bin/python3 models/eval.py [--model models/ouro-demo] [--n 20] [--q8]
    (make model-eval)

Every answer comes from the C runtime: `build/ouro generate --chat` (greedy,
one thread) for the answers, exit steps and timings, and the SQLite extension
(build/ouro.so, through Python's sqlite3) for ouro_depth.  No PyTorch.

The held-out set (tasks.heldout_set) holds n examples per task and difficulty
whose keys the sha256 split puts on the held-out side, which the training
program never samples.  Printed, as Markdown:
  1. accuracy per task with 1, 2, 3, 4 loop steps (the trained depth) and 6, 8
     (extrapolation): --max-loops L --exit step:L;
  2. adaptive exit at thresholds 0.3 / 0.5 / 0.7 / 0.9 (--exit threshold:Q:
     each decoded token stops at the first step whose exit CDF reaches Q):
     accuracy, mean exit step of the generated tokens, and the decode time
     per token against 4 full steps (see decode_cpu: CPU time of one thread,
     measured in this process through the SQLite extension, which the other
     work of a shared machine barely moves, where wall time did);
  3. by difficulty (digits, list length, hops): accuracy at 4 steps, mean
     ouro_depth of the chat prompt (SQL, expected exit step), and the mean exit
     step of the answer's tokens at threshold 0.5.
With --q8 the model is converted (`ouro convert`) into a temporary folder and
the same tables are printed for it, with the bf16 figures beside.
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402

LOOPS = [1, 2, 3, 4, 6, 8]
THRESHOLDS = [0.3, 0.5, 0.7, 0.9]
TASKS = ["add", "sort", "reverse", "lookup", "question", "classify"]
MAX_TOKENS = 16


def generate(ouro, model, user, *opts):
    res = subprocess.run([ouro, "generate", "--model", model, "--chat", "--prompt", user,
                          "--max-tokens", str(MAX_TOKENS), "--json", "--threads", "1", *opts],
                         check=True, capture_output=True, text=True)
    j = json.loads(res.stdout)
    n = len(j["ids"])
    j["seconds"] = n / j["tokens_per_s"] if j["tokens_per_s"] > 0 else 0.0
    return j


def run(ouro, model, data, log=None):
    """Every configuration on every example: {config: [result per example]}."""
    out = {}
    configs = [("L%d" % L, ["--max-loops", str(L), "--exit", "step:%d" % L]) for L in LOOPS]
    configs += [("q%.1f" % q, ["--exit", "threshold:%g" % q]) for q in THRESHOLDS]
    for name, opts in configs:
        t0 = time.time()
        rs = []
        for task, user, ans, diff in data:
            j = generate(ouro, model, user, *opts)
            j["ok"] = j["text"].strip() == ans
            rs.append(j)
        out[name] = rs
        if log:
            log("%s: %.0f s" % (name, time.time() - t0))
    return out


def depths(ext, model, data):
    con = sqlite3.connect(":memory:")
    con.enable_load_extension(True)
    con.load_extension(ext)
    con.execute("SELECT ouro_load(?)", (os.path.abspath(model),))
    return [con.execute("SELECT ouro_depth(?)", (tasks.render_prompt(u),)).fetchone()[0]
            for _, u, _, _ in data]


def decode_cpu(ext, model, data, repeat=9):
    """Decode CPU seconds per generated token, per exit configuration.

    One SQLite connection, one thread: for each configuration the whole set is
    generated (ouro_generate_detail on the chat prompt, 16 tokens at most) and
    again with max_tokens 1 (prefill and the first token); the difference of
    the process's CPU time over the difference of the token counts is the cost
    of one decoded token.  CPU time of a single-threaded call counts the work
    done, not the time other processes held the core.  The configurations are
    run in turn `repeat` times and each keeps its least time, so a slow
    period of the machine does not fall on one configuration alone.
    {config: seconds per decoded token}."""
    con = sqlite3.connect(":memory:")
    con.enable_load_extension(True)
    con.load_extension(ext)
    con.execute("SELECT ouro_load(?)", (os.path.abspath(model),))
    con.execute("SELECT ouro_setting('threads', 1)")
    prompts = [tasks.render_prompt(u) for _, u, _, _ in data]
    configs = [("L4", 1.0)] + [("q%.1f" % q, q) for q in THRESHOLDS]

    def cpu(maxt, q):
        t0, ntok = time.process_time(), 0
        for p in prompts:
            j = json.loads(con.execute("SELECT ouro_generate_detail(?, 4, ?, 0, ?)",
                                       (p, maxt, q)).fetchone()[0])
            ntok += j["n_tokens"]
        return time.process_time() - t0, ntok

    best = {}
    for _ in range(repeat):
        for name, q in configs:
            # L4: every step of every token (depth 'full' runs all the steps whatever the threshold)
            con.execute("SELECT ouro_setting('depth', ?)", ("full" if name == "L4" else "adaptive",))
            for maxt in (MAX_TOKENS, 1):
                t, n = cpu(maxt, q)
                k = (name, maxt)
                best[k] = (min(t, best[k][0]), n) if k in best else (t, n)
    return {name: (best[(name, MAX_TOKENS)][0] - best[(name, 1)][0])
            / max(1, best[(name, MAX_TOKENS)][1] - best[(name, 1)][1]) for name, _ in configs}


def pct(xs):
    return "%.1f" % (100.0 * sum(xs) / len(xs)) if xs else "-"


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def tables(data, R, D, C, title, base=None):
    """Markdown tables; base: the same results of the bf16 model, for the q8 comparison."""
    lines = ["### " + title, ""]
    idx = {t: [i for i, e in enumerate(data) if e[0] == t] for t in TASKS}
    allidx = list(range(len(data)))

    def acc(name, ii, res=R):
        return pct([res[name][i]["ok"] for i in ii])

    lines.append("Held-out accuracy (%) by loop steps (6 and 8: beyond the trained 4):")
    lines.append("")
    lines.append("| task | n | " + " | ".join("%d step%s" % (L, "s" if L > 1 else "") for L in LOOPS) + " |")
    lines.append("|---|---|" + "---|" * len(LOOPS))
    for t in TASKS + ["all"]:
        ii = allidx if t == "all" else idx[t]
        cells = []
        for L in LOOPS:
            c = acc("L%d" % L, ii)
            if base:
                c += " (%s)" % acc("L%d" % L, ii, base)
            cells.append(c)
        lines.append("| %s | %d | %s |" % (t, len(ii), " | ".join(cells)))
    if base:
        lines.append("")
        lines.append("(in brackets: bf16)")
    lines.append("")

    lines.append("Adaptive exit (each decoded token stops at the first step whose exit CDF reaches "
                 "the threshold); decode CPU time per token, one thread (see decode_cpu):")
    lines.append("")
    lines.append("| exit | accuracy % | mean exit step | layer compute saved (1 - step/4) "
                 "| decode ms per token | decode time saved |")
    lines.append("|---|---|---|---|---|---|")

    def row(label, name):
        steps = [s for r in R[name] for s in r["exit_steps"]]
        saved = "-" if name == "L4" else "%.0f%%" % (100.0 * (1 - C[name] / C["L4"]))
        lsaved = "-" if name == "L4" else "%.0f%%" % (100.0 * (1 - mean(steps) / 4))
        lines.append("| %s | %s | %.2f | %s | %.3f | %s |" % (label, acc(name, allidx), mean(steps),
                                                          lsaved, 1000.0 * C[name], saved))
    row("4 steps (full)", "L4")
    for q in THRESHOLDS:
        row("threshold %.1f" % q, "q%.1f" % q)
    lines.append("")

    lines.append("By difficulty (add: digits of the longer operand; sort, reverse: list length; "
                 "lookup: hops):")
    lines.append("")
    lines.append("| task | difficulty | n | accuracy % (4 steps) | mean ouro_depth of the prompt | "
                 "mean exit step of the answer (threshold 0.5) |")
    lines.append("|---|---|---|---|---|---|")
    for t in ["add", "sort", "reverse", "lookup"]:
        for d in sorted({data[i][3] for i in idx[t]}):
            ii = [i for i in idx[t] if data[i][3] == d]
            steps = [s for i in ii for s in R["q0.5"][i]["exit_steps"]]
            lines.append("| %s | %d | %d | %s | %.3f | %.2f |" % (t, d, len(ii), acc("L4", ii),
                                                                   mean([D[i] for i in ii]), mean(steps)))
    lines.append("")
    return "\n".join(lines)


def write_ci(a, path, per_group=6, margin=3):
    """The fixed held-out set of the tests: per_group examples of each task and
    difficulty, with the number the tool gets right now less `margin` as the bar."""
    data, seen, cases = tasks.heldout_set(16), {}, []
    for task, user, ans, diff in data:
        k = (task, diff)
        seen[k] = seen.get(k, 0) + 1
        if seen[k] > (2 * per_group if task in ("question", "classify") else per_group):
            continue
        c = {"task": task, "difficulty": diff, "user": user, "answer": ans}
        if task == "classify":   # the pieces ouro_classify builds the same message from
            head, text = user.split("\n\nInput: ", 1)
            c["labels"] = head.split("\n\nLabels: ", 1)[1].split(", ")
            c["input"] = text
            assert tasks.classify_message(c["labels"], text) == user
        cases.append(c)
    right = sum(generate(a.ouro, a.model, c["user"])["text"].strip() == c["answer"] for c in cases)
    with open(path, "w") as f:
        json.dump({"made_by": "models/eval.py --write-ci (held-out examples only)",
                   "model": "models/ouro-demo", "right_when_made": right, "margin": margin,
                   "min_correct": right - margin, "cases": cases}, f, indent=1)
    print("%s: %d cases, %d right through the tool; tests require at least %d"
          % (path, len(cases), right, right - margin))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/ouro-demo")
    ap.add_argument("--ouro", default="build/ouro")
    ap.add_argument("--ext", default="build/ouro")
    ap.add_argument("--n", type=int, default=10, help="examples per task and difficulty")
    ap.add_argument("--q8", action="store_true", help="also the q8 conversion")
    ap.add_argument("--json", help="write the per-example results here")
    ap.add_argument("--write-ci", metavar="FILE", help="only write the tests' fixed held-out set")
    a = ap.parse_args()
    if a.write_ci:
        write_ci(a, a.write_ci)
        return
    log = lambda m: print("# " + m, file=sys.stderr, flush=True)  # noqa: E731
    data = tasks.heldout_set(a.n)
    t0 = time.time()
    R = run(a.ouro, a.model, data, log)
    D = depths(a.ext, a.model, data)
    C = decode_cpu(a.ext, a.model, data)
    print("Model: %s; held-out set: %d examples (%d per task and difficulty); `%s`" % (
        a.model, len(data), a.n, " ".join(["models/eval.py"] + sys.argv[1:])))
    print()
    print(tables(data, R, D, C, "bf16"))
    dump = {"bf16": R}
    if a.q8:
        tmp = tempfile.mkdtemp(prefix="ouro-q8-")
        try:
            q8 = os.path.join(tmp, "q8")
            subprocess.run([a.ouro, "convert", "--model", a.model, "--out", q8, "--threads", "1"],
                           check=True, capture_output=True)
            R8 = run(a.ouro, q8, data, log)
            D8 = depths(a.ext, q8, data)
            C8 = decode_cpu(a.ext, q8, data)
            print(tables(data, R8, D8, C8, "q8 (`ouro convert`)", base=R))
            dump["q8"] = R8
        finally:
            shutil.rmtree(tmp)
    log("evaluation took %.0f s" % (time.time() - t0))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"data": data, "results": dump}, f)


if __name__ == "__main__":
    main()

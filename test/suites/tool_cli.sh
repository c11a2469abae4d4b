#!/usr/bin/env bash
# test/suites/tool_cli.sh -- the `ouro` tool as people use command-line tools: $OURO_MODEL as
# the default --model, --option=value, the prompt from standard input, a file of prompts (plain
# lines and JSON lines) decoded in batches with JSON-lines output, tokens streamed as they are
# generated (the streamed text equals the whole text), progress bars on stderr (forced, and on a
# terminal under `script`), and --help on every command.
# Prints TAP lines; run from anywhere (test/run.sh runs it from the repository root).
set -u
cd "$(dirname "$0")/../.."
OURO=${OURO:-build/ouro}
if [ ! -x "$OURO" ]; then
    echo "ok 1 - # SKIP $OURO is not built"
    echo "1..1"
    exit 0
fi
exec /usr/bin/python3 - "$OURO" <<'PY'
import json, os, re, shutil, subprocess, sys, tempfile, time

ouro = os.path.abspath(sys.argv[1])
model = os.path.abspath("test/data/models/tiny-mha-bf16")
sys.path.insert(0, "test")
from tap import check, finish  # noqa: E402

def run(args, stdin=None, env_model=None):
    env = dict(os.environ)
    env.pop("OURO_MODEL", None)
    if env_model:
        env["OURO_MODEL"] = env_model
    p = subprocess.run([ouro] + args, input=stdin, capture_output=True, env=env, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

prompt = "The capital of France is"
rc, want, err = run(["generate", "--model", model, "--prompt", prompt, "--max-tokens", "12"])
check(rc == 0 and want.strip() != "", "generate --model DIR --prompt TEXT", err)
rc, out, err = run(["generate", "--model=" + model, "--prompt=" + prompt, "--max-tokens=12"])
check(rc == 0 and out == want, "--option=value equals --option value", (out, want, err))
rc, out, err = run(["generate", "--prompt", prompt, "--max-tokens", "12"], env_model=model)
check(rc == 0 and out == want, "$OURO_MODEL is the default --model", (out, err))
rc, out, err = run(["generate", "--prompt", prompt])
check(rc == 2 and "OURO_MODEL" in err, "no --model and no $OURO_MODEL: a usage error naming both", err)
rc, out, err = run(["generate", "--max-tokens", "12"], stdin=(prompt + "\n").encode(), env_model=model)
check(rc == 0 and out == want, "the prompt from standard input (one trailing newline dropped)", (out, err))

# --weights memory: the weights read into the process's memory give the same text
rc, out, err = run(["generate", "--model", model, "--prompt", prompt, "--max-tokens", "12",
                    "--weights", "memory"])
check(rc == 0 and out == want, "--weights memory gives the text of the mapped weights", (out, want, err))
rc, out, err = run(["generate", "--model", model, "--prompt", prompt, "--weights", "disk"])
check(rc == 2 and "--weights must be map or memory" in err, "--weights with another value: a usage error", err)

# streaming: the same text, printed while the generation still runs
for args in (["--prompt", prompt, "--max-tokens", "40"],
             ["--prompt", "Hello", "--max-tokens", "40", "--stop", "the"],
             ["--prompt", "\u00e9t\u00e9 \u2014 \u65e5\u672c", "--max-tokens", "40"]):
    rc1, plain, _ = run(["generate", "--model", model, "--no-stream"] + args)
    rc2, streamed, err = run(["generate", "--model", model, "--stream"] + args)
    check(rc1 == 0 and rc2 == 0 and plain == streamed,
          "--stream prints exactly the text of --no-stream (%s)" % " ".join(args[2:]), (plain, streamed, err))
p = subprocess.Popen([ouro, "generate", "--model", model, "--prompt", prompt, "--max-tokens", "600",
                      "--n-ctx", "700", "--stream", "--threads", "1"], stdout=subprocess.PIPE)
first = p.stdout.read(1)
running = p.poll() is None
rest = p.stdout.read()
p.wait()
check(first and running and p.returncode == 0,
      "--stream: the first bytes arrive while the generation still runs")

# a file of prompts: plain lines and JSON lines, batches, JSON-lines output in input order
tmp = tempfile.mkdtemp(prefix="ouro_toolcli")
path = os.path.join(tmp, "prompts.txt")
lines = [prompt, json.dumps({"prompt": "Hello", "id": "a"}), "", json.dumps("2 + 2 ="),
         json.dumps({"text": "no prompt"}), "Once upon a time"]
with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
singles = {}
for k, p_ in ((1, prompt), (2, "Hello"), (4, "2 + 2 ="), (6, "Once upon a time")):
    singles[k] = run(["generate", "--model", model, "--prompt", p_, "--max-tokens", "6", "--no-stream"])[1][:-1]
for bs in ("1", "2", "16"):
    rc, out, err = run(["generate", "--model", model, "--file", path, "--max-tokens", "6",
                        "--batch-size", bs])
    try:
        rows = [json.loads(l) for l in out.splitlines()]
    except ValueError:
        rows = []
    check([r.get("line") for r in rows] == [1, 2, 4, 5, 6],
          "--file (batch size %s): one JSON line per prompt, in input order, blank lines skipped" % bs, out)
    check(all(r.get("text") == singles[r["line"]] for r in rows if "text" in r) and
          sum("text" in r for r in rows) == 4,
          "--file (batch size %s): every text equals the one-prompt run" % bs, (rows, singles))
    check(any(r.get("id") == "a" for r in rows) and any(r.get("line") == 5 and "error" in r for r in rows)
          and rc == 1, "--file: ids kept, a bad JSON line is an error line and exit status 1", (rc, out))
rc, out, err = run(["generate", "--file", "-", "--max-tokens", "6"], stdin=(prompt + "\n").encode(),
                   env_model=model)
check(rc == 0 and json.loads(out)["text"] == singles[1], "--file - reads the prompts from standard input", (out, err))
rc, out, err = run(["generate", "--file", os.path.join(tmp, "missing.txt")], env_model=model)
check(rc == 1 and "missing.txt: cannot open" in err, "--file: a missing file is an error naming it (the core's reader)",
      (rc, err))

# progress bars on stderr: forced, on a terminal (a pty from `script`), and never in a pipe
bar = re.compile(r"\[#{30}\] 3/3 rows  [0-9.]+ tokens/s  ETA 0s")
with tempfile.TemporaryDirectory() as tmp:
    pf = os.path.join(tmp, "prompts.txt")
    with open(pf, "w") as f:
        f.write("The capital of France is\nHi\nOnce upon a time\n")
    rc, plain, err = run(["generate", "--file", pf, "--max-tokens", "6", "--batch-size", "2"], env_model=model)
    check(rc == 0 and "[" not in err and "ETA" not in err,
          "generate --file: no progress bar when stderr is not a terminal", err)
    rc, out, err = run(["generate", "--file", pf, "--max-tokens", "6", "--batch-size", "2", "--progress", "always"],
                       env_model=model)
    check(rc == 0 and out == plain and bar.search(err) and err.count("\r") >= 2,
          "generate --file --progress always: a bar redrawn on stderr (rows, tokens/s, ETA), the same output",
          repr(err[-300:]))
    if shutil.which("script"):
        outf = os.path.join(tmp, "out.jsonl")
        cmd = "%s generate --model %s --file %s --max-tokens 6 --batch-size 2 > %s" % (ouro, model, pf, outf)
        p = subprocess.run(["script", "-qefc", cmd, "/dev/null"], capture_output=True, timeout=300)
        tty = p.stdout.decode("utf-8", "replace")
        check(p.returncode == 0 and bar.search(tty) and open(outf).read() == plain,
              "generate --file on a terminal (under script): the bar by default", repr(tty[-300:]))
    else:
        check(True, "generate --file on a terminal # SKIP script (bsdutils) is not installed")
    rc, out, err = run(["generate", "--prompt", "Hello", "--max-tokens", "9", "--progress", "always"],
                       env_model=model)
    check(rc == 0 and re.search(r"\] 9/9 tokens  [0-9.]+ tokens/s  ETA 0s", err),
          "generate of one prompt --progress always: a bar of its tokens", repr(err[-200:]))
    rc, out, err = run(["convert", "--out", os.path.join(tmp, "q8"), "--progress", "always"], env_model=model)
    check(rc == 0 and re.search(r"\[#{30}\] [0-9]+/[0-9]+ MB  ETA 0s", err),
          "convert --progress always: a bar of the MB written", repr(err[-200:]))
    rc, out, err = run(["convert", "--out", os.path.join(tmp, "q8b")], env_model=model)
    check(rc == 0 and "ETA" not in err, "convert: no bar when stderr is not a terminal", err)
    rc, out, err = run(["generate", "--prompt", "x", "--progress", "sometimes"], env_model=model)
    check(rc == 2 and "--progress must be auto, always or never" in err, "a bad --progress is a usage error", err)

# --help on every command, on stdout, status 0
for cmd in ("generate", "logits", "info", "convert", "tokenize", "detokenize", "chat-template",
            "sql-surface", "build-info", "version"):
    rc, out, err = run([cmd, "--help"], env_model=model)
    check(rc == 0 and out.startswith("usage: ouro " + cmd), "ouro %s --help" % cmd, (rc, out, err))
finish()
PY

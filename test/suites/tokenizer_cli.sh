#!/usr/bin/env bash
# test/suites/tokenizer_cli.sh -- the tokenizer commands of the `ouro` tool (tokenize,
# detokenize, chat-template) against the Hugging Face reference in test/data/tokenizer/,
# with the tokenizer files of test/data/ouro-1.4b-config (no weights), plus their errors.
# Prints TAP lines; run from anywhere (test/run.sh runs it from the repository root).
set -u
cd "$(dirname "$0")/../.."
OURO=${OURO:-build/ouro}
if [ ! -x "$OURO" ]; then
    echo "ok 1 - # SKIP $OURO is not built"
    echo "1..1"
    exit 0
fi
exec /usr/bin/python3 - "$OURO" <<'EOF'
import json, os, subprocess, sys, tempfile

ouro = sys.argv[1]
model = "test/data/ouro-1.4b-config"
data = "test/data/tokenizer"
sys.path.insert(0, "test")
from tap import check, finish  # noqa: E402

def run(*args):
    p = subprocess.run([ouro] + list(args), capture_output=True)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

tmp = tempfile.mkdtemp(prefix="ouro_tokcli")
path = os.path.join(tmp, "in")

# Every case is checked through the C API by build/test/test_tokenizer; here every fourth
# case of cases.json (one process each) shows that the commands pass text and ids through.
cases = json.load(open(os.path.join(data, "cases.json"), encoding="utf-8"))[::4]
bad = []
for c in cases:
    with open(path, "wb") as f:
        f.write(c["text"].encode("utf-8"))
    rc, out, err = run("tokenize", "--model", model, "--file", path)
    if rc != 0 or json.loads(out) != c["ids"]:
        bad.append("%s: rc %d %s" % (c["name"], rc, err.strip()))
check(not bad, "tokenize --file: %d cases give the reference ids" % len(cases), "\n".join(bad))

rc, out, err = run("tokenize", "--model", model, "--text", "Hello world<|im_end|>")
check(rc == 0 and json.loads(out) == [19556, 905, 2], "tokenize --text with a special token")

# detokenize: cases.json and decode_cases.json, with and without --skip-special
dcases = json.load(open(os.path.join(data, "decode_cases.json"), encoding="utf-8"))
for label, group in (("cases.json", cases), ("decode_cases.json", dcases)):
    bad = []
    for c in group:
        ids = ",".join(str(i) for i in c["ids"])
        for flag, key in (([], "decoded"), (["--skip-special"], "decoded_skip_special")):
            rc, out, err = run("detokenize", "--model", model, "--ids", ids, *flag)
            if rc != 0 or json.loads(out) != {"text": c[key]}:
                bad.append("%s %s: rc %d %s" % (c["name"], flag, rc, err.strip() or out.strip()))
    check(not bad, "detokenize: %d cases of %s decode as the reference" % (len(group), label),
          "\n".join(bad))

# chat-template: every conversation of chat_cases.json
chats = json.load(open(os.path.join(data, "chat_cases.json"), encoding="utf-8"))
for c in chats:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(c["messages"], f)
    flag = [] if c["add_generation_prompt"] else ["--no-generation-prompt"]
    rc, out, err = run("chat-template", "--model", model, "--messages", path, *flag)
    check(rc == 0 and json.loads(out) == {"text": c["rendered"]}, "chat-template: %s" % c["name"],
          err or out)

# errors: exit status 1 for a bad input, 2 for a usage error, a message on stderr
rc, out, err = run("detokenize", "--model", model, "--ids", "1,49152")
check(rc == 1 and "49152" in err and out == "", "detokenize: an id out of range is an error naming it")
rc, out, err = run("detokenize", "--model", model, "--ids", "1,x")
check(rc == 2 and "--ids" in err, "detokenize: a malformed --ids is a usage error")
rc, out, err = run("tokenize", "--model", os.path.join(tmp, "missing"), "--text", "x")
check(rc == 1 and "tokenizer.json" in err, "tokenize: a folder without tokenizer.json is an error naming it")
rc, out, err = run("tokenize", "--model", model)
check(rc == 2 and "--text" in err, "tokenize: neither --text nor --file is a usage error")
with open(path, "w") as f:
    f.write('{"role": "user"}')
rc, out, err = run("chat-template", "--model", model, "--messages", path)
check(rc == 1 and "JSON array" in err, "chat-template: messages that are not a list are an error")
with open(path, "wb") as f:
    f.write(b"a\xff\xfeb")
rc, out, err = run("tokenize", "--model", model, "--file", path)
rc2, out2, _ = run("tokenize", "--model", model, "--text", "a\ufffd\ufffdb")
check(rc == 0 and out == out2, "tokenize: invalid UTF-8 bytes count as U+FFFD")

# files are read by the core's reader (ouro_read_file): its errors name the file
rc, out, err = run("tokenize", "--model", model, "--file", os.path.join(tmp, "missing.txt"))
check(rc == 1 and "missing.txt: cannot open" in err, "tokenize: a missing --file is an error naming it", err)
rc, out, err = run("chat-template", "--model", model, "--messages", tmp)
check(rc == 1 and "not a regular file" in err, "chat-template: a folder as --messages is an error", err)

os.unlink(path)
os.rmdir(tmp)
finish()
EOF

"""test_sqlite.py -- the SQLite extension's test suite (build/ouro.so).

Run from the repository root with Debian's Python (its sqlite3 module can load
extensions):  /usr/bin/python3 test/sqlite/test_sqlite.py
Prints TAP lines; exits non-zero when a check fails.

Reference data: test/data/models/*/expected.json (upstream greedy text, token
ids, exit distributions) and the `ouro` tool (build/ouro) for the same
prompts and settings.
"""
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import test, check, equal, raises, skip, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXT = os.environ.get("OURO_SQLITE_EXT") or os.path.join(ROOT, "build", "ouro.so")   # make asan-ext: ASan build
TOOL = os.path.join(ROOT, "build", "ouro")
MODELS_DIR = os.path.join(ROOT, "test", "data", "models")
MODELS = sorted(d for d in os.listdir(MODELS_DIR) if os.path.isdir(os.path.join(MODELS_DIR, d)))
TINY = os.path.join(MODELS_DIR, "tiny-mha-bf16")
NO_MODEL = "ouro: no model loaded; call ouro_load(path) or set OURO_MODEL"

os.environ.pop("OURO_MODEL", None)


def expected(model):
    with open(os.path.join(MODELS_DIR, model, "expected.json")) as f:
        return json.load(f)


def auto_precision():
    """What precision 'auto' (the default) resolves to on this machine, read
    from /proc/cpuinfo: bf16 with AVX-512 BF16 dot products and no AMX tiles
    (OURO_SIMD=avx512 sets the tiles aside, avx2 and generic both), else exact."""
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    simd = os.environ.get("OURO_SIMD", "amx")
    bf16dp = "avx512_bf16" in flags and simd in ("amx", "avx512")
    tiles = {"amx_tile", "amx_bf16", "amx_int8"} <= flags and simd == "amx"
    return "bf16" if bf16dp and not tiles else "exact"


def connect(model=TINY, precision="exact", **kw):
    """A connection with the extension loaded and `model` (if any) as default.
    The golden texts are the exact path's, so precision is set to exact
    unless the caller asks otherwise (None: the default, auto)."""
    conn = sqlite3.connect(":memory:", **kw)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    conn.enable_load_extension(False)
    if precision:
        conn.execute("SELECT ouro_setting('precision', ?)", (precision,))
    if model:
        conn.execute("SELECT ouro_load(?)", (model,))
    return conn


def one(conn, sql, *args):
    return conn.execute(sql, args).fetchone()[0]


def tool(*args):
    """Runs build/ouro with args; returns stdout (fails the test on error)."""
    r = subprocess.run([TOOL] + list(args), capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("ouro %s failed (%d): %s" % (" ".join(args[:2]), r.returncode, r.stderr))
    return r.stdout


# --------------------------------------------------------------------------
# Loading and registration
# --------------------------------------------------------------------------

@test
def test_version():
    conn = connect(None)
    with open(os.path.join(ROOT, "core", "ouro.h")) as f:
        want = [l.split('"')[1] for l in f if l.startswith("#define OURO_VERSION ")][0]
    equal(one(conn, "SELECT ouro_version()"), want, "ouro_version() is OURO_VERSION of core/ouro.h")
    info = json.loads(one(conn, "SELECT ouro_build_info()"))
    check(all(k in info for k in ("version", "simd", "amx", "openmp", "blas", "threads", "sqlite")),
          "ouro_build_info() is JSON with version, simd, amx, openmp, blas, threads, sqlite", info)
    equal(info["sqlite"]["runtime"], sqlite3.sqlite_version, "ouro_build_info() names the SQLite runtime")
    equal(info.get("precision_auto"), auto_precision(),
          "ouro_build_info() says what precision auto runs at (%s: from /proc/cpuinfo)" % auto_precision())
    equal(info["sqlite"]["interruptible"], sqlite3.sqlite_version_info >= (3, 41, 0),
          "ouro_build_info() says whether generations see sqlite3_interrupt")


# Every function: {name: {narg: flags}}; flags: D deterministic, I innocuous, X direct-only.
def _arities(args, flags):
    return {a: flags for a in args}


FUNCTIONS = {
    "ouro_load": _arities([1, 2], "X"),
    "ouro_unload": _arities([1], "X"),
    "ouro_setting": {1: "", 2: "X"},
    "ouro_generate": _arities(range(1, 9), ""),
    "ouro_generate_detail": _arities(range(1, 9), ""),
    "ouro_chat": _arities(range(1, 10), ""),
    "ouro_classify": _arities([2, 3, 4, 5], ""),
    "ouro_classify_scores": _arities([2, 3, 4, 5], ""),
    "ouro_generate_batch": _arities(range(1, 9), ""),
    "ouro_classify_batch": _arities([2, 3, 4, 5], ""),
    "ouro_classify_scores_batch": _arities([2, 3, 4, 5], ""),
    "ouro_depth": _arities([1, 2, 3], ""),
    "ouro_depth_batch": _arities([1, 2, 3], ""),
    "ouro_tokenize": _arities([1, 2], ""),
    "ouro_detokenize": _arities([1, 2], ""),
    "ouro_token_count": _arities([1, 2], ""),
    "ouro_model_info": _arities([0, 1], ""),
    "ouro_version": _arities([0], "DI"),
    "ouro_build_info": _arities([0], "DI"),
}
FLAG_BITS = {"D": 0x800, "X": 0x80000, "I": 0x200000}


@test
def test_registered_functions():
    conn = connect(None)
    rows = conn.execute("SELECT name, narg, flags FROM pragma_function_list "
                        "WHERE name LIKE 'ouro%' ORDER BY name, narg").fetchall()
    got = sorted((n, a) for n, a, _ in rows)
    want = sorted((n, a) for n, arities in FUNCTIONS.items() for a in arities)
    equal(got, want, "pragma_function_list holds exactly the ouro functions and arities")
    bad = []
    for n, a, flags in rows:
        want_flags = FUNCTIONS.get(n, {}).get(a, "")
        for letter, bit in FLAG_BITS.items():
            if bool(flags & bit) != (letter in want_flags):
                bad.append((n, a, letter))
    equal(bad, [], "flags: loading and setting direct-only, model functions not deterministic, "
                   "version/build_info deterministic and innocuous")
    mods = [r[0] for r in conn.execute("SELECT name FROM pragma_module_list WHERE name LIKE 'ouro%'")]
    equal(mods, ["ouro_token_depths"], "the one module is ouro_token_depths")
    cols = [r[1] for r in conn.execute("SELECT * FROM pragma_table_xinfo('ouro_token_depths')")]
    equal(cols, ["pos", "token", "exit_pdf", "expected_depth", "exit_step", "input", "exit_threshold",
                 "model"], "ouro_token_depths columns (the last three hidden: the arguments)")


@test
def test_shell():
    r = subprocess.run(["sqlite3", ":memory:", ".load build/ouro", "select ouro_version()"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    equal((r.returncode, r.stdout.strip()), (0, one(connect(None), "SELECT ouro_version()")),
          "sqlite3 shell: .load build/ouro, select ouro_version()")
    r = subprocess.run(["sqlite3", ":memory:", ".load build/ouro",
                        "select ouro_load('%s')" % TINY,
                        "select ouro_generate('Hi', NULL, 12)"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    want = [c for c in expected("tiny-mha-bf16")["cases"] if c["prompt"] == "Hi"][0]["greedy_text"]
    equal(r.stdout.split("\n", 1)[1] if "\n" in r.stdout else r.stdout, want + "\n",
          "sqlite3 shell: ouro_generate gives the golden text")


@test
def test_load_unload():
    conn = connect(None)
    raises(lambda: one(conn, "SELECT ouro_generate('hi')"), NO_MODEL, "no model: clear error")
    raises(lambda: one(conn, "SELECT ouro_tokenize('hi')"), NO_MODEL, "no model: ouro_tokenize too")
    raises(lambda: one(conn, "SELECT * FROM ouro_token_depths('hi')"), NO_MODEL,
           "no model: ouro_token_depths too")
    raises(lambda: one(conn, "SELECT ouro_load('/no/such/folder')"),
           "cannot load model '/no/such/folder'", "bad path: error names the path")
    raises(lambda: one(conn, "SELECT ouro_load(?)", os.path.join(ROOT, "test", "data", "tokenizer")),
           "cannot load model", "folder without a model: error with the library's message")
    raises(lambda: one(conn, "SELECT ouro_load(NULL)"), "needs the path", "ouro_load(NULL): error")
    raises(lambda: one(conn, "SELECT ouro_load(NULL, ?)", TINY), "needs a name",
           "ouro_load(NULL, path): error")
    equal(one(conn, "SELECT ouro_load(?)", os.path.join(MODELS_DIR, ".", "tiny-mha-bf16")),
          os.path.realpath(TINY), "ouro_load(path) returns the canonical folder")
    equal(one(conn, "SELECT ouro_load('gqa', ?)", os.path.join(MODELS_DIR, "tiny-gqa-f32-tied")),
          "gqa", "ouro_load(name, path) returns the name")
    gqa = expected("tiny-gqa-f32-tied")["cases"][0]
    equal(one(conn, "SELECT ouro_generate(?, NULL, 12, NULL, NULL, NULL, NULL, 'gqa')", gqa["prompt"]),
          gqa["greedy_text"], "the model argument selects a named model")
    raises(lambda: one(conn, "SELECT ouro_generate('hi', NULL, 2, NULL, NULL, NULL, NULL, 'nope')"),
           "no model named 'nope' is loaded", "unknown model name: error")
    equal(one(conn, "SELECT ouro_unload('gqa')"), 1, "ouro_unload(name) returns 1")
    equal(one(conn, "SELECT ouro_unload('gqa')"), 0, "ouro_unload of an unknown name returns 0")
    raises(lambda: one(conn, "SELECT ouro_tokenize('hi', 'gqa')"), "no model named 'gqa'",
           "an unloaded name is gone")
    equal(one(conn, "SELECT ouro_unload(NULL)"), 1, "ouro_unload(NULL) unloads the default")
    raises(lambda: one(conn, "SELECT ouro_tokenize('hi')"), NO_MODEL, "the default is gone")


@test
def test_direct_only():
    conn = connect(None)
    conn.execute("CREATE VIEW v AS SELECT ouro_load('%s') AS x" % TINY)
    raises(lambda: one(conn, "SELECT x FROM v"), "unsafe use of ouro_load",
           "ouro_load cannot run from a view")
    conn.execute("CREATE TABLE t(a)")
    conn.execute("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT ouro_unload(NULL); END")
    raises(lambda: conn.execute("INSERT INTO t VALUES (1)"), "unsafe use of ouro_unload",
           "ouro_unload cannot run from a trigger")


@test
def test_env_default():
    os.environ["OURO_MODEL"] = TINY
    try:
        conn = connect(None)
        case = expected("tiny-mha-bf16")["cases"][0]
        equal(one(conn, "SELECT ouro_generate(?, NULL, 12)", case["prompt"]), case["greedy_text"],
              "OURO_MODEL gives the default model")
        os.environ["OURO_MODEL"] = "/no/such/model"
        conn2 = connect(None)
        raises(lambda: one(conn2, "SELECT ouro_generate('hi')"), "cannot load OURO_MODEL",
               "a bad OURO_MODEL is a clear error")
    finally:
        os.environ.pop("OURO_MODEL", None)
    conn3 = connect(TINY)
    os.environ["OURO_MODEL"] = "/no/such/model"
    try:
        check(one(conn3, "SELECT ouro_token_count('hi')") >= 1, "ouro_load(path) wins over OURO_MODEL")
    finally:
        os.environ.pop("OURO_MODEL", None)


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------

@test
def test_golden_generate():
    for model in MODELS:
        d = os.path.join(MODELS_DIR, model)
        conn = connect(d)
        for case in expected(model)["cases"]:
            name = "%s/%s" % (model, case["name"])
            got = one(conn, "SELECT ouro_generate(?, NULL, 12)", case["prompt"])
            equal(got, case["greedy_text"], "%s: ouro_generate(prompt, NULL, 12) = greedy_text" % name)
            detail = json.loads(one(conn, "SELECT ouro_generate_detail(?, NULL, 12)", case["prompt"]))
            equal(detail["ids"], case["greedy_new_ids"], "%s: ouro_generate_detail ids = greedy_new_ids"
                  % name)
            ref = json.loads(tool("generate", "--model", d, "--prompt", case["prompt"],
                                  "--max-tokens", "12", "--precision", "exact", "--json"))
            equal((got, detail["ids"], detail["exit_steps"]), (ref["text"], ref["ids"], ref["exit_steps"]),
                  "%s: text, ids, exit_steps equal `ouro generate --max-tokens 12 --json`" % name)
            # The settings map to the tool's flags.
            for depth, kv in (("adaptive", "last"), ("full", "per-step")):
                one(conn, "SELECT ouro_setting('depth', ?)", depth)
                one(conn, "SELECT ouro_setting('kv_cache', ?)", kv)
                got = json.loads(one(conn, "SELECT ouro_generate_detail(?, NULL, 12, NULL, 0.5)", case["prompt"]))
                ref = json.loads(tool("generate", "--model", d, "--prompt", case["prompt"], "--max-tokens", "12",
                                      "--exit", "threshold:0.5", "--depth", depth, "--kv", kv,
                                      "--precision", "exact", "--json"))
                equal((got["text"], got["ids"], got["exit_steps"]), (ref["text"], ref["ids"], ref["exit_steps"]),
                      "%s: exit_threshold 0.5, depth %s, kv_cache %s = `ouro generate --exit threshold:0.5 "
                      "--depth %s --kv %s`" % (name, depth, kv, depth, kv))
            one(conn, "SELECT ouro_setting('depth', NULL)")
            one(conn, "SELECT ouro_setting('kv_cache', NULL)")


@test
def test_generate_arguments():
    conn = connect()
    case = expected("tiny-mha-bf16")["cases"][0]
    p = case["prompt"]
    full = one(conn, "SELECT ouro_generate(?, NULL, 12)", p)
    check(one(conn, "SELECT ouro_generate(NULL)") is None, "NULL prompt gives NULL")
    check(one(conn, "SELECT ouro_generate(NULL, 4, 3)") is None, "NULL prompt with options gives NULL")
    equal(one(conn, "SELECT ouro_generate(?, NULL, 12, NULL, NULL, NULL, NULL, NULL)", p), full,
          "NULL options mean their defaults")
    equal(one(conn, "SELECT ouro_generate(?, 4, 12, 0, NULL, 7)", p), full,
          "max_loops 4 = total_ut_steps; temperature 0 ignores the seed")
    short = one(conn, "SELECT ouro_generate(?, NULL, 3)", p)
    check(full.startswith(short) and len(short) < len(full), "max_tokens 3 gives a prefix of 12",
          (short, full))
    default_len = one(conn, "SELECT ouro_token_count(ouro_generate(?))", p)
    check(default_len > 12, "max_tokens defaults to 128 tokens (more than 12)", default_len)
    one(conn, "SELECT ouro_setting('depth', 'full')")
    equal(one(conn, "SELECT ouro_generate(?, NULL, 12, NULL, 1.0)", p), full,
          "full depth, exit_threshold 1.0 (the config's) gives the default text")
    one(conn, "SELECT ouro_setting('depth', NULL)")
    check(isinstance(one(conn, "SELECT ouro_generate(?, 1, 4)", p), str), "max_loops 1 runs")
    check(isinstance(one(conn, "SELECT ouro_generate(?, 16, 2)", p), str), "max_loops 16 runs")
    a = one(conn, "SELECT ouro_generate(?, NULL, 12, 1.0, NULL, 5)", p)
    b = one(conn, "SELECT ouro_generate(?, NULL, 12, 1.0, NULL, 5)", p)
    equal(a, b, "temperature 1 with equal seeds gives equal text")
    c = [one(conn, "SELECT ouro_generate(?, NULL, 12, 1.0, NULL, ?)", p, s) for s in range(6, 10)]
    check(any(x != a for x in c), "other seeds give other text", c)
    equal(one(conn, "SELECT ouro_generate(?, NULL, 12, 1.0)", p),
          one(conn, "SELECT ouro_generate(?, NULL, 12, 1.0, NULL, NULL)", p),
          "seed NULL is a fixed default")
    # stop: a piece of the greedy text ends the reply before it.
    stop = full[len(full) // 2:len(full) // 2 + 3]
    want = full[:full.index(stop)]
    equal(one(conn, "SELECT ouro_generate(?, NULL, 12, NULL, NULL, NULL, ?)", p, json.dumps([stop])),
          want, "stop ends the text before the stop string")
    equal(one(conn, "SELECT ouro_generate(?, NULL, 12, NULL, NULL, NULL, '[\"zzzqqq\"]')", p), full,
          "a stop string that never appears changes nothing")


@test
def test_generate_errors():
    conn = connect()
    cases = [
        ("ouro_generate('x', 0)", "max_loops must be between 1 and 16"),
        ("ouro_generate('x', 17)", "max_loops must be between 1 and 16"),
        ("ouro_generate('x', 2.5)", "max_loops must be between 1 and 16"),
        ("ouro_generate('x', 'four')", "max_loops must be between 1 and 16"),
        ("ouro_generate('x', NULL, 0)", "max_tokens must be between 1 and 1048576"),
        ("ouro_generate('x', NULL, 1048577)", "max_tokens must be between 1 and 1048576"),
        ("ouro_generate('x', NULL, 2, -0.5)", "temperature must be between 0 and 100"),
        ("ouro_generate('x', NULL, 2, NULL, 1.5)", "exit_threshold must be between 0 and 1"),
        ("ouro_generate('x', NULL, 2, NULL, -1)", "exit_threshold must be between 0 and 1"),
        ("ouro_generate('x', NULL, 2, NULL, NULL, 'abc')", "seed must be an integer"),
        ("ouro_generate('x', NULL, 2, NULL, NULL, NULL, 'stop')", "stop must be a JSON array"),
        ("ouro_generate('x', NULL, 2, NULL, NULL, NULL, '[1]')", "item 1 of stop is not a string"),
        ("ouro_generate('x', NULL, 2, NULL, NULL, NULL, '[\"\"]')", "stop string 1 is empty"),
        ("ouro_generate('')", "the prompt has no tokens"),
        ("ouro_chat('x', NULL, 99)", "max_loops must be between 1 and 16"),
    ]
    for expr, msg in cases:
        raises(lambda: one(conn, "SELECT " + expr), msg, "%s: error says '%s'" % (expr, msg))
    long_prompt = "a " * 5000
    raises(lambda: one(conn, "SELECT ouro_generate(?, NULL, 1)", long_prompt),
           "is too long", "a prompt longer than the context is an error")
    raises(lambda: one(conn, "SELECT ouro_depth(?)", long_prompt), "is too long",
           "ouro_depth: input longer than the context is an error")
    raises(lambda: one(conn, "SELECT ouro_generate_detail(?, NULL, 1)", long_prompt),
           "is too long", "ouro_generate_detail: a prompt longer than the context")
    raises(lambda: one(conn, "SELECT ouro_chat(?, NULL, NULL, 1)", long_prompt),
           "is too long", "ouro_chat: a message longer than the context")
    raises(lambda: one(conn, "SELECT ouro_classify(?, '[\"a\",\"b\"]')", long_prompt),
           "is too long", "ouro_classify: an input longer than the context")
    raises(lambda: conn.execute("SELECT * FROM ouro_token_depths(?)", (long_prompt,)).fetchall(),
           "is too long", "ouro_token_depths: an input longer than the context")
    raises(lambda: one(conn, "SELECT ouro_generate('x', 1, 2, 3, 0.5, 6, NULL, NULL, 9)"),
           "wrong number of arguments", "ouro_generate takes at most 8 arguments")
    raises(lambda: one(conn, "SELECT ouro_generate_detail('x', 0)"),
           "max_loops must be between 1 and 16", "ouro_generate_detail checks its arguments")
    check(isinstance(one(conn, "SELECT ouro_generate('Hi', NULL, 2)"), str),
          "the connection works after the errors")


@test
def test_chat():
    conn = connect()
    check(one(conn, "SELECT ouro_chat(NULL)") is None, "ouro_chat(NULL) gives NULL")
    rendered = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                "<|im_start|>user\nIs water wet?<|im_end|>\n<|im_start|>assistant\n")
    equal(one(conn, "SELECT ouro_chat('Is water wet?', NULL, NULL, 8)"),
          one(conn, "SELECT ouro_generate(?, NULL, 8)", rendered),
          "ouro_chat(message) = ouro_generate of the ChatML prompt with the default system turn")
    rendered = ("<|im_start|>system\nAnswer with one word.<|im_end|>\n"
                "<|im_start|>user\nIs water wet?<|im_end|>\n<|im_start|>assistant\n")
    equal(one(conn, "SELECT ouro_chat('Is water wet?', 'Answer with one word.', 4, 8, 0, NULL, 1)"),
          one(conn, "SELECT ouro_generate(?, NULL, 8)", rendered),
          "ouro_chat(message, system, ...) uses the system message")


@test
def test_settings():
    conn = connect(precision=None)
    equal([one(conn, "SELECT ouro_setting(?)", n) for n in ("kv_cache", "kv_type", "precision", "depth", "threads")],
          ["per-step", "f32", "auto", "adaptive", "0"], "settings start at their defaults")
    for name, value in (("kv_type", "f16"), ("kv_type", "f32"), ("precision", "bf16"), ("precision", "exact")):
        equal(one(conn, "SELECT ouro_setting(?, ?)", name, value), value, "%s set to %s" % (name, value))
        equal(one(conn, "SELECT ouro_setting(?)", name), value, "%s reads back %s" % (name, value))
    one(conn, "SELECT ouro_setting('ouro.kv_type', 'f16')")
    one(conn, "SELECT ouro_setting('ouro.precision', 'bf16')")
    equal([one(conn, "SELECT ouro_setting(?, NULL)", n) for n in ("kv_type", "precision")], ["f32", "auto"],
          "kv_type and precision: 'ouro.' prefix accepted, NULL resets to f32 / auto")
    one(conn, "SELECT ouro_setting('precision', 'exact')")
    equal(one(conn, "SELECT ouro_setting('ouro.depth', 'full')"), "full",
          "ouro_setting(name, value) sets and returns the value ('ouro.' prefix accepted)")
    equal(one(conn, "SELECT ouro_setting('depth')"), "full", "ouro_setting(name) reads it back")
    equal(one(conn, "SELECT ouro_setting('depth', NULL)"), "adaptive", "NULL value resets to the default")
    equal(one(conn, "SELECT ouro_setting('threads', 1)"), "1", "threads 1")
    p = expected("tiny-mha-bf16")["cases"][0]
    equal(one(conn, "SELECT ouro_generate(?, NULL, 12)", p["prompt"]), p["greedy_text"],
          "one thread gives the golden text")
    one(conn, "SELECT ouro_setting('threads', NULL)")
    other = connect()
    one(conn, "SELECT ouro_setting('depth', 'full')")
    equal(one(other, "SELECT ouro_setting('depth')"), "adaptive", "settings belong to one connection")
    for expr, msg in [("ouro_setting('nope')", "unknown setting 'nope'"),
                      ("ouro_setting(NULL)", "needs a setting name"),
                      ("ouro_setting('kv_cache', 'big')", "kv_cache must be 'per-step', 'last' or 'avg'"),
                      ("ouro_setting('depth', 'half')", "depth must be 'adaptive' or 'full'"),
                      ("ouro_setting('kv_type', 'f8')", "kv_type must be 'f32' or 'f16', not 'f8'"),
                      ("ouro_setting('kv_type', 'F16')", "kv_type must be 'f32' or 'f16'"),
                      ("ouro_setting('kv_type', 16)", "kv_type must be 'f32' or 'f16', not '16'"),
                      ("ouro_setting('precision', 'fast')", "precision must be 'auto', 'exact' or 'bf16', not 'fast'"),
                      ("ouro_setting('precision', 'bfloat16')", "precision must be 'auto', 'exact' or 'bf16'"),
                      ("ouro_setting('threads', 2000)", "threads must be between 0 and 1024"),
                      ("ouro_setting('threads', 'x')", "threads must be between 0 and 1024")]:
        raises(lambda: one(conn, "SELECT " + expr), msg, "%s: error says '%s'" % (expr, msg))
    conn.execute("CREATE VIEW sv AS SELECT ouro_setting('depth', 'full') AS x")
    raises(lambda: one(conn, "SELECT x FROM sv"), "unsafe use of ouro_setting",
           "ouro_setting(name, value) cannot run from a view")
    conn.execute("CREATE VIEW sr AS SELECT ouro_setting('depth') AS x")
    equal(one(conn, "SELECT x FROM sr"), "full", "ouro_setting(name) may run from a view")


@test
def test_generate_detail():
    conn = connect()
    p = expected("tiny-mha-bf16")["cases"][0]
    check(one(conn, "SELECT ouro_generate_detail(NULL)") is None, "ouro_generate_detail(NULL) gives NULL")
    d = json.loads(one(conn, "SELECT ouro_generate_detail(?, NULL, 12)", p["prompt"]))
    equal(sorted(d), sorted(["text", "ids", "n_tokens", "prompt_tokens", "exit_steps", "mean_depth",
                             "stop_reason", "depth", "kv_cache", "kv_type", "precision", "seconds"]),
          "detail keys")
    equal((d["kv_type"], d["precision"]), ("f32", "exact"), "detail: kv_type (default) and precision (set)")
    dflt = connect(precision=None)
    d_auto = json.loads(one(dflt, "SELECT ouro_generate_detail(?, NULL, 4)", p["prompt"]))
    equal(d_auto["precision"], auto_precision(),
          "detail: the default precision auto runs as %s on this CPU" % auto_precision())
    one(dflt, "SELECT ouro_setting('precision', ?)", auto_precision())
    d_set = json.loads(one(dflt, "SELECT ouro_generate_detail(?, NULL, 4)", p["prompt"]))
    equal(d_auto["ids"], d_set["ids"], "detail: auto gives the ids of precision %s" % auto_precision())
    equal((d["text"], d["n_tokens"], d["prompt_tokens"], d["stop_reason"], d["depth"], d["kv_cache"]),
          (p["greedy_text"], 12, len(p["input_ids"]), "length", "full", "per-step"),
          "detail: text, token count, prompt tokens, stop reason, depth, cache")
    T = expected("tiny-mha-bf16")["config"].get("total_ut_steps", 4)
    equal(d["exit_steps"], [T] * 12, "without a threshold every token uses every loop step")
    equal(d["mean_depth"], float(T), "mean_depth is the mean of exit_steps")
    rows = conn.execute("SELECT json_extract(ouro_generate_detail(?, NULL, 3), '$.n_tokens'), "
                        "json_array_length(ouro_generate_detail(?, NULL, 3), '$.exit_steps')",
                        (p["prompt"], p["prompt"])).fetchone()
    equal(rows, (3, 3), "SQLite's JSON functions read the detail (aggregatable)")
    s = json.loads(one(conn, "SELECT ouro_generate_detail(?, NULL, 12, NULL, NULL, NULL, ?)",
                       p["prompt"], json.dumps([p["greedy_text"][3:6]])))
    equal((s["text"], s["stop_reason"]), (p["greedy_text"][:p["greedy_text"].index(p["greedy_text"][3:6])],
                                          "stop"), "detail with a stop string: stop_reason 'stop'")


def adaptive_settings(mode):
    """(exit_threshold or None, depth, kv_cache) of an expected_adaptive.json mode."""
    depth_q, kv = mode.split("_")
    kv = {"copy": "per-step", "last": "last", "avg": "avg"}[kv]
    return (None, "full", kv) if depth_q == "full" else (float(depth_q[1:]), "adaptive", kv)


@test
def test_adaptive_golden():
    """expected_adaptive.json: adaptive depth and the smaller decode caches, through SQL.

    A mode the core does not implement yet gives one skip line (with the core's message)."""
    unsupported = {}
    for model in MODELS:
        d = os.path.join(MODELS_DIR, model)
        conn = connect(d)
        with open(os.path.join(d, "expected_adaptive.json")) as f:
            ref = json.load(f)
        by_ids = {tuple(c["input_ids"]): c["prompt"] for c in expected(model)["cases"]}
        for case in ref["cases"]:
            prompt = by_ids.get(tuple(case["input_ids"]))
            if prompt is None:
                skip("%s/%s: adaptive golden" % (model, case["name"]), "no prompt text for these ids")
                continue
            for mode, want in sorted(case["modes"].items()):
                if mode in unsupported:
                    continue
                q, depth, kv = adaptive_settings(mode)
                name = "%s/%s/%s: ouro_generate_detail ids and exit_steps" % (model, case["name"], mode)
                one(conn, "SELECT ouro_setting('depth', ?)", depth)
                one(conn, "SELECT ouro_setting('kv_cache', ?)", kv)
                try:
                    got = json.loads(one(conn, "SELECT ouro_generate_detail(?, NULL, 12, NULL, ?)", prompt, q))
                except sqlite3.OperationalError as e:
                    if "not implemented yet" in str(e):
                        unsupported[mode] = str(e)
                        continue
                    raise
                if not want["robust"]:
                    skip(name, "reference not robust to rounding")
                    continue
                equal((got["ids"], got["exit_steps"]), (want["new_ids"], want["exit_steps"]), name)
    for mode, msg in sorted(unsupported.items()):
        skip("expected_adaptive.json mode %s through SQL" % mode, "the core says: " + msg)


@test
def test_kv_cache_bytes():
    conn = connect()
    p = expected("tiny-mha-bf16")["cases"][0]["prompt"]
    sizes = {}
    for kv in ("per-step", "last", "avg"):
        one(conn, "SELECT ouro_setting('kv_cache', ?)", kv)
        try:
            one(conn, "SELECT ouro_generate(?, NULL, 2)", p)
        except sqlite3.OperationalError as e:
            if "not implemented yet" in str(e):
                check("ouro_setting('kv_cache', 'per-step')" in str(e),
                      "kv_cache %s unsupported by the core: the error names the setting" % kv, str(e))
                continue
            raise
        sizes[kv] = json.loads(one(conn, "SELECT ouro_model_info()"))["session_kv_bytes"]
    one(conn, "SELECT ouro_setting('kv_cache', NULL)")
    check(sizes.get("per-step", 0) > 0, "the per-step cache has a size", sizes)
    for kv in ("last", "avg"):
        if kv in sizes:
            equal(sizes[kv] * 4, sizes["per-step"], "kv_cache %s holds a quarter of per-step (4 steps)" % kv)
        else:
            skip("kv_cache %s holds a quarter of per-step" % kv, "not implemented in the core yet")


@test
def test_kv_type():
    """kv_type f16: half the KV bytes, the golden greedy texts unchanged; classification and depth
    keep the exact path."""
    conn = connect()
    p = expected("tiny-mha-bf16")["cases"][0]["prompt"]
    info = lambda: json.loads(one(conn, "SELECT ouro_model_info()"))
    equal((info()["session_kv_bytes"], info()["session_kv_type"], info()["session_precision"]), (0, None, None),
          "before any call: no session (0 KV bytes, kv_type and precision null)")
    sizes = {}
    for kv in ("per-step", "last"):
        one(conn, "SELECT ouro_setting('kv_cache', ?)", kv)
        for t in ("f32", "f16"):
            one(conn, "SELECT ouro_setting('kv_type', ?)", t)
            one(conn, "SELECT ouro_generate(?, NULL, 2)", p)
            i = info()
            sizes[kv, t] = i["session_kv_bytes"]
            equal((i["session_kv_type"], i["session_precision"]), (t, "exact"),
                  "kv_cache %s, kv_type %s: ouro_model_info names the session's kv_type" % (kv, t))
        check(sizes[kv, "f32"] > 0 and sizes[kv, "f16"] * 2 == sizes[kv, "f32"],
              "kv_cache %s: kv_type f16 holds half the KV bytes of f32 (%s)" % (kv, sizes), sizes)
    one(conn, "SELECT ouro_setting('kv_cache', NULL)")
    one(conn, "SELECT ouro_setting('kv_type', 'f16')")
    d = json.loads(one(conn, "SELECT ouro_generate_detail(?, NULL, 2)", p))
    equal(d["kv_type"], "f16", "ouro_generate_detail reports kv_type f16")
    # classification and depth keep the exact path whatever the settings
    labels = json.dumps(["positive", "negative", "neutral"])
    one(conn, "SELECT ouro_setting('precision', 'bf16')")
    scores_f16 = one(conn, "SELECT ouro_classify_scores('I loved it', ?)", labels)
    equal((info()["session_kv_type"], info()["session_precision"]), ("f32", "exact"),
          "classification runs an exact session (f32, exact) under kv_type f16, precision bf16")
    depth_f16 = one(conn, "SELECT ouro_depth(?)", p)
    one(conn, "SELECT ouro_setting('kv_type', NULL)")
    one(conn, "SELECT ouro_setting('precision', NULL)")
    equal((scores_f16, depth_f16), (one(conn, "SELECT ouro_classify_scores('I loved it', ?)", labels),
                                    one(conn, "SELECT ouro_depth(?)", p)),
          "classification scores and depth are the same under kv_type f16 / precision bf16")
    # golden: kv_type f16 keeps every greedy text, per row and batched
    for model in MODELS:
        conn = connect(os.path.join(MODELS_DIR, model))
        one(conn, "SELECT ouro_setting('kv_type', 'f16')")
        cases = expected(model)["cases"]
        for case in cases:
            equal(one(conn, "SELECT ouro_generate(?, NULL, 12)", case["prompt"]), case["greedy_text"],
                  "%s/%s: kv_type f16, ouro_generate(prompt, NULL, 12) = greedy_text" % (model, case["name"]))
        equal(batch(conn, "SELECT ouro_generate_batch(?, NULL, 12)", json.dumps([c["prompt"] for c in cases])),
              [c["greedy_text"] for c in cases],
              "%s: kv_type f16, ouro_generate_batch gives every greedy_text" % model)
        equal(json.loads(one(conn, "SELECT ouro_model_info()"))["session_kv_type"], "f16",
              "%s: the batch ran with kv_type f16" % model)


@test
def test_precision():
    """precision bf16 is accepted by every generation form (its text is approximate: not compared)."""
    conn = connect()
    cases = expected("tiny-mha-bf16")["cases"]
    one(conn, "SELECT ouro_setting('precision', 'bf16')")
    got = one(conn, "SELECT ouro_generate(?, NULL, 8)", cases[0]["prompt"])
    check(isinstance(got, str), "precision bf16: ouro_generate gives text", got)
    d = json.loads(one(conn, "SELECT ouro_generate_detail(?, NULL, 8)", cases[0]["prompt"]))
    equal((d["precision"], d["n_tokens"]), ("bf16", 8), "precision bf16: ouro_generate_detail reports it")
    equal(json.loads(one(conn, "SELECT ouro_model_info()"))["session_precision"], "bf16",
          "precision bf16: ouro_model_info names the session's precision")
    out = batch(conn, "SELECT ouro_generate_batch(?, NULL, 8)", json.dumps([c["prompt"] for c in cases]))
    check(isinstance(out, list) and len(out) == len(cases) and all(isinstance(t, str) for t in out),
          "precision bf16: ouro_generate_batch gives one text per prompt", out)
    check(isinstance(one(conn, "SELECT ouro_chat('Hi', NULL, NULL, 4)"), str), "precision bf16: ouro_chat runs")
    one(conn, "SELECT ouro_setting('precision', 'exact')")
    equal(one(conn, "SELECT ouro_generate(?, NULL, 12)", cases[0]["prompt"]), cases[0]["greedy_text"],
          "back to precision exact: the golden text")


@test
def test_interrupt():
    conn = connect(check_same_thread=False)
    conn.execute("CREATE TABLE q(p)")
    conn.executemany("INSERT INTO q VALUES (?)", [("question %d" % i,) for i in range(400)])
    timer = threading.Timer(0.5, conn.interrupt)
    timer.start()
    t0 = time.time()
    raises(lambda: conn.execute("SELECT ouro_generate(p, NULL, 64) FROM q").fetchall(), "interrupted",
           "sqlite3_interrupt stops a query of generations", sqlite3.OperationalError)
    timer.cancel()
    check(time.time() - t0 < 60, "the interrupted query ends promptly", time.time() - t0)
    check(isinstance(one(conn, "SELECT ouro_generate('Hi', NULL, 2)"), str),
          "the connection works after an interrupt")


# --------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------

@test
def test_classify():
    conn = connect()
    labels = json.dumps(["positive", "negative", "neutral"])
    scores = json.loads(one(conn, "SELECT ouro_classify_scores('I loved it', ?)", labels))
    equal(list(scores), ["positive", "negative", "neutral"], "scores has every label, in order")
    check(abs(sum(scores.values()) - 1) < 1e-9, "scores sum to 1", scores)
    check(all(0 <= v <= 1 for v in scores.values()), "scores are probabilities", scores)
    best = one(conn, "SELECT ouro_classify('I loved it', ?)", labels)
    equal(best, max(scores, key=scores.get), "ouro_classify returns the argmax of the scores")
    s2 = json.loads(one(conn, "SELECT ouro_classify_scores('I loved it', ?, 'Pick the sentiment.', 2)",
                        labels))
    check(abs(sum(s2.values()) - 1) < 1e-9 and s2 != scores,
          "instruction and max_loops change the scores", s2)
    check(one(conn, "SELECT ouro_classify(NULL, ?)", labels) is None, "NULL input gives NULL")
    check(one(conn, "SELECT ouro_classify_scores(NULL, ?)", labels) is None,
          "NULL input gives NULL (scores)")
    check(one(conn, "SELECT ouro_classify('x', NULL)") is None, "NULL labels give NULL")
    equal(one(conn, "SELECT ouro_classify('x', ?, NULL, NULL, NULL)", labels),
          one(conn, "SELECT ouro_classify('x', ?)", labels), "NULL options mean their defaults")
    for bad, msg in [("not json", "labels must be a JSON array"), ("[]", "labels must be a JSON array"),
                     ('{"a": 1}', "labels must be a JSON array"), ("[1, 2]", "item 1 of labels is not a string"),
                     ('["a", "a"]', 'label "a" appears twice'), ('["a", ""]', "label 2 is empty")]:
        raises(lambda: one(conn, "SELECT ouro_classify('x', ?)", bad), msg,
               "labels %s: error says '%s'" % (bad, msg))
    raises(lambda: one(conn, "SELECT ouro_classify_scores('x', '[\"a\"]', NULL, 0)"),
           "max_loops must be between 1 and 16", "classify max_loops out of range")


def logsumexp(v):
    m = max(v)
    return m + math.log(sum(math.exp(x - m) for x in v))


@test
def test_classify_against_logits():
    """Label log-probabilities from `ouro logits` on prompt + label tokens."""
    import classify_ref  # noqa: E402  (builds the prompt as the core does)
    for model in MODELS:
        d = os.path.join(MODELS_DIR, model)
        conn = connect(d)
        for inp, labels, instr in [("I loved this film", ["positive", "negative"], None),
                                   ("2 + 2 = 4", ["true", "false", "not sure"], "Is it right?")]:
            scores = json.loads(one(conn, "SELECT ouro_classify_scores(?, ?, ?)", inp,
                                    json.dumps(labels), instr))
            lp = classify_ref.label_logprobs(tool, d, inp, labels, instr)
            z = logsumexp(lp)
            ref = {l: math.exp(x - z) for l, x in zip(labels, lp)}
            check(all(abs(scores[l] - ref[l]) < 1e-3 for l in labels),
                  "%s: classify scores agree with tool logits (%s)" % (model, inp), (scores, ref))
            equal(one(conn, "SELECT ouro_classify(?, ?, ?)", inp, json.dumps(labels), instr),
                  max(ref, key=ref.get), "%s: classify picks the tool's best label (%s)" % (model, inp))


# --------------------------------------------------------------------------
# Depth
# --------------------------------------------------------------------------

@test
def test_depth_golden():
    for model in MODELS:
        conn = connect(os.path.join(MODELS_DIR, model))
        T = expected(model)["config"].get("total_ut_steps", 4)
        for case in expected(model)["cases"][:3]:
            rows = conn.execute("SELECT pos, token, exit_pdf, expected_depth, exit_step "
                                "FROM ouro_token_depths(?)", (case["prompt"],)).fetchall()
            ref = case["exit_pdf"][:len(case["input_ids"])]
            equal(len(rows), len(case["input_ids"]), "%s/%s: one row per token" % (model, case["name"]))
            pdf = [json.loads(r[2]) for r in rows]
            err = max(abs(a - b) for pr, rr in zip(pdf, ref) for a, b in zip(pr, rr))
            check(all(len(p) == T for p in pdf) and err < 1e-4,
                  "%s/%s: exit_pdf matches upstream within 1e-4" % (model, case["name"]), err)
            exp = [sum((t + 1) * p for t, p in enumerate(pr)) for pr in ref]
            check(all(abs(r[3] - e) < 1e-3 for r, e in zip(rows, exp)),
                  "%s/%s: expected_depth = sum t*p_t" % (model, case["name"]))
            equal([r[0] for r in rows], list(range(len(rows))), "%s/%s: pos is 0-based" % (model, case["name"]))
            equal([r[4] for r in rows], [T] * len(rows),
                  "%s/%s: default exit_step is the last step (no gate saturates)" % (model, case["name"]))
            depth = one(conn, "SELECT ouro_depth(?)", case["prompt"])
            check(abs(depth - sum(exp) / len(exp)) < 1e-3,
                  "%s/%s: ouro_depth = mean expected depth" % (model, case["name"]), depth)
            q = 0.5
            steps = []
            for pr in ref:
                cdf, s = 0.0, T
                for t, p in enumerate(pr):
                    cdf += p
                    if cdf >= q:
                        s = t + 1
                        break
                steps.append(s)
            got = [r[0] for r in conn.execute("SELECT exit_step FROM ouro_token_depths(?, 0.5)",
                                              (case["prompt"],))]
            equal(got, steps, "%s/%s: exit_step with threshold 0.5 is the Q-exit step" % (model, case["name"]))
            check(abs(one(conn, "SELECT ouro_depth(?, 0.5)", case["prompt"]) - sum(steps) / len(steps)) < 1e-9,
                  "%s/%s: ouro_depth(input, 0.5) = mean Q-exit step" % (model, case["name"]))


@test
def test_depth_sql():
    conn = connect()
    check(one(conn, "SELECT ouro_depth(NULL)") is None, "ouro_depth(NULL) gives NULL")
    check(one(conn, "SELECT ouro_depth('')") is None, "ouro_depth('') (no tokens) gives NULL")
    equal(conn.execute("SELECT * FROM ouro_token_depths(NULL)").fetchall(), [],
          "ouro_token_depths(NULL) gives no rows")
    equal(conn.execute("SELECT * FROM ouro_token_depths('')").fetchall(), [],
          "ouro_token_depths('') gives no rows")
    raises(lambda: conn.execute("SELECT * FROM ouro_token_depths").fetchall(), "needs an input",
           "ouro_token_depths without input: clear error")
    raises(lambda: conn.execute("SELECT * FROM ouro_token_depths('x', 2)").fetchall(),
           "exit_threshold must be between 0 and 1", "ouro_token_depths threshold out of range")
    raises(lambda: one(conn, "SELECT ouro_depth('x', 2)"), "exit_threshold must be between 0 and 1",
           "ouro_depth threshold out of range")
    conn.execute("CREATE TABLE q(id INTEGER PRIMARY KEY, t TEXT)")
    conn.executemany("INSERT INTO q(t) VALUES (?)", [("Hi there",), ("one two three",), (None,)])
    rows = conn.execute("SELECT q.id, count(d.pos) FROM q LEFT JOIN ouro_token_depths(q.t) d "
                        "GROUP BY q.id ORDER BY q.id").fetchall()
    want = [(i, one(conn, "SELECT coalesce(ouro_token_count(t), 0) FROM q WHERE id = ?", i))
            for i in (1, 2, 3)]
    equal(rows, want, "ouro_token_depths joins with a table (one row per token)")
    toks = [r[0] for r in conn.execute("SELECT token FROM ouro_token_depths('Hello world')")]
    equal("".join(toks), "Hello world", "the token column concatenates to the input")
    equal(one(conn, "SELECT count(*) FROM ouro_token_depths('Hello world', NULL, NULL)"),
          one(conn, "SELECT ouro_token_count('Hello world')"), "NULL options mean their defaults")
    # ouro_depth_batch: every item the per-row value, bit for bit, whatever the batch size
    texts = ["The capital of France is", "Hi", None, "", "Once upon a time, in a land far away",
             "x", "Q: What is 17 * 23? A:"]
    for thr in (None, 0.5):
        want = [None if t is None else one(conn, "SELECT ouro_depth(?, ?)", t, thr) for t in texts]
        for size in (16, 2):
            one(conn, "SELECT ouro_setting('batch_size', ?)", size)
            got = batch(conn, "SELECT ouro_depth_batch(?, ?)", json.dumps(texts), thr)
            equal(got, want, "ouro_depth_batch (threshold %s, batch_size %d) = ouro_depth per item, "
                  "null for a null item or one without tokens" % (thr, size))
    one(conn, "SELECT ouro_setting('batch_size', NULL)")
    check(one(conn, "SELECT ouro_depth_batch(NULL)") is None, "ouro_depth_batch(NULL) gives NULL")
    equal(one(conn, "SELECT ouro_depth_batch('[]')"), "[]", "ouro_depth_batch('[]') gives '[]'")
    raises(lambda: one(conn, "SELECT ouro_depth_batch('[\"x\"]', 2)"),
           "exit_threshold must be between 0 and 1", "ouro_depth_batch threshold out of range")
    raises(lambda: one(conn, "SELECT ouro_depth_batch('[1]')"), "inputs",
           "ouro_depth_batch: an item that is not a string is an error")


# --------------------------------------------------------------------------
# Tokenizer and model info
# --------------------------------------------------------------------------

@test
def test_tokenizer():
    conn = connect()
    for case in expected("tiny-mha-bf16")["cases"]:
        equal(json.loads(one(conn, "SELECT ouro_tokenize(?)", case["prompt"])), case["input_ids"],
              "ouro_tokenize(%s) = reference ids" % case["name"])
        equal(one(conn, "SELECT ouro_token_count(?)", case["prompt"]), len(case["input_ids"]),
              "ouro_token_count(%s)" % case["name"])
        equal(one(conn, "SELECT ouro_detokenize(?)", json.dumps(case["input_ids"])), case["prompt"],
              "ouro_detokenize(%s) inverts ouro_tokenize" % case["name"])
    for f in ("ouro_tokenize", "ouro_detokenize", "ouro_token_count"):
        check(one(conn, "SELECT %s(NULL)" % f) is None, "%s(NULL) gives NULL" % f)
    equal(one(conn, "SELECT ouro_tokenize('')"), "[]", "ouro_tokenize('') = []")
    equal(one(conn, "SELECT ouro_detokenize('[]')"), "", "ouro_detokenize('[]') = ''")
    equal(one(conn, "SELECT ouro_tokenize('Hi', NULL)"), one(conn, "SELECT ouro_tokenize('Hi')"),
          "NULL model means the default")
    raises(lambda: one(conn, "SELECT ouro_detokenize('nope')"), "ids must be a JSON array",
           "ouro_detokenize: bad JSON")
    raises(lambda: one(conn, "SELECT ouro_detokenize('[1, \"a\"]')"), "item 2 of ids is not an integer",
           "ouro_detokenize: non-integer id")
    raises(lambda: one(conn, "SELECT ouro_detokenize('[99999999]')"), "item 1 is not between 0 and",
           "ouro_detokenize: id out of range")


@test
def test_model_info():
    conn = connect()
    info = json.loads(one(conn, "SELECT ouro_model_info()"))
    equal(info["path"], os.path.realpath(TINY), "ouro_model_info() names the folder")
    check(info["loaded_in_process"] is True and info["references"] >= 1, "loaded, referenced", info)
    cfg = json.dumps(info)
    check("4" in cfg and ("num_layers" in cfg or "num_hidden_layers" in cfg),
          "ouro_model_info() describes the config", info)
    conn.execute("SELECT ouro_load('x', ?)", (os.path.join(MODELS_DIR, "tiny-gqa-f32-tied"),))
    equal(json.loads(one(conn, "SELECT ouro_model_info('x')"))["path"],
          os.path.realpath(os.path.join(MODELS_DIR, "tiny-gqa-f32-tied")), "ouro_model_info(name)")
    raises(lambda: one(conn, "SELECT ouro_model_info('nope')"), "no model named 'nope'",
           "ouro_model_info of an unknown name")


@test
def test_surface_rules():
    """The rules of the SQL surface (core/ouro_surface.h), as test/sql/ouro_surface.sql checks
    them in PostgreSQL: the same ranges, settings, item numbers and on_error."""
    conn = connect()
    # max_tokens 1 .. 1048576 as in PostgreSQL; the context caps the reply
    raises(lambda: one(conn, "SELECT ouro_generate('Hi', NULL, 1048577)"),
           "ouro: max_tokens must be between 1 and 1048576", "max_tokens: the range of PostgreSQL")
    equal(one(conn, "SELECT ouro_setting('context_length')"), "4096", "context_length is a setting (4096)")
    one(conn, "SELECT ouro_setting('context_length', 24)")
    check(len(one(conn, "SELECT ouro_generate('Hi', NULL, 1048576)")) > 0,
          "max_tokens 1048576 is accepted, the context caps the reply")
    d = json.loads(one(conn, "SELECT ouro_generate_detail('Hi', NULL, 1048576)"))
    check(d["n_tokens"] + d["prompt_tokens"] <= 24, "the reply ends where context_length ends", d)
    one(conn, "SELECT ouro_setting('context_length', 16)")
    raises(lambda: one(conn, "SELECT ouro_generate(?)", "word " * 40),
           "the context holds 16 tokens", "a prompt longer than context_length is too long")
    for v in (15, 1048577):
        raises(lambda: one(conn, "SELECT ouro_setting('context_length', ?)", v),
               "context_length must be between 16 and 1048576", "context_length %d is out of range" % v)
    one(conn, "SELECT ouro_setting('context_length', NULL)")
    # the defaults a NULL argument means are settings, as ouro.* in PostgreSQL
    one(conn, "SELECT ouro_setting('max_tokens', 3)")
    equal(json.loads(one(conn, "SELECT ouro_generate_detail('Hi')"))["n_tokens"], 3,
          "ouro_setting('max_tokens') is the default of max_tokens")
    one(conn, "SELECT ouro_setting('max_tokens', NULL)")
    equal([one(conn, "SELECT ouro_setting(?)", n) for n in ("max_tokens", "max_loops", "exit_threshold",
                                                          "on_error", "batch_size")],
          ["128", "0", "-1", "error", "16"], "max_tokens, max_loops, exit_threshold, on_error, batch_size defaults")
    # items count from 1
    raises(lambda: one(conn, "SELECT ouro_classify('x', '[\"a\", \"\"]')"), "label 2 is empty",
           "an empty label is named from 1")
    raises(lambda: one(conn, "SELECT ouro_generate_batch('[\"Hi\", \"\"]', NULL, 2)"),
           "item 2 of prompts: the prompt has no tokens", "a bad prompt of a batch is named from 1")
    raises(lambda: one(conn, "SELECT ouro_detokenize('[1, 49152]')"), "item 2 is not between 0 and 49151",
           "a bad token id is named from 1")
    one(conn, "SELECT ouro_setting('context_length', 100)")
    yn = json.dumps(["yes", "no"])
    raises(lambda: one(conn, "SELECT ouro_classify_batch(?, ?)", json.dumps(["short", "word " * 80]), yn),
           "item 2 of inputs: the classification prompt is too long: it is 128 tokens; the context holds 100",
           "a classification input too long is named from 1, with the core's exact count")
    raises(lambda: one(conn, "SELECT ouro_depth_batch(?)", json.dumps(["short", "word " * 200])),
           "item 2 of inputs: the input is too long: it is 201 tokens; the context holds 100",
           "an ouro_depth_batch input too long is named from 1")
    check(one(conn, "SELECT ouro_classify('short', ?)", yn) in ("yes", "no"),
          "a classification that fits the core's exact count runs")
    # on_error = null: the bad row, or the bad item alone, gives NULL
    equal(one(conn, "SELECT ouro_setting('on_error', 'null')"), "null", "on_error is a setting")
    check(one(conn, "SELECT ouro_generate('')") is None, "on_error null: an empty prompt gives NULL")
    check(one(conn, "SELECT ouro_classify(?, ?)", "word " * 80, yn) is None,
          "on_error null: a classification prompt too long gives NULL")
    check(one(conn, "SELECT ouro_depth(?)", "word " * 200) is None, "on_error null: ouro_depth too long gives NULL")
    equal(batch(conn, "SELECT ouro_depth_batch(?)", json.dumps(["Hi", "word " * 200])),
          [one(conn, "SELECT ouro_depth('Hi')"), None], "on_error null: an ouro_depth_batch input too long gives a null item")
    check(one(conn, "SELECT ouro_detokenize('[49152]')") is None, "on_error null: a bad token id gives NULL")
    hi = one(conn, "SELECT ouro_generate('Hi', NULL, 2)")
    equal(batch(conn, "SELECT ouro_generate_batch('[\"Hi\", \"\", \"Hi\"]', NULL, 2)"), [hi, None, hi],
          "on_error null: a bad prompt of a batch gives a null item, the others run")
    want = [one(conn, "SELECT ouro_classify('short', ?)", yn), None, None,
            one(conn, "SELECT ouro_classify('also short', ?)", yn)]
    equal(batch(conn, "SELECT ouro_classify_batch(?, ?)", json.dumps(["short", "word " * 80, None, "also short"]), yn),
          want, "on_error null: a classification input too long gives a null item")
    raises(lambda: one(conn, "SELECT ouro_generate('Hi', 99)"), "max_loops must be between 1 and 16",
           "on_error null: an option out of range still fails")
    raises(lambda: one(conn, "SELECT ouro_setting('on_error', 'ignore')"), "on_error must be 'error' or 'null'",
           "on_error takes error or null")
    # ouro_model_info: every key once
    pairs = json.loads(one(conn, "SELECT ouro_model_info()"), object_pairs_hook=lambda kv: kv)
    keys = [k for k, _ in pairs]
    equal(sorted(k for k in set(keys) if keys.count(k) > 1), [], "ouro_model_info() gives each key once")


# --------------------------------------------------------------------------
# Sharing: connections, threads, reloads
# --------------------------------------------------------------------------

@test
def test_shared_connections():
    a = connect()
    refs_a = json.loads(one(a, "SELECT ouro_model_info()"))["references"]
    b = connect(os.path.join(MODELS_DIR, "..", "models", "tiny-mha-bf16"))
    refs_b = json.loads(one(b, "SELECT ouro_model_info()"))["references"]
    check(refs_b > refs_a, "a second connection shares the loaded model (references %d -> %d)"
          % (refs_a, refs_b))
    case = expected("tiny-mha-bf16")["cases"][1]
    equal(one(a, "SELECT ouro_generate(?, NULL, 12)", case["prompt"]),
          one(b, "SELECT ouro_generate(?, NULL, 12)", case["prompt"]), "both connections give equal text")
    refs_open = json.loads(one(a, "SELECT ouro_model_info()"))["references"]
    b.close()
    refs_after = json.loads(one(a, "SELECT ouro_model_info()"))["references"]
    equal(refs_open - refs_after, 2, "closing a connection releases its references: its default model "
          "and its session (%d -> %d)" % (refs_open, refs_after))


@test
def test_threads():
    cases = expected("tiny-mha-bf16")["cases"][:2]
    results, errors = {}, []
    main = connect()
    refs_before = json.loads(one(main, "SELECT ouro_model_info()"))["references"]
    seen = []

    def work(k):
        try:
            conn = connect()
            for rep in range(3):
                for c in cases:
                    results[(k, rep, c["name"])] = one(conn, "SELECT ouro_generate(?, NULL, 12)", c["prompt"])
            seen.append(json.loads(one(conn, "SELECT ouro_model_info()"))["references"])
            conn.close()
        except Exception as e:
            errors.append(repr(e))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    equal(errors, [], "two threads, each with a connection, run without error")
    bad = [k for k, v in results.items() if v != [c for c in cases if c["name"] == k[2]][0]["greedy_text"]]
    check(len(results) == 12 and not bad, "every threaded generation gives the golden text", bad)
    check(len(seen) == 2 and min(seen) > refs_before,
          "the threads' connections share the main connection's model (references %r, before %d)"
          % (seen, refs_before))
    equal(json.loads(one(main, "SELECT ouro_model_info()"))["references"], refs_before,
          "closing the threads' connections gives their references back")


@test
def test_process_exit():
    """Connections that ran the model, closed in any order, then the process exits cleanly
    (the extension stays mapped: libgomp's idle threads must not outlive their code)."""
    script = (
        "import sqlite3, sys\n"
        "def c():\n"
        "    x = sqlite3.connect(':memory:'); x.enable_load_extension(True)\n"
        "    x.load_extension(sys.argv[1]); x.execute('SELECT ouro_load(?)', (sys.argv[2],)); return x\n"
        "a, b = c(), c()\n"
        "for x in (a, b): x.execute(\"SELECT ouro_generate('Hi', NULL, 4)\").fetchone()\n"
        "b.close(); a.execute(\"SELECT ouro_generate('Hi', NULL, 4)\").fetchone(); a.close()\n"
        "d = c(); d.execute(\"SELECT ouro_generate('Hi', NULL, 4)\").fetchone()\n"
        "print('done')\n")
    for i in range(3):
        r = subprocess.run([sys.executable, "-c", script, EXT, TINY], capture_output=True, text=True,
                           timeout=120)
        equal((r.returncode, r.stdout), (0, "done\n"), "run %d: no crash when connections close and "
              "the process exits" % (i + 1))


@test
def test_reload_on_change():
    tmp = tempfile.mkdtemp(prefix="ouro-sqlite-")
    try:
        m = os.path.join(tmp, "m")
        shutil.copytree(TINY, m)
        conn = connect(m)
        p = expected("tiny-mha-bf16")["cases"][0]
        equal(one(conn, "SELECT ouro_generate(?, NULL, 12)", p["prompt"]), p["greedy_text"],
              "a copied model folder loads")
        # Replace the folder's files with another model's (new files renamed in place).
        other = os.path.join(MODELS_DIR, "tiny-gqa-f32-tied")
        for f in os.listdir(other):
            shutil.copy(os.path.join(other, f), os.path.join(tmp, "new"))
            os.replace(os.path.join(tmp, "new"), os.path.join(m, f))
        q = [c for c in expected("tiny-gqa-f32-tied")["cases"] if c["prompt"] == p["prompt"]]
        q = q[0] if q else expected("tiny-gqa-f32-tied")["cases"][0]
        equal(one(conn, "SELECT ouro_generate(?, NULL, 12)", q["prompt"]), q["greedy_text"],
              "changed files are reloaded on the next call")
        shutil.rmtree(m)
        raises(lambda: one(conn, "SELECT ouro_generate('hi', NULL, 2)"), "cannot be loaded",
               "removed files: clear error")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# Batching rows: ouro_generate_batch, ouro_classify_batch, ouro_classify_scores_batch
# --------------------------------------------------------------------------

def batch(conn, sql, *args):
    """Runs a *_batch call; returns its JSON result decoded (None for NULL)."""
    r = one(conn, sql, *args)
    return None if r is None else json.loads(r)


@test
def test_generate_batch_golden():
    for m in MODELS:
        conn = connect(os.path.join(MODELS_DIR, m))
        cases = expected(m)["cases"]
        got = batch(conn, "SELECT ouro_generate_batch(?, NULL, 12)", json.dumps([c["prompt"] for c in cases]))
        equal(got, [c["greedy_text"] for c in cases],
              "%s: ouro_generate_batch of the %d case prompts gives every greedy_text" % (m, len(cases)))


@test
def test_generate_batch():
    conn = connect()
    cases = expected("tiny-mha-bf16")["cases"]
    prompts = [c["prompt"] for c in cases] + ["Hi", "Once upon a time", "Q: What is 17 * 23? A:"]
    per_row = lambda p, *opts: one(conn, "SELECT ouro_generate(?%s)" % (", ?" * len(opts)), p, *opts)
    equal(one(conn, "SELECT ouro_setting('batch_size')"), "16", "batch_size defaults to 16")
    equal(batch(conn, "SELECT ouro_generate_batch(?, NULL, 9)", json.dumps(prompts)),
          [per_row(p, None, 9) for p in prompts], "8 prompts: item i equals ouro_generate(prompts[i])")
    equal(one(conn, "SELECT ouro_setting('batch_size', 3)"), "3", "batch_size set to 3")
    many = prompts + prompts[:3]
    equal(batch(conn, "SELECT ouro_generate_batch(?, NULL, 9)", json.dumps(many)),
          [per_row(p, None, 9) for p in many], "11 prompts with batch_size 3 (4 waves) equal per-row")
    one(conn, "SELECT ouro_setting('batch_size', 1)")
    equal(batch(conn, "SELECT ouro_generate_batch(?, NULL, 5)", json.dumps(prompts[:3])),
          [per_row(p, None, 5) for p in prompts[:3]], "batch_size 1 (one prompt at a time) equals per-row")
    one(conn, "SELECT ouro_setting('batch_size', NULL)")
    for opts, desc in [((2, 10), "max_loops 2"),
                       ((None, 10, 0.8, None, 7), "temperature 0.8, seed 7"),
                       ((None, 10, 0.9), "temperature 0.9, default seed"),
                       ((None, 10, None, 0.5), "exit_threshold 0.5 (adaptive depth)"),
                       ((None, 16, None, None, None, '[" the", "."]'), "stop strings")]:
        got = batch(conn, "SELECT ouro_generate_batch(?%s)" % (", ?" * len(opts)), json.dumps(prompts), *opts)
        equal(got, [per_row(p, *opts) for p in prompts], "%s: every item equals per-row" % desc)
    one(conn, "SELECT ouro_setting('depth', 'full')")
    equal(batch(conn, "SELECT ouro_generate_batch(?, NULL, 8, NULL, 0.5)", json.dumps(prompts[:4])),
          [per_row(p, None, 8, None, 0.5) for p in prompts[:4]], "depth 'full' with a threshold equals per-row")
    one(conn, "SELECT ouro_setting('depth', NULL)")
    equal(batch(conn, "SELECT ouro_generate_batch(?, NULL, 6)", json.dumps([None, "Hi", None])),
          [None, per_row("Hi", None, 6), None], "null items give null, in place")
    equal(batch(conn, "SELECT ouro_generate_batch('[null, null]')"), [None, None], "only nulls: nulls")
    equal(one(conn, "SELECT ouro_generate_batch('[]')"), "[]", "an empty array gives an empty array")
    check(one(conn, "SELECT ouro_generate_batch(NULL)") is None, "NULL prompts give NULL")
    equal(batch(conn, "SELECT ouro_generate_batch(?, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
                json.dumps(["Hi"])), [per_row("Hi")], "NULL options mean their defaults")
    # matching results back to rows with json_each
    conn.execute("CREATE TABLE questions(id INTEGER PRIMARY KEY, prompt TEXT, answer TEXT)")
    conn.executemany("INSERT INTO questions(id, prompt) VALUES (?, ?)",
                     [(10 + i, p) for i, p in enumerate(prompts)] + [(99, None)])
    rows = conn.execute("""
        WITH b AS (SELECT json_group_array(id) AS ids, json_group_array(prompt) AS ps
                   FROM (SELECT id, prompt FROM questions ORDER BY id)),
             r AS (SELECT ouro_generate_batch(ps, NULL, 6) AS out, ids FROM b)
        SELECT i.value, o.value FROM r, json_each(r.ids) AS i JOIN json_each(r.out) AS o ON o.key = i.key
        ORDER BY i.value""").fetchall()
    equal(rows, [(10 + i, per_row(p, None, 6)) for i, p in enumerate(prompts)] + [(99, None)],
          "json_group_array + json_each match results back to ids")
    conn.execute("""
        WITH b AS (SELECT json_group_array(id) AS ids, json_group_array(prompt) AS ps
                   FROM (SELECT id, prompt FROM questions ORDER BY id)),
             r AS (SELECT ouro_generate_batch(ps, NULL, 6) AS out, ids FROM b)
        UPDATE questions SET answer = m.answer
        FROM (SELECT i.value AS id, o.value AS answer
              FROM r, json_each(r.ids) AS i JOIN json_each(r.out) AS o ON o.key = i.key) AS m
        WHERE questions.id = m.id""")
    equal(conn.execute("SELECT id, answer FROM questions ORDER BY id").fetchall(), rows,
          "UPDATE ... FROM the batch stores each answer in its row")


@test
def test_generate_batch_errors():
    conn = connect()
    for arg, msg in [("'not json'", "prompts must be a JSON array"),
                     ("'{\"a\": 1}'", "prompts must be a JSON array"),
                     ("'\"Hi\"'", "prompts must be a JSON array"),
                     ("'[\"Hi\", 3]'", "item 2 of prompts is not a string or null"),
                     ("'[[\"Hi\"]]'", "item 1 of prompts is not a string or null"),
                     ("'[\"Hi\", \"\"]'", "item 2 of prompts: the prompt has no tokens")]:
        raises(lambda: one(conn, "SELECT ouro_generate_batch(%s, NULL, 2)" % arg), msg,
               "ouro_generate_batch(%s): error says '%s'" % (arg, msg))
    raises(lambda: one(conn, "SELECT ouro_generate_batch('[\"Hi\"]', 0)"),
           "max_loops must be between 1 and 16", "max_loops out of range")
    raises(lambda: one(conn, "SELECT ouro_generate_batch('[\"Hi\"]', NULL, 2, NULL, NULL, NULL, '[1]')"),
           "item 1 of stop is not a string", "bad stop strings")
    raises(lambda: one(conn, "SELECT ouro_generate_batch('[\"Hi\"]', NULL, 2, NULL, NULL, NULL, NULL, 'nope')"),
           "no model named 'nope'", "unknown model")
    for v in (0, 257, "'x'"):
        raises(lambda: one(conn, "SELECT ouro_setting('batch_size', %s)" % v),
               "batch_size must be between 1 and 256", "batch_size %s is out of range" % v)
    check(isinstance(one(conn, "SELECT ouro_generate_batch('[\"Hi\"]', NULL, 2)"), str),
          "the connection works after the errors")


@test
def test_classify_batch():
    conn = connect()
    labels = json.dumps(["positive", "negative", "neutral"])
    inputs = ["I loved it", "awful", None, "meh", "The capital of France is Paris.", "ok I guess",
              "Terrible service, never again", "Best day ever"]
    per_label = [None if x is None else one(conn, "SELECT ouro_classify(?, ?)", x, labels) for x in inputs]
    per_scores = [None if x is None else json.loads(one(conn, "SELECT ouro_classify_scores(?, ?)", x, labels))
                  for x in inputs]

    def close(a, b):
        return all((x is None and y is None) or
                   (x is not None and y is not None and list(x) == list(y) and
                    all(abs(x[k] - y[k]) <= 1e-9 for k in x)) for x, y in zip(a, b)) and len(a) == len(b)

    for bs in (16, 1, 2):
        one(conn, "SELECT ouro_setting('batch_size', ?)", bs)
        equal(batch(conn, "SELECT ouro_classify_batch(?, ?)", json.dumps(inputs), labels), per_label,
              "batch_size %d: ouro_classify_batch equals ouro_classify item by item" % bs)
        got = batch(conn, "SELECT ouro_classify_scores_batch(?, ?)", json.dumps(inputs), labels)
        check(close(got, per_scores),
              "batch_size %d: ouro_classify_scores_batch equals ouro_classify_scores (within 1e-9)" % bs,
              "got:  %r\nwant: %r" % (got, per_scores))
    # the f32 and f16 models too: each input's scores alone and in a batch of mixed lengths
    for name in ("tiny-gqa-f32-tied", "tiny-mqa-f16-sharded"):
        c2 = connect(model=os.path.join(MODELS_DIR, name))
        alone = [None if x is None else json.loads(one(c2, "SELECT ouro_classify_scores(?, ?)", x, labels))
                 for x in inputs]
        got = batch(c2, "SELECT ouro_classify_scores_batch(?, ?)", json.dumps(inputs), labels)
        check(close(got, alone), "%s: scores in a batch of mixed lengths equal each input's alone (within 1e-9)"
              % name, "got:  %r\nwant: %r" % (got, alone))
        c2.close()
    one(conn, "SELECT ouro_setting('batch_size', NULL)")
    two = json.dumps(["yes", "no"])
    ins = inputs[:2] * 10
    equal(batch(conn, "SELECT ouro_classify_batch(?, ?, 'Is it positive?', 2)", json.dumps(ins), two),
          [one(conn, "SELECT ouro_classify(?, ?, 'Is it positive?', 2)", x, two) for x in ins],
          "20 inputs, instruction and max_loops: equal per-row")
    many = json.dumps(["label %d" % i for i in range(20)])
    got = batch(conn, "SELECT ouro_classify_scores_batch(?, ?)", json.dumps(inputs[:2]), many)
    want = [json.loads(one(conn, "SELECT ouro_classify_scores(?, ?)", x, many)) for x in inputs[:2]]
    check(close(got, want), "20 labels (more than batch_size): equal per-row", (got, want))
    equal(one(conn, "SELECT ouro_classify_batch('[]', ?)", labels), "[]", "an empty array gives an empty array")
    equal(batch(conn, "SELECT ouro_classify_scores_batch('[null]', ?)", labels), [None], "null items give null")
    check(one(conn, "SELECT ouro_classify_batch(NULL, ?)", labels) is None, "NULL inputs give NULL")
    check(one(conn, "SELECT ouro_classify_batch('[\"x\"]', NULL)") is None, "NULL labels give NULL")
    for arg, lab, msg in [("'x'", labels, "inputs must be a JSON array"),
                          ("'[1]'", labels, "item 1 of inputs is not a string or null"),
                          ("'[\"x\"]'", "[]", "labels must be a JSON array"),
                          ("'[\"x\"]'", '["a", "a"]', 'label "a" appears twice')]:
        raises(lambda: one(conn, "SELECT ouro_classify_batch(%s, ?)" % arg, lab), msg,
               "ouro_classify_batch(%s, %s): error says '%s'" % (arg, lab, msg))
    raises(lambda: one(conn, "SELECT ouro_classify_scores_batch('[\"x\"]', ?, NULL, 17)", labels),
           "max_loops must be between 1 and 16", "classify batch max_loops out of range")
    rows = conn.execute("""
        WITH t(id, review) AS (VALUES (1, 'I loved it'), (2, 'awful'), (3, 'meh')),
             b AS (SELECT json_group_array(id) AS ids, json_group_array(review) AS rs
                   FROM (SELECT * FROM t ORDER BY id)),
             r AS (SELECT ids, ouro_classify_batch(rs, ?) AS out FROM b)
        SELECT i.value, o.value FROM r, json_each(r.ids) AS i JOIN json_each(r.out) AS o ON o.key = i.key
        ORDER BY i.value""", (labels,)).fetchall()
    equal(rows, [(1, per_label[0]), (2, per_label[1]), (3, per_label[3])],
          "classification results matched back to ids with json_each")


# --------------------------------------------------------------------------
# q8 weights: `ouro convert`, then the converted folder through SQL
# --------------------------------------------------------------------------
@test
def test_convert_q8():
    tmp = tempfile.mkdtemp(prefix="ouro_q8")
    try:
        out = os.path.join(tmp, "tiny-q8")
        r = subprocess.run([TOOL, "convert", "--model", TINY, "--out", out], capture_output=True, text=True)
        check(r.returncode == 0 and "q8" in r.stderr, "ouro convert --model --out writes a q8 folder", r.stderr)
        src = os.path.getsize(os.path.join(TINY, "model.safetensors"))
        dst = os.path.getsize(os.path.join(out, "model.safetensors"))
        check(dst < 0.6 * src, "the q8 file is under 60%% of the bf16 file (%d of %d bytes)" % (dst, src))
        for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            check(os.path.exists(os.path.join(out, f)), "ouro convert copies %s" % f)
        info = json.loads(tool("info", "--model", out))
        equal(info["dtype"], "Q8", "ouro info reports dtype Q8")
        for args, msg, code in [(["--model", TINY], "--model and --out are required", 2),
                                (["--model", TINY, "--out", out, "--type", "q5"], "unknown --type", 2),
                                (["--model", out, "--out", os.path.join(tmp, "again")], "already q8", 1),
                                (["--model", os.path.join(tmp, "none"), "--out", os.path.join(tmp, "x")],
                                 "none", 1)]:
            r = subprocess.run([TOOL, "convert"] + args, capture_output=True, text=True)
            check(r.returncode == code and msg in r.stderr,
                  "ouro convert %s: exit %d, says '%s'" % (" ".join(args[2:4] or args[:1]), code, msg),
                  (r.returncode, r.stderr))
        # The converted model through SQL: every greedy text of this model stays the
        # reference's with q8 weights (measured 5/5 in test_kernels), per row and batched,
        # and SQL equals the tool.
        conn = connect(out)
        equal(json.loads(one(conn, "SELECT ouro_model_info()"))["dtype"], "Q8", "ouro_model_info() reports Q8")
        cases = expected("tiny-mha-bf16")["cases"]
        for case in cases:
            got = one(conn, "SELECT ouro_generate(?, NULL, 12)", case["prompt"])
            ref = json.loads(tool("generate", "--model", out, "--prompt", case["prompt"],
                                  "--max-tokens", "12", "--json"))
            equal((got, ref["text"]), (case["greedy_text"], case["greedy_text"]),
                  "q8 %s: ouro_generate = greedy_text = `ouro generate`" % case["name"])
        prompts = [c["prompt"] for c in cases]
        equal(batch(conn, "SELECT ouro_generate_batch(?, NULL, 12)", json.dumps(prompts)),
              [c["greedy_text"] for c in cases], "q8: ouro_generate_batch = greedy texts")
        labels = json.dumps(["yes", "no", "maybe"])
        scores = json.loads(one(conn, "SELECT ouro_classify_scores('Is it good?', ?)", labels))
        check(abs(sum(scores.values()) - 1) < 1e-4 and
              one(conn, "SELECT ouro_classify('Is it good?', ?)", labels) == max(scores, key=scores.get),
              "q8: ouro_classify is the argmax of ouro_classify_scores, which sum to 1", scores)
        depth = one(conn, "SELECT ouro_depth('The capital of France is')")
        check(depth is not None and 1 <= depth <= 4, "q8: ouro_depth in 1..4", depth)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# q4 weights: `ouro convert --type q4`, then the converted folder through SQL
# --------------------------------------------------------------------------
@test
def test_convert_q4():
    tmp = tempfile.mkdtemp(prefix="ouro_q4")
    try:
        out = os.path.join(tmp, "tiny-q4")
        r = subprocess.run([TOOL, "convert", "--model", TINY, "--out", out, "--type", "q4"],
                           capture_output=True, text=True)
        check(r.returncode == 0 and "(q4)" in r.stderr, "ouro convert --type q4 writes a q4 folder", r.stderr)
        src = os.path.getsize(os.path.join(TINY, "model.safetensors"))
        dst = os.path.getsize(os.path.join(out, "model.safetensors"))
        check(dst < 0.33 * src, "the q4 file is under 33%% of the bf16 file (%d of %d bytes)" % (dst, src))
        info = json.loads(tool("info", "--model", out))
        equal(info["dtype"], "Q4", "ouro info reports dtype Q4")
        for args, msg, code in [(["--model", TINY, "--out", out, "--type", "q3"], "unknown --type", 2),
                                (["--model", out, "--out", os.path.join(tmp, "again"), "--type", "q4"],
                                 "already q4", 1),
                                (["--model", out, "--out", os.path.join(tmp, "again")], "already q4", 1)]:
            r = subprocess.run([TOOL, "convert"] + args, capture_output=True, text=True)
            check(r.returncode == code and msg in r.stderr,
                  "ouro convert %s: exit %d, says '%s'" % (" ".join(args[2:]), code, msg),
                  (r.returncode, r.stderr))
        # The converted model through SQL equals the tool on the same folder, per row and
        # batched; 4-bit weights change most of this random model's greedy texts (test_kernels
        # measures 1 of 5 identical to the reference's), so that one is the bound here.
        conn = connect(out)
        equal(json.loads(one(conn, "SELECT ouro_model_info()"))["dtype"], "Q4", "ouro_model_info() reports Q4")
        cases = expected("tiny-mha-bf16")["cases"]
        texts = []
        for case in cases:
            got = one(conn, "SELECT ouro_generate(?, NULL, 12)", case["prompt"])
            ref = json.loads(tool("generate", "--model", out, "--prompt", case["prompt"],
                                  "--max-tokens", "12", "--json"))
            equal(got, ref["text"], "q4 %s: ouro_generate = `ouro generate`" % case["name"])
            texts.append(got)
        same = sum(t == c["greedy_text"] for t, c in zip(texts, cases))
        check(same >= 1, "q4: at least 1 of %d greedy texts is the reference's (%d)" % (len(cases), same))
        prompts = [c["prompt"] for c in cases]
        equal(batch(conn, "SELECT ouro_generate_batch(?, NULL, 12)", json.dumps(prompts)), texts,
              "q4: ouro_generate_batch = ouro_generate per row")
        labels = json.dumps(["yes", "no", "maybe"])
        scores = json.loads(one(conn, "SELECT ouro_classify_scores('Is it good?', ?)", labels))
        check(abs(sum(scores.values()) - 1) < 1e-4 and
              one(conn, "SELECT ouro_classify('Is it good?', ?)", labels) == max(scores, key=scores.get),
              "q4: ouro_classify is the argmax of ouro_classify_scores, which sum to 1", scores)
        depth = one(conn, "SELECT ouro_depth('The capital of France is')")
        check(depth is not None and 1 <= depth <= 4, "q4: ouro_depth in 1..4", depth)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



@test
def test_weights():
    """weights = map | memory: the setting, a bad value, the same text both ways, and a
    model loaded one way is not reused for the other."""
    conn = connect(model=None)
    equal(one(conn, "SELECT ouro_setting('weights')"), "map", "weights defaults to map")
    one(conn, "SELECT ouro_setting('weights', 'memory')")
    equal(one(conn, "SELECT ouro_setting('weights')"), "memory", "weights round trip: memory")
    raises(lambda: one(conn, "SELECT ouro_setting('weights', 'disk')"),
           "weights must be 'map' or 'memory', not 'disk'", "a bad weights value is refused")
    case = expected("tiny-mha-bf16")["cases"][0]
    one(conn, "SELECT ouro_load(?)", TINY)
    info = json.loads(one(conn, "SELECT ouro_model_info()"))
    equal(info.get("weights"), "memory", "a model loaded under weights memory is in memory")
    mem_text = one(conn, "SELECT ouro_generate(?, NULL, 12)", case["prompt"])
    other = connect(model=TINY)
    equal(json.loads(one(other, "SELECT ouro_model_info()")).get("weights"), "map",
          "another connection asking for map gets a mapped model, not the memory one")
    map_text = one(other, "SELECT ouro_generate(?, NULL, 12)", case["prompt"])
    equal((mem_text, map_text), (case["greedy_text"], case["greedy_text"]),
          "memory and map generate the same (golden) text")
    one(conn, "SELECT ouro_setting('weights', NULL)")
    equal(one(conn, "SELECT ouro_setting('weights')"), "map", "reset: map again")

if __name__ == "__main__":
    os.chdir(ROOT)
    if not os.path.exists(EXT):
        print("not ok 1 - build/ouro.so is missing (run make)")
        sys.exit(1)
    sys.exit(run())

"""test_safety.py -- the SQLite extension inside an application that must keep running.

Run from the repository root with Debian's Python (test/suites/sqlite.sh does):
  - schema objects of a database file (CHECK constraints, the integrity check that runs them,
    generated columns) can never load a model or change a setting, on SQLite 3.40 too; a
    TEMP view the application creates can;
  - a model file truncated under a running statement fails that statement with an error
    naming the file, the process lives on, and the next call loads the folder again;
  - timeout_ms stops a long prefill and a long classification within one layer's work;
  - memory_limit refuses a call before allocating, saying asked and allowed;
  - returned text never holds a NUL.
"""
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import test, check, equal, raises, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXT = os.environ.get("OURO_SQLITE_EXT") or os.path.join(ROOT, "build", "ouro.so")   # make asan-ext: ASan build
TINY = os.path.join(ROOT, "test", "data", "models", "tiny-mha-bf16")
os.environ.pop("OURO_MODEL", None)

LONG = " ".join("word%d" % i for i in range(900))         # 3490 tokens
# 7891 tokens (a context of 8192): a prefill that still runs well past 1.5 s at 16 loop steps
LONGER = " ".join("word%d" % i for i in range(1800))
LABELS = json.dumps(["label %d " % k + " ".join("w%d" % i for i in range(100)) for k in range(4)])
# the stop bound asserted on the tiny model; make asan-ext raises it (instrumented code is slower)
STOP_BOUND_S = float(os.environ.get("OURO_TEST_STOP_BOUND_MS", "1000")) / 1000


def connect(path=":memory:", model=TINY):
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    conn.enable_load_extension(False)
    if model:
        conn.execute("SELECT ouro_load(?)", (model,))
    return conn


def one(conn, sql, *args):
    return conn.execute(sql, args).fetchone()[0]


@test
def schema_cannot_configure():
    tmp = tempfile.mkdtemp(prefix="ouro-sqlite-safety-")
    try:
        path = os.path.join(tmp, "hostile.db")
        # a file whose CHECK constraints change the settings and load a model
        a = connect(path, model=None)
        a.execute("CREATE TABLE c (x, CHECK (ouro_setting('threads', '7') = '7'))")
        a.execute("CREATE TABLE l (x, CHECK (ouro_load('evil', '%s') = 'evil'))" % TINY)
        a.close()
        for trusted in ("on", "off"):
            conn = connect(path, model=None)
            conn.execute("PRAGMA trusted_schema = " + trusted)
            raises(lambda: conn.execute("INSERT INTO c VALUES (1)").fetchall(), "runs only in the application's own SELECT",
                   "trusted_schema=%s: a CHECK constraint cannot call ouro_setting(name, value) (SQLite %s)"
                   % (trusted, sqlite3.sqlite_version))
            raises(lambda: conn.execute("INSERT INTO l VALUES (1)").fetchall(), "runs only in the application's own SELECT",
                   "trusted_schema=%s: a CHECK constraint cannot call ouro_load" % trusted)
            for q in ("PRAGMA integrity_check", "SELECT * FROM pragma_integrity_check()"):
                try:
                    conn.execute(q).fetchall()
                except sqlite3.Error:
                    pass
            equal(one(conn, "SELECT ouro_setting('threads')"), "0",
                  "trusted_schema=%s: after the inserts and integrity checks threads is still 0" % trusted)
            raises(lambda: one(conn, "SELECT ouro_generate('Hi', NULL, 1, NULL, NULL, NULL, NULL, 'evil')"),
                   "evil", "trusted_schema=%s: no model 'evil' was loaded" % trusted)
            conn.close()
        # generated columns: a file that declares one is refused by SQLite itself
        a = sqlite3.connect(path, isolation_level=None)
        a.execute("CREATE TABLE g (x, y)")
        a.execute("PRAGMA writable_schema = on")
        a.execute("UPDATE sqlite_schema SET sql = 'CREATE TABLE g (x, y AS (ouro_setting(''threads'', ''5'')))' "
                  "WHERE name = 'g'")
        a.close()
        conn = connect(path, model=None)
        raises(lambda: conn.execute("INSERT INTO g (x) VALUES (1)").fetchall(),
               "non-deterministic functions prohibited in generated columns",
               "a generated column calling ouro_setting is refused by SQLite (the functions are not deterministic)")
        conn.close()
        # the application's own objects and statements
        conn = connect(model=None)
        conn.execute("CREATE TEMP VIEW v AS SELECT ouro_setting('threads', '3') AS t")
        equal(one(conn, "SELECT t FROM v"), "3", "a TEMP view the application created can change a setting")
        raises(lambda: conn.execute("CREATE TABLE t AS SELECT ouro_setting('threads', '2')").fetchall(),
               "runs only in the application's own SELECT", "a statement that writes cannot change a setting")
        equal(one(conn, "WITH x AS (SELECT 1) SELECT ouro_setting('threads', '1') FROM x"), "1",
              "a WITH ... SELECT can")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def truncated_model_file():
    tmp = tempfile.mkdtemp(prefix="ouro-sqlite-safety-")
    try:
        victim = os.path.join(tmp, "victim")
        shutil.copytree(TINY, victim)
        conn = connect(model=victim)
        conn.execute("SELECT ouro_setting('threads', '2')")
        conn.execute("SELECT ouro_setting('context_length', '8192')")
        result = {}

        def work():
            try:
                result["value"] = one(conn, "SELECT length(ouro_generate(?, 16, 1))", LONGER)
            except sqlite3.Error as e:
                result["error"] = str(e)

        t = threading.Thread(target=work)
        t.start()
        time.sleep(1.5)
        os.truncate(os.path.join(victim, "model.safetensors"), 4096)
        t.join()
        check("truncated or overwritten while in use" in result.get("error", "") and
              "victim/model.safetensors" in result.get("error", ""),
              "a model file truncated under a running statement fails it, naming the file", result)
        shutil.copy(os.path.join(TINY, "model.safetensors"), os.path.join(victim, "model.safetensors"))
        check(one(conn, "SELECT length(ouro_generate('Hi', NULL, 2))") >= 0,
              "the process lives on and the next call loads the restored folder")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def timeout_ms():
    conn = connect()
    conn.execute("SELECT ouro_setting('threads', '1')")
    conn.execute("SELECT ouro_setting('timeout_ms', '300')")
    for what, sql, args in (("prefill", "SELECT length(ouro_generate(?, 16, 1))", (LONG,)),
                            ("classification", "SELECT ouro_classify('x', ?, NULL, 16)", (LABELS,))):
        t0 = time.time()
        try:
            conn.execute(sql, args).fetchone()
            msg = "no error"
        except sqlite3.Error as e:
            msg = str(e)
        late = time.time() - t0 - 0.3
        check("ran past its timeout_ms of 300 ms" in msg and late < STOP_BOUND_S,
              "timeout_ms 300 stops a long %s %.0f ms after the deadline (< %.0f ms)"
              % (what, late * 1000, STOP_BOUND_S * 1000), msg)
    conn.execute("SELECT ouro_setting('timeout_ms', NULL)")
    check(one(conn, "SELECT length(ouro_generate('Hi', NULL, 2))") >= 0, "without timeout_ms calls run")


@test
def memory_limit():
    conn = connect()
    conn.execute("SELECT ouro_setting('memory_limit', '16')")
    raises(lambda: one(conn, "SELECT ouro_classify('x', ?, NULL, 4)", LABELS), "the limit is 16.0 MiB",
           "memory_limit 16 refuses a classification whose logits need more, saying asked and allowed")
    check(one(conn, "SELECT length(ouro_generate('Hi', NULL, 2))") >= 0, "a small call still runs under it")


@test
def no_nul_in_text():
    conn = connect()
    t = one(conn, "SELECT ouro_detokenize('[104, 190, 104]')")
    check("\x00" not in t and "\ufffd" in t and one(conn, "SELECT length(ouro_detokenize('[104, 190, 104]'))") == 3,
          "ouro_detokenize of a 0x00 token gives U+FFFD, length() agrees with the text", repr(t))


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(run())

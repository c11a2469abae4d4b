"""cancel_latency.py -- how long after a stop request a running call ends, on any model.

    /usr/bin/python3 test/bench/cancel_latency.py MODEL_DIR [THREADS]

Loads build/ouro.so into Debian's Python, then runs a long prefill (a prompt of about 2700
tokens, 4 loop steps, one new token) and a long classification (4 labels of 60 words) with
the SQLite setting timeout_ms at several values, and prints how long after each deadline the
call stopped.  The poll that sees the deadline is the one PostgreSQL's cancel, statement_timeout,
pg_terminate_backend and lost-client checks use, so the figures bound those too.  Not a test
(the figures depend on the machine and its load); the README quotes a run.
"""
import json
import os
import sqlite3
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "synthetic", "ouro-1.4b")
threads = sys.argv[2] if len(sys.argv) > 2 else "0"
db = sqlite3.connect(":memory:")
db.enable_load_extension(True)
db.load_extension(os.path.join(ROOT, "build", "ouro.so"))
db.execute("SELECT ouro_load(?)", (model,))
db.execute("SELECT ouro_setting('threads', ?)", (threads,))
prompt = " ".join("word%d" % i for i in range(700))
labels = json.dumps(["label %d " % k + " ".join("w%d" % i for i in range(60)) for k in range(4)])
print("model %s, threads %s, prompt %d tokens" % (model, threads,
      db.execute("SELECT ouro_token_count(?)", (prompt,)).fetchone()[0]))
worst = 0.0
for what, sql, arg, deadlines in (
        ("prefill", "SELECT length(ouro_generate(?, 4, 1))", prompt, (1500, 2700, 3900, 5100)),
        ("classification", "SELECT ouro_classify('x', ?, NULL, 4)", labels, (1500, 2700, 3900, 5100, 8000))):
    for ms in deadlines:
        db.execute("SELECT ouro_setting('timeout_ms', ?)", (str(ms),))
        t0 = time.time()
        try:
            db.execute(sql, (arg,)).fetchone()
            note = "finished before the deadline"
        except sqlite3.Error as e:
            note = "stopped" if "timeout_ms" in str(e) else str(e)
        late = (time.time() - t0) * 1000 - ms
        worst = max(worst, late)
        print("%-14s timeout_ms %5d: %s %4.0f ms after the deadline" % (what, ms, note, late))
print("worst: %.0f ms (load average %s)" % (worst, open("/proc/loadavg").read().split()[0]))

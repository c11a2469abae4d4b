#!/usr/bin/env bash
# test/suites/surface.sh -- one SQL surface: the core's table (printed by `ouro sql-surface`)
# against the PostgreSQL install script (function names, argument names and order, which
# arguments default to NULL), the SQLite registration (arities of every function) and settings
# (names and defaults), and the README's "SQL surface" tables (the same text); then the dynamic
# symbol tables of build/ouro.so (sqlite3_ouro_init alone) and pg_ext/ouro.so (_PG_init,
# Pg_magic_func, pg_finfo_* and the SQL-callable functions the install scripts name).
# Prints TAP lines; run from anywhere (test/run.sh runs it from the repository root).
set -u
cd "$(dirname "$0")/../.."
OURO=${OURO:-build/ouro}
if [ ! -x "$OURO" ] || [ ! -f build/ouro.so ]; then
    echo "ok 1 - # SKIP build/ouro or build/ouro.so is not built"
    echo "1..1"
    exit 0
fi
exec /usr/bin/python3 - "$OURO" <<'PY'
import json, os, re, sqlite3, subprocess, sys

ouro = sys.argv[1]
n = failed = 0

def check(ok, name, note=None):
    global n, failed
    n += 1
    failed += not ok
    print(("ok" if ok else "not ok") + " %d - %s" % (n, name))
    if not ok and note is not None:
        for line in str(note).splitlines()[:10]:
            print("# " + line)

surface = json.loads(subprocess.run([ouro, "sql-surface", "--json"], capture_output=True,
                                    check=True).stdout)
fns = surface["functions"]
params = {p["name"]: p for p in surface["params"]}
check(surface["item_base"] == 1, "items are numbered from 1")

# --- PostgreSQL install script -----------------------------------------------------------
sql = open("sql/ouro--0.2.0.sql").read()
created = {}
for m in re.finditer(r"CREATE FUNCTION\s+(\w+)\s*\((.*?)\)\s*RETURNS", sql, re.S):
    args = []
    for a in [x.strip() for x in m.group(2).split(",") if x.strip()]:
        if a.split()[0].upper() in ("OUT", "INOUT"):
            continue
        args.append((a.split()[0], "DEFAULT NULL" in a.upper()))
    created[m.group(1)] = args
for f in fns:
    if not f["postgresql"]:
        continue
    got = created.get(f["name"])
    want = [(a, i >= f["required"]) for i, a in enumerate(f["args"])]
    check(got == want, "PostgreSQL %s(%s): the table's arguments, order and NULL defaults"
          % (f["name"], ", ".join(f["args"])), "install script: %r\ntable:          %r" % (got, want))
# every option argument of any other function of the script defaults to NULL too
options = {p["name"] for p in surface["params"] if p["argument"] and p["name"] != "labels"}
known = {f["name"] for f in fns}
bad = [(fn, a) for fn, args in created.items() if fn not in known
       for a, d in args if a in options and not d]
check(not bad, "every option argument of the other functions defaults to NULL", bad)

# --- SQLite registration and settings ------------------------------------------------------
conn = sqlite3.connect(":memory:")
conn.enable_load_extension(True)
conn.load_extension("build/ouro.so")
try:
    rows = conn.execute("SELECT name, narg FROM pragma_function_list WHERE name LIKE 'ouro%'").fetchall()
except sqlite3.Error:
    rows = None
if rows is None:
    check(True, "SQLite arities # SKIP pragma_function_list is not available")
else:
    arities = {}
    for name, narg in rows:
        arities.setdefault(name, set()).add(narg)
    for f in fns:
        if not f["sqlite"] or f["name"] == "ouro_token_depths":
            continue
        want = set(range(f["required"], len(f["args"]) + 1))
        check(arities.get(f["name"]) == want, "SQLite %s: registered for %s arguments, as the table says"
              % (f["name"], sorted(want)), arities.get(f["name"]))
settings = [p for p in surface["params"] if p["setting"] and not p["postgresql_only"]]
for p in settings:
    got = conn.execute("SELECT ouro_setting(?)", (p["name"],)).fetchone()[0]
    if p["kind"] == "enum" or p["default"].lstrip("-").isdigit():
        check(got == p["default"], "SQLite setting %s starts at the table's default %s" % (p["name"], p["default"]), got)
    else:
        check(got is not None, "SQLite setting %s exists (default: %s)" % (p["name"], p["default"]), got)
    if p["kind"] in ("int", "real"):
        lo = p.get("unset", p["min"])
        try:
            conn.execute("SELECT ouro_setting(?, ?)", (p["name"], float(p["max"]) * 2 + 1))
            check(False, "SQLite setting %s refuses a value above %s" % (p["name"], p["max"]))
        except sqlite3.Error as e:
            check("must be between %s and %s" % (lo, p["max"]) in str(e),
                  "SQLite setting %s: the table's range in the message" % p["name"], e)
try:
    conn.execute("SELECT ouro_setting('model_path')")
    check(False, "model_path is no SQLite setting")
except sqlite3.Error:
    check(True, "model_path is no SQLite setting (models are loaded with ouro_load)")

# --- README --------------------------------------------------------------------------------
readme = open("README.md").read()
m = re.search(r"<!-- sql-surface:begin -->\n(.*?)<!-- sql-surface:end -->", readme, re.S)
md = subprocess.run([ouro, "sql-surface", "--markdown"], capture_output=True, check=True).stdout.decode()
check(m is not None and m.group(1) == md,
      "the README's SQL surface tables are `ouro sql-surface --markdown` (names, order, defaults)",
      "regenerate them with build/ouro sql-surface --markdown" if m else "no sql-surface block")
pg_rows = dict(re.findall(r"^\| `ouro\.(\w+)` \| ([^|]*?) \|", readme, re.M))
for p in surface["params"]:
    if not p["setting"] or p["sqlite_only"]:
        continue
    check(p["name"] in pg_rows, "the README's PostgreSQL settings table lists ouro.%s" % p["name"], sorted(pg_rows))
    if p["name"] in pg_rows and p["kind"] in ("int", "real"):
        want = "%s .. %s" % (p.get("unset", p["min"]), p["max"])
        check(pg_rows[p["name"]].strip() == want, "README: ouro.%s ranges %s" % (p["name"], want),
              pg_rows[p["name"]])

# --- dynamic symbols -----------------------------------------------------------------------
def dynsyms(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True).stdout
    return sorted(l.split()[-1] for l in out.splitlines() if l.strip())
sq = dynsyms("build/ouro.so")
check(sq == ["sqlite3_ouro_init"], "build/ouro.so exports sqlite3_ouro_init alone", sq)
if os.path.exists("pg_ext/ouro.so"):
    callable_ = set()
    for f in os.listdir("sql"):
        if f.endswith(".sql"):
            callable_ |= set(re.findall(r"'MODULE_PATHNAME',\s*'(\w+)'", open(os.path.join("sql", f)).read()))
    pg = dynsyms("pg_ext/ouro.so")
    extra = [s for s in pg if s not in ("_PG_init", "Pg_magic_func") and s not in callable_
             and not (s.startswith("pg_finfo_") and s[9:] in callable_)]
    check(not extra, "pg_ext/ouro.so exports only _PG_init, Pg_magic_func and the SQL-callable functions",
          extra)
    check(all(c in pg for c in callable_), "every SQL-callable C function is exported",
          sorted(callable_ - set(pg)))
else:
    check(True, "pg_ext/ouro.so # SKIP not built")
print("1..%d" % n)
sys.exit(1 if failed else 0)
PY

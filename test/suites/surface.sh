#!/usr/bin/env bash
# test/suites/surface.sh -- one SQL surface: the core's table (printed by `ouro sql-surface`)
# against the PostgreSQL install script (function names, argument names and order, which
# arguments default to NULL), the SQLite registration (arities of every function) and settings
# (names, defaults on this machine, ranges; PostgreSQL's own settings refused, naming SQLite's
# equivalent), the table's own ceilings and equivalents, and the README's "SQL surface" tables
# (the same text) and its PostgreSQL settings and ceilings tables (names, order, ranges,
# defaults) and SQLite settings table (names); then the dynamic
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
sys.path.insert(0, "test")
from tap import check, finish  # noqa: E402

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
    check(got == p["default_value"], "SQLite setting %s starts at the table's default %s (%s here)"
          % (p["name"], p["default"], p["default_value"]), got)
    if p["kind"] in ("int", "real"):
        lo = p.get("unset", p["min"])
        try:
            conn.execute("SELECT ouro_setting(?, ?)", (p["name"], float(p["max"]) * 2 + 1))
            check(False, "SQLite setting %s refuses a value above %s" % (p["name"], p["max"]))
        except sqlite3.Error as e:
            check("must be between %s and %s" % (lo, p["max"]) in str(e),
                  "SQLite setting %s: the table's range in the message" % p["name"], e)
for p in surface["params"]:
    if not p["postgresql_only"]:
        continue
    try:
        conn.execute("SELECT ouro_setting(?)", (p["name"],))
        check(False, "%s is no SQLite setting" % p["name"])
    except sqlite3.Error as e:
        want = "%s is a setting of PostgreSQL only" % p["name"]
        if p["equivalent"]:
            want += " (here: %s)" % p["equivalent"]
        check(want in str(e), "%s is no SQLite setting: the error says so%s"
              % (p["name"], " and names " + p["equivalent"] if p["equivalent"] else ""), e)

# --- the table itself: ceilings and equivalents ---------------------------------------------
by_name = {p["name"]: p for p in surface["params"]}
for p in surface["params"]:
    eq = p["equivalent"]
    if eq in by_name:
        q = by_name[eq]
        check(q["equivalent"] == p["name"] and q["postgresql_only"] == p["sqlite_only"]
              and q["sqlite_only"] == p["postgresql_only"] and q["unit"] == p["unit"]
              and q["default"] == p["default"],
              "%s and %s name each other as equivalents, one per database, same unit and default"
              % (p["name"], eq), q)
    if p["limit"]:
        b = by_name.get(p["bounds"]) if p["bounds"] else None
        ok = p["setting"] and p["superuser"] and p["postgresql_only"] and p["name"].startswith("limit_")
        if p["bounds"]:
            ok = ok and b is not None and b["setting"] and b["max"] == p["max"]
            if p["default"].isdigit():
                ok = ok and p["default"] == p["max"] == p["default_value"]
        check(ok, "ceiling %s: a superuser setting of PostgreSQL%s" % (p["name"],
              ", at most and by default the top of %s's range" % p["bounds"] if p["bounds"] else ""), p)

# --- README --------------------------------------------------------------------------------
readme = open("README.md").read()
m = re.search(r"<!-- sql-surface:begin -->\n(.*?)<!-- sql-surface:end -->", readme, re.S)
md = subprocess.run([ouro, "sql-surface", "--markdown"], capture_output=True, check=True).stdout.decode()
check(m is not None and m.group(1) == md,
      "the README's SQL surface tables are `ouro sql-surface --markdown` (names, order, defaults)",
      "regenerate them with build/ouro sql-surface --markdown" if m else "no sql-surface block")
def section(title):
    m = re.search(r"^### %s\n(.*?)(?=^##)" % re.escape(title), readme, re.M | re.S)
    return m.group(1) if m else ""
pg_section = readme[readme.find("\n## PostgreSQL\n"):]
pg_settings = re.search(r"^### Settings\n(.*?)(?=^### )", pg_section, re.M | re.S)
pg_settings = pg_settings.group(1) if pg_settings else ""
# | `ouro.name` | range | default | ... (settings) and | `ouro.limit_x` | default | bounds | (ceilings)
rows = re.findall(r"^\| `ouro\.(\w+)` \| ([^|]*?) \| ([^|]*?) \|", pg_settings, re.M)
set_rows = [r for r in rows if not by_name.get(r[0], {}).get("limit")]
lim_rows = [r for r in rows if by_name.get(r[0], {}).get("limit")]
want = [p["name"] for p in surface["params"] if p["setting"] and not p["sqlite_only"] and not p["limit"]]
check([r[0] for r in set_rows] == want,
      "the README's PostgreSQL settings table lists the table's settings, in its order",
      "README: %s\ntable:  %s" % ([r[0] for r in set_rows], want))
for name, rng, dflt in set_rows:
    p = by_name.get(name)
    if not p:
        continue
    if p["kind"] in ("int", "real"):
        want_rng = "%s .. %s%s" % (p.get("unset", p["min"]), p["max"], " " + p["unit"] if p["unit"] else "")
        check(rng.strip() == want_rng, "README: ouro.%s ranges %s" % (name, want_rng), rng)
    d = dflt.replace("`", "").strip()
    check(d == p["default"] or d.split(" ")[0] == p["default_value"],
          "README: ouro.%s defaults to %s" % (name, p["default_value"] or p["default"]), dflt)
want = [p["name"] for p in surface["params"] if p["limit"]]
check([r[0] for r in lim_rows] == want, "the README's ceilings table lists the table's ceilings, in its order",
      "README: %s\ntable:  %s" % ([r[0] for r in lim_rows], want))
for name, dflt, _ in lim_rows:
    check(dflt.strip() == by_name[name]["default"], "README: ouro.%s defaults to %s" % (name, by_name[name]["default"]),
          dflt)
sq_settings = section("Settings")   # the SQLite section comes first
named = set(re.findall(r"`(\w+)`", "\n".join(l.split("|")[1] for l in sq_settings.splitlines()
                                             if l.startswith("| `"))))
want = [p["name"] for p in settings]
check(all(n in named for n in want), "the README's SQLite settings table names every SQLite setting",
      sorted(set(want) - named))

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
finish()
PY

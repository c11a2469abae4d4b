#!/usr/bin/python3
# test/surface_gucs.py -- the PostgreSQL settings (pg_settings of a server that loaded ouro)
# against the core's table of the SQL surface (`ouro sql-surface --json`): every ouro.* GUC is a
# setting of the table and every PostgreSQL setting of the table is a GUC, with the table's type,
# default on this machine (boot_val), range, values, unit, context (superuser settings:
# "superuser") and short description; an `equivalent` PostgreSQL setting outside the table
# (statement_timeout) exists.
#
#   python3 test/surface_gucs.py SURFACE.json PG_SETTINGS.json
# where PG_SETTINGS.json is the json_agg of pg_settings rows (name, vartype, boot_val, min_val,
# max_val, enumvals, context, unit, short_desc) for ouro.% and the equivalents.  Prints one line
# per disagreement and exits 1 when there is one.
import json
import sys

surface = json.load(open(sys.argv[1]))
rows = {r["name"]: r for r in json.load(open(sys.argv[2])) or []}
vartypes = {"int": "integer", "real": "real", "enum": "enum", "bool": "bool", "text": "string"}
bad = []

want_names = set()
for p in surface["params"]:
    if not p["setting"]:
        continue
    if p["sqlite_only"]:
        eq = p["equivalent"]
        if eq and not any(q["name"] == eq for q in surface["params"]) and eq not in rows:
            bad.append("%s: its PostgreSQL equivalent %s is no setting of the server" % (p["name"], eq))
        continue
    name = "ouro." + p["name"]
    want_names.add(name)
    r = rows.get(name)
    if r is None:
        bad.append("%s: in the table, not a GUC" % name)
        continue
    want = {
        "vartype": vartypes[p["kind"]],
        "boot_val": p["default_value"],
        "context": "superuser" if p["superuser"] else "user",
        "unit": p["unit"],
        "short_desc": p["summary"],
    }
    if p["kind"] in ("int", "real"):
        want["min_val"] = p.get("unset", p["min"])
        want["max_val"] = p["max"]
    if p["kind"] == "enum":
        want["enumvals"] = p["values"]
    for k, v in want.items():
        if r.get(k) != v:
            bad.append("%s: %s is %r, the table says %r" % (name, k, r.get(k), v))
for name in sorted(set(n for n in rows if n.startswith("ouro.")) - want_names):
    bad.append("%s: a GUC the table does not have" % name)

for line in bad:
    print(line)
sys.exit(1 if bad else 0)

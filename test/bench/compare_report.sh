#!/usr/bin/env bash
# compare_report.sh -- the table test/bench/compare.sh prints, from its results file.
#
#   bash test/bench/compare_report.sh RESULTS
# RESULTS holds one line per measurement, "ROW|COLUMN|ouro or llama|tokens/s", where COLUMN is ppN
# (prefill of N tokens), tg (decode, 1 sequence) or batchN (decode of N sequences, total).  For
# each row and column it prints the median and range of each side over its runs, the ratio of the
# medians (ouro / llama.cpp) and the target: 1.2x, 2.5x for batches.  Columns one side lacks
# print "-".  Rows keep their first order; columns are ppN by N, tg, then batchN by N.
set -euo pipefail
[ $# = 1 ] && [ -f "$1" ] || { echo "usage: compare_report.sh RESULTS" >&2; exit 2; }

awk -F'|' '
function median(list,   n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) {          # insertion sort: a handful of runs
        t = v[i] + 0
        for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]
        v[j + 1] = t
    }
    lo = v[1] + 0; hi = v[n] + 0; cnt = n
    return n % 2 ? v[(n + 1) / 2] + 0 : (v[n / 2] + v[n / 2 + 1]) / 2
}
function colkey(c,   k) {                # sort key: pp by length, then tg, then batch by size
    if (c ~ /^pp/) { k = substr(c, 3) + 0; return sprintf("1%09d", k) }
    if (c == "tg") return "2000000000"
    if (c ~ /^batch/) { k = substr(c, 6) + 0; return sprintf("3%09d", k) }
    return "9" c
}
function colname(c) {
    if (c ~ /^pp/) return "prefill " substr(c, 3)
    if (c == "tg") return "decode 1 seq"
    if (c ~ /^batch/) return "decode " substr(c, 6) " seqs"
    return c
}
NF == 4 && $4 != "" {
    if (!($1 in seen_row)) { seen_row[$1] = 1; rows[++nrows] = $1 }
    if (!(($1 SUBSEP $2) in seen_col)) { seen_col[$1, $2] = 1; ncols[$1]++; cols[$1, ncols[$1]] = $2 }
    vals[$1, $2, $3] = vals[$1, $2, $3] " " $4
}
END {
    printf "%-38s %-16s %24s %24s %8s %7s\n", "formats (ouro vs llama.cpp)", "column",
           "ouro tok/s (range)", "llama.cpp tok/s (range)", "ratio", "target"
    for (r = 1; r <= nrows; r++) {
        row = rows[r]; n = ncols[row]
        for (i = 1; i <= n; i++) key[i] = colkey(cols[row, i]) "|" cols[row, i]
        for (i = 2; i <= n; i++) {      # columns in order
            t = key[i]
            for (j = i - 1; j >= 1 && key[j] > t; j--) key[j + 1] = key[j]
            key[j + 1] = t
        }
        for (i = 1; i <= n; i++) {
            c = substr(key[i], index(key[i], "|") + 1)
            o = "-"; l = "-"; ratio = "-"; mo = 0; ml = 0
            if ((row SUBSEP c SUBSEP "ouro") in vals) {
                mo = median(vals[row, c, "ouro"])
                o = cnt > 1 ? sprintf("%.2f (%.2f-%.2f)", mo, lo, hi) : sprintf("%.2f", mo)
            }
            if ((row SUBSEP c SUBSEP "llama") in vals) {
                ml = median(vals[row, c, "llama"])
                l = cnt > 1 ? sprintf("%.2f (%.2f-%.2f)", ml, lo, hi) : sprintf("%.2f", ml)
            }
            if (mo > 0 && ml > 0) ratio = sprintf("%.2fx", mo / ml)
            target = c ~ /^batch/ ? ">= 2.5x" : ">= 1.2x"
            printf "%-38s %-16s %24s %24s %8s %7s\n", row, colname(c), o, l, ratio, target
            printf "RATIO %s|%s|%s\n", row, c, ratio == "-" ? "-" : substr(ratio, 1, length(ratio) - 1)
        }
    }
}' "$1"

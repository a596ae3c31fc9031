#!/usr/bin/python3
"""Medians per variant and workload from tests/bench/compare.sh runs (see ab.sh).

    tests/bench/ab.py LABEL=RESULTS.jsonl [LABEL=RESULTS.jsonl ...]

Prints one row per (workload, label): QPS, server CPU µs per query and p99 at the fixed rate
(medians over that label's runs and repetitions), and the query log's dropped records (the
most of any run: compare.sh's check reads the log's counters).
"""
import json
import re
import statistics
import sys


def main(args):
    rows = {}  # (workload, label) -> lists
    dropped = {}
    for arg in args:
        label, path = arg.split("=", 1)
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("kind") == "perf" and r.get("server") == "telesink":
                    tp, lat = r["tp"], r.get("lat") or {}
                    d = rows.setdefault((r["workload"], label), {"qps": [], "cpu": [], "p99": []})
                    d["qps"].append(tp["qps"])
                    if tp["qps"]:
                        d["cpu"].append(tp["server_cpu_pct"] / 100 / tp["qps"] * 1e6)
                    if lat.get("lat_p99_s") is not None:
                        d["p99"].append(lat["lat_p99_s"] * 1e6)
                elif r.get("kind") == "load" and r.get("server") == "telesink":
                    m = re.search(r"dropped (\d+)", r.get("note", ""))
                    if m:
                        dropped[label] = max(dropped.get(label, 0), int(m.group(1)))
    med = lambda v, fmt: fmt % statistics.median(v) if v else "–"
    print("| workload | variant | QPS | CPU µs/query | p99 (µs) | runs | log records dropped |")
    print("|---|---|---:|---:|---:|---:|---:|")
    order = ["blocked", "allowed-cached", "mixed"]
    for (w, label) in sorted(rows, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k[1])):
        d = rows[(w, label)]
        qps = "{:,.0f}".format(statistics.median(d["qps"])) if d["qps"] else "–"
        print("| %s | %s | %s | %s | %s | %d | %s |" % (
            w, label, qps, med(d["cpu"], "%.2f"), med(d["p99"], "%.0f"), len(d["qps"]),
            dropped.get(label, "?")))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

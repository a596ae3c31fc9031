#!/usr/bin/python3
"""Merge the results of compare.sh's rounds into one results.jsonl.

A round is one whole harness run (every server started, measured and stopped in turn);
compare.sh runs ROUNDS of them with the servers' order rotated, so each server's repetitions
are spread over the whole run instead of sitting in one stretch of it (this VM's speed drifts
by up to ±8% from one minute to the next: servers measured back to back in one stretch were
being compared with the machine's mood as much as with each other).

    tests/bench/merge.py RUN_ID ROUND1.jsonl ROUND2.jsonl ... > results.jsonl

perf records keep every repetition (renumbered, with the round); load records of a (server,
size) become one, with the medians of the rounds' starts and memory; errors are kept with
their round; the meta record is the first round's, with the run id and the rounds.
"""
import json
import statistics
import sys


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main(run_id, paths):
    meta, perf, loads, errors = None, [], {}, []
    for rnd, path in enumerate(paths, 1):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        for r in rows:
            kind = r.get("kind")
            if kind == "meta" and meta is None:
                meta = dict(r)
            elif kind == "perf":
                perf.append((rnd, r))
            elif kind == "load":
                loads.setdefault((r["server"], r["size"]), []).append(r)
            elif kind == "error":
                errors.append(dict(r, msg="round %d: %s" % (rnd, r.get("msg", ""))))
    if meta is None:
        sys.exit("no meta record in %s" % paths[0])
    meta.update(run_id=run_id, rounds=len(paths),
                repeat="%s x %d interleaved rounds" % (meta.get("repeat", 1), len(paths)))
    out = [meta]
    seen = {}
    for rnd, r in perf:  # in round order: repetitions are numbered across the rounds
        key = (r["server"], r["workload"])
        seen[key] = seen.get(key, 0) + 1
        out.append(dict(r, rep=seen[key], round=rnd))
    for (server, size), rs in loads.items():
        starts = [x for r in rs for x in (r.get("ready_all") or [r.get("ready_s")]) if x is not None]
        m = dict(rs[0])
        m.update(ready_s=median(starts), ready_all=starts, prep_s=median(r.get("prep_s") for r in rs),
                 rss_kb=median(r.get("rss_kb") for r in rs), hwm_kb=median(r.get("hwm_kb") for r in rs),
                 rss_after_kb=median(r.get("rss_after_kb") for r in rs))
        notes = [r["note"] for r in rs if r.get("note")]
        m["note"] = "ready min/max %.3f/%.3f over %d starts in %d rounds" % (
            min(starts), max(starts), len(starts), len(rs)) if starts else ""
        checks = [n.split("check: ", 1)[1] for n in notes if "check: " in n]
        if checks:
            m["note"] += " check: " + " | ".join(checks)
        out.append(m)
    out.extend(errors)
    for r in out:
        print(json.dumps(r))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])

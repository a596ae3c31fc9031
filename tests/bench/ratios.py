#!/usr/bin/python3
"""telesink against its peers, from one run of tests/bench/compare.sh (the harness's
results.jsonl): per workload the QPS and server CPU µs per query of telesink, of the best peer
(unbound, dnsmasq, dnsdist) and of the trivial responder, with the ratios; p50/p99 at the
fixed rate; load time and RSS per list size. Medians over the repetitions. For the mixed
workload also the forwarding reference (harness/ref/fwdref.c: the trivial responder that
forwards the misses to the upstream), the ceiling of any forwarding server there.

    tests/bench/ratios.py RESULTS.jsonl
"""
import json
import statistics
import sys

PEERS = ("unbound", "dnsmasq", "dnsdist")
ME = "telesink"


def main(path):
    perf, load = {}, {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "perf":
                perf.setdefault((r["server"], r["workload"]), []).append(r)
            elif r.get("kind") == "load":
                load[(r["server"], r["size"])] = r

    def med(server, workload, get):
        vals = [get(r) for r in perf.get((server, workload), []) if get(r) is not None]
        return statistics.median(vals) if vals else None

    qps = lambda r: r["tp"]["qps"]
    cpu = lambda r: r["tp"]["server_cpu_pct"] / 100 / r["tp"]["qps"] * 1e6 if r["tp"]["qps"] else None
    p50 = lambda r: (r.get("lat") or {}).get("lat_p50_s")
    p99 = lambda r: (r.get("lat") or {}).get("lat_p99_s")
    lost = lambda r: r["tp"]["lost"]
    nx_ok = lambda r: 1 if r["tp"].get("nx_ok") else 0

    workloads = sorted({w for (_, w) in perf}, key=["blocked", "allowed-cached", "mixed"].index)
    print("| workload | telesink QPS | best peer QPS | ratio | telesink CPU µs/q | best peer CPU µs/q "
          "| ratio | reference QPS / µs | forwarding ref. QPS / µs | telesink p50 / p99 (µs) | best peer p99 (µs) | lost | rcodes ok |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for w in workloads:
        mine_q, mine_c = med(ME, w, qps), med(ME, w, cpu)
        if mine_q is None:
            continue
        peers_q = {p: med(p, w, qps) for p in PEERS if med(p, w, qps)}
        peers_c = {p: med(p, w, cpu) for p in PEERS if med(p, w, cpu)}
        peers_p99 = {p: med(p, w, p99) for p in PEERS if med(p, w, p99)}
        bq = max(peers_q, key=peers_q.get) if peers_q else None
        bc = min(peers_c, key=peers_c.get) if peers_c else None
        bl = min(peers_p99, key=peers_p99.get) if peers_p99 else None
        ref_q, ref_c = med("reference", w, qps), med("reference", w, cpu)
        fwd_q, fwd_c = (med("fwdref", w, qps), med("fwdref", w, cpu)) if w == "mixed" else (None, None)
        my_p50, my_p99 = med(ME, w, p50), med(ME, w, p99)
        ok = all(nx_ok(r) for r in perf[(ME, w)])
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |" % (
            w, f"{mine_q:,.0f}",
            f"{peers_q[bq]:,.0f} ({bq})" if bq else "–",
            f"{mine_q / peers_q[bq]:.2f}x" if bq else "–",
            f"{mine_c:.1f}", f"{peers_c[bc]:.1f} ({bc})" if bc else "–",
            f"{mine_c / peers_c[bc]:.2f}x" if bc else "–",
            f"{ref_q:,.0f} / {ref_c:.1f}" if ref_q else "–",
            f"{fwd_q:,.0f} / {fwd_c:.1f}" if fwd_q else "–",
            f"{my_p50 * 1e6:.0f} / {my_p99 * 1e6:.0f}" if my_p99 else "–",
            f"{peers_p99[bl] * 1e6:.0f} ({bl})" if bl else "–",
            max(lost(r) for r in perf[(ME, w)]), "yes" if ok else "NO"))
    print()
    print("| list size | telesink load → ready (s) / RSS (MiB) | " +
          " | ".join(f"{p} (s / MiB)" for p in PEERS) + " |")
    print("|---:|---:|" + "---:|" * len(PEERS))
    for size in sorted({s for (_, s) in load}):
        cell = lambda s: (f"{load[(s, size)]['ready_s']:.3f} / {load[(s, size)]['rss_kb'] / 1024:.1f}"
                          if (s, size) in load else "–")
        print(f"| {size:,} | {cell(ME)} | " + " | ".join(cell(p) for p in PEERS) + " |")


if __name__ == "__main__":
    main(sys.argv[1])

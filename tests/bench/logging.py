#!/usr/bin/python3
"""Throughput with the query log on and off, same list, same run: dnsperf against telesink
answering blocked names, and answering 1,000 allowed names from its cache (a dnsmasq on loopback
is the upstream; one warm-up pass fills the cache). These are the paths where logging costs the
most relative to the work.

    tests/bench/logging.py [--seconds 10] [--runs 3]

telesink is pinned to CPU 1 with one serving thread, dnsperf to CPU 0 (on a 2-core machine the
log writer thread shares CPU 1 with the server: the honest worst case). Prints QPS medians and
the ratio; checks that every answer was NXDOMAIN and nothing was lost.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadtime import TELESINK, free_port, make_list, wait_nxdomain  # noqa: E402


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads, the log writer included)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(work, listfile, names, log, seconds, workload, upstream):
    port = free_port()
    conf = os.path.join(work, "t.conf")
    with open(conf, "w") as f:
        f.write("[server]\nthreads = 1\nrate_limit = 0\n[upstream]\nservers = %s\n[lists]\npaths = %s\n"
                "[log]\nenabled = %s\ndb = %s/q.db\n"
                % (upstream, listfile, "yes" if log else "no", work))
    qfile = os.path.join(work, workload + ".txt")
    proc = subprocess.Popen(["taskset", "-c", "1", TELESINK, "serve", "--config", conf,
                             "--listen", "127.0.0.1:%d" % port, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_nxdomain(port, names[-1], proc)
        if workload == "cached":  # one pass to fill the cache
            subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-n", "1"],
                           capture_output=True, check=True)
        cpu0 = cpu_seconds(proc.pid)
        out = subprocess.run(["taskset", "-c", "0", "dnsperf", "-s", "127.0.0.1", "-p", str(port),
                              "-d", qfile, "-l", str(seconds),
                              "-c", "10", "-q", "100"], capture_output=True, text=True).stdout
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(30)
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    want = "NXDOMAIN" if workload == "blocked" else "NOERROR"
    got = re.search(want + r" (\d+)", out)
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    assert got and int(got.group(1)) == completed, "not every answer was %s:\n%s" % (want, out)
    return qps, lost, cpu * 1e6 / completed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workloads", default="blocked,cached")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="telesink-bench-") as work:
        listfile = os.path.join(work, "bench.list")
        names = make_list(listfile, 100000)
        with open(os.path.join(work, "blocked.txt"), "w") as f:
            for i, n in enumerate(names):
                f.write("%s%s A\n" % ("x%d." % i if i % 2 else "", n))
        with open(os.path.join(work, "cached.txt"), "w") as f:
            f.writelines("host%d.cached.test A\n" % i for i in range(1000))
        up_port = free_port()
        dnsmasq = subprocess.Popen(
            ["taskset", "-c", "0", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
             "--port=%d" % up_port, "--address=/cached.test/192.0.2.1", "--local-ttl=3600",
             "--pid-file=",
             "--log-facility=-"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            summary = []
            for workload in args.workloads.split(","):
                qps = {True: [], False: []}
                cpu = {True: [], False: []}
                for _ in range(args.runs):
                    for log in (False, True):
                        for suffix in ("", "-wal", "-shm"):
                            p = os.path.join(work, "q.db" + suffix)
                            if os.path.exists(p):
                                os.unlink(p)
                        q, lost, us = run(work, listfile, names, log, args.seconds, workload,
                                          "127.0.0.1:%d" % up_port)
                        qps[log].append(q)
                        cpu[log].append(us)
                        print("%s, log %-3s %9.0f qps, %d lost, server CPU %.2f us/query"
                              % (workload, "on" if log else "off", q, lost, us))
                on, off = statistics.median(qps[True]), statistics.median(qps[False])
                con, coff = statistics.median(cpu[True]), statistics.median(cpu[False])
                summary.append("| %s | %.0f | %.0f | %.1f%% | %.2f | %.2f |"
                               % (workload, off, on, 100.0 * on / off, coff, con))
        finally:
            dnsmasq.terminate()
            dnsmasq.wait()
        print("\nmedians of %d runs, 100k-name list, one serving thread:" % args.runs)
        print("| workload | QPS log off | QPS log on | on/off | CPU us/query off | on |")
        print("|---|---:|---:|---:|---:|---:|")
        print("\n".join(summary))


if __name__ == "__main__":
    main()

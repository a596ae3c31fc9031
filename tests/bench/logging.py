#!/usr/bin/python3
"""Throughput with the query log on and off: dnsperf against telesink answering blocked names
(the path where logging costs the most relative to the work), same list, same run.

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


def run(work, listfile, names, log, seconds):
    port = free_port()
    conf = os.path.join(work, "t.conf")
    with open(conf, "w") as f:
        f.write("[server]\nthreads = 1\n[upstream]\nservers = 127.0.0.1:9\n[lists]\npaths = %s\n"
                "[log]\nenabled = %s\ndb = %s/q.db\n" % (listfile, "yes" if log else "no", work))
    proc = subprocess.Popen(["taskset", "-c", "1", TELESINK, "serve", "--config", conf,
                             "--listen", "127.0.0.1:%d" % port, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_nxdomain(port, names[-1], proc)
        cpu0 = cpu_seconds(proc.pid)
        out = subprocess.run(["taskset", "-c", "0", "dnsperf", "-s", "127.0.0.1", "-p", str(port),
                              "-d", os.path.join(work, "queries.txt"), "-l", str(seconds),
                              "-c", "10", "-q", "100"], capture_output=True, text=True).stdout
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(30)
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    nx = re.search(r"NXDOMAIN (\d+)", out)
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    assert nx and int(nx.group(1)) == completed, "not every answer was NXDOMAIN:\n" + out
    return qps, lost, cpu * 1e6 / completed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="telesink-bench-") as work:
        listfile = os.path.join(work, "bench.list")
        names = make_list(listfile, 100000)
        with open(os.path.join(work, "queries.txt"), "w") as f:
            for i, n in enumerate(names):
                f.write("%s%s A\n" % ("x%d." % i if i % 2 else "", n))
        results = {True: [], False: []}
        cpu = {True: [], False: []}
        for _ in range(args.runs):
            for log in (False, True):
                if log:
                    for suffix in ("", "-wal", "-shm"):
                        p = os.path.join(work, "q.db" + suffix)
                        if os.path.exists(p):
                            os.unlink(p)
                qps, lost, us = run(work, listfile, names, log, args.seconds)
                results[log].append(qps)
                cpu[log].append(us)
                print("log %-3s %9.0f qps, %d lost, server CPU %.2f us/query"
                      % ("on" if log else "off", qps, lost, us))
        on, off = statistics.median(results[True]), statistics.median(results[False])
        con, coff = statistics.median(cpu[True]), statistics.median(cpu[False])
        print("\nblocked workload, 100k-name list (medians of %d):" % args.runs)
        print("  logging off: %.0f qps, %.2f us server CPU per query" % (off, coff))
        print("  logging on:  %.0f qps, %.2f us server CPU per query (writer thread included)"
              % (on, con))
        print("  throughput with logging: %.1f%% of without; CPU per query %.2fx"
              % (100.0 * on / off, con / coff))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Report benchmark: a 24-hour `telesink report` over a 10,000,000-row query log of 200 clients,
while another connection keeps writing to the same file (it must never wait on the report).

    tests/bench/report.py BUILD_DIR [--rows N] [--db FILE] [--reuse]

The log is made by bench_qlog (the real queue, writer thread and schema): 200 clients, 50,000
names, 30% blocked over every bundled list, all within the last 24 hours. That is a worst case
for the report: blocked rows use random names, so a day has about 3 million distinct
(device, vendor, domain) triples where a real household has a few thousand.

Prints the median of 3 runs per format, the peak RSS, and the longest write transaction of the
concurrent writer during the reports.
"""
import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def writer(db, stop, worst):
    """Short write transactions (what the query-log writer does) until told to stop."""
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    hour = 1 << 40  # far from any real hour: leaves the report's counters alone
    while not stop.is_set():
        t = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO counters(hour, queries) VALUES (?, 1) ON CONFLICT(hour) DO "
                     "UPDATE SET queries = queries + 1", (hour,))
        conn.execute("COMMIT")
        worst[0] = max(worst[0], time.monotonic() - t)
        time.sleep(0.005)
    conn.execute("DELETE FROM counters WHERE hour = ?", (hour,))
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--db", default="/tmp/telesink-bench-report.db")
    ap.add_argument("--reuse", action="store_true", help="keep an existing database")
    a = ap.parse_args()
    telesink = os.path.join(a.build, "telesink")
    if not (a.reuse and os.path.exists(a.db)):
        print(f"making a log of {a.rows:,} rows with bench_qlog ...", flush=True)
        subprocess.run([os.path.join(a.build, "tests", "bench_qlog"), a.db, str(a.rows),
                        os.path.join(ROOT, "lists")], check=True)
    size = os.path.getsize(a.db)
    print(f"log: {a.db}, {size / 1e6:.1f} MB")

    stop, worst = threading.Event(), [0.0]
    t = threading.Thread(target=writer, args=(a.db, stop, worst))
    t.start()
    try:
        for fmt in ("text", "json", "csv", "html"):
            times, rss = [], []
            for _ in range(3):
                t0 = time.monotonic()
                p = subprocess.run(["/usr/bin/time", "-f", "%M", telesink, "report", "--db", a.db,
                                    "--since", "24h", "--format", fmt],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                times.append(time.monotonic() - t0)
                if p.returncode != 0:
                    sys.exit(f"report --format {fmt} failed: {p.stderr}")
                rss.append(int(p.stderr.strip().splitlines()[-1]) / 1024)
            print(f"report --since 24h --format {fmt:5}: median {statistics.median(times):.2f} s "
                  f"(runs {', '.join(f'{x:.2f}' for x in times)}), peak RSS {max(rss):.0f} MiB")
    finally:
        stop.set()
        t.join()
    print(f"concurrent writer: longest write transaction {worst[0] * 1000:.1f} ms")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""DNS over TLS: telesink's DoT listener beside unbound's (tls-port) in the same run.

    tests/bench/dot.py [--seconds 10] [--runs 3] [--servers telesink,unbound]

Both servers: one serving thread pinned to CPU 1, the test certificate (ECDSA P-256, made
with the openssl CLI for *.dns.example.test), a dnsmasq upstream on CPU 0. Clients on CPU 0:

- queries per second over ONE connection: `dnsperf -m dot -c 1 -q 100` (one TLS connection,
  100 queries outstanding, pipelined), for `blocked` (10,000 listed names: telesink's list,
  unbound's local-zone always_nxdomain) and `cached` (1,000 names from the upstream, one warm-up
  pass first); QPS, and the server's CPU (all its threads: telesink's log writer included)
  per query; and `blocked` again over 10 connections (`-c 10`, 100 outstanding in all);
- handshakes: `openssl s_time -new` (a full handshake per connection, no resumption, nothing
  sent), TLS 1.3 and 1.2: connections per second and the server's CPU per handshake.

telesink logs every query (query log on, as deployed); unbound logs nothing. Medians of --runs.
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "../e2e"))
from loadtime import TELESINK, free_port, make_list, wait_nxdomain  # noqa: E402
from harness import TestCA  # noqa: E402

SERVER_CPU, CLIENT_CPU = "1", "0"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_tcp(port, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("nothing listens on %d" % port)


def start(server, work, listfile, names, cert, key, upstream):
    """Start a server; returns (process, DoT port). Retried: a port free for UDP when picked
    may be taken (or taken for TCP) by the time the server binds it."""
    for attempt in range(5):
        try:
            return start_once(server, work, listfile, names, cert, key, upstream)
        except RuntimeError:
            if attempt == 4:
                raise


def start_once(server, work, listfile, names, cert, key, upstream):
    udp, dot = free_port(), free_port()
    if server == "telesink":
        conf = os.path.join(work, "telesink.conf")
        with open(conf, "w") as f:
            f.write("[server]\nthreads = 1\nrate_limit = 0\ntls_listen = 127.0.0.1:%d\n"
                    "tls_cert = %s\ntls_key = %s\n[upstream]\nservers = %s\n[lists]\npaths = %s\n"
                    "canary_doh = no\ncanary_icloud_relay = no\n[log]\ndb = %s/q.db\n"
                    % (dot, cert, key, upstream, listfile, work))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(os.path.join(work, "q.db" + suffix)):
                os.unlink(os.path.join(work, "q.db" + suffix))
        argv = [TELESINK, "serve", "--config", conf, "--listen", "127.0.0.1:%d" % udp,
                "--log-level", "warn"]
    else:
        conf = os.path.join(work, "unbound.conf")
        with open(conf, "w") as f:
            f.write("server:\n  interface: 127.0.0.1@%d\n  interface: 127.0.0.1@%d\n"
                    "  port: %d\n  tls-port: %d\n  tls-service-key: \"%s\"\n"
                    "  tls-service-pem: \"%s\"\n  do-ip6: no\n  do-daemonize: no\n"
                    "  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  chroot: \"\"\n"
                    "  username: \"\"\n  directory: \"%s\"\n  pidfile: \"\"\n  num-threads: 1\n"
                    "  module-config: \"iterator\"\n  do-not-query-localhost: no\n"
                    "  access-control: 127.0.0.0/8 allow\n  incoming-num-tcp: 256\n"
                    % (udp, dot, udp, dot, key, cert, work))
            f.writelines("  local-zone: \"%s.\" always_nxdomain\n" % n for n in names)
            f.write("remote-control:\n  control-enable: no\nforward-zone:\n  name: \".\"\n"
                    "  forward-addr: %s\n" % upstream.replace(":", "@"))
        argv = ["unbound", "-d", "-c", conf]
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_nxdomain(udp, names[-1], proc)
    wait_tcp(dot, proc)
    return proc, dot


def dnsperf(port, qfile, seconds, connections=1):
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, "dnsperf", "-m", "dot", "-s", "127.0.0.1",
                          "-p", str(port), "-d", qfile, "-l", str(seconds), "-c",
                          str(connections), "-q", "100"],
                         capture_output=True, text=True).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    recon = re.search(r"Reconnections:\s+(\d+)", out)
    latency = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1))
    return qps, completed, lost, int(recon.group(1)) if recon else 0, latency, out


def handshakes(port, seconds, version):
    args = ["taskset", "-c", CLIENT_CPU, "openssl", "s_time", "-connect", "127.0.0.1:%d" % port,
            "-new", "-time", str(seconds)] + (["-tls1_2"] if version == "1.2" else [])
    t0 = time.monotonic()
    out = subprocess.run(args, capture_output=True, text=True).stdout
    wall = time.monotonic() - t0
    n = int(re.search(r"(\d+) connections in [\d.]+s", out).group(1))
    return n, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--servers", default="telesink,unbound")
    args = ap.parse_args()
    servers = [s for s in args.servers.split(",") if s == "telesink" or shutil.which(s)]
    ca = TestCA()
    work = tempfile.mkdtemp(prefix="telesink-bench-dot-")
    try:
        cert, key = ca.issue("server", ["*.dns.example.test"], 0x1001)
        listfile = os.path.join(work, "bench.list")
        names = make_list(listfile, 10000)
        with open(os.path.join(work, "blocked.txt"), "w") as f:
            f.writelines("%s%s A\n" % ("x%d." % i if i % 2 else "", n) for i, n in enumerate(names))
        with open(os.path.join(work, "cached.txt"), "w") as f:
            f.writelines("host%d.cached.test A\n" % i for i in range(1000))
        up = free_port()
        dnsmasq = subprocess.Popen(
            ["taskset", "-c", CLIENT_CPU, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
             "--port=%d" % up, "--address=/cached.test/192.0.2.1", "--local-ttl=3600",
             "--pid-file=", "--log-facility=-"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        results = {}  # (server, what) -> [(rate, cpu us)]
        try:
            for _ in range(args.runs):
                for server in servers:
                    proc, port = start(server, work, listfile, names, cert, key,
                                       "127.0.0.1:%d" % up)
                    try:
                        for workload in ("blocked", "cached", "blocked-10"):
                            conns = 10 if workload.endswith("-10") else 1
                            qfile = os.path.join(work, workload.split("-")[0] + ".txt")
                            if workload == "cached":  # warm the cache
                                dnsperf(port, qfile, 1)
                            c0 = cpu_seconds(proc.pid)
                            qps, done, lost, recon, lat, out = dnsperf(port, qfile, args.seconds,
                                                                       conns)
                            us = (cpu_seconds(proc.pid) - c0) * 1e6 / max(done, 1)
                            print("%-8s %-7s %9.0f qps, %d lost, %d reconnections, average "
                                  "latency %.2f ms, %.2f us server CPU/query"
                                  % (server, workload, qps, lost, recon, lat * 1000, us))
                            assert lost == 0 and recon == 0, out
                            results.setdefault((server, workload), []).append((qps, us))
                        for version in ("1.3", "1.2"):
                            c0 = cpu_seconds(proc.pid)
                            n, wall = handshakes(port, args.seconds, version)
                            us = (cpu_seconds(proc.pid) - c0) * 1e6 / max(n, 1)
                            print("%-8s TLS %s  %7.0f handshakes/s, %.0f us server CPU each"
                                  % (server, version, n / wall, us))
                            results.setdefault((server, "tls" + version), []).append(
                                (n / wall, us))
                    finally:
                        proc.terminate()
                        proc.wait(30)
        finally:
            dnsmasq.terminate()
            dnsmasq.wait()
    finally:
        ca.close()
        shutil.rmtree(work, True)

    def med(server, what):
        v = results.get((server, what))
        if not v:
            return "-"
        return "%.0f / %.1f" % (statistics.median(x[0] for x in v),
                                statistics.median(x[1] for x in v))

    print("\nmedians of %d runs, one serving thread on CPU %s, clients on CPU %s:"
          % (args.runs, SERVER_CPU, CLIENT_CPU))
    print("| DoT | " + " | ".join(servers) + " |")
    print("|---|" + "---:|" * len(servers))
    for what, label in (("blocked", "blocked, one connection: QPS / server CPU µs per query"),
                        ("cached", "cached, one connection: QPS / server CPU µs per query"),
                        ("blocked-10", "blocked, 10 connections: QPS / server CPU µs per query"),
                        ("tls1.3", "TLS 1.3 full handshakes: per second / server CPU µs each"),
                        ("tls1.2", "TLS 1.2 full handshakes: per second / server CPU µs each")):
        print("| %s | %s |" % (label, " | ".join(med(s, what) for s in servers)))


if __name__ == "__main__":
    main()

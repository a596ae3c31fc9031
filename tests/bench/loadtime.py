#!/usr/bin/python3
"""Load time and memory with a big blocklist: telesink beside dnsmasq and unbound, same run.

For each server: write its configuration for an N-name list (untimed), exec it, and poll over
UDP every millisecond until it answers NXDOMAIN for the list's LAST name (so the whole list is
in); report that time, and VmRSS/VmHWM of the process right then. Medians over --runs starts.

    tests/bench/loadtime.py [--sizes 100000,1000000] [--runs 3] [--servers telesink,dnsmasq,unbound]

telesink reads the list as a `*.list` file (a name blocks its subdomains, as dnsmasq's
address=/name/ and unbound's local-zone do). No upstream is needed: only blocked names are asked.
"""
import argparse
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TELESINK = os.environ.get("TELESINK_BIN", os.path.join(HERE, "../../build/telesink"))


def make_list(path, n, seed=42):
    """Deterministic names: a third bare registrable domains, the rest hosts under them."""
    rnd = random.Random(seed)
    tlds = ["com", "net", "org", "io", "cn", "de", "ru", "info", "co.uk", "xyz"]
    words = ["metrics", "track", "log", "sdk", "stat", "ads", "collect", "beacon", "api", "t"]
    names = []
    seen = set()
    while len(names) < n:
        dom = "%s%x.%s" % (rnd.choice(words), rnd.getrandbits(40), rnd.choice(tlds))
        name = dom if rnd.random() < 0.35 else "%s.%s" % (rnd.choice(words), dom)
        if name not in seen:
            seen.add(name)
            names.append(name)
    with open(path, "w") as f:
        f.write("# vendor: Bench\n# category: tracking\n")
        f.writelines(n + "\n" for n in names)
    return names


def query(name, qid=0x4242):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mem(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) / 1024
    return out


def wait_nxdomain(port, name, proc, timeout=60):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.001)
    wire = query(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        try:
            s.sendto(wire, ("127.0.0.1", port))
            data = s.recv(4096)
            if len(data) >= 4 and data[3] & 0x0F == 3:
                return time.monotonic()
        except (socket.timeout, ConnectionRefusedError):
            pass
    raise RuntimeError("no NXDOMAIN for %s" % name)


def prepare(server, listfile, names, work, port):
    """Returns the argv to exec (config conversion is not timed)."""
    if server == "telesink":
        conf = os.path.join(work, "telesink.conf")
        with open(conf, "w") as f:
            f.write("[server]\nthreads = 1\n[upstream]\nservers = 127.0.0.1:9\n"
                    "[lists]\npaths = %s\ncanary_doh = no\ncanary_icloud_relay = no\n"
                    "[log]\ndb = %s/q.db\n" % (listfile, work))
        return [TELESINK, "serve", "--config", conf, "--listen", "127.0.0.1:%d" % port,
                "--log-level", "warn"]
    if server == "dnsmasq":
        conf = os.path.join(work, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write("port=%d\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n"
                    "server=127.0.0.1#9\ncache-size=10000\n" % port)
            f.writelines("address=/%s/\n" % n for n in names)
        return ["dnsmasq", "--keep-in-foreground", "--conf-file=" + conf, "--log-facility=-",
                "--pid-file="]
    if server == "unbound":
        conf = os.path.join(work, "unbound.conf")
        with open(conf, "w") as f:
            f.write("server:\n  interface: 127.0.0.1\n  port: %d\n  do-daemonize: no\n"
                    "  use-syslog: no\n  chroot: \"\"\n  username: \"\"\n  directory: \"%s\"\n"
                    "  pidfile: \"\"\n  num-threads: 1\n" % (port, work))
            f.writelines("  local-zone: \"%s.\" always_nxdomain\n" % n for n in names)
            f.write("forward-zone:\n  name: \".\"\n  forward-addr: 127.0.0.1@9\n")
        return ["unbound", "-d", "-c", conf]
    raise ValueError(server)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--servers", default="telesink,dnsmasq,unbound")
    args = ap.parse_args()
    servers = [s for s in args.servers.split(",") if s == "telesink" or shutil.which(s)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="telesink-bench-") as work:
        for size in map(int, args.sizes.split(",")):
            listfile = os.path.join(work, "bench-%d.list" % size)
            names = make_list(listfile, size)
            for server in servers:
                port = free_port()
                argv = prepare(server, listfile, names, work, port)
                times, rss, hwm = [], [], []
                for _ in range(args.runs):
                    t0 = time.monotonic()
                    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
                    try:
                        t1 = wait_nxdomain(port, names[-1], proc)
                        m = mem(proc.pid)
                        times.append(t1 - t0)
                        rss.append(m["VmRSS"])
                        hwm.append(m["VmHWM"])
                    finally:
                        proc.kill()
                        proc.wait()
                rows.append((server, size, statistics.median(times), min(times), max(times),
                             statistics.median(rss), statistics.median(hwm)))
    print("| server | names | exec → answering, median (min–max) s | RSS MiB | peak RSS MiB |")
    print("|---|---:|---|---:|---:|")
    for server, size, med, lo, hi, r, h in rows:
        print("| %s | %d | %.3f (%.3f–%.3f) | %.1f | %.1f |" % (server, size, med, lo, hi, r, h))
    by = {(r[0], r[1]): r for r in rows}
    for size in map(int, args.sizes.split(",")):
        t = by.get(("telesink", size))
        for peer in ("dnsmasq", "unbound"):
            p = by.get((peer, size))
            if t and p:
                print("%d names: telesink loads %.1fx faster than %s and uses %.1fx less memory"
                      % (size, p[2] / t[2], peer, p[5] / t[5]))


if __name__ == "__main__":
    main()

"""Long runs (ctest label `slow`, issue 8).

- RSS flat: 60 s of dnsperf at 2,000 queries a second against a silent upstream (every query
  waits the full timeout_ms, then SERVFAIL): the resident set, read every second from
  /proc/PID/status, grows less than 2 MB after the first 10 s.
- Valgrind: 60 s of mixed traffic (blocked names, names forwarded to a fake upstream and then
  cached, CNAME chains, truncated answers retried over TCP, malformed and silent upstream
  replies, queries over TCP, and garbage over UDP and TCP) against the plain build under
  `valgrind --leak-check=full`, then SIGTERM: exit 0, "definitely lost: 0 bytes", no errors.
"""
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset

from harness import (SANITIZED, FakeUpstream, SilentUpstream, Telesink, query_wire, raise_nofile,
                     vmrss_kb)

SECONDS = 60


def dnsperf(server, datafile, *args):
    return subprocess.Popen(["dnsperf", "-s", server[0], "-p", str(server[1]), "-d", datafile]
                            + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def perf_counts(out):
    def num(label):
        m = re.search(label + r":\s+(\d+)", out)
        return int(m.group(1)) if m else 0
    return num("Queries sent"), num("Queries completed"), num("Queries lost")


class RssSampler:
    """VmRSS of a process once a second (kB), in a thread, until stopped."""

    def __init__(self, pid, every=1.0):
        self.pid, self.every = pid, every
        self.samples = []  # (seconds since start, kB)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t0 = time.monotonic()
        while True:
            try:
                self.samples.append((time.monotonic() - t0, vmrss_kb(self.pid)))
            except OSError:
                return
            if self.stop.wait(self.every):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@unittest.skipUnless(shutil.which("dnsperf"), "dnsperf is installed by contrib/setup")
class RssFlat(unittest.TestCase):
    QPS = 2000

    @unittest.skipIf(SANITIZED, "RSS under AddressSanitizer is its shadow and quarantine")
    def test_rss_flat_at_2000_qps_against_a_silent_upstream(self):
        # ~3,000 questions wait at any time (2,000/s for 1.5 s), each with its own socket.
        # The query log is off: its memory is bounded too, but fills for minutes at this rate
        # (queue slots are touched lazily, SQLite's page cache grows to 8 MiB with the file).
        self.assertGreaterEqual(raise_nofile(16384), 4096, "RLIMIT_NOFILE: ~3,000 sockets needed")
        with SilentUpstream() as dead, Telesink(
                upstreams=[dead.addr], listen=("127.0.0.1:0",),
                config="[server]\nrate_limit = 0\n[log]\nenabled = no\n") as ts, \
                tempfile.NamedTemporaryFile("w", suffix=".txt") as qf:
            for i in range(20000):
                qf.write("n%d.soak.test A\n" % i)
            qf.flush()
            with RssSampler(ts.proc.pid) as rss:
                perf = dnsperf(ts.v4, qf.name, "-Q", self.QPS, "-l", SECONDS, "-q", 10000,
                               "-t", 5)
                out = perf.communicate(timeout=SECONDS + 60)[0]
            self.assertEqual(perf.returncode, 0, out)
            self.assertEqual(ts.stop(), 0)
        sent, completed, lost = perf_counts(out)
        self.assertGreater(sent, 0.95 * self.QPS * SECONDS, out)
        self.assertGreater(completed, 0.99 * sent, out)  # each one SERVFAIL after 1.5 s
        self.assertRegex(out, r"SERVFAIL \d+ \(100\.00%\)")
        st = ts.stats()
        self.assertGreater(st["upstream_timeouts"], 0.95 * sent)
        after10 = [kb for t, kb in rss.samples if t >= 10]
        self.assertGreater(len(after10), SECONDS - 15)
        at10, peak = after10[0], max(after10)
        self.assertLess(peak - at10, 2048, rss.samples)
        print("\n%d s at %d qps, silent upstream: %d sent, %d SERVFAIL; VmRSS %d kB at 1 s, "
              "%d kB at 10 s, peak after that %d kB (%+d kB), last %d kB"
              % (SECONDS, self.QPS, sent, completed, rss.samples[1][1], at10, peak,
                 peak - at10, after10[-1]))


# ---- the valgrind soak ------------------------------------------------------------------

def soak_upstream_reply(up, q, wire, addr):
    """Answers every name: A records, CNAME chains, NXDOMAIN, TC=1 (then TCP), a malformed
    reply or none at all, chosen by the name's first label."""
    qq = q.question[0]
    label = qq.name.labels[0].decode().lower()
    r = dns.message.make_response(q)
    r.flags |= dns.flags.RA
    if label.startswith("nx"):
        r.set_rcode(dns.rcode.NXDOMAIN)
    elif label.startswith("tc") and addr is not None:
        r.flags |= dns.flags.TC
    elif label.startswith("bad"):
        return r.to_wire()[:-1] + b"\xff\xff"  # a question cut short, then junk
    elif label.startswith("silent"):
        return None
    elif label.startswith("cn"):
        target = dns.name.from_text("target." + qq.name.to_text())
        r.answer.append(dns.rrset.from_text(qq.name, 300, "IN", "CNAME", target.to_text()))
        if qq.rdtype == 1:
            r.answer.append(dns.rrset.from_text(target, 300, "IN", "A", "192.0.2.55"))
    elif qq.rdtype == 1:
        r.answer.append(dns.rrset.from_text(qq.name, 300, "IN", "A", "192.0.2.%d" % (len(label))))
    elif qq.rdtype == 28:
        r.answer.append(dns.rrset.from_text(qq.name, 300, "IN", "AAAA", "2001:db8::1"))
    return r.to_wire()


def soak_upstream_tcp(up, q, wire):
    return soak_upstream_reply(up, q, wire, None)


GARBAGE_UDP = [
    b"",
    b"\x00" * 5,                                    # shorter than a header
    b"\x12\x34\x81\x80" + b"\x00" * 8,              # QR=1
    b"\x12\x34\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00",  # two questions, none present
    query_wire("x.test")[:-3],                       # question cut short
    query_wire("x.test") + b"trailing",
    query_wire("axfr.test", "AXFR"),
    query_wire("any.test", "ANY"),
    query_wire("v1.test", edns=1),                   # BADVERS
    b"\xc0" * 40,
]


def garbage(server, stop):
    """Until stop is set: junk datagrams and TCP connections that misbehave, ~200 a second."""
    rnd = random.Random(8)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setblocking(False)
    n = 0
    while not stop.wait(0.005):
        pkt = GARBAGE_UDP[n % len(GARBAGE_UDP)] if n % 3 else rnd.randbytes(rnd.randrange(1, 600))
        try:
            u.sendto(pkt, server)
            while True:
                u.recv(4096)  # drain answers; nobody checks them
        except (BlockingIOError, OSError):
            pass
        if n % 20 == 0:
            try:
                with socket.create_connection(server, timeout=2) as t:
                    kind = (n // 20) % 4
                    if kind == 0:
                        t.sendall(struct.pack("!H", 300) + rnd.randbytes(300))
                    elif kind == 1:
                        t.sendall(b"\xff\xff" + b"\x00" * 10)  # a frame never finished
                    elif kind == 2:
                        q = query_wire("tcp%d.soak.test" % n)
                        t.sendall(struct.pack("!H", len(q)) + q)
                        t.shutdown(socket.SHUT_WR)  # half-close: answer, then FIN
                        t.recv(4096)
                    else:
                        t.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        t.sendall(struct.pack("!H", 100))  # then a reset
            except OSError:
                pass
        n += 1
    u.close()


def soak_queries(blocked):
    """dnsperf's input: ~1/4 blocked, ~1/4 repeats (cached after the first), the rest new
    names of every kind the fake upstream knows."""
    rnd = random.Random(1)
    lines = []
    for i in range(20000):
        k = rnd.random()
        if k < 0.25:
            lines.append("%s A" % rnd.choice(blocked))
        elif k < 0.5:
            lines.append("www%d.cached.test %s" % (rnd.randrange(50), rnd.choice(["A", "AAAA"])))
        else:
            kind = rnd.choice(["a", "a", "a", "cn", "cn", "nx", "tc", "bad", "silent"])
            lines.append("%s%d.soak.test %s" % (kind, i, rnd.choice(["A", "AAAA", "TXT", "MX"])))
    return "\n".join(lines) + "\n"


@unittest.skipIf(SANITIZED, "valgrind runs the plain build's binary")
@unittest.skipUnless(shutil.which("dnsperf"), "dnsperf is installed by contrib/setup")
class ValgrindSoak(unittest.TestCase):
    def test_soak_under_valgrind(self):
        self.assertIsNotNone(shutil.which("valgrind"), "valgrind is installed by contrib/setup")
        raise_nofile(4096)
        work = tempfile.TemporaryDirectory(prefix="telesink-soak-")
        vlog = os.path.join(work.name, "valgrind.log")
        lst = os.path.join(work.name, "soak.list")
        blocked = ["t%d.tracker-soak.test" % i for i in range(100)]
        with open(lst, "w") as f:
            f.write("# vendor: Soakvendor\n# category: telemetry\n")
            f.write("tracker-soak.test  # source: test\ntarget.cn7.soak.test  # source: test\n")
        qfile = os.path.join(work.name, "queries.txt")
        with open(qfile, "w") as f:
            f.write(soak_queries(blocked))
        wrapper = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite",
                   "--errors-for-leak-kinds=definite", "--error-exitcode=99",
                   "--num-callers=30", "--log-file=" + vlog]
        with FakeUpstream() as up, Telesink(
                upstreams=[up.addr], wrapper=wrapper, ready_timeout=120,
                config="[server]\nrate_limit = 0\n[upstream]\ntimeout_ms = 500\n"
                       "[lists]\npaths = %s\n" % lst) as ts:
            up.udp_handler = soak_upstream_reply
            up.tcp_handler = soak_upstream_tcp
            stop = threading.Event()
            junk = threading.Thread(target=garbage, args=(ts.v4, stop), daemon=True)
            junk.start()
            # UDP from one client, TCP from another, paced for a server slowed down ~20x.
            udp = dnsperf(ts.v4, qfile, "-Q", 600, "-l", SECONDS, "-q", 500, "-t", 5)
            tcp = dnsperf(ts.v4, qfile, "-m", "tcp", "-Q", 150, "-l", SECONDS, "-q", 50,
                          "-t", 5, "-c", 4)
            out_udp = udp.communicate(timeout=SECONDS + 120)[0]
            out_tcp = tcp.communicate(timeout=SECONDS + 120)[0]
            stop.set()
            junk.join()
            self.assertIsNone(ts.proc.poll(), ts.output()[-3000:])
            code = ts.stop(timeout=120)
        with open(vlog) as f:
            report = f.read()
        work.cleanup()
        self.assertEqual(udp.returncode, 0, out_udp)
        self.assertEqual(tcp.returncode, 0, out_tcp)
        self.assertEqual(code, 0, report[-5000:])
        self.assertRegex(report, r"ERROR SUMMARY: 0 errors", report[-5000:])
        self.assertNotRegex(report, r"Invalid (read|write|free)|uninitialised|Mismatched")
        m = re.search(r"definitely lost: ([\d,]+) bytes", report)
        if m:  # absent when every block was freed
            self.assertEqual(m.group(1), "0", report[-5000:])
        else:
            self.assertIn("All heap blocks were freed", report)
        sent_u, done_u, lost_u = perf_counts(out_udp)
        sent_t, done_t, lost_t = perf_counts(out_tcp)
        self.assertGreater(done_u, 0.9 * sent_u, out_udp)
        self.assertGreater(done_t, 0.9 * sent_t, out_tcp)
        st = ts.stats()
        for k in ("blocked", "cached", "forwarded", "formerr", "malformed", "tcp_retries",
                  "upstream_timeouts", "any"):
            self.assertGreater(st.get(k, 0), 0, "%s: none in the soak" % k)
        summary = re.findall(r"(?:definitely|indirectly|possibly) lost: .*|still reachable: .*|"
                             r"ERROR SUMMARY: .*|All heap blocks were freed.*", report)
        print("\nvalgrind soak, %d s: UDP %d sent %d completed, TCP %d sent %d completed; "
              "queries=%d blocked=%d cached=%d forwarded=%d malformed=%d tcp_retries=%d "
              "timeouts=%d; exit %d\n  %s" % (
                  SECONDS, sent_u, done_u, sent_t, done_t, st["queries"], st["blocked"],
                  st["cached"], st["forwarded"], st["malformed"], st["tcp_retries"],
                  st["upstream_timeouts"], code, "\n  ".join(summary)))


if __name__ == "__main__":
    unittest.main()

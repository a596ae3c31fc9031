"""Regression tests for defects found in review: a TCP connection whose queries fail at once
must not recurse, answers queued before a client's FIN are all delivered, a client that never
reads cannot grow our memory, TC=1 replies with bogus counts still go to TCP, and a reply with
a compression pointer into the header is refused. And ANY queries get the minimal RFC 8482
answer (no amplification)."""
import ctypes
import os
import platform
import resource
import socket
import struct
import tempfile
import threading
import time
import unittest

import dns.message
import dns.rcode

from harness import (FakeUpstream, SilentUpstream, Telesink, dig, framed, query_wire,
                     recv_framed, udp_exchange)

BIG_TXT = {"big.test": {"TXT": ['"%s"' % ("a" * 250)] * 200}}  # ~51 KB answers


def big_udp(up, q, wire, addr):
    return up.answer(q).to_wire(max_size=65535)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])


class TcpConnections(unittest.TestCase):
    def test_failing_queries_on_a_paused_connection(self):
        # max_pending = 1: after the first question every new one fails at once (SERVFAIL)
        # while the connection is paused at its in-flight cap.
        with SilentUpstream() as up, Telesink(
                upstreams=[up.addr],
                config="[server]\nmax_pending = 1\nthreads = 1\n[upstream]\ntimeout_ms = 300\n") as ts:
            with socket.create_connection(ts.v4) as s:
                s.settimeout(10)
                frames = b"".join(framed(query_wire("x.test", qid=i)) for i in range(64))
                frames += framed(query_wire("y.test", qid=1000)) + framed(query_wire("z.test", qid=1001))
                s.sendall(frames)
                ids = set()
                for _ in range(66):
                    r = dns.message.from_wire(recv_framed(s))
                    self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
                    ids.add(r.id)
                self.assertEqual(ids, set(range(64)) | {1000, 1001})
            self.assertIsNone(ts.proc.poll())
        self.assertEqual(ts.returncode, 0)

    def test_half_close_gets_every_answer(self):
        with FakeUpstream(zone=BIG_TXT) as up, Telesink(upstreams=[up.addr]) as ts:
            up.udp_handler = big_udp
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(ts.v4)
                s.settimeout(10)
                s.sendall(b"".join(framed(query_wire("big.test", "TXT", qid=i)) for i in range(200)))
                s.shutdown(socket.SHUT_WR)
                got = 0
                while recv_framed(s) is not None:
                    got += 1
                self.assertEqual(got, 200)

    def test_client_that_never_reads_is_bounded(self):
        with FakeUpstream(zone=BIG_TXT) as up, \
                Telesink(upstreams=[up.addr], config="[server]\nthreads = 1\nrate_limit = 0\n") as ts:
            up.udp_handler = big_udp
            before = rss_kb(ts.proc.pid)
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect(ts.v4)
                s.settimeout(2)
                w = framed(query_wire("big.test", "TXT")) * 100
                sent, blocked = 0, False
                try:
                    for _ in range(4000):  # 400,000 queries: 20 GB of answers if we queued them all
                        s.sendall(w)
                        sent += 100
                except socket.timeout:
                    blocked = True  # telesink stopped reading from us: that is the point
                self.assertTrue(blocked, "telesink read all %d queries of a client that never reads" % sent)
                # Another client is still served meanwhile.
                self.assertEqual(dig(ts.v4, "big.test", "TXT", tcp=True).rcode, "NOERROR")
                self.assertLess(rss_kb(ts.proc.pid) - before, 32 * 1024, "sent %d" % sent)


class UpstreamReplies(unittest.TestCase):
    def test_truncated_reply_with_full_counts_goes_to_tcp(self):
        def tc_udp(up, q, wire, addr):
            r = up.answer(q).to_wire()
            hdr = bytearray(r[:12])
            hdr[2] |= 0x02
            hdr[6:8] = struct.pack("!H", 3)  # claims 3 answers, carries none
            qend = 12 + len(q.question[0].name.to_wire()) + 4
            return bytes(hdr) + r[12:qend]
        with FakeUpstream(zone={"tc.test": {"A": ["192.0.2.1"]}}) as up, \
                Telesink(upstreams=[up.addr]) as ts:
            up.udp_handler = tc_udp
            a = dig(ts.v4, "tc.test")
            self.assertEqual(a.addresses(), ["192.0.2.1"])
            self.assertEqual([t for t, _, _ in up.queries], ["udp", "tcp"])

    def test_pointer_into_header_is_servfail(self):
        def h(up, q, wire, addr):
            qn = q.question[0].name.to_wire()
            hdr = struct.pack("!HHHHHH", q.id, 0x8100, 1, 1, 0, 0)
            rr = b"\xc0\x03" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
            return hdr + qn + struct.pack("!HH", 1, 1) + rr
        with FakeUpstream() as up, Telesink(upstreams=[up.addr]) as ts:
            up.udp_handler = h
            r = dns.message.from_wire(udp_exchange(ts.v4, query_wire("p.test")))
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(ts.stats()["malformed"], 1)


class AnyQueries(unittest.TestCase):
    """RFC 8482: ANY gets one small synthesized HINFO, never the upstream's records, so that a
    small query cannot draw a big answer; a blocked name still gets the block answer."""

    def test_any_is_answered_minimally(self):
        with tempfile.TemporaryDirectory() as lists, FakeUpstream(zone=BIG_TXT) as up:
            with open(os.path.join(lists, "t.list"), "w") as f:
                f.write("# vendor: Testvendor\n# category: telemetry\n"
                        "tracker-example.test  # source: test\n")
            with Telesink(upstreams=[up.addr], config="[lists]\npaths = %s\n" % lists) as ts:
                for tcp in (False, True):
                    a = dig(ts.v4, "big.test", "ANY", tcp=tcp)
                    self.assertEqual(a.rcode, "NOERROR", a.text)
                    self.assertEqual(a.answers, [["big.test.", "300", "IN", "HINFO", '"RFC8482"',
                                                  '""']], a.text)
                # 37 bytes asked, 58 answered (the upstream holds ~51 KB): nothing to amplify.
                q = dns.message.make_query("big.test", "ANY", use_edns=0, payload=4096)
                self.assertLess(len(udp_exchange(ts.v4, q.to_wire())), 2 * len(q.to_wire()))
                # A blocked name is answered as blocked, whatever the type.
                b = dig(ts.v4, "tracker-example.test", "ANY")
                self.assertEqual(b.rcode, "NXDOMAIN", b.text)
                self.assertIn("blocked by telesink", b.text)
                self.assertEqual(ts.stop(), 0)
            self.assertEqual(up.queries, [])  # nothing was forwarded
            st = ts.stats()
            self.assertEqual((st["any"], st["blocked"], st["forwarded"]), (3, 1, 0))


class OpenFiles(unittest.TestCase):
    """The soft RLIMIT_NOFILE is raised to what the connection caps need, never past the hard
    limit, and a hard limit too low is said at startup."""

    CONFIG = "[server]\nthreads = 2\ntcp_max_connections = 1500\n"
    # 2 threads x (1500 TCP + 256 DoT + 2 x 2 listening + 128 upstream) + 64
    NEED = 2 * (1500 + 256 + 4 + 128) + 64

    @staticmethod
    def soft_limit(pid):
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        raise AssertionError("no open-files line")

    def test_soft_limit_raised_as_far_as_needed(self):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # only root may raise it
        self.assertGreater(hard, self.NEED, "this machine's hard open-files limit is too low")
        with Telesink(config=self.CONFIG,
                      wrapper=("prlimit", "--nofile=1024:%d" % hard, "--")) as ts:
            self.assertEqual(self.soft_limit(ts.proc.pid), self.NEED)
            self.assertFalse([l for l in ts.lines if "open files" in l])
            self.assertEqual(ts.stop(), 0)

    def test_low_hard_limit_is_said(self):
        with Telesink(config=self.CONFIG, wrapper=("prlimit", "--nofile=1024:2048", "--")) as ts:
            self.assertEqual(self.soft_limit(ts.proc.pid), 2048)
            said = [l for l in ts.lines if "open files" in l]
            self.assertEqual(len(said), 1, ts.lines)
            self.assertIn("the limit is 2048", said[0])
            self.assertIn("may need %d" % self.NEED, said[0])
            self.assertEqual(ts.stop(), 0)


SYS_SCHED_ATTR = {"x86_64": (314, 315), "aarch64": (274, 275)}  # (setattr, getattr)
SCHED_BATCH = 3


def sched_getattr(tid):
    """(policy, nice, sched_runtime) of a thread, from the kernel's struct sched_attr."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(56)
    if libc.syscall(SYS_SCHED_ATTR[platform.machine()][1], tid, buf, 56, 0) != 0:
        raise OSError(ctypes.get_errno(), "sched_getattr")
    _, policy, _, nice, _, runtime = struct.unpack_from("=IIQiIQ", buf.raw)
    return policy, nice, runtime


def kernel_keeps_slices():
    """Does this kernel keep a SCHED_OTHER thread's requested slice (EEVDF, Linux 6.12+)? Asked
    of a thread of our own, which then ends."""
    out = []

    def probe():
        libc = ctypes.CDLL(None, use_errno=True)
        attr = struct.pack("=IIQiIQQQII", 56, 0, 0, os.nice(0), 0, 100000, 0, 0, 0, 0)
        buf = ctypes.create_string_buffer(attr, 56)
        if libc.syscall(SYS_SCHED_ATTR[platform.machine()][0], 0, buf, 0) == 0:
            out.append(sched_getattr(threading.get_native_id())[2] == 100000)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return out == [True]


@unittest.skipUnless(platform.machine() in SYS_SCHED_ATTR, "sched_attr syscall numbers known "
                     "for x86_64 and aarch64 only")
class Threads(unittest.TestCase):
    """Serving threads ask for a short scheduling slice (a query preempts the log writer at
    once), the log writer is SCHED_BATCH, both are named, and a nice value set from outside
    stays."""

    def test_names_policies_and_slices(self):
        with Telesink(config="[server]\nthreads = 2\n", wrapper=("nice", "-n", "5")) as ts:
            # "ready" comes once the sockets are bound; each thread names itself as it starts.
            deadline = time.monotonic() + 5
            while True:
                tasks = {}
                for tid in os.listdir("/proc/%d/task" % ts.proc.pid):
                    with open("/proc/%d/task/%s/comm" % (ts.proc.pid, tid)) as f:
                        tasks[f.read().strip()] = int(tid)
                if {"serve0", "serve1", "qlog"} <= set(tasks) or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            self.assertLessEqual({"serve0", "serve1", "qlog"}, set(tasks), tasks)
            slices = kernel_keeps_slices()
            for name in ("serve0", "serve1"):
                policy, nice, runtime = sched_getattr(tasks[name])
                self.assertEqual((policy, nice), (0, 5), name)
                if slices:
                    self.assertEqual(runtime, 100000, name)
            policy, nice, _ = sched_getattr(tasks["qlog"])
            self.assertEqual((policy, nice), (SCHED_BATCH, 5))
            self.assertEqual(ts.stop(), 0)


if __name__ == "__main__":
    unittest.main()

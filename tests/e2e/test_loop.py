"""Forwarding loops: an upstream that is telesink itself, directly or through a dnsmasq, is
recognised by the marker on our own queries and answered SERVFAIL at once (with an Extended DNS
Error saying why, and a log line at most once a minute), never sent round again; and an upstream
that is one of our own listen addresses is refused when the configuration is read.

"At once" is measured against timeout_ms: a loop that were only broken by timeouts (or by the
coalescing of identical questions) would take at least that long to answer.
"""
import os
import shutil
import signal
import subprocess
import time
import unittest

import dns.edns
import dns.message
import dns.rcode

from harness import BIN, FakeUpstream, Telesink, dig, free_port_pair, udp_exchange

TIMEOUT_MS = 3000


def ask(server, name):
    q = dns.message.make_query(name, "A", use_edns=0)
    start = time.monotonic()
    r = dns.message.from_wire(udp_exchange(server, q.to_wire()))
    return r, time.monotonic() - start


def ede_text(msg):
    return next((o.text for o in msg.options if o.otype == dns.edns.EDE), None)


def loop_lines(ts):
    return [l for l in ts.output().splitlines() if "forwarding loop:" in l]


class Loops(unittest.TestCase):
    def check_loop_answers(self, ts, names):
        for name in names:
            r, took = ask(ts.v4, name)
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, name)
            self.assertIn("forwarding loop", ede_text(r) or "", r)
            self.assertLess(took, TIMEOUT_MS / 1000 / 2, name)
        self.assertIsNotNone(ts.wait_for_line(r"forwarding loop: a query we sent upstream came "
                                              r"back to us from 127\.0\.0\.1:", 5))

    def test_upstream_is_our_own_port(self):
        # The listen port is picked at start (port 0), so the configuration check cannot know
        # it: the loop is made by a reload that names it as the upstream.
        with FakeUpstream() as up, Telesink(
                config="[server]\nthreads = 2\n[upstream]\nservers = %s\n" % up.addr) as ts:
            own = "127.0.0.1:%d" % ts.v4[1]
            with open(ts.config_path, "w") as f:
                f.write("[server]\nthreads = 2\n[upstream]\nservers = %s\ntimeout_ms = %d\n"
                        % (own, TIMEOUT_MS))
            n = len(ts.lines)
            ts.send_signal(signal.SIGHUP)
            self.assertIsNotNone(ts.wait_for_line(r"reloaded: upstreams " + own, 10, n))
            names = ["loop%d.example.test" % i for i in range(6)]
            self.check_loop_answers(ts, names)
            self.assertEqual(ts.stop(), 0)
        st = ts.stats()
        # Each question went upstream once, came back once, and went no further.
        self.assertEqual(st["forwarding_loops"], len(names))
        self.assertEqual(st["upstream_sent"], len(names))
        self.assertEqual(st["queries"], 2 * len(names))
        self.assertEqual(st["upstream_timeouts"], 0)
        self.assertEqual(len(loop_lines(ts)), 1, ts.output())  # at most once a minute
        self.assertEqual(len(up.queries), 0)

    def test_own_listen_address_refused_at_start(self):
        u, t, port = free_port_pair("127.0.0.1")
        u.close()
        t.close()
        own = "127.0.0.1:%d" % port
        p = subprocess.run([BIN, "serve", "--config", "/dev/null", "--listen", own,
                            "--upstream", own, "--db", "/dev/null"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("upstream %s is one of telesink's own listen addresses" % own, p.stderr)

    @unittest.skipUnless(shutil.which("dnsmasq"), "dnsmasq is installed by contrib/setup")
    def test_loop_through_dnsmasq(self):
        from test_qlog import Dnsmasq
        # telesink -> dnsmasq -> telesink: dnsmasq passes our marker on with the query.
        u, t, port = free_port_pair("127.0.0.1")
        u.close()
        t.close()
        with Telesink(upstreams=["127.0.0.1:%d" % port],
                      config="[server]\nthreads = 2\n[upstream]\ntimeout_ms = %d\n"
                      % TIMEOUT_MS) as ts, Dnsmasq("127.0.0.1", port, ts.v4[1]):
            names = ["via-dnsmasq%d.example.test" % i for i in range(4)]
            self.check_loop_answers(ts, names)
            self.assertEqual(ts.stop(), 0)
        st = ts.stats()
        self.assertEqual(st["forwarding_loops"], len(names))
        # Our query to dnsmasq, and dnsmasq's to us: nothing went round a second time.
        self.assertEqual(st["upstream_sent"], len(names))
        self.assertEqual(st["queries"], 2 * len(names))
        self.assertEqual(len(loop_lines(ts)), 1, ts.output())

    def test_two_telesinks_forwarding_to_each_other(self):
        # A -> B -> A: B passes A's marker on with its own, so A recognises its query when it
        # comes back. (Without that, A would take B's query for the same question as its own
        # in flight, and both would wait for each other until timeout_ms.)
        conf = "[server]\nthreads = 2\n[upstream]\nservers = %s\ntimeout_ms = %d\n"
        with FakeUpstream() as up, \
                Telesink(config=conf % (up.addr, TIMEOUT_MS)) as a, \
                Telesink(config=conf % ("127.0.0.1:%d" % a.v4[1], TIMEOUT_MS)) as b:
            with open(a.config_path, "w") as f:
                f.write(conf % ("127.0.0.1:%d" % b.v4[1], TIMEOUT_MS))
            n = len(a.lines)
            a.send_signal(signal.SIGHUP)
            self.assertIsNotNone(a.wait_for_line(r"reloaded: upstreams 127\.0\.0\.1:%d" % b.v4[1],
                                                 10, n))
            names = ["pair%d.example.test" % i for i in range(4)]
            for name in names:
                r, took = ask(a.v4, name)
                self.assertEqual(r.rcode(), dns.rcode.SERVFAIL, name)
                self.assertLess(took, TIMEOUT_MS / 1000 / 2, name)
            self.assertIsNotNone(a.wait_for_line(r"forwarding loop: a query we sent upstream "
                                                 r"came back to us from 127\.0\.0\.1:", 5))
            self.assertEqual(a.stop(), 0)
            self.assertEqual(b.stop(), 0)
        sa, sb = a.stats(), b.stats()
        self.assertEqual(sa["forwarding_loops"], len(names))
        self.assertEqual(sb["forwarding_loops"], 0)
        # Each question: client -> A -> B -> A, and no further.
        self.assertEqual(sa["queries"], 2 * len(names))
        self.assertEqual(sb["queries"], len(names))
        self.assertEqual(sa["upstream_timeouts"] + sb["upstream_timeouts"], 0)
        self.assertEqual(len(up.queries), 0)


if __name__ == "__main__":
    unittest.main()

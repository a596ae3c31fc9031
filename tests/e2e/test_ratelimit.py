"""The per-client rate limit ([server] rate_limit): a client over the limit gets REFUSED while
another client asking at the same time is still answered; the limit is logged once per client
per window, not once per query; the count holds across serving threads (every query comes from
a fresh source port, which SO_REUSEPORT spreads over the threads) and over UDP and TCP; refused
queries are counted (the exit stats, the log's hourly not_logged) but not logged one by one; a
reload that turns the limit off frees the client; behind a trusted forwarder each device named
by EDNS Client Subnet has its own limit.

A window of an hour keeps the tests independent of timing: nothing refills while they run.
"""
import os
import signal
import socket
import sqlite3
import unittest

import dns.edns
import dns.message
import dns.rcode

from harness import FakeUpstream, Telesink, framed, recv_framed, udp_exchange

ZONE = {"www.example.test": {"A": ["192.0.2.10"]}}
LIMIT = 20


def ask(ts, source, name="www.example.test", tcp=False, ecs=None):
    """One query from `source` (a fresh socket, so a fresh port); returns the reply message."""
    opts = [dns.edns.ECSOption(ecs, 32)] if ecs else []
    q = dns.message.make_query(name, "A", use_edns=0, options=opts)
    if not tcp:
        r = dns.message.from_wire(udp_exchange(ts.v4, q.to_wire(), source=source))
    else:
        with socket.socket() as s:
            s.settimeout(6)
            s.bind((source, 0))
            s.connect(ts.v4)
            s.sendall(framed(q.to_wire()))
            r = dns.message.from_wire(recv_framed(s))
    assert r.id == q.id and r.question == q.question, (q, r)
    return r


def notices(ts, who):
    return [l for l in ts.output().splitlines() if "rate limit: %s sent" % who in l]


class RateLimit(unittest.TestCase):
    def serve(self, extra=""):
        self.up = FakeUpstream(zone=ZONE)
        self.addCleanup(self.up.close)
        ts = Telesink(upstreams=[self.up.addr],
                      config="[server]\nthreads = 2\nrate_limit = %d/3600\n%s" % (LIMIT, extra))
        return ts

    def test_over_the_limit_refused_others_answered_logged_once(self):
        with self.serve("[log]\nflush_ms = 50\n") as ts:
            flooder, other = "127.0.0.2", "127.0.0.3"
            rcodes, others = [], []
            for i in range(LIMIT + 10):
                # Over UDP and TCP alike, interleaved with another client's queries.
                rcodes.append(ask(ts, flooder, tcp=i % 3 == 2).rcode())
                if i % 3 == 0:
                    others.append(ask(ts, other).rcode())
            self.assertEqual(rcodes, [dns.rcode.NOERROR] * LIMIT + [dns.rcode.REFUSED] * 10)
            self.assertEqual(others, [dns.rcode.NOERROR] * len(others))
            # The refusal was noticed before it was sent: the line is there, and only once.
            self.assertIsNotNone(ts.wait_for_line(r"rate limit: 127\.0\.0\.2 sent more than 20 "
                                                  r"queries in 3600 s", 5))
            db = os.path.join(ts.dir.name, "q.db")
            self.assertEqual(ts.stop(), 0)
            self.assertEqual(len(notices(ts, "127.0.0.2")), 1, ts.output())
            self.assertEqual(notices(ts, "127.0.0.3"), [])
            st = ts.stats()
            self.assertEqual(st["ratelimited"], 10)
            self.assertEqual(st["refused"], 0)
            # Counted, not logged: the answered queries are rows, the refused ones a counter.
            with sqlite3.connect(db) as c:
                by_client = dict(c.execute("SELECT client, count(*) FROM queries GROUP BY client"))
                not_logged = c.execute("SELECT sum(not_logged) FROM counters").fetchone()[0]
            self.assertEqual(by_client, {"127.0.0.2": LIMIT, "127.0.0.3": len(others)})
            self.assertEqual(not_logged, 10)

    def test_reload_can_lift_the_limit(self):
        with self.serve() as ts:
            for _ in range(LIMIT):
                self.assertEqual(ask(ts, "127.0.0.4").rcode(), dns.rcode.NOERROR)
            self.assertEqual(ask(ts, "127.0.0.4").rcode(), dns.rcode.REFUSED)
            with open(ts.config_path, "w") as f:
                f.write("[server]\nthreads = 2\nrate_limit = 0\n")
            n = len(ts.lines)
            ts.send_signal(signal.SIGHUP)
            self.assertIsNotNone(ts.wait_for_line(r"reloaded", 10, n))
            for _ in range(5):
                self.assertEqual(ask(ts, "127.0.0.4").rcode(), dns.rcode.NOERROR)
        self.assertEqual(ts.returncode, 0)

    def test_devices_behind_a_trusted_forwarder_are_limited_one_by_one(self):
        # Every query comes from 127.0.0.1 (the "Pi-hole"), naming its device in Client Subnet.
        with self.serve("[log]\ntrusted_forwarders = 127.0.0.1\n") as ts:
            for _ in range(LIMIT):
                self.assertEqual(ask(ts, "127.0.0.1", ecs="192.168.1.10").rcode(),
                                 dns.rcode.NOERROR)
            self.assertEqual(ask(ts, "127.0.0.1", ecs="192.168.1.10").rcode(), dns.rcode.REFUSED)
            # Another device behind the same forwarder is still answered.
            for _ in range(5):
                self.assertEqual(ask(ts, "127.0.0.1", ecs="192.168.1.11").rcode(),
                                 dns.rcode.NOERROR)
            self.assertIsNotNone(ts.wait_for_line(r"rate limit: 192\.168\.1\.10 sent", 5))
        self.assertEqual(ts.returncode, 0)
        self.assertEqual(ts.stats()["ratelimited"], 1)


if __name__ == "__main__":
    unittest.main()

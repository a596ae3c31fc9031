"""Upstream faults: failover from a silent server, SERVFAIL in time when all are down, TC=1
retried over TCP, forged replies ignored while the genuine one is used, garbage replies."""
import socket
import time
import unittest

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from harness import (FakeUpstream, SilentUpstream, Telesink, dig, kdig, query_wire, udp_socket)

ZONE = {"www.example.test": {"A": ["192.0.2.10"]}}
NO_CACHE = "[server]\ncache_size = 0\n"  # every query must reach the (misbehaving) upstream


class Failover(unittest.TestCase):
    def test_silent_primary_fails_over(self):
        with SilentUpstream() as dead, FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[dead.addr, up.addr],
                         config="[upstream]\ntimeout_ms = 400\n[server]\nthreads = 1\n") as ts:
            t0 = time.monotonic()
            a = dig(ts.v4, "www.example.test")
            took = time.monotonic() - t0
            self.assertEqual(a.addresses(), ["192.0.2.10"], a.text)
            self.assertGreaterEqual(took, 0.35)  # it did wait for the silent one
            self.assertLess(took, 2.0)
            # The next question goes to the server that answered, without waiting.
            t0 = time.monotonic()
            a = kdig(ts.v4, "www.example.test", "AAAA")
            self.assertEqual(a.rcode, "NOERROR")
            self.assertLess(time.monotonic() - t0, 0.35)
        self.assertGreaterEqual(ts.stats()["upstream_timeouts"], 1)

    def test_all_down_servfail_within_5s(self):
        with SilentUpstream() as d1, SilentUpstream("::1") as d2, \
                Telesink(upstreams=[d1.addr, d2.addr]) as ts:
            for tcp in (False, True):
                t0 = time.monotonic()
                a = dig(ts.v4, "www.example.test", tcp=tcp)
                took = time.monotonic() - t0
                self.assertEqual(a.rcode, "SERVFAIL", a.text)
                self.assertGreaterEqual(took, 2.9)  # two tries of 1.5 s each
                self.assertLess(took, 5.0)

    def test_budget_caps_many_slow_servers(self):
        dead = [SilentUpstream() for _ in range(5)]
        try:
            with Telesink(upstreams=[d.addr for d in dead]) as ts:
                t0 = time.monotonic()
                a = dig(ts.v4, "www.example.test")
                self.assertEqual(a.rcode, "SERVFAIL")
                self.assertLess(time.monotonic() - t0, 5.0)
        finally:
            for d in dead:
                d.close()

    def test_servfail_from_one_server_tries_the_next(self):
        with FakeUpstream(zone=ZONE) as bad, FakeUpstream(zone=ZONE) as good, \
                Telesink(upstreams=[bad.addr, good.addr]) as ts:
            def servfail(u, q, wire, addr):
                r = dns.message.make_response(q)
                r.set_rcode(dns.rcode.SERVFAIL)
                return r.to_wire()
            bad.udp_handler = servfail
            a = dig(ts.v4, "www.example.test")
            self.assertEqual(a.addresses(), ["192.0.2.10"])
            self.assertEqual(len(bad.queries), 1)


class Truncation(unittest.TestCase):
    def test_tc_reply_is_retried_over_tcp(self):
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr], config=NO_CACHE) as ts:
            def truncated(u, q, wire, addr):
                r = dns.message.make_response(q)
                r.flags |= dns.flags.TC
                return r.to_wire()
            up.udp_handler = truncated
            for client in (dig, kdig):
                a = client(ts.v4, "www.example.test")
                self.assertEqual(a.addresses(), ["192.0.2.10"], a.text)
                self.assertNotIn("tc", a.flags)
            self.assertEqual([t for t, _, _ in up.queries], ["udp", "tcp"] * 2)

    def test_big_answer_cut_to_client_size(self):
        big = {"big.example.test": {"A": ["192.0.2.%d" % i for i in range(1, 41)]}}
        with FakeUpstream(zone=big) as up, Telesink(upstreams=[up.addr]) as ts:
            # No EDNS: 512 bytes; 40 A records do not fit: TC=1, no records.
            a = dig(ts.v4, "big.example.test", options=["+noedns", "+ignore"])
            self.assertIn("tc", a.flags, a.text)
            self.assertEqual(a.answers, [])
            # dig without +ignore retries over TCP by itself and gets everything.
            a = dig(ts.v4, "big.example.test", options=["+noedns"])
            self.assertEqual(len(a.addresses()), 40)
            # EDNS with a 1232-byte buffer: it fits over UDP.
            a = dig(ts.v4, "big.example.test", options=["+bufsize=1232", "+ignore"])
            self.assertNotIn("tc", a.flags)
            self.assertEqual(len(a.addresses()), 40)
            # An advertised size below 512 counts as 512.
            a = dig(ts.v4, "big.example.test", options=["+bufsize=100", "+ignore"])
            self.assertIn("tc", a.flags)


class Forgery(unittest.TestCase):
    def test_forged_replies_ignored_genuine_used(self):
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr], config=NO_CACHE) as ts:
            other_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            other_port.bind(("127.0.0.1", 0))
            other_addr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            other_addr.bind(("127.0.0.2", 0))

            def forging(u, q, wire, addr):
                def fake(ip, qid=None, name=None):
                    # make_response shares the question objects: build a new query to change it.
                    src = q if name is None else dns.message.make_query(name, "A")
                    r = dns.message.make_response(src)
                    r.id = q.id if qid is None else qid
                    r.answer.append(dns.rrset.from_text(r.question[0].name, 300, "IN", "A", ip))
                    return r.to_wire()
                other_port.sendto(fake("6.6.6.1"), addr)               # wrong source port
                other_addr.sendto(fake("6.6.6.2"), addr)               # wrong source address
                u.udp.sendto(fake("6.6.6.3", qid=(q.id + 1) & 0xFFFF), addr)  # wrong ID
                u.udp.sendto(fake("6.6.6.4", name="evil.example.test"), addr)  # wrong question
                u.udp.sendto(b"\x00" * 5, addr)                         # garbage
                return u.answer(q).to_wire()                            # the genuine reply
            up.udp_handler = forging
            for client in (dig, kdig):
                a = client(ts.v4, "www.example.test")
                self.assertEqual(a.addresses(), ["192.0.2.10"], a.text)
            other_port.close()
            other_addr.close()
        s = ts.stats()
        # The upstream socket is connected: the kernel drops datagrams from another address
        # or port before telesink sees them (bad_source counts only what gets past it).
        self.assertEqual(s["bad_source"], 0)
        self.assertGreaterEqual(s["mismatched"], 6)

    def test_malformed_matching_reply_is_servfail(self):
        with FakeUpstream(zone=ZONE) as up, Telesink(upstreams=[up.addr]) as ts:
            def broken(u, q, wire, addr):
                r = u.answer(q).to_wire()
                return r[:-2]  # the last record's RDATA cut short; header unchanged
            up.udp_handler = broken
            t0 = time.monotonic()
            a = dig(ts.v4, "www.example.test")
            self.assertEqual(a.rcode, "SERVFAIL")
            self.assertLess(time.monotonic() - t0, 1.0)  # no waiting for a timeout
        self.assertEqual(ts.stats()["malformed"], 1)


if __name__ == "__main__":
    unittest.main()

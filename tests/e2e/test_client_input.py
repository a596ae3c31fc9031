"""Bad client input costs one answer, never the process; strangers get REFUSED.

"Dropped" is shown without waiting for a timeout: a valid query sent after the bad one on the
same socket must be the first thing that comes back."""
import socket
import struct
import subprocess
import unittest

import dns.message
import dns.rcode

from harness import (FakeUpstream, Telesink, dig, framed, kdig, query_wire, recv_framed,
                     tcp_socket, udp_socket)

ZONE = {"www.example.test": {"A": ["192.0.2.10"]}}


def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


QUESTION = b"\x03www\x07example\x04test\x00\x00\x01\x00\x01"
OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"


class Malformed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = FakeUpstream(zone=ZONE)
        # The garbage flood is thousands of packets from one client: no rate limit here.
        cls.ts = Telesink(upstreams=[cls.up.addr], config="[server]\nrate_limit = 0\n").start()

    @classmethod
    def tearDownClass(cls):
        code = cls.ts.stop()
        cls.ts.proc.stdout.close()
        cls.ts.dir.cleanup()
        cls.up.close()
        assert code == 0, "telesink exited %r" % code

    def rcode_of(self, wire, tcp=False, server=None):
        server = server or self.ts.v4
        if tcp:
            with tcp_socket(server) as s:
                s.sendall(framed(wire))
                r = recv_framed(s)
        else:
            with udp_socket(server) as s:
                s.send(wire)
                r = s.recv(65535)
        self.assertGreaterEqual(len(r), 12)
        qid, flags = struct.unpack("!HH", r[:4])
        self.assertEqual(qid, struct.unpack("!H", wire[:2])[0])
        self.assertTrue(flags & 0x8000)
        self.assertFalse(flags & 0x0400, "AA must not be set")
        self.assertFalse(flags & 0x0040, "Z must not be echoed")
        return r, flags & 0x0F

    def assert_dropped(self, wire, tcp=False):
        good = query_wire("www.example.test", qid=0x7777)
        if tcp:
            with tcp_socket(self.ts.v4) as s:
                s.sendall(framed(wire) + framed(good))
                r = dns.message.from_wire(recv_framed(s))
        else:
            with udp_socket(self.ts.v4) as s:
                s.send(wire)
                s.send(good)
                r = dns.message.from_wire(s.recv(65535))
        self.assertEqual(r.id, 0x7777)

    def test_short_and_responses_are_dropped(self):
        for tcp in (False, True):
            self.assert_dropped(b"\x12\x34\x01", tcp)
            self.assert_dropped(header()[:11], tcp)
            self.assert_dropped(header(flags=0x8100) + QUESTION, tcp)  # QR=1

    def test_formerr(self):
        cases = {
            "no question": header(qd=0),
            "two questions": header(qd=2) + QUESTION + QUESTION,
            "cut name": header() + QUESTION[:9],
            "cut type": header() + QUESTION[:-2],
            "compressed qname": header() + b"\xc0\x0c\x00\x01\x00\x01",
            "answer in query": header(an=1) + QUESTION,
            "two additional": header(ar=2) + QUESTION + OPT + OPT,
            "tsig": header(ar=1) + QUESTION + b"\x03key\x00\x00\xfa\x00\xff" + b"\x00" * 6,
            "broken opt": header(ar=1) + QUESTION + OPT[:-2] + b"\x00\x08",
            "trailing bytes": header() + QUESTION + b"\xff\xff",
        }
        for name, wire in cases.items():
            for tcp in (False, True):
                with self.subTest(name, tcp=tcp):
                    raw, rcode = self.rcode_of(wire, tcp)
                    self.assertEqual(rcode, dns.rcode.FORMERR)
        # A question that was readable is echoed in the FORMERR.
        raw, _ = self.rcode_of(header(ar=2) + QUESTION + OPT + OPT)
        self.assertEqual(dns.message.from_wire(raw).question[0].name.to_text(), "www.example.test.")

    def test_notimp(self):
        for opcode in (1, 2, 4, 5):  # IQUERY, STATUS, NOTIFY, UPDATE
            raw, rcode = self.rcode_of(header(flags=opcode << 11) + QUESTION)
            self.assertEqual(rcode, dns.rcode.NOTIMP)
            self.assertEqual((struct.unpack("!H", raw[2:4])[0] >> 11) & 0xF, opcode)

    def test_badvers(self):
        for client in (dig, kdig):
            a = client(self.ts.v4, "www.example.test", options=["+edns=1", "+noednsneg"] if client is dig else ["+edns=1"])
            self.assertEqual(a.rcode, "BADVERS", a.text)

    def test_tsig_from_dig_is_formerr(self):
        a = dig(self.ts.v4, "www.example.test",
                options=["-y", "hmac-sha256:tsig-key:" + "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"])
        self.assertEqual(a.rcode, "FORMERR", a.text)

    def test_zone_transfer_refused(self):
        a = dig(self.ts.v4, "example.test", "AXFR")
        self.assertIn("Transfer failed", a.text)
        _, rcode = self.rcode_of(query_wire("example.test", "IXFR"), tcp=True)
        self.assertEqual(rcode, dns.rcode.REFUSED)

    def test_garbage_flood_then_still_serving(self):
        import random
        rnd = random.Random(42)
        with udp_socket(self.ts.v4) as s:
            for _ in range(2000):
                s.send(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 80))))
        with tcp_socket(self.ts.v4) as s:
            for _ in range(200):
                n = rnd.randrange(0, 60)
                s.sendall(framed(bytes(rnd.getrandbits(8) for _ in range(n))))
        for client in (dig, kdig):
            self.assertEqual(client(self.ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
        self.assertIsNone(self.ts.proc.poll())


class AccessControl(unittest.TestCase):
    def test_refused_outside_allow(self):
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr],
                         config="[server]\nallow = 127.0.0.2/32, ::1\n") as ts:
            for client in (dig, kdig):
                for tcp in (False, True):
                    a = client(ts.v4, "www.example.test", tcp=tcp)
                    self.assertEqual(a.rcode, "REFUSED", a.text)
            # Even malformed packets from strangers get only REFUSED.
            with udp_socket(ts.v4) as s:
                s.send(header(qd=0))
                r = s.recv(512)
                self.assertEqual(r[3] & 0x0F, dns.rcode.REFUSED)
            self.assertEqual(up.queries, [])  # nothing was forwarded for them
            a = dig(ts.v4, "www.example.test", options=["-b", "127.0.0.2"])
            self.assertEqual(a.addresses(), ["192.0.2.10"])
            a = dig(ts.v6, "www.example.test")
            self.assertEqual(a.addresses(), ["192.0.2.10"])
            # Only allowed clients' questions went upstream (the second may come from a cache).
            self.assertIn(len(up.queries), (1, 2))
        self.assertGreaterEqual(ts.stats()["refused"], 5)


if __name__ == "__main__":
    unittest.main()

"""Forwarding: dig and kdig over UDP and TCP, IPv4 and IPv6, to IPv4 and IPv6 upstreams, and
to a real dnsmasq as upstream; letter case echoed; pipelined TCP; identical questions coalesced;
a burst of upstream replies."""
import collections
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import dns.message

from harness import (FakeUpstream, Telesink, dig, framed, free_port_pair, kdig, query_wire,
                     recv_framed, tcp_socket, udp_socket)

ZONE = {"www.example.test": {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"]},
        "mixed.example.test": {"A": ["192.0.2.11"]}}


class Forwarding(unittest.TestCase):
    def test_dig_and_kdig_udp_tcp_v4_v6(self):
        with FakeUpstream(zone=ZONE) as up, Telesink(upstreams=[up.addr]) as ts:
            for server in (ts.v4, ts.v6):
                for client in (dig, kdig):
                    for tcp in (False, True):
                        with self.subTest(server=server, client=client.__name__, tcp=tcp):
                            a = client(server, "www.example.test", "A", tcp=tcp)
                            self.assertEqual(a.rcode, "NOERROR", a.text)
                            self.assertEqual(a.addresses(), ["192.0.2.10"])
                            self.assertIn("ra", a.flags)
                            a = client(server, "www.example.test", "AAAA", tcp=tcp)
                            self.assertEqual(a.addresses(), ["2001:db8::10"])
                            a = client(server, "nope.example.test", "A", tcp=tcp)
                            self.assertEqual(a.rcode, "NXDOMAIN")
                            self.assertNotIn("tc", a.flags)
                            self.assertEqual(a.answers, [])
            # The upstream saw TCP queries from clients only as UDP: we forward over UDP.
            self.assertTrue(all(t == "udp" for t, _, _ in up.queries))
        self.assertEqual(ts.returncode, 0)

    def test_ipv6_upstream(self):
        with FakeUpstream(host="::1", zone=ZONE) as up, Telesink(upstreams=[up.addr]) as ts:
            a = dig(ts.v4, "www.example.test")
            self.assertEqual(a.addresses(), ["192.0.2.10"])
            self.assertEqual(len(up.queries), 1)

    def test_letter_case_echoed(self):
        with FakeUpstream(zone=ZONE) as up, Telesink(upstreams=[up.addr]) as ts:
            a = dig(ts.v4, "MiXeD.ExAmPle.TeSt")
            self.assertEqual(a.addresses(), ["192.0.2.11"])
            self.assertEqual(a.question, "MiXeD.ExAmPle.TeSt.")
            # Upstream gets a fresh ID with RD set and our EDNS size, not the client's.
            _, q, _ = up.queries[0]
            self.assertTrue(q.flags & dns.flags.RD)
            self.assertEqual(q.payload, 1232)

    def test_upstream_query_has_random_id_and_port(self):
        # Tries share a connected socket for at most 100 queries, then a fresh one on a new
        # kernel-random port; every query has its own random ID (not the client's).
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr], config="[server]\nthreads = 1\n") as ts:
            with udp_socket(ts.v4) as s:
                for i in range(250):
                    s.send(query_wire("n%d.example.test" % i, qid=0x4242))
                    r = dns.message.from_wire(s.recv(65535))
                    self.assertEqual(r.id, 0x4242)
            ids = [q.id for _, q, _ in up.queries]
            ports = collections.Counter(addr[1] for _, _, addr in up.queries)
            self.assertEqual(len(ids), 250)
            self.assertNotIn(0x4242, ids)
            self.assertGreaterEqual(len(set(ids)), 240)  # 16 random bits: a few repeats at most
            self.assertEqual(sorted(ports.values()), [50, 100, 100])
            print("\n250 upstream queries: %d distinct IDs, ports %s"
                  % (len(set(ids)), sorted(ports)))

    def test_tcp_pipelined(self):
        with FakeUpstream(zone=ZONE) as up, Telesink(upstreams=[up.addr]) as ts:
            with tcp_socket(ts.v4) as s:
                names = ["www.example.test", "mixed.example.test", "nope.example.test"] * 4
                s.sendall(b"".join(framed(query_wire(n, qid=100 + i)) for i, n in enumerate(names)))
                got = {}
                for _ in names:
                    r = dns.message.from_wire(recv_framed(s))
                    got[r.id] = r
                self.assertEqual(sorted(got), list(range(100, 100 + len(names))))
                for i, n in enumerate(names):
                    self.assertEqual(got[100 + i].question[0].name.to_text(True), n)
                    want = 3 if n.startswith("nope") else 0
                    self.assertEqual(got[100 + i].rcode(), want)

    def test_identical_questions_go_upstream_once(self):
        release = threading.Event()
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr], config="[server]\nthreads = 1\n") as ts:
            def held(u, q, wire, addr):
                if q.question[0].name.to_text(True) == "www.example.test":
                    release.wait(10)
                return u.answer(q).to_wire()
            up.udp_handler = held
            clients = [udp_socket(ts.v4) for _ in range(5)]
            for i, c in enumerate(clients):
                c.send(query_wire("WWW.example.test", qid=1000 + i))
            # A later question proves telesink has read the five before it (one loop, in order).
            threading.Thread(target=lambda: dig(ts.v4, "mixed.example.test"), daemon=True).start()
            self.assertEqual(len(up.wait_queries(1, name="www.example.test")), 1)
            release.set()
            for i, c in enumerate(clients):
                r = dns.message.from_wire(c.recv(65535))
                self.assertEqual(r.id, 1000 + i)
                self.assertEqual(r.answer[0][0].address, "192.0.2.10")
                c.close()
            self.assertEqual(len([x for x in up.queries
                                  if x[1].question[0].name.to_text(True) == "www.example.test"]), 1)
        self.assertEqual(ts.stats()["coalesced"], 4)

    def test_replies_in_a_burst_reach_their_clients(self):
        """Forty questions held upstream, then answered back to back: telesink reads the replies
        several to a system call and sends their answers together, per listening socket; every
        client gets its own answer."""
        n = 40
        zone = {"b%d.example.test" % i: {"A": ["192.0.2.%d" % (i + 1)]} for i in range(n)}
        held, lock = [], threading.Lock()
        with FakeUpstream(zone=zone) as up, \
                Telesink(upstreams=[up.addr], config="[server]\nthreads = 1\n") as ts:
            def hold(u, q, wire, addr):
                with lock:
                    held.append((u.answer(q).to_wire(), addr))
                    if len(held) < n:
                        return None
                for out, a in held:
                    u.udp.sendto(out, a)
                return None
            up.udp_handler = hold
            clients = []
            for i in range(n):
                c = udp_socket(ts.v4 if i % 2 == 0 else ts.v6)
                c.send(query_wire("b%d.example.test" % i, qid=2000 + i))
                clients.append(c)
            for i, c in enumerate(clients):
                r = dns.message.from_wire(c.recv(65535))
                self.assertEqual(r.id, 2000 + i)
                self.assertEqual(r.question[0].name.to_text(True), "b%d.example.test" % i)
                self.assertEqual(r.answer[0][0].address, "192.0.2.%d" % (i + 1))
                c.close()
            self.assertEqual(len(up.queries), n)


class Cache(unittest.TestCase):
    def test_second_query_from_cache_with_lower_ttl(self):
        with FakeUpstream(zone=ZONE, ttl=300) as up, \
                Telesink(upstreams=[up.addr], config="[server]\nthreads = 1\n") as ts:
            a = dig(ts.v4, "www.example.test")
            self.assertEqual(a.ttls(), [300])
            # TTLs count whole seconds: let a little more than one pass (the behaviour under
            # test is the passing of time, not a readiness wait).
            time.sleep(1.2)
            for client, tcp in ((dig, False), (kdig, True)):
                a = client(ts.v4, "WWW.example.TEST", tcp=tcp)
                self.assertEqual(a.addresses(), ["192.0.2.10"])
                self.assertTrue(1 <= 300 - a.ttls()[0] <= 3, a.ttls())
                if client is dig:
                    self.assertEqual(a.question, "WWW.example.TEST.")  # the client's case
            self.assertEqual(len(up.queries), 1)
        s = ts.stats()
        self.assertEqual(s["cached"], 2)
        self.assertEqual(s["forwarded"], 1)

    def test_cache_off(self):
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr], config="[server]\nthreads = 1\ncache_size = 0\n") as ts:
            for _ in range(3):
                self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
            self.assertEqual(len(up.queries), 3)


@unittest.skipUnless(shutil.which("dnsmasq"), "dnsmasq is installed by contrib/setup")
class RealUpstream(unittest.TestCase):
    def test_dnsmasq_as_upstream(self):
        u, t, port = free_port_pair("127.0.0.1")
        u.close()
        t.close()
        with tempfile.TemporaryDirectory() as d:
            dm = subprocess.Popen(
                ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                 "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
                 "--port=%d" % port, "--host-record=real.example.test,192.0.2.77",
                 "--pid-file=" + d + "/pid", "--log-facility=-"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                # dnsmasq is ready when it answers.
                deadline = 50
                while deadline and dig(("127.0.0.1", port), "real.example.test").rcode != "NOERROR":
                    deadline -= 1
                with Telesink(upstreams=["127.0.0.1:%d" % port]) as ts:
                    for client in (dig, kdig):
                        a = client(ts.v4, "real.example.test")
                        self.assertEqual(a.addresses(), ["192.0.2.77"])
                        a = client(ts.v6, "real.example.test", tcp=True)
                        self.assertEqual(a.addresses(), ["192.0.2.77"])
            finally:
                dm.terminate()
                dm.wait(5)


if __name__ == "__main__":
    unittest.main()

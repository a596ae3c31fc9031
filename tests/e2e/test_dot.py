"""DNS over TLS, the server side (issue 9): telesink as an Android "Private DNS" server.

The test makes its own CA and a wildcard certificate for *.dns.example.test with the openssl
CLI, starts telesink with tls_listen on 127.0.0.1:0 and [::1]:0, and queries it with
`kdig +tls`, `openssl s_client` and Python's ssl module: blocked and forwarded answers and their
log rows as over UDP, the device named by its SNI (in the log and in `telesink report`),
pipelining, TLS 1.2 and 1.3, idle and handshake timeouts, garbage, the connection cap, a renewed
certificate on SIGHUP, and the configuration errors. Nothing sleeps: the harness waits for the
`ready:` line and log lines, sockets wait for the server to close them, and a reload is
confirmed by the certificate a new connection gets.
"""
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

import dns.message
import dns.rcode

from harness import (BIN, Answer, FakeUpstream, Telesink, TestCA, dig, dot_exchange, dot_socket,
                     framed, query_wire, recv_framed, tcp_socket)

HOST = "redmi.dns.example.test"  # the phone's Private DNS hostname
BLOCKED = "tracker-example.test"
EDE = "EDE: 15 (Blocked): 'blocked by telesink: Testvendor (test)'"
ZONE = {"www.example.test": {"A": ["192.0.2.10"]}}
TEST_LIST = """# vendor: Testvendor
# category: telemetry
# description: the DoT tests' list
tracker-example.test      # source: test
"""
IDLE_MS = 300


def answer(wire):
    return dns.message.from_wire(wire)


def rows(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return con.execute("SELECT client, client_name, qname, status, rcode, vendor FROM queries "
                           "ORDER BY id").fetchall()
    finally:
        con.close()


def wait_closed(sock, timeout=5.0):
    """Read until the peer closes (EOF, a reset or a TLS close); returns seconds waited."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    return time.monotonic() - start


def client_hello(sni=HOST):
    """The bytes of a real ClientHello (made in memory by Python's ssl)."""
    ctx = ssl.create_default_context()
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class DoTCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ca = TestCA()
        cls.cert = cls.ca.issue("server", ["*.dns.example.test"], 0x1001)
        # The renewal also names the bare domain, as a second wildcard-less name.
        cls.renewed = cls.ca.issue("renewed", ["*.dns.example.test", "dns.example.test"], 0x1002)
        cls.lists = tempfile.mkdtemp(prefix="telesink-dot-lists-")
        with open(os.path.join(cls.lists, "test.list"), "w") as f:
            f.write(TEST_LIST)

    @classmethod
    def tearDownClass(cls):
        cls.ca.close()
        shutil.rmtree(cls.lists, True)

    def setUp(self):
        self.up = FakeUpstream(zone=ZONE)
        self.addCleanup(self.up.close)
        self.work = tempfile.mkdtemp(prefix="telesink-dot-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.db = os.path.join(self.work, "q.db")

    def serve(self, server="", clients="", cert=None):
        cert, key = cert or self.cert
        config = ("[server]\ntls_listen = 127.0.0.1:0, [::1]:0\ntls_cert = %s\ntls_key = %s\n%s\n"
                  "[lists]\npaths = %s\n[log]\nflush_ms = 50\n" % (cert, key, server, self.lists))
        if clients:
            config += "[clients]\n%s\n" % clients
        return Telesink(upstreams=[self.up.addr], config=config, args=["--db", self.db])

    def kdig_tls(self, server, name, host=HOST):
        out = subprocess.run(["kdig", "@" + server[0], "-p", str(server[1]), "+tls",
                              "+tls-ca=" + self.ca.pem, "+tls-hostname=" + host, name, "A",
                              "+retry=0", "+timeout=6"], capture_output=True, text=True, timeout=10)
        return Answer(out.stdout + out.stderr)

    def s_client(self, server, sni, wire, extra=()):
        """One framed query through `openssl s_client`: (answer bytes, rc, stderr)."""
        host = "[%s]" % server[0] if ":" in server[0] else server[0]
        p = subprocess.Popen(["openssl", "s_client", "-connect", "%s:%d" % (host, server[1]),
                              "-servername", sni, "-CAfile", self.ca.pem, "-verify_return_error",
                              "-brief"] + list(extra),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            p.stdin.write(framed(wire))
            p.stdin.flush()
            head = p.stdout.read(2)
            got = p.stdout.read(struct.unpack("!H", head)[0]) if len(head) == 2 else None
            p.stdin.close()  # s_client sends close_notify and exits
            err = p.stderr.read().decode()
            return got, p.wait(10), err
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()

    def report(self):
        out = subprocess.run([BIN, "report", "--db", self.db, "--format", "json"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return {c["name"] or c["client"]: c for c in json.loads(out.stdout)["clients"]}


class Answers(DoTCase):
    def test_kdig_blocked_and_forwarded_logged_as_over_udp(self):
        with self.serve(server="cache_size = 0") as ts:  # every allowed query goes upstream
            ready = ts.wait_for_line(r"ready: ")
            self.assertIn("(udp, tcp); dot 127.0.0.1:%d [::1]:%d; upstreams"
                          % (ts.dot4[1], ts.dot6[1]), ready)
            for server in (ts.dot4, ts.dot6):
                a = self.kdig_tls(server, BLOCKED)
                self.assertEqual(a.rcode, "NXDOMAIN", a.text)
                self.assertIn(EDE, a.text)
                self.assertIn("TLS session", a.text)
                a = self.kdig_tls(server, "www.example.test")
                self.assertEqual(a.addresses(), ["192.0.2.10"], a.text)
            self.assertEqual(len(self.up.wait_queries(2, name="www.example.test")), 2)
            # The same two questions over UDP, for comparison.
            self.assertEqual(dig(ts.v4, BLOCKED).rcode, "NXDOMAIN")
            self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
            self.assertEqual(ts.stop(), 0)  # SIGTERM flushes the log
            stats = ts.stats()
        self.assertEqual(stats["tls_accepted"], 4)
        self.assertEqual(stats["tls_failed"], 0)
        got = rows(self.db)
        dot = [(BLOCKED, "blocked", "NXDOMAIN", "Testvendor"),
               ("www.example.test", "forwarded", "NOERROR", None)]
        self.assertEqual(got[:4], [("127.0.0.1", "redmi") + r for r in dot] +
                         [("::1", "redmi") + r for r in dot])
        self.assertEqual(got[4:], [("127.0.0.1", None) + r for r in dot])  # UDP: no name
        # The report groups the phone by its name, over both of its addresses.
        devices = self.report()
        self.assertEqual((devices["redmi"]["queries"], devices["redmi"]["blocked"]), (4, 2))
        self.assertEqual(sorted(devices["redmi"]["addresses"]), ["127.0.0.1", "::1"])
        self.assertEqual(devices["127.0.0.1"]["queries"], 2)

    def test_s_client_handshake_and_query(self):
        with self.serve() as ts:
            for server in (ts.dot4, ts.dot6):
                got, rc, err = self.s_client(server, HOST, query_wire(BLOCKED, qid=0x1234))
                self.assertEqual(rc, 0, err)
                for line in ("CONNECTION ESTABLISHED", "Verification: OK",
                             "Peer certificate: CN = *.dns.example.test"):
                    self.assertIn(line, err)
                m = answer(got)
                self.assertEqual((m.id, m.rcode()), (0x1234, dns.rcode.NXDOMAIN))
                got, rc, err = self.s_client(server, HOST, query_wire("www.example.test"))
                self.assertEqual(rc, 0, err)
                self.assertEqual(answer(got).answer[0][0].to_text(), "192.0.2.10")
            # A client that does not trust our CA gives up (s_client verifies the chain).
            other = TestCA("some other CA")
            self.addCleanup(other.close)
            p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % ts.dot4[1],
                                "-servername", HOST, "-CAfile", other.pem, "-verify_return_error",
                                "-brief"], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=10)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("unable to get local issuer certificate", p.stdout + p.stderr)
            self.assertEqual(ts.stop(), 0)

    def test_pipelined_100_queries_on_one_connection(self):
        for i in range(50):
            self.up.zone["h%d.example.test" % i] = {"A": ["192.0.2.%d" % (i + 1)]}
        with self.serve() as ts:
            s = dot_socket(ts.dot4, self.ca.pem, HOST)
            sent = {}
            wire = b""
            for i in range(100):  # forwarded and blocked alternate, forwarded first
                name = "h%d.example.test" % (i // 2) if i % 2 == 0 else "n%d.%s" % (i, BLOCKED)
                sent[1000 + i] = name
                wire += framed(query_wire(name, qid=1000 + i))
            s.sendall(wire)  # one write: all 100 in flight at once (beyond the 64 per connection)
            order = []
            for _ in range(100):
                m = answer(recv_framed(s))
                order.append(m.id)
                name = sent[m.id]
                self.assertEqual(m.question[0].name.to_text(True), name)
                if "tracker" in name:
                    self.assertEqual(m.rcode(), dns.rcode.NXDOMAIN)
                else:
                    i = int(name[1:name.index(".")])
                    self.assertEqual(m.answer[0][0].to_text(), "192.0.2.%d" % (i + 1))
            self.assertEqual(sorted(order), sorted(sent))
            # Answers go out as they are ready: the blocked second query before the first.
            self.assertEqual(order[0], 1001)
            self.assertNotEqual(order, sorted(order))
            s.close()
            self.assertEqual(ts.stop(), 0)

    def test_tls12_and_tls13(self):
        with self.serve() as ts:
            for version in ("1.2", "1.3"):
                for server in (ts.dot4, ts.dot6):
                    with dot_socket(server, self.ca.pem, HOST, tls_version=version) as s:
                        self.assertEqual(s.version(), "TLSv" + version)
                        m = answer(dot_exchange(s, query_wire(BLOCKED, qid=7)))
                        self.assertEqual((m.id, m.rcode()), (7, dns.rcode.NXDOMAIN))
                        m = answer(dot_exchange(s, query_wire("www.example.test", qid=8)))
                        self.assertEqual(m.answer[0][0].to_text(), "192.0.2.10")
            # Stopping with a session open and a handshake half done frees both (ASan build).
            with dot_socket(ts.dot4, self.ca.pem, HOST) as s, tcp_socket(ts.dot6) as half:
                half.sendall(client_hello()[:20])
                self.assertIsNotNone(dot_exchange(s, query_wire(BLOCKED)))
                self.assertEqual(ts.stop(), 0)


class Names(DoTCase):
    def test_device_named_by_sni(self):
        # 127.0.0.1 has a [clients] name; the SNI's name wins over it.
        with self.serve(clients="127.0.0.1 = laptop") as ts:
            cases = [  # (server, SNI, qname, the name logged)
                (ts.dot4, HOST, "q1.example.test", "redmi"),
                (ts.dot6, HOST, "q2.example.test", "redmi"),
                (ts.dot4, "Pixel-7.DNS.Example.Test", "q3.example.test", "pixel-7"),
                (ts.dot4, "a.b.dns.example.test", "q4.example.test", "laptop"),  # two labels
                (ts.dot4, "dns.example.test", "q5.example.test", "laptop"),  # no label
                (ts.dot4, "bad_label.dns.example.test", "q6.example.test", "laptop"),
                (ts.dot4, "redmi.other.test", "q7.example.test", "laptop"),  # not our wildcard
                (ts.dot6, "redmi.other.test", "q8.example.test", None),
            ]
            for server, sni, qname, _ in cases:
                # s_client sends the SNI as given (Python's ssl would lower-case it).
                got, rc, err = self.s_client(server, sni, query_wire(qname))
                self.assertIsNotNone(got, err)
                self.assertEqual(answer(got).rcode(), dns.rcode.NXDOMAIN)
            with dot_socket(ts.dot4, self.ca.pem, None) as s:  # no SNI at all
                dot_exchange(s, query_wire("q9.example.test"))
            self.assertEqual(ts.stop(), 0)
        names = {r[2]: r[1] for r in rows(self.db)}
        for _, sni, qname, name in cases:
            self.assertEqual(names[qname], name, sni)
        self.assertEqual(names["q9.example.test"], "laptop")
        devices = self.report()
        self.assertEqual(devices["redmi"]["queries"], 2)
        self.assertEqual(devices["pixel-7"]["queries"], 1)
        self.assertEqual(devices["laptop"]["queries"], 5)


class Limits(DoTCase):
    def test_idle_connection_and_stalled_handshake_are_closed(self):
        with self.serve(server="tcp_idle_timeout_ms = %d" % IDLE_MS) as ts:
            for server in (ts.dot4, ts.dot6):
                # Connected, never a byte.
                with tcp_socket(server) as s:
                    waited = wait_closed(s)
                    self.assertGreaterEqual(waited, IDLE_MS / 1000 * 0.8)
                    self.assertLess(waited, 4)
                # A ClientHello, then silence: the handshake never completes.
                with tcp_socket(server) as s:
                    s.sendall(client_hello())
                    self.assertLess(wait_closed(s), 4)
                # A handshake done, one query, then idle: closed (with close_notify).
                s = dot_socket(server, self.ca.pem, HOST, ragged_eof_ok=False)
                self.assertIsNotNone(dot_exchange(s, query_wire(BLOCKED)))
                start = time.monotonic()
                s.settimeout(5)
                self.assertEqual(s.recv(100), b"")  # close_notify (else SSLEOFError)
                self.assertGreaterEqual(time.monotonic() - start, IDLE_MS / 1000 * 0.8)
                s.close()
            # A ClientHello trickled in a byte at a time: the idle timer is not restarted by
            # handshake bytes, so the connection goes after IDLE_MS however busy the trickle.
            hello = client_hello()
            with tcp_socket(ts.dot4) as s:
                start = time.monotonic()
                s.settimeout(IDLE_MS / 1000 / 6)
                closed = False
                for b in hello:
                    try:
                        s.sendall(bytes([b]))
                        closed = s.recv(4096) == b""
                    except socket.timeout:
                        continue
                    except (BrokenPipeError, ConnectionResetError):
                        closed = True
                    if closed:
                        break
                self.assertTrue(closed)
                self.assertLess(time.monotonic() - start, IDLE_MS / 1000 * 4)
            # Still serving.
            self.assertEqual(self.kdig_tls(ts.dot4, BLOCKED).rcode, "NXDOMAIN")
            self.assertEqual(ts.stop(), 0)

    def test_garbage_instead_of_client_hello(self):
        with self.serve() as ts:
            junk = [b"GET / HTTP/1.1\r\nHost: dns.example.test\r\n\r\n",
                    b"\x16\x03\x01\x00\x05hello" + b"\x00" * 100,  # a record that is no hello
                    framed(query_wire(BLOCKED))]  # plain DNS on the DoT port
            for data in junk:
                with tcp_socket(ts.dot4) as s:
                    s.sendall(data)
                    self.assertLess(wait_closed(s), 4)
            # The server keeps serving, DoT and plain DNS.
            with dot_socket(ts.dot4, self.ca.pem, HOST) as s:
                self.assertEqual(answer(dot_exchange(s, query_wire(BLOCKED))).rcode(),
                                 dns.rcode.NXDOMAIN)
            self.assertEqual(dig(ts.v4, BLOCKED).rcode, "NXDOMAIN")
            self.assertEqual(ts.stop(), 0)
            self.assertEqual(ts.stats()["tls_failed"], 3)

    def test_rate_limit_and_cache_shared_with_udp(self):
        # The same query path: one client's budget covers UDP and DoT; the cache (one per
        # serving thread) is shared.
        with self.serve(server="threads = 1\nrate_limit = 6/60") as ts:
            self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
            with dot_socket(ts.dot4, self.ca.pem, HOST) as s:
                codes = [answer(dot_exchange(s, query_wire(n, qid=i))).rcode()
                         for i, n in enumerate(["www.example.test"] + [BLOCKED] * 5)]
            self.assertEqual(codes, [dns.rcode.NOERROR] + [dns.rcode.NXDOMAIN] * 4 +
                             [dns.rcode.REFUSED])
            self.assertEqual(dig(ts.v4, BLOCKED).rcode, "REFUSED")
            self.assertEqual(len(self.up.queries), 1)  # the DoT query came from the cache
            self.assertEqual(ts.stop(), 0)
            self.assertEqual(ts.stats()["ratelimited"], 2)
        self.assertEqual([r[1:4] for r in rows(self.db)][:2],
                         [(None, "www.example.test", "forwarded"),
                          ("redmi", "www.example.test", "cached")])

    def test_connection_cap(self):
        with self.serve(server="threads = 1\ntls_max_connections = 2\ntcp_max_connections = 1") as ts:
            held = [dot_socket(ts.dot4, self.ca.pem, HOST) for _ in range(2)]
            for s in held:  # both are open and answered
                self.assertIsNotNone(dot_exchange(s, query_wire(BLOCKED)))
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                dot_socket(ts.dot6, self.ca.pem, HOST).close()
            # Plain TCP has a cap of its own, not taken by DoT.
            with tcp_socket(ts.v4) as s:
                self.assertIsNotNone(dot_exchange(s, query_wire(BLOCKED)))
            # One leaves: a new connection gets in once the server has seen it go.
            held.pop().close()
            deadline = time.monotonic() + 5
            while True:
                try:
                    with dot_socket(ts.dot4, self.ca.pem, HOST) as s:
                        self.assertIsNotNone(dot_exchange(s, query_wire(BLOCKED)))
                    break
                except (ssl.SSLError, ConnectionError, OSError):
                    self.assertLess(time.monotonic(), deadline)
            self.assertIsNotNone(dot_exchange(held[0], query_wire(BLOCKED)))
            held[0].close()
            self.assertEqual(ts.stop(), 0)
            stats = ts.stats()
            self.assertGreaterEqual(stats["tls_refused"], 1)
            self.assertEqual(stats["tcp_refused"], 0)


class Reload(DoTCase):
    def serial(self, server, sni=HOST):
        with dot_socket(server, self.ca.pem, sni) as s:
            return s.getpeercert()["serialNumber"]

    def s_client_serial(self, server):
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % server[1],
                            "-servername", HOST, "-CAfile", self.ca.pem, "-verify_return_error"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        x = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=p.stdout,
                           capture_output=True, timeout=10)
        return x.stdout.decode().strip()

    def test_sighup_serves_renewed_certificate(self):
        cert, key = os.path.join(self.work, "cert.pem"), os.path.join(self.work, "key.pem")
        shutil.copy(self.cert[0], cert)
        shutil.copy(self.cert[1], key)
        with self.serve(cert=(cert, key)) as ts:
            self.assertEqual(self.serial(ts.dot4), "1001")
            old = dot_socket(ts.dot6, self.ca.pem, HOST)
            self.assertEqual(old.getpeercert()["serialNumber"], "1001")
            self.assertIsNotNone(dot_exchange(old, query_wire(BLOCKED)))
            # certbot renews: new files at the same paths, then `systemctl reload telesink`.
            shutil.copy(self.renewed[0], cert)
            shutil.copy(self.renewed[1], key)
            mark = len(ts.lines)
            ts.send_signal(signal.SIGHUP)
            self.assertIsNotNone(ts.wait_for_line(r"certificate %s: .*serial 1002" % cert,
                                                  start=mark), ts.output())
            # The workers take it over at their next turn of the loop.
            deadline = time.monotonic() + 5
            while self.serial(ts.dot4) != "1002":
                self.assertLess(time.monotonic(), deadline)
            self.assertEqual(self.serial(ts.dot6), "1002")
            self.assertEqual(self.s_client_serial(ts.dot4), "serial=1002")
            # The connection made before the reload keeps its session and certificate.
            m = answer(dot_exchange(old, query_wire("www.example.test", qid=99)))
            self.assertEqual((m.id, m.answer[0][0].to_text()), (99, "192.0.2.10"))
            self.assertEqual(old.getpeercert()["serialNumber"], "1001")
            # A bad renewal (key of the old certificate; then no certificate at all) is
            # refused with the file and the reason; the last good one is still served.
            for bad_cert, bad_key, why in ((self.renewed[0], self.cert[1], "key values mismatch"),
                                           (None, self.renewed[1], "No such file or directory")):
                if bad_cert:
                    shutil.copy(bad_cert, cert)
                else:
                    os.unlink(cert)
                shutil.copy(bad_key, key)
                mark = len(ts.lines)
                ts.send_signal(signal.SIGHUP)
                self.assertIsNotNone(ts.wait_for_line(r"reload: still serving the previous "
                                                      r"certificate", start=mark), ts.output())
                self.assertIsNotNone(ts.wait_for_line(r"error \[tls\] .*(cert|key)\.pem: .*" + why,
                                                      start=mark), ts.output())
                self.assertEqual(self.serial(ts.dot4), "1002")
            self.assertIsNotNone(dot_exchange(old, query_wire(BLOCKED)))
            old.close()
            self.assertEqual(ts.stop(), 0)


class Config(DoTCase):
    def run_serve(self, server):
        conf = os.path.join(self.work, "t.conf")
        with open(conf, "w") as f:
            f.write("[server]\n" + server)
        # No --listen: it would replace the file's (the overlap case); every case stops before
        # binding anything.
        p = subprocess.run([BIN, "serve", "--config", conf, "--upstream", self.up.addr, "--db",
                            self.db],
                           capture_output=True, text=True, timeout=20)
        return p.returncode, p.stderr, conf

    def test_errors(self):
        cert, key = self.cert
        missing = os.path.join(self.work, "missing.pem")
        garbage = os.path.join(self.work, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        cases = [
            ("threads = 1\ntls_listen = 127.0.0.1:0\ntls_cert = %s\n" % cert,
             "t.conf:3: tls_listen needs tls_cert and tls_key"),
            ("tls_listen = 127.0.0.1:853 bogus\n", "t.conf:2: tls_listen: 'bogus' is not ADDR"),
            ("tls_max_connections = 0\n", "t.conf:2: tls_max_connections: '0' is not 1-65536"),
            ("listen = 127.0.0.1:5399\ntls_listen = 127.0.0.1:5399\ntls_cert = %s\ntls_key = %s\n"
             % (cert, key), "t.conf:3: tls_listen 127.0.0.1:5399 takes the TCP port of a listen"),
            ("tls_listen = 127.0.0.1:0\ntls_cert = %s\ntls_key = %s\n" % (missing, key),
             missing + ": No such file or directory"),
            ("tls_listen = 127.0.0.1:0\ntls_cert = %s\ntls_key = %s\n" % (garbage, key),
             garbage + ": "),
            ("tls_listen = 127.0.0.1:0\ntls_cert = %s\ntls_key = %s\n" % (cert, self.renewed[1]),
             self.renewed[1] + ": key values mismatch"),
        ]
        for server, message in cases:
            rc, err, conf = self.run_serve(server)
            self.assertEqual(rc, 2, err)
            self.assertIn(message.replace("t.conf", conf), err)
            self.assertNotIn("ready:", err)


if __name__ == "__main__":
    unittest.main()

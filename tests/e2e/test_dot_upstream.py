"""DNS over TLS upstreams (`servers = tls://ADDR[:PORT]#NAME`, `tls_ca`).

A real unbound started here serves DNS over TLS on loopback (`tls-port`, `tls-service-pem`,
`local-zone ... redirect`: every name under test.example is 192.0.2.10, no internet needed) with a
certificate from a test CA that `openssl` makes here. Against it: answers, many concurrent
queries over few connections, a wrong name and an untrusted CA refused (SERVFAIL, or failover to
the next server, and a log line saying why), unbound stopped or frozen mid-run and back again.
A fake DoT server (Python's ssl module) misbehaves: never finishes the handshake, sends garbage
inside or outside TLS, closes after the first answer (with and without close_notify)."""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import dns.message
import dns.rcode
import dns.rrset

from harness import (BIN, FakeUpstream, Telesink, dig, free_port_pair, kdig, query_wire,
                     recv_framed, udp_socket)

UNBOUND = shutil.which("unbound") or shutil.which("unbound", path="/usr/sbin:/usr/local/sbin")
UNBOUND_CONTROL = (shutil.which("unbound-control")
                   or shutil.which("unbound-control", path="/usr/sbin:/usr/local/sbin"))
NAME = "dns.test.example"
ANSWER = "192.0.2.10"  # unbound's answer for every name under test.example
PLAIN = "192.0.2.99"  # the plain (UDP) fallback server's answer
PLAIN_ZONE = {n: {"A": [PLAIN]} for n in ("plain.test.example", "first.test.example",
                                           "second.test.example")}


def plain_upstream():
    """A plain DNS server for the names of PLAIN_ZONE; REFUSED for the rest, so that a client
    asking another name gets the next server's answer (or SERVFAIL), never a final NXDOMAIN."""
    up = FakeUpstream(zone=PLAIN_ZONE)

    def refuse_others(u, q, wire, addr):
        if q.question[0].name.to_text(True).lower() in u.zone:
            return u.answer(q).to_wire()
        r = dns.message.make_response(q)
        r.set_rcode(dns.rcode.REFUSED)
        return r.to_wire()
    up.udp_handler = refuse_others
    return up


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Pki:
    """A test CA and a server certificate for dns.test.example it signed; another CA (not
    trusted by the tests) and a certificate for the same name it signed."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="telesink-dot-pki-")
        d = self.tmp.name
        self.ca, self.ca_key = self.make_ca("ca", "telesink test CA")
        self.other_ca, self.other_ca_key = self.make_ca("other-ca", "some other CA")
        self.cert, self.key = self.make_leaf("server", self.ca, self.ca_key)
        self.rogue_cert, self.rogue_key = self.make_leaf("rogue", self.other_ca, self.other_ca_key)
        self.empty = os.path.join(d, "empty.pem")
        open(self.empty, "w").close()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def make_ca(self, stem, cn):
        cert, key = self.path(stem + ".pem"), self.path(stem + ".key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return cert, key

    def make_leaf(self, stem, ca, ca_key):
        cert, key, csr, ext = (self.path(stem + s) for s in (".pem", ".key", ".csr", ".ext"))
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % NAME)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + NAME)
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                "-out", cert, "-days", "2", "-extfile", ext)
        return cert, key


PKI = None


def setUpModule():
    global PKI
    if UNBOUND and shutil.which("openssl"):
        PKI = Pki()


def tearDownModule():
    if PKI:
        PKI.tmp.cleanup()


class Unbound:
    """unbound serving DNS over TLS on 127.0.0.1:port (the same port across restarts)."""

    def __init__(self, cert, key):
        self.tmp = tempfile.TemporaryDirectory(prefix="telesink-unbound-")
        u, t, self.port = free_port_pair("127.0.0.1")
        u.close()
        t.close()
        self.conf = os.path.join(self.tmp.name, "unbound.conf")
        with open(self.conf, "w") as f:
            f.write("""server:
  interface: 127.0.0.1@{port}
  tls-port: {port}
  tls-service-key: "{key}"
  tls-service-pem: "{cert}"
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  do-ip6: no
  num-threads: 1
  extended-statistics: yes
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "test.example." redirect
  local-data: "test.example. 300 IN A {answer}"
remote-control:
  control-enable: yes
  control-interface: "{dir}/control.sock"
""".format(port=self.port, key=key, cert=cert, dir=self.tmp.name, answer=ANSWER))
        self.proc = None
        self.log = []

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self.log = []
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def read(proc, log):
            for line in proc.stdout:
                log.append(line.rstrip("\n"))
                if "start of service" in line:
                    ready.set()
        self.reader = threading.Thread(target=read, args=(self.proc, self.log), daemon=True)
        self.reader.start()
        if not ready.wait(10):
            self.proc.kill()
            raise RuntimeError("unbound did not start:\n" + "\n".join(self.log))
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc:
            self.reader.join(5)  # until EOF
            self.proc.stdout.close()

    def stats(self):
        out = subprocess.run([UNBOUND_CONTROL, "-c", self.conf, "stats_noreset"],
                             capture_output=True, text=True, check=True).stdout
        return {k: float(v) for k, v in re.findall(r"^([\w.]+)=([\d.]+)$", out, re.M)}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # in case a test left it stopped
        self.stop()
        self.tmp.cleanup()


def dot_config(servers, ca=None, timeout_ms=None, threads=1):
    text = "[server]\nthreads = %d\nrate_limit = 0\ncache_size = 0\n[upstream]\nservers = %s\n" % (
        threads, ", ".join(servers))
    if ca:
        text += "tls_ca = %s\n" % ca
    if timeout_ms:
        text += "timeout_ms = %d\n" % timeout_ms
    return text


def tls(port, name=NAME):
    return "tls://127.0.0.1:%d#%s" % (port, name)


def ask_many(server, names, sockets=20):
    """Send every query at once (spread over a few sockets), then collect the answers."""
    socks = [udp_socket(server) for _ in range(sockets)]
    try:
        for i, name in enumerate(names):
            socks[i % sockets].send(query_wire(name, qid=i))
        answers = {}
        for i, s in enumerate(socks):
            for _ in range(len(names[i::sockets])):
                r = dns.message.from_wire(s.recv(65535))
                answers[r.id] = r
        return [answers.get(i) for i in range(len(names))]
    finally:
        for s in socks:
            s.close()


def ask(server, name):
    """One query over UDP from this process (no client to start): the answer, seconds taken."""
    with udp_socket(server) as s:
        t0 = time.monotonic()
        s.send(query_wire(name))
        r = dns.message.from_wire(s.recv(65535))
        return r, time.monotonic() - t0


def addresses(msg):
    return sorted(rd.address for rrset in msg.answer for rd in rrset if hasattr(rd, "address"))


@unittest.skipUnless(UNBOUND and shutil.which("openssl"),
                     "unbound and openssl are installed by contrib/setup")
class RealUnbound(unittest.TestCase):
    def test_answers_and_many_queries_over_few_connections(self):
        with Unbound(PKI.cert, PKI.key) as ub, \
                Telesink(upstreams=[tls(ub.port)],
                         config=dot_config([], ca=PKI.ca, threads=2)) as ts:
            # The flag (--upstream tls://...) is shown as written in the ready line.
            self.assertTrue(ts.wait_for_line(r"upstreams tls://127\.0\.0\.1:%d#%s;" % (
                ub.port, re.escape(NAME)), 0), ts.output())
            a = dig(ts.v4, "www.test.example")
            self.assertEqual((a.rcode, a.addresses()), ("NOERROR", [ANSWER]), a.text)
            a = kdig(ts.v6, "www.test.example", "AAAA", tcp=True)
            self.assertEqual(a.rcode, "NOERROR", a.text)
            # 200 different names at once: all answered, over one connection per thread.
            names = ["n%d.test.example" % i for i in range(200)]
            for name, r in zip(names, ask_many(ts.v4, names)):
                self.assertIsNotNone(r, name)
                self.assertEqual((r.rcode(), addresses(r)), (dns.rcode.NOERROR, [ANSWER]), name)
            self.assertGreaterEqual(ub.stats()["num.query.tls"], 202)
        self.assertEqual(ts.returncode, 0, ts.output())
        s = ts.stats()
        self.assertGreaterEqual(s["upstream_sent"], 202)
        self.assertGreaterEqual(s["upstream_tls_handshakes"], 1)
        self.assertLessEqual(s["upstream_tls_handshakes"], 2)  # one per serving thread
        self.assertEqual(s["upstream_tls_failures"], 0)
        self.assertEqual(s["servfail"], 0)

    def test_wrong_name_is_refused(self):
        with Unbound(PKI.cert, PKI.key) as ub:
            # Alone: SERVFAIL at once (the handshake fails; no waiting for the timeout).
            with Telesink(config=dot_config([tls(ub.port, "wrong.example")], ca=PKI.ca,
                                            timeout_ms=3000)) as ts:
                t0 = time.monotonic()
                a = dig(ts.v4, "www.test.example")
                self.assertEqual(a.rcode, "SERVFAIL", a.text)
                self.assertLess(time.monotonic() - t0, 1.0)
                self.assertTrue(ts.wait_for_line(
                    r"warn \[upstream\] tls://127\.0\.0\.1:%d#wrong\.example: TLS handshake "
                    r"failed: certificate verify failed: hostname mismatch" % ub.port), ts.output())
            # With a good server after it: failover, and the answer comes from the good one.
            with Telesink(config=dot_config([tls(ub.port, "wrong.example"), tls(ub.port)],
                                            ca=PKI.ca, timeout_ms=3000)) as ts:
                t0 = time.monotonic()
                a = dig(ts.v4, "www.test.example")
                self.assertEqual(a.addresses(), [ANSWER], a.text)
                self.assertLess(time.monotonic() - t0, 1.0)
                self.assertTrue(ts.wait_for_line(r"#wrong\.example: .*hostname mismatch"))
            self.assertEqual(ts.returncode, 0, ts.output())
            s = ts.stats()
            self.assertEqual((s["upstream_tls_failures"], s["upstream_tls_handshakes"]), (1, 1))

    def test_without_name_the_address_is_verified(self):
        with Unbound(PKI.cert, PKI.key) as ub:
            # No #NAME: the certificate must hold the server's IP address (this one does).
            with Telesink(config=dot_config(["tls://127.0.0.1:%d" % ub.port], ca=PKI.ca)) as ts:
                self.assertTrue(ts.wait_for_line(r"upstreams tls://127\.0\.0\.1:%d;" % ub.port, 0))
                a = dig(ts.v4, "www.test.example")
                self.assertEqual(a.addresses(), [ANSWER], a.text)
            # An address it does not hold is refused.
            with Telesink(config=dot_config([tls(ub.port, "127.0.0.2")], ca=PKI.ca)) as ts:
                a = dig(ts.v4, "www.test.example")
                self.assertEqual(a.rcode, "SERVFAIL", a.text)
                self.assertTrue(ts.wait_for_line(r"#127\.0\.0\.2: TLS handshake failed: "
                                                 r"certificate verify failed: IP address mismatch"),
                                ts.output())

    def test_reload_opens_new_connections(self):
        with Unbound(PKI.cert, PKI.key) as ub, \
                Telesink(config=dot_config([tls(ub.port)], ca=PKI.ca)) as ts:
            self.assertEqual(dig(ts.v4, "a.test.example").addresses(), [ANSWER])
            n = len(ts.lines)
            ts.send_signal(signal.SIGHUP)
            self.assertTrue(ts.wait_for_line(r"reloaded: upstreams tls://", 5, n), ts.output())
            self.assertEqual(dig(ts.v4, "b.test.example").addresses(), [ANSWER])
        self.assertEqual(ts.returncode, 0, ts.output())
        s = ts.stats()
        # The old connection closed with the old configuration; the new one made its own.
        self.assertEqual((s["upstream_tls_handshakes"], s["upstream_tls_failures"]), (2, 0))

    def test_untrusted_ca_is_refused(self):
        with Unbound(PKI.rogue_cert, PKI.rogue_key) as rogue, plain_upstream() as up:
            # A certificate for the right name, from a CA we do not trust; a plain server next
            # in the same list takes over at once.
            with Telesink(config=dot_config([tls(rogue.port), up.addr], ca=PKI.ca,
                                            timeout_ms=3000)) as ts:
                t0 = time.monotonic()
                a = dig(ts.v4, "plain.test.example")
                self.assertEqual(a.addresses(), [PLAIN], a.text)
                self.assertLess(time.monotonic() - t0, 1.0)
                line = ts.wait_for_line(r"tls://127\.0\.0\.1:%d#%s: TLS handshake failed: "
                                        r"certificate verify failed" % (rogue.port, re.escape(NAME)))
                self.assertTrue(line, ts.output())
                self.assertRegex(line, r"local issuer|self-signed|unable to get")
            # Without tls_ca the system store is used, which does not know the test CA either.
            with Unbound(PKI.cert, PKI.key) as ub, \
                    Telesink(config=dot_config([tls(ub.port)], timeout_ms=3000)) as ts:
                a = dig(ts.v4, "www.test.example")
                self.assertEqual(a.rcode, "SERVFAIL", a.text)
                self.assertTrue(ts.wait_for_line(r"certificate verify failed"), ts.output())

    def test_unbound_stopped_frozen_and_back(self):
        with Unbound(PKI.cert, PKI.key) as ub, plain_upstream() as up, \
                Telesink(config=dot_config([tls(ub.port), up.addr], ca=PKI.ca,
                                           timeout_ms=500)) as ts:
            a = dig(ts.v4, "a.test.example")
            self.assertEqual(a.addresses(), [ANSWER], a.text)
            # Frozen (the connection stays up, nothing answers): the plain server answers after
            # one timeout, the silent connection is given up, and the plain server is asked
            # first from now on.
            os.kill(ub.proc.pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                a = dig(ts.v4, "plain.test.example")
                self.assertEqual(a.addresses(), [PLAIN], a.text)
                self.assertLess(time.monotonic() - t0, 1.5)
                self.assertTrue(ts.wait_for_line(r"tls://127\.0\.0\.1:%d#%s: no answer in time"
                                                 % (ub.port, re.escape(NAME))), ts.output())
            finally:
                os.kill(ub.proc.pid, signal.SIGCONT)
            # Stopped: the plain server refuses this name, and unbound's port refuses the
            # connection: SERVFAIL at once, not after a timeout.
            ub.stop()
            r, took = ask(ts.v4, "b.test.example")
            self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
            self.assertLess(took, 0.4)  # timeout_ms is 500
            self.assertTrue(ts.wait_for_line(r"#%s: connection refused" % re.escape(NAME)),
                            ts.output())
            # Back: telesink reconnects by itself (after its backoff) and uses it again.
            ub.start()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                a = dig(ts.v4, "back.test.example")
                if a.addresses() == [ANSWER]:
                    break
                time.sleep(0.2)
            self.assertEqual(a.addresses(), [ANSWER], a.text)
            self.assertTrue(ts.wait_for_line(r"tls://127\.0\.0\.1:%d#%s: connected again"
                                             % (ub.port, re.escape(NAME))), ts.output())
        self.assertEqual(ts.returncode, 0, ts.output())
        s = ts.stats()
        self.assertGreaterEqual(s["upstream_tls_handshakes"], 2)
        self.assertGreaterEqual(s["upstream_tls_failures"], 2)

    def test_single_server_down_is_servfail_in_time(self):
        with Unbound(PKI.cert, PKI.key) as ub, \
                Telesink(config=dot_config([tls(ub.port)], ca=PKI.ca, timeout_ms=1500)) as ts:
            self.assertEqual(dig(ts.v4, "a.test.example").addresses(), [ANSWER])
            ub.stop()
            # Refused (then, for the second, still backing off): no waiting for the timeout.
            for name in ("b.test.example", "c.test.example"):
                r, took = ask(ts.v4, name)
                self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)
                self.assertLess(took, 0.75)
            self.assertTrue(ts.wait_for_line(r"#%s: (connection refused|closed by)"
                                             % re.escape(NAME)), ts.output())
        self.assertEqual(ts.returncode, 0, ts.output())


# ---- a misbehaving DoT server ------------------------------------------------------------

class FakeDot:
    """A DNS-over-TLS server on loopback (the test CA's certificate for dns.test.example).
    behaviour(fake, conn, raw) runs per connection after the TCP accept; the handshake is
    its business (fake.handshake(raw))."""

    def __init__(self, behaviour):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(PKI.cert, PKI.key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.accepted = 0
        self.queries = []
        self.sizes = []
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(raw)
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            self.behaviour(self, raw)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            raw.close()

    def handshake(self, raw):
        """The TLS socket (raw is detached from its descriptor by this)."""
        conn = self.ctx.wrap_socket(raw, server_side=True)
        self.conns.append(conn)
        return conn

    def read_query(self, conn):
        wire = recv_framed(conn)
        if wire is None:
            return None
        q = dns.message.from_wire(wire)
        self.queries.append(q)
        self.sizes.append(len(wire))
        return q

    @staticmethod
    def answer(q):
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.77"))
        w = r.to_wire()
        return struct.pack("!H", len(w)) + w

    def close(self):
        self.closed = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def never_handshakes(fake, raw):
    raw.recv(4096)  # the ClientHello, never answered
    while raw.recv(4096):
        pass


def garbage_inside_tls(fake, raw):
    conn = fake.handshake(raw)
    fake.read_query(conn)
    conn.sendall(b"\x00\x05hello")  # framed, but not DNS
    conn.recv(4096)


def garbage_outside_tls(fake, raw):
    conn = fake.handshake(raw)
    fake.read_query(conn)
    os.write(conn.fileno(), b"HTTP/1.1 400 Bad Request\r\n\r\n")  # on the socket, not in TLS
    conn.recv(4096)


def close_notify_after_first(fake, raw):
    conn = fake.handshake(raw)
    q = fake.read_query(conn)
    conn.sendall(fake.answer(q))
    conn.unwrap().close()  # close_notify, then FIN


def answer_one_close_with_one_in_flight(fake, raw):
    conn = fake.handshake(raw)
    first, second = fake.read_query(conn), fake.read_query(conn)
    conn.sendall(fake.answer(first))
    conn.shutdown(socket.SHUT_RDWR)  # a FIN without close_notify, the second still unanswered


def answer_all(fake, raw):
    conn = fake.handshake(raw)
    while True:
        q = fake.read_query(conn)
        if q is None:
            return
        conn.sendall(fake.answer(q))


def close_on_second_while_idle(fake, raw):
    conn = fake.handshake(raw)
    first = fake.accepted == 1
    while True:
        q = fake.read_query(conn)
        if q is None:
            return
        if first and len(fake.queries) == 2:  # the first connection's second query: FIN
            conn.shutdown(socket.SHUT_RDWR)
            return
        conn.sendall(fake.answer(q))


@unittest.skipUnless(UNBOUND and shutil.which("openssl"),
                     "unbound and openssl are installed by contrib/setup")
class Misbehaving(unittest.TestCase):
    def run_with(self, behaviour, timeout_ms=3000, args=()):
        fake = FakeDot(behaviour)
        up = plain_upstream()
        ts = Telesink(config=dot_config([tls(fake.port), up.addr], ca=PKI.ca,
                                        timeout_ms=timeout_ms), args=args)
        self.addCleanup(fake.close)
        self.addCleanup(up.close)
        ts.start()
        self.addCleanup(ts.__exit__)
        return fake, ts

    def finish(self, ts):
        """Stop telesink: exit 0 (under ASan: no leak, no error) and the counters."""
        self.assertEqual(ts.stop(), 0, ts.output())
        return ts.stats()

    def test_queries_are_padded(self):
        fake, ts = self.run_with(answer_all)
        names = ["a.test.example", "a-much-longer-name.with.more.labels.test.example"]
        for name in names:
            self.assertEqual(dig(ts.v4, name).addresses(), ["192.0.2.77"])
        # RFC 8467: every query padded to a multiple of 128 bytes, so both look alike.
        self.assertEqual(fake.sizes, [128, 128])
        for q in fake.queries:
            self.assertEqual([o.otype for o in q.options if o.otype == 12], [12])
        self.finish(ts)

    def test_handshake_never_completes(self):
        fake, ts = self.run_with(never_handshakes, timeout_ms=500)
        t0 = time.monotonic()
        a = dig(ts.v4, "plain.test.example")
        took = time.monotonic() - t0
        self.assertEqual(a.addresses(), [PLAIN], a.text)
        self.assertGreaterEqual(took, 0.45)
        self.assertLess(took, 1.5)
        self.assertTrue(ts.wait_for_line(r"#%s: TLS handshake timed out" % re.escape(NAME)),
                        ts.output())
        self.assertEqual(self.finish(ts)["upstream_tls_handshakes"], 0)

    def test_garbage_inside_tls(self):
        fake, ts = self.run_with(garbage_inside_tls)
        t0 = time.monotonic()
        a = dig(ts.v4, "plain.test.example")
        self.assertEqual(a.addresses(), [PLAIN], a.text)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(len(fake.queries), 1)
        self.assertTrue(ts.wait_for_line(r"not a DNS reply"), ts.output())
        self.assertEqual(self.finish(ts)["upstream_tls_failures"], 1)

    def test_garbage_outside_tls(self):
        fake, ts = self.run_with(garbage_outside_tls)
        t0 = time.monotonic()
        a = dig(ts.v4, "plain.test.example")
        self.assertEqual(a.addresses(), [PLAIN], a.text)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertTrue(ts.wait_for_line(r"#%s: TLS: " % re.escape(NAME)), ts.output())
        self.assertEqual(self.finish(ts)["upstream_tls_failures"], 1)

    def test_close_notify_after_first_answer(self):
        fake, ts = self.run_with(close_notify_after_first, args=["--log-level", "debug"])
        a = dig(ts.v4, "one.test.example")
        self.assertEqual(a.addresses(), ["192.0.2.77"], a.text)
        # The server closed the idle connection: an orderly end, not a failure; the next
        # query opens a new connection.
        self.assertTrue(ts.wait_for_line(r"debug \[upstream\] tls://.*: connection closed"),
                        ts.output())
        a = dig(ts.v4, "two.test.example")
        self.assertEqual(a.addresses(), ["192.0.2.77"], a.text)
        self.assertEqual(fake.accepted, 2)
        self.assertIsNone(ts.wait_for_line(r"warn \[upstream\]", 0), ts.output())
        s = self.finish(ts)
        self.assertEqual((s["upstream_tls_handshakes"], s["upstream_tls_failures"]), (2, 0))

    def test_query_crossing_the_servers_idle_close_goes_on_a_new_connection(self):
        fake, ts = self.run_with(close_on_second_while_idle)
        self.assertEqual(dig(ts.v4, "one.test.example").addresses(), ["192.0.2.77"])
        # The connection sits idle; the server closes it just as the next query arrives (as
        # it would when its idle timeout fires): that query is sent once more, on a new
        # connection to the same server, rather than failed over.
        t0 = time.monotonic()
        a = dig(ts.v4, "two.test.example")
        self.assertEqual(a.addresses(), ["192.0.2.77"], a.text)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(fake.accepted, 2)
        self.assertEqual([q.question[0].name.to_text() for q in fake.queries],
                         ["one.test.example.", "two.test.example.", "two.test.example."])
        s = self.finish(ts)
        self.assertEqual((s["upstream_tls_handshakes"], s["upstream_tls_failures"]), (2, 0))

    def test_close_with_a_query_in_flight_fails_over_at_once(self):
        fake, ts = self.run_with(answer_one_close_with_one_in_flight)
        # Both go on one connection while it is opening; the server answers the one it read
        # first and closes: the other is asked of the plain server at once, not after 3 s.
        with udp_socket(ts.v4) as s:
            t0 = time.monotonic()
            s.send(query_wire("first.test.example", qid=1))
            s.send(query_wire("second.test.example", qid=2))
            got = []
            for _ in range(2):
                r = dns.message.from_wire(s.recv(65535))
                got.append((addresses(r), time.monotonic() - t0))
        self.assertEqual(sorted(a for a, _ in got), [["192.0.2.77"], [PLAIN]])
        self.assertLess(max(t for _, t in got), 1.0)
        self.assertEqual(len(fake.queries), 2)
        self.assertTrue(ts.wait_for_line(r"#%s: closed by the server" % re.escape(NAME)),
                        ts.output())
        self.assertEqual(self.finish(ts)["upstream_tls_failures"], 1)


class Config(unittest.TestCase):
    def test_bad_values_name_the_line(self):
        cases = [
            ("servers = tls://127.0.0.1:853#bad..name", ":3: upstream: 'tls://127.0.0.1:853#bad..name'"),
            ("servers = 127.0.0.1#dns.example", ":3: upstream: '127.0.0.1#dns.example': DNS over TLS is tls://"),
            ("servers = https://127.0.0.1", ":3: upstream: 'https://127.0.0.1': DNS over TLS is tls://"),
            ("servers = tls://dns.example", ":3: upstream: 'tls://dns.example' is not tls://ADDR[:PORT]#NAME"),
            ("tls_ca = /nonexistent/ca.pem", ":3: tls_ca: '/nonexistent/ca.pem': No such file"),
        ]
        if PKI:
            cases.append(("tls_ca = %s" % PKI.empty, ":3: tls_ca: %s: " % PKI.empty))
        for line, message in cases:
            with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
                f.write("# dot\n[upstream]\n%s\n" % line)
                f.flush()
                out = subprocess.run([BIN, "serve", "--config", f.name,
                                      "--listen", "127.0.0.1:0"],
                                     capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 2, out.stderr)
            self.assertIn(f.name + message, out.stderr)


if __name__ == "__main__":
    unittest.main()

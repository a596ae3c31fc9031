"""End-to-end harness: the real telesink binary on free loopback ports, a scriptable fake
upstream, and wrappers around real clients (dig, kdig).

Readiness is always waited on, never slept for: telesink prints a `ready:` line with the ports
it bound (we ask for port 0), the fake upstream records every query under a condition variable,
and "no answer" is shown by a later answer on the same socket arriving first.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

BIN = os.environ.get("TELESINK_BIN", os.path.join(os.path.dirname(__file__), "../../build/telesink"))
READY_TIMEOUT = 10.0


class Telesink:
    """One telesink process. Use as a context manager; stop() returns the exit code."""

    def __init__(self, upstreams=(), config="", args=(), listen=("127.0.0.1:0", "[::1]:0"),
                 resolv_conf=None, wrapper=(), ready_timeout=READY_TIMEOUT):
        self.dir = tempfile.TemporaryDirectory(prefix="telesink-e2e-")
        self.ready_timeout = ready_timeout
        self.config_path = os.path.join(self.dir.name, "telesink.conf")
        with open(self.config_path, "w") as f:
            f.write(config)
        cmd = [BIN, "serve", "--config", self.config_path, "--db", os.path.join(self.dir.name, "q.db")]
        for l in listen:
            cmd += ["--listen", l]
        for u in upstreams:
            cmd += ["--upstream", u]
        if resolv_conf is not None:
            cmd += ["--resolv-conf", resolv_conf]
        cmd += list(args)
        self.cmd = list(wrapper) + cmd  # wrapper: e.g. valgrind and its flags
        self.lines = []
        self.cond = threading.Condition()
        self.proc = None
        self.addrs = []
        self.dot_addrs = []
        self.returncode = None
        self.eof = False

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for_line(r"ready: listening on (.*?) \(udp, tcp\)", self.ready_timeout)
        if line is None:
            self.proc.kill()
            raise RuntimeError("telesink did not become ready:\n" + "\n".join(self.lines))
        for a in re.search(r"listening on (.*?) \(udp", line).group(1).split():
            host, port = a.rsplit(":", 1)
            self.addrs.append((host.strip("[]"), int(port)))
        m = re.search(r"\(udp, tcp\); dot (.*?);", line)  # DNS over TLS (tls_listen)
        for a in m.group(1).split() if m else []:
            host, port = a.rsplit(":", 1)
            self.dot_addrs.append((host.strip("[]"), int(port)))
        return self

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for_line(self, pattern, timeout=5.0, start=0):
        """The first line (from index start) matching pattern, waiting up to timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    return None
                self.cond.wait(left)

    @property
    def v4(self):
        return next(a for a in self.addrs if ":" not in a[0])

    @property
    def v6(self):
        return next(a for a in self.addrs if ":" in a[0])

    @property
    def dot4(self):
        return next(a for a in self.dot_addrs if ":" not in a[0])

    @property
    def dot6(self):
        return next(a for a in self.dot_addrs if ":" in a[0])

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.returncode is None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.returncode = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.returncode = self.proc.wait()
                raise AssertionError("telesink did not exit after signal %d" % sig)
        return self.returncode

    def stats(self):
        """Counters from the `stats:` line printed at exit (call after stop())."""
        line = self.wait_for_line(r"stats: ", 5)
        if line is None:
            return {}
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}

    def output(self):
        with self.cond:
            return "\n".join(self.lines)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
            if exc and exc[0] is not None and self.proc:
                # The test failed inside: what the server said (and any sanitizer report) goes
                # with the traceback, or a rare failure leaves nothing to tell why.
                with self.cond:
                    self.cond.wait_for(lambda: self.eof, 5)
                sys.stderr.write("--- telesink (exit %s) said:\n%s\n---\n" % (
                    self.returncode, self.output()))
        finally:
            if self.proc:
                self.proc.wait()
                self.proc.stdout.close()
            self.dir.cleanup()


def free_port_pair(host):
    """A port free for both UDP and TCP on host (bound, so keep the sockets until used)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.bind((host, 0))
        port = u.getsockname()[1]
        t = socket.socket(fam, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            t.bind((host, port))
            return u, t, port
        except OSError:
            u.close()
            t.close()
    raise RuntimeError("no free port")


class FakeUpstream:
    """A scriptable DNS server on loopback (UDP and TCP on the same port).

    `zone` maps lower-case names (no trailing dot) to {rdtype: [rdata text]}; other names get
    NXDOMAIN. `udp_handler(up, query, wire, addr)` and `tcp_handler(up, query, wire)` may be
    replaced to misbehave: return reply bytes (any bytes at all: they are sent as they are,
    over TCP with a length prefix added, or without one when wrapped in Raw), or None to stay
    silent (over TCP: close the connection). With `delay` (seconds) every reply is sent that
    much later, without holding up other queries. `sent` records (transport, time.monotonic())
    just before each reply is sent, so a test can time telesink's answer from that moment.
    """

    def __init__(self, host="127.0.0.1", zone=None, ttl=300):
        self.host = host
        self.zone = {k.lower(): v for k, v in (zone or {}).items()}
        self.ttl = ttl
        self.udp, self.tcp, self.port = free_port_pair(host)
        self.tcp.listen(16)
        self.queries = []  # (transport, dns.message, source address)
        self.sent = []  # (transport, time.monotonic() just before the reply was sent)
        self.delay = 0.0
        self.cond = threading.Condition()
        self.udp_handler = FakeUpstream.answer_udp
        self.tcp_handler = FakeUpstream.answer_tcp
        self.closed = False
        threading.Thread(target=self._udp_loop, daemon=True).start()
        threading.Thread(target=self._tcp_loop, daemon=True).start()

    @property
    def addr(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def answer(self, query):
        r = dns.message.make_response(query)
        r.flags |= dns.flags.RA
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        if name in self.zone:
            for rdata in self.zone[name].get(dns.rdatatype.to_text(q.rdtype), []):
                r.answer.append(dns.rrset.from_text(q.name, self.ttl, "IN", q.rdtype, rdata))
        else:
            r.set_rcode(dns.rcode.NXDOMAIN)
        return r

    @staticmethod
    def answer_udp(up, query, wire, addr):
        return up.answer(query).to_wire()

    @staticmethod
    def answer_tcp(up, query, wire):
        return up.answer(query).to_wire()

    def _record(self, transport, wire, addr):
        try:
            q = dns.message.from_wire(wire)
        except Exception:
            return None
        with self.cond:
            self.queries.append((transport, q, addr))
            self.cond.notify_all()
        return q

    def _udp_loop(self):
        while not self.closed:
            try:
                wire, addr = self.udp.recvfrom(65535)
            except OSError:
                return
            q = self._record("udp", wire, addr)
            if q is None:
                continue
            out = self.udp_handler(self, q, wire, addr)
            if out is None:
                continue
            if self.delay > 0:
                threading.Timer(self.delay, self._udp_send, (out, addr)).start()
            else:
                self._udp_send(out, addr)

    def _udp_send(self, out, addr):
        t = time.monotonic()
        try:
            self.udp.sendto(out, addr)
        except OSError:
            return  # closed meanwhile
        self._sent("udp", t)

    def _sent(self, transport, t):
        with self.cond:
            self.sent.append((transport, t))
            self.cond.notify_all()

    def _tcp_loop(self):
        while not self.closed:
            try:
                conn, addr = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn, addr), daemon=True).start()

    def _tcp_conn(self, conn, addr):
        with conn:
            while True:
                wire = recv_framed(conn)
                if wire is None:
                    return
                q = self._record("tcp", wire, addr)
                if q is None:
                    return
                out = self.tcp_handler(self, q, wire)
                if out is None:
                    return
                if self.delay > 0:
                    time.sleep(self.delay)  # this connection's own thread: others go on
                t = time.monotonic()
                try:
                    conn.sendall(out if isinstance(out, Raw) else struct.pack("!H", len(out)) + out)
                except OSError:
                    return  # telesink gave up on us first
                self._sent("tcp", t)
                if isinstance(out, Raw) and out.close:
                    return

    def wait_queries(self, n, timeout=5.0, name=None):
        """Wait until n queries (for name, when given) have arrived; returns them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [x for x in self.queries
                       if name is None or x[1].question[0].name.to_text(True).lower() == name]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    return got
                self.cond.wait(left)

    def wait_sent(self, n, timeout=5.0):
        """Wait until n replies have been sent; returns the (transport, time) records."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.sent) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.sent)

    def close(self):
        self.closed = True
        for s in (self.udp, self.tcp):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Raw(bytes):
    """A TCP reply sent exactly as given (the test writes its own length prefix, or a false
    one); Raw(b, close=True) closes the connection right after it."""

    def __new__(cls, data, close=False):
        r = super().__new__(cls, data)
        r.close = close
        return r


def closed_port(host="127.0.0.1"):
    """A UDP port on host that nobody listens on: datagrams to it draw ICMP port unreachable."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


class SilentUpstream:
    """Holds a UDP and TCP port on loopback and never answers (accepts TCP, reads, says nothing)."""

    def __init__(self, host="127.0.0.1"):
        self.udp, self.tcp, self.port = free_port_pair(host)
        self.host = host

    @property
    def addr(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def close(self):
        self.udp.close()
        self.tcp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def vmrss_kb(pid):
    """The resident set of a process, from /proc/PID/status (kB)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def fd_count(pid):
    """How many file descriptors a process has open."""
    return len(os.listdir("/proc/%d/fd" % pid))


def raise_nofile(want):
    """Raise this process's RLIMIT_NOFILE to want (children inherit it): the hard limit too when
    allowed (root), else as far as the hard limit goes. Returns the soft limit now in force."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# Set by tests/CMakeLists.txt from TELESINK_SANITIZE: memory figures mean nothing under ASan
# (shadow memory, a quarantine of freed blocks), and valgrind cannot run an ASan binary.
SANITIZED = bool(os.environ.get("TELESINK_SANITIZE"))


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_framed(sock):
    head = recv_exact(sock, 2)
    if head is None:
        return None
    return recv_exact(sock, struct.unpack("!H", head)[0])


# ---- real clients ------------------------------------------------------------------------

class Answer:
    """What dig or kdig printed, parsed: rcode, flags, answer records, the question as echoed."""

    def __init__(self, text):
        self.text = text
        m = re.search(r"status: (\w+)", text)
        self.rcode = m.group(1) if m else None
        m = re.search(r"[Ff]lags: ([a-z ]*)[;,]", text)
        self.flags = set(m.group(1).split()) if m else set()
        self.answers = []
        self.question = None
        section = None
        for line in text.splitlines():
            if line.startswith(";; ANSWER SECTION"):
                section = "answer"
                continue
            if line.startswith(";; QUESTION SECTION"):
                section = "question"
                continue
            if line.startswith(";;") or not line.strip():
                section = None if not line.strip() or line.startswith(";; ") else section
                continue
            if section == "answer":
                self.answers.append(line.split())
            elif section == "question" and self.question is None:
                self.question = line.lstrip(";").split()[0]

    def addresses(self):
        return sorted(r[-1] for r in self.answers if r[-2] in ("A", "AAAA"))

    def ttls(self):
        return [int(r[1]) for r in self.answers]

    def __repr__(self):
        return "<Answer %s %s %s>" % (self.rcode, sorted(self.flags), self.answers)


def dig(server, name, qtype="A", tcp=False, options=(), timeout=8):
    host, port = server
    args = ["dig", "@" + host, "-p", str(port), name, qtype, "+tries=1", "+time=6"]
    if tcp:
        args.append("+tcp")
    args += list(options)
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return Answer(out.stdout)


def kdig(server, name, qtype="A", tcp=False, options=(), timeout=8):
    host, port = server
    args = ["kdig", "@" + host, "-p", str(port), name, qtype, "+retry=0", "+timeout=6"]
    args.append("+tcp" if tcp else "+notcp")
    args += list(options)
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return Answer(out.stdout)


# ---- raw queries -------------------------------------------------------------------------

def query_wire(name="example.com", qtype="A", qid=None, edns=None, flags=None):
    q = dns.message.make_query(name, qtype, use_edns=edns)
    if qid is not None:
        q.id = qid
    if flags is not None:
        q.flags = flags
    return q.to_wire()


def udp_socket(server, source=None):
    fam = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if source:
        s.bind((source, 0))
    s.settimeout(6)
    s.connect(server)
    return s


def udp_exchange(server, wire, source=None):
    with udp_socket(server, source) as s:
        s.send(wire)
        return s.recv(65535)


def tcp_socket(server):
    fam = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(6)
    s.connect(server)
    return s


def framed(wire):
    return struct.pack("!H", len(wire)) + wire


# ---- DNS over TLS ------------------------------------------------------------------------

def openssl(*args, **kw):
    return subprocess.run(("openssl",) + args, capture_output=True, check=True, **kw)


class TestCA:
    """A CA and its server certificates, made with the openssl CLI in a temporary directory."""

    def __init__(self, name="telesink test CA"):
        self.dir = tempfile.mkdtemp(prefix="telesink-ca-")
        self.key, self.pem = self.path("ca.key"), self.path("ca.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.key, "-out", self.pem, "-days", "2", "-subj", "/CN=" + name,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, stem, names, serial, days=1):
        """A server certificate for the DNS names, with this serial: (cert path, key path)."""
        key, csr, pem, ext = (self.path(stem + x) for x in (".key", ".csr", ".pem", ".ext"))
        with open(ext, "w") as f:
            f.write("basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n"
                    "extendedKeyUsage = serverAuth\nsubjectAltName = %s\n"
                    % ",".join("DNS:" + n for n in names))
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + names[0])
        openssl("x509", "-req", "-in", csr, "-CA", self.pem, "-CAkey", self.key, "-set_serial",
                str(serial), "-days", str(days), "-extfile", ext, "-out", pem)
        return pem, key

    def close(self):
        shutil.rmtree(self.dir, True)


def dot_socket(server, ca=None, sni=None, tls_version=None, verify=True, ragged_eof_ok=True):
    """A DNS-over-TLS connection (Python's ssl), handshake done. tls_version: "1.2" or "1.3".
    ragged_eof_ok=False: a close without close_notify raises ssl.SSLEOFError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = sni is not None
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls_version:
        v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[tls_version]
        ctx.minimum_version = ctx.maximum_version = v
    return ctx.wrap_socket(tcp_socket(server), server_hostname=sni,
                           suppress_ragged_eofs=ragged_eof_ok)


def dot_exchange(sock, wire):
    """One framed query and its answer on a DoT (or TCP) connection."""
    sock.sendall(framed(wire))
    return recv_framed(sock)

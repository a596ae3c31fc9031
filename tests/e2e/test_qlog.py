"""The SQLite query log, end to end: what the `queries` view says about real dig/kdig queries
(client, name, type, status, list, rcode, upstream, timing), client names, the real client
behind a trusted dnsmasq (--add-subnet, --add-mac in its three forms, over a veth pair into a
network namespace), log_allowed = no with the hourly counters, anonymised clients, and faults
that must never reach DNS: kill -9, a full disk, a locked database, a corrupt file. Retention
and the file mode.

The database is read with Python's sqlite3, after SIGTERM (deterministic) or while telesink
runs (WAL: a reader never blocks the writer), polling until the expected rows are there.
"""
import errno
import glob
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
import unittest

import dns.edns
import dns.message
import dns.rcode

from harness import Answer, FakeUpstream, Telesink, dig, free_port_pair, kdig, udp_exchange

ZONE = {"www.example.test": {"A": ["192.0.2.10"], "HTTPS": []}}

TEST_LIST = """# vendor: Testvendor
# category: telemetry
# description: lists used by the query log tests
tracker-example.test      # source: test
"""

POLL_TIMEOUT = 10.0
ANON = re.compile(r"^anon-[0-9a-f]{16}$")


# ---- reading the database ----------------------------------------------------------------

def connect(path, ro=True):
    if ro:
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    else:
        con = sqlite3.connect(path, timeout=5)
    con.row_factory = sqlite3.Row
    return con


def rows(path, where="", args=(), ro=True):
    """Rows of the `queries` view as dicts."""
    con = connect(path, ro)
    try:
        return [dict(r) for r in con.execute("SELECT * FROM queries " + where, args)]
    finally:
        con.close()


def scalar(path, sql, args=(), ro=True):
    con = connect(path, ro)
    try:
        return con.execute(sql, args).fetchone()[0]
    finally:
        con.close()


def one(path, sql, args=(), ro=True):
    """The first row of a query, as a tuple."""
    con = connect(path, ro)
    try:
        return tuple(con.execute(sql, args).fetchone())
    finally:
        con.close()


def poll(fn, timeout=POLL_TIMEOUT):
    """Readiness polling: fn() until it is true (a missing file or table counts as false)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except sqlite3.Error:
            v = None
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(0.02)


def wait_count(path, n, where="", args=(), timeout=POLL_TIMEOUT):
    """Poll `SELECT count(*) FROM queries` until it reaches n; returns the last count."""
    last = [None]

    def check():
        last[0] = scalar(path, "SELECT count(*) FROM queries " + where, args)
        return last[0] >= n
    poll(check, timeout)
    return last[0]


def name_hash(name):
    """The hash stored with a name in `domains` (db_name_hash: part of the file format)."""
    h, m = 1469598103934665603, (1 << 64) - 1
    for b in name.encode():
        h = ((h ^ b) * 1099511628211) & m
    for mul in (0xff51afd7ed558ccd, 0xc4ceb9fe1a85ec53):
        h ^= h >> 33
        h = (h * mul) & m
    h ^= h >> 33
    return h >> 32


def db_of(ts):
    """The --db a Telesink was started with (the last one wins)."""
    at = max(i for i, arg in enumerate(ts.cmd) if arg == "--db")
    return ts.cmd[at + 1]


def ask(server, name, qtype="A", source=None, options=None, payload=1232):
    """One raw UDP query (dnspython); returns the answer and how long it took."""
    q = dns.message.make_query(name, qtype, use_edns=0, payload=payload, options=options)
    t = time.monotonic()
    a = dns.message.from_wire(udp_exchange(server, q.to_wire(), source=source))
    return a, time.monotonic() - t


def timed(fn, *args, **kw):
    """Run dig or kdig; returns its answer and the query time it reports, in seconds (the
    exchange alone, not the client's start-up, which a loaded machine can make slow)."""
    t = time.monotonic()
    r = fn(*args, **kw)
    wall = time.monotonic() - t
    m = re.search(r"Query time: (\d+) msec|\) in ([\d.]+) ms", r.text)
    if not m:
        return r, wall
    return r, float(m.group(1) or m.group(2)) / 1000


def query_log_stats(ts):
    line = ts.wait_for_line(r"query log: ", 5)
    if line is None:
        return {}
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


class QlogCase(unittest.TestCase):
    def setUp(self):
        self.lists = tempfile.mkdtemp(prefix="telesink-qlog-lists-")
        self.addCleanup(shutil.rmtree, self.lists)
        with open(os.path.join(self.lists, "test.list"), "w") as f:
            f.write(TEST_LIST)
        self.up = FakeUpstream(zone=ZONE)
        self.addCleanup(self.up.close)

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="telesink-qlog-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def serve(self, log="", server="", clients="", db=None, **kw):
        config = "[server]\nthreads = 2\n%s\n[lists]\npaths = %s\n[log]\n%s\n" % (
            server, self.lists, log)
        if clients:
            config += "[clients]\n%s\n" % clients
        return Telesink(upstreams=[self.up.addr], config=config,
                        args=["--db", db] if db else [], **kw)


# ---- 1, 2: what a row says ------------------------------------------------------------------

class Rows(QlogCase):
    ALLOW = "allow = 127.0.0.1, 127.0.0.2, 127.0.0.3, ::1"

    def send_mix(self, ts):
        """Five queries from four clients; returns the rows they must produce."""
        up = self.up.addr
        a = dig(ts.v4, "WWW.Example.TEST", "A", options=["-b", "127.0.0.2"])
        self.assertEqual(a.addresses(), ["192.0.2.10"], a.text)
        a = dig(ts.v4, "nope.example.test", "AAAA", options=["-b", "127.0.0.3"])
        self.assertEqual(a.rcode, "NXDOMAIN", a.text)
        a = kdig(ts.v6, "Sub.Tracker-Example.test", "TXT", tcp=True)
        self.assertEqual(a.rcode, "NXDOMAIN", a.text)
        a = dig(ts.v6, "www.example.test", "TYPE999")
        self.assertEqual(a.rcode, "NOERROR", a.text)
        a = dig(ts.v4, "www.example.test", "HTTPS", options=["-b", "127.0.0.4"])
        self.assertEqual(a.rcode, "REFUSED", a.text)
        none = dict(vendor=None, list=None, category=None)
        return [
            dict(client="127.0.0.2", qname="www.example.test", qtype="A", status="forwarded",
                 rcode="NOERROR", upstream=up, **none),
            dict(client="127.0.0.3", qname="nope.example.test", qtype="AAAA", status="forwarded",
                 rcode="NXDOMAIN", upstream=up, **none),
            dict(client="::1", qname="sub.tracker-example.test", qtype="TXT", status="blocked",
                 rcode="NXDOMAIN", upstream=None, vendor="Testvendor", list="test",
                 category="telemetry"),
            dict(client="::1", qname="www.example.test", qtype="TYPE999", status="forwarded",
                 rcode="NOERROR", upstream=up, **none),
            dict(client="127.0.0.4", qname="www.example.test", qtype="HTTPS", status="refused",
                 rcode="REFUSED", upstream=None, **none),
        ]

    def check_rows(self, got, want, t0, t1):
        keys = ("client", "qname", "qtype", "status", "rcode", "upstream", "vendor", "list",
                "category")
        self.assertEqual(sorted(tuple(str(r[k]) for k in keys) for r in got),
                         sorted(tuple(str(w[k]) for k in keys) for w in want))
        for r in got:
            self.assertGreaterEqual(r["duration_ms"], 0, r)
            self.assertLess(r["duration_ms"], 5000, r)
            self.assertGreaterEqual(r["ts"], t0 - 0.002, r)
            self.assertLessEqual(r["ts"], t1 + 0.002, r)
            self.assertEqual(r["via_cname"], 0, r)
            self.assertIsNone(r["client_mac"], r)

    def test_rows_written_at_sigterm(self):
        # flush_ms is a minute: only the drain at SIGTERM can have written these rows.
        with self.serve(server=self.ALLOW, log="flush_ms = 60000") as ts:
            db = db_of(ts)
            t0 = time.time()
            want = self.send_mix(ts)
            t1 = time.time()
            self.assertEqual(ts.stop(), 0)
            self.check_rows(rows(db, ro=False), want, t0, t1)
            st = query_log_stats(ts)
            self.assertEqual((st.get("logged"), st.get("dropped_db_fault")), (5, 0), st)

    def test_rows_readable_while_running(self):
        with self.serve(server=self.ALLOW, log="flush_ms = 100") as ts:
            db = db_of(ts)
            t0 = time.time()
            want = self.send_mix(ts)
            t1 = time.time()
            self.assertEqual(wait_count(db, len(want)), len(want))
            self.check_rows(rows(db), want, t0, t1)
            # More while it runs: they arrive too, and nothing is written twice.
            for i in range(3):
                self.assertEqual(dig(ts.v4, "more%d.example.test" % i).rcode, "NXDOMAIN")
            self.assertEqual(wait_count(db, len(want) + 3), len(want) + 3)
            self.assertEqual(ts.stop(), 0)
            self.assertEqual(len(rows(db, ro=False)), len(want) + 3)

    def test_names_once_across_restarts_and_other_writers(self):
        """Each name is stored once: names the log already holds are found again after a
        restart (read back from the file), and after another connection changed the names
        (the writer re-reads them). Blocked names: answered without the upstream."""
        db = os.path.join(self.tmpdir(), "q.db")

        def send(ts, names):
            for name in names:
                a, _ = ask(ts.v4, name)
                self.assertEqual(a.rcode(), dns.rcode.NXDOMAIN, name)

        first = ["n%d.tracker-example.test" % i for i in range(150)]
        second = ["m%d.tracker-example.test" % i for i in range(50)]
        with self.serve(db=db, log="flush_ms = 50") as ts:
            send(ts, first)
            self.assertEqual(wait_count(db, 150), 150)
            self.assertEqual(ts.stop(), 0)
        with self.serve(db=db, log="flush_ms = 50") as ts:
            send(ts, first + second)
            self.assertEqual(wait_count(db, 350), 350)
            # Once more, now that the writer's first minute's clean-up is done: it keeps the id.
            send(ts, ["n1.tracker-example.test"])
            self.assertEqual(wait_count(db, 351), 351)
            # Another writer adds a name still to come and deletes one with its rows.
            with connect(db, ro=False) as c:
                c.execute("INSERT INTO domains(name, hash, last_seen) VALUES (?, ?, 0)",
                          ("x.tracker-example.test", name_hash("x.tracker-example.test")))
                c.execute("DELETE FROM log WHERE domain = "
                          "(SELECT id FROM domains WHERE name = 'n1.tracker-example.test')")
                c.execute("DELETE FROM domains WHERE name = 'n1.tracker-example.test'")
            c.close()
            send(ts, ["x.tracker-example.test", "n1.tracker-example.test"])
            self.assertEqual(ts.stop(), 0)
        print(rows(db, "WHERE qname LIKE 'n1.%' OR qname LIKE 'x.%'", ro=False), one(db, "SELECT max(id), count(*) FROM domains", ro=False), one(db, "SELECT domain FROM log ORDER BY id DESC LIMIT 1", ro=False))
        self.assertEqual(one(db, "SELECT count(*), count(DISTINCT name) FROM domains", ro=False),
                         (201, 201))
        # Every query found its own name's row (n1's new one, not the id the writer had cached).
        self.assertEqual(scalar(db, "SELECT count(*) FROM queries WHERE qname = "
                                    "'x.tracker-example.test'", ro=False), 1)
        self.assertEqual(scalar(db, "SELECT count(*) FROM queries WHERE qname = "
                                    "'n0.tracker-example.test'", ro=False), 2)
        self.assertEqual(scalar(db, "SELECT count(*) FROM queries WHERE qname = "
                                    "'n1.tracker-example.test'", ro=False), 1)

    def test_client_names(self):
        clients = "127.0.0.2 = phone\n127.0.0.0/24 = lab\n"
        with self.serve(log="flush_ms = 60000", clients=clients) as ts:
            db = db_of(ts)
            for src in ("127.0.0.2", "127.0.0.3"):
                self.assertEqual(dig(ts.v4, "www.example.test", options=["-b", src]).rcode,
                                 "NOERROR")
            self.assertEqual(dig(ts.v6, "www.example.test").rcode, "NOERROR")
            ts.stop()
            got = {r["client"]: r["client_name"] for r in rows(db, ro=False)}
            # The longest prefix wins; ::1 has no name (NULL, not '').
            self.assertEqual(got, {"127.0.0.2": "phone", "127.0.0.3": "lab", "::1": None})


# ---- 3: the real client behind a trusted forwarder --------------------------------------------

class Dnsmasq:
    """A real dnsmasq in the foreground, forwarding to telesink; ready when it says so."""

    def __init__(self, listen, port, server_port, extra=()):
        self.dir = tempfile.TemporaryDirectory(prefix="telesink-dnsmasq-")
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
             "--no-hosts", "--bind-interfaces", "--listen-address=" + listen,
             "--port=%d" % port, "--server=127.0.0.1#%d" % server_port, "--cache-size=0",
             "--pid-file=" + os.path.join(self.dir.name, "pid"), "--log-facility=-"]
            + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        with self.cond:
            ok = self.cond.wait_for(lambda: any("started, version" in l for l in self.lines)
                                    or self.proc.poll() is not None, 10)
        if not ok or self.proc.poll() is not None:
            self.close()
            raise RuntimeError("dnsmasq did not start:\n" + "\n".join(self.lines))

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(5)
        self.proc.stderr.close()
        self.dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sh(*args):
    subprocess.run(list(args), check=True, capture_output=True, timeout=10)


@unittest.skipUnless(shutil.which("dnsmasq"), "dnsmasq is installed by contrib/setup")
@unittest.skipUnless(os.geteuid() == 0, "network namespaces need root")
class TrustedForwarder(QlogCase):
    def setUp(self):
        super().setUp()
        # A /24 of our own per process, so that parallel runs do not collide.
        net = "10.99.%d." % (os.getpid() % 250 + 1)
        self.HOST, self.PEER = net + "1", net + "2"
        tag = "%d" % (os.getpid() % 100000)
        self.ns, self.hif, self.nif = "tsq" + tag, "tsqh" + tag, "tsqn" + tag
        sh("ip", "netns", "add", self.ns)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", self.ns], capture_output=True)
        sh("ip", "link", "add", self.hif, "type", "veth", "peer", "name", self.nif)
        self.addCleanup(subprocess.run, ["ip", "link", "del", self.hif], capture_output=True)
        sh("ip", "link", "set", self.nif, "netns", self.ns)
        sh("ip", "addr", "add", self.HOST + "/24", "dev", self.hif)
        sh("ip", "link", "set", self.hif, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "addr", "add", self.PEER + "/24", "dev", self.nif)
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.nif, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        self.mac = subprocess.run(["ip", "netns", "exec", self.ns, "cat",
                                   "/sys/class/net/%s/address" % self.nif],
                                  check=True, capture_output=True, text=True).stdout.strip().lower()
        self.assertRegex(self.mac, r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")

    def ns_dig(self, port, name):
        out = subprocess.run(["ip", "netns", "exec", self.ns, "dig", "@" + self.HOST, "-p",
                              str(port), name, "A", "+tries=1", "+time=3"],
                             capture_output=True, text=True, timeout=10)
        return Answer(out.stdout)

    def test_dnsmasq_add_mac_and_subnet(self):
        log = "flush_ms = 100\ntrusted_forwarders = 127.0.0.1"
        with self.serve(log=log, clients="%s = tv" % self.mac) as ts:
            db = db_of(ts)
            forms = {"raw": "--add-mac", "text": "--add-mac=text", "base64": "--add-mac=base64"}
            for form, flag in forms.items():
                u, t, port = free_port_pair(self.HOST)
                u.close()
                t.close()
                name = "%s.mac.example.test" % form
                with Dnsmasq(self.HOST, port, ts.v4[1], [flag, "--add-subnet=32,128"]):
                    a = self.ns_dig(port, name)
                    self.assertEqual(a.rcode, "NXDOMAIN", (form, a.text))
                    self.assertEqual(wait_count(db, 1, "WHERE qname = ?", (name,)), 1, form)
                r = rows(db, "WHERE qname = ?", (name,))[0]
                with self.subTest(form=form):
                    self.assertEqual((r["client"], r["client_mac"], r["client_name"]),
                                     (self.PEER, self.mac, "tv"), r)
                    self.assertEqual(r["status"], "forwarded")
            # Nothing was ever logged as coming from dnsmasq itself.
            self.assertEqual(scalar(db, "SELECT count(*) FROM queries WHERE client = '127.0.0.1'"),
                             0)

    def test_lan_client_mac_from_neighbour_table(self):
        # A client on our own Ethernet link, asking telesink directly: its MAC comes from the
        # kernel's neighbour table.
        with self.serve(log="flush_ms = 100",
                        listen=("127.0.0.1:0", "[::1]:0", self.HOST + ":0")) as ts:
            db = db_of(ts)
            port = next(p for h, p in ts.addrs if h == self.HOST)
            self.assertEqual(self.ns_dig(port, "www.example.test").addresses(), ["192.0.2.10"])
            self.assertEqual(wait_count(db, 1), 1)
            r = rows(db)[0]
            self.assertEqual((r["client"], r["client_mac"]), (self.PEER, self.mac), r)


class UntrustedEdns(QlogCase):
    def test_ecs_and_mac_ignored_from_untrusted_source(self):
        opts = [dns.edns.ECSOption("10.1.2.3", 32),
                dns.edns.GenericOption(65001, bytes.fromhex("0200005e0001")),
                dns.edns.GenericOption(65073, b"02:00:00:5e:00:02")]
        with self.serve(log="flush_ms = 60000\ntrusted_forwarders = 127.0.0.9") as ts:
            db = db_of(ts)
            a, _ = ask(ts.v4, "untrusted.example.test", source="127.0.0.1", options=opts)
            self.assertEqual(a.rcode(), dns.rcode.NXDOMAIN)
            # The control: the same options from the trusted address are believed.
            a, _ = ask(ts.v4, "trusted.example.test", source="127.0.0.9", options=opts)
            self.assertEqual(a.rcode(), dns.rcode.NXDOMAIN)
            ts.stop()
            got = {r["qname"]: (r["client"], r["client_mac"]) for r in rows(db, ro=False)}
            self.assertEqual(got, {"untrusted.example.test": ("127.0.0.1", None),
                                   "trusted.example.test": ("10.1.2.3", "02:00:00:5e:00:01")})


# ---- 4: log_allowed = no, anonymised clients --------------------------------------------------

class Privacy(QlogCase):
    def test_log_allowed_no_keeps_blocked_and_counts(self):
        with self.serve(log="flush_ms = 60000\nlog_allowed = no",
                        server="allow = 127.0.0.1, 127.0.0.2, ::1") as ts:
            db = db_of(ts)
            for i in range(3):
                self.assertEqual(dig(ts.v4, "www.example.test", options=["-b", "127.0.0.2"])
                                 .addresses(), ["192.0.2.10"])
            for i in range(2):
                self.assertEqual(dig(ts.v6, "t%d.tracker-example.test" % i).rcode, "NXDOMAIN")
            self.assertEqual(dig(ts.v4, "www.example.test", options=["-b", "127.0.0.3"]).rcode,
                             "REFUSED")
            self.assertEqual(ts.stop(), 0)
            got = rows(db, ro=False)
            self.assertEqual(sorted((r["qname"], r["status"]) for r in got),
                             [("t0.tracker-example.test", "blocked"),
                              ("t1.tracker-example.test", "blocked")])
            c = connect(db, ro=False)
            try:
                sums = c.execute("SELECT sum(queries), sum(logged), sum(not_logged), sum(dropped) "
                                 "FROM counters").fetchone()
                hours = [h for (h,) in c.execute("SELECT hour FROM counters")]
            finally:
                c.close()
            self.assertEqual(tuple(sums), (6, 2, 4, 0))
            now_hour = int(time.time()) // 3600
            for h in hours:
                self.assertIn(h, (now_hour - 1, now_hour))
            st = query_log_stats(ts)
            self.assertEqual((st.get("logged"), st.get("not_logged")), (2, 4), st)

    def test_anonymized_clients_stable_across_restart(self):
        db = os.path.join(self.tmpdir(), "q.db")
        log = "flush_ms = 60000\nanonymize_clients = yes"
        with self.serve(log=log, db=db) as ts:
            for src, name in (("127.0.0.2", "a.example.test"), ("127.0.0.3", "b.example.test")):
                self.assertEqual(dig(ts.v4, name, options=["-b", src]).rcode, "NXDOMAIN")
            self.assertEqual(ts.stop(), 0)
        with self.serve(log=log, db=db) as ts:
            self.assertEqual(dig(ts.v4, "c.example.test", options=["-b", "127.0.0.2"]).rcode,
                             "NXDOMAIN")
            self.assertEqual(ts.stop(), 0)
        got = {r["qname"]: r for r in rows(db, ro=False)}
        self.assertEqual(sorted(got), ["a.example.test", "b.example.test", "c.example.test"])
        for r in got.values():
            self.assertRegex(r["client"], ANON)
            self.assertIsNone(r["client_mac"])
        self.assertEqual(got["a.example.test"]["client"], got["c.example.test"]["client"])
        self.assertNotEqual(got["a.example.test"]["client"], got["b.example.test"]["client"])
        # No address leaks anywhere in the file's client table.
        self.assertEqual(scalar(db, "SELECT count(*) FROM clients WHERE addr LIKE '127.%'",
                                ro=False), 0)


# ---- 5-9: faults never reach DNS ---------------------------------------------------------------

class Faults(QlogCase):
    def test_kill_9_loses_at_most_the_last_flush(self):
        db = os.path.join(self.tmpdir(), "q.db")
        n, m = 20, 10
        with self.serve(log="flush_ms = 200", db=db) as ts:
            for i in range(n):
                self.assertEqual(ask(ts.v4, "before%d.example.test" % i)[0].rcode(),
                                 dns.rcode.NXDOMAIN)
            self.assertEqual(wait_count(db, n), n)
            for i in range(m):
                self.assertEqual(ask(ts.v4, "late%d.example.test" % i)[0].rcode(),
                                 dns.rcode.NXDOMAIN)
            self.assertEqual(ts.stop(signal.SIGKILL), -signal.SIGKILL)
        with self.serve(log="flush_ms = 200", db=db) as ts:
            for i in range(3):
                self.assertEqual(ask(ts.v4, "after%d.example.test" % i)[0].rcode(),
                                 dns.rcode.NXDOMAIN)
            self.assertEqual(wait_count(db, 3, "WHERE qname LIKE 'after%'"), 3)
            self.assertEqual(scalar(db, "PRAGMA integrity_check"), "ok")
            self.assertEqual(ts.stop(), 0)
            self.assertNotIn("corrupt", ts.output())
        self.assertEqual(scalar(db, "PRAGMA integrity_check", ro=False), "ok")
        self.assertEqual(glob.glob(db + ".corrupt-*"), [])
        before = scalar(db, "SELECT count(*) FROM queries WHERE qname LIKE 'before%'", ro=False)
        late = scalar(db, "SELECT count(*) FROM queries WHERE qname LIKE 'late%'", ro=False)
        self.assertEqual(before, n)
        self.assertLessEqual(late, m)

    @unittest.skipUnless(os.geteuid() == 0, "dropping to another user needs root")
    def test_read_only_file(self):
        # As root every file is writable, so run as nobody (`[server] user`): the file is made
        # read-only between two runs; the second run answers DNS, says why it cannot log, and
        # logs again once the file is writable (the writer retries the open every 5 s).
        d = tempfile.mkdtemp(prefix="telesink-qlog-ro-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o777)
        db = os.path.join(d, "q.db")
        with self.serve(log="flush_ms = 100", server="user = nobody", db=db) as ts:
            self.assertEqual(dig(ts.v4, "first.example.test").rcode, "NXDOMAIN")
            # Read only once telesink made the WAL files: a reader (root) that comes first makes
            # the -shm itself, owned by root, and telesink (nobody) cannot open the log.
            self.assertTrue(poll(lambda: all(os.path.exists(db + s) for s in ("-wal", "-shm"))))
            # (Keep what telesink said and who owns which file, to tell why if it fails.)
            self.assertEqual(wait_count(db, 1), 1, "%s\n%s" % (ts.output(), "\n".join(
                "%s uid %d mode %o" % (f, os.stat(f).st_uid, os.stat(f).st_mode)
                for f in glob.glob(db + "*"))))
        os.chmod(db, 0o440)
        with self.serve(log="flush_ms = 100", server="user = nobody", db=db) as ts:
            self.assertIsNotNone(ts.wait_for_line(r"q\.db: .*(readonly|read-only|unable to open)",
                                                  POLL_TIMEOUT), ts.output())
            for i in range(5):
                a, took = timed(dig, ts.v4, "ro-%d.example.test" % i)
                self.assertEqual(a.rcode, "NXDOMAIN", a.text)
                self.assertLess(took, 0.5, a.text)
            # The fix an operator makes: the database and the files SQLite made beside it
            # (created with the database's mode, so read-only too).
            mark = len(ts.lines)
            for f in glob.glob(db + "*"):
                os.chmod(f, 0o660)
            self.assertIsNotNone(ts.wait_for_line(r"logging again", POLL_TIMEOUT, start=mark),
                                 ts.output())
            for i in range(3):
                self.assertEqual(dig(ts.v4, "rw-%d.example.test" % i).rcode, "NXDOMAIN")
            self.assertEqual(wait_count(db, 3, "WHERE qname LIKE 'rw-%'"), 3)
            self.assertEqual(ts.stop(), 0)
            self.assertGreaterEqual(query_log_stats(ts).get("dropped_db_fault", 0), 5)

    def test_disk_full(self):
        mnt = tempfile.mkdtemp(prefix="telesink-qlog-tmpfs-")
        self.addCleanup(os.rmdir, mnt)
        sh("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt)
        self.addCleanup(lambda: subprocess.run(["umount", mnt]).returncode == 0
                        or subprocess.run(["umount", "-l", mnt]))
        db = os.path.join(mnt, "q.db")
        filler = os.path.join(mnt, "filler")
        full = r"database or disk is full"
        # Thousands of queries from one client: no rate limit.
        with self.serve(log="flush_ms = 100", db=db, server="rate_limit = 0") as ts:
            self.assertEqual(dig(ts.v4, "first.example.test").rcode, "NXDOMAIN")
            self.assertEqual(wait_count(db, 1), 1)
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for chunk in (1 << 20, 1 << 12, 1):
                    try:
                        while True:
                            os.write(fd, b"\0" * chunk)
                    except OSError as e:
                        self.assertEqual(e.errno, errno.ENOSPC)
            finally:
                os.close(fd)

            def prompt(name):
                a, took = ask(ts.v4, name)
                self.assertEqual(a.rcode(), dns.rcode.NXDOMAIN)
                self.assertLess(took, 1.0)

            # The WAL has room left from before: small rounds of new names use it up until a
            # transaction needs a page the file system does not have.
            i = 0
            for _ in range(100):
                for _ in range(3):
                    prompt("full-%04d-%s.example.test" % (i, "x" * 40))
                    i += 1
                if ts.wait_for_line(full, 0.3):
                    break
            self.assertIsNotNone(ts.wait_for_line(full, 0), "no disk-full error:\n" + ts.output())
            # Keep the disk full for 1.5 s of continuous queries with long new names: every
            # batch of them is larger than what the failed transaction left in the WAL, so the
            # writer fails again and again, and none of those failures is logged again.
            label = "b" * 60
            until = time.monotonic() + 1.5
            k = 0
            while time.monotonic() < until:
                prompt("burst-%05d.%s.%s.%s.example.test" % (k, label, label, label))
                k += 1
            for client in (dig, kdig):
                for tcp in (False, True):
                    a, took = timed(client, ts.v4, "www.example.test", tcp=tcp)
                    self.assertEqual(a.addresses(), ["192.0.2.10"], a.text)
                    self.assertLess(took, 0.5, a.text)
            mark = len(ts.lines)
            os.unlink(filler)
            for j in range(5):
                a, took = timed(dig, ts.v4, "after-full-%d.example.test" % j)
                self.assertEqual(a.rcode, "NXDOMAIN")
                self.assertLess(took, 0.5, a.text)
            self.assertEqual(wait_count(db, 5, "WHERE qname LIKE 'after-full-%'"), 5)
            self.assertIsNotNone(ts.wait_for_line(r"logging again", POLL_TIMEOUT, start=mark),
                                 ts.output())
            self.assertEqual(ts.stop(), 0)
            out = ts.output()
            self.assertEqual(len(re.findall(full, out)), 1, out)
            st = query_log_stats(ts)
            # The burst was dropped, not just the first failed round.
            burst = scalar(db, "SELECT count(*) FROM queries WHERE qname LIKE 'burst-%'", ro=False)
            self.assertGreater(st.get("dropped_db_fault", 0), i, st)
            self.assertLess(burst, k // 2, (burst, k))
            total = 1 + i + k + 4 + 5
            self.assertEqual(st.get("logged", 0) + st.get("dropped_db_fault", 0), total, st)
            self.assertEqual(one(db, "SELECT sum(queries), sum(logged), sum(dropped) FROM counters",
                                 ro=False),
                             (total, st.get("logged"), st.get("dropped_db_fault")))
        self.assertEqual(scalar(db, "PRAGMA integrity_check", ro=False), "ok")

    def test_locked_database(self):
        with self.serve(log="flush_ms = 100", server="rate_limit = 0") as ts:
            db = db_of(ts)
            self.assertEqual(dig(ts.v4, "first.example.test").rcode, "NXDOMAIN")
            self.assertEqual(wait_count(db, 1), 1)
            lock = sqlite3.connect(db, timeout=10, isolation_level=None)
            sent = 0
            try:
                lock.execute("BEGIN EXCLUSIVE")
                while not ts.wait_for_line(r"database is locked", 0):
                    a, took = timed(dig, ts.v4, "locked-%d.example.test" % sent)
                    self.assertEqual(a.rcode, "NXDOMAIN", a.text)
                    self.assertLess(took, 0.5, a.text)
                    sent += 1
                    self.assertLess(sent, 500, "no lock error:\n" + ts.output())
                # Keep asking for 1.5 s more (several writer retries of flush_ms plus its
                # 250 ms busy timeout): every answer stays prompt over UDP and TCP.
                until = time.monotonic() + 1.5
                while time.monotonic() < until:
                    for client, tcp in ((dig, False), (kdig, True)):
                        a, took = timed(client, ts.v6, "locked-%d.example.test" % sent, tcp=tcp)
                        self.assertEqual(a.rcode, "NXDOMAIN", a.text)
                        self.assertLess(took, 0.5, a.text)
                        sent += 1
                # A reader is never blocked, and nothing got in while we held the lock.
                self.assertEqual(scalar(db, "SELECT count(*) FROM queries WHERE qname LIKE "
                                        "'locked-%'"), 0)
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            mark = len(ts.lines)
            for i in range(3):
                self.assertEqual(dig(ts.v4, "unlocked-%d.example.test" % i).rcode, "NXDOMAIN")
            self.assertEqual(wait_count(db, 3, "WHERE qname LIKE 'unlocked-%'"), 3)
            self.assertIsNotNone(ts.wait_for_line(r"logging again", POLL_TIMEOUT, start=mark),
                                 ts.output())
            self.assertEqual(ts.stop(), 0)
            self.assertEqual(len(re.findall(r"database is locked", ts.output())), 1, ts.output())
            # Every query is accounted for: queued ones written after the release, the rest
            # dropped and counted, in the stats line and in the hourly counters.
            st = query_log_stats(ts)
            late = scalar(db, "SELECT count(*) FROM queries WHERE qname LIKE 'locked-%'", ro=False)
            self.assertGreater(st.get("dropped_db_fault", 0), 0, st)
            self.assertEqual(st.get("dropped_db_fault", 0) + late, sent, (st, late, sent))
            self.assertEqual(st.get("logged"), 1 + 3 + late, st)
            sums = one(db, "SELECT sum(queries), sum(logged), sum(dropped) FROM counters",
                       ro=False)
            self.assertEqual(sums, (1 + sent + 3, 1 + 3 + late, sent - late))

    def test_retention(self):
        db = os.path.join(self.tmpdir(), "q.db")
        with self.serve(log="flush_ms = 60000", db=db) as ts:
            for i in range(3):
                self.assertEqual(dig(ts.v4, "recent%d.example.test" % i).rcode, "NXDOMAIN")
            self.assertEqual(ts.stop(), 0)
        now_ms = int(time.time() * 1000)
        old_ms = now_ms - 2 * 86400 * 1000      # older than retention_days = 1
        edge_ms = now_ms - 20 * 3600 * 1000     # inside it
        c = sqlite3.connect(db)
        try:
            client, domain = c.execute("SELECT client, domain FROM log LIMIT 1").fetchone()
            with c:
                for i in range(5):
                    c.execute("INSERT INTO log(id, client, domain, qtype, status, rcode, duration, "
                              "flags) VALUES (?, ?, ?, 1, 2, 0, 1000, 0)",
                              ((old_ms + i) << 10, client, domain))
                c.execute("INSERT INTO log(id, client, domain, qtype, status, rcode, duration, "
                          "flags) VALUES (?, ?, ?, 1, 2, 0, 1000, 0)", (edge_ms << 10, client, domain))
                # A name and a client only old rows used: retention must forget them too.
                old_hour = old_ms // 3600000
                c.execute("INSERT INTO domains(name, hash, last_seen) VALUES ('gone.example.test', 0, ?)",
                          (old_hour,))
                c.execute("INSERT INTO clients(addr, mac, name, last_seen) "
                          "VALUES ('192.0.2.99', '', '', ?)", (old_hour,))
                gone_domain = c.execute("SELECT id FROM domains WHERE name = "
                                        "'gone.example.test'").fetchone()[0]
                gone_client = c.execute("SELECT id FROM clients WHERE addr = "
                                        "'192.0.2.99'").fetchone()[0]
                c.execute("INSERT INTO log(id, client, domain, qtype, status, rcode, duration, "
                          "flags) VALUES (?, ?, ?, 1, 2, 0, 1000, 0)",
                          ((old_ms + 9) << 10, gone_client, gone_domain))
        finally:
            c.close()
        # The ids read back as those times through the view.
        old_ts = [r["ts"] for r in rows(db, "WHERE ts < ?", (now_ms / 1000 - 86400,), ro=False)]
        self.assertEqual(len(old_ts), 6)
        self.assertAlmostEqual(min(old_ts), old_ms / 1000, places=2)
        with self.serve(log="flush_ms = 100\nretention_days = 1", db=db) as ts:
            cutoff = (now_ms - 86400 * 1000) << 10
            self.assertTrue(poll(lambda: scalar(db, "SELECT count(*) FROM log WHERE id < ?",
                                                (cutoff,)) == 0), "old rows were not expired")
            self.assertEqual(dig(ts.v4, "new.example.test").rcode, "NXDOMAIN")
            self.assertEqual(wait_count(db, 1, "WHERE qname = 'new.example.test'"), 1)
            self.assertEqual(ts.stop(), 0)
        got = sorted(r["qname"] for r in rows(db, ro=False))
        # Left: the 3 recent rows, the one 20 hours old, the new one.
        self.assertEqual(len(got), 5, got)
        self.assertTrue({"recent0.example.test", "recent1.example.test", "recent2.example.test",
                         "new.example.test"} <= set(got), got)
        self.assertEqual(scalar(db, "SELECT count(*) FROM log WHERE id = ?", (edge_ms << 10,),
                                ro=False), 1)
        # Names and addresses do not outlive their rows (retention is a privacy promise).
        self.assertEqual(scalar(db, "SELECT count(*) FROM domains WHERE name = "
                                "'gone.example.test'", ro=False), 0)
        self.assertEqual(scalar(db, "SELECT count(*) FROM clients WHERE addr = '192.0.2.99'",
                                ro=False), 0)
        self.assertEqual(scalar(db, "SELECT count(*) FROM domains WHERE name = "
                                "'recent0.example.test'", ro=False), 1)

    def corrupt_case(self, garbage_fn):
        db = os.path.join(self.tmpdir(), "q.db")
        garbage = garbage_fn(db)
        with self.serve(log="flush_ms = 100", db=db) as ts:
            self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
            self.assertIsNotNone(ts.wait_for_line(r"moved aside to ", POLL_TIMEOUT), ts.output())
            m = re.search(r"is corrupt \((.*?)\): moved aside to (\S+), starting a new log",
                          ts.output(), re.S)
            self.assertIsNotNone(m, ts.output())
            self.assertEqual(dig(ts.v4, "fresh.example.test").rcode, "NXDOMAIN")
            self.assertTrue(poll(lambda: scalar(
                db, "SELECT count(*) FROM queries WHERE qname = 'fresh.example.test'") == 1),
                ts.output())
            self.assertEqual(ts.stop(), 0)
        moved = [p for p in glob.glob(db + ".corrupt-*") if not p.endswith(("-wal", "-shm"))]
        self.assertEqual(len(moved), 1, glob.glob(db + "*"))
        self.assertEqual(m.group(2), moved[0])
        with open(moved[0], "rb") as f:
            self.assertEqual(f.read(), garbage)
        self.assertEqual(scalar(db, "PRAGMA integrity_check", ro=False), "ok")
        self.assertEqual(stat.S_IMODE(os.stat(db).st_mode), 0o640)
        # One event, one line: the reason must not carry quick_check's line breaks into the log.
        self.assertNotIn("\n", m.group(0), "the corrupt-file message spans several lines")

    def test_corrupt_file_not_a_database(self):
        def make(db):
            garbage = b"this is not an SQLite database\n" * 300
            with open(db, "wb") as f:
                f.write(garbage)
            return garbage
        self.corrupt_case(make)

    def test_corrupt_pages(self):
        def make(db):
            # A real telesink database whose pages after the first are overwritten.
            with self.serve(log="flush_ms = 60000", db=db) as ts:
                self.assertEqual(dig(ts.v4, "old.example.test").rcode, "NXDOMAIN")
                self.assertEqual(ts.stop(), 0)
            with open(db, "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                self.assertGreater(size, 8192)
                f.seek(4096)
                f.write(b"\xa5" * (size - 4096))
            with open(db, "rb") as f:
                return f.read()
        self.corrupt_case(make)


# ---- 10: file mode -----------------------------------------------------------------------------

class FileMode(QlogCase):
    def test_db_created_0640(self):
        db = os.path.join(self.tmpdir(), "q.db")
        ts = self.serve(log="flush_ms = 100", db=db)
        self.addCleanup(ts.__exit__, None, None, None)
        old = os.umask(0)  # SQLite alone would create 0644 (0666 & ~umask)
        try:
            ts.start()
        finally:
            os.umask(old)
        self.assertEqual(dig(ts.v4, "www.example.test").rcode, "NOERROR")
        self.assertEqual(wait_count(db, 1), 1)
        modes = {os.path.basename(p): stat.S_IMODE(os.stat(p).st_mode)
                 for p in glob.glob(db + "*")}
        self.assertEqual(ts.stop(), 0)
        self.assertEqual(modes.pop("q.db"), 0o640)
        for sidecar in ("q.db-wal", "q.db-shm"):
            if sidecar in modes:
                self.assertEqual(modes.pop(sidecar), 0o640, sidecar)
        if "q.db.key" in modes:
            self.assertEqual(modes.pop("q.db.key"), 0o600)
        self.assertEqual(modes.pop("q.db.lock"), 0o644)  # a pid: no secret (lock_db)
        self.assertEqual(modes, {})


if __name__ == "__main__":
    unittest.main()

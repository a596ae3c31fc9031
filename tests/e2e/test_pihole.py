"""Pairing with Pi-hole, end to end:

- telesink behind Pi-hole (Pi-hole's dnsmasq forwards to telesink with add-mac and add-subnet,
  telesink logs the real devices): test_qlog.TrustedForwarder runs a real dnsmasq that way;
- telesink in front of Pi-hole: its upstream is a real dnsmasq standing in for Pi-hole (which
  forwards to a fake "internet"); blocked names never reach it, the rest are answered through
  it, as dnsmasq's --log-queries shows;
- `telesink lists export`: every format, blocking and allow entries, parsed back by telesink's
  own list parser gives exactly the same names (and, for adblock, the same subdomain coverage);
- contrib/pihole/telesink-export: the files Pi-hole and AdGuard Home import, parsed back the same
  way, and the printed SQL run against Pi-hole v5 and v6 gravity.db schemas.
"""
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
import unittest

from harness import BIN, FakeUpstream, Telesink, dig, free_port_pair
from test_qlog import Dnsmasq

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
LISTS = os.path.join(SOURCE, "lists")
SCRIPT = os.path.join(SOURCE, "contrib", "pihole", "telesink-export")

# Third-party entries of every kind next to the curated lists, so that exact and subtree,
# block and allow entries all take part.
EXTRA = {
    "extra.hosts": "0.0.0.0 exact-a.example.test exact-b.example.test\n"
                   "127.0.0.1 exact-c.example.test\n",
    "extra.adblock": "||sub-a.example.test^\n|exact-d.example.test^\n"
                     "@@||allowed-sub.example.test^\n@@|allowed-exact.example.test^\n",
    "extra.txt": "*.wild.example.test\nplain.example.test\n",
    "extra.allow": "keep.example.test\n*.keep-all.example.test\n",
}


def run(*args, ok=(0,)):
    r = subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode not in ok:
        raise AssertionError("%s: exit %d\n%s%s" % (args, r.returncode, r.stdout, r.stderr))
    return r


def rules(path):
    """The rules of a list file: its lines without comments and blanks, as a set."""
    with open(path) as f:
        return {l.strip() for l in f if l.strip() and l.strip()[0] not in "#!"}


def names(adblock_rules):
    return {re.sub(r"^(@@)?\|\|?|\^$", "", r) for r in adblock_rules}


class Lists:
    """A config over the curated lists plus EXTRA, in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="telesink-pihole-")
        extra = os.path.join(self.dir, "extra")
        os.mkdir(extra)
        for name, text in EXTRA.items():
            with open(os.path.join(extra, name), "w") as f:
                f.write(text)
        self.config = self.write_config("source.conf", LISTS + ", " + extra)

    def write_config(self, name, paths):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("[lists]\npaths = %s\n" % paths)
        return path

    def export(self, config, fmt, allow=False, output=None):
        output = output or os.path.join(self.dir, "out.%s%s" % ("allow-" if allow else "", fmt))
        run("lists", "export", "--config", config, "--format", fmt, "--output", output,
            *(["--allow"] if allow else []))
        return output

    def reread(self, path, allow):
        """Load path as the only list and export it again as adblock: how telesink read it."""
        config = self.write_config(os.path.basename(path) + ".conf", path)
        return rules(self.export(config, "adblock", allow, path + ".reread"))

    def close(self):
        shutil.rmtree(self.dir, True)


# ---- in front of Pi-hole ----------------------------------------------------------------------

def wait_line(proc, pattern, timeout=10.0):
    """The first line of a Dnsmasq's log matching pattern, waiting for it."""
    rx = re.compile(pattern)
    with proc.cond:
        proc.cond.wait_for(lambda: any(rx.search(l) for l in proc.lines), timeout)
        return next((l for l in proc.lines if rx.search(l)), None)


@unittest.skipUnless(shutil.which("dnsmasq"), "dnsmasq is installed by contrib/setup")
class InFrontOfPihole(unittest.TestCase):
    def test_blocked_names_never_reach_pihole(self):
        internet = FakeUpstream(zone={"www.example.test": {"A": ["192.0.2.10"]},
                                      "cdn.example.test": {"AAAA": ["2001:db8::10"]}})
        self.addCleanup(internet.close)
        u, t, port = free_port_pair("127.0.0.1")
        u.close()
        t.close()
        l = Lists()
        self.addCleanup(l.close)
        curated = sorted(names(rules(l.export(l.config, "adblock"))))
        blocked = [n for n in curated if n.endswith("miui.com")][:2] + curated[:3] + [
            "deep.sub." + curated[0], "use-application-dns.net", "exact-a.example.test"]
        pihole = Dnsmasq("127.0.0.1", port, internet.port, ["--log-queries"])
        self.addCleanup(pihole.close)
        with Telesink(upstreams=["127.0.0.1:%d" % port],
                      config="[lists]\npaths = %s, %s\n" % (LISTS, os.path.join(l.dir, "extra"))
                      ) as ts:
            db = ts.cmd[ts.cmd.index("--db") + 1]
            for name in blocked:
                a = dig(ts.v4, name, options=["+edns"])
                self.assertEqual(a.rcode, "NXDOMAIN", (name, a.text))
                self.assertIn("blocked by telesink", a.text)
            # Then an allowed name, answered by the internet through Pi-hole.
            self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
            self.assertEqual(dig(ts.v6, "cdn.example.test", "AAAA", tcp=True).addresses(),
                             ["2001:db8::10"])
            # dnsmasq logs each query as it arrives, in order: once it has logged the allowed
            # ones, any blocked name telesink had forwarded before would be in its log too.
            for name, qtype in (("www.example.test", "A"), ("cdn.example.test", "AAAA")):
                self.assertIsNotNone(
                    wait_line(pihole, r"query\[%s\] %s from 127\.0\.0\.1$" % (qtype, re.escape(name))),
                    "\n".join(pihole.lines))
            self.assertIsNotNone(wait_line(pihole, r"reply www\.example\.test is 192\.0\.2\.10"))
            with pihole.cond:
                log = "\n".join(pihole.lines)
            for name in blocked:
                self.assertNotIn(name, log)
            self.assertEqual(sorted({q[1].question[0].name.to_text(True) for q in internet.queries}),
                             ["cdn.example.test", "www.example.test"])
            self.assertEqual(ts.stop(), 0)
            con = sqlite3.connect(db)
            got = {r[0]: r[1:] for r in con.execute("SELECT qname, status, upstream FROM queries")}
            con.close()
        for name in blocked:
            self.assertEqual(got[name], ("blocked", None), name)
        self.assertEqual(got["www.example.test"], ("forwarded", "127.0.0.1:%d" % port))


# ---- lists export round trip ------------------------------------------------------------------

class ExportRoundTrip(unittest.TestCase):
    def setUp(self):
        self.l = Lists()
        self.addCleanup(self.l.close)

    def check_format(self, fmt, allow):
        l = self.l
        original = rules(l.export(l.config, "adblock", allow))  # kind-preserving reference
        self.assertTrue(original)
        out = l.export(l.config, fmt, allow)
        # Written the way the format says.
        line_rx = {"domains": r"^[a-z0-9._-]+$", "hosts": r"^0\.0\.0\.0 [a-z0-9._-]+$",
                   "adblock": r"^(@@)?\|\|?[a-z0-9._-]+\^$"}[fmt]
        for rule in rules(out):
            self.assertRegex(rule, line_rx)
        # Parsed back by telesink's list parser: an allow export goes in an allow file, except
        # adblock's, whose @@ rules are exceptions in any list.
        ext = fmt if fmt == "adblock" or not allow else "allow"
        path = os.path.join(l.dir, "rt-%s-%s.%s" % (fmt, "allow" if allow else "block", ext))
        shutil.copy(out, path)
        back = l.reread(path, allow)
        if fmt == "adblock":
            self.assertEqual(back, original)
        else:
            # domains and hosts carry names only: the same names, now all exact.
            self.assertEqual(names(back), names(original))
            self.assertTrue(all(re.match(r"^(@@)?\|[^|]", r) for r in back), back)
        return path

    def test_domains(self):
        self.check_format("domains", False)

    def test_hosts(self):
        self.check_format("hosts", False)

    def test_adblock(self):
        path = self.check_format("adblock", False)
        # And the serving policy reads it the same way (lists match builds it as serve does).
        config = self.l.write_config("match.conf", path)
        for name, blocked in (("sub-a.example.test", True), ("deep.sub-a.example.test", True),
                              ("exact-d.example.test", True), ("deep.exact-d.example.test", False),
                              ("x.wild.example.test", True), ("plain.example.test", True),
                              ("x.plain.example.test", False), ("deep.tracking.intl.miui.com", True)):
            r = run("lists", "match", "--config", config, name, ok=(0, 1))
            self.assertEqual(r.returncode, 0 if blocked else 1, (name, r.stdout))

    def test_allow_domains(self):
        self.check_format("domains", True)

    def test_allow_hosts(self):
        self.check_format("hosts", True)

    def test_allow_adblock(self):
        self.check_format("adblock", True)


# ---- contrib/pihole/telesink-export -------------------------------------------------------------

PIHOLE_V6_SCHEMA = """
CREATE TABLE adlist (id INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT 1, date_added INTEGER, date_modified INTEGER, comment TEXT,
    date_updated INTEGER, number INTEGER NOT NULL DEFAULT 0,
    invalid_domains INTEGER NOT NULL DEFAULT 0, status INTEGER NOT NULL DEFAULT 0,
    abp_entries INTEGER NOT NULL DEFAULT 0, type INTEGER NOT NULL DEFAULT 0,
    UNIQUE(address, type));
"""
PIHOLE_V5_SCHEMA = """
CREATE TABLE adlist (id INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT UNIQUE NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT 1, date_added INTEGER, date_modified INTEGER, comment TEXT,
    date_updated INTEGER, number INTEGER NOT NULL DEFAULT 0,
    invalid_domains INTEGER NOT NULL DEFAULT 0, status INTEGER NOT NULL DEFAULT 0);
CREATE TABLE domainlist (id INTEGER PRIMARY KEY AUTOINCREMENT, type INTEGER NOT NULL DEFAULT 0,
    domain TEXT NOT NULL, enabled BOOLEAN NOT NULL DEFAULT 1, date_added INTEGER,
    date_modified INTEGER, comment TEXT, UNIQUE(domain, type));
"""

# What Pi-hole's gravity parser (FTL gravity-parseList.c) accepts: an exact domain with at least
# one dot, or an ABP rule, `||domain^` in a blocklist and `@@||domain^` in an allowlist.
PIHOLE_DOMAIN = r"[a-z0-9_-]+(\.[a-z0-9_-]+)+"


class ExportScript(unittest.TestCase):
    def setUp(self):
        self.l = Lists()
        self.addCleanup(self.l.close)
        self.out = os.path.join(self.l.dir, "pihole", "telesink")

    def run_script(self, *args):
        return subprocess.run(["sh", SCRIPT, "--telesink", BIN, "--config", self.l.config]
                              + list(args), capture_output=True, text=True, timeout=60)

    def test_files(self):
        r = self.run_script("--dir", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        files = ["telesink-adguard.txt", "telesink-allow-v5.sql", "telesink-allow.txt",
                 "telesink-block.txt"]
        self.assertEqual(sorted(os.listdir(self.out)), files)  # no temporary files left
        self.assertEqual(stat.S_IMODE(os.stat(self.out).st_mode), 0o755)
        for f in files:
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.out, f)).st_mode), 0o644, f)
        block = rules(self.l.export(self.l.config, "adblock"))
        allow = rules(self.l.export(self.l.config, "adblock", allow=True))
        # Pi-hole's files: every line is one Pi-hole reads, and telesink reads them back as the
        # same entries (subtree as ||name^, exact as the plain name).
        pb, pa = (os.path.join(self.out, f) for f in ("telesink-block.txt", "telesink-allow.txt"))
        for rule in rules(pb):
            self.assertRegex(rule, r"^(\|\|)?%s\^?$" % PIHOLE_DOMAIN)
            self.assertEqual(rule.startswith("||"), rule.endswith("^"))
        for rule in rules(pa):
            self.assertRegex(rule, r"^(@@\|\|%s\^|%s)$" % (PIHOLE_DOMAIN, PIHOLE_DOMAIN))
        self.assertEqual(self.l.reread(pb, False), block)
        shutil.copy(pa, pa + ".allow")  # plain names in an allow file are allow entries
        self.assertEqual(self.l.reread(pa + ".allow", True), allow)
        # AdGuard Home's file: the block rules and the @@ exceptions, read back the same.
        ag = os.path.join(self.out, "telesink-adguard.txt")
        shutil.copy(ag, ag + ".adblock")
        self.assertEqual(self.l.reread(ag + ".adblock", False), block)
        self.assertEqual(self.l.reread(ag + ".adblock", True), allow)
        self.assertIn("%d block and %d allow entries written to %s" % (len(block), len(allow),
                                                                       self.out), r.stdout)

    def printed_sql(self, stdout, marker):
        """The SQL of the printed `pihole-FTL sqlite3 gravity.db "..."` lines after marker."""
        part = stdout[stdout.index(marker):]
        part = part[:part.index("pihole -g")]
        return re.findall(r'^  pihole-FTL sqlite3 /etc/pihole/gravity\.db "(.*)"$', part, re.M)

    def test_pihole_v6_commands(self):
        r = self.run_script("--dir", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        sql = self.printed_sql(r.stdout, "Pi-hole v6")
        self.assertEqual(len(sql), 2, r.stdout)
        con = sqlite3.connect(":memory:")
        con.executescript(PIHOLE_V6_SCHEMA)
        for _ in range(2):  # running the commands twice adds nothing twice
            for s in sql:
                con.execute(s)
        rows = sorted(con.execute("SELECT address, enabled, type, comment FROM adlist"))
        self.assertEqual(rows, [("file://%s/telesink-allow.txt" % self.out, 1, 1, "telesink"),
                                ("file://%s/telesink-block.txt" % self.out, 1, 0, "telesink")])

    def test_pihole_v5_commands(self):
        r = self.run_script("--dir", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        sql = self.printed_sql(r.stdout, "Pi-hole v5")
        self.assertEqual(len(sql), 1, r.stdout)
        self.assertIn("pihole-FTL sqlite3 /etc/pihole/gravity.db < %s/telesink-allow-v5.sql"
                      % self.out, r.stdout)
        con = sqlite3.connect(":memory:")
        con.executescript(PIHOLE_V5_SCHEMA)
        con.execute(sql[0])
        self.assertEqual(list(con.execute("SELECT address, enabled FROM adlist")),
                         [("file://%s/telesink-block.txt" % self.out, 1)])
        with open(os.path.join(self.out, "telesink-allow-v5.sql")) as f:
            script = f.read()
        con.executescript(script)
        con.executescript(script)
        rows = list(con.execute("SELECT type, domain FROM domainlist WHERE comment = 'telesink'"))
        allow = rules(self.l.export(self.l.config, "adblock", allow=True))
        self.assertEqual(len(rows), len(allow))
        exact = {d for t, d in rows if t == 0}
        regexes = [re.compile(d) for t, d in rows if t == 2]
        self.assertEqual(exact, {r[3:-1] for r in allow if not r.startswith("@@||")})
        self.assertEqual(len(regexes), len([r for r in allow if r.startswith("@@||")]))
        # Pi-hole's regex (POSIX ERE here) covers the name and its subdomains, nothing else.
        rx = next(x for x in regexes if "keep-all" in x.pattern)
        self.assertEqual(rx.pattern, r"(\.|^)keep-all\.example\.test$")
        for name, hit in (("keep-all.example.test", True), ("a.b.keep-all.example.test", True),
                          ("xkeep-all.example.test", False), ("keep-all.example.test.x", False)):
            self.assertEqual(bool(rx.search(name)), hit, name)

    def test_adguard_and_defaults(self):
        r = self.run_script("--dir", self.out)
        self.assertIn("%s/telesink-adguard.txt" % self.out, r.stdout)
        self.assertIn("safe_fs_patterns", r.stdout)
        h = subprocess.run(["sh", SCRIPT, "--help"], capture_output=True, text=True)
        self.assertEqual(h.returncode, 0)
        self.assertIn("default /etc/pihole/telesink", h.stdout)
        bad = subprocess.run(["sh", SCRIPT, "--nope"], capture_output=True, text=True)
        self.assertEqual(bad.returncode, 2)
        missing = subprocess.run(["sh", SCRIPT, "--telesink", "/nonexistent/telesink", "--dir",
                                  self.out], capture_output=True, text=True)
        self.assertEqual(missing.returncode, 1)
        self.assertIn("cannot run", missing.stderr)

    def test_failed_export_leaves_old_files(self):
        r = self.run_script("--dir", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.out, "telesink-block.txt")) as f:
            before = f.read()
        broken = self.l.write_config("broken.conf", "/nonexistent/lists")
        r = subprocess.run(["sh", SCRIPT, "--telesink", BIN, "--config", broken, "--dir",
                            self.out], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        with open(os.path.join(self.out, "telesink-block.txt")) as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(len(os.listdir(self.out)), 4)


if __name__ == "__main__":
    unittest.main()

"""Lists and policy over real sockets: every blocking mode with its TTLs, EDE and BADVERS,
allow precedence, the bypass canaries, CNAME cloaking, `lists` commands, and SIGHUP reloads
(while dnsperf runs, and with a broken list that must leave the old set in place)."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from harness import (BIN, FakeUpstream, Telesink, dig, kdig, udp_exchange)

ZONE = {"www.example.test": {"A": ["192.0.2.10"]},
        "ok.tracker-example.test": {"A": ["192.0.2.20"]}}

TEST_LIST = """# vendor: Testvendor
# category: telemetry
# description: lists used by the end-to-end tests
tracker-example.test      # source: test
metrics.phone.test        # source: test
feature.phone.test        # source: test # breaks: a feature
cloak-target.test         # source: test
"""
THIRD_PARTY = "0.0.0.0 exact-only.test\n||adblock-sub.test^\n"
ALLOW = "ok.tracker-example.test\n"


class ListsDir:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="telesink-lists-")
        self.write("test.list", TEST_LIST)
        self.write("third.txt", THIRD_PARTY)
        self.write("local.allow", ALLOW)

    def write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def close(self):
        shutil.rmtree(self.dir)


def raw(server, name, qtype="A", edns=True):
    q = dns.message.make_query(name, qtype, use_edns=0 if edns else False, payload=1232)
    return dns.message.from_wire(udp_exchange(server, q.to_wire()))


def ede(msg):
    for opt in msg.options:
        if opt.otype == dns.edns.EDE:
            return opt.code, opt.text
    return None


class BlockingModes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lists = ListsDir()
        cls.up = FakeUpstream(zone=ZONE)

    @classmethod
    def tearDownClass(cls):
        cls.up.close()
        cls.lists.close()

    def serve(self, mode, ttl=123):
        return Telesink(upstreams=[self.up.addr], config="[server]\nblocking_mode = %s\n"
                        "block_ttl = %d\n[lists]\npaths = %s\n" % (mode, ttl, self.lists.dir))

    def assert_soa(self, msg, ttl):
        self.assertEqual(len(msg.authority), 1)
        soa = msg.authority[0]
        self.assertEqual(soa.rdtype, dns.rdatatype.SOA)
        self.assertEqual(soa.ttl, ttl)
        self.assertEqual(soa[0].minimum, ttl)
        self.assertEqual(soa.name, msg.question[0].name)

    def assert_synthesized(self, msg):
        self.assertTrue(msg.flags & dns.flags.RA)
        self.assertFalse(msg.flags & dns.flags.AA)

    def test_nxdomain(self):
        with self.serve("nxdomain") as ts:
            for name in ("tracker-example.test", "a.b.tracker-example.test", "METRICS.Phone.test"):
                m = raw(ts.v4, name)
                self.assertEqual(m.rcode(), dns.rcode.NXDOMAIN, name)
                self.assert_synthesized(m)
                self.assert_soa(m, 123)
                self.assertEqual(ede(m), (15, "blocked by telesink: Testvendor (test)"))
                self.assertEqual(m.question[0].name.to_text(), name + ".")  # case echoed
            for client in (dig, kdig):
                a = client(ts.v6, "x.tracker-example.test", tcp=True,
                           options=["+edns"] if client is kdig else [])
                self.assertEqual(a.rcode, "NXDOMAIN", a.text)
                self.assertIn("Blocked", a.text)
            m = raw(ts.v4, "tracker-example.test", edns=False)
            self.assertEqual(m.rcode(), dns.rcode.NXDOMAIN)
            self.assertEqual(m.edns, -1)  # no OPT for a client without EDNS
            self.assertEqual(len(self.up.wait_queries(0)), len(self.up.queries))
        self.assertEqual(ts.stats()["forwarded"], 0)

    def test_null(self):
        with self.serve("null", ttl=77) as ts:
            m = raw(ts.v4, "tracker-example.test", "A")
            self.assertEqual(m.rcode(), dns.rcode.NOERROR)
            self.assertEqual([(r.ttl, r[0].address) for r in m.answer], [(77, "0.0.0.0")])
            m = raw(ts.v4, "tracker-example.test", "AAAA")
            self.assertEqual([(r.ttl, r[0].address) for r in m.answer], [(77, "::")])
            m = raw(ts.v4, "tracker-example.test", "TXT")
            self.assertEqual(m.rcode(), dns.rcode.NOERROR)
            self.assertEqual(m.answer, [])
            self.assert_soa(m, 77)
            a = dig(ts.v4, "sub.tracker-example.test")
            self.assertEqual(a.addresses(), ["0.0.0.0"])
            self.assertEqual(a.ttls(), [77])

    def test_refused_and_nodata(self):
        with self.serve("refused") as ts:
            m = raw(ts.v4, "tracker-example.test")
            self.assertEqual(m.rcode(), dns.rcode.REFUSED)
            self.assertEqual((m.answer, m.authority), ([], []))
            self.assertEqual(ede(m)[0], 15)
        with self.serve("nodata", ttl=60) as ts:
            m = raw(ts.v4, "tracker-example.test", "AAAA")
            self.assertEqual(m.rcode(), dns.rcode.NOERROR)
            self.assertEqual(m.answer, [])
            self.assert_soa(m, 60)
            self.assertEqual(ede(m)[0], 15)

    def test_badvers_before_policy(self):
        with self.serve("nxdomain") as ts:
            a = dig(ts.v4, "tracker-example.test", options=["+edns=1", "+noednsneg"])
            self.assertEqual(a.rcode, "BADVERS", a.text)

    def test_semantics_allow_breaks_third_party_canaries(self):
        with self.serve("null") as ts:
            # An allow entry wins over the subtree that covers it.
            self.assertEqual(dig(ts.v4, "ok.tracker-example.test").addresses(), ["192.0.2.20"])
            # A `# breaks:` entry is not blocked (strict = no).
            self.assertEqual(raw(ts.v4, "feature.phone.test").rcode(), dns.rcode.NXDOMAIN)
            self.assertIsNone(ede(raw(ts.v4, "feature.phone.test")))  # upstream's own NXDOMAIN
            # Third-party files: plain/hosts names exact, ||name^ subtree.
            self.assertEqual(dig(ts.v4, "exact-only.test").addresses(), ["0.0.0.0"])
            self.assertIsNone(ede(raw(ts.v4, "sub.exact-only.test")))
            self.assertEqual(dig(ts.v4, "deep.adblock-sub.test").addresses(), ["0.0.0.0"])
            # Canaries answer NXDOMAIN whatever the mode, even where an allow entry exists.
            for name in ("use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com"):
                m = raw(ts.v4, name)
                self.assertEqual(m.rcode(), dns.rcode.NXDOMAIN, name)
                self.assertEqual(ede(m)[0], 15)
        with Telesink(upstreams=[self.up.addr],
                      config="[lists]\npaths = %s\ncanary_doh = no\n" % self.lists.dir) as ts:
            self.assertIsNone(ede(raw(ts.v4, "use-application-dns.net")))
            self.assertEqual(ede(raw(ts.v4, "mask.icloud.com"))[0], 15)


class CnameCloaking(unittest.TestCase):
    def test_cname_chain_to_listed_name_is_blocked(self):
        lists = ListsDir()
        with FakeUpstream() as up:
            def cloaked(u, q, wire, addr):
                r = dns.message.make_response(q)
                name = q.question[0].name
                if name.to_text(True).lower() == "metrics.shop.test":
                    r.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", "edge.cdn.test."))
                    r.answer.append(dns.rrset.from_text("edge.cdn.test.", 300, "IN", "CNAME",
                                                        "x.cloak-target.test."))
                    r.answer.append(dns.rrset.from_text("x.cloak-target.test.", 300, "IN", "A",
                                                        "203.0.113.9"))
                elif name.to_text(True).lower() == "cdn.shop.test":
                    r.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", "edge.cdn.test."))
                    r.answer.append(dns.rrset.from_text("edge.cdn.test.", 300, "IN", "A",
                                                        "203.0.113.10"))
                return r.to_wire()
            up.udp_handler = cloaked
            with Telesink(upstreams=[up.addr],
                          config="[lists]\npaths = %s\n" % lists.dir) as ts:
                m = raw(ts.v4, "metrics.shop.test")
                self.assertEqual(m.rcode(), dns.rcode.NXDOMAIN)
                self.assertEqual(m.answer, [])
                self.assertEqual(ede(m), (15, "blocked by telesink: Testvendor (test) via CNAME"))
                a = dig(ts.v4, "metrics.shop.test")
                self.assertEqual(a.rcode, "NXDOMAIN")
                # A CNAME chain that stays clean is passed through unchanged.
                a = kdig(ts.v4, "cdn.shop.test")
                self.assertEqual(a.addresses(), ["203.0.113.10"])
            s = ts.stats()
            self.assertEqual(s["blocked_cname"], 2)
        lists.close()


class Reload(unittest.TestCase):
    def test_reload_swaps_lists_and_broken_reload_keeps_old(self):
        lists = ListsDir()
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr],
                         config="[lists]\npaths = %s\n" % lists.dir) as ts:
            self.assertEqual(dig(ts.v4, "new-tracker.test").rcode, "NXDOMAIN")
            self.assertIsNone(ede(raw(ts.v4, "new-tracker.test")))
            lists.write("more.list", "# vendor: More\n# category: tracking\n"
                        "new-tracker.test # source: test\nbad..line\n")
            n = len(ts.lines)
            ts.send_signal(signal.SIGHUP)
            self.assertIsNotNone(ts.wait_for_line(r"more.list:4: not a valid domain name", 5, n))
            self.assertIsNotNone(ts.wait_for_line(r"reloaded", 5, n))
            for _ in range(50):
                if ede(raw(ts.v4, "new-tracker.test")):
                    break
            self.assertEqual(ede(raw(ts.v4, "new-tracker.test")),
                             (15, "blocked by telesink: More (more)"))
            # A broken list file (a dangling symlink): the reload fails, the old set stays.
            os.symlink("/nonexistent/gone.list", os.path.join(lists.dir, "broken.list"))
            n = len(ts.lines)
            ts.send_signal(signal.SIGHUP)
            self.assertIsNotNone(ts.wait_for_line(r"broken.list: No such file", 5, n))
            self.assertIsNotNone(ts.wait_for_line(r"reload failed", 5, n))
            self.assertEqual(ede(raw(ts.v4, "new-tracker.test"))[0], 15)
            self.assertEqual(ede(raw(ts.v4, "tracker-example.test"))[0], 15)
        self.assertEqual(ts.returncode, 0)
        lists.close()

    @unittest.skipUnless(shutil.which("dnsperf"), "dnsperf is installed by contrib/setup")
    def test_reload_under_dnsperf_loses_nothing(self):
        lists = ListsDir()
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr],  # dnsperf is one client: no rate limit
                         config="[server]\nrate_limit = 0\n[lists]\npaths = %s\n" % lists.dir) as ts, \
                tempfile.NamedTemporaryFile("w", suffix=".txt") as qf:
            for i in range(200):
                qf.write("t%d.tracker-example.test A\nwww.example.test A\nmetrics.phone.test AAAA\n" % i)
            qf.flush()
            perf = subprocess.Popen(["dnsperf", "-s", ts.v4[0], "-p", str(ts.v4[1]), "-d", qf.name,
                                     "-l", "4", "-Q", "3000", "-c", "4", "-t", "2"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            # Reload five times while it runs, each time with a bigger list.
            reloads = 0
            while perf.poll() is None and reloads < 5:
                lists.write("bulk.list", "# vendor: Bulk\n# category: ads\n" + "".join(
                    "n%d.bulk-%d.test # source: test\n" % (k, reloads) for k in range(20000)))
                n = len(ts.lines)
                ts.send_signal(signal.SIGHUP)
                if ts.wait_for_line(r"reloaded", 10, n):
                    reloads += 1
            out = perf.communicate(timeout=30)[0]
            self.assertEqual(perf.returncode, 0, out)
            self.assertGreaterEqual(reloads, 3, out)
            completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
            lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
            self.assertEqual(lost, 0, out)
            self.assertGreater(completed, 5000, out)
            # NXDOMAIN for the two blocked names, NOERROR for the forwarded one: no SERVFAIL.
            self.assertNotIn("SERVFAIL", out)
        lists.close()


class ListsCommands(unittest.TestCase):
    def run_lists(self, *args):
        return subprocess.run([BIN, "lists"] + list(args), capture_output=True, text=True,
                              timeout=30)

    def test_bundled_lists_pass_check(self):
        root = os.path.join(os.path.dirname(__file__), "../../lists")
        r = self.run_lists("check", root)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:])
        self.assertRegex(r.stdout, r"\d+ files, 0 errors")
        self.assertRegex(r.stdout, r"Xiaomi\s+telemetry\s+xiaomi.list\s+\d+")

    def test_check_finds_problems(self):
        lists = ListsDir()
        lists.write("bad.list", "# vendor: Testvendor\n# category: spying\nno-source.test\n"
                    "dup.test # source: a\ndup.test # source: b\nbad..name # source: c\n"
                    "example.test # source: d\n")
        lists.write("e.allow", "www.example.test\n")
        r = self.run_lists("check", lists.dir)
        self.assertEqual(r.returncode, 1)
        for want in ("bad.list:1: error: unknown category 'spying'",
                     "test.list:1: error: vendor 'Testvendor' is also the vendor of",
                     "bad.list:3: error: 'no-source.test' has no '# source:'",
                     "bad.list:5: error: 'dup.test' duplicates",
                     "bad.list:6: error: not a valid domain name",
                     "bad.list:7: error: 'example.test' (with its subdomains) would block "
                     "'www.example.test'"):
            self.assertIn(want, r.stdout)
        lists.close()

    def test_match_and_export(self):
        lists = ListsDir()
        conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        conf.write("[lists]\npaths = %s\n" % lists.dir)
        conf.close()
        r = self.run_lists("match", "--config", conf.name, "A.Tracker-Example.test.")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("test.list:4  tracker-example.test (and subdomains)", r.stdout)
        self.assertIn("blocked: Testvendor (test, telemetry)", r.stdout)
        r = self.run_lists("match", "--config", conf.name, "ok.tracker-example.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("allowed by %s/local.allow:1" % lists.dir, r.stdout)
        out = conf.name + ".adblock"  # outside the lists directory
        r = self.run_lists("export", "--config", conf.name, "--format", "adblock", "--output", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = open(out).read()
        self.assertIn("||tracker-example.test^\n", text)
        self.assertIn("|exact-only.test^\n", text)
        self.assertNotIn("feature.phone.test", text)  # breaks: not exported unless strict
        r = self.run_lists("export", "--config", conf.name, "--format", "hosts", "--vendor",
                           "testvendor")
        self.assertIn("0.0.0.0 metrics.phone.test\n", r.stdout)
        self.assertNotIn("exact-only.test", r.stdout)
        r = self.run_lists("export", "--config", conf.name, "--allow")
        self.assertIn("ok.tracker-example.test\n", r.stdout)
        os.unlink(conf.name)
        os.unlink(out)
        lists.close()


if __name__ == "__main__":
    unittest.main()

"""`telesink report`: exact numbers in every format from a log with known content (written by
tests/tools/mklog through the real storage code), the "new since" comparison, the window edges,
exit codes, --output, --client; then queries through a real `serve` from several addresses and
the report that attributes them; and the HTML page rendered by headless Chromium with no
network request (a screenshot is kept in $ARTIFACT_DIR).
"""
import calendar
import csv
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

from harness import BIN, FakeUpstream, Telesink, dig
from logdb import make_log

ENV = dict(os.environ, TZ="UTC")
UNTIL = "2026-11-23T06:00Z"


def ms(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%S")) * 1000


def report(*args, env=ENV):
    return subprocess.run([BIN, "report", *args], capture_output=True, text=True, env=env,
                          timeout=60)


X = ("xiaomi.list", "Xiaomi", "telemetry")
S = ("sensors.list", "Sensors Analytics", "analytics")
G = ("samsung.list", "Samsung", "telemetry")
REDMI = ("192.168.1.23", "aa:bb:cc:dd:ee:01", "redmi-note-8")
REDMI2 = ("192.168.1.24", "aa:bb:cc:dd:ee:01", "redmi-note-8")  # the same phone, new lease
LAPTOP = ("192.168.1.40", None, None)
TV = ("192.168.1.50", None, "living-room-tv")


def blocked(t, who, name, lst):
    return (ms(t),) + who + (name, "A", "blocked") + lst + ("NXDOMAIN", None, 50)


def allowed(t, who, name, status="forwarded", rcode="NOERROR"):
    up = "192.0.2.53:53" if status == "forwarded" else None
    return (ms(t),) + who + (name, "AAAA", status, None, None, None, rcode, up, 9000)


# The window is 2026-11-22 06:00 - 2026-11-23 06:00 UTC; the previous one the day before.
ROWS = [
    allowed("2026-11-19T12:00:00", LAPTOP, "old.example"),  # before both: where the log starts
    blocked("2026-11-21T07:00:00", REDMI, "data.mistat.xiaomi.com", X),  # previous window
    blocked("2026-11-21T08:00:00", REDMI, "data.mistat.xiaomi.com", X),
    allowed("2026-11-21T09:00:00", REDMI, "www.example.org"),
    blocked("2026-11-21T10:00:00", TV, "samsungads.com", G),
    allowed("2026-11-22T06:00:00", REDMI, "www.example.org"),  # exactly at --since: in
    blocked("2026-11-22T07:15:00", REDMI, "data.mistat.xiaomi.com", X),
    blocked("2026-11-22T07:16:00", REDMI, "data.mistat.xiaomi.com", X),
    blocked("2026-11-22T09:00:00", REDMI2, "tracking.intl.miui.com", X),
    blocked("2026-11-22T10:30:00", REDMI, "data.mistat.xiaomi.com", X),
    blocked("2026-11-22T11:00:00", REDMI, "sdk.sensorsdata.cn", S),
    allowed("2026-11-22T12:00:00", REDMI2, "mail.example.org"),
    allowed("2026-11-22T13:00:00", REDMI, "mail.example.org", "cached"),
    blocked("2026-11-22T14:00:00", REDMI, "sdk.sensorsdata.cn", S),
    blocked("2026-11-22T23:59:00", REDMI, "data.mistat.xiaomi.com", X),
    allowed("2026-11-23T01:00:00", REDMI, "www.example.org"),
    allowed("2026-11-22T08:00:00", LAPTOP, "news.example"),
    allowed("2026-11-22T20:00:00", LAPTOP, "news.example", "failed", "SERVFAIL"),
    allowed("2026-11-22T21:00:00", LAPTOP, "bad.example", "refused", "REFUSED"),
    blocked("2026-11-23T05:00:00", TV, "samsungads.com", G),
    allowed("2026-11-23T05:59:59", TV, "time.example"),
    allowed("2026-11-23T06:00:00", REDMI, "after.example"),  # exactly at --until: out
]
HOUR = ms("2026-11-22T10:00:00") // 3600000
COUNTERS = [(HOUR, 20, 15, 0, 5), (HOUR - 24, 4, 4, 0, 0)]

TEXT = """\
telesink report: the 24 hours to 2026-11-23 06:00
Window 2026-11-22 06:00 - 2026-11-23 06:00 (UTC).

3 devices, 16 queries, 8 blocked (50.0%) to 3 vendors.
The 24 hours before: 4 queries, 3 blocked.
New since the 24 hours before:
  redmi-note-8: Xiaomi (1 new domain), Sensors Analytics (new, 2 hits)
Log incomplete: 5 queries not logged (queue full or database fault).

redmi-note-8  192.168.1.23  aa:bb:cc:dd:ee:01  (+1 more address)
  11 queries, 7 blocked (63.6%); 2 in the 24 hours before
  first hit 2026-11-22 07:15, last hit 2026-11-22 23:59
  Xiaomi (telemetry)                                      5  +3
    data.mistat.xiaomi.com                                4  +2
    tracking.intl.miui.com                                1  new
  Sensors Analytics (analytics)                           2  new
    sdk.sensorsdata.cn                                    2  new

living-room-tv  192.168.1.50
  2 queries, 1 blocked (50.0%); 1 in the 24 hours before
  first hit 2026-11-23 05:00, last hit 2026-11-23 05:00
  Samsung (telemetry)                                     1  same
    samsungads.com                                        1  same

192.168.1.40
  3 queries, nothing blocked
"""


class KnownLog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="telesink-report-")
        cls.db = os.path.join(cls.dir, "q.db")
        make_log(cls.db, ROWS, COUNTERS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def run_ok(self, *args):
        p = report("--db", self.db, "--until", UNTIL, *args)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_text_exact(self):
        self.assertEqual(self.run_ok(), TEXT)
        self.assertTrue(all(len(line) <= 72 for line in TEXT.splitlines()))

    def test_text_top_limits_domains(self):
        out = self.run_ok("--top", "1")
        self.assertIn("    data.mistat.xiaomi.com                                4  +2\n"
                      "    and 1 more domain\n", out)
        self.assertNotIn("tracking.intl.miui.com", out)

    def test_json_exact(self):
        j = json.loads(self.run_ok("--format", "json"))
        self.assertEqual(j["since"], "2026-11-22T06:00:00+00:00")
        self.assertEqual(j["until"], "2026-11-23T06:00:00+00:00")
        self.assertEqual(j["totals"], {"queries": 16, "blocked": 8, "clients": 3, "vendors": 3})
        self.assertEqual(j["previous"], {"since": "2026-11-21T06:00:00+00:00",
                                         "until": "2026-11-22T06:00:00+00:00",
                                         "compared": True, "queries": 4, "blocked": 3})
        self.assertEqual(j["log"], {"complete": False, "starts": "2026-11-19T12:00:00+00:00",
                                    "covers_window": True, "seen": 20, "logged": 15,
                                    "not_logged": 0, "dropped": 5})
        self.assertEqual([c["name"] or c["client"] for c in j["clients"]],
                         ["redmi-note-8", "living-room-tv", "192.168.1.40"])
        redmi, tv, laptop = j["clients"]
        self.assertEqual(redmi["client"], "192.168.1.23")
        self.assertEqual(redmi["mac"], "aa:bb:cc:dd:ee:01")
        self.assertEqual(redmi["addresses"], ["192.168.1.23", "192.168.1.24"])
        self.assertEqual((redmi["queries"], redmi["blocked"]), (11, 7))
        self.assertEqual(redmi["previous"], {"queries": 3, "blocked": 2})
        self.assertEqual(redmi["statuses"], {"blocked": 7, "forwarded": 3, "cached": 1,
                                             "refused": 0, "failed": 0})
        self.assertEqual((redmi["first_hit"], redmi["last_hit"]),
                         ("2026-11-22T07:15:00+00:00", "2026-11-22T23:59:00+00:00"))
        xiaomi, sensors = redmi["vendors"]
        self.assertEqual((xiaomi["vendor"], xiaomi["category"], xiaomi["hits"],
                          xiaomi["previous_hits"], xiaomi["change"], xiaomi["new"]),
                         ("Xiaomi", "telemetry", 5, 2, 3, False))
        self.assertEqual([(d["domain"], d["hits"], d["previous_hits"], d["new"])
                          for d in xiaomi["domains"]],
                         [("data.mistat.xiaomi.com", 4, 2, False),
                          ("tracking.intl.miui.com", 1, 0, True)])
        self.assertEqual((sensors["vendor"], sensors["hits"], sensors["new"], sensors["change"]),
                         ("Sensors Analytics", 2, True, 2))
        self.assertEqual(sensors["domains"][0]["first_hit"], "2026-11-22T11:00:00+00:00")
        self.assertEqual(sensors["domains"][0]["last_hit"], "2026-11-22T14:00:00+00:00")
        self.assertEqual((tv["queries"], tv["blocked"], tv["vendors"][0]["change"],
                          tv["vendors"][0]["new"]), (2, 1, 0, False))
        self.assertEqual((laptop["client"], laptop["name"], laptop["queries"], laptop["blocked"],
                          laptop["vendors"], laptop["new_device"]),
                         ("192.168.1.40", None, 3, 0, [], True))
        self.assertEqual(laptop["statuses"]["failed"], 1)
        self.assertEqual(laptop["statuses"]["refused"], 1)
        tl = j["timeline"]
        self.assertEqual((tl["start"], tl["bucket_seconds"], len(tl["queries"])),
                         ("2026-11-22T06:00:00+00:00", 3600, 24))
        self.assertEqual(sum(tl["queries"]), 16)
        self.assertEqual(sum(tl["blocked"]), 8)
        self.assertEqual((tl["queries"][1], tl["blocked"][1]), (2, 2))  # 07:15, 07:16
        self.assertEqual((tl["queries"][23], tl["blocked"][23]), (2, 1))  # 05:00, 05:59:59

    def test_csv_exact(self):
        out = self.run_ok("--format", "csv")
        rows = list(csv.reader(io.StringIO(out, newline="")))
        self.assertEqual(rows, [
            ["client", "name", "mac", "vendor", "category", "domain", "hits", "previous_hits",
             "new", "first_seen", "last_seen"],
            ["192.168.1.23", "redmi-note-8", "aa:bb:cc:dd:ee:01", "Xiaomi", "telemetry",
             "data.mistat.xiaomi.com", "4", "2", "no", "2026-11-22T07:15:00+00:00",
             "2026-11-22T23:59:00+00:00"],
            ["192.168.1.23", "redmi-note-8", "aa:bb:cc:dd:ee:01", "Xiaomi", "telemetry",
             "tracking.intl.miui.com", "1", "0", "yes", "2026-11-22T09:00:00+00:00",
             "2026-11-22T09:00:00+00:00"],
            ["192.168.1.23", "redmi-note-8", "aa:bb:cc:dd:ee:01", "Sensors Analytics",
             "analytics", "sdk.sensorsdata.cn", "2", "0", "yes", "2026-11-22T11:00:00+00:00",
             "2026-11-22T14:00:00+00:00"],
            ["192.168.1.50", "living-room-tv", "", "Samsung", "telemetry", "samsungads.com",
             "1", "1", "no", "2026-11-23T05:00:00+00:00", "2026-11-23T05:00:00+00:00"],
        ])

    def test_html_content(self):
        out = self.run_ok("--format", "html")
        self.assertTrue(out.startswith("<!DOCTYPE html>"))
        self.assertIn("default-src 'none'", out)  # the page may not fetch anything
        self.assertIsNone(re.search(r"(src|href)\s*=|https?:|url\(|<script", out, re.I))
        for s in ("redmi-note-8", "living-room-tv", "192.168.1.40", "data.mistat.xiaomi.com",
                  "Sensors Analytics", "<b>16</b>queries", "<b>8</b>blocked (50.0%)",
                  "Log incomplete: 5 queries"):
            self.assertIn(s, out)
        self.assertEqual(out.count('<svg class="vendors"'), 2)  # the laptop has no bars
        self.assertEqual(out.count('<svg class="timeline"'), 1)
        # One bar group per hour, each with its numbers in a tooltip.
        self.assertEqual(out.count("<title>2026-11-"), 24)
        self.assertIn("<title>2026-11-22 07:00: 2 queries, 2 blocked</title>", out)
        self.assertIn('<td class="new">new</td>', out)

    def test_html_escapes(self):
        d = tempfile.mkdtemp(dir=self.dir)
        db = os.path.join(d, "q.db")
        evil = ("192.168.1.66", None, "<script>x</script>")
        make_log(db, [blocked("2026-11-22T07:00:00", evil, "a.example", ("e.list", 'V"&<', "ads"))])
        out = report("--db", db, "--until", UNTIL, "--format", "html").stdout
        self.assertNotIn("<script>", out)
        self.assertIn("&lt;script&gt;x&lt;/script&gt;", out)
        self.assertIn("V&quot;&amp;&lt;", out)
        out = report("--db", db, "--until", UNTIL, "--format", "csv").stdout
        self.assertIn('"V""&<"', out)
        # A name is logged with the bytes it was asked with; reports show them as dig does, so
        # a query cannot add a line to the mail.
        conn = sqlite3.connect(db)
        conn.execute("UPDATE domains SET name = ? WHERE name = 'a.example'",
                     ("a\nFAKE LINE\\\"\x00\xff.example".encode("latin-1"),))
        conn.commit()
        conn.close()
        out = report("--db", db, "--until", UNTIL).stdout
        self.assertIn("    a\\010FAKE\\032LINE\\092\\034\\000\\255.example ", out)
        self.assertNotIn("\nFAKE", out)

    def test_client_filter(self):
        for who in ("redmi-note-8", "192.168.1.24", "AA:BB:CC:DD:EE:01"):
            j = json.loads(self.run_ok("--format", "json", "--client", who))
            self.assertEqual([c["name"] for c in j["clients"]], ["redmi-note-8"], who)
            self.assertEqual(j["totals"]["queries"], 11)
        p = report("--db", self.db, "--until", UNTIL, "--client", "192.168.1.99")
        self.assertEqual(p.returncode, 4, p.stderr)

    def test_other_windows(self):
        # A 12-hour window ending at 18:00 on the 22nd (9 of the phone's rows, 1 of the laptop's),
        # compared with 18:00 - 06:00 the night before (nothing).
        j = json.loads(self.run_ok("--format", "json", "--since", "12h", "--until",
                                   "2026-11-22T18:00:00+00:00"))
        self.assertEqual(j["since"], "2026-11-22T06:00:00+00:00")
        self.assertEqual(j["totals"], {"queries": 10, "blocked": 6, "clients": 2, "vendors": 2})
        self.assertEqual(j["previous"]["blocked"], 0)
        # Dates are local midnight; a week is bucketed by hour, longer by day.
        j = json.loads(report("--db", self.db, "--since", "2026-11-16", "--until", "2026-11-23",
                              "--format", "json").stdout)
        self.assertEqual(j["timeline"]["bucket_seconds"], 3600)
        self.assertEqual(j["totals"]["queries"], 18)  # 1 on the 19th, 4 on the 21st, 13 on the 22nd
        j = json.loads(report("--db", self.db, "--since", "30d", "--until", UNTIL, "--format",
                              "json").stdout)
        self.assertEqual((j["timeline"]["bucket_seconds"], len(j["timeline"]["queries"])),
                         (86400, 30))
        self.assertFalse(j["previous"]["compared"])
        self.assertEqual(j["totals"]["queries"], 21)

    def test_nothing_to_compare(self):
        # The log starts inside the window: no "new" claims, and the report says why.
        j = json.loads(self.run_ok("--format", "json", "--since", "5d"))
        self.assertFalse(j["previous"]["compared"])
        self.assertFalse(j["log"]["covers_window"])
        self.assertIsNone(j["clients"][0]["vendors"][0]["new"])
        out = self.run_ok("--since", "5d")
        self.assertIn("The log starts at 2026-11-19 12:00, inside this window.", out)
        self.assertIn("Nothing to compare with", out)
        self.assertNotIn(" new", out.split("\n\n", 2)[2])

    def test_output_is_atomic(self):
        d = tempfile.mkdtemp(dir=self.dir)
        target = os.path.join(d, "r.html")
        with open(target, "w") as f:
            f.write("old")
        p = report("--db", self.db, "--until", UNTIL, "--format", "html", "--output", target)
        self.assertEqual((p.returncode, p.stdout), (0, ""), p.stderr)
        with open(target) as f:
            self.assertIn("redmi-note-8", f.read())
        self.assertEqual(os.listdir(d), ["r.html"])  # no temporary file left behind
        # A failure leaves the old file alone and nothing else.
        os.chmod(d, 0o500)
        try:
            if os.geteuid() != 0:
                p = report("--db", self.db, "--until", UNTIL, "--output", target)
                self.assertEqual(p.returncode, 1)
        finally:
            os.chmod(d, 0o700)
        p = report("--db", self.db, "--until", UNTIL, "--output", os.path.join(d, "no", "r.txt"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("no/", p.stderr)
        self.assertEqual(os.listdir(d), ["r.html"])


class ExitCodes(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="telesink-report-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.db = os.path.join(self.dir, "q.db")
        make_log(self.db, ROWS, COUNTERS)

    def check(self, args, code, message):
        p = report(*args)
        self.assertEqual(p.returncode, code, p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)  # one clear line
        self.assertRegex(p.stderr, message)

    def test_missing_database(self):
        self.check(["--db", os.path.join(self.dir, "none.db")], 3, r"no query log at .*none.db")

    def test_not_a_query_log(self):
        other = os.path.join(self.dir, "other.db")
        sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.commit()
        self.check(["--db", other], 3, "not a telesink query log")
        junk = os.path.join(self.dir, "junk.db")
        with open(junk, "wb") as f:
            f.write(b"this is not sqlite" * 100)
        self.check(["--db", junk], 3, "not a telesink query log")

    def test_empty_window(self):
        self.check(["--db", self.db, "--until", "2026-11-10"], 4, "nothing logged")

    def test_bad_when(self):
        for bad in ("yesterday", "24", "0h", "-3h", "2026-13-01", "2026-02-30", "2026-11-01T25:00",
                    "2026-11-01T06:00+2", "1000000w"):
            self.check(["--db", self.db, "--since", bad], 2, "--since: cannot read '%s'" %
                       re.escape(bad))
        self.check(["--db", self.db, "--until", "soon"], 2, "--until: cannot read")
        self.check(["--db", self.db, "--since", "2026-11-23", "--until", "2026-11-22"], 2,
                   "is not before")

    def test_bad_flags(self):
        self.check(["--db", self.db, "--format", "pdf"], 2, "--format")
        self.check(["--db", self.db, "--top", "x"], 2, "--top")
        self.check(["--db", self.db, "extra"], 2, "unexpected argument")

    def test_db_from_config(self):
        conf = os.path.join(self.dir, "t.conf")
        with open(conf, "w") as f:
            f.write("[log]\ndb = %s\n" % self.db)
        p = report("--config", conf, "--until", UNTIL)
        self.assertEqual((p.returncode, p.stdout), (0, TEXT), p.stderr)
        with open(conf, "w") as f:
            f.write("[log]\nnonsense = 1\n")
        self.check(["--config", conf], 2, r"t.conf:2")


# ---- through the real daemon ----------------------------------------------------------------

LIST = """\
# vendor: Phonehome
# category: telemetry
# description: test vendor
metrics.phonehome.test  # source: test
"""


class ThroughServe(unittest.TestCase):
    def test_queries_from_several_clients(self):
        d = tempfile.mkdtemp(prefix="telesink-report-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "p.list"), "w") as f:
            f.write(LIST)
        db = os.path.join(d, "q.db")
        config = ("[server]\nallow = 127.0.0.0/8, ::1\n[lists]\npaths = %s\n"
                  "[log]\nflush_ms = 50\n[clients]\n127.0.0.2 = phone\n" % d)
        with FakeUpstream(zone={"www.example.test": {"A": ["192.0.2.1"]}}) as up, \
                Telesink(upstreams=[up.addr], config=config, args=["--db", db]) as ts:
            plan = [("127.0.0.2", "metrics.phonehome.test", 3), ("127.0.0.2", "www.example.test", 1),
                    ("127.0.0.3", "a.metrics.phonehome.test", 2), ("127.0.0.3", "www.example.test", 2),
                    (None, "metrics.phonehome.test", 1)]
            for src, name, n in plan:
                for _ in range(n):
                    if src:
                        a = dig(ts.v4, name, options=["-b", src])
                    else:
                        a = dig(ts.v6, name)
                    self.assertEqual(a.rcode, "NXDOMAIN" if "phonehome" in name else "NOERROR")
            # While serve runs (and writes), the report reads the same file.
            deadline = time.monotonic() + 10
            while True:
                p = report("--db", db, "--format", "json")
                if p.returncode == 0 and json.loads(p.stdout)["totals"]["queries"] == 9:
                    break
                self.assertLess(time.monotonic(), deadline, p.stderr)
                time.sleep(0.05)  # polling the flush (flush_ms = 50), not a guess
            a = dig(ts.v4, "www.example.test", options=["-b", "127.0.0.3"])
            self.assertEqual(a.rcode, "NOERROR")
            self.assertEqual(ts.stop(), 0)
        self.assertEqual(ts.stats()["queries"], 10)
        j = json.loads(report("--db", db, "--format", "json").stdout)
        self.assertEqual(j["totals"], {"queries": 10, "blocked": 6, "clients": 3, "vendors": 1})
        self.assertTrue(j["log"]["complete"])
        got = {(c["client"], c["name"]): (c["queries"], c["blocked"],
                                          [(v["vendor"], v["hits"],
                                            [(x["domain"], x["hits"]) for x in v["domains"]])
                                           for v in c["vendors"]])
               for c in j["clients"]}
        self.assertEqual(got, {
            ("127.0.0.2", "phone"): (4, 3, [("Phonehome", 3, [("metrics.phonehome.test", 3)])]),
            ("127.0.0.3", None): (5, 2, [("Phonehome", 2, [("a.metrics.phonehome.test", 2)])]),
            ("::1", None): (1, 1, [("Phonehome", 1, [("metrics.phonehome.test", 1)])]),
        })
        text = report("--db", db).stdout
        self.assertIn("3 devices, 10 queries, 6 blocked (60.0%) to 1 vendor.", text)
        self.assertIn("\nphone  127.0.0.2\n  4 queries, 3 blocked (75.0%)", text)


# ---- the HTML page in a real browser --------------------------------------------------------

CHROMIUM = shutil.which("chromium")
ARTIFACTS = os.environ.get("ARTIFACT_DIR", tempfile.gettempdir())


class Browser(unittest.TestCase):
    def chromium(self, page, *args):
        profile = tempfile.mkdtemp(prefix="telesink-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        netlog = os.path.join(profile, "netlog.json")
        # In a network namespace of its own (only a loopback, down): the browser's own
        # background fetches (component updates) cannot leave the machine either.
        jail = ["unshare", "--net"] if os.geteuid() == 0 else []
        p = subprocess.run(jail + [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                                   "--no-first-run", "--disable-background-networking",
                                   "--disable-component-update", "--disable-sync",
                                   "--user-data-dir=" + profile, "--log-net-log=" + netlog,
                                   "--net-log-capture-mode=Everything", *args, "file://" + page],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        with open(netlog) as f:
            log = json.load(f)
        # Requests made for the page carry its site (file://) in their isolation key; the
        # browser's own background requests carry "null null".
        start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        urls = set()
        for e in log["events"]:
            params = e.get("params")
            if e["type"] == start and isinstance(params, dict) and \
                    params.get("network_isolation_key", "").startswith("file://"):
                urls.add(params["url"])
        return p.stdout, urls

    def test_renders_offline(self):
        self.assertIsNotNone(CHROMIUM, "chromium is not installed (contrib/setup test installs it)")
        d = tempfile.mkdtemp(prefix="telesink-report-")
        self.addCleanup(shutil.rmtree, d, True)
        db = os.path.join(d, "q.db")
        make_log(db, ROWS, COUNTERS)
        page = os.path.join(d, "report.html")
        p = report("--db", db, "--until", UNTIL, "--format", "html", "--output", page)
        self.assertEqual(p.returncode, 0, p.stderr)

        # The rendered DOM has the charts and the names.
        dom, urls = self.chromium(page, "--dump-dom")
        for s in ("redmi-note-8", "living-room-tv", "192.168.1.40", "Sensors Analytics"):
            self.assertIn(s, dom)
        self.assertEqual(dom.count('<svg class="vendors"'), 2)
        self.assertIn('<svg class="timeline"', dom)
        self.assertEqual(dom.count("<rect"), 2 * 24 + 3)  # the timeline, 3 vendor bars
        # The page made no request: the only URL the browser touched is the file itself.
        self.assertEqual({u for u in urls if not u.startswith(("file:", "data:", "about:"))},
                         set(), urls)

        # A phone-sized screenshot, kept for people to look at.
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "report.png")
        if os.path.exists(shot):
            os.unlink(shot)
        self.chromium(page, "--screenshot=" + shot, "--window-size=412,1400",
                      "--hide-scrollbars")
        with open(shot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(int.from_bytes(png[16:20], "big"), 412)
        self.assertGreater(len(png), 20000)  # not a blank page

    def test_netlog_sees_requests(self):
        """The control: a page that does fetch something shows up in the net log."""
        self.assertIsNotNone(CHROMIUM, "chromium is not installed (contrib/setup test installs it)")
        d = tempfile.mkdtemp(prefix="telesink-report-")
        self.addCleanup(shutil.rmtree, d, True)
        page = os.path.join(d, "fetch.html")
        with open(page, "w") as f:
            f.write('<!DOCTYPE html><img src="http://127.0.0.1:9/pixel.png">')
        _, urls = self.chromium(page, "--dump-dom")
        self.assertIn("http://127.0.0.1:9/pixel.png", urls)


if __name__ == "__main__":
    unittest.main()

"""The nightly report job: contrib/telesink-nightly-report (run by contrib/cron/telesink and by
contrib/systemd/telesink-report.timer) prints the text report for cron to mail, archives the
HTML report as REPORT_DIR/YYYY-MM-DD.html, prunes old archives and nothing else; the cron.d
line and the systemd units are checked for what they run.
"""
import datetime
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import BIN
from logdb import make_log

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "contrib", "telesink-nightly-report")
LIST = ("xiaomi.list", "Xiaomi", "telemetry")


class Nightly(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="telesink-nightly-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.db = os.path.join(self.dir, "q.db")
        self.conf = os.path.join(self.dir, "telesink.conf")
        with open(self.conf, "w") as f:
            f.write("[log]\ndb = %s\n" % self.db)
        self.reports = os.path.join(self.dir, "reports")

    def fill(self, hours_ago):
        now = int(time.time() * 1000)
        rows = []
        for i in range(3):
            rows.append((now - hours_ago * 3600000 + i, "192.168.1.23", None, "redmi-note-8",
                         "data.mistat.xiaomi.com", "A", "blocked", *LIST, "NXDOMAIN", None, 40))
        rows.append((now - hours_ago * 3600000 + 5, "192.168.1.40", None, None, "example.org",
                     "A", "forwarded", None, None, None, "NOERROR", "192.0.2.1:53", 9000))
        make_log(self.db, rows)

    def run_job(self, **env):
        e = dict(os.environ, TELESINK=BIN, TELESINK_CONFIG=self.conf, REPORT_DIR=self.reports)
        e.update(env)
        return subprocess.run(["/bin/sh", SCRIPT], capture_output=True, text=True, env=e,
                              timeout=60)

    def age(self, name, days):
        path = os.path.join(self.reports, name)
        with open(path, "w") as f:
            f.write("x")
        t = time.time() - days * 86400
        os.utime(path, (t, t))
        return path

    def test_mails_text_archives_html_prunes(self):
        self.fill(hours_ago=2)
        os.makedirs(self.reports)
        old = self.age("2020-01-01.html", 100)
        old_txt = self.age("2020-01-01.txt", 100)
        recent = self.age("2026-11-20.html", 2)
        other = self.age("notes.html", 100)  # not an archive: left alone
        p = self.run_job(REPORT_TEXT="yes")
        self.assertEqual(p.returncode, 0, p.stderr)
        # The text report on stdout is what cron mails.
        self.assertRegex(p.stdout, r"^telesink report: the 24 hours to ")
        self.assertIn("2 devices, 4 queries, 3 blocked (75.0%) to 1 vendor.", p.stdout)
        self.assertIn("\nredmi-note-8  192.168.1.23\n", p.stdout)
        today = datetime.date.today().isoformat()
        with open(os.path.join(self.reports, today + ".html")) as f:
            html = f.read()
        self.assertTrue(html.startswith("<!DOCTYPE html>"))
        self.assertIn("redmi-note-8", html)
        with open(os.path.join(self.reports, today + ".txt")) as f:
            self.assertIn("redmi-note-8", f.read())
        self.assertFalse(os.path.exists(old))
        self.assertFalse(os.path.exists(old_txt))
        self.assertTrue(os.path.exists(recent))
        self.assertTrue(os.path.exists(other))
        # No temporary files left by --output.
        self.assertEqual(sorted(os.listdir(self.reports)),
                         sorted(["2026-11-20.html", "notes.html", today + ".html",
                                 today + ".txt"]))

    def test_keep_days(self):
        self.fill(hours_ago=2)
        os.makedirs(self.reports)
        mid = self.age("2026-10-01.html", 10)
        self.assertEqual(self.run_job(REPORT_KEEP_DAYS="30").returncode, 0)
        self.assertTrue(os.path.exists(mid))
        self.assertEqual(self.run_job(REPORT_KEEP_DAYS="5").returncode, 0)
        self.assertFalse(os.path.exists(mid))
        p = self.run_job(REPORT_KEEP_DAYS="ten")
        self.assertEqual(p.returncode, 2)
        self.assertIn("REPORT_KEEP_DAYS", p.stderr)

    def test_nothing_logged_is_said(self):
        # Last night nothing was logged (is telesink running?): one line, exit 4, still prunes.
        self.fill(hours_ago=48)
        os.makedirs(self.reports)
        old = self.age("2020-01-01.html", 100)
        p = self.run_job()
        self.assertEqual(p.returncode, 4)
        self.assertEqual(p.stdout, "")
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("nothing logged", p.stderr)
        self.assertFalse(os.path.exists(old))

    def test_no_database(self):
        p = self.run_job()
        self.assertEqual(p.returncode, 3)
        self.assertIn("no query log", p.stderr)


class Units(unittest.TestCase):
    def test_cron_line(self):
        with open(os.path.join(ROOT, "contrib", "cron", "telesink")) as f:
            lines = [l for l in f.read().splitlines() if l and not l.startswith("#")]
        jobs = [l.split(None, 6) for l in lines if not re.match(r"^\w+=", l)]
        self.assertEqual(len(jobs), 1, jobs)
        minute, hour, dom, mon, dow, user, command = jobs[0]
        self.assertEqual((minute, hour, dom, mon, dow, user), ("30", "6", "*", "*", "*", "root"))
        self.assertEqual(command, "/usr/libexec/telesink/nightly-report")
        self.assertNotIn("%", command)  # cron would turn it into a newline
        self.assertIn("MAILTO=root", lines)

    def test_systemd_units_verify(self):
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze, "systemd-analyze is part of systemd (Debian's default)")
        d = tempfile.mkdtemp(prefix="telesink-units-")
        self.addCleanup(shutil.rmtree, d, True)
        for name in ("telesink-report.service", "telesink-report.timer"):
            with open(os.path.join(ROOT, "contrib", "systemd", name)) as f:
                text = f.read()
            # The installed paths, pointed at this tree for the check.
            text = text.replace("/usr/libexec/telesink/nightly-report", SCRIPT)
            text = text.replace("/usr/bin/telesink", BIN)
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        p = subprocess.run([analyze, "verify", "--man=no", "telesink-report.service",
                            "telesink-report.timer"], cwd=d, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr.strip(), "")  # not even a warning (unknown keys are one)
        with open(os.path.join(d, "telesink-report.timer")) as f:
            self.assertIn("OnCalendar=*-*-* 06:30:00", f.read())


if __name__ == "__main__":
    unittest.main()

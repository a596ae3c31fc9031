"""tests/tools/mklog and logdb.make_log: a database built from a spec reads back exactly, through
the `queries` view and the `counters` table, with ids in time order; appending continues the
ids; a bad line exits 2, names the line and writes nothing.
"""
import os
import sqlite3
import tempfile
import unittest

from logdb import FLAG_VIA_CNAME, MklogError, make_log, run_mklog

T = 1790000000000  # a wall-clock millisecond in 2026
HOUR = T // 3600000

ROWS = [  # deliberately not in time order; two rows share a millisecond
    (T + 2500, "192.168.1.30", None, None, "www.example.test", "AAAA", "forwarded", None, None,
     None, "NXDOMAIN", "192.0.2.53:53", 12345),
    (T + 1000, "192.168.1.20", "aa:bb:cc:dd:ee:ff", "tv", "metrics.vendor.test", "HTTPS",
     "blocked", "vendor-tv", "Vendor", "telemetry", "NOERROR", None, 40, FLAG_VIA_CNAME),
    (T + 1000, "192.168.1.20", "aa:bb:cc:dd:ee:ff", "tv", "www.example.test", 65, "cached", None,
     None, None, 0, None, 0),
]
COUNTERS = [(HOUR, 10, 3, 6, 1)]


def query_rows(db):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM queries ORDER BY id")]


def scalar(db, sql):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchone()[0]


class TestMklog(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="telesink-mklog-")
        self.db = os.path.join(self.dir.name, "q.db")

    def tearDown(self):
        self.dir.cleanup()

    def test_rows_read_back_exactly(self):
        make_log(self.db, ROWS, COUNTERS)
        got = query_rows(self.db)
        keys = ("ts", "client", "client_name", "client_mac", "qname", "qtype", "status",
                "vendor", "list", "category", "rcode", "upstream", "duration_ms", "via_cname")
        self.assertEqual([{k: r[k] for k in keys} for r in got], [
            dict(ts=(T + 1000) / 1000, client="192.168.1.20", client_name="tv",
                 client_mac="aa:bb:cc:dd:ee:ff", qname="metrics.vendor.test", qtype="HTTPS",
                 status="blocked", vendor="Vendor", list="vendor-tv", category="telemetry",
                 rcode="NOERROR", upstream=None, duration_ms=0.04, via_cname=1),
            dict(ts=(T + 1000) / 1000, client="192.168.1.20", client_name="tv",
                 client_mac="aa:bb:cc:dd:ee:ff", qname="www.example.test", qtype="HTTPS",
                 status="cached", vendor=None, list=None, category=None, rcode="NOERROR",
                 upstream=None, duration_ms=0.0, via_cname=0),
            dict(ts=(T + 2500) / 1000, client="192.168.1.30", client_name=None, client_mac=None,
                 qname="www.example.test", qtype="AAAA", status="forwarded", vendor=None,
                 list=None, category=None, rcode="NXDOMAIN", upstream="192.0.2.53:53",
                 duration_ms=12.345, via_cname=0),
        ])
        # Ids as the writer makes them: (ms << 10) | sequence within the millisecond.
        self.assertEqual([r["id"] for r in got],
                         [(T + 1000) << 10, ((T + 1000) << 10) | 1, (T + 2500) << 10])
        self.assertEqual(scalar(self.db, "SELECT count(*) FROM clients"), 2)
        self.assertEqual(scalar(self.db, "SELECT count(*) FROM domains"), 2)
        self.assertEqual(scalar(self.db, "SELECT min(last_seen) FROM clients"), HOUR)
        with sqlite3.connect(self.db) as conn:
            self.assertEqual(conn.execute("SELECT * FROM counters").fetchall(),
                             [(HOUR, 10, 3, 6, 1)])

    def test_append_continues_ids(self):
        make_log(self.db, ROWS[:1])
        make_log(self.db, [ROWS[0][:1] + ("192.168.1.40",) + ROWS[0][2:]], COUNTERS + COUNTERS)
        got = query_rows(self.db)
        self.assertEqual([(r["id"], r["client"]) for r in got],
                         [((T + 2500) << 10, "192.168.1.30"),
                          (((T + 2500) << 10) | 1, "192.168.1.40")])
        self.assertEqual(scalar(self.db, "SELECT queries FROM counters"), 20)

    def test_bad_line_writes_nothing(self):
        bad = (T, "192.168.1.20", None, None, "x.test", "A", "sinkholed", None, None, None,
               "NOERROR", None, 1)
        with self.assertRaises(MklogError) as e:
            make_log(self.db, ROWS + [bad], COUNTERS)
        self.assertEqual(e.exception.returncode, 2)
        self.assertIn("mklog: line 4: STATUS", e.exception.stderr)
        self.assertFalse(os.path.exists(self.db))

        # Comments and blank lines count; an existing database stays as it was.
        make_log(self.db, ROWS[:1])
        p = run_mklog(self.db, "# a comment\n\nq\t1\t192.168.1.20\n")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr, "mklog: line 3: a q record has 14 or 15 fields, not 3\n")
        self.assertEqual(len(query_rows(self.db)), 1)
        self.assertEqual(scalar(self.db, "SELECT count(*) FROM counters"), 0)


if __name__ == "__main__":
    unittest.main()

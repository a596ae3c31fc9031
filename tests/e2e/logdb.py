"""Query-log databases with known content, for tests that read the log (`telesink report`).

make_log() runs tests/tools/mklog ($MKLOG_BIN), which writes through the real storage code
(resolver/db.c) the way the query-log writer does: rows sorted by time, one transaction, ids
(ms << 10) | sequence. The database is created when missing and appended to otherwise.

A row is a tuple in this order (FLAGS may be left off; it defaults to 0):

    (ts_ms, addr, mac, name, qname, qtype, status, list, vendor, category, rcode, upstream,
     duration_us[, flags])

    ts_ms        int, unix milliseconds
    addr         client address text, e.g. "192.168.1.20"
    mac, name    client MAC and configured name, None for none
    qname        the name asked for, stored as given, e.g. "metrics.vendor.test"
    qtype        "A", "AAAA", "HTTPS", ... or a number
    status       "blocked", "forwarded", "cached", "refused" or "failed"
    list, vendor, category
                 the blocking list, None for no list (vendor and category then None too)
    rcode        "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP" or a number
    upstream     e.g. "192.0.2.53:53", None for none
    duration_us  int, microseconds
    flags        int, DB_FLAG_* from resolver/db.h (1 via CNAME, 2 identity from a forwarder)

A counters tuple is (hour, queries, logged, not_logged, dropped), hour = unix seconds // 3600;
counters for the same hour add up.
"""
import os
import subprocess

MKLOG = os.environ.get("MKLOG_BIN", os.path.join(os.path.dirname(__file__), "../../build/tests/mklog"))

FLAG_VIA_CNAME = 1
FLAG_FORWARDED = 2


class MklogError(Exception):
    """mklog failed: returncode 2 for a bad line (nothing written), 1 for a database error."""

    def __init__(self, returncode, stderr):
        super().__init__(f"mklog exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


def _field(v):
    if v is None or v == "":
        return "-"
    s = str(v)
    if any(c in s for c in "\t\r\n"):
        raise ValueError(f"a field with a tab or newline: {s!r}")
    return s


def spec(rows, counters=()):
    """The mklog input for rows and counters: line i is rows[i - 1], then the counters."""
    lines = ["\t".join(["q"] + [_field(v) for v in r]) for r in rows]
    lines += ["\t".join(["c"] + [_field(v) for v in c]) for c in counters]
    return "".join(line + "\n" for line in lines)


def run_mklog(db_path, text):
    """Run mklog on spec text as it is; the CompletedProcess (text stdout/stderr)."""
    return subprocess.run([MKLOG, db_path], input=text, capture_output=True, text=True, timeout=60)


def make_log(db_path, rows, counters=()):
    """Write rows and counters (tuples, see above) into db_path; MklogError when mklog fails."""
    p = run_mklog(db_path, spec(rows, counters))
    if p.returncode != 0:
        raise MklogError(p.returncode, p.stderr)

"""Process life: the command line, signals (SIGTERM/SIGINT exit 0, SIGHUP reloads), TCP idle
timeout and connection cap, the default upstream from resolv.conf."""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import dns.message

from harness import (BIN, FakeUpstream, SilentUpstream, Telesink, dig, framed, kdig, query_wire,
                     recv_framed, tcp_socket, udp_socket)

ZONE = {"www.example.test": {"A": ["192.0.2.10"]}}


def run(*args, timeout=10):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout)


def answer_or_close(sock):
    """The next framed answer, or None when the server closed (FIN, or RST because our query
    was still unread when it closed)."""
    try:
        return recv_framed(sock)
    except ConnectionResetError:
        return None


class CommandLine(unittest.TestCase):
    def test_version_and_help(self):
        r = run("version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^telesink \d+\.\d+\.\d+")
        for cmd in (["--help"], ["serve", "--help"], ["version", "--help"]):
            r = run(*cmd)
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("usage: telesink", r.stdout)

    def test_usage_errors_exit_2(self):
        for args, msg in ((["serve", "--bogus"], "unknown option '--bogus'"),
                          (["serve", "--listen"], "--listen needs a value"),
                          (["serve", "--log-level", "loud"], "'loud' is not"),
                          (["serve", "extra"], "unexpected argument"),
                          (["frobnicate"], "unknown command 'frobnicate'"),
                          ([], "usage:")):
            r = run(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(msg, r.stderr)

    def test_bad_config_line_names_file_and_line(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("[server]\nlisten = 127.0.0.1:0\n\n[upstream]\nservers = 127.0.0.1:9, nonsense\n")
            f.flush()
            r = run("serve", "--config", f.name)
            self.assertEqual(r.returncode, 2)
            self.assertIn("%s:5: upstream: 'nonsense'" % f.name, r.stderr)
        r = run("serve", "--config", "/nonexistent.conf")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent.conf: No such file", r.stderr)
        r = run("serve", "--listen", "127.0.0.1:0", "--upstream", "1.2.3.4:99999")
        self.assertEqual(r.returncode, 2)
        self.assertIn("command line: upstream: '1.2.3.4:99999'", r.stderr)

    def test_no_upstream_is_a_clear_error(self):
        with tempfile.NamedTemporaryFile("w") as f:
            f.write("# nothing here\n")
            f.flush()
            r = run("serve", "--listen", "127.0.0.1:0", "--resolv-conf", f.name)
            self.assertEqual(r.returncode, 2)
            self.assertIn("no usable nameserver", r.stderr)

    def test_port_in_use_exits_1(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            r = run("serve", "--listen", "127.0.0.1:%d" % s.getsockname()[1], "--upstream",
                    "127.0.0.1:9")
            self.assertEqual(r.returncode, 1)
            self.assertIn("Address already in use", r.stderr)

    def test_second_server_on_the_same_log_exits_1(self):
        up = FakeUpstream(zone=ZONE)
        self.addCleanup(up.close)
        d = tempfile.TemporaryDirectory(prefix="telesink-lock-")
        self.addCleanup(d.cleanup)
        db = os.path.join(d.name, "q.db")
        with Telesink(upstreams=[up.addr], args=["--db", db]) as ts:
            # On the same port too: SO_REUSEPORT would let it bind and take half the clients.
            r = run("serve", "--listen", "%s:%d" % ts.v4, "--upstream", up.addr, "--db", db)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("%s: another telesink (pid %d) serves with this query log" % (
                db, ts.proc.pid), r.stderr)
            self.assertNotIn("ready:", r.stderr)
            self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
            self.assertEqual(ts.stop(), 0)
        # Once it stopped, the next one takes the log (the pid left in the lock file is stale).
        with Telesink(upstreams=[up.addr], args=["--db", db]) as ts:
            self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
            with open(db + ".lock") as f:
                self.assertEqual(f.read(), "%d\n" % ts.proc.pid)

    def test_default_upstream_from_resolv_conf(self):
        with tempfile.NamedTemporaryFile("w") as rc:
            rc.write("search lan\nnameserver 127.0.0.1\nnameserver ::1\n")
            rc.flush()
            with Telesink(resolv_conf=rc.name) as ts:
                self.assertIn("upstreams 127.0.0.1:53 [::1]:53", ts.wait_for_line(r"ready: "))


class Threads(unittest.TestCase):
    def test_many_serving_threads(self):
        # More loops than the 64 the log queue once assumed; each has its own ring and cache.
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr], config="[server]\nthreads = 65\n") as ts:
            self.assertIn("65 threads", ts.wait_for_line(r"ready: "))
            for client in (dig, kdig):
                self.assertEqual(client(ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
        self.assertEqual(ts.returncode, 0)
        self.assertGreaterEqual(ts.stats()["queries"], 2)


class Signals(unittest.TestCase):
    def test_sigterm_with_queries_in_flight_exits_0(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig), FakeUpstream(zone=ZONE) as up:
                up.udp_handler = lambda *args: None  # hears everything, answers nothing
                ts = Telesink(upstreams=[up.addr])
                with ts:
                    socks = [udp_socket(ts.v4) for _ in range(20)]
                    for i, s in enumerate(socks):
                        s.send(query_wire("q%d.example.test" % i))
                    tcp = tcp_socket(ts.v4)
                    tcp.sendall(framed(query_wire("tcp.example.test")))
                    self.assertEqual(len(up.wait_queries(21)), 21)  # all in flight
                    t0 = time.monotonic()
                    ts.send_signal(sig)
                    self.assertEqual(ts.proc.wait(5), 0)
                    self.assertLess(time.monotonic() - t0, 2)
                    for s in socks:
                        s.close()
                    tcp.close()
                s = ts.stats()
                self.assertEqual(s["queries"], 21)
                self.assertEqual(s["forwarded"], 21)

    def test_sighup_reloads_upstreams(self):
        with FakeUpstream(zone={"www.example.test": {"A": ["192.0.2.1"]}}) as one, \
                FakeUpstream(zone={"www.example.test": {"A": ["192.0.2.2"]}}) as two:
            ts = Telesink(config="[upstream]\nservers = %s\n" % one.addr)
            with ts:
                self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.1"])
                with open(ts.config_path, "w") as f:
                    f.write("[upstream]\nservers = %s\n" % two.addr)
                n = len(ts.lines)
                ts.send_signal(signal.SIGHUP)
                self.assertIsNotNone(ts.wait_for_line(r"reloaded: upstreams " + two.addr, 5, n))
                # The workers pick up the new config on their next loop turn: poll until they do.
                for _ in range(50):
                    if dig(ts.v4, "www.example.test").addresses() == ["192.0.2.2"]:
                        break
                self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.2"])
                self.assertEqual(kdig(ts.v6, "www.example.test").addresses(), ["192.0.2.2"])

                # A broken file: logged with its line, the old configuration keeps serving.
                with open(ts.config_path, "w") as f:
                    f.write("[upstream]\nservers = %s\ntimeout_ms = soon\n" % one.addr)
                n = len(ts.lines)
                ts.send_signal(signal.SIGHUP)
                self.assertIsNotNone(ts.wait_for_line(r"telesink.conf:3: timeout_ms", 5, n))
                self.assertIsNotNone(ts.wait_for_line(r"reload failed", 5, n))
                self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.2"])
            self.assertEqual(ts.returncode, 0)


class TcpLimits(unittest.TestCase):
    def test_idle_timeout_closes(self):
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr],
                         config="[server]\ntcp_idle_timeout_ms = 300\n") as ts:
            with tcp_socket(ts.v4) as s:
                s.sendall(framed(query_wire("www.example.test", qid=5)))
                self.assertEqual(dns.message.from_wire(recv_framed(s)).id, 5)
                t0 = time.monotonic()
                self.assertEqual(s.recv(10), b"")  # closed by the server
                took = time.monotonic() - t0
                self.assertGreaterEqual(took, 0.25)
                self.assertLess(took, 3)

    def test_connection_cap(self):
        with FakeUpstream(zone=ZONE) as up, \
                Telesink(upstreams=[up.addr],
                         config="[server]\nthreads = 1\ntcp_max_connections = 2\n") as ts:
            a, b = tcp_socket(ts.v4), tcp_socket(ts.v4)
            for s in (a, b):  # both accepted and served
                s.sendall(framed(query_wire("www.example.test", qid=9)))
                self.assertEqual(dns.message.from_wire(recv_framed(s)).id, 9)
            c = tcp_socket(ts.v4)
            c.sendall(framed(query_wire("www.example.test")))
            self.assertIsNone(answer_or_close(c))  # over the cap: closed without an answer
            a.close()
            # Once one closes, a new connection is served again (as soon as the server has seen
            # the close: under load that can take longer than 50 tries in a row).
            deadline = time.monotonic() + 10
            while True:
                d = tcp_socket(ts.v4)
                d.sendall(framed(query_wire("www.example.test", qid=11)))
                r = answer_or_close(d)
                d.close()
                if r is not None or time.monotonic() > deadline:
                    break
            self.assertEqual(dns.message.from_wire(r).id, 11)
            b.close()
            c.close()
        self.assertGreaterEqual(ts.stats()["tcp_refused"], 1)


if __name__ == "__main__":
    unittest.main()

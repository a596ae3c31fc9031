"""Deployment: `cmake --install` into a temporary prefix and `serve` started from there (it finds
the installed lists and configuration, though the prefix was not known when compiling), the
packaged configuration, the man page, the systemd unit, dropping privileges (root with
`user = nobody`; an unprivileged user holding an ambient CAP_NET_BIND_SERVICE, as systemd starts
it) and the one-line startup summary on stderr.

The build directory is the one TELESINK_BIN was built in (ctest sets it); the install uses that
build's cmake_install.cmake, so what is tested is what `cmake --install` does.
"""
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import tempfile
import threading
import unittest

from harness import BIN, FakeUpstream, Telesink, dig

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.path.dirname(os.path.abspath(BIN))
ZONE = {"www.example.test": {"A": ["192.0.2.10"]}}
BLOCKED = "tracking.intl.miui.com"  # lists/xiaomi.list


def cmake_install(build, prefix, destdir=None):
    env = dict(os.environ)
    if destdir:
        env["DESTDIR"] = destdir
    r = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True,
                       text=True, timeout=60, env=env)
    if r.returncode != 0:
        raise AssertionError("cmake --install failed:\n" + r.stdout + r.stderr)
    return r.stdout


def source_lists():
    return sorted(f for f in os.listdir(os.path.join(SOURCE, "lists"))
                  if f.endswith(".list") or f in ("essential.allow", "README.md"))


def proc_status(pid):
    """/proc/PID/status as {field: value}."""
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def config_c_keys():
    """Every key resolver/config.c accepts, by section (from its strcmp(key, "...") tests)."""
    with open(os.path.join(SOURCE, "resolver", "config.c")) as f:
        text = f.read()
    keys = {}
    for fn, section in (("set_server", "server"), ("set_upstream", "upstream"),
                        ("set_lists", "lists"), ("set_log", "log")):
        body = re.search(r"static int %s\(.*?\n}\n" % fn, text, re.S).group(0)
        keys[section] = set(re.findall(r'strcmp\(key, "(\w+)"\)', body))
    return keys


def conf_keys(path):
    """Keys of an INI file by section, set (`key = v`) or shown commented out (`#key = v`)."""
    keys, section = {}, None
    with open(path) as f:
        for line in f:
            m = re.match(r"^\[(\w+)\]", line)
            if m:
                section = m.group(1)
                keys.setdefault(section, set())
                continue
            m = re.match(r"^#?([a-z_]+) =", line)
            if m and section:
                keys[section].add(m.group(1))
    return keys


@unittest.skipUnless(os.path.exists(os.path.join(BUILD, "cmake_install.cmake")),
                     "needs the build directory of TELESINK_BIN")
class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="telesink-prefix-")
        cmake_install(BUILD, cls.prefix)
        cls.bin = os.path.join(cls.prefix, "bin", "telesink")
        cls.conf = os.path.join(cls.prefix, "etc", "telesink", "telesink.conf")
        cls.lists = os.path.join(cls.prefix, "share", "telesink", "lists")
        cls.unit = os.path.join(cls.prefix, "lib", "systemd", "system", "telesink.service")
        cls.man = os.path.join(cls.prefix, "share", "man", "man8", "telesink.8")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, True)

    def setUp(self):
        self.up = FakeUpstream(zone=ZONE)
        self.addCleanup(self.up.close)

    def installed(self, config=None, args=()):
        """A Telesink running the installed binary with no --config unless given."""
        work = tempfile.mkdtemp(prefix="telesink-installed-")
        self.addCleanup(shutil.rmtree, work, True)
        ts = Telesink()
        ts.cmd = [self.bin, "serve", "--listen", "127.0.0.1:0", "--listen", "[::1]:0",
                  "--upstream", self.up.addr, "--db", os.path.join(work, "q.db")]
        if config:
            ts.cmd += ["--config", config]
        ts.cmd += list(args)
        return ts

    def test_layout(self):
        self.assertTrue(os.access(self.bin, os.X_OK))
        self.assertEqual(sorted(os.listdir(self.lists)), source_lists())
        for path in (self.conf, self.unit, self.man):
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644, path)
        script = os.path.join(self.prefix, "share", "telesink", "pihole", "telesink-export")
        self.assertTrue(os.access(script, os.X_OK))

    def test_nightly_report_installed(self):
        job = os.path.join(self.prefix, "libexec", "telesink", "nightly-report")
        self.assertTrue(os.access(job, os.X_OK))
        units = os.path.join(self.prefix, "lib", "systemd", "system")
        with open(os.path.join(units, "telesink-report.service")) as f:
            service = f.read().splitlines()
        self.assertIn("ExecStart=" + job, service)
        self.assertIn("Environment=TELESINK=" + self.bin, service)
        self.assertTrue(os.path.exists(os.path.join(units, "telesink-report.timer")))
        with open(os.path.join(self.prefix, "share", "telesink", "cron.d", "telesink")) as f:
            cron = f.read().splitlines()
        self.assertIn("30 6 * * * root " + job, cron)
        self.assertIn("TELESINK=" + self.bin, cron)

    def test_serve_finds_installed_lists_and_config(self):
        with self.installed() as ts:
            ready = ts.wait_for_line(r"ready: ")
            # The summary names the installed list directory and configuration file.
            self.assertIn("lists %s (42 files, " % self.lists, ready)
            self.assertTrue(ready.endswith("config " + self.conf), ready)
            a = dig(ts.v4, BLOCKED)
            self.assertEqual(a.rcode, "NXDOMAIN", a.text)
            self.assertIn("Xiaomi (xiaomi)", a.text)  # the EDE names the installed list
            self.assertEqual(dig(ts.v6, "www.example.test").addresses(), ["192.0.2.10"])
            self.assertEqual(ts.stop(), 0)

    def test_lists_commands_use_installed_lists(self):
        r = subprocess.run([self.bin, "lists", "match", BLOCKED], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(os.path.join(self.lists, "xiaomi.list"), r.stdout)
        r = subprocess.run([self.bin, "lists", "check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("xiaomi.list", r.stdout)

    def test_report_uses_installed_config(self):
        # The packaged configuration names /var/lib/telesink/telesink.db; the built-in default
        # would be telesink.db in the working directory.
        if os.path.exists("/var/lib/telesink/telesink.db"):
            self.skipTest("a real /var/lib/telesink/telesink.db exists here")
        work = tempfile.mkdtemp(prefix="telesink-report-")
        self.addCleanup(shutil.rmtree, work, True)
        r = subprocess.run([self.bin, "report"], capture_output=True, text=True, cwd=work)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("/var/lib/telesink/telesink.db", r.stderr)

    def test_build_tree_binary_uses_source_tree(self):
        # The binary in the build directory is not in an install tree: the source's lists/.
        with Telesink(upstreams=[self.up.addr]) as ts:
            ready = ts.wait_for_line(r"ready: ")
            self.assertIn("lists %s (" % os.path.join(SOURCE, "lists"), ready)
            self.assertNotIn(self.prefix, ready)

    def test_packaged_config(self):
        got, want = conf_keys(self.conf), config_c_keys()
        for section, keys in want.items():
            self.assertEqual(keys - got.get(section, set()), set(),
                             "[%s] keys missing from contrib/telesink.conf" % section)
        self.assertIn("clients", got)
        with open(self.conf) as f:
            lines = f.read().splitlines()
        # Each key is documented: a comment line right above it (or above its commented default).
        for i, line in enumerate(lines):
            if re.match(r"^#?[a-z_]+ =", line) and not re.match(r"^#?[\d:a-f.]+ =", line):
                self.assertTrue(lines[i - 1].startswith("# "), "undocumented: " + line)
        self.assertIn("listen = 0.0.0.0:53, [::]:53", lines)
        self.assertIn("db = /var/lib/telesink/telesink.db", lines)

    def test_packaged_commented_defaults_are_valid(self):
        # Uncomment every shown default (but the example paths, which need not exist): the file
        # still loads, and flags still override it.
        work = tempfile.mkdtemp(prefix="telesink-conf-")
        self.addCleanup(shutil.rmtree, work, True)
        text, section = [], None
        with open(self.conf) as f:
            for line in f:
                m = re.match(r"^\[(\w+)\]", line)
                section = m.group(1) if m else section
                # DoT's lines are an example (it needs a real certificate), not defaults.
                if re.match(r"^#[a-z_\d:.]+ =", line) and not (
                        section == "lists" and re.match(r"^#(paths|allow) =", line)) and \
                        not line.startswith("#user =") and \
                        not re.match(r"^#tls_(listen|cert|key) =", line):
                    line = line[1:]
                text.append(line)
        conf = os.path.join(work, "all.conf")
        with open(conf, "w") as f:
            f.writelines(text)
        with self.installed(config=conf) as ts:
            ready = ts.wait_for_line(r"ready: ")
            self.assertIn("config " + conf, ready)
            self.assertIn("upstreams " + self.up.addr + ";", ready)
            self.assertEqual(dig(ts.v4, BLOCKED).rcode, "NXDOMAIN")

    def test_reinstall_keeps_edited_config(self):
        prefix = tempfile.mkdtemp(prefix="telesink-prefix-")
        self.addCleanup(shutil.rmtree, prefix, True)
        cmake_install(BUILD, prefix)
        conf = os.path.join(prefix, "etc", "telesink", "telesink.conf")
        with open(conf) as f:
            packaged = f.read()
        edited = packaged.replace("#blocking_mode = nxdomain", "blocking_mode = refused")
        self.assertNotEqual(edited, packaged)
        with open(conf, "w") as f:
            f.write(edited)
        out = cmake_install(BUILD, prefix)
        self.assertIn("Keeping " + conf, out)
        with open(conf) as f:
            self.assertEqual(f.read(), edited)
        with open(conf + ".default") as f:
            self.assertEqual(f.read(), packaged)
        # The installed binary reads the edited file by default.
        ts = Telesink()
        ts.cmd = [os.path.join(prefix, "bin", "telesink"), "serve", "--listen", "127.0.0.1:0",
                  "--upstream", self.up.addr, "--db", os.path.join(prefix, "q.db")]
        with ts:
            self.assertEqual(dig(ts.v4, BLOCKED).rcode, "REFUSED")

    def test_prefix_usr_puts_config_in_etc(self):
        # GNUInstallDirs' rule: for the prefix /usr the configuration is /etc (DESTDIR staging).
        dest = tempfile.mkdtemp(prefix="telesink-destdir-")
        self.addCleanup(shutil.rmtree, dest, True)
        cmake_install(BUILD, "/usr", destdir=dest)
        for path in ("usr/bin/telesink", "etc/telesink/telesink.conf",
                     "usr/share/telesink/lists/xiaomi.list", "usr/share/man/man8/telesink.8",
                     "usr/lib/systemd/system/telesink.service",
                     "usr/libexec/telesink/nightly-report",
                     "usr/lib/systemd/system/telesink-report.timer"):
            self.assertTrue(os.path.exists(os.path.join(dest, path)), path)
        self.assertFalse(os.path.exists(os.path.join(dest, "usr", "etc")))
        with open(os.path.join(dest, "usr/lib/systemd/system/telesink.service")) as f:
            self.assertIn("ExecStart=/usr/bin/telesink serve --config /etc/telesink/telesink.conf",
                          f.read().splitlines())
        with open(os.path.join(dest, "usr/lib/systemd/system/telesink-report.service")) as f:
            self.assertIn("ExecStart=/usr/libexec/telesink/nightly-report", f.read().splitlines())

    def test_systemd_unit(self):
        with open(self.unit) as f:
            lines = f.read().splitlines()
        for want in ("ExecStart=%s serve --config %s" % (self.bin, self.conf),
                     "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                     "DynamicUser=yes", "StateDirectory=telesink",
                     "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "ProtectSystem=strict",
                     "NoNewPrivileges=yes", "WantedBy=multi-user.target"):
            self.assertIn(want, lines)
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is installed by contrib/setup")
        # verify also runs `man telesink(8)` for Documentation=: find the installed page.
        r = subprocess.run(["systemd-analyze", "verify", self.unit], capture_output=True,
                           text=True, timeout=60,
                           env=dict(os.environ, MANPATH=os.path.join(self.prefix, "share", "man")))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Warnings (an unknown key, a bad value) go to stderr with exit 0.
        self.assertEqual([l for l in r.stderr.splitlines() if "telesink.service" in l], [],
                         r.stderr)

    def test_man_page(self):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", self.man], capture_output=True,
                           text=True)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        r = subprocess.run(["man", "-l", self.man], capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH="100", MANPAGER="cat", PAGER="cat"))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        # Plain text, no hyphenation, no line breaks inside paragraphs.
        r = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", "-rHY=0", "-rLL=3000n",
                            self.man], capture_output=True, text=True)
        page = re.sub(r"\s+", " ", r.stdout)
        # Every command and every flag its --help shows (report's from the CLI contract).
        flags = set()
        for cmd in (["serve"], ["lists"]):
            h = subprocess.run([BIN] + cmd + ["--help"], capture_output=True, text=True)
            flags |= set(re.findall(r"(--[a-z][a-z-]+)", h.stdout))
        flags |= {"--db", "--since", "--until", "--client", "--format", "--output", "--top"}
        for word in sorted(flags) + ["serve", "report", "lists check", "lists match",
                                     "lists export", "version", "text", "json", "csv", "html",
                                     "domains", "hosts", "adblock"]:
            self.assertIn(word, page)
        # Every configuration key, signal, exit code and installed file.
        for section, keys in config_c_keys().items():
            self.assertIn("[%s]" % section, page)
            for key in keys:
                self.assertRegex(page, r"\b%s\b" % key)
        for word in ("[clients]", "SIGTERM", "SIGINT", "SIGHUP", "EXIT STATUS", "FILES",
                     "/etc/telesink/telesink.conf", "/usr/share/telesink/lists",
                     "/var/lib/telesink/telesink.db", "telesink.service", "telesink-export"):
            self.assertIn(word, page)
        start = page.index("EXIT STATUS")
        status = page[start:page.index("FILES", start)]
        for code in "01234":
            self.assertRegex(status, r"\b%s\b" % code)


# ---- privileges -------------------------------------------------------------------------------

def nobody():
    return pwd.getpwnam("nobody")


def open_to_nobody(ts):
    """The harness's directory (config, db) readable and writable by nobody."""
    os.chmod(ts.dir.name, 0o777)
    os.chmod(ts.config_path, 0o644)


def free_privileged_port():
    """A port below 1024 free for UDP and TCP on 127.0.0.1 (we are root: we can test-bind)."""
    for port in range(1023, 600, -1):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            u.bind(("127.0.0.1", port))
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port below 1024")


def capabilities(status):
    return {k: int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


@unittest.skipUnless(os.geteuid() == 0, "dropping privileges needs root")
class Privileges(unittest.TestCase):
    def setUp(self):
        self.up = FakeUpstream(zone=ZONE)
        self.addCleanup(self.up.close)

    def test_root_drops_to_user_with_no_capabilities(self):
        ts = Telesink(upstreams=[self.up.addr], config="[server]\nuser = nobody\nthreads = 2\n")
        open_to_nobody(ts)
        with ts:
            self.assertIn("; user nobody;", ts.wait_for_line(r"ready: "))
            st = proc_status(ts.proc.pid)
            pw = nobody()
            self.assertEqual(st["Uid"].split(), [str(pw.pw_uid)] * 4)  # real, effective, saved, fs
            self.assertNotEqual(pw.pw_uid, 0)
            self.assertEqual(st["Gid"].split(), [str(pw.pw_gid)] * 4)
            self.assertEqual(st["Groups"].split(), [str(pw.pw_gid)])
            self.assertEqual(capabilities(st), dict.fromkeys(capabilities(st), 0), st)
            self.assertEqual(st["NoNewPrivs"], "1")
            # Every thread, not only the main one.
            for tid in os.listdir("/proc/%d/task" % ts.proc.pid):
                with open("/proc/%d/task/%s/status" % (ts.proc.pid, tid)) as f:
                    self.assertIn("CapEff:\t0000000000000000\n", f.read())
            # It still answers: blocked locally, forwarded upstream, over UDP and TCP.
            self.assertEqual(dig(ts.v4, BLOCKED).rcode, "NXDOMAIN")
            self.assertEqual(dig(ts.v6, "www.example.test", tcp=True).addresses(), ["192.0.2.10"])
            db = ts.cmd[ts.cmd.index("--db") + 1]
            self.assertEqual(ts.stop(), 0)
            self.assertEqual(os.stat(db).st_uid, pw.pw_uid)  # the log was written as nobody
            con = sqlite3.connect(db)
            self.assertEqual(con.execute("SELECT count(*) FROM queries").fetchone()[0], 2)
            con.close()

    def test_user_root_refused(self):
        ts = Telesink(upstreams=[self.up.addr], config="[server]\nuser = root\n")
        r = subprocess.run(ts.cmd, capture_output=True, text=True, timeout=10)
        ts.dir.cleanup()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("user = root: that is root", r.stderr)

    @unittest.skipUnless(shutil.which("setpriv"), "setpriv (util-linux)")
    def test_ambient_capability_dropped_after_binding(self):
        # As systemd starts it: an unprivileged user with an ambient CAP_NET_BIND_SERVICE binds a
        # port below 1024, then holds no capability.
        port = free_privileged_port()
        setpriv = ["setpriv", "--reuid=nobody", "--regid=%d" % nobody().pw_gid, "--init-groups"]
        ts = Telesink(upstreams=[self.up.addr], listen=("127.0.0.1:%d" % port,))
        open_to_nobody(ts)
        ts.cmd = setpriv + ["--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"] \
            + ts.cmd
        with ts:
            self.assertEqual(ts.v4, ("127.0.0.1", port))
            self.assertIn("; user nobody;", ts.wait_for_line(r"ready: "))
            self.assertIsNotNone(ts.wait_for_line(r"capabilities dropped after binding", 0))
            st = proc_status(ts.proc.pid)
            self.assertEqual(st["Uid"].split(), [str(nobody().pw_uid)] * 4)
            caps = capabilities(st)
            self.assertEqual((caps["CapInh"], caps["CapPrm"], caps["CapEff"], caps["CapAmb"]),
                             (0, 0, 0, 0), st)
            self.assertEqual(dig(ts.v4, BLOCKED).rcode, "NXDOMAIN")
            self.assertEqual(dig(ts.v4, "www.example.test").addresses(), ["192.0.2.10"])
            self.assertEqual(ts.stop(), 0)
        # Without the capability the same bind fails: it was the capability that made it work.
        ts = Telesink(upstreams=[self.up.addr], listen=("127.0.0.1:%d" % port,))
        open_to_nobody(ts)
        r = subprocess.run(setpriv + ts.cmd, capture_output=True, text=True, timeout=10)
        ts.dir.cleanup()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("Permission denied", r.stderr)


# ---- the startup summary ----------------------------------------------------------------------

class StartupSummary(unittest.TestCase):
    def setUp(self):
        self.up = FakeUpstream(zone=ZONE)
        self.addCleanup(self.up.close)
        self.work = tempfile.mkdtemp(prefix="telesink-summary-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.lists = os.path.join(self.work, "lists")
        os.mkdir(self.lists)
        files = {
            "vendor.list": "# vendor: Testvendor\n# category: telemetry\n"
                           "t1.example.test  # source: test\nt2.example.test  # source: test\n",
            "third.hosts": "0.0.0.0 h1.example.test h2.example.test\n0.0.0.0 h3.example.test\n",
            "keep.allow": "ok.example.test\n",
        }
        for name, text in files.items():
            with open(os.path.join(self.lists, name), "w") as f:
                f.write(text)

    def run_until_ready(self, config="", db="q.db"):
        """Start in self.work, read stderr up to the ready line, stop. Returns (exit code, that
        line, stdout, the rest of stderr)."""
        conf = os.path.join(self.work, "t.conf")
        with open(conf, "w") as f:
            # No canaries: the blocked names are exactly the lists' (5).
            f.write("[server]\nthreads = 3\n[lists]\ncanary_doh = no\ncanary_icloud_relay = no\n"
                    + config)
        p = subprocess.Popen([BIN, "serve", "--config", conf, "--listen", "127.0.0.1:0",
                              "--listen", "[::1]:0", "--upstream", self.up.addr, "--lists",
                              self.lists, "--db", db], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=self.work)
        killer = threading.Timer(10, p.kill)  # only if it never gets ready
        killer.start()
        ready = None
        for line in p.stderr:
            if "ready: " in line:
                ready = line.rstrip("\n")
                break
        killer.cancel()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
        self.assertIsNotNone(ready, err)
        return p.returncode, ready, out, err

    def test_summary_fields(self):
        rc, line, out, err = self.run_until_ready(db="rel.db")
        m = re.search(r"^telesink: info \[main\] ready: listening on 127\.0\.0\.1:(\d+) "
                      r"\[::1\]:(\d+) \(udp, tcp\); upstreams (\S+); lists (\S+) \((\d+) files, "
                      r"(\d+) names blocked, (\d+) allowed\); db (\S+);(?: user \S+;)? (\d+) threads; "
                      r"config (\S+)$", line)
        self.assertIsNotNone(m, line)
        self.assertNotIn("0", (m.group(1), m.group(2)))
        # A relative --db is shown as the absolute path it is opened at.
        self.assertEqual(m.groups()[2:], (self.up.addr, self.lists, "3", "5", "1",
                                          os.path.join(self.work, "rel.db"), "3",
                                          os.path.join(self.work, "t.conf")))
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(os.path.join(self.work, "rel.db")))
        self.assertEqual(out, "")  # diagnostics go to stderr only
        self.assertIn("telesink: info [main] stats: ", err)

    def test_summary_log_off(self):
        rc, line, out, err = self.run_until_ready("[log]\nenabled = no\n")
        self.assertIn("(3 files, 5 names blocked, 1 allowed)", line)
        self.assertIn("; db off ([log] enabled = no); 3 threads;", line)
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()

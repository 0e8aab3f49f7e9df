"""The QMP backend tests' guests: a real QEMU (TESTING.md's command line)
whose extra QMP socket the daemon keeps, or tests/fixtures/xen/qmp-double.py
for what a real QEMU cannot do.

A guest owns two sockets: `sock`, the one the daemon's policy names, and
`test_sock`, a second QMP monitor for the test itself (QEMU serves one
client per monitor, and the daemon holds the first for good).  QEMU runs
under the umockdev preload with the harness's UMOCKDEV_DIR (preload=True),
so its usb-host finds the testbed's devices.  Every process is started with
PR_SET_PDEATHSIG and stopped by pid when the test ends, however it ends."""

import json
import os
import signal
import socket
import subprocess
import time

import aua
import daemon

QEMU = os.environ.get("AUA_QEMU", "qemu-system-x86_64")
DOUBLE = os.path.join(aua.FIXTURES, "xen", "qmp-double.py")
XHCI = ["-device", "nec-usb-xhci,id=xenusb-0,p2=8,p3=8"]


def _connect(path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


class Qmp:
    """One short QMP session: greeting, capabilities, commands, close."""

    def __init__(self, path, timeout=5.0):
        self.sock = _connect(path, timeout)
        self.buf = b""
        self.events = []
        self.next_id = 0
        greeting = self.recv()
        aua.check("QMP" in greeting, "no QMP greeting on %s: %r" % (path, greeting))
        self.execute("qmp_capabilities")

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def recv(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                aua.fail("QMP peer closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, args=None, check=True):
        """The "return" value; a QMP error fails the test unless check=False
        (then the error object is returned as {"error": ...})."""
        self.next_id += 1
        msg = {"execute": cmd, "id": self.next_id}
        if args is not None:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self.recv()
            if "event" in reply:
                self.events.append(reply)
                continue
            if reply.get("id") != self.next_id:
                continue
            if "error" in reply:
                if check:
                    aua.fail("QMP %s %s: %s" % (cmd, args, reply["error"]))
                return reply
            return reply.get("return")


class Guest:
    """A guest's device model: kind "qemu" or "double"."""

    def __init__(self, tmp, name, kind="qemu", devices=XHCI, preload=True,
                 double_args=()):
        self.tmp = tmp
        self.name = name
        self.kind = kind
        self.devices = list(devices)
        self.preload = preload
        self.double_args = list(double_args)
        self.sock = os.path.join(tmp, name + ".qmp")
        self.test_sock = os.path.join(tmp, name + ".test.qmp")
        self.log = os.path.join(tmp, name + ".qmp-log")
        self.out = os.path.join(tmp, name + ".out")
        self.proc = None
        aua.on_cleanup(self.stop)

    def start(self, timeout=10.0):
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        if self.kind == "qemu":
            for p in (self.sock, self.test_sock):
                if os.path.exists(p):
                    os.unlink(p)
            if self.preload:
                env["LD_PRELOAD"] = "libumockdev-preload.so.0"
            argv = [QEMU, "-accel", "tcg", "-machine", "pc", "-nodefaults",
                    "-display", "none", "-S", "-m", "64"] + self.devices + [
                "-chardev", "socket,id=qmp,path=%s,server=on,wait=off" % self.sock,
                "-mon", "chardev=qmp,mode=control",
                "-chardev", "socket,id=tqmp,path=%s,server=on,wait=off" % self.test_sock,
                "-mon", "chardev=tqmp,mode=control"]
        else:
            pidfile = os.path.join(self.tmp, self.name + ".pid")
            if os.path.exists(pidfile):
                os.unlink(pidfile)
            argv = ["/usr/bin/python3", DOUBLE, "--socket", self.sock, "--log", self.log,
                    "--pidfile", pidfile] + self.double_args
        with open(self.out, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=env,
                                         preexec_fn=aua._child_setup(os.getpid()))
        if self.kind == "qemu":
            aua.wait_until(self._answers, timeout, "QEMU %s to listen" % self.name, 0.05)
        else:
            aua.wait_until(lambda: os.path.exists(pidfile) or self.proc.poll() is not None,
                           timeout, "the QMP double %s to listen" % self.name, 0.05)
            aua.check(self.proc.poll() is None, "the QMP double died: %s" % self.output())
        return self

    def _answers(self):
        aua.check(self.proc.poll() is None,
                  "QEMU %s exited %s: %s" % (self.name, self.proc.returncode, self.output()))
        try:
            _connect(self.test_sock, 1.0).close()
            return True
        except OSError:
            return False

    def output(self):
        try:
            with open(self.out, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def kill(self):
        """SIGKILL, as a crash: the socket files stay behind."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    # -- looking inside (the real QEMU, through the test's own monitor)

    def qmp(self, cmd, args=None, check=True):
        with Qmp(self.test_sock) as q:
            return q.execute(cmd, args, check)

    def peripherals(self):
        """{id: driver} of what QEMU holds under /machine/peripheral."""
        out = {}
        with Qmp(self.test_sock) as q:
            for child in q.execute("qom-list", {"path": "/machine/peripheral"}):
                t = child.get("type", "")
                if t.startswith("child<"):
                    out[child["name"]] = t[6:-1]
        return out

    def usb_hosts(self):
        """[(id, controller, port, hostbus, hostaddr)] of QEMU's usb-hosts, sorted."""
        out = []
        with Qmp(self.test_sock) as q:
            for child in q.execute("qom-list", {"path": "/machine/peripheral"}):
                if child.get("type") != "child<usb-host>":
                    continue
                path = "/machine/peripheral/" + child["name"]

                vals = [q.execute("qom-get", {"path": path, "property": prop}, check=False)
                        for prop in ("parent_bus", "port", "hostbus", "hostaddr")]
                if any(isinstance(v, dict) and "error" in v for v in vals):
                    continue    # deleted between the list and the get
                bus = vals[0].rsplit("/", 1)[-1]
                out.append((child["name"], bus[:-2] if bus.endswith(".0") else bus,
                            vals[1], vals[2], vals[3]))
        return sorted(out)

    def wait_usb_hosts(self, expected, timeout):
        expected = sorted(expected)
        return aua.wait_until(lambda: self.usb_hosts() == expected, timeout,
                              "QEMU %s to hold %s (holds %s)"
                              % (self.name, expected, self.usb_hosts()), 0.05)

    # -- the double's command log

    def commands(self, execute=None):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            cmds = [json.loads(line) for line in f if line.strip()]
        return [c for c in cmds if execute is None or c.get("execute") == execute]


def wait_log(d, pattern, timeout, start=0):
    """Waits until the daemon's stderr (from offset start) matches the regular
    expression; returns the offset just past the match."""
    import re
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        m = rx.search(d.stderr(), start)
        if m:
            return m.end()
        if not d.running():
            aua.fail("the daemon exited (%s) before logging %r:\n%s"
                     % (d.proc.returncode, pattern, d.stderr()[-3000:]))
        if time.monotonic() >= deadline:
            aua.fail("no log line matching %r within %.1f s; stderr:\n%s"
                     % (pattern, timeout, d.stderr()[-3000:]))
        time.sleep(0.02)


def policy(domains, rules):
    """A policy text: domains is [(name, socket, controller-dict-or-None)]."""
    text = "version: 1\ndomains:\n"
    for name, sock, ctrl in domains:
        text += "  %s:\n    qmp-socket: %s\n" % (name, sock)
        if ctrl:
            text += "    controller: { %s }\n" % ", ".join(
                "%s: %s" % (k, v) for k, v in ctrl.items())
    return text + "rules:\n" + rules


def daemon_args(tmp, policy_path, *extra):
    return daemon.command("--foreground", "-v", "-v", "-c", policy_path, "--state-dir",
                          os.path.join(tmp, "state"), "--control-socket", "none", *extra)


# The key (1050:0407, bus 1 device 5, at 1-1.2) for the vault, and where a
# QEMU with XHCI holds it: (id, controller, port, hostbus, hostaddr).
KEY_TO_VAULT_RULE = """\
  - match: { id: "1050:0407" }
    domain: vault
"""
KEY = ("xenusb-1-5", "xenusb-0", "1", 1, 5)


class Vault:
    """What most QMP tests start from: a testbed with the hubs, the laptop
    keyboard and the key plugged in, a QEMU guest "vault" (XHCI; preload as
    Guest's), and policy.yaml giving it `rules` (a policy's rules: text)."""

    def __init__(self, rules, preload=True):
        self.tmp = aua.tempdir()
        self.tb = aua.Testbed()
        for f in ("hubs", "laptop-keyboard", "yubikey"):
            self.tb.load(f)
        self.guest = Guest(self.tmp, "vault", preload=preload).start()
        self.policy = daemon.write_policy(self.tmp, "policy.yaml",
                                          policy([("vault", self.guest.sock, None)], rules))

    def daemon(self):
        """The daemon on this policy (daemon_args), not yet ready."""
        return aua.Daemon(daemon_args(self.tmp, self.policy), testbed=self.tb)

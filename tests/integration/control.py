"""How the control-socket tests run tests/fixtures/control-echo (the socket
server of src/control.c alone) and auto-usb-attachctl, and talk to a socket
the way a client does: line by line, with a timeout on every wait, so that
a server that hangs fails the test instead of blocking it."""

import json
import os
import select
import socket
import subprocess
import time

import aua
import daemon

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def echo_binary():
    path = aua.find_program("control-echo", "CONTROL_ECHO")
    aua.check(path is not None, "tests/fixtures/control-echo is not built "
              "(make check builds it; or set CONTROL_ECHO)")
    return path


def ctl_binary():
    """ctl/auto-usb-attachctl of this build ($AUA_CTL overrides)."""
    if os.environ.get("AUA_CTL"):
        return os.environ["AUA_CTL"]
    for base in (os.environ.get("AUA_BUILDDIR"), os.getcwd(), aua.TOP_SRCDIR):
        if base:
            path = os.path.join(base, "ctl", "auto-usb-attachctl")
            if os.access(path, os.X_OK):
                return path
    aua.fail("ctl/auto-usb-attachctl is not built (or set AUA_CTL)")


def valgrind_prefix():
    """What daemon.command() puts before the daemon under AUA_VALGRIND=1."""
    if os.environ.get("AUA_VALGRIND") != "1":
        return []
    prefix = daemon.VALGRIND[:]
    if os.environ.get("AUA_VALGRIND_SUPP"):
        prefix.append("--suppressions=" + os.environ["AUA_VALGRIND_SUPP"])
    return prefix


def start_echo(path, *args):
    """control-echo listening on path, ready; stop it with daemon.stop_clean."""
    d = aua.Daemon(valgrind_prefix() + [echo_binary()] + [str(a) for a in args]
                   + [path], name="control-echo")
    d.wait_ready(daemon.timeout(5))
    return d


def run_echo_to_exit(path, *args):
    """control-echo that is expected to give up: (exit code, stderr)."""
    d = aua.Daemon(valgrind_prefix() + [echo_binary()] + [str(a) for a in args]
                   + [path], name="control-echo")
    try:
        d.proc.wait(daemon.timeout(5))
    except subprocess.TimeoutExpired:
        aua.fail("control-echo %s did not exit: %s" % (path, d.stderr()))
    return d.stop()


def run_ctl(*args, user=None, timeout=None):
    """auto-usb-attachctl with args: (exit code, stdout, stderr, seconds).
    user="nobody" runs it as nobody without supplementary groups."""
    argv = valgrind_prefix() + [ctl_binary()] + [
        a if isinstance(a, bytes) else str(a) for a in args]
    if user == "nobody":
        argv = NOBODY + argv
    start = time.monotonic()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout or daemon.timeout(20), env=plain_env())
    except subprocess.TimeoutExpired:
        aua.fail("auto-usb-attachctl %r hung" % argv)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"), time.monotonic() - start)


def plain_env():
    """The environment without the umockdev preload: children that change
    user (or need no mock) are better off without it."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("AUA_REEXEC", None)
    return env


# A client of the socket as another user: sends one request, prints the
# first line it gets back (or nothing), exits 0.
_RAW_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(sys.argv[2].encode() + b"\n")
except OSError:
    pass
buf = b""
try:
    while b"\n" not in buf:
        data = s.recv(4096)
        if not data:
            break
        buf += data
except ConnectionResetError:
    pass
sys.stdout.write(buf.decode("utf-8", "replace"))
"""


def raw_request_as(setpriv_args, path, request):
    """One request sent by a process with other credentials (setpriv's
    arguments); returns (exit code, the first reply line or '', stderr)."""
    p = subprocess.run(["setpriv"] + setpriv_args +
                       ["/usr/bin/python3", "-c", _RAW_CLIENT, path, request],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=daemon.timeout(20), env=plain_env())
    return (p.returncode, p.stdout.decode("utf-8", "replace").rstrip("\n"),
            p.stderr.decode("utf-8", "replace"))


class Client:
    """One connection to a control socket."""

    def __init__(self, path, timeout=5.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(daemon.timeout(timeout))
        self.sock.connect(path)
        self.buf = b""
        aua.on_cleanup(self.close)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, data):
        """Sends it all; False if the server has closed the connection."""
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _recv(self, timeout):
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return None
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""

    def readline(self, timeout=5.0):
        """The next line, without its newline, as text."""
        timeout = daemon.timeout(timeout)
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            data = self._recv(deadline - time.monotonic())
            if data is None:
                aua.fail("no reply line on %s within %.1f s" % (self.path, timeout))
            if not data:
                aua.fail("%s closed the connection before a whole line (got %r)"
                         % (self.path, self.buf[:200]))
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8")

    def request(self, data, timeout=5.0):
        """Sends data (a str or bytes, newline added) and returns the parsed
        reply."""
        if isinstance(data, str):
            data = data.encode()
        aua.check(self.send(data + b"\n"), "%s closed the connection" % self.path)
        return parse(self.readline(timeout))

    def readable(self):
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def wait_closed(self, timeout=5.0, limit=64 * 1024 * 1024):
        """Reads (and drops) until the server closes; returns the bytes read."""
        timeout = daemon.timeout(timeout)
        deadline = time.monotonic() + timeout
        got = len(self.buf)
        while True:
            data = self._recv(deadline - time.monotonic())
            if data is None:
                aua.fail("%s still open after %.1f s" % (self.path, timeout))
            if not data:
                return got
            got += len(data)
            aua.check(got <= limit, "more than %d bytes from %s" % (limit, self.path))


def parse(line):
    try:
        obj = json.loads(line)
    except ValueError as e:
        aua.fail("reply is not JSON (%s): %r" % (e, line[:200]))
    aua.check(isinstance(obj, dict), "reply is not an object: %r" % line[:200])
    aua.check("\n" not in line, "reply spans lines")
    return obj

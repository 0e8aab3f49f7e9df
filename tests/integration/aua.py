"""Integration-test harness for auto-usb-attach.

It owns three things every integration test needs, and nothing about the
daemon's own behaviour:

- Testbed: a umockdev testbed that loads the device descriptions of
  tests/fixtures/devices, hot-plugs and unplugs them, and delivers the uevents
  itself.  Every uevent goes through UeventSender below, so a slow receiver
  makes the harness wait instead of aborting, sequence numbers stay in order,
  and a removal is faithful to the kernel: sysfs is gone first, and the remove
  event carries only what the kernel's carries.
- UeventSender: writes udev's monitor datagrams (the format libudev's
  sd-device-monitor and umockdev 0.17.16's uevent_sender.c use) to every
  $UMOCKDEV_DIR/event* socket, i.e. to every libudev monitor of every process
  running under the umockdev preload.
- Daemon: the program under test as a child process with stdout and stderr
  as pipes, NOTIFY_SOCKET bound by the harness, PR_SET_PDEATHSIG so it never
  outlives the harness, and a stop() that always ends it.

Conventions: a test script calls main(test_function); it exits 0 on pass and
1 on any failure (never 77: a missing prerequisite is a failure), printing
"PASS: name" or "FAIL: name: why".  Run a test as
    umockdev-wrapper /usr/bin/python3 tests/integration/test-NAME.py
(main() re-executes itself under umockdev-wrapper when the preload is missing,
so plain `/usr/bin/python3 tests/integration/test-NAME.py` works too).

Facts this relies on (umockdev 0.17.16, libudev 252; see shared/TESTING.md):
- umockdev's add_from_file() sends "add" through umockdev's own sender when
  UMockdev.in_mock_environment() is true.  That function caches its first
  answer, and the answer is false while no testbed exists (it stats /sys).
  Testbed() asks it first, so umockdev never sends anything itself and
  Testbed.load() sends the adds (once each) through UeventSender.  Should the
  cache already say true (someone asked after making a testbed), load() leaves
  the adds to umockdev and only counts them.
- umockdev's sender aborts the whole process when a receiver's queue is full
  (EAGAIN; net.unix.max_dgram_qlen is 10).  UeventSender waits for room
  instead (poll for POLLOUT on a connected datagram socket), so bursts of any
  length arrive complete, at the receiver's pace.
"""

import ctypes
import glob
import json
import os
import queue
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(TOP_SRCDIR, "tests", "fixtures")
DEVICES = os.path.join(FIXTURES, "devices")

PRELOAD = "libumockdev-preload.so"
WRAPPER = "umockdev-wrapper"


# ------------------------------------------------------------------ results

class TestFailure(Exception):
    """A check failed; the message says what was expected and what came."""


def fail(message):
    raise TestFailure(message)


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def check_equal(actual, expected, what):
    if actual != expected:
        raise TestFailure("%s: expected %r, got %r" % (what, expected, actual))


def in_preload():
    return PRELOAD in os.environ.get("LD_PRELOAD", "")


def ensure_preload():
    """Re-execute this script under umockdev-wrapper unless it already runs
    under the preload (the testbed needs it: TESTING.md)."""
    if in_preload():
        return
    if os.environ.get("AUA_REEXEC"):
        fail("still not under %s after re-executing with %s"
             % (PRELOAD, WRAPPER))
    wrapper = shutil.which(WRAPPER)
    if not wrapper:
        fail("%s not found: install the Debian package umockdev" % WRAPPER)
    os.environ["AUA_REEXEC"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(wrapper, [wrapper, sys.executable] + sys.argv)


_cleanups = []


def on_cleanup(fn):
    """Run fn() when the test ends, however it ends (last in, first out)."""
    _cleanups.append(fn)
    return fn


def tempdir(prefix="aua-test."):
    path = tempfile.mkdtemp(prefix=prefix)
    on_cleanup(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def _raise_on_signal(signum, frame):
    raise SystemExit("killed by signal %d" % signum)


def main(test, name=None):
    """Run test() and exit: 0 on success, 1 on any failure."""
    name = name or os.path.basename(sys.argv[0])
    ensure_preload()
    # make check's timeout or a ^C must still run the cleanups
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)
    rc = 1
    try:
        test()
        rc = 0
    except TestFailure as e:
        print("FAIL: %s: %s" % (name, e), flush=True)
    except BaseException as e:
        traceback.print_exc()
        print("FAIL: %s: unexpected %s: %s" % (name, type(e).__name__, e),
              flush=True)
    finally:
        while _cleanups:
            fn = _cleanups.pop()
            try:
                fn()
            except Exception:
                traceback.print_exc()
                rc = 1
    if rc == 0:
        print("PASS: %s" % name, flush=True)
    sys.exit(rc)


def json_until(d, predicate, timeout, what):
    """Reads JSON lines from d's stdout (a watcher's stream) until
    predicate(line) holds; returns the lines read, the matching one last."""
    seen = []
    while True:
        ev = d.json_lines(1, timeout)[0]
        seen.append(ev)
        if predicate(ev):
            return seen
        check(len(seen) < 50, "%s: not among %r" % (what, seen))


def wait_until(predicate, timeout, what, interval=0.01):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------- uevent datagrams

UDEV_MONITOR_MAGIC = 0xfeedcafe
# libudev's receive buffer; a longer datagram arrives truncated and dropped
UDEV_MONITOR_BUFSIZE = 8192
# What a kernel remove uevent carries beyond ACTION/DEVPATH/SUBSYSTEM/SEQNUM
# (drivers/base/core.c dev_uevent, drivers/usb/core: usb_uevent,
# usb_dev_uevent, usb_if_uevent); DRIVER is gone: unbind came first.
KERNEL_REMOVE_KEYS = ("MAJOR", "MINOR", "DEVNAME", "DEVTYPE", "PRODUCT",
                      "TYPE", "BUSNUM", "DEVNUM", "INTERFACE", "MODALIAS")
HEADER_KEYS = ("ACTION", "DEVPATH", "SUBSYSTEM", "SEQNUM")


def murmur_hash2(data, seed=0):
    """MurmurHash2, 32 bit, as systemd's string_hash32() (little endian)."""
    m = 0x5bd1e995
    mask = 0xffffffff
    length = len(data)
    h = (seed ^ length) & mask
    i = 0
    while length - i >= 4:
        k = struct.unpack_from("<I", data, i)[0]
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
        i += 4
    rest = length - i
    if rest == 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def tag_bloom64(tag):
    h = murmur_hash2(tag.encode())
    bits = 0
    for shift in (0, 6, 12, 18):
        bits |= 1 << ((h >> shift) & 63)
    return bits


def pack_uevent(props):
    """One udev monitor datagram for props, a list of (key, value) that
    starts with ACTION, DEVPATH, SUBSYSTEM and SEQNUM.

    Layout (40-byte header, then the properties):
      char prefix[8]      "libudev\\0"
      u32  magic          0xfeedcafe, big endian (a BPF filter reads it)
      u32  header_size    40, host order
      u32  properties_off 40, host order
      u32  properties_len bytes of "KEY=VALUE\\0" strings, host order
      u32  subsystem_hash MurmurHash2(SUBSYSTEM), big endian
      u32  devtype_hash   MurmurHash2(DEVTYPE) or 0, big endian
      u32  tag_bloom_hi   bloom of the TAGS, big endian
      u32  tag_bloom_lo
    """
    keys = [k for k, _ in props[:4]]
    if keys != list(HEADER_KEYS):
        raise ValueError("uevent must start with %s, not %s"
                         % (HEADER_KEYS, keys))
    d = dict(props)
    payload = b"".join(("%s=%s" % (k, v)).encode() + b"\0" for k, v in props)
    bloom = 0
    for tag in d.get("TAGS", "").split(":"):
        if tag:
            bloom |= tag_bloom64(tag)
    devtype = d.get("DEVTYPE")
    header = (b"libudev\0" +
              struct.pack(">I", UDEV_MONITOR_MAGIC) +
              struct.pack("=III", 40, 40, len(payload)) +
              struct.pack(">IIII", murmur_hash2(d["SUBSYSTEM"].encode()),
                          murmur_hash2(devtype.encode()) if devtype else 0,
                          bloom >> 32, bloom & 0xffffffff))
    datagram = header + payload
    if len(datagram) > UDEV_MONITOR_BUFSIZE:
        raise ValueError("uevent of %d bytes: libudev drops more than %d"
                         % (len(datagram), UDEV_MONITOR_BUFSIZE))
    return datagram


class UeventSender:
    """Delivers datagrams to every libudev monitor of the testbed.

    A monitor under the preload is a unix datagram socket bound to
    $UMOCKDEV_DIR/event<fd>.  A full receive queue makes send() wait (up to
    `timeout` seconds per listener) instead of failing.
    """

    def __init__(self, root_dir, timeout=10.0):
        self.root_dir = root_dir
        self.timeout = timeout
        self.sent = 0          # datagrams delivered, summed over listeners
        self.waits = 0         # times a full queue made us wait

    def listeners(self):
        return sorted(glob.glob(os.path.join(self.root_dir, "event[0-9]*")))

    def send(self, datagram):
        """Deliver to all current listeners; returns how many got it."""
        delivered = 0
        for path in self.listeners():
            if self._send_one(path, datagram):
                delivered += 1
        return delivered

    def _send_one(self, path, datagram):
        s = socket.socket(socket.AF_UNIX,
                          socket.SOCK_DGRAM | socket.SOCK_NONBLOCK |
                          socket.SOCK_CLOEXEC)
        try:
            try:
                s.connect(path)
            except ConnectionRefusedError:
                # its monitor was closed: nobody will ever read this socket
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                return False
            except FileNotFoundError:
                return False
            deadline = time.monotonic() + self.timeout
            poller = select.poll()
            poller.register(s, select.POLLOUT)
            while True:
                try:
                    s.send(datagram)
                    self.sent += 1
                    return True
                except BlockingIOError:
                    pass
                except ConnectionRefusedError:
                    return False    # the receiver closed meanwhile
                self.waits += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("uevent receiver %s has not read its queue for "
                         "%.0f s" % (path, self.timeout))
                poller.poll(max(1, int(left * 1000)))
        finally:
            s.close()


# ----------------------------------------------------------------- testbed

_seqnum = 0


def _next_seqnum():
    global _seqnum
    _seqnum += 1
    return _seqnum


def _read_props(path):
    """KEY=VALUE lines of a sysfs uevent file as an ordered list."""
    props = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f.read().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                props.append((key, value))
    return props


def _devname(value):
    # the kernel and umockdev's uevent file say "bus/usb/...", udevd "/dev/..."
    return value if value.startswith("/") else "/dev/" + value


def renumber(text, devnum):
    """A device description with its one usb_device moved to another device
    number, as a replug gives it: DEVNUM, DEVNAME, MINOR, devnum, dev, N:."""
    blocks = text.split("\n\n")
    hits = [i for i, b in enumerate(blocks) if "E: DEVTYPE=usb_device" in b]
    if len(hits) != 1:
        raise ValueError("renumber needs exactly one usb_device, found %d"
                         % len(hits))
    i = hits[0]
    block = blocks[i]
    busnum = int(re.search(r"^E: BUSNUM=(\d+)$", block, re.M).group(1))
    minor = (busnum - 1) * 128 + devnum - 1
    node = "bus/usb/%03d/%03d" % (busnum, devnum)
    subs = [
        (r"^E: DEVNUM=\d+$", "E: DEVNUM=%03d" % devnum),
        (r"^E: DEVNAME=\S+$", "E: DEVNAME=/dev/" + node),
        (r"^E: MINOR=\d+$", "E: MINOR=%d" % minor),
        (r"^A: devnum=\d+", "A: devnum=%d" % devnum),
        (r"^A: dev=(\d+):\d+", r"A: dev=\g<1>:%d" % minor),
        (r"^N: bus/usb/\d+/\d+", "N: " + node),
    ]
    for pattern, repl in subs:
        block = re.sub(pattern, repl, block, flags=re.M)
    blocks[i] = block
    return "\n\n".join(blocks)


class Testbed:
    """A umockdev testbed whose uevents all go through UeventSender.

    Paths given to and returned by its methods are syspaths as the daemon
    sees them ("/sys/devices/..."); "/devices/..." and bus ids ("1-1.2") are
    accepted too.
    """

    def __init__(self, send_timeout=10.0):
        if not in_preload():
            fail("the harness must run under the umockdev preload "
                 "(umockdev-wrapper, or aua.main())")
        try:
            import gi
            gi.require_version("UMockdev", "1.0")
            from gi.repository import UMockdev
        except (ImportError, ValueError) as e:
            fail("%s cannot load UMockdev (%s): run the tests with "
                 "/usr/bin/python3, with python3-gi and gir1.2-umockdev-1.0 "
                 "installed" % (sys.executable, e))
        # Cache "not in a mock environment" before the testbed exists, so
        # that umockdev sends no uevent itself (see the module comment).
        UMockdev.in_mock_environment()
        self._tb = UMockdev.Testbed.new()
        self.umockdev_sends_add = UMockdev.in_mock_environment()
        self.root = self._tb.get_root_dir()
        os.environ["UMOCKDEV_DIR"] = self.root
        self.sender = UeventSender(self.root, send_timeout)
        on_cleanup(self.close)

    def close(self):
        if self._tb is None:
            return
        self._tb = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- paths

    def syspath(self, name):
        """'/sys/devices/...' for a syspath, a '/devices/...' path or a bus
        id such as '1-1.2' or 'usb1'."""
        if name.startswith("/sys/"):
            return name
        if name.startswith("/devices/"):
            return "/sys" + name
        link = os.path.join(self.root, "sys/bus/usb/devices", name)
        target = os.path.realpath(link)
        prefix = os.path.join(self.root, "sys") + "/"
        if not target.startswith(prefix) or not os.path.isdir(target):
            fail("no USB device %s in the testbed" % name)
        return "/sys/" + target[len(prefix):]

    def real(self, syspath):
        """Where a syspath lives on disk, for a harness that wants to look
        without the preload's redirection."""
        return self.root + self.syspath(syspath)

    def exists(self, name):
        return os.path.isdir(self.root + self.syspath(name))

    def properties(self, name):
        return dict(_read_props(os.path.join(self.real(name), "uevent")))

    def listeners(self):
        return self.sender.listeners()

    def wait_listeners(self, count=1, timeout=5.0):
        """Wait until `count` libudev monitors exist: events sent before a
        monitor exists are lost."""
        return wait_until(lambda: len(self.listeners()) >= count, timeout,
                          "%d uevent listener(s) in %s" % (count, self.root))

    # -- plugging

    def load(self, path, devnum=None):
        """Add the devices of a .umockdev file (a bare name is looked up in
        tests/fixtures/devices), each announced by one "add" uevent in file
        order.  devnum moves its usb_device to that device number, as a
        replug would.  Returns the syspaths added."""
        if not os.path.isabs(path) and not os.path.exists(path):
            path = os.path.join(DEVICES, path)
            if not path.endswith(".umockdev"):
                path += ".umockdev"
        with open(path) as f:
            text = f.read()
        if devnum is not None:
            text = renumber(text, devnum)
        return self.load_string(text)

    def load_string(self, text):
        syspaths = ["/sys" + line[3:].strip()
                    for line in text.splitlines() if line.startswith("P: ")]
        self._tb.add_from_string(text)
        for syspath in syspaths:
            if self.umockdev_sends_add:
                _next_seqnum()          # umockdev's sender numbered it
            else:
                self.uevent(syspath, "add")
        return syspaths

    def uevent(self, name, action="change", extra=()):
        """Send `action` for an existing device with the properties of its
        uevent file (plus `extra` pairs); waits while receivers are full.
        Returns how many listeners got it."""
        syspath = self.syspath(name)
        real = self.root + syspath
        props = _read_props(os.path.join(real, "uevent"))
        subsystem = dict(props).get("SUBSYSTEM")
        link = os.path.join(real, "subsystem")
        if os.path.islink(link):
            subsystem = os.path.basename(os.readlink(link))
        if not subsystem:
            fail("%s has no subsystem" % syspath)
        head = [("ACTION", action), ("DEVPATH", syspath[4:]),
                ("SUBSYSTEM", subsystem), ("SEQNUM", str(_next_seqnum()))]
        body = [(k, _devname(v) if k == "DEVNAME" else v)
                for k, v in props + list(extra) if k not in HEADER_KEYS]
        return self.sender.send(pack_uevent(head + body))

    def remove(self, name, udev_db=False):
        """Unplug a device the way the kernel does: its sysfs subtree goes
        away first, then one "remove" per device in it, children first (a
        hub's devices, then interfaces, then the device itself).  Each event
        carries only what a kernel remove carries; udev_db=True adds the
        udev properties too (ID_*), as real udevd does from its database.
        Returns the syspaths in the order their removes were sent."""
        syspath = self.syspath(name)
        real = self.root + syspath
        if not os.path.isdir(real):
            fail("cannot remove %s: not in the testbed" % syspath)
        order = self._removal_order(real)
        events = []
        for dev in order:
            props = _read_props(os.path.join(dev, "uevent"))
            link = os.path.join(dev, "subsystem")
            subsystem = (os.path.basename(os.readlink(link))
                         if os.path.islink(link)
                         else dict(props).get("SUBSYSTEM", ""))
            events.append(("/sys" + dev[len(self.root) + 4:], subsystem,
                           props))

        # One remove_device() per device, children first: umockdev's
        # removes the whole subtree but cleans the /sys/bus and /sys/class
        # links of the top device only, and a stale link makes a later
        # load() of the same device abort.
        for dev_syspath, _, _ in events:
            self._tb.remove_device(dev_syspath)
        check(not os.path.exists(real), "umockdev left %s behind" % real)

        for dev_syspath, subsystem, props in events:
            head = [("ACTION", "remove"), ("DEVPATH", dev_syspath[4:]),
                    ("SUBSYSTEM", subsystem),
                    ("SEQNUM", str(_next_seqnum()))]
            d = dict(props)
            body = [(k, _devname(d[k]) if k == "DEVNAME" else d[k])
                    for k in KERNEL_REMOVE_KEYS if k in d]
            if udev_db:
                body += [(k, v) for k, v in props
                         if k not in KERNEL_REMOVE_KEYS and
                         k not in HEADER_KEYS and k != "DRIVER"]
            self.sender.send(pack_uevent(head + body))
        return [e[0] for e in events]

    @staticmethod
    def _removal_order(real):
        def is_device(d):
            return os.path.isfile(os.path.join(d, "uevent"))

        def devtype(d):
            return dict(_read_props(os.path.join(d, "uevent"))).get("DEVTYPE")

        def child_devices(d):
            found = []
            for entry in sorted(os.listdir(d)):
                p = os.path.join(d, entry)
                if os.path.islink(p) or not os.path.isdir(p):
                    continue
                if is_device(p):
                    found.append(p)
                else:           # e.g. real sysfs' "hidraw/" class folders
                    found += child_devices(p)
            return found

        def post_order(d):
            kids = child_devices(d)
            kids.sort(key=lambda k: devtype(k) != "usb_device")
            out = []
            for k in kids:
                out += post_order(k)
            if is_device(d):
                out.append(d)
            return out

        return post_order(real)


# ------------------------------------------------------------------ daemon

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def _child_setup(parent_pid):
    # Runs in the child between fork and exec: only calls resolved above.
    def setup():
        if _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent_pid:      # the parent died before prctl
            os._exit(126)
    return setup


class Daemon:
    """The program under test, as a child process.

        with aua.Daemon([binary, "--flag"], testbed=tb) as d:
            d.wait_ready(5)
            line = d.readline(2)
        # stopped (SIGTERM, then SIGKILL) however the block was left

    stdout is read line by line (readline, expect_lines, json_lines,
    wait_line, wait_json); stderr is collected and returned by stop().
    NOTIFY_SOCKET points at a datagram socket of the harness; every message
    is kept in .notifications (a list of dicts) and the wait_* methods
    consume them in order.
    """

    def __init__(self, argv, testbed=None, env=None, cwd=None, name=None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.notifications = []
        self.stdout_log = []            # every stdout line read so far
        self.returncode = None
        self._notify_cursor = 0
        self._stderr = []
        self._stderr_lock = threading.Lock()
        self._lines = queue.Queue()
        self._stopped = False
        self._dir = tempfile.mkdtemp(prefix="aua-daemon.")
        self.notify_path = os.path.join(self._dir, "notify")
        self._notify = socket.socket(socket.AF_UNIX,
                                     socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._notify.bind(self.notify_path)

        child_env = dict(os.environ)
        child_env.pop("AUA_REEXEC", None)
        if testbed is not None:
            child_env["UMOCKDEV_DIR"] = testbed.root
        child_env["NOTIFY_SOCKET"] = self.notify_path
        child_env.update(env or {})
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=child_env, cwd=cwd,
                preexec_fn=_child_setup(os.getpid()))
        except BaseException:
            self._close_files()
            raise
        self.pid = self.proc.pid
        on_cleanup(self._cleanup)
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._readers:
            t.start()

    # -- context manager

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        rc, err = self.stop()
        if exc_type is not None and err.strip():
            sys.stderr.write("--- stderr of %s (exit %s) ---\n%s"
                             "--- end of stderr ---\n" % (self.name, rc, err))
        self._close_files()

    def _cleanup(self):
        self.stop()
        self._close_files()

    def _close_files(self):
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- readers (threads)

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)           # EOF

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self._stderr_lock:
                self._stderr.append(raw.decode("utf-8", "replace"))

    def stderr(self):
        # Once the process has exited, what it wrote last may still be in
        # the pipe: let the reader drain it (once) before answering.
        if not getattr(self, "_drained", False) and self.proc.poll() is not None:
            self._readers[1].join(2)
            self._drained = True
        with self._stderr_lock:
            return "".join(self._stderr)

    def _why(self):
        rc = self.proc.poll()
        state = "running" if rc is None else "exited with %s" % rc
        tail = self.stderr()[-2000:]
        return "%s %s; stderr:\n%s" % (self.name, state, tail or "(empty)")

    # -- stdout

    def readline(self, timeout=5.0):
        """The next stdout line (without its newline)."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            fail("no output line from %s within %.1f s (%s)"
                 % (self.name, timeout, self._why()))
        if line is None:
            self._lines.put(None)       # stay at EOF for later calls
            self.proc.wait()
            fail("%s closed its stdout (%s)" % (self.name, self._why()))
        self.stdout_log.append(line)
        return line

    def expect_lines(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        return [self.readline(max(0.0, deadline - time.monotonic()))
                for _ in range(count)]

    def json_lines(self, count, timeout=5.0):
        out = []
        for line in self.expect_lines(count, timeout):
            try:
                out.append(json.loads(line))
            except ValueError as e:
                fail("%s printed a line that is not JSON (%s): %r"
                     % (self.name, e, line))
        return out

    def wait_line(self, pattern, timeout=5.0):
        """Read until a line matches the regular expression; returns the
        match.  Lines skipped on the way stay in stdout_log."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("no line matching %r from %s within %.1f s"
                     % (pattern, self.name, timeout))
            m = rx.search(self.readline(left))
            if m:
                return m

    def wait_json(self, match, timeout=5.0):
        """Read JSON lines until one matches: `match` is a dict of expected
        top-level values or a predicate.  Returns the object."""
        if isinstance(match, dict):
            expected = match

            def match(obj):
                return all(obj.get(k) == v for k, v in expected.items())
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("no JSON line matching from %s within %.1f s"
                     % (self.name, timeout))
            line = self.readline(left)
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if match(obj):
                return obj

    # -- sd_notify

    def _receive_notify(self, timeout):
        """Read at most one notification; False on timeout."""
        if self._notify is None:
            return False
        r, _, _ = select.select([self._notify], [], [], max(0.0, timeout))
        if not r:
            return False
        data = self._notify.recv(4096)
        msg = {}
        for line in data.decode("utf-8", "replace").split("\n"):
            if "=" in line:
                key, value = line.split("=", 1)
                msg[key] = value
        msg["_time"] = time.monotonic()
        self.notifications.append(msg)
        return True

    def wait_notify(self, key, value="1", timeout=5.0):
        """Wait for a notification with key=value that came after the one
        the previous wait_* call consumed; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(self._notify_cursor, len(self.notifications)):
                if self.notifications[i].get(key) == value:
                    self._notify_cursor = i + 1
                    return self.notifications[i]
            if self.proc.poll() is not None:
                # the last messages may still be queued
                if not self._receive_notify(0):
                    fail("%s=%s never notified (%s)"
                         % (key, value, self._why()))
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                fail("no %s=%s notification from %s within %.1f s (%s)"
                     % (key, value, self.name, timeout, self._why()))
            self._receive_notify(min(left, 0.1))

    def wait_ready(self, timeout=5.0):
        return self.wait_notify("READY", "1", timeout)

    def notified(self, key, value="1"):
        """Whether any notification so far said key=value (reads what is
        queued first)."""
        while self._receive_notify(0):
            pass
        return any(n.get(key) == value for n in self.notifications)

    # -- process

    def running(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            os.kill(self.pid, sig)

    def stop(self, timeout=5.0):
        """SIGTERM, wait up to `timeout`, then SIGKILL; returns
        (exit code, stderr text).  The exit code is negative for a signal
        (-9 when it had to be killed).  Safe to call more than once."""
        if not self._stopped:
            self._stopped = True
            if self.proc.poll() is None:
                os.kill(self.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.kill(self.pid, signal.SIGKILL)
                    self.proc.wait()
            self.returncode = self.proc.returncode
            # keep late notifications (STOPPING=1) for assertions
            while self._receive_notify(0):
                pass
            for t, pipe in zip(self._readers,
                               (self.proc.stdout, self.proc.stderr)):
                t.join(2.0)
                # A grandchild may still hold the pipe open; closing it
                # under a blocked reader would hang: leave it to the exit.
                if not t.is_alive():
                    pipe.close()
        return self.returncode, self.stderr()


# ---------------------------------------------------------------- programs

def find_program(name, env_var=None):
    """A test program built by make (tests/fixtures/NAME in the build tree,
    the current directory when make check runs), or the path in env_var."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    for base in (os.getcwd(), TOP_SRCDIR):
        path = os.path.join(base, "tests", "fixtures", name)
        if os.access(path, os.X_OK):
            return path
    return None

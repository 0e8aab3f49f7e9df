#!/usr/bin/python3
"""The benchmarks of auto-usb-attach that need udev, and the table of all of
them: (b) latency, (c) load and reload, (d) memory, (e) idle CPU, (f) storm,
with (a) and the in-process load times read from match-bench's output.
bench/run builds what this needs and runs it under the umockdev preload;
bench/README.md says what each figure means.

Six programs run side by side on one umockdev testbed of 100 plugged
devices (bench/machine.py), driven by the integration harness
(tests/integration/aua.py):
  - daemon-10, daemon-1000, daemon-10000: src/auto-usb-attach --dry-run
    --json -c POLICY, with match-bench's generated policies;
  - delivery: tests/fixtures/udev-monitor -t usb_device, a libudev monitor
    that prints every event with all its properties;
  - bare: bench/bare-monitor, a libudev monitor that prints one short line;
  - baseline: bench/baseline.py, the old script's job in Python/pyudev.
Each event goes to one program only (TimedSender.only), the programs in
turn, so that all of them are measured under the same load of the machine,
event by event: a machine shared with other work drifts by hundreds of
microseconds within seconds, and the figures of interest are differences of
tens.

Timestamps (CLOCK_MONOTONIC): a send is stamped by the harness's sender just
before the write of the device's datagram; a line when the harness's reader
thread gets it from the program's stdout.  Both include the harness's own
Python overheads, the same for every program: the differences between
programs are what the table reads.

This prints figures and never judges a time; it exits 1 when a step breaks
or an event is lost.
"""

import argparse
import contextlib
import gc
import json
import os
import platform
import re
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
sys.path.insert(0, HERE)

import aua  # noqa: E402
import machine  # noqa: E402

SIZES = (10, 1000, 10000)
IDLE_SECONDS = 10.0
STORM_EVENTS = 10000
LATENCY_EVENTS = 300            # per program, half unplugs, half plugs
PACE = 0.002                    # seconds between paced events
RELOADS = 15
TOGGLED = ("1-1.2", "1-1.3", "1-1.4.2", "1-2")      # the fixtures' leaves
FIXTURE_FILE = {"1-1.2": "yubikey", "1-1.3": "keyboard",
                "1-1.4.2": "storage", "1-2": "webcam"}
BASELINE_ARGS = ["-d", "vault", "-u", "1-1.4", "-x", "1050:0407"]
# Under the preload a libudev monitor is the socket $UMOCKDEV_DIR/event<fd>:
# two processes whose monitors got the same fd number share one path, and
# the later one takes it from the earlier.  Each program starts with FD_SLOT
# more descriptors open than the one before, so their monitors differ.
FD_SLOT = 16
# exec argv[2:] with descriptors 3 .. 3 + argv[1] - 1 open (on a pipe: the
# preload takes anything opened under /dev for a device node of its own)
SPACER = """import os, sys
r, w = os.pipe()
for fd in range(3, 3 + int(sys.argv[1])):
    if fd != r:
        os.dup2(r, fd, inheritable=True)
os.set_inheritable(r, True)
os.execv(sys.argv[2], sys.argv[2:])
"""


class BenchError(Exception):
    """A step broke: the figures of this run are not to be trusted."""


# ------------------------------------------------------------ the harness

class TimedSender(aua.UeventSender):
    """The harness's sender, (1) sending only to the listener `only` when it
    is set, and (2) stamping each usb_device datagram right before the write
    that delivers it.  For (2) _send_one is aua.UeventSender's with the stamp
    between connect() and send(): finding and connecting the listener costs
    Python ~30 us, which is the harness's, not the program's."""

    def __init__(self, root_dir, timeout=10.0):
        super().__init__(root_dir, timeout)
        self.last_device_send = None
        self.only = None

    def listeners(self):
        found = super().listeners()
        if self.only is None:
            return found
        return [p for p in found if p == self.only]

    def _send_one(self, path, datagram):
        if b"\0DEVTYPE=usb_device\0" not in datagram:
            return super()._send_one(path, datagram)
        s = socket.socket(socket.AF_UNIX,
                          socket.SOCK_DGRAM | socket.SOCK_NONBLOCK |
                          socket.SOCK_CLOEXEC)
        try:
            try:
                s.connect(path)
            except (ConnectionRefusedError, FileNotFoundError):
                # a closed monitor: the harness's own code deals with it
                return super()._send_one(path, datagram)
            deadline = time.monotonic() + self.timeout
            poller = select.poll()
            poller.register(s, select.POLLOUT)
            while True:
                try:
                    t = time.monotonic_ns()
                    s.send(datagram)
                    self.last_device_send = t
                    self.sent += 1
                    return True
                except BlockingIOError:
                    pass
                except ConnectionRefusedError:
                    return False
                self.waits += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("uevent receiver %s has not read its "
                                     "queue for %.0f s" % (path,
                                                           self.timeout))
                poller.poll(max(1, int(left * 1000)))
        finally:
            s.close()


class TimedDaemon(aua.Daemon):
    """aua.Daemon whose reader thread stamps each stdout line on arrival:
    stamps[i] belongs to stdout_log[i]."""

    def __init__(self, *args, **kwargs):
        self.stamps = []
        super().__init__(*args, **kwargs)

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self.stamps.append(time.monotonic_ns())
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def next_line(self, timeout=5.0):
        """(line, arrival in ns)."""
        line = self.readline(timeout)
        return line, self.stamps[len(self.stdout_log) - 1]

    def drain(self, quiet=0.3):
        """Reads lines until none came for `quiet` seconds; returns them."""
        got = []
        while True:
            try:
                got.append(self.readline(quiet))
            except aua.TestFailure:
                if not self.running():
                    raise BenchError("%s exited; stderr:\n%s"
                                     % (self.name, self.stderr()[-2000:]))
                return got


class Program:
    """One of the programs: how to start it and read its lines; once started,
    its TimedDaemon (.d) and its uevent socket (.listener)."""

    def __init__(self, name, argv, initial_lines, parse):
        self.name = name
        self.argv = argv
        self.initial_lines = initial_lines
        self.parse = parse      # line -> (action or None, port)
        self.d = None
        self.listener = None

    def start(self, stack, tb, slot):
        argv = self.argv
        if slot:
            argv = ["/usr/bin/python3", "-c", SPACER, str(FD_SLOT * slot)] + \
                argv
        before = set(tb.listeners())
        self.d = stack.enter_context(TimedDaemon(argv, testbed=tb,
                                                 name=self.name))
        try:
            self.d.wait_ready(30)
        except aua.TestFailure as e:
            raise BenchError("%s did not get ready: %s" % (self.name, e))
        lines = self.d.drain()
        if len(lines) != self.initial_lines:
            raise BenchError("%s printed %d lines at start, expected %d:\n%s"
                             % (self.name, len(lines), self.initial_lines,
                                "\n".join(lines[:5])))
        after = set(tb.listeners())
        new = after - before
        if len(new) != 1 or not before <= after:
            raise BenchError("%s: uevent sockets %s before, %s after: "
                             "monitors collide" % (self.name, sorted(before),
                                                   sorted(after)))
        self.listener = new.pop()
        return self.d


def parse_daemon(line):
    obj = json.loads(line)
    return obj["event"], obj["port"]


def parse_monitor(line):
    obj = json.loads(line)
    return obj["event"], obj.get("devpath", "").rsplit("/", 1)[-1]


def parse_baseline(line):
    words = line.split()
    action = {"attach": "add", "detach": "remove"}.get(words[0])
    return action, words[1]


# ------------------------------------------------------------ /proc

def proc_status(pid, tid=None):
    path = ("/proc/%d/status" % pid if tid is None
            else "/proc/%d/task/%s/status" % (pid, tid))
    out = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def hwm_kib(pid):
    """Peak RSS since the start (VmHWM)."""
    return int(proc_status(pid)["VmHWM"].split()[0])


def pss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def cpu(pid):
    """(utime+stime in clock ticks, on-CPU ns, context switches), over all
    threads of pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    ns = switches = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            ns += int(f.read().split()[0])
        st = proc_status(pid, tid)
        switches += (int(st["voluntary_ctxt_switches"]) +
                     int(st["nonvoluntary_ctxt_switches"]))
    return ticks, ns, switches


def machine_ticks():
    """(busy, total) clock ticks of all CPUs since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


# ------------------------------------------------------------ statistics

def pct(values, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    v = sorted(values)
    rank = max(1, min(len(v), int(-(-q * len(v) // 100))))
    return v[rank - 1]


# ------------------------------------------------------------ the runs

def split_device(text):
    """(the usb_device's description, its interfaces' descriptions)."""
    blocks = [b for b in text.split("\n\n") if b.strip()]
    dev = [b for b in blocks if "E: DEVTYPE=usb_device" in b]
    rest = [b for b in blocks if "E: DEVTYPE=usb_device" not in b]
    return dev[0] + "\n", "\n\n".join(rest) + "\n"


class Replugger:
    """Unplugs and replugs the four fixture leaves, each replug with the
    other of two spare device numbers, as a real replug renumbers.  A plug
    is loaded in two steps, the device then its interfaces (the kernel's
    order), so that the timed device event is the last one sent before the
    decision is awaited; the interfaces follow once it came."""

    def __init__(self, tb):
        self.tb = tb
        spare = machine.spare_devnums()
        self.devnums = {p: (spare[2 * i], spare[2 * i + 1])
                        for i, p in enumerate(TOGGLED)}
        self.flip = {p: 0 for p in TOGGLED}
        self.texts = {}
        for p in TOGGLED:
            with open(os.path.join(aua.DEVICES,
                                   FIXTURE_FILE[p] + ".umockdev")) as f:
                self.texts[p] = f.read()

    def unplug(self, port):
        self.tb.remove(port)

    def plug(self, port):
        devnum = self.devnums[port][self.flip[port]]
        self.flip[port] ^= 1
        dev, ifaces = split_device(aua.renumber(self.texts[port], devnum))
        self.tb.load_string(dev)
        return ifaces


def latency_round(tb, progs, n_events):
    """n_events paced unplugs and plugs per program, the programs in turn;
    returns {name: [(action, port, ns)]}."""
    rp = Replugger(tb)
    names = list(progs)
    out = {n: [] for n in names}
    cpu0 = {n: cpu(progs[n].d.pid)[1] for n in names}
    k = 0
    while min(len(v) for v in out.values()) < n_events:
        name = names[k % len(names)]
        prog = progs[name]
        port = TOGGLED[(k // len(names)) % len(TOGGLED)]
        tb.sender.only = prog.listener
        for action in ("remove", "add"):
            before = tb.sender.last_device_send
            ifaces = None
            if action == "remove":
                rp.unplug(port)
            else:
                ifaces = rp.plug(port)
            sent = tb.sender.last_device_send
            if sent is None or sent == before:
                raise BenchError("the harness sent no %s of %s to %s"
                                 % (action, port, prog.name))
            try:
                line, arrived = prog.d.next_line(10)
            except aua.TestFailure as e:
                raise BenchError("%s: no decision for %s %s: %s"
                                 % (prog.name, action, port, e))
            got_action, got_port = prog.parse(line)
            if got_port != port or (got_action and got_action != action):
                raise BenchError("%s answered %s %s with %r"
                                 % (prog.name, action, port, line))
            out[name].append((action, port, arrived - sent))
            if ifaces:
                tb.load_string(ifaces)
            time.sleep(PACE)
        k += 1
    tb.sender.only = None
    cpu_ns = {n: cpu(progs[n].d.pid)[1] - cpu0[n] for n in names}
    for prog in progs.values():
        extra = prog.d.drain(0.05)
        if extra:
            raise BenchError("%s printed unexpected lines: %r"
                             % (prog.name, extra[:3]))
    return out, cpu_ns


def reload_run(d, n, parse_cmd, policy):
    """n SIGHUPs, each after a touch of the policy (a new mtime, the same
    text: since issue 21 an unchanged file is not loaded again, so the touch
    makes each a whole reload): RELOADING=1 to READY=1, in ms; after each,
    libyaml alone on the same file (parse_cmd, in ms), so that each reload
    has a reference timed on the machine as it was just then."""
    times = []
    cpu_ms = []
    parse_ms = []
    loads0 = d.stderr().count(": reloaded (")
    for _ in range(n):
        os.utime(policy)
        c0 = cpu(d.pid)[1]
        d.signal(signal.SIGHUP)
        try:
            a = d.wait_notify("RELOADING", "1", 10)
            b = d.wait_ready(60)
        except aua.TestFailure as e:
            raise BenchError("reload: %s" % e)
        times.append((b["_time"] - a["_time"]) * 1e3)
        time.sleep(0.05)
        cpu_ms.append((cpu(d.pid)[1] - c0) / 1e6)
        r = subprocess.run(parse_cmd, stdout=subprocess.PIPE, check=False)
        if r.returncode != 0:
            raise BenchError("%s failed" % " ".join(parse_cmd))
        parse_ms.append(float(r.stdout) / 1e3)
    extra = d.drain(0.1)
    if extra:
        raise BenchError("an unchanged policy changed decisions: %r"
                         % extra[:3])
    loads = d.stderr().count(": reloaded (") - loads0
    if loads != n:
        raise BenchError("%d touched policies, %d reloads logged" % (n, loads))
    return times, cpu_ms, parse_ms


def unchanged_run(d, n):
    """n SIGHUPs with the policy untouched: RELOADING=1 to READY=1 and the
    daemon's on-CPU time, in ms; each must be logged as unchanged."""
    times = []
    cpu_ms = []
    said0 = d.stderr().count("nothing reloaded")
    for _ in range(n):
        c0 = cpu(d.pid)[1]
        d.signal(signal.SIGHUP)
        try:
            a = d.wait_notify("RELOADING", "1", 10)
            b = d.wait_ready(10)
        except aua.TestFailure as e:
            raise BenchError("unchanged reload: %s" % e)
        times.append((b["_time"] - a["_time"]) * 1e3)
        time.sleep(0.02)
        cpu_ms.append((cpu(d.pid)[1] - c0) / 1e6)
    if d.drain(0.1):
        raise BenchError("an unchanged reload printed decisions")
    said = d.stderr().count("nothing reloaded") - said0
    if said != n:
        raise BenchError("%d unchanged reloads, %d logged as such" % (n, said))
    return times, cpu_ms


def check_times(daemon, policy, runs=5):
    """Wall time of `auto-usb-attach --check -c policy`, in ms."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        r = subprocess.run([daemon, "--check", "-c", policy], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append((time.monotonic() - t0) * 1e3)
        if r.returncode != 0:
            raise BenchError("--check %s failed: %s" % (policy, r.stderr))
    return times


def storm_datagrams(tb, leaves, n_events):
    """n_events datagrams: unplug then replug of the plugged leaves in turn
    (the kernel's properties for a remove, udev's for an add)."""
    per_leaf = []
    for syspath in leaves:
        props = list(tb.properties(syspath).items())
        body_add = [(k, "/dev/" + v if k == "DEVNAME" and
                     not v.startswith("/") else v)
                    for k, v in props if k not in aua.HEADER_KEYS]
        d = dict(body_add)
        body_rm = [(k, d[k]) for k in aua.KERNEL_REMOVE_KEYS if k in d]
        per_leaf.append((syspath[4:], body_add, body_rm))
    seq = 10 ** 6
    out = []
    while len(out) < n_events:
        for devpath, body_add, body_rm in per_leaf:
            for action, body in (("remove", body_rm), ("add", body_add)):
                seq += 1
                head = [("ACTION", action), ("DEVPATH", devpath),
                        ("SUBSYSTEM", "usb"), ("SEQNUM", str(seq))]
                out.append(aua.pack_uevent(head + body))
            if len(out) >= n_events:
                break
    return out


def storm_run(tb, prog, datagrams):
    d = prog.d
    tb.sender.only = prog.listener
    tb.sender.waits = 0
    cpu0 = cpu(d.pid)
    n0 = len(d.stdout_log)
    t0 = time.monotonic_ns()
    for dg in datagrams:
        if tb.sender.send(dg) != 1:
            raise BenchError("storm: a datagram did not reach %s"
                             % prog.name)
    t_sent = time.monotonic_ns()
    tb.sender.only = None
    expected = len(datagrams)
    last = t_sent
    while len(d.stdout_log) - n0 < expected:
        try:
            _, last = d.next_line(5)
        except aua.TestFailure:
            break           # counted as lost below
    got = len(d.stdout_log) - n0
    extra = d.drain(0.3)
    got += len(extra)
    cpu1 = cpu(d.pid)
    return {"events": expected, "handled": got,
            "lost": max(0, expected - got),
            "send_s": (t_sent - t0) / 1e9,
            "seconds": (last - t0) / 1e9,
            "rate": got / ((last - t0) / 1e9),
            "cpu_ms": (cpu1[1] - cpu0[1]) / 1e6,
            "cpu_us_per_event": (cpu1[1] - cpu0[1]) / 1e3 / max(1, got),
            "sender_waits": tb.sender.waits,
            "rss_kib": rss_kib(d.pid)}


def summarize_latency(samples):
    ns = [s[2] for s in samples]
    by = {}
    for action, port, v in samples:
        by.setdefault("%s %s" % (action, FIXTURE_FILE[port]), []).append(v)
    return {"p50_us": pct(ns, 50) / 1e3, "p99_us": pct(ns, 99) / 1e3,
            "n": len(ns),
            "by_event_p50_us": {k: pct(v, 50) / 1e3 for k, v in by.items()},
            "samples_us": [round(x / 1e3, 1) for x in ns]}


def run(args, res):
    daemon = os.path.join(args.build, "auto-usb-attach")
    monitor = os.path.join(args.build, "udev-monitor")
    bare = os.path.join(args.build, "bare-monitor")
    for path in (daemon, monitor, bare):
        if not os.access(path, os.X_OK):
            raise BenchError("%s is not built" % path)
    policies = {}
    for size in SIZES:
        path = os.path.join(args.build, "policy-%d.yaml" % size)
        r = subprocess.run([args.match_bench, "--write-policy", str(size),
                            "mixed", path])
        if r.returncode != 0:
            raise BenchError("match-bench --write-policy %d failed" % size)
        policies[size] = path

    text, leaves = machine.machine()
    n_usb = text.count("E: DEVTYPE=usb_device")
    progs = {}
    for size in SIZES:
        name = "daemon-%d" % size
        progs[name] = Program(name, [daemon, "--dry-run", "--json", "-c",
                                     policies[size]], len(leaves),
                              parse_daemon)
    progs["baseline"] = Program("baseline", ["/usr/bin/python3",
                                             os.path.join(HERE,
                                                          "baseline.py")] +
                                BASELINE_ARGS, len(leaves), parse_baseline)
    progs["delivery"] = Program("udev-monitor", [monitor, "-s", "usb", "-t",
                                                 "usb_device"], n_usb + 1,
                                parse_monitor)
    progs["bare"] = Program("bare-monitor", [bare], 0, parse_monitor)

    with contextlib.ExitStack() as stack:
        tb = stack.enter_context(aua.Testbed())
        tb.sender = TimedSender(tb.root, 30.0)
        t0 = time.monotonic()
        tb.load_string(text)
        log("testbed: %d devices (%d USB devices, %d leaves) in %.1f s"
            % (text.count("\nP: ") + 1, n_usb, len(leaves),
               time.monotonic() - t0))
        for slot, prog in enumerate(progs.values()):
            prog.start(stack, tb, slot)
        log("started: " + ", ".join("%s (pid %d)" % (p.name, p.d.pid)
                                    for p in progs.values()))

        # (d) memory and (e) CPU: everything idle, 100 devices plugged
        time.sleep(1.0)
        before = {n: cpu(p.d.pid) for n, p in progs.items()}
        time.sleep(args.idle)
        idle = {}
        for name, prog in progs.items():
            after = cpu(prog.d.pid)
            status = proc_status(prog.d.pid)
            idle[name] = {"rss_kib": rss_kib(prog.d.pid),
                          "pss_kib": pss_kib(prog.d.pid),
                          "ticks": after[0] - before[name][0],
                          "cpu_ns": after[1] - before[name][1],
                          "switches": after[2] - before[name][2],
                          "status": {k: status[k] for k in
                                     ("VmRSS", "VmHWM", "RssAnon", "RssFile",
                                      "VmData")}}
            if prog.d.drain(0.05):
                raise BenchError("%s printed while idle" % name)
        res["idle"] = idle
        log("idle: %.0f s" % args.idle)

        # (b) latency, every program in turn
        t = time.monotonic()
        gc.collect()
        gc.disable()            # no collection between a send and its line
        try:
            raw, cpu_ns = latency_round(tb, progs, args.latency_events)
        finally:
            gc.enable()
        log("latency: %d events per program in %.1f s"
            % (args.latency_events, time.monotonic() - t))
        lat = {name: summarize_latency(v) for name, v in raw.items()}
        for name, r in lat.items():
            r["cpu_us_per_event"] = cpu_ns[name] / 1e3 / len(raw[name])
        for name, r in lat.items():
            if name in ("delivery", "bare"):
                continue
            for ref, key in (("delivery", "above"), ("bare", "above_bare")):
                r[key + "_p50_us"] = r["p50_us"] - lat[ref]["p50_us"]
                r[key + "_p99_us"] = r["p99_us"] - lat[ref]["p99_us"]
            r["by_event_above_bare_us"] = {
                k: v - lat["bare"]["by_event_p50_us"][k]
                for k, v in r["by_event_p50_us"].items()}
        res["latency"] = lat

        # (c) reloads, and --check
        for size in SIZES:
            d = progs["daemon-%d" % size].d
            times, cpu_ms, parse_ms = reload_run(
                d, args.reloads,
                [args.match_bench, "--parse-only", policies[size]],
                policies[size])
            same_ms, same_cpu_ms = unchanged_run(d, args.reloads)
            res["reload"][str(size)] = {
                "ms": times, "p50_ms": pct(times, 50),
                "p99_ms": pct(times, 99), "rss_kib": rss_kib(d.pid),
                "parse_ms": parse_ms, "parse_p50_ms": pct(parse_ms, 50),
                "ratio_p50": pct([t / y for t, y in zip(times, parse_ms)], 50),
                "cpu_ms": cpu_ms, "cpu_p50_ms": pct(cpu_ms, 50),
                "unchanged_ms": same_ms,
                "unchanged_p50_ms": pct(same_ms, 50),
                "unchanged_p99_ms": pct(same_ms, 99),
                "unchanged_cpu_p50_ms": pct(same_cpu_ms, 50),
                "hwm_kib": hwm_kib(d.pid),
                "check_ms": check_times(daemon, policies[size])}
        log("reload: %d per policy" % args.reloads)

        # (f) storms, one program at a time
        datagrams = storm_datagrams(tb, leaves, args.storm_events)
        storm = {}
        for name in ("daemon-10", "baseline", "delivery", "bare"):
            storm[name] = storm_run(tb, progs[name], datagrams)
            log("storm: %s: %d handled, %d lost, %.0f events/s"
                % (name, storm[name]["handled"], storm[name]["lost"],
                   storm[name]["rate"]))
        res["storm"] = storm

        for name, prog in progs.items():
            rc, err = prog.d.stop()
            if name.startswith("daemon") and rc != 0:
                raise BenchError("%s exited %s:\n%s" % (name, rc, err))


# ------------------------------------------------------------ the table

NAMES = {"delivery": "udev-monitor (delivery)",
         "bare": "bare-monitor (delivery)",
         "baseline": "baseline (pyudev)"}


def label(name):
    if name.startswith("daemon-"):
        return "daemon, {:,} rules".format(int(name.split("-")[1]))
    return NAMES[name]


def fmt_ns(ns):
    if ns < 0:
        return "-" + fmt_ns(-ns)
    if ns >= 1e6:
        return "%.1f ms" % (ns / 1e6)
    if ns >= 1e4:
        return "%.0f us" % (ns / 1e3)
    if ns >= 1e3:
        return "%.1f us" % (ns / 1e3)
    return "%.0f ns" % ns


def fmt_us(us):
    return fmt_ns(us * 1e3)


def ratio(ours, theirs):
    if not theirs or ours <= 0 or theirs <= 0:
        return "n/a"
    r = ours / theirs
    return "%.2fx" % r if r < 10 else "%.0fx" % r


def table(res):
    out = []
    p = out.append
    host = res["host"]
    p("auto-usb-attach benchmarks (bench/run), %s, tree %s"
      % (host["date"], host["tree"]))
    p("host: %s, %d CPUs, Linux %s, umockdev %s; during the run the CPUs "
      "were %.0f%% busy, %.0f%% with others' work"
      % (host["cpu"], host["cpus"], host["kernel"], host["umockdev"],
         res["machine"]["busy_pct"], res["machine"]["others_pct"]))
    if res["machine"]["others_pct"] > 20:
        p("WARNING: other work used %.0f%% of the CPUs during the run: the "
          "wall-clock figures (latency," % res["machine"]["others_pct"])
        p("reload, events/s) are inflated and noisy; the CPU-time figures "
          "much less so.")
    p("")
    p("(a) rule matching per device, in-process: p50 / p99 per call")
    p("    %-38s %-21s %s" % ("policy, device", "match_device (index)",
                             "match_device_linear"))
    for size in SIZES:
        for mix in ("mixed", "exact"):
            for device in ("last", "none"):
                rows = {m["method"]: m for m in res["match"]
                        if m["rules"] == size and m["mix"] == mix and
                        m["device"] == device}
                if not rows:
                    continue
                i, lin = rows["index"], rows["linear"]
                p("    %-38s %-21s %s" % (
                    "{:,} {}, {}".format(size, mix, "last rule matches"
                                         if device == "last"
                                         else "no rule matches"),
                    "%s / %s" % (fmt_ns(i["p50_ns"]), fmt_ns(i["p99_ns"])),
                    "%s / %s" % (fmt_ns(lin["p50_ns"]),
                                 fmt_ns(lin["p99_ns"]))))
    p("    mixed: a quarter each of exact port, exact vendor:product, "
      "vendor:product + serial, and globs")
    p("    (\"6xxx:*\", port \"4-a.b.*\", serial \"Z00042*\"); exact: the "
      "same with hub rules for the globs")
    p("")
    lat = res["latency"]
    p("(b) uevent sent by the harness -> decision line read, --dry-run "
      "--json; %d paced events per program" % res["params"]["latency_events"])
    p("    (unplug + replug of 4 devices), the programs in turn; "
      "delivery = the same events to a bare libudev client")
    p("    %-24s %-17s %-18s %-18s %-10s %s" % (
        "program", "p50 / p99", "above udev-monitor", "above bare-monitor",
        "ratio", "CPU/event"))
    base = lat["baseline"]
    for name in ["delivery", "bare"] + ["daemon-%d" % s for s in SIZES] + \
            ["baseline"]:
        r = lat[name]
        pair = "%s / %s" % (fmt_us(r["p50_us"]), fmt_us(r["p99_us"]))
        cpu_ev = fmt_us(r["cpu_us_per_event"])
        if name in ("delivery", "bare"):
            p("    %-24s %-17s %-18s %-18s %-10s %s" % (label(name), pair, "",
                                                      "", "", cpu_ev))
            continue
        above = "%s / %s" % (fmt_us(r["above_p50_us"]),
                             fmt_us(r["above_p99_us"]))
        above_bare = "%s / %s" % (fmt_us(r["above_bare_p50_us"]),
                                  fmt_us(r["above_bare_p99_us"]))
        vs = "" if name == "baseline" else ratio(r["above_bare_p50_us"],
                                                 base["above_bare_p50_us"])
        p("    %-24s %-17s %-18s %-18s %-10s %s" % (
            label(name), pair, above, above_bare, vs, cpu_ev))
    p("    ratio: p50 above bare-monitor, to the baseline's; CPU/event: the "
      "program's on-CPU time per event,")
    p("    cold (one wake-up each), which the load of the machine changes "
      "much less than the wall-clock figures")
    p("    p99s of a few hundred events are set by scheduling outliers "
      "(ms) on a shared machine: their")
    p("    differences are noise, negative ones included")
    p("    daemon with 10 rules, p50 above bare-monitor's p50, by event:")
    by = lat["daemon-10"]["by_event_above_bare_us"]
    items = ["%s %s" % (k, fmt_us(v)) for k, v in by.items()]
    p("      " + ", ".join(items[:4]))
    p("      " + ", ".join(items[4:]))
    p("")
    p("(c) policy load and SIGHUP reload (the generated mixed policies)")
    p("    %-17s %-13s %-19s %-13s %-19s %-11s %s" % (
        "rules (YAML)", "libyaml alone", "load in-process", "--check wall",
        "reload p50 / p99", "reload CPU", "RSS idle / after"))
    for size in SIZES:
        ld = [x for x in res["load_runs"] if x["rules"] == size][0]
        rl = res["reload"][str(size)]
        p("    %-17s %-13s %-19s %-13s %-19s %-11s %s" % (
            "{:,} ({:.0f} KiB)".format(size, ld["bytes"] / 1024),
            fmt_us(ld["yaml_p50_us"]),
            "%s / %s" % (fmt_us(ld["load_p50_us"]),
                         fmt_us(ld["load_p99_us"])),
            fmt_us(statistics.median(rl["check_ms"]) * 1e3),
            "%s / %s" % (fmt_us(rl["p50_ms"] * 1e3),
                         fmt_us(rl["p99_ms"] * 1e3)),
            fmt_us(rl["cpu_p50_ms"] * 1e3),
            "%.1f / %.1f MiB" % (res["idle"]["daemon-%d" % size]["rss_kib"] /
                                 1024, rl["rss_kib"] / 1024)))
    p("    reload / libyaml alone on the file, each timed right after the "
      "other (p50 of the ratios): " + ", ".join(
          "{:,} rules {:.2f}x".format(size, res["reload"][str(size)]["ratio_p50"])
          for size in SIZES))
    p("    SIGHUP, file unchanged (not loaded again), RELOADING=1 to READY=1 "
      "p50 / p99, daemon CPU p50: " + ", ".join(
          "{:,} rules {} / {}, {}".format(
              size, fmt_us(res["reload"][str(size)]["unchanged_p50_ms"] * 1e3),
              fmt_us(res["reload"][str(size)]["unchanged_p99_ms"] * 1e3),
              fmt_us(res["reload"][str(size)]["unchanged_cpu_p50_ms"] * 1e3))
          for size in SIZES))
    p("    peak RSS (VmHWM) after the start / after the latency round and "
      "the reloads: " + ", ".join(
          "{:,} rules {:.2f} / {:.2f} MiB".format(
              size, hwm_start(res, size) / 1024,
              res["reload"][str(size)]["hwm_kib"] / 1024)
          for size in SIZES))
    p("    libyaml alone: its event parser over the same text, p50, the "
      "least any load costs; load: policy_load_buffer")
    p("    (parse, check, index) p50 / p99; "
      "--check: the whole process, median of 5;")
    p("    reload: RELOADING=1 to READY=1 after a touch of the file (a new "
      "mtime: the whole load runs),")
    p("    100 devices re-decided, %d reloads; reload CPU: the daemon's"
      % res["params"]["reloads"])
    p("    on-CPU time per reload, p50; RSS at start and after the latency "
      "round and the reloads")
    p("")
    idle = res["idle"]
    p("(d) memory idle with 100 plugged devices, (e) CPU used while idle "
      "for %.0f s" % res["params"]["idle"])
    p("    %-24s %-10s %-7s %-10s %-12s %-8s %s" % (
        "program", "VmRSS", "ratio", "Pss", "utime+stime", "on CPU",
        "wake-ups"))
    for name in ("daemon-10", "baseline", "delivery", "bare"):
        r = idle[name]
        p("    %-24s %-10s %-7s %-10s %-12s %-8s %d" % (
            label(name), "%.2f MiB" % (r["rss_kib"] / 1024),
            ratio(r["rss_kib"], idle["baseline"]["rss_kib"])
            if name != "baseline" else "",
            "%.2f MiB" % (r["pss_kib"] / 1024),
            "%d ticks" % r["ticks"], fmt_ns(r["cpu_ns"]), r["switches"]))
    p("    ticks of 1/%d s (/proc/PID/stat); on CPU: "
      "/proc/PID/task/*/schedstat; wake-ups: context switches"
      % host["clk_tck"])
    p("")
    st = res["storm"]
    p("(f) storm: %s events (unplug + replug of the 100 devices in turn), "
      "as fast as the harness sends" % "{:,}".format(
          res["params"]["storm_events"]))
    p("    %-24s %-10s %-7s %-6s %-11s %s" % ("program", "events/s", "ratio",
                                          "lost", "CPU/event", "RSS after"))
    for name in ("daemon-10", "baseline", "delivery", "bare"):
        r = st[name]
        p("    %-24s %-10s %-7s %-6d %-11s %.2f MiB" % (
            label(name), "{:,.0f}".format(r["rate"]),
            ratio(r["rate"], st["baseline"]["rate"])
            if name != "baseline" else "", r["lost"],
            fmt_us(r["cpu_us_per_event"]), r["rss_kib"] / 1024))
    p("    the harness's Python sender (one datagram at a time, waiting "
      "while the receiver's queue is full)")
    p("    bounds events/s; CPU/event is the program's own on-CPU time")
    p("")
    p("targets (issue 8)")
    for text, ok, figure in res["targets"]:
        p("    %-8s %-47s %s" % ("met" if ok else "NOT MET", text, figure))
    p("")
    p("targets (issue 21)")
    for text, ok, figure in res["targets21"]:
        p("    %-8s %-47s %s" % ("met" if ok else "NOT MET", text, figure))
    return "\n".join(out)


def hwm_start(res, size):
    return int(res["idle"]["daemon-%d" % size]["status"]["VmHWM"].split()[0])


def targets21(res):
    t = []
    lat = res["latency"]
    bare = lat["bare"]
    for size in (10, 10000):
        r = lat["daemon-%d" % size]
        r50 = r["p50_us"] / bare["p50_us"]
        r99 = r["p99_us"] / bare["p99_us"]
        t.append(("latency vs bare-monitor, {:,} rules".format(size),
                  r50 <= 1.3 and r99 <= 2.0,
                  "p50 %.2fx (<= 1.3x), p99 %.2fx (<= 2x); CPU/event %.2fx"
                  % (r50, r99, r["cpu_us_per_event"] /
                     bare["cpu_us_per_event"])))
    rl = res["reload"]["10000"]
    peak = max(hwm_start(res, 10000), rl["hwm_kib"])
    t.append(("peak RSS < 4 MiB, 10,000 rules", peak < 4096,
              "VmHWM %.2f MiB (after the start %.2f, after the reloads "
              "%.2f)" % (peak / 1024, hwm_start(res, 10000) / 1024,
                         rl["hwm_kib"] / 1024)))
    t.append(("reload of 10,000 rules <= 1.3x libyaml alone",
              rl["ratio_p50"] <= 1.3,
              "%.2fx (p50 of reload / libyaml timed in turn; reload p50 %s)"
              % (rl["ratio_p50"], fmt_us(rl["p50_ms"] * 1e3))))
    worst = max(res["reload"][str(s)]["unchanged_p50_ms"] for s in SIZES)
    t.append(("SIGHUP, file unchanged, < 1 ms",
              worst < 1.0,
              "p50 %s (the slowest policy; p99 %s), nothing re-decided"
              % (fmt_us(worst * 1e3),
                 fmt_us(max(res["reload"][str(s)]["unchanged_p99_ms"]
                            for s in SIZES) * 1e3))))
    return t


def targets(res):
    t = []
    m = {(x["rules"], x["mix"], x["device"], x["method"]): x
         for x in res["match"]}
    for mix in ("mixed", "exact"):
        x = m[(10000, mix, "last", "index")]
        y = m[(10000, mix, "none", "index")]
        t.append(("matching < 2 us/device, 10,000 rules, %s" % mix,
                  max(x["p50_ns"], y["p50_ns"]) < 2000,
                  "p50 %s (last) / %s (none)" % (fmt_ns(x["p50_ns"]),
                                                 fmt_ns(y["p50_ns"]))))
    for size in SIZES:
        r = res["latency"]["daemon-%d" % size]
        t.append(("latency above delivery, {:,} rules".format(size),
                  r["above_p50_us"] < 50 and r["above_p99_us"] < 500,
                  "p50 < 50 us, p99 < 500 us: %s / %s; above bare-monitor "
                  "%s / %s" % (fmt_us(r["above_p50_us"]),
                               fmt_us(r["above_p99_us"]),
                               fmt_us(r["above_bare_p50_us"]),
                               fmt_us(r["above_bare_p99_us"]))))
    rl = res["reload"]["10000"]
    ld = [x for x in res["load_runs"] if x["rules"] == 10000][0]
    t.append(("reload of 10,000 rules < 20 ms", rl["p50_ms"] < 20,
              "p50 %s, p99 %s; libyaml alone on that file %s (%s between "
              "the reloads: reload = %.2fx it)"
              % (fmt_us(rl["p50_ms"] * 1e3), fmt_us(rl["p99_ms"] * 1e3),
                 fmt_us(ld["yaml_p50_us"]), fmt_us(rl["parse_p50_ms"] * 1e3),
                 rl["ratio_p50"])))
    idle = res["idle"]["daemon-10"]
    t.append(("RSS < 4 MiB idle with 100 devices", idle["rss_kib"] < 4096,
              "%.2f MiB (Pss %.2f MiB)" % (idle["rss_kib"] / 1024,
                                           idle["pss_kib"] / 1024)))
    t.append(("idle CPU 0 over %.0f s" % res["params"]["idle"],
              idle["ticks"] == 0,
              "%d ticks, %s on CPU, %d wake-ups"
              % (idle["ticks"], fmt_ns(idle["cpu_ns"]), idle["switches"])))
    lost = sum(r["lost"] for r in res["storm"].values())
    t.append(("no event lost in the storms", lost == 0, "%d lost" % lost))
    return t


# ------------------------------------------------------------ main

def stop_on_signal(signum, frame):
    raise SystemExit("bench: killed by signal %d" % signum)


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def host_facts():
    cpu_name = platform.processor() or "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_name = line.split(":", 1)[1].strip()
                break
    try:
        umockdev = subprocess.run(["dpkg-query", "-W", "-f=${Version}",
                                   "umockdev"], capture_output=True,
                                  text=True).stdout or "?"
    except OSError:
        umockdev = "?"
    with open("/proc/sys/net/unix/max_dgram_qlen") as f:
        qlen = f.read().strip()
    try:
        head = subprocess.run(["git", "-C", TOP, "rev-parse", "--short",
                               "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "?"
        dirty = subprocess.run(["git", "-C", TOP, "status", "--porcelain",
                                "--", "src", "configure.ac", "Makefile.am"],
                               capture_output=True, text=True).stdout.strip()
        tree = head + (" + uncommitted changes in src" if dirty else "")
    except OSError:
        tree = "?"
    return {"cpu": re.sub(r"\s+", " ", cpu_name), "cpus": os.cpu_count(),
            "kernel": platform.release(), "umockdev": umockdev,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "clk_tck": os.sysconf("SC_CLK_TCK"), "qlen": qlen, "tree": tree}


def our_cpu_seconds():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True,
                    help="bench/run's build directory: auto-usb-attach, "
                    "udev-monitor, match-bench, bare-monitor, match.json")
    ap.add_argument("--match-bench", help="default: BUILD/match-bench")
    ap.add_argument("--latency-events", type=int, default=LATENCY_EVENTS)
    ap.add_argument("--storm-events", type=int, default=STORM_EVENTS)
    ap.add_argument("--idle", type=float, default=IDLE_SECONDS)
    ap.add_argument("--reloads", type=int, default=RELOADS)
    args = ap.parse_args()
    args.match_bench = args.match_bench or os.path.join(args.build,
                                                        "match-bench")
    aua.ensure_preload()
    # a kill or ^C unwinds the ExitStacks: every program is stopped by pid
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop_on_signal)

    res = {"host": host_facts(), "match": [], "load_runs": [], "reload": {},
           "params": {"latency_events": args.latency_events,
                      "storm_events": args.storm_events,
                      "idle": args.idle, "reloads": args.reloads}}
    with open(os.path.join(args.build, "match.json")) as f:
        for line in f:
            obj = json.loads(line)
            res["load_runs" if obj["what"] == "load" else "match"].append(obj)
    busy0, total0 = machine_ticks()
    ours0 = our_cpu_seconds()
    rc = 0
    try:
        run(args, res)
        busy1, total1 = machine_ticks()
        tck = os.sysconf("SC_CLK_TCK")
        ours = our_cpu_seconds() - ours0
        res["machine"] = {
            "busy_pct": 100.0 * (busy1 - busy0) / max(1, total1 - total0),
            "ours_s": ours,
            "others_pct": max(0.0, 100.0 * ((busy1 - busy0) / tck - ours) /
                              max(1e-9, (total1 - total0) / tck))}
        res["targets"] = targets(res)
        res["targets21"] = targets21(res)
        print(table(res), flush=True)
        if any(r["lost"] for r in res["storm"].values()):
            print("bench: events were lost", file=sys.stderr)
            rc = 1
    except (BenchError, aua.TestFailure) as e:
        print("bench: FAILED: %s" % e, file=sys.stderr, flush=True)
        rc = 1
    except Exception:
        traceback.print_exc()
        print("bench: FAILED", file=sys.stderr, flush=True)
        rc = 1
    finally:
        with open(os.path.join(args.build, "results.json"), "w") as f:
            json.dump(res, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())

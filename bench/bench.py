#!/usr/bin/python3
"""The benchmarks of auto-usb-attach that need udev: (b) latency, (c) load
and reload, (d) memory, (e) idle CPU, (f) storm; and the table of all of
them, (a) included, from match-bench's output.  bench/run builds what this
needs and runs it under the umockdev preload; see bench/README.md.

Three programs are driven by the same harness (tests/integration/aua.py) on
the same umockdev testbed of 100 plugged devices (bench/machine.py):
  - the daemon: src/auto-usb-attach --dry-run --json -c POLICY;
  - delivery: tests/fixtures/udev-monitor -t usb_device, a bare libudev
    monitor that prints a line per event: what umockdev and libudev cost
    by themselves, subtracted from the daemon's latency;
  - the baseline: bench/baseline.py, the old script's job in Python/pyudev.

Timestamps: a send is stamped by the harness's sender just before it writes
the device's datagram (TimedSender); a line when the harness's reader thread
gets it from the pipe (TimedDaemon).  Both are CLOCK_MONOTONIC.

This prints figures and never judges a time; it exits 1 when a step breaks
or an event is lost.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
sys.path.insert(0, HERE)

import aua  # noqa: E402
import machine  # noqa: E402

SIZES = (10, 1000, 10000)
IDLE_SECONDS = 10.0
STORM_EVENTS = 10000
LATENCY_EVENTS = 400            # half unplugs, half plugs
PACE = 0.002                    # seconds between paced events
RELOADS = 15
TOGGLED = ("1-1.2", "1-1.3", "1-1.4.2", "1-2")      # the fixtures' leaves
FIXTURE_FILE = {"1-1.2": "yubikey", "1-1.3": "keyboard",
                "1-1.4.2": "storage", "1-2": "webcam"}
BASELINE_ARGS = ["-d", "vault", "-u", "1-1.4", "-x", "1050:0407"]


class BenchError(Exception):
    """A step broke: the figures of this run are not to be trusted."""


# ------------------------------------------------------------ the harness

class TimedSender(aua.UeventSender):
    """The harness's sender, stamping each usb_device datagram right before
    the write that delivers it.  _send_one is aua.UeventSender's, with the
    stamp between connect() and send(): finding and connecting the listener
    costs Python ~30 us, which is the harness's, not the program's."""

    def __init__(self, root_dir, timeout=10.0):
        super().__init__(root_dir, timeout)
        self.last_device_send = None

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
                # a closed monitor: let the harness's own code deal with it
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
                    raise BenchError("%s exited (%s)" % (self.name,
                                                         self._why()))
                return got


class Target:
    """How to start one of the three programs and read its lines."""

    def __init__(self, name, argv, initial_lines, parse):
        self.name = name
        self.argv = argv
        self.initial_lines = initial_lines
        self.parse = parse      # line -> (action, port) or None

    def start(self, stack, tb):
        d = stack.enter_context(TimedDaemon(self.argv, testbed=tb,
                                            name=self.name))
        try:
            d.wait_ready(30)
        except aua.TestFailure as e:
            raise BenchError("%s did not get ready: %s" % (self.name, e))
        lines = d.drain()
        if len(lines) != self.initial_lines:
            raise BenchError("%s printed %d lines at start, expected %d:\n%s"
                             % (self.name, len(lines), self.initial_lines,
                                "\n".join(lines[:5])))
        return d


def parse_daemon(line):
    obj = json.loads(line)
    return obj["event"], obj["port"]


def parse_monitor(line):
    obj = json.loads(line)
    return obj["event"], obj.get("devpath", "").rsplit("/", 1)[-1]


def parse_baseline(line):
    words = line.split()
    action = {"attach": "add", "detach": "remove"}.get(words[0], None)
    return action, words[1]


# ------------------------------------------------------------ /proc

def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def cpu(pid):
    """(utime+stime in clock ticks, on-CPU ns of all threads, context
    switches of all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    ns = 0
    switches = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            run_ns, _, _ = f.read().split()
        ns += int(run_ns)
        st = proc_status_task(pid, tid)
        switches += (int(st["voluntary_ctxt_switches"]) +
                     int(st["nonvoluntary_ctxt_switches"]))
    return ticks, ns, switches


def proc_status_task(pid, tid):
    out = {}
    with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


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
    """Unplugs and replugs the four fixture leaves in turn, each time with a
    new device number, as a real replug does.  The plug is loaded in two
    steps, the device then its interfaces, the order the kernel announces
    them in, so that the timed device event is the last one sent before the
    decision is awaited."""

    def __init__(self, tb):
        self.tb = tb
        spare = machine.spare_devnums()
        self.devnums = {p: [spare[2 * i], spare[2 * i + 1]]
                        for i, p in enumerate(TOGGLED)}
        self.texts = {}
        for p in TOGGLED:
            with open(os.path.join(aua.DEVICES,
                                   FIXTURE_FILE[p] + ".umockdev")) as f:
                self.texts[p] = f.read()
        self.turn = 0

    def unplug(self, port):
        self.tb.remove(port)

    def plug(self, port):
        nums = self.devnums[port]
        devnum = nums[self.turn % 2]
        dev, ifaces = split_device(aua.renumber(self.texts[port], devnum))
        self.tb.load_string(dev)
        return ifaces

    def next_round(self):
        self.turn += 1


def latency_run(tb, target, d, n_events):
    """n_events paced unplugs and plugs; returns [(action, port, ns)]."""
    rp = Replugger(tb)
    out = []
    i = 0
    while len(out) < n_events:
        port = TOGGLED[i % len(TOGGLED)]
        for action in ("remove", "add"):
            before = tb.sender.last_device_send
            ifaces = None
            if action == "remove":
                rp.unplug(port)
            else:
                ifaces = rp.plug(port)
            sent = tb.sender.last_device_send
            if sent is None or sent == before:
                raise BenchError("the harness sent no %s for %s"
                                 % (action, port))
            try:
                line, arrived = d.next_line(10)
            except aua.TestFailure as e:
                raise BenchError("%s: no decision for %s %s: %s"
                                 % (target.name, action, port, e))
            got_action, got_port = target.parse(line)
            if got_port != port or (got_action and got_action != action):
                raise BenchError("%s answered %s %s with %r"
                                 % (target.name, action, port, line))
            out.append((action, port, arrived - sent))
            if ifaces:
                tb.load_string(ifaces)
            time.sleep(PACE)
        i += 1
        if i % len(TOGGLED) == 0:
            rp.next_round()
    extra = d.drain(0.1)
    if extra:
        raise BenchError("%s printed unexpected lines: %r"
                         % (target.name, extra[:3]))
    return out


def reload_run(d, n):
    """n SIGHUPs of an unchanged policy: RELOADING=1 to READY=1, in ms."""
    times = []
    for _ in range(n):
        d.signal(signal.SIGHUP)
        try:
            a = d.wait_notify("RELOADING", "1", 10)
            b = d.wait_ready(60)
        except aua.TestFailure as e:
            raise BenchError("reload: %s" % e)
        times.append((b["_time"] - a["_time"]) * 1e3)
        time.sleep(0.05)
    extra = d.drain(0.1)
    if extra:
        raise BenchError("an unchanged policy changed decisions: %r"
                         % extra[:3])
    return times


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
        devpath = syspath[4:]
        body_add = [(k, "/dev/" + v if k == "DEVNAME" and
                     not v.startswith("/") else v)
                    for k, v in props if k not in aua.HEADER_KEYS]
        d = dict(body_add)
        body_rm = [(k, d[k]) for k in aua.KERNEL_REMOVE_KEYS if k in d]
        per_leaf.append((devpath, body_add, body_rm))
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


def storm_run(tb, target, d, datagrams):
    cpu0 = cpu(d.pid)
    n0 = len(d.stdout_log)
    t0 = time.monotonic_ns()
    for dg in datagrams:
        if tb.sender.send(dg) != 1:
            raise BenchError("storm: a datagram did not reach exactly one "
                             "listener (%s)" % tb.listeners())
    t_sent = time.monotonic_ns()
    expected = len(datagrams)
    last = None
    while len(d.stdout_log) - n0 < expected:
        try:
            _, last = d.next_line(5)
        except aua.TestFailure:
            break
    got = len(d.stdout_log) - n0
    extra = d.drain(0.5)
    got += len(extra)
    cpu1 = cpu(d.pid)
    return {
        "events": expected,
        "handled": got,
        "lost": max(0, expected - got),
        "send_s": (t_sent - t0) / 1e9,
        "seconds": ((last or t_sent) - t0) / 1e9,
        "rate": got / (((last or t_sent) - t0) / 1e9),
        "cpu_ms": (cpu1[1] - cpu0[1]) / 1e6,
        "cpu_us_per_event": (cpu1[1] - cpu0[1]) / 1e3 / max(1, got),
        "waits": tb.sender.waits,
        "rss_kib": rss_kib(d.pid),
    }


# ------------------------------------------------------------ the table

def fmt_ns(ns):
    if ns >= 1e6:
        return "%.1f ms" % (ns / 1e6)
    if ns >= 1e4:
        return "%.0f us" % (ns / 1e3)
    if ns >= 1e3:
        return "%.2f us" % (ns / 1e3)
    return "%.0f ns" % ns


def fmt_us(us):
    return fmt_ns(us * 1e3)


def ratio(ours, theirs):
    if not theirs:
        return "-"
    r = ours / theirs
    return "%.2fx" % r if r < 10 else "%.0fx" % r


def yes(ok):
    return "MET" if ok else "NOT MET"


def table(res):
    out = []
    p = out.append
    host = res["host"]
    p("auto-usb-attach benchmarks: %s, %d CPUs, Linux %s, umockdev %s, "
      "run %s" % (host["cpu"], host["cpus"], host["kernel"],
                   host["umockdev"], host["date"]))
    p("")
    p("(a) rule matching per device, in-process (match_device: index; "
      "match_device_linear: scan)")
    p("    %-36s %-21s %-21s" % ("policy", "index p50 / p99",
                                  "linear p50 / p99"))
    for size in SIZES:
        for mix in ("mixed", "exact"):
            for device in ("last", "none"):
                rows = {m["method"]: m for m in res["match"]
                        if m["rules"] == size and m["mix"] == mix and
                        m["device"] == device}
                if not rows:
                    continue
                label = "%s rules, %s, %s" % (
                    "{:,}".format(size), mix,
                    "match is the last rule" if device == "last"
                    else "no rule matches")
                i, lin = rows["index"], rows["linear"]
                p("    %-36s %-21s %-21s" % (
                    label, "%s / %s" % (fmt_ns(i["p50_ns"]),
                                        fmt_ns(i["p99_ns"])),
                    "%s / %s" % (fmt_ns(lin["p50_ns"]),
                                 fmt_ns(lin["p99_ns"]))))
    p("    mixed: 1/4 each exact port, exact vendor:product, "
      "vendor:product+serial, globs")
    p("    (vendor \"6xxx:*\", port \"4-a.b.*\", serial \"Z00042*\"); "
      "exact: the globs replaced by hub rules")
    p("")
    lat = res["latency"]
    p("(b) uevent sent by the harness -> decision line read, dry-run, "
      "%d paced events (unplug+plug)" % LATENCY_EVENTS)
    p("    %-28s %-9s %-9s %-22s %s" % ("program", "p50", "p99",
                                       "above delivery p50/p99",
                                       "vs baseline (above delivery)"))
    dl = lat["delivery"]
    base = lat["baseline"]
    for name in ["delivery"] + ["daemon-%d" % s for s in SIZES] + \
            ["baseline"]:
        r = lat[name]
        if name == "delivery":
            label = "delivery (udev-monitor)"
        elif name == "baseline":
            label = "baseline (pyudev)"
        else:
            label = "daemon, {:,} rules".format(int(name.split("-")[1]))
        if name == "delivery":
            above = "-"
            vs = "-"
        else:
            above = "%s / %s" % (fmt_us(r["above_p50_us"]),
                                 fmt_us(r["above_p99_us"]))
            vs = ("-" if name == "baseline" else "%s / %s" % (
                ratio(r["above_p50_us"], base["above_p50_us"]),
                ratio(r["above_p99_us"], base["above_p99_us"])))
        p("    %-28s %-9s %-9s %-22s %s" % (label, fmt_us(r["p50_us"]),
                                            fmt_us(r["p99_us"]), above, vs))
    p("    by event, daemon with 10 rules, p50 above delivery's p50 for "
      "the same event:")
    p("      " + "  ".join("%s %s %s" % (k.split()[0], k.split()[1],
                                         fmt_us(v))
                           for k, v in lat["daemon-10"]["by_event"].items()))
    p("")
    p("(c) policy load and reload")
    p("    %-14s %-16s %-14s %-21s %s" % ("rules", "load in-process",
                                         "--check wall", "SIGHUP reload "
                                         "p50/p99", "daemon RSS"))
    for size in SIZES:
        ld = [x for x in res["load"] if x["rules"] == size][0]
        rl = res["reload"][str(size)]
        p("    %-14s %-16s %-14s %-21s %s" % (
            "{:,} ({:.0f} KB)".format(size, ld["bytes"] / 1024),
            fmt_us(ld["load_p50_us"]),
            fmt_us(statistics.median(rl["check_ms"]) * 1e3),
            "%s / %s" % (fmt_us(rl["p50_ms"] * 1e3),
                         fmt_us(rl["p99_ms"] * 1e3)),
            "%.1f MiB" % (rl["rss_kib"] / 1024)))
    p("    reload = RELOADING=1 to READY=1 (parse, index, re-decide 100 "
      "devices), %d reloads; --check includes exec" % RELOADS)
    p("")
    idle = res["idle"]
    p("(d) RSS idle with 100 plugged devices, 10 rules; (e) CPU used while "
      "idle for %.0f s" % IDLE_SECONDS)
    p("    %-26s %-10s %-8s %-16s %-9s %s" % ("program", "VmRSS", "ratio",
                                            "utime+stime", "on-CPU",
                                            "wake-ups"))
    for name in ("daemon", "baseline", "delivery"):
        r = idle[name]
        p("    %-26s %-10s %-8s %-16s %-9s %d" % (
            {"daemon": "daemon",
             "baseline": "baseline (pyudev)",
             "delivery": "udev-monitor (bare libudev)"}[name],
            "%.2f MiB" % (r["rss_kib"] / 1024),
            ratio(r["rss_kib"], idle["baseline"]["rss_kib"])
            if name != "baseline" else "-",
            "%d ticks (%d ms)" % (r["ticks"], r["ticks"] * 1000 /
                                  host["clk_tck"]),
            fmt_ns(r["cpu_ns"]), r["switches"]))
    p("")
    st = res["storm"]
    p("(f) storm of %s events (unplug/replug pairs of the 100 devices) "
      "through the harness's sender" % "{:,}".format(STORM_EVENTS))
    p("    %-26s %-12s %-6s %-14s %-12s %s" % ("program", "events/s",
                                             "lost", "CPU/event",
                                             "RSS after", "ratio ev/s"))
    for name in ("daemon", "baseline", "delivery"):
        r = st[name]
        p("    %-26s %-12s %-6d %-14s %-12s %s" % (
            {"daemon": "daemon, 10 rules", "baseline": "baseline (pyudev)",
             "delivery": "udev-monitor (bare libudev)"}[name],
            "{:,.0f}".format(r["rate"]), r["lost"],
            fmt_us(r["cpu_us_per_event"]),
            "%.2f MiB" % (r["rss_kib"] / 1024),
            ratio(r["rate"], st["baseline"]["rate"])
            if name != "baseline" else "-"))
    p("    the sender writes one datagram at a time and waits when the "
      "receiver's queue (%s datagrams) is full" % host["qlen"])
    p("")
    p("targets")
    for label, ok, figure in res["targets"]:
        p("    %-8s %-52s %s" % (yes(ok), label, figure))
    return "\n".join(out)


def targets(res):
    t = []
    m = {(x["rules"], x["mix"], x["device"], x["method"]): x
         for x in res["match"]}
    for mix in ("mixed", "exact"):
        x = m[(10000, mix, "last", "index")]
        y = m[(10000, mix, "none", "index")]
        worst = max(x["p50_ns"], y["p50_ns"])
        t.append(("matching < 2 us/device, 10,000 rules (%s)" % mix,
                  worst < 2000, "p50 %s (last) / %s (none)"
                  % (fmt_ns(x["p50_ns"]), fmt_ns(y["p50_ns"]))))
    for size in SIZES:
        r = res["latency"]["daemon-%d" % size]
        t.append(("latency above delivery, %s rules: p50 < 50 us, "
                  "p99 < 500 us" % "{:,}".format(size),
                  r["above_p50_us"] < 50 and r["above_p99_us"] < 500,
                  "%s / %s" % (fmt_us(r["above_p50_us"]),
                               fmt_us(r["above_p99_us"]))))
    rl = res["reload"]["10000"]
    t.append(("reload of 10,000 rules < 20 ms", rl["p50_ms"] < 20,
              "p50 %s, p99 %s" % (fmt_us(rl["p50_ms"] * 1e3),
                                  fmt_us(rl["p99_ms"] * 1e3))))
    rss = res["idle"]["daemon"]["rss_kib"]
    t.append(("RSS < 4 MiB idle with 100 devices", rss < 4096,
              "%.2f MiB" % (rss / 1024)))
    ticks = res["idle"]["daemon"]["ticks"]
    t.append(("idle CPU 0 over %.0f s" % IDLE_SECONDS, ticks == 0,
              "%d ticks, %s on CPU, %d wake-ups"
              % (ticks, fmt_ns(res["idle"]["daemon"]["cpu_ns"]),
                 res["idle"]["daemon"]["switches"])))
    lost = sum(res["storm"][n]["lost"] for n in res["storm"])
    t.append(("no event lost in the storms", lost == 0, "%d lost" % lost))
    return t


# ------------------------------------------------------------ main

def summarize_latency(samples, delivery_by_event=None):
    ns = [s[2] for s in samples]
    r = {"p50_us": pct(ns, 50) / 1e3, "p99_us": pct(ns, 99) / 1e3,
         "n": len(ns)}
    by = {}
    for action, port, v in samples:
        by.setdefault("%s %s" % (action, FIXTURE_FILE[port]), []).append(v)
    r["by_event_p50_us"] = {k: pct(v, 50) / 1e3 for k, v in by.items()}
    if delivery_by_event:
        r["by_event"] = {k: v - delivery_by_event.get(k, 0)
                         for k, v in r["by_event_p50_us"].items()}
    return r


def run(args, res):
    daemon = os.path.join(TOP, "src", "auto-usb-attach")
    monitor = os.path.join(TOP, "tests", "fixtures", "udev-monitor")
    for path in (daemon, monitor):
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
    n_leaves = len(leaves)
    n_usb = text.count("E: DEVTYPE=usb_device")
    targets_ = {
        "delivery": Target("udev-monitor", [monitor, "-s", "usb", "-t",
                                            "usb_device"], n_usb + 1,
                           parse_monitor),
        "baseline": Target("baseline", ["/usr/bin/python3",
                                        os.path.join(HERE, "baseline.py")] +
                           BASELINE_ARGS, n_leaves, parse_baseline),
    }
    for size in SIZES:
        targets_["daemon-%d" % size] = Target(
            "daemon-%d" % size, [daemon, "--dry-run", "--json", "-c",
                                 policies[size]], n_leaves, parse_daemon)

    with contextlib.ExitStack() as stack:
        tb = stack.enter_context(aua.Testbed())
        tb.sender = TimedSender(tb.root, 30.0)
        t0 = time.monotonic()
        tb.load_string(text)
        log("testbed: %d devices (%d USB devices, %d leaves) in %.1f s"
            % (text.count("\nP: ") + 1, n_usb, n_leaves,
               time.monotonic() - t0))

        # (b) latency, and (c) reload on the daemons of each size
        lat = {}
        raw = {}
        order = ["delivery", "daemon-10", "baseline", "daemon-1000",
                 "daemon-10000", "delivery"]
        for name in order:
            target = targets_[name]
            with contextlib.ExitStack() as one:
                d = target.start(one, tb)
                t = time.monotonic()
                samples = latency_run(tb, target, d, args.latency_events)
                raw.setdefault(name, []).extend(samples)
                log("latency: %s, %d events in %.1f s"
                    % (name, len(samples), time.monotonic() - t))
                if name.startswith("daemon-"):
                    size = int(name.split("-")[1])
                    t = time.monotonic()
                    times = reload_run(d, args.reloads)
                    res["reload"][str(size)] = {
                        "ms": times, "p50_ms": pct(times, 50),
                        "p99_ms": pct(times, 99), "rss_kib": rss_kib(d.pid),
                        "check_ms": check_times(daemon, policies[size])}
                    log("reload: %d rules, %d reloads in %.1f s"
                        % (size, len(times), time.monotonic() - t))
                rc, err = d.stop()
                if name.startswith("daemon") and rc != 0:
                    raise BenchError("%s exited %s:\n%s" % (name, rc, err))
        dl = summarize_latency(raw["delivery"])
        lat["delivery"] = dl
        for name in raw:
            if name == "delivery":
                continue
            r = summarize_latency(raw[name], dl["by_event_p50_us"])
            r["above_p50_us"] = r["p50_us"] - dl["p50_us"]
            r["above_p99_us"] = r["p99_us"] - dl["p99_us"]
            lat[name] = r
        res["latency"] = lat

        # (d) RSS and (e) CPU, all three idle side by side
        idle = {}
        running = {}
        for name in ("daemon", "baseline", "delivery"):
            key = "daemon-10" if name == "daemon" else name
            running[name] = targets_[key].start(stack, tb)
        time.sleep(1.0)
        before = {n: cpu(d.pid) for n, d in running.items()}
        time.sleep(args.idle)
        for name, d in running.items():
            after = cpu(d.pid)
            idle[name] = {"rss_kib": rss_kib(d.pid),
                          "ticks": after[0] - before[name][0],
                          "cpu_ns": after[1] - before[name][1],
                          "switches": after[2] - before[name][2],
                          "status": {k: proc_status(d.pid)[k] for k in
                                     ("VmRSS", "VmHWM", "RssAnon",
                                      "RssFile", "VmData")}}
            if d.drain(0.05):
                raise BenchError("%s printed while idle" % name)
        res["idle"] = idle
        log("idle: %.0f s" % args.idle)

        # (f) storm, one program at a time
        for name in ("baseline", "delivery"):
            running[name].stop()
        datagrams = storm_datagrams(tb, leaves, args.storm_events)
        storm = {}
        for name in ("daemon", "baseline", "delivery"):
            d = running.get(name)
            if d is None or not d.running():
                key = "daemon-10" if name == "daemon" else name
                d = targets_[key].start(stack, tb)
            tb.sender.waits = 0
            storm[name] = storm_run(tb, targets_["daemon-10" if name ==
                                                 "daemon" else name],
                                    d, datagrams)
            log("storm: %s: %d handled, %d lost, %.0f events/s"
                % (name, storm[name]["handled"], storm[name]["lost"],
                   storm[name]["rate"]))
            rc, err = d.stop()
            if name == "daemon" and rc != 0:
                raise BenchError("the daemon exited %s after the storm:\n%s"
                                 % (rc, err))
            running.pop(name, None)
        res["storm"] = storm


def stop_on_signal(signum, frame):
    raise SystemExit("bench: killed by signal %d" % signum)


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def host_facts():
    cpu_name = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        umockdev = subprocess.run(["dpkg-query", "-W", "-f=${Version}",
                                   "umockdev"], capture_output=True,
                                  text=True).stdout or "?"
    except OSError:
        umockdev = "?"
    with open("/proc/sys/net/unix/max_dgram_qlen") as f:
        qlen = f.read().strip()
    return {"cpu": re.sub(r"\s+", " ", cpu_name), "cpus": os.cpu_count(),
            "kernel": platform.release(), "umockdev": umockdev,
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "clk_tck": os.sysconf("SC_CLK_TCK"), "qlen": qlen}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True,
                    help="directory with match-bench and match.json")
    ap.add_argument("--match-bench", help="default: BUILD/match-bench")
    ap.add_argument("--latency-events", type=int, default=LATENCY_EVENTS)
    ap.add_argument("--storm-events", type=int, default=STORM_EVENTS)
    ap.add_argument("--idle", type=float, default=IDLE_SECONDS)
    ap.add_argument("--reloads", type=int, default=RELOADS)
    args = ap.parse_args()
    args.match_bench = args.match_bench or os.path.join(args.build,
                                                        "match-bench")
    aua.ensure_preload()
    # a ^C or a kill still stops every child (the ExitStacks unwind)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop_on_signal)

    res = {"host": host_facts(), "match": [], "load": [], "reload": {}}
    with open(os.path.join(args.build, "match.json")) as f:
        for line in f:
            obj = json.loads(line)
            res[obj["what"]].append(obj)
    rc = 0
    try:
        run(args, res)
        res["targets"] = targets(res)
        print(table(res), flush=True)
        if any(res["storm"][n]["lost"] for n in res["storm"]):
            print("bench: events were lost", file=sys.stderr)
            rc = 1
    except (BenchError, aua.TestFailure) as e:
        print("bench: FAILED: %s" % e, file=sys.stderr, flush=True)
        rc = 1
    finally:
        with open(os.path.join(args.build, "results.json"), "w") as f:
            json.dump(res, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())

"""Instruction profile of the event path: callgrind counts, per event, what
the daemon (10 and 10,000 rules) and bare-monitor execute from the receive
of a uevent to the line printed, on the bench's testbed.  Run by
`bench/run --profile` (or under umockdev-wrapper by hand:
`umockdev-wrapper python3 bench/profile.py --build bench/build`).

Only the event handling is counted (callgrind's --toggle-collect): the
daemon's monitor_cb (libudev's receive, our record, the router, the line),
bare-monitor's receive, printf and unref.  Instruction counts do not move
with the load of the machine, unlike wall-clock latency; they do not count
the kernel's side of the system calls, which strace -c counts here.

Writes BUILD/callgrind.NAME.out (callgrind_annotate reads them) and prints
per program the instructions per event and its ratio to bare-monitor's,
then the daemon's heaviest functions, inclusive, per event.
"""

import argparse
import contextlib
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
sys.path.insert(0, HERE)

import aua  # noqa: E402
import bench  # noqa: E402
import machine  # noqa: E402

BARE_FNS = ["udev_monitor_receive_device", "udev_device_get_action",
            "udev_device_get_devpath", "printf", "fflush", "udev_device_unref"]


def run_one(args, tb, text, leaves, name, argv, toggles, initial):
    out = os.path.join(args.build, "callgrind.%s.out" % name)
    vg = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + \
        ["--toggle-collect=" + f for f in toggles]
    with contextlib.ExitStack() as stack:
        d = stack.enter_context(bench.TimedDaemon(vg + argv, testbed=tb,
                                                  name=name))
        d.wait_ready(300)
        got = d.drain(3.0)
        if len(got) != initial:
            raise bench.BenchError("%s: %d lines at start, expected %d"
                                   % (name, len(got), initial))
        rp = bench.Replugger(tb)
        n = 0
        for k in range(args.events // 2):
            port = bench.TOGGLED[k % len(bench.TOGGLED)]
            rp.unplug(port)
            d.next_line(60)
            ifaces = rp.plug(port)
            d.next_line(60)
            tb.load_string(ifaces)
            n += 2
        rc, err = d.stop(60)
    total = 0
    with open(out) as f:
        for line in f:
            m = re.match(r"summary: (\d+)", line) or \
                re.match(r"totals: (\d+)", line)
            if m:
                total = int(m.group(1))
    return out, total, n


def top_functions(out, n_events, limit):
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes",
                        "--threshold=100", out], stdout=subprocess.PIPE,
                       text=True, check=True)
    rows = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", line)
        if m and ":" in m.group(2):
            ir = int(m.group(1).replace(",", ""))
            fn = m.group(2).split(":", 1)[1].split(" [")[0].strip()
            rows.append((ir, fn))
    return [(ir / n_events, fn) for ir, fn in rows[:limit]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--events", type=int, default=40)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    aua.ensure_preload()
    daemon = os.path.join(args.build, "auto-usb-attach")
    mb = os.path.join(args.build, "match-bench")
    text, leaves = machine.machine()
    progs = [("bare", [os.path.join(args.build, "bare-monitor")], BARE_FNS, 0)]
    for size in (10, 10000):
        path = os.path.join(args.build, "policy-%d.yaml" % size)
        subprocess.run([mb, "--write-policy", str(size), "mixed", path],
                       check=True)
        progs.append(("daemon-%d" % size,
                      [daemon, "--dry-run", "--json", "-c", path],
                      ["monitor_cb"], len(leaves)))
    res = {}
    with aua.Testbed() as tb:
        tb.sender = bench.TimedSender(tb.root, 60.0)
        tb.load_string(text)
        for name, argv, toggles, initial in progs:
            res[name] = run_one(args, tb, text, leaves, name, argv, toggles,
                                initial)
    bare = res["bare"][1] / res["bare"][2]
    print("instructions per event (callgrind), %d events each "
          "(unplug + replug of the 4 fixture leaves)" % args.events)
    for name, (out, total, n) in res.items():
        per = total / n
        print("    %-12s %9.0f   %.2fx bare-monitor" % (name, per, per / bare))
    for name in ("daemon-10", "daemon-10000"):
        out, total, n = res[name]
        print("%s, heaviest functions inclusive, instructions per event:"
              % name)
        for ir, fn in top_functions(out, n, args.top):
            print("    %9.0f  %s" % (ir, fn))
    return 0


if __name__ == "__main__":
    sys.exit(main())

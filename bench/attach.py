"""Attach latency with a real QEMU (QMP mode): from the harness's write of a
key's "add" uevent to the daemon's "attached" log line, which it writes when
QEMU has answered the device_add of its usb-host; and the split: the daemon
up to the device_add it sends (its "QMP -> {device_add ...}" debug line),
and from there to the attached line (QEMU's device_add, and the daemon
reading the answer).  Run by `bench/run --attach` (or by hand:
`umockdev-wrapper python3 bench/attach.py --build bench/build`).

The setup is the integration tests' (tests/integration/qemu.py): a QEMU
with an xHCI under the umockdev preload, the testbed's hubs, laptop
keyboard and security key, a policy giving the key to the guest.  Each
round unplugs the key (waiting for its detach) and plugs it in again with
a new device number.  Stamps are taken when the harness's reader threads
get the lines (the same ~50 us of Python on every stamp), and the daemon
logs at debug level for the split, which costs it a few writes more.
"""

import argparse
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
sys.path.insert(0, HERE)

import aua  # noqa: E402
import bench  # noqa: E402
import qemu  # noqa: E402

ATTACHED = re.compile(r"vault: 1-1\.2 attached at controller")
DEVICE_ADD = re.compile(r"vault: QMP -> \{\"execute\": ?\"device_add\"")


class StampedDaemon(aua.Daemon):
    """aua.Daemon whose stderr lines are kept with their time of arrival."""

    def __init__(self, *args, **kwargs):
        self.stamped = []
        self.cond = threading.Condition()
        super().__init__(*args, **kwargs)

    def _read_stderr(self):
        for raw in self.proc.stderr:
            t = time.monotonic_ns()
            line = raw.decode("utf-8", "replace")
            with self._stderr_lock:
                self._stderr.append(line)
            with self.cond:
                self.stamped.append((t, line))
                self.cond.notify_all()

    def wait_stamp(self, rx, start, timeout):
        """(index, ns) of the first line from index start matching rx."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.stamped)):
                    if rx.search(self.stamped[i][1]):
                        return i, self.stamped[i][0]
                left = deadline - time.monotonic()
                if left <= 0 or not self.running():
                    raise bench.BenchError("no log line matching %r: %s"
                                           % (rx.pattern, self.stderr()[-2000:]))
                self.cond.wait(left)


def pct(values, q):
    return bench.pct(values, q)


def run(args):
    """The rounds; QEMU, the daemon and the testbed are stopped by aua's
    cleanups (by pid) however this ends."""
    os.environ["AUA_DAEMON"] = os.path.join(args.build, "auto-usb-attach")
    v = qemu.Vault(qemu.KEY_TO_VAULT_RULE)
    tb = v.tb
    tb.sender = bench.TimedSender(tb.root, 30.0)
    t = 20
    total, daemon_ms, qemu_ms = [], [], []
    d = StampedDaemon(qemu.daemon_args(v.tmp, v.policy), testbed=tb)
    with d:
        d.wait_ready(t)
        d.wait_stamp(ATTACHED, 0, t)
        spare = iter(range(40, 40 + args.rounds))
        pos = 0
        for _ in range(args.rounds):
            tb.remove("1-1.2")
            pos = qemu.wait_log(d, r"vault: 1-1\.2 detached", t, pos)
            v.guest.wait_usb_hosts([], t)
            with d.cond:
                mark = len(d.stamped)
            tb.load("yubikey", devnum=next(spare))
            sent = tb.sender.last_device_send
            i, t_add = d.wait_stamp(DEVICE_ADD, mark, t)
            _, t_done = d.wait_stamp(ATTACHED, i, t)
            total.append((t_done - sent) / 1e6)
            daemon_ms.append((t_add - sent) / 1e6)
            qemu_ms.append((t_done - t_add) / 1e6)
        rc, err = d.stop()
        if rc != 0:
            raise bench.BenchError("the daemon exited %s:\n%s" % (rc, err[-2000:]))
    print("attach latency, real QEMU (QMP), %d replugs of the key: p50 / p99 in ms"
          % args.rounds)
    print("    uevent -> attached (QEMU answered device_add)   %.2f / %.2f"
          % (pct(total, 50), pct(total, 99)))
    print("    daemon: uevent -> device_add sent               %.2f / %.2f  (%.0f%% of the p50)"
          % (pct(daemon_ms, 50), pct(daemon_ms, 99),
             100 * pct(daemon_ms, 50) / pct(total, 50)))
    print("    device_add sent -> attached (QEMU's share)      %.2f / %.2f"
          % (pct(qemu_ms, 50), pct(qemu_ms, 99)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    aua.main(lambda: run(args), "bench/attach.py")


if __name__ == "__main__":
    main()

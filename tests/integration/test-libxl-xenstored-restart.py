"""xenstored dies under the libxl daemon and is started again by hand with
the same store (the fixture's xenenv_restart_xenstored).  libxenstore does
not reconnect and libxl cannot be pointed at the new xenstored, so the
daemon must not go on blind: it exits with status 1 and says why, once,
without spinning, soon after a USB operation fails (a device plugged in
meanwhile) and within its 5 s check when idle.  Started again, as systemd's
Restart=on-failure does, it reconciles with the new xenstored: what the
guest held stays (not attached twice), the device plugged in while it was
down is attached, and the state file says so."""

import json
import os
import resource
import subprocess
import time

import aua
import daemon
import xen

VAULT = 7
LOST = "lost the connection to xenstored"


def recorded(state_dir):
    with open(os.path.join(state_dir, "state.json")) as f:
        return sorted(a["busid"] for a in json.load(f)["attachments"])


def wait_exit(d, t):
    try:
        return d.proc.wait(t)
    except subprocess.TimeoutExpired:
        aua.fail("the daemon did not exit after xenstored died:\n%s" % d.stderr())


def children_cpu():
    """CPU seconds of this test's reaped children."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_AND_STICK_TO_VAULT)
    state_dir = os.path.join(tmp, "state")
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey"):
        tb.load(f)
    xen.add_guest("vault", VAULT)
    t = daemon.timeout(15)

    # Busy: a device plugged in after xenstored died.
    with xen.start_daemon(tb, policy, "--state-dir", state_dir) as d:
        d.wait_ready(t)
        xen.wait_attached(VAULT, ["1-1.2"], t)
        aua.wait_until(lambda: recorded(state_dir) == ["1-1.2"], t, "the key recorded")
        xen.restart_xenstored()
        tb.load("storage")
        start = time.monotonic()
        rc = wait_exit(d, t)
        took = time.monotonic() - start
        err = d.stderr()
        aua.check_equal(rc, 1, "exit status after xenstored died")
        aua.check_equal(err.count(LOST), 1, "said once:\n%s" % err)
        aua.check(took < daemon.timeout(4),
                  "a failed attach made it check at once (%.1f s)" % took)
        aua.check(err.count("failed (attempt") <= 1, "no retry loop:\n%s" % err)
        d.stop()

    # What the new xenstored holds is what the old one did.
    aua.check_equal(xen.attached(VAULT), ["1-1.2"], "the store after the restart")

    # Started again (Restart=on-failure): reconciled with the new xenstored.
    with xen.start_daemon(tb, policy, "--state-dir", state_dir) as d:
        d.wait_ready(t)
        xen.wait_attached(VAULT, ["1-1.2", "1-1.4.2"], t)
        aua.wait_until(lambda: recorded(state_dir) == ["1-1.2", "1-1.4.2"], t,
                       "the state file after the restart")
        hosts = [h[0] for h in xen.usb_hosts(VAULT)]
        aua.check_equal(hosts.count("xenusb-1-5"), 1, "the key attached once over both runs")
        aua.check_equal(hosts.count("xenusb-1-7"), 1, "the stick attached by the new daemon")

        # Idle: nothing plugged; the periodic check finds out, without spinning.
        xen.restart_xenstored()
        cpu = children_cpu()
        rc = wait_exit(d, daemon.timeout(10))
        cpu = children_cpu() - cpu      # the daemon's whole life, now reaped
        err = d.stderr()
        aua.check_equal(rc, 1, "exit status when idle")
        aua.check_equal(err.count(LOST), 1, "said once:\n%s" % err)
        aua.check("Bad file descriptor" in err, "the reason given:\n%s" % err)
        aua.check(cpu < daemon.timeout(1.0), "no spinning: %.2f s of CPU" % cpu)
        d.stop()
    aua.check_equal(xen.attached(VAULT), ["1-1.2", "1-1.4.2"], "left attached at exit")


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

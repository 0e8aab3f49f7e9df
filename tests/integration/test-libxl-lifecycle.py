"""Guests come and go under the daemon: a guest not running at start makes
its devices wait; when it appears they are attached; when it is destroyed
they are released, and when it comes back under a new domid they are
attached again.  A guest introduced before its device model listens (xl's
real order) gets its device once the model answers (a retry).  --no-wait
with a guest that is not running exits at once, non-zero, saying so."""

import time

import aua
import daemon
import xen


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_TO_VAULT)
    tb = aua.Testbed()
    tb.load("hubs")
    tb.load("laptop-keyboard")
    tb.load("yubikey")
    t = daemon.timeout(15)

    # The old script's --no-wait: the guest is not running, so exit 1 at once.
    with aua.Daemon(daemon.command("-d", "vault", "-x", "1050:0407", "--no-wait"),
                    testbed=tb, env=xen.daemon_env()) as d:
        d.proc.wait(t)
        rc, err = d.stop()
    aua.check_equal(rc, 1, "exit code of --no-wait (stderr: %s)" % err)
    aua.check("vault is not running and --no-wait was given" in err, "message: %s" % err)

    with xen.start_daemon(tb, policy, "-v") as d:
        d.wait_ready(t)
        aua.wait_until(lambda: "vault: 1-1.2 waits until the guest runs" in d.stderr(), t,
                       "the log line of the device waiting for its guest")

        xen.add_guest("vault", 9)
        xen.wait_attached(9, ["1-1.2"], t)

        # Shut down (not yet destroyed): the daemon lets go of its devices.
        xen._xenenv("xenenv_set_state", 9, "shutdown")
        aua.wait_until(lambda: "vault: guest stopped (was domid 9)" in d.stderr(), t,
                       "the daemon to see the guest shut down")
        xen.destroy_guest(9)

        # Back under a new domid, introduced before its device model listens.
        xen.add_guest("vault", 12, "none")
        aua.wait_until(lambda: "vault: guest is running (domid 12)" in d.stderr(), t,
                       "the daemon to see the guest come back")
        time.sleep(0.3)
        aua.check_equal(xen.attached(12), [], "nothing attached without a device model")
        xen._xenenv("xenenv_start_dm", 12, "double")
        xen.wait_attached(12, ["1-1.2"], t)
        aua.check("attaching 1-1.2 failed" in d.stderr() or
                  "creating a USB controller" in d.stderr(),
                  "the first try failed and was retried:\n%s" % d.stderr())
        xen.wait_usb_hosts(12, 1, t)
        aua.check_equal([h[0] for h in xen.usb_hosts(12)], ["xenusb-1-5"],
                        "one usb-host in the new guest")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

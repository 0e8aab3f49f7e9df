"""A device a user gives a policy guest with xl usbdev-attach while the
daemon runs: the daemon sees it at once (its xenstore watch on the guest's
controllers), counts the port as taken and never gives that port to one of
its own devices, which waits instead; when the user's device is unplugged
the daemon removes it from the guest, and its own device takes the port.
Before the watch, the daemon believed the port free until it next read the
guest's controllers, and sent its own device there."""

import aua
import daemon
import xen

VAULT = 7

POLICY = """\
version: 1
domains:
  vault:
    controller: { version: 3, ports: 2, max: 1 }
rules:
  - match: { id: "1050:0407" }
    domain: vault
    allow-dom0-lockout: true
  - match: { hub: "1-1.4" }
    domain: vault
"""


def stick_adds():
    return [h for h in xen.usb_hosts(VAULT) if h[0] == "xenusb-1-7"]


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    tb = aua.Testbed()
    for f in ("hubs", "webcam", "yubikey"):
        tb.load(f)
    xen.add_guest("vault", VAULT)
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy, "-v") as d:
        d.wait_ready(t)
        xen.wait_attached(VAULT, ["1-1.2"], t)
        aua.check_equal(xen.controllers(VAULT), [0], "one controller, the daemon's")
        # The user gives the webcam (no rule routes it) by hand: port 2.
        xen.xl("usbdev-attach", "vault", "hostbus=1", "hostaddr=4")
        aua.check_equal(xen.ports(VAULT), {(0, 1): "1-1.2", (0, 2): "1-2"}, "the ports")
        aua.wait_until(lambda: "port 2 holds 1-2, which the daemon did not attach" in
                       d.stderr(), t, "the daemon to see the webcam given by hand")
        # The stick has no free port now, and may not have a controller more.
        tb.load("storage")
        aua.wait_until(lambda: "1-1.4.2 waits for a free port" in d.stderr(), t,
                       "the stick to wait for a port:\n%s" % d.stderr())
        aua.check_equal(stick_adds(), [], "the stick never sent to the guest")
        aua.check_equal(xen.ports(VAULT), {(0, 1): "1-1.2", (0, 2): "1-2"},
                        "the webcam left in its port")
        # Unplugged: the webcam is taken out of the guest, the stick goes in.
        tb.remove("1-2")
        xen.wait_attached(VAULT, ["1-1.2", "1-1.4.2"], t)
        xen.wait_usb_hosts(VAULT, 3, t)
        aua.check_equal([h[2] for h in stick_adds()], ["2"], "the stick in port 2")
        aua.check("failed" not in d.stderr(), "no failed attach:\n%s" % d.stderr())
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

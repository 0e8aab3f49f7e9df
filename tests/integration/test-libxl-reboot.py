"""A guest reboot as xl does it (issue 22): the old domain shuts down and is
destroyed, xl builds the guest again under a new domid, paused, introduces
it before its device model listens, restores its usbctrl (empty) and only
then unpauses it.  The daemon waits until the new domain runs, finds the
restored controller and attaches the key there: no second controller, no
failed creation.  A guest started paused with no controller gets nothing
until it runs; then the daemon creates its controller."""

import time

import aua
import daemon
import xen


def controller_adds(domid):
    return [c["arguments"]["id"] for c in xen.qmp_log(domid)
            if c.get("execute") == "device_add" and
            c.get("arguments", {}).get("driver") != "usb-host"]


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_TO_VAULT)
    tb = aua.Testbed()
    tb.load("hubs")
    tb.load("laptop-keyboard")
    tb.load("yubikey")
    t = daemon.timeout(15)

    with xen.start_daemon(tb, policy, "-v") as d:
        d.wait_ready(t)
        xen.add_guest("vault", 9)
        xen.wait_attached(9, ["1-1.2"], t)
        aua.check_equal(xen.controllers(9), [0], "the daemon made one controller")

        # The guest reboots: shut down, destroyed by xl, built again paused.
        xen._xenenv("xenenv_set_state", 9, "shutdown")
        aua.wait_until(lambda: "vault: guest stopped (was domid 9)" in d.stderr(), t,
                       "the daemon to see the guest shut down")
        xen.destroy_guest(9)
        xen.add_guest("vault", 10, "none", "paused")
        time.sleep(0.7)
        aua.check("guest is running (domid 10)" not in d.stderr(),
                  "a paused domain is not taken as running:\n%s" % d.stderr())
        xen._xenenv("xenenv_start_dm", 10, "double")
        # xl restores the guest's controller, then unpauses the guest.
        xen.xl("usbctrl-attach", 10, "version=3", "ports=8")
        time.sleep(0.3)
        aua.check_equal(xen.attached(10), [], "nothing attached while paused")
        xen._xenenv("xenenv_set_state", 10, "running")
        xen.wait_attached(10, ["1-1.2"], t)
        xen.wait_usb_hosts(10, 1, t)
        aua.check_equal(xen.controllers(10), [0], "the restored controller only")
        aua.check_equal(controller_adds(10), ["xenusb-0"],
                        "one controller added to the device model (xl's)")
        aua.check_equal(sorted(xen.ports(10))[0], (0, 1), "the key on controller 0")
        aua.check(xen.ports(10)[(0, 1)] == "1-1.2", "port 0:1 holds the key")
        aua.check("creating a USB controller" not in d.stderr(),
                  "no controller creation was tried, none failed:\n%s" % d.stderr())

        # Destroy + create of a guest with no controller, built paused: nothing
        # is done until it runs, then one controller is made and the key attached.
        xen.destroy_guest(10)
        xen.add_guest("vault", 11, "double", "paused")
        time.sleep(0.7)
        aua.check_equal(xen.controllers(11), [], "no controller made while paused")
        aua.check_equal(controller_adds(11), [], "the device model was left alone")
        xen._xenenv("xenenv_set_state", 11, "running")
        xen.wait_attached(11, ["1-1.2"], t)
        aua.check_equal(xen.controllers(11), [0], "one controller")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

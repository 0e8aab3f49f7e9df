"""A device a user gave with xl to a guest the policy does not name is
unplugged, before the daemon starts or while it runs.  libxl refuses every
later USB add while a guest's port names a device it cannot find, so the
daemon removes that leftover too, though it has no worker for that guest,
and the next device goes to the policy's guest.  A device still plugged in
stays where the user put it."""

import aua
import daemon
import xen

WIN10 = 5
OTHER = 7


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.STICK_TO_WIN10)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "webcam", "yubikey"):
        tb.load(f)
    xen.add_guest("win10", WIN10)
    xen.add_guest("other", OTHER)
    xen.xl("usbctrl-attach", "other", "version=2", "ports=6")
    xen.xl("usbdev-attach", "other", "hostbus=1", "hostaddr=4")    # the webcam
    xen.xl("usbdev-attach", "other", "hostbus=1", "hostaddr=5")    # the YubiKey
    tb.remove("1-2")
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        # Unplugged before the start: removed once the start's enumeration is over.
        xen.wait_attached(OTHER, ["1-1.2"], t)
        xen.wait_device_dels(OTHER, ["xenusb-1-4"], t, "the webcam's usb-host deleted")

        # Given with xl while the daemon runs, then unplugged.
        tb.load("webcam")
        xen.xl("usbdev-attach", "other", "hostbus=1", "hostaddr=4")
        aua.check_equal(sorted(xen.attached(OTHER)), ["1-1.2", "1-2"],
                        "both left where the user put them")
        tb.remove("1-2")
        xen.wait_attached(OTHER, ["1-1.2"], t)
        xen.wait_device_dels(OTHER, ["xenusb-1-4", "xenusb-1-4"], t,
                             "the webcam's usb-host deleted again")
        aua.check("other (not in the policy): controller 0 port 1 holds 1-2, which is not "
                  "plugged in: removing it" in d.stderr(), "said why:\n%s" % d.stderr())
        tb.load("storage")
        xen.wait_attached(WIN10, ["1-1.4.2"], t)
        xen.wait_usb_hosts(WIN10, 1, t)
        aua.check_equal(xen.usb_hosts(WIN10), [("xenusb-1-7", "xenusb-0.0", "1", "1", "7")],
                        "the stick's usb-host added to win10's device model")
        aua.check_equal(xen.attached(OTHER), ["1-1.2"], "the YubiKey, still plugged in, stays")
        aua.check("failed" not in d.stderr(), "no failed attach:\n%s" % d.stderr())
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

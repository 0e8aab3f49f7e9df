"""Start-up against what guests already hold.  Before the daemon starts, a
user attached two devices to a guest with xl; one of them has since been
unplugged.  The daemon removes the stale attachment (device_del and the
xenstore port cleared: a busid left there would make every later libxl add
fail), takes the one still plugged in as attached instead of adding it a
second time, and attaches what is missing.  A device that someone gave to
another guest is reported and left there, not fought over."""

import aua
import daemon
import xen


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.BUS1_TO_WIN10)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "keyboard", "storage", "webcam"):
        tb.load(f)
    xen.add_guest("win10", 5)
    xen.add_guest("vault", 7)
    xen.xl("usbctrl-attach", "vault", "version=2", "ports=6")
    xen.xl("usbdev-attach", "vault", "hostbus=1", "hostaddr=4")    # the webcam
    # An xHCI: it takes the full-speed key that will need its free port.
    xen.xl("usbctrl-attach", "win10", "version=3", "ports=8")
    xen.xl("usbdev-attach", "win10", "hostbus=1", "hostaddr=6")    # the keyboard
    xen.xl("usbdev-attach", "win10", "hostbus=1", "hostaddr=7")    # the stick
    aua.check_equal(xen.attached(5), ["1-1.3", "1-1.4.2"], "set up with xl")
    tb.remove("1-1.3")      # unplugged while no daemon ran
    tb.load("yubikey")      # plugged in, attached by nobody yet
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        xen.wait_attached(5, ["1-1.2", "1-1.4.2"], t)
        aua.wait_until(lambda: "1-2 is attached to domain 7 already, by someone else" in
                       d.stderr(), t, "the webcam reported as someone else's")
        aua.check_equal(xen.attached(7), ["1-2"], "the webcam stays in the vault")
        xen.wait_device_dels(5, ["xenusb-1-6"], t, "the stale keyboard removed")
        aua.wait_until(lambda: "xenusb-1-5" in [h[0] for h in xen.usb_hosts(5)], t,
                       "the key's device_add in the device model's log")
        hosts = [h[0] for h in xen.usb_hosts(5)]
        aua.check_equal(hosts.count("xenusb-1-7"), 1, "the stick was not attached twice")
        aua.check_equal(hosts.count("xenusb-1-5"), 1, "the key was attached")
        aua.check_equal(xen.controllers(5), [0], "no new controller: a port was free")
        # The adopted stick is the daemon's now: unplugging it detaches it.
        tb.remove("1-1.4.2")
        xen.wait_attached(5, ["1-1.2"], t)
        aua.wait_until(lambda: xen.device_dels(5)[-1:] == ["xenusb-1-7"], t,
                       "detach of the adopted stick")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

"""A udev monitor overrun (ENOBUFS) with the libxl backend, on the real
libxl and xenstored: A and B attached to win10; while every uevent is lost
(tests/fixtures/overrun-preload.so) B is unplugged, C plugged in, A
unplugged and plugged in again at a new device number (A').  Afterwards the
guest holds exactly A' and C: the device model was told to delete B's and
the old A's usb-host (which libxl knows only from its saved config: their
sysfs is gone) and to add A' and C.  The webcam, which a user gave to
win10 with xl before the daemon started (not the policy's: left there), is
unplugged during the overrun too: its stale attachment is removed, as at
start (a busid left in a port makes every later libxl add fail)."""

import aua
import daemon
import devices
import xen
from overrun import Overrun, lost_log

WIN10 = 5


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.STICK_TO_WIN10)
    ov = Overrun(tmp)
    tb = aua.Testbed()
    tb.load("hubs")
    a = devices.load_storage(tb, 1, 21)
    b = devices.load_storage(tb, 2, 22)
    tb.load("webcam")
    xen.add_guest("win10", WIN10)
    xen.xl("usbctrl-attach", "win10", "version=2", "ports=6")
    xen.xl("usbdev-attach", "win10", "hostbus=1", "hostaddr=4")    # the webcam
    t = daemon.timeout(10)
    with aua.Daemon(daemon.command("--foreground", "-c", policy), testbed=tb,
                    env=ov.env(xen.daemon_env())) as d:
        d.wait_ready(t)
        tb.wait_listeners(1)
        xen.wait_attached(WIN10, ["1-2", a, b], t)
        xen.wait_usb_hosts(WIN10, 3, t)
        aua.check_equal(sorted(h[0] for h in xen.usb_hosts(WIN10)),
                        ["xenusb-1-21", "xenusb-1-22", "xenusb-1-4"],
                        "the webcam by hand, A and B by the daemon")

        def meanwhile():
            tb.remove("1-2")
            devices.load_storage(tb, 3, 23)
            tb.remove(a)
            devices.load_storage(tb, 1, 31)

        dropped = ov.run(lambda: tb.remove(b), meanwhile, t)
        aua.check(dropped >= 4, "uevents dropped: %d" % dropped)
        xen.wait_attached(WIN10, [a, "1-1.4.3"], t)
        aua.wait_until(lambda: sorted(xen.device_dels(WIN10)) ==
                       ["xenusb-1-21", "xenusb-1-22", "xenusb-1-4"], t,
                       "B, the old A and the webcam deleted (deleted: %r)"
                       % xen.device_dels(WIN10))
        xen.wait_usb_hosts(WIN10, 5, t)
        aua.check_equal(sorted(h[0] for h in xen.usb_hosts(WIN10)),
                        ["xenusb-1-21", "xenusb-1-22", "xenusb-1-23", "xenusb-1-31",
                         "xenusb-1-4"],
                        "every usb-host added, A' and C after the overrun")
        aua.check_equal(len(lost_log(d)), 1, "the overrun logged once: %r" % lost_log(d))
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

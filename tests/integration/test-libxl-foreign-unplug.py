"""A device a user gave to a policy guest with xl before the daemon started
(the policy does not route it: left there) is unplugged while the daemon
runs.  The busid it leaves in the guest's port would make every later
libxl add fail ("cannot determine if device is assigned"); the daemon
removes that stale attachment, as it does at start, and the next device is
attached."""

import aua
import daemon
import xen

WIN10 = 5


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.STICK_TO_WIN10)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "webcam"):
        tb.load(f)
    xen.add_guest("win10", WIN10)
    xen.xl("usbctrl-attach", "win10", "version=2", "ports=6")
    xen.xl("usbdev-attach", "win10", "hostbus=1", "hostaddr=4")    # the webcam
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        aua.check_equal(xen.attached(WIN10), ["1-2"], "the webcam left where the user put it")
        tb.remove("1-2")
        xen.wait_attached(WIN10, [], t)
        xen.wait_device_dels(WIN10, ["xenusb-1-4"], t, "the webcam's usb-host deleted")
        aua.check("controller 0 port 1 holds 1-2, which is not plugged in" in d.stderr(),
                  "said why:\n%s" % d.stderr())
        tb.load("storage")
        xen.wait_attached(WIN10, ["1-1.4.2"], t)
        aua.check("failed" not in d.stderr(), "no failed attach:\n%s" % d.stderr())
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

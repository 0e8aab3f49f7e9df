"""Controller capacity on the real libxl: seven devices for a guest whose
controllers have six ports.  With max: 2 a second controller is created and
all seven are attached; with max: 1 the seventh waits, with a log line that
says why, and is attached as soon as another device is unplugged."""

import aua
import daemon
import devices
import xen

POLICY = """\
version: 1
domains:
  win10:
    controller: { version: 2, ports: 6, max: %d }
rules:
  - match: { hub: "1-1.4" }
    domain: win10
"""


def run(tb, tmp, domid, max_ctrls):
    policy = daemon.write_policy(tmp, "policy-%d.yaml" % max_ctrls, POLICY % max_ctrls)
    return xen.start_daemon(tb, policy)


def test():
    tmp = aua.tempdir()
    tb = aua.Testbed()
    tb.load("hubs")
    ports = [devices.load_storage(tb, n, 20 + n) for n in range(1, 8)]
    t = daemon.timeout(15)

    xen.add_guest("win10", 5)
    with run(tb, tmp, 5, 2) as d:
        d.wait_ready(t)
        xen.wait_attached(5, ports, t)
        aua.check_equal(xen.controllers(5), [0, 1], "a second controller for the 7th device")
        aua.check_equal(sorted(xen.ports(5)), [(c, p) for c in (0, 1) for p in range(1, 7)],
                        "ports of two version-2 controllers")
        daemon.stop_clean(d)

    # The same seven devices for a fresh guest that may have one controller.
    xen.destroy_guest(5)
    xen.add_guest("win10", 6)
    with run(tb, tmp, 6, 1) as d:
        d.wait_ready(t)
        xen.wait_attached(6, ports[:6], t)
        aua.wait_until(lambda: "1-1.4.7 waits for a free port" in d.stderr(), t,
                       "the log line for the waiting device")
        aua.check_equal(xen.controllers(6), [0], "max: 1 keeps one controller")
        aua.check("xenusb-1-27" not in [h[0] for h in xen.usb_hosts(6)],
                  "the 7th device was not attached")
        tb.remove("1-1.4.3")
        expected = ports[:2] + ports[3:]
        xen.wait_attached(6, expected, t)
        xen.wait_device_dels(6, ["xenusb-1-23"], t, "the unplugged device")
        aua.check_equal(xen.ports(6)[(0, 3)], "1-1.4.7", "the waiting device takes the free port")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

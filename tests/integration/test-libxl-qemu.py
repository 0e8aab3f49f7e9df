"""The whole chain with a real QEMU as the guest's device model (running
under the umockdev preload, so its usb-host opens the testbed's device):
the daemon creates the guest's first USB controller, attaches a security key
to it, and detaches it when it is unplugged.  Checked in QEMU itself (QOM)
as well as in xenstore."""

import aua
import daemon
import xen

POLICY = """\
version: 1
domains:
  vault:
    controller: { version: 3, ports: 4 }
rules:
  - match: { id: "1050:0407" }
    domain: vault
"""


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey"):
        tb.load(f)
    xen.add_guest("vault", 7, "qemu")
    aua.check_equal(xen.qemu_devices(7), [], "QEMU starts without USB")
    t = daemon.timeout(20)
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        xen.wait_attached(7, ["1-1.2"], t)
        aua.check_equal(xen.qemu_devices(7), ["xenusb-0", "xenusb-1-5"],
                        "the xHCI controller and the key in QEMU")
        ctrl = xen.qmp(7, "qom-get", {"path": "/machine/peripheral/xenusb-0",
                                      "property": "type"})
        aua.check_equal(ctrl, "nec-usb-xhci", "a version 3 controller is an xHCI")
        hostaddr = xen.qmp(7, "qom-get", {"path": "/machine/peripheral/xenusb-1-5",
                                          "property": "hostaddr"})
        aua.check_equal(hostaddr, 5, "QEMU's usb-host holds bus 1 device 5")

        tb.remove("1-1.2")
        xen.wait_attached(7, [], t)
        aua.wait_until(lambda: xen.qemu_devices(7) == ["xenusb-0"], t,
                       "QEMU to let go of the key")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

"""The libxl backend on the real libxl and xenstored: cold plug of three
devices into two guests (one on a nested hub), a controller created where a
guest has none, a hot add, an unplug detached from the daemon's own record
(the device's sysfs is already gone), and SIGHUP moving a device from one
guest to another (after a reload that asks for a QMP socket, which a
libxl daemon cannot follow: refused, the policy in force stays).  Asserted from the QMP commands the device models got and
from xenstore."""

import signal

import aua
import daemon
import qemu
import xen

POLICY = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - name: keys
    match: { id: "1050:0407" }
    domain: vault
  - name: the first hub
    match: { hub: usb1 }
    domain: win10
"""

MOVED = POLICY.replace("""  - name: the first hub""", """  - name: the keyboard to the vault
    match: { id: "046d:c31c" }
    domain: vault
  - name: the first hub""")

WIN10, VAULT = 5, 7


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard", "storage"):
        tb.load(f)
    xen.add_guest("win10", WIN10)
    xen.add_guest("vault", VAULT)
    t = daemon.timeout(10)
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        xen.wait_attached(VAULT, ["1-1.2"], t)
        xen.wait_attached(WIN10, ["1-1.3", "1-1.4.2"], t)
        xen.wait_usb_hosts(VAULT, 1, t)
        xen.wait_usb_hosts(WIN10, 2, t)
        # No guest had a controller: one was made (version 3, xHCI, 8 ports: the
        # default, which takes the full-speed keyboard and key) in each.
        for domid in (WIN10, VAULT):
            adds = [c["arguments"] for c in xen.qmp_log(domid)
                    if c.get("execute") == "device_add" and
                    c["arguments"]["driver"] != "usb-host"]
            aua.check_equal(adds, [{"driver": "nec-usb-xhci", "id": "xenusb-0", "p2": "8",
                                    "p3": "8"}],
                            "controllers created in domain %d" % domid)
        aua.check_equal(xen.usb_hosts(VAULT), [("xenusb-1-5", "xenusb-0.0", "1", "1", "5")],
                        "the key's usb-host")
        aua.check_equal(sorted(xen.usb_hosts(WIN10)),
                        [("xenusb-1-6", "xenusb-0.0", "1", "1", "6"),
                         ("xenusb-1-7", "xenusb-0.0", "2", "1", "7")],
                        "keyboard and the stick on the nested hub")

        tb.load("webcam")
        xen.wait_attached(WIN10, ["1-1.3", "1-1.4.2", "1-2"], t)
        xen.wait_usb_hosts(WIN10, 3, t)
        aua.check_equal(xen.usb_hosts(WIN10)[-1], ("xenusb-1-4", "xenusb-0.0", "3", "1", "4"),
                        "hot-plugged webcam")

        tb.remove("1-1.2")
        xen.wait_attached(VAULT, [], t)
        xen.wait_device_dels(VAULT, ["xenusb-1-5"], t, "detach of the unplugged key")

        pos = len(d.stderr())
        daemon.write_policy(tmp, "policy.yaml", MOVED.replace(
            "  vault: {}", "  vault: { qmp-socket: /run/vault.qmp }"))
        d.signal(signal.SIGHUP)
        pos = qemu.wait_log(d, r"domain 'vault' has a qmp-socket, but this daemon attaches "
                               r"through libxl: restart it to change the backend", t, pos)
        qemu.wait_log(d, r"not reloaded; the policy loaded before stays in force", t, pos)
        aua.check_equal(xen.attached(WIN10), ["1-1.3", "1-1.4.2", "1-2"], "win10 unchanged")

        daemon.write_policy(tmp, "policy.yaml", MOVED)
        d.signal(signal.SIGHUP)
        d.wait_notify("RELOADING", "1", t)
        xen.wait_attached(VAULT, ["1-1.3"], t)
        xen.wait_usb_hosts(VAULT, 2, t)
        xen.wait_attached(WIN10, ["1-1.4.2", "1-2"], t)
        xen.wait_device_dels(WIN10, ["xenusb-1-6"], t, "keyboard taken out of win10")
        aua.check_equal(xen.usb_hosts(VAULT)[-1], ("xenusb-1-6", "xenusb-0.0", "1", "1", "6"),
                        "keyboard given to the vault")
        daemon.stop_clean(d)
    # Stopping the daemon leaves the guests as they are.
    aua.check_equal(xen.attached(WIN10), ["1-1.4.2", "1-2"], "win10 after the daemon stopped")


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

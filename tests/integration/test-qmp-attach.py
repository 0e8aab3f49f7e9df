"""The QMP backend on a real QEMU: the daemon connects to the guest's extra
QMP socket (greeting, qmp_capabilities), finds its xHCI controller xenusb-0
in QOM, attaches a security key present at start and a keyboard plugged in
later (usb-host xenusb-<bus>-<addr> on bus xenusb-0.0, ports 1 and 2, as
QEMU's own QOM shows them), and detaches the key when it is unplugged
(device_del, then QEMU's DEVICE_DELETED).  A reload that names a QMP
socket the daemon was not started with, or a guest without one, is refused
with the reason (the sockets are opened at start) and the policy in force
stays."""

import os
import signal

import aua
import daemon
import qemu

RULES = """\
  - match: { id: "1050:0407" }
    domain: vault
  - match: { id: "046d:c31c" }
    domain: vault
"""


def test():
    v = qemu.Vault(RULES)
    tmp, tb, g = v.tmp, v.tb, v.guest
    t = daemon.timeout(10)
    with v.daemon() as d:
        d.wait_ready(t)
        qemu.wait_log(d, r"QMP .*vault\.qmp: connected", t)
        qemu.wait_log(d, r"vault: QMP .*: 1 USB controller\(s\), 0 other device\(s\)", t)
        qemu.wait_log(d, r"vault: guest is running \(domid 65536\)", t)
        g.wait_usb_hosts([("xenusb-1-5", "xenusb-0", "1", 1, 5)], t)
        qemu.wait_log(d, r"vault: 1-1\.2 attached at controller 0 port 1", t)
        aua.check_equal(sorted(g.peripherals().items()),
                        [("xenusb-0", "nec-usb-xhci"), ("xenusb-1-5", "usb-host")],
                        "QEMU's devices: no controller was made, no hub inserted")

        tb.load("keyboard")
        g.wait_usb_hosts([("xenusb-1-5", "xenusb-0", "1", 1, 5),
                          ("xenusb-1-6", "xenusb-0", "2", 1, 6)], t)

        # A new guest on a new socket, then a guest without one: refused.
        good = qemu.policy([("vault", g.sock, None)], RULES)
        pos = len(d.stderr())
        for bad, why in ((qemu.policy([("vault", g.sock, None),
                                       ("win10", os.path.join(tmp, "win10.qmp"), None)], RULES),
                          r"domain 'win10': qmp-socket \S+win10\.qmp is not one the daemon "
                          r"was started with: restart the daemon to use it"),
                         (good.replace("domains:\n", "domains:\n  other: {}\n"),
                          r"domain 'other': no qmp-socket, but this daemon attaches through "
                          r"QMP: restart the daemon to use it")):
            daemon.write_policy(tmp, "policy.yaml", bad)
            d.signal(signal.SIGHUP)
            pos = qemu.wait_log(d, why, t, pos)
            pos = qemu.wait_log(d, r"not reloaded; the policy loaded before stays in force",
                                t, pos)
        daemon.write_policy(tmp, "policy.yaml", good)
        aua.check_equal(len(g.usb_hosts()), 2, "both devices stay attached")

        tb.remove("1-1.2")
        g.wait_usb_hosts([("xenusb-1-6", "xenusb-0", "2", 1, 6)], t)
        qemu.wait_log(d, r"vault: 1-1\.2 detached", t)
        qemu.wait_log(d, r"vault: QEMU deleted xenusb-1-5|QMP event DEVICE_DELETED", t)
        err = daemon.stop_clean(d)
    aua.check("qmp-libxl" not in err, "libxl's socket was never touched")
    # The daemon leaves the guest as it is.
    aua.check_equal(g.usb_hosts(), [("xenusb-1-6", "xenusb-0", "2", 1, 6)],
                    "the keyboard stays after the daemon stopped")
    aua.check(os.path.exists(g.sock), "QEMU's socket is still there")


if __name__ == "__main__":
    aua.main(test)

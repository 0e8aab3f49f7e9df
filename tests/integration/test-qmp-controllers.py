"""Controllers over QMP, on two real QEMUs.  "full" starts with an xHCI
xenusb-0 of one USB 2 port that a keyboard of QEMU's own already takes, and
a controller that is not ours (usb0): the daemon finds them in QOM, leaves
both alone, and creates xenusb-1 (an xHCI with p2=p3=2) for the key.  (Not
an EHCI: QEMU's usb-ehci without companion controllers refuses full-speed
devices such as the key, "failed to open host usb device".)  "bare"
has no USB controller at all: the daemon creates xenusb-0 as an xHCI with
p2=p3=4 (version 3, 4 ports) and attaches the keyboard there."""

import aua
import daemon
import qemu

RULES = """\
  - match: { id: "1050:0407" }
    domain: full
  - match: { id: "046d:c31c" }
    domain: bare
"""


def test():
    tmp = aua.tempdir()
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard"):
        tb.load(f)
    full = qemu.Guest(tmp, "full", devices=[
        "-device", "nec-usb-xhci,id=xenusb-0,p2=1,p3=1",
        "-device", "usb-kbd,bus=xenusb-0.0,port=1,id=kbd0",
        "-device", "usb-ehci,id=usb0"]).start()
    bare = qemu.Guest(tmp, "bare", devices=[]).start()
    policy = daemon.write_policy(tmp, "policy.yaml", qemu.policy(
        [("full", full.sock, {"version": 3, "ports": 2}),
         ("bare", bare.sock, {"version": 3, "ports": 4})], RULES))
    t = daemon.timeout(10)
    with aua.Daemon(qemu.daemon_args(tmp, policy), testbed=tb) as d:
        d.wait_ready(t)
        full.wait_usb_hosts([("xenusb-1-5", "xenusb-1", "1", 1, 5)], t)
        bare.wait_usb_hosts([("xenusb-1-6", "xenusb-0", "1", 1, 6)], t)
        err = d.stderr()
        for line in (r"full: QMP .*: 1 USB controller\(s\), 1 other device\(s\)",
                     r"USB controller 'usb0' is not one of ours",
                     r"full: guest is running \(domid 65536\)",
                     r"bare: guest is running \(domid 65537\)",
                     r"full: created USB controller 1 \(xHCI, version 3, 2 ports\)",
                     r"bare: created USB controller 0 \(xHCI, version 3, 4 ports\)"):
            qemu.wait_log(d, line, t)
        aua.check_equal(full.peripherals(),
                        {"xenusb-0": "nec-usb-xhci", "kbd0": "usb-kbd", "usb0": "usb-ehci",
                         "xenusb-1": "nec-usb-xhci", "xenusb-1-5": "usb-host"},
                        "full's devices")
        aua.check_equal(bare.peripherals(),
                        {"xenusb-0": "nec-usb-xhci", "xenusb-1-6": "usb-host"},
                        "bare's devices")
        for prop in ("p2", "p3"):
            aua.check_equal(bare.qmp("qom-get", {"path": "/machine/peripheral/xenusb-0",
                                                 "property": prop}), 4,
                            "bare's new xHCI %s" % prop)
        aua.check("qmp-libxl" not in err, "libxl's socket untouched")
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

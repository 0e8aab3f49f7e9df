"""Speeds on real QEMUs (issue 16).  QEMU's usb-ehci without companion
controllers takes only high-speed devices: the test shows it refusing the
full-speed key first.  "fresh" has that EHCI as xenusb-0 (a user's own
usbctrl line) and the default controller settings (version 3): the
high-speed stick goes on the EHCI, the full-speed key never does, the
daemon creates an xHCI (xenusb-1) for it.  "old" has no controller and a
policy of version 2 (EHCI): the high-speed webcam is attached on the EHCI
the daemon creates, the low-speed keyboard is never offered to QEMU and is
reported once, with the reason, as a device no allowed controller takes."""

import time

import aua
import daemon
import qemu

RULES = """\
  - match: { id: "1050:0407" }
    domain: fresh
  - match: { id: "0781:5583" }
    domain: fresh
  - match: { id: "046d:0825" }
    domain: old
  - match: { id: "046d:c31c" }
    domain: old
    allow-dom0-lockout: true
"""

EHCI = ["-device", "usb-ehci,id=xenusb-0"]


def test():
    tmp = aua.tempdir()
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "storage", "webcam", "keyboard"):
        tb.load(f)
    fresh = qemu.Guest(tmp, "fresh", devices=EHCI).start()
    old = qemu.Guest(tmp, "old", devices=[]).start()

    # The premise, on the real QEMU: its EHCI refuses the full-speed key.
    r = fresh.qmp("device_add", {"driver": "usb-host", "id": "probe", "bus": "xenusb-0.0",
                                 "port": "1", "hostbus": 1, "hostaddr": 5}, check=False)
    aua.check(isinstance(r, dict) and "error" in r,
              "QEMU's usb-ehci took a full-speed device: %s" % r)
    aua.check_equal(fresh.usb_hosts(), [], "nothing left by the probe")

    policy = daemon.write_policy(tmp, "policy.yaml", qemu.policy(
        [("fresh", fresh.sock, None), ("old", old.sock, {"version": 2})], RULES))
    t = daemon.timeout(15)
    with aua.Daemon(qemu.daemon_args(tmp, policy), testbed=tb) as d:
        d.wait_ready(t)
        fresh.wait_usb_hosts([("xenusb-1-5", "xenusb-1", "1", 1, 5),
                              ("xenusb-1-7", "xenusb-0", "1", 1, 7)], t)
        old.wait_usb_hosts([("xenusb-1-4", "xenusb-0", "1", 1, 4)], t)
        aua.check_equal(fresh.peripherals(),
                        {"xenusb-0": "usb-ehci", "xenusb-1": "nec-usb-xhci",
                         "xenusb-1-5": "usb-host", "xenusb-1-7": "usb-host"},
                        "fresh: its own EHCI and the xHCI made for the key")
        aua.check_equal(old.peripherals(),
                        {"xenusb-0": "usb-ehci", "xenusb-1-4": "usb-host"},
                        "old: the EHCI its policy asks for, and the webcam")
        qemu.wait_log(d, r"old: 1-1\.3 cannot be attached: a low-speed device, which the "
                         r"guest's controllers and the policy's \(version 2, EHCI\) do not "
                         r"take: use version 3 \(xHCI\) or 1 \(UHCI\)", t)
        time.sleep(1)
        err = d.stderr()
        aua.check_equal(err.count("1-1.3 cannot be attached"), 1, "said once")
        aua.check("QMP device_add" not in err,
                  "QEMU refused nothing: no device was offered where it cannot go:\n%s" % err)
        aua.check("xenusb-1-6" not in err, "the keyboard was never offered to QEMU")
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

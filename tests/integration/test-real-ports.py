"""Connect type and interface sets, for a sys-usb set-up that keeps internal
devices in dom0 and for BadUSB defence.

umockdev's real fido2 recording (an AMD xHCI: a Realtek hub, a security
key with one HID interface) and its generated other half
(tests/integration/real.py's amd_xhci; usb1-port4 is hardwired, the others
hotplug): an internal Bluetooth adapter at 1-4, a mouse at 1-1, a stick at
2-1 and a "stick" that is also a keyboard at 2-3.  connect-type keeps the
internal adapter in dom0, every-interface-class takes HID-only devices,
no-interface-class refuses the stick with a keyboard.  The port's
connect_type is read once: a device plugged into that port again after the
attribute is gone is still hardwired.
"""

import json
import os
import subprocess

import aua
import daemon
import real

POLICY = """\
version: 1
domains:
  win10: {allow-dom0-lockout: true}
  vault: {}
rules:
  - name: internal devices stay
    match: { connect-type: hardwired }
    action: ignore
  - name: only HID
    match: { every-interface-class: hid, connect-type: hotplug }
    domain: win10
  - name: storage without a keyboard
    match: { interface-class: storage, no-interface-class: [hid, "02"] }
    domain: vault
"""


def bluetooth(devnum=5):
    return real.usb_device(real.XHCI + "/usb1/1-4", 1, devnum, 0x8087, 0x0a2b, 0xe0, 1, "12",
                           "2.00", [(0xe0, 1, 1), (0xe0, 1, 1)], real.XHCI_PATH + "-usb-0:4")


def bad_stick(devnum=6):
    return real.usb_device(real.XHCI + "/usb2/2-3", 2, devnum, 0x0781, 0x5583, 0, 0, "5000",
                           "3.20", [(8, 6, 0x50), (3, 1, 1)], real.XHCI_PATH + "-usb-0:3",
                           " SanDisk", "Ultra Fit", "4C530001231207114466")


def decided(o):
    return (o["connect_type"], o["action"], o["domain"], o["rule"])


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    tb = aua.Testbed()
    tb.load_string("\n\n".join([real.amd_xhci(), real.amd_mouse(), real.amd_stick(),
                                bluetooth(), bad_stick()]) + "\n")
    r = subprocess.run(daemon.command("--once", "--json", "-c", policy), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=daemon.timeout(20))
    aua.check_equal(r.returncode, 0, "--once: " + r.stderr)
    got = {o["port"]: o for o in map(json.loads, r.stdout.splitlines())}
    aua.check_equal(decided(got["1-4"]), ("hardwired", "ignore", None, 1),
                    "the internal Bluetooth adapter stays")
    aua.check_equal(decided(got["1-1"]), ("hotplug", "attach", "win10", 2), "the mouse: HID only")
    aua.check_equal(decided(got["1-2.3"]), ("hotplug", "attach", "win10", 2),
                    "the real key, on the hub's port: HID only")
    aua.check_equal(decided(got["2-1"]), ("hotplug", "attach", "vault", 3), "the stick")
    aua.check_equal(decided(got["2-3"]), ("hotplug", "none", None, None),
                    "the stick that is a keyboard too")
    tb.close()

    # The port's connect_type is read once, then known while its hub is there.
    tb = aua.Testbed()
    tb.load_string(real.amd_xhci())
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        tb.wait_listeners(1)
        d.json_lines(1, daemon.timeout(5))      # the key, present at start
        tb.load_string(bluetooth() + "\n")
        aua.check_equal(decided(d.json_lines(1, daemon.timeout(5))[0]),
                        ("hardwired", "ignore", None, 1), "hot-plugged on the hardwired port")
        tb.remove("1-4")
        d.json_lines(1, daemon.timeout(5))
        os.unlink(os.path.join(tb.real("usb1"), "1-0:1.0", "usb1-port4", "connect_type"))
        tb.load_string(bluetooth(devnum=7) + "\n")
        aua.check_equal(decided(d.json_lines(1, daemon.timeout(5))[0]),
                        ("hardwired", "ignore", None, 1), "again: from the cache")
        daemon.stop_clean(d)
    tb.close()


if __name__ == "__main__":
    aua.main(test)

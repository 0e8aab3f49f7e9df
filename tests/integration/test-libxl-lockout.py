"""The dom0 lock-out guard with the libxl backend, on the real libxl and
xenstored: the machine's only keyboard, routed to a guest, is held in dom0
(xenstore shows nothing attached, no usb-host reached the device model,
while another device on the same rule is attached); the laptop's built-in
keyboard appearing releases it (attached for real); a daemon restarted with
the keyboard in the guest does not take it back though dom0 has no other
keyboard any more."""

import aua
import ctl
import daemon
import os
import xen

POLICY = """\
version: 1
domains:
  sys-usb: {}
rules:
  - name: everything on the first hub
    match: { hub: "pci-0000:00:14.0-usb-0:1" }
    domain: sys-usb
"""

SYS_USB = 4


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    sock = os.path.join(tmp, "control")
    tb = aua.Testbed()
    for f in ("hubs", "keyboard", "storage"):
        tb.load(f)
    xen.add_guest("sys-usb", SYS_USB)
    t = daemon.timeout(10)
    with xen.start_daemon(tb, policy, "--control-socket", sock) as d:
        d.wait_ready(t)
        xen.wait_attached(SYS_USB, ["1-1.4.2"], t)
        xen.wait_usb_hosts(SYS_USB, 1, t)
        c = ctl.Control(sock)
        states = {x["port"]: x["state"] for x in c("devices")["devices"]}
        aua.check_equal(states, {"1-1.3": "held", "1-1.4.2": "attached"}, "states")
        aua.check_equal([h[0] for h in xen.usb_hosts(SYS_USB)], ["xenusb-1-7"],
                        "usb-hosts: the stick only")

        tb.load("laptop-keyboard")
        xen.wait_attached(SYS_USB, ["1-1.3", "1-1.4.2"], t)
        xen.wait_usb_hosts(SYS_USB, 2, t)
        aua.check_equal(sorted(h[0] for h in xen.usb_hosts(SYS_USB)),
                        ["xenusb-1-6", "xenusb-1-7"], "usb-hosts after the release")
        aua.wait_until(lambda: c("explain", device="1-1.3")["device"]["state"] == "attached",
                       t, "explain: attached")
        aua.check_equal(c("explain", device="1-1.3")["held"], False, "explain: not held")
        c.close()
        daemon.stop_clean(d)

    # The laptop keyboard is gone; a restarted daemon finds the keyboard in
    # the guest (its state file says it put it there) and leaves it there.
    tb.remove("/devices/platform/i8042/serio0/input/input3/event3")
    tb.remove("/devices/platform/i8042/serio0/input/input3")
    with xen.start_daemon(tb, policy, "--control-socket", sock) as d:
        d.wait_ready(t)
        c = ctl.Control(sock)
        aua.wait_until(lambda: {x["port"]: x["state"] for x in c("devices")["devices"]} ==
                       {"1-1.3": "attached", "1-1.4.2": "attached"}, t, "both kept")
        aua.check_equal(c("status")["dom0_keyboards"], 0, "no dom0 keyboard now")
        aua.check_equal(xen.device_dels(SYS_USB), [], "nothing taken out")
        c.close()
        daemon.stop_clean(d)
    aua.check_equal(xen.attached(SYS_USB), ["1-1.3", "1-1.4.2"], "the guest after the restart")


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

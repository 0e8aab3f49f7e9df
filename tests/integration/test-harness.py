#!/usr/bin/python3
"""Self-test of the integration harness (aua.py) and the device fixtures,
with the real libudev in tests/fixtures/udev-monitor standing in for the
daemon.  It owns the proof that what the daemon's tests will rely on holds:
cold plug sees the base devices, a hot-plugged file arrives with its udev
properties, a removal arrives after its sysfs is gone and carries only the
kernel's properties, a burst of 1,000 uevents arrives complete and in order,
sd_notify messages are recorded, and children never outlive the harness.

Run: umockdev-wrapper /usr/bin/python3 tests/integration/test-harness.py
(the udev-monitor binary: UDEV_MONITOR=path, or tests/fixtures/udev-monitor
under the current directory, as make check leaves it).
"""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aua  # noqa: E402

BASE = "/sys/devices/pci0000:00/0000:00:14.0"
USB1 = BASE + "/usb1"
YUBIKEY = USB1 + "/1-1/1-1.2"
KEYBOARD = USB1 + "/1-1/1-1.3"
STORAGE = USB1 + "/1-1/1-1.4/1-1.4.2"
ATTRS = ["busnum", "devnum", "idVendor", "idProduct", "serial", "product",
         "manufacturer", "bDeviceClass", "bNumInterfaces"]
BURST = 1000


def monitor_binary():
    path = aua.find_program("udev-monitor", "UDEV_MONITOR")
    if path:
        return path
    aua.fail("tests/fixtures/udev-monitor is not built (make check builds "
             "it; or set UDEV_MONITOR)")


def events(d, count, timeout=5.0):
    return d.json_lines(count, timeout)


def by_path(evs):
    return {e["devpath"]: e for e in evs}


def check_cold_plug(d):
    d.wait_ready(5)
    seen = []
    while True:
        e = d.json_lines(1)[0]
        if e["event"] == "ready":
            break
        aua.check_equal(e["event"], "enum", "cold plug line")
        seen.append(e)
    devices = sorted(e["devpath"] for e in seen
                     if e["props"].get("DEVTYPE") == "usb_device")
    aua.check_equal(devices, sorted(p[4:] for p in [
        USB1, BASE + "/usb2", USB1 + "/1-1", USB1 + "/1-1/1-1.4"]),
        "usb_devices at cold plug")
    hub = by_path(seen)[USB1[4:] + "/1-1"]
    aua.check_equal(hub["props"].get("ID_USB_INTERFACES"), ":090001:090002:",
                    "hub 1-1 interfaces")
    aua.check_equal(hub["attrs"].get("bDeviceClass"), "09", "hub 1-1 class")
    aua.check(len(seen) == 8, "expected 4 devices + 4 interfaces at cold "
              "plug, got %d" % len(seen))


def check_hot_add(d, tb):
    added = tb.load("yubikey")
    aua.check_equal(added[0], YUBIKEY, "first device of yubikey.umockdev")
    evs = events(d, 4)
    aua.check_equal([e["event"] for e in evs], ["add"] * 4, "actions")
    aua.check_equal([e["devpath"] for e in evs], [p[4:] for p in added],
                    "add order (device, then its interfaces)")
    dev = evs[0]
    p = dev["props"]
    for key, value in [("SUBSYSTEM", "usb"), ("DEVTYPE", "usb_device"),
                       ("BUSNUM", "001"), ("DEVNUM", "005"),
                       ("PRODUCT", "1050/407/543"), ("TYPE", "0/0/0"),
                       ("DEVNAME", "/dev/bus/usb/001/005"),
                       ("MAJOR", "189"), ("MINOR", "4"),
                       ("ID_VENDOR_ID", "1050"), ("ID_MODEL_ID", "0407"),
                       ("ID_SERIAL_SHORT", "0012345"),
                       ("ID_USB_INTERFACES", ":030101:030000:0b0000:"),
                       ("ID_PATH", "pci-0000:00:14.0-usb-0:1.2"),
                       ("ID_VENDOR", "Yubico"),
                       ("ID_MODEL", "YubiKey_OTP+FIDO+CCID"),
                       ("ID_REVISION", "0543")]:
        aua.check_equal(p.get(key), value, "yubikey add " + key)
    aua.check(dev["sysfs"], "sysfs of the yubikey missing at its add")
    aua.check_equal(dev["attrs"].get("serial"), "0012345", "serial attr")
    aua.check_equal(dev["attrs"].get("bNumInterfaces"), " 3",
                    "bNumInterfaces attr")
    aua.check_equal(evs[3]["props"].get("INTERFACE"), "11/0/0",
                    "CCID interface")


def check_faithful_remove(d, tb):
    order = tb.remove(YUBIKEY)
    aua.check_equal(order[-1], YUBIKEY, "the device is removed last")
    evs = events(d, 4)
    aua.check_equal([e["event"] for e in evs], ["remove"] * 4, "actions")
    aua.check_equal([e["devpath"] for e in evs], [p[4:] for p in order],
                    "remove order")
    dev = evs[-1]
    aua.check(not dev["sysfs"], "sysfs of the yubikey still there at its "
              "remove")
    aua.check(not tb.exists(YUBIKEY), "testbed still has the yubikey")
    aua.check_equal(dev["attrs"], {}, "attributes readable after remove")
    kernel = {"ACTION": "remove", "DEVPATH": YUBIKEY[4:],
              "SUBSYSTEM": "usb", "BUSNUM": "001", "DEVNUM": "005",
              "PRODUCT": "1050/407/543", "TYPE": "0/0/0",
              "DEVTYPE": "usb_device", "DEVNAME": "/dev/bus/usb/001/005",
              "MAJOR": "189", "MINOR": "4"}
    props = dict(dev["props"])
    seqnum = props.pop("SEQNUM", None)
    aua.check(seqnum and seqnum.isdigit(), "remove without SEQNUM")
    aua.check_equal(props, kernel, "properties of a kernel remove")
    iface = evs[0]["props"]
    aua.check_equal(sorted(iface), sorted([
        "ACTION", "DEVPATH", "SUBSYSTEM", "SEQNUM", "DEVTYPE", "PRODUCT",
        "TYPE", "INTERFACE", "MODALIAS"]), "interface remove properties")

    # What real udevd adds from its database on remove, on request.
    tb.load("keyboard")
    events(d, 3)
    tb.remove(KEYBOARD, udev_db=True)
    dev = events(d, 3)[-1]
    aua.check_equal(dev["devpath"], KEYBOARD[4:], "keyboard removed last")
    aua.check_equal(dev["props"].get("ID_VENDOR_ID"), "046d",
                    "udev_db remove ID_VENDOR_ID")
    aua.check("DRIVER" not in dev["props"], "DRIVER in a remove")


def check_replug_renumbered(d, tb):
    tb.load("yubikey", devnum=9)
    dev = events(d, 4)[0]
    aua.check_equal((dev["props"].get("DEVNUM"), dev["props"].get("DEVNAME"),
                     dev["props"].get("MINOR"), dev["attrs"].get("devnum")),
                    ("009", "/dev/bus/usb/001/009", "8", "9"),
                    "replugged yubikey numbers")
    tb.remove(YUBIKEY)
    events(d, 4)


def check_burst(d, tb):
    tb.load("storage")
    events(d, 2)
    waits = tb.sender.waits
    start = time.monotonic()
    for _ in range(BURST):
        tb.uevent(STORAGE, "change")
    sent = time.monotonic() - start
    evs = events(d, BURST, timeout=60)
    took = time.monotonic() - start
    aua.check_equal({e["event"] for e in evs}, {"change"}, "burst actions")
    seqnums = [int(e["seqnum"]) for e in evs]
    aua.check_equal(seqnums, list(range(seqnums[0], seqnums[0] + BURST)),
                    "burst sequence numbers (none lost, in order)")
    print("burst: %d events sent in %.3f s, received in %.3f s, sender "
          "waited %d times for a full queue"
          % (BURST, sent, took, tb.sender.waits - waits))


def check_notify(d):
    d.signal(signal.SIGHUP)
    d.wait_notify("RELOADING", "1", 5)
    d.wait_ready(5)
    d.wait_json({"event": "ready"}, 5)
    rc, err = d.stop()
    aua.check_equal(rc, 0, "monitor exit code (stderr: %s)" % err)
    aua.check(d.notified("STOPPING"), "no STOPPING=1 on SIGTERM")


def check_stop_escalates():
    d = aua.Daemon(["/bin/sh", "-c", "trap '' TERM; echo up; "
                    "while :; do sleep 1; done"])
    with d:
        aua.check_equal(d.readline(5), "up", "shell output")
        start = time.monotonic()
        rc, _ = d.stop(timeout=0.5)
        aua.check_equal(rc, -signal.SIGKILL, "exit of a TERM-ignoring child")
        aua.check(time.monotonic() - start < 3, "stop() took too long")


def check_pdeathsig():
    """A harness that dies takes its children along."""
    code = ("import os, sys; sys.path.insert(0, %r); import aua; "
            "d = aua.Daemon(['sleep', '60']); "
            "print(d.pid, os.path.dirname(d.notify_path), flush=True); "
            "os._exit(0)" % os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=30)
    words = out.stdout.split()
    aua.check(out.returncode == 0 and len(words) == 2 and words[0].isdigit(),
              "helper harness failed: %r %r" % (out.stdout, out.stderr))
    pid = int(words[0])
    # the helper died without cleaning up: its temp dir is ours to remove
    shutil.rmtree(words[1], ignore_errors=True)

    def gone():
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split(")")[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True
    aua.wait_until(gone, 5, "orphan %d to be killed" % pid)


def test():
    monitor = monitor_binary()
    tb = aua.Testbed()
    cold = tb.load("hubs")
    aua.check_equal(len(cold), 9, "devices in hubs.umockdev")
    argv = [monitor]
    for attr in ATTRS:
        argv += ["-a", attr]
    with aua.Daemon(argv, testbed=tb) as d:
        check_cold_plug(d)
        aua.check_equal(len(tb.listeners()), 1, "event sockets")
        check_hot_add(d, tb)
        check_faithful_remove(d, tb)
        check_replug_renumbered(d, tb)
        check_burst(d, tb)
        check_notify(d)
    # The devtype filter runs as BPF on the socket: it proves the hashes.
    with aua.Daemon([monitor, "-t", "usb_device"], testbed=tb) as d:
        d.wait_ready(5)
        d.wait_json({"event": "ready"}, 5)
        tb.load("webcam")
        e = d.json_lines(1)[0]
        aua.check_equal((e["event"], e["devpath"]),
                        ("add", USB1[4:] + "/1-2"),
                        "only the usb_device passes a devtype filter")
        tb.remove(USB1 + "/1-2")
        e = d.json_lines(1)[0]
        aua.check_equal((e["event"], e["props"].get("DEVNUM")),
                        ("remove", "004"), "webcam remove")
    check_stop_escalates()
    check_pdeathsig()


if __name__ == "__main__":
    aua.main(test)

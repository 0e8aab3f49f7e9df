"""The benchmark machine: the test fixtures' machine (tests/fixtures/devices,
modelled by its generate.py) grown to 100 plugged devices.

The fixtures give a root hub with two external hubs and four leaf devices
(webcam 1-2, YubiKey 1-1.2, keyboard 1-1.3, USB stick 1-1.4.2).  Eight more
12-port hubs go on root ports 1-3 .. 1-10 and 96 more leaves on their ports,
copies of the four fixture leaves in turn, each with its own port, device
number and serial.  generate.py's UsbDevice writes every description, so the
copies carry the same udev properties, attributes and descriptors as the
fixtures.

machine() returns the whole machine as one umockdev-record text (parents
before children, each device before its interfaces), plus the syspaths of
the 100 leaves.
"""

import copy
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "fixtures", "devices"))

import generate  # noqa: E402  (tests/fixtures/devices/generate.py)

EXTRA_HUBS = ["1-%d" % p for p in range(3, 11)]     # 8 hubs on usb1
HUB_PORTS = 12
LEAF_TEMPLATES = ("1-1.2", "1-1.3", "1-1.4.2", "1-2")   # key, kbd, stick, cam


def _clone(dev, port, devnum, serial=None):
    new = copy.copy(dev)
    new.port = port
    new.busnum = int(port.split("-")[0])
    new.devnum = devnum
    if dev.serial is not None and serial is not None:
        new.serial = serial
    new.file = "bench"
    return new


def machine():
    """(text, leaves): the umockdev description of the whole machine and the
    syspaths ("/sys/devices/...") of its 100 leaf devices, fixtures first."""
    devices = generate.machine()
    base = generate.render()
    blocks = [base["hubs.umockdev"]]
    for name in ("webcam", "yubikey", "keyboard", "storage"):
        blocks.append(base[name + ".umockdev"])
    leaves = [devices[p] for p in LEAF_TEMPLATES]

    hub_template = devices["1-1.4"]
    devnum = max(d.devnum for d in devices.values() if d.busnum == 1) + 1
    new = []
    for port in EXTRA_HUBS:
        hub = _clone(hub_template, port, devnum)
        hub.maxchild = HUB_PORTS
        devnum += 1
        devices[port] = hub
        new.append(hub)
    n = 0
    for hub_port in EXTRA_HUBS:
        for p in range(1, HUB_PORTS + 1):
            template = devices[LEAF_TEMPLATES[n % len(LEAF_TEMPLATES)]]
            port = "%s.%d" % (hub_port, p)
            leaf = _clone(template, port, devnum,
                          serial="B%s%06d" % (template.serial[:4]
                                              if template.serial else "", n))
            devnum += 1
            n += 1
            devices[port] = leaf
            new.append(leaf)
            leaves.append(leaf)
    if devnum > 128:
        raise ValueError("bus 1 ran out of device numbers (%d)" % devnum)
    for dev in new:
        blocks.append(dev.lines(devices) + "\n" +
                      "\n".join(dev.interface_lines(devices)))
    text = "\n".join(b.rstrip("\n") + "\n" for b in blocks)
    # umockdev-record format: one blank line between devices
    text = "\n".join(part.strip("\n") for part in text.split("\n\n")
                     if part.strip()) + "\n"
    text = text.replace("\nP: ", "\n\nP: ")
    syspaths = ["/sys" + d.syspath(devices) for d in leaves]
    return text, syspaths


def spare_devnums():
    """Device numbers on bus 1 that machine() leaves free (for replugs)."""
    return list(range(7 + len(EXTRA_HUBS) + HUB_PORTS * len(EXTRA_HUBS) + 1,
                      128))


if __name__ == "__main__":
    text, leaves = machine()
    sys.stdout.write(text)
    sys.stderr.write("%d devices, %d leaves, spare devnums %s\n"
                     % (text.count("\nP: ") + 1, len(leaves),
                        spare_devnums()))

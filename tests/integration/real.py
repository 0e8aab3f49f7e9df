"""Recordings of real hardware (tests/fixtures/real/, see its README) and the
few edits the identity tests make to them: several recordings merged into
one machine (a device shared by two recordings is kept once), a bus moved
to another number, one device's properties or attributes changed (a
"twin": the same real tree with one fact changed, named in the test), and
the port devices with their peer links that the recordings lack.

A description is a list of blocks, each the text of one device; the
helpers below work on the block whose P: line ends in a given sysname.
"""

import os
import re
import struct

import aua

REAL = os.path.join(aua.FIXTURES, "real")


def recording(name):
    with open(os.path.join(REAL, name + ".umockdev")) as f:
        return f.read()


def blocks(text):
    return [b.strip("\n") for b in re.split(r"\n\s*\n", text) if b.strip()]


def path_of(block):
    return block.splitlines()[0][3:].strip()


def merge(*texts):
    """One machine from several recordings: each device once (the first
    recording that has it wins), parents before children."""
    seen = {}
    for text in texts:
        for b in blocks(text):
            seen.setdefault(path_of(b), b)
    order = sorted(seen, key=lambda p: p.count("/"))
    return "\n\n".join(seen[p] for p in order) + "\n"


def renumber_bus(text, old, new):
    """The same devices on bus `new` instead of bus `old`."""
    text = re.sub(r"\busb%d\b" % old, "usb%d" % new, text)
    text = re.sub(r"(?<![\d.:])%d-(?=[\d0])" % old, "%d-" % new, text)
    text = text.replace("BUSNUM=%03d" % old, "BUSNUM=%03d" % new)
    text = text.replace("busnum=%d\\n" % old, "busnum=%d\\n" % new)
    text = text.replace("bus/usb/%03d/" % old, "bus/usb/%03d/" % new)
    return text


def _edit(text, sysname, fn):
    out, found = [], False
    for b in blocks(text):
        if path_of(b).rsplit("/", 1)[-1] == sysname:
            b = fn(b)
            found = True
        out.append(b)
    aua.check(found, "no device %s in the description" % sysname)
    return "\n\n".join(out) + "\n"


def set_line(text, sysname, kind, key, value):
    """Sets (value a string) or removes (value None) the E: or A: line
    `key` of device `sysname`."""
    def fn(b):
        lines = [l for l in b.splitlines() if not l.startswith("%s: %s=" % (kind, key))]
        if value is not None:
            lines.append("%s: %s=%s" % (kind, key, value))
        return "\n".join(lines)
    return _edit(text, sysname, fn)


def strip_udev(text, sysname):
    """Device `sysname` as a kernel event without udev's database: no ID_*
    property."""
    return _edit(text, sysname, lambda b: "\n".join(
        l for l in b.splitlines() if not l.startswith("E: ID_")))


def attr_escape(s):
    """An A: value in umockdev-record's C escaping, with the kernel's newline."""
    out = ""
    for b in s.encode():
        if b == 0x5c:
            out += "\\\\"
        elif b < 0x20 or b >= 0x7f:
            out += "\\%03o" % b
        else:
            out += chr(b)
    return out + "\\n"


# ------------------------------------------------------------ generated twins

def _descriptors(bcd_usb, cls, sub, proto, vid, pid, bcd_dev, ifaces, strings):
    """Device descriptor and one configuration with one alternate setting per
    interface (class, subclass, protocol), as hex."""
    dev = struct.pack("<BBHBBBBHHHBBBB", 18, 1, bcd_usb, cls, sub, proto, 64, vid, pid,
                      bcd_dev, *strings, 1)
    body = b"".join(struct.pack("<BBBBBBBBB", 9, 4, i, 0, 0, c, s, p, 0)
                    for i, (c, s, p) in enumerate(ifaces))
    conf = struct.pack("<BBHBBBBB", 9, 2, 9 + len(body), len(ifaces), 1, 0, 0x80, 50) + body
    return (dev + conf).hex().upper()


def usb_device(devpath, busnum, devnum, vid, pid, cls, proto, speed, version, ifaces,
               id_path, manufacturer=None, product=None, serial=None, maxchild=0,
               extra=()):
    """The description of one usb_device as udev 252 and the kernel show it:
    the properties of an event, the attributes a daemon may read.  ifaces:
    (class, subclass, protocol) of each interface.  extra: more lines."""
    sysname = devpath.rsplit("/", 1)[-1]
    bcd_usb = {"1.10": 0x110, "2.00": 0x200, "2.10": 0x210, "3.00": 0x300,
               "3.20": 0x320}[version]
    lines = ["P: " + devpath,
             "E: SUBSYSTEM=usb", "E: DEVTYPE=usb_device", "E: DRIVER=usb",
             "E: BUSNUM=%03d" % busnum, "E: DEVNUM=%03d" % devnum,
             "E: DEVNAME=/dev/bus/usb/%03d/%03d" % (busnum, devnum),
             "E: PRODUCT=%x/%x/100" % (vid, pid), "E: TYPE=%d/0/%d" % (cls, proto),
             "E: ID_BUS=usb", "E: ID_VENDOR_ID=%04x" % vid, "E: ID_MODEL_ID=%04x" % pid,
             "E: ID_USB_INTERFACES=:%s:" % ":".join("%02x%02x%02x" % i for i in ifaces),
             "E: ID_PATH=" + id_path]
    if manufacturer:
        lines.append("E: ID_VENDOR_ENC=" + manufacturer.replace(" ", "\\x20"))
    if product:
        lines.append("E: ID_MODEL_ENC=" + product.replace(" ", "\\x20"))
    if serial:
        lines.append("E: ID_SERIAL_SHORT=" + re.sub(r"[^A-Za-z0-9#+\-.:=@_]", "_", serial))
    lines += ["A: busnum=%d\\n" % busnum, "A: devnum=%d\\n" % devnum,
              "A: idVendor=%04x\\n" % vid, "A: idProduct=%04x\\n" % pid,
              "A: bDeviceClass=%02x\\n" % cls, "A: bDeviceSubClass=00\\n",
              "A: bDeviceProtocol=%02x\\n" % proto, "A: speed=%s\\n" % speed,
              "A: version=%5s\\n" % version, "A: maxchild=%d\\n" % maxchild,
              "A: bNumInterfaces=%2d\\n" % len(ifaces)]
    for key, value in (("manufacturer", manufacturer), ("product", product),
                       ("serial", serial)):
        if value:
            lines.append("A: %s=%s" % (key, attr_escape(value)))
    lines.append("H: descriptors=" + _descriptors(
        bcd_usb, cls, 0, proto, vid, pid, 0x100, ifaces,
        (1 if manufacturer else 0, 2 if product else 0, 3 if serial else 0)))
    if "-" in sysname:
        bus, ports = sysname.split("-")
        parent = sysname.rsplit(".", 1)[0] if "." in ports else "usb" + bus
        lines.append("L: port=../" + _port_dir(parent, int(re.split(r"[-.]", sysname)[-1])))
    lines += list(extra)
    return "\n".join(lines)


def _hub_dir(sysname):
    """A hub's directory below its controller: usb2, usb2/2-2, usb2/2-2/2-2.1."""
    if sysname.startswith("usb"):
        return sysname
    bus, ports = sysname.split("-")
    parts = ports.split(".")
    return "/".join(["usb" + bus] + ["%s-%s" % (bus, ".".join(parts[:k + 1]))
                                     for k in range(len(parts))])


def _port_dir(sysname, n):
    iface = (sysname[3:] + "-0" if sysname.startswith("usb") else sysname) + ":1.0"
    return "%s/%s-port%d" % (iface, sysname, n)


def port_lines(hub_sysname, ports):
    """The port devices of a hub, as lines of the hub's own description:
    ports is {number: (connect_type, peer hub sysname or None, peer port)}.
    The kernel's layout: <hub>/<hub-interface>/<hub>-portN with connect_type
    and a `peer` link to the other half of the same connector."""
    lines = []
    for n, (ctype, peer_hub, peer_port) in sorted(ports.items()):
        port = _port_dir(hub_sysname, n)
        lines.append("A: %s/connect_type=%s\\n" % (port, ctype))
        if peer_hub:
            up = "/".join([".."] * (2 + _hub_dir(hub_sysname).count("/") + 1))
            lines.append("L: %s/peer=%s/%s/%s" % (port, up, _hub_dir(peer_hub),
                                                 _port_dir(peer_hub, peer_port)))
    return lines


def add_lines(text, sysname, lines):
    """Appends lines to the description of device sysname."""
    return _edit(text, sysname, lambda b: b + "\n" + "\n".join(lines))


XHCI = "/devices/pci0000:00/0000:00:08.1/0000:05:00.3"
XHCI_PATH = "pci-0000:05:00.3"


def amd_xhci():
    """umockdev's fido2 recording (an AMD xHCI, its USB 2 root hub usb1, a
    Realtek RTS5411 hub at 1-2, a security key at 1-2.3) and its twin's
    other half, generated as the kernel would show it: the USB 3 root hub
    usb2 (1d6b:0003), the hub's USB 3 half at 2-2 (0bda:0411), a mouse at
    1-1 and a USB 3 stick at 2-1 (both "pci-0000:05:00.3-usb-0:1" to udev
    252), and the ports with their peer links.  Connectors: usb1-port2 and
    usb2-port2 (the hub), usb1-port1 and usb2-port3, usb1-port3 and
    usb2-port1 (numbers differ, as on many boards), usb1-port4 hardwired
    (an internal device's) without a USB 3 half; the hub's ports 1-4 pair
    with its USB 3 half's."""
    text = recording("fido2")
    text = add_lines(text, "usb1", port_lines("usb1", {
        1: ("hotplug", "usb2", 3), 2: ("hotplug", "usb2", 2), 3: ("hotplug", "usb2", 1),
        4: ("hardwired", None, 0)}))
    text = add_lines(text, "1-2", port_lines("1-2", {
        n: ("hotplug", "2-2", n) for n in range(1, 5)}))
    usb2 = usb_device(XHCI + "/usb2", 2, 1, 0x1d6b, 0x0003, 9, 3, "5000", "3.00",
                      [(9, 0, 0)], XHCI_PATH, "Linux 5.13.16-200.fc34.x86_64 xhci-hcd",
                      "xHCI Host Controller", "0000:05:00.3", maxchild=4,
                      extra=port_lines("usb2", {
                          1: ("hotplug", "usb1", 3), 2: ("hotplug", "usb1", 2),
                          3: ("hotplug", "usb1", 1), 4: ("not used", None, 0)}))
    hub3 = usb_device(XHCI + "/usb2/2-2", 2, 2, 0x0bda, 0x0411, 9, 3, "5000", "3.20",
                      [(9, 0, 0)], XHCI_PATH + "-usb-0:2", "Generic", "4-Port USB 3.0 Hub",
                      maxchild=4,
                      extra=port_lines("2-2", {n: ("hotplug", "1-2", n) for n in range(1, 5)}))
    return merge(text, usb2, hub3)


def amd_mouse(devnum=3):
    return usb_device(XHCI + "/usb1/1-1", 1, devnum, 0x046d, 0xc077, 0, 0, "1.5", "2.00",
                      [(3, 1, 2)], XHCI_PATH + "-usb-0:1", "Logitech", "USB Optical Mouse")


def amd_stick(port="2-1", devnum=3):
    """The stick at 2-1 (USB 3), or at USB 2 speed at 1-N."""
    bus = int(port.split("-")[0])
    return usb_device(XHCI + "/usb%d/%s" % (bus, port), bus, devnum, 0x0781, 0x5583, 0, 0,
                      "5000" if bus == 2 else "480", "3.20" if bus == 2 else "2.10",
                      [(8, 6, 0x50)], XHCI_PATH + "-usb-0:" + port.split("-")[1],
                      " SanDisk", "Ultra Fit", "4C530001231207114465")

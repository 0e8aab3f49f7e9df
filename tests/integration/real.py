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
    for ch in s:
        if ch == "\\":
            out += "\\\\"
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out += "\\%03o" % ord(ch)
        else:
            out += ch
    return out + "\\n"

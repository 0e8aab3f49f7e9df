#!/usr/bin/python3
"""The baseline: the old script's job done the old way, in Python with pyudev.

It watches udev for USB devices, routes a device to DOMAIN when it sits
below one of the -u hubs or has one of the -x vendor:product ids, and prints
one decision line per device (present at start, plugged, unplugged):

    attach 1-1.2 1050:0407 -> vault
    none 1-1.3 046d:c31c
    detach 1-1.2 1050:0407 <- vault

Like the daemon it decides from the uevent's properties, ignores hubs,
remembers what it decided so that an unplug (whose sysfs is gone) is
reported, and says READY=1 to $NOTIFY_SOCKET once it listens and the present
devices are decided.  It attaches nothing: it is what bench/run compares the
daemon's --dry-run with.

Usage: baseline.py -d DOMAIN [-u HUB]... [-x VID:PID]...
"""

import argparse
import os
import socket
import sys

import pyudev


def notify(state):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(state.encode(), path)


def below(port, hub):
    """Whether port path `port` ("1-1.2") is below `hub` ("usb1", "1-1")."""
    if hub.startswith("usb"):
        return port.startswith(hub[3:] + "-")
    return port.startswith(hub + ".")


class Router:
    def __init__(self, domain, hubs, ids):
        self.domain = domain
        self.hubs = hubs
        self.ids = set(ids)
        self.known = {}         # device path -> (port, id, routed)

    def added(self, device):
        if device.get("TYPE", "").startswith("9/"):
            return              # a hub: never routed
        path = device.device_path
        if path in self.known:
            return              # seen by the enumeration and the monitor
        port = device.sys_name
        vid = device.get("ID_VENDOR_ID") or \
            device.attributes.asstring("idVendor")
        pid = device.get("ID_MODEL_ID") or \
            device.attributes.asstring("idProduct")
        ident = "%s:%s" % (vid, pid)
        routed = ident in self.ids or any(below(port, h) for h in self.hubs)
        self.known[path] = (port, ident, routed)
        if routed:
            print("attach %s %s -> %s" % (port, ident, self.domain),
                  flush=True)
        else:
            print("none %s %s" % (port, ident), flush=True)

    def removed(self, device):
        entry = self.known.pop(device.device_path, None)
        if entry is None:
            return
        port, ident, routed = entry
        if routed:
            print("detach %s %s <- %s" % (port, ident, self.domain),
                  flush=True)
        else:
            print("none %s %s" % (port, ident), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-d", "--domain", required=True)
    ap.add_argument("-u", "--hub", action="append", default=[])
    ap.add_argument("-x", "--id", action="append", default=[])
    args = ap.parse_args()

    router = Router(args.domain, args.hub, [i.lower() for i in args.id])
    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context)
    monitor.filter_by("usb", "usb_device")
    monitor.start()
    for device in context.list_devices(subsystem="usb", DEVTYPE="usb_device"):
        router.added(device)
    notify("READY=1")
    for device in iter(monitor.poll, None):
        if device.action == "add":
            router.added(device)
        elif device.action == "remove":
            router.removed(device)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)

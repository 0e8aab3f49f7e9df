"""USB 2 and USB 3 ports of one xHCI: the path with the USB revision.

umockdev's real fido2 recording (an AMD xHCI) with its generated USB 3 half
(tests/integration/real.py's amd_xhci): the mouse at 1-1 and the stick at
2-1 both have udev 252's ID_PATH "pci-0000:05:00.3-usb-0:1".  `path` and
`hub` take the form with the revision ("...-usbv3-0:1", as newer udev's
ID_PATH_WITH_USB_REVISION), which the daemon computes from the root hub
when udev lacks it, reading the root hub once (a second device on the
same root hub is decided after its attributes are gone).  --generate-policy
writes that form where the plain one is ambiguous (an xHCI's ports) and
the plain one elsewhere (the EHCI of the other real recordings).
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
  vault: {}
  win10: {}
rules:
  - name: the USB 3 port 1
    match: { path: "pci-0000:05:00.3-usbv3-0:1" }
    domain: vault
  - name: port 1, plain path
    match: { path: "pci-0000:05:00.3-usb-0:1" }
    domain: win10
  - name: below the USB 2 half of the hub
    match: { hub: "pci-0000:05:00.3-usbv2-0:2" }
    domain: win10
  - name: the USB 3 root hub
    match: { hub: "pci-0000:05:00.3-usbv3" }
    domain: vault
"""

STICK, MOUSE, KEY = "2-1", "1-1", "1-2.3"


def run(*args):
    r = subprocess.run(daemon.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=daemon.timeout(20))
    aua.check_equal(r.returncode, 0, "%s (stderr: %s)" % (" ".join(args), r.stderr))
    return r.stdout


def once(policy):
    return {o["port"]: o for o in map(json.loads, run("--once", "--json", "-c", policy)
                                      .splitlines())}


def decided(o):
    return (o["path"], o["path_with_revision"], o["action"], o["domain"], o["rule"])


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    machine = real.amd_xhci() + "\n" + real.amd_mouse() + "\n\n" + real.amd_stick() + "\n"

    # Without the peer links (no connectors to name): paths alone.
    tb = aua.Testbed()
    tb.load_string("\n".join(l for l in machine.splitlines() if "/peer=" not in l) + "\n")
    got = once(policy)
    aua.check_equal(decided(got[STICK]), ("pci-0000:05:00.3-usb-0:1",
                                          "pci-0000:05:00.3-usbv3-0:1", "attach", "vault", 1),
                    "the stick on the USB 3 port 1")
    aua.check_equal(decided(got[MOUSE]), ("pci-0000:05:00.3-usb-0:1",
                                          "pci-0000:05:00.3-usbv2-0:1", "attach", "win10", 2),
                    "the mouse on the USB 2 port 1")
    aua.check_equal(decided(got[KEY])[1:], ("pci-0000:05:00.3-usbv2-0:2.3", "attach", "win10",
                                            3), "the key below the hub's USB 2 half")

    # --generate-policy: the revision where the plain path is ambiguous.
    out = run("--generate-policy")
    for port, path in ((STICK, "pci-0000:05:00.3-usbv3-0:1"),
                       (MOUSE, "pci-0000:05:00.3-usbv2-0:1"),
                       (KEY, "pci-0000:05:00.3-usbv2-0:2.3")):
        aua.check('match: { path: "%s" }' % path in out,
                  "%s's rule names %s:\n%s" % (port, path, out))
    # Every generated rule takes its own device, none is dead.
    gen = daemon.write_policy(tmp, "gen.yaml", out.replace("action: ignore", "domain: vault")
                              .replace("domains:\n", "domains:\n  vault: {}\n"))
    got = once(gen)
    rules = {port: o["rule"] for port, o in got.items()}
    aua.check_equal(len(set(rules.values())), len(rules),
                    "each device its own generated rule: %s" % rules)
    tb.close()

    # udev's own ID_PATH_WITH_USB_REVISION is taken as it is, the root hub unread.
    tb = aua.Testbed()
    text = real.set_line(machine, "2-1", "E", "ID_PATH_WITH_USB_REVISION",
                         "pci-0000:05:00.3-usbv3-0:1")
    text = real.set_line(text, "usb2", "A", "bDeviceProtocol", None)
    tb.load_string(text)
    got = once(policy)
    aua.check_equal(decided(got[STICK])[1:], ("pci-0000:05:00.3-usbv3-0:1", "attach", "vault",
                                              1), "udev's path with the revision")
    tb.close()

    # The plain form on a controller with one root hub (an EHCI).
    tb = aua.Testbed()
    tb.load_string(real.merge(real.recording("canon-powershot-sx200"),
                              real.recording("usbkbd")))
    out = run("--generate-policy")
    aua.check('match: { path: "pci-0000:00:1a.0-usb-0:1.5.2.3" }' in out,
              "the plain path on an EHCI:\n" + out)
    aua.check_equal(once(policy)["1-1.5.2.3"]["path_with_revision"],
                    "pci-0000:00:1a.0-usbv2-0:1.5.2.3", "an EHCI root hub is USB 2")
    tb.close()

    # Hot plug: the root hub is read once; a later device on it needs no read.
    tb = aua.Testbed()
    tb.load_string(real.amd_xhci())
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        tb.wait_listeners(1)
        d.json_lines(1, daemon.timeout(5))      # the key, present at start
        tb.load_string(real.amd_stick() + "\n")
        add = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal(decided(add)[1:], ("pci-0000:05:00.3-usbv3-0:1", "attach", "vault", 1),
                        "the stick hot-plugged")
        os.unlink(os.path.join(tb.real("usb2"), "bDeviceProtocol"))
        tb.load_string(real.amd_stick("2-3", devnum=4) + "\n")
        add = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal(decided(add)[1:], ("pci-0000:05:00.3-usbv3-0:3", "attach", "vault", 4),
                        "a second device: the root hub's revision from the cache")
        daemon.stop_clean(d)
    tb.close()


if __name__ == "__main__":
    aua.main(test)

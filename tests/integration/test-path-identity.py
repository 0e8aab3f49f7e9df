"""Port identity that survives bus renumbering: the same machine seen with
its controller's bus numbered 1, then 3 (the controllers probed in another
order).  A `path:` rule (udev's ID_PATH, the controller's PCI address and
the ports) decides the same device in both; a `port:` rule (bus form) does
not follow.  An event without ID_PATH gets the same path, computed from
DEVPATH."""

import json
import os
import re
import subprocess

import aua
import daemon

POLICY = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - name: the key's port, by path
    match: { path: "pci-0000:00:14.0-usb-0:1.2" }
    domain: vault
  - name: the keyboard's port, by bus
    match: { port: "1-1.3" }
    domain: win10
  - name: everything below the first hub, by path
    match: { hub: "pci-0000:00:14.0-usb-0:1.4" }
    domain: win10
"""


def renumber_bus(text, old, new):
    """The same devices on bus `new` instead of bus `old` (usbN, N-..., BUSNUM)."""
    text = text.replace("usb%d" % old, "usb%d" % new)
    text = re.sub(r"(?<![\d.])%d-(?=\d)" % old, "%d-" % new, text)
    text = text.replace("BUSNUM=%03d" % old, "BUSNUM=%03d" % new)
    text = text.replace("busnum=%d\\n" % old, "busnum=%d\\n" % new)
    text = text.replace("bus/usb/%03d/" % old, "bus/usb/%03d/" % new)
    return text


def fixture(name):
    with open(os.path.join(aua.DEVICES, name + ".umockdev")) as f:
        return f.read()


def decide(tb, policy):
    r = subprocess.run(daemon.command("--once", "--json", "-c", policy),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=daemon.timeout(20))
    aua.check_equal(r.returncode, 0, "--once (stderr: %s)" % r.stderr)
    return {o["id"]: (o["port"], o["path"], o["action"], o["domain"], o["rule"])
            for o in map(json.loads, r.stdout.splitlines())}


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    texts = [fixture(n) for n in ("hubs", "laptop-keyboard", "yubikey", "keyboard", "storage")]

    tb = aua.Testbed()
    for text in texts:
        tb.load_string(text)
    first = decide(tb, policy)
    tb.close()

    # The same machine, bus 1 now numbered 3; the key's event lacks ID_PATH.
    tb = aua.Testbed()
    for i, text in enumerate(texts):
        text = renumber_bus(text, 1, 3)
        if i == 1:
            text = re.sub(r"^E: ID_PATH(_TAG)?=.*\n", "", text, flags=re.M)
            aua.check("ID_PATH" not in text, "ID_PATH left in the key's description")
        tb.load_string(text)
    second = decide(tb, policy)

    key, kbd, stick = "1050:0407", "046d:c31c", "0781:5583"
    aua.check_equal(first[key], ("1-1.2", "pci-0000:00:14.0-usb-0:1.2", "attach", "vault", 1),
                    "the key on bus 1")
    aua.check_equal(second[key], ("3-1.2", "pci-0000:00:14.0-usb-0:1.2", "attach", "vault", 1),
                    "the key on bus 3 (path computed from DEVPATH)")
    aua.check_equal(first[stick][2:], ("attach", "win10", 3), "the stick on bus 1")
    aua.check_equal(second[stick][2:], ("attach", "win10", 3), "the stick on bus 3")
    aua.check_equal(first[kbd][2:], ("attach", "win10", 2), "the keyboard's bus rule, bus 1")
    aua.check_equal(second[kbd][2:], ("none", None, None),
                    "the bus-form rule does not follow the renumbering")

    # --generate-policy writes path rules by default; this xHCI's USB 2 and
    # USB 3 root hubs number their ports alike: the form with the revision.
    r = subprocess.run(daemon.command("--generate-policy"), stdout=subprocess.PIPE,
                       text=True, timeout=daemon.timeout(20))
    aua.check('match: { path: "pci-0000:00:14.0-usbv2-0:1.2" }' in r.stdout,
              "path rules by default:\n" + r.stdout)


if __name__ == "__main__":
    aua.main(test)

"""Physical connectors: one USB 3 socket is a USB 2 port and a USB 3 port
that the kernel links (usbN-portM/peer); `connector:` names the socket
once, by the path with revision of either half, and takes a device at
either speed.

umockdev's real fido2 recording (an AMD xHCI) with its generated USB 3
half and ports (tests/integration/real.py's amd_xhci): socket C is
usb1-port3 + usb2-port1 (numbers differ), socket B usb1-port1 +
usb2-port3, and the Realtek hub's ports pair with its USB 3 half's.  The
stick goes by socket C at USB 3 speed (2-1) and at USB 2 speed (1-3), not
in socket B's USB 3 half (2-3); the key at 1-2.3 is in the hub's socket 3
named by its USB 3 half.  Peer links are read once per port: a device
plugged into a port whose link has gone since still finds its peer.
--generate-policy writes connector rules for ports with a peer, and they
take the device back at the other speed.
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
  - name: socket C, by its USB 2 half
    match: { connector: "pci-0000:05:00.3-usbv2-0:3" }
    domain: vault
  - name: the hub's socket 3, by its USB 3 half
    match: { connector: "pci-0000:05:00.3-usbv3-0:2.3" }
    domain: win10
"""


def run(*args):
    r = subprocess.run(daemon.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=daemon.timeout(20))
    aua.check_equal(r.returncode, 0, "%s (stderr: %s)" % (" ".join(args), r.stderr))
    return r.stdout


def decided(o):
    return (o["path_with_revision"], o["peer_path"], o["action"], o["domain"], o["rule"])


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)

    tb = aua.Testbed()
    tb.load_string(real.amd_xhci() + "\n" + real.amd_mouse() + "\n\n" + real.amd_stick() + "\n")
    got = {o["port"]: o for o in map(json.loads,
                                      run("--once", "--json", "-c", policy).splitlines())}
    aua.check_equal(decided(got["2-1"]), ("pci-0000:05:00.3-usbv3-0:1",
                                          "pci-0000:05:00.3-usbv2-0:3", "attach", "vault", 1),
                    "the stick in socket C's USB 3 half")
    aua.check_equal(decided(got["1-1"]), ("pci-0000:05:00.3-usbv2-0:1",
                                          "pci-0000:05:00.3-usbv3-0:3", "none", None, None),
                    "the mouse in socket B")
    aua.check_equal(decided(got["1-2.3"]), ("pci-0000:05:00.3-usbv2-0:2.3",
                                            "pci-0000:05:00.3-usbv3-0:2.3", "attach", "win10", 2),
                    "the key in the hub's socket 3")

    out = run("--generate-policy")
    for path in ("pci-0000:05:00.3-usbv3-0:1", "pci-0000:05:00.3-usbv2-0:1",
                 "pci-0000:05:00.3-usbv2-0:2.3"):
        aua.check('match: { connector: "%s" }' % path in out,
                  "a connector rule for %s:\n%s" % (path, out))
    gen = daemon.write_policy(tmp, "gen.yaml", out.replace("action: ignore", "domain: vault")
                              .replace("domains:\n", "domains:\n  vault: {}\n"))
    run("--check", "-c", gen)
    stick_rule = got_rule = None
    for o in map(json.loads, run("--once", "--json", "-c", gen).splitlines()):
        if o["port"] == "2-1":
            stick_rule = o["rule"]
    aua.check(stick_rule is not None, "the stick's generated rule")
    tb.close()

    # Hot plug: the stick at USB 2 speed in socket C, then in socket B.
    tb = aua.Testbed()
    tb.load_string(real.amd_xhci())
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        tb.wait_listeners(1)
        d.json_lines(1, daemon.timeout(5))      # the key, present at start
        tb.load_string(real.amd_stick("1-3", devnum=20) + "\n")
        add = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal(decided(add), ("pci-0000:05:00.3-usbv2-0:3",
                                       "pci-0000:05:00.3-usbv3-0:1", "attach", "vault", 1),
                        "the stick at USB 2 speed in socket C")
        tb.remove("1-3")
        rm = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((rm["action"], rm["peer_path"], rm["rule"]),
                        ("detach", "pci-0000:05:00.3-usbv3-0:1", 1), "its remove")
        # The port was read once: its peer link gone now, the cache still knows it.
        os.unlink(os.path.join(tb.real("usb1"), "1-0:1.0", "usb1-port3", "peer"))
        tb.load_string(real.amd_stick("1-3", devnum=21) + "\n")
        add = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal(decided(add)[1:], ("pci-0000:05:00.3-usbv3-0:1", "attach", "vault", 1),
                        "plugged again: the peer from the cache")
        tb.load_string(real.amd_stick("2-3", devnum=5) + "\n")
        add = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal(decided(add), ("pci-0000:05:00.3-usbv3-0:3",
                                       "pci-0000:05:00.3-usbv2-0:1", "none", None, None),
                        "the stick in socket B's USB 3 half")
        daemon.stop_clean(d)
    tb.close()

    # A root hub that comes after a device asked about it is read when it comes.
    tb = aua.Testbed()
    text = real.amd_xhci()
    usb2 = [b for b in real.blocks(text) if "/usb2" in real.path_of(b)]
    tb.load_string("\n\n".join(b for b in real.blocks(text) if b not in usb2) + "\n")
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        tb.wait_listeners(1)
        d.json_lines(1, daemon.timeout(5))      # the key, present at start
        tb.load_string(real.amd_stick("1-3", devnum=20) + "\n")
        add = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal(decided(add), ("pci-0000:05:00.3-usbv2-0:3", None, "attach", "vault", 1),
                        "no USB 3 root hub yet: no peer path")
        tb.remove("1-3")
        d.json_lines(1, daemon.timeout(5))
        tb.load_string("\n\n".join(usb2) + "\n")
        tb.load_string(real.amd_stick("1-3", devnum=21) + "\n")
        add = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal(decided(add)[:2], ("pci-0000:05:00.3-usbv2-0:3",
                                           "pci-0000:05:00.3-usbv3-0:1"),
                        "the USB 3 root hub read once it came")
        daemon.stop_clean(d)
    tb.close()

    # The generated rule takes the stick back at USB 2 speed in the same socket.
    tb = aua.Testbed()
    tb.load_string(real.amd_xhci() + "\n" + real.amd_stick("1-3", devnum=20) + "\n")
    for o in map(json.loads, run("--once", "--json", "-c", gen).splitlines()):
        if o["port"] == "1-3":
            got_rule = o["rule"]
    aua.check_equal(got_rule, stick_rule, "the generated connector rule at the other speed")
    tb.close()


if __name__ == "__main__":
    aua.main(test)

"""The serial is the one the device reports, on every path.

Real recordings (umockdev's canon-powershot-sx200, sony-xperia-mini-pro
and usbkbd, one EHCI machine) merged into one tree.  The camera's twin
reports a GUID in braces as its serial, as some devices do: udev's
ID_SERIAL_SHORT is then "_BE81..._" (every brace rewritten to '_').  A rule
copied from sysfs or lsusb must match at cold plug, at a hot add, with
udev's properties or without them; the remove reports the same serial from
the record; --generate-policy=id writes it.  The phone's ID_SERIAL_SHORT has
no '_' and is taken as it is: its twin's sysfs attribute differs, and the
daemon must not have read it (the event path reads sysfs only when needed).
"""

import json
import subprocess

import aua
import daemon
import real

GUID = "{BE815DAD-5F2A-4C7B-9D2E-3A1F6C8B0E47}"
REWRITTEN = "_BE815DAD-5F2A-4C7B-9D2E-3A1F6C8B0E47_"
CAMERA = "1-1.5.2.3"
PHONE = "1-1.5.2.4"

POLICY = """\
version: 1
domains:
  vault: {}
  win10: {}
rules:
  - name: the camera, by the serial sysfs shows
    match: { id: "04a9:31c0", serial: "%s" }
    domain: vault
  - name: the camera, by udev's rewrite
    match: { serial: "%s" }
    domain: win10
  - name: the phone
    match: { serial: "0123456789ABCDEF" }
    domain: win10
""" % (GUID, REWRITTEN)


def machine(udev=True):
    text = real.merge(real.recording("canon-powershot-sx200"),
                      real.recording("sony-xperia-mini-pro"),
                      real.recording("usbkbd"))
    text = real.set_line(text, CAMERA, "A", "serial", real.attr_escape(GUID))
    text = real.set_line(text, CAMERA, "E", "ID_SERIAL_SHORT", REWRITTEN)
    text = real.set_line(text, CAMERA, "E", "ID_SERIAL", "Canon_Inc._Canon_Digital_Camera_" +
                         REWRITTEN)
    # What only a sysfs read would see: the property must win.
    text = real.set_line(text, PHONE, "A", "serial", real.attr_escape("NOT-READ-FROM-SYSFS"))
    if not udev:
        text = real.strip_udev(text, CAMERA)
    return text


def once(policy):
    r = subprocess.run(daemon.command("--once", "--json", "-c", policy),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=daemon.timeout(20))
    aua.check_equal(r.returncode, 0, "--once (stderr: %s)" % r.stderr)
    return {o["port"]: o for o in map(json.loads, r.stdout.splitlines())}


def check_camera(o, what):
    aua.check_equal((o["serial"], o["action"], o["domain"], o["rule"]),
                    (GUID, "attach", "vault", 1), what)


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)

    # Cold plug, with udev's properties and without them.
    for udev in (True, False):
        tb = aua.Testbed()
        tb.load_string(machine(udev))
        got = once(policy)
        check_camera(got[CAMERA], "cold plug, udev properties %s" % udev)
        aua.check_equal((got[PHONE]["serial"], got[PHONE]["rule"]), ("0123456789ABCDEF", 3),
                        "the phone's serial is udev's, sysfs not read")
        if udev:
            r = subprocess.run(daemon.command("--generate-policy=id"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=daemon.timeout(20))
            aua.check_equal(r.returncode, 0, "--generate-policy=id: " + r.stderr)
            aua.check('match: { id: "04a9:31c0", serial: "%s" }' % GUID in r.stdout,
                      "the generated rule has the device's serial:\n" + r.stdout)
            aua.check(REWRITTEN not in r.stdout, "udev's rewrite left in:\n" + r.stdout)
        tb.close()

    # Hot add and remove, with and without udev's properties.
    for udev in (True, False):
        text = machine(udev)
        base = [b for b in real.blocks(text) if CAMERA not in real.path_of(b)]
        cam = [b for b in real.blocks(text) if CAMERA in real.path_of(b)]
        tb = aua.Testbed()
        tb.load_string("\n\n".join(base) + "\n")
        with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
            d.wait_ready(daemon.timeout(10))
            tb.wait_listeners(1)
            present = d.json_lines(2, daemon.timeout(5))
            aua.check_equal(sorted(o["port"] for o in present), ["1-1.5.2.4", "1-1.5.4.2"],
                            "the phone and the keyboard at start")
            tb.load_string("\n\n".join(cam) + "\n")
            add = d.json_lines(1, daemon.timeout(5))[0]
            aua.check_equal(add["event"], "add", "a hot add")
            check_camera(add, "hot add, udev properties %s" % udev)
            tb.remove(CAMERA)
            rm = d.json_lines(1, daemon.timeout(5))[0]
            aua.check_equal((rm["event"], rm["action"], rm["serial"], rm["rule"]),
                            ("remove", "detach", GUID, 1), "the remove, from the record")
            daemon.stop_clean(d)
        tb.close()


if __name__ == "__main__":
    aua.main(test)

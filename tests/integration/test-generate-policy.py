"""--generate-policy: a policy for the devices plugged in now, by port or by
id and serial.  The file it prints is a valid policy (--check), keeps every
device in dom0 as it is, and once its rules name a guest, decides each
device by its own rule, even a device whose serial holds glob characters,
control bytes and a non-ASCII letter."""

import os
import subprocess

import aua
import daemon

# Glob characters, a backslash, control bytes, and a non-ASCII letter.
ODD_SERIAL = "A*B?[1]\\\x1b\t\u00ff"


def odd_yubikey():
    with open(os.path.join(aua.DEVICES, "yubikey.umockdev")) as f:
        text = f.read()
    return text.replace("E: ID_SERIAL_SHORT=0012345", "E: ID_SERIAL_SHORT=" + ODD_SERIAL)


def run(*args):
    r = subprocess.run(daemon.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, errors="surrogateescape", timeout=daemon.timeout(20))
    return r.returncode, r.stdout, r.stderr


def decisions(policy):
    rc, out, err = run("--once", "--json", "-c", policy)
    aua.check_equal(rc, 0, "--once (stderr: %s)" % err)
    import json
    return {o["port"]: (o["action"], o["domain"], o["rule"]) for o in map(json.loads,
                                                                         out.splitlines())}


def give_all_to_vault(text):
    return text.replace("action: ignore", "domain: vault").replace("# vault: {}", "vault: {}")


def test():
    tmp = aua.tempdir()
    tb = aua.Testbed()
    tb.load("hubs")
    tb.load("laptop-keyboard")
    tb.load_string(odd_yubikey())
    for f in ("keyboard", "storage", "webcam"):
        tb.load(f)
    ports = ["1-1.2", "1-1.3", "1-1.4.2", "1-2"]

    for by in ("port", "id"):
        rc, text, err = run("--generate-policy=" + by)
        aua.check_equal(rc, 0, "--generate-policy=%s (stderr: %s)" % (by, err))
        aua.check_equal(text.count("\n  - name: "), 4, "one rule per device, no hub:\n" + text)
        policy = daemon.write_policy(tmp, "gen-%s.yaml" % by, text)
        rc, out, err = run("--check", "-c", policy)
        aua.check_equal(rc, 0, "the generated policy checks (%s):\n%s" % (err, text))
        aua.check_equal(decisions(policy),
                        {p: ("ignore", None, i + 1) for i, p in enumerate(ports)},
                        "as generated, every device stays in dom0 by its own rule")
        given = daemon.write_policy(tmp, "vault-%s.yaml" % by, give_all_to_vault(text))
        aua.check_equal(decisions(given),
                        {p: ("attach", "vault", i + 1) for i, p in enumerate(ports)},
                        "named a guest, every device goes there by its own rule (%s)" % by)
    aua.check('id: "1050:0407", serial: "A\\\\*B\\\\?\\\\[1]\\\\\\\\??\u00ff"' in text,
              "the odd serial as an exact glob:\n" + text)
    aua.check('port: "1-1.4.2"' in open(os.path.join(tmp, "gen-port.yaml")).read(),
              "port rules")

    rc, out, err = run("--generate-policy=usb")
    aua.check_equal((rc, "expected path, port or id" in err), (2, True), "a bad --generate-policy")


if __name__ == "__main__":
    aua.main(test)

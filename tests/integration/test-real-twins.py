"""Rules that can never match.

Two keyboards alike without a serial (umockdev's real usbkbd recording,
05f3:0007, and its twin: the same keyboard one port over): by id alone
--generate-policy=id would write the same match twice, and the second rule
would never match.  The generated rules tell them apart by their ports, and
each device is decided by its own rule.  --check warns about a rule that an
earlier one always takes first (the same keys, or fewer and wider), with the
file, line and column of the dead rule, and stays quiet about the generated
policy.
"""

import json
import re
import subprocess

import aua
import daemon
import real

POLICY = """\
version: 1
domains:
  vault: {allow-dom0-lockout: true}
rules:
  - name: the keyboards
    match: { id: "05f3:0007" }
    domain: vault
  - name: "never: the first rule takes it"
    match: { id: "05f3:0007", port: "1-1.5.4.3" }
    action: ignore
  - match: { interface-class: "03:01" }
    action: ignore
  - match: { interface-class: "03:01:01", port: "1-1.5.*" }
    domain: vault
  - match: { hub: "1-1.5", serial: "X*" }
    domain: vault
"""


def twin_keyboard(text):
    """The keyboard block moved to port 1-1.5.4.3, device 10."""
    block = [b for b in real.blocks(text) if real.path_of(b).endswith("/1-1.5.4.2")][0]
    moved = block.replace("1-1.5.4.2", "1-1.5.4.3").replace("1.5.4.2", "1.5.4.3")
    moved = re.sub(r"^E: DEVNUM=\d+$", "E: DEVNUM=010", moved, flags=re.M)
    moved = re.sub(r"^E: DEVNAME=.*$", "E: DEVNAME=/dev/bus/usb/001/010", moved, flags=re.M)
    moved = re.sub(r"^A: devnum=.*$", "A: devnum=10\\\\n", moved, flags=re.M)
    moved = re.sub(r"^N: bus/usb/001/\d+", "N: bus/usb/001/010", moved, flags=re.M)
    moved = re.sub(r"^E: MINOR=.*$", "E: MINOR=9", moved, flags=re.M)
    moved = re.sub(r"^A: dev=.*$", "A: dev=189:9\\\\n", moved, flags=re.M)
    return text + "\n" + moved + "\n"


def run(*args):
    r = subprocess.run(daemon.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=daemon.timeout(20))
    return r.returncode, r.stdout, r.stderr


def test():
    tmp = aua.tempdir()
    tb = aua.Testbed()
    tb.load_string(twin_keyboard(real.recording("usbkbd")))

    rc, out, err = run("--generate-policy=id")
    aua.check_equal(rc, 0, "--generate-policy=id: " + err)
    for port in ("1.5.4.2", "1.5.4.3"):
        aua.check('match: { id: "05f3:0007", path: "pci-0000:00:1a.0-usb-0:%s" }' % port in out,
                  "the twin at %s told apart by its path:\n%s" % (port, out))
    gen = daemon.write_policy(tmp, "gen.yaml", out.replace("action: ignore", "domain: vault")
                              .replace("domains:\n", "domains:\n  vault: {allow-dom0-lockout: true}\n"))
    rc, check_out, err = run("--check", "-c", gen)
    aua.check_equal((rc, err), (0, ""), "--check on the generated policy: no warning")
    rc, once, err = run("--once", "--json", "-c", gen)
    aua.check_equal(rc, 0, "--once: " + err)
    rules = {o["port"]: o["rule"] for o in map(json.loads, once.splitlines())}
    aua.check_equal(sorted(rules.values()), [1, 2], "each keyboard its own rule: %s" % rules)

    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    rc, out, err = run("--check", "-c", policy)
    aua.check_equal(rc, 0, "--check still passes: " + err)
    aua.check_equal(err.splitlines(), [
        "%s:8:5: warning: rule 2 can never match: rule 1 (line 5) comes first and matches "
        "every device it would" % policy,
        "%s:13:5: warning: rule 4 can never match: rule 3 (line 11) comes first and matches "
        "every device it would" % policy,
    ], "the dead rules, each with the rule that takes its devices")
    tb.close()


if __name__ == "__main__":
    aua.main(test)

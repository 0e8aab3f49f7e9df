"""auto-usb-attachctl rules on the dry-run daemon: the rules in force, in
the order they are tried (the main file's, then each drop-in's in name
order), numbered as decisions and explain number them, each with its
FILE:LINE, name and what it decides; --json gives the same as objects.  A
reload that adds a drop-in changes the list; one with an error leaves it."""

import json
import os

import aua
import control
import daemon

MAIN = """\
version: 1
domains:
  vault: {}
  win10: {}
rules:
  - name: keys
    match: { id: "1050:0407" }
    domain: vault

  - match: { interface-class: hid }
    action: ignore
"""

DROPIN = """\
version: 1
rules:
  - name: "the first hub \\u001b[2J"
    match: { hub: "1-1" }
    domain: win10
"""


def rules(sock):
    rc, out, err, _ = control.run_ctl("-s", sock, "--json", "rules")
    aua.check_equal(rc, 0, "rules --json (%s)" % err)
    return [(r["rule"], os.path.basename(r["file"]), r["line"], r["name"], r["dropin"],
             r["action"], r["domain"]) for r in json.loads(out)["rules"]]


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", MAIN)
    dropins = os.path.join(tmp, "policy.d")
    os.makedirs(dropins)
    sock = os.path.join(tmp, "control")
    tb = aua.Testbed()
    tb.load("hubs")
    t = daemon.timeout(10)
    with aua.Daemon(daemon.command("--dry-run", "-c", policy, "--control-socket", sock),
                    testbed=tb) as d:
        d.wait_ready(t)
        aua.check_equal(rules(sock), [
            (1, "policy.yaml", 6, "keys", False, "attach", "vault"),
            (2, "policy.yaml", 10, None, False, "ignore", None)], "the main file's rules")

        daemon.write_policy(dropins, "10-hub.yaml", DROPIN)
        rc, out, err, _ = control.run_ctl("-s", sock, "reload")
        aua.check_equal(rc, 0, "reload (%s)" % err)
        aua.check_equal(rules(sock), [
            (1, "policy.yaml", 6, "keys", False, "attach", "vault"),
            (2, "policy.yaml", 10, None, False, "ignore", None),
            (3, "10-hub.yaml", 3, "the first hub \x1b[2J", True, "attach", "win10")],
            "the drop-in's rule after the main file's")

        rc, out, err, _ = control.run_ctl("-s", sock, "rules")
        aua.check_equal(rc, 0, "rules (%s)" % err)
        lines = out.splitlines()
        aua.check(lines[0].split() == ["RULE", "FILE:LINE", "NAME", "DECIDES"],
                  "the header: %r" % lines[0])
        aua.check(lines[1].split() == ["1", policy + ":6", "keys", "->", "vault"],
                  "rule 1: %r" % lines[1])
        aua.check(lines[2].split() == ["2", policy + ":10", "-", "ignore"],
                  "rule 2: %r" % lines[2])
        aua.check("\x1b" not in out and "\\x1b[2J" in lines[3] and
                  os.path.join(dropins, "10-hub.yaml") + ":3" in lines[3] and
                  lines[3].endswith("-> win10"), "rule 3, its name escaped: %r" % lines[3])

        # A drop-in with an error: the rules in force stay.
        daemon.write_policy(dropins, "20-bad.yaml", "version: 1\nrules:\n  - bogus: 1\n")
        rc, out, err, _ = control.run_ctl("-s", sock, "reload")
        aua.check_equal(rc, 1, "a bad drop-in is refused")
        aua.check_equal(len(rules(sock)), 3, "the rules in force stay")
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

"""SIGHUP: a broken policy is reported with its position and the old one
stays in force (no decision changes, later events still decided by it); a
good one re-decides every present device and prints only the changed
decisions, a detach from the old guest before the new decision.  The
daemon says RELOADING=1 and READY=1 around each reload."""

import os
import signal

import aua
import daemon

POLICY_A = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - name: keys
    match: { id: "1050:0407" }
    domain: vault
  - name: keyboards
    match: { interface-class: hid }
    action: ignore
  - name: storage
    match: { interface-class: storage }
    domain: win10
"""

BROKEN = POLICY_A.replace("domain: vault", "domain: nowhere")

POLICY_B = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - name: keys to windows now
    match: { id: "1050:0407" }
    domain: win10
  - name: keyboards to the vault
    match: { id: "046d:c31c" }
    domain: vault
  - name: storage
    match: { interface-class: storage }
    domain: win10
"""


def replace(path, text):
    # Atomically, as an editor or a config manager would.
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY_A)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard", "storage"):
        tb.load(f)
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        present = {o["port"]: o for o in d.json_lines(3, daemon.timeout(5))}
        aua.check_equal((present["1-1.2"]["action"], present["1-1.2"]["domain"]),
                        ("attach", "vault"), "yubikey before reload")

        # A broken policy: errors logged with file:line:column, nothing changes.
        replace(policy, BROKEN)
        d.signal(signal.SIGHUP)
        d.wait_notify("RELOADING", "1", daemon.timeout(5))
        d.wait_ready(daemon.timeout(5))
        aua.wait_until(lambda: "not reloaded" in d.stderr(), daemon.timeout(5),
                       "the failed reload in the log")
        err = d.stderr()
        aua.check("%s:8:13: unknown domain 'nowhere'" % policy in err,
                  "error position in the log:\n%s" % err)
        # The next line printed is the next event's, decided by the old policy.
        tb.load("webcam")
        cam = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((cam["event"], cam["port"], cam["action"]), ("add", "1-2", "none"),
                        "first line after a failed reload")
        tb.remove("1-1.2")
        rm = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((rm["event"], rm["action"], rm["domain"]),
                        ("remove", "detach", "vault"), "old policy still in force")
        tb.load("yubikey")
        add = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((add["action"], add["domain"]), ("attach", "vault"), "re-plugged key")

        # A good policy: only changed decisions, detach before the new one.
        replace(policy, POLICY_B)
        d.signal(signal.SIGHUP)
        d.wait_notify("RELOADING", "1", daemon.timeout(5))
        changes = d.json_lines(3, daemon.timeout(5))
        d.wait_ready(daemon.timeout(5))
        got = [(o["event"], o["action"], o["port"], o["domain"], o["rule"]) for o in changes]
        aua.check_equal(got, [
            ("reload", "detach", "1-1.2", "vault", 1),
            ("reload", "attach", "1-1.2", "win10", 1),
            ("reload", "attach", "1-1.3", "vault", 2),
        ], "reload decisions")
        # The detach names the rule that attached the key, not the new one.
        aua.check_equal([o["rule_name"] for o in changes],
                        ["keys", "keys to windows now", "keyboards to the vault"], "reload rule names")
        # Storage kept its guest and the webcam its none: nothing more printed.
        tb.remove("1-2")
        last = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((last["event"], last["port"]), ("remove", "1-2"),
                        "no other reload line")
        daemon.stop_clean(d)
        aua.check(d.notified("STOPPING"), "STOPPING=1 at exit")


if __name__ == "__main__":
    aua.main(test)

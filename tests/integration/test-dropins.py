"""Drop-ins (policy.d/*.yaml beside the main file) on the dry-run backend:
their rules come after the main file's, in name order; a decision names a
drop-in's rule by its file and line (the main file's rules by their number
alone, as before), in the text lines, the JSON lines and explain (over the
socket and through auto-usb-attachctl).  On SIGHUP, a bad drop-in (or a good
one beside a bad one) keeps the whole policy in force, with every error
naming its file; once the bad one is gone the changed drop-in moves the
device."""

import json
import os
import signal
import subprocess

import aua
import control
import ctl
import daemon

MAIN = """\
version: 1
domains:
  vault: {}
rules:
  - name: keys
    match: { id: "1050:0407" }
    domain: vault
"""

# Read after 10-keyboard.yaml: never reached for the keyboard.
LATER = """\
version: 1
rules:
  - name: everything else
    match: {}
    action: ignore
"""

KEYBOARD = """\
version: 1
domains:
  win10: {}
rules:
  - name: keyboards
    match: { id: "046d:c31c" }
    domain: win10
"""

KEYBOARD_TO_VAULT = """\
version: 1
domains:
  win10: {}
rules:
  # now to the vault
  - name: keyboards
    match: { id: "046d:c31c" }
    domain: vault
"""

BAD = """\
version: 1
domains:
  vault: {}
rules:
  - match: { id: "046d:*" }
    domain: nowhere
"""


def replace(path, text):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", MAIN)
    dropins = os.path.join(tmp, "policy.d")
    os.mkdir(dropins)
    # Written in the reverse of name order: the order read is the names'.
    later = daemon.write_policy(dropins, "20-later.yaml", LATER)
    keyboard = daemon.write_policy(dropins, "10-keyboard.yaml", KEYBOARD)
    # Not drop-ins: another suffix, a hidden file.
    daemon.write_policy(dropins, "10-keyboard.yaml.dpkg-old", BAD)
    daemon.write_policy(dropins, ".00-hidden.yaml", BAD)
    sock = os.path.join(tmp, "control")

    tb = aua.Testbed()
    # The laptop's keyboard stays in dom0: the others may go.
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard", "storage"):
        tb.load(f)

    # The text lines: a drop-in's rule by file and line, the main file's as before.
    with aua.Daemon(daemon.command("--dry-run", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        lines = {line.split()[1]: line for line in d.expect_lines(3, daemon.timeout(5))}
        aua.check(lines["1-1.2"].endswith('-> vault (rule 1 "keys")'),
                  "main file's rule: %r" % lines["1-1.2"])
        aua.check(lines["1-1.3"].endswith('-> win10 (rule 2 "keyboards" at %s:5)' % keyboard),
                  "drop-in's rule: %r" % lines["1-1.3"])
        aua.check(lines["1-1.4.2"].startswith("ignore ") and
                  lines["1-1.4.2"].endswith('(rule 3 "everything else" at %s:3)' % later),
                  "the later drop-in's rule: %r" % lines["1-1.4.2"])
        daemon.stop_clean(d)

    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy,
                                   "--control-socket", sock), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        present = {o["port"]: o for o in d.json_lines(3, daemon.timeout(5))}
        kb = present["1-1.3"]
        aua.check_equal((kb["action"], kb["domain"], kb["rule"], kb["rule_file"], kb["rule_line"]),
                        ("attach", "win10", 2, keyboard, 5), "keyboard's JSON line")
        yk = present["1-1.2"]
        aua.check_equal((yk["rule"], yk["rule_file"], yk["rule_line"]), (1, policy, 5),
                        "yubikey's JSON line")

        c = ctl.Control(sock)
        ex = c("explain", device="1-1.3")
        aua.check_equal([(r["rule"], r["file"], r["line"], r["dropin"], r["decides"])
                         for r in ex["rules"]],
                        [(1, policy, 5, False, False), (2, keyboard, 5, True, True),
                         (3, later, 3, True, False)], "explain's rules")
        rc, out, err, _ = control.run_ctl("-s", sock, "explain", "1-1.3")
        aua.check(rc == 0, "ctl explain: %d %s" % (rc, err))
        aua.check('decision: attach -> win10 (rule 2 "keyboards" at %s:5)\n' % keyboard in out,
                  "ctl explain names the drop-in:\n%s" % out)
        aua.check('  rule 1 "keys": does not match' in out, "main rule as before:\n%s" % out)
        aua.check('* rule 2 "keyboards" at %s:5: matches' % keyboard in out,
                  "the deciding rule's place:\n%s" % out)

        # A changed drop-in beside a bad one: neither is taken.
        replace(keyboard, KEYBOARD_TO_VAULT)
        bad = daemon.write_policy(dropins, "15-bad.yaml", BAD)
        d.signal(signal.SIGHUP)
        aua.wait_until(lambda: "not reloaded" in d.stderr(), daemon.timeout(5),
                       "the failed reload in the log")
        err = d.stderr()
        aua.check("%s:3:3: domain 'vault' is declared twice: here and at %s:3" % (bad, policy)
                  in err, "duplicate domain across files:\n%s" % err)
        aua.check("%s:6:13: unknown domain 'nowhere'" % bad in err,
                  "error in the bad drop-in:\n%s" % err)
        reply = c("reload")
        aua.check(not reply["ok"] and any(e.startswith(bad + ":") for e in reply["errors"]),
                  "reload over the socket names the drop-in: %r" % reply)
        # The keyboard is still win10's: its removal detaches it from there.
        tb.remove("1-1.3")
        rm = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((rm["event"], rm["action"], rm["domain"], rm["rule_file"]),
                        ("remove", "detach", "win10", keyboard), "old policy still in force")
        tb.load("keyboard")
        add = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((add["action"], add["domain"], add["rule_line"]), ("attach", "win10", 5),
                        "re-plugged keyboard decided by the old policy")

        # The bad drop-in gone: the changed one is read.
        os.unlink(bad)
        d.signal(signal.SIGHUP)
        changes = d.json_lines(2, daemon.timeout(5))
        got = [(o["event"], o["action"], o["port"], o["domain"], o["rule_line"])
               for o in changes]
        # The detach names the rule that attached it (its line, 5), the attach the new one.
        aua.check_equal(got, [("reload", "detach", "1-1.3", "win10", 5),
                              ("reload", "attach", "1-1.3", "vault", 6)], "reload decisions")
        c.close()
        daemon.stop_clean(d)

    # --check names every file, and refuses drop-ins others may write.
    chk = daemon.command("--check", "-c", policy)
    p = subprocess.run(chk, capture_output=True, text=True, timeout=daemon.timeout(20))
    aua.check(p.returncode == 0, "--check: %s %s" % (p.stdout, p.stderr))
    aua.check_equal(p.stdout.splitlines(), [
        "%s: OK (2 domains, 3 rules)" % policy,
        "%s: OK (drop-in)" % keyboard,
        "%s: OK (drop-in)" % later], "--check's lines")
    os.chmod(later, 0o666)
    p = subprocess.run(chk, capture_output=True, text=True, timeout=daemon.timeout(20))
    aua.check(p.returncode == 1 and
              ("%s:1:1: refused: the file is writable by others than root" % later) in p.stderr,
              "a drop-in others may write: %d %s" % (p.returncode, p.stderr))
    os.chmod(later, 0o644)
    os.chmod(dropins, 0o777)
    p = subprocess.run(chk, capture_output=True, text=True, timeout=daemon.timeout(20))
    aua.check(p.returncode == 1 and
              ("%s:1:1: refused: the directory is writable by others than root" % dropins)
              in p.stderr, "policy.d others may write: %d %s" % (p.returncode, p.stderr))
    os.chmod(dropins, 0o755)

    # A bad drop-in fails the start: no policy, no daemon.
    daemon.write_policy(dropins, "15-bad.yaml", BAD)
    p = subprocess.run(daemon.command("--dry-run", "-c", policy), capture_output=True,
                       text=True, timeout=daemon.timeout(20), stdin=subprocess.DEVNULL)
    aua.check(p.returncode == 1 and "15-bad.yaml:6:13: unknown domain 'nowhere'" in p.stderr
              and p.stdout == "", "start with a bad drop-in: %d %r %r"
              % (p.returncode, p.stdout, p.stderr))


if __name__ == "__main__":
    aua.main(test)

"""Cold plug in dry-run: devices present when the daemon starts are decided
by the policy and printed, human-readable and as JSON, with the first
matching rule winning, a device on a nested hub, an unmatched device, and
hubs never routed."""

import os

import aua
import daemon

POLICY = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - name: yubikeys go to the vault
    match: { id: "1050:0407", serial: "0012*" }
    domain: vault
  - name: keyboards stay in dom0
    match: { interface-class: "03:01:01" }
    action: ignore
  - name: the nested hub
    match: { hub: "1-1.4" }
    domain: win10
"""

EXPECTED_TEXT = [
    'attach 1-1.2 1050:0407 "Yubico YubiKey OTP+FIDO+CCID" serial 0012345'
    ' path pci-0000:00:14.0-usb-0:1.2 -> vault (rule 1 "yubikeys go to the vault")',
    'ignore 1-1.3 046d:c31c "Logitech USB Keyboard" path pci-0000:00:14.0-usb-0:1.3'
    ' (rule 2 "keyboards stay in dom0")',
]


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard", "storage", "webcam"):
        tb.load(f)

    # JSON: every field of every device.
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        lines = sorted(d.json_lines(4, daemon.timeout(5)), key=lambda o: o["port"])
        daemon.stop_clean(d)
        aua.check_equal(len(d.stdout_log), 4, "lines printed (hubs must not be)")
    by_port = {o["port"]: o for o in lines}
    aua.check_equal(sorted(by_port), ["1-1.2", "1-1.3", "1-1.4.2", "1-2"], "ports")
    for o in lines:
        aua.check_equal(o["event"], "present", "event of %s" % o["port"])
    yk = by_port["1-1.2"]
    aua.check_equal((yk["action"], yk["domain"], yk["rule"], yk["rule_name"]),
                    ("attach", "vault", 1, "yubikeys go to the vault"), "yubikey decision")
    aua.check_equal((yk["id"], yk["serial"], yk["busnum"]), ("1050:0407", "0012345", 1),
                    "yubikey identity")
    aua.check_equal(yk["devnum"], int(tb.properties("1-1.2")["DEVNUM"]), "yubikey devnum")
    kb = by_port["1-1.3"]
    aua.check_equal((kb["action"], kb["domain"], kb["rule"], kb["serial"]),
                    ("ignore", None, 2, None), "keyboard decision")
    st = by_port["1-1.4.2"]
    aua.check_equal((st["action"], st["domain"], st["rule"], st["id"]),
                    ("attach", "win10", 3, "0781:5583"), "storage on the nested hub")
    cam = by_port["1-2"]
    aua.check_equal((cam["action"], cam["domain"], cam["rule"], cam["rule_name"]),
                    ("none", None, None, None), "webcam matches no rule")

    # Human-readable: the exact lines.
    with aua.Daemon(daemon.command("--dry-run", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        text = d.expect_lines(4, daemon.timeout(5))
        daemon.stop_clean(d)
    for want in EXPECTED_TEXT:
        aua.check(want in text, "line %r not in %r" % (want, text))
    aua.check(any(t.startswith("none 1-2 046d:0825 ") and t.endswith("(no rule matched)")
                  for t in text), "webcam line in %r" % text)

    # --once: the same decisions, then exit 0 without a monitor.
    with aua.Daemon(daemon.command("--once", "--json", "-c", policy), testbed=tb) as d:
        once = sorted(d.json_lines(4, daemon.timeout(5)), key=lambda o: o["port"])
        d.proc.wait(daemon.timeout(10))
        rc, err = d.stop()
        aua.check_equal(rc, 0, "--once exit code (stderr: %s)" % err)
    aua.check_equal([(o["port"], o["action"], o["domain"]) for o in once],
                    [(o["port"], o["action"], o["domain"]) for o in lines],
                    "--once decisions")


if __name__ == "__main__":
    aua.main(test)

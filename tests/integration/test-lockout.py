"""The dom0 lock-out guard, in dry-run on a umockdev testbed.  A policy that
routes every device below the first hub to sys-usb, and the machine's only
keyboard is there:
- one USB keyboard only: held in dom0 (decision "hold", state "held" in
  devices, status and explain, a warning naming device and rule);
- the same with a laptop's built-in keyboard: attached;
- two USB keyboards, one that no rule takes: the other is attached;
- allow-dom0-lockout: true on the rule (and in defaults): attached;
- a held keyboard released by a hot-plugged second USB keyboard, then one
  released by the laptop keyboard appearing (an input device, not USB);
- a reload that allows the lock-out releases a held keyboard;
- --check warns about the rules taking every keyboard plugged in now, and
  not when a keyboard stays.
The libxl backend's half is test-libxl-lockout.py."""

import json
import os
import signal
import subprocess

import aua
import ctl
import daemon
import devices

POLICY = """\
version: 1
domains:
  sys-usb: {}
rules:
  - name: the keyboard's port
    match: { path: "pci-0000:00:14.0-usb-0:1.3" }
    domain: sys-usb
  - name: the nested hub stays
    match: { hub: "1-1.4" }
    action: ignore
"""

ALLOWED = POLICY.replace("    domain: sys-usb\n",
                         "    domain: sys-usb\n    allow-dom0-lockout: true\n")
ALLOWED_BY_DEFAULTS = POLICY.replace("domains:", "defaults: { allow-dom0-lockout: true }\n"
                                     "domains:")

KBD = "1-1.3"


def once(tb, policy):
    """The decisions of --once --json, by port."""
    r = subprocess.run(daemon.command("--once", "--json", "-c", policy),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=daemon.timeout(20))
    aua.check_equal(r.returncode, 0, "--once exit code (stderr: %s)" % r.stderr)
    return {o["port"]: (o["action"], o["domain"], o["rule"])
            for o in map(json.loads, r.stdout.splitlines())}, r.stderr


def check(policy):
    r = subprocess.run(daemon.command("--check", "-c", policy), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=daemon.timeout(20))
    aua.check_equal(r.returncode, 0, "--check exit code (stderr: %s)" % r.stderr)
    return r.stderr


def machine(*extra):
    tb = aua.Testbed()
    for f in ("hubs", "keyboard", "storage") + extra:
        tb.load(f)
    return tb


def cold_plug(tmp, policy):
    # One USB keyboard only: held, said once, with the device and the rule.
    tb = machine()
    got, err = once(tb, policy)
    aua.check_equal(got[KBD], ("hold", "sys-usb", 1), "the only keyboard")
    aua.check_equal(got["1-1.4.2"], ("ignore", None, 2), "the stick")
    aua.check("1-1.3: not attached to sys-usb (rule 1 the keyboard's port): it is dom0's "
              "last keyboard" in err, "warning naming device and rule in %r" % err)
    warn = check(policy)
    aua.check("warning: the rules take every keyboard plugged in now (1-1.3 (046d:c31c) "
              "by rule 1)" in warn, "--check warning in %r" % warn)
    # allow-dom0-lockout, on the rule or in the defaults: attached, no warning.
    for text, what in ((ALLOWED, "rule"), (ALLOWED_BY_DEFAULTS, "defaults")):
        allowed = daemon.write_policy(tmp, "allowed.yaml", text)
        got, err = once(tb, allowed)
        aua.check_equal(got[KBD], ("attach", "sys-usb", 1), "allowed in the %s" % what)
        aua.check("last keyboard" not in err, "no warning when allowed: %r" % err)
        aua.check_equal(check(allowed), "", "--check when allowed (%s)" % what)
    tb.close()

    # With the laptop's built-in keyboard: attached.
    tb = machine("laptop-keyboard")
    got, err = once(tb, policy)
    aua.check_equal(got[KBD], ("attach", "sys-usb", 1), "with a laptop keyboard")
    aua.check_equal(check(policy), "", "--check with a laptop keyboard")
    tb.close()

    # Two USB keyboards; the one below the nested hub stays (ignored): attached.
    tb = machine()
    second = devices.load_keyboard(tb, 1, 9)
    got, err = once(tb, policy)
    aua.check_equal(got[second], ("ignore", None, 2), "the second keyboard")
    aua.check_equal(got[KBD], ("attach", "sys-usb", 1), "with a second keyboard in dom0")
    aua.check_equal(check(policy), "", "--check with a keyboard that stays")
    tb.close()


def states(c):
    return {d["port"]: d["state"] for d in c("devices")["devices"]}


def hot_plug(tmp, policy):
    sock = os.path.join(tmp, "control")
    tb = machine()
    t = daemon.timeout(5)
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy,
                                   "--control-socket", sock), testbed=tb) as d:
        d.wait_ready(t)
        lines = {o["port"]: o for o in d.json_lines(2, t)}
        aua.check_equal((lines[KBD]["event"], lines[KBD]["action"], lines[KBD]["domain"]),
                        ("present", "hold", "sys-usb"), "held at start")
        c = ctl.Control(sock)
        aua.check_equal(states(c), {KBD: "held", "1-1.4.2": "ignored"}, "states")
        st = c("status")
        aua.check_equal((st["devices"]["held"], st["dom0_keyboards"]), (1, 0), "status")
        ex = c("explain", device=KBD)
        aua.check_equal((ex["decision"], ex["domain"], ex["held"]), ("attach", "sys-usb", True),
                        "explain")
        aua.check("allow-dom0-lockout" in ex["held_reason"], "held reason %r" % ex)
        aua.check_equal(ex["device"]["path"], "pci-0000:00:14.0-usb-0:1.3", "explain's path")

        # A second USB keyboard, which stays in dom0: the held one goes.
        second = devices.load_keyboard(tb, 1, 9)
        got = d.json_lines(2, t)
        aua.check_equal([(o["event"], o["action"], o["port"]) for o in got],
                        [("add", "ignore", second), ("add", "attach", KBD)],
                        "released by a hot-plugged keyboard")
        aua.wait_until(lambda: states(c)[KBD] == "attached", t, "keyboard attached")

        # Both unplugged, the first plugged in again: alone, held again.
        tb.remove(KBD)
        d.json_lines(1, t)
        tb.remove(second)
        d.json_lines(1, t)
        tb.load("keyboard", devnum=12)
        got = d.json_lines(1, t)
        aua.check_equal((got[0]["action"], got[0]["port"]), ("hold", KBD),
                        "held again, alone")

        # A reload that allows it releases it.
        daemon.write_policy(tmp, "policy.yaml", ALLOWED)
        d.signal(signal.SIGHUP)
        got = d.json_lines(1, t)
        aua.check_equal((got[0]["event"], got[0]["action"], got[0]["port"]),
                        ("reload", "attach", KBD), "released by the reload")
        # And back: a keyboard a guest already has is not taken back.
        daemon.write_policy(tmp, "policy.yaml", POLICY)
        d.signal(signal.SIGHUP)
        d.wait_notify("READY", "1", t)
        aua.check_equal(states(c)[KBD], "attached", "not taken back by a reload")
        daemon.stop_clean(d)
    tb.close()

    # The laptop keyboard appears (an input device, not USB): released.
    tb = machine()
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy,
                                   "--control-socket", sock), testbed=tb) as d:
        d.wait_ready(t)
        aua.check_equal(sorted(o["action"] for o in d.json_lines(2, t)), ["hold", "ignore"],
                        "held at start")
        tb.load("laptop-keyboard")
        got = d.json_lines(1, t)
        aua.check_equal((got[0]["event"], got[0]["action"], got[0]["port"]),
                        ("add", "attach", KBD), "released by the laptop keyboard")
        c = ctl.Control(sock)
        aua.check_equal(c("status")["dom0_keyboards"], 1, "one dom0 keyboard counted once")
        daemon.stop_clean(d)
    tb.close()


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    cold_plug(tmp, policy)
    hot_plug(tmp, policy)


if __name__ == "__main__":
    aua.main(test)

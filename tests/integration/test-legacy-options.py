"""The old script's command line: -d DOMAIN -u HUB -x VID:PID route devices
below the hub and devices with that id to the domain (one rule per -u, then
one per -x), and leave the rest alone.  A hub rule that takes the only
keyboard holds it in dom0 (the YubiKey, a keyboard too by its OTP interface,
goes) unless --allow-dom0-lockout, as the old script did."""

import json
import subprocess

import aua
import daemon


def test():
    tb = aua.Testbed()
    for f in ("hubs", "yubikey", "keyboard", "storage", "webcam"):
        tb.load(f)
    argv = daemon.command("-d", "win10", "-u", "1-1.4", "-x", "1050:0407", "-x", "046D:0825",
                          "--dry-run", "--json")
    with aua.Daemon(argv, testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        got = {o["port"]: (o["action"], o["domain"], o["rule"], o["rule_name"])
               for o in d.json_lines(4, daemon.timeout(5))}
        aua.check_equal(got, {
            "1-1.2": ("attach", "win10", 2, "-x 1050:0407"),
            "1-1.3": ("none", None, None, None),
            "1-1.4.2": ("attach", "win10", 1, "-u 1-1.4"),
            "1-2": ("attach", "win10", 3, "-x 046D:0825"),
        }, "decisions")
        tb.remove("1-1.4.2")
        rm = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((rm["action"], rm["domain"]), ("detach", "win10"), "unplug")
        daemon.stop_clean(d)

    for extra, kbd in (((), "hold"), (("--allow-dom0-lockout",), "attach")):
        r = subprocess.run(daemon.command("-d", "win10", "-u", "usb1", "--once", "--json",
                                          *extra),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=daemon.timeout(20))
        aua.check_equal(r.returncode, 0, "--once exit code (stderr: %s)" % r.stderr)
        got = {o["port"]: o["action"] for o in map(json.loads, r.stdout.splitlines())}
        # (the stick was unplugged above)
        aua.check_equal(got, {"1-1.2": "attach", "1-1.3": kbd, "1-2": "attach"},
                        "-u usb1 %s" % " ".join(extra))


if __name__ == "__main__":
    aua.main(test)

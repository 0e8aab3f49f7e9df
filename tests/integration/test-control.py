"""The control socket end to end, on the dry-run backend under umockdev:
every request and its reply (status, devices, domains, explain by port,
bus:device and vendor:product, attach, detach, reload, log-level), a manual
attach and detach that hold across a reload until the device is unplugged,
a reload with a broken policy answered with its errors, and wrong requests
answered with an error while the connection goes on."""

import os

import aua
import ctl
import daemon

POLICY = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - name: keys
    match: { id: "1050:0407" }
    domain: vault
  - name: keyboards stay
    match: { interface-class: hid }
    action: ignore
  - name: the nested hub
    match: { hub: "1-1.4" }
    domain: win10
"""


def states(c):
    return {d["port"]: d["state"] for d in c("devices")["devices"]}


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    sock = os.path.join(tmp, "control")
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard", "storage", "webcam"):
        tb.load(f)
    t = daemon.timeout(5)
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy,
                                   "--control-socket", sock), testbed=tb) as d:
        d.wait_ready(t)
        d.json_lines(4, t)
        aua.check_equal(os.stat(sock).st_mode & 0o777, 0o600, "socket mode")
        c = ctl.Control(sock)
        aua.wait_until(lambda: states(c) == {"1-1.2": "attached", "1-1.3": "ignored",
                                             "1-1.4.2": "attached", "1-2": "unmatched"},
                       t, "device states")

        st = c("status")
        aua.check_equal((st["ok"], st["backend"], st["policy"], st["domains"]),
                        (True, "dry-run", policy, 2), "status")
        aua.check_equal(st["devices"], {"total": 4, "attached": 2, "waiting": 0, "failed": 0,
                                        "ignored": 1, "unmatched": 1, "held": 0}, "status counts")

        devs = {x["port"]: x for x in c("devices")["devices"]}
        yk = devs["1-1.2"]
        aua.check_equal((yk["busnum"], yk["devnum"], yk["id"], yk["serial"], yk["domain"],
                         yk["rule"], yk["rule_name"], yk["controller"], yk["guest_port"],
                         yk["override"]),
                        (1, 5, "1050:0407", "0012345", "vault", 1, "keys", 0, 1, False),
                        "the key in devices")
        aua.check_equal((devs["1-2"]["decision"], devs["1-2"]["controller"]), ("none", None),
                        "the webcam in devices")

        doms = {x["name"]: x for x in c("domains")["domains"]}
        aua.check_equal((doms["vault"]["running"], doms["vault"]["controllers"],
                         doms["vault"]["queue"]),
                        (True, [{"id": 0, "version": 3, "ports": 8, "used": 1, "free": 7}], 0),
                        "the vault in domains")

        ex = c("explain", device="1-1.3")
        aua.check_equal((ex["decision"], ex["rule"]), ("ignore", 2), "explain keyboard")
        aua.check_equal([(r["rule"], r["matched"], r["decides"]) for r in ex["rules"]],
                        [(1, False, False), (2, True, True), (3, False, False)],
                        "rules tried for the keyboard")
        aua.check_equal(ex["rules"][0]["reason"], "vendor 046d does not match 1050",
                        "why rule 1 did not match")
        aua.check_equal(c("explain", device="1:5")["device"]["port"], "1-1.2",
                        "explain by bus:device")
        aua.check_equal(c("explain", device="0781:5583")["device"]["port"], "1-1.4.2",
                        "explain by vendor:product")
        bad = c("explain", device="9-9")
        aua.check_equal((bad["ok"], bad["error"]),
                        (False, "device '9-9': no such device is plugged in"), "unknown device")

        # Manual attach of the unmatched webcam, manual detach of the key.
        r = c("attach", device="1-2", domain="vault")
        aua.check_equal((r["ok"], r["message"]), (True, "1-2 goes to vault until it is unplugged"),
                        "attach reply")
        line = d.json_lines(1, t)[0]
        aua.check_equal((line["event"], line["action"], line["port"], line["domain"]),
                        ("manual", "attach", "1-2", "vault"), "printed manual attach")
        r = c("detach", device="1-1.2")
        aua.check(r["ok"], "detach reply %r" % r)
        lines = d.json_lines(2, t)
        aua.check_equal([(x["event"], x["action"], x["domain"]) for x in lines],
                        [("manual", "detach", "vault"), ("manual", "none", None)],
                        "printed manual detach")
        aua.wait_until(lambda: states(c)["1-2"] == "attached" and
                       states(c)["1-1.2"] == "detached", t, "overrides in effect")

        # A broken policy: errors in the reply, the old policy stays.
        daemon.write_policy(tmp, "policy.yaml", POLICY.replace("domain: vault", "domain: x"))
        r = c("reload")
        aua.check_equal(r["ok"], False, "reload of a broken policy")
        aua.check_equal(r["errors"], ["%s:8:13: unknown domain 'x' (declare it under "
                                      "'domains:')" % policy], "the errors of the reload")
        # A good one: the overrides hold.
        daemon.write_policy(tmp, "policy.yaml", POLICY.replace("hub: \"1-1.4\"", "hub: usb1"))
        aua.check_equal(c("reload"), {"ok": True, "message": "policy reloaded"}, "reload")
        devs = {x["port"]: x for x in c("devices")["devices"]}
        aua.check_equal((devs["1-2"]["domain"], devs["1-2"]["override"],
                         devs["1-1.2"]["state"]), ("vault", True, "detached"),
                        "overrides after a reload")
        # Unplugged and plugged in again: the policy decides again.
        tb.remove("1-1.2")
        tb.load("yubikey", devnum=30)
        aua.wait_until(lambda: states(c).get("1-1.2") == "attached", t, "key back in vault")

        aua.check_equal(c("log-level", level="debug")["message"], "log level is debug",
                        "log-level")
        aua.check_equal(c("log-level", level="loud")["ok"], False, "bad log level")
        aua.check_equal(c.raw(b"{not json")["ok"], False, "not JSON")
        aua.check_equal(c("frobnicate")["ok"], False, "unknown command")
        aua.check_equal(c.raw(b'{"command": 5}')["error"],
                        "'command' is missing or not a string", "command of the wrong type")
        aua.check_equal(c.raw(b'{"command": "explain", "device": 7}')["error"],
                        "'device' must be a string", "device of the wrong type")
        aua.check_equal(c("attach", device="1-1.3")["error"], "'domain' is missing",
                        "attach without a domain")
        aua.check_equal(c("status")["ok"], True, "the connection still works")
        c.close()
        daemon.stop_clean(d)
    aua.check(not os.path.exists(sock), "the socket is removed at exit")


if __name__ == "__main__":
    aua.main(test)

"""auto-usb-attachctl watch on the dry-run daemon: two watchers (--json and
the readable lines) follow plugs, unplugs, the attach and detach results
with controller and port, a reload that fails and one that works, and a
manual detach, in order; the decision objects are the very ones --json
prints on stdout.  A watcher that connects later gets only what happens
after it asked."""

import os
import signal

import aua
import control
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
  - name: the first hub
    match: { hub: "1-1" }
    domain: win10
"""


def watcher(sock, *args):
    argv = control.valgrind_prefix() + [control.ctl_binary(), "-s", sock] + list(args) + [
        "watch"]
    return aua.Daemon(argv, env=control.plain_env(), name="watch " + " ".join(args))


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    sock = os.path.join(tmp, "control")
    tb = aua.Testbed()
    tb.load("hubs")
    tb.load("laptop-keyboard")
    t = daemon.timeout(10)
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy,
                                   "--control-socket", sock), testbed=tb) as d:
        d.wait_ready(t)
        tb.wait_listeners(1)
        wj = watcher(sock, "--json")
        wh = watcher(sock)
        c = ctl.Control(sock)
        aua.wait_until(lambda: c("status")["watchers"] == 2, t, "two watchers in status")
        aua.check(c("reload")["ok"], "reload")
        ev = wj.json_lines(1, t)[0]
        aua.check_equal((ev["event"], ev["policy"], ev["unchanged"], ev["errors"]),
                        ("reloaded", policy, True, []),
                        "the first event is the reload (of a file that did not change)")
        wh.wait_line(r"^reloaded: .*policy\.yaml \(unchanged: nothing reloaded\)$", t)

        tb.load("yubikey")
        printed = d.json_lines(1, t)[0]
        seen = aua.json_until(wj, lambda e: e["event"] == "attached", t, "the key attached")
        aua.check_equal(seen[0], printed, "the watch's decision is the --json line")
        aua.check_equal((seen[0]["event"], seen[0]["action"], seen[0]["port"],
                         seen[0]["domain"], seen[0]["rule"], seen[0]["rule_line"]),
                        ("add", "attach", "1-1.2", "vault", 1, 6), "the key's decision")
        att = seen[-1]
        aua.check_equal((att["port"], att["id"], att["domain"], att["error"]),
                        ("1-1.2", "1050:0407", "vault", None), "the key's attach result")
        aua.check(isinstance(att["controller"], int) and isinstance(att["guest_port"], int),
                  "the attach names controller and port: %r" % att)
        wh.wait_line(r"^add: attach 1-1\.2 \(1050:0407\) -> vault, rule 1 'keys' \(.*policy"
                     r"\.yaml:6\)$", t)
        wh.wait_line(r"^attached: 1-1\.2 \(1050:0407\) in vault( \(domid \d+\))? at "
                     r"controller %d port %d$" % (att["controller"], att["guest_port"]), t)

        # A late watcher gets only what comes after it asked.
        late = watcher(sock, "--json")
        aua.wait_until(lambda: c("status")["watchers"] == 3, t, "the late watcher in")
        aua.check(c("reload")["ok"], "second reload")
        ev = late.json_lines(1, t)[0]
        aua.check_equal(ev["event"], "reloaded", "the late watcher's first event")
        aua.json_until(wj, lambda e: e["event"] == "reloaded", t, "the second reload")

        tb.remove("1-1.2")
        seen = aua.json_until(wj, lambda e: e["event"] == "detached", t, "the key detached")
        aua.check_equal((seen[0]["event"], seen[0]["action"], seen[0]["port"]),
                        ("remove", "detach", "1-1.2"), "the unplug's decision")
        aua.check_equal((seen[-1]["port"], seen[-1]["domain"], seen[-1]["controller"],
                         seen[-1]["guest_port"]),
                        ("1-1.2", "vault", att["controller"], att["guest_port"]),
                        "the detach names where it was")
        wh.wait_line(r"^remove: detach 1-1\.2 \(1050:0407\) -> vault", t)
        wh.wait_line(r"^detached: 1-1\.2 \(1050:0407\) in vault", t)

        # A changed policy is read again.
        daemon.write_policy(tmp, "policy.yaml", POLICY.replace("name: keys", "name: Keys"))
        d.signal(signal.SIGHUP)     # the socket allows 3 reloads in a row
        ev = aua.json_until(wj, lambda e: e["event"] == "reloaded", t, "the changed reload")[-1]
        aua.check_equal((ev["unchanged"], ev["errors"]), (False, []), "a real reload")
        wh.wait_line(r"^reloaded: .*policy\.yaml$", t)

        # A policy with an error: the watchers hear why, with FILE:LINE:COLUMN.
        daemon.write_policy(tmp, "policy.yaml", POLICY + "  - bogus: 1\n")
        aua.check(not c("reload")["ok"], "a broken policy is not loaded")
        ev = aua.json_until(wj, lambda e: e["event"] == "reload-failed", t, "the failed reload")[-1]
        aua.check(any("policy.yaml:12:" in m for m in ev["errors"]),
                  "the failed reload's errors name the line: %r" % ev)
        wh.wait_line(r"^reload-failed: .*policy\.yaml$", t)
        wh.wait_line(r"^  .*policy\.yaml:12:", t)
        daemon.write_policy(tmp, "policy.yaml", POLICY)

        # By hand: the storage stick to the vault, then back to dom0.
        tb.load("storage")
        aua.json_until(wj, lambda e: e["event"] == "attached" and e["port"] == "1-1.4.2", t,
              "the stick in win10")
        aua.check(c("detach", device="1-1.4.2")["ok"], "detach by hand")
        seen = aua.json_until(wj, lambda e: e["event"] == "detached", t, "the stick detached")
        aua.check_equal((seen[0]["event"], seen[0]["action"], seen[0]["port"]),
                        ("manual", "detach", "1-1.4.2"), "the manual detach's decision")
        aua.check(c("status")["ok"], "the daemon answers with three watchers")
        for w in (wj, wh, late):
            w.stop()
        c.close()
        err = daemon.stop_clean(d)
        aua.check("does not read" not in err, "no watcher was dropped: %s" % err)


if __name__ == "__main__":
    aua.main(test)

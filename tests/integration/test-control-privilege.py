"""Who may do what over the control socket (the daemon, dry-run backend):

- a member of --control-group may read (status, devices, domains, explain)
  but not change anything (attach, detach, reload, log-level): each is
  refused with the reason, and nothing changes;
- with --control-group-changes the member may attach too;
- root may always; reloads over the socket are taken 3 in a row, then one
  a second."""

import json
import os
import time

import aua
import control
import ctl
import daemon

POLICY = """\
version: 1
domains:
  vault: {}
rules:
  - match: { id: "1050:0407" }
    domain: vault
"""

MEMBER = ["--reuid=nobody", "--regid=users", "--clear-groups"]


def as_member(sock, request):
    rc, line, err = control.raw_request_as(MEMBER, sock, json.dumps(request))
    aua.check(line, "no reply to %s: %s" % (request, err))
    return control.parse(line)


def start(tmp, tb, policy, sock, *extra):
    return aua.Daemon(daemon.command("--dry-run", "-c", policy, "--control-socket", sock,
                                     "--control-group", "users", *extra), testbed=tb)


def test():
    tmp = aua.tempdir()
    os.chmod(tmp, 0o755)    # nobody reaches the socket in it
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    sock = os.path.join(tmp, "control")
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard"):
        tb.load(f)
    t = daemon.timeout(5)
    with start(tmp, tb, policy, sock) as d:
        d.wait_ready(t)
        for request in ({"command": "status"}, {"command": "devices"},
                        {"command": "domains"}, {"command": "explain", "device": "1-1.2"}):
            aua.check(as_member(sock, request).get("ok") is True, "a member may %s" % request)
        for request in ({"command": "attach", "device": "1-1.3", "domain": "made-up"},
                        {"command": "detach", "device": "1-1.2"}, {"command": "reload"},
                        {"command": "log-level", "level": "debug"}):
            reply = as_member(sock, request)
            aua.check_equal(reply, {"ok": False, "error": "permission denied: '%s' is not one "
                                    "of the commands that only read, which are all the group "
                                    "may use (the daemon's --control-group-changes lets it use "
                                    "the others)" % request["command"]},
                            "a member's %s" % request)
        c = ctl.Control(sock)
        devs = {x["port"]: x for x in c("devices")["devices"]}
        aua.check_equal((devs["1-1.3"]["state"], devs["1-1.2"]["state"]),
                        ("unmatched", "attached"), "nothing changed")
        # Root reloads: 3 in a row, then one a second.
        replies = [c("reload").get("ok") for _ in range(4)]
        aua.check_equal(replies, [True, True, True, False], "4 reloads in a row")
        time.sleep(1.1)
        aua.check_equal(c("reload").get("ok"), True, "a reload a second later")
        daemon.stop_clean(d)

    with start(tmp, tb, policy, sock, "--control-group-changes") as d:
        d.wait_ready(t)
        reply = as_member(sock, {"command": "attach", "device": "1-1.3", "domain": "vault"})
        aua.check(reply.get("ok") is True, "with --control-group-changes: %s" % reply)
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

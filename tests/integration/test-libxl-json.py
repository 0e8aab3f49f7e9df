"""--json without --dry-run (issue 22): the daemon attaching through libxl
prints its decisions on stdout as JSON lines, the same lines --dry-run
prints (present at start, add, remove), while it attaches and detaches for
real; and it stays in the foreground to do so."""

import aua
import daemon
import xen


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_AND_STICK_TO_VAULT)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey"):
        tb.load(f)
    xen.add_guest("vault", 7)
    t = daemon.timeout(15)
    # No --foreground: --json keeps the daemon in the foreground by itself.
    with aua.Daemon(daemon.command("-c", policy, "--json"), testbed=tb,
                    env=xen.daemon_env()) as d:
        d.wait_ready(t)
        key = d.wait_json({"event": "present", "port": "1-1.2"}, t)
        aua.check_equal((key["action"], key["domain"], key["rule"], key["id"]),
                        ("attach", "vault", 1, "1050:0407"), "the key's decision")
        xen.wait_attached(7, ["1-1.2"], t)

        tb.load("storage")
        stick = d.wait_json({"event": "add", "port": "1-1.4.2"}, t)
        aua.check_equal((stick["action"], stick["domain"], stick["rule"]),
                        ("attach", "vault", 2), "the stick's decision")
        xen.wait_attached(7, ["1-1.2", "1-1.4.2"], t)

        tb.remove("1-1.4.2")
        gone = d.wait_json({"event": "remove", "port": "1-1.4.2"}, t)
        aua.check_equal((gone["action"], gone["domain"]), ("detach", "vault"),
                        "the stick's removal")
        xen.wait_attached(7, ["1-1.2"], t)
        for line in d.stdout_log:
            aua.check(line.startswith("{") and line.endswith("}"),
                      "every stdout line is a JSON object: %r" % line)
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

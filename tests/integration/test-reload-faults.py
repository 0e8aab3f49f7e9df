"""The policy file going wrong under a running daemon: emptied, deleted, or
swapped atomically again and again during a burst of events.  A bad file
never replaces the policy in force; no event is lost during the swaps; at
the end every device is decided by the policy on disk."""

import os
import signal

import aua
import ctl
import daemon
import devices

POLICY = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - match: { hub: "1-1.4" }
    domain: %s
"""


def swap(path, text):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY % "win10")
    tb = aua.Testbed()
    tb.load("hubs")
    for n in range(1, 11):
        devices.load_storage(tb, n, 20 + n)
    t = daemon.timeout(20)
    sock = os.path.join(tmp, "control")
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy, "--control-socket",
                                   sock), testbed=tb) as d:
        d.wait_ready(t)
        d.json_lines(10, t)

        for bad, why in (("", "the policy is empty"), (None, "cannot open: No such file")):
            if bad is None:
                os.unlink(policy)
            else:
                swap(policy, bad)
            d.signal(signal.SIGHUP)
            d.wait_notify("RELOADING", "1", t)
            d.wait_ready(t)
            aua.wait_until(lambda: why in d.stderr(), t, "'%s' in the log" % why)
        tb.remove("1-1.4.1")
        rm = d.json_lines(1, t)[0]
        aua.check_equal((rm["action"], rm["domain"]), ("detach", "win10"),
                        "the old policy still decides")
        devices.load_storage(tb, 1, 21)
        d.json_lines(1, t)

        # Swaps during a burst: every event is answered, in order.
        names = [tb.syspath("1-1.4.%d" % n) for n in range(1, 11)]
        sent = 0
        for i in range(20):
            swap(policy, POLICY % ("vault" if i % 2 == 0 else "win10"))
            d.signal(signal.SIGHUP)
            for name in names:
                tb.uevent(name, "remove")
                tb.uevent(name, "add")
                sent += 2
        final = "win10"     # the last swap (i = 19)
        lines = []
        aua.wait_until(lambda: lines.extend(d.json_lines(1, t)) or
                       sum(1 for o in lines if o["event"] in ("add", "remove")) == sent,
                       t, "every event of the burst answered")
        per_port = {}
        for o in lines:
            if o["event"] in ("add", "remove"):
                per_port.setdefault(o["port"], []).append(o["event"])
        for port, seq in per_port.items():
            aua.check_equal(seq, ["remove", "add"] * 20, "events of %s in order" % port)
        # The daemon ends where the policy on disk says.
        c = ctl.Control(sock)
        aua.wait_until(lambda: {(x["domain"], x["state"]) for x in c("devices")["devices"]}
                       == {(final, "attached")}, t, "every device in %s at the end" % final)
        c.close()
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

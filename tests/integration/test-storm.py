"""An event storm: remove and add uevents for 100 devices, 50 times over, as
fast as the harness can send them (10,000 uevents; the devices' sysfs stays,
so the storm measures the event path, not umockdev), into the dry-run
daemon.  No event is lost (one decision line each, in order per device),
and at the end the daemon's table holds exactly the 100 devices, each
attached once, each at a port of its own."""

import os
import time

import aua
import ctl
import daemon
import devices

POLICY = """\
version: 1
domains:
  win10:
    controller: { version: 3, ports: 15, max: 8 }
rules:
  - match: { hub: "1-1.4" }
    domain: win10
"""

N_DEVICES = 100
ROUNDS = 50


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    sock = os.path.join(tmp, "control")
    tb = aua.Testbed()
    tb.load("hubs")
    texts = [devices.storage_at(n, 20 + n) for n in range(1, N_DEVICES + 1)]
    for text in texts:
        tb.load_string(text)
    t = daemon.timeout(60)
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy,
                                   "--control-socket", sock), testbed=tb) as d:
        d.wait_ready(t)
        present = d.json_lines(N_DEVICES, t)
        aua.check(all(o["action"] == "attach" for o in present), "all present attached")
        start = time.monotonic()
        names = [tb.syspath("1-1.4.%d" % n) for n in range(1, N_DEVICES + 1)]
        for _ in range(ROUNDS):
            for name in names:
                tb.uevent(name, "remove")
            for name in names:
                tb.uevent(name, "add")
        lines = d.json_lines(2 * N_DEVICES * ROUNDS, t)
        elapsed = time.monotonic() - start
        per_port = {}
        for o in lines:
            per_port.setdefault(o["port"], []).append((o["event"], o["action"]))
        aua.check_equal(len(per_port), N_DEVICES, "devices seen in the storm")
        for port, seq in per_port.items():
            aua.check_equal(seq, [("remove", "detach"), ("add", "attach")] * ROUNDS,
                            "the events of %s, in order" % port)
        c = ctl.Control(sock)
        aua.wait_until(lambda: sorted(x["state"] for x in c("devices")["devices"]) ==
                       ["attached"] * N_DEVICES, t, "every device attached at the end")
        places = {(x["controller"], x["guest_port"]) for x in c("devices")["devices"]}
        aua.check_equal(len(places), N_DEVICES, "each device at a port of its own")
        c.close()
        daemon.stop_clean(d)
    print("%d events in %.1f s" % (2 * N_DEVICES * ROUNDS, elapsed))


if __name__ == "__main__":
    aua.main(test)

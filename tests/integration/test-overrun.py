"""A udev monitor overrun (ENOBUFS) in dry-run.

umockdev's uevent socket never overruns (its sender blocks), so the daemon
runs with tests/fixtures/overrun-preload.so in front of umockdev: on the
test's say-so it drops every uevent that arrives, as the kernel does when
the receive buffer is full, and then fails the monitor's recvmsg() once with
ENOBUFS.  Meanwhile B is unplugged, C plugged in, A unplugged and plugged in
again at a new device number (A').  Every one of those uevents is lost.

The daemon must say so, look at every device again and end with a table of
exactly what is plugged in: A' and C attached, B and the old A detached.
A uevent after the overrun is handled as usual."""

import os

import aua
import ctl
import daemon
import devices
from overrun import Overrun, lost_log

POLICY = """\
version: 1
domains:
  win10:
    controller: { version: 2, ports: 6 }
rules:
  - match: { hub: "1-1.4" }
    domain: win10
"""


def table(c):
    return sorted((x["port"], x["devnum"], x["domain"], x["state"])
                  for x in c("devices")["devices"])


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    sock = os.path.join(tmp, "control")
    ov = Overrun(tmp)
    tb = aua.Testbed()
    tb.load("hubs")
    t = daemon.timeout(10)
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy,
                                   "--control-socket", sock),
                    testbed=tb, env=ov.env()) as d:
        d.wait_ready(t)
        tb.wait_listeners(1)
        c = ctl.Control(sock)

        a = devices.load_storage(tb, 1, 21)
        b = devices.load_storage(tb, 2, 22)
        got = [(o["event"], o["action"], o["port"], o["devnum"]) for o in d.json_lines(2, t)]
        aua.check_equal(got, [("add", "attach", a, 21), ("add", "attach", b, 22)],
                        "A and B plugged in")
        aua.wait_until(lambda: table(c) == [(a, 21, "win10", "attached"),
                                            (b, 22, "win10", "attached")],
                       t, "A and B attached")

        # The overrun: from B's first uevent on, everything is dropped.
        cc = "1-1.4.3"

        def meanwhile():
            devices.load_storage(tb, 3, 23)
            tb.remove(a)
            devices.load_storage(tb, 1, 31)

        dropped = ov.run(lambda: tb.remove(b), meanwhile, t)
        # B: usb_device + interface; C: 2; A: 2; A': 2 (at least the devices)
        aua.check(dropped >= 4, "uevents dropped: %d" % dropped)

        lines = d.json_lines(4, t)
        got = [(o["event"], o["action"], o["port"], o["devnum"], o["domain"]) for o in lines]
        aua.check_equal(sorted(got),
                        sorted([("remove", "detach", a, 21, "win10"),
                                ("add", "attach", a, 31, "win10"),
                                ("add", "attach", cc, 23, "win10"),
                                ("remove", "detach", b, 22, "win10")]),
                        "decisions after the overrun")
        aua.check(got.index(("remove", "detach", a, 21, "win10")) <
                  got.index(("add", "attach", a, 31, "win10")),
                  "the old A is detached before A' is attached: %r" % got)
        aua.wait_until(lambda: len(lost_log(d)) == 1, t, "the overrun logged")
        aua.check("looking at every device again" in lost_log(d)[0],
                  "the log says what is done about it: %r" % lost_log(d))
        aua.wait_until(lambda: table(c) == [(a, 31, "win10", "attached"),
                                            (cc, 23, "win10", "attached")],
                       t, "the table is exactly what is plugged in: %r" % table(c))

        # ENOBUFS came once: the next uevent is handled as usual.
        tb.remove(cc)
        rm = d.json_lines(1, t)[0]
        aua.check_equal((rm["event"], rm["action"], rm["port"], rm["devnum"]),
                        ("remove", "detach", cc, 23), "a uevent after the overrun")
        aua.wait_until(lambda: table(c) == [(a, 31, "win10", "attached")], t,
                       "C gone from the table")
        aua.check_equal(len(lost_log(d)), 1, "the overrun logged once")
        c.close()
        daemon.stop_clean(d)
    aua.check_equal(len(d.stdout_log), 7, "lines printed: %r" % d.stdout_log)


if __name__ == "__main__":
    aua.main(test)

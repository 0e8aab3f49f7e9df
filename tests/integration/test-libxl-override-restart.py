"""Manual decisions (attach and detach without --permanent) survive a daemon
restart, on the real libxl and xenstored: the key attached by hand to the
vault (against the policy, which gives bus 1 to win10) and the stick
detached by hand are recorded in state.json's "overrides"; the restarted
daemon (after SIGTERM, and after SIGKILL) decides both as they were asked,
moving nothing (no device_add, no device_del).  Unplugged and plugged in
again, the stick is the policy's again: the record ended with the device."""

import json
import os
import signal

import aua
import control
import ctl
import daemon
import xen

POLICY = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - match: { hub: usb1 }
    domain: win10
"""

WIN10, VAULT = 5, 7


def read_state(state_dir):
    with open(os.path.join(state_dir, "state.json")) as f:
        return json.load(f)


def overrides(state_dir):
    return sorted((o["busid"], o["domain"]) for o in read_state(state_dir).get("overrides", []))


def device(c, port):
    return [x for x in c("devices")["devices"] if x["port"] == port][0]


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    state_dir = os.path.join(tmp, "state")
    sock = os.path.join(tmp, "control")
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard", "storage"):
        tb.load(f)
    xen.add_guest("win10", WIN10)
    xen.add_guest("vault", VAULT)
    t = daemon.timeout(15)
    args = ("--state-dir", state_dir, "--control-socket", sock)

    with xen.start_daemon(tb, policy, *args) as d:
        d.wait_ready(t)
        xen.wait_attached(WIN10, ["1-1.2", "1-1.3", "1-1.4.2"], t)
        rc, out, err, _ = control.run_ctl("-s", sock, "attach", "1-1.2", "vault")
        aua.check_equal(rc, 0, "attach by hand (%s)" % err)
        rc, out, err, _ = control.run_ctl("-s", sock, "detach", "1-1.4.2")
        aua.check_equal(rc, 0, "detach by hand (%s)" % err)
        xen.wait_attached(VAULT, ["1-1.2"], t)
        xen.wait_attached(WIN10, ["1-1.3"], t)
        aua.wait_until(lambda: overrides(state_dir) == [("1-1.2", "vault"), ("1-1.4.2", None)],
                       t, "both manual decisions in the state file (%s)" % overrides(state_dir))
        daemon.stop_clean(d)

    adds = {dom: len(xen.usb_hosts(dom)) for dom in (WIN10, VAULT)}
    dels = {dom: len(xen.device_dels(dom)) for dom in (WIN10, VAULT)}
    for how in ("SIGTERM", "SIGKILL"):
        with xen.start_daemon(tb, policy, *args) as d:
            d.wait_ready(t)
            aua.wait_until(lambda: "1-1.2: attached by hand before the restart" in d.stderr(),
                           t, "the key's decision restored (%s)" % how)
            c = ctl.Control(sock)
            aua.wait_until(lambda: device(c, "1-1.2")["state"] == "attached", t,
                           "the key in the vault again")
            for port, dom, state in (("1-1.2", "vault", "attached"),
                                     ("1-1.4.2", None, "detached")):
                x = device(c, port)
                aua.check_equal((x["domain"], x["state"], x["override"]), (dom, state, True),
                                "%s after the restart (before it: %s)" % (port, how))
            aua.check_equal(xen.attached(VAULT), ["1-1.2"], "the vault keeps the key")
            aua.check_equal(xen.attached(WIN10), ["1-1.3"], "win10 does not get the stick")
            for dom in (WIN10, VAULT):
                aua.check_equal(len(xen.usb_hosts(dom)), adds[dom],
                                "no device_add in domain %d after the restart" % dom)
                aua.check_equal(len(xen.device_dels(dom)), dels[dom],
                                "no device_del in domain %d after the restart" % dom)
            aua.check_equal(overrides(state_dir), [("1-1.2", "vault"), ("1-1.4.2", None)],
                            "the decisions stay recorded")
            c.close()
            if how == "SIGTERM":
                daemon.stop_clean(d)
            else:
                d.signal(signal.SIGKILL)
                d.proc.wait(t)
                d.stop()

    # Unplugged: the manual decision ends; plugged in again, the policy decides.
    with xen.start_daemon(tb, policy, *args) as d:
        d.wait_ready(t)
        c = ctl.Control(sock)
        aua.wait_until(lambda: device(c, "1-1.4.2")["override"], t, "the stick's decision")
        tb.remove("1-1.4.2")
        aua.wait_until(lambda: overrides(state_dir) == [("1-1.2", "vault")], t,
                       "the stick's record gone with it (%s)" % overrides(state_dir))
        tb.load("storage")
        xen.wait_attached(WIN10, ["1-1.3", "1-1.4.2"], t)
        aua.check_equal(device(c, "1-1.4.2")["override"], False, "the stick is the policy's")
        c.close()
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

"""An attach that cannot work (issue 22): the device model cannot find the
host device ("failed to find host usb device", QEMU's words).  It is tried
once, reported once (state failed, the reason in `devices` and `explain`),
and not tried again on a timer, so that the device in dom0 is not taken
from its drivers again and again.  A reload is a change: it is tried once
more then, and attached when the device model accepts.  A transient
refusal ("failed to open host usb device") is still retried with backoff."""

import os
import signal
import time

import aua
import control
import daemon
import xen

SOCKET = "/run/auto-usb-attach/control"


def tries(domid, qmp_id):
    return [h[0] for h in xen.usb_hosts(domid)].count(qmp_id)


def device(port):
    c = control.Client(SOCKET)
    reply = c.request('{"command": "explain", "device": "%s"}' % port)
    c.close()
    aua.check(reply.get("ok"), "explain %s: %s" % (port, reply))
    return reply["device"]


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_AND_STICK_TO_VAULT)
    rules = os.path.join(tmp, "inject")
    xen.inject(rules, [{"execute": "device_add", "id": "xenusb-1-5",
                        "error": "failed to find host usb device 1:5"},
                       {"execute": "device_add", "id": "xenusb-1-7",
                        "error": "failed to open host usb device 1:7"}])
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "storage"):
        tb.load(f)
    xen.add_guest("vault", 7)
    t = daemon.timeout(20)
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        aua.wait_until(lambda: "vault: 1-1.2 cannot be attached" in d.stderr(), t,
                       "the permanent failure in the log")
        # The stick's refusal may pass: tried at 0, 2 and 6 s.
        aua.wait_until(lambda: tries(7, "xenusb-1-7") >= 3, t,
                       "the stick retried twice (tries: %s)" % xen.usb_hosts(7))
        aua.check_equal(tries(7, "xenusb-1-5"), 1, "the key tried once, in 6 s")
        aua.check_equal(d.stderr().count("1-1.2 cannot be attached"), 1,
                        "the key's failure said once")
        aua.check("attaching 1-1.2 failed" not in d.stderr(), "no retry of the key announced")
        key = device("1-1.2")
        aua.check_equal(key["state"], "failed", "the key's state")
        aua.check_equal(key["failure"], "the device model cannot find the host device",
                        "the key's failure")
        aua.check_equal(device("1-1.4.2")["failure"], None, "the stick has no permanent failure")
        c = control.Client(SOCKET)
        doms = c.request('{"command": "domains"}')["domains"]
        c.close()
        aua.check_equal([(x["name"], x["failed"]) for x in doms], [("vault", 1)],
                        "domains counts the failed device")

        # The device model would accept now: without a change nothing tries.
        xen.inject(rules, [])
        xen.wait_attached(7, ["1-1.4.2"], t)
        time.sleep(1)
        aua.check_equal(tries(7, "xenusb-1-5"), 1, "the key not tried without a change")
        # A reload is a change: one more try, accepted.
        d.signal(signal.SIGHUP)
        xen.wait_attached(7, ["1-1.2", "1-1.4.2"], t)
        aua.check_equal(tries(7, "xenusb-1-5"), 2, "the key tried once more")
        aua.check_equal(device("1-1.2")["failure"], None, "no failure once attached")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

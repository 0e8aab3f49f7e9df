"""SIGTERM while libxl is half-way through an attach (the device model is
slow to answer the usb-host's device_add): the daemon lets the attach
finish, for a few seconds at most, then exits 0.  Before, it aborted the
operation at once: libxl rolled back the xenstore record while the device
model kept the usb-host, and after a restart every attach of that device
failed with "Duplicate device ID" (found by the real-Xen scenarios).
Started again, the daemon finds the key attached and adds nothing."""

import os

import aua
import daemon
import xen

VAULT = 7


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_TO_VAULT)
    rules = os.path.join(tmp, "inject")
    xen.inject(rules, [{"execute": "device_add", "id": "xenusb-1-5", "delay": 1.5}])
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard"):
        tb.load(f)
    xen.add_guest("vault", VAULT)
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        tb.load("yubikey")
        aua.wait_until(lambda: [h[0] for h in xen.usb_hosts(VAULT)] == ["xenusb-1-5"], t,
                       "the usb-host's device_add sent (answered 1.5 s later)")
        rc, err = d.stop(t)     # one SIGTERM (a second one stops at once)
        aua.check_equal(xen.attached(VAULT), ["1-1.2"], "the key's record kept in xenstore")
        aua.check_equal(rc, 0, "exit status")
        aua.check("stopping once the operations in flight are answered" in err,
                  "said why it waits:\n%s" % err)

    xen.inject(rules, [])
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        aua.wait_until(lambda: "vault: 1-1.2 is attached already" in d.stderr(), t,
                       "the key found attached:\n%s" % d.stderr())
        aua.check_equal([h[0] for h in xen.usb_hosts(VAULT)], ["xenusb-1-5"],
                        "no second device_add")
        aua.check("Duplicate device ID" not in d.stderr(), "no duplicate:\n%s" % d.stderr())
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

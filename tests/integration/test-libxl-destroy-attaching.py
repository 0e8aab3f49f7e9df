"""A guest destroyed in the middle of an attach: its device model takes the
usb-host's device_add and never answers (the QMP double's "hang"), then
`xl destroy` kills it.  libxl's attach ends in an error and the domain is
gone; the device must not be lost: it goes back to waiting for its guest
(the control socket says "waiting"), and when the guest is started again,
under a new domid, it is attached there, once.

Then the daemon is stopped while another attach hangs: libxl must not be
freed with the operation outstanding (it asserts: the daemon dumped core);
the operation is aborted and the daemon exits 0."""

import os

import aua
import ctl
import daemon
import xen


def state_of(c, port):
    return {x["port"]: x["state"] for x in c("devices")["devices"]}.get(port)


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_AND_STICK_TO_VAULT)
    sock = os.path.join(tmp, "control")
    rules = os.path.join(tmp, "inject")
    xen.inject(rules, [{"execute": "device_add", "id": "xenusb-1-5", "hang": True}])
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard"):
        tb.load(f)
    xen.add_guest("vault", 7)
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy, "--control-socket", sock) as d:
        d.wait_ready(t)
        c = ctl.Control(sock)
        tb.load("yubikey")
        aua.wait_until(lambda: [h[0] for h in xen.usb_hosts(7)] == ["xenusb-1-5"], t,
                       "the usb-host's device_add sent (and not answered)")
        aua.check_equal(state_of(c, "1-1.2"), "attaching", "the key while QEMU hangs")

        xen.destroy_guest(7)
        aua.wait_until(lambda: "vault: guest stopped (was domid 7)" in d.stderr(), t,
                       "the daemon to see the guest go")
        aua.wait_until(lambda: state_of(c, "1-1.2") == "waiting", t,
                       "the key waiting for its guest again (it is %s)"
                       % state_of(c, "1-1.2"))

        xen.inject(rules, [])
        xen.add_guest("vault", 12)
        xen.wait_attached(12, ["1-1.2"], t)
        aua.wait_until(lambda: state_of(c, "1-1.2") == "attached", t, "the key attached")
        aua.check_equal([h[0] for h in xen.usb_hosts(12)], ["xenusb-1-5"],
                        "one usb-host in the guest started again")
        aua.check_equal(xen.device_dels(12), [], "nothing detached from the new guest")

        xen.inject(rules, [{"execute": "device_add", "id": "xenusb-1-7", "hang": True}])
        tb.load("storage")
        aua.wait_until(lambda: "xenusb-1-7" in [h[0] for h in xen.usb_hosts(12)], t,
                       "the stick's device_add sent (and not answered)")
        aua.check_equal(state_of(c, "1-1.4.2"), "attaching", "the stick while QEMU hangs")
        c.close()
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

"""A device model that refuses an attach: the failure is logged with the
device and the guest, the device is not lost (it waits and is retried with
backoff), and once the device model accepts, it is attached exactly once.
An unplug while the device waits for its retry leaves nothing behind.
QEMU's error text, which libxl relays into the log as it is, holds a
newline and a forged line: it stays one line, the newline written \x0a."""

import os

import aua
import daemon
import xen


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_AND_STICK_TO_VAULT)
    rules = os.path.join(tmp, "inject")
    xen.inject(rules, [{"execute": "device_add", "id": "xenusb-1-5",
                        "error": "failed to open host usb device 1:5\n"
                                 "auto-usb-attach[1]: vault: 1-1.2 attached (forged)"},
                       {"execute": "device_add", "id": "xenusb-1-7",
                        "error": "failed to open host usb device 1:7"}])
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "storage"):
        tb.load(f)
    xen.add_guest("vault", 7)
    t = daemon.timeout(20)
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        aua.wait_until(lambda: "vault: attaching 1-1.2 failed (attempt 1)" in d.stderr(), t,
                       "the failure in the log")
        aua.wait_until(lambda: "vault: attaching 1-1.4.2 failed (attempt 1)" in d.stderr(), t,
                       "the second failure in the log")
        aua.check_equal(xen.attached(7), [], "nothing attached while QEMU refuses")
        aua.wait_until(lambda: "1:5\\x0aauto-usb-attach[1]: vault" in d.stderr(), t,
                       "QEMU's text in the log, escaped")
        aua.check(not any(line.startswith("auto-usb-attach[1]")
                          for line in d.stderr().splitlines()), "a forged log line")
        # The stick is unplugged while it waits for its retry: forgotten cleanly.
        tb.remove("1-1.4.2")
        # QEMU accepts again: the key is attached at the next retry.
        xen.inject(rules, [])
        xen.wait_attached(7, ["1-1.2"], t)
        aua.wait_until(lambda: [h[0] for h in xen.usb_hosts(7)].count("xenusb-1-5") >= 2, t,
                       "the retried device_add in the device model's log")
        hosts = [h[0] for h in xen.usb_hosts(7)]
        aua.check(hosts.count("xenusb-1-5") >= 2, "retried: %s" % hosts)
        aua.check_equal(xen.attached(7), ["1-1.2"], "attached once, the stick not at all")
        aua.check_equal(xen.device_dels(7), [], "nothing to detach")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

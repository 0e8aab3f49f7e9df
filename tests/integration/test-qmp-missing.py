"""A host device QEMU cannot find: this QEMU runs without the umockdev
preload, so it refuses the testbed's key ("failed to find host usb
device").  Trying again cannot mend that (each try would take the device
from dom0's drivers again): the daemon says so once and waits for a change.
A QEMU that sees the device started on the same socket is one (the guest
restarted): the key is tried again and attached."""

import time

import aua
import daemon
import qemu


def test():
    v = qemu.Vault(qemu.KEY_TO_VAULT_RULE, preload=False)
    g = v.guest
    t = daemon.timeout(15)
    with v.daemon() as d:
        d.wait_ready(t)
        pos = qemu.wait_log(d, r"vault: QMP device_add xenusb-1-5: failed to find host usb "
                               r"device 1:5", t)
        pos = qemu.wait_log(d, r"vault: 1-1\.2 cannot be attached: the device model cannot "
                               r"find the host device; not retried", t, pos)
        time.sleep(3)
        aua.check_equal(d.stderr().count("QMP device_add xenusb-1-5: failed"), 1,
                        "one usb-host device_add in 3 s")
        aua.check("attaching 1-1.2 failed" not in d.stderr(), "no retry")
        aua.check_equal(g.usb_hosts(), [], "nothing in QEMU")
        aua.check(d.running(), "the daemon runs on")

        g.kill()
        g.preload = True
        g.start()
        g.wait_usb_hosts([qemu.KEY], t)
        qemu.wait_log(d, r"vault: 1-1\.2 attached at controller 0 port 1", t, pos)
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

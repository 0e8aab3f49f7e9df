"""A host device QEMU cannot find: this QEMU runs without the umockdev
preload, so it refuses the testbed's key ("failed to find host usb
device").  The daemon logs the failure and tries again with backoff; once
a QEMU that sees the device runs on the same socket, the key is attached."""

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
        pos = qemu.wait_log(d, r"vault: attaching 1-1\.2 failed \(attempt 1\): .*; "
                               r"retrying in 2 s", t, pos)
        pos = qemu.wait_log(d, r"vault: attaching 1-1\.2 failed \(attempt 2\)", t, pos)
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

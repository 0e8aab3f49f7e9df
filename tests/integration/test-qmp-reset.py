"""A guest reset over QMP, on a real QEMU: system_reset makes QEMU send RESET;
the daemon reports the guest stopped and running again, looks at QEMU's
devices anew and keeps the key QEMU still holds (no second usb-host for the
same device).  When the key's usb-host was taken away meanwhile (a
device_del by someone else, seen as DEVICE_DELETED), the reset makes the
daemon attach it again."""

import aua
import daemon
import qemu


def test():
    v = qemu.Vault(qemu.KEY_TO_VAULT_RULE)
    g = v.guest
    t = daemon.timeout(10)
    with v.daemon() as d:
        d.wait_ready(t)
        g.wait_usb_hosts([qemu.KEY], t)
        pos = qemu.wait_log(d, r"vault: 1-1\.2 attached at controller 0 port 1", t)

        g.qmp("system_reset")
        pos = qemu.wait_log(d, r"vault: QEMU reports a reset", t, pos)
        pos = qemu.wait_log(d, r"vault: guest stopped \(was domid 65536\)", t, pos)
        pos = qemu.wait_log(d, r"vault: guest is running \(domid 65536\)", t, pos)
        pos = qemu.wait_log(d, r"vault: 1-1\.2 is attached already at controller 0 port 1",
                            t, pos)
        aua.check_equal(g.usb_hosts(), [qemu.KEY], "the key once, after the reset")

        # Someone else takes the key's usb-host away; the next reset brings it back.
        g.qmp("device_del", {"id": "xenusb-1-5"})
        g.wait_usb_hosts([], t)
        pos = qemu.wait_log(d, r"vault: QEMU deleted xenusb-1-5 \(not by us\)", t, pos)
        g.qmp("system_reset")
        pos = qemu.wait_log(d, r"vault: guest is running \(domid 65536\)", t, pos)
        g.wait_usb_hosts([qemu.KEY], t)
        qemu.wait_log(d, r"vault: 1-1\.2 attached at controller 0 port 1", t, pos)
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

"""QEMU killed and started again, and QEMU quitting, with the QMP backend:
after a SIGKILL the connection closes at once and the guest counts as
stopped; the socket file stays and refuses connections, which the daemon
tries again with backoff (logged once, not at every try); a new QEMU on the
same path is found, and the key is attached to it.  A quit (SHUTDOWN, then
the connection closing) stops the guest too."""

import os
import time

import aua
import daemon
import qemu


def test():
    v = qemu.Vault(qemu.KEY_TO_VAULT_RULE)
    g = v.guest
    t = daemon.timeout(15)
    with v.daemon() as d:
        d.wait_ready(t)
        g.wait_usb_hosts([qemu.KEY], t)
        pos = qemu.wait_log(d, r"vault: 1-1\.2 attached", t)

        g.kill()
        aua.check(os.path.exists(g.sock), "a killed QEMU leaves its socket file")
        pos = qemu.wait_log(d, r"vault: QMP .*: QEMU closed the connection", t, pos)
        pos = qemu.wait_log(d, r"vault: guest stopped \(was domid 65536\)", t, pos)
        pos = qemu.wait_log(d, r"vault: QMP .*: Connection refused; trying again", t, pos)
        time.sleep(2.0)         # a few refused tries
        aua.check_equal(d.stderr().count("Connection refused; trying again"), 1,
                        "the refused socket is logged once at info")

        g.start()
        pos = qemu.wait_log(d, r"vault: guest is running \(domid 65536\)", t, pos)
        g.wait_usb_hosts([qemu.KEY], t)
        pos = qemu.wait_log(d, r"vault: 1-1\.2 attached at controller 0 port 1", t, pos)

        g.qmp("quit", check=False)
        pos = qemu.wait_log(d, r"vault: QEMU reports a shutdown", t, pos)
        pos = qemu.wait_log(d, r"vault: guest stopped \(was domid 65536\)", t, pos)
        g.proc.wait(5)
        # QEMU removes its socket on a clean exit: absent, tried again.
        g.start()
        pos = qemu.wait_log(d, r"vault: guest is running \(domid 65536\)", t, pos)
        g.wait_usb_hosts([qemu.KEY], t)
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

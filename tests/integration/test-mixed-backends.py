"""One policy, both backends: the guest "vault" is given a qmp-socket of its
own (a real QEMU under the umockdev preload: its usb-host opens the
testbed's key), the guest "win10" is not (libxl, its device model the QMP
double).  One daemon attaches the key through vault's socket and the stick
through libxl.  vault is also a domain libxl sees (xl started it): what
libxl says of it is not followed, so nothing of vault goes through libxl.
A reload that would move vault to libxl is refused with the reason."""

import os
import signal

import aua
import daemon
import qemu
import xen

WIN10 = 5
VAULT = 8


def test():
    tmp = aua.tempdir()
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "storage"):
        tb.load(f)
    vault = qemu.Guest(tmp, "vault").start()
    text = ("version: 1\n"
            "domains:\n"
            "  vault:\n"
            "    qmp-socket: %s\n"
            "  win10: {}\n"
            "rules:\n"
            "  - match: { id: \"1050:0407\" }\n"
            "    domain: vault\n"
            "  - match: { hub: \"1-1.4\" }\n"
            "    domain: win10\n" % vault.sock)
    policy = daemon.write_policy(tmp, "policy.yaml", text)
    xen.add_guest("win10", WIN10)
    xen.add_guest("vault", VAULT)
    t = daemon.timeout(20)
    with xen.start_daemon(tb, policy, "-v") as d:
        d.wait_ready(t)
        xen.wait_attached(WIN10, ["1-1.4.2"], t)
        vault.wait_usb_hosts([qemu.KEY], t)
        aua.check_equal(xen.attached(VAULT), [], "nothing of vault's through libxl")
        aua.check_equal(xen.controllers(VAULT), [], "no libxl controller in vault")
        aua.check("backend mixed" in d.stderr(), "the backend named:\n%s" % d.stderr())
        aua.check("vault: guest is running (domid %d)" % VAULT not in d.stderr(),
                  "libxl's view of vault followed:\n%s" % d.stderr())

        # vault without its socket would be libxl's: not without a restart.
        daemon.write_policy(tmp, "policy.yaml", text.replace("    qmp-socket: %s\n" % vault.sock,
                                                             "    controller: {version: 3}\n"))
        pos = len(d.stderr())
        d.signal(signal.SIGHUP)
        aua.wait_until(lambda: "it had a qmp-socket when the daemon started" in d.stderr()[pos:],
                       t, "the reload refused:\n%s" % d.stderr()[pos:])
        # The key unplugged: out of vault's QEMU; the stick stays in win10.
        tb.remove("1-1.2")
        vault.wait_usb_hosts([], t)
        aua.check_equal(xen.attached(WIN10), ["1-1.4.2"], "the stick left in win10")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

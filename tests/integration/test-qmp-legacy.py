"""The old script's form, -d DOMAIN -s SOCKET -x VID:PID, on a real QEMU:
the QMP backend takes the guest, and the key is attached through the
socket; a policy that mixes QMP and libxl guests needs libxl too (here, with no
Xen, the daemon says libxl cannot be opened)."""

import aua
import daemon
import qemu


def test():
    tmp = aua.tempdir()
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey"):
        tb.load(f)
    g = qemu.Guest(tmp, "vault").start()
    t = daemon.timeout(10)
    argv = daemon.command("-d", "vault", "-s", g.sock, "-x", "1050:0407", "--state-dir",
                          tmp + "/state", "--control-socket", "none")
    with aua.Daemon(argv, testbed=tb) as d:
        d.wait_ready(t)
        g.wait_usb_hosts([qemu.KEY], t)
        qemu.wait_log(d, r"backend qmp", t)
        daemon.stop_clean(d)

    mixed = daemon.write_policy(tmp, "mixed.yaml", qemu.policy(
        [("vault", g.sock, None)], qemu.KEY_TO_VAULT_RULE)
        .replace("rules:", "  win10: {}\nrules:"))
    with aua.Daemon(qemu.daemon_args(tmp, mixed), testbed=tb) as d:
        d.proc.wait(t)
        rc, err = d.stop()
    # A mixed policy needs libxl beside QMP: here, with no Xen, libxl says so.
    aua.check_equal(rc, 1, "exit status of a mixed policy without Xen")
    aua.check("cannot open libxl" in err, "the failure is explained: %s" % err)


if __name__ == "__main__":
    aua.main(test)

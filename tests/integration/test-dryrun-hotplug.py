"""Hot plug in dry-run: adds decided from the uevent as they come, a device
on a nested hub, an unmatched device, and removes matched from the daemon's
own record: the device's sysfs node is gone before the remove event (which
carries only the kernel's properties) reaches the daemon."""

import aua
import daemon

POLICY = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - name: yubikeys go to the vault
    match: { id: "1050:0407" }
    domain: vault
  - name: keyboards stay in dom0
    match: { interface-class: hid }
    action: ignore
  - name: everything on the first hub
    match: { hub: "1-1" }
    domain: win10
"""


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    tb = aua.Testbed()
    tb.load("hubs")
    tb.load("laptop-keyboard")
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        tb.wait_listeners(1)

        tb.load("yubikey")
        yk = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((yk["event"], yk["action"], yk["port"], yk["domain"], yk["rule"]),
                        ("add", "attach", "1-1.2", "vault", 1), "yubikey add")

        tb.load("keyboard")
        kb = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((kb["event"], kb["action"], kb["port"], kb["rule"]),
                        ("add", "ignore", "1-1.3", 2), "keyboard add (interface class hid)")

        tb.load("storage")
        st = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((st["event"], st["action"], st["port"], st["domain"], st["rule"]),
                        ("add", "attach", "1-1.4.2", "win10", 3),
                        "storage two hubs below the hub rule")

        tb.load("webcam")
        cam = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((cam["event"], cam["action"], cam["port"], cam["rule"]),
                        ("add", "none", "1-2", None), "webcam on another port")

        # Unplug: sysfs goes first, then a kernel-style remove.
        tb.remove("1-1.2")
        rm = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((rm["event"], rm["action"], rm["port"], rm["domain"], rm["rule"]),
                        ("remove", "detach", "1-1.2", "vault", 1), "yubikey remove")
        aua.check_equal((rm["id"], rm["serial"], rm["devnum"]),
                        (yk["id"], yk["serial"], yk["devnum"]),
                        "the remove is reported from the add-time record")

        tb.remove("1-2")
        rm = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((rm["event"], rm["action"], rm["port"]), ("remove", "none", "1-2"),
                        "webcam remove")

        # Plugged in again at a new address: decided again, as a new device.
        tb.load("yubikey", devnum=17)
        again = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((again["event"], again["action"], again["devnum"], again["domain"]),
                        ("add", "attach", 17, "vault"), "yubikey plugged in again")

        # Unplugging the nested hub takes its device with it.
        tb.remove("1-1.4")
        rm = d.json_lines(1, daemon.timeout(5))[0]
        aua.check_equal((rm["event"], rm["action"], rm["port"], rm["domain"]),
                        ("remove", "detach", "1-1.4.2", "win10"), "device below an unplugged hub")
        daemon.stop_clean(d)
        aua.check(d.notified("STOPPING"), "STOPPING=1 at exit")
    # Nothing but those events was printed: no hub, no duplicate.
    aua.check_equal(len(d.stdout_log), 8, "lines printed: %r" % d.stdout_log)


if __name__ == "__main__":
    aua.main(test)

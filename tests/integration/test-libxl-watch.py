"""auto-usb-attachctl --json watch on the libxl backend (the real libxl and
xenstored over the faked hypervisor): the stream says when the guest
starts, each decision, the attach result with the controller and port
libxl chose (the ones xenstore and the device model's usb-host show), the
unplug's detach with the same place, and the guest stopping."""

import os

import aua
import control
import ctl
import daemon
import xen

VAULT = 9


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_TO_VAULT)
    sock = os.path.join(tmp, "control")
    tb = aua.Testbed()
    tb.load("hubs")
    tb.load("laptop-keyboard")
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy, "--control-socket", sock) as d:
        d.wait_ready(t)
        w = aua.Daemon(control.valgrind_prefix() + [control.ctl_binary(), "-s", sock,
                                                     "--json", "watch"],
                       env=control.plain_env(), name="watch")
        c = ctl.Control(sock)
        aua.wait_until(lambda: c("status")["watchers"] == 1, t, "the watcher in")

        xen.add_guest("vault", VAULT)
        ev = aua.json_until(w, lambda e: e["event"] == "guest-start", t, "guest start")[-1]
        aua.check_equal((ev["domain"], ev["domid"], ev["port"]), ("vault", VAULT, None),
                        "the guest's start")

        tb.load("yubikey")
        seen = aua.json_until(w, lambda e: e["event"] in ("attached", "attach-failed"), t,
                            "the key's attach")
        aua.check_equal((seen[0]["event"], seen[0]["action"], seen[0]["port"],
                         seen[0]["domain"]), ("add", "attach", "1-1.2", "vault"),
                        "the key's decision")
        att = seen[-1]
        aua.check_equal((att["event"], att["port"], att["domain"], att["domid"]),
                        ("attached", "1-1.2", "vault", VAULT), "the key's attach result")
        xen.wait_attached(VAULT, ["1-1.2"], t)
        xen.wait_usb_hosts(VAULT, 1, t)
        # libxl's ports are 1-based, as the stream's; the usb-host's bus names the controller.
        host = xen.usb_hosts(VAULT)[0]
        aua.check_equal((host[1], host[2]),
                        ("xenusb-%d.0" % att["controller"], str(att["guest_port"])),
                        "the stream's controller and port are where libxl put the key")

        tb.remove("1-1.2")
        seen = aua.json_until(w, lambda e: e["event"] in ("detached", "detach-failed"), t,
                            "the key's detach")
        aua.check_equal((seen[0]["event"], seen[0]["action"], seen[0]["port"]),
                        ("remove", "detach", "1-1.2"), "the unplug's decision")
        aua.check_equal((seen[-1]["event"], seen[-1]["controller"], seen[-1]["guest_port"]),
                        ("detached", att["controller"], att["guest_port"]),
                        "the detach names the place it freed")
        xen.wait_attached(VAULT, [], t)

        xen._xenenv("xenenv_set_state", VAULT, "shutdown")
        ev = aua.json_until(w, lambda e: e["event"] == "guest-stop", t, "guest stop")[-1]
        aua.check_equal((ev["domain"], ev["domid"]), ("vault", VAULT), "the guest's stop")
        xen.destroy_guest(VAULT)
        w.stop()
        c.close()
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

"""State across restarts.  The daemon records what it attached in
<state-dir>/state.json at every change.  Killed with SIGKILL while devices
are attached, with one of them unplugged while it was down, the restarted
daemon ends with exactly the right attachments: the gone device detached
(with the bus and address its record kept), the others neither attached
twice nor lost.  A corrupt state file is reported and ignored."""

import json
import os
import signal

import aua
import daemon
import xen


def read_state(state_dir):
    with open(os.path.join(state_dir, "state.json")) as f:
        return json.load(f)


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.BUS1_TO_WIN10)
    state_dir = os.path.join(tmp, "state")
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard", "storage"):
        tb.load(f)
    xen.add_guest("win10", 5)
    t = daemon.timeout(15)

    with xen.start_daemon(tb, policy, "--state-dir", state_dir) as d:
        d.wait_ready(t)
        xen.wait_attached(5, ["1-1.2", "1-1.3", "1-1.4.2"], t)
        aua.wait_until(lambda: len(read_state(state_dir)["attachments"]) == 3, t,
                       "three attachments in the state file")
        st = read_state(state_dir)
        aua.check_equal(os.stat(os.path.join(state_dir, "state.json")).st_mode & 0o777, 0o600,
                        "state file mode")
        kb = [a for a in st["attachments"] if a["busid"] == "1-1.3"][0]
        aua.check_equal((kb["domain"], kb["domid"], kb["busnum"], kb["devnum"], kb["id"]),
                        ("win10", 5, 1, 6, "046d:c31c"), "the keyboard's record")
        d.signal(signal.SIGKILL)
        d.proc.wait(t)
        d.stop()

    tb.remove("1-1.3")          # unplugged while no daemon ran
    with xen.start_daemon(tb, policy, "--state-dir", state_dir) as d:
        d.wait_ready(t)
        xen.wait_attached(5, ["1-1.2", "1-1.4.2"], t)
        xen.wait_device_dels(5, ["xenusb-1-6"], t, "the gone keyboard detached")
        aua.wait_until(lambda: {"xenusb-1-5", "xenusb-1-7"} <= {h[0] for h in xen.usb_hosts(5)},
                       t, "both device_adds in the device model's log")
        hosts = [h[0] for h in xen.usb_hosts(5)]
        for host in ("xenusb-1-5", "xenusb-1-7"):
            aua.check_equal(hosts.count(host), 1, "%s attached once over both runs" % host)
        aua.wait_until(lambda: sorted(a["busid"] for a in read_state(state_dir)["attachments"])
                       == ["1-1.2", "1-1.4.2"], t, "the state file after the restart")
        daemon.stop_clean(d)

    # A corrupt record is reported, ignored, and replaced by a good one.
    with open(os.path.join(state_dir, "state.json"), "w") as f:
        f.write('{"version": 1, "attachments": [{"domain": ')
    with xen.start_daemon(tb, policy, "--state-dir", state_dir) as d:
        d.wait_ready(t)
        aua.wait_until(lambda: "state.json: corrupt, ignored" in d.stderr(), t,
                       "the corrupt file reported")
        aua.wait_until(lambda: len(read_state(state_dir)["attachments"]) == 2, t,
                       "a good state file again")
        aua.check_equal(xen.attached(5), ["1-1.2", "1-1.4.2"], "attachments unchanged")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

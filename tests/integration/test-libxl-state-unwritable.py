"""A state directory that cannot be written (read-only, or full) costs the
record, never an attachment: the daemon says so once, attaches and detaches
as usual, and says so again when it can write once more."""

import os
import subprocess

import aua
import daemon
import xen


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_AND_STICK_TO_VAULT)
    state_dir = os.path.join(tmp, "state")
    os.mkdir(state_dir)
    # A read-only bind mount: root cannot write through it either.
    subprocess.run(["mount", "--bind", state_dir, state_dir], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", state_dir], check=True)
    # (inside xenenv's own mount namespace: nothing outside sees it)
    aua.on_cleanup(lambda: subprocess.run(["umount", state_dir], stderr=subprocess.DEVNULL))
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey"):
        tb.load(f)
    xen.add_guest("vault", 7)
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy, "--state-dir", state_dir) as d:
        d.wait_ready(t)
        xen.wait_attached(7, ["1-1.2"], t)
        tb.load("storage")
        xen.wait_attached(7, ["1-1.2", "1-1.4.2"], t)
        tb.remove("1-1.2")
        xen.wait_attached(7, ["1-1.4.2"], t)
        err = d.stderr()
        aua.check_equal(err.count("cannot record what is attached"), 1,
                        "the failure said once:\n%s" % err)
        aua.check("Read-only file system" in err, "the reason given:\n%s" % err)
        subprocess.run(["umount", state_dir], check=True)
        tb.load("yubikey", devnum=40)
        xen.wait_attached(7, ["1-1.2", "1-1.4.2"], t)
        aua.wait_until(lambda: "state.json: recorded again" in d.stderr(), t,
                       "the recovery said")
        aua.check(os.path.exists(os.path.join(state_dir, "state.json")), "state written")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

"""The state directory full (a 256 KiB tmpfs, filled up): attachments go
on; the failure is said once, with its reason; the state file in place is
the last one written, whole (it is replaced by a rename, never rewritten in
place); and once space is freed the daemon writes the record by itself,
without waiting for a device to move."""

import errno
import json
import os
import subprocess

import aua
import daemon
import xen

VAULT = 7


def fill(path):
    """Writes path until the file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        aua.check_equal(e.errno, errno.ENOSPC, "why the filler stopped")
    finally:
        os.close(fd)


def recorded(path):
    with open(path) as f:
        return sorted(a["busid"] for a in json.load(f)["attachments"])


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.KEY_AND_STICK_TO_VAULT)
    state_dir = os.path.join(tmp, "state")
    state = os.path.join(state_dir, "state.json")
    filler = os.path.join(state_dir, "filler")
    os.mkdir(state_dir)
    # (inside xenenv's own mount namespace: nothing outside sees it)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "aua-state", state_dir],
                   check=True)
    aua.on_cleanup(lambda: subprocess.run(["umount", state_dir], stderr=subprocess.DEVNULL))
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey"):
        tb.load(f)
    xen.add_guest("vault", VAULT)
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy, "--state-dir", state_dir) as d:
        d.wait_ready(t)
        xen.wait_attached(VAULT, ["1-1.2"], t)
        aua.wait_until(lambda: os.path.exists(state) and recorded(state) == ["1-1.2"], t,
                       "the key recorded")
        with open(state, "rb") as f:
            before = f.read()

        fill(filler)
        tb.load("storage")
        xen.wait_attached(VAULT, ["1-1.2", "1-1.4.2"], t)
        aua.wait_until(lambda: "cannot record what is attached" in d.stderr(), t,
                       "the failure said")
        tb.remove("1-1.2")
        xen.wait_attached(VAULT, ["1-1.4.2"], t)
        tb.load("yubikey", devnum=40)
        xen.wait_attached(VAULT, ["1-1.2", "1-1.4.2"], t)
        err = d.stderr()
        aua.check_equal(err.count("cannot record what is attached"), 1,
                        "the failure said once:\n%s" % err)
        aua.check("No space left on device" in err, "the reason given:\n%s" % err)
        with open(state, "rb") as f:
            aua.check_equal(f.read(), before, "the state file in place")
        aua.check_equal(sorted(n for n in os.listdir(state_dir)), ["filler", "state.json"],
                        "no temporary file left behind")

        # Space comes back; no device moves: the record catches up by itself.
        os.unlink(filler)
        aua.wait_until(lambda: "state.json: recorded again" in d.stderr(), t,
                       "the recovery said")
        aua.check_equal(recorded(state), ["1-1.2", "1-1.4.2"], "the record after recovery")
        aua.check_equal(d.stderr().count("cannot record what is attached"), 1,
                        "still said once")
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

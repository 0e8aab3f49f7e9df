"""Drives tests/fixtures/overrun-preload.so: a uevent socket overrun
(ENOBUFS) while the test plugs and unplugs, every uevent of it lost."""

import os
import time

import aua


class Overrun:
    def __init__(self, tmp):
        path = aua.find_program("overrun-preload.so", "AUA_OVERRUN_PRELOAD")
        aua.check(path is not None, "tests/fixtures/overrun-preload.so is not built "
                  "(make check builds it; or set AUA_OVERRUN_PRELOAD)")
        self.library = os.path.abspath(path)
        self.dir = os.path.join(tmp, "overrun")
        os.mkdir(self.dir)

    def env(self, base=None):
        """The daemon's environment: this library in front of base's LD_PRELOAD."""
        env = dict(base or {})
        rest = env.get("LD_PRELOAD", os.environ.get("LD_PRELOAD", ""))
        env["LD_PRELOAD"] = self.library + (":" + rest if rest else "")
        env["AUA_OVERRUN_DIR"] = self.dir
        return env

    def _path(self, name):
        return os.path.join(self.dir, name)

    def run(self, first, rest, timeout):
        """first() sends the uevent that wakes the daemon: from there on every
        uevent is dropped; rest() sends more; then the daemon's recvmsg()
        fails with ENOBUFS.  Returns how many datagrams were dropped."""
        open(self._path("arm"), "w").close()
        first()
        aua.wait_until(lambda: os.path.exists(self._path("armed")), timeout,
                       "the daemon reading its uevent socket")
        rest()
        time.sleep(0.05)    # the preload drops what is still in flight
        open(self._path("go"), "w").close()
        aua.wait_until(lambda: os.path.exists(self._path("dropped")), timeout,
                       "the overrun")
        with open(self._path("dropped")) as f:
            return int(f.read())


def lost_log(d):
    """The daemon's log lines about the overrun."""
    return [l for l in d.stderr().splitlines() if "udev events were lost" in l]

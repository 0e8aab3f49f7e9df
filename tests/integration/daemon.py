"""How the integration tests start the daemon: the binary of this build,
under valgrind when AUA_VALGRIND=1, with a policy written to a temp file."""

import os

import aua

# --keep-debuginfo: the libxl module and libxenlight are opened with dlopen,
# and the libc_freeres that valgrind runs at exit unloads them before the
# leak check; without it their frames are "???" and the suppressions that
# name libxenlight (tests/valgrind.supp) match nothing.
VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect", "--keep-debuginfo=yes"]


def binary():
    path = os.environ.get("AUA_DAEMON")
    if not path:
        path = os.path.join(os.getcwd(), "src", "auto-usb-attach")
    aua.check(os.access(path, os.X_OK), "no daemon binary at %s" % path)
    return path


def command(*args):
    prefix = []
    if os.environ.get("AUA_VALGRIND") == "1":
        prefix = VALGRIND[:]
        if os.environ.get("AUA_VALGRIND_SUPP"):
            prefix.append("--suppressions=" + os.environ["AUA_VALGRIND_SUPP"])
    return prefix + [binary()] + [str(a) for a in args]


def timeout(seconds):
    """Valgrind runs the daemon ~20 times slower."""
    return seconds * (10 if os.environ.get("AUA_VALGRIND") == "1" else 1)


def write_policy(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def stop_clean(d):
    """Stops the daemon and checks it exited 0 (valgrind's errors make it 99)."""
    rc, err = d.stop(timeout(5))
    aua.check(rc == 0, "daemon exited %s; stderr:\n%s" % (rc, err))
    return err

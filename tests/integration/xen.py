"""The libxl tests' view of the Xen fixture (tests/fixtures/xen/xenenv):
the real xenstored and libxl over a faked hypervisor, guests with a QMP
double (or a real QEMU) as device model.

A test calls enter() first: it re-executes the test inside `xenenv -- ...`
(a private mount namespace with xenstored running), and aua.main() then
puts it under the umockdev preload, so the daemon, libxl and QEMU all see
the testbed's /sys.  Guests are added and destroyed through xenenv's own
functions; everything it started is stopped by pid when the test ends."""

import glob
import json
import os
import subprocess
import sys

import aua
import daemon

XENENV = os.path.join(aua.FIXTURES, "xen", "xenenv")

# A policy several tests share: what is below the hub of the fixtures' USB
# stick (1-1.4) goes to win10.
STICK_TO_WIN10 = """\
version: 1
domains:
  win10: {}
rules:
  - match: { hub: "1-1.4" }
    domain: win10
"""

# The key (1050:0407, at 1-1.2) to vault.
KEY_TO_VAULT = """\
version: 1
domains:
  vault: {}
rules:
  - match: { id: "1050:0407" }
    domain: vault
"""

# The key and what is below the stick's hub (1-1.4) to vault.
KEY_AND_STICK_TO_VAULT = KEY_TO_VAULT + """\
  - match: { hub: "1-1.4" }
    domain: vault
"""

# Everything on the first bus (usb1) to win10.
BUS1_TO_WIN10 = """\
version: 1
domains:
  win10: {}
rules:
  - match: { hub: usb1 }
    domain: win10
"""


def enter():
    if os.environ.get("XENENV_DIR"):
        return
    os.environ["XENENV_QUIET"] = "1"
    argv = [XENENV, "--", "/usr/bin/python3", os.path.abspath(sys.argv[0])] + sys.argv[1:]
    os.execv(XENENV, argv)


def _xenenv(*call):
    cmd = 'source "$XENENV_SELF" && "$@"'
    r = subprocess.run(["bash", "-c", cmd, "xenenv"] + [str(c) for c in call],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    aua.check(r.returncode == 0, "xenenv %s failed:\n%s" % (" ".join(map(str, call)),
                                                             r.stdout))
    return r.stdout


def add_guest(name, domid, dm="double", state="running"):
    _xenenv("xenenv_add_guest", name, domid, dm, state)


def destroy_guest(domid):
    _xenenv("xenenv_destroy_guest", domid)


def restart_xenstored():
    """xenstored SIGKILLed and started again with the same store (xenenv)."""
    _xenenv("xenenv_restart_xenstored")


def inject(path, rules):
    """Makes the QMP doubles started afterwards answer matching commands with
    an error (rules: dicts as qmp-double.py's --inject takes); an empty list
    clears them."""
    with open(path, "w") as f:
        for rule in rules:
            f.write(json.dumps(rule) + "\n")
    os.environ["XENENV_DOUBLE_ARGS"] = "--inject %s" % path


def xs_read(path):
    r = subprocess.run(["xenstore-read", path], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def xs_ls(path):
    r = subprocess.run(["xenstore-list", path], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return r.stdout.split() if r.returncode == 0 else []


def ports(domid):
    """{(ctrl, port): busid} of every port of the guest's controllers."""
    out = {}
    for ctrl in xs_ls("/libxl/%d/device/vusb" % domid):
        for port in xs_ls("/libxl/%d/device/vusb/%s/port" % (domid, ctrl)):
            out[(int(ctrl), int(port))] = xs_read(
                "/libxl/%d/device/vusb/%s/port/%s" % (domid, ctrl, port)) or ""
    return out


def attached(domid):
    """The busids attached to the guest, as xenstore says."""
    return sorted(b for b in ports(domid).values() if b)


def controllers(domid):
    return sorted(int(c) for c in xs_ls("/libxl/%d/device/vusb" % domid))


def qmp_log(domid):
    """The commands the guest's QMP double received, in order."""
    path = os.path.join(os.environ["XENENV_DIR"], "qmp-%d.log" % domid)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def usb_hosts(domid):
    """The usb-host device_adds that the double accepted or refused, in order:
    (id, bus, port, hostbus, hostaddr)."""
    return [(c["arguments"]["id"], c["arguments"].get("bus"), c["arguments"].get("port"),
             str(c["arguments"].get("hostbus")), str(c["arguments"].get("hostaddr")))
            for c in qmp_log(domid)
            if c.get("execute") == "device_add" and
            c.get("arguments", {}).get("driver") == "usb-host"]


def wait_usb_hosts(domid, count, timeout):
    """Waits for the double to have logged count usb-host device_adds: libxl
    writes xenstore before it sends device_add, so wait_attached can be first."""
    aua.wait_until(lambda: len(usb_hosts(domid)) >= count, timeout,
                   "guest %d's device model to get %d usb-host(s) (has %s)"
                   % (domid, count, usb_hosts(domid)))


def device_dels(domid):
    return [c["arguments"]["id"] for c in qmp_log(domid) if c.get("execute") == "device_del"]


def wait_device_dels(domid, expected, timeout, what):
    """Waits until the double's device_dels are expected (libxl may update
    xenstore before the device model has logged the device_del)."""
    aua.wait_until(lambda: device_dels(domid) == expected, timeout,
                   "%s: device_dels of guest %d to be %s (are %s)"
                   % (what, domid, expected, device_dels(domid)))


def daemon_env():
    """LD_PRELOAD for the daemon: the testbed, then the fake libxenctrl."""
    preload = os.environ.get("LD_PRELOAD", "")
    return {"LD_PRELOAD": (preload + ":" if preload else "") +
            os.environ["XENENV_LIBXC_PRELOAD"]}


def start_daemon(tb, policy, *args):
    """The daemon in the foreground on the policy file, with the libxl
    backend over this fixture (daemon_env), args appended; a context manager
    (aua.Daemon), not yet ready."""
    return aua.Daemon(daemon.command("--foreground", "-c", policy, *args), testbed=tb,
                      env=daemon_env())


def wait_attached(domid, busids, timeout):
    aua.wait_until(lambda: attached(domid) == sorted(busids), timeout,
                   "guest %d to hold exactly %s (holds %s)" % (domid, sorted(busids),
                                                               attached(domid)))


def xl(*args):
    """The real xl, as a user would run it, on the fixture."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = daemon_env()["LD_PRELOAD"]
    r = subprocess.run(["/usr/lib/xen-4.17/bin/xl"] + [str(a) for a in args], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    aua.check(r.returncode == 0, "xl %s failed:\n%s" % (" ".join(map(str, args)), r.stdout))
    return r.stdout


def qmp(domid, command, arguments=None):
    """One QMP command to the guest's device model (a short connection, as
    libxl makes them); returns the "return" value."""
    argv = ["/usr/bin/python3", os.path.join(aua.FIXTURES, "xen", "qmp-client.py"),
            "/run/xen/qmp-libxl-%d" % domid, command]
    if arguments is not None:
        argv.append(json.dumps(arguments))
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env)
    aua.check(r.returncode == 0, "QMP %s to domain %d failed: %s" % (command, domid, r.stderr))
    return json.loads(r.stdout.splitlines()[0])


def qemu_devices(domid):
    """The ids of the devices the real QEMU of a guest holds (qom-list)."""
    return sorted(p["name"] for p in qmp(domid, "qom-list", {"path": "/machine/peripheral"})
                  if p.get("type", "").startswith("child<"))

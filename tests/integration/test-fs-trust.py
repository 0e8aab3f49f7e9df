"""The file system another user may have touched (the daemon acts as root
on what it reads there):

- the policy: a symbolic link (even to a good file), a FIFO (refused at
  once, not waited on), a file in a directory others may write or that is
  not root's: each refused with the reason; a good file in a sticky /tmp
  directory of root's is read.
- the state directory writable by others, not root's, or a symbolic link:
  the daemon does not start and says why; state.json a FIFO (the start does
  not hang), a symbolic link, or larger than any record: ignored with the
  reason, the daemon runs.
- the control socket's directory writable by others or a symbolic link:
  the daemon does not start and says why; with --control-group the socket
  is 0660 and the group's from the first instant."""

import grp
import os
import subprocess

import aua
import daemon
import qemu

GOOD = """version: 1
domains:
  vault:
    qmp-socket: %s
rules:
  - match: { id: "1050:0407" }
    domain: vault
"""


def check_policy(path, pattern, code=1):
    try:
        r = subprocess.run(daemon.command("--check", "-c", path), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=daemon.timeout(5))
    except subprocess.TimeoutExpired:
        aua.fail("--check -c %s hung" % path)
    aua.check(r.returncode == code and pattern in r.stdout,
              "--check -c %s: exit %d, expected %d with %r:\n%s"
              % (path, r.returncode, code, pattern, r.stdout))


def start(tmp, tb, policy, state, sock, *extra):
    return aua.Daemon(daemon.command("--foreground", "-v", "-c", policy, "--state-dir", state,
                                     "--control-socket", sock, *extra), testbed=tb)


def refused(tmp, tb, policy, state, sock, pattern, t):
    with start(tmp, tb, policy, state, sock) as d:
        try:
            d.proc.wait(t)
        except subprocess.TimeoutExpired:
            aua.fail("the daemon started with %s / %s" % (state, sock))
        rc, err = d.stop()
    aua.check(rc == 1 and pattern in err, "exit %s, expected 1 with %r:\n%s"
              % (rc, pattern, err))


def test():
    tmp = aua.tempdir()
    os.chmod(tmp, 0o755)
    t = daemon.timeout(10)
    good = daemon.write_policy(tmp, "policy.yaml", GOOD % os.path.join(tmp, "none.qmp"))
    os.chmod(good, 0o644)

    # ---- the policy
    check_policy(good, "policy.yaml: OK", 0)
    link = os.path.join(tmp, "link.yaml")
    os.symlink(good, link)
    check_policy(link, "link.yaml:1:1: cannot open: it is a symbolic link")
    fifo = os.path.join(tmp, "fifo.yaml")
    os.mkfifo(fifo, 0o600)
    check_policy(fifo, "fifo.yaml:1:1: not a regular file")
    open_dir = os.path.join(tmp, "open")
    os.mkdir(open_dir)
    os.chmod(open_dir, 0o777)
    inside = daemon.write_policy(open_dir, "p.yaml", GOOD % "/nowhere.qmp")
    check_policy(inside, "p.yaml:1:1: the directory %s is writable by others than root "
                 "(mode 0777)" % open_dir)
    os.chmod(open_dir, 0o1777)   # sticky, root's: others cannot replace root's files
    check_policy(inside, "p.yaml: OK", 0)
    theirs = os.path.join(tmp, "theirs")
    os.mkdir(theirs)
    os.chown(theirs, 65534, -1)
    inside = daemon.write_policy(theirs, "p.yaml", GOOD % "/nowhere.qmp")
    check_policy(inside, "p.yaml:1:1: the directory %s is not root's (owner uid 65534"
                 % theirs)

    # ---- the state and socket directories
    tb = aua.Testbed()
    tb.load("hubs")
    sock = os.path.join(tmp, "run", "control.sock")
    os.mkdir(os.path.dirname(sock), 0o755)
    state = os.path.join(tmp, "state")
    os.mkdir(state, 0o777)
    os.chmod(state, 0o777)
    refused(tmp, tb, good, state, sock, "state directory %s: the directory %s is writable "
            "by others than root (mode 0777)" % (state, state), t)
    os.chmod(state, 0o700)
    os.chown(state, 65534, -1)
    refused(tmp, tb, good, state, sock, "the directory %s is not root's" % state, t)
    os.chown(state, 0, -1)
    state_link = os.path.join(tmp, "state-link")
    os.symlink(state, state_link)
    refused(tmp, tb, good, state_link, sock, "state directory %s: not a directory (or a "
            "symbolic link)" % state_link, t)

    sock_dir = os.path.join(tmp, "sockdir")
    os.mkdir(sock_dir)
    os.chmod(sock_dir, 0o777)
    refused(tmp, tb, good, state, os.path.join(sock_dir, "c.sock"),
            "control: socket directory %s: the directory %s is writable by others than "
            "root (mode 0777)" % (sock_dir, sock_dir), t)
    os.chmod(sock_dir, 0o755)
    sock_link = os.path.join(tmp, "sockdir-link")
    os.symlink(sock_dir, sock_link)
    refused(tmp, tb, good, state, os.path.join(sock_link, "c.sock"),
            "control: socket directory %s: not a directory (or a symbolic link)" % sock_link, t)

    # state.json a FIFO: the start does not wait on it.
    record = os.path.join(state, "state.json")
    os.mkfifo(record, 0o600)
    with start(tmp, tb, good, state, sock, "--control-group", grp.getgrgid(0).gr_name) as d:
        d.wait_ready(t)
        aua.wait_until(lambda: "state.json: ignored: not a regular file" in d.stderr(), t,
                       "the FIFO said")
        st = os.lstat(sock)
        aua.check_equal(oct(st.st_mode & 0o777), oct(0o660), "the socket's mode")
        daemon.stop_clean(d)
    os.unlink(record)
    # ...a symbolic link to a record, or one larger than any: ignored.
    other = os.path.join(tmp, "other.json")
    with open(other, "w") as f:
        f.write('{"version": 1, "attachments": []}')
    os.symlink(other, record)
    with start(tmp, tb, good, state, sock) as d:
        d.wait_ready(t)
        aua.wait_until(lambda: "state.json: ignored: a symbolic link" in d.stderr(), t,
                       "the link said")
        rc, err = d.stop()
    os.unlink(record)
    with open(record, "w") as f:
        f.write('{"version": 1, "attachments": [%s]}' % ("0," * (3 * 1024 * 1024)))
    with start(tmp, tb, good, state, sock) as d:
        d.wait_ready(t)
        aua.wait_until(lambda: "state.json: ignored: larger than any record" in d.stderr(), t,
                       "the size said")
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

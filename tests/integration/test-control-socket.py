#!/usr/bin/python3
"""The control socket's transport (src/control.c), with
tests/fixtures/control-echo standing in for the daemon: every request is
echoed back with "ok":true and the peer's uid.  It owns the proof that the
socket is created safely (mode, owner, stale and foreign files), that who may
connect is checked on every connection, that framing works (several requests
in one write, one request over many writes, blank lines), and that no client
can make the server block, crash or hold others up: garbage, a 10 MB line,
silence, 100 clients at once, a client that never reads.

Run: /usr/bin/python3 tests/integration/test-control-socket.py
(control-echo: CONTROL_ECHO=path, or tests/fixtures/control-echo under the
current directory, as make check leaves it).
"""

import grp
import json
import os
import re
import socket
import stat
import threading
import time

import aua
import control
import daemon

LIMIT = 65536
NOBODY_UID = 65534


def ok(what):
    print("ok: %s" % what, flush=True)


def error_line(message):
    return json.dumps({"ok": False, "error": message}, separators=(",", ":"))


def check_echo(reply, request, what):
    expected = dict(request, ok=True, uid=os.getuid(), gid=os.getgid())
    got = {k: v for k, v in reply.items() if k != "pid"}
    aua.check_equal(got, expected, what)


def test_socket_file(tmp):
    path = os.path.join(tmp, "run", "control")
    d = control.start_echo(path)
    st = os.lstat(path)
    aua.check(stat.S_ISSOCK(st.st_mode), "%s is not a socket" % path)
    aua.check_equal(oct(st.st_mode & 0o7777), oct(0o600), "socket mode")
    aua.check_equal((st.st_uid, st.st_gid), (0, 0), "socket owner")
    aua.check_equal(oct(os.stat(os.path.dirname(path)).st_mode & 0o7777),
                    oct(0o755), "mode of the directory it created")
    c = control.Client(path)
    check_echo(c.request('{"command":"status"}'), {"command": "status"},
               "a request and its reply")
    daemon.stop_clean(d)
    aua.check(not os.path.exists(path), "the socket is left after a stop")
    ok("socket 0600 root:root in a new 0755 directory, removed at exit")


def test_framing(path):
    c = control.Client(path)
    # Several requests in one write: replies in order.
    reqs = [{"command": "status", "seq": i} for i in range(50)]
    c.send("".join(json.dumps(r) + "\n" for r in reqs))
    for r in reqs:
        check_echo(control.parse(c.readline()), r, "reply %d of a batch" % r["seq"])
    # One request over many writes.
    text = json.dumps({"command": "explain", "device": "1-1.2", "seq": "split"})
    for i in range(len(text)):
        c.send(text[i])
        time.sleep(0.002)
    aua.check(not c.readable(), "a reply came before the line was complete")
    c.send("\n")
    check_echo(control.parse(c.readline()), json.loads(text), "split request")
    # Blank lines are skipped; CRLF is accepted.
    c.send('\n\n  \r\n{"seq":"crlf"}\r\n\n')
    check_echo(control.parse(c.readline()), {"seq": "crlf"}, "after blank lines")
    # A request across a read boundary, with UTF-8 in it.
    big = {"pad": "é" * 20000, "seq": "big"}
    c.send(json.dumps(big, ensure_ascii=False) + "\n")
    check_echo(control.parse(c.readline()), big, "request of 40 kB")
    c.close()
    ok("batches, splits, blank lines, CRLF")


def test_malformed(path):
    c = control.Client(path)
    cases = [
        ("hello", error_line("not JSON: invalid token near 'hello' at column 5")),
        ('{"command":', error_line("not JSON: unexpected token near end of file "
                                   "at column 11")),
        ('{"a":1}{"b":2}', error_line("not JSON: end of file expected near '{' "
                                      "at column 8")),
        ('{"a":1,"a":2}', error_line("not JSON: duplicate object key near '\"a\"' "
                                     "at column 10")),
        ("[1,2]", error_line("a request is a JSON object, not an array")),
        ("42", error_line("a request is a JSON object, not a number")),
        ('"status"', error_line("a request is a JSON object, not a string")),
        ("null", error_line("a request is a JSON object, not true, false or null")),
    ]
    for sent, expected in cases:
        c.send(sent + "\n")
        aua.check_equal(c.readline(), expected, "reply to %r" % sent)
    # Bytes that are not UTF-8: the error quotes them, and must still be JSON.
    c.send(b'{"a":"\xff\x1b"}\n')
    reply = control.parse(c.readline())
    aua.check(reply["ok"] is False and reply["error"].startswith("not JSON: "),
              "reply to invalid UTF-8: %r" % reply)
    c.send(b"\xff\xfe\x00garbage\n")
    aua.check(control.parse(c.readline())["ok"] is False, "reply to binary junk")
    # Nesting deeper than the parser allows: an error, not a crash.
    c.send("[" * 60000 + "\n")
    reply = control.parse(c.readline())
    aua.check(reply["ok"] is False and "not JSON" in reply["error"],
              "reply to deep nesting: %r" % reply)
    # The connection survived all of it.
    check_echo(c.request('{"seq":"after"}'), {"seq": "after"}, "after errors")
    c.close()
    ok("not JSON, not an object, invalid UTF-8, deep nesting: error replies")


def test_hangup(path):
    """Clients that leave without reading: the server's writes meet EPIPE or
    ECONNRESET, never SIGPIPE (control-echo leaves SIGPIPE at its default:
    stop_clean would see it killed)."""
    other = control.Client(path)
    for i in range(20):
        c = control.Client(path)
        c.send('{"seq":%d}\n' % i * 200)
        c.close()
        check_echo(other.request('{"seq":%d}' % i), {"seq": i}, "next to leavers")
    other.close()
    ok("clients that leave before their replies")


def test_line_limit(path, d):
    other = control.Client(path)
    # Exactly the limit is a request; one byte more is not.
    head, tail = '{"pad":"', '"}'
    exact = head + "x" * (LIMIT - len(head) - len(tail)) + tail
    aua.check_equal(len(exact), LIMIT, "length of the test line")
    c = control.Client(path)
    reply = c.request(exact)
    aua.check(reply.get("ok") is True and len(reply["pad"]) == len(exact) - 10,
              "a line of exactly %d bytes is served" % LIMIT)
    c.send(exact[:-2] + 'x"}\n')
    aua.check_equal(c.readline(), error_line(
        "request too long (limit 65536 bytes)"), "a line of %d bytes" % (LIMIT + 1))
    c.wait_closed()

    # 10 MB in one line, from a thread: the server answers and closes while
    # we are still sending, and serves others all along.
    c = control.Client(path)
    sender_done = threading.Event()

    def flood():
        chunk = b"x" * (1 << 20)
        for _ in range(10):
            if not c.send(chunk):
                break
        c.send(b"\n")
        sender_done.set()
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    check_echo(other.request('{"seq":"during"}'), {"seq": "during"},
               "another client while the 10 MB line comes")
    aua.check_equal(c.readline(10), error_line(
        "request too long (limit 65536 bytes)"), "reply to a 10 MB line")
    c.wait_closed()
    aua.check(sender_done.wait(daemon.timeout(10)), "the 10 MB sender is stuck")
    check_echo(other.request('{"seq":"after"}'), {"seq": "after"},
               "another client after the 10 MB line")
    aua.wait_until(lambda: len(re.findall(
        r"control: pid \d+ uid 0 sent a request longer than 65536 bytes: closed",
        d.stderr())) == 2, daemon.timeout(5), "two 'longer than' log lines")
    other.close()
    ok("65536 bytes served, 65537 and 10 MB refused and closed, others served")


def test_not_reading(path, d):
    """A client that sends and never reads: its replies pile up to 1 MiB,
    then it is dropped; the daemon never waits for it."""
    hog = control.Client(path)
    other = control.Client(path)
    line = (json.dumps({"pad": "y" * 50000}) + "\n").encode()

    def pour():
        for _ in range(80):             # 4 MB of replies
            if not hog.send(line):
                return
    t = threading.Thread(target=pour, daemon=True)
    t.start()
    for i in range(20):
        check_echo(other.request('{"seq":%d}' % i), {"seq": i},
                   "a reading client next to one that does not read")
    aua.wait_until(lambda: re.search(
        r"control: pid \d+ uid 0 does not read its replies \(\d+ bytes waiting\): "
        r"dropped", d.stderr()), daemon.timeout(10), "the drop of the client")
    t.join(daemon.timeout(10))
    aua.check(not t.is_alive(), "the sender still blocks: was it dropped?")
    got = hog.wait_closed(10)
    # what the kernel had queued when it was dropped, far from all 4 MB
    aua.check(got < 2 * 1024 * 1024, "it read %d bytes: not a drop" % got)
    check_echo(other.request('{"seq":"after"}'), {"seq": "after"}, "after the drop")
    other.close()
    ok("a client that never reads is dropped past 1 MiB; others unaffected")


def test_idle(tmp):
    idle = daemon.timeout(1.0)
    path = os.path.join(tmp, "idle")
    d = control.start_echo(path, "--idle", "%g" % idle)
    silent = control.Client(path)
    dribble = control.Client(path)
    busy = control.Client(path)
    # control-echo answers with the request plus "ok": a watcher from then on.
    watcher = control.Client(path)
    check_echo(watcher.request('{"command":"watch","watching":true}'),
               {"command": "watch", "watching": True}, "the watch")
    stop = threading.Event()

    def drip():
        # bytes and blank lines but never a request: no reprieve
        while not stop.is_set():
            if not dribble.send(" ") or not dribble.send("\n"):
                return
            time.sleep(idle / 10)
    t = threading.Thread(target=drip, daemon=True)
    t.start()
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < 2.5 * idle:
        check_echo(busy.request('{"seq":%d}' % n), {"seq": n},
                   "requests while others idle")
        if time.monotonic() - start < 0.5 * idle:
            aua.check(not silent.readable(), "the silent client was closed early")
        if n == 6:
            # A request from a watcher does not give it back an idle timeout.
            check_echo(watcher.request('{"seq":"w"}'), {"seq": "w"}, "a watcher's request")
        n += 1
        time.sleep(idle / 5)
    silent.wait_closed(0.1)
    dribble.wait_closed(0.1)
    stop.set()
    check_echo(busy.request('{"seq":"last"}'), {"seq": "last"},
               "a client sending a request now and then stays")
    aua.check(not watcher.readable(), "a watcher silent for longer than the idle time stays")
    err = daemon.stop_clean(d)
    lines = re.findall(r"control: pid \d+ uid 0 sent no request for %g s: closed" % idle,
                       err)
    aua.check_equal(len(lines), 2, "idle log lines in:\n%s" % err)
    ok("silent and dribbling clients closed after the idle time, a busy one and a watcher "
       "kept")


def test_many_clients(tmp):
    path = os.path.join(tmp, "many")
    d = control.start_echo(path)
    clients = [control.Client(path) for _ in range(100)]
    for c in clients:
        c.send('{"command":"status"}\n')
    served, refused = [], []
    for c in clients:
        line = c.readline(10)
        if line == error_line("too many clients (limit 64)"):
            refused.append(c)
        else:
            check_echo(control.parse(line), {"command": "status"}, "a served client")
            served.append(c)
    aua.check_equal((len(served), len(refused)), (64, 36), "served and refused")
    for c in refused:
        c.wait_closed()
    for c in served:
        check_echo(c.request('{"again":1}'), {"again": 1}, "served clients stay")
        c.close()

    # The slots free up as clients leave.
    def all_served():
        batch = [control.Client(path) for _ in range(64)]
        lines = []
        for c in batch:
            c.send('{"x":1}\n')
        for c in batch:
            lines.append(c.readline(10))
            c.close()
        return all(control.parse(ln).get("ok") for ln in lines)
    aua.wait_until(all_served, daemon.timeout(10), "64 slots free again")
    err = daemon.stop_clean(d)
    aua.check(len(re.findall(r"control: refused pid \d+ uid 0: too many clients "
                             r"\(limit 64\)", err)) >= 36, "refusals logged:\n" + err)
    ok("100 clients: 64 served, 36 refused with an error line, slots reused")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_fd_exhaustion(tmp):
    """Out of file descriptors, accept() fails while the listener stays
    readable: the server must rest instead of spinning, and take the waiting
    clients once descriptors are free.  (Not under valgrind: it needs
    descriptors of its own.)"""
    path = os.path.join(tmp, "few-fds")
    d = aua.Daemon(["prlimit", "--nofile=12:12", control.echo_binary(), path],
                   name="control-echo")
    d.wait_ready(5)
    clients = [control.Client(path) for _ in range(20)]
    for c in clients:
        c.send('{"command":"status"}\n')
    # Hold every descriptor the server could get for a while: a server
    # that spins on EMFILE burns this second of CPU.
    time.sleep(1.0)
    aua.check(0 < sum(c.readable() for c in clients) < 20,
              "some clients served, not all: %s" % d.stderr())
    pending = list(clients)
    deadline = time.monotonic() + 15
    while pending:
        aua.check(time.monotonic() < deadline, "%d clients never served:\n%s"
                  % (len(pending), d.stderr()))
        for c in list(pending):
            if c.readable():
                check_echo(control.parse(c.readline()), {"command": "status"},
                           "a client served when descriptors are scarce")
                c.close()
                pending.remove(c)
        time.sleep(0.02)
    cpu = cpu_seconds(d.pid)
    err = daemon.stop_clean(d)
    emfile = err.count("control: cannot accept a client; not listening for 1 s: Too "
                       "many open files")
    aua.check(1 <= emfile <= 10, "EMFILE logged %d times:\n%s" % (emfile, err[-2000:]))
    aua.check(cpu < 0.5, "the server used %.2f s of CPU: it spins on EMFILE" % cpu)
    ok("out of descriptors: the listener rests, every client is served in the end")


def test_path_guards(tmp):
    # A socket nobody listens on (a daemon killed with SIGKILL): replaced.
    stale = os.path.join(tmp, "stale")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    d = control.start_echo(stale)
    check_echo(control.Client(stale).request('{"a":1}'), {"a": 1}, "on a stale path")
    aua.wait_until(lambda: "control: removed the stale socket %s" % stale in d.stderr(),
                   daemon.timeout(5), "the removal of the stale socket in the log")

    # A live daemon's socket: the second server refuses and the first serves on.
    rc, err = control.run_echo_to_exit(stale)
    aua.check_equal(rc, 1, "exit of a second server on a live socket")
    aua.check("control: another daemon answers on %s: not replacing it" % stale in err,
              "refusal logged: %s" % err)
    check_echo(control.Client(stale).request('{"a":2}'), {"a": 2},
               "the first server after the second gave up")
    daemon.stop_clean(d)

    # Anything that is not a socket stays.
    plain = os.path.join(tmp, "plain")
    with open(plain, "w") as f:
        f.write("precious\n")
    rc, err = control.run_echo_to_exit(plain)
    aua.check_equal(rc, 1, "exit on a regular file")
    aua.check("control: %s exists and is not a socket: not replacing it" % plain in err,
              "refusal logged: %s" % err)
    with open(plain) as f:
        aua.check_equal(f.read(), "precious\n", "the file is untouched")

    # A path longer than sun_path.
    rc, err = control.run_echo_to_exit("/tmp/" + "x" * 120)
    aua.check(rc == 1 and "too long" in err, "long path: %s %s" % (rc, err))
    ok("stale socket replaced; live socket, regular file, long path refused")


def test_peers(tmp):
    path = os.path.join(tmp, "root-only")
    d = control.start_echo(path)
    request = '{"command":"status"}'
    # As nobody, the file mode alone keeps it out ...
    rc, line, err = control.raw_request_as(
        ["--reuid=nobody", "--regid=nogroup", "--clear-groups"], path, request)
    aua.check(rc != 0 and "PermissionError" in err,
              "nobody connected to a 0600 socket: %s %r %s" % (rc, line, err))
    # ... and with the file opened up, SO_PEERCRED still does.
    os.chmod(path, 0o666)
    rc, line, err = control.raw_request_as(
        ["--reuid=nobody", "--regid=nogroup", "--clear-groups"], path, request)
    aua.check_equal(line, error_line("permission denied: uid 65534 is not allowed to "
                                     "control auto-usb-attach"),
                    "reply to nobody (%s)" % err)
    aua.wait_until(lambda: re.search(r"control: refused pid \d+ uid 65534 gid 65534: "
                                     r"not root", d.stderr()),
                   daemon.timeout(5), "the refusal in the log")
    check_echo(control.Client(path).request(request), json.loads(request),
               "root after the refusal")
    daemon.stop_clean(d)
    ok("nobody refused (file mode, then SO_PEERCRED), logged")

    users = grp.getgrnam("users").gr_gid
    path = os.path.join(tmp, "group")
    d = control.start_echo(path, "--group", "users")
    st = os.lstat(path)
    aua.check_equal((oct(st.st_mode & 0o7777), st.st_uid, st.st_gid),
                    (oct(0o660), 0, users), "mode and owner with a group")
    for creds, gid in ((["--regid=users", "--clear-groups"], users),
                       (["--regid=nogroup", "--groups=users"], 65534)):
        rc, line, err = control.raw_request_as(["--reuid=nobody"] + creds, path, request)
        reply = control.parse(line) if line else aua.fail("no reply: %s" % err)
        aua.check_equal((reply.get("ok"), reply.get("uid"), reply.get("gid")),
                        (True, NOBODY_UID, gid), "a member of the group (%s)" % creds)
    os.chmod(path, 0o666)
    rc, line, err = control.raw_request_as(
        ["--reuid=nobody", "--regid=nogroup", "--groups=nogroup"], path, request)
    aua.check_equal(line, error_line("permission denied: uid 65534 is not allowed to "
                                     "control auto-usb-attach"), "not a member")
    aua.wait_until(lambda: re.search(r"control: refused pid \d+ uid 65534 gid 65534: not "
                                     r"root and not in group %d" % users, d.stderr()),
                   daemon.timeout(5), "the refusal of a non-member in the log")
    daemon.stop_clean(d)
    ok("with a group: 0660, primary and supplementary members allowed, others not")


def test():
    tmp = aua.tempdir()
    # nobody must reach the sockets in it for the refusal tests
    os.chmod(tmp, 0o755)
    test_socket_file(tmp)
    path = os.path.join(tmp, "control")
    d = control.start_echo(path)
    test_framing(path)
    test_malformed(path)
    test_hangup(path)
    test_line_limit(path, d)
    test_not_reading(path, d)
    daemon.stop_clean(d)
    test_idle(tmp)
    test_many_clients(tmp)
    test_fd_exhaustion(tmp)
    test_path_guards(tmp)
    test_peers(tmp)


if __name__ == "__main__":
    aua.main(test)

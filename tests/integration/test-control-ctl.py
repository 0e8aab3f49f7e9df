#!/usr/bin/python3
"""auto-usb-attachctl against tests/fixtures/control-echo (canned replies in
the daemon's formats, or the request echoed back) and against fake servers
that misbehave.  It owns the proof of the client's contract: the request
each command sends, the tables it prints (with device strings escaped),
--json passing the reply through, and the exit status: 0 done, 1 the daemon
said no, 2 usage, 3 cannot connect, 4 no reply or a bad one.

Run: /usr/bin/python3 tests/integration/test-control-ctl.py
(control-echo and ctl/auto-usb-attachctl from the current directory, as
make check leaves them, or CONTROL_ECHO and AUA_CTL).
"""

import json
import os
import socket
import threading

import aua
import control

STATUS = {"ok": True, "version": "0.1.0", "policy": "/etc/auto-usb-attach/policy.yaml",
          "policy_loaded": "2026-11-25T01:02:03Z", "backend": "libxl", "uptime": 90061,
          "devices": {"total": 6, "attached": 2, "waiting": 1, "failed": 0, "held": 1, "ignored": 1,
                      "unmatched": 1},
          "domains": 2}

YUBIKEY = {"port": "1-1.2", "path": "pci-0000:00:14.0-usb-0:1.2", "busnum": 1, "devnum": 5, "id": "1050:0407",
           "serial": "0012345", "manufacturer": "Yubico", "product": "YubiKey OTP",
           "decision": "attach", "rule": 1, "rule_name": "keys", "domain": "vault",
           "state": "attached", "controller": 0, "guest_port": 1, "override": False}
EVIL = {"port": "1-1.3", "path": None, "busnum": 1, "devnum": 6, "id": "046d:c31c",
        "serial": "s\u0085n", "manufacturer": None, "product": "Evil\x1b[2J\nline",
        "decision": "none", "rule": None, "rule_name": None, "domain": None,
        "state": "unmatched", "controller": None, "guest_port": None, "override": True}
DEVICES = {"ok": True, "devices": [YUBIKEY, EVIL]}

DOMAINS = {"ok": True, "domains": [
    {"name": "vault", "running": True, "domid": 7, "queue": 0,
     "controllers": [{"id": 0, "version": 2, "ports": 6, "used": 1},
                     {"id": 1, "version": 3, "ports": 8, "used": 0}]},
    {"name": "win10", "running": False, "domid": None, "controllers": [], "queue": 2}]}

EXPLAIN = {"ok": True, "device": YUBIKEY, "decision": "attach", "rule": 2,
           "rules": [{"rule": 1, "name": None, "matched": False,
                      "reason": "vendor 046d does not match 1050"},
                     {"rule": 2, "name": "keys", "matched": True,
                      "reason": "every key matches"},
                     {"rule": 3, "name": "all", "matched": True, "reason": "no keys"}]}

MESSAGE = {"ok": True, "message": "1-1.2 goes to vault until it is unplugged"}
RELOAD_ERROR = {"ok": False, "error": "the policy has errors; the one loaded before "
                "stays in force\x1b]0;",
                "errors": ["/etc/p.yaml:3:5: unknown key \"foo\""]}


def ok(what):
    print("ok: %s" % what, flush=True)


def canned_args():
    args = []
    for command, reply in (("status", STATUS), ("devices", DEVICES), ("domains", DOMAINS),
                           ("explain", EXPLAIN), ("attach", MESSAGE),
                           ("reload", RELOAD_ERROR)):
        args += ["--reply", "%s=%s" % (command, json.dumps(reply))]
    return args


def expect(result, rc, stdout=None, stderr=None, what=""):
    got_rc, out, err, _ = result
    aua.check(got_rc == rc, "%s: exit %s, expected %s; stdout:\n%s\nstderr:\n%s"
              % (what, got_rc, rc, out, err))
    if stdout is not None:
        aua.check_equal(out, stdout, "%s: stdout" % what)
    if stderr is not None:
        aua.check_equal(err, stderr, "%s: stderr" % what)
    return out, err


def test_requests(tmp):
    """Each command's request, seen through the echo with --json."""
    path = os.path.join(tmp, "echo")
    d = control.start_echo(path)
    cases = [
        (["status"], {"command": "status"}),
        (["devices"], {"command": "devices"}),
        (["domains"], {"command": "domains"}),
        (["explain", "1-1.2"], {"command": "explain", "device": "1-1.2"}),
        (["attach", "1050:0407", "vault"],
         {"command": "attach", "device": "1050:0407", "domain": "vault"}),
        (["detach", "1:5"], {"command": "detach", "device": "1:5"}),
        (["reload"], {"command": "reload"}),
        (["log-level", "debug"], {"command": "log-level", "level": "debug"}),
        (["explain", "é\"\\"], {"command": "explain", "device": "é\"\\"}),
    ]
    for args, request in cases:
        # options after the command work too
        out, _ = expect(control.run_ctl("--socket", path, *args, "--json"), 0,
                        what="--json %s" % args)
        aua.check(out.endswith("\n") and out.count("\n") == 1, "one line: %r" % out)
        reply = json.loads(out)
        aua.check_equal({k: v for k, v in reply.items()
                         if k not in ("ok", "uid", "gid", "pid")},
                        request, "request of %s" % args)
    control.daemon.stop_clean(d)
    ok("the request of every command")


def test_tables(tmp):
    path = os.path.join(tmp, "canned")
    d = control.start_echo(path, *canned_args())
    s = ["-s", path]

    expect(control.run_ctl(*s, "status"), 0, stdout=(
        "version:  0.1.0\n"
        "backend:  libxl\n"
        "policy:   /etc/auto-usb-attach/policy.yaml (loaded 2026-11-25T01:02:03Z)\n"
        "uptime:   1d 1h 1m 1s\n"
        "devices:  6 (2 attached, 1 waiting, 0 failed, 1 held, 1 ignored, 1 unmatched)\n"
        "domains:  2\n"), stderr="", what="status")

    expect(control.run_ctl(*s, "devices"), 0, stdout=(
        "PORT   PATH                        BUS:DEV  ID         SERIAL      STATE        "
        "       DOMAIN  CTRL:PORT  RULE  PRODUCT\n"
        "1-1.2  pci-0000:00:14.0-usb-0:1.2  1:5      1050:0407  0012345     attached     "
        "       vault   0:1        1     Yubico YubiKey OTP\n"
        "1-1.3  -                           1:6      046d:c31c  s\\xc2\\x85n  unmatched (ma"
        "nual)  -       -          -     Evil\\x1b[2J\\x0aline\n"), stderr="", what="devices")

    expect(control.run_ctl(*s, "domains"), 0, stdout=(
        "NAME   STATE        DOMID  QUEUE  CONTROLLERS (id:version used/ports)\n"
        "vault  running      7      0      0:v2 1/6, 1:v3 0/8\n"
        "win10  not running  -      2      none\n"), stderr="", what="domains")

    expect(control.run_ctl(*s, "explain", "1-1.2"), 0, stdout=(
        "device 1-1.2 (1:5) 1050:0407 Yubico YubiKey OTP, serial 0012345\n"
        "path: pci-0000:00:14.0-usb-0:1.2\n"
        "state: attached (controller:port 0:1)\n"
        "decision: attach -> vault (rule 2 \"keys\")\n"
        "  rule 1: does not match: vendor 046d does not match 1050\n"
        "* rule 2 \"keys\": matches: every key matches\n"
        "  rule 3 \"all\": matches: no keys\n"), stderr="", what="explain")

    expect(control.run_ctl(*s, "attach", "1-1.2", "vault"), 0,
           stdout="1-1.2 goes to vault until it is unplugged\n", stderr="",
           what="attach")

    # --json passes the reply through, whatever it says.
    for command, reply in (("devices", DEVICES), ("status", STATUS)):
        out, _ = expect(control.run_ctl(*s, "--json", command), 0, what="--json")
        aua.check_equal(json.loads(out), reply, "--json %s" % command)
        aua.check(out.count("\n") == 1 and "\x1b" not in out, "one clean line: %r" % out)
    control.daemon.stop_clean(d)
    ok("status, devices, domains, explain, message: tables with strings escaped")


def test_daemon_errors(tmp):
    path = os.path.join(tmp, "canned-errors")
    d = control.start_echo(path, *canned_args())
    expect(control.run_ctl("-s", path, "reload"), 1, stdout="", stderr=(
        "auto-usb-attachctl: the policy has errors; the one loaded before stays in "
        "force\\x1b]0;\n"
        "/etc/p.yaml:3:5: unknown key \"foo\"\n"), what="an error reply")
    out, _ = expect(control.run_ctl("-s", path, "--json", "reload"), 1, stderr="",
                    what="an error reply with --json")
    aua.check_equal(json.loads(out), RELOAD_ERROR, "--json error reply")

    # Refused by the server: too many clients, then a peer it does not know.
    held = [control.Client(path) for _ in range(64)]
    for c in held:
        c.request('{"hold":1}')
    expect(control.run_ctl("-s", path, "status"), 1, stdout="",
           stderr="auto-usb-attachctl: too many clients (limit 64)\n",
           what="the 65th client")
    for c in held:
        c.close()
    os.chmod(path, 0o666)
    expect(control.run_ctl("-s", path, "status", user="nobody"), 1, stdout="", stderr=(
        "auto-usb-attachctl: permission denied: uid 65534 is not allowed to control "
        "auto-usb-attach\n"), what="nobody")
    os.chmod(path, 0o600)
    _, err = expect(control.run_ctl("-s", path, "status", user="nobody"), 3, stdout="",
                    what="nobody on a 0600 socket")
    aua.check_equal(err, "auto-usb-attachctl: cannot connect to %s: Permission denied "
                    "(the socket is root's, or its group's)\n" % path, "nobody's message")
    control.daemon.stop_clean(d)
    ok("exit 1 with the daemon's error on stderr; refusals; exit 3 for nobody")


def test_connect_errors(tmp):
    missing = os.path.join(tmp, "missing")
    expect(control.run_ctl("-s", missing, "status"), 3, stdout="", stderr=(
        "auto-usb-attachctl: cannot connect to %s: No such file or directory "
        "(is the daemon running?)\n" % missing), what="no socket")
    stale = os.path.join(tmp, "stale")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    expect(control.run_ctl("-s", stale, "status"), 3, stdout="", stderr=(
        "auto-usb-attachctl: cannot connect to %s: Connection refused "
        "(is the daemon running?)\n" % stale), what="a stale socket")

    # A server that accepts nobody: a full backlog makes connect() wait.
    full = os.path.join(tmp, "full")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(full)
    srv.listen(0)
    aua.on_cleanup(srv.close)
    fillers = []
    for _ in range(4):
        f = socket.socket(socket.AF_UNIX)
        f.setblocking(False)
        aua.on_cleanup(f.close)
        fillers.append(f)
        try:
            f.connect(full)
        except BlockingIOError:
            break
    rc, out, err, took = control.run_ctl("-s", full, "--timeout", "0.5", "status")
    aua.check_equal((rc, out), (3, ""), "exit of a connect that times out (%s)" % err)
    aua.check_equal(err, "auto-usb-attachctl: cannot connect to %s: the daemon accepted "
                    "no connection within 0.5 s\n" % full, "its message")
    aua.check(took < control.daemon.timeout(5), "it took %.1f s" % took)
    ok("exit 3: no socket, a stale one, a full backlog")


def fake_server(path, answer):
    """Accepts one client, keeps what it sent, and answers with answer(conn)."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    got = {}
    release = threading.Event()

    def run():
        conn, _ = srv.accept()
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        got["request"] = data
        answer(conn)
        release.wait(30)
        conn.close()
        srv.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    aua.on_cleanup(release.set)
    return got, release


def test_bad_replies(tmp):
    cases = [
        ("closes", lambda c: c.shutdown(socket.SHUT_WR),
         "auto-usb-attachctl: {path} closed the connection without a reply\n"),
        ("half a line", lambda c: (c.sendall(b'{"ok":true'), c.shutdown(socket.SHUT_WR)),
         "auto-usb-attachctl: {path} closed the connection without a reply\n"),
        ("garbage", lambda c: c.sendall(b"garbage\n"),
         "auto-usb-attachctl: malformed reply from {path}: '[' or '{{' expected near "
         "'garbage'\n"),
        ("escapes", lambda c: c.sendall(b"{\"ok\":\x1b[2J}\n"),
         "auto-usb-attachctl: malformed reply from {path}: invalid token near "
         "'\\x1b'\n"),
        ("an array", lambda c: c.sendall(b"[1]\n"),
         "auto-usb-attachctl: malformed reply from {path}: not an object with "
         "\"ok\" true or false\n"),
        ("no ok", lambda c: c.sendall(b'{"message":"hi"}\n'),
         "auto-usb-attachctl: malformed reply from {path}: not an object with "
         "\"ok\" true or false\n"),
        ("silence", lambda c: None,
         "auto-usb-attachctl: no reply from {path} within 0.5 s\n"),
    ]
    for i, (name, answer, message) in enumerate(cases):
        path = os.path.join(tmp, "fake%d" % i)
        got, release = fake_server(path, answer)
        rc, out, err, took = control.run_ctl("-s", path, "-t", "0.5", "status")
        release.set()
        aua.check_equal((rc, out, err), (4, "", message.format(path=path)), name)
        aua.check(took < control.daemon.timeout(5), "%s took %.1f s" % (name, took))
        aua.check_equal(got.get("request"), b'{"command":"status"}\n',
                        "what the client sent")
    ok("exit 4: no reply, half a line, not JSON, not an object, no ok, a timeout")


def test_usage():
    cases = [
        ([], "no command given"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["explain"], "explain: expected 'explain DEVICE'"),
        (["attach", "1-1.2"], "attach: expected 'attach DEVICE DOMAIN'"),
        (["status", "extra"], "status: expected 'status'"),
        (["log-level"], "log-level: expected 'log-level LEVEL'"),
        (["--timeout", "soon", "status"],
         "--timeout soon: expected seconds, more than 0 and at most 86400"),
        (["--timeout", "0", "status"],
         "--timeout 0: expected seconds, more than 0 and at most 86400"),
        (["explain", b"\xff"], "explain: '\udcff' is not valid UTF-8"),
    ]
    for args, message in cases:
        _, err = expect(control.run_ctl(*args), 2, stdout="", what="usage %r" % args)
        first = err.split("\n", 1)[0]
        aua.check_equal(first, "auto-usb-attachctl: " + message.replace("\udcff", "\ufffd"),
                        "message for %r" % args)
        aua.check("Usage: auto-usb-attachctl" in err, "usage printed for %r" % args)
    _, err = expect(control.run_ctl("--bogus", "status"), 2, stdout="", what="--bogus")
    aua.check("Usage:" in err, "usage after an unknown option")
    out, _ = expect(control.run_ctl("--help"), 0, stderr="", what="--help")
    aua.check(out.startswith("Usage: auto-usb-attachctl") and
              "/run/auto-usb-attach/control" in out, "--help text:\n" + out)
    expect(control.run_ctl("--version"), 0, stdout="auto-usb-attachctl 0.1.0\n",
           stderr="", what="--version")
    ok("usage errors exit 2 with a usage message; --help, --version")


def test():
    tmp = aua.tempdir()
    os.chmod(tmp, 0o755)            # nobody must reach the sockets in it
    test_usage()
    test_requests(tmp)
    test_tables(tmp)
    test_daemon_errors(tmp)
    test_connect_errors(tmp)
    test_bad_replies(tmp)


if __name__ == "__main__":
    aua.main(test)

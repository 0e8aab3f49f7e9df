"""The control socket's limits against local users (control-echo: the
socket code alone):

- a reply larger than the output cap (a 3 MB "explain") reaches a client
  that reads it, even slowly: only what queues behind an unread reply is
  capped (test-control-socket.py's client that never reads is still
  dropped);
- one request per client per loop turn: a client that pipelines 200 costly
  requests (5 ms each) in one write does not make another client's request
  wait behind all of them;
- a member of the control group may hold 8 connections, no more;
- the last 4 of the 64 connections are kept for root: a group member
  cannot take them, root can."""

import json
import os
import subprocess
import time

import aua
import control
import daemon

# Opens N connections as whoever runs it, sends {"seq": i} on each, prints
# the first line each got back (JSON list), then holds them until stdin ends.
HOLDER = r"""
import json, socket, sys
n = int(sys.argv[2])
socks, lines = [], []
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sys.argv[1])
    try:
        s.sendall(json.dumps({"seq": i}).encode() + b"\n")
    except OSError:
        pass        # refused: the error line is there to read
    buf = b""
    try:
        while b"\n" not in buf:
            data = s.recv(4096)
            if not data:
                break
            buf += data
    except OSError:
        pass
    lines.append(buf.decode().split("\n")[0])
    socks.append(s)
print(json.dumps(lines), flush=True)
sys.stdin.read()
"""


class Holder:
    """n connections held by another process (as user: setpriv arguments)."""

    def __init__(self, path, n, setpriv=()):
        argv = (["setpriv"] + list(setpriv) if setpriv else []) + [
            "/usr/bin/python3", "-c", HOLDER, path, str(n)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=control.plain_env(), text=True)
        aua.on_cleanup(self.close)
        line = self.proc.stdout.readline()
        aua.check(line, "the holder printed nothing")
        self.lines = [json.loads(x) if x else None for x in json.loads(line)]

    def served(self):
        return sum(1 for x in self.lines if x and x.get("ok"))

    def errors(self):
        return [x["error"] for x in self.lines if x and not x.get("ok")]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)


NOBODY_IN_USERS = ["--reuid=nobody", "--regid=users", "--clear-groups"]


def test_big_reply(path, d):
    c = control.Client(path)
    aua.check(c.send(json.dumps({"command": "big", "bytes": 3000000}) + "\n"), "sent")
    time.sleep(0.5)     # reads late, then all of it
    reply = control.parse(c.readline(20))
    aua.check_equal(len(reply.get("pad", "")), 3000000, "the 3 MB reply, whole")
    aua.check_equal(c.request('{"after":1}').get("after"), 1, "the client is still served")
    aua.check("does not read its replies" not in d.stderr(), "the reader was dropped")
    c.close()


def test_one_per_turn(tmp):
    path = os.path.join(tmp, "slow")
    d = control.start_echo(path, "--slow", "5")
    greedy = control.Client(path)
    other = control.Client(path)
    burst = "".join(json.dumps({"count": True, "a": i}) + "\n" for i in range(200))
    aua.check(greedy.send(burst), "the burst")
    time.sleep(0.1)
    start = time.monotonic()
    reply = other.request(json.dumps({"count": True, "b": 1}), 20)
    waited = time.monotonic() - start
    print("another client's request: answered as number %d, after %.3f s"
          % (reply["n"], waited))
    aua.check(reply["n"] <= 100, "answered after %d of the burst's 200" % (reply["n"] - 1))
    for i in range(200):
        aua.check_equal(control.parse(greedy.readline(20)).get("a"), i, "the burst in order")
    greedy.close()
    other.close()
    daemon.stop_clean(d)


def test_per_uid_and_root_slots(tmp):
    path = os.path.join(tmp, "group")
    d = control.start_echo(path, "--group", "users", "--idle", "0")
    many = Holder(path, 12, NOBODY_IN_USERS)
    aua.check_equal(many.served(), 8, "a group member's connections")
    aua.check_equal(many.errors(), ["too many clients of uid 65534 (limit 8)"] * 4,
                    "the refusals")
    many.close()
    time.sleep(daemon.timeout(0.5))     # the server sees them go

    roots = Holder(path, 56)
    aua.check_equal(roots.served(), 56, "root's connections")
    member = Holder(path, 8, NOBODY_IN_USERS)
    aua.check_equal(member.served(), 4, "a member's connections once 56 are taken")
    aua.check_equal(member.errors(), ["too many clients (the last 4 are kept for root)"] * 4,
                    "the refusals")
    last = Holder(path, 5)
    aua.check_equal(last.served(), 4, "root takes the last 4")
    aua.check_equal(last.errors(), ["too many clients (limit 64)"], "then no more")
    for h in (roots, member, last):
        h.close()
    daemon.stop_clean(d)


def test():
    tmp = aua.tempdir()
    os.chmod(tmp, 0o755)    # nobody reaches the sockets in it
    path = os.path.join(tmp, "control")
    d = control.start_echo(path)
    test_big_reply(path, d)
    daemon.stop_clean(d)
    test_one_per_turn(tmp)
    test_per_uid_and_root_slots(tmp)


if __name__ == "__main__":
    aua.main(test)

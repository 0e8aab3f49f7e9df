"""A watcher that never reads: the dry-run daemon, under a storm of plugs
and unplugs (30 devices, 20 rounds), fills the watcher's socket and then
its bounded queue (control.h: CONTROL_WATCH_MAX), drops it with a log line
and goes on: every decision reaches stdout, a reading watcher beside it
keeps up to the last event, and the daemon still answers.  The dropped
watcher finds its stream closed once it reads what it was sent."""

import json
import os
import socket

import aua
import ctl
import daemon
import devices

POLICY = """\
version: 1
domains:
  win10:
    controller: { version: 3, ports: 15, max: 4 }
rules:
  - match: { hub: "1-1.4" }
    domain: win10
"""

N_DEVICES = 30
ROUNDS = 20


class Reader:
    """A watcher that reads every line it is sent."""

    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        aua.on_cleanup(self.sock.close)
        self.sock.connect(path)
        self.sock.sendall(b'{"command":"watch"}\n')
        self.buf = b""
        self.timeout = timeout

    def drain(self):
        """The complete lines waiting now, without blocking."""
        self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not data:
                aua.fail("the reading watcher was dropped")
            self.buf += data
        return self._lines()

    def _lines(self):
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(x) for x in lines]

    def next(self):
        while b"\n" not in self.buf:
            self.sock.settimeout(self.timeout)
            data = self.sock.recv(65536)
            if not data:
                aua.fail("the reading watcher was dropped")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    sock = os.path.join(tmp, "control")
    tb = aua.Testbed()
    tb.load("hubs")
    for n in range(1, N_DEVICES + 1):
        tb.load_string(devices.storage_at(n, 20 + n))
    t = daemon.timeout(60)
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy,
                                   "--control-socket", sock), testbed=tb) as d:
        d.wait_ready(t)
        d.json_lines(N_DEVICES, t)
        mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        aua.on_cleanup(mute.close)
        mute.settimeout(t)
        mute.connect(sock)
        mute.sendall(b'{"command":"watch"}\n')
        reader = Reader(sock, t)
        aua.check_equal(reader.next(), {"ok": True, "watching": True}, "the reader watches")
        c = ctl.Control(sock)
        aua.wait_until(lambda: c("status")["watchers"] == 2, t, "two watchers")

        names = [tb.syspath("1-1.4.%d" % n) for n in range(1, N_DEVICES + 1)]
        events = []
        for _ in range(ROUNDS):
            for name in names:
                tb.uevent(name, "remove")
            for name in names:
                tb.uevent(name, "add")
            # The reader keeps up, so only the mute one piles up.
            events += reader.drain()
        lines = d.json_lines(2 * N_DEVICES * ROUNDS, t)
        aua.check_equal(lines[-1]["action"], "attach", "the last decision printed")
        aua.wait_until(lambda: "watcher pid" in d.stderr() and
                       "does not read its events" in d.stderr(), t, "the mute watcher dropped")
        aua.wait_until(lambda: c("status")["watchers"] == 1, t, "one watcher left")
        aua.check_equal(c("status")["devices"]["total"], N_DEVICES, "the daemon answers")

        # The reader gets every decision to the end, as stdout has them.
        while len([e for e in events if "action" in e]) < 2 * N_DEVICES * ROUNDS:
            events.append(reader.next())
        aua.check_equal([e for e in events if "action" in e], lines,
                        "the reader's decisions are stdout's")

        # The mute watcher's stream ends after what was queued before the drop.
        got = 0
        while True:
            data = mute.recv(65536)
            if not data:
                break
            got += len(data)
        aua.check(got > 0, "the mute watcher had events before it was dropped")
        print("mute watcher: %d bytes before it was dropped; reader: %d events" % (got, len(events)))
        mute.close()
        reader.sock.close()
        c.close()
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

"""What a real QEMU cannot show, with the QMP double and a hostile peer.

- The usb-host device_add as sent: hostbus and hostaddr JSON integers, port
  a string, on bus xenusb-<n>.0, after a controller made where none was
  (version 1: piix3-usb-uhci xenusb-0, which takes the full-speed key), from
  the double's command log.
- A host device another guest's QEMU says it holds (found in its QOM at
  connect, given there by hand) does not keep it from the guest the policy
  names: that is the other guest's word, and only the daemon's own record
  of what it attached counts (test-qmp-hostile.py has a guest lying).
- A peer that is not a sane QEMU: garbage, a message of the wrong shape, a
  reply to no command, an event of the wrong type, a line over 1 MiB, a
  qom-list that is no list.  Each is logged and the connection dropped and
  made again; the daemon never crashes.
- libxl's own qmp-libxl-<domid> socket is refused at start."""

import json
import os
import socket
import subprocess
import threading

import aua
import daemon
import qemu

RULES = """\
  - match: { id: "1050:0407" }
    domain: vault
  - match: { id: "046d:c31c" }
    domain: vault
"""
CLIENT = os.path.join(aua.FIXTURES, "xen", "qmp-client.py")


def client(sock, cmd, args):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    r = subprocess.run(["/usr/bin/python3", CLIENT, sock, cmd, json.dumps(args)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    aua.check(r.returncode == 0, "qmp-client %s: %s" % (cmd, r.stderr))


class Hostile:
    """A QMP server that misbehaves differently on each connection."""

    def __init__(self, path):
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.connections = 0
        self.done = threading.Event()
        self.held = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        aua.on_cleanup(self.close)

    def close(self):
        self.done.set()
        self.thread.join(5)
        for c in self.held:
            c.close()
        self.srv.close()

    @staticmethod
    def lines(conn):
        buf = b""
        while True:
            while b"\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)

    def handshake(self, conn, peripherals):
        conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        msgs = self.lines(conn)
        caps = next(msgs)
        conn.sendall(json.dumps({"return": {}, "id": caps["id"]}).encode() + b"\r\n")
        lst = next(msgs)
        conn.sendall(json.dumps({"return": peripherals, "id": lst["id"]}).encode() + b"\r\n")

    def serve(self, conn, n):
        if n == 1:
            conn.sendall(b'{"QMP": {}}\r\n}{ this is not json\r\n')
        elif n == 2:
            self.handshake(conn, [])
            conn.sendall(b'{"return": {}, "id": 999}\r\n{"return": {}, "id": "x"}\r\n')
            conn.sendall(b'{"event": 5, "data": []}\r\n')
        elif n == 3:
            self.handshake(conn, [])
            conn.sendall(b"[" * (1536 * 1024))
        elif n == 4:
            self.handshake(conn, "not a list")
        elif n == 5:
            conn.sendall(b'{"QMP": 3}\r\n')
        else:
            self.handshake(conn, [{"name": 7, "type": []}, {"name": "x"}, "junk"])
            self.held.append(conn)
            return
        # let the daemon see it and close its end
        conn.settimeout(5)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        conn.close()

    def run(self):
        while not self.done.is_set():
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                self.serve(conn, self.connections)
            except (OSError, StopIteration, ValueError):
                conn.close()


def test():
    tmp = aua.tempdir()
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard"):
        tb.load(f)
    t = daemon.timeout(15)

    # libxl's socket: refused before anything is opened.
    bad = daemon.write_policy(tmp, "bad.yaml", qemu.policy(
        [("vault", "/run/xen/qmp-libxl-7", None)], RULES))
    with aua.Daemon(qemu.daemon_args(tmp, bad), testbed=tb) as d:
        d.proc.wait(t)
        rc, err = d.stop()
    aua.check_equal(rc, 1, "exit status with libxl's socket")
    aua.check("is libxl's own socket" in err, "the refusal is explained: %s" % err)

    # The vault's QEMU starts only once the daemon knows what the other one
    # holds: the two connections would race otherwise.
    vault = qemu.Guest(tmp, "vault", kind="double")
    other = qemu.Guest(tmp, "other", kind="double",
                       double_args=["--preset", "xenusb-0=usb-ehci"]).start()
    # The other guest's QEMU holds the keyboard already (someone did it by hand).
    client(other.sock, "device_add", {"driver": "usb-host", "id": "xenusb-1-6",
                                      "bus": "xenusb-0.0", "port": "3",
                                      "hostbus": 1, "hostaddr": 6})
    hostile = Hostile(os.path.join(tmp, "hostile.qmp"))
    policy = daemon.write_policy(tmp, "policy.yaml", qemu.policy(
        [("vault", vault.sock, {"version": 1}), ("other", other.sock, None),
         ("evil", hostile.path, None)], RULES))
    with aua.Daemon(qemu.daemon_args(tmp, policy), testbed=tb) as d:
        d.wait_ready(t)
        qemu.wait_log(d, r"other: guest is running", t)
        vault.start()
        pos = qemu.wait_log(d, r"vault: 1-1\.2 attached at controller 0 port 1", t)
        qemu.wait_log(d, r"vault: 1-1\.3 attached at controller 0 port 2", t)
        aua.check("held by other's QEMU" not in d.stderr(), "the other guest's word counted")
        adds = [c["arguments"] for c in vault.commands("device_add")]
        aua.check_equal(adds, [{"driver": "piix3-usb-uhci", "id": "xenusb-0"},
                               {"driver": "usb-host", "id": "xenusb-1-5",
                                "bus": "xenusb-0.0", "port": "1", "hostbus": 1,
                                "hostaddr": 5},
                               {"driver": "usb-host", "id": "xenusb-1-6",
                                "bus": "xenusb-0.0", "port": "2", "hostbus": 1,
                                "hostaddr": 6}],
                        "vault's device_adds: integers for hostbus/hostaddr")
        aua.check_equal([c["arguments"] for c in other.commands("device_add")][1:], [],
                        "nothing added to the other guest")
        aua.check(vault.commands("qmp_capabilities"), "the handshake")
        aua.check_equal(vault.commands()[1]["execute"], "qom-list", "discovery first")

        for line in (r"evil: QMP .*: a message that is not QMP: dropping the connection",
                     r"evil: QMP .*: a reply to no command of ours: ignored",
                     r"evil: QMP .*: a message longer than 1 MiB: dropping the connection",
                     r"evil: QMP qom-list /machine/peripheral: not a list",
                     r"evil: guest is running \(domid 65538\)"):
            qemu.wait_log(d, line, t)
        aua.wait_until(lambda: hostile.connections >= 6, t, "the sixth connection")
        qemu.wait_log(d, r"evil: QMP .*: 0 USB controller\(s\), 0 other device\(s\)", t)
        aua.check(d.running(), "the daemon survived the hostile peer")
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

"""A guest's QEMU is hostile: a guest can take over its device model, so
everything read from a QMP socket is the guest's word.  Scripted peers,
one per guest, each in one way:

- repeat: its qom-list names the same usb-host 20,000 times.  Looked at
  once: at most 4 qom-get for it (the old daemon sent 80,000 and stalled).
  It also claims to hold bus 1 device 5, the key the policy gives the
  vault: the vault gets it all the same (who holds a device is the
  daemon's record, not a guest's word).
- flood: answers every command, and meanwhile forges RESET events as fast
  as it can for 4 s, each time forgetting the keyboard given to it (so the
  daemon adds it again and records that).  Discoveries are at most about
  one a second; the log lines it causes, the device_adds and the state
  file's rewrites are bounded; the keyboard is there once at the end.
- mute: never reads a byte; it forges the replies to the ids it can
  predict (each discovery 1 qom-list and 1024 qom-get) and a RESET every
  1.2 s.  The bytes queued for it are capped: the connection is dropped
  with the reason, and the daemon is alive and answering the others."""

import ctypes
import json
import os
import socket
import struct
import threading
import time

import aua
import daemon
import qemu

RULES = """\
  - match: { id: "1050:0407" }
    domain: vault
  - match: { id: "046d:c31c" }
    domain: flood
"""

XHCI = {"name": "xenusb-0", "type": "child<nec-usb-xhci>"}


class Peer:
    """A QMP server on path; script(conn) runs for each connection."""

    def __init__(self, path, script):
        self.path = path
        self.script = script
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.done = threading.Event()
        self.conns = []
        self.counts = {}
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        aua.on_cleanup(self.close)

    def close(self):
        self.done.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.srv.close()

    def count(self, execute):
        return self.counts.get(execute, 0)

    def run(self):
        while not self.done.is_set():
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            self.script(self, conn)
        except (OSError, ValueError, StopIteration):
            pass

    def lines(self, conn):
        buf = b""
        while not self.done.is_set():
            while b"\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            line, buf = buf.split(b"\n", 1)
            msg = json.loads(line)
            if "execute" in msg:
                self.counts[msg["execute"]] = self.counts.get(msg["execute"], 0) + 1
            yield msg


def send(conn, obj, lock=None):
    data = json.dumps(obj).encode() + b"\r\n"
    if lock:
        with lock:
            conn.sendall(data)
    else:
        conn.sendall(data)


GREETING = {"QMP": {"version": {}, "capabilities": []}}


def answering(peripherals, props, hosts=None, lock=None, on_ready=None):
    """A script that answers like QEMU: qom-list gives peripherals (and the
    usb-hosts added on this connection), qom-get props[(name, prop)]."""
    added = hosts if hosts is not None else {}
    guard = lock or threading.RLock()

    def script(peer, conn):
        send(conn, GREETING, lock)
        for msg in peer.lines(conn):
            with guard:
                ret = answer(msg)
            send(conn, {"return": ret, "id": msg["id"]}, lock)
            if msg["execute"] == "qmp_capabilities" and on_ready:
                on_ready(conn)

    def answer(msg):
        cmd, args = msg["execute"], msg.get("arguments", {})
        if cmd == "qom-list":
            ret = peripherals + [{"name": k, "type": "child<usb-host>"} for k in added]
        elif cmd == "qom-get":
            name = args["path"].rsplit("/", 1)[1]
            a = added.get(name)
            if a:
                ret = {"parent_bus": "/machine/peripheral/%s/%s" % (a["bus"][:-2],
                                                                   a["bus"]),
                       "port": a["port"], "hostbus": a["hostbus"],
                       "hostaddr": a["hostaddr"]}.get(args["property"])
            else:
                ret = props.get((name, args["property"]))
        elif cmd == "device_add":
            added[args["id"]] = args
            ret = {}
        else:
            ret = {}
        return ret
    return script


def mute(peer, conn):
    """Reads nothing; forges what a reading QEMU would answer."""
    hosts = [{"name": "h%d" % i, "type": "child<usb-host>"} for i in range(256)]
    conn.sendall(json.dumps(GREETING).encode() + b"\r\n")
    send(conn, {"return": {}, "id": 1})
    nxt = 2
    while not peer.done.is_set():
        out = [json.dumps({"return": hosts, "id": nxt})]
        out += [json.dumps({"return": [], "id": i}) for i in range(nxt + 1, nxt + 1025)]
        conn.sendall("\r\n".join(out).encode() + b"\r\n")
        nxt += 1025
        peer.rounds = getattr(peer, "rounds", 0) + 1
        time.sleep(1.2)
        send(conn, {"event": "RESET", "data": {}})


class Inotify:
    """Counts the renames into a directory (the state file's rewrites)."""
    IN_MOVED_TO = 0x80
    IN_CREATE = 0x100     # between two renames: identical events in a row are merged

    def __init__(self, directory):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        aua.check(self.fd >= 0, "inotify_init1")
        wd = libc.inotify_add_watch(self.fd, directory.encode(),
                                    self.IN_MOVED_TO | self.IN_CREATE)
        aua.check(wd >= 0, "inotify_add_watch %s" % directory)
        aua.on_cleanup(lambda: os.close(self.fd))

    def count(self):
        n = 0
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return n
            off = 0
            while off < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, off)
                n += 1 if mask & self.IN_MOVED_TO else 0
                off += 16 + length


def test():
    tmp = aua.tempdir()
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "keyboard"):
        tb.load(f)
    t = daemon.timeout(20)

    repeat = Peer(os.path.join(tmp, "repeat.qmp"), answering(
        [XHCI] + [{"name": "xenusb-1-5", "type": "child<usb-host>"}] * 20000,
        {("xenusb-0", "p2"): 4,
         ("xenusb-1-5", "parent_bus"): "/machine/peripheral/xenusb-0/xenusb-0.0",
         ("xenusb-1-5", "port"): "1", ("xenusb-1-5", "hostbus"): 1,
         ("xenusb-1-5", "hostaddr"): 5}))
    lock = threading.RLock()     # the flood's writes, and its table of usb-hosts
    flooding = threading.Event()
    stop_flood = threading.Event()

    def flood_resets(conn):
        def run():
            flooding.wait()
            while not stop_flood.is_set():
                try:
                    with lock:
                        flood_hosts.clear()
                    send(conn, {"event": "RESET", "data": {}}, lock)
                except OSError:
                    return
                time.sleep(0.0005)
        threading.Thread(target=run, daemon=True).start()

    flood_hosts = {}
    flood = Peer(os.path.join(tmp, "flood.qmp"),
                 answering([XHCI], {("xenusb-0", "p2"): 4}, hosts=flood_hosts, lock=lock,
                           on_ready=flood_resets))
    silent = Peer(os.path.join(tmp, "mute.qmp"), mute)
    vault = qemu.Guest(tmp, "vault", kind="double")
    policy = daemon.write_policy(tmp, "policy.yaml", qemu.policy(
        [("vault", vault.sock, {"version": 3}), ("repeat", repeat.path, None),
         ("flood", flood.path, None), ("mute", silent.path, None)], RULES))
    with aua.Daemon(qemu.daemon_args(tmp, policy), testbed=tb) as d:
        d.wait_ready(t)
        # repeat: discovered at once, with one look at the repeated name.
        start = time.monotonic()
        qemu.wait_log(d, r"repeat: QMP .*: 1 USB controller\(s\), 1 other device\(s\)", t)
        aua.check(time.monotonic() - start < daemon.timeout(5), "repeat's discovery took %.1f s"
                  % (time.monotonic() - start))
        aua.check(repeat.count("qom-get") <= 5,
                  "qom-get sent for 20,000 repeats of one name: %d (4 + p2 at most)"
                  % repeat.count("qom-get"))
        # ...and its claim on bus 1 device 5 does not keep the key from the vault.
        vault.start()
        qemu.wait_log(d, r"vault: 1-1\.2 attached at controller 0 port 1", t)
        aua.check("held by repeat's QEMU" not in d.stderr(),
                  "a guest's claim kept the key from the vault")
        adds = [c["arguments"]["id"] for c in vault.commands("device_add")]
        aua.check_equal(adds, ["xenusb-0", "xenusb-1-5"], "the vault's device_adds")

        # flood: its keyboard is attached, then RESET as fast as it can go.
        qemu.wait_log(d, r"flood: 1-1\.3 attached at controller 0 port 1", t)
        aua.check_equal(list(flood_hosts), ["xenusb-1-6"], "the flood guest's usb-host")
        state = Inotify(os.path.join(tmp, "state"))
        lists = flood.count("qom-list")
        adds = flood.count("device_add")
        pos = len(d.stderr())
        flooding.set()
        time.sleep(4)
        stop_flood.set()
        lists = flood.count("qom-list") - lists
        adds = flood.count("device_add") - adds
        lines = [l for l in d.stderr()[pos:].splitlines() if "flood" in l]
        writes = state.count()
        print("4 s of RESETs: %d discoveries, %d device_adds, %d log lines, %d state writes"
              % (lists, adds, len(lines), writes))
        aua.check(lists <= 7, "discoveries in 4 s of RESETs: %d" % lists)
        aua.check(adds <= 7, "device_adds in 4 s of RESETs: %d" % adds)
        aua.check(len(lines) <= 150, "log lines the flood caused in 4 s: %d" % len(lines))
        aua.check(writes <= 25, "state file rewrites in 4 s of RESETs: %d" % writes)
        qemu.wait_log(d, r"flood: QEMU reports a reset", t, pos)
        # After the storm the keyboard is where it was, not added twice.
        qemu.wait_log(d, r"flood: guest is running", t, pos)
        aua.wait_until(lambda: list(flood_hosts) == ["xenusb-1-6"], t,
                       "the keyboard given again after the storm")

        # mute: the bytes waiting for it are capped, then the connection goes.
        qemu.wait_log(d, r"mute: QMP .*: QEMU reads nothing of what is sent to it: "
                         r"dropping the connection", t)
        print("mute: dropped after %d rounds" % getattr(silent, "rounds", 0))
        aua.check(getattr(silent, "rounds", 0) <= daemon.timeout(12), "rounds before the drop: %d"
                  % getattr(silent, "rounds", 0))
        aua.check(d.running(), "the daemon survived")
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

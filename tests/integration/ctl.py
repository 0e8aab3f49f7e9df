"""A small client of the daemon's control socket for the tests: one JSON
request per line, one reply per line."""

import json
import socket

import aua


class Control:
    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        aua.on_cleanup(self.close)

    def close(self):
        if self.sock is not None:
            self.file.close()
            self.sock.close()
            self.sock = None

    def raw(self, line):
        """Sends line (bytes, newline added) and returns the reply object."""
        self.file.write(line + b"\n")
        self.file.flush()
        reply = self.file.readline()
        aua.check(reply.endswith(b"\n"), "no reply line to %r" % line[:80])
        return json.loads(reply)

    def __call__(self, command, **args):
        request = dict(args, command=command)
        return self.raw(json.dumps(request).encode())

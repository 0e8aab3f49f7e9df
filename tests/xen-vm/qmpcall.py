"""One short QMP conversation: connect, greeting, qmp_capabilities, the
commands, close.  Used on both sides of the real-Xen tests: by xenvm.py
with the outer QEMU, and in dom0 (the payload carries a copy) with a guest's
device model, where one client at a time is served, so the connection is
held no longer than the commands take."""
import json
import socket


def qmp(path, commands, timeout=30):
    """Sends commands (dicts) over a new connection to the QMP socket path;
    returns their replies, events skipped.  OSError or ValueError when the
    peer closes or sends what is not JSON."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        f = s.makefile('rw')

        def reply():
            while True:
                line = f.readline()
                if not line:
                    raise OSError('EOF from %s' % path)
                if line.strip():
                    msg = json.loads(line)
                    if 'event' not in msg:
                        return msg
        reply()
        out = []
        for c in [{'execute': 'qmp_capabilities'}] + commands:
            f.write(json.dumps(c) + '\n')
            f.flush()
            out.append(reply())
        return out[1:]
    finally:
        s.close()

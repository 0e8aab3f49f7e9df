"""Device strings with characters that are line breaks to other readers
(U+2028, U+2029: libyaml, JavaScript, Python's splitlines; U+0085, NEL, to
YAML) or that reorder what a terminal shows (bidi controls U+202A-U+202E,
U+2066-U+2069).

The camera of umockdev's real canon-powershot-sx200 recording, its twin
reporting such strings: a product string that, unescaped in a comment of
--generate-policy, would turn into a rule once libyaml reads the file, a
manufacturer with a right-to-left override, a serial with bidi isolates.
Every output keeps them from cutting or reordering a line: the generated
YAML (comments and values, \\uXXXX escapes that give the same strings back,
so the generated rule still matches), the decision lines and the log
(\\uXXXX), the JSON lines of --json, the control socket and
auto-usb-attachctl --json (\\u2028 ...), auto-usb-attachctl's tables.
"""

import json
import os
import subprocess

import aua
import daemon
import real

CAMERA = "1-1.5.2.3"
PRODUCT = "Camera\u2028  - match: {}\u2029    domain: vault\u0085x"
MAKER = "Canon \u202egnp.exe\u202c"
SERIAL = "C767\u2066F1C7\u2069\u202a14\u202b\u202d\u2067\u2068"
HIDDEN = ["\u2028", "\u2029", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
          "\u2066", "\u2067", "\u2068", "\u2069", "\u0085"]

POLICY = """\
version: 1
domains:
  vault: {}
rules:
  - name: the camera
    match: { id: "04a9:31c0" }
    domain: vault
"""


def machine():
    text = real.merge(real.recording("canon-powershot-sx200"), real.recording("usbkbd"))
    for key, value in (("product", PRODUCT), ("manufacturer", MAKER), ("serial", SERIAL)):
        text = real.set_line(text, CAMERA, "A", key, real.attr_escape(value))
    enc = lambda s: "".join(c if c.isalnum() else "".join("\\x%02x" % b for b in c.encode())
                            for c in s)
    text = real.set_line(text, CAMERA, "E", "ID_MODEL_ENC", enc(PRODUCT))
    text = real.set_line(text, CAMERA, "E", "ID_VENDOR_ENC", enc(MAKER))
    text = real.set_line(text, CAMERA, "E", "ID_SERIAL_SHORT", "C767_F1C7____14_____")
    return text


def no_hidden(text, what):
    for ch in HIDDEN:
        aua.check(ch not in text, "%s holds U+%04X raw:\n%r" % (what, ord(ch), text))
    aua.check_equal(text.splitlines(), text.split("\n")[:len(text.splitlines())],
                    "%s: splitlines cuts no line" % what)


def run(*args):
    r = subprocess.run(daemon.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=daemon.timeout(20))
    aua.check_equal(r.returncode, 0, "%s (stderr: %s)" % (" ".join(args), r.stderr))
    no_hidden(r.stderr, "the log of " + " ".join(args))
    return r.stdout


def ctl_binary():
    path = os.environ.get("AUA_CTL") or os.path.join(os.getcwd(), "ctl", "auto-usb-attachctl")
    aua.check(os.access(path, os.X_OK), "no auto-usb-attachctl at %s" % path)
    return path


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    tb = aua.Testbed()
    tb.load_string(machine())

    # JSON lines: one per device whatever splits them, the strings intact.
    out = run("--once", "--json", "-c", policy)
    no_hidden(out, "--json output")
    objs = [json.loads(l) for l in out.splitlines()]
    cam = [o for o in objs if o["port"] == CAMERA]
    aua.check_equal(len(cam), 1, "the camera's line")
    aua.check_equal((cam[0]["product"], cam[0]["manufacturer"], cam[0]["serial"]),
                    (PRODUCT, MAKER, SERIAL), "the strings, JSON-escaped")
    aua.check("\\u2028" in out and "\\u202e" in out and "\\u2066" in out,
              "\\uXXXX escapes in JSON:\n" + out)

    # Decision lines.
    out = run("--once", "-v", "-c", policy)
    no_hidden(out, "decision lines")
    line = [l for l in out.splitlines() if l.split()[1:2] == [CAMERA]][0]
    aua.check("Camera\\u2028" in line and "\\u202egnp.exe\\u202c" in line and
              "C767\\u2066F1C7\\u2069" in line, "escaped decision line: " + line)

    # The generated policy: no comment becomes a rule, every rule matches.
    for by in ("id", "path"):
        out = run("--generate-policy=" + by)
        no_hidden(out, "--generate-policy=" + by)
        gen = daemon.write_policy(tmp, "gen-%s.yaml" % by,
                                  out.replace("action: ignore", "domain: vault")
                                  .replace("domains:\n", "domains:\n  vault: {}\n"))
        run("--check", "-c", gen)
        decided = {o["port"]: o for o in map(json.loads,
                                             run("--once", "--json", "-c", gen).splitlines())}
        rules = [o["rule"] for o in decided.values()]
        aua.check_equal(sorted(rules), list(range(1, len(decided) + 1)),
                        "by %s: one rule per device, each its own:\n%s" % (by, out))
        aua.check_equal(decided[CAMERA]["rule_name"], "%s %s at %s" % (MAKER, PRODUCT, CAMERA),
                        "the generated name, read back")

    # The control socket and auto-usb-attachctl.
    sock = os.path.join(tmp, "control")
    with aua.Daemon(daemon.command("--dry-run", "--control-socket", sock, "-c", policy),
                    testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        for args in (["devices"], ["explain", CAMERA], ["--json", "devices"],
                     ["--json", "explain", CAMERA]):
            r = subprocess.run([ctl_binary(), "--socket", sock] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=daemon.timeout(10))
            aua.check_equal(r.returncode, 0, "ctl %s: %s" % (args, r.stderr))
            no_hidden(r.stdout, "ctl %s" % " ".join(args))
            if args[0] == "--json":
                aua.check_equal(len(r.stdout.splitlines()), 1, "one JSON line")
                reply = json.loads(r.stdout)
                dev = (reply["device"] if "device" in reply else
                       [x for x in reply["devices"] if x["port"] == CAMERA][0])
                aua.check_equal((dev["product"], dev["serial"]), (PRODUCT, SERIAL),
                                "ctl --json keeps the strings")
            else:
                aua.check("\\u2028" in r.stdout, "ctl %s escapes U+2028:\n%s" % (args, r.stdout))
        # The socket itself.
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(daemon.timeout(5))
        s.connect(sock)
        s.sendall(b'{"command": "devices"}\n')
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            aua.check(chunk, "the daemon closed the socket")
            buf += chunk
        s.close()
        no_hidden(buf.decode(), "the control socket's reply")
        aua.check(b"\\u2028" in buf, "\\u2028 in the reply")
        err = daemon.stop_clean(d)
        no_hidden(err, "the daemon's log")
    tb.close()


if __name__ == "__main__":
    aua.main(test)

"""Device strings are untrusted: a product name with a newline, an escape
sequence and invalid UTF-8 (udev hands it over \\x-encoded in ID_MODEL_ENC),
and a serial with control characters must neither break a decision line nor
the JSON output, and must still match the policy's globs."""

import json
import os

import aua
import daemon

POLICY = """\
version: 1
domains:
  vault: {}
rules:
  - name: the evil key
    match: { id: "1050:0407", serial: "00*345", product-name: "Evil*" }
    domain: vault
"""


def evil_yubikey():
    with open(os.path.join(aua.DEVICES, "yubikey.umockdev")) as f:
        text = f.read()
    text = text.replace("E: ID_MODEL_ENC=YubiKey\\x20OTP+FIDO+CCID",
                        "E: ID_MODEL_ENC=Evil\\x0aattach\\x20all\\xff\\x1b[2J")
    text = text.replace("E: ID_SERIAL_SHORT=0012345", "E: ID_SERIAL_SHORT=00\x1b[2J\t345")
    aua.check("Evil" in text and "\x1b" in text, "the fixture changed under the test")
    return text


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    tb = aua.Testbed()
    tb.load("hubs")
    tb.load("laptop-keyboard")
    tb.load_string(evil_yubikey())
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        line = d.readline(daemon.timeout(5))
        daemon.stop_clean(d)
    obj = json.loads(line)
    aua.check_equal((obj["action"], obj["domain"]), ("attach", "vault"),
                    "globs match the raw strings")
    aua.check_equal(obj["product"], "Evil\nattach all\ufffd\x1b[2J",
                    "product name as valid UTF-8 (invalid byte replaced)")
    aua.check_equal(obj["serial"], "00\x1b[2J\t345", "serial kept, JSON-escaped")
    aua.check("\x1b" not in line and "\n" not in line, "raw control bytes in %r" % line)

    with aua.Daemon(daemon.command("--dry-run", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        text = d.readline(daemon.timeout(5))
        daemon.stop_clean(d)
        aua.check_equal(len(d.stdout_log), 1, "one line, not split by the newline")
    aua.check_equal(text, 'attach 1-1.2 1050:0407 "Yubico Evil\\x0aattach all\\xff\\x1b[2J"'
                    ' serial 00\\x1b[2J\\x09345 path pci-0000:00:14.0-usb-0:1.2'
                    ' -> vault (rule 1 "the evil key")',
                    "escaped decision line")


if __name__ == "__main__":
    aua.main(test)

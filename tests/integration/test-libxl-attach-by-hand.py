"""Attach by hand (auto-usb-attachctl attach) to a guest the policy does not
name (issue 16).  A guest that does not exist: a clear error at once, and
no worker is left waiting for it (`domains` does not list it).  A running
guest: the device is attached there; once it is unplugged (detached), the
worker made for that guest is freed (`domains` no longer lists it).  A
guest of the policy that is not running still takes the device when it
starts."""

import aua
import control
import daemon
import xen

SOCKET = "/run/auto-usb-attach/control"


def request(**req):
    c = control.Client(SOCKET)
    reply = c.request(__import__("json").dumps(req))
    c.close()
    return reply


def domain_names():
    reply = request(command="domains")
    aua.check(reply.get("ok"), "domains: %s" % reply)
    return sorted(d["name"] for d in reply["domains"])


def test():
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", xen.STICK_TO_WIN10)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "webcam"):
        tb.load(f)
    xen.add_guest("other", 6)
    t = daemon.timeout(15)
    with xen.start_daemon(tb, policy) as d:
        d.wait_ready(t)
        aua.check_equal(domain_names(), ["win10"], "the policy's guest only")

        reply = request(command="attach", device="1-1.2", domain="ghost")
        aua.check_equal(reply, {"ok": False, "error": "no guest called ghost is running, "
                                "and the policy does not name it"}, "attach to ghost")
        aua.check_equal(domain_names(), ["win10"], "no worker waits for ghost")
        dev = request(command="explain", device="1-1.2")["device"]
        aua.check_equal((dev["state"], dev["domain"], dev["override"]),
                        ("unmatched", None, False), "the key is left as it was")

        reply = request(command="attach", device="1-1.2", domain="other")
        aua.check(reply.get("ok"), "attach to other: %s" % reply)
        xen.wait_attached(6, ["1-1.2"], t)
        aua.check_equal(domain_names(), ["other", "win10"], "other's worker while it has the key")

        # A policy guest that is not running: the device waits for it.
        reply = request(command="attach", device="1-2", domain="win10")
        aua.check(reply.get("ok"), "attach to win10: %s" % reply)
        aua.check_equal(request(command="explain", device="1-2")["device"]["state"],
                        "waiting", "the webcam waits for win10")

        tb.remove("1-1.2")
        xen.wait_attached(6, [], t)
        aua.wait_until(lambda: domain_names() == ["win10"], t,
                       "other's worker to be freed (domains: %s)" % domain_names())
        xen.add_guest("win10", 5)
        xen.wait_attached(5, ["1-2"], t)
        daemon.stop_clean(d)


if __name__ == "__main__":
    xen.enter()
    aua.main(test)

"""SIGHUP with the policy file unchanged (same inode, size, times, owner,
mode and text): nothing is parsed or decided again; the daemon says so in
its log, between its RELOADING=1 and READY=1, and prints no decision.  An
edit that keeps the size and the mtime (written in place, the mtime put
back) still reloads and moves the device; a touch that changes nothing but
the mtime reloads (the whole load runs) and prints nothing, as before.  A
drop-in added beside an unchanged main file is a change: reloaded."""

import os
import signal

import aua
import daemon

POLICY = """\
version: 1
domains:
  win10: {}
  vault: {}
rules:
  - name: keys
    match: { id: "1050:0407" }
    domain: vault
  - name: storage
    match: { interface-class: storage }
    domain: win10
"""
# The same size: "vault" and "win10" are both 5 letters.
EDITED = POLICY.replace("domain: vault", "domain: win10")

UNCHANGED = "unchanged since it was loaded (same size, times and content): nothing reloaded"


def sighup(d, t):
    d.signal(signal.SIGHUP)
    d.wait_notify("RELOADING", "1", t)
    d.wait_ready(t)


def test():
    t = daemon.timeout(5)
    tmp = aua.tempdir()
    policy = daemon.write_policy(tmp, "policy.yaml", POLICY)
    tb = aua.Testbed()
    for f in ("hubs", "laptop-keyboard", "yubikey", "storage"):
        tb.load(f)
    with aua.Daemon(daemon.command("--dry-run", "--json", "-c", policy), testbed=tb) as d:
        d.wait_ready(daemon.timeout(10))
        present = {o["port"]: o for o in d.json_lines(2, t)}
        aua.check_equal(present["1-1.2"]["domain"], "vault", "key at start")

        # Unchanged, twice: logged, nothing printed, nothing reloaded.
        for n in (1, 2):
            sighup(d, t)
            aua.wait_until(lambda: d.stderr().count(UNCHANGED) == n, t,
                           "unchanged reload %d in the log" % n)
        aua.check("reloaded (" not in d.stderr(),
                  "an unchanged file was loaded again:\n%s" % d.stderr())
        # The next line is the next event's: no reload decision came before it.
        tb.load("webcam")
        cam = d.json_lines(1, t)[0]
        aua.check_equal((cam["event"], cam["port"]), ("add", "1-2"),
                        "first line after the unchanged reloads")

        # Edited in place, the same size, the mtime put back: reloaded.
        st = os.stat(policy)
        with open(policy, "r+") as f:
            f.write(EDITED)
        os.utime(policy, ns=(st.st_atime_ns, st.st_mtime_ns))
        st2 = os.stat(policy)
        aua.check_equal((st2.st_size, st2.st_mtime_ns), (st.st_size, st.st_mtime_ns),
                        "size and mtime kept by the edit")
        sighup(d, t)
        got = [(o["event"], o["action"], o["port"], o["domain"]) for o in d.json_lines(2, t)]
        aua.check_equal(got, [("reload", "detach", "1-1.2", "vault"),
                              ("reload", "attach", "1-1.2", "win10")], "edited policy")
        aua.wait_until(lambda: "reloaded (2 domains, 2 rules)" in d.stderr(), t,
                       "the edited policy's reload in the log")

        # Touched: the whole load runs again, no decision changes.
        os.utime(policy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        sighup(d, t)
        aua.wait_until(lambda: d.stderr().count("reloaded (2 domains, 2 rules)") == 2, t,
                       "the touched policy's reload in the log")
        aua.check_equal(d.stderr().count(UNCHANGED), 2, "unchanged reloads")
        # And unchanged again since that load.
        sighup(d, t)
        aua.wait_until(lambda: d.stderr().count(UNCHANGED) == 3, t, "unchanged after the touch")
        tb.remove("1-2")
        last = d.json_lines(1, t)[0]
        aua.check_equal((last["event"], last["port"]), ("remove", "1-2"), "no reload line")

        # The main file unchanged, a drop-in added beside it: that is a change.
        os.mkdir(os.path.join(tmp, "policy.d"), 0o755)
        daemon.write_policy(os.path.join(tmp, "policy.d"), "10-keys.yaml",
                            "version: 1\nrules:\n  - match: { id: \"1050:0407\" }\n"
                            "    domain: vault\n")
        sighup(d, t)
        aua.wait_until(lambda: d.stderr().count("reloaded (") == 3, t,
                       "a reload for the new drop-in:\n%s" % d.stderr())
        aua.check_equal(d.stderr().count(UNCHANGED), 3, "the new drop-in not taken as unchanged")
        daemon.stop_clean(d)


if __name__ == "__main__":
    aua.main(test)

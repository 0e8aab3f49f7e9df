#!/usr/bin/env python3
"""The real-Xen scenarios, run inside the test VM's dom0 by dom0/init.

Everything here is real: Xen 4.17, the Debian dom0's xenstored, xl and
libxl, HVM guests with their qemu-xen device models, and USB devices that
the outer QEMU emulates (dom0's udev sees them as hardware).  The daemon is
the one `make install` put into the payload.  Devices are plugged in and
out by asking the outer QEMU over the console: a line
"XENVM-HOST plug ID SERIAL PORT" or "XENVM-HOST unplug ID", which
tests/xen-vm/xenvm.py turns into QMP commands.

Each scenario prints "XENVM-RESULT PASS|FAIL NAME [why]"; xenvm.py counts
them.  A scenario leaves the guests and devices as the next one expects
(the order below is the order they run in); one that fails still tidies
what it started: its daemon is stopped and its guests are left for the
next scenario's set-up, which makes its own.

Arguments: scenario names to run (default: all, in order).
"""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, '/usr/lib/xen-4.17/lib/python')
from qmpcall import qmp  # noqa: E402 (the payload's copy of tests/xen-vm/qmpcall.py)

DAEMON = '/usr/local/sbin/auto-usb-attach'
CTL = '/usr/local/bin/auto-usb-attachctl'
RUNDIR = '/run/auto-usb-attach'
T0 = time.time()


def uptime():
    with open('/proc/uptime') as f:
        return f.read().split()[0]


def say(msg):
    print('XENVM[%s] %s' % (uptime(), msg), flush=True)


class Fail(Exception):
    pass


def run(argv, check=False, quiet=False, timeout=120):
    """Runs argv, returns (rc, output); logs both unless quiet."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, text=True, errors='replace')
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = -1, '(timed out after %d s) %s' % (timeout, e.output or '')
    if not quiet:
        say('$ %s -> %d' % (' '.join(argv), rc))
        for line in out.splitlines()[:40]:
            print('    ' + line, flush=True)
    if check and rc != 0:
        raise Fail('%s failed (%d): %s' % (' '.join(argv), rc, out.strip()[-300:]))
    return rc, out


def wait(what, pred, timeout, interval=1.0):
    """Polls pred() until it returns a true value, which it returns."""
    end = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= end:
            raise Fail('%s: not within %d s' % (what, timeout))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# dom0's USB devices (sysfs, as udev sees them)

def usb_devices():
    """{busid: {serial, product, busnum, devnum, speed, id}} of dom0's devices."""
    out = {}
    base = '/sys/bus/usb/devices'
    for name in os.listdir(base):
        if not re.match(r'^\d+-[\d.]+$', name):
            continue
        d = os.path.join(base, name)

        def attr(a):
            try:
                with open(os.path.join(d, a)) as f:
                    return f.read().strip()
            except OSError:
                return None
        busnum, devnum = attr('busnum'), attr('devnum')
        if busnum is None or devnum is None:  # going away as we read it
            continue
        out[name] = {'serial': attr('serial'), 'product': attr('product'),
                     'busnum': int(busnum), 'devnum': int(devnum),
                     'speed': attr('speed'), 'id': '%s:%s' % (attr('idVendor'), attr('idProduct'))}
    return out


def find(key, value):
    """The busid of dom0's device whose key (serial, product) is value, or None."""
    for busid, d in usb_devices().items():
        if d.get(key) == value:
            return busid
    return None


def plug(devid, serial, port):
    """Asks the outer QEMU to hot-plug a USB stick; returns its busid in dom0.
    The request is made again once if the stick does not come (a console
    line can be lost; a second device_add of a present stick is refused)."""
    print('XENVM-HOST plug %s %s %s' % (devid, serial, port), flush=True)
    try:
        busid = wait('%s to appear in dom0' % serial, lambda: find('serial', serial), 30)
    except Fail:
        say('%s did not come: asking again' % serial)
        print('XENVM-HOST plug %s %s %s' % (devid, serial, port), flush=True)
        busid = wait('%s to appear in dom0' % serial, lambda: find('serial', serial), 60)
    run(['udevadm', 'settle', '-t', '30'], quiet=True)
    say('%s plugged in as %s' % (serial, busid))
    return busid


def pull_out(devid, what, gone):
    """Asks the outer QEMU to unplug its device devid; waits until gone()
    (asking once more if the first request went missing)."""
    print('XENVM-HOST unplug %s' % devid, flush=True)
    try:
        wait('%s to leave dom0' % what, gone, 30)
    except Fail:
        say('%s still there: asking again' % what)
        print('XENVM-HOST unplug %s' % devid, flush=True)
        wait('%s to leave dom0' % what, gone, 60)


def unplug(devid, serial):
    pull_out(devid, serial, lambda: find('serial', serial) is None)
    run(['udevadm', 'settle', '-t', '30'], quiet=True)
    say('%s unplugged' % serial)


# ---------------------------------------------------------------------------
# Guests: xl, xenstore, and the device model's own view (QMP)

def guest_cfg(name, extra='', pvh=False):
    disk = '/tmp/halt-%s.img' % name
    if not os.path.exists(disk):
        # A one-sector disk whose boot sector is "sti; hlt; jmp .-1": SeaBIOS
        # would reboot a diskless guest every 60 s.
        b = bytearray(1048576)
        b[0:4] = bytes([0xfb, 0xf4, 0xeb, 0xfd])
        b[510:512] = bytes([0x55, 0xaa])
        with open(disk, 'wb') as f:
            f.write(b)
    path = '/tmp/%s.cfg' % name
    if pvh:
        # dom0's own kernel and initrd, stopped at the initramfs's first
        # shell (break=top), waiting on its console: a running PVH guest.
        kernel = sorted(glob.glob('/boot/vmlinuz-*'))[-1]
        initrd = sorted(glob.glob('/boot/initrd.img-*'))[-1]
        head = ('type = "pvh"\nmemory = 384\nkernel = "%s"\nramdisk = "%s"\n'
                'extra = "console=hvc0 break=top"\n' % (kernel, initrd))
        vdev = 'xvda'
    else:
        head = ('type = "hvm"\nmemory = 64\ndevice_model_version = "qemu-xen"\nvnc = 0\nsdl = 0\n'
                'serial = "pty"\nboot = "c"\n')
        vdev = 'hda'
    with open(path, 'w') as f:
        f.write('name = "%s"\n%svcpus = 1\nvif = []\non_crash = "preserve"\n'
                'disk = [ "format=raw,vdev=%s,access=rw,backendtype=qdisk,target=%s" ]\n%s'
                % (name, head, vdev, disk, extra))
    return path


def domid(name):
    rc, out = run(['xl', 'domid', name], quiet=True)
    return int(out.strip()) if rc == 0 and out.strip().isdigit() else None


def create(name, extra='', pvh=False):
    if domid(name) is not None:
        destroy(name)
    run(['xl', 'create', guest_cfg(name, extra, pvh)], check=True, timeout=180)
    d = wait('%s to run' % name, lambda: domid(name), 60)
    if not pvh:
        # The device model answers QMP a little after xl create returns.
        wait('%s\'s device model' % name, lambda: dm_usb(d, quiet=True) is not None, 60)
    say('%s runs as domain %d' % (name, d))
    return d


def create_with_socket(name, sock):
    """A guest whose device model has a QMP socket of its own at sock, as the
    README tells users to give one (device_model_args)."""
    return create(name, 'device_model_args = [ "-chardev", "socket,id=aua,path=%s,server=on,'
                        'wait=off", "-mon", "chardev=aua,mode=control" ]\n' % sock)


def destroy(name):
    if domid(name) is not None:
        run(['xl', 'destroy', name], timeout=120)


def xs_tree(path):
    """{subpath: value} of a xenstore subtree."""
    rc, out = run(['xenstore-ls', '-f', path], quiet=True)
    tree = {}
    if rc == 0:
        for line in out.splitlines():
            m = re.match(r'^(\S+) = "(.*)"$', line)
            if m and m.group(1).startswith(path + '/'):
                tree[m.group(1)[len(path) + 1:]] = m.group(2)
    return tree


def vusb(name):
    """{ctrl: {'usb-ver', 'num-ports', 'type', 'ports': {port: busid}}} from
    xenstore: libxl's own records for a device-model controller, the
    backend's (where libxl writes them) for a PV one (qusb)."""
    d = domid(name)
    if d is None:
        return {}
    ctrls = {}
    for key, val in xs_tree('/libxl/%d/device/vusb' % d).items():
        m = re.match(r'^(\d+)/(\S+)$', key)
        if m:
            ctrls.setdefault(int(m.group(1)), {'ports': {}})[m.group(2)] = val
    for c in ctrls.values():
        src = c
        if c.get('type') != 'devicemodel' and c.get('backend'):
            src = xs_tree(c['backend'])
        c['ports'] = {int(k[5:]): v for k, v in src.items() if re.match(r'^port/\d+$', k)}
    return ctrls


def holders(name, busid):
    """How many of the guest's vusb ports hold busid."""
    return sum(1 for c in vusb(name).values() for b in c['ports'].values() if b == busid)


def dm_usb(d, quiet=False):
    """The device model's USB devices as [(id, speed, product)] (HMP info usb)."""
    try:
        r = qmp('/run/xen/qmp-libxl-%d' % d,
                [{'execute': 'human-monitor-command', 'arguments': {'command-line': 'info usb'}}])
    except (OSError, ValueError) as e:
        if not quiet:
            say('device model of domain %d: %s' % (d, e))
        return None
    text = r[0].get('return', '')
    devs = []
    for line in text.splitlines():
        m = re.search(r'Speed (\S+) Mb/s, Product (.*?)(?:, ID: (\S+))?$', line)
        if m:
            devs.append((m.group(3), m.group(1), m.group(2)))
    return devs


def dm_holds(name, busid):
    """How many usb-host devices of the guest's device model are busid's."""
    d = domid(name)
    dev = usb_devices().get(busid)
    if d is None or dev is None:
        return 0
    want = 'xenusb-%d-%d' % (dev['busnum'], dev['devnum'])
    return sum(1 for i, _, _ in (dm_usb(d) or []) if i == want)


def dm_holds_id(name, want):
    d = domid(name)
    return 0 if d is None else sum(1 for i, _, _ in (dm_usb(d) or []) if i == want)


def xl_usb_list(name):
    """(number of controllers, set of 'Bus NNN Device NNN') from xl usb-list."""
    rc, out = run(['xl', 'usb-list', name], quiet=True)
    ctrls = len(re.findall(r'^\d+\s+\S+\s+\d+\s+\d+\s+\d+\s+\d+', out, re.M))
    return ctrls, set(re.findall(r'Bus \d+ Device \d+', out))


def bus_dev(busid):
    d = usb_devices()[busid]
    return 'Bus %03d Device %03d' % (d['busnum'], d['devnum'])


# ---------------------------------------------------------------------------
# The daemon

class Daemon:
    n = 0

    def __init__(self, policy_text, name='policy'):
        Daemon.n += 1
        self.policy = '/tmp/%s-%d.yaml' % (name, Daemon.n)
        self.write(policy_text)
        self.out = '/tmp/aua-%d.out' % Daemon.n
        self.err = '/tmp/aua-%d.err' % Daemon.n
        self.proc = None

    def write(self, text):
        with open(self.policy + '.new', 'w') as f:
            f.write(text)
        os.chmod(self.policy + '.new', 0o644)
        os.rename(self.policy + '.new', self.policy)

    def start(self):
        os.makedirs(RUNDIR, mode=0o755, exist_ok=True)
        if os.path.exists(RUNDIR + '/control'):
            os.unlink(RUNDIR + '/control')
        self.proc = subprocess.Popen([DAEMON, '--foreground', '-v', '-c', self.policy],
                                     stdout=open(self.out, 'ab'), stderr=open(self.err, 'ab'))
        wait('the daemon\'s control socket', lambda: self.proc.poll() is not None or
             os.path.exists(RUNDIR + '/control'), 60, 0.2)
        if self.proc.poll() is not None:
            raise Fail('the daemon exited at start (%d): %s' % (self.proc.returncode, self.log_tail(10)))
        wait('the daemon to answer', lambda: self.ctl('status', quiet=True) is not None, 30)
        say('daemon %d started (pid %d, policy %s)' % (Daemon.n, self.proc.pid, self.policy))
        return self

    def ctl(self, *args, quiet=False):
        rc, out = run([CTL, '--json'] + list(args), quiet=True)
        if not quiet:
            say('auto-usb-attachctl %s -> %d %s' % (' '.join(args), rc, out.strip()[:400]))
        try:
            return json.loads(out) if rc == 0 else None
        except ValueError:
            return None

    def device(self, **match):
        r = self.ctl('devices', quiet=True) or {}
        for d in r.get('devices', []):
            if all(d.get(k) == v for k, v in match.items()):
                return d
        return None

    def state(self, **match):
        d = self.device(**match)
        return d and d.get('state')

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        say('daemon SIGKILLed')

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Fail('the daemon did not stop within 30 s of SIGTERM')

    def log_tail(self, n=40):
        try:
            with open(self.err, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    def stdout_lines(self):
        try:
            with open(self.out, errors='replace') as f:
                return f.read().splitlines()
        except OSError:
            return []


# ---------------------------------------------------------------------------
# The scenarios

KBD = 'QEMU USB Keyboard'
TABLET = 'QEMU USB Tablet'
COLD = 'COLDSTICK01'
HOT1 = 'HOTSTICK01'
HOT2 = 'HOTSTICK02'

POLICY_HOT2_TO_AUA1 = """version: 1
domains:
  aua1: {}
rules:
  - name: the hot stick goes to aua1
    match: { serial: %s }
    domain: aua1
""" % HOT2

# No controller settings anywhere: the daemon's defaults decide.
POLICY_KBD_COLD_TO_AUA2 = """version: 1
domains:
  aua1: {}
  aua2: {}
rules:
  - name: the keyboard behind the hub goes to aua2
    match: { product-name: "%s" }
    domain: aua2
    allow-dom0-lockout: true
  - name: the cold stick
    match: { serial: %s }
    domain: %s
  - name: the hot stick goes to aua1
    match: { serial: %s }
    domain: aua1
"""


class World:
    daemon = None


W = World()


def stop_daemon():
    if W.daemon is not None:
        try:
            W.daemon.stop()
        finally:
            W.daemon = None


def s1_stale_port():
    """A surprise unplug leaves a port behind; the daemon clears it at start."""
    stop_daemon()
    create('aua1')
    run(['xl', 'usbctrl-attach', 'aua1', 'version=3', 'ports=8'], check=True)
    busid = plug('hs1', HOT1, '4')
    d = usb_devices()[busid]
    run(['xl', 'usbdev-attach', 'aua1', 'hostbus=%d' % d['busnum'], 'hostaddr=%d' % d['devnum']],
        check=True)
    want = 'xenusb-%d-%d' % (d['busnum'], d['devnum'])
    wait('xl usbdev-attach to show in xenstore', lambda: holders('aua1', busid) == 1, 30)
    unplug('hs1', HOT1)
    time.sleep(2)
    stale_xs, stale_dm = holders('aua1', busid), dm_holds_id('aua1', want)
    say('after the surprise unplug: xenstore ports holding %s: %d, device model %s: %d'
        % (busid, stale_xs, want, stale_dm))
    if stale_xs == 0:
        raise Fail('precondition: libxl left no stale port after the unplug (nothing to clean)')
    W.daemon = Daemon(POLICY_HOT2_TO_AUA1).start()
    wait('the stale port to be cleared from xenstore', lambda: holders('aua1', busid) == 0, 60)
    wait('the device model to drop %s' % want, lambda: dm_holds_id('aua1', want) == 0, 30)
    run(['xl', 'usb-list', 'aua1'])


def s2_hotplug_unplug():
    """Hot plug -> attached by policy (xl usb-list, the device model); unplug -> detached."""
    if W.daemon is None:
        W.daemon = Daemon(POLICY_HOT2_TO_AUA1).start()
    if domid('aua1') is None:
        create('aua1')
    busid = plug('hs2', HOT2, '4')
    bd = bus_dev(busid)
    d = usb_devices()[busid]
    want = 'xenusb-%d-%d' % (d['busnum'], d['devnum'])
    wait('%s in aua1\'s xenstore ports' % busid, lambda: holders('aua1', busid) == 1, 90)
    wait('%s in aua1\'s device model' % want, lambda: dm_holds_id('aua1', want) == 1, 30)
    wait('%s in xl usb-list' % bd, lambda: bd in xl_usb_list('aua1')[1], 10)
    st = W.daemon.state(serial=HOT2)
    if st != 'attached':
        raise Fail('the daemon says %s is %s, not attached' % (HOT2, st))
    run(['xl', 'usb-list', 'aua1'])
    unplug('hs2', HOT2)
    wait('%s gone from aua1\'s xenstore ports' % busid, lambda: holders('aua1', busid) == 0, 60)
    wait('%s gone from aua1\'s device model' % want, lambda: dm_holds_id('aua1', want) == 0, 30)
    if bd in xl_usb_list('aua1')[1]:
        raise Fail('xl usb-list still lists %s' % bd)
    if W.daemon.device(serial=HOT2) is not None:
        raise Fail('the daemon still lists %s after its unplug' % HOT2)


def attached_both(guest):
    kbd, cold = find('product', KBD), find('serial', COLD)
    if kbd is None or cold is None:
        raise Fail('dom0 lacks the keyboard (%s) or the cold stick (%s)' % (kbd, cold))
    return (holders(guest, kbd) == 1 and holders(guest, cold) == 1 and
            dm_holds(guest, kbd) == 1 and dm_holds(guest, cold) == 1)


def s3_defaults_speeds():
    """No controller anywhere in the policy or the guest: a full-speed keyboard
    and a high-speed stick both attached, in a controller the daemon made."""
    stop_daemon()
    create('aua2')
    kbd, cold = find('product', KBD), find('serial', COLD)
    say('keyboard %s at %s Mb/s, stick %s at %s Mb/s' % (
        kbd, usb_devices()[kbd]['speed'], cold, usb_devices()[cold]['speed']))
    W.daemon = Daemon(POLICY_KBD_COLD_TO_AUA2 % (KBD, COLD, 'aua2', HOT2)).start()
    try:
        wait('the keyboard and the stick attached to aua2', lambda: attached_both('aua2'), 90)
    finally:
        run(['xl', 'usb-list', 'aua2'])
        W.daemon.ctl('devices')
    for what in (dict(product=KBD), dict(serial=COLD)):
        st = W.daemon.state(**what)
        if st != 'attached':
            raise Fail('the daemon says %s is %s' % (what, st))


def setup_aua2():
    """aua2 with the keyboard and the cold stick, for the scenarios that start
    from there when the defaults scenario did not leave it so: the controller
    is given (version 3), so that they test their own thing."""
    stop_daemon()
    if domid('aua1') is None:
        create('aua1')
    create('aua2')
    policy = POLICY_KBD_COLD_TO_AUA2.replace('version: 1\n', 'version: 1\ndefaults:\n'
                                             '  controller: { version: 3, ports: 8 }\n', 1)
    W.daemon = Daemon(policy % (KBD, COLD, 'aua2', HOT2)).start()
    wait('the keyboard and the stick attached to aua2', lambda: attached_both('aua2'), 90)


def controllers(guest):
    return xl_usb_list(guest)[0]


def s5_reboot_recreate():
    """A guest's own reboot and destroy + create: attached again at the new domid,
    and no controller left over."""
    if W.daemon is None or domid('aua2') is None:
        setup_aua2()
    before = controllers('aua2')
    old = domid('aua2')
    import xen.lowlevel.xc as xc
    say('rebooting aua2 (domain %d) as the guest would: domain_shutdown(reboot)' % old)
    xc.xc().domain_shutdown(old, 1)
    new = wait('aua2 back under a new domid', lambda: (domid('aua2') or old) != old and domid('aua2'), 120)
    say('aua2 rebooted: domain %d -> %d' % (old, new))
    wait('both attached again after the reboot', lambda: attached_both('aua2'), 120)
    time.sleep(10)
    after = controllers('aua2')
    run(['xl', 'usb-list', 'aua2'])
    if after != before:
        raise Fail('aua2 had %d controller(s) before the reboot and %d after' % (before, after))
    if not attached_both('aua2'):
        raise Fail('not attached 10 s after the reboot')
    old = new
    run(['xl', 'destroy', 'aua2'], check=True)
    time.sleep(3)
    new = create('aua2')
    wait('both attached again after destroy + create', lambda: attached_both('aua2'), 120)
    time.sleep(5)
    if controllers('aua2') != 1:
        raise Fail('aua2 has %d controllers after destroy + create' % controllers('aua2'))
    say('destroy + create: domain %d -> %d, both attached, one controller' % (old, new))


def everywhere(busid):
    """How many ports of all running guests hold busid, in xenstore and in the device models."""
    n_xs = n_dm = 0
    for g in ('aua1', 'aua2'):
        n_xs += holders(g, busid)
        n_dm += dm_holds(g, busid)
    return n_xs, n_dm


def s6_sigkill_sighup():
    """SIGKILL with devices attached and a device plugged meanwhile; then SIGHUP moving one."""
    if W.daemon is None or domid('aua2') is None:
        setup_aua2()
    if domid('aua1') is None:
        create('aua1')
    wait('both attached to aua2', lambda: attached_both('aua2'), 60)
    kbd, cold = find('product', KBD), find('serial', COLD)
    W.daemon.kill9()
    hot = plug('hs2', HOT2, '4')
    time.sleep(2)
    W.daemon.start()
    wait('the stick plugged in while the daemon was down, attached to aua1',
         lambda: holders('aua1', hot) == 1 and dm_holds('aua1', hot) == 1, 90)
    time.sleep(5)
    for b in (kbd, cold, hot):
        n = everywhere(b)
        if n != (1, 1):
            raise Fail('%s is held %d time(s) in xenstore and %d in the device models' % ((b,) + n))
    for what in (dict(product=KBD), dict(serial=COLD), dict(serial=HOT2)):
        st = W.daemon.state(**what)
        if st != 'attached':
            raise Fail('after the restart the daemon says %s is %s' % (what, st))
    say('SIGHUP: the cold stick moves from aua2 to aua1')
    W.daemon.write(POLICY_KBD_COLD_TO_AUA2 % (KBD, COLD, 'aua1', HOT2))
    W.daemon.hup()
    wait('the cold stick in aua1, not aua2', lambda: holders('aua1', cold) == 1 and dm_holds('aua1', cold) == 1
         and holders('aua2', cold) == 0 and dm_holds('aua2', cold) == 0, 90)
    if holders('aua2', kbd) != 1:
        raise Fail('the reload moved the keyboard too')


def s8_two_guests():
    """Two guests served at once by one policy: each device in its own guest."""
    if W.daemon is None or domid('aua1') is None or domid('aua2') is None:
        raise Fail('needs the guests and daemon of the scenarios before it')
    kbd, cold, hot = find('product', KBD), find('serial', COLD), find('serial', HOT2)
    if hot is None:
        hot = plug('hs2', HOT2, '4')
    wait('keyboard in aua2, both sticks in aua1',
         lambda: holders('aua2', kbd) == 1 and holders('aua1', cold) == 1 and holders('aua1', hot) == 1, 60)
    for b, g in ((kbd, 'aua2'), (cold, 'aua1'), (hot, 'aua1')):
        if dm_holds(g, b) != 1:
            raise Fail('%s is not in %s\'s device model' % (b, g))
        other = 'aua1' if g == 'aua2' else 'aua2'
        if holders(other, b) or dm_holds(other, b):
            raise Fail('%s is in %s too' % (b, other))
    unplug('hs2', HOT2)
    wait('the hot stick gone from aua1', lambda: holders('aua1', hot) == 0, 60)


def s4_capacity():
    """More devices than ports: a second controller made, the third device waits
    (max kept), and takes the port a detach frees."""
    stop_daemon()
    destroy('aua1')
    create('aua2')
    policy = """version: 1
domains:
  aua2:
    controller: { version: 3, ports: 1, max: 2 }
rules:
  - match: { product-name: "%s" }
    domain: aua2
    allow-dom0-lockout: true
  - match: { product-name: "%s" }
    domain: aua2
  - match: { serial: %s }
    domain: aua2
""" % (KBD, TABLET, COLD)
    W.daemon = Daemon(policy).start()
    busids = [find('product', KBD), find('product', TABLET), find('serial', COLD)]
    held = lambda: [b for b in busids if holders('aua2', b) == 1]
    wait('two of the three devices attached', lambda: len(held()) == 2, 90)
    time.sleep(10)
    run(['xl', 'usb-list', 'aua2'])
    W.daemon.ctl('domains')
    if controllers('aua2') != 2:
        raise Fail('aua2 has %d controllers, max is 2' % controllers('aua2'))
    if len(held()) != 2:
        raise Fail('%d devices attached with 2 one-port controllers' % len(held()))
    waiting = [b for b in busids if b not in held()][0]
    r = W.daemon.ctl('devices')
    states = sorted(d['state'] for d in r['devices'] if d.get('domain') == 'aua2')
    if states != ['attached', 'attached', 'waiting']:
        raise Fail('states %s, not two attached and one waiting' % states)
    give_up = held()[-1]
    W.daemon.ctl('detach', give_up)
    wait('the waiting %s attached in the freed port' % waiting,
         lambda: holders('aua2', waiting) == 1 and dm_holds('aua2', waiting) == 1, 60)
    if holders('aua2', give_up) != 0 or controllers('aua2') != 2:
        raise Fail('after the detach: %s held %d time(s), %d controllers'
                   % (give_up, holders('aua2', give_up), controllers('aua2')))


def s7_qmp():
    """The QMP mode: attach, detach and a guest reset through the guest's own socket."""
    stop_daemon()
    destroy('aua1')
    destroy('aua2')
    sock = '/run/xen/aua-aua3.qmp'
    create_with_socket('aua3', sock)
    policy = """version: 1
domains:
  aua3:
    qmp-socket: %s
    controller: { version: 3, ports: 8 }
rules:
  - match: { serial: %s }
    domain: aua3
""" % (sock, COLD)
    cold = find('serial', COLD)
    W.daemon = Daemon(policy).start()
    wait('the stick attached to aua3 over QMP', lambda: dm_holds('aua3', cold) == 1, 60)
    if W.daemon.state(serial=COLD) != 'attached':
        raise Fail('the daemon says %s' % W.daemon.state(serial=COLD))
    W.daemon.ctl('detach', cold)
    wait('the stick detached from aua3', lambda: dm_holds('aua3', cold) == 0, 30)
    W.daemon.ctl('attach', cold, 'aua3')
    wait('the stick attached again by hand', lambda: dm_holds('aua3', cold) == 1, 30)
    d = domid('aua3')
    say('guest reset: system_reset on the device model')
    r = qmp('/run/xen/qmp-libxl-%d' % d, [{'execute': 'system_reset'}])
    say('system_reset -> %s' % r)
    time.sleep(10)
    wait('the stick in aua3 once after the reset', lambda: dm_holds('aua3', cold) == 1, 60)
    if W.daemon.state(serial=COLD) != 'attached':
        raise Fail('after the reset the daemon says %s' % W.daemon.state(serial=COLD))


def s9_pvh_qusb():
    """A PVH guest: a PV USB controller (qusb, QEMU in dom0 the backend) made for it;
    full-speed devices attached, a SuperSpeed one refused once with the reason."""
    stop_daemon()
    for g in ('aua1', 'aua2', 'aua3'):
        destroy(g)
    create('aua4', pvh=True)
    policy = """version: 1
domains:
  aua4: {}
rules:
  - match: { product-name: "%s" }
    domain: aua4
    allow-dom0-lockout: true
  - match: { product-name: "%s" }
    domain: aua4
  - match: { serial: %s }
    domain: aua4
""" % (KBD, TABLET, COLD)
    kbd, tablet = find('product', KBD), find('product', TABLET)
    W.daemon = Daemon(policy).start()
    wait('the keyboard and the tablet in aua4\'s PV USB ports',
         lambda: holders('aua4', kbd) == 1 and holders('aua4', tablet) == 1, 90)
    run(['xl', 'usb-list', 'aua4'])
    types = sorted(c.get('type') for c in vusb('aua4').values())
    if types != ['qusb']:
        raise Fail('aua4\'s controllers are %s, not one qusb' % types)
    wait('the SuperSpeed stick failed', lambda: W.daemon.state(serial=COLD) == 'failed', 30)
    cold = W.daemon.device(serial=COLD)
    say('the stick: %s' % json.dumps(cold))
    if holders('aua4', find('serial', COLD)) != 0:
        raise Fail('the SuperSpeed stick was written into a PV USB port')
    for what in (dict(product=KBD), dict(product=TABLET)):
        # xenstore first, then the backend's answer: the state follows.
        wait('the daemon to count %s attached' % what,
             lambda: W.daemon.state(**what) == 'attached', 30)
    W.daemon.ctl('detach', tablet)
    wait('the tablet out of aua4', lambda: holders('aua4', tablet) == 0, 30)


def s10_mixed_and_by_hand():
    """One daemon, both backends: a QMP guest and a libxl guest in one policy; a
    device given by hand with xl while it runs is counted, never clobbered."""
    stop_daemon()
    for g in ('aua2', 'aua4'):
        destroy(g)
    sock = '/run/xen/aua-aua3.qmp'
    if domid('aua1') is None:
        create('aua1')
    create_with_socket('aua3', sock)
    run(['xl', 'usbctrl-attach', 'aua1', 'version=3', 'ports=2'], check=True)
    policy = """version: 1
domains:
  aua1:
    controller: { version: 3, ports: 2, max: 1 }
  aua3:
    qmp-socket: %s
rules:
  - match: { serial: %s }
    domain: aua3
  - match: { product-name: "%s" }
    domain: aua1
    allow-dom0-lockout: true
  - match: { serial: %s }
    domain: aua1
""" % (sock, COLD, KBD, HOT2)
    cold, kbd, tablet = find('serial', COLD), find('product', KBD), find('product', TABLET)
    W.daemon = Daemon(policy).start()
    wait('the stick in aua3 through its socket', lambda: dm_holds('aua3', cold) == 1, 60)
    wait('the keyboard in aua1 through libxl',
         lambda: holders('aua1', kbd) == 1 and dm_holds('aua1', kbd) == 1, 60)
    if holders('aua3', cold) != 0 or vusb('aua3'):
        raise Fail('aua3 got libxl controllers or ports: %s' % vusb('aua3'))
    # The tablet given by hand takes aua1's last port.
    t = usb_devices()[tablet]
    run(['xl', 'usbdev-attach', 'aua1', 'hostbus=%d' % t['busnum'], 'hostaddr=%d' % t['devnum']],
        check=True)
    wait('the daemon to see the tablet given by hand',
         lambda: 'which the daemon did not attach' in W.daemon.log_tail(200), 30)
    hot = plug('hs2', HOT2, '4')
    wait('the hot stick waiting for a port', lambda: W.daemon.state(serial=HOT2) == 'waiting', 30)
    time.sleep(5)
    if holders('aua1', hot) or holders('aua1', tablet) != 1 or controllers('aua1') != 1:
        raise Fail('aua1: stick held %d time(s), tablet %d, %d controllers'
                   % (holders('aua1', hot), holders('aua1', tablet), controllers('aua1')))
    # The tablet pulled out: removed from aua1, and the stick takes its port.
    pull_out('tablet', 'the tablet', lambda: find('product', TABLET) is None)
    wait('the hot stick in aua1 once the tablet is gone',
         lambda: holders('aua1', hot) == 1 and dm_holds('aua1', hot) == 1, 60)
    unplug('hs2', HOT2)


def s11_watch_override():
    """The event stream (auto-usb-attachctl watch) names where a device went; an
    attach by hand outlives a restart of the daemon."""
    stop_daemon()
    for g in ('aua3', 'aua4'):
        destroy(g)
    if domid('aua1') is None:
        create('aua1')
    W.daemon = Daemon(POLICY_HOT2_TO_AUA1).start()
    events = []
    watcher = subprocess.Popen([CTL, '--json', 'watch'], stdout=subprocess.PIPE, text=True,
                               errors='replace')

    def read():
        for line in watcher.stdout:
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({'unparsed': line})
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(1)
        hot = plug('hs2', HOT2, '4')

        def attached():
            return [e for e in events if e.get('event') == 'attached' and e.get('port') == hot]
        ev = wait('an "attached" event for %s' % hot, attached, 60)[0]
        say('watch: %s' % json.dumps(ev))
        held = vusb('aua1').get(ev.get('controller'), {}).get('ports', {}).get(ev.get('guest_port'))
        if held != hot or ev.get('domain') != 'aua1':
            raise Fail('the stream says %s, xenstore holds %r there' % (json.dumps(ev), held))
        if not any(e.get('event') == 'add' and e.get('port') == hot and e.get('action') == 'attach'
                   for e in events):
            raise Fail('no decision for %s in the stream: %s' % (hot, events))
        # By hand, the cold stick (no rule routes it) to aua1; then the daemon restarts.
        cold = find('serial', COLD)
        W.daemon.ctl('attach', cold, 'aua1')
        wait('the cold stick attached by hand', lambda: holders('aua1', cold) == 1 and
             W.daemon.state(serial=COLD) == 'attached', 60)
        W.daemon.stop()
        W.daemon.start()
        time.sleep(8)
        if holders('aua1', cold) != 1 or W.daemon.state(serial=COLD) != 'attached':
            raise Fail('after the restart: the cold stick held %d time(s), state %s'
                       % (holders('aua1', cold), W.daemon.state(serial=COLD)))
        W.daemon.ctl('detach', cold)
        wait('the cold stick back in dom0', lambda: holders('aua1', cold) == 0, 30)
        unplug('hs2', HOT2)
    finally:
        watcher.kill()
        watcher.wait()


SCENARIOS = [
    ('1-stale-port', s1_stale_port),
    ('2-hotplug-unplug', s2_hotplug_unplug),
    ('3-defaults-full-speed', s3_defaults_speeds),
    ('5-reboot-recreate', s5_reboot_recreate),
    ('6-sigkill-sighup', s6_sigkill_sighup),
    ('8-two-guests', s8_two_guests),
    ('4-second-controller', s4_capacity),
    ('7-qmp', s7_qmp),
    ('9-pvh-qusb', s9_pvh_qusb),
    ('10-mixed-by-hand', s10_mixed_and_by_hand),
    ('11-watch-override', s11_watch_override),
]


def main():
    only = set(sys.argv[1:])
    run(['xl', 'info'], quiet=True)
    run(['lsusb', '-t'])
    for busid, d in sorted(usb_devices().items()):
        say('dom0 USB %s %s %s serial=%s speed=%s' % (busid, d['id'], d['product'], d['serial'], d['speed']))
    for name, fn in SCENARIOS:
        if only and name not in only:
            continue
        t = time.time()
        say('SCENARIO %s: %s' % (name, fn.__doc__.split('\n')[0]))
        try:
            fn()
            print('XENVM-RESULT PASS %s (%.0f s)' % (name, time.time() - t), flush=True)
        except Exception as e:  # a scenario's own bug is its failure too
            if W.daemon is not None:
                say('daemon log, last lines:\n' + W.daemon.log_tail())
            run(['xl', 'list'])
            print('XENVM-RESULT FAIL %s %s: %s' % (name, type(e).__name__, str(e).replace('\n', ' ')[:500]),
                  flush=True)
            try:
                stop_daemon()
            except Exception as e2:
                say('stopping the daemon: %s' % e2)
    try:
        stop_daemon()
    except Fail as e:
        say(str(e))
    for g in ('aua1', 'aua2', 'aua3', 'aua4'):
        destroy(g)
    print('XENVM-DONE', flush=True)


if __name__ == '__main__':
    main()

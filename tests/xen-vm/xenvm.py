#!/usr/bin/env python3
"""Runs the real-Xen scenarios: boots Xen 4.17 and a Debian 12 dom0 under
QEMU's software emulation, with the daemon installed from a build tree, and
reports each scenario as a PASS or FAIL line.

    tests/xen-vm/xenvm.py BUILDDIR [SCENARIO...]

The dom0 image comes from tests/xen-vm/build-image (cached outside the
clone).  For each run this makes a second disk, the payload: BUILDDIR's
`make install DESTDIR=` tree, dom0/init and dom0/scenarios.py.  The outer
QEMU gives dom0 an xHCI with a tablet, a storage stick (serial COLDSTICK01)
and a hub with a keyboard behind it; dom0 asks for more sticks to be
plugged or unplugged by printing "XENVM-HOST plug ID SERIAL PORT" /
"XENVM-HOST unplug ID" on its console, which this script turns into QMP
commands to the outer QEMU.

A boot that fails or times out fails every scenario that did not report,
with the console's last lines printed; nothing is skipped.  QEMU is started
and stopped here, by pid, whatever happens.  The console log and the
work files stay in the work folder printed at the end (removed on success
unless AUA_XENVM_KEEP=1).

Environment: AUA_XENVM_TIMEOUT (seconds for the whole boot, default 2400),
AUA_XENVM_CACHE (the image cache, see build-image).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from qmpcall import qmp  # noqa: E402
# The scenarios dom0/scenarios.py runs, in its order; one that does not
# report is a failure.
SCENARIOS = ['1-stale-port', '2-hotplug-unplug', '3-defaults-full-speed', '5-reboot-recreate',
             '6-sigkill-sighup', '8-two-guests', '4-second-controller', '7-qmp', '9-pvh-qusb',
             '10-mixed-by-hand', '11-watch-override']
# guest_loglvl stays Xen's default: the guests' firmware chatter ("(d8)
# SeaBIOS...") would otherwise land in the middle of dom0's console lines.
XEN_ARGS = ('console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 '
            'loglvl=all')
# What dom0 says on the console, field by field: text another domain's output
# may have glued to a line is not taken for part of it.
HOST_RE = re.compile(r'XENVM-HOST (?:(plug) ([\w-]+) ([\w-]+) (\d+(?:\.\d+)*)|(unplug) ([\w-]+))')
RESULT_RE = re.compile(r'XENVM-RESULT (PASS|FAIL) ([\w-]+)(.*)')
# qemu64 with SVM and nested paging: Xen reports SVM and HAP.  `-cpu max`
# crashes the PV dom0 under TCG (SMAP/SMEP).
CPU = 'qemu64,+svm,+npt'
# The emulated xHCI's PCI address, so that dom0's ID_PATH is fixed.
XHCI_ADDR = '0x5'


def log(msg):
    print('xen-vm: %s' % msg, flush=True)


def sh(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def make_payload(builddir, work):
    root = os.path.join(work, 'payload')
    os.makedirs(root)
    with open(os.path.join(work, 'install.log'), 'w') as out:
        r = subprocess.run(['make', '-C', builddir, 'install', 'DESTDIR=' + os.path.join(root, 'root')],
                           stdout=out, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError('make install failed, see %s/install.log' % work)
    for f in ('init', 'scenarios.py'):
        shutil.copy(os.path.join(HERE, 'dom0', f), os.path.join(root, f))
    shutil.copy(os.path.join(HERE, 'qmpcall.py'), os.path.join(root, 'qmpcall.py'))
    os.chmod(os.path.join(root, 'init'), 0o755)
    img = os.path.join(work, 'payload.img')
    with open(img, 'wb') as f:
        f.truncate(256 << 20)
    sh(['mkfs.ext4', '-q', '-F', '-L', 'xenvm', '-d', root, img])
    return img


class Outer:
    """The outer QEMU: its console, its QMP socket, and the sticks dom0 asks for."""

    def __init__(self, image, payload, work, only):
        self.work = work
        self.qmp_path = os.path.join(work, 'qmp.sock')
        self.console_path = os.path.join(work, 'console.log')
        self.console = open(self.console_path, 'w', buffering=1)
        self.lines = []
        self.results = {}
        self.done = False
        self.lock = threading.Lock()
        self.t0 = time.time()
        self.nodes = set()
        for name in ('cold',):
            with open(os.path.join(work, name + '.img'), 'wb') as f:
                f.truncate(16 << 20)
        kernel_args = 'root=/dev/vda rw console=hvc0 earlyprintk=xen init=/sbin/xenvm-init'
        if only:
            # '+': a comma would end the module's arguments in -initrd
            kernel_args += ' xenvm_only=' + '+'.join(only)
        argv = ['nice', '-n', '5', 'qemu-system-x86_64',
                '-machine', 'q35', '-accel', 'tcg', '-cpu', CPU, '-m', '3G', '-smp', '2',
                '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
                '-qmp', 'unix:%s,server=on,wait=off' % self.qmp_path,
                '-kernel', os.path.join(image, 'xen'), '-append', XEN_ARGS,
                '-initrd', '%s %s,%s' % (os.path.join(image, 'vmlinuz'), kernel_args,
                                         os.path.join(image, 'initrd.img')),
                # The cached image is never written: snapshot=on keeps dom0's writes aside.
                '-drive', 'file=%s,format=raw,if=virtio,snapshot=on,cache=unsafe' % os.path.join(image, 'dom0.img'),
                '-drive', 'file=%s,format=raw,if=virtio,readonly=on' % payload,
                '-device', 'qemu-xhci,id=xhci,bus=pcie.0,addr=%s' % XHCI_ADDR,
                '-device', 'usb-tablet,id=tablet,bus=xhci.0,port=1',
                '-drive', 'if=none,id=cold,format=raw,file=%s' % os.path.join(work, 'cold.img'),
                '-device', 'usb-storage,id=coldstick,bus=xhci.0,port=2,drive=cold,serial=COLDSTICK01',
                '-device', 'usb-hub,id=hub,bus=xhci.0,port=3',
                '-device', 'usb-kbd,id=kbd,bus=xhci.0,port=3.1']
        log('booting: %s' % ' '.join(argv))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(work, 'qemu.stderr'), 'w'))
        self.reader = threading.Thread(target=self.read_console, daemon=True)
        self.reader.start()

    def read_console(self):
        buf = b''
        for chunk in iter(lambda: self.proc.stdout.read1(4096), b''):
            buf += chunk
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                self.line(line.decode('utf-8', 'replace').rstrip('\r'))
        if buf:
            self.line(buf.decode('utf-8', 'replace'))

    def line(self, text):
        with self.lock:
            self.lines.append(text)
            del self.lines[:-400]
            self.console.write('[%7.1f] %s\n' % (time.time() - self.t0, text))
        i = text.find('XENVM-')
        if i < 0:
            return
        m = RESULT_RE.match(text, i)
        h = HOST_RE.match(text, i)
        if m:
            self.results[m.group(2)] = (m.group(1), m.group(3).strip())
            log('%s %s %s' % (m.group(1), m.group(2), m.group(3).strip()))
        elif h:
            words = [w for w in h.groups() if w is not None]
            threading.Thread(target=self.host_request, args=(words,), daemon=True).start()
        elif text.startswith('XENVM-DONE', i):
            self.done = True
        elif text.startswith('XENVM-FATAL', i):
            log(text[i:])

    def host_request(self, words):
        """plug ID SERIAL PORT: a stick on the xHCI's PORT; unplug ID."""
        try:
            if words[0] == 'plug' and len(words) == 4:
                devid, serial, port = words[1:]
                cmds = []
                if devid not in self.nodes:
                    img = os.path.join(self.work, devid + '.img')
                    with open(img, 'wb') as f:
                        f.truncate(16 << 20)
                    # A node of its own, so that the stick can be plugged
                    # again after device_del (a -drive would go with it).
                    cmds.append({'execute': 'blockdev-add', 'arguments': {
                        'driver': 'raw', 'node-name': devid,
                        'file': {'driver': 'file', 'filename': img}}})
                    self.nodes.add(devid)
                cmds.append({'execute': 'device_add', 'arguments': {
                    'driver': 'usb-storage', 'bus': 'xhci.0', 'port': port, 'drive': devid,
                    'serial': serial, 'id': devid}})
            elif words[0] == 'unplug' and len(words) == 2:
                cmds = [{'execute': 'device_del', 'arguments': {'id': words[1]}}]
            else:
                raise ValueError('bad request %r' % words)
            replies = qmp(self.qmp_path, cmds)
            self.note('HOST %s -> %s' % (' '.join(words), json.dumps(replies)))
        except (OSError, ValueError) as e:
            self.note('HOST %s failed: %r' % (' '.join(words), e))

    def note(self, text):
        with self.lock:
            self.console.write('[%7.1f] xenvm.py: %s\n' % (time.time() - self.t0, text))

    def wait(self, timeout):
        end = time.time() + timeout
        while self.proc.poll() is None and time.time() < end:
            time.sleep(1)
        return self.proc.poll() is not None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(10)

    def tail(self, n):
        with self.lock:
            return self.lines[-n:]


def main():
    if len(sys.argv) < 2:
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    builddir = os.path.abspath(sys.argv[1])
    only = sys.argv[2:]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        print('xen-vm: unknown scenario(s) %s; known: %s' % (' '.join(unknown), ' '.join(SCENARIOS)),
              file=sys.stderr)
        return 2
    expected = only or SCENARIOS
    timeout = int(os.environ.get('AUA_XENVM_TIMEOUT', '2400'))
    work = tempfile.mkdtemp(prefix='aua-xenvm.')
    start = time.time()
    outer = None
    why = None
    try:
        image = subprocess.run([os.path.join(HERE, 'build-image')], check=True, stdout=subprocess.PIPE,
                               text=True).stdout.strip().splitlines()[-1]
        log('dom0 image %s (ready after %.0f s)' % (image, time.time() - start))
        payload = make_payload(builddir, work)
        outer = Outer(image, payload, work, only)
        if not outer.wait(timeout):
            why = 'timed out after %d s' % timeout
        elif not outer.done:
            with open(os.path.join(work, 'qemu.stderr'), errors='replace') as f:
                err = f.read().strip()
            why = 'the VM stopped before the scenarios ended (QEMU exit %d%s)' % (
                outer.proc.returncode, ': ' + err[-500:] if err else '')
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        why = 'could not boot: %s' % e
    finally:
        if outer is not None:
            outer.stop()
    failed = 0
    for name in expected:
        verdict, detail = outer.results.get(name, ('FAIL', '(no result: %s)' % why)) if outer else \
            ('FAIL', '(%s)' % why)
        print('%s: xen-vm/%s %s' % (verdict, name, detail), flush=True)
        failed += verdict != 'PASS'
    if why or failed:
        if outer is not None:
            print('xen-vm: the console\'s last lines (%s):' % outer.console_path)
            for line in outer.tail(80):
                print('    ' + line)
        if why:
            print('xen-vm: %s' % why)
    log('%d scenario(s), %d failed, %.0f s in all; work folder %s' % (len(expected), failed,
                                                                     time.time() - start, work))
    if not failed and not why and os.environ.get('AUA_XENVM_KEEP') != '1':
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed or why else 0


if __name__ == '__main__':
    sys.exit(main())

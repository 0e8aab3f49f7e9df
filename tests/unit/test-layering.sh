#!/bin/bash
# The core (everything linked into libaua-core.a) talks to udev, libxl,
# xenstore and QMP only through device.h and hv.h: none of their headers
# may appear in it.  Each adapter is one file.
set -u
src=${AUA_SRCDIR:-$(dirname "$0")/../..}/src
core="commands control device domain generate hv-qmp qmp hv-dryrun log match notify options policy report router state strmap"
bad=0
for m in $core; do
    for f in "$src/$m.c" "$src/$m.h"; do
        [ -f "$f" ] || continue
        if grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](libudev|libxl|libxlutil|xenstore|xenctrl|xentoollog)[^>"]*[>"]' "$f"; then
            echo "FAIL: $f includes an adapter's header"
            bad=1
        fi
    done
done
# And the check itself must be able to fail: the udev adapter does include libudev.
grep -q '#include <libudev.h>' "$src/udev-source.c" || { echo "FAIL: the check found no libudev include in udev-source.c"; bad=1; }
# No shell anywhere: device strings and policy values must never reach one.
if grep -nE '\b(system|popen|execl|execlp|execle|execv|execvp|execvpe)[[:space:]]*\(' "$src"/*.c "$src"/../ctl/*.c; then
    echo "FAIL: a shell or exec call in the daemon or the client"
    bad=1
fi
[ $bad -eq 0 ] && echo "PASS: core includes no adapter header, no shell anywhere"
exit $bad

#!/bin/bash
# The core (everything linked into libaua-core.a) talks to udev, libxl,
# xenstore and QMP only through device.h and hv.h: none of their headers
# may appear in it.  Each adapter is one file; the libxl one is built into a
# module of its own, which the daemon opens only when it uses libxl.
set -u
src=${AUA_SRCDIR:-$(dirname "$0")/../..}/src
core="commands control device domain generate hv-qmp qmp hv-dryrun hv-mux log match notify options policy policy-check policy-files report router speed state strmap trust bounds"
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
# The libxl adapter is a module the daemon opens only when it uses libxl: no
# other file includes the Xen headers, the daemon does not link the Xen
# libraries (a dry-run daemon would load them all), and the module exports
# its entry point only.
xen_headers='^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](libxl|libxlutil|xenstore|xenctrl|xentoollog)[^>"]*[>"]'
for f in "$src"/*.c "$src"/*.h; do
    [ "$(basename "$f")" = hv-libxl.c ] && continue
    if grep -nE "$xen_headers" "$f"; then
        echo "FAIL: $f includes a Xen header: only the libxl module (hv-libxl.c) may"
        bad=1
    fi
done
grep -qE "$xen_headers" "$src/hv-libxl.c" || { echo "FAIL: the check found no Xen include in hv-libxl.c"; bad=1; }
build=${AUA_BUILDDIR:-}
if [ -n "$build" ] && [ -x "$build/src/auto-usb-attach" ] && [ -f "$build/src/auto-usb-attach-libxl.so" ]; then
    if readelf -d "$build/src/auto-usb-attach" | grep -E 'NEEDED.*\[libxen'; then
        echo "FAIL: the daemon links a Xen library: only its libxl module may"
        bad=1
    fi
    readelf -d "$build/src/auto-usb-attach-libxl.so" | grep -qE 'NEEDED.*\[libxenlight' ||
        { echo "FAIL: the check found no libxenlight in the libxl module's libraries"; bad=1; }
    exports=$(nm -D --defined-only "$build/src/auto-usb-attach-libxl.so" | awk '{ print $3 }' | tr '\n' ' ')
    if [ "$exports" != "hv_libxl_new " ]; then
        echo "FAIL: the libxl module exports '$exports', not its entry point hv_libxl_new only"
        bad=1
    fi
else
    echo "the built daemon and module were not checked (no AUA_BUILDDIR with them)"
fi
# No shell anywhere: device strings and policy values must never reach one.
if grep -nE '\b(system|popen|execl|execlp|execle|execv|execvp|execvpe)[[:space:]]*\(' "$src"/*.c "$src"/../ctl/*.c; then
    echo "FAIL: a shell or exec call in the daemon or the client"
    bad=1
fi
[ $bad -eq 0 ] && echo "PASS: core includes no adapter header, only the libxl module uses Xen, no shell anywhere"
exit $bad

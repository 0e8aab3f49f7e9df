#!/bin/bash
# The command line without udev: --help, --version, --check on good and bad
# policies (exit codes and exact messages), the old script's options and the
# errors of mixing them.
set -u
bin=${AUA_DAEMON:-src/auto-usb-attach}
srcdir=${AUA_SRCDIR:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect NAME EXIT_CODE PATTERN -- COMMAND...: runs COMMAND, checks its exit
# code and that its output (stdout and stderr) matches PATTERN (grep -E).
expect() {
    local name=$1 code=$2 pattern=$3 out rc
    shift 4
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -ne "$code" ]; then
        echo "FAIL: $name: exit $rc, expected $code; output:"; echo "$out"
        failures=$((failures + 1))
    elif ! grep -qE -- "$pattern" <<<"$out"; then
        echo "FAIL: $name: output does not match /$pattern/:"; echo "$out"
        failures=$((failures + 1))
    else
        echo "ok: $name"
    fi
}

expect help 0 '^Usage: auto-usb-attach' -- "$bin" --help
expect help-lists-old-options 0 '--specific-device' -- "$bin" --help
expect version 0 '^auto-usb-attach [0-9]+\.[0-9]+' -- "$bin" --version
expect check-example 0 'example.yaml: OK \(2 domains, 4 rules\)' -- "$bin" --check -c "$srcdir/policy/example.yaml"

printf 'version: 1\ndomains:\n  vault: {}\nrules:\n  - match: { id: "1050:zz" }\n    domain: vault\n  - match: { colour: red }\n    domain: nowhere\n' >"$tmp/bad.yaml"
expect check-bad-first-error 1 "^$tmp/bad.yaml:5:18: bad vendor:product '1050:zz'" -- "$bin" --check -c "$tmp/bad.yaml"
expect check-bad-second-error 1 "^$tmp/bad.yaml:7:14: unknown key 'colour' in 'match'" -- "$bin" --check -c "$tmp/bad.yaml"
expect check-bad-third-error 1 "^$tmp/bad.yaml:8:13: unknown domain 'nowhere'" -- "$bin" --check -c "$tmp/bad.yaml"
expect check-missing-file 1 "^$tmp/none.yaml:1:1: cannot open: No such file" -- "$bin" --check -c "$tmp/none.yaml"

# A policy file others may write is refused, unless asked not to.
cp "$srcdir/policy/example.yaml" "$tmp/open.yaml"
chmod 0666 "$tmp/open.yaml"
expect policy-world-writable 1 "^$tmp/open.yaml:1:1: refused: the file is writable by others than root \(mode 0666" -- "$bin" --check -c "$tmp/open.yaml"
expect policy-insecure-accepted 0 'open.yaml: OK' -- "$bin" --check --insecure-policy -c "$tmp/open.yaml"
chmod 0644 "$tmp/open.yaml"
chown nobody "$tmp/open.yaml"
expect policy-not-roots 1 "refused: the file is not owned by root" -- "$bin" --check -c "$tmp/open.yaml"
expect policy-dry-run-not-checked 0 '' -- "$bin" --once -c "$tmp/open.yaml"

expect legacy-check 0 '^command line: OK \(1 domain, 3 rules\)' -- "$bin" -d win10 -u usb3 -u 1-1 -x 1050:0407 --check
expect legacy-mixed-with-c 2 'cannot be combined with -d, -u or -x' -- "$bin" -c "$srcdir/policy/example.yaml" -d win10
expect legacy-hub-without-domain 2 '-u and -x need -d DOMAIN' -- "$bin" -u usb3 --check
expect legacy-bad-hub 2 "-u: bad hub 'usbX'" -- "$bin" -d win10 -u usbX --check
expect legacy-bad-id 2 "-x: bad device id '1050-0407'" -- "$bin" -d win10 -x 1050-0407 --check
expect legacy-bad-usb-version 2 "--usb-version: bad version '4'" -- "$bin" -d win10 --usb-version 4 --check
expect unknown-option 2 "unknown option '--colour'" -- "$bin" --colour
expect missing-value 2 "option '-d' needs a value" -- "$bin" -d

if [ $failures -eq 0 ]; then echo "PASS: test-cli"; exit 0; fi
echo "FAIL: test-cli: $failures check(s) failed"
exit 1

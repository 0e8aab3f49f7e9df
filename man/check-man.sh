#!/bin/bash
# Checks the man pages: each man/*.scd renders with scdoc, the roff renders
# with groff without a warning, and every option that the daemon's --help
# prints (long and short) is documented in auto-usb-attach(8).  When the
# control client is built, its --help options must be in auto-usb-attachctl(8).
#
# Environment: AUA_DAEMON (the built daemon, default src/auto-usb-attach),
# AUA_CTL (the built client, default ctl/auto-usb-attachctl if it exists),
# AUA_SRCDIR (the source tree, default the directory above this script).
# Debian packages: scdoc, groff-base.  Exits 0 when all is well, 1 when a
# check fails (saying which), 99 when it cannot run.
set -u

srcdir=${AUA_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
daemon=${AUA_DAEMON:-src/auto-usb-attach}
ctl=${AUA_CTL:-ctl/auto-usb-attachctl}

for tool in scdoc:scdoc groff:groff-base; do
    if ! command -v "${tool%%:*}" >/dev/null; then
        echo "check-man.sh: ${tool%%:*} is missing (apt-get install ${tool#*:})"
        exit 99
    fi
done
if [ ! -x "$daemon" ]; then
    echo "check-man.sh: the daemon $daemon is not built (set AUA_DAEMON)"
    exit 99
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aua-man.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

failed=0
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}

# Renders SCD into the roff file OUT as the build does, with sample values
# for the placeholders.
render() {
    local scd=$1 out=$2
    if ! scdoc <"$scd" >"$out.tmp" 2>"$tmp/scdoc.err"; then
        fail "$(basename "$scd"): scdoc failed: $(cat "$tmp/scdoc.err")"
        return 1
    fi
    sed -e 's|@sysconfdir@|/etc|g' -e 's|@sbindir@|/usr/sbin|g' -e 's|@VERSION@|0|g' \
        -e 's|@pkglibdir@|/usr/lib/auto-usb-attach|g' \
        "$out.tmp" >"$out"
}

# Prints the text of a rendered page, one long line per paragraph: no
# hyphenation, no line breaks inside paragraphs, no bold or underline.
text_of() {
    groff -t -man -Tascii -P-cbou -rLL=2000n -rHY=0 "$1" 2>/dev/null
}

pages=("$srcdir"/man/*.scd)
if [ ! -e "${pages[0]}" ]; then
    echo "check-man.sh: no man/*.scd under $srcdir"
    exit 99
fi
for scd in "${pages[@]}"; do
    name=$(basename "${scd%.scd}")
    roff=$tmp/$name
    render "$scd" "$roff" || continue
    # -ww: every groff warning; -z: no output, only the diagnostics.
    warnings=$(groff -t -man -Tutf8 -ww -z "$roff" 2>&1)
    if [ -n "$warnings" ]; then
        fail "$name: groff warns:"
        printf '%s\n' "$warnings" | sed 's/^/    /'
        continue
    fi
    # Each page has its NAME and SYNOPSIS sections.
    for section in NAME SYNOPSIS DESCRIPTION; do
        grep -q "^\.SH $section\$" "$roff" || fail "$name: no $section section"
    done
    echo "ok   $name renders"
done

# The options that PROGRAM --help prints: words such as -c, --policy at the
# start of its option lines ("  -c, --policy FILE   ...").
help_options() {
    "$1" --help 2>/dev/null |
        grep -E '^[[:space:]]+-' |
        sed -E 's/^[[:space:]]+//; s/[[:space:]]{2,}.*$//' |
        grep -oE '(^|[ ,])--?[A-Za-z0-9][A-Za-z0-9-]*' |
        sed -E 's/^[ ,]//' | sort -u
}

# Checks that every option of PROGRAM's --help is in PAGE's text.
check_options() {
    local program=$1 page=$2 text options opt missing=()
    options=$(help_options "$program")
    if [ -z "$options" ]; then
        fail "$program --help prints no options"
        return
    fi
    if [ ! -f "$tmp/$page" ]; then
        fail "no man page $page for $program"
        return
    fi
    text=$(text_of "$tmp/$page")
    while read -r opt; do
        # The option as a word of its own: not a part of a longer option.
        if ! grep -qE -- "(^|[^A-Za-z0-9-])${opt}([^A-Za-z0-9-]|\$)" <<<"$text"; then
            missing+=("$opt")
        fi
    done <<<"$options"
    if [ ${#missing[@]} -gt 0 ]; then
        fail "$page does not document these options of $program --help: ${missing[*]}"
    else
        echo "ok   $page documents the $(wc -l <<<"$options") options of $(basename "$program") --help"
    fi
}

check_options "$daemon" auto-usb-attach.8
if [ -x "$ctl" ]; then
    check_options "$ctl" auto-usb-attachctl.8
else
    echo "note $ctl is not built: the options of auto-usb-attachctl(8) are not compared"
fi

if [ "$failed" -gt 0 ]; then
    echo "$failed check(s) failed"
    exit 1
fi
echo "all man pages render and document every option"

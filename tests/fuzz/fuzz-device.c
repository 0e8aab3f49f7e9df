/*
 * libFuzzer harness of the parsers of untrusted device data: the raw
 * `descriptors` attribute (device_parse_descriptors), udev's
 * ID_USB_INTERFACES (device_parse_interfaces), port paths
 * (device_port_parse, device_port_below), and the escaping of device
 * strings for logs (log_escape) and JSON (log_utf8).
 *
 * Checked beyond memory errors: the interface count is bounded; log_escape
 * writes no control byte (C0, DEL or C1), ends within its buffer, cuts only
 * at a character boundary and, when nothing was cut, can be undone into the
 * input; log_utf8 gives valid UTF-8, and valid input back unchanged.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "log.h"

#define FUZZ_NAME "fuzz-device"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init("fuzz-device", LOG_LEVEL_ERROR, true);
    return 0;
}

/*
 * Strict UTF-8 (RFC 3629: no overlong forms, surrogates or values past
 * U+10FFFF), written apart from log.c's so that one does not vouch for the
 * other.
 */
static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* Undoes log_escape's \xNN, \" and \\; returns the length, or -1 if malformed. */
static long unescape(const char *s, char *out)
{
    size_t o = 0;

    while (*s) {
        if (*s != '\\') {
            out[o++] = *s++;
            continue;
        }
        if (s[1] == '"' || s[1] == '\\') {
            out[o++] = s[1];
            s += 2;
        } else if (s[1] == 'x' && s[2] && s[3]) {
            char hex[3] = { s[2], s[3], 0 }, *end;
            unsigned long v = strtoul(hex, &end, 16);

            if (*end)
                return -1;
            out[o++] = (char)v;
            s += 4;
        } else if (s[1] == 'u' && s[2] && s[3] && s[4] && s[5]) {
            /* A line break or bidi control, U+2028..U+2069: three bytes of UTF-8. */
            char hex[5] = { s[2], s[3], s[4], s[5], 0 }, *end;
            unsigned long v = strtoul(hex, &end, 16);

            if (*end || v < 0x2028 || v > 0x2069)
                return -1;
            out[o++] = (char)0xe2;
            out[o++] = (char)(0x80 | (v >> 6 & 0x3f));
            out[o++] = (char)(0x80 | (v & 0x3f));
            s += 6;
        } else {
            return -1;
        }
    }
    out[o] = '\0';
    return (long)o;
}

/* What log_escape promises for s in a buffer of exactly len bytes. */
static void check_escape(const char *s, size_t len, const char *full)
{
    char *buf = malloc(len ? len : 1), *back;
    const unsigned char *p;
    size_t n;
    long blen;

    if (!buf)
        return;
    if (len == 0) {
        /* Nothing may be written; malloc(1) above lets the byte be compared. */
        buf[0] = 'Z';
        CHECK(log_escape(s, buf, 0) == buf, "log_escape did not return buf");
        CHECK(buf[0] == 'Z', "log_escape wrote into a 0-byte buffer");
        free(buf);
        return;
    }
    CHECK(log_escape(s, buf, len) == buf, "log_escape did not return buf");
    CHECK(memchr(buf, '\0', len), "no NUL within the %zu-byte buffer", len);
    n = strlen(buf);
    for (p = (const unsigned char *)buf; *p; p++) {
        CHECK(*p >= 0x20 && *p != 0x7f, "control byte %#x at %zu of \"%s\"", *p,
              (size_t)(p - (const unsigned char *)buf), buf);
        CHECK(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0), "C1 control U+%04X at %zu",
              p[1], (size_t)(p - (const unsigned char *)buf));
    }
    CHECK(valid_utf8((const unsigned char *)buf, n), "escaped output is not UTF-8");
    /* A cut output is the start of the whole one, then "..." if there is room. */
    if (strcmp(buf, full) != 0) {
        size_t keep = n;

        if (len >= 4) {
            CHECK(n >= 3 && strcmp(buf + n - 3, "...") == 0,
                  "cut output \"%s\" (len %zu) does not end in ...", buf, len);
            keep = n - 3;
        }
        CHECK(strncmp(buf, full, keep) == 0, "cut output \"%s\" is not a prefix of \"%s\"", buf,
              full);
        /* Cut between characters and escapes: what is kept undoes into a prefix. */
        buf[keep] = '\0';
        back = malloc(keep + 1);
        if (back) {
            blen = unescape(buf, back);
            CHECK(blen >= 0, "cut output \"%s\" ends inside an escape", buf);
            CHECK(strncmp(back, s ? s : "(none)", (size_t)blen) == 0,
                  "cut output \"%s\" is not the escape of a prefix", buf);
            free(back);
        }
    }
    free(buf);
}

static void check_strings(const char *s, size_t slen, uint8_t sel)
{
    /* Every byte becomes at most 8 ("\xc2\x85" is two bytes -> 8), plus NUL. */
    size_t big = slen * 8 + 16;
    char *full = malloc(big), *back = malloc(big);
    char *clean;
    long blen;

    if (!full || !back)
        goto out;
    log_escape(s, full, big);
    CHECK(strlen(full) < big - 4, "the big buffer was not big enough");
    blen = unescape(full, back);
    CHECK(blen >= 0, "log_escape output \"%s\" is malformed", full);
    CHECK((size_t)blen == slen && memcmp(back, s, slen) == 0,
          "log_escape output \"%s\" does not undo into the input", full);
    /* Small buffers, where the cutting and the "..." happen. */
    check_escape(s, sel % 24, full);
    check_escape(s, (sel >> 3) % 64 + 1, full);
    check_escape(NULL, sel % 12, "(none)");

    clean = log_utf8(s);
    if (clean) {
        size_t clen = strlen(clean);

        CHECK(valid_utf8((const unsigned char *)clean, clen), "log_utf8 output is not UTF-8");
        if (valid_utf8((const unsigned char *)s, slen))
            CHECK(clen == slen && memcmp(clean, s, slen) == 0,
                  "log_utf8 changed valid UTF-8");
        CHECK(clen <= slen * 3, "log_utf8 grew %zu bytes into %zu", slen, clen);
        free(clean);
    }
out:
    free(full);
    free(back);
}

static void check_port(const char *s)
{
    unsigned bus = 0, depth = 0;

    if (device_port_parse(s, &bus, &depth) == 0) {
        CHECK(bus >= 1 && bus <= 999 && depth <= DEVICE_MAX_PORT_DEPTH,
              "port \"%s\" parsed as bus %u depth %u", s, bus, depth);
        CHECK(depth > 0 || strncmp(s, "usb", 3) == 0, "port \"%s\" has depth 0", s);
    }
    /* Nothing is below a hub that does not parse, nor is anything below itself. */
    CHECK(!device_port_below(s, s), "\"%s\" is below itself", s);
    if (device_port_parse(s, &bus, &depth) < 0)
        CHECK(!device_port_below(s, "usb1") && !device_port_below(s, "1-1"),
              "unparsable port \"%s\" is below a hub", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct usb_device *dev = device_new("/devices/fuzz", "1-1");
    uint8_t *raw;
    char *str;
    size_t slen;
    int n;

    if (!dev)
        return 0;
    /* Exact-size copies: a read one past the end is an ASan report. */
    raw = malloc(size ? size : 1);
    str = malloc(size + 1);
    if (!raw || !str)
        goto out;
    memcpy(raw, data, size);
    n = device_parse_descriptors(dev, raw, size);
    CHECK(n == -22 || (n >= 0 && n <= DEVICE_MAX_IFACES && (unsigned)n == dev->n_ifaces),
          "device_parse_descriptors returned %d, n_ifaces %u", n, dev->n_ifaces);

    /* The strings end at the first NUL, as a C string from udev would. */
    memcpy(str, data, size);
    str[size] = '\0';
    slen = strlen(str);
    n = device_parse_interfaces(dev, str);
    CHECK(n == -22 || (n >= 0 && n <= DEVICE_MAX_IFACES && (unsigned)n == dev->n_ifaces),
          "device_parse_interfaces returned %d, n_ifaces %u", n, dev->n_ifaces);
    CHECK(device_set_str(&dev->serial, str) == 0, "device_set_str failed");
    CHECK(!dev->serial || strlen(dev->serial) <= DEVICE_STR_MAX, "serial kept %zu bytes",
          strlen(dev->serial));
    check_port(str);
    check_strings(str, slen, size ? data[size - 1] : 0);
out:
    free(raw);
    free(str);
    device_free(dev);
    return 0;
}

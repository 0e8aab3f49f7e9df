/*
 * The policy's values checked one by one: globs, vendor and product ids,
 * hubs, connectors, guest names, class names (the one table of them),
 * controller settings.  The YAML reader (policy.c) and the old script's
 * command line (options.c) both use them, so that a value means the same
 * whichever way it was given.  Each check returns NULL for a well-formed
 * value, or a static string saying what was expected.
 */
#include "config.h"

#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"

const char *policy_check_glob(const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\') {
            if (!p[1])
                return "a glob must not end in a lone backslash";
            p++;
        } else if (*p == '[') {
            const char *q = p + 1;

            if (*q == '!' || *q == '^')
                q++;
            if (*q == ']')
                q++;
            while (*q && *q != ']')
                q++;
            if (!*q)
                return "a '[' in a glob has no closing ']'";
            p = q;
        }
    }
    return NULL;
}

const char *policy_check_id_half(const char *value)
{
    size_t n = strlen(value);
    bool glob = false;

    if (n == 0 || n > 16)
        return "expected four hex digits or a glob such as 10*";
    for (const char *p = value; *p; p++) {
        char c = *p;

        /* Not strchr: two calls per character were 2% of a 10,000-rule load. */
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '!' || c == '-')
            glob = true;
        else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return "expected four hex digits or a glob such as 10*";
    }
    if (!glob && n != 4)
        return "expected four hex digits or a glob such as 10*";
    return glob ? policy_check_glob(value) : NULL;
}

const char *policy_check_hub(const char *value)
{
    unsigned bus, depth;

    if (device_port_parse(value, &bus, &depth) < 0 && device_id_path_parse(value, &depth) < 0)
        return "expected a root hub such as usb3, a hub's port path such as 1-1.4, or a "
               "path such as pci-0000:00:14.0, pci-0000:00:14.0-usb-0:1, "
               "pci-0000:00:14.0-usbv3 or pci-0000:00:14.0-usbv3-0:1";
    return NULL;
}

const char *policy_check_connector(const char *value)
{
    unsigned depth, rev;

    if (device_id_path_parse_rev(value, &depth, &rev) < 0 || rev == 0 || depth == 0)
        return "expected the path of a port with its USB revision, such as "
               "pci-0000:00:14.0-usbv3-0:1 (--once --json shows each device's "
               "path_with_revision)";
    return NULL;
}

const char *policy_check_domain_name(const char *value)
{
    size_t n = strlen(value);

    if (n == 0 || n > AUA_DOMAIN_NAME_MAX)
        return "a domain name has 1 to 64 characters";
    for (const char *p = value; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || strchr("_.+-", *p)))
            return "a domain name has only letters, digits and _ . + -";
    return NULL;
}

static const struct {
    const char *name;
    int cls;
} class_names[] = {
    { "audio", 0x01 },
    { "comm", 0x02 },
    { "cdc", 0x02 },
    { "hid", 0x03 },
    { "physical", 0x05 },
    { "image", 0x06 },
    { "printer", 0x07 },
    { "storage", 0x08 },
    { "mass-storage", 0x08 },
    { "hub", 0x09 },
    { "cdc-data", 0x0a },
    { "smart-card", 0x0b },
    { "ccid", 0x0b },
    { "content-security", 0x0d },
    { "video", 0x0e },
    { "personal-healthcare", 0x0f },
    { "audio-video", 0x10 },
    { "billboard", 0x11 },
    { "type-c-bridge", 0x12 },
    { "diagnostic", 0xdc },
    { "wireless", 0xe0 },
    { "bluetooth", 0xe0 },
    { "misc", 0xef },
    { "application", 0xfe },
    { "vendor", 0xff },
};

static int parse_class_part(const char *s, size_t n)
{
    int v = 0;

    if (n == 1 && s[0] == '*')
        return -1;
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        n -= 2;
    }
    if (n == 0 || n > 2)
        return -2;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -2;
    }
    return v;
}

const char *policy_parse_class(const char *value, struct class_match *out)
{
    static const char *const bad =
        "expected a class name (hid, storage, smart-card, audio, video...) "
        "or hex class[:subclass[:protocol]] such as 03 or 03:01:01";
    int parts[3] = { -1, -1, -1 };
    const char *p = value;

    for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++) {
        if (strcmp(value, class_names[i].name) == 0) {
            out->cls = class_names[i].cls;
            out->subclass = -1;
            out->protocol = -1;
            return NULL;
        }
    }
    for (int i = 0; i < 3; i++) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);

        parts[i] = parse_class_part(p, n);
        if (parts[i] == -2 || (i == 0 && parts[i] == -1))
            return bad;
        if (!colon)
            break;
        if (i == 2)
            return bad;
        p = colon + 1;
    }
    out->cls = parts[0];
    out->subclass = parts[1];
    out->protocol = parts[2];
    return NULL;
}

int policy_default_ports(int version)
{
    switch (version) {
    case 1:
        return 2;
    case 2:
        return 6;
    default:
        return 8;
    }
}

const char *policy_check_controller(int version, int ports)
{
    switch (version) {
    case 1:
        return ports == 2 ? NULL : "a version 1 controller has exactly 2 ports";
    case 2:
        return ports == 6 ? NULL : "a version 2 controller has exactly 6 ports";
    case 3:
        return ports >= 1 && ports <= 15 ? NULL
                                         : "a version 3 controller has 1 to 15 ports";
    }
    return "the controller version is 1, 2 or 3";
}

const char *policy_check_qusb(int version, int ports)
{
    if (version != 1 && version != 2)
        return "a PV USB (qusb) controller is version 1 or 2 (PV USB has no USB 3)";
    return ports >= 1 && ports <= 15 ? NULL : "a PV USB (qusb) controller has 1 to 15 ports";
}

const char *policy_controller_type_name(enum controller_type type)
{
    return type == CONTROLLER_DEVICEMODEL ? "devicemodel"
           : type == CONTROLLER_QUSB      ? "qusb"
                                          : "auto";
}

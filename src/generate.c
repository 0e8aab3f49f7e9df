/*
 * Writes a starting policy: one rule per plugged device, each kept in dom0
 * (action: ignore) until the user names a guest, so that the generated file
 * is safe to load as it is.  Device strings are untrusted: they are escaped
 * for YAML (line breaks libyaml sees, U+2028/9 and NEL, and bidi controls
 * too), and a serial becomes a glob that matches exactly those bytes.
 */
#include "config.h"

#include "generate.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "log.h"

static const char *class_name(unsigned cls)
{
    switch (cls) {
    case 0x01: return "audio";
    case 0x02: return "comm";
    case 0x03: return "hid";
    case 0x06: return "image";
    case 0x07: return "printer";
    case 0x08: return "storage";
    case 0x0a: return "cdc-data";
    case 0x0b: return "smart-card";
    case 0x0e: return "video";
    case 0xe0: return "wireless";
    case 0xef: return "misc";
    case 0xfe: return "application";
    case 0xff: return "vendor";
    }
    return NULL;
}

/* A YAML double-quoted scalar of s; bytes that are not valid UTF-8 become '?'. */
static void put_yaml_string(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    fputc('"', out);
    while (*p) {
        size_t seq = utf8_seq_len(p);

        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (seq == 3 && utf8_hidden_break(p)) {
            /* libyaml breaks lines at U+2028/9; bidi controls hide what a line says. */
            fprintf(out, "\\u%04x", utf8_hidden_break(p));
        } else if (seq == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
            /* C1 controls: U+0085 (NEL) is a line break to YAML too. */
            fprintf(out, "\\x%02x", p[1]);
        } else if (seq == 0) {
            fputc('?', out);
            seq = 1;
        } else if (seq == 1 && (*p < 0x20 || *p == 0x7f)) {
            fprintf(out, "\\x%02x", *p);
        } else {
            fwrite(p, 1, seq, out);
        }
        p += seq ? seq : 1;
    }
    fputc('"', out);
}

/*
 * The serial as a glob matching exactly its bytes: glob characters are
 * escaped, bytes YAML cannot carry (controls, invalid UTF-8) become '?'.
 * Written as a YAML double-quoted scalar.
 */
static void put_serial_glob(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    fputc('"', out);
    while (*p) {
        size_t seq = utf8_seq_len(p);

        if (strchr("*?[\\", *p)) {
            /* The glob's escaping backslash, then the character, in YAML. */
            fputs("\\\\", out);
            if (*p == '\\')
                fputs("\\\\", out);
            else
                fputc(*p, out);
            seq = 1;
        } else if (*p == '"') {
            fputs("\\\"", out);
        } else if (seq == 3 && utf8_hidden_break(p)) {
            /* YAML's escape gives the same character back: the glob stays exact. */
            fprintf(out, "\\u%04x", utf8_hidden_break(p));
        } else if (seq == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
            fprintf(out, "\\x%02x", p[1]);
        } else if (seq == 0 || (seq == 1 && (*p < 0x20 || *p == 0x7f))) {
            fputc('?', out);
            seq = 1;
        } else {
            fwrite(p, 1, seq, out);
        }
        p += seq;
    }
    fputc('"', out);
}

static void put_comment(FILE *out, const struct usb_device *d)
{
    char id[10], mfr[256], prod[256], serial[256], path[256];

    fprintf(out, "  # %s (bus %u device %u)  %s", d->port, d->busnum, d->devnum,
            device_id_string(d, id));
    if (d->id_path_rev)
        fprintf(out, "  %s", log_escape(d->id_path_rev, path, sizeof(path)));
    else if (d->id_path)
        fprintf(out, "  %s", log_escape(d->id_path, path, sizeof(path)));
    if (d->peer_path)
        fprintf(out, " (peer %s)", log_escape(d->peer_path, path, sizeof(path)));
    if (d->connect_type == DEVICE_CONNECT_HARDWIRED)
        fputs("  hardwired (an internal device)", out);
    if (d->manufacturer || d->product_name)
        fprintf(out, "  \"%s%s%s\"",
                d->manufacturer ? log_escape(d->manufacturer, mfr, sizeof(mfr)) : "",
                d->manufacturer && d->product_name ? " " : "",
                d->product_name ? log_escape(d->product_name, prod, sizeof(prod)) : "");
    if (d->serial)
        fprintf(out, "  serial %s", log_escape(d->serial, serial, sizeof(serial)));
    if (d->n_ifaces) {
        fputs("\n  #   interfaces:", out);
        for (unsigned i = 0; i < d->n_ifaces; i++) {
            const char *name = class_name(d->ifaces[i].cls);

            fprintf(out, " %02x:%02x:%02x%s%s%s", d->ifaces[i].cls, d->ifaces[i].subclass,
                    d->ifaces[i].protocol, name ? " (" : "", name ? name : "",
                    name ? ")" : "");
        }
    }
    fputc('\n', out);
}

/*
 * True when d's plain path also names a port of another root hub of the
 * same controller (an xHCI's USB 2 and USB 3 root hubs number their ports
 * alike): then only the path with the revision tells the two apart.
 */
static bool path_ambiguous(const struct usb_device *d, struct usb_device *const *devs, size_t n)
{
    size_t len;

    if (!d->id_path || !strstr(d->id_path, "-usb-0:"))
        return false;
    len = (size_t)(strstr(d->id_path, "-usb-0:") - d->id_path);
    for (size_t i = 0; i < n; i++) {
        const struct usb_device *r = devs[i];

        if (strncmp(r->port, "usb", 3) == 0 && r->busnum != d->busnum && r->id_path &&
            strlen(r->id_path) == len && strncmp(r->id_path, d->id_path, len) == 0)
            return true;
    }
    return false;
}

/*
 * True when another device plugged in now has d's vendor:product and serial
 * (none, or the same): a rule by id alone would take both, and the second
 * device's rule could never match.
 */
static bool id_ambiguous(const struct usb_device *d, struct usb_device *const *devs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct usb_device *e = devs[i];

        if (e != d && !device_is_hub(e) && e->vendor == d->vendor && e->product == d->product &&
            (e->serial && d->serial ? strcmp(e->serial, d->serial) == 0
                                    : !e->serial && !d->serial))
            return true;
    }
    return false;
}

int generate_policy(FILE *out, struct usb_device *const *devs, size_t n, enum generate_by by)
{
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    unsigned rules = 0;

    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
    fprintf(out,
            "# A policy for auto-usb-attach, generated on %s from the %s.\n"
            "# One rule per USB device plugged in now, %s.  Every rule keeps its\n"
            "# device in dom0 (action: ignore) until you give it to a guest: replace\n"
            "# \"action: ignore\" with \"domain: NAME\" and declare NAME under domains.\n"
            "# Rules are tried in order; the first that matches decides.  Check the\n"
            "# result with: auto-usb-attach --check -c FILE.  Keys: auto-usb-attach.yaml(5).\n"
            "version: 1\n"
            "\n"
            "defaults:\n"
            "  # Used when a guest has no free port and the daemon creates a controller.\n"
            "  controller: { version: 2, ports: 6 }\n"
            "\n"
            "domains:\n"
            "  # win10: { controller: { version: 3, ports: 15, max: 2 } }\n"
            "  # vault: {}\n"
            "\n"
            "rules:\n",
            when, "devices plugged in now",
            by == GENERATE_BY_ID ? "by vendor:product and serial (the device goes\n"
                                   "# where it is told, whichever port it is plugged into;\n"
                                   "# devices alike without a serial of their own are also\n"
                                   "# told apart by their port)"
            : by == GENERATE_BY_PATH ? "by the port it is plugged into, named by\n"
                                       "# its controller's PCI address (whatever is plugged in\n"
                                       "# there later gets the same decision; a connector: rule\n"
                                       "# takes both halves of a USB 3 socket, USB 2 and USB 3)"
                                     : "by the port it is plugged into, named by bus\n"
                                       "# number (whatever is plugged in there later gets the\n"
                                       "# same decision, while the buses keep their numbers)");
    for (size_t i = 0; i < n; i++) {
        const struct usb_device *d = devs[i];
        char id[10];

        if (device_is_hub(d))
            continue;
        put_comment(out, d);
        fputs("  - name: ", out);
        {
            char name[600];

            snprintf(name, sizeof(name), "%s%s%s at %s", d->manufacturer ? d->manufacturer : "",
                     d->manufacturer && d->product_name ? " " : "",
                     d->product_name ? d->product_name : device_id_string(d, id), d->port);
            put_yaml_string(out, name);
        }
        fputs("\n    match: { ", out);
        if (by == GENERATE_BY_PATH && d->id_path_rev && d->peer_path) {
            /* A USB 3 socket: the device goes by it at either speed. */
            fputs("connector: ", out);
            put_serial_glob(out, d->id_path_rev);
        } else if (by == GENERATE_BY_PATH && d->id_path) {
            fputs("path: ", out);
            put_serial_glob(out, d->id_path_rev && path_ambiguous(d, devs, n) ? d->id_path_rev
                                                                              : d->id_path);
        } else if (by != GENERATE_BY_ID) {
            /* The bus form too for a device without a path (no PCI controller). */
            fprintf(out, "port: \"%s\"", d->port);
        } else {
            fprintf(out, "id: \"%s\"", device_id_string(d, id));
            if (d->serial) {
                fputs(", serial: ", out);
                put_serial_glob(out, d->serial);
            }
            /* Twins (no serial, or the same): each also by where it is plugged in. */
            if (id_ambiguous(d, devs, n) && d->id_path) {
                fputs(", path: ", out);
                put_serial_glob(out, d->id_path_rev && path_ambiguous(d, devs, n)
                                         ? d->id_path_rev
                                         : d->id_path);
            } else if (id_ambiguous(d, devs, n)) {
                fprintf(out, ", port: \"%s\"", d->port);
            }
        }
        fputs(" }\n    action: ignore\n\n", out);
        rules++;
    }
    if (!rules)
        fputs("  []  # no USB device is plugged in (hubs are never routed)\n", out);
    return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}

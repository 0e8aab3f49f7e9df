/*
 * The decision lines that --dry-run and --once print, and that the log
 * repeats: a stable format for people, and JSON for scripts.
 */
#include "config.h"

#include "report.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *const event_names[] = {
    [EVENT_PRESENT] = "present",
    [EVENT_ADD] = "add",
    [EVENT_REMOVE] = "remove",
    [EVENT_RELOAD] = "reload",
    [EVENT_MANUAL] = "manual",
};

const char *report_event_name(enum router_event event)
{
    return event_names[event];
}

char *report_format(const struct decision_report *r, char *buf, size_t len)
{
    const struct usb_device *d = r->dev;
    char id[10], mfr[3 * DEVICE_STR_MAX + 8], prod[3 * DEVICE_STR_MAX + 8];
    char esc[3 * DEVICE_STR_MAX + 8], serial[3 * DEVICE_STR_MAX + 16];
    char path[3 * DEVICE_STR_MAX + 16], rule_name[512], where[600], rule[1200];
    char file[PATH_MAX + 32];
    const char *why = "";

    log_escape(d->manufacturer, mfr, sizeof(mfr));
    log_escape(d->product_name, prod, sizeof(prod));
    if (d->serial)
        snprintf(serial, sizeof(serial), " serial %s", log_escape(d->serial, esc, sizeof(esc)));
    else
        serial[0] = '\0';
    if (d->id_path)
        snprintf(path, sizeof(path), " path %s", log_escape(d->id_path, esc, sizeof(esc)));
    else
        path[0] = '\0';
    /* The main file's rules are named by their number alone, as before drop-ins. */
    if (r->rule && r->rule_dropin && r->rule_file)
        snprintf(file, sizeof(file), " at %s:%u",
                 log_escape(r->rule_file, esc, sizeof(esc)), r->rule_line);
    else
        file[0] = '\0';
    if (!r->rule)
        snprintf(rule, sizeof(rule), "(no rule matched)");
    else if (r->rule_name)
        snprintf(rule, sizeof(rule), "(rule %u \"%s\"%s)", r->rule,
                 log_escape(r->rule_name, rule_name, sizeof(rule_name)), file);
    else
        snprintf(rule, sizeof(rule), "(rule %u%s)", r->rule, file);
    if (strcmp(r->action, "attach") == 0 || strcmp(r->action, "hold") == 0)
        snprintf(where, sizeof(where), " -> %s", r->domain);
    else if (strcmp(r->action, "detach") == 0)
        snprintf(where, sizeof(where), " <- %s", r->domain);
    else
        where[0] = '\0';
    if (strcmp(r->action, "hold") == 0)
        why = ": held in dom0, its last keyboard";
    snprintf(buf, len, "%s %s %s \"%s%s%s\"%s%s%s %s%s", r->action, d->port,
             device_id_string(d, id), d->manufacturer ? mfr : "",
             d->manufacturer && d->product_name ? " " : "", d->product_name ? prod : "",
             serial, path, where, rule, why);
    return buf;
}

/*
 * JSON lines are written by hand, not with jansson: building the object,
 * dumping it and escaping its breaks took half of a decision's instructions
 * (callgrind, bench/README.md).  The text is what jansson's compact dump of
 * the cleaned strings (log_utf8) followed by log_json_escape_breaks gave,
 * byte for byte (test-report checks it against jansson).
 */

/* The most one input byte becomes: a control as \u00XX. */
#define JSON_BYTE_MAX 6

/* Appends s as a JSON string (or null) at out; returns the end. */
static char *json_put_str(char *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    if (!s) {
        memcpy(out, "null", 4);
        return out + 4;
    }
    *out++ = '"';
    while (*p) {
        size_t seq;
        unsigned cp;

        /* Printable ASCII, most of every line, as it is. */
        if (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
            *out++ = (char)*p++;
            continue;
        }
        seq = utf8_seq_len(p);

        if (seq == 0) {
            /* log_utf8: an invalid byte is U+FFFD */
            memcpy(out, "\xef\xbf\xbd", 3);
            out += 3;
            p++;
        } else if (seq == 1) {
            unsigned char c = *p++;

            if (c == '"' || c == '\\') {
                *out++ = '\\';
                *out++ = (char)c;
            } else if (c < 0x20) {
                static const char short_esc[] = { ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n',
                                                  ['\r'] = 'r', ['\t'] = 't' };
                static const char hex[] = "0123456789ABCDEF";

                *out++ = '\\';
                if (c < sizeof(short_esc) && short_esc[c]) {
                    *out++ = short_esc[c];
                } else {
                    memcpy(out, "u00", 3);
                    out[3] = hex[c >> 4];
                    out[4] = hex[c & 15];
                    out += 5;
                }
            } else {
                *out++ = (char)c;
            }
        } else if ((seq == 3 && (cp = utf8_hidden_break(p))) ||
                   (seq == 2 && p[0] == 0xc2 && p[1] < 0xa0 && (cp = p[1]))) {
            /* log_json_escape_breaks: line breaks, bidi and C1 controls */
            out += sprintf(out, "\\u%04x", cp);
            p += seq;
        } else {
            memcpy(out, p, seq);
            out += seq;
            p += seq;
        }
    }
    *out++ = '"';
    return out;
}

/* Appends ,"key": and returns the end (the first key has no comma). */
static char *json_put_key(char *out, const char *key)
{
    size_t n = strlen(key);

    if (out[-1] != '{')
        *out++ = ',';
    *out++ = '"';
    memcpy(out, key, n);
    out += n;
    *out++ = '"';
    *out++ = ':';
    return out;
}

static size_t json_len(const char *s)
{
    return s ? strlen(s) * JSON_BYTE_MAX + 2 : 4;
}

static char *json_put_uint(char *out, unsigned v)
{
    return out + sprintf(out, "%u", v);
}

/* Writes r's JSON line to out (buffered). */
static int report_json(FILE *out, const struct decision_report *r)
{
    const struct usb_device *d = r->dev;
    char line[4096], id[10];
    const char *strs[] = { d->port, d->id_path, d->id_path_rev, d->peer_path, d->serial,
                           d->manufacturer, d->product_name, d->devpath, r->domain,
                           r->rule_name, r->rule_file };
    size_t need = 512;
    char *buf, *o;

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        need += json_len(strs[i]);
    buf = need <= sizeof(line) ? line : malloc(need);
    if (!buf)
        return -ENOMEM;
    o = buf;
    *o++ = '{';
    o = json_put_str(json_put_key(o, "event"), report_event_name(r->event));
    o = json_put_str(json_put_key(o, "action"), r->action);
    o = json_put_str(json_put_key(o, "port"), d->port);
    o = json_put_str(json_put_key(o, "path"), d->id_path);
    o = json_put_str(json_put_key(o, "path_with_revision"), d->id_path_rev);
    o = json_put_str(json_put_key(o, "peer_path"), d->peer_path);
    o = json_put_str(json_put_key(o, "connect_type"), device_connect_name(d->connect_type));
    o = json_put_uint(json_put_key(o, "busnum"), d->busnum);
    o = json_put_uint(json_put_key(o, "devnum"), d->devnum);
    o = json_put_str(json_put_key(o, "id"), device_id_string(d, id));
    o = json_put_str(json_put_key(o, "serial"), d->serial);
    o = json_put_str(json_put_key(o, "manufacturer"), d->manufacturer);
    o = json_put_str(json_put_key(o, "product"), d->product_name);
    o = json_put_str(json_put_key(o, "devpath"), d->devpath);
    o = json_put_str(json_put_key(o, "domain"), r->domain);
    o = json_put_key(o, "rule");
    o = r->rule ? json_put_uint(o, r->rule) : json_put_str(o, NULL);
    o = json_put_str(json_put_key(o, "rule_name"), r->rule_name);
    o = json_put_str(json_put_key(o, "rule_file"), r->rule_file);
    o = json_put_key(o, "rule_line");
    o = r->rule_file ? json_put_uint(o, r->rule_line) : json_put_str(o, NULL);
    *o++ = '}';
    *o++ = '\n';
    fwrite(buf, 1, (size_t)(o - buf), out);
    if (buf != line)
        free(buf);
    return 0;
}

int report_print(FILE *out, bool json, const struct decision_report *r)
{
    char line[4096];

    if (!json)
        fprintf(out, "%s\n", report_format(r, line, sizeof(line)));
    else if (report_json(out, r) < 0)
        return -ENOMEM;
    return fflush(out) == 0 ? 0 : -errno;
}

/*
 * The watchers' objects (jansson: built only when someone watches).  A
 * decision's is the object of its --json line above, key for key.
 */
static json_t *jstr_or_null(const char *s)
{
    char *clean;
    json_t *j;

    if (!s)
        return json_null();
    clean = log_utf8(s);
    if (!clean)
        return NULL;
    j = json_string(clean);
    free(clean);
    return j;
}

json_t *report_decision_json(const struct decision_report *r)
{
    const struct usb_device *d = r->dev;
    char id[10];

    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:i, s:i, s:s, s:o, s:o, s:o, "
                     "s:o, s:o, s:o, s:o, s:o, s:o}",
                     "event", report_event_name(r->event),
                     "action", r->action,
                     "port", jstr_or_null(d->port),
                     "path", jstr_or_null(d->id_path),
                     "path_with_revision", jstr_or_null(d->id_path_rev),
                     "peer_path", jstr_or_null(d->peer_path),
                     "connect_type", device_connect_name(d->connect_type),
                     "busnum", (int)d->busnum,
                     "devnum", (int)d->devnum,
                     "id", device_id_string(d, id),
                     "serial", jstr_or_null(d->serial),
                     "manufacturer", jstr_or_null(d->manufacturer),
                     "product", jstr_or_null(d->product_name),
                     "devpath", jstr_or_null(d->devpath),
                     "domain", jstr_or_null(r->domain),
                     "rule", r->rule ? json_integer(r->rule) : json_null(),
                     "rule_name", jstr_or_null(r->rule_name),
                     "rule_file", jstr_or_null(r->rule_file),
                     "rule_line", r->rule_file ? json_integer(r->rule_line) : json_null());
}

json_t *report_note_json(const struct router_note *n)
{
    const struct usb_device *d = n->dev;
    char id[10];

    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "event", n->event,
                     "domain", jstr_or_null(n->domain),
                     "domid", n->domid >= 0 ? json_integer(n->domid) : json_null(),
                     "port", d ? jstr_or_null(d->port) : json_null(),
                     "id", d ? json_string(device_id_string(d, id)) : json_null(),
                     "serial", d ? jstr_or_null(d->serial) : json_null(),
                     "devpath", d ? jstr_or_null(d->devpath) : json_null(),
                     "controller", n->ctrl >= 0 ? json_integer(n->ctrl) : json_null(),
                     "guest_port", n->ctrl >= 0 ? json_integer(n->port) : json_null(),
                     "error", jstr_or_null(n->error));
}

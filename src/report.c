/*
 * The decision lines that --dry-run and --once print, and that the log
 * repeats: a stable format for people, and JSON (jansson) for scripts.
 */
#include "config.h"

#include "report.h"

#include <errno.h>
#include <limits.h>
#include <jansson.h>
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

static json_t *json_str_or_null(const char *s)
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

json_t *report_json(const struct decision_report *r)
{
    const struct usb_device *d = r->dev;
    char id[10];

    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:i, s:i, s:s, s:o, s:o, s:o, "
                     "s:o, s:o, s:o, s:o, s:o, s:o}",
                     "event", report_event_name(r->event),
                     "action", r->action,
                     "port", json_str_or_null(d->port),
                     "path", json_str_or_null(d->id_path),
                     "path_with_revision", json_str_or_null(d->id_path_rev),
                     "peer_path", json_str_or_null(d->peer_path),
                     "connect_type", device_connect_name(d->connect_type),
                     "busnum", (int)d->busnum,
                     "devnum", (int)d->devnum,
                     "id", device_id_string(d, id),
                     "serial", json_str_or_null(d->serial),
                     "manufacturer", json_str_or_null(d->manufacturer),
                     "product", json_str_or_null(d->product_name),
                     "devpath", json_str_or_null(d->devpath),
                     "domain", r->domain ? json_string(r->domain) : json_null(),
                     "rule", r->rule ? json_integer(r->rule) : json_null(),
                     "rule_name", json_str_or_null(r->rule_name),
                     "rule_file", json_str_or_null(r->rule_file),
                     "rule_line", r->rule_file ? json_integer(r->rule_line) : json_null());
}

int report_print(FILE *out, bool json, const struct decision_report *r)
{
    char line[4096];
    char *text, *safe;
    json_t *o;

    if (!json) {
        fprintf(out, "%s\n", report_format(r, line, sizeof(line)));
        return fflush(out) == 0 ? 0 : -errno;
    }
    o = report_json(r);
    if (!o)
        return -ENOMEM;
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return -ENOMEM;
    /* U+2028 and kin as \u2028: a line-splitting reader must not cut the line. */
    safe = log_json_escape_breaks(text);
    free(text);
    if (!safe)
        return -ENOMEM;
    fprintf(out, "%s\n", safe);
    free(safe);
    return fflush(out) == 0 ? 0 : -errno;
}

json_t *report_note_json(const struct router_note *n)
{
    const struct usb_device *d = n->dev;
    char id[10];

    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "event", n->event,
                     "domain", json_str_or_null(n->domain),
                     "domid", n->domid >= 0 ? json_integer(n->domid) : json_null(),
                     "port", d ? json_str_or_null(d->port) : json_null(),
                     "id", d ? json_string(device_id_string(d, id)) : json_null(),
                     "serial", d ? json_str_or_null(d->serial) : json_null(),
                     "devpath", d ? json_str_or_null(d->devpath) : json_null(),
                     "controller", n->ctrl >= 0 ? json_integer(n->ctrl) : json_null(),
                     "guest_port", n->ctrl >= 0 ? json_integer(n->port) : json_null(),
                     "error", json_str_or_null(n->error));
}

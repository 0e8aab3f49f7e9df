/*
 * Unit tests of the decision lines' JSON (src/report.c).
 *
 * report_print writes the JSON line by hand since issue 21 (jansson's pack
 * and dump were half of a decision's instructions).  Its text must be what
 * the jansson way gave, byte for byte: the reference here is that way
 * (log_utf8 on each device string, json_pack, a compact ordered dump,
 * log_json_escape_breaks).  Compared on every single byte 0x01..0xff,
 * hostile strings (quotes, backslashes, controls, invalid UTF-8, U+2028,
 * bidi controls, NEL and the other C1 controls, 4-byte characters), random
 * byte strings, absent strings and rules, every event, and strings long
 * enough that the line needs more than the stack buffer.
 */
#include "config.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"
#include "log.h"
#include "report.h"

static json_t *ref_str(const char *s)
{
    char *clean;
    json_t *j;

    if (!s)
        return json_null();
    clean = log_utf8(s);
    assert_non_null(clean);
    j = json_string(clean);
    free(clean);
    assert_non_null(j);
    return j;
}

/* The line as jansson wrote it before issue 21. */
static char *reference(const struct decision_report *r)
{
    const struct usb_device *d = r->dev;
    char id[10];
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:i, s:i, s:s, s:o, s:o, s:o, "
                          "s:o, s:o, s:o, s:o, s:o, s:o}",
                          "event", report_event_name(r->event), "action", r->action,
                          "port", ref_str(d->port), "path", ref_str(d->id_path),
                          "path_with_revision", ref_str(d->id_path_rev),
                          "peer_path", ref_str(d->peer_path),
                          "connect_type", device_connect_name(d->connect_type),
                          "busnum", (int)d->busnum, "devnum", (int)d->devnum,
                          "id", device_id_string(d, id), "serial", ref_str(d->serial),
                          "manufacturer", ref_str(d->manufacturer),
                          "product", ref_str(d->product_name), "devpath", ref_str(d->devpath),
                          "domain", ref_str(r->domain),
                          "rule", r->rule ? json_integer(r->rule) : json_null(),
                          "rule_name", ref_str(r->rule_name),
                          "rule_file", ref_str(r->rule_file),
                          "rule_line", r->rule_file ? json_integer(r->rule_line) : json_null());
    char *text, *safe, *line;

    assert_non_null(o);
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    assert_non_null(text);
    safe = log_json_escape_breaks(text);
    free(text);
    assert_non_null(safe);
    line = malloc(strlen(safe) + 2);
    assert_non_null(line);
    sprintf(line, "%s\n", safe);
    free(safe);
    return line;
}

static char *printed(const struct decision_report *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    assert_int_equal(report_print(f, true, r), 0);
    fclose(f);
    return buf;
}

static void check_same(const struct decision_report *r)
{
    char *want = reference(r), *got = printed(r);

    if (strcmp(want, got) != 0)
        fail_msg("JSON line differs:\nwant %sgot  %s", want, got);
    free(want);
    free(got);
}

/* A device whose every string is s (NULL: none). */
static void check_string(const char *s, unsigned rule)
{
    struct usb_device *d = device_new("/devices/pci0000:00/0000:00:14.0/usb1/1-1", "1-1");
    struct decision_report r = { .event = EVENT_ADD, .action = "attach", .dev = d,
                                 .domain = s ? "vault" : NULL, .rule = rule, .rule_name = s,
                                 .rule_file = s ? "/etc/p.d/1.yaml" : NULL, .rule_line = 7 };

    assert_non_null(d);
    d->busnum = 1;
    d->devnum = 7;
    d->vendor = 0x1050;
    d->product = 0x0407;
    assert_int_equal(device_set_str(&d->serial, s), 0);
    assert_int_equal(device_set_str(&d->manufacturer, s), 0);
    assert_int_equal(device_set_str(&d->product_name, s), 0);
    assert_int_equal(device_set_str(&d->id_path, s), 0);
    assert_int_equal(device_set_str(&d->id_path_rev, s), 0);
    assert_int_equal(device_set_str(&d->peer_path, s), 0);
    check_same(&r);
    device_free(d);
}

static void test_every_byte(void **state)
{
    (void)state;
    for (unsigned c = 1; c < 256; c++) {
        char s[4] = { 'a', (char)c, 'z', '\0' };

        check_string(s, c);
    }
}

static void test_hostile(void **state)
{
    static const char *const cases[] = {
        "\"quoted\" \\back\\slash/", "tab\there\nnew\rline\b\f", "\x1b[31mred\x1b[0m\x7f",
        "line\xe2\x80\xa8sep\xe2\x80\xa9para", "bidi\xe2\x80\xae" "evil\xe2\x81\xa6x\xe2\x81\xa9",
        "nel\xc2\x85 c1\xc2\x80\xc2\x9f nbsp\xc2\xa0", "bad\xff\xfe\xc0\xaf\xed\xa0\x80" "end",
        "cut\xe2\x80", "emoji \xf0\x9f\x94\x91 \xe2\x82\xac" "!", "\xe2\x80\xa7\xe2\x80\xaf",
        "", NULL,
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_string(cases[i], (unsigned)i);
        check_string(cases[i], 0);
    }
}

static void test_random(void **state)
{
    unsigned seed = 21;

    (void)state;
    for (int n = 0; n < 2000; n++) {
        char s[40];
        size_t len = 1 + (size_t)(rand_r(&seed) % 38);

        for (size_t i = 0; i < len; i++) {
            int c = 1 + rand_r(&seed) % 255;

            /* Mostly the bytes that start or continue multi-byte characters. */
            s[i] = (char)(rand_r(&seed) % 2 ? c : 0x80 + c % 0x40 + (c & 0x40 ? 0x40 : 0));
            if (!s[i])
                s[i] = 'x';
        }
        s[len] = '\0';
        check_string(s, (unsigned)n);
    }
}

static void test_long_and_events(void **state)
{
    char big[DEVICE_STR_MAX + 1];
    enum router_event events[] = { EVENT_PRESENT, EVENT_ADD, EVENT_REMOVE, EVENT_RELOAD,
                                   EVENT_MANUAL };
    const char *actions[] = { "attach", "detach", "ignore", "none", "hold" };

    (void)state;
    /* Controls only: each byte is 6 in the line, 7 strings: past 4 KiB. */
    memset(big, '\x01', DEVICE_STR_MAX);
    big[DEVICE_STR_MAX] = '\0';
    check_string(big, 99999);
    for (size_t e = 0; e < sizeof(events) / sizeof(events[0]); e++) {
        struct usb_device *d = device_new("/devices/x/usb2/2-3", "2-3");
        struct decision_report r = { .event = events[e], .action = actions[e], .dev = d };

        assert_non_null(d);
        d->connect_type = (enum device_connect)(e % 3);
        check_same(&r);
        device_free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_long_and_events),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests of the QMP reader and writer (src/qmp.c): lines split at every
 * byte, several messages in one read, events between replies, empty lines,
 * a line over the limit (with and without its newline), garbage, JSON that
 * is not an object, the shape check of each kind of message, and the
 * command line written.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qmp.h"

struct seen {
    char kinds[32][32];     /* "event:NAME", "return:ID", "error:ID", "greeting" */
    size_t n;
    int stop_at;            /* the callback returns -EINTR at this message; 0: never */
};

static int collect(void *arg, json_t *msg)
{
    struct seen *s = arg;
    struct qmp_msg m;

    assert_int_equal(qmp_msg_parse(msg, &m), 0);
    assert_true(s->n < 32);
    switch (m.kind) {
    case QMP_GREETING:
        snprintf(s->kinds[s->n], 32, "greeting");
        break;
    case QMP_EVENT:
        snprintf(s->kinds[s->n], 32, "event:%s", m.event);
        break;
    case QMP_RETURN:
        snprintf(s->kinds[s->n], 32, "return:%lld", m.id);
        break;
    case QMP_ERROR:
        snprintf(s->kinds[s->n], 32, "error:%lld", m.id);
        break;
    }
    s->n++;
    return s->stop_at && (int)s->n == s->stop_at ? -EINTR : 0;
}

static const char stream[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7}}, \"capabilities\": [\"oob\"]}}\r\n"
    "{\"return\": {}, \"id\": 1}\r\n"
    "{\"timestamp\": {\"seconds\": 1}, \"event\": \"RESET\", \"data\": {\"guest\": false}}\r\n"
    "{\"return\": [{\"name\": \"xenusb-0\", \"type\": \"child<nec-usb-xhci>\"}], \"id\": 2}\r\n"
    "\r\n"
    "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"xenusb-1-5\"}}\r\n"
    "{\"id\": 3, \"error\": {\"class\": \"GenericError\", \"desc\": \"failed\"}}\r\n";

static void check_stream(const struct seen *s)
{
    static const char *const want[] = { "greeting", "return:1", "event:RESET", "return:2",
                                        "event:DEVICE_DELETED", "error:3" };

    assert_int_equal(s->n, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(s->kinds[i], want[i]);
}

static void test_all_at_once(void **state)
{
    struct qmp_reader r;
    struct seen s = { 0 };

    qmp_reader_init(&r, 0);
    assert_int_equal(qmp_reader_feed(&r, stream, strlen(stream), collect, &s), 0);
    check_stream(&s);
    assert_int_equal(r.len, 0);
    qmp_reader_clear(&r);
}

/* Every split point, and a byte at a time. */
static void test_split_lines(void **state)
{
    size_t len = strlen(stream);

    for (size_t cut = 0; cut <= len; cut++) {
        struct qmp_reader r;
        struct seen s = { 0 };

        qmp_reader_init(&r, 0);
        assert_int_equal(qmp_reader_feed(&r, stream, cut, collect, &s), 0);
        assert_int_equal(qmp_reader_feed(&r, stream + cut, len - cut, collect, &s), 0);
        check_stream(&s);
        qmp_reader_clear(&r);
    }
    {
        struct qmp_reader r;
        struct seen s = { 0 };

        qmp_reader_init(&r, 0);
        for (size_t i = 0; i < len; i++)
            assert_int_equal(qmp_reader_feed(&r, stream + i, 1, collect, &s), 0);
        check_stream(&s);
        qmp_reader_clear(&r);
    }
}

static void test_callback_stops(void **state)
{
    struct qmp_reader r;
    struct seen s = { .stop_at = 2 };

    qmp_reader_init(&r, 0);
    assert_int_equal(qmp_reader_feed(&r, stream, strlen(stream), collect, &s), -EINTR);
    assert_int_equal(s.n, 2);
    qmp_reader_clear(&r);
}

static void test_huge_line(void **state)
{
    size_t big = 100;
    char *buf = malloc(big + 8);
    struct qmp_reader r;
    struct seen s = { 0 };

    memset(buf, ' ', big + 8);
    /* Without a newline: refused as soon as the limit is passed, never kept. */
    qmp_reader_init(&r, 64);
    assert_int_equal(qmp_reader_feed(&r, buf, 60, collect, &s), 0);
    assert_int_equal(qmp_reader_feed(&r, buf, 10, collect, &s), -EMSGSIZE);
    assert_true(r.cap <= 4096);
    qmp_reader_clear(&r);
    /* With its newline, in one read. */
    qmp_reader_init(&r, 64);
    buf[big] = '\n';
    assert_int_equal(qmp_reader_feed(&r, buf, big + 1, collect, &s), -EMSGSIZE);
    qmp_reader_clear(&r);
    /* At the limit exactly: fine. */
    qmp_reader_init(&r, 64);
    memcpy(buf, "{\"return\": {}, \"id\": 9}", 23);
    memset(buf + 23, ' ', 64 - 23);
    buf[64] = '\n';
    assert_int_equal(qmp_reader_feed(&r, buf, 65, collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.kinds[0], "return:9");
    qmp_reader_clear(&r);
    /* The default limit is 1 MiB. */
    qmp_reader_init(&r, 0);
    assert_int_equal(r.max_line, QMP_MAX_LINE);
    qmp_reader_clear(&r);
    free(buf);
}

static void test_garbage(void **state)
{
    static const char *const bad[] = {
        "}{ not json\n", "[1, 2]\n", "\"a string\"\n", "42\n", "{\"return\": 1\n",
        "{\"a\": 1, \"a\": 2}\n", "\x01\x02\xff\n", "{\"x\": \"\\u0000\"}\0\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct qmp_reader r;
        struct seen s = { 0 };

        qmp_reader_init(&r, 0);
        assert_int_equal(qmp_reader_feed(&r, bad[i], strlen(bad[i]) + (i == 7 ? 2 : 0),
                                         collect, &s),
                         -EPROTO);
        assert_int_equal(s.n, 0);
        qmp_reader_clear(&r);
    }
}

static void test_deep_nesting(void **state)
{
    size_t n = 100000;
    char *buf = malloc(2 * n + 2);
    struct qmp_reader r;
    struct seen s = { 0 };

    memset(buf, '[', n);
    memset(buf + n, ']', n);
    buf[2 * n] = '\n';
    qmp_reader_init(&r, 0);
    assert_int_equal(qmp_reader_feed(&r, buf, 2 * n + 1, collect, &s), -EPROTO);
    qmp_reader_clear(&r);
    free(buf);
}

static int parse_text(const char *text, struct qmp_msg *m, json_t **keep)
{
    json_t *j = json_loads(text, 0, NULL);

    assert_non_null(j);
    *keep = j;
    return qmp_msg_parse(j, m);
}

static void test_shapes(void **state)
{
    static const char *const wrong[] = {
        "{}",
        "{\"QMP\": 3}",
        "{\"error\": \"x\", \"id\": 1}",
        "{\"error\": {\"class\": 1, \"desc\": \"x\"}}",
        "{\"error\": {\"class\": \"C\"}}",
        "{\"event\": 5}",
        "{\"event\": \"RESET\", \"data\": []}",
        "{\"id\": 1}",
    };
    struct qmp_msg m;
    json_t *j;

    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        assert_int_equal(parse_text(wrong[i], &m, &j), -EPROTO);
        json_decref(j);
    }
    assert_int_equal(parse_text("{\"return\": {}, \"id\": \"x\"}", &m, &j), 0);
    assert_false(m.has_id);     /* not one of ours: matched to no command */
    json_decref(j);
    assert_int_equal(parse_text("{\"error\": {\"desc\": \"d\"}, \"id\": 4}", &m, &j), 0);
    assert_int_equal(m.kind, QMP_ERROR);
    assert_string_equal(m.err_class, "GenericError");
    assert_string_equal(m.err_desc, "d");
    assert_int_equal(m.id, 4);
    json_decref(j);
    assert_int_equal(parse_text("{\"event\": \"SHUTDOWN\"}", &m, &j), 0);
    assert_int_equal(m.kind, QMP_EVENT);
    assert_null(m.data);
    json_decref(j);
}

static void test_command_line(void **state)
{
    json_t *args = json_pack("{s:s, s:I}", "driver", "usb-host", "hostbus", (json_int_t)1);
    size_t len = 0;
    char *line = qmp_command_line("device_add", args, 7, &len);
    json_t *back;

    assert_non_null(line);
    assert_int_equal(len, strlen(line));
    assert_int_equal(line[len - 1], '\n');
    assert_null(memchr(line, '\n', len - 1));
    back = json_loadb(line, len, 0, NULL);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "execute")), "device_add");
    assert_int_equal(json_integer_value(json_object_get(back, "id")), 7);
    assert_true(json_is_integer(json_object_get(json_object_get(back, "arguments"),
                                                "hostbus")));
    json_decref(back);
    free(line);
    json_decref(args);
    line = qmp_command_line("qmp_capabilities", NULL, 1, NULL);
    assert_string_equal(line, "{\"execute\":\"qmp_capabilities\",\"id\":1}\n");
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_at_once),   cmocka_unit_test(test_split_lines),
        cmocka_unit_test(test_callback_stops), cmocka_unit_test(test_huge_line),
        cmocka_unit_test(test_garbage),       cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_shapes),        cmocka_unit_test(test_command_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests of logging and string escaping (src/log.c).
 *
 * log_escape: control characters, quotes and backslashes, invalid UTF-8
 * escaped, line breaks of other readers and bidi controls as \uXXXX (and
 * in JSON text); valid multi-byte UTF-8 kept; truncation with "..." at a
 * character (and escape) boundary; buffers of 0..5 bytes never overflow
 * (a canary after the buffer).  log_utf8: every invalid byte becomes
 * U+FFFD.  Both are also run on random bytes and their output checked with
 * a UTF-8 validator written here, independent of utf8_seq_len.  Then the
 * level names and what log_* print on stderr: one line per call, whatever
 * the message holds (a newline in QEMU's text relayed by libxl is \x0a).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define CANARY 0xa5

/* ---- an independent UTF-8 check (RFC 3629) ---- */

static bool valid_utf8(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    while (*s) {
        unsigned cp, n;

        if (s[0] < 0x80) {
            s++;
            continue;
        } else if ((s[0] & 0xe0) == 0xc0) {
            n = 1;
            cp = s[0] & 0x1fu;
        } else if ((s[0] & 0xf0) == 0xe0) {
            n = 2;
            cp = s[0] & 0x0fu;
        } else if ((s[0] & 0xf8) == 0xf0) {
            n = 3;
            cp = s[0] & 0x07u;
        } else {
            return false;
        }
        for (unsigned i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i] & 0x3fu);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}

/* ---- log_escape ---- */

static void escape_table(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "plain ASCII 123 ~!", "plain ASCII 123 ~!" },
        { "", "" },
        { NULL, "(none)" },
        { "a\"b", "a\\\"b" },
        { "a\\b", "a\\\\b" },
        { "\\\"", "\\\\\\\"" },
        { "line1\nline2\r\t", "line1\\x0aline2\\x0d\\x09" },
        { "\x1b[31mred", "\\x1b[31mred" },
        { "\x01\x1f\x7f", "\\x01\\x1f\\x7f" },
        { "Gr\xc3\xbc\xc3\x9f" "e", "Gr\xc3\xbc\xc3\x9f" "e" },
        { "\xe2\x82\xac \xf0\x9f\x98\x80 \xe6\x97\xa5",
          "\xe2\x82\xac \xf0\x9f\x98\x80 \xe6\x97\xa5" },
        { "\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\xef\xbf\xbf\xf4\x8f\xbf\xbf" },
        { "\xff\xfe", "\\xff\\xfe" },
        { "\x80", "\\x80" },
        { "\xc0\xaf", "\\xc0\\xaf" },                 /* overlong '/' */
        { "\xe0\x80\xaf", "\\xe0\\x80\\xaf" },
        { "\xed\xa0\x80", "\\xed\\xa0\\x80" },        /* a surrogate */
        { "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" }, /* past U+10FFFF */
        { "\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80" },
        { "a\xe2\x82", "a\\xe2\\x82" },               /* cut at the end */
        { "\xe2\x82(", "\\xe2\\x82(" },
        { "\xc3\xa9\xc3", "\xc3\xa9\\xc3" },
        { "0012345\x00ignored", "0012345" },
    };

    for (size_t i = 0; i < N(cases); i++) {
        char buf[256];

        memset(buf, CANARY, sizeof(buf));
        assert_ptr_equal(log_escape(cases[i].in, buf, sizeof(buf)), buf);
        if (strcmp(buf, cases[i].out) != 0)
            print_message("case %zu\n", i);
        assert_string_equal(buf, cases[i].out);
    }
}

/* Input that does not fit: cut where a character or an escape starts, then "...". */
static void escape_truncation(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        { "abcdefghij", 8, "abcd..." },
        { "abcdefghij", 10, "abcdef..." },
        { "ab\xe2\x82\xac\xe2\x82\xac", 8, "ab..." },              /* not inside the euro */
        { "ab\xe2\x82\xac\xe2\x82\xacx", 9, "ab\xe2\x82\xac..." },
        { "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 10, "\xf0\x9f\x98\x80..." },
        { "\n\n\n", 8, "\\x0a..." },                               /* not inside \x0a */
        { "\n\n\n", 10, "\\x0a..." },
        { "a\"b\"c", 6, "a..." },
        { "a\"b\"c", 7, "a\\\"..." },
        { "\xff\xff\xff", 11, "\\xff..." },
        { NULL, 5, "(..." },
    };

    for (size_t i = 0; i < N(cases); i++) {
        char buf[64];

        memset(buf, CANARY, sizeof(buf));
        log_escape(cases[i].in, buf, cases[i].len);
        if (strcmp(buf, cases[i].out) != 0)
            print_message("case %zu (len %zu)\n", i, cases[i].len);
        assert_string_equal(buf, cases[i].out);
        for (size_t k = cases[i].len; k < sizeof(buf); k++)
            assert_int_equal((unsigned char)buf[k], CANARY);
    }
}

/* Output that fits in the buffer is not cut, even when only just. */
static void escape_exact_fit(void **state)
{
    static const struct {
        const char *in;
        size_t len;
    } cases[] = {
        { "abcdefg", 8 },               /* 7 characters and the NUL */
        { "abc", 4 },
        { "a", 2 },
        { "", 1 },
        { "\xe2\x82\xac", 4 },
        { "ab\xe2\x82\xac\xe2\x82\xac", 9 },
        { "x\n", 6 },                   /* "x\x0a" */
        { NULL, 7 },                    /* "(none)" */
    };

    for (size_t i = 0; i < N(cases); i++) {
        char big[64], buf[64];

        log_escape(cases[i].in, big, sizeof(big));
        assert_int_equal(strlen(big) + 1, cases[i].len);
        memset(buf, CANARY, sizeof(buf));
        log_escape(cases[i].in, buf, cases[i].len);
        if (strcmp(buf, big) != 0)
            print_message("case %zu: '%s' in %zu bytes\n", i, big, cases[i].len);
        assert_string_equal(buf, big);
        assert_int_equal((unsigned char)buf[cases[i].len], CANARY);
    }
}

/* Buffers of 0 to 5 bytes: never a byte past the end, always a terminated string. */
static void escape_tiny_buffers(void **state)
{
    static const char *const inputs[] = { "hello world", "\n\n", "\xe2\x82\xac\xe2\x82\xac", NULL };

    for (size_t i = 0; i < N(inputs); i++) {
        for (size_t len = 0; len <= 5; len++) {
            char buf[16];

            memset(buf, CANARY, sizeof(buf));
            log_escape(inputs[i], buf, len);
            for (size_t k = len; k < sizeof(buf); k++)
                assert_int_equal((unsigned char)buf[k], CANARY);
            if (len == 0)
                continue;
            assert_non_null(memchr(buf, '\0', len));
            /* What is there is a cut version of the full output. */
            if (len >= 4)
                assert_non_null(strstr(buf, "..."));
        }
    }
    {
        char buf[8];

        memset(buf, CANARY, sizeof(buf));
        log_escape("hello world", buf, 4);
        assert_string_equal(buf, "...");
        log_escape("hello world", buf, 5);
        assert_string_equal(buf, "h...");
    }
}

/*
 * C1 controls (U+0080..U+009F) are control characters too: NEL (U+0085)
 * ends a line for some readers and CSI (U+009B) starts a terminal escape.
 */
static void escape_c1_controls(void **state)
{
    char buf[64];

    log_escape("a\xc2\x85" "b\xc2\x9b" "31m", buf, sizeof(buf));
    assert_string_equal(buf, "a\\xc2\\x85b\\xc2\\x9b31m");
    /* U+00A0, the first character after them, is kept. */
    log_escape("\xc2\xa0", buf, sizeof(buf));
    assert_string_equal(buf, "\xc2\xa0");
}

/*
 * Line breaks to other readers (U+2028, U+2029) and bidi controls (U+202A to
 * U+202E, U+2066 to U+2069) as \uXXXX; their neighbours kept.
 */
static void escape_hidden_breaks(void **state)
{
    static const struct {
        const char *in, *out;
        unsigned cp;
    } cases[] = {
        { "\xe2\x80\xa8", "\\u2028", 0x2028 },
        { "\xe2\x80\xa9", "\\u2029", 0x2029 },
        { "\xe2\x80\xaa", "\\u202a", 0x202a },
        { "\xe2\x80\xae", "\\u202e", 0x202e },
        { "\xe2\x81\xa6", "\\u2066", 0x2066 },
        { "\xe2\x81\xa9", "\\u2069", 0x2069 },
        { "\xe2\x80\xa7", "\xe2\x80\xa7", 0 },      /* U+2027 */
        { "\xe2\x80\xaf", "\xe2\x80\xaf", 0 },      /* U+202F */
        { "\xe2\x81\xa5", "\xe2\x81\xa5", 0 },      /* U+2065 */
        { "\xe2\x81\xaa", "\xe2\x81\xaa", 0 },      /* U+206A */
        { "\xe2\x82\xac", "\xe2\x82\xac", 0 },      /* the euro sign */
    };
    char buf[64], *json;

    for (size_t i = 0; i < N(cases); i++) {
        assert_int_equal(utf8_hidden_break((const unsigned char *)cases[i].in), cases[i].cp);
        log_escape(cases[i].in, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].out);
    }
    /* A truncated sequence is not one (and is read no further than its NUL). */
    assert_int_equal(utf8_hidden_break((const unsigned char *)"\xe2\x80"), 0);
    assert_int_equal(utf8_hidden_break((const unsigned char *)"\xe2"), 0);
    log_escape("a\xe2\x80\xa8" "b\xe2\x80\xae" "c", buf, sizeof(buf));
    assert_string_equal(buf, "a\\u2028b\\u202ec");
    /* Cut at an escape's boundary, never inside one. */
    log_escape("ab\xe2\x80\xa8", buf, 8);
    assert_string_equal(buf, "ab...");

    /* JSON text: the same characters and C1 controls as \uXXXX, the rest as is. */
    json = log_json_escape_breaks("{\"p\":\"a\xe2\x80\xa8" "b\xe2\x81\xa9" "c\xc2\x85"
                                  "d\xc2\xa0\xe2\x82\xac\"}");
    assert_non_null(json);
    assert_string_equal(json, "{\"p\":\"a\\u2028b\\u2069c\\u0085d\xc2\xa0\xe2\x82\xac\"}");
    free(json);
    json = log_json_escape_breaks("\xe2\x80\xa9");
    assert_string_equal(json, "\\u2029");
    free(json);
    json = log_json_escape_breaks("");
    assert_string_equal(json, "");
    free(json);
}

/* ---- random input ---- */

static uint32_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 0x2545F4914F6CDD1DULL) >> 32);
}

/* Mostly bytes that make UTF-8 interesting, sometimes a valid sequence. */
static void random_string(uint64_t *seed, char *out, size_t max)
{
    static const char *const pieces[] = {
        "a", "Z", " ", "\"", "\\", "\n", "\x1b", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
        "\xf0\x9f\x98\x80", "\x80", "\xbf", "\xc0", "\xc3", "\xe2\x82", "\xed\xa0\x80",
        "\xf4\x90\x80\x80", "\xff", "\xfe", "\xf0\x9f", "%", "x",
        "\xe2\x80\xa8", "\xe2\x80\xae", "\xe2\x81\xa6", "\xe2\x80\xa7", "\xe2\x80",
    };
    size_t len = 0, n = rnd(seed) % 24;

    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[rnd(seed) % N(pieces)];

        if (len + strlen(p) + 1 > max)
            break;
        memcpy(out + len, p, strlen(p));
        len += strlen(p);
    }
    out[len] = '\0';
}

/* Undoes log_escape; returns false on an escape it would never write. */
static bool unescape(const char *s, char *out)
{
    while (*s) {
        if (*s != '\\') {
            *out++ = *s++;
            continue;
        }
        if (s[1] == '\\' || s[1] == '"') {
            *out++ = s[1];
            s += 2;
        } else if (s[1] == 'x' && s[2] && s[3]) {
            char hex[3] = { s[2], s[3], 0 };

            *out++ = (char)strtoul(hex, NULL, 16);
            s += 4;
        } else if (s[1] == 'u' && strlen(s) >= 6) {
            /* U+2000..U+207F: three bytes of UTF-8. */
            char hex[5] = { s[2], s[3], s[4], s[5], 0 };
            unsigned long cp = strtoul(hex, NULL, 16);

            if (cp < 0x2000 || cp > 0x207f)
                return false;
            *out++ = (char)0xe2;
            *out++ = (char)(0x80 | (cp >> 6 & 0x3f));
            *out++ = (char)(0x80 | (cp & 0x3f));
            s += 6;
        } else {
            return false;
        }
    }
    *out = '\0';
    return true;
}

static void escape_random(void **state)
{
    uint64_t seed = 0x10e5ca9eULL;

    for (int i = 0; i < 20000; i++) {
        char in[128], buf[600], back[128];
        size_t len = rnd(&seed) % 2 ? sizeof(buf) - 16 : rnd(&seed) % 40;

        random_string(&seed, in, sizeof(in));
        memset(buf, CANARY, sizeof(buf));
        log_escape(in, buf, len);
        for (size_t k = len; k < sizeof(buf); k++)
            assert_int_equal((unsigned char)buf[k], CANARY);
        if (len == 0)
            continue;
        assert_true(strlen(buf) < len);
        assert_true(valid_utf8(buf));
        for (const unsigned char *p = (const unsigned char *)buf; *p; p++)
            assert_true(*p >= 0x20 && *p != 0x7f);
        if (len == sizeof(buf) - 16) {
            /* Room for everything: escaping loses nothing. */
            assert_true(unescape(buf, back));
            assert_string_equal(back, in);
        } else if (strlen(buf) >= 3 && strcmp(buf + strlen(buf) - 3, "...") == 0) {
            /* Cut: what comes before "..." is a whole-escape prefix of the full output. */
            char full[600];

            log_escape(in, full, sizeof(full));
            assert_memory_equal(buf, full, strlen(buf) - 3);
        }
    }
}

/* ---- log_utf8 ---- */

#define FFFD "\xef\xbf\xbd"

static void utf8_table(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "plain", "plain" },
        { "", "" },
        { "ctl\n\t\x1b kept", "ctl\n\t\x1b kept" },
        { "Gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac\xf0\x9f\x98\x80",
          "Gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac\xf0\x9f\x98\x80" },
        { "\xff", FFFD },
        { "a\xc3", "a" FFFD },
        { "\xe2\x82(", FFFD FFFD "(" },
        { "\xc0\xaf", FFFD FFFD },
        { "\xed\xa0\x80", FFFD FFFD FFFD },
        { "x\xf4\x90\x80\x80y", "x" FFFD FFFD FFFD FFFD "y" },
        { "\x80\x80\x80", FFFD FFFD FFFD },
        { FFFD, FFFD },
    };

    for (size_t i = 0; i < N(cases); i++) {
        char *out = log_utf8(cases[i].in);

        assert_non_null(out);
        if (strcmp(out, cases[i].out) != 0)
            print_message("case %zu\n", i);
        assert_string_equal(out, cases[i].out);
        free(out);
    }
}

static void utf8_random(void **state)
{
    uint64_t seed = 0xfffdULL;

    for (int i = 0; i < 20000; i++) {
        char in[128];
        char *out;

        random_string(&seed, in, sizeof(in));
        out = log_utf8(in);
        assert_non_null(out);
        assert_true(valid_utf8(out));
        /* Valid input comes back unchanged. */
        if (valid_utf8(in))
            assert_string_equal(out, in);
        free(out);
    }
}

static void seq_len(void **state)
{
    static const struct {
        const char *s;
        size_t n;
    } cases[] = {
        { "a", 1 },
        { "\x7f", 1 },
        { "\xc2\x80", 2 },
        { "\xc3\xa9", 2 },
        { "\xdf\xbf", 2 },
        { "\xe0\xa0\x80", 3 },
        { "\xe2\x82\xac", 3 },
        { "\xed\x9f\xbf", 3 },
        { "\xee\x80\x80", 3 },
        { "\xef\xbf\xbf", 3 },
        { "\xf0\x90\x80\x80", 4 },
        { "\xf0\x9f\x98\x80", 4 },
        { "\xf4\x8f\xbf\xbf", 4 },
        { "\x80", 0 },
        { "\xbf", 0 },
        { "\xc0\x80", 0 },
        { "\xc1\xbf", 0 },
        { "\xc2", 0 },
        { "\xc2\x41", 0 },
        { "\xe0\x9f\xbf", 0 },
        { "\xed\xa0\x80", 0 },
        { "\xed\xbf\xbf", 0 },
        { "\xe2\x82", 0 },
        { "\xf0\x8f\xbf\xbf", 0 },
        { "\xf4\x90\x80\x80", 0 },
        { "\xf5\x80\x80\x80", 0 },
        { "\xf8\x88\x80\x80\x80", 0 },
        { "\xff", 0 },
    };

    for (size_t i = 0; i < N(cases); i++) {
        size_t n = utf8_seq_len((const unsigned char *)cases[i].s);

        if (n != cases[i].n)
            print_message("case %zu\n", i);
        assert_int_equal(n, cases[i].n);
    }
}

/* ---- levels and output ---- */

static void levels(void **state)
{
    static const char *const names[] = { "error", "warning", "notice", "info", "debug" };

    for (int i = 0; i < (int)N(names); i++) {
        assert_string_equal(log_level_name((enum log_level)i), names[i]);
        assert_int_equal(log_level_parse(names[i]), i);
    }
    assert_int_equal(log_level_parse("verbose"), -EINVAL);
    assert_int_equal(log_level_parse(""), -EINVAL);
    assert_int_equal(log_level_parse("DEBUG"), -EINVAL);
    assert_string_equal(log_level_name((enum log_level)42), "unknown");
}

/* Runs fn with stderr going to a temporary file; returns what it wrote. */
static void capture_stderr(void (*fn)(void), char *out, size_t len)
{
    FILE *tmp = tmpfile();
    int saved;
    size_t n;

    assert_non_null(tmp);
    fflush(stderr);
    saved = dup(2);
    assert_true(saved >= 0);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    n = fread(out, 1, len - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

static void write_some(void)
{
    log_error("error %d", 1);
    log_warnx("warning %s", "two");
    errno = ENOENT;
    log_warn("open %s", "/x");
    log_notice("notice");
    log_info("info hidden");
    log_debug("debug hidden");
    log_msg(LOG_LEVEL_NOTICE, "msg %c", 'n');
    log_msg(LOG_LEVEL_DEBUG, "msg hidden");
}

static void write_debug(void)
{
    log_debug("debug %u", 5u);
}

static void output_and_level(void **state)
{
    char out[1024];

    log_init("test-log", LOG_LEVEL_NOTICE, true);
    assert_int_equal(log_get_level(), LOG_LEVEL_NOTICE);
    capture_stderr(write_some, out, sizeof(out));
    assert_string_equal(out, "error 1\n"
                             "warning two\n"
                             "open /x: No such file or directory\n"
                             "notice\n"
                             "msg n\n");
    log_set_level(LOG_LEVEL_DEBUG);
    assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG);
    capture_stderr(write_debug, out, sizeof(out));
    assert_string_equal(out, "debug 5\n");
    log_set_level(LOG_LEVEL_ERROR);
    capture_stderr(write_debug, out, sizeof(out));
    assert_string_equal(out, "");
}

static void write_forged(void)
{
    /* What libxl relays from a guest's QEMU: its own text, not escaped. */
    log_msg(LOG_LEVEL_ERROR, "libxl: qmp error: %s",
            "failed\nauto-usb-attach: vault: attached\r\x1b[2J\xc2\x85" "end\ttab");
}

/* Whatever a message holds, it is one line: no string can forge another. */
static void output_one_line(void **state)
{
    char out[1024];

    log_init("test-log", LOG_LEVEL_NOTICE, true);
    capture_stderr(write_forged, out, sizeof(out));
    assert_string_equal(out, "libxl: qmp error: failed\\x0aauto-usb-attach: vault: "
                             "attached\\x0d\\x1b[2J\\xc2\\x85end\\x09tab\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(escape_table),
        cmocka_unit_test(escape_truncation),
        cmocka_unit_test(escape_exact_fit),
        cmocka_unit_test(escape_tiny_buffers),
        cmocka_unit_test(escape_c1_controls),
        cmocka_unit_test(escape_hidden_breaks),
        cmocka_unit_test(escape_random),
        cmocka_unit_test(utf8_table),
        cmocka_unit_test(utf8_random),
        cmocka_unit_test(seq_len),
        cmocka_unit_test(levels),
        cmocka_unit_test(output_and_level),
        cmocka_unit_test(output_one_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Logging: one place that knows where messages go (stderr or syslog) and
 * which level is shown, and the escaping of untrusted strings so that a
 * device's serial can never forge or break a log line.
 */
#include "config.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

static enum log_level log_level = LOG_LEVEL_NOTICE;
static bool log_stderr = true;

static const char *const level_names[] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARNING] = "warning",
    [LOG_LEVEL_NOTICE] = "notice",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

static const int syslog_prio[] = {
    [LOG_LEVEL_ERROR] = LOG_ERR,
    [LOG_LEVEL_WARNING] = LOG_WARNING,
    [LOG_LEVEL_NOTICE] = LOG_NOTICE,
    [LOG_LEVEL_INFO] = LOG_INFO,
    [LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

void log_init(const char *ident, enum log_level level, bool to_stderr)
{
    log_level = level;
    log_stderr = to_stderr;
    if (!to_stderr)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level level)
{
    log_level = level;
}

enum log_level log_get_level(void)
{
    return log_level;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level > LOG_LEVEL_DEBUG)
        return "unknown";
    return level_names[level];
}

int log_level_parse(const char *name)
{
    for (size_t i = 0; i <= LOG_LEVEL_DEBUG; i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -EINVAL;
}

static void log_vwrite(enum log_level level, const char *suffix, const char *fmt,
                       va_list ap) __attribute__((format(printf, 3, 0)));

/*
 * Copies in to out (len bytes, NUL-terminated) with every control character
 * (C0, DEL, C1) written as \xNN.  Untrusted strings are log_escape()d where
 * they are known, but not all are: libxl relays QEMU's error text, which a
 * guest controls.  A newline there must not forge a line of its own.
 */
static void escape_controls(const char *in, char *out, size_t len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;

    while (*p && o + 1 < len) {
        size_t n = p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0 ? 2
                   : *p < 0x20 || *p == 0x7f                   ? 1
                                                               : 0;

        if (n == 0) {
            out[o++] = (char)*p++;
            continue;
        }
        if (o + 4 * n + 1 > len)
            break;
        for (size_t i = 0; i < n; i++, p++)
            o += (size_t)snprintf(out + o, 5, "\\x%02x", *p);
    }
    out[o] = '\0';
}

static void log_vwrite(enum log_level level, const char *suffix, const char *fmt,
                       va_list ap)
{
    char raw[2048], msg[2048];

    if (level > log_level)
        return;
    vsnprintf(raw, sizeof(raw), fmt, ap);
    escape_controls(raw, msg, sizeof(msg));
    if (log_stderr)
        fprintf(stderr, "%s%s%s\n", msg, suffix ? ": " : "", suffix ? suffix : "");
    else
        syslog(syslog_prio[level], "%s%s%s", msg, suffix ? ": " : "",
               suffix ? suffix : "");
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, NULL, fmt, ap);
    va_end(ap);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    log_vwrite(level, NULL, fmt, ap);
}

void log_warn(const char *fmt, ...)
{
    const char *err = strerror(errno);
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(LOG_LEVEL_WARNING, err, fmt, ap);
    va_end(ap);
}

#define LOG_FN(fn, level)                      \
    void fn(const char *fmt, ...)              \
    {                                          \
        va_list ap;                            \
        va_start(ap, fmt);                     \
        log_vwrite(level, NULL, fmt, ap);      \
        va_end(ap);                            \
    }

LOG_FN(log_warnx, LOG_LEVEL_WARNING)
LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_notice, LOG_LEVEL_NOTICE)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)

void fatal(const char *fmt, ...)
{
    const char *err = strerror(errno);
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(LOG_LEVEL_ERROR, err, fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(LOG_LEVEL_ERROR, NULL, fmt, ap);
    va_end(ap);
    exit(1);
}

size_t utf8_seq_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

unsigned utf8_hidden_break(const unsigned char *s)
{
    unsigned cp;

    if (s[0] != 0xe2 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
        return 0;
    cp = 0x2000u | (unsigned)(s[1] & 0x3f) << 6 | (unsigned)(s[2] & 0x3f);
    if ((cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
        return cp;
    return 0;
}

char *log_json_escape_breaks(const char *json)
{
    const unsigned char *p = (const unsigned char *)json;
    size_t len = strlen(json), o = 0;
    /* Each 3-byte character becomes 6 bytes, each 2-byte one 6 too. */
    char *out = malloc(len * 3 + 1);

    if (!out)
        return NULL;
    while (*p) {
        unsigned cp = utf8_hidden_break(p);

        if (cp) {
            o += (size_t)snprintf(out + o, 7, "\\u%04x", cp);
            p += 3;
        } else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0) {
            /* C1 controls: U+0085 (NEL) ends a line for Python's splitlines. */
            o += (size_t)snprintf(out + o, 7, "\\u%04x", p[1]);
            p += 2;
        } else {
            out[o++] = (char)*p++;
        }
    }
    out[o] = '\0';
    return out;
}

/*
 * Escapes the character at p into out (at least 9 bytes); returns the bytes
 * written and sets *used to the bytes of p consumed.
 */
static size_t escape_char(const unsigned char *p, char *out, size_t *used)
{
    size_t seq = utf8_seq_len(p);

    if (*p == '"' || *p == '\\') {
        out[0] = '\\';
        out[1] = (char)*p;
        *used = 1;
        return 2;
    }
    if (seq == 0 || (seq == 1 && (*p < 0x20 || *p == 0x7f))) {
        *used = 1;
        return (size_t)snprintf(out, 9, "\\x%02x", *p);
    }
    /* Line breaks to other readers, and controls that reorder what is shown. */
    if (seq == 3 && utf8_hidden_break(p)) {
        *used = 3;
        return (size_t)snprintf(out, 9, "\\u%04x", utf8_hidden_break(p));
    }
    /* C1 controls (U+0080..U+009F) break lines and start terminal escapes too. */
    if (seq == 2 && p[0] == 0xc2 && p[1] < 0xa0) {
        *used = 2;
        return (size_t)snprintf(out, 9, "\\x%02x\\x%02x", p[0], p[1]);
    }
    memcpy(out, p, seq);
    *used = seq;
    return seq;
}

char *log_escape(const char *s, char *buf, size_t len)
{
    const unsigned char *start = (const unsigned char *)(s ? s : "(none)");
    const unsigned char *p;
    size_t total = 0, o = 0, used;
    char tmp[9];
    bool cut;

    if (len == 0)
        return buf;
    for (p = start; *p; p += used)
        total += escape_char(p, tmp, &used);
    /* Cut only what does not fit, and then say so with "...". */
    cut = total + 1 > len;
    for (p = start; *p; p += used) {
        size_t n = escape_char(p, tmp, &used);

        if (o + n + (cut ? 4 : 1) > len)
            break;
        memcpy(buf + o, tmp, n);
        o += n;
    }
    if (cut && o + 4 <= len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

char *log_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    /* Every invalid byte becomes 3 bytes (U+FFFD). */
    char *out = malloc(len * 3 + 1);
    size_t o = 0;

    if (!out)
        return NULL;
    while (*p) {
        size_t seq = utf8_seq_len(p);

        if (seq == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        } else {
            memcpy(out + o, p, seq);
            o += seq;
            p += seq;
        }
    }
    out[o] = '\0';
    return out;
}

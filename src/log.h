/*
 * Logging and the escaping of untrusted strings.
 *
 * Messages go to stderr when the daemon runs in the foreground and to syslog
 * otherwise.  Every control character that reaches a message, from any
 * source, is written as \xNN: one call, one line.  Strings that come from devices (serials, manufacturer and
 * product names) are untrusted: log_escape() turns them into something that
 * cannot break a log line, and log_utf8() into valid UTF-8 for JSON.
 */
#ifndef AUA_LOG_H
#define AUA_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_NOTICE,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
};

/* Sets where messages go and from which level on they are dropped. */
void log_init(const char *ident, enum log_level level, bool to_stderr);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
const char *log_level_name(enum log_level level);
/* Parses "error", "warning", "notice", "info", "debug"; -EINVAL if unknown. */
int log_level_parse(const char *name);

/* log_warn appends strerror(errno); the x forms do not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Writes s into buf (of size len, always NUL-terminated) with every byte that
 * is not printable ASCII or part of a valid UTF-8 sequence, and '"' and '\\',
 * escaped as \xNN, \" or \\, and the characters utf8_hidden_break names as
 * \uXXXX.  NULL becomes "(none)".  Output that does not
 * fit is cut at a character boundary and ends in "...".  Returns buf.
 */
char *log_escape(const char *s, char *buf, size_t len);

/*
 * Returns a newly allocated copy of s that is valid UTF-8: each byte of an
 * invalid sequence becomes U+FFFD.  The caller frees it.  NULL on ENOMEM.
 */
char *log_utf8(const char *s);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
size_t utf8_seq_len(const unsigned char *s);

/*
 * The code point at s when it is one that other readers take as a line
 * break (U+2028, U+2029: YAML, JavaScript, Python's splitlines) or that
 * reorders what a terminal shows (the bidi controls U+202A-U+202E and
 * U+2066-U+2069), else 0.  Such a character is 3 bytes long.
 */
unsigned utf8_hidden_break(const unsigned char *s);

/*
 * Returns a newly allocated copy of JSON text (as jansson writes it, valid
 * UTF-8) with each character utf8_hidden_break names, and each C1 control
 * (U+0085 ends a line for Python), written as \uXXXX: outside strings JSON
 * has none of them.  NULL on ENOMEM.
 */
char *log_json_escape_breaks(const char *json);

#endif

/*
 * auto-usb-attachctl: one request to the daemon's control socket (control.h
 * describes the transport, commands.c the replies) and its answer, as a
 * table or as the JSON line it came in (--json).  The exit status says what
 * happened, so that scripts need not read the text.
 *
 * Device strings in a reply are untrusted: every one is escaped before it
 * reaches the terminal, as the daemon's logs do.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"

#define PROGRAM "auto-usb-attachctl"

enum {
    EXIT_DAEMON_ERROR = 1,      /* the daemon answered {"ok":false} */
    EXIT_USAGE = 2,
    EXIT_CONNECT = 3,
    EXIT_REPLY = 4,             /* no reply, a malformed one, or too late */
};

#define DEFAULT_TIMEOUT 10.0
/* Far beyond what the daemon sends; a longer "reply" is not from it. */
#define REPLY_MAX (64 * 1024 * 1024)
/* Bytes of one escaped table cell. */
#define CELL_MAX 96

struct command {
    const char *name;
    int nargs;
    const char *keys[2];        /* the request's key for each argument */
    const char *usage;
    void (*print)(json_t *reply);
};

static void print_status(json_t *reply);
static void print_devices(json_t *reply);
static void print_domains(json_t *reply);
static void print_explain(json_t *reply);
static void print_message(json_t *reply);
static void print_watching(json_t *reply);
static void print_rules(json_t *reply);

static const struct command commands[] = {
    { "status", 0, { NULL }, "status", print_status },
    { "devices", 0, { NULL }, "devices", print_devices },
    { "domains", 0, { NULL }, "domains", print_domains },
    { "explain", 1, { "device" }, "explain DEVICE", print_explain },
    { "rules", 0, { NULL }, "rules", print_rules },
    { "attach", 2, { "device", "domain" }, "attach DEVICE DOMAIN", print_message },
    { "detach", 1, { "device" }, "detach DEVICE", print_message },
    { "reload", 0, { NULL }, "reload", print_message },
    { "watch", 0, { NULL }, "watch", print_watching },
    { "log-level", 1, { "level" }, "log-level LEVEL", print_message },
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROGRAM " [--socket PATH] [--json] [--timeout SECONDS] COMMAND [ARGS]\n"
            "\n"
            "Commands:\n"
            "  status                the daemon: version, policy, backend, counts\n"
            "  devices               every plugged device: decision, state, domain\n"
            "  domains               every domain: running, controllers, queue\n"
            "  explain DEVICE        each rule tried for DEVICE, and why it matched or not\n"
            "  rules                 the rules in force, in order, with FILE:LINE\n"
            "  attach DEVICE DOMAIN  attach DEVICE to DOMAIN until it is unplugged\n"
            "  detach DEVICE         keep DEVICE in dom0 until it is unplugged\n"
            "  reload                reload the policy\n"
            "  watch                 follow the daemon's events, one line each, until it\n"
            "                        stops (or drops a watcher that does not read)\n"
            "  log-level LEVEL       error, warning, notice, info or debug\n"
            "DEVICE is a port path (1-1.2), BUS:ADDRESS (1:5) or VENDOR:PRODUCT if unique.\n"
            "\n"
            "Options:\n"
            "  -s, --socket PATH      the control socket (default " CONTROL_DEFAULT_SOCKET ")\n"
            "  -j, --json             print the reply as JSON, one line (errors too)\n"
            "  -t, --timeout SECONDS  wait this long for the daemon (default %g)\n"
            "  -h, --help             this help\n"
            "  -V, --version          the version\n"
            "\n"
            "Exit status: 0 done; 1 the daemon answered with an error; 2 usage error;\n"
            "3 cannot connect; 4 no reply, a malformed one, or a timeout.\n",
            DEFAULT_TIMEOUT);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs(PROGRAM ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    usage(stderr);
    return EXIT_USAGE;
}

static void die_oom(void)
{
    fputs(PROGRAM ": out of memory\n", stderr);
    exit(EXIT_REPLY);
}

/* ------------------------------------------------------------- talking */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connected socket, or -errno (-EAGAIN: the daemon accepts nobody in time). */
static int connect_daemon(const char *path, double timeout)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = (time_t)timeout,
                          .tv_usec = (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6) };
    int fd, r;

    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A UNIX connect() waits on a full backlog for as long as SO_SNDTIMEO. */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

static int connect_error(const char *path, int err, double timeout)
{
    const char *hint = "";

    if (err == ENOENT || err == ECONNREFUSED)
        hint = " (is the daemon running?)";
    else if (err == EACCES || err == EPERM)
        hint = " (the socket is root's, or its group's)";
    if (err == EAGAIN)
        fprintf(stderr, PROGRAM ": cannot connect to %s: the daemon accepted no connection "
                        "within %g s\n", path, timeout);
    else
        fprintf(stderr, PROGRAM ": cannot connect to %s: %s%s\n", path, strerror(err), hint);
    return EXIT_CONNECT;
}

/*
 * Sends the request and reads the first reply line into *line (malloc'd,
 * without its newline) before deadline; *got is what the buffer holds, the
 * bytes after that line included (a watcher's first events).  0, or an exit status after saying
 * why.  The daemon may answer before reading (a refusal, a request too long)
 * and close: a failed send is not the end, the reply may be waiting.
 */
static int exchange(int fd, const char *path, const char *request, double deadline,
                    double timeout, char **line, size_t *got)
{
    size_t sent = 0, want = strlen(request), len = 0, size = 0;
    char *buf = NULL, *nl;

    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN | (sent < want ? POLLOUT : 0) };
        double left = deadline - now();
        int r;

        if (left <= 0) {
            fprintf(stderr, PROGRAM ": no reply from %s within %g s\n", path, timeout);
            goto fail;
        }
        r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, PROGRAM ": poll: %s\n", strerror(errno));
            goto fail;
        }
        if (r <= 0)
            continue;
        if ((p.revents & POLLOUT) && sent < want) {
            ssize_t n = send(fd, request + sent, want - sent, MSG_NOSIGNAL);

            if (n >= 0)
                sent += (size_t)n;
            else if (errno == EPIPE || errno == ECONNRESET)
                sent = want;
            else if (errno != EAGAIN && errno != EINTR) {
                fprintf(stderr, PROGRAM ": cannot send to %s: %s\n", path, strerror(errno));
                goto fail;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n;

            if (size - len < 65536) {
                if (size >= REPLY_MAX) {
                    fprintf(stderr, PROGRAM ": the reply from %s is longer than %d bytes\n",
                            path, REPLY_MAX);
                    goto fail;
                }
                size = size ? size * 2 : 65536;
                buf = realloc(buf, size);
                if (!buf)
                    die_oom();
            }
            n = recv(fd, buf + len, size - len - 1, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n < 0) {
                fprintf(stderr, PROGRAM ": no reply from %s: %s\n", path, strerror(errno));
                goto fail;
            }
            if (n == 0) {
                fprintf(stderr, PROGRAM ": %s closed the connection without a reply\n", path);
                goto fail;
            }
            nl = memchr(buf + len, '\n', (size_t)n);
            len += (size_t)n;
            if (nl) {
                *nl = '\0';
                *line = buf;
                *got = len;
                return 0;
            }
        }
    }
fail:
    free(buf);
    return EXIT_REPLY;
}

/* ------------------------------------------------------------- showing */

/*
 * Writes daemon text to f with control characters and invalid UTF-8 as \xNN,
 * line breaks other readers see and bidi controls as \uXXXX.
 */
static void put_text(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        size_t n = utf8_seq_len(p);

        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f)) ||
            (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)) {
            for (size_t i = 0; i < (n ? n : 1); i++)
                fprintf(f, "\\x%02x", p[i]);
            p += n ? n : 1;
        } else if (n == 3 && utf8_hidden_break(p)) {
            /* A line break to other readers, or a bidi control reordering the line. */
            fprintf(f, "\\u%04x", utf8_hidden_break(p));
            p += n;
        } else {
            fwrite(p, 1, n, f);
            p += n;
        }
    }
}

static bool get_int(json_t *obj, const char *key, json_int_t *out)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

static const char *get_str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* A JSON value as a table cell: strings escaped and bounded, null as "-". */
static const char *cell(json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        return log_escape(json_string_value(v), buf, len);
    if (json_is_integer(v))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
    else
        snprintf(buf, len, "-");
    return buf;
}

/* Two integers as "A:B" ("1:5", "0:1"), or "-" when either is missing. */
static const char *pair(json_t *obj, const char *a, const char *b, char *buf, size_t len)
{
    json_int_t x, y;

    if (get_int(obj, a, &x) && get_int(obj, b, &y))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT, x, y);
    else
        snprintf(buf, len, "-");
    return buf;
}

/* "Yubico YubiKey OTP", from whichever of the two strings the device has. */
static const char *device_name(json_t *dev, char *buf, size_t len)
{
    char m[CELL_MAX], p[CELL_MAX];
    const char *manufacturer = get_str(dev, "manufacturer"), *product = get_str(dev, "product");

    if (manufacturer && product)
        snprintf(buf, len, "%s %s", log_escape(manufacturer, m, sizeof(m)),
                 log_escape(product, p, sizeof(p)));
    else if (manufacturer || product)
        log_escape(manufacturer ? manufacturer : product, buf, len);
    else
        snprintf(buf, len, "-");
    return buf;
}

struct table {
    size_t cols, rows;
    char **cells;               /* row-major; row 0 is the header */
};

static void table_add(struct table *t, const char *const *row)
{
    char **cells = realloc(t->cells, (t->rows + 1) * t->cols * sizeof(*cells));

    if (!cells)
        die_oom();
    t->cells = cells;
    for (size_t i = 0; i < t->cols; i++)
        if (!(cells[t->rows * t->cols + i] = strdup(row[i])))
            die_oom();
    t->rows++;
}

/* Characters on screen, near enough: UTF-8 continuation bytes take none. */
static size_t text_width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* Prints the table and frees it; the last column is not padded. */
static void table_print(struct table *t)
{
    size_t *width = calloc(t->cols, sizeof(*width));

    if (!width)
        die_oom();
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            size_t w = text_width(t->cells[r * t->cols + c]);

            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            const char *s = t->cells[r * t->cols + c];

            fputs(s, stdout);
            if (c + 1 < t->cols)
                printf("%*s", (int)(width[c] - text_width(s) + 2), "");
            free(t->cells[r * t->cols + c]);
        }
        putchar('\n');
    }
    free(width);
    free(t->cells);
    t->cells = NULL;
    t->rows = 0;
}

static void print_status(json_t *reply)
{
    static const char *const states[] = { "attached", "waiting", "failed", "held",
                                          "ignored", "unmatched" };
    json_t *devices = json_object_get(reply, "devices");
    char buf[512];
    json_int_t n;

    printf("version:  %s\n", cell(json_object_get(reply, "version"), buf, sizeof(buf)));
    printf("backend:  %s\n", cell(json_object_get(reply, "backend"), buf, sizeof(buf)));
    printf("policy:   %s", cell(json_object_get(reply, "policy"), buf, sizeof(buf)));
    if (get_str(reply, "policy_loaded"))
        printf(" (loaded %s)", cell(json_object_get(reply, "policy_loaded"), buf, sizeof(buf)));
    putchar('\n');
    printf("uptime:   ");
    if (get_int(reply, "uptime", &n) && n >= 0) {
        if (n >= 86400)
            printf("%" JSON_INTEGER_FORMAT "d ", n / 86400);
        if (n >= 3600)
            printf("%" JSON_INTEGER_FORMAT "h ", n / 3600 % 24);
        if (n >= 60)
            printf("%" JSON_INTEGER_FORMAT "m ", n / 60 % 60);
        printf("%" JSON_INTEGER_FORMAT "s\n", n % 60);
    } else {
        printf("-\n");
    }
    printf("devices:  %s", cell(json_object_get(devices, "total"), buf, sizeof(buf)));
    if (json_is_object(devices)) {
        bool any = false;

        for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
            if (!get_int(devices, states[i], &n))
                continue;
            printf("%s%" JSON_INTEGER_FORMAT " %s", any ? ", " : " (", n, states[i]);
            any = true;
        }
        if (any)
            putchar(')');
    }
    putchar('\n');
    printf("domains:  %s\n", cell(json_object_get(reply, "domains"), buf, sizeof(buf)));
}

/* The state of a device, with "(manual)" when attach or detach set it. */
static const char *device_state(json_t *dev, char *buf, size_t len)
{
    char s[CELL_MAX];

    snprintf(buf, len, "%s%s", cell(json_object_get(dev, "state"), s, sizeof(s)),
             json_is_true(json_object_get(dev, "override")) ? " (manual)" : "");
    return buf;
}

static void print_devices(json_t *reply)
{
    static const char *const header[] = { "PORT",   "PATH",      "BUS:DEV", "ID",
                                          "SERIAL", "STATE",     "DOMAIN",  "CTRL:PORT",
                                          "RULE",   "PRODUCT" };
    struct table t = { .cols = 10 };
    json_t *list = json_object_get(reply, "devices"), *dev;
    size_t i;

    if (json_array_size(list) == 0) {
        printf("no USB devices\n");
        return;
    }
    table_add(&t, header);
    json_array_foreach(list, i, dev) {
        char port[CELL_MAX], path[CELL_MAX], bus[48], id[CELL_MAX], serial[CELL_MAX],
            state[CELL_MAX + 16], domain[CELL_MAX], ctrl[48], rule[CELL_MAX],
            name[2 * CELL_MAX + 2];
        const char *row[] = {
            cell(json_object_get(dev, "port"), port, sizeof(port)),
            cell(json_object_get(dev, "path"), path, sizeof(path)),
            pair(dev, "busnum", "devnum", bus, sizeof(bus)),
            cell(json_object_get(dev, "id"), id, sizeof(id)),
            cell(json_object_get(dev, "serial"), serial, sizeof(serial)),
            device_state(dev, state, sizeof(state)),
            cell(json_object_get(dev, "domain"), domain, sizeof(domain)),
            pair(dev, "controller", "guest_port", ctrl, sizeof(ctrl)),
            cell(json_object_get(dev, "rule"), rule, sizeof(rule)),
            device_name(dev, name, sizeof(name)),
        };

        table_add(&t, row);
    }
    table_print(&t);
}

static void print_domains(json_t *reply)
{
    static const char *const header[] = { "NAME", "STATE", "DOMID", "QUEUE",
                                          "CONTROLLERS (id:version used/ports)" };
    struct table t = { .cols = 5 };
    json_t *list = json_object_get(reply, "domains"), *dom;
    size_t i;

    if (json_array_size(list) == 0) {
        printf("no domains in the policy\n");
        return;
    }
    table_add(&t, header);
    json_array_foreach(list, i, dom) {
        char name[CELL_MAX], domid[32], queue[64], ctrls[512] = "none";
        json_t *list_c = json_object_get(dom, "controllers"), *c;
        json_int_t q, retrying;
        size_t k, o = 0;

        json_array_foreach(list_c, k, c) {
            json_int_t id = -1, version = 0, ports = 0, used = 0;

            get_int(c, "id", &id);
            get_int(c, "version", &version);
            get_int(c, "ports", &ports);
            get_int(c, "used", &used);
            if (o < sizeof(ctrls))
                o += (size_t)snprintf(ctrls + o, sizeof(ctrls) - o,
                                      "%s%" JSON_INTEGER_FORMAT ":v%" JSON_INTEGER_FORMAT
                                      " %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                                      k ? ", " : "", id, version, used, ports);
        }
        if (!get_int(dom, "queue", &q))
            snprintf(queue, sizeof(queue), "-");
        else if (get_int(dom, "retrying", &retrying) && retrying > 0)
            snprintf(queue, sizeof(queue), "%" JSON_INTEGER_FORMAT " (%" JSON_INTEGER_FORMAT
                     " retrying)", q, retrying);
        else
            snprintf(queue, sizeof(queue), "%" JSON_INTEGER_FORMAT, q);
        {
            const char *row[] = {
                cell(json_object_get(dom, "name"), name, sizeof(name)),
                json_is_true(json_object_get(dom, "running")) ? "running" : "not running",
                cell(json_object_get(dom, "domid"), domid, sizeof(domid)),
                queue,
                ctrls,
            };

            table_add(&t, row);
        }
    }
    table_print(&t);
}

static void print_rules(json_t *reply)
{
    static const char *const header[] = { "RULE", "FILE:LINE", "NAME", "DECIDES" };
    struct table t = { .cols = 4 };
    json_t *list = json_object_get(reply, "rules"), *r;
    size_t i;

    if (json_array_size(list) == 0) {
        printf("no rules: every device stays in dom0\n");
        return;
    }
    table_add(&t, header);
    json_array_foreach(list, i, r) {
        char num[32], file[CELL_MAX], where[CELL_MAX + 32], name[CELL_MAX], dom[CELL_MAX];
        char decides[CELL_MAX + 8];
        json_int_t line;

        cell(json_object_get(r, "file"), file, sizeof(file));
        if (get_int(r, "line", &line))
            snprintf(where, sizeof(where), "%s:%" JSON_INTEGER_FORMAT, file, line);
        else
            snprintf(where, sizeof(where), "%s", file);
        if (get_str(r, "domain"))
            snprintf(decides, sizeof(decides), "-> %s",
                     cell(json_object_get(r, "domain"), dom, sizeof(dom)));
        else
            snprintf(decides, sizeof(decides), "ignore");
        {
            const char *row[] = { cell(json_object_get(r, "rule"), num, sizeof(num)), where,
                                  cell(json_object_get(r, "name"), name, sizeof(name)),
                                  decides };

            table_add(&t, row);
        }
    }
    table_print(&t);
}

/* ' "name"' for a rule with a name, "" otherwise. */
static const char *rule_label(json_t *obj, const char *key, char *buf, size_t len)
{
    char esc[CELL_MAX];
    const char *name = get_str(obj, key);

    if (name)
        snprintf(buf, len, " \"%s\"", log_escape(name, esc, sizeof(esc)));
    else
        buf[0] = '\0';
    return buf;
}

/*
 * " at FILE:LINE" for a drop-in's rule; "" for the main file's, which are
 * named by their number alone.
 */
static const char *rule_where(json_t *rule, char *buf, size_t len)
{
    char file[1024];        /* a path, escaped: longer than a table cell */
    json_int_t line = 0;

    if (!json_is_true(json_object_get(rule, "dropin")) || !get_str(rule, "file") ||
        !get_int(rule, "line", &line)) {
        buf[0] = '\0';
        return buf;
    }
    snprintf(buf, len, " at %s:%" JSON_INTEGER_FORMAT,
             cell(json_object_get(rule, "file"), file, sizeof(file)), line);
    return buf;
}

static void print_explain(json_t *reply)
{
    json_t *dev = json_object_get(reply, "device"), *rules = json_object_get(reply, "rules");
    json_t *domain = json_object_get(reply, "domain"), *r, *won = NULL;
    const char *decision = get_str(reply, "decision");
    char a[CELL_MAX], b[CELL_MAX], c[2 * CELL_MAX + 2], d[CELL_MAX + 16], label[CELL_MAX + 4];
    char where[1024 + 32];
    json_int_t winner = 0;
    bool have_winner = get_int(reply, "rule", &winner);
    size_t i;

    if (!domain)
        domain = json_object_get(dev, "domain");
    printf("device %s (%s) %s %s", cell(json_object_get(dev, "port"), a, sizeof(a)),
           pair(dev, "busnum", "devnum", d, sizeof(d)),
           cell(json_object_get(dev, "id"), b, sizeof(b)), device_name(dev, c, sizeof(c)));
    if (get_str(dev, "serial"))
        printf(", serial %s", cell(json_object_get(dev, "serial"), a, sizeof(a)));
    putchar('\n');
    if (get_str(dev, "path"))
        printf("path: %s\n", cell(json_object_get(dev, "path"), a, sizeof(a)));
    printf("state: %s", device_state(dev, d, sizeof(d)));
    if (json_is_integer(json_object_get(dev, "controller")))
        printf(" (controller:port %s)", pair(dev, "controller", "guest_port", a, sizeof(a)));
    putchar('\n');
    printf("decision: %s", decision ? log_escape(decision, a, sizeof(a)) : "-");
    if (json_is_string(domain))
        printf(" -> %s", cell(domain, b, sizeof(b)));
    json_array_foreach(rules, i, r)
        if (json_is_true(json_object_get(r, "decides")))
            won = r;
    if (have_winner)
        printf(" (rule %" JSON_INTEGER_FORMAT "%s%s)", winner,
               rule_label(dev, "rule_name", label, sizeof(label)),
               won ? rule_where(won, where, sizeof(where)) : "");
    else if (decision && strcmp(decision, "none") == 0)
        printf(" (no rule matched: the device stays in dom0)");
    if (json_is_true(json_object_get(reply, "override")))
        printf(", set by hand until it is unplugged");
    putchar('\n');
    if (get_str(reply, "held_reason")) {
        printf("held: ");
        put_text(stdout, get_str(reply, "held_reason"));
        putchar('\n');
    }
    json_array_foreach(rules, i, r) {
        json_int_t n = 0;
        json_t *decides = json_object_get(r, "decides");
        bool matched = json_is_true(json_object_get(r, "matched"));
        bool wins = decides ? json_is_true(decides)
                            : have_winner && get_int(r, "rule", &n) && n == winner;
        const char *reason = get_str(r, "reason");

        get_int(r, "rule", &n);
        printf("%s rule %" JSON_INTEGER_FORMAT "%s%s: %s", wins ? "*" : " ", n,
               rule_label(r, "name", label, sizeof(label)), rule_where(r, where, sizeof(where)),
               matched ? "matches" : "does not match");
        if (reason) {
            fputs(": ", stdout);
            put_text(stdout, reason);
        }
        putchar('\n');
    }
}

static void print_message(json_t *reply)
{
    const char *message = get_str(reply, "message");

    put_text(stdout, message ? message : "done");
    putchar('\n');
}

static void print_error(json_t *reply)
{
    const char *error = get_str(reply, "error");
    json_t *errors = json_object_get(reply, "errors"), *e;
    size_t i;

    fputs(PROGRAM ": ", stderr);
    put_text(stderr, error ? error : "the daemon answered with an error and no message");
    fputc('\n', stderr);
    /* A reload's policy errors, FILE:LINE:COLUMN: message, as a compiler says them. */
    json_array_foreach(errors, i, e) {
        if (!json_is_string(e))
            continue;
        put_text(stderr, json_string_value(e));
        fputc('\n', stderr);
    }
}

/* The watch's answer says only that events follow. */
static void print_watching(json_t *reply)
{
}

/* A watcher's line for one event, as a person reads it. */
static void print_event(json_t *ev)
{
    const char *event = get_str(ev, "event");
    char a[CELL_MAX], b[CELL_MAX], c[CELL_MAX], d[CELL_MAX];
    json_int_t n, m;
    json_t *errors;
    size_t i;

    if (!event) {
        fputs("(an event without a name)\n", stdout);
        return;
    }
    if (get_str(ev, "action")) {
        /* A decision: event, action, device, guest, rule. */
        printf("%s: %s %s (%s)", cell(json_object_get(ev, "event"), a, sizeof(a)),
               cell(json_object_get(ev, "action"), b, sizeof(b)),
               cell(json_object_get(ev, "port"), c, sizeof(c)),
               cell(json_object_get(ev, "id"), d, sizeof(d)));
        if (get_str(ev, "domain"))
            printf(" -> %s", cell(json_object_get(ev, "domain"), a, sizeof(a)));
        if (get_int(ev, "rule", &n)) {
            printf(", rule %" JSON_INTEGER_FORMAT, n);
            if (get_str(ev, "rule_name"))
                printf(" '%s'", cell(json_object_get(ev, "rule_name"), a, sizeof(a)));
            if (get_str(ev, "rule_file") && get_int(ev, "rule_line", &m))
                printf(" (%s:%" JSON_INTEGER_FORMAT ")",
                       cell(json_object_get(ev, "rule_file"), b, sizeof(b)), m);
        }
        putchar('\n');
        return;
    }
    printf("%s:", cell(json_object_get(ev, "event"), a, sizeof(a)));
    if (get_str(ev, "port"))
        printf(" %s (%s)", cell(json_object_get(ev, "port"), a, sizeof(a)),
               cell(json_object_get(ev, "id"), b, sizeof(b)));
    if (get_str(ev, "domain")) {
        printf(" %s %s", get_str(ev, "port") ? "in" : "guest",
               cell(json_object_get(ev, "domain"), a, sizeof(a)));
        if (get_int(ev, "domid", &n))
            printf(" (domid %" JSON_INTEGER_FORMAT ")", n);
    }
    if (get_int(ev, "controller", &n) && get_int(ev, "guest_port", &m))
        printf(" at controller %" JSON_INTEGER_FORMAT " port %" JSON_INTEGER_FORMAT, n, m);
    if (get_str(ev, "policy"))
        printf(" %s", cell(json_object_get(ev, "policy"), a, sizeof(a)));
    if (json_is_true(json_object_get(ev, "unchanged")))
        fputs(" (unchanged: nothing reloaded)", stdout);
    if (get_str(ev, "error")) {
        fputs(": ", stdout);
        put_text(stdout, get_str(ev, "error"));
    }
    putchar('\n');
    errors = json_object_get(ev, "errors");
    json_array_foreach(errors, i, ev) {
        if (!json_is_string(ev))
            continue;
        fputs("  ", stdout);
        put_text(stdout, json_string_value(ev));
        putchar('\n');
    }
}

/* Prints one event line: as it came (--json, breaks escaped) or readable. */
static int watch_line(const char *path, bool json, char *line)
{
    json_error_t err;
    json_t *ev;

    ev = json_loads(line, 0, &err);
    if (!ev || !json_is_object(ev)) {
        fprintf(stderr, PROGRAM ": malformed event from %s: ", path);
        put_text(stderr, !ev ? err.text : "not an object");
        fputc('\n', stderr);
        json_decref(ev);
        return EXIT_REPLY;
    }
    if (json) {
        char *safe = log_json_escape_breaks(line);

        if (!safe)
            die_oom();
        printf("%s\n", safe);
        free(safe);
    } else {
        print_event(ev);
    }
    json_decref(ev);
    return fflush(stdout) == 0 ? 0 : EXIT_REPLY;
}

/*
 * Follows the events after the watch's answer (rest: what came with it),
 * one line each, until the daemon closes the stream: it stopped, or
 * dropped this watcher for not reading.  Never returns 0.
 */
static int watch(int fd, const char *path, bool json, const char *rest, size_t rest_len)
{
    size_t len = rest_len, size = rest_len + 65536;
    char *buf = malloc(size), *nl;
    int r = 0;

    if (!buf)
        die_oom();
    memcpy(buf, rest, rest_len);
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n;

        while ((nl = memchr(buf, '\n', len))) {
            *nl = '\0';
            r = watch_line(path, json, buf);
            if (r) {
                free(buf);
                return r;
            }
            len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len);
        }
        if (size - len < 4096) {
            if (size >= REPLY_MAX) {
                fprintf(stderr, PROGRAM ": an event from %s is longer than %d bytes\n", path,
                        REPLY_MAX);
                break;
            }
            size *= 2;
            buf = realloc(buf, size);
            if (!buf)
                die_oom();
        }
        if (poll(&p, 1, -1) < 0 && errno != EINTR) {
            fprintf(stderr, PROGRAM ": poll: %s\n", strerror(errno));
            break;
        }
        n = recv(fd, buf + len, size - len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            fprintf(stderr, PROGRAM ": %s closed the stream%s%s\n", path, n < 0 ? ": " : "",
                    n < 0 ? strerror(errno) : "");
            break;
        }
        len += (size_t)n;
    }
    free(buf);
    return EXIT_REPLY;
}

/* ------------------------------------------------------------- main */

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = CONTROL_DEFAULT_SOCKET;
    const struct command *cmd;
    double timeout = DEFAULT_TIMEOUT, deadline;
    bool json = false;
    json_t *request, *reply;
    json_error_t err;
    char *text, *line;
    size_t got;
    int c, fd, r;

    while ((c = getopt_long(argc, argv, "s:jt:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            path = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 't': {
            char *end;

            errno = 0;
            timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(timeout > 0 && timeout <= 86400))
                return usage_error("--timeout %s: expected seconds, more than 0 and at "
                                   "most 86400", optarg);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf(PROGRAM " " PACKAGE_VERSION "\n");
            return 0;
        default:
            fputc('\n', stderr);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return usage_error("no command given");
    cmd = find_command(argv[optind]);
    if (!cmd)
        return usage_error("unknown command '%s'", argv[optind]);
    if (argc - optind - 1 != cmd->nargs)
        return usage_error("%s: expected '%s'", cmd->name, cmd->usage);
    if (strlen(path) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
        return usage_error("--socket %s: longer than a socket path may be", path);

    request = json_pack("{s:s}", "command", cmd->name);
    if (!request)
        die_oom();
    for (int i = 0; i < cmd->nargs; i++) {
        json_t *v = json_string(argv[optind + 1 + i]);

        if (!v) {
            json_decref(request);
            return usage_error("%s: '%s' is not valid UTF-8", cmd->name, argv[optind + 1 + i]);
        }
        json_object_set_new(request, cmd->keys[i], v);
    }
    text = json_dumps(request, JSON_COMPACT);
    json_decref(request);
    if (!text || !(text = realloc(text, strlen(text) + 2)))
        die_oom();
    strcat(text, "\n");

    /* One deadline for the whole exchange, connect() included. */
    deadline = now() + timeout;
    fd = connect_daemon(path, timeout);
    if (fd < 0) {
        free(text);
        return connect_error(path, -fd, timeout);
    }
    r = exchange(fd, path, text, deadline, timeout, &line, &got);
    free(text);
    if (r) {
        close(fd);
        return r;
    }

    reply = json_loads(line, 0, &err);
    if (!reply || !json_is_object(reply) || !json_is_boolean(json_object_get(reply, "ok"))) {
        fprintf(stderr, PROGRAM ": malformed reply from %s: ", path);
        /* jansson's message quotes the reply, and whoever sent it. */
        put_text(stderr, !reply ? err.text : "not an object with \"ok\" true or false");
        fputc('\n', stderr);
        json_decref(reply);
        free(line);
        return EXIT_REPLY;
    }
    r = json_is_true(json_object_get(reply, "ok")) ? 0 : EXIT_DAEMON_ERROR;
    if (json && strcmp(cmd->name, "watch") == 0 && r == 0) {
        /* Only the events follow: the answer that says they will is not one. */
    } else if (json) {
        /* As the daemon writes them, U+2028 and kin escaped: one line, whoever splits it. */
        char *safe = log_json_escape_breaks(line);

        if (!safe)
            die_oom();
        printf("%s\n", safe);
        free(safe);
    } else if (r == 0)
        cmd->print(reply);
    else
        print_error(reply);
    json_decref(reply);
    if (r == 0 && strcmp(cmd->name, "watch") == 0) {
        size_t used = strlen(line) + 1;

        r = watch(fd, path, json, line + used, got - used);
    }
    close(fd);
    free(line);
    return r;
}

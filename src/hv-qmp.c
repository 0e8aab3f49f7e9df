/*
 * The QMP backend: attach and detach through an extra QMP socket of each
 * guest's QEMU (its device_model_args), as the old script's -s did.
 *
 * It owns one persistent connection per guest, in the libev loop: connect
 * (non-blocking), the greeting, qmp_capabilities, then the discovery of the
 * guest's USB controllers and of what their ports hold, from QOM.  The guest
 * counts as running while that connection is up and discovered; it is known
 * by a pseudo-domid (QMP_DOMID_BASE + its index) that stays the same across
 * reconnects.  The connection closing, SHUTDOWN and RESET are reported as
 * the guest stopping (RESET: and starting again, after a new discovery, so
 * the workers adopt what QEMU still holds and attach what it lost).  A
 * socket that is absent or refuses is tried again with backoff.
 *
 * Controllers and devices carry libxl's names (xenusb-<n> for controller n,
 * bus xenusb-<n>.0, xenusb-<hostbus>-<hostaddr> for a usb-host), so that
 * both backends see the same guest the same way.  QEMU accepts the same
 * host device twice; this file refuses it.  libxl's own qmp-libxl-<domid>
 * socket is never opened: QEMU serves one client at a time and libxl would
 * wait behind us.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hv.h"
#include "log.h"
#include "qmp.h"

#define BACKOFF_MIN 0.5
#define BACKOFF_MAX 10.0
/* A QEMU that answers nothing for this long is taken as hung. */
#define REPLY_TIMEOUT 30.0
#define MAX_CTRLS 16
#define MAX_DEVS 256
/*
 * What one discovery may cost, whatever QEMU's qom-list says: the entries
 * looked at.  The qom-get commands it sends are bounded by MAX_DEVS (four
 * each) and MAX_CTRLS (one each), a name listed twice being looked at once.
 */
#define MAX_LIST_ENTRIES 4096
/*
 * Bytes queued for a QEMU that does not read them.  A discovery of
 * MAX_DEVS devices queues about 100 KiB at once, which a QEMU that reads
 * takes at once; past this, it reads nothing and the connection goes.
 */
#define MAX_OUT (256 * 1024)
/* A RESET within this long of the last discovery waits for its end. */
#define RESET_INTERVAL 1.0
/* Lines a guest's QEMU can make the daemon log per LOG_WINDOW seconds. */
#define LOG_BURST 20
#define LOG_WINDOW 10.0

struct qmp_hv;
struct guest;
struct cmd;

typedef void (*cmd_fn)(struct guest *g, struct cmd *c, const struct qmp_msg *m);

/* A command sent and not answered yet. */
struct cmd {
    long long id;
    cmd_fn fn;
    /* The operation of a domain worker it answers, if any. */
    hv_done_fn done;
    void *arg;
    int *id_out;
    /* What the answer is about. */
    int ctrl;
    int port;
    int version;
    int n_ports;
    unsigned busnum;
    unsigned devnum;
    char busid[AUA_BUSID_MAX + 1];
    char dev[64];           /* a QOM device id */
    char prop[16];
    struct cmd *next;
};

/* A device QEMU holds under /machine/peripheral that is not a controller. */
struct qdev {
    char id[64];
    bool usb_host;
    /*
     * Attached by this daemon.  Only these count as held by the guest when
     * another guest asks for the device: what a QEMU says it holds is its
     * own word, and a guest can make its QEMU say anything.
     */
    bool ours;
    int ctrl;               /* -1: not on one of our controllers (yet) */
    int port;
    unsigned busnum;
    unsigned devnum;
    char busid[AUA_BUSID_MAX + 1];
};

struct qctrl {
    int id;
    int version;
    int n_ports;
};

enum conn_state {
    CONN_DOWN,
    CONN_CONNECTING,
    CONN_GREETING,
    CONN_CAPABILITIES,
    CONN_DISCOVERY,
    CONN_UP,
    CONN_SHUT,              /* connected, but the guest shut down */
};

struct guest {
    struct qmp_hv *q;
    char *name;
    char *path;
    int domid;
    int fd;
    enum conn_state state;
    bool reported;          /* domain_started told, domain_stopped not yet */
    bool absent_logged;
    ev_io rio;
    ev_io wio;
    ev_timer reconnect;
    ev_timer reply_timer;
    ev_timer drop_timer;    /* a failure seen inside a call, handled from the loop */
    const char *drop_why;   /* what drop_timer says; NULL: "the connection failed" */
    double backoff;
    struct qmp_reader reader;
    char *out;
    size_t out_len;
    size_t out_off;
    long long next_id;
    struct cmd *cmds;
    struct cmd **cmds_tail; /* the link a new command goes to: sending is O(1) */
    unsigned discovering;   /* discovery answers still to come */
    ev_timer reset_timer;   /* a RESET that came too soon after the last one */
    double last_discovery;
    double log_window;      /* start of the current window of LOG_BURST lines */
    unsigned log_lines;
    unsigned log_dropped;
    struct qctrl ctrls[MAX_CTRLS];
    size_t n_ctrls;
    struct qdev *devs;
    size_t n_devs;
    struct qdev *old_devs;  /* the previous discovery's, for busids */
    size_t n_old_devs;
};

struct qmp_hv {
    struct hv hv;
    struct ev_loop *loop;
    struct guest *guests;
    size_t n_guests;
};

static void guest_drop(struct guest *g, const char *why);
static void send_cmd(struct guest *g, struct cmd *c, const char *execute, json_t *args);
static void discover(struct guest *g);
static void write_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---- small helpers ---- */

/* What QEMU sends is untrusted: escaped before it reaches a log line. */
#define ESC(s) log_escape((s), (char[160]){ 0 }, 160)

/*
 * Logs a line that a guest's QEMU can cause at will (events, replies to no
 * command, odd QOM): LOG_BURST lines per LOG_WINDOW seconds, then one line
 * saying that the rest are left out, so that a hostile QEMU cannot flood
 * the journal.  Lines of a level not shown do not count.
 */
static void guest_log(struct guest *g, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void guest_log(struct guest *g, enum log_level level, const char *fmt, ...)
{
    double now = ev_now(g->q->loop);
    va_list ap;

    if (now - g->log_window >= LOG_WINDOW) {
        if (g->log_dropped)
            log_notice("%s: %u message(s) caused by its QEMU were left out", g->name,
                       g->log_dropped);
        g->log_window = now;
        g->log_lines = g->log_dropped = 0;
    }
    if (level > log_get_level())
        return;
    if (g->log_lines >= LOG_BURST) {
        if (!g->log_dropped++)
            log_warnx("%s: its QEMU causes more than %d messages in %.0f s: the rest are "
                      "left out", g->name, LOG_BURST, LOG_WINDOW);
        return;
    }
    g->log_lines++;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

static struct guest *guest_by_domid(struct qmp_hv *q, int domid)
{
    size_t i = (size_t)(domid - QMP_DOMID_BASE);

    if (domid < QMP_DOMID_BASE || i >= q->n_guests)
        return NULL;
    return &q->guests[i];
}

static bool running(const struct guest *g)
{
    return g->state == CONN_UP && g->reported;
}

static void report_started(struct guest *g)
{
    struct hv *hv = &g->q->hv;

    if (g->reported)
        return;
    g->reported = true;
    if (hv->events.domain_started)
        hv->events.domain_started(hv->events.arg, g->name, g->domid);
}

static void report_stopped(struct guest *g)
{
    struct hv *hv = &g->q->hv;

    if (!g->reported)
        return;
    g->reported = false;
    if (hv->events.domain_stopped)
        hv->events.domain_stopped(hv->events.arg, g->name, g->domid);
}

static struct cmd *cmd_new(hv_done_fn done, void *arg)
{
    struct cmd *c = calloc(1, sizeof(*c));

    if (c) {
        c->done = done;
        c->arg = arg;
        c->ctrl = c->port = -1;
    }
    return c;
}

static struct qdev *dev_find(struct qdev *devs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(devs[i].id, id) == 0)
            return &devs[i];
    return NULL;
}

static struct qdev *dev_add(struct guest *g, const char *id)
{
    struct qdev *d = dev_find(g->devs, g->n_devs, id), *devs;

    if (d)
        return d;
    if (g->n_devs >= MAX_DEVS)
        return NULL;
    devs = realloc(g->devs, (g->n_devs + 1) * sizeof(*devs));
    if (!devs)
        return NULL;
    g->devs = devs;
    d = &devs[g->n_devs++];
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->ctrl = d->port = -1;
    return d;
}

static void dev_remove(struct guest *g, const char *id)
{
    struct qdev *d = dev_find(g->devs, g->n_devs, id);

    if (!d)
        return;
    *d = g->devs[--g->n_devs];
}

static struct qctrl *ctrl_find(struct guest *g, int id)
{
    for (size_t i = 0; i < g->n_ctrls; i++)
        if (g->ctrls[i].id == id)
            return &g->ctrls[i];
    return NULL;
}

/* "xenusb-<n>" -> n, or -1. */
static int ctrl_id_of(const char *name)
{
    const char *p = name + strlen("xenusb-");
    char *end;
    long v;

    if (strncmp(name, "xenusb-", 7) != 0 || *p < '0' || *p > '9')
        return -1;
    v = strtol(p, &end, 10);
    return *end || v > 1000 ? -1 : (int)v;
}

/* The controller types QEMU has, as (version, ports); 0 when not one. */
static int ctrl_version(const char *type, int *n_ports)
{
    static const struct {
        const char *type;
        int version;
        int ports;
    } types[] = {
        { "nec-usb-xhci", 3, 4 },   { "qemu-xhci", 3, 4 },       { "usb-ehci", 2, 6 },
        { "ich9-usb-ehci1", 2, 6 }, { "ich9-usb-ehci2", 2, 6 },  { "piix3-usb-uhci", 1, 2 },
        { "piix4-usb-uhci", 1, 2 }, { "ich9-usb-uhci1", 1, 2 },  { "ich9-usb-uhci2", 1, 2 },
        { "ich9-usb-uhci3", 1, 2 }, { "ich9-usb-uhci4", 1, 2 },  { "ich9-usb-uhci5", 1, 2 },
        { "ich9-usb-uhci6", 1, 2 }, { "vt82c686b-usb-uhci", 1, 2 },
    };

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(type, types[i].type) == 0) {
            *n_ports = types[i].ports;
            return types[i].version;
        }
    }
    return 0;
}

/*
 * The port path of the host device at bus:addr, from sysfs; "" when it has
 * gone.  Used for what QEMU held before this connection: QEMU knows only
 * the bus and address.
 */
static void busid_from_sysfs(unsigned busnum, unsigned devnum, char *out, size_t len)
{
    DIR *dir = opendir("/sys/bus/usb/devices");
    struct dirent *de;

    out[0] = '\0';
    if (!dir)
        return;
    while ((de = readdir(dir))) {
        char path[320], buf[16];
        unsigned b = 0, d = 0;
        FILE *f;

        if (de->d_name[0] == '.' || strchr(de->d_name, ':') ||
            strncmp(de->d_name, "usb", 3) == 0)
            continue;
        snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/busnum", de->d_name);
        if ((f = fopen(path, "re"))) {
            if (fgets(buf, sizeof(buf), f))
                b = (unsigned)strtoul(buf, NULL, 10);
            fclose(f);
        }
        snprintf(path, sizeof(path), "/sys/bus/usb/devices/%s/devnum", de->d_name);
        if ((f = fopen(path, "re"))) {
            if (fgets(buf, sizeof(buf), f))
                d = (unsigned)strtoul(buf, NULL, 10);
            fclose(f);
        }
        if (b == busnum && d == devnum && strlen(de->d_name) < len) {
            memcpy(out, de->d_name, strlen(de->d_name) + 1);
            break;
        }
    }
    closedir(dir);
}

/* ---- the connection ---- */

static void schedule_reconnect(struct guest *g)
{
    ev_timer_stop(g->q->loop, &g->reconnect);
    ev_timer_set(&g->reconnect, g->backoff, 0.);
    ev_timer_start(g->q->loop, &g->reconnect);
    g->backoff *= 2;
    if (g->backoff > BACKOFF_MAX)
        g->backoff = BACKOFF_MAX;
}

/* Answers every command in flight (their operations with err) and forgets them. */
static void cancel_cmds(struct guest *g, int err)
{
    while (g->cmds) {
        struct cmd *c = g->cmds;

        g->cmds = c->next;
        if (c->done)
            c->done(c->arg, err);
        free(c);
    }
    g->cmds_tail = &g->cmds;
}

static void close_conn(struct guest *g)
{
    struct ev_loop *loop = g->q->loop;

    ev_io_stop(loop, &g->rio);
    ev_io_stop(loop, &g->wio);
    /* A connect that was waiting leaves its callback behind. */
    ev_set_cb(&g->wio, write_cb);
    ev_timer_stop(loop, &g->reply_timer);
    ev_timer_stop(loop, &g->drop_timer);
    ev_timer_stop(loop, &g->reset_timer);
    g->drop_why = NULL;
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    g->state = CONN_DOWN;
    free(g->out);
    g->out = NULL;
    g->out_len = g->out_off = 0;
    qmp_reader_clear(&g->reader);
    g->discovering = 0;
}

/* The connection is gone or unusable: the guest stops, and we come back later. */
static void guest_drop(struct guest *g, const char *why)
{
    bool was_up = g->state == CONN_UP || g->state == CONN_SHUT;

    if (why)
        log_msg(was_up ? LOG_LEVEL_NOTICE : LOG_LEVEL_WARNING, "%s: QMP %s: %s", g->name,
                g->path, why);
    close_conn(g);
    /* Stopped first: answers after it are about the old guest. */
    report_stopped(g);
    cancel_cmds(g, -ECONNRESET);
    schedule_reconnect(g);
}

static void drop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct guest *g = w->data;

    guest_drop(g, g->drop_why ? g->drop_why : "the connection failed");
}

static void reply_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    guest_drop(w->data, "no answer from QEMU: dropping the connection");
}

static void flush_out(struct guest *g)
{
    while (g->out_off < g->out_len) {
        ssize_t n = send(g->fd, g->out + g->out_off, g->out_len - g->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(g->q->loop, &g->wio);
            return;
        }
        if (n < 0) {
            log_debug("%s: QMP send: %s", g->name, strerror(errno));
            /* Maybe inside a worker's call: the drop happens from the loop. */
            if (!ev_is_active(&g->drop_timer))
                ev_timer_start(g->q->loop, &g->drop_timer);
            return;
        }
        g->out_off += (size_t)n;
    }
    ev_io_stop(g->q->loop, &g->wio);
    free(g->out);
    g->out = NULL;
    g->out_len = g->out_off = 0;
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    flush_out(w->data);
}

/* Sends a command; c (owned from here on) is answered by its fn. */
static void send_cmd(struct guest *g, struct cmd *c, const char *execute, json_t *args)
{
    size_t len;
    char *line;

    c->id = ++g->next_id;
    line = qmp_command_line(execute, args, c->id, &len);
    json_decref(args);
    /* Queued first: a failure below answers it from the loop like any other. */
    c->next = NULL;
    *g->cmds_tail = c;
    g->cmds_tail = &c->next;
    if (!ev_is_active(&g->reply_timer)) {
        ev_timer_set(&g->reply_timer, REPLY_TIMEOUT, 0.);
        ev_timer_start(g->q->loop, &g->reply_timer);
    }
    if (!line) {
        log_error("%s: out of memory", g->name);
        if (!ev_is_active(&g->drop_timer))
            ev_timer_start(g->q->loop, &g->drop_timer);
        return;
    }
    if (ev_is_active(&g->drop_timer)) {
        free(line);     /* the connection goes: nothing more is sent on it */
        return;
    }
    if (g->out_len - g->out_off + len > MAX_OUT) {
        free(line);
        g->drop_why = "QEMU reads nothing of what is sent to it: dropping the connection";
        ev_timer_start(g->q->loop, &g->drop_timer);
        return;
    }
    log_debug("%s: QMP -> %.*s", g->name, (int)len - 1, line);
    if (!g->out) {
        g->out = line;
        g->out_len = len;
        g->out_off = 0;
    } else {
        char *out = realloc(g->out, g->out_len + len);

        if (!out) {
            free(line);
            log_error("%s: out of memory", g->name);
            if (!ev_is_active(&g->drop_timer))
                ev_timer_start(g->q->loop, &g->drop_timer);
            return;
        }
        memcpy(out + g->out_len, line, len);
        g->out = out;
        g->out_len += len;
        free(line);
    }
    flush_out(g);
}

/* ---- discovery ---- */

/* One discovery answer less; the last one makes the guest run. */
static void discovery_step(struct guest *g)
{
    if (--g->discovering)
        return;
    for (size_t i = 0; i < g->n_devs; i++) {
        struct qdev *d = &g->devs[i];
        struct qdev *old;

        if (!d->usb_host)
            continue;
        old = dev_find(g->old_devs, g->n_old_devs, d->id);
        if (old && old->busnum == d->busnum && old->devnum == d->devnum)
            d->ours = old->ours;
        if (d->busid[0])
            continue;
        if (old && old->busnum == d->busnum && old->devnum == d->devnum && old->busid[0])
            memcpy(d->busid, old->busid, sizeof(d->busid));
        else
            busid_from_sysfs(d->busnum, d->devnum, d->busid, sizeof(d->busid));
    }
    free(g->old_devs);
    g->old_devs = NULL;
    g->n_old_devs = 0;
    g->state = CONN_UP;
    g->backoff = BACKOFF_MIN;
    log_info("%s: QMP %s: %zu USB controller(s), %zu other device(s)", g->name, g->path,
             g->n_ctrls, g->n_devs);
    report_started(g);
}

static void prop_answer(struct guest *g, struct cmd *c, const struct qmp_msg *m)
{
    struct qdev *d = dev_find(g->devs, g->n_devs, c->dev);
    struct qctrl *ctrl;

    if (m->kind == QMP_RETURN) {
        json_t *v = m->ret;

        if (strcmp(c->prop, "p2") == 0 && (ctrl = ctrl_find(g, c->ctrl)) &&
            json_is_integer(v) && json_integer_value(v) > 0) {
            json_int_t n = json_integer_value(v);

            ctrl->n_ports = n > 15 ? 15 : (int)n;
        } else if (d && strcmp(c->prop, "parent_bus") == 0 && json_is_string(v)) {
            /* "/machine/peripheral/xenusb-0/xenusb-0.0" */
            const char *s = json_string_value(v), *bus = strrchr(s, '/');
            char name[64];
            size_t n;

            if (bus && (n = strlen(bus + 1)) > 2 && n < sizeof(name) &&
                strcmp(bus + 1 + n - 2, ".0") == 0) {
                memcpy(name, bus + 1, n - 2);
                name[n - 2] = '\0';
                d->ctrl = ctrl_id_of(name);
            }
        } else if (d && strcmp(c->prop, "port") == 0 && json_is_string(v)) {
            char *end;
            long p = strtol(json_string_value(v), &end, 10);

            d->port = *end || p < 1 || p > 16 ? -1 : (int)p;
        } else if (d && strcmp(c->prop, "hostbus") == 0 && json_is_integer(v)) {
            d->busnum = (unsigned)json_integer_value(v);
        } else if (d && strcmp(c->prop, "hostaddr") == 0 && json_is_integer(v)) {
            d->devnum = (unsigned)json_integer_value(v);
        }
    } else {
        log_debug("%s: qom-get %s %s: %s", g->name, c->dev, c->prop, ESC(m->err_desc));
    }
    discovery_step(g);
}

static void qom_get(struct guest *g, const char *dev, const char *prop, int ctrl)
{
    struct cmd *c = cmd_new(NULL, NULL);
    char path[128];

    if (!c) {
        log_error("%s: out of memory", g->name);
        return;
    }
    c->fn = prop_answer;
    c->ctrl = ctrl;
    snprintf(c->dev, sizeof(c->dev), "%s", dev);
    snprintf(c->prop, sizeof(c->prop), "%s", prop);
    snprintf(path, sizeof(path), "/machine/peripheral/%s", dev);
    g->discovering++;
    send_cmd(g, c, "qom-get", json_pack("{s:s, s:s}", "path", path, "property", prop));
}

static void list_answer(struct guest *g, struct cmd *c, const struct qmp_msg *m)
{
    size_t i;
    json_t *child;

    if (m->kind != QMP_RETURN || !json_is_array(m->ret)) {
        log_warnx("%s: QMP qom-list /machine/peripheral: %s", g->name,
                  m->kind == QMP_ERROR ? ESC(m->err_desc) : "not a list");
        guest_drop(g, NULL);
        return;
    }
    g->discovering = 1;     /* this answer's own step, taken last */
    json_array_foreach(m->ret, i, child) {
        json_t *jn, *jt;
        const char *name, *type;
        char driver[64];
        size_t n;
        int version, n_ports = 0, id;

        if (i >= MAX_LIST_ENTRIES) {
            guest_log(g, LOG_LEVEL_WARNING, "%s: QMP qom-list /machine/peripheral: more "
                      "than %d entries: the rest are ignored", g->name, MAX_LIST_ENTRIES);
            break;
        }
        jn = json_object_get(child, "name");
        jt = json_object_get(child, "type");
        if (!json_is_string(jn) || !json_is_string(jt))
            continue;
        name = json_string_value(jn);
        type = json_string_value(jt);
        n = strlen(type);
        if (strncmp(type, "child<", 6) != 0 || type[n - 1] != '>' || n - 7 >= sizeof(driver) ||
            strlen(name) >= sizeof(((struct qdev *)0)->id))
            continue;
        memcpy(driver, type + 6, n - 7);
        driver[n - 7] = '\0';
        version = ctrl_version(driver, &n_ports);
        if (version) {
            id = ctrl_id_of(name);
            if (id < 0) {
                guest_log(g, LOG_LEVEL_INFO, "%s: USB controller '%s' is not one of ours "
                          "(xenusb-N): left alone", g->name, ESC(name));
                continue;
            }
            if (g->n_ctrls >= MAX_CTRLS || ctrl_find(g, id))
                continue;
            g->ctrls[g->n_ctrls++] = (struct qctrl){ id, version, n_ports };
            if (version == 3)
                qom_get(g, name, "p2", id);
            continue;
        }
        /* Anything else may sit on one of our buses and take a port. */
        {
            struct qdev *d;

            /* Listed twice: looked at once (a QEMU could list it 100,000 times). */
            if (dev_find(g->devs, g->n_devs, name))
                continue;
            d = dev_add(g, name);

            if (!d)
                continue;
            d->usb_host = strcmp(driver, "usb-host") == 0;
            qom_get(g, name, "parent_bus", -1);
            qom_get(g, name, "port", -1);
            if (d->usb_host) {
                qom_get(g, name, "hostbus", -1);
                qom_get(g, name, "hostaddr", -1);
            }
        }
    }
    discovery_step(g);
}

/* What QEMU holds now, from QOM; the guest runs when the last answer is in. */
static void discover(struct guest *g)
{
    struct cmd *c = cmd_new(NULL, NULL);

    /* The old list's busids are kept for devices that are still there. */
    free(g->old_devs);
    g->old_devs = g->devs;
    g->n_old_devs = g->n_devs;
    g->devs = NULL;
    g->n_devs = 0;
    g->n_ctrls = 0;
    if (!c) {
        guest_drop(g, "out of memory");
        return;
    }
    g->state = CONN_DISCOVERY;
    g->last_discovery = ev_now(g->q->loop);
    c->fn = list_answer;
    send_cmd(g, c, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"));
}

static void reset_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    discover(w->data);
}

static void caps_answer(struct guest *g, struct cmd *c, const struct qmp_msg *m)
{
    if (m->kind != QMP_RETURN) {
        log_warnx("%s: QMP qmp_capabilities refused: %s", g->name, ESC(m->err_desc));
        guest_drop(g, NULL);
        return;
    }
    discover(g);
}

/* ---- messages ---- */

static void on_event(struct guest *g, const struct qmp_msg *m)
{
    if (strcmp(m->event, "SHUTDOWN") == 0) {
        guest_log(g, LOG_LEVEL_NOTICE, "%s: QEMU reports a shutdown", g->name);
        if (g->state == CONN_UP)
            g->state = CONN_SHUT;
        report_stopped(g);
    } else if (strcmp(m->event, "RESET") == 0) {
        double wait = g->last_discovery + RESET_INTERVAL - ev_now(g->q->loop);

        if (g->state != CONN_UP && g->state != CONN_SHUT)
            return;     /* a discovery is under way; it sees the reset's result */
        guest_log(g, LOG_LEVEL_NOTICE, "%s: QEMU reports a reset: the guest starts again",
                  g->name);
        report_stopped(g);
        if (wait > 0) {
            /*
             * Resets in a row (a guest can make its QEMU send any number):
             * one discovery per RESET_INTERVAL, so that neither the workers
             * nor the state file follow each one.
             */
            g->state = CONN_DISCOVERY;
            ev_timer_set(&g->reset_timer, wait, 0.);
            ev_timer_start(g->q->loop, &g->reset_timer);
            return;
        }
        discover(g);
    } else if (strcmp(m->event, "DEVICE_DELETED") == 0) {
        json_t *dev = m->data ? json_object_get(m->data, "device") : NULL;
        const char *id = json_is_string(dev) ? json_string_value(dev) : NULL;

        /* Ours were forgotten at device_del's reply; someone else's go now. */
        if (id) {
            guest_log(g, LOG_LEVEL_DEBUG, "%s: QEMU deleted %s%s", g->name, ESC(id),
                      dev_find(g->devs, g->n_devs, id) ? " (not by us)" : "");
            dev_remove(g, id);
        }
    } else {
        guest_log(g, LOG_LEVEL_DEBUG, "%s: QMP event %s", g->name, ESC(m->event));
    }
}

static int on_msg(void *arg, json_t *msg)
{
    struct guest *g = arg;
    struct qmp_msg m;
    struct cmd **link, *c;

    if (qmp_msg_parse(msg, &m) < 0)
        return -EPROTO;
    switch (m.kind) {
    case QMP_GREETING:
        if (g->state != CONN_GREETING)
            return -EPROTO;
        c = cmd_new(NULL, NULL);
        if (!c)
            return -ENOMEM;
        c->fn = caps_answer;
        g->state = CONN_CAPABILITIES;
        send_cmd(g, c, "qmp_capabilities", NULL);
        return 0;
    case QMP_EVENT:
        if (g->state == CONN_GREETING)
            return -EPROTO;
        on_event(g, &m);
        return 0;
    case QMP_RETURN:
    case QMP_ERROR:
        for (link = &g->cmds; *link && (!m.has_id || (*link)->id != m.id);
             link = &(*link)->next)
            ;
        if (!m.has_id || !*link) {
            guest_log(g, LOG_LEVEL_WARNING, "%s: QMP %s: a reply to no command of ours: "
                      "ignored", g->name, g->path);
            return 0;
        }
        c = *link;
        *link = c->next;
        if (!c->next)
            g->cmds_tail = link;
        ev_timer_stop(g->q->loop, &g->reply_timer);
        if (g->cmds) {
            ev_timer_set(&g->reply_timer, REPLY_TIMEOUT, 0.);
            ev_timer_start(g->q->loop, &g->reply_timer);
        }
        c->fn(g, c, &m);
        free(c);
        /* The answer may have dropped the connection. */
        return g->fd < 0 ? -ECONNRESET : 0;
    }
    return 0;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct guest *g = w->data;
    char buf[65536];
    ssize_t n = recv(g->fd, buf, sizeof(buf), MSG_DONTWAIT);
    int r;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        guest_drop(g, n == 0 ? "QEMU closed the connection" : strerror(errno));
        return;
    }
    r = qmp_reader_feed(&g->reader, buf, (size_t)n, on_msg, g);
    if (r == -ECONNRESET)
        return;
    if (r == -EMSGSIZE)
        guest_drop(g, "a message longer than 1 MiB: dropping the connection");
    else if (r == -EPROTO)
        guest_drop(g, "a message that is not QMP: dropping the connection");
    else if (r < 0)
        guest_drop(g, strerror(-r));
}

static void connected(struct guest *g)
{
    log_info("%s: QMP %s: connected", g->name, g->path);
    g->absent_logged = false;
    g->state = CONN_GREETING;
    ev_io_set(&g->rio, g->fd, EV_READ);
    ev_io_start(g->q->loop, &g->rio);
    ev_io_set(&g->wio, g->fd, EV_WRITE);
}

static void connect_done_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct guest *g = w->data;
    int err = 0;
    socklen_t len = sizeof(err);

    ev_io_stop(loop, w);
    ev_set_cb(w, write_cb);
    if (getsockopt(g->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        close_conn(g);
        log_debug("%s: QMP %s: %s", g->name, g->path, strerror(err));
        schedule_reconnect(g);
        return;
    }
    connected(g);
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct guest *g = w->data;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    g->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (g->fd < 0) {
        log_warn("%s: QMP socket", g->name);
        schedule_reconnect(g);
        return;
    }
    memcpy(sa.sun_path, g->path, strlen(g->path) + 1);
    g->state = CONN_CONNECTING;
    if (connect(g->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        connected(g);
        return;
    }
    if (errno == EINPROGRESS || errno == EAGAIN) {
        ev_io_set(&g->wio, g->fd, EV_WRITE);
        ev_set_cb(&g->wio, connect_done_cb);
        ev_io_start(loop, &g->wio);
        return;
    }
    /* Absent, or refused (a killed QEMU leaves its socket file): not an error yet. */
    if (!g->absent_logged) {
        log_info("%s: QMP %s: %s; trying again", g->name, g->path, strerror(errno));
        g->absent_logged = true;
    } else {
        log_debug("%s: QMP %s: %s", g->name, g->path, strerror(errno));
    }
    close_conn(g);
    schedule_reconnect(g);
}

/* ---- hv_ops ---- */

static int q_lookup(struct hv *hv, const char *name)
{
    struct qmp_hv *q = (struct qmp_hv *)hv;

    for (size_t i = 0; i < q->n_guests; i++)
        if (strcmp(q->guests[i].name, name) == 0)
            return running(&q->guests[i]) ? q->guests[i].domid : -ENOENT;
    return -ENOENT;
}

static int q_list(struct hv *hv, int domid, struct hv_controller **out, size_t *n)
{
    struct guest *g = guest_by_domid((struct qmp_hv *)hv, domid);
    struct hv_controller *list;

    *out = NULL;
    *n = 0;
    if (!g || !running(g))
        return -ENOENT;
    list = calloc(g->n_ctrls ? g->n_ctrls : 1, sizeof(*list));
    if (!list)
        return -ENOMEM;
    for (size_t i = 0; i < g->n_ctrls; i++) {
        list[i].id = g->ctrls[i].id;
        list[i].version = g->ctrls[i].version;
        list[i].n_ports = g->ctrls[i].n_ports;
    }
    for (size_t k = 0; k < g->n_devs; k++) {
        const struct qdev *d = &g->devs[k];

        for (size_t i = 0; i < g->n_ctrls; i++) {
            struct hv_port *p;

            if (list[i].id != d->ctrl || d->port < 1 || d->port > list[i].n_ports)
                continue;
            p = &list[i].ports[d->port - 1];
            p->used = true;
            p->busnum = d->busnum;
            p->devnum = d->devnum;
            /* Not a host device: the port is taken, by nothing we would ever remove. */
            snprintf(p->busid, sizeof(p->busid), "%s", d->usb_host ? d->busid : "");
        }
    }
    *out = list;
    *n = g->n_ctrls;
    return 0;
}

static void ctrl_answer(struct guest *g, struct cmd *c, const struct qmp_msg *m)
{
    if (m->kind == QMP_ERROR) {
        log_warnx("%s: QMP device_add xenusb-%d: %s", g->name, c->ctrl, ESC(m->err_desc));
        c->done(c->arg, -EIO);
        return;
    }
    if (g->n_ctrls < MAX_CTRLS && !ctrl_find(g, c->ctrl))
        g->ctrls[g->n_ctrls++] = (struct qctrl){ c->ctrl, c->version, c->n_ports };
    *c->id_out = c->ctrl;
    c->done(c->arg, 0);
}

static int q_add_controller(struct hv *hv, int domid, const struct controller_spec *spec,
                            int *id, hv_done_fn done, void *arg)
{
    struct guest *g = guest_by_domid((struct qmp_hv *)hv, domid);
    struct cmd *c;
    char name[32];
    json_t *args;
    int next = 0;

    if (!g || !running(g))
        return -ENODEV;
    if (g->n_ctrls >= MAX_CTRLS)
        return -ENOSPC;
    /* The next free number among every xenusb-N QEMU holds, as libxl counts. */
    for (size_t i = 0; i < g->n_ctrls; i++)
        if (g->ctrls[i].id >= next)
            next = g->ctrls[i].id + 1;
    snprintf(name, sizeof(name), "xenusb-%d", next);
    switch (spec->version) {
    case 1:
        args = json_pack("{s:s, s:s}", "driver", "piix3-usb-uhci", "id", name);
        break;
    case 2:
        args = json_pack("{s:s, s:s}", "driver", "usb-ehci", "id", name);
        break;
    case 3:
        args = json_pack("{s:s, s:s, s:i, s:i}", "driver", "nec-usb-xhci", "id", name, "p2",
                         spec->ports, "p3", spec->ports);
        break;
    default:
        return -EINVAL;
    }
    c = cmd_new(done, arg);
    if (!c || !args) {
        free(c);
        json_decref(args);
        return -ENOMEM;
    }
    c->fn = ctrl_answer;
    c->id_out = id;
    c->ctrl = next;
    c->version = spec->version;
    c->n_ports = spec->version == 1 ? 2 : spec->version == 2 ? 6 : spec->ports;
    send_cmd(g, c, "device_add", args);
    return 0;
}

static void attach_answer(struct guest *g, struct cmd *c, const struct qmp_msg *m)
{
    struct qdev *d;

    if (m->kind == QMP_ERROR) {
        log_warnx("%s: QMP device_add %s: %s", g->name, c->dev, ESC(m->err_desc));
        c->done(c->arg, hv_error_from_message(m->err_desc, -EIO));
        return;
    }
    d = dev_add(g, c->dev);
    if (d) {
        d->usb_host = true;
        d->ctrl = c->ctrl;
        d->port = c->port;
        d->busnum = c->busnum;
        d->devnum = c->devnum;
        memcpy(d->busid, c->busid, sizeof(d->busid));
        d->ours = true;
    }
    c->done(c->arg, 0);
}

/*
 * Which guest's QEMU this daemon gave host device bus:addr to; NULL when
 * none.  What another QEMU claims to hold does not count: a guest could
 * claim every device and keep them from the guests the policy names.
 */
static struct guest *holder(struct qmp_hv *q, unsigned busnum, unsigned devnum)
{
    for (size_t i = 0; i < q->n_guests; i++)
        for (size_t k = 0; k < q->guests[i].n_devs; k++) {
            const struct qdev *d = &q->guests[i].devs[k];

            if (d->usb_host && d->ours && d->busnum == busnum && d->devnum == devnum)
                return &q->guests[i];
        }
    return NULL;
}

static int q_attach(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                    void *arg)
{
    struct qmp_hv *q = (struct qmp_hv *)hv;
    struct guest *g = guest_by_domid(q, domid), *other;
    char id[64], bus[32], port[8];
    struct cmd *c;
    json_t *args;

    if (!g || !running(g))
        return -ENODEV;
    if (!usb->busnum || !usb->devnum || usb->port < 1)
        return -EINVAL;
    /* QEMU would add the same host device twice. */
    if ((other = holder(q, usb->busnum, usb->devnum))) {
        log_warnx("%s: bus %u device %u (%s) is held by %s's QEMU already: not added again",
                  g->name, usb->busnum, usb->devnum, usb->busid ? usb->busid : "?",
                  other->name);
        return other == g ? -EEXIST : -EBUSY;
    }
    snprintf(id, sizeof(id), "xenusb-%u-%u", usb->busnum, usb->devnum);
    snprintf(bus, sizeof(bus), "xenusb-%d.0", usb->ctrl);
    snprintf(port, sizeof(port), "%d", usb->port);
    /* hostbus and hostaddr as integers: QEMU 9.2 and later refuse strings. */
    args = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "driver", "usb-host", "id", id, "bus",
                     bus, "port", port, "hostbus", (json_int_t)usb->busnum, "hostaddr",
                     (json_int_t)usb->devnum);
    c = cmd_new(done, arg);
    if (!c || !args) {
        free(c);
        json_decref(args);
        return -ENOMEM;
    }
    c->fn = attach_answer;
    c->ctrl = usb->ctrl;
    c->port = usb->port;
    c->busnum = usb->busnum;
    c->devnum = usb->devnum;
    snprintf(c->busid, sizeof(c->busid), "%s", usb->busid ? usb->busid : "");
    snprintf(c->dev, sizeof(c->dev), "%s", id);
    send_cmd(g, c, "device_add", args);
    return 0;
}

static void detach_answer(struct guest *g, struct cmd *c, const struct qmp_msg *m)
{
    if (m->kind == QMP_ERROR && strcmp(m->err_class, "DeviceNotFound") != 0) {
        log_warnx("%s: QMP device_del %s: %s", g->name, c->dev, ESC(m->err_desc));
        c->done(c->arg, -EIO);
        return;
    }
    if (m->kind == QMP_ERROR)
        log_info("%s: %s was gone from QEMU already", g->name, c->dev);
    /* QEMU unplugs a USB device at once; DEVICE_DELETED only confirms it. */
    dev_remove(g, c->dev);
    c->done(c->arg, 0);
}

static int q_detach(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                    void *arg)
{
    struct guest *g = guest_by_domid((struct qmp_hv *)hv, domid);
    const struct qdev *found = NULL;
    struct cmd *c;

    if (!g || !running(g))
        return -ENODEV;
    /* By the port first: that is what the worker knows for sure. */
    for (size_t k = 0; k < g->n_devs && !found; k++)
        if (g->devs[k].ctrl == usb->ctrl && g->devs[k].port == usb->port)
            found = &g->devs[k];
    c = cmd_new(done, arg);
    if (!c)
        return -ENOMEM;
    if (found)
        snprintf(c->dev, sizeof(c->dev), "%s", found->id);
    else if (usb->busnum && usb->devnum)
        snprintf(c->dev, sizeof(c->dev), "xenusb-%u-%u", usb->busnum, usb->devnum);
    else {
        free(c);
        return -ENOENT;
    }
    c->fn = detach_answer;
    c->ctrl = usb->ctrl;
    c->port = usb->port;
    send_cmd(g, c, "device_del", json_pack("{s:s}", "id", c->dev));
    return 0;
}

static void q_free(struct hv *hv)
{
    struct qmp_hv *q = (struct qmp_hv *)hv;

    for (size_t i = 0; i < q->n_guests; i++) {
        struct guest *g = &q->guests[i];

        close_conn(g);
        ev_timer_stop(q->loop, &g->reconnect);
        cancel_cmds(g, -ECANCELED);
        free(g->devs);
        free(g->old_devs);
        free(g->name);
        free(g->path);
    }
    free(q->guests);
    free(q);
}

bool hv_qmp_follows(const struct hv *hv, const char *name, const char *path)
{
    const struct qmp_hv *q = (const struct qmp_hv *)hv;

    for (size_t i = 0; i < q->n_guests; i++)
        if (strcmp(q->guests[i].name, name) == 0 && strcmp(q->guests[i].path, path) == 0)
            return true;
    return false;
}

static const struct hv_ops qmp_ops = {
    .name = "qmp",
    .domain_lookup = q_lookup,
    .list_controllers = q_list,
    .add_controller = q_add_controller,
    .attach = q_attach,
    .detach = q_detach,
    .free = q_free,
};

static int guest_init(struct qmp_hv *q, struct guest *g, const char *name, const char *path)
{
    const char *base = strrchr(path, '/');

    g->q = q;
    g->fd = -1;
    g->domid = QMP_DOMID_BASE + (int)(g - q->guests);
    g->backoff = BACKOFF_MIN;
    qmp_reader_init(&g->reader, QMP_MAX_LINE);
    ev_io_init(&g->rio, read_cb, -1, EV_READ);
    ev_io_init(&g->wio, write_cb, -1, EV_WRITE);
    ev_timer_init(&g->reconnect, reconnect_cb, 0., 0.);
    ev_timer_init(&g->reply_timer, reply_timeout_cb, REPLY_TIMEOUT, 0.);
    ev_timer_init(&g->drop_timer, drop_cb, 0., 0.);
    ev_timer_init(&g->reset_timer, reset_cb, 0., 0.);
    g->rio.data = g->wio.data = g->reconnect.data = g->reply_timer.data = g->drop_timer.data = g;
    g->reset_timer.data = g;
    g->cmds_tail = &g->cmds;
    g->name = strdup(name);
    g->path = strdup(path);
    if (!g->name || !g->path) {
        log_error("out of memory");
        return -ENOMEM;
    }
    if (strncmp(base ? base + 1 : path, "qmp-libxl-", 10) == 0) {
        log_error("%s: qmp-socket %s is libxl's own socket, which must stay free for libxl: "
                  "give QEMU a socket of its own (device_model_args)", name, path);
        return -EINVAL;
    }
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        log_error("%s: qmp-socket %s: the path is too long for a socket", name, path);
        return -ENAMETOOLONG;
    }
    return 0;
}

struct hv *hv_qmp_new(struct ev_loop *loop, const struct policy *policy)
{
    struct qmp_hv *q = calloc(1, sizeof(*q));
    unsigned n = 0;

    if (!q) {
        log_error("out of memory");
        return NULL;
    }
    q->hv.ops = &qmp_ops;
    q->loop = loop;
    for (unsigned i = 0; i < policy->n_domains; i++)
        n += policy->domains[i].qmp_socket != NULL;
    q->guests = calloc(n ? n : 1, sizeof(*q->guests));
    if (!q->guests) {
        log_error("out of memory");
        free(q);
        return NULL;
    }
    for (unsigned i = 0; i < policy->n_domains; i++) {
        const struct policy_domain *d = &policy->domains[i];

        if (!d->qmp_socket)
            continue;
        if (guest_init(q, &q->guests[q->n_guests++], d->name, d->qmp_socket) < 0) {
            q_free(&q->hv);
            return NULL;
        }
    }
    /* The first connections are made from the loop, once the router listens. */
    for (size_t i = 0; i < q->n_guests; i++)
        ev_timer_start(loop, &q->guests[i].reconnect);
    return &q->hv;
}

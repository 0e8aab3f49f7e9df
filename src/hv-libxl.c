/*
 * The libxl backend: attach, detach and controllers through libxenlight,
 * guest start and stop from xenstore watches.
 *
 * One libxl_ctx lives in the daemon's libev loop: libxl's fds and timeouts
 * are registered with libxl_osevent_register_hooks, every USB operation is
 * asynchronous (libxl_asyncop_how with a callback), and libev owns SIGCHLD:
 * an ev_child watcher hands each reaped child to libxl_childproc_reaped.
 * xenstore's @introduceDomain and @releaseDomain watches, and libxl's
 * DOMAIN_SHUTDOWN and DOMAIN_DEATH events for the guests it reported, make
 * the backend rescan the domains and report guests that appeared or went
 * away.  A guest is known by name: its domid changes at every reboot.
 *
 * The ports of a guest's controllers are read from xenstore
 * (/libxl/<domid>/device/vusb/<ctrl>/port/<n>, or for a PV USB controller
 * the same keys under the backend path its "backend" names), not from
 * libxl_device_usbdev_list, which silently drops a controller whose device
 * has left sysfs.
 *
 * This file is built alone into the module auto-usb-attach-libxl.so, which
 * the daemon opens only when it uses libxl (hv-libxl-load.c): the module
 * exports hv_libxl_new and nothing else, and takes the logging and strmap
 * functions from the daemon, which exports them for it (hv-libxl.dynamic).
 */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <libxl.h>
#include <libxl_utils.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "hv.h"
#include "link.h"
#include "log.h"
#include "strmap.h"

struct libxl_hv;

/* An fd or a timeout libxl asked us to watch. */
struct osev {
    struct libxl_hv *lx;
    void *for_libxl;
    ev_io io;
    ev_timer timer;
    struct link link;           /* in lx->osevs */
};

/* One asynchronous libxl operation in flight. */
struct lx_op {
    struct libxl_hv *lx;
    hv_done_fn done;
    void *arg;
    int *id_out;
    libxl_device_usbctrl ctrl;
    libxl_device_usbdev usbdev;
    bool is_ctrl;
    bool is_usbdev;
    struct link link;           /* in lx->ops */
};

struct logger {
    xentoollog_logger base;
    /*
     * What the errors libxl logged since we last called into it say, as an
     * errno (hv_error_from_message), or 0: a device model's answer (QMP's
     * error description), which libxl's return code does not carry.
     */
    int told;
};

/* A guest the backend reported as running. */
struct guest {
    int domid;
    libxl_evgen_domain_death *death;
};

struct libxl_hv {
    struct hv hv;
    struct ev_loop *loop;
    libxl_ctx *ctx;
    struct logger logger;
    struct xs_handle *xs;
    ev_io xs_io;
    ev_child child;
    ev_timer rescan_timer;
    ev_timer xs_check;          /* is xenstored still there? */
    libxl_osevent_hooks osevent_hooks;
    libxl_childproc_hooks child_hooks;
    libxl_event_hooks event_hooks;
    struct strmap *running;     /* guest name -> struct guest, as reported */
    struct link *osevs;
    struct link *ops;
    bool in_libxl;
};

static int rc_to_errno(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case ERROR_NOMEM:
        return -ENOMEM;
    case ERROR_INVAL:
        return -EINVAL;
    case ERROR_DOMAIN_NOTFOUND:
        return -ESRCH;
    case ERROR_NOTFOUND:
        return -ENOENT;
    case ERROR_TIMEDOUT:
        return -ETIMEDOUT;
    case ERROR_ABORTED:
        return -ECANCELED;
    case ERROR_DEVICE_EXISTS:
        return -EEXIST;
    default:
        return -EIO;
    }
}

/* ---- libxl's messages go to our log ---- */

static void logger_vmessage(xentoollog_logger *logger, xentoollog_level level, int errnoval,
                            const char *context, const char *format, va_list al)
{
    enum log_level ours = level >= XTL_ERROR  ? LOG_LEVEL_ERROR
                          : level == XTL_WARN ? LOG_LEVEL_WARNING
                          : level >= XTL_INFO ? LOG_LEVEL_INFO
                                              : LOG_LEVEL_DEBUG;
    struct logger *lg = (struct logger *)logger;
    char msg[1024];

    if (ours > LOG_LEVEL_ERROR && ours > log_get_level())
        return;
    vsnprintf(msg, sizeof(msg), format, al);
    if (ours == LOG_LEVEL_ERROR && hv_error_from_message(msg, 0))
        lg->told = hv_error_from_message(msg, 0);
    if (ours > log_get_level())
        return;
    if (errnoval >= 0)
        log_msg(ours, "%s: %s: %s", context ? context : "libxl", msg, strerror(errnoval));
    else
        log_msg(ours, "%s: %s", context ? context : "libxl", msg);
}

static void logger_progress(xentoollog_logger *logger, const char *context,
                            const char *doing_what, int percent, unsigned long done,
                            unsigned long total)
{
}

static void logger_destroy(xentoollog_logger *logger)
{
}

/* ---- libxl's fds and timeouts in the libev loop ---- */

/* A new registration, on the list that lx_free empties. */
static struct osev *osev_new(struct libxl_hv *lx, void *for_libxl)
{
    struct osev *o = calloc(1, sizeof(*o));

    if (!o)
        return NULL;
    o->lx = lx;
    o->for_libxl = for_libxl;
    link_push(&lx->osevs, &o->link);
    return o;
}

static void osev_free(struct osev *o)
{
    ev_io_stop(o->lx->loop, &o->io);
    ev_timer_stop(o->lx->loop, &o->timer);
    link_remove(&o->link);
    free(o);
}

static int poll_to_ev(short events)
{
    return ((events & (POLLIN | POLLPRI)) ? EV_READ : 0) | ((events & POLLOUT) ? EV_WRITE : 0);
}

static void fd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct osev *o = w->data;
    short events = 0, rev = 0;

    if (w->events & EV_READ)
        events |= POLLIN;
    if (w->events & EV_WRITE)
        events |= POLLOUT;
    if (revents & EV_READ)
        rev |= POLLIN;
    if (revents & EV_WRITE)
        rev |= POLLOUT;
    o->lx->logger.told = 0;
    libxl_osevent_occurred_fd(o->lx->ctx, o->for_libxl, w->fd, events, rev);
}

static int fd_register(void *user, int fd, void **reg, short events, void *for_libxl)
{
    struct libxl_hv *lx = user;
    struct osev *o = osev_new(lx, for_libxl);

    if (!o)
        return ERROR_OSEVENT_REG_FAIL;
    ev_io_init(&o->io, fd_cb, fd, poll_to_ev(events));
    o->io.data = o;
    if (poll_to_ev(events))
        ev_io_start(lx->loop, &o->io);
    *reg = o;
    return 0;
}

static int fd_modify(void *user, int fd, void **reg, short events)
{
    struct osev *o = *reg;

    ev_io_stop(o->lx->loop, &o->io);
    ev_io_set(&o->io, fd, poll_to_ev(events));
    if (poll_to_ev(events))
        ev_io_start(o->lx->loop, &o->io);
    return 0;
}

static void fd_deregister(void *user, int fd, void *reg)
{
    osev_free(reg);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct osev *o = w->data;
    struct libxl_hv *lx = o->lx;
    void *for_libxl = o->for_libxl;

    /* The timeout counts as deregistered when libxl hears of it. */
    osev_free(o);
    lx->logger.told = 0;
    libxl_osevent_occurred_timeout(lx->ctx, for_libxl);
}

static double seconds_until(struct timeval abs)
{
    struct timeval now;
    double d;

    gettimeofday(&now, NULL);
    d = (double)(abs.tv_sec - now.tv_sec) + (double)(abs.tv_usec - now.tv_usec) / 1e6;
    return d > 0 ? d : 0.;
}

static int timeout_register(void *user, void **reg, struct timeval abs, void *for_libxl)
{
    struct libxl_hv *lx = user;
    struct osev *o = osev_new(lx, for_libxl);

    if (!o)
        return ERROR_OSEVENT_REG_FAIL;
    ev_timer_init(&o->timer, timeout_cb, seconds_until(abs), 0.);
    o->timer.data = o;
    ev_timer_start(lx->loop, &o->timer);
    *reg = o;
    return 0;
}

static int timeout_modify(void *user, void **reg, struct timeval abs)
{
    struct osev *o = *reg;

    /* Only ever "as soon as possible". */
    ev_timer_stop(o->lx->loop, &o->timer);
    ev_timer_set(&o->timer, 0., 0.);
    ev_timer_start(o->lx->loop, &o->timer);
    return 0;
}

static void timeout_deregister(void *user, void *reg)
{
    osev_free(reg);
}

/* libev reaps every child; libxl is told of the ones that are its own. */
static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct libxl_hv *lx = w->data;

    libxl_childproc_reaped(lx->ctx, w->rpid, w->rstatus);
}

/* ---- guests coming and going ---- */

/*
 * The xenstore paths watched for changes to a guest's USB controllers made
 * by someone else (xl usbdev-attach, usbctrl-attach): libxl's record of its
 * controllers, and the PV USB backend's directory, where libxl writes a qusb
 * controller's ports.  The token names the domid.
 */
static void vusb_paths(int domid, char libxl_path[64], char be_path[64], char token[32])
{
    snprintf(libxl_path, 64, "/libxl/%d/device/vusb", domid);
    snprintf(be_path, 64, "/local/domain/0/backend/qusb/%d", domid);
    snprintf(token, 32, "vusb:%d", domid);
}

static void watch_vusb(struct libxl_hv *lx, int domid, bool on)
{
    char lpath[64], bpath[64], token[32];

    vusb_paths(domid, lpath, bpath, token);
    if (on) {
        if (!xs_watch(lx->xs, lpath, token) || !xs_watch(lx->xs, bpath, token))
            log_warnx("domain %d: cannot watch its USB controllers in xenstore: devices "
                      "given by hand are seen only when the daemon next looks", domid);
    } else {
        xs_unwatch(lx->xs, lpath, token);
        xs_unwatch(lx->xs, bpath, token);
    }
}

static void guest_free(struct libxl_hv *lx, struct guest *g)
{
    if (g && g->death)
        libxl_evdisable_domain_death(lx->ctx, g->death);
    if (g && lx->xs)
        watch_vusb(lx, g->domid, false);
    free(g);
}

static void report_stopped(struct libxl_hv *lx, const char *name)
{
    char copy[128];
    struct guest *g;

    /* name may be the map's own key, which the removal frees. */
    snprintf(copy, sizeof(copy), "%s", name);
    g = strmap_remove(lx->running, copy);
    if (!g)
        return;
    if (lx->hv.events.domain_stopped)
        lx->hv.events.domain_stopped(lx->hv.events.arg, copy, g->domid);
    guest_free(lx, g);
}

static void report_started(struct libxl_hv *lx, const char *name, int domid)
{
    struct guest *g = strmap_get(lx->running, name);

    if (g && g->domid == domid)
        return;
    if (g)
        report_stopped(lx, name);
    g = calloc(1, sizeof(*g));
    if (!g || strmap_put(lx->running, name, g, NULL) < 0) {
        free(g);
        log_error("out of memory");
        return;
    }
    g->domid = domid;
    watch_vusb(lx, domid, true);
    /* libxl says when it shuts down or dies, beside xenstore's watches. */
    if (libxl_evenable_domain_death(lx->ctx, (uint32_t)domid, 0, &g->death) != 0) {
        log_warnx("%s: cannot follow the guest's shutdown through libxl", name);
        g->death = NULL;
    }
    if (lx->hv.events.domain_started)
        lx->hv.events.domain_started(lx->hv.events.arg, name, domid);
}

/* The domid under which the guest called name was reported as running, or -1. */
static int reported_domid(struct libxl_hv *lx, const char *name)
{
    const struct guest *g = strmap_get(lx->running, name);

    return g ? g->domid : -1;
}

/*
 * Looks at every domain now and reports what changed.  A guest that has no
 * name in xenstore yet (it is being built) is looked at again shortly; so is
 * a new domain that is still paused: xl builds a guest paused (its device
 * model, its restored usbctrl) and unpauses it when it is ready, and nothing
 * in xenstore says when.  A guest seen running and paused later (xl pause)
 * stays reported: its device model still serves.
 */
static void rescan(struct libxl_hv *lx)
{
    struct strmap *now = strmap_new();
    libxl_dominfo *list;
    bool unnamed = false, paused = false, listed;
    size_t pos = 0;
    const char *key;
    void *value;
    int n = 0;

    if (!now) {
        log_error("out of memory");
        return;
    }
    list = libxl_list_domain(lx->ctx, &n);
    for (int i = 0; list && i < n; i++) {
        char *name;

        if (list[i].domid == 0 || list[i].dying || list[i].shutdown)
            continue;
        name = libxl_domid_to_name(lx->ctx, list[i].domid);
        if (!name || !*name) {
            unnamed = true;
            free(name);
            continue;
        }
        if (list[i].paused && reported_domid(lx, name) != (int)list[i].domid) {
            log_debug("%s: domain %u is paused: waiting until it runs", name,
                      list[i].domid);
            paused = true;
            free(name);
            continue;
        }
        if (strmap_put(now, name, (void *)(intptr_t)(list[i].domid + 1), NULL) < 0)
            log_error("out of memory");
        free(name);
    }
    listed = list != NULL;
    if (listed)
        libxl_dominfo_list_free(list, n);
    else
        log_warnx("cannot list the domains");

    /* Gone first (a reboot's old domid), then started; nothing if listing failed. */
    for (bool changed = listed; changed;) {
        changed = false;
        pos = 0;
        while (strmap_next(lx->running, &pos, &key, &value) == 0) {
            const struct guest *g = value;

            if (strmap_get(now, key) == (void *)(intptr_t)(g->domid + 1))
                continue;
            report_stopped(lx, key);
            changed = true;     /* the map changed under the iteration */
            break;
        }
    }
    pos = 0;
    while (listed && strmap_next(now, &pos, &key, &value) == 0)
        report_started(lx, key, (int)((intptr_t)value - 1));
    strmap_free(now, NULL);
    if ((unnamed || paused) && !ev_is_active(&lx->rescan_timer)) {
        ev_timer_set(&lx->rescan_timer, 0.5, 0.);
        ev_timer_start(lx->loop, &lx->rescan_timer);
    }
}

static void rescan_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    rescan(w->data);
}

/* Tells the owner that the controllers of the guest running as domid changed. */
static void report_controllers(struct libxl_hv *lx, int domid)
{
    size_t pos = 0;
    const char *key;
    void *value;

    while (strmap_next(lx->running, &pos, &key, &value) == 0) {
        if (((const struct guest *)value)->domid != domid)
            continue;
        if (lx->hv.events.controllers_changed)
            lx->hv.events.controllers_changed(lx->hv.events.arg, key, domid);
        return;
    }
}

static void xs_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct libxl_hv *lx = w->data;
    char **ev;
    bool changed = false;
    int vusb[8];
    size_t n_vusb = 0;
    bool all_vusb = false;

    /*
     * Drain the watch events: one rescan answers all the domain events, one
     * report per guest all of its controllers' (a burst of xenstore writes
     * by xl is one change).
     */
    while ((ev = xs_check_watch(lx->xs))) {
        int domid;

        if (sscanf(ev[XS_WATCH_TOKEN], "vusb:%d", &domid) == 1) {
            bool seen = false;

            for (size_t i = 0; i < n_vusb; i++)
                seen |= vusb[i] == domid;
            if (!seen && n_vusb < sizeof(vusb) / sizeof(vusb[0]))
                vusb[n_vusb++] = domid;
            else if (!seen)
                all_vusb = true;    /* more guests than kept: tell for each */
        } else {
            changed = true;
        }
        free(ev);
    }
    if (changed)
        rescan(lx);
    if (all_vusb) {
        size_t pos = 0;
        const char *key;
        void *value;

        while (strmap_next(lx->running, &pos, &key, &value) == 0)
            if (lx->hv.events.controllers_changed)
                lx->hv.events.controllers_changed(lx->hv.events.arg, key,
                                                  ((const struct guest *)value)->domid);
        return;
    }
    for (size_t i = 0; i < n_vusb; i++)
        report_controllers(lx, vusb[i]);
}

/* How often the xenstore connection is checked while nothing else uses it. */
#define XS_CHECK_INTERVAL 5.

/*
 * When xenstored goes away, libxenstore closes the connection without a
 * word on the watch fd: the watches go silent and every request, ours and
 * libxl's, fails with EBADF.  libxl cannot be pointed at a new xenstored,
 * so the daemon exits with an error; the service manager starts it again,
 * and the new daemon reconciles with the new xenstored (and its state file).
 */
static void xs_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct libxl_hv *lx = w->data;
    unsigned len;
    char *v = xs_read(lx->xs, XBT_NULL, "/local/domain/0/domid", &len);

    if (v) {
        free(v);
        return;
    }
    if (errno == EBADF || errno == ECONNRESET || errno == EPIPE || errno == ENOTCONN ||
        errno == EIO)
        fatal("lost the connection to xenstored: exiting, to be started again");
}

/* ---- hv_ops ---- */

static void event_occurs(void *user, libxl_event *event)
{
    struct libxl_hv *lx = user;

    /* libxl may be inside a call of ours: look at the domains from the loop. */
    if ((event->type == LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN ||
         event->type == LIBXL_EVENT_TYPE_DOMAIN_DEATH) &&
        !ev_is_active(&lx->rescan_timer)) {
        ev_timer_set(&lx->rescan_timer, 0., 0.);
        ev_timer_start(lx->loop, &lx->rescan_timer);
    }
    libxl_event_free(lx->ctx, event);
}

static void event_disaster(void *user, libxl_event_type type, const char *msg, int errnoval)
{
    log_error("libxl cannot deliver its events any more (%s%s%s): restart the daemon",
              msg, errnoval > 0 ? ": " : "", errnoval > 0 ? strerror(errnoval) : "");
}

static int lx_domain_lookup(struct hv *hv, const char *name)
{
    struct libxl_hv *lx = (struct libxl_hv *)hv;
    const struct guest *g = strmap_get(lx->running, name);

    return g ? g->domid : -ENOENT;
}

static int lx_list_domains(struct hv *hv, struct hv_domain **out, size_t *n)
{
    struct libxl_hv *lx = (struct libxl_hv *)hv;
    struct hv_domain *list;
    size_t pos = 0, i = 0, count = 0;
    const char *key;
    void *value;

    while (strmap_next(lx->running, &pos, &key, &value) == 0)
        count++;
    list = calloc(count + 1, sizeof(*list));
    *out = list;
    *n = 0;
    if (!list)
        return -ENOMEM;
    pos = 0;
    while (i < count && strmap_next(lx->running, &pos, &key, &value) == 0) {
        list[i].domid = ((const struct guest *)value)->domid;
        snprintf(list[i].name, sizeof(list[i].name), "%s", key);
        i++;
    }
    *n = i;
    return 0;
}

static unsigned read_uint(struct libxl_hv *lx, const char *path, unsigned dflt)
{
    unsigned len;
    char *s = xs_read(lx->xs, XBT_NULL, path, &len);
    unsigned long v;
    char *end;

    if (!s)
        return dflt;
    v = strtoul(s, &end, 10);
    free(s);
    return end != s ? (unsigned)v : dflt;
}

/*
 * Where the ports of controller ctrl of guest dom are: libxl's own record
 * (/libxl/<dom>/device/vusb/<ctrl>) for a device-model controller, the
 * backend's directory for a PV USB one (libxl writes a qusb controller's
 * usb-ver, num-ports and port/<n> there).  Sets *type; false when the
 * record names no backend.
 */
static bool vusb_base(struct libxl_hv *lx, const char *dom, const char *ctrl, char *base,
                      size_t size, enum controller_type *type)
{
    char path[160];
    unsigned len;
    char *t, *be;

    snprintf(base, size, "/libxl/%s/device/vusb/%s", dom, ctrl);
    snprintf(path, sizeof(path), "%s/type", base);
    t = xs_read(lx->xs, XBT_NULL, path, &len);
    *type = !t || strcmp(t, "devicemodel") == 0 ? CONTROLLER_DEVICEMODEL : CONTROLLER_QUSB;
    free(t);
    if (*type == CONTROLLER_DEVICEMODEL)
        return true;
    snprintf(path, sizeof(path), "%s/backend", base);
    be = xs_read(lx->xs, XBT_NULL, path, &len);
    if (!be || !*be || strlen(be) >= size) {
        free(be);
        return false;
    }
    snprintf(base, size, "%s", be);
    free(be);
    return true;
}

static int lx_guest_type(struct hv *hv, int domid)
{
    struct libxl_hv *lx = (struct libxl_hv *)hv;
    char path[64];
    unsigned len;
    char *t;
    int type;

    /* libxl's own record: libxl_domain_info reports a PVH guest as HVM. */
    snprintf(path, sizeof(path), "/libxl/%d/type", domid);
    t = xs_read(lx->xs, XBT_NULL, path, &len);
    if (!t)
        return -ENOENT;
    type = strcmp(t, "pv") == 0 ? HV_GUEST_PV : strcmp(t, "pvh") == 0 ? HV_GUEST_PVH
                                                                       : HV_GUEST_HVM;
    free(t);
    if (type == HV_GUEST_HVM && libxl_get_stubdom_id(lx->ctx, domid) > 0)
        type |= HV_GUEST_STUBDOM;
    return type;
}

static int lx_list_controllers(struct hv *hv, int domid, struct hv_controller **out,
                               size_t *n_out)
{
    struct libxl_hv *lx = (struct libxl_hv *)hv;
    char path[256], base[192], dom[16], **ids;
    unsigned n = 0;
    struct hv_controller *list;

    *out = NULL;
    *n_out = 0;
    snprintf(path, sizeof(path), "/libxl/%d/device/vusb", domid);
    ids = xs_directory(lx->xs, XBT_NULL, path, &n);
    if (!ids)
        return 0;       /* no controller yet */
    list = calloc(n ? n : 1, sizeof(*list));
    if (!list) {
        free(ids);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        struct hv_controller *c = &list[*n_out];
        char *end;
        long id = strtol(ids[i], &end, 10);

        if (*end || id < 0)
            continue;
        snprintf(dom, sizeof(dom), "%d", domid);
        if (!vusb_base(lx, dom, ids[i], base, sizeof(base), &c->type))
            continue;
        c->id = (int)id;
        snprintf(path, sizeof(path), "%s/usb-ver", base);
        c->version = (int)read_uint(lx, path, 2);
        snprintf(path, sizeof(path), "%s/num-ports", base);
        c->n_ports = (int)read_uint(lx, path, 0);
        if (c->n_ports > AUA_CTRL_PORTS_MAX)
            c->n_ports = AUA_CTRL_PORTS_MAX;
        for (int p = 0; p < c->n_ports; p++) {
            unsigned len;
            char *busid;

            snprintf(path, sizeof(path), "%s/port/%d", base, p + 1);
            busid = xs_read(lx->xs, XBT_NULL, path, &len);
            if (busid && *busid) {
                c->ports[p].used = true;
                snprintf(c->ports[p].busid, sizeof(c->ports[p].busid), "%s", busid);
            }
            free(busid);
        }
        (*n_out)++;
    }
    free(ids);
    *out = list;
    return 0;
}

static struct lx_op *op_new(struct libxl_hv *lx, hv_done_fn done, void *arg)
{
    struct lx_op *op = calloc(1, sizeof(*op));

    if (!op)
        return NULL;
    op->lx = lx;
    op->done = done;
    op->arg = arg;
    link_push(&lx->ops, &op->link);
    return op;
}

static void op_free(struct lx_op *op)
{
    if (op->is_ctrl)
        libxl_device_usbctrl_dispose(&op->ctrl);
    if (op->is_usbdev)
        libxl_device_usbdev_dispose(&op->usbdev);
    free(op);
}

/*
 * libxl may answer from inside the call that started the operation; the
 * domain workers expect answers from the loop, so such an answer waits for
 * a zero timer.
 */
struct deferred {
    ev_timer timer;
    struct lx_op *op;
    int err;
};

/* err: 0 or a negative errno. */
static void finish(struct lx_op *op, int err)
{
    link_remove(&op->link);
    if (op->is_ctrl && op->id_out && err == 0)
        *op->id_out = op->ctrl.devid;
    op->done(op->arg, err);
    op_free(op);
}

static void deferred_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct deferred *d = w->data;

    finish(d->op, d->err);
    free(d);
}

/*
 * libxl's answer as an errno: a device model's refusal says more in words
 * (logged just before) than in libxl's code, which is the same for all.
 */
static int answer_errno(struct libxl_hv *lx, int rc)
{
    int err = rc_to_errno(rc);

    if (rc && lx->logger.told)
        err = lx->logger.told;
    lx->logger.told = 0;
    return err;
}

static void ao_done(libxl_ctx *ctx, int rc, void *for_callback)
{
    struct lx_op *op = for_callback;
    struct libxl_hv *lx = op->lx;
    int err = answer_errno(lx, rc);
    struct deferred *d;

    /* A failure may be xenstored gone: find out now, not at the next check. */
    if (rc && ev_is_active(&lx->xs_check))
        ev_feed_event(lx->loop, &lx->xs_check, EV_TIMER);
    if (!lx->in_libxl) {
        finish(op, err);
        return;
    }
    d = calloc(1, sizeof(*d));
    if (!d) {
        finish(op, err);
        return;
    }
    d->op = op;
    d->err = err;
    ev_timer_init(&d->timer, deferred_cb, 0., 0.);
    d->timer.data = d;
    ev_timer_start(lx->loop, &d->timer);
}

static int lx_add_controller(struct hv *hv, int domid, const struct controller_spec *spec,
                             int *id, hv_done_fn done, void *arg)
{
    struct libxl_hv *lx = (struct libxl_hv *)hv;
    struct lx_op *op = op_new(lx, done, arg);
    libxl_asyncop_how how = { .callback = ao_done };
    int rc;

    if (!op)
        return -ENOMEM;
    op->is_ctrl = true;
    op->id_out = id;
    libxl_device_usbctrl_init(&op->ctrl);
    op->ctrl.type = spec->type == CONTROLLER_QUSB ? LIBXL_USBCTRL_TYPE_QUSB
                                                  : LIBXL_USBCTRL_TYPE_DEVICEMODEL;
    op->ctrl.version = spec->version;
    op->ctrl.ports = spec->ports;
    op->ctrl.devid = -1;
    how.u.for_callback = op;
    lx->in_libxl = true;
    lx->logger.told = 0;
    rc = libxl_device_usbctrl_add(lx->ctx, (uint32_t)domid, &op->ctrl, &how);
    lx->in_libxl = false;
    if (rc) {
        link_remove(&op->link);
        op_free(op);
        return answer_errno(lx, rc);
    }
    return 0;
}

/* Is the device at busid attached to any guest now (someone else's doing)? */
static int attached_elsewhere(struct libxl_hv *lx, const char *busid, int domid)
{
    unsigned n_dom = 0;
    char **doms = xs_directory(lx->xs, XBT_NULL, "/libxl", &n_dom);
    int found = -1;

    for (unsigned d = 0; doms && d < n_dom && found < 0; d++) {
        char path[128], **ctrls;
        unsigned n_ctrl = 0;

        snprintf(path, sizeof(path), "/libxl/%s/device/vusb", doms[d]);
        ctrls = xs_directory(lx->xs, XBT_NULL, path, &n_ctrl);
        for (unsigned c = 0; ctrls && c < n_ctrl && found < 0; c++) {
            unsigned n_port = 0;
            char **ports, base[96];
            enum controller_type type;

            if (!vusb_base(lx, doms[d], ctrls[c], base, sizeof(base), &type))
                continue;
            snprintf(path, sizeof(path), "%s/port", base);
            ports = xs_directory(lx->xs, XBT_NULL, path, &n_port);
            for (unsigned p = 0; ports && p < n_port && found < 0; p++) {
                unsigned len;
                char ppath[160], *v;

                snprintf(ppath, sizeof(ppath), "%s/%s", path, ports[p]);
                v = xs_read(lx->xs, XBT_NULL, ppath, &len);
                if (v && strcmp(v, busid) == 0)
                    found = atoi(doms[d]);
                free(v);
            }
            free(ports);
        }
        free(ctrls);
    }
    free(doms);
    return found >= 0 && found != domid ? found : -1;
}

static int start_usbdev(struct libxl_hv *lx, int domid, const struct hv_usb *usb, bool add,
                        hv_done_fn done, void *arg)
{
    struct lx_op *op;
    libxl_asyncop_how how = { .callback = ao_done };
    int rc;

    if (add && usb->busid) {
        int other = attached_elsewhere(lx, usb->busid, domid);

        if (other >= 0) {
            log_warnx("%s is attached to domain %d already, by someone else: not taken away",
                      usb->busid, other);
            return -EBUSY;
        }
    }
    op = op_new(lx, done, arg);
    if (!op)
        return -ENOMEM;
    op->is_usbdev = true;
    libxl_device_usbdev_init_type(&op->usbdev, LIBXL_USBDEV_TYPE_HOSTDEV);
    op->usbdev.ctrl = usb->ctrl;
    op->usbdev.port = usb->port;
    op->usbdev.u.hostdev.hostbus = (uint8_t)usb->busnum;
    op->usbdev.u.hostdev.hostaddr = (uint8_t)usb->devnum;
    how.u.for_callback = op;
    lx->in_libxl = true;
    lx->logger.told = 0;
    if (add)
        rc = libxl_device_usbdev_add(lx->ctx, (uint32_t)domid, &op->usbdev, &how);
    else
        rc = libxl_device_usbdev_remove(lx->ctx, (uint32_t)domid, &op->usbdev, &how);
    lx->in_libxl = false;
    if (rc) {
        link_remove(&op->link);
        op_free(op);
        return answer_errno(lx, rc);
    }
    return 0;
}

static int lx_attach(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                     void *arg)
{
    return start_usbdev((struct libxl_hv *)hv, domid, usb, true, done, arg);
}

/*
 * A detach needs the host bus and address, which a device that has left
 * sysfs can no longer tell: libxl's saved guest configuration has them (the
 * last device added at each controller:port).  It is read without libxl's
 * lock: a synchronous libxl call could wait for that lock in a child process
 * that only our loop would reap.
 */
static void fill_from_config(struct libxl_hv *lx, int domid, struct hv_usb *usb)
{
    libxl_domain_config cfg;
    uint8_t *data = NULL;
    int len = 0;

    if (libxl_userdata_retrieve(lx->ctx, (uint32_t)domid, "libxl-json", &data, &len) != 0 ||
        !data || len <= 0) {
        free(data);
        return;
    }
    /* The file ends in a NUL byte; the parser wants a string. */
    if (data[len - 1] != '\0') {
        uint8_t *copy = realloc(data, (size_t)len + 1);

        if (!copy) {
            free(data);
            return;
        }
        data = copy;
        data[len] = '\0';
    }
    libxl_domain_config_init(&cfg);
    if (libxl_domain_config_from_json(lx->ctx, &cfg, (const char *)data) == 0) {
        for (int i = 0; i < cfg.num_usbdevs; i++) {
            if (cfg.usbdevs[i].ctrl == usb->ctrl && cfg.usbdevs[i].port == usb->port) {
                usb->busnum = cfg.usbdevs[i].u.hostdev.hostbus;
                usb->devnum = cfg.usbdevs[i].u.hostdev.hostaddr;
            }
        }
    }
    libxl_domain_config_dispose(&cfg);
    free(data);
}

static int lx_detach(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                     void *arg)
{
    struct libxl_hv *lx = (struct libxl_hv *)hv;
    struct hv_usb u = *usb;

    if (!u.busnum || !u.devnum)
        fill_from_config(lx, domid, &u);
    return start_usbdev(lx, domid, &u, false, done, arg);
}

static void op_cancelled(void *arg, int err)
{
}

static void abort_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
}

/*
 * libxl asserts that no operation is outstanding when its ctx is freed: a
 * daemon stopped while a device model sat on a device_add dumped core.  So
 * each operation is aborted and the loop runs until libxl has ended them
 * all, ABORT_WAIT seconds at most.  False when some would not end.
 */
#define ABORT_WAIT 3.

static bool abort_ops(struct libxl_hv *lx)
{
    ev_timer wait;

    if (!lx->ops)
        return true;
    /* An operation may end inside libxl_ao_abort: its answer waits for the loop. */
    lx->in_libxl = true;
    for (struct link *l = lx->ops; l; l = l->next) {
        libxl_asyncop_how how = { .callback = ao_done,
                                  .u.for_callback = LINK_ENTRY(l, struct lx_op, link) };

        libxl_ao_abort(lx->ctx, &how);
    }
    lx->in_libxl = false;
    ev_timer_init(&wait, abort_wait_cb, ABORT_WAIT, 0.);
    ev_timer_start(lx->loop, &wait);
    while (lx->ops && ev_is_active(&wait))
        ev_run(lx->loop, EVRUN_ONCE);
    ev_timer_stop(lx->loop, &wait);
    if (!lx->ops)
        return true;
    log_warnx("libxl did not end its operations in %.0f s: left as it is", ABORT_WAIT);
    return false;
}

static void lx_free(struct hv *hv)
{
    struct libxl_hv *lx = (struct libxl_hv *)hv;
    bool ended;

    /* What is in flight is answered as cancelled first, and only once. */
    for (struct link *l = lx->ops; l; l = l->next) {
        struct lx_op *op = LINK_ENTRY(l, struct lx_op, link);

        op->done(op->arg, -ECANCELED);
        op->done = op_cancelled;
    }
    if (lx->xs) {
        ev_io_stop(lx->loop, &lx->xs_io);
        xs_close(lx->xs);
        lx->xs = NULL;      /* the guests' watches went with it (guest_free) */
    }
    ev_timer_stop(lx->loop, &lx->rescan_timer);
    ev_timer_stop(lx->loop, &lx->xs_check);
    ended = !lx->ctx || abort_ops(lx);
    ev_child_stop(lx->loop, &lx->child);
    if (lx->running) {
        size_t pos = 0;
        const char *key;
        void *value;

        while (strmap_next(lx->running, &pos, &key, &value) == 0)
            guest_free(lx, value);
        strmap_free(lx->running, NULL);
    }
    /* libxl still points at what it did not end: then it all stays. */
    if (!ended)
        return;
    if (lx->ctx)
        libxl_ctx_free(lx->ctx);
    /* libxl deregisters its fds and timeouts as its ctx goes; free any left. */
    while (lx->osevs)
        osev_free(LINK_ENTRY(lx->osevs, struct osev, link));
    free(lx);
}

static const struct hv_ops libxl_ops = {
    .name = "libxl",
    .domain_lookup = lx_domain_lookup,
    .list_domains = lx_list_domains,
    .guest_type = lx_guest_type,
    .list_controllers = lx_list_controllers,
    .add_controller = lx_add_controller,
    .attach = lx_attach,
    .detach = lx_detach,
    .free = lx_free,
};

__attribute__((visibility("default")))
struct hv *hv_libxl_new(struct ev_loop *loop, const char *version)
{
    struct libxl_hv *lx;

    if (strcmp(version, PACKAGE_VERSION) != 0) {
        log_error("the libxl module is of version %s, the daemon of %s: install them "
                  "together", PACKAGE_VERSION, version);
        return NULL;
    }
    lx = calloc(1, sizeof(*lx));
    if (!lx) {
        log_error("out of memory");
        return NULL;
    }
    lx->hv.ops = &libxl_ops;
    lx->loop = loop;
    lx->logger.base.vmessage = logger_vmessage;
    lx->logger.base.progress = logger_progress;
    lx->logger.base.destroy = logger_destroy;
    lx->running = strmap_new();
    ev_timer_init(&lx->rescan_timer, rescan_cb, 0., 0.);
    lx->rescan_timer.data = lx;
    ev_timer_init(&lx->xs_check, xs_check_cb, XS_CHECK_INTERVAL, XS_CHECK_INTERVAL);
    lx->xs_check.data = lx;
    if (!lx->running) {
        log_error("out of memory");
        goto fail;
    }
    if (libxl_ctx_alloc(&lx->ctx, LIBXL_VERSION, 0, &lx->logger.base) != 0) {
        log_error("cannot open libxl: is this a Xen dom0, and are the Xen services "
                  "(xenstored) running?");
        lx->ctx = NULL;
        goto fail;
    }
    lx->osevent_hooks = (libxl_osevent_hooks){
        .fd_register = fd_register,
        .fd_modify = fd_modify,
        .fd_deregister = fd_deregister,
        .timeout_register = timeout_register,
        .timeout_modify = timeout_modify,
        .timeout_deregister = timeout_deregister,
    };
    libxl_osevent_register_hooks(lx->ctx, &lx->osevent_hooks, lx);
    lx->event_hooks.event_occurs_mask = (1ULL << LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN) |
                                        (1ULL << LIBXL_EVENT_TYPE_DOMAIN_DEATH);
    lx->event_hooks.event_occurs = event_occurs;
    lx->event_hooks.disaster = event_disaster;
    libxl_event_register_callbacks(lx->ctx, &lx->event_hooks, lx);
    lx->child_hooks.chldowner = libxl_sigchld_owner_mainloop;
    libxl_childproc_setmode(lx->ctx, &lx->child_hooks, lx);
    ev_child_init(&lx->child, child_cb, 0, 0);
    lx->child.data = lx;
    ev_child_start(loop, &lx->child);

    lx->xs = xs_open(0);
    if (!lx->xs) {
        log_warn("cannot open xenstore");
        goto fail;
    }
    if (!xs_watch(lx->xs, "@introduceDomain", "introduce") ||
        !xs_watch(lx->xs, "@releaseDomain", "release")) {
        log_warn("cannot watch xenstore for guests starting and stopping");
        goto fail;
    }
    ev_io_init(&lx->xs_io, xs_cb, xs_fileno(lx->xs), EV_READ);
    lx->xs_io.data = lx;
    ev_io_start(loop, &lx->xs_io);
    ev_timer_start(loop, &lx->xs_check);
    rescan(lx);
    return &lx->hv;
fail:
    lx_free(&lx->hv);
    return NULL;
}

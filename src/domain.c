/*
 * Domain workers: for one guest, the controllers and ports, the queue of
 * devices waiting for a port, and the one backend operation in flight.
 *
 * Work runs one operation at a time, detaches first (they free ports).  An
 * operation carries the guest's generation: when the guest stops, the
 * generation moves on and a late answer about the old guest is only used to
 * drop references.  Devices are never forgotten: a device is in the queue,
 * attached, or waiting for a retry.
 *
 * An attach that cannot work until something changes (hv_error_permanent:
 * the device model cannot find the device, the guest is gone) is not
 * retried on a timer: every try would take the device from dom0's drivers
 * again.  It is parked, said once, and tried again when the guest restarts,
 * the policy is reloaded, or (for a port that cannot take the device) a
 * controller appears or a port frees.  Unplugging it ends it.
 */
#include "config.h"

#include "domain.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define RETRY_MAX_SECONDS 60.0

struct ctrl {
    int id;
    enum controller_type type;      /* DEVICEMODEL or QUSB */
    int version;
    int n_ports;
    struct dev_entry *slot[AUA_CTRL_PORTS_MAX];     /* our devices, by port - 1 */
    bool foreign[AUA_CTRL_PORTS_MAX];               /* ports we did not fill ourselves */
    char busid[AUA_CTRL_PORTS_MAX][AUA_BUSID_MAX + 1];  /* what a foreign port holds */
};

enum op_type {
    OP_ATTACH,
    OP_DETACH,
    OP_ADD_CONTROLLER,
};

struct op {
    struct domain *dom;
    enum op_type type;
    unsigned gen;
    struct dev_entry *entry;
    int ctrl_id;
    struct controller_spec spec;
};

/* A detach to do: of one of our devices, or (entry NULL) of a stale one. */
struct detach_item {
    struct dev_entry *entry;
    int ctrl;
    int port;
    char busid[AUA_BUSID_MAX + 1];
    unsigned busnum;        /* of a stale one, when the last run recorded it */
    unsigned devnum;
    struct detach_item *next;
};

struct domain {
    struct ev_loop *loop;
    struct hv *hv;
    struct router *router;
    char *name;
    struct controller_spec spec;    /* the policy's */
    struct controller_spec eff;     /* for the running guest: type resolved */
    char refusal[160];              /* why this guest can take no device, or "" */
    int domid;                      /* -1: not running */
    unsigned gen;                   /* bumped when the guest stops */
    struct ctrl *ctrls;
    size_t n_ctrls;
    struct dev_entry *qhead;        /* waiting to be attached */
    struct dev_entry *qtail;
    struct dev_entry *retry;        /* failed, waiting for the retry timer */
    struct dev_entry *parked;       /* failed for good, until something changes */
    struct detach_item *detaches;
    bool busy;
    unsigned ops_out;               /* operations the backend has not answered */
    bool full_logged;
    bool closing;
    bool ctrls_changed;             /* read the controllers again before the next operation */
    ev_timer retry_timer;
};

static void kick(struct domain *dom);
static void resolve_spec(struct domain *dom);
static bool unlink_from(struct dev_entry **head, struct dev_entry **tail,
                        struct dev_entry *entry);

/* Appends e to the queue. */
static void enqueue(struct domain *dom, struct dev_entry *e)
{
    e->qnext = NULL;
    if (dom->qtail)
        dom->qtail->qnext = e;
    else
        dom->qhead = e;
    dom->qtail = e;
    e->queued = true;
    e->state = DEV_WAITING;
}

/* Tells the router's watchers what happened to e (NULL: to the guest). */
static void note(struct domain *dom, const char *event, const struct dev_entry *e, int ctrl,
                 int port, int err)
{
    struct router_note n = { .event = event, .domain = dom->name,
                             .dev = e ? e->dev : NULL, .domid = dom->domid,
                             .ctrl = ctrl, .port = port,
                             .error = err < 0 ? strerror(-err) : NULL };

    router_note(dom->router, &n);
}

/*
 * Parks e, whose attach cannot work until something changes, and says why
 * (once: the same reason again is not repeated).
 */
static void park(struct domain *dom, struct dev_entry *e, int err, const char *why)
{
    if (strcmp(e->failure, why) != 0) {
        snprintf(e->failure, sizeof(e->failure), "%s", why);
        log_warnx("%s: %s cannot be attached: %s; not retried until %sthe device is "
                  "plugged in again, the guest restarts or the policy is reloaded", dom->name,
                  e->dev->port, e->failure,
                  err == -EPROTONOSUPPORT ? "a controller appears or a port frees, " : "");
        note(dom, "attach-failed", e, -1, -1, err);
    }
    e->failure_err = err;
    e->state = DEV_FAILED;
    e->queued = true;
    e->qnext = dom->parked;
    dom->parked = e;
}

/*
 * Something changed: parked devices are tried again (all of them, or only
 * those that wait for a port that takes them).
 */
static void unpark(struct domain *dom, bool all)
{
    struct dev_entry **link = &dom->parked;

    while (*link) {
        struct dev_entry *e = *link;

        if (!all && e->failure_err != -EPROTONOSUPPORT) {
            link = &e->qnext;
            continue;
        }
        *link = e->qnext;
        enqueue(dom, e);
    }
}

/* What a permanent failure means, in words. */
static const char *permanent_reason(int err)
{
    switch (err) {
    case -ENODEV:
        return "the device model cannot find the host device";
    case -EPROTONOSUPPORT:
        return "the guest's port does not take the device's speed";
    case -ESRCH:
        return "the guest is gone";
    default:
        return strerror(-err);
    }
}

/* The guest is done with entry: the router may route it elsewhere now. */
static void release(struct domain *dom, struct dev_entry *e)
{
    bool was_attached = e->state == DEV_ATTACHED || e->state == DEV_DETACHING;

    e->state = DEV_IDLE;
    e->detach_wanted = false;
    e->ctrl = e->port = -1;
    if (was_attached)
        router_changed(dom->router);
    router_entry_released(dom->router, e);
    dev_entry_unref(e);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct domain *dom = w->data;

    /* Failed devices go back to the end of the queue. */
    while (dom->retry) {
        struct dev_entry *e = dom->retry;

        dom->retry = e->qnext;
        enqueue(dom, e);
    }
    kick(dom);
}

struct domain *domain_new(struct ev_loop *loop, struct hv *hv, struct router *router,
                          const char *name, const struct controller_spec *spec)
{
    struct domain *dom = calloc(1, sizeof(*dom));

    if (!dom)
        return NULL;
    dom->name = strdup(name);
    if (!dom->name) {
        free(dom);
        return NULL;
    }
    dom->loop = loop;
    dom->hv = hv;
    dom->router = router;
    dom->spec = *spec;
    dom->eff = *spec;
    dom->domid = -1;
    ev_timer_init(&dom->retry_timer, retry_cb, 0., 0.);
    dom->retry_timer.data = dom;
    return dom;
}

static void drop_list(struct dev_entry **head)
{
    while (*head) {
        struct dev_entry *e = *head;

        *head = e->qnext;
        e->qnext = NULL;
        e->queued = false;
        dev_entry_unref(e);
    }
}

void domain_free(struct domain *dom)
{
    if (!dom)
        return;
    ev_timer_stop(dom->loop, &dom->retry_timer);
    drop_list(&dom->qhead);
    drop_list(&dom->retry);
    drop_list(&dom->parked);
    /* A queued detach's device is still in its slot: the slot loop drops it. */
    while (dom->detaches) {
        struct detach_item *d = dom->detaches;

        dom->detaches = d->next;
        free(d);
    }
    for (size_t i = 0; i < dom->n_ctrls; i++)
        for (int p = 0; p < dom->ctrls[i].n_ports; p++)
            if (dom->ctrls[i].slot[p])
                dev_entry_unref(dom->ctrls[i].slot[p]);
    free(dom->ctrls);
    free(dom->name);
    free(dom);
}

void domain_close(struct domain *dom)
{
    dom->closing = true;
    ev_timer_stop(dom->loop, &dom->retry_timer);
}

bool domain_in_flight(const struct domain *dom)
{
    return dom->ops_out > 0;
}

bool domain_idle(const struct domain *dom)
{
    /* A late answer about a guest that stopped still names its worker. */
    if (dom->busy || dom->ops_out || dom->qhead || dom->retry || dom->parked ||
        dom->detaches)
        return false;
    for (size_t i = 0; i < dom->n_ctrls; i++)
        for (int p = 0; p < dom->ctrls[i].n_ports; p++)
            if (dom->ctrls[i].slot[p])
                return false;
    return true;
}

const char *domain_name(const struct domain *dom)
{
    return dom->name;
}

void domain_set_spec(struct domain *dom, const struct controller_spec *spec)
{
    dom->spec = *spec;
    dom->full_logged = false;
    if (dom->domid >= 0)
        resolve_spec(dom);
    unpark(dom, true);
    kick(dom);
}

void domain_get_info(const struct domain *dom, struct domain_info *info)
{
    memset(info, 0, sizeof(*info));
    info->running = dom->domid >= 0;
    info->domid = dom->domid;
    for (size_t i = 0; i < dom->n_ctrls && i < DOMAIN_INFO_MAX_CTRLS; i++) {
        const struct ctrl *c = &dom->ctrls[i];

        info->ctrls[i].id = c->id;
        info->ctrls[i].version = c->version;
        info->ctrls[i].ports = c->n_ports;
        for (int p = 0; p < c->n_ports; p++)
            info->ctrls[i].used += c->slot[p] || c->foreign[p];
        info->n_ctrls++;
    }
    for (const struct dev_entry *e = dom->qhead; e; e = e->qnext)
        info->queued++;
    for (const struct dev_entry *e = dom->retry; e; e = e->qnext)
        info->retrying++;
    for (const struct dev_entry *e = dom->parked; e; e = e->qnext)
        info->failed++;
}

int domain_domid(const struct domain *dom)
{
    return dom->domid;
}

bool domain_running(const struct domain *dom)
{
    return dom->domid >= 0;
}

static struct ctrl *find_ctrl(struct domain *dom, int id)
{
    for (size_t i = 0; i < dom->n_ctrls; i++)
        if (dom->ctrls[i].id == id)
            return &dom->ctrls[i];
    return NULL;
}

static int add_ctrl(struct domain *dom, int id, enum controller_type type, int version,
                    int n_ports)
{
    struct ctrl *ctrls = realloc(dom->ctrls, (dom->n_ctrls + 1) * sizeof(*ctrls));

    if (!ctrls)
        return -ENOMEM;
    dom->ctrls = ctrls;
    memset(&ctrls[dom->n_ctrls], 0, sizeof(*ctrls));
    ctrls[dom->n_ctrls].id = id;
    ctrls[dom->n_ctrls].type = type;
    ctrls[dom->n_ctrls].version = version;
    ctrls[dom->n_ctrls].n_ports = n_ports > AUA_CTRL_PORTS_MAX ? AUA_CTRL_PORTS_MAX : n_ports;
    dom->n_ctrls++;
    return 0;
}

/* True when a controller of this type and version takes a device of this speed. */
static bool takes(enum controller_type type, int version, enum usb_speed speed)
{
    return type == CONTROLLER_QUSB ? usb_pv_controller_takes(version, speed)
                                   : usb_controller_takes(version, speed);
}

/* "PV USB 2.0 (qusb)", "xHCI"... */
static const char *ctrl_kind(enum controller_type type, int version)
{
    if (type == CONTROLLER_QUSB)
        return version == 1 ? "PV USB 1.1 (qusb)" : "PV USB 2.0 (qusb)";
    return usb_controller_type(version);
}

/*
 * The controller settings for the guest now running: the policy's, with an
 * "auto" type made the device model's for an HVM guest and a PV USB one
 * (QEMU in dom0 as the backend) for a PV or PVH guest.  A guest that can
 * take no controller the policy allows gets a refusal, said once per start.
 */
static void resolve_spec(struct domain *dom)
{
    int g = dom->hv->ops->guest_type ? dom->hv->ops->guest_type(dom->hv, dom->domid)
                                     : HV_GUEST_HVM;
    int kind = g < 0 ? HV_GUEST_HVM : (g & HV_GUEST_KIND);

    dom->eff = dom->spec;
    dom->refusal[0] = '\0';
    if (dom->eff.type == CONTROLLER_AUTO)
        dom->eff.type = kind == HV_GUEST_HVM ? CONTROLLER_DEVICEMODEL : CONTROLLER_QUSB;
    if (dom->eff.type == CONTROLLER_QUSB && dom->eff.version == 3)
        dom->eff.version = 2;   /* the best PV USB has; ports 1-15 hold for both */
    if (dom->eff.type == CONTROLLER_DEVICEMODEL && kind != HV_GUEST_HVM)
        snprintf(dom->refusal, sizeof(dom->refusal),
                 "a %s guest has no device model to hold a '%s' controller: "
                 "use 'type: qusb' (or auto)", kind == HV_GUEST_PV ? "PV" : "PVH",
                 policy_controller_type_name(dom->spec.type));
    else if (dom->eff.type == CONTROLLER_DEVICEMODEL && g >= 0 && (g & HV_GUEST_STUBDOM))
        snprintf(dom->refusal, sizeof(dom->refusal),
                 "its device model runs in a stub domain, which cannot reach dom0's USB "
                 "devices: give it 'controller: { type: qusb }' if it has PV USB drivers");
    if (dom->refusal[0])
        log_warnx("%s: no device can be attached: %s", dom->name, dom->refusal);
}

/* A free port of a controller that takes speed. */
static bool free_port(struct domain *dom, enum usb_speed speed, struct ctrl **ctrl, int *port)
{
    for (size_t i = 0; i < dom->n_ctrls; i++)
        for (int p = 0; p < dom->ctrls[i].n_ports; p++)
            if (!dom->ctrls[i].slot[p] && !dom->ctrls[i].foreign[p] &&
                takes(dom->ctrls[i].type, dom->ctrls[i].version, speed)) {
                *ctrl = &dom->ctrls[i];
                *port = p + 1;
                return true;
            }
    return false;
}

/*
 * Reads the guest's controllers from the backend and learns those it did not
 * know: the ones the guest's configuration has (xl restores them, empty, at
 * every reboot), someone created by hand, or one a creation that reported a
 * failure made all the same.  The ports it does not fill itself are taken as
 * the backend says.  Called only while no operation is in flight.  Returns
 * the number of controllers it learnt.
 */
static int read_ctrls(struct domain *dom, bool report)
{
    struct hv_controller *list = NULL;
    size_t n = 0;
    int learnt = 0;
    bool freed = false;

    if (dom->hv->ops->list_controllers(dom->hv, dom->domid, &list, &n) < 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        struct ctrl *c = find_ctrl(dom, list[i].id);

        if (!c) {
            if (add_ctrl(dom, list[i].id, list[i].type, list[i].version, list[i].n_ports) < 0)
                break;
            c = &dom->ctrls[dom->n_ctrls - 1];
            learnt++;
            if (report)
                log_notice("%s: found USB controller %d (%s, version %d, %d ports)", dom->name,
                           c->id, ctrl_kind(c->type, c->version), c->version, c->n_ports);
        }
        for (int p = 0; p < c->n_ports; p++) {
            if (c->slot[p])
                continue;
            if (report && list[i].ports[p].used && !c->foreign[p])
                log_notice("%s: controller %d port %d holds %s, which the daemon did not "
                           "attach: left there, the port counted as taken", dom->name, c->id,
                           p + 1, list[i].ports[p].busid[0] ? list[i].ports[p].busid : "a device");
            freed |= c->foreign[p] && !list[i].ports[p].used;
            c->foreign[p] = list[i].ports[p].used;
            memcpy(c->busid[p], list[i].ports[p].busid, sizeof(c->busid[p]));
        }
    }
    free(list);
    if (learnt || freed)
        unpark(dom, false);
    return learnt;
}

static struct op *op_new(struct domain *dom, enum op_type type, struct dev_entry *entry)
{
    struct op *op = calloc(1, sizeof(*op));

    if (!op)
        return NULL;
    op->dom = dom;
    op->type = type;
    op->gen = dom->gen;
    op->entry = entry;
    dom->ops_out++;
    return op;
}

static void fill_usb(struct hv_usb *usb, const struct dev_entry *e, int ctrl, int port)
{
    usb->ctrl = ctrl;
    usb->port = port;
    usb->busnum = e->dev->busnum;
    usb->devnum = e->dev->devnum;
    usb->busid = e->dev->port;
}

static void queue_detach(struct domain *dom, struct dev_entry *entry, int ctrl, int port,
                         const char *busid)
{
    struct detach_item *d = calloc(1, sizeof(*d)), **tail = &dom->detaches;

    if (!d) {
        log_error("%s: out of memory: %s stays attached", dom->name, busid);
        return;
    }
    d->entry = entry;
    d->ctrl = ctrl;
    d->port = port;
    snprintf(d->busid, sizeof(d->busid), "%s", busid);
    while (*tail)
        tail = &(*tail)->next;
    *tail = d;
    if (entry)
        entry->state = DEV_DETACHING;
}

static void clear_slot(struct domain *dom, int ctrl_id, int port)
{
    struct ctrl *c = find_ctrl(dom, ctrl_id);

    if (c && port >= 1 && port <= c->n_ports)
        c->slot[port - 1] = NULL;
}

static void attach_done(void *arg, int err)
{
    struct op *op = arg;
    struct domain *dom = op->dom;
    struct dev_entry *e = op->entry;
    bool stale = op->gen != dom->gen;

    dom->ops_out--;
    free(op);
    if (dom->closing && !stale)
        return;     /* the slot's reference is dropped by domain_free */
    if (stale) {
        /* The guest stopped meanwhile: domain_stopped requeued the device. */
        dev_entry_unref(e);
        return;
    }
    dom->busy = false;
    if (err < 0) {
        double delay;

        clear_slot(dom, e->ctrl, e->port);
        e->failures++;
        if (e->unplugged || e->detach_wanted) {
            release(dom, e);
        } else if (hv_error_permanent(err)) {
            park(dom, e, err, permanent_reason(err));
        } else {
            /* Someone else's device is looked at again now and then, not fought over. */
            delay = err == -EBUSY || e->failures >= 6 ? RETRY_MAX_SECONDS
                                                      : (double)(1u << e->failures);
            log_warnx("%s: attaching %s failed (attempt %u): %s; retrying in %.0f s",
                      dom->name, e->dev->port, e->failures, strerror(-err), delay);
            note(dom, "attach-failed", e, -1, -1, err);
            e->failure_err = 0;
            e->failure[0] = '\0';
            e->state = DEV_FAILED;
            e->queued = true;
            e->qnext = dom->retry;
            dom->retry = e;
            if (!ev_is_active(&dom->retry_timer) && !dom->closing) {
                ev_timer_set(&dom->retry_timer, delay, 0.);
                ev_timer_start(dom->loop, &dom->retry_timer);
            }
        }
    } else {
        e->failures = 0;
        e->failure_err = 0;
        e->failure[0] = '\0';
        e->state = DEV_ATTACHED;
        log_notice("%s: %s attached at controller %d port %d", dom->name, e->dev->port,
                   e->ctrl, e->port);
        note(dom, "attached", e, e->ctrl, e->port, 0);
        router_changed(dom->router);
        if (e->unplugged || e->detach_wanted) {
            e->detach_wanted = false;
            queue_detach(dom, e, e->ctrl, e->port, e->dev->port);
        }
    }
    kick(dom);
}

static void detach_done(void *arg, int err)
{
    struct op *op = arg;
    struct domain *dom = op->dom;
    struct dev_entry *e = op->entry;
    bool stale = op->gen != dom->gen;

    dom->ops_out--;
    free(op);
    if (dom->closing && !stale)
        return;     /* the slot's reference is dropped by domain_free */
    if (!stale) {
        dom->busy = false;
        if (err < 0)
            log_warnx("%s: detaching %s from controller %d port %d failed: %s", dom->name,
                      e->dev->port, e->ctrl, e->port, strerror(-err));
        else
            log_notice("%s: %s detached", dom->name, e->dev->port);
        note(dom, err < 0 ? "detach-failed" : "detached", e, e->ctrl, e->port, err);
        clear_slot(dom, e->ctrl, e->port);
        unpark(dom, false);
    }
    release(dom, e);
    if (!stale)
        kick(dom);
}

static void stale_done(void *arg, int err)
{
    struct op *op = arg;
    struct domain *dom = op->dom;
    bool stale = op->gen != dom->gen || dom->closing;
    struct ctrl *c = find_ctrl(dom, op->ctrl_id);
    int port = op->spec.ports;

    dom->ops_out--;
    free(op);
    if (stale)
        return;
    dom->busy = false;
    if (err < 0) {
        log_warnx("%s: removing the stale device at controller %d port %d failed: %s",
                  dom->name, c ? c->id : -1, port, strerror(-err));
    } else if (c && port >= 1 && port <= c->n_ports) {
        log_notice("%s: removed the stale device %s from controller %d port %d", dom->name,
                   c->busid[port - 1], c->id, port);
        c->foreign[port - 1] = false;
        c->busid[port - 1][0] = '\0';
        unpark(dom, false);
    }
    kick(dom);
}

static void ctrl_done(void *arg, int err)
{
    struct op *op = arg;
    struct domain *dom = op->dom;
    bool stale = op->gen != dom->gen || dom->closing;

    dom->ops_out--;
    if (!stale) {
        dom->busy = false;
        if (err < 0) {
            log_warnx("%s: creating a USB controller (version %d, %d ports) failed: %s",
                      dom->name, op->spec.version, op->spec.ports, strerror(-err));
            /*
             * The guest may have one now all the same (made by this call, or
             * by xl at the same time): use it; else try again later rather
             * than spin on a guest that refuses.
             */
            if (read_ctrls(dom, true) > 0) {
                free(op);
                kick(dom);
                return;
            }
            if (!ev_is_active(&dom->retry_timer) && !dom->closing) {
                ev_timer_set(&dom->retry_timer, 5., 0.);
                ev_timer_start(dom->loop, &dom->retry_timer);
            }
        } else if (add_ctrl(dom, op->ctrl_id, op->spec.type, op->spec.version,
                            op->spec.ports) < 0) {
            log_error("%s: out of memory", dom->name);
        } else {
            log_notice("%s: created USB controller %d (%s, version %d, %d ports)", dom->name,
                       op->ctrl_id, ctrl_kind(op->spec.type, op->spec.version),
                       op->spec.version, op->spec.ports);
            unpark(dom, false);
        }
    }
    free(op);
    if (!stale && err >= 0)
        kick(dom);
}

static void start_detach(struct domain *dom)
{
    struct detach_item *d = dom->detaches;
    struct op *op = op_new(dom, OP_DETACH, d->entry);
    hv_done_fn done = d->entry ? detach_done : stale_done;
    struct hv_usb usb = { .ctrl = d->ctrl, .port = d->port, .busid = d->busid,
                          .busnum = d->busnum, .devnum = d->devnum };
    int r;

    if (!op)
        return;
    dom->detaches = d->next;
    if (d->entry)
        fill_usb(&usb, d->entry, d->ctrl, d->port);
    /* A stale removal remembers where it was in the op. */
    op->ctrl_id = d->ctrl;
    op->spec.ports = d->port;
    dom->busy = true;
    r = dom->hv->ops->detach(dom->hv, dom->domid, &usb, done, op);
    free(d);
    if (r < 0)
        done(op, r);
}

static void start_attach(struct domain *dom, struct dev_entry *e, struct ctrl *c, int port)
{
    struct op *op = op_new(dom, OP_ATTACH, e);
    struct hv_usb usb;
    int r;

    if (!op)
        return;
    unlink_from(&dom->qhead, &dom->qtail, e);
    e->queued = false;
    e->state = DEV_ATTACHING;
    e->ctrl = c->id;
    e->port = port;
    c->slot[port - 1] = e;
    fill_usb(&usb, e, c->id, port);
    dom->busy = true;
    r = dom->hv->ops->attach(dom->hv, dom->domid, &usb, attach_done, op);
    if (r < 0)
        attach_done(op, r);
}

static void start_add_controller(struct domain *dom)
{
    struct op *op = op_new(dom, OP_ADD_CONTROLLER, NULL);
    int r;

    if (!op)
        return;
    op->spec = dom->eff;
    dom->busy = true;
    r = dom->hv->ops->add_controller(dom->hv, dom->domid, &op->spec, &op->ctrl_id,
                                     ctrl_done, op);
    if (r < 0)
        ctrl_done(op, r);
}

/*
 * Queued devices that the guest has already (attached before the daemon
 * started, or by its configuration) are taken as attached, not added twice.
 */
static void adopt(struct domain *dom)
{
    struct dev_entry **link = &dom->qhead, *prev = NULL;

    while (*link) {
        struct dev_entry *e = *link;
        bool found = false;

        for (size_t i = 0; i < dom->n_ctrls && !found; i++) {
            struct ctrl *c = &dom->ctrls[i];

            for (int p = 0; p < c->n_ports && !found; p++) {
                if (!c->foreign[p] || strcmp(c->busid[p], e->dev->port) != 0)
                    continue;
                found = true;
                c->foreign[p] = false;
                c->busid[p][0] = '\0';
                c->slot[p] = e;
                e->ctrl = c->id;
                e->port = p + 1;
            }
        }
        if (!found) {
            prev = e;
            link = &e->qnext;
            continue;
        }
        *link = e->qnext;
        if (dom->qtail == e)
            dom->qtail = prev;
        e->qnext = NULL;
        e->queued = false;
        e->state = DEV_ATTACHED;
        log_notice("%s: %s is attached already at controller %d port %d", dom->name,
                   e->dev->port, e->ctrl, e->port);
        router_changed(dom->router);
    }
}

/* The speed of e's device, read once, when it is first placed. */
static enum usb_speed speed_of(struct dev_entry *e)
{
    if (e->dev->speed == USB_SPEED_UNREAD) {
        e->dev->speed = usb_speed_read(e->dev->devpath);
        log_debug("%s: %s speed", e->dev->port, usb_speed_name(e->dev->speed));
    }
    return e->dev->speed;
}

/* The first queued device that has a free port that takes it, and that port. */
static struct dev_entry *placeable(struct domain *dom, struct ctrl **c, int *port)
{
    for (struct dev_entry *e = dom->qhead; e; e = e->qnext)
        if (free_port(dom, speed_of(e), c, port))
            return e;
    return NULL;
}

/* True when one of the guest's controllers, full or not, takes speed. */
static bool some_ctrl_takes(const struct domain *dom, enum usb_speed speed)
{
    for (size_t i = 0; i < dom->n_ctrls; i++)
        if (takes(dom->ctrls[i].type, dom->ctrls[i].version, speed))
            return true;
    return false;
}

/*
 * Parks the head of the queue, a device that no controller of the guest
 * takes and that the daemon may not create one for: it would only be
 * refused, and taken from dom0's drivers for nothing.
 */
static void park_unplaceable(struct domain *dom)
{
    struct dev_entry *e = dom->qhead;
    enum usb_speed speed = speed_of(e);
    char why[sizeof(e->failure)];

    unlink_from(&dom->qhead, &dom->qtail, e);
    if (dom->refusal[0])
        snprintf(why, sizeof(why), "%s", dom->refusal);
    else if (takes(dom->eff.type, dom->eff.version, speed))
        snprintf(why, sizeof(why), "a %s-speed device, and none of the guest's %zu "
                 "controller(s), the most 'max: %d' allows, takes that speed",
                 usb_speed_name(speed), dom->n_ctrls, dom->eff.max);
    else if (dom->eff.type == CONTROLLER_QUSB)
        snprintf(why, sizeof(why), "a %s-speed device, which the guest's controllers and "
                 "the policy's (%s) do not take%s", usb_speed_name(speed),
                 ctrl_kind(dom->eff.type, dom->eff.version),
                 speed == USB_SPEED_SUPER ? ": PV USB has no SuperSpeed"
                                          : ": use version 2");
    else
        snprintf(why, sizeof(why), "a %s-speed device, which the guest's controllers and "
                 "the policy's (version %d, %s) do not take: use version 3 (xHCI)%s",
                 usb_speed_name(speed), dom->eff.version,
                 usb_controller_type(dom->eff.version),
                 speed == USB_SPEED_HIGH ? " or 2 (EHCI)"
                 : speed == USB_SPEED_SUPER ? "" : " or 1 (UHCI)");
    park(dom, e, -EPROTONOSUPPORT, why);
}

/*
 * Starts the next operation: detaches first (they free ports), then the
 * first queued device that has a port that takes its speed; when none has,
 * a controller for the head of the queue, if the policy's type takes it and
 * 'max' allows; else the head waits for a port, or is parked when no
 * controller the guest has or may get would ever take it.
 */
static void kick(struct domain *dom)
{
    struct dev_entry *e;
    struct ctrl *c;
    int port;

    if (dom->busy || dom->domid < 0 || dom->closing)
        return;
    if (dom->ctrls_changed) {
        dom->ctrls_changed = false;
        read_ctrls(dom, true);
    }
    adopt(dom);
    if (dom->detaches) {
        start_detach(dom);
        return;
    }
    if (!dom->qhead)
        return;
    e = placeable(dom, &c, &port);
    if (!e) {
        /* A controller the guest got meanwhile (restored by xl, made by hand) comes first. */
        read_ctrls(dom, true);
        e = placeable(dom, &c, &port);
    }
    while (!e && dom->qhead) {
        enum usb_speed speed = speed_of(dom->qhead);

        if (!dom->refusal[0] && takes(dom->eff.type, dom->eff.version, speed) &&
            (int)dom->n_ctrls < dom->eff.max) {
            if (!ev_is_active(&dom->retry_timer))
                start_add_controller(dom);
            return;
        }
        if (!dom->refusal[0] && some_ctrl_takes(dom, speed))
            break;
        park_unplaceable(dom);
        e = placeable(dom, &c, &port);
    }
    if (e) {
        dom->full_logged = false;
        start_attach(dom, e, c, port);
        return;
    }
    if (dom->qhead && !dom->full_logged) {
        log_warnx("%s: every port of its %zu USB controller(s) that takes a %s-speed "
                  "device is taken and 'max: %d' allows no more: %s waits for a free port",
                  dom->name, dom->n_ctrls, usb_speed_name(dom->qhead->dev->speed),
                  dom->spec.max, dom->qhead->dev->port);
        dom->full_logged = true;
    }
}

void domain_attach(struct domain *dom, struct dev_entry *entry)
{
    entry->refs++;
    entry->state = DEV_WAITING;
    entry->queued = true;
    entry->qnext = NULL;
    entry->detach_wanted = false;
    if (dom->qtail)
        dom->qtail->qnext = entry;
    else
        dom->qhead = entry;
    dom->qtail = entry;
    if (dom->domid < 0)
        log_info("%s: %s waits until the guest runs", dom->name, entry->dev->port);
    kick(dom);
}

static bool unlink_from(struct dev_entry **head, struct dev_entry **tail,
                        struct dev_entry *entry)
{
    struct dev_entry *prev = NULL;

    for (struct dev_entry *e = *head; e; prev = e, e = e->qnext) {
        if (e != entry)
            continue;
        if (prev)
            prev->qnext = e->qnext;
        else
            *head = e->qnext;
        if (tail && *tail == e)
            *tail = prev;
        e->qnext = NULL;
        return true;
    }
    return false;
}

void domain_detach(struct domain *dom, struct dev_entry *entry)
{
    if (entry->queued) {
        if (!unlink_from(&dom->qhead, &dom->qtail, entry) &&
            !unlink_from(&dom->retry, NULL, entry))
            unlink_from(&dom->parked, NULL, entry);
        entry->queued = false;
        release(dom, entry);
        return;
    }
    switch (entry->state) {
    case DEV_ATTACHING:
        entry->detach_wanted = true;
        break;
    case DEV_ATTACHED:
        queue_detach(dom, entry, entry->ctrl, entry->port, entry->dev->port);
        kick(dom);
        break;
    default:
        break;
    }
}

void domain_controllers_changed(struct domain *dom)
{
    if (dom->domid < 0)
        return;
    dom->ctrls_changed = true;
    kick(dom);
}

void domain_started(struct domain *dom, int domid)
{
    if (dom->domid == domid)
        return;
    if (dom->domid >= 0)
        domain_stopped(dom);
    dom->domid = domid;
    log_notice("%s: guest is running (domid %d)", dom->name, domid);
    note(dom, "guest-start", NULL, -1, -1, 0);
    resolve_spec(dom);
    /* A guest started again may take what its last run could not. */
    unpark(dom, true);
    read_ctrls(dom, false);
    domain_reap_stale(dom);
    kick(dom);
}

/* The bus and address of a stale device, from the last run's record if it has them. */
static void set_stale_busdev(struct domain *dom, int ctrl, int port, const char *busid)
{
    struct detach_item *d = dom->detaches;

    while (d && d->next)
        d = d->next;
    if (d && !d->entry)
        router_previous_busdev(dom->router, dom->name, ctrl, port, busid, &d->busnum,
                               &d->devnum);
}

void domain_reap_stale(struct domain *dom)
{
    if (dom->domid < 0 || !router_complete(dom->router))
        return;
    for (size_t i = 0; i < dom->n_ctrls; i++) {
        struct ctrl *c = &dom->ctrls[i];

        for (int p = 0; p < c->n_ports; p++) {
            bool queued = false;

            if (!c->foreign[p] || !c->busid[p][0] || router_port_present(dom->router, c->busid[p]))
                continue;
            for (const struct detach_item *d = dom->detaches; d && !queued; d = d->next)
                queued = !d->entry && d->ctrl == c->id && d->port == p + 1;
            if (queued)
                continue;
            log_notice("%s: controller %d port %d holds %s, which is not plugged in: "
                       "removing it", dom->name, c->id, p + 1, c->busid[p]);
            queue_detach(dom, NULL, c->id, p + 1, c->busid[p]);
            set_stale_busdev(dom, c->id, p + 1, c->busid[p]);
        }
    }
    kick(dom);
}

void domain_stopped(struct domain *dom)
{
    struct dev_entry *requeue = NULL, **tail = &requeue;

    if (dom->domid < 0)
        return;
    log_notice("%s: guest stopped (was domid %d)", dom->name, dom->domid);
    note(dom, "guest-stop", NULL, -1, -1, 0);
    dom->domid = -1;
    dom->gen++;
    dom->busy = false;
    /* The guest took its controllers with it: our devices go back to the queue. */
    for (size_t i = 0; i < dom->n_ctrls; i++) {
        for (int p = 0; p < dom->ctrls[i].n_ports; p++) {
            struct dev_entry *e = dom->ctrls[i].slot[p];

            if (!e)
                continue;
            dom->ctrls[i].slot[p] = NULL;
            /* A detach in flight or queued releases the device itself. */
            if (e->state == DEV_DETACHING)
                continue;
            if (e->state == DEV_ATTACHING)
                e->refs++;      /* the late answer drops the op's reference */
            if (e->unplugged || e->detach_wanted) {
                release(dom, e);
                continue;
            }
            e->state = DEV_WAITING;
            e->queued = true;
            *tail = e;
            tail = &e->qnext;
        }
    }
    while (dom->detaches) {
        struct detach_item *d = dom->detaches;

        dom->detaches = d->next;
        if (d->entry)
            release(dom, d->entry);
        free(d);
    }
    *tail = dom->qhead;
    dom->qhead = requeue;
    if (!dom->qtail)
        for (struct dev_entry *e = dom->qhead; e; e = e->qnext)
            dom->qtail = e;
    free(dom->ctrls);
    dom->ctrls = NULL;
    dom->n_ctrls = 0;
    dom->full_logged = false;
    router_changed(dom->router);
}

void domain_probe(struct domain *dom)
{
    int domid = dom->hv->ops->domain_lookup(dom->hv, dom->name);

    if (domid >= 0)
        domain_started(dom, domid);
    else if (domid != -ENOENT)
        log_warnx("%s: cannot tell whether the guest runs: %s", dom->name, strerror(-domid));
    else
        log_info("%s: guest is not running", dom->name);
}

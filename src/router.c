/*
 * The router owns the table of plugged devices (keyed by DEVPATH, so that a
 * remove event, which carries no sysfs attributes, finds what was recorded at
 * add time), asks the policy for each device's decision, reports it, and
 * hands routed devices to their guest's domain worker.  On a reload it moves
 * only the devices whose decision changed.
 *
 * It also guards against locking dom0 out: a routed device with a keyboard
 * interface leaves dom0 only when dom0 keeps another keyboard (one not on
 * USB, or a USB one no rule takes), unless the policy allows the lock-out.
 * Otherwise it is held: it stays in dom0, reported as such, and goes to its
 * guest once another keyboard turns up.  The guard looks at devices dom0
 * holds; a keyboard a guest already has is not taken back.
 */
#include "config.h"

#include "router.h"

#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "link.h"
#include "log.h"
#include "match.h"
#include "state.h"
#include "strmap.h"

struct router {
    struct ev_loop *loop;
    struct hv *hv;
    struct policy *policy;
    struct strmap *devices;     /* devpath -> struct dev_entry */
    struct strmap *domains;     /* guest name -> struct domain */
    struct strmap *keyboards;   /* DEVPATH of each keyboard not on USB -> the router */
    struct strmap *keyboards_before;    /* during a rescan: those known before it */
    unsigned n_held;            /* entries held back by the lock-out guard */
    decision_fn report;
    void *report_arg;
    note_fn note;
    void *note_arg;
    bool complete;              /* cold plug is done */
    void (*state_fn)(void *arg);    /* called when an attachment changed */
    void *state_arg;
    struct state_record *previous;  /* what the last run recorded */
    size_t n_previous;
    struct state_record *overrides; /* the last run's manual decisions */
    size_t n_overrides;
    unsigned scan;              /* counts router_rescan_begin() calls */
    struct link *sweeps;        /* stale removals from guests the policy does not name */
    ev_timer gc;                /* frees the workers nothing needs any more */
    bool closing;
};

/*
 * The removal of what a guest the policy does not name holds of a device
 * that is not plugged in.  libxl refuses every USB add while any guest's
 * port names a device it cannot find, so such leftovers (a device given
 * with xl, then unplugged) are removed too, though the daemon has no worker
 * for that guest.
 */
struct sweep {
    int domid;
    int ctrl;
    int port;
    char guest[AUA_DOMAIN_NAME_MAX + 1];
    char busid[AUA_BUSID_MAX + 1];
    struct link link;           /* in router->sweeps */
};

static const char *const state_names[] = {
    [DEV_IDLE] = "idle",
    [DEV_WAITING] = "waiting",
    [DEV_ATTACHING] = "attaching",
    [DEV_ATTACHED] = "attached",
    [DEV_DETACHING] = "detaching",
    [DEV_FAILED] = "failed",
};

const char *dev_state_name(enum dev_state state)
{
    return state_names[state];
}

void dev_entry_unref(struct dev_entry *entry)
{
    if (!entry || --entry->refs > 0)
        return;
    device_free(entry->dev);
    free(entry->rule_name);
    free(entry->rule_file);
    free(entry);
}

static void free_entry_ref(void *p)
{
    dev_entry_unref(p);
}

static void free_domain(void *p)
{
    domain_free(p);
}

static void domain_started_cb(void *arg, const char *name, int domid)
{
    struct domain *dom = router_domain(arg, name);

    if (dom)
        domain_started(dom, domid);
}

static void domain_stopped_cb(void *arg, const char *name, int domid)
{
    struct domain *dom = router_domain(arg, name);

    if (dom && domain_domid(dom) == domid)
        domain_stopped(dom);
}

static void controllers_changed_cb(void *arg, const char *name, int domid)
{
    struct domain *dom = router_domain(arg, name);

    if (dom && domain_domid(dom) == domid)
        domain_controllers_changed(dom);
}

/*
 * A worker the policy does not name (made for an attach by hand, or left by
 * a reload) is freed once no device is routed to it and it holds nothing.
 */
static bool worker_unused(const struct router *router, const char *name,
                          const struct domain *dom)
{
    size_t pos = 0;
    const char *key;
    void *value;

    if (policy_find_domain(router->policy, name) >= 0 || !domain_idle(dom))
        return false;
    while (strmap_next(router->devices, &pos, &key, &value) == 0)
        if (((const struct dev_entry *)value)->domain == dom)
            return false;
    return true;
}

static void gc_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct router *router = w->data;
    size_t pos = 0;
    const char *key;
    void *value;

    while (!router->closing && strmap_next(router->domains, &pos, &key, &value) == 0) {
        char name[128];

        if (!worker_unused(router, key, value))
            continue;
        /* The key is the map's own: it goes with the removal. */
        snprintf(name, sizeof(name), "%s", key);
        log_debug("%s: no device goes there any more: its worker is freed", name);
        domain_free(strmap_remove(router->domains, name));
        pos = 0;    /* the map changed under the iteration */
    }
}

/* Looks for unused workers from the loop: never under a worker's own call. */
static void schedule_gc(struct router *router)
{
    if (!ev_is_active(&router->gc) && !router->closing) {
        ev_timer_set(&router->gc, 0., 0.);
        ev_timer_start(router->loop, &router->gc);
    }
}

/* Makes sure every guest of the policy has a worker with the policy's settings. */
static int sync_domains(struct router *router)
{
    for (unsigned i = 0; i < router->policy->n_domains; i++) {
        const struct policy_domain *pd = &router->policy->domains[i];
        struct domain *dom = strmap_get(router->domains, pd->name);

        if (dom) {
            domain_set_spec(dom, &pd->controller);
            continue;
        }
        dom = domain_new(router->loop, router->hv, router, pd->name, &pd->controller);
        if (!dom || strmap_put(router->domains, pd->name, dom, NULL) < 0) {
            domain_free(dom);
            log_error("out of memory");
            return -ENOMEM;
        }
        domain_probe(dom);
    }
    return 0;
}

struct router *router_new(struct ev_loop *loop, struct hv *hv, struct policy *policy,
                          decision_fn report, void *report_arg)
{
    struct router *router = calloc(1, sizeof(*router));

    if (!router)
        return NULL;
    router->loop = loop;
    router->hv = hv;
    router->policy = policy;
    router->report = report;
    router->report_arg = report_arg;
    router->devices = strmap_new();
    router->domains = strmap_new();
    router->keyboards = strmap_new();
    ev_timer_init(&router->gc, gc_cb, 0., 0.);
    router->gc.data = router;
    hv->events.domain_started = domain_started_cb;
    hv->events.domain_stopped = domain_stopped_cb;
    hv->events.controllers_changed = controllers_changed_cb;
    hv->events.arg = router;
    if (!router->devices || !router->domains || !router->keyboards ||
        sync_domains(router) < 0) {
        router->policy = NULL;  /* still the caller's, who frees it */
        router_free(router);
        return NULL;
    }
    return router;
}

void router_close(struct router *router)
{
    size_t pos = 0;
    const char *key;
    void *value;

    router->closing = true;
    ev_timer_stop(router->loop, &router->gc);

    while (strmap_next(router->domains, &pos, &key, &value) == 0)
        domain_close(value);
}

bool router_in_flight(const struct router *router)
{
    size_t pos = 0;
    const char *key;
    void *value;

    while (strmap_next(router->domains, &pos, &key, &value) == 0)
        if (domain_in_flight(value))
            return true;
    return router->sweeps != NULL;
}

void router_free(struct router *router)
{
    if (!router)
        return;
    ev_timer_stop(router->loop, &router->gc);
    /* Workers first: they drop their references to the devices. */
    strmap_free(router->domains, free_domain);
    strmap_free(router->devices, free_entry_ref);
    strmap_free(router->keyboards, NULL);
    strmap_free(router->keyboards_before, NULL);
    policy_free(router->policy);
    free(router->previous);
    free(router->overrides);
    free(router);
}

const struct policy *router_policy(const struct router *router)
{
    return router->policy;
}

struct dev_entry *router_lookup(const struct router *router, const char *devpath)
{
    return strmap_get(router->devices, devpath);
}

struct domain *router_domain(const struct router *router, const char *name)
{
    return name ? strmap_get(router->domains, name) : NULL;
}

static const char *decision_action(enum decision d)
{
    switch (d) {
    case DECISION_ATTACH:
        return "attach";
    case DECISION_IGNORE:
        return "ignore";
    case DECISION_NONE:
        break;
    }
    return "none";
}

/* A rule that decided a device before, kept across a new decision to name it. */
struct old_rule {
    unsigned rule;
    char *name;
    char *file;
    unsigned line;
    bool dropin;
};

/* Takes entry's rule: the strings are copies (old_rule_clear frees them); -ENOMEM. */
static int old_rule_take(struct old_rule *o, const struct dev_entry *e)
{
    *o = (struct old_rule){ .rule = e->rule, .line = e->rule_line, .dropin = e->rule_dropin };
    if ((e->rule_name && !(o->name = strdup(e->rule_name))) ||
        (e->rule_file && !(o->file = strdup(e->rule_file)))) {
        free(o->name);
        free(o->file);
        return -ENOMEM;
    }
    return 0;
}

static void old_rule_clear(struct old_rule *o)
{
    free(o->name);
    free(o->file);
}

/* Reports entry's decision made by rule (rule_name): an earlier one's for a detach. */
static void report_rule(struct router *router, enum router_event event, const char *action,
                        const struct dev_entry *entry, const struct domain *dom,
                        const struct old_rule *rule)
{
    struct decision_report r = {
        .event = event,
        .action = action,
        .dev = entry->dev,
        .domain = dom ? domain_name(dom) : NULL,
        .rule = rule->rule,
        .rule_name = rule->name,
        .rule_file = rule->file,
        .rule_line = rule->line,
        .rule_dropin = rule->dropin,
    };

    if (router->report)
        router->report(router->report_arg, &r);
}

static void report(struct router *router, enum router_event event, const char *action,
                   const struct dev_entry *entry, const struct domain *dom)
{
    struct old_rule own = { .rule = entry->rule, .name = entry->rule_name,
                            .file = entry->rule_file, .line = entry->rule_line,
                            .dropin = entry->rule_dropin };

    report_rule(router, event, action, entry, dom, &own);
}

/* Asks the policy about entry and records the answer in it. */
static int decide(struct router *router, struct dev_entry *entry)
{
    const struct policy_rule *rule = match_device(router->policy, entry->dev);
    char *name = NULL, *file = NULL;

    if (rule && rule->name && !(name = strdup(rule->name)))
        return -ENOMEM;
    if (rule && !(file = strdup(rule->file))) {
        free(name);
        return -ENOMEM;
    }
    free(entry->rule_name);
    entry->rule_name = name;
    free(entry->rule_file);
    entry->rule_file = file;
    entry->rule_line = rule ? rule->line : 0;
    entry->rule_dropin = rule && rule->dropin;
    entry->rule = rule ? rule->index : 0;
    entry->decision = !rule ? DECISION_NONE
                      : rule->action == RULE_IGNORE ? DECISION_IGNORE
                                                    : DECISION_ATTACH;
    entry->domain = entry->decision == DECISION_ATTACH
                        ? router_domain(router, router->policy->domains[rule->domain].name)
                        : NULL;
    return 0;
}

/* The policy lets entry's rule take dom0's last keyboard. */
static bool lockout_allowed(const struct router *router, const struct dev_entry *e)
{
    return e->rule > 0 && e->rule <= router->policy->n_rules &&
           router->policy->rules[e->rule - 1].allow_lockout;
}

/*
 * The last run attached this very device to e's guest: the guest has it
 * already.  The record must name what is plugged in there now, its
 * vendor:product too, not only a place and a number that another device
 * can have.
 */
static bool attached_before(const struct router *router, const struct dev_entry *e)
{
    char id[10];

    device_id_string(e->dev, id);
    for (size_t i = 0; i < router->n_previous; i++) {
        const struct state_record *r = &router->previous[i];

        if (strcmp(r->domain, domain_name(e->domain)) == 0 &&
            strcmp(r->busid, e->dev->port) == 0 && r->busnum == e->dev->busnum &&
            r->devnum == e->dev->devnum && strcmp(r->id, id) == 0)
            return true;
    }
    return false;
}

/* A routed keyboard (not placed by hand, not in its guest) the guard must look at. */
static bool guarded(const struct router *router, const struct dev_entry *e)
{
    return e->decision == DECISION_ATTACH && !e->override && device_is_keyboard(e->dev) &&
           !lockout_allowed(router, e) && !attached_before(router, e);
}

bool router_dom0_keeps_keyboard(const struct router *router, const struct dev_entry *except)
{
    size_t pos = 0;
    const char *key;
    void *value;

    if (strmap_size(router->keyboards) > 0)
        return true;
    while (strmap_next(router->devices, &pos, &key, &value) == 0) {
        const struct dev_entry *e = value;

        if (e != except && device_is_keyboard(e->dev) &&
            (e->decision != DECISION_ATTACH || e->held))
            return true;
    }
    return false;
}

static bool only_hid(const struct usb_device *dev)
{
    for (unsigned i = 0; i < dev->n_ifaces; i++)
        if (dev->ifaces[i].cls != USB_CLASS_HID)
            return false;
    return true;
}

static void set_held(struct router *router, struct dev_entry *e, bool held)
{
    if (e->held == held)
        return;
    e->held = held;
    if (held) {
        router->n_held++;
    } else {
        struct router_note n = { .event = "release", .dev = e->dev, .domid = -1,
                                 .ctrl = -1, .port = -1,
                                 .domain = e->domain ? domain_name(e->domain) : NULL };

        router->n_held--;
        router_note(router, &n);
    }
}

void router_set_note_hook(struct router *router, note_fn fn, void *arg)
{
    router->note = fn;
    router->note_arg = arg;
}

void router_note(struct router *router, const struct router_note *note)
{
    if (router->note)
        router->note(router->note_arg, note);
}

/*
 * Keeps entry, decided ATTACH, in dom0 when it is dom0's last keyboard
 * (held, reported "hold"); true then.  A keyboard found at start waits for
 * the end of the enumeration, when every keyboard is known.
 */
static bool keep_last_keyboard(struct router *router, struct dev_entry *e,
                               enum router_event event)
{
    char name[256];

    if (!guarded(router, e) || router_dom0_keeps_keyboard(router, e))
        return false;
    /* Another keyboard may still be found: decide when all are known. */
    if (!router->complete) {
        e->pending = true;
        return true;
    }
    set_held(router, e, true);
    log_warnx("%s: not attached to %s (rule %u%s%s): it is dom0's last keyboard; "
              "allow-dom0-lockout: true permits it", e->dev->port, domain_name(e->domain),
              e->rule, e->rule_name ? " " : "",
              e->rule_name ? log_escape(e->rule_name, name, sizeof(name)) : "");
    report(router, event, "hold", e, e->domain);
    return true;
}

/* Gives entry, decided ATTACH and in dom0, to its guest: unless it is dom0's last keyboard. */
static void route(struct router *router, struct dev_entry *e, enum router_event event)
{
    if (keep_last_keyboard(router, e, event))
        return;
    if (e->override && device_is_keyboard(e->dev) && !router_dom0_keeps_keyboard(router, e))
        log_warnx("%s: attached to %s by hand: dom0 keeps no keyboard", e->dev->port,
                  domain_name(e->domain));
    set_held(router, e, false);
    report(router, event, "attach", e, e->domain);
    domain_attach(e->domain, e);
}

/* Lets held keyboards go to their guests when dom0 has another keyboard now. */
static void release_held(struct router *router, enum router_event event)
{
    struct dev_entry **entries;
    size_t n;

    if (router->n_held == 0)
        return;
    n = router_devices(router, &entries);
    /* One still on its way out of a guest is judged again when it is out. */
    for (size_t i = 0; i < n; i++)
        if (entries[i]->held && entries[i]->state == DEV_IDLE &&
            (!guarded(router, entries[i]) || router_dom0_keeps_keyboard(router, entries[i])))
            route(router, entries[i], event);
    free(entries);
}

static void restore_override(struct router *router, struct dev_entry *e);

void router_device_added(struct router *router, struct usb_device *dev,
                         enum router_event event)
{
    struct dev_entry *entry, *old;

    if (device_is_hub(dev)) {
        log_debug("%s: a hub, never routed", dev->port);
        device_free(dev);
        return;
    }
    old = strmap_get(router->devices, dev->devpath);
    if (old) {
        if (old->dev->busnum == dev->busnum && old->dev->devnum == dev->devnum) {
            /* Seen twice (enumeration and monitor both saw it): once is enough. */
            log_debug("%s: already known", dev->port);
            old->scan = router->scan;
            device_free(dev);
            return;
        }
        /* The remove was lost: a new device sits at the same place. */
        router_device_removed(router, dev->devpath);
    }
    entry = calloc(1, sizeof(*entry));
    if (!entry) {
        log_error("%s: out of memory: device not handled", dev->port);
        device_free(dev);
        return;
    }
    entry->dev = dev;
    entry->refs = 1;
    entry->ctrl = entry->port = -1;
    entry->scan = router->scan;
    if (decide(router, entry) < 0 ||
        strmap_put(router->devices, dev->devpath, entry, NULL) < 0) {
        log_error("%s: out of memory: device not handled", dev->port);
        dev_entry_unref(entry);
        return;
    }
    if (event == EVENT_PRESENT && router->n_overrides)
        restore_override(router, entry);
    if (entry->decision == DECISION_ATTACH)
        route(router, entry, event);
    else
        report(router, event, decision_action(entry->decision), entry, NULL);
    if (device_is_keyboard(dev))
        release_held(router, event);
}

static void sweep_done(void *arg, int err)
{
    struct sweep *s = arg;

    link_remove(&s->link);
    if (err < 0 && err != -ECANCELED)
        log_warnx("%s: removing the stale device %s from controller %d port %d failed: %s",
                  s->guest, s->busid, s->ctrl, s->port, strerror(-err));
    else if (err == 0)
        log_notice("%s: removed the stale device %s from controller %d port %d", s->guest,
                   s->busid, s->ctrl, s->port);
    free(s);
}

static bool sweeping(const struct router *router, int domid, int ctrl, int port)
{
    for (struct link *l = router->sweeps; l; l = l->next) {
        const struct sweep *s = LINK_ENTRY(l, struct sweep, link);

        if (s->domid == domid && s->ctrl == ctrl && s->port == port)
            return true;
    }
    return false;
}

/* Removes the stale ports of one guest the policy does not name. */
static void sweep_guest(struct router *router, const struct hv_domain *guest)
{
    struct hv_controller *ctrls = NULL;
    size_t n = 0;

    if (router->hv->ops->list_controllers(router->hv, guest->domid, &ctrls, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        for (int p = 0; p < ctrls[i].n_ports && p < 16; p++) {
            const struct hv_port *port = &ctrls[i].ports[p];
            struct hv_usb usb = { .ctrl = ctrls[i].id, .port = p + 1, .busid = port->busid };
            struct sweep *s;

            if (!port->used || !port->busid[0] || router_port_present(router, port->busid) ||
                sweeping(router, guest->domid, usb.ctrl, usb.port))
                continue;
            s = calloc(1, sizeof(*s));
            if (!s) {
                log_error("out of memory");
                break;
            }
            *s = (struct sweep){ .domid = guest->domid, .ctrl = usb.ctrl, .port = usb.port };
            snprintf(s->guest, sizeof(s->guest), "%s", guest->name);
            snprintf(s->busid, sizeof(s->busid), "%s", port->busid);
            usb.busid = s->busid;
            /* A warning: this changes a guest the policy does not give the daemon. */
            log_warnx("%s (not in the policy): controller %d port %d holds %s, which is not "
                      "plugged in: removing it", s->guest, usb.ctrl, usb.port, s->busid);
            link_push(&router->sweeps, &s->link);
            if (router->hv->ops->detach(router->hv, guest->domid, &usb, sweep_done, s) < 0) {
                log_warnx("%s: cannot remove the stale device %s", s->guest, s->busid);
                link_remove(&s->link);
                free(s);
            }
        }
    }
    free(ctrls);
}

/* What a guest holds of a device not plugged in (found at start, or by hand) is stale. */
static void reap_stale(struct router *router)
{
    struct hv_domain *guests = NULL;
    size_t pos = 0, n = 0;
    const char *key;
    void *value;

    while (strmap_next(router->domains, &pos, &key, &value) == 0)
        domain_reap_stale(value);
    /* The policy's guests are their workers' business; the others are swept here. */
    if (!router->complete || router->closing || !router->hv->ops->list_domains ||
        router->hv->ops->list_domains(router->hv, &guests, &n) < 0) {
        free(guests);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!router_domain(router, guests[i].name))
            sweep_guest(router, &guests[i]);
    free(guests);
}

void router_device_removed(struct router *router, const char *devpath)
{
    struct dev_entry *entry = strmap_remove(router->devices, devpath);

    if (!entry) {
        log_debug("%s: removed, but not one of ours", devpath);
        return;
    }
    entry->unplugged = true;
    /* A decision by hand ends with the device: the state file forgets it. */
    if (entry->override)
        router_changed(router);
    if (entry->held || entry->pending) {
        /* Never given to its guest: nothing to take back. */
        report(router, EVENT_REMOVE, entry->held ? "hold" : "none", entry, entry->domain);
        set_held(router, entry, false);
    } else if (entry->decision == DECISION_ATTACH) {
        report(router, EVENT_REMOVE, "detach", entry, entry->domain);
        domain_detach(entry->domain, entry);
    } else {
        report(router, EVENT_REMOVE, decision_action(entry->decision), entry, NULL);
    }
    dev_entry_unref(entry);
    reap_stale(router);
    schedule_gc(router);
}

void router_keyboard_added(struct router *router, const char *devpath)
{
    if (strmap_get(router->keyboards, devpath))
        return;
    if (strmap_put(router->keyboards, devpath, router, NULL) < 0) {
        log_error("%s: out of memory: keyboard not counted", devpath);
        return;
    }
    if (!router->keyboards_before || !strmap_get(router->keyboards_before, devpath))
        log_info("dom0 keyboard %s", devpath);
    release_held(router, EVENT_ADD);
}

void router_keyboard_removed(struct router *router, const char *devpath)
{
    if (strmap_remove(router->keyboards, devpath))
        log_info("dom0 keyboard %s is gone", devpath);
}

size_t router_keyboards(const struct router *router)
{
    return strmap_size(router->keyboards);
}

void router_entry_released(struct router *router, struct dev_entry *entry)
{
    schedule_gc(router);
    if (entry->unplugged || entry->decision != DECISION_ATTACH || !entry->domain)
        return;
    /* Held by the guard when a reload moved it: is it still dom0's last keyboard? */
    if (entry->held) {
        if (!guarded(router, entry) || router_dom0_keeps_keyboard(router, entry))
            route(router, entry, EVENT_RELOAD);
        return;
    }
    /* Moved to another guest (or back) while it was being taken out. */
    domain_attach(entry->domain, entry);
}

void router_coldplug_done(struct router *router)
{
    struct dev_entry **entries;
    size_t n;

    router->complete = true;
    /*
     * The keyboards found at start, now that all are known, in port order:
     * first those that are nothing but HID (the first one judged is the one
     * held), then those with other interfaces too (a security key that types
     * its codes is no keyboard to log in with).
     */
    n = router_devices(router, &entries);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if (entries[i]->pending && only_hid(entries[i]->dev) == (pass == 0)) {
                entries[i]->pending = false;
                route(router, entries[i], EVENT_PRESENT);
            }
    free(entries);
    reap_stale(router);
}

void router_rescan_begin(struct router *router)
{
    struct strmap *fresh = strmap_new();

    router->scan++;
    /* The keyboards found again go to a new map; the old one says which are gone. */
    if (fresh && !router->keyboards_before) {
        router->keyboards_before = router->keyboards;
        router->keyboards = fresh;
    } else {
        strmap_free(fresh, NULL);
    }
}

void router_rescan_done(struct router *router)
{
    struct dev_entry **entries;
    size_t n = router_devices(router, &entries);

    /* Each removal frees only its own entry: the others stay valid. */
    for (size_t i = 0; i < n; i++) {
        if (entries[i]->scan == router->scan)
            continue;
        log_info("%s: gone while uevents were lost", entries[i]->dev->port);
        router_device_removed(router, entries[i]->dev->devpath);
    }
    free(entries);
    if (router->keyboards_before) {
        size_t pos = 0;
        const char *key;
        void *value;

        while (strmap_next(router->keyboards_before, &pos, &key, &value) == 0)
            if (!strmap_get(router->keyboards, key))
                log_info("dom0 keyboard %s is gone (while uevents were lost)", key);
        strmap_free(router->keyboards_before, NULL);
        router->keyboards_before = NULL;
    }
    /* As at start: what a guest holds of a device that went unseen is stale. */
    reap_stale(router);
}

bool router_complete(const struct router *router)
{
    return router->complete;
}

bool router_port_present(const struct router *router, const char *busid)
{
    size_t pos = 0;
    const char *key;
    void *value;

    while (strmap_next(router->devices, &pos, &key, &value) == 0)
        if (strcmp(((struct dev_entry *)value)->dev->port, busid) == 0)
            return true;
    return false;
}

static int cmp_port(const void *a, const void *b)
{
    const struct dev_entry *x = *(struct dev_entry *const *)a;
    const struct dev_entry *y = *(struct dev_entry *const *)b;

    return strcmp(x->dev->port, y->dev->port);
}

size_t router_devices(const struct router *router, struct dev_entry ***out)
{
    size_t n = strmap_size(router->devices), i = 0, pos = 0;
    struct dev_entry **entries = calloc(n ? n : 1, sizeof(*entries));
    const char *key;
    void *value;

    *out = entries;
    if (!entries)
        return 0;
    while (strmap_next(router->devices, &pos, &key, &value) == 0)
        entries[i++] = value;
    /* Port order: the same change always prints the same lines. */
    qsort(entries, n, sizeof(*entries), cmp_port);
    return n;
}

/*
 * Moves entry after its decision changed from (old, old_dom), made by rule
 * old_rule (old_name): reported as event, a detach naming the rule that
 * attached the device, as an unplug does.
 */
static void apply(struct router *router, struct dev_entry *e, enum decision old,
                  struct domain *old_dom, const struct old_rule *old_rule,
                  enum router_event event)
{
    if (old == e->decision && old_dom == e->domain)
        return;
    if (e->held || e->pending) {
        /* Never given to its guest: it leaves dom0 from here, if at all. */
        set_held(router, e, false);
        e->pending = false;
        old = DECISION_NONE;
        old_dom = NULL;
        if (e->state != DEV_IDLE) {
            /* Still on its way out of a guest it had before: it goes on once out. */
            if (e->decision != DECISION_ATTACH)
                report(router, event, decision_action(e->decision), e, NULL);
            else if (!keep_last_keyboard(router, e, event))
                report(router, event, "attach", e, e->domain);
            return;
        }
    }
    if (old == DECISION_ATTACH)
        report_rule(router, event, "detach", e, old_dom, old_rule);
    if (old == DECISION_ATTACH && e->state != DEV_IDLE) {
        /*
         * Released by the old guest, it goes on to the new one through dom0:
         * the guard looks at it as at any keyboard leaving dom0.
         */
        if (e->decision != DECISION_ATTACH)
            report(router, event, decision_action(e->decision), e, NULL);
        else if (!keep_last_keyboard(router, e, event))
            report(router, event, "attach", e, e->domain);
        domain_detach(old_dom, e);
    } else if (e->decision == DECISION_ATTACH) {
        route(router, e, event);
    } else {
        report(router, event, decision_action(e->decision), e, NULL);
    }
}

void router_set_policy(struct router *router, struct policy *policy)
{
    struct dev_entry **entries;
    size_t n;

    policy_free(router->policy);
    router->policy = policy;
    sync_domains(router);
    n = router_devices(router, &entries);
    if (!entries) {
        log_error("out of memory: devices keep their old decisions");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct dev_entry *e = entries[i];
        enum decision old = e->decision;
        struct domain *old_dom = e->domain;
        struct old_rule old_rule;

        /* A manual attach or detach holds until the device is unplugged. */
        if (e->override)
            continue;
        if (old_rule_take(&old_rule, e) < 0)
            fatal("out of memory");
        if (decide(router, e) < 0) {
            log_error("%s: out of memory: decision kept", e->dev->port);
            old_rule_clear(&old_rule);
            continue;
        }
        apply(router, e, old, old_dom, &old_rule, EVENT_RELOAD);
        old_rule_clear(&old_rule);
    }
    free(entries);
    /* The new policy may allow what the old one held back. */
    release_held(router, EVENT_RELOAD);
    schedule_gc(router);
}

void router_policy_unchanged(struct router *router)
{
    /* Each worker takes the same settings again, which tries its parked devices. */
    sync_domains(router);
}

/* Parses "B:D" with decimal bus and device numbers. */
static bool parse_busdev(const char *spec, unsigned *bus, unsigned *dev)
{
    char tail;

    return strlen(spec) <= 7 && strspn(spec, "0123456789:") == strlen(spec) &&
           sscanf(spec, "%u:%u%c", bus, dev, &tail) == 2;
}

struct dev_entry *router_find(const struct router *router, const char *spec,
                              const char **why)
{
    struct dev_entry **entries, *found = NULL;
    unsigned bus, dev, depth, vendor, product;
    bool by_id = false, by_busdev = false;
    size_t n, matches = 0;
    char tail;

    *why = NULL;
    by_busdev = parse_busdev(spec, &bus, &dev);
    by_id = !by_busdev && strlen(spec) == 9 && spec[4] == ':' &&
            strspn(spec, "0123456789abcdefABCDEF:") == 9 &&
            sscanf(spec, "%4x:%4x%c", &vendor, &product, &tail) == 2;
    if (!by_busdev && !by_id && device_port_parse(spec, &bus, &depth) < 0) {
        *why = "expected a port path (1-1.2), bus:device (1:5) or vendor:product (1050:0407)";
        return NULL;
    }
    n = router_devices(router, &entries);
    for (size_t i = 0; i < n; i++) {
        const struct usb_device *d = entries[i]->dev;
        bool hit = by_busdev ? d->busnum == bus && d->devnum == dev
                   : by_id   ? d->vendor == vendor && d->product == product
                             : strcmp(d->port, spec) == 0;

        if (hit && matches++ == 0)
            found = entries[i];
    }
    free(entries);
    if (matches > 1) {
        *why = "more than one device has that vendor:product: name it by port";
        return NULL;
    }
    if (!found)
        *why = "no such device is plugged in";
    return found;
}

/*
 * The worker of domain, for a device placed by hand: a guest the policy does
 * not name gets one while it runs.  0, -ESRCH (no such guest runs), -ENOMEM.
 */
static int hand_domain(struct router *router, const char *domain, struct domain **out)
{
    struct domain *dom = router_domain(router, domain);

    if (!dom) {
        int domid = router->hv->ops->domain_lookup(router->hv, domain);

        /* No worker waits for a guest nothing says will ever run. */
        if (domid < 0)
            return domid == -ENOENT ? -ESRCH : domid;
        /* A guest the policy does not name gets the default settings. */
        dom = domain_new(router->loop, router->hv, router, domain,
                         &policy_default_controller);
        if (!dom || strmap_put(router->domains, domain, dom, NULL) < 0) {
            domain_free(dom);
            return -ENOMEM;
        }
        domain_probe(dom);
    }
    *out = dom;
    return 0;
}

void router_set_overrides(struct router *router, struct state_record *records, size_t n)
{
    free(router->overrides);
    router->overrides = records;
    router->n_overrides = n;
}

/*
 * A device found at start that the last run was told by hand where to put:
 * the same device (place, bus and device number, id and serial; a device
 * plugged in again has another number) is decided so again.
 */
static void restore_override(struct router *router, struct dev_entry *e)
{
    const char *serial = e->dev->serial ? e->dev->serial : "";
    struct domain *dom = NULL;
    char id[10], *name;

    device_id_string(e->dev, id);
    for (size_t i = 0; i < router->n_overrides; i++) {
        const struct state_record *r = &router->overrides[i];

        if (strcmp(r->busid, e->dev->port) != 0 || r->busnum != e->dev->busnum ||
            r->devnum != e->dev->devnum || strcmp(r->id, id) != 0 ||
            strcmp(r->serial, serial) != 0)
            continue;
        if (r->domain[0] && hand_domain(router, r->domain, &dom) < 0) {
            log_warnx("%s: attached to %s by hand before the restart, but no guest of that "
                      "name runs now: decided by the policy", e->dev->port, r->domain);
            return;
        }
        name = strdup(r->domain[0] ? "manual attach" : "manual detach");
        if (!name)
            return;     /* decided by the policy, as if never asked */
        free(e->rule_name);
        e->rule_name = name;
        free(e->rule_file);
        e->rule_file = NULL;
        e->rule_line = 0;
        e->rule_dropin = false;
        e->rule = 0;
        e->override = true;
        e->decision = dom ? DECISION_ATTACH : DECISION_NONE;
        e->domain = dom;
        log_notice("%s: %s by hand before the restart, until it is unplugged", e->dev->port,
                   dom ? "attached" : "kept in dom0");
        return;
    }
}

int router_override(struct router *router, struct dev_entry *e, const char *domain)
{
    enum decision old = e->decision;
    struct domain *old_dom = e->domain, *dom = NULL;
    struct old_rule old_rule;
    char *name = NULL;

    if (domain) {
        int r = hand_domain(router, domain, &dom);

        if (r < 0)
            return r;
    }
    name = strdup(domain ? "manual attach" : "manual detach");
    if (!name)
        return -ENOMEM;
    /* The entry's strings become the old rule's: nothing to copy. */
    old_rule = (struct old_rule){ .rule = e->rule, .name = e->rule_name, .file = e->rule_file,
                                  .line = e->rule_line, .dropin = e->rule_dropin };
    e->rule_name = name;
    e->rule_file = NULL;
    e->rule_line = 0;
    e->rule_dropin = false;
    e->rule = 0;
    e->override = true;
    e->decision = domain ? DECISION_ATTACH : DECISION_NONE;
    e->domain = dom;
    apply(router, e, old, old_dom, &old_rule, EVENT_MANUAL);
    old_rule_clear(&old_rule);
    release_held(router, EVENT_MANUAL);
    /* The state file keeps the decision for a restarted daemon. */
    router_changed(router);
    return 0;
}

size_t router_domain_list(const struct router *router, struct domain ***out)
{
    size_t n = strmap_size(router->domains), i = 0, pos = 0;
    struct domain **list = calloc(n ? n : 1, sizeof(*list));
    const char *key;
    void *value;

    *out = list;
    if (!list)
        return 0;
    while (strmap_next(router->domains, &pos, &key, &value) == 0)
        list[i++] = value;
    return n;
}

void router_set_state_hook(struct router *router, void (*fn)(void *arg), void *arg)
{
    router->state_fn = fn;
    router->state_arg = arg;
}

void router_changed(struct router *router)
{
    if (router->state_fn)
        router->state_fn(router->state_arg);
}

void router_set_previous(struct router *router, struct state_record *records, size_t n)
{
    free(router->previous);
    router->previous = records;
    router->n_previous = n;
}

bool router_previous_busdev(const struct router *router, const char *domain, int ctrl,
                            int port, const char *busid, unsigned *busnum, unsigned *devnum)
{
    for (size_t i = 0; i < router->n_previous; i++) {
        const struct state_record *r = &router->previous[i];

        if (strcmp(r->domain, domain) == 0 && r->ctrl == ctrl && r->port == port &&
            strcmp(r->busid, busid) == 0) {
            *busnum = r->busnum;
            *devnum = r->devnum;
            return true;
        }
    }
    return false;
}

/*
 * Unit tests of the router (src/router.c) driving real domain workers
 * (src/domain.c) and the dry-run backend (src/hv-dryrun.c) on a private
 * libev loop.
 *
 * A decision callback records every report (and the line report_format
 * prints for it).  Covered: add and remove decisions and their fields,
 * present (cold plug) events, hubs never routed, removes of unknown devices
 * ignored, duplicate adds ignored, a new device at a known place, reloads
 * that move a device (detach naming the rule that attached it, then attach,
 * event reload) and leave unchanged devices alone, controller capacity (a device waits for a free
 * port), a guest restart, and the references left after a shutdown with
 * work in flight (run the binary under valgrind too).  Stale ports of a
 * guest the policy does not name (a backend that lists every guest): swept
 * at the end of the cold plug and at each unplug, once while in flight, a
 * device still plugged in left alone, a guest the policy names left to its
 * worker.  The lock-out guard (a keyboard leaves dom0 only when dom0 keeps
 * another): held, released by a keyboard plugged in later or by a reload,
 * decided at the end of the cold plug, allowed by the policy, overridden by
 * hand, and not applied to what a guest already had.  Placement by speed
 * (a guest's own EHCI keeps high-speed devices, an xHCI is made for the
 * others; a device no allowed controller takes fails once, untried, until
 * a reload), failures retrying cannot mend (parked until a reload) and
 * those it can (retried), and a controller found after a failed creation.
 * The main fixture has a laptop keyboard, so that the
 * other tests route keyboards (the YubiKey is one: OTP) freely.
 */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"
#include "domain.h"
#include "hv.h"
#include "log.h"
#include "policy.h"
#include "report.h"
#include "router.h"
#include "state.h"

#include "router-fixture.h"
#include "unit.h"

#define MAX_RECS 64

struct rec {
    enum router_event event;
    char action[16];
    char port[32];
    char domain[32];        /* "" when the report had none */
    unsigned rule;
    char rule_name[64];     /* "" when the rule had none */
    char line[512];         /* as --dry-run prints it */
};

struct fx {
    struct ev_loop *loop;
    struct hv *hv;
    struct router *router;
    struct rec recs[MAX_RECS];
    size_t n;
};

static const char policy_text[] = ROUTER_FIXTURE_POLICY("keyboards stay in dom0");

/* ---- the fixture ---- */

static void record(void *arg, const struct decision_report *r)
{
    struct fx *fx = arg;
    struct rec *rec;

    assert_true(fx->n < MAX_RECS);
    rec = &fx->recs[fx->n++];
    rec->event = r->event;
    snprintf(rec->action, sizeof(rec->action), "%s", r->action);
    snprintf(rec->port, sizeof(rec->port), "%s", r->dev->port);
    snprintf(rec->domain, sizeof(rec->domain), "%s", r->domain ? r->domain : "");
    rec->rule = r->rule;
    snprintf(rec->rule_name, sizeof(rec->rule_name), "%s", r->rule_name ? r->rule_name : "");
    report_format(r, rec->line, sizeof(rec->line));
}

#define LAPTOP_KBD "/devices/platform/i8042/serio0/input/input3"

static const char guard_policy[] =
    "version: 1\n"
    "domains:\n"
    "  vault: {}\n"
    "  sys-usb: {}\n"
    "rules:\n"
    "  - name: bus 3 may go\n"
    "    match: {hub: usb3}\n"
    "    domain: sys-usb\n"
    "    allow-dom0-lockout: true\n"
    "  - name: bus 1 goes\n"
    "    match: {hub: usb1}\n"
    "    domain: sys-usb\n";

/* The loop and the dry-run backend, no router yet. */
static int new_fx(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    *state = fx;
    fx->loop = ev_loop_new(0);
    fx->hv = fx->loop ? hv_dryrun_new(fx->loop) : NULL;
    return fx->hv ? 0 : -1;
}

static int start_router(struct fx *fx, const char *text, bool laptop_keyboard)
{
    fx->router = router_new(fx->loop, fx->hv, unit_policy(text), record, fx);
    if (!fx->router)
        return -1;
    if (laptop_keyboard)
        router_keyboard_added(fx->router, LAPTOP_KBD);
    return 0;
}

static int make_fx(void **state, const char *text, bool laptop_keyboard)
{
    if (new_fx(state) < 0)
        return -1;
    return start_router(*state, text, laptop_keyboard);
}

/* The main fixture: dom0 has a laptop keyboard, the start is over. */
static int setup(void **state)
{
    int r = make_fx(state, policy_text, true);

    if (r == 0)
        router_coldplug_done(((struct fx *)*state)->router);
    return r;
}

/* The guard's: no keyboard but USB ones; the cold plug is the test's. */
static int setup_guard(void **state)
{
    return make_fx(state, guard_policy, false);
}

/* The order hv.h asks for: no new work, cancel what is in flight, free. */
static void shutdown(struct fx *fx)
{
    if (!fx->router)
        return;
    router_close(fx->router);
    fx->hv->ops->free(fx->hv);
    router_free(fx->router);
    fx->router = NULL;
    fx->hv = NULL;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    shutdown(fx);
    ev_loop_destroy(fx->loop);
    free(fx);
    return 0;
}

/* Runs the loop until no watcher is left: every backend answer is in. */
static void settle(struct fx *fx)
{
    for (int i = 0; i < 1000; i++)
        if (!ev_run(fx->loop, EVRUN_NOWAIT))
            return;
    fail_msg("the loop did not settle");
}

static struct usb_device *make_dev(const char *port, unsigned devnum, uint16_t vendor,
                                   uint16_t product)
{
    char devpath[128];
    struct usb_device *dev;

    router_fixture_devpath(devpath, sizeof(devpath), port);
    dev = device_new(devpath, port);
    assert_non_null(dev);
    dev->busnum = (unsigned)(port[0] - '0');
    dev->devnum = devnum;
    dev->vendor = vendor;
    dev->product = product;
    /* Never the build machine's sysfs: the speed is the test's to give. */
    dev->speed = USB_SPEED_UNKNOWN;
    return dev;
}

static struct usb_device *at_speed(struct usb_device *dev, enum usb_speed speed)
{
    dev->speed = speed;
    return dev;
}

static struct usb_device *yubikey(const char *port, unsigned devnum)
{
    struct usb_device *dev = make_dev(port, devnum, 0x1050, 0x0407);

    assert_int_equal(device_set_str(&dev->serial, "0012345"), 0);
    assert_int_equal(device_set_str(&dev->manufacturer, "Yubico"), 0);
    assert_int_equal(device_set_str(&dev->product_name, "YubiKey OTP+FIDO+CCID"), 0);
    assert_int_equal(device_parse_interfaces(dev, ":030101:030000:0b0000:"), 3);
    return dev;
}

static struct usb_device *keyboard(const char *port, unsigned devnum)
{
    struct usb_device *dev = make_dev(port, devnum, 0x046d, 0xc31c);

    assert_int_equal(device_set_str(&dev->manufacturer, "Logitech"), 0);
    assert_int_equal(device_set_str(&dev->product_name, "USB Keyboard"), 0);
    assert_int_equal(device_parse_interfaces(dev, ":030101:030000:"), 2);
    return dev;
}

static struct usb_device *stick(const char *port, unsigned devnum)
{
    struct usb_device *dev = make_dev(port, devnum, 0x0781, 0x5581);

    assert_int_equal(device_set_str(&dev->serial, "4C530001"), 0);
    assert_int_equal(device_set_str(&dev->manufacturer, "SanDisk"), 0);
    assert_int_equal(device_set_str(&dev->product_name, "Ultra"), 0);
    assert_int_equal(device_parse_interfaces(dev, ":080650:"), 1);
    return dev;
}

static const char *devpath_of(const char *port)
{
    static char buf[128];

    router_fixture_devpath(buf, sizeof(buf), port);
    return buf;
}

static struct dev_entry *lookup(struct fx *fx, const char *port)
{
    return router_lookup(fx->router, devpath_of(port));
}

/*
 * Takes two references of our own on the entry at port, as a domain
 * operation would, so that it outlives the router and its count can be read.
 */
static struct dev_entry *hold(struct fx *fx, const char *port)
{
    struct dev_entry *e = lookup(fx, port);

    assert_non_null(e);
    e->refs += 2;
    return e;
}

/* Everyone else has let go: exactly our two references are left.  Frees it. */
static void assert_only_ours(struct dev_entry *e, const char *port)
{
    unsigned left = e->refs;

    if (left != 2)
        print_message("%s: %u references left, expected our 2\n", port, left);
    for (unsigned i = 0; i < left; i++)
        dev_entry_unref(e);
    assert_int_equal(left, 2);
}

static void add(struct fx *fx, struct usb_device *dev)
{
    router_device_added(fx->router, dev, EVENT_ADD);
}

static void removed(struct fx *fx, const char *port)
{
    router_device_removed(fx->router, devpath_of(port));
}

static void dump(const struct fx *fx)
{
    for (size_t i = 0; i < fx->n; i++)
        print_message("  rec[%zu] %s %s\n", i, report_event_name(fx->recs[i].event),
                      fx->recs[i].line);
}

static void assert_n_recs(const struct fx *fx, size_t n)
{
    if (fx->n != n)
        dump(fx);
    assert_int_equal(fx->n, n);
}

static void assert_rec(const struct fx *fx, size_t i, enum router_event event,
                       const char *action, const char *port, const char *domain,
                       unsigned rule)
{
    const struct rec *r;

    assert_true(i < fx->n);
    r = &fx->recs[i];
    if (r->event != event || strcmp(r->action, action) || strcmp(r->port, port) ||
        strcmp(r->domain, domain) || r->rule != rule)
        dump(fx);
    assert_string_equal(report_event_name(r->event), report_event_name(event));
    assert_string_equal(r->action, action);
    assert_string_equal(r->port, port);
    assert_string_equal(r->domain, domain);
    assert_int_equal(r->rule, rule);
}

static void assert_state(struct fx *fx, const char *port, enum dev_state state,
                         const char *domain)
{
    struct dev_entry *e = lookup(fx, port);

    assert_non_null(e);
    if (e->state != state)
        print_message("%s is %s\n", port, dev_state_name(e->state));
    assert_string_equal(dev_state_name(e->state), dev_state_name(state));
    if (domain)
        assert_ptr_equal(e->domain, router_domain(fx->router, domain));
    else
        assert_null(e->domain);
}

/* ---- add and remove ---- */

static void add_and_remove(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *e;

    add(fx, yubikey("1-2", 5));
    assert_n_recs(fx, 1);
    assert_rec(fx, 0, EVENT_ADD, "attach", "1-2", "vault", 1);
    assert_string_equal(fx->recs[0].rule_name, "yubikeys go to the vault");
    assert_string_equal(fx->recs[0].line,
                        "attach 1-2 1050:0407 \"Yubico YubiKey OTP+FIDO+CCID\" serial 0012345 "
                        "-> vault (rule 1 \"yubikeys go to the vault\")");
    /* Routed at once, attached when the backend has answered. */
    e = lookup(fx, "1-2");
    assert_non_null(e);
    assert_int_equal(e->decision, DECISION_ATTACH);
    assert_int_equal(e->rule, 1);
    assert_string_equal(e->rule_name, "yubikeys go to the vault");
    settle(fx);
    assert_state(fx, "1-2", DEV_ATTACHED, "vault");
    assert_true(e->ctrl >= 0);
    assert_int_equal(e->port, 1);
    assert_true(domain_running(router_domain(fx->router, "vault")));

    removed(fx, "1-2");
    assert_n_recs(fx, 2);
    assert_rec(fx, 1, EVENT_REMOVE, "detach", "1-2", "vault", 1);
    assert_string_equal(fx->recs[1].line,
                        "detach 1-2 1050:0407 \"Yubico YubiKey OTP+FIDO+CCID\" serial 0012345 "
                        "<- vault (rule 1 \"yubikeys go to the vault\")");
    assert_null(lookup(fx, "1-2"));
    settle(fx);
    assert_n_recs(fx, 2);
}

static void ignore_none_and_present(void **state)
{
    struct fx *fx = *state;

    router_device_added(fx->router, keyboard("3-1", 2), EVENT_PRESENT);
    router_device_added(fx->router, make_dev("5-1", 3, 0xabcd, 0x00ef), EVENT_PRESENT);
    add(fx, stick("1-1.3", 4));
    settle(fx);
    assert_n_recs(fx, 3);
    assert_rec(fx, 0, EVENT_PRESENT, "ignore", "3-1", "", 2);
    assert_string_equal(fx->recs[0].line, "ignore 3-1 046d:c31c \"Logitech USB Keyboard\" "
                                          "(rule 2 \"keyboards stay in dom0\")");
    assert_rec(fx, 1, EVENT_PRESENT, "none", "5-1", "", 0);
    assert_string_equal(fx->recs[1].rule_name, "");
    assert_string_equal(fx->recs[1].line, "none 5-1 abcd:00ef \"\" (no rule matched)");
    assert_rec(fx, 2, EVENT_ADD, "attach", "1-1.3", "win10", 3);
    assert_string_equal(fx->recs[2].line, "attach 1-1.3 0781:5581 \"SanDisk Ultra\" serial "
                                          "4C530001 -> win10 (rule 3)");
    assert_state(fx, "3-1", DEV_IDLE, NULL);
    assert_int_equal(lookup(fx, "3-1")->decision, DECISION_IGNORE);
    assert_state(fx, "5-1", DEV_IDLE, NULL);
    assert_int_equal(lookup(fx, "5-1")->decision, DECISION_NONE);
    assert_state(fx, "1-1.3", DEV_ATTACHED, "win10");

    /* Removes repeat the decision the device had. */
    removed(fx, "3-1");
    removed(fx, "5-1");
    removed(fx, "1-1.3");
    assert_n_recs(fx, 6);
    assert_rec(fx, 3, EVENT_REMOVE, "ignore", "3-1", "", 2);
    assert_rec(fx, 4, EVENT_REMOVE, "none", "5-1", "", 0);
    assert_rec(fx, 5, EVENT_REMOVE, "detach", "1-1.3", "win10", 3);
    settle(fx);
    assert_null(lookup(fx, "1-1.3"));
}

static void hub_never_routed(void **state)
{
    struct fx *fx = *state;
    struct usb_device *hub = make_dev("1-1", 2, 0x05e3, 0x0608);

    /* A hub below a hub that a rule routes, and a root hub's port path. */
    hub->dev_class = (struct usb_class){ USB_CLASS_HUB, 0, 1 };
    add(fx, hub);
    hub = make_dev("1-1.4", 3, 0x05e3, 0x0608);
    hub->dev_class = (struct usb_class){ USB_CLASS_HUB, 0, 2 };
    add(fx, hub);
    settle(fx);
    assert_n_recs(fx, 0);
    assert_null(lookup(fx, "1-1"));
    assert_null(lookup(fx, "1-1.4"));
    removed(fx, "1-1.4");
    assert_n_recs(fx, 0);
}

static void remove_unknown_ignored(void **state)
{
    struct fx *fx = *state;

    removed(fx, "1-7");
    router_device_removed(fx->router, "/devices/nowhere");
    assert_n_recs(fx, 0);
    /* Removing twice reports once. */
    add(fx, keyboard("3-1", 2));
    removed(fx, "3-1");
    removed(fx, "3-1");
    assert_n_recs(fx, 2);
    settle(fx);
}

static void duplicate_add_ignored(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *e;

    add(fx, yubikey("1-2", 5));
    settle(fx);
    e = lookup(fx, "1-2");
    /* The enumeration and the monitor both saw it: the second is dropped. */
    router_device_added(fx->router, yubikey("1-2", 5), EVENT_PRESENT);
    add(fx, yubikey("1-2", 5));
    settle(fx);
    assert_n_recs(fx, 1);
    assert_ptr_equal(lookup(fx, "1-2"), e);
    assert_state(fx, "1-2", DEV_ATTACHED, "vault");
}

/* The remove was lost: another device (a new devnum) at the same place. */
static void new_device_at_known_place(void **state)
{
    struct fx *fx = *state;

    add(fx, yubikey("1-2", 5));
    settle(fx);
    add(fx, keyboard("1-2", 6));
    settle(fx);
    assert_n_recs(fx, 3);
    assert_rec(fx, 0, EVENT_ADD, "attach", "1-2", "vault", 1);
    assert_rec(fx, 1, EVENT_REMOVE, "detach", "1-2", "vault", 1);
    assert_rec(fx, 2, EVENT_ADD, "ignore", "1-2", "", 2);
    assert_state(fx, "1-2", DEV_IDLE, NULL);
    assert_int_equal(lookup(fx, "1-2")->dev->devnum, 6);
}

/*
 * Uevents were lost: the rescan's sweep removes what was not found again,
 * a device found again stays as it is, twice in a row.
 */
static void rescan_sweeps_what_is_gone(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *kept;

    add(fx, yubikey("1-2", 5));
    add(fx, stick("1-1.1", 7));
    add(fx, stick("1-1.2", 8));
    settle(fx);
    kept = lookup(fx, "1-1.1");
    fx->n = 0;

    router_rescan_begin(fx->router);
    router_keyboard_added(fx->router, LAPTOP_KBD);      /* listed first, as udev-source does */
    router_device_added(fx->router, stick("1-1.1", 7), EVENT_ADD);
    router_device_added(fx->router, yubikey("1-2", 9), EVENT_ADD);
    router_rescan_done(fx->router);
    settle(fx);
    assert_n_recs(fx, 3);
    assert_rec(fx, 0, EVENT_REMOVE, "detach", "1-2", "vault", 1);
    assert_rec(fx, 1, EVENT_ADD, "attach", "1-2", "vault", 1);
    assert_rec(fx, 2, EVENT_REMOVE, "detach", "1-1.2", "win10", 3);
    assert_null(lookup(fx, "1-1.2"));
    assert_ptr_equal(lookup(fx, "1-1.1"), kept);
    assert_state(fx, "1-1.1", DEV_ATTACHED, "win10");
    assert_int_equal(lookup(fx, "1-2")->dev->devnum, 9);
    assert_state(fx, "1-2", DEV_ATTACHED, "vault");

    /* A second overrun: what the first one found must be found again. */
    fx->n = 0;
    router_rescan_begin(fx->router);
    router_keyboard_added(fx->router, LAPTOP_KBD);
    router_device_added(fx->router, yubikey("1-2", 9), EVENT_ADD);
    router_rescan_done(fx->router);
    settle(fx);
    assert_n_recs(fx, 1);
    assert_rec(fx, 0, EVENT_REMOVE, "detach", "1-1.1", "win10", 3);
    assert_null(lookup(fx, "1-1.1"));
    assert_state(fx, "1-2", DEV_ATTACHED, "vault");
}

/* ---- reload ---- */

static void reload_moves_only_changed(void **state)
{
    static const char moved[] =
        "version: 1\n"
        "domains: {vault: {}, win10: {}}\n"
        "rules:\n"
        "  - match: {hub: \"1-1\"}\n"
        "    domain: win10\n"
        "  - name: keys to windows\n"
        "    match: {id: \"1050:0407\"}\n"
        "    domain: win10\n"
        "  - match: {interface-class: hid}\n"
        "    domain: vault\n";
    struct fx *fx = *state;

    add(fx, yubikey("1-2", 5));
    add(fx, keyboard("3-1", 6));
    add(fx, stick("1-1.3", 7));
    add(fx, make_dev("5-1", 8, 0xabcd, 0x00ef));
    settle(fx);
    assert_n_recs(fx, 4);
    fx->n = 0;

    /*
     * The YubiKey moves from vault to win10, the keyboard goes from ignore to
     * vault, the stick keeps win10 (by another rule number), the unmatched
     * device stays unmatched.
     */
    router_set_policy(fx->router, unit_policy(moved));
    /* In port order: 1-2, then 3-1. */
    assert_n_recs(fx, 3);
    /* The detach names the rule that attached it, as an unplug does. */
    assert_rec(fx, 0, EVENT_RELOAD, "detach", "1-2", "vault", 1);
    assert_string_equal(fx->recs[0].line,
                        "detach 1-2 1050:0407 \"Yubico YubiKey OTP+FIDO+CCID\" serial 0012345 "
                        "<- vault (rule 1 \"yubikeys go to the vault\")");
    assert_rec(fx, 1, EVENT_RELOAD, "attach", "1-2", "win10", 2);
    assert_string_equal(fx->recs[1].rule_name, "keys to windows");
    assert_rec(fx, 2, EVENT_RELOAD, "attach", "3-1", "vault", 3);
    settle(fx);
    assert_n_recs(fx, 3);
    assert_state(fx, "1-2", DEV_ATTACHED, "win10");
    assert_state(fx, "3-1", DEV_ATTACHED, "vault");
    assert_state(fx, "1-1.3", DEV_ATTACHED, "win10");
    assert_int_equal(lookup(fx, "1-1.3")->rule, 1);
    assert_state(fx, "5-1", DEV_IDLE, NULL);

    /* The same policy again: nothing to say, nothing moves. */
    fx->n = 0;
    router_set_policy(fx->router, unit_policy(moved));
    settle(fx);
    assert_n_recs(fx, 0);
    assert_state(fx, "1-2", DEV_ATTACHED, "win10");
}

/* A reload prints its lines in port order, whatever the order of the table. */
static void reload_reports_in_port_order(void **state)
{
    static const char *const added[] = { "3-2", "1-5", "2-7", "1-4", "1-2", "1-3" };
    static const char *const sorted[] = { "1-2", "1-3", "1-4", "1-5", "2-7", "3-2" };
    struct fx *fx = *state;

    for (unsigned i = 0; i < 6; i++)
        add(fx, yubikey(added[i], 10 + i));
    settle(fx);
    fx->n = 0;
    router_set_policy(fx->router, unit_policy("version: 1\n"
                                              "domains: {win10: {}}\n"
                                              "rules:\n"
                                              "  - match: {vendor: \"1050\"}\n"
                                              "    domain: win10\n"));
    assert_n_recs(fx, 12);
    for (unsigned i = 0; i < 6; i++) {
        assert_rec(fx, 2 * i, EVENT_RELOAD, "detach", sorted[i], "vault", 1);
        assert_rec(fx, 2 * i + 1, EVENT_RELOAD, "attach", sorted[i], "win10", 1);
    }
    settle(fx);
    for (unsigned i = 0; i < 6; i++)
        assert_state(fx, sorted[i], DEV_ATTACHED, "win10");
}

/* A routed device that no rule wants any more: detach, then none. */
static void reload_to_none(void **state)
{
    struct fx *fx = *state;

    add(fx, yubikey("1-2", 5));
    settle(fx);
    fx->n = 0;
    router_set_policy(fx->router, unit_policy("version: 1\ndomains: {vault: {}}\n"));
    assert_n_recs(fx, 2);
    assert_rec(fx, 0, EVENT_RELOAD, "detach", "1-2", "vault", 1);
    assert_string_equal(fx->recs[0].rule_name, "yubikeys go to the vault");
    assert_rec(fx, 1, EVENT_RELOAD, "none", "1-2", "", 0);
    settle(fx);
    assert_state(fx, "1-2", DEV_IDLE, NULL);
    assert_int_equal(lookup(fx, "1-2")->decision, DECISION_NONE);
}

/* A reload before the backend has answered still ends in the right guest. */
static void reload_while_attaching(void **state)
{
    struct fx *fx = *state;

    add(fx, yubikey("1-2", 5));
    router_set_policy(fx->router, unit_policy("version: 1\n"
                                              "domains: {vault: {}, other: {}}\n"
                                              "rules:\n"
                                              "  - match: {vendor: \"1050\"}\n"
                                              "    domain: other\n"));
    settle(fx);
    assert_n_recs(fx, 3);
    assert_rec(fx, 1, EVENT_RELOAD, "detach", "1-2", "vault", 1);
    assert_rec(fx, 2, EVENT_RELOAD, "attach", "1-2", "other", 1);
    assert_state(fx, "1-2", DEV_ATTACHED, "other");
}

/* ---- capacity ---- */

static void waits_for_a_free_port(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *first, *third;
    int ctrl, port;

    /* small: one controller of version 1 (2 ports) at most. */
    add(fx, stick("2-1.1", 11));
    add(fx, stick("2-1.2", 12));
    add(fx, stick("2-1.3", 13));
    settle(fx);
    assert_n_recs(fx, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(fx->recs[i].domain, "small");
    assert_state(fx, "2-1.1", DEV_ATTACHED, "small");
    assert_state(fx, "2-1.2", DEV_ATTACHED, "small");
    assert_state(fx, "2-1.3", DEV_WAITING, "small");
    first = lookup(fx, "2-1.1");
    third = lookup(fx, "2-1.3");
    assert_int_equal(lookup(fx, "2-1.2")->ctrl, first->ctrl);
    assert_int_not_equal(lookup(fx, "2-1.2")->port, first->port);
    assert_true(third->queued);
    ctrl = first->ctrl;
    port = first->port;

    removed(fx, "2-1.1");
    settle(fx);
    assert_state(fx, "2-1.3", DEV_ATTACHED, "small");
    assert_int_equal(third->ctrl, ctrl);
    assert_int_equal(third->port, port);
    assert_false(third->queued);
    assert_n_recs(fx, 4);
    assert_rec(fx, 3, EVENT_REMOVE, "detach", "2-1.1", "small", 4);
}

/* A guest that stops and comes back gets its devices again. */
static void guest_restart(void **state)
{
    struct fx *fx = *state;
    struct domain *vault = router_domain(fx->router, "vault");
    int domid;

    add(fx, yubikey("1-2", 5));
    settle(fx);
    domid = domain_domid(vault);
    assert_true(domid >= 0);
    domain_stopped(vault);
    assert_false(domain_running(vault));
    assert_state(fx, "1-2", DEV_WAITING, "vault");
    settle(fx);
    assert_state(fx, "1-2", DEV_WAITING, "vault");
    domain_started(vault, domid + 10);
    settle(fx);
    assert_state(fx, "1-2", DEV_ATTACHED, "vault");
    assert_int_equal(domain_domid(vault), domid + 10);
    /* Stops and starts are not decisions: nothing printed. */
    assert_n_recs(fx, 1);
}

/* ---- shutdown with work in flight ---- */

/*
 * At shutdown the table and the workers each give back their own references,
 * whatever is in flight: held entries end with our two references, no fewer
 * (a double release) and no more (a leak).
 */
static void shutdown_while_attaching(void **state)
{
    struct fx *fx = *state;
    static const char *const ports[] = { "1-2", "1-1.3", "2-1.1" };
    struct dev_entry *held[3];

    add(fx, yubikey("1-2", 5));
    add(fx, stick("1-1.3", 6));
    add(fx, stick("2-1.1", 7));
    /* Only the first backend answers are in. */
    ev_run(fx->loop, EVRUN_NOWAIT);
    assert_n_recs(fx, 3);
    for (int i = 0; i < 3; i++)
        held[i] = hold(fx, ports[i]);
    shutdown(fx);
    for (int i = 0; i < 3; i++)
        assert_only_ours(held[i], ports[i]);
}

static void shutdown_while_detaching(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *first, *second;

    add(fx, stick("2-1.1", 11));
    add(fx, stick("2-1.2", 12));
    settle(fx);
    assert_state(fx, "2-1.1", DEV_ATTACHED, "small");
    assert_state(fx, "2-1.2", DEV_ATTACHED, "small");
    first = hold(fx, "2-1.1");
    second = hold(fx, "2-1.2");
    /* One detach goes to the backend, the other waits behind it. */
    removed(fx, "2-1.1");
    removed(fx, "2-1.2");
    assert_n_recs(fx, 4);
    assert_int_equal(first->state, DEV_DETACHING);
    assert_int_equal(second->state, DEV_DETACHING);
    shutdown(fx);
    assert_only_ours(first, "2-1.1");
    assert_only_ours(second, "2-1.2");
}

static void remove_while_attaching(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *e;

    add(fx, yubikey("1-2", 5));
    ev_run(fx->loop, EVRUN_NOWAIT);
    e = hold(fx, "1-2");
    removed(fx, "1-2");
    settle(fx);
    assert_n_recs(fx, 2);
    assert_rec(fx, 1, EVENT_REMOVE, "detach", "1-2", "vault", 1);
    assert_null(lookup(fx, "1-2"));
    assert_string_equal(dev_state_name(e->state), "idle");
    assert_true(e->unplugged);
    assert_only_ours(e, "1-2");
    /* The port is free again: the next device gets it. */
    add(fx, yubikey("1-3", 6));
    settle(fx);
    assert_state(fx, "1-3", DEV_ATTACHED, "vault");
    assert_int_equal(lookup(fx, "1-3")->port, 1);
}

/* ---- stale ports in guests the policy does not name ---- */

#define OTHER_DOMID 50
#define MAX_DETACHES 8

/*
 * The dry-run backend seen through list_domains as libxl's is: two running
 * guests, "other" (not in the policy) and vault, with one controller each
 * whose ports a test fills before the router starts.  Each detach is
 * recorded; its port is emptied when it is answered (until then it still
 * names the device), and one of busid "1-7" is refused at once.  One test
 * runs at a time: the state is the file's.
 */
static struct {
    const struct hv_ops *dryrun;    /* the dry-run's own operations */
    struct hv_ops ops;              /* the same but for the three below */
    int vault;                      /* vault's domid in the dry-run */
    struct hv_controller other_ctrl;
    struct hv_controller vault_ctrl;
    struct {
        int domid, ctrl, port;
        char busid[32];
    } detaches[MAX_DETACHES];
    size_t n_detaches;
} stale;

struct stale_op {
    struct hv_port *port;
    hv_done_fn done;
    void *arg;
};

static struct hv_controller *stale_ctrl(int domid)
{
    return domid == OTHER_DOMID ? &stale.other_ctrl
           : domid == stale.vault ? &stale.vault_ctrl
                                  : NULL;
}

static int stale_list_domains(struct hv *hv, struct hv_domain **out, size_t *n)
{
    *out = calloc(2, sizeof(**out));
    assert_non_null(*out);
    (*out)[0].domid = OTHER_DOMID;
    snprintf((*out)[0].name, sizeof((*out)[0].name), "other");
    (*out)[1].domid = stale.vault;
    snprintf((*out)[1].name, sizeof((*out)[1].name), "vault");
    *n = 2;
    return 0;
}

static int stale_list_controllers(struct hv *hv, int domid, struct hv_controller **out,
                                  size_t *n)
{
    struct hv_controller *c = stale_ctrl(domid);

    if (!c)
        return stale.dryrun->list_controllers(hv, domid, out, n);
    *out = malloc(sizeof(**out));
    assert_non_null(*out);
    **out = *c;
    *n = 1;
    return 0;
}

static void stale_detached(void *arg, int err)
{
    struct stale_op *op = arg;

    if (err == 0 && op->port) {
        op->port->used = false;
        op->port->busid[0] = '\0';
    }
    op->done(op->arg, err);
    free(op);
}

static int stale_detach(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                        void *arg)
{
    struct hv_controller *c = stale_ctrl(domid);
    struct stale_op *op;
    int r;

    assert_true(stale.n_detaches < MAX_DETACHES);
    stale.detaches[stale.n_detaches].domid = domid;
    stale.detaches[stale.n_detaches].ctrl = usb->ctrl;
    stale.detaches[stale.n_detaches].port = usb->port;
    snprintf(stale.detaches[stale.n_detaches].busid, sizeof(stale.detaches[0].busid), "%s",
             usb->busid ? usb->busid : "");
    stale.n_detaches++;
    if (usb->busid && strcmp(usb->busid, "1-7") == 0)
        return -EIO;
    op = calloc(1, sizeof(*op));
    assert_non_null(op);
    op->done = done;
    op->arg = arg;
    if (c && c->id == usb->ctrl && usb->port >= 1 && usb->port <= c->n_ports)
        op->port = &c->ports[usb->port - 1];
    r = stale.dryrun->detach(hv, domid, usb, stale_detached, op);
    if (r < 0)
        free(op);
    return r;
}

/* The router is the test's to start, once the guests' ports are filled. */
static int setup_stale(void **state)
{
    struct fx *fx;

    if (new_fx(state) < 0)
        return -1;
    fx = *state;
    memset(&stale, 0, sizeof(stale));
    stale.dryrun = fx->hv->ops;
    stale.ops = *fx->hv->ops;
    stale.ops.list_domains = stale_list_domains;
    stale.ops.list_controllers = stale_list_controllers;
    stale.ops.detach = stale_detach;
    fx->hv->ops = &stale.ops;
    stale.vault = fx->hv->ops->domain_lookup(fx->hv, "vault");
    stale.other_ctrl = (struct hv_controller){ .id = 0, .version = 2, .n_ports = 6 };
    stale.vault_ctrl = stale.other_ctrl;
    return 0;
}

static int teardown_stale(void **state)
{
    struct fx *fx = *state;

    if (fx->hv && !fx->router)
        fx->hv->ops->free(fx->hv);
    return teardown(state);
}

static void stale_start(struct fx *fx)
{
    assert_int_equal(start_router(fx, policy_text, true), 0);
}

static void set_port(struct hv_controller *c, int port, const char *busid)
{
    c->ports[port - 1].used = true;
    snprintf(c->ports[port - 1].busid, sizeof(c->ports[0].busid), "%s", busid);
}

/* How many detaches were asked of domid's ctrl:port naming busid. */
static size_t detaches(int domid, int ctrl, int port, const char *busid)
{
    size_t n = 0;

    for (size_t i = 0; i < stale.n_detaches; i++)
        n += stale.detaches[i].domid == domid && stale.detaches[i].ctrl == ctrl &&
             stale.detaches[i].port == port && strcmp(stale.detaches[i].busid, busid) == 0;
    return n;
}

/*
 * At start, once the enumeration is over: what a guest the policy does not
 * name holds of a device not plugged in is removed, what it holds of one
 * plugged in stays; a guest the policy names is its worker's (one removal,
 * not two).  A removal the backend refuses is tried again at the next unplug.
 */
static void stale_swept_at_start(void **state)
{
    struct fx *fx = *state;

    set_port(&stale.other_ctrl, 1, "1-9");
    set_port(&stale.other_ctrl, 2, "3-1");
    set_port(&stale.other_ctrl, 3, "1-7");
    set_port(&stale.vault_ctrl, 1, "1-8");
    stale_start(fx);
    router_device_added(fx->router, stick("3-1", 2), EVENT_PRESENT);
    settle(fx);
    assert_int_equal(stale.n_detaches, 0);
    router_coldplug_done(fx->router);
    settle(fx);
    assert_int_equal(detaches(OTHER_DOMID, 0, 1, "1-9"), 1);
    assert_int_equal(detaches(OTHER_DOMID, 0, 3, "1-7"), 1);
    assert_int_equal(detaches(stale.vault, 0, 1, "1-8"), 1);
    assert_int_equal(stale.n_detaches, 3);
    assert_false(stale.other_ctrl.ports[0].used);
    assert_string_equal(stale.other_ctrl.ports[1].busid, "3-1");
    assert_string_equal(stale.other_ctrl.ports[2].busid, "1-7");

    add(fx, stick("3-2", 3));
    removed(fx, "3-2");
    settle(fx);
    assert_int_equal(detaches(OTHER_DOMID, 0, 3, "1-7"), 2);
    assert_int_equal(stale.n_detaches, 4);
    assert_string_equal(stale.other_ctrl.ports[1].busid, "3-1");
}

/*
 * A device a guest the policy does not name holds is unplugged: removed
 * from that guest, once, however many removals come while it is in flight.
 * A shutdown with one in flight cancels it (run under valgrind or ASan).
 */
static void stale_swept_on_removal(void **state)
{
    struct fx *fx = *state;

    set_port(&stale.other_ctrl, 1, "3-1");
    set_port(&stale.other_ctrl, 2, "3-2");
    stale_start(fx);
    router_device_added(fx->router, stick("3-1", 2), EVENT_PRESENT);
    router_device_added(fx->router, stick("3-2", 3), EVENT_PRESENT);
    router_coldplug_done(fx->router);
    settle(fx);
    assert_int_equal(stale.n_detaches, 0);

    removed(fx, "3-1");
    assert_int_equal(detaches(OTHER_DOMID, 0, 1, "3-1"), 1);
    add(fx, stick("3-3", 4));
    removed(fx, "3-3");
    assert_int_equal(stale.n_detaches, 1);
    settle(fx);
    assert_false(stale.other_ctrl.ports[0].used);
    assert_string_equal(stale.other_ctrl.ports[1].busid, "3-2");
    assert_int_equal(stale.n_detaches, 1);

    removed(fx, "3-2");
    assert_int_equal(detaches(OTHER_DOMID, 0, 2, "3-2"), 1);
    assert_int_equal(stale.n_detaches, 2);
}

/* ---- the lock-out guard ---- */

static void guard_holds_last_keyboard(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *e;

    router_coldplug_done(fx->router);
    add(fx, keyboard("1-1", 3));
    assert_n_recs(fx, 1);
    assert_rec(fx, 0, EVENT_ADD, "hold", "1-1", "sys-usb", 2);
    assert_string_equal(fx->recs[0].line,
                        "hold 1-1 046d:c31c \"Logitech USB Keyboard\" -> sys-usb "
                        "(rule 2 \"bus 1 goes\"): held in dom0, its last keyboard");
    e = lookup(fx, "1-1");
    assert_true(e->held);
    assert_int_equal(e->decision, DECISION_ATTACH);
    settle(fx);
    assert_state(fx, "1-1", DEV_IDLE, "sys-usb");
    /* What is not a keyboard goes as the rule says. */
    add(fx, stick("1-2", 4));
    assert_n_recs(fx, 2);
    assert_rec(fx, 1, EVENT_ADD, "attach", "1-2", "sys-usb", 2);
    settle(fx);
    assert_state(fx, "1-1", DEV_IDLE, "sys-usb");
    assert_false(router_dom0_keeps_keyboard(fx->router, e));
    assert_true(router_dom0_keeps_keyboard(fx->router, NULL));

    /* The laptop's keyboard shows up: dom0 keeps that one. */
    router_keyboard_added(fx->router, LAPTOP_KBD);
    assert_int_equal(router_keyboards(fx->router), 1);
    assert_n_recs(fx, 3);
    assert_rec(fx, 2, EVENT_ADD, "attach", "1-1", "sys-usb", 2);
    assert_false(e->held);
    settle(fx);
    assert_state(fx, "1-1", DEV_ATTACHED, "sys-usb");
    /* Once a guest has it, losing the other keyboard does not take it back. */
    router_keyboard_removed(fx->router, LAPTOP_KBD);
    assert_int_equal(router_keyboards(fx->router), 0);
    settle(fx);
    assert_n_recs(fx, 3);
    assert_state(fx, "1-1", DEV_ATTACHED, "sys-usb");
}

static void guard_second_keyboard_releases(void **state)
{
    struct fx *fx = *state;

    router_coldplug_done(fx->router);
    add(fx, keyboard("1-1", 3));
    assert_rec(fx, 0, EVENT_ADD, "hold", "1-1", "sys-usb", 2);
    /* A keyboard no rule takes (bus 2): dom0 keeps it, the held one goes. */
    add(fx, keyboard("2-1", 2));
    assert_n_recs(fx, 3);
    assert_rec(fx, 1, EVENT_ADD, "none", "2-1", "", 0);
    assert_rec(fx, 2, EVENT_ADD, "attach", "1-1", "sys-usb", 2);
    settle(fx);
    assert_state(fx, "1-1", DEV_ATTACHED, "sys-usb");
    assert_state(fx, "2-1", DEV_IDLE, NULL);
    /* A third one on bus 1 goes too: dom0 still has 2-1. */
    add(fx, keyboard("1-3", 5));
    assert_n_recs(fx, 4);
    assert_rec(fx, 3, EVENT_ADD, "attach", "1-3", "sys-usb", 2);
}

static void guard_unplug_held(void **state)
{
    struct fx *fx = *state;

    router_coldplug_done(fx->router);
    add(fx, keyboard("1-1", 3));
    removed(fx, "1-1");
    assert_n_recs(fx, 2);
    assert_rec(fx, 1, EVENT_REMOVE, "hold", "1-1", "sys-usb", 2);
    assert_null(lookup(fx, "1-1"));
    settle(fx);
    /* Nothing is left held: the next keyboard is judged on its own. */
    add(fx, keyboard("1-2", 4));
    assert_n_recs(fx, 3);
    assert_rec(fx, 2, EVENT_ADD, "hold", "1-2", "sys-usb", 2);
    add(fx, keyboard("2-1", 5));
    assert_n_recs(fx, 5);
    assert_rec(fx, 4, EVENT_ADD, "attach", "1-2", "sys-usb", 2);
}

static void guard_policy_allows(void **state)
{
    struct fx *fx = *state;

    router_coldplug_done(fx->router);
    add(fx, keyboard("3-1", 3));
    assert_n_recs(fx, 1);
    assert_rec(fx, 0, EVENT_ADD, "attach", "3-1", "sys-usb", 1);
    settle(fx);
    assert_state(fx, "3-1", DEV_ATTACHED, "sys-usb");
    /* 3-1 left dom0: a keyboard on bus 1 is now the last one. */
    add(fx, keyboard("1-1", 4));
    assert_n_recs(fx, 2);
    assert_rec(fx, 1, EVENT_ADD, "hold", "1-1", "sys-usb", 2);
}

/* At start every keyboard is known before any is judged, in port order. */
static void guard_coldplug(void **state)
{
    struct fx *fx = *state;

    router_device_added(fx->router, keyboard("1-2", 4), EVENT_PRESENT);
    router_device_added(fx->router, keyboard("1-1", 3), EVENT_PRESENT);
    router_device_added(fx->router, stick("1-3", 5), EVENT_PRESENT);
    assert_n_recs(fx, 1);
    assert_rec(fx, 0, EVENT_PRESENT, "attach", "1-3", "sys-usb", 2);
    router_coldplug_done(fx->router);
    assert_n_recs(fx, 3);
    assert_rec(fx, 1, EVENT_PRESENT, "hold", "1-1", "sys-usb", 2);
    assert_rec(fx, 2, EVENT_PRESENT, "attach", "1-2", "sys-usb", 2);
    settle(fx);
    assert_state(fx, "1-1", DEV_IDLE, "sys-usb");
    assert_state(fx, "1-2", DEV_ATTACHED, "sys-usb");
}

/* A security key with a keyboard interface is no keyboard to log in with: the real one is held. */
static void guard_coldplug_holds_the_real_keyboard(void **state)
{
    struct fx *fx = *state;

    router_device_added(fx->router, yubikey("1-1", 3), EVENT_PRESENT);
    router_device_added(fx->router, keyboard("1-2", 4), EVENT_PRESENT);
    router_coldplug_done(fx->router);
    assert_n_recs(fx, 2);
    assert_rec(fx, 0, EVENT_PRESENT, "hold", "1-2", "sys-usb", 2);
    assert_rec(fx, 1, EVENT_PRESENT, "attach", "1-1", "sys-usb", 2);
}

/* A keyboard no rule takes, found after the routed one: nothing is held. */
static void guard_coldplug_keeps_one(void **state)
{
    struct fx *fx = *state;

    router_device_added(fx->router, keyboard("1-1", 3), EVENT_PRESENT);
    router_device_added(fx->router, keyboard("2-1", 2), EVENT_PRESENT);
    router_coldplug_done(fx->router);
    assert_n_recs(fx, 2);
    assert_rec(fx, 0, EVENT_PRESENT, "none", "2-1", "", 0);
    assert_rec(fx, 1, EVENT_PRESENT, "attach", "1-1", "sys-usb", 2);
    assert_false(lookup(fx, "1-1")->held);
}

static void guard_reload(void **state)
{
    struct fx *fx = *state;
    char text[sizeof(guard_policy) + 64];

    router_coldplug_done(fx->router);
    add(fx, keyboard("1-1", 3));
    assert_true(lookup(fx, "1-1")->held);
    /* The same policy again: still held, nothing said. */
    router_set_policy(fx->router, unit_policy(guard_policy));
    assert_n_recs(fx, 1);
    assert_true(lookup(fx, "1-1")->held);
    /* The defaults allow it now: it goes. */
    snprintf(text, sizeof(text), "version: 1\ndefaults: {allow-dom0-lockout: true}\n%s",
             strstr(guard_policy, "domains:"));
    router_set_policy(fx->router, unit_policy(text));
    assert_n_recs(fx, 2);
    assert_rec(fx, 1, EVENT_RELOAD, "attach", "1-1", "sys-usb", 2);
    settle(fx);
    assert_state(fx, "1-1", DEV_ATTACHED, "sys-usb");
}

static void guard_reload_to_ignore(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *e;

    router_coldplug_done(fx->router);
    add(fx, keyboard("1-1", 3));
    e = lookup(fx, "1-1");
    router_set_policy(fx->router, unit_policy("version: 1\nrules:\n"
                                              "  - {match: {}, action: ignore}\n"));
    /* It never left dom0: no detach. */
    assert_n_recs(fx, 2);
    assert_rec(fx, 1, EVENT_RELOAD, "ignore", "1-1", "", 1);
    assert_false(e->held);
    settle(fx);
    assert_state(fx, "1-1", DEV_IDLE, NULL);
}

static void guard_by_hand(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *held, *other;

    router_coldplug_done(fx->router);
    add(fx, keyboard("3-1", 2));
    add(fx, keyboard("1-1", 3));
    assert_rec(fx, 1, EVENT_ADD, "hold", "1-1", "sys-usb", 2);
    settle(fx);
    held = lookup(fx, "1-1");
    other = lookup(fx, "3-1");
    /* Keeping 3-1 in dom0 by hand lets the held one go. */
    assert_int_equal(router_override(fx->router, other, NULL), 0);
    assert_n_recs(fx, 5);
    assert_rec(fx, 2, EVENT_MANUAL, "detach", "3-1", "sys-usb", 1);
    assert_rec(fx, 3, EVENT_MANUAL, "none", "3-1", "", 0);
    assert_rec(fx, 4, EVENT_MANUAL, "attach", "1-1", "sys-usb", 2);
    settle(fx);
    assert_state(fx, "1-1", DEV_ATTACHED, "sys-usb");
    /* An attach by hand is obeyed even for the last keyboard. */
    assert_int_equal(router_override(fx->router, other, "vault"), 0);
    assert_n_recs(fx, 6);
    assert_rec(fx, 5, EVENT_MANUAL, "attach", "3-1", "vault", 0);
    assert_false(held->held);
    settle(fx);
    assert_state(fx, "3-1", DEV_ATTACHED, "vault");
}

/* Uevents lost: a laptop keyboard not found again no longer counts for dom0. */
static void guard_rescan_sweeps_keyboards(void **state)
{
    struct fx *fx = *state;

    router_keyboard_added(fx->router, LAPTOP_KBD);
    router_keyboard_added(fx->router, "/devices/platform/i8042/serio1/input/input4");
    router_coldplug_done(fx->router);
    router_rescan_begin(fx->router);
    router_keyboard_added(fx->router, LAPTOP_KBD);
    router_rescan_done(fx->router);
    assert_int_equal(router_keyboards(fx->router), 1);
    router_rescan_begin(fx->router);
    router_rescan_done(fx->router);
    assert_int_equal(router_keyboards(fx->router), 0);
    add(fx, keyboard("1-1", 3));
    assert_n_recs(fx, 1);
    assert_rec(fx, 0, EVENT_ADD, "hold", "1-1", "sys-usb", 2);
}

/*
 * A reload that moves a keyboard from one guest to another takes it through
 * dom0: the guard looks at it there, as at any keyboard leaving dom0.
 */
static void guard_reload_moves_through_dom0(void **state)
{
    static const char to_vault[] = "version: 1\n"
                                   "domains:\n"
                                   "  vault: {}\n"
                                   "  sys-usb: {}\n"
                                   "rules:\n"
                                   "  - {match: {hub: usb1}, domain: vault}\n";
    struct fx *fx = *state;
    struct dev_entry *e;

    router_coldplug_done(fx->router);
    router_keyboard_added(fx->router, LAPTOP_KBD);
    add(fx, keyboard("1-1", 3));
    settle(fx);
    assert_state(fx, "1-1", DEV_ATTACHED, "sys-usb");
    router_keyboard_removed(fx->router, LAPTOP_KBD);
    assert_n_recs(fx, 1);
    e = lookup(fx, "1-1");

    /* Out of sys-usb, it stays in dom0: the last keyboard. */
    router_set_policy(fx->router, unit_policy(to_vault));
    assert_n_recs(fx, 3);
    assert_rec(fx, 1, EVENT_RELOAD, "detach", "1-1", "sys-usb", 2);
    assert_rec(fx, 2, EVENT_RELOAD, "hold", "1-1", "vault", 1);
    assert_true(e->held);
    settle(fx);
    assert_n_recs(fx, 3);
    assert_state(fx, "1-1", DEV_IDLE, "vault");

    /* Another keyboard: it goes to vault. */
    router_keyboard_added(fx->router, LAPTOP_KBD);
    assert_n_recs(fx, 4);
    assert_rec(fx, 3, EVENT_ADD, "attach", "1-1", "vault", 1);
    settle(fx);
    assert_state(fx, "1-1", DEV_ATTACHED, "vault");

    /*
     * Back to sys-usb with no other keyboard, and one shows up while it is
     * still being taken out of vault: it goes on once it is out.
     */
    router_keyboard_removed(fx->router, LAPTOP_KBD);
    router_set_policy(fx->router, unit_policy(guard_policy));
    assert_n_recs(fx, 6);
    assert_rec(fx, 4, EVENT_RELOAD, "detach", "1-1", "vault", 1);
    assert_rec(fx, 5, EVENT_RELOAD, "hold", "1-1", "sys-usb", 2);
    assert_int_equal(e->state, DEV_DETACHING);
    router_keyboard_added(fx->router, LAPTOP_KBD);
    assert_n_recs(fx, 6);
    settle(fx);
    assert_n_recs(fx, 7);
    assert_rec(fx, 6, EVENT_RELOAD, "attach", "1-1", "sys-usb", 2);
    assert_false(e->held);
    assert_state(fx, "1-1", DEV_ATTACHED, "sys-usb");
}

/* What the last run gave a guest is the guest's: the guard does not take it back. */
static void guard_spares_what_a_guest_has(void **state)
{
    struct fx *fx = *state;
    struct state_record *rec = calloc(1, sizeof(*rec));

    assert_non_null(rec);
    snprintf(rec->domain, sizeof(rec->domain), "sys-usb");
    snprintf(rec->busid, sizeof(rec->busid), "1-1");
    snprintf(rec->id, sizeof(rec->id), "046d:c31c");
    rec->busnum = 1;
    rec->devnum = 3;
    router_set_previous(fx->router, rec, 1);
    router_device_added(fx->router, keyboard("1-1", 3), EVENT_PRESENT);
    router_coldplug_done(fx->router);
    assert_n_recs(fx, 1);
    assert_rec(fx, 0, EVENT_PRESENT, "attach", "1-1", "sys-usb", 2);
    /* A replug is a new device (new number): guarded again. */
    removed(fx, "1-1");
    add(fx, keyboard("1-1", 4));
    assert_n_recs(fx, 3);
    assert_rec(fx, 2, EVENT_ADD, "hold", "1-1", "sys-usb", 2);
}


/* ---- placement by speed, and failures retrying cannot mend ---- */

/*
 * vault: the default controller (version 3); its guest may have a
 * controller of its own configuration (place.ctrl, id 5).  old: version 2
 * (EHCI), which takes only high-speed devices.
 */
static const char place_policy[] =
    "version: 1\n"
    "domains:\n"
    "  vault: {}\n"
    "  old:\n"
    "    controller: {version: 2}\n"
    "rules:\n"
    "  - match: {hub: \"1-1\"}\n"
    "    domain: vault\n"
    "  - match: {hub: \"2-1\"}\n"
    "    domain: old\n";

#define MAX_PLACED 16

static struct {
    struct hv_ops ops;
    const struct hv_ops *dryrun;
    int vault;
    struct hv_controller ctrl;      /* vault's own; n_ports 0: none */
    char fail_busid[32];            /* attach of this busid answers fail_err */
    int fail_err;
    bool ctrl_race;                 /* add_controller fails, xl makes one meanwhile */
    unsigned ctrl_adds;
    int guest_type;                 /* what guest_type answers for vault; 0: no such op */
    struct controller_spec last_spec;   /* of the last add_controller */
    struct {
        char busid[32];
        int ctrl;
    } attaches[MAX_PLACED];
    size_t n_attaches;
} place;

struct place_op {
    hv_done_fn done;
    void *arg;
    int err;
};

static int place_list_controllers(struct hv *hv, int domid, struct hv_controller **out,
                                  size_t *n)
{
    if (domid != place.vault || place.ctrl.n_ports == 0)
        return place.dryrun->list_controllers(hv, domid, out, n);
    *out = malloc(sizeof(**out));
    assert_non_null(*out);
    **out = place.ctrl;
    *n = 1;
    return 0;
}

static void place_answer(void *arg, int err)
{
    struct place_op *op = arg;

    op->done(op->arg, err == 0 ? op->err : err);
    free(op);
}

static int place_attach(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                        void *arg)
{
    struct place_op *op = calloc(1, sizeof(*op));
    int r;

    assert_non_null(op);
    assert_true(place.n_attaches < MAX_PLACED);
    snprintf(place.attaches[place.n_attaches].busid, sizeof(place.attaches[0].busid), "%s",
             usb->busid);
    place.attaches[place.n_attaches++].ctrl = usb->ctrl;
    op->done = done;
    op->arg = arg;
    op->err = strcmp(usb->busid, place.fail_busid) == 0 ? place.fail_err : 0;
    r = place.dryrun->attach(hv, domid, usb, place_answer, op);
    if (r < 0)
        free(op);
    return r;
}

/*
 * A creation that fails because xl made the guest's own controller at the
 * same moment (it restores it at a reboot): the failure is answered later,
 * and by then the guest lists the controller.
 */
static int place_add_controller(struct hv *hv, int domid, const struct controller_spec *spec,
                                int *id, hv_done_fn done, void *arg)
{
    struct place_op *op;
    int r;

    place.ctrl_adds++;
    place.last_spec = *spec;
    if (!place.ctrl_race)
        return place.dryrun->add_controller(hv, domid, spec, id, done, arg);
    op = calloc(1, sizeof(*op));
    assert_non_null(op);
    op->done = done;
    op->arg = arg;
    op->err = -EIO;
    place.ctrl = (struct hv_controller){ .id = 0, .version = 3, .n_ports = 8 };
    r = place.dryrun->add_controller(hv, domid, spec, id, place_answer, op);
    if (r < 0)
        free(op);
    return r;
}

static int place_guest_type(struct hv *hv, int domid)
{
    return domid == place.vault ? place.guest_type : HV_GUEST_HVM;
}

/* How many attaches of busid the backend was asked for. */
static size_t attaches_of(const char *busid)
{
    size_t n = 0;

    for (size_t i = 0; i < place.n_attaches; i++)
        n += strcmp(place.attaches[i].busid, busid) == 0;
    return n;
}

static int setup_place(void **state)
{
    struct fx *fx;

    if (new_fx(state) < 0)
        return -1;
    fx = *state;
    memset(&place, 0, sizeof(place));
    place.dryrun = fx->hv->ops;
    place.ops = *fx->hv->ops;
    place.ops.list_controllers = place_list_controllers;
    place.ops.attach = place_attach;
    place.ops.add_controller = place_add_controller;
    fx->hv->ops = &place.ops;
    place.vault = fx->hv->ops->domain_lookup(fx->hv, "vault");
    return 0;
}

static void place_start(struct fx *fx)
{
    if (place.guest_type)
        place.ops.guest_type = place_guest_type;
    assert_int_equal(start_router(fx, place_policy, true), 0);
    router_coldplug_done(fx->router);
}

static void domain_versions(struct fx *fx, const char *name, size_t n, const int *versions)
{
    struct domain_info info;

    domain_get_info(router_domain(fx->router, name), &info);
    assert_int_equal(info.n_ctrls, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(info.ctrls[i].version, versions[i]);
}

/*
 * A PVH guest, the policy's controller left to the daemon: a PV USB
 * controller (qusb, version 2) made for it, full- and high-speed devices
 * attached there; a SuperSpeed one failed at once with the reason (PV USB
 * has no USB 3), never tried.
 */
static void place_pvh_qusb(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *fast;

    place.guest_type = HV_GUEST_PVH;
    place_start(fx);
    add(fx, at_speed(yubikey("1-1.2", 12), USB_SPEED_FULL));
    add(fx, at_speed(stick("1-1.3", 13), USB_SPEED_HIGH));
    add(fx, at_speed(stick("1-1.5", 15), USB_SPEED_SUPER));
    settle(fx);
    assert_int_equal(place.ctrl_adds, 1);
    assert_int_equal(place.last_spec.type, CONTROLLER_QUSB);
    assert_int_equal(place.last_spec.version, 2);
    assert_int_equal(place.last_spec.ports, 8);
    assert_state(fx, "1-1.2", DEV_ATTACHED, "vault");
    assert_state(fx, "1-1.3", DEV_ATTACHED, "vault");
    fast = lookup(fx, "1-1.5");
    assert_int_equal(fast->state, DEV_FAILED);
    assert_non_null(strstr(fast->failure, "PV USB has no SuperSpeed"));
    assert_int_equal(attaches_of("1-1.5"), 0);
}

/*
 * An HVM guest whose device model runs in a stub domain cannot reach dom0's
 * devices through it: each device fails at once with the reason, no
 * controller is made, nothing is tried; 'type: qusb' serves it.
 */
static void place_stubdom_refused(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *key;

    place.guest_type = HV_GUEST_HVM | HV_GUEST_STUBDOM;
    place_start(fx);
    add(fx, at_speed(yubikey("1-1.2", 12), USB_SPEED_FULL));
    settle(fx);
    key = lookup(fx, "1-1.2");
    assert_int_equal(key->state, DEV_FAILED);
    assert_non_null(strstr(key->failure, "stub domain"));
    assert_int_equal(place.ctrl_adds, 0);
    assert_int_equal(attaches_of("1-1.2"), 0);

    router_set_policy(fx->router, unit_policy("version: 1\n"
                                              "domains:\n"
                                              "  vault:\n"
                                              "    controller: {type: qusb}\n"
                                              "  old: {}\n"
                                              "rules:\n"
                                              "  - match: {hub: \"1-1\"}\n"
                                              "    domain: vault\n"));
    settle(fx);
    assert_state(fx, "1-1.2", DEV_ATTACHED, "vault");
    assert_int_equal(place.last_spec.type, CONTROLLER_QUSB);
}

/*
 * The guest's own EHCI takes the high-speed stick; the full-speed key never
 * goes there: an xHCI (the default) is created for it.
 */
static void place_by_speed(void **state)
{
    struct fx *fx = *state;
    static const int versions[] = { 2, 3 };

    place.ctrl = (struct hv_controller){ .id = 5, .version = 2, .n_ports = 6 };
    place_start(fx);
    add(fx, at_speed(yubikey("1-1.2", 12), USB_SPEED_FULL));
    add(fx, at_speed(stick("1-1.3", 13), USB_SPEED_HIGH));
    add(fx, at_speed(keyboard("1-1.4", 14), USB_SPEED_LOW));
    settle(fx);
    assert_state(fx, "1-1.2", DEV_ATTACHED, "vault");
    assert_state(fx, "1-1.3", DEV_ATTACHED, "vault");
    assert_state(fx, "1-1.4", DEV_ATTACHED, "vault");
    assert_int_equal(lookup(fx, "1-1.3")->ctrl, 5);
    assert_int_equal(lookup(fx, "1-1.2")->ctrl, 0);
    assert_int_equal(lookup(fx, "1-1.4")->ctrl, 0);
    domain_versions(fx, "vault", 2, versions);
    /* Each tried once, where it fits: never on the EHCI but the stick. */
    assert_int_equal(place.n_attaches, 3);
    for (size_t i = 0; i < place.n_attaches; i++)
        assert_int_equal(place.attaches[i].ctrl,
                         strcmp(place.attaches[i].busid, "1-1.3") == 0 ? 5 : 0);
}

/*
 * A full-speed key for a guest whose policy creates EHCIs only: failed at
 * once, with the reason, never tried; a port freeing does not change that
 * (not tried, not said again); a reload to version 3 does.
 */
static void place_refused_until_reload(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *key;
    struct domain_info info;
    static const int v2[] = { 2 }, v2v3[] = { 2, 3 };

    place_start(fx);
    add(fx, at_speed(yubikey("2-1.2", 12), USB_SPEED_FULL));
    add(fx, at_speed(stick("2-1.3", 13), USB_SPEED_HIGH));
    settle(fx);
    key = lookup(fx, "2-1.2");
    assert_int_equal(key->state, DEV_FAILED);
    assert_non_null(strstr(key->failure, "a full-speed device"));
    assert_non_null(strstr(key->failure, "version 2, EHCI"));
    assert_non_null(strstr(key->failure, "use version 3 (xHCI) or 1 (UHCI)"));
    assert_int_equal(attaches_of("2-1.2"), 0);
    assert_state(fx, "2-1.3", DEV_ATTACHED, "old");
    domain_versions(fx, "old", 1, v2);
    domain_get_info(router_domain(fx->router, "old"), &info);
    assert_int_equal(info.failed, 1);
    assert_int_equal(info.retrying, 0);

    removed(fx, "2-1.3");
    settle(fx);
    assert_int_equal(key->state, DEV_FAILED);
    assert_int_equal(attaches_of("2-1.2"), 0);

    router_set_policy(fx->router, unit_policy("version: 1\n"
                                              "domains:\n"
                                              "  vault: {}\n"
                                              "  old:\n"
                                              "    controller: {version: 3}\n"
                                              "rules:\n"
                                              "  - match: {hub: \"2-1\"}\n"
                                              "    domain: old\n"));
    settle(fx);
    key = lookup(fx, "2-1.2");
    assert_int_equal(key->state, DEV_ATTACHED);
    assert_string_equal(key->failure, "");
    assert_int_equal(attaches_of("2-1.2"), 1);
    domain_versions(fx, "old", 2, v2v3);
}

/*
 * The backend says the host device cannot be found: tried once, failed with
 * the reason, no retry timer (the loop settles); a reload tries it again.
 */
static void permanent_failure_parked(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *key;
    struct domain_info info;

    snprintf(place.fail_busid, sizeof(place.fail_busid), "1-1.2");
    place.fail_err = -ENODEV;
    place_start(fx);
    add(fx, at_speed(yubikey("1-1.2", 12), USB_SPEED_FULL));
    settle(fx);
    key = lookup(fx, "1-1.2");
    assert_int_equal(key->state, DEV_FAILED);
    assert_string_equal(key->failure, "the device model cannot find the host device");
    assert_int_equal(attaches_of("1-1.2"), 1);
    domain_get_info(router_domain(fx->router, "vault"), &info);
    assert_int_equal(info.failed, 1);
    assert_int_equal(info.retrying, 0);

    place.fail_err = 0;
    router_set_policy(fx->router, unit_policy(place_policy));
    settle(fx);
    assert_int_equal(key->state, DEV_ATTACHED);
    assert_int_equal(attaches_of("1-1.2"), 2);
}

/*
 * A controller creation fails, but the guest has a controller now (xl's):
 * it is read at once and used, no second creation, no 5 s wait (the loop
 * settles at once).
 */
static void creation_failed_controller_found(void **state)
{
    struct fx *fx = *state;
    static const int v3[] = { 3 };

    place.ctrl_race = true;
    place_start(fx);
    add(fx, at_speed(yubikey("1-1.2", 12), USB_SPEED_FULL));
    settle(fx);
    assert_state(fx, "1-1.2", DEV_ATTACHED, "vault");
    assert_int_equal(lookup(fx, "1-1.2")->ctrl, 0);
    assert_int_equal(place.ctrl_adds, 1);
    domain_versions(fx, "vault", 1, v3);
}

/* Any other failure may pass: retried on a timer, no permanent reason. */
static void transient_failure_retried(void **state)
{
    struct fx *fx = *state;
    struct dev_entry *key;
    struct domain_info info;

    snprintf(place.fail_busid, sizeof(place.fail_busid), "1-1.2");
    place.fail_err = -EIO;
    place_start(fx);
    add(fx, at_speed(yubikey("1-1.2", 12), USB_SPEED_FULL));
    for (int i = 0; i < 20; i++)
        ev_run(fx->loop, EVRUN_NOWAIT);
    key = lookup(fx, "1-1.2");
    assert_int_equal(key->state, DEV_FAILED);
    assert_string_equal(key->failure, "");
    domain_get_info(router_domain(fx->router, "vault"), &info);
    assert_int_equal(info.retrying, 1);
    assert_int_equal(info.failed, 0);
}

/*
 * A record of another device at the keyboard's place and number (a forged
 * or stale state file): the guard does not take its word.
 */
static void guard_checks_the_record(void **state)
{
    struct fx *fx = *state;
    struct state_record *rec = calloc(1, sizeof(*rec));

    assert_non_null(rec);
    snprintf(rec->domain, sizeof(rec->domain), "sys-usb");
    snprintf(rec->busid, sizeof(rec->busid), "1-1");
    snprintf(rec->id, sizeof(rec->id), "0781:5581");
    rec->busnum = 1;
    rec->devnum = 3;
    router_set_previous(fx->router, rec, 1);
    router_device_added(fx->router, keyboard("1-1", 3), EVENT_PRESENT);
    router_coldplug_done(fx->router);
    assert_n_recs(fx, 1);
    assert_rec(fx, 0, EVENT_PRESENT, "hold", "1-1", "sys-usb", 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define G(f) cmocka_unit_test_setup_teardown(f, setup_guard, teardown)
#define S(f) cmocka_unit_test_setup_teardown(f, setup_stale, teardown_stale)
#define P(f) cmocka_unit_test_setup_teardown(f, setup_place, teardown_stale)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(add_and_remove),
        T(ignore_none_and_present),
        T(hub_never_routed),
        T(remove_unknown_ignored),
        T(duplicate_add_ignored),
        T(new_device_at_known_place),
        T(rescan_sweeps_what_is_gone),
        T(reload_moves_only_changed),
        T(reload_reports_in_port_order),
        T(reload_to_none),
        T(reload_while_attaching),
        T(waits_for_a_free_port),
        T(guest_restart),
        T(shutdown_while_attaching),
        T(shutdown_while_detaching),
        T(remove_while_attaching),
        S(stale_swept_at_start),
        S(stale_swept_on_removal),
        G(guard_holds_last_keyboard),
        G(guard_checks_the_record),
        G(guard_second_keyboard_releases),
        G(guard_unplug_held),
        G(guard_policy_allows),
        G(guard_coldplug),
        G(guard_coldplug_keeps_one),
        G(guard_coldplug_holds_the_real_keyboard),
        G(guard_reload),
        G(guard_reload_to_ignore),
        G(guard_reload_moves_through_dom0),
        G(guard_by_hand),
        G(guard_spares_what_a_guest_has),
        G(guard_rescan_sweeps_keyboards),
        P(place_by_speed),
        P(place_pvh_qusb),
        P(place_stubdom_refused),
        P(place_refused_until_reload),
        P(permanent_failure_parked),
        P(transient_failure_retried),
        P(creation_failed_controller_found),
    };

    /* Warnings (a guest out of ports) stay visible; the notices would drown them. */
    log_init("test-router", LOG_LEVEL_WARNING, true);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

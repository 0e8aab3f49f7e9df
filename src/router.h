/*
 * The router: the table of plugged devices, the decision the policy made for
 * each, and the dispatch of attach and detach work to the domain workers.
 * It re-decides every device when the policy is replaced and moves only
 * those whose decision changed.
 */
#ifndef AUA_ROUTER_H
#define AUA_ROUTER_H

#include <stdbool.h>

#include "device.h"
#include "hv.h"
#include "policy.h"

struct domain;
struct ev_loop;

enum decision {
    DECISION_NONE,          /* no rule matched: the device stays in dom0 */
    DECISION_IGNORE,
    DECISION_ATTACH,
};

enum dev_state {
    DEV_IDLE,               /* in dom0: unmatched, ignored, or a hub */
    DEV_WAITING,            /* routed; waiting for its guest or a free port */
    DEV_ATTACHING,
    DEV_ATTACHED,
    DEV_DETACHING,
    DEV_FAILED,             /* attach failed: retried later, or after a change */
};

/* Why a decision is reported. */
enum router_event {
    EVENT_PRESENT,          /* found at start */
    EVENT_ADD,
    EVENT_REMOVE,
    EVENT_RELOAD,
    EVENT_MANUAL,           /* attach or detach asked for on the control socket */
};

struct dev_entry {
    struct usb_device *dev;
    unsigned refs;          /* the table and each domain operation */
    enum decision decision;
    unsigned rule;          /* 1-based; 0 when no rule matched */
    char *rule_name;
    char *rule_file;        /* the file of the rule (NULL: none), and its line */
    unsigned rule_line;
    bool rule_dropin;       /* the rule is a drop-in's */
    struct domain *domain;  /* the guest it is routed to, for DECISION_ATTACH */
    enum dev_state state;
    int ctrl;               /* where it is attached, when attached */
    int port;
    bool queued;            /* in its domain's queue */
    bool unplugged;         /* removed from the table */
    bool detach_wanted;     /* detach as soon as an attach in flight ends */
    bool override;          /* decided by hand; kept until unplugged */
    bool held;              /* routed, but kept in dom0: its last keyboard */
    bool pending;           /* a routed keyboard seen at start, guarded at its end */
    unsigned failures;
    int failure_err;        /* a failure retrying cannot mend (hv_error_permanent), or 0 */
    char failure[160];      /* what it was, for devices and explain; "" when none */
    unsigned scan;          /* the last router_rescan that found it */
    struct dev_entry *qnext;
};

/* One printed decision. */
struct decision_report {
    enum router_event event;
    const char *action;     /* "attach", "detach", "ignore", "none", "hold" */
    const struct usb_device *dev;
    const char *domain;     /* NULL unless attach/detach */
    unsigned rule;          /* 0: none */
    const char *rule_name;
    const char *rule_file;  /* NULL: no rule */
    unsigned rule_line;
    bool rule_dropin;       /* the text names the file of a drop-in's rule */
};

typedef void (*decision_fn)(void *arg, const struct decision_report *report);

/*
 * Something a watcher follows besides the decisions: an attach or detach
 * done or failed, a held keyboard released, a guest started or stopped.
 */
struct router_note {
    const char *event;      /* "attached", "attach-failed", "detached", "detach-failed",
                               "release", "guest-start", "guest-stop" */
    const char *domain;     /* NULL: none */
    const struct usb_device *dev;   /* NULL for a guest's */
    int domid;              /* -1: none */
    int ctrl;               /* -1: none */
    int port;
    const char *error;      /* NULL: none */
};

typedef void (*note_fn)(void *arg, const struct router_note *note);

struct router;

/*
 * Returns a router that owns policy (freed with the router) and uses hv.
 * report (may be NULL) is called for every decision.  NULL when out of
 * memory (never in the daemon: src/xmalloc.c); the policy is then still the
 * caller's.
 */
struct router *router_new(struct ev_loop *loop, struct hv *hv, struct policy *policy,
                          decision_fn report, void *report_arg);
/* Stops all new work; see hv_ops.free for the order at exit. */
void router_close(struct router *router);
/*
 * True while a worker or a sweep waits for the backend's answer (an attach
 * half done in libxl: its device model may already hold the device).
 */
bool router_in_flight(const struct router *router);
void router_free(struct router *router);

/* A device was found at start (present) or plugged in (add); takes dev. */
void router_device_added(struct router *router, struct usb_device *dev,
                         enum router_event event);
/* A device left: matched by devpath against what was recorded at add time. */
void router_device_removed(struct router *router, const char *devpath);
/*
 * Every device present at start has been reported: from now on, what a
 * guest holds that the table lacks is stale.
 */
void router_coldplug_done(struct router *router);
/*
 * Uevents were lost: router_rescan_begin(), then every device present now
 * through router_device_added(), then router_rescan_done(), which treats
 * each device of the table that was not found again as removed, and
 * detaches what guests hold of devices not plugged in, as at start.  (A
 * device found at a known devpath with another bus or device number is a
 * new one: router_device_added() removes the old one first.)
 */
void router_rescan_begin(struct router *router);
void router_rescan_done(struct router *router);
bool router_complete(const struct router *router);
/*
 * A keyboard that is not on USB (ID_INPUT_KEYBOARD: a laptop's, a PS/2 one)
 * appeared or left, by its input device's DEVPATH.  dom0 keeps it whatever
 * the policy says, so while one exists no USB keyboard is held back.
 */
void router_keyboard_added(struct router *router, const char *devpath);
void router_keyboard_removed(struct router *router, const char *devpath);
/* How many such keyboards dom0 has. */
size_t router_keyboards(const struct router *router);
/* True when dom0 keeps a keyboard other than except's (NULL: any). */
bool router_dom0_keeps_keyboard(const struct router *router, const struct dev_entry *except);
/* True when a device is plugged in at port path busid ("1-1.2"). */
bool router_port_present(const struct router *router, const char *busid);
/* Swaps in a new policy (taking it) and moves the devices whose decision changed. */
void router_set_policy(struct router *router, struct policy *policy);
/*
 * A reload found the policy file unchanged: nothing is decided again, but
 * as on any reload the devices parked after a permanent failure are tried
 * again.
 */
void router_policy_unchanged(struct router *router);
const struct policy *router_policy(const struct router *router);
/* The device recorded under devpath, or NULL.  The router keeps ownership. */
struct dev_entry *router_lookup(const struct router *router, const char *devpath);
/* The domain worker called name, or NULL. */
struct domain *router_domain(const struct router *router, const char *name);

/*
 * Every plugged device, in port order: *out is allocated (the caller frees
 * the array, not the entries).  Returns the count.
 */
size_t router_devices(const struct router *router, struct dev_entry ***out);
/*
 * The device a user names: a port path ("1-1.2"), "bus:device" ("1:5") or
 * "vendor:product" when only one device has it.  NULL with *why set.
 */
struct dev_entry *router_find(const struct router *router, const char *spec,
                              const char **why);
/*
 * Decides entry by hand: to guest domain (a worker is made for a running
 * guest the policy does not name, and freed once no device goes there), or
 * to stay in dom0 (domain NULL).  Holds until the device is unplugged;
 * reloads leave it alone.  0, -ENOMEM, or -ESRCH (nothing changed) when
 * the policy does not name domain and no guest of that name runs.
 */
int router_override(struct router *router, struct dev_entry *entry, const char *domain);
/* Every domain worker: *out is allocated, the caller frees the array. */
size_t router_domain_list(const struct router *router, struct domain ***out);
/* fn is called whenever what is attached where changed (for the state file). */
void router_set_state_hook(struct router *router, void (*fn)(void *arg), void *arg);
/*
 * What the previous run recorded as attached (state.h's records, taken).
 * Used to detach what a guest still holds of a device that is gone.
 */
struct state_record;
void router_set_previous(struct router *router, struct state_record *records, size_t n);
/*
 * The manual decisions the previous run recorded (records, taken): a device
 * found at start that is the very one (not plugged in again since) is
 * decided as it was asked by hand.
 */
void router_set_overrides(struct router *router, struct state_record *records, size_t n);
/* The bus and device number recorded for busid at domain's ctrl:port. */
bool router_previous_busdev(const struct router *router, const char *domain, int ctrl,
                            int port, const char *busid, unsigned *busnum, unsigned *devnum);
/* fn (NULL: none) is told of every note; the watchers' feed. */
void router_set_note_hook(struct router *router, note_fn fn, void *arg);
/* Passes note on to the hook (called by the domain workers too). */
void router_note(struct router *router, const struct router_note *note);
/* Called by the domain workers when an attachment was made or undone. */
void router_changed(struct router *router);

void dev_entry_unref(struct dev_entry *entry);
/*
 * Called by a domain worker when it is done with entry (detached, dropped
 * from its queue): the router routes it on if its decision wants that.
 */
void router_entry_released(struct router *router, struct dev_entry *entry);
const char *dev_state_name(enum dev_state state);

#endif

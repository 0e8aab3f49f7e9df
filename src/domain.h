/*
 * A domain worker: one per guest named in the policy.  It knows whether the
 * guest runs and under which domid, the guest's USB controllers and their
 * free ports, and a queue of devices to attach.  It creates a controller
 * when no port is free (up to the policy's max), runs one backend operation
 * at a time, and retries failures with backoff.
 */
#ifndef AUA_DOMAIN_H
#define AUA_DOMAIN_H

#include <stdbool.h>

#include "hv.h"
#include "policy.h"
#include "router.h"

struct ev_loop;
struct domain;

/* Returns a worker for guest name; NULL on ENOMEM. */
struct domain *domain_new(struct ev_loop *loop, struct hv *hv, struct router *router,
                          const char *name, const struct controller_spec *spec);
void domain_free(struct domain *dom);
const char *domain_name(const struct domain *dom);
void domain_set_spec(struct domain *dom, const struct controller_spec *spec);

/* Queues entry for attaching (takes a reference). */
void domain_attach(struct domain *dom, struct dev_entry *entry);
/* Takes entry out of the guest: off the queue, or detached from its port. */
void domain_detach(struct domain *dom, struct dev_entry *entry);

/* The backend says the guest runs now (as domid) or has stopped. */
/*
 * The guest's controllers changed outside the worker (a device or a
 * controller given by hand): read again now, or after the operation in
 * flight; a port someone filled is counted as taken and never given to a
 * device of ours, one they emptied is free again.
 */
void domain_controllers_changed(struct domain *dom);
void domain_started(struct domain *dom, int domid);
void domain_stopped(struct domain *dom);
/*
 * Removes what the guest's ports hold that is not plugged in (left over from
 * before the daemon started), once the router knows every present device.
 */
void domain_reap_stale(struct domain *dom);
/* Asks the backend whether the guest runs (at start). */
void domain_probe(struct domain *dom);

/* The daemon is stopping: answers are still taken, no new work is started. */
void domain_close(struct domain *dom);
/* True when the worker holds no device and has no operation in flight. */
bool domain_idle(const struct domain *dom);
/* True while the backend has not answered one of the worker's operations. */
bool domain_in_flight(const struct domain *dom);

/* What a domain worker knows, for the control socket. */
#define DOMAIN_INFO_MAX_CTRLS 16
struct domain_info {
    bool running;
    int domid;
    size_t n_ctrls;
    struct {
        int id;
        int version;
        int ports;
        int used;           /* by our devices and by others' */
    } ctrls[DOMAIN_INFO_MAX_CTRLS];
    unsigned queued;        /* waiting for the guest or a port */
    unsigned retrying;      /* failed, waiting for a retry */
    unsigned failed;        /* failed for good, until something changes */
};

void domain_get_info(const struct domain *dom, struct domain_info *info);

int domain_domid(const struct domain *dom);
bool domain_running(const struct domain *dom);

#endif

/*
 * The dry-run backend: every guest of the policy is taken to be running,
 * controllers are simulated, and each operation is logged instead of done.
 * Answers come from the event loop, as a real backend's would, so the domain
 * workers run the same asynchronous paths as with libxl.
 */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv.h"
#include "link.h"
#include "log.h"
#include "strmap.h"

struct dryrun {
    struct hv hv;
    struct ev_loop *loop;
    struct strmap *domids;      /* guest name -> domid (as intptr) */
    struct strmap *ctrls;       /* domid -> controllers made (as intptr) */
    int next_domid;
    struct link *pending;       /* answers not given yet */
};

struct pending {
    ev_timer timer;
    hv_done_fn done;
    void *arg;
    struct dryrun *dr;
    struct link link;           /* in dr->pending */
};

static void answer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pending *p = w->data;

    link_remove(&p->link);
    p->done(p->arg, 0);
    free(p);
}

static int answer_later(struct dryrun *dr, hv_done_fn done, void *arg)
{
    struct pending *p = calloc(1, sizeof(*p));

    if (!p)
        return -ENOMEM;
    p->done = done;
    p->arg = arg;
    p->dr = dr;
    link_push(&dr->pending, &p->link);
    ev_timer_init(&p->timer, answer_cb, 0., 0.);
    p->timer.data = p;
    ev_timer_start(dr->loop, &p->timer);
    return 0;
}

static int dryrun_lookup(struct hv *hv, const char *name)
{
    struct dryrun *dr = (struct dryrun *)hv;
    void *v = strmap_get(dr->domids, name);

    if (!v) {
        v = (void *)(intptr_t)++dr->next_domid;
        if (strmap_put(dr->domids, name, v, NULL) < 0)
            return -ENOMEM;
    }
    return (int)(intptr_t)v;
}

static int dryrun_list(struct hv *hv, int domid, struct hv_controller **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    return 0;
}

static int dryrun_add_controller(struct hv *hv, int domid,
                                 const struct controller_spec *spec, int *id,
                                 hv_done_fn done, void *arg)
{
    struct dryrun *dr = (struct dryrun *)hv;
    char key[16];

    /* Controller ids count from 0 in each guest, as libxl's do. */
    snprintf(key, sizeof(key), "%d", domid);
    *id = (int)(intptr_t)strmap_get(dr->ctrls, key);
    if (strmap_put(dr->ctrls, key, (void *)(intptr_t)(*id + 1), NULL) < 0)
        return -ENOMEM;
    log_info("dry-run: domid %d: create USB controller %d (%s, version %d, %d ports)", domid,
             *id, policy_controller_type_name(spec->type), spec->version, spec->ports);
    return answer_later(dr, done, arg);
}

static int dryrun_attach(struct hv *hv, int domid, const struct hv_usb *usb,
                         hv_done_fn done, void *arg)
{
    log_info("dry-run: domid %d: attach %s (bus %u device %u) at controller %d port %d",
             domid, usb->busid, usb->busnum, usb->devnum, usb->ctrl, usb->port);
    return answer_later((struct dryrun *)hv, done, arg);
}

static int dryrun_detach(struct hv *hv, int domid, const struct hv_usb *usb,
                         hv_done_fn done, void *arg)
{
    log_info("dry-run: domid %d: detach %s from controller %d port %d", domid, usb->busid,
             usb->ctrl, usb->port);
    return answer_later((struct dryrun *)hv, done, arg);
}

static void dryrun_free(struct hv *hv)
{
    struct dryrun *dr = (struct dryrun *)hv;

    /* Unanswered operations at exit are cancelled, so their owners free them. */
    while (dr->pending) {
        struct pending *p = LINK_ENTRY(dr->pending, struct pending, link);

        ev_timer_stop(dr->loop, &p->timer);
        link_remove(&p->link);
        p->done(p->arg, -ECANCELED);
        free(p);
    }
    strmap_free(dr->domids, NULL);
    strmap_free(dr->ctrls, NULL);
    free(dr);
}

static const struct hv_ops dryrun_ops = {
    .name = "dry-run",
    .domain_lookup = dryrun_lookup,
    .list_controllers = dryrun_list,
    .add_controller = dryrun_add_controller,
    .attach = dryrun_attach,
    .detach = dryrun_detach,
    .free = dryrun_free,
};

struct hv *hv_dryrun_new(struct ev_loop *loop)
{
    struct dryrun *dr = calloc(1, sizeof(*dr));

    if (!dr)
        return NULL;
    dr->hv.ops = &dryrun_ops;
    dr->loop = loop;
    dr->domids = strmap_new();
    dr->ctrls = strmap_new();
    if (!dr->domids || !dr->ctrls) {
        strmap_free(dr->domids, NULL);
        strmap_free(dr->ctrls, NULL);
        free(dr);
        return NULL;
    }
    return &dr->hv;
}

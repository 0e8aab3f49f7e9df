/*
 * The backend of a policy that mixes guests: those with a qmp-socket are
 * served by the QMP backend, the others by libxl, in one daemon.
 *
 * Each call goes to the backend that owns the guest: by name for a lookup
 * (the names with a qmp-socket were fixed at start), by domid for the rest.
 * The two never share a domid: QMP's pseudo-domids start at QMP_DOMID_BASE,
 * above every domid Xen gives.  A guest with a qmp-socket is also a domain
 * libxl sees (xl started it); what libxl says of it is not passed on, so
 * that its worker follows the one backend that serves it.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hv.h"
#include "log.h"
#include "strmap.h"

struct mux {
    struct hv hv;
    struct hv *qmp;
    struct hv *xl;
    struct strmap *qmp_names;   /* the guests the QMP backend serves */
};

static struct hv *by_domid(struct mux *m, int domid)
{
    return domid >= QMP_DOMID_BASE ? m->qmp : m->xl;
}

static bool is_qmp(const struct mux *m, const char *name)
{
    return strmap_get(m->qmp_names, name) != NULL;
}

/* ---- events of the two backends, passed on ---- */

static void qmp_started(void *arg, const char *name, int domid)
{
    struct mux *m = arg;

    if (m->hv.events.domain_started)
        m->hv.events.domain_started(m->hv.events.arg, name, domid);
}

static void qmp_stopped(void *arg, const char *name, int domid)
{
    struct mux *m = arg;

    if (m->hv.events.domain_stopped)
        m->hv.events.domain_stopped(m->hv.events.arg, name, domid);
}

static void xl_started(void *arg, const char *name, int domid)
{
    struct mux *m = arg;

    if (!is_qmp(m, name) && m->hv.events.domain_started)
        m->hv.events.domain_started(m->hv.events.arg, name, domid);
}

static void xl_stopped(void *arg, const char *name, int domid)
{
    struct mux *m = arg;

    if (!is_qmp(m, name) && m->hv.events.domain_stopped)
        m->hv.events.domain_stopped(m->hv.events.arg, name, domid);
}

static void xl_controllers_changed(void *arg, const char *name, int domid)
{
    struct mux *m = arg;

    if (!is_qmp(m, name) && m->hv.events.controllers_changed)
        m->hv.events.controllers_changed(m->hv.events.arg, name, domid);
}

/* ---- hv_ops ---- */

static int mux_domain_lookup(struct hv *hv, const char *name)
{
    struct mux *m = (struct mux *)hv;
    struct hv *b = is_qmp(m, name) ? m->qmp : m->xl;

    return b->ops->domain_lookup(b, name);
}

static int mux_list_domains(struct hv *hv, struct hv_domain **out, size_t *n)
{
    struct mux *m = (struct mux *)hv;
    size_t kept = 0;
    int r;

    /* libxl's guests but those QMP serves: their workers are QMP's. */
    r = m->xl->ops->list_domains(m->xl, out, n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < *n; i++)
        if (!is_qmp(m, (*out)[i].name))
            (*out)[kept++] = (*out)[i];
    *n = kept;
    return 0;
}

static int mux_guest_type(struct hv *hv, int domid)
{
    struct hv *b = by_domid((struct mux *)hv, domid);

    return b->ops->guest_type ? b->ops->guest_type(b, domid) : HV_GUEST_HVM;
}

static int mux_list_controllers(struct hv *hv, int domid, struct hv_controller **out,
                                size_t *n)
{
    struct hv *b = by_domid((struct mux *)hv, domid);

    return b->ops->list_controllers(b, domid, out, n);
}

static int mux_add_controller(struct hv *hv, int domid, const struct controller_spec *spec,
                              int *id, hv_done_fn done, void *arg)
{
    struct hv *b = by_domid((struct mux *)hv, domid);

    return b->ops->add_controller(b, domid, spec, id, done, arg);
}

static int mux_attach(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                      void *arg)
{
    struct hv *b = by_domid((struct mux *)hv, domid);

    return b->ops->attach(b, domid, usb, done, arg);
}

static int mux_detach(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                      void *arg)
{
    struct hv *b = by_domid((struct mux *)hv, domid);

    return b->ops->detach(b, domid, usb, done, arg);
}

static void mux_free(struct hv *hv)
{
    struct mux *m = (struct mux *)hv;

    if (m->qmp)
        m->qmp->ops->free(m->qmp);
    if (m->xl)
        m->xl->ops->free(m->xl);
    strmap_free(m->qmp_names, NULL);
    free(m);
}

static const struct hv_ops mux_ops = {
    .name = "mixed",
    .domain_lookup = mux_domain_lookup,
    .list_domains = mux_list_domains,
    .guest_type = mux_guest_type,
    .list_controllers = mux_list_controllers,
    .add_controller = mux_add_controller,
    .attach = mux_attach,
    .detach = mux_detach,
    .free = mux_free,
};

struct hv *hv_mux_new(struct hv *qmp, struct hv *xl, const struct policy *policy)
{
    struct mux *m = calloc(1, sizeof(*m));

    if (!m || !(m->qmp_names = strmap_new())) {
        free(m);
        qmp->ops->free(qmp);
        xl->ops->free(xl);
        log_error("out of memory");
        return NULL;
    }
    m->hv.ops = &mux_ops;
    m->qmp = qmp;
    m->xl = xl;
    for (unsigned i = 0; i < policy->n_domains; i++) {
        if (policy->domains[i].qmp_socket &&
            strmap_put(m->qmp_names, policy->domains[i].name, m, NULL) < 0) {
            log_error("out of memory");
            mux_free(&m->hv);
            return NULL;
        }
    }
    qmp->events = (struct hv_events){ .domain_started = qmp_started,
                                      .domain_stopped = qmp_stopped, .arg = m };
    xl->events = (struct hv_events){ .domain_started = xl_started, .domain_stopped = xl_stopped,
                                     .controllers_changed = xl_controllers_changed, .arg = m };
    return &m->hv;
}

struct hv *hv_mux_qmp(struct hv *hv)
{
    return hv->ops == &mux_ops ? ((struct mux *)hv)->qmp : NULL;
}

bool hv_mux_serves_by_qmp(const struct hv *hv, const char *name)
{
    return hv->ops == &mux_ops && is_qmp((const struct mux *)hv, name);
}

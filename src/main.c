/*
 * auto-usb-attach: start-up, signals and the event loop.
 *
 * One libev loop drives everything.  The order at start matters: the udev
 * monitor listens before the present devices are enumerated, so a device
 * plugged in between is seen (twice at worst, and the router keeps one), and
 * READY=1 goes out only when both are done.
 */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands.h"
#include "control.h"
#include "hv.h"
#include "log.h"
#include "notify.h"
#include "options.h"
#include "policy.h"
#include "policy-files.h"
#include "report.h"
#include "router.h"
#include "state.h"
#include "xmalloc.h"
#include "udev-source.h"
#include "domain.h"
#include "generate.h"
#include "match.h"

struct daemon {
    struct ev_loop *loop;
    struct options opt;
    const char *policy_path;    /* NULL: the policy came from -d/-u/-x */
    struct hv *hv;
    struct router *router;
    struct udev_source *udev;
    struct state *state;        /* NULL in dry-run: nothing is attached */
    ev_timer state_retry;       /* the state file could not be written: again later */
    ev_timer state_soon;        /* the table changed: written once this loop turn ends */
    double state_retry_after;   /* seconds; doubled at each failure, up to a minute */
    struct control *control;    /* NULL: no control socket */
    struct commands commands;
    bool print;                 /* decisions go to stdout */
    ev_signal sighup;
    ev_signal sigterm;
    ev_signal sigint;
    bool stopping;              /* a signal asked to stop: waiting for the backend */
    double stop_deadline;
    ev_timer stop_wait;
};

static void print_diag(const struct policy_diag *diag)
{
    for (size_t i = 0; i < diag->n; i++)
        log_error("%s", diag->msgs[i]);
    if (diag->truncated)
        log_error("(more errors not shown)");
}

/*
 * Loads the policy the command line names.  NULL after logging every error;
 * then *errors (when not NULL) is a new array of the messages.
 */
static struct policy *load_policy(const struct daemon *d, json_t **errors)
{
    struct policy_diag diag = { 0 };
    struct policy *policy;
    /*
     * The daemon acts as root on what the policy says: files someone else
     * could have written are refused (in dry-run nothing is attached).
     */
    bool any_owner = d->opt.insecure_policy || d->opt.dry_run || d->opt.once;

    if (d->policy_path)
        policy = policy_load_files(d->policy_path, any_owner ? 0 : POLICY_ROOT_ONLY, &diag);
    else
        policy = options_policy(&d->opt, &diag);
    print_diag(&diag);
    if (!policy && errors) {
        *errors = json_array();
        for (size_t i = 0; *errors && i < diag.n; i++) {
            char *clean = log_utf8(diag.msgs[i]);

            if (clean)
                json_array_append_new(*errors, json_string(clean));
            free(clean);
        }
    }
    policy_diag_free(&diag);
    return policy;
}

static void on_decision(void *arg, const struct decision_report *r)
{
    struct daemon *d = arg;
    char line[4096];

    if (control_watchers(d->control) > 0)
        control_broadcast(d->control, report_decision_json(r));
    if (d->print) {
        if (report_print(stdout, d->opt.json, r) < 0 && errno != EPIPE)
            log_warn("cannot write a decision to stdout");
        /* --json while attaching: the log keeps its lines too. */
        if (d->opt.dry_run || d->opt.once)
            return;
    }
    log_info("%s: %s", report_event_name(r->event), report_format(r, line, sizeof(line)));
}

/* What the domain workers did, for the watchers only: the log has its own lines. */
static void on_note(void *arg, const struct router_note *n)
{
    struct daemon *d = arg;

    if (control_watchers(d->control) > 0)
        control_broadcast(d->control, report_note_json(n));
}

#define STATE_RETRY_MIN 1.
#define STATE_RETRY_MAX 60.

/* Records what is attached where (called at every change, and again after a failure). */
static void write_state(void *arg)
{
    struct daemon *d = arg;
    struct dev_entry **entries;
    size_t n = router_devices(d->router, &entries), k = 0;
    /* Each device may have an attachment and a manual decision. */
    struct state_record *recs = calloc(n ? 2 * n : 1, sizeof(*recs));

    if (!entries || !recs) {
        log_error("out of memory: the state file is not updated");
        free(entries);
        free(recs);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct dev_entry *e = entries[i];
        struct state_record *r = &recs[k];

        if (e->override) {
            r->manual = true;
            snprintf(r->domain, sizeof(r->domain), "%s",
                     e->domain ? domain_name(e->domain) : "");
            r->busnum = e->dev->busnum;
            r->devnum = e->dev->devnum;
            snprintf(r->busid, sizeof(r->busid), "%s", e->dev->port);
            device_id_string(e->dev, r->id);
            snprintf(r->serial, sizeof(r->serial), "%s", e->dev->serial ? e->dev->serial : "");
            r = &recs[++k];
        }
        if (!e->domain || (e->state != DEV_ATTACHED && e->state != DEV_DETACHING))
            continue;
        snprintf(r->domain, sizeof(r->domain), "%s", domain_name(e->domain));
        r->domid = domain_domid(e->domain);
        r->ctrl = e->ctrl;
        r->port = e->port;
        r->busnum = e->dev->busnum;
        r->devnum = e->dev->devnum;
        snprintf(r->busid, sizeof(r->busid), "%s", e->dev->port);
        device_id_string(e->dev, r->id);
        snprintf(r->serial, sizeof(r->serial), "%s", e->dev->serial ? e->dev->serial : "");
        k++;
    }
    if (state_write(d->state, recs, k) == 0) {
        ev_timer_stop(d->loop, &d->state_retry);
        d->state_retry_after = STATE_RETRY_MIN;
    } else if (!ev_is_active(&d->state_retry)) {
        /*
         * A full or read-only disk may heal without any device moving:
         * the record must not wait for the next plug to catch up.
         */
        ev_timer_set(&d->state_retry, d->state_retry_after, 0.);
        ev_timer_start(d->loop, &d->state_retry);
        if (d->state_retry_after < STATE_RETRY_MAX)
            d->state_retry_after *= 2;
    }
    free(entries);
    free(recs);
}

static void state_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    write_state(w->data);
}

/*
 * The router calls this at every change.  The file is written once per loop
 * turn, however many changes it saw: a guest that stops releases all its
 * devices at once, and a hostile QEMU could make that happen in a loop.
 */
static void state_changed(void *arg)
{
    struct daemon *d = arg;

    if (!ev_is_active(&d->state_soon)) {
        /* A one-shot timer that fired keeps its expiry, not its delay. */
        ev_timer_set(&d->state_soon, 0., 0.);
        ev_timer_start(d->loop, &d->state_soon);
    }
}

static int open_state(struct daemon *d)
{
    struct state_record *recs;
    size_t n;

    d->state = state_new(d->opt.state_dir ? d->opt.state_dir : OPTIONS_DEFAULT_STATE_DIR);
    if (!d->state && errno != ENOMEM)
        return -errno;  /* what is wrong with the directory is logged */
    if (!d->state || state_read(d->state, &recs, &n) < 0) {
        log_error("out of memory");
        return -ENOMEM;
    }
    /* The manual decisions go to the router apart: they decide, the rest is a record. */
    {
        size_t n_manual = 0, k = 0;
        struct state_record *manual;

        for (size_t i = 0; i < n; i++)
            n_manual += recs[i].manual;
        manual = calloc(n_manual ? n_manual : 1, sizeof(*manual));
        if (!manual) {
            free(recs);
            log_error("out of memory");
            return -ENOMEM;
        }
        for (size_t i = 0, j = 0; i < n; i++) {
            if (recs[i].manual)
                manual[j++] = recs[i];
            else
                recs[k++] = recs[i];
        }
        router_set_overrides(d->router, manual, n_manual);
        n = k;
        if (n || n_manual)
            log_info("%s/%s: the last run recorded %zu attachment(s) and %zu decision(s) "
                     "made by hand", d->state->dir, STATE_FILE, n, n_manual);
    }
    router_set_previous(d->router, recs, n);
    ev_timer_init(&d->state_retry, state_retry_cb, STATE_RETRY_MIN, 0.);
    d->state_retry.data = d;
    d->state_retry_after = STATE_RETRY_MIN;
    ev_timer_init(&d->state_soon, state_retry_cb, 0., 0.);
    d->state_soon.data = d;
    router_set_state_hook(d->router, state_changed, d);
    return 0;
}

/* Adds one message to a reload's errors (when the caller wants them). */
static void reload_error(json_t **errors, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reload_error(json_t **errors, const char *fmt, ...)
{
    char msg[1024], *clean;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_error("%s", msg);
    if (!errors)
        return;
    if (!*errors)
        *errors = json_array();
    clean = log_utf8(msg);
    if (*errors && clean)
        json_array_append_new(*errors, json_string(clean));
    free(clean);
}

/*
 * The backend is chosen, and the QMP sockets opened, at start: a reloaded
 * policy that needs another backend or a new socket cannot be followed
 * without a restart.  0, or -1 with the reasons.
 */
static int backend_accepts(const struct daemon *d, const struct policy *policy,
                           json_t **errors)
{
    const char *backend = d->hv->ops->name;
    int r = 0;

    for (unsigned i = 0; i < policy->n_domains; i++) {
        const struct policy_domain *pd = &policy->domains[i];

        if (strcmp(backend, "mixed") == 0) {
            bool by_qmp = hv_mux_serves_by_qmp(d->hv, pd->name);

            if (pd->qmp_socket ? !hv_qmp_follows(hv_mux_qmp(d->hv), pd->name, pd->qmp_socket)
                               : by_qmp) {
                reload_error(errors, "%s: domain '%s': %s: restart the daemon to use it",
                             policy->source, pd->name,
                             pd->qmp_socket ? "its qmp-socket is not one the daemon was "
                                              "started with"
                                            : "it had a qmp-socket when the daemon started");
                r = -1;
            }
        } else if (strcmp(backend, "libxl") == 0 && pd->qmp_socket) {
            reload_error(errors, "%s: domain '%s' has a qmp-socket, but this daemon "
                         "attaches through libxl: restart it to change the backend",
                         policy->source, pd->name);
            r = -1;
        } else if (strcmp(backend, "qmp") == 0 &&
                   (!pd->qmp_socket || !hv_qmp_follows(d->hv, pd->name, pd->qmp_socket))) {
            reload_error(errors, "%s: domain '%s': %s%s%s: restart the daemon to use it",
                         policy->source, pd->name,
                         pd->qmp_socket ? "qmp-socket " : "no qmp-socket",
                         pd->qmp_socket ? pd->qmp_socket : "",
                         pd->qmp_socket ? " is not one the daemon was started with"
                                        : ", but this daemon attaches through QMP");
            r = -1;
        }
    }
    return r;
}

/* Tells the watchers how a reload went (errs: its messages, NULL when none). */
static void broadcast_reload(struct daemon *d, bool ok, bool unchanged, json_t *errs)
{
    if (control_watchers(d->control) > 0)
        control_broadcast(d->control,
                          json_pack("{s:s, s:s, s:b, s:o}", "event",
                                    ok ? "reloaded" : "reload-failed", "policy",
                                    d->policy_path, "unchanged", unchanged, "errors",
                                    errs ? json_incref(errs) : json_array()));
}

/* Re-reads the policy; 0, or -1 with the errors (*errors may be NULL). */
static int reload(struct daemon *d, json_t **errors_out)
{
    struct policy *policy;
    json_t *errs = NULL, **errors = &errs;
    int r = 0;

    notify_send("RELOADING=1");
    if (!d->policy_path) {
        log_notice("reload: the policy comes from the command line; nothing to reload");
        notify_send("READY=1");
        return 0;
    }
    /* A SIGHUP of habit, or a config manager's: nothing to parse or re-decide. */
    if (policy_files_unchanged(router_policy(d->router), d->policy_path)) {
        log_notice("%s: unchanged since it was loaded (same size, times and content): "
                   "nothing reloaded", d->policy_path);
        router_policy_unchanged(d->router);
        notify_send("READY=1");
        broadcast_reload(d, true, true, NULL);
        return 0;
    }
    policy = load_policy(d, errors);
    if (policy && backend_accepts(d, policy, errors) < 0) {
        policy_free(policy);
        policy = NULL;
    }
    if (!policy) {
        log_error("%s: not reloaded; the policy loaded before stays in force",
                  d->policy_path);
        r = -1;
    } else {
        log_notice("%s: reloaded (%u domains, %u rules)", d->policy_path, policy->n_domains,
                   policy->n_rules);
        router_set_policy(d->router, policy);
    }
    /* Give back what the parse and the old policy left free in the heap. */
    malloc_trim(0);
    notify_send("READY=1");
    broadcast_reload(d, r == 0, false, errs);
    if (errors_out)
        *errors_out = errs;
    else
        json_decref(errs);
    return r;
}

static int reload_cb(void *arg, json_t **errors)
{
    return reload(arg, errors);
}

/* The control socket, unless none is wanted (dry-run without --control-socket). */
static int open_control(struct daemon *d)
{
    const char *path = d->opt.control_socket;
    gid_t group = (gid_t)-1;

    if (!path)
        path = d->opt.dry_run ? NULL : OPTIONS_DEFAULT_CONTROL_SOCKET;
    if (!path || strcmp(path, "none") == 0)
        return 0;
    if (d->opt.control_group) {
        struct group *g = getgrnam(d->opt.control_group);

        if (!g) {
            log_error("--control-group: no group called '%s'", d->opt.control_group);
            return -ENOENT;
        }
        group = g->gr_gid;
    }
    d->commands = (struct commands){
        .router = d->router,
        .backend = d->hv->ops->name,
        .policy_source = d->policy_path ? d->policy_path : "command line",
        .started = time(NULL),
        .reload = reload_cb,
        .reload_arg = d,
        .group_changes = d->opt.control_group_changes,
    };
    d->control = control_new(d->loop, path, group, commands_handle, &d->commands);
    d->commands.control = d->control;
    return d->control ? 0 : -EIO;
}

static void sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    reload(w->data, NULL);
}

/* How long a stop waits for the backend to answer what is in flight. */
#define STOP_GRACE_SECONDS 3.

static void stop_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct daemon *d = w->data;

    if (!router_in_flight(d->router) || ev_now(loop) >= d->stop_deadline) {
        if (router_in_flight(d->router))
            log_warnx("stopping with operations still in flight: they are abandoned");
        ev_break(loop, EVBREAK_ALL);
    }
}

/*
 * SIGTERM, SIGINT: no new operation starts, and what the backend is doing
 * is let finish, for a few seconds at most.  An attach cut short in libxl
 * has its xenstore record rolled back while the device model may already
 * hold the device: every later attach of it then failed ("Duplicate device
 * ID"), as the real-Xen scenarios found.  A second signal stops at once.
 */
static void sigterm_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct daemon *d = w->data;

    if (d->stopping || !d->router || !router_in_flight(d->router)) {
        log_notice("signal %d: stopping", w->signum);
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    log_notice("signal %d: stopping once the operations in flight are answered "
               "(at most %.0f s)", w->signum, STOP_GRACE_SECONDS);
    d->stopping = true;
    router_close(d->router);
    d->stop_deadline = ev_now(loop) + STOP_GRACE_SECONDS;
    ev_timer_init(&d->stop_wait, stop_wait_cb, 0.05, 0.05);
    d->stop_wait.data = d;
    ev_timer_start(loop, &d->stop_wait);
}

struct collected {
    struct usb_device **devs;
    size_t n;
    bool oom;
};

static void collect(void *arg, struct usb_device *dev)
{
    struct collected *c = arg;
    struct usb_device **devs = realloc(c->devs, (c->n + 1) * sizeof(*devs));

    if (!devs) {
        c->oom = true;
        device_free(dev);
        return;
    }
    c->devs = devs;
    c->devs[c->n++] = dev;
}

static int cmp_dev_port(const void *a, const void *b)
{
    return strcmp((*(struct usb_device *const *)a)->port, (*(struct usb_device *const *)b)->port);
}

static void count_keyboard(void *arg, const char *devpath)
{
    (*(size_t *)arg)++;
}

/*
 * --check's look at the devices plugged in now: does the policy take every
 * keyboard from dom0?  The daemon would hold one back; say so before it does.
 */
static void check_keyboards(const struct policy *policy)
{
    struct udev_source *src = udev_source_new(NULL, NULL);
    struct collected c = { 0 };
    size_t builtin = 0, keyboards = 0, taken = 0;
    char list[1024] = "", id[10];

    if (!src)
        return;
    if (udev_source_list_keyboards(src, count_keyboard, &builtin) == 0 &&
        udev_source_list(src, collect, &c) == 0 && !c.oom) {
        if (c.n > 1)
            qsort(c.devs, c.n, sizeof(*c.devs), cmp_dev_port);
        for (size_t i = 0; i < c.n; i++) {
            const struct policy_rule *rule;
            size_t used = strlen(list);

            if (device_is_hub(c.devs[i]) || !device_is_keyboard(c.devs[i]))
                continue;
            keyboards++;
            rule = match_device(policy, c.devs[i]);
            if (!rule || rule->action != RULE_ATTACH || rule->allow_lockout)
                continue;
            taken++;
            snprintf(list + used, sizeof(list) - used, "%s%s (%s) by rule %u",
                     used ? ", " : "", c.devs[i]->port, device_id_string(c.devs[i], id),
                     rule->index);
        }
        if (builtin == 0 && keyboards > 0 && taken == keyboards)
            fprintf(stderr, "%s: warning: the rules take every keyboard plugged in now "
                            "(%s): the daemon will keep one in dom0 (set "
                            "allow-dom0-lockout: true to let it go)\n",
                    policy->source, list);
    }
    for (size_t i = 0; i < c.n; i++)
        device_free(c.devs[i]);
    free(c.devs);
    udev_source_free(src);
}

static void warn_shadowed(void *arg, const struct policy_rule *dead,
                          const struct policy_rule *by)
{
    const struct policy *policy = arg;

    fprintf(stderr, "%s:%u:%u: warning: rule %u can never match: rule %u (line %u) comes "
                    "first and matches every device it would\n",
            policy->source, dead->line, dead->column, dead->index, by->index, by->line);
}

static int check_policy(struct daemon *d)
{
    const char *name = d->policy_path ? d->policy_path : "command line";
    struct policy *policy = load_policy(d, NULL);

    if (!policy)
        return 1;
    printf("%s: OK (%u domain%s, %u rule%s)\n", name, policy->n_domains,
           policy->n_domains == 1 ? "" : "s", policy->n_rules,
           policy->n_rules == 1 ? "" : "s");
    for (unsigned i = 0; i < policy->n_dropins; i++)
        printf("%s: OK (drop-in)\n", policy->dropins[i]);
    fflush(stdout);
    match_shadowed(policy, warn_shadowed, policy);
    check_keyboards(policy);
    policy_free(policy);
    return 0;
}

/* --generate-policy: the devices plugged in now, as a policy on stdout. */
static int generate(struct daemon *d)
{
    struct udev_source *src = udev_source_new(NULL, NULL);
    struct collected c = { 0 };
    int r = 1;

    if (!src)
        return 1;
    if (udev_source_list(src, collect, &c) == 0 && !c.oom) {
        if (c.n > 1)
            qsort(c.devs, c.n, sizeof(*c.devs), cmp_dev_port);
        r = generate_policy(stdout, c.devs, c.n,
                            (enum generate_by)(d->opt.generate - 1)) == 0
                ? 0
                : 1;
    } else if (c.oom) {
        log_error("out of memory");
    }
    for (size_t i = 0; i < c.n; i++)
        device_free(c.devs[i]);
    free(c.devs);
    udev_source_free(src);
    return r;
}

/* Leaves the terminal: a classic daemon when not asked to stay. */
static int daemonize(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -errno;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        return -errno;
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO)
        close(fd);
    return 0;
}

static void shutdown_daemon(struct daemon *d)
{
    if (d->stopping)
        ev_timer_stop(d->loop, &d->stop_wait);
    control_free(d->control);
    udev_source_free(d->udev);
    if (d->router)
        router_close(d->router);
    /* The backend answers what is in flight before the workers go. */
    if (d->hv)
        d->hv->ops->free(d->hv);
    /* What changed in the last turn (or in the answers above) is recorded. */
    if (d->state && ev_is_active(&d->state_soon)) {
        ev_timer_stop(d->loop, &d->state_soon);
        write_state(d);
    }
    router_free(d->router);
    if (d->state)
        ev_timer_stop(d->loop, &d->state_retry);
    state_free(d->state);
}

/* -n/--no-wait: the old script exited at once when its guest was not running. */
static int check_no_wait(const struct daemon *d)
{
    const struct policy *policy = router_policy(d->router);
    int missing = 0;

    for (unsigned i = 0; i < policy->n_domains; i++) {
        if (d->hv->ops->domain_lookup(d->hv, policy->domains[i].name) < 0) {
            log_error("%s is not running and --no-wait was given: exiting",
                      policy->domains[i].name);
            missing++;
        }
    }
    return missing ? -ENOENT : 0;
}

/*
 * Whether the policy's guests are reached over QMP sockets; -EINVAL (logged)
 * when some are and others are not, which no backend handles yet.
 */
/* How many of the policy's domains have a qmp-socket. */
static unsigned qmp_domains(const struct policy *policy)
{
    unsigned n = 0;

    for (unsigned i = 0; i < policy->n_domains; i++)
        n += policy->domains[i].qmp_socket != NULL;
    return n;
}

/* For --no-wait over QMP: does anything listen on the guest's socket now? */
static bool qmp_socket_answers(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd < 0)
        return false;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/*
 * Guests with a qmp-socket and guests without in one policy: the QMP
 * backend for the ones, libxl for the others, behind one (hv-mux.c).
 */
static struct hv *mixed_backend(struct ev_loop *loop, const struct policy *policy)
{
    struct hv *qmp = hv_qmp_new(loop, policy), *xl;

    if (!qmp)
        return NULL;
    xl = hv_libxl_load(loop);
    if (!xl) {
        qmp->ops->free(qmp);
        return NULL;
    }
    return hv_mux_new(qmp, xl, policy);
}

static int run(struct daemon *d, struct policy *policy)
{
    unsigned qmp = d->opt.dry_run || d->opt.once ? 0 : qmp_domains(policy);

    if (qmp && d->opt.no_wait) {
        for (unsigned i = 0; i < policy->n_domains; i++) {
            if (policy->domains[i].qmp_socket &&
                !qmp_socket_answers(policy->domains[i].qmp_socket)) {
                log_error("%s is not running (nothing answers on %s) and --no-wait was "
                          "given: exiting", policy->domains[i].name,
                          policy->domains[i].qmp_socket);
                policy_free(policy);
                return 1;
            }
        }
    }
    if (d->opt.dry_run || d->opt.once)
        d->hv = hv_dryrun_new(d->loop);
    else if (qmp == policy->n_domains)
        d->hv = hv_qmp_new(d->loop, policy);
    else if (qmp == 0)
        d->hv = hv_libxl_load(d->loop);
    else
        d->hv = mixed_backend(d->loop, policy);
    if (!d->hv) {
        policy_free(policy);
        return 1;
    }
    d->router = router_new(d->loop, d->hv, policy, on_decision, d);
    if (!d->router) {
        policy_free(policy);
        return 1;
    }
    router_set_note_hook(d->router, on_note, d);
    if (d->opt.no_wait && !qmp && check_no_wait(d) < 0)
        return 1;
    if (!d->opt.dry_run && !d->opt.once && open_state(d) < 0)
        return 1;
    d->udev = udev_source_new(d->loop, d->router);
    if (!d->udev)
        return 1;
    if (d->opt.once) {
        if (udev_source_enumerate(d->udev, EVENT_PRESENT) < 0)
            return 1;
        router_coldplug_done(d->router);
        ev_run(d->loop, EVRUN_NOWAIT);
        return 0;
    }
    if (udev_source_listen(d->udev) < 0 || udev_source_enumerate(d->udev, EVENT_PRESENT) < 0)
        return 1;
    if (open_control(d) < 0)
        return 1;
    router_coldplug_done(d->router);
    if (d->state)
        write_state(d);
    /* The enumeration held every sysfs device at once: give that memory back. */
    malloc_trim(0);

    ev_signal_init(&d->sighup, sighup_cb, SIGHUP);
    ev_signal_init(&d->sigterm, sigterm_cb, SIGTERM);
    ev_signal_init(&d->sigint, sigterm_cb, SIGINT);
    d->sighup.data = d->sigterm.data = d->sigint.data = d;
    ev_signal_start(d->loop, &d->sighup);
    ev_signal_start(d->loop, &d->sigterm);
    ev_signal_start(d->loop, &d->sigint);

    log_notice("running with %s (%u domains, %u rules), backend %s",
               d->policy_path ? d->policy_path : "the command line's policy",
               router_policy(d->router)->n_domains, router_policy(d->router)->n_rules,
               d->hv->ops->name);
    notify_send("READY=1");
    ev_run(d->loop, 0);
    notify_send("STOPPING=1");
    ev_signal_stop(d->loop, &d->sighup);
    ev_signal_stop(d->loop, &d->sigterm);
    ev_signal_stop(d->loop, &d->sigint);
    return 0;
}

int main(int argc, char **argv)
{
    struct daemon d = { 0 };
    struct policy *policy;
    enum log_level level;
    bool interactive;
    int r;

    switch (options_parse(argc, argv, &d.opt)) {
    case OPTIONS_EXIT_OK:
        options_free(&d.opt);
        return 0;
    case OPTIONS_ERROR:
        options_free(&d.opt);
        return 2;
    case OPTIONS_RUN:
        break;
    }
    level = d.opt.verbosity < 0    ? LOG_LEVEL_ERROR
            : d.opt.verbosity == 0 ? LOG_LEVEL_NOTICE
            : d.opt.verbosity == 1 ? LOG_LEVEL_INFO
                                   : LOG_LEVEL_DEBUG;
    /* The old script's form ran in a terminal; keep it there. */
    /* --json prints the decisions on stdout: no use in a daemon's /dev/null. */
    interactive = d.opt.foreground || d.opt.dry_run || d.opt.once || d.opt.check ||
                  d.opt.generate || d.opt.json ||
                  options_legacy(&d.opt);
    log_init("auto-usb-attach", level, interactive);
    xmalloc_init();
    if (!options_legacy(&d.opt))
        d.policy_path = d.opt.policy_file ? d.opt.policy_file : options_default_policy();

    if (d.opt.generate) {
        r = generate(&d);
        options_free(&d.opt);
        return r;
    }
    if (d.opt.check) {
        r = check_policy(&d);
        options_free(&d.opt);
        return r;
    }
    policy = load_policy(&d, NULL);
    if (!policy) {
        options_free(&d.opt);
        return 1;
    }
    d.print = d.opt.dry_run || d.opt.once || d.opt.json;
    signal(SIGPIPE, SIG_IGN);
    if (!interactive && daemonize() < 0) {
        log_warn("cannot become a daemon");
        policy_free(policy);
        options_free(&d.opt);
        return 1;
    }
    d.loop = ev_default_loop(EVFLAG_AUTO);
    if (!d.loop) {
        log_error("cannot start the event loop");
        policy_free(policy);
        options_free(&d.opt);
        return 1;
    }
    r = run(&d, policy);
    shutdown_daemon(&d);
    ev_loop_destroy(d.loop);
    options_free(&d.opt);
    return r;
}

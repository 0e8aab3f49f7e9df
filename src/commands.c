/*
 * What the control socket can ask: every answer is built here from the
 * router's table and the domain workers, so the socket code knows nothing of
 * devices and the daemon's state is read in one place.
 */
#include "config.h"

#include "commands.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "device.h"
#include "domain.h"
#include "log.h"
#include "match.h"

/* {"ok": ok, key: message}, the message made valid UTF-8. */
static json_t *vreply(bool ok, const char *key, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static json_t *vreply(bool ok, const char *key, const char *fmt, va_list ap)
{
    char msg[512], *clean;
    json_t *reply;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    clean = log_utf8(msg);
    reply = json_pack("{s:b, s:s}", "ok", ok, key, clean ? clean : "out of memory");
    free(clean);
    return reply;
}

static json_t *error_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *error_reply(const char *fmt, ...)
{
    va_list ap;
    json_t *reply;

    va_start(ap, fmt);
    reply = vreply(false, "error", fmt, ap);
    va_end(ap);
    return reply;
}

static json_t *ok_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *ok_message(const char *fmt, ...)
{
    va_list ap;
    json_t *reply;

    va_start(ap, fmt);
    reply = vreply(true, "message", fmt, ap);
    va_end(ap);
    return reply;
}

static json_t *str_or_null(const char *s)
{
    char *clean;
    json_t *j;

    if (!s)
        return json_null();
    clean = log_utf8(s);
    j = clean ? json_string(clean) : json_null();
    free(clean);
    return j;
}

static const char *decision_name(enum decision d)
{
    return d == DECISION_ATTACH ? "attach" : d == DECISION_IGNORE ? "ignore" : "none";
}

static const char *entry_state(const struct dev_entry *e)
{
    if (e->decision == DECISION_IGNORE)
        return "ignored";
    if (e->decision == DECISION_NONE)
        return e->override ? "detached" : "unmatched";
    if (e->held)
        return "held";
    return e->state == DEV_IDLE ? "waiting" : dev_state_name(e->state);
}

json_t *commands_device_json(const struct dev_entry *e)
{
    const struct usb_device *d = e->dev;
    bool placed = e->state == DEV_ATTACHED || e->state == DEV_ATTACHING ||
                  e->state == DEV_DETACHING;
    char id[10];

    return json_pack("{s:o, s:o, s:i, s:i, s:s, s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:s, "
                     "s:o, s:o, s:b, s:o}",
                     "port", str_or_null(d->port), "path", str_or_null(d->id_path), "busnum", (int)d->busnum, "devnum",
                     (int)d->devnum, "id", device_id_string(d, id), "serial",
                     str_or_null(d->serial), "manufacturer", str_or_null(d->manufacturer),
                     "product", str_or_null(d->product_name), "decision",
                     decision_name(e->decision), "rule",
                     e->rule ? json_integer(e->rule) : json_null(), "rule_name",
                     str_or_null(e->rule_name), "domain",
                     e->domain ? json_string(domain_name(e->domain)) : json_null(), "state",
                     entry_state(e), "controller",
                     placed ? json_integer(e->ctrl) : json_null(), "guest_port",
                     placed ? json_integer(e->port) : json_null(), "override", e->override,
                     "failure", e->failure[0] && e->state == DEV_FAILED
                                    ? json_string(e->failure) : json_null());
}

static json_t *cmd_status(struct commands *c)
{
    const struct policy *policy = router_policy(c->router);
    struct dev_entry **entries;
    size_t n = router_devices(c->router, &entries);
    struct domain **doms;
    size_t n_doms = router_domain_list(c->router, &doms);
    int attached = 0, waiting = 0, failed = 0, ignored = 0, unmatched = 0, held = 0;
    char loaded[32];
    struct tm tm;

    for (size_t i = 0; i < n; i++) {
        const char *s = entry_state(entries[i]);

        attached += strcmp(s, "attached") == 0;
        waiting += strcmp(s, "waiting") == 0 || strcmp(s, "attaching") == 0;
        failed += strcmp(s, "failed") == 0;
        held += strcmp(s, "held") == 0;
        ignored += strcmp(s, "ignored") == 0;
        unmatched += strcmp(s, "unmatched") == 0 || strcmp(s, "detached") == 0;
    }
    free(entries);
    free(doms);
    gmtime_r(&policy->loaded, &tm);
    strftime(loaded, sizeof(loaded), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:b, s:s, s:s, s:s, s:s, s:I, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i}, "
                     "s:i, s:i, s:i}",
                     "ok", 1, "version", PACKAGE_VERSION, "policy", c->policy_source,
                     "policy_loaded", loaded, "backend", c->backend, "uptime",
                     (json_int_t)(time(NULL) - c->started), "devices", "total", (int)n,
                     "attached", attached, "waiting", waiting, "failed", failed, "ignored",
                     ignored, "unmatched", unmatched, "held", held, "domains", (int)n_doms,
                     "dom0_keyboards", (int)router_keyboards(c->router),
                     "watchers", (int)control_watchers(c->control));
}

static json_t *cmd_devices(struct commands *c)
{
    struct dev_entry **entries;
    size_t n = router_devices(c->router, &entries);
    json_t *list = json_array();

    for (size_t i = 0; list && i < n; i++)
        json_array_append_new(list, commands_device_json(entries[i]));
    free(entries);
    return list ? json_pack("{s:b, s:o}", "ok", 1, "devices", list)
                : error_reply("out of memory");
}

static int cmp_domain(const void *a, const void *b)
{
    return strcmp(domain_name(*(struct domain *const *)a),
                  domain_name(*(struct domain *const *)b));
}

static json_t *cmd_domains(struct commands *c)
{
    struct domain **doms;
    size_t n = router_domain_list(c->router, &doms);
    json_t *list = json_array();

    qsort(doms, n, sizeof(*doms), cmp_domain);
    for (size_t i = 0; list && i < n; i++) {
        struct domain_info info;
        json_t *ctrls = json_array();

        domain_get_info(doms[i], &info);
        for (size_t k = 0; ctrls && k < info.n_ctrls; k++)
            json_array_append_new(ctrls, json_pack("{s:i, s:i, s:i, s:i, s:i}", "id",
                                                   info.ctrls[k].id, "version",
                                                   info.ctrls[k].version, "ports",
                                                   info.ctrls[k].ports, "used",
                                                   info.ctrls[k].used, "free",
                                                   info.ctrls[k].ports - info.ctrls[k].used));
        json_array_append_new(list, json_pack("{s:s, s:b, s:o, s:o, s:i, s:i, s:i}", "name",
                                              domain_name(doms[i]), "running", info.running,
                                              "domid",
                                              info.running ? json_integer(info.domid)
                                                           : json_null(),
                                              "controllers", ctrls ? ctrls : json_array(),
                                              "queue", (int)info.queued, "retrying",
                                              (int)info.retrying, "failed", (int)info.failed));
    }
    free(doms);
    return list ? json_pack("{s:b, s:o}", "ok", 1, "domains", list)
                : error_reply("out of memory");
}

/* The rules in force, in the order they are tried, each with its file and line. */
static json_t *cmd_rules(struct commands *c)
{
    const struct policy *policy = router_policy(c->router);
    json_t *list = json_array();

    for (unsigned i = 0; list && i < policy->n_rules; i++) {
        const struct policy_rule *r = &policy->rules[i];

        json_array_append_new(list, json_pack("{s:i, s:o, s:o, s:o, s:b, s:s, s:o}",
                                              "rule", (int)r->index,
                                              "name", str_or_null(r->name),
                                              "file", str_or_null(r->file),
                                              "line", r->line ? json_integer(r->line)
                                                              : json_null(),
                                              "dropin", r->dropin,
                                              "action", r->action == RULE_IGNORE ? "ignore"
                                                                                 : "attach",
                                              "domain", r->action == RULE_IGNORE
                                                  ? json_null()
                                                  : str_or_null(
                                                        policy->domains[r->domain].name)));
    }
    return list ? json_pack("{s:b, s:o}", "ok", 1, "rules", list)
                : error_reply("out of memory");
}

/* The string argument key of a request, or NULL with *reply set. */
static const char *arg(json_t *request, const char *key, json_t **reply)
{
    json_t *v = json_object_get(request, key);

    if (!v) {
        *reply = error_reply("'%s' is missing", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        *reply = error_reply("'%s' must be a string", key);
        return NULL;
    }
    return json_string_value(v);
}

static struct dev_entry *device_arg(struct commands *c, json_t *request, json_t **reply)
{
    const char *spec = arg(request, "device", reply), *why;
    struct dev_entry *e;
    char esc[128];

    if (!spec)
        return NULL;
    e = router_find(c->router, spec, &why);
    if (!e)
        *reply = error_reply("device '%s': %s", log_escape(spec, esc, sizeof(esc)), why);
    return e;
}

static json_t *cmd_explain(struct commands *c, json_t *request)
{
    const struct policy *policy = router_policy(c->router);
    const struct policy_rule *first = NULL;
    json_t *reply = NULL, *rules;
    struct dev_entry *e = device_arg(c, request, &reply);

    if (!e)
        return reply;
    rules = json_array();
    for (unsigned i = 0; rules && i < policy->n_rules; i++) {
        const struct policy_rule *r = &policy->rules[i];
        char why[512];
        bool matched = match_rule(r, e->dev, why, sizeof(why));

        if (matched && !first)
            first = r;
        json_array_append_new(rules, json_pack("{s:i, s:o, s:s, s:i, s:b, s:b, s:b, s:o}",
                                               "rule", (int)r->index,
                                               "name", str_or_null(r->name),
                                               "file", r->file, "line", (int)r->line,
                                               "dropin", r->dropin,
                                               "matched", matched, "decides",
                                               matched && first == r, "reason",
                                               str_or_null(why)));
    }
    if (!rules)
        return error_reply("out of memory");
    return json_pack("{s:b, s:o, s:s, s:o, s:o, s:b, s:b, s:o, s:o}", "ok", 1, "device",
                     commands_device_json(e), "decision", decision_name(e->decision),
                     "rule", e->rule ? json_integer(e->rule) : json_null(), "domain",
                     e->domain ? json_string(domain_name(e->domain)) : json_null(),
                     "override", e->override, "held", e->held, "held_reason",
                     e->held ? json_string("dom0 would be left without a keyboard: "
                                           "allow-dom0-lockout: true permits it")
                             : json_null(),
                     "rules", rules);
}

static json_t *cmd_attach(struct commands *c, json_t *request)
{
    json_t *reply = NULL;
    struct dev_entry *e = device_arg(c, request, &reply);
    const char *domain, *why;

    if (!e)
        return reply;
    domain = arg(request, "domain", &reply);
    if (!domain)
        return reply;
    why = policy_check_domain_name(domain);
    if (why)
        return error_reply("bad domain name: %s", why);
    switch (router_override(c->router, e, domain)) {
    case 0:
        break;
    case -ESRCH:
        return error_reply("no guest called %s is running, and the policy does not name "
                           "it", domain);
    case -ENOMEM:
        return error_reply("out of memory");
    default:
        return error_reply("cannot tell whether %s runs", domain);
    }
    log_notice("%s: attach to %s asked for on the control socket", e->dev->port, domain);
    return ok_message("%s goes to %s until it is unplugged", e->dev->port, domain);
}

static json_t *cmd_detach(struct commands *c, json_t *request)
{
    json_t *reply = NULL;
    struct dev_entry *e = device_arg(c, request, &reply);

    if (!e)
        return reply;
    if (router_override(c->router, e, NULL) < 0)
        return error_reply("out of memory");
    log_notice("%s: detach asked for on the control socket", e->dev->port);
    return ok_message("%s stays in dom0 until it is unplugged", e->dev->port);
}

static json_t *cmd_reload(struct commands *c)
{
    json_t *errors = NULL;
    struct timespec ts;
    double now;

    /*
     * Each reload reads and decides everything again: not in a loop.  A
     * bucket of COMMANDS_RELOAD_BURST reloads, refilled one a second, lets
     * a user fix a typo and reload at once.
     */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    if (c->reload_at == 0)
        c->reload_tokens = COMMANDS_RELOAD_BURST;
    else
        c->reload_tokens += now - c->reload_at;
    if (c->reload_tokens > COMMANDS_RELOAD_BURST)
        c->reload_tokens = COMMANDS_RELOAD_BURST;
    c->reload_at = now;
    if (c->reload_tokens < 1)
        return error_reply("too many reloads: at most %d in a row, then one a second; "
                           "try again later", COMMANDS_RELOAD_BURST);
    c->reload_tokens -= 1;

    if (c->reload(c->reload_arg, &errors) == 0) {
        json_decref(errors);
        return ok_message("policy reloaded");
    }
    return json_pack("{s:b, s:s, s:o}", "ok", 0, "error",
                     "the policy has errors; the one loaded before stays in force", "errors",
                     errors ? errors : json_array());
}

static json_t *cmd_log_level(json_t *request)
{
    json_t *reply = NULL;
    const char *name = arg(request, "level", &reply);
    int level;

    if (!name)
        return reply;
    level = log_level_parse(name);
    if (level < 0)
        return error_reply("bad level: expected error, warning, notice, info or debug");
    log_set_level((enum log_level)level);
    return ok_message("log level is %s", log_level_name((enum log_level)level));
}

/*
 * The commands that only read.  Every other one (attach, detach, reload,
 * log-level, and any added later unless it is listed here) changes what the
 * daemon does: root's, unless --control-group-changes gives them to the
 * group.
 */
static bool only_reads(const char *name)
{
    static const char *const reading[] = { "status", "devices", "domains", "explain",
                                           "rules", "watch" };

    for (size_t i = 0; i < sizeof(reading) / sizeof(reading[0]); i++)
        if (strcmp(name, reading[i]) == 0)
            return true;
    return false;
}

json_t *commands_handle(void *arg_, json_t *request, const struct control_peer *peer)
{
    struct commands *c = arg_;
    json_t *cmd = json_object_get(request, "command");
    const char *name;
    json_t *reply;
    char esc[64];

    if (!json_is_string(cmd))
        return error_reply("'command' is missing or not a string");
    name = json_string_value(cmd);
    if (!only_reads(name) && peer && !control_peer_is_root(peer) && !c->group_changes)
        return error_reply("permission denied: '%s' is not one of the commands that only "
                           "read, which are all the group may use (the daemon's "
                           "--control-group-changes lets it use the others)",
                           log_escape(name, esc, sizeof(esc)));
    if (strcmp(name, "status") == 0)
        reply = cmd_status(c);
    else if (strcmp(name, "devices") == 0)
        reply = cmd_devices(c);
    else if (strcmp(name, "domains") == 0)
        reply = cmd_domains(c);
    else if (strcmp(name, "explain") == 0)
        reply = cmd_explain(c, request);
    else if (strcmp(name, "rules") == 0)
        reply = cmd_rules(c);
    else if (strcmp(name, "attach") == 0)
        reply = cmd_attach(c, request);
    else if (strcmp(name, "detach") == 0)
        reply = cmd_detach(c, request);
    else if (strcmp(name, "reload") == 0)
        reply = cmd_reload(c);
    else if (strcmp(name, "watch") == 0)
        /* control.c makes the client a watcher on seeing "watching". */
        reply = json_pack("{s:b, s:b}", "ok", 1, "watching", 1);
    else if (strcmp(name, "log-level") == 0)
        reply = cmd_log_level(request);
    else
        reply = error_reply("unknown command '%s' (expected status, devices, domains, "
                            "explain, rules, watch, attach, detach, reload or log-level)",
                            log_escape(name, esc, sizeof(esc)));
    return reply ? reply : error_reply("out of memory");
}

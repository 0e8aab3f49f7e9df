/*
 * libFuzzer harness of the policy parser (src/policy.c): arbitrary bytes go
 * to policy_load_buffer(), as a policy file would after a reload, and then
 * to policy_append_buffer() as a drop-in after a fixed main file.
 *
 * Beyond memory errors it checks what the parser promises its callers:
 * a policy comes back with no error, or NULL with at least one; every
 * message is "NAME:LINE:COLUMN: text" with the name given and the position
 * recorded next to it, in file order; a returned policy is consistent
 * (rules numbered 1..n, each naming a declared domain or ignoring, each
 * match key present with its value) and its index answers as a scan does.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "log.h"
#include "match.h"
#include "policy.h"

#define FUZZ_NAME "fuzz-policy"
#include "fuzz.h"

#define NAME "fuzz.yaml"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init("fuzz-policy", LOG_LEVEL_ERROR, true);
    return 0;
}

/* "NAME:LINE:COLUMN: " with the numbers in pos; returns false otherwise. */
static bool message_ok(const char *msg, unsigned long pos)
{
    size_t n = strlen(NAME);
    unsigned long line, column;
    char *end;

    if (strncmp(msg, NAME, n) != 0 || msg[n] != ':')
        return false;
    msg += n + 1;
    if (*msg < '1' || *msg > '9')
        return false;
    line = strtoul(msg, &end, 10);
    if (*end != ':' || end[1] < '1' || end[1] > '9')
        return false;
    column = strtoul(end + 1, &end, 10);
    if (end[0] != ':' || end[1] != ' ')
        return false;
    return pos == (line << 24 | (column & 0xffffff));
}

static void check_diag(const struct policy_diag *diag)
{
    CHECK(diag->n <= POLICY_MAX_ERRORS, "%zu messages", diag->n);
    CHECK(!diag->truncated || diag->n == POLICY_MAX_ERRORS, "truncated at %zu", diag->n);
    for (size_t i = 0; i < diag->n; i++) {
        CHECK(diag->msgs[i], "message %zu is NULL", i);
        CHECK(message_ok(diag->msgs[i], diag->pos[i]), "message %zu: \"%s\" (pos %lu:%lu)",
              i, diag->msgs[i], diag->pos[i] >> 24, diag->pos[i] & 0xffffff);
        CHECK(i == 0 || diag->pos[i - 1] <= diag->pos[i], "message %zu out of order: %s", i,
              diag->msgs[i]);
    }
}

static void check_string_key(const struct rule_match *m, unsigned bit, const char *value,
                             unsigned rule)
{
    CHECK(!(m->keys & bit) || value, "rule %u: key bit %#x set but its value is NULL", rule,
          bit);
}

static void check_class(const struct class_match *c, unsigned rule)
{
    CHECK(c->cls >= 0 && c->cls <= 0xff && c->subclass >= -1 && c->subclass <= 0xff &&
              c->protocol >= -1 && c->protocol <= 0xff &&
              !(c->subclass < 0 && c->protocol >= 0),
          "rule %u: class %d:%d:%d", rule, c->cls, c->subclass, c->protocol);
}

/* A handful of plausible devices: the index must agree with a scan on each. */
static void check_matching(const struct policy *policy)
{
    static const struct {
        const char *port;
        uint16_t vendor, product;
        const char *serial;
        uint8_t cls;
        const char *ifaces;
    } devs[] = {
        { "1-1.2", 0x1050, 0x0407, "0012345", 0x00, ":030101:030000:0b0000:" },
        { "1-1.3", 0x046d, 0xc31c, NULL, 0x00, ":030101:030000:" },
        { "1-1.4.2", 0x0781, 0x5583, "4C530001", 0x00, ":080650:" },
        { "1-2", 0x046d, 0x0825, "Z0004", 0xef, ":0e0100:0e0200:010100:" },
        { "2-1.1.1.1.1.1.1", 0x0000, 0xffff, "*", 0xff, ":ffffff:" },
        { "1-1", 0x05e3, 0x0610, NULL, 0x09, ":090000:" },
    };

    for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
        struct usb_device *dev = device_new("/devices/fuzz", devs[i].port);
        const struct policy_rule *a, *b;

        if (!dev)
            return;
        dev->busnum = (unsigned)(devs[i].port[0] - '0');
        dev->vendor = devs[i].vendor;
        dev->product = devs[i].product;
        dev->dev_class.cls = devs[i].cls;
        device_set_str(&dev->serial, devs[i].serial);
        device_set_str(&dev->manufacturer, "Yubico");
        device_set_str(&dev->product_name, "YubiKey OTP+FIDO+CCID");
        device_parse_interfaces(dev, devs[i].ifaces);
        a = match_device(policy, dev);
        b = match_device_linear(policy, dev);
        CHECK(a == b, "device %s: index says rule %u, scan says rule %u", devs[i].port,
              a ? a->index : 0, b ? b->index : 0);
        device_free(dev);
    }
}

static void check_policy(const struct policy *policy, const char *source)
{
    CHECK(policy->source && strcmp(policy->source, source) == 0, "source \"%s\"",
          policy->source ? policy->source : "(null)");
    CHECK(policy->index, "a returned policy has no match index");
    CHECK((policy->n_rules == 0) == (policy->rules == NULL) || policy->rules,
          "n_rules %u with rules %p", policy->n_rules, (void *)policy->rules);
    CHECK((policy->n_domains == 0) || policy->domains, "n_domains %u with no array",
          policy->n_domains);
    for (unsigned i = 0; i < policy->n_domains; i++) {
        const struct policy_domain *d = &policy->domains[i];

        CHECK(d->name && !policy_check_domain_name(d->name), "domain %u: bad name", i);
        CHECK(policy_find_domain(policy, d->name) == (int)i, "domain %u (%s) declared twice",
              i, d->name);
        CHECK(!policy_check_controller(d->controller.version, d->controller.ports),
              "domain %s: controller version %d with %d ports", d->name,
              d->controller.version, d->controller.ports);
        CHECK(d->controller.max >= 0 && d->controller.max <= 64, "domain %s: max %d", d->name,
              d->controller.max);
        CHECK(!d->qmp_socket || d->qmp_socket[0] == '/', "domain %s: qmp-socket %s",
              d->name, d->qmp_socket);
    }
    for (unsigned i = 0; i < policy->n_rules; i++) {
        const struct policy_rule *r = &policy->rules[i];
        const struct rule_match *m = &r->match;

        CHECK(r->index == i + 1, "rule at %u has index %u", i, r->index);
        CHECK(r->line >= 1 && r->column >= 1, "rule %u at %u:%u", r->index, r->line,
              r->column);
        if (r->action == RULE_IGNORE)
            CHECK(r->domain == -1, "ignore rule %u names domain %d", r->index, r->domain);
        else
            CHECK(r->action == RULE_ATTACH && r->domain >= 0 &&
                      (unsigned)r->domain < policy->n_domains,
                  "attach rule %u: action %d domain %d of %u", r->index, (int)r->action,
                  r->domain, policy->n_domains);
        CHECK(!(m->keys & ~0x1ffu), "rule %u: unknown key bits %#x", r->index, m->keys);
        check_string_key(m, MATCH_VENDOR, m->vendor, r->index);
        check_string_key(m, MATCH_PRODUCT, m->product, r->index);
        check_string_key(m, MATCH_SERIAL, m->serial, r->index);
        check_string_key(m, MATCH_MANUFACTURER, m->manufacturer, r->index);
        check_string_key(m, MATCH_PRODUCT_NAME, m->product_name, r->index);
        check_string_key(m, MATCH_HUB, m->hub, r->index);
        check_string_key(m, MATCH_PORT, m->port, r->index);
        if (m->keys & MATCH_HUB)
            CHECK(!policy_check_hub(m->hub), "rule %u: hub '%s'", r->index, m->hub);
        if (m->keys & MATCH_CLASS)
            check_class(&m->dev_class, r->index);
        if (m->keys & MATCH_IFACE_CLASS)
            check_class(&m->iface_class, r->index);
    }
    check_matching(policy);
}

/*
 * The same bytes as a drop-in after a good main file: every message names
 * the drop-in (the main file has none), and a policy that comes out keeps
 * the main file's rules first, the drop-in's after, each with its file.
 */
static void check_dropin(const char *buf, size_t size)
{
    static const char main_text[] =
        "version: 1\n"
        "defaults: { controller: { version: 3, ports: 4 }, allow-dom0-lockout: true }\n"
        "domains: { vault: {}, win10: { qmp-socket: /run/q } }\n"
        "rules:\n"
        "  - { match: { id: \"1050:*\" }, domain: vault }\n"
        "  - { match: { interface-class: hid }, action: ignore }\n";
    struct policy_diag diag = { 0 };
    struct policy *policy = policy_load_buffer("main.yaml", main_text, sizeof(main_text) - 1,
                                               &diag);
    int r;

    CHECK(policy && diag.n == 0, "the fixed main file was refused: %s",
          diag.n ? diag.msgs[0] : "");
    r = policy_append_buffer(policy, NAME, buf, size, &diag);
    check_diag(&diag);
    if (r == 0) {
        CHECK(diag.n == 0, "a drop-in was taken with %zu errors, the first: %s", diag.n,
              diag.msgs[0]);
        CHECK(policy_finish(policy) == 0, "policy_finish failed");
        CHECK(policy->n_dropins == 1 && strcmp(policy->dropins[0], NAME) == 0,
              "%u drop-ins", policy->n_dropins);
        for (unsigned i = 0; i < policy->n_rules; i++)
            CHECK(policy->rules[i].dropin == (i >= 2) &&
                      strcmp(policy->rules[i].file, i >= 2 ? NAME : "main.yaml") == 0,
                  "rule %u from %s (drop-in: %d)", i + 1, policy->rules[i].file,
                  policy->rules[i].dropin);
        check_policy(policy, "main.yaml");
    } else {
        CHECK(r == -EINVAL && diag.n > 0, "drop-in refused (%d) without a message", r);
    }
    policy_free(policy);
    policy_diag_free(&diag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy_diag diag = { 0 };
    struct policy *policy;
    /* A copy of exactly size bytes: a read past the end is an ASan report. */
    char *buf = malloc(size ? size : 1);

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    policy = policy_load_buffer(NAME, buf, size, &diag);
    check_diag(&diag);
    if (policy) {
        CHECK(diag.n == 0, "a policy came back with %zu errors, the first: %s", diag.n,
              diag.msgs[0]);
        check_policy(policy, NAME);
        policy_free(policy);
    } else {
        CHECK(diag.n > 0, "NULL came back without an error message");
    }
    policy_diag_free(&diag);
    check_dropin(buf, size);
    free(buf);
    return 0;
}

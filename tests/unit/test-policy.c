/*
 * Unit tests of the policy parser (src/policy.c).
 *
 * Good files: the bundled example, and the fixtures in tests/fixtures/policies
 * (defaults merged into domains, controller defaults per version, qmp-socket,
 * rule names, ignore rules, every match key, `match: {}`).
 *
 * Bad input: one test per kind of mistake, each asserting the exact
 * "FILE:LINE:COLUMN: message" lines the parser reports, in order and no
 * more.  The bad cases are a table (bad_cases[]); main() turns every row
 * into its own named cmocka test, so a failure names the kind of input.
 * Then the whole-file properties: every error of a file is reported, the
 * error cap sets `truncated`, and files too large, binary or too deeply
 * nested are refused before (or while) they are parsed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv.h"
#include "bounds.h"
#include "policy.h"
#include "state.h"

#define POLICIES FIXTURES "/policies"
#define EXAMPLE FIXTURES "/../../policy/example.yaml"
#define WHY_CONNECTOR                                                                      \
    "expected the path of a port with its USB revision, such as pci-0000:00:14.0-usbv3-0:1 " \
    "(--once --json shows each device's path_with_revision)"

/* ---- helpers ---- */

static struct policy *load_text(const char *text, struct policy_diag *diag)
{
    return policy_load_buffer("t.yaml", text, strlen(text), diag);
}

static void dump_diag(const struct policy_diag *diag)
{
    for (size_t i = 0; i < diag->n; i++)
        print_message("  diag[%zu] = %s\n", i, diag->msgs[i]);
}

/*
 * Asserts that diag holds exactly the NULL-terminated list want, in order,
 * and frees it first, so that a failing test leaks nothing under valgrind.
 */
static void assert_diag(struct policy_diag *diag, const char *const *want)
{
    char got[1024] = "", expected[1024] = "";
    size_t n = 0, got_n = diag->n;
    bool truncated = diag->truncated;

    while (want[n])
        n++;
    if (got_n != n)
        dump_diag(diag);
    for (size_t i = 0; i < n && i < got_n; i++) {
        if (strcmp(diag->msgs[i], want[i]) != 0) {
            snprintf(got, sizeof(got), "%s", diag->msgs[i]);
            snprintf(expected, sizeof(expected), "%s", want[i]);
            break;
        }
    }
    policy_diag_free(diag);
    assert_string_equal(got, expected);
    assert_int_equal(got_n, n);
    assert_false(truncated);
}

/* Loads text, which must be refused with exactly the messages in want. */
static void assert_bad(const char *text, const char *const *want)
{
    struct policy_diag diag = { 0 };
    struct policy *p = load_text(text, &diag);

    policy_free(p);
    assert_diag(&diag, want);
    assert_null(p);
}

/* Loads a good file; any message fails the test. */
static struct policy *load_good(const char *path)
{
    struct policy_diag diag = { 0 };
    struct policy *p = policy_load(path, false, &diag);

    dump_diag(&diag);
    assert_int_equal(diag.n, 0);
    assert_non_null(p);
    policy_diag_free(&diag);
    return p;
}

static const struct policy_domain *domain_named(const struct policy *p, const char *name)
{
    int i = policy_find_domain(p, name);

    assert_true(i >= 0);
    return &p->domains[i];
}

static void assert_controller(const struct policy_domain *d, int version, int ports, int max)
{
    assert_int_equal(d->controller.version, version);
    assert_int_equal(d->controller.ports, ports);
    assert_int_equal(d->controller.max, max);
}

static void assert_str_or_null(const char *got, const char *want)
{
    if (!want) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

/* ---- good files ---- */

static void example_policy(void **state)
{
    struct policy *p = load_good(EXAMPLE);
    const struct policy_rule *r = p->rules;
    int win10 = policy_find_domain(p, "win10"), vault = policy_find_domain(p, "vault");

    assert_string_equal(p->source, EXAMPLE);
    assert_non_null(p->index);
    assert_int_equal(p->n_domains, 2);
    assert_int_equal(win10, 0);
    assert_int_equal(vault, 1);
    assert_controller(&p->domains[win10], 3, 15, 2);
    /* vault: {} takes the defaults' 3/8 and the built-in max. */
    assert_controller(&p->domains[vault], 3, 8, 4);
    assert_null(p->domains[vault].qmp_socket);

    assert_int_equal(p->n_rules, 4);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(r[i].index, i + 1);

    assert_string_equal(r[0].name, "yubikeys go to the vault");
    assert_int_equal(r[0].line, 17);
    assert_int_equal(r[0].column, 5);
    assert_int_equal(r[0].action, RULE_ATTACH);
    assert_int_equal(r[0].domain, vault);
    assert_int_equal(r[0].match.keys, MATCH_VENDOR | MATCH_PRODUCT | MATCH_SERIAL);
    assert_string_equal(r[0].match.vendor, "1050");
    assert_string_equal(r[0].match.product, "0407");
    assert_string_equal(r[0].match.serial, "0012*");

    assert_string_equal(r[1].name, "keyboards stay in dom0");
    assert_int_equal(r[1].line, 21);
    assert_int_equal(r[1].action, RULE_IGNORE);
    assert_int_equal(r[1].domain, -1);
    assert_int_equal(r[1].match.keys, MATCH_IFACE_CLASS);
    assert_int_equal(r[1].match.iface_class.cls, 0x03);
    assert_int_equal(r[1].match.iface_class.subclass, 0x01);
    assert_int_equal(r[1].match.iface_class.protocol, 0x01);

    assert_int_equal(r[2].match.keys, MATCH_HUB);
    assert_string_equal(r[2].match.hub, "pci-0000:00:14.0-usb-0:1");
    assert_int_equal(r[2].domain, win10);

    assert_string_equal(r[3].name, "the webcam port");
    assert_int_equal(r[3].match.keys, MATCH_PATH);
    assert_string_equal(r[3].match.path, "pci-0000:00:14.0-usb-0:2");
    assert_int_equal(r[3].domain, win10);
    policy_free(p);
}

static void defaults_merged_into_domains(void **state)
{
    struct policy *p = load_good(POLICIES "/defaults.yaml");

    assert_int_equal(p->n_domains, 5);
    assert_int_equal(p->n_rules, 0);
    assert_controller(domain_named(p, "plain"), 3, 4, 1);
    assert_controller(domain_named(p, "more"), 3, 4, 3);
    assert_controller(domain_named(p, "old"), 1, 2, 1);
    assert_controller(domain_named(p, "ehci"), 2, 6, 1);
    assert_controller(domain_named(p, "own-socket"), 3, 4, 1);
    assert_str_or_null(domain_named(p, "plain")->qmp_socket, "/run/xen/qmp-default.sock");
    assert_str_or_null(domain_named(p, "old")->qmp_socket, "/run/xen/qmp-default.sock");
    assert_str_or_null(domain_named(p, "own-socket")->qmp_socket, "/run/xen/own.sock");
    /* Domains keep file order. */
    assert_string_equal(p->domains[0].name, "plain");
    assert_string_equal(p->domains[4].name, "own-socket");
    policy_free(p);
}

/* allow-dom0-lockout: a rule's word beats its domain's, a domain's the defaults'. */
static void lockout_levels(void **state)
{
    struct policy_diag diag = { 0 };
    struct policy *p = load_text("version: 1\n"
                                 "defaults: {allow-dom0-lockout: true}\n"
                                 "domains:\n"
                                 "  sys-usb: {}\n"
                                 "  vault: {allow-dom0-lockout: false}\n"
                                 "rules:\n"
                                 "  - {match: {port: 1-1}, domain: sys-usb}\n"
                                 "  - {match: {port: 1-2}, domain: vault}\n"
                                 "  - {match: {port: 1-3}, domain: vault, allow-dom0-lockout: true}\n"
                                 "  - {match: {port: 1-4}, domain: sys-usb, "
                                 "allow-dom0-lockout: false}\n"
                                 "  - {match: {port: 1-5}, action: ignore}\n",
                                 &diag);

    assert_non_null(p);
    assert_true(domain_named(p, "sys-usb")->allow_lockout);
    assert_false(domain_named(p, "vault")->allow_lockout);
    assert_true(p->rules[0].allow_lockout);
    assert_false(p->rules[1].allow_lockout);
    assert_true(p->rules[2].allow_lockout);
    assert_false(p->rules[3].allow_lockout);
    assert_true(p->rules[4].allow_lockout);
    policy_free(p);
    /* Without the key anywhere: never. */
    p = load_text("version: 1\ndomains: {a: {}}\nrules:\n  - {match: {}, domain: a}\n", &diag);
    assert_non_null(p);
    assert_false(p->domains[0].allow_lockout);
    assert_false(p->rules[0].allow_lockout);
    policy_free(p);
    policy_diag_free(&diag);
}

static void controller_defaults_per_version(void **state)
{
    struct policy *p = load_good(POLICIES "/controllers.yaml");

    assert_int_equal(p->n_domains, 6);
    assert_controller(domain_named(p, "builtin"), 3, 8, 4);
    assert_controller(domain_named(p, "uhci"), 1, 2, 4);
    assert_controller(domain_named(p, "ehci"), 2, 6, 4);
    assert_controller(domain_named(p, "xhci"), 3, 8, 4);
    assert_controller(domain_named(p, "xhci-full"), 3, 15, 2);
    assert_controller(domain_named(p, "none"), 3, 8, 0);
    assert_null(domain_named(p, "builtin")->qmp_socket);
    /* No rules: key absent. */
    assert_int_equal(p->n_rules, 0);
    policy_free(p);
}

static void rules_names_ignore_and_match_all(void **state)
{
    struct policy *p = load_good(POLICIES "/rules.yaml");
    const struct policy_rule *r = p->rules;
    int vault = policy_find_domain(p, "vault"), work = policy_find_domain(p, "work");

    assert_str_or_null(p->domains[work].qmp_socket, "/run/xen/work-qmp.sock");
    assert_null(p->domains[vault].qmp_socket);
    assert_int_equal(p->n_rules, 7);

    assert_string_equal(r[0].name, "yubikeys go to the vault");
    assert_int_equal(r[0].domain, vault);
    assert_string_equal(r[0].match.vendor, "1050");
    assert_string_equal(r[0].match.product, "04*");

    assert_int_equal(r[1].action, RULE_IGNORE);
    assert_int_equal(r[1].domain, -1);

    /* No name; every string key; hex lowercased; explicit action: attach. */
    assert_null(r[2].name);
    assert_int_equal(r[2].line, 18);
    assert_int_equal(r[2].column, 5);
    assert_int_equal(r[2].action, RULE_ATTACH);
    assert_int_equal(r[2].domain, work);
    assert_int_equal(r[2].match.keys, MATCH_VENDOR | MATCH_PRODUCT | MATCH_MANUFACTURER |
                                          MATCH_PRODUCT_NAME | MATCH_CLASS);
    assert_string_equal(r[2].match.vendor, "046d");
    assert_string_equal(r[2].match.product, "08?e");
    assert_string_equal(r[2].match.manufacturer, "Logi*");
    assert_string_equal(r[2].match.product_name, "*Webcam*");
    assert_int_equal(r[2].match.dev_class.cls, 0xef);
    assert_int_equal(r[2].match.dev_class.subclass, 0x02);
    assert_int_equal(r[2].match.dev_class.protocol, 0x01);

    assert_string_equal(r[3].match.hub, "usb3");
    assert_int_equal(r[3].match.keys, MATCH_HUB);

    assert_int_equal(r[4].match.keys, MATCH_PORT | MATCH_CLASS);
    assert_string_equal(r[4].match.port, "1-1.[1-4]");
    assert_int_equal(r[4].match.dev_class.cls, 0xef);
    assert_int_equal(r[4].match.dev_class.subclass, -1);

    assert_int_equal(r[5].match.iface_class.cls, 0x0b);

    assert_string_equal(r[6].name, "everything else stays");
    assert_int_equal(r[6].match.keys, 0);
    assert_int_equal(r[6].action, RULE_IGNORE);
    policy_free(p);
}

/* Small inline files: the edge values of a good policy. */
static void good_inline_edges(void **state)
{
    static const char *const texts[] = {
        /* Only the version: no domains, no rules. */
        "version: 1\n",
        /* Empty values stand for empty mappings and lists. */
        "version: 1\ndefaults:\ndomains:\nrules:\n",
        /* `match:` with no value matches every device, like `match: {}`. */
        "version: 1\ndomains: {vm: }\nrules:\n  - match:\n    domain: vm\n",
        /* A comment-only tail, a document marker and a 64-character name. */
        "---\nversion: 1\ndomains:\n  "
        "a123456789012345678901234567890123456789012345678901234567890123: {}\n"
        "# the end\n...\n",
        /* An anchor that nothing refers to is harmless. */
        "version: 1\ndomains:\n  vm: &x {}\n",
    };

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct policy_diag diag = { 0 };
        struct policy *p = load_text(texts[i], &diag);

        if (!p) {
            print_message("text %zu refused\n", i);
            dump_diag(&diag);
        }
        assert_non_null(p);
        assert_int_equal(diag.n, 0);
        policy_free(p);
        policy_diag_free(&diag);
    }
}

static void match_all_variants(void **state)
{
    struct policy_diag diag = { 0 };
    struct policy *p = load_text("version: 1\n"
                                 "domains: {vm: {}}\n"
                                 "rules:\n"
                                 "  - match: {}\n"
                                 "    domain: vm\n"
                                 "  - match:\n"
                                 "    action: ignore\n",
                                 &diag);

    assert_non_null(p);
    assert_int_equal(p->n_rules, 2);
    assert_int_equal(p->rules[0].match.keys, 0);
    assert_int_equal(p->rules[0].domain, 0);
    assert_int_equal(p->rules[1].match.keys, 0);
    assert_int_equal(p->rules[1].action, RULE_IGNORE);
    policy_free(p);
    policy_diag_free(&diag);
}

/* ---- the builder and the validators ---- */

static void builder_api(void **state)
{
    struct policy *p = policy_new("builder");
    struct controller_spec spec = { .version = 3, .ports = 4, .max = 1 };
    struct rule_match m = { .keys = MATCH_HUB, .hub = strdup("usb2") };

    assert_non_null(p);
    assert_string_equal(p->source, "builder");
    assert_int_equal(policy_add_domain(p, "a", &spec, NULL), 0);
    assert_int_equal(policy_add_domain(p, "b", &policy_default_controller, "/run/b"), 1);
    assert_int_equal(policy_add_domain(p, "a", &spec, NULL), -EEXIST);
    assert_int_equal(p->n_domains, 2);
    assert_int_equal(policy_find_domain(p, "b"), 1);
    assert_int_equal(policy_find_domain(p, "c"), -ENOENT);
    assert_string_equal(p->domains[1].qmp_socket, "/run/b");

    assert_int_equal(policy_add_rule(p, strdup("r1"), 3, 4, RULE_ATTACH, 1, &m), 0);
    /* The rule took the strings. */
    assert_null(m.hub);
    assert_int_equal(m.keys, 0);
    /* An ignore rule names no domain whatever it was given. */
    assert_int_equal(policy_add_rule(p, NULL, 0, 0, RULE_IGNORE, 1, &m), 0);
    assert_int_equal(policy_finish(p), 0);
    assert_non_null(p->index);

    assert_int_equal(p->n_rules, 2);
    assert_int_equal(p->rules[0].index, 1);
    assert_string_equal(p->rules[0].name, "r1");
    assert_int_equal(p->rules[0].line, 3);
    assert_int_equal(p->rules[0].column, 4);
    assert_int_equal(p->rules[0].domain, 1);
    assert_string_equal(p->rules[0].match.hub, "usb2");
    assert_int_equal(p->rules[1].index, 2);
    assert_int_equal(p->rules[1].domain, -1);
    policy_free(p);
}

/*
 * The controller's type: auto by default (by the guest's type, when it
 * runs), devicemodel, or qusb (PV USB: version 1 or 2, 8 ports, the default
 * version 3 read as 2); qusb refused for a qmp-socket guest, a version 3
 * written out refused for qusb, an unknown type named.
 */
static void controller_types(void **state)
{
    struct policy_diag diag = { 0 };
    struct policy *p = load_text("version: 1\n"
                                 "domains:\n"
                                 "  hvm: {}\n"
                                 "  dm:\n"
                                 "    controller: {type: devicemodel, version: 1}\n"
                                 "  pv:\n"
                                 "    controller: {type: qusb}\n"
                                 "  pv1:\n"
                                 "    controller: {type: qusb, version: 1, ports: 4}\n",
                                 &diag);

    dump_diag(&diag);
    assert_non_null(p);
    assert_int_equal(domain_named(p, "hvm")->controller.type, CONTROLLER_AUTO);
    assert_int_equal(domain_named(p, "dm")->controller.type, CONTROLLER_DEVICEMODEL);
    assert_controller(domain_named(p, "dm"), 1, 2, 4);
    assert_int_equal(domain_named(p, "pv")->controller.type, CONTROLLER_QUSB);
    assert_controller(domain_named(p, "pv"), 2, 8, 4);
    assert_controller(domain_named(p, "pv1"), 1, 4, 4);
    policy_free(p);
    policy_diag_free(&diag);

    assert_bad("version: 1\n"
               "domains:\n"
               "  a:\n"
               "    controller: {type: pv}\n",
               (const char *const[]){ "t.yaml:4:24: controller type 'pv': expected auto, "
                                      "devicemodel or qusb", NULL });
    assert_bad("version: 1\n"
               "domains:\n"
               "  a:\n"
               "    controller: {type: qusb, version: 3}\n",
               (const char *const[]){ "t.yaml:4:17: controller version 3 with 8 ports: a PV "
                                      "USB (qusb) controller is version 1 or 2 (PV USB has no "
                                      "USB 3)", NULL });
    assert_bad("version: 1\n"
               "domains:\n"
               "  a:\n"
               "    qmp-socket: /run/a.qmp\n"
               "    controller: {type: qusb}\n",
               (const char *const[]){ "t.yaml:3:3: domain 'a': a 'qmp-socket' guest's "
                                      "controllers are its device model's, not 'type: qusb'",
                                      NULL });
}

/*
 * A guest name the validator accepts fits wherever the daemon keeps one: a
 * 64-character name was cut to 63 in the backends' list of running guests,
 * and that guest was then taken for one the policy does not name.
 */
static void limits_hold_what_validators_accept(void **state)
{
    char name[AUA_DOMAIN_NAME_MAX + 2];
    struct hv_domain d;
    struct state_record rec;

    memset(name, 'g', sizeof(name));
    name[AUA_DOMAIN_NAME_MAX + 1] = '\0';
    assert_non_null(policy_check_domain_name(name));
    name[AUA_DOMAIN_NAME_MAX] = '\0';
    assert_null(policy_check_domain_name(name));
    /* Room for every character and the terminating NUL. */
    assert_true(sizeof(d.name) > strlen(name));
    assert_true(sizeof(rec.domain) > strlen(name));
}

static void controller_pairs(void **state)
{
    static const struct {
        int version, ports;
        bool ok;
    } pairs[] = {
        { 1, 2, true },  { 1, 1, false }, { 1, 6, false },  { 2, 6, true },
        { 2, 2, false }, { 2, 7, false }, { 3, 1, true },   { 3, 8, true },
        { 3, 15, true }, { 3, 0, false }, { 3, 16, false }, { 0, 2, false },
        { 4, 8, false },
    };

    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const char *why = policy_check_controller(pairs[i].version, pairs[i].ports);

        if ((why == NULL) != pairs[i].ok)
            print_message("version %d ports %d\n", pairs[i].version, pairs[i].ports);
        assert_true((why == NULL) == pairs[i].ok);
    }
    assert_int_equal(policy_default_ports(1), 2);
    assert_int_equal(policy_default_ports(2), 6);
    assert_int_equal(policy_default_ports(3), 8);
    /* xHCI by default: it takes devices of every speed. */
    assert_int_equal(policy_default_controller.version, 3);
    assert_int_equal(policy_default_controller.ports, 8);
    assert_int_equal(policy_default_controller.max, 4);
}

static void class_parsing(void **state)
{
    static const struct {
        const char *text;
        int cls, subclass, protocol; /* cls -2: refused */
    } cases[] = {
        { "hid", 0x03, -1, -1 },        { "smart-card", 0x0b, -1, -1 },
        { "storage", 0x08, -1, -1 },    { "vendor", 0xff, -1, -1 },
        { "03", 0x03, -1, -1 },         { "0x0e", 0x0e, -1, -1 },
        { "FF", 0xff, -1, -1 },         { "3", 0x03, -1, -1 },
        { "03:01", 0x03, 0x01, -1 },    { "03:01:01", 0x03, 0x01, 0x01 },
        { "03:*:02", 0x03, -1, 0x02 },  { "0xe0:0x01:0x01", 0xe0, 0x01, 0x01 },
        { "*", -2, 0, 0 },              { "*:01", -2, 0, 0 },
        { "", -2, 0, 0 },               { "123", -2, 0, 0 },
        { "0x", -2, 0, 0 },             { "zz", -2, 0, 0 },
        { "03:01:01:01", -2, 0, 0 },    { "03:", -2, 0, 0 },
        { "HID", -2, 0, 0 },            { "03::01", -2, 0, 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct class_match c = { 7, 7, 7 };
        const char *why = policy_parse_class(cases[i].text, &c);

        if ((why != NULL) != (cases[i].cls == -2))
            print_message("class '%s': %s\n", cases[i].text, why ? why : "accepted");
        if (cases[i].cls == -2) {
            assert_non_null(why);
            continue;
        }
        assert_null(why);
        assert_int_equal(c.cls, cases[i].cls);
        assert_int_equal(c.subclass, cases[i].subclass);
        assert_int_equal(c.protocol, cases[i].protocol);
    }
}

static void validators(void **state)
{
    static const struct {
        const char *(*check)(const char *);
        const char *value;
        bool ok;
    } cases[] = {
        { policy_check_glob, "0012*", true },     { policy_check_glob, "[ab]*", true },
        { policy_check_glob, "[]]", true },       { policy_check_glob, "[!a]", true },
        { policy_check_glob, "a\\*", true },      { policy_check_glob, "[ab", false },
        { policy_check_glob, "ab\\", false },     { policy_check_glob, "[]", false },
        { policy_check_id_half, "1050", true },   { policy_check_id_half, "ABCD", true },
        { policy_check_id_half, "10*", true },    { policy_check_id_half, "*", true },
        { policy_check_id_half, "105", false },   { policy_check_id_half, "10500", false },
        { policy_check_id_half, "zz12", false },  { policy_check_id_half, "", false },
        { policy_check_id_half, "10[5", false },
        { policy_check_hub, "usb3", true },       { policy_check_hub, "1-1.4", true },
        { policy_check_hub, "usb0", false },      { policy_check_hub, "1-0", false },
        { policy_check_hub, "hub", false },       { policy_check_hub, "1-1.", false },
        { policy_check_domain_name, "win10", true },
        { policy_check_domain_name, "a_b.c+d-e", true },
        { policy_check_domain_name, "", false },
        { policy_check_domain_name, "a b", false },
        { policy_check_domain_name, "a/b", false },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = cases[i].check(cases[i].value);

        if ((why == NULL) != cases[i].ok)
            print_message("case %zu: '%s'\n", i, cases[i].value);
        assert_true((why == NULL) == cases[i].ok);
    }
}

/* ---- bad input: one row per kind ---- */

struct bad_case {
    const char *name;
    const char *yaml;
    const char *want[8];
};

/* Lines 1-3 of most bad cases. */
#define HEAD "version: 1\n" "domains:\n" "  vault: {}\n"

static const struct bad_case bad_cases[] = {
    { "lockout_not_a_boolean",
      "version: 1\n"
      "defaults: {allow-dom0-lockout: yes}\n"
      "domains:\n"
      "  vault: {allow-dom0-lockout: \"true\"}\n"
      "rules:\n"
      "  - {match: {}, domain: vault, allow-dom0-lockout: [true]}\n",
      { "t.yaml:2:32: 'allow-dom0-lockout' must be true or false, not 'yes'",
        "t.yaml:4:31: 'allow-dom0-lockout' must be true or false, not a quoted string",
        "t.yaml:6:52: 'allow-dom0-lockout' must be true or false, not a list" } },
    { "unknown_key_top_level",
      HEAD
      "colour: blue\n"
      "rules: []\n",
      { "t.yaml:4:1: unknown key 'colour' in the policy "
        "(expected one of: version, defaults, domains, rules)" } },
    { "unknown_key_in_rule",
      HEAD
      "rules:\n"
      "  - match: {}\n"
      "    domain: vault\n"
      "    colour: red\n",
      { "t.yaml:7:5: unknown key 'colour' in a rule "
        "(expected one of: name, match, domain, action, allow-dom0-lockout)" } },
    { "unknown_key_in_match",
      HEAD
      "rules:\n"
      "  - match:\n"
      "      id: \"1050:0407\"\n"
      "      colour: red\n"
      "    domain: vault\n",
      { "t.yaml:7:7: unknown key 'colour' in 'match' (expected one of: id, vendor, "
        "product, serial, manufacturer, product-name, hub, port, path, connector, "
        "connect-type, class, interface-class, every-interface-class, no-interface-class)" } },
    { "unknown_key_in_controller",
      "version: 1\n"
      "domains:\n"
      "  vault:\n"
      "    controller:\n"
      "      version: 2\n"
      "      port: 6\n",
      { "t.yaml:6:7: unknown key 'port' in 'controller' "
        "(expected one of: type, version, ports, max)" } },
    { "unknown_key_in_domain",
      "version: 1\n"
      "domains:\n"
      "  vault:\n"
      "    qmp_socket: /run/q\n",
      { "t.yaml:4:5: unknown key 'qmp_socket' in domain 'vault' "
        "(expected one of: controller, qmp-socket, allow-dom0-lockout)" } },
    { "wrong_type_string_for_mapping",
      "version: 1\n"
      "domains: vault\n"
      "rules:\n"
      "  - match: \"1050:0407\"\n"
      "    action: ignore\n",
      { "t.yaml:2:10: 'domains' must be a mapping, not a scalar",
        "t.yaml:4:12: 'match' must be a mapping, not a scalar" } },
    { "wrong_type_list_for_scalar",
      HEAD
      "rules:\n"
      "  - match:\n"
      "      serial: [a, b]\n"
      "    domain: [vault]\n",
      { "t.yaml:6:15: 'serial' must be a string, not a list",
        "t.yaml:7:13: 'domain' must be a string, not a list" } },
    { "wrong_type_quoted_number",
      "version: 1\n"
      "domains:\n"
      "  vault:\n"
      "    controller: {version: 3, ports: \"8\"}\n",
      { "t.yaml:4:37: 'ports' must be a number, not a quoted string" } },
    { "wrong_type_word_for_number",
      "version: 1\n"
      "defaults:\n"
      "  controller: {max: many}\n",
      { "t.yaml:3:21: 'max' must be a number, not 'many'" } },
    { "wrong_type_rules_not_a_list",
      HEAD
      "rules: {match: {}}\n",
      { "t.yaml:4:8: 'rules' must be a list, not a mapping" } },
    { "wrong_type_rule_not_a_mapping",
      HEAD
      "rules:\n"
      "  - vault\n",
      { "t.yaml:5:5: a rule must be a mapping with 'match' and 'domain' or "
        "'action: ignore', not a scalar" } },
    { "wrong_type_key_not_a_name",
      "version: 1\n"
      "? [a, b]\n"
      ": c\n",
      { "t.yaml:2:3: a key in the policy must be a plain name, not a list" } },
    { "wrong_type_root_not_a_mapping",
      "- version: 1\n",
      { "t.yaml:1:1: a policy is a mapping with 'version', 'domains' and 'rules', "
        "not a list" } },
    { "bad_vendor_product",
      HEAD
      "rules:\n"
      "  - match:\n"
      "      id: \"zz:12\"\n"
      "    domain: vault\n"
      "  - match:\n"
      "      id: \"1050\"\n"
      "    domain: vault\n"
      "  - match:\n"
      "      id: \"1050:0407:1\"\n"
      "    domain: vault\n"
      "  - match:\n"
      "      vendor: \"10500\"\n"
      "    domain: vault\n",
      { "t.yaml:6:11: bad vendor:product 'zz:12': expected four hex digits or a glob "
        "on each side, such as 1050:0407 or 1050:*",
        "t.yaml:9:11: bad vendor:product '1050': expected two parts such as 1050:0407",
        "t.yaml:12:11: bad vendor:product '1050:0407:1': expected two parts such as "
        "1050:0407",
        "t.yaml:15:15: bad vendor '10500': expected four hex digits or a glob such as "
        "10*" } },
    { "bad_glob",
      HEAD
      "rules:\n"
      "  - match:\n"
      "      serial: \"[ab\"\n"
      "    domain: vault\n"
      "  - match:\n"
      "      serial: 'ab\\'\n"
      "    domain: vault\n"
      "  - match:\n"
      "      port: \"1-[2\"\n"
      "    domain: vault\n",
      { "t.yaml:6:15: bad glob '[ab' for 'serial': a '[' in a glob has no closing ']'",
        "t.yaml:9:15: bad glob 'ab\\' for 'serial': a glob must not end in a lone "
        "backslash",
        "t.yaml:12:13: bad glob '1-[2' for 'port': a '[' in a glob has no closing ']'" } },
    { "bad_hub_port_and_class",
      HEAD
      "rules:\n"
      "  - match: {hub: \"1-0\"}\n"
      "    domain: vault\n"
      "  - match: {port: \"x-1\"}\n"
      "    domain: vault\n"
      "  - match: {class: \"0x123\"}\n"
      "    domain: vault\n",
      { "t.yaml:5:18: bad hub '1-0': expected a root hub such as usb3, a hub's port "
        "path such as 1-1.4, or a path such as pci-0000:00:14.0, "
        "pci-0000:00:14.0-usb-0:1, pci-0000:00:14.0-usbv3 or pci-0000:00:14.0-usbv3-0:1",
        "t.yaml:7:19: bad port 'x-1': expected a port path such as 1-1.4, or a glob",
        "t.yaml:9:20: bad class '0x123': expected a class name (hid, storage, "
        "smart-card, audio, video...) or hex class[:subclass[:protocol]] such as 03 "
        "or 03:01:01" } },
    { "bad_path_and_path_hub",
      HEAD
      "rules:\n"
      "  - match: {path: \"pci-[0000\"}\n"
      "    domain: vault\n"
      "  - match: {hub: \"pci-0000:00:14.0-usb-0:*\"}\n"
      "    domain: vault\n"
      "  - match: {hub: \"pci-0000:00:14.0-usb-0:1\", path: \"pci-*\"}\n"
      "    domain: vault\n"
      "  - match: {hub: \"pci-0000:00:14.0-usbv4-0:1\"}\n"
      "    domain: vault\n"
      "  - match: {hub: \"pci-0000:00:14.0-usbv3-0:1\"}\n"
      "    domain: vault\n"
      "  - match: {hub: \"pci-0000:00:14.0-usbv2\"}\n"
      "    domain: vault\n"
      "  - match: {connector: \"pci-0000:00:14.0-usb-0:1\"}\n"
      "    domain: vault\n"
      "  - match: {connector: \"pci-0000:00:14.0-usbv3\"}\n"
      "    domain: vault\n"
      "  - match: {connector: \"pci-0000:00:14.0-usbv3-0:*\"}\n"
      "    domain: vault\n"
      "  - match: {connector: \"pci-0000:00:14.0-usbv3-0:1.4\"}\n"
      "    domain: vault\n",
      { "t.yaml:5:19: bad glob 'pci-[0000' for 'path': a '[' in a glob has no closing ']'",
        "t.yaml:7:18: bad hub 'pci-0000:00:14.0-usb-0:*': expected a root hub such as usb3, "
        "a hub's port path such as 1-1.4, or a path such as pci-0000:00:14.0, "
        "pci-0000:00:14.0-usb-0:1, pci-0000:00:14.0-usbv3 or pci-0000:00:14.0-usbv3-0:1",
        "t.yaml:11:18: bad hub 'pci-0000:00:14.0-usbv4-0:1': expected a root hub such as usb3, "
        "a hub's port path such as 1-1.4, or a path such as pci-0000:00:14.0, "
        "pci-0000:00:14.0-usb-0:1, pci-0000:00:14.0-usbv3 or pci-0000:00:14.0-usbv3-0:1",
        "t.yaml:17:24: bad connector 'pci-0000:00:14.0-usb-0:1': " WHY_CONNECTOR,
        "t.yaml:19:24: bad connector 'pci-0000:00:14.0-usbv3': " WHY_CONNECTOR,
        "t.yaml:21:24: bad connector 'pci-0000:00:14.0-usbv3-0:*': " WHY_CONNECTOR } },
    { "bad_connect_type_and_class_sets",
      HEAD
      "rules:\n"
      "  - match: {connect-type: \"not used\"}\n"
      "    domain: vault\n"
      "  - match: {every-interface-class: []}\n"
      "    domain: vault\n"
      "  - match: {no-interface-class: [hid, keyboard, {a: b}]}\n"
      "    domain: vault\n"
      "  - match: {every-interface-class: [hid, hid, hid, hid, hid, hid, hid, hid, hid, hid, hid, "
      "hid, hid, hid, hid, hid, hid]}\n"
      "    domain: vault\n"
      "  - match: {every-interface-class: [hid, \"08:06:50\"], no-interface-class: \"03:01:01\", "
      "connect-type: hotplug}\n"
      "    domain: vault\n",
      { "t.yaml:5:27: bad connect-type 'not used': expected hotplug, hardwired or unknown",
        "t.yaml:7:36: 'every-interface-class' takes 1 to 16 classes, not 0",
        "t.yaml:9:39: bad class 'keyboard' in 'no-interface-class': expected a class name (hid, "
        "storage, smart-card, audio, video...) or hex class[:subclass[:protocol]] such as 03 "
        "or 03:01:01",
        "t.yaml:9:49: 'no-interface-class' must be a string, not a mapping",
        "t.yaml:11:36: 'every-interface-class' takes 1 to 16 classes, not 17" } },
    { "unknown_domain_reference",
      HEAD
      "rules:\n"
      "  - match: {}\n"
      "    domain: valt\n",
      { "t.yaml:6:13: unknown domain 'valt' (declare it under 'domains:')" } },
    { "duplicate_domain",
      HEAD
      "  vault: {}\n",
      { "t.yaml:4:3: duplicate domain 'vault' (first at line 3)" } },
    { "duplicate_key",
      "version: 1\n"
      "version: 1\n"
      "domains:\n"
      "  vault: {}\n"
      "rules:\n"
      "  - match: {}\n"
      "    domain: vault\n"
      "    domain: vault\n",
      { "t.yaml:2:1: duplicate key 'version' in the policy (first at line 1)",
        "t.yaml:8:5: duplicate key 'domain' in a rule (first at line 7)" } },
    { "bad_controller_pair",
      "version: 1\n"
      "domains:\n"
      "  a:\n"
      "    controller: {version: 2, ports: 7}\n"
      "  b:\n"
      "    controller: {version: 1, ports: 6}\n"
      "  c:\n"
      "    controller: {version: 3, ports: 16}\n"
      "  d:\n"
      "    controller: {version: 4}\n",
      { "t.yaml:4:17: controller version 2 with 7 ports: a version 2 controller has "
        "exactly 6 ports",
        "t.yaml:6:17: controller version 1 with 6 ports: a version 1 controller has "
        "exactly 2 ports",
        "t.yaml:8:37: 'ports' must be between 1 and 15, not 16",
        "t.yaml:10:27: 'version' must be between 1 and 3, not 4" } },
    { "bad_controller_pair_in_defaults",
      /* Reported once, at the defaults, however many domains use them. */
      "version: 1\n"
      "defaults:\n"
      "  controller: {version: 1, ports: 6}\n"
      "domains:\n"
      "  a: {}\n"
      "  b: {}\n",
      { "t.yaml:3:15: controller version 1 with 6 ports: a version 1 controller has "
        "exactly 2 ports" } },
    { "bad_domain_name",
      "version: 1\n"
      "domains:\n"
      "  \"bad name!\": {}\n"
      "  a1234567890123456789012345678901234567890123456789012345678901234: {}\n",
      { "t.yaml:3:3: bad domain name 'bad name!': a domain name has only letters, "
        "digits and _ . + -",
        "t.yaml:4:3: bad domain name "
        "'a1234567890123456789012345678901234567890123456789012345678901234': "
        "a domain name has 1 to 64 characters" } },
    { "bad_qmp_socket",
      "version: 1\n"
      "domains:\n"
      "  vault: {qmp-socket: run/q.sock}\n",
      { "t.yaml:3:23: 'qmp-socket' must be an absolute path, not 'run/q.sock'" } },
    { "bad_rule_shape",
      HEAD
      "rules:\n"
      "  - domain: vault\n"
      "  - match: {}\n"
      "    action: ignore\n"
      "    domain: vault\n"
      "  - match: {}\n"
      "    domain: vault\n"
      "    action: eject\n",
      { "t.yaml:5:5: a rule needs 'match:' (use 'match: {}' to match every device)",
        "t.yaml:8:13: a rule with 'action: ignore' names no domain",
        "t.yaml:11:13: bad action 'eject': expected attach or ignore" } },
    { "empty_file",
      "",
      { "t.yaml:1:1: the policy is empty (expected 'version: 1', 'domains' and "
        "'rules')" } },
    { "only_comments",
      "# a policy\n"
      "\n"
      "   # with nothing in it\n",
      { "t.yaml:1:1: the policy is empty (expected 'version: 1', 'domains' and "
        "'rules')" } },
    { "not_yaml",
      "[general]\n"
      "domain = vault\n"
      "hub = usb3\n",
      { "t.yaml:2:1: YAML syntax error: did not find expected <document start>" } },
    { "yaml_syntax_error_unclosed_flow",
      "version: 1\n"
      "domains: {vault: {}\n"
      "rules: []\n",
      { "t.yaml:3:1: YAML syntax error: did not find expected ',' or '}' while "
        "parsing a flow mapping" } },
    { "yaml_alias",
      "version: 1\n"
      "domains:\n"
      "  vault: &v {}\n"
      "  other: *v\n",
      { "t.yaml:4:10: YAML aliases (*name) are not supported in a policy" } },
    { "two_documents",
      "version: 1\n"
      "---\n"
      "version: 1\n",
      { "t.yaml:2:1: a policy file holds one YAML document, found a second one" } },
    { "missing_version",
      "domains:\n"
      "  vault: {}\n",
      { "t.yaml:1:1: missing 'version: 1'" } },
    { "version_2",
      "version: 2\n",
      { "t.yaml:1:10: 'version' must be between 1 and 1, not 2" } },
    { "version_quoted",
      "version: \"1\"\n",
      { "t.yaml:1:10: 'version' must be a number, not a quoted string" } },
};

static void bad_input(void **state)
{
    const struct bad_case *c = *state;

    assert_bad(c->yaml, c->want);
}

/* The NUL case above needs its real length: strlen stops at the NUL. */
static void binary_file_nul_position(void **state)
{
    static const char elf[] = "\x7f" "ELF\x02\x01\x01\0\0\0";
    static const char text[] = "version: 1\n# ok\n  x\0y\n";
    static const char *const want_elf[] = {
        "bin:1:8: this is a binary file, not a YAML policy (NUL byte)", NULL,
    };
    static const char *const want_text[] = {
        "bin:3:4: this is a binary file, not a YAML policy (NUL byte)", NULL,
    };
    struct policy_diag diag = { 0 };

    assert_null(policy_load_buffer("bin", elf, sizeof(elf) - 1, &diag));
    assert_diag(&diag, want_elf);
    assert_null(policy_load_buffer("bin", text, sizeof(text) - 1, &diag));
    assert_diag(&diag, want_text);
}

/* Bytes that are not UTF-8 (a binary file without NUL) are named where they are. */
static void binary_file_invalid_utf8_position(void **state)
{
    static const char *const want[] = {
        "t.yaml:3:10: YAML syntax error: invalid leading UTF-8 octet", NULL,
    };

    assert_bad("version: 1\n"
               "domains:\n"
               "  vault: \xff\xfe\x80\n",
               want);
}

/* ---- whole-file properties ---- */

static void all_errors_reported_in_order(void **state)
{
    static const char *const want[] = {
        "t.yaml:4:5: unknown key 'controler' in domain 'vault' "
        "(expected one of: controller, qmp-socket, allow-dom0-lockout)",
        "t.yaml:7:17: bad vendor:product '1050:zzzz': expected four hex digits or a "
        "glob on each side, such as 1050:0407 or 1050:*",
        "t.yaml:10:13: unknown domain 'valt' (declare it under 'domains:')",
        NULL,
    };

    assert_bad("version: 1\n"
               "domains:\n"
               "  vault:\n"
               "    controler: {version: 2}\n"
               "rules:\n"
               "  - name: one\n"
               "    match: {id: \"1050:zzzz\"}\n"
               "    domain: vault\n"
               "  - match: {port: \"1-1\"}\n"
               "    domain: valt\n"
               "  - match: {hub: usb1}\n"
               "    domain: vault\n",
               want);
}

/* Errors come out in file order, whichever section they are in. */
static void errors_in_file_order_across_sections(void **state)
{
    static const char *const want[] = {
        "t.yaml:6:13: unknown domain 'valt' (declare it under 'domains:')",
        "t.yaml:7:1: unknown key 'colour' in the policy "
        "(expected one of: version, defaults, domains, rules)",
        NULL,
    };

    assert_bad(HEAD
               "rules:\n"
               "  - match: {}\n"
               "    domain: valt\n"
               "colour: blue\n",
               want);
}

/* A file with n rules that each name an unknown domain: n errors. */
static char *many_errors(unsigned n)
{
    size_t cap = 64 + (size_t)n * 48, len = 0;
    char *text = malloc(cap);

    assert_non_null(text);
    len += (size_t)snprintf(text, cap, "version: 1\nrules:\n");
    for (unsigned i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "  - match: {}\n    domain: d%u\n", i);
    return text;
}

static void error_cap(void **state)
{
    struct policy_diag diag = { 0 };
    char *text = many_errors(POLICY_MAX_ERRORS);

    /* Exactly the cap: all reported, not truncated. */
    assert_null(load_text(text, &diag));
    assert_int_equal(diag.n, POLICY_MAX_ERRORS);
    assert_false(diag.truncated);
    assert_string_equal(diag.msgs[0],
                        "t.yaml:4:13: unknown domain 'd0' (declare it under 'domains:')");
    assert_string_equal(diag.msgs[POLICY_MAX_ERRORS - 1],
                        "t.yaml:202:13: unknown domain 'd99' (declare it under 'domains:')");
    policy_diag_free(&diag);
    free(text);

    /* One more: the cap holds and truncated says so. */
    text = many_errors(POLICY_MAX_ERRORS * 3 / 2);
    assert_null(load_text(text, &diag));
    assert_int_equal(diag.n, POLICY_MAX_ERRORS);
    assert_true(diag.truncated);
    assert_string_equal(diag.msgs[POLICY_MAX_ERRORS - 1],
                        "t.yaml:202:13: unknown domain 'd99' (declare it under 'domains:')");
    policy_diag_free(&diag);
    free(text);
}

/*
 * The rules are read while the file is parsed: 'domains:' and 'defaults:'
 * after them still give them their domains and their allow-dom0-lockout,
 * exactly as in the usual order.
 */
static void rules_before_domains_and_defaults(void **state)
{
    static const char *const want[] = {
        "t.yaml:4:34: unknown domain 'valt' (declare it under 'domains:')",
        NULL,
    };
    struct policy_diag diag = { 0 };
    struct policy *p = load_text("version: 1\n"
                                 "rules:\n"
                                 "  - {match: {port: 1-1}, domain: sys-usb}\n"
                                 "  - {match: {port: 1-2}, domain: vault}\n"
                                 "  - {match: {port: 1-3}, action: ignore}\n"
                                 "  - {match: {port: 1-4}, domain: vault, allow-dom0-lockout: true}\n"
                                 "domains:\n"
                                 "  vault: {allow-dom0-lockout: false}\n"
                                 "  sys-usb: {}\n"
                                 "defaults: {allow-dom0-lockout: true}\n",
                                 &diag);

    dump_diag(&diag);
    assert_non_null(p);
    assert_int_equal(diag.n, 0);
    assert_int_equal(p->n_rules, 4);
    assert_int_equal(p->rules[0].domain, policy_find_domain(p, "sys-usb"));
    assert_int_equal(p->rules[1].domain, policy_find_domain(p, "vault"));
    assert_int_equal(p->rules[2].domain, -1);
    assert_int_equal(p->rules[3].domain, policy_find_domain(p, "vault"));
    assert_true(p->rules[0].allow_lockout);     /* sys-usb's, from the defaults */
    assert_false(p->rules[1].allow_lockout);    /* vault's own */
    assert_true(p->rules[2].allow_lockout);     /* an ignore rule: the defaults' */
    assert_true(p->rules[3].allow_lockout);     /* the rule's own */
    policy_free(p);

    /* An unknown domain is found once 'domains:' has been read. */
    assert_bad("version: 1\n"
               "rules:\n"
               "  - {match: {port: 1-1}, domain: vault}\n"
               "  - {match: {port: 1-2}, domain: valt}\n"
               "domains:\n"
               "  vault: {}\n",
               want);
}

/* A YAML syntax error is the one message, even after rules with mistakes. */
static void syntax_error_alone(void **state)
{
    static const char *const want[] = {
        "t.yaml:8:1: YAML syntax error: could not find expected ':' while scanning a simple "
        "key",
        NULL,
    };

    assert_bad(HEAD
               "rules:\n"
               "  - {match: {port: nowhere}, domain: valt}\n"
               "  - {match: {}, domain: vault}\n"
               "  oops\n",
               want);
}

/*
 * Past the cap the messages that come first in the file are kept, though the
 * rules' are found before the version's (they are read while parsing).
 */
static void error_cap_keeps_the_first_in_the_file(void **state)
{
    struct policy_diag diag = { 0 };
    char *text = many_errors(POLICY_MAX_ERRORS * 2);

    text[strlen("version: ")] = '2';
    assert_null(load_text(text, &diag));
    assert_int_equal(diag.n, POLICY_MAX_ERRORS);
    assert_true(diag.truncated);
    assert_string_equal(diag.msgs[0], "t.yaml:1:10: 'version' must be between 1 and 1, not 2");
    assert_string_equal(diag.msgs[1],
                        "t.yaml:4:13: unknown domain 'd0' (declare it under 'domains:')");
    assert_string_equal(diag.msgs[POLICY_MAX_ERRORS - 1],
                        "t.yaml:200:13: unknown domain 'd98' (declare it under 'domains:')");
    policy_diag_free(&diag);
    free(text);
}

static void diag_appends_across_loads(void **state)
{
    struct policy_diag diag = { 0 };

    assert_null(policy_load_buffer("a.yaml", "", 0, &diag));
    assert_null(policy_load_buffer("b.yaml", "version: 2\n", 11, &diag));
    assert_int_equal(diag.n, 2);
    assert_true(strncmp(diag.msgs[0], "a.yaml:1:1: ", 12) == 0);
    assert_true(strncmp(diag.msgs[1], "b.yaml:1:10: ", 13) == 0);
    policy_diag_free(&diag);
    assert_int_equal(diag.n, 0);
    assert_null(diag.msgs);
}

/* A temporary directory, removed with its files by the test. */
static char *temp_dir(void)
{
    char *dir = strdup("/tmp/test-policy.XXXXXX");

    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void huge_file(void **state)
{
    char *dir = temp_dir(), path[256], msg[512];
    const char *const want[] = { msg, NULL };
    struct policy_diag diag = { 0 };
    struct policy *p;
    int fd, r;

    snprintf(path, sizeof(path), "%s/huge.yaml", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    /* 100 MB, sparse: no disk space, and the parser must not read it. */
    r = ftruncate(fd, 100 << 20);
    close(fd);
    p = policy_load(path, false, &diag);
    unlink(path);
    rmdir(dir);
    free(dir);
    assert_int_equal(r, 0);
    snprintf(msg, sizeof(msg),
             "%s:1:1: the file is too large (104857600 bytes; a policy may have at most "
             "16777216)",
             path);
    assert_diag(&diag, want);
    assert_null(p);
}

static void huge_buffer(void **state)
{
    static const char *const want[] = {
        "big:1:1: the file is too large (16777217 bytes; a policy may have at most "
        "16777216)",
        NULL,
    };
    struct policy_diag diag = { 0 };
    char *buf = calloc(1, POLICY_MAX_BYTES + 1);

    assert_non_null(buf);
    assert_null(policy_load_buffer("big", buf, POLICY_MAX_BYTES + 1, &diag));
    free(buf);
    assert_diag(&diag, want);
}

static void file_errors(void **state)
{
    char *dir = temp_dir(), path[256], msg[512];
    const char *const want[] = { msg, NULL };
    struct policy_diag diag = { 0 };

    snprintf(path, sizeof(path), "%s/missing.yaml", dir);
    assert_null(policy_load(path, false, &diag));
    snprintf(msg, sizeof(msg), "%s:1:1: cannot open: No such file or directory", path);
    assert_diag(&diag, want);

    assert_null(policy_load(dir, false, &diag));
    snprintf(msg, sizeof(msg), "%s:1:1: not a regular file", dir);
    rmdir(dir);
    free(dir);
    assert_diag(&diag, want);
}

/* Errors in a real file carry its path. */
static void file_error_names_path(void **state)
{
    static const char text[] = "version: 1\nrules:\n  - match: {}\n    domain: nowhere\n";
    char *dir = temp_dir(), path[256], msg[512];
    const char *const want[] = { msg, NULL };
    struct policy_diag diag = { 0 };
    struct policy *p;
    FILE *f;

    snprintf(path, sizeof(path), "%s/p.yaml", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, sizeof(text) - 1, f), sizeof(text) - 1);
    fclose(f);
    p = policy_load(path, false, &diag);
    unlink(path);
    rmdir(dir);
    free(dir);
    snprintf(msg, sizeof(msg),
             "%s:4:13: unknown domain 'nowhere' (declare it under 'domains:')", path);
    assert_diag(&diag, want);
    assert_null(p);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/*
 * policy_file_unchanged: the file as loaded is unchanged; an edit of the
 * same size within the times' grain (simulated: the stat taken after the
 * edit, as if nothing had moved) is told by the text's hash, in the first
 * byte, the last one or the tail of fewer than 8 bytes; any stat change is
 * a change; a policy from a buffer is never "unchanged".
 */
static void file_unchanged(void **state)
{
    static const char text[] = "version: 1\ndomains: { vault: {} }\nrules:\n"
                               "  - match: { id: \"1050:0407\" }\n    domain: vault\n";
    char *dir = temp_dir(), path[256], edited[sizeof(text)];
    struct policy_diag diag = { 0 };
    struct policy *p;
    size_t at[] = { 0, sizeof(text) - 2, sizeof(text) - 5, 20 };

    snprintf(path, sizeof(path), "%s/p.yaml", dir);
    write_file(path, text);
    p = policy_load(path, false, &diag);
    assert_non_null(p);
    assert_true(policy_file_unchanged(p, path));
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        memcpy(edited, text, sizeof(text));
        edited[at[i]] = edited[at[i]] == '#' ? '%' : '#';
        write_file(path, edited);
        assert_int_equal(stat(path, &p->text.st), 0);
        assert_false(policy_file_unchanged(p, path));
        write_file(path, text);
        assert_int_equal(stat(path, &p->text.st), 0);
        assert_true(policy_file_unchanged(p, path));
    }
    /* Same text, another mode: a change (the trust check must run again). */
    assert_int_equal(chmod(path, 0640), 0);
    assert_false(policy_file_unchanged(p, path));
    assert_int_equal(stat(path, &p->text.st), 0);
    assert_true(policy_file_unchanged(p, path));
    /* Gone: a change. */
    unlink(path);
    assert_false(policy_file_unchanged(p, path));
    policy_free(p);
    /* From a buffer: nothing to compare with. */
    p = policy_load_buffer(path, text, sizeof(text) - 1, &diag);
    assert_non_null(p);
    write_file(path, text);
    assert_false(policy_file_unchanged(p, path));
    policy_free(p);
    unlink(path);
    rmdir(dir);
    free(dir);
}

/* "x: " then depth opening brackets: the root mapping is level 0. */
static char *nested(unsigned depth)
{
    char *text = malloc(16 + 2 * (size_t)depth);
    size_t len;

    assert_non_null(text);
    len = (size_t)sprintf(text, "version: 1\nx: ");
    memset(text + len, '[', depth);
    memset(text + len + depth, ']', depth);
    text[len + 2 * depth] = '\n';
    text[len + 2 * depth + 1] = '\0';
    return text;
}

static void deep_nesting(void **state)
{
    static const char *const too_deep[] = {
        "t.yaml:2:35: nesting is too deep (more than 32 levels)", NULL,
    };
    static const char *const just_fits[] = {
        "t.yaml:2:1: unknown key 'x' in the policy "
        "(expected one of: version, defaults, domains, rules)",
        NULL,
    };
    char *text;

    /* 31 brackets under the root: 32 levels, parsed (then x is unknown). */
    text = nested(POLICY_MAX_DEPTH - 1);
    assert_bad(text, just_fits);
    free(text);
    /* One more is refused at the 32nd bracket, column 4 + 31. */
    text = nested(POLICY_MAX_DEPTH);
    assert_bad(text, too_deep);
    free(text);
    /* Very deep input stops at the same place: no recursion to the bottom. */
    text = nested(100000);
    assert_bad(text, too_deep);
    free(text);
}

/* ---- main: fixed tests, then one test per row of bad_cases ---- */

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(example_policy),
        cmocka_unit_test(defaults_merged_into_domains),
        cmocka_unit_test(lockout_levels),
        cmocka_unit_test(controller_defaults_per_version),
        cmocka_unit_test(rules_names_ignore_and_match_all),
        cmocka_unit_test(good_inline_edges),
        cmocka_unit_test(match_all_variants),
        cmocka_unit_test(builder_api),
        cmocka_unit_test(controller_pairs),
        cmocka_unit_test(controller_types),
        cmocka_unit_test(limits_hold_what_validators_accept),
        cmocka_unit_test(class_parsing),
        cmocka_unit_test(validators),
        cmocka_unit_test(binary_file_nul_position),
        cmocka_unit_test(binary_file_invalid_utf8_position),
        cmocka_unit_test(all_errors_reported_in_order),
        cmocka_unit_test(errors_in_file_order_across_sections),
        cmocka_unit_test(error_cap),
        cmocka_unit_test(rules_before_domains_and_defaults),
        cmocka_unit_test(syntax_error_alone),
        cmocka_unit_test(error_cap_keeps_the_first_in_the_file),
        cmocka_unit_test(diag_appends_across_loads),
        cmocka_unit_test(huge_file),
        cmocka_unit_test(huge_buffer),
        cmocka_unit_test(file_errors),
        cmocka_unit_test(file_error_names_path),
        cmocka_unit_test(file_unchanged),
        cmocka_unit_test(deep_nesting),
    };
    enum { N_FIXED = sizeof(fixed) / sizeof(fixed[0]),
           N_BAD = sizeof(bad_cases) / sizeof(bad_cases[0]) };
    struct CMUnitTest tests[N_FIXED + N_BAD];

    memcpy(tests, fixed, sizeof(fixed));
    for (size_t i = 0; i < N_BAD; i++) {
        tests[N_FIXED + i] = (struct CMUnitTest){
            .name = bad_cases[i].name,
            .test_func = bad_input,
            .initial_state = (void *)(uintptr_t)&bad_cases[i],
        };
    }
    return _cmocka_run_group_tests("test-policy", tests, N_FIXED + N_BAD, NULL, NULL);
}

/*
 * Unit tests of the command line (src/options.c).
 *
 * The old script's options (-d -u -x -n -s --usb-version -v -q -w and their
 * long forms) are parsed, and -d/-u/-x become a policy equal, rule for rule,
 * to the policy file that says the same thing.  Every error returns
 * OPTIONS_ERROR and prints one message naming the option: stderr is captured
 * (dup2 onto a temporary file) and compared.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "options.h"
#include "policy.h"

#include "unit.h"

/* A writable argv for getopt (it may permute it); argc is counted. */
#define ARGV(...) ((char *[]){ "auto-usb-attach", __VA_ARGS__, NULL })

static int count(char **argv)
{
    int n = 0;

    while (argv[n])
        n++;
    return n;
}

/* ---- capturing what options_parse prints ---- */

struct capture {
    int fd;         /* the stream's own fd, 1 or 2 */
    int saved;
    FILE *tmp;
    char text[8192];
};

static void capture_begin(struct capture *c, int fd)
{
    fflush(fd == 1 ? stdout : stderr);
    c->fd = fd;
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), fd) >= 0);
}

static const char *capture_end(struct capture *c)
{
    size_t n;

    fflush(c->fd == 1 ? stdout : stderr);
    dup2(c->saved, c->fd);
    close(c->saved);
    rewind(c->tmp);
    n = fread(c->text, 1, sizeof(c->text) - 1, c->tmp);
    c->text[n] = '\0';
    fclose(c->tmp);
    return c->text;
}

/* Parses argv, capturing stderr into err (which must be empty on success). */
static enum options_result parse(char **argv, struct options *o, char *err, size_t len)
{
    struct capture c;
    enum options_result r;

    capture_begin(&c, 2);
    r = options_parse(count(argv), argv, o);
    snprintf(err, len, "%s", capture_end(&c));
    return r;
}

static void assert_parse_ok(char **argv, struct options *o)
{
    char err[1024];

    enum options_result r = parse(argv, o, err, sizeof(err));

    assert_string_equal(err, "");
    assert_int_equal(r, OPTIONS_RUN);
}

/* ---- comparing policies ---- */

static void assert_same_str(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_same_class(const struct class_match *a, const struct class_match *b)
{
    assert_int_equal(a->cls, b->cls);
    assert_int_equal(a->subclass, b->subclass);
    assert_int_equal(a->protocol, b->protocol);
}

/* Equal in everything a decision depends on: not the rule names or lines. */
static void assert_same_policy(const struct policy *a, const struct policy *b)
{
    assert_int_equal(a->n_domains, b->n_domains);
    for (unsigned i = 0; i < a->n_domains; i++) {
        assert_string_equal(a->domains[i].name, b->domains[i].name);
        assert_int_equal(a->domains[i].controller.version, b->domains[i].controller.version);
        assert_int_equal(a->domains[i].controller.ports, b->domains[i].controller.ports);
        assert_int_equal(a->domains[i].controller.max, b->domains[i].controller.max);
        assert_same_str(a->domains[i].qmp_socket, b->domains[i].qmp_socket);
        assert_int_equal(a->domains[i].allow_lockout, b->domains[i].allow_lockout);
    }
    assert_int_equal(a->n_rules, b->n_rules);
    for (unsigned i = 0; i < a->n_rules; i++) {
        const struct policy_rule *x = &a->rules[i], *y = &b->rules[i];

        assert_int_equal(x->index, y->index);
        assert_int_equal(x->action, y->action);
        assert_int_equal(x->domain, y->domain);
        assert_int_equal(x->allow_lockout, y->allow_lockout);
        assert_int_equal(x->match.keys, y->match.keys);
        assert_same_str(x->match.vendor, y->match.vendor);
        assert_same_str(x->match.product, y->match.product);
        assert_same_str(x->match.serial, y->match.serial);
        assert_same_str(x->match.manufacturer, y->match.manufacturer);
        assert_same_str(x->match.product_name, y->match.product_name);
        assert_same_str(x->match.hub, y->match.hub);
        assert_same_str(x->match.port, y->match.port);
        if (x->match.keys & MATCH_CLASS)
            assert_same_class(&x->match.dev_class, &y->match.dev_class);
        if (x->match.keys & MATCH_IFACE_CLASS)
            assert_same_class(&x->match.iface_class, &y->match.iface_class);
    }
    assert_non_null(a->index);
    assert_non_null(b->index);
}

static struct policy *from_options(const struct options *o)
{
    struct policy_diag diag = { 0 };
    struct policy *p = options_policy(o, &diag);

    assert_int_equal(diag.n, 0);
    assert_non_null(p);
    return p;
}

/* ---- the old script's options ---- */

static void legacy_short_options(void **state)
{
    struct options o;
    struct policy *cli, *file;

    assert_parse_ok(ARGV("-d", "D", "-u", "usb3", "-u", "1-1", "-x", "1050:0407", "-n", "-s",
                         "/run/x.sock", "--usb-version", "3", "-v", "-q", "-v", "-w"),
                    &o);
    assert_string_equal(o.domain, "D");
    assert_int_equal(o.n_hubs, 2);
    assert_string_equal(o.hubs[0], "usb3");
    assert_string_equal(o.hubs[1], "1-1");
    assert_int_equal(o.n_ids, 1);
    assert_string_equal(o.ids[0], "1050:0407");
    assert_true(o.no_wait);
    assert_string_equal(o.qmp_socket, "/run/x.sock");
    assert_int_equal(o.usb_version, 3);
    assert_int_equal(o.verbosity, 1);
    assert_null(o.policy_file);
    assert_true(options_legacy(&o));
    assert_false(o.dry_run || o.json || o.check || o.once || o.foreground);

    cli = from_options(&o);
    file = unit_policy("version: 1\n"
                       "domains:\n"
                       "  D:\n"
                       "    controller: {version: 3}\n"
                       "    qmp-socket: /run/x.sock\n"
                       "rules:\n"
                       "  - match: {hub: usb3}\n"
                       "    domain: D\n"
                       "  - match: {hub: \"1-1\"}\n"
                       "    domain: D\n"
                       "  - match: {id: \"1050:0407\"}\n"
                       "    domain: D\n");
    assert_same_policy(cli, file);
    assert_string_equal(cli->source, "command line");
    assert_int_equal(cli->domains[0].controller.ports, 8);
    assert_string_equal(cli->rules[0].name, "-u usb3");
    assert_string_equal(cli->rules[1].name, "-u 1-1");
    assert_string_equal(cli->rules[2].name, "-x 1050:0407");
    policy_free(cli);
    policy_free(file);
    options_free(&o);
}

static void legacy_long_options(void **state)
{
    struct options o;
    struct policy *cli, *file;

    assert_parse_ok(ARGV("--domain", "win10", "--hub", "2-1.4", "--specific-device",
                         "046D:C31C", "--specific-device=1050:0407", "--qmp-socket=/run/q",
                         "--no-wait", "--wait-on-shutdown", "--verbose", "--verbose",
                         "--usb-version=1"),
                    &o);
    assert_string_equal(o.domain, "win10");
    assert_int_equal(o.n_hubs, 1);
    assert_int_equal(o.n_ids, 2);
    assert_string_equal(o.qmp_socket, "/run/q");
    assert_true(o.no_wait);
    assert_int_equal(o.verbosity, 2);
    assert_int_equal(o.usb_version, 1);

    cli = from_options(&o);
    file = unit_policy("version: 1\n"
                       "domains:\n"
                       "  win10: {controller: {version: 1}, qmp-socket: /run/q}\n"
                       "rules:\n"
                       "  - {match: {hub: \"2-1.4\"}, domain: win10}\n"
                       "  - {match: {id: \"046d:c31c\"}, domain: win10}\n"
                       "  - {match: {id: \"1050:0407\"}, domain: win10}\n");
    assert_same_policy(cli, file);
    /* Ids are lowercased as in a file; the name keeps what was typed. */
    assert_string_equal(cli->rules[1].match.vendor, "046d");
    assert_string_equal(cli->rules[1].name, "-x 046D:C31C");
    policy_free(cli);
    policy_free(file);
    options_free(&o);
}

/* -d alone: a domain and no rules; the default controller; libxl. */
static void legacy_domain_only(void **state)
{
    struct options o;
    struct policy *cli, *file;

    assert_parse_ok(ARGV("-d", "vm"), &o);
    assert_true(options_legacy(&o));
    assert_int_equal(o.usb_version, 0);
    cli = from_options(&o);
    file = unit_policy("version: 1\ndomains:\n  vm: {}\n");
    assert_same_policy(cli, file);
    assert_int_equal(cli->domains[0].controller.version, 3);
    assert_int_equal(cli->domains[0].controller.ports, 8);
    assert_int_equal(cli->domains[0].controller.max, 4);
    assert_null(cli->domains[0].qmp_socket);
    policy_free(cli);
    policy_free(file);
    options_free(&o);
}

/* --allow-dom0-lockout is the domain's and every rule's allow-dom0-lockout. */
static void legacy_allow_lockout(void **state)
{
    struct options o;
    struct policy *cli, *file;

    assert_parse_ok(ARGV("-d", "vm", "-u", "usb1", "-x", "046d:c31c", "--allow-dom0-lockout"),
                    &o);
    cli = from_options(&o);
    file = unit_policy("version: 1\ndomains:\n  vm: {allow-dom0-lockout: true}\nrules:\n"
                       "  - {match: {hub: usb1}, domain: vm}\n"
                       "  - {match: {id: \"046d:c31c\"}, domain: vm}\n");
    assert_same_policy(cli, file);
    assert_true(cli->domains[0].allow_lockout);
    for (unsigned i = 0; i < cli->n_rules; i++)
        assert_true(cli->rules[i].allow_lockout);
    policy_free(cli);
    policy_free(file);
    options_free(&o);
    /* Without it: the guard holds. */
    assert_parse_ok(ARGV("-d", "vm", "-u", "usb1"), &o);
    cli = from_options(&o);
    assert_false(cli->domains[0].allow_lockout);
    assert_false(cli->rules[0].allow_lockout);
    policy_free(cli);
    options_free(&o);
}

/* -u and -x keep their order among themselves; hubs come before ids. */
static void legacy_rule_order(void **state)
{
    struct options o;
    struct policy *cli;

    assert_parse_ok(ARGV("-x", "aaaa:0001", "-u", "usb2", "-x", "bbbb:0002", "-d", "vm", "-u",
                         "1-3.2"),
                    &o);
    cli = from_options(&o);
    assert_int_equal(cli->n_rules, 4);
    assert_string_equal(cli->rules[0].match.hub, "usb2");
    assert_string_equal(cli->rules[1].match.hub, "1-3.2");
    assert_string_equal(cli->rules[2].match.vendor, "aaaa");
    assert_string_equal(cli->rules[3].match.vendor, "bbbb");
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(cli->rules[i].index, i + 1);
        assert_int_equal(cli->rules[i].action, RULE_ATTACH);
        assert_int_equal(cli->rules[i].domain, 0);
    }
    policy_free(cli);
    options_free(&o);
}

static void new_options(void **state)
{
    struct options o;

    assert_parse_ok(ARGV("-c", "/etc/p.yaml", "--dry-run", "--json", "--check", "--once",
                         "--foreground", "-q", "-q"),
                    &o);
    assert_string_equal(o.policy_file, "/etc/p.yaml");
    assert_true(o.dry_run && o.json && o.check && o.once && o.foreground);
    assert_int_equal(o.verbosity, -2);
    assert_false(options_legacy(&o));
    options_free(&o);

    assert_parse_ok(ARGV("--policy=/x.yaml", "-vv"), &o);
    assert_string_equal(o.policy_file, "/x.yaml");
    assert_int_equal(o.verbosity, 2);
    options_free(&o);

    /* Nothing at all: run on the default policy file. */
    assert_parse_ok(ARGV(NULL), &o);
    assert_null(o.policy_file);
    assert_false(options_legacy(&o));
    assert_true(strstr(options_default_policy(), "/auto-usb-attach/policy.yaml") != NULL);
    options_free(&o);
}

/* --help and --version print on stdout and say "exit 0". */
static void help_and_version(void **state)
{
    struct options o;
    struct capture c;
    const char *out;

    capture_begin(&c, 1);
    assert_int_equal(options_parse(2, ARGV("--help"), &o), OPTIONS_EXIT_OK);
    out = capture_end(&c);
    assert_true(strncmp(out, "Usage: auto-usb-attach [OPTION]...\n", 35) == 0);
    assert_non_null(strstr(out, "  -x, --specific-device VID:PID\n"));
    options_free(&o);

    capture_begin(&c, 1);
    assert_int_equal(options_parse(2, ARGV("-h"), &o), OPTIONS_EXIT_OK);
    assert_true(strncmp(capture_end(&c), "Usage: ", 7) == 0);
    options_free(&o);

    capture_begin(&c, 1);
    assert_int_equal(options_parse(2, ARGV("--version"), &o), OPTIONS_EXIT_OK);
    assert_string_equal(capture_end(&c), "auto-usb-attach " PACKAGE_VERSION "\n");
    options_free(&o);
}

/* ---- errors: a table of argv and the exact first line printed ---- */

struct bad_args {
    char *argv[8];
    const char *message;
};

#define TRY "\nTry 'auto-usb-attach --help' for more information.\n"

static const struct bad_args bad_args[] = {
    { { "-c", "/p.yaml", "-d", "vm" },
      "-c/--policy cannot be combined with -d, -u or -x: put those rules in the policy "
      "file instead" },
    { { "-u", "usb1", "--policy", "/p.yaml" },
      "-c/--policy cannot be combined with -d, -u or -x: put those rules in the policy "
      "file instead" },
    { { "-u", "usb3" }, "-u and -x need -d DOMAIN, the guest that gets the devices" },
    { { "-x", "1050:0407" }, "-u and -x need -d DOMAIN, the guest that gets the devices" },
    { { "-s", "/run/q" },
      "-s, --usb-version and --allow-dom0-lockout go with -d DOMAIN "
      "(in a policy file: allow-dom0-lockout: true)" },
    { { "--usb-version", "2" },
      "-s, --usb-version and --allow-dom0-lockout go with -d DOMAIN "
      "(in a policy file: allow-dom0-lockout: true)" },
    { { "--allow-dom0-lockout" },
      "-s, --usb-version and --allow-dom0-lockout go with -d DOMAIN "
      "(in a policy file: allow-dom0-lockout: true)" },
    { { "-d", "vm", "-u", "1-0" },
      "-u: bad hub '1-0': expected a root hub such as usb3, a hub's port path such as "
      "1-1.4, or a path such as pci-0000:00:14.0, pci-0000:00:14.0-usb-0:1, "
      "pci-0000:00:14.0-usbv3 or pci-0000:00:14.0-usbv3-0:1" },
    { { "-d", "vm", "--hub", "usb" },
      "-u: bad hub 'usb': expected a root hub such as usb3, a hub's port path such as "
      "1-1.4, or a path such as pci-0000:00:14.0, pci-0000:00:14.0-usb-0:1, "
      "pci-0000:00:14.0-usbv3 or pci-0000:00:14.0-usbv3-0:1" },
    { { "-d", "vm", "-x", "1050" },
      "-x: bad device id '1050': expected VID:PID such as 1050:0407" },
    { { "-d", "vm", "-x", "zz:0407" },
      "-x: bad device id 'zz:0407': expected VID:PID such as 1050:0407" },
    { { "-d", "vm", "-x", "1050:0407:1" },
      "-x: bad device id '1050:0407:1': expected VID:PID such as 1050:0407" },
    { { "-d", "vm", "-x", "1050:" },
      "-x: bad device id '1050:': expected VID:PID such as 1050:0407" },
    { { "-d", "bad name" },
      "-d: bad domain name 'bad name': a domain name has only letters, digits and _ . + -" },
    { { "-d", "vm", "--usb-version", "4" },
      "--usb-version: bad version '4': expected 1, 2 or 3" },
    { { "-d", "vm", "--usb-version", "3x" },
      "--usb-version: bad version '3x': expected 1, 2 or 3" },
    { { "-d", "vm", "-s", "" },
      "-s: bad QMP socket path '': it must be 1 to 107 characters long" },
    { { "--frobnicate" }, "unknown option '--frobnicate'" },
    { { "-z" }, "unknown option '-z'" },
    { { "-d" }, "option '-d' needs a value" },
    { { "-n", "--domain" }, "option '--domain' needs a value" },
    { { "-d", "vm", "-x" }, "option '-x' needs a value" },
    { { "-d", "vm", "extra" }, "unexpected argument 'extra'" },
};

static void errors(void **state)
{
    for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
        char *argv[10] = { "auto-usb-attach" }, err[1024], want[1024];
        struct options o;
        enum options_result r;

        memcpy(argv + 1, bad_args[i].argv, sizeof(bad_args[i].argv));
        r = parse(argv, &o, err, sizeof(err));
        snprintf(want, sizeof(want), "auto-usb-attach: %s" TRY, bad_args[i].message);
        options_free(&o);
        if (r != OPTIONS_ERROR || strcmp(err, want) != 0)
            print_message("case %zu (%s ...)\n", i, bad_args[i].argv[0]);
        assert_int_equal(r, OPTIONS_ERROR);
        assert_string_equal(err, want);
    }
}

/* A QMP socket path must fit in sockaddr_un: 107 characters and the NUL. */
static void qmp_socket_length(void **state)
{
    char path[120], err[1024];
    struct options o;

    memset(path, 'q', sizeof(path));
    path[0] = '/';
    path[107] = '\0';
    assert_int_equal(parse(ARGV("-d", "vm", "-s", path), &o, err, sizeof(err)), OPTIONS_RUN);
    assert_string_equal(o.qmp_socket, path);
    options_free(&o);
    path[107] = 'q';
    path[108] = '\0';
    assert_int_equal(parse(ARGV("-d", "vm", "-s", path), &o, err, sizeof(err)), OPTIONS_ERROR);
    assert_non_null(strstr(err, "-s: bad QMP socket path"));
    options_free(&o);
}

/* An unknown letter inside a group (-zn) is named, not the program. */
static void unknown_option_in_group(void **state)
{
    char err[1024];
    struct options o;

    assert_int_equal(parse(ARGV("-zn"), &o, err, sizeof(err)), OPTIONS_ERROR);
    options_free(&o);
    assert_string_equal(err, "auto-usb-attach: unknown option '-z'" TRY);
}

/*
 * A second parse starts afresh: what an earlier one left half done (an
 * error in the middle of "-nz..." groups) must not leak into it.
 */
static void parse_twice(void **state)
{
    char err[1024];
    struct options o;

    assert_int_equal(parse(ARGV("-d", "vm", "-zn"), &o, err, sizeof(err)), OPTIONS_ERROR);
    options_free(&o);
    assert_parse_ok(ARGV("-d", "other"), &o);
    assert_string_equal(o.domain, "other");
    assert_false(o.no_wait);
    assert_int_equal(o.verbosity, 0);
    options_free(&o);

    assert_parse_ok(ARGV("-v", "-d", "vm"), &o);
    options_free(&o);
    assert_parse_ok(ARGV("-d", "vm2", "-x", "1050:0407"), &o);
    assert_int_equal(o.verbosity, 0);
    assert_int_equal(o.n_ids, 1);
    options_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(legacy_short_options),
        cmocka_unit_test(legacy_long_options),
        cmocka_unit_test(legacy_domain_only),
        cmocka_unit_test(legacy_rule_order),
        cmocka_unit_test(legacy_allow_lockout),
        cmocka_unit_test(new_options),
        cmocka_unit_test(help_and_version),
        cmocka_unit_test(errors),
        cmocka_unit_test(qmp_socket_length),
        cmocka_unit_test(unknown_option_in_group),
        cmocka_unit_test(parse_twice),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

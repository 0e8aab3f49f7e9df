/*
 * Command-line parsing, and the mapping of the old script's options onto a
 * policy.  Every bad value is named in the error, with the option it came
 * from.
 */
#include "config.h"

#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "generate.h"

#define PROG "auto-usb-attach"

enum {
    OPT_DRY_RUN = 256,
    OPT_JSON,
    OPT_CHECK,
    OPT_ONCE,
    OPT_FOREGROUND,
    OPT_USB_VERSION,
    OPT_VERSION,
    OPT_CONTROL_SOCKET,
    OPT_CONTROL_GROUP,
    OPT_CONTROL_GROUP_CHANGES,
    OPT_STATE_DIR,
    OPT_GENERATE,
    OPT_INSECURE_POLICY,
    OPT_ALLOW_LOCKOUT,
};

static const struct option long_options[] = {
    { "policy", required_argument, NULL, 'c' },
    { "domain", required_argument, NULL, 'd' },
    { "hub", required_argument, NULL, 'u' },
    { "specific-device", required_argument, NULL, 'x' },
    { "qmp-socket", required_argument, NULL, 's' },
    { "no-wait", no_argument, NULL, 'n' },
    { "wait-on-shutdown", no_argument, NULL, 'w' },
    { "usb-version", required_argument, NULL, OPT_USB_VERSION },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    { "dry-run", no_argument, NULL, OPT_DRY_RUN },
    { "json", no_argument, NULL, OPT_JSON },
    { "check", no_argument, NULL, OPT_CHECK },
    { "once", no_argument, NULL, OPT_ONCE },
    { "foreground", no_argument, NULL, OPT_FOREGROUND },
    { "control-socket", required_argument, NULL, OPT_CONTROL_SOCKET },
    { "control-group", required_argument, NULL, OPT_CONTROL_GROUP },
    { "control-group-changes", no_argument, NULL, OPT_CONTROL_GROUP_CHANGES },
    { "state-dir", required_argument, NULL, OPT_STATE_DIR },
    { "generate-policy", optional_argument, NULL, OPT_GENERATE },
    { "insecure-policy", no_argument, NULL, OPT_INSECURE_POLICY },
    { "allow-dom0-lockout", no_argument, NULL, OPT_ALLOW_LOCKOUT },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, OPT_VERSION },
    { NULL, 0, NULL, 0 },
};

const char *options_default_policy(void)
{
    return SYSCONFDIR "/auto-usb-attach/policy.yaml";
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [OPTION]...\n"
            "Attach USB devices to Xen guests as they are plugged in, by a YAML policy.\n"
            "\n"
            "Policy:\n"
            "  -c, --policy FILE        read the policy from FILE (default %s)\n"
            "      --check              check the policy, print every error, exit 0 or 1\n"
            "      --insecure-policy    accept a policy file that is not root's or that\n"
            "                           others may write (for tests)\n"
            "      --generate-policy[=path|port|id]\n"
            "                           print a policy for the devices plugged in now, one\n"
            "                           rule each, by port path with the controller's PCI\n"
            "                           address (default), by bus port or by id and serial\n"
            "\n"
            "The old script's options (they build a policy; not with -c):\n"
            "  -d, --domain DOMAIN      the guest that gets the devices\n"
            "  -u, --hub HUB            devices below HUB (usb3, 1-1) go to DOMAIN;\n"
            "                           may be given more than once\n"
            "  -x, --specific-device VID:PID\n"
            "                           devices with this id go to DOMAIN; may be given\n"
            "                           more than once\n"
            "  -s, --qmp-socket PATH    attach through this QMP socket of DOMAIN's device\n"
            "                           model instead of libxl\n"
            "      --usb-version N      version (1, 2 or 3) of controllers to create\n"
            "                           (default 3: xHCI, which takes every speed)\n"
            "      --allow-dom0-lockout DOMAIN may take dom0's last keyboard too\n"
            "  -n, --no-wait            exit at once if DOMAIN is not running\n"
            "  -w, --wait-on-shutdown   accepted for compatibility: guests are always\n"
            "                           followed through shutdown and restart\n"
            "\n"
            "Running:\n"
            "      --dry-run            print decisions and operations; touch no guest\n"
            "      --once               decide the devices present now, print, exit\n"
            "      --json               print decisions as JSON, one object per line\n"
            "      --foreground         stay in the foreground and log to stderr\n"
            "      --control-socket PATH\n"
            "                           the control socket (default %s;\n"
            "                           none in --dry-run unless given; 'none': no socket)\n"
            "      --control-group GROUP\n"
            "                           members of GROUP may use the control socket too,\n"
            "                           for the commands that only read\n"
            "      --control-group-changes\n"
            "                           ...and for attach, detach, reload and log-level\n"
            "      --state-dir DIR      where what is attached is recorded (default %s)\n"
            "  -v, --verbose            log more (twice: debug)\n"
            "  -q, --quiet              log errors only\n"
            "  -h, --help               show this help and exit\n"
            "      --version            show the version and exit\n",
            options_default_policy(), OPTIONS_DEFAULT_CONTROL_SOCKET, OPTIONS_DEFAULT_STATE_DIR);
}

static int push(const char ***list, size_t *n, const char *value)
{
    const char **v = realloc(*list, (*n + 1) * sizeof(*v));

    if (!v)
        return -ENOMEM;
    v[(*n)++] = value;
    *list = v;
    return 0;
}

void options_free(struct options *o)
{
    free(o->hubs);
    free(o->ids);
    memset(o, 0, sizeof(*o));
}

bool options_legacy(const struct options *o)
{
    return o->domain || o->n_hubs || o->n_ids;
}

/* Checks "VID:PID" as the old script took it: four hex digits each side. */
static const char *check_id(const char *value)
{
    const char *colon = strchr(value, ':');
    char vendor[8];

    if (!colon || (size_t)(colon - value) >= sizeof(vendor))
        return "expected VID:PID such as 1050:0407";
    memcpy(vendor, value, (size_t)(colon - value));
    vendor[colon - value] = '\0';
    if (policy_check_id_half(vendor) || policy_check_id_half(colon + 1))
        return "expected VID:PID such as 1050:0407";
    return NULL;
}

static enum options_result fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static enum options_result fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
    return OPTIONS_ERROR;
}

enum options_result options_parse(int argc, char **argv, struct options *o)
{
    const char *why;
    int c;

    memset(o, 0, sizeof(*o));
    optind = 0;     /* 0, not 1: glibc then also forgets a half-read "-zn" */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:d:u:x:s:nwvqh", long_options, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->policy_file = optarg;
            break;
        case 'd':
            why = policy_check_domain_name(optarg);
            if (why)
                return fail("-d: bad domain name '%s': %s", optarg, why);
            o->domain = optarg;
            break;
        case 'u':
            why = policy_check_hub(optarg);
            if (why)
                return fail("-u: bad hub '%s': %s", optarg, why);
            if (push(&o->hubs, &o->n_hubs, optarg) < 0)
                return fail("out of memory");
            break;
        case 'x':
            why = check_id(optarg);
            if (why)
                return fail("-x: bad device id '%s': %s", optarg, why);
            if (push(&o->ids, &o->n_ids, optarg) < 0)
                return fail("out of memory");
            break;
        case 's':
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof(((struct sockaddr_un *)0)->sun_path))
                return fail("-s: bad QMP socket path '%s': it must be 1 to 107 characters long",
                            optarg);
            o->qmp_socket = optarg;
            break;
        case 'n':
            o->no_wait = true;
            break;
        case OPT_ALLOW_LOCKOUT:
            o->allow_lockout = true;
            break;
        case 'w':
            break;
        case OPT_USB_VERSION:
            if (strcmp(optarg, "1") && strcmp(optarg, "2") && strcmp(optarg, "3"))
                return fail("--usb-version: bad version '%s': expected 1, 2 or 3", optarg);
            o->usb_version = optarg[0] - '0';
            break;
        case 'v':
            o->verbosity++;
            break;
        case 'q':
            o->verbosity--;
            break;
        case OPT_DRY_RUN:
            o->dry_run = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_CHECK:
            o->check = true;
            break;
        case OPT_ONCE:
            o->once = true;
            break;
        case OPT_FOREGROUND:
            o->foreground = true;
            break;
        case OPT_CONTROL_SOCKET:
            if (strcmp(optarg, "none") != 0 &&
                (optarg[0] != '/' || strlen(optarg) >= sizeof(((struct sockaddr_un *)0)->sun_path)))
                return fail("--control-socket: bad path '%s': an absolute path of at most 107 "
                            "characters, or none", optarg);
            o->control_socket = optarg;
            break;
        case OPT_CONTROL_GROUP:
            if (!*optarg)
                return fail("--control-group: a group name is needed");
            o->control_group = optarg;
            break;
        case OPT_CONTROL_GROUP_CHANGES:
            o->control_group_changes = true;
            break;
        case OPT_INSECURE_POLICY:
            o->insecure_policy = true;
            break;
        case OPT_GENERATE:
            if (!optarg || strcmp(optarg, "path") == 0)
                o->generate = 1 + GENERATE_BY_PATH;
            else if (strcmp(optarg, "port") == 0)
                o->generate = 1 + GENERATE_BY_PORT;
            else if (strcmp(optarg, "id") == 0)
                o->generate = 1 + GENERATE_BY_ID;
            else
                return fail("--generate-policy: '%s': expected path, port or id", optarg);
            break;
        case OPT_STATE_DIR:
            if (optarg[0] != '/')
                return fail("--state-dir: '%s' is not an absolute path", optarg);
            o->state_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return OPTIONS_EXIT_OK;
        case OPT_VERSION:
            printf(PROG " " PACKAGE_VERSION "\n");
            return OPTIONS_EXIT_OK;
        case ':':
            return fail("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt)
                return fail("unknown option '-%c'", optopt);
            return fail("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail("unexpected argument '%s'", argv[optind]);
    if (o->control_group_changes && !o->control_group)
        return fail("--control-group-changes goes with --control-group GROUP");
    if (o->policy_file && options_legacy(o))
        return fail("-c/--policy cannot be combined with -d, -u or -x: "
                    "put those rules in the policy file instead");
    if ((o->n_hubs || o->n_ids) && !o->domain)
        return fail("-u and -x need -d DOMAIN, the guest that gets the devices");
    if ((o->qmp_socket || o->usb_version || o->allow_lockout) && !o->domain)
        return fail("-s, --usb-version and --allow-dom0-lockout go with -d DOMAIN "
                    "(in a policy file: allow-dom0-lockout: true)");
    return OPTIONS_RUN;
}

struct policy *options_policy(const struct options *o, struct policy_diag *diag)
{
    struct controller_spec spec = policy_default_controller;
    struct policy *policy = policy_new("command line");
    int domain;

    if (!policy)
        goto oom;
    if (o->usb_version) {
        spec.version = o->usb_version;
        spec.ports = policy_default_ports(o->usb_version);
    }
    domain = policy_add_domain(policy, o->domain, &spec, o->qmp_socket);
    if (domain < 0)
        goto oom;
    /* One rule per -u, then one per -x, in the order given. */
    for (size_t i = 0; i < o->n_hubs; i++) {
        struct rule_match m = { .keys = MATCH_HUB, .hub = strdup(o->hubs[i]) };
        char *name = NULL;

        if (!m.hub || asprintf(&name, "-u %s", o->hubs[i]) < 0 ||
            policy_add_rule(policy, name, 0, 0, RULE_ATTACH, domain, &m) < 0) {
            rule_match_clear(&m);
            goto oom;
        }
    }
    for (size_t i = 0; i < o->n_ids; i++) {
        const char *colon = strchr(o->ids[i], ':');
        struct rule_match m = {
            .keys = MATCH_VENDOR | MATCH_PRODUCT,
            .vendor = strndup(o->ids[i], (size_t)(colon - o->ids[i])),
            .product = strdup(colon + 1),
        };
        char *name = NULL;

        policy_lower_hex(m.vendor);
        policy_lower_hex(m.product);
        if (!m.vendor || !m.product || asprintf(&name, "-x %s", o->ids[i]) < 0 ||
            policy_add_rule(policy, name, 0, 0, RULE_ATTACH, domain, &m) < 0) {
            rule_match_clear(&m);
            goto oom;
        }
    }
    policy->domains[domain].allow_lockout = o->allow_lockout;
    for (unsigned i = 0; i < policy->n_rules; i++)
        policy->rules[i].allow_lockout = o->allow_lockout;
    if (policy_finish(policy) < 0)
        goto oom;
    return policy;
oom:
    policy_free(policy);
    (void)diag;
    fprintf(stderr, PROG ": out of memory\n");
    return NULL;
}

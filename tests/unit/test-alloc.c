/*
 * Allocation failure, at every allocation (src/xmalloc.c's policy: stop with
 * a message).  One scenario: a policy loaded (a rule that needs a serial as
 * well as an id), a router on the dry-run backend, devices added and
 * attached, a reload that moves one, the devices' final decisions.  It runs
 * once whole to count its allocations (jansson's included), then once for
 * every N with the Nth allocation failing, each time in a child process.
 * Each run must end in one of two ways: exit 0 with exactly the whole run's
 * result, or exit 1 with the "cannot allocate" message; and every decision
 * it reported before, in either case, must be one the whole run made.  A
 * rule that lost its serial key would send the second YubiKey to the vault:
 * a decision the whole run never makes.
 *
 * Linked like the daemon (-Wl,--wrap=malloc,...) with xmalloc.c built with
 * AUA_ALLOC_FAULTS.
 */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "domain.h"
#include "hv.h"
#include "log.h"
#include "policy.h"
#include "report.h"
#include "router.h"
#include "xmalloc.h"

static const char policy_before[] =
    "version: 1\n"
    "domains:\n"
    "  vault: {}\n"
    "  win10:\n"
    "    controller: {version: 3, ports: 4, max: 1}\n"
    "rules:\n"
    "  - name: my yubikey only\n"
    "    match: {id: \"1050:0407\", serial: \"0012*\", manufacturer: Yubico}\n"
    "    domain: vault\n"
    "  - name: keyboards stay\n"
    "    match: {interface-class: \"03:01:01\", product-name: \"*Keyboard*\"}\n"
    "    action: ignore\n"
    "  - match: {hub: \"1-1\", class: \"08\"}\n"
    "    domain: win10\n";

/* The reload: the stick goes to the vault now, the rest as before. */
static const char policy_after[] =
    "version: 1\n"
    "domains:\n"
    "  vault: {}\n"
    "  win10:\n"
    "    controller: {version: 3, ports: 4, max: 1}\n"
    "rules:\n"
    "  - name: my yubikey only\n"
    "    match: {id: \"1050:0407\", serial: \"0012*\", manufacturer: Yubico}\n"
    "    domain: vault\n"
    "  - name: sticks\n"
    "    match: {id: \"0781:*\", serial: \"4C53*\"}\n"
    "    domain: vault\n"
    "  - name: keyboards stay\n"
    "    match: {interface-class: \"03:01:01\", product-name: \"*Keyboard*\"}\n"
    "    action: ignore\n";

/* ---- the scenario, in a child ---- */

static void say(const struct decision_report *r)
{
    char line[512];

    report_format(r, line, sizeof(line));
    /* One write per line: a child that dies leaves whole lines. */
    dprintf(STDOUT_FILENO, "decision %s\n", line);
}

static void on_decision(void *arg, const struct decision_report *r)
{
    say(r);
}

static struct usb_device *dev_at(const char *port, unsigned devnum, uint16_t vendor,
                                 uint16_t product, const char *serial, const char *maker,
                                 const char *name, const char *interfaces)
{
    char devpath[128];
    struct usb_device *dev;

    snprintf(devpath, sizeof(devpath), "/devices/pci0000:00/0000:00:14.0/usb1/%s", port);
    dev = device_new(devpath, port);
    if (!dev)
        return NULL;
    dev->busnum = 1;
    dev->devnum = devnum;
    dev->vendor = vendor;
    dev->product = product;
    if ((serial && device_set_str(&dev->serial, serial) < 0) ||
        device_set_str(&dev->manufacturer, maker) < 0 ||
        device_set_str(&dev->product_name, name) < 0 ||
        device_parse_interfaces(dev, interfaces) < 0) {
        device_free(dev);
        return NULL;
    }
    return dev;
}

static void settle(struct ev_loop *loop)
{
    for (int i = 0; i < 1000 && ev_run(loop, EVRUN_NOWAIT); i++)
        ;
}

static struct policy *load(const char *text)
{
    struct policy_diag diag = { 0 };
    struct policy *p = policy_load_buffer("t.yaml", text, strlen(text), &diag);

    for (size_t i = 0; i < diag.n; i++)
        dprintf(STDOUT_FILENO, "error %s\n", diag.msgs[i]);
    policy_diag_free(&diag);
    return p;
}

/* Returns the exit status: 0 done, 2 a step failed without stopping. */
static int scenario(void)
{
    struct ev_loop *loop = ev_loop_new(0);
    struct hv *hv = loop ? hv_dryrun_new(loop) : NULL;
    struct policy *policy = load(policy_before);
    struct router *router;
    struct usb_device *devs[4];
    const char *ports[] = { "1-1.2", "1-1.3", "1-1.4", "1-1.5" };

    if (!hv || !policy)
        return 2;
    router = router_new(loop, hv, policy, on_decision, NULL);
    if (!router)
        return 2;
    router_keyboard_added(router, "/devices/platform/i8042/serio0/input/input3");
    devs[0] = dev_at(ports[0], 5, 0x1050, 0x0407, "0012345", "Yubico", "YubiKey",
                     ":030101:030000:0b0000:");
    /* Another YubiKey: not the rule's (its serial); a rule without it would take it. */
    devs[1] = dev_at(ports[1], 6, 0x1050, 0x0407, "9999999", "Yubico", "YubiKey",
                     ":030101:030000:0b0000:");
    devs[2] = dev_at(ports[2], 7, 0x0781, 0x5581, "4C530001", "SanDisk", "Ultra",
                     ":080650:");
    devs[3] = dev_at(ports[3], 8, 0x046d, 0xc31c, NULL, "Logitech", "USB Keyboard",
                     ":030101:030000:");
    for (int i = 0; i < 4; i++) {
        if (!devs[i])
            return 2;
        router_device_added(router, devs[i], EVENT_PRESENT);
    }
    router_coldplug_done(router);
    settle(loop);
    policy = load(policy_after);
    if (!policy)
        return 2;
    router_set_policy(router, policy);
    settle(loop);
    for (int i = 0; i < 4; i++) {
        char devpath[128];
        const struct dev_entry *e;

        snprintf(devpath, sizeof(devpath), "/devices/pci0000:00/0000:00:14.0/usb1/%s", ports[i]);
        e = router_lookup(router, devpath);

        if (!e)
            return 2;
        dprintf(STDOUT_FILENO, "final %s %s %d\n", ports[i],
                e->domain ? domain_name(e->domain) : "-", (int)e->state);
    }
    router_close(router);
    hv->ops->free(hv);
    router_free(router);
    ev_loop_destroy(loop);
    return 0;
}

/* ---- the parent ---- */

struct run {
    int status;
    char out[16384];
    char err[4096];
};

static void drain(int fd, char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;

    while ((n = read(fd, buf + len, size - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

/* Runs the scenario in a child with the nth allocation failing (0: none). */
static void run(unsigned long nth, struct run *r, unsigned long *counted)
{
    int out[2], err[2];
    pid_t pid;

    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int status;

        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(out[0]);
        close(err[0]);
        xmalloc_fail_at(nth);
        status = scenario();
        dprintf(STDOUT_FILENO, "allocations %lu\n", xmalloc_fail_at(0));
        _exit(status);
    }
    close(out[1]);
    close(err[1]);
    /* The child writes little: read its output, then its errors. */
    drain(out[0], r->out, sizeof(r->out));
    drain(err[0], r->err, sizeof(r->err));
    close(out[0]);
    close(err[0]);
    assert_int_equal(waitpid(pid, &r->status, 0), pid);
    if (counted) {
        const char *a = strstr(r->out, "allocations ");

        assert_non_null(a);
        *counted = strtoul(a + strlen("allocations "), NULL, 10);
    }
}

/* Every "decision" and "final" line of got is one of whole's. */
static void assert_lines_from(const char *got, const char *whole, unsigned long nth)
{
    const char *p = got;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];

        snprintf(line, sizeof(line), "%.*s", (int)len, p);
        if ((strncmp(line, "decision ", 9) == 0 || strncmp(line, "final ", 6) == 0)) {
            const char *w = strstr(whole, line);

            if (!w || (w != whole && w[-1] != '\n') || (w[len] != '\n' && w[len]))
                fail_msg("allocation %lu failing: a decision the whole run never made: %s",
                         nth, line);
        }
        p += len + (nl ? 1 : 0);
    }
}

static void every_allocation_fails_cleanly(void **state)
{
    struct run whole, r;
    unsigned long total, stopped = 0, completed = 0;

    run(0, &whole, &total);
    assert_true(WIFEXITED(whole.status));
    assert_int_equal(WEXITSTATUS(whole.status), 0);
    /* The whole run: the second YubiKey in dom0, the stick moved by the reload. */
    assert_non_null(strstr(whole.out, "final 1-1.2 vault 3\n"));
    assert_non_null(strstr(whole.out, "final 1-1.3 - 0\n"));
    assert_non_null(strstr(whole.out, "final 1-1.4 vault 3\n"));
    assert_non_null(strstr(whole.out, "final 1-1.5 - 0\n"));
    assert_true(total > 100);
    for (unsigned long n = 1; n <= total; n++) {
        run(n, &r, NULL);
        if (!WIFEXITED(r.status))
            fail_msg("allocation %lu of %lu failing: killed by signal %d; stderr: %s", n,
                     total, WTERMSIG(r.status), r.err);
        assert_lines_from(r.out, whole.out, n);
        if (WEXITSTATUS(r.status) == 1 && strstr(r.err, "cannot allocate") &&
            strstr(r.err, "stopping")) {
            stopped++;
            continue;
        }
        if (WEXITSTATUS(r.status) != 0 || strstr(r.out, "error "))
            fail_msg("allocation %lu of %lu failing: exit %d without the message; "
                     "stdout:\n%s\nstderr:\n%s", n, total, WEXITSTATUS(r.status), r.out, r.err);
        /* A failure nobody saw (past the end of a step): the result is whole. */
        assert_lines_from(whole.out, r.out, n);
        completed++;
    }
    print_message("%lu allocations: %lu runs stopped with the message, %lu completed whole\n",
                  total, stopped, completed);
    assert_int_equal(stopped + completed, total);
    assert_true(stopped > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_allocation_fails_cleanly),
    };

    log_init("test-alloc", LOG_LEVEL_WARNING, true);
    xmalloc_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

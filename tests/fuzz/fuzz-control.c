/*
 * libFuzzer harness of the control socket's request path: the input is what
 * a client writes, cut into lines as control.c cuts them; each line is
 * parsed as control.c parses it and, when it is an object, answered by
 * commands_handle() (src/commands.c) over a real router, real domain
 * workers and the dry-run backend on a private libev loop, with devices
 * whose strings are hostile.
 *
 * Each input gets a new daemon state, so that inputs do not depend on each
 * other and LeakSanitizer sees what one request leaves behind.  Checked: a
 * reply is never NULL, is an object with a boolean "ok" (and an "error"
 * string when it is false), and encodes to one line of JSON.
 */
#include "config.h"

#include <ev.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "control.h"
#include "device.h"
#include "hv.h"
#include "log.h"
#include "policy.h"
#include "router.h"

#define FUZZ_NAME "fuzz-control"
#include "fuzz.h"
#include "../unit/router-fixture.h"

/* Requests answered per input: enough for attach, then explain, then detach. */
#define MAX_REQUESTS 32

/* The rule for keyboards has an escape sequence in its name. */
static const char policy_text[] = ROUTER_FIXTURE_POLICY("\"keyboards \\x1b[31m stay\"");

static const char broken_text[] =
    "version: 1\n"
    "domains: {\"\\xff\": {}}\n"
    "rules:\n"
    "  - match: {id: \"xyz\", port: \"1-01\"}\n"
    "    domain: nowhere\n";

struct fx {
    struct ev_loop *loop;
    struct hv *hv;
    struct router *router;
    struct commands commands;
    unsigned reloads;
};

static struct policy *parse(const char *text, struct policy_diag *diag)
{
    return policy_load_buffer("fuzz.yaml", text, strlen(text), diag);
}

/* As main.c's reload: every other one fails with the messages of a broken file. */
static int reload(void *arg, json_t **errors)
{
    struct fx *fx = arg;
    struct policy_diag diag = { 0 };
    struct policy *policy = parse(fx->reloads++ % 2 ? broken_text : policy_text, &diag);

    if (policy) {
        router_set_policy(fx->router, policy);
        policy_diag_free(&diag);
        return 0;
    }
    if (errors) {
        *errors = json_array();
        for (size_t i = 0; *errors && i < diag.n; i++)
            json_array_append_new(*errors, json_string(diag.msgs[i]));
    }
    policy_diag_free(&diag);
    return -1;
}

static void add(struct fx *fx, const char *port, unsigned devnum, uint16_t vendor,
                uint16_t product, const char *serial, const char *product_name,
                const char *ifaces, uint8_t cls)
{
    char devpath[128];
    struct usb_device *dev;

    router_fixture_devpath(devpath, sizeof(devpath), port);
    dev = device_new(devpath, port);
    if (!dev)
        return;
    dev->busnum = (unsigned)(port[0] - '0');
    dev->devnum = devnum;
    dev->vendor = vendor;
    dev->product = product;
    dev->dev_class.cls = cls;
    device_set_str(&dev->serial, serial);
    device_set_str(&dev->manufacturer, "Evil\r\n\"Corp\\\xc2\x85\xff");
    device_set_str(&dev->product_name, product_name);
    device_parse_interfaces(dev, ifaces);
    router_device_added(fx->router, dev, EVENT_PRESENT);
}

/* Runs the loop until no watcher is left (the dry-run answers at once). */
static void settle(struct fx *fx)
{
    for (int i = 0; i < 1000; i++)
        if (!ev_run(fx->loop, EVRUN_NOWAIT))
            return;
}

static bool fx_init(struct fx *fx)
{
    struct policy_diag diag = { 0 };
    struct policy *policy;

    memset(fx, 0, sizeof(*fx));
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    if (!fx->loop)
        return false;
    fx->hv = hv_dryrun_new(fx->loop);
    policy = parse(policy_text, &diag);
    CHECK(policy, "the harness's policy does not load: %s", diag.n ? diag.msgs[0] : "?");
    policy_diag_free(&diag);
    fx->router = fx->hv ? router_new(fx->loop, fx->hv, policy, NULL, NULL) : NULL;
    if (!fx->router) {
        policy_free(policy);
        return false;
    }
    add(fx, "1-1.2", 5, 0x1050, 0x0407, "0012345", "YubiKey OTP+FIDO+CCID",
        ":030101:030000:0b0000:", 0);
    add(fx, "1-1.3", 6, 0x046d, 0xc31c, NULL, "USB Keyboard", ":030101:030000:", 0);
    add(fx, "1-1.4", 3, 0x05e3, 0x0608, NULL, "USB2.0 Hub", ":090000:", 0x09);
    add(fx, "1-1.4.2", 7, 0x0781, 0x5583, "\x1b]0;pwned\x07\n\xff\xfe", "Ultra\x7f Fit",
        ":080650:", 0);
    add(fx, "2-1.1", 2, 0x0781, 0x5583, "4C530001", "\xed\xa0\x80 surrogate", ":080650:", 0);
    add(fx, "1-1.1.1.1.1.1.1", 9, 0xffff, 0xffff, "*", NULL, ":ffffff:", 0xff);
    router_coldplug_done(fx->router);
    settle(fx);
    fx->commands = (struct commands){
        .router = fx->router,
        .backend = "dry-run",
        .policy_source = "fuzz.yaml",
        .started = 0,
        .reload = reload,
        .reload_arg = fx,
    };
    return true;
}

/* The order hv.h asks for: no new work, cancel what is in flight, free. */
static void fx_free(struct fx *fx)
{
    if (fx->router)
        router_close(fx->router);
    if (fx->hv)
        fx->hv->ops->free(fx->hv);
    router_free(fx->router);
    if (fx->loop)
        ev_loop_destroy(fx->loop);
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

static void check_reply(json_t *reply, const char *line, size_t len)
{
    json_t *ok, *error;
    char *text;

    CHECK(reply, "no reply to \"%.*s\"", (int)len, line);
    CHECK(json_is_object(reply), "the reply to \"%.*s\" is not an object", (int)len, line);
    ok = json_object_get(reply, "ok");
    CHECK(json_is_boolean(ok), "the reply to \"%.*s\" has no boolean \"ok\"", (int)len, line);
    if (json_is_false(ok)) {
        error = json_object_get(reply, "error");
        CHECK(json_is_string(error), "a failed reply to \"%.*s\" has no \"error\" string",
              (int)len, line);
    }
    /* control.c sends it as one line: it must encode, and hold no newline. */
    text = json_dumps(reply, JSON_COMPACT);
    CHECK(text, "the reply to \"%.*s\" does not encode", (int)len, line);
    CHECK(!strchr(text, '\n'), "the reply to \"%.*s\" spans lines: %s", (int)len, line, text);
    free(text);
}

/* What control.c's client_request does with one line, the handler being commands.c. */
static void request(struct fx *fx, const char *line, size_t len)
{
    static const struct control_peer peer = { .pid = 1, .uid = 0, .gid = 0 };
    json_error_t err;
    json_t *req, *reply;

    if (blank(line, len))
        return;
    req = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (!req || !json_is_object(req)) {
        json_decref(req);
        return;
    }
    reply = commands_handle(&fx->commands, req, &peer);
    json_decref(req);
    check_reply(reply, line, len);
    json_decref(reply);
    /* log-level may have been asked for: keep the fuzzer quiet and fast. */
    log_set_level(LOG_LEVEL_ERROR);
    settle(fx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init("fuzz-control", LOG_LEVEL_ERROR, true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    unsigned n = 0;
    struct fx fx;

    if (size > CONTROL_LINE_MAX)
        return 0;
    if (!fx_init(&fx)) {
        fx_free(&fx);
        return 0;
    }
    while (p < end && n++ < MAX_REQUESTS) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        /* An exact copy of the line: a read past its end is an ASan report. */
        char *line = malloc(len ? len : 1);

        if (!line)
            break;
        memcpy(line, p, len);
        request(&fx, line, len);
        free(line);
        p += len + 1;
    }
    fx_free(&fx);
    return 0;
}

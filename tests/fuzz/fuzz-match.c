/*
 * libFuzzer harness of the match index (src/match.c): the first bytes of an
 * input build a small policy through the builder API of policy.h, the rest
 * a device, and the index must pick the same rule as a scan in file order
 * (match_device == match_device_linear), as match.h promises.
 *
 * Rule values are taken from small lists of the shapes that the index
 * treats apart (exact ids, globs with a literal start, bus-literal port
 * globs, hubs at every depth) or raw from the input, and are kept only when
 * the validators the YAML parser and the command line use accept them:
 * only policies a user can write are tested.  Device values are not
 * filtered: they come from the kernel and from the device.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "log.h"
#include "match.h"
#include "policy.h"

#define FUZZ_NAME "fuzz-match"
#include "fuzz.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const ids[] = {
    "1050", "0407", "046d", "c31c", "0781", "5583", "10*", "*", "?050", "[0-9]*",
    "[!0]*", "0000", "ffff", "1-5", "ab*d", "04?7", "C31C", "1050*",
};
static const char *const ports[] = {
    "1-1.2", "1-1", "1-1.4.2", "1-2", "2-1", "1-*", "1-1.*", "2-?", "*", "[12]-1",
    "1-1.1.1.1.1.1.1", "usb1", "4-1.*", "4-1.2", "10-1", "1-1.4.*", "1-[1-4]",
};
static const char *const hubs[] = {
    "usb1", "usb2", "1-1", "1-1.4", "2-1", "1-1.1.1.1.1.1", "usb10", "4-1", "10-1",
    "pci-0000:00:14.0", "pci-0000:00:14.0-usb-0:1", "pci-0000:00:14.0-usb-0:1.4",
};
/* Path globs (rules) and udev ID_PATH values (devices, raw: not filtered). */
static const char *const paths[] = {
    "pci-0000:00:14.0-usb-0:1.2", "pci-0000:00:14.0-usb-0:1.*", "*-usb-0:1.4*", "*",
    "pci-0000:00:14.0-usb-0:?", "pci-0000:03:00.0-usb-0:1", "pci-*", "*:1.4.2",
};
static const char *const dev_paths[] = {
    "pci-0000:00:14.0-usb-0:1.2", "pci-0000:00:14.0-usb-0:1.4.2", "pci-0000:00:14.0-usb-0:1",
    "pci-0000:03:00.0-usb-0:1", "pci-0000:00:14.0-usbv3-0:1", "pci-0000:00:14.0", "",
    "pci-0000:00:14.0-usb-0:1.4",
};
static const char *const strs[] = {
    "0012345", "0012*", "Z0004*", "Z*", "*", "4C530001", "[A-Z]*", "\\*", "a?c",
    "Yubico", "Logitech*", "YubiKey*", "\x01\xff", "[!Z]*", "?", "",
};
/* Device ports: well formed ones, and what the parser refuses. */
static const char *const dev_ports[] = {
    "1-1.2", "1-1", "1-1.4.2", "1-2", "2-1", "1-1.1.1.1.1.1.1", "4-1.2", "10-1", "usb1",
    "1-1.1.1.1.1.1.1.1", "1-1.0", "04-1.2", "1-01", "4-1.", "1-1.4.2.3", "2-1.1",
};
static const uint16_t dev_ids[] = { 0x1050, 0x0407, 0x046d, 0xc31c, 0x0781, 0x5583, 0x0000,
                                    0xffff, 0x10ab, 0xabcd };

struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t byte(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* A value from dict, or (1 in 4) up to 15 raw bytes; a new string. */
static char *pick(struct in *in, const char *const *dict, size_t n_dict)
{
    uint8_t sel = byte(in);
    char raw[16];
    size_t len, i;

    if (sel < 0xc0)
        return strdup(dict[sel % n_dict]);
    len = byte(in) % sizeof(raw);
    for (i = 0; i < len && in->n; i++)
        raw[i] = (char)byte(in);
    raw[i] = '\0';
    return strdup(raw);
}

static void pick_class(struct in *in, struct class_match *c)
{
    uint8_t a = byte(in), b = byte(in), p = byte(in);

    c->cls = a;
    c->subclass = b >= 0xf0 ? -1 : b % 4;
    c->protocol = c->subclass < 0 || p >= 0xf0 ? -1 : p % 4;
}

/* Fills one string key if the policy's validator takes its value. */
static void glob_key(struct in *in, struct rule_match *m, unsigned bit, char **field,
                     const char *const *dict, size_t n_dict)
{
    char *v = pick(in, dict, n_dict);
    bool ok = v != NULL;
    unsigned bus, depth;

    if (ok && (bit == MATCH_VENDOR || bit == MATCH_PRODUCT)) {
        ok = !policy_check_id_half(v);
        if (ok)
            policy_lower_hex(v);
    } else if (ok && bit == MATCH_HUB) {
        ok = !policy_check_hub(v);
    } else if (ok && bit == MATCH_PORT) {
        ok = !policy_check_glob(v) &&
             (strpbrk(v, "*?[") || device_port_parse(v, &bus, &depth) == 0);
    } else if (ok) {
        ok = v[0] && !policy_check_glob(v);
    }
    if (!ok) {
        free(v);
        return;
    }
    *field = v;
    m->keys |= bit;
}

static struct policy *make_policy(struct in *in)
{
    struct policy *policy = policy_new("fuzz");
    unsigned n;

    if (!policy || policy_add_domain(policy, "vm", &policy_default_controller, NULL) < 0)
        goto fail;
    n = byte(in) % 24;
    for (unsigned i = 0; i < n; i++) {
        struct rule_match m = { 0 };
        uint8_t low = byte(in), high = byte(in);
        unsigned keys = low | (unsigned)(high & 1) << 8;
        bool ignore = byte(in) & 1;

        if (keys & MATCH_VENDOR)
            glob_key(in, &m, MATCH_VENDOR, &m.vendor, ids, N(ids));
        if (keys & MATCH_PRODUCT)
            glob_key(in, &m, MATCH_PRODUCT, &m.product, ids, N(ids));
        if (keys & MATCH_SERIAL)
            glob_key(in, &m, MATCH_SERIAL, &m.serial, strs, N(strs));
        if (keys & MATCH_MANUFACTURER)
            glob_key(in, &m, MATCH_MANUFACTURER, &m.manufacturer, strs, N(strs));
        if (keys & MATCH_PRODUCT_NAME)
            glob_key(in, &m, MATCH_PRODUCT_NAME, &m.product_name, strs, N(strs));
        if (keys & MATCH_HUB)
            glob_key(in, &m, MATCH_HUB, &m.hub, hubs, N(hubs));
        if (keys & MATCH_PORT)
            glob_key(in, &m, MATCH_PORT, &m.port, ports, N(ports));
        /* Chosen without a byte of its own: older inputs keep their meaning. */
        if (high & 2) {
            m.path = strdup(paths[(low + i) % N(paths)]);
            if (m.path)
                m.keys |= MATCH_PATH;
        }
        if (keys & MATCH_CLASS) {
            pick_class(in, &m.dev_class);
            m.keys |= MATCH_CLASS;
        }
        if (keys & MATCH_IFACE_CLASS) {
            pick_class(in, &m.iface_class);
            m.keys |= MATCH_IFACE_CLASS;
        }
        if (policy_add_rule(policy, NULL, i + 1, 1, ignore ? RULE_IGNORE : RULE_ATTACH, 0,
                            &m) < 0)
            goto fail;
    }
    if (policy_finish(policy) < 0)
        goto fail;
    return policy;
fail:
    policy_free(policy);
    return NULL;
}

static uint16_t pick_id(struct in *in)
{
    uint8_t sel = byte(in);

    if (sel < 0xc0)
        return dev_ids[sel % N(dev_ids)];
    return (uint16_t)(byte(in) << 8 | byte(in));
}

/* A string of the device, or none (1 in 8). */
static void dev_str(struct in *in, char **field)
{
    char *v;

    if (in->n && (in->p[0] & 7) == 7) {
        byte(in);
        return;
    }
    v = pick(in, strs, N(strs));
    device_set_str(field, v);
    free(v);
}

static struct usb_device *make_device(struct in *in)
{
    char *port = pick(in, dev_ports, N(dev_ports));
    struct usb_device *dev = port ? device_new("/devices/fuzz", port) : NULL;
    unsigned n;

    free(port);
    if (!dev)
        return NULL;
    dev->busnum = byte(in);
    dev->vendor = pick_id(in);
    dev->product = pick_id(in);
    dev_str(in, &dev->serial);
    dev_str(in, &dev->manufacturer);
    dev_str(in, &dev->product_name);
    dev->dev_class.cls = byte(in) % 4 == 0 ? 0x09 : byte(in);
    dev->dev_class.subclass = byte(in) % 4;
    dev->dev_class.protocol = byte(in) % 4;
    n = byte(in) % 5;
    for (unsigned i = 0; i < n; i++) {
        dev->ifaces[i].cls = byte(in);
        dev->ifaces[i].subclass = byte(in) % 4;
        dev->ifaces[i].protocol = byte(in) % 4;
    }
    dev->n_ifaces = n;
    /* The path last: older inputs build the same device as before, without one. */
    if (in->n && device_set_str(&dev->id_path, dev_paths[byte(in) % N(dev_paths)]) < 0) {
        device_free(dev);
        return NULL;
    }
    return dev;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init("fuzz-match", LOG_LEVEL_ERROR, true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = { data, size };
    struct policy *policy = make_policy(&in);
    struct usb_device *dev = policy ? make_device(&in) : NULL;
    const struct policy_rule *fast, *slow;
    char why[256];

    if (!dev)
        goto out;
    fast = match_device(policy, dev);
    slow = match_device_linear(policy, dev);
    CHECK(fast == slow,
          "device port \"%s\" %04x:%04x: index says rule %u, scan says rule %u", dev->port,
          dev->vendor, dev->product, fast ? fast->index : 0, slow ? slow->index : 0);
    /* The explanation (the control socket's "explain") agrees with the decision. */
    for (unsigned i = 0; i < policy->n_rules; i++) {
        bool m = match_rule(&policy->rules[i], dev, why, sizeof(why));

        CHECK(memchr(why, '\0', sizeof(why)), "match_rule left why unterminated");
        if (slow && i + 1 < slow->index)
            CHECK(!m, "rule %u matches before the decision, rule %u", i + 1, slow->index);
        if (slow && i + 1 == slow->index)
            CHECK(m, "the deciding rule %u does not match when explained", i + 1);
        if (!slow)
            CHECK(!m, "rule %u matches but no rule decided", i + 1);
    }
out:
    device_free(dev);
    policy_free(policy);
    return 0;
}

/*
 * Unit tests of rule matching (src/match.c).
 *
 * Every match key against a small set of realistic devices (a table: one
 * `match:` mapping, one device, matches or not), first-match order, the
 * "why not" explanations, and a property test: for thousands of random
 * devices against ~2,000 generated rules of every kind, the indexed
 * match_device() returns exactly the rule that the linear scan in file
 * order returns.  Each table row is checked through both paths.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"
#include "match.h"
#include "policy.h"

#include "unit.h"

/* ---- devices ---- */

struct dev_spec {
    const char *port;
    uint16_t vendor, product;
    const char *serial, *manufacturer, *product_name;
    uint8_t cls, subclass, protocol;
    const char *ifaces;     /* udev's ID_USB_INTERFACES, or NULL for none */
};

enum {
    YUBIKEY,        /* on a hub: 1-1.2 */
    YUBIKEY_NOSER,  /* the same model without a serial, 1-1.3 */
    KEYBOARD,       /* on root hub 3 */
    STORAGE,        /* 1-10: a sibling of hub 1-1, not below it */
    WEBCAM,         /* 1-4.1.3, class ef:02:01 */
    NESTED,         /* 1-1.4.2: two hubs below 1-1 */
    HUB_ITSELF,     /* the hub at 1-1 */
    DEEP,           /* 2-1.1.1.1.1.1.1: seven levels */
    BUS11,          /* 11-1: "usb1" must not take bus 11 */
    BARE,           /* no strings, no interfaces, no path */
};

/*
 * The id path of a device at port: buses 1, 2 and 11 are on the chipset's
 * controller, bus 3 on a card; bus 4 has no PCI controller, so no path.
 */
static void set_path(struct usb_device *dev, const char *port)
{
    unsigned long bus = strtoul(port + (strncmp(port, "usb", 3) == 0 ? 3 : 0), NULL, 10);
    const char *pci = bus == 3 ? "0000:03:00.0" : "0000:00:14.0";
    const char *dash = strchr(port, '-');
    char path[DEVICE_STR_MAX + 1];

    if (bus == 4 || bus == 0)
        return;
    if (dash)
        snprintf(path, sizeof(path), "pci-%s-usb-0:%s", pci, dash + 1);
    else
        snprintf(path, sizeof(path), "pci-%s", pci);
    assert_int_equal(device_set_str(&dev->id_path, path), 0);
    /* Bus 2 is the chipset xHCI's USB 3 root hub, bus 3 the card's: usbv3. */
    if (dash) {
        snprintf(path, sizeof(path), "pci-%s-usbv%d-0:%s", pci, bus == 2 || bus == 3 ? 3 : 2,
                 dash + 1);
        assert_int_equal(device_set_str(&dev->id_path_rev, path), 0);
    }
    /*
     * Root ports of bus 1 pair with bus 2's one number up (1-10 with 2-11),
     * the card's USB 3 ports with its USB 2 ones one number down.
     */
    if (dash && !strchr(port, '.') && (bus == 1 || bus == 3)) {
        unsigned long n = strtoul(dash + 1, NULL, 10);

        snprintf(path, sizeof(path), "pci-%s-usbv%d-0:%lu", pci, bus == 1 ? 3 : 2,
                 bus == 1 ? n + 1 : n - 1);
        assert_int_equal(device_set_str(&dev->peer_path, path), 0);
    }
}

static const struct dev_spec devices[] = {
    [YUBIKEY] = { "1-1.2", 0x1050, 0x0407, "0012345", "Yubico", "YubiKey OTP+FIDO+CCID",
                  0, 0, 0, ":030101:030000:0b0000:" },
    [YUBIKEY_NOSER] = { "1-1.3", 0x1050, 0x0407, NULL, "Yubico", "YubiKey OTP+FIDO+CCID",
                        0, 0, 0, ":030101:030000:0b0000:" },
    [KEYBOARD] = { "3-2", 0x046d, 0xc31c, NULL, "Logitech", "USB Keyboard", 0, 0, 0,
                   ":030101:030000:" },
    [STORAGE] = { "1-10", 0x0781, 0x5581, "4C530001", "SanDisk", "Ultra", 0, 0, 0,
                  ":080650:" },
    [WEBCAM] = { "1-4.1.3", 0x046d, 0x085e, "ABC", "Logitech", "BRIO 4K Webcam", 0xef,
                 0x02, 0x01, ":0e0100:0e0200:010100:010200:" },
    [NESTED] = { "1-1.4.2", 0x05ac, 0x024f, "X", "Apple", "Keyboard", 0, 0, 0,
                 ":030101:" },
    [HUB_ITSELF] = { "1-1", 0x05e3, 0x0608, NULL, NULL, "USB2.0 Hub", 0x09, 0, 1,
                     ":090000:" },
    [DEEP] = { "2-1.1.1.1.1.1.1", 0x1234, 0x5678, NULL, NULL, NULL, 0xff, 0xff, 0xff,
               NULL },
    [BUS11] = { "11-1", 0x1050, 0x0407, "0012345", NULL, NULL, 0, 0, 0, NULL },
    [BARE] = { "4-1", 0xabcd, 0x00ef, NULL, NULL, NULL, 0, 0, 0, NULL },
};

static struct usb_device *make_dev(const struct dev_spec *s)
{
    char devpath[128];
    struct usb_device *dev;

    snprintf(devpath, sizeof(devpath), "/devices/pci0000:00/0000:00:14.0/usb1/%s", s->port);
    dev = device_new(devpath, s->port);
    assert_non_null(dev);
    set_path(dev, s->port);
    dev->vendor = s->vendor;
    dev->product = s->product;
    assert_int_equal(device_set_str(&dev->serial, s->serial), 0);
    assert_int_equal(device_set_str(&dev->manufacturer, s->manufacturer), 0);
    assert_int_equal(device_set_str(&dev->product_name, s->product_name), 0);
    dev->dev_class = (struct usb_class){ s->cls, s->subclass, s->protocol };
    if (s->ifaces)
        assert_true(device_parse_interfaces(dev, s->ifaces) >= 0);
    /* The keyboard on bus 3 is a laptop's, wired in; the stick's port a socket. */
    if (s == &devices[KEYBOARD])
        dev->connect_type = DEVICE_CONNECT_HARDWIRED;
    else if (s == &devices[STORAGE])
        dev->connect_type = DEVICE_CONNECT_HOTPLUG;
    return dev;
}

/* ---- policies ---- */

static struct policy *load(const char *rules)
{
    char text[8192];

    snprintf(text, sizeof(text), "version: 1\ndomains: {a: {}, b: {}}\nrules:\n%s", rules);
    return unit_policy(text);
}

/* The 1-based index of the rule both paths pick, or 0; they must agree. */
static unsigned decide(const struct policy *p, const struct usb_device *dev)
{
    const struct policy_rule *fast = match_device(p, dev);
    const struct policy_rule *slow = match_device_linear(p, dev);

    assert_ptr_equal(fast, slow);
    return fast ? fast->index : 0;
}

/* ---- every key ---- */

struct key_case {
    const char *match;      /* the body of a flow mapping */
    int dev;
    bool hit;
};

static const struct key_case key_cases[] = {
    /* id: vendor:product, globs on either half, hex in any case */
    { "id: \"1050:0407\"", YUBIKEY, true },
    { "id: \"1050:0407\"", KEYBOARD, false },
    { "id: \"1050:0406\"", YUBIKEY, false },
    { "id: \"1050:*\"", YUBIKEY, true },
    { "id: \"*:0407\"", YUBIKEY, true },
    { "id: \"10*:04?7\"", YUBIKEY, true },
    { "id: \"105[0-4]:0407\"", YUBIKEY, true },
    { "id: \"105[1-4]:0407\"", YUBIKEY, false },
    { "id: \"046D:C31C\"", KEYBOARD, true },
    { "id: \"abcd:00ef\"", BARE, true },
    /* vendor, product */
    { "vendor: \"1050\"", YUBIKEY, true },
    { "vendor: \"1050\"", KEYBOARD, false },
    { "vendor: \"10*\"", YUBIKEY, true },
    { "vendor: \"10*\"", STORAGE, false },
    { "vendor: \"046d\"", WEBCAM, true },
    { "product: \"c31c\"", KEYBOARD, true },
    { "product: \"C31C\"", KEYBOARD, true },
    { "product: \"08*\"", WEBCAM, true },
    { "product: \"08*\"", KEYBOARD, false },
    /* serial: a glob over the whole string; no serial never matches */
    { "serial: \"0012*\"", YUBIKEY, true },
    { "serial: \"0012345\"", YUBIKEY, true },
    { "serial: \"001234\"", YUBIKEY, false },
    { "serial: \"0012*\"", YUBIKEY_NOSER, false },
    { "serial: \"*\"", YUBIKEY_NOSER, false },
    { "serial: \"*\"", YUBIKEY, true },
    { "serial: \"4C53*\"", STORAGE, true },
    { "serial: \"4c53*\"", STORAGE, false },
    /* manufacturer, product-name */
    { "manufacturer: Yubico", YUBIKEY, true },
    { "manufacturer: yubico", YUBIKEY, false },
    { "manufacturer: \"Logi*\"", KEYBOARD, true },
    { "manufacturer: \"Logi*\"", WEBCAM, true },
    { "manufacturer: \"*\"", BARE, false },
    { "product-name: \"*Webcam*\"", WEBCAM, true },
    { "product-name: \"*Webcam*\"", KEYBOARD, false },
    { "product-name: \"YubiKey*CCID\"", YUBIKEY, true },
    { "product-name: \"YubiKey\"", YUBIKEY, false },
    { "product-name: \"*\"", BARE, false },
    /* hub: below it at any depth; not the hub itself, not a sibling */
    { "hub: usb1", YUBIKEY, true },
    { "hub: usb1", STORAGE, true },
    { "hub: usb1", NESTED, true },
    { "hub: usb1", KEYBOARD, false },
    { "hub: usb1", BUS11, false },
    { "hub: usb3", KEYBOARD, true },
    { "hub: usb3", YUBIKEY, false },
    { "hub: \"1-1\"", YUBIKEY, true },
    { "hub: \"1-1\"", NESTED, true },
    { "hub: \"1-1\"", STORAGE, false },
    { "hub: \"1-1\"", HUB_ITSELF, false },
    { "hub: \"1-1\"", WEBCAM, false },
    { "hub: \"1-1.4\"", NESTED, true },
    { "hub: \"1-1.4\"", YUBIKEY, false },
    { "hub: \"1-1.2\"", YUBIKEY, false },
    { "hub: \"2-1\"", DEEP, true },
    { "hub: \"2-1.1.1.1.1.1\"", DEEP, true },
    { "hub: \"1-4.1\"", WEBCAM, true },
    { "hub: \"1-4\"", WEBCAM, true },
    /* port: exact or glob over the port path */
    { "port: \"1-1.2\"", YUBIKEY, true },
    { "port: \"1-1\"", YUBIKEY, false },
    { "port: \"1-1\"", HUB_ITSELF, true },
    { "port: \"1-1.*\"", YUBIKEY, true },
    { "port: \"1-1.*\"", NESTED, true },
    { "port: \"1-1.*\"", STORAGE, false },
    { "port: \"1-1?\"", STORAGE, true },
    { "port: \"1-1.[23]\"", YUBIKEY_NOSER, true },
    { "port: \"1-1.[!23]\"", YUBIKEY, false },
    { "port: \"*.1.3\"", WEBCAM, true },
    /* path: exact or glob over the id path; no path never matches */
    { "path: \"pci-0000:00:14.0-usb-0:1.2\"", YUBIKEY, true },
    { "path: \"pci-0000:00:14.0-usb-0:1.2\"", NESTED, false },
    { "path: \"pci-0000:00:14.0-usb-0:1.2\"", BARE, false },
    { "path: \"pci-0000:00:14.0-usb-0:1\"", HUB_ITSELF, true },
    { "path: \"pci-0000:00:14.0-usb-0:1\"", BUS11, true },     /* bus 11, same controller */
    { "path: \"pci-0000:00:14.0-usb-0:1.*\"", YUBIKEY, true },
    { "path: \"pci-0000:00:14.0-usb-0:1.*\"", NESTED, true },
    { "path: \"pci-0000:00:14.0-usb-0:1.*\"", STORAGE, false },
    { "path: \"pci-0000:00:14.0-usb-0:1.*\"", HUB_ITSELF, false },
    { "path: \"pci-0000:03:00.0-*\"", KEYBOARD, true },
    { "path: \"pci-0000:03:00.0-*\"", YUBIKEY, false },
    { "path: \"*\"", KEYBOARD, true },
    { "path: \"*\"", BARE, false },
    /* hub by path: a controller (every device on it) or a hub's path */
    { "hub: \"pci-0000:00:14.0\"", YUBIKEY, true },
    { "hub: \"pci-0000:00:14.0\"", STORAGE, true },
    { "hub: \"pci-0000:00:14.0\"", HUB_ITSELF, true },
    { "hub: \"pci-0000:00:14.0\"", BUS11, true },
    { "hub: \"pci-0000:00:14.0\"", DEEP, true },
    { "hub: \"pci-0000:00:14.0\"", KEYBOARD, false },
    { "hub: \"pci-0000:00:14.0\"", BARE, false },
    { "hub: \"pci-0000:03:00.0\"", KEYBOARD, true },
    { "hub: \"pci-0000:00:14.0-usb-0:1\"", YUBIKEY, true },
    { "hub: \"pci-0000:00:14.0-usb-0:1\"", NESTED, true },
    { "hub: \"pci-0000:00:14.0-usb-0:1\"", STORAGE, false },
    { "hub: \"pci-0000:00:14.0-usb-0:1\"", HUB_ITSELF, false },
    { "hub: \"pci-0000:00:14.0-usb-0:1\"", WEBCAM, false },
    { "hub: \"pci-0000:00:14.0-usb-0:1.4\"", NESTED, true },
    { "hub: \"pci-0000:00:14.0-usb-0:1.4\"", YUBIKEY, false },
    { "hub: \"pci-0000:03:00.0-usb-0:1\"", YUBIKEY, false },
    { "hub: \"pci-0000:00:14.0-usb-0:1.1.1.1.1.1\"", DEEP, true },
    /* path and hub with the USB revision: the USB 2 and USB 3 root hubs apart */
    { "path: \"pci-0000:00:14.0-usbv2-0:1.2\"", YUBIKEY, true },
    { "path: \"pci-0000:00:14.0-usbv3-0:1.2\"", YUBIKEY, false },
    { "path: \"pci-0000:00:14.0-usbv2-0:1\"", BUS11, true },
    { "path: \"pci-0000:00:14.0-usbv3-0:1.1.1.1.1.1.1\"", DEEP, true },
    { "path: \"pci-0000:00:14.0-usbv2-0:1.1.1.1.1.1.1\"", DEEP, false },
    { "path: \"pci-0000:00:14.0-usbv2-*\"", NESTED, true },
    { "path: \"pci-0000:00:14.0-usbv2-*\"", DEEP, false },
    { "path: \"pci-0000:00:14.0-usbv?-0:1.2\"", YUBIKEY, true },
    { "path: \"pci-0000:00:14.0-usbv2-0:1.2\"", BARE, false },
    { "hub: \"pci-0000:00:14.0-usbv2\"", YUBIKEY, true },
    { "hub: \"pci-0000:00:14.0-usbv2\"", HUB_ITSELF, true },
    { "hub: \"pci-0000:00:14.0-usbv2\"", DEEP, false },
    { "hub: \"pci-0000:00:14.0-usbv3\"", DEEP, true },
    { "hub: \"pci-0000:00:14.0-usbv3\"", KEYBOARD, false },   /* the card's */
    { "hub: \"pci-0000:03:00.0-usbv3\"", KEYBOARD, true },
    { "hub: \"pci-0000:00:14.0-usbv2-0:1\"", YUBIKEY, true },
    { "hub: \"pci-0000:00:14.0-usbv2-0:1\"", HUB_ITSELF, false },
    { "hub: \"pci-0000:00:14.0-usbv3-0:1\"", YUBIKEY, false },
    { "hub: \"pci-0000:00:14.0-usbv3-0:1\"", DEEP, true },
    { "hub: \"pci-0000:00:14.0-usbv2-0:1\"", DEEP, false },
    { "hub: \"pci-0000:00:14.0-usbv2-0:1\"", BARE, false },
    /* connector: the port, by either half of the socket (its peer) */
    { "connector: \"pci-0000:00:14.0-usbv2-0:10\"", STORAGE, true },
    { "connector: \"pci-0000:00:14.0-usbv3-0:11\"", STORAGE, true },
    { "connector: \"pci-0000:00:14.0-usbv3-0:10\"", STORAGE, false },
    { "connector: \"pci-0000:00:14.0-usbv2-0:11\"", STORAGE, false },
    { "connector: \"pci-0000:00:14.0-usbv3-0:2\"", HUB_ITSELF, true },
    { "connector: \"pci-0000:03:00.0-usbv2-0:1\"", KEYBOARD, true },
    { "connector: \"pci-0000:03:00.0-usbv3-0:2\"", KEYBOARD, true },
    { "connector: \"pci-0000:00:14.0-usbv3-0:2\"", KEYBOARD, false },
    { "connector: \"pci-0000:00:14.0-usbv2-0:1.2\"", YUBIKEY, true },
    { "connector: \"pci-0000:00:14.0-usbv3-0:1.2\"", YUBIKEY, false },
    { "connector: \"pci-0000:00:14.0-usbv2-0:1\"", YUBIKEY, false },
    { "connector: \"pci-0000:00:14.0-usbv2-0:1\"", BUS11, true },
    { "connector: \"pci-0000:00:14.0-usbv2-0:1\"", BARE, false },
    { "connector: \"pci-0000:00:14.0-usbv2-0:10\", id: \"0781:*\"", STORAGE, true },
    { "connector: \"pci-0000:00:14.0-usbv2-0:10\", id: \"1050:*\"", STORAGE, false },
    { "id: \"1050:0407\", hub: \"pci-0000:00:14.0-usb-0:1\"", YUBIKEY, true },
    { "id: \"1050:0407\", path: \"*:1.3\"", YUBIKEY, false },
    { "id: \"1050:0407\", path: \"*:1.3\"", YUBIKEY_NOSER, true },
    /* class: the device's own class, by name, hex, class:subclass:protocol */
    { "class: misc", WEBCAM, true },
    { "class: misc", YUBIKEY, false },
    { "class: \"0xef\"", WEBCAM, true },
    { "class: ef", WEBCAM, true },
    { "class: \"ef:02\"", WEBCAM, true },
    { "class: \"ef:02:01\"", WEBCAM, true },
    { "class: \"ef:02:02\"", WEBCAM, false },
    { "class: \"ef:*:01\"", WEBCAM, true },
    { "class: \"ef:03\"", WEBCAM, false },
    { "class: \"00\"", YUBIKEY, true },
    { "class: vendor", DEEP, true },
    { "class: hub", HUB_ITSELF, true },
    /* interface-class: any one interface */
    { "interface-class: hid", YUBIKEY, true },
    { "interface-class: hid", KEYBOARD, true },
    { "interface-class: hid", STORAGE, false },
    { "interface-class: smart-card", YUBIKEY, true },
    { "interface-class: \"0b\"", YUBIKEY, true },
    { "interface-class: \"0x0B\"", KEYBOARD, false },
    { "interface-class: \"03:01:01\"", YUBIKEY, true },
    { "interface-class: \"03:01:02\"", YUBIKEY, false },
    { "interface-class: \"03:00\"", KEYBOARD, true },
    { "interface-class: \"03:*:00\"", YUBIKEY, true },
    { "interface-class: \"08:06:50\"", STORAGE, true },
    { "interface-class: storage", STORAGE, true },
    { "interface-class: video", WEBCAM, true },
    { "interface-class: audio", WEBCAM, true },
    { "interface-class: \"00\"", BARE, false },
    { "interface-class: vendor", DEEP, false },
    /* connect-type: the port's wiring; unknown when the firmware says nothing */
    { "connect-type: hardwired", KEYBOARD, true },
    { "connect-type: hardwired", STORAGE, false },
    { "connect-type: hotplug", STORAGE, true },
    { "connect-type: hotplug", YUBIKEY, false },
    { "connect-type: unknown", YUBIKEY, true },
    { "connect-type: unknown", KEYBOARD, false },
    /* every-interface-class: each interface in the set; none known: no */
    { "every-interface-class: hid", KEYBOARD, true },
    { "every-interface-class: [hid]", NESTED, true },
    { "every-interface-class: hid", YUBIKEY, false },            /* and a CCID */
    { "every-interface-class: [hid, smart-card]", YUBIKEY, true },
    { "every-interface-class: \"03:01:01\"", KEYBOARD, false },  /* its 03:00:00 */
    { "every-interface-class: [\"03:01:01\", \"03:00\"]", KEYBOARD, true },
    { "every-interface-class: [hid, storage]", STORAGE, true },
    { "every-interface-class: [hid, storage]", WEBCAM, false },
    { "every-interface-class: hid", BARE, false },
    { "every-interface-class: vendor", DEEP, false },
    /* no-interface-class: none in the set; none known: no */
    { "no-interface-class: hid", STORAGE, true },
    { "no-interface-class: hid", YUBIKEY, false },
    { "no-interface-class: [storage, hid]", WEBCAM, true },
    { "no-interface-class: \"03:01:01\"", KEYBOARD, false },
    { "no-interface-class: \"03:01:02\"", KEYBOARD, true },
    { "no-interface-class: hid", BARE, false },
    { "interface-class: storage, no-interface-class: hid", STORAGE, true },
    /* several keys: all must hold */
    { "id: \"1050:0407\", serial: \"999*\"", YUBIKEY, false },
    { "id: \"1050:0407\", hub: usb1", YUBIKEY, true },
    { "id: \"1050:0407\", hub: usb1", BUS11, false },
    { "port: \"1-1.2\", interface-class: smart-card", YUBIKEY, true },
    { "port: \"1-1.2\", interface-class: storage", YUBIKEY, false },
    { "vendor: \"046d\", product-name: \"*Webcam\", class: misc", WEBCAM, true },
    /* match: {} matches every device */
    { "", YUBIKEY, true },
    { "", BARE, true },
    { "", DEEP, true },
};

static void every_key(void **state)
{
    for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
        const struct key_case *c = &key_cases[i];
        char rules[256], why[256] = "";
        struct policy *p;
        struct usb_device *dev = make_dev(&devices[c->dev]);
        unsigned got;
        bool held;

        snprintf(rules, sizeof(rules), "  - match: {%s}\n    domain: a\n", c->match);
        p = load(rules);
        got = decide(p, dev);
        held = match_rule(&p->rules[0], dev, why, sizeof(why));
        if (got != (c->hit ? 1u : 0u) || held != c->hit)
            print_message("case %zu: {%s} on %s: %s\n", i, c->match, devices[c->dev].port,
                          why);
        assert_int_equal(got, c->hit ? 1 : 0);
        assert_int_equal(held, c->hit);
        /* The explanation says something either way. */
        if (c->hit)
            assert_string_equal(why, "every key matches");
        else
            assert_true(why[0] != '\0' && strcmp(why, "every key matches") != 0);
        policy_free(p);
        device_free(dev);
    }
}

/* ---- rules that can never match ---- */

struct cover_case {
    const char *earlier, *later;    /* bodies of flow mappings */
    bool covers;
};

static const struct cover_case cover_cases[] = {
    /* the same keys and values; match: {} before anything */
    { "id: \"1050:0407\"", "id: \"1050:0407\"", true },
    { "", "id: \"1050:0407\", serial: \"12\"", true },
    { "", "", true },
    /* fewer keys, the same values: wider */
    { "id: \"1050:0407\"", "id: \"1050:0407\", serial: \"0012345\"", true },
    { "id: \"1050:0407\", serial: \"0012345\"", "id: \"1050:0407\"", false },
    { "interface-class: hid", "interface-class: hid, port: \"1-2\"", true },
    /* a glob over the later literal */
    { "vendor: \"10*\"", "id: \"1050:0407\"", true },
    { "id: \"1050:*\"", "id: \"1050:0407\"", true },
    { "id: \"1050:*\"", "id: \"1051:0407\"", false },
    { "serial: \"00*\"", "serial: \"0012345\"", true },
    { "serial: \"00*\"", "serial: \"00?2345\"", false },     /* a glob: unknown */
    { "serial: \"00?2345\"", "serial: \"00?2345\"", true },  /* the same glob */
    { "vendor: \"1050\"", "vendor: \"10*\"", false },
    { "port: \"1-1.*\"", "port: \"1-1.4\"", true },
    { "path: \"pci-0000:00:14.0-usb*\"", "path: \"pci-0000:00:14.0-usbv3-0:1\"", true },
    { "manufacturer: \"Logi*\"", "manufacturer: \"Logitech\", class: \"00\"", true },
    { "product-name: \"*Key*\"", "product-name: \"YubiKey\"", true },
    /* hubs above hubs, in one form */
    { "hub: usb1", "hub: \"1-1.4\"", true },
    { "hub: \"1-1\"", "hub: \"1-1.4\"", true },
    { "hub: \"1-1.4\"", "hub: \"1-1\"", false },
    { "hub: \"1-1\"", "hub: \"1-10\"", false },
    { "hub: usb1", "hub: usb11", false },
    { "hub: \"pci-0000:00:14.0\"", "hub: \"pci-0000:00:14.0-usb-0:1\"", true },
    { "hub: \"pci-0000:00:14.0\"", "hub: \"pci-0000:00:14.0-usbv3-0:1\"", true },
    { "hub: \"pci-0000:00:14.0-usbv3\"", "hub: \"pci-0000:00:14.0-usbv3-0:1\"", true },
    { "hub: \"pci-0000:00:14.0-usbv2\"", "hub: \"pci-0000:00:14.0-usbv3-0:1\"", false },
    { "hub: \"pci-0000:00:14.0-usb-0:1\"", "hub: \"pci-0000:00:14.0-usbv3-0:1\"", false },
    { "hub: usb1", "hub: \"pci-0000:00:14.0\"", false },   /* forms differ: unknown */
    /* connector: the same socket only */
    { "connector: \"pci-0000:00:14.0-usbv3-0:1\"", "connector: \"pci-0000:00:14.0-usbv3-0:1\", "
      "id: \"1050:*\"", true },
    { "connector: \"pci-0000:00:14.0-usbv3-0:1\"", "connector: \"pci-0000:00:14.0-usbv2-0:1\"",
      false },
    /* classes: fewer parts are wider */
    { "interface-class: \"03\"", "interface-class: \"03:01:01\"", true },
    { "interface-class: \"03:*:01\"", "interface-class: \"03:01:01\"", true },
    { "interface-class: \"03:01:01\"", "interface-class: \"03\"", false },
    { "class: hid", "class: \"03:00\"", true },
    { "class: hid", "interface-class: hid", false },
    /* connect-type and interface sets */
    { "connect-type: hotplug", "connect-type: hotplug, id: \"1050:*\"", true },
    { "connect-type: hotplug", "connect-type: hardwired", false },
    { "every-interface-class: [hid, storage]", "every-interface-class: hid", true },
    { "every-interface-class: hid", "every-interface-class: [hid, storage]", false },
    { "every-interface-class: hid", "every-interface-class: \"03:01:01\"", true },
    { "no-interface-class: hid", "no-interface-class: [hid, storage]", true },
    { "no-interface-class: [hid, storage]", "no-interface-class: hid", false },
    { "no-interface-class: \"03:01:01\"", "no-interface-class: hid", true },
    { "no-interface-class: hid", "no-interface-class: \"03:01:01\"", false },
    /* a key the later rule lacks: never covered */
    { "serial: \"*\"", "id: \"1050:0407\"", false },
    { "hub: usb1", "port: \"1-1.2\"", false },
};

static void covers(void **state)
{
    for (size_t i = 0; i < sizeof(cover_cases) / sizeof(cover_cases[0]); i++) {
        const struct cover_case *c = &cover_cases[i];
        char rules[512];
        struct policy *p;
        bool got;

        snprintf(rules, sizeof(rules),
                 "  - match: {%s}\n    domain: a\n  - match: {%s}\n    domain: b\n",
                 c->earlier, c->later);
        p = load(rules);
        got = match_rule_covers(&p->rules[0].match, &p->rules[1].match);
        if (got != c->covers)
            print_message("case %zu: {%s} before {%s}: %d\n", i, c->earlier, c->later, got);
        assert_int_equal(got, c->covers);
        policy_free(p);
    }
}

struct shadow_rec {
    unsigned dead[8], by[8], n;
};

static void record_shadow(void *arg, const struct policy_rule *dead,
                          const struct policy_rule *by)
{
    struct shadow_rec *r = arg;

    r->dead[r->n] = dead->index;
    r->by[r->n++] = by->index;
}

/* Each dead rule once, named with the first rule that covers it. */
static void shadowed(void **state)
{
    struct shadow_rec r = { .n = 0 };
    struct policy *p = load("  - match: {id: \"1050:0407\", serial: \"0012*\"}\n"
                            "    domain: a\n"
                            "  - match: {vendor: \"1050\"}\n"
                            "    domain: a\n"
                            "  - match: {id: \"1050:0407\"}\n"
                            "    action: ignore\n"
                            "  - match: {id: \"1050:0407\", serial: \"0012345\"}\n"
                            "    domain: b\n"
                            "  - match: {id: \"046d:c31c\"}\n"
                            "    domain: b\n"
                            "  - match: {id: \"046d:c31c\"}\n"
                            "    domain: a\n");

    assert_int_equal(match_shadowed(p, record_shadow, &r), 3);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.dead[0], 3);
    assert_int_equal(r.by[0], 2);
    assert_int_equal(r.dead[1], 4);
    assert_int_equal(r.by[1], 1);
    assert_int_equal(r.dead[2], 6);
    assert_int_equal(r.by[2], 5);
    policy_free(p);
}

/* ---- order ---- */

static void first_match_wins(void **state)
{
    struct policy *p = load("  - match: {id: \"1050:0407\", serial: \"9*\"}\n"
                            "    action: ignore\n"
                            "  - match: {port: \"1-1.2\"}\n"
                            "    domain: a\n"
                            "  - match: {id: \"1050:0407\"}\n"
                            "    domain: b\n"
                            "  - match: {hub: usb1}\n"
                            "    domain: b\n"
                            "  - match: {interface-class: hid}\n"
                            "    domain: a\n"
                            "  - match: {}\n"
                            "    action: ignore\n");
    static const struct {
        int dev;
        const char *serial;     /* replaces the table's serial when not NULL */
        unsigned rule;
    } cases[] = {
        { YUBIKEY, NULL, 2 },           /* port before id */
        { YUBIKEY, "9000", 1 },         /* the ignore rule is first */
        { YUBIKEY_NOSER, NULL, 3 },     /* id before hub */
        { BUS11, NULL, 3 },
        { STORAGE, NULL, 4 },           /* hub */
        { NESTED, NULL, 4 },            /* hub before interface class */
        { KEYBOARD, NULL, 5 },          /* interface class */
        { DEEP, NULL, 6 },              /* the catch-all */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct usb_device *dev = make_dev(&devices[cases[i].dev]);

        if (cases[i].serial)
            assert_int_equal(device_set_str(&dev->serial, cases[i].serial), 0);
        assert_int_equal(decide(p, dev), cases[i].rule);
        device_free(dev);
    }
    assert_int_equal(p->rules[0].action, RULE_IGNORE);
    assert_int_equal(p->rules[1].domain, 0);
    assert_int_equal(p->rules[2].domain, 1);
    policy_free(p);
}

/* A general (unindexed) rule before an indexed one still wins, and after it loses. */
static void index_keeps_file_order(void **state)
{
    static const struct {
        const char *rules;
        unsigned want;      /* the rule the YubiKey gets */
    } policies[] = {
        { "  - match: {vendor: \"10*\"}\n    domain: a\n"
          "  - match: {id: \"1050:0407\"}\n    domain: b\n", 1 },
        { "  - match: {id: \"1050:0407\"}\n    domain: b\n"
          "  - match: {vendor: \"10*\"}\n    domain: a\n", 1 },
        { "  - match: {serial: \"none\"}\n    domain: a\n"
          "  - match: {hub: \"1-1\"}\n    domain: a\n"
          "  - match: {port: \"1-1.2\"}\n    domain: b\n"
          "  - match: {id: \"1050:0407\"}\n    domain: b\n", 2 },
        { "  - match: {id: \"1050:0407\", serial: \"x\"}\n    domain: a\n"
          "  - match: {port: \"1-1.2\", class: \"ff\"}\n    domain: a\n"
          "  - match: {hub: usb1, manufacturer: \"Nobody\"}\n    domain: b\n"
          "  - match: {hub: usb1}\n    domain: b\n"
          "  - match: {port: \"1-1.2\"}\n    domain: b\n", 4 },
    };

    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
        struct policy *p = load(policies[i].rules);
        struct usb_device *dev = make_dev(&devices[YUBIKEY]);

        assert_int_equal(decide(p, dev), policies[i].want);
        policy_free(p);
        device_free(dev);
    }
}

static void no_rule_matches(void **state)
{
    struct policy *p = load("  - match: {id: \"1050:0407\"}\n    domain: a\n");
    struct policy *empty = load("");
    struct usb_device *dev = make_dev(&devices[KEYBOARD]);

    assert_int_equal(decide(p, dev), 0);
    assert_int_equal(empty->n_rules, 0);
    assert_int_equal(decide(empty, dev), 0);
    policy_free(p);
    policy_free(empty);
    device_free(dev);
}

/* The explanation names the first key that failed. */
static void why_not(void **state)
{
    static const struct {
        const char *match;
        int dev;
        const char *why;
    } cases[] = {
        { "vendor: \"1050\"", KEYBOARD, "vendor 046d does not match 1050" },
        { "id: \"046d:c3*\"", WEBCAM, "product 085e does not match c3*" },
        { "port: \"1-1.*\"", KEYBOARD, "port 3-2 does not match 1-1.*" },
        { "hub: usb1", KEYBOARD, "port 3-2 is not below hub usb1" },
        { "path: \"pci-0000:03:00.0-*\"", YUBIKEY,
          "path pci-0000:00:14.0-usb-0:1.2 or pci-0000:00:14.0-usbv2-0:1.2 does not match "
          "pci-0000:03:00.0-*" },
        { "path: \"*\"", BARE, "the device has no path to match *" },
        { "hub: \"pci-0000:00:14.0-usb-0:1\"", STORAGE,
          "path pci-0000:00:14.0-usb-0:10 is not below hub pci-0000:00:14.0-usb-0:1" },
        { "hub: \"pci-0000:00:14.0\"", BARE,
          "the device has no path to be below hub pci-0000:00:14.0" },
        { "connector: \"pci-0000:00:14.0-usbv2-0:11\"", STORAGE,
          "port pci-0000:00:14.0-usbv2-0:10 and its peer pci-0000:00:14.0-usbv3-0:11 are not "
          "connector pci-0000:00:14.0-usbv2-0:11" },
        { "connector: \"pci-0000:00:14.0-usbv3-0:1.2\"", YUBIKEY,
          "port pci-0000:00:14.0-usbv2-0:1.2 (no peer) is not connector "
          "pci-0000:00:14.0-usbv3-0:1.2" },
        { "connector: \"pci-0000:00:14.0-usbv3-0:1\"", BARE,
          "the device has no path with a USB revision to be in connector "
          "pci-0000:00:14.0-usbv3-0:1" },
        { "hub: \"pci-0000:00:14.0-usbv3-0:1\"", YUBIKEY,
          "path pci-0000:00:14.0-usbv2-0:1.2 is not below hub pci-0000:00:14.0-usbv3-0:1" },
        { "serial: \"0012*\"", KEYBOARD, "serial \"(none)\" does not match \"0012*\"" },
        { "manufacturer: Yubico", KEYBOARD,
          "manufacturer \"Logitech\" does not match \"Yubico\"" },
        { "product-name: \"*Cam*\"", WEBCAM,
          "product name \"BRIO 4K Webcam\" does not match \"*Cam*\"" },
        { "class: \"ef:02:02\"", WEBCAM, "device class ef:02:01 does not match ef:02:02" },
        { "interface-class: smart-card", KEYBOARD, "no interface of class 0b" },
        { "interface-class: \"03:01\"", STORAGE, "no interface of class 03:01" },
        { "connect-type: hotplug", KEYBOARD, "its port is hardwired, not hotplug" },
        { "every-interface-class: hid", YUBIKEY,
          "interface 2 is of class 0b:00:00, not one of every-interface-class" },
        { "no-interface-class: smart-card", YUBIKEY,
          "interface 2 is of class 0b:00:00, one of no-interface-class" },
        { "no-interface-class: hid", BARE,
          "its interfaces are unknown: none can be shown to be outside no-interface-class" },
        { "vendor: \"046d\", interface-class: \"03:01:02\"", KEYBOARD,
          "no interface of class 03:01:02" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char rules[256], why[256] = "";
        struct policy *p;
        struct usb_device *dev = make_dev(&devices[cases[i].dev]);

        snprintf(rules, sizeof(rules), "  - match: {%s}\n    domain: a\n", cases[i].match);
        p = load(rules);
        assert_false(match_rule(&p->rules[0], dev, why, sizeof(why)));
        assert_string_equal(why, cases[i].why);
        /* A NULL buffer is allowed. */
        assert_false(match_rule(&p->rules[0], dev, NULL, 0));
        policy_free(p);
        device_free(dev);
    }
}

/* The strings of a device are escaped in the explanation. */
static void why_not_escapes_device_strings(void **state)
{
    struct policy *p = load("  - match: {serial: \"A*\"}\n    domain: a\n");
    struct usb_device *dev = make_dev(&devices[YUBIKEY]);
    char why[256];

    assert_int_equal(device_set_str(&dev->serial, "x\"\n\xff"), 0);
    assert_false(match_rule(&p->rules[0], dev, why, sizeof(why)));
    assert_string_equal(why, "serial \"x\\\"\\x0a\\xff\" does not match \"A*\"");
    policy_free(p);
    device_free(dev);
}

/* Ports no kernel makes (too deep, a root hub's own name): both paths agree. */
static void index_agrees_on_odd_ports(void **state)
{
    static const char *const ports[] = {
        "usb1", "1-1.1.1.1.1.1.1", "1-1.1.1.1.1.1.1.1", "1-1.", "garbage", "1-01.2",
    };
    struct policy *p = load("  - match: {hub: \"1-1\"}\n    domain: a\n"
                            "  - match: {hub: usb1}\n    domain: b\n");

    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        struct dev_spec s = devices[BARE];
        struct usb_device *dev;
        const struct policy_rule *fast, *slow;

        s.port = ports[i];
        dev = make_dev(&s);
        fast = match_device(p, dev);
        slow = match_device_linear(p, dev);
        device_free(dev);
        if (fast != slow) {
            print_message("port %s: index says rule %u, scan says %u\n", ports[i],
                          fast ? fast->index : 0, slow ? slow->index : 0);
            policy_free(p);
        }
        assert_ptr_equal(fast, slow);
    }
    policy_free(p);
}

/* ---- property: the index never changes an answer ---- */

struct rng {
    uint64_t s;
};

static uint32_t rnd(struct rng *r, uint32_t n)
{
    /* xorshift64*: fixed seed, the same sequence on every machine. */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1DULL) >> 32) % n;
}

static const uint16_t vendor_pool[] = {
    0x1050, 0x046d, 0x0781, 0x05ac, 0x8087, 0x04f2, 0x0bda, 0x1d6b, 0x2109, 0x0951,
};
static const uint16_t product_pool[] = {
    0x0407, 0xc31c, 0x5581, 0x0024, 0x085e, 0xb68b, 0x0129, 0x0002, 0x2817, 0x1666,
};
#define N_VENDORS (sizeof(vendor_pool) / sizeof(vendor_pool[0]))
#define N_PRODUCTS (sizeof(product_pool) / sizeof(product_pool[0]))
static const char *const serial_pool[] = { "0012345", "0012999", "ABC", "4C5300", "x" };
static const char *const maker_pool[] = { "Yubico", "Logitech", "SanDisk", "Apple" };
static const char *const name_pool[] = { "YubiKey", "BRIO Webcam", "Ultra", "Keyboard" };
static const uint8_t class_pool[] = { 0x00, 0x01, 0x03, 0x08, 0x0b, 0x0e, 0xef, 0xff };

/* A valid port path: bus 1-3, depth 1-max_depth, port numbers 1-4. */
static void random_port(struct rng *r, char *buf, size_t len, unsigned max_depth)
{
    unsigned depth = 1 + rnd(r, max_depth);
    size_t o = (size_t)snprintf(buf, len, "%u-%u", 1 + rnd(r, 3), 1 + rnd(r, 4));

    for (unsigned i = 1; i < depth; i++)
        o += (size_t)snprintf(buf + o, len - o, ".%u", 1 + rnd(r, 4));
}

static const char *const pci_pool[] = { "0000:00:14.0", "0000:03:00.0", "0000:00:1d.7" };

/* An id path: one of three controllers, then port's path without its bus. */
static void random_path(struct rng *r, const char *port, char *buf, size_t len)
{
    snprintf(buf, len, "pci-%s-usb-0:%s", pci_pool[rnd(r, 3)], strchr(port, '-') + 1);
}

static char *xstrdup(const char *s)
{
    char *copy = strdup(s);

    assert_non_null(copy);
    return copy;
}

static char *hex4(uint16_t v)
{
    char buf[8];

    snprintf(buf, sizeof(buf), "%04x", v);
    return xstrdup(buf);
}

static void random_class(struct rng *r, struct class_match *c)
{
    c->cls = class_pool[rnd(r, sizeof(class_pool))];
    c->subclass = rnd(r, 3) ? -1 : (int)rnd(r, 3);
    c->protocol = rnd(r, 3) ? -1 : (int)rnd(r, 3);
}

enum rule_kind {
    KIND_ID,            /* indexed by id */
    KIND_PORT,          /* indexed by port */
    KIND_HUB,           /* indexed by hub */
    KIND_ID_GLOB,
    KIND_STRINGS,
    KIND_CLASS,
    KIND_PORT_GLOB,
    KIND_PATH,          /* indexed by path */
    KIND_PATH_HUB,      /* indexed by hub, in the path form */
    KIND_PATH_GLOB,
    KIND_ALL,           /* match: {}, the last rule */
    N_KINDS,
};

/* Narrows a rule by one more key, so that rules early in the file do not shadow the rest. */
static void add_filter(struct rng *r, struct rule_match *m)
{
    char buf[64];

    switch (rnd(r, 6)) {
    case 0:
        if (m->keys & MATCH_SERIAL)
            break;
        m->keys |= MATCH_SERIAL;
        snprintf(buf, sizeof(buf), "%.3s*", serial_pool[rnd(r, 5)]);
        m->serial = xstrdup(buf);
        break;
    case 1:
        if (m->keys & MATCH_MANUFACTURER)
            break;
        m->keys |= MATCH_MANUFACTURER;
        m->manufacturer = xstrdup(maker_pool[rnd(r, 4)]);
        break;
    case 2:
        if (m->keys & MATCH_PRODUCT_NAME)
            break;
        m->keys |= MATCH_PRODUCT_NAME;
        snprintf(buf, sizeof(buf), "*%s*", name_pool[rnd(r, 4)] + 1);
        m->product_name = xstrdup(buf);
        break;
    case 3:
        m->keys |= MATCH_CLASS;
        random_class(r, &m->dev_class);
        break;
    case 4:
        m->keys |= MATCH_IFACE_CLASS;
        random_class(r, &m->iface_class);
        break;
    default:
        if (m->keys & MATCH_VENDOR)
            break;
        m->keys |= MATCH_VENDOR;
        m->vendor = hex4(vendor_pool[rnd(r, N_VENDORS)]);
        break;
    }
}

/* Sometimes the same path in the form with the USB revision ("-usbv3-0:..."). */
static void maybe_revision(struct rng *r, char *buf, size_t len)
{
    char rev[96];
    unsigned v = 2 + rnd(r, 2);

    if (rnd(r, 3))
        return;
    if (device_id_path_with_revision(buf, v, rev, sizeof(rev)) == 0 && strlen(rev) < len)
        memcpy(buf, rev, strlen(rev) + 1);
    else if (!strchr(buf + 4, '-'))
        snprintf(buf + strlen(buf), len - strlen(buf), "-usbv%u", v);
}

static enum rule_kind random_rule(struct rng *r, struct rule_match *m)
{
    enum rule_kind kind = (enum rule_kind)rnd(r, KIND_ALL);
    char buf[64], port[64];

    memset(m, 0, sizeof(*m));
    switch (kind) {
    case KIND_ID:
        m->keys = MATCH_VENDOR | MATCH_PRODUCT;
        m->vendor = hex4(vendor_pool[rnd(r, N_VENDORS)]);
        m->product = hex4(product_pool[rnd(r, N_PRODUCTS)]);
        if (rnd(r, 4) == 0) {
            random_port(r, buf, sizeof(buf), 2);
            m->keys |= MATCH_HUB;
            m->hub = xstrdup(buf);
        }
        break;
    case KIND_PORT:
        random_port(r, buf, sizeof(buf), 4);
        m->keys = MATCH_PORT;
        m->port = xstrdup(buf);
        break;
    case KIND_HUB:
        m->keys = MATCH_HUB;
        if (rnd(r, 4) == 0) {
            snprintf(buf, sizeof(buf), "usb%u", 1 + rnd(r, 3));
            add_filter(r, m);
        } else {
            random_port(r, buf, sizeof(buf), 3);
        }
        m->hub = xstrdup(buf);
        break;
    case KIND_ID_GLOB:
        snprintf(buf, sizeof(buf), "%02x*", vendor_pool[rnd(r, N_VENDORS)] >> 8);
        m->keys = MATCH_VENDOR;
        m->vendor = xstrdup(buf);
        if (rnd(r, 2)) {
            snprintf(buf, sizeof(buf), "%03x?", product_pool[rnd(r, N_PRODUCTS)] >> 4);
            m->keys |= MATCH_PRODUCT;
            m->product = xstrdup(buf);
        }
        break;
    case KIND_STRINGS:
        m->keys = MATCH_SERIAL;
        m->serial = xstrdup(serial_pool[rnd(r, 5)]);
        break;
    case KIND_CLASS:
        m->keys = MATCH_IFACE_CLASS;
        random_class(r, &m->iface_class);
        break;
    case KIND_PATH:
        random_port(r, port, sizeof(port), 4);
        random_path(r, port, buf, sizeof(buf));
        maybe_revision(r, buf, sizeof(buf));
        if (strstr(buf, "-usbv") && rnd(r, 2)) {
            /* A connector: the same port, or its peer. */
            m->keys = MATCH_CONNECTOR;
            m->connector = xstrdup(buf);
            break;
        }
        m->keys = MATCH_PATH;
        m->path = xstrdup(buf);
        break;
    case KIND_PATH_HUB:
        m->keys = MATCH_HUB;
        if (rnd(r, 4) == 0) {
            snprintf(buf, sizeof(buf), "pci-%s", pci_pool[rnd(r, 3)]);
            add_filter(r, m);
        } else {
            random_port(r, port, sizeof(port), 3);
            random_path(r, port, buf, sizeof(buf));
        }
        maybe_revision(r, buf, sizeof(buf));
        m->hub = xstrdup(buf);
        break;
    case KIND_PATH_GLOB:
        random_port(r, port, sizeof(port), 3);
        random_path(r, port, buf, sizeof(buf));
        strcat(buf, rnd(r, 2) ? ".*" : "?");
        m->keys = MATCH_PATH;
        m->path = xstrdup(buf);
        add_filter(r, m);
        break;
    default:
        random_port(r, buf, sizeof(buf), 2);
        strcat(buf, rnd(r, 2) ? ".*" : "?");
        m->keys = MATCH_PORT;
        m->port = xstrdup(buf);
        break;
    }
    /*
     * More keys: narrow rules leave room for later ones.  Exact ids and ports
     * are narrow already; the others get at least one key more.
     */
    for (unsigned extra = rnd(r, 3) + (kind != KIND_ID && kind != KIND_PORT &&
                                       kind != KIND_PATH);
         extra > 0; extra--)
        add_filter(r, m);
    return kind;
}

static struct usb_device *random_device(struct rng *r, unsigned i)
{
    char port[64], devpath[128];
    struct usb_device *dev;

    random_port(r, port, sizeof(port), rnd(r, 8) ? 4 : 7);
    snprintf(devpath, sizeof(devpath), "/devices/test/%u/%s", i, port);
    dev = device_new(devpath, port);
    assert_non_null(dev);
    /* Mostly a path; sometimes none, sometimes one not in udev 252's form. */
    switch (rnd(r, 16)) {
    case 0:
        break;
    case 1:
        snprintf(devpath, sizeof(devpath), "pci-0000:00:14.0-usbv2-0:%s", strchr(port, '-') + 1);
        assert_int_equal(device_set_str(&dev->id_path, devpath), 0);
        break;
    default:
        random_path(r, port, devpath, sizeof(devpath));
        assert_int_equal(device_set_str(&dev->id_path, devpath), 0);
        /* Mostly with the revision too, as the udev source computes it. */
        if (rnd(r, 4)) {
            char rev[96];

            if (device_id_path_with_revision(devpath, 2 + rnd(r, 2), rev, sizeof(rev)) == 0)
                assert_int_equal(device_set_str(&dev->id_path_rev, rev), 0);
            /* Some ports have a peer: another port's path. */
            if (rnd(r, 2)) {
                random_port(r, port, sizeof(port), 2);
                random_path(r, port, devpath, sizeof(devpath));
                if (device_id_path_with_revision(devpath, 2 + rnd(r, 2), rev, sizeof(rev)) == 0)
                    assert_int_equal(device_set_str(&dev->peer_path, rev), 0);
            }
        }
    }
    dev->vendor = rnd(r, 8) ? vendor_pool[rnd(r, N_VENDORS)] : (uint16_t)rnd(r, 0x10000);
    dev->product = rnd(r, 8) ? product_pool[rnd(r, N_PRODUCTS)] : (uint16_t)rnd(r, 0x10000);
    if (rnd(r, 5))
        assert_int_equal(device_set_str(&dev->serial, serial_pool[rnd(r, 5)]), 0);
    if (rnd(r, 5))
        assert_int_equal(device_set_str(&dev->manufacturer, maker_pool[rnd(r, 4)]), 0);
    if (rnd(r, 5))
        assert_int_equal(device_set_str(&dev->product_name, name_pool[rnd(r, 4)]), 0);
    dev->dev_class.cls = class_pool[rnd(r, sizeof(class_pool))];
    dev->dev_class.subclass = (uint8_t)rnd(r, 3);
    dev->dev_class.protocol = (uint8_t)rnd(r, 3);
    dev->n_ifaces = rnd(r, 4);
    for (unsigned k = 0; k < dev->n_ifaces; k++)
        dev->ifaces[k] = (struct usb_class){ class_pool[rnd(r, sizeof(class_pool))],
                                             (uint8_t)rnd(r, 3), (uint8_t)rnd(r, 3) };
    return dev;
}

static void index_equals_linear_scan(void **state)
{
    enum { N_RULES = 2000, N_DEVICES = 5000 };
    static const struct controller_spec spec = { .version = 2, .ports = 6, .max = 4 };
    struct rng r = { 0x5eed5eed5eedULL };
    struct policy *p = policy_new("generated");
    enum rule_kind kinds[N_RULES];
    unsigned wins[N_KINDS] = { 0 }, matched = 0, distinct = 0;
    static bool seen[N_RULES];

    assert_non_null(p);
    for (int d = 0; d < 3; d++) {
        char name[8];

        snprintf(name, sizeof(name), "d%d", d);
        assert_int_equal(policy_add_domain(p, name, &spec, NULL), d);
    }
    for (unsigned i = 0; i < N_RULES; i++) {
        struct rule_match m = { 0 };
        bool ignore = rnd(&r, 10) == 0;

        if (i == N_RULES - 1)
            kinds[i] = KIND_ALL;
        else
            kinds[i] = random_rule(&r, &m);
        assert_int_equal(policy_add_rule(p, NULL, i + 1, 1, ignore ? RULE_IGNORE : RULE_ATTACH,
                                         (int)rnd(&r, 3), &m),
                         0);
    }
    assert_int_equal(policy_finish(p), 0);
    assert_non_null(p->index);
    memset(seen, 0, sizeof(seen));

    for (unsigned i = 0; i < N_DEVICES; i++) {
        struct usb_device *dev = random_device(&r, i);
        const struct policy_rule *fast = match_device(p, dev);
        const struct policy_rule *slow = match_device_linear(p, dev);

        if (fast != slow)
            print_message("device %u at %s %04x:%04x: index says rule %u, scan says %u\n", i,
                          dev->port, dev->vendor, dev->product, fast ? fast->index : 0,
                          slow ? slow->index : 0);
        assert_ptr_equal(fast, slow);
        if (slow) {
            matched++;
            wins[kinds[slow->index - 1]]++;
            distinct += !seen[slow->index - 1];
            seen[slow->index - 1] = true;
        }
        device_free(dev);
    }
    /* The generator must exercise every path, or the comparison proves little. */
    print_message("%u of %d devices matched, by %u distinct rules; wins by kind: "
                  "id %u port %u hub %u id-glob %u strings %u class %u port-glob %u "
                  "path %u path-hub %u path-glob %u all %u\n",
                  matched, N_DEVICES, distinct, wins[KIND_ID], wins[KIND_PORT],
                  wins[KIND_HUB], wins[KIND_ID_GLOB], wins[KIND_STRINGS], wins[KIND_CLASS],
                  wins[KIND_PORT_GLOB], wins[KIND_PATH], wins[KIND_PATH_HUB],
                  wins[KIND_PATH_GLOB], wins[KIND_ALL]);
    assert_int_equal(matched, N_DEVICES);
    assert_true(distinct > 250);
    for (int k = 0; k < N_KINDS; k++)
        assert_true(wins[k] > 10);
    policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_key),
        cmocka_unit_test(covers),
        cmocka_unit_test(shadowed),
        cmocka_unit_test(first_match_wins),
        cmocka_unit_test(index_keeps_file_order),
        cmocka_unit_test(no_rule_matches),
        cmocka_unit_test(why_not),
        cmocka_unit_test(why_not_escapes_device_strings),
        cmocka_unit_test(index_agrees_on_odd_ports),
        cmocka_unit_test(index_equals_linear_scan),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

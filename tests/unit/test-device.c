/*
 * Unit tests of the device record (src/device.c): port paths (parse, depth
 * limit, "below a hub"), udev's ID_USB_INTERFACES, the raw `descriptors`
 * attribute (a YubiKey and a webcam written byte by byte, malformed
 * lengths, alternate settings counted once), the bounds on device strings,
 * device_dup, and the id path udev 252's path_id gives a USB device (from
 * the devpath alone; its form, and "below a hub" by path).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct usb_device *new_dev(const char *port)
{
    struct usb_device *dev = device_new("/devices/pci0000:00/usb1/1-1", port);

    assert_non_null(dev);
    return dev;
}

static void assert_class(const struct usb_class *c, uint8_t cls, uint8_t sub, uint8_t proto)
{
    assert_int_equal(c->cls, cls);
    assert_int_equal(c->subclass, sub);
    assert_int_equal(c->protocol, proto);
}

/* ---- port paths ---- */

static void port_parse(void **state)
{
    static const struct {
        const char *port;
        int ret;
        unsigned bus, depth;
    } cases[] = {
        { "usb1", 0, 1, 0 },
        { "usb12", 0, 12, 0 },
        { "1-1", 0, 1, 1 },
        { "3-1.4.2", 0, 3, 3 },
        { "12-10.3", 0, 12, 2 },
        { "1-1.1.1.1.1.1", 0, 1, 6 },
        { "1-1.1.1.1.1.1.1", 0, 1, DEVICE_MAX_PORT_DEPTH },
        { "1-1.1.1.1.1.1.1.1", -EINVAL, 0, 0 },     /* one level too deep */
        { "", -EINVAL, 0, 0 },
        { "usb", -EINVAL, 0, 0 },
        { "usb0", -EINVAL, 0, 0 },
        { "usbx", -EINVAL, 0, 0 },
        { "usb1-1", -EINVAL, 0, 0 },
        { "0-1", -EINVAL, 0, 0 },
        { "1-0", -EINVAL, 0, 0 },
        { "1-", -EINVAL, 0, 0 },
        { "-1", -EINVAL, 0, 0 },
        { "1", -EINVAL, 0, 0 },
        { "1-1.", -EINVAL, 0, 0 },
        { "1.1", -EINVAL, 0, 0 },
        { "1-1..2", -EINVAL, 0, 0 },
        { "1-1.2x", -EINVAL, 0, 0 },
        { "1-1:1.0", -EINVAL, 0, 0 },               /* an interface, not a device */
        { "a-1", -EINVAL, 0, 0 },
        { "1-1000", -EINVAL, 0, 0 },
        { "1-1 ", -EINVAL, 0, 0 },
        { "1-1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1", -EINVAL, 0, 0 },
    };

    for (size_t i = 0; i < N(cases); i++) {
        unsigned bus = 99, depth = 99;
        int r = device_port_parse(cases[i].port, &bus, &depth);

        if (r != cases[i].ret)
            print_message("port '%s': %d\n", cases[i].port, r);
        assert_int_equal(r, cases[i].ret);
        if (r < 0)
            continue;
        assert_int_equal(bus, cases[i].bus);
        assert_int_equal(depth, cases[i].depth);
    }
}

static void port_below(void **state)
{
    static const struct {
        const char *port, *hub;
        bool below;
    } cases[] = {
        { "1-1", "usb1", true },
        { "1-1.2", "usb1", true },
        { "1-1.2.3.4", "usb1", true },
        { "2-1", "usb1", false },
        { "11-1", "usb1", false },
        { "1-1", "usb11", false },
        { "11-1", "usb11", true },
        { "usb1", "usb1", false },          /* the root hub itself */
        { "1-1.2", "1-1", true },
        { "1-1.2.3", "1-1", true },
        { "1-1.2.3.4.5.6", "1-1.2", true },
        { "1-1", "1-1", false },            /* the hub itself */
        { "1-10", "1-1", false },           /* a sibling that shares a prefix */
        { "1-10.1", "1-1", false },
        { "1-1.20", "1-1.2", false },
        { "1-2.1", "1-1", false },
        { "2-1.2", "1-1", false },
        { "1-1", "1-1.2", false },          /* above, not below */
    };

    for (size_t i = 0; i < N(cases); i++) {
        bool got = device_port_below(cases[i].port, cases[i].hub);

        if (got != cases[i].below)
            print_message("'%s' below '%s'\n", cases[i].port, cases[i].hub);
        assert_int_equal(got, cases[i].below);
    }
}

/* ---- id paths (udev's ID_PATH) ---- */

static void id_path_from_devpath(void **state)
{
    static const struct {
        const char *devpath, *path;
    } cases[] = {
        /* A port of the chipset's xHCI, then nested hubs. */
        { "/devices/pci0000:00/0000:00:14.0/usb1/1-4", "pci-0000:00:14.0-usb-0:4" },
        { "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.4", "pci-0000:00:14.0-usb-0:1.4" },
        { "/devices/pci0000:00/0000:00:14.0/usb3/3-1/3-1.4/3-1.4.2",
          "pci-0000:00:14.0-usb-0:1.4.2" },
        { "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.1/1-1.1.1/1-1.1.1.1/1-1.1.1.1.1/"
          "1-1.1.1.1.1.1/1-1.1.1.1.1.1.1",
          "pci-0000:00:14.0-usb-0:1.1.1.1.1.1.1" },
        /* The bus number is left out: the path survives renumbering. */
        { "/devices/pci0000:00/0000:00:14.0/usb7/7-1/7-1.4", "pci-0000:00:14.0-usb-0:1.4" },
        { "/devices/pci0000:00/0000:00:14.0/usb12/12-10/12-10.3",
          "pci-0000:00:14.0-usb-0:10.3" },
        /* A card behind a bridge: the nearest PCI function names it. */
        { "/devices/pci0000:00/0000:00:1c.0/0000:03:00.0/usb2/2-1", "pci-0000:03:00.0-usb-0:1" },
        { "/devices/pci10000:00/10000:e0:1d.7/usb1/1-2", "pci-10000:e0:1d.7-usb-0:2" },
        /* A root hub: the controller alone. */
        { "/devices/pci0000:00/0000:00:14.0/usb1", "pci-0000:00:14.0" },
        { "/devices/pci0000:00/0000:00:1c.0/0000:03:00.0/usb4", "pci-0000:03:00.0" },
        { "/devices/pci0000:00/0000:00:14.0/usb1/1-1/", "pci-0000:00:14.0-usb-0:1" },
    };
    static const char *const none[] = {
        /* No PCI function right above the root hub. */
        "/devices/platform/dummy_hcd.0/usb1/1-1",
        "/devices/platform/soc/3f980000.usb/usb1/1-1/1-1.1",
        "/devices/pci0000:00/0000:00:15.0/dwc3.0.auto/xhci-hcd.1.auto/usb1/1-1",
        "/devices/pci0000:00/usb1/1-1",
        /* Not a USB device, or not the kernel's naming. */
        "/devices/pci0000:00/0000:00:14.0",
        "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0",
        "/devices/pci0000:00/0000:00:14.0/usb1/2-1",           /* another bus */
        "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-2.1",     /* not below its hub */
        "/devices/pci0000:00/0000:00:14.0/usb1/1-1.2",         /* a hub skipped */
        "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.1/1-1.1.1/1-1.1.1.1/1-1.1.1.1.1/"
        "1-1.1.1.1.1.1/1-1.1.1.1.1.1.1/1-1.1.1.1.1.1.1.1",      /* too deep */
        "/devices/pci0000:00/0000:00:14.8/usb1/1-1",           /* function 8 */
        "/devices/pci0000:00/0000:00:14/usb1/1-1",
        "/devices/pci0000:00/0000:00:14.0x/usb1/1-1",
        "/devices/pci0000:00/0000:00:1C.0/usb1/1-1",           /* the kernel writes lowercase */
        "",
        "/",
        "usb1",
    };
    char buf[DEVICE_ID_PATH_MAX];

    for (size_t i = 0; i < N(cases); i++) {
        int r = device_id_path(cases[i].devpath, buf, sizeof(buf));

        if (r != 0)
            print_message("devpath '%s': %d\n", cases[i].devpath, r);
        assert_int_equal(r, 0);
        assert_string_equal(buf, cases[i].path);
    }
    for (size_t i = 0; i < N(none); i++) {
        int r = device_id_path(none[i], buf, sizeof(buf));

        if (r != -EINVAL)
            print_message("devpath '%s': %d (%s)\n", none[i], r, r == 0 ? buf : "");
        assert_int_equal(r, -EINVAL);
    }
    /* A buffer one byte short. */
    assert_int_equal(device_id_path("/devices/pci0000:00/0000:00:14.0/usb1/1-1", buf,
                                    strlen("pci-0000:00:14.0-usb-0:1")), -ENOSPC);
    assert_int_equal(device_id_path("/devices/pci0000:00/0000:00:14.0/usb1/1-1", buf,
                                    strlen("pci-0000:00:14.0-usb-0:1") + 1), 0);
}

static void id_path_parse_and_below(void **state)
{
    static const struct {
        const char *path;
        int ret;
        unsigned depth;
    } forms[] = {
        { "pci-0000:00:14.0", 0, 0 },
        { "pci-0000:00:14.0-usb-0:1", 0, 1 },
        { "pci-0000:03:00.7-usb-0:1.4.2", 0, 3 },
        { "pci-10000:e0:1d.7-usb-0:999", 0, 1 },
        { "pci-0000:00:14.0-usb-0:1.1.1.1.1.1.1", 0, 7 },
        { "pci-0000:00:14.0-usb-0:1.1.1.1.1.1.1.1", -EINVAL, 0 },
        { "pci-0000:00:14.0-usb-0:", -EINVAL, 0 },
        { "pci-0000:00:14.0-usb-0:0", -EINVAL, 0 },
        { "pci-0000:00:14.0-usb-0:01", -EINVAL, 0 },
        { "pci-0000:00:14.0-usb-0:1.", -EINVAL, 0 },
        { "pci-0000:00:14.0-usb-1:1", -EINVAL, 0 },
        { "pci-0000:00:14.0-usbv3-0:1", 0, 1 },
        { "pci-0000:00:14.0-usbv2-0:1.4", 0, 2 },
        { "pci-0000:00:14.0-usbv3", 0, 0 },
        { "pci-0000:00:14.0-usbv4-0:1", -EINVAL, 0 },
        { "pci-0000:00:14.0-usbv0-0:1", -EINVAL, 0 },
        { "pci-0000:00:14.0-usbv3-", -EINVAL, 0 },
        { "pci-0000:00:14.0-usbv3-0:", -EINVAL, 0 },
        { "pci-0000:00:14.0-usbv-0:1", -EINVAL, 0 },
        { "pci-0000:00:14.0-usbv33-0:1", -EINVAL, 0 },
        { "pci-0000:00:14.0-", -EINVAL, 0 },
        { "pci-0000:00:14.0-usb-0:1:1.0", -EINVAL, 0 },
        { "pci-000:00:14.0", -EINVAL, 0 },
        { "pci-0000:00:14", -EINVAL, 0 },
        { "pci-0000:00:14.8", -EINVAL, 0 },
        { "pci-0000:00:1C.0", -EINVAL, 0 },
        { "platform-xhci-hcd.1.auto-usb-0:1", -EINVAL, 0 },
        { "usb1", -EINVAL, 0 },
        { "1-1", -EINVAL, 0 },
        { "", -EINVAL, 0 },
    };
    static const struct {
        const char *path, *hub;
        bool below;
    } below[] = {
        { "pci-0000:00:14.0-usb-0:1", "pci-0000:00:14.0", true },
        { "pci-0000:00:14.0-usb-0:1.4.2", "pci-0000:00:14.0", true },
        { "pci-0000:00:14.0-usb-0:1.4.2", "pci-0000:00:14.0-usb-0:1", true },
        { "pci-0000:00:14.0-usb-0:1.4.2", "pci-0000:00:14.0-usb-0:1.4", true },
        { "pci-0000:00:14.0", "pci-0000:00:14.0", false },     /* the root hub itself */
        { "pci-0000:00:14.0-usb-0:1", "pci-0000:00:14.0-usb-0:1", false },
        { "pci-0000:00:14.0-usb-0:10", "pci-0000:00:14.0-usb-0:1", false },
        { "pci-0000:00:14.0-usb-0:1.20", "pci-0000:00:14.0-usb-0:1.2", false },
        { "pci-0000:00:14.0-usb-0:1", "pci-0000:00:14.0-usb-0:1.2", false },
        { "pci-0000:03:00.0-usb-0:1", "pci-0000:00:14.0", false },
        { "pci-0000:03:00.0-usb-0:1.2", "pci-0000:00:14.0-usb-0:1", false },
        /* The form with the USB revision: below its own root hub only. */
        { "pci-0000:00:14.0-usbv2-0:1.2", "pci-0000:00:14.0", true },
        { "pci-0000:00:14.0-usbv2-0:1.2", "pci-0000:00:14.0-usbv2", true },
        { "pci-0000:00:14.0-usbv2-0:1.2", "pci-0000:00:14.0-usbv3", false },
        { "pci-0000:00:14.0-usbv2-0:1.2", "pci-0000:00:14.0-usbv2-0:1", true },
        { "pci-0000:00:14.0-usbv3-0:1.2", "pci-0000:00:14.0-usbv2-0:1", false },
        { "pci-0000:00:14.0-usbv3-0:1.2", "pci-0000:00:14.0-usb-0:1", false },
        { "pci-0000:00:14.0-usb-0:1.2", "pci-0000:00:14.0-usbv2", false },
        { "pci-0000:00:14.0-usb-0:1.2", "1-1", false },
        { "pci-0000:00:14.0-usb-0:1.2", "pci-0000:00:14.", false },
        { NULL, "pci-0000:00:14.0", false },                   /* no path at all */
    };

    for (size_t i = 0; i < N(forms); i++) {
        unsigned depth = 99, rev = 99;
        int r = device_id_path_parse(forms[i].path, &depth);

        assert_int_equal(device_id_path_parse_rev(forms[i].path, &depth, &rev), r);
        if (r == 0)
            assert_int_equal(rev, strstr(forms[i].path, "-usbv") ?
                                      (unsigned)(strstr(forms[i].path, "-usbv")[5] - '0') : 0);

        if (r != forms[i].ret)
            print_message("path '%s': %d\n", forms[i].path, r);
        assert_int_equal(r, forms[i].ret);
        if (r == 0)
            assert_int_equal(depth, forms[i].depth);
    }
    for (size_t i = 0; i < N(below); i++) {
        bool got = device_id_path_below(below[i].path, below[i].hub);

        if (got != below[i].below)
            print_message("'%s' below '%s'\n", below[i].path ? below[i].path : "(null)",
                          below[i].hub);
        assert_int_equal(got, below[i].below);
    }
}

/* ---- ID_USB_INTERFACES ---- */

static void interfaces_good(void **state)
{
    struct usb_device *dev = new_dev("1-1");

    assert_int_equal(device_parse_interfaces(dev, ":030101:030000:0b0000:"), 3);
    assert_int_equal(dev->n_ifaces, 3);
    assert_class(&dev->ifaces[0], 0x03, 0x01, 0x01);
    assert_class(&dev->ifaces[1], 0x03, 0x00, 0x00);
    assert_class(&dev->ifaces[2], 0x0b, 0x00, 0x00);

    /* Upper-case hex, and a property with no interface at all. */
    assert_int_equal(device_parse_interfaces(dev, ":FFAB0C:"), 1);
    assert_class(&dev->ifaces[0], 0xff, 0xab, 0x0c);
    assert_int_equal(device_parse_interfaces(dev, ":"), 0);
    assert_int_equal(dev->n_ifaces, 0);
    device_free(dev);
}

static void interfaces_malformed(void **state)
{
    static const char *const bad[] = {
        "", "030101:", ":0301:", ":03010g:", ":030101", ":030101:xx", ":030101::",
        ":0301011:", ": 30101:", "::",
    };

    for (size_t i = 0; i < N(bad); i++) {
        struct usb_device *dev = new_dev("1-1");
        int r;

        dev->n_ifaces = 1;
        r = device_parse_interfaces(dev, bad[i]);
        if (r != -EINVAL)
            print_message("'%s': %d\n", bad[i], r);
        assert_int_equal(r, -EINVAL);
        /* The count is left alone. */
        assert_int_equal(dev->n_ifaces, 1);
        device_free(dev);
    }
}

static void interfaces_more_than_max(void **state)
{
    struct usb_device *dev = new_dev("1-1");
    char prop[7 * 40 + 2] = ":";

    for (int i = 0; i < 40; i++)
        snprintf(prop + strlen(prop), sizeof(prop) - strlen(prop), "%02x0000:", i);
    assert_int_equal(device_parse_interfaces(dev, prop), DEVICE_MAX_IFACES);
    assert_int_equal(dev->n_ifaces, DEVICE_MAX_IFACES);
    for (int i = 0; i < DEVICE_MAX_IFACES; i++)
        assert_int_equal(dev->ifaces[i].cls, i);
    device_free(dev);
}

/* ---- raw descriptors ---- */

/* A YubiKey 5 (OTP+FIDO+CCID): keyboard, FIDO HID and smart card. */
static const uint8_t yubikey[] = {
    /* device: USB 2.0, class 0 (per interface), 1050:0407 */
    18, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 64, 0x50, 0x10, 0x07, 0x04, 0x43, 0x05,
    1, 2, 0, 1,
    /* configuration: 150 bytes, 3 interfaces */
    9, 0x02, 150, 0, 3, 1, 0, 0x80, 30,
    /* interface 0: HID boot keyboard, its HID descriptor and endpoint */
    9, 0x04, 0, 0, 1, 0x03, 0x01, 0x01, 0,
    9, 0x21, 0x11, 0x01, 0x00, 0x01, 0x22, 0x47, 0x00,
    7, 0x05, 0x81, 0x03, 0x08, 0x00, 10,
    /* interface 1: HID (FIDO), two endpoints */
    9, 0x04, 1, 0, 2, 0x03, 0x00, 0x00, 0,
    9, 0x21, 0x11, 0x01, 0x00, 0x01, 0x22, 0x22, 0x00,
    7, 0x05, 0x04, 0x03, 0x40, 0x00, 5,
    7, 0x05, 0x84, 0x03, 0x40, 0x00, 5,
    /* interface 2: smart card (CCID), its 54-byte class descriptor, three endpoints */
    9, 0x04, 2, 0, 3, 0x0b, 0x00, 0x00, 0,
    54, 0x21, 0x10, 0x01, 0x00, 0x07, 0x03, 0x00, 0x00, 0x00, 0xa0, 0x0f, 0x00, 0x00,
    0xa0, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xfe, 0x00, 0x04, 0x00, 0x0f, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x01,
    7, 0x05, 0x02, 0x02, 0x40, 0x00, 0,
    7, 0x05, 0x82, 0x02, 0x40, 0x00, 0,
    7, 0x05, 0x83, 0x03, 0x08, 0x00, 0xff,
};

/* A webcam: an interface association, then streaming alternate settings. */
static const uint8_t webcam[] = {
    18, 0x01, 0x00, 0x02, 0xef, 0x02, 0x01, 64, 0x6d, 0x04, 0x5e, 0x08, 0x17, 0x03,
    1, 2, 3, 1,
    9, 0x02, 87, 0, 2, 1, 0, 0x80, 250,
    /* interface association: interfaces 0-1, video */
    8, 0x0b, 0, 2, 0x0e, 0x03, 0x00, 2,
    /* interface 0: video control, a class header and an endpoint */
    9, 0x04, 0, 0, 1, 0x0e, 0x01, 0x00, 2,
    13, 0x24, 0x01, 0x00, 0x01, 0x4d, 0x00, 0x80, 0xc3, 0xc9, 0x01, 0x01, 0x01,
    7, 0x05, 0x87, 0x03, 0x10, 0x00, 8,
    /* interface 1: video streaming, alternate settings 0, 1 and 2 */
    9, 0x04, 1, 0, 0, 0x0e, 0x02, 0x00, 0,
    9, 0x04, 1, 1, 1, 0x0e, 0x02, 0x00, 0,
    7, 0x05, 0x81, 0x05, 0x00, 0x14, 1,
    9, 0x04, 1, 2, 1, 0x0e, 0x02, 0x00, 0,
    7, 0x05, 0x81, 0x05, 0x00, 0x0c, 1,
};

static void descriptors_yubikey(void **state)
{
    struct usb_device *dev = new_dev("1-1.2");

    /* The blob is self-consistent: its configuration says how long it is. */
    assert_int_equal(sizeof(yubikey), 18 + 150);
    assert_int_equal(device_parse_descriptors(dev, yubikey, sizeof(yubikey)), 3);
    assert_class(&dev->dev_class, 0, 0, 0);
    assert_int_equal(dev->n_ifaces, 3);
    assert_class(&dev->ifaces[0], 0x03, 0x01, 0x01);
    assert_class(&dev->ifaces[1], 0x03, 0x00, 0x00);
    assert_class(&dev->ifaces[2], 0x0b, 0x00, 0x00);
    assert_false(device_is_hub(dev));
    device_free(dev);
}

static void descriptors_alternate_settings_once(void **state)
{
    struct usb_device *dev = new_dev("1-4");

    assert_int_equal(sizeof(webcam), 18 + 87);
    assert_int_equal(device_parse_descriptors(dev, webcam, sizeof(webcam)), 2);
    assert_class(&dev->dev_class, 0xef, 0x02, 0x01);
    assert_int_equal(dev->n_ifaces, 2);
    assert_class(&dev->ifaces[0], 0x0e, 0x01, 0x00);
    assert_class(&dev->ifaces[1], 0x0e, 0x02, 0x00);
    device_free(dev);
}

static void descriptors_device_only(void **state)
{
    static const uint8_t hub[] = {
        18, 0x01, 0x00, 0x02, 0x09, 0x00, 0x01, 64, 0xe3, 0x05, 0x08, 0x06, 0x60, 0x00,
        0, 1, 0, 1,
    };
    struct usb_device *dev = new_dev("1-1");

    dev->n_ifaces = 5;
    assert_int_equal(device_parse_descriptors(dev, hub, sizeof(hub)), 0);
    assert_int_equal(dev->n_ifaces, 0);
    assert_class(&dev->dev_class, 0x09, 0x00, 0x01);
    assert_true(device_is_hub(dev));
    device_free(dev);
}

static void descriptors_more_than_max(void **state)
{
    uint8_t buf[18 + 9 + 40 * 9];
    struct usb_device *dev = new_dev("1-1");

    memcpy(buf, yubikey, 18 + 9);
    for (int i = 0; i < 40; i++) {
        uint8_t iface[9] = { 9, 0x04, (uint8_t)i, 0, 0, (uint8_t)(i + 1), 0, 0, 0 };

        memcpy(buf + 27 + 9 * i, iface, 9);
    }
    assert_int_equal(device_parse_descriptors(dev, buf, sizeof(buf)), DEVICE_MAX_IFACES);
    assert_int_equal(dev->n_ifaces, DEVICE_MAX_IFACES);
    assert_int_equal(dev->ifaces[DEVICE_MAX_IFACES - 1].cls, DEVICE_MAX_IFACES);
    device_free(dev);
}

/* Each row: the YubiKey blob cut at len, with one byte set to a value. */
static void descriptors_malformed(void **state)
{
    static const struct {
        const char *what;
        size_t len;
        size_t at;
        uint8_t value;
    } cases[] = {
        { "empty", 0, 0, 18 },
        { "shorter than a device descriptor", 17, 0, 18 },
        { "device descriptor too short", sizeof(yubikey), 0, 17 },
        { "not a device descriptor", sizeof(yubikey), 1, 0x02 },
        { "descriptor of length 0", sizeof(yubikey), 18 + 9, 0 },
        { "descriptor of length 1", sizeof(yubikey), 18 + 9, 1 },
        { "descriptor past the end", sizeof(yubikey), 18 + 150 - 7, 8 },
        { "configuration cut short", 18 + 9 + 5, 0, 18 },
        { "last descriptor cut short", sizeof(yubikey) - 1, 0, 18 },
    };

    for (size_t i = 0; i < N(cases); i++) {
        uint8_t buf[sizeof(yubikey)];
        struct usb_device *dev = new_dev("1-1");
        int r;

        memcpy(buf, yubikey, sizeof(buf));
        buf[cases[i].at] = cases[i].value;
        r = device_parse_descriptors(dev, buf, cases[i].len);
        device_free(dev);
        if (r != -EINVAL)
            print_message("%s: %d\n", cases[i].what, r);
        assert_int_equal(r, -EINVAL);
    }
}

/* A device descriptor whose bLength runs past the buffer is malformed too. */
static void descriptors_device_length_past_end(void **state)
{
    uint8_t buf[18];
    struct usb_device *dev = new_dev("1-1");
    int r;

    memcpy(buf, yubikey, sizeof(buf));
    buf[0] = 200;
    r = device_parse_descriptors(dev, buf, sizeof(buf));
    device_free(dev);
    assert_int_equal(r, -EINVAL);
}

/* ---- strings, copies, ids ---- */

static void set_str_bounds(void **state)
{
    struct usb_device *dev = new_dev("1-1");
    char *big = malloc(4096);

    assert_non_null(big);
    memset(big, 'S', 4095);
    big[4095] = '\0';
    big[DEVICE_STR_MAX - 1] = 'E';
    assert_int_equal(device_set_str(&dev->serial, big), 0);
    assert_int_equal(strlen(dev->serial), DEVICE_STR_MAX);
    assert_memory_equal(dev->serial, big, DEVICE_STR_MAX);
    assert_int_equal(dev->serial[DEVICE_STR_MAX - 1], 'E');

    /* Exactly the limit is kept whole. */
    memset(big, 'L', DEVICE_STR_MAX);
    big[DEVICE_STR_MAX] = '\0';
    assert_int_equal(device_set_str(&dev->product_name, big), 0);
    assert_string_equal(dev->product_name, big);
    free(big);

    /* A replacement frees the old copy (valgrind checks). */
    assert_int_equal(device_set_str(&dev->manufacturer, "Yubico"), 0);
    assert_string_equal(dev->manufacturer, "Yubico");
    assert_int_equal(device_set_str(&dev->manufacturer, "Logitech"), 0);
    assert_string_equal(dev->manufacturer, "Logitech");
    /* NULL and "" clear the field. */
    assert_int_equal(device_set_str(&dev->manufacturer, ""), 0);
    assert_null(dev->manufacturer);
    assert_int_equal(device_set_str(&dev->serial, NULL), 0);
    assert_null(dev->serial);
    device_free(dev);
}

static void dup_is_deep(void **state)
{
    struct usb_device *dev = device_new("/devices/x/usb2/2-1.3", "2-1.3"), *copy;

    assert_non_null(dev);
    dev->busnum = 2;
    dev->devnum = 17;
    dev->vendor = 0x1050;
    dev->product = 0x0407;
    assert_int_equal(device_set_str(&dev->serial, "0012345"), 0);
    assert_int_equal(device_set_str(&dev->manufacturer, "Yubico"), 0);
    assert_int_equal(device_set_str(&dev->id_path, "pci-0000:00:14.0-usb-0:1.3"), 0);
    assert_int_equal(device_set_str(&dev->id_path_rev, "pci-0000:00:14.0-usbv3-0:1.3"), 0);
    assert_int_equal(device_set_str(&dev->peer_path, "pci-0000:00:14.0-usbv2-0:4.3"), 0);
    assert_int_equal(device_parse_descriptors(dev, yubikey, sizeof(yubikey)), 3);

    copy = device_dup(dev);
    assert_non_null(copy);
    assert_string_equal(copy->devpath, "/devices/x/usb2/2-1.3");
    assert_string_equal(copy->port, "2-1.3");
    assert_int_equal(copy->busnum, 2);
    assert_int_equal(copy->devnum, 17);
    assert_int_equal(copy->vendor, 0x1050);
    assert_int_equal(copy->product, 0x0407);
    assert_string_equal(copy->serial, "0012345");
    assert_string_equal(copy->manufacturer, "Yubico");
    assert_null(copy->product_name);
    assert_string_equal(copy->id_path, "pci-0000:00:14.0-usb-0:1.3");
    assert_ptr_not_equal(copy->id_path, dev->id_path);
    assert_string_equal(copy->id_path_rev, "pci-0000:00:14.0-usbv3-0:1.3");
    assert_ptr_not_equal(copy->id_path_rev, dev->id_path_rev);
    assert_string_equal(copy->peer_path, "pci-0000:00:14.0-usbv2-0:4.3");
    assert_ptr_not_equal(copy->peer_path, dev->peer_path);
    assert_int_equal(copy->n_ifaces, 3);
    assert_memory_equal(copy->ifaces, dev->ifaces, sizeof(dev->ifaces));
    assert_memory_equal(&copy->dev_class, &dev->dev_class, sizeof(dev->dev_class));
    /* Nothing shared: changing or freeing the original leaves the copy. */
    assert_ptr_not_equal(copy->devpath, dev->devpath);
    assert_ptr_not_equal(copy->port, dev->port);
    assert_ptr_not_equal(copy->serial, dev->serial);
    assert_ptr_not_equal(copy->manufacturer, dev->manufacturer);
    dev->serial[0] = 'X';
    dev->ifaces[0].cls = 0x42;
    device_free(dev);
    assert_string_equal(copy->serial, "0012345");
    assert_int_equal(copy->ifaces[0].cls, 0x03);
    device_free(copy);
}

static void id_string_and_new(void **state)
{
    struct usb_device *dev = new_dev("4-1");
    char buf[10];

    assert_string_equal(dev->port, "4-1");
    assert_string_equal(dev->devpath, "/devices/pci0000:00/usb1/1-1");
    assert_null(dev->serial);
    assert_int_equal(dev->n_ifaces, 0);
    dev->vendor = 0x1050;
    dev->product = 0x0407;
    assert_string_equal(device_id_string(dev, buf), "1050:0407");
    dev->vendor = 0xABCD;
    dev->product = 0x00ef;
    assert_ptr_equal(device_id_string(dev, buf), buf);
    assert_string_equal(buf, "abcd:00ef");
    device_free(dev);
    device_free(NULL);
}

/* The path with the revision, computed as udev's path_id does. */
static void id_path_with_revision(void **state)
{
    char buf[DEVICE_ID_PATH_MAX + 8];

    /* A root hub's bDeviceProtocol, and for 0 its speed (EHCI 480, OHCI 12). */
    assert_int_equal(device_root_hub_revision(1, "480"), 2);
    assert_int_equal(device_root_hub_revision(3, "5000"), 3);
    assert_int_equal(device_root_hub_revision(3, "10000"), 3);
    assert_int_equal(device_root_hub_revision(0, "480"), 2);
    assert_int_equal(device_root_hub_revision(0, "12"), 1);
    assert_int_equal(device_root_hub_revision(0, NULL), 1);
    assert_int_equal(device_root_hub_revision(2, NULL), 2);
    assert_int_equal(device_root_hub_revision(4, "480"), 0);

    assert_int_equal(device_id_path_with_revision("pci-0000:00:14.0-usb-0:1.4", 3, buf,
                                                  sizeof(buf)), 0);
    assert_string_equal(buf, "pci-0000:00:14.0-usbv3-0:1.4");
    assert_int_equal(device_id_path_with_revision("pci-0000:05:00.3-usb-0:1", 2, buf,
                                                  sizeof(buf)), 0);
    assert_string_equal(buf, "pci-0000:05:00.3-usbv2-0:1");
    /* A controller (a root hub's own path), a path that has one, a bad revision. */
    assert_int_equal(device_id_path_with_revision("pci-0000:00:14.0", 3, buf, sizeof(buf)),
                     -EINVAL);
    assert_int_equal(device_id_path_with_revision("pci-0000:00:14.0-usbv3-0:1", 3, buf,
                                                  sizeof(buf)), -EINVAL);
    assert_int_equal(device_id_path_with_revision("pci-0000:00:14.0-usb-0:1", 0, buf,
                                                  sizeof(buf)), -EINVAL);
    assert_int_equal(device_id_path_with_revision("pci-0000:00:14.0-usb-0:1", 3, buf, 10),
                     -ENOSPC);
    /* The root hub in a devpath. */
    assert_int_equal(device_devpath_root_hub("/devices/pci0000:00/0000:00:14.0/usb2/2-1"),
                     strlen("/devices/pci0000:00/0000:00:14.0/usb2"));
    assert_int_equal(device_devpath_root_hub("/devices/pci0000:00/0000:00:14.0/usb12"),
                     strlen("/devices/pci0000:00/0000:00:14.0/usb12"));
    assert_int_equal(device_devpath_root_hub("/devices/platform/usbphy/x"), 0);
}

/* The port path of a port device, as its peer link names it. */
static void port_of_port_device(void **state)
{
    static const struct {
        const char *name, *port;
        int ret;
    } cases[] = {
        { "usb2-port3", "2-3", 0 },
        { "usb12-port15", "12-15", 0 },
        { "2-2-port3", "2-2.3", 0 },
        { "1-1.4-port2", "1-1.4.2", 0 },
        { "1-1.1.1.1.1.1-port1", "1-1.1.1.1.1.1.1", 0 },
        { "1-1.1.1.1.1.1.1-port1", NULL, -EINVAL },     /* one level too deep */
        { "usb2-port0", NULL, -EINVAL },
        { "usb2-port", NULL, -EINVAL },
        { "usb2-port3x", NULL, -EINVAL },
        { "usb0-port1", NULL, -EINVAL },
        { "port3", NULL, -EINVAL },
        { "2-0:1.0", NULL, -EINVAL },
        { "", NULL, -EINVAL },
    };
    char buf[64];

    for (size_t i = 0; i < N(cases); i++) {
        int r = device_port_of_port_device(cases[i].name, buf, sizeof(buf));

        if (r != cases[i].ret)
            print_message("'%s': %d\n", cases[i].name, r);
        assert_int_equal(r, cases[i].ret);
        if (r == 0)
            assert_string_equal(buf, cases[i].port);
    }
    assert_int_equal(device_port_of_port_device("usb2-port3", buf, 3), -ENOSPC);
}

/* udev's ID_SERIAL_SHORT stands for the serial only when it holds no '_'. */
static void serial_short_usable(void **state)
{
    assert_true(device_serial_short_usable("0012345"));
    assert_true(device_serial_short_usable("C767F1C714174C309255F70E4A7B2EE2"));
    assert_true(device_serial_short_usable("0000:00:14.0"));
    /* "{BE81...}" rewritten, and a '_' that may be the device's own: read sysfs. */
    assert_false(device_serial_short_usable("_BE815DAD-5F2A_"));
    assert_false(device_serial_short_usable("AB_12"));
    assert_false(device_serial_short_usable(""));
    assert_false(device_serial_short_usable(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(port_parse),
        cmocka_unit_test(port_below),
        cmocka_unit_test(id_path_from_devpath),
        cmocka_unit_test(id_path_parse_and_below),
        cmocka_unit_test(interfaces_good),
        cmocka_unit_test(interfaces_malformed),
        cmocka_unit_test(interfaces_more_than_max),
        cmocka_unit_test(descriptors_yubikey),
        cmocka_unit_test(descriptors_alternate_settings_once),
        cmocka_unit_test(descriptors_device_only),
        cmocka_unit_test(descriptors_more_than_max),
        cmocka_unit_test(descriptors_malformed),
        cmocka_unit_test(descriptors_device_length_past_end),
        cmocka_unit_test(set_str_bounds),
        cmocka_unit_test(dup_is_deep),
        cmocka_unit_test(id_string_and_new),
        cmocka_unit_test(serial_short_usable),
        cmocka_unit_test(id_path_with_revision),
        cmocka_unit_test(port_of_port_device),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

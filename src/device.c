/*
 * The identity of a plugged USB device and the parsing of what the kernel
 * and udev say about it: port paths, interface lists and raw descriptors.
 * Everything here is pure, so it is unit tested without udev.
 */
#include "config.h"

#include "device.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct usb_device *device_new(const char *devpath, const char *port)
{
    struct usb_device *dev = calloc(1, sizeof(*dev));

    if (!dev)
        return NULL;
    dev->devpath = strdup(devpath);
    dev->port = strdup(port);
    if (!dev->devpath || !dev->port) {
        device_free(dev);
        return NULL;
    }
    return dev;
}

void device_free(struct usb_device *dev)
{
    if (!dev)
        return;
    free(dev->devpath);
    free(dev->port);
    free(dev->serial);
    free(dev->manufacturer);
    free(dev->product_name);
    free(dev);
}

struct usb_device *device_dup(const struct usb_device *dev)
{
    struct usb_device *copy = device_new(dev->devpath, dev->port);

    if (!copy)
        return NULL;
    copy->busnum = dev->busnum;
    copy->devnum = dev->devnum;
    copy->vendor = dev->vendor;
    copy->product = dev->product;
    copy->dev_class = dev->dev_class;
    copy->n_ifaces = dev->n_ifaces;
    memcpy(copy->ifaces, dev->ifaces, sizeof(dev->ifaces));
    if (device_set_str(&copy->serial, dev->serial) < 0 ||
        device_set_str(&copy->manufacturer, dev->manufacturer) < 0 ||
        device_set_str(&copy->product_name, dev->product_name) < 0) {
        device_free(copy);
        return NULL;
    }
    return copy;
}

int device_set_str(char **field, const char *value)
{
    char *copy = NULL;

    if (value && *value) {
        copy = strndup(value, DEVICE_STR_MAX);
        if (!copy)
            return -ENOMEM;
    }
    free(*field);
    *field = copy;
    return 0;
}

bool device_is_hub(const struct usb_device *dev)
{
    return dev->dev_class.cls == USB_CLASS_HUB;
}

/*
 * Parses a decimal number of at most 3 digits without a leading zero (the
 * kernel writes none, so "001" could never match); returns the end or NULL.
 */
static const char *parse_small(const char *s, unsigned *out)
{
    unsigned v = 0;
    int n = 0;

    if (s[0] == '0')
        return NULL;
    while (*s >= '0' && *s <= '9' && n < 4) {
        v = v * 10 + (unsigned)(*s - '0');
        s++;
        n++;
    }
    if (n == 0 || n > 3)
        return NULL;
    *out = v;
    return s;
}

int device_port_parse(const char *port, unsigned *bus, unsigned *depth)
{
    const char *p;
    unsigned b, d = 0, v;

    if (strncmp(port, "usb", 3) == 0) {
        p = parse_small(port + 3, &b);
        if (!p || *p || b == 0)
            return -EINVAL;
        *bus = b;
        *depth = 0;
        return 0;
    }
    p = parse_small(port, &b);
    if (!p || *p != '-' || b == 0)
        return -EINVAL;
    do {
        p = parse_small(p + 1, &v);
        if (!p || v == 0 || ++d > DEVICE_MAX_PORT_DEPTH)
            return -EINVAL;
    } while (*p == '.');
    if (*p)
        return -EINVAL;
    *bus = b;
    *depth = d;
    return 0;
}

bool device_port_below(const char *port, const char *hub)
{
    unsigned bus, depth;
    size_t n;

    /* What the index cannot parse, the scan must not match either. */
    if (device_port_parse(port, &bus, &depth) < 0)
        return false;

    if (strncmp(hub, "usb", 3) == 0) {
        /* Every device on that bus: "usb3" covers "3-...". */
        const char *num = hub + 3;

        n = strlen(num);
        return n > 0 && strncmp(port, num, n) == 0 && port[n] == '-';
    }
    n = strlen(hub);
    return strncmp(port, hub, n) == 0 && port[n] == '.';
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int device_parse_interfaces(struct usb_device *dev, const char *prop)
{
    const char *p = prop;
    unsigned n = 0;

    if (*p != ':')
        return -EINVAL;
    p++;
    while (*p) {
        uint8_t b[3];

        for (int i = 0; i < 3; i++) {
            int hi = hex_nibble(p[0]), lo = hi < 0 ? -1 : hex_nibble(p[1]);

            if (hi < 0 || lo < 0)
                return -EINVAL;
            b[i] = (uint8_t)(hi << 4 | lo);
            p += 2;
        }
        if (*p != ':')
            return -EINVAL;
        p++;
        if (n < DEVICE_MAX_IFACES) {
            dev->ifaces[n].cls = b[0];
            dev->ifaces[n].subclass = b[1];
            dev->ifaces[n].protocol = b[2];
            n++;
        }
    }
    dev->n_ifaces = n;
    return (int)n;
}

int device_parse_descriptors(struct usb_device *dev, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    unsigned n = 0;

    /* The device descriptor: 18 bytes, type 1. */
    if (len < 18 || buf[0] < 18 || buf[0] > len || buf[1] != 0x01)
        return -EINVAL;
    dev->dev_class.cls = buf[4];
    dev->dev_class.subclass = buf[5];
    dev->dev_class.protocol = buf[6];
    off = buf[0];
    /* Then every descriptor of the configurations: interfaces are type 4. */
    while (off + 2 <= len) {
        uint8_t dlen = buf[off], type = buf[off + 1];

        if (dlen < 2 || off + dlen > len)
            return -EINVAL;
        /* Alternate settings (bAlternateSetting != 0) repeat an interface. */
        if (type == 0x04 && dlen >= 9 && buf[off + 3] == 0 && n < DEVICE_MAX_IFACES) {
            dev->ifaces[n].cls = buf[off + 5];
            dev->ifaces[n].subclass = buf[off + 6];
            dev->ifaces[n].protocol = buf[off + 7];
            n++;
        }
        off += dlen;
    }
    dev->n_ifaces = n;
    return (int)n;
}

char *device_id_string(const struct usb_device *dev, char *buf)
{
    snprintf(buf, 10, "%04x:%04x", dev->vendor, dev->product);
    return buf;
}

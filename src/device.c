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
    free(dev->id_path);
    free(dev->id_path_rev);
    free(dev->peer_path);
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
    copy->connect_type = dev->connect_type;
    copy->n_ifaces = dev->n_ifaces;
    copy->speed = dev->speed;
    memcpy(copy->ifaces, dev->ifaces, sizeof(dev->ifaces));
    if (device_set_str(&copy->id_path, dev->id_path) < 0 ||
        device_set_str(&copy->id_path_rev, dev->id_path_rev) < 0 ||
        device_set_str(&copy->peer_path, dev->peer_path) < 0 ||
        device_set_str(&copy->serial, dev->serial) < 0 ||
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

bool device_is_keyboard(const struct usb_device *dev)
{
    for (unsigned i = 0; i < dev->n_ifaces; i++)
        if (dev->ifaces[i].cls == USB_CLASS_HID && dev->ifaces[i].subclass == 1 &&
            dev->ifaces[i].protocol == 1)
            return true;
    return false;
}

size_t device_devpath_root_hub(const char *devpath)
{
    /* A root hub's directory, "usbN", is a component of every USB devpath. */
    for (const char *p = devpath; (p = strstr(p, "/usb")) != NULL; p++) {
        size_t digits = strspn(p + 4, "0123456789");

        if (digits > 0 && (p[4 + digits] == '/' || p[4 + digits] == '\0'))
            return (size_t)(p - devpath) + 4 + digits;
    }
    return 0;
}

bool device_devpath_on_usb(const char *devpath)
{
    return device_devpath_root_hub(devpath) != 0;
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

/*
 * Parses the ports after a separator ('-' or ':' at p): "N[.N...]", each
 * from 1, at most DEVICE_MAX_PORT_DEPTH.  Returns the end, or NULL.
 */
static const char *parse_port_list(const char *p, unsigned *depth)
{
    unsigned v, d = 0;

    do {
        p = parse_small(p + 1, &v);
        if (!p || v == 0 || ++d > DEVICE_MAX_PORT_DEPTH)
            return NULL;
    } while (*p == '.');
    *depth = d;
    return p;
}

int device_port_parse(const char *port, unsigned *bus, unsigned *depth)
{
    const char *p;
    unsigned b, d = 0;

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
    p = parse_port_list(p, &d);
    if (!p || *p)
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

/* True for a PCI function's name as the kernel writes it: "0000:00:14.0". */
static bool is_pci_function(const char *s, size_t n)
{
    size_t dom = 0;

    /* The domain has 4 hex digits, more on hosts with many (VMD: 10000). */
    while (dom < n && ((s[dom] >= '0' && s[dom] <= '9') || (s[dom] >= 'a' && s[dom] <= 'f')))
        dom++;
    if (dom < 4 || dom > 8 || n != dom + 8)
        return false;
    for (size_t i = dom; i < n; i++) {
        char c = s[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');

        switch (i - dom) {
        case 0:
        case 3:
            if (c != ':')
                return false;
            break;
        case 6:
            if (c != '.')
                return false;
            break;
        case 7:
            if (c < '0' || c > '7')
                return false;
            break;
        default:
            if (!hex)
                return false;
        }
    }
    return true;
}

int device_id_path(const char *devpath, char *buf, size_t len)
{
    const char *root = NULL, *pci = NULL, *prev = NULL, *el = devpath, *last = NULL;
    size_t pci_len = 0, prev_len = 0, last_len = 0;
    unsigned root_bus = 0, bus, depth;
    char name[DEVICE_STR_MAX + 1];
    int n;

    /*
     * udev's path_id walks up from the device: every USB device is one
     * "usb-0:PORT" (the sysname after the bus number), the USB ancestors are
     * skipped, and the nearest PCI device names the controller.  Only a root
     * hub whose parent is a PCI function is followed: any other parent
     * (a platform glue device, say) gives udev a path we cannot rebuild.
     */
    while (*el) {
        const char *end = strchr(el, '/');
        size_t elen = end ? (size_t)(end - el) : strlen(el);

        if (elen > 0) {
            if (elen > DEVICE_STR_MAX)
                return -EINVAL;
            memcpy(name, el, elen);
            name[elen] = '\0';
            if (root) {
                /* Below the root hub: hubs and the device, all on its bus. */
                if (device_port_parse(name, &bus, &depth) < 0 || depth == 0 || bus != root_bus)
                    return -EINVAL;
                /* A hub's child extends the hub's port path: 1-1 -> 1-1.4. */
                if (last && (elen <= last_len || memcmp(el, last, last_len) != 0 ||
                             el[last_len] != '.'))
                    return -EINVAL;
                if (!last && depth != 1)
                    return -EINVAL;
                last = el;
                last_len = elen;
            } else if (device_port_parse(name, &bus, &depth) == 0 && depth == 0) {
                if (!prev || !is_pci_function(prev, prev_len))
                    return -EINVAL;
                root = el;
                root_bus = bus;
                pci = prev;
                pci_len = prev_len;
            }
            prev = el;
            prev_len = elen;
        }
        if (!end)
            break;
        el = end + 1;
    }
    if (!root)
        return -EINVAL;
    if (!last) {
        n = snprintf(buf, len, "pci-%.*s", (int)pci_len, pci);
    } else {
        /* The port path without its bus number: "1-1.4" -> "1.4". */
        const char *port = (const char *)memchr(last, '-', last_len) + 1;

        n = snprintf(buf, len, "pci-%.*s-usb-0:%.*s", (int)pci_len, pci,
                     (int)(last_len - (size_t)(port - last)), port);
    }
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    return 0;
}

int device_id_path_parse_rev(const char *path, unsigned *depth, unsigned *rev)
{
    const char *p, *dash;
    unsigned d = 0, r = 0;

    if (strncmp(path, "pci-", 4) != 0)
        return -EINVAL;
    p = path + 4;
    dash = strchr(p, '-');
    if (!is_pci_function(p, dash ? (size_t)(dash - p) : strlen(p)))
        return -EINVAL;
    if (dash) {
        p = dash;
        /* "-usbvN" names one root hub of the controller; ports may follow. */
        if (strncmp(p, "-usbv", 5) == 0 && p[5] >= '1' && p[5] <= '3') {
            r = (unsigned)(p[5] - '0');
            p += 6;
            if (*p == '\0')
                goto done;
        } else if (strncmp(p, "-usb", 4) == 0) {
            p += 4;
        } else {
            return -EINVAL;
        }
        if (strncmp(p, "-0:", 3) != 0)
            return -EINVAL;
        p = parse_port_list(p + 2, &d);
        if (!p || *p)
            return -EINVAL;
    }
done:
    *depth = d;
    *rev = r;
    return 0;
}

int device_id_path_parse(const char *path, unsigned *depth)
{
    unsigned rev;

    return device_id_path_parse_rev(path, depth, &rev);
}

bool device_id_path_below(const char *id_path, const char *hub)
{
    unsigned depth, hub_depth, rev, hub_rev;
    size_t n = strlen(hub);

    /* What the index cannot take apart, the scan must not match either. */
    if (!id_path || device_id_path_parse_rev(id_path, &depth, &rev) < 0 ||
        device_id_path_parse_rev(hub, &hub_depth, &hub_rev) < 0 || depth <= hub_depth ||
        strncmp(id_path, hub, n) != 0)
        return false;
    /* Below a controller or root hub: "-..." follows; below a hub: ".N" does. */
    return id_path[n] == (hub_depth == 0 ? '-' : '.');
}

unsigned device_root_hub_revision(unsigned protocol, const char *speed)
{
    /* As udev's path_id: the hub protocol, and for 0 the speed (EHCI or OHCI). */
    switch (protocol) {
    case 0:
        return speed && strcmp(speed, "480") == 0 ? 2 : 1;
    case 1:
    case 2:
        return 2;
    case 3:
        return 3;
    }
    return 0;
}

int device_id_path_with_revision(const char *id_path, unsigned rev, char *buf, size_t len)
{
    unsigned depth, old_rev;
    const char *usb;
    int n;

    if (rev < 1 || rev > 3 || device_id_path_parse_rev(id_path, &depth, &old_rev) < 0 ||
        old_rev != 0 || depth == 0)
        return -EINVAL;
    usb = strstr(id_path, "-usb-0:");
    n = snprintf(buf, len, "%.*s-usbv%u%s", (int)(usb - id_path), id_path, rev, usb + 4);
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    return 0;
}

enum device_connect device_connect_parse(const char *value)
{
    if (value && strcmp(value, "hotplug") == 0)
        return DEVICE_CONNECT_HOTPLUG;
    if (value && strcmp(value, "hardwired") == 0)
        return DEVICE_CONNECT_HARDWIRED;
    return DEVICE_CONNECT_UNKNOWN;
}

const char *device_connect_name(enum device_connect type)
{
    switch (type) {
    case DEVICE_CONNECT_HOTPLUG:
        return "hotplug";
    case DEVICE_CONNECT_HARDWIRED:
        return "hardwired";
    case DEVICE_CONNECT_UNKNOWN:
        break;
    }
    return "unknown";
}

int device_port_of_port_device(const char *name, char *buf, size_t len)
{
    const char *sep = strstr(name, "-port");
    char hub[DEVICE_STR_MAX + 1];
    unsigned bus, depth, port;
    const char *end;
    int n;

    if (!sep || (size_t)(sep - name) > DEVICE_STR_MAX)
        return -EINVAL;
    end = parse_small(sep + 5, &port);
    if (!end || *end || port == 0)
        return -EINVAL;
    memcpy(hub, name, (size_t)(sep - name));
    hub[sep - name] = '\0';
    if (device_port_parse(hub, &bus, &depth) < 0 || depth + 1 > DEVICE_MAX_PORT_DEPTH)
        return -EINVAL;
    if (depth == 0)
        n = snprintf(buf, len, "%u-%u", bus, port);
    else
        n = snprintf(buf, len, "%s.%u", hub, port);
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    return 0;
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

bool device_serial_short_usable(const char *id_serial_short)
{
    /*
     * udev's usb_id trims the ends and turns every byte outside
     * [A-Za-z0-9#+-.:=@_] into '_': "{BE81...}" becomes "_BE81..._".  A '_'
     * may be the device's own, so only its absence proves the value raw.
     */
    return id_serial_short && *id_serial_short && !strchr(id_serial_short, '_');
}

char *device_hex4(char *buf, unsigned v)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 3; i >= 0; i--, v >>= 4)
        buf[i] = digits[v & 0xf];
    buf[4] = '\0';
    return buf;
}

char *device_id_string(const struct usb_device *dev, char *buf)
{
    /* Not snprintf: it cost ~1,000 instructions per event (callgrind). */
    device_hex4(buf, dev->vendor);
    buf[4] = ':';
    device_hex4(buf + 5, dev->product);
    return buf;
}

/*
 * libudev -> struct usb_device -> router.
 *
 * A hot add is decided from the uevent's properties (BUSNUM, DEVNUM, ID_PATH,
 * ID_VENDOR_ID, ID_MODEL_ID, ID_SERIAL_SHORT when it holds no '_' that
 * could be udev's rewrite, ID_USB_INTERFACES, TYPE):
 * reading a sysfs attribute costs more than the rest of the decision, so
 * sysfs is read only for what the properties lack.  The interface children
 * do not exist yet at a hot add; the interface classes come from
 * ID_USB_INTERFACES or the raw descriptors.  A remove is handed on by
 * DEVPATH alone: sysfs is gone by then and the router has the record.
 *
 * It also follows the keyboards that are not on USB (input devices with
 * ID_INPUT_KEYBOARD, a laptop's or a PS/2 one), for the router's lock-out
 * guard: those always stay in dom0.
 */
#include "config.h"

#include "udev-source.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <libudev.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "log.h"
#include "strmap.h"

/*
 * What the daemon reads once per root hub and keeps while the hub is there:
 * the USB revision udev's path_id gives the devices below it.  A hot add
 * then costs no sysfs read for it.
 */
struct root_hub {
    struct root_hub *next;
    char *devpath;          /* "/devices/.../usb2" */
    unsigned rev;           /* 1, 2, 3; 0 when its attributes say nothing known */
};

/*
 * A hub's port, read the first time a device is seen in it and kept while
 * the hub is there: its peer, the other half of the same connector (a USB 3
 * socket is a USB 2 port and a USB 3 port, linked by the kernel), and its
 * connect type (a socket, or an internal device's wiring).
 */
struct hub_port {
    struct hub_port *next;
    char *key;              /* the devpath of a device in the port: its key in port_map */
    char *hub;              /* the hub's devpath */
    unsigned port;          /* 1-based */
    char *peer;             /* the peer's port path, "2-2.3"; NULL: none */
    enum device_connect connect_type;
};

struct udev_source {
    struct ev_loop *loop;
    struct router *router;
    struct udev *udev;
    struct udev_monitor *monitor;
    ev_io io;
    struct root_hub *root_hubs;
    struct hub_port *ports;
    /*
     * The ports by the devpath of a device in them: a walk of the list per
     * event was 5% of the daemon's time (perf), a cache miss per port.
     */
    struct strmap *port_map;
};

static int parse_uint(const char *s, int base, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;

    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    v = strtoul(s, &end, base);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* TYPE's "class/subclass/protocol", each decimal below 256 (not sscanf: 1% of the time). */
static int parse_type(const char *s, unsigned *cls, unsigned *sub, unsigned *proto)
{
    unsigned *out[] = { cls, sub, proto };

    for (int i = 0; i < 3; i++) {
        unsigned v = 0;
        int digits = 0;

        for (; *s >= '0' && *s <= '9' && digits < 4; s++, digits++)
            v = v * 10 + (unsigned)(*s - '0');
        if (digits == 0 || v > 255 || *s != (i < 2 ? '/' : '\0'))
            return -EINVAL;
        *out[i] = v;
        s++;
    }
    return 0;
}

/* A property, or else a sysfs attribute (which costs a read). */
static const char *prop_or_attr(struct udev_device *ud, const char *prop, const char *attr)
{
    const char *v = prop ? udev_device_get_property_value(ud, prop) : NULL;

    if (v && *v)
        return v;
    return attr ? udev_device_get_sysattr_value(ud, attr) : NULL;
}

/* Decodes udev's ID_*_ENC escaping (\x20) into buf. */
static const char *decode_enc(const char *s, char *buf, size_t len)
{
    size_t o = 0;

    for (; *s && o + 1 < len; s++) {
        unsigned v;
        char hex[3];

        if (s[0] == '\\' && s[1] == 'x' && s[2] && s[3]) {
            hex[0] = s[2];
            hex[1] = s[3];
            hex[2] = '\0';
            if (parse_uint(hex, 16, 255, &v) == 0 && v != 0) {
                buf[o++] = (char)v;
                s += 3;
                continue;
            }
        }
        buf[o++] = *s;
    }
    buf[o] = '\0';
    return buf;
}

/*
 * A device string from udev's encoded property.  udev puts the hex id there
 * when the device has no string (usb_id's fallback): that is no name.  When
 * udev has looked at the device (by_udev), what it lacks the device lacks:
 * sysfs is read only for an event udev did not fill in.
 */
static int set_string(struct udev_device *ud, char **field, const char *enc_prop,
                      const char *attr, unsigned id, bool by_udev)
{
    const char *enc = udev_device_get_property_value(ud, enc_prop);
    char buf[DEVICE_STR_MAX + 1], hex[8];

    device_hex4(hex, id);
    if (enc && *enc && strcmp(enc, hex) != 0)
        return device_set_str(field, decode_enc(enc, buf, sizeof(buf)));
    if (by_udev)
        return device_set_str(field, NULL);
    return device_set_str(field, udev_device_get_sysattr_value(ud, attr));
}

/*
 * The serial the device reports (the `serial` attribute), not udev's
 * rewrite of it: a rule copied from lsusb or sysfs must match.  udev's
 * ID_SERIAL_SHORT saves the read when it cannot be a rewrite; when udev has
 * looked at the device and set none, the device has no serial.
 */
static const char *serial_of(struct udev_device *ud, bool by_udev)
{
    const char *s = udev_device_get_property_value(ud, "ID_SERIAL_SHORT");

    if (device_serial_short_usable(s))
        return s;
    if (by_udev && (!s || !*s))
        return NULL;
    return udev_device_get_sysattr_value(ud, "serial");
}

/* Reads the binary descriptors file (libudev's attribute API stops at a NUL). */
static int read_descriptors(struct udev_device *ud, struct usb_device *dev)
{
    char path[512];
    uint8_t buf[4096];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/descriptors", udev_device_get_syspath(ud));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0)
        return -errno;
    return device_parse_descriptors(dev, buf, (size_t)n);
}

/*
 * Reads the sysfs attribute name of the device at syspath (its first line,
 * without the newline) into buf.  0 or -errno.
 */
static int read_attr(const char *syspath, size_t syspath_len, const char *name, char *buf,
                     size_t len)
{
    char path[512];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%.*s/%s", (int)syspath_len, syspath, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/*
 * The root hub above the device at syspath, from the cache or read once (its
 * bDeviceProtocol and speed); NULL when there is none or on ENOMEM.
 */
static struct root_hub *root_hub_of(struct udev_source *src, const char *syspath,
                                    const char *devpath)
{
    size_t len = device_devpath_root_hub(devpath), slen = device_devpath_root_hub(syspath);
    struct root_hub *h;
    char proto[16], speed[16];
    unsigned p;

    if (len == 0 || slen == 0)
        return NULL;
    for (h = src->root_hubs; h; h = h->next)
        if (strncmp(h->devpath, devpath, len) == 0 && h->devpath[len] == '\0')
            return h;
    h = calloc(1, sizeof(*h));
    if (!h || !(h->devpath = strndup(devpath, len))) {
        free(h);
        log_error("out of memory");
        return NULL;
    }
    if (read_attr(syspath, slen, "bDeviceProtocol", proto, sizeof(proto)) == 0 &&
        parse_uint(proto, 16, 255, &p) == 0) {
        if (read_attr(syspath, slen, "speed", speed, sizeof(speed)) < 0)
            speed[0] = '\0';
        h->rev = device_root_hub_revision(p, speed);
    }
    if (!h->rev)
        log_debug("%s: the root hub's USB revision is unknown", h->devpath);
    h->next = src->root_hubs;
    src->root_hubs = h;
    return h;
}

/* Forgets what was read of a hub that is gone (the next one may differ). */
static void forget_hub(struct udev_source *src, const char *devpath)
{
    for (struct root_hub **p = &src->root_hubs; *p; p = &(*p)->next)
        if (strcmp((*p)->devpath, devpath) == 0) {
            struct root_hub *h = *p;

            *p = h->next;
            free(h->devpath);
            free(h);
            break;
        }
    for (struct hub_port **p = &src->ports; *p;) {
        struct hub_port *hp = *p;

        if (strcmp(hp->hub, devpath) == 0) {
            *p = hp->next;
            strmap_remove(src->port_map, hp->key);
            free(hp->key);
            free(hp->hub);
            free(hp->peer);
            free(hp);
        } else {
            p = &hp->next;
        }
    }
}

/*
 * The port the device at devpath is plugged into, from the cache or read
 * once: <hub>/<hub's interface>/<hub>-portN, whose `peer` link names the
 * other half of the connector.  NULL for a root hub or on ENOMEM.
 */
static struct hub_port *port_of(struct udev_source *src, const char *devpath,
                                const char *sysname)
{
    const char *slash = strrchr(devpath, '/'), *hub_name, *num;
    char path[PATH_MAX], target[PATH_MAX];
    struct hub_port *hp;
    unsigned bus, depth, port;
    size_t hub_len;
    ssize_t n;

    if (!slash || device_port_parse(sysname, &bus, &depth) < 0 || depth == 0)
        return NULL;
    hub_len = (size_t)(slash - devpath);
    num = sysname + strcspn(sysname, "-");
    while (strpbrk(num + 1, "-."))
        num = strpbrk(num + 1, "-.");
    if (parse_uint(num + 1, 10, 999, &port) < 0)
        return NULL;
    hp = strmap_get(src->port_map, devpath);
    if (hp)
        return hp;
    hp = calloc(1, sizeof(*hp));
    if (!hp || !(hp->hub = strndup(devpath, hub_len)) || !(hp->key = strdup(devpath)) ||
        strmap_put(src->port_map, devpath, hp, NULL) < 0) {
        if (hp) {
            free(hp->hub);
            free(hp->key);
        }
        free(hp);
        log_error("out of memory");
        return NULL;
    }
    hp->port = port;
    hub_name = strrchr(hp->hub, '/') + 1;
    if (strncmp(hub_name, "usb", 3) == 0)
        n = snprintf(path, sizeof(path), "/sys%s/%s-0:1.0/%s-port%u", hp->hub, hub_name + 3,
                     hub_name, port);
    else
        n = snprintf(path, sizeof(path), "/sys%s/%s:1.0/%s-port%u", hp->hub, hub_name,
                     hub_name, port);
    if (n > 0 && (size_t)n < sizeof(path) &&
        read_attr(path, (size_t)n, "connect_type", target, sizeof(target)) == 0)
        hp->connect_type = device_connect_parse(target);
    if (n > 0 && (size_t)n + 6 < sizeof(path))
        memcpy(path + n, "/peer", 6);
    n = readlink(path, target, sizeof(target) - 1);
    if (n > 0) {
        char peer[DEVICE_STR_MAX + 1];

        target[n] = '\0';
        if (device_port_of_port_device(strrchr(target, '/') ? strrchr(target, '/') + 1 : target,
                                       peer, sizeof(peer)) == 0)
            hp->peer = strdup(peer);
    }
    hp->next = src->ports;
    src->ports = hp;
    return hp;
}

/*
 * The path with revision of the port's peer: the same controller, the root
 * hub of the peer's bus (a sibling of the device's root hub in sysfs).
 */
static int set_peer_path(struct udev_source *src, struct usb_device *dev)
{
    size_t root_len = device_devpath_root_hub(dev->devpath);
    char root[PATH_MAX], path[DEVICE_ID_PATH_MAX + 8];
    const char *usb, *slash;
    struct hub_port *hp;
    struct root_hub *h;
    unsigned bus, depth;
    int n;

    if (!(hp = port_of(src, dev->devpath, dev->port)))
        return 0;
    dev->connect_type = hp->connect_type;
    if (!dev->id_path || !(usb = strstr(dev->id_path, "-usb-0:")) || root_len == 0 ||
        !hp->peer || device_port_parse(hp->peer, &bus, &depth) < 0)
        return 0;
    slash = dev->devpath + root_len - 1;
    while (slash > dev->devpath && *slash != '/')
        slash--;
    snprintf(root, sizeof(root), "/sys%.*s/usb%u", (int)(slash - dev->devpath), dev->devpath,
             bus);
    h = root_hub_of(src, root, root + 4);
    if (!h || !h->rev)
        return 0;
    n = snprintf(path, sizeof(path), "%.*s-usbv%u-0:%s", (int)(usb - dev->id_path),
                 dev->id_path, h->rev, strchr(hp->peer, '-') + 1);
    if (n < 0 || (size_t)n >= sizeof(path))
        return 0;
    return device_set_str(&dev->peer_path, path);
}

/*
 * ID_PATH_WITH_USB_REVISION, or, from udev versions without it, the same
 * computed from the plain path and the root hub's revision: an xHCI's USB 2
 * and USB 3 root hubs give their ports the same plain path.
 */
static int set_path_with_revision(struct udev_source *src, struct udev_device *ud,
                                  struct usb_device *dev)
{
    const char *v = udev_device_get_property_value(ud, "ID_PATH_WITH_USB_REVISION");
    char path[DEVICE_ID_PATH_MAX + 8];
    struct root_hub *h;

    if (v && *v)
        return device_set_str(&dev->id_path_rev, v);
    if (!dev->id_path || strncmp(dev->port, "usb", 3) == 0)
        return 0;
    h = root_hub_of(src, udev_device_get_syspath(ud), dev->devpath);
    if (!h || !h->rev ||
        device_id_path_with_revision(dev->id_path, h->rev, path, sizeof(path)) < 0)
        return 0;
    return device_set_str(&dev->id_path_rev, path);
}

/* Builds our record of a usb_device; NULL (logged) when it is not usable. */
static struct usb_device *device_from_udev(struct udev_source *src, struct udev_device *ud)
{
    const char *port = udev_device_get_sysname(ud);
    const char *devpath = udev_device_get_devpath(ud);
    const char *v, *type;
    struct usb_device *dev;
    char path[DEVICE_ID_PATH_MAX];
    unsigned x, sub, proto, bus, depth;
    bool by_udev;

    if (!port || !devpath || device_port_parse(port, &bus, &depth) < 0) {
        log_debug("%s: not a USB port path, skipped", port ? port : "(unnamed)");
        return NULL;
    }
    dev = device_new(devpath, port);
    if (!dev) {
        log_error("%s: out of memory", port);
        return NULL;
    }
    if (parse_uint(prop_or_attr(ud, "BUSNUM", "busnum"), 10, 999, &dev->busnum) < 0 ||
        parse_uint(prop_or_attr(ud, "DEVNUM", "devnum"), 10, 999, &dev->devnum) < 0) {
        log_warnx("%s: no bus or device number, skipped", port);
        device_free(dev);
        return NULL;
    }
    /* udev 252's path_id names the port by its controller; without it, we do. */
    v = udev_device_get_property_value(ud, "ID_PATH");
    if ((v && *v) || device_id_path(devpath, path, sizeof(path)) == 0) {
        if (device_set_str(&dev->id_path, v && *v ? v : path) < 0) {
            log_error("%s: out of memory", port);
            device_free(dev);
            return NULL;
        }
    } else {
        log_debug("%s: no PCI controller in the device path, no path", port);
    }
    if (set_path_with_revision(src, ud, dev) < 0 || set_peer_path(src, dev) < 0) {
        log_error("%s: out of memory", port);
        device_free(dev);
        return NULL;
    }
    if (parse_uint(prop_or_attr(ud, "ID_VENDOR_ID", "idVendor"), 16, 0xffff, &x) == 0)
        dev->vendor = (uint16_t)x;
    if (parse_uint(prop_or_attr(ud, "ID_MODEL_ID", "idProduct"), 16, 0xffff, &x) == 0)
        dev->product = (uint16_t)x;
    /* udev's usb_id sets ID_VENDOR_ID; with it, the strings' absence is known too. */
    by_udev = udev_device_get_property_value(ud, "ID_VENDOR_ID") != NULL;
    if (set_string(ud, &dev->manufacturer, "ID_VENDOR_ENC", "manufacturer", dev->vendor,
                   by_udev) < 0 ||
        set_string(ud, &dev->product_name, "ID_MODEL_ENC", "product", dev->product,
                   by_udev) < 0 ||
        device_set_str(&dev->serial, serial_of(ud, by_udev)) < 0) {
        log_error("%s: out of memory", port);
        device_free(dev);
        return NULL;
    }
    /* TYPE is "class/subclass/protocol" in decimal. */
    type = udev_device_get_property_value(ud, "TYPE");
    if (type && parse_type(type, &x, &sub, &proto) == 0) {
        dev->dev_class.cls = (uint8_t)x;
        dev->dev_class.subclass = (uint8_t)sub;
        dev->dev_class.protocol = (uint8_t)proto;
    } else if (parse_uint(udev_device_get_sysattr_value(ud, "bDeviceClass"), 16, 255, &x) == 0) {
        dev->dev_class.cls = (uint8_t)x;
    }
    v = udev_device_get_property_value(ud, "ID_USB_INTERFACES");
    if (!v || device_parse_interfaces(dev, v) < 0) {
        struct usb_class cls = dev->dev_class;

        if (read_descriptors(ud, dev) < 0)
            log_debug("%s: interface classes unknown", port);
        if (type)
            dev->dev_class = cls;
    }
    return dev;
}

static bool is_usb_device(struct udev_device *ud)
{
    const char *devtype = udev_device_get_devtype(ud);

    return devtype && strcmp(devtype, "usb_device") == 0;
}

/*
 * An input device that is a keyboard dom0 keeps: not on USB (the USB device
 * above it stands for it), not virtual (no one types on uinput), and the
 * inputN device itself, not its event or LED children, so that each counts once.
 */
static bool is_dom0_keyboard(struct udev_device *ud)
{
    const char *sysname = udev_device_get_sysname(ud);
    const char *devpath = udev_device_get_devpath(ud);
    const char *kbd = udev_device_get_property_value(ud, "ID_INPUT_KEYBOARD");

    return sysname && devpath && kbd && strcmp(kbd, "1") == 0 &&
           strncmp(sysname, "input", 5) == 0 && sysname[5] >= '0' && sysname[5] <= '9' &&
           strncmp(devpath, "/devices/virtual/", 17) != 0 && !device_devpath_on_usb(devpath);
}

static void handle_input(struct udev_source *src, struct udev_device *ud, const char *action)
{
    if (strcmp(action, "add") == 0 && is_dom0_keyboard(ud))
        router_keyboard_added(src->router, udev_device_get_devpath(ud));
    else if (strcmp(action, "remove") == 0)
        router_keyboard_removed(src->router, udev_device_get_devpath(ud));
}

static void handle(struct udev_source *src, struct udev_device *ud)
{
    const char *action = udev_device_get_action(ud);
    const char *subsystem = udev_device_get_subsystem(ud);
    const char *type;
    struct usb_device *dev;
    bool hub;

    if (action && subsystem && strcmp(subsystem, "input") == 0) {
        handle_input(src, ud, action);
        return;
    }
    if (!action || !is_usb_device(ud))
        return;
    /* Only a hub (TYPE 9/x/y; without TYPE, any device) has ports or a revision cached. */
    type = udev_device_get_property_value(ud, "TYPE");
    hub = !type || strncmp(type, "9/", 2) == 0;
    if (strcmp(action, "add") == 0) {
        /* A hub that comes (back) is read afresh: what was read before it was there is not it. */
        if (hub)
            forget_hub(src, udev_device_get_devpath(ud));
        dev = device_from_udev(src, ud);
        if (dev)
            router_device_added(src->router, dev, EVENT_ADD);
    } else if (strcmp(action, "remove") == 0) {
        if (hub)
            forget_hub(src, udev_device_get_devpath(ud));
        router_device_removed(src->router, udev_device_get_devpath(ud));
    }
}

/*
 * After an overrun: what is plugged in now is added, what the router holds
 * that is not any more is removed.  A failed listing removes nothing.
 */
static void rescan(struct udev_source *src)
{
    router_rescan_begin(src->router);
    if (udev_source_enumerate(src, EVENT_ADD) == 0)
        router_rescan_done(src->router);
}

static void monitor_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct udev_source *src = w->data;

    /* Drain what is queued: a burst is handled in one wake-up. */
    for (int i = 0; i < 256; i++) {
        struct udev_device *ud = udev_monitor_receive_device(src->monitor);

        if (!ud) {
            if (errno == ENOBUFS) {
                log_warnx("udev events were lost (receive buffer overrun): "
                          "looking at every device again");
                rescan(src);
                continue;
            }
            break;
        }
        handle(src, ud);
        udev_device_unref(ud);
    }
}

struct udev_source *udev_source_new(struct ev_loop *loop, struct router *router)
{
    struct udev_source *src = calloc(1, sizeof(*src));

    if (!src) {
        log_error("out of memory");
        return NULL;
    }
    src->loop = loop;
    src->router = router;
    src->port_map = strmap_new();
    if (!src->port_map) {
        log_error("out of memory");
        free(src);
        return NULL;
    }
    src->udev = udev_new();
    if (!src->udev) {
        log_error("cannot start libudev");
        strmap_free(src->port_map, NULL);
        free(src);
        return NULL;
    }
    return src;
}

int udev_source_listen(struct udev_source *src)
{
    int r;

    src->monitor = udev_monitor_new_from_netlink(src->udev, "udev");
    if (!src->monitor) {
        r = -errno;
        log_warn("cannot open the udev monitor");
        return r ? r : -EIO;
    }
    r = udev_monitor_filter_add_match_subsystem_devtype(src->monitor, "usb", "usb_device");
    if (r >= 0)
        r = udev_monitor_filter_add_match_subsystem_devtype(src->monitor, "input", NULL);
    if (r >= 0)
        r = udev_monitor_enable_receiving(src->monitor);
    if (r < 0) {
        log_error("cannot listen to udev: %s", strerror(-r));
        return r;
    }
    /* A burst of plugs must not overrun the socket (needs CAP_NET_ADMIN). */
    udev_monitor_set_receive_buffer_size(src->monitor, 4 << 20);
    ev_io_init(&src->io, monitor_cb, udev_monitor_get_fd(src->monitor), EV_READ);
    src->io.data = src;
    ev_io_start(src->loop, &src->io);
    return 0;
}

struct to_router {
    struct router *router;
    enum router_event event;
};

static void add_to_router(void *arg, struct usb_device *dev)
{
    struct to_router *t = arg;

    router_device_added(t->router, dev, t->event);
}

static void keyboard_to_router(void *arg, const char *devpath)
{
    router_keyboard_added(arg, devpath);
}

int udev_source_enumerate(struct udev_source *src, enum router_event event)
{
    struct to_router t = { .router = src->router, .event = event };
    int r;

    /* Keyboards first: the guard then knows them when USB keyboards come. */
    r = udev_source_list_keyboards(src, keyboard_to_router, src->router);
    if (r < 0)
        return r;
    return udev_source_list(src, add_to_router, &t);
}

/*
 * Hands each device of subsystem (with property=value when property is not
 * NULL) present now to each(); what names the list in the error.  0 or -errno.
 */
static int scan(struct udev_source *src, const char *subsystem, const char *property,
                const char *value, const char *what,
                void (*each)(void *arg, struct udev_device *ud), void *arg)
{
    struct udev_enumerate *en = udev_enumerate_new(src->udev);
    struct udev_list_entry *item;
    int r;

    if (!en) {
        log_error("out of memory");
        return -ENOMEM;
    }
    r = udev_enumerate_add_match_subsystem(en, subsystem);
    if (r >= 0 && property)
        r = udev_enumerate_add_match_property(en, property, value);
    if (r >= 0)
        r = udev_enumerate_scan_devices(en);
    if (r < 0) {
        log_error("cannot list %s: %s", what, strerror(-r));
        udev_enumerate_unref(en);
        return r;
    }
    udev_list_entry_foreach(item, udev_enumerate_get_list_entry(en)) {
        struct udev_device *ud =
            udev_device_new_from_syspath(src->udev, udev_list_entry_get_name(item));

        if (ud) {
            each(arg, ud);
            udev_device_unref(ud);
        }
    }
    udev_enumerate_unref(en);
    return 0;
}

struct each_fn {
    struct udev_source *src;
    void (*keyboard)(void *arg, const char *devpath);
    void (*usb)(void *arg, struct usb_device *dev);
    void *arg;
};

static void each_keyboard(void *arg, struct udev_device *ud)
{
    struct each_fn *e = arg;

    if (is_dom0_keyboard(ud))
        e->keyboard(e->arg, udev_device_get_devpath(ud));
}

static void each_usb(void *arg, struct udev_device *ud)
{
    struct each_fn *e = arg;
    struct usb_device *dev;

    if (is_usb_device(ud) && (dev = device_from_udev(e->src, ud)))
        e->usb(e->arg, dev);
}

int udev_source_list_keyboards(struct udev_source *src,
                               void (*fn)(void *arg, const char *devpath), void *arg)
{
    struct each_fn e = { .src = src, .keyboard = fn, .arg = arg };

    return scan(src, "input", "ID_INPUT_KEYBOARD", "1", "keyboards", each_keyboard, &e);
}

int udev_source_list(struct udev_source *src, void (*fn)(void *arg, struct usb_device *dev),
                     void *arg)
{
    struct each_fn e = { .src = src, .usb = fn, .arg = arg };

    return scan(src, "usb", NULL, NULL, "USB devices", each_usb, &e);
}

void udev_source_free(struct udev_source *src)
{
    if (!src)
        return;
    if (src->monitor) {
        ev_io_stop(src->loop, &src->io);
        udev_monitor_unref(src->monitor);
    }
    while (src->root_hubs) {
        struct root_hub *h = src->root_hubs;

        src->root_hubs = h->next;
        free(h->devpath);
        free(h);
    }
    while (src->ports) {
        struct hub_port *hp = src->ports;

        src->ports = hp->next;
        free(hp->key);
        free(hp->hub);
        free(hp->peer);
        free(hp);
    }
    strmap_free(src->port_map, NULL);
    udev_unref(src->udev);
    free(src);
}

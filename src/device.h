/*
 * struct usb_device: the identity of one plugged USB device, as the rules see
 * it.  The udev source fills it in from a udev event; the core (policy, match,
 * router, domain) only ever sees this structure, never libudev.
 */
#ifndef AUA_DEVICE_H
#define AUA_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "speed.h"

/* Device strings are untrusted and cut at this many bytes. */
#define DEVICE_STR_MAX 255
#define DEVICE_MAX_IFACES 32
/* Port paths deeper than this are not valid USB (the spec allows 5 hubs). */
#define DEVICE_MAX_PORT_DEPTH 7

#define USB_CLASS_HID 0x03
#define USB_CLASS_HUB 0x09

struct usb_class {
    uint8_t cls;
    uint8_t subclass;
    uint8_t protocol;
};

/* How the port is wired, as the firmware tells the kernel (connect_type). */
enum device_connect {
    DEVICE_CONNECT_UNKNOWN = 0,     /* "unknown", "not used", or not said */
    DEVICE_CONNECT_HOTPLUG,         /* a socket a user plugs into */
    DEVICE_CONNECT_HARDWIRED,       /* an internal device: camera, card reader, Bluetooth */
};

struct usb_device {
    char *devpath;       /* kernel DEVPATH, "/devices/.../1-1.2": the key */
    char *port;          /* port path (sysname), "1-1.2" */
    char *id_path;       /* udev's ID_PATH, "pci-0000:00:14.0-usb-0:1.2"; NULL: none */
    char *id_path_rev;   /* ID_PATH_WITH_USB_REVISION, "pci-...-usbv3-0:1.2"; NULL: unknown */
    char *peer_path;     /* the same of its port's peer (the connector's other half); NULL: none */
    enum device_connect connect_type;   /* of the port it is plugged into */
    unsigned busnum;
    unsigned devnum;
    uint16_t vendor;
    uint16_t product;
    char *serial;        /* raw, bounded; NULL when the device has none */
    char *manufacturer;
    char *product_name;
    struct usb_class dev_class;
    unsigned n_ifaces;
    struct usb_class ifaces[DEVICE_MAX_IFACES];
    enum usb_speed speed;   /* read by its guest's worker when it attaches it */
};

/* Returns a zeroed device owning a copy of devpath and port; NULL on ENOMEM. */
struct usb_device *device_new(const char *devpath, const char *port);
void device_free(struct usb_device *dev);
/* Returns a deep copy, or NULL on ENOMEM. */
struct usb_device *device_dup(const struct usb_device *dev);

/*
 * Replaces *field with a copy of value cut to DEVICE_STR_MAX bytes (NULL or
 * "" clears it).  Returns 0 or -ENOMEM.
 */
int device_set_str(char **field, const char *value);

/* A hub's own class is 09: hubs are never routed. */
bool device_is_hub(const struct usb_device *dev);

/*
 * True when the device has a keyboard interface: HID boot keyboard
 * (03:01:01), as its descriptors say.
 */
bool device_is_keyboard(const struct usb_device *dev);

/*
 * True when the kernel DEVPATH lies below a USB root hub ("/usbN/"): an
 * input device on USB, which the USB device above it stands for.
 */
bool device_devpath_on_usb(const char *devpath);

/*
 * The length of devpath's prefix that names its root hub ("/devices/...
 * /usb1" of "/devices/.../usb1/1-1/1-1.4"), or 0 when it has none.
 */
size_t device_devpath_root_hub(const char *devpath);

/*
 * Parses a port path "B-P[.P...]" into its bus and depth; "usbN" (a root
 * hub) has depth 0.  Returns 0 or -EINVAL.
 */
int device_port_parse(const char *port, unsigned *bus, unsigned *depth);

/*
 * True when the device at port path `port` is below hub `hub` at any depth.
 * hub is "usbN" (a root hub: every device on bus N) or a port path.
 */
bool device_port_below(const char *port, const char *hub);

/* Room for any path device_id_path writes. */
#define DEVICE_ID_PATH_MAX 128

/*
 * Computes udev's ID_PATH for the USB device at kernel DEVPATH devpath, from
 * the devpath alone: "pci-0000:00:14.0-usb-0:1.4" for port 1-1.4 of the
 * controller at PCI function 0000:00:14.0, "pci-0000:00:14.0" for its root
 * hub.  The bus number is left out, so the path survives bus renumbering.
 * Returns 0, -EINVAL when devpath is not a USB device whose root hub sits on
 * a PCI function (udev 252 would name such a device differently, or not at
 * all), or -ENOSPC when len is too small.
 */
int device_id_path(const char *devpath, char *buf, size_t len);

/*
 * Checks a path in the form device_id_path writes: "pci-0000:00:14.0" (a
 * controller, depth 0) or "pci-0000:00:14.0-usb-0:1.4" (depth 2), or in the
 * form with the root hub's USB revision that newer udev adds,
 * "pci-0000:00:14.0-usbv3-0:1.4", and "pci-0000:00:14.0-usbv3" for that
 * root hub (depth 0).  Sets *depth and returns 0, or -EINVAL.
 */
int device_id_path_parse(const char *path, unsigned *depth);

/* The same, and sets *rev to the revision (1 to 3), 0 for the plain form. */
int device_id_path_parse_rev(const char *path, unsigned *depth, unsigned *rev);

/*
 * True when the device with path id_path is below hub, at any depth; hub is
 * a controller ("pci-0000:00:14.0": every device on it), one of its root
 * hubs ("pci-0000:00:14.0-usbv3") or a hub's path.  Both are in the same
 * form, plain or with the revision.  False when either is not in
 * device_id_path_parse's form.
 */
bool device_id_path_below(const char *id_path, const char *hub);

/*
 * The USB revision that udev's path_id gives the devices below a root hub,
 * from the root hub's bDeviceProtocol and speed: 1, 2 or 3, or 0 when they
 * say nothing known.
 */
unsigned device_root_hub_revision(unsigned protocol, const char *speed);

/*
 * Writes the path with revision rev ("pci-X-usbv3-0:1.4") of the plain
 * id_path ("pci-X-usb-0:1.4").  Returns 0, -EINVAL when id_path names no
 * USB port (a controller, or not the plain form), or -ENOSPC.
 */
int device_id_path_with_revision(const char *id_path, unsigned rev, char *buf, size_t len);

/* The connect type of a port's connect_type attribute ("hotplug"...). */
enum device_connect device_connect_parse(const char *value);
/* "hotplug", "hardwired" or "unknown". */
const char *device_connect_name(enum device_connect type);

/*
 * The port path of a port named as the kernel names port devices:
 * "usb2-port3" is port 3 of root hub 2, "2-3" for a device in it;
 * "2-1.4-port2" gives "2-1.4.2".  Returns 0, -EINVAL or -ENOSPC.
 */
int device_port_of_port_device(const char *name, char *buf, size_t len);

/*
 * Fills dev->ifaces from udev's ID_USB_INTERFACES (":030101:0b0000:").
 * Returns the number of interfaces or -EINVAL.
 */
int device_parse_interfaces(struct usb_device *dev, const char *prop);

/*
 * Fills dev->dev_class and dev->ifaces from the raw `descriptors` attribute
 * (device descriptor then configuration descriptors).  Returns the number of
 * interfaces or -EINVAL on a malformed buffer.
 */
int device_parse_descriptors(struct usb_device *dev, const uint8_t *buf, size_t len);

/*
 * True when udev's ID_SERIAL_SHORT can stand for the serial the device
 * reports: udev writes '_' for every character it rewrites, so only a value
 * without one is known to be the device's own string.
 */
bool device_serial_short_usable(const char *id_serial_short);

/* Four lowercase hex digits of v (its low 16 bits), as sysfs spells ids, into buf[5]. */
char *device_hex4(char *buf, unsigned v);

/* Writes "vvvv:pppp" into buf (at least 10 bytes). */
char *device_id_string(const struct usb_device *dev, char *buf);

#endif

/*
 * The udev source: a libudev monitor (usb / usb_device, and input for the
 * keyboards dom0 keeps) in the event loop and the enumeration of the devices
 * present at start.  It turns udev devices
 * into struct usb_device and hands them to the router.
 */
#ifndef AUA_UDEV_SOURCE_H
#define AUA_UDEV_SOURCE_H

#include "router.h"

struct ev_loop;
struct udev_source;

/* Returns a source that reports to router; NULL (logged) on failure. */
struct udev_source *udev_source_new(struct ev_loop *loop, struct router *router);
/* Starts listening for uevents.  Returns 0 or a negative errno (logged). */
int udev_source_listen(struct udev_source *src);
/* Reports every USB device present now with the given event. 0 or -errno. */
int udev_source_enumerate(struct udev_source *src, enum router_event event);
/* Hands every USB device present now to fn (which takes it).  0 or -errno. */
int udev_source_list(struct udev_source *src, void (*fn)(void *arg, struct usb_device *dev),
                     void *arg);
/*
 * Hands the DEVPATH of every keyboard not on USB present now to fn (the
 * string is fn's to copy).  0 or -errno.
 */
int udev_source_list_keyboards(struct udev_source *src,
                               void (*fn)(void *arg, const char *devpath), void *arg);
void udev_source_free(struct udev_source *src);

#endif

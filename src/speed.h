/*
 * USB speeds and the controllers that take them.  A guest's controller port
 * takes only the speeds its type allows: UHCI (version 1) low and full
 * speed, EHCI (version 2, without companion controllers in QEMU) high speed
 * only, xHCI (version 3) every speed.  QEMU refuses any other pair ("speed
 * mismatch"), and each refused try takes the device from dom0's drivers.
 */
#ifndef AUA_SPEED_H
#define AUA_SPEED_H

#include <stdbool.h>

enum usb_speed {
    USB_SPEED_UNREAD,       /* not read yet (the zero of a new device) */
    USB_SPEED_UNKNOWN,      /* read, but sysfs did not tell */
    USB_SPEED_LOW,          /* 1.5 Mbit/s */
    USB_SPEED_FULL,         /* 12 */
    USB_SPEED_HIGH,         /* 480 */
    USB_SPEED_SUPER,        /* 5000 and more */
};

/* The kernel's "speed" attribute ("1.5", "12", "480", "5000"...), or UNKNOWN. */
enum usb_speed usb_speed_parse(const char *text);
/*
 * Reads the speed of the device at sysfs path /sys<devpath> (a kernel
 * DEVPATH).  UNKNOWN when it cannot be read.
 */
enum usb_speed usb_speed_read(const char *devpath);
/* "low", "full", "high", "super" or "unknown". */
const char *usb_speed_name(enum usb_speed speed);
/*
 * True when a controller of this version takes a device of this speed; an
 * unknown speed is taken anywhere (as before speeds were known).
 */
bool usb_controller_takes(int version, enum usb_speed speed);
/*
 * The same for a PV USB controller (QEMU's xen-usb backend): version 1 takes
 * low and full speed, version 2 high speed too; none takes SuperSpeed (the
 * PV USB protocol has no USB 3).
 */
bool usb_pv_controller_takes(int version, enum usb_speed speed);
/* "UHCI", "EHCI", "xHCI" for versions 1, 2 and 3. */
const char *usb_controller_type(int version);

#endif

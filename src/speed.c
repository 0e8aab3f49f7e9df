/*
 * USB speeds: the kernel's speed attribute, read once per device when its
 * guest's worker attaches it (not on the uevent path), and the rule of which
 * controller type takes which speed (speed.h).
 */
#include "config.h"

#include "speed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum usb_speed usb_speed_parse(const char *text)
{
    char *end;
    double mbit;

    if (!text)
        return USB_SPEED_UNKNOWN;
    mbit = strtod(text, &end);
    if (end == text || (*end && *end != '\n'))
        return USB_SPEED_UNKNOWN;
    if (mbit == 1.5)
        return USB_SPEED_LOW;
    if (mbit == 12.)
        return USB_SPEED_FULL;
    if (mbit == 480.)
        return USB_SPEED_HIGH;
    if (mbit >= 5000.)
        return USB_SPEED_SUPER;
    return USB_SPEED_UNKNOWN;
}

enum usb_speed usb_speed_read(const char *devpath)
{
    char path[512], text[32];
    size_t n;
    FILE *f;

    if (!devpath || snprintf(path, sizeof(path), "/sys%s/speed", devpath) >= (int)sizeof(path))
        return USB_SPEED_UNKNOWN;
    f = fopen(path, "re");
    if (!f)
        return USB_SPEED_UNKNOWN;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return usb_speed_parse(text);
}

const char *usb_speed_name(enum usb_speed speed)
{
    switch (speed) {
    case USB_SPEED_LOW:
        return "low";
    case USB_SPEED_FULL:
        return "full";
    case USB_SPEED_HIGH:
        return "high";
    case USB_SPEED_SUPER:
        return "super";
    default:
        return "unknown";
    }
}

bool usb_controller_takes(int version, enum usb_speed speed)
{
    switch (speed) {
    case USB_SPEED_LOW:
    case USB_SPEED_FULL:
        return version != 2;
    case USB_SPEED_HIGH:
        return version != 1;
    case USB_SPEED_SUPER:
        return version == 3;
    default:
        return true;
    }
}

bool usb_pv_controller_takes(int version, enum usb_speed speed)
{
    switch (speed) {
    case USB_SPEED_LOW:
    case USB_SPEED_FULL:
        return true;
    case USB_SPEED_HIGH:
        return version >= 2;
    case USB_SPEED_SUPER:
        return false;
    default:
        return true;
    }
}

const char *usb_controller_type(int version)
{
    return version == 1 ? "UHCI" : version == 2 ? "EHCI" : "xHCI";
}

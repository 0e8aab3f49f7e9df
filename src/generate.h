/*
 * --generate-policy: a commented policy for the devices plugged in now, one
 * rule each, so a new user starts from a file that fits their machine.
 */
#ifndef AUA_GENERATE_H
#define AUA_GENERATE_H

#include <stdio.h>

#include "device.h"

enum generate_by {
    GENERATE_BY_PORT,       /* match: { port: "1-1.2" }: whatever is plugged in there */
    GENERATE_BY_ID,         /* match: { id: "1050:0407", serial: "..." }: this very device */
    GENERATE_BY_PATH,       /* match: { path: "pci-...-usb-0:1.2" }: the port, by controller */
};

/* Writes the policy for devs (hubs are left out) to out.  0 or -errno. */
int generate_policy(FILE *out, struct usb_device *const *devs, size_t n, enum generate_by by);

#endif

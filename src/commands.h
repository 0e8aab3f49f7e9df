/*
 * The requests of the control socket: status, devices, domains, explain,
 * attach, detach, reload, log-level.  Each request is a JSON object
 * {"command": ...}; each answer {"ok": true, ...} or {"ok": false,
 * "error": ...}.  The socket itself (framing, peers, limits) is control.c's.
 */
#ifndef AUA_COMMANDS_H
#define AUA_COMMANDS_H

#include <jansson.h>
#include <time.h>

#include "router.h"

struct control_peer;

struct commands {
    struct router *router;
    const char *backend;        /* "libxl", "dry-run" */
    const char *policy_source;  /* the file, or "command line" */
    time_t started;
    /*
     * Reloads the policy; returns 0, or -1 with *errors a new array of the
     * messages (FILE:LINE:COLUMN: ...).
     */
    int (*reload)(void *arg, json_t **errors);
    void *reload_arg;
};

/* Answers one request; returns a new reference, never NULL. */
json_t *commands_handle(void *arg, json_t *request, const struct control_peer *peer);

/* The JSON form of one device, as "devices" lists it (a new reference). */
json_t *commands_device_json(const struct dev_entry *entry);

#endif

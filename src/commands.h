/*
 * The requests of the control socket: status, devices, domains, explain,
 * watch, attach, detach, reload, log-level.  Each request is a JSON object
 * {"command": ...}; each answer {"ok": true, ...} or {"ok": false,
 * "error": ...}.  The socket itself (framing, peers, limits) is control.c's.
 * Any member of the control group may read (status, devices, domains,
 * explain, watch); the commands that change something are root's unless the
 * daemon was started with --control-group-changes.
 */
#ifndef AUA_COMMANDS_H
#define AUA_COMMANDS_H

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#include "router.h"

struct control;
struct control_peer;

struct commands {
    struct router *router;
    const char *backend;        /* "libxl", "dry-run" */
    const char *policy_source;  /* the file, or "command line" */
    time_t started;
    struct control *control;    /* for the count of watchers; NULL: none yet */
    /*
     * Reloads the policy; returns 0, or -1 with *errors a new array of the
     * messages (FILE:LINE:COLUMN: ...).
     */
    int (*reload)(void *arg, json_t **errors);
    void *reload_arg;
    /* --control-group-changes: the group may attach, detach, reload, log-level. */
    bool group_changes;
    double reload_at;       /* CLOCK_MONOTONIC of the last reload asked; 0: none */
    double reload_tokens;   /* reloads that may be asked now */
};

/* Reloads over the socket: this many at once, then one a second. */
#define COMMANDS_RELOAD_BURST 3

/* Answers one request; returns a new reference, never NULL. */
json_t *commands_handle(void *arg, json_t *request, const struct control_peer *peer);

/* The JSON form of one device, as "devices" lists it (a new reference). */
json_t *commands_device_json(const struct dev_entry *entry);

#endif

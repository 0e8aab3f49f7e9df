/*
 * Printing decisions: one line per event, human-readable or JSON.  Device
 * strings are escaped so that no device can forge or break a line.
 */
#ifndef AUA_REPORT_H
#define AUA_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "router.h"

const char *report_event_name(enum router_event event);

/* Writes one line for r to out and flushes it.  Returns 0 or -errno. */
int report_print(FILE *out, bool json, const struct decision_report *r);

/* r as the JSON object --json prints (a new reference; NULL when out of memory). */
json_t *report_decision_json(const struct decision_report *r);

/* A watcher's line for n (a new reference; NULL when out of memory). */
json_t *report_note_json(const struct router_note *n);

/* Formats the human-readable line (without newline) into buf. */
char *report_format(const struct decision_report *r, char *buf, size_t len);

#endif

/*
 * What is attached where, kept in a file under the state directory
 * (/run/auto-usb-attach) so that a restarted daemon knows what it did.  The
 * file is replaced atomically on every change; a corrupt one is reported and
 * ignored, never fatal.
 */
#ifndef AUA_STATE_H
#define AUA_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "bounds.h"

#define STATE_FILE "state.json"

struct state_record {
    char domain[AUA_DOMAIN_NAME_MAX + 1];
    int domid;
    int ctrl;
    int port;
    unsigned busnum;
    unsigned devnum;
    char busid[AUA_BUSID_MAX + 1];  /* port path, "1-1.2" */
    char id[10];            /* "1050:0407" */
    char serial[256];       /* "" when none */
    /*
     * A decision made by hand (attach or detach without --permanent), kept
     * until the device is unplugged: domain is its guest, "" for dom0;
     * domid, ctrl and port are not recorded.
     */
    bool manual;
};

struct state {
    char *dir;
    bool failing;           /* the last write failed: say so once, not each time */
};

/*
 * Returns a state kept in dir (created 0700 if missing), or NULL with errno:
 * ENOMEM, or (logged) a directory that is not root's, is writable by others
 * or is a symbolic link.
 */
struct state *state_new(const char *dir);
void state_free(struct state *state);

/* Replaces the file with records (the manual ones under "overrides").  0, or a negative errno (logged once). */
int state_write(struct state *state, const struct state_record *records, size_t n);

/*
 * Reads the file.  *records is allocated (free it); 0 with n = 0 when there
 * is no file; a corrupt file is logged and read as empty.
 */
int state_read(struct state *state, struct state_record **records, size_t *n);

#endif

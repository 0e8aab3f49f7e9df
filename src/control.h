/*
 * The control socket: a UNIX stream socket in the daemon's libev loop that
 * reads one JSON request per line and writes one JSON reply per line, in
 * order.  It owns the transport only: who may connect (SO_PEERCRED), the
 * framing and the limits that keep a client from blocking or exhausting the
 * daemon.  What a request means is the handler's business (commands.c).
 */
#ifndef AUA_CONTROL_H
#define AUA_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The daemon's default and the client's: keep them one. */
#define CONTROL_DEFAULT_SOCKET "/run/auto-usb-attach/control"

/* The limits; a client past one gets an error line, or is dropped. */
#define CONTROL_LINE_MAX 65536              /* bytes of one request line */
#define CONTROL_MAX_CLIENTS 64              /* connections at once */
#define CONTROL_ROOT_SLOTS 4                /* of which only root may take these */
#define CONTROL_MAX_PER_UID 8               /* connections of one uid but root's */
#define CONTROL_OUTPUT_MAX (1024 * 1024)    /* reply bytes behind an unread one */
#define CONTROL_IDLE_TIMEOUT 30.0           /* seconds without a request */
#define CONTROL_WATCH_MAX (64 * 1024)       /* event bytes a watcher leaves unread */

struct ev_loop;
struct control;

struct control_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/*
 * Answers one request (a JSON object); returns a new reference to the reply
 * object, never NULL.
 */
typedef json_t *(*control_handler_fn)(void *arg, json_t *request,
                                      const struct control_peer *peer);

/*
 * Listens on path (creating its directory 0755 if missing, replacing a stale
 * socket, refusing to replace anything that is not a socket or a socket
 * another live daemon answers on), mode 0600 owned by root, or 0660 with
 * group `group` when group != (gid_t)-1.  Root (and the daemon's own uid)
 * may always connect; with a group, so may a process whose primary or
 * supplementary groups include it.  Returns NULL after logging why.
 * The caller frees it with control_free().
 */
struct control *control_new(struct ev_loop *loop, const char *path, gid_t group,
                            control_handler_fn handler, void *arg);

/* Root, or the daemon's own uid: may do anything over the socket. */
bool control_peer_is_root(const struct control_peer *peer);

/* Closes every client, stops listening and unlinks the socket (if still ours). */
void control_free(struct control *ctl);

/*
 * A client whose request the handler answered {"ok": true, "watching": true}
 * is a watcher from then on: it has no idle timeout and gets every event
 * sent here, one line each.  Sends event (a JSON object; the reference is
 * taken) to every watcher without waiting: a watcher with more than
 * CONTROL_WATCH_MAX bytes of events unread is dropped.
 */
void control_broadcast(struct control *ctl, json_t *event);
/* The watchers connected now. */
size_t control_watchers(const struct control *ctl);

/* The clients connected now (refused ones are never counted). */
size_t control_clients(const struct control *ctl);

/*
 * How long a client may stay without sending a complete request before it is
 * closed (CONTROL_IDLE_TIMEOUT by default; 0 means never).  Applies to
 * clients that connect or send a request from now on.
 */
void control_set_idle_timeout(struct control *ctl, double seconds);

#endif

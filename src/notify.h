/*
 * The systemd readiness protocol (sd_notify) without libsystemd: one
 * datagram to $NOTIFY_SOCKET.  Tests use it to know when to send events.
 */
#ifndef AUA_NOTIFY_H
#define AUA_NOTIFY_H

/* Sends state ("READY=1", ...) if NOTIFY_SOCKET is set.  0, or -errno. */
int notify_send(const char *state);

#endif

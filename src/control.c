/*
 * The control socket server: the listening socket and its path, who may
 * connect, and each client's framing (one JSON object per line, replies in
 * request order) with the limits that keep a client from blocking or
 * exhausting the daemon.  Requests are answered by the handler given to
 * control_new(); nothing here knows what they mean.
 *
 * Every fd is non-blocking and every wait is a libev watcher, so a client
 * that stops reading, sends a line that never ends or never sends at all
 * costs a bounded amount of memory and no time: it is dropped when it
 * crosses a limit (control.h), with a log line.
 */
#include "config.h"

#include "control.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "trust.h"

/* Bytes read from one client per wakeup, so a chatty client waits its turn. */
#define READ_CHUNK 16384
/* Connections accepted per wakeup, for the same reason. */
#define ACCEPT_BURST 32
/* After EMFILE the listener is readable forever; it rests this long instead. */
#define ACCEPT_PAUSE 1.0
/* An output buffer that grew past this is given back once it drains. */
#define OUTPUT_KEEP 65536

struct client {
    struct control *ctl;
    struct client *prev, *next;
    int fd;
    struct control_peer peer;
    ev_io rio;
    ev_io wio;
    ev_timer idle;
    ev_timer more;              /* another request waits: answered next loop turn */
    char *in;                   /* bytes after the last complete line */
    size_t in_len, in_size;
    size_t in_scanned;          /* the first in_scanned bytes hold no '\n' */
    char *out;                  /* replies not yet sent: out[out_off..out_len) */
    size_t out_off, out_len, out_size;
    bool closing;               /* close once out is sent; read no more */
    bool watching;              /* sent "watch": gets every event from then on */
};

struct control {
    struct ev_loop *loop;
    char *path;
    int fd;
    dev_t dev;                  /* the socket we bound, so that we unlink */
    ino_t ino;                  /* ours and not a successor's */
    gid_t group;
    control_handler_fn handler;
    void *arg;
    double idle_timeout;
    ev_io listen_io;
    ev_timer pause;
    struct client *clients;
    size_t n_clients;
    size_t watchers;            /* clients that are watching */
};

/* A reply {"ok":false,"error":...}; the message may hold bytes from a client. */
static json_t *error_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *error_reply(const char *fmt, ...)
{
    char msg[512], *clean;
    json_t *reply;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* json_string() refuses invalid UTF-8, and jansson quotes the input. */
    clean = log_utf8(msg);
    reply = json_pack("{s:b, s:s}", "ok", 0, "error", clean ? clean : "out of memory");
    free(clean);
    return reply;
}

static int socket_address(const char *path, struct sockaddr_un *sa)
{
    size_t len = strlen(path);

    if (len >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, len);
    return 0;
}

/* ------------------------------------------------------------- clients */

static void client_close(struct client *c)
{
    struct control *ctl = c->ctl;

    ev_io_stop(ctl->loop, &c->rio);
    ev_io_stop(ctl->loop, &c->wio);
    ev_timer_stop(ctl->loop, &c->idle);
    ev_timer_stop(ctl->loop, &c->more);
    if (c->watching)
        ctl->watchers--;
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        ctl->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ctl->n_clients--;
    free(c->in);
    free(c->out);
    free(c);
}

/* Sends what is buffered.  0, or -1 when the client is gone (freed). */
static int client_flush(struct client *c)
{
    struct control *ctl = c->ctl;

    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ev_io_start(ctl->loop, &c->wio);
                return 0;
            }
            if (errno == EPIPE || errno == ECONNRESET)
                log_debug("control: pid %ld uid %u left before reading its replies",
                          (long)c->peer.pid, (unsigned)c->peer.uid);
            else
                log_warn("control: cannot write to pid %ld uid %u", (long)c->peer.pid,
                         (unsigned)c->peer.uid);
            client_close(c);
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    if (c->out_size > OUTPUT_KEEP) {
        free(c->out);
        c->out = NULL;
        c->out_size = 0;
    }
    ev_io_stop(ctl->loop, &c->wio);
    if (c->closing) {
        client_close(c);
        return -1;
    }
    return 0;
}

/* Appends text and a newline to the output buffer.  0 or -ENOMEM. */
static int client_append(struct client *c, const char *text, size_t len)
{
    size_t need;

    if (c->out_off > 0 && c->out_len + len + 1 > c->out_size) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    need = c->out_len + len + 1;
    if (need > c->out_size) {
        size_t size = c->out_size ? c->out_size : 4096;
        char *p;

        while (size < need)
            size *= 2;
        p = realloc(c->out, size);
        if (!p)
            return -ENOMEM;
        c->out = p;
        c->out_size = size;
    }
    memcpy(c->out + c->out_len, text, len);
    c->out[c->out_len + len] = '\n';
    c->out_len = need;
    return 0;
}

/*
 * Bytes queued behind the first reply not sent whole yet.  A reply of any
 * size (an explain of a large policy) is sent to a client that reads it;
 * only replies piling up behind it show a client that does not read.
 */
static size_t client_backlog(const struct client *c)
{
    const char *nl = memchr(c->out + c->out_off, '\n', c->out_len - c->out_off);

    return nl ? c->out_len - (size_t)(nl + 1 - c->out) : 0;
}

/*
 * Queues one reply (consuming the reference) and sends what the socket
 * takes.  0, or -1 when the client is gone: it went away, or has more than
 * CONTROL_OUTPUT_MAX bytes of replies queued behind one it has not read.
 */
static int client_reply(struct client *c, json_t *reply)
{
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    int r;

    json_decref(reply);
    if (text) {
        /* U+2028 and kin as \u2028: line-splitting readers must not cut a reply. */
        char *safe = log_json_escape_breaks(text);

        free(text);
        text = safe;
    }
    if (!text) {
        /* Out of memory, or a handler that broke its contract with a bare value. */
        log_error("control: cannot encode the reply to pid %ld uid %u", (long)c->peer.pid,
                  (unsigned)c->peer.uid);
        text = strdup("{\"ok\":false,\"error\":\"internal error: the reply cannot be encoded\"}");
        if (!text) {
            client_close(c);
            return -1;
        }
    }
    r = client_append(c, text, strlen(text));
    free(text);
    if (r < 0) {
        log_error("control: out of memory for the replies to pid %ld uid %u: dropped",
                  (long)c->peer.pid, (unsigned)c->peer.uid);
        client_close(c);
        return -1;
    }
    /* While the write watcher runs the socket is full: no use trying. */
    if (!ev_is_active(&c->wio) && client_flush(c) < 0)
        return -1;
    if (c->out_len - c->out_off > CONTROL_OUTPUT_MAX && client_backlog(c) > CONTROL_OUTPUT_MAX) {
        log_warnx("control: pid %ld uid %u does not read its replies (%zu bytes waiting): "
                  "dropped", (long)c->peer.pid, (unsigned)c->peer.uid,
                  c->out_len - c->out_off);
        client_close(c);
        return -1;
    }
    return 0;
}

/* Sends a last error reply, then closes.  Always -1: the caller stops. */
static int client_fail(struct client *c, json_t *reply)
{
    ev_io_stop(c->ctl->loop, &c->rio);
    c->closing = true;
    c->in_len = c->in_scanned = 0;
    /* Closes the client when the reply is out (client_flush). */
    client_reply(c, reply);
    return -1;
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* Answers one line.  0, or -1 when the client is gone. */
static int client_request(struct client *c, const char *line, size_t len)
{
    struct control *ctl = c->ctl;
    json_error_t err;
    json_t *request, *reply;

    if (blank(line, len))
        return 0;
    if (!c->watching) {
        c->idle.repeat = ctl->idle_timeout;
        ev_timer_again(ctl->loop, &c->idle);
    }
    request = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (!request)
        reply = error_reply("not JSON: %s at column %d", err.text, err.column);
    else if (!json_is_object(request))
        reply = error_reply("a request is a JSON object, not %s",
                            json_is_array(request)    ? "an array"
                            : json_is_string(request) ? "a string"
                            : json_is_number(request) ? "a number"
                                                      : "true, false or null");
    else
        reply = ctl->handler(ctl->arg, request, &c->peer);
    json_decref(request);
    if (!reply)
        reply = error_reply("internal error: no reply");
    /* A watcher may be silent for hours: it is not idle, only listening. */
    if (json_is_true(json_object_get(reply, "ok")) &&
        json_is_true(json_object_get(reply, "watching")) && !c->watching) {
        c->watching = true;
        ctl->watchers++;
        ev_timer_stop(ctl->loop, &c->idle);
    }
    return client_reply(c, reply);
}

/*
 * Answers the first complete line in the input buffer and keeps the rest.
 * One request per client per loop turn: when more lines wait, nothing more
 * is read from this client and the next line is answered at the next turn,
 * after the other clients and the devices had theirs.
 * 0, or -1 when the client is gone or closing.
 */
static int client_input(struct client *c)
{
    struct ev_loop *loop = c->ctl->loop;
    char *nl = memchr(c->in + c->in_scanned, '\n', c->in_len - c->in_scanned);

    if (nl) {
        size_t end = (size_t)(nl - c->in);

        if (client_request(c, c->in, end) < 0)
            return -1;
        memmove(c->in, c->in + end + 1, c->in_len - end - 1);
        c->in_len -= end + 1;
        if (memchr(c->in, '\n', c->in_len)) {
            c->in_scanned = 0;
            ev_io_stop(loop, &c->rio);
            ev_timer_set(&c->more, 0., 0.);
            ev_timer_start(loop, &c->more);
            return 0;
        }
        if (!c->closing)
            ev_io_start(loop, &c->rio);
    }
    c->in_scanned = c->in_len;
    if (c->in_len > CONTROL_LINE_MAX) {
        log_warnx("control: pid %ld uid %u sent a request longer than %d bytes: closed",
                  (long)c->peer.pid, (unsigned)c->peer.uid, CONTROL_LINE_MAX);
        return client_fail(c, error_reply("request too long (limit %d bytes)",
                                          CONTROL_LINE_MAX));
    }
    return 0;
}

/* The client shut down its side: answer a last unterminated line, then close. */
static void client_eof(struct client *c)
{
    ev_io_stop(c->ctl->loop, &c->rio);
    c->closing = true;
    if (c->in_len > 0 && client_request(c, c->in, c->in_len) < 0)
        return;
    c->in_len = c->in_scanned = 0;
    if (!ev_is_active(&c->wio))
        client_flush(c);
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct client *c = w->data;
    /* One byte past the limit is enough to know a line is too long. */
    size_t want = CONTROL_LINE_MAX + 1 - c->in_len;
    ssize_t n;

    if (want > READ_CHUNK)
        want = READ_CHUNK;
    if (c->in_len + want > c->in_size) {
        size_t size = c->in_size ? c->in_size : 4096;
        char *p;

        while (size < c->in_len + want)
            size *= 2;
        if (size > CONTROL_LINE_MAX + 1)
            size = CONTROL_LINE_MAX + 1;
        p = realloc(c->in, size);
        if (!p) {
            log_error("control: out of memory for a request of pid %ld uid %u: dropped",
                      (long)c->peer.pid, (unsigned)c->peer.uid);
            client_close(c);
            return;
        }
        c->in = p;
        c->in_size = size;
    }
    n = recv(c->fd, c->in + c->in_len, want, MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        if (errno == ECONNRESET)
            log_debug("control: pid %ld uid %u reset the connection", (long)c->peer.pid,
                      (unsigned)c->peer.uid);
        else
            log_warn("control: cannot read from pid %ld uid %u", (long)c->peer.pid,
                     (unsigned)c->peer.uid);
        client_close(c);
        return;
    }
    if (n == 0) {
        client_eof(c);
        return;
    }
    c->in_len += (size_t)n;
    client_input(c);
}

static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    client_flush(w->data);
}

static void client_more_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    client_input(w->data);
}

static void client_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct client *c = w->data;

    log_notice("control: pid %ld uid %u sent no request for %g s: closed", (long)c->peer.pid,
               (unsigned)c->peer.uid, c->ctl->idle_timeout);
    client_close(c);
}

/* ------------------------------------------------------------- accepting */

/*
 * Whether the peer's groups (at connect() time, as SO_PEERCRED's ids) hold
 * group.  SO_PEERGROUPS asks the kernel, not /proc/<pid>, so a peer that
 * exits and leaves its pid to another process cannot lend it its groups.
 */
static bool peer_in_group(int fd, const struct control_peer *peer, gid_t group)
{
    gid_t small[64], *groups = small;
    socklen_t len = sizeof(small);
    bool found = false;

    if (peer->gid == group)
        return true;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
        if (errno != ERANGE)
            goto fail;
        /* len now says how much the kernel needs. */
        groups = malloc(len);
        if (!groups || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
            goto fail;
    }
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (groups[i] == group)
            found = true;
    if (groups != small)
        free(groups);
    return found;
fail:
    log_warn("control: cannot read the groups of pid %ld uid %u", (long)peer->pid,
             (unsigned)peer->uid);
    if (groups != small)
        free(groups);
    return false;
}

/* Writes one line to a socket we are about to close; best effort. */
static void send_last_line(int fd, json_t *reply)
{
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    char line[512];
    int n;

    json_decref(reply);
    if (!text)
        return;
    n = snprintf(line, sizeof(line), "%s\n", text);
    free(text);
    /* A fresh socket's buffer is empty: a short line never meets EAGAIN. */
    if (n > 0 && (size_t)n < sizeof(line))
        (void)send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void control_accept_one(struct control *ctl, int fd)
{
    struct control_peer peer;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct client *c;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        log_warn("control: cannot tell who connected (SO_PEERCRED): closed");
        close(fd);
        return;
    }
    peer = (struct control_peer){ .pid = cred.pid, .uid = cred.uid, .gid = cred.gid };
    if (!control_peer_is_root(&peer) &&
        (ctl->group == (gid_t)-1 || !peer_in_group(fd, &peer, ctl->group))) {
        if (ctl->group == (gid_t)-1)
            log_warnx("control: refused pid %ld uid %u gid %u: not root", (long)peer.pid,
                      (unsigned)peer.uid, (unsigned)peer.gid);
        else
            log_warnx("control: refused pid %ld uid %u gid %u: not root and not in group %u",
                      (long)peer.pid, (unsigned)peer.uid, (unsigned)peer.gid,
                      (unsigned)ctl->group);
        send_last_line(fd, error_reply("permission denied: uid %u is not allowed to control "
                                       "auto-usb-attach", (unsigned)peer.uid));
        close(fd);
        return;
    }
    if (ctl->n_clients >= CONTROL_MAX_CLIENTS) {
        log_warnx("control: refused pid %ld uid %u: too many clients (limit %d)",
                  (long)peer.pid, (unsigned)peer.uid, CONTROL_MAX_CLIENTS);
        send_last_line(fd, error_reply("too many clients (limit %d)", CONTROL_MAX_CLIENTS));
        close(fd);
        return;
    }
    /*
     * A member of the group cannot take every connection: root keeps
     * CONTROL_ROOT_SLOTS of them, and each other user CONTROL_MAX_PER_UID.
     */
    if (!control_peer_is_root(&peer)) {
        size_t mine = 0;

        for (const struct client *o = ctl->clients; o; o = o->next)
            mine += o->peer.uid == peer.uid;
        if (mine >= CONTROL_MAX_PER_UID ||
            ctl->n_clients >= CONTROL_MAX_CLIENTS - CONTROL_ROOT_SLOTS) {
            log_warnx("control: refused pid %ld uid %u: %s", (long)peer.pid,
                      (unsigned)peer.uid,
                      mine >= CONTROL_MAX_PER_UID ? "too many clients of this uid"
                                                  : "the last clients are kept for root");
            send_last_line(fd, mine >= CONTROL_MAX_PER_UID
                                   ? error_reply("too many clients of uid %u (limit %d)",
                                                 (unsigned)peer.uid, CONTROL_MAX_PER_UID)
                                   : error_reply("too many clients (the last %d are kept "
                                                 "for root)", CONTROL_ROOT_SLOTS));
            close(fd);
            return;
        }
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        log_error("control: out of memory for pid %ld uid %u: closed", (long)peer.pid,
                  (unsigned)peer.uid);
        close(fd);
        return;
    }
    c->ctl = ctl;
    c->fd = fd;
    c->peer = peer;
    ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
    ev_init(&c->idle, client_idle_cb);
    ev_init(&c->more, client_more_cb);
    c->rio.data = c->wio.data = c->idle.data = c->more.data = c;
    c->idle.repeat = ctl->idle_timeout;
    ev_io_start(ctl->loop, &c->rio);
    ev_timer_again(ctl->loop, &c->idle);
    c->next = ctl->clients;
    if (c->next)
        c->next->prev = c;
    ctl->clients = c;
    ctl->n_clients++;
    log_debug("control: pid %ld uid %u connected (%zu clients)", (long)peer.pid,
              (unsigned)peer.uid, ctl->n_clients);
}

static void control_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct control *ctl = w->data;

    for (int i = 0; i < ACCEPT_BURST; i++) {
        int fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            control_accept_one(ctl, fd);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return;
        case EINTR:
        case ECONNABORTED:
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            log_warn("control: cannot accept a client; not listening for %g s", ACCEPT_PAUSE);
            ev_io_stop(loop, &ctl->listen_io);
            /* A one-shot timer that fired keeps its expiry, not its delay. */
            ev_timer_set(&ctl->pause, ACCEPT_PAUSE, 0.);
            ev_timer_start(loop, &ctl->pause);
            return;
        default:
            log_warn("control: cannot accept a client");
            return;
        }
    }
}

static void control_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct control *ctl = w->data;

    ev_io_start(loop, &ctl->listen_io);
}

/* ------------------------------------------------------------- the path */

/*
 * Opens the socket's directory, created when it is missing (its parent must
 * exist), and checks it: root's, writable by no one else, not a symbolic
 * link.  Another user who could write there could swap the socket for a
 * link, and make the chown below land on a file of theirs.
 */
static int control_open_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir, why[512];
    int fd;

    if (!slash)
        dir = strdup(".");
    else
        dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!dir)
        return -ENOMEM;
    fd = trust_open_dir(dir, 0755, why, sizeof(why));
    if (fd < 0)
        log_error("control: socket directory %s: %s", dir, why);
    free(dir);
    return fd;
}

/*
 * Makes room for our socket: nothing there, or a socket nobody answers on
 * (a daemon that was killed), which is removed.  Anything else stays, and
 * we do not start: replacing a live daemon's socket would orphan it.
 */
static int control_clear_path(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    int fd, r;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        r = -errno;
        log_warn("control: cannot look at %s", path);
        return r;
    }
    if (!S_ISSOCK(st.st_mode)) {
        log_error("control: %s exists and is not a socket: not replacing it", path);
        return -EEXIST;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        log_warn("control: socket");
        return r;
    }
    /* Non-blocking: a live daemon with a full backlog answers EAGAIN. */
    r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
    close(fd);
    if (r == 0 || r == -EAGAIN || r == -EINPROGRESS) {
        log_error("control: another daemon answers on %s: not replacing it", path);
        return -EADDRINUSE;
    }
    if (r != -ECONNREFUSED) {
        errno = -r;
        log_warn("control: cannot tell whether %s is in use", path);
        return r;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        r = -errno;
        log_warn("control: cannot remove the stale socket %s", path);
        return r;
    }
    log_notice("control: removed the stale socket %s", path);
    return 0;
}

/*
 * Binds with the final mode from the first instant: no window where it is
 * 0777.  The group is set below the checked directory's descriptor, not
 * following a symbolic link (fchmod on a socket's descriptor would not reach
 * the file).
 */
static int control_bind(struct control *ctl, const struct sockaddr_un *sa, int dfd)
{
    const char *slash = strrchr(ctl->path, '/'), *base = slash ? slash + 1 : ctl->path;
    mode_t old = umask(ctl->group != (gid_t)-1 ? 0117 : 0177);
    struct stat st;
    int r;

    r = bind(ctl->fd, (const struct sockaddr *)sa, sizeof(*sa));
    umask(old);
    if (r < 0) {
        r = -errno;
        log_warn("control: cannot bind %s", ctl->path);
        return r;
    }
    if (ctl->group != (gid_t)-1 &&
        fchownat(dfd, base, (uid_t)-1, ctl->group, AT_SYMLINK_NOFOLLOW) < 0) {
        r = -errno;
        log_warn("control: cannot give %s to group %u", ctl->path, (unsigned)ctl->group);
        unlink(ctl->path);
        return r;
    }
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode)) {
        r = -errno;
        log_warn("control: stat %s", ctl->path);
        unlink(ctl->path);
        return r;
    }
    ctl->dev = st.st_dev;
    ctl->ino = st.st_ino;
    return 0;
}

/* ------------------------------------------------------------- interface */

bool control_peer_is_root(const struct control_peer *peer)
{
    /* Our own uid matters only for a daemon run unprivileged in development. */
    return peer->uid == 0 || peer->uid == geteuid();
}

struct control *control_new(struct ev_loop *loop, const char *path, gid_t group,
                            control_handler_fn handler, void *arg)
{
    struct sockaddr_un sa;
    struct control *ctl;
    int r, dfd = -1;

    if (socket_address(path, &sa) < 0) {
        log_error("control: socket path %s is too long (limit %zu bytes)", path,
                  sizeof(sa.sun_path) - 1);
        errno = ENAMETOOLONG;
        return NULL;
    }
    ctl = calloc(1, sizeof(*ctl));
    if (!ctl || !(ctl->path = strdup(path))) {
        log_error("control: out of memory");
        free(ctl);
        errno = ENOMEM;
        return NULL;
    }
    ctl->loop = loop;
    ctl->fd = -1;
    ctl->group = group;
    ctl->handler = handler;
    ctl->arg = arg;
    ctl->idle_timeout = CONTROL_IDLE_TIMEOUT;

    dfd = control_open_dir(path);
    r = dfd < 0 ? dfd : control_clear_path(path, &sa);
    if (r < 0)
        goto fail;
    ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl->fd < 0) {
        r = -errno;
        log_warn("control: socket");
        goto fail;
    }
    r = control_bind(ctl, &sa, dfd);
    close(dfd);
    dfd = -1;
    if (r < 0)
        goto fail;
    if (listen(ctl->fd, SOMAXCONN) < 0) {
        r = -errno;
        log_warn("control: cannot listen on %s", path);
        unlink(path);
        goto fail;
    }
    ev_io_init(&ctl->listen_io, control_accept_cb, ctl->fd, EV_READ);
    ev_init(&ctl->pause, control_pause_cb);
    ctl->listen_io.data = ctl->pause.data = ctl;
    ev_io_start(loop, &ctl->listen_io);
    if (group == (gid_t)-1)
        log_info("control: listening on %s (mode 0600)", path);
    else
        log_info("control: listening on %s (mode 0660, group %u)", path, (unsigned)group);
    return ctl;

fail:
    if (dfd >= 0)
        close(dfd);
    if (ctl->fd >= 0)
        close(ctl->fd);
    free(ctl->path);
    free(ctl);
    errno = -r;
    return NULL;
}

void control_free(struct control *ctl)
{
    struct stat st;

    if (!ctl)
        return;
    while (ctl->clients)
        client_close(ctl->clients);
    ev_io_stop(ctl->loop, &ctl->listen_io);
    ev_timer_stop(ctl->loop, &ctl->pause);
    close(ctl->fd);
    /* A daemon started after us may own the path by now. */
    if (stat(ctl->path, &st) == 0 && st.st_dev == ctl->dev && st.st_ino == ctl->ino &&
        unlink(ctl->path) < 0)
        log_warn("control: cannot remove %s", ctl->path);
    free(ctl->path);
    free(ctl);
}

void control_broadcast(struct control *ctl, json_t *event)
{
    struct client *c, *next;
    char *text, *safe;

    if (!ctl || ctl->watchers == 0 || !event) {
        json_decref(event);
        return;
    }
    text = json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(event);
    safe = text ? log_json_escape_breaks(text) : NULL;
    free(text);
    if (!safe) {
        log_error("control: out of memory for an event: the watchers miss it");
        return;
    }
    for (c = ctl->clients; c; c = next) {
        next = c->next;
        if (!c->watching || c->closing)
            continue;
        if (client_append(c, safe, strlen(safe)) < 0) {
            log_error("control: out of memory for the events of pid %ld uid %u: dropped",
                      (long)c->peer.pid, (unsigned)c->peer.uid);
            client_close(c);
            continue;
        }
        /* The daemon never waits for a watcher: what it does not read piles up, then it goes. */
        if (c->out_len - c->out_off > CONTROL_WATCH_MAX) {
            log_warnx("control: watcher pid %ld uid %u does not read its events (%zu bytes "
                      "waiting): dropped", (long)c->peer.pid, (unsigned)c->peer.uid,
                      c->out_len - c->out_off);
            client_close(c);
            continue;
        }
        if (!ev_is_active(&c->wio))
            client_flush(c);
    }
    free(safe);
}

size_t control_watchers(const struct control *ctl)
{
    return ctl ? ctl->watchers : 0;
}

size_t control_clients(const struct control *ctl)
{
    return ctl->n_clients;
}

void control_set_idle_timeout(struct control *ctl, double seconds)
{
    ctl->idle_timeout = seconds;
}

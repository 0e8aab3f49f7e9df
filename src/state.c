/*
 * The state file: JSON, written to a temporary file, synced and renamed over
 * the old one, so that a daemon killed at any moment leaves either the old
 * record or the new one, never half of one.
 *
 * The lock-out guard believes what the file says, so only root may have
 * written it: the directory is opened with O_NOFOLLOW and checked (root's,
 * writable by no one else) before each use, and the files in it are opened
 * below that descriptor, the record with O_NOFOLLOW|O_NONBLOCK (a FIFO put
 * there does not hang the start), and must be a regular file of sane size.
 */
#include "config.h"

#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "trust.h"

/* Far more than a record of every USB device a host can have. */
#define STATE_MAX_BYTES (4 * 1024 * 1024)

/* The directory, created 0700 when missing; a negative errno, logged. */
static int open_dir(struct state *state)
{
    char why[512];
    int fd = trust_open_dir(state->dir, 0700, why, sizeof(why));

    if (fd < 0 && !state->failing)
        log_error("state directory %s: %s", state->dir, why);
    return fd;
}

struct state *state_new(const char *dir)
{
    struct state *state = calloc(1, sizeof(*state));
    int fd;

    if (!state)
        return NULL;
    state->dir = strdup(dir);
    if (!state->dir) {
        free(state);
        return NULL;
    }
    fd = open_dir(state);
    if (fd < 0) {
        state_free(state);
        errno = -fd;
        return NULL;
    }
    close(fd);
    return state;
}

void state_free(struct state *state)
{
    if (!state)
        return;
    free(state->dir);
    free(state);
}

static json_t *record_json(const struct state_record *r)
{
    char *serial = log_utf8(r->serial);
    json_t *o;

    if (!serial)
        return NULL;
    o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:s}", "domain", r->domain,
                  "domid", r->domid, "controller", r->ctrl, "port", r->port, "busnum",
                  (int)r->busnum, "devnum", (int)r->devnum, "busid", r->busid, "id", r->id,
                  "serial", serial);
    free(serial);
    return o;
}

/* A manual decision: the device (as plugged now) and its guest, null for dom0. */
static json_t *override_json(const struct state_record *r)
{
    char *serial = log_utf8(r->serial);
    json_t *o;

    if (!serial)
        return NULL;
    o = json_pack("{s:o, s:i, s:i, s:s, s:s, s:s}", "domain",
                  r->domain[0] ? json_string(r->domain) : json_null(), "busnum",
                  (int)r->busnum, "devnum", (int)r->devnum, "busid", r->busid, "id", r->id,
                  "serial", serial);
    free(serial);
    return o;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

#define TMP_FILE "." STATE_FILE ".tmp"

static int write_file(struct state *state, const char *text)
{
    int fd, r, dfd;

    dfd = open_dir(state);
    if (dfd < 0)
        return dfd;
    fd = openat(dfd, TMP_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        r = -errno;
        close(dfd);
        return r;
    }
    r = write_all(fd, text, strlen(text));
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && renameat(dfd, TMP_FILE, dfd, STATE_FILE) < 0)
        r = -errno;
    if (r < 0) {
        unlinkat(dfd, TMP_FILE, 0);
        close(dfd);
        return r;
    }
    /* The rename itself must reach the disk too. */
    fsync(dfd);
    close(dfd);
    return 0;
}

int state_write(struct state *state, const struct state_record *records, size_t n)
{
    json_t *list = json_array(), *manual = json_array(), *root;
    char *text;
    int r;

    if (!list || !manual) {
        json_decref(list);
        json_decref(manual);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = records[i].manual ? override_json(&records[i]) : record_json(&records[i]);

        if (!o || json_array_append_new(records[i].manual ? manual : list, o) < 0) {
            json_decref(list);
            json_decref(manual);
            return -ENOMEM;
        }
    }
    root = json_pack("{s:i, s:o, s:o}", "version", 1, "attachments", list, "overrides",
                     manual);
    if (!root)
        return -ENOMEM;
    text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return -ENOMEM;
    r = write_file(state, text);
    free(text);
    if (r < 0 && !state->failing)
        log_error("%s/%s: cannot record what is attached: %s (the guests are not affected; "
                  "a restarted daemon will find out from xenstore)",
                  state->dir, STATE_FILE, strerror(-r));
    else if (r == 0 && state->failing)
        log_notice("%s/%s: recorded again", state->dir, STATE_FILE);
    state->failing = r < 0;
    return r;
}

static bool copy_str(json_t *o, const char *key, char *out, size_t len, bool optional)
{
    json_t *v = json_object_get(o, key);

    if (optional && (!v || json_is_null(v))) {
        out[0] = '\0';
        return true;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) >= len)
        return false;
    strcpy(out, json_string_value(v));
    return true;
}

static bool copy_int(json_t *o, const char *key, int min, int max, int *out)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return false;
    *out = (int)json_integer_value(v);
    return true;
}

static int parse(json_t *root, struct state_record **records, size_t *n, const char **why)
{
    json_t *list = json_object_get(root, "attachments"), *manual, *o;
    struct state_record *recs, *more;
    size_t i;

    if (!json_is_object(root) || !json_is_integer(json_object_get(root, "version")) ||
        json_integer_value(json_object_get(root, "version")) != 1) {
        *why = "not a version 1 state file";
        return -EINVAL;
    }
    if (!json_is_array(list)) {
        *why = "no list of attachments";
        return -EINVAL;
    }
    recs = calloc(json_array_size(list) + 1, sizeof(*recs));
    if (!recs)
        return -ENOMEM;
    json_array_foreach(list, i, o) {
        struct state_record *r = &recs[i];
        int bus, dev;

        if (!copy_str(o, "domain", r->domain, sizeof(r->domain), false) ||
            !copy_int(o, "domid", 0, 0x7fff, &r->domid) ||
            !copy_int(o, "controller", 0, 1023, &r->ctrl) ||
            !copy_int(o, "port", 1, 16, &r->port) || !copy_int(o, "busnum", 1, 999, &bus) ||
            !copy_int(o, "devnum", 1, 999, &dev) ||
            !copy_str(o, "busid", r->busid, sizeof(r->busid), false) ||
            !copy_str(o, "id", r->id, sizeof(r->id), false) ||
            !copy_str(o, "serial", r->serial, sizeof(r->serial), true)) {
            free(recs);
            *why = "an attachment with missing or wrong fields";
            return -EINVAL;
        }
        r->busnum = (unsigned)bus;
        r->devnum = (unsigned)dev;
    }
    *n = json_array_size(list);
    /* Written since overrides are kept: a file without them has none. */
    manual = json_object_get(root, "overrides");
    if (manual && !json_is_array(manual)) {
        free(recs);
        *why = "overrides that are not a list";
        return -EINVAL;
    }
    more = realloc(recs, (*n + json_array_size(manual) + 1) * sizeof(*recs));
    if (!more) {
        free(recs);
        return -ENOMEM;
    }
    recs = more;
    json_array_foreach(manual, i, o) {
        struct state_record *r = &recs[*n + i];
        json_t *dom = json_object_get(o, "domain");
        int bus, dev;

        memset(r, 0, sizeof(*r));
        r->manual = true;
        if (!(json_is_null(dom) || copy_str(o, "domain", r->domain, sizeof(r->domain),
                                            false)) ||
            !copy_int(o, "busnum", 1, 999, &bus) || !copy_int(o, "devnum", 1, 999, &dev) ||
            !copy_str(o, "busid", r->busid, sizeof(r->busid), false) ||
            !copy_str(o, "id", r->id, sizeof(r->id), false) ||
            !copy_str(o, "serial", r->serial, sizeof(r->serial), true)) {
            free(recs);
            *why = "an override with missing or wrong fields";
            return -EINVAL;
        }
        r->busnum = (unsigned)bus;
        r->devnum = (unsigned)dev;
    }
    *n += json_array_size(manual);
    *records = recs;
    return 0;
}

/*
 * The record's bytes into *buf (NUL-terminated, free it), or NULL when
 * there is none; what is not a sane record is logged and read as none.
 */
static int read_file(struct state *state, const char *path, char **buf, size_t *len)
{
    struct stat st = { 0 };
    ssize_t got;
    int dfd, fd, r;

    *buf = NULL;
    *len = 0;
    dfd = open_dir(state);
    if (dfd < 0)
        return dfd;
    fd = openat(dfd, STATE_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    r = -errno;
    close(dfd);
    if (fd < 0) {
        if (r != -ENOENT)
            log_warnx("%s: ignored: %s", path,
                      r == -ELOOP ? "a symbolic link" : strerror(-r));
        return 0;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > STATE_MAX_BYTES) {
        log_warnx("%s: ignored: %s", path,
                  !S_ISREG(st.st_mode) ? "not a regular file" : "larger than any record");
        close(fd);
        return 0;
    }
    *buf = malloc((size_t)st.st_size + 1);
    if (!*buf) {
        close(fd);
        return -ENOMEM;
    }
    /* One byte more than the size: a file that grows meanwhile is refused. */
    do
        got = pread(fd, *buf + *len, (size_t)st.st_size + 1 - *len, (off_t)*len);
    while ((got > 0 && (*len += (size_t)got) <= (size_t)st.st_size) ||
           (got < 0 && errno == EINTR));
    close(fd);
    if (got != 0) {
        log_warnx("%s: ignored: %s", path, got < 0 ? strerror(errno) : "it changed while read");
        free(*buf);
        *buf = NULL;
        *len = 0;
        return 0;
    }
    (*buf)[*len] = '\0';
    return 0;
}

int state_read(struct state *state, struct state_record **records, size_t *n)
{
    char path[4096], *buf;
    size_t len;
    json_error_t err;
    json_t *root;
    const char *why = NULL;
    int r;

    *records = NULL;
    *n = 0;
    snprintf(path, sizeof(path), "%s/%s", state->dir, STATE_FILE);
    r = read_file(state, path, &buf, &len);
    if (r < 0 || !buf)
        return r == -ENOMEM ? r : 0;
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    free(buf);
    if (!root) {
        log_warnx("%s: corrupt, ignored: %s (line %d, column %d)", path, err.text, err.line,
                  err.column);
        return 0;
    }
    r = parse(root, records, n, &why);
    json_decref(root);
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        log_warnx("%s: corrupt, ignored: %s", path, why);
    return 0;
}

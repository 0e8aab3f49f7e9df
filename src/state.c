/*
 * The state file: JSON, written to a temporary file, synced and renamed over
 * the old one, so that a daemon killed at any moment leaves either the old
 * record or the new one, never half of one.
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

struct state *state_new(const char *dir)
{
    struct state *state = calloc(1, sizeof(*state));

    if (!state)
        return NULL;
    state->dir = strdup(dir);
    if (!state->dir) {
        free(state);
        return NULL;
    }
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

static int write_file(struct state *state, const char *text)
{
    char tmp[4096], path[4096];
    int fd, r, dfd;

    snprintf(path, sizeof(path), "%s/%s", state->dir, STATE_FILE);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", state->dir, STATE_FILE);
    if (mkdir(state->dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    r = write_all(fd, text, strlen(text));
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    /* The rename itself must reach the disk too. */
    dfd = open(state->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int state_write(struct state *state, const struct state_record *records, size_t n)
{
    json_t *list = json_array(), *root;
    char *text;
    int r;

    if (!list)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *o = record_json(&records[i]);

        if (!o || json_array_append_new(list, o) < 0) {
            json_decref(list);
            return -ENOMEM;
        }
    }
    root = json_pack("{s:i, s:o}", "version", 1, "attachments", list);
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
    json_t *list = json_object_get(root, "attachments"), *o;
    struct state_record *recs;
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
    *records = recs;
    *n = json_array_size(list);
    return 0;
}

int state_read(struct state *state, struct state_record **records, size_t *n)
{
    char path[4096];
    json_error_t err;
    json_t *root;
    const char *why = NULL;
    int r;

    *records = NULL;
    *n = 0;
    snprintf(path, sizeof(path), "%s/%s", state->dir, STATE_FILE);
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        if (access(path, F_OK) < 0 && errno == ENOENT)
            return 0;
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

/*
 * The QMP reader and writer (see qmp.h).  Everything that comes from the
 * socket is untrusted: a line is bounded before it is kept, parsed by
 * jansson (which bounds nesting), and its shape checked before anyone
 * looks inside it.
 */
#include "config.h"

#include "qmp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void qmp_reader_init(struct qmp_reader *r, size_t max_line)
{
    memset(r, 0, sizeof(*r));
    r->max_line = max_line ? max_line : QMP_MAX_LINE;
}

void qmp_reader_clear(struct qmp_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

static int keep(struct qmp_reader *r, const char *p, size_t n)
{
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        char *buf;

        while (cap < r->len + n)
            cap *= 2;
        buf = realloc(r->buf, cap);
        if (!buf)
            return -ENOMEM;
        r->buf = buf;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return 0;
}

static int parse_line(const char *line, size_t n, qmp_msg_fn on_msg, void *arg)
{
    json_error_t error;
    json_t *msg;
    size_t i;
    int r;

    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    for (i = 0; i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'); i++)
        ;
    if (i == n)
        return 0;       /* an empty line is no message */
    msg = json_loadb(line + i, n - i, JSON_REJECT_DUPLICATES, &error);
    if (!msg)
        return -EPROTO;
    if (!json_is_object(msg)) {
        json_decref(msg);
        return -EPROTO;
    }
    r = on_msg(arg, msg);
    json_decref(msg);
    return r;
}

int qmp_reader_feed(struct qmp_reader *r, const char *buf, size_t len, qmp_msg_fn on_msg,
                    void *arg)
{
    while (len) {
        const char *nl = memchr(buf, '\n', len);
        size_t n = nl ? (size_t)(nl - buf) : len;
        int err;

        /* Bounded before it is copied, so a flood never grows the buffer. */
        if (r->len + n > r->max_line)
            return -EMSGSIZE;
        if (!nl)
            return keep(r, buf, n);
        if (r->len) {
            err = keep(r, buf, n);
            if (err == 0)
                err = parse_line(r->buf, r->len, on_msg, arg);
            r->len = 0;
        } else {
            err = parse_line(buf, n, on_msg, arg);
        }
        if (err < 0)
            return err;
        buf += n + 1;
        len -= n + 1;
    }
    return 0;
}

int qmp_msg_parse(json_t *msg, struct qmp_msg *out)
{
    json_t *id, *v;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(msg))
        return -EPROTO;
    id = json_object_get(msg, "id");
    if (id && json_is_integer(id)) {
        out->has_id = true;
        out->id = (long long)json_integer_value(id);
    }
    if (json_object_get(msg, "QMP")) {
        if (!json_is_object(json_object_get(msg, "QMP")))
            return -EPROTO;
        out->kind = QMP_GREETING;
        return 0;
    }
    if ((v = json_object_get(msg, "return"))) {
        out->kind = QMP_RETURN;
        out->ret = v;
        return 0;
    }
    if ((v = json_object_get(msg, "error"))) {
        json_t *cls = json_object_get(v, "class"), *desc = json_object_get(v, "desc");

        if (!json_is_object(v) || !json_is_string(desc) || (cls && !json_is_string(cls)))
            return -EPROTO;
        out->kind = QMP_ERROR;
        out->err_class = cls ? json_string_value(cls) : "GenericError";
        out->err_desc = json_string_value(desc);
        return 0;
    }
    if ((v = json_object_get(msg, "event"))) {
        json_t *data = json_object_get(msg, "data");

        if (!json_is_string(v) || (data && !json_is_object(data)))
            return -EPROTO;
        out->kind = QMP_EVENT;
        out->event = json_string_value(v);
        out->data = data;
        return 0;
    }
    return -EPROTO;
}

char *qmp_command_line(const char *execute, json_t *args, long long id, size_t *len)
{
    json_t *cmd = json_object();
    char *s, *line = NULL;
    size_t n;

    if (!cmd)
        return NULL;
    if (json_object_set_new(cmd, "execute", json_string(execute)) < 0 ||
        (args && json_object_set(cmd, "arguments", args) < 0) ||
        json_object_set_new(cmd, "id", json_integer(id)) < 0) {
        json_decref(cmd);
        return NULL;
    }
    s = json_dumps(cmd, JSON_COMPACT);
    json_decref(cmd);
    if (!s)
        return NULL;
    n = strlen(s);
    line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    if (len)
        *len = n + 1;
    return line;
}

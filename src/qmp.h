/*
 * The QMP wire protocol, without any I/O: a reader that turns the bytes a
 * QEMU monitor sends into JSON messages, the shape check of one message,
 * and the line of one command.  Pure functions, so that unit tests and
 * fuzzers drive them directly; hv-qmp.c owns the sockets.
 */
#ifndef AUA_QMP_H
#define AUA_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A message longer than this is taken as hostile: the connection goes. */
#define QMP_MAX_LINE (1024 * 1024)

/*
 * Bytes of a line not complete yet.  QEMU ends every message with "\r\n"
 * and never breaks a line inside one, so a message is one line.
 */
struct qmp_reader {
    char *buf;
    size_t len;
    size_t cap;
    size_t max_line;
};

/* Called for each message (a JSON object, borrowed): 0 to go on, or a negative errno to stop. */
typedef int (*qmp_msg_fn)(void *arg, json_t *msg);

/* max_line 0 means QMP_MAX_LINE. */
void qmp_reader_init(struct qmp_reader *r, size_t max_line);
/* Frees what is buffered; the reader can be fed again (a new connection). */
void qmp_reader_clear(struct qmp_reader *r);
/*
 * Feeds len bytes (any split: part of a line, several lines).  Returns 0,
 * -EPROTO for a line that is not a JSON object, -EMSGSIZE for a line over
 * the limit, -ENOMEM, or what on_msg returned.  After an error the reader
 * must be cleared before it is fed again.
 */
int qmp_reader_feed(struct qmp_reader *r, const char *buf, size_t len, qmp_msg_fn on_msg,
                    void *arg);

enum qmp_kind {
    QMP_GREETING,
    QMP_RETURN,
    QMP_ERROR,
    QMP_EVENT,
};

/* One message taken apart; the pointers borrow from the message. */
struct qmp_msg {
    enum qmp_kind kind;
    bool has_id;
    long long id;           /* only integer ids are ours */
    json_t *ret;            /* QMP_RETURN */
    const char *err_class;  /* QMP_ERROR */
    const char *err_desc;
    const char *event;      /* QMP_EVENT */
    json_t *data;           /* QMP_EVENT; NULL when absent */
};

/* 0, or -EPROTO when msg is none of the four kinds or has wrong types. */
int qmp_msg_parse(json_t *msg, struct qmp_msg *out);

/*
 * The line of a command ("...\n"), with args (borrowed, may be NULL).
 * Returns a string the caller frees, or NULL on ENOMEM.
 */
char *qmp_command_line(const char *execute, json_t *args, long long id, size_t *len);

#endif

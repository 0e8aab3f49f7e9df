/*
 * libFuzzer harness of the QMP reader (src/qmp.c, qmp.h): the input is what
 * a device model (QEMU, a guest's stub domain: not trusted) writes on its
 * monitor socket.  The first byte picks how the stream is split into
 * reads, so that lines cut anywhere are tried; every message that comes
 * out is taken apart by qmp_msg_parse().
 *
 * Checked: the same bytes give the same messages whatever the split (the
 * count, and the first error); the reader's buffer never holds more than
 * the line limit; each message handed over is an object; a parsed message's
 * pointers are set as its kind says.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qmp.h"

#define FUZZ_NAME "fuzz-qmp"
#include "fuzz.h"

/* Small, so that the line limit is reached by inputs of a few KB. */
#define MAX_LINE 512

struct seen {
    unsigned n;
};

static int on_msg(void *arg, json_t *msg)
{
    struct seen *seen = arg;
    struct qmp_msg m;

    CHECK(json_is_object(msg), "a message that is not an object was handed over");
    seen->n++;
    if (qmp_msg_parse(msg, &m) == 0) {
        switch (m.kind) {
        case QMP_RETURN:
            CHECK(m.ret, "a return without its value");
            break;
        case QMP_ERROR:
            CHECK(m.err_class && m.err_desc, "an error without class or desc");
            break;
        case QMP_EVENT:
            CHECK(m.event, "an event without its name");
            break;
        case QMP_GREETING:
            break;
        default:
            CHECK(0, "kind %d", (int)m.kind);
        }
    }
    return 0;
}

/* Feeds data in pieces of `chunk` bytes (0: all at once); the first error ends it. */
static int feed(const char *data, size_t size, size_t chunk, struct seen *seen)
{
    struct qmp_reader r;
    int err = 0;

    qmp_reader_init(&r, MAX_LINE);
    for (size_t off = 0; off < size && !err;) {
        size_t n = chunk && chunk < size - off ? chunk : size - off;
        /* An exact copy of the piece: a read past its end is an ASan report. */
        char *piece = malloc(n);

        if (!piece)
            break;
        memcpy(piece, data + off, n);
        err = qmp_reader_feed(&r, piece, n, on_msg, seen);
        free(piece);
        CHECK(r.len <= MAX_LINE + 1, "the reader holds %zu bytes, the limit is %d", r.len,
              MAX_LINE);
        CHECK(err == 0 || err == -EPROTO || err == -EMSGSIZE || err == -ENOMEM,
              "qmp_reader_feed returned %d", err);
        off += n;
    }
    qmp_reader_clear(&r);
    return err;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_init("fuzz-qmp", LOG_LEVEL_ERROR, true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen whole = { 0 }, split = { 0 };
    int e1, e2;

    if (size == 0)
        return 0;
    e1 = feed((const char *)data + 1, size - 1, 0, &whole);
    e2 = feed((const char *)data + 1, size - 1, data[0] % 17 + 1, &split);
    CHECK(e1 == e2, "all at once: error %d; in pieces of %d: error %d", e1, data[0] % 17 + 1,
          e2);
    CHECK(whole.n == split.n, "all at once: %u messages; in pieces of %d: %u", whole.n,
          data[0] % 17 + 1, split.n);
    return 0;
}

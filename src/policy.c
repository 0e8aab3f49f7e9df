/*
 * The policy file: YAML -> struct policy.
 *
 * libyaml's event parser builds a small tree of nodes that remember their
 * line and column; the tree is then checked key by key.  The rules, which
 * make almost all of a large file, are checked one by one as they are
 * parsed, each from a tree of its own in a scratch arena, and their domain
 * names resolved at the end, so that a 10,000-rule file never stands as one
 * tree in memory.  Checking goes on after a semantic error so that one run
 * reports every mistake of a file, in file order; only a YAML syntax error
 * stops it, and is then the one message.  The structure that comes out is
 * never changed again: a reload builds a new one and swaps it in.  Drop-ins
 * (policy-files.c says which) are read into it after the main file, before
 * it is finished: their rules are appended, each rule and domain keeps the
 * file it came from, and the main file's defaults apply to them all.
 */
#include "config.h"

#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "bounds.h"
#include "log.h"
#include "match.h"
#include "trust.h"

/* xHCI: the one controller type that takes devices of every speed. */
const struct controller_spec policy_default_controller = {
    .version = 3,
    .ports = 8,
    .max = 4,
};

/* ---- diagnostics ---- */

void policy_diag_free(struct policy_diag *diag)
{
    for (size_t i = 0; i < diag->n; i++)
        free(diag->msgs[i]);
    free(diag->msgs);
    free(diag->pos);
    memset(diag, 0, sizeof(*diag));
}

/*
 * Adds a message at pos (line << 24 | column) to the messages of one file,
 * diag's from first on.  Past POLICY_MAX_ERRORS the messages that come first
 * in the file are kept, whatever order the checks found them in: the latest
 * one in the file makes room, or the new one is dropped.
 */
static void diag_insert(struct policy_diag *diag, size_t first, unsigned long pos, char *full)
{
    if (diag->n >= POLICY_MAX_ERRORS) {
        size_t last = first;

        diag->truncated = true;
        if (first >= diag->n) {
            free(full);
            return;
        }
        for (size_t i = first + 1; i < diag->n; i++)
            if (diag->pos[i] >= diag->pos[last])
                last = i;
        if (pos >= diag->pos[last]) {
            free(full);
            return;
        }
        free(diag->msgs[last]);
        memmove(&diag->msgs[last], &diag->msgs[last + 1],
                (diag->n - last - 1) * sizeof(*diag->msgs));
        memmove(&diag->pos[last], &diag->pos[last + 1],
                (diag->n - last - 1) * sizeof(*diag->pos));
        diag->n--;
    }
    if (diag->n == diag->cap) {
        size_t cap = diag->cap ? diag->cap * 2 : 8;
        char **msgs = realloc(diag->msgs, cap * sizeof(*msgs));
        unsigned long *newpos;

        if (!msgs) {
            free(full);
            return;
        }
        diag->msgs = msgs;
        newpos = realloc(diag->pos, cap * sizeof(*newpos));
        if (!newpos) {
            free(full);
            return;
        }
        diag->pos = newpos;
        diag->cap = cap;
    }
    diag->pos[diag->n] = pos;
    diag->msgs[diag->n++] = full;
}

/* Moves every message of from into to, whose messages of the file start at first. */
static void diag_move(struct policy_diag *to, size_t first, struct policy_diag *from)
{
    for (size_t i = 0; i < from->n; i++)
        diag_insert(to, first, from->pos[i], from->msgs[i]);
    to->truncated |= from->truncated;
    free(from->msgs);
    free(from->pos);
    memset(from, 0, sizeof(*from));
}

/*
 * Puts the messages from first on in file order (the checks run section by
 * section); a stable insertion sort keeps messages at one place in order.
 */
static void diag_sort(struct policy_diag *diag, size_t first)
{
    for (size_t i = first + 1; i < diag->n; i++) {
        unsigned long pos = diag->pos[i];
        char *msg = diag->msgs[i];
        size_t j = i;

        for (; j > first && diag->pos[j - 1] > pos; j--) {
            diag->pos[j] = diag->pos[j - 1];
            diag->msgs[j] = diag->msgs[j - 1];
        }
        diag->pos[j] = pos;
        diag->msgs[j] = msg;
    }
}

/* ---- the node tree ---- */

enum node_type {
    NODE_SCALAR,
    NODE_MAP,
    NODE_SEQ,
};

struct node {
    enum node_type type;
    unsigned line;
    unsigned column;
    bool plain;             /* an unquoted scalar */
    char *value;            /* scalars */
    struct node **items;    /* maps: key, value, key, value...; sequences */
    size_t n;
};

/*
 * Nodes, their values and their item arrays live in an arena freed in one
 * go: a 10,000-rule policy makes some 200,000 of them, and one malloc and
 * free each was a third of the load time.
 */
struct arena_chunk {
    struct arena_chunk *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

#define ARENA_CHUNK (64 * 1024)

static void *arena_alloc(struct arena_chunk **arena, size_t n)
{
    struct arena_chunk *c = *arena;
    size_t need = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    void *p;

    if (!c || c->cap - c->used < need) {
        size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;

        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = *arena;
        *arena = c;
    }
    p = (char *)c->data + c->used;
    c->used += need;
    return p;
}

static void arena_free(struct arena_chunk *arena)
{
    while (arena) {
        struct arena_chunk *next = arena->next;

        free(arena);
        arena = next;
    }
}

/* Empties an arena for reuse, keeping its newest chunk. */
static void arena_reset(struct arena_chunk **arena)
{
    if (!*arena)
        return;
    arena_free((*arena)->next);
    (*arena)->next = NULL;
    (*arena)->used = 0;
}

static int node_push(struct arena_chunk **arena, struct node *parent, struct node *child)
{
    if ((parent->n & (parent->n - 1)) == 0) {
        size_t cap = parent->n ? parent->n * 2 : 2;
        struct node **items = arena_alloc(arena, cap * sizeof(*items));

        if (!items)
            return -ENOMEM;
        if (parent->n)
            memcpy(items, parent->items, parent->n * sizeof(*items));
        parent->items = items;
    }
    parent->items[parent->n++] = child;
    return 0;
}

/* A rule's 'domain:', resolved once the whole file has been read. */
struct domain_ref {
    const char *name;
    unsigned line;
    unsigned column;
    unsigned rule;          /* 1-based index in policy->rules; 0: the rule was not added */
};

struct parse {
    const char *file;
    struct policy_diag *diag;
    size_t first;           /* the first message of this file in diag */
    yaml_parser_t parser;
    unsigned errors;        /* errors found so far by this parse */
    const char *buf;        /* the text, for positions libyaml gives as offsets */
    size_t len;
    struct arena_chunk *arena;  /* the node tree */
    /*
     * The rules are read one by one while the file is parsed: each rule's
     * nodes live in scratch, emptied after it, so that a large policy never
     * holds a tree of the whole file.  Their messages wait in rule_diag
     * until the file has parsed (a syntax error reports itself alone).
     */
    struct policy *policy;
    struct arena_chunk *scratch;
    struct policy_diag rule_diag;
    bool rules_key_seen;    /* a top-level 'rules' key: only the first one is streamed */
    struct domain_ref *refs;
    size_t n_refs;
    size_t cap_refs;
    signed char *lockout;   /* per rule: its allow-dom0-lockout, -1 when not given */
    size_t cap_lockout;
    int dflt_lockout;       /* the defaults' allow-dom0-lockout, -1 when not given */
    bool dropin;            /* a drop-in: appended to a policy read before */
    unsigned first_rule;    /* the index of this file's first rule in policy->rules */
};

/* Line and column (1-based) of a byte offset into the text. */
static void offset_position(const struct parse *ps, size_t offset, unsigned *line,
                            unsigned *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && i < ps->len; i++) {
        if (ps->buf[i] == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

static void perr(struct parse *ps, unsigned line, unsigned column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void perr(struct parse *ps, unsigned line, unsigned column, const char *fmt, ...)
{
    char msg[512];
    char *full;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ps->errors++;
    if (asprintf(&full, "%s:%u:%u: %s", ps->file, line, column, msg) >= 0)
        diag_insert(ps->diag, ps->diag == &ps->rule_diag ? 0 : ps->first,
                    (unsigned long)line << 24 | (column & 0xffffff), full);
}

static void perr_node(struct parse *ps, const struct node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr_node(struct parse *ps, const struct node *node, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    perr(ps, node->line, node->column, "%s", msg);
}

static bool next_event(struct parse *ps, yaml_event_t *ev)
{
    unsigned line, column;

    if (yaml_parser_parse(&ps->parser, ev))
        return true;
    /* A reader error (bad UTF-8, a control character) has an offset, no mark. */
    if (ps->parser.error == YAML_READER_ERROR) {
        offset_position(ps, ps->parser.problem_offset, &line, &column);
    } else {
        line = (unsigned)ps->parser.problem_mark.line + 1;
        column = (unsigned)ps->parser.problem_mark.column + 1;
    }
    perr(ps, line, column, "YAML syntax error: %s%s%s",
         ps->parser.problem ? ps->parser.problem : "unknown error",
         ps->parser.context ? " " : "", ps->parser.context ? ps->parser.context : "");
    return false;
}

static struct node *stream_rules(struct parse *ps, yaml_event_t *ev, unsigned depth);
static void read_rule(struct parse *ps, struct policy *policy, const struct node *node);

/*
 * Builds the node that starts with ev (already read) in arena.  Returns NULL
 * after an error has been reported; the parse cannot go on then.
 */
/* A node at ev's position, all else zero; NULL (reported) when out of memory. */
static struct node *new_node(struct parse *ps, struct arena_chunk **arena,
                             const yaml_event_t *ev)
{
    struct node *node = arena_alloc(arena, sizeof(*node));

    if (!node) {
        perr(ps, 1, 1, "out of memory");
        return NULL;
    }
    memset(node, 0, sizeof(*node));
    node->line = (unsigned)ev->start_mark.line + 1;
    node->column = (unsigned)ev->start_mark.column + 1;
    return node;
}

static struct node *build_node(struct parse *ps, yaml_event_t *ev, unsigned depth,
                               struct arena_chunk **arena)
{
    struct node *node = new_node(ps, arena, ev);
    yaml_event_type_t end;
    bool rules_next = false;

    if (!node)
        return NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        node->type = NODE_SCALAR;
        node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        node->value = arena_alloc(arena, ev->data.scalar.length + 1);
        if (!node->value) {
            perr(ps, node->line, node->column, "out of memory");
            goto fail;
        }
        memcpy(node->value, ev->data.scalar.value, ev->data.scalar.length);
        node->value[ev->data.scalar.length] = '\0';
        /* The text has no NUL (check_text): only an escape can make one. */
        if (ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE &&
            memchr(node->value, '\0', ev->data.scalar.length)) {
            perr_node(ps, node, "a NUL character is not allowed in a value");
            goto fail;
        }
        return node;
    case YAML_ALIAS_EVENT:
        perr_node(ps, node, "YAML aliases (*name) are not supported in a policy");
        goto fail;
    case YAML_MAPPING_START_EVENT:
        node->type = NODE_MAP;
        end = YAML_MAPPING_END_EVENT;
        break;
    case YAML_SEQUENCE_START_EVENT:
        node->type = NODE_SEQ;
        end = YAML_SEQUENCE_END_EVENT;
        break;
    default:
        perr_node(ps, node, "unexpected YAML event");
        goto fail;
    }
    if (depth >= POLICY_MAX_DEPTH) {
        perr_node(ps, node, "nesting is too deep (more than %d levels)", POLICY_MAX_DEPTH);
        goto fail;
    }
    for (;;) {
        yaml_event_t child_ev;
        struct node *child;

        if (!next_event(ps, &child_ev))
            goto fail;
        if (child_ev.type == end) {
            yaml_event_delete(&child_ev);
            return node;
        }
        if (rules_next)
            child = stream_rules(ps, &child_ev, depth + 1);
        else
            child = build_node(ps, &child_ev, depth + 1, arena);
        yaml_event_delete(&child_ev);
        if (!child)
            goto fail;
        if (node_push(arena, node, child) < 0) {
            perr(ps, node->line, node->column, "out of memory");
            goto fail;
        }
        /* The value of the policy's first 'rules' key is read rule by rule. */
        rules_next = depth == 0 && node->type == NODE_MAP && (node->n & 1) && ps->policy &&
                     child->type == NODE_SCALAR && strcmp(child->value, "rules") == 0 &&
                     !ps->rules_key_seen;
        if (rules_next)
            ps->rules_key_seen = true;
    }
fail:
    return NULL;    /* the arena goes with the parse */
}

/*
 * The value of the policy's 'rules' key, starting with ev.  A list is read
 * item by item as it is parsed (read_rule), and stands in the tree as an
 * empty list; anything else is built as it is, for read_policy to report.
 */
static struct node *stream_rules(struct parse *ps, yaml_event_t *ev, unsigned depth)
{
    struct node *list;
    struct policy_diag *diag = ps->diag;

    if (ev->type != YAML_SEQUENCE_START_EVENT)
        return build_node(ps, ev, depth, &ps->arena);
    list = new_node(ps, &ps->arena, ev);
    if (!list)
        return NULL;
    list->type = NODE_SEQ;
    for (;;) {
        yaml_event_t item_ev;
        struct node *item;

        if (!next_event(ps, &item_ev))
            return NULL;
        if (item_ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&item_ev);
            return list;
        }
        item = build_node(ps, &item_ev, depth + 1, &ps->scratch);
        yaml_event_delete(&item_ev);
        if (!item)
            return NULL;
        ps->diag = &ps->rule_diag;
        read_rule(ps, ps->policy, item);
        ps->diag = diag;
        arena_reset(&ps->scratch);
    }
}

/*
 * Parses the whole buffer into one document's root node.  *empty is set when
 * the stream holds no document (an empty file, or only comments).
 */
static struct node *parse_document(struct parse *ps, const char *buf, size_t len,
                                   bool *empty)
{
    struct node *root = NULL;
    yaml_event_t ev;
    bool done = false;

    *empty = false;
    yaml_parser_set_input_string(&ps->parser, (const unsigned char *)buf, len);
    while (!done) {
        if (!next_event(ps, &ev))
            return NULL;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (root) {
                perr(ps, (unsigned)ev.start_mark.line + 1,
                     (unsigned)ev.start_mark.column + 1,
                     "a policy file holds one YAML document, found a second one");
                yaml_event_delete(&ev);
                return NULL;
            }
            break;
        default:
            root = build_node(ps, &ev, 0, &ps->arena);
            if (!root) {
                yaml_event_delete(&ev);
                return NULL;
            }
            break;
        }
        yaml_event_delete(&ev);
    }
    if (!root)
        *empty = true;
    return root;
}

/* ---- typed access to nodes ---- */

static const char *node_type_name(const struct node *node)
{
    switch (node->type) {
    case NODE_MAP:
        return "a mapping";
    case NODE_SEQ:
        return "a list";
    case NODE_SCALAR:
        break;
    }
    return "a scalar";
}

static bool node_is_null(const struct node *node)
{
    return node->type == NODE_SCALAR && node->plain &&
           (node->value[0] == '\0' || strcmp(node->value, "~") == 0 ||
            strcmp(node->value, "null") == 0 || strcmp(node->value, "Null") == 0 ||
            strcmp(node->value, "NULL") == 0);
}

/* A mapping, or an empty value that stands for an empty mapping. */
static bool expect_map(struct parse *ps, const struct node *node, const char *what)
{
    if (node->type == NODE_MAP || node_is_null(node))
        return true;
    perr_node(ps, node, "%s must be a mapping, not %s", what, node_type_name(node));
    return false;
}

/* A string value: any non-null scalar. */
static const char *expect_string(struct parse *ps, const struct node *node,
                                 const char *key)
{
    if (node->type != NODE_SCALAR) {
        perr_node(ps, node, "'%s' must be a string, not %s", key, node_type_name(node));
        return NULL;
    }
    if (node_is_null(node)) {
        perr_node(ps, node, "'%s' must not be empty", key);
        return NULL;
    }
    return node->value;
}

static bool expect_int(struct parse *ps, const struct node *node, const char *key,
                       int min, int max, int *out)
{
    char *end;
    long v;

    if (node->type != NODE_SCALAR || !node->plain) {
        perr_node(ps, node, "'%s' must be a number, not %s", key,
                  node->type == NODE_SCALAR ? "a quoted string" : node_type_name(node));
        return false;
    }
    errno = 0;
    v = strtol(node->value, &end, 10);
    if (errno || end == node->value || *end) {
        perr_node(ps, node, "'%s' must be a number, not '%s'", key, node->value);
        return false;
    }
    if (v < min || v > max) {
        perr_node(ps, node, "'%s' must be between %d and %d, not %ld", key, min, max, v);
        return false;
    }
    *out = (int)v;
    return true;
}

/* A YAML boolean, spelled true or false; *out is 1 or 0. */
static bool expect_bool(struct parse *ps, const struct node *node, const char *key, int *out)
{
    if (node->type == NODE_SCALAR && node->plain) {
        if (strcmp(node->value, "true") == 0 || strcmp(node->value, "false") == 0) {
            *out = node->value[0] == 't';
            return true;
        }
        perr_node(ps, node, "'%s' must be true or false, not '%s'", key, node->value);
        return false;
    }
    perr_node(ps, node, "'%s' must be true or false, not %s", key,
              node->type == NODE_SCALAR ? "a quoted string" : node_type_name(node));
    return false;
}

/*
 * Walks the keys of a mapping, reporting duplicates and keys not in allowed
 * (a NULL-terminated list; NULL allows any key).  Calls fn for each valid
 * key/value pair.
 */
typedef void (*map_fn)(struct parse *ps, const struct node *key,
                       const struct node *value, void *arg);

static void walk_map(struct parse *ps, const struct node *map, const char *what,
                     const char *const *allowed, map_fn fn, void *arg)
{
    if (map->type != NODE_MAP)
        return;
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct node *key = map->items[i], *value = map->items[i + 1];
        bool known = allowed == NULL, dup = false;

        if (key->type != NODE_SCALAR) {
            perr_node(ps, key, "a key in %s must be a plain name, not %s", what,
                      node_type_name(key));
            continue;
        }
        for (size_t j = 0; j < i && !dup; j += 2) {
            const struct node *prev = map->items[j];

            if (prev->type == NODE_SCALAR && strcmp(prev->value, key->value) == 0) {
                perr_node(ps, key, "duplicate key '%s' in %s (first at line %u)",
                          key->value, what, prev->line);
                dup = true;
            }
        }
        if (dup)
            continue;
        for (size_t k = 0; allowed && allowed[k] && !known; k++)
            known = strcmp(allowed[k], key->value) == 0;
        if (!known) {
            char list[256] = "";

            for (size_t k = 0; allowed[k]; k++) {
                if (k)
                    strncat(list, ", ", sizeof(list) - strlen(list) - 1);
                strncat(list, allowed[k], sizeof(list) - strlen(list) - 1);
            }
            perr_node(ps, key, "unknown key '%s' in %s (expected one of: %s)",
                      key->value, what, list);
            continue;
        }
        fn(ps, key, value, arg);
    }
}

static const struct node *map_get(const struct node *map, const char *name)
{
    if (map->type != NODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (map->items[i]->type == NODE_SCALAR && strcmp(map->items[i]->value, name) == 0)
            return map->items[i + 1];
    return NULL;
}

/* ---- the policy structure ---- */

void rule_match_clear(struct rule_match *match)
{
    free(match->vendor);
    free(match->product);
    free(match->serial);
    free(match->manufacturer);
    free(match->product_name);
    free(match->hub);
    free(match->port);
    free(match->path);
    free(match->connector);
    free(match->every_iface);
    free(match->no_iface);
    memset(match, 0, sizeof(*match));
}

struct policy *policy_new(const char *source)
{
    struct policy *policy = calloc(1, sizeof(*policy));

    if (!policy)
        return NULL;
    policy->source = strdup(source);
    if (!policy->source) {
        free(policy);
        return NULL;
    }
    policy->loaded = time(NULL);
    policy->defaults.version = policy->defaults.ports = policy->defaults.max = -1;
    policy->defaults.lockout = -1;
    return policy;
}

/*
 * The rules' strings, packed in chunks: one malloc per string cost 32 bytes
 * for "2000" (10,000 rules: 0.8 MB), and freeing them a tenth of a reload.
 */
struct policy_strings {
    struct policy_strings *next;
    size_t used;
    size_t size;
    char data[];
};

#define POLICY_STRINGS_CHUNK (16384 - sizeof(struct policy_strings) - 32)

static char *strings_alloc(struct policy *policy, size_t n)
{
    struct policy_strings *c = policy->strings;

    if (!c || c->size - c->used < n) {
        size_t size = n > POLICY_STRINGS_CHUNK ? n : POLICY_STRINGS_CHUNK;

        c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->size = size;
        c->used = 0;
        c->next = policy->strings;
        policy->strings = c;
    }
    c->used += n;
    return c->data + c->used - n;
}

/* Moves the malloc'd strings of a new rule into the policy's chunks. */
static int pack_strings(struct policy *policy, char **fields[], size_t n_fields)
{
    size_t total = 0;
    char *p;

    for (size_t i = 0; i < n_fields; i++)
        if (*fields[i])
            total += strlen(*fields[i]) + 1;
    if (total == 0)
        return 0;
    p = strings_alloc(policy, total);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < n_fields; i++) {
        if (*fields[i]) {
            size_t len = strlen(*fields[i]) + 1;

            memcpy(p, *fields[i], len);
            free(*fields[i]);
            *fields[i] = p;
            p += len;
        }
    }
    return 0;
}

void policy_free(struct policy *policy)
{
    if (!policy)
        return;
    match_index_free(policy->index);
    for (unsigned i = 0; i < policy->n_rules; i++) {
        /* The strings are in policy->strings; the class sets are the rule's. */
        free(policy->rules[i].match.every_iface);
        free(policy->rules[i].match.no_iface);
    }
    while (policy->strings) {
        struct policy_strings *next = policy->strings->next;

        free(policy->strings);
        policy->strings = next;
    }
    free(policy->rules);
    for (unsigned i = 0; i < policy->n_domains; i++) {
        free(policy->domains[i].name);
        free(policy->domains[i].qmp_socket);
    }
    free(policy->domains);
    for (unsigned i = 0; i < policy->n_dropins; i++)
        free(policy->dropins[i]);
    free(policy->dropins);
    free(policy->defaults.qmp_socket);
    free(policy->source);
    free(policy);
}

/* The file being read: the last drop-in, else the main file. */
static const char *current_file(const struct policy *policy)
{
    return policy->n_dropins ? policy->dropins[policy->n_dropins - 1] : policy->source;
}

int policy_find_domain(const struct policy *policy, const char *name)
{
    for (unsigned i = 0; i < policy->n_domains; i++)
        if (strcmp(policy->domains[i].name, name) == 0)
            return (int)i;
    return -ENOENT;
}

int policy_add_domain(struct policy *policy, const char *name,
                      const struct controller_spec *controller, const char *qmp_socket)
{
    struct policy_domain *domains, *d;

    if (policy_find_domain(policy, name) >= 0)
        return -EEXIST;
    domains = realloc(policy->domains, (policy->n_domains + 1) * sizeof(*domains));
    if (!domains)
        return -ENOMEM;
    policy->domains = domains;
    d = &domains[policy->n_domains];
    memset(d, 0, sizeof(*d));
    d->name = strdup(name);
    d->file = current_file(policy);
    d->controller = *controller;
    d->qmp_socket = qmp_socket ? strdup(qmp_socket) : NULL;
    if (!d->name || (qmp_socket && !d->qmp_socket)) {
        free(d->name);
        free(d->qmp_socket);
        return -ENOMEM;
    }
    return (int)policy->n_domains++;
}

int policy_add_rule(struct policy *policy, char *name, unsigned line, unsigned column,
                    enum rule_action action, int domain, struct rule_match *match)
{
    struct policy_rule *rules, *r;
    char **fields[] = { &name, &match->vendor, &match->product, &match->serial,
                        &match->manufacturer, &match->product_name, &match->hub,
                        &match->port, &match->path, &match->connector };

    if (pack_strings(policy, fields, sizeof(fields) / sizeof(fields[0])) < 0) {
        free(name);
        rule_match_clear(match);
        return -ENOMEM;
    }
    /* Grows by doubling: files with 10,000 rules load in one pass. */
    if ((policy->n_rules & (policy->n_rules - 1)) == 0) {
        size_t cap = policy->n_rules ? policy->n_rules * 2 : 1;

        rules = realloc(policy->rules, cap * sizeof(*rules));
        if (!rules) {
            /* The strings are packed: only the class sets are the match's own. */
            free(match->every_iface);
            free(match->no_iface);
            memset(match, 0, sizeof(*match));
            return -ENOMEM;
        }
        policy->rules = rules;
    }
    r = &policy->rules[policy->n_rules];
    r->index = policy->n_rules + 1;
    r->name = name;
    r->line = line;
    r->column = column;
    r->file = current_file(policy);
    r->dropin = policy->n_dropins > 0;
    r->action = action;
    r->domain = action == RULE_IGNORE ? -1 : domain;
    r->match = *match;
    memset(match, 0, sizeof(*match));
    policy->n_rules++;
    return 0;
}

int policy_finish(struct policy *policy)
{
    match_index_free(policy->index);
    policy->index = match_index_build(policy);
    return policy->index ? 0 : -ENOMEM;
}

/* ---- from nodes to the policy ---- */

/* A controller: block while it is being read; -1 marks a key not given. */
struct controller_node {
    int type;               /* enum controller_type */
    int version;
    int ports;
    int max;
    const struct node *where;
};

static void controller_key(struct parse *ps, const struct node *key,
                           const struct node *value, void *arg)
{
    struct controller_node *c = arg;

    if (strcmp(key->value, "type") == 0) {
        const char *t = expect_string(ps, value, "type");

        if (t && strcmp(t, "auto") == 0)
            c->type = CONTROLLER_AUTO;
        else if (t && strcmp(t, "devicemodel") == 0)
            c->type = CONTROLLER_DEVICEMODEL;
        else if (t && strcmp(t, "qusb") == 0)
            c->type = CONTROLLER_QUSB;
        else if (t)
            perr_node(ps, value, "controller type '%s': expected auto, devicemodel or qusb", t);
    } else if (strcmp(key->value, "version") == 0)
        expect_int(ps, value, "version", 1, 3, &c->version);
    else if (strcmp(key->value, "ports") == 0)
        expect_int(ps, value, "ports", 1, 15, &c->ports);
    else if (strcmp(key->value, "max") == 0)
        expect_int(ps, value, "max", 0, 64, &c->max);
}

static void read_controller(struct parse *ps, const struct node *node,
                            struct controller_node *c)
{
    static const char *const keys[] = { "type", "version", "ports", "max", NULL };

    c->type = c->version = c->ports = c->max = -1;
    c->where = node;
    if (expect_map(ps, node, "'controller'"))
        walk_map(ps, node, "'controller'", keys, controller_key, c);
}

/*
 * Combines a domain's controller keys over the defaults and checks the pair.
 * A bad pair is reported where the domain's own keys made it; a bad pair in
 * the defaults alone is reported once, by the caller, not once per domain.
 */
static struct controller_spec controller_merge(struct parse *ps,
                                               const struct controller_node *dflt,
                                               const struct controller_node *own)
{
    struct controller_spec spec = policy_default_controller;
    const struct controller_node *layers[] = { dflt, own };
    bool ports_given = false;
    const char *why;

    for (size_t i = 0; i < 2; i++) {
        const struct controller_node *c = layers[i];

        if (!c || !c->where)
            continue;
        if (c->type >= 0)
            spec.type = c->type;
        if (c->version >= 0) {
            spec.version = c->version;
            ports_given = false;
        }
        if (c->ports >= 0) {
            spec.ports = c->ports;
            ports_given = true;
        }
        if (c->max >= 0)
            spec.max = c->max;
    }
    if (!ports_given)
        spec.ports = spec.type == CONTROLLER_QUSB ? 8 : policy_default_ports(spec.version);
    if (spec.type == CONTROLLER_QUSB && spec.version == 3 && !(own && own->where && own->version == 3) &&
        !(dflt && dflt->where && dflt->version == 3))
        spec.version = 2;   /* the default version, 3, is not one PV USB has */
    why = spec.type == CONTROLLER_QUSB ? policy_check_qusb(spec.version, spec.ports)
                                       : policy_check_controller(spec.version, spec.ports);
    if (why && own && own->where)
        perr_node(ps, own->where, "controller version %d with %d ports: %s", spec.version,
                  spec.ports, why);
    return spec;
}

struct domain_node {
    struct controller_node controller;
    const struct node *qmp;
    int lockout;            /* allow-dom0-lockout: -1 when not given */
};

static void domain_key(struct parse *ps, const struct node *key,
                       const struct node *value, void *arg)
{
    struct domain_node *d = arg;

    if (strcmp(key->value, "controller") == 0) {
        read_controller(ps, value, &d->controller);
    } else if (strcmp(key->value, "qmp-socket") == 0) {
        const char *path = expect_string(ps, value, "qmp-socket");

        if (path && path[0] != '/')
            perr_node(ps, value, "'qmp-socket' must be an absolute path, not '%s'", path);
        else if (path)
            d->qmp = value;
    } else if (strcmp(key->value, "allow-dom0-lockout") == 0) {
        expect_bool(ps, value, "allow-dom0-lockout", &d->lockout);
    }
}

static void read_domain_entry(struct parse *ps, const struct node *node,
                              struct domain_node *d, const char *what)
{
    static const char *const keys[] = { "controller", "qmp-socket", "allow-dom0-lockout",
                                        NULL };

    memset(d, 0, sizeof(*d));
    d->lockout = -1;
    if (expect_map(ps, node, what))
        walk_map(ps, node, what, keys, domain_key, d);
}

struct rule_ctx {
    struct policy *policy;
    struct rule_match match;
    const struct node *domain;
    const struct node *action;
    const struct node *name;
    const struct node *match_node;
    int lockout;            /* allow-dom0-lockout: -1 when not given */
};

static void set_glob(struct parse *ps, const struct node *value, const char *key,
                     char **field, enum match_key bit, struct rule_match *m)
{
    const char *s = expect_string(ps, value, key);
    const char *why;

    if (!s)
        return;
    why = policy_check_glob(s);
    if (why) {
        perr_node(ps, value, "bad glob '%s' for '%s': %s", s, key, why);
        return;
    }
    free(*field);
    *field = strdup(s);
    if (*field)
        m->keys |= bit;
}

void policy_lower_hex(char *s)
{
    for (char *p = s; p && *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
}

static void set_id_half(struct parse *ps, const struct node *value, const char *key,
                        const char *s, char **field, enum match_key bit,
                        struct rule_match *m)
{
    const char *why = policy_check_id_half(s);

    if (why) {
        perr_node(ps, value, "bad %s '%s': %s", key, s, why);
        return;
    }
    free(*field);
    *field = strdup(s);
    policy_lower_hex(*field);
    if (*field)
        m->keys |= bit;
}

/*
 * A set of classes: one class, or a sequence of them ([hid, "08:06:50"]).
 * Sets *out (allocated) and *n, or reports what is wrong and leaves them.
 */
static bool read_class_set(struct parse *ps, const struct node *value, const char *key,
                           struct class_match **out, unsigned *n)
{
    const struct node *const *items = &value;
    size_t count = 1;
    struct class_match *set;
    bool ok = true;

    if (value->type == NODE_SEQ) {
        items = (const struct node *const *)value->items;
        count = value->n;
    }
    if (count == 0 || count > POLICY_MAX_CLASS_SET) {
        perr_node(ps, value, "'%s' takes 1 to %d classes, not %zu", key, POLICY_MAX_CLASS_SET,
                  count);
        return false;
    }
    set = calloc(count, sizeof(*set));
    if (!set)
        return false;
    for (size_t i = 0; i < count; i++) {
        const char *s = expect_string(ps, items[i], key), *why;

        if (!s) {
            ok = false;
            continue;
        }
        why = policy_parse_class(s, &set[i]);
        if (why) {
            perr_node(ps, items[i], "bad class '%s' in '%s': %s", s, key, why);
            ok = false;
        }
    }
    if (!ok) {
        free(set);
        return false;
    }
    free(*out);
    *out = set;
    *n = (unsigned)count;
    return true;
}

static void match_key_fn(struct parse *ps, const struct node *key,
                         const struct node *value, void *arg)
{
    struct rule_match *m = arg;
    const char *k = key->value, *s;

    if (strcmp(k, "id") == 0) {
        const char *colon;
        char *vendor;

        s = expect_string(ps, value, k);
        if (!s)
            return;
        colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':')) {
            perr_node(ps, value,
                      "bad vendor:product '%s': expected two parts such as 1050:0407", s);
            return;
        }
        vendor = strndup(s, (size_t)(colon - s));
        if (!vendor)
            return;
        if (policy_check_id_half(vendor) || policy_check_id_half(colon + 1))
            perr_node(ps, value,
                      "bad vendor:product '%s': expected four hex digits or a glob "
                      "on each side, such as 1050:0407 or 1050:*",
                      s);
        else {
            set_id_half(ps, value, "vendor", vendor, &m->vendor, MATCH_VENDOR, m);
            set_id_half(ps, value, "product", colon + 1, &m->product, MATCH_PRODUCT, m);
        }
        free(vendor);
    } else if (strcmp(k, "vendor") == 0 || strcmp(k, "product") == 0) {
        bool v = k[0] == 'v';

        s = expect_string(ps, value, k);
        if (s)
            set_id_half(ps, value, k, s, v ? &m->vendor : &m->product,
                        v ? MATCH_VENDOR : MATCH_PRODUCT, m);
    } else if (strcmp(k, "serial") == 0) {
        set_glob(ps, value, k, &m->serial, MATCH_SERIAL, m);
    } else if (strcmp(k, "manufacturer") == 0) {
        set_glob(ps, value, k, &m->manufacturer, MATCH_MANUFACTURER, m);
    } else if (strcmp(k, "product-name") == 0) {
        set_glob(ps, value, k, &m->product_name, MATCH_PRODUCT_NAME, m);
    } else if (strcmp(k, "port") == 0) {
        unsigned bus, depth;

        s = expect_string(ps, value, k);
        if (!s)
            return;
        if (!strpbrk(s, "*?[") && device_port_parse(s, &bus, &depth) < 0) {
            perr_node(ps, value, "bad port '%s': expected a port path such as 1-1.4, or a glob",
                      s);
            return;
        }
        set_glob(ps, value, k, &m->port, MATCH_PORT, m);
    } else if (strcmp(k, "path") == 0) {
        set_glob(ps, value, k, &m->path, MATCH_PATH, m);
    } else if (strcmp(k, "hub") == 0) {
        const char *why;

        s = expect_string(ps, value, k);
        if (!s)
            return;
        why = policy_check_hub(s);
        if (why) {
            perr_node(ps, value, "bad hub '%s': %s", s, why);
            return;
        }
        free(m->hub);
        m->hub = strdup(s);
        if (m->hub)
            m->keys |= MATCH_HUB;
    } else if (strcmp(k, "connector") == 0) {
        const char *why;

        s = expect_string(ps, value, k);
        if (!s)
            return;
        why = policy_check_connector(s);
        if (why) {
            perr_node(ps, value, "bad connector '%s': %s", s, why);
            return;
        }
        free(m->connector);
        m->connector = strdup(s);
        if (m->connector)
            m->keys |= MATCH_CONNECTOR;
    } else if (strcmp(k, "connect-type") == 0) {
        s = expect_string(ps, value, k);
        if (!s)
            return;
        if (strcmp(s, "hotplug") != 0 && strcmp(s, "hardwired") != 0 &&
            strcmp(s, "unknown") != 0) {
            perr_node(ps, value, "bad connect-type '%s': expected hotplug, hardwired or unknown",
                      s);
            return;
        }
        m->connect_type = (int)device_connect_parse(s);
        m->keys |= MATCH_CONNECT_TYPE;
    } else if (strcmp(k, "every-interface-class") == 0) {
        if (read_class_set(ps, value, k, &m->every_iface, &m->n_every))
            m->keys |= MATCH_EVERY_IFACE;
    } else if (strcmp(k, "no-interface-class") == 0) {
        if (read_class_set(ps, value, k, &m->no_iface, &m->n_no))
            m->keys |= MATCH_NO_IFACE;
    } else if (strcmp(k, "class") == 0 || strcmp(k, "interface-class") == 0) {
        bool dev = k[0] == 'c';
        const char *why;

        s = expect_string(ps, value, k);
        if (!s)
            return;
        why = policy_parse_class(s, dev ? &m->dev_class : &m->iface_class);
        if (why) {
            perr_node(ps, value, "bad %s '%s': %s", k, s, why);
            return;
        }
        m->keys |= dev ? MATCH_CLASS : MATCH_IFACE_CLASS;
    }
}

static void rule_key(struct parse *ps, const struct node *key, const struct node *value,
                     void *arg)
{
    static const char *const match_keys[] = {
        "id", "vendor", "product", "serial", "manufacturer", "product-name",
        "hub", "port", "path", "connector", "connect-type", "class", "interface-class",
        "every-interface-class", "no-interface-class", NULL,
    };
    struct rule_ctx *rc = arg;

    if (strcmp(key->value, "name") == 0) {
        if (expect_string(ps, value, "name"))
            rc->name = value;
    } else if (strcmp(key->value, "match") == 0) {
        rc->match_node = value;
        if (expect_map(ps, value, "'match'"))
            walk_map(ps, value, "'match'", match_keys, match_key_fn, &rc->match);
    } else if (strcmp(key->value, "domain") == 0) {
        /* Checked against 'domains:' once the whole file is read (resolve_rules). */
        if (expect_string(ps, value, "domain"))
            rc->domain = value;
    } else if (strcmp(key->value, "action") == 0) {
        const char *s = expect_string(ps, value, "action");

        if (s && strcmp(s, "attach") != 0 && strcmp(s, "ignore") != 0)
            perr_node(ps, value, "bad action '%s': expected attach or ignore", s);
        else if (s)
            rc->action = value;
    } else if (strcmp(key->value, "allow-dom0-lockout") == 0) {
        expect_bool(ps, value, "allow-dom0-lockout", &rc->lockout);
    }
}

/* Remembers a rule's domain name, to be resolved by resolve_rules. */
static struct domain_ref *add_domain_ref(struct parse *ps, const struct node *value)
{
    struct domain_ref *ref;
    size_t len = strlen(value->value);
    char *name;

    if (ps->n_refs == ps->cap_refs) {
        size_t cap = ps->cap_refs ? ps->cap_refs * 2 : 16;
        struct domain_ref *refs = realloc(ps->refs, cap * sizeof(*refs));

        if (!refs)
            return NULL;
        ps->refs = refs;
        ps->cap_refs = cap;
    }
    name = arena_alloc(&ps->arena, len + 1);
    if (!name)
        return NULL;
    memcpy(name, value->value, len + 1);
    ref = &ps->refs[ps->n_refs++];
    *ref = (struct domain_ref){ .name = name, .line = value->line, .column = value->column };
    return ref;
}

/* Remembers a rule's own allow-dom0-lockout (-1: not given) by its index. */
static int set_rule_lockout(struct parse *ps, unsigned rule, int lockout)
{
    if (rule >= ps->cap_lockout) {
        size_t cap = ps->cap_lockout ? ps->cap_lockout * 2 : 64;
        signed char *l;

        while (cap <= rule)
            cap *= 2;
        l = realloc(ps->lockout, cap);
        if (!l)
            return -ENOMEM;
        ps->lockout = l;
        ps->cap_lockout = cap;
    }
    ps->lockout[rule] = (signed char)lockout;
    return 0;
}

/*
 * Reads one rule into policy.  Its domain and its allow-dom0-lockout are
 * left to resolve_rules: the rules may be read before 'domains:' and
 * 'defaults:' (the rules of a file are read while it is parsed).
 */
static void read_rule(struct parse *ps, struct policy *policy, const struct node *node)
{
    static const char *const keys[] = { "name", "match", "domain", "action",
                                        "allow-dom0-lockout", NULL };
    struct rule_ctx rc = { .policy = policy, .lockout = -1 };
    unsigned before = ps->errors;
    struct domain_ref *ref = NULL;
    bool ignore;
    char *name = NULL;

    if (node->type != NODE_MAP) {
        perr_node(ps, node, "a rule must be a mapping with 'match' and 'domain' or "
                            "'action: ignore', not %s", node_type_name(node));
        return;
    }
    walk_map(ps, node, "a rule", keys, rule_key, &rc);
    if (rc.domain && !(ref = add_domain_ref(ps, rc.domain))) {
        rule_match_clear(&rc.match);
        perr_node(ps, node, "out of memory");
        return;
    }
    ignore = rc.action && strcmp(rc.action->value, "ignore") == 0;
    if (!rc.match_node && !map_get(node, "match"))
        perr_node(ps, node, "a rule needs 'match:' (use 'match: {}' to match every device)");
    if (ignore && map_get(node, "domain"))
        perr_node(ps, map_get(node, "domain"), "a rule with 'action: ignore' names no domain");
    else if (!ignore && !map_get(node, "domain"))
        perr_node(ps, node, "a rule needs 'domain:' or 'action: ignore'");
    if (ps->errors != before) {
        rule_match_clear(&rc.match);
        return;
    }
    if (rc.name && !(name = strdup(rc.name->value))) {
        rule_match_clear(&rc.match);
        perr_node(ps, node, "out of memory");
        return;
    }
    if (set_rule_lockout(ps, policy->n_rules, rc.lockout) < 0) {
        free(name);
        rule_match_clear(&rc.match);
        perr_node(ps, node, "out of memory");
        return;
    }
    if (policy_add_rule(policy, name, node->line, node->column,
                        ignore ? RULE_IGNORE : RULE_ATTACH, -1, &rc.match) < 0) {
        perr_node(ps, node, "out of memory");
        return;
    }
    if (ref)
        ref->rule = policy->n_rules;
}

/*
 * Gives the rules their domains (reporting the names 'domains:' does not
 * declare) and their allow-dom0-lockout: the rule's own word, else its
 * domain's (which fell back on the defaults), else the defaults'.
 */
static void resolve_rules(struct parse *ps, struct policy *policy)
{
    for (size_t i = 0; i < ps->n_refs; i++) {
        const struct domain_ref *ref = &ps->refs[i];
        int d = policy_find_domain(policy, ref->name);

        if (d < 0)
            perr(ps, ref->line, ref->column,
                 "unknown domain '%s' (declare it under 'domains:')", ref->name);
        else if (ref->rule)
            policy->rules[ref->rule - 1].domain = d;
    }
    for (unsigned i = ps->first_rule; i < policy->n_rules; i++) {
        struct policy_rule *r = &policy->rules[i];

        r->allow_lockout = ps->lockout[i] >= 0 ? ps->lockout[i] > 0
                           : r->domain >= 0    ? policy->domains[r->domain].allow_lockout
                                               : ps->dflt_lockout > 0;
    }
}

struct top {
    const struct node *version;
    const struct node *defaults;
    const struct node *domains;
    const struct node *rules;
};

static void top_key(struct parse *ps, const struct node *key, const struct node *value,
                    void *arg)
{
    struct top *t = arg;

    if (strcmp(key->value, "version") == 0)
        t->version = value;
    else if (strcmp(key->value, "defaults") == 0)
        t->defaults = value;
    else if (strcmp(key->value, "domains") == 0)
        t->domains = value;
    else if (strcmp(key->value, "rules") == 0)
        t->rules = value;
}

/* Keeps the main file's defaults for the drop-ins read after it. */
static int keep_defaults(struct policy *policy, const struct domain_node *dflt,
                         const char *qmp)
{
    struct policy_defaults *k = &policy->defaults;

    k->controller = dflt->controller.where != NULL;
    if (k->controller) {
        k->version = dflt->controller.version;
        k->ports = dflt->controller.ports;
        k->max = dflt->controller.max;
    }
    k->lockout = dflt->lockout;
    if (qmp && !(k->qmp_socket = strdup(qmp)))
        return -ENOMEM;
    return 0;
}

/*
 * A drop-in's domains are built over the main file's defaults.  Their
 * controller keys were checked in the main file: 'where' only says they
 * were given (controller_merge reports at a domain's own keys).
 */
static void use_defaults(const struct policy *policy, struct domain_node *dflt,
                         const struct node *root)
{
    const struct policy_defaults *k = &policy->defaults;

    if (k->controller) {
        dflt->controller.version = k->version;
        dflt->controller.ports = k->ports;
        dflt->controller.max = k->max;
        dflt->controller.where = root;
    }
    dflt->lockout = k->lockout;
}

static void read_policy(struct parse *ps, struct policy *policy, const struct node *root)
{
    static const char *const keys[] = { "version", "defaults", "domains", "rules", NULL };
    struct domain_node dflt;
    struct top t = { 0 };
    const char *dflt_qmp;
    int version;

    if (root->type != NODE_MAP) {
        perr_node(ps, root, "a policy is a mapping with 'version', 'domains' and 'rules', "
                            "not %s", node_type_name(root));
        return;
    }
    walk_map(ps, root, "the policy", keys, top_key, &t);
    if (!t.version)
        perr_node(ps, root, "missing 'version: 1'");
    else
        expect_int(ps, t.version, "version", 1, 1, &version);
    memset(&dflt, 0, sizeof(dflt));
    dflt.lockout = -1;
    if (t.defaults && ps->dropin)
        perr_node(ps, t.defaults, "'defaults' may be set only in the main policy file (%s), "
                                  "whose defaults a drop-in's domains use", policy->source);
    else if (t.defaults)
        read_domain_entry(ps, t.defaults, &dflt, "'defaults'");
    if (ps->dropin) {
        use_defaults(policy, &dflt, root);
        dflt_qmp = policy->defaults.qmp_socket;
    } else {
        dflt_qmp = dflt.qmp ? dflt.qmp->value : NULL;
        if (keep_defaults(policy, &dflt, dflt_qmp) < 0)
            perr_node(ps, root, "out of memory");
    }
    ps->dflt_lockout = dflt.lockout;
    if (dflt.controller.where && !ps->dropin)
        controller_merge(ps, NULL, &dflt.controller);
    if (t.domains && expect_map(ps, t.domains, "'domains'")) {
        for (size_t i = 0; i + 1 < t.domains->n; i += 2) {
            const struct node *key = t.domains->items[i], *value = t.domains->items[i + 1];
            struct domain_node d;
            struct controller_spec spec;
            const char *why, *qmp;
            char what[128];
            int prev;

            if (key->type != NODE_SCALAR) {
                perr_node(ps, key, "a domain name must be a string, not %s",
                          node_type_name(key));
                continue;
            }
            why = policy_check_domain_name(key->value);
            if (why) {
                perr_node(ps, key, "bad domain name '%s': %s", key->value, why);
                continue;
            }
            prev = policy_find_domain(policy, key->value);
            if (prev >= 0) {
                const struct policy_domain *first = &policy->domains[prev];

                if (first->file == current_file(policy))
                    perr_node(ps, key, "duplicate domain '%s' (first at line %u)",
                              key->value, first->line);
                else
                    perr_node(ps, key, "domain '%s' is declared twice: here and at %s:%u",
                              key->value, first->file, first->line);
                continue;
            }
            snprintf(what, sizeof(what), "domain '%s'", key->value);
            read_domain_entry(ps, value, &d, what);
            spec = controller_merge(ps, dflt.controller.where ? &dflt.controller : NULL,
                                    d.controller.where ? &d.controller : NULL);
            qmp = d.qmp ? d.qmp->value : dflt_qmp;
            if (qmp && spec.type == CONTROLLER_QUSB)
                perr_node(ps, key, "domain '%s': a 'qmp-socket' guest's controllers are its "
                          "device model's, not 'type: qusb'", key->value);
            prev = policy_add_domain(policy, key->value, &spec, qmp);
            if (prev < 0) {
                perr_node(ps, key, "out of memory");
            } else {
                policy->domains[prev].line = key->line;
                policy->domains[prev].allow_lockout =
                    d.lockout >= 0 ? d.lockout > 0 : dflt.lockout > 0;
            }
        }
    }
    /* A list of rules has been read while it was parsed (stream_rules). */
    if (t.rules && t.rules->type != NODE_SEQ && !node_is_null(t.rules))
        perr_node(ps, t.rules, "'rules' must be a list, not %s", node_type_name(t.rules));
}

/* Reports a NUL byte (a binary file) at its line and column. */
static bool check_text(struct parse *ps, const char *buf, size_t len)
{
    const char *nul = memchr(buf, '\0', len);
    unsigned line, column;

    if (!nul)
        return true;
    offset_position(ps, (size_t)(nul - buf), &line, &column);
    perr(ps, line, column, "this is a binary file, not a YAML policy (NUL byte)");
    return false;
}

/*
 * Reads the text of one file into policy: the main file into a new policy,
 * or a drop-in after the files read before.  Returns 0, or -EINVAL after
 * reporting every error.
 */
static int read_text(struct policy *policy, bool dropin, const char *name, const char *buf,
                     size_t len, struct policy_diag *diag)
{
    size_t first = diag->n;
    struct parse ps = { .file = name, .diag = diag, .first = first, .buf = buf, .len = len,
                        .dflt_lockout = -1, .dropin = dropin,
                        .first_rule = policy->n_rules };
    struct node *root = NULL;
    bool empty = false;

    if (len > POLICY_MAX_BYTES) {
        perr(&ps, 1, 1, "the file is too large (%zu bytes; a policy may have at most %u)",
             len, POLICY_MAX_BYTES);
        return -EINVAL;
    }
    if (!check_text(&ps, buf, len))
        return -EINVAL;
    if (!yaml_parser_initialize(&ps.parser)) {
        perr(&ps, 1, 1, "out of memory");
        return -EINVAL;
    }
    ps.policy = policy;
    root = parse_document(&ps, buf, len, &empty);
    yaml_parser_delete(&ps.parser);
    arena_free(ps.scratch);
    if (!root) {
        /* A syntax error stops the parse: it is the one message, not the rules' before it. */
        policy_diag_free(&ps.rule_diag);
        if (empty)
            perr(&ps, 1, 1, "the policy is empty (expected 'version: 1', 'domains' and 'rules')");
    } else {
        diag_move(diag, first, &ps.rule_diag);
        read_policy(&ps, policy, root);
        resolve_rules(&ps, policy);
    }
    /* The node tree goes before the index comes (policy_finish): a lower peak. */
    arena_free(ps.arena);
    free(ps.refs);
    free(ps.lockout);
    diag_sort(diag, first);
    return !root || ps.errors ? -EINVAL : 0;
}

struct policy *policy_load_buffer(const char *name, const char *buf, size_t len,
                                  struct policy_diag *diag)
{
    struct policy *policy = policy_new(name);

    if (!policy) {
        policy_diag_file(diag, name, "out of memory");
        return NULL;
    }
    if (read_text(policy, false, name, buf, len, diag) < 0) {
        policy_free(policy);
        return NULL;
    }
    if (policy_finish(policy) < 0) {
        policy_diag_file(diag, name, "out of memory");
        policy_free(policy);
        return NULL;
    }
    policy->text.len = len;
    policy->text.hash = policy_text_hash(POLICY_HASH_INIT, buf, len);
    return policy;
}

uint64_t policy_text_hash(uint64_t h, const char *buf, size_t len)
{
    const uint64_t k = 0x9e3779b97f4a7c15ULL;
    size_t i = 0;

    /* Eight bytes a step: a byte-wise hash (FNV) took ~1 ms over 728 KiB. */
    for (; i + 8 <= len; i += 8) {
        uint64_t w;

        memcpy(&w, buf + i, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    if (i < len) {
        uint64_t w = 0;

        memcpy(&w, buf + i, len - i);
        h = (h ^ w ^ (uint64_t)(len - i) << 56) * k;
        h ^= h >> 29;
    }
    return h;
}

bool policy_file_unchanged(const struct policy *p, const char *path)
{
    const struct stat *was = &p->text.st;
    uint64_t h = POLICY_HASH_INIT;
    char buf[16384];
    struct stat st;
    size_t len = 0;
    bool same;
    int fd;

    if (!p->text.file_known || stat(path, &st) < 0 || st.st_dev != was->st_dev ||
        st.st_ino != was->st_ino || st.st_size != was->st_size ||
        st.st_mtim.tv_sec != was->st_mtim.tv_sec || st.st_mtim.tv_nsec != was->st_mtim.tv_nsec ||
        st.st_ctim.tv_sec != was->st_ctim.tv_sec || st.st_ctim.tv_nsec != was->st_ctim.tv_nsec ||
        st.st_mode != was->st_mode || st.st_uid != was->st_uid || st.st_gid != was->st_gid ||
        (size_t)st.st_size != p->text.len)
        return false;
    /* The times have a clock tick's grain: an edit right after the load keeps them. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return false;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            same = r == 0;
            break;
        }
        len += (size_t)r;
        if (len > p->text.len || ((size_t)r % 8 != 0 && len != p->text.len)) {
            /* grown, or a short read mid-file: read it all again rather than guess */
            same = false;
            break;
        }
        h = policy_text_hash(h, buf, (size_t)r);
    }
    close(fd);
    return same && len == p->text.len && h == p->text.hash;
}

int policy_append_buffer(struct policy *policy, const char *name, const char *buf,
                         size_t len, struct policy_diag *diag)
{
    char **dropins = realloc(policy->dropins, (policy->n_dropins + 1) * sizeof(*dropins));

    if (!dropins)
        return -ENOMEM;
    policy->dropins = dropins;
    if (!(dropins[policy->n_dropins] = strdup(name)))
        return -ENOMEM;
    policy->n_dropins++;
    return read_text(policy, true, name, buf, len, diag);
}

void policy_diag_file(struct policy_diag *diag, const char *file, const char *fmt, ...)
{
    struct parse ps = { .file = file, .diag = diag, .first = diag->n };
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    perr(&ps, 1, 1, "%s", msg);
}

int policy_read_fd(int fd, const char *path, char **bufp, size_t *lenp,
                   struct policy_diag *diag)
{
    struct parse ps = { .file = path, .diag = diag, .first = diag->n };
    struct stat st;
    char *buf;
    size_t len = 0;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        perr(&ps, 1, 1, "not a regular file");
        return -EINVAL;
    }
    if ((uintmax_t)st.st_size > POLICY_MAX_BYTES) {
        perr(&ps, 1, 1, "the file is too large (%jd bytes; a policy may have at most %u)",
             (intmax_t)st.st_size, POLICY_MAX_BYTES);
        return -EFBIG;
    }
    /* One byte more than the size: a file that grows is caught below. */
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        perr(&ps, 1, 1, "out of memory");
        return -ENOMEM;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size + 1 - len);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;

            perr(&ps, 1, 1, "cannot read: %s", strerror(e));
            free(buf);
            return -e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > (size_t)st.st_size) {
            perr(&ps, 1, 1, "the file changed while it was read; try again");
            free(buf);
            return -EAGAIN;
        }
    }
    *bufp = buf;
    *lenp = len;
    return 0;
}

struct policy *policy_load(const char *path, bool check_owner, struct policy_diag *diag)
{
    struct policy *policy;
    struct stat st;
    char *buf, why[512];
    size_t len;
    int fd, r;

    /* Opened once, then checked on the descriptor: nothing can be swapped in. */
    fd = trust_open_file(path, check_owner, why, sizeof(why));
    if (fd < 0) {
        policy_diag_file(diag, path, "%s", why);
        return NULL;
    }
    if (fstat(fd, &st) < 0)
        memset(&st, 0, sizeof(st));
    r = policy_read_fd(fd, path, &buf, &len, diag);
    close(fd);
    if (r < 0)
        return NULL;
    policy = policy_load_buffer(path, buf, len, diag);
    free(buf);
    if (policy) {
        policy->text.file_known = st.st_ino != 0;
        policy->text.st = st;
    }
    return policy;
}

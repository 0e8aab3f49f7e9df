/*
 * Rule matching and the index that makes it fast.
 *
 * Each rule goes into the bucket of its most selective key: an exact
 * vendor:product, an exact port, an exact id path, a connector (found by
 * the device's port and by its peer), an exact vendor (product
 * a glob), a hub (by bus or by path), a
 * port glob whose bus is literal ("4-1.*"), a serial glob whose first
 * character is literal ("Z0004*"); the rest into one general list.  A rule
 * in bucket K can only match devices whose own key is K, and every list is
 * in file order, so a device's candidates are a merge of at most a dozen
 * sorted lists and the first candidate that holds is the first rule in the
 * file that holds: the index never changes an answer, only its cost.
 */
#include "config.h"

#include "match.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strmap.h"

struct rule_list {
    uint32_t *v;            /* 0-based rule positions, ascending; &one while n <= 1 */
    uint32_t n;
    uint32_t one;           /* most keys have one rule: no array of their own (32 bytes less) */
};

struct match_index {
    struct strmap *by_id;   /* "1050:0407" -> struct rule_list */
    struct strmap *by_port; /* "1-1.4" */
    struct strmap *by_path; /* "pci-0000:00:14.0-usb-0:1.4", "...-usbv3-0:1.4" */
    struct strmap *by_hub;  /* "usb3", "1-1", "pci-0000:00:14.0", "pci-...-usb-0:1",
                             * "pci-...-usbv3", "pci-...-usbv3-0:1" */
    struct strmap *by_key;  /* "v:1050" (vendor), "b:4" (bus), "s:Z" (serial's first byte) */
    struct strmap *by_connector; /* "pci-0000:00:14.0-usbv3-0:1": the port or its peer */
    struct rule_list general;
};

static int list_push(struct rule_list *list, uint32_t pos)
{
    if (list->n == 0) {
        list->v = &list->one;
    } else if (list->n == 1) {
        uint32_t *v = malloc(2 * sizeof(*v));

        if (!v)
            return -ENOMEM;
        v[0] = list->one;
        list->v = v;
    } else if ((list->n & (list->n - 1)) == 0) {
        uint32_t *v = realloc(list->v, (size_t)list->n * 2 * sizeof(*v));

        if (!v)
            return -ENOMEM;
        list->v = v;
    }
    list->v[list->n++] = pos;
    return 0;
}

static void list_clear(struct rule_list *list)
{
    if (list->v != &list->one)
        free(list->v);
}

static void list_free(void *p)
{
    struct rule_list *list = p;

    if (list)
        list_clear(list);
    free(list);
}

static int bucket_push(struct strmap *map, const char *key, uint32_t pos)
{
    struct rule_list *list = strmap_get(map, key);

    if (!list) {
        list = calloc(1, sizeof(*list));
        if (!list || strmap_put(map, key, list, NULL) < 0) {
            free(list);
            return -ENOMEM;
        }
    }
    return list_push(list, pos);
}

/*
 * a, sep and b into key (cut to len like snprintf): snprintf was a third of
 * the index build (callgrind).
 */
static void key_join(char *key, size_t len, const char *a, char sep, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), o = 0;

    if (la > len - 1)
        la = len - 1;
    memcpy(key, a, la);
    o = la;
    if (o < len - 1)
        key[o++] = sep;
    if (lb > len - 1 - o)
        lb = len - 1 - o;
    memcpy(key + o, b, lb);
    key[o + lb] = '\0';
}

static bool is_exact(const char *glob)
{
    return !strpbrk(glob, "*?[\\");
}

/*
 * "b:4" for a port glob whose literal start names its bus ("4-1.*"): only
 * devices on bus 4 can match it.  False when the bus is not literal.
 */
static bool port_glob_bus(const char *glob, char *key, size_t len)
{
    size_t n = strspn(glob, "0123456789");

    if (n == 0 || n > 3 || glob[n] != '-')
        return false;
    snprintf(key, len, "b:%.*s", (int)n, glob);
    return true;
}

void match_index_free(struct match_index *index)
{
    if (!index)
        return;
    strmap_free(index->by_id, list_free);
    strmap_free(index->by_port, list_free);
    strmap_free(index->by_path, list_free);
    strmap_free(index->by_hub, list_free);
    strmap_free(index->by_key, list_free);
    strmap_free(index->by_connector, list_free);
    list_clear(&index->general);
    free(index);
}

struct match_index *match_index_build(const struct policy *policy)
{
    struct match_index *index = calloc(1, sizeof(*index));

    if (!index)
        return NULL;
    index->by_id = strmap_new();
    index->by_port = strmap_new();
    index->by_path = strmap_new();
    index->by_hub = strmap_new();
    index->by_key = strmap_new();
    index->by_connector = strmap_new();
    if (!index->by_id || !index->by_port || !index->by_path || !index->by_hub ||
        !index->by_key || !index->by_connector)
        goto fail;
    for (uint32_t i = 0; i < policy->n_rules; i++) {
        const struct rule_match *m = &policy->rules[i].match;
        char key[32];
        int r;

        if ((m->keys & MATCH_VENDOR) && (m->keys & MATCH_PRODUCT) && is_exact(m->vendor) &&
            is_exact(m->product)) {
            key_join(key, sizeof(key), m->vendor, ':', m->product);
            r = bucket_push(index->by_id, key, i);
        } else if ((m->keys & MATCH_PORT) && is_exact(m->port)) {
            r = bucket_push(index->by_port, m->port, i);
        } else if ((m->keys & MATCH_PATH) && is_exact(m->path)) {
            r = bucket_push(index->by_path, m->path, i);
        } else if (m->keys & MATCH_CONNECTOR) {
            r = bucket_push(index->by_connector, m->connector, i);
        } else if ((m->keys & MATCH_VENDOR) && is_exact(m->vendor)) {
            key_join(key, sizeof(key), "v", ':', m->vendor);
            r = bucket_push(index->by_key, key, i);
        } else if (m->keys & MATCH_HUB) {
            r = bucket_push(index->by_hub, m->hub, i);
        } else if ((m->keys & MATCH_PORT) && port_glob_bus(m->port, key, sizeof(key))) {
            r = bucket_push(index->by_key, key, i);
        } else if ((m->keys & MATCH_SERIAL) && m->serial[0] && !strchr("*?[\\", m->serial[0])) {
            key[0] = 's';
            key[1] = ':';
            key[2] = m->serial[0];
            key[3] = '\0';
            r = bucket_push(index->by_key, key, i);
        } else {
            r = list_push(&index->general, i);
        }
        if (r < 0)
            goto fail;
    }
    return index;
fail:
    match_index_free(index);
    return NULL;
}

/* Four lowercase hex digits, as sysfs spells ids (snprintf costs 10x more). */
static char *hex4(char *buf, unsigned v)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 3; i >= 0; i--, v >>= 4)
        buf[i] = digits[v & 0xf];
    buf[4] = '\0';
    return buf;
}

static bool glob_match(const char *glob, const char *value)
{
    return value && fnmatch(glob, value, 0) == 0;
}

static bool class_match(const struct class_match *m, const struct usb_class *c)
{
    return m->cls == c->cls && (m->subclass < 0 || m->subclass == c->subclass) &&
           (m->protocol < 0 || m->protocol == c->protocol);
}

static bool class_in_set(const struct class_match *set, unsigned n, const struct usb_class *c)
{
    for (unsigned i = 0; i < n; i++)
        if (class_match(&set[i], c))
            return true;
    return false;
}

static void class_string(const struct class_match *m, char *buf, size_t len)
{
    if (m->subclass < 0)
        snprintf(buf, len, "%02x", m->cls);
    else if (m->protocol < 0)
        snprintf(buf, len, "%02x:%02x", m->cls, m->subclass);
    else
        snprintf(buf, len, "%02x:%02x:%02x", m->cls, m->subclass, m->protocol);
}

/* A hub named by its path ("pci-...") rather than by bus ("usb3", "1-1"). */
static bool is_path_hub(const char *hub)
{
    return strncmp(hub, "pci-", 4) == 0;
}

/* A hub named in the form with the USB revision ("pci-...-usbv3..."). */
static bool hub_has_revision(const char *hub)
{
    unsigned depth, rev;

    return device_id_path_parse_rev(hub, &depth, &rev) == 0 && rev != 0;
}

#define FAIL(...)                                   \
    do {                                            \
        if (why)                                    \
            snprintf(why, len, __VA_ARGS__);        \
        return false;                               \
    } while (0)

bool match_rule(const struct policy_rule *rule, const struct usb_device *dev,
                char *why, size_t len)
{
    const struct rule_match *m = &rule->match;
    char hex[8], esc[128], esc2[128];

    if ((m->keys & MATCH_VENDOR) && !glob_match(m->vendor, hex4(hex, dev->vendor)))
        FAIL("vendor %s does not match %s", hex, m->vendor);
    if ((m->keys & MATCH_PRODUCT) && !glob_match(m->product, hex4(hex, dev->product)))
        FAIL("product %s does not match %s", hex, m->product);
    if ((m->keys & MATCH_PORT) && !glob_match(m->port, dev->port))
        FAIL("port %s does not match %s", dev->port, m->port);
    /* A path in either form: udev's plain ID_PATH or the one with the revision. */
    if ((m->keys & MATCH_PATH) && !glob_match(m->path, dev->id_path) &&
        !glob_match(m->path, dev->id_path_rev)) {
        if (!dev->id_path)
            FAIL("the device has no path to match %s", m->path);
        if (dev->id_path_rev)
            FAIL("path %s or %s does not match %s", log_escape(dev->id_path, esc, sizeof(esc)),
                 log_escape(dev->id_path_rev, esc2, sizeof(esc2)), m->path);
        FAIL("path %s does not match %s", log_escape(dev->id_path, esc, sizeof(esc)), m->path);
    }
    /* One socket: the port the device is in, or that port's peer. */
    if ((m->keys & MATCH_CONNECTOR) &&
        !(dev->id_path_rev && strcmp(m->connector, dev->id_path_rev) == 0) &&
        !(dev->peer_path && strcmp(m->connector, dev->peer_path) == 0)) {
        if (!dev->id_path_rev)
            FAIL("the device has no path with a USB revision to be in connector %s",
                 m->connector);
        if (dev->peer_path)
            FAIL("port %s and its peer %s are not connector %s",
                 log_escape(dev->id_path_rev, esc, sizeof(esc)),
                 log_escape(dev->peer_path, esc2, sizeof(esc2)), m->connector);
        FAIL("port %s (no peer) is not connector %s",
             log_escape(dev->id_path_rev, esc, sizeof(esc)), m->connector);
    }
    if ((m->keys & MATCH_HUB) && is_path_hub(m->hub)) {
        const char *path = hub_has_revision(m->hub) ? dev->id_path_rev : dev->id_path;

        if (!path)
            FAIL("the device has no path%s to be below hub %s",
                 dev->id_path ? " with a USB revision" : "", m->hub);
        if (!device_id_path_below(path, m->hub))
            FAIL("path %s is not below hub %s", log_escape(path, esc, sizeof(esc)), m->hub);
    } else if ((m->keys & MATCH_HUB) && !device_port_below(dev->port, m->hub)) {
        FAIL("port %s is not below hub %s", dev->port, m->hub);
    }
    if ((m->keys & MATCH_SERIAL) && !glob_match(m->serial, dev->serial))
        FAIL("serial \"%s\" does not match \"%s\"",
             log_escape(dev->serial, esc, sizeof(esc)), m->serial);
    if ((m->keys & MATCH_MANUFACTURER) && !glob_match(m->manufacturer, dev->manufacturer))
        FAIL("manufacturer \"%s\" does not match \"%s\"",
             log_escape(dev->manufacturer, esc, sizeof(esc)), m->manufacturer);
    if ((m->keys & MATCH_PRODUCT_NAME) && !glob_match(m->product_name, dev->product_name))
        FAIL("product name \"%s\" does not match \"%s\"",
             log_escape(dev->product_name, esc, sizeof(esc)), m->product_name);
    if ((m->keys & MATCH_CLASS) && !class_match(&m->dev_class, &dev->dev_class)) {
        class_string(&m->dev_class, esc, sizeof(esc));
        FAIL("device class %02x:%02x:%02x does not match %s", dev->dev_class.cls,
             dev->dev_class.subclass, dev->dev_class.protocol, esc);
    }
    if (m->keys & MATCH_IFACE_CLASS) {
        bool any = false;

        for (unsigned i = 0; i < dev->n_ifaces && !any; i++)
            any = class_match(&m->iface_class, &dev->ifaces[i]);
        if (!any) {
            class_string(&m->iface_class, esc, sizeof(esc));
            FAIL("no interface of class %s", esc);
        }
    }
    if ((m->keys & MATCH_CONNECT_TYPE) && (int)dev->connect_type != m->connect_type)
        FAIL("its port is %s, not %s", device_connect_name(dev->connect_type),
             device_connect_name((enum device_connect)m->connect_type));
    if (m->keys & MATCH_EVERY_IFACE) {
        if (dev->n_ifaces == 0)
            FAIL("its interfaces are unknown: not every one can be of the classes asked");
        for (unsigned i = 0; i < dev->n_ifaces; i++)
            if (!class_in_set(m->every_iface, m->n_every, &dev->ifaces[i]))
                FAIL("interface %u is of class %02x:%02x:%02x, not one of every-interface-class",
                     i, dev->ifaces[i].cls, dev->ifaces[i].subclass, dev->ifaces[i].protocol);
    }
    if (m->keys & MATCH_NO_IFACE) {
        if (dev->n_ifaces == 0)
            FAIL("its interfaces are unknown: none can be shown to be outside "
                 "no-interface-class");
        for (unsigned i = 0; i < dev->n_ifaces; i++)
            if (class_in_set(m->no_iface, m->n_no, &dev->ifaces[i]))
                FAIL("interface %u is of class %02x:%02x:%02x, one of no-interface-class", i,
                     dev->ifaces[i].cls, dev->ifaces[i].subclass, dev->ifaces[i].protocol);
    }
    if (why && len)
        snprintf(why, len, "every key matches");
    return true;
}

/* True when glob a matches everything glob b does: equal, or b literal and a matches it. */
static bool glob_covers(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    /* A literal covers only itself: no fnmatch for the common case (--check, 10,000 rules). */
    return !is_exact(a) && is_exact(b) && fnmatch(a, b, 0) == 0;
}

static bool class_covers(const struct class_match *a, const struct class_match *b)
{
    return a->cls == b->cls && (a->subclass < 0 || a->subclass == b->subclass) &&
           (a->protocol < 0 || a->protocol == b->protocol);
}

/* Every class b matches, some class of set a matches too. */
static bool set_covers_class(const struct class_match *a, unsigned n, const struct class_match *b)
{
    for (unsigned i = 0; i < n; i++)
        if (class_covers(&a[i], b))
            return true;
    return false;
}

/* Set a takes every class set b takes. */
static bool set_covers(const struct class_match *a, unsigned na, const struct class_match *b,
                       unsigned nb)
{
    for (unsigned i = 0; i < nb; i++)
        if (!set_covers_class(a, na, &b[i]))
            return false;
    return true;
}

/* Every device below hub b is below hub a (each in the same form, by port or by path). */
static bool hub_covers(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    if (is_path_hub(a) != is_path_hub(b))
        return false;
    return is_path_hub(a) ? device_id_path_below(b, a) : device_port_below(b, a);
}

bool match_rule_covers(const struct rule_match *earlier, const struct rule_match *later)
{
    const struct rule_match *e = earlier, *l = later;

    if ((e->keys & l->keys) != e->keys)
        return false;
    return (!(e->keys & MATCH_VENDOR) || glob_covers(e->vendor, l->vendor)) &&
           (!(e->keys & MATCH_PRODUCT) || glob_covers(e->product, l->product)) &&
           (!(e->keys & MATCH_SERIAL) || glob_covers(e->serial, l->serial)) &&
           (!(e->keys & MATCH_MANUFACTURER) || glob_covers(e->manufacturer, l->manufacturer)) &&
           (!(e->keys & MATCH_PRODUCT_NAME) || glob_covers(e->product_name, l->product_name)) &&
           (!(e->keys & MATCH_PORT) || glob_covers(e->port, l->port)) &&
           (!(e->keys & MATCH_PATH) || glob_covers(e->path, l->path)) &&
           (!(e->keys & MATCH_HUB) || hub_covers(e->hub, l->hub)) &&
           (!(e->keys & MATCH_CONNECTOR) || strcmp(e->connector, l->connector) == 0) &&
           (!(e->keys & MATCH_CLASS) || class_covers(&e->dev_class, &l->dev_class)) &&
           (!(e->keys & MATCH_IFACE_CLASS) || class_covers(&e->iface_class, &l->iface_class)) &&
           (!(e->keys & MATCH_CONNECT_TYPE) || e->connect_type == l->connect_type) &&
           /* Every interface in l's set is in e's: e's set is wider. */
           (!(e->keys & MATCH_EVERY_IFACE) ||
            set_covers(e->every_iface, e->n_every, l->every_iface, l->n_every)) &&
           /* No interface in l's set, so none in e's when l's takes all of e's. */
           (!(e->keys & MATCH_NO_IFACE) ||
            set_covers(l->no_iface, l->n_no, e->no_iface, e->n_no));
}

unsigned match_shadowed(const struct policy *policy,
                        void (*fn)(void *arg, const struct policy_rule *dead,
                                   const struct policy_rule *by),
                        void *arg)
{
    unsigned n = 0;

    for (unsigned i = 1; i < policy->n_rules; i++)
        for (unsigned j = 0; j < i; j++)
            if (match_rule_covers(&policy->rules[j].match, &policy->rules[i].match)) {
                fn(arg, &policy->rules[i], &policy->rules[j]);
                n++;
                break;
            }
    return n;
}

const struct policy_rule *match_device_linear(const struct policy *policy,
                                              const struct usb_device *dev)
{
    for (unsigned i = 0; i < policy->n_rules; i++)
        if (match_rule(&policy->rules[i], dev, NULL, 0))
            return &policy->rules[i];
    return NULL;
}

/*
 * Up to: id, port, two paths, two connectors, vendor, bus, serial, the root
 * hub and its hubs, the controller and its hubs by each path, general.
 */
#define MAX_LISTS (3 * DEVICE_MAX_PORT_DEPTH + 14)

/*
 * Adds to lists[n...] the hub buckets of every hub above the device by path
 * (plain or with the revision): each hub ("...-usb-0:1"), then the root hub
 * ("...-usbv3", with the revision only) and, when controller is set, the
 * controller ("pci-..."; one list must not come twice).  Returns the new n.
 */
static size_t hub_lists_by_path(const struct match_index *index, const char *id_path,
                                bool controller, const struct rule_list **lists, size_t n)
{
    char path[DEVICE_STR_MAX + 1];
    unsigned depth, rev;
    char *usb, *ports;

    if (!id_path || device_id_path_parse_rev(id_path, &depth, &rev) < 0 || depth == 0)
        return n;
    snprintf(path, sizeof(path), "%s", id_path);
    usb = strstr(path + 4, "-usb");
    ports = strstr(usb, "-0:");
    for (char *dot = strrchr(ports, '.'); dot; dot = strrchr(ports, '.')) {
        *dot = '\0';
        if ((lists[n] = strmap_get(index->by_hub, path)))
            n++;
    }
    *ports = '\0';
    if (rev && (lists[n] = strmap_get(index->by_hub, path)))
        n++;
    /* The controller: "pci-..." without "-usb" or "-usbvN". */
    *usb = '\0';
    if (controller && (lists[n] = strmap_get(index->by_hub, path)))
        n++;
    return n;
}

const struct policy_rule *match_device(const struct policy *policy,
                                       const struct usb_device *dev)
{
    const struct match_index *index = policy->index;
    const struct rule_list *lists[MAX_LISTS];
    size_t heads[MAX_LISTS] = { 0 };
    size_t n = 0;
    char key[64];
    unsigned bus, depth;

    /* A port the index cannot take apart (never the kernel's) gets the scan. */
    if (!index || device_port_parse(dev->port, &bus, &depth) < 0)
        return match_device_linear(policy, dev);
    hex4(key, dev->vendor);
    key[4] = ':';
    hex4(key + 5, dev->product);
    if ((lists[n] = strmap_get(index->by_id, key)))
        n++;
    if ((lists[n] = strmap_get(index->by_port, dev->port)))
        n++;
    if (dev->id_path && (lists[n] = strmap_get(index->by_path, dev->id_path)))
        n++;
    if (dev->id_path_rev && (lists[n] = strmap_get(index->by_path, dev->id_path_rev)))
        n++;
    if (strmap_size(index->by_connector)) {
        if (dev->id_path_rev &&
            (lists[n] = strmap_get(index->by_connector, dev->id_path_rev)))
            n++;
        if (dev->peer_path && (lists[n] = strmap_get(index->by_connector, dev->peer_path)))
            n++;
    }
    if (strmap_size(index->by_key)) {
        memcpy(key, "v:", 2);
        hex4(key + 2, dev->vendor);
        if ((lists[n] = strmap_get(index->by_key, key)))
            n++;
        if (device_port_parse(dev->port, &bus, &depth) == 0) {
            snprintf(key, sizeof(key), "b:%u", bus);
            if ((lists[n] = strmap_get(index->by_key, key)))
                n++;
        }
        if (dev->serial && dev->serial[0]) {
            key[0] = 's';
            key[1] = ':';
            key[2] = dev->serial[0];
            key[3] = '\0';
            if ((lists[n] = strmap_get(index->by_key, key)))
                n++;
        }
    }
    if (strmap_size(index->by_hub) && device_port_parse(dev->port, &bus, &depth) == 0) {
        /* Every hub above the device: usbN, then each shorter port path. */
        snprintf(key, sizeof(key), "usb%u", bus);
        if ((lists[n] = strmap_get(index->by_hub, key)))
            n++;
        snprintf(key, sizeof(key), "%s", dev->port);
        for (char *dot = strrchr(key, '.'); dot; dot = strrchr(key, '.')) {
            *dot = '\0';
            if ((lists[n] = strmap_get(index->by_hub, key)))
                n++;
        }
    }
    if (strmap_size(index->by_hub)) {
        n = hub_lists_by_path(index, dev->id_path, true, lists, n);
        n = hub_lists_by_path(index, dev->id_path_rev, !dev->id_path, lists, n);
    }
    if (index->general.n)
        lists[n++] = &index->general;
    for (;;) {
        size_t best = MAX_LISTS;
        uint32_t pos = UINT32_MAX;

        for (size_t i = 0; i < n; i++)
            if (heads[i] < lists[i]->n && lists[i]->v[heads[i]] < pos) {
                pos = lists[i]->v[heads[i]];
                best = i;
            }
        if (best == MAX_LISTS)
            return NULL;
        heads[best]++;
        if (match_rule(&policy->rules[pos], dev, NULL, 0))
            return &policy->rules[pos];
    }
}

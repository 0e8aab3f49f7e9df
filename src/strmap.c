/*
 * A string-keyed hash map with separate chaining.  Small and predictable:
 * the device table holds tens of entries, the rule index thousands.
 */
#include "config.h"

#include "strmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    uint32_t hash;
    void *value;
    char key[];
};

struct strmap {
    struct entry **buckets;
    size_t n_buckets;       /* a power of two */
    size_t size;
};

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;   /* FNV-1a */

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 16777619u;
    }
    return h;
}

struct strmap *strmap_new(void)
{
    struct strmap *map = calloc(1, sizeof(*map));

    if (!map)
        return NULL;
    map->n_buckets = 16;
    map->buckets = calloc(map->n_buckets, sizeof(*map->buckets));
    if (!map->buckets) {
        free(map);
        return NULL;
    }
    return map;
}

void strmap_free(struct strmap *map, void (*free_value)(void *))
{
    if (!map)
        return;
    for (size_t i = 0; i < map->n_buckets; i++) {
        struct entry *e = map->buckets[i];

        while (e) {
            struct entry *next = e->next;

            if (free_value)
                free_value(e->value);
            free(e);
            e = next;
        }
    }
    free(map->buckets);
    free(map);
}

static struct entry **find(const struct strmap *map, const char *key, uint32_t hash)
{
    struct entry **slot = &map->buckets[hash & (map->n_buckets - 1)];

    while (*slot && ((*slot)->hash != hash || strcmp((*slot)->key, key) != 0))
        slot = &(*slot)->next;
    return slot;
}

void *strmap_get(const struct strmap *map, const char *key)
{
    struct entry *e = *find(map, key, hash_str(key));

    return e ? e->value : NULL;
}

static int grow(struct strmap *map)
{
    size_t n = map->n_buckets * 2;
    struct entry **buckets = calloc(n, sizeof(*buckets));

    if (!buckets)
        return -ENOMEM;
    for (size_t i = 0; i < map->n_buckets; i++) {
        struct entry *e = map->buckets[i];

        while (e) {
            struct entry *next = e->next;
            struct entry **slot = &buckets[e->hash & (n - 1)];

            e->next = *slot;
            *slot = e;
            e = next;
        }
    }
    free(map->buckets);
    map->buckets = buckets;
    map->n_buckets = n;
    return 0;
}

int strmap_put(struct strmap *map, const char *key, void *value, void **old)
{
    uint32_t hash = hash_str(key);
    struct entry **slot = find(map, key, hash);
    size_t len;

    if (old)
        *old = NULL;
    if (*slot) {
        if (old)
            *old = (*slot)->value;
        (*slot)->value = value;
        return 0;
    }
    /* Keep chains short: grow at a load factor of 1 (best effort). */
    if (map->size >= map->n_buckets && grow(map) == 0)
        slot = find(map, key, hash);
    len = strlen(key) + 1;
    *slot = malloc(sizeof(**slot) + len);
    if (!*slot)
        return -ENOMEM;
    (*slot)->next = NULL;
    (*slot)->hash = hash;
    (*slot)->value = value;
    memcpy((*slot)->key, key, len);
    map->size++;
    return 0;
}

void *strmap_remove(struct strmap *map, const char *key)
{
    struct entry **slot = find(map, key, hash_str(key));
    struct entry *e = *slot;
    void *value;

    if (!e)
        return NULL;
    *slot = e->next;
    value = e->value;
    free(e);
    map->size--;
    return value;
}

size_t strmap_size(const struct strmap *map)
{
    return map->size;
}

int strmap_next(const struct strmap *map, size_t *pos, const char **key, void **value)
{
    /* pos encodes bucket << 16 | depth in the chain. */
    size_t bucket = *pos >> 16, depth = *pos & 0xffff;

    for (; bucket < map->n_buckets; bucket++, depth = 0) {
        struct entry *e = map->buckets[bucket];

        for (size_t i = 0; e && i < depth; i++)
            e = e->next;
        if (e) {
            *key = e->key;
            *value = e->value;
            *pos = bucket << 16 | (depth + 1);
            return 0;
        }
    }
    *pos = bucket << 16;
    return -1;
}

/*
 * A small hash map from strings to pointers, used for the device table and
 * the rule index.  Keys are copied; values are the caller's.
 */
#ifndef AUA_STRMAP_H
#define AUA_STRMAP_H

#include <stddef.h>

struct strmap;

/* Returns an empty map, or NULL on ENOMEM. */
struct strmap *strmap_new(void);
/* Frees the map and its keys; free_value (may be NULL) is called on each value. */
void strmap_free(struct strmap *map, void (*free_value)(void *));
void *strmap_get(const struct strmap *map, const char *key);
/* Inserts or replaces; the old value is returned in *old if old != NULL. 0 or -ENOMEM. */
int strmap_put(struct strmap *map, const char *key, void *value, void **old);
/* Removes key and returns its value, or NULL. */
void *strmap_remove(struct strmap *map, const char *key);
size_t strmap_size(const struct strmap *map);

/* Iteration: *pos starts at 0; returns 0 and fills key/value, or -1 at the end. */
int strmap_next(const struct strmap *map, size_t *pos, const char **key, void **value);

#endif

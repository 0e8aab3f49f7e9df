/*
 * An intrusive doubly linked list: each element holds a struct link, the
 * list is a struct link * to the first one.  An element unlinks itself
 * without its list's head or a walk, which is what the backends need for
 * their operations in flight: an answer ends its own operation, wherever it
 * is in the list.
 */
#ifndef AUA_LINK_H
#define AUA_LINK_H

#include <stddef.h>

struct link {
    struct link *next;
    struct link **prev;     /* the pointer that points at this link */
};

/* The element of type type whose member member is the link l. */
#define LINK_ENTRY(l, type, member) ((type *)(void *)((char *)(l) - offsetof(type, member)))

/* Puts l first in the list *head. */
static inline void link_push(struct link **head, struct link *l)
{
    l->next = *head;
    l->prev = head;
    if (l->next)
        l->next->prev = &l->next;
    *head = l;
}

static inline void link_remove(struct link *l)
{
    *l->prev = l->next;
    if (l->next)
        l->next->prev = l->prev;
}

#endif

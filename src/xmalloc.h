/*
 * Allocation failure ends the daemon, with a message (src/xmalloc.c says
 * why and how).  Nothing to call by hand: the programs are linked so that
 * malloc, calloc, realloc, strdup and strndup of their own code come here.
 */
#ifndef AUA_XMALLOC_H
#define AUA_XMALLOC_H

#include <stddef.h>

/* Routes jansson's allocations through the same policy; call once at start. */
void xmalloc_init(void);

#ifdef AUA_ALLOC_FAULTS
/*
 * For tests/unit/test-alloc.c: the nth allocation from now (1 for the next)
 * fails as if memory were exhausted; 0 turns it off.  Returns how many
 * allocations were counted since the last call.
 */
unsigned long xmalloc_fail_at(unsigned long nth);
#endif

#endif

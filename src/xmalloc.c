/*
 * The daemon's one answer to allocation failure: a message, then exit(1),
 * as OpenBSD's daemons do (and systemd restarts it).  Recovery paths that no
 * test runs were wrong where it mattered: a strdup that failed while a rule
 * was read dropped that match key, so {id, serial} became {id} and the rule
 * took more devices than written, in a root daemon.  Stopping is never
 * weaker than the policy.
 *
 * No call site has to remember it: the daemon is linked with
 * -Wl,--wrap=malloc (and calloc, realloc, strdup, strndup; Makefile.am),
 * which sends every call of its own code, the libxl module's included (the
 * daemon exports these to it), to the __wrap_ functions here; the NULL
 * checks left at the call sites are never taken.  jansson allocates through
 * xmalloc_init's functions.  Libraries that allocate for themselves
 * (libyaml, libudev, libev, libxl) report a failure as an error of their
 * own, which their callers here handle like any other: a policy with an
 * error is refused whole.
 */
#include "config.h"

#include "xmalloc.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

#ifdef AUA_ALLOC_FAULTS
static unsigned long fault_count, fault_at;

unsigned long xmalloc_fail_at(unsigned long nth)
{
    unsigned long counted = fault_count;

    fault_count = 0;
    fault_at = nth;
    return counted;
}

static bool fault(void)
{
    return ++fault_count == fault_at;
}
#else
static bool fault(void)
{
    return false;
}
#endif

static void out_of_memory(size_t n) __attribute__((noreturn));

static void out_of_memory(size_t n)
{
    errno = ENOMEM;
    /* fatal() formats on the stack: it needs no memory of its own. */
    fatal("cannot allocate %zu bytes: stopping", n);
}

void *__wrap_malloc(size_t n)
{
    void *p = fault() ? NULL : __real_malloc(n);

    if (!p && n)
        out_of_memory(n);
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    void *p = fault() ? NULL : __real_calloc(n, size);

    if (!p && n && size)
        out_of_memory(n * size);
    return p;
}

void *__wrap_realloc(void *old, size_t n)
{
    void *p = fault() ? NULL : __real_realloc(old, n);

    if (!p && n)
        out_of_memory(n);
    return p;
}

char *__wrap_strdup(const char *s)
{
    char *p = fault() ? NULL : __real_strdup(s);

    if (!p)
        out_of_memory(strlen(s) + 1);
    return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
    char *p = fault() ? NULL : __real_strndup(s, n);

    if (!p)
        out_of_memory(strnlen(s, n) + 1);
    return p;
}

static void *json_alloc(size_t n)
{
    return __wrap_malloc(n);
}

void xmalloc_init(void)
{
    json_set_alloc_funcs(json_alloc, free);
}

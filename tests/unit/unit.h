/*
 * Helpers the unit tests share.  Include after <cmocka.h> and "policy.h".
 */
#ifndef AUA_UNIT_H
#define AUA_UNIT_H

#include <string.h>

/*
 * The policy in text (named "t.yaml" in messages); the test fails, with
 * the parser's messages printed, unless it loads.  Free with policy_free().
 */
static inline struct policy *unit_policy(const char *text)
{
    struct policy_diag diag = { 0 };
    struct policy *p = policy_load_buffer("t.yaml", text, strlen(text), &diag);

    for (size_t i = 0; i < diag.n; i++)
        print_message("%s\n", diag.msgs[i]);
    policy_diag_free(&diag);
    assert_non_null(p);
    return p;
}

#endif

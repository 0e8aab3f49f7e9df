/*
 * Matching a device against the rules of a policy: the first rule that
 * holds wins.  An index by vendor:product, port and hub keeps this fast with
 * thousands of rules; the answer is always the same as a scan in order.
 */
#ifndef AUA_MATCH_H
#define AUA_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "device.h"
#include "policy.h"

struct match_index;

/* Builds the index of policy's rules.  NULL on ENOMEM. */
struct match_index *match_index_build(const struct policy *policy);
void match_index_free(struct match_index *index);

/* The first rule that matches dev, or NULL when none does. */
const struct policy_rule *match_device(const struct policy *policy,
                                       const struct usb_device *dev);

/*
 * True when every key of rule holds for dev.  When it does not and why is not
 * NULL, writes the first key that failed and why into why (len bytes).
 */
bool match_rule(const struct policy_rule *rule, const struct usb_device *dev,
                char *why, size_t len);

/* The first rule in file order that matches: the reference for the index. */
const struct policy_rule *match_device_linear(const struct policy *policy,
                                              const struct usb_device *dev);

#endif

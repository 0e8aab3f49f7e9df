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

/*
 * True when every device that rule later matches is matched by rule earlier
 * too, as the keys alone tell: each key of earlier is a key of later, with
 * the same value or a wider one (a glob matching later's literal value, a
 * hub above later's hub, a class with fewer parts).  False when that cannot
 * be known from the keys.
 */
bool match_rule_covers(const struct rule_match *earlier, const struct rule_match *later);

/*
 * Calls fn for each rule that an earlier rule covers (match_rule_covers),
 * naming the first such earlier rule: a rule that can never match.  Returns
 * how many there are.
 */
unsigned match_shadowed(const struct policy *policy,
                        void (*fn)(void *arg, const struct policy_rule *dead,
                                   const struct policy_rule *by),
                        void *arg);

/* The first rule in file order that matches: the reference for the index. */
const struct policy_rule *match_device_linear(const struct policy *policy,
                                              const struct usb_device *dev);

#endif

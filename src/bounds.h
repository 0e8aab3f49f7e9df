/*
 * Sizes that several modules must agree on, in one place: a guest's name or
 * a port path that the validators accept must fit wherever it is kept (a
 * 64-character guest name kept in 63 was swept as a guest the policy does
 * not name).
 */
#ifndef AUA_BOUNDS_H
#define AUA_BOUNDS_H

/* Characters of a guest's name (policy_check_domain_name); kept in [+ 1]. */
#define AUA_DOMAIN_NAME_MAX 64
/* Characters of a port path such as "1-1.2.3.4.5.6.7"; kept in [+ 1]. */
#define AUA_BUSID_MAX 31
/* Ports of one controller the daemon follows (xHCI: 15; PV USB: 15 here). */
#define AUA_CTRL_PORTS_MAX 16

#endif

/*
 * The small machine that the router's unit tests (test-router.c) and the
 * control socket's fuzz harness (tests/fuzz/fuzz-control.c) both route:
 * its policy and where its devices sit in sysfs.
 *
 * The policy has three guests: vault (no controller of its own), win10
 * (version 3, 15 ports, up to 2 controllers) and small (version 1, 2 ports,
 * 1 controller); and four rules: the YubiKey to the vault, boot keyboards
 * ignored (the rule's name, as YAML, is the caller's: the fuzz harness gives
 * it an escape sequence), the rest of bus 1's hub 1-1 to win10 (a rule
 * without a name), and bus 2's hub 2-1 to small.
 */
#ifndef AUA_ROUTER_FIXTURE_H
#define AUA_ROUTER_FIXTURE_H

#include <stdio.h>

#define ROUTER_FIXTURE_POLICY(keyboard_rule_name)                 \
    "version: 1\n"                                                \
    "domains:\n"                                                  \
    "  vault: {}\n"                                               \
    "  win10:\n"                                                  \
    "    controller: {version: 3, ports: 15, max: 2}\n"           \
    "  small:\n"                                                  \
    "    controller: {version: 1, ports: 2, max: 1}\n"            \
    "rules:\n"                                                    \
    "  - name: yubikeys go to the vault\n"                        \
    "    match: {id: \"1050:0407\"}\n"                            \
    "    domain: vault\n"                                         \
    "  - name: " keyboard_rule_name "\n"                          \
    "    match: {interface-class: \"03:01:01\"}\n"                \
    "    action: ignore\n"                                        \
    "  - match: {hub: \"1-1\"}\n"                                 \
    "    domain: win10\n"                                         \
    "  - name: the small guest\n"                                 \
    "    match: {hub: \"2-1\"}\n"                                 \
    "    domain: small\n"

/* The sysfs path of the device at port ("1-1.2": bus 1, below usb1). */
static inline void router_fixture_devpath(char *buf, size_t size, const char *port)
{
    snprintf(buf, size, "/devices/pci0000:00/0000:00:14.0/usb%c/%s", port[0], port);
}

#endif

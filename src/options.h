/*
 * The command line: the old script's options (-d -u -x -n -s -v -q -w
 * --usb-version) keep their meaning, and -d/-u/-x become an in-memory policy
 * equal to a file with one rule per -u and per -x.
 */
#ifndef AUA_OPTIONS_H
#define AUA_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

struct options {
    const char *policy_file;    /* -c; NULL: the default or -d/-u/-x */
    const char *domain;         /* -d */
    const char **hubs;          /* -u, repeatable */
    size_t n_hubs;
    const char **ids;           /* -x, repeatable */
    size_t n_ids;
    const char *qmp_socket;     /* -s */
    const char *control_socket; /* NULL: the default (none in dry-run) */
    const char *control_group;  /* may also use the control socket */
    bool control_group_changes; /* ...and its commands that change something */
    const char *state_dir;
    int usb_version;            /* --usb-version; 0 when not given */
    bool no_wait;               /* -n */
    bool allow_lockout;         /* --allow-dom0-lockout, with -d */
    bool dry_run;
    bool json;
    bool check;
    bool once;
    bool foreground;
    bool insecure_policy;       /* accept a policy file others may write */
    int generate;               /* 0, or 1 + enum generate_by */
    int verbosity;              /* +1 per -v, -1 per -q */
};

enum options_result {
    OPTIONS_RUN = 0,            /* go on */
    OPTIONS_EXIT_OK = 1,        /* --help or --version was printed */
    OPTIONS_ERROR = -1,         /* a message was printed; exit 2 */
};

/* Parses argv into o (pointers into argv).  Free with options_free. */
enum options_result options_parse(int argc, char **argv, struct options *o);
void options_free(struct options *o);

#define OPTIONS_DEFAULT_STATE_DIR "/run/auto-usb-attach"
#define OPTIONS_DEFAULT_CONTROL_SOCKET "/run/auto-usb-attach/control"

/* The policy file used when neither -c nor -d is given. */
const char *options_default_policy(void);

/* True when -d/-u/-x describe the policy. */
bool options_legacy(const struct options *o);

/*
 * Builds the policy -d/-u/-x describe: one rule per -u (hub -> domain) and
 * per -x (id -> domain).  NULL with the errors in diag.
 */
struct policy *options_policy(const struct options *o, struct policy_diag *diag);

#endif

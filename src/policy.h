/*
 * The policy: which guest each USB device belongs to.  A YAML file (or the
 * old script's -d/-u/-x options) becomes an immutable struct policy; every
 * error names FILE:LINE:COLUMN.  A policy is built completely before it is
 * used, so a bad file never replaces a good one.
 */
#ifndef AUA_POLICY_H
#define AUA_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <stddef.h>
#include <time.h>

#include "device.h"

/* Larger files are refused before they are parsed. */
#define POLICY_MAX_BYTES (16u << 20)
/* YAML nesting deeper than this is refused (a policy needs 5). */
#define POLICY_MAX_DEPTH 32
/* Reporting stops after this many errors. */
#define POLICY_MAX_ERRORS 100

enum rule_action {
    RULE_ATTACH,
    RULE_IGNORE,
};

enum match_key {
    MATCH_VENDOR = 1u << 0,
    MATCH_PRODUCT = 1u << 1,
    MATCH_SERIAL = 1u << 2,
    MATCH_MANUFACTURER = 1u << 3,
    MATCH_PRODUCT_NAME = 1u << 4,
    MATCH_HUB = 1u << 5,
    MATCH_PORT = 1u << 6,
    MATCH_CLASS = 1u << 7,
    MATCH_IFACE_CLASS = 1u << 8,
    MATCH_PATH = 1u << 9,
    MATCH_CONNECTOR = 1u << 10,
    MATCH_CONNECT_TYPE = 1u << 11,
    MATCH_EVERY_IFACE = 1u << 12,
    MATCH_NO_IFACE = 1u << 13,
};

/* Classes in one every-interface-class or no-interface-class set, at most. */
#define POLICY_MAX_CLASS_SET 16

/* A class, subclass and protocol; -1 in a field matches any value. */
/* -1: any; 16 bits: 10,000 rules are 0.1 MB smaller than with ints. */
struct class_match {
    int16_t cls;
    int16_t subclass;
    int16_t protocol;
};

struct rule_match {
    unsigned keys;          /* enum match_key bits that are set */
    char *vendor;           /* glob on "1050" (lowercase hex) */
    char *product;          /* glob on "0407" */
    char *serial;           /* globs on the device's strings */
    char *manufacturer;
    char *product_name;
    char *hub;              /* "usb3", a port path or an id path: the device is below it */
    char *port;             /* glob on the port path */
    char *path;             /* glob on the id path, "pci-0000:00:14.0-usb-0:1.4" */
    char *connector;        /* a port's path with revision: that port or its peer */
    struct class_match dev_class;
    struct class_match iface_class;
    int connect_type;       /* enum device_connect of the device's port */
    unsigned n_every;
    unsigned n_no;
    struct class_match *every_iface;    /* each interface is one of these */
    struct class_match *no_iface;       /* no interface is one of these */
};

/* The members in an order that leaves no holes: 10,000 rules are in one array. */
struct policy_rule {
    unsigned index;         /* 1-based position in the file */
    unsigned line;          /* where the rule starts */
    unsigned column;
    const char *file;       /* the file it was read from (policy->source or a drop-in) */
    bool dropin;            /* read from a drop-in, not from the main file */
    enum rule_action action;
    int domain;             /* index in policy->domains; -1 for ignore */
    bool allow_lockout;     /* may take dom0's last keyboard (rule, domain or defaults) */
    char *name;             /* NULL when the rule has none */
    struct rule_match match;
};

/*
 * Who serves a guest's USB controller: its device model (an emulated UHCI,
 * EHCI or xHCI in the guest's QEMU: HVM guests) or QEMU in dom0 as a PV USB
 * backend ("qusb": PV and PVH guests, and HVM guests with PV USB drivers).
 * AUTO: by the guest's type, when it runs.
 */
enum controller_type {
    CONTROLLER_AUTO,
    CONTROLLER_DEVICEMODEL,
    CONTROLLER_QUSB,
};

struct controller_spec {
    enum controller_type type;
    int version;            /* 1, 2 or 3 (qusb: 1 or 2) */
    int ports;
    int max;                /* controllers the daemon may create */
};

struct policy_domain {
    char *name;
    const char *file;       /* where it is declared (policy->source or a drop-in) */
    unsigned line;          /* 0: not declared in a file (the command line) */
    struct controller_spec controller;
    char *qmp_socket;       /* NULL: attach through libxl */
    bool allow_lockout;     /* its rules may take dom0's last keyboard */
};

struct match_index;

/*
 * The main file's 'defaults:' as given (-1, NULL: a key not given): the
 * drop-ins' domains are built over them.
 */
struct policy_defaults {
    int version;
    int ports;
    int max;
    bool controller;        /* 'controller:' given */
    char *qmp_socket;
    int lockout;            /* allow-dom0-lockout */
};

/*
 * What a policy was loaded from, to tell an unchanged file on a reload
 * (policy_file_unchanged): the text's length and hash, and for a file its
 * stat at the load (file_known).
 */
struct policy_text_id {
    size_t len;
    uint64_t hash;          /* policy_text_hash of the text parsed */
    bool file_known;
    struct stat st;
};

struct policy_strings;

struct policy {
    char *source;           /* file name, or "command line" */
    char **dropins;         /* the drop-in files read after it, in order */
    unsigned n_dropins;
    struct policy_defaults defaults;
    time_t loaded;
    struct policy_text_id text;
    /* The rules' names and match strings, packed (policy_add_rule copies them there). */
    struct policy_strings *strings;
    struct policy_domain *domains;
    unsigned n_domains;
    struct policy_rule *rules;
    unsigned n_rules;
    struct match_index *index;
};

/* Error messages of one load, each "FILE:LINE:COLUMN: message". */
struct policy_diag {
    char **msgs;            /* in file order */
    unsigned long *pos;     /* line << 24 | column of each message */
    size_t n;
    size_t cap;
    bool truncated;         /* more than POLICY_MAX_ERRORS */
};

void policy_diag_free(struct policy_diag *diag);

/*
 * Reads and validates a policy file.  Returns a new policy (free it with
 * policy_free) or NULL with every error appended to diag.  The file is
 * opened as trust.h's trust_open_file does (never a symbolic link or a
 * FIFO); with check_owner, it and every directory above it must be root's
 * and writable by no one else.
 */
struct policy *policy_load(const char *path, bool check_owner, struct policy_diag *diag);

/* The same for a buffer; name is used in the messages. */
struct policy *policy_load_buffer(const char *name, const char *buf, size_t len,
                                  struct policy_diag *diag);

/*
 * Reads a drop-in (the text of the file name) into policy, after what it
 * holds: its domains are added (one declared before is an error), its rules
 * appended; 'defaults:' is refused (the main file's apply).  Returns 0, or
 * -EINVAL after appending every error to diag (policy is then only fit for
 * policy_free), or -ENOMEM.  Call policy_finish after the last one.
 */
int policy_append_buffer(struct policy *policy, const char *name, const char *buf,
                         size_t len, struct policy_diag *diag);

/*
 * Reads the file open on fd (path names it in the messages) into a new
 * buffer *buf of *len bytes (free it).  Returns 0, or a negative errno
 * after appending the reason to diag: not a regular file, too large, a
 * read error, or a file that grew while it was read.
 */
int policy_read_fd(int fd, const char *path, char **buf, size_t *len,
                   struct policy_diag *diag);

/*
 * Appends "FILE:1:1: message" to diag, the form of every message (for the
 * files' own checks, made before their text is parsed).
 */
void policy_diag_file(struct policy_diag *diag, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A 64-bit hash of a policy's text, fed in pieces: state starts at
 * POLICY_HASH_INIT, every piece but the last a multiple of 8 bytes long.
 * Not cryptographic (whoever can write the policy decides anyway): it
 * tells an edit from none, ~0.1 ms per MB.
 */
#define POLICY_HASH_INIT 0x6a09e667f3bcc908ULL
uint64_t policy_text_hash(uint64_t state, const char *buf, size_t len);

/*
 * True when the file at path is the one p was loaded from, unchanged: the
 * same inode, size, mtime, ctime, owner and mode, and the same text (read
 * again and hashed).  False on any doubt (a read error, a policy not from
 * a file).
 */
bool policy_file_unchanged(const struct policy *p, const char *path);

void policy_free(struct policy *policy);

/*
 * Builder used by the YAML parser and the command-line mapping.  A policy
 * made with policy_new is not usable until policy_finish succeeds.
 */
struct policy *policy_new(const char *source);
/* Adds a domain; returns its index, or -ENOMEM / -EEXIST. */
int policy_add_domain(struct policy *policy, const char *name,
                      const struct controller_spec *controller,
                      const char *qmp_socket);
/* Returns the domain index for name, or -ENOENT. */
int policy_find_domain(const struct policy *policy, const char *name);
/*
 * Appends a rule, taking ownership of the strings in *match and of name.
 * Returns 0 or -ENOMEM (then the strings are freed).
 */
int policy_add_rule(struct policy *policy, char *name, unsigned line, unsigned column,
                    enum rule_action action, int domain, struct rule_match *match);
/* Builds the match index.  Returns 0 or -ENOMEM. */
int policy_finish(struct policy *policy);

/* The built-in controller defaults (version 2, 6 ports, max 4). */
extern const struct controller_spec policy_default_controller;
/* The port count libxl uses for a version when none is given. */
int policy_default_ports(int version);
/* NULL when version and ports are a pair libxl accepts, else why not. */
const char *policy_check_controller(int version, int ports);
/* The same for a PV USB (qusb) controller. */
const char *policy_check_qusb(int version, int ports);
/* "auto", "devicemodel" or "qusb". */
const char *policy_controller_type_name(enum controller_type type);

/*
 * Validators shared with the command line.  Each returns NULL when value is
 * well formed, or a static string saying what was expected.
 */
const char *policy_check_glob(const char *value);
const char *policy_check_id_half(const char *value);
const char *policy_check_hub(const char *value);
const char *policy_check_connector(const char *value);
const char *policy_check_domain_name(const char *value);
/* Parses "hid", "03", "0x03", "03:01:01" ("*" for any part). */
const char *policy_parse_class(const char *value, struct class_match *out);

/* Lowercases the hex letters of a vendor or product (sysfs spells them so). */
void policy_lower_hex(char *s);

/* Frees the strings of a match. */
void rule_match_clear(struct rule_match *match);

#endif

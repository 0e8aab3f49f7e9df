/*
 * The hypervisor backend interface.  Domain workers call these operations;
 * the dry-run, libxl and QMP backends implement them.  Operations that talk
 * to a device model are asynchronous: they return at once and call done
 * later from the event loop, never from inside the call itself.
 */
#ifndef AUA_HV_H
#define AUA_HV_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "bounds.h"
#include "policy.h"

struct hv;

/* err is 0 or a negative errno. */
typedef void (*hv_done_fn)(void *arg, int err);

/*
 * An attach that fails with one of these fails the same way at every try,
 * until something changes (the device is plugged in again, the guest
 * restarts, a controller appears or frees, the policy is reloaded): the
 * device model cannot find the host device (-ENODEV), the port cannot take
 * the device's speed (-EPROTONOSUPPORT), the guest is gone (-ESRCH).  Any
 * other error may pass (a device model still starting, a device busy).
 */
static inline bool hv_error_permanent(int err)
{
    return err == -ENODEV || err == -EPROTONOSUPPORT || err == -ESRCH;
}

/*
 * The errno for what a device model said when it refused a USB operation
 * (QEMU's error descriptions), or dflt when the words tell nothing.
 */
static inline int hv_error_from_message(const char *msg, int dflt)
{
    if (!msg)
        return dflt;
    if (strstr(msg, "speed mismatch"))
        return -EPROTONOSUPPORT;
    if (strstr(msg, "failed to find host usb device"))
        return -ENODEV;
    return dflt;
}

enum hv_guest_type {
    HV_GUEST_HVM = 1,
    HV_GUEST_PV = 2,
    HV_GUEST_PVH = 3,
    HV_GUEST_KIND = 0xf,
    HV_GUEST_STUBDOM = 0x10,
};

/* One port of a guest's controller and the host device it holds, if any. */
struct hv_port {
    bool used;
    unsigned busnum;
    unsigned devnum;
    char busid[AUA_BUSID_MAX + 1];  /* "1-1.2" as the backend records it, or "" */
};

struct hv_controller {
    int id;
    enum controller_type type;  /* DEVICEMODEL or QUSB */
    int version;
    int n_ports;
    struct hv_port ports[AUA_CTRL_PORTS_MAX];   /* ports[0] is port 1 */
};

/*
 * What to attach or detach.  A detach may have busnum and devnum 0 (a stale
 * attachment whose device is gone): the backend finds them itself.  attach
 * answers -EBUSY, without trying, when someone else gave the device to
 * another guest.
 */
struct hv_usb {
    int ctrl;
    int port;               /* 1-based */
    unsigned busnum;
    unsigned devnum;
    const char *busid;      /* port path, "1-1.2" */
};

/* A running guest, as list_domains gives it. */
struct hv_domain {
    int domid;
    char name[AUA_DOMAIN_NAME_MAX + 1];
};

/* Domain start and stop, reported by the backend to whoever owns it. */
struct hv_events {
    void (*domain_started)(void *arg, const char *name, int domid);
    void (*domain_stopped)(void *arg, const char *name, int domid);
    /*
     * Someone changed the guest's controllers or what their ports hold (xl
     * usbdev-attach, usbctrl-attach by hand; the daemon's own changes too):
     * they should be read again.  NULL: not told.
     */
    void (*controllers_changed)(void *arg, const char *name, int domid);
    void *arg;
};

struct hv_ops {
    const char *name;
    /* The domid of the running guest called name, or -ENOENT. */
    int (*domain_lookup)(struct hv *hv, const char *name);
    /*
     * Every running guest but dom0, the policy's or not: *out is allocated,
     * the caller frees it.  NULL in a backend that knows only the policy's
     * guests (dry-run, QMP).
     */
    int (*list_domains)(struct hv *hv, struct hv_domain **out, size_t *n);
    /*
     * The guest's type (enum hv_guest_type, with HV_GUEST_STUBDOM added when
     * its device model runs in a stub domain), or a negative errno.  NULL in
     * a backend whose guests are all HVM with a device model in dom0.
     */
    int (*guest_type)(struct hv *hv, int domid);
    /* The controllers of a guest: *out is allocated, the caller frees it. */
    int (*list_controllers)(struct hv *hv, int domid, struct hv_controller **out,
                            size_t *n);
    /* Creates a controller; *id is set before done is called. */
    int (*add_controller)(struct hv *hv, int domid, const struct controller_spec *spec,
                          int *id, hv_done_fn done, void *arg);
    int (*attach)(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                  void *arg);
    int (*detach)(struct hv *hv, int domid, const struct hv_usb *usb, hv_done_fn done,
                  void *arg);
    /*
     * Frees the backend.  Operations still in flight are answered with
     * -ECANCELED first, so call it after router_close and before router_free.
     */
    void (*free)(struct hv *hv);
};

struct hv {
    const struct hv_ops *ops;
    struct hv_events events;
};

struct ev_loop;

/* The dry-run backend: every guest of the policy runs; nothing is touched. */
struct hv *hv_dryrun_new(struct ev_loop *loop);
/*
 * The libxl backend, which lives in a module of its own
 * (auto-usb-attach-libxl.so, see hv-libxl-load.c) so that libxenlight and
 * its libraries are loaded only when it is used.  NULL (logged) when the
 * module, libxl or xenstore cannot be opened.
 */
struct hv *hv_libxl_load(struct ev_loop *loop);
/*
 * The module's one entry point, which hv_libxl_load looks up by this name.
 * version is the daemon's PACKAGE_VERSION: the module and the daemon share
 * struct hv and the logging functions, so a module of another version
 * refuses (logged) and returns NULL.
 */
#define HV_LIBXL_ENTRY "hv_libxl_new"
struct hv *hv_libxl_new(struct ev_loop *loop, const char *version);
/*
 * The QMP backend, for the policy's domains that have a qmp_socket (the
 * others are not its guests).  Its guests have the pseudo-domids
 * QMP_DOMID_BASE + their index among them.  NULL (logged) on a socket path
 * it refuses (libxl's own, too long) or ENOMEM.
 */
#define QMP_DOMID_BASE 0x10000     /* above every domid Xen gives (< 0x7ff0) */
struct hv *hv_qmp_new(struct ev_loop *loop, const struct policy *policy);
/*
 * True when the QMP backend hv follows guest name on socket path: its table
 * is made at start, so a reload can only use the sockets it already has.
 */
bool hv_qmp_follows(const struct hv *hv, const char *name, const char *path);

/*
 * One backend for a policy that mixes guests with a qmp-socket (served by
 * qmp, from hv_qmp_new) and guests without (served by xl, the libxl
 * backend): it owns both from here, and frees them on failure.  NULL
 * (logged) on ENOMEM.
 */
struct hv *hv_mux_new(struct hv *qmp, struct hv *xl, const struct policy *policy);
/* The QMP backend inside a mixed one, or NULL when hv is not mixed. */
struct hv *hv_mux_qmp(struct hv *hv);
/* True when hv is mixed and its QMP backend serves the guest called name. */
bool hv_mux_serves_by_qmp(const struct hv *hv, const char *name);

#endif

/*
 * Opens the libxl backend's module.  libxenlight pulls in some sixteen
 * libraries (about 1 MiB resident) that the dry-run and QMP backends never
 * use, so the daemon does not link them: hv-libxl.c is built into
 * auto-usb-attach-libxl.so, installed in PKGLIBDIR, and opened here only
 * when the libxl backend is chosen.
 *
 * AUTO_USB_ATTACH_LIBXL_MODULE names another file to open: the tests use it
 * to run the daemon from the build tree.  secure_getenv ignores it in a
 * set-user-ID process.
 *
 * The module is never closed: libxl may leave handlers and memory behind
 * when its context goes (hv-libxl.c keeps what it could not end), and the
 * daemon exits soon after freeing its backend.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdlib.h>

#include "hv.h"
#include "log.h"

#define LIBXL_MODULE PKGLIBDIR "/auto-usb-attach-libxl.so"

typedef struct hv *(*hv_libxl_new_fn)(struct ev_loop *loop, const char *version);

struct hv *hv_libxl_load(struct ev_loop *loop)
{
    const char *path = secure_getenv("AUTO_USB_ATTACH_LIBXL_MODULE");
    hv_libxl_new_fn entry;
    void *module;

    if (!path || !*path)
        path = LIBXL_MODULE;
    module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!module) {
        log_error("cannot load the libxl backend's module %s: %s", path, dlerror());
        return NULL;
    }
    /* ISO C has no conversion from void * to a function pointer; POSIX does. */
    *(void **)&entry = dlsym(module, HV_LIBXL_ENTRY);
    if (!entry) {
        log_error("%s is not the libxl backend's module: %s", path, dlerror());
        dlclose(module);
        return NULL;
    }
    return entry(loop, PACKAGE_VERSION);
}

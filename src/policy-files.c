/*
 * Which files make the policy, and whether they may be trusted: the main
 * file, then the drop-ins policy.d/NAME.yaml of its directory in the byte
 * order of their names (the order ls gives in the C locale), each appended
 * to what was read before (policy_append_buffer).
 *
 * Every file is opened without following a symbolic link, then checked on
 * its descriptor (fstat), then read from that same descriptor: what is
 * checked is what is read, even when the file is swapped meanwhile; the
 * main file's directories are checked too (trust_open_file).  The daemon acts as root on what the policy
 * says, so with POLICY_ROOT_ONLY a file, or the policy.d directory, that a
 * user other than root could have written is refused.  Every file is read
 * even after an error, so one run reports every mistake; then no policy
 * comes out at all: a reload keeps the one in force, a start fails.
 */
#include "config.h"

#include "policy-files.h"
#include "trust.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Drop-ins read past this many are refused (a directory filled by mistake). */
#define POLICY_MAX_DROPINS 1000

/* NULL when st may be trusted, else why not. */
static const char *untrusted(const struct stat *st)
{
    if (st->st_uid != 0)
        return "not owned by root";
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return "writable by others than root";
    return NULL;
}

static void refuse(struct policy_diag *diag, const char *path, const char *what,
                   const char *why, const struct stat *st)
{
    policy_diag_file(diag, path,
                     "refused: the %s is %s (mode %04o, owner uid %u); make it root's and "
                     "writable by root only (or start with --insecure-policy)",
                     what, why, (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid);
}

/* Reads the file path (opened at dirfd) into *buf; 0 or a negative errno after a message. */
static int read_file(int dirfd, const char *name, const char *path, unsigned flags,
                     char **buf, size_t *len, struct stat *st_out, struct policy_diag *diag)
{
    struct stat st;
    const char *why;
    int fd, r;

    if (dirfd == AT_FDCWD) {
        char reason[512];

        /* The main file: every directory above it checked too (trust.c). */
        fd = trust_open_file(path, flags & POLICY_ROOT_ONLY, reason, sizeof(reason));
        if (fd < 0) {
            policy_diag_file(diag, path, "%s", reason);
            return fd;
        }
    } else {
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
            r = -errno;
            policy_diag_file(diag, path, "cannot open: %s",
                             r == -ELOOP ? "it is a symbolic link" : strerror(-r));
            return r;
        }
    }
    if ((flags & POLICY_ROOT_ONLY) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (why = untrusted(&st))) {
        refuse(diag, path, "file", why, &st);
        close(fd);
        return -EPERM;
    }
    if (st_out && fstat(fd, st_out) < 0)
        memset(st_out, 0, sizeof(*st_out));
    r = policy_read_fd(fd, path, buf, len, diag);
    close(fd);
    return r;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The names of the drop-ins in dirfd, sorted; *n of them.  Names starting
 * with a dot (editors' and dpkg's leftovers are hidden or end otherwise)
 * and names not ending in ".yaml" are not drop-ins.  0 or a negative errno.
 */
static int list_dropins(int dirfd, const char *dir, char ***names, size_t *n,
                        struct policy_diag *diag)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    char **v = NULL;
    size_t k = 0;

    if (!d) {
        int e = errno;

        if (fd >= 0)
            close(fd);
        policy_diag_file(diag, dir, "cannot read the directory: %s", strerror(e));
        return -e;
    }
    while ((errno = 0, de = readdir(d))) {
        size_t len = strlen(de->d_name);
        char **grown;

        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".yaml") != 0)
            continue;
        if (k == POLICY_MAX_DROPINS) {
            policy_diag_file(diag, dir, "more than %d drop-ins", POLICY_MAX_DROPINS);
            errno = E2BIG;
            break;
        }
        grown = realloc(v, (k + 1) * sizeof(*v));
        if (!grown || !(grown[k] = strdup(de->d_name))) {
            v = grown ? grown : v;
            policy_diag_file(diag, dir, "out of memory");
            errno = ENOMEM;
            break;
        }
        v = grown;
        k++;
    }
    if (errno) {
        int r = -errno;

        if (r != -E2BIG && r != -ENOMEM)
            policy_diag_file(diag, dir, "cannot read the directory: %s", strerror(-r));
        closedir(d);
        for (size_t i = 0; i < k; i++)
            free(v[i]);
        free(v);
        return r;
    }
    closedir(d);
    if (k)
        qsort(v, k, sizeof(*v), by_name);
    *names = v;
    *n = k;
    return 0;
}

/* Reads the drop-ins of dir into policy; 0, or -EINVAL when any was refused or wrong. */
static int read_dropins(struct policy *policy, const char *dir, unsigned flags,
                        struct policy_diag *diag)
{
    char **names = NULL;
    size_t n = 0;
    struct stat st;
    const char *why;
    int dirfd, r = 0;

    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd < 0) {
        if (errno == ENOENT)
            return 0;   /* no drop-ins: the main file alone */
        policy_diag_file(diag, dir, "cannot open the directory: %s", strerror(errno));
        return -EINVAL;
    }
    /* Whoever may write the directory may add a drop-in. */
    if ((flags & POLICY_ROOT_ONLY) && fstat(dirfd, &st) == 0 && (why = untrusted(&st))) {
        refuse(diag, dir, "directory", why, &st);
        close(dirfd);
        return -EINVAL;
    }
    if (list_dropins(dirfd, dir, &names, &n, diag) < 0) {
        close(dirfd);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char *path, *buf;
        size_t len;

        if (asprintf(&path, "%s/%s", dir, names[i]) < 0) {
            policy_diag_file(diag, dir, "out of memory");
            r = -EINVAL;
            break;
        }
        if (read_file(dirfd, names[i], path, flags, &buf, &len, NULL, diag) < 0) {
            r = -EINVAL;
        } else {
            int a = policy_append_buffer(policy, path, buf, len, diag);

            if (a == -ENOMEM)
                policy_diag_file(diag, path, "out of memory");
            if (a < 0)
                r = -EINVAL;
            free(buf);
        }
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    close(dirfd);
    return r;
}

char *policy_dropin_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;

    if (!slash)
        return strdup("policy.d");
    if (asprintf(&dir, "%.*s/policy.d", (int)(slash - path), path) < 0)
        return NULL;
    return dir;
}

struct policy *policy_load_files(const char *path, unsigned flags, struct policy_diag *diag)
{
    struct policy *policy;
    struct stat st;
    char *buf, *dir;
    size_t len;
    int r;

    if (read_file(AT_FDCWD, path, path, flags, &buf, &len, &st, diag) < 0)
        return NULL;
    policy = policy_load_buffer(path, buf, len, diag);
    free(buf);
    if (!policy)
        return NULL;
    /* What the file was, to tell a reload of the same file (policy_files_unchanged). */
    policy->text.file_known = st.st_ino != 0;
    policy->text.st = st;
    dir = policy_dropin_dir(path);
    if (!dir) {
        policy_diag_file(diag, path, "out of memory");
        policy_free(policy);
        return NULL;
    }
    r = read_dropins(policy, dir, flags, diag);
    free(dir);
    if (r == 0 && policy->n_dropins && policy_finish(policy) < 0) {
        policy_diag_file(diag, path, "out of memory");
        r = -ENOMEM;
    }
    if (r < 0) {
        policy_free(policy);
        return NULL;
    }
    return policy;
}

bool policy_files_unchanged(const struct policy *policy, const char *path)
{
    char *dir, **names = NULL;
    size_t n = 0;
    struct policy_diag diag = { 0 };
    int dirfd;
    bool none;

    /* Drop-ins are not followed one by one: with any, the files are read again. */
    if (policy->n_dropins || !policy_file_unchanged(policy, path))
        return false;
    dir = policy_dropin_dir(path);
    if (!dir)
        return false;
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    free(dir);
    if (dirfd < 0)
        return errno == ENOENT;
    none = list_dropins(dirfd, "policy.d", &names, &n, &diag) == 0 && n == 0;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    policy_diag_free(&diag);
    close(dirfd);
    return none;
}

/*
 * Opening what the daemon acts on as root (the policy, the state and socket
 * directories) so that another user cannot make it read or write something
 * else: open with O_NOFOLLOW, then fstat the descriptor, never stat a path
 * and open it afterwards.  A directory is opened below its parent's
 * descriptor (openat), so a symbolic link swapped in on the way is refused.
 */
#include "config.h"

#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool trusted_owner(uid_t uid)
{
    return uid == 0 || uid == geteuid();
}

int trust_check_dir(int fd, const char *name, bool sticky_ok, char *why, size_t len)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        snprintf(why, len, "%s", strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, len, "not a directory");
        return -ENOTDIR;
    }
    if (!trusted_owner(st.st_uid)) {
        snprintf(why, len, "the directory %s is not root's (owner uid %u, mode %04o)", name,
                 (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) &&
        !(sticky_ok && st.st_uid == 0 && (st.st_mode & S_ISVTX))) {
        snprintf(why, len, "the directory %s is writable by others than root (mode %04o)",
                 name, (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

int trust_open_dir(const char *path, mode_t mode, char *why, size_t len)
{
    int fd, r;

    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        r = -errno;
        snprintf(why, len, "cannot create it: %s", strerror(errno));
        return r;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        snprintf(why, len, "%s", errno == ELOOP || errno == ENOTDIR
                                     ? "not a directory (or a symbolic link)"
                                     : strerror(errno));
        return r;
    }
    r = trust_check_dir(fd, path, false, why, len);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

/* Opens each directory of the absolute path dir below the one before. */
static int open_dirs(const char *dir, bool check_owner, char *why, size_t len)
{
    char *copy = strdup(dir), *p, *next;
    int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

    if (!copy || fd < 0) {
        r = copy ? -errno : -ENOMEM;
        snprintf(why, len, "%s", strerror(-r));
        if (fd >= 0)
            close(fd);
        free(copy);
        return r;
    }
    for (p = copy;; p = next) {
        size_t walked = (size_t)(p - copy);
        char name[PATH_MAX];
        int sub;

        /* The directory fd is: what the path holds up to here. */
        snprintf(name, sizeof(name), "%.*s", (int)walked, dir);
        while (walked > 1 && name[walked - 1] == '/')
            name[--walked] = '\0';
        if (check_owner && (r = trust_check_dir(fd, *name ? name : "/", true, why, len)) < 0)
            break;
        while (*p == '/')
            p++;
        if (!*p)
            break;
        next = strchr(p, '/');
        if (next)
            *next++ = '\0';
        else
            next = p + strlen(p);
        sub = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            r = -errno;
            snprintf(why, len, "%s: %s", p, strerror(errno));
            break;
        }
        close(fd);
        fd = sub;
    }
    free(copy);
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return r;
    }
    return fd;
}

int trust_open_file(const char *path, bool check_owner, char *why, size_t len)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *dir, real[PATH_MAX];
    struct stat st;
    int dfd, fd, r;

    dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    if (!dir) {
        snprintf(why, len, "%s", strerror(ENOMEM));
        return -ENOMEM;
    }
    /*
     * The directories the path names, resolved: each of them is then
     * opened with O_NOFOLLOW and checked, so where the file is read from
     * is a place only root could have changed.
     */
    if (!realpath(*dir ? dir : "/", real)) {
        r = -errno;
        snprintf(why, len, "cannot open: %s", strerror(errno));
        free(dir);
        return r;
    }
    free(dir);
    dfd = open_dirs(real, check_owner, why, len);
    if (dfd < 0)
        return dfd;
    fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    r = -errno;
    close(dfd);
    if (fd < 0) {
        snprintf(why, len, "cannot open: %s", r == -ELOOP ? "it is a symbolic link"
                                                          : strerror(-r));
        return r;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, len, "not a regular file");
        close(fd);
        return -EINVAL;
    }
    if (check_owner && (!trusted_owner(st.st_uid) || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
        snprintf(why, len, "refused: the file is %s (mode %04o, owner uid %u); make it "
                 "root's and writable by root only (or start with --insecure-policy)",
                 !trusted_owner(st.st_uid) ? "not owned by root" : "writable by others than root",
                 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
        close(fd);
        return -EPERM;
    }
    return fd;
}

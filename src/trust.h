/*
 * What a root daemon may trust on the file system: a file or directory that
 * only root (or the daemon's own user) could have written, opened first and
 * checked on the descriptor afterwards, so that nothing can be swapped in
 * between the check and the use.
 */
#ifndef AUA_TRUST_H
#define AUA_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Checks an open directory: owned by root or the daemon's user, and writable
 * by no one else, except (when sticky_ok) a sticky one of root's such as
 * /tmp, where others cannot rename or remove what is not theirs.  0, or
 * -EPERM with why (of len bytes) saying what is wrong with name.
 */
int trust_check_dir(int fd, const char *name, bool sticky_ok, char *why, size_t len);

/*
 * Opens the directory path (its last component not a symbolic link),
 * creating it with mode when it is missing, and checks it as above (no
 * sticky directory).  Returns the descriptor, or a negative errno with why
 * filled in.
 */
int trust_open_dir(const char *path, mode_t mode, char *why, size_t len);

/*
 * Opens the file path to read it: every directory above it, from /, is
 * opened below the one before with O_NOFOLLOW and checked (sticky ones of
 * root's allowed); when check_owner, the file must be root's (or the
 * daemon user's) and writable by no one else, and so must every directory
 * above it.  Always: the file itself is opened with O_NOFOLLOW|O_NONBLOCK
 * (a FIFO does not block) and must be a regular file.  Returns the
 * descriptor, or a negative errno with why filled in.
 */
int trust_open_file(const char *path, bool check_owner, char *why, size_t len);

#endif

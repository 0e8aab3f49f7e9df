/*
 * The files that make the policy: the main file and the drop-ins of the
 * policy.d directory beside it, read in name order, each checked on the
 * descriptor it is read from (policy-files.c).
 */
#ifndef AUA_POLICY_FILES_H
#define AUA_POLICY_FILES_H

#include "policy.h"

/* Refuse a file, or the policy.d directory, not root's or writable by others. */
#define POLICY_ROOT_ONLY 1u

/*
 * Reads the policy file path, then the files DIR/policy.d/\*.yaml (DIR:
 * path's directory) in the byte order of their names.  Returns a new policy
 * (free it with policy_free), or NULL after appending every error to diag,
 * each message naming its file: one wrong or refused file anywhere and no
 * policy comes out.  When the main file has errors, the drop-ins are not
 * read (their rules name its domains).
 */
struct policy *policy_load_files(const char *path, unsigned flags, struct policy_diag *diag);

/*
 * True when a reload of path would read what policy was loaded from: the
 * main file unchanged (policy_file_unchanged) and no drop-in, then or now.
 * With drop-ins, a reload always reads the files again.
 */
bool policy_files_unchanged(const struct policy *policy, const char *path);

/* "DIR/policy.d" for the policy file path; a new string, NULL when out of memory. */
char *policy_dropin_dir(const char *path);

#endif

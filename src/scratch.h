/* scratch.h — plain files kept as real files under STATE/files/: editor temporaries at
 * the mount root and in tiers (sed's, vim's 4913 and .swp), and dot directories inside
 * tiers (.git, .cache, ...) with everything in them.  They are never jobs, never billed,
 * and behave as on a disk (mmap, chmod, rename, hard cases of git included).
 *
 * A scratch path is the path inside the mount ("4913", "tier/.git/HEAD"); parent
 * directories below a tier are created as needed.  File operations return 0 / an fd, or
 * -errno: they are the raw material of FUSE replies. */
#ifndef RF_SCRATCH_H
#define RF_SCRATCH_H

#include <dirent.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "err.h"

/* Open (creating) STATE/files; state_dirfd is borrowed. */
int scratch_init(int state_dirfd, rf_err *err);
void scratch_close(void);

int scratch_open(const char *path, int flags, mode_t mode);       /* fd or -errno */
int scratch_stat(const char *path, struct stat *sb);
int scratch_exists(const char *path);
int scratch_unlink(const char *path);
int scratch_rename(const char *from, const char *to);
int scratch_mkdir(const char *path, mode_t mode);
int scratch_rmdir(const char *path);
int scratch_truncate(const char *path, off_t size);
int scratch_chmod(const char *path, mode_t mode);
int scratch_chown(const char *path, uid_t uid, gid_t gid);
int scratch_utimens(const char *path, const struct timespec ts[2]);
int scratch_symlink(const char *target, const char *path);
int scratch_readlink(const char *path, char *buf, size_t size);  /* length or -errno */
int scratch_link(const char *from, const char *to);
DIR *scratch_opendir(const char *path);                          /* NULL with errno */
/* Does the directory hold anything?  1 / 0 / -errno (absent counts as empty: 0). */
int scratch_nonempty(const char *path);
/* Read a whole file of at most max bytes (EFBIG beyond); *data malloc'd, NUL-terminated. */
int scratch_read_all(const char *path, size_t max, char **data, size_t *len, rf_err *err);
/* Write a whole file atomically and durably (temp file, fsync, rename). */
int scratch_write_atomic(const char *path, const void *data, size_t len, rf_err *err);
/* Make sure the directories above path exist (a tier's scratch area starts empty). */
int scratch_make_parents(const char *path);

#endif

/* store.h — the state directory on disk: prompts, results, metadata, logs.
 *
 * Layout (all under the state directory, 0700, files 0600):
 *   tiers/<tier>/<tag dirs...>/NAME        a prompt as the user wrote it
 *   tiers/<tier>/.../NAME.out|.meta|.err   its results, installed atomically
 *   root/                                  scratch files editors create at the mount root
 *   config.json                            the live config when there is no --config file
 *   activity.jsonl                         one line per finished job, append-only
 * Temporary files are named ".rfs-tmp.*" and never shown through the mount.
 *
 * Paths given to these functions are relative to the state directory.  File operations
 * return 0 / an fd, or -errno: they are the raw material of FUSE replies. */
#ifndef RF_STORE_H
#define RF_STORE_H

#include <dirent.h>
#include <stddef.h>
#include <sys/stat.h>
#include "err.h"

typedef struct store store;

#define STORE_TEMP_PREFIX ".rfs-tmp."

/* Open (creating as needed) the state directory; checks it is writable and takes an
 * exclusive lock on it so two daemons never share one state directory. */
store *store_open(const char *dir, rf_err *err);
void store_close(store *st);
const char *store_path(const store *st);   /* the state directory, absolute */

int store_openat(store *st, const char *rel, int flags, mode_t mode); /* fd or -errno */
int store_stat(store *st, const char *rel, struct stat *sb);          /* 0 or -errno */
int store_exists(store *st, const char *rel);                          /* 1 / 0 */
int store_unlink(store *st, const char *rel);
int store_rename(store *st, const char *from, const char *to);
int store_mkdir(store *st, const char *rel);       /* one level; -EEXIST when present */
int store_mkdir_p(store *st, const char *rel);     /* with parents; 0 when present */
int store_rmdir(store *st, const char *rel);
int store_truncate(store *st, const char *rel, off_t size);
DIR *store_opendir(store *st, const char *rel);   /* NULL with errno */

/* Read a whole file (at most max bytes: EFBIG beyond).  *data is malloc'd and
 * NUL-terminated. */
int store_read_all(store *st, const char *rel, size_t max, char **data, size_t *len,
                   rf_err *err);

/* Write a file atomically and durably: temp file, fsync, rename, fsync the directory. */
int store_write_atomic(store *st, const char *rel, const void *data, size_t len, rf_err *err);

/* Write a file in place (create/truncate, no fsync): for staging files whose
 * durability comes later from store_sync. */
int store_write_file(store *st, const char *rel, const void *data, size_t len, rf_err *err);

/* Group commit, for many files at once: write each to a temp file beside its target
 * (no fsync: *temp_rel is malloc'd), make everything durable with one store_sync, then
 * store_rename each into place, then store_sync again. */
int store_write_temp(store *st, const char *rel, const void *data, size_t len,
                     char **temp_rel, rf_err *err);
int store_sync(store *st);                          /* syncfs(2) on the state directory */

/* Append one line (the caller includes the '\n') with a single write(2), O_APPEND. */
int store_append(store *st, const char *rel, const void *data, size_t len, rf_err *err);

/* Remove leftover temp files below rel (after a crash). */
void store_remove_temps(store *st, const char *rel);

#endif

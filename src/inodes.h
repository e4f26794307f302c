/* inodes.h — the inode table of the low-level FUSE API: inode number <-> mount path, with
 * the kernel's lookup counts.
 *
 * An inode number is the address of its node (as in libfuse's passthrough_ll), the root
 * is FUSE_ROOT_ID.  A node lives from the first lookup that names it until the kernel
 * forgets the last one.  Thread-safe. */
#ifndef RF_INODES_H
#define RF_INODES_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

/* Copy the mount path of ino ("" for the root) into buf: 0, -ENOENT for an inode whose
 * file was renamed over, or -ENAMETOOLONG. */
int inodes_path(fuse_ino_t ino, char *buf, size_t len);

/* The inode for path, counting one lookup (the kernel now holds it); 0 when out of
 * memory. */
fuse_ino_t inodes_remember(const char *path);

/* The kernel dropped nlookup references to ino. */
void inodes_forget(fuse_ino_t ino, uint64_t nlookup);

/* A rename: the inode at `to` (if any) loses its path; the inode at `from` moves to `to`. */
void inodes_renamed(const char *from, const char *to);

/* The inode the kernel knows for path, or 0; counts nothing (for cache invalidation). */
fuse_ino_t inodes_find(const char *path);

/* Free every node (after the session is gone). */
void inodes_free(void);

#endif

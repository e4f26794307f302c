/* faultvfs.h — an SQLite VFS shim that makes database writes fail on demand.
 *
 * Tests use it to prove that a failing disk loses nothing: the shim wraps the default
 * VFS and, while a fault is set, answers every write, truncate and sync with SQLITE_FULL
 * ("full") or SQLITE_IOERR_WRITE ("eio").  A fault is set by faultvfs_set() (unit tests)
 * or by a file: when the environment variable ROUTEFS_FAULT_FILE names a file that
 * exists, its first word is the mode.  Without either it costs one branch per write. */
#ifndef RF_FAULTVFS_H
#define RF_FAULTVFS_H

#define FAULTVFS_NAME "rfsfault"

/* Register the shim (idempotent, thread-safe).  0, or an SQLite error code. */
int faultvfs_register(void);

/* "full", "eio" or NULL (no fault). */
void faultvfs_set(const char *mode);

#endif

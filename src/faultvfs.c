/* faultvfs.c — see faultvfs.h.  Every method forwards to the wrapped VFS's file; only
 * the writing ones first ask current_fault(). */
#include "faultvfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FAULT_NONE = 0, FAULT_FULL, FAULT_EIO };

static int forced_fault;                 /* faultvfs_set; atomic */
static const char *fault_file;           /* ROUTEFS_FAULT_FILE, read once */
static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static int register_rc;

typedef struct shim_file {
    sqlite3_file base;                   /* first: SQLite sees this */
    sqlite3_file *real;                  /* follows the shim in the same allocation */
} shim_file;

static int mode_of(const char *word)
{
    if (!word)
        return FAULT_NONE;
    if (!strncmp(word, "full", 4))
        return FAULT_FULL;
    if (!strncmp(word, "eio", 3))
        return FAULT_EIO;
    return FAULT_NONE;
}

static int current_fault(void)
{
    int f = __atomic_load_n(&forced_fault, __ATOMIC_RELAXED);
    if (f || !fault_file)
        return f;
    FILE *fp = fopen(fault_file, "re");
    if (!fp)
        return FAULT_NONE;
    char word[16] = "";
    if (!fgets(word, sizeof word, fp))
        word[0] = '\0';
    fclose(fp);
    return mode_of(word);
}

static int fault_rc(int fault)
{
    return fault == FAULT_FULL ? SQLITE_FULL : SQLITE_IOERR_WRITE;
}

void faultvfs_set(const char *mode)
{
    __atomic_store_n(&forced_fault, mode_of(mode), __ATOMIC_RELAXED);
}

#define REAL(f) (((shim_file *)(f))->real)

static int shim_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    return rc;
}

static int shim_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int shim_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    int fault = current_fault();
    if (fault)
        return fault_rc(fault);
    return REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int fault = current_fault();
    if (fault)
        return fault == FAULT_FULL ? SQLITE_FULL : SQLITE_IOERR_TRUNCATE;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int shim_sync(sqlite3_file *f, int flags)
{
    int fault = current_fault();
    if (fault)
        return fault == FAULT_FULL ? SQLITE_FULL : SQLITE_IOERR_FSYNC;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int shim_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int shim_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int shim_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int shim_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int shim_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int shim_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int shim_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int shim_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int shim_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void shim_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int shim_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int shim_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shim_methods = {
    .iVersion = 3,
    .xClose = shim_close,
    .xRead = shim_read,
    .xWrite = shim_write,
    .xTruncate = shim_truncate,
    .xSync = shim_sync,
    .xFileSize = shim_file_size,
    .xLock = shim_lock,
    .xUnlock = shim_unlock,
    .xCheckReservedLock = shim_check_reserved,
    .xFileControl = shim_file_control,
    .xSectorSize = shim_sector_size,
    .xDeviceCharacteristics = shim_device_chars,
    .xShmMap = shim_shm_map,
    .xShmLock = shim_shm_lock,
    .xShmBarrier = shim_shm_barrier,
    .xShmUnmap = shim_shm_unmap,
    .xFetch = shim_fetch,
    .xUnfetch = shim_unfetch,
};

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                     int *out_flags)
{
    shim_file *sf = (shim_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    memset(sf->real, 0, (size_t)real_vfs->szOsFile);
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out_flags);
    /* SQLite calls xClose only when pMethods is set: mirror the real file's outcome. */
    sf->base.pMethods = sf->real->pMethods ? &shim_methods : NULL;
    return rc;
}

static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int shim_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int shim_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int shim_sleep(sqlite3_vfs *vfs, int us)
{
    return real_vfs->xSleep(real_vfs, us);
}

static int shim_current_time(sqlite3_vfs *vfs, double *out)
{
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int shim_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int shim_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static void register_shim(void)
{
    const char *env = getenv("ROUTEFS_FAULT_FILE");
    fault_file = env && *env ? env : NULL;
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs) {
        register_rc = SQLITE_ERROR;
        return;
    }
    shim_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile,
        .mxPathname = real_vfs->mxPathname,
        .zName = FAULTVFS_NAME,
        .xOpen = shim_open,
        .xDelete = shim_delete,
        .xAccess = shim_access,
        .xFullPathname = shim_full_pathname,
        .xRandomness = shim_randomness,
        .xSleep = shim_sleep,
        .xCurrentTime = shim_current_time,
        .xGetLastError = shim_last_error,
        .xCurrentTimeInt64 = shim_current_time64,
    };
    /* dlopen & co. are not forwarded: routefs loads no extensions. */
    register_rc = sqlite3_vfs_register(&shim_vfs, 0);
}

int faultvfs_register(void)
{
    pthread_once(&register_once, register_shim);
    return register_rc;
}

/* store.c — see store.h.  Every operation goes through openat-family calls on one
 * directory fd, so the state directory can be renamed or be a symlink without surprises. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct store {
    char *path;        /* absolute path of the state directory */
    int dirfd;         /* O_PATH-like directory fd used for every *at() call */
    int lockfd;        /* holds the flock that keeps a second daemon out */
};

static int mkdir_parents(const char *path)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof buf)
        return -ENAMETOOLONG;
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

store *store_open(const char *dir, rf_err *err)
{
    int r = mkdir_parents(dir);
    if (r < 0) {
        rf_err_set(err, -r, "state directory %s: cannot create: %s", dir, strerror(-r));
        return NULL;
    }
    char *abs = realpath(dir, NULL);
    if (!abs) {
        rf_err_set(err, errno, "state directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    store *st = calloc(1, sizeof *st);
    if (!st) {
        free(abs);
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    st->path = abs;
    st->lockfd = -1;
    st->dirfd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->dirfd < 0) {
        rf_err_set(err, errno, "state directory %s: %s", abs, strerror(errno));
        goto fail;
    }
    if (fchmod(st->dirfd, 0700) < 0 && errno != EPERM) {
        rf_err_set(err, errno, "state directory %s: chmod: %s", abs, strerror(errno));
        goto fail;
    }
    /* Writability check and single-daemon lock in one: the lock file must be creatable. */
    st->lockfd = openat(st->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lockfd < 0) {
        rf_err_set(err, errno, "state directory %s is not writable: %s", abs, strerror(errno));
        goto fail;
    }
    if (flock(st->lockfd, LOCK_EX | LOCK_NB) < 0) {
        rf_err_set(err, EBUSY, "state directory %s is in use by another routefs", abs);
        goto fail;
    }
    const char *subdirs[] = {"tiers", "root"};
    for (size_t i = 0; i < 2; i++) {
        if (mkdirat(st->dirfd, subdirs[i], 0700) < 0 && errno != EEXIST) {
            rf_err_set(err, errno, "state directory %s: cannot create %s: %s", abs, subdirs[i],
                       strerror(errno));
            goto fail;
        }
    }
    return st;
fail:
    store_close(st);
    return NULL;
}

void store_close(store *st)
{
    if (!st)
        return;
    if (st->lockfd >= 0)
        close(st->lockfd);
    if (st->dirfd >= 0)
        close(st->dirfd);
    free(st->path);
    free(st);
}

const char *store_path(const store *st)
{
    return st->path;
}

int store_openat(store *st, const char *rel, int flags, mode_t mode)
{
    int fd = openat(st->dirfd, rel, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

int store_stat(store *st, const char *rel, struct stat *sb)
{
    return fstatat(st->dirfd, rel, sb, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

int store_exists(store *st, const char *rel)
{
    return faccessat(st->dirfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int store_unlink(store *st, const char *rel)
{
    return unlinkat(st->dirfd, rel, 0) < 0 ? -errno : 0;
}

int store_rename(store *st, const char *from, const char *to)
{
    return renameat(st->dirfd, from, st->dirfd, to) < 0 ? -errno : 0;
}

int store_mkdir(store *st, const char *rel)
{
    return mkdirat(st->dirfd, rel, 0700) < 0 ? -errno : 0;
}

int store_mkdir_p(store *st, const char *rel)
{
    char buf[PATH_MAX];
    if (strlen(rel) >= sizeof buf)
        return -ENAMETOOLONG;
    strcpy(buf, rel);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdirat(st->dirfd, buf, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdirat(st->dirfd, buf, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int store_rmdir(store *st, const char *rel)
{
    return unlinkat(st->dirfd, rel, AT_REMOVEDIR) < 0 ? -errno : 0;
}

int store_truncate(store *st, const char *rel, off_t size)
{
    int fd = store_openat(st, rel, O_WRONLY, 0);
    if (fd < 0)
        return fd;
    int r = ftruncate(fd, size) < 0 ? -errno : 0;
    close(fd);
    return r;
}

DIR *store_opendir(store *st, const char *rel)
{
    int fd = openat(st->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return d;
}

int store_read_all(store *st, const char *rel, size_t max, char **data, size_t *len,
                   rf_err *err)
{
    *data = NULL;
    *len = 0;
    int fd = store_openat(st, rel, O_RDONLY, 0);
    if (fd < 0)
        return rf_err_set(err, -fd, "%s: %s", rel, strerror(-fd));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                /* exactly max bytes is fine: only a byte beyond it is too much */
                char probe;
                ssize_t more = read(fd, &probe, 1);
                if (more == 0)
                    break;
                free(buf);
                close(fd);
                if (more < 0)
                    return rf_err_set(err, errno, "%s: read: %s", rel, strerror(errno));
                return rf_err_set(err, EFBIG, "%s: larger than %zu bytes", rel, max);
            }
            cap = cap * 2 > max ? max : cap * 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                close(fd);
                return rf_err_set(err, ENOMEM, "out of memory");
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return rf_err_set(err, e, "%s: read: %s", rel, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static int write_full(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* "dir/name" → "dir/.rfs-tmp.name.<pid>.<counter>" */
static char *temp_name_for(const char *rel)
{
    static unsigned long counter;
    unsigned long c = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    const char *slash = strrchr(rel, '/');
    int dirlen = slash ? (int)(slash - rel + 1) : 0;
    const char *base = slash ? slash + 1 : rel;
    char *out = NULL;
    if (asprintf(&out, "%.*s" STORE_TEMP_PREFIX "%.40s.%ld.%lu", dirlen, rel, base,
                 (long)getpid(), c) < 0)
        return NULL;
    return out;
}

/* Create (or truncate) rel and write data, fsync'd when durable; on failure the file is
 * removed.  Errors name `name` (the target the caller cares about). */
static int write_whole_file(store *st, const char *rel, const char *name, const void *data,
                            size_t len, int durable, rf_err *err)
{
    int fd = store_openat(st, rel, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return rf_err_set(err, -fd, "%s: cannot create: %s", name, strerror(-fd));
    int r = write_full(fd, data, len);
    if (r == 0 && durable && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r < 0) {
        unlinkat(st->dirfd, rel, 0);
        return rf_err_set(err, -r, "%s: write: %s", name, strerror(-r));
    }
    return 0;
}

int store_write_temp(store *st, const char *rel, const void *data, size_t len,
                     char **temp_rel, rf_err *err)
{
    *temp_rel = NULL;
    char *tmp = temp_name_for(rel);
    if (!tmp)
        return rf_err_set(err, ENOMEM, "out of memory");
    if (write_whole_file(st, tmp, rel, data, len, 0, err) < 0) {
        free(tmp);
        return -1;
    }
    *temp_rel = tmp;
    return 0;
}

int store_write_file(store *st, const char *rel, const void *data, size_t len, rf_err *err)
{
    return write_whole_file(st, rel, rel, data, len, 0, err);
}

int store_sync(store *st)
{
    return syncfs(st->dirfd) < 0 ? -errno : 0;
}

static int fsync_parent(store *st, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    char dir[PATH_MAX];
    if (!slash)
        strcpy(dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - rel), rel);
    int fd = openat(st->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int store_write_atomic(store *st, const char *rel, const void *data, size_t len, rf_err *err)
{
    char *tmp = temp_name_for(rel);
    if (!tmp)
        return rf_err_set(err, ENOMEM, "out of memory");
    if (write_whole_file(st, tmp, rel, data, len, 1, err) < 0) {
        free(tmp);
        return -1;
    }
    int r = store_rename(st, tmp, rel);
    if (r < 0) {
        unlinkat(st->dirfd, tmp, 0);
        rf_err_set(err, -r, "%s: %s", rel, strerror(-r));
        free(tmp);
        return -1;
    }
    free(tmp);
    fsync_parent(st, rel);   /* best effort: the data itself is already durable */
    return 0;
}

int store_append(store *st, const char *rel, const void *data, size_t len, rf_err *err)
{
    int fd = store_openat(st, rel, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0)
        return rf_err_set(err, -fd, "%s: %s", rel, strerror(-fd));
    int r = write_full(fd, data, len);
    close(fd);
    if (r < 0)
        return rf_err_set(err, -r, "%s: append: %s", rel, strerror(-r));
    return 0;
}

void store_remove_temps(store *st, const char *rel)
{
    DIR *d = store_opendir(st, rel);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char child[PATH_MAX];
        if (snprintf(child, sizeof child, "%s/%s", rel, de->d_name) >= (int)sizeof child)
            continue;
        if (de->d_type == DT_DIR)
            store_remove_temps(st, child);
        else if (!strncmp(de->d_name, STORE_TEMP_PREFIX, strlen(STORE_TEMP_PREFIX)))
            unlinkat(st->dirfd, child, 0);
    }
    closedir(d);
}

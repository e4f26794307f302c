/* scratch.c — see scratch.h.  Every call is an *at() call on the files/ directory fd. */
#include "scratch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int files_fd = -1;

int scratch_init(int state_dirfd, rf_err *err)
{
    if (files_fd >= 0)
        return 0;
    if (mkdirat(state_dirfd, "files", 0700) < 0 && errno != EEXIST)
        return rf_err_set(err, errno, "state directory: cannot create files/: %s", strerror(errno));
    files_fd = openat(state_dirfd, "files", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (files_fd < 0)
        return rf_err_set(err, errno, "state directory: files/: %s", strerror(errno));
    return 0;
}

void scratch_close(void)
{
    if (files_fd >= 0)
        close(files_fd);
    files_fd = -1;
}

#define RET(expr) return (expr) < 0 ? -errno : 0

/* Everything in the state directory is the owner's alone: group and other bits asked for
 * are dropped (the owner's, executable included, are kept: git checks them). */
#define OWNER_ONLY(mode) ((mode) & 0700)

int scratch_make_parents(const char *path)
{
    char buf[PATH_MAX];
    if (strlen(path) >= sizeof buf)
        return -ENAMETOOLONG;
    strcpy(buf, path);
    for (char *p = buf; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (mkdirat(files_fd, buf, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

int scratch_open(const char *path, int flags, mode_t mode)
{
    if (flags & O_CREAT) {
        int r = scratch_make_parents(path);
        if (r < 0)
            return r;
    }
    int fd = openat(files_fd, path, flags | O_CLOEXEC | O_NOFOLLOW, OWNER_ONLY(mode));
    return fd < 0 ? -errno : fd;
}

int scratch_stat(const char *path, struct stat *sb)
{
    RET(fstatat(files_fd, path, sb, AT_SYMLINK_NOFOLLOW));
}

int scratch_exists(const char *path)
{
    return faccessat(files_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int scratch_unlink(const char *path)
{
    RET(unlinkat(files_fd, path, 0));
}

int scratch_rename(const char *from, const char *to)
{
    int r = scratch_make_parents(to);
    if (r < 0)
        return r;
    RET(renameat(files_fd, from, files_fd, to));
}

int scratch_mkdir(const char *path, mode_t mode)
{
    int r = scratch_make_parents(path);
    if (r < 0)
        return r;
    RET(mkdirat(files_fd, path, OWNER_ONLY(mode)));
}

int scratch_rmdir(const char *path)
{
    RET(unlinkat(files_fd, path, AT_REMOVEDIR));
}

int scratch_truncate(const char *path, off_t size)
{
    int fd = scratch_open(path, O_WRONLY, 0);
    if (fd < 0)
        return fd;
    int r = ftruncate(fd, size) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int scratch_chmod(const char *path, mode_t mode)
{
    RET(fchmodat(files_fd, path, OWNER_ONLY(mode), 0));
}

int scratch_chown(const char *path, uid_t uid, gid_t gid)
{
    RET(fchownat(files_fd, path, uid, gid, AT_SYMLINK_NOFOLLOW));
}

int scratch_utimens(const char *path, const struct timespec ts[2])
{
    RET(utimensat(files_fd, path, ts, AT_SYMLINK_NOFOLLOW));
}

int scratch_symlink(const char *target, const char *path)
{
    int r = scratch_make_parents(path);
    if (r < 0)
        return r;
    RET(symlinkat(target, files_fd, path));
}

int scratch_readlink(const char *path, char *buf, size_t size)
{
    ssize_t n = readlinkat(files_fd, path, buf, size);
    return n < 0 ? -errno : (int)n;
}

int scratch_link(const char *from, const char *to)
{
    int r = scratch_make_parents(to);
    if (r < 0)
        return r;
    RET(linkat(files_fd, from, files_fd, to, 0));
}

DIR *scratch_opendir(const char *path)
{
    int fd = openat(files_fd, path[0] ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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

int scratch_nonempty(const char *path)
{
    DIR *d = scratch_opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d)))
        found = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return found;
}

int scratch_read_all(const char *path, size_t max, char **data, size_t *len, rf_err *err)
{
    *data = NULL;
    *len = 0;
    int fd = scratch_open(path, O_RDONLY, 0);
    if (fd < 0)
        return rf_err_set(err, -fd, "%s: %s", path, strerror(-fd));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        int e = errno ? errno : EISDIR;
        close(fd);
        return rf_err_set(err, e, "%s: not a regular file", path);
    }
    if ((size_t)sb.st_size > max) {
        close(fd);
        return rf_err_set(err, EFBIG, "%s: larger than %zu bytes", path, max);
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    for (;;) {
        if (n == cap) {
            /* it grew while we read: allow up to max */
            if (cap > max) {
                free(buf);
                close(fd);
                return rf_err_set(err, EFBIG, "%s: larger than %zu bytes", path, max);
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                close(fd);
                return rf_err_set(err, ENOMEM, "out of memory");
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return rf_err_set(err, e, "%s: read: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > max) {
        free(buf);
        return rf_err_set(err, EFBIG, "%s: larger than %zu bytes", path, max);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

int scratch_write_atomic(const char *path, const void *data, size_t len, rf_err *err)
{
    static unsigned long counter;
    char tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    if (snprintf(tmp, sizeof tmp, "%.*s.rfs-tmp.%ld.%lu", dirlen, path, (long)getpid(),
                 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED)) >= (int)sizeof tmp)
        return rf_err_set(err, ENAMETOOLONG, "%s: name too long", path);
    int fd = scratch_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return rf_err_set(err, -fd, "%s: cannot create: %s", path, strerror(-fd));
    const char *p = data;
    size_t left = len;
    int e = 0;
    while (left > 0 && !e) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno != EINTR)
            e = errno;
        else if (w > 0)
            p += w, left -= (size_t)w;
    }
    if (!e && fsync(fd) < 0)
        e = errno;
    if (close(fd) < 0 && !e)
        e = errno;
    if (!e && renameat(files_fd, tmp, files_fd, path) < 0)
        e = errno;
    if (e) {
        unlinkat(files_fd, tmp, 0);
        return rf_err_set(err, e, "%s: write: %s", path, strerror(e));
    }
    return 0;
}

/* fs.c — see fs.h.
 *
 * Every callback does three things: find the path of the inode (inodes.c), classify it
 * (paths.c), and hand the work to the module that owns that kind of file.  The only state
 * kept here is the open file handles.  Readers of an unfinished NAME.out never hold a
 * FUSE thread (results.c parks the request with the job). */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs_dir.h"
#include "fs_int.h"
#include "hmap.h"
#include "inodes.h"
#include "kcache.h"
#include "liveconf.h"
#include "paths.h"
#include "prompts.h"
#include "results.h"
#include "scratch.h"
#include "service.h"
#include "vfiles.h"

static struct {
    store *st;
    struct fuse_session *se;
} F;

/* ---- modes asked for scratch files ----
 * Scratch files are owner-only on disk, so the group and other bits of a chmod are kept
 * here: rsync -a and editors chmod their temporary file before renaming it onto a prompt,
 * which must get the mode asked for.  Forgotten at rename and unlink; bounded. */
#define WANTED_MODES_MAX 4096

static struct {
    pthread_mutex_t lock;
    hmap *modes;               /* scratch path -> (void *)(mode | WANTED_SET) */
} W = {.lock = PTHREAD_MUTEX_INITIALIZER};

#define WANTED_SET 0x100000u   /* so that no value is NULL */

static void wanted_mode_set(const char *scratch, mode_t mode)
{
    pthread_mutex_lock(&W.lock);
    if (!W.modes)
        W.modes = hmap_new();
    if (W.modes && (hmap_get(W.modes, scratch) || hmap_len(W.modes) < WANTED_MODES_MAX))
        hmap_put(W.modes, scratch, (void *)(uintptr_t)((mode & 07777) | WANTED_SET));
    pthread_mutex_unlock(&W.lock);
}

/* The mode asked for scratch (forgotten now), or -1. */
static int wanted_mode_take(const char *scratch)
{
    pthread_mutex_lock(&W.lock);
    void *v = W.modes ? hmap_del(W.modes, scratch) : NULL;
    pthread_mutex_unlock(&W.lock);
    return v ? (int)((uintptr_t)v & 07777) : -1;
}

int fs_open_for_writing(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* ---- replies ---- */

void fs_reply_entry(fuse_req_t req, const char *path, const pathinfo *pi,
                        const struct stat *st)
{
    fuse_ino_t ino = inodes_remember(path);
    if (!ino) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    e.attr = *st;
    e.attr.st_ino = ino;
    e.attr_timeout = paths_attr_timeout(pi);
    e.entry_timeout = paths_entry_timeout(pi);
    if (fuse_reply_entry(req, &e) != 0)
        inodes_forget(ino, 1);   /* the kernel never got it (interrupted) */
}

/* The path of parent's child name, classified. */
int fs_child_of(fuse_ino_t parent, const char *name, char *path, size_t len, pathinfo *pi)
{
    char ppath[PATH_MAX];
    int r = inodes_path(parent, ppath, sizeof ppath);
    if (r == 0)
        r = paths_child(ppath, name, path, len);
    if (r == 0)
        r = paths_classify(path, pi);
    return r;
}

void fs_creds(fuse_req_t req, uid_t *uid, gid_t *gid)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    *uid = ctx ? ctx->uid : getuid();
    *gid = ctx ? ctx->gid : getgid();
}

/* ---- lookup, attributes ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    /* O_TRUNC arrives with open, so `echo > p` is one open, not open + setattr. */
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    /* No setuid bits here to kill: spares a getxattr round trip on every write. */
    if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV)
        conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    char ppath[PATH_MAX], path[PATH_MAX];
    int r = inodes_path(parent, ppath, sizeof ppath);
    if (r == 0)
        r = paths_child(ppath, name, path, sizeof path);
    pathinfo pi;
    struct stat st;
    if (r == 0)
        r = paths_stat(path, &pi, &st);
    if (r == -ENOENT && paths_classify(path, &pi) == 0 &&
        (pi.kind == K_ENTRY || pi.kind == K_SCRATCH)) {
        /* The kernel may remember the absence (paths_absent_timeout); never for
         * results, which appear on their own. */
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.entry_timeout = paths_absent_timeout(path, &pi);
        fuse_reply_entry(req, &e);
        return;
    }
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    fs_reply_entry(req, path, &pi, &st);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    inodes_forget(ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        inodes_forget(forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    pathinfo pi;
    struct stat st;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_stat(path, &pi, &st);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    st.st_ino = ino;
    fuse_reply_attr(req, &st, paths_attr_timeout(&pi));
}

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* chmod, chown, utimens and truncate of a prompt or a tag directory. */
static int setattr_entry(fuse_req_t req, const pathinfo *pi, const struct stat *attr, int to_set,
                         struct fuse_file_info *fi)
{
    int r = 0;
    if (to_set & FUSE_SET_ATTR_SIZE) {
        handle *h = fi ? handle_of(fi) : NULL;
        uid_t uid;
        gid_t gid;
        fs_creds(req, &uid, &gid);
        r = h && h->kind == H_PROMPT ? prompts_ftruncate(h->prompt, attr->st_size)
                                     : prompts_truncate(pi->key, attr->st_size, uid, gid);
    }
    prompt_attrs a = {.mode = attr->st_mode & 07777, .uid = attr->st_uid, .gid = attr->st_gid};
    unsigned mask = 0;
    if (to_set & FUSE_SET_ATTR_MODE) mask |= SP_ATTR_MODE;
    if (to_set & FUSE_SET_ATTR_UID) mask |= SP_ATTR_UID;
    if (to_set & FUSE_SET_ATTR_GID) mask |= SP_ATTR_GID;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (to_set & FUSE_SET_ATTR_ATIME) {
        mask |= SP_ATTR_ATIME;
        a.atime_ns = to_set & FUSE_SET_ATTR_ATIME_NOW ? ts_ns(&now) : ts_ns(&attr->st_atim);
    }
    if (to_set & FUSE_SET_ATTR_MTIME) {
        mask |= SP_ATTR_MTIME;
        a.mtime_ns = to_set & FUSE_SET_ATTR_MTIME_NOW ? ts_ns(&now) : ts_ns(&attr->st_mtim);
    }
    if (r == 0 && mask)
        r = prompts_setattr(pi->key, mask, &a);
    return r;
}

static int setattr_scratch(const pathinfo *pi, const struct stat *attr, int to_set,
                           struct fuse_file_info *fi)
{
    handle *h = fi ? handle_of(fi) : NULL;
    int r = 0;
    if (to_set & FUSE_SET_ATTR_SIZE)
        r = h && h->fd >= 0 ? (ftruncate(h->fd, attr->st_size) < 0 ? -errno : 0)
                            : scratch_truncate(pi->scratch, attr->st_size);
    if (r == 0 && (to_set & FUSE_SET_ATTR_MODE) &&
        (r = scratch_chmod(pi->scratch, attr->st_mode & 07777)) == 0)
        wanted_mode_set(pi->scratch, attr->st_mode);
    if (r == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
        r = scratch_chown(pi->scratch, to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1,
                          to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1);
    if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
        if (to_set & FUSE_SET_ATTR_ATIME)
            ts[0] = to_set & FUSE_SET_ATTR_ATIME_NOW ? (struct timespec){0, UTIME_NOW}
                                                     : attr->st_atim;
        if (to_set & FUSE_SET_ATTR_MTIME)
            ts[1] = to_set & FUSE_SET_ATTR_MTIME_NOW ? (struct timespec){0, UTIME_NOW}
                                                     : attr->st_mtim;
        r = scratch_utimens(pi->scratch, ts);
    }
    return r;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0) {
        switch (pi.kind) {
        case K_ENTRY:
            r = setattr_entry(req, &pi, attr, to_set, fi);
            break;
        case K_SCRATCH:
            r = setattr_scratch(&pi, attr, to_set, fi);
            break;
        case K_VFILE:
            if (to_set & FUSE_SET_ATTR_SIZE) {
                handle *h = fi ? handle_of(fi) : NULL;
                if (pi.vf == VF_CONFIG && h && h->kind == H_CONFIG_EDIT)
                    r = liveconf_edit_truncate(h->edit, attr->st_size);
                else if (pi.vf == VF_CONFIG)
                    r = attr->st_size == 0 ? -EINVAL : -EACCES;   /* an empty config is none */
                else
                    r = -EACCES;
            }
            break;   /* chmod, chown, utimens: accepted and ignored (editors call them) */
        case K_RESULT:
            if (to_set & FUSE_SET_ATTR_SIZE)
                r = -EACCES;
            break;
        default:
            if (to_set & FUSE_SET_ATTR_SIZE)
                r = -EISDIR;
            break;
        }
    }
    struct stat st;
    if (r == 0)
        r = paths_stat(path, &pi, &st);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    st.st_ino = ino;
    fuse_reply_attr(req, &st, paths_attr_timeout(&pi));
}

/* ---- directories ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    dirlist *dl = NULL;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = fs_dir_open(path, &dl);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)dl;
    if (fuse_reply_open(req, fi) != 0)
        fs_dir_close(dl);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    fs_dir_read(req, (dirlist *)(uintptr_t)fi->fh, size, off);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs_dir_close((dirlist *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    char path[PATH_MAX];
    pathinfo pi;
    struct stat st;
    int r = fs_child_of(parent, name, path, sizeof path, &pi);
    uid_t uid;
    gid_t gid;
    fs_creds(req, &uid, &gid);
    if (r == 0 && !strchr(path, '/'))
        r = -EPERM;       /* tiers come from the config, not from mkdir */
    else if (r == 0 && pi.kind == K_ENTRY)
        r = prompts_mkdir(pi.key, mode, uid, gid);
    else if (r == 0 && pi.kind == K_SCRATCH)
        r = scratch_mkdir(pi.scratch, mode & 07777);
    else if (r == 0)
        r = -EACCES;      /* NAME.out etc. are results, not directories */
    if (r == 0)
        r = paths_stat(path, &pi, &st);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    fs_reply_entry(req, path, &pi, &st);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    char path[PATH_MAX];
    pathinfo pi;
    int r = fs_child_of(parent, name, path, sizeof path, &pi);
    if (r == 0)
        r = pi.kind == K_ENTRY   ? prompts_rmdir(pi.key)
            : pi.kind == K_SCRATCH ? scratch_rmdir(pi.scratch)
            : pi.kind == K_TIER    ? -EPERM
                                   : -ENOTDIR;
    fuse_reply_err(req, r < 0 ? -r : 0);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
    char path[PATH_MAX];
    pathinfo pi;
    struct stat st;
    int r = fs_child_of(parent, name, path, sizeof path, &pi);
    if (r == 0)
        r = pi.kind == K_SCRATCH ? scratch_symlink(target, pi.scratch) : -EPERM;
    if (r == 0)
        r = paths_stat(path, &pi, &st);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    fs_reply_entry(req, path, &pi, &st);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    char path[PATH_MAX], target[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0)
        r = pi.kind == K_SCRATCH ? scratch_readlink(pi.scratch, target, sizeof target - 1)
                                 : -EINVAL;
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    target[r] = '\0';
    fuse_reply_readlink(req, target);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    char path[PATH_MAX];
    pathinfo pi;
    int r = fs_child_of(parent, name, path, sizeof path, &pi);
    if (r == 0 && pi.kind == K_VFILE && pi.vf == VF_CONFIG) {
        paths_hide_config(1);   /* see CONFIG_GONE_MS in paths.c */
        fuse_reply_err(req, 0);
        return;
    }
    if (r == 0)
        r = pi.kind == K_ENTRY     ? prompts_unlink(pi.key)
            : pi.kind == K_SCRATCH ? (wanted_mode_take(pi.scratch), scratch_unlink(pi.scratch))
            : pi.kind == K_TIER || pi.kind == K_ROOT ? -EISDIR
                                                     : -EACCES;
    fuse_reply_err(req, r < 0 ? -r : 0);
}

/* Renames that involve config.json.  Onto it (sed -i, vim restoring its backup, mv inside
 * the mount): the source's bytes become the config if valid, else EINVAL and nothing
 * changes.  Away from it (vim's backup): the current text is copied to the new name and
 * config.json stays — the live config cannot be absent. */
static int rename_config(const pathinfo *src, const pathinfo *dst)
{
    rf_err err;
    rf_err_clear(&err);
    if (dst->kind == K_VFILE && dst->vf == VF_CONFIG && src->kind == K_SCRATCH) {
        char *data = NULL;
        size_t len = 0;
        if (scratch_read_all(src->scratch, LIVECONF_MAX, &data, &len, &err) < 0)
            return err.code == EFBIG ? -EFBIG : -EIO;
        int r = liveconf_apply_text(data, len, src->name, &err) < 0 ? -EINVAL : 0;
        free(data);
        if (r == 0)
            scratch_unlink(src->scratch);
        return r;
    }
    if (src->kind == K_VFILE && src->vf == VF_CONFIG && dst->kind == K_SCRATCH) {
        size_t len = 0;
        char *text = vfile_render(VF_CONFIG, &len);
        if (!text)
            return -ENOMEM;
        int r = scratch_write_atomic(dst->scratch, text, len, &err) < 0 ? -EIO : 0;
        free(text);
        return r;
    }
    return -EACCES;   /* the other virtual files are not renamed, nor renamed over */
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    char from[PATH_MAX], to[PATH_MAX];
    pathinfo src, dst;
    struct stat st;
    int r = fs_child_of(parent, name, from, sizeof from, &src);
    if (r == 0)
        r = fs_child_of(newparent, newname, to, sizeof to, &dst);
    if (r == 0 && (flags & RENAME_EXCHANGE))
        r = -EINVAL;
    int noreplace = (flags & RENAME_NOREPLACE) != 0;
    if (r == 0) {
        if (src.kind == K_VFILE || dst.kind == K_VFILE)
            r = rename_config(&src, &dst);
        else if (src.kind == K_RESULT || dst.kind == K_RESULT)
            r = -EACCES;   /* results are routefs's */
        else if (src.kind == K_TIER || dst.kind == K_TIER || src.kind == K_ROOT)
            r = -EPERM;
        else if (src.kind == K_ENTRY && prompts_dir_stat(src.key, &st) == 0)
            r = -EPERM;    /* tag directories keep their name: jobs inside are keyed by path */
        else if (src.kind == K_ENTRY && dst.kind == K_ENTRY)
            r = prompts_rename(src.key, dst.key, noreplace);
        else if (src.kind == K_SCRATCH && dst.kind == K_ENTRY) {
            int mode = wanted_mode_take(src.scratch);
            r = prompts_install_scratch(src.scratch, dst.key, noreplace, mode);   /* rsync */
        }
        else if (src.kind == K_ENTRY && dst.kind == K_SCRATCH)
            r = prompts_to_scratch(src.key, dst.scratch, noreplace);
        else if (noreplace && scratch_exists(dst.scratch))
            r = -EEXIST;
        else if ((r = scratch_rename(src.scratch, dst.scratch)) == 0) {
            int mode = wanted_mode_take(src.scratch);
            if (mode >= 0)
                wanted_mode_set(dst.scratch, (mode_t)mode);
        }
    }
    if (r == 0)
        inodes_renamed(from, to);
    fuse_reply_err(req, r < 0 ? -r : 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    if (fstatvfs(store_dirfd(F.st), &sv) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    fuse_reply_statfs(req, &sv);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char path[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0 && !(pi.kind == K_RESULT && pi.result == NAME_OUT))
        r = -ENODATA;
    char *buf = NULL;
    long n = r;
    if (r == 0 && size && !(buf = malloc(size)))
        n = -ENOMEM;
    else if (r == 0)
        n = results_xattr(pi.key, name, buf, size);
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char path[PATH_MAX], names[256];
    pathinfo pi;
    long n = inodes_path(ino, path, sizeof path);
    if (n == 0)
        n = paths_classify(path, &pi);
    if (n == 0)
        n = pi.kind == K_RESULT && pi.result == NAME_OUT
                ? results_xattr_list(pi.key, names, size ? (size < sizeof names ? size : sizeof names) : 0)
                : 0;
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)n);
    else
        fuse_reply_buf(req, names, (size_t)n);
}

/* user.routefs.rerun on a prompt: run it again although its content is unchanged;
 * user.routefs.control on the root: `routefs umount` (service.c). */
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    if (ino == FUSE_ROOT_ID && !strcmp(name, SERVICE_CONTROL_XATTR)) {
        fuse_reply_err(req, -service_control(value, size));
        return;
    }
    char path[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0 && pi.kind == K_ENTRY && !strcmp(name, "user.routefs.rerun"))
        r = prompts_rerun(pi.key);
    else if (r == 0)
        r = -ENOTSUP;
    fuse_reply_err(req, r < 0 ? -r : 0);
}

static const struct fuse_lowlevel_ops fs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .symlink = op_symlink,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .mkdir = op_mkdir,
    .rmdir = op_rmdir,
    .create = fs_op_create,
    .open = fs_op_open,
    .read = fs_op_read,
    .write = fs_op_write,
    .flush = fs_op_flush,
    .fsync = fs_op_fsync,
    .release = fs_op_release,
    .unlink = op_unlink,
    .rename = op_rename,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .setxattr = op_setxattr,
    .listxattr = op_listxattr,
};

struct fuse_session *fs_session_new(struct fuse_args *args, store *st, rf_err *err)
{
    F.st = st;
    fs_dir_init(st);
    fs_file_init(st);
    F.se = fuse_session_new(args, &fs_ops, sizeof fs_ops, NULL);
    if (!F.se)
        rf_err_set(err, EINVAL, "cannot create the FUSE session (bad -o option?)");
    return F.se;
}

void fs_session_destroy(void)
{
    if (F.se) {
        fuse_session_destroy(F.se);
        F.se = NULL;
    }
    fs_handles_free_all();   /* files still open at a lazy unmount: never released */
    pthread_mutex_lock(&W.lock);
    hmap_free(W.modes);
    W.modes = NULL;
    pthread_mutex_unlock(&W.lock);
    fs_dir_close_all();
    inodes_free();
}

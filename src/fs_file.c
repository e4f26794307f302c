/* fs_file.c — open files of the mount: the handle of each open (a prompt being read or
 * written, a result, a virtual file, a config edit session, a scratch file) and the
 * FUSE callbacks that act on handles (create, open, read, write, flush, fsync, release).
 * Part of fs.c's thin map: each callback hands the work to the module that owns it. */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inodes.h"
#include "jobs.h"
#include "paths.h"
#include "scratch.h"
#include "upstream.h"

static store *FF_st;

void fs_file_init(store *st)
{
    FF_st = st;
}

/* ---- open file handles ---- */

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static handle *open_handles;

static handle *handle_new(handle_kind kind)
{
    handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->kind = kind;
    h->fd = -1;
    pthread_mutex_lock(&open_lock);
    h->next = open_handles;
    if (open_handles)
        open_handles->prev = h;
    open_handles = h;
    pthread_mutex_unlock(&open_lock);
    return h;
}

static void handle_free(handle *h)
{
    pthread_mutex_lock(&open_lock);
    if (h->prev)
        h->prev->next = h->next;
    else
        open_handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&open_lock);
    if (h->prompt)
        prompts_release(h->prompt);
    results_release(h->result);
    if (h->fd >= 0)
        close(h->fd);
    free(h->data);
    liveconf_edit_free(h->edit);
    events_close(h->events);
    free(h);
}

handle *handle_of(struct fuse_file_info *fi)
{
    return (handle *)(uintptr_t)fi->fh;
}

void fs_handles_free_all(void)
{
    while (open_handles)
        handle_free(open_handles);
}

/* ---- files ---- */

static void create_config(fuse_req_t req, const char *path, struct fuse_file_info *fi)
{
    paths_hide_config(0);
    handle *h = handle_new(H_CONFIG_EDIT);
    if (h && !(h->edit = liveconf_edit_begin(NULL, 0, 1))) {
        handle_free(h);
        h = NULL;
    }
    fuse_ino_t ino = h ? inodes_remember(path) : 0;
    if (!ino) {
        if (h)
            handle_free(h);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    paths_fill_synthetic(&e.attr, S_IFREG | paths_vfile_mode(VF_CONFIG), 0);
    e.attr.st_ino = e.ino;
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    if (fuse_reply_create(req, &e, fi) != 0) {
        inodes_forget(e.ino, 1);
        handle_free(h);
    }
}

/* Open (or create) a prompt or a scratch file as handle h. */
static int open_file(fuse_req_t req, const pathinfo *pi, int flags, int create, mode_t mode,
                     handle **out)
{
    uid_t uid;
    gid_t gid;
    fs_creds(req, &uid, &gid);
    handle *h = NULL;
    int r;
    if (pi->kind == K_ENTRY) {
        prompt_handle *ph = NULL;
        r = prompts_open(pi->key, flags, create, mode, uid, gid, &ph);
        if (r == 0 && !(h = handle_new(H_PROMPT))) {
            prompts_release(ph);
            r = -ENOMEM;
        }
        if (r == 0)
            h->prompt = ph;
    } else {
        /* An open scratch file holds its descriptor: it may not take those the store and
         * the tiers' connections still need.  A refused open changes nothing: O_TRUNC is
         * applied once it is kept, and a file it created is removed. */
        int existed = !create || scratch_exists(pi->scratch);
        int trunc_later = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
        int fd = scratch_open(pi->scratch,
                              (flags & ~(O_NONBLOCK | (trunc_later ? O_TRUNC : 0))) |
                                  (create ? O_CREAT : 0),
                              mode & 07777);
        if (fd >= 0) {
            rf_config *cfg = jobs_config();
            int keep = upstream_fd_may_keep(fd, cfg);
            config_unref(cfg);
            if (keep && trunc_later && ftruncate(fd, 0) < 0) {
                int e = errno;
                close(fd);
                fd = -e;
            } else if (!keep) {
                close(fd);
                if (!existed)
                    scratch_unlink(pi->scratch);
                fd = -EMFILE;
            }
        }
        if (fd == -EMFILE || fd == -ENFILE)
            upstream_fd_shortage(UPSTREAM_FD_SCRATCH);
        r = fd < 0 ? fd : 0;
        if (r == 0 && !(h = handle_new(H_SCRATCH))) {
            close(fd);
            r = -ENOMEM;
        }
        if (r == 0)
            h->fd = fd;
    }
    *out = h;
    return r;
}

void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    pathinfo pi;
    struct stat st;
    handle *h = NULL;
    int r = fs_child_of(parent, name, path, sizeof path, &pi);
    if (!strcmp(path, vfile_name(VF_CONFIG))) {
        create_config(req, path, fi);   /* the second half of a cross-device mv */
        return;
    }
    if (r == 0 && pi.kind != K_ENTRY && pi.kind != K_SCRATCH)
        r = pi.kind == K_RESULT || pi.kind == K_VFILE ? -EACCES : -EISDIR;
    if (r == 0)
        r = open_file(req, &pi, fi->flags, 1, mode, &h);
    if (r == 0)
        r = paths_stat(path, &pi, &st);
    fuse_ino_t ino = r == 0 ? inodes_remember(path) : 0;
    if (r == 0 && !ino)
        r = -ENOMEM;
    if (r < 0) {
        if (h)
            handle_free(h);
        fuse_reply_err(req, -r);
        return;
    }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    e.attr = st;
    e.attr.st_ino = ino;
    e.attr_timeout = paths_attr_timeout(&pi);
    e.entry_timeout = paths_entry_timeout(&pi);
    fi->fh = (uint64_t)(uintptr_t)h;
    /* A prompt lives in memory until it is closed, so the page cache buys nothing; direct
     * I/O also spares the security.capability getxattr the kernel sends before the first
     * cached write to every new file. */
    fi->direct_io = h->kind == H_PROMPT;
    if (fuse_reply_create(req, &e, fi) != 0) {
        inodes_forget(ino, 1);
        handle_free(h);
    }
}

static int open_vfile(const pathinfo *pi, struct fuse_file_info *fi, handle **out)
{
    handle *h;
    if (fs_open_for_writing(fi->flags)) {
        if (pi->vf != VF_CONFIG)
            return -EACCES;
        /* An edit session: from the current text unless truncated (an emptied config must
         * be judged too), judged on flush/fsync/close (liveconf_edit_commit). */
        if (!(h = handle_new(H_CONFIG_EDIT)))
            return -ENOMEM;
        int truncated = (fi->flags & O_TRUNC) != 0;
        size_t len = 0;
        char *text = truncated ? NULL : vfile_render(VF_CONFIG, &len);
        if (truncated || text)
            h->edit = liveconf_edit_begin(text, len, truncated);   /* copies the text */
        free(text);
        if (!h->edit) {
            handle_free(h);
            return -ENOMEM;
        }
    } else if (pi->vf == VF_ACTIVITY) {
        if (!(h = handle_new(H_ACTIVITY)))   /* read in place: tail -f sees it grow */
            return -ENOMEM;
    } else if (pi->vf == VF_EVENTS) {
        if (!(h = handle_new(H_EVENTS)))     /* a stream of its own, from now on */
            return -ENOMEM;
        if (!(h->events = events_open((fi->flags & O_NONBLOCK) != 0))) {
            handle_free(h);
            return -ENOMEM;
        }
    } else {
        if (!(h = handle_new(H_VFILE)))
            return -ENOMEM;
        if (!(h->data = vfile_render(pi->vf, &h->len))) {
            handle_free(h);
            return -ENOMEM;
        }
    }
    fi->direct_io = 1;
    *out = h;
    return 0;
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    pathinfo pi;
    handle *h = NULL;
    struct stat st;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0) {
        switch (pi.kind) {
        case K_RESULT: {
            result_handle *rh = NULL;
            r = results_open(pi.key, pi.result, fi->flags, &rh);
            if (r == 0 && !(h = handle_new(H_RESULT))) {
                results_release(rh);
                r = -ENOMEM;
            }
            if (r == 0) {
                h->result = rh;
                fi->direct_io = results_direct_io(rh);
            }
            break;
        }
        case K_VFILE:
            r = open_vfile(&pi, fi, &h);
            break;
        case K_ENTRY:
            if (prompts_dir_stat(pi.key, &st) == 0)
                r = -EISDIR;
            else if ((r = open_file(req, &pi, fi->flags, 0, 0, &h)) == 0)
                fi->direct_io = 1;   /* as in op_create */
            break;
        case K_SCRATCH:
            r = open_file(req, &pi, fi->flags, 0, 0, &h);
            break;
        default:
            r = -EISDIR;
        }
    }
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    /* A read-only handle has nothing to do at close (fs_op_flush answers 0 for it), so
     * the kernel need not ask: one round trip fewer per cat of a result. */
    fi->noflush = !fs_open_for_writing(fi->flags) && h->kind != H_CONFIG_EDIT;
    if (fuse_reply_open(req, fi) != 0)
        handle_free(h);
}

/* Reply from a copy: once the kernel has the reply the reader may close, and the
 * release (another thread) frees the data while fuse_reply_buf is returning. */
static void reply_copy(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
    if (off < 0 || (size_t)off >= len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t n = len - (size_t)off < size ? len - (size_t)off : size;
    char *copy = malloc(n ? n : 1);
    if (!copy) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    memcpy(copy, data + off, n);
    fuse_reply_buf(req, copy, n);
    free(copy);
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    if (h->kind == H_RESULT) {
        results_read(req, h->result, size, off);
        return;
    }
    if (h->kind == H_VFILE) {
        reply_copy(req, h->data, h->len, size, off);
        return;
    }
    if (h->kind == H_EVENTS) {
        events_read(req, h->events, size, off);   /* may wait for the next job to end */
        return;
    }
    if (h->kind == H_CONFIG_EDIT) {
        size_t len = 0;
        const char *text = liveconf_edit_text(h->edit, &len);
        reply_copy(req, text, len, size, off);
        return;
    }
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    long n;
    if (h->kind == H_PROMPT)
        n = prompts_read(h->prompt, buf, size, off);
    else if (h->kind == H_ACTIVITY)
        n = vfile_read_activity(off, buf, size);
    else {
        ssize_t k = pread(h->fd, buf, size, off);
        n = k < 0 ? -errno : (long)k;
    }
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    long n;
    switch (h->kind) {
    case H_CONFIG_EDIT:
        n = liveconf_edit_write(h->edit, buf, size, off);
        n = n < 0 ? n : (long)size;
        break;
    case H_PROMPT:
        n = prompts_write(h->prompt, buf, size, off);
        break;
    case H_SCRATCH: {
        ssize_t w = pwrite(h->fd, buf, size, off);
        n = w < 0 ? -errno : (long)w;
        break;
    }
    default:
        n = -EACCES;
    }
    if (n < 0)
        fuse_reply_err(req, (int)-n);
    else
        fuse_reply_write(req, (size_t)n);
}

void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    int r = h->kind == H_CONFIG_EDIT ? liveconf_edit_commit(h->edit)
            : h->kind == H_PROMPT    ? prompts_flush(h->prompt)
                                     : 0;
    fuse_reply_err(req, -r);
}

void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    int r = 0;
    if (h->kind == H_CONFIG_EDIT)
        r = liveconf_edit_commit(h->edit);   /* vim: "Fsync failed"; it keeps the original */
    else if (h->kind == H_PROMPT)
        r = prompts_fsync(h->prompt);        /* the bytes so far are on the disk */
    else if (h->kind == H_SCRATCH && (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0)
        r = -errno;
    fuse_reply_err(req, -r);
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    if (h->kind == H_CONFIG_EDIT)
        liveconf_edit_commit(h->edit);   /* nobody hears a release error: status and log do */
    handle_free(h);                      /* a prompt's last writer: its job starts once stored */
    fuse_reply_err(req, 0);
}


/* fs.c — see fs.h.
 *
 * Every callback does three things: find the path of the inode (inodes.c), classify it
 * (paths_classify), and hand the work to the module that owns that kind of file: jobs.c
 * for prompts and results, vfiles.c and liveconf.c for the root files, store.c for bytes
 * on disk.  The only state kept here is open file handles and directory listings.
 *
 * Readers of an unfinished NAME.out never hold a FUSE thread: the request is parked on
 * the job (jobs_wait_*) and answered from the thread that finishes the job, or with
 * EINTR from fuse's interrupt callback (Ctrl-C). */
#include "fs.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "inodes.h"
#include "jobs.h"
#include "kcache.h"
#include "liveconf.h"
#include "log.h"
#include "names.h"
#include "paths.h"
#include "service.h"
#include "vfiles.h"

#define PROMPT_MAX (1024 * 1024)   /* a prompt larger than this is refused with EFBIG */

static struct {
    store *st;
    budget *spend;
    struct fuse_session *se;
    int shutting_down;
} F;

/* A prompt for a tier whose budget is used up is refused when it is opened or written,
 * where a shell reports it ("Disk quota exceeded"), not later at close. */
static int prompt_admission(const pathinfo *pi)
{
    rf_config *cfg = jobs_config();
    char tier[PATH_MAX];
    snprintf(tier, sizeof tier, "%s", pi->key);
    char *slash = strchr(tier, '/');
    if (slash)
        *slash = '\0';
    rf_err err;
    rf_err_clear(&err);
    int r = budget_check_admission(F.spend, cfg, tier, &err);
    config_unref(cfg);
    if (r < 0) {
        LOG_WARN("%s refused: %s", pi->key, err.msg);
        return -EDQUOT;
    }
    return 0;
}

static void reply_entry_for(fuse_req_t req, const char *path, const pathinfo *pi,
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
    e.attr.st_ino = e.ino;
    e.attr_timeout = paths_attr_timeout(pi);
    e.entry_timeout = paths_entry_timeout(pi);
    if (fuse_reply_entry(req, &e) != 0)
        inodes_forget(e.ino, 1);   /* the kernel never got it (interrupted) */
}

/* ---- open file handles ---- */

typedef enum {
    H_FD,          /* a store file */
    H_SNAPSHOT,    /* a rendered virtual file or the meta of an unfinished job */
    H_PENDING_OUT, /* NAME.out of an unfinished job: reads wait */
    H_FAILED_OUT,  /* NAME.out of a failed job: reads say EIO */
    H_CONFIG_EDIT  /* config.json opened for writing: bytes collect here until flush */
} handle_kind;

/* Every open file and directory handle is on one list, so that the ones the kernel never
 * releases (a lazy unmount with files still open) are freed at the end. */
typedef struct open_link {
    struct open_link *prev, *next;
    int is_dir;             /* a dirlist, else a handle */
} open_link;

static struct {
    pthread_mutex_t lock;
    open_link *head;
} OPEN = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void open_track(open_link *l, int is_dir)
{
    l->is_dir = is_dir;
    l->prev = NULL;
    pthread_mutex_lock(&OPEN.lock);
    l->next = OPEN.head;
    if (OPEN.head)
        OPEN.head->prev = l;
    OPEN.head = l;
    pthread_mutex_unlock(&OPEN.lock);
}

static void open_untrack(open_link *l)
{
    pthread_mutex_lock(&OPEN.lock);
    if (l->prev)
        l->prev->next = l->next;
    else
        OPEN.head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pthread_mutex_unlock(&OPEN.lock);
}

typedef struct handle {
    open_link link;         /* first: the list of open handles */
    handle_kind kind;
    int fd;                 /* H_FD */
    char *data;             /* H_SNAPSHOT, owned */
    size_t len;
    char key[PATH_MAX];     /* H_PENDING_OUT and prompt writers */
    int prompt_writer;      /* this handle counts as a writer of prompt key */
    int too_large;          /* a write went past PROMPT_MAX: the prompt is refused */
    int nonblock;
    liveconf_edit *edit;    /* H_CONFIG_EDIT: the session (liveconf.h) */
} handle;

static handle *handle_new(handle_kind kind)
{
    handle *h = calloc(1, sizeof *h);
    if (h) {
        h->kind = kind;
        h->fd = -1;
        open_track(&h->link, 0);
    }
    return h;
}

static void handle_free(handle *h)
{
    open_untrack(&h->link);
    if (h->fd >= 0)
        close(h->fd);
    free(h->data);
    liveconf_edit_free(h->edit);
    free(h);
}

static handle *handle_of(struct fuse_file_info *fi)
{
    return (handle *)(uintptr_t)fi->fh;
}



/* ---- operations ---- */

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
    if (r == -ENOENT && paths_classify(path, &pi) == 0 && pi.kind == K_TIERFILE) {
        /* A prompt name that does not exist can only come to exist through the kernel
         * (create, rename), so the kernel may remember its absence: cp asks twice per
         * file.  Never for results, which appear on their own. */
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.entry_timeout = paths_entry_timeout(&pi);
        fuse_reply_entry(req, &e);
        return;
    }
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    reply_entry_for(req, path, &pi, &st);
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

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE) && pi.kind == K_VFILE && pi.vf == VF_CONFIG) {
        handle *h = fi ? handle_of(fi) : NULL;
        if (h && h->kind == H_CONFIG_EDIT) {
            r = liveconf_edit_truncate(h->edit, attr->st_size);
        } else {
            r = attr->st_size == 0 ? -EINVAL : -EACCES;   /* an empty config is no config */
        }
    } else if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
        if (pi.kind != K_SCRATCH && pi.kind != K_TIERFILE) {
            r = pi.kind == K_ROOT || pi.kind == K_TIER ? -EISDIR : -EACCES;
        } else if (attr->st_size > PROMPT_MAX && paths_is_prompt(&pi)) {
            r = -EFBIG;
        } else if (fi && handle_of(fi)->kind == H_FD) {
            r = ftruncate(handle_of(fi)->fd, attr->st_size) < 0 ? -errno : 0;
        } else if (paths_is_prompt(&pi)) {
            /* truncate(1) without an open handle rewrites the prompt */
            jobs_prompt_open_write(pi.key);
            r = store_truncate(F.st, pi.rel, attr->st_size);
            jobs_prompt_close_write(pi.key);
        } else {
            r = store_truncate(F.st, pi.rel, attr->st_size);
        }
    }
    /* chmod, chown and utimens are accepted and ignored: editors call them on save. */
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

typedef struct dirlist {
    open_link link;         /* first: the list of open handles */
    struct { char *name; mode_t mode; } *ents;
    size_t len, cap;
} dirlist;

static int dirlist_add(dirlist *dl, const char *name, mode_t mode)
{
    if (dl->len == dl->cap) {
        size_t cap = dl->cap ? dl->cap * 2 : 32;
        void *p = realloc(dl->ents, cap * sizeof *dl->ents);
        if (!p)
            return -ENOMEM;
        dl->ents = p;
        dl->cap = cap;
    }
    if (!(dl->ents[dl->len].name = strdup(name)))
        return -ENOMEM;
    dl->ents[dl->len].mode = mode;
    dl->len++;
    return 0;
}

static void dirlist_free(dirlist *dl)
{
    open_untrack(&dl->link);
    for (size_t i = 0; i < dl->len; i++)
        free(dl->ents[i].name);
    free(dl->ents);
    free(dl);
}

static int list_root(dirlist *dl)
{
    int r = 0;
    for (int v = 0; v < VF_COUNT && r == 0; v++)
        if (v != VF_CONFIG || !paths_config_hidden())
            r = dirlist_add(dl, vfile_name((vfile_id)v), S_IFREG);
    rf_config *cfg = jobs_config();
    for (size_t i = 0; cfg && i < cfg->tiers_len && r == 0; i++)
        r = dirlist_add(dl, cfg->tiers[i].name, S_IFDIR);
    config_unref(cfg);
    DIR *d = store_opendir(F.st, "root");
    struct dirent *de;
    while (r == 0 && d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            !strncmp(de->d_name, STORE_TEMP_PREFIX, strlen(STORE_TEMP_PREFIX)))
            continue;
        r = dirlist_add(dl, de->d_name, de->d_type == DT_DIR ? S_IFDIR : S_IFREG);
    }
    if (d)
        closedir(d);
    return r;
}

/* A tier or tag directory: what is on disk, plus NAME.out/NAME.meta of unfinished jobs. */
static int list_tier_dir(const char *path, const char *rel, dirlist *dl)
{
    DIR *d = store_opendir(F.st, rel);
    if (!d)
        return -errno;
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..") ||
            !strncmp(nm, STORE_TEMP_PREFIX, strlen(STORE_TEMP_PREFIX)))
            continue;
        int is_dir = de->d_type == DT_DIR;
        r = dirlist_add(dl, nm, is_dir ? S_IFDIR : S_IFREG);
        if (r || is_dir || name_is_temp(nm) || name_result_kind(nm) >= 0)
            continue;
        char key[PATH_MAX];
        if (paths_child(path, nm, key, sizeof key) < 0)
            continue;
        if (jobs_active(key, NULL)) {
            char name[NAME_MAX + 8];
            snprintf(name, sizeof name, "%s.out", nm);
            r = dirlist_add(dl, name, S_IFREG);
            snprintf(name, sizeof name, "%s.meta", nm);
            if (r == 0)
                r = dirlist_add(dl, name, S_IFREG);
        } else {
            /* a failed job shows NAME.out (reading it says EIO) beside NAME.err */
            char out[PATH_MAX * 2], errf[PATH_MAX * 2];
            if (snprintf(out, sizeof out, "%s/%s.out", rel, nm) >= (int)sizeof out ||
                snprintf(errf, sizeof errf, "%s/%s.err", rel, nm) >= (int)sizeof errf)
                continue;
            if (!store_exists(F.st, out) && store_exists(F.st, errf)) {
                char name[NAME_MAX + 8];
                snprintf(name, sizeof name, "%s.out", nm);
                r = dirlist_add(dl, name, S_IFREG);
            }
        }
    }
    closedir(d);
    return r;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    dirlist *dl = r == 0 ? calloc(1, sizeof *dl) : NULL;
    if (r == 0 && !dl)
        r = -ENOMEM;
    if (dl)
        open_track(&dl->link, 1);
    if (r == 0)
        r = dirlist_add(dl, ".", S_IFDIR);
    if (r == 0)
        r = dirlist_add(dl, "..", S_IFDIR);
    if (r == 0) {
        if (pi.kind == K_ROOT)
            r = list_root(dl);
        else if (pi.kind == K_TIER || pi.kind == K_TIERFILE)
            r = list_tier_dir(path, pi.rel, dl);
        else
            r = -ENOTDIR;
    }
    if (r < 0) {
        if (dl)
            dirlist_free(dl);
        fuse_reply_err(req, -r);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)dl;
    if (fuse_reply_open(req, fi) != 0)
        dirlist_free(dl);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    dirlist *dl = (dirlist *)(uintptr_t)fi->fh;
    char *buf = malloc(size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    for (size_t i = (size_t)off; i < dl->len; i++) {
        /* d_ino 0 means "deleted" to readdir(3): any other value will do */
        struct stat st = {.st_mode = dl->ents[i].mode, .st_ino = (ino_t)(i + 2)};
        size_t need = fuse_add_direntry(req, buf + used, size - used, dl->ents[i].name, &st,
                                        (off_t)(i + 1));
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    dirlist_free((dirlist *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    char ppath[PATH_MAX], path[PATH_MAX];
    pathinfo pi;
    struct stat st;
    int r = inodes_path(parent, ppath, sizeof ppath);
    if (r == 0)
        r = paths_child(ppath, name, path, sizeof path);
    if (r == 0 && !ppath[0])
        r = -EPERM;       /* tiers come from the config, not from mkdir */
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0 && pi.kind != K_TIERFILE)
        r = -EACCES;      /* NAME.out etc. are results, not directories */
    if (r == 0)
        r = store_mkdir(F.st, pi.rel);
    if (r == 0)
        r = paths_stat(path, &pi, &st);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    reply_entry_for(req, path, &pi, &st);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    char ppath[PATH_MAX], path[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(parent, ppath, sizeof ppath);
    if (r == 0)
        r = paths_child(ppath, name, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0 && pi.kind != K_TIERFILE)
        r = pi.kind == K_TIER ? -EPERM : -ENOTDIR;
    if (r == 0)
        r = store_rmdir(F.st, pi.rel);
    fuse_reply_err(req, r < 0 ? -r : 0);
}

/* ---- files ---- */

static int open_for_writing(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

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
    paths_fill_synthetic(&e.attr, S_IFREG | 0644, 0);
    e.attr.st_ino = e.ino;
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    if (fuse_reply_create(req, &e, fi) != 0) {
        inodes_forget(e.ino, 1);
        handle_free(h);
    }
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    char ppath[PATH_MAX], path[PATH_MAX];
    pathinfo pi;
    struct stat st;
    handle *h = NULL;
    int r = inodes_path(parent, ppath, sizeof ppath);
    if (r == 0)
        r = paths_child(ppath, name, path, sizeof path);
    if (r == 0 && !strcmp(path, vfile_name(VF_CONFIG))) {
        create_config(req, path, fi);   /* the second half of a cross-device mv */
        return;
    }
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0 && pi.kind != K_SCRATCH && pi.kind != K_TIERFILE)
        r = pi.kind == K_RESULT || pi.kind == K_VFILE ? -EACCES : -EISDIR;
    if (r == 0 && paths_is_prompt(&pi))
        r = prompt_admission(&pi);
    if (r == 0 && !(h = handle_new(H_FD)))
        r = -ENOMEM;
    if (r == 0) {
        int fd = store_openat(F.st, pi.rel, (fi->flags & ~O_NONBLOCK) | O_CREAT, 0600);
        if (fd < 0)
            r = fd;
        else
            h->fd = fd;
    }
    if (r == 0 && paths_is_prompt(&pi)) {
        jobs_prompt_open_write(pi.key);
        h->prompt_writer = 1;
        snprintf(h->key, sizeof h->key, "%s", pi.key);
    }
    if (r == 0)
        r = paths_stat(path, &pi, &st);
    if (r < 0) {
        if (h) {
            if (h->prompt_writer)
                jobs_prompt_close_write(h->key);
            handle_free(h);
        }
        fuse_reply_err(req, -r);
        return;
    }
    fuse_ino_t ino = inodes_remember(path);
    if (!ino) {
        if (h->prompt_writer)
            jobs_prompt_close_write(h->key);
        handle_free(h);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    e.attr = st;
    e.attr.st_ino = e.ino;
    e.attr_timeout = paths_attr_timeout(&pi);
    e.entry_timeout = paths_entry_timeout(&pi);
    fi->fh = (uint64_t)(uintptr_t)h;
    /* A prompt is written once and read by the job from the store, so the page cache buys
     * nothing; direct I/O also spares the security.capability getxattr the kernel sends
     * before the first cached write to every new file. */
    fi->direct_io = h->prompt_writer;
    if (fuse_reply_create(req, &e, fi) != 0) {
        inodes_forget(e.ino, 1);
        if (h->prompt_writer)
            jobs_prompt_close_write(h->key);
        handle_free(h);
    }
}

/* Open NAME.out / .meta / .err. */
static int open_result(const pathinfo *pi, struct fuse_file_info *fi, handle **out)
{
    if (open_for_writing(fi->flags))
        return -EACCES;   /* results are written by routefs only */
    handle *h;
    if (jobs_active(pi->key, NULL)) {
        if (pi->result == NAME_ERR)
            return -ENOENT;
        if (pi->result == NAME_OUT) {
            if (!(h = handle_new(H_PENDING_OUT)))
                return -ENOMEM;
            snprintf(h->key, sizeof h->key, "%s", pi->key);
            h->nonblock = (fi->flags & O_NONBLOCK) != 0;
        } else {
            if (!(h = handle_new(H_SNAPSHOT)))
                return -ENOMEM;
            h->data = jobs_meta(pi->key);
            h->len = h->data ? strlen(h->data) : 0;
        }
        fi->direct_io = 1;   /* size unknown until the job ends */
        *out = h;
        return 0;
    }
    char rel[PATH_MAX + 16];
    paths_result_rel(pi->key, pi->result, rel, sizeof rel);
    int fd = store_openat(F.st, rel, O_RDONLY, 0);
    if (fd == -ENOENT && pi->result == NAME_OUT) {
        paths_result_rel(pi->key, NAME_ERR, rel, sizeof rel);
        if (!store_exists(F.st, rel))
            return -ENOENT;
        if (!(h = handle_new(H_FAILED_OUT)))
            return -ENOMEM;
        fi->direct_io = 1;
        *out = h;
        return 0;
    }
    if (fd < 0)
        return fd;
    if (!(h = handle_new(H_FD))) {
        close(fd);
        return -ENOMEM;
    }
    h->fd = fd;
    *out = h;
    return 0;
}

static int open_vfile(const pathinfo *pi, struct fuse_file_info *fi, handle **out)
{
    handle *h;
    if (open_for_writing(fi->flags)) {
        if (pi->vf != VF_CONFIG)
            return -EACCES;
        /* Edit session: starts from the current text unless truncated (an emptied config
         * must be judged too); judged on flush/fsync/close (liveconf_edit_commit). */
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
        fi->direct_io = 1;
        *out = h;
        return 0;
    }
    const char *rel = vfile_store_rel(pi->vf);
    if (rel) {
        int fd = store_openat(F.st, rel, O_RDONLY | O_CREAT, 0600);
        if (fd < 0)
            return fd;
        if (!(h = handle_new(H_FD))) {
            close(fd);
            return -ENOMEM;
        }
        h->fd = fd;
        *out = h;
        return 0;   /* page cache off by default: tail -f sees appended lines */
    }
    if (!(h = handle_new(H_SNAPSHOT)))
        return -ENOMEM;
    h->data = vfile_render(pi->vf, &h->len);
    if (!h->data) {
        handle_free(h);
        return -ENOMEM;
    }
    fi->direct_io = 1;
    *out = h;
    return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    char path[PATH_MAX];
    pathinfo pi;
    handle *h = NULL;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0) {
        switch (pi.kind) {
        case K_RESULT:
            r = open_result(&pi, fi, &h);
            break;
        case K_VFILE:
            r = open_vfile(&pi, fi, &h);
            break;
        case K_SCRATCH:
        case K_TIERFILE: {
            if (paths_is_prompt(&pi) && open_for_writing(fi->flags) && (r = prompt_admission(&pi)) < 0)
                break;
            if (paths_is_prompt(&pi) && open_for_writing(fi->flags))
                jobs_prompt_open_write(pi.key);   /* NAME.out appears now, pending */
            int fd = store_openat(F.st, pi.rel, fi->flags & ~(O_CREAT | O_EXCL | O_NONBLOCK), 0);
            if (fd < 0) {
                if (paths_is_prompt(&pi) && open_for_writing(fi->flags))
                    jobs_prompt_close_write(pi.key);
                r = fd;
                break;
            }
            if (!(h = handle_new(H_FD))) {
                close(fd);
                r = -ENOMEM;
                break;
            }
            h->fd = fd;
            if (paths_is_prompt(&pi) && open_for_writing(fi->flags)) {
                h->prompt_writer = 1;
                snprintf(h->key, sizeof h->key, "%s", pi.key);
            }
            break;
        }
        default:
            r = -EISDIR;
        }
    }
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    if (h->prompt_writer)
        fi->direct_io = 1;   /* as in op_create */
    if (fuse_reply_open(req, fi) != 0) {
        if (h->prompt_writer)
            jobs_prompt_close_write(h->key);
        handle_free(h);
    }
}

/* Answer a read of a finished job's NAME.out from the store. */
static void reply_result_read(fuse_req_t req, const char *key, off_t off, size_t size)
{
    char rel[PATH_MAX + 16];
    paths_result_rel(key, NAME_OUT, rel, sizeof rel);
    int fd = store_openat(F.st, rel, O_RDONLY, 0);
    if (fd < 0) {
        /* failed (NAME.err), or the prompt was removed while we waited */
        fuse_reply_err(req, EIO);
        return;
    }
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ssize_t n = pread(fd, buf, size, off);
    int e = errno;
    close(fd);
    if (n < 0)
        fuse_reply_err(req, e);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

void fs_wake_reader(void *req, const char *key, off_t off, size_t size)
{
    if (__atomic_load_n(&F.shutting_down, __ATOMIC_ACQUIRE)) {
        fuse_reply_err((fuse_req_t)req, EINTR);
        return;
    }
    reply_result_read((fuse_req_t)req, key, off, size);
}

static void on_read_interrupted(fuse_req_t req, void *data)
{
    if (jobs_wait_interrupt(req))
        fuse_reply_err(req, EINTR);
}

static void read_pending_out(fuse_req_t req, handle *h, size_t size, off_t off)
{
    if (jobs_active(h->key, NULL)) {
        if (h->nonblock) {
            fuse_reply_err(req, EAGAIN);
            return;
        }
        if (jobs_wait_begin(h->key, req, off, size)) {
            fuse_req_interrupt_func(req, on_read_interrupted, NULL);
            switch (jobs_wait_arm(req)) {
            case JOBS_WAIT_ARMED:
                return;   /* answered when the job ends, or by the interrupt */
            case JOBS_WAIT_INTERRUPTED:
                fuse_reply_err(req, EINTR);
                return;
            default:
                break;    /* ended meanwhile: read it now */
            }
        }
    }
    reply_result_read(req, h->key, off, size);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    switch (h->kind) {
    case H_PENDING_OUT:
        read_pending_out(req, h, size, off);
        return;
    case H_FAILED_OUT:
        fuse_reply_err(req, EIO);
        return;
    case H_SNAPSHOT:
    case H_CONFIG_EDIT: {
        size_t len = h->len;
        const char *data = h->kind == H_CONFIG_EDIT ? liveconf_edit_text(h->edit, &len) : h->data;
        if ((size_t)off >= len) {
            fuse_reply_buf(req, NULL, 0);
            return;
        }
        /* Reply from a copy: once the kernel has the reply the reader may close, and the
         * release (another thread) frees the data while fuse_reply_buf is returning. */
        size_t n = len - (size_t)off < size ? len - (size_t)off : size;
        char *copy = malloc(n ? n : 1);
        if (!copy) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        memcpy(copy, data + off, n);
        fuse_reply_buf(req, copy, n);
        free(copy);
        return;
    }
    case H_FD: {
        char *buf = malloc(size ? size : 1);
        if (!buf) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        ssize_t n = pread(h->fd, buf, size, off);
        if (n < 0)
            fuse_reply_err(req, errno);
        else
            fuse_reply_buf(req, buf, (size_t)n);
        free(buf);
        return;
    }
    }
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    if (h->kind == H_CONFIG_EDIT) {
        int r = liveconf_edit_write(h->edit, buf, size, off);
        if (r < 0)
            fuse_reply_err(req, -r);
        else
            fuse_reply_write(req, size);
        return;
    }
    if (h->kind != H_FD) {
        fuse_reply_err(req, EACCES);
        return;
    }
    if (h->prompt_writer && (size_t)off + size > PROMPT_MAX) {
        h->too_large = 1;   /* what was written is a truncated prompt: never send it */
        fuse_reply_err(req, EFBIG);
        return;
    }
    ssize_t n = pwrite(h->fd, buf, size, off);
    if (n < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    int r = h->kind == H_CONFIG_EDIT ? liveconf_edit_commit(h->edit) : 0;
    fuse_reply_err(req, -r);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    int r = 0;
    if (h->kind == H_CONFIG_EDIT)
        r = -liveconf_edit_commit(h->edit);   /* vim: "Fsync failed"; it keeps the original */
    else if (h->kind == H_FD && (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0)
        r = errno;
    fuse_reply_err(req, r);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    handle *h = handle_of(fi);
    if (h->kind == H_CONFIG_EDIT)
        liveconf_edit_commit(h->edit);   /* nobody hears a release error: status and log do */
    int writer = h->prompt_writer, too_large = h->too_large;
    char key[PATH_MAX];
    if (writer)
        snprintf(key, sizeof key, "%s", h->key);
    handle_free(h);           /* close first: the job reads the prompt from the store */
    if (writer && too_large)
        jobs_prompt_refused(key, "prompt is larger than 1 MiB: not sent");
    else if (writer)
        jobs_prompt_close_write(key);
    fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    char ppath[PATH_MAX], path[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(parent, ppath, sizeof ppath);
    if (r == 0)
        r = paths_child(ppath, name, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    if (r == 0 && pi.kind == K_VFILE && pi.vf == VF_CONFIG) {
        paths_hide_config(1);   /* see CONFIG_GONE_MS */
        fuse_reply_err(req, 0);
        return;
    }
    if (r == 0 && pi.kind != K_SCRATCH && pi.kind != K_TIERFILE)
        r = pi.kind == K_TIER || pi.kind == K_ROOT ? -EISDIR : -EACCES;
    if (r == 0)
        r = store_unlink(F.st, pi.rel);
    if (r == 0 && paths_is_prompt(&pi))
        jobs_prompt_removed(pi.key);   /* cancels the job, removes its results */
    fuse_reply_err(req, r < 0 ? -r : 0);
}

/* Move NAME.out/.meta/.err of a finished prompt along with it. */
static void move_results(const char *from_key, const char *to_key)
{
    for (int r = 0; r < NAME_RESULT_KINDS; r++) {
        char from[PATH_MAX + 16], to[PATH_MAX + 16];
        paths_result_rel(from_key, r, from, sizeof from);
        paths_result_rel(to_key, r, to, sizeof to);
        store_rename(F.st, from, to);
    }
}

static int has_results(const char *key)
{
    char rel[PATH_MAX + 16];
    paths_result_rel(key, NAME_OUT, rel, sizeof rel);
    if (store_exists(F.st, rel))
        return 1;
    paths_result_rel(key, NAME_ERR, rel, sizeof rel);
    return store_exists(F.st, rel);
}

/* Renames that involve config.json.  Onto it (sed -i, vim restoring its backup, mv inside
 * the mount): the source's bytes become the config if valid, else EINVAL and nothing
 * changes.  Away from it (vim's backup): the current text is copied to the new name and
 * config.json stays — the live config cannot be absent. */
static int rename_config(const pathinfo *src, const pathinfo *dst)
{
    if (dst->kind == K_VFILE && dst->vf == VF_CONFIG &&
        (src->kind == K_SCRATCH || src->kind == K_TIERFILE)) {
        char *data = NULL;
        size_t len = 0;
        rf_err err;
        rf_err_clear(&err);
        if (store_read_all(F.st, src->rel, LIVECONF_MAX, &data, &len, &err) < 0)
            return err.code == EFBIG ? -EFBIG : -EIO;
        int r = liveconf_apply_text(data, len, src->name, &err) < 0 ? -EINVAL : 0;
        free(data);
        if (r == 0)
            store_unlink(F.st, src->rel);
        return r;
    }
    if (src->kind == K_VFILE && src->vf == VF_CONFIG && dst->kind == K_SCRATCH) {
        size_t len = 0;
        char *text = vfile_render(VF_CONFIG, &len);
        if (!text)
            return -ENOMEM;
        rf_err err;
        int r = store_write_atomic(F.st, dst->rel, text, len, &err) < 0 ? -EIO : 0;
        free(text);
        return r;
    }
    return -EACCES;   /* the other virtual files are not renamed, nor renamed over */
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    char ppath[PATH_MAX], npath[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
    pathinfo src, dst;
    int r = inodes_path(parent, ppath, sizeof ppath);
    if (r == 0)
        r = inodes_path(newparent, npath, sizeof npath);
    if (r == 0)
        r = paths_child(ppath, name, from, sizeof from);
    if (r == 0)
        r = paths_child(npath, newname, to, sizeof to);
    if (r == 0 && (flags & RENAME_EXCHANGE))
        r = -EINVAL;
    if (r == 0)
        r = paths_classify(from, &src);
    if (r == 0)
        r = paths_classify(to, &dst);
    if (r == 0 && (dst.kind == K_VFILE || src.kind == K_VFILE)) {
        r = rename_config(&src, &dst);
        if (r == 0)
            inodes_renamed(from, to);
        fuse_reply_err(req, -r);
        return;
    }
    if (r == 0 && ((src.kind != K_SCRATCH && src.kind != K_TIERFILE) ||
                   (dst.kind != K_SCRATCH && dst.kind != K_TIERFILE)))
        r = src.kind == K_RESULT || dst.kind == K_RESULT || src.kind == K_VFILE ||
                    dst.kind == K_VFILE ? -EACCES : -EPERM;
    struct stat st;
    if (r == 0 && (r = store_stat(F.st, src.rel, &st)) == 0 && S_ISDIR(st.st_mode))
        r = -EPERM;   /* tag directories keep their name: jobs inside are keyed by path */
    if (r == 0 && (flags & RENAME_NOREPLACE) && store_exists(F.st, dst.rel))
        r = -EEXIST;
    if (r == 0)
        r = store_rename(F.st, src.rel, dst.rel);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    int src_prompt = paths_is_prompt(&src), dst_prompt = paths_is_prompt(&dst);
    if (src_prompt && dst_prompt && !jobs_active(src.key, NULL) && has_results(src.key)) {
        jobs_prompt_removed(dst.key);      /* what dst was is replaced, results and all */
        move_results(src.key, dst.key);
        kcache_results_changed(src.key);
        kcache_results_changed(dst.key);
    } else {
        if (src_prompt)
            jobs_prompt_removed(src.key);
        if (dst_prompt)
            jobs_prompt_installed(dst.key);  /* a complete prompt arrived: start it */
    }
    inodes_renamed(from, to);
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv;
    int fd = store_openat(F.st, ".", O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0 || fstatvfs(fd, &sv) < 0) {
        int e = fd < 0 ? -fd : errno;
        if (fd >= 0)
            close(fd);
        fuse_reply_err(req, e);
        return;
    }
    close(fd);
    fuse_reply_statfs(req, &sv);
}

/* user.routefs.provider / .model / .endpoint on a finished NAME.out: what served it. */
static const char *xattr_fields[] = {"provider", "model", "endpoint"};

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char path[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    const char *field = NULL;
    if (r == 0 && pi.kind == K_RESULT && pi.result == NAME_OUT &&
        !strncmp(name, "user.routefs.", 13)) {
        for (size_t i = 0; i < 3; i++)
            if (!strcmp(name + 13, xattr_fields[i]))
                field = xattr_fields[i];
    }
    if (r < 0 || !field) {
        fuse_reply_err(req, r < 0 ? -r : ENODATA);
        return;
    }
    char rel[PATH_MAX + 16];
    paths_result_rel(pi.key, NAME_META, rel, sizeof rel);
    char *data = NULL;
    size_t len = 0;
    rf_err err;
    cJSON *doc = NULL;
    if (!jobs_active(pi.key, NULL) && store_read_all(F.st, rel, 1 << 20, &data, &len, &err) == 0)
        doc = cJSON_Parse(data);
    free(data);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, field);
    if (!cJSON_IsString(v)) {
        cJSON_Delete(doc);
        fuse_reply_err(req, ENODATA);
        return;
    }
    size_t vlen = strlen(v->valuestring);
    if (size == 0)
        fuse_reply_xattr(req, vlen);
    else if (size < vlen)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, v->valuestring, vlen);
    cJSON_Delete(doc);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char path[PATH_MAX];
    pathinfo pi;
    int r = inodes_path(ino, path, sizeof path);
    if (r == 0)
        r = paths_classify(path, &pi);
    char names[128];
    size_t len = 0;
    if (r == 0 && pi.kind == K_RESULT && pi.result == NAME_OUT && !jobs_active(pi.key, NULL)) {
        for (size_t i = 0; i < 3; i++)
            len += (size_t)snprintf(names + len, sizeof names - len, "user.routefs.%s",
                                    xattr_fields[i]) + 1;
    }
    if (r < 0)
        fuse_reply_err(req, -r);
    else if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, names, len);
}

/* service hook: the umount control, setxattr("user.routefs.control", "umount") on the
 * mount root (service.c; `routefs umount`).  Every other extended attribute is not
 * supported, as before this handler existed. */
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    if (ino != FUSE_ROOT_ID || strcmp(name, SERVICE_CONTROL_XATTR) != 0) {
        fuse_reply_err(req, ENOTSUP);
        return;
    }
    fuse_reply_err(req, -service_control(value, size));
}

static const struct fuse_lowlevel_ops fs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .mkdir = op_mkdir,
    .rmdir = op_rmdir,
    .create = op_create,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .release = op_release,
    .unlink = op_unlink,
    .rename = op_rename,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .setxattr = op_setxattr,   /* service hook */
};

struct fuse_session *fs_session_new(struct fuse_args *args, store *st, budget *spend,
                                    rf_err *err)
{
    F.st = st;
    F.spend = spend;
    paths_init(st);
    F.se = fuse_session_new(args, &fs_ops, sizeof fs_ops, NULL);
    if (!F.se)
        rf_err_set(err, EINVAL, "cannot create the FUSE session (bad -o option?)");
    return F.se;
}

void fs_shutting_down(void)
{
    __atomic_store_n(&F.shutting_down, 1, __ATOMIC_RELEASE);
}

void fs_sync_tier_dirs(void)
{
    rf_config *cfg = jobs_config();
    for (size_t i = 0; cfg && i < cfg->tiers_len; i++) {
        char rel[PATH_MAX];
        snprintf(rel, sizeof rel, "tiers/%s", cfg->tiers[i].name);
        int r = store_mkdir_p(F.st, rel);
        if (r < 0)
            LOG_ERROR("cannot create %s in the state directory: %s", rel, strerror(-r));
    }
    config_unref(cfg);
}

void fs_session_destroy(void)
{
    if (F.se) {
        fuse_session_destroy(F.se);
        F.se = NULL;
    }
    /* handles of files still open at a lazy unmount: the kernel will not release them */
    while (OPEN.head) {
        open_link *l = OPEN.head;
        if (l->is_dir)
            dirlist_free((dirlist *)l);
        else
            handle_free((handle *)l);
    }
    inodes_free();
}

/* fs_dir.c — see fs_dir.h.
 *
 * Offsets: entries read at opendir take offsets 1..n in order; a prompt with store id i
 * takes the offsets PROMPTS_BASE + 4*i + k + 1 for its name (k = 0) and its results
 * (k = 1 .out, 2 .meta, 3 .err), so a readdir that stops half-way resumes exactly there. */
#include "fs_dir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "log.h"
#include "paths.h"
#include "scratch.h"
#include "store_prompts.h"
#include "vfiles.h"

#define PROMPTS_BASE (1LL << 40)
#define PAGE 128

typedef struct entry {
    char *name;
    mode_t mode;
} entry;

struct dirlist {
    dirlist *prev, *next;     /* every open listing */
    entry *ents;              /* the small part, read at opendir */
    size_t len, cap;
    char *dir;                /* the store dir whose prompts follow (NULL = none) */
};

static store *D_st;
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static dirlist *open_lists;

void fs_dir_init(store *st)
{
    D_st = st;
}

static int add(dirlist *dl, const char *name, mode_t mode)
{
    if (dl->len == dl->cap) {
        size_t cap = dl->cap ? dl->cap * 2 : 32;
        entry *e = realloc(dl->ents, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        dl->ents = e;
        dl->cap = cap;
    }
    if (!(dl->ents[dl->len].name = strdup(name)))
        return -ENOMEM;
    dl->ents[dl->len++].mode = mode;
    return 0;
}

/* What is in a scratch directory (skipping routefs's own temporaries). */
static int add_scratch(dirlist *dl, const char *scratch_path)
{
    DIR *d = scratch_opendir(scratch_path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            !strncmp(de->d_name, ".rfs-tmp.", 9))
            continue;
        r = add(dl, de->d_name, de->d_type == DT_DIR ? S_IFDIR : S_IFREG);
    }
    closedir(d);
    return r;
}

static int add_tag_dir(const char *name, void *ud)
{
    return add(ud, name, S_IFDIR) < 0;
}

static int list_root(dirlist *dl)
{
    int r = 0;
    for (int v = 0; v < VF_COUNT && r == 0; v++)
        if (v != VF_CONFIG || !paths_config_hidden())
            r = add(dl, vfile_name((vfile_id)v), S_IFREG);
    rf_config *cfg = jobs_config();
    for (size_t i = 0; cfg && i < cfg->tiers_len && r == 0; i++)
        r = add(dl, cfg->tiers[i].name, S_IFDIR);
    config_unref(cfg);
    return r ? r : add_scratch(dl, "root");
}

int fs_dir_open(const char *path, dirlist **out)
{
    pathinfo pi;
    struct stat st;
    int r = paths_stat(path, &pi, &st);
    if (r < 0)
        return r;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    dirlist *dl = calloc(1, sizeof *dl);
    if (!dl)
        return -ENOMEM;
    r = add(dl, ".", S_IFDIR);
    if (r == 0)
        r = add(dl, "..", S_IFDIR);
    if (r == 0 && pi.kind == K_ROOT) {
        r = list_root(dl);
    } else if (r == 0 && pi.kind == K_SCRATCH) {
        r = add_scratch(dl, pi.scratch);
    } else if (r == 0) {
        /* a tier or a tag directory: its tag directories, its scratch files, then the
         * prompts page by page */
        rf_err err;
        if (sp_dir_list(D_st, path, add_tag_dir, dl, &err) < 0)
            r = -err.code;
        char scratch[PATH_MAX + 16];
        if (r == 0 && paths_scratch_of(path, scratch, sizeof scratch) == 0)
            r = add_scratch(dl, scratch);
        if (r == 0 && !(dl->dir = strdup(path)))
            r = -ENOMEM;
    }
    if (r < 0) {
        for (size_t i = 0; i < dl->len; i++)
            free(dl->ents[i].name);
        free(dl->ents);
        free(dl->dir);
        free(dl);
        return r;
    }
    pthread_mutex_lock(&open_lock);
    dl->next = open_lists;
    if (open_lists)
        open_lists->prev = dl;
    open_lists = dl;
    pthread_mutex_unlock(&open_lock);
    *out = dl;
    return 0;
}

/* The page being filled by one readdir. */
typedef struct page {
    fuse_req_t req;
    char *buf;
    size_t size, used;
    int full;
    int64_t resume_id;        /* the prompt to start with, and its first entry */
    int resume_k;
    int64_t last_id;          /* the last prompt looked at */
} page;

static int put(page *pg, const char *name, mode_t mode, off_t next_off)
{
    /* d_ino 0 means "deleted" to readdir(3): any other value will do */
    struct stat st = {.st_mode = mode, .st_ino = (ino_t)(next_off & 0x7fffffff) + 1};
    size_t need = fuse_add_direntry(pg->req, pg->buf + pg->used, pg->size - pg->used, name, &st,
                                    next_off);
    if (need > pg->size - pg->used) {
        pg->full = 1;
        return -1;
    }
    pg->used += need;
    return 0;
}

static int put_prompt(const sp_entry *e, void *ud)
{
    page *pg = ud;
    pg->last_id = e->id;
    /* results show once the job has ended (and not while it is being rewritten) */
    int ended = !e->writing && (e->state == PS_DONE || e->state == PS_FAILED);
    int kinds = ended ? (e->state == PS_FAILED ? 4 : 3) : 1;
    int first = e->id == pg->resume_id ? pg->resume_k : 0;
    static const char *const suffix[] = {"", ".out", ".meta", ".err"};
    for (int k = first; k < kinds; k++) {
        char name[NAME_MAX + 8];
        snprintf(name, sizeof name, "%s%s", e->name, suffix[k]);
        off_t next = (off_t)(PROMPTS_BASE + 4 * e->id + k + 1);
        if (put(pg, name, S_IFREG, next) < 0) {
            pg->last_id = e->id - 1;   /* resume with this prompt */
            return 1;
        }
    }
    return 0;
}

void fs_dir_read(fuse_req_t req, dirlist *dl, size_t size, off_t off)
{
    page pg = {.req = req, .size = size};
    if (!(pg.buf = malloc(size ? size : 1))) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    for (size_t i = (size_t)off; off < (off_t)dl->len && i < dl->len; i++)
        if (put(&pg, dl->ents[i].name, dl->ents[i].mode, (off_t)(i + 1)) < 0)
            break;
    if (!pg.full && dl->dir) {
        int64_t pos = off > (off_t)dl->len ? (int64_t)off - PROMPTS_BASE : 0;
        if (pos < 0)
            pos = 0;
        pg.resume_id = pos / 4;
        pg.resume_k = (int)(pos % 4);
        int64_t after = pg.resume_id > 0 ? pg.resume_id - 1 : 0;
        if (pg.resume_id == 0)
            pg.resume_k = 0;
        rf_err err;
        for (;;) {
            pg.last_id = after;
            int n = sp_list(D_st, dl->dir, after, PAGE, put_prompt, &pg, &err);
            if (n < 0) {
                if (!pg.used) {
                    free(pg.buf);
                    fuse_reply_err(req, -n);
                    return;
                }
                break;
            }
            if (pg.full || n < PAGE)
                break;
            after = pg.last_id;
        }
    }
    fuse_reply_buf(req, pg.buf, pg.used);
    free(pg.buf);
}

void fs_dir_close(dirlist *dl)
{
    pthread_mutex_lock(&open_lock);
    if (dl->prev)
        dl->prev->next = dl->next;
    else
        open_lists = dl->next;
    if (dl->next)
        dl->next->prev = dl->prev;
    pthread_mutex_unlock(&open_lock);
    for (size_t i = 0; i < dl->len; i++)
        free(dl->ents[i].name);
    free(dl->ents);
    free(dl->dir);
    free(dl);
}

void fs_dir_close_all(void)
{
    while (open_lists)
        fs_dir_close(open_lists);
}

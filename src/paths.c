/* paths.c — see paths.h. */
#include "paths.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs.h"
#include "names.h"

static struct {
    store *st;
    int64_t config_gone_until;  /* mono ms: config.json "unlinked" so mv can replace it */
} P;

void paths_init(store *st)
{
    P.st = st;
}

int paths_child(const char *parent, const char *name, char *buf, size_t len)
{
    int n = parent[0] ? snprintf(buf, len, "%s/%s", parent, name) : snprintf(buf, len, "%s", name);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int tier_exists(const char *name, size_t len)
{
    rf_config *cfg = jobs_config();
    int found = 0;
    for (size_t i = 0; cfg && i < cfg->tiers_len && !found; i++)
        found = strlen(cfg->tiers[i].name) == len && !strncmp(cfg->tiers[i].name, name, len);
    config_unref(cfg);
    return found;
}

/* `mv new.json M/config.json` from another filesystem unlinks the target, then creates
 * it with O_EXCL.  The live config cannot really go away, so an unlink hides
 * config.json for a moment (CONFIG_GONE_MS) and the create that follows edits it. */
#define CONFIG_GONE_MS 10000

int paths_config_hidden(void)
{
    return __atomic_load_n(&P.config_gone_until, __ATOMIC_ACQUIRE) > now_mono_ms();
}

void paths_hide_config(int hidden)
{
    __atomic_store_n(&P.config_gone_until, hidden ? now_mono_ms() + CONFIG_GONE_MS : 0,
                     __ATOMIC_RELEASE);
}

int paths_classify(const char *path, pathinfo *pi)
{
    memset(pi, 0, offsetof(pathinfo, rel));
    pi->rel[0] = pi->key[0] = '\0';
    pi->vf = VF_NONE;
    if (!path[0]) {
        pi->kind = K_ROOT;
        pi->name = path;
        return 0;
    }
    const char *slash = strchr(path, '/');
    const char *last = strrchr(path, '/');
    pi->name = last ? last + 1 : path;
    if (!slash) {
        if ((pi->vf = vfile_lookup(path)) != VF_NONE) {
            pi->kind = K_VFILE;
            return pi->vf == VF_CONFIG && paths_config_hidden() ? -ENOENT : 0;
        }
        if (tier_exists(path, strlen(path))) {
            pi->kind = K_TIER;
            snprintf(pi->rel, sizeof pi->rel, "tiers/%s", path);
            return 0;
        }
        if (!strncmp(path, STORE_TEMP_PREFIX, strlen(STORE_TEMP_PREFIX)))
            return -ENOENT;
        pi->kind = K_SCRATCH;
        snprintf(pi->rel, sizeof pi->rel, "root/%s", path);
        return 0;
    }
    if (!tier_exists(path, (size_t)(slash - path)))
        return -ENOENT;
    if (!strncmp(pi->name, STORE_TEMP_PREFIX, strlen(STORE_TEMP_PREFIX)))
        return -ENOENT;   /* our own temp files are invisible */
    int r = name_result_kind(pi->name);
    if (r >= 0 && !name_is_temp(pi->name)) {
        pi->kind = K_RESULT;
        pi->result = r;
        size_t keylen = strlen(path) - strlen(name_result_suffix[r]);
        if (keylen >= sizeof pi->key)
            return -ENAMETOOLONG;
        memcpy(pi->key, path, keylen);
        pi->key[keylen] = '\0';
        return 0;
    }
    pi->kind = K_TIERFILE;
    snprintf(pi->rel, sizeof pi->rel, "tiers/%s", path);
    snprintf(pi->key, sizeof pi->key, "%s", path);
    return 0;
}

/* A prompt: a regular, non-temporary file inside a tier. */
int paths_is_prompt(const pathinfo *pi)
{
    return pi->kind == K_TIERFILE && !name_is_temp(pi->name);
}

void paths_result_rel(const char *key, int r, char *buf, size_t len)
{
    snprintf(buf, len, "tiers/%s%s", key, name_result_suffix[r]);
}

/* ---- attributes ---- */

void paths_fill_synthetic(struct stat *st, mode_t mode, off_t size)
{
    memset(st, 0, sizeof *st);
    st->st_mode = mode;
    st->st_nlink = S_ISDIR(mode) ? 2 : 1;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_size = size;
    st->st_blksize = 4096;
    st->st_blocks = (size + 511) / 512;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    st->st_atim = st->st_mtim = st->st_ctim = now;
}

static int stat_result(pathinfo *pi, struct stat *st)
{
    char rel[PATH_MAX + 16];
    job_state state;
    if (jobs_active(pi->key, &state)) {
        pi->live = 1;
        if (pi->result == NAME_ERR)
            return -ENOENT;   /* an unfinished job has no .err yet */
        off_t size = 0;
        if (pi->result == NAME_META) {
            char *m = jobs_meta(pi->key);
            if (!m)
                return -ENOENT;
            size = (off_t)strlen(m);
            free(m);
        }
        paths_fill_synthetic(st, S_IFREG | 0444, size);
        /* Times of the prompt: stable, and never newer than it (make compares them). */
        struct stat prompt;
        snprintf(rel, sizeof rel, "tiers/%s", pi->key);
        if (store_stat(P.st, rel, &prompt) == 0)
            st->st_atim = st->st_mtim = st->st_ctim = prompt.st_mtim;
        return 0;
    }
    paths_result_rel(pi->key, pi->result, rel, sizeof rel);
    int r = store_stat(P.st, rel, st);
    if (r == -ENOENT && pi->result == NAME_OUT) {
        /* a failed job: .out exists (reads EIO) beside .err */
        paths_result_rel(pi->key, NAME_ERR, rel, sizeof rel);
        if (store_stat(P.st, rel, st) == 0) {
            paths_fill_synthetic(st, S_IFREG | 0444, 0);
            st->st_mtim = st->st_ctim;
            return 0;
        }
    }
    if (r == 0)
        st->st_mode = S_IFREG | 0444;
    return r;
}

int paths_stat(const char *path, pathinfo *pi, struct stat *st)
{
    int r = paths_classify(path, pi);
    if (r < 0)
        return r;
    switch (pi->kind) {
    case K_ROOT:
        paths_fill_synthetic(st, S_IFDIR | 0755, 0);
        return 0;
    case K_TIER:
        r = store_stat(P.st, pi->rel, st);
        if (r == 0)
            st->st_mode = S_IFDIR | 0755;
        return r;
    case K_VFILE: {
        const char *rel = vfile_store_rel(pi->vf);
        if (rel) {
            r = store_stat(P.st, rel, st);
            if (r == -ENOENT) {
                paths_fill_synthetic(st, S_IFREG | 0444, 0);
                r = 0;
            }
            st->st_mode = S_IFREG | 0444;
            return r;
        }
        size_t len = 0;
        char *data = vfile_render(pi->vf, &len);
        if (!data)
            return -ENOMEM;
        free(data);
        paths_fill_synthetic(st, S_IFREG | (pi->vf == VF_CONFIG ? 0644 : 0444), (off_t)len);
        st->st_mtim = st->st_ctim = vfile_mtime(pi->vf);
        return 0;
    }
    case K_SCRATCH:
    case K_TIERFILE:
        return store_stat(P.st, pi->rel, st);
    case K_RESULT:
        return stat_result(pi, st);
    }
    return -ENOENT;
}

/* How long the kernel may cache a name.  Results and virtual files change under the
 * kernel's feet: 0.  So do tier directories, which come and go with config edits (made
 * inside a rename, where the kernel cannot be told synchronously).  Tag directories and
 * prompts change only through the kernel itself: a second saves most of the round trips
 * of a cp of many files. */
double paths_entry_timeout(const pathinfo *pi)
{
    switch (pi->kind) {
    case K_ROOT:
    case K_TIERFILE:
    case K_SCRATCH:
        return 1.0;
    default:
        return 0.0;
    }
}

/* How long the kernel may cache attributes: as long as names, with two exceptions.  Tier
 * directories: their entry is checked on every lookup, but their attributes only feed
 * permission checks, and the kernel drops them itself after each create in the directory
 * (with 0 a cp asked for them five times per file).  Results of finished jobs: they change
 * only when the prompt is rewritten or removed, and their name is looked up again on every
 * open, which refreshes the attributes, so a second only spares the fstat and read-size
 * checks of an open file (four round trips per cat).  A live result's size changes when
 * its job ends: 0. */
double paths_attr_timeout(const pathinfo *pi)
{
    if (pi->kind == K_TIER || (pi->kind == K_RESULT && !pi->live))
        return 1.0;
    return paths_entry_timeout(pi);
}

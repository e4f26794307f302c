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
#include "prompts.h"
#include "results.h"
#include "scratch.h"

static struct {
    int shared_read;
    struct timespec mounted;
    int64_t config_gone_until;  /* mono ms: config.json "unlinked" so mv can replace it */
} P;

void paths_init(int shared_read)
{
    P.shared_read = shared_read;
    clock_gettime(CLOCK_REALTIME, &P.mounted);
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

int paths_scratch_of(const char *path, char *buf, size_t len)
{
    int n = strchr(path, '/') || tier_exists(path, strlen(path))
                ? snprintf(buf, len, "tiers/%s", path)
                : snprintf(buf, len, "root/%s", path);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Is any component of rest (the part of a path after its tier) a name that never starts
 * a job: a dot file or dot directory, an editor's backup or swap file? */
static int under_scratch(const char *rest)
{
    char comp[NAME_MAX + 1];
    while (*rest) {
        const char *slash = strchr(rest, '/');
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
        if (n > NAME_MAX)
            return 0;
        memcpy(comp, rest, n);
        comp[n] = '\0';
        if (name_is_temp(comp))
            return 1;
        rest += n + (slash ? 1 : 0);
    }
    return 0;
}

int paths_classify(const char *path, pathinfo *pi)
{
    memset(pi, 0, offsetof(pathinfo, key));
    pi->key[0] = pi->scratch[0] = '\0';
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
            snprintf(pi->key, sizeof pi->key, "%s", path);
            return 0;
        }
        pi->kind = K_SCRATCH;   /* an editor's temporary beside config.json */
        return paths_scratch_of(path, pi->scratch, sizeof pi->scratch);
    }
    if (!tier_exists(path, (size_t)(slash - path)))
        return -ENOENT;
    if (under_scratch(slash + 1)) {
        pi->kind = K_SCRATCH;
        return paths_scratch_of(path, pi->scratch, sizeof pi->scratch);
    }
    int r = name_result_kind(pi->name);
    if (r >= 0) {
        pi->kind = K_RESULT;
        pi->result = r;
        size_t keylen = strlen(path) - strlen(name_result_suffix[r]);
        if (keylen >= sizeof pi->key)
            return -ENAMETOOLONG;
        memcpy(pi->key, path, keylen);
        pi->key[keylen] = '\0';
        return 0;
    }
    pi->kind = K_ENTRY;
    if (strlen(path) >= sizeof pi->key)
        return -ENAMETOOLONG;
    strcpy(pi->key, path);
    return paths_scratch_of(path, pi->scratch, sizeof pi->scratch);
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
    st->st_atim = st->st_mtim = st->st_ctim = P.mounted;
}

mode_t paths_vfile_mode(vfile_id vf)
{
    mode_t m = vf == VF_CONFIG ? 0600 : 0400;
    if (P.shared_read)
        m |= 0040;
    return m;
}

int paths_stat(const char *path, pathinfo *pi, struct stat *st)
{
    int r = paths_classify(path, pi);
    if (r < 0)
        return r;
    switch (pi->kind) {
    case K_ROOT:
    case K_TIER:
        paths_fill_synthetic(st, S_IFDIR | 0755, 0);
        return 0;
    case K_VFILE: {
        off_t size = 0;
        if (vfile_size(pi->vf, &size) < 0)
            return -ENOMEM;
        paths_fill_synthetic(st, S_IFREG | paths_vfile_mode(pi->vf), size);
        st->st_mtim = st->st_ctim = vfile_mtime(pi->vf);
        return 0;
    }
    case K_SCRATCH:
        r = scratch_stat(pi->scratch, st);
        pi->is_dir = r == 0 && S_ISDIR(st->st_mode);
        return r;
    case K_ENTRY:
        r = prompts_stat(pi->key, st);
        if (r == -ENOENT) {
            r = prompts_dir_stat(pi->key, st);
            pi->is_dir = r == 0;
        }
        return r;
    case K_RESULT:
        return results_stat(pi->key, pi->result, st, &pi->live);
    }
    return -ENOENT;
}

/* How long the kernel may cache a name.  Results and virtual files change under the
 * kernel's feet: 0.  So do tier directories, which come and go with config edits (made
 * inside a rename, where the kernel cannot be told synchronously).  Prompts, tag
 * directories and scratch files change only through the kernel itself: a second saves
 * most of the round trips of a cp of many files. */
double paths_entry_timeout(const pathinfo *pi)
{
    switch (pi->kind) {
    case K_ROOT:
    case K_ENTRY:
    case K_SCRATCH:
        return 1.0;
    default:
        return 0.0;
    }
}

/* A missing prompt or scratch name can only come to exist through the kernel (create,
 * rename), so its absence may be cached: cp asks twice per file.  Not at the mount root,
 * where a name that is not a tier (a scratch name) becomes a tier directory when a config
 * edit adds it, and the kernel cannot be told synchronously inside a rename. */
double paths_absent_timeout(const char *path, const pathinfo *pi)
{
    if (pi->kind == K_SCRATCH && !strchr(path, '/'))
        return 0.0;
    return paths_entry_timeout(pi);
}

/* How long the kernel may cache attributes: as long as names, with two exceptions.  Tier
 * directories: their entry is checked on every lookup, but their attributes only feed
 * permission checks.  Results of finished jobs: they change only when the prompt is
 * rewritten or removed, and their name is looked up again on every open, which refreshes
 * the attributes.  A live result's size changes when its job ends: 0. */
double paths_attr_timeout(const pathinfo *pi)
{
    if (pi->kind == K_TIER || (pi->kind == K_RESULT && !pi->live))
        return 1.0;
    return paths_entry_timeout(pi);
}

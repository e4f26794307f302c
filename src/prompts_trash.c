/* prompts_trash.c — prompts deleted a moment ago, kept aside so that `tar -x` over the same
 * files costs nothing (see prompts_int.h).
 *
 * Each kept prompt is a row of the store under TRASH_DIR/<generation> (a generation is
 * unique, so two never collide) and an entry here: the path it came from, and until when
 * it may come back.  Entries that ran out are deleted lazily, at the next delete or
 * create, and all of them at unmount; rows a crash left behind go at the first delete or
 * create after the mount.  At most TRASH_MAX are kept at once: beyond that a delete is a
 * plain delete. */
#include "prompts_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hmap.h"
#include "log.h"

#define TRASH_MAX 4096

typedef struct kept {
    char trash[48];            /* TRASH_DIR "/" generation */
    int64_t mtime_ns;          /* the deleted prompt's modification time */
    int64_t until_mono;
} kept;

static struct {
    pthread_mutex_t lock;      /* a leaf: only around the map */
    store *st;
    hmap *kept;                /* prompt path -> kept* (owned) */
    int swept;                 /* the previous mount's leftovers are gone */
} T = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Take out every entry that ran out (all of them when all is set): their rows go. */
static void sweep_leftovers(void);

static void purge(int all)
{
    enum { BATCH = 64 };
    sweep_leftovers();
    for (;;) {
        char trash[BATCH][48];
        int n = 0;
        int64_t now = now_mono_ms();
        pthread_mutex_lock(&T.lock);
        for (hmap_iter it = {0}; T.kept && n < BATCH && hmap_next(T.kept, &it);) {
            kept *k = it.value;
            if (!all && k->until_mono > now)
                continue;
            snprintf(trash[n++], sizeof trash[0], "%s", k->trash);
            free(hmap_del(T.kept, it.key));
        }
        pthread_mutex_unlock(&T.lock);
        for (int i = 0; i < n; i++) {
            rf_err err;
            if (sp_delete(T.st, trash[i], &err) < 0 && err.code != ENOENT)
                LOG_WARN("%s: not removed: %s", trash[i], err.msg);
        }
        if (n < BATCH)
            return;
    }
}

typedef struct names {
    char **v;                  /* owned, each owned */
    size_t n;
} names;

static int collect_leftover(const sp_entry *e, void *ud)
{
    names *l = ud;
    char **grown = realloc(l->v, (l->n + 1) * sizeof *grown);
    if (!grown)
        return 1;
    l->v = grown;
    if (asprintf(&l->v[l->n], "%s/%s", TRASH_DIR, e->name) < 0)
        return 1;
    l->n++;
    return 0;
}

void trash_init(store *st)
{
    pthread_mutex_lock(&T.lock);
    T.st = st;
    T.kept = hmap_new();
    T.swept = 0;
    pthread_mutex_unlock(&T.lock);
}

/* Rows kept aside when a crash stopped the previous mount: their time is long gone.  Done
 * at the first delete or create (the store is not started yet at trash_init). */
static void sweep_leftovers(void)
{
    if (__atomic_exchange_n(&T.swept, 1, __ATOMIC_ACQ_REL))
        return;
    names l = {0};
    rf_err err;
    if (sp_list(T.st, TRASH_DIR, 0, 100000, collect_leftover, &l, &err) < 0)
        LOG_WARN("deleted prompts kept aside: cannot list them: %s", err.msg);
    for (size_t i = 0; i < l.n; i++) {
        if (sp_delete(T.st, l.v[i], &err) < 0 && err.code != ENOENT)
            LOG_WARN("%s: not removed: %s", l.v[i], err.msg);
        free(l.v[i]);
    }
    free(l.v);
}

void trash_shutdown(void)
{
    if (!T.st)
        return;
    purge(1);
    pthread_mutex_lock(&T.lock);
    hmap_free(T.kept);
    T.kept = NULL;
    T.st = NULL;
    pthread_mutex_unlock(&T.lock);
}

int trash_delete(const char *key, const prompt_row *row)
{
    rf_err err;
    purge(0);
    kept *k = NULL;
    int keep = (row->state == PS_DONE || row->state == PS_FAILED) && !row->writing;
    if (keep) {
        pthread_mutex_lock(&T.lock);
        keep = T.kept && hmap_len(T.kept) < TRASH_MAX;
        pthread_mutex_unlock(&T.lock);
    }
    if (keep && (k = calloc(1, sizeof *k))) {
        snprintf(k->trash, sizeof k->trash, "%s/%lld", TRASH_DIR, (long long)row->gen);
        k->mtime_ns = row->attrs.mtime_ns;
        k->until_mono = now_mono_ms() + TRASH_KEEP_MS;
        if (sp_rename(T.st, key, k->trash, &err) == 0) {
            pthread_mutex_lock(&T.lock);
            kept *old = hmap_get(T.kept, key);
            int ok = hmap_put(T.kept, key, k) == 0;
            pthread_mutex_unlock(&T.lock);
            if (ok) {
                if (old && sp_delete(T.st, old->trash, &err) < 0 && err.code != ENOENT)
                    LOG_WARN("%s: not removed: %s", old->trash, err.msg);
                free(old);
                return 0;
            }
            /* out of memory: it cannot come back, so it goes now */
            int r = sp_delete(T.st, k->trash, &err);
            free(k);
            return r;
        }
        free(k);
        if (err.code == ENOENT)
            return -ENOENT;
        /* could not be moved aside: deleted as it always was */
    }
    return sp_delete(T.st, key, &err);
}

int trash_revive(const char *key, int64_t *old_mtime_ns)
{
    pthread_mutex_lock(&T.lock);
    kept *k = T.kept ? hmap_del(T.kept, key) : NULL;
    pthread_mutex_unlock(&T.lock);
    purge(0);
    if (!k)
        return 0;
    rf_err err;
    prompt_row row;
    int r = 0;
    if (k->until_mono > now_mono_ms() && sp_get(T.st, key, &row, &err) == -ENOENT) {
        r = sp_rename(T.st, k->trash, key, &err);
        if (r == 0) {
            *old_mtime_ns = k->mtime_ns;
            free(k);
            return 1;
        }
    }
    /* too late, or something else arrived at key meanwhile: the kept row goes */
    if (sp_delete(T.st, k->trash, &err) < 0 && err.code != ENOENT)
        LOG_WARN("%s: not removed: %s", k->trash, err.msg);
    free(k);
    return r == -ENOENT ? 0 : r;
}

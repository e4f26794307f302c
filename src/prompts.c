/* prompts.c — see prompts.h.
 *
 * Lock order: a prompt's stripe lock (two, in index order, for a rename), then the drafts
 * map lock (a leaf, only around map changes), then whatever jobs.c takes.  A draft's
 * fields are guarded by the stripe lock of its current key; its key changes only under
 * both stripe locks of a rename, so lock_draft() re-checks it after locking. */
#include "prompts_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"
#include "hmap.h"
#include "cluster.h"
#include "jobs.h"
#include "log.h"
#include "scratch.h"

struct prompt_handle {
    draft *d;                  /* writers, and readers of a prompt being written */
    blob *snapshot;            /* readers otherwise: the bytes at open */
    int writer;
};

prompts_state PS = {.drafts_lock = PTHREAD_MUTEX_INITIALIZER};

int64_t prompts_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t now_ms(void)
{
    return prompts_now_ns() / 1000000;
}

void prompts_init(store *st, budget *b)
{
    PS.st = st;
    trash_init(st);
    PS.budget = b;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&PS.stripes[i], NULL);
    PS.drafts = hmap_new();
    PS.closed = hmap_new();
}

store *prompts_store(void)
{
    return PS.st;
}

void prompts_shutdown(void)
{
    trash_shutdown();
    pthread_mutex_lock(&PS.drafts_lock);
    for (hmap_iter it = {0}; PS.drafts && hmap_next(PS.drafts, &it);) {
        draft *d = it.value;
        free(d->key);
        free(d->data);
        free(d);
    }
    hmap_free(PS.drafts);
    PS.drafts = NULL;
    for (hmap_iter it = {0}; PS.closed && hmap_next(PS.closed, &it);)
        free(it.value);
    hmap_free(PS.closed);
    PS.closed = NULL;
    pthread_mutex_unlock(&PS.drafts_lock);
}

/* ---- locks ---- */

static unsigned stripe_of(const char *key)
{
    return (unsigned)(blob_hash(key, strlen(key)) % STRIPES);
}

void prompts_lock_key(const char *key)
{
    pthread_mutex_lock(&PS.stripes[stripe_of(key)]);
}

void prompts_unlock_key(const char *key)
{
    pthread_mutex_unlock(&PS.stripes[stripe_of(key)]);
}

void prompts_lock_two(const char *a, const char *b)
{
    unsigned x = stripe_of(a), y = stripe_of(b);
    if (x == y) {
        pthread_mutex_lock(&PS.stripes[x]);
    } else {
        pthread_mutex_lock(&PS.stripes[x < y ? x : y]);
        pthread_mutex_lock(&PS.stripes[x < y ? y : x]);
    }
}

void prompts_unlock_two(const char *a, const char *b)
{
    unsigned x = stripe_of(a), y = stripe_of(b);
    pthread_mutex_unlock(&PS.stripes[x]);
    if (x != y)
        pthread_mutex_unlock(&PS.stripes[y]);
}

/* Lock the stripe of d's current key (it may move under a rename until we hold it).
 * Returns the stripe index to unlock. */
static unsigned lock_draft(draft *d)
{
    for (;;) {
        pthread_mutex_lock(&PS.drafts_lock);
        unsigned s = stripe_of(d->key);
        pthread_mutex_unlock(&PS.drafts_lock);
        pthread_mutex_lock(&PS.stripes[s]);
        pthread_mutex_lock(&PS.drafts_lock);
        int same = stripe_of(d->key) == s;
        pthread_mutex_unlock(&PS.drafts_lock);
        if (same)
            return s;
        pthread_mutex_unlock(&PS.stripes[s]);
    }
}

draft *prompts_draft_find(const char *key)
{
    pthread_mutex_lock(&PS.drafts_lock);
    draft *d = PS.drafts ? hmap_get(PS.drafts, key) : NULL;
    pthread_mutex_unlock(&PS.drafts_lock);
    return d;
}

/* ---- admission ---- */

const char *prompts_base_name(const char *key)
{
    const char *slash = strrchr(key, '/');
    return slash ? slash + 1 : key;
}

int prompts_admit_writer(const char *key)
{
    if (strlen(prompts_base_name(key)) > PROMPT_NAME_MAX)
        return -ENAMETOOLONG;   /* NAME.meta would not fit: its results could not be kept */
    int r = store_admit(PS.st);
    if (r < 0)
        return r;
    char tier[PATH_MAX];
    snprintf(tier, sizeof tier, "%s", key);
    char *slash = strchr(tier, '/');
    if (slash)
        *slash = '\0';
    rf_config *cfg = jobs_config();
    rf_err err;
    rf_err_clear(&err);
    r = budget_check_admission(PS.budget, cfg, tier, &err);
    if (r == 0 && cfg)
        r = cluster_check_admission(cfg, tier, &err);   /* every host's spend, as last seen */
    config_unref(cfg);
    if (r < 0) {
        LOG_WARN("%s refused: %s", key, err.msg);
        return -EDQUOT;
    }
    return 0;
}

/* ---- drafts ---- */

static int draft_reserve(draft *d, size_t need)
{
    if (need <= d->cap)
        return 0;
    size_t cap = d->cap ? d->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *p = realloc(d->data, cap);
    if (!p)
        return -ENOMEM;
    d->data = p;
    d->cap = cap;
    return 0;
}

/* A new draft for key from its row (loading the bytes unless the open truncates). */
static draft *draft_new(const char *key, const prompt_row *row, int truncate, int *err)
{
    draft *d = calloc(1, sizeof *d);
    if (!d || !(d->key = strdup(key))) {
        free(d);
        *err = -ENOMEM;
        return NULL;
    }
    d->gen = row->gen;
    d->stored_hash = row->hash;
    d->stored_size = row->size;
    d->stored_state = row->state;
    d->attrs = row->attrs;
    d->force_new = row->state == PS_INCOMPLETE;
    if (!truncate && row->size > 0) {
        rf_err e;
        char *data = NULL;
        size_t len = 0;
        int r = sp_read(PS.st, key, SP_DATA, 0, &data, &len, &e);
        if (r < 0) {
            free(d->key);
            free(d);
            *err = r;
            return NULL;
        }
        d->data = data;
        d->len = d->cap = len;
    }
    if (truncate && row->size > 0)
        d->dirty = 1;
    pthread_mutex_lock(&PS.drafts_lock);
    int r = PS.drafts ? hmap_put(PS.drafts, key, d) : -1;
    pthread_mutex_unlock(&PS.drafts_lock);
    if (r < 0) {
        free(d->data);
        free(d->key);
        free(d);
        *err = -ENOMEM;
        return NULL;
    }
    return d;
}

/* The last handle of d went (stripe lock held). */
static void draft_drop(draft *d)
{
    pthread_mutex_lock(&PS.drafts_lock);
    if (PS.drafts && hmap_get(PS.drafts, d->key) == d)
        hmap_del(PS.drafts, d->key);
    pthread_mutex_unlock(&PS.drafts_lock);
    free(d->key);
    free(d->data);
    free(d);
}

/* On the writer thread (no lock held): the queued bytes of key could not be stored (the
 * store itself failing holds them instead).  Its job must not send what the store does
 * not have: it fails, saying why. */
static void content_stored(const char *key, int64_t gen, blob *data, int status,
                           const rf_err *err)
{
    if (status == 0 || status == -ENOENT)   /* stored, or deleted meanwhile */
        return;
    LOG_ERROR("%s: not saved: %s", key, err->msg);
    job_input in;
    job_input_make(&in, data);
    jobs_prompt_refused(key, gen, &in, "the prompt could not be saved in the state store: "
                                       "not sent");
}

/* A name whose last writer closed it a moment ago, its writes still queued: what stat
 * says until the store has them.  (cp stats each file it has just written: reading the
 * store there would wait for a commit per file.)  In PS.closed under drafts_lock, from
 * the close until the writer thread has stored it (writer_closed_stored). */
typedef struct closed_attrs {
    prompt_attrs attrs;
    size_t size;
    int64_t gen;               /* the generation closed: a later close of the name is its own */
} closed_attrs;

static void closed_put(const draft *d)
{
    closed_attrs *c = malloc(sizeof *c);
    if (!c)
        return;   /* stat reads the store, after the queue */
    *c = (closed_attrs){.attrs = d->attrs, .size = d->len, .gen = d->gen};
    pthread_mutex_lock(&PS.drafts_lock);
    closed_attrs *old = PS.closed ? hmap_get(PS.closed, d->key) : NULL;
    if (PS.closed && hmap_put(PS.closed, d->key, c) == 0) {
        free(old);   /* an earlier close of the name, replaced */
        c = NULL;
    }
    pthread_mutex_unlock(&PS.drafts_lock);
    free(c);         /* not kept (no map or no memory) */
}

/* gen < 0: whatever is there. */
static void closed_drop(const char *key, int64_t gen)
{
    pthread_mutex_lock(&PS.drafts_lock);
    closed_attrs *c = PS.closed ? hmap_get(PS.closed, key) : NULL;
    if (c && (gen < 0 || c->gen == gen))
        free(hmap_del(PS.closed, key));
    pthread_mutex_unlock(&PS.drafts_lock);
}

static int closed_get(const char *key, closed_attrs *out)
{
    pthread_mutex_lock(&PS.drafts_lock);
    closed_attrs *c = PS.closed ? hmap_get(PS.closed, key) : NULL;
    if (c)
        *out = *c;
    pthread_mutex_unlock(&PS.drafts_lock);
    return c != NULL;
}

/* On the writer thread: the last writer's close is stored, after its bytes; the job may
 * start now (a crash before this leaves the prompt incomplete, never sent). */
static void writer_closed_stored(const char *key, int64_t gen, blob *data, int status,
                                 const rf_err *err)
{
    (void)data;
    closed_drop(key, gen);
    if (status < 0) {
        LOG_ERROR("%s: its close could not be saved: %s", key, err->msg);
        return;
    }
    jobs_writer_closed(key);
}

/* Decide what was written (stripe lock held): the same bytes keep the prompt's job, new
 * bytes get a new generation and are stored. */
static int draft_decide(draft *d)
{
    if (d->orphaned || (!d->dirty && !d->force_new && !d->too_large))
        return 0;
    size_t len = d->too_large ? PROMPT_MAX : d->len;
    uint64_t hash = blob_hash(d->data ? d->data : "", len);
    int settled = d->stored_state == PS_PENDING || d->stored_state == PS_PARKED ||
                  d->stored_state == PS_DONE || d->stored_state == PS_FAILED ||
                  d->stored_state == PS_EMPTY;
    int64_t mtime = d->mtime_set ? d->attrs.mtime_ns : prompts_now_ns();
    d->attrs.mtime_ns = mtime;
    d->attrs.ctime_ns = prompts_now_ns();
    if (d->revived && d->mtime_set && mtime == d->revived_mtime_ns)
        d->force_new = 0;   /* tar -x put the deleted prompt back as it was */
    d->revived = 0;
    if (!d->too_large && !d->force_new && settled && hash == d->stored_hash &&
        len == d->stored_size) {
        int r = sp_queue_touch(PS.st, d->key, mtime, NULL);
        if (r == 0)
            d->dirty = 0;
        return r;
    }
    blob *b = blob_new_hashed(d->data ? d->data : "", len, hash);
    if (!b)
        return -ENOMEM;
    /* Queued, not waited for: the close returns at once, reads of the name wait for the
     * store (store_settle), and the job starts only once its end of writing is stored
     * (writer_closed_stored), after these bytes. */
    int64_t gen = store_next_generation(PS.st);
    prompt_state state = len ? PS_PENDING : PS_EMPTY;
    int r = sp_queue_content(PS.st, d->key, d->gen, b, gen, state, mtime, now_ms(),
                             content_stored);
    if (r < 0) {
        blob_unref(b);
        return r;
    }
    d->gen = gen;
    d->stored_hash = hash;
    d->stored_size = len;
    d->stored_state = state;
    d->dirty = 0;
    d->force_new = 0;
    job_input in;
    job_input_make(&in, b);
    blob_unref(b);
    if (d->too_large) {
        /* what is stored is a cut-off prompt: it never runs, and says why */
        jobs_prompt_refused(d->key, gen, &in, "prompt is larger than 1 MiB: not sent");
        d->too_large = 0;
        return 0;
    }
    jobs_content_changed(d->key, gen, &in);
    return 0;
}

/* ---- handles ---- */

int prompts_open(const char *key, int flags, int create, mode_t mode, uid_t uid, gid_t gid,
                 prompt_handle **out)
{
    int writing = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
    int truncate = (flags & O_TRUNC) != 0;
    prompt_handle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    int r = writing ? prompts_admit_writer(key) : 0;
    if (r < 0) {
        free(h);
        return r;
    }
    prompts_lock_key(key);
    draft *d = prompts_draft_find(key);
    if (!writing && !d) {
        /* a reader of a settled prompt: a snapshot of its bytes */
        prompts_unlock_key(key);
        char *data = NULL;
        size_t len = 0;
        rf_err err;
        r = sp_read(PS.st, key, SP_DATA, 0, &data, &len, &err);
        if (r == 0 && !(h->snapshot = blob_new(data, len)))
            r = -ENOMEM;
        free(data);
        if (r < 0) {
            free(h);
            return r;
        }
        *out = h;
        return 0;
    }
    if (!d) {
        prompt_row row;
        rf_err err;
        rf_err_clear(&err);
        if (!create) {
            r = sp_get(PS.st, key, &row, &err);
            if (r < 0)
                goto fail;
        }
        prompt_attrs a = {.mode = mode & 07777, .uid = uid, .gid = gid};
        a.atime_ns = a.mtime_ns = a.ctime_ns = prompts_now_ns();
        int64_t old_mtime = 0;
        int revived = create ? trash_revive(key, &old_mtime) : 0;
        if (revived < 0) {
            r = revived;
            goto fail;
        }
        /* A name with no row yet (a cp of new files): its row is known, so the insert is
         * queued instead of waited for; the content written at close follows it. */
        int64_t gen = store_next_generation(PS.st);
        int is_new = 0;
        if (create && !revived) {
            r = sp_get(PS.st, key, &row, &err);
            if (r < 0 && r != -ENOENT)
                goto fail;
            is_new = r == -ENOENT;
        }
        int queued = is_new && sp_begin_new(PS.st, key, gen, &a, now_ms(), &row) == 0;
        r = queued ? 0 : sp_begin_write(PS.st, key, gen, &a, now_ms(), &row, &err);
        if (r < 0)
            goto fail;
        if (revived) {   /* a new file to whoever created it */
            r = sp_setattr(PS.st, key, SP_ATTR_MODE | SP_ATTR_UID | SP_ATTR_GID | SP_ATTR_ATIME |
                                           SP_ATTR_MTIME, &a, &err);
            if (r < 0) {
                sp_end_write(PS.st, key);
                goto fail;
            }
            row.attrs = a;
        }
        int e = 0;
        if (!(d = draft_new(key, &row, truncate || revived, &e))) {
            r = e;
            sp_end_write(PS.st, key);
            goto fail;
        }
        if (revived) {
            d->revived = d->force_new = 1;
            d->revived_mtime_ns = old_mtime;
        }
    } else if (writing && truncate && d->len) {
        d->len = 0;
        d->dirty = 1;
    }
    d->refs++;
    h->d = d;
    if (writing) {
        h->writer = 1;
        d->writers++;
        prompt_row row = {.gen = d->gen, .state = d->stored_state, .hash = d->stored_hash,
                          .size = d->stored_size, .attrs = d->attrs};
        jobs_writer_opened(d->key, &row);
    }
    prompts_unlock_key(key);
    *out = h;
    return 0;
fail:
    prompts_unlock_key(key);
    free(h);
    return r;
}

int prompts_handle_writes(const prompt_handle *h)
{
    return h->writer;
}

long prompts_read(prompt_handle *h, char *buf, size_t size, off_t off)
{
    if (h->snapshot) {
        if (off < 0 || (size_t)off >= h->snapshot->len)
            return 0;
        size_t n = h->snapshot->len - (size_t)off;
        if (n > size)
            n = size;
        memcpy(buf, h->snapshot->data + off, n);
        return (long)n;
    }
    unsigned s = lock_draft(h->d);
    size_t n = 0;
    if (off >= 0 && (size_t)off < h->d->len) {
        n = h->d->len - (size_t)off;
        if (n > size)
            n = size;
        memcpy(buf, h->d->data + off, n);
    }
    pthread_mutex_unlock(&PS.stripes[s]);
    return (long)n;
}

long prompts_write(prompt_handle *h, const char *buf, size_t size, off_t off)
{
    if (!h->writer)
        return -EBADF;
    int r = store_admit(PS.st);
    if (r < 0)
        return r;   /* the store is failing: say so where the shell sees it */
    unsigned s = lock_draft(h->d);
    draft *d = h->d;
    long result;
    if (off < 0) {
        result = -EINVAL;
    } else if ((size_t)off + size > PROMPT_MAX) {
        d->too_large = 1;   /* what was written is a cut-off prompt: never send it */
        result = -EFBIG;
    } else if ((r = draft_reserve(d, (size_t)off + size)) < 0) {
        result = r;
    } else {
        if ((size_t)off > d->len)
            memset(d->data + d->len, 0, (size_t)off - d->len);
        memcpy(d->data + off, buf, size);
        if ((size_t)off + size > d->len)
            d->len = (size_t)off + size;
        d->dirty = 1;
        d->attrs.mtime_ns = prompts_now_ns();
        d->mtime_set = 0;
        result = (long)size;
    }
    pthread_mutex_unlock(&PS.stripes[s]);
    return result;
}

int prompts_ftruncate(prompt_handle *h, off_t size)
{
    if (!h->writer)
        return -EBADF;
    if (size < 0)
        return -EINVAL;
    if ((size_t)size > PROMPT_MAX)
        return -EFBIG;
    unsigned s = lock_draft(h->d);
    draft *d = h->d;
    int r = draft_reserve(d, (size_t)size);
    if (r == 0) {
        if ((size_t)size > d->len)
            memset(d->data + d->len, 0, (size_t)size - d->len);
        if (d->len != (size_t)size) {
            d->dirty = 1;
            d->mtime_set = 0;
        }
        d->len = (size_t)size;
    }
    pthread_mutex_unlock(&PS.stripes[s]);
    return r;
}

int prompts_flush(prompt_handle *h)
{
    if (!h->writer)
        return 0;
    unsigned s = lock_draft(h->d);
    int r = draft_decide(h->d);
    pthread_mutex_unlock(&PS.stripes[s]);
    return r;
}

int prompts_fsync(prompt_handle *h)
{
    int r = prompts_flush(h);
    return r < 0 ? r : store_sync(PS.st);   /* what is queued, on the disk */
}

void prompts_release(prompt_handle *h)
{
    if (h->snapshot) {
        blob_unref(h->snapshot);
        free(h);
        return;
    }
    draft *d = h->d;
    unsigned s = lock_draft(d);
    if (h->writer && d->writers == 1 && (d->dirty || d->too_large) && draft_decide(d) < 0 &&
        !d->orphaned) {
        /* Its bytes could not be stored (the close already said so): the prompt is
         * incomplete, as after a crash, until it is written again. */
        sp_set_state(PS.st, d->key, d->gen, PS_INCOMPLETE, 0, 0);
        d->stored_state = PS_INCOMPLETE;
    }
    if (h->writer) {
        d->writers--;
        if (d->writers || d->orphaned) {
            jobs_writer_closed(d->key);
        } else {
            closed_put(d);
            if (sp_end_write_then(PS.st, d->key, d->gen, jobs_would_start_now(d->key),
                                  writer_closed_stored) < 0) {
                closed_drop(d->key, d->gen);
                jobs_writer_closed(d->key);   /* (out of memory: the store keeps writing = 1) */
            }
        }
    }
    if (--d->refs == 0)
        draft_drop(d);   /* reads of the name now wait for what is queued (store_settle) */
    pthread_mutex_unlock(&PS.stripes[s]);
    free(h);
}

/* ---- attributes ---- */

int prompts_stat(const char *key, struct stat *st)
{
    prompts_lock_key(key);
    draft *d = prompts_draft_find(key);
    if (d) {
        prompts_fill_stat(st, S_IFREG, &d->attrs, (off_t)d->len);
        prompts_unlock_key(key);
        return 0;
    }
    closed_attrs c;
    int closed = closed_get(key, &c);
    prompts_unlock_key(key);
    if (closed) {
        prompts_fill_stat(st, S_IFREG, &c.attrs, (off_t)c.size);
        return 0;
    }
    prompt_row row;
    rf_err err;
    int r = sp_get(PS.st, key, &row, &err);
    if (r < 0)
        return r;
    prompts_fill_stat(st, S_IFREG, &row.attrs, (off_t)row.size);
    return 0;
}

int prompts_setattr(const char *key, unsigned mask, const prompt_attrs *a)
{
    rf_err err;
    prompt_attrs v = *a;
    v.ctime_ns = prompts_now_ns();
    prompts_lock_key(key);
    int r = sp_setattr(PS.st, key, mask, &v, &err);
    closed_drop(key, -1);   /* (stored after what was queued: stat reads it now) */
    draft *d = prompts_draft_find(key);
    if (r == 0 && d) {
        if (mask & SP_ATTR_MODE) d->attrs.mode = v.mode;
        if (mask & SP_ATTR_UID) d->attrs.uid = v.uid;
        if (mask & SP_ATTR_GID) d->attrs.gid = v.gid;
        if (mask & SP_ATTR_ATIME) d->attrs.atime_ns = v.atime_ns;
        if (mask & SP_ATTR_MTIME) d->attrs.mtime_ns = v.mtime_ns, d->mtime_set = 1;
        d->attrs.ctime_ns = v.ctime_ns;
    }
    prompts_unlock_key(key);
    return r;
}

int prompts_truncate(const char *key, off_t size, uid_t uid, gid_t gid)
{
    prompt_handle *h = NULL;
    int r = prompts_open(key, O_WRONLY, 0, 0600, uid, gid, &h);
    if (r < 0)
        return r;
    r = prompts_ftruncate(h, size);
    int f = prompts_flush(h);
    prompts_release(h);
    return r < 0 ? r : f;
}

/* ---- removing and moving ---- */

int prompts_unlink(const char *key)
{
    rf_err err;
    prompts_lock_key(key);
    prompt_row row;
    int r = sp_get(PS.st, key, &row, &err);
    if (r == 0)
        r = trash_delete(key, &row);   /* kept aside a moment for tar -x (prompts_int.h) */
    if (r == 0) {
        draft *d = prompts_draft_find(key);
        if (d)
            d->orphaned = 1;
        jobs_prompt_removed(key, row.gen);
    }
    prompts_unlock_key(key);
    return r;
}

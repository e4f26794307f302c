/* store_paths.c — which paths surely have no row (store.h: store_path_absent): a Bloom
 * filter of the paths of the prompts and dirs tables, so that the lookup of a new name is
 * answered without a read.  cp asks three times about each file it copies (two stats and
 * the create's own lookup), always for a name that is not there, and a name that is not a
 * prompt might be a tag directory.
 *
 * The filter is sized and allocated when the writer starts (store_start), and every write
 * that can give a path a row adds it before it is submitted (store_path_add).  A thread
 * then reads every path already in the table; only once it has finished does the filter
 * answer.  A false "maybe" costs the read it saves; a deleted path stays in the filter
 * until the next mount.  Past its design load the filter still answers rightly, with more
 * reads.
 *
 * Locking: none.  The bits are set and read with atomic operations; the filter itself
 * lives from store_start to store_close. */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "log.h"

#define BITS_PER_PATH 10        /* with 7 probes: about 1% false "maybe" at design load */
#define PROBES 7
#define MIN_PATHS (1u << 18)    /* 320 KiB: a fresh state still takes big batches */

struct store_paths {
    uint64_t *words;
    uint64_t nbits;              /* < 2^32 */
    int ready;                   /* atomic: every row's path is in (the scan finished) */
    int stop;                    /* atomic: store_close asks the scan to end */
    pthread_t scan;
    int scan_started;
};

/* Two 32-bit hashes of path; probe i is h1 + i * h2, mapped onto [0, nbits). */
static void path_hashes(const char *path, uint32_t *h1, uint32_t *h2)
{
    uint64_t h = blob_hash(path, strlen(path));
    h ^= h >> 33;   /* FNV's low bits are weak: mix (murmur3's finaliser) */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    *h1 = (uint32_t)h;
    *h2 = (uint32_t)(h >> 32) | 1;
}

static uint64_t probe_bit(const struct store_paths *f, uint32_t h1, uint32_t h2, int i)
{
    return ((uint64_t)(uint32_t)(h1 + (uint32_t)i * h2) * f->nbits) >> 32;
}

static void filter_add(struct store_paths *f, const char *path)
{
    uint32_t h1, h2;
    path_hashes(path, &h1, &h2);
    for (int i = 0; i < PROBES; i++) {
        uint64_t b = probe_bit(f, h1, h2, i);
        __atomic_fetch_or(&f->words[b >> 6], 1ULL << (b & 63), __ATOMIC_RELEASE);
    }
}

void store_path_add(store *st, const char *path)
{
    if (st->paths)
        filter_add(st->paths, path);
}

int store_path_absent(store *st, const char *path)
{
    struct store_paths *f = st->paths;
    if (!f || !__atomic_load_n(&f->ready, __ATOMIC_ACQUIRE))
        return 0;
    uint32_t h1, h2;
    path_hashes(path, &h1, &h2);
    for (int i = 0; i < PROBES; i++) {
        uint64_t b = probe_bit(f, h1, h2, i);
        if (!(__atomic_load_n(&f->words[b >> 6], __ATOMIC_ACQUIRE) & (1ULL << (b & 63))))
            return 1;
    }
    return 0;
}

static const char SQL_MAX_ID[] = "SELECT coalesce(max(id), 0) FROM prompts";
static const char SQL_ALL_PATHS[] =   /* (the planner reads prompts' path index) */
    "SELECT path FROM prompts UNION ALL SELECT path FROM dirs";

/* The scan: every path with a row, from one read transaction that began after the filter
 * took writes (so a path is either in its snapshot or added by its write). */
static void *scan_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "rfs-paths");  /* for top -H; cosmetic */
    store *st = arg;
    struct store_paths *f = st->paths;
    rf_err err;
    rf_err_clear(&err);
    store_conn *c = store_reader(st, &err);
    sqlite3_stmt *s = c ? store_stmt(c, SQL_ALL_PATHS, &err) : NULL;
    int rc = SQLITE_DONE;
    long n = 0;
    if (s) {
        while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED) &&
               (rc = sqlite3_step(s)) == SQLITE_ROW) {
            const char *p = (const char *)sqlite3_column_text(s, 0);
            if (p)
                filter_add(f, p);
            n++;
        }
        sqlite3_reset(s);
    }
    if (c)
        store_reader_done(st, c);
    if (!s || (rc != SQLITE_DONE && rc != SQLITE_ROW))
        LOG_WARN("state store: cannot read the names of its rows (%s): every lookup reads "
                 "the store", s ? sqlite3_errstr(rc) : err.msg);
    else if (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED))
        __atomic_store_n(&f->ready, 1, __ATOMIC_RELEASE);
    LOG_DEBUG("state store: %ld names in the lookup filter (%llu bits)", n,
              (unsigned long long)f->nbits);
    return NULL;
}

/* Best effort: without memory or a thread, lookups read the store as before. */
void store_paths_start(store *st)
{
    long long rows = 0;
    rf_err err;
    sqlite3_stmt *s = store_stmt(st->writer, SQL_MAX_ID, &err);
    if (s && sqlite3_step(s) == SQLITE_ROW)
        rows = sqlite3_column_int64(s, 0);
    if (s)
        sqlite3_reset(s);
    uint64_t paths = rows > (long long)MIN_PATHS / 2 ? (uint64_t)rows * 2 : MIN_PATHS;
    uint64_t nbits = paths * BITS_PER_PATH;
    if (nbits >= (1ULL << 32))
        nbits = (1ULL << 32) - 64;
    nbits = (nbits + 63) & ~63ULL;
    struct store_paths *f = calloc(1, sizeof *f);
    if (!f || !(f->words = calloc(nbits / 64, sizeof *f->words))) {
        free(f);
        return;
    }
    f->nbits = nbits;
    st->paths = f;
    int e = pthread_create(&f->scan, NULL, scan_main, st);
    if (e)
        LOG_WARN("state store: cannot start the name scan: %s", strerror(e));
    else
        f->scan_started = 1;
}

void store_paths_stop(store *st)
{
    struct store_paths *f = st->paths;
    if (!f)
        return;
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELAXED);
    if (f->scan_started)
        pthread_join(f->scan, NULL);
    st->paths = NULL;
    free(f->words);
    free(f);
}

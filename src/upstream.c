/* upstream.c — the public face of the upstream loop: start and stop, submit, timers,
 * posts, cancellation, and the id map every entry lives in.
 *
 * Everything here runs on the caller's thread and only queues: a new entry goes into the
 * inbox, a cancelled one onto the cancel queue, and the loop thread (upstream_loop.c) is
 * woken to take them in.  upstream_int.h says what the lock guards and how cancellation
 * keeps its promise. */
#include "upstream_int.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define INITIAL_BUCKETS     1024
#define FD_RESERVE          64        /* descriptors left to the rest of the daemon */
#define MIN_SOCKET_BUDGET   8
#define MAX_SOCKET_BUDGET   (1L << 20)
#define MAX_IDLE_CONNECTS   1024      /* idle connections kept for reuse: above the tiers'
                                         concurrency, or most requests connect anew (256
                                         at C=500: 3952 connects for 5,000 requests) */
#define CORE_FD_RESERVE     32        /* at most; limit / 8 under a small limit */
#define UNTIERED_SOCKETS    4         /* kept from the tiers' shares: price, key and
                                         generation lookups */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
/* Process-wide descriptor accounting, for upstream_tier_share and upstream_fd_may_keep
 * (the daemon runs one loop; unit tests that start several see the last one's). */
static _Atomic long running_budget;      /* the running loop's socket budget; 0: none */
static _Atomic long fd_limit;            /* RLIMIT_NOFILE soft limit at its start; 0: none */
static _Atomic long sockets_open;        /* connections' sockets open now */
static _Atomic long fd_shortages;        /* descriptors refused or not to be had */
static _Atomic int64_t last_shortage_ms; /* monotonic */
static _Atomic int last_shortage_kind;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------------------------------------------------------------------------------- */
/* The id map (lock held)                                                              */
/* ---------------------------------------------------------------------------------- */

static size_t id_slot(const upstream *up, long id)
{
    return (size_t)id & (up->nbuckets - 1);  /* ids are sequential: already spread */
}

static void map_grow(upstream *up)
{
    size_t n = up->nbuckets * 2;
    entry **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;  /* longer chains, still correct */
    for (size_t i = 0; i < up->nbuckets; i++) {
        entry *e = up->buckets[i];
        while (e) {
            entry *next = e->hnext;
            size_t slot = (size_t)e->id & (n - 1);
            e->hnext = nb[slot];
            nb[slot] = e;
            e = next;
        }
    }
    free(up->buckets);
    up->buckets = nb;
    up->nbuckets = n;
}

static void map_insert(upstream *up, entry *e)
{
    size_t slot = id_slot(up, e->id);
    e->hnext = up->buckets[slot];
    up->buckets[slot] = e;
    if (++up->nentries > up->nbuckets)
        map_grow(up);
}

static entry *map_find(upstream *up, long id)
{
    entry *e = up->buckets[id_slot(up, id)];
    while (e && e->id != id)
        e = e->hnext;
    return e;
}

void upstream_map_remove(upstream *up, entry *e)
{
    entry **pp = &up->buckets[id_slot(up, e->id)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = e->hnext;
        up->nentries--;
        if (e->kind == KIND_TIMER)
            up->timers_live--;
    }
}

void entry_free(upstream *up, entry *e)
{
    if (e->kind == KIND_REQUEST)
        request_free(up, (request *)e);
    else
        free(e);
}

/* ---------------------------------------------------------------------------------- */
/* Start and stop                                                                      */
/* ---------------------------------------------------------------------------------- */

/* The soft descriptor limit, 1024 (the usual default) when unknown, LONG_MAX unlimited. */
static long soft_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)LONG_MAX)
        return LONG_MAX;
    return (long)rl.rlim_cur;
}

/* Connections curl may hold: the soft descriptor limit less what the daemon needs. */
static long socket_budget(void)
{
    struct rlimit rl;
    long budget;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        budget = 1024 - FD_RESERVE;  /* the usual default soft limit */
    else if (rl.rlim_cur == RLIM_INFINITY ||
             rl.rlim_cur > (rlim_t)(MAX_SOCKET_BUDGET + FD_RESERVE))
        budget = MAX_SOCKET_BUDGET;
    else
        budget = (long)rl.rlim_cur - FD_RESERVE;
    return budget < MIN_SOCKET_BUDGET ? MIN_SOCKET_BUDGET : budget;
}

upstream *upstream_start(rf_err *err)
{
    if (pthread_once(&curl_once, curl_init_once) != 0 || curl_init_result != CURLE_OK) {
        rf_err_set(err, EIO, "curl_global_init failed");
        return NULL;
    }
    upstream *up = calloc(1, sizeof *up);
    if (!up) {
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    atomic_init(&up->in_flight, 0);
    up->epfd = up->wakefd = -1;
    up->socket_budget = socket_budget();
    up->nbuckets = INITIAL_BUCKETS;
    up->buckets = calloc(up->nbuckets, sizeof *up->buckets);
    if (!up->buckets) {
        free(up);
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    int lock_ok = 0, cond_ok = 0, loop_ok = 0;
    CURLMcode mc = CURLM_OK;
    if (pthread_mutex_init(&up->lock, NULL) != 0) {
        rf_err_set(err, EIO, "pthread_mutex_init failed");
        goto fail;
    }
    lock_ok = 1;
    if (pthread_cond_init(&up->callback_done, NULL) != 0) {
        rf_err_set(err, EIO, "pthread_cond_init failed");
        goto fail;
    }
    cond_ok = 1;
    up->multi = curl_multi_init();
    if (!up->multi) {
        rf_err_set(err, EIO, "curl_multi_init failed");
        goto fail;
    }
    /* Transfers beyond the budget wait inside curl for a connection instead of failing
     * for want of a descriptor, or taking the ones the rest of the daemon needs. */
    long idle = up->socket_budget < MAX_IDLE_CONNECTS ? up->socket_budget : MAX_IDLE_CONNECTS;
    if ((mc = curl_multi_setopt(up->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                                up->socket_budget)) != CURLM_OK ||
        (mc = curl_multi_setopt(up->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                                up->socket_budget)) != CURLM_OK ||
        (mc = curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, idle)) != CURLM_OK) {
        rf_err_set(err, EIO, "curl_multi_setopt: %s", curl_multi_strerror(mc));
        goto fail;
    }
    if (loop_init(up, err) < 0)
        goto fail;
    loop_ok = 1;
    if (pthread_create(&up->thread, NULL, loop_main, up) != 0) {
        rf_err_set(err, EIO, "pthread_create failed");
        goto fail;
    }
    atomic_store(&running_budget, up->socket_budget);
    atomic_store(&fd_limit, soft_fd_limit());
    return up;

fail:
    if (up->multi)
        curl_multi_cleanup(up->multi);
    if (loop_ok)
        loop_cleanup(up);
    if (cond_ok)
        pthread_cond_destroy(&up->callback_done);
    if (lock_ok)
        pthread_mutex_destroy(&up->lock);
    free(up->buckets);
    free(up);
    return NULL;
}

void upstream_stop(upstream *up)
{
    if (!up)
        return;
    long mine = up->socket_budget;
    atomic_compare_exchange_strong(&running_budget, &mine, 0);
    pthread_mutex_lock(&up->lock);
    up->stop = 1;
    pthread_mutex_unlock(&up->lock);
    loop_wake(up);
    if (pthread_join(up->thread, NULL) != 0)
        return;  /* called from the loop thread itself: cannot free under its feet */

    /* The loop is gone: free every entry, wherever it is, without callbacks. */
    for (size_t i = 0; i < up->nbuckets; i++) {
        entry *e = up->buckets[i];
        while (e) {
            entry *next = e->hnext;
            if (e->kind == KIND_REQUEST && e->where == WHERE_MULTI) {
                CURLMcode mc = curl_multi_remove_handle(up->multi, ((request *)e)->easy);
                if (mc != CURLM_OK)
                    LOG_ERROR("upstream: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
            }
            entry_free(up, e);
            e = next;
        }
    }
    CURLMcode mc = curl_multi_cleanup(up->multi);  /* may still tell the loop's epoll */
    if (mc != CURLM_OK)
        LOG_WARN("upstream: curl_multi_cleanup: %s", curl_multi_strerror(mc));
    loop_cleanup(up);
    pthread_cond_destroy(&up->callback_done);
    pthread_mutex_destroy(&up->lock);
    free(up->buckets);
    free(up->heap);
    free(up);
}

/* ---------------------------------------------------------------------------------- */
/* Handing work in                                                                     */
/* ---------------------------------------------------------------------------------- */

/* Queue e in the inbox and wake the loop if it may be asleep (lock not held). */
static long enqueue(upstream *up, entry *e, rf_err *err)
{
    pthread_mutex_lock(&up->lock);
    if (up->stop) {
        pthread_mutex_unlock(&up->lock);
        return rf_err_set(err, ECANCELED, "upstream is stopping");
    }
    if (e->kind == KIND_TIMER && up->timers_live + 1 > up->heap_cap) {
        size_t cap = up->heap_cap ? up->heap_cap * 2 : 64;
        timer **heap = realloc(up->heap, cap * sizeof *heap);
        if (!heap) {
            pthread_mutex_unlock(&up->lock);
            return rf_err_set(err, ENOMEM, "out of memory");
        }
        up->heap = heap;
        up->heap_cap = cap;
    }
    e->id = ++up->next_id;
    e->where = WHERE_INBOX;
    map_insert(up, e);
    if (e->kind == KIND_TIMER)
        up->timers_live++;
    int was_empty = up->inbox_head == NULL;  /* else a wake-up is already pending */
    if (up->inbox_tail)
        up->inbox_tail->next = e;
    else
        up->inbox_head = e;
    up->inbox_tail = e;
    long id = e->id;
    pthread_mutex_unlock(&up->lock);
    if (was_empty)
        loop_wake(up);
    return id;
}

void upstream_request_free(upstream_request *req)
{
    if (!req)
        return;
    free(req->url);
    free(req->body);
    free_secret(req->api_key);
    for (size_t i = 0; i < UPSTREAM_MAX_HEADERS; i++) {
        if (!req->extra_headers[i])
            break;
        free(req->extra_headers[i]);
    }
    free(req);
}

long upstream_submit(upstream *up, upstream_request *req, upstream_done_fn done, void *ud,
                     rf_err *err)
{
    if (!up || !req || !req->url) {
        upstream_request_free(req);
        return rf_err_set(err, EINVAL, "upstream_submit: no request or no URL");
    }
    request *r = calloc(1, sizeof *r);
    if (!r) {
        upstream_request_free(req);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    atomic_fetch_add(&up->in_flight, 1);  /* request_free takes it back */
    r->e.kind = KIND_REQUEST;
    r->up = up;
    r->dl_idx = SIZE_MAX;
    atomic_init(&r->bytes, 0);
    r->url = req->url;
    r->body = req->body;
    req->url = req->body = NULL;
    r->max_response = req->max_response;
    r->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 0;
    r->first_token_ms = req->first_token_timeout_ms > 0 ? req->first_token_timeout_ms : 0;
    r->stall_ms = req->stall_timeout_ms > 0 ? req->stall_timeout_ms : 0;
    r->on_data = req->on_data;
    r->done = done;
    r->ud = ud;
    r->retry_after_ms = -1;
    r->submitted_ms = now_mono_ms();
    r->whole_due = r->timeout_ms > 0 ? r->submitted_ms + r->timeout_ms : NO_DEADLINE;

    int ok = xfer_prepare(r, req, err) == 0;
    upstream_request_free(req);  /* the key is wiped here; only the header copy remains */
    if (!ok) {
        request_free(up, r);
        return -1;
    }
    long id = enqueue(up, &r->e, err);
    if (id < 0)
        request_free(up, r);
    return id;
}

static long add_timer(upstream *up, entry_kind kind, long delay_ms, upstream_timer_fn fn,
                      void *ud, rf_err *err)
{
    timer *t = calloc(1, sizeof *t);
    if (!t)
        return rf_err_set(err, ENOMEM, "out of memory");
    t->e.kind = kind;
    t->fn = fn;
    t->ud = ud;
    t->due_ms = now_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
    long id = enqueue(up, &t->e, err);
    if (id < 0)
        free(t);
    return id;
}

long upstream_after(upstream *up, long delay_ms, upstream_timer_fn fn, void *ud, rf_err *err)
{
    if (!up || !fn)
        return rf_err_set(err, EINVAL, "upstream_after: no timer function");
    return add_timer(up, KIND_TIMER, delay_ms, fn, ud, err);
}

long upstream_post(upstream *up, upstream_timer_fn fn, void *ud, rf_err *err)
{
    if (!up || !fn)
        return rf_err_set(err, EINVAL, "upstream_post: no function");
    return add_timer(up, KIND_POST, 0, fn, ud, err);
}

/* ---------------------------------------------------------------------------------- */
/* Cancellation and status                                                             */
/* ---------------------------------------------------------------------------------- */

/* Flag the entry, queue it for the loop to drop, and wait out its running callback.
 * Returns the request's body bytes so far (0 for timers), or -1 when not found. */
static int64_t cancel_entry(upstream *up, long id, int want_request)
{
    if (!up || id <= 0)
        return -1;
    int wake = 0;
    int64_t bytes = -1;
    pthread_mutex_lock(&up->lock);
    entry *e = map_find(up, id);
    if (e && (e->kind == KIND_REQUEST) == want_request) {
        bytes = e->kind == KIND_REQUEST ? (int64_t)atomic_load(&((request *)e)->bytes) : 0;
        if (!e->cancelled) {
            e->cancelled = 1;
            if (!e->queued_cancel) {
                wake = up->cancel_head == NULL;
                e->queued_cancel = 1;
                e->cnext = up->cancel_head;
                up->cancel_head = e;
            }
        }
    }
    int on_loop = up->loop_tid_set && pthread_equal(up->loop_tid, pthread_self());
    while (!on_loop && up->running_id == id)
        pthread_cond_wait(&up->callback_done, &up->lock);
    pthread_mutex_unlock(&up->lock);
    if (wake && !on_loop)
        loop_wake(up);  /* so the loop drops the transfer (closing it) or timer promptly */
    return bytes;
}

int64_t upstream_cancel(upstream *up, long id)
{
    return cancel_entry(up, id, 1);
}

void upstream_cancel_timer(upstream *up, long id)
{
    (void)cancel_entry(up, id, 0);
}

int64_t upstream_bytes_received(upstream *up, long id)
{
    if (!up || id <= 0)
        return -1;
    int64_t bytes = -1;
    pthread_mutex_lock(&up->lock);
    entry *e = map_find(up, id);
    if (e && e->kind == KIND_REQUEST && !e->cancelled)
        bytes = (int64_t)atomic_load(&((request *)e)->bytes);
    pthread_mutex_unlock(&up->lock);
    return bytes;
}

size_t upstream_in_flight(upstream *up)
{
    return up ? atomic_load(&up->in_flight) : 0;
}

long upstream_socket_budget(upstream *up)
{
    return up ? up->socket_budget : 0;
}

/* The connections tiers want when each takes at most `level`. */
static long fill_at(const rf_config *cfg, long level)
{
    long sum = 0;
    for (size_t i = 0; i < cfg->tiers_len; i++)
        sum += cfg->tiers[i].concurrency < level ? cfg->tiers[i].concurrency : level;
    return sum;
}

/* Max-min fairness ("water filling"): the highest level L with every tier taking
 * min(concurrency, L) within the budget; a tier that wants less than L keeps all of its
 * concurrency, the others share the rest.  Shares are fixed, not lent: a connection held
 * by a request that never answers cannot be taken back for another tier. */
int upstream_tier_share(const rf_config *cfg, const rf_tier *t)
{
    if (!t)
        return 1;
    long budget = atomic_load(&running_budget);
    if (!cfg || budget <= 0 || cfg->tiers_len == 0)
        return t->concurrency;
    if (budget - UNTIERED_SOCKETS >= (long)cfg->tiers_len)
        budget -= UNTIERED_SOCKETS;
    long top = 0;
    for (size_t i = 0; i < cfg->tiers_len; i++)
        if (cfg->tiers[i].concurrency > top)
            top = cfg->tiers[i].concurrency;
    if (fill_at(cfg, top) <= budget)
        return t->concurrency;
    long lo = 1, hi = top;   /* fill_at(lo) <= budget, or lo == 1: one each at least */
    while (lo < hi) {
        long mid = lo + (hi - lo + 1) / 2;
        if (fill_at(cfg, mid) <= budget)
            lo = mid;
        else
            hi = mid - 1;
    }
    return t->concurrency < lo ? t->concurrency : (int)lo;
}

/* ---------------------------------------------------------------------------------- */
/* Descriptors                                                                         */
/* ---------------------------------------------------------------------------------- */

/* The top of the descriptor table nothing that can wait or fail may take: it is for the
 * store's readers, the config's rewrite, the log's reopen. */
static long core_reserve(long limit)
{
    long r = limit / 8;
    return r > CORE_FD_RESERVE ? CORE_FD_RESERVE : r;
}

/* Descriptors are numbered lowest free first, so fd + 1 is about how many are open. */
int upstream_socket_fd_ok(int fd)
{
    long limit = atomic_load(&fd_limit);
    return limit <= 0 || (long)fd + 1 + core_reserve(limit) <= limit;
}

void upstream_socket_opened(void)
{
    atomic_fetch_add(&sockets_open, 1);
}

void upstream_socket_closed(void)
{
    atomic_fetch_sub(&sockets_open, 1);
}

int upstream_fd_may_keep(int fd, const rf_config *cfg)
{
    long limit = atomic_load(&fd_limit), budget = atomic_load(&running_budget);
    if (limit <= 0 || fd < 0)
        return 1;
    /* what the tiers may still connect with: their shares, less what is open */
    long want = UNTIERED_SOCKETS;
    for (size_t i = 0; cfg && i < cfg->tiers_len; i++)
        want += upstream_tier_share(cfg, &cfg->tiers[i]);
    if (want > budget)
        want = budget;
    long still = want - atomic_load(&sockets_open);
    if (still < 0)
        still = 0;
    return (long)fd + 1 + still + core_reserve(limit) <= limit;
}

void upstream_fd_shortage(upstream_fd_use what)
{
    atomic_store(&last_shortage_kind, (int)what);
    atomic_store(&last_shortage_ms, now_mono_ms());
    atomic_fetch_add(&fd_shortages, 1);
}

long upstream_fd_shortages(int64_t *last_ms, upstream_fd_use *last_what, long *limit)
{
    if (last_ms)
        *last_ms = atomic_load(&last_shortage_ms);
    if (last_what)
        *last_what = (upstream_fd_use)atomic_load(&last_shortage_kind);
    if (limit)
        *limit = atomic_load(&fd_limit);
    return atomic_load(&fd_shortages);
}

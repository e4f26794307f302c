/* upstream.c — the libcurl multi event loop that carries every provider request.
 *
 * One thread (loop_main) owns the curl multi handle.  Other threads create a request's
 * easy handle in upstream_submit and leave it, or a timer, in an inbox; the loop moves
 * the inbox into the multi handle / timer heap, drives curl_multi_poll, and runs the
 * completion callbacks and timers itself, one at a time.
 *
 * Every live request and timer ("entry") is in an id map from submission until it is
 * freed, so upstream_cancel can find it from any thread and flag it under the lock.  The
 * loop checks that flag, under the same lock, right before it runs a callback and records
 * which id it is running; a canceller on another thread waits while its id is the one
 * running.  So once upstream_cancel returns, that callback has either finished or will
 * never start.  Cancelled entries are also queued so the loop drops their transfers or
 * timers promptly instead of letting them run to completion unseen.
 *
 * Locking: up->lock guards the inbox, the id map, the cancel queue, the timer heap (so
 * upstream_after can reserve heap space and never fail later), running_id and stop.
 * The curl handles and each entry's `where` belong to the loop thread alone. */
#include "upstream.h"
#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_CONNECTS            256     /* idle connections kept for reuse */
#define CONNECT_TIMEOUT_MAX_MS  10000L
#define IDLE_POLL_MS            1000    /* safety net: poll wakes at least this often */
#define INITIAL_BUCKETS         1024
#define RETRY_AFTER_VALUE_MAX   128
#define AUTH_PREFIX             "Authorization: Bearer "

typedef enum {
    WHERE_INBOX = 0,   /* submitted, not yet taken in by the loop */
    WHERE_MULTI,       /* a request whose easy handle is in the multi handle */
    WHERE_HEAP,        /* a timer waiting in the heap */
    WHERE_LOOSE        /* held by the loop while it completes it; freed by that code */
} entry_where;

/* The common head of a request and a timer. */
typedef struct entry {
    long id;
    int is_timer;
    int cancelled;           /* lock */
    int queued_cancel;       /* lock: on up->cancel_head */
    entry_where where;       /* loop thread */
    struct entry *hnext;     /* lock: id map chain */
    struct entry *next;      /* lock: inbox link; loop: failed-list link */
    struct entry *cnext;     /* lock: cancel queue link */
} entry;

typedef struct request {
    entry e;                 /* first: a request is an entry */
    CURL *easy;
    struct curl_slist *headers;  /* holds the Authorization header: zeroed before free */
    const char *key;         /* inside `headers`, for redacting error text; or NULL */
    char *url, *body;
    size_t max_response;     /* 0 = no cap */
    upstream_done_fn done;
    void *ud;
    int64_t submitted_ms;

    char *buf;               /* response body so far, NUL-terminated */
    size_t len, cap;
    int too_large;           /* the write callback refused: over max_response */
    int out_of_memory;       /* the write callback refused: realloc failed */
    long retry_after_ms;
    char errbuf[CURL_ERROR_SIZE];
    char add_error[128];     /* why curl_multi_add_handle refused it, for the failed list */
} request;

typedef struct timer {
    entry e;                 /* first: a timer is an entry */
    int64_t due_ms;
    size_t heap_idx;
    upstream_timer_fn fn;
    void *ud;
} timer;

struct upstream {
    pthread_t thread;
    CURLM *multi;

    pthread_mutex_t lock;
    pthread_cond_t callback_done;   /* broadcast whenever a callback returns */
    int stop;
    long next_id;
    long running_id;                /* the entry whose callback runs now, 0 = none */
    pthread_t loop_tid;
    int loop_tid_set;
    entry *inbox_head, *inbox_tail;
    entry *cancel_head;
    entry **buckets;                /* id map, chained; power-of-two size */
    size_t nbuckets, nentries;
    timer **heap;                   /* min-heap on (due_ms, id) */
    size_t heap_len, heap_cap;
    size_t timers_live;             /* timers in inbox or heap: heap_cap >= this */

    atomic_size_t in_flight;

    entry *failed_head, *failed_tail;  /* loop thread: requests the multi refused */
    CURLMcode perform_rc, poll_rc;  /* loop thread: last results, to log changes only */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

static void map_remove(upstream *up, entry *e)
{
    entry **pp = &up->buckets[id_slot(up, e->id)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = e->hnext;
        up->nentries--;
        if (e->is_timer)
            up->timers_live--;
    }
}

/* ---------------------------------------------------------------------------------- */
/* The timer heap (lock held)                                                          */
/* ---------------------------------------------------------------------------------- */

static int timer_before(const timer *a, const timer *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->e.id < b->e.id);
}

static void heap_place(upstream *up, size_t i, timer *t)
{
    up->heap[i] = t;
    t->heap_idx = i;
}

static void heap_sift_up(upstream *up, size_t i)
{
    timer *t = up->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, up->heap[parent]))
            break;
        heap_place(up, i, up->heap[parent]);
        i = parent;
    }
    heap_place(up, i, t);
}

static void heap_sift_down(upstream *up, size_t i)
{
    timer *t = up->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= up->heap_len)
            break;
        if (child + 1 < up->heap_len && timer_before(up->heap[child + 1], up->heap[child]))
            child++;
        if (!timer_before(up->heap[child], t))
            break;
        heap_place(up, i, up->heap[child]);
        i = child;
    }
    heap_place(up, i, t);
}

/* Capacity was reserved by upstream_after, so this cannot fail. */
static void heap_push(upstream *up, timer *t)
{
    heap_place(up, up->heap_len++, t);
    heap_sift_up(up, t->heap_idx);
}

static void heap_remove(upstream *up, timer *t)
{
    size_t i = t->heap_idx;
    timer *last = up->heap[--up->heap_len];
    if (i == up->heap_len)
        return;
    heap_place(up, i, last);
    if (i > 0 && timer_before(last, up->heap[(i - 1) / 2]))
        heap_sift_up(up, i);
    else
        heap_sift_down(up, i);
}

/* ---------------------------------------------------------------------------------- */
/* Entries                                                                             */
/* ---------------------------------------------------------------------------------- */

/* Take a handle out of the multi.  Fails only on a handle that is not in it, which would
 * be our bug: say so, the handle is freed anyway. */
static void multi_detach(upstream *up, CURL *easy)
{
    CURLMcode mc = curl_multi_remove_handle(up->multi, easy);
    if (mc != CURLM_OK)
        LOG_ERROR("upstream: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
}

/* Wake the loop from curl_multi_poll.  If that fails the loop still looks within
 * IDLE_POLL_MS, so the work is late, not lost. */
static void wake_loop(upstream *up)
{
    CURLMcode mc = curl_multi_wakeup(up->multi);
    if (mc != CURLM_OK)
        LOG_WARN("upstream: curl_multi_wakeup: %s", curl_multi_strerror(mc));
}

static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void request_free(upstream *up, request *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    for (struct curl_slist *h = r->headers; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));  /* the API key lives here */
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r->body);
    free(r->buf);
    free(r);
    atomic_fetch_sub(&up->in_flight, 1);
}

static void entry_free(upstream *up, entry *e)
{
    if (e->is_timer)
        free(e);
    else
        request_free(up, (request *)e);
}

/* Drop what was cancelled and is still parked in the multi handle or the heap.  Entries
 * in the inbox or loose are left to their holder, which sees the flag. */
static void reap_cancelled_locked(upstream *up)
{
    while (up->cancel_head) {
        entry *e = up->cancel_head;
        up->cancel_head = e->cnext;
        e->queued_cancel = 0;
        if (e->where == WHERE_MULTI)
            multi_detach(up, ((request *)e)->easy);
        else if (e->where == WHERE_HEAP)
            heap_remove(up, (timer *)e);
        else
            continue;
        map_remove(up, e);
        entry_free(up, e);
    }
}

/* Free an entry the loop holds loose, after its callback ran or was skipped. */
static void entry_release(upstream *up, entry *e)
{
    pthread_mutex_lock(&up->lock);
    reap_cancelled_locked(up);  /* unlinks e from the cancel queue if it is there */
    map_remove(up, e);
    pthread_mutex_unlock(&up->lock);
    entry_free(up, e);
}

/* Should the loop run e's callback now?  If so, e is recorded as running until
 * callback_end, and upstream_cancel for it from another thread waits. */
static int callback_begin(upstream *up, entry *e)
{
    pthread_mutex_lock(&up->lock);
    int run = !e->cancelled && !up->stop;
    if (run)
        up->running_id = e->id;
    pthread_mutex_unlock(&up->lock);
    return run;
}

static void callback_end(upstream *up)
{
    pthread_mutex_lock(&up->lock);
    up->running_id = 0;
    pthread_cond_broadcast(&up->callback_done);
    pthread_mutex_unlock(&up->lock);
}

/* ---------------------------------------------------------------------------------- */
/* curl callbacks (loop thread, inside curl_multi_perform)                             */
/* ---------------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    request *r = ud;
    size_t n = size * nmemb;
    if (r->max_response && n > r->max_response - r->len) {
        r->too_large = 1;
        return 0;  /* curl stops with CURLE_WRITE_ERROR */
    }
    if (n > SIZE_MAX - r->len - 1) {
        r->out_of_memory = 1;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? r->len + n + 1 : cap * 2;
        char *buf = realloc(r->buf, cap);
        if (!buf) {
            r->out_of_memory = 1;
            return 0;
        }
        r->buf = buf;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    r->buf[r->len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    request *r = ud;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    const size_t name_len = sizeof name - 1;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        r->retry_after_ms = -1;  /* a new response begins (e.g. after 100 Continue) */
    } else if (n > name_len && strncasecmp(data, name, name_len) == 0) {
        char value[RETRY_AFTER_VALUE_MAX];
        size_t vlen = n - name_len;
        if (vlen >= sizeof value)
            vlen = sizeof value - 1;  /* a longer value is not a valid one anyway */
        memcpy(value, data + name_len, vlen);
        value[vlen] = '\0';
        r->retry_after_ms = router_parse_retry_after(value, (int64_t)time(NULL));
    }
    return n;
}

/* ---------------------------------------------------------------------------------- */
/* Completion (loop thread)                                                            */
/* ---------------------------------------------------------------------------------- */

static rf_transport_error transport_error_of(CURLcode code, const request *r)
{
    switch (code) {
    case CURLE_OK:
        return RF_TE_NONE;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return RF_TE_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return RF_TE_TIMEOUT;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
        return RF_TE_TRUNCATED;
    case CURLE_FILESIZE_EXCEEDED:  /* Content-Length over CURLOPT_MAXFILESIZE */
        return RF_TE_TOO_LARGE;
    case CURLE_WRITE_ERROR:
        return r->too_large ? RF_TE_TOO_LARGE : RF_TE_OTHER;
    default:
        return RF_TE_OTHER;
    }
}

static void describe_failure(const request *r, CURLcode code, char *out, size_t outsz)
{
    if (code == CURLE_FILESIZE_EXCEEDED || (code == CURLE_WRITE_ERROR && r->too_large))
        snprintf(out, outsz, "response body larger than %zu bytes", r->max_response);
    else if (code == CURLE_WRITE_ERROR && r->out_of_memory)
        snprintf(out, outsz, "out of memory while receiving the response");
    else if (code == CURLE_OUT_OF_MEMORY)
        /* what libcurl also says when a response header line exceeds its limit */
        snprintf(out, outsz, "response headers too large (or out of memory)");
    else if (r->errbuf[0])
        snprintf(out, outsz, "%s", r->errbuf);
    else
        snprintf(out, outsz, "%s", curl_easy_strerror(code));
    /* curl never puts request headers in its messages, but make sure: no key leaks */
    if (r->key && r->key[0] && strstr(out, r->key))
        snprintf(out, outsz, "transport error (message withheld: it contained a credential)");
}

/* Run the callback for a finished request (unless cancelled) and free it.  The request
 * is already out of the multi handle. */
static void request_finish(upstream *up, request *r, upstream_result *res)
{
    res->latency_ms = (long)(monotonic_ms() - r->submitted_ms);
    if (r->done && callback_begin(up, &r->e)) {
        r->done(res, r->ud);
        callback_end(up);
    }
    free(res->body);  /* unless the callback took it */
    entry_release(up, &r->e);
}

/* Providers sometimes quote the key back ("Incorrect API key provided: sk-...").  Nothing
 * downstream may ever see it: overwrite every occurrence in the body, in place (the
 * replacement is no longer than the key, so lengths only shrink). */
static void scrub_key(char *body, size_t *len, const char *key)
{
    static const char mask[] = "[redacted]";
    size_t klen = key ? strlen(key) : 0;
    if (!body || klen == 0)
        return;
    size_t mlen = klen < sizeof mask - 1 ? klen : sizeof mask - 1;
    char *p = body, *end = body + *len;
    while ((size_t)(end - p) >= klen && (p = memmem(p, (size_t)(end - p), key, klen))) {
        memcpy(p, mask, mlen);
        memmove(p + mlen, p + klen, (size_t)(end - (p + klen)));
        end -= klen - mlen;
        p += mlen;
    }
    *len = (size_t)(end - body);
    body[*len] = '\0';
}

static void request_complete(upstream *up, request *r, CURLcode code)
{
    upstream_result res;
    memset(&res, 0, sizeof res);
    res.retry_after_ms = -1;
    res.transport = transport_error_of(code, r);
    if (res.transport == RF_TE_NONE) {
        long status = 0;
        if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) {
            res.transport = RF_TE_OTHER;
            snprintf(res.error, sizeof res.error, "no HTTP status in the response");
        } else {
            res.http_status = status;
            res.body = r->buf;  /* handed over; request_finish frees what is not taken */
            res.body_len = r->len;
            r->buf = NULL;
            r->len = r->cap = 0;
            res.retry_after_ms = r->retry_after_ms;
            scrub_key(res.body, &res.body_len, r->key);
        }
    } else {
        describe_failure(r, code, res.error, sizeof res.error);
    }
    request_finish(up, r, &res);
}

static void complete_transfers(upstream *up)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(up->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* copy out: removing a handle invalidates msg */
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        char *priv = NULL;
        CURLcode rc = curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        multi_detach(up, easy);
        if (rc != CURLE_OK || !priv)
            continue;  /* not ours: cannot happen */
        request *r = (request *)priv;
        r->e.where = WHERE_LOOSE;
        request_complete(up, r, code);
    }
}

/* Requests curl_multi_add_handle refused: report them as transport failures. */
static void complete_failed(upstream *up)
{
    while (up->failed_head) {
        request *r = (request *)up->failed_head;
        up->failed_head = r->e.next;
        if (!up->failed_head)
            up->failed_tail = NULL;
        upstream_result res;
        memset(&res, 0, sizeof res);
        res.transport = RF_TE_OTHER;
        res.retry_after_ms = -1;
        snprintf(res.error, sizeof res.error, "%s", r->add_error);
        request_finish(up, r, &res);
    }
}

static void run_due_timers(upstream *up)
{
    int64_t now = monotonic_ms();
    for (;;) {
        pthread_mutex_lock(&up->lock);
        timer *t = NULL;
        if (up->heap_len > 0 && up->heap[0]->due_ms <= now) {
            t = up->heap[0];
            heap_remove(up, t);
            t->e.where = WHERE_LOOSE;
        }
        pthread_mutex_unlock(&up->lock);
        if (!t)
            return;
        if (callback_begin(up, &t->e)) {
            t->fn(t->ud);
            callback_end(up);
        }
        entry_release(up, &t->e);
    }
}

/* ---------------------------------------------------------------------------------- */
/* The loop                                                                            */
/* ---------------------------------------------------------------------------------- */

/* Take in everything submitted since last time (lock held). */
static void admit_inbox_locked(upstream *up)
{
    entry *e = up->inbox_head;
    up->inbox_head = up->inbox_tail = NULL;
    while (e) {
        entry *next = e->next;
        e->next = NULL;
        if (e->cancelled) {
            map_remove(up, e);
            entry_free(up, e);
        } else if (e->is_timer) {
            e->where = WHERE_HEAP;
            heap_push(up, (timer *)e);
        } else {
            request *r = (request *)e;
            CURLMcode mc = curl_multi_add_handle(up->multi, r->easy);
            if (mc == CURLM_OK) {
                e->where = WHERE_MULTI;
            } else {
                snprintf(r->add_error, sizeof r->add_error, "curl_multi_add_handle: %s",
                         curl_multi_strerror(mc));
                e->where = WHERE_LOOSE;
                if (up->failed_tail)
                    up->failed_tail->next = e;
                else
                    up->failed_head = e;
                up->failed_tail = e;
            }
        }
        e = next;
    }
}

/* How long curl_multi_poll may sleep: until curl's next timeout or our next timer. */
static int next_wait_ms(upstream *up)
{
    long wait = IDLE_POLL_MS;
    long curl_wait = -1;
    if (curl_multi_timeout(up->multi, &curl_wait) == CURLM_OK && curl_wait >= 0 &&
        curl_wait < wait)
        wait = curl_wait;
    pthread_mutex_lock(&up->lock);
    if (up->heap_len > 0) {
        int64_t until = up->heap[0]->due_ms - monotonic_ms();
        if (until < wait)
            wait = until < 0 ? 0 : (long)until;
    }
    if (up->inbox_head || up->cancel_head)
        wait = 0;  /* arrived while we were busy; the wakeup may already be spent */
    pthread_mutex_unlock(&up->lock);
    return (int)wait;
}

/* Only out of memory or a curl bug makes a multi call fail.  Log a failure when it
 * starts, not on every turn of the loop. */
static void multi_result(CURLMcode *last, const char *what, CURLMcode mc)
{
    if (mc != CURLM_OK && mc != *last)
        LOG_ERROR("upstream: %s: %s", what, curl_multi_strerror(mc));
    *last = mc;
}

static void *loop_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "rfs-upstream");  /* for top -H, perf; cosmetic */
    upstream *up = arg;
    pthread_mutex_lock(&up->lock);
    up->loop_tid = pthread_self();
    up->loop_tid_set = 1;
    pthread_mutex_unlock(&up->lock);

    for (;;) {
        pthread_mutex_lock(&up->lock);
        int stop = up->stop;
        if (!stop) {
            reap_cancelled_locked(up);  /* first: admit frees cancelled inbox entries, */
            admit_inbox_locked(up);     /* which must be off the cancel queue by then */
        }
        pthread_mutex_unlock(&up->lock);
        if (stop)
            break;

        complete_failed(up);
        int running = 0;
        CURLMcode mc = curl_multi_perform(up->multi, &running);
        multi_result(&up->perform_rc, "curl_multi_perform", mc);  /* the poll below paces any retry */
        complete_transfers(up);
        run_due_timers(up);

        mc = curl_multi_poll(up->multi, NULL, 0, next_wait_ms(up), NULL);
        multi_result(&up->poll_rc, "curl_multi_poll", mc);
        if (mc != CURLM_OK) {
            struct timespec pause = { 0, 10 * 1000000L };  /* do not spin on a bad poll */
            nanosleep(&pause, NULL);
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Public API                                                                          */
/* ---------------------------------------------------------------------------------- */

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
    up->nbuckets = INITIAL_BUCKETS;
    up->buckets = calloc(up->nbuckets, sizeof *up->buckets);
    if (!up->buckets) {
        free(up);
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    int lock_ok = 0, cond_ok = 0;
    const char *what = NULL;
    CURLMcode mc = CURLM_OK;
    if (pthread_mutex_init(&up->lock, NULL) != 0) {
        what = "pthread_mutex_init";
        goto fail;
    }
    lock_ok = 1;
    if (pthread_cond_init(&up->callback_done, NULL) != 0) {
        what = "pthread_cond_init";
        goto fail;
    }
    cond_ok = 1;
    up->multi = curl_multi_init();
    if (!up->multi) {
        what = "curl_multi_init";
        goto fail;
    }
    /* connection reuse: unlimited per host, a generous cache of idle ones */
    if ((mc = curl_multi_setopt(up->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L)) != CURLM_OK ||
        (mc = curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, (long)MAX_CONNECTS)) != CURLM_OK) {
        what = "curl_multi_setopt";
        goto fail;
    }
    if (pthread_create(&up->thread, NULL, loop_main, up) != 0) {
        what = "pthread_create";
        goto fail;
    }
    return up;

fail:
    if (mc != CURLM_OK)
        rf_err_set(err, EIO, "%s: %s", what, curl_multi_strerror(mc));
    else
        rf_err_set(err, EIO, "%s failed", what);
    if (up->multi)
        curl_multi_cleanup(up->multi);
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
    pthread_mutex_lock(&up->lock);
    up->stop = 1;
    pthread_mutex_unlock(&up->lock);
    wake_loop(up);
    if (pthread_join(up->thread, NULL) != 0)
        return;  /* called from the loop thread itself: cannot free under its feet */

    /* The loop is gone: free every entry, wherever it is, without callbacks. */
    for (size_t i = 0; i < up->nbuckets; i++) {
        entry *e = up->buckets[i];
        while (e) {
            entry *next = e->hnext;
            if (e->where == WHERE_MULTI)
                multi_detach(up, ((request *)e)->easy);
            entry_free(up, e);
            e = next;
        }
    }
    CURLMcode mc = curl_multi_cleanup(up->multi);
    if (mc != CURLM_OK)
        LOG_WARN("upstream: curl_multi_cleanup: %s", curl_multi_strerror(mc));
    pthread_cond_destroy(&up->callback_done);
    pthread_mutex_destroy(&up->lock);
    free(up->buckets);
    free(up->heap);
    free(up);
}

/* Queue e in the inbox and wake the loop if it may be asleep (lock not held). */
static long enqueue(upstream *up, entry *e, int is_timer, rf_err *err)
{
    pthread_mutex_lock(&up->lock);
    if (up->stop) {
        pthread_mutex_unlock(&up->lock);
        return rf_err_set(err, ECANCELED, "upstream is stopping");
    }
    if (is_timer && up->timers_live + 1 > up->heap_cap) {
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
    if (is_timer)
        up->timers_live++;
    int was_empty = up->inbox_head == NULL;  /* else a wakeup is already pending */
    if (up->inbox_tail)
        up->inbox_tail->next = e;
    else
        up->inbox_head = e;
    up->inbox_tail = e;
    long id = e->id;
    pthread_mutex_unlock(&up->lock);
    if (was_empty)
        wake_loop(up);
    return id;
}

/* Set one option, failing the surrounding function with a message naming it. */
#define SETOPT(easy, opt, val)                                                           \
    do {                                                                                 \
        CURLcode rc_ = curl_easy_setopt((easy), (opt), (val));                           \
        if (rc_ != CURLE_OK) {                                                           \
            rf_err_set(err, EIO, "curl_easy_setopt(%s): %s", #opt, curl_easy_strerror(rc_)); \
            return -1;                                                                   \
        }                                                                                \
    } while (0)

/* Append a header; the list owns a copy.  -1 with err on failure. */
static int add_header(request *r, const char *line, rf_err *err)
{
    struct curl_slist *h = curl_slist_append(r->headers, line);
    if (!h)
        return rf_err_set(err, ENOMEM, "out of memory");
    r->headers = h;
    return 0;
}

/* Build the header list, taking and wiping the key.  -1 with err on failure. */
static int build_headers(request *r, upstream_request *req, rf_err *err)
{
    if (r->body && add_header(r, "Content-Type: application/json", err) < 0)
        return -1;
    /* identity only: we do not decode, and a compressed body is then simply not JSON */
    if (add_header(r, "Accept-Encoding: identity", err) < 0 ||
        add_header(r, "Expect:", err) < 0)  /* no 100-continue round trip on big bodies */
        return -1;
    for (size_t i = 0; i < sizeof req->extra_headers / sizeof req->extra_headers[0]; i++) {
        if (!req->extra_headers[i])
            break;
        if (add_header(r, req->extra_headers[i], err) < 0)
            return -1;
    }
    if (req->api_key && req->api_key[0]) {
        for (const char *c = req->api_key; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)  /* would split the header */
                return rf_err_set(err, EINVAL, "the API key contains a control character");
        size_t n = sizeof AUTH_PREFIX + strlen(req->api_key);
        char *line = malloc(n);
        if (!line)
            return rf_err_set(err, ENOMEM, "out of memory");
        snprintf(line, n, "%s%s", AUTH_PREFIX, req->api_key);
        int rc = add_header(r, line, err);
        explicit_bzero(line, n);
        free(line);
        if (rc < 0)
            return -1;
        struct curl_slist *last = r->headers;
        while (last->next)
            last = last->next;
        r->key = last->data + strlen(AUTH_PREFIX);
    }
    return 0;
}

static int setup_easy(request *r, long timeout_ms, rf_err *err)
{
    CURL *easy = r->easy;
    long connect_ms = timeout_ms > 0 && timeout_ms < CONNECT_TIMEOUT_MAX_MS
                    ? timeout_ms : CONNECT_TIMEOUT_MAX_MS;
    SETOPT(easy, CURLOPT_URL, r->url);
    SETOPT(easy, CURLOPT_PRIVATE, (void *)r);
    SETOPT(easy, CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");  /* no file://, no smtp:// */
#else
    SETOPT(easy, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);  /* a redirect is the provider's failure */
    SETOPT(easy, CURLOPT_ACCEPT_ENCODING, (char *)NULL);  /* never decode */
    SETOPT(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(easy, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0L);
    SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SETOPT(easy, CURLOPT_USERAGENT, "routefs");
    SETOPT(easy, CURLOPT_HTTPHEADER, r->headers);
    SETOPT(easy, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(easy, CURLOPT_WRITEDATA, (void *)r);
    SETOPT(easy, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(easy, CURLOPT_HEADERDATA, (void *)r);
    if (r->max_response > 0 && r->max_response <= (size_t)INT64_MAX)
        SETOPT(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_response);
    if (r->body) {
        SETOPT(easy, CURLOPT_POST, 1L);
        SETOPT(easy, CURLOPT_POSTFIELDS, r->body);
        SETOPT(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body));
    } else {
        SETOPT(easy, CURLOPT_HTTPGET, 1L);
    }
    return 0;
}

/* Free what a request struct owns (the key wiped) and the struct itself. */
static void upstream_request_free(upstream_request *req)
{
    if (!req)
        return;
    free(req->url);
    free(req->body);
    free_secret(req->api_key);
    for (size_t i = 0; i < sizeof req->extra_headers / sizeof req->extra_headers[0]; i++) {
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
    r->url = req->url;
    r->body = req->body;
    req->url = req->body = NULL;
    r->max_response = req->max_response;
    r->done = done;
    r->ud = ud;
    r->retry_after_ms = -1;
    r->submitted_ms = monotonic_ms();

    int ok = build_headers(r, req, err) == 0;
    long timeout_ms = req->timeout_ms;
    upstream_request_free(req);  /* the key is wiped here; only the header copy remains */
    if (ok && !(r->easy = curl_easy_init())) {
        rf_err_set(err, ENOMEM, "curl_easy_init failed");
        ok = 0;
    }
    if (ok)
        ok = setup_easy(r, timeout_ms, err) == 0;
    if (!ok) {
        request_free(up, r);
        return -1;
    }
    long id = enqueue(up, &r->e, 0, err);
    if (id < 0)
        request_free(up, r);
    return id;
}

long upstream_after(upstream *up, long delay_ms, upstream_timer_fn fn, void *ud, rf_err *err)
{
    if (!up || !fn)
        return rf_err_set(err, EINVAL, "upstream_after: no timer function");
    timer *t = calloc(1, sizeof *t);
    if (!t)
        return rf_err_set(err, ENOMEM, "out of memory");
    t->e.is_timer = 1;
    t->fn = fn;
    t->ud = ud;
    t->due_ms = monotonic_ms() + (delay_ms > 0 ? delay_ms : 0);
    long id = enqueue(up, &t->e, 1, err);
    if (id < 0)
        free(t);
    return id;
}

static void cancel_entry(upstream *up, long id, int is_timer)
{
    if (!up || id <= 0)
        return;
    int wake = 0;
    pthread_mutex_lock(&up->lock);
    entry *e = map_find(up, id);
    if (e && e->is_timer == is_timer && !e->cancelled) {
        e->cancelled = 1;
        if (!e->queued_cancel) {
            wake = up->cancel_head == NULL;
            e->queued_cancel = 1;
            e->cnext = up->cancel_head;
            up->cancel_head = e;
        }
    }
    int on_loop = up->loop_tid_set && pthread_equal(up->loop_tid, pthread_self());
    while (!on_loop && up->running_id == id)
        pthread_cond_wait(&up->callback_done, &up->lock);
    pthread_mutex_unlock(&up->lock);
    if (wake && !on_loop)
        wake_loop(up);  /* so the loop drops the transfer or timer promptly */
}

void upstream_cancel(upstream *up, long id)
{
    cancel_entry(up, id, 0);
}

void upstream_cancel_timer(upstream *up, long id)
{
    cancel_entry(up, id, 1);
}

size_t upstream_in_flight(upstream *up)
{
    return up ? atomic_load(&up->in_flight) : 0;
}

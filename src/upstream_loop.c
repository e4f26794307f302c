/* upstream_loop.c — the upstream loop thread: curl_multi_socket_action driven by epoll.
 *
 * Each turn: take in what other threads queued (requests into the multi handle, timers
 * into the heap, posts into the post queue) and drop what they cancelled; run posts, due
 * timers and due request deadlines; give curl its timeout if it is due; then sleep in
 * epoll_wait until a socket curl asked for is ready, the wake eventfd is written, or the
 * next deadline; hand the ready sockets, and only those, to curl; complete what finished.
 *
 * curl says which sockets to watch for what (on_curl_socket: epoll_ctl) and when it next
 * needs calling (on_curl_timer: curl_due_us).  Callbacks of ours that run inside curl
 * (upstream_xfer.c) never call back into the multi handle; handles are added and removed
 * only here, between curl calls.
 *
 * Deadlines.  A request's first-token, stall and whole-attempt limits make one deadline,
 * the earliest that applies now (request_deadline).  The deadline heap is keyed on a value
 * no later than that deadline.  Progress moves a deadline later, except the first progress
 * (a stall limit may be shorter than what is left of the first-token one), so a key is
 * brought forward at once and pushed back lazily, when it comes up: a busy stream costs no
 * heap work per chunk. */
#include "upstream_int.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS    256
#define IDLE_WAIT_MS  1000    /* nothing is lost without it; a backstop against our bugs */

/* Only a bug or no memory makes a multi call fail: log when failing starts, not per turn. */
static void note_mc(upstream *up, const char *what, CURLMcode mc)
{
    if (mc != CURLM_OK && mc != up->last_mc)
        LOG_ERROR("upstream: %s: %s", what, curl_multi_strerror(mc));
    up->last_mc = mc;
}

/* ---------------------------------------------------------------------------------- */
/* Waking the loop; running callbacks                                                  */
/* ---------------------------------------------------------------------------------- */

void loop_wake(upstream *up)
{
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(up->wakefd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter is full, so a wake-up is pending anyway */
}

static void drain_wake(upstream *up)
{
    uint64_t v;
    while (read(up->wakefd, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

int callback_begin(upstream *up, entry *e)
{
    pthread_mutex_lock(&up->lock);
    int run = !e->cancelled && !up->stop;
    if (run)
        up->running_id = e->id;
    pthread_mutex_unlock(&up->lock);
    return run;
}

void callback_end(upstream *up)
{
    pthread_mutex_lock(&up->lock);
    up->running_id = 0;
    pthread_cond_broadcast(&up->callback_done);
    pthread_mutex_unlock(&up->lock);
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
/* The deadline heap (loop thread)                                                     */
/* ---------------------------------------------------------------------------------- */

static int dl_before(const request *a, const request *b)
{
    return a->dl_key < b->dl_key || (a->dl_key == b->dl_key && a->e.id < b->e.id);
}

static void dl_place(upstream *up, size_t i, request *r)
{
    up->dl[i] = r;
    r->dl_idx = i;
}

static void dl_sift_up(upstream *up, size_t i)
{
    request *r = up->dl[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!dl_before(r, up->dl[parent]))
            break;
        dl_place(up, i, up->dl[parent]);
        i = parent;
    }
    dl_place(up, i, r);
}

static void dl_sift_down(upstream *up, size_t i)
{
    request *r = up->dl[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= up->dl_len)
            break;
        if (child + 1 < up->dl_len && dl_before(up->dl[child + 1], up->dl[child]))
            child++;
        if (!dl_before(up->dl[child], r))
            break;
        dl_place(up, i, up->dl[child]);
        i = child;
    }
    dl_place(up, i, r);
}

static void dl_remove(upstream *up, request *r)
{
    size_t i = r->dl_idx;
    if (i == SIZE_MAX)
        return;
    r->dl_idx = SIZE_MAX;
    request *last = up->dl[--up->dl_len];
    if (i == up->dl_len)
        return;
    dl_place(up, i, last);
    if (i > 0 && dl_before(last, up->dl[(i - 1) / 2]))
        dl_sift_up(up, i);
    else
        dl_sift_down(up, i);
}

int64_t request_deadline(const request *r)
{
    int64_t d = r->whole_due;
    if (!r->progressed) {
        if (r->first_token_ms > 0 && r->submitted_ms + r->first_token_ms < d)
            d = r->submitted_ms + r->first_token_ms;
    } else if (r->stall_ms > 0 && r->last_progress_ms + r->stall_ms < d) {
        d = r->last_progress_ms + r->stall_ms;
    }
    return d;
}

void deadline_update(upstream *up, request *r)
{
    int64_t d = request_deadline(r);
    if (d == NO_DEADLINE || !r->dl_reserved)
        return;  /* a stale key, if any, is dealt with when it comes up */
    if (r->dl_idx == SIZE_MAX) {
        r->dl_key = d;
        dl_place(up, up->dl_len++, r);  /* capacity reserved when it was taken in */
        dl_sift_up(up, r->dl_idx);
    } else if (d < r->dl_key) {
        r->dl_key = d;
        dl_sift_up(up, r->dl_idx);
    }
}

/* ---------------------------------------------------------------------------------- */
/* curl's socket and timer callbacks                                                   */
/* ---------------------------------------------------------------------------------- */

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    upstream *up = userp;
    if (what == CURL_POLL_REMOVE) {
        /* ENOENT/EBADF: curl closed it first, and a closed fd leaves epoll by itself */
        (void)epoll_ctl(up->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    ev.data.fd = s;
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(up->epfd, op, s, &ev);
    if (rc < 0 && (errno == ENOENT || errno == EEXIST))  /* our idea of it was stale */
        rc = epoll_ctl(up->epfd, op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s, &ev);
    if (rc < 0) {
        /* Not -1: that would mark the whole multi handle dead.  The transfer on this
         * socket hears nothing more and ends at its deadline. */
        LOG_ERROR("upstream: epoll_ctl(%d): %s", (int)s, strerror(errno));
        return 0;
    }
    if (!socketp)
        curl_multi_assign(up->multi, s, up);  /* any non-NULL: "registered" */
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    upstream *up = userp;
    up->curl_due_us = timeout_ms < 0 ? INT64_MAX : now_mono_us() + (int64_t)timeout_ms * 1000;
    return 0;
}

static void drive_curl(upstream *up, curl_socket_t s, int flags)
{
    int running = 0;
    note_mc(up, "curl_multi_socket_action", curl_multi_socket_action(up->multi, s, flags,
                                                                      &running));
}

static void drive_curl_timeout(upstream *up)
{
    if (up->curl_due_us == INT64_MAX || now_mono_us() < up->curl_due_us)
        return;
    up->curl_due_us = INT64_MAX;  /* on_curl_timer sets it again if curl wants */
    drive_curl(up, CURL_SOCKET_TIMEOUT, 0);
    /* curl does not repeat a timeout it already told us of: if that one is still
     * pending, ask for it */
    long ms = -1;
    if (up->curl_due_us == INT64_MAX && curl_multi_timeout(up->multi, &ms) == CURLM_OK &&
        ms >= 0)
        up->curl_due_us = now_mono_us() + (int64_t)ms * 1000;
}

/* ---------------------------------------------------------------------------------- */
/* Entries leaving                                                                     */
/* ---------------------------------------------------------------------------------- */

/* Take a request out of the multi handle and the deadline heap; it is the caller's. */
static void request_detach(upstream *up, request *r)
{
    CURLMcode mc = curl_multi_remove_handle(up->multi, r->easy);
    if (mc != CURLM_OK)  /* a handle not in the multi: our bug; it is freed anyway */
        LOG_ERROR("upstream: curl_multi_remove_handle: %s", curl_multi_strerror(mc));
    dl_remove(up, r);
    if (r->dl_reserved) {
        r->dl_reserved = 0;
        up->dl_reserved--;
    }
    r->e.where = WHERE_LOOSE;
}

/* Drop what was cancelled and is parked in the multi handle or the heap.  Entries in the
 * inbox, the post queue or loose are left to their holder, which sees the flag. */
static void reap_cancelled_locked(upstream *up)
{
    while (up->cancel_head) {
        entry *e = up->cancel_head;
        up->cancel_head = e->cnext;
        e->queued_cancel = 0;
        if (e->where == WHERE_MULTI)
            request_detach(up, (request *)e);  /* closes its connection mid-response */
        else if (e->where == WHERE_HEAP)
            heap_remove(up, (timer *)e);
        else
            continue;
        upstream_map_remove(up, e);
        entry_free(up, e);
    }
}

/* Free an entry the loop holds loose, after its callback ran or was skipped. */
static void entry_release(upstream *up, entry *e)
{
    pthread_mutex_lock(&up->lock);
    reap_cancelled_locked(up);  /* unlinks e from the cancel queue if it is there */
    upstream_map_remove(up, e);
    pthread_mutex_unlock(&up->lock);
    entry_free(up, e);
}

/* Run the callback of a request out of the multi handle (unless cancelled), free it. */
static void request_finish(upstream *up, request *r, CURLcode code)
{
    upstream_result res;
    xfer_flush_held(r);
    xfer_finish(r, code, &res);
    res.latency_ms = (long)(now_mono_ms() - r->submitted_ms);
    if (r->done && callback_begin(up, &r->e)) {
        r->done(&res, r->ud);
        callback_end(up);
    }
    free(res.body);  /* unless the callback took it */
    entry_release(up, &r->e);
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
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv) {
            (void)curl_multi_remove_handle(up->multi, easy);  /* not ours: cannot happen */
            continue;
        }
        request *r = (request *)priv;
        request_detach(up, r);
        request_finish(up, r, code);
    }
}

/* Requests the loop could not take in: report them as transport failures. */
static void complete_failed(upstream *up)
{
    while (up->failed_head) {
        request *r = (request *)up->failed_head;
        up->failed_head = r->e.next;
        if (!up->failed_head)
            up->failed_tail = NULL;
        request_finish(up, r, CURLE_OK);  /* r->fail says why */
    }
}

/* End every request whose first-token, stall or whole-attempt limit has passed. */
static void fire_deadlines(upstream *up)
{
    int64_t now = now_mono_ms();
    while (up->dl_len > 0 && up->dl[0]->dl_key <= now) {
        request *r = up->dl[0];
        int64_t d = request_deadline(r);
        if (d > now) {  /* a stale key: progress moved it on */
            r->dl_key = d;
            dl_sift_down(up, 0);
            continue;
        }
        int64_t first = !r->progressed && r->first_token_ms > 0
                      ? r->submitted_ms + r->first_token_ms : NO_DEADLINE;
        int64_t stall = r->progressed && r->stall_ms > 0
                      ? r->last_progress_ms + r->stall_ms : NO_DEADLINE;
        if (first <= now && first <= r->whole_due) {
            r->fail = RF_TE_FIRST_TOKEN;
            snprintf(r->fail_text, sizeof r->fail_text, "no first token within %ld ms%s",
                     r->first_token_ms, r->got_response ? "" : " (no response yet)");
        } else if (stall <= now && stall <= r->whole_due) {
            r->fail = RF_TE_STALL;
            snprintf(r->fail_text, sizeof r->fail_text, "stalled: no %s for %ld ms",
                     r->last_byte_ms > r->last_progress_ms ? "new token" : "data",
                     r->stall_ms);
        } else {
            r->fail = RF_TE_TIMEOUT;
            snprintf(r->fail_text, sizeof r->fail_text,
                     "timed out: no complete answer within %ld ms", r->timeout_ms);
        }
        request_detach(up, r);
        request_finish(up, r, CURLE_OK);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Timers and posts                                                                    */
/* ---------------------------------------------------------------------------------- */

static void run_timer(upstream *up, timer *t)
{
    if (callback_begin(up, &t->e)) {
        t->fn(t->ud);
        callback_end(up);
    }
    entry_release(up, &t->e);
}

/* The posts queued before this turn, in order; those they post wait for the next turn. */
static void run_posts(upstream *up)
{
    entry *e = up->posts_head;
    up->posts_head = up->posts_tail = NULL;
    for (entry *p = e; p; p = p->next)
        p->where = WHERE_LOOSE;
    while (e) {
        entry *next = e->next;
        run_timer(up, (timer *)e);
        e = next;
    }
}

static void run_due_timers(upstream *up)
{
    int64_t now = now_mono_ms();
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
        run_timer(up, t);
    }
}

/* ---------------------------------------------------------------------------------- */
/* The loop                                                                            */
/* ---------------------------------------------------------------------------------- */

static void fail_admission(upstream *up, request *r, const char *why)
{
    r->fail = RF_TE_OTHER;
    snprintf(r->fail_text, sizeof r->fail_text, "%s", why);
    r->e.where = WHERE_LOOSE;
    r->e.next = NULL;
    if (up->failed_tail)
        up->failed_tail->next = &r->e;
    else
        up->failed_head = &r->e;
    up->failed_tail = &r->e;
}

static void admit_request(upstream *up, request *r)
{
    if (up->dl_reserved + 1 > up->dl_cap) {  /* so deadline_update never needs memory */
        size_t cap = up->dl_cap ? up->dl_cap * 2 : 64;
        request **dl = realloc(up->dl, cap * sizeof *dl);
        if (!dl) {
            fail_admission(up, r, "out of memory");
            return;
        }
        up->dl = dl;
        up->dl_cap = cap;
    }
    CURLMcode mc = curl_multi_add_handle(up->multi, r->easy);
    if (mc != CURLM_OK) {
        char why[128];
        snprintf(why, sizeof why, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        fail_admission(up, r, why);
        return;
    }
    r->e.where = WHERE_MULTI;
    r->dl_reserved = 1;
    up->dl_reserved++;
    deadline_update(up, r);
}

/* Take in everything submitted since last time (lock held). */
static void admit_inbox_locked(upstream *up)
{
    entry *e = up->inbox_head;
    up->inbox_head = up->inbox_tail = NULL;
    while (e) {
        entry *next = e->next;
        e->next = NULL;
        if (e->cancelled) {
            upstream_map_remove(up, e);
            entry_free(up, e);
        } else if (e->kind == KIND_TIMER) {
            e->where = WHERE_HEAP;
            heap_push(up, (timer *)e);
        } else if (e->kind == KIND_POST) {
            e->where = WHERE_POSTS;
            if (up->posts_tail)
                up->posts_tail->next = e;
            else
                up->posts_head = e;
            up->posts_tail = e;
        } else {
            admit_request(up, (request *)e);
        }
        e = next;
    }
}

static int clamp_wait(int64_t wait, int64_t until)
{
    return (int)(until < wait ? (until < 0 ? 0 : until) : wait);
}

/* How long epoll_wait may sleep: until the first of curl's timeout, our next timer and
 * our next deadline; not at all when work is already waiting. */
static int next_wait_ms(upstream *up)
{
    int64_t wait = IDLE_WAIT_MS;
    if (up->curl_due_us != INT64_MAX)  /* rounded up: never wake before curl is due */
        wait = clamp_wait(wait, (up->curl_due_us - now_mono_us() + 999) / 1000);
    int64_t now = now_mono_ms();
    if (up->dl_len > 0)
        wait = clamp_wait(wait, up->dl[0]->dl_key - now);
    if (up->posts_head || up->failed_head)
        wait = 0;
    pthread_mutex_lock(&up->lock);
    if (up->heap_len > 0)
        wait = clamp_wait(wait, up->heap[0]->due_ms - now);
    if (up->inbox_head || up->cancel_head)
        wait = 0;  /* arrived while we were busy */
    pthread_mutex_unlock(&up->lock);
    return (int)wait;
}

static void wait_and_dispatch(upstream *up)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(up->epfd, evs, MAX_EVENTS, next_wait_ms(up));
    if (n < 0) {
        if (errno != EINTR && errno != up->last_errno)
            LOG_ERROR("upstream: epoll_wait: %s", strerror(errno));
        up->last_errno = errno;
        if (errno != EINTR) {
            struct timespec pause = { 0, 10 * 1000000L };  /* do not spin on a bad epoll */
            nanosleep(&pause, NULL);
        }
        return;
    }
    up->last_errno = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == up->wakefd) {
            drain_wake(up);
            continue;
        }
        uint32_t ev = evs[i].events;
        int flags = (ev & EPOLLIN ? CURL_CSELECT_IN : 0) |
                    (ev & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                    (ev & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        drive_curl(up, evs[i].data.fd, flags);
    }
    complete_transfers(up);
}

void *loop_main(void *arg)
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
        run_posts(up);
        run_due_timers(up);
        fire_deadlines(up);
        drive_curl_timeout(up);
        complete_transfers(up);
        wait_and_dispatch(up);
    }
    return NULL;
}

int loop_init(upstream *up, rf_err *err)
{
    up->curl_due_us = INT64_MAX;
    up->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (up->epfd < 0)
        return rf_err_set(err, errno, "epoll_create1: %s", strerror(errno));
    up->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (up->wakefd < 0) {
        int e = errno;
        close(up->epfd);
        up->epfd = -1;
        return rf_err_set(err, e, "eventfd: %s", strerror(e));
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = up->wakefd;
    CURLMcode mc = CURLM_OK;
    if (epoll_ctl(up->epfd, EPOLL_CTL_ADD, up->wakefd, &ev) < 0) {
        rf_err_set(err, errno, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    if ((mc = curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket)) ||
        (mc = curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, (void *)up)) ||
        (mc = curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer)) ||
        (mc = curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, (void *)up))) {
        rf_err_set(err, EIO, "curl_multi_setopt: %s", curl_multi_strerror(mc));
        goto fail;
    }
    return 0;
fail:
    close(up->wakefd);
    close(up->epfd);
    up->wakefd = up->epfd = -1;
    return -1;
}

void loop_cleanup(upstream *up)
{
    if (up->wakefd >= 0)
        close(up->wakefd);
    if (up->epfd >= 0)
        close(up->epfd);
    up->wakefd = up->epfd = -1;
    free(up->dl);
    up->dl = NULL;
    up->dl_len = up->dl_cap = 0;
}

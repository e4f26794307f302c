/* events.c — see events.h.
 *
 * A parked read follows the same two-step protocol as readers of NAME.out (jobs_wait.c):
 * ARMING while fuse's interrupt callback is being registered (a job ending then only
 * marks it ready), ARMED after, when a publish or an interrupt may answer it, once.
 * Replies are sent with the lock released. */
#include "events.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READER_KEEP (64 * 1024)   /* bytes of its stream a reader can seek back into */

enum { W_NONE, W_ARMING, W_ARMED };

struct events_reader {
    events_reader *prev, *next;
    uint64_t seq;                 /* the next event to append */
    char *buf;                    /* its stream's bytes [base, base + len) (owned) */
    size_t len, cap;
    int64_t base;
    int nonblock;
    int wstate;                   /* W_*: a parked read */
    int ready, interrupted;       /* while ARMING: what happened meanwhile */
    fuse_req_t req;
    off_t off;
    size_t size;
};

static struct {
    pthread_mutex_t lock;
    char *lines[EVENTS_KEEP];     /* ring, by seq % EVENTS_KEEP (owned) */
    size_t lens[EVENTS_KEEP];
    uint64_t next_seq;
    events_reader *readers;
    int stopping;
} E = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Append what the reader has not seen yet to its stream (lock held). */
static void fill(events_reader *r)
{
    uint64_t oldest = E.next_seq > EVENTS_KEEP ? E.next_seq - EVENTS_KEEP : 0;
    char lost[64];
    size_t lost_len = 0;
    if (r->seq < oldest) {
        lost_len = (size_t)snprintf(lost, sizeof lost, "{\"lost\":%llu}\n",
                                    (unsigned long long)(oldest - r->seq));
        r->seq = oldest;
    }
    size_t need = r->len + lost_len;
    for (uint64_t s = r->seq; s < E.next_seq; s++)
        need += E.lens[s % EVENTS_KEEP] + 1;
    if (need > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < need)
            cap *= 2;
        char *b = realloc(r->buf, cap);
        if (!b)
            return;   /* the reader gets these next time */
        r->buf = b;
        r->cap = cap;
    }
    if (lost_len) {   /* (r->buf is still NULL for a reader that has had nothing yet) */
        memcpy(r->buf + r->len, lost, lost_len);
        r->len += lost_len;
    }
    for (; r->seq < E.next_seq; r->seq++) {
        size_t i = r->seq % EVENTS_KEEP;
        memcpy(r->buf + r->len, E.lines[i], E.lens[i]);
        r->len += E.lens[i];
        r->buf[r->len++] = '\n';
    }
    if (r->len > READER_KEEP) {   /* keep the tail: a reader only seeks back a little */
        size_t drop = r->len - READER_KEEP;
        memmove(r->buf, r->buf + drop, r->len - drop);
        r->len -= drop;
        r->base += (int64_t)drop;
    }
}

/* The bytes a read at off of size can have now, copied (lock held): NULL when none. */
static char *take(events_reader *r, off_t off, size_t size, size_t *n)
{
    fill(r);
    int64_t o = off < r->base ? r->base : off;
    *n = 0;
    if (o >= r->base + (int64_t)r->len || size == 0)
        return NULL;
    size_t from = (size_t)(o - r->base), avail = r->len - from;
    *n = avail < size ? avail : size;
    char *copy = malloc(*n);
    if (copy)
        memcpy(copy, r->buf + from, *n);
    else
        *n = 0;
    return copy;
}

void events_publish(const char *line, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, line, len);
    /* replies to send once the lock is released */
    struct pending { fuse_req_t req; char *data; size_t n; } *pend = NULL;
    size_t npend = 0, cap = 0;
    pthread_mutex_lock(&E.lock);
    size_t i = E.next_seq % EVENTS_KEEP;
    free(E.lines[i]);
    E.lines[i] = copy;
    E.lens[i] = len;
    E.next_seq++;
    for (events_reader *r = E.readers; r; r = r->next) {
        if (r->wstate == W_ARMING) {
            r->ready = 1;
        } else if (r->wstate == W_ARMED) {
            size_t n = 0;
            char *data = take(r, r->off, r->size, &n);
            if (!data)
                continue;
            if (npend == cap) {
                size_t nc = cap ? cap * 2 : 8;
                void *p = realloc(pend, nc * sizeof *pend);
                if (!p) {
                    free(data);
                    continue;   /* it is answered by the next publish */
                }
                pend = p;
                cap = nc;
            }
            pend[npend++] = (struct pending){r->req, data, n};
            r->wstate = W_NONE;
        }
    }
    pthread_mutex_unlock(&E.lock);
    for (size_t k = 0; k < npend; k++) {
        fuse_reply_buf(pend[k].req, pend[k].data, pend[k].n);
        free(pend[k].data);
    }
    free(pend);
}

events_reader *events_open(int nonblock)
{
    events_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->nonblock = nonblock;
    pthread_mutex_lock(&E.lock);
    r->seq = E.next_seq;   /* from now on */
    r->next = E.readers;
    if (E.readers)
        E.readers->prev = r;
    E.readers = r;
    pthread_mutex_unlock(&E.lock);
    return r;
}

static void on_interrupt(fuse_req_t req, void *data)
{
    events_reader *r = data;
    int answer = 0;
    pthread_mutex_lock(&E.lock);
    if (r->wstate == W_ARMING && r->req == req) {
        r->interrupted = 1;   /* the reader answers when it has armed */
    } else if (r->wstate == W_ARMED && r->req == req) {
        r->wstate = W_NONE;
        answer = 1;
    }
    pthread_mutex_unlock(&E.lock);
    if (answer)
        fuse_reply_err(req, EINTR);
}

void events_read(fuse_req_t req, events_reader *r, size_t size, off_t off)
{
    size_t n = 0;
    pthread_mutex_lock(&E.lock);
    char *data = take(r, off, size, &n);
    if (data || E.stopping || r->nonblock || r->wstate != W_NONE) {
        int stopping = E.stopping;
        pthread_mutex_unlock(&E.lock);
        if (data)
            fuse_reply_buf(req, data, n);
        else
            fuse_reply_err(req, stopping ? EINTR : EAGAIN);
        free(data);
        return;
    }
    r->wstate = W_ARMING;
    r->ready = r->interrupted = 0;
    r->req = req;
    r->off = off;
    r->size = size;
    pthread_mutex_unlock(&E.lock);
    fuse_req_interrupt_func(req, on_interrupt, r);
    pthread_mutex_lock(&E.lock);
    if (r->interrupted || E.stopping) {
        r->wstate = W_NONE;
        pthread_mutex_unlock(&E.lock);
        fuse_reply_err(req, EINTR);
        return;
    }
    data = r->ready ? take(r, off, size, &n) : NULL;
    if (data) {
        r->wstate = W_NONE;
        pthread_mutex_unlock(&E.lock);
        fuse_reply_buf(req, data, n);
        free(data);
        return;
    }
    r->wstate = W_ARMED;   /* answered by a publish, an interrupt or the shutdown */
    pthread_mutex_unlock(&E.lock);
}

void events_close(events_reader *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&E.lock);
    if (r->prev)
        r->prev->next = r->next;
    else
        E.readers = r->next;
    if (r->next)
        r->next->prev = r->prev;
    pthread_mutex_unlock(&E.lock);
    free(r->buf);
    free(r);
}

void events_shutdown(void)
{
    fuse_req_t reqs[256];
    size_t n;
    do {
        n = 0;
        pthread_mutex_lock(&E.lock);
        E.stopping = 1;
        for (events_reader *r = E.readers; r && n < 256; r = r->next)
            if (r->wstate == W_ARMED) {
                r->wstate = W_NONE;
                reqs[n++] = r->req;
            }
        pthread_mutex_unlock(&E.lock);
        for (size_t k = 0; k < n; k++)
            fuse_reply_err(reqs[k], EINTR);
    } while (n == 256);
    pthread_mutex_lock(&E.lock);
    for (size_t i = 0; i < EVENTS_KEEP; i++) {
        free(E.lines[i]);
        E.lines[i] = NULL;
    }
    pthread_mutex_unlock(&E.lock);
}

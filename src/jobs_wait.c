/* jobs_wait.c — readers waiting for an unfinished NAME.out (part of the jobs module).
 *
 * A reader is a parked fuse_req_t, not a thread.  The protocol with fs.c (it must register
 * fuse's interrupt callback between begin and arm, and either side may end the wait):
 *   ARMING       jobs_wait_begin registered it; fs.c is installing the interrupt callback.
 *   ARMED        jobs_wait_arm: the job's end will answer it (waiters_collect + deliver).
 *   ENDED        the job ended while ARMING: jobs_wait_arm tells fs.c to read now.
 *   INTERRUPTED  Ctrl-C while ARMING: jobs_wait_arm tells fs.c to answer EINTR.
 * Every waiter is on one list too, so an interrupt (which knows only the request) finds
 * it.  All under the jobs lock. */
#include "jobs_int.h"

#include <stdlib.h>
#include <string.h>

enum waiter_state { WAITER_ARMING, WAITER_ARMED, WAITER_ENDED, WAITER_INTERRUPTED };

struct waiter {
    void *req;
    off_t off;
    size_t size;
    enum waiter_state state;
    job *job;               /* NULL once detached (the job ended) */
    char *key;              /* owned copy, for the wake callback */
    int64_t gen;            /* detached, unanswered for lack of memory: the result */
    waiter *next_in_job;
    waiter *prev_all, *next_all;
};

struct pending_wake {
    waiter *w;
    int64_t gen;            /* the result to answer with; 0 = none */
    pending_wake *next;
};

static waiter *all_waiters;

static void unlink_all(waiter *w)
{
    if (w->prev_all)
        w->prev_all->next_all = w->next_all;
    else
        all_waiters = w->next_all;
    if (w->next_all)
        w->next_all->prev_all = w->prev_all;
    w->prev_all = w->next_all = NULL;
}

static void unlink_job(waiter *w)
{
    if (!w->job)
        return;
    waiter **pp = &w->job->waiters;
    while (*pp && *pp != w)
        pp = &(*pp)->next_in_job;
    if (*pp)
        *pp = w->next_in_job;
    w->job = NULL;
}

static void waiter_free(waiter *w)
{
    free(w->key);
    free(w);
}

/* A waiter whose job ended: armed ones are answered; arming ones read for themselves. */
static void detach(waiter *w, int64_t gen, pending_wake **wakes)
{
    w->job = NULL;
    w->next_in_job = NULL;
    if (w->state != WAITER_ARMED) {
        w->state = WAITER_ENDED;
        return;
    }
    pending_wake *pw = malloc(sizeof *pw);
    if (!pw) {
        /* Cannot queue the answer now: it stays ARMED with no job, and the watchdog's
         * waiters_sweep answers it.  A reader never hangs on a finished job. */
        w->gen = gen;
        return;
    }
    unlink_all(w);
    pw->w = w;
    pw->gen = gen;
    pw->next = *wakes;
    *wakes = pw;
}

void waiters_collect(job *j, int64_t gen, pending_wake **wakes)
{
    waiter *w = j->waiters;
    j->waiters = NULL;
    while (w) {
        waiter *next = w->next_in_job;
        detach(w, gen, wakes);
        w = next;
    }
}

void waiters_sweep(pending_wake **wakes)
{
    for (waiter *w = all_waiters, *next; w; w = next) {
        next = w->next_all;
        if (w->state == WAITER_ARMED && !w->job)
            detach(w, w->gen, wakes);
    }
}

void waiters_collect_all(pending_wake **wakes)
{
    waiter *w = all_waiters;
    while (w) {
        waiter *next = w->next_all;
        if (w->state == WAITER_ARMED || w->state == WAITER_ENDED) {
            unlink_job(w);
            w->state = WAITER_ARMED;
            detach(w, 0, wakes);
        } else {
            unlink_job(w);
            w->state = WAITER_ENDED;
        }
        w = next;
    }
}

void waiters_deliver(pending_wake *wakes, jobs_wake_fn wake, int shutting_down)
{
    while (wakes) {
        pending_wake *pw = wakes;
        wakes = pw->next;
        wake(pw->w->req, pw->w->key, pw->gen, pw->w->off, pw->w->size, shutting_down);
        waiter_free(pw->w);
        free(pw);
    }
}

int jobs_wait_begin(const char *key, void *req, off_t off, size_t size)
{
    jobs_lock();
    job *j = jobs_find(key);
    if (!j) {
        jobs_unlock();
        return 0;
    }
    waiter *w = calloc(1, sizeof *w);
    char *k = strdup(key);
    if (!w || !k) {
        free(w);
        free(k);
        jobs_unlock();
        return 0;   /* the read path then reports the job as unfinished (EAGAIN) */
    }
    w->req = req;
    w->off = off;
    w->size = size;
    w->state = WAITER_ARMING;
    w->job = j;
    w->key = k;
    w->next_in_job = j->waiters;
    j->waiters = w;
    w->next_all = all_waiters;
    if (all_waiters)
        all_waiters->prev_all = w;
    all_waiters = w;
    jobs_unlock();
    return 1;
}

static waiter *find_waiter(void *req)
{
    for (waiter *w = all_waiters; w; w = w->next_all)
        if (w->req == req)
            return w;
    return NULL;
}

int jobs_wait_arm(void *req)
{
    jobs_lock();
    waiter *w = find_waiter(req);
    if (!w) {
        jobs_unlock();
        return JOBS_WAIT_ENDED;
    }
    if (w->state == WAITER_ARMING && !jobs_stopping()) {
        w->state = WAITER_ARMED;
        jobs_unlock();
        return JOBS_WAIT_ARMED;
    }
    int result = w->state == WAITER_INTERRUPTED || jobs_stopping() ? JOBS_WAIT_INTERRUPTED
                                                                   : JOBS_WAIT_ENDED;
    unlink_all(w);
    unlink_job(w);
    jobs_unlock();
    waiter_free(w);
    return result;
}

int jobs_wait_interrupt(void *req)
{
    jobs_lock();
    waiter *w = find_waiter(req);
    if (!w || w->state == WAITER_ENDED) {
        jobs_unlock();
        return 0;   /* answered already, or about to read */
    }
    if (w->state == WAITER_ARMING) {
        w->state = WAITER_INTERRUPTED;   /* the reader answers when it arms */
        jobs_unlock();
        return 0;
    }
    unlink_all(w);
    unlink_job(w);
    jobs_unlock();
    waiter_free(w);
    return 1;
}

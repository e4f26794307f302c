/* store_keys.c — read-your-writes for store_submit (store.h: store_settle): which keys
 * have operations queued and not yet done.  A read of such a key waits for the queue, so
 * nobody has to wait for a queued write but whoever reads what it writes.
 *
 * Locking: st->klock, a leaf, guards the map and the counts; it is never held with
 * st->lock. */
#include "store_int.h"

#include <stdint.h>
#include <stdlib.h>

#include "hmap.h"

int store_keys_init(store *st)
{
    pthread_mutex_init(&st->klock, NULL);
    if (!(st->pending = hmap_new())) {
        pthread_mutex_destroy(&st->klock);
        return -1;
    }
    return 0;
}

void store_keys_free(store *st)
{
    hmap_free(st->pending);
    st->pending = NULL;
    pthread_mutex_destroy(&st->klock);
}

void store_keys_add(store *st, store_op *op)
{
    op->tracked = 0;
    if (!op->key)
        return;
    pthread_mutex_lock(&st->klock);
    uintptr_t n = (uintptr_t)hmap_get(st->pending, op->key);
    if (hmap_put(st->pending, op->key, (void *)(n + 1)) == 0) {
        op->tracked = 1;
    } else {
        op->tracked = 2;   /* no memory: every read settles meanwhile */
        st->untracked++;
    }
    st->pending_n++;
    pthread_mutex_unlock(&st->klock);
}

void store_keys_del(store *st, store_op *op)
{
    if (!op->tracked)
        return;
    pthread_mutex_lock(&st->klock);
    if (op->tracked == 2) {
        st->untracked--;
    } else {
        uintptr_t n = (uintptr_t)hmap_get(st->pending, op->key);
        if (n <= 1)
            hmap_del(st->pending, op->key);
        else
            hmap_put(st->pending, op->key, (void *)(n - 1));   /* (replaces: no allocation) */
    }
    st->pending_n--;
    op->tracked = 0;
    pthread_mutex_unlock(&st->klock);
}

static int may_wait(store *st)
{
    return st->thread_started && !pthread_equal(pthread_self(), st->thread);
}

void store_settle(store *st, const char *key)
{
    if (!may_wait(st))
        return;
    pthread_mutex_lock(&st->klock);
    int pending = st->untracked || (st->pending_n && hmap_get(st->pending, key));
    pthread_mutex_unlock(&st->klock);
    if (pending)
        store_flush(st);
}

void store_settle_all(store *st)
{
    if (!may_wait(st))
        return;
    pthread_mutex_lock(&st->klock);
    int pending = st->pending_n != 0;
    pthread_mutex_unlock(&st->klock);
    if (pending)
        store_flush(st);
}

/* live.c — see live.h. */
#include "live.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct live_buf {
    int refs;              /* atomic */
    pthread_mutex_t lock;
    char *text;            /* owned */
    size_t len, cap;
    long tokens;
};

live_buf *live_new(void)
{
    live_buf *lb = calloc(1, sizeof *lb);
    if (!lb)
        return NULL;
    lb->refs = 1;
    pthread_mutex_init(&lb->lock, NULL);
    return lb;
}

live_buf *live_ref(live_buf *lb)
{
    if (lb)
        __atomic_add_fetch(&lb->refs, 1, __ATOMIC_RELAXED);
    return lb;
}

void live_unref(live_buf *lb)
{
    if (!lb || __atomic_sub_fetch(&lb->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    pthread_mutex_destroy(&lb->lock);
    free(lb->text);
    free(lb);
}

void live_append(live_buf *lb, const char *text, size_t len)
{
    if (!lb || !len)
        return;
    pthread_mutex_lock(&lb->lock);
    if (lb->len + len > LIVE_MAX)
        len = lb->len < LIVE_MAX ? LIVE_MAX - lb->len : 0;
    if (len && lb->len + len > lb->cap) {
        size_t cap = lb->cap ? lb->cap : 256;
        while (cap < lb->len + len)
            cap *= 2;
        char *t = realloc(lb->text, cap);
        if (!t)
            len = 0;    /* the view falls behind; the answer is unaffected */
        else {
            lb->text = t;
            lb->cap = cap;
        }
    }
    if (len) {
        memcpy(lb->text + lb->len, text, len);
        lb->len += len;
    }
    pthread_mutex_unlock(&lb->lock);
}

void live_reset(live_buf *lb)
{
    if (!lb)
        return;
    pthread_mutex_lock(&lb->lock);
    lb->len = 0;
    lb->tokens = 0;
    pthread_mutex_unlock(&lb->lock);
}

void live_set_tokens(live_buf *lb, long tokens)
{
    if (!lb)
        return;
    pthread_mutex_lock(&lb->lock);
    lb->tokens = tokens;
    pthread_mutex_unlock(&lb->lock);
}

size_t live_size(live_buf *lb)
{
    if (!lb)
        return 0;
    pthread_mutex_lock(&lb->lock);
    size_t n = lb->len;
    pthread_mutex_unlock(&lb->lock);
    return n;
}

long live_tokens(live_buf *lb)
{
    if (!lb)
        return 0;
    pthread_mutex_lock(&lb->lock);
    long n = lb->tokens;
    pthread_mutex_unlock(&lb->lock);
    return n;
}

size_t live_read(live_buf *lb, off_t off, char *buf, size_t size)
{
    if (!lb || off < 0)
        return 0;
    pthread_mutex_lock(&lb->lock);
    size_t n = 0;
    if ((size_t)off < lb->len) {
        n = lb->len - (size_t)off;
        if (n > size)
            n = size;
        memcpy(buf, lb->text + off, n);
    }
    pthread_mutex_unlock(&lb->lock);
    return n;
}

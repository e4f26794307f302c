/* commit.c — see commit.h. */
#include "commit.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct committer {
    store *st;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    commit_item *head, *tail;  /* queue, FIFO */
    int stopping;
};

commit_item *commit_item_new(void)
{
    return calloc(1, sizeof(commit_item));
}

/* Add a file; stage_rel NULL = a temp name the commit thread picks. */
static int item_add_file(commit_item *item, const char *rel, const char *stage_rel,
                         char *data, size_t len)
{
    if (item->nfiles == COMMIT_MAX_FILES)
        return -1;
    char *r = strdup(rel);
    char *s = stage_rel ? strdup(stage_rel) : NULL;
    if (!r || (stage_rel && !s)) {
        free(r);
        free(s);
        return -1;
    }
    item->files[item->nfiles].rel = r;
    item->files[item->nfiles].stage = s;
    item->files[item->nfiles].data = data;
    item->files[item->nfiles].len = len;
    item->files[item->nfiles].temp = NULL;
    item->nfiles++;
    return 0;
}

int commit_item_add(commit_item *item, const char *rel, char *data, size_t len)
{
    return item_add_file(item, rel, NULL, data, len);
}

int commit_item_add_staged(commit_item *item, const char *rel, const char *stage_rel,
                           char *data, size_t len)
{
    return item_add_file(item, rel, stage_rel, data, len);
}

void commit_item_stage(store *st, commit_item *item)
{
    for (size_t i = 0; i < item->nfiles; i++) {
        if (!item->files[i].stage || item->files[i].temp)
            continue;
        rf_err err;
        rf_err_clear(&err);
        if (store_write_file(st, item->files[i].stage, item->files[i].data,
                             item->files[i].len, &err) < 0) {
            /* the commit thread writes it under a temp name of its own; only the
             * crash-time recovery of this one result is lost */
            LOG_WARN("commit: cannot stage %s: %s", item->files[i].rel, err.msg);
            continue;   /* store_write_file removed what it had written */
        }
        item->files[i].temp = item->files[i].stage;
        item->files[i].stage = NULL;
    }
}

int commit_item_remove(commit_item *item, const char *rel)
{
    if (item->nremove == COMMIT_MAX_FILES)
        return -1;
    char *r = strdup(rel);
    if (!r)
        return -1;
    item->remove[item->nremove++] = r;
    return 0;
}

void commit_item_free(commit_item *item)
{
    if (!item)
        return;
    for (size_t i = 0; i < item->nfiles; i++) {
        free(item->files[i].rel);
        free(item->files[i].stage);
        free(item->files[i].data);
        free(item->files[i].temp);
    }
    for (size_t i = 0; i < item->nremove; i++)
        free(item->remove[i]);
    free(item->append_rel);
    free(item->append_data);
    free(item);
}

void commit_install_files(committer *c, commit_item *item)
{
    for (size_t i = 0; i < item->nremove; i++)
        store_unlink(c->st, item->remove[i]);
    for (size_t i = 0; i < item->nfiles; i++) {
        int r = store_rename(c->st, item->files[i].temp, item->files[i].rel);
        if (r < 0) {
            LOG_ERROR("commit: cannot install %s: %s", item->files[i].rel, strerror(-r));
            store_unlink(c->st, item->files[i].temp);
            if (!item->failed) {
                item->failed = 1;
                rf_err_set(&item->err, -r, "cannot install %s: %s", item->files[i].rel,
                           strerror(-r));
            }
        }
        free(item->files[i].temp);
        item->files[i].temp = NULL;
    }
}

static void drop_temps(committer *c, commit_item *item)
{
    for (size_t i = 0; i < item->nfiles; i++) {
        if (item->files[i].temp) {
            store_unlink(c->st, item->files[i].temp);
            free(item->files[i].temp);
            item->files[i].temp = NULL;
        }
    }
}

/* One batch: everything queued when the thread woke up. */
static void commit_batch(committer *c, commit_item *batch)
{
    for (commit_item *it = batch; it; it = it->next) {
        for (size_t i = 0; i < it->nfiles && !it->failed; i++) {
            if (it->files[i].temp)
                continue;   /* staged by the caller already */
            if (store_write_temp(c->st, it->files[i].rel, it->files[i].data, it->files[i].len,
                                 &it->files[i].temp, &it->err) < 0)
                it->failed = 1;
        }
        if (it->failed)
            drop_temps(c, it);
    }
    int r = store_sync(c->st);
    if (r < 0)
        LOG_ERROR("commit: syncfs: %s", strerror(-r));
    for (commit_item *it = batch; it; it = it->next) {
        if (it->failed)
            continue;
        if (!it->install(it, it->ud))
            drop_temps(c, it);   /* the job moved on; its files are stale */
    }
    r = store_sync(c->st);      /* make the renames durable before anyone is told */
    if (r < 0)
        LOG_ERROR("commit: syncfs: %s", strerror(-r));
    while (batch) {
        commit_item *it = batch;
        batch = it->next;
        if (!it->failed && it->append_rel) {
            rf_err aerr;
            if (store_append(c->st, it->append_rel, it->append_data, strlen(it->append_data),
                             &aerr) < 0)
                LOG_ERROR("commit: %s", aerr.msg);
        }
        it->done(it, !it->failed, it->failed ? &it->err : NULL, it->ud);
        commit_item_free(it);
    }
}

static void *commit_thread(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "rfs-commit");  /* for top -H, perf; cosmetic */
    committer *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->head && !c->stopping)
            pthread_cond_wait(&c->cond, &c->lock);
        if (!c->head && c->stopping)
            break;
        commit_item *batch = c->head;
        c->head = c->tail = NULL;
        pthread_mutex_unlock(&c->lock);
        commit_batch(c, batch);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

committer *commit_start(store *st, rf_err *err)
{
    committer *c = calloc(1, sizeof *c);
    if (!c) {
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    c->st = st;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    int r = pthread_create(&c->thread, NULL, commit_thread, c);
    if (r != 0) {
        rf_err_set(err, r, "cannot start the commit thread: %s", strerror(r));
        free(c);
        return NULL;
    }
    return c;
}

void commit_stop(committer *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

void commit_submit(committer *c, commit_item *item)
{
    item->next = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->tail)
        c->tail->next = item;
    else
        c->head = item;
    c->tail = item;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

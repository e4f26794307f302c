/* kcache.c — see kcache.h. */
#include "kcache.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inodes.h"
#include "names.h"

typedef struct notice {
    char *key;             /* results of this key changed, or ... */
    int root_entry;        /* ... (when set) key is a name at the root to forget */
    struct notice *next;
} notice;

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    notice *head, *tail;
    int running, stopping;
    struct fuse_session *se;
} N = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* The inode the kernel holds for key's result kind r (NAME.out, ...); 0: none. */
static fuse_ino_t result_node(const char *key, int r)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s%s", key, name_result_suffix[r]);
    return inodes_find(path);
}

static void invalidate_key(const char *key)
{
    for (int r = 0; r < NAME_RESULT_KINDS; r++) {
        fuse_ino_t ino = result_node(key, r);
        /* The node may be forgotten meanwhile; the kernel ignores unknown inodes. */
        if (ino && N.se)
            fuse_lowlevel_notify_inval_inode(N.se, ino, 0, 0);
    }
}

static void *notifier_thread(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "rfs-kcache");  /* for top -H, perf; cosmetic */
    pthread_mutex_lock(&N.lock);
    for (;;) {
        while (!N.head && !N.stopping)
            pthread_cond_wait(&N.cond, &N.lock);
        if (!N.head)
            break;
        notice *n = N.head;
        N.head = n->next;
        if (!N.head)
            N.tail = NULL;
        pthread_mutex_unlock(&N.lock);
        if (!N.stopping && n->root_entry && N.se)
            fuse_lowlevel_notify_inval_entry(N.se, FUSE_ROOT_ID, n->key, strlen(n->key));
        else if (!N.stopping)
            invalidate_key(n->key);
        free(n->key);
        free(n);
        pthread_mutex_lock(&N.lock);
    }
    pthread_mutex_unlock(&N.lock);
    return NULL;
}

int kcache_start(struct fuse_session *se, rf_err *err)
{
    N.se = se;
    int r = pthread_create(&N.thread, NULL, notifier_thread, NULL);
    if (r != 0)
        return rf_err_set(err, r, "cannot start the notifier thread: %s", strerror(r));
    N.running = 1;
    return 0;
}

void kcache_stop(void)
{
    if (!N.running)
        return;
    pthread_mutex_lock(&N.lock);
    N.stopping = 1;
    pthread_cond_signal(&N.cond);
    pthread_mutex_unlock(&N.lock);
    pthread_join(N.thread, NULL);
    N.running = 0;
}

static void notice_post(const char *key, int root_entry)
{
    notice *n = malloc(sizeof *n);
    if (!n || !(n->key = strdup(key))) {
        free(n);
        return;   /* caches time out within a second anyway; this is belt and braces */
    }
    n->root_entry = root_entry;
    n->next = NULL;
    pthread_mutex_lock(&N.lock);
    if (!N.running || N.stopping) {
        pthread_mutex_unlock(&N.lock);
        free(n->key);
        free(n);
        return;
    }
    if (N.tail)
        N.tail->next = n;
    else
        N.head = n;
    N.tail = n;
    pthread_cond_signal(&N.cond);
    pthread_mutex_unlock(&N.lock);
}

void kcache_results_changed(const char *key)
{
    /* The kernel caches nothing of a name it holds no node for, and most jobs start and
     * end before anyone looks their results up: no notice then, and no wake-up of the
     * thread (a futex call and a context switch per change).  A lookup racing with this
     * check answers from the state as it was before the change, as it could before: the
     * attributes of a result whose job is live time out at once. */
    for (int r = 0; r < NAME_RESULT_KINDS; r++)
        if (result_node(key, r)) {
            notice_post(key, 0);
            return;
        }
}

void kcache_tiers_changed(const rf_config *old, const rf_config *new_cfg)
{
    for (size_t i = 0; old && i < old->tiers_len; i++)
        notice_post(old->tiers[i].name, 1);
    for (size_t i = 0; new_cfg && i < new_cfg->tiers_len; i++)
        notice_post(new_cfg->tiers[i].name, 1);
}

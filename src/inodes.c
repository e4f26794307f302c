/* inodes.c — see inodes.h. */
#include "inodes.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

typedef struct node {
    char *path;           /* mount-relative, "" for the root; owned; NULL once renamed over */
    uint64_t nlookup;
} node;

static struct {
    pthread_mutex_t lock;  /* guards by_path and every node's fields */
    hmap *by_path;         /* path -> node, created on first use */
    node root;
} I = {.lock = PTHREAD_MUTEX_INITIALIZER, .root = {.path = "", .nlookup = 1}};

static node *node_of(fuse_ino_t ino)
{
    return ino == FUSE_ROOT_ID ? &I.root : (node *)(uintptr_t)ino;
}

static fuse_ino_t ino_of(node *n)
{
    return n == &I.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

int inodes_path(fuse_ino_t ino, char *buf, size_t len)
{
    pthread_mutex_lock(&I.lock);
    node *n = node_of(ino);
    int r = n->path ? 0 : -ENOENT;
    if (r == 0 && (size_t)snprintf(buf, len, "%s", n->path) >= len)
        r = -ENAMETOOLONG;
    pthread_mutex_unlock(&I.lock);
    return r;
}

fuse_ino_t inodes_remember(const char *path)
{
    if (!path[0])
        return FUSE_ROOT_ID;
    pthread_mutex_lock(&I.lock);
    node *n = NULL;
    if (I.by_path || (I.by_path = hmap_new()))
        n = hmap_get(I.by_path, path);
    if (!n && I.by_path) {
        n = calloc(1, sizeof *n);
        if (n && !(n->path = strdup(path))) {
            free(n);
            n = NULL;
        }
        if (n && hmap_put(I.by_path, path, n) < 0) {
            free(n->path);
            free(n);
            n = NULL;
        }
    }
    if (n)
        n->nlookup++;
    pthread_mutex_unlock(&I.lock);
    return n ? ino_of(n) : 0;
}

void inodes_forget(fuse_ino_t ino, uint64_t nlookup)
{
    if (ino == FUSE_ROOT_ID)
        return;
    pthread_mutex_lock(&I.lock);
    node *n = node_of(ino);
    n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
    if (n->nlookup == 0) {
        if (n->path && hmap_get(I.by_path, n->path) == n)
            hmap_del(I.by_path, n->path);
        free(n->path);
        free(n);
    }
    pthread_mutex_unlock(&I.lock);
}

void inodes_renamed(const char *from, const char *to)
{
    pthread_mutex_lock(&I.lock);
    if (!I.by_path) {
        pthread_mutex_unlock(&I.lock);
        return;
    }
    node *victim = hmap_del(I.by_path, to);
    if (victim) {
        free(victim->path);
        victim->path = NULL;
    }
    node *moved = hmap_del(I.by_path, from);
    if (moved) {
        char *p = strdup(to);
        free(moved->path);
        moved->path = p;
        if (p && hmap_put(I.by_path, p, moved) < 0) {
            free(moved->path);
            moved->path = NULL;
        }
    }
    pthread_mutex_unlock(&I.lock);
}

fuse_ino_t inodes_find(const char *path)
{
    pthread_mutex_lock(&I.lock);
    node *n = I.by_path ? hmap_get(I.by_path, path) : NULL;
    fuse_ino_t ino = n ? ino_of(n) : 0;
    pthread_mutex_unlock(&I.lock);
    return ino;
}

void inodes_free(void)
{
    pthread_mutex_lock(&I.lock);
    for (hmap_iter it = {0}; I.by_path && hmap_next(I.by_path, &it);) {
        node *n = it.value;
        free(n->path);
        free(n);
    }
    hmap_free(I.by_path);
    I.by_path = NULL;
    pthread_mutex_unlock(&I.lock);
}

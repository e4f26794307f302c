/* hmap.c — see hmap.h.  FNV-1a hashing, power-of-two bucket array, doubles at load 1. */
#include "hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct hentry {
    struct hentry *next;
    uint64_t hash;
    void *value;
    char key[];                /* owned copy */
} hentry;

struct hmap {
    hentry **buckets;
    size_t nbuckets;           /* power of two */
    size_t len;
};

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

hmap *hmap_new(void)
{
    hmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nbuckets = 64;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

void hmap_free(hmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        hentry *e = m->buckets[i];
        while (e) {
            hentry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    free(m);
}

static hentry **find_slot(const hmap *m, const char *key, uint64_t h)
{
    hentry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

void *hmap_get(const hmap *m, const char *key)
{
    hentry *e = *find_slot(m, key, hash_key(key));
    return e ? e->value : NULL;
}

static void grow(hmap *m)
{
    size_t n = m->nbuckets * 2;
    hentry **b = calloc(n, sizeof *b);
    if (!b)
        return;                /* keep working at a higher load factor */
    for (size_t i = 0; i < m->nbuckets; i++) {
        hentry *e = m->buckets[i];
        while (e) {
            hentry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

int hmap_put(hmap *m, const char *key, void *value)
{
    uint64_t h = hash_key(key);
    hentry **pp = find_slot(m, key, h);
    if (*pp) {
        (*pp)->value = value;
        return 0;
    }
    size_t klen = strlen(key);
    hentry *e = malloc(sizeof *e + klen + 1);
    if (!e)
        return -1;
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = value;
    e->next = NULL;
    *pp = e;
    if (++m->len > m->nbuckets)
        grow(m);
    return 0;
}

void *hmap_del(hmap *m, const char *key)
{
    hentry **pp = find_slot(m, key, hash_key(key));
    hentry *e = *pp;
    if (!e)
        return NULL;
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->len--;
    return v;
}

size_t hmap_len(const hmap *m)
{
    return m->len;
}

int hmap_next(const hmap *m, hmap_iter *it)
{
    hentry *e = it->next_entry;
    while (!e && it->bucket < m->nbuckets)
        e = m->buckets[it->bucket++];
    if (!e)
        return 0;
    it->key = e->key;
    it->value = e->value;
    it->next_entry = e->next;  /* taken before the caller may delete e */
    return 1;
}

/* hmap.h — a small string-keyed hash map (open hashing, chained), not thread-safe.
 *
 * Keys are copied and owned by the map; values are borrowed pointers whose lifetime the
 * caller manages.  Used for the inode table and the job table. */
#ifndef RF_HMAP_H
#define RF_HMAP_H

#include <stddef.h>

typedef struct hmap hmap;

hmap *hmap_new(void);                  /* NULL on allocation failure */
void hmap_free(hmap *m);               /* frees keys, not values */
void *hmap_get(const hmap *m, const char *key);
/* Insert or replace; returns 0, or -1 on allocation failure (map unchanged). */
int hmap_put(hmap *m, const char *key, void *value);
void *hmap_del(hmap *m, const char *key); /* returns the removed value or NULL */
size_t hmap_len(const hmap *m);

/* Iterate: for (hmap_iter it = {0}; hmap_next(m, &it); ) use it.key, it.value.
 * The map must not be modified during iteration except by hmap_del of it.key. */
typedef struct hmap_iter {
    const char *key;
    void *value;
    size_t bucket;
    void *next_entry;
} hmap_iter;
int hmap_next(const hmap *m, hmap_iter *it);

#endif

/* blob.c — see blob.h. */
#include "blob.h"

#include <stdlib.h>
#include <string.h>

uint64_t blob_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

blob *blob_new(const void *data, size_t len)
{
    return blob_new_hashed(data, len, blob_hash(data, len));
}

blob *blob_new_hashed(const void *data, size_t len, uint64_t hash)
{
    blob *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = '\0';
    b->hash = hash;
    return b;
}

blob *blob_ref(blob *b)
{
    if (b)
        __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

void blob_unref(blob *b)
{
    if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}

/* blob.h — immutable, reference-counted bytes: a prompt's content, shared by the job
 * table, attempts in flight and readers without copying and without a lock.
 * The bytes are followed by a NUL that is not counted in len. */
#ifndef RF_BLOB_H
#define RF_BLOB_H

#include <stddef.h>
#include <stdint.h>

typedef struct blob {
    int refs;              /* atomic */
    size_t len;
    uint64_t hash;         /* blob_hash of the bytes */
    char data[];
} blob;

/* A copy of data (refcount 1); NULL when out of memory. */
blob *blob_new(const void *data, size_t len);
/* The same when the caller has the hash already (hash == blob_hash(data, len)): a new
 * prompt's bytes are hashed once, not twice (1 ms each for 1 MiB). */
blob *blob_new_hashed(const void *data, size_t len, uint64_t hash);
blob *blob_ref(blob *b);          /* NULL-safe */
void blob_unref(blob *b);         /* frees at zero; NULL-safe */

/* FNV-1a 64 of the bytes: how routefs tells one version of a prompt from another. */
uint64_t blob_hash(const void *data, size_t len);

#endif

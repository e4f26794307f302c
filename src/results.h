/* results.h — a prompt's result files: NAME.out, NAME.meta, NAME.err and NAME.live.
 *
 * A finished job's results are rows of the state store, read on demand (open takes a
 * snapshot of that generation, so a rewrite meanwhile cannot mix two answers).  An
 * unfinished job's NAME.out can be opened and read, and the read waits until the job
 * ends (a parked fuse request, answered by jobs.c, or EINTR); its NAME.meta is the
 * job's state now; NAME.live is what the running attempt has streamed so far; NAME.err
 * exists only for a failed job.  Results are written by routefs only (EACCES).
 *
 * Timestamps of results are fixed when the job ends (the prompt's while it runs); mode
 * and owner are the prompt's. */
#ifndef RF_RESULTS_H
#define RF_RESULTS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <stdint.h>
#include <sys/stat.h>

#include "names.h"
#include "store.h"

typedef struct result_handle result_handle;

void results_init(store *st);

/* Attributes of key's result `which` (NAME_OUT, ...): 0 or -errno; *live is set when it
 * belongs to an unfinished job (its size will change: never cached). */
int results_stat(const char *key, int which, struct stat *st, int *live);
/* Open for reading: -EACCES for writing; -ENOENT when the result does not exist. */
int results_open(const char *key, int which, int flags, result_handle **out);
/* Does the handle need direct I/O (its size is not known yet)? */
int results_direct_io(const result_handle *h);
/* Answer a read: from the snapshot, the live buffer, or by waiting for the job. */
void results_read(fuse_req_t req, result_handle *h, size_t size, off_t off);
void results_release(result_handle *h);

/* jobs' wake callback: answer a waiting reader with generation gen's .out (0 = EIO). */
void results_wake_reader(void *req, const char *key, int64_t gen, off_t off, size_t size,
                         int shutting_down);

/* The extended attributes of a finished NAME.out (user.routefs.provider, .model,
 * .endpoint): the value's length and copy into buf (size 0 = length only), or -errno. */
long results_xattr(const char *key, const char *name, char *buf, size_t size);
/* "user.routefs.provider\0..." for a finished NAME.out, "" otherwise: the length. */
long results_xattr_list(const char *key, char *buf, size_t size);

#endif

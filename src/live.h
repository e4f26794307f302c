/* live.h — what the current attempt of a running job has streamed so far (NAME.live).
 *
 * The runner appends text as chunks arrive (loop thread); readers of NAME.live copy from
 * it (FUSE threads).  An abandoned attempt resets it, so `tail -f` sees the file
 * truncated and start over with the next hop.  Reference-counted; its own small lock,
 * a leaf in the lock order (never held while calling out). */
#ifndef RF_LIVE_H
#define RF_LIVE_H

#include <stddef.h>
#include <sys/types.h>

typedef struct live_buf live_buf;

live_buf *live_new(void);                       /* NULL when out of memory */
live_buf *live_ref(live_buf *lb);               /* NULL-safe */
void live_unref(live_buf *lb);                  /* NULL-safe */

/* Append text; past LIVE_MAX bytes the rest is dropped (the answer itself is unaffected). */
void live_append(live_buf *lb, const char *text, size_t len);
/* A new attempt starts: empty again. */
void live_reset(live_buf *lb);
void live_set_tokens(live_buf *lb, long tokens);

size_t live_size(live_buf *lb);
long live_tokens(live_buf *lb);
/* Copy up to size bytes from off into buf: bytes copied. */
size_t live_read(live_buf *lb, off_t off, char *buf, size_t size);

#define LIVE_MAX (8u * 1024 * 1024)

#endif

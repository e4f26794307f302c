/* strbuf.h — a growing NUL-terminated string, for the modules that render text (JSON,
 * status, metrics.prom).
 *
 * Appends never fail the caller: a failed allocation poisons the buffer, later appends
 * do nothing and sb_take gives NULL, so a rendering is whole or absent.  A zeroed
 * strbuf ({0}) is empty and ready. */
#ifndef RF_STRBUF_H
#define RF_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *data;     /* owned; NUL-terminated once anything was appended */
    size_t len, cap;
    int failed;     /* an allocation failed (or a caller poisoned it): sb_take gives NULL */
} strbuf;

void sb_putn(strbuf *b, const char *s, size_t n);
void sb_put(strbuf *b, const char *s);
void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Room for n more bytes now, so the appends that follow do not reallocate. */
void sb_reserve(strbuf *b, size_t n);
/* The text (malloc'd, the caller's; "" when nothing was appended) and, when len is not
 * NULL, its length; NULL when the buffer failed.  The buffer is empty afterwards. */
char *sb_take(strbuf *b, size_t *len);

#endif

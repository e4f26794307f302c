/* openrouter_int.h — shared inside the openrouter module only: one blocking GET on the
 * module's own libcurl easy handle (openrouter_http.c). */
#ifndef RF_OPENROUTER_INT_H
#define RF_OPENROUTER_INT_H

#include <stddef.h>

typedef struct or_http or_http;

/* The handle (one per thread that fetches: only rfs-openrouter).  NULL when out of memory. */
or_http *or_http_new(void);
void or_http_free(or_http *h);   /* NULL is a no-op */

typedef struct or_http_result {
    long status;             /* HTTP status; 0 when no response arrived */
    char *body;              /* malloc'd, NUL-terminated, redacted; NULL when none */
    size_t len;
    char error[256];         /* transport error, one line; "" when a response arrived */
} or_http_result;

/* GET url with "Authorization: Bearer key" (key NULL/"" = none), at most timeout_ms and
 * max_body bytes.  *stop (read atomically while the transfer runs) aborts it.  Returns 0
 * when a response arrived (any status), -1 otherwise (res->error says why).  The key
 * never appears in res->error; every copy of a configured secret in the body is
 * redacted (redact.h).  Free res->body. */
int or_http_get(or_http *h, const char *url, const char *key, long timeout_ms,
                size_t max_body, const int *stop, or_http_result *res);

#endif

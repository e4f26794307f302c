/* redact.h — one redactor for every sink: remove the configured secrets from text.
 *
 * Text that comes from outside (a provider's error body, a Redis reply, a URL in a curl
 * message) may quote a key back.  Before such text reaches a log line, NAME.err,
 * NAME.meta, a virtual file or a metric, it goes through redact_dup or redact_inplace.
 *
 * What is removed: every configured secret in any form a server might echo it —
 *   - raw, compared case-insensitively (ASCII);
 *   - JSON-escaped: any character as \uXXXX (surrogate pairs too), and \/ \\ \" \b \f \n
 *     \r \t;
 *   - percent-encoded: any byte as %XX (either case of hex), mixed freely with raw and
 *     JSON-escaped characters in one occurrence;
 *   - encoded twice (or up to 4 times): %25XX for %XX (a URL encoded again), and JSON
 *     escapes with their backslash doubled, up to 15 backslashes (a JSON text quoted in
 *     a JSON string, as a meta file shows a provider's quoted error body);
 *   - cut short: any prefix of at least 8 characters of a secret (a secret shorter than
 *     8 characters is matched whole only);
 *   - base64 (standard and URL-safe alphabets, at each of the three byte alignments, so
 *     also inside "Basic base64(user:key)"), for secrets of 8 characters or more; the
 *     base64 forms are compared case-sensitively, and a prefix of 8 or more of their
 *     characters counts too.
 * The text is decoded on the fly while it is compared with a secret, and the whole
 * matched span (escapes included) is replaced.  Matches that overlap or touch are
 * replaced as one span.
 *
 * Replacement: "[REDACTED]" when the span is at least 10 bytes, else "***" (or fewer
 * '*' for a span of 1 or 2 bytes).  So the result is never longer than the input, which
 * is what lets redact_inplace work in place; redact_dup gives the same text.
 *
 * Thread safety: every function may be called from any thread.  A reader takes a
 * reference to the current key set under a mutex held only for that, so it never waits
 * for a redaction in progress or for a new set being built; redact_set_keys builds the
 * new set first and swaps it in. */
#ifndef RF_REDACT_H
#define RF_REDACT_H

#include <stddef.h>
#include "err.h"

/* Replace the set of secrets with copies of keys[0..n) (NULL and empty entries are
 * skipped; n = 0 clears the set).  0, or -1 with ENOMEM (the previous set stays). */
int redact_set_keys(const char *const *keys, size_t n, rf_err *err);

/* Add one secret to the current set unless it is there: a key read for a request that
 * the last redact_set_keys did not see (a key file rewritten since the config was
 * applied).  Cheap when the key is known.  0, or -1 with ENOMEM (the set stays). */
int redact_learn_key(const char *key, rf_err *err);

/* A malloc'd redacted copy of the NUL-terminated text; NULL when text is NULL or out of
 * memory. */
char *redact_dup(const char *text);

/* Redact buf[0..len) in place; returns the new length (<= len).  When the text shrank,
 * buf[new length] is set to '\0' (so a NUL-terminated buffer stays NUL-terminated);
 * bytes after that are unspecified.  buf need not be NUL-terminated.  NULL buf: 0. */
size_t redact_inplace(char *buf, size_t len);

#endif

/* redact.c — remove the configured secrets from text (see redact.h for what and how).
 *
 * A key set is immutable once built and reference-counted: redact_set_keys (or
 * redact_learn_key, from the current set and one more key) builds a new one and swaps the
 * `current` pointer under a mutex held for nothing else; a reader takes a reference under
 * the same mutex and scans without it.  Builders take build_lock around build and swap.
 *
 * Each secret becomes patterns: the secret itself (lower-cased, compared
 * case-insensitively) and its base64 forms (compared exactly).  Patterns are bucketed by
 * their first byte, lower-cased, so at most text positions the scan looks at one bucket
 * and finds it empty.  At a position, each candidate pattern is compared unit by unit:
 * a unit of text is an escape (\uXXXX, \/, %XX, ...) standing for one to four bytes, or a
 * raw byte; the escape is tried first, then the raw byte.  The scan records the longest
 * match at each position, merges overlapping or touching matches into spans, and writes
 * the text back compacted with a marker per span: the write position never passes the
 * read position, so it works in place. */
#include "redact.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX_MIN 8                 /* a prefix this long of a secret counts */
#define MAX_ENCODINGS 4              /* "%25" repeats taken as percent-encoding again */
#define MAX_BACKSLASHES 15           /* a longer run of backslashes is not nesting */
#define MARKER "[REDACTED]"
#define MARKER_LEN (sizeof MARKER - 1)

typedef struct pattern {
    unsigned char *bytes;    /* owned; lower-cased when fold */
    size_t len;
    size_t min_match;        /* the shortest match that counts: len, or PREFIX_MIN */
    int fold;                /* compare ASCII letters case-insensitively */
} pattern;

typedef struct keyset {
    int refs;                /* atomic */
    char **secrets;          /* owned copies of the secrets themselves, wiped when freed */
    size_t nsecrets;
    pattern *pats;           /* owned */
    size_t n, cap;
    size_t start[257];       /* patterns whose lower-cased first byte is b:            */
    size_t *order;           /* order[start[b] .. start[b + 1]) index pats (owned)     */
} keyset;

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static keyset *current;      /* guarded by current_lock; NULL = no secrets */
/* Held while a new set is built from the current one and swapped in, so that two
 * builders cannot lose each other's keys; readers never take it. */
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- key sets ---- */

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static void keyset_free(keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        explicit_bzero(ks->pats[i].bytes, ks->pats[i].len);
        free(ks->pats[i].bytes);
    }
    for (size_t i = 0; i < ks->nsecrets; i++) {
        explicit_bzero(ks->secrets[i], strlen(ks->secrets[i]));
        free(ks->secrets[i]);
    }
    free(ks->secrets);
    free(ks->pats);
    free(ks->order);
    free(ks);
}

/* Add a pattern (a copy of bytes[0..len)) unless an identical one is there. */
static int add_pattern(keyset *ks, const unsigned char *bytes, size_t len, int fold)
{
    for (size_t i = 0; i < ks->n; i++)
        if (ks->pats[i].len == len && ks->pats[i].fold == fold &&
            memcmp(ks->pats[i].bytes, bytes, len) == 0)
            return 0;
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? 2 * ks->cap : 16;
        pattern *grown = realloc(ks->pats, cap * sizeof *grown);
        if (!grown)
            return -1;
        ks->pats = grown;
        ks->cap = cap;
    }
    pattern *p = &ks->pats[ks->n];
    if (!(p->bytes = malloc(len)))
        return -1;
    for (size_t i = 0; i < len; i++)
        p->bytes[i] = fold ? lower(bytes[i]) : bytes[i];
    p->len = len;
    p->min_match = len < PREFIX_MIN ? len : PREFIX_MIN;
    p->fold = fold;
    ks->n++;
    return 0;
}

/* The base64 characters of (shift zero bytes + key) that depend on key bytes only: what
 * the key looks like inside a longer base64 text at that alignment.  url: '-' '_' for
 * '+' '/'.  Writes into out (at least 4 * (len + 2) / 3 + 4 bytes); returns the length. */
static size_t base64_core(const unsigned char *key, size_t len, unsigned shift, int url,
                          unsigned char *out)
{
    static const char std[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t total_bits = 8 * (shift + len);
    size_t first = (8 * shift + 5) / 6;      /* the first character with no shift bits */
    size_t last = total_bits / 6;            /* characters wholly inside the key: < last */
    size_t n = 0;
    for (size_t c = first; c < last; c++) {
        unsigned v = 0;
        for (size_t bit = 6 * c; bit < 6 * c + 6; bit++) {
            size_t byte = bit / 8;
            unsigned b = byte < shift ? 0 : key[byte - shift];
            v = (v << 1) | ((b >> (7 - bit % 8)) & 1);
        }
        char ch = std[v];
        if (url && ch == '+')
            ch = '-';
        else if (url && ch == '/')
            ch = '_';
        out[n++] = (unsigned char)ch;
    }
    return n;
}

static int add_secret(keyset *ks, const char *key)
{
    size_t len = strlen(key);
    if (add_pattern(ks, (const unsigned char *)key, len, 1) < 0)
        return -1;
    if (len < PREFIX_MIN)
        return 0;
    unsigned char *buf = malloc(4 * (len + 2) / 3 + 4);
    if (!buf)
        return -1;
    int rc = 0;
    for (unsigned shift = 0; shift < 3 && rc == 0; shift++)
        for (int url = 0; url < 2 && rc == 0; url++) {
            size_t n = base64_core((const unsigned char *)key, len, shift, url, buf);
            if (n >= PREFIX_MIN)
                rc = add_pattern(ks, buf, n, 0);
        }
    explicit_bzero(buf, 4 * (len + 2) / 3 + 4);
    free(buf);
    return rc;
}

/* Bucket the patterns by lower-cased first byte (a counting sort). */
static int index_patterns(keyset *ks)
{
    ks->order = malloc((ks->n ? ks->n : 1) * sizeof *ks->order);
    if (!ks->order)
        return -1;
    size_t count[257] = {0};
    for (size_t i = 0; i < ks->n; i++)
        count[lower(ks->pats[i].bytes[0]) + 1]++;
    for (size_t b = 1; b < 257; b++)
        count[b] += count[b - 1];
    memcpy(ks->start, count, sizeof ks->start);
    for (size_t i = 0; i < ks->n; i++)
        ks->order[count[lower(ks->pats[i].bytes[0])]++] = i;
    return 0;
}

static int has_secret(const keyset *ks, const char *key)
{
    for (size_t i = 0; ks && i < ks->nsecrets; i++)
        if (strcmp(ks->secrets[i], key) == 0)
            return 1;
    return 0;
}

static int keep_secret(keyset *ks, const char *key)
{
    if (has_secret(ks, key))
        return 0;
    char **grown = realloc(ks->secrets, (ks->nsecrets + 1) * sizeof *grown);
    if (!grown)
        return -1;
    ks->secrets = grown;
    if (!(ks->secrets[ks->nsecrets] = strdup(key)))
        return -1;
    ks->nsecrets++;
    return add_secret(ks, key);
}

/* A new set of keys[0..n) and `extra` (may be NULL), swapped in.  build_lock held. */
static int build_and_swap(const char *const *keys, size_t n, const char *extra, rf_err *err)
{
    keyset *ks = calloc(1, sizeof *ks);
    if (!ks)
        return rf_err_set(err, ENOMEM, "out of memory");
    ks->refs = 1;
    for (size_t i = 0; i <= n; i++) {
        const char *key = i < n ? (keys ? keys[i] : NULL) : extra;
        if (!key || !key[0])
            continue;
        if (keep_secret(ks, key) < 0) {
            keyset_free(ks);
            return rf_err_set(err, ENOMEM, "out of memory");
        }
    }
    if (index_patterns(ks) < 0) {
        keyset_free(ks);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    if (ks->n == 0) {
        keyset_free(ks);
        ks = NULL;
    }
    pthread_mutex_lock(&current_lock);
    keyset *old = current;
    current = ks;
    pthread_mutex_unlock(&current_lock);
    if (old && __atomic_sub_fetch(&old->refs, 1, __ATOMIC_ACQ_REL) == 0)
        keyset_free(old);
    return 0;
}

int redact_set_keys(const char *const *keys, size_t n, rf_err *err)
{
    pthread_mutex_lock(&build_lock);
    int rc = build_and_swap(keys, n, NULL, err);
    pthread_mutex_unlock(&build_lock);
    return rc;
}

static keyset *acquire(void);
static void release(keyset *ks);

int redact_learn_key(const char *key, rf_err *err)
{
    if (!key || !key[0])
        return 0;
    keyset *ks = acquire();
    int known = has_secret(ks, key);   /* the usual case: no lock a builder holds */
    release(ks);
    if (known)
        return 0;
    pthread_mutex_lock(&build_lock);
    int rc = 0;
    ks = current;                      /* builders change it only under build_lock */
    if (!has_secret(ks, key))
        rc = build_and_swap(ks ? (const char *const *)ks->secrets : NULL,
                            ks ? ks->nsecrets : 0, key, err);
    pthread_mutex_unlock(&build_lock);
    return rc;
}

static keyset *acquire(void)
{
    pthread_mutex_lock(&current_lock);
    keyset *ks = current;
    if (ks)
        __atomic_add_fetch(&ks->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&current_lock);
    return ks;
}

static void release(keyset *ks)
{
    if (ks && __atomic_sub_fetch(&ks->refs, 1, __ATOMIC_ACQ_REL) == 0)
        keyset_free(ks);
}

/* ---- decoding ---- */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Four hex digits at t[0..4) (n available) as a number, or -1. */
static long hex4(const unsigned char *t, size_t n)
{
    if (n < 4)
        return -1;
    long v = 0;
    for (size_t i = 0; i < 4; i++) {
        int h = hex_value(t[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_encode(unsigned long cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One level of JSON escape at t[0..n) (t[0] is '\\'): as decode_escape. */
static size_t decode_json_escape(const unsigned char *t, size_t n, unsigned char out[4],
                                 size_t *out_len)
{
    if (n < 2 || t[0] != '\\')
        return 0;
    static const char simple_from[] = "\"\\/bfnrt", simple_to[] = "\"\\/\b\f\n\r\t";
    const char *simple = t[1] ? strchr(simple_from, t[1]) : NULL;
    if (simple) {
        out[0] = (unsigned char)simple_to[simple - simple_from];
        *out_len = 1;
        return 2;
    }
    if (t[1] != 'u')
        return 0;
    long cp = hex4(t + 2, n - 2);
    if (cp < 0)
        return 0;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return 0;                              /* a lone low surrogate stands for nothing */
    if (cp < 0xD800 || cp > 0xDBFF) {
        *out_len = utf8_encode((unsigned long)cp, out);
        return 6;
    }
    if (n < 12 || t[6] != '\\' || t[7] != 'u')
        return 0;
    long low = hex4(t + 8, n - 8);
    if (low < 0xDC00 || low > 0xDFFF)
        return 0;
    *out_len = utf8_encode(0x10000 + (((unsigned long)cp - 0xD800) << 10) +
                           ((unsigned long)low - 0xDC00), out);
    return 12;
}

/* The escape at t[0..n), if any: *out_len decoded bytes in out, returns the escape's
 * length (0: t[0] does not start an escape).  Escapes applied more than once count as
 * one: "%252D" is "%2D" percent-encoded again, and a JSON text quoted inside a JSON
 * string has its backslashes doubled (two backslashes, then u002d), to a bounded depth. */
static size_t decode_escape(const unsigned char *t, size_t n, unsigned char out[4],
                            size_t *out_len)
{
    if (t[0] == '%') {
        size_t j = 1, again = 0;
        while (again < MAX_ENCODINGS && j + 3 < n && t[j] == '2' && t[j + 1] == '5' &&
               hex_value(t[j + 2]) >= 0 && hex_value(t[j + 3]) >= 0)
            j += 2, again++;                   /* "%25" is '%' itself */
        if (j + 1 >= n)
            return 0;
        int hi = hex_value(t[j]), lo = hex_value(t[j + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        out[0] = (unsigned char)(hi * 16 + lo);
        *out_len = 1;
        return j + 2;
    }
    if (t[0] != '\\')
        return 0;
    size_t once = decode_json_escape(t, n, out, out_len);
    if (once && !(*out_len == 1 && out[0] == '\\'))
        return once;
    /* a run of backslashes: the escape that follows it, one level deeper each doubling */
    size_t b = 1;
    while (b < n && b < MAX_BACKSLASHES && t[b] == '\\')
        b++;
    if (b > 1) {
        unsigned char deep[4];
        size_t deep_len = 0;
        size_t esc = decode_json_escape(t + b - 1, n - (b - 1), deep, &deep_len);
        if (esc && !(deep_len == 1 && deep[0] == '\\')) {
            memcpy(out, deep, deep_len);
            *out_len = deep_len;
            return b - 1 + esc;
        }
        once = decode_json_escape(t, n, out, out_len);   /* out was overwritten */
    }
    return once;
}

/* ---- matching ---- */

static int bytes_match(const pattern *p, size_t k, const unsigned char *b, size_t n)
{
    if (n > p->len - k)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((p->fold ? lower(b[i]) : b[i]) != p->bytes[k + i])
            return 0;
    return 1;
}

/* The end of the longest match of p at t[i..n) that counts, or 0. */
static size_t match_at(const pattern *p, const unsigned char *t, size_t n, size_t i)
{
    size_t k = 0, j = i;
    while (k < p->len && j < n) {
        unsigned char dec[4];
        size_t dec_len = 0;
        size_t esc = decode_escape(t + j, n - j, dec, &dec_len);
        if (esc && bytes_match(p, k, dec, dec_len)) {
            k += dec_len;
            j += esc;
        } else if (bytes_match(p, k, t + j, 1)) {
            k++;
            j++;
        } else {
            break;
        }
    }
    return k >= p->min_match ? j : 0;
}

static size_t bucket_match(const keyset *ks, unsigned char first, const unsigned char *t,
                           size_t n, size_t i, size_t best)
{
    unsigned b = lower(first);
    for (size_t o = ks->start[b]; o < ks->start[b + 1]; o++) {
        size_t end = match_at(&ks->pats[ks->order[o]], t, n, i);
        if (end > best)
            best = end;
    }
    return best;
}

/* The end of the longest match of any pattern at t[i..n), or 0. */
static size_t longest_match(const keyset *ks, const unsigned char *t, size_t n, size_t i)
{
    size_t best = bucket_match(ks, t[i], t, n, i, 0);
    if (t[i] == '\\' || t[i] == '%') {
        unsigned char dec[4];
        size_t dec_len = 0;
        if (decode_escape(t + i, n - i, dec, &dec_len) && lower(dec[0]) != lower(t[i]))
            best = bucket_match(ks, dec[0], t, n, i, best);
    }
    return best;
}

/* The marker for a span of `span` bytes, written at dst; returns its length (<= span). */
static size_t put_marker(unsigned char *dst, size_t span)
{
    if (span >= MARKER_LEN) {
        memcpy(dst, MARKER, MARKER_LEN);
        return MARKER_LEN;
    }
    size_t m = span < 3 ? span : 3;
    memset(dst, '*', m);
    return m;
}

static size_t scan(const keyset *ks, unsigned char *t, size_t len)
{
    size_t w = 0;            /* where the output goes next */
    size_t copied = 0;       /* input before this is output (or replaced) */
    size_t span_start = 0, span_end = 0;
    int in_span = 0;
    for (size_t i = 0; i <= len; i++) {
        if (in_span && (i > span_end || i == len)) {
            /* span_end < i: the writes below end before anything still to be read */
            memmove(t + w, t + copied, span_start - copied);
            w += span_start - copied;
            w += put_marker(t + w, span_end - span_start);
            copied = span_end;
            in_span = 0;
        }
        if (i == len)
            break;
        size_t end = longest_match(ks, t, len, i);
        if (!end)
            continue;
        if (!in_span) {
            in_span = 1;
            span_start = i;
            span_end = end;
        } else if (end > span_end) {
            span_end = end;
        }
    }
    memmove(t + w, t + copied, len - copied);
    w += len - copied;
    if (w < len)
        t[w] = '\0';
    return w;
}

size_t redact_inplace(char *buf, size_t len)
{
    if (!buf)
        return 0;
    if (len == 0)
        return 0;
    keyset *ks = acquire();
    if (!ks)
        return len;
    size_t n = scan(ks, (unsigned char *)buf, len);
    release(ks);
    return n;
}

char *redact_dup(const char *text)
{
    if (!text)
        return NULL;
    size_t len = strlen(text);
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, text, len + 1);
    redact_inplace(copy, len);
    return copy;
}

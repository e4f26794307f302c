/* shared_reply.c — see shared_reply.h.  Every check here guards against a reply that
 * another (buggy, old or hostile) host, a tampered key or a different server could
 * produce: nothing from Redis is trusted to have the shape our scripts return. */
#include "shared_reply.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- key components ---- */

static int kept_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || c == '/' || c == '@' || c == '+' || c == '=';
}

long shreply_escape(const char *src, size_t len, char *dst, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (cap == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        size_t need = kept_byte(c) ? 1 : 3;
        if (o + need >= cap) {
            dst[0] = '\0';
            return -1;
        }
        if (need == 1) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return (long)o;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long shreply_unescape(const char *src, size_t len, char *dst, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int c;
        if (src[i] == '%') {
            int hi = i + 2 < len ? hex_value(src[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(src[i + 2]) : -1;
            if (lo < 0 || (c = hi * 16 + lo) == 0)
                goto bad;
            i += 2;
        } else if (kept_byte((unsigned char)src[i])) {
            c = (unsigned char)src[i];
        } else {
            goto bad;
        }
        if (o + 1 >= cap)
            goto bad;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return (long)o;
bad:
    dst[0] = '\0';
    return -1;
}

/* ---- helpers ---- */

static int fail(rf_err *err, const char *what, const char *why)
{
    return rf_err_set(err, EIO, "unexpected reply to %s from Redis: %s", what, why);
}

/* An array of exactly n elements (n < 0: any length). */
static int is_array(const redisReply *r, long n)
{
    return r && r->type == REDIS_REPLY_ARRAY && (r->elements == 0 || r->element) &&
           (n < 0 || r->elements == (size_t)n);
}

static int int_in(const redisReply *r, long long lo, long long hi, long long *v)
{
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer < lo || r->integer > hi)
        return -1;
    *v = r->integer;
    return 0;
}

/* An amount: 0 .. SHARED_NUSD_MAX; a negative one (tampering) clamps to 0. */
static int amount(const redisReply *r, int64_t *v)
{
    long long x;
    if (int_in(r, -SHARED_NUSD_MAX, SHARED_NUSD_MAX, &x) < 0)
        return -1;
    *v = x < 0 ? 0 : x;
    return 0;
}

/* Decimal digits only, 0 .. max. */
static int decimal(const char *s, size_t len, int64_t max, int64_t *v)
{
    if (len == 0 || len > 19)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (x > (max - (s[i] - '0')) / 10)
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

static int parse_windows(const redisReply *const *el, int nwin, shreply_win *w)
{
    for (int i = 0; i < nwin; i++)
        if (amount(el[3 * i], &w[i].spent) < 0 || amount(el[3 * i + 1], &w[i].reserved) < 0 ||
            amount(el[3 * i + 2], &w[i].host) < 0)
            return -1;
    return 0;
}

/* ---- budget ---- */

int shreply_budget_parse(const redisReply *r, const char *what, int nwin, int max_code,
                         shreply_budget *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    if (nwin < 1 || nwin > SHREPLY_BUDGET_MAX)
        return fail(err, what, "bad window count");
    if (!is_array(r, 3 + 3L * nwin))
        return fail(err, what, "not an array of the expected length");
    long long code, idx, now;
    if (int_in(r->element[0], 0, max_code, &code) < 0 ||
        int_in(r->element[1], 0, nwin, &idx) < 0 ||
        int_in(r->element[2], 0, SHARED_NUSD_MAX, &now) < 0)
        return fail(err, what, "bad status fields");
    /* the refusing window is named exactly when there is a refusal (reserve's codes) */
    if (max_code == 2 && (code == 0) != (idx == 0))
        return fail(err, what, "status and window disagree");
    if (max_code != 2 && idx != 0)
        return fail(err, what, "unexpected window");
    if (parse_windows((const redisReply *const *)r->element + 3, nwin, out->w) < 0) {
        memset(out, 0, sizeof *out);
        return fail(err, what, "bad window totals");
    }
    out->code = (int)code;
    out->idx = (int)idx;
    out->now_ms = now;
    out->n = nwin;
    return 0;
}

/* ---- limits ---- */

int shreply_rate_parse(const redisReply *r, int64_t *wait_us, int64_t *slot_us, rf_err *err)
{
    long long w, t;
    if (!is_array(r, 2) || int_in(r->element[0], 0, SHARED_NUSD_MAX, &w) < 0 ||
        int_in(r->element[1], 0, SHARED_NUSD_MAX, &t) < 0)
        return fail(err, "rate", "expected {wait_us, slot_us}");
    *wait_us = w;
    *slot_us = t;
    return 0;
}

int shreply_slot_parse(const redisReply *r, int *granted, long *count, long *retry_ms,
                       rf_err *err)
{
    long long g, c, ms;
    if (!is_array(r, 3) || int_in(r->element[0], 0, 1, &g) < 0 ||
        int_in(r->element[1], 0, 1000000000LL, &c) < 0 ||
        int_in(r->element[2], 0, 1000000000LL, &ms) < 0)
        return fail(err, "slot", "expected {granted, count, retry_ms}");
    *granted = (int)g;
    *count = (long)c;
    *retry_ms = (long)ms;
    return 0;
}

int shreply_set_nx_parse(const redisReply *r, int *granted, rf_err *err)
{
    if (r && r->type == REDIS_REPLY_NIL) {
        *granted = 0;
        return 0;
    }
    if (r && r->type == REDIS_REPLY_STATUS && r->len == 2 && r->str &&
        memcmp(r->str, "OK", 2) == 0) {
        *granted = 1;
        return 0;
    }
    return fail(err, "SET NX", "expected OK or nil");
}

/* ---- breakers ---- */

int shreply_breaker_field(const char *field, size_t len, shreply_breaker *b)
{
    const char *colon = memchr(field, ':', len);
    size_t plen = colon ? (size_t)(colon - field) : len;
    b->provider[0] = b->model[0] = '\0';
    if (plen == 0 || shreply_unescape(field, plen, b->provider, sizeof b->provider) < 0)
        return -1;
    if (colon) {
        size_t mlen = len - plen - 1;
        if (mlen == 0 || shreply_unescape(colon + 1, mlen, b->model, sizeof b->model) < 0) {
            b->provider[0] = '\0';
            return -1;
        }
    }
    return 0;
}

int shreply_breaker_value(const char *value, size_t len, shreply_breaker *b)
{
    const char *p = value, *end = value + len;
    const char *bar[4];
    /* "1|" then three more '|' separated fields; the reason is everything after */
    if (len < 2 || p[0] != '1' || p[1] != '|')
        return -1;
    const char *q = p + 2;
    for (int i = 0; i < 3; i++) {
        bar[i] = memchr(q, '|', (size_t)(end - q));
        if (!bar[i])
            return -1;
        q = bar[i] + 1;
    }
    int64_t until, at;
    if (decimal(p + 2, (size_t)(bar[0] - p - 2), SHARED_NUSD_MAX, &until) < 0 ||
        decimal(bar[0] + 1, (size_t)(bar[1] - bar[0] - 1), SHARED_NUSD_MAX, &at) < 0)
        return -1;
    size_t hlen = (size_t)(bar[2] - bar[1] - 1);
    if (hlen == 0 || hlen > SHARED_HOST_ID_MAX)
        return -1;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)bar[1][1 + i];
        if (c <= ' ' || c >= 0x7f)
            return -1;
    }
    b->until_ms = until;
    b->at_ms = at;
    memcpy(b->host, bar[1] + 1, hlen);
    b->host[hlen] = '\0';
    size_t rlen = (size_t)(end - bar[2] - 1), o = 0;
    for (size_t i = 0; i < rlen && o < SHARED_REASON_MAX; i++) {
        unsigned char c = (unsigned char)bar[2][1 + i];
        b->reason[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    b->reason[o] = '\0';
    return 0;
}

void shreply_sync_free(shreply_sync *out)
{
    if (!out)
        return;
    free(out->breakers);
    memset(out, 0, sizeof *out);
}

int shreply_sync_parse(const redisReply *r, int nwin, shreply_sync *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    long long now;
    if (nwin < 0 || nwin > SHREPLY_WINDOWS_MAX)
        return fail(err, "sync", "bad window count");
    if (!is_array(r, 3) || int_in(r->element[0], 0, SHARED_NUSD_MAX, &now) < 0 ||
        !is_array(r->element[1], -1) || r->element[1]->elements % 2 != 0 ||
        !is_array(r->element[2], 3L * nwin))
        return fail(err, "sync", "expected {now, {field, value, ...}, {totals}}");
    if (parse_windows((const redisReply *const *)r->element[2]->element, nwin, out->w) < 0) {
        memset(out, 0, sizeof *out);
        return fail(err, "sync", "bad window totals");
    }
    const redisReply *flat = r->element[1];
    size_t pairs = flat->elements / 2;
    if (pairs) {
        out->breakers = calloc(pairs, sizeof *out->breakers);
        if (!out->breakers) {
            memset(out, 0, sizeof *out);
            return rf_err_set(err, ENOMEM, "out of memory reading breakers from Redis");
        }
    }
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *f = flat->element[2 * i], *v = flat->element[2 * i + 1];
        shreply_breaker *b = &out->breakers[out->nbreakers];
        if (!f || f->type != REDIS_REPLY_STRING || !f->str || !v ||
            v->type != REDIS_REPLY_STRING || !v->str ||
            shreply_breaker_field(f->str, f->len, b) < 0 ||
            shreply_breaker_value(v->str, v->len, b) < 0) {
            memset(b, 0, sizeof *b);
            out->skipped++;
            continue;
        }
        out->nbreakers++;
    }
    out->now_ms = now;
    out->n = nwin;
    return 0;
}

/* ---- connection ---- */

int shreply_integer_parse(const redisReply *r, long long *v, rf_err *err)
{
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return fail(err, "command", "expected an integer");
    *v = r->integer;
    return 0;
}

int shreply_time_parse(const redisReply *r, int64_t *ms, rf_err *err)
{
    int64_t sec, usec;
    if (!is_array(r, 2) || !r->element[0] || r->element[0]->type != REDIS_REPLY_STRING ||
        !r->element[1] || r->element[1]->type != REDIS_REPLY_STRING ||
        !r->element[0]->str || !r->element[1]->str ||
        decimal(r->element[0]->str, r->element[0]->len, 4102444800LL /* 2100 */, &sec) < 0 ||
        decimal(r->element[1]->str, r->element[1]->len, 999999, &usec) < 0)
        return fail(err, "TIME", "expected {seconds, microseconds}");
    *ms = sec * 1000 + usec / 1000;
    return 0;
}

int shreply_sha_parse(const redisReply *r, char sha[41], rf_err *err)
{
    sha[0] = '\0';
    if (!r || r->type != REDIS_REPLY_STRING || !r->str || r->len != 40)
        return fail(err, "SCRIPT LOAD", "expected a SHA-1");
    for (size_t i = 0; i < 40; i++) {
        int v = hex_value(r->str[i]);
        if (v < 0) {
            sha[0] = '\0';
            return fail(err, "SCRIPT LOAD", "expected a SHA-1");
        }
        sha[i] = "0123456789abcdef"[v];
    }
    sha[40] = '\0';
    return 0;
}

int shreply_status_parse(const redisReply *r, const char *expect, rf_err *err)
{
    size_t n = strlen(expect);
    if (r && r->type == REDIS_REPLY_STATUS && r->str && r->len == n &&
        memcmp(r->str, expect, n) == 0)
        return 0;
    char text[200];
    if (shreply_error_text(r, text, sizeof text))
        return rf_err_set(err, EIO, "%s", text);
    return rf_err_set(err, EIO, "unexpected reply from Redis: expected %s", expect);
}

int shreply_error_text(const redisReply *r, char *buf, size_t len)
{
    if (len)
        buf[0] = '\0';
    if (!r || r->type != REDIS_REPLY_ERROR || len == 0)
        return 0;
    size_t o = 0;
    for (size_t i = 0; r->str && i < r->len && o + 1 < len; i++) {
        unsigned char c = (unsigned char)r->str[i];
        buf[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    buf[o] = '\0';
    if (o == 0)
        snprintf(buf, len, "error reply");
    return 1;
}

int shreply_is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && r->len >= 8 &&
           memcmp(r->str, "NOSCRIPT", 8) == 0;
}

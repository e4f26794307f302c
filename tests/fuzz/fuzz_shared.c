/* fuzz_shared.c — libFuzzer target for everything that interprets what Redis sends back
 * to the shared-state module (src/shared_reply.c).
 *
 * The input is a byte stream as a Redis server would send it (RESP).  hiredis's own
 * redisReader turns it into reply trees, exactly as on the connection; array sizes are
 * capped at 4096 elements so that "*2147483647\r\n" does not ask calloc for 16 GiB.  Up to
 * 32 replies are taken, and each goes through every parser: the budget scripts' result
 * (1..4 and the implied number of windows, each status range), rate, slot, SET NX, the
 * sync result (breaker entries and window totals, with 0..3 and the implied number of
 * windows), integer, TIME, SCRIPT LOAD, status, error text and NOSCRIPT.  Every
 * successful parse is checked against the guarantees shared_reply.h gives; every failed
 * one must leave a one-line EIO/ENOMEM error and zeroed output.  The raw input also goes
 * through the key escaping (escape then unescape gives the input back; unescape then
 * escape then unescape is stable) and the breaker field and value parsers.
 *
 * A broken invariant aborts (a crash for libFuzzer, a failed test for test_fuzz_corpus.c,
 * which includes this file with LLVMFuzzerTestOneInput renamed).  Built by
 * tests/fuzz/fuzz.mk. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "shared_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FS_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_shared: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define FS_REPLIES_MAX 32
#define FS_ARRAY_MAX 4096

/* ---- a reader whose arrays are capped ---- */

static redisReplyObjectFunctions *fs_default;
static redisReplyObjectFunctions fs_capped;

static void *fs_array(const redisReadTask *task, int elements)
{
    if (elements > FS_ARRAY_MAX)
        return NULL;                   /* the reader reports "out of memory": a bad input */
    return fs_default->createArray(task, elements);
}

static redisReader *fs_reader(void)
{
    redisReader *r = redisReaderCreate();
    FS_CHECK(r != NULL);
    if (!fs_default) {
        fs_default = r->fn;
        fs_capped = *r->fn;
        fs_capped.createArray = fs_array;
    }
    r->fn = &fs_capped;
    r->maxbuf = 0;
    return r;
}

/* ---- invariants ---- */

static void fs_check_err(int rc, const rf_err *err)
{
    FS_CHECK(rc == -1);
    FS_CHECK(err->code == EIO || err->code == ENOMEM);
    size_t len = strnlen(err->msg, sizeof err->msg);
    FS_CHECK(len > 0 && len < sizeof err->msg);
    FS_CHECK(!memchr(err->msg, '\n', len) && !memchr(err->msg, '\r', len));
}

/* All zero?  (memcmp, not a byte loop: libFuzzer traces every comparison of a loop.) */
static int fs_zero(const void *p, size_t n)
{
    static const unsigned char zero[sizeof(shreply_sync) > sizeof(shreply_budget)
                                        ? sizeof(shreply_sync) : sizeof(shreply_budget)];
    FS_CHECK(n <= sizeof zero);
    return memcmp(p, zero, n) == 0;
}

static void fs_check_win(const shreply_win *w)
{
    FS_CHECK(w->spent >= 0 && w->spent <= SHARED_NUSD_MAX);
    FS_CHECK(w->reserved >= 0 && w->reserved <= SHARED_NUSD_MAX);
    FS_CHECK(w->host >= 0 && w->host <= SHARED_NUSD_MAX);
}

static void fs_check_text(const char *s, size_t cap, int allow_space)
{
    size_t len = strnlen(s, cap);
    FS_CHECK(len < cap);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        FS_CHECK(c >= 0x20 && c != 0x7f);
        if (!allow_space)
            FS_CHECK(c != ' ' && c != '|');
    }
}

static void fs_check_breaker(const shreply_breaker *b)
{
    FS_CHECK(strnlen(b->provider, sizeof b->provider) > 0);
    FS_CHECK(strnlen(b->provider, sizeof b->provider) < sizeof b->provider);
    FS_CHECK(strnlen(b->model, sizeof b->model) < sizeof b->model);
    FS_CHECK(b->until_ms >= 0 && b->until_ms <= SHARED_NUSD_MAX);
    FS_CHECK(b->at_ms >= 0 && b->at_ms <= SHARED_NUSD_MAX);
    FS_CHECK(strlen(b->host) > 0);
    fs_check_text(b->host, sizeof b->host, 0);
    fs_check_text(b->reason, sizeof b->reason, 1);
    /* a name decodes from, and escapes back to, a form that decodes the same */
    char esc[SHARED_NAME_MAX * 3 + 1], back[SHARED_NAME_MAX + 1];
    long n = shreply_escape(b->provider, strlen(b->provider), esc, sizeof esc);
    FS_CHECK(n > 0);
    FS_CHECK(shreply_unescape(esc, (size_t)n, back, sizeof back) == (long)strlen(b->provider));
    FS_CHECK(strcmp(back, b->provider) == 0);
}

/* ---- the parsers on one reply ---- */

static void fs_budget(const redisReply *r)
{
    int implied = r->type == REDIS_REPLY_ARRAY && r->elements >= 3 ? (int)(r->elements - 3) / 3
                                                                   : 1;
    int tries[] = {implied < 1 ? 1 : implied > SHREPLY_BUDGET_MAX ? 1 : implied, 1, 2, 3, 4};
    /* only an array of 3 + 3n elements can parse: one try is enough for anything else */
    size_t ntries = r->type == REDIS_REPLY_ARRAY && r->elements >= 6 && r->elements % 3 == 0
                        ? sizeof tries / sizeof *tries : 1;
    for (size_t t = 0; t < ntries; t++) {
        for (int max_code = 0; max_code <= 2; max_code++) {
            shreply_budget b;
            rf_err err;
            rf_err_clear(&err);
            int rc = shreply_budget_parse(r, "fuzz", tries[t], max_code, &b, &err);
            if (rc < 0) {
                fs_check_err(rc, &err);
                FS_CHECK(fs_zero(&b, sizeof b));
                continue;
            }
            FS_CHECK(rc == 0);
            FS_CHECK(b.n == tries[t]);
            FS_CHECK(b.code >= 0 && b.code <= max_code);
            FS_CHECK(b.idx >= 0 && b.idx <= b.n);
            if (max_code == 2)
                FS_CHECK((b.code == 0) == (b.idx == 0));
            else
                FS_CHECK(b.idx == 0);
            FS_CHECK(b.now_ms >= 0);
            for (int i = 0; i < b.n; i++)
                fs_check_win(&b.w[i]);
        }
    }
    shreply_budget b;
    FS_CHECK(shreply_budget_parse(r, "fuzz", 0, 2, &b, NULL) == -1);
    FS_CHECK(shreply_budget_parse(r, "fuzz", SHREPLY_BUDGET_MAX + 1, 2, &b, NULL) == -1);
}

static void fs_sync(const redisReply *r)
{
    int implied = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[2] &&
        r->element[2]->type == REDIS_REPLY_ARRAY)
        implied = (int)(r->element[2]->elements / 3);
    if (implied > SHREPLY_WINDOWS_MAX)
        implied = 0;
    int tries[] = {implied, 0, 1, 3};
    size_t ntries = r->type == REDIS_REPLY_ARRAY && r->elements == 3 ? 4 : 1;
    for (size_t t = 0; t < ntries; t++) {
        shreply_sync y;
        rf_err err;
        rf_err_clear(&err);
        int rc = shreply_sync_parse(r, tries[t], &y, &err);
        if (rc < 0) {
            fs_check_err(rc, &err);
            FS_CHECK(fs_zero(&y, sizeof y));
            continue;
        }
        FS_CHECK(y.n == tries[t]);
        FS_CHECK(y.now_ms >= 0);
        FS_CHECK((y.nbreakers == 0) || y.breakers);
        FS_CHECK(2 * (y.nbreakers + y.skipped) == r->element[1]->elements);
        for (size_t i = 0; i < y.nbreakers; i++)
            fs_check_breaker(&y.breakers[i]);
        for (int i = 0; i < y.n; i++)
            fs_check_win(&y.w[i]);
        shreply_sync_free(&y);
        FS_CHECK(y.breakers == NULL && y.nbreakers == 0);
    }
}

static void fs_reply(const redisReply *r)
{
    rf_err err;
    fs_budget(r);
    fs_sync(r);

    int64_t wait_us = -1, slot_us = -1;
    int rc = shreply_rate_parse(r, &wait_us, &slot_us, &err);
    if (rc == 0)
        FS_CHECK(wait_us >= 0 && slot_us >= 0);
    else
        fs_check_err(rc, &err);

    int granted = -1;
    long count = -1, retry = -1;
    rc = shreply_slot_parse(r, &granted, &count, &retry, &err);
    if (rc == 0)
        FS_CHECK((granted == 0 || granted == 1) && count >= 0 && retry >= 0);
    else
        fs_check_err(rc, &err);

    granted = -1;
    rc = shreply_set_nx_parse(r, &granted, &err);
    if (rc == 0)
        FS_CHECK(granted == (r->type == REDIS_REPLY_STATUS));
    else
        fs_check_err(rc, &err);

    long long v;
    rc = shreply_integer_parse(r, &v, &err);
    FS_CHECK((rc == 0) == (r->type == REDIS_REPLY_INTEGER));
    if (rc < 0)
        fs_check_err(rc, &err);

    int64_t ms = -1;
    rc = shreply_time_parse(r, &ms, &err);
    if (rc == 0)
        FS_CHECK(ms >= 0);
    else
        fs_check_err(rc, &err);

    char sha[41];
    rc = shreply_sha_parse(r, sha, &err);
    if (rc == 0) {
        FS_CHECK(strlen(sha) == 40);
        for (int i = 0; i < 40; i++)
            FS_CHECK((sha[i] >= '0' && sha[i] <= '9') || (sha[i] >= 'a' && sha[i] <= 'f'));
    } else {
        fs_check_err(rc, &err);
        FS_CHECK(sha[0] == '\0');
    }

    const char *expect[] = {"OK", "PONG"};
    for (int i = 0; i < 2; i++) {
        rc = shreply_status_parse(r, expect[i], &err);
        if (rc < 0)
            fs_check_err(rc, &err);
        else
            FS_CHECK(r->type == REDIS_REPLY_STATUS);
    }

    char text[64];
    int is_err = shreply_error_text(r, text, sizeof text);
    FS_CHECK(is_err == (r->type == REDIS_REPLY_ERROR));
    fs_check_text(text, sizeof text, 1);
    FS_CHECK(!is_err || text[0]);
    FS_CHECK(!shreply_is_noscript(r) || is_err);

    if (r->type == REDIS_REPLY_ARRAY)           /* the elements are replies too */
        for (size_t i = 0; i < r->elements && i < 8; i++)
            if (r->element[i])
                fs_reply(r->element[i]);
}

/* ---- the raw bytes as key components and breaker entries ---- */

static void fs_strings(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t n = size > 600 ? 600 : size;
    static char esc[3 * 600 + 1], back[601], again[3 * 600 + 1], back2[601];
    long e = shreply_escape(s, n, esc, sizeof esc);
    FS_CHECK(e >= 0 && (size_t)e >= n);
    long u = shreply_unescape(esc, (size_t)e, back, sizeof back);
    if (memchr(s, '\0', n)) {
        FS_CHECK(u == -1);                      /* %00 is never decoded */
    } else {
        FS_CHECK(u == (long)n && memcmp(back, s, n) == 0);
    }
    FS_CHECK(shreply_escape(s, n, esc, (size_t)e) == -1 && esc[0] == '\0');   /* too small */

    u = shreply_unescape(s, n, back, sizeof back);
    if (u >= 0) {
        FS_CHECK((size_t)u <= n && strlen(back) == (size_t)u);
        long e2 = shreply_escape(back, (size_t)u, again, sizeof again);
        FS_CHECK(e2 >= 0);
        FS_CHECK(shreply_unescape(again, (size_t)e2, back2, sizeof back2) == u);
        FS_CHECK(memcmp(back, back2, (size_t)u) == 0);
    } else {
        FS_CHECK(back[0] == '\0');
    }

    shreply_breaker b;
    memset(&b, 0, sizeof b);
    if (shreply_breaker_field(s, size, &b) == 0) {
        FS_CHECK(b.provider[0] != '\0');
        FS_CHECK(strnlen(b.model, sizeof b.model) < sizeof b.model);
    } else {
        FS_CHECK(b.provider[0] == '\0');
    }
    memset(&b, 0, sizeof b);
    if (shreply_breaker_value(s, size, &b) == 0) {
        FS_CHECK(size >= 6 && s[0] == '1');
        FS_CHECK(b.until_ms >= 0 && b.at_ms >= 0);
        fs_check_text(b.host, sizeof b.host, 0);
        fs_check_text(b.reason, sizeof b.reason, 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs_strings(data, size);
    redisReader *rd = fs_reader();
    if (redisReaderFeed(rd, (const char *)data, size) != REDIS_OK) {
        redisReaderFree(rd);
        return 0;
    }
    for (int i = 0; i < FS_REPLIES_MAX; i++) {
        void *reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK || !reply)
            break;                              /* a protocol error, or no whole reply */
        fs_reply(reply);
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
    return 0;
}

/* fuzz_stream.c — libFuzzer target for the incremental SSE parser (src/stream.c).
 *
 * The input is a streamed response body as a provider can send it, behind a small header
 * that says how to cut it:
 *   byte 0     bits 0-2: k, the number of chunk-size bytes that follow (0: one feed);
 *              bit 3: a small max_bytes (half the stream, + 1) instead of the default
 *   bytes 1..k chunk sizes, each byte + 1 (1..256), used in turn
 *   the rest   the stream
 * The stream is fed in those chunks, then stream_finish.  Checked on the way:
 *   - every feed returns MORE / PROGRESS / FAILED, FAILED stays, PROGRESS means more
 *     tokens and more tokens mean not MORE; stream_error is "" until failed, then one line;
 *   - the live text is valid UTF-8 and only grows by appending, and is the start of the
 *     final content;
 *   - finish: OK means non-empty valid UTF-8 content without NUL, sane tokens and cost,
 *     no finish_reason "error"; anything else a zeroed completion and a one-line error
 *     (EIO, EILSEQ, EFBIG, ENOMEM) that is stream_error when a feed failed; a second
 *     finish is refused;
 *   - the same stream in one feed gives exactly the same result (cuts do not matter);
 *   - a kept error body goes through openai_parse_error_status.
 *
 * A broken invariant aborts (a crash for libFuzzer, a failed test for test_fuzz_corpus.c,
 * which includes this file with LLVMFuzzerTestOneInput renamed).  Built by tests/fuzz/fuzz.mk. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FS_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_stream: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF); written apart from
 * the code under test on purpose. */
static int fs_valid_utf8(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i < n)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n;
    }
    return 1;
}

static void fs_check_line(const char *msg, size_t cap)
{
    size_t len = strnlen(msg, cap);
    FS_CHECK(len < cap);
    FS_CHECK(!memchr(msg, '\n', len) && !memchr(msg, '\r', len));
}

static int fs_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* What one run of the parser said. */
typedef struct fs_run {
    openai_status status;
    rf_err err;
    openai_completion c;
    char error[512];
    char *error_body;     /* malloc'd copy or NULL */
    size_t error_body_len;
    long tokens;
    int ended;
    int failed;
} fs_run;

static void fs_check_error_body(const char *body, size_t len)
{
    openai_error_info info;
    openai_parse_error_status(0, body, len, &info);
    FS_CHECK(strnlen(info.msg, sizeof info.msg) < sizeof info.msg);
    FS_CHECK(strnlen(info.detail_json, sizeof info.detail_json) < sizeof info.detail_json);
    FS_CHECK(info.content_policy == 0 || info.content_policy == 1);
    FS_CHECK(info.insufficient_credits == 0 || info.insufficient_credits == 1);
    FS_CHECK(info.key_limit == 0 || info.key_limit == 1);
}

/* Feed stream[0..len) cut by sizes (n_sizes 0: one feed), with the live-text checks, then
 * finish.  r owns its completion and error body (fs_run_free). */
static void fs_run_stream(const uint8_t *stream, size_t len, const uint8_t *sizes,
                          size_t n_sizes, size_t max_bytes, fs_run *r)
{
    memset(r, 0, sizeof *r);
    stream_parser *p = stream_new(max_bytes);
    FS_CHECK(p);
    unsigned char *shadow = malloc(len + 1);   /* the live text, as appended */
    FS_CHECK(shadow);
    size_t shadow_len = 0, at = 0, turn = 0;
    long tokens = 0;
    while (at < len || (at == 0 && len == 0)) {
        size_t n = n_sizes ? (size_t)sizes[turn++ % n_sizes] + 1 : len;
        if (n > len - at)
            n = len - at;
        int rc = stream_feed(p, (const char *)stream + at, n);
        at += n;
        FS_CHECK(rc == STREAM_MORE || rc == STREAM_PROGRESS || rc == STREAM_FAILED);
        if (r->failed)
            FS_CHECK(rc == STREAM_FAILED);
        r->failed = rc == STREAM_FAILED;
        long now = stream_tokens(p);
        FS_CHECK(now >= tokens);
        if (rc == STREAM_PROGRESS)
            FS_CHECK(now > tokens);
        if (now > tokens)
            FS_CHECK(rc != STREAM_MORE);
        tokens = now;
        const char *error = stream_error(p);
        FS_CHECK(error);
        if (r->failed) {
            FS_CHECK(error[0]);
            fs_check_line(error, 512);
        } else {
            FS_CHECK(error[0] == '\0');
        }
        size_t live_len;
        const char *live = stream_text(p, &live_len);
        FS_CHECK(live && live_len >= shadow_len && live_len <= len);
        /* the old text is kept (spot-checked here, in full against the final content) */
        size_t spot = shadow_len < 8 ? shadow_len : 8;
        FS_CHECK(memcmp(live + shadow_len - spot, shadow + shadow_len - spot, spot) == 0);
        FS_CHECK(fs_valid_utf8((const unsigned char *)live + shadow_len, live_len - shadow_len));
        memcpy(shadow + shadow_len, live + shadow_len, live_len - shadow_len);
        shadow_len = live_len;
        if (len == 0)
            break;
    }
    snprintf(r->error, sizeof r->error, "%s", stream_error(p));
    r->tokens = stream_tokens(p);
    r->ended = stream_ended(p);
    memset(&r->c, 0xA5, sizeof r->c);   /* finish must initialise everything */
    rf_err_clear(&r->err);
    r->status = stream_finish(p, &r->c, &r->err);
    FS_CHECK(r->status >= OPENAI_OK && r->status <= OPENAI_TRUNCATED);
    size_t body_len;
    const char *body = stream_error_body(p, &body_len);
    if (body) {
        FS_CHECK(body_len > 0 && (r->failed || r->status != OPENAI_OK));
        r->error_body = malloc(body_len);
        FS_CHECK(r->error_body);
        memcpy(r->error_body, body, body_len);
        r->error_body_len = body_len;
        fs_check_error_body(body, body_len);
    } else {
        FS_CHECK(body_len == 0);
    }

    openai_completion *c = &r->c;
    if (r->status == OPENAI_OK) {
        FS_CHECK(r->err.code == 0 && !r->failed);
        FS_CHECK(c->content && c->content[0]);
        size_t content_len = strlen(c->content);
        FS_CHECK(fs_valid_utf8((const unsigned char *)c->content, content_len));
        /* the live text was the content's start, unless the content is tool calls (the
         * live text is then empty) or a whole JSON body (likewise) */
        FS_CHECK(content_len >= shadow_len && memcmp(c->content, shadow, shadow_len) == 0);
        FS_CHECK(c->prompt_tokens >= -1 && c->completion_tokens >= -1);
        FS_CHECK(c->has_cost == 0 || c->has_cost == 1);
        FS_CHECK(c->cost_invalid == 0 || c->cost_invalid == 1);
        FS_CHECK(!(c->has_cost && c->cost_invalid));
        if (c->has_cost)
            FS_CHECK(isfinite(c->cost) && c->cost >= 0);
        else
            FS_CHECK(c->cost == 0);
        FS_CHECK(strlen(c->model ? c->model : "") + strlen(c->provider ? c->provider : "") +
                 strlen(c->id ? c->id : "") + strlen(c->service_tier ? c->service_tier : "") <
                 SIZE_MAX);
        if (c->finish_reason)
            FS_CHECK(strcmp(c->finish_reason, "error") != 0);
        size_t after;
        stream_text(p, &after);
        FS_CHECK(after == 0);
    } else {
        FS_CHECK(r->err.code == EIO || r->err.code == EILSEQ || r->err.code == EFBIG ||
                 r->err.code == ENOMEM);
        FS_CHECK(r->err.msg[0]);
        fs_check_line(r->err.msg, sizeof r->err.msg);
        if (r->failed)
            FS_CHECK(strcmp(r->err.msg, r->error) == 0);
        FS_CHECK(!c->content && !c->model && !c->provider && !c->finish_reason && !c->id &&
                 !c->service_tier && !c->has_cost && !c->cost_invalid && c->cost == 0);
    }
    /* once only */
    openai_completion again;
    rf_err err;
    FS_CHECK(stream_finish(p, &again, &err) == OPENAI_NOT_JSON && err.code == EINVAL);
    FS_CHECK(!again.content);
    stream_free(p);
    free(shadow);
}

static void fs_run_free(fs_run *r)
{
    openai_completion_free(&r->c);
    free(r->error_body);
}

/* Two runs of the same stream said the same. */
static void fs_check_same(const fs_run *a, const fs_run *b)
{
    FS_CHECK(a->status == b->status);
    FS_CHECK(a->err.code == b->err.code && strcmp(a->err.msg, b->err.msg) == 0);
    FS_CHECK(strcmp(a->error, b->error) == 0);
    FS_CHECK(a->tokens == b->tokens && a->ended == b->ended && a->failed == b->failed);
    FS_CHECK(a->error_body_len == b->error_body_len &&
             (!a->error_body_len || memcmp(a->error_body, b->error_body, a->error_body_len) == 0));
    const openai_completion *x = &a->c, *y = &b->c;
    FS_CHECK(fs_same(x->content, y->content) && fs_same(x->model, y->model) &&
             fs_same(x->provider, y->provider) && fs_same(x->finish_reason, y->finish_reason) &&
             fs_same(x->id, y->id) && fs_same(x->service_tier, y->service_tier));
    FS_CHECK(x->prompt_tokens == y->prompt_tokens && x->completion_tokens == y->completion_tokens);
    FS_CHECK(x->has_cost == y->has_cost && x->cost_invalid == y->cost_invalid &&
             (x->cost == y->cost || (isnan(x->cost) && isnan(y->cost))));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t k = data[0] & 7;
    if (size < 1 + k)
        return 0;
    const uint8_t *sizes = data + 1, *stream = data + 1 + k;
    size_t len = size - 1 - k;
    size_t max_bytes = data[0] & 8 ? len / 2 + 1 : 0;

    /* an exact-size copy, so a read past the end is caught */
    uint8_t *copy = malloc(len ? len : 1);
    FS_CHECK(copy);
    memcpy(copy, stream, len);
    fs_run cut, whole;
    fs_run_stream(copy, len, sizes, k, max_bytes, &cut);
    fs_run_stream(copy, len, NULL, 0, max_bytes, &whole);
    fs_check_same(&cut, &whole);
    fs_run_free(&cut);
    fs_run_free(&whole);
    free(copy);
    return 0;
}

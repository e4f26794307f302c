/* fuzz_openai.c — libFuzzer target for the chat-completions wire format (src/openai.c).
 *
 * The input is whatever a provider (or a prompt file) can send us.  Every input goes
 * through:
 *   - openai_parse_response, as a 2xx body: OPENAI_OK means non-empty content and a sane
 *     cost (has_cost / cost_invalid) and every other status means a zeroed completion and a
 *     one-line error (EIO, EILSEQ, ENOMEM);
 *   - openai_parse_error_status, as a non-2xx body with several statuses: the message is
 *     one NUL-terminated line of valid UTF-8 without control characters, the same for every
 *     status, the flags are 0/1 and follow the status rules, and detail_json is "" or a
 *     JSON object of valid UTF-8 within its buffer;
 *   - openai_build_request, as the prompt file (model "fuzz/model", max_tokens 256), once
 *     bare and once streaming with a system prompt, a user tag, OpenRouter provider
 *     preferences, a models list, a service tier and a session id: a body must be a JSON
 *     object with the model, non-empty messages, the stream fields asked for and a token
 *     limit in [1, 256]; an error must be EINVAL or EILSEQ with a one-line message;
 *   - openai_request_params, as the prompt file: "max_tokens" first, no duplicates.
 *
 * A broken invariant aborts (a crash for libFuzzer, a failed test for test_fuzz_corpus.c,
 * which includes this file with LLVMFuzzerTestOneInput renamed).  Built by tests/fuzz/fuzz.mk. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FO_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_openai: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define FO_MODEL      "fuzz/model"
#define FO_MAX_TOKENS 256
#define FO_USER       "pipeline:fuzz"
#define FO_SYSTEM     "You are terse."
#define FO_PREFS      "{\"order\":[\"A\",\"B\"],\"allow_fallbacks\":false}"
#define FO_TIER       "flex"
#define FO_SESSION    "fuzz-session"

static const char *const fo_models[] = {FO_MODEL, "fuzz/second"};

/* One line: NUL-terminated within cap, no CR or LF. */
static void fo_check_line(const char *msg, size_t cap)
{
    size_t len = strnlen(msg, cap);
    FO_CHECK(len < cap);
    FO_CHECK(!memchr(msg, '\n', len) && !memchr(msg, '\r', len));
}

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int fo_valid_utf8(const unsigned char *s, size_t len)
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

static void fo_parse_response(const uint8_t *data, size_t size)
{
    openai_completion c;
    memset(&c, 0xA5, sizeof c);   /* the parser must initialise everything */
    rf_err err;
    rf_err_clear(&err);
    openai_status st = openai_parse_response((const char *)data, size, &c, &err);
    FO_CHECK(st >= OPENAI_OK && st <= OPENAI_EMPTY_CONTENT);
    if (st == OPENAI_OK) {
        FO_CHECK(err.code == 0);
        FO_CHECK(c.content && c.content[0]);
        FO_CHECK(c.prompt_tokens >= -1 && c.completion_tokens >= -1);
        FO_CHECK(c.has_cost == 0 || c.has_cost == 1);
        FO_CHECK(c.cost_invalid == 0 || c.cost_invalid == 1);
        FO_CHECK(!(c.has_cost && c.cost_invalid));
        if (c.has_cost)
            FO_CHECK(isfinite(c.cost) && c.cost >= 0);
        else
            FO_CHECK(c.cost == 0);
        /* every string is readable to its end */
        FO_CHECK(strlen(c.content) + (c.model ? strlen(c.model) : 0) +
                 (c.provider ? strlen(c.provider) : 0) +
                 (c.finish_reason ? strlen(c.finish_reason) : 0) +
                 (c.id ? strlen(c.id) : 0) + (c.service_tier ? strlen(c.service_tier) : 0) <
                 SIZE_MAX);
        if (c.finish_reason)
            FO_CHECK(strcmp(c.finish_reason, "error") != 0);
    } else {
        FO_CHECK(err.code == EIO || err.code == EILSEQ || err.code == ENOMEM);
        FO_CHECK(err.msg[0]);
        fo_check_line(err.msg, sizeof err.msg);
        FO_CHECK(!c.content && !c.model && !c.provider && !c.finish_reason && !c.id &&
                 !c.service_tier && !c.cost_invalid);
    }
    openai_completion_free(&c);
    FO_CHECK(!c.content && !c.model && !c.provider && !c.finish_reason && !c.id &&
             !c.service_tier);
}

static int fo_flag(int v)
{
    return v == 0 || v == 1;
}

static void fo_parse_error(const uint8_t *data, size_t size)
{
    static const int statuses[] = {0, 400, 402, 403, 429, 503};
    openai_error_info first;
    for (size_t s = 0; s < sizeof statuses / sizeof statuses[0]; s++) {
        openai_error_info info;
        memset(&info, 0xA5, sizeof info);
        openai_parse_error_status(statuses[s], (const char *)data, size, &info);
        size_t len = strnlen(info.msg, sizeof info.msg);
        FO_CHECK(len < sizeof info.msg);
        for (size_t i = 0; i < len; i++)
            FO_CHECK((unsigned char)info.msg[i] >= 0x20 && info.msg[i] != 0x7f);
        FO_CHECK(fo_valid_utf8((const unsigned char *)info.msg, len));
        FO_CHECK(len == 0 || (info.msg[0] != ' ' && info.msg[len - 1] != ' '));
        FO_CHECK(fo_flag(info.context_length) && fo_flag(info.unsupported_param) &&
                 fo_flag(info.content_policy) && fo_flag(info.insufficient_credits) &&
                 fo_flag(info.key_limit));
        if (statuses[s] == 402)
            FO_CHECK(info.insufficient_credits);
        if (statuses[s] >= 429)
            FO_CHECK(!info.content_policy);
        if (statuses[s] != 0 && statuses[s] != 403)
            FO_CHECK(!info.key_limit);
        /* detail_json: "" or one JSON object, valid UTF-8, within its buffer */
        size_t dlen = strnlen(info.detail_json, sizeof info.detail_json);
        FO_CHECK(dlen < sizeof info.detail_json);
        FO_CHECK(fo_valid_utf8((const unsigned char *)info.detail_json, dlen));
        if (dlen) {
            cJSON *detail = cJSON_Parse(info.detail_json);
            FO_CHECK(cJSON_IsObject(detail) && detail->child);
            cJSON_Delete(detail);
        }
        /* what the body says does not depend on the status */
        if (s == 0) {
            first = info;
            openai_error_info old;
            openai_parse_error((const char *)data, size, &old);
            FO_CHECK(memcmp(&old, &info, sizeof info) == 0);
        } else {
            FO_CHECK(strcmp(first.msg, info.msg) == 0);
            FO_CHECK(strcmp(first.detail_json, info.detail_json) == 0);
            FO_CHECK(first.context_length == info.context_length &&
                     first.unsupported_param == info.unsupported_param);
        }
    }
}

static int fo_by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void fo_check_body(const char *body, const openai_request_in *in)
{
    cJSON *req = cJSON_Parse(body);
    FO_CHECK(cJSON_IsObject(req));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    FO_CHECK(cJSON_IsString(model) &&
             strcmp(model->valuestring, in->models ? in->models[0] : in->model) == 0);
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
    FO_CHECK(cJSON_IsArray(messages) && messages->child);
    FO_CHECK(!cJSON_GetObjectItemCaseSensitive(req, "route"));
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(req, "stream");
    const cJSON *options = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    if (in->stream) {
        FO_CHECK(cJSON_IsTrue(stream) && cJSON_IsObject(options) &&
                 cJSON_GetArraySize(options) == 1);
        FO_CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(options, "include_usage")));
    } else {
        FO_CHECK(cJSON_IsFalse(stream) && !options);
    }
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(req, "models");
    if (in->models) {
        FO_CHECK(cJSON_IsArray(models) && (size_t)cJSON_GetArraySize(models) == in->n_models);
        for (size_t i = 0; i < in->n_models; i++) {
            const cJSON *name = cJSON_GetArrayItem(models, (int)i);
            FO_CHECK(cJSON_IsString(name) && strcmp(name->valuestring, in->models[i]) == 0);
        }
    } else {
        FO_CHECK(!models);   /* a prompt's own "models" would replace the hop's model */
    }
    if (in->service_tier) {
        const cJSON *tier = cJSON_GetObjectItemCaseSensitive(req, "service_tier");
        FO_CHECK(cJSON_IsString(tier) && strcmp(tier->valuestring, in->service_tier) == 0);
    }
    if (in->session_id) {
        const cJSON *session = cJSON_GetObjectItemCaseSensitive(req, "session_id");
        FO_CHECK(cJSON_IsString(session) && strcmp(session->valuestring, in->session_id) == 0);
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(req, "max_tokens");
    const cJSON *mct = cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens");
    FO_CHECK(!mt != !mct);   /* exactly one token limit */
    const cJSON *limit = mt ? mt : mct;
    FO_CHECK(cJSON_IsNumber(limit) && limit->valuedouble >= 1 &&
             limit->valuedouble <= in->max_tokens);
    if (in->system_prompt) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(messages->child, "role");
        FO_CHECK(cJSON_IsString(role) && strcmp(role->valuestring, "system") == 0);
    }
    /* a prompt that cannot be a JSON object is the text of one user message, verbatim
     * but for its trailing whitespace (cJSON skips a UTF-8 BOM, then any byte <= ' ') */
    size_t lead = 0, len = in->prompt_len;
    if (len >= 3 && memcmp(in->prompt, "\xEF\xBB\xBF", 3) == 0)
        lead = 3;
    while (lead < len && (unsigned char)in->prompt[lead] <= ' ')
        lead++;
    if (lead == len || in->prompt[lead] != '{') {
        while (len > 0 && strchr(" \t\r\n", in->prompt[len - 1]))
            len--;
        FO_CHECK(cJSON_GetArraySize(messages) == (in->system_prompt ? 2 : 1));
        const cJSON *last = cJSON_GetArrayItem(messages, cJSON_GetArraySize(messages) - 1);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(last, "role");
        FO_CHECK(cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0);
        FO_CHECK(cJSON_IsString(content) && strlen(content->valuestring) == len &&
                 memcmp(content->valuestring, in->prompt, len) == 0);
    }
    if (in->user) {
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(req, "user");
        FO_CHECK(cJSON_IsString(user) && strcmp(user->valuestring, in->user) == 0);
    }
    if (in->provider_prefs_json) {
        const cJSON *prefs = cJSON_GetObjectItemCaseSensitive(req, "provider");
        FO_CHECK(cJSON_IsObject(prefs));
        FO_CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(prefs, "allow_fallbacks")));
    }
    /* no key twice at the top level, and every parameter beyond the ones routefs sets
     * is one openai_request_params names (what require_parameters checks) */
    size_t n = (size_t)cJSON_GetArraySize(req);
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    FO_CHECK(keys);
    size_t k = 0;
    for (const cJSON *item = req->child; item; item = item->next)
        keys[k++] = item->string;
    qsort(keys, k, sizeof *keys, fo_by_string);
    for (size_t i = 1; i < k; i++)
        FO_CHECK(strcmp(keys[i - 1], keys[i]) != 0);
    free(keys);
    char **names;
    size_t n_names = openai_request_params(in->prompt, in->prompt_len, &names);
    if (n_names > 0) {
        qsort(names, n_names, sizeof *names, fo_by_string);
        for (const cJSON *item = req->child; item; item = item->next) {
            const char *key = item->string;
            if (strcmp(key, "model") == 0 || strcmp(key, "messages") == 0 ||
                strcmp(key, "stream") == 0 || strcmp(key, "user") == 0 ||
                strcmp(key, "provider") == 0 || strcmp(key, "stream_options") == 0 ||
                strcmp(key, "models") == 0 ||
                (in->service_tier && strcmp(key, "service_tier") == 0) ||
                (in->session_id && strcmp(key, "session_id") == 0))
                continue;
            FO_CHECK(bsearch(&key, names, n_names, sizeof *names, fo_by_string));
        }
        openai_free_names(names, n_names);
    }
    cJSON_Delete(req);
}

static void fo_build_request(const uint8_t *data, size_t size, int full)
{
    openai_request_in in = {
        .model = FO_MODEL,
        .prompt = (const char *)data,
        .prompt_len = size,
        .system_prompt = full ? FO_SYSTEM : NULL,
        .max_tokens = FO_MAX_TOKENS,
        .user = full ? FO_USER : NULL,
        .provider_prefs_json = full ? FO_PREFS : NULL,
        .stream = full,
        .models = full ? fo_models : NULL,
        .n_models = full ? sizeof fo_models / sizeof fo_models[0] : 0,
        .service_tier = full ? FO_TIER : NULL,
        .session_id = full ? FO_SESSION : NULL,
    };
    rf_err err;
    rf_err_clear(&err);
    char *body = openai_build_request(&in, &err);
    if (body) {
        FO_CHECK(err.code == 0);
        fo_check_body(body, &in);
        free(body);
    } else {
        FO_CHECK(err.code == EINVAL || err.code == EILSEQ || err.code == ENOMEM);
        FO_CHECK(err.msg[0]);
        fo_check_line(err.msg, sizeof err.msg);
    }
}

static void fo_request_params(const uint8_t *data, size_t size)
{
    char **names = (char **)1;
    size_t n = openai_request_params((const char *)data, size, &names);
    if (n == 0) {   /* only out of memory */
        FO_CHECK(names == NULL);
        return;
    }
    FO_CHECK(names && strcmp(names[0], "max_tokens") == 0);
    for (size_t i = 0; i < n; i++) {
        FO_CHECK(names[i]);
        FO_CHECK(strcmp(names[i], "model") != 0 && strcmp(names[i], "messages") != 0 &&
                 strcmp(names[i], "stream") != 0 && strcmp(names[i], "models") != 0 &&
                 strcmp(names[i], "stream_options") != 0);
    }
    qsort(names, n, sizeof *names, fo_by_string);   /* no name twice */
    for (size_t i = 1; i < n; i++)
        FO_CHECK(strcmp(names[i - 1], names[i]) != 0);
    openai_free_names(names, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fo_parse_response(data, size);
    fo_parse_error(data, size);
    fo_build_request(data, size, 0);
    fo_build_request(data, size, 1);
    fo_request_params(data, size);
    return 0;
}

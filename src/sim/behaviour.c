/* behaviour.c — what a model does: parsing a behaviour object, its reference count.
 *
 * A behaviour is immutable once parsed.  Every field is optional; an unknown field or a
 * value of the wrong type is an error, so a typo in a test script fails loudly instead
 * of testing nothing.  The manual page lists every field (BEHAVIOURS, STREAMS, BILLING). */
#include "sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_GENERATION_DELAY_MS 500

static const struct {
    const char *name;
    enum sim_mode mode;
} mode_names[] = {
    {"ok", SIM_MODE_OK},
    {"hang", SIM_MODE_HANG},
    {"close", SIM_MODE_CLOSE},
    {"malformed", SIM_MODE_MALFORMED},
    {"truncated", SIM_MODE_TRUNCATED},
    {"error_object", SIM_MODE_ERROR_OBJECT},
    {"finish_error", SIM_MODE_FINISH_ERROR},
    {"no_choices", SIM_MODE_NO_CHOICES},
    {"empty_content", SIM_MODE_EMPTY_CONTENT},
    {"html", SIM_MODE_HTML},
    {"reset_before_headers", SIM_MODE_RESET_BEFORE_HEADERS},
    {"missing_choices", SIM_MODE_MISSING_CHOICES},
    {"choices_not_array", SIM_MODE_CHOICES_NOT_ARRAY},
    {"message_not_object", SIM_MODE_MESSAGE_NOT_OBJECT},
    {"content_number", SIM_MODE_CONTENT_NUMBER},
    {"invalid_utf8", SIM_MODE_INVALID_UTF8},
    {"nul_content", SIM_MODE_NUL_CONTENT},
    {"dup_keys", SIM_MODE_DUP_KEYS},
    {"usage_garbage", SIM_MODE_USAGE_GARBAGE},
    {"top_array", SIM_MODE_TOP_ARRAY},
    {"object_error", SIM_MODE_OBJECT_ERROR},
    {"empty_body", SIM_MODE_EMPTY_BODY},
    {"trailing_garbage", SIM_MODE_TRAILING_GARBAGE},
    {"bom", SIM_MODE_BOM},
    {"binary_body", SIM_MODE_BINARY_BODY},
    {"deep_nesting", SIM_MODE_DEEP_NESTING},
    {"text_plain", SIM_MODE_TEXT_PLAIN},
    {"gzip", SIM_MODE_GZIP},
    {"sse", SIM_MODE_SSE},
    {"redirect", SIM_MODE_REDIRECT},
    {"retry_after_years", SIM_MODE_RETRY_AFTER_YEARS},
    {"status_204", SIM_MODE_STATUS_204},
    {"status_304", SIM_MODE_STATUS_304},
    {"interim_only", SIM_MODE_INTERIM_ONLY},
    {"headers_only", SIM_MODE_HEADERS_ONLY},
    {"short_length", SIM_MODE_SHORT_LENGTH},
    {"conflicting_length", SIM_MODE_CONFLICTING_LENGTH},
    {"reset", SIM_MODE_RESET},
    {"huge", SIM_MODE_HUGE},
    {"huge_chunked", SIM_MODE_HUGE_CHUNKED},
    {"drip", SIM_MODE_DRIP},
    {"chunked_forever", SIM_MODE_CHUNKED_FOREVER},
    {"long_header", SIM_MODE_LONG_HEADER},
    {"no_status_line", SIM_MODE_NO_STATUS_LINE},
};

static void behaviour_destroy(sim_behaviour *b)
{
    free(b->fail_pattern);
    free(b->report_cost);
    free(b->error_metadata);
    free(b->retry_after);
    free(b->error_message);
    free(b->content);
    free(b->provider);
    free(b->served_model);
    free(b);
}

void sim_behaviour_release(sim_behaviour *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        behaviour_destroy(b);
}

sim_behaviour *sim_behaviour_ref(sim_behaviour *b)
{
    atomic_fetch_add(&b->refs, 1);
    return b;
}

sim_behaviour *sim_behaviour_new(void)
{
    sim_behaviour *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->fail_first = -1;
    b->fail_for_ms = -1;
    b->prompt_tokens = b->completion_tokens = -1;
    b->tokens = -1;
    b->generation_delay_ms = DEFAULT_GENERATION_DELAY_MS;
    b->stream = (sim_stream_spec){.cut_after = -1, .stall_after = -1, .malformed_at = -1,
                                  .error_at = -1};
    atomic_init(&b->refs, 1);
    return b;
}

/* A whole number in [lo, hi] from a JSON number; false when it is anything else. */
static bool json_whole(const cJSON *item, double lo, double hi, long *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    if (!(v >= lo && v <= hi) || v != floor(v))
        return false;
    *out = (long)v;
    return true;
}

/* Copy a JSON string field into *dst; false (with err) when it is not a string. */
static bool json_string_field(const cJSON *item, char **dst, char *err, size_t errlen)
{
    if (!cJSON_IsString(item)) {
        snprintf(err, errlen, "\"%s\" must be a string", item->string);
        return false;
    }
    free(*dst);
    *dst = strdup(item->valuestring);
    if (!*dst) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

/* A finite JSON number >= 0 into *out; false (with err) otherwise. */
static bool json_money(const cJSON *item, double *out, char *err, size_t errlen)
{
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < 0) {
        snprintf(err, errlen, "\"%s\" must be a number >= 0", item->string);
        return false;
    }
    *out = item->valuedouble;
    return true;
}

static bool parse_mode(const char *name, enum sim_mode *out)
{
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
        if (strcmp(mode_names[i].name, name) == 0) {
            *out = mode_names[i].mode;
            return true;
        }
    return false;
}

/* fail_pattern: [503, "reset", 200, ...]: a number is a status (2xx = plain ok), a string
 * a mode ("ok" = plain ok). */
static bool parse_pattern(const cJSON *item, sim_behaviour *b, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(item);
    if (!cJSON_IsArray(item) || n == 0) {
        snprintf(err, errlen, "\"fail_pattern\" must be a non-empty array");
        return false;
    }
    sim_pattern_step *steps = calloc((size_t)n, sizeof *steps);
    if (!steps) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    int i = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, item) {
        long status;
        if (json_whole(entry, 100, 599, &status)) {
            steps[i].status = (int)status;
        } else if (!cJSON_IsString(entry) || !parse_mode(entry->valuestring, &steps[i].mode)) {
            snprintf(err, errlen, "\"fail_pattern\" entries are statuses (100-599) or modes");
            free(steps);
            return false;
        }
        i++;
    }
    free(b->fail_pattern);
    b->fail_pattern = steps;
    b->fail_pattern_len = (size_t)n;
    return true;
}

/* price: {"prompt": USD per million tokens, "completion": ...}. */
static bool parse_price(const cJSON *item, sim_behaviour *b, char *err, size_t errlen)
{
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(item, "prompt");
    const cJSON *completion = cJSON_GetObjectItemCaseSensitive(item, "completion");
    if (!cJSON_IsObject(item) || cJSON_GetArraySize(item) != 2 || !prompt || !completion ||
        !json_money(prompt, &b->price_prompt, err, errlen) ||
        !json_money(completion, &b->price_completion, err, errlen)) {
        snprintf(err, errlen, "\"price\" must be {\"prompt\": X, \"completion\": Y} "
                              "(USD per million tokens, numbers >= 0)");
        return false;
    }
    b->has_price = true;
    return true;
}

/* A JSON value kept as its text (report_cost, error_metadata). */
static bool json_text_field(const cJSON *item, char **dst, char *err, size_t errlen)
{
    free(*dst);
    *dst = cJSON_PrintUnformatted(item);
    if (!*dst) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

/* The whole-number fields: name, range, where it goes. */
static long *whole_field(sim_behaviour *b, const char *key, double *hi)
{
    static const double ms = 86400000.0, count = 1e9;
    struct { const char *name; long *at; double hi; } fields[] = {
        {"latency_ms", &b->latency_ms, ms},
        {"fail_first", &b->fail_first, 1e15},
        {"fail_for_ms", &b->fail_for_ms, 1e15},
        {"prompt_tokens", &b->prompt_tokens, count},
        {"completion_tokens", &b->completion_tokens, count},
        {"tokens", &b->tokens, 100000},
        {"generation_delay_ms", &b->generation_delay_ms, ms},
        {"first_token_ms", &b->stream.first_token_ms, ms},
        {"token_ms", &b->stream.token_ms, ms},
        {"keepalive_ms", &b->stream.keepalive_ms, ms},
        {"cut_after", &b->stream.cut_after, count},
        {"stall_after", &b->stream.stall_after, count},
        {"stall_ms", &b->stream.stall_ms, ms},
        {"malformed_at", &b->stream.malformed_at, count},
        {"error_at", &b->stream.error_at, count},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcmp(fields[i].name, key) == 0) {
            *hi = fields[i].hi;
            return fields[i].at;
        }
    return NULL;
}

/* The flag fields: true/false. */
static bool *flag_field(sim_behaviour *b, const char *key)
{
    struct { const char *name; bool *at; } fields[] = {
        {"key_limit", &b->key_limit},
        {"fail_pattern_repeat", &b->fail_pattern_repeat},
        {"no_done", &b->stream.no_done},
        {"no_finish", &b->stream.no_finish},
        {"stream_finish_error", &b->stream.finish_error},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcmp(fields[i].name, key) == 0)
            return fields[i].at;
    return NULL;
}

/* The string fields. */
static char **string_field(sim_behaviour *b, const char *key)
{
    struct { const char *name; char **at; } fields[] = {
        {"error_message", &b->error_message},
        {"content", &b->content},
        {"provider", &b->provider},
        {"served_model", &b->served_model},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcmp(fields[i].name, key) == 0)
            return fields[i].at;
    return NULL;
}

/* One field of a behaviour; false with err set when it is wrong. */
static bool parse_field(const cJSON *item, sim_behaviour *b, char *err, size_t errlen)
{
    const char *key = item->string;
    long whole;
    double hi;
    long *whole_at = whole_field(b, key, &hi);
    bool *flag_at = flag_field(b, key);
    char **string_at = string_field(b, key);

    if (whole_at) {
        if (!json_whole(item, 0, hi, &whole)) {
            snprintf(err, errlen, "\"%s\" must be a whole number in range", key);
            return false;
        }
        *whole_at = whole;
    } else if (flag_at) {
        if (!cJSON_IsBool(item)) {
            snprintf(err, errlen, "\"%s\" must be true or false", key);
            return false;
        }
        *flag_at = cJSON_IsTrue(item);
    } else if (string_at) {
        return json_string_field(item, string_at, err, errlen);
    } else if (strcmp(key, "status") == 0) {
        if (!json_whole(item, 100, 599, &whole)) {
            snprintf(err, errlen, "\"status\" must be a whole number in range");
            return false;
        }
        b->status = (int)whole;
    } else if (strcmp(key, "cost") == 0) {
        if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) {
            snprintf(err, errlen, "\"cost\" must be a number");
            return false;
        }
        b->has_cost = true;
        b->cost = item->valuedouble;
    } else if (strcmp(key, "charge_usd") == 0) {
        if (!json_money(item, &b->charge_usd, err, errlen))
            return false;
        b->has_charge = true;
    } else if (strcmp(key, "price") == 0) {
        return parse_price(item, b, err, errlen);
    } else if (strcmp(key, "report_cost") == 0) {
        return json_text_field(item, &b->report_cost, err, errlen);
    } else if (strcmp(key, "error_metadata") == 0) {
        if (!cJSON_IsObject(item)) {
            snprintf(err, errlen, "\"error_metadata\" must be a JSON object");
            return false;
        }
        return json_text_field(item, &b->error_metadata, err, errlen);
    } else if (strcmp(key, "usage") == 0) {
        const char *v = cJSON_IsString(item) ? item->valuestring : "";
        if (strcmp(v, "full") == 0)
            b->usage = SIM_USAGE_FULL;
        else if (strcmp(v, "tokens") == 0)
            b->usage = SIM_USAGE_TOKENS;
        else if (strcmp(v, "none") == 0)
            b->usage = SIM_USAGE_NONE;
        else {
            snprintf(err, errlen, "\"usage\" must be \"full\", \"tokens\" or \"none\"");
            return false;
        }
    } else if (strcmp(key, "echo_auth") == 0 || strcmp(key, "echo_auth_ok") == 0) {
        enum sim_echo *at = key[9] ? &b->echo_auth_ok : &b->echo_auth;
        if (!cJSON_IsString(item) || !sim_echo_parse(item->valuestring, at) ||
            *at == SIM_ECHO_NONE) {
            snprintf(err, errlen, "\"%s\" must be raw, json_escaped, percent, upper, lower, "
                                  "prefix8 or all", key);
            return false;
        }
    } else if (strcmp(key, "fail_pattern") == 0) {
        return parse_pattern(item, b, err, errlen);
    } else if (strcmp(key, "mode") == 0) {
        if (!cJSON_IsString(item)) {
            snprintf(err, errlen, "\"mode\" must be a string");
            return false;
        }
        if (!parse_mode(item->valuestring, &b->mode)) {
            snprintf(err, errlen, "unknown mode \"%.64s\"", item->valuestring);
            return false;
        }
    } else if (strcmp(key, "retry_after") == 0) {
        /* Accept a number too: Retry-After is seconds either way. */
        if (json_whole(item, 0, 1e9, &whole)) {
            char text[32];
            snprintf(text, sizeof text, "%ld", whole);
            free(b->retry_after);
            if (!(b->retry_after = strdup(text))) {
                snprintf(err, errlen, "out of memory");
                return false;
            }
        } else {
            return json_string_field(item, &b->retry_after, err, errlen);
        }
    } else {
        snprintf(err, errlen, "unknown behaviour field \"%.64s\"", key);
        return false;
    }
    return true;
}

sim_behaviour *sim_behaviour_parse(const cJSON *obj, bool skip_model, char *err, size_t errlen)
{
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "a behaviour must be a JSON object");
        return NULL;
    }
    sim_behaviour *b = sim_behaviour_new();
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        if (skip_model && strcmp(item->string, "model") == 0)
            continue;
        if (!parse_field(item, b, err, errlen)) {
            behaviour_destroy(b);
            return NULL;
        }
    }
    if ((b->stream.stall_after >= 0) != (b->stream.stall_ms > 0)) {
        snprintf(err, errlen, "\"stall_after\" and \"stall_ms\" go together");
        behaviour_destroy(b);
        return NULL;
    }
    return b;
}

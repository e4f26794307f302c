/* openrouter_parse.c — the pure parsers of OpenRouter's /models, /key and /generation
 * bodies (see openrouter.h).  No I/O, no globals: unit-tested on tables of bodies and
 * fuzzed (tests/fuzz/fuzz_openrouter.c).  What comes back is always sane: valid UTF-8
 * strings of bounded length, finite amounts within bounds. */
#include "openrouter.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "hmap.h"
#include "openai.h"

#define AMOUNT_MAX 1e12          /* USD: a key amount beyond this is nonsense */
#define COUNT_MAX 1e15           /* tokens, ms, counts in a generation record */
#define EXTRA_STRING_MAX 64      /* strings kept inside an unknown flat object */

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* A string we can show: valid UTF-8, no control characters, at most max bytes. */
static int clean_string(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len > max)
        return 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
        size_t n = openai_utf8_char_len((const unsigned char *)s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* The data member of {"data": ...}, or NULL.  The document is parsed into *doc. */
static const cJSON *data_of(const char *body, size_t len, cJSON **doc, rf_err *err,
                            const char *what)
{
    *doc = body && !openai_json_has_nul(body, len) ? openai_parse_json(body, len) : NULL;
    if (!*doc) {
        rf_err_set(err, EINVAL, "%s: not a JSON document", what);
        return NULL;
    }
    const cJSON *data = get(*doc, "data");
    if (!data)
        rf_err_set(err, EINVAL, "%s: no \"data\" member", what);
    return data;
}

/* ---------------------------------------------------------------- /models */

/* A price as OpenRouter writes it ("0.000003", or a number), times 10^shift, without
 * rounding noise: the decimal exponent moves in the text, and strtod rounds once.
 * 0 with *out, -1 when it is not a plain decimal number. */
static int scaled_decimal(const cJSON *v, int shift, double *out)
{
    char text[96];
    if (cJSON_IsNumber(v))
        snprintf(text, sizeof text, "%.17g", v->valuedouble);
    else if (cJSON_IsString(v) && strlen(v->valuestring) < 64)
        snprintf(text, sizeof text, "%s", v->valuestring);
    else
        return -1;
    /* [-]digits[.digits][e[+-]digits], at least one digit before the exponent */
    const char *p = text;
    if (*p == '-' || *p == '+')
        p++;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            digits++;
    if (digits == 0)
        return -1;
    size_t mantissa_len = (size_t)(p - text);
    long exp = 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        int neg = *p == '-';
        if (*p == '-' || *p == '+')
            p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++)
            if (exp < 100000)   /* past this the result is 0 or inf either way */
                exp = exp * 10 + (*p - '0');
        if (neg)
            exp = -exp;
    }
    if (*p)
        return -1;
    char shifted[160];
    snprintf(shifted, sizeof shifted, "%.*se%ld", (int)mantissa_len, text, exp + shift);
    *out = strtod(shifted, NULL);
    return 0;
}

/* What one pricing member says.  1 price in *usd, 0 absent or null, 2 OpenRouter's
 * "-1" (decided per request), -1 nonsense (err set). */
static int price_of(const cJSON *pricing, const char *key, int shift, double max, size_t i,
                    const char *id, double *usd, rf_err *err)
{
    const cJSON *v = get(pricing, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    double x;
    if (scaled_decimal(v, 0, &x) < 0) {
        rf_err_set(err, EINVAL, "data[%zu] (%.80s): pricing.%s is not a number", i, id, key);
        return -1;
    }
    if (x == -1)
        return 2;
    if (scaled_decimal(v, shift, usd) < 0 || !isfinite(*usd) || *usd < 0 || *usd > max) {
        char shown[72];
        snprintf(shown, sizeof shown, "%.60s", cJSON_IsString(v) ? v->valuestring : "number");
        for (char *c = shown; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                *c = '?';
        rf_err_set(err, EINVAL, "data[%zu] (%.80s): pricing.%s \"%s\" is %s", i, id, key, shown,
                   !isfinite(x) ? "not finite" : x < 0 ? "negative" : "absurdly high");
        return -1;
    }
    return 1;
}

void or_models_free(or_models *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free((char *)m->rows[i].model);   /* owned (see or_models) */
    free(m->rows);
    memset(m, 0, sizeof *m);
}

int or_parse_models(const char *body, size_t len, or_models *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    cJSON *doc;
    const cJSON *list = data_of(body, len, &doc, err, "models list");
    int r = -1;
    hmap *seen = NULL;
    if (!list)
        goto done;
    if (!cJSON_IsArray(list)) {
        rf_err_set(err, EINVAL, "models list: \"data\" is not an array");
        goto done;
    }
    size_t cap = (size_t)cJSON_GetArraySize(list);
    out->rows = calloc(cap ? cap : 1, sizeof *out->rows);
    if (!out->rows || !(seen = hmap_new())) {
        rf_err_set(err, ENOMEM, "out of memory");
        goto done;
    }
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, list) {
        const cJSON *id = get(m, "id"), *pricing = get(m, "pricing");
        const char *name = cJSON_IsString(id) ? id->valuestring : NULL;
        double prompt = 0, completion = 0, request = 0;
        int usable = name && *name && clean_string(name, OR_MODEL_ID_MAX) &&
                     cJSON_IsObject(pricing);
        if (usable) {
            int p = price_of(pricing, "prompt", 6, OR_PRICE_MAX_PER_M, i, name, &prompt, err);
            int c = p < 0 ? -1
                          : price_of(pricing, "completion", 6, OR_PRICE_MAX_PER_M, i, name,
                                     &completion, err);
            int q = c < 0 ? -1
                          : price_of(pricing, "request", 0, OR_REQUEST_PRICE_MAX, i, name,
                                     &request, err);
            if (p < 0 || c < 0 || q < 0)
                goto done;
            usable = p == 1 && c == 1 && q != 2 && !hmap_get(seen, name);
        }
        i++;
        if (!usable) {
            out->skipped++;
            continue;
        }
        char *copy = strdup(name);
        if (!copy || hmap_put(seen, copy, copy) < 0) {
            free(copy);
            rf_err_set(err, ENOMEM, "out of memory");
            goto done;
        }
        out->rows[out->n++] = (published_price){copy, prompt, completion, request};
    }
    if (out->n == 0) {
        rf_err_set(err, EINVAL, "models list: no model has a price (%zu entries)", i);
        goto done;
    }
    r = 0;
done:
    hmap_free(seen);   /* the map borrows the names the rows own */
    cJSON_Delete(doc);
    if (r < 0)
        or_models_free(out);
    return r;
}

/* ---------------------------------------------------------------- /key */

/* 1 number in *v, 0 absent or null, -1 present but not a sane amount (err set):
 * finite, at most AMOUNT_MAX, and >= 0 unless negative is allowed. */
static int amount_of(const cJSON *data, const char *key, int negative_ok, double *v,
                     rf_err *err)
{
    const cJSON *x = get(data, key);
    if (!x || cJSON_IsNull(x))
        return 0;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > AMOUNT_MAX ||
        (!negative_ok && x->valuedouble < 0))
        return rf_err_set(err, EINVAL, "key info: \"%s\" is not a sane amount", key);
    *v = x->valuedouble;
    return 1;
}

static const char *const key_known[] = {
    "limit", "limit_remaining", "limit_reset", "usage", "usage_daily", "usage_weekly",
    "usage_monthly", "is_free_tier",
    "label",                     /* a shortened copy of the key itself: never kept */
    "fetched_at", "fetched_ms", "age_ms",   /* ours (or_key_info_json) */
    NULL};

static int is_known_key_field(const char *name)
{
    for (size_t i = 0; key_known[i]; i++)
        if (!strcmp(key_known[i], name))
            return 1;
    return 0;
}

static int plain_scalar(const cJSON *v)
{
    return (cJSON_IsNumber(v) && isfinite(v->valuedouble)) || cJSON_IsBool(v) ||
           cJSON_IsNull(v);
}

#define EXTRA_MEMBERS_MAX 32     /* members kept of one unknown flat object */

/* A copy of an unknown field worth keeping (a scalar, or a flat object of scalars and
 * short strings), or NULL. */
static cJSON *extra_copy(const cJSON *v)
{
    if (plain_scalar(v))
        return cJSON_Duplicate(v, 0);
    if (!cJSON_IsObject(v))
        return NULL;
    cJSON *o = cJSON_CreateObject();
    const cJSON *m;
    int kept = 0;
    cJSON_ArrayForEach(m, v) {
        if (!o || kept == EXTRA_MEMBERS_MAX)
            break;
        if (!m->string || !clean_string(m->string, EXTRA_STRING_MAX) || get(o, m->string))
            continue;
        int keep = plain_scalar(m) ||
                   (cJSON_IsString(m) && clean_string(m->valuestring, EXTRA_STRING_MAX) &&
                    strncmp(m->valuestring, "sk-", 3) != 0);
        cJSON *c = keep ? cJSON_Duplicate(m, 0) : NULL;
        if (c && !cJSON_AddItemToObject(o, m->string, c))
            cJSON_Delete(c);
        else if (c)
            kept++;
    }
    return o;
}

/* The unknown fields of data that fit in cap bytes, into out (compact JSON).  The size
 * of the printed object is bounded as fields are added: at most 2 bytes per key byte
 * (escapes), the quotes, ':' and ',' and the value's own text. */
static void key_extras(const cJSON *data, char *out, size_t cap)
{
    out[0] = '\0';
    cJSON *o = cJSON_CreateObject();
    const cJSON *m;
    size_t bound = 2;   /* {} */
    cJSON_ArrayForEach(m, data) {
        if (!o || bound + 8 >= cap)
            break;
        if (!m->string || is_known_key_field(m->string) ||
            !clean_string(m->string, EXTRA_STRING_MAX) || get(o, m->string))
            continue;
        cJSON *c = extra_copy(m);
        char *text = c ? cJSON_PrintUnformatted(c) : NULL;
        size_t need = text ? 2 * strlen(m->string) + 4 + strlen(text) : cap;
        free(text);
        if (bound + need >= cap || !cJSON_AddItemToObject(o, m->string, c)) {
            cJSON_Delete(c);   /* does not fit: left out */
            continue;
        }
        bound += need;
    }
    char *text = o && o->child ? cJSON_PrintUnformatted(o) : NULL;
    if (text && strlen(text) < cap)
        memcpy(out, text, strlen(text) + 1);
    free(text);
    cJSON_Delete(o);
}

/* *out from a key info object; on failure -1 with err (the caller clears *out). */
static int key_from_data(const cJSON *data, or_key_info *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    out->usage_daily = out->usage_weekly = out->usage_monthly = -1;
    out->is_free_tier = -1;
    if (!cJSON_IsObject(data))
        return rf_err_set(err, EINVAL, "key info: \"data\" is not an object");
    const cJSON *limit = get(data, "limit");
    if (!limit)
        return rf_err_set(err, EINVAL, "key info: no \"limit\"");
    int r = amount_of(data, "limit", 0, &out->limit, err);   /* a number or null */
    if (r < 0)
        return -1;
    out->has_limit = r;
    if ((r = amount_of(data, "limit_remaining", 1, &out->limit_remaining, err)) < 0)
        return -1;
    out->has_limit_remaining = r;
    if (out->limit_remaining < 0)
        out->limit_remaining = 0;
    if ((r = amount_of(data, "usage", 0, &out->usage, err)) < 0)
        return -1;
    if (r == 0)
        return rf_err_set(err, EINVAL, "key info: \"usage\" is not a number");
    if (amount_of(data, "usage_daily", 0, &out->usage_daily, err) < 0 ||
        amount_of(data, "usage_weekly", 0, &out->usage_weekly, err) < 0 ||
        amount_of(data, "usage_monthly", 0, &out->usage_monthly, err) < 0)
        return -1;
    const cJSON *reset = get(data, "limit_reset");
    if (cJSON_IsString(reset) &&
        (!strcmp(reset->valuestring, "daily") || !strcmp(reset->valuestring, "weekly") ||
         !strcmp(reset->valuestring, "monthly")))
        snprintf(out->limit_reset, sizeof out->limit_reset, "%s", reset->valuestring);
    const cJSON *free_tier = get(data, "is_free_tier");
    if (cJSON_IsBool(free_tier))
        out->is_free_tier = cJSON_IsTrue(free_tier);
    key_extras(data, out->extra_json, sizeof out->extra_json);
    return 0;
}

int or_parse_key(const char *body, size_t len, or_key_info *out, rf_err *err)
{
    cJSON *doc;
    memset(out, 0, sizeof *out);
    const cJSON *data = data_of(body, len, &doc, err, "key info");
    int r = data ? key_from_data(data, out, err) : -1;
    cJSON_Delete(doc);
    if (r < 0)
        memset(out, 0, sizeof *out);
    return r;
}

static int add_amount(cJSON *o, const char *key, int known, double v)
{
    return known ? cJSON_AddNumberToObject(o, key, v) != NULL
                 : cJSON_AddNullToObject(o, key) != NULL;
}

char *or_key_info_json(const or_key_info *k)
{
    cJSON *o = k->extra_json[0] ? cJSON_Parse(k->extra_json) : cJSON_CreateObject();
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    char at[40] = "";
    if (k->fetched_ms > 0)
        format_time_ms(k->fetched_ms, at, sizeof at);
    int ok = o && add_amount(o, "limit", k->has_limit, k->limit) &&
             add_amount(o, "limit_remaining", k->has_limit_remaining, k->limit_remaining) &&
             (k->limit_reset[0] ? cJSON_AddStringToObject(o, "limit_reset", k->limit_reset) != NULL
                                : cJSON_AddNullToObject(o, "limit_reset") != NULL) &&
             add_amount(o, "usage", 1, k->usage) &&
             add_amount(o, "usage_daily", k->usage_daily >= 0, k->usage_daily) &&
             add_amount(o, "usage_weekly", k->usage_weekly >= 0, k->usage_weekly) &&
             add_amount(o, "usage_monthly", k->usage_monthly >= 0, k->usage_monthly) &&
             (k->is_free_tier >= 0 ? cJSON_AddBoolToObject(o, "is_free_tier", k->is_free_tier) != NULL
                                   : cJSON_AddNullToObject(o, "is_free_tier") != NULL) &&
             (at[0] ? cJSON_AddStringToObject(o, "fetched_at", at) != NULL
                    : cJSON_AddNullToObject(o, "fetched_at") != NULL) &&
             cJSON_AddNumberToObject(o, "fetched_ms", (double)k->fetched_ms);
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

int or_key_info_from_json(const char *text, size_t len, or_key_info *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    cJSON *o = text && !openai_json_has_nul(text, len) ? openai_parse_json(text, len) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return rf_err_set(err, EINVAL, "stored key info: not a JSON object");
    }
    const cJSON *at = get(o, "fetched_ms");
    int r = key_from_data(o, out, err);
    if (r == 0 && cJSON_IsNumber(at) && at->valuedouble > 0 && at->valuedouble < 1e15)
        out->fetched_ms = (int64_t)at->valuedouble;
    cJSON_Delete(o);
    if (r < 0)
        memset(out, 0, sizeof *out);
    return r;
}

/* ---------------------------------------------------------------- /generation */

enum gtype { G_STRING, G_NUMBER, G_BOOL };

typedef struct gfield {
    const char *name;
    enum gtype type;
} gfield;

static const gfield gen_fields[] = {
    {"id", G_STRING}, {"upstream_id", G_STRING}, {"model", G_STRING},
    {"provider_name", G_STRING}, {"total_cost", G_NUMBER}, {"cache_discount", G_NUMBER},
    {"upstream_inference_cost", G_NUMBER}, {"usage", G_NUMBER}, {"tokens_prompt", G_NUMBER},
    {"tokens_completion", G_NUMBER}, {"native_tokens_prompt", G_NUMBER},
    {"native_tokens_completion", G_NUMBER}, {"native_tokens_reasoning", G_NUMBER},
    {"native_tokens_cached", G_NUMBER}, {"native_tokens_completion_images", G_NUMBER},
    {"num_media_prompt", G_NUMBER}, {"num_media_completion", G_NUMBER},
    {"num_search_results", G_NUMBER}, {"finish_reason", G_STRING},
    {"native_finish_reason", G_STRING}, {"service_tier", G_STRING}, {"latency", G_NUMBER},
    {"moderation_latency", G_NUMBER}, {"generation_time", G_NUMBER}, {"created_at", G_STRING},
    {"router", G_STRING}, {"api_type", G_STRING}, {"streamed", G_BOOL}, {"cancelled", G_BOOL},
    {"is_byok", G_BOOL}, {NULL, G_STRING}};

static const gfield hop_fields[] = {
    {"provider_name", G_STRING}, {"model_permaslug", G_STRING}, {"endpoint_id", G_STRING},
    {"status", G_NUMBER}, {"latency", G_NUMBER}, {"is_byok", G_BOOL}, {NULL, G_STRING}};

/* A sanitised copy of v as a field of type t: NULL when it is not one (null stays). */
static cJSON *field_copy(const cJSON *v, enum gtype t)
{
    if (cJSON_IsNull(v))
        return cJSON_CreateNull();
    switch (t) {
    case G_STRING:
        return cJSON_IsString(v) && clean_string(v->valuestring, OR_STRING_MAX)
                   ? cJSON_CreateString(v->valuestring) : NULL;
    case G_NUMBER:
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0 &&
                       v->valuedouble <= COUNT_MAX
                   ? cJSON_CreateNumber(v->valuedouble) : NULL;
    default:
        return cJSON_IsBool(v) ? cJSON_CreateBool(cJSON_IsTrue(v)) : NULL;
    }
}

/* The fields of src that the table names, sanitised, into a new object (NULL: OOM). */
static cJSON *copy_fields(const cJSON *src, const gfield *table)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && table[i].name; i++) {
        const cJSON *v = get(src, table[i].name);
        cJSON *c = v ? field_copy(v, table[i].type) : NULL;
        if (c && !cJSON_AddItemToObject(o, table[i].name, c)) {
            cJSON_Delete(c);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

static long count_of(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    return cJSON_IsNumber(v) && v->valuedouble <= 1e15 ? (long)v->valuedouble : -1;
}

void or_generation_free(or_generation *g)
{
    if (!g)
        return;
    free(g->json);
    memset(g, 0, sizeof *g);
}

int or_parse_generation(const char *body, size_t len, const char *expected_id,
                        or_generation *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    cJSON *doc;
    const cJSON *data = data_of(body, len, &doc, err, "generation record");
    cJSON *o = NULL;
    int r = -1;
    if (!data)
        goto done;
    if (!cJSON_IsObject(data)) {
        rf_err_set(err, EINVAL, "generation record: \"data\" is not an object");
        goto done;
    }
    const cJSON *id = get(data, "id");
    if (expected_id && !(cJSON_IsString(id) && !strcmp(id->valuestring, expected_id))) {
        rf_err_set(err, EINVAL, "generation record: it is another generation's");
        goto done;
    }
    if (!(o = copy_fields(data, gen_fields)))
        goto oom;
    const cJSON *hops = get(data, "provider_responses");
    if (cJSON_IsArray(hops)) {
        cJSON *list = cJSON_AddArrayToObject(o, "provider_responses");
        if (!list)
            goto oom;
        const cJSON *h;
        cJSON_ArrayForEach(h, hops) {
            if (out->n_provider_responses == OR_PROVIDER_RESPONSES_MAX)
                break;
            if (!cJSON_IsObject(h))
                continue;
            cJSON *c = copy_fields(h, hop_fields);
            if (!c || !cJSON_AddItemToArray(list, c)) {
                cJSON_Delete(c);
                goto oom;
            }
            out->n_provider_responses++;
        }
    } else if (cJSON_IsNull(hops) && !cJSON_AddNullToObject(o, "provider_responses")) {
        goto oom;
    }
    const cJSON *pn = get(o, "provider_name"), *cost = get(o, "total_cost");
    if (cJSON_IsString(pn))
        snprintf(out->provider_name, sizeof out->provider_name, "%s", pn->valuestring);
    if (cJSON_IsNumber(cost)) {
        out->has_total_cost = 1;
        out->total_cost = cost->valuedouble;
    }
    out->latency_ms = count_of(o, "latency");
    out->generation_time_ms = count_of(o, "generation_time");
    out->native_tokens_prompt = count_of(o, "native_tokens_prompt");
    out->native_tokens_completion = count_of(o, "native_tokens_completion");
    if (!(out->json = cJSON_PrintUnformatted(o)))
        goto oom;
    r = 0;
    goto done;
oom:
    rf_err_set(err, ENOMEM, "out of memory");
done:
    cJSON_Delete(o);
    cJSON_Delete(doc);
    if (r < 0) {
        free(out->json);
        memset(out, 0, sizeof *out);
    }
    return r;
}

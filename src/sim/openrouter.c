/* openrouter.c — the OpenRouter extras of routefs-sim: the published model list
 * (/api/v1/models), the key's limit and usage (/api/v1/key), and the per-generation
 * record (/api/v1/generation?id=), with the field names of the real API.
 *
 * Usage is kept per key, a key being the whole Authorization header value; the limit set
 * with POST /control/key applies to every key alike.  Generations are a ring of the last
 * SIM_GENERATIONS_KEPT, each known to /api/v1/generation only from its available time on
 * (OpenRouter too answers 404 for a while after a generation ended).  One mutex guards
 * everything here; nothing is called under it that takes another lock. */
#include "sim.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONTEXT_LENGTH 131072
#define MAX_COMPLETION_TOKENS 16384

typedef struct key_usage {
    struct key_usage *next;
    char *auth;                 /* the Authorization header value ("" when absent) */
    double total;
    int64_t day, week, month;   /* the current UTC period of each bucket */
    double daily, weekly, monthly;
} key_usage;

typedef struct generation {
    char *id;
    cJSON *data;
    uint64_t available_ns;
} generation;

static pthread_mutex_t or_lock = PTHREAD_MUTEX_INITIALIZER;
static cJSON *startup_models;    /* the script's list, or NULL: derived from prices */
static cJSON *models_set;        /* set with /control/models, or NULL */
static cJSON *key_settings;      /* the last /control/key body, or NULL */
static key_usage *keys;
static generation *generations;  /* ring of SIM_GENERATIONS_KEPT, allocated on first use */
static size_t generations_next, generations_len;
static time_t started_at;

/* ---------------------------------------------------------------- small helpers */

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned int status, cJSON *doc)
{
    return sim_queue_reply(conn, status, sim_json_response(doc));
}

static enum MHD_Result reply_or_error(struct MHD_Connection *conn, unsigned int status,
                                      const char *message)
{
    return reply_json(conn, status, sim_or_error_doc((int)status, message, NULL));
}

static const char *auth_of(struct MHD_Connection *conn)
{
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return auth && *sim_auth_key(auth) ? auth : NULL;
}

/* The list of a models document: [...] itself, or {"data": [...]}. */
static const cJSON *models_list(const cJSON *doc)
{
    if (cJSON_IsObject(doc))
        doc = cJSON_GetObjectItemCaseSensitive(doc, "data");
    return cJSON_IsArray(doc) ? doc : NULL;
}

/* ---------------------------------------------------------------- life cycle */

int sim_or_init(const cJSON *script_models, char *err, size_t errlen)
{
    started_at = time(NULL);
    if (!script_models)
        return 0;
    const cJSON *list = models_list(script_models);
    if (!list) {
        snprintf(err, errlen, "\"models\" must be [...] or {\"data\": [...]}");
        return -1;
    }
    if (!(startup_models = cJSON_Duplicate(list, true))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Drop what tests set and what requests left.  Caller holds or_lock (or is alone). */
static void clear_locked(void)
{
    cJSON_Delete(models_set);
    models_set = NULL;
    cJSON_Delete(key_settings);
    key_settings = NULL;
    while (keys) {
        key_usage *next = keys->next;
        free(keys->auth);
        free(keys);
        keys = next;
    }
    for (size_t i = 0; generations && i < SIM_GENERATIONS_KEPT; i++) {
        free(generations[i].id);
        cJSON_Delete(generations[i].data);
        generations[i] = (generation){0};
    }
    generations_next = generations_len = 0;
}

void sim_or_reset(void)
{
    pthread_mutex_lock(&or_lock);
    clear_locked();
    pthread_mutex_unlock(&or_lock);
}

void sim_or_free(void)
{
    pthread_mutex_lock(&or_lock);
    clear_locked();
    free(generations);
    generations = NULL;
    cJSON_Delete(startup_models);
    startup_models = NULL;
    pthread_mutex_unlock(&or_lock);
}

/* ---------------------------------------------------------------- /api/v1/models */

/* USD per million tokens as OpenRouter writes prices: a decimal string per token.  The
 * decimal point moves six places in the text, so there is no rounding noise. */
static cJSON *per_token(double per_million)
{
    char fixed[64], out[96];
    snprintf(fixed, sizeof fixed, "%.9f", per_million);   /* "2.500000000" */
    char *dot = strchr(fixed, '.');
    if (!dot)
        return cJSON_CreateString("0");
    int int_len = (int)(dot - fixed);
    memmove(dot, dot + 1, strlen(dot + 1) + 1);           /* digits only: "2500000000" */
    int point = int_len - 6;                              /* where the point goes now */
    if (point <= 0)
        snprintf(out, sizeof out, "0.%.*s%s", -point, "000000", fixed);
    else
        snprintf(out, sizeof out, "%.*s.%s", point, fixed, fixed + point);
    char *end = out + strlen(out);
    while (end[-1] == '0')   /* there is a point: trailing zeros go, then a bare point */
        *--end = '\0';
    if (end[-1] == '.')
        *--end = '\0';
    char *start = out;
    while (start[0] == '0' && start[1] && start[1] != '.')   /* and leading zeros */
        start++;
    return cJSON_CreateString(*start ? start : "0");
}

/* One model entry priced prompt/completion USD per million tokens. */
static cJSON *model_entry(const char *id, double prompt, double completion)
{
    static const char *const params[] = {"max_tokens", "temperature", "top_p", "stop",
                                         "seed", "stream", "stream_options", "user"};
    static const char *const free_prices[] = {"request", "image", "web_search",
                                              "internal_reasoning", "input_cache_read",
                                              "input_cache_write"};
    char name[300];
    snprintf(name, sizeof name, "Sim: %.256s", id);
    cJSON *m = cJSON_CreateObject(), *arch, *pricing, *top, *supported, *mods;
    bool ok = m && cJSON_AddStringToObject(m, "id", id) &&
              cJSON_AddStringToObject(m, "canonical_slug", id) &&
              cJSON_AddStringToObject(m, "name", name) &&
              cJSON_AddNumberToObject(m, "created", (double)started_at) &&
              cJSON_AddStringToObject(m, "description", "A routefs-sim model.") &&
              cJSON_AddNumberToObject(m, "context_length", CONTEXT_LENGTH) &&
              (arch = cJSON_AddObjectToObject(m, "architecture")) &&
              cJSON_AddStringToObject(arch, "modality", "text->text") &&
              (mods = cJSON_AddArrayToObject(arch, "input_modalities")) &&
              cJSON_AddItemToArray(mods, cJSON_CreateString("text")) &&
              (mods = cJSON_AddArrayToObject(arch, "output_modalities")) &&
              cJSON_AddItemToArray(mods, cJSON_CreateString("text")) &&
              cJSON_AddStringToObject(arch, "tokenizer", "Other") &&
              cJSON_AddNullToObject(arch, "instruct_type") &&
              (pricing = cJSON_AddObjectToObject(m, "pricing")) &&
              cJSON_AddItemToObject(pricing, "prompt", per_token(prompt)) &&
              cJSON_AddItemToObject(pricing, "completion", per_token(completion)) &&
              (top = cJSON_AddObjectToObject(m, "top_provider")) &&
              cJSON_AddNumberToObject(top, "context_length", CONTEXT_LENGTH) &&
              cJSON_AddNumberToObject(top, "max_completion_tokens", MAX_COMPLETION_TOKENS) &&
              cJSON_AddFalseToObject(top, "is_moderated") &&
              cJSON_AddNullToObject(m, "per_request_limits") &&
              (supported = cJSON_AddArrayToObject(m, "supported_parameters")) &&
              cJSON_AddNullToObject(m, "default_parameters");
    for (size_t i = 0; ok && i < sizeof free_prices / sizeof free_prices[0]; i++)
        ok = cJSON_AddStringToObject(pricing, free_prices[i], "0") != NULL;
    for (size_t i = 0; ok && i < sizeof params / sizeof params[0]; i++)
        ok = cJSON_AddItemToArray(supported, cJSON_CreateString(params[i]));
    if (!ok) {   /* a failed cJSON_Create* above leaks nothing: it returned NULL */
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}

/* The default list: one entry per model whose behaviour has a price. */
static cJSON *derived_models(void)
{
    cJSON *priced = sim_state_priced_models();
    cJSON *list = priced ? cJSON_CreateArray() : NULL;
    const cJSON *p;
    const cJSON *each = list ? priced : NULL;
    bool ok = list != NULL;
    cJSON_ArrayForEach(p, each) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "id");
        cJSON *m = model_entry(id->valuestring,
                               cJSON_GetObjectItemCaseSensitive(p, "prompt")->valuedouble,
                               cJSON_GetObjectItemCaseSensitive(p, "completion")->valuedouble);
        if (!m || !cJSON_AddItemToArray(list, m)) {
            cJSON_Delete(m);
            ok = false;
            break;
        }
    }
    cJSON_Delete(priced);
    if (!ok) {
        cJSON_Delete(list);
        return NULL;
    }
    return list;
}

enum MHD_Result sim_or_models(struct MHD_Connection *conn)
{
    sim_state_count_endpoint("/api/v1/models");
    pthread_mutex_lock(&or_lock);
    const cJSON *set = models_set ? models_set : startup_models;
    cJSON *list = set ? cJSON_Duplicate(set, true) : NULL;
    pthread_mutex_unlock(&or_lock);
    if (!set)
        list = derived_models();   /* outside or_lock: it takes the state lock */
    cJSON *doc = list ? cJSON_CreateObject() : NULL;
    if (!doc || !cJSON_AddItemToObject(doc, "data", list)) {
        cJSON_Delete(list);
        cJSON_Delete(doc);
        return MHD_NO;
    }
    return reply_json(conn, 200, doc);
}

enum MHD_Result sim_or_control_models(struct MHD_Connection *conn, const sim_exchange *ex)
{
    cJSON *doc = sim_parse_body(ex);
    if (!doc && ex->body) {   /* a bare array is fine too */
        cJSON *array = cJSON_ParseWithLength(ex->body, ex->body_len);
        if (cJSON_IsArray(array))
            doc = array;
        else
            cJSON_Delete(array);
    }
    const cJSON *list = models_list(doc);
    cJSON *copy = list ? cJSON_Duplicate(list, true) : NULL;
    cJSON_Delete(doc);
    if (!copy)
        return reply_or_error(conn, 400, "sim: expected {\"data\": [...]}");
    pthread_mutex_lock(&or_lock);
    cJSON_Delete(models_set);
    models_set = copy;
    pthread_mutex_unlock(&or_lock);
    sim_log("models list set: %d entries", cJSON_GetArraySize(copy));
    return sim_queue_reply(conn, 200, sim_static_response("{\"ok\":true}", "application/json"));
}

/* ---------------------------------------------------------------- /api/v1/key */

enum period { PERIOD_NONE, PERIOD_DAILY, PERIOD_WEEKLY, PERIOD_MONTHLY };

static void periods_of(time_t t, int64_t *day, int64_t *week, int64_t *month)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    *day = (int64_t)t / 86400;
    *week = (*day + 3) / 7;   /* 1970-01-01 was a Thursday: weeks start on Monday */
    *month = (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
}

/* Seconds from t to the start of the next period. */
static long seconds_to_reset(time_t t, enum period p)
{
    int64_t day, week, month;
    periods_of(t, &day, &week, &month);
    if (p == PERIOD_DAILY)
        return (long)((day + 1) * 86400 - (int64_t)t);
    if (p == PERIOD_WEEKLY)
        return (long)(((week + 1) * 7 - 3) * 86400 - (int64_t)t);
    struct tm next = {.tm_year = (int)((month + 1) / 12 - 1900), .tm_mon = (int)((month + 1) % 12),
                      .tm_mday = 1};
    return (long)(timegm(&next) - t);
}

/* The key's usage record, created when create is set.  Caller holds or_lock. */
static key_usage *key_lookup(const char *auth, bool create)
{
    auth = auth ? auth : "";
    for (key_usage *k = keys; k; k = k->next)
        if (strcmp(k->auth, auth) == 0)
            return k;
    if (!create)
        return NULL;
    key_usage *k = calloc(1, sizeof *k);
    if (!k || !(k->auth = strdup(auth))) {
        free(k);
        return NULL;
    }
    k->next = keys;
    keys = k;
    return k;
}

/* Bring k's period buckets to now (a new day starts usage_daily at 0). */
static void key_roll(key_usage *k, time_t now)
{
    int64_t day, week, month;
    periods_of(now, &day, &week, &month);
    if (k->day != day)
        k->daily = 0, k->day = day;
    if (k->week != week)
        k->weekly = 0, k->week = week;
    if (k->month != month)
        k->monthly = 0, k->month = month;
}

/* The limit settings.  Caller holds or_lock. */
static bool limit_locked(double *limit, enum period *reset)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(key_settings, "limit");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(key_settings, "limit_reset");
    *reset = PERIOD_NONE;
    if (cJSON_IsString(r))
        *reset = strcmp(r->valuestring, "daily") == 0    ? PERIOD_DAILY
                 : strcmp(r->valuestring, "weekly") == 0 ? PERIOD_WEEKLY
                                                         : PERIOD_MONTHLY;
    if (!cJSON_IsNumber(l))
        return false;
    *limit = l->valuedouble;
    return true;
}

/* What counts against the limit: the usage of the limit's period. */
static double limited_usage(const key_usage *k, enum period reset)
{
    if (!k)
        return 0;
    return reset == PERIOD_DAILY ? k->daily : reset == PERIOD_WEEKLY ? k->weekly
                                            : reset == PERIOD_MONTHLY ? k->monthly : k->total;
}

bool sim_key_over_limit(const char *auth, char *retry_after, size_t len)
{
    time_t now = time(NULL);
    double limit;
    enum period reset;
    pthread_mutex_lock(&or_lock);
    bool has_limit = limit_locked(&limit, &reset);
    key_usage *k = has_limit ? key_lookup(auth, false) : NULL;
    if (k)
        key_roll(k, now);
    bool over = has_limit && limited_usage(k, reset) >= limit;
    pthread_mutex_unlock(&or_lock);
    snprintf(retry_after, len, "%s", "");
    if (over && reset != PERIOD_NONE)
        snprintf(retry_after, len, "%ld", seconds_to_reset(now, reset));
    return over;
}

void sim_key_charge(const char *auth, double usd)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&or_lock);
    key_usage *k = key_lookup(auth, true);
    if (k) {
        key_roll(k, now);
        k->total += usd;
        k->daily += usd;
        k->weekly += usd;
        k->monthly += usd;
    }
    pthread_mutex_unlock(&or_lock);
}

enum MHD_Result sim_or_key(struct MHD_Connection *conn)
{
    sim_state_count_endpoint("/api/v1/key");
    const char *auth = auth_of(conn);
    if (!auth)
        return reply_or_error(conn, 401, "No auth credentials found");
    double limit;
    enum period reset;
    cJSON *doc = cJSON_CreateObject(), *data = doc ? cJSON_AddObjectToObject(doc, "data") : NULL;
    cJSON *rate = NULL;
    pthread_mutex_lock(&or_lock);
    bool has_limit = limit_locked(&limit, &reset);
    key_usage *k = key_lookup(auth, false);
    if (k)
        key_roll(k, time(NULL));
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(key_settings, "label");
    const cJSON *free_tier = cJSON_GetObjectItemCaseSensitive(key_settings, "is_free_tier");
    static const char *const reset_names[] = {NULL, "daily", "weekly", "monthly"};
    bool ok = data &&
              cJSON_AddStringToObject(data, "label", cJSON_IsString(label) ? label->valuestring
                                                                          : "sim-key") &&
              (has_limit ? cJSON_AddNumberToObject(data, "limit", limit) != NULL
                         : cJSON_AddNullToObject(data, "limit") != NULL) &&
              (reset ? cJSON_AddStringToObject(data, "limit_reset", reset_names[reset]) != NULL
                     : cJSON_AddNullToObject(data, "limit_reset") != NULL) &&
              (has_limit ? cJSON_AddNumberToObject(data, "limit_remaining",
                                                   fmax(0, limit - limited_usage(k, reset))) != NULL
                         : cJSON_AddNullToObject(data, "limit_remaining") != NULL) &&
              cJSON_AddFalseToObject(data, "include_byok_in_limit") &&
              cJSON_AddNumberToObject(data, "usage", k ? k->total : 0) &&
              cJSON_AddNumberToObject(data, "usage_daily", k ? k->daily : 0) &&
              cJSON_AddNumberToObject(data, "usage_weekly", k ? k->weekly : 0) &&
              cJSON_AddNumberToObject(data, "usage_monthly", k ? k->monthly : 0) &&
              cJSON_AddNumberToObject(data, "byok_usage", 0) &&
              cJSON_AddNumberToObject(data, "byok_usage_daily", 0) &&
              cJSON_AddNumberToObject(data, "byok_usage_weekly", 0) &&
              cJSON_AddNumberToObject(data, "byok_usage_monthly", 0) &&
              cJSON_AddBoolToObject(data, "is_free_tier", cJSON_IsTrue(free_tier)) &&
              cJSON_AddFalseToObject(data, "is_provisioning_key") &&
              (rate = cJSON_AddObjectToObject(data, "rate_limit")) &&
              cJSON_AddNumberToObject(rate, "requests", -1) &&
              cJSON_AddStringToObject(rate, "interval", "10s") &&
              cJSON_AddNullToObject(data, "expires_at");
    /* Whatever else the test set goes in as it is, over the computed fields. */
    const cJSON *extra;
    const cJSON *extras = ok ? key_settings : NULL;
    cJSON_ArrayForEach(extra, extras) {
        if (strcmp(extra->string, "limit") == 0 || strcmp(extra->string, "limit_reset") == 0 ||
            strcmp(extra->string, "label") == 0 || strcmp(extra->string, "is_free_tier") == 0)
            continue;
        cJSON *copy = cJSON_Duplicate(extra, true);
        cJSON_DeleteItemFromObjectCaseSensitive(data, extra->string);
        if (!copy || !cJSON_AddItemToObject(data, extra->string, copy)) {
            cJSON_Delete(copy);
            ok = false;
            break;
        }
    }
    pthread_mutex_unlock(&or_lock);
    if (!ok) {
        cJSON_Delete(doc);
        return MHD_NO;
    }
    return reply_json(conn, 200, doc);
}

enum MHD_Result sim_or_control_key(struct MHD_Connection *conn, const sim_exchange *ex)
{
    cJSON *doc = sim_parse_body(ex);
    if (!doc)
        return reply_or_error(conn, 400, "sim: the request body is not a JSON object");
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(doc, "limit");
    const cJSON *reset = cJSON_GetObjectItemCaseSensitive(doc, "limit_reset");
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(doc, "label");
    const cJSON *free_tier = cJSON_GetObjectItemCaseSensitive(doc, "is_free_tier");
    const char *why = NULL;
    if (limit && !cJSON_IsNull(limit) &&
        !(cJSON_IsNumber(limit) && isfinite(limit->valuedouble) && limit->valuedouble >= 0))
        why = "sim: \"limit\" must be a number >= 0 or null";
    else if (reset && !cJSON_IsNull(reset) &&
             !(cJSON_IsString(reset) && (strcmp(reset->valuestring, "daily") == 0 ||
                                         strcmp(reset->valuestring, "weekly") == 0 ||
                                         strcmp(reset->valuestring, "monthly") == 0)))
        why = "sim: \"limit_reset\" must be \"daily\", \"weekly\", \"monthly\" or null";
    else if (label && !cJSON_IsString(label))
        why = "sim: \"label\" must be a string";
    else if (free_tier && !cJSON_IsBool(free_tier))
        why = "sim: \"is_free_tier\" must be true or false";
    if (why) {
        cJSON_Delete(doc);
        return reply_or_error(conn, 400, why);
    }
    pthread_mutex_lock(&or_lock);
    cJSON_Delete(key_settings);
    key_settings = doc;
    pthread_mutex_unlock(&or_lock);
    sim_log("key settings: %.*s", (int)sim_utf8_cut(ex->body, ex->body_len, 400), ex->body);
    return sim_queue_reply(conn, 200, sim_static_response("{\"ok\":true}", "application/json"));
}

/* ---------------------------------------------------------------- /api/v1/generation */

void sim_generation_store(const char *id, cJSON *data, uint64_t available_ns)
{
    char *id_copy = strdup(id);
    pthread_mutex_lock(&or_lock);
    if (!generations)
        generations = calloc(SIM_GENERATIONS_KEPT, sizeof *generations);
    if (!generations || !id_copy) {
        pthread_mutex_unlock(&or_lock);
        free(id_copy);
        cJSON_Delete(data);
        return;
    }
    generation *slot = &generations[generations_next];
    char *old_id = slot->id;
    cJSON *old_data = slot->data;
    *slot = (generation){.id = id_copy, .data = data, .available_ns = available_ns};
    generations_next = (generations_next + 1) % SIM_GENERATIONS_KEPT;
    if (generations_len < SIM_GENERATIONS_KEPT)
        generations_len++;
    pthread_mutex_unlock(&or_lock);
    free(old_id);
    cJSON_Delete(old_data);
}

enum MHD_Result sim_or_generation(struct MHD_Connection *conn)
{
    sim_state_count_endpoint("/api/v1/generation");
    if (!auth_of(conn))
        return reply_or_error(conn, 401, "No auth credentials found");
    const char *id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "id");
    if (!id || !*id)
        return reply_or_error(conn, 400, "sim: the \"id\" query parameter is required");
    uint64_t now = sim_now_ns();
    cJSON *data = NULL;
    pthread_mutex_lock(&or_lock);
    for (size_t i = 0; i < generations_len; i++) {   /* newest first */
        size_t at = (generations_next + SIM_GENERATIONS_KEPT - 1 - i) % SIM_GENERATIONS_KEPT;
        if (strcmp(generations[at].id, id) == 0) {
            if (now >= generations[at].available_ns)
                data = cJSON_Duplicate(generations[at].data, true);
            break;
        }
    }
    pthread_mutex_unlock(&or_lock);
    if (!data)
        return reply_or_error(conn, 404, "Generation not found");
    cJSON *doc = cJSON_CreateObject();
    if (!doc || !cJSON_AddItemToObject(doc, "data", data)) {
        cJSON_Delete(data);
        cJSON_Delete(doc);
        return MHD_NO;
    }
    return reply_json(conn, 200, doc);
}

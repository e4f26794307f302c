/* config.c — the routing map's public face: config_parse and config_load_file (which
 * hand the document to config_parse.c and the key files to config_check.c), reference
 * counts and freeing, lookups by name and price, and the API keys a config refers to
 * (config_provider_key for a request, config_secrets for the redactor).
 *
 * Secrets: a config names keys (api_key_env / api_key_file) but never holds one.  The
 * functions here read keys and never put one in a message. */
#include "config_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- freeing ---- */

void config_free_hops(rf_hop *hops, size_t n)
{
    if (!hops)
        return;
    for (size_t i = 0; i < n; i++) {
        free(hops[i].provider);
        free(hops[i].model);
    }
    free(hops);
}

static void free_provider(rf_provider *p)
{
    free(p->name);
    free(p->base_url);
    free(p->api_key_env);
    free(p->api_key_file);
    for (size_t i = 0; i < p->supported_params_len; i++)
        free(p->supported_params[i]);
    free(p->supported_params);
}

static void free_tier(rf_tier *t)
{
    free(t->name);
    config_free_hops(t->route, t->route_len);
    free(t->provider_prefs_json);
    free(t->system_prompt);
    free(t->service_tier);
    free(t->session_id);
    free(t->park_schedule_ms);
}

static void free_shared(rf_shared_cfg *s)
{
    if (!s)
        return;
    free(s->redis_url);
    free(s->host);
    free(s->password_env);
    free(s->prefix);
    free(s);
}

/* Frees a config in any state of construction (everything starts zeroed). */
void config_free(rf_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->providers_len; i++)
        free_provider(&cfg->providers[i]);
    free(cfg->providers);
    for (size_t i = 0; i < cfg->tiers_len; i++)
        free_tier(&cfg->tiers[i]);
    free(cfg->tiers);
    for (size_t i = 0; i < cfg->prices_len; i++) {
        free(cfg->prices[i].provider);
        free(cfg->prices[i].model);
    }
    free(cfg->prices);
    free_shared(cfg->shared);
    free(cfg->source_json);
    free(cfg);
}


int config_parse(const char *text, size_t len, rf_config **out, rf_err *err)
{
    *out = NULL;
    cJSON *doc = cfg_parse_document(text, len, err);
    if (!doc)
        return -1;
    rf_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        cJSON_Delete(doc);
        return cfg_out_of_memory(err);
    }
    int rc = cfg_parse_config(doc, cfg, err);
    cJSON_Delete(doc);
    if (rc < 0) {
        config_free(cfg);
        return -1;
    }
    cfg->refcount = 1;
    *out = cfg;
    return 0;
}

int config_load_file(const char *path, rf_config **out, rf_err *err)
{
    *out = NULL;
    char *text;
    size_t len;
    int e = cfg_read_whole_file(path, CONFIG_MAX_BYTES, &text, &len);
    if (e == EFBIG)
        return rf_err_set(err, EINVAL, "%s: config too large (more than %d bytes)", path,
                          CONFIG_MAX_BYTES);
    if (e) {
        char buf[128];
        return rf_err_set(err, e, "cannot read %s: %s", path, strerror_r(e, buf, sizeof buf));
    }
    rf_err parse_err;
    rf_err_clear(&parse_err);
    int rc = config_parse(text, len, out, &parse_err);
    free(text);
    if (rc == 0 && (rc = config_check_key_files(*out, &parse_err)) < 0) {
        config_unref(*out);
        *out = NULL;
    }
    if (rc < 0)
        return rf_err_set(err, parse_err.code, "%s: %s", path, parse_err.msg);
    return 0;
}

/* ---- references and lookups ---- */

rf_config *config_ref(rf_config *cfg)
{
    if (cfg)
        __atomic_add_fetch(&cfg->refcount, 1, __ATOMIC_RELAXED);
    return cfg;
}

void config_unref(rf_config *cfg)
{
    if (cfg && __atomic_sub_fetch(&cfg->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(cfg);
}

const rf_tier *config_tier(const rf_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->tiers_len; i++)
        if (strcmp(cfg->tiers[i].name, name) == 0)
            return &cfg->tiers[i];
    return NULL;
}

const rf_provider *config_provider(const rf_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->providers_len; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

const rf_price *config_price(const rf_config *cfg, const char *provider, const char *model)
{
    const rf_price *any_provider = NULL;
    for (size_t i = 0; i < cfg->prices_len; i++) {
        const rf_price *p = &cfg->prices[i];
        if (strcmp(p->model, model) != 0)
            continue;
        if (!p->provider)
            any_provider = p;
        else if (provider && strcmp(p->provider, provider) == 0)
            return p;
    }
    return any_provider;
}

int config_price_is_free(const rf_config *cfg, const char *provider, const char *model)
{
    const rf_provider *p = provider ? config_provider(cfg, provider) : NULL;
    if (p && p->is_free)
        return 1;
    const rf_price *price = config_price(cfg, provider, model);
    return price && price->prompt_per_m == 0 && price->completion_per_m == 0;
}

/* ---- API keys ---- */

int config_provider_key(const rf_provider *p, char **key_out, rf_err *err)
{
    *key_out = NULL;
    char *key;
    if (p->api_key_env) {
        const char *value = getenv(p->api_key_env);
        key = cfg_dup_trimmed(value ? value : "", value ? strlen(value) : 0);
        if (!key)
            return cfg_out_of_memory(err);
        if (key[0] == '\0') {
            free(key);
            return rf_err_set(err, EINVAL, "provider \"%s\": environment variable %s is not set",
                              p->name, p->api_key_env);
        }
    } else if (p->api_key_file) {
        char *text;
        size_t len;
        int e = cfg_read_whole_file(p->api_key_file, KEY_FILE_MAX_BYTES, &text, &len);
        if (e) {
            char buf[128];
            return rf_err_set(err, e == EFBIG ? EINVAL : e,
                              "provider \"%s\": cannot read key file %s: %s", p->name,
                              p->api_key_file,
                              e == EFBIG ? "file too large" : strerror_r(e, buf, sizeof buf));
        }
        key = cfg_dup_trimmed(text, len);
        free(text);
        if (!key)
            return cfg_out_of_memory(err);
        if (key[0] == '\0') {
            free(key);
            return rf_err_set(err, EINVAL, "provider \"%s\": key file %s is empty", p->name,
                              p->api_key_file);
        }
    } else {
        return 0;
    }
    /* a key goes into an HTTP header: a line break in it would inject another header */
    if (cfg_has_control_chars(key)) {
        free(key);
        return rf_err_set(err, EINVAL, "provider \"%s\": API key contains control characters",
                          p->name);
    }
    *key_out = key;
    return 0;
}

/* ---- secrets, for the redactor ---- */

/* Append a copy of s unless list already holds it; 0, or -1 when out of memory. */
static int add_secret(char ***list, size_t *n, size_t *cap, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*list)[i], s) == 0)
            return 0;
    if (*n == *cap) {
        size_t new_cap = *cap ? 2 * *cap : 8;
        char **grown = realloc(*list, new_cap * sizeof *grown);
        if (!grown)
            return -1;
        *list = grown;
        *cap = new_cap;
    }
    if (!((*list)[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

size_t config_secrets(const rf_config *cfg, char ***out)
{
    char **list = NULL;
    size_t n = 0, cap = 0;
    int oom = 0;
    for (size_t i = 0; i < cfg->providers_len && !oom; i++) {
        char *key = NULL;
        rf_err err;
        if (config_provider_key(&cfg->providers[i], &key, &err) < 0 || !key)
            continue;   /* nothing readable: nothing that could be sent, or echoed */
        oom = add_secret(&list, &n, &cap, key) < 0;
        explicit_bzero(key, strlen(key));
        free(key);
    }
    if (!oom && cfg->shared && cfg->shared->password_env) {
        const char *value = getenv(cfg->shared->password_env);
        char *password = value ? cfg_dup_trimmed(value, strlen(value)) : NULL;
        if (value && !password)
            oom = 1;
        else if (password && password[0])
            oom = add_secret(&list, &n, &cap, password) < 0;
        if (password) {
            explicit_bzero(password, strlen(password));
            free(password);
        }
    }
    if (oom || n == 0) {
        config_free_secrets(list, n);
        list = NULL;
        n = 0;
    }
    *out = list;
    return n;
}

void config_free_secrets(char **secrets, size_t n)
{
    if (!secrets)
        return;
    for (size_t i = 0; i < n; i++) {
        explicit_bzero(secrets[i], strlen(secrets[i]));
        free(secrets[i]);
    }
    free(secrets);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int config_shared_equal(const rf_shared_cfg *a, const rf_shared_cfg *b)
{
    if (!a || !b)
        return !a && !b;
    return same_str(a->redis_url, b->redis_url) && same_str(a->password_env, b->password_env) &&
           same_str(a->prefix, b->prefix) && a->on_shared_down == b->on_shared_down &&
           a->local_share == b->local_share && a->reservation_ttl_ms == b->reservation_ttl_ms &&
           a->breaker_sync_ms == b->breaker_sync_ms;
}

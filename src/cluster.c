/* cluster.c — see cluster.h.
 *
 * The state here is set once at start (before any attempt runs) and cleared at stop
 * (after the loop is gone), so readers need no lock: the shared handle does its own
 * locking and never blocks.
 *
 * Clocks: breakers.c works on the monotonic clock, shared.c on the wall clock (it turns
 * Redis's TIME into this host's wall clock).  The conversions keep the distance from now,
 * so a wall-clock step moves nothing by more than the step. */
#include "cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define NUSD_PER_USD 1e9

static struct {
    shared *sh;                  /* owned; NULL = off */
    rf_shared_cfg cfg;           /* the fields read here (strings not kept) */
    char host_id[SHARED_HOST_ID_MAX + 1];
    char where[300];             /* "127.0.0.1:6379/0" */
    char prefix[160];
} C;

static int64_t usd_to_nusd(double usd)
{
    if (usd < 0)
        return -1;
    double n = usd * NUSD_PER_USD + 0.5;
    return n >= (double)SHARED_NUSD_MAX ? SHARED_NUSD_MAX : (int64_t)n;
}

static double nusd_to_usd(int64_t nusd)
{
    return (double)nusd / NUSD_PER_USD;
}

/* "HOST:HASH": the host name (bytes shared.c does not take become '-') and a hash of the
 * state directory, so two mounts on one machine are two hosts. */
static void make_host_id(const char *state_path, char *out, size_t len)
{
    char name[64] = "host";
    if (gethostname(name, sizeof name) < 0 || !name[0])
        snprintf(name, sizeof name, "host");
    name[sizeof name - 1] = '\0';
    for (char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '-';
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (const char *p = state_path; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    snprintf(out, len, "%s:%08x", name, h);
}

/* ---- breakers seen by other hosts ---- */

/* breakers_set_remote's view: cheap, never blocks (the shared cache). */
static int remote_is_open(const char *provider, const char *model, int64_t now_ms,
                          int64_t *until_ms, void *ud)
{
    (void)ud;
    int64_t until_wall = 0;
    if (!C.sh || !shared_breaker_open(C.sh, provider, model, &until_wall))
        return 0;
    *until_ms = now_ms + (until_wall - now_wall_ms());
    return 1;
}

void cluster_breaker_event(const breaker_event *ev)
{
    if (!C.sh || ev->to == RF_BREAKER_HALF_OPEN)
        return;   /* half-open is visible elsewhere as an open period that ran out */
    int open = ev->to == RF_BREAKER_OPEN;
    int64_t until_wall = open ? now_wall_ms() + (ev->until_ms - now_mono_ms()) : 0;
    rf_err err;
    if (shared_breaker_publish(C.sh, ev->provider, ev->model, open, until_wall, ev->reason,
                               &err) < 0)
        LOG_WARN("shared: cannot publish the breaker of %s%s%s: %s", ev->provider,
                 ev->model ? "/" : "", ev->model ? ev->model : "", err.msg);
}

/* ---- start, stop, posture ---- */

/* Tell Redis what this host's ledger holds in the windows of today and this month. */
static void assert_host_spend(const rf_config *cfg, budget *b)
{
    int64_t now = now_wall_ms();
    for (size_t i = 0; i <= cfg->tiers_len; i++) {
        const char *tier = i < cfg->tiers_len ? cfg->tiers[i].name : NULL;
        int64_t today = 0, month = 0;
        budget_spent_now(b, tier, &today, &month);
        shared_caps caps;
        rf_err err;
        if (shared_caps_standard(&caps, now, -1, -1, tier, -1, &err) < 0)
            continue;   /* a tier name too long for a window: its spend stays local */
        /* caps.w: day, month, then the tier's day */
        if (!tier) {
            if ((today > 0 && shared_host_spent(C.sh, caps.w[0].key, today, &err) < 0) ||
                (month > 0 && shared_host_spent(C.sh, caps.w[1].key, month, &err) < 0))
                LOG_WARN("shared: cannot tell Redis this host's spend: %s", err.msg);
        } else if (caps.n > 2 && today > 0 &&
                   shared_host_spent(C.sh, caps.w[2].key, today, &err) < 0) {
            LOG_WARN("shared: cannot tell Redis this host's spend in tier %s: %s", tier,
                     err.msg);
        }
    }
}

int cluster_start(const rf_config *cfg, const char *state_path, budget *b, rf_breakers *brk,
                  rf_err *err)
{
    if (!cfg->shared)
        return 0;
    make_host_id(state_path, C.host_id, sizeof C.host_id);
    if (!(C.sh = shared_start(cfg->shared, C.host_id, err)))
        return -1;
    C.cfg = *cfg->shared;
    C.cfg.redis_url = C.cfg.host = C.cfg.password_env = C.cfg.prefix = NULL;
    snprintf(C.where, sizeof C.where, "%s:%d/%d", cfg->shared->host, cfg->shared->port,
             cfg->shared->db);
    snprintf(C.prefix, sizeof C.prefix, "%s", cfg->shared->prefix);
    assert_host_spend(cfg, b);
    breakers_set_remote(brk, remote_is_open, NULL);
    LOG_INFO("shared: host %s on Redis %s, prefix %s; when it is down: %s", C.host_id, C.where,
             C.prefix, C.cfg.on_shared_down == RF_SHARED_DOWN_LOCAL ? "local share" : "wait");
    return 0;
}

void cluster_stop(void)
{
    shared_stop(C.sh);
    C.sh = NULL;
}

shared *cluster_shared(void)
{
    return C.sh;
}

cluster_posture cluster_now(double *share)
{
    if (share)
        *share = 1.0;
    if (!C.sh)
        return CLUSTER_OFF;
    shared_health_info h;
    shared_health(C.sh, &h);
    if (h.state != SHARED_DOWN)
        return CLUSTER_ON;
    if (C.cfg.on_shared_down != RF_SHARED_DOWN_LOCAL)
        return CLUSTER_WAIT;
    if (share)
        *share = C.cfg.local_share;
    return CLUSTER_LOCAL;
}

int cluster_caps(const rf_config *cfg, const char *tier, shared_caps *out, rf_err *err)
{
    const rf_tier *t = tier ? config_tier(cfg, tier) : NULL;
    return shared_caps_standard(out, now_wall_ms(), usd_to_nusd(cfg->daily_usd),
                                usd_to_nusd(cfg->monthly_usd), t ? tier : NULL,
                                t ? usd_to_nusd(t->daily_usd) : -1, err);
}

int cluster_check_admission(const rf_config *cfg, const char *tier, rf_err *err)
{
    shared_caps caps;
    if (!C.sh || cluster_caps(cfg, tier, &caps, NULL) < 0)
        return 0;
    shared_spend_info sp;
    shared_spend(C.sh, &caps, &sp);
    for (int i = 0; i < sp.n; i++) {
        const shared_window *w = &caps.w[i];
        if (w->cap_nusd >= 0 && sp.w[i].known && sp.w[i].spent_nusd >= w->cap_nusd) {
            int d = w->cap_nusd < 1000000000 ? 4 : 2;
            return rf_err_set(err, EDQUOT, "%s $%.*f reached: $%.*f spent (all hosts)", w->label,
                              d, nusd_to_usd(w->cap_nusd), d, nusd_to_usd(sp.w[i].spent_nusd));
        }
    }
    return 0;
}

/* ---- views ---- */

static const char *state_now(shared_health_info *h)
{
    shared_health(C.sh, h);
    return shared_state_name(h->state);
}

static void add_time(cJSON *o, const char *name, int64_t ms)
{
    char buf[40];
    format_time_ms(ms, buf, sizeof buf);
    cJSON_AddStringToObject(o, name, buf);
}

static cJSON *head_json(void)
{
    shared_health_info h;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "state", state_now(&h));
    cJSON_AddStringToObject(o, "host", C.host_id);
    cJSON_AddStringToObject(o, "redis", C.where);
    cJSON_AddStringToObject(o, "prefix", C.prefix);
    cJSON_AddStringToObject(o, "on_shared_down",
                            C.cfg.on_shared_down == RF_SHARED_DOWN_LOCAL ? "local" : "wait");
    if (h.last_error[0])
        cJSON_AddStringToObject(o, "last_error", h.last_error);
    return o;
}

cJSON *cluster_spend_json(const rf_config *cfg)
{
    shared_caps caps;
    if (!C.sh || cluster_caps(cfg, NULL, &caps, NULL) < 0)
        return NULL;
    cJSON *o = head_json();
    cJSON *wins = cJSON_AddObjectToObject(o, "windows");
    if (!wins) {
        cJSON_Delete(o);
        return NULL;
    }
    /* The overall windows, then each tier's day. */
    for (size_t t = 0; t <= cfg->tiers_len; t++) {
        const char *tier = t ? cfg->tiers[t - 1].name : NULL;
        if (tier && cluster_caps(cfg, tier, &caps, NULL) < 0)
            continue;
        shared_spend_info sp;
        shared_spend(C.sh, &caps, &sp);
        for (int i = tier ? 2 : 0; i < sp.n && i < (tier ? 3 : 2); i++) {
            char name[SHARED_WINDOW_MAX + 8];
            snprintf(name, sizeof name, "%s%s", tier ? "tier:" : "", tier ? tier : i ? "monthly" : "daily");
            cJSON *w = cJSON_AddObjectToObject(wins, name);
            if (!w)
                break;
            cJSON_AddStringToObject(w, "window", caps.w[i].key);
            if (caps.w[i].cap_nusd >= 0)
                cJSON_AddNumberToObject(w, "cap", nusd_to_usd(caps.w[i].cap_nusd));
            else
                cJSON_AddNullToObject(w, "cap");
            if (!sp.w[i].known) {
                cJSON_AddNullToObject(w, "spent");   /* asked for now: known within a sync */
                continue;
            }
            cJSON_AddNumberToObject(w, "spent", nusd_to_usd(sp.w[i].spent_nusd));
            cJSON_AddNumberToObject(w, "reserved", nusd_to_usd(sp.w[i].reserved_nusd));
            cJSON_AddNumberToObject(w, "this_host", nusd_to_usd(sp.w[i].host_nusd));
            add_time(w, "at", sp.w[i].at_ms);
        }
    }
    return o;
}

cJSON *cluster_providers_json(void)
{
    if (!C.sh)
        return NULL;
    cJSON *o = head_json();
    cJSON *arr = cJSON_AddArrayToObject(o, "breakers");
    if (!arr) {
        cJSON_Delete(o);
        return NULL;
    }
    shared_breaker_info info[64];
    size_t n = shared_breaker_list(C.sh, info, 64);
    for (size_t i = 0; i < n && i < 64; i++) {
        cJSON *b = cJSON_CreateObject();
        if (!b || !cJSON_AddItemToArray(arr, b)) {
            cJSON_Delete(b);
            break;
        }
        cJSON_AddStringToObject(b, "provider", info[i].provider);
        if (info[i].model[0])
            cJSON_AddStringToObject(b, "model", info[i].model);
        else
            cJSON_AddNullToObject(b, "model");
        add_time(b, "reopens_at", info[i].until_ms);
        cJSON_AddStringToObject(b, "host", info[i].host);
        cJSON_AddStringToObject(b, "reason", info[i].reason);
    }
    return o;
}

char *cluster_status_line(void)
{
    if (!C.sh)
        return NULL;
    shared_health_info h;
    const char *st = state_now(&h);
    char rtt[64] = "";
    if (h.rtt_p50_us >= 0)
        snprintf(rtt, sizeof rtt, ", round trip p50 %.2f ms", h.rtt_p50_us / 1000.0);
    char deferred[96] = "";
    if (h.deferred)
        snprintf(deferred, sizeof deferred, ", %zu update(s) ($%.4f spent) kept until it is back",
                 h.deferred, nusd_to_usd(h.deferred_nusd));
    char *out = NULL;
    const char *mode = C.cfg.on_shared_down == RF_SHARED_DOWN_LOCAL ? "local" : "wait";
    if (asprintf(&out, "shared: %s (Redis %s, prefix %s, host %s%s%s; when down: %s)%s%s", st,
                 C.where, C.prefix, C.host_id, rtt, deferred, mode,
                 h.state == SHARED_DOWN && h.last_error[0] ? ": " : "",
                 h.state == SHARED_DOWN ? h.last_error : "") < 0)
        return NULL;
    return out;
}

char *cluster_metrics_text(void)
{
    if (!C.sh)
        return NULL;
    shared_health_info h;
    shared_health(C.sh, &h);
    char *out = NULL;
    if (asprintf(&out,
                 "# HELP routefs_shared_state Shared state (Redis): 1 for the state it is in.\n"
                 "# TYPE routefs_shared_state gauge\n"
                 "routefs_shared_state{state=\"connected\"} %d\n"
                 "routefs_shared_state{state=\"degraded\"} %d\n"
                 "routefs_shared_state{state=\"down\"} %d\n"
                 "# HELP routefs_shared_round_trips_total Pipelined batches Redis answered.\n"
                 "# TYPE routefs_shared_round_trips_total counter\n"
                 "routefs_shared_round_trips_total %llu\n"
                 "# HELP routefs_shared_commands_total Commands Redis answered.\n"
                 "# TYPE routefs_shared_commands_total counter\n"
                 "routefs_shared_commands_total %llu\n"
                 "# HELP routefs_shared_connects_total Connections made to Redis.\n"
                 "# TYPE routefs_shared_connects_total counter\n"
                 "routefs_shared_connects_total %llu\n"
                 "# HELP routefs_shared_deferred Updates kept in memory until Redis is back.\n"
                 "# TYPE routefs_shared_deferred gauge\n"
                 "routefs_shared_deferred %zu\n"
                 "# HELP routefs_shared_rtt_p50_seconds Median round trip to Redis (last 1024).\n"
                 "# TYPE routefs_shared_rtt_p50_seconds gauge\n"
                 "routefs_shared_rtt_p50_seconds %.6f\n",
                 h.state == SHARED_CONNECTED, h.state == SHARED_DEGRADED, h.state == SHARED_DOWN,
                 (unsigned long long)h.round_trips, (unsigned long long)h.commands,
                 (unsigned long long)h.connects, h.deferred,
                 h.rtt_p50_us >= 0 ? h.rtt_p50_us / 1e6 : 0.0) < 0)
        return NULL;
    return out;
}

/* vfiles.c — see vfiles.h. */
#include "vfiles.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "jobs.h"
#include "jsonfmt.h"
#include "log.h"
#include "metrics.h"
#include "openrouter.h"
#include "redact.h"
#include "report.h"
#include "store_ledger.h"
#include "store_prompts.h"
#include "strbuf.h"
#include "upstream.h"
#include "version.h"

static const char *vfile_names[VF_COUNT] = {
    "config.json", "spend.json", "providers.json", "activity.jsonl", "status", "metrics.prom",
    "events",      "report.html",
};

static struct {
    store *st;
    rf_breakers *breakers;
    budget *spend;
    char *mountpoint;
    pthread_mutex_t lock;       /* guards config_error and config_mtime */
    char *config_error;
    char **warnings;            /* the config's key warnings (owned) */
    char *report;               /* the last report.html rendered (owned) */
    size_t report_len;
    int64_t report_at;          /* monotonic ms */
    size_t nwarnings;
    struct timespec config_mtime;
} V = {.lock = PTHREAD_MUTEX_INITIALIZER};

void vfiles_init(store *st, rf_breakers *breakers, budget *spend, const char *mountpoint)
{
    V.st = st;
    V.spend = spend;
    V.breakers = breakers;
    free(V.mountpoint);
    V.mountpoint = mountpoint ? strdup(mountpoint) : NULL;
}

vfile_id vfile_lookup(const char *name)
{
    for (int i = 0; i < VF_COUNT; i++)
        if (!strcmp(name, vfile_names[i]))
            return (vfile_id)i;
    return VF_NONE;
}

const char *vfile_name(vfile_id id)
{
    return id >= 0 && id < VF_COUNT ? vfile_names[id] : NULL;
}

int vfile_size(vfile_id id, off_t *size)
{
    if (id == VF_ACTIVITY) {
        *size = (off_t)sl_activity_size(V.st);
        return 0;
    }
    if (id == VF_EVENTS) {
        *size = 0;   /* a stream */
        return 0;
    }
    size_t len = 0;
    char *data = vfile_render(id, &len);
    if (!data)
        return -1;
    free(data);
    *size = (off_t)len;
    return 0;
}

long vfile_read_activity(off_t off, char *buf, size_t size)
{
    rf_err err;
    rf_err_clear(&err);
    return sl_activity_read(V.st, off, buf, size, &err);
}

void vfiles_config_applied(void)
{
    pthread_mutex_lock(&V.lock);
    clock_gettime(CLOCK_REALTIME, &V.config_mtime);
    pthread_mutex_unlock(&V.lock);
}

struct timespec vfile_mtime(vfile_id id)
{
    struct timespec ts;
    if (id == VF_CONFIG) {
        pthread_mutex_lock(&V.lock);
        ts = V.config_mtime;
        pthread_mutex_unlock(&V.lock);
        if (ts.tv_sec)
            return ts;
    }
    clock_gettime(CLOCK_REALTIME, &ts);   /* the others are rendered fresh on every read */
    return ts;
}

void vfiles_set_key_warnings(const char *const *warnings, size_t n)
{
    pthread_mutex_lock(&V.lock);
    for (size_t i = 0; i < V.nwarnings; i++)
        free(V.warnings[i]);
    free(V.warnings);
    V.warnings = n ? calloc(n, sizeof *V.warnings) : NULL;
    V.nwarnings = 0;
    for (size_t i = 0; V.warnings && i < n; i++)
        if ((V.warnings[V.nwarnings] = strdup(warnings[i])))
            V.nwarnings++;
    pthread_mutex_unlock(&V.lock);
}

void vfiles_set_config_error(const char *msg)
{
    pthread_mutex_lock(&V.lock);
    free(V.config_error);
    V.config_error = msg ? strdup(msg) : NULL;
    pthread_mutex_unlock(&V.lock);
}

static char *render_config(size_t *len)
{
    rf_config *cfg = jobs_config();
    if (!cfg)
        return NULL;
    char *out = NULL;
    if (asprintf(&out, "%s\n", cfg->source_json) < 0)
        out = NULL;
    config_unref(cfg);
    if (out)
        *len = strlen(out);
    return out;
}

static char *render_status(size_t *len)
{
    strbuf tb = {0};
    rf_config *cfg = jobs_config();
    sb_printf(&tb, "routefs %s at %s\n", ROUTEFS_VERSION, V.mountpoint ? V.mountpoint : "?");
    pthread_mutex_lock(&V.lock);
    if (V.config_error)
        sb_printf(&tb, "config: REFUSED last edit: %s (previous config still in force)\n",
                  V.config_error);
    else
        sb_printf(&tb, "config: ok\n");
    for (size_t i = 0; i < V.nwarnings; i++)
        sb_printf(&tb, "config: warning: %s\n", V.warnings[i]);
    pthread_mutex_unlock(&V.lock);
    store_health h;
    store_health_get(V.st, &h);
    if (h.failing)
        sb_printf(&tb, "store: FAILING since %lld s: %s; new prompts are refused, %zu "
                       "write(s) held in memory until it works again (%zu paid answer(s))\n",
                  (long long)((now_wall_ms() - h.since_ms) / 1000), h.why, h.held,
                  h.held_paid);
    else
        sb_printf(&tb, "store: ok\n");
    int64_t short_ms = 0;
    upstream_fd_use short_use = UPSTREAM_FD_SOCKET;
    long fd_limit = 0, shortages = upstream_fd_shortages(&short_ms, &short_use, &fd_limit);
    if (shortages > 0)
        sb_printf(&tb, "descriptors: SHORT: %ld time(s) no file descriptor was left "
                       "(EMFILE, Too many open files; limit %ld), the last %lld s ago for %s; "
                       "the store keeps a reserve, so answers are still saved\n",
                  shortages, fd_limit, (long long)((now_mono_ms() - short_ms) / 1000),
                  short_use == UPSTREAM_FD_SCRATCH ? "a scratch file" : "a connection");
    char *spend = budget_status_line(V.spend, cfg);
    if (spend)
        sb_printf(&tb, "%s\n", spend);
    free(spend);
    for (size_t i = 0; cfg && i < cfg->providers_len; i++) {
        or_key_info k;
        if (cfg->providers[i].kind != RF_KIND_OPENROUTER ||
            !or_key_snapshot(cfg->providers[i].name, &k))
            continue;
        char at[40];
        format_time_ms(k.fetched_ms, at, sizeof at);
        if (k.has_limit)
            sb_printf(&tb, "openrouter key %s: limit $%.2f%s%s, $%.2f remaining, used $%.2f "
                           "today (as of %s)\n", cfg->providers[i].name, k.limit,
                      k.limit_reset[0] ? " " : "", k.limit_reset, k.limit_remaining,
                      k.usage_daily > 0 ? k.usage_daily : 0, at);
        else
            sb_printf(&tb, "openrouter key %s: no limit, used $%.2f today (as of %s)\n",
                      cfg->providers[i].name, k.usage_daily > 0 ? k.usage_daily : 0, at);
    }
    char *shared_line = cluster_status_line();
    if (shared_line)
        sb_printf(&tb, "%s\n", shared_line);
    free(shared_line);
    long incomplete = sp_count(V.st, PS_INCOMPLETE);
    if (incomplete > 0)
        sb_printf(&tb, "incomplete: %ld prompt(s) never closed by their writer: not sent "
                       "(rewrite them to run)\n", incomplete);
    long resent = jobs_resent_after_recovery();
    if (resent > 0)
        sb_printf(&tb, "recovery: %ld request(s) were in flight when routefs last stopped and "
                       "were sent again (the provider may bill them twice)\n", resent);
    long not_resent = jobs_not_resent_after_recovery();
    if (not_resent > 0)
        sb_printf(&tb, "recovery: %ld request(s) were in flight when routefs last stopped and "
                       "were not sent again (resend_in_flight is false): they failed\n",
                  not_resent);
    long tokens = 0;
    int running = 0;
    jobs_streaming(&tokens, &running);
    if (running > 0)
        sb_printf(&tb, "streaming: %d job(s) running, %ld token(s) received so far\n",
                  running, tokens);
    for (size_t i = 0; cfg && i < cfg->tiers_len; i++) {
        int counts[JOB_FAILED + 1];
        jobs_tier_counts(cfg->tiers[i].name, counts);
        sb_printf(&tb, "tier %s: %d running, %d queued, %d parked, %d writing",
                  cfg->tiers[i].name, counts[JOB_RUNNING] + counts[JOB_COMMITTING],
                  counts[JOB_QUEUED], counts[JOB_PARKED], counts[JOB_WRITING]);
        int share = upstream_tier_share(cfg, &cfg->tiers[i]);
        if (share < cfg->tiers[i].concurrency)
            sb_printf(&tb, " (at most %d at once, not %d: the descriptor limit is shared "
                           "among tiers)", share, cfg->tiers[i].concurrency);
        sb_printf(&tb, "\n");
    }
    rf_provider_health *health = NULL;
    long nhealth = breakers_health(V.breakers, now_mono_ms(), 1, &health);
    for (size_t i = 0; cfg && i < cfg->providers_len; i++) {
        const rf_provider_health *ph = NULL;
        for (long k = 0; k < nhealth && !ph; k++)
            if (!health[k].model && strcmp(health[k].provider, cfg->providers[i].name) == 0)
                ph = &health[k];
        sb_printf(&tb, "provider %s: %s", cfg->providers[i].name,
                  ph ? ph->state : "ok (no requests yet)");
        if (ph && !ph->breaker_closed && ph->last_error)
            sb_printf(&tb, " (last error: %s)", ph->last_error);
        sb_printf(&tb, "\n");
        /* model breakers that are not closed: one model down on a shared provider */
        for (long k = 0; k < nhealth; k++) {
            const rf_provider_health *mh = &health[k];
            if (!mh->model || mh->breaker_closed ||
                strcmp(mh->provider, cfg->providers[i].name) != 0)
                continue;
            sb_printf(&tb, "provider %s model %s: %s", mh->provider, mh->model, mh->state);
            if (mh->last_error)
                sb_printf(&tb, " (last error: %s)", mh->last_error);
            sb_printf(&tb, "\n");
        }
    }
    breakers_health_free(health, nhealth > 0 ? (size_t)nhealth : 0);
    config_unref(cfg);
    return sb_take(&tb, len);
}

/* text + {name: extra} merged into its top-level object (takes extra); text when extra
 * is NULL or out of memory. */
static char *with_member(char *text, const char *name, cJSON *extra)
{
    if (!extra || !text) {
        cJSON_Delete(extra);
        return text;
    }
    cJSON *doc = cJSON_Parse(text);
    char *out = NULL;
    if (doc && cJSON_AddItemToObject(doc, name, extra)) {
        extra = NULL;
        out = json_print_pretty(doc);
    }
    cJSON_Delete(doc);
    cJSON_Delete(extra);
    if (!out)
        return text;   /* out of memory: the local view at least */
    free(text);
    return out;
}

static char *render_providers(size_t *len)
{
    char *pj = breakers_to_json(V.breakers, now_mono_ms(), now_wall_ms());
    if (pj && V.spend)
        pj = budget_mark_providers(V.spend, pj);   /* providers out of budget (402, limits) */
    pj = with_member(pj, "shared", cluster_providers_json());
    if (!pj)
        return NULL;
    char *out = NULL;
    if (asprintf(&out, "%s\n", pj) < 0)
        out = NULL;
    free(pj);
    if (out)
        *len = strlen(out);
    return out;
}

static char *render_spend(size_t *len)
{
    rf_config *cfg = jobs_config();
    char *out = budget_spend_json(V.spend, cfg);
    if (out && cfg)
        out = with_member(out, "shared", cluster_spend_json(cfg));
    char *keys = or_key_json();   /* OpenRouter keys' own limits, beside routefs's caps */
    if (keys && strcmp(keys, "{}") != 0)
        out = with_member(out, "openrouter_keys", cJSON_Parse(keys));
    free(keys);
    config_unref(cfg);
    if (out)
        *len = strlen(out);
    return out;
}

static char *render_metrics(size_t *len)
{
    strbuf tb = {0};
    rf_config *cfg = jobs_config();
    sb_printf(&tb, "# HELP routefs_jobs Unfinished jobs by tier and state.\n"
                   "# TYPE routefs_jobs gauge\n");
    for (size_t i = 0; cfg && i < cfg->tiers_len; i++) {
        int counts[JOB_FAILED + 1];
        jobs_tier_counts(cfg->tiers[i].name, counts);
        char *tier = metrics_label_value(cfg->tiers[i].name);   /* names may hold " and \ */
        for (int s = JOB_WRITING; tier && s <= JOB_COMMITTING; s++)
            sb_printf(&tb, "routefs_jobs{tier=\"%s\",state=\"%s\"} %d\n", tier,
                      job_state_name((job_state)s), counts[s]);
        free(tier);
    }
    rf_provider_health *health = NULL;
    long nhealth = breakers_health(V.breakers, now_mono_ms(), 0, &health);
    char **pname = nhealth > 0 ? calloc((size_t)nhealth, sizeof *pname) : NULL;
    for (long k = 0; pname && k < nhealth; k++)
        pname[k] = metrics_label_value(health[k].provider);
    long nshow = pname ? nhealth : 0;   /* out of memory: no provider series, not broken ones */
    sb_printf(&tb, "# HELP routefs_provider_up 1 when the provider's breaker is closed.\n"
                   "# TYPE routefs_provider_up gauge\n");
    for (long k = 0; k < nshow; k++)
        sb_printf(&tb, "routefs_provider_up{provider=\"%s\"} %d\n", pname[k] ? pname[k] : "",
                  health[k].breaker_closed);
    sb_printf(&tb, "# HELP routefs_provider_requests_total Attempts sent to the provider.\n"
                   "# TYPE routefs_provider_requests_total counter\n");
    for (long k = 0; k < nshow; k++)
        sb_printf(&tb, "routefs_provider_requests_total{provider=\"%s\"} %" PRIu64 "\n",
                  pname[k] ? pname[k] : "", health[k].requests);
    sb_printf(&tb, "# HELP routefs_provider_failures_total Failed attempts.\n"
                   "# TYPE routefs_provider_failures_total counter\n");
    for (long k = 0; k < nshow; k++)
        sb_printf(&tb, "routefs_provider_failures_total{provider=\"%s\"} %" PRIu64 "\n",
                  pname[k] ? pname[k] : "", health[k].failures);
    for (long k = 0; pname && k < nhealth; k++)
        free(pname[k]);
    free(pname);
    breakers_health_free(health, nhealth > 0 ? (size_t)nhealth : 0);
    rf_provider_health *all = NULL;
    long nall = breakers_health(V.breakers, now_mono_ms(), 1, &all);
    sb_printf(&tb, "# HELP routefs_breaker_open 1 while a breaker is open or half-open "
                   "(model \"\" = provider-wide).\n"
                   "# TYPE routefs_breaker_open gauge\n");
    for (long k = 0; k < nall; k++) {
        char *pv = metrics_label_value(all[k].provider);
        char *mv = metrics_label_value(all[k].model ? all[k].model : "");
        if (pv && mv)
            sb_printf(&tb, "routefs_breaker_open{provider=\"%s\",model=\"%s\"} %d\n", pv, mv,
                      !all[k].breaker_closed);
        free(pv);
        free(mv);
    }
    breakers_health_free(all, nall > 0 ? (size_t)nall : 0);
    store_health h;
    store_health_get(V.st, &h);
    sb_printf(&tb, "# HELP routefs_store_up 1 when the state store accepts writes.\n"
                   "# TYPE routefs_store_up gauge\n"
                   "routefs_store_up %d\n"
                   "# HELP routefs_store_held_ops Writes held in memory while the store fails.\n"
                   "# TYPE routefs_store_held_ops gauge\n"
                   "routefs_store_held_ops %zu\n"
                   "# HELP routefs_store_held_answers Paid answers among the held writes.\n"
                   "# TYPE routefs_store_held_answers gauge\n"
                   "routefs_store_held_answers %zu\n",
              !h.failing, h.held, h.held_paid);
    double today = 0, month = 0, reserved = 0;
    budget_totals(V.spend, &today, &month, &reserved);
    sb_printf(&tb, "# HELP routefs_spend_usd Settled spend in USD by window.\n"
                   "# TYPE routefs_spend_usd gauge\n"
                   "routefs_spend_usd{window=\"today\"} %.6f\n"
                   "routefs_spend_usd{window=\"month\"} %.6f\n"
                   "# HELP routefs_reserved_usd Worst-case cost of requests in flight.\n"
                   "# TYPE routefs_reserved_usd gauge\n"
                   "routefs_reserved_usd %.6f\n",
              today, month, reserved);
    if (cfg && (cfg->daily_usd >= 0 || cfg->monthly_usd >= 0))
        sb_printf(&tb, "# HELP routefs_cap_usd Configured caps in USD.\n"
                       "# TYPE routefs_cap_usd gauge\n");
    if (cfg && cfg->daily_usd >= 0)
        sb_printf(&tb, "routefs_cap_usd{window=\"daily\"} %.6f\n", cfg->daily_usd);
    if (cfg && cfg->monthly_usd >= 0)
        sb_printf(&tb, "routefs_cap_usd{window=\"monthly\"} %.6f\n", cfg->monthly_usd);
    char *counters = metrics_render();
    if (counters)
        sb_printf(&tb, "%s", counters);
    free(counters);
    char *shared_metrics = cluster_metrics_text();
    if (shared_metrics)
        sb_printf(&tb, "%s", shared_metrics);
    free(shared_metrics);
    config_unref(cfg);
    return sb_take(&tb, len);
}

static char *render(vfile_id id, size_t *len);

/* Every virtual file passes the redactor: provider errors in providers.json and status
 * may quote a key back. */
char *vfile_render(vfile_id id, size_t *len)
{
    char *text = render(id, len);
    if (text && id != VF_CONFIG)
        *len = redact_inplace(text, *len);
    return text;
}

/* report.html reads the whole ledger: a page rendered in the last REPORT_CACHE_MS is
 * served again (a stat, then an open, then a read each want it). */
#define REPORT_CACHE_MS 2000

static char *render_report(size_t *len)
{
    pthread_mutex_lock(&V.lock);
    if (V.report && now_mono_ms() - V.report_at < REPORT_CACHE_MS) {
        char *copy = malloc(V.report_len + 1);
        if (copy) {
            memcpy(copy, V.report, V.report_len + 1);
            *len = V.report_len;
        }
        pthread_mutex_unlock(&V.lock);
        return copy;
    }
    pthread_mutex_unlock(&V.lock);
    rf_err err;
    rf_err_clear(&err);
    store_conn *c = store_reader(V.st, &err);
    if (!c)
        return NULL;
    rf_config *cfg = jobs_config();
    report_opts o;
    report_opts_init(&o, cfg, 0);
    o.state_dir = store_path(V.st);
    char *page = report_render(store_conn_db(c), &o, len, &err);
    config_unref(cfg);
    store_reader_done(V.st, c);
    if (!page) {
        LOG_ERROR("report.html: %s", err.msg);
        return NULL;
    }
    char *keep = malloc(*len + 1);
    pthread_mutex_lock(&V.lock);
    if (keep) {
        memcpy(keep, page, *len + 1);
        free(V.report);
        V.report = keep;
        V.report_len = *len;
        V.report_at = now_mono_ms();
    }
    pthread_mutex_unlock(&V.lock);
    return page;
}

static char *render(vfile_id id, size_t *len)
{
    *len = 0;
    switch (id) {
    case VF_REPORT: return render_report(len);
    case VF_CONFIG: return render_config(len);
    case VF_SPEND: return render_spend(len);
    case VF_PROVIDERS: return render_providers(len);
    case VF_STATUS: return render_status(len);
    case VF_METRICS: return render_metrics(len);
    default: return NULL;
    }
}

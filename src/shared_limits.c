/* shared_limits.c — provider limits and breakers shared across hosts: the rate limiter
 * (GCRA on the server's clock), in-flight slots with leases, breaker publishing and the
 * breaker cache every host reads without blocking, half-open probe claims, and the
 * periodic sync that refreshes the breaker cache and the spend cache in one round trip.
 * Scripts: shared_lua.c; replies: shared_reply.c. */
#include "shared_impl.h"
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

static int valid_name(const char *name)
{
    size_t n = name ? strnlen(name, SHARED_NAME_MAX + 1) : 0;
    if (n == 0 || n > SHARED_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

/* The escaped provider into out[SHARED_FIELD_MAX].  0, or -1 with EINVAL. */
static int provider_field(const char *provider, char *out, rf_err *err)
{
    if (!valid_name(provider) || shreply_escape(provider, strlen(provider), out,
                                                SHARED_FIELD_MAX) < 0)
        return rf_err_set(err, EINVAL, "shared: bad provider name");
    return 0;
}

/* "PROV" or "PROV:MODEL", escaped, into out[SHARED_FIELD_MAX]. */
static int breaker_field(const char *provider, const char *model, char *out, rf_err *err)
{
    if (provider_field(provider, out, err) < 0)
        return -1;
    if (!model)
        return 0;
    size_t n = strlen(out);
    out[n++] = ':';
    if (!valid_name(model) || shreply_escape(model, strlen(model), out + n,
                                             SHARED_FIELD_MAX - n) < 0)
        return rf_err_set(err, EINVAL, "shared: bad model name");
    return 0;
}

/* op->field = the escaped provider (with_model 0), or breaker field (with_model 1). */
static int op_field(shared_op *op, const char *provider, const char *model, int with_model,
                    rf_err *err)
{
    char field[SHARED_FIELD_MAX];
    if ((with_model ? breaker_field(provider, model, field, err)
                    : provider_field(provider, field, err)) < 0)
        return -1;
    if (!(op->field = strdup(field)))
        return rf_err_set(err, ENOMEM, "out of memory queueing a shared-state request");
    return 0;
}

/* ---- the breaker cache (cache_mu) ---- */

static shared_cached_breaker *cache_find(shared_cached_breaker *arr, size_t n,
                                         const char *field)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(arr[i].field, field) == 0)
            return &arr[i];
    return NULL;
}

/* Put e into the cache (open), or take its field out (closed). */
static void cache_apply(shared *s, const shared_cached_breaker *e)
{
    shared_cached_breaker *hit = cache_find(s->breakers, s->nbreakers, e->field);
    if (!e->open) {
        if (hit)
            *hit = s->breakers[--s->nbreakers];
        return;
    }
    if (hit) {
        *hit = *e;
        return;
    }
    if (s->nbreakers >= SHARED_BREAKERS_MAX)
        return;
    shared_cached_breaker *arr = realloc(s->breakers, (s->nbreakers + 1) * sizeof *arr);
    if (!arr)
        return;
    s->breakers = arr;
    s->breakers[s->nbreakers++] = *e;
}

/* Remember a local publish until a sync taken after it has come back. */
static void pending_add(shared *s, const shared_cached_breaker *e, uint64_t seq)
{
    if (s->npending >= SHARED_PENDING_MAX) {          /* drop the oldest */
        memmove(s->pending, s->pending + 1, (s->npending - 1) * sizeof *s->pending);
        memmove(s->pending_seq, s->pending_seq + 1, (s->npending - 1) * sizeof *s->pending_seq);
        s->npending--;
    }
    shared_cached_breaker *p = realloc(s->pending, (s->npending + 1) * sizeof *p);
    if (p)
        s->pending = p;
    uint64_t *q = realloc(s->pending_seq, (s->npending + 1) * sizeof *q);
    if (q)
        s->pending_seq = q;
    if (!p || !q)
        return;
    s->pending[s->npending] = *e;
    s->pending_seq[s->npending++] = seq;
}

int shared_breaker_publish(shared *s, const char *provider, const char *model, int open,
                           int64_t until_unix_ms, const char *reason, rf_err *err)
{
    shared_op *op = shared_op_new(OP_BREAKER, err);
    if (!op)
        return -1;
    if (op_field(op, provider, model, 1, err) < 0) {
        shared_op_free(op);
        return -1;
    }
    op->open = open ? 1 : 0;
    op->until_ms = until_unix_ms;
    size_t o = 0;
    for (const char *p = reason ? reason : ""; *p && o < SHARED_REASON_MAX; p++)
        op->reason[o++] = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
    op->reason[o] = '\0';

    shared_cached_breaker *e = calloc(1, sizeof *e);
    if (!e) {
        shared_op_free(op);
        return rf_err_set(err, ENOMEM, "out of memory publishing a breaker");
    }
    snprintf(e->field, sizeof e->field, "%s", op->field);
    e->open = op->open;
    snprintf(e->info.provider, sizeof e->info.provider, "%s", provider);
    snprintf(e->info.model, sizeof e->info.model, "%s", model ? model : "");
    e->info.until_ms = until_unix_ms;
    e->info.at_ms = now_wall_ms();
    snprintf(e->info.host, sizeof e->info.host, "%s", s->host_id);
    memcpy(e->info.reason, op->reason, sizeof e->info.reason);

    uint64_t seq;
    if (shared_enqueue_seq(s, op, &seq, err) < 0) {
        free(e);
        return -1;
    }
    pthread_mutex_lock(&s->cache_mu);
    cache_apply(s, e);
    pending_add(s, e, seq);
    pthread_mutex_unlock(&s->cache_mu);
    free(e);
    return 0;
}

int shared_breaker_open(shared *s, const char *provider, const char *model, int64_t *until_ms)
{
    char field[SHARED_FIELD_MAX];
    if (breaker_field(provider, model, field, NULL) < 0)
        return 0;
    int64_t now = now_wall_ms(), until = 0;
    pthread_mutex_lock(&s->cache_mu);
    const shared_cached_breaker *e = cache_find(s->breakers, s->nbreakers, field);
    if (e && e->info.until_ms > now)
        until = e->info.until_ms;
    pthread_mutex_unlock(&s->cache_mu);
    if (until_ms)
        *until_ms = until;
    return until > 0;
}

shared_breaker_view shared_breaker_state(shared *s, const char *provider, const char *model,
                                         int64_t *until_ms)
{
    char field[SHARED_FIELD_MAX];
    if (until_ms)
        *until_ms = 0;
    if (breaker_field(provider, model, field, NULL) < 0)
        return SHARED_BREAKER_CLOSED;
    int64_t now = now_wall_ms();
    shared_breaker_view v = SHARED_BREAKER_CLOSED;
    pthread_mutex_lock(&s->cache_mu);
    const shared_cached_breaker *e = cache_find(s->breakers, s->nbreakers, field);
    if (e && e->info.until_ms > now) {
        v = SHARED_BREAKER_OPEN;
        if (until_ms)
            *until_ms = e->info.until_ms;
    } else if (e) {
        v = SHARED_BREAKER_EXPIRED;
    }
    pthread_mutex_unlock(&s->cache_mu);
    return v;
}

size_t shared_breaker_list(shared *s, shared_breaker_info *out, size_t max)
{
    int64_t now = now_wall_ms();
    size_t n = 0;
    pthread_mutex_lock(&s->cache_mu);
    for (size_t i = 0; i < s->nbreakers; i++) {
        if (s->breakers[i].info.until_ms <= now)
            continue;
        if (n < max)
            out[n] = s->breakers[i].info;
        n++;
    }
    pthread_mutex_unlock(&s->cache_mu);
    return n;
}

/* The sync's breakers replace the cache; local publishes newer than the sync stay. */
static void cache_replace(shared *s, const shreply_sync *y, uint64_t seq)
{
    int64_t local_now = now_wall_ms();
    shared_cached_breaker *arr = y->nbreakers ? calloc(y->nbreakers, sizeof *arr) : NULL;
    size_t n = 0;
    for (size_t i = 0; arr && i < y->nbreakers && n < SHARED_BREAKERS_MAX; i++) {
        const shreply_breaker *b = &y->breakers[i];
        shared_cached_breaker *e = &arr[n];
        if (breaker_field(b->provider, b->model[0] ? b->model : NULL, e->field, NULL) < 0)
            continue;                  /* decoded, but not a name this side accepts */
        if (cache_find(arr, n, e->field))
            continue;
        e->open = 1;
        snprintf(e->info.provider, sizeof e->info.provider, "%s", b->provider);
        snprintf(e->info.model, sizeof e->info.model, "%s", b->model);
        /* server times to this host's clock: the same distance from now */
        e->info.until_ms = local_now + (b->until_ms - y->now_ms);
        e->info.at_ms = local_now + (b->at_ms - y->now_ms);
        memcpy(e->info.host, b->host, sizeof e->info.host);
        memcpy(e->info.reason, b->reason, sizeof e->info.reason);
        n++;
    }
    pthread_mutex_lock(&s->cache_mu);
    if (!y->nbreakers || arr) {        /* out of memory: keep the old view */
        free(s->breakers);
        s->breakers = arr;
        s->nbreakers = n;
        arr = NULL;
    }
    size_t keep = 0;
    for (size_t i = 0; i < s->npending; i++) {
        if (s->pending_seq[i] <= seq)
            continue;                  /* the sync already reflects it */
        cache_apply(s, &s->pending[i]);
        s->pending[keep] = s->pending[i];
        s->pending_seq[keep++] = s->pending_seq[i];
    }
    s->npending = keep;
    pthread_mutex_unlock(&s->cache_mu);
    free(arr);
}

/* ---- requests ---- */

int shared_rate_acquire(shared *s, const char *provider, int rpm, shared_rate_cb cb, void *ud,
                        rf_err *err)
{
    if (rpm < 1 || rpm > 1000000)
        return rf_err_set(err, EINVAL, "shared: rpm must be 1 to 1000000");
    shared_op *op = shared_op_new(OP_RATE, err);
    if (!op)
        return -1;
    if (op_field(op, provider, NULL, 0, err) < 0) {
        shared_op_free(op);
        return -1;
    }
    op->n1 = (60000000L + rpm - 1) / rpm;      /* ceil: never more than rpm in 60 s */
    op->cb.rate = cb;
    op->ud = ud;
    return shared_enqueue(s, op, err);
}

int shared_slot_acquire(shared *s, const char *provider, int max_concurrent, long lease_ms,
                        shared_slot_cb cb, void *ud, rf_err *err)
{
    if (max_concurrent < 1 || max_concurrent > 100000)
        return rf_err_set(err, EINVAL, "shared: max_concurrent must be 1 to 100000");
    if (lease_ms < 100 || lease_ms > 86400000)
        return rf_err_set(err, EINVAL, "shared: lease must be 100 ms to 24 h");
    shared_op *op = shared_op_new(OP_SLOT, err);
    if (!op)
        return -1;
    if (op_field(op, provider, NULL, 0, err) < 0) {
        shared_op_free(op);
        return -1;
    }
    op->n1 = max_concurrent;
    op->n2 = lease_ms;
    op->cb.slot = cb;
    op->ud = ud;
    shared_new_id(s, op->id);
    return shared_enqueue(s, op, err);
}

int shared_slot_release(shared *s, const char *provider, const char *lease_id, rf_err *err)
{
    size_t n = lease_id ? strnlen(lease_id, SHARED_ID_MAX) : 0;
    if (n == 0 || n >= SHARED_ID_MAX)
        return rf_err_set(err, EINVAL, "shared: bad lease id");
    shared_op *op = shared_op_new(OP_SLOT_RELEASE, err);
    if (!op)
        return -1;
    if (op_field(op, provider, NULL, 0, err) < 0) {
        shared_op_free(op);
        return -1;
    }
    memcpy(op->id, lease_id, n + 1);
    return shared_enqueue(s, op, err);
}

int shared_probe_claim(shared *s, const char *provider, const char *model, long lease_ms,
                       shared_probe_cb cb, void *ud, rf_err *err)
{
    if (lease_ms < 100 || lease_ms > 3600000)
        return rf_err_set(err, EINVAL, "shared: probe lease must be 100 ms to 1 h");
    shared_op *op = shared_op_new(OP_PROBE, err);
    if (!op)
        return -1;
    if (op_field(op, provider, model, 1, err) < 0) {
        shared_op_free(op);
        return -1;
    }
    op->n1 = lease_ms;
    op->cb.probe = cb;
    op->ud = ud;
    return shared_enqueue(s, op, err);
}

int shared_probe_release(shared *s, const char *provider, const char *model, rf_err *err)
{
    shared_op *op = shared_op_new(OP_PROBE_RELEASE, err);
    if (!op)
        return -1;
    if (op_field(op, provider, model, 1, err) < 0) {
        shared_op_free(op);
        return -1;
    }
    return shared_enqueue(s, op, err);
}

/* ---- commands ---- */

int shared_limits_build(shared *s, shared_op *op)
{
    shared_cmd *c = &s->cmd;
    switch (op->kind) {
    case OP_RATE:
        shared_cmd_evalsha(s, c, LUA_RATE, 1);
        shared_cmd_fmt(c, "%s:rate:%s", s->prefix, op->field);
        shared_cmd_fmt(c, "%ld", op->n1);
        return 1;
    case OP_SLOT:
        shared_cmd_evalsha(s, c, LUA_SLOT, 1);
        shared_cmd_fmt(c, "%s:slots:%s", s->prefix, op->field);
        shared_cmd_str(c, op->id);
        shared_cmd_fmt(c, "%ld", op->n1);
        shared_cmd_fmt(c, "%ld", op->n2);
        return 1;
    case OP_SLOT_RELEASE:
        shared_cmd_str(c, "ZREM");
        shared_cmd_fmt(c, "%s:slots:%s", s->prefix, op->field);
        shared_cmd_str(c, op->id);
        return 1;
    case OP_BREAKER: {
        int64_t rem = op->until_ms - now_wall_ms();
        if (op->open && rem <= 0)
            return 0;                  /* it has closed meanwhile (deferred): nothing to say */
        shared_cmd_evalsha(s, c, LUA_BREAKER, 1);
        shared_cmd_fmt(c, "%s:brk", s->prefix);
        shared_cmd_str(c, op->field);
        shared_cmd_str(c, op->open ? "1" : "0");
        shared_cmd_fmt(c, "%lld", (long long)(op->open ? rem : 0));
        shared_cmd_str(c, s->host_id);
        shared_cmd_str(c, op->reason);
        return 1;
    }
    case OP_PROBE:
        shared_cmd_evalsha(s, c, LUA_PROBE_CLAIM, 2);
        shared_cmd_fmt(c, "%s:probe:%s", s->prefix, op->field);
        shared_cmd_fmt(c, "%s:brk", s->prefix);
        shared_cmd_str(c, op->field);
        shared_cmd_str(c, s->host_id);
        shared_cmd_fmt(c, "%ld", op->n1);
        return 1;
    case OP_PROBE_RELEASE:
        shared_cmd_evalsha(s, c, LUA_PROBE_RELEASE, 1);
        shared_cmd_fmt(c, "%s:probe:%s", s->prefix, op->field);
        shared_cmd_str(c, s->host_id);
        return 1;
    case OP_SYNC:
        s->nsync_keys = shared_watch_keys(s, s->sync_keys, SHARED_WATCH_MAX);
        op->seq = s->taken_seq;        /* publishes up to here precede this sync */
        shared_cmd_evalsha(s, c, LUA_SYNC, 1 + 3 * s->nsync_keys);
        shared_cmd_fmt(c, "%s:brk", s->prefix);
        for (int i = 0; i < s->nsync_keys; i++) {
            shared_cmd_fmt(c, "%s:win:%s", s->prefix, s->sync_keys[i]);
            shared_cmd_fmt(c, "%s:win:%s:exp", s->prefix, s->sync_keys[i]);
            shared_cmd_fmt(c, "%s:win:%s:amt", s->prefix, s->sync_keys[i]);
        }
        shared_cmd_str(c, s->host_id);
        return 1;
    default:
        return 0;
    }
}

/* ---- answers ---- */

int shared_limits_finish(shared *s, shared_op *op, const redisReply *r, rf_err *err)
{
    long long v;
    switch (op->kind) {
    case OP_RATE: {
        int64_t wait_us, slot_us;
        if (shreply_rate_parse(r, &wait_us, &slot_us, err) < 0)
            return -1;
        if (op->cb.rate)
            op->cb.rate(op->ud, 0, (long)((wait_us + 999) / 1000));
        return 0;
    }
    case OP_SLOT: {
        int granted;
        long count, retry_ms;
        if (shreply_slot_parse(r, &granted, &count, &retry_ms, err) < 0)
            return -1;
        if (op->cb.slot) {
            if (granted)
                op->cb.slot(op->ud, 0, op->id, 0);
            else
                op->cb.slot(op->ud, EAGAIN, NULL, retry_ms);
        }
        return 0;
    }
    case OP_PROBE: {
        int granted;
        if (shreply_set_nx_parse(r, &granted, err) < 0)
            return -1;
        if (op->cb.probe)
            op->cb.probe(op->ud, 0, granted);
        return 0;
    }
    case OP_SLOT_RELEASE:
    case OP_BREAKER:
    case OP_PROBE_RELEASE:
        return shreply_integer_parse(r, &v, err);
    case OP_SYNC: {
        shreply_sync y;
        if (shreply_sync_parse(r, s->nsync_keys, &y, err) < 0)
            return -1;
        shared_watch_update(s, s->sync_keys, y.w, y.n);
        cache_replace(s, &y, op->seq);
        shreply_sync_free(&y);
        return 0;
    }
    default:
        return rf_err_set(err, EIO, "shared: unexpected request");
    }
}

void shared_limits_fail(shared *s, shared_op *op, int status, const char *msg)
{
    (void)s;
    (void)msg;
    if (op->kind == OP_RATE && op->cb.rate)
        op->cb.rate(op->ud, status, 0);
    else if (op->kind == OP_SLOT && op->cb.slot)
        op->cb.slot(op->ud, status, NULL, 0);
    else if (op->kind == OP_PROBE && op->cb.probe)
        op->cb.probe(op->ud, status, 0);
}

int shared_limits_lost(shared *s, shared_op *op)
{
    (void)s;
    switch (op->kind) {
    case OP_RATE:
        if (op->cb.rate)
            op->cb.rate(op->ud, ENOTCONN, 0);
        return 0;
    case OP_SYNC:
        return 0;
    case OP_SLOT:                      /* it may have been taken: give it back later */
        if (op->cb.slot)
            op->cb.slot(op->ud, ENOTCONN, NULL, 0);
        op->kind = OP_SLOT_RELEASE;
        return 1;
    case OP_PROBE:
        if (op->cb.probe)
            op->cb.probe(op->ud, ENOTCONN, 0);
        op->kind = OP_PROBE_RELEASE;
        return 1;
    default:
        return 1;                      /* releases and publishes: applied later */
    }
}

void shared_limits_free(shared *s)
{
    free(s->breakers);
    free(s->pending);
    free(s->pending_seq);
    s->breakers = s->pending = NULL;
    s->pending_seq = NULL;
    s->nbreakers = s->npending = 0;
}

/* shared_budget.c — shared budget windows: reserve, settle, release and this host's floor
 * (the requests, their commands and their answers), the spend cache, and the map of the
 * reservations this host holds (which windows each was made in, so that a settle or a
 * release drops it from exactly those).  Scripts: shared_lua.c; replies: shared_reply.c. */
#include "shared_impl.h"
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A reservation this host holds (thread-only, in s->reservations). */
typedef struct shared_resv {
    int n;
    char key[SHARED_WINDOWS_MAX][SHARED_WINDOW_MAX + 1];
    int64_t forget_ms;          /* monotonic: long past its TTL, the caller forgot it */
} shared_resv;

/* ---- windows ---- */

static int valid_window(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > SHARED_WINDOW_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr(":._-/@+=%", c)))
            return 0;
    }
    return 1;
}

int shared_caps_add(shared_caps *caps, const char *key, const char *label, int64_t cap_nusd,
                    rf_err *err)
{
    if (caps->n < 0 || caps->n >= SHARED_WINDOWS_MAX)
        return rf_err_set(err, EINVAL, "shared: at most %d windows", SHARED_WINDOWS_MAX);
    if (!valid_window(key))
        return rf_err_set(err, EINVAL, "shared: bad window name");
    if (cap_nusd > SHARED_NUSD_MAX)
        return rf_err_set(err, EINVAL, "shared: cap too large");
    for (int i = 0; i < caps->n; i++)
        if (strcmp(caps->w[i].key, key) == 0)
            return rf_err_set(err, EINVAL, "shared: window %s given twice", key);
    shared_window *w = &caps->w[caps->n++];
    snprintf(w->key, sizeof w->key, "%s", key);
    snprintf(w->label, sizeof w->label, "%s", label ? label : key);
    w->cap_nusd = cap_nusd < 0 ? -1 : cap_nusd;
    return 0;
}

int shared_caps_standard(shared_caps *caps, int64_t now_ms, int64_t daily_cap_nusd,
                         int64_t monthly_cap_nusd, const char *tier,
                         int64_t tier_daily_cap_nusd, rf_err *err)
{
    memset(caps, 0, sizeof *caps);
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return rf_err_set(err, EINVAL, "shared: bad time");
    char day[40], month[32], key[SHARED_WINDOW_MAX + 64], label[SHARED_LABEL_MAX + 32];
    snprintf(day, sizeof day, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    snprintf(month, sizeof month, "%04d-%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    snprintf(key, sizeof key, "day:%s", day);
    if (shared_caps_add(caps, key, "daily cap", daily_cap_nusd, err) < 0)
        return -1;
    snprintf(key, sizeof key, "month:%s", month);
    if (shared_caps_add(caps, key, "monthly cap", monthly_cap_nusd, err) < 0)
        return -1;
    if (tier) {
        char esc[SHARED_WINDOW_MAX];
        if (strlen(tier) > SHARED_NAME_MAX ||
            shreply_escape(tier, strlen(tier), esc, sizeof esc - 20) < 0)
            return rf_err_set(err, EINVAL, "shared: tier name too long");
        snprintf(key, sizeof key, "tier:%s:day:%s", esc, day);
        snprintf(label, sizeof label, "tier %.120s daily cap", tier);
        if (shared_caps_add(caps, key, label, tier_daily_cap_nusd, err) < 0)
            return -1;
    }
    return 0;
}

static int check_caps(const shared_caps *caps, rf_err *err)
{
    if (!caps || caps->n < 1 || caps->n > SHARED_WINDOWS_MAX)
        return rf_err_set(err, EINVAL, "shared: 1 to %d windows needed", SHARED_WINDOWS_MAX);
    for (int i = 0; i < caps->n; i++) {
        const shared_window *w = &caps->w[i];
        if (!memchr(w->key, '\0', sizeof w->key) || !valid_window(w->key) ||
            !memchr(w->label, '\0', sizeof w->label) || w->cap_nusd > SHARED_NUSD_MAX)
            return rf_err_set(err, EINVAL, "shared: bad window %d", i);
        for (int j = 0; j < i; j++)
            if (strcmp(caps->w[j].key, w->key) == 0)
                return rf_err_set(err, EINVAL, "shared: window %s given twice", w->key);
    }
    return 0;
}

static int valid_id(const char *id)
{
    size_t n = id ? strnlen(id, SHARED_ID_MAX) : 0;
    if (n == 0 || n >= SHARED_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] <= ' ' || (unsigned char)id[i] >= 0x7f)
            return 0;
    return 1;
}

/* ---- the spend cache ---- */

/* The cache entry of key, made (evicting the least recently used) when absent.  Under
 * cache_mu. */
static shared_watch *watch_get(shared *s, const char *key)
{
    for (int i = 0; i < s->nwatch; i++)
        if (strcmp(s->watch[i].key, key) == 0) {
            s->watch[i].used = ++s->watch_clock;
            return &s->watch[i];
        }
    shared_watch *w;
    if (s->nwatch < SHARED_WATCH_MAX) {
        w = &s->watch[s->nwatch++];
    } else {
        w = &s->watch[0];
        for (int i = 1; i < s->nwatch; i++)
            if (s->watch[i].used < w->used)
                w = &s->watch[i];
    }
    memset(w, 0, sizeof *w);
    snprintf(w->key, sizeof w->key, "%s", key);
    w->used = ++s->watch_clock;
    return w;
}

void shared_watch_update(shared *s, char keys[][SHARED_WINDOW_MAX + 1], const shreply_win *v,
                         int n)
{
    int64_t now = now_wall_ms();
    pthread_mutex_lock(&s->cache_mu);
    for (int i = 0; i < n; i++) {
        shared_watch *w = watch_get(s, keys[i]);
        w->known = 1;
        w->spent = v[i].spent;
        w->reserved = v[i].reserved;
        w->host = v[i].host;
        w->at_ms = now;
        if (v[i].host > w->floor)
            w->floor = v[i].host;
    }
    pthread_mutex_unlock(&s->cache_mu);
}

int shared_watch_keys(shared *s, char keys[][SHARED_WINDOW_MAX + 1], int max)
{
    pthread_mutex_lock(&s->cache_mu);
    int n = s->nwatch < max ? s->nwatch : max;
    for (int i = 0; i < n; i++)
        memcpy(keys[i], s->watch[i].key, sizeof keys[i]);
    pthread_mutex_unlock(&s->cache_mu);
    return n;
}

void shared_spend(shared *s, const shared_caps *caps, shared_spend_info *out)
{
    memset(out, 0, sizeof *out);
    if (check_caps(caps, NULL) < 0)
        return;
    out->n = caps->n;
    pthread_mutex_lock(&s->cache_mu);
    for (int i = 0; i < caps->n; i++) {
        shared_watch *w = watch_get(s, caps->w[i].key);
        out->w[i] = (shared_window_spend){w->known, w->spent, w->reserved, w->host, w->at_ms};
    }
    pthread_mutex_unlock(&s->cache_mu);
}

void shared_budget_floors(shared *s, shared_opq *q)
{
    pthread_mutex_lock(&s->cache_mu);
    for (int i = 0; i < s->nwatch; i++) {
        if (s->watch[i].floor <= 0)
            continue;
        shared_op *op = shared_op_new(OP_FLOOR, NULL);
        if (!op)
            break;
        op->caps.n = 1;
        memcpy(op->caps.w[0].key, s->watch[i].key, sizeof op->caps.w[0].key);
        op->nusd = s->watch[i].floor;
        shared_opq_push(q, op);
    }
    pthread_mutex_unlock(&s->cache_mu);
}

/* ---- requests ---- */

int shared_reserve(shared *s, const shared_caps *caps, int64_t nusd, shared_reserve_cb cb,
                   void *ud, rf_err *err)
{
    if (check_caps(caps, err) < 0)
        return -1;
    if (nusd < 0 || nusd > SHARED_NUSD_MAX)
        return rf_err_set(err, EINVAL, "shared: amount out of range");
    shared_op *op = shared_op_new(OP_RESERVE, err);
    if (!op)
        return -1;
    op->caps = *caps;
    op->nusd = nusd;
    op->cb.reserve = cb;
    op->ud = ud;
    shared_new_id(s, op->id);
    return shared_enqueue(s, op, err);
}

int shared_settle(shared *s, const char *reservation_id, int64_t actual_nusd,
                  const shared_caps *caps, shared_done_cb cb, void *ud, rf_err *err)
{
    if (check_caps(caps, err) < 0)
        return -1;
    if (actual_nusd < 0 || actual_nusd > SHARED_NUSD_MAX)
        return rf_err_set(err, EINVAL, "shared: amount out of range");
    if (reservation_id && !valid_id(reservation_id))
        return rf_err_set(err, EINVAL, "shared: bad reservation id");
    shared_op *op = shared_op_new(OP_SETTLE, err);
    if (!op)
        return -1;
    op->caps = *caps;
    op->nusd = actual_nusd;
    op->cb.done = cb;
    op->ud = ud;
    if (reservation_id)
        snprintf(op->id, sizeof op->id, "%s", reservation_id);
    else
        shared_new_id(s, op->id);
    return shared_enqueue(s, op, err);
}

int shared_release(shared *s, const char *reservation_id, shared_done_cb cb, void *ud,
                   rf_err *err)
{
    if (!valid_id(reservation_id))
        return rf_err_set(err, EINVAL, "shared: bad reservation id");
    shared_op *op = shared_op_new(OP_RELEASE, err);
    if (!op)
        return -1;
    snprintf(op->id, sizeof op->id, "%s", reservation_id);
    op->cb.done = cb;
    op->ud = ud;
    return shared_enqueue(s, op, err);
}

int shared_host_spent(shared *s, const char *window, int64_t nusd, rf_err *err)
{
    if (!valid_window(window))
        return rf_err_set(err, EINVAL, "shared: bad window name");
    if (nusd < 0 || nusd > SHARED_NUSD_MAX)
        return rf_err_set(err, EINVAL, "shared: amount out of range");
    pthread_mutex_lock(&s->cache_mu);
    shared_watch *w = watch_get(s, window);
    if (nusd > w->floor)
        w->floor = nusd;
    pthread_mutex_unlock(&s->cache_mu);
    shared_op *op = shared_op_new(OP_FLOOR, err);
    if (!op)
        return -1;
    op->caps.n = 1;
    snprintf(op->caps.w[0].key, sizeof op->caps.w[0].key, "%s", window);
    op->nusd = nusd;
    return shared_enqueue(s, op, err);
}

/* ---- commands ---- */

static void window_keys(shared *s, const char *key)
{
    shared_cmd_fmt(&s->cmd, "%s:win:%s", s->prefix, key);
    shared_cmd_fmt(&s->cmd, "%s:win:%s:exp", s->prefix, key);
    shared_cmd_fmt(&s->cmd, "%s:win:%s:amt", s->prefix, key);
}

/* The windows a settle touches: the reservation's (drop only), then caps' (charge). */
typedef struct settle_windows {
    int n;
    char key[2 * SHARED_WINDOWS_MAX][SHARED_WINDOW_MAX + 1];
    int charge[2 * SHARED_WINDOWS_MAX];
} settle_windows;

static void add_window(settle_windows *sw, const char *key, int charge)
{
    for (int i = 0; i < sw->n; i++)
        if (strcmp(sw->key[i], key) == 0) {
            sw->charge[i] |= charge;
            return;
        }
    snprintf(sw->key[sw->n], sizeof sw->key[sw->n], "%s", key);
    sw->charge[sw->n++] = charge;
}

static void settle_windows_of(shared *s, const shared_op *op, settle_windows *sw)
{
    sw->n = 0;
    const shared_resv *r = hmap_get(s->reservations, op->id);
    if (r)
        for (int i = 0; i < r->n; i++)
            add_window(sw, r->key[i], 0);
    for (int i = 0; i < op->caps.n; i++)
        add_window(sw, op->caps.w[i].key, op->kind == OP_SETTLE);
}

int shared_budget_build(shared *s, shared_op *op)
{
    shared_cmd *c = &s->cmd;
    settle_windows sw;
    switch (op->kind) {
    case OP_RESERVE:
        shared_cmd_evalsha(s, c, LUA_RESERVE, 3 * op->caps.n);
        for (int i = 0; i < op->caps.n; i++)
            window_keys(s, op->caps.w[i].key);
        shared_cmd_str(c, op->id);
        shared_cmd_fmt(c, "%lld", (long long)op->nusd);
        shared_cmd_fmt(c, "%ld", s->reservation_ttl_ms);
        shared_cmd_fmt(c, "%lld", (long long)SHARED_WINDOW_LIFE_MS);
        shared_cmd_str(c, s->host_id);
        for (int i = 0; i < op->caps.n; i++)
            shared_cmd_fmt(c, "%lld", (long long)op->caps.w[i].cap_nusd);
        return 1;
    case OP_SETTLE:
        settle_windows_of(s, op, &sw);
        op->n2 = sw.n;                         /* the reply has this many windows */
        shared_cmd_evalsha(s, c, LUA_SETTLE, 3 * sw.n + 1);
        for (int i = 0; i < sw.n; i++)
            window_keys(s, sw.key[i]);
        shared_cmd_fmt(c, "%s:settled", s->prefix);
        shared_cmd_str(c, op->id);
        shared_cmd_fmt(c, "%lld", (long long)op->nusd);
        shared_cmd_str(c, s->host_id);
        shared_cmd_fmt(c, "%lld", (long long)SHARED_WINDOW_LIFE_MS);
        shared_cmd_fmt(c, "%lld", (long long)SHARED_SETTLED_LIFE_MS);
        for (int i = 0; i < sw.n; i++)
            shared_cmd_str(c, sw.charge[i] ? "1" : "0");
        return 1;
    case OP_RELEASE:
        settle_windows_of(s, op, &sw);
        if (sw.n == 0) {                       /* not a reservation this host holds */
            if (op->cb.done)
                op->cb.done(op->ud, 0, "");
            return 0;
        }
        op->n2 = sw.n;
        shared_cmd_evalsha(s, c, LUA_RELEASE, 3 * sw.n);
        for (int i = 0; i < sw.n; i++)
            window_keys(s, sw.key[i]);
        shared_cmd_str(c, op->id);
        shared_cmd_str(c, s->host_id);
        return 1;
    case OP_FLOOR:
        shared_cmd_evalsha(s, c, LUA_FLOOR, 3);
        window_keys(s, op->caps.w[0].key);
        shared_cmd_str(c, s->host_id);
        shared_cmd_fmt(c, "%lld", (long long)op->nusd);
        shared_cmd_fmt(c, "%lld", (long long)SHARED_WINDOW_LIFE_MS);
        return 1;
    default:
        return 0;
    }
}

/* ---- answers ---- */

/* Cap messages as budget.c writes them: cents, or hundredths of a cent under $1. */
static void cap_message(char *buf, size_t len, const shared_window *w, const shreply_win *v)
{
    double cap = (double)w->cap_nusd / 1e9;
    int d = cap < 1.0 ? 4 : 2;
    snprintf(buf, len, "%s $%.*f reached: $%.*f spent, $%.*f reserved (all hosts)", w->label,
             d, cap, d, (double)v->spent / 1e9, d, (double)v->reserved / 1e9);
}

static void forget_reservation(shared *s, const char *id)
{
    free(hmap_del(s->reservations, id));
}

static void remember_reservation(shared *s, const shared_op *op)
{
    shared_resv *r = calloc(1, sizeof *r);
    if (!r)
        return;                    /* a settle then drops it from its own windows only */
    r->n = op->caps.n;
    for (int i = 0; i < r->n; i++)
        memcpy(r->key[i], op->caps.w[i].key, sizeof r->key[i]);
    r->forget_ms = now_mono_ms() + s->reservation_ttl_ms + 60000;
    free(hmap_del(s->reservations, op->id));
    if (hmap_put(s->reservations, op->id, r) < 0)
        free(r);
}

int shared_budget_finish(shared *s, shared_op *op, const redisReply *reply, rf_err *err)
{
    shreply_budget b;
    settle_windows sw;
    char keys[2 * SHARED_WINDOWS_MAX][SHARED_WINDOW_MAX + 1];
    switch (op->kind) {
    case OP_RESERVE: {
        if (shreply_budget_parse(reply, "reserve", op->caps.n, 2, &b, err) < 0)
            return -1;
        for (int i = 0; i < op->caps.n; i++)
            memcpy(keys[i], op->caps.w[i].key, sizeof keys[i]);
        shared_watch_update(s, keys, b.w, b.n);
        if (b.code == 0) {
            remember_reservation(s, op);
            if (op->cb.reserve)
                op->cb.reserve(op->ud, 0, op->id, "");
            return 0;
        }
        char msg[400];
        cap_message(msg, sizeof msg, &op->caps.w[b.idx - 1], &b.w[b.idx - 1]);
        if (op->cb.reserve)
            op->cb.reserve(op->ud, b.code == 1 ? EDQUOT : EAGAIN, NULL, msg);
        return 0;
    }
    case OP_SETTLE:
    case OP_RELEASE:
        /* Normally the same windows as at build time; if another request for the same id
         * in the same batch changed the map, the totals are not attributed to keys. */
        settle_windows_of(s, op, &sw);
        if (shreply_budget_parse(reply, op->kind == OP_SETTLE ? "settle" : "release",
                                 (int)op->n2, op->kind == OP_SETTLE ? 1 : 0, &b, err) < 0)
            return -1;
        if (sw.n == op->n2)
            shared_watch_update(s, sw.key, b.w, b.n);
        forget_reservation(s, op->id);
        if (op->cb.done)
            op->cb.done(op->ud, 0, "");
        return 0;
    case OP_FLOOR:
        if (shreply_budget_parse(reply, "floor", 1, 0, &b, err) < 0)
            return -1;
        memcpy(keys[0], op->caps.w[0].key, sizeof keys[0]);
        shared_watch_update(s, keys, b.w, 1);
        return 0;
    default:
        return rf_err_set(err, EIO, "shared: unexpected request");
    }
}

void shared_budget_fail(shared *s, shared_op *op, int status, const char *msg)
{
    (void)s;
    if (op->kind == OP_RESERVE && op->cb.reserve)
        op->cb.reserve(op->ud, status, NULL, msg);
    else if ((op->kind == OP_SETTLE || op->kind == OP_RELEASE) && op->cb.done)
        op->cb.done(op->ud, status, msg);
}

int shared_budget_lost(shared *s, shared_op *op)
{
    if (op->kind == OP_RESERVE) {
        /* It may have been granted: tell the caller it was not, and give it back. */
        if (op->cb.reserve)
            op->cb.reserve(op->ud, ENOTCONN, NULL, "Redis connection lost");
        op->kind = OP_RELEASE;
        op->cb.done = NULL;
        op->ud = NULL;
        return 1;
    }
    (void)s;
    return 1;                          /* settle, release, floor: applied later */
}

void shared_budget_sweep(shared *s)
{
    int64_t now = now_mono_ms();
    for (hmap_iter it = {0}; hmap_next(s->reservations, &it);) {
        shared_resv *r = it.value;
        if (r->forget_ms < now) {
            hmap_del(s->reservations, it.key);
            free(r);
        }
    }
}

void shared_budget_free(shared *s)
{
    if (!s->reservations)
        return;
    for (hmap_iter it = {0}; hmap_next(s->reservations, &it);)
        free(it.value);
    hmap_free(s->reservations);
    s->reservations = NULL;
}

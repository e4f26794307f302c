/* shared.c — the shared thread ("rfs-shared"): start and stop, the request queue and the
 * deferred list, pipelined batches and what happens to a request when Redis fails, and
 * health.  The connection itself is shared_conn.c; requests are built and answered in
 * shared_budget.c and shared_limits.c; every reply is interpreted in shared_reply.c.
 * See shared.h for the contract. */
#include "shared_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define BATCH_MAX SHARED_BATCH_MAX

const char *shared_state_name(shared_state st)
{
    switch (st) {
    case SHARED_CONNECTED: return "connected";
    case SHARED_DEGRADED: return "degraded";
    default: return "down";
    }
}

/* ---- queues ---- */

void shared_opq_push(shared_opq *q, shared_op *op)
{
    op->next = NULL;
    if (q->tail)
        q->tail->next = op;
    else
        q->head = op;
    q->tail = op;
    q->len++;
}

shared_op *shared_opq_pop(shared_opq *q)
{
    shared_op *op = q->head;
    if (op) {
        q->head = op->next;
        if (!q->head)
            q->tail = NULL;
        q->len--;
        op->next = NULL;
    }
    return op;
}

/* ---- the command builder ---- */

void shared_cmd_reset(shared_cmd *c)
{
    c->argc = 0;
    c->used = 0;
    c->failed = 0;
}

void shared_cmd_arg(shared_cmd *c, const char *s, size_t len)
{
    if (c->failed)
        return;
    if (c->argc == SHARED_CMD_ARGS) {
        c->failed = 1;
        return;
    }
    if (c->used + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 16384;
        while (cap < c->used + len + 1)
            cap *= 2;
        char *pool = realloc(c->pool, cap);
        if (!pool) {
            c->failed = 1;
            return;
        }
        c->pool = pool;
        c->cap = cap;
    }
    memcpy(c->pool + c->used, s, len);
    c->pool[c->used + len] = '\0';
    c->off[c->argc] = c->used;
    c->len[c->argc] = len;
    c->argc++;
    c->used += len + 1;
}

void shared_cmd_str(shared_cmd *c, const char *s)
{
    shared_cmd_arg(c, s, strlen(s));
}

void shared_cmd_fmt(shared_cmd *c, const char *fmt, ...)
{
    char buf[SHARED_KEY_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        c->failed = 1;
        return;
    }
    shared_cmd_arg(c, buf, (size_t)n);
}

void shared_cmd_evalsha(shared *s, shared_cmd *c, shared_lua which, int numkeys)
{
    shared_cmd_str(c, "EVALSHA");
    shared_cmd_str(c, s->sha[which]);
    shared_cmd_fmt(c, "%d", numkeys);
}

/* Append the built command to the connection's output buffer.  0 or -1. */
static int cmd_append(shared *s)
{
    shared_cmd *c = &s->cmd;
    if (c->failed || c->argc == 0)
        return -1;
    const char *argv[SHARED_CMD_ARGS];
    for (int i = 0; i < c->argc; i++)
        argv[i] = c->pool + c->off[i];
    return redisAppendCommandArgv(s->conn, c->argc, argv, c->len) == REDIS_OK ? 0 : -1;
}

/* ---- ids, keys, ops ---- */

void shared_new_id(shared *s, char *out)
{
    pthread_mutex_lock(&s->mu);
    unsigned long long n = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    snprintf(out, SHARED_ID_MAX, "%s/%s/%llu", s->host_id, s->boot, n);
}

shared_op *shared_op_new(shared_op_kind kind, rf_err *err)
{
    shared_op *op = calloc(1, sizeof *op);
    if (!op) {
        rf_err_set(err, ENOMEM, "out of memory queueing a shared-state request");
        return NULL;
    }
    op->kind = kind;
    return op;
}

void shared_op_free(shared_op *op)
{
    if (op) {
        free(op->field);
        free(op);
    }
}

int shared_op_deferrable(const shared_op *op)
{
    switch (op->kind) {
    case OP_SETTLE: case OP_RELEASE: case OP_FLOOR: case OP_SLOT_RELEASE: case OP_BREAKER:
    case OP_PROBE_RELEASE:
        return 1;
    default:
        return 0;
    }
}

static int is_budget_op(const shared_op *op)
{
    return op->kind <= OP_FLOOR;
}

int shared_enqueue_seq(shared *s, shared_op *op, uint64_t *seq, rf_err *err)
{
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        shared_op_free(op);
        return rf_err_set(err, ESHUTDOWN, "shared state is stopping");
    }
    if (shared_op_deferrable(op) && s->state == SHARED_DOWN &&
        s->deferred_len + s->queue.len >= SHARED_DEFERRED_MAX) {
        pthread_mutex_unlock(&s->mu);
        shared_op_free(op);
        return rf_err_set(err, ENOBUFS, "Redis is down and %d requests are already waiting "
                          "for it", SHARED_DEFERRED_MAX);
    }
    if (seq)
        *seq = op->seq = ++s->publish_seq;
    shared_opq_push(&s->queue, op);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int shared_enqueue(shared *s, shared_op *op, rf_err *err)
{
    return shared_enqueue_seq(s, op, NULL, err);
}

static void op_fail(shared *s, shared_op *op, int status, const char *msg)
{
    if (is_budget_op(op))
        shared_budget_fail(s, op, status, msg);
    else
        shared_limits_fail(s, op, status, msg);
}

/* ---- the deferred list (thread-only, mirrored in health under mu) ---- */

static void defer_op(shared *s, shared_op *op)
{
    if (s->deferred.len >= SHARED_DEFERRED_MAX) {
        op_fail(s, op, ENOBUFS, "too many requests waiting for Redis");
        shared_op_free(op);
        return;
    }
    shared_opq_push(&s->deferred, op);
    pthread_mutex_lock(&s->mu);
    s->deferred_len = s->deferred.len;
    if (op->kind == OP_SETTLE)
        s->deferred_nusd += op->nusd;
    pthread_mutex_unlock(&s->mu);
}

static shared_op *undefer_op(shared *s)
{
    shared_op *op = shared_opq_pop(&s->deferred);
    if (op) {
        pthread_mutex_lock(&s->mu);
        s->deferred_len = s->deferred.len;
        if (op->kind == OP_SETTLE)
            s->deferred_nusd -= op->nusd;
        pthread_mutex_unlock(&s->mu);
    }
    return op;
}

/* Redis is unreachable: the request waits (deferrable) or gets ENOTCONN. */
static void refuse_op(shared *s, shared_op *op)
{
    if (shared_op_deferrable(op)) {
        defer_op(s, op);
        return;
    }
    if (op->kind != OP_SYNC)
        op_fail(s, op, ENOTCONN, "Redis is unreachable");
    shared_op_free(op);
}

/* ---- batches ---- */

/* The connection dropped with the ops sent[from..n) unanswered and the ops in rest not
 * sent yet. */
static void batch_lost(shared *s, shared_op **sent, size_t from, size_t n, shared_opq *rest)
{
    for (size_t i = from; i < n; i++) {
        shared_op *op = sent[i];
        int keep = is_budget_op(op) ? shared_budget_lost(s, op) : shared_limits_lost(s, op);
        if (keep)
            defer_op(s, op);
        else
            shared_op_free(op);
    }
    shared_op *op;
    while ((op = shared_opq_pop(rest)))
        refuse_op(s, op);
}

/* A command failed: DEGRADED until none has failed for 5 sync periods (1 s .. 10 s), so
 * that a read-only sync succeeding between failing writes does not flap the state. */
static void mark_degraded(shared *s, const char *msg)
{
    long hold = 5 * s->sync_ms;
    hold = hold < 1000 ? 1000 : hold > 10000 ? 10000 : hold;
    s->degraded_until_ms = now_mono_ms() + hold;
    shared_set_state(s, SHARED_DEGRADED, msg);
}

/* What one reply means for its op.  Returns 1 when the op must be re-run (NOSCRIPT),
 * 0 when it is done (freed or deferred again); sets *bad on a failing command. */
static int handle_reply(shared *s, shared_op *op, const redisReply *r, int *bad, char *bad_msg,
                        size_t bad_len)
{
    if (shreply_is_noscript(r) && !op->noscript) {
        op->noscript = 1;
        return 1;
    }
    char text[200];
    if (shreply_error_text(r, text, sizeof text)) {
        *bad = 1;
        snprintf(bad_msg, bad_len, "Redis refused a command: %s", text);
        mark_degraded(s, bad_msg);              /* before anybody hears of it */
        if (shared_op_deferrable(op) && ++op->tries < SHARED_TRIES_MAX) {
            defer_op(s, op);                   /* tried again on a later sync tick */
            return 0;
        }
        op_fail(s, op, EIO, bad_msg);
        shared_op_free(op);
        return 0;
    }
    rf_err e;
    rf_err_clear(&e);
    int rc = is_budget_op(op) ? shared_budget_finish(s, op, r, &e)
                              : shared_limits_finish(s, op, r, &e);
    if (rc < 0) {
        *bad = 1;
        snprintf(bad_msg, bad_len, "%.200s", e.msg);
        mark_degraded(s, bad_msg);
        op_fail(s, op, EIO, e.msg);
    }
    shared_op_free(op);
    return 0;
}

/* Send every op of list, pipelined in rounds of at most BATCH_MAX, and answer each. */
static void run_list(shared *s, shared_opq *list)
{
    shared_op **sent = s->sent;
    int bad = 0;
    char bad_msg[256] = "";
    while (list->len && s->conn) {
        size_t n = 0;
        shared_op *op;
        while (n < BATCH_MAX && (op = shared_opq_pop(list))) {
            shared_cmd_reset(&s->cmd);
            int rc = is_budget_op(op) ? shared_budget_build(s, op) : shared_limits_build(s, op);
            if (rc == 0) {                     /* completed without a round trip */
                shared_op_free(op);
                continue;
            }
            if (cmd_append(s) < 0) {
                op_fail(s, op, ENOMEM, "out of memory building a Redis command");
                shared_op_free(op);
                continue;
            }
            sent[n++] = op;
        }
        if (n == 0)
            continue;
        /* All replies first (the round trip, measured without our callbacks), then
         * the answers; a reply that does not come means the connection is gone. */
        int64_t t0 = now_mono_us();
        size_t got = 0;
        while (got < n && redisGetReply(s->conn, (void **)&s->replies[got]) == REDIS_OK)
            got++;
        if (got)
            shared_count_round_trip(s, got, now_mono_us() - t0);
        shared_opq retry = {0};
        for (size_t i = 0; i < got; i++) {
            if (handle_reply(s, sent[i], s->replies[i], &bad, bad_msg, sizeof bad_msg))
                shared_opq_push(&retry, sent[i]);
            freeReplyObject(s->replies[i]);
        }
        if (got < n) {
            char why[160];
            snprintf(why, sizeof why, "%s", s->conn->errstr[0] ? s->conn->errstr : "?");
            shared_conn_failed(s, "connection lost", why);
            batch_lost(s, sent, got, n, list);
            while ((op = shared_opq_pop(&retry)))
                refuse_op(s, op);
            return;
        }
        if (retry.len) {                       /* the script cache was flushed */
            char msg[240];
            if (shared_load_scripts(s, msg, sizeof msg) < 0) {
                shared_conn_failed(s, "scripts", msg);
                while ((op = shared_opq_pop(&retry)))
                    refuse_op(s, op);
                while ((op = shared_opq_pop(list)))
                    refuse_op(s, op);
                return;
            }
            while ((op = shared_opq_pop(list)))   /* re-run first, then the rest */
                shared_opq_push(&retry, op);
            *list = retry;
        }
    }
    if (!s->conn)
        return;
    if (!bad && now_mono_ms() >= s->degraded_until_ms)
        shared_set_state(s, SHARED_CONNECTED, NULL);
}

/* One pass with a connection: replays, the batch taken from the queue, the sync tick. */
static void run_connected(shared *s, shared_opq *batch)
{
    shared_opq list = {0};
    shared_op *op;
    int64_t now = now_mono_ms();
    int tick = now >= s->next_sync_ms;
    if (s->floors_due) {
        shared_budget_floors(s, &list);
        s->floors_due = 0;
    }
    if (s->replay_due || (tick && s->deferred.len)) {
        while ((op = undefer_op(s)))
            shared_opq_push(&list, op);
        s->replay_due = 0;
    }
    while ((op = shared_opq_pop(batch)))
        shared_opq_push(&list, op);
    if (tick) {
        s->next_sync_ms = now + s->sync_ms;
        shared_budget_sweep(s);
        if ((op = shared_op_new(OP_SYNC, NULL)))
            shared_opq_push(&list, op);
    }
    run_list(s, &list);
}

static void *thread_main(void *arg)
{
    shared *s = arg;
    for (;;) {
        shared_opq batch = {0};
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && !s->queue.len && !(s->conn && s->replay_due)) {
            int64_t deadline = s->conn ? s->next_sync_ms : s->next_connect_ms;
            int64_t now = now_mono_ms();
            if (now >= deadline)
                break;
            struct timespec ts = {deadline / 1000, (deadline % 1000) * 1000000};
            pthread_cond_timedwait(&s->wake, &s->mu, &ts);
        }
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        shared_op *op;
        while (batch.len < BATCH_MAX && (op = shared_opq_pop(&s->queue))) {
            if (op->kind == OP_BREAKER && op->seq > s->taken_seq)
                s->taken_seq = op->seq;
            shared_opq_push(&batch, op);
        }
        pthread_mutex_unlock(&s->mu);

        if (!s->conn && now_mono_ms() >= s->next_connect_ms)
            shared_connect(s);
        if (s->conn) {
            run_connected(s, &batch);
        } else {
            while ((op = shared_opq_pop(&batch)))
                refuse_op(s, op);
        }
    }

    /* stopping: everything still waiting is cancelled */
    shared_opq left = {0};
    pthread_mutex_lock(&s->mu);
    left = s->queue;
    s->queue = (shared_opq){0};
    pthread_mutex_unlock(&s->mu);
    shared_op *op;
    size_t lost = 0;
    int64_t lost_nusd = 0;
    while ((op = undefer_op(s)))
        shared_opq_push(&left, op);
    while ((op = shared_opq_pop(&left))) {
        if (op->kind == OP_SETTLE) {
            lost++;
            lost_nusd += op->nusd;
        }
        if (op->kind != OP_SYNC)
            op_fail(s, op, ECANCELED, "shared state stopped");
        shared_op_free(op);
    }
    if (lost)
        LOG_WARN("shared: stopped with %zu settle(s) of $%.6f not applied to Redis", lost,
                 (double)lost_nusd / 1e9);
    shared_disconnect(s);
    return NULL;
}

/* ---- start, stop, health ---- */

static int valid_host_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > SHARED_HOST_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("._-:@+=/", c)))
            return 0;
    }
    return 1;
}

static void random_hex(char out[17])
{
    unsigned char b[8];
    if (getrandom(b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b) {
        uint64_t x = (uint64_t)(now_wall_ms() * 1000) ^ ((uint64_t)getpid() << 32);
        memcpy(b, &x, sizeof b);
    }
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void shared_free(shared *s)
{
    if (!s)
        return;
    shared_budget_free(s);
    shared_limits_free(s);
    free(s->cmd.pool);
    free(s->host);
    free(s->prefix);
    if (s->password) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->cache_mu);
    pthread_cond_destroy(&s->wake);
    free(s);
}

shared *shared_start(const rf_shared_cfg *cfg, const char *host_id, rf_err *err)
{
    if (!cfg || !cfg->host || !cfg->host[0] || cfg->port < 1 || cfg->port > 65535 ||
        cfg->db < 0 || !cfg->prefix || !cfg->prefix[0] || strlen(cfg->prefix) > 128 ||
        cfg->reservation_ttl_ms < 1000 || cfg->reservation_ttl_ms > 86400000 ||
        cfg->breaker_sync_ms < 10 || cfg->breaker_sync_ms > 60000) {
        rf_err_set(err, EINVAL, "shared: incomplete or out-of-range settings");
        return NULL;
    }
    if (cfg->tls) {
        rf_err_set(err, ENOTSUP, "shared.redis: rediss:// (TLS) is not supported: this "
                   "build's hiredis %d.%d has no TLS; use redis:// on a trusted network or "
                   "through a TLS tunnel (stunnel, spiped)", HIREDIS_MAJOR, HIREDIS_MINOR);
        return NULL;
    }
    if (!valid_host_id(host_id)) {
        rf_err_set(err, EINVAL, "shared: host id must be 1 to %d characters of A-Z a-z "
                   "0-9 . _ - : @ + = /", SHARED_HOST_ID_MAX);
        return NULL;
    }
    const char *pw = NULL;
    if (cfg->password_env) {
        pw = getenv(cfg->password_env);
        if (!pw || !pw[0]) {
            rf_err_set(err, EINVAL, "shared.password_env: %s is not set", cfg->password_env);
            return NULL;
        }
    }
    shared *s = calloc(1, sizeof *s);
    if (!s) {
        rf_err_set(err, ENOMEM, "out of memory starting shared state");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->cache_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    s->host = strdup(cfg->host);
    s->prefix = strdup(cfg->prefix);
    s->password = pw ? strdup(pw) : NULL;
    s->reservations = hmap_new();
    if (!s->host || !s->prefix || (pw && !s->password) || !s->reservations) {
        shared_free(s);
        rf_err_set(err, ENOMEM, "out of memory starting shared state");
        return NULL;
    }
    s->port = cfg->port;
    s->db = cfg->db;
    snprintf(s->host_id, sizeof s->host_id, "%s", host_id);
    random_hex(s->boot);
    s->reservation_ttl_ms = cfg->reservation_ttl_ms;
    s->sync_ms = cfg->breaker_sync_ms;
    s->backoff_ms = SHARED_BACKOFF_MIN_MS;
    s->state = SHARED_DOWN;
    s->since_ms = now_wall_ms();
    int rc = pthread_create(&s->thread, NULL, thread_main, s);
    if (rc != 0) {
        shared_free(s);
        rf_err_set(err, rc, "cannot start the shared-state thread: %s", strerror(rc));
        return NULL;
    }
    pthread_setname_np(s->thread, "rfs-shared");
    return s;
}

void shared_stop(shared *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    shared_free(s);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

void shared_health(shared *s, shared_health_info *out)
{
    long ring[SHARED_RTT_RING];
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    out->state = s->state;
    out->since_ms = s->since_ms;
    snprintf(out->last_error, sizeof out->last_error, "%s", s->last_error);
    out->round_trips = s->round_trips;
    out->commands = s->commands;
    out->connects = s->connects;
    out->rtt_mean_us = s->round_trips ? (long)(s->rtt_total_us / s->round_trips) : -1;
    size_t n = s->rtt_n < SHARED_RTT_RING ? s->rtt_n : SHARED_RTT_RING;
    memcpy(ring, s->rtt_ring, n * sizeof *ring);
    out->clock_offset_ms = s->clock_offset_ms;
    out->queued = s->queue.len;
    out->deferred = s->deferred_len;
    out->deferred_nusd = s->deferred_nusd;
    pthread_mutex_unlock(&s->mu);
    if (n) {
        qsort(ring, n, sizeof *ring, cmp_long);
        out->rtt_p50_us = ring[n / 2];
        out->rtt_p99_us = ring[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    } else {
        out->rtt_p50_us = out->rtt_p99_us = -1;
    }
}

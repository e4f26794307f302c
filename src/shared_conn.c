/* shared_conn.c — the shared thread's connection to Redis: connect with a timeout, AUTH
 * (the password never reaches a message), SELECT, SCRIPT LOAD of every script, TIME (the
 * clock offset shown in health); the state (connected / degraded / down) with its last
 * error and log lines; the backoff after a failure; round-trip statistics; the clocks. */
#include "shared_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "redact.h"

/* ---- state and errors ---- */

/* Copy text into the health's last_error without the password, in any form redact.c
 * knows (the lead registers it there) and raw in any case. */
void shared_set_state(shared *s, shared_state st, const char *text)
{
    char msg[sizeof s->last_error];
    snprintf(msg, sizeof msg, "%s", text ? text : "");
    if (s->password && s->password[0]) {
        size_t n = strlen(s->password);
        for (char *p = msg, *hit; (hit = strstr(p, s->password)); p = hit + n)
            memset(hit, '*', n);
    }
    redact_inplace(msg, strlen(msg));
    pthread_mutex_lock(&s->mu);
    shared_state old = s->state;
    int changed = old != st || (text && strcmp(msg, s->last_error) != 0);
    if (old != st)
        s->since_ms = now_wall_ms();
    s->state = st;
    if (text)
        snprintf(s->last_error, sizeof s->last_error, "%s", msg);
    pthread_mutex_unlock(&s->mu);
    if (!changed)
        return;
    if (st == SHARED_CONNECTED)
        LOG_INFO("shared: Redis %s:%d %s (prefix %s)", s->host, s->port,
                 old == SHARED_DEGRADED ? "working again" : "connected", s->prefix);
    else
        LOG_WARN("shared: Redis %s:%d %s: %s", s->host, s->port, shared_state_name(st), msg);
}

void shared_disconnect(shared *s)
{
    if (s->conn)
        redisFree(s->conn);
    s->conn = NULL;
}

/* The connection failed: DOWN, and the next attempt after the backoff. */
void shared_conn_failed(shared *s, const char *what, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof msg, "Redis %s:%d: %s: %s", s->host, s->port, what, why);
    shared_disconnect(s);
    shared_set_state(s, SHARED_DOWN, msg);
    s->next_connect_ms = now_mono_ms() + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > SHARED_BACKOFF_MAX_MS ? SHARED_BACKOFF_MAX_MS : s->backoff_ms * 2;
}

void shared_count_round_trip(shared *s, size_t commands, int64_t us)
{
    pthread_mutex_lock(&s->mu);
    s->round_trips++;
    s->commands += commands;
    s->rtt_total_us += (uint64_t)us;
    s->rtt_ring[s->rtt_n++ % SHARED_RTT_RING] = (long)us;
    pthread_mutex_unlock(&s->mu);
}

/* One command on the (blocking) connection; the reply (owned) or NULL with *why. */
static redisReply *command(shared *s, int argc, const char **argv, const size_t *len,
                           const char **why)
{
    int64_t t0 = now_mono_us();
    redisReply *r = redisCommandArgv(s->conn, argc, argv, len);
    if (!r) {
        *why = s->conn->errstr[0] ? s->conn->errstr : "no reply";
        return NULL;
    }
    shared_count_round_trip(s, 1, now_mono_us() - t0);
    return r;
}

/* SCRIPT LOAD every script (pipelined).  0, or -1 with msg. */
int shared_load_scripts(shared *s, char *msg, size_t msglen)
{
    int64_t t0 = now_mono_us();
    for (int i = 0; i < LUA__COUNT; i++) {
        const char *text = shared_lua_text((shared_lua)i);
        const char *argv[3] = {"SCRIPT", "LOAD", text};
        size_t len[3] = {6, 4, strlen(text)};
        if (redisAppendCommandArgv(s->conn, 3, argv, len) != REDIS_OK) {
            snprintf(msg, msglen, "SCRIPT LOAD: out of memory");
            return -1;
        }
    }
    int ok = 1;
    for (int i = 0; i < LUA__COUNT; i++) {
        void *reply = NULL;
        if (redisGetReply(s->conn, &reply) != REDIS_OK) {
            snprintf(msg, msglen, "SCRIPT LOAD: %s", s->conn->errstr);
            return -1;
        }
        rf_err e;
        char text[200];
        if (ok && shreply_error_text(reply, text, sizeof text)) {
            snprintf(msg, msglen, "SCRIPT LOAD %s refused: %s", shared_lua_name((shared_lua)i),
                     text);
            ok = 0;
        } else if (ok && shreply_sha_parse(reply, s->sha[i], &e) < 0) {
            snprintf(msg, msglen, "%.200s", e.msg);
            ok = 0;
        }
        freeReplyObject(reply);
    }
    shared_count_round_trip(s, LUA__COUNT, now_mono_us() - t0);
    return ok ? 0 : -1;
}

/* Connect, AUTH, SELECT, load the scripts, read TIME.  On failure: DOWN + backoff. */
void shared_connect(shared *s)
{
    struct timeval tv = {SHARED_IO_TIMEOUT_MS / 1000, (SHARED_IO_TIMEOUT_MS % 1000) * 1000};
    s->conn = redisConnectWithTimeout(s->host, s->port, tv);
    if (!s->conn || s->conn->err) {
        char why[160];
        snprintf(why, sizeof why, "%s", s->conn ? s->conn->errstr : "out of memory");
        shared_conn_failed(s, "connect", why);
        return;
    }
    if (redisSetTimeout(s->conn, tv) != REDIS_OK) {
        shared_conn_failed(s, "connect", "cannot set the socket timeout");
        return;
    }
    redisEnableKeepAlive(s->conn);

    const char *why = NULL;
    char text[200];
    rf_err e;
    if (s->password) {
        const char *argv[2] = {"AUTH", s->password};
        size_t len[2] = {4, strlen(s->password)};
        redisReply *r = command(s, 2, argv, len, &why);
        if (!r) {
            shared_conn_failed(s, "AUTH", why);
            return;
        }
        int bad = shreply_status_parse(r, "OK", &e) < 0;
        freeReplyObject(r);
        if (bad) {
            shared_conn_failed(s, "AUTH refused (check shared.password_env)", e.msg);
            return;
        }
    }
    if (s->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", s->db);
        const char *argv[2] = {"SELECT", db};
        size_t len[2] = {6, strlen(db)};
        redisReply *r = command(s, 2, argv, len, &why);
        if (!r) {
            shared_conn_failed(s, "SELECT", why);
            return;
        }
        int bad = shreply_status_parse(r, "OK", &e) < 0;
        freeReplyObject(r);
        if (bad) {
            shared_conn_failed(s, "SELECT refused", e.msg);
            return;
        }
    }
    char msg[240];
    if (shared_load_scripts(s, msg, sizeof msg) < 0) {
        shared_conn_failed(s, "scripts", msg);
        return;
    }
    const char *argv[1] = {"TIME"};
    size_t len[1] = {4};
    int64_t before = now_wall_ms();
    redisReply *r = command(s, 1, argv, len, &why);
    if (!r) {
        shared_conn_failed(s, "TIME", why);
        return;
    }
    int64_t server_ms = 0, after = now_wall_ms();
    int bad = shreply_time_parse(r, &server_ms, &e) < 0;
    if (bad && shreply_error_text(r, text, sizeof text))
        snprintf(e.msg, sizeof e.msg, "%s", text);
    freeReplyObject(r);
    if (bad) {
        shared_conn_failed(s, "TIME", e.msg);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->clock_offset_ms = server_ms - (before + after) / 2;
    s->connects++;
    pthread_mutex_unlock(&s->mu);
    s->backoff_ms = SHARED_BACKOFF_MIN_MS;
    s->degraded_until_ms = 0;
    s->floors_due = s->replay_due = 1;
    s->next_sync_ms = 0;                       /* fill the caches at once */
    shared_set_state(s, SHARED_CONNECTED, NULL);
}

/* shared_test.h — helpers for the shared-state tests (test_shared*.c): a real
 * redis-server on 127.0.0.1 (a free port, a temp dir, no persistence, stopped in
 * teardown and at exit), a plain hiredis client to look at the keys, and synchronous
 * wrappers around shared.h's callbacks, every wait bounded.
 *
 * Include after <cmocka.h>; every function is static, each test binary has its copy. */
#ifndef RF_SHARED_TEST_H
#define RF_SHARED_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>

#include "shared.h"

extern char **environ;

#define WAIT_MS 5000            /* the longest any callback may take in these tests */

__attribute__((unused)) static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

__attribute__((unused)) static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((unused)) static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Under valgrind everything is ~30x slower: latency targets are not checked there. */
__attribute__((unused)) static int under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload");
}

/* ---- redis-server ---- */

typedef struct test_redis {
    pid_t pid;
    int port;
    char dir[128];
    char password[64];          /* "" = none */
} test_redis;

static pid_t g_redis_pids[8];   /* killed at exit if a test did not get to stop them */

static void kill_leftover_redis(void)
{
    for (size_t i = 0; i < sizeof g_redis_pids / sizeof *g_redis_pids; i++)
        if (g_redis_pids[i] > 0) {
            kill(g_redis_pids[i], SIGKILL);
            waitpid(g_redis_pids[i], NULL, 0);
            g_redis_pids[i] = 0;
        }
}

static void track_pid(pid_t pid, int add)
{
    static int registered;
    if (!registered) {
        atexit(kill_leftover_redis);
        registered = 1;
    }
    for (size_t i = 0; i < sizeof g_redis_pids / sizeof *g_redis_pids; i++)
        if (add ? g_redis_pids[i] == 0 : g_redis_pids[i] == pid) {
            g_redis_pids[i] = add ? pid : 0;
            return;
        }
}

/* A port nobody listens on right now (bind port 0, read it, close). */
__attribute__((unused)) static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* A client to r, authenticated; NULL when it does not answer PING. */
static redisContext *redis_client(const test_redis *r)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (r->password[0]) {
        redisReply *a = redisCommand(c, "AUTH %s", r->password);
        int ok = a && a->type == REDIS_REPLY_STATUS;
        if (a)
            freeReplyObject(a);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    redisReply *p = redisCommand(c, "PING");
    int ok = p && p->type == REDIS_REPLY_STATUS;
    if (p)
        freeReplyObject(p);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Start redis-server on r->port (0: a free one) with r->password; waits for PING (5 s). */
__attribute__((unused)) static void redis_start(test_redis *r)
{
    if (!r->dir[0]) {
        snprintf(r->dir, sizeof r->dir, "/tmp/rfs-redis-XXXXXX");
        assert_non_null(mkdtemp(r->dir));
    }
    int fixed = r->port != 0;          /* a restart on the same port */
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = fixed ? r->port : free_port();
        char ports[16], log[200];
        snprintf(ports, sizeof ports, "%d", port);
        snprintf(log, sizeof log, "%s/redis.log", r->dir);
        const char *argv[24];
        int n = 0;
        argv[n++] = "redis-server";
        argv[n++] = "--port";
        argv[n++] = ports;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "no";
        argv[n++] = "--dir";
        argv[n++] = r->dir;
        argv[n++] = "--daemonize";
        argv[n++] = "no";
        argv[n++] = "--logfile";
        argv[n++] = log;
        if (r->password[0]) {
            argv[n++] = "--requirepass";
            argv[n++] = r->password;
        }
        argv[n] = NULL;
        pid_t pid;
        int rc = posix_spawnp(&pid, "redis-server", NULL, NULL, (char *const *)argv, environ);
        if (rc != 0)
            fail_msg("cannot start redis-server: %s (apt-get install redis-server)",
                     strerror(rc));
        track_pid(pid, 1);
        r->pid = pid;
        r->port = port;
        for (int i = 0; i < 500; i++) {
            redisContext *c = redis_client(r);
            if (c) {
                redisFree(c);
                return;
            }
            if (waitpid(pid, NULL, WNOHANG) == pid)
                break;                 /* it exited: the port was taken meanwhile */
            sleep_ms(10);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        track_pid(pid, 0);
        r->pid = 0;
        sleep_ms(100);
    }
    fail_msg("redis-server did not answer PING");
}

/* Stop it (sig SIGTERM: clean; SIGKILL: a crash) and wait, bounded. */
__attribute__((unused)) static void redis_kill(test_redis *r, int sig)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    for (int i = 0; i < 300; i++) {
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid)
            goto gone;
        sleep_ms(10);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
gone:
    track_pid(r->pid, 0);
    r->pid = 0;
}

__attribute__((unused)) static void redis_stop(test_redis *r)
{
    redis_kill(r, SIGTERM);
    if (r->dir[0]) {
        char path[200];
        snprintf(path, sizeof path, "%s/redis.log", r->dir);
        if (getenv("RFS_TEST_REDIS_LOG")) {        /* debugging: show what it said */
            char cmd[300];
            snprintf(cmd, sizeof cmd, "tail -20 %s >&2", path);
            if (system(cmd) != 0)
                print_message("(no redis log)\n");
        }
        unlink(path);
        snprintf(path, sizeof path, "%s/dump.rdb", r->dir);
        unlink(path);
        rmdir(r->dir);
        r->dir[0] = '\0';
    }
}

/* An integer from a command on a client (HGET of a missing field = 0). */
__attribute__((unused)) static long long redis_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    long long v = 0;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    else if (r->type != REDIS_REPLY_NIL)
        fail_msg("unexpected reply type %d (%s)", r->type, r->str ? r->str : "");
    freeReplyObject(r);
    return v;
}

__attribute__((unused)) static void redis_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis: %s", r->str);
    freeReplyObject(r);
}

/* ---- shared instances ---- */

__attribute__((unused)) static rf_shared_cfg test_cfg(const test_redis *r, const char *prefix)
{
    return (rf_shared_cfg){ .redis_url = "redis://127.0.0.1", .host = "127.0.0.1",
                            .port = r->port, .db = 0, .prefix = (char *)prefix,
                            .on_shared_down = RF_SHARED_DOWN_WAIT, .local_share = 0.5,
                            .reservation_ttl_ms = 600000, .breaker_sync_ms = 100 };
}

/* Poll until s reaches st (within ms); fails the test otherwise. */
__attribute__((unused)) static void wait_state(shared *s, shared_state st, long ms)
{
    shared_health_info h;
    int64_t end = now_us() + ms * 1000;
    do {
        shared_health(s, &h);
        if (h.state == st)
            return;
        sleep_ms(2);
    } while (now_us() < end);
    fail_msg("shared state %s, not %s, after %ld ms (last error: %s)",
             shared_state_name(h.state), shared_state_name(st), ms, h.last_error);
}

__attribute__((unused)) static shared *start_ok(const rf_shared_cfg *cfg, const char *host_id)
{
    rf_err err;
    rf_err_clear(&err);
    shared *s = shared_start(cfg, host_id, &err);
    if (!s)
        fail_msg("shared_start: %s", err.msg);
    wait_state(s, SHARED_CONNECTED, 3000);
    return s;
}

/* ---- one callback's result ---- */

typedef struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    int status;
    char id[SHARED_ID_MAX];
    char msg[512];
    long wait_ms, retry_ms;
    int granted;
    int64_t at_us;              /* monotonic time of the callback */
} result;

#define RESULT_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -1, "", "", 0, 0, 0, 0}

static void result_done(result *r, int status)
{
    pthread_mutex_lock(&r->mu);
    r->status = status;
    r->at_us = now_us();
    r->calls++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

__attribute__((unused)) static void on_reserve(void *ud, int status, const char *id,
                                               const char *msg)
{
    result *r = ud;
    snprintf(r->id, sizeof r->id, "%s", id ? id : "");
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "(null)");
    result_done(r, status);
}

__attribute__((unused)) static void on_done(void *ud, int status, const char *msg)
{
    result *r = ud;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "(null)");
    result_done(r, status);
}

__attribute__((unused)) static void on_rate(void *ud, int status, long wait_ms)
{
    result *r = ud;
    r->wait_ms = wait_ms;
    result_done(r, status);
}

__attribute__((unused)) static void on_slot(void *ud, int status, const char *lease_id,
                                            long retry_ms)
{
    result *r = ud;
    snprintf(r->id, sizeof r->id, "%s", lease_id ? lease_id : "");
    r->retry_ms = retry_ms;
    result_done(r, status);
}

__attribute__((unused)) static void on_probe(void *ud, int status, int granted)
{
    result *r = ud;
    r->granted = granted;
    result_done(r, status);
}

/* Wait (bounded by ms) for the callback; 1 when it came, 0 when not. */
__attribute__((unused)) static int result_wait(result *r, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&r->mu);
    while (r->calls == 0)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
            break;
    int got = r->calls > 0;
    pthread_mutex_unlock(&r->mu);
    return got;
}

__attribute__((unused)) static void result_destroy(result *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* Synchronous reserve: the status; id and msg copied when given. */
__attribute__((unused)) static int do_reserve(shared *s, const shared_caps *caps, int64_t nusd,
                                              char *id, char *msg)
{
    result r = RESULT_INIT;
    rf_err err;
    if (shared_reserve(s, caps, nusd, on_reserve, &r, &err) < 0)
        fail_msg("shared_reserve: %s", err.msg);
    if (!result_wait(&r, WAIT_MS))
        fail_msg("reserve: no callback within %d ms", WAIT_MS);
    assert_int_equal(r.calls, 1);
    if (id)
        snprintf(id, SHARED_ID_MAX, "%s", r.id);
    if (msg)
        snprintf(msg, 512, "%s", r.msg);
    result_destroy(&r);
    return r.status;
}

__attribute__((unused)) static int do_settle(shared *s, const char *id, int64_t nusd,
                                             const shared_caps *caps)
{
    result r = RESULT_INIT;
    rf_err err;
    if (shared_settle(s, id, nusd, caps, on_done, &r, &err) < 0)
        fail_msg("shared_settle: %s", err.msg);
    if (!result_wait(&r, WAIT_MS))
        fail_msg("settle: no callback within %d ms", WAIT_MS);
    result_destroy(&r);
    return r.status;
}

__attribute__((unused)) static int do_release(shared *s, const char *id)
{
    result r = RESULT_INIT;
    rf_err err;
    if (shared_release(s, id, on_done, &r, &err) < 0)
        fail_msg("shared_release: %s", err.msg);
    if (!result_wait(&r, WAIT_MS))
        fail_msg("release: no callback within %d ms", WAIT_MS);
    result_destroy(&r);
    return r.status;
}

/* One window "day:test" with cap (nusd, < 0 = none), labelled "daily cap". */
__attribute__((unused)) static shared_caps one_cap(int64_t cap)
{
    shared_caps c = {0};
    rf_err err;
    assert_int_equal(shared_caps_add(&c, "day:test", "daily cap", cap, &err), 0);
    return c;
}

#define USD(x) ((int64_t)((x) * 1e9 + 0.5))

#endif

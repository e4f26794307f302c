/* jobs.c — see jobs.h.
 *
 * Locking: one mutex guards the job table, every job's fields, the tier queues and the
 * waiter lists.  It is never held while calling the wake/changed callbacks (they reply to
 * FUSE and notify the kernel, which may call back into the filesystem). */
#include "jobs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "hmap.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "openai.h"
#include "runner.h"

#define PROMPT_MAX (1024 * 1024)

enum waiter_state { WAITER_ARMING, WAITER_ARMED, WAITER_ENDED, WAITER_INTERRUPTED };

struct waiter {
    void *req;
    off_t off;
    size_t size;
    enum waiter_state state;
    job *job;               /* NULL once detached (job ended) */
    char *key;              /* owned copy, for the wake callback */
    waiter *next_in_job;
    waiter *prev_all, *next_all;  /* every waiter, for interrupt lookups by req */
};

typedef struct tier_slots {
    int running;            /* jobs RUNNING in this tier */
    job *queue_head, *queue_tail;
} tier_slots;

static struct {
    pthread_mutex_t lock;
    jobs_deps d;            /* what jobs_init was given (borrowed) */
    rf_config *cfg;         /* current config (held) */
    hmap *table;            /* key -> job (unfinished jobs) */
    hmap *tiers;            /* tier name -> tier_slots */
    waiter *waiters;        /* all waiters */
    unsigned generations;   /* the last generation handed out (next_generation) */
} J = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A wake to deliver after unlocking. */
typedef struct pending_wake {
    waiter *w;
    struct pending_wake *next;
} pending_wake;

void jobs_lock(void) { pthread_mutex_lock(&J.lock); }
void jobs_unlock(void) { pthread_mutex_unlock(&J.lock); }

/* A job's generation, new for every version of every prompt of this mount (lock held).
 * Unique, not per job: a result is staged under its generation's name outside the lock,
 * and must never share that name with a later job for the same prompt. */
static unsigned next_generation(void)
{
    return ++J.generations;
}

const char *job_state_name(job_state s)
{
    static const char *names[] = {"writing", "queued", "running", "parked",
                                  "committing", "done", "failed"};
    return s <= JOB_FAILED ? names[s] : "unknown";
}

/* ---- small helpers ---- */

static char *store_rel(const char *key, const char *suffix)
{
    char *out = NULL;
    if (asprintf(&out, "tiers/%s%s", key, suffix ? suffix : "") < 0)
        return NULL;
    return out;
}

static char *park_rel(const char *key);

/* A prompt's results, and its park record: a new version starts from nothing. */
static void remove_results(const char *key)
{
    for (int i = 0; i < NAME_RESULT_KINDS; i++) {
        char *rel = store_rel(key, name_result_suffix[i]);
        if (rel) {
            store_unlink(J.d.st, rel);
            free(rel);
        }
    }
    char *park = park_rel(key);
    if (park)
        store_unlink(J.d.st, park);
    free(park);
}

static tier_slots *slots_for(const char *tier)
{
    tier_slots *ts = hmap_get(J.tiers, tier);
    if (ts)
        return ts;
    ts = calloc(1, sizeof *ts);
    if (!ts)
        return NULL;
    if (hmap_put(J.tiers, tier, ts) < 0) {
        free(ts);
        return NULL;
    }
    return ts;
}

static void job_free(job *j)
{
    free(j->key);
    free(j->tier_name);
    free(j->tag);
    free(j->name);
    config_unref(j->cfg);
    free(j->prompt);
    openai_free_names(j->params, j->nparams);
    for (size_t i = 0; i < j->nhops; i++) {
        free(j->hops[i].provider);
        free(j->hops[i].model);
        free(j->hops[i].error);
    }
    free(j->hops);
    free(j->served_provider);
    free(j->served_endpoint);
    free(j->served_model);
    free(j->error);
    free(j->content);
    free(j->slot_provider);
    free(j->refusal);
    free(j->ledger_id);
    free(j);
}

void jobs_job_unref(job *j)
{
    if (--j->refs == 0)
        job_free(j);
}

/* Split "tier/a/b/name" into its parts. */
static job *job_new(const char *key)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->key = strdup(key);
    const char *first = strchr(key, '/');
    const char *last = strrchr(key, '/');
    if (!j->key || !first) {
        free(j->key);
        free(j);
        return NULL;
    }
    j->tier_name = strndup(key, (size_t)(first - key));
    j->name = strdup(last + 1);
    if (last > first)
        j->tag = strndup(first + 1, (size_t)(last - first - 1));
    if (!j->tier_name || !j->name || (last > first && !j->tag)) {
        free(j->tier_name);
        free(j->name);
        free(j->tag);
        free(j->key);
        free(j);
        return NULL;
    }
    j->refs = 1;
    j->in_table = 1;
    j->generation = next_generation();
    j->created_ms = now_wall_ms();
    j->seed = (unsigned)(j->created_ms ^ (uintptr_t)j);
    return j;
}

/* Reset a job for a new prompt version: forget the previous attempt entirely. */
static void job_reset(job *j)
{
    runner_cancel(j);
    j->generation = next_generation();
    config_unref(j->cfg);
    j->cfg = NULL;
    j->tier = NULL;
    free(j->prompt);
    j->prompt = NULL;
    j->prompt_len = 0;
    openai_free_names(j->params, j->nparams);
    j->params = NULL;
    j->nparams = 0;
    for (size_t i = 0; i < j->nhops; i++) {
        free(j->hops[i].provider);
        free(j->hops[i].model);
        free(j->hops[i].error);
    }
    j->nhops = 0;
    j->hop_index = 0;
    j->hop_attempts = 0;
    j->park_count = 0;
    j->next_attempt_ms = 0;
    free(j->served_provider);
    free(j->served_endpoint);
    free(j->served_model);
    free(j->error);
    free(j->content);
    j->content = NULL;
    j->content_len = 0;
    free(j->refusal);
    j->refusal = NULL;
    free(j->ledger_id);
    j->ledger_id = NULL;
    j->served_provider = j->served_endpoint = j->served_model = j->error = NULL;
    j->prompt_tokens = j->completion_tokens = -1;
    j->has_cost = 0;
    j->fallback = 0;
    j->created_ms = now_wall_ms();
    j->started_ms = j->finished_ms = 0;
}

/* Remove j from its tier queue if it is there. */
static void queue_remove(job *j)
{
    tier_slots *ts = hmap_get(J.tiers, j->tier_name);
    if (!ts)
        return;
    job **pp = &ts->queue_head;
    job *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->queue_next;
    }
    if (!*pp)
        return;
    *pp = j->queue_next;
    if (ts->queue_tail == j)
        ts->queue_tail = prev;
    j->queue_next = NULL;
    jobs_job_unref(j);   /* the queue's reference */
}

void jobs_job_release_slot(job *j)
{
    tier_slots *ts = hmap_get(J.tiers, j->tier_name);
    if (ts && ts->running > 0)
        ts->running--;
}

/* Start queued jobs of a tier while it has free slots.  A job can finish synchronously
 * inside runner_start (an unusable prompt) and ask for a dispatch itself; the outer loop
 * already re-checks the slots, so nested calls just return (bounded stack depth). */
static int dispatching;

static void dispatch_tier(const char *tier)
{
    tier_slots *ts = hmap_get(J.tiers, tier);
    if (!ts || dispatching)
        return;
    dispatching = 1;
    while (ts->queue_head) {
        job *j = ts->queue_head;
        int limit = j->tier ? j->tier->concurrency : 1;
        if (ts->running >= limit)
            break;
        ts->queue_head = j->queue_next;
        if (!ts->queue_head)
            ts->queue_tail = NULL;
        j->queue_next = NULL;
        ts->running++;
        runner_start(j);
        jobs_job_unref(j);   /* the queue's reference; runner holds its own */
    }
    dispatching = 0;
}

static void enqueue(job *j)
{
    tier_slots *ts = slots_for(j->tier_name);
    if (!ts) {
        LOG_ERROR("out of memory queueing %s", j->key);
        return;
    }
    j->state = JOB_QUEUED;
    j->refs++;   /* the queue's reference */
    if (ts->queue_tail)
        ts->queue_tail->queue_next = j;
    else
        ts->queue_head = j;
    ts->queue_tail = j;
    dispatch_tier(j->tier_name);
}

void jobs_job_requeue(job *j)
{
    enqueue(j);
}

/* Detach every waiter of j; ARMED ones go onto *wakes for delivery after unlocking,
 * ARMING ones are marked ENDED so their reader handles it. */
static void collect_waiters(job *j, pending_wake **wakes)
{
    waiter *w = j->waiters;
    j->waiters = NULL;
    while (w) {
        waiter *next = w->next_in_job;
        w->job = NULL;
        w->next_in_job = NULL;
        if (w->state == WAITER_ARMED) {
            /* unlink from the global list now: it will be answered by the wake */
            if (w->prev_all)
                w->prev_all->next_all = w->next_all;
            else
                J.waiters = w->next_all;
            if (w->next_all)
                w->next_all->prev_all = w->prev_all;
            pending_wake *pw = malloc(sizeof *pw);
            if (pw) {
                pw->w = w;
                pw->next = *wakes;
                *wakes = pw;
            }
        } else {
            w->state = WAITER_ENDED;
        }
        w = next;
    }
}

static void deliver_wakes(pending_wake *wakes)
{
    while (wakes) {
        pending_wake *pw = wakes;
        wakes = pw->next;
        J.d.wake(pw->w->req, pw->w->key, pw->w->off, pw->w->size);
        free(pw->w->key);
        free(pw->w);
        free(pw);
    }
}

/* Take j out of the table (it is finished, or its prompt is gone). Lock held. */
static void table_remove(job *j)
{
    if (!j->in_table)
        return;
    hmap_del(J.table, j->key);
    j->in_table = 0;
    jobs_job_unref(j);   /* the table's reference */
}

/* ---- init / config ---- */

int jobs_init(const jobs_deps *deps, rf_err *err)
{
    J.d = *deps;
    J.table = hmap_new();
    J.tiers = hmap_new();
    if (!J.table || !J.tiers)
        return rf_err_set(err, ENOMEM, "out of memory");
    runner_init(deps->up, deps->breakers, deps->budget);
    return 0;
}

void jobs_shutdown(void)
{
    pending_wake *wakes = NULL;
    jobs_lock();
    for (hmap_iter it = {0}; hmap_next(J.table, &it);) {
        job *j = it.value;
        runner_cancel(j);
        j->generation = next_generation();
        collect_waiters(j, &wakes);
    }
    jobs_unlock();
    deliver_wakes(wakes);   /* the edge answers them: the job is gone */
    jobs_lock();
    for (hmap_iter it = {0}; hmap_next(J.tiers, &it);) {
        tier_slots *ts = it.value;
        while (ts->queue_head) {
            job *j = ts->queue_head;
            ts->queue_head = j->queue_next;
            jobs_job_unref(j);
        }
        free(ts);
    }
    hmap_free(J.tiers);
    J.tiers = NULL;
    for (hmap_iter it = {0}; hmap_next(J.table, &it);) {
        job *j = it.value;
        j->in_table = 0;
        jobs_job_unref(j);
    }
    hmap_free(J.table);
    J.table = NULL;
    /* waiters still ARMING belong to readers that will see their job gone */
    config_unref(J.cfg);
    J.cfg = NULL;
    jobs_unlock();
}

void jobs_set_config(rf_config *cfg)
{
    jobs_lock();
    rf_config *old = J.cfg;
    J.cfg = config_ref(cfg);
    jobs_unlock();
    config_unref(old);
}

rf_config *jobs_config(void)
{
    jobs_lock();
    rf_config *c = J.cfg ? config_ref(J.cfg) : NULL;
    jobs_unlock();
    return c;
}

/* ---- prompt lifecycle ---- */

/* The job for key, created if absent.  Lock held. */
static job *job_for_key(const char *key)
{
    job *j = hmap_get(J.table, key);
    if (j)
        return j;
    j = job_new(key);
    if (!j)
        return NULL;
    if (hmap_put(J.table, key, j) < 0) {
        job_free(j);
        return NULL;
    }
    j->prompt_tokens = j->completion_tokens = -1;
    return j;
}

/* Leave any queue/slot the job holds before resetting it.  Lock held. */
static void job_leave_scheduling(job *j)
{
    if (j->state == JOB_QUEUED)
        queue_remove(j);
    else if (j->state == JOB_RUNNING)
        jobs_job_release_slot(j);
}

void jobs_prompt_open_write(const char *key)
{
    jobs_lock();
    job *j = job_for_key(key);
    if (!j) {
        jobs_unlock();
        LOG_ERROR("out of memory tracking %s", key);
        return;
    }
    if (j->state != JOB_WRITING) {
        job_leave_scheduling(j);
        job_reset(j);
        j->state = JOB_WRITING;
    }
    j->writers++;
    remove_results(key);
    dispatch_tier(j->tier_name);   /* a slot it held may now be free */
    jobs_unlock();
    if (J.d.changed)
        J.d.changed(key);
}

/* FNV-1a over the prompt: recovery installs a staged result only for the prompt it
 * answered. */
static uint64_t prompt_hash(const char *data, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Read the prompt and queue the job, or drop it when the prompt is empty.  Lock held.
 * Returns wakes to deliver (readers of a job that will not run). */
static void start_job(job *j, pending_wake **wakes)
{
    char *rel = store_rel(j->key, NULL);
    rf_err err;
    rf_err_clear(&err);
    char *data = NULL;
    size_t len = 0;
    int r = rel ? store_read_all(J.d.st, rel, PROMPT_MAX, &data, &len, &err) : -1;
    free(rel);
    if (r < 0 || len == 0) {
        if (r < 0)
            LOG_WARN("%s: not started: %s", j->key, err.msg);
        /* Nothing to send (an empty prompt, or it vanished): no job, no results. */
        collect_waiters(j, wakes);
        table_remove(j);
        free(data);
        return;
    }
    j->prompt = data;
    j->prompt_len = len;
    j->prompt_hash = prompt_hash(data, len);
    j->nparams = openai_request_params(data, len, &j->params);
    j->cfg = J.cfg ? config_ref(J.cfg) : NULL;
    j->tier = j->cfg ? config_tier(j->cfg, j->tier_name) : NULL;
    if (!j->tier) {
        /* The tier was removed from the config while the prompt was being written. */
        j->state = JOB_FAILED;
        j->error = strdup("tier is not in the current config");
        j->finished_ms = now_wall_ms();
        jobs_job_finished(j);
        return;
    }
    if (j->park_count > 0 && j->next_attempt_ms > now_wall_ms()) {
        LOG_INFO("%s: still parked after the remount, next attempt in %lld s", j->key,
                 (long long)((j->next_attempt_ms - now_wall_ms()) / 1000));
        runner_park_until(j, j->next_attempt_ms);
        return;
    }
    enqueue(j);
}

void jobs_prompt_close_write(const char *key)
{
    pending_wake *wakes = NULL;
    jobs_lock();
    job *j = hmap_get(J.table, key);
    if (j && j->state == JOB_WRITING && j->writers > 0 && --j->writers == 0) {
        if (j->refusal) {
            /* a writer hit a limit: what is on disk is not the prompt the user meant */
            j->error = j->refusal;
            j->refusal = NULL;
            j->finished_ms = now_wall_ms();
            jobs_job_finished(j);
        } else {
            start_job(j, &wakes);
        }
    }
    jobs_unlock();
    deliver_wakes(wakes);
    if (J.d.changed)
        J.d.changed(key);
}

void jobs_prompt_refused(const char *key, const char *why)
{
    jobs_lock();
    job *j = hmap_get(J.table, key);
    if (j && j->state == JOB_WRITING && !j->refusal)
        j->refusal = strdup(why);
    jobs_unlock();
    jobs_prompt_close_write(key);
}

void jobs_prompt_installed(const char *key)
{
    pending_wake *wakes = NULL;
    jobs_lock();
    job *j = job_for_key(key);
    if (j) {
        if (j->state != JOB_WRITING || j->writers == 0) {
            job_leave_scheduling(j);
            job_reset(j);
            j->state = JOB_WRITING;
        }
        j->writers = 0;
        remove_results(key);
        start_job(j, &wakes);
    }
    jobs_unlock();
    deliver_wakes(wakes);
    if (J.d.changed)
        J.d.changed(key);
}

void jobs_prompt_removed(const char *key)
{
    pending_wake *wakes = NULL;
    jobs_lock();
    job *j = hmap_get(J.table, key);
    char *tier = NULL;
    if (j) {
        tier = strdup(j->tier_name);
        job_leave_scheduling(j);
        runner_cancel(j);
        j->generation = next_generation();
        collect_waiters(j, &wakes);
        table_remove(j);
    }
    remove_results(key);
    if (tier)
        dispatch_tier(tier);
    jobs_unlock();
    free(tier);
    deliver_wakes(wakes);
    if (J.d.changed)
        J.d.changed(key);
}

/* ---- completion ---- */

typedef struct finish_ctx {
    job *j;
    unsigned generation;
} finish_ctx;

static int finish_install(commit_item *item, void *ud)
{
    finish_ctx *fc = ud;
    int installed = 0;
    jobs_lock();
    if (fc->j->in_table && fc->j->generation == fc->generation) {
        commit_install_files(J.d.commit, item);
        installed = 1;
    }
    jobs_unlock();
    return installed;
}

static void finish_done(commit_item *item, int ok, const rf_err *err, void *ud)
{
    finish_ctx *fc = ud;
    pending_wake *wakes = NULL;
    char *key = NULL;
    jobs_lock();
    job *j = fc->j;
    if (!ok)
        LOG_ERROR("%s: results could not be saved: %s", j->key, err ? err->msg : "?");
    if (j->in_table && j->generation == fc->generation) {
        key = strdup(j->key);
        collect_waiters(j, &wakes);
        table_remove(j);
    }
    jobs_job_unref(j);
    jobs_unlock();
    free(fc);
    deliver_wakes(wakes);
    if (key && J.d.changed)
        J.d.changed(key);
    free(key);
}

/* "tier/tag/name" + generation + ".out" -> "tiers/tier/tag/.rfs-tmp.name.g<gen>.out": the
 * name under which a result is staged (recover_staged reads it back). */
static char *staged_rel(const char *key, unsigned generation, const char *suffix)
{
    const char *slash = strrchr(key, '/');
    char *out = NULL;
    if (asprintf(&out, "tiers/%.*s/" STORE_TEMP_PREFIX "%s.g%u%s", (int)(slash - key), key,
                 slash + 1, generation, suffix) < 0)
        return NULL;
    return out;
}

/* "tier/tag/name" -> "tiers/tier/tag/.rfs-tmp.name.park": where a parked job's schedule
 * is kept, so that a remount does not retry it at once (recover_park reads it back).  A
 * temp name: invisible in the mount, and removed by recovery once read. */
static char *park_rel(const char *key)
{
    const char *slash = strrchr(key, '/');
    char *out = NULL;
    if (!slash || asprintf(&out, "tiers/%.*s/" STORE_TEMP_PREFIX "%s.park", (int)(slash - key),
                           key, slash + 1) < 0)
        return NULL;
    return out;
}

void jobs_job_parked(job *j)
{
    char *rel = park_rel(j->key);
    char *text = NULL;
    if (rel && asprintf(&text, "{\"prompt_hash\": \"%016llx\", \"park_count\": %d, "
                        "\"next_attempt_ms\": %lld}\n", (unsigned long long)j->prompt_hash,
                        j->park_count, (long long)j->next_attempt_ms) < 0)
        text = NULL;
    rf_err err;
    rf_err_clear(&err);
    /* best effort, no fsync: without it a remount only retries the job sooner */
    if (text && store_write_file(J.d.st, rel, text, strlen(text), &err) < 0)
        LOG_WARN("%s: park schedule not saved: %s", j->key, err.msg);
    free(text);
    free(rel);
}

/* Put one result file into the commit, to be staged under its generation's temp name
 * (jobs_finish_stage).  Takes ownership of data. */
static int add_result_file(commit_item *item, const job *j, const char *suffix, char *data,
                           size_t len)
{
    char *rel = store_rel(j->key, suffix);
    char *temp = staged_rel(j->key, j->generation, suffix);
    int ok = 0;
    if (rel && temp && strlen(strrchr(temp, '/') + 1) <= NAME_MAX)
        ok = commit_item_add_staged(item, rel, temp, data, len) == 0;
    else if (rel)
        ok = commit_item_add(item, rel, data, len) == 0;   /* name too long to stage */
    if (!ok)
        free(data);
    free(rel);
    free(temp);
    return ok;
}

commit_item *jobs_finish_prepare(job *j)
{
    if (j->state == JOB_RUNNING)
        jobs_job_release_slot(j);
    j->state = j->error ? JOB_FAILED : JOB_DONE;
    if (!j->finished_ms)
        j->finished_ms = now_wall_ms();
    char *tier = strdup(j->tier_name);
    metrics_job(j->tier_name, j->state == JOB_DONE ? "done" : "failed");
    if (j->state == JOB_DONE)
        LOG_INFO("%s: done via %s/%s%s", j->key, j->served_endpoint ? j->served_endpoint : "?",
                 j->served_model ? j->served_model : "?", j->fallback ? " (fallback)" : "");
    else
        LOG_INFO("%s: failed: %s", j->key, j->error);

    commit_item *item = commit_item_new();
    finish_ctx *fc = malloc(sizeof *fc);
    char *meta = job_meta_json(j);
    char *line = job_activity_line(j);
    char *out_rel = store_rel(j->key, ".out");
    char *meta_rel = store_rel(j->key, ".meta");
    char *err_rel = store_rel(j->key, ".err");
    int ok = item && fc && meta && line && out_rel && meta_rel && err_rel;
    if (ok) {
        /* .out or .err first, .meta last: a staged .meta says its sibling is staged too */
        if (j->state == JOB_DONE) {
            /* the completion text moves from the job to the commit */
            ok = add_result_file(item, j, ".out", j->content, j->content_len);
            j->content = NULL;
            j->content_len = 0;
            ok = ok && commit_item_remove(item, err_rel) == 0;
        } else {
            char *errline = NULL;
            if (asprintf(&errline, "%s\n", j->error) < 0)
                errline = NULL;
            ok = errline && add_result_file(item, j, ".err", errline, strlen(errline));
            ok = ok && commit_item_remove(item, out_rel) == 0;
        }
        ok = ok && add_result_file(item, j, ".meta", meta, strlen(meta));
        meta = NULL;
    }
    if (ok) {
        item->append_rel = strdup("activity.jsonl");
        item->append_data = line;
        line = NULL;
        item->install = finish_install;
        item->done = finish_done;
        item->ud = fc;
        fc->j = j;
        fc->generation = j->generation;
        j->refs++;   /* the commit's reference */
    } else {
        LOG_ERROR("%s: out of memory saving results", j->key);
        commit_item_free(item);
        item = NULL;
        free(fc);
    }
    free(meta);
    free(line);
    free(out_rel);
    free(meta_rel);
    free(err_rel);
    if (tier)
        dispatch_tier(tier);
    free(tier);
    return item;
}

void jobs_finish_stage(commit_item *item)
{
    if (item)
        commit_item_stage(J.d.st, item);
}

void jobs_finish_submit(commit_item *item)
{
    if (item)
        commit_submit(J.d.commit, item);
}

void jobs_job_finished(job *j)
{
    commit_item *item = jobs_finish_prepare(j);
    jobs_finish_stage(item);
    jobs_finish_submit(item);
}

/* ---- queries ---- */

int jobs_active(const char *key, job_state *state)
{
    jobs_lock();
    job *j = J.table ? hmap_get(J.table, key) : NULL;
    if (j && state)
        *state = j->state;
    jobs_unlock();
    return j != NULL;
}

char *jobs_meta(const char *key)
{
    jobs_lock();
    job *j = J.table ? hmap_get(J.table, key) : NULL;
    char *m = j ? job_meta_json(j) : NULL;
    jobs_unlock();
    return m;
}

void jobs_tier_counts(const char *tier, int counts[JOB_FAILED + 1])
{
    memset(counts, 0, sizeof(int) * (JOB_FAILED + 1));
    jobs_lock();
    for (hmap_iter it = {0}; J.table && hmap_next(J.table, &it);) {
        job *j = it.value;
        if (!strcmp(j->tier_name, tier))
            counts[j->state]++;
    }
    jobs_unlock();
}

/* ---- readers ---- */

static waiter *find_waiter(void *req)
{
    for (waiter *w = J.waiters; w; w = w->next_all)
        if (w->req == req)
            return w;
    return NULL;
}

static void unlink_waiter(waiter *w)
{
    if (w->prev_all)
        w->prev_all->next_all = w->next_all;
    else
        J.waiters = w->next_all;
    if (w->next_all)
        w->next_all->prev_all = w->prev_all;
    if (w->job) {
        waiter **pp = &w->job->waiters;
        while (*pp && *pp != w)
            pp = &(*pp)->next_in_job;
        if (*pp)
            *pp = w->next_in_job;
    }
}

int jobs_wait_begin(const char *key, void *req, off_t off, size_t size)
{
    jobs_lock();
    job *j = J.table ? hmap_get(J.table, key) : NULL;
    if (!j) {
        jobs_unlock();
        return 0;
    }
    waiter *w = calloc(1, sizeof *w);
    char *k = strdup(key);
    if (!w || !k) {
        free(w);
        free(k);
        jobs_unlock();
        return 0;   /* the read path then reports the job as unfinished (EAGAIN) */
    }
    w->req = req;
    w->off = off;
    w->size = size;
    w->state = WAITER_ARMING;
    w->job = j;
    w->key = k;
    w->next_in_job = j->waiters;
    j->waiters = w;
    w->next_all = J.waiters;
    if (J.waiters)
        J.waiters->prev_all = w;
    J.waiters = w;
    jobs_unlock();
    return 1;
}

int jobs_wait_arm(void *req)
{
    jobs_lock();
    waiter *w = find_waiter(req);
    if (!w) {
        jobs_unlock();
        return JOBS_WAIT_ENDED;
    }
    int result;
    if (w->state == WAITER_ARMING) {
        w->state = WAITER_ARMED;
        jobs_unlock();
        return JOBS_WAIT_ARMED;
    }
    result = w->state == WAITER_INTERRUPTED ? JOBS_WAIT_INTERRUPTED : JOBS_WAIT_ENDED;
    unlink_waiter(w);
    jobs_unlock();
    free(w->key);
    free(w);
    return result;
}

int jobs_wait_interrupt(void *req)
{
    jobs_lock();
    waiter *w = find_waiter(req);
    if (!w) {
        jobs_unlock();
        return 0;   /* already answered */
    }
    if (w->state == WAITER_ARMING) {
        w->state = WAITER_INTERRUPTED;   /* the reader answers when it arms */
        jobs_unlock();
        return 0;
    }
    if (w->state == WAITER_ENDED) {
        jobs_unlock();
        return 0;
    }
    unlink_waiter(w);
    jobs_unlock();
    free(w->key);
    free(w);
    return 1;
}

/* ---- recovery ---- */


/* ISO-8601 UTC with milliseconds (format_time_ms) back to ms; 0 when unparseable. */
static int64_t parse_time_ms(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return 0;
    int ms = 0;
    if (*rest == '.')
        ms = atoi(rest + 1);
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static const char *json_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The ledger record a staged meta describes (its served hop, cost and tokens), settled
 * again: the ledger counts an id once, so this only adds what the crash lost. */
static void resettle_from_meta(const cJSON *meta)
{
    const char *id = json_str(meta, "ledger_id");
    const cJSON *hops = cJSON_GetObjectItemCaseSensitive(meta, "hops");
    const cJSON *served = NULL, *h;
    cJSON_ArrayForEach(h, hops)
        served = h;   /* the last hop is the one that answered */
    if (!id || !served || !J.d.budget)
        return;
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(meta, "cost");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(meta, "tokens");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(tokens, "prompt");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(tokens, "completion");
    budget_record rec = {
        .id = id,
        .tier = json_str(meta, "tier"),
        .tag = json_str(meta, "tag"),
        .provider = json_str(served, "provider"),
        .model = json_str(served, "model"),
        .cost = cJSON_IsNumber(cost) ? cost->valuedouble : 0,
        .has_cost = cJSON_IsNumber(cost),
        .prompt_tokens = cJSON_IsNumber(pt) ? (long)pt->valuedouble : -1,
        .completion_tokens = cJSON_IsNumber(ct) ? (long)ct->valuedouble : -1,
        .at_ms = parse_time_ms(json_str(meta, "finished_at")),
    };
    rf_err err;
    rf_err_clear(&err);
    if (budget_settle(J.d.budget, 0, &rec, &err) < 0)
        LOG_ERROR("recovery: ledger: %s", err.msg);
}

/* The JSON record at rel (a staged meta, a park record), parsed, when its "prompt_hash"
 * answers key's prompt as it is now; NULL when absent, unreadable, torn, or written for
 * another version of the prompt. */
static cJSON *read_record_for_prompt(const char *rel, size_t max, const char *key)
{
    char *prompt_rel = store_rel(key, NULL);
    char *text = NULL, *prompt = NULL;
    size_t text_len = 0, prompt_len = 0;
    rf_err err;
    cJSON *rec = NULL;
    if (prompt_rel && store_read_all(J.d.st, rel, max, &text, &text_len, &err) == 0 &&
        store_read_all(J.d.st, prompt_rel, PROMPT_MAX, &prompt, &prompt_len, &err) == 0 &&
        (rec = cJSON_Parse(text))) {
        char want[24];
        snprintf(want, sizeof want, "%016llx",
                 (unsigned long long)prompt_hash(prompt, prompt_len));
        const char *hash = json_str(rec, "prompt_hash");
        if (!hash || strcmp(hash, want) != 0) {
            cJSON_Delete(rec);
            rec = NULL;
        }
    }
    free(text);
    free(prompt);
    free(prompt_rel);
    return rec;
}

/* A result staged for key before a crash, whose commit never ran: install it when its
 * meta answers the prompt as it is now (same hash).  temps: the dot-file names of the
 * directory.  Returns 1 when installed. */
static int recover_staged(const char *key, char **temps, size_t ntemps)
{
    const char *name = strrchr(key, '/') + 1;
    char prefix[NAME_MAX + 32];
    snprintf(prefix, sizeof prefix, STORE_TEMP_PREFIX "%s.g", name);
    size_t plen = strlen(prefix);
    long best = -1;
    for (size_t i = 0; i < ntemps; i++) {
        if (strncmp(temps[i], prefix, plen) != 0)
            continue;
        char *end = NULL;
        long gen = strtol(temps[i] + plen, &end, 10);
        if (end != temps[i] + plen && !strcmp(end, ".meta") && gen > best)
            best = gen;
    }
    if (best < 0)
        return 0;
    char *meta_tmp = staged_rel(key, (unsigned)best, ".meta");
    cJSON *meta = meta_tmp ? read_record_for_prompt(meta_tmp, 1 << 20, key) : NULL;
    int installed = 0;
    if (meta) {
        const char *state = json_str(meta, "state");
        int done = state && !strcmp(state, "done");
        const char *suffix = done ? ".out" : ".err";
        char *sib_tmp = staged_rel(key, (unsigned)best, suffix);
        char *sib = store_rel(key, suffix), *meta_final = store_rel(key, ".meta");
        if (state && sib_tmp && sib && meta_final && store_exists(J.d.st, sib_tmp) &&
            store_rename(J.d.st, sib_tmp, sib) == 0 &&
            store_rename(J.d.st, meta_tmp, meta_final) == 0) {
            installed = 1;
            if (done)
                resettle_from_meta(meta);
        }
        free(sib_tmp);
        free(sib);
        free(meta_final);
    }
    cJSON_Delete(meta);
    free(meta_tmp);
    return installed;
}

/* A job parked before the unmount or crash: give it back its park count and the time
 * of its next attempt, when the record answers the prompt as it is now (same hash). */
static void recover_park(const char *key)
{
    char *rel = park_rel(key);
    cJSON *rec = rel ? read_record_for_prompt(rel, 4096, key) : NULL;
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(rec, "park_count");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(rec, "next_attempt_ms");
    if (cJSON_IsNumber(count) && count->valuedouble >= 1 && count->valuedouble < 1000 &&
        cJSON_IsNumber(next)) {
        jobs_lock();
        job *j = job_for_key(key);
        if (j && j->state == JOB_WRITING && j->writers == 0) {
            j->park_count = (int)count->valuedouble;
            j->next_attempt_ms = (int64_t)next->valuedouble;
        }
        jobs_unlock();
    }
    cJSON_Delete(rec);
    free(rel);
}

typedef struct dir_listing {
    char **names;
    unsigned char *types;
    size_t len, cap;
} dir_listing;

static void listing_free(dir_listing *dl)
{
    for (size_t i = 0; i < dl->len; i++)
        free(dl->names[i]);
    free(dl->names);
    free(dl->types);
}

static int listing_add(dir_listing *dl, const char *name, unsigned char type)
{
    if (dl->len == dl->cap) {
        size_t cap = dl->cap ? dl->cap * 2 : 64;
        char **n = realloc(dl->names, cap * sizeof *n);
        if (!n)
            return -1;
        dl->names = n;
        unsigned char *t = realloc(dl->types, cap);
        if (!t)
            return -1;
        dl->types = t;
        dl->cap = cap;
    }
    if (!(dl->names[dl->len] = strdup(name)))
        return -1;
    dl->types[dl->len++] = type;
    return 0;
}

/* Recovery runs in two passes over the tiers: first install what was staged before the
 * crash (RECOVER_INSTALL), then — after the leftover temps are gone, so no job that
 * starts now can lose its fresh staged files to that clean-up — resume the rest. */
enum recover_pass { RECOVER_INSTALL, RECOVER_RESUME };

static void recover_dir(const char *key_dir, enum recover_pass pass, int *count)
{
    char *rel = store_rel(key_dir, NULL);
    DIR *d = rel ? store_opendir(J.d.st, rel) : NULL;
    free(rel);
    if (!d)
        return;
    /* Read the whole directory first: prompts and the staged results of its jobs. */
    dir_listing entries = {0}, temps = {0};
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!strncmp(de->d_name, STORE_TEMP_PREFIX, strlen(STORE_TEMP_PREFIX)))
            listing_add(&temps, de->d_name, de->d_type);
        else if (de->d_name[0] != '.')   /* other dot files are scratch */
            listing_add(&entries, de->d_name, de->d_type);
    }
    closedir(d);
    for (size_t i = 0; i < entries.len; i++) {
        const char *nm = entries.names[i];
        char key[PATH_MAX];
        if (snprintf(key, sizeof key, "%s/%s", key_dir, nm) >= (int)sizeof key)
            continue;
        if (entries.types[i] == DT_DIR) {
            recover_dir(key, pass, count);
            continue;
        }
        if (name_result_kind(nm) >= 0)
            continue;
        char *out = store_rel(key, ".out"), *err = store_rel(key, ".err");
        int finished = out && err && (store_exists(J.d.st, out) || store_exists(J.d.st, err));
        free(out);
        free(err);
        if (finished)
            continue;
        if (pass == RECOVER_INSTALL) {
            int installed = recover_staged(key, temps.names, temps.len);
            *count += installed;
            if (!installed)
                recover_park(key);
            continue;
        }
        pending_wake *wakes = NULL;
        jobs_lock();
        job *j = job_for_key(key);
        if (j && j->state == JOB_WRITING && j->writers == 0) {
            start_job(j, &wakes);
            (*count)++;
        }
        jobs_unlock();
        deliver_wakes(wakes);
    }
    listing_free(&entries);
    listing_free(&temps);
}

void jobs_recover(void)
{
    rf_config *cfg = jobs_config();
    int resumed = 0, installed = 0;
    for (size_t i = 0; cfg && i < cfg->tiers_len; i++)
        recover_dir(cfg->tiers[i].name, RECOVER_INSTALL, &installed);
    /* what was not installed is stale: results of rewritten prompts, half-written temps */
    store_remove_temps(J.d.st, "tiers");
    for (size_t i = 0; cfg && i < cfg->tiers_len; i++)
        recover_dir(cfg->tiers[i].name, RECOVER_RESUME, &resumed);
    config_unref(cfg);
    if (installed)
        LOG_INFO("recovery: installed %d result(s) finished before the crash", installed);
    if (resumed)
        LOG_INFO("recovery: resumed %d unfinished job(s)", resumed);
}

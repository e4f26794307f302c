/* jobs_life.c — the prompt lifecycle as the job table sees it: writers opening and
 * closing a prompt, new content, a prompt installed, removed or renamed; what the mount
 * asks of unfinished jobs; resuming jobs at mount.  Part of the jobs module (jobs.h). */
#include "jobs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "log.h"
#include "openai.h"
#include "redact.h"

/* ---- the prompt lifecycle ---- */

void job_input_make(job_input *in, blob *content)
{
    in->content = blob_ref(content);
    in->params = NULL;
    in->nparams = content && content->len
                      ? openai_request_params(content->data, content->len, &in->params) : 0;
}

void job_input_clear(job_input *in)
{
    blob_unref(in->content);
    openai_free_names(in->params, in->nparams);
    memset(in, 0, sizeof *in);
}

/* New content for j: forget the previous version entirely. */
void job_take_content(job *j, int64_t gen, job_input *in, actions *acts)
{
    job_stop(j, acts);
    if (j->state == JOB_COMMITTING)
        job_set_state(j, JOB_WRITING);   /* its commit lands on the old generation only */
    job_clear_outcome(j);
    if (j->billed) {
        ledger_row_clear(&j->bill);
        j->billed = 0;
    }
    j->gen = gen;
    blob_unref(j->prompt);
    j->prompt = in->content;
    in->content = NULL;
    j->prompt_hash = j->prompt ? j->prompt->hash : 0;
    openai_free_names(j->params, j->nparams);
    j->params = in->params;
    j->nparams = in->nparams;
    in->params = NULL;
    in->nparams = 0;
    j->content_new = 1;
    free(j->refusal);
    j->refusal = NULL;
    j->stored_state = j->prompt && j->prompt->len ? PS_PENDING : PS_EMPTY;
    j->created_ms = now_wall_ms();
    j->seq = 0;
    config_unref(j->cfg);
    j->cfg = NULL;
    j->tier = NULL;
}

/* A job with new content and no writer left: start it (or, empty, let it go). */
void job_start(job *j, actions *acts)
{
    if (!j->prompt || !j->prompt->len) {
        waiters_collect(j, 0, &acts->wakes);   /* an empty prompt has no .out */
        note_changed(acts, j->key);
        table_remove(j);
        return;
    }
    j->content_new = 0;
    if (j->refusal) {
        char *why = j->refusal;
        j->refusal = NULL;
        job_fail(j, why, acts);
        free(why);
        return;
    }
    j->cfg = jobs_config();
    j->tier = j->cfg ? config_tier(j->cfg, j->tier_name) : NULL;
    if (!j->tier) {
        /* The tier left the config while the prompt was being written. */
        job_fail(j, "tier is not in the current config", acts);
        return;
    }
    if (j->park_count > 0 && j->next_attempt_ms > now_wall_ms()) {
        /* parked before a remount: wait for the same moment, counting from park_count */
        job_set_state(j, JOB_PARKED);
        LOG_INFO("%s: still parked after the remount, next attempt in %lld s", j->key,
                 (long long)((j->next_attempt_ms - now_wall_ms()) / 1000));
        arm_timer(j, (long)(j->next_attempt_ms - now_wall_ms()), acts);
        return;
    }
    enqueue(j, acts);
}

void jobs_writer_opened(const char *key, const prompt_row *row)
{
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    job *j = jobs_find(key);
    if (!j && (j = job_for_key(key))) {
        /* No job runs: this one exists while the writer works, so NAME.out waits. */
        j->gen = row->gen;
        j->stored_state = row->state;
        j->prompt_hash = row->hash;
    }
    if (j) {
        j->writers++;
        note_changed(&acts, key);
    }
    jobs_unlock();
    run_actions(&acts);
}

void jobs_content_changed(const char *key, int64_t gen, job_input *in)
{
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    job *j = job_for_key(key);
    if (j)
        job_take_content(j, gen, in, &acts);
    jobs_unlock();
    job_input_clear(in);
    run_actions(&acts);
}

int jobs_would_start_now(const char *key)
{
    jobs_lock();
    job *j = jobs_find(key);
    rf_config *cfg = j && j->writers == 1 && j->content_new ? jobs_config() : NULL;
    const rf_tier *t = cfg ? config_tier(cfg, j->tier_name) : NULL;
    int r = t && tier_would_start(j->tier_name, cfg, t);
    jobs_unlock();
    config_unref(cfg);
    return r;
}

void jobs_writer_closed(const char *key)
{
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    job *j = jobs_find(key);
    if (j && j->writers > 0 && --j->writers == 0 && j->state == JOB_WRITING) {
        if (j->content_new) {
            job_start(j, &acts);
        } else {
            /* The same content again, or nothing written: what the store has stands. */
            waiters_collect(j, j->stored_state == PS_DONE || j->stored_state == PS_FAILED
                                   ? j->gen : 0, &acts.wakes);
            note_changed(&acts, key);
            table_remove(j);
        }
    }
    jobs_unlock();
    run_actions(&acts);
}

void jobs_prompt_refused(const char *key, int64_t gen, job_input *in, const char *why)
{
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    job *j = job_for_key(key);
    if (j) {
        job_take_content(j, gen, in, &acts);
        free(j->refusal);
        j->refusal = strdup(why);
        if (j->writers == 0)
            job_start(j, &acts);
    }
    jobs_unlock();
    job_input_clear(in);
    run_actions(&acts);
}

void jobs_prompt_installed(const char *key, int64_t gen, job_input *in)
{
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    job *j = job_for_key(key);
    if (j) {
        job_take_content(j, gen, in, &acts);
        if (j->writers == 0)
            job_start(j, &acts);
        note_changed(&acts, key);
    }
    jobs_unlock();
    job_input_clear(in);
    run_actions(&acts);
}

void jobs_prompt_removed(const char *key, int64_t gen)
{
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    job *j = jobs_find(key);
    if (j && (gen <= 0 || j->gen == gen)) {
        job_stop(j, &acts);
        waiters_collect(j, 0, &acts.wakes);
        table_remove(j);
    }
    note_changed(&acts, key);
    jobs_unlock();
    run_actions(&acts);
}

void jobs_prompt_renamed(const char *from, const char *to)
{
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    job *j = jobs_find(from);
    if (j) {
        char *old_tier = strdup(j->tier_name);
        int same_tier = 0;
        if (job_rekey(j, to) == 0) {
            same_tier = old_tier && !strcmp(old_tier, j->tier_name);
        } else {
            /* out of memory: the job is lost from the table, its row is safe */
            LOG_ERROR("out of memory renaming %s", from);
            j->in_table = 0;
            job_stop(j, &acts);
            waiters_collect(j, 0, &acts.wakes);
            job_unref(j);
            j = NULL;
        }
        if (j && !same_tier && j->state != JOB_COMMITTING && j->state != JOB_WRITING) {
            /* Another tier, another route: start over there. */
            job_input in = {blob_ref(j->prompt), j->params, j->nparams};
            j->params = NULL;
            j->nparams = 0;
            job_take_content(j, j->gen, &in, &acts);
            job_input_clear(&in);
            if (j->writers == 0)
                job_start(j, &acts);
        }
        free(old_tier);
    }
    note_changed(&acts, from);
    note_changed(&acts, to);
    jobs_unlock();
    run_actions(&acts);
}

/* ---- the config ---- */

static int in_removed_tier(const job *j, const rf_config *cfg)
{
    return (j->state == JOB_QUEUED || j->state == JOB_RUNNING || j->state == JOB_PARKED) &&
           !config_tier(cfg, j->tier_name);
}

/* Its directory is gone, so nobody can wait for the answer or delete the prompt: stop
 * paying for it.  The cancelled attempt's report brings the bill (what streamed, as an
 * estimate); the prompt keeps a failed result that shows when the tier comes back.  All
 * are stopped before any fails, so that a failing job's freed slot does not start a
 * queued job of the same tier. */
void jobs_cancel_removed_tiers(const rf_config *cfg, actions *acts)
{
    if (!cfg || !jobs_table())
        return;
    size_t n = 0, k = 0;
    for (hmap_iter it = {0}; hmap_next(jobs_table(), &it);)
        n += in_removed_tier(it.value, cfg);
    if (n == 0)
        return;
    job **gone = calloc(n, sizeof *gone);
    for (hmap_iter it = {0}; hmap_next(jobs_table(), &it) && k < n;) {
        job *j = it.value;
        if (!in_removed_tier(j, cfg))
            continue;
        LOG_INFO("%s: its tier %s left the config: cancelled", j->key, j->tier_name);
        job_stop(j, acts);
        if (gone)
            gone[k++] = j;
        else   /* out of memory: one at a time (a queued job may start, then stop) */
            job_fail(j, "cancelled: its tier was removed from the config", acts);
    }
    for (size_t i = 0; i < k; i++)
        job_fail(gone[i], "cancelled: its tier was removed from the config", acts);
    free(gone);
}

/* ---- queries ---- */

int jobs_active(const char *key, job_state *state, int64_t *gen)
{
    jobs_lock();
    job *j = jobs_find(key);
    if (j && state)
        *state = j->state;
    if (j && gen)
        *gen = j->gen;
    jobs_unlock();
    return j != NULL;
}

char *jobs_meta(const char *key)
{
    jobs_lock();
    job *j = jobs_find(key);
    char *m = j ? job_meta_json(j, 1) : NULL;
    jobs_unlock();
    if (m)
        redact_inplace(m, strlen(m));
    return m;
}

live_buf *jobs_live(const char *key)
{
    jobs_lock();
    job *j = jobs_find(key);
    live_buf *lb = j && j->state == JOB_RUNNING ? live_ref(j->live) : NULL;
    jobs_unlock();
    return lb;
}

void jobs_tier_counts(const char *tier, int counts[JOB_FAILED + 1])
{
    memset(counts, 0, sizeof(int) * (JOB_FAILED + 1));
    jobs_lock();
    for (hmap_iter it = {0}; jobs_table() && hmap_next(jobs_table(), &it);) {
        job *j = it.value;
        if (!strcmp(j->tier_name, tier))
            counts[j->state]++;
    }
    jobs_unlock();
}

void jobs_streaming(long *tokens, int *running)
{
    *tokens = 0;
    *running = 0;
    jobs_lock();
    for (hmap_iter it = {0}; jobs_table() && hmap_next(jobs_table(), &it);) {
        job *j = it.value;
        if (j->state == JOB_RUNNING) {
            (*running)++;
            *tokens += live_tokens(j->live);
        }
    }
    jobs_unlock();
}

long jobs_resent_after_recovery(void)
{
    return jobs_resent_count(0);
}

/* ---- recovery ---- */

int jobs_resume(const char *key, const prompt_row *row, job_input *in, int resend_ok)
{
    actions acts = ACTIONS_INIT(acts);
    int started = 0;
    jobs_lock();
    job *j = jobs_find(key) ? NULL : job_for_key(key);
    if (j) {
        job_take_content(j, row->gen, in, &acts);
        j->created_ms = row->created_ms;
        if (row->state == PS_PARKED) {
            j->park_count = row->park_count;
            j->next_attempt_ms = row->next_attempt_ms;
        }
        if (row->sent && row->state == PS_PENDING && !resend_ok) {
            /* The crash caught its request in flight; the config says not to resend. */
            job_fail(j, "a request was in flight when routefs stopped; not sent again "
                        "(resend_in_flight is false): rewrite the prompt to retry", &acts);
        } else {
            if (row->sent && row->state == PS_PENDING) {
                j->resent = 1;
                jobs_resent_count(1);
            }
            job_start(j, &acts);
            started = 1;
        }
    }
    jobs_unlock();
    job_input_clear(in);
    run_actions(&acts);
    return started;
}


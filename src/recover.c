/* recover.c — resuming unfinished jobs at mount (part of the jobs module, jobs.h).
 *
 * Recovery is a query: the store's rows that are pending, parked, or still marked as
 * being written.  A prompt whose writer never closed it (a crash, a kill) is marked
 * incomplete and never runs until it is rewritten; pending ones are queued again (their
 * request may have been in flight: counted, and refused when resend_in_flight is false);
 * parked ones wait for the same next_attempt_at.  Prompts of tiers that are not in the
 * config wait for a mount whose config has them. */
#include "jobs_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct recovery {
    store *st;
    rf_config *cfg;
    long resumed, parked, incomplete, waiting, failed_reads, not_resent;
} recovery;

static long not_resent_total;   /* atomic: jobs_not_resent_after_recovery */

static int tier_known(const rf_config *cfg, const char *path)
{
    const char *slash = strchr(path, '/');
    if (!slash || !cfg)
        return 0;
    for (size_t i = 0; i < cfg->tiers_len; i++)
        if (strlen(cfg->tiers[i].name) == (size_t)(slash - path) &&
            !strncmp(cfg->tiers[i].name, path, (size_t)(slash - path)))
            return 1;
    return 0;
}

static int recover_row(const char *path, const prompt_row *row, void *ud)
{
    recovery *rc = ud;
    if (row->writing) {
        /* never closed: what is stored is not the prompt the writer meant */
        sp_set_state(rc->st, path, row->gen, PS_INCOMPLETE, 0, 0);
        sp_end_write(rc->st, path);
        rc->incomplete++;
        return 0;
    }
    if (row->state != PS_PENDING && row->state != PS_PARKED)
        return 0;
    if (!tier_known(rc->cfg, path)) {
        rc->waiting++;
        return 0;
    }
    char *data = NULL;
    size_t len = 0;
    rf_err err;
    rf_err_clear(&err);
    if (sp_read(rc->st, path, SP_DATA, row->gen, &data, &len, &err) < 0) {
        LOG_ERROR("recovery: %s: %s", path, err.msg[0] ? err.msg : "cannot read the prompt");
        rc->failed_reads++;
        return 0;
    }
    blob *b = blob_new(data, len);
    free(data);
    if (!b) {
        LOG_ERROR("recovery: %s: out of memory", path);
        rc->failed_reads++;
        return 0;
    }
    job_input in;
    job_input_make(&in, b);
    blob_unref(b);
    int resend_ok = !rc->cfg || rc->cfg->resend_in_flight;
    int in_flight = row->sent && row->state == PS_PENDING;
    if (row->state == PS_PARKED)
        rc->parked++;
    else if (!in_flight || resend_ok)
        rc->resumed++;
    if (!jobs_resume(path, row, &in, resend_ok) && in_flight && !resend_ok)
        rc->not_resent++;   /* failed instead, with a .err saying why */
    return 0;
}

long jobs_not_resent_after_recovery(void)
{
    return __atomic_load_n(&not_resent_total, __ATOMIC_RELAXED);
}

void jobs_recover(void)
{
    recovery rc = {.st = NULL};
    jobs_lock();
    store *st = jobs_store();
    jobs_unlock();
    rc.st = st;
    rc.cfg = jobs_config();
    rf_err err;
    rf_err_clear(&err);
    if (sp_unfinished(st, recover_row, &rc, &err) < 0)
        LOG_ERROR("recovery: %s", err.msg);
    config_unref(rc.cfg);
    long resent = jobs_resent_after_recovery();
    if (rc.resumed || rc.parked)
        LOG_INFO("recovery: resumed %ld unfinished job(s), %ld parked", rc.resumed, rc.parked);
    if (resent)
        LOG_WARN("recovery: %ld request(s) were in flight when routefs stopped and are sent "
                 "again; the provider may bill them twice", resent);
    __atomic_add_fetch(&not_resent_total, rc.not_resent, __ATOMIC_RELAXED);
    if (rc.not_resent)
        LOG_WARN("recovery: %ld request(s) were in flight when routefs stopped and are not "
                 "sent again (resend_in_flight is false): those jobs failed", rc.not_resent);
    if (rc.incomplete)
        LOG_WARN("recovery: %ld prompt(s) were never closed by their writer: marked "
                 "incomplete, not sent (rewrite them to run)", rc.incomplete);
    if (rc.waiting)
        LOG_INFO("recovery: %ld unfinished job(s) of tiers not in the config wait for them",
                 rc.waiting);
}

/* prompts_move.c — prompts that change their name or come from elsewhere: rename within
 * the mount (the same bytes arriving at a name keep its result), an editor's scratch file
 * renamed onto a prompt (vim, sed -i), a prompt renamed out to a scratch name, and rerun.
 * Part of the prompts module (prompts_int.h). */
#include "prompts_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "log.h"
#include "scratch.h"

static int same_content(const prompt_row *dst, uint64_t hash, size_t size)
{
    int settled = dst->state == PS_PENDING || dst->state == PS_PARKED ||
                  dst->state == PS_DONE || dst->state == PS_FAILED;
    return settled && !dst->writing && dst->hash == hash && dst->size == size;
}

int prompts_rename(const char *from, const char *to, int noreplace)
{
    if (strlen(prompts_base_name(to)) > PROMPT_NAME_MAX)
        return -ENAMETOOLONG;   /* its results could not be stored */
    rf_err err;
    prompts_lock_two(from, to);
    prompt_row src, dst;
    int r = sp_get(PS.st, from, &src, &err);
    int have_dst = r == 0 ? sp_get(PS.st, to, &dst, &err) == 0 : 0;
    if (r == 0 && have_dst && noreplace)
        r = -EEXIST;
    if (r == 0 && prompts_draft_find(to))
        r = -EBUSY;   /* the target is open for writing: its bytes are not settled */
    if (r == 0 && have_dst && !prompts_draft_find(from) && same_content(&dst, src.hash, src.size)) {
        /* The same prompt arrives again: the target keeps its job and result. */
        r = sp_delete(PS.st, from, &err);
        if (r == 0)
            jobs_prompt_removed(from, src.gen);
        prompts_unlock_two(from, to);
        return r;
    }
    if (r == 0)
        r = sp_rename(PS.st, from, to, &err);
    if (r == 0) {
        if (have_dst)
            jobs_prompt_removed(to, dst.gen);
        jobs_prompt_renamed(from, to);
        draft *d = prompts_draft_find(from);
        if (d) {
            /* a prompt being written moves with its writers, as on a disk */
            pthread_mutex_lock(&PS.drafts_lock);
            char *k = strdup(to);
            if (k && hmap_put(PS.drafts, to, d) == 0) {
                hmap_del(PS.drafts, from);
                free(d->key);
                d->key = k;
            } else {
                free(k);
                d->orphaned = 1;
            }
            pthread_mutex_unlock(&PS.drafts_lock);
        }
    }
    prompts_unlock_two(from, to);
    return r;
}

int prompts_install_scratch(const char *scratch_path, const char *key, int noreplace, int mode)
{
    if (strlen(prompts_base_name(key)) > PROMPT_NAME_MAX)
        return -ENAMETOOLONG;
    int r = store_admit(PS.st);
    if (r < 0)
        return r;
    struct stat sb;
    if ((r = scratch_stat(scratch_path, &sb)) < 0)
        return r;
    if (!S_ISREG(sb.st_mode))
        return S_ISDIR(sb.st_mode) ? -EISDIR : -EINVAL;
    char *data = NULL;
    size_t len = 0;
    rf_err err;
    rf_err_clear(&err);
    if (scratch_read_all(scratch_path, PROMPT_MAX, &data, &len, &err) < 0)
        return -err.code;
    uint64_t hash = blob_hash(data, len);
    prompt_attrs a = {.mode = (mode >= 0 ? (mode_t)mode : sb.st_mode) & 07777,
                      .uid = sb.st_uid, .gid = sb.st_gid,
                      .atime_ns = sb.st_atim.tv_sec * 1000000000LL + sb.st_atim.tv_nsec,
                      .mtime_ns = sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec,
                      .ctime_ns = prompts_now_ns()};
    prompts_lock_key(key);
    prompt_row dst;
    int have_dst = sp_get(PS.st, key, &dst, &err) == 0;
    if (have_dst && noreplace)
        r = -EEXIST;
    else if (prompts_draft_find(key))
        r = -EBUSY;
    else if (have_dst && same_content(&dst, hash, len)) {
        /* rsync, editors: the same bytes again keep the job and its result */
        r = sp_setattr(PS.st, key, SP_ATTR_MODE | SP_ATTR_UID | SP_ATTR_GID | SP_ATTR_MTIME, &a,
                       &err);
    } else {
        int64_t gen = store_next_generation(PS.st);
        r = sp_install(PS.st, key, data, len, hash, gen, len ? PS_PENDING : PS_EMPTY, &a, (prompts_now_ns() / 1000000),
                       &err);
        if (r == 0) {
            if (have_dst)
                jobs_prompt_removed(key, dst.gen);
            blob *b = blob_new(data, len);
            job_input in = {0};
            if (b)
                job_input_make(&in, b);
            blob_unref(b);
            jobs_prompt_installed(key, gen, &in);
        }
    }
    if (r == 0)
        scratch_unlink(scratch_path);
    prompts_unlock_key(key);
    free(data);
    return r;
}

/* The row and bytes of a prompt nobody is writing: -EBUSY while a writer has it open.
 * Stripe lock held; *data malloc'd for the caller. */
static int settled_read(const char *key, prompt_row *row, char **data, size_t *len,
                        rf_err *err)
{
    int r = sp_get(PS.st, key, row, err);
    if (r == 0 && prompts_draft_find(key))
        r = -EBUSY;
    if (r == 0)
        r = sp_read(PS.st, key, SP_DATA, 0, data, len, err);
    return r;
}

int prompts_to_scratch(const char *key, const char *scratch_path, int noreplace)
{
    if (noreplace && scratch_exists(scratch_path))
        return -EEXIST;
    rf_err err;
    prompts_lock_key(key);
    prompt_row row;
    char *data = NULL;
    size_t len = 0;
    int r = settled_read(key, &row, &data, &len, &err);
    if (r == 0 && scratch_write_atomic(scratch_path, data, len, &err) < 0)
        r = -err.code;
    if (r == 0) {
        scratch_chmod(scratch_path, row.attrs.mode & 07777);
        r = sp_delete(PS.st, key, &err);
        if (r == 0)
            jobs_prompt_removed(key, row.gen);
        else
            scratch_unlink(scratch_path);
    }
    prompts_unlock_key(key);
    free(data);
    return r;
}

int prompts_rerun(const char *key)
{
    int r = prompts_admit_writer(key);
    if (r < 0)
        return r;
    rf_err err;
    prompts_lock_key(key);
    prompt_row row;
    char *data = NULL;
    size_t len = 0;
    r = settled_read(key, &row, &data, &len, &err);
    int64_t gen = store_next_generation(PS.st);
    if (r == 0)
        r = sp_replace_content(PS.st, key, row.gen, data, len, row.hash, gen,
                               len ? PS_PENDING : PS_EMPTY, row.attrs.mtime_ns, (prompts_now_ns() / 1000000), &err);
    if (r == 0) {
        blob *b = blob_new(data, len);
        job_input in = {0};
        if (b)
            job_input_make(&in, b);
        blob_unref(b);
        jobs_prompt_removed(key, row.gen);
        jobs_prompt_installed(key, gen, &in);
    }
    prompts_unlock_key(key);
    free(data);
    return r;
}


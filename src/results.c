/* results.c — see results.h. */
#include "results.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "jobs.h"
#include "live.h"
#include "store_prompts.h"

typedef enum {
    RH_SNAPSHOT,     /* bytes taken at open (a finished result, an unfinished job's meta) */
    RH_PENDING,      /* NAME.out of an unfinished job: reads wait */
    RH_FAILED,       /* NAME.out of a failed job: reads say EIO */
    RH_LIVE          /* NAME.live: what has streamed so far */
} rh_kind;

struct result_handle {
    rh_kind kind;
    blob *data;      /* RH_SNAPSHOT (held) */
    live_buf *live;  /* RH_LIVE (held) */
    char *key;       /* RH_PENDING (owned) */
    int nonblock;
};

static store *R_st;

void results_init(store *st)
{
    R_st = st;
}

static void fill(struct stat *st, const prompt_attrs *a, off_t size, int64_t when_ms)
{
    memset(st, 0, sizeof *st);
    st->st_mode = S_IFREG | (a->mode & 0666);
    st->st_nlink = 1;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_size = size;
    st->st_blksize = 4096;
    st->st_blocks = (size + 511) / 512;
    struct timespec t;
    if (when_ms > 0)
        t = (struct timespec){when_ms / 1000, (when_ms % 1000) * 1000000};
    else
        t = (struct timespec){a->mtime_ns / 1000000000LL, a->mtime_ns % 1000000000LL};
    st->st_atim = st->st_mtim = st->st_ctim = t;
}

/* The meta an incomplete prompt shows: it was never closed, so it never ran. */
static char *incomplete_meta(const char *key)
{
    cJSON *o = cJSON_CreateObject();
    const char *name = strrchr(key, '/');
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "file", name ? name + 1 : key);
    cJSON_AddStringToObject(o, "state", "incomplete");
    cJSON_AddStringToObject(o, "error", "its writer never closed it (routefs stopped or the "
                                        "disk failed): not sent; rewrite it to run");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        return NULL;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) {
        free(text);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

/* A job committing its result is over for readers once the row holds that result: from
 * that moment listings show it (fs_dir.c reads the row), so a lookup must find it as it
 * will stay, not as a pending result of size 0 with the prompt's times (tar would copy
 * that). */
static int result_durable(const prompt_row *row, job_state state, int64_t gen)
{
    return state == JOB_COMMITTING && !row->writing && row->gen == gen &&
           (row->state == PS_DONE || row->state == PS_FAILED);
}

int results_stat(const char *key, int which, struct stat *st, int *live)
{
    *live = 0;
    /* The job table first, then the row: a job leaves the table only once its result is
     * in the store, so a row read after "no job" is never older than the result. */
    job_state state;
    int64_t gen = 0;
    int active = jobs_active(key, &state, &gen);
    prompt_row row;
    rf_err err;
    int r = sp_get(R_st, key, &row, &err);
    if (r < 0)
        return r;
    if (active && result_durable(&row, state, gen))
        active = 0;
    if (active) {
        *live = 1;
        off_t size = 0;
        if (which == NAME_ERR)
            return -ENOENT;   /* an unfinished job has no .err yet */
        if (which == NAME_LIVE) {
            live_buf *lb = jobs_live(key);
            if (!lb)
                return -ENOENT;
            size = (off_t)live_size(lb);
            live_unref(lb);
        } else if (which == NAME_META) {
            char *m = jobs_meta(key);
            if (!m)
                return -ENOENT;
            size = (off_t)strlen(m);
            free(m);
        }
        /* Times of the prompt: stable, and never newer than it (make compares them). */
        fill(st, &row.attrs, size, 0);
        return 0;
    }
    if (row.writing)
        return -ENOENT;   /* being rewritten, and its job not in memory (out of memory) */
    switch (which) {
    case NAME_OUT:
        if (row.state != PS_DONE && row.state != PS_FAILED)
            return -ENOENT;
        fill(st, &row.attrs, (off_t)(row.state == PS_DONE ? row.out_size : 0), row.finished_ms);
        return 0;
    case NAME_META:
        if (row.state == PS_INCOMPLETE) {
            char *m = incomplete_meta(key);
            if (!m)
                return -ENOMEM;
            fill(st, &row.attrs, (off_t)strlen(m), 0);
            free(m);
            return 0;
        }
        if (row.state != PS_DONE && row.state != PS_FAILED)
            return -ENOENT;
        fill(st, &row.attrs, (off_t)row.meta_size, row.finished_ms);
        return 0;
    case NAME_ERR:
        if (row.state != PS_FAILED)
            return -ENOENT;
        fill(st, &row.attrs, (off_t)row.err_size, row.finished_ms);
        return 0;
    default:
        return -ENOENT;   /* .live exists only while the job runs */
    }
}

static result_handle *handle_new(rh_kind kind)
{
    result_handle *h = calloc(1, sizeof *h);
    if (h)
        h->kind = kind;
    return h;
}

/* open_stored's decision, given the row and its blob of which (borrowed, or NULL). */
static int snapshot_of(const char *key, int which, const prompt_row *row, const char *data,
                       size_t len, result_handle **out)
{
    if (which == NAME_META && row->state == PS_INCOMPLETE) {
        char *m = incomplete_meta(key);
        result_handle *h = m ? handle_new(RH_SNAPSHOT) : NULL;
        if (h && !(h->data = blob_new(m, strlen(m)))) {
            free(h);
            h = NULL;
        }
        free(m);
        if (!h)
            return -ENOMEM;
        *out = h;
        return 0;
    }
    if (which == NAME_LIVE || (row->state != PS_DONE && row->state != PS_FAILED))
        return -ENOENT;
    if (which == NAME_OUT && row->state == PS_FAILED) {
        if (!(*out = handle_new(RH_FAILED)))
            return -ENOMEM;
        return 0;
    }
    if (which == NAME_ERR && row->state != PS_FAILED)
        return -ENOENT;
    if (!data)
        return -ENOENT;   /* (as a read of the blob said before) */
    result_handle *h = handle_new(RH_SNAPSHOT);
    if (h && !(h->data = blob_new(data, len))) {
        free(h);
        h = NULL;
    }
    if (!h)
        return -ENOMEM;
    *out = h;
    return 0;
}

/* A snapshot of a finished result, from one read of its row and blob. */
static int open_stored(const char *key, int which, result_handle **out)
{
    static const enum sp_blob blob_of[] = {SP_OUT, SP_META, SP_ERR};
    prompt_row row;
    rf_err err;
    char *data = NULL;   /* the row's blob of which, read with it (owned) */
    size_t len = 0;
    int r = which == NAME_LIVE ? sp_get(R_st, key, &row, &err)
                               : sp_get_with(R_st, key, blob_of[which], &row, &data, &len, &err);
    if (r < 0)
        return r;
    r = snapshot_of(key, which, &row, data, len, out);
    free(data);
    return r;
}

int results_open(const char *key, int which, int flags, result_handle **out)
{
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
        return -EACCES;   /* results are written by routefs only */
    job_state state;
    int64_t gen = 0;
    if (!jobs_active(key, &state, &gen))
        return open_stored(key, which, out);
    if (state == JOB_COMMITTING) {
        prompt_row row;
        rf_err err;
        if (sp_get(R_st, key, &row, &err) == 0 && result_durable(&row, state, gen))
            return open_stored(key, which, out);   /* as its stat and the listing say */
    }
    result_handle *h = NULL;
    switch (which) {
    case NAME_ERR:
        return -ENOENT;
    case NAME_OUT:
        if (!(h = handle_new(RH_PENDING)) || !(h->key = strdup(key))) {
            free(h);
            return -ENOMEM;
        }
        h->nonblock = (flags & O_NONBLOCK) != 0;
        break;
    case NAME_META: {
        char *m = jobs_meta(key);
        if (!m)
            return open_stored(key, which, out);   /* it ended just now */
        if ((h = handle_new(RH_SNAPSHOT)) && !(h->data = blob_new(m, strlen(m)))) {
            free(h);
            h = NULL;
        }
        free(m);
        if (!h)
            return -ENOMEM;
        break;
    }
    default: {
        live_buf *lb = jobs_live(key);
        if (!lb)
            return -ENOENT;
        if (!(h = handle_new(RH_LIVE))) {
            live_unref(lb);
            return -ENOMEM;
        }
        h->live = lb;
    }
    }
    *out = h;
    return 0;
}

int results_direct_io(const result_handle *h)
{
    return h->kind != RH_SNAPSHOT || !h->data;
}

static void reply_bytes(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
    if (off < 0 || (size_t)off >= len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t n = len - (size_t)off < size ? len - (size_t)off : size;
    fuse_reply_buf(req, data + off, n);
}

void results_wake_reader(void *req, const char *key, int64_t gen, off_t off, size_t size,
                         int shutting_down)
{
    if (shutting_down) {
        fuse_reply_err((fuse_req_t)req, EINTR);
        return;
    }
    char *data = NULL;
    size_t len = 0;
    rf_err err;
    if (gen <= 0 || sp_read(R_st, key, SP_OUT, gen, &data, &len, &err) < 0) {
        /* failed (NAME.err says why), or the prompt was removed while we waited */
        fuse_reply_err((fuse_req_t)req, EIO);
        return;
    }
    reply_bytes((fuse_req_t)req, data, len, size, off);
    free(data);
}

static void on_read_interrupted(fuse_req_t req, void *data)
{
    if (jobs_wait_interrupt(req))
        fuse_reply_err(req, EINTR);
}

/* NAME.out of a job that may still be running: wait for it, or read it now. */
static void read_pending(fuse_req_t req, result_handle *h, size_t size, off_t off)
{
    int64_t gen = 0;
    if (jobs_active(h->key, NULL, NULL)) {
        if (h->nonblock) {
            fuse_reply_err(req, EAGAIN);
            return;
        }
        if (jobs_wait_begin(h->key, req, off, size)) {
            fuse_req_interrupt_func(req, on_read_interrupted, NULL);
            switch (jobs_wait_arm(req)) {
            case JOBS_WAIT_ARMED:
                return;   /* answered when the job ends, or by the interrupt */
            case JOBS_WAIT_INTERRUPTED:
                fuse_reply_err(req, EINTR);
                return;
            default:
                break;    /* ended meanwhile: read it now */
            }
        }
    }
    prompt_row row;
    rf_err err;
    if (sp_get(R_st, h->key, &row, &err) == 0 && row.state == PS_DONE && !row.writing)
        gen = row.gen;
    results_wake_reader(req, h->key, gen, off, size, 0);
}

void results_read(fuse_req_t req, result_handle *h, size_t size, off_t off)
{
    switch (h->kind) {
    case RH_SNAPSHOT: {
        /* Held for the reply: the kernel may hand the bytes to the reader, which closes the
         * file, and a release on another thread frees h before fuse_reply_buf returns. */
        blob *b = blob_ref(h->data);
        reply_bytes(req, b ? b->data : "", b ? b->len : 0, size, off);
        blob_unref(b);
        return;
    }
    case RH_FAILED:
        fuse_reply_err(req, EIO);
        return;
    case RH_PENDING:
        read_pending(req, h, size, off);
        return;
    case RH_LIVE: {
        char *buf = malloc(size ? size : 1);
        if (!buf) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        size_t n = live_read(h->live, off, buf, size);
        fuse_reply_buf(req, buf, n);
        free(buf);
        return;
    }
    }
}

void results_release(result_handle *h)
{
    if (!h)
        return;
    blob_unref(h->data);
    live_unref(h->live);
    free(h->key);
    free(h);
}

/* ---- extended attributes ---- */

static const char *const xattr_fields[] = {"provider", "model", "endpoint"};

long results_xattr(const char *key, const char *name, char *buf, size_t size)
{
    const char *field = NULL;
    if (!strncmp(name, "user.routefs.", 13))
        for (size_t i = 0; i < 3; i++)
            if (!strcmp(name + 13, xattr_fields[i]))
                field = xattr_fields[i];
    if (!field || jobs_active(key, NULL, NULL))
        return -ENODATA;
    char *data = NULL;
    size_t len = 0;
    rf_err err;
    if (sp_read(R_st, key, SP_META, 0, &data, &len, &err) < 0)
        return -ENODATA;
    cJSON *doc = cJSON_Parse(data);
    free(data);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, field);
    long r;
    if (!cJSON_IsString(v)) {
        r = -ENODATA;
    } else {
        size_t vlen = strlen(v->valuestring);
        if (size == 0)
            r = (long)vlen;
        else if (size < vlen)
            r = -ERANGE;
        else {
            memcpy(buf, v->valuestring, vlen);
            r = (long)vlen;
        }
    }
    cJSON_Delete(doc);
    return r;
}

long results_xattr_list(const char *key, char *buf, size_t size)
{
    char names[128];
    size_t len = 0;
    prompt_row row;
    rf_err err;
    if (!jobs_active(key, NULL, NULL) && sp_get(R_st, key, &row, &err) == 0 &&
        row.state == PS_DONE)
        for (size_t i = 0; i < 3; i++)
            len += (size_t)snprintf(names + len, sizeof names - len, "user.routefs.%s",
                                    xattr_fields[i]) + 1;
    if (size == 0)
        return (long)len;
    if (size < len)
        return -ERANGE;
    memcpy(buf, names, len);
    return (long)len;
}

/* store_prompts.h — prompts, their results and tag directories as rows of the state
 * store (store.h).
 *
 * A prompt's path is its path inside the mount, "tier/tag.../name"; its dir is the path
 * of the directory holding it ("tier" or "tier/tag...").  A row holds the prompt's bytes
 * and attributes, its job's state and generation (a new generation for every new content),
 * the park schedule, and — once the job has ended — its results.  `writing` is set while
 * a writer has the prompt open: a prompt whose writer never closed it (a crash) is found
 * that way and never runs.
 *
 * Writes that must report an error to a shell are synchronous (-errno with err); the
 * others are submitted and held while the store fails (STORE_OP_HELD), so they are never
 * lost.  Writes that change a job are conditional on its generation: an operation meant
 * for an older version of a prompt changes nothing. */
#ifndef RF_STORE_PROMPTS_H
#define RF_STORE_PROMPTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "blob.h"
#include "store.h"

/* The state of a prompt's job as kept in the store. */
typedef enum {
    PS_PENDING = 0,     /* to be sent (queued or running in this mount) */
    PS_PARKED = 1,      /* every hop failed; retried at next_attempt_ms */
    PS_INCOMPLETE = 2,  /* its writer never closed it: never sent */
    PS_DONE = 3,
    PS_FAILED = 4,
    PS_EMPTY = 5        /* an empty prompt: no job */
} prompt_state;

const char *prompt_state_name(prompt_state s);

typedef struct prompt_attrs {
    mode_t mode;        /* permission bits only */
    uid_t uid;
    gid_t gid;
    int64_t atime_ns, mtime_ns, ctime_ns;
} prompt_attrs;

typedef struct prompt_row {
    int64_t id;         /* listing order */
    int64_t gen;
    prompt_state state;
    int writing;
    size_t size;
    uint64_t hash;
    prompt_attrs attrs;
    int64_t created_ms, finished_ms;
    int park_count;
    int64_t next_attempt_ms;
    int sent;           /* a request of this generation may have left before a crash */
    size_t out_size, meta_size, err_size;   /* results; 0 when none */
} prompt_row;

/* ---- reads (any thread) ---- */

/* 0 with *row, -ENOENT, or -errno with err. */
int sp_get(store *st, const char *path, prompt_row *row, rf_err *err);

enum sp_blob { SP_DATA, SP_OUT, SP_META, SP_ERR };
/* The row and one of its blobs from one read: 0 with *row and *data (malloc'd and
 * NUL-terminated, or NULL when the row has none), -ENOENT, or -errno with err. */
int sp_get_with(store *st, const char *path, enum sp_blob which, prompt_row *row, char **data,
                size_t *len, rf_err *err);
/* A blob of the row (the prompt's bytes, .out, the meta JSON, .err), malloc'd and
 * NUL-terminated; gen > 0 requires that generation (-ENOENT otherwise). */
int sp_read(store *st, const char *path, enum sp_blob which, int64_t gen, char **data,
            size_t *len, rf_err *err);

/* One listed prompt. */
typedef struct sp_entry {
    int64_t id;
    const char *name;   /* borrowed for the callback */
    prompt_state state;
    int writing;
} sp_entry;
/* The prompts of dir with id > after_id, in id order, at most max: fn is called for each
 * (return nonzero to stop).  Returns the number listed, or -errno. */
int sp_list(store *st, const char *dir, int64_t after_id, int max,
            int (*fn)(const sp_entry *e, void *ud), void *ud, rf_err *err);

/* Rows recovery must look at (pending, parked, incomplete, or open for writing). */
int sp_unfinished(store *st, int (*fn)(const char *path, const prompt_row *row, void *ud),
                  void *ud, rf_err *err);
/* How many prompts are in state s (status). */
long sp_count(store *st, prompt_state s);

/* ---- tag directories ---- */

typedef struct dir_row {
    prompt_attrs attrs;
} dir_row;

int sp_dir_get(store *st, const char *path, dir_row *row, rf_err *err);
/* The subdirectories of parent (their names), fn as for sp_list. */
int sp_dir_list(store *st, const char *parent, int (*fn)(const char *name, void *ud),
                void *ud, rf_err *err);
/* 1 when path holds prompts or directories, 0 when empty, -errno. */
int sp_dir_nonempty(store *st, const char *path, rf_err *err);

int sp_mkdir(store *st, const char *path, const prompt_attrs *a, rf_err *err);
int sp_rmdir(store *st, const char *path, rf_err *err);

/* ---- prompt writes ---- */

/* A writer opened path: create the row (empty, PS_EMPTY, generation gen, attrs a) or mark
 * the existing one as being written.  Fills *row with what the store holds now. */
int sp_begin_write(store *st, const char *path, int64_t gen, const prompt_attrs *a,
                   int64_t now_ms, prompt_row *row, rf_err *err);
/* The same for a path the caller has just seen has no row (under its key lock): the row
 * it gets is known, so the insert is queued, not waited for (held while the store fails;
 * the content written at close is queued after it).  0 with *row, or -ENOMEM. */
int sp_begin_new(store *st, const char *path, int64_t gen, const prompt_attrs *a,
                 int64_t now_ms, prompt_row *row);
/* New content for path (expected generation old_gen): the bytes, their hash, the new
 * generation and state (PS_PENDING, or PS_EMPTY for no bytes); results are dropped.
 * -ENOENT when the row is gone or holds another generation. */
int sp_replace_content(store *st, const char *path, int64_t old_gen, const void *data,
                       size_t len, uint64_t hash, int64_t new_gen, prompt_state state,
                       int64_t mtime_ns, int64_t now_ms, rf_err *err);
/* The same, queued: the caller goes on (a close does not wait for the disk); and a touch,
 * the same bytes written again (only the times change).  Held while the store fails;
 * reads of path wait for them (store_settle).  The content op keeps a reference to data.
 * then (may be NULL: failures but -ENOENT are logged) is called on the writer thread once it is
 * stored (0) or failed (-errno; -ENOENT: the row is gone or holds another generation),
 * with path, new_gen and data (a touch: 0 and NULL).  0, or -ENOMEM with nothing
 * queued. */
typedef void (*sp_queued_fn)(const char *path, int64_t gen, blob *data, int status,
                             const rf_err *err);
int sp_queue_content(store *st, const char *path, int64_t old_gen, blob *data, int64_t new_gen,
                     prompt_state state, int64_t mtime_ns, int64_t now_ms, sp_queued_fn then);
int sp_queue_touch(store *st, const char *path, int64_t mtime_ns, sp_queued_fn then);
/* The last writer closed path (held, asynchronous). */
void sp_end_write(store *st, const char *path);
/* The same, and then(path, gen, NULL, status, err) once it is stored (gen: the caller's,
 * given back): 0, or -ENOMEM with nothing queued and then not called.  urgent: then
 * starts a job at once (jobs_would_start_now), so the store commits without gathering. */
int sp_end_write_then(store *st, const char *path, int64_t gen, int urgent,
                      sp_queued_fn then);
/* chmod / chown / utimens: only the fields set in mask (SP_ATTR_*) change. */
enum { SP_ATTR_MODE = 1, SP_ATTR_UID = 2, SP_ATTR_GID = 4, SP_ATTR_ATIME = 8,
       SP_ATTR_MTIME = 16 };
int sp_setattr(store *st, const char *path, unsigned mask, const prompt_attrs *a, rf_err *err);
/* Remove the prompt and its results. */
int sp_delete(store *st, const char *path, rf_err *err);
/* Move the prompt (and its results) from one path to another, replacing what is there. */
int sp_rename(store *st, const char *from, const char *to, rf_err *err);
/* Insert or replace a whole prompt (a file renamed into a tier from scratch space). */
int sp_install(store *st, const char *path, const void *data, size_t len, uint64_t hash,
               int64_t gen, prompt_state state, const prompt_attrs *a, int64_t now_ms,
               rf_err *err);

/* ---- job state (held, asynchronous; conditional on the generation) ---- */

void sp_set_state(store *st, const char *path, int64_t gen, prompt_state state,
                  int park_count, int64_t next_attempt_ms);
/* A request of this generation is about to leave (counted as re-sent after a crash). */
void sp_mark_sent(store *st, const char *path, int64_t gen);

/* ---- enrichment (store_meta.c; synchronous, conditional on the generation) ---- */

/* Set member key of the meta of the job with generation gen to json_object (the text of
 * a JSON object) and "enriched": true, and write the meta back pretty-printed, as the
 * job's commit wrote it.  1 when merged, 0 when no row has that generation or its job has
 * no meta yet (nothing to do), -EINVAL when json_object is not an object, -errno with err
 * on a store failure. */
int sp_meta_merge(store *st, int64_t gen, const char *key, const char *json_object,
                  rf_err *err);

#endif

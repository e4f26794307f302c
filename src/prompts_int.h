/* prompts_int.h — what prompts.c shares with prompts_move.c (rename, scratch files coming
 * and going, rerun), prompts_dirs.c (tag directories) and prompts_trash.c (prompts deleted
 * a moment ago); not for other modules, which see prompts.h.
 *
 * Lock order (prompts.c's comment has the whole of it): a key's stripe (two at once in
 * stripe order: prompts_lock_two), then drafts_lock, then whatever jobs.c takes. */
#ifndef RF_PROMPTS_INT_H
#define RF_PROMPTS_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "blob.h"
#include "budget.h"
#include "hmap.h"
#include "prompts.h"
#include "store_prompts.h"

#define STRIPES 256

typedef struct draft {
    char *key;                 /* owned; the prompt's current path */
    int refs;                  /* handles on it */
    int writers;               /* write handles */
    char *data;                /* owned: the bytes as written so far */
    size_t len, cap;
    int dirty;                 /* changed since the last flush decided */
    int too_large;             /* a write went past PROMPT_MAX */
    int force_new;             /* the stored prompt is incomplete: same bytes still run */
    int orphaned;              /* the prompt was deleted while open: nothing is stored */
    int mtime_set;             /* utimens set attrs.mtime_ns after the last write (cp -p,
                                  tar): the close keeps it rather than "now" */
    int revived;               /* created where a prompt was deleted a moment ago: its row is
                                  back (prompts_trash.c) ... */
    int64_t revived_mtime_ns;  /* ... and the same answer stands only for the same bytes
                                  with this modification time set again (tar -x) */
    int64_t gen;               /* the store's generation for key */
    uint64_t stored_hash;
    size_t stored_size;
    prompt_state stored_state;
    prompt_attrs attrs;
} draft;

typedef struct prompts_state {
    store *st;
    budget *budget;
    pthread_mutex_t stripes[STRIPES];
    pthread_mutex_t drafts_lock;
    hmap *drafts;              /* key -> draft */
    hmap *closed;              /* key -> closed_attrs (prompts.c), drafts_lock */
} prompts_state;

extern prompts_state PS;   /* the module's state (prompts.c) */

int64_t prompts_now_ns(void);
void prompts_lock_key(const char *key);
void prompts_unlock_key(const char *key);
void prompts_lock_two(const char *a, const char *b);     /* in stripe order */
void prompts_unlock_two(const char *a, const char *b);
draft *prompts_draft_find(const char *key);              /* drafts_lock inside */
const char *prompts_base_name(const char *key);          /* after the last '/' */
/* May a writer create or replace the prompt key now?  0, or -errno (ENAMETOOLONG, the
 * store's refusal, EDQUOT when a cap is used up). */
int prompts_admit_writer(const char *key);

/* The state store prompts_init was given (borrowed). */
store *prompts_store(void);

/* A struct stat for a prompt (S_IFREG) or a tag directory (S_IFDIR) from its attributes. */
void prompts_fill_stat(struct stat *st, mode_t type, const prompt_attrs *a, off_t size);

/* ---- prompts deleted a moment ago (prompts_trash.c) ----
 *
 * `tar -x` deletes each file it is about to extract, then creates it again with the same
 * bytes and sets the archive's modification time before closing it.  So that this costs
 * nothing, a deleted prompt whose job had ended is kept aside (its row, with its results,
 * moved under TRASH_DIR, which is never a tier and so never shown) for TRASH_KEEP_MS.  A
 * prompt created at that path in that time takes the row back, as if it were being
 * rewritten; whether the same answer stands is decided when it is closed (prompts.c:
 * the same bytes and the old modification time set explicitly, as tar and cp -p do).
 * Called under the prompt's stripe lock; thread-safe. */
#define TRASH_DIR ".unlinked"
#define TRASH_KEEP_MS 5000

/* Drop what a previous mount left aside (at mount), or everything (at unmount). */
void trash_init(store *st);
void trash_shutdown(void);
/* Delete the prompt at key (row: what the store holds for it): kept aside when its job had
 * ended, else removed.  0 or -errno, as sp_delete. */
int trash_delete(const char *key, const prompt_row *row);
/* A prompt is being created at key, where none is: take back the row deleted a moment ago.
 * 1 = taken back (*old_mtime_ns: its modification time), 0 = none, -errno. */
int trash_revive(const char *key, int64_t *old_mtime_ns);

#endif

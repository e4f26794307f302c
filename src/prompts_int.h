/* prompts_int.h — what prompts.c shares with prompts_move.c (rename, scratch files coming
 * and going, rerun); not for other modules.
 *
 * Lock order (prompts.c's comment has the whole of it): a key's stripe (two at once in
 * stripe order: prompts_lock_two), then drafts_lock, then whatever jobs.c takes. */
#ifndef RF_PROMPTS_INT_H
#define RF_PROMPTS_INT_H

#include <pthread.h>
#include <stdint.h>

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

#endif

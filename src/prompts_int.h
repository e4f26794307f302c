/* prompts_int.h — what prompts.c shares with prompts_dirs.c (tag directories) and
 * prompts_trash.c (prompts deleted a moment ago).  Not a public API: see prompts.h. */
#ifndef RF_PROMPTS_INT_H
#define RF_PROMPTS_INT_H

#include <stdint.h>
#include <sys/stat.h>

#include "store.h"
#include "store_prompts.h"

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

/* commit.h — durable group commit of finished jobs' files.
 *
 * fsync per result would serialise a batch on the disk; instead one thread takes every
 * finished job waiting, writes their files to temp names, makes them durable with one
 * syncfs, installs them (rename) and syncs again, then reports each job done.  Under load
 * a thousand results cost a handful of syncs.
 *
 * The install step runs through a caller hook so the caller can take its own lock and
 * skip a job that was rewritten or removed while its files were being written. */
#ifndef RF_COMMIT_H
#define RF_COMMIT_H

#include <stddef.h>
#include "err.h"
#include "store.h"

#define COMMIT_MAX_FILES 3

typedef struct commit_item commit_item;

struct commit_item {
    struct {
        char *rel;           /* owned: target path in the store */
        char *stage;         /* owned or NULL: the temp name commit_item_stage writes */
        char *data;          /* owned */
        size_t len;
        char *temp;          /* owned: where the data is on disk once written (staged, or
                              * by the commit thread); NULL until then */
    } files[COMMIT_MAX_FILES];
    size_t nfiles;
    char *remove[COMMIT_MAX_FILES];  /* owned: paths to unlink when installing (stale results) */
    size_t nremove;
    char *append_rel;        /* owned or NULL: a file to append append_data to after install */
    char *append_data;       /* owned */
    /* Hook, on the commit thread, after the temps are durable.  Must call
     * commit_install_files(item) (under whatever lock the caller needs) to put the files
     * in place, or not call it to drop them.  Returns 1 when installed. */
    int (*install)(commit_item *item, void *ud);
    /* Hook, on the commit thread, once installed files are durable (ok = 1) or when
     * writing failed (ok = 0, err set).  The item is freed after it returns. */
    void (*done)(commit_item *item, int ok, const rf_err *err, void *ud);
    void *ud;
    int failed;              /* internal */
    rf_err err;              /* internal */
    commit_item *next;       /* internal */
};

typedef struct committer committer;

committer *commit_start(store *st, rf_err *err);
/* Finish everything queued, then stop the thread. */
void commit_stop(committer *c);

/* Queue an item (takes ownership).  Never blocks on the disk. */
void commit_submit(committer *c, commit_item *item);

/* Allocate an empty item; NULL on allocation failure. */
commit_item *commit_item_new(void);
/* Add a file (copies rel, takes ownership of data).  -1 when full or out of memory. */
int commit_item_add(commit_item *item, const char *rel, char *data, size_t len);
int commit_item_remove(commit_item *item, const char *rel);
/* Add a file to be staged under stage_rel by commit_item_stage (copies both names, takes
 * ownership of data).  -1 when full or out of memory. */
int commit_item_add_staged(commit_item *item, const char *rel, const char *stage_rel,
                           char *data, size_t len);
/* Write the item's staged files now, in the caller's thread (no fsync, no lock needed), so
 * that they are on disk before anything else happens: recovery can install a staged result
 * whose request was paid for but whose commit never ran.  A file that cannot be written
 * is left to the commit thread, under a temp name of its own (logged). */
void commit_item_stage(store *st, commit_item *item);
void commit_item_free(commit_item *item);

/* For the install hook: rename the item's temps into place and unlink its stale paths. */
void commit_install_files(committer *c, commit_item *item);

#endif

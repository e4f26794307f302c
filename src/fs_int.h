/* fs_int.h — what fs.c and fs_file.c share (not a public API). */
#ifndef RF_FS_INT_H
#define RF_FS_INT_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <sys/types.h>

#include "events.h"
#include "liveconf.h"
#include "paths.h"
#include "prompts.h"
#include "results.h"
#include "store.h"

typedef enum {
    H_PROMPT, H_RESULT, H_VFILE, H_ACTIVITY, H_EVENTS, H_CONFIG_EDIT, H_SCRATCH
} handle_kind;

/* Every open handle is on one list, so that the ones the kernel never releases (a lazy
 * unmount with files still open) are freed at the end. */
typedef struct handle {
    struct handle *prev, *next;
    handle_kind kind;
    prompt_handle *prompt;     /* H_PROMPT */
    result_handle *result;     /* H_RESULT */
    int fd;                    /* H_SCRATCH */
    char *data;                /* H_VFILE: a rendered snapshot (owned) */
    size_t len;
    liveconf_edit *edit;       /* H_CONFIG_EDIT */
    events_reader *events;     /* H_EVENTS */
} handle;

handle *handle_of(struct fuse_file_info *fi);
void fs_handles_free_all(void);
void fs_file_init(store *st);

int fs_open_for_writing(int flags);
void fs_reply_entry(fuse_req_t req, const char *path, const pathinfo *pi, const struct stat *st);
/* The path of parent's child name, classified. */
int fs_child_of(fuse_ino_t parent, const char *name, char *path, size_t len, pathinfo *pi);
/* The uid and gid of the process behind req. */
void fs_creds(fuse_req_t req, uid_t *uid, gid_t *gid);

void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                  struct fuse_file_info *fi);
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                struct fuse_file_info *fi);
void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                 struct fuse_file_info *fi);
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif

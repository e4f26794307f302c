/* prompts.h — prompt files: what a shell does to a prompt, done on the state store and
 * the job table together.
 *
 * Each operation on a prompt is one call here, serialised with every other operation on
 * the same prompt by a stripe lock (so an unlink, a rename and a writer's close of one
 * prompt never interleave), doing its store I/O first and then telling the job table
 * (jobs.h) — never holding the jobs lock across I/O.
 *
 * While a prompt is open for writing its bytes live in memory (a draft shared by every
 * handle that writes it); the store only marks it as being written.  Each close()
 * (FUSE flush) decides: the same bytes as the prompt's current job keep that job and its
 * result (rsync, tar, cp -p, editors saving unchanged files cost nothing); new bytes get
 * a new generation, are stored, and become a job when the last writer is gone.  A write
 * error (the store failing) is returned from write() or close(), where a shell sees it.
 *
 * Every function returns 0 / a count, or -errno. */
#ifndef RF_PROMPTS_H
#define RF_PROMPTS_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "budget.h"
#include "store.h"
#include "store_prompts.h"

#define PROMPT_MAX (1024 * 1024)   /* a prompt larger than this is refused (EFBIG) */
/* The longest prompt name whose results (NAME.meta, NAME.live) still fit NAME_MAX. */
#define PROMPT_NAME_MAX (255 - 5)

typedef struct prompt_handle prompt_handle;

void prompts_init(store *st, budget *b);
/* Free the drafts a lazy unmount left behind (their handles are freed by fs.c first). */
void prompts_shutdown(void);

/* Open key.  Writing (O_WRONLY/O_RDWR or O_TRUNC) is admitted only when the store works
 * (ENOSPC/EIO/EROFS), the caps allow (EDQUOT) and the name's results fit (ENAMETOOLONG);
 * create makes the prompt if it is absent (mode, uid, gid of the creator); without it, an
 * absent prompt is ENOENT. */
int prompts_open(const char *key, int flags, int create, mode_t mode, uid_t uid, gid_t gid,
                 prompt_handle **out);
long prompts_read(prompt_handle *h, char *buf, size_t size, off_t off);
long prompts_write(prompt_handle *h, const char *buf, size_t size, off_t off);
int prompts_ftruncate(prompt_handle *h, off_t size);
/* close(): decide what was written (new content or not) and queue it for the store; it
 * does not wait for the disk (reads of the name do, until it is stored). */
int prompts_flush(prompt_handle *h);
/* fsync(): the same, and wait until it is on the disk: 0, or -ENOSPC / -EIO / -EROFS
 * while the store is failing (the bytes are held and stored when it works again). */
int prompts_fsync(prompt_handle *h);
/* The handle goes; once the last writer's close is stored, the job starts. */
void prompts_release(prompt_handle *h);
int prompts_handle_writes(const prompt_handle *h);

/* Attributes: from the draft while it is being written, else from the store. */
int prompts_stat(const char *key, struct stat *st);
/* chmod / chown / utimens (SP_ATTR_* in mask), and truncate(2) without a handle. */
int prompts_setattr(const char *key, unsigned mask, const prompt_attrs *a);
int prompts_truncate(const char *key, off_t size, uid_t uid, gid_t gid);
int prompts_unlink(const char *key);
/* prompt -> prompt (replacing what is there unless noreplace: EEXIST). */
int prompts_rename(const char *from, const char *to, int noreplace);
/* A scratch file (rsync's temp file, an editor's) renamed onto a prompt name.  mode: the
 * permission bits last asked for it (chmod), which the disk keeps only for the owner;
 * -1 = the file's own. */
int prompts_install_scratch(const char *scratch_path, const char *key, int noreplace, int mode);
/* A prompt renamed to a scratch name (an editor's backup). */
int prompts_to_scratch(const char *key, const char *scratch_path, int noreplace);
/* Run the prompt again although its content has not changed (user.routefs.rerun). */
int prompts_rerun(const char *key);

/* Tag directories inside tiers. */
int prompts_mkdir(const char *path, mode_t mode, uid_t uid, gid_t gid);
int prompts_rmdir(const char *path);
int prompts_dir_stat(const char *path, struct stat *st);

#endif

/* prompts_dirs.c — tag directories inside tiers (see prompts.h), and the attributes of
 * prompts and directories as a struct stat. */
#include "prompts_int.h"

#include <errno.h>
#include <string.h>

#include "scratch.h"

void prompts_fill_stat(struct stat *st, mode_t type, const prompt_attrs *a, off_t size)
{
    memset(st, 0, sizeof *st);
    st->st_mode = type | (a->mode & 07777);
    st->st_nlink = S_ISDIR(type) ? 2 : 1;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_size = size;
    st->st_blksize = 4096;
    st->st_blocks = (size + 511) / 512;
    st->st_atim = (struct timespec){a->atime_ns / 1000000000LL, a->atime_ns % 1000000000LL};
    st->st_mtim = (struct timespec){a->mtime_ns / 1000000000LL, a->mtime_ns % 1000000000LL};
    st->st_ctim = (struct timespec){a->ctime_ns / 1000000000LL, a->ctime_ns % 1000000000LL};
}

int prompts_mkdir(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
    int r = store_admit(prompts_store());
    if (r < 0)
        return r;
    rf_err err;
    prompt_row row;
    prompts_lock_key(path);
    r = sp_get(PS.st, path, &row, &err);
    prompts_unlock_key(path);
    if (r == 0)
        return -EEXIST;   /* a prompt has that name */
    int64_t t = prompts_now_ns();
    prompt_attrs a = {.mode = mode & 07777, .uid = uid, .gid = gid, .atime_ns = t,
                      .mtime_ns = t, .ctime_ns = t};
    return sp_mkdir(prompts_store(), path, &a, &err);
}

int prompts_rmdir(const char *path)
{
    int r = scratch_nonempty(path);   /* editor files or dot directories inside it */
    if (r > 0)
        return -ENOTEMPTY;
    rf_err err;
    r = sp_rmdir(prompts_store(), path, &err);
    if (r == 0)
        scratch_rmdir(path);          /* its (empty) scratch area, if any */
    return r;
}

int prompts_dir_stat(const char *path, struct stat *st)
{
    dir_row row;
    rf_err err;
    int r = sp_dir_get(prompts_store(), path, &row, &err);
    if (r < 0)
        return r;
    prompts_fill_stat(st, S_IFDIR, &row.attrs, 4096);
    return 0;
}

/* paths.h — what a path inside the mount is, and its attributes.
 *
 * Every FUSE callback starts here: a mount path is classified into a kind of file (the
 * root, a virtual file, a scratch file at the root, a tier, a prompt, tag directory or
 * temp file inside a tier, or a result) with the store path behind it, and stat'ed.
 * The attributes of an unfinished job's results come from jobs.c, all others from the
 * store.  Also how long the kernel may cache each kind. */
#ifndef RF_PATHS_H
#define RF_PATHS_H

#include <limits.h>
#include <sys/stat.h>

#include "store.h"
#include "vfiles.h"

typedef enum {
    K_ROOT,
    K_VFILE,      /* config.json, status, ... */
    K_SCRATCH,    /* another file at the root (editor temporaries): store root/NAME */
    K_TIER,       /* a tier directory */
    K_TIERFILE,   /* inside a tier: prompt, temp file or tag directory: store tiers/PATH */
    K_RESULT      /* NAME.out / NAME.meta / NAME.err */
} path_kind;

typedef struct pathinfo {
    path_kind kind;
    vfile_id vf;
    int result;               /* NAME_OUT/NAME_META/NAME_ERR for K_RESULT */
    int live;                 /* K_RESULT of an unfinished job: it changes on its own */
    const char *name;         /* last component (points into the caller's path) */
    char rel[PATH_MAX + 16];  /* store path for K_SCRATCH / K_TIERFILE / K_TIER */
    char key[PATH_MAX];       /* the prompt's key for K_RESULT and K_TIERFILE */
} pathinfo;

/* The store every path lives in (borrowed; before any other call). */
void paths_init(store *st);

/* parent + "/" + name into buf ("" is the root); -ENAMETOOLONG when it does not fit. */
int paths_child(const char *parent, const char *name, char *buf, size_t len);
/* Fill pi for a mount path ("" = root, "tier/name"); -ENOENT for a path that cannot
 * exist (unknown tier, routefs's own temp files). */
int paths_classify(const char *path, pathinfo *pi);
/* paths_classify, then the attributes; -errno on failure. */
int paths_stat(const char *path, pathinfo *pi, struct stat *st);
/* A prompt: a regular, non-temporary file inside a tier. */
int paths_is_prompt(const pathinfo *pi);
/* The store path of a prompt's result (NAME_OUT/NAME_META/NAME_ERR). */
void paths_result_rel(const char *key, int result, char *buf, size_t len);
/* Attributes of a file routefs makes up (the root, virtual files, pending results). */
void paths_fill_synthetic(struct stat *st, mode_t mode, off_t size);

/* How long the kernel may cache the name and the attributes of what pi describes. */
double paths_entry_timeout(const pathinfo *pi);
double paths_attr_timeout(const pathinfo *pi);

/* config.json looks absent for a moment after an unlink (a cross-device mv unlinks it,
 * then creates it again); a create or rename onto it ends that. */
int paths_config_hidden(void);
void paths_hide_config(int hidden);

#endif

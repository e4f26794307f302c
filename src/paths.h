/* paths.h — what a path inside the mount is, and its attributes.
 *
 * Every FUSE callback starts here: a mount path is classified by its name alone into a
 * kind of file — the root, a virtual file, a tier, an entry inside a tier (a prompt or a
 * tag directory: which one is found by looking it up), a result of a prompt, or scratch
 * space (editor temporaries at the root and in tiers, and everything inside a dot
 * directory such as .git, kept as plain files under STATE/files/).  Then stat'ed by the
 * module that owns that kind.  Also how long the kernel may cache each kind, and the
 * modes virtual files are shown with. */
#ifndef RF_PATHS_H
#define RF_PATHS_H

#include <limits.h>
#include <sys/stat.h>

#include "vfiles.h"

typedef enum {
    K_ROOT,
    K_VFILE,      /* config.json, status, ... */
    K_TIER,       /* a tier directory */
    K_ENTRY,      /* inside a tier: a prompt or a tag directory */
    K_RESULT,     /* NAME.out / .meta / .err / .live */
    K_SCRATCH     /* scratch space: root temporaries, dot files and dot directories */
} path_kind;

typedef struct pathinfo {
    path_kind kind;
    vfile_id vf;
    int result;                   /* NAME_OUT.. for K_RESULT */
    int live;                     /* K_RESULT of an unfinished job: it changes on its own */
    int is_dir;                   /* K_ENTRY / K_SCRATCH found to be a directory (stat) */
    const char *name;             /* last component (points into the caller's path) */
    char key[PATH_MAX];           /* the prompt's path for K_RESULT and K_ENTRY */
    char scratch[PATH_MAX + 16];  /* path under STATE/files for K_SCRATCH */
} pathinfo;

/* Mount-wide settings: virtual files readable by the owner's group too (-o shared_read),
 * and the time the mount started (the attributes of the root and the tiers). */
void paths_init(int shared_read);

/* parent + "/" + name into buf ("" is the root); -ENAMETOOLONG when it does not fit. */
int paths_child(const char *parent, const char *name, char *buf, size_t len);
/* Fill pi for a mount path ("" = root, "tier/name"); -ENOENT for a path that cannot
 * exist (unknown tier). */
int paths_classify(const char *path, pathinfo *pi);
/* paths_classify, then the attributes; -errno on failure. */
int paths_stat(const char *path, pathinfo *pi, struct stat *st);
/* The scratch path (under STATE/files) of a mount path, whatever it is classified as. */
int paths_scratch_of(const char *path, char *buf, size_t len);
/* Attributes of a file routefs makes up (the root, tiers, virtual files). */
void paths_fill_synthetic(struct stat *st, mode_t mode, off_t size);
/* The mode a virtual file is shown with (owner only, or group too with shared_read). */
mode_t paths_vfile_mode(vfile_id vf);

/* How long the kernel may cache the name and the attributes of what pi describes. */
double paths_entry_timeout(const pathinfo *pi);
double paths_attr_timeout(const pathinfo *pi);
/* How long the kernel may remember that PATH (classified as pi) does not exist. */
double paths_absent_timeout(const char *path, const pathinfo *pi);

/* config.json looks absent for a moment after an unlink (a cross-device mv unlinks it,
 * then creates it again); a create or rename onto it ends that. */
int paths_config_hidden(void);
void paths_hide_config(int hidden);

#endif

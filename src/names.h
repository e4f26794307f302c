/* names.h — what a file name inside a tier means: a prompt, one of its results
 * (NAME.out, NAME.meta, NAME.err, NAME.live), or a work-in-progress name of an editor or sync tool
 * that never starts a job.  One definition for the daemon and `routefs wait` alike. */
#ifndef RF_NAMES_H
#define RF_NAMES_H

enum { NAME_OUT = 0, NAME_META, NAME_ERR, NAME_LIVE, NAME_RESULT_KINDS };

/* ".out", ".meta", ".err", ".live", indexed by NAME_OUT.. */
extern const char *const name_result_suffix[NAME_RESULT_KINDS];

/* Dotfiles, names ending in ~, .swp, .swx, .tmp, .part or .partial (and ""). */
int name_is_temp(const char *name);

/* NAME_OUT/NAME_META/NAME_ERR when name is a result file's name, else -1.  Temporary
 * names are never results (".x.swp.out" is vim's, not ours). */
int name_result_kind(const char *name);

/* A prompt: neither temporary nor a result. */
int name_is_prompt(const char *name);

#endif

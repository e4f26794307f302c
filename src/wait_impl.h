/* wait_impl.h — what the two halves of `routefs wait` share; private to them.
 *
 * wait_scan.c finds the jobs under the command-line paths and follows their state (walks,
 * NAME.meta reads); wait.c is the command: options, the polling loop, progress and the
 * final report, the exit status. */
#ifndef RF_WAIT_IMPL_H
#define RF_WAIT_IMPL_H

#include <stddef.h>

#define EXIT_OK      0
#define EXIT_FAILED  1
#define EXIT_USAGE   2
#define EXIT_TIMEOUT 3
#define EXIT_GONE    4   /* the mount went away, or a directory waited on */

typedef enum {
    J_PENDING,   /* no result yet (or the .meta could not be read this time) */
    J_EMPTY,     /* an empty prompt without results: no job, not counted */
    J_GONE,      /* the prompt was deleted while we waited: not counted */
    J_DONE,      /* final */
    J_FAILED     /* final */
} wjob_state;

typedef struct wtarget wtarget;   /* a command-line path (wait_scan.c) */

typedef struct wjob {
    char *path;          /* absolute path of the prompt; owned */
    const char *shown;   /* the path under the mount root (points into path) */
    const wtarget *found_by;  /* the first target whose walk found it; borrowed */
    wjob_state state;
    char phase[16];      /* pending: the .meta "state" (writing, queued, running, parked...) */
    long tokens;         /* running: the .meta "tokens_so_far" (what has streamed); else 0 */
    char *error;         /* failed: why; owned, may be NULL */
    unsigned gen;        /* the last walk that found the prompt */
} wjob;

typedef struct counts {
    size_t done, failed, pending, parked, total, gone;
    size_t running;      /* pending jobs whose attempt is under way */
    long tokens;         /* tokens the running jobs have received so far */
} counts;

/* 0, or -1 when out of memory. */
int wscan_init(void);
/* Free every target and job. */
void wscan_free(void);
/* Resolve one command-line path into a target: 0 added, 1 skipped (said why on stderr),
 * -1 a usage error (said why on stderr). */
int wscan_add_target(const char *arg);
/* --each: fn(path) for each prompt seen to end done; the path is spelled from the
 * command-line PATH that found it (borrowed for the call). */
void wscan_on_done(void (*fn)(const char *path));
/* One pass over every target.  0, or -1 when the wait cannot go on: wscan_fatal says why
 * and with which exit status. */
int wscan_scan(void);
const char *wscan_fatal(int *exit_status);
counts wscan_count(void);
/* Every job found so far, in order of discovery; borrowed. */
wjob *const *wscan_jobs(size_t *n);

#endif

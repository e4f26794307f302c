/* cli_rerun.c — `routefs rerun PROMPT...`: run prompts again although their content has not
 * changed (a prompt that arrives with the content of its finished job keeps that result:
 * this is the way to pay for a new answer on purpose).  It asks the mount through the
 * extended attribute user.routefs.rerun, so it needs no access to the state directory. */
#include "cli_rerun.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: routefs rerun PROMPT...\n"
               "\n"
               "Start a new job for each prompt file (inside a routefs mount), although its\n"
               "content has not changed; its previous results are replaced when the new job\n"
               "ends.  Exit status: 0 every prompt restarted, 1 some could not be, 2 usage.\n");
}

int rerun_main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    int status = 0;
    for (int i = 1; i < argc; i++) {
        if (setxattr(argv[i], "user.routefs.rerun", "1", 1, 0) < 0) {
            int e = errno;
            fprintf(stderr, "routefs rerun: %s: %s\n", argv[i],
                    e == ENOTSUP || e == ENODATA ? "not a prompt in a routefs mount"
                                                 : strerror(e));
            status = 1;
        }
    }
    return status;
}

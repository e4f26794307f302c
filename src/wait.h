/* wait.h — `routefs wait [--timeout S] [--each] PATH...`: block until every job under the
 * given prompt files and tier/tag directories has ended, showing progress on stderr.
 *
 * Exit status: 0 when every job is done, 1 when any failed, 2 on a usage error, 3 on a
 * timeout, 4 when the mount (or a directory waited on) went away, 128+N when interrupted
 * by signal N.  --each prints the path of each prompt whose job is done on stdout. */
#ifndef RF_WAIT_H
#define RF_WAIT_H

/* argv[0] is "wait"; the options and paths follow. */
int wait_main(int argc, char **argv);

#endif

/* wait.h — `routefs wait [--timeout S] PATH...`: block until every job under the given
 * prompt files and tier/tag directories has ended, showing progress on stderr.
 *
 * Exit status: 0 when every job is done, 1 when any failed, 2 on a usage error, a
 * timeout or a mount that went away, 128+N when interrupted by signal N. */
#ifndef RF_WAIT_H
#define RF_WAIT_H

/* argv[0] is "wait"; the options and paths follow. */
int wait_main(int argc, char **argv);

#endif

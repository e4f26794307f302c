/* cli_rerun.h — `routefs rerun PROMPT...` (see cli_rerun.c). */
#ifndef RF_CLI_RERUN_H
#define RF_CLI_RERUN_H

/* argv[0] is "rerun"; returns the exit status. */
int rerun_main(int argc, char **argv);

#endif

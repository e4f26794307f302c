/* cli_export.h — `routefs export STATE DIR` (see cli_export.c). */
#ifndef RF_CLI_EXPORT_H
#define RF_CLI_EXPORT_H

/* argv[0] is "export"; returns the exit status. */
int export_main(int argc, char **argv);

#endif

/* cli_prices.h — `routefs prices [--state STATE] [--config FILE] [MODEL...]` (see
 * cli_prices.c). */
#ifndef RF_CLI_PRICES_H
#define RF_CLI_PRICES_H

/* argv[0] is "prices"; returns the exit status (0 done, 1 error or a MODEL with no known
 * price, 2 usage). */
int prices_main(int argc, char **argv);

#endif

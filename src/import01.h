/* import01.h — the one-time import of a routefs 0.1.0 state directory (see import01.c). */
#ifndef RF_IMPORT01_H
#define RF_IMPORT01_H

#include "err.h"
#include "store.h"

/* Before store_start: when the state directory holds 0.1.0 files, import them all (one
 * transaction) and move them into backup-0.1/.  0 (also when there is nothing to do),
 * or -1 with err (nothing changed). */
int import01_run(store *st, rf_err *err);

#endif

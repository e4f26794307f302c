/* store_schema.h — the database schema of the state store, created and upgraded in one
 * place.  Internal to the store modules (store.c, store_prompts.c, store_ledger.c). */
#ifndef RF_STORE_SCHEMA_H
#define RF_STORE_SCHEMA_H

#include <stdint.h>
#include "err.h"
#include "store.h"

#define STORE_SCHEMA_VERSION 1

/* Create what is missing (WAL mode, tables, indexes), check the version, and set
 * *generation to this mount's first job generation.  On the writer connection. */
int store_schema_ensure(store_conn *w, int64_t *generation, rf_err *err);

#endif

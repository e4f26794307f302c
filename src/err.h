/* err.h — errors carried as values.
 *
 * Every fallible function takes an `rf_err *` and, on failure, fills it with an
 * errno-style code (what the FUSE edge will answer) and a one-line human message,
 * then returns -1 (or NULL).  The message never contains a secret or a prompt. */
#ifndef RF_ERR_H
#define RF_ERR_H

#include <stddef.h>

typedef struct rf_err {
    int code;          /* errno value, e.g. EINVAL, EIO, EDQUOT; 0 = no error */
    char msg[512];     /* one line, no trailing newline */
} rf_err;

/* Set code and a printf-style message; returns -1 so callers can `return rf_err_set(...)`.
 * err may be NULL (the error is then dropped). */
int rf_err_set(rf_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear to "no error". */
void rf_err_clear(rf_err *err);

#endif

/* log.h — the daemon log: one line per event, timestamped, to a file or stderr.
 *
 * Nothing logged may contain an API key; prompts are logged only with --debug. */
#ifndef RF_LOG_H
#define RF_LOG_H

typedef enum { RF_LOG_DEBUG = 0, RF_LOG_INFO, RF_LOG_WARN, RF_LOG_ERROR } rf_log_level;

/* Send the log to path (appended, 0600), or stderr when path is NULL.  -1 on failure. */
int rf_log_open(const char *path);
void rf_log_set_level(rf_log_level min);
void rf_log(rf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) rf_log(RF_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...)  rf_log(RF_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...)  rf_log(RF_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) rf_log(RF_LOG_ERROR, __VA_ARGS__)

#endif

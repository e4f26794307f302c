/* log.h — the daemon log: one line per event, to a file or stderr.
 *
 * A line is "2026-12-01T10:00:00.123Z info: message".  When stderr is the systemd
 * journal (JOURNAL_STREAM names stderr's device and inode) and the log goes there, a line
 * is "<6>message" instead: the syslog priority prefix journald understands, and no
 * timestamp of our own (the journal has its own).
 *
 * Nothing logged may contain an API key; prompts are logged only with --debug. */
#ifndef RF_LOG_H
#define RF_LOG_H

typedef enum { RF_LOG_DEBUG = 0, RF_LOG_INFO, RF_LOG_WARN, RF_LOG_ERROR } rf_log_level;

/* Send the log to path (appended, 0600; a relative path is taken from the current
 * directory now, so that a reopen after the daemon changed to / finds the same file), or
 * to stderr when path is NULL.  -1 with errno on failure (the previous log stays). */
int rf_log_open(const char *path);
/* Open the log file again under its name, for logrotate (SIGHUP): lines written from now
 * on go to the file now at that path; a log on stderr is left alone.  Safe while other
 * threads log.  0, or -1 with errno (the old file stays in use). */
int rf_log_reopen(void);
/* 1 when lines go to the journal in its "<N>message" format. */
int rf_log_is_journal(void);
void rf_log_set_level(rf_log_level min);
void rf_log(rf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) rf_log(RF_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...)  rf_log(RF_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...)  rf_log(RF_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) rf_log(RF_LOG_ERROR, __VA_ARGS__)

#endif

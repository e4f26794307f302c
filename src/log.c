/* log.c — see log.h.  Each line is formatted whole and written with one write(2) so lines
 * from different threads never interleave.  A reopen swaps the file under the same
 * descriptor with dup2(2), which is atomic: a line written meanwhile goes whole to the old
 * file or whole to the new one, and no lock is needed. */
#include "log.h"
#include "redact.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static int log_journal;          /* log_fd is stderr and stderr is the journal */
static char *log_path;           /* owned, absolute; NULL while logging to stderr */
static rf_log_level log_min = RF_LOG_INFO;
static pthread_mutex_t reopen_lock = PTHREAD_MUTEX_INITIALIZER;   /* reopen vs reopen */

/* systemd sets JOURNAL_STREAM=DEVICE:INODE when it connects stdout/stderr to the journal;
 * it is only true for us if stderr is still that very stream (not redirected since). */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    if (!js || !*js)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long dev = strtoull(js, &end, 10);
    if (errno || end == js || *end != ':')
        return 0;
    const char *ino_text = end + 1;
    unsigned long long ino = strtoull(ino_text, &end, 10);
    if (errno || end == ino_text || *end)
        return 0;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* path made absolute against the current directory; malloc'd, NULL when out of memory. */
static char *absolute(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return strdup(path);   /* no better name to keep */
    char *out = NULL;
    if (asprintf(&out, "%s/%s", cwd, path) < 0)
        return NULL;
    return out;
}

/* Open path for appending, as a descriptor above 2: the daemon points 0-2 at /dev/null
 * when it detaches, which must not hit the log. */
static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || fd > 2)
        return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int e = errno;
    close(fd);
    errno = e;
    return high;
}

int rf_log_open(const char *path)
{
    if (!path) {
        int old = log_fd;
        log_fd = STDERR_FILENO;
        log_journal = stderr_is_journal();
        if (old > 2)
            close(old);
        free(log_path);
        log_path = NULL;
        return 0;
    }
    char *abs = absolute(path);
    if (!abs) {
        errno = ENOMEM;
        return -1;
    }
    int fd = open_log_file(abs);
    if (fd < 0) {
        int e = errno;
        free(abs);
        errno = e;
        return -1;
    }
    int old = log_fd;
    log_fd = fd;
    log_journal = 0;
    if (old > 2)
        close(old);
    free(log_path);
    log_path = abs;
    return 0;
}

int rf_log_reopen(void)
{
    pthread_mutex_lock(&reopen_lock);
    int r = 0;
    if (log_path) {
        int fd = open_log_file(log_path);
        if (fd < 0 || dup2(fd, log_fd) < 0)
            r = -1;
        int e = errno;
        if (fd >= 0)
            close(fd);
        errno = e;
    }
    pthread_mutex_unlock(&reopen_lock);
    return r;
}

int rf_log_is_journal(void)
{
    return log_journal;
}

void rf_log_set_level(rf_log_level min)
{
    log_min = min;
}

void rf_log(rf_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    static const int syslog_priority[] = {7, 6, 4, 3};   /* debug, info, warning, err */
    if (level < log_min || level < RF_LOG_DEBUG || level > RF_LOG_ERROR)
        return;
    char line[2048];
    int n;
    if (log_journal) {
        n = snprintf(line, sizeof line, "<%d>", syslog_priority[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* Whatever a provider echoed (a key, in any encoding) never reaches the log. */
    len = (size_t)n + redact_inplace(line + n, len - (size_t)n);
    for (size_t i = (size_t)n; i < len; i++)   /* one event, one line */
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(log_fd, line, len);
    (void)w;                                    /* nowhere left to report a log failure */
}

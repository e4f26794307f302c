/* liveconf.c — see liveconf.h. */
#include "liveconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fs.h"
#include "jobs.h"
#include "kcache.h"
#include "log.h"
#include "openrouter.h"
#include "redact.h"
#include "vfiles.h"

static char persist_path[PATH_MAX];
/* Edits are applied one at a time, so "validate, persist, apply" is atomic as a whole. */
static pthread_mutex_t apply_lock = PTHREAD_MUTEX_INITIALIZER;

void liveconf_init(const char *path)
{
    snprintf(persist_path, sizeof persist_path, "%s", path);
}

/* temp file beside the target, fsync, rename, fsync the directory */
static int write_file_atomic(const char *path, const char *data, size_t len, rf_err *err)
{
    char tmp[PATH_MAX + 32];
    if (snprintf(tmp, sizeof tmp, "%s.rfs-tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return rf_err_set(err, ENAMETOOLONG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return rf_err_set(err, errno, "cannot write %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    int e = 0;
    while (left > 0 && !e) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno != EINTR)
            e = errno;
        else if (w > 0)
            p += w, left -= (size_t)w;
    }
    if (!e && fsync(fd) < 0)
        e = errno;
    if (close(fd) < 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) < 0)
        e = errno;
    if (e) {
        unlink(tmp);
        return rf_err_set(err, e, "cannot write %s: %s", path, strerror(e));
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

/* The secrets of cfg are what every sink redacts; its key warnings go to the log and to
 * status.  Reading key files and environment variables happens here, never under a lock
 * that a request waits on. */
static void adopt_secrets(const rf_config *cfg)
{
    char **secrets = NULL;
    size_t n = config_secrets(cfg, &secrets);
    rf_err err;
    rf_err_clear(&err);
    if (redact_set_keys((const char *const *)secrets, n, &err) < 0)
        LOG_ERROR("redaction: %s", err.msg);
    config_free_secrets(secrets, n);
    char **warnings = NULL;
    size_t nw = config_key_warnings(cfg, &warnings);
    for (size_t i = 0; i < nw; i++)
        LOG_WARN("config: %s", warnings[i]);
    vfiles_set_key_warnings((const char *const *)warnings, nw);
    config_free_strings(warnings, nw);
}

static void put_in_force(rf_config *cfg)
{
    adopt_secrets(cfg);
    rf_config *old = jobs_config();
    jobs_set_config(cfg);
    kcache_tiers_changed(old, cfg);   /* the kernel may still cache a removed tier's entry */
    config_unref(old);
    vfiles_set_config_error(NULL);
    vfiles_config_applied();
    or_config_changed();              /* OpenRouter providers added or removed */
}

void liveconf_start(rf_config *cfg)
{
    pthread_mutex_lock(&apply_lock);
    adopt_secrets(cfg);
    jobs_set_config(cfg);
    vfiles_config_applied();
    pthread_mutex_unlock(&apply_lock);
}

/* Is cfg the config already in force?  Editors put the original text back after a
 * refused save (vim does): that is not a new config, and must not hide the refusal. */
static int same_as_current(const rf_config *cfg)
{
    rf_config *cur = jobs_config();
    int same = cur && !strcmp(cur->source_json, cfg->source_json);
    config_unref(cur);
    return same;
}

int liveconf_apply_text(const char *text, size_t len, const char *origin, rf_err *err)
{
    rf_config *cfg = NULL;
    pthread_mutex_lock(&apply_lock);
    if (config_parse(text, len, &cfg, err) < 0 || config_check_key_files(cfg, err) < 0) {
        config_unref(cfg);
        cfg = NULL;
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        rf_err_set(err, EINVAL, "%s: %s", origin, msg);
        vfiles_set_config_error(err->msg);
        LOG_ERROR("config refused, previous config stays in force: %s", err->msg);
        pthread_mutex_unlock(&apply_lock);
        return -1;
    }
    if (same_as_current(cfg)) {
        config_unref(cfg);
        pthread_mutex_unlock(&apply_lock);
        return 0;
    }
    rf_config *cur = jobs_config();
    int shared_same = !cur || config_shared_equal(cur->shared, cfg->shared);
    config_unref(cur);
    if (!shared_same) {
        /* Where the shared state lives and how it is used are fixed for the mount. */
        rf_err_set(err, EINVAL, "%s: shared: the \"shared\" section cannot change while "
                   "mounted; remount to change it", origin);
        vfiles_set_config_error(err->msg);
        LOG_ERROR("config refused, previous config stays in force: %s", err->msg);
        config_unref(cfg);
        pthread_mutex_unlock(&apply_lock);
        return -1;
    }
    if (write_file_atomic(persist_path, text, len, err) < 0) {
        /* Applying what cannot be persisted would silently revert at the next mount. */
        vfiles_set_config_error(err->msg);
        LOG_ERROR("config not applied: %s", err->msg);
        config_unref(cfg);
        pthread_mutex_unlock(&apply_lock);
        return -1;
    }
    put_in_force(cfg);
    LOG_INFO("config applied from %s (%zu tiers, %zu providers)", origin, cfg->tiers_len,
             cfg->providers_len);
    config_unref(cfg);
    pthread_mutex_unlock(&apply_lock);
    return 0;
}

int liveconf_reload(rf_err *err)
{
    rf_config *cfg = NULL;
    pthread_mutex_lock(&apply_lock);
    if (config_load_file(persist_path, &cfg, err) < 0) {
        vfiles_set_config_error(err->msg);
        LOG_ERROR("SIGHUP: config refused, previous config stays in force: %s", err->msg);
        pthread_mutex_unlock(&apply_lock);
        return -1;
    }
    put_in_force(cfg);
    LOG_INFO("SIGHUP: config reloaded from %s", persist_path);
    config_unref(cfg);
    pthread_mutex_unlock(&apply_lock);
    return 0;
}

/* ---- edit sessions ---- */

struct liveconf_edit {
    char *data;
    size_t len, cap;
    int dirty;          /* written since the last commit */
};

liveconf_edit *liveconf_edit_begin(const char *initial, size_t len, int changed)
{
    liveconf_edit *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (len > 0) {
        if (!(e->data = malloc(len))) {
            free(e);
            return NULL;
        }
        memcpy(e->data, initial, len);
        e->len = e->cap = len;
    }
    e->dirty = changed;
    return e;
}

int liveconf_edit_write(liveconf_edit *e, const char *buf, size_t size, off_t off)
{
    if (off < 0 || (size_t)off + size > LIVECONF_MAX)
        return -EFBIG;
    size_t end = (size_t)off + size;
    if (end > e->cap) {
        size_t cap = end * 2 > LIVECONF_MAX ? LIVECONF_MAX : end * 2;
        char *d = realloc(e->data, cap);
        if (!d)
            return -ENOMEM;
        e->data = d;
        e->cap = cap;
    }
    if ((size_t)off > e->len)
        memset(e->data + e->len, 0, (size_t)off - e->len);   /* a hole reads as zeros */
    if (size)
        memcpy(e->data + off, buf, size);
    if (end > e->len)
        e->len = end;
    e->dirty = 1;
    return 0;
}

int liveconf_edit_truncate(liveconf_edit *e, off_t size)
{
    if (size < 0)
        return -EINVAL;
    if ((size_t)size > e->len)
        return liveconf_edit_write(e, "", 0, size);
    e->len = (size_t)size;
    e->dirty = 1;
    return 0;
}

const char *liveconf_edit_text(const liveconf_edit *e, size_t *len)
{
    *len = e->len;
    return e->data;
}

int liveconf_edit_commit(liveconf_edit *e)
{
    if (!e->dirty)
        return 0;
    e->dirty = 0;
    rf_err err;
    rf_err_clear(&err);
    return liveconf_apply_text(e->data ? e->data : "", e->len, "config.json", &err) < 0
               ? -EINVAL
               : 0;
}

void liveconf_edit_free(liveconf_edit *e)
{
    if (!e)
        return;
    free(e->data);
    free(e);
}

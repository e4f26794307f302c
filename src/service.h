/* service.h — routefs as a well-behaved service: signals, systemd notification, log
 * reopening and the umount control.
 *
 * Signals.  SIGTERM and SIGINT end the FUSE loop; the daemon then shuts down in order
 * (readers waiting on NAME.out are answered EINTR before the mount goes) and exits 0.
 * SIGHUP reopens the log file (logrotate) and re-reads the config, both in the rfs-reload
 * thread, never in the handler.  SIGPIPE is ignored.
 *
 * systemd (Type=notify).  With NOTIFY_SOCKET set: READY=1 and STATUS= ("mounted at M,
 * 3 tiers") once the mount is up and recovery has run, STATUS= again after a SIGHUP, and
 * STOPPING=1 when the loop ends.  Without it, nothing is sent.
 *
 * The umount control.  setxattr(MOUNT, "user.routefs.control", "umount") on the mount
 * root asks the daemon to stop exactly as SIGTERM does, from any process of the mount's
 * owner (nobody else can reach the mount) and without a daemon thread waiting for it:
 * the FUSE worker that receives it ends the loop.  `routefs umount MOUNT` sends it and
 * waits until the mount is gone. */
#ifndef RF_SERVICE_H
#define RF_SERVICE_H

#include <stddef.h>

#include "err.h"

struct fuse_session;

/* The extended attribute of the mount root that carries control commands. */
#define SERVICE_CONTROL_XATTR "user.routefs.control"

/* Exit status of `routefs umount`. */
#define UMOUNT_EXIT_OK          0   /* the mount is gone */
#define UMOUNT_EXIT_FAILED      1   /* the daemon could not be asked (permission, dead mount) */
#define UMOUNT_EXIT_USAGE       2
#define UMOUNT_EXIT_TIMEOUT     3   /* still mounted after --timeout */
#define UMOUNT_EXIT_NOT_ROUTEFS 4   /* not a mount point, or not a routefs mount */

/* Before mounting: load what pthread_cancel needs (libgcc_s) while descriptors are
 * plenty, make SIGTERM and SIGINT end se's loop, ignore SIGHUP until service_reload_start
 * and SIGPIPE for good.  se is borrowed until service_signals_remove.  -1 with err. */
int service_signals_install(struct fuse_session *se, rf_err *err);

/* After liveconf_init: start rfs-reload; from now on SIGHUP reopens the log and re-reads
 * the config.  -1 with err (the daemon can run on without it). */
int service_reload_start(rf_err *err);

/* The mount is up and recovery has run: READY=1 and STATUS= for systemd.  mountpoint is
 * copied. */
void service_ready(const char *mountpoint, size_t tiers);

/* The FUSE loop has returned: log why, send STOPPING=1; later SIGTERM/SIGINT are ignored
 * (the shutdown is under way and bounded). */
void service_stopping(void);

/* Stop rfs-reload (SIGHUP is ignored from now on).  Before liveconf and the jobs are
 * shut down.  Harmless when it was never started. */
void service_reload_stop(void);

/* After unmounting, before the session is destroyed: forget the session. */
void service_signals_remove(void);

/* The umount control, from fs.c's setxattr on the mount root (value: size bytes, not
 * NUL-terminated).  "umount": the loop ends as on SIGTERM once the caller's FUSE worker
 * has replied; returns 0.  Anything else: -EINVAL. */
int service_control(const char *value, size_t size);

/* `routefs umount [--timeout S] MOUNTPOINT`; argv[0] is "umount".  Returns the exit
 * status (UMOUNT_EXIT_*). */
int service_umount_main(int argc, char **argv);

#endif

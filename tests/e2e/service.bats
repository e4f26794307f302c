#!/usr/bin/env bats
# routefs as a service: SIGTERM / SIGINT / `routefs umount` with readers waiting on
# NAME.out, SIGHUP reopening a moved log file, sd_notify (READY=1, STATUS=, STOPPING=1)
# through a fake NOTIFY_SOCKET, journald-style lines with a fake JOURNAL_STREAM, and a
# shutdown at a low open-file limit.  Every wait is bounded; teardown unmounts with
# `fusermount3 -u -z` whatever is left.

load helpers

setup() {
    rfs_setup
    rfs_default_config ', "timeout_ms": 30000'   # tier "fast": sim/a, then backup sim/b
    READER_PID=""
    NOTIFY_PID=""
}

teardown() {
    [ -z "$READER_PID" ] || kill "$READER_PID" 2>/dev/null || true
    [ -z "$NOTIFY_PID" ] || kill "$NOTIFY_PID" 2>/dev/null || true
    if grep -qF " $MNT " /proc/self/mounts; then
        fusermount3 -u -z "$MNT" 2>/dev/null || true
    fi
    rfs_teardown
}

# start_reader PATH OUT — one read(2) of PATH in the background (perl's sysread: unlike
# GNU cat it does not retry an interrupted read); OUT gets "read N" or "error: MESSAGE".
# Bounded by alarm(30).  Returns once the reader is blocked in read(2).
start_reader() {
    perl -e 'alarm 30; open(my $f, "<", $ARGV[0]) or die "open: $!\n";
             my $n = sysread($f, my $buf, 65536);
             print defined $n ? "read $n\n" : "error: $!\n"' "$1" >"$2" 2>&1 3>&- &
    READER_PID=$!
    wait_for 10 _in_read "$READER_PID"
}
# /proc/PID/syscall starts with the number of the system call it is blocked in: 0, read.
_in_read() { [ "$(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null)" = 0 ]; }

# a job that stays running (the sim answers after 20 s) and a reader waiting on it
slow_job_with_reader() {
    sim_behave sim/a '{"latency_ms": 20000}'
    echo "slow" >"$MNT/fast/slow.txt"
    wait_state "$MNT/fast/slow.txt" running 10
    start_reader "$MNT/fast/slow.txt.out" "$RFS_DIR/reader.out"
}

# wait_daemon SECONDS — wait for the daemon (a child of this shell: not under `run`) to
# exit; its exit status goes to DAEMON_RC.
wait_daemon() {
    _wait_pid "$RFS_PID" "$1" || { echo "daemon still running after $1 s" >&2; return 1; }
    DAEMON_RC=0
    wait "$RFS_PID" || DAEMON_RC=$?
    RFS_PID=""
    echo "daemon exit status: $DAEMON_RC"
}

reader_result() {
    _wait_pid "$READER_PID" 10 || { echo "reader still blocked"; return 1; }
    cat "$RFS_DIR/reader.out"
}

# --- SIGTERM, SIGINT ------------------------------------------------------------------

@test "SIGTERM with a reader waiting on NAME.out: the reader gets EINTR, the daemon exits 0, the mount is gone" {
    rfs_mount
    slow_job_with_reader
    kill -TERM "$RFS_PID"
    wait_daemon 10
    [ "$DAEMON_RC" -eq 0 ]
    run reader_result
    echo "reader: $output"
    assert_output "error: Interrupted system call"
    refute grep -qF " $MNT " /proc/self/mounts
    grep -q "SIGTERM: unmounting" "$RFS_LOG"
}

@test "SIGINT likewise: EINTR for the reader, exit 0; a GNU cat reader ends too (it retries EINTR)" {
    rfs_mount
    slow_job_with_reader
    timeout 30 cat "$MNT/fast/slow.txt.out" >"$RFS_DIR/cat.out" 2>&1 3>&- &
    local cat_pid=$!
    sleep 0.3
    kill -INT "$RFS_PID"
    wait_daemon 10
    [ "$DAEMON_RC" -eq 0 ]
    run reader_result
    assert_output "error: Interrupted system call"
    local rc=0
    wait "$cat_pid" || rc=$?
    echo "cat: status $rc: $(cat "$RFS_DIR/cat.out")"
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]   # failed at once, did not hang until timeout
    grep -q "SIGINT: unmounting" "$RFS_LOG"
}

@test "the unfinished job of a SIGTERM'd daemon resumes on the next mount" {
    rfs_mount
    slow_job_with_reader
    kill -TERM "$RFS_PID"
    wait_daemon 10
    [ "$DAEMON_RC" -eq 0 ]
    sim_behave sim/a '{"latency_ms": 0}'
    rfs_mount
    run read_out "$MNT/fast/slow.txt.out"
    assert_success
    assert_output "sim[sim/a]: slow"
}

# --- routefs umount -------------------------------------------------------------------

@test "routefs umount with a reader waiting: fusermount3 -u says EBUSY, routefs umount answers the reader EINTR and unmounts, exit 0" {
    rfs_mount
    slow_job_with_reader
    run timeout 10 fusermount3 -u "$MNT"
    echo "fusermount3 -u: $output"
    assert_failure
    assert_output --partial "Device or resource busy"
    grep -qF " $MNT " /proc/self/mounts

    local t0 t1
    t0=$(now_ms)
    run rfs_cli umount "$MNT"
    t1=$(now_ms)
    echo "routefs umount: status $status after $((t1 - t0)) ms: $output"
    assert_success
    assert_output ""
    refute grep -qF " $MNT " /proc/self/mounts
    run reader_result
    assert_output "error: Interrupted system call"
    wait_daemon 10
    [ "$DAEMON_RC" -eq 0 ]
    grep -q "routefs umount: unmounting" "$RFS_LOG"
}

@test "routefs umount: 4 for a directory that is not a mount or not routefs, 2 for usage errors" {
    rfs_mount
    run rfs_cli umount "$RFS_DIR"
    echo "$output"
    [ "$status" -eq 4 ]
    assert_output --partial "not a mount point"
    run rfs_cli umount "$MNT/fast"
    [ "$status" -eq 4 ]
    run rfs_cli umount /proc
    echo "$output"
    [ "$status" -eq 4 ]
    assert_output --partial "not a routefs mount (a proc mount)"
    run rfs_cli umount "$RFS_DIR/no-such-dir"
    [ "$status" -eq 4 ]
    run rfs_cli umount
    [ "$status" -eq 2 ]
    run rfs_cli umount --timeout soon "$MNT"
    [ "$status" -eq 2 ]
    run rfs_cli umount "$MNT" "$MNT"
    [ "$status" -eq 2 ]
    run rfs_cli umount --bogus "$MNT"
    [ "$status" -eq 2 ]
    run rfs_cli umount --help
    assert_success
    assert_output --partial "Exit status: 0 unmounted"
    grep -qF " $MNT " /proc/self/mounts   # none of that touched the mount
    # other extended attributes are still not supported, on the root or elsewhere
    run setfattr -n user.routefs.control -v bogus "$MNT"
    assert_failure
    run setfattr -n user.other -v x "$MNT"
    assert_failure
    assert_output --partial "Operation not supported"
    grep -qF " $MNT " /proc/self/mounts
}

@test "routefs umount --timeout: a daemon that does not answer (SIGSTOP) gives exit 3 in time" {
    rfs_mount
    kill -STOP "$RFS_PID"
    local t0 t1
    t0=$(now_ms)
    run rfs_cli umount --timeout 1 "$MNT"
    t1=$(now_ms)
    kill -CONT "$RFS_PID"
    echo "status $status after $((t1 - t0)) ms: $output"
    [ "$status" -eq 3 ]
    assert_output --partial "did not answer"
    [ $((t1 - t0)) -lt 5000 ]
    grep -qF " $MNT " /proc/self/mounts
    run rfs_cli umount "$MNT"   # awake again: it works
    assert_success
}

# --- SIGHUP ---------------------------------------------------------------------------

# _count_is N PATTERN FILE — FILE has exactly N lines matching PATTERN.
_count_is() { [ "$(grep -c "$2" "$3")" -eq "$1" ]; }

@test "SIGHUP reopens the log file after logrotate moved it away, and re-reads the config" {
    rfs_mount
    grep -q "mounted at" "$RFS_LOG"
    mv "$RFS_LOG" "$RFS_LOG.1"
    kill -HUP "$RFS_PID"
    wait_for 5 grep -q "config reloaded" "$RFS_LOG"
    grep -q "SIGHUP: log file reopened" "$RFS_LOG"
    refute grep -q "reopened" "$RFS_LOG.1"
    [ "$(stat -c %a "$RFS_LOG")" = 600 ]
    # later events go to the new file only
    sim_behave sim/a '{"status": 400}'
    sim_behave sim/b '{"status": 400}'
    echo "x" >"$MNT/fast/bad.txt"
    wait_state "$MNT/fast/bad.txt" failed 10
    kill -HUP "$RFS_PID"
    wait_for 5 _count_is 2 "config reloaded" "$RFS_LOG"
    [ "$(grep -c "mounted at" "$RFS_LOG.1")" -eq 1 ]
    refute grep -q "config reloaded" "$RFS_LOG.1"
    kill -0 "$RFS_PID"
}

# --- systemd: sd_notify and the journal -----------------------------------------------

# notify_listen — a unix datagram socket at $NOTIFY_SOCKET; every message it receives is
# appended to $RFS_DIR/notify.log, followed by a line "--".
notify_listen() {
    NOTIFY_SOCKET="$RFS_DIR/notify.sock"
    export NOTIFY_SOCKET
    python3 - "$NOTIFY_SOCKET" "$RFS_DIR/notify.log" 3>&- <<'PY' &
import signal, socket, sys
signal.alarm(60)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2] + ".ready", "w").close()
with open(sys.argv[2], "a") as log:
    while True:
        log.write(s.recv(4096).decode() + "\n--\n")
        log.flush()
PY
    NOTIFY_PID=$!
    wait_for 5 [ -e "$RFS_DIR/notify.log.ready" ]
}

@test "sd_notify: READY=1 with STATUS once mounted, STATUS after SIGHUP, STOPPING=1 on SIGTERM" {
    notify_listen
    rfs_mount
    wait_for 5 grep -q "READY=1" "$RFS_DIR/notify.log"
    cat "$RFS_DIR/notify.log"
    grep -qx "STATUS=mounted at $MNT, 2 tiers" "$RFS_DIR/notify.log"
    [ "$(grep -c "READY=1" "$RFS_DIR/notify.log")" -eq 1 ]
    refute grep -q "STOPPING=1" "$RFS_DIR/notify.log"
    kill -HUP "$RFS_PID"
    wait_for 5 grep -q "config reloaded" "$RFS_DIR/notify.log"
    kill -TERM "$RFS_PID"
    wait_daemon 10
    [ "$DAEMON_RC" -eq 0 ]
    wait_for 5 grep -q "STOPPING=1" "$RFS_DIR/notify.log"
    cat "$RFS_DIR/notify.log"
    [ "$(grep -c "READY=1" "$RFS_DIR/notify.log")" -eq 1 ]
}

# mount_on_stderr [ENV=VALUE...] — mount in the foreground without --log (the log goes to
# stderr, $RFS_DIR/stderr.log), with the given environment.
mount_on_stderr() {
    : >"$RFS_DIR/stderr.log"
    env "$@" "$ROUTEFS_BIN" "$MNT" --config "$RFS_DIR/config.json" --state "$STATE" -f \
        </dev/null >/dev/null 2>>"$RFS_DIR/stderr.log" 3>&- &
    RFS_PID=$!
    wait_for 10 mountpoint -q "$MNT"
}

@test "journald: with JOURNAL_STREAM naming stderr, lines are <priority>message without a timestamp" {
    : >"$RFS_DIR/stderr.log"
    mount_on_stderr JOURNAL_STREAM="$(stat -c %d:%i "$RFS_DIR/stderr.log")"
    kill -TERM "$RFS_PID"
    wait_daemon 10
    [ "$DAEMON_RC" -eq 0 ]
    cat "$RFS_DIR/stderr.log"
    grep -q "^<6>routefs .* mounted at $MNT" "$RFS_DIR/stderr.log"
    grep -qx "<6>SIGTERM: unmounting" "$RFS_DIR/stderr.log"
    refute grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$RFS_DIR/stderr.log"
}

@test "journald: a JOURNAL_STREAM that is not stderr (redirected since) keeps the timestamped format" {
    mount_on_stderr JOURNAL_STREAM="1:2"
    kill -TERM "$RFS_PID"
    wait_daemon 10
    [ "$DAEMON_RC" -eq 0 ]
    cat "$RFS_DIR/stderr.log"
    grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z info: routefs .* mounted at' "$RFS_DIR/stderr.log"
    refute grep -q '^<[0-9]>' "$RFS_DIR/stderr.log"
}

# --- pthread_cancel at a low open-file limit -------------------------------------------

# mount_with_fd_limit N — mount in the foreground with at most N open files (soft = hard).
mount_with_fd_limit() {
    prlimit --nofile="$1:$1" "$ROUTEFS_BIN" "$MNT" --config "$RFS_DIR/config.json" \
        --state "$STATE" --log "$RFS_LOG" -f </dev/null >>"$RFS_DIR/routefs.stderr" 2>&1 3>&- &
    RFS_PID=$!
    wait_for 10 mountpoint -q "$MNT"
}

@test "libgcc_s is loaded at start: a SIGTERM with every descriptor in use exits 0 (no pthread_cancel abort)" {
    command -v prlimit >/dev/null || skip "prlimit (util-linux) is not installed"
    sim_behave sim/a '{"latency_ms": 20000}'
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 30000, "concurrency": 64}}
}
JSON
    mount_with_fd_limit 40
    grep -q "libgcc_s" "/proc/$RFS_PID/maps"
    local i
    for ((i = 0; i < 40; i++)); do
        echo "p $i" >"$MNT/fast/p$i.txt" 2>/dev/null || true
    done
    sleep 0.5
    echo "descriptors in use: $(find "/proc/$RFS_PID/fd" -mindepth 1 | wc -l) of 40"
    kill -TERM "$RFS_PID"
    wait_daemon 10
    cat "$RFS_DIR/routefs.stderr"
    [ "$DAEMON_RC" -eq 0 ]
    refute grep -q "pthread_cancel" "$RFS_DIR/routefs.stderr"
}

# --- the examples: /etc/fstab, logrotate ------------------------------------------------

@test "examples/fstab.example: mount -T with its line mounts through mount.fuse3 (routefs in /usr/local/bin), routefs umount stops it" {
    [ "$(id -u)" -eq 0 ] || skip "needs root (mount(8) and a private mount namespace)"
    command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
    [ -x /sbin/mount.fuse3 ] || [ -x /usr/sbin/mount.fuse3 ] || skip "mount.fuse3 is not installed"
    # The example's line, with this test's paths; the rest of its options as they are.
    local line
    line=$(grep -E '^[^#].*fuse\.routefs' "$RFS_REPO/examples/fstab.example")
    echo "example: $line"
    read -r _src _mnt fstype opts _rest <<<"$line"
    [ "$fstype" = fuse.routefs ]
    opts=$(sed -e "s#state=[^,]*#state=$STATE#" -e "s#log=[^,]*#log=$RFS_LOG#" <<<"$opts")
    printf '%s %s %s %s 0 0\n' "$RFS_DIR/config.json" "$MNT" "$fstype" "$opts" >"$RFS_DIR/fstab"
    mkdir -p "$RFS_DIR/bin"
    ln -s "$ROUTEFS_BIN" "$RFS_DIR/bin/routefs"
    # In a private mount namespace, the built routefs appears as /usr/local/bin/routefs
    # (sh's default PATH); nothing outside the namespace sees the mount or the binary.
    # shellcheck disable=SC2016  # $1 and $2 are the inner shell's
    run timeout 60 unshare --mount --propagation private sh -c '
        mount --bind "$1/bin" /usr/local/bin || exit 90
        mount -T "$1/fstab" "$2" || exit 91
        grep -q " $2 fuse.routefs " /proc/self/mounts || exit 92
        ls "$2/fast" >/dev/null || exit 93
        routefs umount "$2" || { fusermount3 -u -z "$2"; exit 94; }
        ! grep -q " $2 " /proc/self/mounts || exit 95' sh "$RFS_DIR" "$MNT" 3>&-
    echo "status $status: $output"
    cat "$RFS_LOG"
    assert_success
    grep -q "mounted at $MNT" "$RFS_LOG"
    grep -q "routefs umount: unmounting" "$RFS_LOG"
}

@test "examples/logrotate/routefs: a forced rotation renames the log and the daemon writes to a new one" {
    command -v logrotate >/dev/null || skip "logrotate is not installed"
    rfs_mount
    # The example with this test's log file, and a signal to this daemon only (pkill -x
    # would reach every routefs on the machine).
    sed -e "s#/var/log/routefs.log#$RFS_LOG#" \
        -e "s#pkill -HUP -x routefs#kill -HUP $RFS_PID#" \
        "$RFS_REPO/examples/logrotate/routefs" >"$RFS_DIR/logrotate.conf"
    grep -q "kill -HUP $RFS_PID" "$RFS_DIR/logrotate.conf"
    run timeout 20 logrotate --force --state "$RFS_DIR/logrotate.state" "$RFS_DIR/logrotate.conf"
    echo "$output"
    assert_success
    [ -f "$RFS_LOG.1" ]
    grep -q "mounted at" "$RFS_LOG.1"
    wait_for 5 grep -q "SIGHUP: log file reopened" "$RFS_LOG"
    refute grep -q "mounted at" "$RFS_LOG"
    [ "$(stat -c %a "$RFS_LOG")" = 600 ]
}

#!/usr/bin/env bats
# routefs end-to-end: resource limits that degrade gracefully.  A daemon started with a
# low descriptor limit (prlimit --nofile=256:256) and a flood of 1000 jobs on a provider
# that never answers: writers succeed or get a clear error, another tier keeps working
# within its own concurrency, every finished answer is saved, trouble shows in status,
# and the daemon exits 0 at unmount (no pthread_cancel abort for want of libgcc_s).
# Each test gets a fresh directory, simulator and daemon.

load helpers

FLOOD=1000          # prompts on the tier whose provider never answers
NOFILE=256          # the daemon's descriptor limit, soft and hard

setup() {
    command -v prlimit >/dev/null || skip "no prlimit"
    rfs_setup
}

teardown() {
    if [ -n "${HOLDER:-}" ]; then kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null; fi
    rfs_teardown
}

# limits_config — tier "hang" (sim/h, which never answers) may run the whole flood at
# once; tier "fast" (sim/a) runs 4 at a time.
limits_config() {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "tiers": {
    "hang": {"route": ["sim/h"], "retries": 0, "timeout_ms": 300000,
             "first_token_timeout_ms": 300000, "stall_timeout_ms": 300000,
             "concurrency": 1000},
    "fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 20000, "concurrency": 4}
  }
}
JSON
}

# mount_limited — rfs_mount with the daemon under prlimit (which execs it: same pid).
mount_limited() {
    local real="$ROUTEFS_BIN"
    printf '#!/bin/sh\nexec prlimit --nofile=%d:%d -- "%s" "$@"\n' "$NOFILE" "$NOFILE" \
        "$real" >"$RFS_DIR/limited.sh"
    chmod +x "$RFS_DIR/limited.sh"
    ROUTEFS_BIN="$RFS_DIR/limited.sh" rfs_mount "$@"
    local got
    got="$(awk '/Max open files/ {print $4}' "/proc/$RFS_PID/limits")"
    [ "$got" = "$NOFILE" ] || { echo "daemon limit: $got"; return 1; }
}

# open_fds — descriptors the daemon holds now.
open_fds() { ls "/proc/$RFS_PID/fd" | wc -l; }

# flood — write $FLOOD prompts into hang/; prints "ok N" and "err N", and the distinct
# error messages, one per line, into $RFS_DIR/flood.err.
flood() {
    local i ok=0 bad=0
    : >"$RFS_DIR/flood.err"
    for ((i = 0; i < FLOOD; i++)); do
        if printf 'flood %d\n' "$i" >"$MNT/hang/p$i" 2>>"$RFS_DIR/flood.err"; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
        fi
    done
    echo "ok $ok err $bad"
}

# one_round — the whole scenario once; fails with what went wrong.
one_round() {
    limits_config
    mount_limited
    sim_behave sim/h '{"mode": "hang"}'
    run flood
    echo "flood: $output"
    local flood_result="$output"
    # every writer succeeded: a prompt costs the daemon no descriptor (it is kept in
    # memory until closed, and the store's files stay open); a refusal would have to be a
    # clear one-line error
    if [ -s "$RFS_DIR/flood.err" ]; then
        echo "writer errors (distinct):"
        sed -E 's/p[0-9]+/pN/' "$RFS_DIR/flood.err" | sort | uniq -c
    fi
    [ "$flood_result" = "ok $FLOOD err 0" ] || return 1
    # the flood is in flight: as many requests as the daemon can hold connections for
    wait_for 20 _sim_in_flight_at_least sim/h 184 || {
        echo "sim/h in flight: $(sim_model_stat sim/h in_flight)"; return 1; }
    echo "fds in use: $(open_fds) of $NOFILE; sim/h in flight: $(sim_model_stat sim/h in_flight)"

    # the other tier keeps working, within its own concurrency
    local i t0 t1
    t0="$(now_ms)"
    for i in 1 2 3 4 5 6 7 8; do
        printf 'fast %d\n' "$i" >"$MNT/fast/q$i" || { echo "write fast/q$i failed"; return 1; }
    done
    for i in 1 2 3 4 5 6 7 8; do
        out="$(read_out "$MNT/fast/q$i.out")" || {
            echo "fast/q$i.out:"; cat "$MNT/fast/q$i.err" 2>&1; cat "$MNT/fast/q$i.meta"; return 1; }
        [[ $out == "sim[sim/a]: fast $i" ]] || { echo "fast/q$i.out: $out"; return 1; }
        [ "$(jq -r .state "$MNT/fast/q$i.meta")" = done ] || { cat "$MNT/fast/q$i.meta"; return 1; }
    done
    t1="$(now_ms)"
    echo "fast tier: 8 jobs in $((t1 - t0)) ms"
    [ "$(sim_model_stat sim/a max_in_flight)" -le 4 ] || {
        echo "sim/a max_in_flight: $(sim_model_stat sim/a max_in_flight)"; return 1; }
    # every finished answer was saved: in the store, with no "could not be saved"
    [ "$(state_done fast)" = 8 ] || { echo "fast done in store: $(state_done fast)"; return 1; }
    ! grep -rlF "could not be saved" "$MNT/fast" "$RFS_LOG" || return 1
    cat "$MNT/status" >"$RFS_DIR/status.txt"
    cat "$RFS_DIR/status.txt"
    # the hang tier holds what its share allows (192 sockets for 256 descriptors, 4 kept
    # for lookups, 4 for tier fast), and status says so
    grep -qF "tier hang: 184 running, 816 queued, 0 parked, 0 writing (at most 184 at once, not 1000: the descriptor limit is shared among tiers)" "$RFS_DIR/status.txt" || return 1
    grep -qxF "tier fast: 0 running, 0 queued, 0 parked, 0 writing" "$RFS_DIR/status.txt" || return 1
    # no descriptor ran short (status would say "descriptors: SHORT", see the next test)
    ! grep -q '^descriptors:' "$RFS_DIR/status.txt" || return 1

    # the daemon stops cleanly with the flood still in flight
    local pid="$RFS_PID" rc
    fusermount3 -u "$MNT" || { echo "fusermount3 -u failed"; return 1; }
    _wait_pid "$pid" 20 || { echo "routefs still running 20 s after the unmount"; return 1; }
    rc=0
    wait "$pid" || rc=$?
    RFS_PID=""
    echo "exit status: $rc"
    ! grep -F "libgcc_s" "$RFS_DIR/routefs.stderr" "$RFS_LOG" || return 1
    [ "$rc" -eq 0 ]
}

_sim_in_flight_at_least() { [ "$(sim_model_stat "$1" in_flight)" -ge "$2" ]; }

@test "fd limit 256, 1000 jobs hanging on one tier: run 1" {
    one_round
}

@test "fd limit 256, 1000 jobs hanging on one tier: run 2" {
    one_round
}

@test "fd limit 256, 1000 jobs hanging on one tier: run 3" {
    one_round
}

@test "fd limit 256, 1000 jobs hanging on one tier: run 4" {
    one_round
}

@test "scratch files held open cannot take the descriptors the store and the tiers need" {
    limits_config
    mount_limited
    sim_behave sim/h '{"mode": "hang"}'
    local i
    for ((i = 0; i < 300; i++)); do printf 'flood %d\n' "$i" >"$MNT/hang/p$i"; done
    wait_for 20 _sim_in_flight_at_least sim/h 184
    # 400 scratch files opened and held (an editor's or a tool's): each costs the daemon a
    # descriptor; those it cannot spare are refused with EMFILE
    mkdir "$MNT/fast/.junk"
    echo "kept whole" >"$MNT/fast/.junk/existing"
    python3 - "$MNT/fast/.junk" "$RFS_DIR/held.txt" <<'PY' &
import os, sys, time
held, errors = [], {}
for i in range(400):
    try:
        held.append(open(os.path.join(sys.argv[1], "f%d" % i), "w"))
    except OSError as e:
        errors[e.strerror] = errors.get(e.strerror, 0) + 1
with open(sys.argv[2], "w") as out:
    out.write("%d %s\n" % (len(held), " ".join("%s=%d" % kv for kv in errors.items())))
time.sleep(30)
PY
    HOLDER=$!
    wait_for 20 test -s "$RFS_DIR/held.txt"
    read -r held errors <"$RFS_DIR/held.txt" || true
    echo "scratch files held: $held; refused: $errors; daemon fds: $(open_fds) of $NOFILE"
    [ "$held" -ge 1 ]
    [[ $errors == "Too many open files=$((400 - held))" ]]
    # refused ones left nothing behind (nor truncated a file), and each was counted
    [ "$(ls "$MNT/fast/.junk" | wc -l)" = "$((held + 1))" ]
    run sh -c 'echo overwritten >"$1"' _ "$MNT/fast/.junk/existing"
    assert_failure
    assert_output --partial "Too many open files"
    run grep '^descriptors: ' "$MNT/status"
    assert_output --regexp "^descriptors: SHORT: $((400 - held + 1)) time\(s\) no file descriptor was left \(EMFILE, Too many open files; limit $NOFILE\), the last [0-9]+ s ago for a scratch file"
    # the other tier still connects, and its answers are saved and readable
    for i in 1 2 3 4 5 6; do printf 'fast %d\n' "$i" >"$MNT/fast/q$i"; done
    for i in 1 2 3 4 5 6; do
        run read_out "$MNT/fast/q$i.out"
        [ "$status" -eq 0 ] || { cat "$MNT/fast/q$i.err"; false; }
        [ "$output" = "sim[sim/a]: fast $i" ]
    done
    [ "$(state_done fast)" = 6 ]
    run ! grep -lF "could not be saved" "$MNT"/fast/q* "$RFS_LOG"
    # status says that the hang tier is held to its share
    run cat "$MNT/status"
    echo "$output"
    assert_output --partial "tier hang: 184 running, 116 queued, 0 parked, 0 writing (at most 184 at once, not 1000: the descriptor limit is shared among tiers)"
    assert_line "tier fast: 0 running, 0 queued, 0 parked, 0 writing"
    kill "$HOLDER"
    wait "$HOLDER" || true
    HOLDER=""
    # once the files are closed, scratch files open again; the refused write changed nothing
    wait_for 10 sh -c 'echo again >"$1"' _ "$MNT/fast/.junk/after"
    [ "$(cat "$MNT/fast/.junk/after")" = again ]
    [ "$(cat "$MNT/fast/.junk/existing")" = "kept whole" ]
}

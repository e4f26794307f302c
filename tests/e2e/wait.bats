#!/usr/bin/env bats
# `routefs wait`: exit status (0 done, 1 failed, 2 usage, 3 timeout, 4 mount gone, 128+N
# signal), --each, progress output (plain and on a terminal), on a real mount against
# routefs-sim.  Every run is bounded by `timeout`.

load helpers

setup() {
    rfs_setup
    rfs_default_config   # tier "fast": sim/a then backup sim/b; tier "other": sim/c only, retries 0
}

teardown() {
    rfs_teardown
}

# rfs_wait ARGS... — `routefs wait`, bounded (20 s), fd 3 closed.  Use as `run rfs_wait ...`.
rfs_wait() { timeout 20 "$ROUTEFS_BIN" wait "$@" 3>&-; }

# submit TIER NAME... — write one prompt per NAME into TIER.
submit() {
    local tier=$1 name; shift
    for name in "$@"; do
        printf 'prompt %s\n' "$name" >"$MNT/$tier/$name"
    done
}

# --- exit status ------------------------------------------------------------------------

@test "wait: every job done: exit 0 and a summary line" {
    rfs_mount
    submit fast a.txt b.txt c.txt d.txt e.txt
    run rfs_wait "$MNT/fast"
    echo "$output"
    assert_success
    assert_output --partial "5 jobs: 5 done, 0 failed"
    for n in a b c d e; do
        [ "$(meta "$MNT/fast/$n.txt.meta" .state)" = "done" ]
    done
}

@test "wait: a failed job (500, single hop, retries 0): exit 1, the job and its error named" {
    rfs_mount
    sim_behave sim/c '{"status": 500}'
    submit other bad.txt
    submit fast good.txt
    run rfs_wait "$MNT"
    echo "$output"
    [ "$status" -eq 1 ]
    assert_output --partial "2 jobs: 1 done, 1 failed"
    assert_output --partial "failed: other/bad.txt:"
    assert_output --partial "500"
    [ -f "$MNT/other/bad.txt.err" ]
}

@test "wait: --timeout on a slow job: exit 3, says it timed out and what is pending" {
    rfs_mount
    sim_behave sim/c '{"latency_ms": 4000}'
    submit other slow.txt
    t0=$(now_ms)
    run rfs_wait --timeout 0.5 "$MNT/other"
    t1=$(now_ms)
    echo "$output"
    [ "$status" -eq 3 ]
    assert_output --partial "timed out"
    assert_output --partial "pending: other/slow.txt"
    echo "elapsed: $((t1 - t0)) ms"
    [ $((t1 - t0)) -lt 3000 ]
}

@test "wait: a prompt file, or its .out/.meta, names one job; other jobs are not waited for" {
    rfs_mount
    sim_behave sim/c '{"latency_ms": 4000}'
    submit other slow.txt
    submit fast quick.txt
    run rfs_wait "$MNT/fast/quick.txt.out" "$MNT/fast/quick.txt.meta" "$MNT/fast/quick.txt"
    echo "$output"
    assert_success
    assert_output --partial "1 job: 1 done, 0 failed"
}

@test "wait: temporary names and empty prompts are not jobs" {
    rfs_mount
    submit fast real.txt 'draft.txt~' draft.txt.swp
    : >"$MNT/fast/empty.txt"
    run rfs_wait --timeout 10 "$MNT/fast"
    echo "$output"
    assert_success
    assert_output --partial "1 job: 1 done, 0 failed"
}

@test "wait: tag directories are walked; prompts added while it waits are waited for too" {
    rfs_mount
    mkdir -p "$MNT/other/batch/day1"
    sim_behave sim/c '{"latency_ms": 1500}'
    submit other/batch/day1 one.txt
    timeout 20 "$ROUTEFS_BIN" wait --interval 0 "$MNT/other/batch" >"$RFS_DIR/wait.out" 2>&1 3>&- &
    local pid=$!
    sleep 0.5
    submit other/batch two.txt
    wait "$pid"
    cat "$RFS_DIR/wait.out"
    [[ "$(tail -n 1 "$RFS_DIR/wait.out")" == *"2 jobs: 2 done, 0 failed"* ]]
    [ "$(meta "$MNT/other/batch/two.txt.meta" .state)" = "done" ]
}

@test "wait: a prompt deleted while it waits is forgotten, and the summary says so" {
    rfs_mount
    sim_behave sim/c '{"latency_ms": 5000}'
    submit other slow.txt
    submit fast quick.txt
    timeout 20 "$ROUTEFS_BIN" wait --interval 0 "$MNT" >"$RFS_DIR/wait.out" 2>&1 3>&- &
    local pid=$!
    sleep 0.5
    rm "$MNT/other/slow.txt"
    local rc=0
    wait "$pid" || rc=$?
    cat "$RFS_DIR/wait.out"
    [ "$rc" -eq 0 ]
    grep -q "1 job: 1 done, 0 failed (.*); 1 prompt deleted meanwhile" "$RFS_DIR/wait.out"
}

@test "wait: usage errors exit 2" {
    rfs_mount
    run rfs_wait
    [ "$status" -eq 2 ]
    assert_output --partial "no PATH"
    run rfs_wait --timeout soon "$MNT/fast"
    [ "$status" -eq 2 ]
    run rfs_wait --bogus "$MNT/fast"
    [ "$status" -eq 2 ]
    run rfs_wait "$MNT/fast/no-such-prompt"
    [ "$status" -eq 2 ]
    run rfs_wait "$RFS_DIR"
    [ "$status" -eq 2 ]
    assert_output --partial "not inside a routefs mount"
    run rfs_wait "$MNT/status"
    [ "$status" -eq 2 ]
}

@test "wait: the mount going away ends the wait with exit 4" {
    rfs_mount
    sim_behave sim/c '{"latency_ms": 10000}'
    submit other slow.txt
    timeout 20 "$ROUTEFS_BIN" wait "$MNT/other" >"$RFS_DIR/wait.out" 2>&1 3>&- &
    local pid=$!
    sleep 0.5
    rfs_unmount
    local rc=0
    wait "$pid" || rc=$?
    cat "$RFS_DIR/wait.out"
    [ "$rc" -eq 4 ]
    grep -q "no longer mounted\|not connected" "$RFS_DIR/wait.out"
}

# --- progress output ----------------------------------------------------------------------

@test "wait: not a terminal: plain progress lines, then the summary; no control characters" {
    rfs_mount
    sim_behave sim/c '{"latency_ms": 1500}'
    submit other p1.txt p2.txt
    run rfs_wait --interval 0.3 "$MNT/other"
    echo "$output"
    assert_success
    # at least two progress lines while pending, then the summary last
    [ "$(grep -c '^routefs wait: 0/2 ended: 0 done, 0 failed, 2 pending' <<<"$output")" -ge 2 ]
    [[ ${lines[-1]} == *"2 jobs: 2 done, 0 failed"* ]]
    # no carriage return and no escape sequence anywhere (bats' `!` would not fail a test)
    [[ $output != *$'\r'* ]]
    [[ $output != *$'\e'* ]]
}

@test "wait: on a terminal: a progress bar redrawn in place, then the summary" {
    command -v script >/dev/null || skip "util-linux script is not installed"
    script --version 2>/dev/null | grep -q util-linux || skip "script is not util-linux's"
    rfs_mount
    sim_behave sim/c '{"latency_ms": 1500}'
    submit other p1.txt p2.txt p3.txt
    # script gives routefs wait a pty for stdin/stdout/stderr; -e: its exit status.
    run timeout 20 script -qec "TERM=xterm $ROUTEFS_BIN wait $MNT/other" /dev/null 3>&-
    printf '%s\n' "$output" | cat -v
    assert_success
    [[ $output == *$'\r'* ]]                         # redrawn in place
    [[ $output == *$'\e[K'* ]]                       # and the rest of the line cleared
    [[ $output == *"[-"*"] 0/3  done 0  failed 0  pending 3"* ]]
    [[ $output == *"ETA"* ]]
    [[ $output == *"3 jobs: 3 done, 0 failed"* ]]
    # about five redraws a second: a 1.5 s wait draws several times
    [ "$(grep -o $'\r\[' <<<"$output" | wc -l)" -ge 4 ]
}

@test "wait: --quiet prints nothing when every job is done" {
    rfs_mount
    submit fast q.txt
    run rfs_wait --quiet "$MNT/fast"
    assert_success
    assert_output ""
}

# --- --each -----------------------------------------------------------------------------

@test "wait --each: stdout gets each done prompt's path as it ends, spelled as given; progress stays on stderr" {
    rfs_mount
    sim_behave sim/c '{"status": 500}'
    mkdir -p "$MNT/fast/tag"
    submit fast a.txt
    submit fast/tag b.txt
    submit other bad.txt
    cd "$RFS_DIR"
    timeout 20 "$ROUTEFS_BIN" wait --each --interval 0 mnt/fast/ mnt/other \
        >"$RFS_DIR/each.out" 2>"$RFS_DIR/each.err" 3>&- || echo "status $?" >"$RFS_DIR/each.rc"
    echo "stdout:"; cat "$RFS_DIR/each.out"
    echo "stderr:"; cat "$RFS_DIR/each.err"
    [ "$(cat "$RFS_DIR/each.rc")" = "status 1" ]          # one failed
    [ "$(sort "$RFS_DIR/each.out")" = "$(printf '%s\n' mnt/fast/a.txt mnt/fast/tag/b.txt)" ]
    grep -q "3 jobs: 2 done, 1 failed" "$RFS_DIR/each.err"
    grep -q "failed: other/bad.txt" "$RFS_DIR/each.err"
    # the paths work as they are printed
    xargs -I{} cat {}.out <"$RFS_DIR/each.out" >"$RFS_DIR/results"
    grep -qF "sim[sim/a]: prompt a.txt" "$RFS_DIR/results"   # results end without a newline
    grep -qF "sim[sim/a]: prompt b.txt" "$RFS_DIR/results"
}

@test "wait --each: a path is printed as soon as its job ends, not at the end" {
    rfs_mount
    sim_behave sim/c '{"latency_ms": 3000}'
    submit fast quick.txt
    submit other slow.txt
    timeout 20 "$ROUTEFS_BIN" wait --each --quiet "$MNT/fast/quick.txt" "$MNT/other/slow.txt" \
        >"$RFS_DIR/each.out" 2>&1 3>&- &
    local pid=$!
    wait_for 2 grep -q "quick.txt" "$RFS_DIR/each.out"
    kill -0 "$pid"                                   # still waiting for slow.txt
    [ "$(wc -l <"$RFS_DIR/each.out")" -eq 1 ]
    wait "$pid"
    [ "$(wc -l <"$RFS_DIR/each.out")" -eq 2 ]
    [ "$(tail -n 1 "$RFS_DIR/each.out")" = "$MNT/other/slow.txt" ]
}

@test "wait: SIGTERM while waiting exits 128+15 and says how many are pending" {
    rfs_mount
    sim_behave sim/c '{"latency_ms": 10000}'
    submit other slow.txt
    # Not under timeout(1): it passes a SIGTERM on and then sends SIGCONT, which under
    # ASan can land while LeakSanitizer is stopping the exiting process and cancel its
    # SIGSTOP (the two then wait for each other forever).  The wait is bounded here.
    "$ROUTEFS_BIN" wait "$MNT/other" >"$RFS_DIR/wait.out" 2>&1 3>&- &
    local pid=$!
    sleep 0.5
    kill -TERM "$pid"
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        echo "routefs wait did not exit within 20 s of SIGTERM" >&2
        return 1
    fi
    local rc=0
    wait "$pid" || rc=$?
    cat "$RFS_DIR/wait.out"
    [ "$rc" -eq 143 ]
    grep -q "interrupted: 1 of 1 jobs still pending" "$RFS_DIR/wait.out"
}

#!/usr/bin/env bats
# routefs end-to-end: requests in flight when the daemon is killed.  They are sent again
# after recovery (the provider may bill them twice); status and the log say how many,
# each such job's meta says so.  With "resend_in_flight": false they fail with a clear
# .err instead, and the provider sees nothing more.
# Each test gets a fresh directory, simulator and daemon.

load helpers

N=6           # jobs in flight at the kill

setup() {
    rfs_setup
}

teardown() {
    rfs_teardown
}

# resend_config true|false — tier "slow" on sim/s (slow to answer: the kill catches its
# requests in flight), tier "fast" on sim/a (answered at once, before the kill).
resend_config() {
    rfs_config <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "resend_in_flight": $1,
  "tiers": {
    "slow": {"route": ["sim/s"], "retries": 0, "timeout_ms": 60000,
             "first_token_timeout_ms": 60000},
    "fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000}
  }
}
JSON
}

_in_flight_is() { [ "$(sim_model_stat sim/s in_flight)" -eq "$1" ]; }
_ended() {
    local s
    s="$(jq -r .state "$1.meta" 2>/dev/null)"
    [ "$s" = done ] || [ "$s" = failed ]
}
_all_ended() {
    local i
    for ((i = 1; i <= N; i++)); do _ended "$MNT/slow/p$i" || return 1; done
}

# crash_in_flight — N requests to sim/s in flight and one finished job, then kill -9 and
# a lazy unmount; the sim then answers at once.
crash_in_flight() {
    rfs_mount
    sim_behave sim/s '{"latency_ms": 30000}'
    echo done-before >"$MNT/fast/before"
    run read_out "$MNT/fast/before.out"
    assert_success
    local i
    for ((i = 1; i <= N; i++)); do echo "slow $i" >"$MNT/slow/p$i"; done
    wait_for 10 _in_flight_is "$N"
    sleep 0.5                      # the "sent" marks reach the store (group commit)
    [ "$(sim_count sim/s)" = "$N" ]
    kill -9 "$RFS_PID"
    wait "$RFS_PID" 2>/dev/null || true
    RFS_PID=""
    fusermount3 -u -z "$MNT"
    sim_behave sim/s '{"latency_ms": 0}'
}

@test "kill -9 with $N requests in flight: re-sent after recovery, counted in status, log and meta" {
    resend_config true
    crash_in_flight
    rfs_mount
    wait_for 20 _all_ended
    local i
    for ((i = 1; i <= N; i++)); do
        [ "$(jq -r .state "$MNT/slow/p$i.meta")" = done ]
        [ "$(jq -r .resent_after_crash "$MNT/slow/p$i.meta")" = true ]
        [ "$(cat "$MNT/slow/p$i.out")" = "sim[sim/s]: slow $i" ]
    done
    # the provider got each of them twice
    [ "$(sim_count sim/s)" = $((2 * N)) ]
    # the job that had finished was not sent again, and its meta says nothing of it
    [ "$(sim_count sim/a)" = 1 ]
    [ "$(jq -r '.resent_after_crash // "absent"' "$MNT/fast/before.meta")" = absent ]
    run cat "$MNT/status"
    echo "$output"
    assert_line "recovery: $N request(s) were in flight when routefs last stopped and were sent again (the provider may bill them twice)"
    run grep -F "recovery:" "$RFS_LOG"
    assert_output --partial "recovery: $N request(s) were in flight when routefs stopped and are sent again; the provider may bill them twice"
    # a clean remount re-sends nothing, and status no longer speaks of it
    rfs_unmount
    rfs_mount
    run cat "$MNT/status"
    refute_output --partial "recovery:"
    [ "$(sim_count sim/s)" = $((2 * N)) ]
}

@test "kill -9 with requests in flight and resend_in_flight false: they fail clearly, none is re-sent" {
    resend_config false
    crash_in_flight
    rfs_mount
    wait_for 20 _all_ended
    local i
    for ((i = 1; i <= N; i++)); do
        [ "$(jq -r .state "$MNT/slow/p$i.meta")" = failed ]
        run cat "$MNT/slow/p$i.err"
        assert_output --partial "a request was in flight when routefs stopped; not sent again (resend_in_flight is false): rewrite the prompt to retry"
        run read_out "$MNT/slow/p$i.out"
        assert_failure
    done
    sleep 1
    [ "$(sim_count sim/s)" = "$N" ]          # nothing more reached the provider
    run cat "$MNT/status"
    echo "$output"
    refute_output --partial "were sent again"
    assert_line "recovery: $N request(s) were in flight when routefs last stopped and were not sent again (resend_in_flight is false): they failed"
    # rewriting one runs it again, once
    echo "slow 1" >"$MNT/slow/p1"
    run read_out "$MNT/slow/p1.out"
    assert_success
    [ "$(sim_count sim/s)" = $((N + 1)) ]
}

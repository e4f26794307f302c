#!/usr/bin/env bats
# routefs end-to-end: access follows the prompt.  With -o allow_other another user
# (nobody) reaches the mount, and the kernel checks permissions (default_permissions) on
# modes routefs gives: a prompt's results have the prompt's mode and owner, virtual files
# are the mount owner's alone, and -o shared_read opens them to the owner's group.
# The tests run as root and switch to uid 65534 with setpriv.
# Each test gets a fresh directory, simulator and daemon.

load helpers

setup() {
    [ "$(id -u)" -eq 0 ] || skip "needs root to switch to another user"
    getent passwd nobody >/dev/null || skip "no user nobody"
    command -v setpriv >/dev/null || skip "no setpriv"
    rfs_setup
    chmod 0755 "$RFS_DIR"          # the path is open: only the mount may refuse
}

teardown() {
    rfs_teardown
}

# as_nobody CMD... — run CMD as uid/gid 65534 with no supplementary groups.
as_nobody() {
    timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# as_nobody_in_group GID CMD... — the same, with GID as a supplementary group.
as_nobody_in_group() {
    local gid=$1; shift
    timeout 10 setpriv --reuid=65534 --regid=65534 --groups="$gid" "$@"
}

VFILES="config.json status providers.json spend.json activity.jsonl metrics.prom"

# denied CMD... — CMD fails with "Permission denied".
denied() {
    run "$@"
    echo "$*: status $status: $output"
    [ "$status" -ne 0 ] && [[ $output == *"Permission denied"* ]]
}

@test "allow_other: default_permissions is on, the mount is allow_other" {
    rfs_default_config
    rfs_mount -o allow_other
    local opts
    opts="$(awk -v m="$MNT" '$2 == m {print $4}' /proc/mounts)"
    echo "$opts"
    [[ ,$opts, == *,default_permissions,* ]]
    [[ ,$opts, == *,allow_other,* ]]
    # and without allow_other too
    rfs_unmount
    rfs_mount
    opts="$(awk -v m="$MNT" '$2 == m {print $4}' /proc/mounts)"
    [[ ,$opts, == *,default_permissions,* ]]
}

@test "allow_other: a 0600 prompt's .out .meta .err are 0600 and closed to another user" {
    rfs_default_config
    rfs_mount -o allow_other
    sim_behave sim/c '{"status": 400}'
    (umask 077; echo "private question" >"$MNT/fast/mine"; echo "private failure" >"$MNT/other/bad")
    wait_for 15 job_ended "$MNT/fast/mine"
    wait_for 15 job_ended "$MNT/other/bad"
    [ "$(jq -r .state "$MNT/fast/mine.meta")" = done ]
    [ "$(jq -r .state "$MNT/other/bad.meta")" = failed ]
    local f
    for f in fast/mine fast/mine.out fast/mine.meta other/bad other/bad.meta other/bad.err; do
        [ "$(stat -c '%a %u %g' "$MNT/$f")" = "600 0 0" ] || { stat "$MNT/$f"; false; }
    done
    # nobody reaches the mount and lists it, but reads none of it
    run as_nobody ls "$MNT/fast"
    assert_success
    assert_line mine
    for f in fast/mine fast/mine.out fast/mine.meta other/bad.meta other/bad.err; do
        denied as_nobody cat "$MNT/$f"
    done
    denied as_nobody getfattr -n user.routefs.model "$MNT/fast/mine.out"
    # ... nor writes into a tier, the owner's directory
    denied as_nobody sh -c 'echo intruder >"$1"' _ "$MNT/fast/intruder"
    denied as_nobody sh -c 'echo x >>"$1"' _ "$MNT/fast/mine"
    denied as_nobody rm -f "$MNT/fast/mine"
    denied as_nobody mkdir "$MNT/fast/tagdir"
    [ "$(jq -r .state "$MNT/fast/mine.meta")" = done ]
    [ -z "$(state_sql "SELECT 1 FROM prompts WHERE path = 'fast/intruder'")" ]
    # the owner reads them all
    run read_out "$MNT/fast/mine.out"
    assert_success
    assert_output --partial "private question"
}

@test "allow_other: a prompt made 0644 has results readable by others; chmod moves them" {
    rfs_default_config
    rfs_mount -o allow_other
    (umask 022; echo "public question" >"$MNT/fast/shared")
    wait_for 15 job_ended "$MNT/fast/shared"
    [ "$(stat -c %a "$MNT/fast/shared")" = 644 ]
    [ "$(stat -c %a "$MNT/fast/shared.out")" = 644 ]
    [ "$(stat -c %a "$MNT/fast/shared.meta")" = 644 ]
    run as_nobody cat "$MNT/fast/shared.out"
    assert_success
    assert_output --partial "public question"
    run as_nobody jq -r .state "$MNT/fast/shared.meta"
    assert_output done
    # closing the prompt closes its results; opening it again opens them
    chmod 600 "$MNT/fast/shared"
    [ "$(stat -c %a "$MNT/fast/shared.out")" = 600 ]
    denied as_nobody cat "$MNT/fast/shared.out"
    chmod 640 "$MNT/fast/shared"
    [ "$(stat -c %a "$MNT/fast/shared.meta")" = 640 ]
    run as_nobody_in_group 0 cat "$MNT/fast/shared.out"
    assert_success
    denied as_nobody cat "$MNT/fast/shared.out"
    # the owner follows chown too
    chown 65534:65534 "$MNT/fast/shared"
    chmod 600 "$MNT/fast/shared"
    [ "$(stat -c '%a %u %g' "$MNT/fast/shared.out")" = "600 65534 65534" ]
    run as_nobody cat "$MNT/fast/shared.out"
    assert_success
}

@test "allow_other: virtual files are the mount owner's alone (0400, config.json 0600)" {
    rfs_default_config
    rfs_mount -o allow_other
    echo hi >"$MNT/fast/p"
    wait_for 15 job_ended "$MNT/fast/p"
    local v
    for v in $VFILES; do
        local want=400
        [ "$v" = config.json ] && want=600
        [ "$(stat -c '%a %u' "$MNT/$v")" = "$want 0" ] || { stat "$MNT/$v"; false; }
        denied as_nobody cat "$MNT/$v"
        denied as_nobody_in_group 0 cat "$MNT/$v"      # not the group either
        cat "$MNT/$v" >/dev/null                         # the owner reads each
    done
    denied as_nobody sh -c 'echo "{}" >"$1"' _ "$MNT/config.json"
    [ "$(jq -r '.tiers | keys | join(",")' "$MNT/config.json")" = "fast,other" ]
}

@test "allow_other,shared_read: virtual files readable by the owner's group, not others" {
    rfs_default_config
    rfs_mount -o allow_other,shared_read
    # shared_read is routefs's own: not passed to the kernel
    run ! grep -q shared_read <<<"$(awk -v m="$MNT" '$2 == m {print $4}' /proc/mounts)"
    (umask 077; echo hi >"$MNT/fast/p")
    wait_for 15 job_ended "$MNT/fast/p"
    local v
    for v in $VFILES; do
        local want=440
        [ "$v" = config.json ] && want=640
        [ "$(stat -c '%a %g' "$MNT/$v")" = "$want 0" ] || { stat "$MNT/$v"; false; }
        run as_nobody_in_group 0 cat "$MNT/$v"
        [ "$status" -eq 0 ] || { echo "$v: $output"; false; }
        denied as_nobody cat "$MNT/$v"
    done
    run as_nobody_in_group 0 grep -c '^tier ' "$MNT/status"
    assert_output 2
    # reading is all the group gets: config.json stays the owner's to edit
    denied as_nobody_in_group 0 sh -c 'echo "{}" >"$1"' _ "$MNT/config.json"
    # and results still follow their prompt, not shared_read
    [ "$(stat -c %a "$MNT/fast/p.out")" = 600 ]
    denied as_nobody_in_group 0 cat "$MNT/fast/p.out"
}

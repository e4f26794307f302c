#!/usr/bin/env bats
# routefs storage: a full disk (a small tmpfs), injected write faults (ROUTEFS_FAULT_FILE),
# a crash mid-write, the upgrade of a routefs 0.1.0 state directory, and `routefs export`.
# Each test gets a fresh directory, simulator and daemon; every wait is bounded.

load helpers

setup() {
    rfs_setup
    TMPFS=""
}

teardown() {
    rfs_teardown_storage
}

# The test's tmpfs (test a) is unmounted before rfs_teardown removes the directory.
rfs_teardown_storage() {
    exec 5>&- 2>/dev/null || true
    if [ -n "${TMPFS:-}" ]; then
        rfs_unmount
        umount "$TMPFS" 2>/dev/null || umount -l "$TMPFS" 2>/dev/null || true
    fi
    rfs_teardown
}

# rfs_store_config CONCURRENCY — tier "batch" (sim/a, priced, so every paid answer has a
# ledger row with a cost) of CONCURRENCY, tier "other" (sim/c).
rfs_store_config() {
    rfs_config <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {"sim/a": {"prompt": 1.0, "completion": 2.0}},
  "tiers": {
    "batch": {"route": ["sim/a"], "retries": 0, "timeout_ms": 60000, "concurrency": $1},
    "other": {"route": ["sim/c"], "retries": 0, "timeout_ms": 5000}
  }
}
JSON
}

# write_prompts DIR FIRST LAST REPORT — prompts DIR/pNNNN (FIRST..LAST), one process; each
# line of REPORT is "NAME ok" or "NAME ERRNO-NAME" (a refused create, write or close).
write_prompts() {
    python3 - "$@" <<'PY'
import errno, os, sys
d, first, last, report = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(report, "a") as rep:
    for i in range(first, last + 1):
        name = "p%04d" % i
        try:
            fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b"prompt %04d " % i + b"x" * 64)
            finally:
                os.close(fd)
            rep.write("%s ok\n" % name)
        except OSError as e:
            rep.write("%s %s\n" % (name, errno.errorcode.get(e.errno, str(e.errno))))
PY
}

# status_has TEXT — the mount's status file contains TEXT.
status_has() { grep -qF -- "$1" "$MNT/status"; }
# metric NAME — one value from metrics.prom.
metric() { awk -v n="$1" '$1 == n { print $2 }' "$MNT/metrics.prom"; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_pos() { [ "$(metric "$1")" -gt 0 ] 2>/dev/null; }
sim_count_is() { [ "$(sim_count "$1")" -eq "$2" ]; }
sim_count_ge() { [ "$(sim_count "$1")" -ge "$2" ]; }

# ledger_check TIER N — the ledger has exactly N rows for TIER, one per prompt path, and
# every finished prompt of TIER has exactly one.
ledger_check() {
    local rows dup done_paths unbilled
    rows=$(state_sql "SELECT count(*) FROM ledger WHERE tier = '$1'")
    dup=$(state_sql "SELECT count(*) FROM (SELECT path FROM ledger WHERE tier = '$1'
                     GROUP BY path HAVING count(*) != 1)")
    done_paths=$(state_sql "SELECT count(*) FROM prompts WHERE dir = '$1' AND state = 3")
    unbilled=$(state_sql "SELECT count(*) FROM prompts p WHERE dir = '$1' AND state = 3 AND
                          (SELECT count(*) FROM ledger l WHERE l.path = p.path) != 1")
    echo "ledger: $rows rows for $1 (want $2), $dup paths billed twice, $done_paths done, $unbilled done without exactly one row"
    [ "$rows" -eq "$2" ] && [ "$dup" -eq 0 ] && [ "$done_paths" -eq "$2" ] && [ "$unbilled" -eq 0 ]
}

# errno_of OP PATH — attempt OP (create, open, append, write-after-open) and print the
# errno name (or "ok").  "write" opens PATH first and writes after touching $FAULT.
errno_of() {
    python3 - "$@" <<'PY'
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "create":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    elif op == "open":
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    elif op == "append":
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"more")
    os.close(fd)
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
}

# --- a. a full disk, for real ------------------------------------------------------------

# write_paced DIR N REPORT — N prompts DIR/pNNNN, one every 40 ms (answers arrive while the
# batch is written), each reported as in write_prompts.
write_paced() {
    local i
    for ((i = 1; i <= $2; i++)); do
        write_prompts "$1" "$i" "$i" "$3"
        sleep 0.04
    done
}

@test "full disk (tmpfs): writers get ENOSPC, paid answers held and committed once space is back, waiting jobs resume, one ledger row each, nothing sent twice" {
    TMPFS="$STATE"
    mount -t tmpfs -o size=6m,mode=700 routefs-e2e-state "$TMPFS"
    rfs_store_config 6
    rfs_mount
    # answers of 24 KiB: a few dozen fill what is left of the tmpfs below.  They take
    # 1.5 s, so whatever fills the disk, several paid answers are still on their way.
    sim_behave 'sim/a' "{\"latency_ms\": 1500, \"content\": \"$(head -c 24576 /dev/zero | tr '\0' y)\"}"
    local avail
    avail=$(df -B1 --output=avail "$TMPFS" | tail -n 1)
    dd if=/dev/zero of="$TMPFS/filler" bs=4096 count=$(( (avail - 1536 * 1024) / 4096 )) status=none
    df -h "$TMPFS"
    write_paced "$MNT/batch" 150 "$RFS_DIR/written"
    ok=$(grep -c ' ok$' "$RFS_DIR/written" || true)
    refused=$(grep -c ' ENOSPC$' "$RFS_DIR/written" || true)
    echo "$ok prompts accepted, $refused refused with ENOSPC of 150"
    grep -v -E ' (ok|ENOSPC)$' "$RFS_DIR/written" && return 1
    [ "$ok" -gt 0 ] && [ "$refused" -gt 0 ]
    # the store says why, everywhere
    wait_for 10 status_has "store: FAILING"
    run cat "$MNT/status"
    echo "$output" | head -n 4
    assert_output --partial "database or disk is full"
    metric_is routefs_store_up 0
    grep -q "state store failing: .*full" "$RFS_LOG"
    run bash -c "echo hello >'$MNT/batch/from-a-shell'"
    echo "$output"
    [ "$status" -ne 0 ]
    assert_output --partial "No space left on device"
    # while full, nothing new is sent; every answer sent for is committed or held
    sleep 1
    sent=$(sim_count sim/a)
    sleep 2
    [ "$(sim_count sim/a)" -eq "$sent" ]
    done_full=$(state_done batch)
    held=$(metric routefs_store_held_answers)
    echo "while full: $sent sent, $done_full committed, $held paid answer(s) held" \
         "($(metric routefs_store_held_ops) writes)"
    [ "$held" -gt 0 ] && [ "$done_full" -lt "$ok" ]
    [ $((done_full + held)) -eq "$sent" ]
    grep -qF "($held paid answer(s))" "$MNT/status"
    # space comes back: the held answers are committed, the waiting jobs resume
    rm -f "$TMPFS/filler"
    wait_for 20 status_has "store: ok"
    metric_is routefs_store_up 1
    wait_for 60 state_all_done batch "$ok"
    sleep 1
    run sim_count sim/a
    echo "sent in all: $output of $ok accepted"
    [ "$output" -eq "$ok" ]
    ledger_check batch "$ok"
    for name in $(awk '$2 == "ok" { print $1 }' "$RFS_DIR/written" | sed -n '1p;$p'); do
        [ "$(stat -c %s "$MNT/batch/$name.out")" -eq 24576 ]
    done
    # and after a remount: the same, nothing sent again (refused prompts never run)
    rfs_unmount
    rfs_mount
    sleep 2
    ledger_check batch "$ok"
    [ "$(sim_count sim/a)" -eq "$ok" ]
    [ "$(state_sql "SELECT count(*) FROM prompts WHERE dir = 'batch' AND state IN (0, 1)")" -eq 0 ]
    last=$(awk '$2 == "ok" { n = $1 } END { print n }' "$RFS_DIR/written")
    [ "$(stat -c %s "$MNT/batch/$last.out")" -eq 24576 ]
}

# --- b. fault injection ----------------------------------------------------------------

# fault_cycle MODE ERRNO — the store fails (MODE in $FAULT) with answers in flight; new
# writes are refused with ERRNO; the paid answers are held, then committed when $FAULT
# goes; the queued jobs resume by themselves; one ledger row per paid answer.
fault_cycle() {
    local mode=$1 want=$2 n=12
    FAULT="$RFS_DIR/fault"
    rfs_store_config 4
    ROUTEFS_FAULT_FILE="$FAULT" rfs_mount
    sim_behave 'sim/a' '{"latency_ms": 1500}'
    printf 'before the fault\n' >"$MNT/batch/early"
    wait_for 10 state_all_done batch 1
    sim_reset
    sim_behave 'sim/a' '{"latency_ms": 1500}'
    # an fd opened while the store works, written after it fails
    exec 5>"$MNT/batch/late"
    write_prompts "$MNT/batch" 1 $n "$RFS_DIR/written"
    run grep -c ' ok$' "$RFS_DIR/written"
    [ "$output" -eq $n ]
    wait_for 10 sim_count_is sim/a 4
    echo "$mode" >"$FAULT"
    # the four answers in flight arrive, cannot be committed: the store fails, holds them
    wait_for 10 status_has "store: FAILING"
    wait_for 10 metric_pos routefs_store_held_answers
    run cat "$MNT/status"
    echo "$output"
    assert_output --partial "new prompts are refused"
    assert_output --partial "paid answer(s))"
    metric_is routefs_store_up 0
    grep -q "state store failing" "$RFS_LOG"
    # writers are told, at create, open and write
    run errno_of create "$MNT/batch/new"
    assert_output "$want"
    run errno_of open "$MNT/batch/p0001"
    assert_output "$want"
    run errno_of append "$MNT/batch/p0002"
    assert_output "$want"
    run bash -c "printf more >&5"
    echo "write on an fd opened before: $status $output"
    [ "$status" -ne 0 ]
    if [ "$want" = ENOSPC ]; then assert_output --partial "No space left on device"; fi
    if [ "$want" = EIO ]; then assert_output --partial "Input/output error"; fi
    exec 5>&-
    # Nothing more is sent once the store is known to fail: the queued jobs wait.  (Jobs
    # that took a slot freed by an answer before the writer had seen the failure may
    # have gone out: their answers are held too.)
    sleep 2
    sent=$(sim_count sim/a)
    sleep 2
    run sim_count sim/a
    echo "sent while failing: $sent, 2 s later $output"
    grep -E "store|recover" "$RFS_LOG" || true
    [ "$output" -eq "$sent" ]
    [ "$sent" -lt $n ]
    [ "$(state_done batch)" -eq 1 ]
    # every answer sent for while failing has come back (1.5 s) and is held
    [ "$(metric routefs_store_held_answers)" -eq "$sent" ]
    grep -qF "($sent paid answer(s))" "$MNT/status"
    rm -f "$FAULT"
    wait_for 15 status_has "store: ok"
    metric_is routefs_store_up 1
    wait_for 30 state_all_done batch $((n + 1))
    sleep 1
    run sim_count sim/a
    echo "sent in all: $output"
    [ "$output" -eq $n ]
    ledger_check batch $((n + 1))
    for i in $(seq -f %04g 1 $n); do
        run read_out "$MNT/batch/p$i.out"
        assert_output "sim[sim/a]: prompt $i $(printf 'x%.0s' $(seq 64))"
    done
    grep -q "state store works again" "$RFS_LOG"
    # and after a remount: the same results, nothing sent again
    rfs_unmount
    rfs_mount
    sleep 1
    ledger_check batch $((n + 1))
    run read_out "$MNT/batch/p0003.out"
    assert_output --partial "prompt 0003"
    run sim_count sim/a
    [ "$output" -eq $n ]
}

@test "fault injection (full): writes refused with ENOSPC, paid answers held and committed, queued jobs resume, nothing sent twice" {
    fault_cycle full ENOSPC
}

@test "fault injection (eio): writes refused with EIO, paid answers held and committed, queued jobs resume, nothing sent twice" {
    fault_cycle eio EIO
}

# --- c. crash mid-write ------------------------------------------------------------------

@test "crash mid-write: prompts never closed are incomplete after kill -9 and a remount, never sent, run once rewritten, can be deleted" {
    rfs_store_config 4
    rfs_mount
    printf 'settled prompt\n' >"$MNT/batch/settled"
    wait_for 10 state_all_done batch 1
    [ "$(sim_count sim/a)" -eq 1 ]
    # a new prompt and a rewrite of a finished one, both cut off by the kill
    exec 5>"$MNT/batch/half"
    printf 'part of a prom' >&5
    exec 6>"$MNT/batch/settled"
    printf 'a rewrite, cut' >&6
    sleep 0.5
    kill -9 "$RFS_PID"
    wait "$RFS_PID" 2>/dev/null || true
    exec 5>&- 6>&-
    fusermount3 -u -z "$MNT"
    RFS_PID=""
    rfs_mount
    wait_state "$MNT/batch/half" incomplete
    wait_state "$MNT/batch/settled" incomplete
    run cat "$MNT/status"
    echo "$output"
    assert_output --partial "incomplete: 2 prompt(s) never closed by their writer"
    [ "$(state_sql "SELECT count(*) FROM prompts WHERE state = 2 AND writing = 0")" -eq 2 ]
    grep -q "2 prompt(s) were never closed" "$RFS_LOG"
    run timeout 10 cat "$MNT/batch/half.out"
    echo "half.out: $status $output"
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ]
    sleep 1
    run sim_count sim/a
    [ "$output" -eq 1 ]     # neither cut-off prompt was sent
    # rewritten whole, it runs once
    printf 'the whole prompt\n' >"$MNT/batch/half"
    run read_out "$MNT/batch/half.out"
    assert_output "sim[sim/a]: the whole prompt"
    [ "$(jq -r .state "$MNT/batch/half.meta")" = done ]
    sleep 0.5
    [ "$(sim_count sim/a)" -eq 2 ]
    # deleted, it is gone, and so is the status line
    rm "$MNT/batch/settled"
    [ ! -e "$MNT/batch/settled" ]
    [ ! -e "$MNT/batch/settled.meta" ]
    run cat "$MNT/status"
    refute_output --partial "incomplete:"
    [ "$(state_sql "SELECT count(*) FROM prompts WHERE path = 'batch/settled'")" -eq 0 ]
    # two paid answers, one row each (the deleted prompt's row stays: it was paid for)
    [ "$(state_sql "SELECT count(*) FROM ledger WHERE tier = 'batch'")" -eq 2 ]
    [ "$(state_sql "SELECT count(DISTINCT path) FROM ledger WHERE tier = 'batch'")" -eq 2 ]
    [ "$(sim_count sim/a)" -eq 2 ]
}

# --- d. upgrade from 0.1.0 ---------------------------------------------------------------

FIXTURE_01="$BATS_TEST_DIRNAME/fixtures/state-0.1.0"

rfs_01_config() {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {"sim/a": {"prompt": 1.0, "completion": 2.0},
             "sim/b": {"prompt": 3.0, "completion": 5.0}},
  "tiers": {
    "fast":  {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000},
    "other": {"route": ["sim/b"], "retries": 0, "timeout_ms": 5000},
    "bad":   {"route": ["sim/bad"], "retries": 0, "timeout_ms": 5000},
    "queue": {"route": ["sim/park"], "retries": 0, "timeout_ms": 5000,
              "on_exhausted": "queue", "park_schedule_ms": [3600000]},
    "slow":  {"route": ["sim/slow"], "retries": 0, "timeout_ms": 5000}
  }
}
JSON
}

@test "upgrade: a routefs 0.1.0 state directory is imported once: same results, same spend, nothing re-sent, the old files in backup-0.1/" {
    [ -d "$FIXTURE_01/tiers" ]
    # the 0.1.0 directory as it was, fast/.git included (git cannot hold a directory
    # named .git: the fixture has it as dot-git)
    local orig="$RFS_DIR/state-0.1.0"
    cp -a "$FIXTURE_01" "$orig"
    mv "$orig/tiers/fast/dot-git" "$orig/tiers/fast/.git"
    cp -a "$orig/." "$STATE/"
    chmod 700 "$STATE"
    rfs_01_config
    sim_behave 'sim/park' '{"status": 503}'
    rfs_mount
    grep -q "imported a 0.1.0 state directory" "$RFS_LOG"
    # every prompt and result through the mount, byte for byte
    local n=0 f rel
    while IFS= read -r -d '' f; do
        rel=${f#"$FIXTURE_01/tiers/"}
        case $rel in .git/*|*/.git/*|*/dot-git/*) continue ;; esac   # (scratch: below)
        cmp "$f" "$MNT/$rel" || { echo "differs: $rel"; return 1; }
        n=$((n + 1))
    done < <(find "$FIXTURE_01/tiers" -type f \( -name '*.out' -o -name '*.err' -o ! -name '*.*' -o -name 'utf8.txt' \) -print0)
    echo "$n files compared"
    [ "$n" -ge 25 ]
    # the metadata of finished jobs: the same job
    for f in fast/p1 fast/proj/deep/q2 other/o2 bad/b1; do
        [ "$(jq -c '[.state, .model, .cost, .ledger_id]' "$MNT/$f.meta")" = \
          "$(jq -c '[.state, .model, .cost, .ledger_id]' "$FIXTURE_01/tiers/$f.meta")" ]
    done
    # scratch files: the mount root's and a dot directory's
    cmp "$FIXTURE_01/root/notes.txt" "$MNT/notes.txt"
    cmp "$orig/tiers/fast/.git/HEAD" "$MNT/fast/.git/HEAD"
    run ls "$MNT/fast/proj/deep"
    assert_output --partial "q2.out"
    # the ledger: every record, the same totals
    [ "$(state_sql "SELECT count(*) FROM ledger WHERE tier != 'slow'")" -eq "$(wc -l <"$FIXTURE_01/ledger.jsonl")" ]
    [ "$(state_sql "SELECT count(*) FROM ledger WHERE path IS NULL OR ref NOT LIKE path || '#%'")" -eq 0 ]
    want=$(jq -s 'map(.cost) | add * 1e6 | round' "$FIXTURE_01/ledger.jsonl")
    got=$(jq '.total * 1e6 | round' "$MNT/spend.json")
    echo "ledger total (micro-USD): 0.1.0 $want, spend.json $got"
    [ "$got" = "$want" ]
    for t in fast other; do
        want=$(jq -s --arg t "$t" 'map(select(.tier == $t)) | [(map(.cost) | add * 1e6 | round), length]' "$FIXTURE_01/ledger.jsonl" | jq -c .)
        got=$(jq -c --arg t "$t" '.by_tier[$t] | [(.total * 1e6 | round), .requests]' "$MNT/spend.json")
        echo "tier $t: 0.1.0 $want, spend.json $got"
        [ "$got" = "$want" ]
    done
    [ "$(state_sql "SELECT count(*) FROM activity WHERE json_extract(line, '\$.tier') != 'slow'")" -eq "$(wc -l <"$FIXTURE_01/activity.jsonl")" ]
    # activity.jsonl begins with 0.1.0's lines, byte for byte
    head -c "$(stat -c %s "$FIXTURE_01/activity.jsonl")" "$MNT/activity.jsonl" | cmp - "$FIXTURE_01/activity.jsonl"
    # the unfinished prompts resume; nothing finished is sent again
    run read_out "$MNT/slow/s1.out"
    assert_output "sim[sim/slow]: in flight at the kill"
    sleep 1
    for m in sim/a sim/b sim/bad; do [ "$(sim_count "$m")" -eq 0 ]; done
    [ "$(sim_count sim/slow)" -eq 1 ]
    # the old files, untouched, aside
    [ ! -e "$STATE/tiers" ] && [ ! -e "$STATE/ledger.jsonl" ]
    for f in tiers root ledger.jsonl activity.jsonl; do
        diff -r "$orig/$f" "$STATE/backup-0.1/$f"
    done
    # a second mount does not import again
    rfs_unmount
    rfs_mount
    [ "$(grep -c "imported a 0.1.0 state directory" "$RFS_LOG")" -eq 1 ]
    [ "$(state_sql "SELECT count(*) FROM ledger WHERE tier != 'slow'")" -eq "$(wc -l <"$FIXTURE_01/ledger.jsonl")" ]
    [ "$(state_sql "SELECT count(*) FROM ledger WHERE tier = 'slow'")" -le 1 ]
    cmp "$FIXTURE_01/tiers/fast/p3.out" "$MNT/fast/p3.out"
    sleep 1
    for m in sim/a sim/b sim/bad sim/slow; do
        [ "$(sim_count "$m")" -eq "$([ $m = sim/slow ] && echo 1 || echo 0)" ]
    done
}

# --- e. export ---------------------------------------------------------------------------

# same_tree EXPORTED — every file of EXPORTED has the same bytes at the same place in the
# mount, and every prompt and result the mount lists in its tiers is in EXPORTED.
same_tree() {
    local dir=$1 f rel n=0
    while IFS= read -r -d '' f; do
        rel=${f#"$dir/"}
        cmp "$f" "$MNT/$rel" || { echo "differs: $rel"; return 1; }
        n=$((n + 1))
    done < <(find "$dir" -type f -print0)
    echo "$n exported files match the mount"
    [ "$n" -gt 0 ]
}

@test "export: routefs export STATE DIR (and --tier) writes the results as the mount shows them, mounted and unmounted" {
    rfs_store_config 8
    rfs_mount
    sim_behave 'sim/c' '{"status": 400, "error_message": "sim: refused"}'
    write_prompts "$MNT/batch" 1 6 "$RFS_DIR/written"
    mkdir -p "$MNT/batch/proj/deep"
    printf 'tagged\n' >"$MNT/batch/proj/deep/q1"
    printf 'caf\xc3\xa9\n' >"$MNT/batch/proj/q2"
    : >"$MNT/batch/empty"
    printf 'refused\n' >"$MNT/other/r1"
    wait_for 20 state_all_done batch 8
    wait_for 20 state_all_done other 1
    [ -e "$MNT/other/r1.err" ]
    run rfs_cli export "$STATE" "$RFS_DIR/x1"
    echo "$output"
    [ "$status" -eq 0 ]
    same_tree "$RFS_DIR/x1"
    # what the mount lists is all there
    # (the mount lists NAME.out of a failed job too: reading it says EIO)
    (cd "$MNT" && find batch other -type f | sort) >"$RFS_DIR/mount.list"
    [ -e "$MNT/other/r1.out" ]
    run cat "$MNT/other/r1.out"
    assert_output --partial "Input/output error"
    sed -i '\|^other/r1.out$|d' "$RFS_DIR/mount.list"
    (cd "$RFS_DIR/x1" && find batch other -type f | sort) >"$RFS_DIR/x1.list"
    diff "$RFS_DIR/mount.list" "$RFS_DIR/x1.list"
    [ -s "$RFS_DIR/x1/batch/p0003.out" ] && [ -s "$RFS_DIR/other/r1.err" -o -s "$RFS_DIR/x1/other/r1.err" ]
    # --tier
    run rfs_cli export "$STATE" "$RFS_DIR/x2" --tier other
    [ "$status" -eq 0 ]
    [ -e "$RFS_DIR/x2/other/r1.err" ] && [ ! -e "$RFS_DIR/x2/batch" ]
    same_tree "$RFS_DIR/x2"
    # unmounted: the same files and bytes
    rfs_unmount
    run rfs_cli export "$STATE" "$RFS_DIR/x3"
    [ "$status" -eq 0 ]
    diff -r "$RFS_DIR/x1" "$RFS_DIR/x3"
    # bad usage
    run rfs_cli export "$STATE"
    [ "$status" -eq 2 ]
    run rfs_cli export "$RFS_DIR/nowhere" "$RFS_DIR/x4"
    [ "$status" -eq 1 ]
}

@test "fault injection: unmount while failing says what could not be saved; with resend_in_flight false the next mount fails those jobs instead of paying twice" {
    FAULT="$RFS_DIR/fault"
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {"sim/a": {"prompt": 1.0, "completion": 2.0}},
  "resend_in_flight": false,
  "tiers": {"batch": {"route": ["sim/a"], "retries": 0, "timeout_ms": 60000, "concurrency": 4}}
}
JSON
    ROUTEFS_FAULT_FILE="$FAULT" rfs_mount
    sim_behave 'sim/a' '{"latency_ms": 1000}'
    write_prompts "$MNT/batch" 1 4 "$RFS_DIR/written"
    [ "$(grep -c ' ok$' "$RFS_DIR/written")" -eq 4 ]
    wait_for 10 sim_count_is sim/a 4
    sleep 0.3     # the sent marks are committed
    echo full >"$FAULT"
    wait_for 10 status_has "store: FAILING"
    wait_for 10 metric_pos routefs_store_held_ops
    fusermount3 -u "$MNT"
    _wait_pid "$RFS_PID" 15
    wait "$RFS_PID" 2>/dev/null || true
    RFS_PID=""
    grep "could not be saved" "$RFS_LOG"
    rm -f "$FAULT"
    rfs_mount
    for i in 0001 0002 0003 0004; do
        wait_for 10 test -e "$MNT/batch/p$i.err"
        run cat "$MNT/batch/p$i.err"
        assert_output --partial "in flight when routefs stopped"
    done
    sleep 1
    [ "$(sim_count sim/a)" -eq 4 ]
}

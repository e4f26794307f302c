#!/usr/bin/env bats
# The example pipelines in examples/pipelines/, end to end on a real mount against
# routefs-sim: rss-summarise.sh (xargs + routefs wait), the Makefile (make targets through
# the mount) and nightly.sh (dated tag directory + spend summary).  Every run is bounded.

load helpers

PIPELINES="$RFS_REPO/examples/pipelines"

setup() {
    rfs_setup
    # The tier the examples use by default, priced so spend.json has something to say.
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {"sim/fast": {"prompt": 1.0, "completion": 2.0}},
  "budget": {"daily_usd": 5.0, "monthly_usd": 100.0},
  "tiers": {
    "high-volume": {"route": ["sim/fast"], "retries": 0, "timeout_ms": 5000, "max_tokens": 100}
  }
}
JSON
    rfs_mount
    export ROUTEFS_MOUNT="$MNT"
    WORK="$RFS_DIR/work"
    mkdir -p "$WORK"
}

teardown() {
    rfs_teardown
}

# items DIR N — N fake feed items in DIR.
items() {
    local dir=$1 n=$2 i
    mkdir -p "$dir"
    for ((i = 1; i <= n; i++)); do
        printf '<item><title>Story %d</title><description>Something happened, part %d.</description></item>\n' \
            "$i" "$i" >"$dir/item-$i.xml"
    done
}

# pmake ARGS... — the example Makefile on $WORK, bounded, fd 3 closed.
pmake() { timeout 60 make --no-print-directory -C "$WORK" -f "$PIPELINES/Makefile" "$@" 3>&-; }

# --- rss-summarise.sh ---------------------------------------------------------------------

@test "rss-summarise.sh: 8 items in, 8 summaries out, all through rss/ in one wait" {
    items "$WORK/items" 8
    run timeout 60 "$PIPELINES/rss-summarise.sh" "$WORK/items" "$WORK/out" 3>&-
    echo "$output"
    assert_success
    assert_output --partial "8 of 8 items summarised"
    assert_output --partial "8 jobs: 8 done, 0 failed"
    for i in 1 2 3 4 5 6 7 8; do
        run cat "$WORK/out/item-$i.xml"
        assert_output --partial "sim[sim/fast]: Summarise this feed item"
        [ "$(meta "$MNT/high-volume/rss/item-$i.xml.meta" .tag)" = rss ]
    done
    [ ! -e "$WORK/out/FAILED" ]
    [ "$(sim_count sim/fast)" = 8 ]
    [ "$(jq -r '.by_tag.rss.requests' "$MNT/spend.json")" = 8 ]
}

@test "rss-summarise.sh: failed items are listed in FAILED, the rest delivered, exit 1" {
    items "$WORK/items" 6
    sim_behave sim/fast '{"status": 500, "fail_first": 2}'
    run timeout 60 "$PIPELINES/rss-summarise.sh" "$WORK/items" "$WORK/out" 3>&-
    echo "$output"
    [ "$status" -eq 1 ]
    assert_output --partial "4 of 6 items summarised"
    [ "$(wc -l <"$WORK/out/FAILED")" -eq 2 ]
    [ "$(find "$WORK/out" -name 'item-*.xml' | wc -l)" -eq 4 ]
    grep -q 500 "$WORK/out/FAILED"
}

@test "rss-summarise.sh: no mount at ROUTEFS_MOUNT: exit 2 and says so" {
    items "$WORK/items" 2
    ROUTEFS_MOUNT="$WORK/nothing" run timeout 20 "$PIPELINES/rss-summarise.sh" "$WORK/items" "$WORK/out" 3>&-
    [ "$status" -eq 2 ]
    assert_output --partial "not mounted"
}

# tree_copy — the example scripts in a copy of the source tree layout under $WORK/tree
# (examples/pipelines/), without a build/ directory; prints the copy's pipelines dir.
tree_copy() {
    mkdir -p "$WORK/tree/examples/pipelines"
    cp "$PIPELINES"/*.sh "$WORK/tree/examples/pipelines/"
    echo "$WORK/tree/examples/pipelines"
}

@test "rss-summarise.sh: routefs not on PATH: the binary built in the source tree is used" {
    items "$WORK/items" 2
    local dir
    dir=$(tree_copy)
    mkdir -p "$WORK/tree/build"
    ln -s "$ROUTEFS_BIN" "$WORK/tree/build/routefs"
    run env -u ROUTEFS_BIN PATH=/usr/bin:/bin timeout 60 "$dir/rss-summarise.sh" "$WORK/items" "$WORK/out" 3>&-
    echo "$output"
    assert_success
    assert_output --partial "2 of 2 items summarised"
}

@test "rss-summarise.sh and nightly.sh: no routefs binary anywhere: exit 2 before any prompt is sent" {
    items "$WORK/items" 3
    mkdir -p "$WORK/inbox"
    printf 'q\n' >"$WORK/inbox/q.txt"
    local dir
    dir=$(tree_copy)
    run env -u ROUTEFS_BIN PATH=/usr/bin:/bin timeout 20 "$dir/rss-summarise.sh" "$WORK/items" "$WORK/out" 3>&-
    echo "$output"
    [ "$status" -eq 2 ]
    assert_output --partial "routefs not found"
    run env ROUTEFS_BIN="$WORK/nowhere/routefs" NIGHTLY_INBOX="$WORK/inbox" NIGHTLY_OUTBOX="$WORK/outbox" \
        timeout 20 "$PIPELINES/nightly.sh" 3>&-
    echo "$output"
    [ "$status" -eq 2 ]
    assert_output --partial "routefs not found (tried $WORK/nowhere/routefs)"
    [ "$(sim_total)" = 0 ]
    [ -z "$(find "$MNT/high-volume" -type f)" ]
}

@test "rss-summarise.sh: a timeout passes on routefs wait's exit status 3" {
    items "$WORK/items" 1
    sim_behave sim/fast '{"latency_ms": 4000}'
    RSS_TIMEOUT=0.5 run timeout 20 "$PIPELINES/rss-summarise.sh" "$WORK/items" "$WORK/out" 3>&-
    echo "$output"
    [ "$status" -eq 3 ]
    assert_output --partial "timed out"
}

# --- Makefile -------------------------------------------------------------------------------

@test "Makefile: prompts/*.txt -> results/*.txt; a second make does nothing; an edit re-runs only it; a touch costs nothing" {
    mkdir -p "$WORK/prompts"
    for n in a b c d e; do printf 'prompt %s\n' "$n" >"$WORK/prompts/$n.txt"; done

    run pmake -j4
    echo "$output"
    assert_success
    for n in a b c d e; do
        [ "$(cat "$WORK/results/$n.txt")" = "sim[sim/fast]: prompt $n" ]
    done
    [ "$(sim_count sim/fast)" = 5 ]

    run pmake -j4
    echo "$output"
    assert_success
    assert_output --partial "Nothing to be done"
    [ "$(sim_count sim/fast)" = 5 ]

    sleep 0.1
    printf 'prompt c, revised\n' >"$WORK/prompts/c.txt"
    run pmake -j4
    echo "$output"
    assert_success
    assert_output --partial "cp prompts/c.txt"
    refute_output --partial "prompts/a.txt"
    [ "$(sim_count sim/fast)" = 6 ]
    [ "$(cat "$WORK/results/c.txt")" = "sim[sim/fast]: prompt c, revised" ]
    [ "$(cat "$WORK/results/a.txt")" = "sim[sim/fast]: prompt a" ]

    # touched, not changed: make copies it again, routefs keeps the result, nothing paid
    sleep 0.1
    touch "$WORK/prompts/e.txt"
    run pmake -j4
    echo "$output"
    assert_success
    assert_output --partial "cp prompts/e.txt"
    [ "$(sim_count sim/fast)" = 6 ]
    [ "$(cat "$WORK/results/e.txt")" = "sim[sim/fast]: prompt e" ]
    [ "$WORK/results/e.txt" -nt "$WORK/prompts/e.txt" ] || [ ! "$WORK/prompts/e.txt" -nt "$WORK/results/e.txt" ]
}

@test "Makefile: a failed job fails make, leaves no result, and the next make retries it" {
    mkdir -p "$WORK/prompts"
    printf 'doomed\n' >"$WORK/prompts/x.txt"
    sim_behave sim/fast '{"status": 500}'
    run pmake
    echo "$output"
    assert_failure
    assert_output --partial "500"          # the reason, from x.txt.err
    [ ! -e "$WORK/results/x.txt" ]         # .DELETE_ON_ERROR: no empty result left behind

    sim_reset
    run pmake
    echo "$output"
    assert_success
    [ "$(cat "$WORK/results/x.txt")" = "sim[sim/fast]: doomed" ]
}

@test "Makefile: TAG= puts the prompts in a tag directory" {
    mkdir -p "$WORK/prompts"
    printf 'tagged\n' >"$WORK/prompts/t.txt"
    run pmake TAG=docs
    echo "$output"
    assert_success
    [ "$(meta "$MNT/high-volume/docs/t.txt.meta" .tag)" = docs ]
    [ "$(cat "$WORK/results/t.txt")" = "sim[sim/fast]: tagged" ]
}

# --- nightly.sh -----------------------------------------------------------------------------

# nightly DATE — nightly.sh for DATE with $WORK/inbox and $WORK/outbox, bounded, fd 3 closed.
nightly() {
    NIGHTLY_INBOX="$WORK/inbox" NIGHTLY_OUTBOX="$WORK/outbox" NIGHTLY_DATE=$1 \
        timeout 60 "$PIPELINES/nightly.sh" 3>&-
}

@test "nightly.sh: submits into a dated tag, waits, copies results, summarises spend; a rerun sends nothing" {
    mkdir -p "$WORK/inbox"
    for i in 1 2 3 4 5; do printf 'nightly question %d\n' "$i" >"$WORK/inbox/q$i.txt"; done
    run nightly 2024-01-02
    echo "$output"
    assert_success
    assert_output --partial "5 prompt(s) submitted to high-volume/nightly-2024-01-02"
    assert_output --partial "5 done, 0 failed, 0 unfinished"
    assert_output --partial "spend: tonight (nightly-2024-01-02) \$"
    assert_output --partial "in 5 request(s)"
    assert_output --partial "daily cap \$5.00"
    for i in 1 2 3 4 5; do
        [ "$(cat "$WORK/outbox/2024-01-02/q$i.txt")" = "sim[sim/fast]: nightly question $i" ]
        [ "$(meta "$MNT/high-volume/nightly-2024-01-02/q$i.txt.meta" .tag)" = nightly-2024-01-02 ]
    done
    [ "$(jq -r '.by_tag["nightly-2024-01-02"].requests' "$MNT/spend.json")" = 5 ]
    [ "$(sim_count sim/fast)" = 5 ]

    run nightly 2024-01-02
    echo "$output"
    assert_success
    assert_output --partial "0 prompt(s) submitted"
    assert_output --partial "5 already there"
    [ "$(sim_count sim/fast)" = 5 ]
}

@test "nightly.sh: a failed prompt is reported and resubmitted on the next run" {
    mkdir -p "$WORK/inbox"
    for i in 1 2 3; do printf 'q %d\n' "$i" >"$WORK/inbox/q$i.txt"; done
    sim_behave sim/fast '{"status": 500, "fail_first": 1}'

    run nightly 2024-01-03
    echo "$output"
    [ "$status" -eq 1 ]
    assert_output --partial "2 done, 1 failed"
    assert_output --partial "failed: q"
    [ "$(wc -l <"$WORK/outbox/2024-01-03/FAILED")" -eq 1 ]

    run nightly 2024-01-03
    echo "$output"
    assert_success
    assert_output --partial "1 prompt(s) submitted"
    assert_output --partial "3 done, 0 failed"
    [ "$(sim_count sim/fast)" = 4 ]
    [ ! -e "$WORK/outbox/2024-01-03/FAILED" ]
}

@test "nightly.sh: no mount at ROUTEFS_MOUNT: exit 2 after NIGHTLY_MOUNT_WAIT, says so" {
    mkdir -p "$WORK/inbox" "$WORK/nothing"
    printf 'q\n' >"$WORK/inbox/q.txt"
    ROUTEFS_MOUNT="$WORK/nothing" NIGHTLY_MOUNT_WAIT=1 NIGHTLY_INBOX="$WORK/inbox" \
        NIGHTLY_OUTBOX="$WORK/outbox" run timeout 20 "$PIPELINES/nightly.sh" 3>&-
    echo "$output"
    [ "$status" -eq 2 ]
    assert_output --partial "not mounted"
    [ "$(sim_total)" = 0 ]
}

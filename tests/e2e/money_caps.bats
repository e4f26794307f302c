#!/usr/bin/env bats
# routefs end-to-end, issue 11: caps and prices are those in force at each send (a live
# edit applies at once to queued and parked jobs), and a reported cost that is not a
# finite number >= 0, or is absurd, is never stored.  Amounts are asserted from the
# simulator's /stats and the state store's ledger.

load helpers
load money_helpers

setup() {
    rfs_setup
}

teardown() {
    money_teardown
}

# Tier t: sim/a, one job at a time, 300 ms an answer; tier p: sim/p, which fails with 503
# for the first 1.5 s, so its jobs park (on_exhausted queue) for 4 s.  Both priced at
# $1000/M, max_tokens 16: a worst case of $0.038 for these prompts, and each answer
# costs $0.03 (under it: only the cap can stop them).
queue_config() {
    money_config "$1" \
        '{"sim/a": {"prompt": 1000, "completion": 1000}, "sim/p": {"prompt": 1000, "completion": 1000}}' \
        '{"t": {"route": ["sim/a"], "retries": 0, "timeout_ms": 10000, "max_tokens": 16, "concurrency": 1},
          "p": {"route": ["sim/p"], "retries": 0, "timeout_ms": 10000, "max_tokens": 16,
                "on_exhausted": "queue", "park_schedule_ms": [4000]}}' \
        ', "failure_threshold": 1000'
}

# tier_count TIER STATE — jobs of TIER in STATE ("running", "queued", "parked") per status.
tier_count() {
    grep "^tier $1:" "$MNT/status" | sed -E "s/.* ([0-9]+) $2.*/\1/"
}

# tier_at_least TIER STATE N — status counts at least N jobs of TIER in STATE.
tier_at_least() { [ "$(tier_count "$1" "$2")" -ge "$3" ]; }

@test "a cap added by a live edit applies at once to every queued and parked job" {
    queue_config '{}'
    rfs_mount
    sim_behave sim/a '{"cost": 0.03, "latency_ms": 300}'
    sim_behave sim/p '{"cost": 0.03, "status": 503, "fail_for_ms": 1500}'
    qs=() ps=()
    for i in $(seq -w 1 10); do printf 'queued prompt %s' "$i" >"$MNT/t/q$i"; qs+=("q$i"); done
    for i in $(seq 1 5); do printf 'parked prompt %s' "$i" >"$MNT/p/k$i"; ps+=("k$i"); done
    wait_for 5 tier_at_least p parked 5
    grep '^tier' "$MNT/status"
    [ "$(tier_count p parked)" = 5 ]
    [ "$(tier_count t queued)" -ge 7 ]
    # no cap so far; now one of $0.20
    live_edit '.budget = {"daily_usd": 0.2}'
    [ "$(jq .budget.daily_usd "$MNT/config.json")" = 0.2 ]
    wait_for 30 all_ended "$MNT/t" "${qs[@]}"
    wait_for 30 all_ended "$MNT/p" "${ps[@]}"
    charged=$(sim_charged)
    echo "charged \$$charged on a \$0.20 cap; sent: t $(sim_count sim/a), p $(sim_count sim/p)"
    le "$charged" 0.2
    near "$(spend .total)" "$charged" 1e-6
    # the queued jobs the cap left out failed naming it, unsent
    refused=0
    for n in "${qs[@]}"; do
        if [ "$(meta "$MNT/t/$n.meta" .state)" = failed ]; then
            refused=$((refused + 1))
            grep -q 'daily cap $0.2000 reached' "$MNT/t/$n.err"
        fi
    done
    [ "$refused" -ge 1 ]
    [ $((refused + $(sim_count sim/a))) -eq 10 ]
    # the parked jobs woke to a used-up cap: refused, none sent again
    for n in "${ps[@]}"; do
        [ "$(meta "$MNT/p/$n.meta" .state)" = failed ]
        grep -q 'daily cap $0.2000 reached' "$MNT/p/$n.err"
    done
    [ "$(sim_count sim/p)" = 5 ]
    assert_spend_agrees
}

@test "a cap lowered by a live edit applies at once to the queued jobs" {
    queue_config '{"daily_usd": 5}'
    rfs_mount
    sim_behave sim/a '{"cost": 0.03, "latency_ms": 300}'
    qs=()
    for i in $(seq -w 1 10); do printf 'queued prompt %s' "$i" >"$MNT/t/q$i"; qs+=("q$i"); done
    wait_for 5 tier_at_least t queued 8
    live_edit '.budget.daily_usd = 0.1'
    wait_for 30 all_ended "$MNT/t" "${qs[@]}"
    charged=$(sim_charged)
    echo "charged \$$charged on a cap lowered to \$0.10; sent $(sim_count sim/a)"
    le "$charged" 0.1
    [ "$(sim_count sim/a)" -lt 10 ]
    failed=0
    for n in "${qs[@]}"; do
        if [ "$(meta "$MNT/t/$n.meta" .state)" = failed ]; then
            failed=$((failed + 1))
            grep -q 'daily cap $0.1000 reached' "$MNT/t/$n.err"
        fi
    done
    [ $((failed + $(sim_count sim/a))) -eq 10 ]
    assert_spend_agrees
}

# --- reported costs that are not believed -------------------------------------------------

@test "usage.cost 1e300, -1, \"abc\", \"NaN\", 1e400, null, an object: never stored; the worst case is billed and flagged; spend.json and the ledger agree across a remount" {
    money_config '{"daily_usd": 5}' '{"sim/a": {"prompt": 1000, "completion": 1000}}' \
        '{"t": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16}}'
    rfs_mount
    # "nonsense N": 10 bytes; worst case (3 + 16) + 16 = 35 tokens at $1000/M = $0.035
    worst=$(worst_case 10 16 1000)
    near "$worst" 0.035
    values=('1e300' '-1' '"abc"' '"NaN"' '1e400' 'null' '{"x": 1}')
    n=0
    for v in "${values[@]}"; do
        n=$((n + 1))
        sim_behave sim/a "{\"report_cost\": $v, \"charge_usd\": 0.001}"
        printf 'nonsense %s' "$n" >"$MNT/t/n$n"
        run read_out "$MNT/t/n$n.out"
        assert_success
        m="$MNT/t/n$n.meta"
        echo "usage.cost $v: $(jq -c '{cost, cost_estimated, cost_note}' "$m")"
        near "$(meta "$m" .cost)" "$worst"
        [ "$(meta "$m" .cost_estimated)" = true ]
        [[ "$(meta "$m" .cost_note)" == *"billed the worst case"* ]]
    done
    # the sim really charged $0.001 each; routefs billed its worst case, never the report
    near "$(sim_charged)" "$(calc "$n * 0.001")" 1e-6
    [ "$(ledger_rows)" = "$n" ]
    [ "$(ledger_estimated)" = "$n" ]
    near "$(state_sql 'SELECT max(cost_nusd) / 1e9 FROM ledger')" "$worst"
    near "$(spend .total)" "$(calc "$n * $worst")" 1e-6
    # flagged in the log and in status
    [ "$(grep -c 'sim/a on sim: provider reported .* billed the worst case' "$RFS_LOG")" = "$n" ]
    run status_has "sim/a on sim: $n answers with a cost that was not stored"
    echo "$output"
    assert_success
    assert_spend_agrees
    jq -S . "$MNT/spend.json" >"$RFS_DIR/spend.before"
    rfs_unmount
    rfs_mount
    jq -S . "$MNT/spend.json" >"$RFS_DIR/spend.after"
    diff "$RFS_DIR/spend.before" "$RFS_DIR/spend.after"
    # the cap is not used up by a stored fortune
    near "$(spend .caps.daily.remaining)" "$(calc "5 - $n * $worst")" 1e-6
    assert_spend_agrees
    printf 'still sent' >"$MNT/t/after"
    run read_out "$MNT/t/after.out"
    assert_success
}

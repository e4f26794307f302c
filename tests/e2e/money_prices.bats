#!/usr/bin/env bats
# routefs end-to-end, issue 11: every send is covered by a reservation that bounds it.
# Unpriced and free models under a cap, a provider charging more than its reservation
# (the observed rate, the warning, the overshoot bound of a batch), answers without usage.
# Amounts are asserted from the simulator's own /stats (what it charged) and from the
# state store's ledger, not only from what routefs shows.

load helpers
load money_helpers

setup() {
    rfs_setup
}

teardown() {
    money_teardown
}

# reserving — spend.json shows money reserved for a request in flight.
reserving() { awk -v r="$(spend .reserved)" 'BEGIN { exit !(r > 0) }'; }

# --- prices of a hop ----------------------------------------------------------------------

@test "unpriced model reporting usage.cost under a daily cap: not sent; the reason names the model and how to price it" {
    money_config '{"daily_usd": 0.5}' '{}' \
        '{"t": {"route": ["sim/x"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16}}'
    rfs_mount
    sim_behave sim/x '{"cost": 0.01}'
    printf 'who pays?' >"$MNT/t/a"
    run read_out "$MNT/t/a.out"
    assert_failure
    [ "$status" -ne 124 ]
    run cat "$MNT/t/a.err"
    echo "$output"
    assert_output --partial 'no price known for sim/x on sim while a spend cap applies'
    assert_output --partial '"prices": {"sim/x": {"prompt": USD_PER_M, "completion": USD_PER_M}}'
    assert_output --partial '"free": true'
    jq .hops "$MNT/t/a.meta"
    [ "$(meta "$MNT/t/a.meta" '.hops | length')" = 1 ]
    [ "$(meta "$MNT/t/a.meta" '.hops[0].model')" = sim/x ]
    [ "$(meta "$MNT/t/a.meta" '.hops[0].status')" = null ]
    [[ "$(meta "$MNT/t/a.meta" '.hops[0].error')" == "no price known for sim/x on sim"* ]]
    # nothing went out, nothing was charged or recorded
    [ "$(sim_count sim/x)" = 0 ]
    near "$(sim_charged)" 0
    [ "$(ledger_rows)" = 0 ]
    near "$(spend .total)" 0
    assert_spend_agrees
}

@test "free models (a price of 0, or \"free\": true on the provider) are sent under a cap" {
    money_config '{"daily_usd": 0.5}' '{"sim/zero": {"prompt": 0, "completion": 0}}' \
        '{"z": {"route": ["sim/zero"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16},
          "f": {"route": [{"provider": "local", "model": "sim/free"}], "retries": 0,
                "timeout_ms": 5000, "max_tokens": 16}}'
    rfs_mount
    printf 'zero price' >"$MNT/z/a"
    printf 'free provider' >"$MNT/f/b"
    run read_out "$MNT/z/a.out"
    assert_success
    assert_output "sim[sim/zero]: zero price"
    run read_out "$MNT/f/b.out"
    assert_success
    assert_output "sim[sim/free]: free provider"
    [ "$(sim_count sim/zero)" = 1 ]
    [ "$(sim_count sim/free)" = 1 ]
    near "$(meta "$MNT/z/a.meta" .cost)" 0
    near "$(meta "$MNT/f/b.meta" .cost)" 0
    near "$(sim_charged)" 0
    [ "$(ledger_rows)" = 2 ]
    [ "$(ledger_unpriced)" = 0 ]
    [ "$(spend .requests.total)" = 2 ]
    assert_spend_agrees
}

@test "without a cap an unpriced model is sent and the cost it reports is recorded; later it is priced by that observed rate" {
    money_config '{}' '{}' \
        '{"t": {"route": ["sim/x"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16}}'
    rfs_mount
    sim_behave sim/x '{"cost": 0.0123}'
    printf 'who pays?' >"$MNT/t/a"
    run read_out "$MNT/t/a.out"
    assert_success
    assert_output "sim[sim/x]: who pays?"
    near "$(meta "$MNT/t/a.meta" .cost)" 0.0123
    near "$(sim_charged)" 0.0123
    near "$(ledger_sum)" 0.0123
    near "$(spend .total)" 0.0123
    [ "$(spend .requests.unpriced)" = 0 ]
    assert_spend_agrees
    run status_has "sim/x on sim has no configured price: reservations use the highest rate it was seen to charge"
    echo "$output"
    assert_success
    # A cap arrives: the model now has a price (the observed rate), so it is sent.
    live_edit '.budget = {"daily_usd": 0.5}'
    printf 'who pays now?' >"$MNT/t/b"
    run read_out "$MNT/t/b.out"
    assert_success
    [ "$(sim_count sim/x)" = 2 ]
    near "$(sim_charged)" 0.0246
    assert_spend_agrees
}

# --- a provider charging more than its reservation ----------------------------------------

@test "a provider charging more than the reservation: the real cost is recorded, the rate rises, log and status warn, later reservations use it" {
    # "cap test prompt 01": 18 bytes; worst case (6 + 16) + 16 = 38 tokens at $1000/M =
    # $0.038.  The sim charges (and reports) 4x that.
    money_config '{"daily_usd": 5}' '{"sim/a": {"prompt": 1000, "completion": 1000}}' \
        '{"t": {"route": ["sim/a"], "retries": 0, "timeout_ms": 10000, "max_tokens": 16}}'
    rfs_mount
    worst=$(worst_case 18 16 1000)
    near "$worst" 0.038
    cost=$(calc "4 * $worst")
    sim_behave sim/a "{\"cost\": $cost}"
    printf 'cap test prompt 01' >"$MNT/t/p01"
    run read_out "$MNT/t/p01.out"
    assert_success
    near "$(meta "$MNT/t/p01.meta" .cost)" "$cost"
    near "$(sim_charged)" "$cost"
    near "$(ledger_sum)" "$cost"
    [ "$(meta "$MNT/t/p01.meta" '.cost_estimated // false')" = false ]
    assert_spend_agrees
    run grep -F 'sim/a on sim charged $0.152000, more than the $0.038000 reserved: the configured price is too low' "$RFS_LOG"
    assert_success
    run status_has 'sim/a on sim charged more than its configured price allows'
    echo "$output"
    assert_success
    assert_output --partial 'the configured price is too low'
    # The observed rate: what it charged over the tokens it counted, for every token.
    pt=$(meta "$MNT/t/p01.meta" .tokens.prompt)
    ct=$(meta "$MNT/t/p01.meta" .tokens.completion)
    rate=$(calc "$cost / ($pt + $ct) * 1e6")
    expect=$(worst_case 18 16 "$rate")
    echo "tokens $pt + $ct, observed rate \$$rate/M, next reservation \$$expect"
    # the next send of the same size reserves that: seen in spend.json while in flight
    sim_behave sim/a "{\"cost\": $cost, \"latency_ms\": 1500}"
    printf 'cap test prompt 02' >"$MNT/t/p02"
    wait_for 5 reserving
    reserved=$(spend .reserved)
    echo "reserved while in flight: $reserved"
    near "$reserved" "$expect" 1e-6
    run read_out "$MNT/t/p02.out"
    assert_success
    near "$(sim_charged)" "$(calc "2 * $cost")"
    assert_spend_agrees
}

@test "batch: 60 prompts at concurrency 8 on a \$0.50 cap, each charged 4x its reservation: the overshoot is bounded by the requests in flight" {
    money_config '{"daily_usd": 0.5}' '{"sim/a": {"prompt": 1000, "completion": 1000}}' \
        '{"t": {"route": ["sim/a"], "retries": 0, "timeout_ms": 10000, "max_tokens": 16,
                "concurrency": 8}}'
    rfs_mount
    latency=300
    cost=$(calc "4 * $(worst_case 18 16 1000)")
    sim_behave sim/a "{\"cost\": $cost, \"latency_ms\": $latency}"
    mkdir "$RFS_DIR/src"
    names=()
    for i in $(seq -w 1 60); do
        printf 'cap test prompt %s' "$i" >"$RFS_DIR/src/p$i"
        names+=("p$i")
    done
    run cp "${names[@]/#/$RFS_DIR/src/}" "$MNT/t/"
    echo "cp: $output"
    accepted=()
    for n in "${names[@]}"; do [ -e "$MNT/t/$n" ] && accepted+=("$n"); done
    echo "accepted ${#accepted[@]} of 60"
    wait_for 60 all_ended "$MNT/t" "${accepted[@]}"
    sent=$(sim_count sim/a)
    charged=$(sim_charged)
    # the requests in flight when the first (under-reserved) answer arrived: those the sim
    # received before it sent that answer ($latency ms after the first arrival), with 50 ms
    # for routefs to read it
    mapfile -t arrivals < <(sim_arrivals sim/a)
    first=${arrivals[0]}
    in_flight=0
    for t in "${arrivals[@]}"; do
        [ "$t" -le $((first + latency + 50)) ] && in_flight=$((in_flight + 1))
    done
    bound=$(calc "0.5 + $in_flight * $cost")
    echo "sent $sent, charged \$$charged, in flight at the first answer $in_flight, bound \$$bound"
    [ "$sent" -ge 1 ]
    le "$charged" "$bound"
    # routefs recorded what the provider charged, once per request
    near "$(spend .total)" "$charged" 1e-6
    [ "$(ledger_rows)" = "$sent" ]
    # the jobs not sent failed naming the cap
    failed=0
    for n in "${accepted[@]}"; do
        if [ "$(meta "$MNT/t/$n.meta" .state)" = failed ]; then
            failed=$((failed + 1))
            grep -q 'daily cap $0.5000 reached' "$MNT/t/$n.err"
        fi
    done
    [ $((failed + sent)) -eq "${#accepted[@]}" ]
    assert_spend_agrees
}

# --- answers without usage ----------------------------------------------------------------

@test "a priced model whose provider omits usage: billed the worst case, marked estimated; 100 prompts on a \$0.05 cap stop at the cap" {
    # "no usage prompt 001": 19 bytes; worst case (6 + 16) + 16 = 38 tokens at $100/M =
    # $0.0038.  The sim charges $0.002 a request and says nothing of it.
    money_config '{"daily_usd": 0.05}' '{"sim/a": {"prompt": 100, "completion": 100}}' \
        '{"t": {"route": ["sim/a"], "retries": 0, "timeout_ms": 10000, "max_tokens": 16,
                "concurrency": 8}}'
    rfs_mount
    worst=$(worst_case 19 16 100)
    near "$worst" 0.0038
    sim_behave sim/a '{"usage": "none", "charge_usd": 0.002, "latency_ms": 100}'
    mkdir "$RFS_DIR/src"
    names=()
    for i in $(seq -w 1 100); do
        printf 'no usage prompt %s' "$i" >"$RFS_DIR/src/p$i"
        names+=("p$i")
    done
    run cp "${names[@]/#/$RFS_DIR/src/}" "$MNT/t/"
    accepted=()
    for n in "${names[@]}"; do [ -e "$MNT/t/$n" ] && accepted+=("$n"); done
    wait_for 60 all_ended "$MNT/t" "${accepted[@]}"
    sent=$(sim_count sim/a)
    limit=$(awk -v c=0.05 -v w="$worst" 'BEGIN { print int(c / w + 1e-9) + 8 }')
    echo "accepted ${#accepted[@]}, sent $sent (at most $limit), sim charged \$$(sim_charged), billed \$$(spend .total)"
    [ "$sent" -ge 1 ]
    [ "$sent" -le "$limit" ]
    near "$(sim_charged)" "$(calc "$sent * 0.002")" 1e-6
    # billed at the worst case, each marked estimated: meta, ledger, spend.json
    near "$(spend .total)" "$(calc "$sent * $worst")" 1e-6
    le "$(spend .today)" 0.05
    [ "$(ledger_rows)" = "$sent" ]
    [ "$(ledger_estimated)" = "$sent" ]
    [ "$(state_sql "SELECT count(*) FROM ledger WHERE note LIKE 'no usage reported%'")" = "$sent" ]
    [ "$(spend .requests.estimated)" = "$sent" ]
    done_n=0
    for n in "${accepted[@]}"; do
        if [ "$(meta "$MNT/t/$n.meta" .state)" = done ]; then
            done_n=$((done_n + 1))
            [ "$(meta "$MNT/t/$n.meta" .cost_estimated)" = true ]
            [ "$(meta "$MNT/t/$n.meta" .cost_note)" = "no usage reported: billed the worst case" ]
            near "$(meta "$MNT/t/$n.meta" .cost)" "$worst"
        else
            grep -q 'daily cap $0.0500 reached' "$MNT/t/$n.err"
        fi
    done
    [ "$done_n" = "$sent" ]
    run status_has "billed at routefs's estimate"
    assert_success
    assert_spend_agrees
}

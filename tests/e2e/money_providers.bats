#!/usr/bin/env bats
# routefs end-to-end, issue 11: providers that say the money is gone.  A 402 (insufficient
# credits) or a key limit (403 with a limit reason) marks the provider out of budget until
# its Retry-After: its hops are skipped without a request, jobs fall through to hops on
# other providers or park (on_exhausted queue), providers.json and status show it, and
# once the time has passed the provider is used again.

load helpers
load money_helpers

setup() {
    rfs_setup
    money_config '{}' '{}' \
        '{"t": {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}], "retries": 0,
                "timeout_ms": 5000, "max_tokens": 16},
          "q": {"route": ["sim/c"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16,
                "on_exhausted": "queue", "park_schedule_ms": [1000, 1000, 1000, 1000, 1000, 1000]},
          "f": {"route": ["sim/d"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16}}'
    rfs_mount
}

teardown() {
    money_teardown
}

# provider_state NAME — providers.json's state of a provider.
provider_state() { jq -r --arg p "$1" '.providers[$p].state // "none"' "$MNT/providers.json"; }
provider_usable() { [ "$(provider_state "$1")" != "out of budget" ]; }

@test "402: the provider is out of budget until its Retry-After; jobs fall through to another provider; providers.json and status show it; then it is used again" {
    sim_behave sim/a '{"status": 402, "retry_after": 3}'
    printf 'first' >"$MNT/t/a"
    run read_out "$MNT/t/a.out"
    assert_success
    assert_output "sim[sim/b]: first"
    [ "$(sim_count sim/a)" = 1 ]
    jq '.providers.sim' "$MNT/providers.json"
    [ "$(provider_state sim)" = "out of budget" ]
    [[ "$(jq -r .providers.sim.out_of_budget_reason "$MNT/providers.json")" == *"HTTP 402: Insufficient credits"* ]]
    until_at=$(jq -r .providers.sim.out_of_budget_until "$MNT/providers.json")
    left=$(( $(date -d "$until_at" +%s) - $(date +%s) ))
    echo "out of budget until $until_at ($left s from now)"
    [ "$left" -ge 1 ] && [ "$left" -le 4 ]
    [ "$(provider_state backup)" != "out of budget" ]
    run status_has "spend: provider sim is out of budget until"
    assert_success
    # while it is out of budget nothing is sent to it: the next job falls through at once
    printf 'second' >"$MNT/t/b"
    run read_out "$MNT/t/b.out"
    assert_output "sim[sim/b]: second"
    [ "$(sim_count sim/a)" = 1 ]
    [[ "$(meta "$MNT/t/b.meta" '.hops[0].error')" == "provider sim is out of budget until "* ]]
    [ "$(meta "$MNT/t/b.meta" '.hops[0].status')" = null ]
    # the provider has money again, and the time has passed: it serves again
    sim_behave sim/a '{}'
    wait_for 6 provider_usable sim
    printf 'third' >"$MNT/t/c"
    run read_out "$MNT/t/c.out"
    assert_output "sim[sim/a]: third"
    [ "$(sim_count sim/a)" = 2 ]
    [ "$(sim_count sim/b)" = 2 ]
    assert_spend_agrees
}

@test "a key limit (403): a job with no other hop parks, is not sent while the limit holds, and runs once the reset has passed" {
    sim_behave sim/c '{"key_limit": true, "retry_after": 3}'
    printf 'parks' >"$MNT/q/a"
    wait_for 5 test -e "$MNT/q/a.meta"
    wait_for 5 _meta_is "$MNT/q/a" parked
    jq '{state, hops, park_count}' "$MNT/q/a.meta"
    [ "$(meta "$MNT/q/a.meta" .state)" = parked ]
    [ "$(sim_count sim/c)" = 1 ]
    [ "$(provider_state sim)" = "out of budget" ]
    [[ "$(jq -r .providers.sim.out_of_budget_reason "$MNT/providers.json")" == *"Key limit exceeded"* ]]
    # a tier that does not park fails at once, naming it, and sends nothing
    printf 'fails' >"$MNT/f/b"
    run read_out "$MNT/f/b.out"
    assert_failure
    [ "$status" -ne 124 ]
    run cat "$MNT/f/b.err"
    echo "$output"
    assert_output --partial "provider sim is out of budget until"
    assert_output --partial "Key limit exceeded"
    [ "$(sim_count sim/d)" = 0 ]
    # the key is reset: once its time is up the parked job goes, and only then
    sim_behave sim/c '{}'
    run read_out "$MNT/q/a.out"
    assert_success
    assert_output "sim[sim/c]: parks"
    [ "$(sim_count sim/c)" = 2 ]
    [ "$(meta "$MNT/q/a.meta" '.park_count // 0')" -ge 0 ]
    provider_usable sim
    assert_spend_agrees
}

@test "the sim's own key limit: 403 until the next UTC reset; providers.json says until when" {
    sim_key_set '{"limit": 0.001, "limit_reset": "daily"}'
    sim_behave sim/c '{"charge_usd": 0.002}'
    # the first request uses up the key's limit; the second is refused with a reset time
    printf 'one' >"$MNT/q/a"
    run read_out "$MNT/q/a.out"
    assert_success
    printf 'two' >"$MNT/q/b"
    wait_for 5 _meta_is "$MNT/q/b" parked
    [ "$(sim_count sim/c)" = 2 ]
    until_at=$(jq -r .providers.sim.out_of_budget_until "$MNT/providers.json")
    midnight=$(date -u -d 'tomorrow 00:00' +%s)
    echo "out of budget until $until_at; next UTC midnight $(date -u -d @"$midnight" +%FT%TZ)"
    d=$(( $(date -d "$until_at" +%s) - midnight ))
    [ "${d#-}" -le 2 ]
    # parked, and not sent again while the limit holds
    sleep 2.5
    [ "$(sim_count sim/c)" = 2 ]
    assert_spend_agrees
}

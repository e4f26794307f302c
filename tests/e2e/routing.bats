#!/usr/bin/env bats
# routefs end-to-end: routing in depth — error classes, retries, Retry-After, breakers,
# provider routing options, client-side limits, parking, and what the virtual files say.
# Every test mounts a real routefs against routefs-sim, with exact sim request counts.

load helpers

setup() {
    rfs_setup
}

teardown() {
    rfs_teardown
}

# --- helpers (this file only) ------------------------------------------------------------

# two_hops [FIELDS] — providers "sim" and "backup" (both the sim) and tier "fast" routed
# sim/a (on sim) then sim/b (on backup).  FIELDS: the tier's other fields, JSON without a
# leading comma (default: no retries, 5 s timeout).
two_hops() {
    local fields=${1:-'"retries": 0, "timeout_ms": 5000'}
    rfs_config <<JSON
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1"},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "tiers": {
    "fast": {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}], $fields}
  }
}
JSON
}

# providers_json JQ — query providers.json
providers_json() { jq -r "$1" "$MNT/providers.json"; }

# write_and_read NAME TEXT — write a prompt into tier fast, then `run read_out` its result.
write_and_read() {
    printf '%s' "$2" >"$MNT/fast/$1"
    run read_out "$MNT/fast/$1.out"
}

# finished PATH — the job of prompt PATH has ended (done or failed).
finished() {
    local s
    s=$(jq -r .state "$1.meta" 2>/dev/null) || return 1
    [ "$s" = "done" ] || [ "$s" = failed ]
}

# The served-by-secondary checks shared by the error-class tests: sim/a got $1 requests,
# sim/b exactly one, the meta lists $1 hops on sim/a then the serving hop on backup.
assert_fell_back_after() {
    local n=$1 m="$MNT/fast/p.meta"
    jq -c '.hops' "$m"
    echo "sim/a: $(sim_count sim/a), sim/b: $(sim_count sim/b)"
    [ "$(sim_count sim/a)" = "$n" ]
    [ "$(sim_count sim/b)" = 1 ]
    [ "$(meta "$m" .state)" = "done" ]
    [ "$(meta "$m" '.hops | length')" = $((n + 1)) ]
    [ "$(meta "$m" "[.hops[:$n][] | .provider] | unique | join(\",\")")" = sim ]
    [ "$(meta "$m" '.hops[-1].provider')" = backup ]
    [ "$(meta "$m" '.hops[-1].status')" = 200 ]
    [ "$(meta "$m" .endpoint)" = backup ]
    [ "$(meta "$m" .model)" = sim/b ]
    [ "$(meta "$m" .fallback)" = true ]
}

# retried_then_fallback STATUS — STATUS on sim/a with retries 2: three attempts there, then sim/b.
retried_then_fallback() {
    two_hops '"retries": 2, "retry_base_ms": 20, "retry_cap_ms": 100, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a "{\"status\": $1}"
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/b]: hi"
    assert_fell_back_after 3
    [ "$(meta "$MNT/fast/p.meta" "[.hops[:3][] | .status] | unique | join(\",\")")" = "$1" ]
    [ "$(meta "$MNT/fast/p.meta" '[.hops[:3][] | .attempt] | join(",")')" = "1,2,3" ]
}

# retried_then_fallback_mode MODE — like retried_then_fallback, for a transport failure.
retried_then_fallback_mode() {
    two_hops '"retries": 2, "retry_base_ms": 20, "retry_cap_ms": 100, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a "{\"mode\": \"$1\"}"
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/b]: hi"
    assert_fell_back_after 3
    [ "$(meta "$MNT/fast/p.meta" '[.hops[:3][] | .status == null and .error != null] | all')" = true ]
}

# next_hop_at_once BEHAVIOUR — sim/a answers with BEHAVIOUR; with retries 2 it gets exactly
# one request and sim/b serves.
next_hop_at_once() {
    two_hops '"retries": 2, "retry_base_ms": 20, "retry_cap_ms": 100, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a "$1"
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/b]: hi"
    assert_fell_back_after 1
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].error != null')" = true ]
}

# marks_down STATUS — STATUS on sim/a: no retry, sim/b serves, providers.json shows sim down.
marks_down() {
    two_hops '"retries": 2, "retry_base_ms": 20, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a "{\"status\": $1}"
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/b]: hi"
    assert_fell_back_after 1
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].status')" = "$1" ]
    jq . "$MNT/providers.json"
    [ "$(providers_json '.providers.sim.state')" = down ]
    [ "$(providers_json '.providers.sim.breaker')" = open ]
    [ "$(providers_json '.providers.backup.state')" = ok ]
    # a later job does not knock on the dead provider's door again
    write_and_read q "again"
    assert_success
    assert_output "sim[sim/b]: again"
    [ "$(sim_count sim/a)" = 1 ]
}

# --- error classes: retried on the same hop, then fallback --------------------------------

# write_six_slow TAG — sim/a answers in 500 ms; write six prompts "TAG 0".."TAG 5" into
# fast/ and note the time in T0.  read_six_slow TAG — read all six (each must be sim/a's
# answer), then check that six requests were made and that at most two ran at once
# (three rounds of 500 ms: >= 1.4 s).
write_six_slow() {
    sim_behave sim/a '{"latency_ms": 500}'
    T0=$(now_ms)
    for i in 0 1 2 3 4 5; do echo "$1 $i" >"$MNT/fast/p$i"; done
}

read_six_slow() {
    for i in 0 1 2 3 4 5; do
        run read_out "$MNT/fast/p$i.out"
        assert_success
        assert_output "sim[sim/a]: $1 $i"
    done
    local t1
    t1=$(now_ms)
    echo "elapsed $((t1 - T0)) ms"
    [ "$(sim_count sim/a)" = 6 ]
    [ $((t1 - T0)) -ge 1400 ]
}

@test "500: retried on the same hop (retries 2 -> 3 requests), then fallback" {
    retried_then_fallback 500
}

@test "502: retried on the same hop (retries 2 -> 3 requests), then fallback" {
    retried_then_fallback 502
}

@test "504: retried on the same hop (retries 2 -> 3 requests), then fallback" {
    retried_then_fallback 504
}

@test "408: retried on the same hop (retries 2 -> 3 requests), then fallback" {
    retried_then_fallback 408
}

@test "a 503 that recovers on the retry is served by the same hop" {
    two_hops '"retries": 2, "retry_base_ms": 20, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"status": 503, "fail_first": 1}'
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/a]: hi"
    [ "$(sim_count sim/a)" = 2 ]
    [ "$(sim_count sim/b)" = 0 ]
    m="$MNT/fast/p.meta"
    [ "$(meta "$m" '.hops | length')" = 2 ]
    [ "$(meta "$m" '.hops[0].status')" = 503 ]
    [ "$(meta "$m" '.hops[1].status')" = 200 ]
    [ "$(meta "$m" .fallback)" = false ]
}

@test "timeout (latency over the tier's timeout_ms): the next hop at once, no retry" {
    two_hops '"retries": 1, "retry_base_ms": 20, "timeout_ms": 400'
    rfs_mount
    sim_behave sim/a '{"latency_ms": 3000}'
    t0=$(now_ms)
    write_and_read p "hi"
    t1=$(now_ms)
    assert_success
    assert_output "sim[sim/b]: hi"
    echo "elapsed $((t1 - t0)) ms"
    assert_fell_back_after 1
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].status')" = null ]
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].error')" != null ]
    # one timed-out attempt of 400 ms, not a 3 s wait, and no second one
    [ $((t1 - t0)) -ge 350 ]
    [ $((t1 - t0)) -lt 2500 ]
    [ "$(sim_count sim/a)" = 1 ]
}

@test "timeout with retry_on_timeout: retried, then fallback" {
    two_hops '"retries": 1, "retry_base_ms": 20, "timeout_ms": 400, "retry_on_timeout": true'
    rfs_mount
    sim_behave sim/a '{"latency_ms": 3000}'
    t0=$(now_ms)
    write_and_read p "hi"
    t1=$(now_ms)
    assert_success
    assert_output "sim[sim/b]: hi"
    echo "elapsed $((t1 - t0)) ms"
    assert_fell_back_after 2
    [ "$(meta "$MNT/fast/p.meta" '[.hops[:2][] | .status == null] | all')" = true ]
    [ $((t1 - t0)) -ge 700 ]
    [ $((t1 - t0)) -lt 5000 ]
}

@test "connection refused: retried, then fallback to the next provider" {
    rfs_config <<'JSON'
{
  "providers": {
    "dead": {"base_url": "http://127.0.0.1:CLOSED_PORT/v1"},
    "sim":  {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "tiers": {
    "fast": {"route": ["sim/a", {"provider": "sim", "model": "sim/b"}],
             "retries": 1, "retry_base_ms": 20, "timeout_ms": 5000}
  }
}
JSON
    rfs_mount
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/b]: hi"
    m="$MNT/fast/p.meta"
    jq -c .hops "$m"
    [ "$(sim_count sim/a)" = 0 ]
    [ "$(sim_count sim/b)" = 1 ]
    [ "$(meta "$m" '.hops | length')" = 3 ]
    [ "$(meta "$m" '[.hops[:2][] | .provider] | unique | join(",")')" = dead ]
    [ "$(meta "$m" '[.hops[:2][] | .status == null and .error != null] | all')" = true ]
    [ "$(meta "$m" .endpoint)" = sim ]
    [ "$(providers_json '.providers.dead.failures')" = 2 ]
}

@test "connection dropped without a response: retried, then fallback" {
    retried_then_fallback_mode close
}

# --- error classes: a broken answer goes to the next hop without retrying ------------------

@test "200 with malformed JSON: next hop at once (no retry on the same hop)" {
    next_hop_at_once '{"mode": "malformed"}'
}

@test "200 with an error object: next hop at once" {
    next_hop_at_once '{"mode": "error_object"}'
}

@test "200 with no choices: next hop at once" {
    next_hop_at_once '{"mode": "no_choices"}'
}

@test "200 with empty (null) content: next hop at once" {
    next_hop_at_once '{"mode": "empty_content"}'
}

@test "200 with finish_reason error: next hop at once" {
    next_hop_at_once '{"mode": "finish_error"}'
}

@test "502 with an HTML page (a proxy in front of the API): retried like any 5xx, then next hop" {
    # A gateway's HTML 502 is as transient as a JSON one: same class, same retries.
    two_hops '"retries": 2, "retry_base_ms": 20, "retry_cap_ms": 100, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"mode": "html"}'
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/b]: hi"
    assert_fell_back_after 3
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].status')" = 502 ]
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].error | test("502")')" = true ]
}

# --- error classes: request errors --------------------------------------------------------

@test "plain 400: the job fails with .err, no retry, no fallback" {
    two_hops '"retries": 2, "retry_base_ms": 20, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"status": 400, "error_message": "invalid value for temperature"}'
    write_and_read p "hi"
    assert_failure
    [ "$status" -ne 124 ]
    assert_output --partial "Input/output error"
    [ "$(sim_count sim/a)" = 1 ]
    [ "$(sim_count sim/b)" = 0 ]
    run cat "$MNT/fast/p.err"
    assert_success
    [ "${#lines[@]}" -eq 1 ]
    assert_output --partial "invalid value for temperature"
    m="$MNT/fast/p.meta"
    [ "$(meta "$m" .state)" = failed ]
    [ "$(meta "$m" '.hops | length')" = 1 ]
    [ "$(meta "$m" '.hops[0].status')" = 400 ]
    # the provider answered sensibly: it stays healthy
    [ "$(providers_json '.providers.sim.state')" = ok ]
}

@test "400 'maximum context length': next hop, no retry" {
    next_hop_at_once '{"status": 400, "error_message": "This model'"'"'s maximum context length is 8192 tokens. However, you requested 9000 tokens."}'
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].status')" = 400 ]
}

@test "400 'Unsupported parameter': next hop, no retry" {
    next_hop_at_once '{"status": 400, "error_message": "Unsupported parameter: '"'"'max_tokens'"'"' is not supported with this model."}'
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].status')" = 400 ]
}

@test "401: next hop and the provider is marked down" {
    marks_down 401
}

@test "402: next hop, and the provider is out of budget (README Spend), not down" {
    two_hops '"retries": 2, "retry_base_ms": 20, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"status": 402}'
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/b]: hi"
    assert_fell_back_after 1
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].status')" = 402 ]
    jq . "$MNT/providers.json"
    [ "$(providers_json '.providers.sim.state')" = "out of budget" ]
    [ "$(providers_json '.providers.sim.breaker')" = closed ]
    [ "$(providers_json '.providers.backup.state')" = ok ]
    # a later job does not knock on its door again while it is out of budget
    write_and_read q "again"
    assert_success
    assert_output "sim[sim/b]: again"
    [ "$(sim_count sim/a)" = 1 ]
}

@test "403: next hop and the provider is marked down" {
    marks_down 403
}

@test "404: next hop and the provider (or that model on it) is marked down" {
    two_hops '"retries": 2, "retry_base_ms": 20, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"status": 404, "error_message": "model sim/a does not exist"}'
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/b]: hi"
    assert_fell_back_after 1
    jq . "$MNT/providers.json"
    # A 404 names a model: the model on that provider is down, the provider may stay up.
    [ "$(providers_json '.providers.sim.state == "down" or .providers.sim.models["sim/a"].state == "down"')" = true ]
    write_and_read q "again"
    assert_success
    assert_output "sim[sim/b]: again"
    [ "$(sim_count sim/a)" = 1 ]
}

# --- Retry-After ----------------------------------------------------------------------------

@test "429 with Retry-After 1: the retry on the same hop comes about 1 s later" {
    two_hops '"retries": 2, "retry_base_ms": 10, "retry_cap_ms": 20, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"status": 429, "retry_after": "1", "fail_first": 1}'
    t0=$(now_ms)
    write_and_read p "hi"
    t1=$(now_ms)
    assert_success
    assert_output "sim[sim/a]: hi"
    echo "elapsed $((t1 - t0)) ms"
    [ "$(sim_count sim/a)" = 2 ]
    [ "$(sim_count sim/b)" = 0 ]
    m="$MNT/fast/p.meta"
    [ "$(meta "$m" '.hops | length')" = 2 ]
    [ "$(meta "$m" '.hops[0].status')" = 429 ]
    # the backoff alone would be <= 20 ms; Retry-After says 1 s
    [ $((t1 - t0)) -ge 900 ]
}

@test "429 with Retry-After over retry_after_max_ms: next hop at once" {
    two_hops '"retries": 2, "retry_base_ms": 10, "retry_after_max_ms": 2000, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"status": 429, "retry_after": "100"}'
    t0=$(now_ms)
    write_and_read p "hi"
    t1=$(now_ms)
    assert_success
    assert_output "sim[sim/b]: hi"
    echo "elapsed $((t1 - t0)) ms"
    assert_fell_back_after 1
    [ $((t1 - t0)) -lt 3000 ]
}

@test "429 without Retry-After: retried with backoff on the same hop" {
    two_hops '"retries": 2, "retry_base_ms": 50, "retry_cap_ms": 200, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"status": 429, "fail_first": 2}'
    write_and_read p "hi"
    assert_success
    assert_output "sim[sim/a]: hi"
    [ "$(sim_count sim/a)" = 3 ]
    [ "$(sim_count sim/b)" = 0 ]
    m="$MNT/fast/p.meta"
    [ "$(meta "$m" '[.hops[] | .status] | join(",")')" = "429,429,200" ]
    [ "$(meta "$m" '[.hops[] | .attempt] | join(",")')" = "1,2,3" ]
}

@test "503 with Retry-After 1: honoured like a 429" {
    two_hops '"retries": 1, "retry_base_ms": 10, "retry_cap_ms": 20, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"status": 503, "retry_after": "1", "fail_first": 1}'
    t0=$(now_ms)
    write_and_read p "hi"
    t1=$(now_ms)
    assert_success
    assert_output "sim[sim/a]: hi"
    echo "elapsed $((t1 - t0)) ms"
    [ "$(sim_count sim/a)" = 2 ]
    [ "$(sim_count sim/b)" = 0 ]
    [ $((t1 - t0)) -ge 900 ]
}

@test "429 with Retry-After as an HTTP date (3 s ahead): the retry waits for it" {
    two_hops '"retries": 1, "retry_base_ms": 10, "retry_cap_ms": 20, "timeout_ms": 5000'
    rfs_mount
    when=$(LC_ALL=C date -u -d '+3 seconds' '+%a, %d %b %Y %H:%M:%S GMT')
    sim_behave sim/a "{\"status\": 429, \"retry_after\": \"$when\", \"fail_first\": 1}"
    t0=$(now_ms)
    write_and_read p "hi"
    t1=$(now_ms)
    assert_success
    assert_output "sim[sim/a]: hi"
    echo "Retry-After: $when; elapsed $((t1 - t0)) ms"
    [ "$(sim_count sim/a)" = 2 ]
    [ "$(sim_count sim/b)" = 0 ]
    [ $((t1 - t0)) -ge 1500 ]
}

# --- circuit breakers -----------------------------------------------------------------------

# open_breaker — five jobs in a row, each failing once on sim/a (503) and served by sim/b.
open_breaker() {
    local i
    for i in 1 2 3 4 5; do
        write_and_read "f$i" "fail $i"
        assert_success
        assert_output "sim[sim/b]: fail $i"
    done
    [ "$(sim_count sim/a)" = 5 ]
}

@test "breaker: 5 consecutive failures open it; later jobs skip the provider" {
    two_hops
    rfs_mount
    sim_behave sim/a '{"status": 503}'
    for i in 1 2 3 4; do
        write_and_read "f$i" "fail $i"
        assert_success
    done
    [ "$(providers_json '.providers.sim.models["sim/a"].breaker')" = closed ]
    [ "$(providers_json '.providers.sim.models["sim/a"].consecutive_failures')" = 4 ]
    write_and_read f5 "fail 5"
    assert_success
    [ "$(sim_count sim/a)" = 5 ]
    jq . "$MNT/providers.json"
    [ "$(providers_json '.providers.sim.models["sim/a"].breaker')" = open ]
    [ "$(providers_json '.providers.sim.models["sim/a"].state')" = "cooling down" ]
    [ "$(providers_json '.providers.sim.models["sim/a"].consecutive_failures')" = 5 ]
    [ "$(providers_json '.providers.sim.models["sim/a"].reopens_at | type')" = string ]
    # reopens_at: about 30 s from now, in UTC
    reopen=$(date -u -d "$(providers_json '.providers.sim.models["sim/a"].reopens_at')" +%s)
    now=$(date -u +%s)
    echo "reopens in $((reopen - now)) s"
    [ $((reopen - now)) -ge 25 ] && [ $((reopen - now)) -le 31 ]
    [[ $(providers_json '.providers.sim.models["sim/a"].last_error') == *503* ]]
    [ "$(providers_json '.providers.sim.fallbacks')" -ge 5 ]
    run grep -E '^provider sim model sim/a: cooling down' "$MNT/status"
    assert_success
    # the provider is healthy again, but the breaker is open: nothing is sent to it
    sim_behave sim/a '{}'
    for i in 1 2 3; do
        write_and_read "s$i" "skip $i"
        assert_success
        assert_output "sim[sim/b]: skip $i"
        [ "$(meta "$MNT/fast/s$i.meta" '[.hops[] | .provider] | join(",")')" = backup ]
    done
    [ "$(sim_count sim/a)" = 5 ]
    [ "$(sim_count sim/b)" = 8 ]
}

@test "breaker: after the 30 s cooldown one probe (only one) goes through and closes it" {
    two_hops
    rfs_mount
    sim_behave sim/a '{"status": 503}'
    open_breaker
    [ "$(providers_json '.providers.sim.models["sim/a"].breaker')" = open ]
    sim_behave sim/a '{}'
    # still open a little later: skipped
    write_and_read s1 "skip"
    assert_output "sim[sim/b]: skip"
    [ "$(sim_count sim/a)" = 5 ]
    # after the cooldown the breaker is half-open
    wait_for 34 bash -c '[ "$(jq -r ".providers.sim.models[\"sim/a\"].breaker" "$1")" = half-open ]' _ "$MNT/providers.json"
    [ "$(providers_json '.providers.sim.models["sim/a"].breaker')" = half-open ]
    [ "$(sim_count sim/a)" = 5 ]
    # half-open lets exactly one probe through: of three prompts at once, one goes to
    # sim/a, the others fall back while it is out
    sim_behave sim/a '{"latency_ms": 500}'
    b0=$(sim_count sim/b)
    for i in 1 2 3; do echo "probe $i" >"$MNT/fast/probe$i"; done
    via_a=0
    for i in 1 2 3; do
        run read_out "$MNT/fast/probe$i.out"
        assert_success
        [[ $output == "sim[sim/a]: probe $i" ]] && via_a=$((via_a + 1))
    done
    [ "$via_a" = 1 ]
    echo "sim/a $(sim_count sim/a), sim/b $(( $(sim_count sim/b) - b0 )) more"
    [ "$(sim_count sim/a)" = 6 ]
    [ "$(sim_count sim/b)" = $((b0 + 2)) ]
    jq . "$MNT/providers.json"
    [ "$(providers_json '.providers.sim.models["sim/a"].breaker')" = closed ]
    [ "$(providers_json '.providers.sim.models["sim/a"].state')" = ok ]
    [ "$(providers_json '.providers.sim.models["sim/a"].consecutive_failures')" = 0 ]
    [ "$(providers_json '.providers.sim.models["sim/a"].reopens_at')" = null ]
    write_and_read after "after"
    assert_output "sim[sim/a]: after"
    [ "$(sim_count sim/a)" = 7 ]
}

@test "a flapping provider (503 for 2 s) is used again once it recovers" {
    two_hops
    rfs_mount
    sim_behave sim/a '{"status": 503, "fail_for_ms": 2000}'
    t0=$(now_ms)
    for i in 1 2 3; do
        write_and_read "f$i" "flap $i"
        assert_success
        assert_output "sim[sim/b]: flap $i"
    done
    [ "$(sim_count sim/a)" = 3 ]
    [ "$(providers_json '.providers.sim.models["sim/a"].consecutive_failures')" = 3 ]
    # wait out the outage
    left=$((2300 - ($(now_ms) - t0)))
    [ "$left" -le 0 ] || sleep "$(awk -v ms="$left" 'BEGIN { printf "%.3f", ms / 1000 }')"
    write_and_read back "back"
    assert_success
    assert_output "sim[sim/a]: back"
    [ "$(sim_count sim/a)" = 4 ]
    [ "$(sim_count sim/b)" = 3 ]
    [ "$(providers_json '.providers.sim.models["sim/a"].breaker')" = closed ]
    [ "$(providers_json '.providers.sim.models["sim/a"].consecutive_failures')" = 0 ]
    [ "$(meta "$MNT/fast/back.meta" .fallback)" = false ]
}

# --- provider routing options ---------------------------------------------------------------

@test "allow_fallbacks false: the primary fails, the job fails, the secondary gets nothing" {
    two_hops '"provider": {"allow_fallbacks": false}, "retries": 1, "retry_base_ms": 20, "timeout_ms": 5000'
    rfs_mount
    sim_behave sim/a '{"status": 503}'
    write_and_read p "hi"
    assert_failure
    [ "$status" -ne 124 ]
    assert_output --partial "Input/output error"
    [ -f "$MNT/fast/p.err" ]
    [ "$(sim_count sim/a)" = 2 ]
    [ "$(sim_count sim/b)" = 0 ]
    m="$MNT/fast/p.meta"
    [ "$(meta "$m" .state)" = failed ]
    [ "$(meta "$m" '[.hops[] | .provider] | unique | join(",")')" = sim ]
}

@test "require_parameters: a hop whose provider lacks a used parameter is skipped" {
    rfs_config <<'JSON'
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1",
               "supported_parameters": ["max_tokens", "temperature", "user"]},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1",
               "supported_parameters": ["max_tokens", "temperature", "tools", "tool_choice", "user"]}
  },
  "tiers": {
    "fast": {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}],
             "provider": {"require_parameters": true}, "retries": 0, "timeout_ms": 5000}
  }
}
JSON
    rfs_mount
    cat >"$MNT/fast/q.json" <<'JSON'
{"messages": [{"role": "user", "content": "weather in Paris?"}],
 "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
 "temperature": 0.2}
JSON
    run read_out "$MNT/fast/q.json.out"
    assert_success
    assert_output "sim[sim/b]: weather in Paris?"
    [ "$(sim_count sim/a)" = 0 ]
    [ "$(sim_count sim/b)" = 1 ]
    [ "$(sim_last_body sim/b | jq -r '.tools[0].function.name')" = get_weather ]
    m="$MNT/fast/q.json.meta"
    [ "$(meta "$m" '[.hops[] | .provider] | join(",")')" = backup ]
    [ "$(meta "$m" .endpoint)" = backup ]
    # a prompt without tools still goes to the primary
    echo "plain" >"$MNT/fast/plain"
    run read_out "$MNT/fast/plain.out"
    assert_success
    assert_output "sim[sim/a]: plain"
    [ "$(sim_count sim/a)" = 1 ]
}

@test "OpenRouter kind: provider prefs passed verbatim; served provider, model and cost recorded" {
    rfs_config <<'JSON'
{
  "providers": {
    "or":    {"base_url": "http://127.0.0.1:SIM_PORT/v1", "kind": "openrouter"},
    "plain": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "tiers": {
    "fast":  {"route": ["meta-llama/llama-3-70b-instruct"],
              "provider": {"order": ["Lepton", "Together"], "allow_fallbacks": true,
                           "data_collection": "deny", "sort": "price",
                           "max_price": {"prompt": 1, "completion": 2}},
              "retries": 0, "timeout_ms": 5000},
    "local": {"route": [{"provider": "plain", "model": "sim/plain"}],
              "provider": {"order": ["Lepton"], "allow_fallbacks": true},
              "retries": 0, "timeout_ms": 5000}
  }
}
JSON
    rfs_mount
    sim_behave meta-llama/llama-3-70b-instruct \
        '{"provider": "Lepton", "served_model": "meta-llama/llama-3-70b-instruct:lepton", "cost": 0.0123}'
    write_and_read p "hi router"
    assert_success
    assert_output "sim[meta-llama/llama-3-70b-instruct]: hi router"
    body=$(sim_last_body meta-llama/llama-3-70b-instruct)
    echo "$body"
    want='{"order":["Lepton","Together"],"allow_fallbacks":true,"data_collection":"deny","sort":"price","max_price":{"prompt":1,"completion":2}}'
    [ "$(jq -cS .provider <<<"$body")" = "$(jq -cS . <<<"$want")" ]
    [ "$(jq -r 'has("route")' <<<"$body")" = false ]
    [ "$(jq -r .model <<<"$body")" = meta-llama/llama-3-70b-instruct ]
    m="$MNT/fast/p.meta"
    jq . "$m"
    [ "$(meta "$m" .provider)" = Lepton ]
    [ "$(meta "$m" .model)" = meta-llama/llama-3-70b-instruct:lepton ]
    [ "$(meta "$m" .endpoint)" = or ]
    [ "$(meta "$m" .cost)" = 0.0123 ]
    # an OpenAI-kind provider does not get OpenRouter's provider object
    echo "hi plain" >"$MNT/local/p"
    run read_out "$MNT/local/p.out"
    assert_success
    [ "$(sim_last_body sim/plain | jq -r 'has("provider")')" = false ]
}

# --- client-side limits ---------------------------------------------------------------------

@test "provider rpm 120: 10 prompts never reach 4 requests in one second" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1", "rpm": 120}},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000}}
}
JSON
    rfs_mount
    t0=$(now_ms)
    for i in 0 1 2 3 4 5 6 7 8 9; do echo "rpm $i" >"$MNT/fast/p$i"; done
    for i in 0 1 2 3 4 5 6 7 8 9; do
        run read_out "$MNT/fast/p$i.out"
        assert_success
        assert_output "sim[sim/a]: rpm $i"
    done
    t1=$(now_ms)
    sim_stats | jq -c .
    echo "elapsed $((t1 - t0)) ms"
    [ "$(sim_count sim/a)" = 10 ]
    [ "$(sim_stats | jq -r '.models["sim/a"].max_rps')" -le 3 ]
    # one request every 500 ms: the tenth leaves 4.5 s after the first
    [ $((t1 - t0)) -ge 4000 ]
}

@test "provider max_concurrent 2: 6 prompts of 500 ms take >= 1.4 s" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1", "max_concurrent": 2}},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000}}
}
JSON
    rfs_mount
    write_six_slow mc
    read_six_slow mc
}

@test "tier concurrency 2: 6 prompts of 500 ms take >= 1.4 s" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000, "concurrency": 2}}
}
JSON
    rfs_mount
    write_six_slow tc
    # while the first two run, the others wait in the tier's queue
    wait_for 2 grep -qE '^tier fast: 2 running, 4 queued' "$MNT/status"
    run grep '^tier fast:' "$MNT/status"
    echo "$output"
    read_six_slow tc
}

# --- parking --------------------------------------------------------------------------------

@test "on_exhausted queue: the job parks, a waiting cat gets the completion after recovery" {
    rfs_config <<'JSON'
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1"},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "tiers": {
    "fast":  {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}],
              "retries": 0, "timeout_ms": 5000,
              "on_exhausted": "queue", "park_schedule_ms": [1500, 1500]},
    "other": {"route": ["sim/c"], "retries": 0, "timeout_ms": 5000}
  }
}
JSON
    rfs_mount
    sim_behave '*' '{"status": 503, "fail_for_ms": 1000}'
    t0=$(now_ms)
    echo "park me" >"$MNT/fast/p"
    timeout 20 cat "$MNT/fast/p.out" >"$RFS_DIR/cat.out" 2>"$RFS_DIR/cat.err" 3>&- &
    cat_pid=$!
    wait_state "$MNT/fast/p" parked 3
    m="$MNT/fast/p.meta"
    jq . "$m"
    [ "$(meta "$m" .state)" = parked ]
    [ "$(meta "$m" '.next_attempt_at | type')" = string ]
    [ "$(meta "$m" '.hops | length')" = 2 ]
    [ ! -e "$MNT/fast/p.err" ]
    run grep '^tier fast:' "$MNT/status"
    echo "$output"
    assert_output --partial "1 parked"
    # the reader is still waiting
    kill -0 "$cat_pid"
    wait "$cat_pid"
    rc=$?
    t1=$(now_ms)
    echo "cat exit $rc after $((t1 - t0)) ms: $(cat "$RFS_DIR/cat.out") $(cat "$RFS_DIR/cat.err")"
    [ "$rc" -eq 0 ]
    [ "$(cat "$RFS_DIR/cat.out")" = "sim[sim/a]: park me" ]
    [ $((t1 - t0)) -ge 1400 ]
    [ "$(meta "$m" .state)" = "done" ]
    [ "$(meta "$m" '.hops | length')" = 3 ]
    [ "$(meta "$m" .error)" = null ]
    [ "$(sim_count sim/a)" = 2 ]
    [ "$(sim_count sim/b)" = 1 ]
    # never sent to a model outside the tier's route
    [ "$(sim_stats | jq -r '.models | keys | join(",")')" = "sim/a,sim/b" ]
    [ "$(sim_total)" = 3 ]
}

@test "on_exhausted queue: a parked job does not hold the tier's concurrency slot" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "tiers": {
    "fast": {"route": ["sim/a", "sim/b"], "retries": 0, "timeout_ms": 5000, "concurrency": 1,
             "on_exhausted": "queue", "park_schedule_ms": [10000]}
  }
}
JSON
    rfs_mount
    sim_behave sim/a '{"status": 503, "fail_first": 1}'
    sim_behave sim/b '{"status": 503, "fail_first": 1}'
    echo "parked" >"$MNT/fast/p"
    wait_state "$MNT/fast/p" parked 5
    echo "next" >"$MNT/fast/q"
    run read_out "$MNT/fast/q.out"
    assert_success
    assert_output "sim[sim/a]: next"
    [ "$(meta "$MNT/fast/p.meta" .state)" = parked ]
}

@test "on_exhausted queue: a remount keeps a parked job's schedule: not retried at once, then on time" {
    two_hops '"retries": 0, "timeout_ms": 5000, "on_exhausted": "queue", "park_schedule_ms": [4000, 300]'
    rfs_mount
    sim_behave '*' '{"status": 503}'
    echo "keep my place" >"$MNT/fast/p"
    wait_state "$MNT/fast/p" parked 5
    local next
    next=$(meta "$MNT/fast/p.meta" .next_attempt_at)
    [ "$(meta "$MNT/fast/p.meta" .park_count)" = 1 ]
    rfs_unmount
    sim_reset                                  # healthy, and the counts start again
    rfs_mount
    wait_state "$MNT/fast/p" parked 5
    jq . "$MNT/fast/p.meta"
    [ "$(meta "$MNT/fast/p.meta" .next_attempt_at)" = "$next" ]
    [ "$(meta "$MNT/fast/p.meta" .park_count)" = 1 ]
    sleep 1
    [ "$(sim_total)" = 0 ]                     # not retried at the remount
    rfs_unmount                                # a second remount keeps it too
    rfs_mount
    wait_state "$MNT/fast/p" parked 5
    [ "$(meta "$MNT/fast/p.meta" .next_attempt_at)" = "$next" ]
    [ "$(sim_total)" = 0 ]
    run read_out "$MNT/fast/p.out"
    assert_success
    assert_output "sim[sim/a]: keep my place"
    [ "$(sim_total)" = 1 ]
    # a store file, invisible in the mount
    [ -z "$(ls -A "$MNT/fast" | grep -v '^p$\|^p\.out$\|^p\.meta$')" ]
}

@test "on_exhausted queue: once the park schedule is used up the job fails with .err" {
    two_hops '"retries": 0, "timeout_ms": 5000, "on_exhausted": "queue", "park_schedule_ms": [300, 300]'
    rfs_mount
    sim_behave '*' '{"status": 503}'
    t0=$(now_ms)
    echo "give up" >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    t1=$(now_ms)
    assert_failure
    [ "$status" -ne 124 ]
    assert_output --partial "Input/output error"
    echo "elapsed $((t1 - t0)) ms"
    [ -f "$MNT/fast/p.err" ]
    # three rounds over the route: the first, then one per park
    [ "$(sim_count sim/a)" = 3 ]
    [ "$(sim_count sim/b)" = 3 ]
    [ $((t1 - t0)) -ge 550 ]
    [ "$(meta "$MNT/fast/p.meta" .state)" = failed ]
}

@test "on_exhausted fail (the default): the job fails at once" {
    two_hops
    rfs_mount
    sim_behave '*' '{"status": 503, "fail_for_ms": 1000}'
    echo "no park" >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_failure
    [ -f "$MNT/fast/p.err" ]
    [ "$(meta "$MNT/fast/p.meta" .state)" = failed ]
    [ "$(sim_total)" = 2 ]
}

# --- what the virtual files say -------------------------------------------------------------

@test "providers.json: every field present and sane" {
    two_hops
    rfs_mount
    sim_behave sim/a '{"latency_ms": 100}'
    write_and_read ok1 "one"
    assert_success
    write_and_read ok2 "two"
    assert_success
    sim_behave sim/a '{"status": 503, "error_message": "overloaded right now"}'
    write_and_read fb "three"
    assert_success
    assert_output "sim[sim/b]: three"
    jq . "$MNT/providers.json"
    p='.providers.sim'
    for f in state breaker reopens_at consecutive_failures cooldown_ms opened last_error latency_ms requests failures fallbacks models; do
        [ "$(providers_json "$p | has(\"$f\")")" = true ] || { echo "missing $f"; false; }
    done
    [ "$(providers_json "$p.state")" = ok ]
    [ "$(providers_json "$p.breaker")" = closed ]
    [ "$(providers_json "$p.reopens_at")" = null ]
    [ "$(providers_json "$p.models[\"sim/a\"].consecutive_failures")" = 1 ]
    [[ $(providers_json "$p.last_error") == *503* ]]
    [ "$(providers_json "$p.requests")" = 3 ]
    [ "$(providers_json "$p.failures")" = 1 ]
    [ "$(providers_json "$p.fallbacks")" = 1 ]
    [ "$(providers_json "$p.latency_ms.p50 >= 90 and $p.latency_ms.p50 <= $p.latency_ms.p95")" = true ]
    [ "$(providers_json "$p.models | type")" = object ]
    b='.providers.backup'
    [ "$(providers_json "$b.state")" = ok ]
    [ "$(providers_json "$b.requests")" = 1 ]
    [ "$(providers_json "$b.failures")" = 0 ]
    [ "$(providers_json "$b.last_error")" = null ]
    [ "$(providers_json "$b.latency_ms.p50 >= 0")" = true ]
    # no secrets, no junk: it is one JSON document
    jq -e . "$MNT/providers.json" >/dev/null
}

@test "providers.json fallbacks: counts jobs that moved on to a later hop, nothing else" {
    two_hops
    rfs_mount
    sim_behave '*' '{"status": 503}'
    write_and_read p "both fail"
    assert_failure
    [ "$(sim_count sim/a)" = 1 ]
    [ "$(sim_count sim/b)" = 1 ]
    jq . "$MNT/providers.json"
    # the job moved on from sim to backup once; from backup it moved nowhere
    [ "$(providers_json '.providers.sim.fallbacks')" = 1 ]
    [ "$(providers_json '.providers.backup.fallbacks')" = 0 ]
}

@test "activity.jsonl: one line per finished or failed job with tier, hops, provider, fallback" {
    two_hops
    rfs_mount
    write_and_read a "first"
    assert_success
    sim_behave sim/a '{"status": 503}'
    write_and_read b "second"
    assert_success
    sim_behave sim/b '{"status": 503}'
    write_and_read c "third"
    assert_failure
    wait_for 3 bash -c '[ "$(wc -l <"$1")" -ge 3 ]' _ "$MNT/activity.jsonl"
    cat "$MNT/activity.jsonl"
    run wc -l <"$MNT/activity.jsonl"
    [ "$output" -eq 3 ]
    act="$MNT/activity.jsonl"
    # every line is JSON with the fields
    [ "$(jq -s 'map(has("tier") and has("hops") and has("provider") and has("fallback") and has("state")) | all' "$act")" = true ]
    [ "$(jq -r -s 'map(.file) | join(",")' "$act")" = "a,b,c" ]
    [ "$(jq -r -s 'map(.tier) | unique | join(",")' "$act")" = fast ]
    [ "$(jq -r 'select(.file == "a") | [.state, .provider, .endpoint, (.fallback | tostring), (.hops | length | tostring)] | join(" ")' "$act")" = "done Sim sim false 1" ]
    [ "$(jq -r 'select(.file == "b") | [.state, .endpoint, (.fallback | tostring), (.hops | length | tostring)] | join(" ")' "$act")" = "done backup true 2" ]
    [ "$(jq -r 'select(.file == "c") | [.state, (.provider | tostring), (.hops | length | tostring)] | join(" ")' "$act")" = "failed null 2" ]
    [ "$(jq -r 'select(.file == "c") | .error != null' "$act")" = true ]
}

@test "getfattr user.routefs.provider/model/endpoint on a finished NAME.out" {
    two_hops
    rfs_mount
    sim_behave sim/a '{"provider": "Lepton"}'
    cp_src="$RFS_DIR/a.txt"
    printf 'attrs please' >"$cp_src"
    cp "$cp_src" "$MNT/fast/"
    run read_out "$MNT/fast/a.txt.out"
    assert_success
    run getfattr --absolute-names -n user.routefs.provider "$MNT/fast/a.txt.out"
    assert_success
    assert_output --partial 'user.routefs.provider="Lepton"'
    run getfattr --absolute-names --only-values -n user.routefs.provider "$MNT/fast/a.txt.out"
    assert_output Lepton
    run getfattr --absolute-names --only-values -n user.routefs.model "$MNT/fast/a.txt.out"
    assert_output sim/a
    run getfattr --absolute-names --only-values -n user.routefs.endpoint "$MNT/fast/a.txt.out"
    assert_output sim
    # after a fallback the endpoint says which config provider served
    sim_behave sim/a '{"status": 503}'
    write_and_read fb "fall back"
    assert_success
    run getfattr --absolute-names --only-values -n user.routefs.endpoint "$MNT/fast/fb.out"
    assert_output backup
    run getfattr --absolute-names --only-values -n user.routefs.model "$MNT/fast/fb.out"
    assert_output sim/b
    # getfattr -d lists them
    run getfattr --absolute-names -d "$MNT/fast/fb.out"
    assert_success
    assert_output --partial 'user.routefs.provider="Sim"'
    # an unknown attribute: no such attribute
    run getfattr --absolute-names -n user.routefs.nope "$MNT/fast/fb.out"
    assert_failure
}

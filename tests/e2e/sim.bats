#!/usr/bin/env bats
# routefs-sim, the test fixture itself: the helpers the mount tests rely on.

load helpers

setup() {
    rfs_setup
}

teardown() {
    rfs_teardown
}

chat() {  # chat MODEL TEXT [CURL ARGS...] — POST a chat request, print "HTTP_STATUS BODY"
    local model=$1 text=$2; shift 2
    local body
    body=$(jq -cn --arg m "$model" --arg t "$text" '{model: $m, messages: [{role: "user", content: $t}]}')
    curl -s --max-time 10 -w '\n%{http_code}' -H 'Content-Type: application/json' "$@" \
        -d "$body" "$SIM_URL/v1/chat/completions"
}

@test "sim: default reply echoes the last user message, provider Sim" {
    run chat sim/x "hello there"
    assert_success
    [ "${lines[-1]}" = 200 ]
    body=${output%$'\n'*}
    [ "$(jq -r '.choices[0].message.content' <<<"$body")" = "sim[sim/x]: hello there" ]
    [ "$(jq -r .provider <<<"$body")" = Sim ]
    [ "$(jq -r .model <<<"$body")" = sim/x ]
    [ "$(jq -r '.usage.prompt_tokens > 0 and .usage.completion_tokens > 0' <<<"$body")" = true ]
}

@test "sim: sim_behave status, sim_count and reset" {
    sim_behave sim/x '{"status": 503}'
    run chat sim/x hi
    [ "${lines[-1]}" = 503 ]
    run chat sim/y hi
    [ "${lines[-1]}" = 200 ]
    [ "$(sim_count sim/x)" = 1 ]
    [ "$(sim_count sim/y)" = 1 ]
    [ "$(sim_count sim/none)" = 0 ]
    [ "$(sim_total)" = 2 ]
    sim_reset
    [ "$(sim_total)" = 0 ]
    run chat sim/x hi
    [ "${lines[-1]}" = 200 ]
}

@test "sim: a typo in a behaviour is refused" {
    run sim_behave sim/x '{"statuss": 503}'
    assert_failure
}

@test "sim: last_body and last_auth" {
    run chat sim/x "body check" -H 'Authorization: Bearer sk-abc'
    [ "${lines[-1]}" = 200 ]
    [ "$(sim_last_auth sim/x)" = "Bearer sk-abc" ]
    [ "$(sim_last_body sim/x | jq -r '.messages[0].content')" = "body check" ]
    run chat sim/y "no auth"
    [ "$(sim_last_auth sim/y)" = null ]
}

@test "sim: latency_ms delays, fail_first fails only the first N" {
    sim_behave sim/x '{"latency_ms": 400}'
    t0=$(now_ms)
    run chat sim/x hi
    t1=$(now_ms)
    [ "${lines[-1]}" = 200 ]
    [ $((t1 - t0)) -ge 380 ]
    sim_behave sim/y '{"status": 500, "fail_first": 1}'
    run chat sim/y hi
    [ "${lines[-1]}" = 500 ]
    run chat sim/y hi
    [ "${lines[-1]}" = 200 ]
}

@test "sim: hang mode holds the request" {
    sim_behave sim/x '{"mode": "hang"}'
    run chat sim/x hi --max-time 1
    [ "$status" -eq 28 ]
}

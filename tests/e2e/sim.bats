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

# --- streams ------------------------------------------------------------------------

# body MODEL TEXT [JQ-OBJECT] — a chat request body, with extra fields merged in.
body() {
    jq -cn --arg m "$1" --arg t "$2" --argjson x "${3:-{\}}" \
        '{model: $m, messages: [{role: "user", content: $t}]} + $x'
}

# stream MODEL TEXT [EXTRA [HEADER...]] — sim_sse of a stream request into $RFS_DIR/ev.jsonl
stream() {
    local model=$1 text=$2 extra=${3:-{\}}; shift 3 2>/dev/null || shift $#
    sim_sse "$(body "$model" "$text" "$(jq -cn --argjson x "$extra" \
        '{stream: true, stream_options: {include_usage: true}} + $x')")" "$@" >"$RFS_DIR/ev.jsonl"
    cat "$RFS_DIR/ev.jsonl"
}
ev() { jq -rs "$1" "$RFS_DIR/ev.jsonl"; }   # ev JQ — a query over the events, as an array
tokens() { ev '[.[] | select(.type == "data" and .json != null) | .json.choices[0].delta.content // empty] | .[1:] | join("")'; }

@test "stream: role first, one chunk per token in order, content as the JSON reply, usage, [DONE]" {
    run chat sim/x "the quick  brown fox"
    want=$(jq -r '.choices[0].message.content' <<<"${output%$'\n'*}")
    [ "$(jq -r .id <<<"${output%$'\n'*}")" = sim-1 ]   # a plain request keeps its JSON
    stream sim/x "the quick  brown fox"
    [ "$(ev '.[0].status')" = 200 ]
    [ "$(ev '.[0].content_type')" = text/event-stream ]
    [ "$(ev '[.[] | select(.type == "data")][0].json.choices[0].delta.role')" = assistant ]
    # "sim[sim/x]: the quick  brown fox": five tokens, each keeping the space before it
    [ "$(ev '[.[] | select(.type == "data") | .json.choices[0].delta.content // empty | select(. != "")] | length')" = 5 ]
    [ "$(ev '[.[] | select(.type == "data") | .json.choices[0].delta.content // empty | select(. != "")][2]')" = " quick" ]
    [ "$(tokens)" = "$want" ]
    [ "$(ev '[.[] | select(.type == "data") | .json.id] | unique | length')" = 1 ]
    [[ "$(ev '[.[] | select(.type == "data")][0].json.id')" == gen-* ]]
    [ "$(ev '[.[] | select(.type == "data")][0].json.id')" = "$(ev '.[0].generation_id')" ]
    [ "$(ev '[.[] | select(.type == "data") | .json | .object == "chat.completion.chunk" and .model == "sim/x" and .provider == "Sim" and (.created | type) == "number"] | all')" = true ]
    [ "$(ev '[.[] | select(.type == "data") | .json.choices[0].finish_reason // empty] | join(",")')" = stop ]
    last=$(ev '[.[] | select(.type == "data")] | last | .json')
    [ "$(jq -c .choices <<<"$last")" = "[]" ]
    [ "$(jq -r '.usage.total_tokens == .usage.prompt_tokens + .usage.completion_tokens and .usage.completion_tokens > 0' <<<"$last")" = true ]
    [ "$(jq -r '.usage | has("cost")' <<<"$last")" = false ]   # an unpriced model reports none
    [ "$(ev '[.[] | .type] | .[-2:] | join(",")')" = done,end ]
    [ "$(ev 'last.how')" = eof ]
    [ "$(sim_model_stat sim/x streams)" = 1 ]
    [ "$(sim_model_stat sim/x tokens_sent)" = 5 ]
    [ "$(sim_model_stat sim/x requests)" = 2 ]
}

@test "stream: no usage chunk unless include_usage; usage none drops it; cost when priced" {
    sim_sse "$(body sim/x hi '{"stream": true}')" >"$RFS_DIR/ev.jsonl"
    [ "$(ev '[.[] | select(.type == "data") | .json | has("usage")] | any')" = false ]
    [ "$(ev 'map(select(.type == "done")) | length')" = 1 ]
    sim_behave sim/y '{"usage": "none"}'
    stream sim/y hi
    [ "$(ev '[.[] | select(.type == "data") | .json | has("usage")] | any')" = false ]
    sim_behave sim/z '{"charge_usd": 0.25}'
    stream sim/z hi
    [ "$(ev '[.[] | select(.type == "data")] | last | .json.usage.cost')" = 0.25 ]
}

@test "stream: first_token_ms sends headers and the role chunk at once, keepalives meanwhile" {
    sim_behave sim/x '{"first_token_ms": 1200, "keepalive_ms": 250, "token_ms": 20}'
    stream sim/x "slow start"
    [ "$(ev '.[0].t')" -lt 600 ]                                   # status line
    [ "$(ev '[.[] | select(.type == "data")][0].t')" -lt 600 ]      # role chunk
    first=$(ev '[.[] | select(.type == "data") | select(.json.choices[0].delta.content // "" | . != "")][0].t')
    echo "first token at $first ms"
    [ "$first" -ge 1150 ] && [ "$first" -lt 4000 ]
    [ "$(ev '[.[] | select(.type == "comment" and .text == "OPENROUTER PROCESSING")] | length')" -ge 3 ]
    [ "$(tokens)" = "sim[sim/x]: slow start" ]
}

@test "stream: token_ms paces the tokens" {
    sim_behave sim/x '{"tokens": 6, "token_ms": 150}'
    stream sim/x hi
    [ "$(tokens)" = "tok1 tok2 tok3 tok4 tok5 tok6" ]
    span=$(ev '[.[] | select(.type == "data") | select(.json.choices[0].delta.content // "" | . != "") | .t] | last - first')
    echo "tokens over $span ms"
    [ "$span" -ge 700 ] && [ "$span" -lt 4000 ]
}

@test "stream: cut_after closes after N tokens, unfinished: no finish, no usage, no [DONE]" {
    sim_behave sim/x '{"tokens": 60, "cut_after": 40}'
    stream sim/x hi
    [ "$(ev 'last.how')" = cut ]
    [ "$(tokens)" = "$(seq -f 'tok%g' 1 40 | paste -sd' ')" ]
    [ "$(ev '[.[] | select(.type == "data") | .json.choices[0].finish_reason // empty] | length')" = 0 ]
    [ "$(ev '[.[] | select(.type == "data") | .json | has("usage")] | any')" = false ]
    [ "$(ev 'map(select(.type == "done")) | length')" = 0 ]
    [ "$(sim_model_stat sim/x tokens_sent)" = 40 ]
    [ "$(sim_model_stat sim/x cancelled)" = 0 ]   # the sim cut it: the client did not leave
}

@test "stream: stall_after goes silent for stall_ms with the connection open, then closes" {
    sim_behave sim/x '{"tokens": 60, "stall_after": 40, "stall_ms": 1500}'
    stream sim/x hi
    [ "$(ev 'last.how')" = cut ]
    [ "$(tokens)" = "$(seq -f 'tok%g' 1 40 | paste -sd' ')" ]
    gap=$(ev '(last.t) - ([.[] | select(.type == "data")] | last | .t)')
    echo "silent for $gap ms"
    [ "$gap" -ge 1400 ] && [ "$gap" -lt 5000 ]
    [ "$(ev 'map(select(.type == "comment")) | length')" = 0 ]   # silence: no keepalive asked
}

@test "stream: malformed_at makes one event invalid JSON, the rest completes" {
    sim_behave sim/x '{"tokens": 5, "malformed_at": 3}'
    stream sim/x hi
    [ "$(ev '[.[] | select(.type == "data")] | map(has("invalid")) | index(true)')" = 2 ]
    [ "$(ev '[.[] | select(.type == "data") | select(.invalid)] | length')" = 1 ]
    [ "$(tokens)" = "tok1 tok3 tok4 tok5" ]   # tok2 rode on the third event
    [ "$(ev 'map(select(.type == "done")) | length')" = 1 ]
    [ "$(ev 'last.how')" = eof ]
}

@test "stream: no_done omits [DONE] (finish and usage still come); no_finish omits the finish chunk" {
    sim_behave sim/x '{"no_done": true}'
    stream sim/x hi
    [ "$(ev 'map(select(.type == "done")) | length')" = 0 ]
    [ "$(ev '[.[] | select(.type == "data") | .json.choices[0].finish_reason // empty] | join(",")')" = stop ]
    [ "$(ev '[.[] | select(.type == "data") | .json | has("usage")] | any')" = true ]
    [ "$(ev 'last.how')" = eof ]
    sim_behave sim/y '{"no_finish": true}'
    stream sim/y hi
    [ "$(ev '[.[] | select(.type == "data") | .json.choices[0].finish_reason // empty] | length')" = 0 ]
    [ "$(ev 'map(select(.type == "done")) | length')" = 1 ]
}

@test "stream: error_at sends an error chunk after N tokens and ends; stream_finish_error" {
    sim_behave sim/x '{"tokens": 10, "error_at": 3}'
    stream sim/x hi
    [ "$(tokens)" = "tok1 tok2 tok3" ]
    err=$(ev '[.[] | select(.type == "data")] | last | .json')
    [ "$(jq -r .error.code <<<"$err")" = 502 ]
    [ -n "$(jq -r .error.message <<<"$err")" ]
    [ "$(jq -r '.choices[0].finish_reason' <<<"$err")" = error ]
    [ "$(ev 'map(select(.type == "done")) | length')" = 0 ]
    sim_behave sim/y '{"stream_finish_error": true}'
    stream sim/y hi
    [ "$(ev '[.[] | select(.type == "data") | .json.choices[0].finish_reason // empty] | join(",")')" = error ]
    [ "$(ev 'map(select(.type == "done")) | length')" = 1 ]
}

@test "stream: a client that leaves mid-stream is counted cancelled, and still billed" {
    sim_behave sim/x '{"tokens": 40, "token_ms": 100, "charge_usd": 0.5}'
    run curl -sN --max-time 1 -d "$(body sim/x hi '{"stream": true}')" "$SIM_URL/v1/chat/completions"
    [ "$status" -eq 28 ]
    wait_for 5 [ "$(sim_model_stat sim/x cancelled)" = 1 ]
    [ "$(sim_model_stat sim/x cancelled)" = 1 ]
    [ "$(sim_model_stat sim/x tokens_sent)" -lt 40 ]
    [ "$(sim_charged sim/x)" = 0.5 ]
    [ "$(sim_model_stat sim/x in_flight)" = 0 ]
}

@test "stream: failing modes apply before streaming; reset_before_headers sends nothing" {
    sim_behave sim/x '{"status": 503}'
    stream sim/x hi
    [ "$(ev '.[0].status')" = 503 ]
    sim_behave sim/y '{"mode": "reset_before_headers"}'
    run curl -s --max-time 5 -o "$RFS_DIR/got" -d "$(body sim/y hi '{"stream": true}')" "$SIM_URL/v1/chat/completions"
    echo "curl status $status"
    [ "$status" -eq 56 ] || [ "$status" -eq 52 ]
    [ ! -s "$RFS_DIR/got" ]
    [ "$(sim_charged sim/y)" = 0 ]
}

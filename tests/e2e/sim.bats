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
    wait_for 5 stat_is sim/x cancelled 1
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

# --- billing ------------------------------------------------------------------------

# post MODEL TEXT [EXTRA [CURL ARGS...]] — POST a chat request; prints "BODY\nSTATUS"
post() {
    local model=$1 text=$2 extra=${3:-{\}}; shift 3 2>/dev/null || shift $#
    curl -s --max-time 10 -w '\n%{http_code}' "$@" -d "$(body "$model" "$text" "$extra")" \
        "$SIM_URL/v1/chat/completions"
}
stat_is() { [ "$(sim_model_stat "$1" "$2")" = "$3" ]; }   # stat_is MODEL KEY VALUE
generation_ready() { [ "$(sim_generation "$1" | tail -n1)" = 200 ]; }
near() { python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > 1e-9 * max(1, abs(b)))' "$1" "$2"; }

@test "billing: charge_usd, price and cost bill each 2xx answer; failures bill nothing" {
    sim_behave sim/a '{"charge_usd": 0.125}'
    sim_behave sim/b '{"price": {"prompt": 1000, "completion": 2000}}'
    sim_behave sim/c '{"cost": 0.03}'
    sim_behave sim/d '{"charge_usd": 0.5, "status": 503}'
    sim_behave sim/e '{}'
    for m in sim/a sim/a sim/b sim/c sim/d sim/e; do post "$m" "twelve chars" >/dev/null; done
    run post sim/b "twelve chars"
    usage=$(head -n1 <<<"$output" | jq -c .usage)
    # price: tokens x USD per million tokens, reported as the cost
    want=$(jq -r '(.prompt_tokens * 1000 + .completion_tokens * 2000) / 1000000' <<<"$usage")
    near "$(jq -r .cost <<<"$usage")" "$want"
    near "$(sim_charged sim/a)" 0.25
    near "$(sim_charged sim/b)" "$(python3 -c "print(2 * $want)")"
    near "$(sim_charged sim/c)" 0.03
    [ "$(sim_charged sim/d)" = 0 ]
    [ "$(sim_charged sim/e)" = 0 ]
    near "$(sim_charged)" "$(python3 -c "print(0.25 + 2 * $want + 0.03)")"
    # a plain model reports no cost, as before
    run post sim/e hi
    [ "$(head -n1 <<<"$output" | jq -r '.usage | has("cost")')" = false ]
}

@test "billing: report_cost puts any JSON in usage.cost while the charge stays the truth" {
    local v i=0
    for v in 1e300 -1 0.5 '"abc"' null; do
        i=$((i + 1))
        sim_behave "sim/r$i" "{\"charge_usd\": 0.01, \"report_cost\": $v}"
        run post "sim/r$i" hi
        [ "${lines[-1]}" = 200 ]
        got=$(head -n1 <<<"$output" | jq -c .usage.cost)
        echo "report_cost $v -> $got"
        [ "$got" = "$(jq -cn "$v")" ]
        near "$(sim_charged "sim/r$i")" 0.01
    done
    near "$(sim_charged)" 0.05
}

@test "billing: usage tokens / none, prompt_tokens and completion_tokens overrides, tokens N" {
    sim_behave sim/a '{"charge_usd": 0.2, "usage": "tokens"}'
    run post sim/a hi
    [ "$(head -n1 <<<"$output" | jq -r '.usage | has("cost")')" = false ]
    [ "$(head -n1 <<<"$output" | jq -r '.usage.total_tokens > 0')" = true ]
    sim_behave sim/b '{"charge_usd": 0.2, "usage": "none"}'
    run post sim/b hi
    [ "$(head -n1 <<<"$output" | jq -r 'has("usage")')" = false ]
    near "$(sim_charged)" 0.4   # billed whatever it reported
    sim_behave sim/c '{"prompt_tokens": 1000, "completion_tokens": 7, "price": {"prompt": 1, "completion": 1}}'
    run post sim/c hi
    [ "$(head -n1 <<<"$output" | jq -c '.usage | [.prompt_tokens, .completion_tokens, .total_tokens]')" = "[1000,7,1007]" ]
    near "$(head -n1 <<<"$output" | jq -r .usage.cost)" 0.001007
    sim_behave sim/d '{"tokens": 4}'
    run post sim/d hi
    [ "$(head -n1 <<<"$output" | jq -r '.choices[0].message.content')" = "tok1 tok2 tok3 tok4" ]
    [ "$(head -n1 <<<"$output" | jq -r .usage.completion_tokens)" = 4 ]
}

@test "billing: 402 Insufficient credits and 403 key_limit, OpenRouter-style, with Retry-After and error_metadata" {
    sim_behave sim/a '{"status": 402}'
    run post sim/a hi
    [ "${lines[-1]}" = 402 ]
    [ "$(head -n1 <<<"$output" | jq -r .error.code)" = 402 ]
    [[ "$(head -n1 <<<"$output" | jq -r .error.message)" == "Insufficient credits"* ]]
    sim_behave sim/b '{"key_limit": true, "retry_after": 7, "error_metadata": {"provider_name": "Up", "raw": "x"}}'
    run post sim/b hi '{}' -D "$RFS_DIR/headers"
    [ "${lines[-1]}" = 403 ]
    [[ "$(head -n1 <<<"$output" | jq -r .error.message)" == "Key limit exceeded"* ]]
    [ "$(head -n1 <<<"$output" | jq -c .error.metadata)" = '{"provider_name":"Up","raw":"x"}' ]
    grep -qi '^Retry-After: 7' "$RFS_DIR/headers"
    sim_behave sim/c '{"status": 503, "error_message": "down", "error_metadata": {"provider_name": "Up"}}'
    run post sim/c hi
    [ "$(head -n1 <<<"$output" | jq -c .error)" = '{"message":"down","type":"sim_error","code":503,"metadata":{"provider_name":"Up"}}' ]
    [ "$(sim_charged)" = 0 ]
}

# --- OpenRouter endpoints ------------------------------------------------------------

@test "openrouter: /api/v1/models lists priced models (USD per token strings); /control/models replaces it" {
    sim_behave openai/gpt-4o '{"price": {"prompt": 2.5, "completion": 10}}'
    sim_behave z/cheap '{"price": {"prompt": 0.15, "completion": 0.6}}'
    sim_behave z/unpriced '{"cost": 1}'
    run curl -sf "$SIM_URL/api/v1/models"
    assert_success
    [ "$(jq -r '[.data[].id] | join(",")' <<<"$output")" = "openai/gpt-4o,z/cheap" ]
    [ "$(jq -c '.data[0].pricing | [.prompt, .completion, .request]' <<<"$output")" = '["0.0000025","0.00001","0"]' ]
    [ "$(jq -c '.data[1].pricing | [.prompt, .completion]' <<<"$output")" = '["0.00000015","0.0000006"]' ]
    [ "$(jq -r '.data[0] | (.context_length | type) + " " + (.supported_parameters | type) + " " + .name' <<<"$output")" = "number array Sim: openai/gpt-4o" ]
    run curl -sf "$SIM_URL/v1/models"   # under the OpenAI prefix too
    [ "$(jq -r '.data | length' <<<"$output")" = 2 ]
    sim_models_set '{"data": [{"id": "weird/x", "pricing": {"prompt": "-1", "completion": "abc"}}]}'
    run curl -sf "$SIM_URL/api/v1/models"
    [ "$output" = '{"data":[{"id":"weird/x","pricing":{"prompt":"-1","completion":"abc"}}]}' ]
    run curl -s -o /dev/null -w '%{http_code}' -d '{"data": 5}' "$SIM_URL/control/models"
    [ "$output" = 400 ]
    [ "$(sim_endpoint_count /api/v1/models)" = 3 ]
    sim_reset
    [ "$(curl -sf "$SIM_URL/api/v1/models" | jq -c .)" = '{"data":[]}' ]
}

@test "openrouter: the script's \"models\" key is the startup /api/v1/models list" {
    _stop_pid "$SIM_PID"
    cat >"$RFS_DIR/script.json" <<'JSON'
{"models": {"data": [{"id": "s/one", "pricing": {"prompt": "0.000001", "completion": "0.000002"}}]},
 "s/one": {"latency_ms": 1}}
JSON
    sim_start --script "$RFS_DIR/script.json"
    [ "$(curl -sf "$SIM_URL/api/v1/models" | jq -r '.data[0].pricing.completion')" = 0.000002 ]
    sim_models_set '{"data": []}'
    sim_reset
    [ "$(curl -sf "$SIM_URL/api/v1/models" | jq -r '.data[0].id')" = s/one ]
    run post models hi   # "models" is no model's behaviour: the default answers
    [ "${lines[-1]}" = 200 ]
}

@test "openrouter: /api/v1/key reports usage per key from what the sim billed; a limit then refuses with 403" {
    run curl -s -w '\n%{http_code}' "$SIM_URL/api/v1/key"
    [ "${lines[-1]}" = 401 ]
    sim_behave sim/a '{"charge_usd": 0.4}'
    post sim/a hi '{}' -H 'Authorization: Bearer sk-one' >/dev/null
    post sim/a hi '{}' -H 'Authorization: Bearer sk-two' >/dev/null
    sim_key_set '{"limit": 1, "label": "ci key", "rate_limit": {"requests": 5, "interval": "10s"}}'
    run curl -sf -H 'Authorization: Bearer sk-one' "$SIM_URL/api/v1/key"
    key=$output
    [ "$(jq -r .data.label <<<"$key")" = "ci key" ]
    [ "$(jq -r .data.limit <<<"$key")" = 1 ]
    near "$(jq -r .data.usage <<<"$key")" 0.4
    near "$(jq -r .data.usage_daily <<<"$key")" 0.4
    near "$(jq -r .data.limit_remaining <<<"$key")" 0.6
    [ "$(jq -r '.data | [.limit_reset, .is_free_tier, (.usage_weekly | type), (.usage_monthly | type)] | map(tostring) | join(" ")' <<<"$key")" = "null false number number" ]
    [ "$(jq -c .data.rate_limit <<<"$key")" = '{"requests":5,"interval":"10s"}' ]
    post sim/a hi '{}' -H 'Authorization: Bearer sk-one' >/dev/null
    post sim/a hi '{}' -H 'Authorization: Bearer sk-one' >/dev/null   # 1.2 >= 1: over
    run post sim/a hi '{}' -H 'Authorization: Bearer sk-one'
    [ "${lines[-1]}" = 403 ]
    [[ "$(head -n1 <<<"$output" | jq -r .error.message)" == "Key limit exceeded"* ]]
    [ "$(curl -sf -H 'Authorization: Bearer sk-one' "$SIM_URL/api/v1/key" | jq -r .data.limit_remaining)" = 0 ]
    run post sim/a hi '{}' -H 'Authorization: Bearer sk-two'   # another key is under it
    [ "${lines[-1]}" = 200 ]
    near "$(sim_charged sim/a)" 2.0
    sim_key_set '{"limit": 1, "limit_reset": "daily"}'
    run post sim/a hi '{}' -H 'Authorization: Bearer sk-one' -D "$RFS_DIR/headers"
    [ "${lines[-1]}" = 403 ]
    retry=$(tr -d '\r' <"$RFS_DIR/headers" | awk -F': ' 'tolower($1) == "retry-after" {print $2}')
    echo "Retry-After $retry"
    [ "$retry" -gt 0 ] && [ "$retry" -le 86400 ]
    [ "$(sim_endpoint_count /api/v1/key)" = 3 ]
}

@test "openrouter: /api/v1/generation is 404 until generation_delay_ms after the end, then the record" {
    sim_behave sim/a '{"charge_usd": 0.02, "generation_delay_ms": 1000, "provider": "Prov"}'
    run post sim/a hi '{"service_tier": "flex", "session_id": "s-42", "user": "u1"}' -D "$RFS_DIR/headers"
    id=$(head -n1 <<<"$output" | jq -r .id)
    [ "$(tr -d '\r' <"$RFS_DIR/headers" | awk -F': ' 'tolower($1) == "x-generation-id" {print $2}')" = "$id" ]
    [ "$(head -n1 <<<"$output" | jq -r .service_tier)" = flex ]
    run sim_generation "$id"
    [ "${lines[-1]}" = 404 ]
    [ "$(head -n1 <<<"$output" | jq -c .error)" = '{"code":404,"message":"Generation not found"}' ]
    sleep 1.2
    run sim_generation "$id"
    [ "${lines[-1]}" = 200 ]
    d=$(head -n1 <<<"$output" | jq -c .data)
    echo "$d"
    [ "$(jq -r '[.id, .model, .provider_name, .service_tier, .session_id, .external_user, .finish_reason] | join(" ")' <<<"$d")" = "$id sim/a Prov flex s-42 u1 stop" ]
    near "$(jq -r .total_cost <<<"$d")" 0.02
    [ "$(jq -r '[.streamed, .cancelled] | map(tostring) | join(" ")' <<<"$d")" = "false false" ]
    [ "$(jq -r '[.tokens_prompt, .tokens_completion, .native_tokens_prompt, .native_tokens_completion, .native_tokens_reasoning, .latency, .generation_time, .moderation_latency] | map(type) | unique | join(",")' <<<"$d")" = number ]
    [ "$(jq -r '.created_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")' <<<"$d")" = true ]
    [ "$(jq -c '.provider_responses | map({provider_name, status})' <<<"$d")" = '[{"provider_name":"Prov","status":200}]' ]
    run sim_generation gen-nope
    [ "${lines[-1]}" = 404 ]
    run curl -s -o /dev/null -w '%{http_code}' "$SIM_URL/api/v1/generation?id=$id"
    [ "$output" = 401 ]
    # a stream's record says so; a failed request leaves none
    sim_behave sim/b '{"generation_delay_ms": 0, "tokens": 3}'
    stream sim/b hi
    gid=$(ev '.[0].generation_id')
    wait_for 3 generation_ready "$gid"
    [ "$(sim_generation "$gid" | head -n1 | jq -r '[.data.streamed, .data.cancelled, .data.finish_reason] | map(tostring) | join(" ")')" = "true false stop" ]
    sim_behave sim/c '{"status": 500, "generation_delay_ms": 0}'
    run post sim/c hi
    run sim_generation "sim-$(sim_total)"
    [ "${lines[-1]}" = 404 ]
}

@test "openrouter: \"models\" fallback tries each in order; the first success serves; all failing returns the last" {
    sim_behave f/one '{"status": 503, "provider": "P1", "latency_ms": 200}'
    sim_behave f/two '{"mode": "html", "provider": "P2"}'
    sim_behave f/three '{"provider": "P3", "charge_usd": 0.1, "generation_delay_ms": 0}'
    t0=$(now_ms)
    run curl -s -w '\n%{http_code}' -d "$(jq -cn '{models: ["f/one", "f/two", "f/three"], messages: [{role: "user", content: "hi"}]}')" \
        "$SIM_URL/api/v1/chat/completions"
    [ $(( $(now_ms) - t0 )) -ge 190 ]   # the failing one's latency was paid
    [ "${lines[-1]}" = 200 ]
    r=$(head -n1 <<<"$output")
    [ "$(jq -r '.model + " " + .provider' <<<"$r")" = "f/three P3" ]
    [ "$(jq -r '.choices[0].message.content' <<<"$r")" = "sim[f/three]: hi" ]
    for m in f/one f/two f/three; do [ "$(sim_count "$m")" = 1 ]; done
    [ "$(sim_charged)" = 0.1 ]
    wait_for 3 generation_ready "$(jq -r .id <<<"$r")"
    [ "$(sim_generation "$(jq -r .id <<<"$r")" | head -n1 | jq -c '.data.provider_responses | map([.provider_name, .status, .latency])')" = '[["P1",503,200],["P2",502,0],["P3",200,0]]' ]
    # "model" first, then "models"; all failing: the last failure is the answer
    run curl -s -w '\n%{http_code}' -d "$(jq -cn '{model: "f/two", models: ["f/two", "f/one"], messages: []}')" \
        "$SIM_URL/v1/chat/completions"
    [ "${lines[-1]}" = 503 ]
    [ "$(sim_count f/two)" = 2 ]
    [ "$(sim_count f/one)" = 2 ]
}

@test "openrouter: X-OpenRouter-Metadata: enabled adds openrouter_metadata (JSON and the final stream chunk)" {
    sim_behave f/one '{"status": 429, "provider": "P1"}'
    sim_behave f/two '{"provider": "P2"}'
    req=$(jq -cn '{models: ["f/one", "f/two"], messages: [{role: "user", content: "hi"}]}')
    run curl -sf -H 'X-OpenRouter-Metadata: enabled' -d "$req" "$SIM_URL/v1/chat/completions"
    m=$(jq -c .openrouter_metadata <<<"$output")
    echo "$m"
    [ "$(jq -r '[.requested, .strategy, .attempt] | map(tostring) | join(" ")' <<<"$m")" = "f/one fallback 2" ]
    [ "$(jq -c '.attempts | map([.model, .provider, .status])' <<<"$m")" = '[["f/one","P1",429],["f/two","P2",200]]' ]
    [ "$(jq -r '.attempts | map(.latency_ms | type) | unique | join(",")' <<<"$m")" = number ]
    [ "$(jq -c '.endpoints.available | map(.selected)' <<<"$m")" = '[false,true]' ]
    run curl -sf -d "$req" "$SIM_URL/v1/chat/completions"
    [ "$(jq -r 'has("openrouter_metadata")' <<<"$output")" = false ]
    sim_sse "$(jq -c '. + {stream: true, stream_options: {include_usage: true}}' <<<"$req")" \
        'X-OpenRouter-Metadata: enabled' >"$RFS_DIR/ev.jsonl"
    [ "$(ev '[.[] | select(.type == "data") | .json | has("openrouter_metadata")] | [first, last] | map(tostring) | join(" ")')" = "false true" ]
    [ "$(ev '[.[] | select(.type == "data")] | last | .json | (.usage != null) and .openrouter_metadata.attempt == 2')" = true ]
}

# --- scenario building blocks and accounting -----------------------------------------

@test "scenarios: fail_pattern once (S01: a 429 with Retry-After, then ok) and repeating" {
    sim_behave sim/a '{"fail_pattern": [429], "retry_after": 2}'
    run post sim/a hi '{}' -D "$RFS_DIR/headers"
    [ "${lines[-1]}" = 429 ]
    grep -qi '^Retry-After: 2' "$RFS_DIR/headers"
    run post sim/a hi '{}' -D "$RFS_DIR/headers"
    [ "${lines[-1]}" = 200 ]
    run ! grep -qi '^Retry-After' "$RFS_DIR/headers"
    sim_behave sim/b '{"fail_pattern": [503, "ok", 500], "fail_pattern_repeat": true}'
    got=""
    for i in 1 2 3 4 5 6; do got="$got $(post sim/b hi | tail -n1)"; done
    [ "$got" = " 503 200 500 503 200 500" ]
    sim_behave sim/c '{"fail_pattern": ["reset_before_headers", 200]}'   # S05: a reset, then ok
    run post sim/c hi
    [ "$status" -ne 0 ]
    run post sim/c hi
    [ "${lines[-1]}" = 200 ]
    run sim_behave sim/d '{"fail_pattern": ["nope"]}'
    assert_failure
}

@test "scenarios: fail_for_ms fails only that long (S15); /control/reset restarts the clock of the script's" {
    _stop_pid "$SIM_PID"
    echo '{"sim/flap": {"status": 503, "fail_for_ms": 800}}' >"$RFS_DIR/script.json"
    sim_start --script "$RFS_DIR/script.json"
    [ "$(post sim/flap hi | tail -n1)" = 503 ]
    sleep 1
    [ "$(post sim/flap hi | tail -n1)" = 200 ]
    sim_reset
    [ "$(post sim/flap hi | tail -n1)" = 503 ]
    sleep 1
    [ "$(post sim/flap hi | tail -n1)" = 200 ]
}

@test "accounting: arrivals_ms (the last 2000, monotonic), in_flight and max_in_flight" {
    t0=$(sim_stats | jq -r '.models | length')
    python3 - "$SIM_PORT" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for i in range(2005):
    c.request("POST", "/v1/chat/completions", body='{"model":"sim/many","messages":[]}')
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
    sim_arrivals sim/many >"$RFS_DIR/arrivals"
    [ "$(wc -l <"$RFS_DIR/arrivals")" = 2000 ]
    sort -n -c "$RFS_DIR/arrivals"
    [ "$(sim_count sim/many)" = 2005 ]
    sim_behave sim/slow '{"latency_ms": 800}'
    pids=()
    for i in 1 2 3; do post sim/slow hi >/dev/null & pids+=($!); done
    wait_for 3 stat_is sim/slow in_flight 3
    [ "$(sim_model_stat sim/slow in_flight)" = 3 ]
    wait "${pids[@]}"
    [ "$(sim_model_stat sim/slow in_flight)" = 0 ]
    [ "$(sim_model_stat sim/slow max_in_flight)" = 3 ]
    first=$(sim_arrivals sim/slow | head -n1)
    last=$(sim_arrivals sim/many | tail -n1)
    [ "$first" -ge "$last" ]
}

@test "echo: echo_auth puts the key into a 401 in each form; echo_auth_ok into a 200's model" {
    key=sk-or-v1-abc_DEF-0123456789
    declare -A want=(
        [raw]=$key
        [json_escaped]='sk\u002dor\u002dv1\u002dabc\u005fDEF\u002d0123456789'
        [percent]='sk%2Dor%2Dv1%2Dabc%5FDEF%2D0123456789'
        [upper]=SK-OR-V1-ABC_DEF-0123456789
        [lower]=sk-or-v1-abc_def-0123456789
        [prefix8]='sk-or-v1-abc_D****'
    )
    for f in raw json_escaped percent upper lower prefix8; do
        sim_behave sim/e "{\"echo_auth\": \"$f\"}"
        run curl -s -w '\n%{http_code}' -H "Authorization: Bearer $key" -d "$(body sim/e hi)" \
            "$SIM_URL/v1/chat/completions"
        echo "$f: $output"
        [ "${lines[-1]}" = 401 ]
        [[ "${lines[0]}" == *"${want[$f]}"* ]]          # as the bytes on the wire
        jq -e . <<<"${lines[0]}" >/dev/null              # and still valid JSON
    done
    [[ "$(jq -r .error.message <<<"${lines[0]}")" != *"$key"* ]]   # prefix8 is not the key
    sim_behave sim/e '{"echo_auth": "all"}'
    run curl -s -H "Authorization: Bearer $key" -d "$(body sim/e hi)" "$SIM_URL/v1/chat/completions"
    for f in raw json_escaped percent upper lower prefix8; do [[ "$output" == *"${want[$f]}"* ]]; done
    [ "$(jq -r .error.message <<<"$output" | grep -o "$key" | wc -l)" = 2 ]   # raw, and json_escaped decoded
    sim_behave sim/ok '{"echo_auth_ok": "json_escaped"}'
    run curl -s -H "Authorization: Bearer $key" -d "$(body sim/ok hi)" "$SIM_URL/v1/chat/completions"
    [[ "$output" == *"\"model\":\"${want[json_escaped]}\""* ]]
    [ "$(jq -r .model <<<"$output")" = "$key" ]
    [ "$(jq -r '.choices[0].message.content' <<<"$output")" = "sim[sim/ok]: hi" ]
    [ "$(jq -r '.provider + " " + (.usage | has("cost") | tostring)' <<<"$output")" = "Sim false" ]
    run sim_behave sim/e '{"echo_auth": "rot13"}'
    assert_failure
}

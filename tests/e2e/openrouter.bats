#!/usr/bin/env bats
# routefs end-to-end: OpenRouter in depth (issue 14) against routefs-sim's OpenRouter
# endpoints — (1) server-side "models" fallback, (2) generation enrichment of NAME.meta,
# (3) the key's own limits, (4) published prices, (5) pass-through options, and (6)
# examples/openrouter.json mounted against the sim.

load helpers

setup() {
    export RFS_OR_KEY=sk-sim-test   # the key the "or" provider sends (the sim's /key needs one)
    rfs_setup
}

teardown() {
    rfs_teardown
}

# --- helpers (this file only) ------------------------------------------------------------

# or_config TIERS [EXTRA] — providers "or" (kind openrouter, the sim's /api/v1, a key) and
# "plain" (OpenAI kind, the sim's /v1); TIERS is the "tiers" object's inside, EXTRA more
# top-level members (JSON starting with ",").  OR_PROVIDER_EXTRA: more fields for "or";
# OR_MORE_PROVIDERS: more providers (JSON starting with ",").
or_config() {
    rfs_config <<JSON
{
  "providers": {
    "or":    {"base_url": "http://127.0.0.1:SIM_PORT/api/v1", "kind": "openrouter",
              "api_key_env": "RFS_OR_KEY"${OR_PROVIDER_EXTRA:-}},
    "plain": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}${OR_MORE_PROVIDERS:-}
  },
  "tiers": { $1 }${2:-}
}
JSON
}

# ask TIER[/TAG] NAME TEXT — write a prompt, then `run read_out` its result.
ask() {
    printf '%s' "$3" >"$MNT/$1/$2"
    run read_out "$MNT/$1/$2.out"
}

# enriched META — the meta has OpenRouter's record merged in.
enriched() { [ "$(jq -r '.enriched // false' "$1")" = true ]; }

# spend_q JQ — query spend.json
spend_q() { jq -r "$1" "$MNT/spend.json"; }

# spend_is JQ VALUE — spend.json's JQ is VALUE (for wait_for: read at each try).
spend_is() { [ "$(spend_q "$1")" = "$2" ]; }

# reserved_over USD — spend.json's reservations in flight exceed USD.
reserved_over() { jq -e --argjson x "$1" '.reserved > $x' "$MNT/spend.json" >/dev/null; }

# key_known_as PROVIDER — spend.json shows PROVIDER's key limits; key_known: of "or".
key_known_as() {
    [ "$(jq -r --arg p "$1" '.openrouter_keys[$p].fetched_ms // 0' "$MNT/spend.json")" != 0 ]
}
key_known() { key_known_as or; }

# endpoint_at_least NAME N — the sim saw at least N requests to OpenRouter endpoint NAME.
endpoint_at_least() { [ "$(sim_endpoint_count "$1")" -ge "$2" ]; }

# --- (1) server-side fallback: "models" -----------------------------------------------------

@test "(1) openrouter_models: consecutive OpenRouter hops go as one request; the meta names what served; another provider is still tried after" {
    or_config '
    "fb": {"route": ["m/a", "m/b", {"provider": "plain", "model": "m/c"}],
           "openrouter_models": true, "retries": 0, "timeout_ms": 5000},
    "nofb": {"route": ["m/a", "m/b"], "retries": 0, "timeout_ms": 5000}'
    rfs_mount
    sim_behave m/a '{"status": 503}'
    sim_behave m/b '{"provider": "Bprov", "cost": 0.001}'
    ask fb p "one trip"
    assert_success
    assert_output "sim[m/b]: one trip"
    body=$(sim_last_body m/a)
    echo "$body"
    [ "$(jq -c .models <<<"$body")" = '["m/a","m/b"]' ]
    [ "$(jq -r .model <<<"$body")" = m/a ]
    # one round trip: the sim tried m/b inside it, routefs sent nothing for m/b itself
    [ "$(sim_total)" = 1 ]
    m="$MNT/fb/p.meta"
    jq -c '{hops, provider, endpoint, model, fallback, cost}' "$m"
    [ "$(meta "$m" '.hops | length')" = 1 ]
    [ "$(meta "$m" .hops[0].status)" = 200 ]
    [ "$(meta "$m" .model)" = m/b ]
    [ "$(meta "$m" .provider)" = Bprov ]
    [ "$(meta "$m" .endpoint)" = or ]
    [ "$(meta "$m" .fallback)" = true ]
    # spent on the model that served
    wait_for 5 spend_is '.by_model["m/b"].requests // 0' 1
    [ "$(spend_q '.by_model["m/a"].requests // 0')" = 0 ]

    # both OpenRouter models fail inside the request: the plain hop is tried after
    sim_behave m/b '{"status": 500}'
    ask fb q "then client-side"
    assert_success
    assert_output "sim[m/c]: then client-side"
    m="$MNT/fb/q.meta"
    jq -c '.hops' "$m"
    [ "$(meta "$m" '[.hops[].provider] | join(",")')" = or,plain ]
    [ "$(meta "$m" .hops[0].status)" = 500 ]
    [ "$(meta "$m" .endpoint)" = plain ]
    [ "$(sim_count m/c)" = 1 ]
    [ "$(jq -c .models <<<"$(sim_last_body m/a)")" = '["m/a","m/b"]' ]
    # the m/b hop was covered by the "models" request: not sent again on its own
    [ "$(sim_count m/b)" = 2 ]

    # without the option each hop is its own request
    sim_behave m/b '{"provider": "Bprov"}'
    ask nofb r "client-side"
    assert_success
    [ "$(jq -r 'has("models")' <<<"$(sim_last_body m/a)")" = false ]
    [ "$(meta "$MNT/nofb/r.meta" '.hops | length')" = 2 ]
}

@test "(1) openrouter_models under a cap: the reservation covers the dearest model named; if that does not fit, the hop's model goes alone" {
    or_config '
    "fb": {"route": ["m/cheap", "m/dear"], "openrouter_models": true, "max_tokens": 1000,
           "retries": 0, "timeout_ms": 5000}' \
        ', "budget": {"daily_usd": 0.05}, "prices": {"m/cheap": {"prompt": 1, "completion": 1}, "m/dear": {"prompt": 100, "completion": 100}}'
    rfs_mount
    # worst cases: m/cheap about $0.001, m/dear about $0.1 (over the $0.05 cap)
    sim_behave m/cheap '{"usage": "tokens"}'
    ask fb p "cheap alone"
    assert_success
    assert_output "sim[m/cheap]: cheap alone"
    body=$(sim_last_body m/cheap)
    echo "$body"
    [ "$(jq -r 'has("models")' <<<"$body")" = false ]
    # when m/cheap fails, m/dear is its own hop, refused by the cap: never sent
    sim_behave m/cheap '{"status": 503}'
    echo "no overshoot" >"$MNT/fb/q"
    run read_out "$MNT/fb/q.out"
    assert_failure
    cat "$MNT/fb/q.err"
    grep -F "daily cap" "$MNT/fb/q.err"
    [ "$(sim_count m/dear)" = 0 ]
    # with room for the dearest, both go in one request, reserved at m/dear's price
    sed -i 's/"daily_usd": 0.05/"daily_usd": 1/' "$MNT/config.json"
    sim_behave m/dear '{"latency_ms": 800, "usage": "tokens"}'
    echo "together" >"$MNT/fb/r"
    wait_for 5 reserved_over 0.05   # m/dear's worst case, while the request is out
    run read_out "$MNT/fb/r.out"
    assert_success
    assert_output "sim[m/dear]: together"
    [ "$(jq -c .models <<<"$(sim_last_body m/cheap)")" = '["m/cheap","m/dear"]' ]
    # billed at the price of the model that served
    m="$MNT/fb/r.meta"
    [ "$(meta "$m" .cost)" = "$(jq -r '(.tokens.prompt + .tokens.completion) * 100 / 1e6' "$m")" ]
}

# --- (2) per-hop truth: GET /api/v1/generation into NAME.meta ------------------------------

@test "(2) enrichment: .out readable at once, OpenRouter's record merged later (after retries) with its provider hops" {
    or_config '
    "fb": {"route": ["m/a", "m/b"], "openrouter_models": true, "retries": 0,
           "timeout_ms": 5000}'
    rfs_mount
    # m/a fails inside OpenRouter after 200 ms; m/b serves; the record exists 2.5 s later
    sim_behave m/a '{"status": 503, "latency_ms": 200, "provider": "Aprov"}'
    sim_behave m/b '{"provider": "Bprov", "cost": 0.0042, "generation_delay_ms": 2500}'
    t0=$(now_ms)
    ask fb p "enrich me"
    t1=$(now_ms)
    assert_success
    assert_output "sim[m/b]: enrich me"
    m="$MNT/fb/p.meta"
    # the job did not wait for OpenRouter's record
    echo "read in $((t1 - t0)) ms"
    [ $((t1 - t0)) -lt 2000 ]
    [ "$(meta "$m" .state)" = done ]
    [ "$(meta "$m" '.enriched // false')" = false ]
    [ "$(meta "$m" '.openrouter // null')" = null ]
    # the first lookups find nothing (404): the record appears later, after retries
    wait_for 15 enriched "$m"
    t2=$(now_ms)
    echo "enriched after $((t2 - t1)) ms; $(sim_endpoint_count /api/v1/generation) lookups"
    [ "$(sim_endpoint_count /api/v1/generation)" -ge 2 ]
    [ $((t2 - t0)) -ge 2500 ]
    jq .openrouter "$m"
    run jq -r '.openrouter | [.provider_responses[] | "\(.provider_name) \(.model_permaslug) \(.status)"] | join(",")' "$m"
    assert_output "Aprov m/a 503,Bprov m/b 200"
    [ "$(jq -r '.openrouter.provider_responses[0].latency' "$m")" -ge 200 ]
    [ "$(jq -r '.openrouter.provider_responses | all(.latency | type == "number")' "$m")" = true ]
    [ "$(meta "$m" .openrouter.provider_name)" = Bprov ]
    # the record is the sim's own for the answer's id
    id=$(meta "$m" .openrouter.id)
    run sim_generation "$id"
    [ "$(tail -n 1 <<<"$output")" = 200 ]
    [ "$(head -n 1 <<<"$output" | jq -r .data.provider_name)" = Bprov ]
    [ "$(meta "$m" .openrouter.total_cost)" = 0.0042 ]
    [ "$(meta "$m" .openrouter.total_cost)" = "$(sim_charged m/b)" ]
    [ "$(meta "$m" .openrouter.native_tokens_prompt)" = "$(meta "$m" .tokens.prompt)" ]
    [ "$(meta "$m" .openrouter.native_tokens_completion)" = "$(meta "$m" .tokens.completion)" ]
    [ "$(meta "$m" .openrouter.finish_reason)" = stop ]
    [ "$(meta "$m" .openrouter.native_finish_reason)" = stop ]
    [ "$(meta "$m" '.openrouter.latency | type')" = number ]
    [ "$(meta "$m" '.openrouter.generation_time | type')" = number ]
    [ "$(meta "$m" '.openrouter | has("cache_discount")')" = true ]
    # the enrichment keeps what routefs recorded
    [ "$(meta "$m" .model)" = m/b ]
    [ "$(meta "$m" .cost)" = 0.0042 ]
    # activity.jsonl and spend.json: the upstream provider inside OpenRouter
    line=$(tail -n 1 "$MNT/activity.jsonl")
    echo "$line"
    [ "$(jq -r .provider <<<"$line")" = Bprov ]
    [ "$(jq -r .endpoint <<<"$line")" = or ]
    [ "$(jq -r .model <<<"$line")" = m/b ]
    [ "$(spend_q '.by_upstream.Bprov.requests')" = 1 ]
    [ "$(spend_q '.by_upstream.Bprov.total')" = 0.0042 ]
    [ "$(spend_q '.by_provider.or.requests')" = 1 ]
    [ "$(spend_q '.by_upstream | has("Aprov")')" = false ]
}

@test "(2) enrichment: a plain OpenAI-kind provider is never looked up" {
    or_config '"direct": {"route": [{"provider": "plain", "model": "m/p"}], "retries": 0, "timeout_ms": 5000}'
    rfs_mount
    sim_behave m/p '{"generation_delay_ms": 0}'
    ask direct p "no lookups"
    assert_success
    sleep 1.5
    [ "$(sim_endpoint_count /api/v1/generation)" = 0 ]
    [ "$(meta "$MNT/direct/p.meta" '.enriched // false')" = false ]
}

# --- (3) the key's real limits: GET /api/v1/key ----------------------------------------------

@test "(3) key limits: spend.json openrouter_keys and status show the key beside routefs's caps" {
    sim_key_set '{"limit": 5, "limit_reset": "daily", "label": "sk-or-v1-abc...xyz"}'
    or_config '"t": {"route": ["m/a"], "retries": 0, "timeout_ms": 5000}' \
        ', "budget": {"daily_usd": 2, "monthly_usd": 40}, "prices": {"m/a": {"prompt": 300, "completion": 300}}'
    rfs_mount
    wait_for 10 key_known
    jq .openrouter_keys "$MNT/spend.json"
    [ "$(spend_q .openrouter_keys.or.limit)" = 5 ]
    [ "$(spend_q .openrouter_keys.or.limit_remaining)" = 5 ]
    [ "$(spend_q .openrouter_keys.or.limit_reset)" = daily ]
    [ "$(spend_q .openrouter_keys.or.usage_daily)" = 0 ]
    [ "$(spend_q .openrouter_keys.or.usage_monthly)" = 0 ]
    [ "$(spend_q '.openrouter_keys.or.age_ms | type')" = number ]
    [ "$(spend_q .caps.daily.cap)" = 2 ]
    [ "$(spend_q .caps.monthly.cap)" = 40 ]
    # the key's label (a shortened copy of the key) is never shown
    run grep -c "abc...xyz" "$MNT/spend.json"
    [ "$output" = 0 ]
    run grep "^openrouter key or:" "$MNT/status"
    assert_success
    assert_output --regexp '^openrouter key or: limit \$5\.00 daily, \$5\.00 remaining, used \$0\.00 today \(as of .*Z\)$'
    # spend through the key shows at the next fetch (a 402 asks for one)
    sim_behave m/a '{"cost": 0.25}'
    ask t p "spend"
    assert_success
    sim_behave m/a '{"status": 402}'
    echo x >"$MNT/t/q"
    run read_out "$MNT/t/q.out"
    assert_failure
    wait_for 15 spend_is .openrouter_keys.or.usage_daily 0.25
    [ "$(spend_q .openrouter_keys.or.limit_remaining)" = 4.75 ]
    grep "^openrouter key or:" "$MNT/status" | grep -F '$4.75 remaining, used $0.25 today'
}

@test "(3) key limits: a hop whose worst case does not fit the key's remaining limit is not sent" {
    sim_key_set '{"limit": 0.01}'
    or_config '
    "t":    {"route": ["m/dear", {"provider": "plain", "model": "m/local"}], "max_tokens": 1000,
             "retries": 0, "timeout_ms": 5000},
    "only": {"route": ["m/dear"], "max_tokens": 1000, "retries": 0, "timeout_ms": 5000},
    "small": {"route": ["m/dear"], "max_tokens": 10, "retries": 0, "timeout_ms": 5000}' \
        ', "prices": {"m/dear": {"prompt": 100, "completion": 100}, "m/local": {"prompt": 0, "completion": 0}}'
    rfs_mount
    wait_for 10 key_known
    [ "$(spend_q .openrouter_keys.or.limit_remaining)" = 0.01 ]
    # worst case: (prompt_bytes/3 + 16 + 1000 tokens) x $100/M > $0.10 > $0.01 left
    ask t p "too dear for the key"
    assert_success
    assert_output "sim[m/local]: too dear for the key"
    m="$MNT/t/p.meta"
    jq -c .hops "$m"
    [ "$(meta "$m" .hops[0].provider)" = or ]
    [[ "$(meta "$m" .hops[0].error)" == *"OpenRouter key limit"* ]]
    [ "$(meta "$m" .endpoint)" = plain ]
    [ "$(sim_count m/dear)" = 0 ]
    # no other hop: the job fails with the reason
    echo "still too dear" >"$MNT/only/q"
    run read_out "$MNT/only/q.out"
    assert_failure
    cat "$MNT/only/q.err"
    grep -F "OpenRouter key limit of or" "$MNT/only/q.err"
    [ "$(sim_count m/dear)" = 0 ]
    # a hop whose worst case fits is sent: (about 22 + 10 tokens) x $100/M = $0.0032
    ask small r "fits"
    assert_success
    assert_output "sim[m/dear]: fits"
    [ "$(sim_count m/dear)" = 1 ]
}

@test "(3) key limits: a 402 and a 403 from OpenRouter make routefs read /api/v1/key again" {
    OR_PROVIDER_EXTRA=', "cooldown_ms": 100'
    or_config '
    "t": {"route": ["m/a", {"provider": "plain", "model": "m/b"}], "retries": 0,
          "timeout_ms": 5000}'
    rfs_mount
    wait_for 10 key_known
    [ "$(sim_endpoint_count /api/v1/key)" = 1 ]
    sim_behave m/a '{"status": 402}'
    ask t p "out of credit"
    assert_success
    [ "$(meta "$MNT/t/p.meta" .hops[0].status)" = 402 ]
    # at most one fetch every 5 s: the one at mount, then this one
    wait_for 15 endpoint_at_least /api/v1/key 2
    [ "$(sim_endpoint_count /api/v1/key)" = 2 ]
    # the key gets a limit routefs does not know of yet; m/a spends past it
    sim_key_set '{"limit": 0.5}'
    sim_behave m/a '{"charge_usd": 0.6}'
    sleep 0.3   # the 402's breaker cooldown (100 ms)
    ask t q "spend past the limit"
    assert_success
    assert_output "sim[m/a]: spend past the limit"
    # now OpenRouter answers 403 "Key limit exceeded": the key is read again
    ask t r "over the limit"
    assert_success
    assert_output "sim[m/b]: over the limit"
    jq -c .hops "$MNT/t/r.meta"
    [ "$(meta "$MNT/t/r.meta" .hops[0].status)" = 403 ]
    [[ "$(meta "$MNT/t/r.meta" .hops[0].error)" == *"Key limit exceeded"* ]]
    wait_for 15 endpoint_at_least /api/v1/key 3
    wait_for 5 spend_is .openrouter_keys.or.limit 0.5
    [ "$(spend_q .openrouter_keys.or.limit_remaining)" = 0 ]
    [ "$(spend_q .openrouter_keys.or.usage)" = 0.6 ]
    grep -F 'openrouter key or: limit $0.50, $0.00 remaining' "$MNT/status"
}

# --- (4) published prices: GET /api/v1/models ------------------------------------------------

# published_list — the sim's /api/v1/models: m/pub at $2 / $4 per M tokens, m/other at $1 / $1
published_list() {
    sim_models_set '{"data": [
      {"id": "m/pub", "name": "Published", "context_length": 8192,
       "pricing": {"prompt": "0.000002", "completion": "0.000004", "request": "0"}},
      {"id": "m/other", "pricing": {"prompt": "0.000001", "completion": "0.000001"}}]}'
}

# price_of TIER NAME — cost expected at $2 / $4 per M for the job's reported tokens
price_of() {
    jq -r '(.tokens.prompt * 2 + .tokens.completion * 4) / 1e6' "$MNT/$1/$2.meta"
}

@test "(4) published prices: an unpriced OpenRouter model is priced from /api/v1/models, kept for offline mounts, shown by routefs prices" {
    published_list
    OR_MORE_PROVIDERS=', "local": {"base_url": "http://127.0.0.1:SIM_PORT/v1", "free": true}'
    sim_behave m/pub '{"usage": "tokens", "prompt_tokens": 1000, "completion_tokens": 500}'
    sim_behave 'm/pub:nitro' '{"usage": "tokens", "prompt_tokens": 2000, "completion_tokens": 100}'
    or_config '
    "t":     {"route": ["m/pub"], "max_tokens": 500, "retries": 0, "timeout_ms": 5000},
    "nitro": {"route": ["m/pub:nitro"], "max_tokens": 500, "retries": 0, "timeout_ms": 5000},
    "unk":   {"route": ["m/unlisted"], "retries": 0, "timeout_ms": 5000},
    "conf":  {"route": ["m/conf"], "retries": 0, "timeout_ms": 5000}' \
        ', "budget": {"daily_usd": 1}, "prices": {"m/conf": {"prompt": 7, "completion": 9}}'
    rfs_mount
    wait_for 10 endpoint_at_least /api/v1/models 1
    run rfs_cli prices --state "$STATE" --config "$RFS_DIR/config.json"
    echo "$output"
    assert_success
    wait_for 10 bash -c "'$ROUTEFS_BIN' prices --state '$STATE' --config '$RFS_DIR/config.json' m/pub 3>&- | grep -q openrouter"
    run rfs_cli prices --state "$STATE" --config "$RFS_DIR/config.json"
    echo "$output"
    assert_success
    assert_line --regexp '^m/pub +\* +openrouter +2(\.0+)? +4(\.0+)? '
    assert_line --regexp '^m/other +\* +openrouter +1(\.0+)? +1(\.0+)? '
    assert_line --regexp '^m/conf +\* +config +7(\.0+)? +9(\.0+)? '
    assert_line --regexp '^\* +local +free +0 +0 '
    # a cap applies: the published price is what lets m/pub be sent at all
    ask t p "published"
    assert_success
    m="$MNT/t/p.meta"
    jq -c '{tokens, cost, cost_estimated}' "$m"
    [ "$(meta "$m" .tokens.prompt)" = 1000 ]
    # usage.cost absent: tokens x the published price
    [ "$(meta "$m" .cost)" = "$(price_of t p)" ]
    [ "$(meta "$m" .cost)" = 0.004 ]
    echo x >"$MNT/unk/q"
    run read_out "$MNT/unk/q.out"
    assert_failure
    grep -F "no price known for m/unlisted" "$MNT/unk/q.err"
    [ "$(sim_count m/unlisted)" = 0 ]
    # a variant is priced from its base model
    ask nitro n "variant"
    assert_success
    [ "$(sim_last_body m/pub:nitro | jq -r .model)" = m/pub:nitro ]
    [ "$(meta "$MNT/nitro/n.meta" .cost)" = "$(price_of nitro n)" ]
    [ "$(meta "$MNT/nitro/n.meta" .cost)" = 0.0044 ]
    run rfs_cli prices --state "$STATE" --config "$RFS_DIR/config.json" m/pub:nitro
    echo "$output"
    assert_success
    assert_line --regexp '^m/pub:nitro +\* +openrouter +2(\.0+)? +4(\.0+)? '

    # a provider charging more than its configured price: an observed row
    sim_behave m/conf '{"cost": 0.5}'
    ask conf c "dearer than configured"
    assert_success
    run rfs_cli prices --state "$STATE" --config "$RFS_DIR/config.json" m/conf
    echo "$output"
    assert_success
    assert_line --index 2 --regexp '^m/conf +\* +config +7 +9 '
    assert_line --index 3 --regexp '^m/conf +or +observed '

    # remount with the sim's list gone bad: the prices kept in the state still apply
    rfs_unmount
    sim_models_set '{"data": []}'
    n0=$(sim_endpoint_count /api/v1/models)
    rfs_mount
    wait_for 10 endpoint_at_least /api/v1/models $((n0 + 1))
    grep -F "published prices were not updated" "$RFS_LOG"
    ask t p2 "offline prices"
    assert_success
    [ "$(meta "$MNT/t/p2.meta" .cost)" = 0.004 ]
    run rfs_cli prices --state "$STATE" --config "$RFS_DIR/config.json" m/pub
    assert_success
    assert_line --regexp '^m/pub +\* +openrouter +2(\.0+)? +4(\.0+)? '
}

# --- (5) pass-through: variants, presets, service_tier, session_id, metadata, errors --------

@test "(5) pass-through: variants and presets sent as written; service_tier sent and recorded" {
    or_config '
    "v": {"route": ["m/x:nitro", "m/x:floor", "@preset/my-preset"], "retries": 0,
          "timeout_ms": 5000, "service_tier": "flex"}'
    rfs_mount
    sim_behave 'm/x:nitro' '{"status": 503}'
    sim_behave 'm/x:floor' '{"status": 503}'
    sim_behave '@preset/my-preset' '{"provider": "Preset", "generation_delay_ms": 0}'
    ask v p "variants"
    assert_success
    assert_output "sim[@preset/my-preset]: variants"
    for model in m/x:nitro m/x:floor @preset/my-preset; do
        body=$(sim_last_body "$model")
        echo "$body"
        [ "$(jq -r .model <<<"$body")" = "$model" ]
        [ "$(jq -r .service_tier <<<"$body")" = flex ]
    done
    m="$MNT/v/p.meta"
    jq -c '{hops: [.hops[] | .model], model, service_tier}' "$m"
    [ "$(meta "$m" '[.hops[].model] | join(",")')" = "m/x:nitro,m/x:floor,@preset/my-preset" ]
    [ "$(meta "$m" .model)" = @preset/my-preset ]
    # the answer's service_tier, and OpenRouter's record of it
    [ "$(meta "$m" .service_tier)" = flex ]
    wait_for 10 enriched "$m"
    [ "$(meta "$m" .openrouter.service_tier)" = flex ]
}

@test "(5) pass-through: session_id per tier with {tag}; X-OpenRouter-Metadata and its attempts kept in the meta" {
    or_config '
    "s":    {"route": ["m/a", "m/b"], "openrouter_models": true, "session_id": "batch-{tag}",
             "openrouter_metadata": true, "retries": 0, "timeout_ms": 5000},
    "none": {"route": ["m/b"], "retries": 0, "timeout_ms": 5000},
    "mixed": {"route": [{"provider": "plain", "model": "m/p"}], "session_id": "x",
              "openrouter_metadata": true, "retries": 0, "timeout_ms": 5000}'
    rfs_mount
    mkdir "$MNT/s/nightly"
    sim_behave m/a '{"status": 502, "provider": "Aprov", "latency_ms": 50}'
    sim_behave m/b '{"provider": "Bprov"}'
    ask s/nightly p "sticky"
    assert_success
    body=$(sim_last_body m/a)
    echo "$body"
    [ "$(jq -r .session_id <<<"$body")" = batch-nightly ]
    [ "$(jq -r .user <<<"$body")" = pipeline:nightly ]
    m="$MNT/s/nightly/p.meta"
    jq -c .openrouter_metadata "$m"
    # the sim adds openrouter_metadata only when the request had the header
    [ "$(meta "$m" '.openrouter_metadata.attempts | length')" = 2 ]
    run meta "$m" '[.openrouter_metadata.attempts[] | "\(.model) \(.provider) \(.status)"] | join(",")'
    assert_output "m/a Aprov 502,m/b Bprov 200"
    [ "$(meta "$m" '.openrouter_metadata.attempts[0].latency_ms')" -ge 50 ]
    [ "$(meta "$m" .openrouter_metadata.strategy)" = fallback ]
    [ "$(meta "$m" .tag)" = nightly ]
    # without a tag {tag} is empty; without the option no metadata
    ask s q "untagged"
    assert_success
    [ "$(sim_last_body m/a | jq -r .session_id)" = batch- ]
    ask none r "plain"
    assert_success
    [ "$(sim_last_body m/b | jq -r 'has("session_id")')" = false ]
    [ "$(meta "$MNT/none/r.meta" 'has("openrouter_metadata")')" = false ]
    # an OpenAI-kind provider gets neither
    ask mixed x "direct"
    assert_success
    [ "$(sim_last_body m/p | jq -r 'has("session_id")')" = false ]
    [ "$(meta "$MNT/mixed/x.meta" 'has("openrouter_metadata")')" = false ]
}

@test "(5) errors: error.metadata.previous_errors and error.availability are recorded in the hop" {
    or_config '
    "e": {"route": ["m/down", {"provider": "plain", "model": "m/ok"}], "retries": 0,
          "timeout_ms": 5000}'
    rfs_mount
    sim_behave m/down '{"status": 503, "error_message": "No endpoints available",
        "error_metadata": {"provider_name": "Upstream", "availability": {"available": 0, "total": 3},
                           "previous_errors": [{"provider": "P1", "status": 429, "message": "rate limited"},
                                               {"provider": "P2", "status": 500, "message": "boom"}]}}'
    ask e p "errors"
    assert_success
    assert_output "sim[m/ok]: errors"
    m="$MNT/e/p.meta"
    jq -c .hops "$m"
    [ "$(meta "$m" .hops[0].status)" = 503 ]
    [[ "$(meta "$m" .hops[0].error)" == *"No endpoints available"* ]]
    [ "$(meta "$m" .hops[0].openrouter.provider_name)" = Upstream ]
    [ "$(jq -c .hops[0].openrouter.availability "$m")" = '{"available":0,"total":3}' ]
    run jq -r '[.hops[0].openrouter.previous_errors[] | "\(.provider) \(.status)"] | join(",")' "$m"
    assert_output "P1 429,P2 500"
    # the serving hop has none
    [ "$(jq -r '.hops[1] | has("openrouter")' "$m")" = false ]
    # kept when the result is read back after a remount
    rfs_unmount
    rfs_mount
    [ "$(jq -c .hops[0].openrouter.availability "$m")" = '{"available":0,"total":3}' ]
}

# --- (6) examples/openrouter.json ----------------------------------------------------------

@test "(6) examples/openrouter.json: checks, mounts against the sim, one prompt through each tier; tier 1 parks" {
    export OPENROUTER_API_KEY=sk-sim-test
    jq --arg u "$SIM_URL/api/v1" '.providers.openrouter.base_url = $u' \
        "$RFS_REPO/examples/openrouter.json" >"$RFS_DIR/config.json"
    run rfs_cli check "$RFS_REPO/examples/openrouter.json"
    assert_success
    run rfs_cli check "$RFS_DIR/config.json"
    assert_success
    assert_output --partial "ok (3 tiers, 1 provider)"
    rfs_mount
    [ "$(spend_q .caps.daily.cap)" = 5.61 ]
    [ "$(spend_q .caps.monthly.cap)" = 150 ]
    wait_for 10 key_known_as openrouter

    # high-stakes: its first model serves
    printf 'review this' >"$MNT/high-stakes/a"
    run read_out "$MNT/high-stakes/a.out"
    assert_success
    assert_output "sim[anthropic/claude-3.5-sonnet]: review this"
    body=$(sim_last_body anthropic/claude-3.5-sonnet)
    [ "$(jq -r .max_tokens <<<"$body")" = 1200 ]
    [ "$(jq -c .provider.order <<<"$body")" = '["Anthropic","OpenAI"]' ]

    # high-volume, from a pipeline tag: the first model fails inside OpenRouter, the next
    # serves in the same round trip, sticky per tag
    sim_behave google/gemini-flash-1.5 '{"status": 503}'
    sim_behave meta-llama/llama-3-70b-instruct '{"provider": "Together"}'
    mkdir "$MNT/high-volume/nightly"
    printf 'summarise' >"$MNT/high-volume/nightly/b"
    run read_out "$MNT/high-volume/nightly/b.out"
    assert_success
    assert_output "sim[meta-llama/llama-3-70b-instruct]: summarise"
    body=$(sim_last_body google/gemini-flash-1.5)
    echo "$body"
    [ "$(jq -r .max_tokens <<<"$body")" = 800 ]
    [ "$(jq -c .models <<<"$body")" = '["google/gemini-flash-1.5","meta-llama/llama-3-70b-instruct","mistralai/mixtral-8x7b-instruct"]' ]
    [ "$(jq -r .session_id <<<"$body")" = high-volume-nightly ]
    [ "$(jq -r .user <<<"$body")" = pipeline:nightly ]
    m="$MNT/high-volume/nightly/b.meta"
    [ "$(meta "$m" .model)" = meta-llama/llama-3-70b-instruct ]
    [ "$(meta "$m" .provider)" = Together ]
    [ "$(meta "$m" .fallback)" = true ]
    [ "$(sim_count meta-llama/llama-3-70b-instruct)" = 1 ]

    # lightweight: the fastest provider, a short timeout; a slow first model is left at 2 s
    sim_behave meta-llama/llama-3-8b-instruct '{"first_token_ms": 4000}'
    t0=$(now_ms)
    printf 'classify' >"$MNT/lightweight/c"
    run read_out "$MNT/lightweight/c.out"
    t1=$(now_ms)
    assert_success
    assert_output "sim[mistralai/mistral-7b-instruct]: classify"
    echo "lightweight took $((t1 - t0)) ms"
    [ $((t1 - t0)) -lt 3900 ]
    body=$(sim_last_body mistralai/mistral-7b-instruct)
    [ "$(jq -r .max_tokens <<<"$body")" = 400 ]
    [ "$(jq -r .provider.sort <<<"$body")" = latency ]
    [ "$(meta "$MNT/lightweight/c.meta" .hops[0].model)" = meta-llama/llama-3-8b-instruct ]

    # high-stakes when both its models fail: parked, nothing sent anywhere else
    sim_behave anthropic/claude-3.5-sonnet '{"status": 500}'
    sim_behave openai/gpt-4o '{"status": 500}'
    total0=$(sim_total)
    printf 'must not leave the route' >"$MNT/high-stakes/d"
    wait_state "$MNT/high-stakes/d" parked 20
    m="$MNT/high-stakes/d.meta"
    jq -c '{state, park_count, next_attempt_at, hops: [.hops[] | .model]}' "$m"
    [ "$(meta "$m" '[.hops[].model] | unique | join(",")')" = "anthropic/claude-3.5-sonnet,openai/gpt-4o" ]
    [ "$(meta "$m" .park_count)" = 1 ]
    [ ! -e "$MNT/high-stakes/d.err" ]
    # 4 attempts on each of the two models (retries 3), nothing else
    [ $(( $(sim_total) - total0 )) = 8 ]
    run timeout 1 cat "$MNT/high-stakes/d.out"
    [ "$status" = 124 ]   # readers keep waiting
}

#!/usr/bin/env bats
# The 16 scenarios of the failoverbench catalogue (failoverbench/failoverbench,
# scenarios/catalogue.yaml), each against routefs-sim with the catalogue's criteria.
#
# Timings are the catalogue's at a uniform scale of 1/10 (a 30 s timeout is 3 s here),
# except Retry-After (whole seconds, kept: S01) and S15's sequence, whose own "fast"
# variant is scaled the same way.  Every route is the scenario's primary model, then the
# healthy fallback "fb-ok" on the same OpenAI-compatible provider, streaming upstream
# (the catalogue's `stream: true`).  A scenario passes when the job ends with the
# catalogue's ideal outcome (the complete answer, or for S13 a clean error) and every check
# holds; advisory checks are asserted too, so a "partial" fails here.

load helpers

PRIMARY_TIMEOUT_MS=3000     # the catalogue's 30 s

setup() {
    rfs_setup
    rfs_config <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1", "failure_threshold": 5,
                        "cooldown_ms": 3000}},
  "tiers": {
    "t": {"route": ["primary", "fb-ok"], "retries": 2, "retry_base_ms": 100,
          "retry_cap_ms": 1000, "retry_after_max_ms": 5000,
          "timeout_ms": $PRIMARY_TIMEOUT_MS, "first_token_timeout_ms": 1000,
          "stall_timeout_ms": 1000, "concurrency": 4}
  }
}
JSON
    rfs_mount
    CANON="sim[fb-ok]: Explain in exactly sixty words why a gateway earns trust only when the provider behind it misbehaves."
}

teardown() {
    rfs_teardown
}

# scenario JSON — the primary model's behaviour.
scenario() { sim_behave primary "$1"; }

# run_prompt NAME — write the catalogue's prompt, read the result (bounded): sets
# WALL_MS, OUT, OUT_STATUS.
run_prompt() {
    local t0
    t0=$(now_ms)
    printf '%s' "Explain in exactly sixty words why a gateway earns trust only when the provider behind it misbehaves." >"$MNT/t/$1"
    if OUT="$(timeout 30 cat "$MNT/t/$1.out" 2>&1)"; then OUT_STATUS=0; else OUT_STATUS=$?; fi
    WALL_MS=$(( $(now_ms) - t0 ))
    echo "wall ${WALL_MS} ms, status $OUT_STATUS, primary attempts $(sim_count primary)," \
         "fallback $(sim_count fb-ok)"
    echo "out: ${OUT:0:200}"
}

# The fallback's complete, canonical answer (what the catalogue calls `complete`).
assert_complete_from_fallback() {
    [ "$OUT_STATUS" -eq 0 ] || { echo "no answer"; return 1; }
    [ "$OUT" = "$CANON" ] || { echo "not the canonical answer"; return 1; }
    [ "$(jq -r .model "$MNT/t/$1.meta")" = fb-ok ]
}

primary_arrivals() { sim_stats | jq -c '.models.primary.arrivals_ms // []'; }

# attempts_within WINDOW_MS — primary attempts inside the first WINDOW_MS.
attempts_within() {
    primary_arrivals | jq --argjson w "$1" 'if length == 0 then 0 else (.[0] + $w) as $lim | map(select(. <= $lim)) | length end'
}

@test "S01 429 with Retry-After 2: retried after ~2 s, no hammering, answered" {
    scenario '{"fail_pattern": [429], "retry_after": "2"}'
    run_prompt s01
    [ "$OUT_STATUS" -eq 0 ]
    [ "$(sim_count primary)" -ge 2 ]                       # retried
    gap=$(primary_arrivals | jq '.[1] - .[0]')
    echo "first gap ${gap} ms"
    [ "$gap" -ge 1800 ]                                    # Retry-After honoured
    [ "$(attempts_within 1500)" -le 2 ]                    # no hammer
}

@test "S02 429 persistent, no Retry-After: backs off with jitter, bounded, then fails over" {
    scenario '{"status": 429}'
    run_prompt s02
    [ "$(attempts_within 300)" -le 4 ]                     # 3 s scaled
    [ "$(sim_count primary)" -le 6 ]
    assert_complete_from_fallback s02
}

@test "S03 500 once, then healthy: retried once on the same provider, answered" {
    scenario '{"fail_pattern": [500]}'
    run_prompt s03
    [ "$OUT_STATUS" -eq 0 ]
    [ "$(sim_count primary)" -ge 2 ]
    [ "$(sim_count fb-ok)" -eq 0 ]
}

@test "S04 503 persistent: fails over within the retry budget" {
    scenario '{"status": 503}'
    run_prompt s04
    [ "$(sim_count primary)" -le 6 ]
    assert_complete_from_fallback s04
    [ "$WALL_MS" -lt 4000 ]                                # no hang (40 s scaled)
}

@test "S05 TCP reset before headers once: retried or failed over, answered" {
    scenario '{"fail_pattern": ["reset_before_headers"]}'
    run_prompt s05
    [ "$OUT_STATUS" -eq 0 ]
    [ "$WALL_MS" -lt 2000 ]
}

@test "S06 no response at all: fails over after the first timeout, inside the budget" {
    scenario '{"mode": "hang"}'
    run_prompt s06
    assert_complete_from_fallback s06
    [ "$WALL_MS" -le 10000 ]                               # within_budget: 100 s scaled
    [ "$(sim_count primary)" -eq 1 ]                       # the silent route is not retried
}

@test "S07 slow first token (20 s scaled to 2 s): the first-token limit fails over fast" {
    scenario '{"first_token_ms": 2000}'
    run_prompt s07
    assert_complete_from_fallback s07
    [ "$WALL_MS" -le 1500 ]                                # ttft_limit: 15 s scaled
}

@test "S08 stream cut after 40 of 60 tokens: never a truncated success" {
    scenario '{"tokens": 60, "cut_after": 40}'
    run_prompt s08
    assert_complete_from_fallback s08                      # the whole answer, from the fallback
    [ "$(sim_count primary)" -eq 1 ]
    [ "$WALL_MS" -lt 4000 ]
}

@test "S09 stream stalls after 20 tokens: detected in a bounded window, healthy after" {
    scenario '{"tokens": 60, "stall_after": 20, "stall_ms": 3000}'
    run_prompt s09
    assert_complete_from_fallback s09
    [ "$WALL_MS" -le 4500 ]                                # bounded: 45 s scaled
    scenario '{}'                                          # alive_after: a healthy call works
    run_prompt s09-after
    [ "$OUT_STATUS" -eq 0 ]
}

@test "S10 malformed tenth SSE event: nothing partial leaks, a complete answer, alive after" {
    scenario '{"malformed_at": 10}'
    run_prompt s10
    [ "$OUT_STATUS" -eq 0 ]
    [ "$OUT" = "$CANON" ] || [ "$OUT" = "sim[primary]: Explain in exactly sixty words why a gateway earns trust only when the provider behind it misbehaves." ]
    scenario '{}'
    run_prompt s10-after
    [ "$OUT_STATUS" -eq 0 ]
}

@test "S11 stream ends without [DONE]: finalised promptly with usage" {
    scenario '{"no_done": true}'
    run_prompt s11
    [ "$OUT_STATUS" -eq 0 ]
    [ "$(jq -r .model "$MNT/t/s11.meta")" = primary ]
    [ "$WALL_MS" -le 800 ]                                 # prompt_finalise: 8 s scaled
    [ "$(jq -r '.tokens.completion' "$MNT/t/s11.meta")" != null ]   # usage reported
}

@test "S12 context length exceeded: the same model is not retried, the fallback answers" {
    scenario '{"status": 400, "error_message": "This model'"'"'s maximum context length is 8192 tokens", "error_metadata": {"code": "context_length_exceeded"}}'
    run_prompt s12
    [ "$(sim_count primary)" -eq 1 ]
    assert_complete_from_fallback s12
}

@test "S13 content-filter rejection: not retried, the provider's reason surfaces, a clean error" {
    scenario '{"status": 400, "error_message": "content_policy_violation: the request was rejected by the safety system"}'
    run_prompt s13
    [ "$OUT_STATUS" -ne 0 ]                                # the ideal is an error
    [ "$(sim_count primary)" -eq 1 ]
    grep -q "content_policy_violation" "$MNT/t/s13.err"    # the reason, propagated
    [ "$WALL_MS" -lt 2000 ]
}

@test "S14 primary stream cut, fallback rejects prefill: restarted cleanly, no prefill error" {
    scenario '{"tokens": 60, "cut_after": 40}'
    # the fallback refuses any request whose last message is an assistant prefill
    run_prompt s14
    assert_complete_from_fallback s14
    body=$(sim_last_body fb-ok)
    [ "$(jq -r '.messages[-1].role' <<<"$body")" = user ]  # never a prefill continuation
}

@test "S15 primary flaps (503 for 6 s, then healthy): fallback during, primary back within 3 s" {
    scenario '{"status": 503, "fail_for_ms": 6000}'
    t0=$(now_ms)
    served=()
    for i in $(seq 1 20); do
        printf 'flap %d' "$i" >"$MNT/t/f$i"
        timeout 10 cat "$MNT/t/f$i.out" >/dev/null || { echo "request $i: no answer"; false; }
        served+=("$(( $(now_ms) - t0 )):$(jq -r .model "$MNT/t/f$i.meta")")
        sleep 0.4
    done
    printf '%s\n' "${served[@]}"
    # served during the outage (by the fallback), and back on the primary within 3 s of
    # its recovery at 6 s
    printf '%s\n' "${served[@]}" | awk -F: '$1 < 6000 && $2 == "fb-ok" { n++ } END { exit !(n > 0) }'
    first_back=$(printf '%s\n' "${served[@]}" | awk -F: '$1 >= 6000 && $2 == "primary" { print $1; exit }')
    echo "first served by the primary after recovery at ${first_back} ms"
    [ -n "$first_back" ]
    [ "$first_back" -le 9000 ]
    [ "$(printf '%s\n' "${served[@]}" | tail -n1 | cut -d: -f2)" = primary ]
}

@test "S16 fail-over accounting: the fallback's model and usage, failed attempts not billed" {
    sim_behave primary '{"status": 503, "cost": 0.5}'
    sim_behave fb-ok '{"cost": 0.01}'
    run_prompt s16
    assert_complete_from_fallback s16
    [ "$(sim_count primary)" -le 6 ]
    [ "$(jq -r '.tokens.completion' "$MNT/t/s16.meta")" != null ]   # usage present
    # one ledger row, the fallback's, at its cost
    [ "$(wc -l <"$(ledger_file)")" -eq 1 ]
    [ "$(jq -r .model "$(ledger_file)")" = fb-ok ]
    [ "$(jq -r .cost "$MNT/t/s16.meta")" = 0.01 ]
}

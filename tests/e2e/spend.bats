#!/usr/bin/env bats
# routefs end-to-end: spend and budgets — cost of a request, spend.json and its
# breakdowns, caps under concurrency, EDQUOT, tags, the ledger across a remount, unknown
# prices.  Every test mounts a real routefs against routefs-sim, and ends by checking
# that spend.json and the state store's ledger agree.  The money rules of issue 11 are in
# money_*.bats.
#
# Prices in these tests are $1000 per million tokens ($0.001 a token) so costs are easy
# to read.  The sim counts bytes/4+1 tokens for the prompt's messages and for its reply
# "sim[MODEL]: PROMPT".  routefs reserves the worst case before sending:
# (prompt_bytes/3 + 16) prompt tokens + the tier's max_tokens at the hop's price.

load helpers
load money_helpers

setup() {
    rfs_setup
}

teardown() {
    money_teardown
}

# --- helpers (this file only; money_helpers.bash has spend, near, le) ---------------------

# prompt_in TIER NAME TEXT — write a prompt and read its result (sets output/status).
prompt_in() {
    printf '%s' "$3" >"$MNT/$1/$2"
    run read_out "$MNT/$1/$2.out"
}

# finished PATH — the job of prompt PATH has ended (done or failed).
finished() {
    local s
    s=$(jq -r .state "$1.meta" 2>/dev/null) || return 1
    [ "$s" = "done" ] || [ "$s" = failed ]
}

# priced_config BUDGET TIER_T_EXTRA — providers "sim"; sim/a and sim/b priced $1000/M both
# ways, sim/cheap priced $0.001/M; tiers t (sim/a), u (sim/b) and cheap (sim/cheap), all
# with max_tokens 16.  BUDGET: the "budget" object; TIER_T_EXTRA: more fields for t
# (JSON with a leading comma).
priced_config() {
    local budget=${1:-'{}'} t_extra=${2:-}
    rfs_config <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {
    "sim/a":     {"prompt": 1000, "completion": 1000},
    "sim/b":     {"prompt": 1000, "completion": 1000},
    "sim/cheap": {"prompt": 0.001, "completion": 0.001}
  },
  "budget": $budget,
  "tiers": {
    "t":     {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16$t_extra},
    "u":     {"route": ["sim/b"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16},
    "cheap": {"route": ["sim/cheap"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16}
  }
}
JSON
}

# assert_edquot PATH — writing a new prompt at PATH fails with "Disk quota exceeded" and
# leaves nothing behind.
assert_edquot() {
    printf 'over the cap' >"$RFS_DIR/x"
    run cp "$RFS_DIR/x" "$1"
    echo "cp: status $status, $output"
    assert_failure
    assert_output --partial "Disk quota exceeded"
    [ ! -e "$1" ]
    [ ! -e "$1.out" ]
}

# --- cost and spend.json ------------------------------------------------------------------

@test "cost: usage.cost when reported, else tokens x configured price; spend.json adds up" {
    priced_config
    rfs_mount
    sim_behave sim/b '{"cost": 0.0123}'
    prompt_in t a "hello world"
    assert_success
    assert_output "sim[sim/a]: hello world"
    m="$MNT/t/a.meta"
    jq . "$m"
    pt=$(meta "$m" .tokens.prompt)
    ct=$(meta "$m" .tokens.completion)
    # "hello world": 11 bytes -> 3 tokens; "sim[sim/a]: hello world": 23 bytes -> 6 tokens
    [ "$pt" = 3 ] && [ "$ct" = 6 ]
    cost_a=$(meta "$m" .cost)
    near "$cost_a" 0.009
    # sim/b is priced too, but the provider's reported cost wins
    prompt_in u b "hello world"
    assert_success
    near "$(meta "$MNT/u/b.meta" .cost)" 0.0123
    jq . "$MNT/spend.json"
    [ "$(spend .currency)" = USD ]
    near "$(spend .total)" 0.0213
    near "$(spend .today)" 0.0213
    near "$(spend .this_month)" 0.0213
    near "$(spend .reserved)" 0
    [ "$(spend .requests.total)" = 2 ]
    [ "$(spend .requests.today)" = 2 ]
    [ "$(spend .requests.this_month)" = 2 ]
    [ "$(spend .requests.unpriced)" = 0 ]
    near "$(spend .by_tier.t.total)" 0.009
    near "$(spend .by_tier.t.today)" 0.009
    near "$(spend .by_tier.t.this_month)" 0.009
    [ "$(spend .by_tier.t.requests)" = 1 ]
    near "$(spend .by_tier.u.total)" 0.0123
    [ "$(spend '.by_tier | keys | join(",")')" = "t,u" ]
    near "$(spend .by_provider.sim.total)" 0.0213
    [ "$(spend .by_provider.sim.requests)" = 2 ]
    near "$(spend '.by_model["sim/a"].total')" 0.009
    near "$(spend '.by_model["sim/b"].total')" 0.0123
    [ "$(spend '.by_tag | length')" = 0 ]
    [ "$(spend '.caps.daily')" = null ]
    [ "$(spend '.caps.monthly')" = null ]
    # status has a spend line
    run grep '^spend:' "$MNT/status"
    assert_success
    echo "$output"
    assert_output --partial '$0.02'
    assert_spend_agrees
}

@test "only the hop that served is billed" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {"sim/a": {"prompt": 1000, "completion": 1000},
             "sim/b": {"prompt": 1000, "completion": 1000}},
  "tiers": {"t": {"route": ["sim/a", "sim/b"], "retries": 1, "retry_base_ms": 10,
                  "timeout_ms": 5000, "max_tokens": 16}}
}
JSON
    rfs_mount
    sim_behave sim/a '{"status": 503}'
    prompt_in t a "hello world"
    assert_success
    assert_output "sim[sim/b]: hello world"
    [ "$(sim_count sim/a)" = 2 ]
    near "$(meta "$MNT/t/a.meta" .cost)" 0.009
    jq . "$MNT/spend.json"
    near "$(spend .total)" 0.009
    near "$(spend .reserved)" 0
    [ "$(spend .requests.total)" = 1 ]
    [ "$(spend '.by_model | keys | join(",")')" = sim/b ]
    [ "$(wc -l <"$(ledger_file)")" -eq 1 ]
    assert_spend_agrees
}

@test "spend.json caps: cap, spent, reserved, remaining; status shows spend vs the caps" {
    priced_config '{"daily_usd": 2.5, "monthly_usd": 40}' ', "daily_usd": 1'
    rfs_mount
    prompt_in t a "hello world"
    assert_success
    jq .caps "$MNT/spend.json"
    near "$(spend .caps.daily.cap)" 2.5
    near "$(spend .caps.daily.spent)" 0.009
    near "$(spend .caps.daily.reserved)" 0
    near "$(spend .caps.daily.remaining)" 2.491
    near "$(spend .caps.monthly.cap)" 40
    near "$(spend .caps.monthly.remaining)" 39.991
    near "$(spend .caps.tiers.t.cap)" 1
    near "$(spend .caps.tiers.t.spent)" 0.009
    [ "$(spend '.caps.tiers | keys | join(",")')" = t ]
    run grep '^spend:' "$MNT/status"
    assert_success
    echo "$output"
    assert_output --partial '$2.50'
    assert_output --partial '$40.00'
    assert_spend_agrees
}

# --- caps --------------------------------------------------------------------------------

@test "daily cap holds with 60 prompts written at once: nothing lost, spend <= cap" {
    # prompt "cap test prompt NN": 18 bytes.  Worst case: (18/3 + 16) + 16 = 38 tokens =
    # $0.038; real cost: 5 + 8 = 13 tokens = $0.013.  A $0.25 cap admits 6 worst cases
    # at once and settles at most 19 real ones: most of the 60 must be refused.
    priced_config '{"daily_usd": 0.25}'
    rfs_mount
    sim_behave sim/a '{"latency_ms": 200}'
    mkdir "$RFS_DIR/src"
    for i in $(seq -w 1 60); do printf 'cap test prompt %s' "$i" >"$RFS_DIR/src/p$i"; done
    pids=()
    for i in $(seq -w 1 60); do
        cp "$RFS_DIR/src/p$i" "$MNT/t/" 2>"$RFS_DIR/src/p$i.cperr" 3>&- &
        pids+=($!)
    done
    cp_failed=()
    for k in "${!pids[@]}"; do
        i=$(printf '%02d' $((k + 1)))
        wait "${pids[$k]}" || cp_failed+=("$i")
    done
    echo "cp failures: ${#cp_failed[@]}"
    for i in "${cp_failed[@]}"; do
        cat "$RFS_DIR/src/p$i.cperr"
        grep -q "Disk quota exceeded" "$RFS_DIR/src/p$i.cperr"
    done
    # wait for every accepted prompt to end
    all_ended() {
        local i
        for i in $(seq -w 1 60); do
            [ -s "$RFS_DIR/src/p$i.cperr" ] && continue
            finished "$MNT/t/p$i" || return 1
        done
    }
    wait_for 30 all_ended
    done_n=0 failed_n=0
    for i in $(seq -w 1 60); do
        [ -s "$RFS_DIR/src/p$i.cperr" ] && continue
        st=$(meta "$MNT/t/p$i.meta" .state)
        if [ "$st" = "done" ]; then
            done_n=$((done_n + 1))
            [ "$(read_out "$MNT/t/p$i.out")" = "sim[sim/a]: cap test prompt $i" ]
            [ ! -e "$MNT/t/p$i.err" ]
        else
            [ "$st" = failed ] || { echo "p$i: state $st"; false; }
            failed_n=$((failed_n + 1))
            err=$(cat "$MNT/t/p$i.err")
            [[ $err == *'daily cap $0.2500 reached: $'*' spent, $'*' reserved'* ]] ||
                { echo "p$i.err: $err"; false; }
        fi
    done
    echo "done $done_n, failed $failed_n, cp refused ${#cp_failed[@]}"
    [ $((done_n + failed_n + ${#cp_failed[@]})) -eq 60 ]
    [ "$done_n" -ge 6 ]
    [ "$failed_n" -ge 1 ]
    jq . "$MNT/spend.json"
    le "$(spend .today)" 0.25
    near "$(spend .reserved)" 0
    # nothing lost: every served request is billed once, and only those were sent
    [ "$(spend .requests.today)" = "$done_n" ]
    [ "$(sim_count sim/a)" = "$done_n" ]
    [ "$(wc -l <"$(ledger_file)")" -eq "$done_n" ]
    near "$(spend .today)" "$(jq -s 'map(.cost) | add' "$(ledger_file)")"
    assert_spend_agrees
}

@test "daily cap used up: cp into a tier fails with EDQUOT, old results still read" {
    priced_config '{"daily_usd": 0.05}'
    rfs_mount
    # the worst case ($0.033) fits; the provider then reports $0.06
    sim_behave sim/a '{"cost": 0.06}'
    prompt_in t a "first"
    assert_success
    near "$(spend .today)" 0.06
    assert_edquot "$MNT/t/x"
    assert_edquot "$MNT/u/x"
    # a tag directory can still be made; a prompt in it is refused the same way
    mkdir "$MNT/t/news"
    assert_edquot "$MNT/t/news/x"
    run bash -c 'echo hi >"$1"' _ "$MNT/t/y"
    assert_failure
    assert_output --partial "Disk quota exceeded"
    # rewriting an existing prompt is refused as well
    run bash -c 'echo again >"$1"' _ "$MNT/t/a"
    assert_failure
    assert_output --partial "Disk quota exceeded"
    [ "$(sim_total)" = 1 ]
    run read_out "$MNT/t/a.out"
    assert_success
    assert_output "sim[sim/a]: first"
    near "$(spend .caps.daily.remaining)" 0
    run grep '^spend:' "$MNT/status"
    echo "$output"
    assert_output --partial '$0.0500'
    assert_spend_agrees
}

@test "monthly cap: a job that would break it fails with .err naming it, not sent" {
    priced_config '{"monthly_usd": 0.1}'
    rfs_mount
    sim_behave sim/a '{"cost": 0.08}'
    prompt_in t a "first"
    assert_success
    # $0.08 spent + a $0.033 worst case > $0.10
    prompt_in t b "second"
    assert_failure
    [ "$status" -ne 124 ]
    assert_output --partial "Input/output error"
    run cat "$MNT/t/b.err"
    echo "$output"
    assert_output --partial 'monthly cap $0.1000 reached: $0.0800 spent, $0.0000 reserved'
    [ "$(sim_count sim/a)" = 1 ]
    [ "$(meta "$MNT/t/b.meta" .state)" = failed ]
    near "$(spend .this_month)" 0.08
    assert_spend_agrees
}

@test "monthly cap used up: EDQUOT" {
    priced_config '{"monthly_usd": 0.1}'
    rfs_mount
    sim_behave sim/cheap '{"cost": 0.11}'
    prompt_in cheap a "first"
    assert_success
    assert_edquot "$MNT/t/x"
    assert_edquot "$MNT/cheap/x"
    [ "$(sim_total)" = 1 ]
    assert_spend_agrees
}

@test "per-tier daily cap: a job that would break it fails with .err; other tiers go on" {
    priced_config '{}' ', "daily_usd": 0.1'
    rfs_mount
    sim_behave sim/a '{"cost": 0.08}'
    prompt_in t a "first"
    assert_success
    prompt_in t b "second"
    assert_failure
    [ "$status" -ne 124 ]
    run cat "$MNT/t/b.err"
    echo "$output"
    assert_output --partial 'tier t daily cap $0.1000 reached: $0.0800 spent'
    [ "$(sim_count sim/a)" = 1 ]
    prompt_in u c "other tier"
    assert_success
    assert_output "sim[sim/b]: other tier"
    assert_spend_agrees
}

@test "per-tier daily cap used up: EDQUOT in that tier only" {
    priced_config '{}' ', "daily_usd": 0.1'
    rfs_mount
    sim_behave sim/a '{"cost": 0.12}'
    prompt_in t a "first"
    assert_success
    assert_edquot "$MNT/t/x"
    prompt_in u c "other tier"
    assert_success
    assert_output "sim[sim/b]: other tier"
    near "$(spend .caps.tiers.t.remaining)" 0
    assert_spend_agrees
}

# --- tags --------------------------------------------------------------------------------

@test "tags: requests carry user pipeline:<tag>; spend.json by_tag counts them" {
    priced_config
    rfs_mount
    mkdir "$MNT/t/news"
    prompt_in t/news p "tagged"
    assert_success
    assert_output "sim[sim/a]: tagged"
    [ "$(sim_last_body sim/a | jq -r .user)" = "pipeline:news" ]
    [ "$(meta "$MNT/t/news/p.meta" .tag)" = news ]
    mkdir -p "$MNT/t/a/b"
    prompt_in t/a/b q "nested"
    assert_success
    [ "$(sim_last_body sim/a | jq -r .user)" = "pipeline:a/b" ]
    [ "$(meta "$MNT/t/a/b/q.meta" .tag)" = a/b ]
    prompt_in t plain "untagged"
    assert_success
    [ "$(sim_last_body sim/a | jq -r 'has("user")')" = false ]
    jq .by_tag "$MNT/spend.json"
    [ "$(spend '.by_tag | keys | join(",")')" = "a/b,news" ]
    [ "$(spend .by_tag.news.requests)" = 1 ]
    near "$(spend .by_tag.news.total)" "$(meta "$MNT/t/news/p.meta" .cost)"
    near "$(spend '.by_tag["a/b"].total')" "$(meta "$MNT/t/a/b/q.meta" .cost)"
    [ "$(spend .by_tier.t.requests)" = 3 ]
    assert_spend_agrees
}

# --- the ledger ----------------------------------------------------------------------------

@test "remount keeps spend: spend.json the same; the ledger has one row per request" {
    priced_config '{"daily_usd": 5}'
    rfs_mount
    sim_behave sim/b '{"cost": 0.0042}'
    prompt_in t a "one"
    assert_success
    prompt_in u b "two"
    assert_success
    mkdir "$MNT/t/news"
    prompt_in t/news c "three"
    assert_success
    jq -S . "$MNT/spend.json" >"$RFS_DIR/spend.before"
    cat "$RFS_DIR/spend.before"
    rfs_unmount
    cat "$(ledger_file)"
    [ "$(wc -l <"$(ledger_file)")" -eq 3 ]
    [ "$(jq -s 'length' "$(ledger_file)")" = 3 ]
    [ "$(jq -s 'map(.id) | unique | length' "$(ledger_file)")" = 3 ]
    [ "$(jq -r -s 'map(.tier) | sort | join(",")' "$(ledger_file)")" = "t,t,u" ]
    [ "$(jq -r -s 'map(.tag // "-") | sort | join(",")' "$(ledger_file)")" = "-,-,news" ]
    near "$(jq -s 'map(.cost) | add' "$(ledger_file)")" "$(jq .total "$RFS_DIR/spend.before")"
    rfs_mount
    jq -S . "$MNT/spend.json" >"$RFS_DIR/spend.after"
    diff "$RFS_DIR/spend.before" "$RFS_DIR/spend.after"
    [ "$(sim_total)" = 3 ]
    [ "$(wc -l <"$(ledger_file)")" -eq 3 ]
    assert_spend_agrees
}

# --- unknown prices ------------------------------------------------------------------------

@test "unknown price, no usage.cost: cost null, counted as unpriced, status says so" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "tiers": {"t": {"route": ["sim/x"], "retries": 0, "timeout_ms": 5000}}
}
JSON
    rfs_mount
    prompt_in t a "who pays?"
    assert_success
    assert_output "sim[sim/x]: who pays?"
    [ "$(meta "$MNT/t/a.meta" .cost)" = null ]
    [ "$(meta "$MNT/t/a.meta" '.tokens.prompt > 0')" = true ]
    jq . "$MNT/spend.json"
    [ "$(spend .requests.unpriced)" = 1 ]
    [ "$(spend .requests.total)" = 1 ]
    near "$(spend .total)" 0
    run grep '^spend:' "$MNT/status"
    echo "$output"
    assert_output --partial "1 request without a known price"
    assert_spend_agrees
}

@test "require_price: a hop without a price is not sent; with no other hop the job fails" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {"sim/y": {"prompt": 1000, "completion": 1000}},
  "tiers": {
    "strict":  {"route": ["sim/x"], "require_price": true, "retries": 0, "timeout_ms": 5000},
    "strict2": {"route": ["sim/x", "sim/y"], "require_price": true, "retries": 0, "timeout_ms": 5000}
  }
}
JSON
    rfs_mount
    prompt_in strict a "no price"
    assert_failure
    [ "$status" -ne 124 ]
    assert_output --partial "Input/output error"
    [ -f "$MNT/strict/a.err" ]
    cat "$MNT/strict/a.err"
    [ "$(meta "$MNT/strict/a.meta" .state)" = failed ]
    [ "$(sim_count sim/x)" = 0 ]
    [ "$(sim_total)" = 0 ]
    # a priced hop further down the route serves instead
    prompt_in strict2 b "priced fallback"
    assert_success
    assert_output "sim[sim/y]: priced fallback"
    [ "$(sim_count sim/x)" = 0 ]
    [ "$(sim_count sim/y)" = 1 ]
    [ "$(meta "$MNT/strict2/b.meta" '.cost > 0')" = true ]
    [ "$(spend .requests.unpriced)" = 0 ]
    assert_spend_agrees
}

@test "providers.json counts only requests sent: cap refusals and require_price skips are not" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {"sim/a": {"prompt": 1000, "completion": 1000}},
  "budget": {"daily_usd": 0.1},
  "tiers": {
    "t":      {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16},
    "strict": {"route": ["sim/x"], "require_price": true, "retries": 0, "timeout_ms": 5000}
  }
}
JSON
    rfs_mount
    sim_behave sim/a '{"cost": 0.08}'
    prompt_in t a "first"
    assert_success
    prompt_in t b "refused by the cap"
    assert_failure
    prompt_in strict c "refused for want of a price"
    assert_failure
    jq . "$MNT/providers.json"
    [ "$(sim_total)" = 1 ]
    [ "$(jq -r .providers.sim.requests "$MNT/providers.json")" = 1 ]
    assert_spend_agrees
}

# shellcheck shell=bash
# Helpers for the money tests (money_*.bats, issue 11): amounts, spend.json, the ledger,
# and the check that spend.json and the state store's ledger agree.  Load after helpers.
#
# Prices in these tests are per million tokens.  The sim counts bytes/4+1 tokens for the
# prompt's messages and for its reply "sim[MODEL]: PROMPT"; routefs reserves the worst
# case before each send: (prompt_bytes/3 + 16) prompt tokens + the tier's max_tokens.

# spend JQ — query spend.json.
spend() { jq -r "$1" "$MNT/spend.json"; }

# near A B [EPS] — two amounts in USD are equal to within EPS (default a nano-dollar).
near() {
    awk -v a="$1" -v b="$2" -v e="${3:-1e-9}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= e) }' || {
        echo "not equal: $1 vs $2 (within ${3:-1e-9})"
        return 1
    }
}

# le A B — amount A <= amount B (to within a nano-dollar).
le() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b + 1e-9) }' || {
        echo "not <=: $1 vs $2"
        return 1
    }
}

# calc EXPR — a floating-point expression (awk), printed with 12 significant digits.
calc() { awk "BEGIN { printf \"%.12g\n\", $1 }"; }

# worst_case PROMPT_BYTES MAX_TOKENS PRICE_PER_M — routefs's reservation for one send.
worst_case() { calc "(int($1 / 3) + 16 + $2) * $3 / 1e6"; }

# ledger_sum, ledger_rows, ledger_estimated, ledger_unpriced — from the state store.
ledger_sum() { state_sql "SELECT coalesce(sum(cost_nusd), 0) / 1e9 FROM ledger"; }
ledger_rows() { state_sql "SELECT count(*) FROM ledger"; }
ledger_estimated() { state_sql "SELECT coalesce(sum(estimated), 0) FROM ledger"; }
ledger_unpriced() { state_sql "SELECT count(*) FROM ledger WHERE cost_nusd IS NULL"; }

# assert_spend_agrees — spend.json and the ledger say the same: the total is the sum of
# the ledger's costs, and the request counts (all, estimated, unpriced) are its rows.
assert_spend_agrees() {
    local total rows
    total=$(spend .total)
    rows=$(ledger_rows)
    echo "spend.json total $total, ledger sum $(ledger_sum) over $rows rows"
    near "$total" "$(ledger_sum)" 1e-6
    [ "$(spend .requests.total)" = "$rows" ] || { echo "requests.total $(spend .requests.total) != $rows"; return 1; }
    [ "$(spend .requests.estimated)" = "$(ledger_estimated)" ] ||
        { echo "requests.estimated $(spend .requests.estimated) != $(ledger_estimated)"; return 1; }
    [ "$(spend .requests.unpriced)" = "$(ledger_unpriced)" ] ||
        { echo "requests.unpriced $(spend .requests.unpriced) != $(ledger_unpriced)"; return 1; }
    near "$(spend .reserved)" 0
}

# ended PATH — the job of prompt PATH has ended (done or failed).
ended() {
    local s
    s=$(jq -r .state "$1.meta" 2>/dev/null) || return 1
    [ "$s" = "done" ] || [ "$s" = "failed" ]
}

# all_ended DIR NAME... — every named prompt in DIR has ended.
all_ended() {
    local dir=$1 n
    shift
    for n in "$@"; do ended "$dir/$n" || return 1; done
}

# status_has TEXT — the status file has a line containing TEXT.
status_has() { grep -F -- "$1" "$MNT/status"; }

# money_config BUDGET PRICES TIERS [PROVIDER_EXTRA] — one provider "sim" (plus
# "backup" and the free "local", all on the sim); BUDGET, PRICES and TIERS are JSON
# objects; PROVIDER_EXTRA: more fields for "sim" (JSON with a leading comma).
money_config() {
    rfs_config <<JSON
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1"${4:-}},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"},
    "local":  {"base_url": "http://127.0.0.1:SIM_PORT/v1", "free": true}
  },
  "prices": $2,
  "budget": $1,
  "tiers": $3
}
JSON
}

# live_edit JQ — edit the mounted config.json with a jq program (a live edit).
live_edit() {
    jq "$1" "$MNT/config.json" >"$RFS_DIR/edited.json" || return 1
    cp "$RFS_DIR/edited.json" "$MNT/config.json"
}

# money_teardown — rfs_teardown, failing the test when the daemon hit an assertion or a
# heap error on the way (an abort at unmount would otherwise go unseen).
money_teardown() {
    [ -n "${RFS_DIR:-}" ] && [ -d "$RFS_DIR" ] || return 0
    rfs_unmount
    local bad=""
    bad=$(grep -h -E 'Assertion|double free|corrupted|free\(\): |munmap_chunk' \
        "$RFS_DIR/routefs.stderr" 2>/dev/null | head -n 5)
    rfs_teardown
    [ -z "$bad" ] || { printf 'routefs stderr:\n%s\n' "$bad" >&2; return 1; }
}

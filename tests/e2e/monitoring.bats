#!/usr/bin/env bats
# examples/monitoring: the alert rules pass promtool's checks and their own unit tests
# (alerts.test.yml), and the Grafana dashboard is valid JSON whose every query is valid
# PromQL (checked by promtool as recording rules).  No mount is needed: metrics.bats checks
# that the metric names used here are in a live metrics.prom.

load helpers

EX="$RFS_REPO/examples/monitoring"

setup() {
    RFS_DIR="$(mktemp -d "$RFS_E2E_ROOT/routefs-monitoring.XXXXXX")"
    export RFS_DIR
    if ! command -v promtool >/dev/null 2>&1; then
        if [ -n "${CI:-}" ]; then
            echo "promtool is missing on CI (tests/install-deps.sh installs prometheus)" >&2
            return 1
        fi
        skip "promtool is not installed (sh tests/install-deps.sh)"
    fi
}

teardown() {
    [ -n "${RFS_DIR:-}" ] && [ -d "$RFS_DIR" ] && rm -rf --one-file-system "$RFS_DIR"
    return 0
}

@test "promtool check rules accepts alerts.yml, with the rules the README lists" {
    run promtool check rules "$EX/alerts.yml"
    echo "$output"
    assert_success
    assert_output --partial "SUCCESS: 11 rules found"
    for a in RoutefsDailySpendAt80Percent RoutefsDailyCapReached RoutefsMonthlySpendAt80Percent \
             RoutefsMonthlyCapReached RoutefsProviderBreakerOpen RoutefsModelBreakerOpen \
             RoutefsProviderFailureRateHigh RoutefsJobFailureRateHigh RoutefsJobsParked \
             RoutefsStoreFailing RoutefsMetricsStale; do
        grep -q "alert: $a\$" "$EX/alerts.yml"
        grep -q "\`$a\`" "$EX/README.md"
        # every alert has a test case that expects it to fire
        grep -q "alertname: $a\$" "$EX/alerts.test.yml"
    done
}

@test "promtool test rules passes alerts.test.yml" {
    run promtool test rules "$EX/alerts.test.yml"
    echo "$output"
    assert_success
    assert_output --partial "SUCCESS"
}

@test "alerts.test.yml can fail: a rule with a changed threshold breaks it" {
    sed -e 's/>= 0.8 < 1/>= 0.9 < 1/' -e 's/) > 0.25/) > 0.6/' "$EX/alerts.yml" >"$RFS_DIR/alerts.yml"
    sed -e "s|  - alerts.yml|  - $RFS_DIR/alerts.yml|" "$EX/alerts.test.yml" >"$RFS_DIR/alerts.test.yml"
    run promtool test rules "$RFS_DIR/alerts.test.yml"
    echo "$output"
    assert_failure
    assert_output --partial "RoutefsDailySpendAt80Percent"
    assert_output --partial "RoutefsProviderFailureRateHigh"
}

@test "the Grafana dashboard is valid JSON and every query is valid PromQL" {
    d="$EX/grafana-dashboard.json"
    jq -e '.title == "routefs" and (.panels | length) > 10' "$d"
    # unique panel ids, a data source on every query panel, inside Grafana's 24 columns
    [ "$(jq '[.panels[].id] | length' "$d")" -eq "$(jq '[.panels[].id] | unique | length' "$d")" ]
    jq -e '[.panels[] | select(.type != "row") | .datasource.uid == "${DS_PROMETHEUS}"] | all' "$d"
    jq -e '[.panels[] | .gridPos.x + .gridPos.w <= 24] | all' "$d"
    # the panels the README promises
    for t in "Today vs daily cap" "This month vs monthly cap" "Spend rate by tier (USD/hour)" \
             "Spend rate by provider (USD/hour)" "Provider breakers (1 = closed)" \
             "Attempt failure rate by provider" "Attempt latency p50 / p95 / p99 by provider" \
             "Parked jobs"; do
        jq -e --arg t "$t" '[.panels[].title] | index($t) != null' "$d" >/dev/null ||
            { echo "no panel \"$t\""; return 1; }
    done
    # every query as a recording rule, with Grafana's variables filled in, for promtool
    jq -r '.panels[].targets[]?.expr' "$d" |
        sed -e 's/\$__rate_interval/5m/g' -e 's/\$instance/.*/g' |
        python3 -c '
import json, sys
exprs = [l.rstrip("\n") for l in sys.stdin if l.strip()]
rules = [{"record": "routefs:dashboard_query_%d" % i, "expr": e} for i, e in enumerate(exprs)]
print(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))' >"$RFS_DIR/dashboard-rules.json"
    n="$(jq '.groups[0].rules | length' "$RFS_DIR/dashboard-rules.json")"
    [ "$n" -ge 20 ]
    run promtool check rules "$RFS_DIR/dashboard-rules.json"
    echo "$output"
    assert_success
    assert_output --partial "SUCCESS: $n rules found"
    # and a broken query would have been caught
    jq '.groups[0].rules[0].expr = "sum by (tier (routefs_jobs)"' "$RFS_DIR/dashboard-rules.json" \
        >"$RFS_DIR/broken.json"
    run promtool check rules "$RFS_DIR/broken.json"
    assert_failure
}

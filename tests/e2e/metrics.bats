#!/usr/bin/env bats
# metrics.prom: Prometheus text exposition, valid for node_exporter's textfile collector
# (our own format checks and `promtool check metrics`), with escaped label values, and
# naming every metric that examples/monitoring's dashboard and alert rules use.

load helpers

setup() {
    rfs_setup
}

teardown() {
    rfs_teardown
}

# check_exposition FILE — the text format's rules that a scraper enforces: every sample
# line is `name{labels} value`, every family has HELP and TYPE before its samples and
# appears once, histogram buckets are cumulative and end with +Inf equal to _count.
check_exposition() {
    python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n"), "must end with a newline"
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)?\})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$')
typed, helped, seen_family, current = {}, set(), [], None
buckets = {}
for n, line in enumerate(text.splitlines(), 1):
    if line.startswith("# HELP "):
        helped.add(line.split()[2]); continue
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split()
        assert name not in typed, "line %d: family %s typed twice" % (n, name)
        assert name in helped, "line %d: TYPE before HELP for %s" % (n, name)
        typed[name] = kind; current = name; continue
    assert not line.startswith("#"), "line %d: stray comment" % n
    m = sample.match(line)
    assert m, "line %d: not a sample: %r" % (n, line)
    name = m.group(1)
    family = re.sub(r'_(bucket|sum|count)$', '', name) if typed.get(re.sub(r'_(bucket|sum|count)$', '', name)) == "histogram" else name
    assert family == current, "line %d: sample of %s outside its family block (%s)" % (n, name, current)
    if name.endswith("_bucket"):
        labels = re.sub(r',?le="[^"]*"', '', m.group(2))
        buckets.setdefault(labels, []).append((re.search(r'le="([^"]*)"', m.group(2)).group(1), float(m.group(5))))
for labels, bs in buckets.items():
    values = [v for _, v in bs]
    assert values == sorted(values), "buckets not cumulative for %s" % labels
    assert bs[-1][0] == "+Inf", "last bucket is not +Inf for %s" % labels
print("ok: %d families" % len(typed))
PY
}

# need_promtool — skip when promtool (Debian package prometheus) is missing; on CI it must
# be there (tests/install-deps.sh installs it).
need_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    if [ -n "${CI:-}" ]; then
        echo "promtool is missing on CI (tests/install-deps.sh installs prometheus)" >&2
        return 1
    fi
    skip "promtool is not installed (sh tests/install-deps.sh)"
}

# promtool_check FILE — promtool's parser and linter; any complaint fails.
promtool_check() {
    local out
    out="$(promtool check metrics <"$1" 2>&1)" || { echo "$out"; return 1; }
    [ -z "$out" ] || { echo "promtool: $out"; return 1; }
}

@test "metrics.prom is valid exposition text and counts jobs, attempts, retries, fallbacks, latency, spend and breakers" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"},
                "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {"sim/a": {"prompt": 1.0, "completion": 2.0},
             "sim/b": {"prompt": 1.0, "completion": 2.0}},
  "budget": {"daily_usd": 5, "monthly_usd": 50},
  "tiers": {"fast": {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}],
                     "retries": 1, "retry_base_ms": 10, "retry_cap_ms": 20}}
}
JSON
    rfs_mount
    echo "one" >"$MNT/fast/one"
    run read_out "$MNT/fast/one.out"
    assert_success
    sim_behave sim/a '{"status": 500}'
    echo "two" >"$MNT/fast/two"
    run read_out "$MNT/fast/two.out"
    assert_success
    assert_output "sim[sim/b]: two"

    cp "$MNT/metrics.prom" "$RFS_DIR/metrics.prom"
    cat "$RFS_DIR/metrics.prom"
    run check_exposition "$RFS_DIR/metrics.prom"
    echo "$output"
    assert_success
    m="$RFS_DIR/metrics.prom"
    grep -q '^routefs_jobs_total{tier="fast",outcome="done"} 2$' "$m"
    grep -q '^routefs_attempts_total{tier="fast",provider="sim",outcome="success"} 1$' "$m"
    grep -q '^routefs_attempts_total{tier="fast",provider="sim",outcome="retry"} 2$' "$m"
    grep -q '^routefs_attempts_total{tier="fast",provider="backup",outcome="success"} 1$' "$m"
    grep -q '^routefs_retries_total{tier="fast",provider="sim"} 2$' "$m"
    grep -q '^routefs_fallbacks_total{tier="fast",from="sim"} 1$' "$m"
    grep -q '^routefs_attempt_duration_seconds_count{tier="fast",provider="sim"} 3$' "$m"
    grep -q '^routefs_spend_usd{window="today"} ' "$m"
    grep -q '^routefs_cap_usd{window="daily"} 5' "$m"
    grep -q '^routefs_provider_up{provider="sim"} ' "$m"
    # the monotonic families are there from the start, with HELP and TYPE
    grep -q '^# TYPE routefs_spend_usd_total counter$' "$m"
    grep -q '^# TYPE routefs_breaker_transitions_total counter$' "$m"
    grep -q '^routefs_store_failures_total 0$' "$m"
    need_promtool
    run promtool_check "$m"
    echo "$output"
    assert_success
}

@test "metrics.prom escapes label values from config names (promtool accepts it)" {
    need_promtool
    rfs_config <<'JSON'
{
  "providers": {"si\\m \"one\"": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "tiers": {"q\"uo\\te": {"route": ["sim/a"], "retries": 0}}
}
JSON
    rfs_mount
    echo "one" >"$MNT/q\"uo\\te/one"
    run read_out "$MNT/q\"uo\\te/one.out"
    assert_success
    cp "$MNT/metrics.prom" "$RFS_DIR/metrics.prom"
    m="$RFS_DIR/metrics.prom"
    cat "$m"
    run check_exposition "$m"
    assert_success
    run promtool_check "$m"
    echo "$output"
    assert_success
    grep -qF 'routefs_jobs_total{tier="q\"uo\\te",outcome="done"} 1' "$m"
    grep -qF 'routefs_attempts_total{tier="q\"uo\\te",provider="si\\m \"one\"",outcome="success"} 1' "$m"
    grep -qF 'routefs_jobs{tier="q\"uo\\te",state="parked"} 0' "$m"
    grep -qF 'routefs_provider_up{provider="si\\m \"one\""} 1' "$m"
}

# Metrics that examples/monitoring uses before routefs renders them (README.md there,
# "Metrics the rules need"), and node_exporter's own.
PENDING_METRICS=""

@test "every metric the dashboard and the alert rules use is in metrics.prom" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "prices": {"sim/a": {"prompt": 1.0, "completion": 2.0}},
  "budget": {"daily_usd": 5, "monthly_usd": 50},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0}}
}
JSON
    rfs_mount
    echo "one" >"$MNT/fast/one"
    run read_out "$MNT/fast/one.out"
    assert_success
    cp "$MNT/metrics.prom" "$RFS_DIR/metrics.prom"
    ex="$RFS_REPO/examples/monitoring"
    used="$( { jq -r '.panels[].targets[]?.expr' "$ex/grafana-dashboard.json"
               grep -E '^\s+expr:' -A6 "$ex/alerts.yml"; } |
             grep -oE '\broutefs_[a-z_]+' | sort -u)"
    [ -n "$used" ]
    missing=""
    for name in $used; do
        family="$(echo "$name" | sed -E 's/_(bucket|sum|count)$//')"
        grep -q "^# TYPE $family " "$RFS_DIR/metrics.prom" && continue
        case " $PENDING_METRICS " in *" $family "*) continue ;; esac
        missing="$missing $name"
    done
    echo "used: $used"
    echo "missing:$missing"
    [ -z "$missing" ]
    # and each is documented in examples/monitoring/README.md
    for name in $used; do
        family="$(echo "$name" | sed -E 's/_(bucket|sum|count)$//')"
        grep -q "\`$family" "$ex/README.md" || { echo "not in README: $family"; return 1; }
    done
}

#!/usr/bin/env bash
# routefs shared-state benchmark (a script, not a test): what Redis costs a job.
#
#   N   jobs, one at a time (default 300)
#   MC  the provider's max_concurrent (default 0: none; with one, the in-flight slot is
#       a round trip of its own before the rpm booking)
#
# Mounts routefs against routefs-sim (latency 0) twice on fresh state directories: once
# without a "shared" section, once with one on a redis-server started here on loopback
# (a random port, stopped at the end).  Both configs have a daily cap (so every job
# reserves and settles) and a provider with an rpm (so every job books a send) and, with
# MC, a max_concurrent (an in-flight slot).  Each job is one prompt written and its .out read,
# timed from outside; the jobs run one after another so that nothing overlaps.
#
# Prints the median and p90 time per job for both runs and their difference (the latency
# shared state adds), and, for the shared run, the Redis round trips and commands per job
# from metrics.prom, less the periodic sync (one round trip every breaker_sync_ms).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
N=${N:-300}
MC=${MC:-0}
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"

command -v redis-server >/dev/null || { echo "bench: redis-server is missing" >&2; exit 1; }
bench_init
REDIS_PID=""
stop_redis() { [ -n "$REDIS_PID" ] && { kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; }; REDIS_PID=""; }
trap 'stop_redis; bench_cleanup' EXIT

bench_start_sim --latency-ms 0
RPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$WORK/redis"
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' --appendonly no \
    --logfile "$WORK/redis/redis.log" </dev/null >/dev/null 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && break; sleep 0.05; done

write_config() {   # FILE SHARED_JSON_OR_EMPTY
    cat >"$1" <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:$PORT/v1", "rpm": 1000000,
                        "max_concurrent": $MC}},
  "prices": {"sim/a": {"prompt": 1, "completion": 1}},
  "budget": {"daily_usd": 1000},
  $2
  "tiers": {"t": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16}}
}
JSON
}

# run_jobs LABEL — N jobs one at a time; per-job times (µs) into $WORK/LABEL.times
run_jobs() {
    local label=$1 i t0
    : >"$WORK/$label.times"
    for ((i = 1; i <= N; i++)); do
        t0=$(now_ns)
        printf 'job %d\n' "$i" >"$MNT/t/$label-$i"
        cat "$MNT/t/$label-$i.out" >/dev/null
        echo $(( ($(now_ns) - t0) / 1000 )) >>"$WORK/$label.times"
    done
}

pct() {   # P — the P-th percentile of numbers on stdin
    sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.5); if (i < 1) i = 1; print v[i] }'
}

metric() { awk -v m="$1" '$1 == m { print $2 }' "$MNT/metrics.prom"; }

echo "routefs shared-state bench: N=$N jobs one at a time, sim latency 0, max_concurrent $MC, redis on 127.0.0.1:$RPORT"

write_config "$WORK/local.json" ""
bench_mount "$WORK/local.json"
run_jobs local
bench_unmount

rm -rf "$STATE" && mkdir -p "$STATE"
write_config "$WORK/shared.json" "\"shared\": {\"redis\": \"redis://127.0.0.1:$RPORT/0\", \"prefix\": \"bench-$$\"},"
bench_mount "$WORK/shared.json"
for _ in $(seq 100); do jq -e '.shared.state == "connected"' "$MNT/providers.json" >/dev/null 2>&1 && break; sleep 0.05; done
rt0=$(metric routefs_shared_round_trips_total) cmd0=$(metric routefs_shared_commands_total)
t0=$(now_ns)
run_jobs shared
secs=$(awk -v ns="$(( $(now_ns) - t0 ))" 'BEGIN { printf "%.3f", ns / 1e9 }')
rt1=$(metric routefs_shared_round_trips_total) cmd1=$(metric routefs_shared_commands_total)
rtt=$(metric routefs_shared_rtt_p50_seconds)
bench_unmount

l50=$(pct 50 <"$WORK/local.times") l90=$(pct 90 <"$WORK/local.times")
s50=$(pct 50 <"$WORK/shared.times") s90=$(pct 90 <"$WORK/shared.times")
syncs=$(awk -v s="$secs" 'BEGIN { printf "%d", s / 0.5 }')   # breaker_sync_ms 500
printf '%-46s %10s µs\n' "per job, local state: median" "$l50"
printf '%-46s %10s µs\n' "per job, local state: p90" "$l90"
printf '%-46s %10s µs\n' "per job, shared state: median" "$s50"
printf '%-46s %10s µs\n' "per job, shared state: p90" "$s90"
printf '%-46s %10s µs\n' "added by shared state (median difference)" "$((s50 - l50))"
printf '%-46s %10s µs\n' "Redis round trip p50 (metrics.prom)" "$(awk -v r="$rtt" 'BEGIN { printf "%.0f", r * 1e6 }')"
awk -v a="$rt0" -v b="$rt1" -v c="$cmd0" -v d="$cmd1" -v n="$N" -v s="$syncs" 'BEGIN {
    printf "%-46s %10.2f\n", "Redis round trips per job (less periodic syncs)", (b - a - s) / n
    printf "%-46s %10.2f\n", "Redis commands per job (all)", (d - c) / n
    printf "%-46s %10d\n", "periodic syncs during the run (every 500 ms)", s
}'

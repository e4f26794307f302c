#!/usr/bin/env bash
# routefs outage benchmark (a script, not a test): what a dead primary costs a batch.
#
#   bash tests/bench/outage.sh [N [L [C [T]]]]     or   N=1000 L=50 C=64 T=250 make bench-outage
#   REPEAT=3: each batch runs that many times, interleaved; the median wall time counts
#     N  prompts per batch (default 1000)       L  simulated latency of the healthy hops (50 ms)
#     C  tier concurrency (default 64)           T  tier timeout_ms, the latency tolerance (250)
#
# Three batches of N prompts through a two-hop route (primary, then secondary):
#   healthy    the primary answers
#   blackhole  the primary accepts connections and never answers (sim mode "hang")
#   refused    the primary's port is closed
# and prints each batch's wall time and its ratio to the healthy batch.  Once a primary's
# circuit breaker is open its hop is skipped, so a dead provider should cost a batch about
# one timeout (blackhole) or nothing (refused); the target is a ratio of at most 1.2.
set -euo pipefail

N=${1:-${N:-1000}}
L=${2:-${L:-50}}
C=${3:-${C:-64}}
T=${4:-${T:-250}}
REPEAT=${REPEAT:-3}
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD="$ROOT/$BUILD"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
bench_init
bench_start_sim --latency-ms "$L"
bench_prompts "$N"

# A port nothing listens on: bind one, note it, close it.
CLOSED=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

run_batch() {   # run_batch NAME PRIMARY_BASE_URL ROUND
    local name=$1 primary=$2
    # A fresh state directory per batch, all removed at the end: deleting one between
    # batches would slow the next batch's file creation (ext4 without a journal scans past
    # recently deleted inodes) and bias the comparison.
    STATE="$WORK/state.$name.$3"
    mkdir -p "$STATE"
    cat >"$WORK/$name.json" <<JSON
{
  "providers": {"primary": {"base_url": "$primary"},
                "secondary": {"base_url": "http://127.0.0.1:$PORT/v1"}},
  "tiers": {"batch": {"route": [{"provider": "primary", "model": "sim/primary"},
                                {"provider": "secondary", "model": "sim/secondary"}],
                      "concurrency": $C, "retries": 1, "timeout_ms": $T, "max_tokens": 64}}
}
JSON
    bench_mount "$WORK/$name.json"
    bench_copy_and_read batch
    local served_secondary
    served_secondary=$(find "$MNT/batch" -maxdepth 1 -name '*.meta' -print0 | xargs -0 cat \
                       | jq -s '[.[] | select(.endpoint == "secondary")] | length')
    local breaker retried
    breaker=$(jq -r '.providers.primary.breaker // "n/a"' "$MNT/providers.json")
    retried=$(find "$MNT/batch" -maxdepth 1 -name '*.meta' -print0 | xargs -0 cat \
              | jq -s '[.[] | select((.hops | length) > 1)] | length')
    bench_unmount
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$t_fs" "$failed" "$served_secondary" "$breaker" \
        "$retried" >>"$WORK/results.tsv"
}

echo "routefs outage bench: N=$N, L=${L} ms, C=$C, tier timeout ${T} ms, median of $REPEAT runs"
: >"$WORK/results.tsv"
# Interleaved, so that a noisy moment on the machine hits every kind of batch alike.
for ((r = 1; r <= REPEAT; r++)); do
    curl -sf -X POST "http://127.0.0.1:$PORT/control/reset" >/dev/null
    run_batch healthy "http://127.0.0.1:$PORT/v1" "$r"
    curl -sf -X POST "http://127.0.0.1:$PORT/control/behaviour" \
         -d '{"model": "sim/primary", "mode": "hang"}' >/dev/null
    run_batch blackhole "http://127.0.0.1:$PORT/v1" "$r"
    run_batch refused "http://127.0.0.1:$CLOSED/v1" "$r"
done
# One line per kind: the run with the median wall time.
for kind in healthy blackhole refused; do
    awk -F'\t' -v k="$kind" '$1 == k' "$WORK/results.tsv" | sort -t$'\t' -k2,2n \
        | awk -v m=$(( (REPEAT + 1) / 2 )) 'NR == m'
done >"$WORK/median.tsv"
mv "$WORK/median.tsv" "$WORK/results.tsv"

healthy_ms=$(awk -F'\t' '$1 == "healthy" { print $2 }' "$WORK/results.tsv")
echo
printf '%-10s %10s %8s %14s %10s %12s %8s\n' batch "wall ms" failed "via secondary" "breaker" ">1 attempt" ratio
awk -F'\t' -v h="$healthy_ms" '{ printf "%-10s %10s %8s %14s %10s %12s %8.2f\n", $1, $2, $3, $4, $5, $6, (h > 0 ? $2 / h : 0) }' \
    "$WORK/results.tsv"
echo
# shellcheck disable=SC2017  # ceil(N/C), then times L: the division must come first
echo "physical limit of one batch: ceil(N/C)*L = $(( (N + C - 1) / C * L )) ms"

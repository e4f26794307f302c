#!/usr/bin/env bash
# routefs throughput / overhead benchmark (a script, not a test).
#
#   bash tests/bench/bench.sh [N [L [C]]]      or   N=1000 L=50 C=64 make bench
#     N  prompts (default 1000)
#     L  simulated provider latency in ms (default 50)
#     C  tier concurrency, also curl's --parallel-max (default 64)
#
# 1. Mounts routefs on a fresh directory outside /tmp against routefs-sim (latency L) with
#    one tier of concurrency C, copies N small prompts into it and reads every .out:
#    wall time vs the physical limit ceil(N/C)*L.
# 2. Sends the same N requests straight to the sim with curl --parallel --parallel-max C.
# 3. Median per-request overhead: median(meta finished_at - created_at) minus the median
#    direct curl time_total; and routefs's own share per job (created->finished minus the
#    served hop's latency_ms).
# 4. Concurrency 1: SERIAL (default 30) prompts one at a time (write it, read its .out)
#    against as many requests one at a time straight to the sim: the added latency.
#
# The mount's state directory lives under BENCH_TMPDIR (default /var/tmp: a real disk, as
# in use).  BENCH_TMPDIR=/dev/shm shows routefs without the disk: with the state in one
# SQLite database committed in groups it gives about the same figures, so the gap to the
# physical limit is CPU (routefs, the simulator, cp and the readers share the machine).
set -euo pipefail

N=${1:-${N:-1000}}
L=${2:-${L:-50}}
C=${3:-${C:-64}}
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD="$ROOT/$BUILD"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
bench_init
bench_start_sim --latency-ms "$L"

cat >"$WORK/config.json" <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:$PORT/v1"}},
  "tiers": {"bench": {"route": ["sim/bench"], "concurrency": $C, "retries": 0,
                      "timeout_ms": 60000, "max_tokens": 64}}
}
JSON
bench_mount "$WORK/config.json"
bench_prompts "$N"

echo "routefs bench: N=$N prompts, L=${L} ms simulated latency, C=$C concurrency"
echo "state directory on $(stat -f -c %T "$STATE") ($WORK)"

bench_copy_and_read bench

batches=$(( (N + C - 1) / C ))
limit=$(( batches * L ))

# Per-job latency from the metadata: finished_at - created_at (ms), and the served hop's
# latency_ms.  Timestamps may be epoch seconds/milliseconds or ISO-8601 strings.
find "$MNT/bench" -maxdepth 1 -name '*.meta' -print0 | xargs -0 cat | jq -r '
  def ts: if type == "number" then (if . > 1e12 then . / 1000 else . end)
          elif type == "string" then
            (capture("^(?<b>[^.Z+]*)(\\.(?<f>[0-9]+))?") as $c
             | (($c.b + "Z") | fromdateiso8601) + (if $c.f then ("0." + $c.f | tonumber) else 0 end))
          else null end;
  select(.state == "done")
  | [ (((.finished_at | ts) - (.created_at | ts)) * 1000),
      ([.hops[] | select(.status == 200) | .latency_ms] | last // 0) ]
  | @tsv' >"$WORK/jobs.tsv" 2>"$WORK/jq.err" || true

job_med=$(cut -f1 "$WORK/jobs.tsv" | median)
own_med=$(awk -F'\t' '{ printf "%.3f\n", $1 - $2 }' "$WORK/jobs.tsv" | median)

# --- the same requests straight to the sim -------------------------------------------
URL="http://127.0.0.1:$PORT/v1/chat/completions"
# The request body as a quoted string for curl's config syntax (JSON string escapes are
# curl's too); ITEM is replaced per request.
tmpl=$(jq -cn '{model: "sim/direct", max_tokens: 64,
                 messages: [{role: "user", content: "Summarise item ITEM in one line.\n"}]}
               | tojson')
for ((i = 1; i <= N; i++)); do
    printf 'url = "%s"\nheader = "Content-Type: application/json"\ndata = %s\noutput = "/dev/null"\nwrite-out = "%%{time_total}\\n"\n' \
        "$URL" "${tmpl/ITEM/$i}"
    if [ "$i" -lt "$N" ]; then echo next; fi
done >"$WORK/curl.cfg"
t0=$(now_ns)
curl -s --no-progress-meter --parallel --parallel-max "$C" -K "$WORK/curl.cfg" \
    >"$WORK/curl.times" 2>"$WORK/curl.err" || true
t_direct=$(ms_since "$t0")
direct_med=$(awk '{ printf "%.3f\n", $1 * 1000 }' "$WORK/curl.times" | median)
direct_n=$(wc -l <"$WORK/curl.times")

# --- concurrency 1: one prompt at a time, against one request at a time -----------------
# K prompts, each written and its .out read before the next; then K requests straight to
# the sim over one kept-alive connection.  Same client (python) for both.
K=${SERIAL:-30}
python3 - "$MNT/bench" "$PORT" "$K" >"$WORK/serial.txt" <<'PY'
import http.client, json, os, statistics, sys, time
tier, port, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fs = []
for i in range(k):
    p = os.path.join(tier, "serial-%03d.txt" % i)
    t = time.monotonic()
    with open(p, "w") as f:
        f.write("Summarise serial item %d in one line.\n" % i)
    with open(p + ".out") as f:
        f.read()
    fs.append((time.monotonic() - t) * 1000)
conn = http.client.HTTPConnection("127.0.0.1", port)
direct = []
for i in range(k):
    body = json.dumps({"model": "sim/direct", "max_tokens": 64, "messages": [
        {"role": "user", "content": "Summarise serial item %d in one line.\n" % i}]})
    t = time.monotonic()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    conn.getresponse().read()
    direct.append((time.monotonic() - t) * 1000)
print("%.1f %.1f" % (statistics.median(fs), statistics.median(direct)))
PY
read -r serial_fs serial_direct <"$WORK/serial.txt" || { serial_fs=n/a; serial_direct=n/a; }
serial_added=$(awk -v a="$serial_fs" -v b="$serial_direct" 'BEGIN { if (a + 0 > 0) printf "%.1f", a - b; else print "n/a" }')

overhead="n/a"
if [[ $job_med != n/a && $direct_med != n/a ]]; then
    overhead=$(awk -v a="$job_med" -v b="$direct_med" 'BEGIN { printf "%.1f", a - b }')
fi
ratio=$(awk -v a="$t_fs" -v b="$limit" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
dratio=$(awk -v a="$t_direct" -v b="$limit" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')

echo
printf '%-44s %12s\n' "measure" "value"
printf '%-44s %12s\n' "--------------------------------------------" "------------"
printf '%-44s %10s ms\n' "routefs: cp of $N prompts" "$t_cp"
printf '%-44s %10s ms\n' "routefs: cp + every .out read (wall)" "$t_fs"
printf '%-44s %10s ms\n' "physical limit ceil(N/C)*L" "$limit"
printf '%-44s %12s\n'    "routefs wall / limit" "$ratio"
printf '%-44s %10s ms\n' "direct curl, $direct_n requests (wall)" "$t_direct"
printf '%-44s %12s\n'    "direct wall / limit" "$dratio"
printf '%-44s %10s ms\n' "median job latency (meta finished-created)" "$job_med"
printf '%-44s %10s ms\n' "median direct request (curl time_total)" "$direct_med"
printf '%-44s %10s ms\n' "median per-request overhead (difference)" "$overhead"
printf '%-44s %10s ms\n' "median routefs own time (job - hop latency)" "$own_med"
printf '%-44s %10s ms\n' "concurrency 1: write + read .out (median)" "$serial_fs"
printf '%-44s %10s ms\n' "concurrency 1: direct request (median)" "$serial_direct"
printf '%-44s %10s ms\n' "concurrency 1: added latency" "$serial_added"
printf '%-44s %12s\n'    "failed jobs" "$failed"
if [ "$N" -gt "$C" ]; then
    echo
    echo "note: N > C: jobs that wait in the tier's queue count that wait in their latency."
    echo "      Run with N <= C (e.g. N=$C) for a pure per-request overhead figure."
fi
if [ -s "$WORK/jq.err" ]; then
    echo "note: some metadata could not be parsed: $(head -n1 "$WORK/jq.err")"
fi

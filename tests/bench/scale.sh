#!/usr/bin/env bash
# routefs scale benchmark (a script, not a test): a large batch on a real disk, then a
# state of a million finished jobs.
#
#   bash tests/bench/scale.sh [N [L [C [M]]]]   or   N=20000 L=200 C=500 M=1000000 make bench-scale
#     N  prompts in the batch (default 20000)     L  simulated latency in ms (default 200)
#     C  tier concurrency (default 500)           M  finished jobs in the big state (1000000)
#
# 1. Mounts routefs (state under BENCH_TMPDIR, default /var/tmp: a real disk, not tmpfs),
#    copies N prompts into one tier of concurrency C and reads every .out.  Prints the wall
#    time against the physical limit ceil(N/C)*L, the daemon's CPU time per job (and by
#    thread), the simulator's, and what the whole machine was busy against what it had
#    (nproc x wall: when the two meet, the batch is CPU-bound), the state
#    directory's allocated bytes per finished job (du, mounted and after unmount), and the
#    daemon's RSS after the batch.
# 2. Builds a state of M finished jobs directly in the database: the batch's own rows
#    (prompts with their results, ledger records, activity lines) copied with new paths and
#    generations by the sqlite3 shell, and the day totals rebuilt from the ledger.  Checks
#    that the mount lists and reads them (a full listing of the tier, results compared with
#    the database), and prints the time to mount (mountpoint ready) and the RSS.
#
# Targets (issue 10): wall <= 1.3x the limit, <= 4 KiB per job, RSS <= 64 MB with 1M jobs,
# mount < 1 s.
set -euo pipefail

N=${1:-${N:-20000}}
L=${2:-${L:-200}}
C=${3:-${C:-500}}
M=${4:-${M:-1000000}}
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD="$ROOT/$BUILD"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
# The big state is the batch's own rows plus copies up to M: it cannot hold fewer.
if (( M < N )); then
    echo "bench: M ($M) must be at least N ($N): the big state is the batch plus copies" >&2
    exit 2
fi
command -v sqlite3 >/dev/null || { echo "bench: sqlite3 is missing (apt-get install sqlite3)" >&2; exit 1; }
bench_init
bench_start_sim --latency-ms "$L" --threads 4

cat >"$WORK/config.json" <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:$PORT/v1"}},
  "prices": {"sim/bench": {"prompt": 1.0, "completion": 2.0}},
  "tiers": {"bench": {"route": ["sim/bench"], "concurrency": $C, "retries": 0,
                      "timeout_ms": 120000, "max_tokens": 64}}
}
JSON

# cpu_ticks PID — user + system CPU time of PID so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# thread_ticks PID NAME — the same for PID's live threads named NAME (rfs-store, ...).
thread_ticks() {
    local t sum=0
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] || continue
        sum=$(( sum + $(sed 's/.*) //' "$t/stat" | awk '{ print $12 + $13 }') ))
    done
    echo "$sum"
}
# busy_ticks — CPU time the whole machine spent busy (user, nice, system, irq, softirq).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
db() { sqlite3 -cmd ".timeout 10000" "$STATE/routefs.db" "$@"; }

# mount_timed — mount, polling every 5 ms; sets t_mount (ms from exec to mountpoint ready).
mount_timed() {
    local t0
    t0=$(now_ns)
    "$ROUTEFS" "$MNT" --config "$WORK/config.json" --state "$STATE" --log "$WORK/routefs.log" \
        -f </dev/null >>"$WORK/routefs.stderr" 2>&1 3>&- &
    RFS_PID=$!
    for _ in $(seq 4000); do
        mountpoint -q "$MNT" && break
        kill -0 "$RFS_PID" 2>/dev/null || break
        sleep 0.005
    done
    t_mount=$(ms_since "$t0")
    mountpoint -q "$MNT" || { echo "bench: routefs did not mount" >&2; cat "$WORK/routefs.stderr" >&2; exit 1; }
}

echo "routefs bench-scale: N=$N prompts, L=${L} ms, C=$C; then a state of M=$M finished jobs"
echo "state directory on $(stat -f -c %T "$STATE") ($WORK)"
bench_prompts "$N"

# --- 1. the batch ------------------------------------------------------------------------
mount_timed
cpu0=$(cpu_ticks "$RFS_PID")
sim0=$(cpu_ticks "$SIM_PID")
busy0=$(busy_ticks)
store0=$(thread_ticks "$RFS_PID" rfs-store)
up0=$(thread_ticks "$RFS_PID" rfs-upstream)
bench_copy_and_read bench
cpu1=$(cpu_ticks "$RFS_PID")
sim1=$(cpu_ticks "$SIM_PID")
busy1=$(busy_ticks)
store1=$(thread_ticks "$RFS_PID" rfs-store)
up1=$(thread_ticks "$RFS_PID" rfs-upstream)
sleep 1   # the last group commits
rss_batch=$(rss_kib "$RFS_PID")
du_mounted=$(du -sB1 "$STATE" | cut -f1)
done_jobs=$(db "SELECT count(*) FROM prompts WHERE state = 3")
bench_unmount
du_unmounted=$(du -sB1 "$STATE" | cut -f1)
hz=$(getconf CLK_TCK)
batches=$(( (N + C - 1) / C ))
limit=$(( batches * L ))
ratio=$(awk -v a="$t_fs" -v b="$limit" 'BEGIN { printf "%.2f", a / b }')
cpu_job=$(awk -v t=$((cpu1 - cpu0)) -v hz="$hz" -v n="$N" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
# us per job of CPU ticks T
us_job() { awk -v t="$1" -v hz="$hz" -v n="$N" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }'; }
store_job=$(us_job $((store1 - store0)))
up_job=$(us_job $((up1 - up0)))
rest_job=$(us_job $(( (cpu1 - cpu0) - (store1 - store0) - (up1 - up0) )))
sim_job=$(us_job $((sim1 - sim0)))
busy_job=$(us_job $((busy1 - busy0)))
avail_job=$(awk -v w="$t_fs" -v c="$(nproc)" -v n="$N" 'BEGIN { printf "%.0f", w * 1000 * c / n }')
per_job_m=$(awk -v b="$du_mounted" -v n="$N" 'BEGIN { printf "%.0f", b / n }')
per_job_u=$(awk -v b="$du_unmounted" -v n="$N" 'BEGIN { printf "%.0f", b / n }')

# --- 2. a million finished jobs ----------------------------------------------------------
# Copies of the batch's rows: every column as routefs wrote it, new path, name, generation.
t0=$(now_ns)
db >/dev/null <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
BEGIN;
-- the templates: rowid 1..n, so each copy finds its template by rowid
CREATE TEMP TABLE src AS SELECT * FROM prompts WHERE state = 3 AND dir = 'bench' ORDER BY id;
CREATE TEMP TABLE lsrc AS SELECT * FROM ledger ORDER BY id;
CREATE TEMP TABLE asrc AS SELECT * FROM activity ORDER BY seq;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $M - (SELECT count(*) FROM prompts))
INSERT INTO prompts(path, dir, name, gen, state, writing, size, hash, mode, uid, gid,
                    atime_ns, mtime_ns, ctime_ns, created_ms, finished_ms, park_count,
                    next_attempt_ms, sent, out_size, meta, err, out, data)
SELECT 'bench/m' || printf('%07d', i), 'bench', 'm' || printf('%07d', i),
       (SELECT max(gen) FROM prompts) + i, s.state, 0, s.size, s.hash, s.mode, s.uid, s.gid,
       s.atime_ns, s.mtime_ns, s.ctime_ns, s.created_ms, s.finished_ms, 0, 0, s.sent,
       s.out_size, s.meta, s.err, s.out, s.data
FROM n JOIN src s ON s.rowid = 1 + i % (SELECT count(*) FROM src);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $M - (SELECT count(*) FROM ledger))
INSERT INTO ledger(ref, at_ms, path, tier, tag, provider, model, upstream, cost_nusd,
                   estimated, note, prompt_tokens, completion_tokens, host)
SELECT 'bench/m' || printf('%07d', i) || '#' || i, s.at_ms, 'bench/m' || printf('%07d', i),
       s.tier, s.tag, s.provider, s.model, s.upstream, s.cost_nusd, s.estimated, s.note,
       s.prompt_tokens, s.completion_tokens, s.host
FROM n JOIN lsrc s ON s.rowid = 1 + i % (SELECT count(*) FROM lsrc);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $M - (SELECT count(*) FROM activity))
INSERT INTO activity(off, at_ms, line)
SELECT 0, s.at_ms, s.line FROM n JOIN asrc s ON s.rowid = 1 + i % (SELECT count(*) FROM asrc);
DELETE FROM spend_days;
INSERT INTO spend_days(day, tier, tag, provider, model, upstream, nusd, requests, unpriced, estimated)
SELECT at_ms / 86400000, tier, coalesce(tag, ''), provider, model, coalesce(upstream, ''),
       sum(coalesce(cost_nusd, 0)), count(*), sum(cost_nusd IS NULL), sum(estimated)
FROM ledger GROUP BY 1, 2, 3, 4, 5, 6;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
# activity offsets: each line's byte offset in activity.jsonl (a running sum)
db >/dev/null <<'SQL'
BEGIN;
CREATE TEMP TABLE offs(seq INTEGER PRIMARY KEY, off INTEGER NOT NULL);
INSERT INTO offs SELECT seq, coalesce(sum(length(CAST(line AS BLOB))) OVER
    (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) FROM activity;
UPDATE activity SET off = offs.off FROM offs WHERE offs.seq = activity.seq;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
t_build=$(ms_since "$t0")
big_jobs=$(db "SELECT count(*) FROM prompts WHERE state = 3")
big_ledger=$(db "SELECT count(*) FROM ledger")
big_bytes=$(du -sB1 "$STATE" | cut -f1)

# Mount it three times (the first also warms the page cache); the median counts.
mounts=()
for _ in 1 2 3; do
    mount_timed
    mounts+=("$t_mount")
    rss_mount=$(rss_kib "$RFS_PID")
    [ ${#mounts[@]} -lt 3 ] && bench_unmount
done
t_mount_med=$(printf '%s\n' "${mounts[@]}" | median)

# Does the mount list and read them?  A full listing of the tier, and results compared
# with the database.
t0=$(now_ns)
listed=$(find "$MNT/bench" -mindepth 1 -maxdepth 1 -printf x | wc -c)
t_list=$(ms_since "$t0")
want_listed=$(( big_jobs * 3 ))
read_bad=0
for k in 1 $((M / 3)) $((M / 2)) $((M - N - 1)); do
    name=$(printf 'm%07d' "$k")
    want=$(db "SELECT hex(out) FROM prompts WHERE path = 'bench/$name'")
    got=$(timeout 20 cat "$MNT/bench/$name.out" | od -An -v -tx1 | tr -d ' \n' | tr a-f A-F)
    [ -n "$want" ] && [ "$got" = "$want" ] || read_bad=$((read_bad + 1))
    jq -e '.state == "done"' "$MNT/bench/$name.meta" >/dev/null || read_bad=$((read_bad + 1))
done
spend_requests=$(jq '.requests.total' "$MNT/spend.json")
rss_after=$(rss_kib "$RFS_PID")
bench_unmount

echo
printf '%-52s %14s\n' "measure" "value"
printf '%-52s %14s\n' "----------------------------------------------------" "--------------"
printf '%-52s %11s ms\n' "batch: cp + every .out read (wall)" "$t_fs"
printf '%-52s %11s ms\n' "  of it: cp of the prompts into the tier" "$t_cp"
printf '%-52s %11s ms\n' "physical limit ceil(N/C)*L" "$limit"
printf '%-52s %14s\n'    "wall / limit (target <= 1.3)" "$ratio"
printf '%-52s %14s\n'    "finished jobs in the store" "$done_jobs"
printf '%-52s %11s us\n' "daemon CPU time per job (user + system)" "$cpu_job"
printf '%-52s %14s\n'    "  of it: store / upstream / FUSE and the rest (us)" "$store_job / $up_job / $rest_job"
printf '%-52s %11s us\n' "simulator CPU time per job" "$sim_job"
printf '%-52s %14s\n'    "machine busy / available per job (us, nproc x wall)" "$busy_job / $avail_job"
printf '%-52s %8s bytes\n' "state allocated per job, mounted (du / N)" "$per_job_m"
printf '%-52s %8s bytes\n' "state allocated per job, unmounted (target <= 4096)" "$per_job_u"
printf '%-52s %11s MB\n' "daemon RSS after the batch" "$(mib "$rss_batch")"
printf '%-52s %14s\n'    "failed jobs" "$failed"
printf '%-52s %11s ms\n' "big state: built in" "$t_build"
printf '%-52s %14s\n'    "big state: finished jobs / ledger records" "$big_jobs / $big_ledger"
printf '%-52s %11s MB\n' "big state: database size" "$(mib $((big_bytes / 1024)))"
printf '%-52s %11s ms\n' "big state: time to mount, median of 3 (target < 1000)" "$t_mount_med"
printf '%-52s %14s\n'    "big state: mounts (ms)" "${mounts[*]}"
printf '%-52s %11s MB\n' "big state: RSS after mount (target <= 64)" "$(mib "$rss_mount")"
printf '%-52s %11s ms\n' "big state: full listing of the tier" "$t_list"
printf '%-52s %14s\n'    "big state: entries listed / expected" "$listed / $want_listed"
printf '%-52s %14s\n'    "big state: results read back wrong" "$read_bad"
printf '%-52s %14s\n'    "big state: spend.json requests" "$spend_requests"
printf '%-52s %11s MB\n' "big state: RSS after listing and reads" "$(mib "$rss_after")"

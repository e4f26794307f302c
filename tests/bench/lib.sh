# shellcheck shell=bash
# Shared pieces of the benchmark scripts: a work dir outside /tmp, routefs-sim, a mount,
# cleanup on exit.  Source after setting ROOT (the repository) and BUILD.
#
#   bench_init                 make $WORK ($MNT, $STATE, $SRC), install the cleanup trap
#   bench_start_sim [ARGS...]  start routefs-sim; sets PORT
#   bench_mount CONFIG         mount routefs on $MNT with CONFIG (foreground, background job)
#   bench_unmount              unmount and wait for the daemon
#   bench_prompts N            write N small prompts into $SRC
#   bench_copy_and_read TIER   cp every prompt into $MNT/TIER and read every .out; sets
#                              t_cp, t_fs (ms) and failed (count of .err).  COPY_JOBS cp
#                              processes at once (default 1), COPY_BATCH files each (5000)
#   median                     median of numbers on stdin

ROUTEFS="$BUILD/routefs"
SIM="$BUILD/routefs-sim"

now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }

median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bench_init() {
    for b in "$ROUTEFS" "$SIM"; do
        [ -x "$b" ] || { echo "bench: $b is missing; run make first" >&2; exit 1; }
    done
    for t in jq curl mountpoint fusermount3; do
        command -v "$t" >/dev/null || { echo "bench: $t is missing (sh tests/install-deps.sh)" >&2; exit 1; }
    done
    WORK=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/routefs-bench.XXXXXX")
    MNT="$WORK/mnt"
    STATE="$WORK/state"
    SRC="$WORK/src"
    mkdir -p "$MNT" "$STATE" "$SRC"
    SIM_PID=""
    RFS_PID=""
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

_bench_stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

bench_unmount() {
    if grep -qF " $MNT " /proc/self/mounts; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
    fi
    _bench_stop_pid "$RFS_PID"
    RFS_PID=""
}

bench_cleanup() {
    set +e
    bench_unmount
    _bench_stop_pid "$SIM_PID"
    if ! grep -qF " $MNT " /proc/self/mounts; then
        rm -rf --one-file-system "$WORK"
    fi
}

bench_start_sim() {
    "$SIM" --port 0 --port-file "$WORK/sim.port" --quiet "$@" \
        </dev/null >"$WORK/sim.log" 2>&1 &
    SIM_PID=$!
    PORT=""
    for _ in $(seq 100); do
        PORT=$(cat "$WORK/sim.port" 2>/dev/null || true)
        [[ $PORT =~ ^[0-9]+$ ]] && break
        PORT=""
        sleep 0.05
    done
    [ -n "$PORT" ] || { echo "bench: routefs-sim did not start" >&2; cat "$WORK/sim.log" >&2; exit 1; }
}

bench_mount() {
    "$ROUTEFS" "$MNT" --config "$1" --state "$STATE" --log "$WORK/routefs.log" -f \
        </dev/null >"$WORK/routefs.stderr" 2>&1 3>&- &
    RFS_PID=$!
    for _ in $(seq 200); do
        mountpoint -q "$MNT" && break
        kill -0 "$RFS_PID" 2>/dev/null || break
        sleep 0.05
    done
    mountpoint -q "$MNT" || { echo "bench: routefs did not mount" >&2; cat "$WORK/routefs.stderr" >&2; exit 1; }
}

bench_prompts() {
    local i f
    for ((i = 1; i <= $1; i++)); do
        printf -v f 'p%06d.txt' "$i"
        printf 'Summarise item %d in one line.\n' "$i" >"$SRC/$f"
    done
}

# shellcheck disable=SC2034  # t_cp, t_fs, failed: results for the caller (see the top)
bench_copy_and_read() {
    local tier=$1 t0 read_rc
    t0=$(now_ns)
    # COPY_JOBS cp processes at once (default 1: one cp, as a shell user would run it)
    (cd "$SRC" && find . -maxdepth 1 -name '*.txt' -print0 |
        xargs -0 -P "${COPY_JOBS:-1}" -n "${COPY_BATCH:-5000}" cp -t "$MNT/$tier/")
    t_cp=$(ms_since "$t0")
    set +e
    (cd "$SRC" && find . -maxdepth 1 -name '*.txt' -printf '%f.out\0' \
        | (cd "$MNT/$tier" && xargs -0 -P 64 -n 16 timeout 600 cat >/dev/null))
    read_rc=$?
    set -e
    t_fs=$(ms_since "$t0")
    failed=$(find "$MNT/$tier" -maxdepth 1 -name '*.err' | wc -l)
    if [ "$read_rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
        echo "bench: warning: $failed job(s) failed, reading results exited $read_rc" >&2
    fi
}

#!/bin/sh
# `make run`: mount routefs at ./mnt.  With OPENROUTER_API_KEY set, route through
# OpenRouter (examples/openrouter.json); without it, run offline against the bundled
# simulator (examples/demo.json with the simulator's port filled in).
# `make stop` (sh tests/run-demo.sh stop): unmount ./mnt and stop the simulator.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
MNT="$ROOT/mnt"
DEMO="$ROOT/.demo"
ROUTEFS="$BUILD/routefs"
SIM="$BUILD/routefs-sim"

# Is $1 a mount point in the mount table (also true for a dead FUSE mount)?
in_mount_table() {
    awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts
}

sim_running() {
    [ -f "$DEMO/sim.pid" ] || return 1
    pid=$(cat "$DEMO/sim.pid" 2>/dev/null)
    case $pid in ''|*[!0-9]*) return 1 ;; esac
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q routefs-sim
}

stop_sim() {
    if sim_running; then
        pid=$(cat "$DEMO/sim.pid")
        kill "$pid" 2>/dev/null
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$pid" 2>/dev/null
        echo "stopped routefs-sim (pid $pid)"
    fi
    rm -f "$DEMO/sim.pid" "$DEMO/sim.port"
}

do_stop() {
    if in_mount_table "$MNT"; then
        if fusermount3 -u "$MNT" 2>/dev/null; then
            echo "unmounted ./mnt"
        else
            fusermount3 -u -z "$MNT" && echo "unmounted ./mnt (lazily: something still had it open)"
        fi
    else
        echo "./mnt is not mounted"
    fi
    stop_sim
    exit 0
}

[ "${1:-}" = stop ] && do_stop

if mountpoint -q "$MNT" 2>/dev/null; then
    echo "routefs is already mounted at ./mnt (make stop to unmount it)"
    exit 0
fi
if in_mount_table "$MNT"; then
    echo "./mnt is a dead mount (the daemon is gone): unmounting it first"
    fusermount3 -u -z "$MNT" 2>/dev/null
fi

for b in "$ROUTEFS" "$SIM"; do
    if [ ! -x "$b" ]; then
        echo "error: $b is missing; run make first" >&2
        exit 1
    fi
done
mkdir -p "$MNT" "$DEMO"

if [ -n "${OPENROUTER_API_KEY:-}" ]; then
    STATE="$DEMO/state"
    mkdir -p "$STATE"
    if ! "$ROUTEFS" "$MNT" --config "$ROOT/examples/openrouter.json" --state "$STATE" \
            --log "$DEMO/routefs.log" </dev/null; then
        echo "error: routefs failed to mount ./mnt (see above and .demo/routefs.log)" >&2
        exit 1
    fi
    echo "OPENROUTER_API_KEY is set: routing through OpenRouter (examples/openrouter.json)"
    echo "mounted at ./mnt; state in .demo/state, log in .demo/routefs.log"
else
    if sim_running && [ -s "$DEMO/sim.port" ]; then
        PORT=$(cat "$DEMO/sim.port")
    else
        rm -f "$DEMO/sim.port" "$DEMO/sim.pid"
        if command -v setsid >/dev/null 2>&1; then DETACH=setsid; else DETACH=; fi
        $DETACH "$SIM" --port 0 --port-file "$DEMO/sim.port" --latency-ms 300 \
            </dev/null >"$DEMO/sim.log" 2>&1 &
        echo $! >"$DEMO/sim.pid"
        i=0
        PORT=
        while [ $i -lt 50 ]; do
            PORT=$(cat "$DEMO/sim.port" 2>/dev/null)
            case $PORT in ''|*[!0-9]*) PORT= ;; *) break ;; esac
            sleep 0.1
            i=$((i + 1))
        done
        if [ -z "$PORT" ]; then
            echo "error: routefs-sim did not start within 5 s (see .demo/sim.log)" >&2
            stop_sim >/dev/null
            exit 1
        fi
    fi
    STATE="$DEMO/state-offline"
    mkdir -p "$STATE"
    sed "s/SIM_PORT/$PORT/g" "$ROOT/examples/demo.json" >"$DEMO/demo.json"
    if ! "$ROUTEFS" "$MNT" --config "$DEMO/demo.json" --state "$STATE" \
            --log "$DEMO/routefs.log" </dev/null; then
        echo "error: routefs failed to mount ./mnt (see above and .demo/routefs.log)" >&2
        stop_sim >/dev/null
        exit 1
    fi
    echo "No OPENROUTER_API_KEY: running offline against the bundled simulator (routefs-sim on 127.0.0.1:$PORT)"
    echo "mounted at ./mnt; config .demo/demo.json, state in .demo/state-offline, log in .demo/routefs.log"
fi

# Wait (briefly) until the mount answers, so the session below works at once.
i=0
while ! mountpoint -q "$MNT" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done

cat <<'TRY'

Try this:
  ls mnt/                                                  # one directory per tier, plus status files
  echo "Explain FUSE in one sentence." > mnt/lightweight/q.txt && cat mnt/lightweight/q.txt.out
  jq '{state, provider, model, fallback, hops, cost}' mnt/lightweight/q.txt.meta
  cat mnt/status; jq . mnt/spend.json                      # jobs, provider health, spend vs caps
  make stop                                                # unmount and stop the simulator
TRY

# shellcheck shell=bash
# Helpers for routefs end-to-end tests: a real mount against routefs-sim.
#
#   setup()    { rfs_setup; }          fresh dir outside /tmp (mnt/, state/), sim started
#   rfs_config <<'JSON' ... JSON       write $RFS_DIR/config.json; SIM_PORT and CLOSED_PORT
#                                      in the text are replaced by the sim's port and a closed one
#   rfs_mount [ARGS...]                mount $MNT in the background (-f, fd 3 closed), bounded wait
#   rfs_unmount                        unmount and wait for the daemon to exit (bounded)
#   teardown() { rfs_teardown; }       unmount, stop routefs and the sim, remove the dir
#   sim_behave MODEL JSON, sim_reset, sim_stats, sim_count MODEL, sim_total,
#   sim_last_body MODEL, sim_last_auth MODEL
#   sim_models_set JSON, sim_key_set JSON, sim_charged [MODEL], sim_model_stat MODEL KEY,
#   sim_arrivals MODEL, sim_endpoint_count NAME, sim_generation ID [AUTH], sim_sse BODY ...
#   wait_for SECONDS CMD...            poll CMD every 50 ms until it succeeds or time runs out

if [ -f /usr/lib/bats/bats-support/load.bash ]; then
    load /usr/lib/bats/bats-support/load
    load /usr/lib/bats/bats-assert/load
else
    load "${BATS_LIB_PATH:-/usr/lib/bats}/bats-support/load"
    load "${BATS_LIB_PATH:-/usr/lib/bats}/bats-assert/load"
fi

# `run ! CMD` (a negated command that fails the test where it stands) needs bats 1.5
bats_require_minimum_version 1.5.0

RFS_REPO="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
_rfs_abs() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
ROUTEFS_BIN="$(_rfs_abs "${ROUTEFS_BIN:-$RFS_REPO/build/routefs}")"
SIM_BIN="$(_rfs_abs "${SIM_BIN:-$RFS_REPO/build/routefs-sim}")"
export ROUTEFS_BIN SIM_BIN
# Where test directories go: never under /tmp (see DESIGN.md).  run-tests.sh sets
# RFS_E2E_ROOT to a per-run directory so it can clean up after a timed-out file.
RFS_E2E_ROOT="${RFS_E2E_ROOT:-/var/tmp}"

# wait_for SECONDS CMD... — true as soon as CMD succeeds; false when SECONDS have passed.
wait_for() {
    local secs=$1; shift
    local n=$(( ${secs%.*} * 20 + 1 ))
    local i
    for ((i = 0; i < n; i++)); do
        "$@" 2>/dev/null && return 0
        sleep 0.05
    done
    "$@" 2>/dev/null
}

# now_ms — milliseconds since the epoch.
now_ms() { date +%s%3N; }

rfs_setup() {
    RFS_DIR="$(mktemp -d "$RFS_E2E_ROOT/routefs-e2e.XXXXXX")"
    MNT="$RFS_DIR/mnt"
    STATE="$RFS_DIR/state"
    RFS_LOG="$RFS_DIR/routefs.log"
    mkdir -p "$MNT" "$STATE"
    RFS_PID=""
    SIM_PID=""
    export RFS_DIR MNT STATE RFS_LOG
    sim_start "$@"
}

# sim_start [SIM ARGS...] — start routefs-sim on a free port; sets SIM_PORT, SIM_URL.
sim_start() {
    [ -x "$SIM_BIN" ] || { echo "routefs-sim not built: $SIM_BIN" >&2; return 1; }
    rm -f "$RFS_DIR/sim.port"
    "$SIM_BIN" --port 0 --port-file "$RFS_DIR/sim.port" --quiet "$@" \
        </dev/null >"$RFS_DIR/sim.log" 2>&1 3>&- &
    SIM_PID=$!
    echo "$SIM_PID" >"$RFS_DIR/sim.pid"
    if ! wait_for 5 _sim_port_ready; then
        echo "routefs-sim did not write its port within 5 s; log:" >&2
        cat "$RFS_DIR/sim.log" >&2
        return 1
    fi
    SIM_PORT="$(cat "$RFS_DIR/sim.port")"
    SIM_URL="http://127.0.0.1:$SIM_PORT"
    export SIM_PORT SIM_URL
}

_sim_port_ready() {
    local p
    p="$(cat "$RFS_DIR/sim.port" 2>/dev/null)" || return 1
    [[ $p =~ ^[0-9]+$ ]] && [ "$p" -gt 0 ]
}

# A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
closed_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# rfs_config [FILE] <<'JSON' — write a config; SIM_PORT / CLOSED_PORT are substituted.
rfs_config() {
    local file="${1:-$RFS_DIR/config.json}"
    local cport
    cport="$(closed_port)"
    sed -e "s/SIM_PORT/$SIM_PORT/g" -e "s/CLOSED_PORT/$cport/g" >"$file"
}

# A config with two providers on the sim and a two-hop tier "fast" plus a tier "other".
# Extra fields for tier "fast" may be given as $1, a JSON fragment starting with "," (it
# replaces the default `, "timeout_ms": 5000`).
rfs_default_config() {
    local extra=', "timeout_ms": 5000'
    if [ $# -gt 0 ]; then extra=$1; fi
    rfs_config "$RFS_DIR/config.json" <<JSON
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1"},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "tiers": {
    "fast":  {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}],
              "retries": 0$extra},
    "other": {"route": ["sim/c"], "retries": 0, "timeout_ms": 5000}
  }
}
JSON
}

# rfs_mount [ARGS...] — mount $MNT in the foreground mode, in the background; bounded wait.
rfs_mount() {
    [ -x "$ROUTEFS_BIN" ] || { echo "routefs not built: $ROUTEFS_BIN" >&2; return 1; }
    "$ROUTEFS_BIN" "$MNT" --config "$RFS_DIR/config.json" --state "$STATE" \
        --log "$RFS_LOG" -f "$@" </dev/null >>"$RFS_DIR/routefs.stderr" 2>&1 3>&- &
    RFS_PID=$!
    echo "$RFS_PID" >"$RFS_DIR/routefs.pid"
    local i
    for ((i = 0; i < 200; i++)); do
        mountpoint -q "$MNT" 2>/dev/null && return 0
        if ! kill -0 "$RFS_PID" 2>/dev/null; then
            echo "routefs exited before mounting; stderr:" >&2
            cat "$RFS_DIR/routefs.stderr" >&2
            RFS_PID=""
            return 1
        fi
        sleep 0.05
    done
    echo "routefs did not mount within 10 s; stderr:" >&2
    cat "$RFS_DIR/routefs.stderr" >&2
    return 1
}

# _wait_pid PID SECONDS — wait for a process (not necessarily our child) to exit.
_wait_pid() {
    local pid=$1 n=$(( $2 * 20 )) i
    for ((i = 0; i < n; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    ! kill -0 "$pid" 2>/dev/null
}

_stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    _wait_pid "$pid" 5 || { kill -KILL "$pid" 2>/dev/null; _wait_pid "$pid" 2; }
    wait "$pid" 2>/dev/null
    return 0
}

# rfs_unmount — unmount (lazily if busy), then make sure the daemon is gone.
rfs_unmount() {
    if mountpoint -q "$MNT" 2>/dev/null || grep -qF " $MNT " /proc/self/mounts; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
    fi
    if [ -n "${RFS_PID:-}" ]; then
        _wait_pid "$RFS_PID" 5 || true
        _stop_pid "$RFS_PID"
        wait "$RFS_PID" 2>/dev/null || true
    fi
    RFS_PID=""
    rm -f "$RFS_DIR/routefs.pid"
}

# rfs_bg CMD... — run CMD in the background (fd 3 closed, so bats does not wait for it);
# sets BG; rfs_teardown kills it, before the unmount.
BG_PIDS=()
rfs_bg() {
    "$@" 3>&- &
    BG=$!
    BG_PIDS+=("$BG")
}

# not CMD... — CMD must fail, and fails the test where it stands (a plain `! CMD` only at
# a test's end); unlike `run ! CMD` it keeps $output.
not() { ! "$@"; }

# sanitizer_report FILE... — the sanitizer reports in FILEs (stderr of a daemon built by
# `make test-asan`), at most 40 lines; nothing when there are none.  Left out: leaks of
# records libfuse allocated itself (the frame above calloc is in libfuse3.so).  libfuse
# keeps a FUSE_INTERRUPT that arrives after its request was answered in a private list
# until the next request comes, and never frees that list when the session ends
# (libfuse/libfuse#1522), so a reader killed just as its read is answered leaks 176 bytes
# at exit.  A request routefs never answered would show the same way, but it also leaves
# its caller blocked, which the tests' bounded waits catch.
sanitizer_report() {
    local f files=()
    for f in "$@"; do [ -f "$f" ] && files+=("$f"); done
    [ ${#files[@]} -gt 0 ] || return 0
    awk '
        function end_block() {
            if (inblk && frame1 !~ /libfuse3\.so/)
                leaks = leaks blk
            inblk = 0
        }
        /ERROR: AddressSanitizer|runtime error:/ { left = 13 }
        left > 0 { print; left--; next }
        /^(Direct|Indirect) leak of/ { end_block(); inblk = 1; blk = $0 "\n"; frame1 = ""; next }
        inblk && /^ *#[0-9]+ / {
            if ($1 == "#1") frame1 = $0
            blk = blk $0 "\n"
            next
        }
        { end_block() }
        END {
            end_block()
            if (leaks != "")
                printf "ERROR: LeakSanitizer: detected memory leaks\n%s", leaks
        }' "${files[@]}" | head -n 40
}

rfs_teardown() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    BG_PIDS=()
    [ -n "${RFS_DIR:-}" ] && [ -d "$RFS_DIR" ] || return 0
    if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
        {
            echo "--- routefs stderr"; tail -n 30 "$RFS_DIR/routefs.stderr" 2>/dev/null
            echo "--- routefs log";    tail -n 40 "$RFS_LOG" 2>/dev/null
            echo "--- sim log";        tail -n 20 "$RFS_DIR/sim.log" 2>/dev/null
        } >&2
    fi
    rfs_unmount
    _stop_pid "${SIM_PID:-}"
    rm -f "$RFS_DIR/sim.pid"
    # Under `make test-asan` a sanitizer report from either daemon fails the test.
    local san=""
    san="$(sanitizer_report "$RFS_DIR/routefs.stderr" "$RFS_DIR/sim.log")"
    if ! grep -qF " $MNT " /proc/self/mounts; then
        rm -rf --one-file-system "$RFS_DIR"
    fi
    if [ -n "$san" ]; then
        printf 'sanitizer report:\n%s\n' "$san" >&2
        return 1
    fi
}

# --- simulator control --------------------------------------------------------------

# sim_behave MODEL JSON — set the sim's behaviour for MODEL ("*" = default).
sim_behave() {
    local body
    body="$(jq -cn --arg m "$1" --argjson b "$2" '$b + {model: $m}')" || return 1
    curl -sf --max-time 5 -X POST "$SIM_URL/control/behaviour" -d "$body" >/dev/null
}

sim_reset() { curl -sf --max-time 5 -X POST "$SIM_URL/control/reset" -d '{}' >/dev/null; }
sim_stats() { curl -sf --max-time 5 "$SIM_URL/stats"; }

# sim_count MODEL — requests the sim received for MODEL (0 when none).
sim_count() { sim_stats | jq -r --arg m "$1" '.models[$m].requests // 0'; }
sim_total() { sim_stats | jq -r '.total // 0'; }
# sim_last_body MODEL — the raw JSON body of the last request for MODEL.
sim_last_body() { sim_stats | jq -r --arg m "$1" '.models[$m].last_body // empty'; }
sim_last_auth() { sim_stats | jq -r --arg m "$1" '.models[$m].last_auth // "null"'; }

# --- simulator: OpenRouter extras, billing, streams ---------------------------------

# sim_models_set JSON — replace the sim's /api/v1/models list ({"data": [...]}).
sim_models_set() { curl -sf --max-time 5 -X POST "$SIM_URL/control/models" -d "$1" >/dev/null; }
# sim_key_set JSON — the sim's key settings: limit, limit_reset, label, any extra field.
sim_key_set() { curl -sf --max-time 5 -X POST "$SIM_URL/control/key" -d "$1" >/dev/null; }
# sim_charged [MODEL] — USD the sim billed for MODEL's 2xx answers (no MODEL: in total).
sim_charged() {
    if [ $# -gt 0 ]; then
        sim_stats | jq -r --arg m "$1" '.models[$m].charged_usd // 0'
    else
        sim_stats | jq -r '.charged_usd // 0'
    fi
}
# sim_model_stat MODEL KEY — one per-model /stats value (0 when MODEL saw no request).
sim_model_stat() { sim_stats | jq -r --arg m "$1" --arg k "$2" '.models[$m][$k] // 0'; }
# sim_arrivals MODEL — MODEL's request arrival times (ms since the sim started), a line each.
sim_arrivals() { sim_stats | jq -r --arg m "$1" '(.models[$m].arrivals_ms // [])[]'; }
# sim_endpoint_count NAME — requests to an OpenRouter endpoint ("/api/v1/models", ...).
sim_endpoint_count() { sim_stats | jq -r --arg e "$1" '.endpoints[$e] // 0'; }
# sim_generation ID [AUTH] — GET /api/v1/generation?id=ID; prints the body, then the status.
sim_generation() {
    curl -s --max-time 5 -w '\n%{http_code}' -H "Authorization: ${2:-Bearer sk-sim-test}" \
        "$SIM_URL/api/v1/generation?id=$1"
}
# sim_sse BODY [HEADER...] — POST BODY to ${SIM_SSE_PATH:-/v1/chat/completions} and print
# one JSON line per thing received, each with "t" (ms since the request was sent):
#   {"type":"status","status":N,"content_type":...,"generation_id":...}
#   {"type":"data","json":{...}} | {"type":"data","invalid":"TEXT"} | {"type":"done"}
#   {"type":"comment","text":...}  and last  {"type":"end","how":"eof"|"cut"|"no_response"}
sim_sse() {
    SIM_SSE_PATH="${SIM_SSE_PATH:-/v1/chat/completions}" python3 - "$SIM_URL" "$@" <<'PY'
# A raw HTTP/1.1 client: the chunked framing is read here, so a body that stops without
# its last chunk ("cut") is told from one that ended ("eof").
import json, os, socket, sys, time, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
body = sys.argv[2].encode()
head = ["POST %s HTTP/1.1" % os.environ["SIM_SSE_PATH"], "Host: %s:%d" % (url.hostname, url.port),
        "Content-Type: application/json", "Content-Length: %d" % len(body), "Connection: close"]
head += [h.strip() for h in sys.argv[3:]]
t0 = time.monotonic()
def out(d):
    d["t"] = int((time.monotonic() - t0) * 1000)
    print(json.dumps(d), flush=True)
class Cut(Exception):
    pass
try:
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    f = sock.makefile("rb")
    status_line = f.readline()
    if not status_line:
        raise OSError("no response")
except OSError as e:
    out({"type": "end", "how": "no_response", "error": str(e)})
    sys.exit(0)
headers = {}
while True:
    line = f.readline().decode("latin-1").rstrip("\r\n")
    if not line:
        break
    k, _, v = line.partition(":")
    headers[k.strip().lower()] = v.strip()
out({"type": "status", "status": int(status_line.split()[1]),
     "content_type": headers.get("content-type"), "generation_id": headers.get("x-generation-id")})
def body_pieces():
    if headers.get("transfer-encoding", "").lower() != "chunked":
        n = int(headers.get("content-length", "-1"))
        data = f.read(n) if n >= 0 else f.read()
        if n >= 0 and len(data) < n:
            yield data
            raise Cut()
        yield data
        return
    while True:
        size_line = f.readline()
        if not size_line.endswith(b"\n"):
            raise Cut()
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        data = f.read(size)
        if len(data) < size or f.read(2) != b"\r\n":
            yield data
            raise Cut()
        yield data
buf = b""
def lines_of(text):
    global buf
    buf += text
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        yield line.decode("utf-8", "replace").rstrip("\r")
def event(line):
    if not line:
        return
    if line.startswith(":"):
        out({"type": "comment", "text": line[1:].strip()})
    elif line.startswith("data:"):
        data = line[5:].strip()
        if data == "[DONE]":
            out({"type": "done"})
            return
        try:
            out({"type": "data", "json": json.loads(data)})
        except ValueError:
            out({"type": "data", "invalid": data})
    else:
        out({"type": "other", "text": line})
how = "eof"
try:
    for piece in body_pieces():
        for line in lines_of(piece):
            event(line)
except (Cut, OSError, ValueError):
    how = "cut"
if buf:
    event(buf.decode("utf-8", "replace"))
out({"type": "end", "how": how})
PY
}

# --- routefs helpers -----------------------------------------------------------------

# read_out PATH — cat a result, bounded (20 s).
read_out() { timeout 20 cat "$1"; }

# meta PATH JQ-FILTER — query a .meta file.
meta() { jq -r "$2" "$1"; }

# wait_state PATH STATE [SECONDS] — wait until PATH.meta shows STATE.
wait_state() {
    wait_for "${3:-10}" _meta_is "$1" "$2"
}
_meta_is() { [ "$(jq -r .state "$1.meta" 2>/dev/null)" = "$2" ]; }

# job_ended PATH — the prompt's .meta says its job is done or failed.
job_ended() {
    local s
    s="$(jq -r .state "$1.meta" 2>/dev/null)"
    [ "$s" = "done" ] || [ "$s" = failed ]
}

# run_job PATH TEXT — write a prompt and wait for its job to end (done or failed).
run_job() {
    printf '%s\n' "$2" >"$1" || return 1
    timeout 20 cat "$1.out" >/dev/null 2>&1 || true
    wait_for 10 job_ended "$1"
}

# rfs_cli ARGS... — run routefs in the foreground of the test, bounded (10 s), with fd 3
# closed (a daemon that inherited it would hang bats).  Use as `run rfs_cli ...`.
rfs_cli() { timeout 10 "$ROUTEFS_BIN" "$@" 3>&-; }

# assert_cli_error — after `run rfs_cli ...`: routefs refused (exit status nonzero, not a
# timeout or a missing binary) with exactly one line of output, and nothing got mounted.
# shellcheck disable=SC2154  # status, output, lines: set by bats' run
assert_cli_error() {
    echo "status $status, output: $output"
    [ "$status" -ne 0 ] && [ "$status" -lt 124 ] || return 1
    [ "${#lines[@]}" -eq 1 ] || return 1
    ! mountpoint -q "$MNT"
}

# --- the state store (STATE/routefs.db) -----------------------------------------------

# state_sql ARGS... — query the state directory's database with the sqlite3 shell,
# read-only (it works while the state is mounted).
state_sql() { sqlite3 -readonly -cmd ".timeout 5000" "$STATE/routefs.db" "$@"; }

# ledger_file — the ledger as JSON lines (id, at_ms, tier, tag, provider, model, upstream,
# cost in USD or null, estimated, note, prompt_tokens, completion_tokens), in a file of the
# test's directory; prints the file's path.
ledger_file() {
    local f="$RFS_DIR/ledger.$$.$RANDOM.jsonl"
    state_sql -json "SELECT ref AS id, at_ms, tier, tag, provider, model, upstream,
        cost_nusd / 1e9 AS cost, estimated, note, prompt_tokens, completion_tokens
        FROM ledger ORDER BY id" | jq -c '.[]' >"$f"
    printf '%s\n' "$f"
}

# state_done TIER — how many prompts of TIER (and its tag directories) have a finished
# result in the store; state_all_done TIER N — true when at least N have.
state_done() {
    state_sql "SELECT count(*) FROM prompts WHERE (dir = '$1' OR dir LIKE '$1/%') AND state IN (3, 4)"
}
state_all_done() { [ "$(state_done "$1")" -ge "$2" ]; }

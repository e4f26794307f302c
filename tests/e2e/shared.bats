#!/usr/bin/env bats
# routefs end-to-end: two hosts, one budget — two mounts with separate state directories
# on one real redis-server (127.0.0.1, a random port, a temporary directory, stopped in
# teardown) and one simulator: a shared daily cap, a shared rpm limit, a breaker one host
# opens and the other honours, one probe for all, and Redis killed mid-batch under
# "on_shared_down": "wait" and "local".
#
# Mount A is the usual $MNT/$STATE of helpers.bash; mount B lives in $RFS_DIR/b.
# Prices: $1000 per million tokens, so a prompt "shared NNN" reserves about $0.035 (its
# worst case) and the sim bills what its behaviour says ("cost").

load helpers

setup() {
    rfs_setup
    command -v redis-server >/dev/null || skip "redis-server is not installed"
    redis_start
    PREFIX="routefs:e2e-$$-$RANDOM"
    B_MNT="$RFS_DIR/b/mnt"
    B_STATE="$RFS_DIR/b/state"
    mkdir -p "$B_MNT" "$B_STATE"
    B_PID=""
}

teardown() {
    b_unmount
    rfs_teardown_keep_redis
    redis_stop
}

# --- helpers (this file only) ------------------------------------------------------------

redis_start() {
    REDIS_DIR="$RFS_DIR/redis"
    mkdir -p "$REDIS_DIR"
    REDIS_PORT="${REDIS_PORT:-$(closed_port)}"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --save '' \
        --appendonly no --protected-mode no --logfile "$REDIS_DIR/redis.log" \
        </dev/null >/dev/null 2>&1 3>&- &
    REDIS_PID=$!
    wait_for 5 redis_ping || { echo "redis-server did not start" >&2; return 1; }
}

redis_ping() { [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

redis_stop() {
    [ -n "${REDIS_PID:-}" ] || return 0
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
}

# rfs_teardown without losing redis' log in the failure dump.
rfs_teardown_keep_redis() {
    if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
        {
            echo "--- mount B log"; tail -n 30 "$RFS_DIR/b/routefs.log" 2>/dev/null
            echo "--- redis log"; tail -n 10 "$REDIS_DIR/redis.log" 2>/dev/null
        } >&2
    fi
    rfs_teardown
}

# shared_config ON_DOWN EXTRA_PROVIDER_FIELDS BUDGET — both hosts' config (one file).
shared_config() {
    local down=${1:-wait} pextra=${2:-} budget=${3:-'{}'}
    rfs_config <<JSON
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1"$pextra},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "prices": {
    "sim/a": {"prompt": 1000, "completion": 1000},
    "sim/b": {"prompt": 1000, "completion": 1000}
  },
  "budget": $budget,
  "shared": {"redis": "redis://127.0.0.1:$REDIS_PORT/0", "prefix": "$PREFIX",
             "on_shared_down": "$down", "local_share": 0.5, "breaker_sync_ms": 100},
  "tiers": {
    "t":  {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16},
    "fb": {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}], "retries": 0,
           "timeout_ms": 5000, "max_tokens": 16}
  }
}
JSON
}

b_mount() {
    "$ROUTEFS_BIN" "$B_MNT" --config "$RFS_DIR/config.json" --state "$B_STATE" \
        --log "$RFS_DIR/b/routefs.log" -f "$@" </dev/null >>"$RFS_DIR/b/routefs.stderr" 2>&1 3>&- &
    B_PID=$!
    local i
    for ((i = 0; i < 200; i++)); do
        mountpoint -q "$B_MNT" 2>/dev/null && return 0
        kill -0 "$B_PID" 2>/dev/null || { cat "$RFS_DIR/b/routefs.stderr" >&2; return 1; }
        sleep 0.05
    done
    return 1
}

b_unmount() {
    if grep -qF " $B_MNT " /proc/self/mounts 2>/dev/null; then
        fusermount3 -u "$B_MNT" 2>/dev/null || fusermount3 -u -z "$B_MNT" 2>/dev/null || true
    fi
    if [ -n "${B_PID:-}" ]; then
        _wait_pid "$B_PID" 5 || true
        _stop_pid "$B_PID"
    fi
    B_PID=""
    local san
    san="$(sanitizer_report "$RFS_DIR/b/routefs.stderr")"
    if [ -n "$san" ]; then
        printf 'sanitizer report (mount B):\n%s\n' "$san" >&2
        return 1
    fi
}

both_mount() { rfs_mount "$@" && b_mount "$@"; }

# shared_state MNT — "connected", "degraded" or "down", from providers.json.
shared_state() { jq -r '.shared.state // empty' "$1/providers.json" 2>/dev/null; }
both_connected() {
    [ "$(shared_state "$MNT")" = connected ] && [ "$(shared_state "$B_MNT")" = connected ]
}

# ended_count DIR — prompts of DIR (p001...) whose job has ended (done or failed).
ended_count() {
    local dir=$1 n=0 f st
    for f in "$dir"/p*.meta; do
        [ -e "$f" ] || continue
        st=$(jq -r .state "$f" 2>/dev/null) || continue
        [ "$st" = done ] || [ "$st" = failed ] && n=$((n + 1))
    done
    echo "$n"
}
all_ended() { [ "$(ended_count "$1")" -ge "$2" ]; }

# write_batch DIR FROM TO — write prompts pFROM..pTO into DIR, 16 at a time; a prompt
# refused at write (EDQUOT: the cap is used up) leaves nothing behind.
write_batch() {
    local dir=$1 from=$2 to=$3
    seq -f '%03g' "$from" "$to" |
        xargs -P 16 -I{} sh -c 'printf "shared %s" "$2" >"$1/p$2" 2>/dev/null || true' _ "$dir" {}
}

# accepted DIR — prompts that exist in DIR (not refused at write).
accepted() { find "$1" -maxdepth 1 -name 'p[0-9]*' ! -name '*.*' | wc -l; }

# le A B — A <= B to within a nano-dollar.
le() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b + 1e-9) }' || {
        echo "not <=: $1 vs $2"
        return 1
    }
}

# --- budget ------------------------------------------------------------------------------

@test "shared daily cap: 500 prompts over two mounts, the sim bills no more than the cap" {
    # $0.80 cap, $0.01 an answer: at most 80 answers, whichever host sends them.  Each
    # host alone would let 80 through (160 together) without the shared windows.
    shared_config wait '' '{"daily_usd": 0.80}'
    sim_behave sim/a '{"cost": 0.01, "latency_ms": 20}'
    both_mount
    wait_for 5 both_connected
    write_batch "$MNT/t" 1 250 &
    wa=$!
    write_batch "$B_MNT/t" 251 500
    wait "$wa"
    na=$(accepted "$MNT/t") nb=$(accepted "$B_MNT/t")
    echo "accepted: A $na, B $nb"
    wait_for 60 all_ended "$MNT/t" "$na"
    wait_for 60 all_ended "$B_MNT/t" "$nb"
    charged=$(sim_charged)
    echo "sim charged \$$charged for $(sim_count sim/a) requests"
    le "$charged" 0.80
    # the cap was used, not starved: at least 70 of the 80 answers were bought
    awk -v c="$charged" 'BEGIN { exit !(c >= 0.70 - 1e-9) }'
    # both hosts sent some; spend.json shows the shared total and each host's share
    a_today=$(jq -r .today "$MNT/spend.json") b_today=$(jq -r .today "$B_MNT/spend.json")
    echo "A spent $a_today, B spent $b_today"
    awk -v a="$a_today" -v b="$b_today" 'BEGIN { exit !(a > 0 && b > 0) }'
    wait_for 3 sh -c "[ \"\$(jq -r .shared.windows.daily.spent '$MNT/spend.json')\" != null ]"
    jq .shared "$MNT/spend.json"
    shared_spent=$(jq -r .shared.windows.daily.spent "$MNT/spend.json")
    awk -v s="$shared_spent" -v c="$charged" 'BEGIN { d = s - c; if (d < 0) d = -d; exit !(d < 1e-6) }'
    [ "$(jq -r .shared.windows.daily.cap "$MNT/spend.json")" = 0.8 ]
    this_a=$(jq -r .shared.windows.daily.this_host "$MNT/spend.json")
    awk -v s="$this_a" -v a="$a_today" 'BEGIN { d = s - a; if (d < 0) d = -d; exit !(d < 1e-6) }'
    # what is left of the cap is less than a worst case: a new prompt on either host is
    # refused, at write (EDQUOT) or when it would be sent (.err naming the shared cap)
    if printf 'one more' >"$B_MNT/t/late" 2>/dev/null; then
        wait_for 10 sh -c "[ -e '$B_MNT/t/late.err' ]"
        cat "$B_MNT/t/late.err"
        grep -q 'daily cap \$0.80' "$B_MNT/t/late.err"
        grep -q 'all hosts' "$B_MNT/t/late.err"
    fi
    le "$(sim_charged)" 0.80
    grep -q 'shared: host' "$RFS_LOG"
}

@test "shared spend survives a Redis restart: each host tells it what its ledger holds" {
    shared_config wait '' '{"daily_usd": 0.10}'
    sim_behave sim/a '{"cost": 0.03}'
    both_mount
    wait_for 5 both_connected
    printf 'one' >"$MNT/t/p001"
    read_out "$MNT/t/p001.out" >/dev/null
    printf 'two' >"$B_MNT/t/p002"
    read_out "$B_MNT/t/p002.out" >/dev/null
    # Redis loses everything (no persistence) and comes back on the same port
    redis_stop
    wait_for 5 sh -c "[ \"\$(jq -r .shared.state '$MNT/providers.json')\" = down ]"
    grep -q '^shared: down' "$MNT/status"
    redis_start
    wait_for 10 both_connected
    # both hosts re-asserted their spend: $0.06 of $0.10 already used, so a third $0.03
    # answer fits and a fourth does not
    wait_for 5 sh -c "jq -e '.shared.windows.daily.spent >= 0.06 - 1e-9' '$B_MNT/spend.json' >/dev/null"
    printf 'three' >"$B_MNT/t/p003"
    run read_out "$B_MNT/t/p003.out"
    assert_success
    printf 'four' >"$MNT/t/p004"
    wait_for 10 sh -c "[ -e '$MNT/t/p004.err' ]"
    cat "$MNT/t/p004.err"
    grep -q 'daily cap' "$MNT/t/p004.err"
    le "$(sim_charged)" 0.10
}

# --- provider limits ---------------------------------------------------------------------

@test "shared rpm: two mounts together send no faster than the provider's rpm" {
    # rpm 300: one send every 200 ms for both hosts together.  Alone each would send at
    # that pace, together twice as fast.
    shared_config wait ', "rpm": 300'
    both_mount
    wait_for 5 both_connected
    write_batch "$MNT/t" 1 12 &
    wa=$!
    write_batch "$B_MNT/t" 13 24
    wait "$wa"
    wait_for 30 all_ended "$MNT/t" 12
    wait_for 30 all_ended "$B_MNT/t" 12
    [ "$(sim_count sim/a)" -eq 24 ]
    # arrivals (ms): no 1 s window holds more than 5 (+1 for network jitter), and the
    # 24 sends span at least 23 intervals of 200 ms (less 150 ms of jitter)
    sim_arrivals sim/a | sort -n >"$RFS_DIR/arrivals"
    run awk '{ t[NR] = $1 } END {
        max = 0
        for (i = 1; i <= NR; i++) { n = 0; for (j = i; j <= NR && t[j] < t[i] + 1000; j++) n++; if (n > max) max = n }
        print "max in 1 s:", max, "span:", t[NR] - t[1]
        exit !(max <= 6 && t[NR] - t[1] >= 23 * 200 - 150)
    }' "$RFS_DIR/arrivals"
    echo "$output"
    assert_success
}

@test "shared max_concurrent: two mounts together hold no more requests in flight" {
    shared_config wait ', "max_concurrent": 2'
    sim_behave sim/a '{"latency_ms": 300}'
    both_mount
    wait_for 5 both_connected
    write_batch "$MNT/t" 1 6 &
    wa=$!
    write_batch "$B_MNT/t" 7 12
    wait "$wa"
    wait_for 30 all_ended "$MNT/t" 6
    wait_for 30 all_ended "$B_MNT/t" 6
    [ "$(sim_count sim/a)" -eq 12 ]
    echo "max in flight: $(sim_model_stat sim/a max_in_flight)"
    [ "$(sim_model_stat sim/a max_in_flight)" -le 2 ]
}

# --- breakers ----------------------------------------------------------------------------

@test "a breaker mount A opens is honoured by mount B within a second" {
    shared_config wait ', "failure_threshold": 1, "cooldown_ms": 60000'
    sim_behave sim/a '{"status": 503}'
    both_mount
    wait_for 5 both_connected
    printf 'first' >"$MNT/fb/p001"
    run read_out "$MNT/fb/p001.out"
    assert_success
    [ "$(sim_count sim/a)" -eq 1 ]
    opened=$(now_ms)
    # B sees it (providers.json "shared.breakers") and skips sim/a: straight to backup
    wait_for 1 sh -c "jq -e '.shared.breakers | map(select(.provider == \"sim\")) | length == 1' '$B_MNT/providers.json' >/dev/null"
    echo "seen by B after $(( $(now_ms) - opened )) ms"
    jq .shared "$B_MNT/providers.json"
    printf 'second' >"$B_MNT/fb/p002"
    run read_out "$B_MNT/fb/p002.out"
    assert_success
    [ "$(sim_count sim/a)" -eq 1 ]
    [ "$(sim_count sim/b)" -eq 2 ]
    [ "$(meta "$B_MNT/fb/p002.meta" .endpoint)" = backup ]
}

@test "after the cooldown one host probes the breaker for all" {
    shared_config wait ', "failure_threshold": 1, "cooldown_ms": 1500'
    sim_behave sim/a '{"status": 503}'
    both_mount
    wait_for 5 both_connected
    printf 'first' >"$MNT/fb/p001"
    read_out "$MNT/fb/p001.out" >/dev/null
    [ "$(sim_count sim/a)" -eq 1 ]
    sleep 2   # the open period is over; nobody has closed it
    # both hosts at once: one probe reaches sim/a, the other host falls back
    printf 'a' >"$MNT/fb/p002" &
    wa=$!
    printf 'b' >"$B_MNT/fb/p003"
    wait "$wa"
    read_out "$MNT/fb/p002.out" >/dev/null
    read_out "$B_MNT/fb/p003.out" >/dev/null
    echo "sim/a: $(sim_count sim/a), sim/b: $(sim_count sim/b)"
    [ "$(sim_count sim/a)" -eq 2 ]
    [ "$(sim_count sim/b)" -eq 3 ]
}

# --- Redis down --------------------------------------------------------------------------

@test "Redis killed mid-batch, on_shared_down wait: nothing is sent until it is back" {
    shared_config wait '' '{"daily_usd": 0.50}'
    sim_behave sim/a '{"cost": 0.01, "latency_ms": 50}'
    both_mount
    wait_for 5 both_connected
    write_batch "$MNT/t" 1 5
    wait_for 10 all_ended "$MNT/t" 5
    redis_stop
    wait_for 5 sh -c "[ \"\$(jq -r .shared.state '$MNT/providers.json')\" = down ]"
    wait_for 5 sh -c "[ \"\$(jq -r .shared.state '$B_MNT/providers.json')\" = down ]"
    before=$(sim_count sim/a)
    write_batch "$MNT/t" 6 20 &
    wa=$!
    write_batch "$B_MNT/t" 21 35
    wait "$wa"
    sleep 2
    # capped jobs wait: not one request went out while Redis was down
    [ "$(sim_count sim/a)" -eq "$before" ]
    grep -q '^shared: down' "$MNT/status"
    grep -q 'routefs_shared_state{state="down"} 1' "$MNT/metrics.prom"
    [ "$(ended_count "$MNT/t")" -eq 5 ]
    redis_start
    wait_for 30 all_ended "$MNT/t" 20
    wait_for 30 all_ended "$B_MNT/t" 15
    [ "$(sim_count sim/a)" -eq 35 ]
    le "$(sim_charged)" 0.50
    grep -q 'routefs_shared_state{state="connected"} 1' "$B_MNT/metrics.prom"
}

@test "Redis killed mid-batch, on_shared_down local: each host stays within its share" {
    # cap $0.20, local_share 0.5: while Redis is down each host spends at most $0.10 of
    # its own (what it spent before counts), so together they stay within the cap.
    shared_config local '' '{"daily_usd": 0.20}'
    sim_behave sim/a '{"cost": 0.01}'
    both_mount
    wait_for 5 both_connected
    write_batch "$MNT/t" 1 3
    wait_for 10 all_ended "$MNT/t" 3
    redis_stop
    wait_for 5 sh -c "[ \"\$(jq -r .shared.state '$MNT/providers.json')\" = down ]"
    wait_for 5 sh -c "[ \"\$(jq -r .shared.state '$B_MNT/providers.json')\" = down ]"
    write_batch "$MNT/t" 4 30 &
    wa=$!
    write_batch "$B_MNT/t" 31 60
    wait "$wa"
    wait_for 30 all_ended "$MNT/t" "$(accepted "$MNT/t")"
    wait_for 30 all_ended "$B_MNT/t" "$(accepted "$B_MNT/t")"
    a_today=$(jq -r .today "$MNT/spend.json") b_today=$(jq -r .today "$B_MNT/spend.json")
    echo "A spent $a_today, B spent $b_today, sim charged $(sim_charged)"
    le "$a_today" 0.10
    le "$b_today" 0.10
    le "$(sim_charged)" 0.20
    # the shares were used: each host came within one worst case ($0.032) of its $0.10
    awk -v a="$a_today" -v b="$b_today" 'BEGIN { exit !(a >= 0.068 - 1e-9 && b >= 0.068 - 1e-9) }'
    grep -h "this host's share of the daily cap" "$MNT"/t/*.err | head -n 1
    # back (empty: no persistence): the hosts' shares and the spend made while it was
    # down reach the shared windows, every dollar once
    charged=$(sim_charged)
    redis_start
    wait_for 10 both_connected
    wait_for 5 sh -c "jq -e '.shared.windows.daily.spent >= $charged - 1e-9' '$MNT/spend.json' >/dev/null"
    jq .shared.windows.daily "$MNT/spend.json"
    le "$(jq -r .shared.windows.daily.spent "$MNT/spend.json")" "$charged"
}

# --- config ------------------------------------------------------------------------------

@test "the shared section cannot change while mounted" {
    shared_config wait
    rfs_mount
    wait_for 5 sh -c "[ \"\$(jq -r .shared.state '$MNT/providers.json')\" = connected ]"
    run sh -c "sed 's/\"prefix\": \"[^\"]*\"/\"prefix\": \"other\"/' '$MNT/config.json' >'$RFS_DIR/new.json' && cp '$RFS_DIR/new.json' '$MNT/config.json'"
    assert_failure
    grep -q 'cannot change while mounted' "$MNT/status"
    jq -r .shared.prefix "$MNT/config.json" | grep -qF "$PREFIX"
}

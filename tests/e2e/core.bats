#!/usr/bin/env bats
# routefs end-to-end: a real mount against routefs-sim.
# Each test gets a fresh directory, simulator and (when it mounts) daemon.

load helpers

setup() {
    rfs_setup
}

teardown() {
    rfs_teardown
}

# --- command line ---------------------------------------------------------------------

@test "--help prints usage and exits 0" {
    run rfs_cli --help
    assert_success
    [[ $output == *--config* ]]
    [[ $output == *--state* ]]
}

@test "--version prints a version and exits 0" {
    run rfs_cli --version
    assert_success
    [[ $output =~ routefs.*[0-9] ]]
}

@test "missing config file: nonzero exit and one line on stderr" {
    run rfs_cli "$MNT" --config "$RFS_DIR/no-such.json" --state "$STATE" --log "$RFS_LOG"
    assert_cli_error
    [[ $output == *no-such.json* ]]
}

@test "invalid config (syntax): nonzero exit and one line" {
    printf '{"providers": {"sim": {"base_url": "http://127.0.0.1:1/v1"}}, "tiers": {' >"$RFS_DIR/config.json"
    run rfs_cli "$MNT" --config "$RFS_DIR/config.json" --state "$STATE" --log "$RFS_LOG"
    assert_cli_error
}

@test "invalid config (unknown field): nonzero exit and one line naming it" {
    rfs_config <<'JSON'
{"providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
 "tiers": {"fast": {"route": ["sim/a"], "bogus_field": 1}}}
JSON
    run rfs_cli "$MNT" --config "$RFS_DIR/config.json" --state "$STATE" --log "$RFS_LOG"
    assert_cli_error
    [[ $output == *bogus_field* ]]
}

@test "missing mount point: nonzero exit and one line" {
    rfs_default_config
    run rfs_cli "$RFS_DIR/no-such-dir" --config "$RFS_DIR/config.json" --state "$STATE" --log "$RFS_LOG"
    assert_cli_error
}

# --- the mount ------------------------------------------------------------------------

@test "tiers appear as directories beside the virtual files" {
    rfs_default_config
    rfs_mount
    [ -d "$MNT/fast" ]
    [ -d "$MNT/other" ]
    run ls "$MNT"
    assert_success
    for f in config.json spend.json providers.json activity.jsonl status metrics.prom fast other; do
        assert_line "$f"
    done
}

@test "cp a.txt M/tier/ && cat M/tier/a.txt.out prints the completion" {
    rfs_default_config
    rfs_mount
    printf 'hello world' >"$RFS_DIR/a.txt"
    cp "$RFS_DIR/a.txt" "$MNT/fast/"
    run read_out "$MNT/fast/a.txt.out"
    assert_success
    assert_output "sim[sim/a]: hello world"
}

@test "echo hi > p && cat p.out right after the write waits for the job" {
    rfs_default_config
    rfs_mount
    sim_behave sim/a '{"latency_ms": 300}'
    echo hi >"$MNT/fast/p" && run read_out "$MNT/fast/p.out"
    assert_success
    assert_output "sim[sim/a]: hi"
}

@test "meta: state, tier, route, hops, provider, endpoint, model, tokens" {
    rfs_default_config
    rfs_mount
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    m="$MNT/fast/p.meta"
    jq . "$m"
    [ "$(meta "$m" .state)" = "done" ]
    [ "$(meta "$m" .tier)" = fast ]
    [ "$(meta "$m" .file)" = p ]
    [ "$(meta "$m" '.route | map(.provider + "|" + .model) | join(",")')" = "sim|sim/a,backup|sim/b" ]
    [ "$(meta "$m" '.hops | length')" = 1 ]
    [ "$(meta "$m" '.hops[0].status')" = 200 ]
    [ "$(meta "$m" '.hops[0].provider')" = sim ]
    [ "$(meta "$m" '.hops[0].model')" = sim/a ]
    [ "$(meta "$m" .provider)" = Sim ]
    [ "$(meta "$m" .endpoint)" = sim ]
    [ "$(meta "$m" .model)" = sim/a ]
    [ "$(meta "$m" .fallback)" = false ]
    [ "$(meta "$m" '.tokens.prompt > 0 and .tokens.completion > 0')" = true ]
    [ "$(meta "$m" '.created_at != null and .finished_at != null')" = true ]
    [ "$(meta "$m" .error)" = null ]
}

# --- fallback -------------------------------------------------------------------------

@test "primary 503: the secondary serves and meta lists both hops" {
    rfs_default_config
    rfs_mount
    sim_behave sim/a '{"status": 503}'
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    assert_output "sim[sim/b]: hi"
    m="$MNT/fast/p.meta"
    jq . "$m"
    [ "$(meta "$m" '.hops | length')" = 2 ]
    [ "$(meta "$m" '.hops[0].status')" = 503 ]
    [ "$(meta "$m" '.hops[1].status')" = 200 ]
    [ "$(meta "$m" .fallback)" = true ]
    [ "$(meta "$m" .endpoint)" = backup ]
    [ "$(meta "$m" .model)" = sim/b ]
    [ "$(sim_count sim/a)" = 1 ]
    [ "$(sim_count sim/b)" = 1 ]
}

@test "primary port closed: the secondary serves" {
    rfs_config <<'JSON'
{
  "providers": {
    "dead": {"base_url": "http://127.0.0.1:CLOSED_PORT/v1"},
    "sim":  {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "tiers": {
    "fast": {"route": ["sim/a", {"provider": "sim", "model": "sim/b"}], "retries": 0, "timeout_ms": 5000}
  }
}
JSON
    rfs_mount
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    assert_output "sim[sim/b]: hi"
    m="$MNT/fast/p.meta"
    jq . "$m"
    [ "$(meta "$m" '.hops | length')" = 2 ]
    [ "$(meta "$m" '.hops[0].provider')" = dead ]
    [ "$(meta "$m" '.hops[0].status')" = null ]
    [ "$(meta "$m" '.hops[0].error != null')" = true ]
    [ "$(meta "$m" .endpoint)" = sim ]
    [ "$(sim_count sim/a)" = 0 ]
    [ "$(sim_count sim/b)" = 1 ]
}

@test "primary hangs past the tier timeout (500 ms): the secondary serves in < 5 s" {
    rfs_default_config ', "timeout_ms": 500'
    rfs_mount
    sim_behave sim/a '{"mode": "hang"}'
    t0=$(now_ms)
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    t1=$(now_ms)
    assert_success
    assert_output "sim[sim/b]: hi"
    echo "elapsed: $((t1 - t0)) ms"
    [ $((t1 - t0)) -lt 5000 ]
    m="$MNT/fast/p.meta"
    [ "$(meta "$m" '.hops[0].status')" = null ]
    [ "$(meta "$m" '.hops[0].error != null')" = true ]
    [ "$(meta "$m" .endpoint)" = backup ]
}

@test "every hop failing: NAME.err has one line and NAME.out reads EIO" {
    rfs_default_config
    rfs_mount
    sim_behave '*' '{"status": 503}'
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_failure
    [ "$status" -ne 124 ]
    assert_output --partial "Input/output error"
    [ -f "$MNT/fast/p.err" ]
    run cat "$MNT/fast/p.err"
    assert_success
    [ "${#lines[@]}" -eq 1 ]
    [ -n "${lines[0]}" ]
    m="$MNT/fast/p.meta"
    [ "$(meta "$m" .state)" = failed ]
    [ "$(meta "$m" '.hops | length')" = 2 ]
    [ "$(meta "$m" '.error != null')" = true ]
}

@test "a plain 400 does not fall through to the next hop" {
    rfs_default_config
    rfs_mount
    sim_behave sim/a '{"status": 400, "error_message": "bad request: nope"}'
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_failure
    [ "$status" -ne 124 ]
    assert_output --partial "Input/output error"
    [ -f "$MNT/fast/p.err" ]
    [ "$(sim_count sim/a)" = 1 ]
    [ "$(sim_count sim/b)" = 0 ]
    [ "$(meta "$MNT/fast/p.meta" '.hops | length')" = 1 ]
    [ "$(meta "$MNT/fast/p.meta" '.hops[0].status')" = 400 ]
}

# --- persistence ----------------------------------------------------------------------

@test "remount keeps finished results without new requests" {
    rfs_default_config
    rfs_mount
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    assert_output "sim[sim/a]: hi"
    before=$(sim_total)
    rfs_unmount
    refute mountpoint -q "$MNT"
    rfs_mount
    run read_out "$MNT/fast/p.out"
    assert_success
    assert_output "sim[sim/a]: hi"
    [ "$(meta "$MNT/fast/p.meta" .state)" = "done" ]
    [ "$(sim_total)" = "$before" ]
}

# --- blocking reads -------------------------------------------------------------------

@test "O_NONBLOCK read of a pending result gives EAGAIN" {
    rfs_default_config
    rfs_mount
    sim_behave sim/a '{"latency_ms": 3000}'
    echo hi >"$MNT/fast/p"
    run timeout 10 python3 - "$MNT/fast/p.out" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    data = os.read(fd, 4096)
    print("read returned %d bytes" % len(data))
    sys.exit(1)
except BlockingIOError:
    print("EAGAIN")
PY
    assert_success
    assert_output "EAGAIN"
}

@test "100 cats waiting on unfinished results do not block ls/stat on another tier" {
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}},
  "tiers": {
    "slow":  {"route": ["sim/slow"], "retries": 0, "timeout_ms": 30000},
    "other": {"route": ["sim/c"], "retries": 0, "timeout_ms": 5000}
  }
}
JSON
    rfs_mount
    sim_behave sim/slow '{"latency_ms": 8000}'
    echo "ready?" >"$MNT/other/ready"
    run read_out "$MNT/other/ready.out"
    assert_success
    for i in 0 1 2 3 4 5 6 7 8 9; do
        echo "prompt $i" >"$MNT/slow/p$i"
    done
    pids=()
    for i in 0 1 2 3 4 5 6 7 8 9; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            timeout 20 cat "$MNT/slow/p$i.out" >/dev/null 2>&1 3>&- &
            pids+=($!)
        done
    done
    sleep 0.5
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    echo "cats still waiting: $alive"
    t0=$(now_ms)
    run timeout 2 ls "$MNT/other"
    t1=$(now_ms)
    assert_success
    assert_line ready
    run timeout 2 stat "$MNT/other" "$MNT/other/ready.out"
    t2=$(now_ms)
    assert_success
    echo "ls: $((t1 - t0)) ms, stat: $((t2 - t1)) ms"
    kill "${pids[@]}" 2>/dev/null || true
    [ "$alive" -ge 90 ]
    [ $((t2 - t0)) -lt 2000 ]
}

@test "a waiting cat killed with SIGINT exits within 1 s" {
    rfs_default_config
    rfs_mount
    sim_behave sim/a '{"latency_ms": 8000}'
    echo hi >"$MNT/fast/p"
    t0=$(now_ms)
    run timeout -s INT -k 3 1.5 cat "$MNT/fast/p.out"
    t1=$(now_ms)
    echo "status $status after $((t1 - t0)) ms"
    [ "$status" -eq 124 ]
    [ $((t1 - t0)) -lt 2500 ]
}

# --- errors ---------------------------------------------------------------------------

@test "writing to a .out fails with EACCES" {
    rfs_default_config
    rfs_mount
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    run bash -c 'echo x >"$1"' _ "$MNT/fast/p.out"
    assert_failure
    assert_output --partial "Permission denied"
    run read_out "$MNT/fast/p.out"
    assert_output "sim[sim/a]: hi"
}

@test "mkdir at the root fails with EPERM" {
    rfs_default_config
    rfs_mount
    run mkdir "$MNT/newtier"
    assert_failure
    assert_output --partial "Operation not permitted"
    [ ! -e "$MNT/newtier" ]
}

# --- prompt lifecycle -----------------------------------------------------------------

@test "rewriting a prompt starts a new job" {
    rfs_default_config
    rfs_mount
    echo one >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_output "sim[sim/a]: one"
    echo two >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    assert_output "sim[sim/a]: two"
    [ "$(sim_count sim/a)" = 2 ]
}

@test "a new name touched, then written at once, runs its content; a touched name is there at once" {
    rfs_default_config
    rfs_mount
    local i
    for i in $(seq 1 40); do
        touch "$MNT/fast/t$i" && echo "x$i" >"$MNT/fast/t$i"
        : >"$MNT/fast/e$i"
        [ -e "$MNT/fast/e$i" ]
        ls "$MNT/fast" | grep -qx "e$i"
    done
    for i in $(seq 1 40); do
        run read_out "$MNT/fast/t$i.out"
        assert_success
        assert_output "sim[sim/a]: x$i"
    done
    [ "$(sim_count sim/a)" = 40 ]
    # a new name still open (nothing written) can be removed and renamed at once
    for i in $(seq 1 20); do
        exec 4>"$MNT/fast/o$i"
        rm "$MNT/fast/o$i"
        exec 4>&-
        [ ! -e "$MNT/fast/o$i" ]
        exec 4>"$MNT/fast/m$i"
        mv "$MNT/fast/m$i" "$MNT/fast/n$i"
        exec 4>&-
        [ -e "$MNT/fast/n$i" ] && [ ! -e "$MNT/fast/m$i" ]
    done
}

@test "a close does not wait for the disk, yet the prompt is there at once (stat, cat, ls, mv, rm); fsync stores it before the close" {
    rfs_default_config
    rfs_mount
    local i
    for i in $(seq 1 30); do
        printf 'v%d\n' "$i" >"$MNT/fast/c$i"
        [ "$(stat -c %s "$MNT/fast/c$i")" -eq $(( ${#i} + 2 )) ]
        [ "$(cat "$MNT/fast/c$i")" = "v$i" ]
        ls "$MNT/fast" | grep -qx "c$i"
        printf 'w%d\n' "$i" >"$MNT/fast/d$i" && mv "$MNT/fast/d$i" "$MNT/fast/r$i"
        [ "$(cat "$MNT/fast/r$i")" = "w$i" ] && [ ! -e "$MNT/fast/d$i" ]
        printf 'gone\n' >"$MNT/fast/g$i" && rm "$MNT/fast/g$i"
        [ ! -e "$MNT/fast/g$i" ]
    done
    for i in 1 17 30; do
        run read_out "$MNT/fast/c$i.out"
        assert_output "sim[sim/a]: v$i"
        run read_out "$MNT/fast/r$i.out"
        assert_output "sim[sim/a]: w$i"
    done
    # fsync returns once the bytes are in the database, before the close
    run python3 - "$MNT/fast/synced" "$STATE/routefs.db" <<'PY'
import os, sqlite3, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"synced prompt\n")
os.fsync(fd)
db = sqlite3.connect("file:" + sys.argv[2] + "?mode=ro", uri=True)
row = db.execute("SELECT data, writing FROM prompts WHERE path = 'fast/synced'").fetchone()
print(row)
os.close(fd)
assert row == (b"synced prompt\n", 1), row
PY
    echo "$output"
    assert_success
    run read_out "$MNT/fast/synced.out"
    assert_output "sim[sim/a]: synced prompt"
}

@test "a prompt renamed while its request is in flight gets its answer under the new name, paid once" {
    rfs_default_config
    rfs_mount
    sim_behave 'sim/a' '{"latency_ms": 1500}'
    echo "moving" >"$MNT/fast/before"
    wait_state "$MNT/fast/before" running
    mv "$MNT/fast/before" "$MNT/fast/after"
    run read_out "$MNT/fast/after.out"
    assert_success
    assert_output --partial "moving"
    [ "$(jq -r .state "$MNT/fast/after.meta")" = done ]
    [ ! -e "$MNT/fast/before.out" ]
    sleep 0.5
    [ "$(sim_count sim/a)" = 1 ]
    [ "$(state_sql "SELECT count(*) FROM ledger WHERE path LIKE 'fast/%'")" = 1 ]
}

@test "a rewritten prompt's result is new at once: stat, wc -c and cat agree on its size" {
    rfs_default_config
    rfs_mount
    local text
    for text in short "a much longer prompt than the first one, so the answer grows" mid; do
        echo "$text" >"$MNT/fast/p"
        run read_out "$MNT/fast/p.out"
        assert_success
        assert_output "sim[sim/a]: $text"
        local bytes
        bytes=$(cat "$MNT/fast/p.out" | wc -c)
        [ "$bytes" -gt 0 ]
        [ "$(stat -c %s "$MNT/fast/p.out")" -eq "$bytes" ]
        [ "$(wc -c <"$MNT/fast/p.out")" -eq "$bytes" ]     # wc -c trusts the file's size
        [ "$(jq -r .state "$MNT/fast/p.meta")" = done ]
    done
    [ "$(sim_count sim/a)" = 3 ]
}

@test "rm of a prompt removes its .out and .meta" {
    rfs_default_config
    rfs_mount
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    [ -e "$MNT/fast/p.meta" ]
    rm "$MNT/fast/p"
    [ ! -e "$MNT/fast/p" ]
    [ ! -e "$MNT/fast/p.out" ]
    [ ! -e "$MNT/fast/p.meta" ]
    run ls -A "$MNT/fast"
    assert_success
    assert_output ""
}

# --- requests -------------------------------------------------------------------------

@test "a JSON prompt with messages keeps its parameters under the tier's limits" {
    rfs_default_config ', "timeout_ms": 5000, "max_tokens": 100'
    rfs_mount
    cat >"$MNT/fast/q.json" <<'JSON'
{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "json hi"}],
 "temperature": 0.3, "max_tokens": 5000}
JSON
    run read_out "$MNT/fast/q.json.out"
    assert_success
    assert_output "sim[sim/a]: json hi"
    body=$(sim_last_body sim/a)
    echo "$body"
    [ "$(jq -r .temperature <<<"$body")" = 0.3 ]
    [ "$(jq -r .max_tokens <<<"$body")" = 100 ]
    [ "$(jq -r .model <<<"$body")" = sim/a ]
    [ "$(jq -r '.messages | length' <<<"$body")" = 2 ]
    [ "$(jq -r '.messages[0].role' <<<"$body")" = system ]
    [ "$(jq -r 'has("route")' <<<"$body")" = false ]
}

@test "the bearer key from the env var reaches the sim and shows in no file" {
    key="sk-e2e-$RANDOM$RANDOM-do-not-leak-0123456789"
    export RFS_E2E_KEY="$key"
    rfs_config <<'JSON'
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key_env": "RFS_E2E_KEY"}},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000}}
}
JSON
    rfs_mount
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    [ "$(sim_last_auth sim/a)" = "Bearer $key" ]
    # events is a stream (it blocks like a pipe): not a file to search
    run timeout 20 grep -r -l -F --exclude=events -- "$key" "$MNT" "$STATE"
    echo "$output"
    [ "$status" -eq 1 ]
    if [ -f "$RFS_LOG" ]; then
        run grep -c -F -- "$key" "$RFS_LOG"
        [ "$output" = 0 ]
    fi
}

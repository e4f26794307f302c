#!/usr/bin/env bats
# routefs end-to-end: who can reach the mount, permissions of the state directory,
# API keys that never show, literal keys refused, prompts kept out of the log.
# Each test gets a fresh directory, simulator and daemon.
# More in security_access.bats (allow_other), security_config.bats (credentials in the
# config), security_redact.bats (echo forms), security_resend.bats (crash and requests in
# flight) and limits.bats (descriptor limits).

load helpers

KEY="sk-test-SECRET-4c1d3f"
KEY_CORE="SECRET-4c1d3f"     # a leak of part of the key counts too

setup() {
    rfs_setup
    export ROUTEFS_TEST_KEY="$KEY"
}

teardown() {
    rfs_teardown
}

# --- helpers (this file only) ---------------------------------------------------------

# key_config — provider "sim" carries the key (env var), "backup" has none; prices so the
# ledger records spend.  Tier "fast" is sim/a only, "both" falls back to backup/sim/b.
key_config() {
    rfs_config <<'JSON'
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key_env": "ROUTEFS_TEST_KEY"},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "prices": {"sim/a": {"prompt": 1.0, "completion": 2.0},
             "sim/b": {"prompt": 1.0, "completion": 2.0}},
  "tiers": {
    "fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000},
    "both": {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}],
             "retries": 0, "timeout_ms": 5000}
  }
}
JSON
}

# no_secret FILE... — none of the files holds the key or a recognisable part of it.
no_secret() {
    local f bad=0
    for f in "$@"; do
        if grep -qF -e "$KEY" -e "$KEY_CORE" "$f" 2>/dev/null; then
            echo "secret found in $f:"; grep -nF -e "$KEY" -e "$KEY_CORE" "$f" | head -n 5
            bad=1
        fi
    done
    return $bad
}

# assert_key_nowhere — not in a virtual file, a result, the state directory, the log.
# Every place that leaks is listed before it fails.
assert_key_nowhere() {
    local v bad=0 hits
    for v in config.json status providers.json spend.json metrics.prom activity.jsonl; do
        cat "$MNT/$v" >"$RFS_DIR/snap.$v" || bad=1
        no_secret "$RFS_DIR/snap.$v" || { echo "(that is virtual file $v)"; bad=1; }
    done
    hits="$(timeout 30 grep -rlF -e "$KEY" -e "$KEY_CORE" "$MNT" 2>/dev/null || true)"
    [ -z "$hits" ] || { echo "secret in files of the mount:"; echo "$hits"; bad=1; }
    hits="$(grep -rlF -e "$KEY" -e "$KEY_CORE" "$STATE" 2>/dev/null || true)"
    [ -z "$hits" ] || { echo "secret in the state directory:"; echo "$hits"; bad=1; }
    no_secret "$RFS_LOG" "$RFS_DIR/routefs.stderr" || { echo "(that is the daemon log)"; bad=1; }
    return $bad
}

# as_nobody CMD... — run CMD as uid/gid 65534 with no supplementary groups.
as_nobody() {
    timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

need_nobody() {
    [ "$(id -u)" -eq 0 ] || skip "needs root to switch to another user"
    getent passwd nobody >/dev/null || skip "no user nobody"
    command -v setpriv >/dev/null || skip "no setpriv"
}

# _daemon_pid — the pid of the routefs serving $MNT (it forked away from its parent).
_daemon_pid() {
    local d args
    for d in /proc/[0-9]*; do
        mapfile -d '' args <"$d/cmdline" 2>/dev/null || continue
        if [ "${args[0]:-}" = "$ROUTEFS_BIN" ] && [ "${args[1]:-}" = "$MNT" ]; then
            echo "${d#/proc/}"
            return 0
        fi
    done
    return 1
}

# --- who can reach the mount ----------------------------------------------------------

@test "the mount is for its owner only: user_id is ours, no allow_other" {
    rfs_default_config
    rfs_mount
    line="$(grep -F " $MNT " /proc/mounts)"
    echo "$line"
    [ -n "$line" ]
    opts="$(awk '{print $4}' <<<"$line")"
    [[ ,$opts, == *,user_id=$(id -u),* ]]
    [[ ,$opts, == *,group_id=$(id -g),* ]]
    [[ ,$opts, != *,allow_other,* ]]
    [[ ,$opts, != *,allow_root,* ]]
}

@test "another user (nobody) gets Permission denied on the mount" {
    need_nobody
    rfs_default_config
    rfs_mount
    chmod 0755 "$RFS_DIR"         # the path is open: only the mount itself may refuse
    run as_nobody ls "$RFS_DIR"
    echo "control: $output"
    assert_success
    assert_line mnt

    run as_nobody ls "$MNT"
    echo "ls: $output"
    assert_failure
    assert_output --partial "Permission denied"
    run as_nobody cat "$MNT/status"
    assert_failure
    assert_output --partial "Permission denied"
    run as_nobody cat "$MNT/config.json"
    assert_failure
    assert_output --partial "Permission denied"
    run as_nobody sh -c 'echo hi >"$1"' _ "$MNT/fast/intruder"
    assert_failure
    assert_output --partial "Permission denied"
    run as_nobody sh -c 'echo "{}" >"$1"' _ "$MNT/config.json"
    assert_failure
    assert_output --partial "Permission denied"
    # the state directory is closed to them as well
    run as_nobody ls "$STATE"
    assert_failure
    assert_output --partial "Permission denied"
    # nothing happened, and the owner still gets in
    [ "$(sim_total)" = 0 ]
    [ -z "$(state_sql "SELECT 1 FROM prompts WHERE path = 'fast/intruder'")" ]
    run ls "$MNT"
    assert_success
    assert_line fast
}

# --- the state directory --------------------------------------------------------------

@test "state directory 0700 and every file in it 0600 after jobs ran" {
    key_config
    chmod 0755 "$STATE"           # a pre-existing, too open state directory gets closed
    rfs_mount
    run_job "$MNT/fast/ok" "a prompt"
    [ "$(jq -r .state "$MNT/fast/ok.meta")" = "done" ]
    sim_behave sim/c '{"status": 503}'
    rfs_config "$RFS_DIR/new.json" <<'JSON'
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key_env": "ROUTEFS_TEST_KEY"},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "prices": {"sim/a": {"prompt": 1.0, "completion": 2.0}},
  "tiers": {
    "fast":  {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000},
    "broken": {"route": ["sim/c"], "retries": 0, "timeout_ms": 5000}
  }
}
JSON
    cp "$RFS_DIR/new.json" "$MNT/config.json"
    run_job "$MNT/broken/bad" "this one fails"
    [ -f "$MNT/broken/bad.err" ]
    mkdir "$MNT/fast/tag"
    run_job "$MNT/fast/tag/t" "tagged"
    run_job "$MNT/fast/q.json" '{"messages": [{"role": "user", "content": "json"}]}'
    sed -i 's/"timeout_ms": 5000/"timeout_ms": 6000/' "$MNT/config.json"
    echo scratch >"$MNT/notes.swp"
    # what we expect is there: the database with the jobs, ledger and activity, and the
    # scratch file
    [ -f "$STATE/routefs.db" ] || { ls -laR "$STATE"; false; }
    [ -f "$STATE/files/root/notes.swp" ] || { ls -laR "$STATE"; false; }
    [ "$(state_sql "SELECT group_concat(path || ':' || state, ' ') FROM (SELECT path, state
        FROM prompts ORDER BY path)")" = "broken/bad:4 fast/ok:3 fast/q.json:3 fast/tag/t:3" ]
    [ "$(state_sql "SELECT count(*) > 0 FROM ledger")" = 1 ]
    [ "$(state_sql "SELECT count(*) FROM activity")" = 4 ]
    check_perms() {
        [ "$(stat -c %a "$STATE")" = 700 ] || { echo "state dir: $(stat -c %a "$STATE")"; return 1; }
        local loose
        loose="$(find "$STATE" -type d ! -perm 0700 -printf '%m %p\n')"
        [ -z "$loose" ] || { echo "directories not 0700:"; echo "$loose"; return 1; }
        loose="$(find "$STATE" ! -type d ! -perm 0600 -printf '%m %p\n')"
        [ -z "$loose" ] || { echo "files not 0600:"; echo "$loose"; return 1; }
        [ "$(stat -c %a "$RFS_LOG")" = 600 ] || { echo "log: $(stat -c %a "$RFS_LOG")"; return 1; }
    }
    check_perms
    rfs_unmount
    check_perms
}

@test "in the background the log goes to STATE/routefs.log, 0600" {
    rfs_default_config
    timeout 10 "$ROUTEFS_BIN" "$MNT" --config "$RFS_DIR/config.json" --state "$STATE" \
        </dev/null >>"$RFS_DIR/routefs.stderr" 2>&1 3>&-
    wait_for 10 mountpoint -q "$MNT"
    RFS_PID="$(_daemon_pid)" || true
    echo "daemon pid: $RFS_PID"
    [ -n "$RFS_PID" ]
    echo "marker-prompt-77c1" >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    [ -f "$STATE/routefs.log" ]
    [ "$(stat -c %a "$STATE/routefs.log")" = 600 ]
    grep -q "mounted at" "$STATE/routefs.log"
    run grep -c "marker-prompt-77c1" "$STATE/routefs.log"
    assert_output 0
    [ -z "$(find "$STATE" ! -type d ! -perm 0600)" ]
}

# --- API keys -------------------------------------------------------------------------

@test "the API key reaches the provider and shows in no file, meta, err, activity or log" {
    key_config
    rfs_mount
    run_job "$MNT/fast/ok" "hello"
    [ "$(sim_last_auth sim/a)" = "Bearer $KEY" ]
    run bash -c 'grep -cF "$1" <<<"$2"' _ "$KEY_CORE" "$(sim_last_body sim/a)"
    assert_output 0                                  # only in the header, not the body
    # a job failing with 401 (a rejected key)
    sim_behave sim/a '{"status": 401}'
    run_job "$MNT/fast/denied" "hello again"
    [ "$(jq -r .state "$MNT/fast/denied.meta")" = failed ]
    [ -f "$MNT/fast/denied.err" ]
    cat "$MNT/fast/denied.err"
    [ "$(jq -r '.hops[0].status' "$MNT/fast/denied.meta")" = 401 ]
    no_secret "$MNT/fast/ok.meta" "$MNT/fast/denied.meta" "$MNT/fast/denied.err" \
        "$MNT/fast/ok.out"
    assert_key_nowhere
}

@test "the key goes only to its own provider: a fallback hop gets no Authorization" {
    key_config
    rfs_mount
    sim_behave sim/a '{"status": 503}'
    run_job "$MNT/both/p" "fall back"
    [ "$(jq -r .state "$MNT/both/p.meta")" = "done" ]
    [ "$(jq -r .endpoint "$MNT/both/p.meta")" = backup ]
    [ "$(sim_last_auth sim/a)" = "Bearer $KEY" ]
    [ "$(sim_last_auth sim/b)" = null ]
    assert_key_nowhere
}

@test "a provider error that echoes the key back is scrubbed everywhere" {
    key_config
    rfs_mount
    sim_behave sim/a "{\"status\": 401, \"error_message\": \"Incorrect API key provided: $KEY\"}"
    run_job "$MNT/fast/echo" "hello"
    [ "$(jq -r .state "$MNT/fast/echo.meta")" = failed ]
    [ -f "$MNT/fast/echo.err" ]
    bad=0
    no_secret "$MNT/fast/echo.err" "$MNT/fast/echo.meta" || bad=1
    assert_key_nowhere || bad=1
    [ "$bad" -eq 0 ]
}

@test "a key from api_key_file reaches the provider and shows nowhere" {
    printf '%s\n' "$KEY" >"$RFS_DIR/key.txt"
    chmod 0600 "$RFS_DIR/key.txt"
    unset ROUTEFS_TEST_KEY
    rfs_config <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1",
                        "api_key_file": "$RFS_DIR/key.txt"}},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000}}
}
JSON
    rfs_mount
    run_job "$MNT/fast/ok" "hello"
    [ "$(sim_last_auth sim/a)" = "Bearer $KEY" ]
    sim_behave sim/a '{"status": 401}'
    run_job "$MNT/fast/denied" "again"
    [ -f "$MNT/fast/denied.err" ]
    grep -qF "key.txt" "$MNT/config.json"     # the file is named, its content is not
    assert_key_nowhere
}

@test "a literal api_key in the config: mount refused with a clear message, key not echoed" {
    rfs_config <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key": "$KEY"}},
  "tiers": {"fast": {"route": ["sim/a"]}}
}
JSON
    run rfs_cli "$MNT" --config "$RFS_DIR/config.json" --state "$STATE" --log "$RFS_LOG"
    assert_cli_error
    assert_output --partial "providers.sim.api_key"
    assert_output --partial "api_key_env"
    refute_output --partial "$KEY_CORE"
    no_secret "$RFS_LOG" "$RFS_DIR/routefs.stderr"
}

@test "a literal api_key written to config.json: EINVAL, refused, key not echoed" {
    key_config
    rfs_mount
    cp "$RFS_DIR/config.json" "$RFS_DIR/before.disk"
    jq --arg k "$KEY" '.providers.backup.api_key = $k' "$MNT/config.json" >"$RFS_DIR/bad.json"
    run cp "$RFS_DIR/bad.json" "$MNT/config.json"
    assert_failure
    assert_output --partial "Invalid argument"
    run cat "$MNT/status"
    assert_output --partial "config: REFUSED last edit: "
    assert_output --partial "providers.backup.api_key"
    assert_output --partial "literal API keys are not allowed"
    cmp "$RFS_DIR/before.disk" "$RFS_DIR/config.json"
    [ "$(jq -r '.providers.backup | has("api_key")' "$MNT/config.json")" = false ]
    # the same through sed -i
    run sed -i "s|\"api_key_env\": \"ROUTEFS_TEST_KEY\"|\"api_key\": \"$KEY\"|" "$MNT/config.json"
    assert_failure
    assert_output --partial "Invalid argument"
    run cat "$MNT/status"
    assert_output --partial "providers.sim.api_key"
    assert_key_nowhere
}

@test "routefs check refuses a literal api_key without printing it" {
    rfs_config <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key": "$KEY"}},
  "tiers": {"fast": {"route": ["sim/a"]}}
}
JSON
    run rfs_cli check "$RFS_DIR/config.json"
    echo "$output"
    [ "$status" -ne 0 ] && [ "$status" -lt 124 ]
    assert_output --partial "api_key"
    assert_output --partial "literal API keys are not allowed"
    refute_output --partial "$KEY_CORE"
}

# --- prompts stay out of the log ------------------------------------------------------

@test "prompts never appear in the daemon log, for done and failed jobs" {
    rfs_default_config
    rfs_mount
    marker="prompt-marker-$RANDOM$RANDOM-zq"
    run_job "$MNT/fast/ok" "please summarise $marker"
    [ "$(jq -r .state "$MNT/fast/ok.meta")" = "done" ]
    sim_behave sim/c '{"status": 400}'
    run_job "$MNT/other/bad400" "this fails $marker"
    [ -f "$MNT/other/bad400.err" ]
    sim_behave sim/c '{"status": 500}'
    run_job "$MNT/other/bad500" "this fails too $marker"
    [ -f "$MNT/other/bad500.err" ]
    printf '{"messages": [{"role": "user", "content": "json %s"}], "temperature": 0.2}' \
        "$marker" >"$MNT/fast/q.json"
    timeout 20 cat "$MNT/fast/q.json.out" >/dev/null 2>&1 || true
    wait_for 10 job_ended "$MNT/fast/q.json"
    printf '{"messages": "not a list %s"}' "$marker" >"$MNT/fast/broken.json"
    timeout 20 cat "$MNT/fast/broken.json.out" >/dev/null 2>&1 || true
    wait_for 10 job_ended "$MNT/fast/broken.json" || true
    # the prompts did reach the provider
    sim_last_body sim/a | grep -qF "$marker"
    [ -s "$RFS_LOG" ]
    run grep -cF -- "$marker" "$RFS_LOG" "$RFS_DIR/routefs.stderr"
    echo "$output"
    refute_output --regexp ':[1-9]'
    rfs_unmount
    run grep -cF -- "$marker" "$RFS_LOG"
    assert_output 0
}

@test "with -d (debug logging) prompts still never appear in the log" {
    rfs_default_config
    rfs_mount -d
    marker="debug-marker-$RANDOM$RANDOM-qx"
    run_job "$MNT/fast/ok" "debug me $marker"
    sim_behave sim/c '{"status": 500}'
    run_job "$MNT/other/bad" "debug fail $marker"
    [ -f "$MNT/other/bad.err" ]
    grep -q "debug" "$RFS_LOG"          # debug lines are being written
    sim_last_body sim/a | grep -qF "$marker"
    run grep -cF -- "$marker" "$RFS_LOG" "$RFS_DIR/routefs.stderr"
    echo "$output"
    refute_output --regexp ':[1-9]'
}

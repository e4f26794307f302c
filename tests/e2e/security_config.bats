#!/usr/bin/env bats
# routefs end-to-end: no credentials in the config text.  A base_url carrying
# user:password@ is refused (at mount, by `routefs check`, by a live edit: EINVAL); an
# api_key_file must be a regular file of the user's, not readable by group or others,
# one line of at most 4 KiB; an api_key_env naming something that is not a key (PATH,
# HOME) or that is unset warns in `routefs check`, the log and status.
# Each test gets a fresh directory, simulator and daemon.

load helpers

KEY="sk-test-FILEKEY-7d2e91"
PASSWORD="hunter2-9f8e7d"

setup() {
    rfs_setup
    export ROUTEFS_TEST_KEY="$KEY"
}

teardown() {
    rfs_teardown
}

# config_with_provider JSON — one provider "sim" described by JSON (SIM_PORT is
# substituted), tier "fast" on sim/a.
config_with_provider() {
    rfs_config "${2:-$RFS_DIR/config.json}" <<JSON
{
  "providers": {"sim": $1},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000}}
}
JSON
}

# mount_refused FIELD REASON — the mount is refused with one line naming FIELD and
# REASON, and neither the password nor the key shows.
mount_refused() {
    run rfs_cli "$MNT" --config "$RFS_DIR/config.json" --state "$STATE" --log "$RFS_LOG"
    assert_cli_error
    assert_output --partial "$1"
    assert_output --partial "$2"
    refute_output --partial "$PASSWORD"
    refute_output --partial "FILEKEY"
}

# check_refused FIELD REASON — `routefs check` exits 1 with the same message.
check_refused() {
    run rfs_cli check "$RFS_DIR/config.json"
    echo "check: status $status: $output"
    [ "$status" -eq 1 ]
    assert_output --partial "$1"
    assert_output --partial "$2"
    refute_output --partial "$PASSWORD"
    refute_output --partial "FILEKEY"
}

# edit_refused FILE FIELD REASON — writing FILE into config.json (cat >, as an editor
# saves) fails with EINVAL; status shows the refusal; the config in force is unchanged.
edit_refused() {
    local before
    before="$(cat "$MNT/config.json")"
    run sh -c 'cat "$1" >"$2"' _ "$1" "$MNT/config.json"
    echo "cat >: status $status: $output"
    assert_failure
    assert_output --partial "Invalid argument"
    [ "$(cat "$MNT/config.json")" = "$before" ]
    run cat "$MNT/status"
    assert_output --partial "config: REFUSED last edit: "
    assert_output --partial "$2"
    assert_output --partial "$3"
    refute_output --partial "$PASSWORD"
    refute_output --partial "FILEKEY"
    run grep -F "config refused" "$RFS_LOG"
    assert_output --partial "$2"
    ! grep -qF -e "$PASSWORD" -e FILEKEY "$RFS_LOG" "$MNT/config.json"
}

# --- base_url with user:password@ -------------------------------------------------------

@test "base_url with user:password@: mount and check refuse it naming the field" {
    for url in "http://admin:$PASSWORD@127.0.0.1:$SIM_PORT/v1" "https://$PASSWORD@api.example.com/v1" \
               "http://admin:$PASSWORD@[::1]:$SIM_PORT/v1"; do
        config_with_provider "{\"base_url\": \"$url\"}"
        mount_refused "providers.sim.base_url" "credentials in the URL are not allowed"
        assert_output --partial "use api_key_env or api_key_file"
        check_refused "providers.sim.base_url" "credentials in the URL are not allowed"
    done
    # an '@' past the authority (in the path) is no credential
    config_with_provider "{\"base_url\": \"http://127.0.0.1:$SIM_PORT/v1/@team\"}"
    run rfs_cli check "$RFS_DIR/config.json"
    assert_success
    [ "$(sim_total)" = 0 ]
}

@test "base_url with user:password@ written to config.json: EINVAL, the reason in status" {
    config_with_provider '{"base_url": "http://127.0.0.1:SIM_PORT/v1"}'
    rfs_mount
    config_with_provider "{\"base_url\": \"http://admin:$PASSWORD@127.0.0.1:$SIM_PORT/v1\"}" \
        "$RFS_DIR/bad.json"
    edit_refused "$RFS_DIR/bad.json" "providers.sim.base_url" \
        "credentials in the URL are not allowed"
    # the old config still serves, and nothing was sent with the password
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    [ "$(sim_last_auth sim/a)" = null ]
}

# --- api_key_file rules -----------------------------------------------------------------

# key_file_config FILE — provider sim reads its key from FILE.
key_file_config() {
    config_with_provider "{\"base_url\": \"http://127.0.0.1:SIM_PORT/v1\", \"api_key_file\": \"$1\"}" \
        "${2:-$RFS_DIR/config.json}"
}

# bad_key_file CASE — make $RFS_DIR/key.CASE broken in that way; prints the reason
# routefs must give.
bad_key_file() {
    local f="$RFS_DIR/key.$1"
    case $1 in
        not_owned) printf '%s\n' "$KEY" >"$f"; chmod 600 "$f"; chown 65534:65534 "$f"
                   echo "not owned by you" ;;
        group_readable) printf '%s\n' "$KEY" >"$f"; chmod 640 "$f"
                   echo "readable by group or others (chmod 600 it)" ;;
        world_readable) printf '%s\n' "$KEY" >"$f"; chmod 604 "$f"
                   echo "readable by group or others (chmod 600 it)" ;;
        group_writable) printf '%s\n' "$KEY" >"$f"; chmod 620 "$f"
                   echo "writable or executable by group or others (chmod 600 it)" ;;
        directory) mkdir -m 700 "$f"; echo "not a regular file" ;;
        fifo)      mkfifo -m 600 "$f"; echo "not a regular file" ;;
        device)    ln -s /dev/null "$f"; echo "not a regular file" ;;
        two_lines) printf '%s\n%s\n' "$KEY" "$KEY" >"$f"; chmod 600 "$f"
                   echo "more than one line" ;;
        too_long)  { printf 'sk-FILEKEY-'; head -c 4200 /dev/zero | tr '\0' x; echo; } >"$f"
                   chmod 600 "$f"; echo "longer than 4 KiB" ;;
        empty)     : >"$f"; chmod 600 "$f"; echo "empty" ;;
        missing)   echo "No such file or directory" ;;
        shadow)    ln -s /etc/shadow "$f"; echo "readable by group or others (chmod 600 it)" ;;
    esac
}

KEY_FILE_CASES="not_owned group_readable world_readable group_writable directory fifo device
                two_lines too_long empty missing shadow"

@test "api_key_file rules at mount and in check: each broken file refused naming the field" {
    [ "$(id -u)" -eq 0 ] || skip "chown to another user needs root"
    local c why
    for c in $KEY_FILE_CASES; do
        why="$(bad_key_file "$c")"
        if [ "$c" = shadow ] && [ "$(stat -L -c %a /etc/shadow)" = 600 ]; then
            why="not owned by you"      # (only when shadow is not root's; never here)
        fi
        key_file_config "$RFS_DIR/key.$c"
        echo "--- $c: expect \"$why\""
        # a FIFO must not block the check: bounded by rfs_cli's timeout
        mount_refused "providers.sim.api_key_file $RFS_DIR/key.$c" "$why"
        check_refused "providers.sim.api_key_file $RFS_DIR/key.$c" "$why"
    done
    # the control: the same key in a good file mounts and is sent
    printf '%s\n' "$KEY" >"$RFS_DIR/key.good"
    chmod 600 "$RFS_DIR/key.good"
    key_file_config "$RFS_DIR/key.good"
    run rfs_cli check "$RFS_DIR/config.json"
    assert_success
    rfs_mount
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    [ "$(sim_last_auth sim/a)" = "Bearer $KEY" ]
}

@test "api_key_file rules on a live edit: EINVAL naming the field, old config in force" {
    [ "$(id -u)" -eq 0 ] || skip "chown to another user needs root"
    printf '%s\n' "$KEY" >"$RFS_DIR/key.good"
    chmod 600 "$RFS_DIR/key.good"
    key_file_config "$RFS_DIR/key.good"
    rfs_mount
    local c why
    for c in not_owned group_readable fifo two_lines too_long; do
        why="$(bad_key_file "$c")"
        key_file_config "$RFS_DIR/key.$c" "$RFS_DIR/bad.json"
        echo "--- $c"
        edit_refused "$RFS_DIR/bad.json" "providers.sim.api_key_file $RFS_DIR/key.$c" "$why"
    done
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    [ "$(sim_last_auth sim/a)" = "Bearer $KEY" ]
}

@test "a key file rewritten after the mount: the new key is redacted too" {
    printf '%s\n' "$KEY" >"$RFS_DIR/key.good"
    chmod 600 "$RFS_DIR/key.good"
    rfs_config <<JSON
{
  "providers": {"sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1",
                        "api_key_file": "$RFS_DIR/key.good", "failure_threshold": 1000,
                        "cooldown_ms": 100}},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000}}
}
JSON
    rfs_mount
    # the key is rotated in place, no config edit: the next request sends the new one
    local new="sk-test-ROTATED-5b6a4c3d"
    printf '%s\n' "$new" >"$RFS_DIR/key.good"
    sim_behave sim/a '{"echo_auth": "json_escaped"}'
    echo hi >"$MNT/fast/rotated"
    timeout 20 cat "$MNT/fast/rotated.out" >/dev/null 2>&1 || true
    wait_state "$MNT/fast/rotated" failed
    [ "$(sim_last_auth sim/a)" = "Bearer $new" ]
    cat "$MNT/fast/rotated.err"
    run grep -c -e ROTATED -e 'ROTATED' "$MNT/fast/rotated.err" "$MNT/fast/rotated.meta" \
        "$RFS_LOG"
    echo "$output"
    refute_output --regexp ':[1-9]'
    grep -qF "[REDACTED]" "$MNT/fast/rotated.err"
}

# --- api_key_env warnings ---------------------------------------------------------------

@test "api_key_env PATH, HOME or unset: check warns (exit 0), so do the log and status" {
    unset RFS_UNSET_KEY
    rfs_config <<'JSON'
{
  "providers": {
    "p_path":  {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key_env": "PATH"},
    "p_home":  {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key_env": "HOME"},
    "p_unset": {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key_env": "RFS_UNSET_KEY"},
    "p_ok":    {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key_env": "ROUTEFS_TEST_KEY"}
  },
  "tiers": {"fast": {"route": [{"provider": "p_ok", "model": "sim/a"}], "retries": 0,
                     "timeout_ms": 5000}}
}
JSON
    local w_path="providers.p_path.api_key_env: PATH is not a secret variable: its value would be sent as the API key"
    local w_home="providers.p_home.api_key_env: HOME is not a secret variable: its value would be sent as the API key"
    local w_unset="providers.p_unset.api_key_env: RFS_UNSET_KEY is not set: requests to p_unset will fail"
    run rfs_cli check "$RFS_DIR/config.json"
    echo "$output"
    assert_success
    assert_line --partial "ok (1 tier, 4 providers)"
    assert_line "$RFS_DIR/config.json: warning: $w_path"
    assert_line "$RFS_DIR/config.json: warning: $w_home"
    assert_line "$RFS_DIR/config.json: warning: $w_unset"
    refute_output --partial "p_ok"
    [ "${#lines[@]}" -eq 4 ]
    # the values never show
    refute_output --partial "$PATH"
    refute_output --partial "$KEY"

    rfs_mount
    run cat "$MNT/status"
    echo "$output"
    assert_line "config: warning: $w_path"
    assert_line "config: warning: $w_home"
    assert_line "config: warning: $w_unset"
    grep -qxF "warn: config: $w_path" <(cut -d' ' -f2- "$RFS_LOG")
    grep -qxF "warn: config: $w_home" <(cut -d' ' -f2- "$RFS_LOG")
    grep -qxF "warn: config: $w_unset" <(cut -d' ' -f2- "$RFS_LOG")
    # the mount works; a tier on p_ok is served with its key
    echo hi >"$MNT/fast/p"
    run read_out "$MNT/fast/p.out"
    assert_success
    [ "$(sim_last_auth sim/a)" = "Bearer $KEY" ]

    # a live edit that fixes them clears the warnings in status
    jq '.providers |= with_entries(.value.api_key_env = "ROUTEFS_TEST_KEY")' "$MNT/config.json" \
        >"$RFS_DIR/fixed.json"
    cat "$RFS_DIR/fixed.json" >"$MNT/config.json"
    run cat "$MNT/status"
    refute_output --partial "config: warning"
    # and one that brings one back shows it again
    jq '.providers.p_home.api_key_env = "HOME"' "$MNT/config.json" >"$RFS_DIR/again.json"
    cat "$RFS_DIR/again.json" >"$MNT/config.json"
    run cat "$MNT/status"
    assert_line "config: warning: $w_home"
    [ "$(grep -c '^config: warning' <<<"$output")" = 1 ]
}

#!/usr/bin/env bats
# routefs end-to-end: the live config.json — reading it, editing it with the tools people
# use (cat >, cp, sed -i, vim, jq + cross-device mv, Python), validation and refusal,
# tiers following the config, persistence, SIGHUP and `routefs check`.
# Each test gets a fresh directory, simulator and daemon.

load helpers

setup() {
    rfs_setup
}

teardown() {
    rfs_teardown
}

# --- helpers (this file only) ---------------------------------------------------------

# mount_default — the helpers' two-tier config with max_tokens 100 on tier "fast", mounted.
mount_default() {
    rfs_default_config ', "timeout_ms": 5000, "max_tokens": 100'
    rfs_mount
}

# new_config JQ-FILTER [FILE] — the live config with a jq filter applied, written to FILE
# (default $RFS_DIR/new.json): a file outside the mount, as an editor's user would have.
new_config() {
    jq "$1" "$MNT/config.json" >"${2:-$RFS_DIR/new.json}"
}

# snapshot — remember what config.json reads and what the --config file holds.
snapshot() {
    cat "$MNT/config.json" >"$RFS_DIR/before.mnt"
    cp "$RFS_DIR/config.json" "$RFS_DIR/before.disk"
}

# assert_unchanged [semantic] — config.json and the --config file are what snapshot saw
# (with "semantic": the --config file holds the same document, maybe laid out anew — vim
# restores a refused edit by writing the original text back through config.json).
assert_unchanged() {
    cat "$MNT/config.json" >"$RFS_DIR/after.mnt"
    if ! cmp -s "$RFS_DIR/before.mnt" "$RFS_DIR/after.mnt"; then
        echo "config.json changed:"; diff "$RFS_DIR/before.mnt" "$RFS_DIR/after.mnt"
        return 1
    fi
    if [ "${1:-}" = semantic ]; then
        [ "$(jq -S . "$RFS_DIR/before.disk")" = "$(jq -S . "$RFS_DIR/config.json")" ] || {
            echo "the --config file changed:"; cat "$RFS_DIR/config.json"; return 1; }
    elif ! cmp -s "$RFS_DIR/before.disk" "$RFS_DIR/config.json"; then
        echo "the --config file changed:"; diff "$RFS_DIR/before.disk" "$RFS_DIR/config.json"
        return 1
    fi
}

# assert_refused REASON — status says the last edit was refused, with REASON; the log too.
assert_refused() {
    local st
    st="$(cat "$MNT/status")"
    echo "status:"; echo "$st"
    grep -F "config: REFUSED last edit: " <<<"$st" | grep -qF -- "$1" || {
        echo "status has no REFUSED line with: $1"; return 1; }
    wait_for 5 _log_has_refusal "$1" || {
        echo "log has no refusal with: $1"; tail -n 5 "$RFS_LOG"; return 1; }
}
_log_has_refusal() { grep -F "config refused" "$RFS_LOG" | grep -qF -- "$1"; }

# assert_config_ok — status shows the config accepted.
assert_config_ok() {
    run cat "$MNT/status"
    assert_success
    assert_line "config: ok"
}

# in_force MAX_TOKENS [TIER] [MODEL] — a new job on TIER (fast) sends max_tokens MAX_TOKENS
# to MODEL (sim/a).
_probe_n=0
in_force() {
    local tier=${2:-fast} model=${3:-sim/a}
    _probe_n=$((_probe_n + 1))
    local p="$MNT/$tier/probe$_probe_n"
    echo "probe $_probe_n" >"$p" || return 1
    read_out "$p.out" >/dev/null || { echo "probe job failed"; return 1; }
    local got
    got="$(sim_last_body "$model" | jq -r .max_tokens)"
    echo "max_tokens sent to $model: $got (want $1)"
    [ "$got" = "$1" ]
}

# config_field JQ-PATH — a value from the live config.json.
config_field() { jq -c "$1" "$MNT/config.json"; }
_field_is() { [ "$(config_field "$1")" = "$2" ]; }
_sim_count_ge() { [ "$(sim_count "$1")" -ge "$2" ]; }

# A config text with the sim's providers and the given tiers object (JSON text).
config_with_tiers() {
    cat <<JSON
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:$SIM_PORT/v1"},
    "backup": {"base_url": "http://127.0.0.1:$SIM_PORT/v1"}
  },
  "tiers": $1
}
JSON
}

# refuse_with_cat FILE REASON — `cat FILE > M/config.json` fails with EINVAL, nothing changes,
# status and the log give REASON, the config in force is still max_tokens 100.
refuse_with_cat() {
    snapshot
    run bash -c 'cat "$1" >"$2"' _ "$1" "$MNT/config.json"
    echo "cat: status $status, output: $output"
    [ "$status" -ne 0 ] || return 1
    [[ $output == *"Invalid argument"* ]] || return 1
    assert_unchanged || return 1
    assert_refused "$2" || return 1
    in_force 100
}

# mount_without_config — mount with no --config: the config lives in STATE/config.json.
mount_without_config() {
    "$ROUTEFS_BIN" "$MNT" --state "$STATE" --log "$RFS_LOG" -f \
        </dev/null >>"$RFS_DIR/routefs.stderr" 2>&1 3>&- &
    RFS_PID=$!
    echo "$RFS_PID" >"$RFS_DIR/routefs.pid"
    wait_for 10 mountpoint -q "$MNT" || {
        echo "no mount; stderr:"; cat "$RFS_DIR/routefs.stderr"; return 1; }
}

# --- reading --------------------------------------------------------------------------

@test "config.json reads back the live config, jq-style" {
    mount_default
    run cat "$MNT/config.json"
    assert_success
    # the same document as the --config file
    [ "$(jq -S . "$MNT/config.json")" = "$(jq -S . "$RFS_DIR/config.json")" ]
    # two-space indent, "key": value
    assert_line '  "providers": {'
    assert_line '  "tiers": {'
    assert_line '      "max_tokens": 100'
    assert_line '      "retries": 0,'
    [ "${lines[0]}" = "{" ]
    [ "${lines[-1]}" = "}" ]
    # stat size matches what a read returns (cp and editors trust it)
    [ "$(stat -c %s "$MNT/config.json")" = "$(wc -c <"$MNT/config.json")" ]
    assert_config_ok
}

# --- valid edits, each tool -----------------------------------------------------------

@test "cat new.json > config.json: applied, in force, persisted" {
    mount_default
    in_force 100
    new_config '.tiers.fast.max_tokens = 321'
    run bash -c 'cat "$1" >"$2"' _ "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    [ "$(config_field .tiers.fast.max_tokens)" = 321 ]
    cmp "$RFS_DIR/new.json" "$RFS_DIR/config.json"      # the --config file got the new text
    in_force 321
    assert_config_ok
    grep -q "config applied" "$RFS_LOG"
}

@test "cp new.json config.json: applied, in force, persisted" {
    mount_default
    new_config '.tiers.fast.max_tokens = 222'
    run cp "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    [ "$(config_field .tiers.fast.max_tokens)" = 222 ]
    cmp "$RFS_DIR/new.json" "$RFS_DIR/config.json"
    in_force 222
    assert_config_ok
}

@test "sed -i on config.json: applied, in force, persisted" {
    mount_default
    run sed -i 's/"max_tokens": 100/"max_tokens": 150/' "$MNT/config.json"
    assert_success
    [ "$(config_field .tiers.fast.max_tokens)" = 150 ]
    [ "$(jq .tiers.fast.max_tokens "$RFS_DIR/config.json")" = 150 ]
    grep -qF '"max_tokens": 150' "$RFS_DIR/config.json"
    in_force 150
    assert_config_ok
    # sed's temporary file is gone from the mount root and from the state directory
    run ls -A "$MNT"
    refute_output --regexp 'sed[A-Za-z0-9]{6}'
    [ -z "$(ls -A "$STATE/files/root" 2>/dev/null)" ]
}

@test "vim (-u NONE) edits config.json: applied, in force, persisted" {
    mount_default
    run env TERM=dumb timeout 30 vim -u NONE -i NONE -N -E -s \
        -c '%s/"max_tokens": 100/"max_tokens": 175/' -c 'wq' "$MNT/config.json" </dev/null
    echo "vim: status $status, output: $output"
    assert_success
    [ "$(config_field .tiers.fast.max_tokens)" = 175 ]
    [ "$(jq .tiers.fast.max_tokens "$RFS_DIR/config.json")" = 175 ]
    in_force 175
    assert_config_ok
}

@test "vim with defaults (swap, writebackup) edits config.json: applied, no leftovers" {
    mount_default
    run env TERM=dumb timeout 30 vim -u DEFAULTS -i NONE -N -E -s \
        -c '%s/"max_tokens": 100/"max_tokens": 99/' -c 'wq' "$MNT/config.json" </dev/null
    echo "vim: status $status, output: $output"
    assert_success
    # a shorter text: no trailing bytes of the old one
    jq . "$MNT/config.json" >/dev/null
    jq . "$RFS_DIR/config.json" >/dev/null
    [ "$(config_field .tiers.fast.max_tokens)" = 99 ]
    [ "$(jq .tiers.fast.max_tokens "$RFS_DIR/config.json")" = 99 ]
    in_force 99
    assert_config_ok
    # no swap file, probe file or backup is left behind after a successful write
    run ls -A "$MNT"
    refute_output --partial ".swp"
    refute_output --partial "4913"
    refute_output --partial "config.json~"
}

@test "jq ... > new.json && mv new.json config.json (cross-device): applied, persisted" {
    mount_default
    run bash -c 'jq ".tiers.fast.max_tokens = 444" "$1" >"$2" && mv "$2" "$1"' _ \
        "$MNT/config.json" "$RFS_DIR/new.json"
    echo "$output"
    assert_success
    [ ! -e "$RFS_DIR/new.json" ]
    [ -f "$MNT/config.json" ]
    run ls "$MNT"
    assert_line config.json
    [ "$(config_field .tiers.fast.max_tokens)" = 444 ]
    [ "$(jq .tiers.fast.max_tokens "$RFS_DIR/config.json")" = 444 ]
    in_force 444
    assert_config_ok
}

@test "Python open/write/close on config.json: applied, persisted" {
    mount_default
    new_config '.tiers.fast.max_tokens = 555'
    run timeout 10 python3 - "$MNT/config.json" "$RFS_DIR/new.json" <<'PY'
import sys
text = open(sys.argv[2]).read()
f = open(sys.argv[1], "w")
f.write(text)
f.close()
print("ok")
PY
    assert_success
    assert_output ok
    [ "$(config_field .tiers.fast.max_tokens)" = 555 ]
    cmp "$RFS_DIR/new.json" "$RFS_DIR/config.json"
    in_force 555
    assert_config_ok
}

@test "mv of a file written inside the mount root onto config.json: applied" {
    mount_default
    new_config '.tiers.fast.max_tokens = 123' "$MNT/edit.tmp"
    run mv "$MNT/edit.tmp" "$MNT/config.json"
    assert_success
    [ ! -e "$MNT/edit.tmp" ]
    [ "$(config_field .tiers.fast.max_tokens)" = 123 ]
    in_force 123
    # an invalid one: the rename fails, the file stays where it was
    new_config '.tiers.fast.route = "sim/a,,sim/b"' "$MNT/bad.tmp"
    snapshot
    run mv "$MNT/bad.tmp" "$MNT/config.json"
    assert_failure      # GNU mv words rename's EINVAL as "to a subdirectory of itself"
    [ -f "$MNT/bad.tmp" ]
    assert_unchanged
    assert_refused 'tiers.fast.route[1]: empty model name'
    in_force 123
}

# --- invalid edits, each tool ---------------------------------------------------------

@test "cat bad.json > config.json: EINVAL, nothing changes, REFUSED in status and log" {
    mount_default
    new_config '.tiers.fast.max_tokens = "lots"' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'tiers.fast.max_tokens: expected a positive integer'
}

@test "cp bad.json config.json: cp reports Invalid argument, nothing changes" {
    mount_default
    new_config '.tiers.fast.bogus = 1' "$RFS_DIR/bad.json"
    snapshot
    run cp "$RFS_DIR/bad.json" "$MNT/config.json"
    assert_failure
    assert_output --partial "Invalid argument"
    assert_unchanged
    assert_refused 'tiers.fast: unknown field "bogus"'
    in_force 100
}

@test "sed -i with an invalid result: cannot rename, nothing changes, no temp file left" {
    mount_default
    snapshot
    run sed -i 's/"retries": 0/"retries": -1/' "$MNT/config.json"
    assert_failure
    assert_output --partial "Invalid argument"
    assert_unchanged
    assert_refused 'tiers.fast.retries: expected an integer from 0 to 20'
    in_force 100
    run ls -A "$MNT"
    refute_output --regexp 'sed[A-Za-z0-9]{6}'
}

@test "vim (-u NONE) with an invalid edit: vim fails, original kept, REFUSED in status" {
    mount_default
    snapshot
    run env TERM=dumb timeout 30 vim -u NONE -i NONE -N -E -s \
        -c '%s/"max_tokens": 100/"max_tokens": -100/' -c 'wq' "$MNT/config.json" </dev/null
    echo "vim: status $status, output: $output"
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ]
    assert_unchanged semantic
    in_force 100
    # the reason is readable afterwards, even though vim put the original text back
    assert_refused 'tiers.fast.max_tokens: expected a positive integer'
}

@test "vim with defaults (swap, writebackup) and an invalid edit: fails, original kept" {
    mount_default
    snapshot
    run env TERM=dumb timeout 30 vim -u DEFAULTS -i NONE -N -E -s \
        -c '%s/"sim\/c"/{"provider": "nope", "model": "sim\/c"}/' -c 'wq' "$MNT/config.json" </dev/null
    echo "vim: status $status, output: $output"
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ]
    assert_unchanged semantic
    in_force 100
    run ls -A "$MNT"
    refute_output --partial ".swp"
    assert_refused 'tiers.other.route[0]: unknown provider "nope"'
}

@test "jq + cross-device mv of an invalid config: mv fails, config.json stays" {
    mount_default
    snapshot
    run bash -c 'jq ".budget = {\"daily_usd\": -5}" "$1" >"$2" && mv "$2" "$1"' _ \
        "$MNT/config.json" "$RFS_DIR/bad.json"
    echo "$output"
    assert_failure
    assert_output --partial "Invalid argument"
    # config.json is still there (not hidden by the unlink half of the mv) and unchanged
    [ -f "$MNT/config.json" ]
    run ls "$MNT"
    assert_line config.json
    assert_unchanged
    assert_refused 'budget.daily_usd: expected a non-negative number'
    in_force 100
}

@test "Python write of an invalid config: close raises EINVAL, nothing changes" {
    mount_default
    snapshot
    run timeout 10 python3 - "$MNT/config.json" <<'PY'
import errno, sys
f = open(sys.argv[1], "w")
f.write('{"providers": {}, "tiers": {}}\n')
try:
    f.close()
except OSError as e:
    print("close:", errno.errorcode.get(e.errno), e.strerror)
    sys.exit(3)
print("close succeeded")
PY
    echo "$output"
    [ "$status" -eq 3 ]
    assert_output --partial "EINVAL"
    assert_unchanged
    assert_refused 'providers: expected a non-empty object'
    in_force 100
}

@test "truncating config.json to nothing is refused" {
    mount_default
    snapshot
    run bash -c ': >"$1"' _ "$MNT/config.json"
    echo "$output"
    assert_unchanged
    run cat "$MNT/status"
    assert_output --partial "config: REFUSED"
    in_force 100
}

@test "a valid edit after a refused one clears REFUSED" {
    mount_default
    new_config '.tiers.fast.max_tokens = 0' "$RFS_DIR/bad.json"
    run cp "$RFS_DIR/bad.json" "$MNT/config.json"
    assert_failure
    assert_refused 'tiers.fast.max_tokens'
    new_config '.tiers.fast.max_tokens = 101'
    run cp "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    assert_config_ok
    in_force 101
}

# --- validation messages --------------------------------------------------------------

@test "JSON syntax error: refused with line and column" {
    mount_default
    printf '{\n  "providers": {\n    "sim": {"base_url" "http://127.0.0.1:1/v1"}\n  }\n}\n' \
        >"$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'line 3, column 24: invalid JSON'
}

@test "unknown provider in a route: refused naming the hop" {
    mount_default
    new_config '.tiers.fast.route[1] = {"provider": "nope", "model": "sim/b"}' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'tiers.fast.route[1]: unknown provider "nope"'
}

@test "empty route (list or string): refused" {
    mount_default
    new_config '.tiers.fast.route = []' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'tiers.fast.route: empty route'
    new_config '.tiers.other.route = " "' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'tiers.other.route: empty route'
}

@test "unknown field: refused naming it" {
    mount_default
    new_config '.tiers.fast.max_tokenz = 5' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'tiers.fast: unknown field "max_tokenz"'
    new_config '.extra = true' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'unknown field "extra"'
}

@test "wrong type: refused naming the field" {
    mount_default
    new_config '.tiers.fast.max_tokens = "100"' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'tiers.fast.max_tokens: expected a positive integer'
    new_config '.providers.sim.base_url = 42' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'providers.sim.base_url: expected a string'
}

@test "negative cap: refused" {
    mount_default
    new_config '.budget = {"daily_usd": -1}' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'budget.daily_usd: expected a non-negative number'
    new_config '.tiers.fast.daily_usd = -0.5' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'tiers.fast.daily_usd: expected a non-negative number'
}

@test "negative timeout and negative price: refused" {
    mount_default
    new_config '.tiers.fast.timeout_ms = -1' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'tiers.fast.timeout_ms: expected a positive integer'
    new_config '.prices = {"sim/a": {"prompt": -1, "completion": 1}}' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'prices.sim/a.prompt: expected a non-negative number'
}

@test "duplicate tier names: refused" {
    mount_default
    config_with_tiers '{
    "fast": {"route": ["sim/a"], "max_tokens": 7},
    "fast": {"route": ["sim/c"], "max_tokens": 8}
  }' >"$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" 'tiers: duplicate tier "fast"'
}

@test "tier names that cannot be directories (../x, .hidden): refused, no directory made" {
    mount_default
    new_config '.tiers["../x"] = {"route": ["sim/a"]}' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" "tiers: tier name \"../x\" must not contain '/'"
    new_config '.tiers[".hidden"] = {"route": ["sim/a"]}' "$RFS_DIR/bad.json"
    refuse_with_cat "$RFS_DIR/bad.json" "tiers: tier name \".hidden\" must not start with '.'"
    [ ! -e "$MNT/.hidden" ]
    [ ! -e "$RFS_DIR/x" ]
    [ ! -e "$STATE/x" ]
    [ ! -e "$STATE/files/tiers/.hidden" ]
    run ls -A "$MNT"
    refute_line .hidden
}

# --- tiers follow the config ----------------------------------------------------------

@test "adding a tier makes its directory appear and it serves jobs" {
    mount_default
    [ ! -e "$MNT/cheap" ]
    new_config '.tiers.cheap = {"route": ["sim/d"], "retries": 0, "max_tokens": 33}'
    run cp "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    [ -d "$MNT/cheap" ]
    run ls "$MNT"
    assert_line cheap
    in_force 33 cheap sim/d
    run read_out "$MNT/cheap/probe$_probe_n.out"
    assert_output "sim[sim/d]: probe $_probe_n"
}

@test "removing a tier hides it; its results stay in STATE and come back with the tier" {
    mount_default
    echo "keep me" >"$MNT/other/p"
    run read_out "$MNT/other/p.out"
    assert_success
    assert_output "sim[sim/c]: keep me"
    new_config 'del(.tiers.other)'
    run cp "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    [ ! -e "$MNT/other" ]
    run ls "$MNT"
    refute_line other
    run bash -c 'echo x >"$1"' _ "$MNT/other/q"
    assert_failure
    # kept in the state store
    [ "$(state_sql "SELECT state, length(out) > 0, length(meta) > 0 FROM prompts WHERE path = 'other/p'")" = "3|1|1" ]
    before=$(sim_total)
    new_config '.tiers.other = {"route": ["sim/c"], "retries": 0, "timeout_ms": 5000}'
    run cp "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    [ -d "$MNT/other" ]
    run read_out "$MNT/other/p.out"
    assert_success
    assert_output "sim[sim/c]: keep me"
    [ "$(meta "$MNT/other/p.meta" .state)" = "done" ]
    [ "$(sim_total)" = "$before" ]     # no job was re-run
}

@test "renaming a tier: the new directory appears, the old one goes" {
    mount_default
    new_config '.tiers |= with_entries(if .key == "other" then .key = "renamed" else . end)'
    ls "$MNT/other" >/dev/null      # the kernel knows the old directory
    run cp "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    [ -d "$MNT/renamed" ]
    [ ! -e "$MNT/other" ]
    echo hi >"$MNT/renamed/p"
    run read_out "$MNT/renamed/p.out"
    assert_output "sim[sim/c]: hi"
}

# --- jobs and edits -------------------------------------------------------------------

@test "jobs in flight keep their route; new jobs use the new one" {
    mount_default
    sim_behave sim/a '{"latency_ms": 2000}'
    echo "old route" >"$MNT/fast/inflight"
    wait_for 5 _sim_count_ge sim/a 1
    new_config '.tiers.fast.route = ["sim/c"] | .tiers.fast.max_tokens = 64'
    run cp "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    echo "new route" >"$MNT/fast/fresh"
    run read_out "$MNT/fast/fresh.out"
    assert_output "sim[sim/c]: new route"
    run read_out "$MNT/fast/inflight.out"
    assert_success
    assert_output "sim[sim/a]: old route"
    [ "$(meta "$MNT/fast/inflight.meta" '.route[0].model')" = sim/a ]
    [ "$(meta "$MNT/fast/fresh.meta" '.route | map(.model) | join(",")')" = sim/c ]
    [ "$(sim_last_body sim/c | jq -r .max_tokens)" = 64 ]
}

@test "5 edits while a batch of 50 runs: every job finishes, nothing lost" {
    rfs_default_config ', "timeout_ms": 10000, "max_tokens": 100, "concurrency": 4'
    rfs_mount
    sim_behave '*' '{"latency_ms": 200}'
    for e in 1 2 3 4 5; do
        for i in $(seq $(((e - 1) * 10)) $((e * 10 - 1))); do
            echo "prompt $i" >"$MNT/fast/p$i"
        done
        # alternate the route between sim/a and sim/c, and bump max_tokens
        if ((e % 2)); then model=sim/c; else model=sim/a; fi
        new_config ".tiers.fast.max_tokens = $((100 + e)) | .tiers.fast.route = [\"$model\"]"
        run cp "$RFS_DIR/new.json" "$MNT/config.json"
        assert_success
        [ "$(config_field .tiers.fast.max_tokens)" = $((100 + e)) ]
    done
    running=$(grep '^tier fast:' "$MNT/status")
    echo "after the edits: $running"
    for i in $(seq 0 49); do
        run read_out "$MNT/fast/p$i.out"
        [ "$status" -eq 0 ] || { echo "p$i: status $status, $output"; false; }
        [[ $output =~ ^sim\[sim/[abc]\]:\ prompt\ $i$ ]] || { echo "p$i: $output"; false; }
        [ "$(meta "$MNT/fast/p$i.meta" .state)" = "done" ]
        # each job ran the route it started with
        [ "$(meta "$MNT/fast/p$i.meta" '.route[0].model == .model')" = true ]
    done
    [ "$(sim_total)" -eq 50 ]
    [ "$(jq -r .tiers.fast.max_tokens "$RFS_DIR/config.json")" = 105 ]
    assert_config_ok
    run grep -c '^{' "$MNT/activity.jsonl"
    [ "$output" -eq 50 ]
}

@test "concurrent editors: only valid configs are ever in force" {
    mount_default
    new_config '.tiers.fast.max_tokens = 201' "$RFS_DIR/a.json"
    new_config '.tiers.fast.max_tokens = 202' "$RFS_DIR/b.json"
    new_config '.tiers.fast.max_tokens = -3' "$RFS_DIR/bad.json"
    pids=()
    for _ in 1 2 3 4 5 6; do
        cp "$RFS_DIR/a.json" "$MNT/config.json" 2>/dev/null &
        pids+=($!)
        cp "$RFS_DIR/bad.json" "$MNT/config.json" 2>/dev/null &
        pids+=($!)
        cp "$RFS_DIR/b.json" "$MNT/config.json" 2>/dev/null &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    got=$(config_field .tiers.fast.max_tokens)
    echo "in force: $got"
    [[ $got == 201 || $got == 202 ]]
    [ "$(jq .tiers.fast.max_tokens "$RFS_DIR/config.json")" = "$got" ]
    in_force "$got"
}

# --- persistence ----------------------------------------------------------------------

@test "an edit survives a remount" {
    mount_default
    run sed -i 's/"max_tokens": 100/"max_tokens": 250/' "$MNT/config.json"
    assert_success
    new_config '.tiers.extra = {"route": ["sim/e"], "retries": 0}'
    run cp "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    rfs_unmount
    rfs_mount
    [ "$(config_field .tiers.fast.max_tokens)" = 250 ]
    [ -d "$MNT/extra" ]
    in_force 250
}

@test "without --config, edits persist to STATE/config.json and survive a remount" {
    rfs_default_config ', "timeout_ms": 5000, "max_tokens": 100'
    cp "$RFS_DIR/config.json" "$STATE/config.json"
    mount_without_config
    in_force 100
    new_config '.tiers.fast.max_tokens = 111'
    run cp "$RFS_DIR/new.json" "$MNT/config.json"
    assert_success
    cmp "$RFS_DIR/new.json" "$STATE/config.json"
    [ "$(find "$STATE/config.json" -perm 0600 | wc -l)" -eq 1 ]
    in_force 111
    rfs_unmount
    mount_without_config
    [ "$(config_field .tiers.fast.max_tokens)" = 111 ]
    in_force 111
}

# --- editor scratch files -------------------------------------------------------------

@test "scratch files at the mount root: create, write, read, rename, truncate, unlink" {
    mount_default
    printf 'swap bytes' >"$MNT/.config.json.swp"
    run cat "$MNT/.config.json.swp"
    assert_output "swap bytes"
    printf ' more' >>"$MNT/.config.json.swp"
    run cat "$MNT/.config.json.swp"
    assert_output "swap bytes more"
    [ "$(stat -c %s "$MNT/.config.json.swp")" = 15 ]
    # editors chmod and touch their files: accepted
    run chmod 0644 "$MNT/.config.json.swp"
    assert_success
    run touch "$MNT/.config.json.swp"
    assert_success
    run ls -A "$MNT"
    assert_line .config.json.swp
    # rename both ways
    mv "$MNT/.config.json.swp" "$MNT/4913"
    [ ! -e "$MNT/.config.json.swp" ]
    run cat "$MNT/4913"
    assert_output "swap bytes more"
    mv "$MNT/4913" "$MNT/config.json~"
    run cat "$MNT/config.json~"
    assert_output "swap bytes more"
    # truncate and fsync
    truncate -s 4 "$MNT/config.json~"
    run cat "$MNT/config.json~"
    assert_output "swap"
    run timeout 10 python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b"probe")
os.fsync(fd)
os.close(fd)' "$MNT/sedAbc123"
    assert_success
    run cat "$MNT/sedAbc123"
    assert_output probe
    # unlink
    rm "$MNT/config.json~" "$MNT/sedAbc123"
    [ ! -e "$MNT/config.json~" ]
    [ ! -e "$MNT/sedAbc123" ]
    run ls -A "$MNT"
    refute_line "config.json~"
    refute_line sedAbc123
    [ -z "$(ls -A "$STATE/files/root" 2>/dev/null)" ]
    # none of this touched the config
    assert_config_ok
    in_force 100
}

@test "renaming config.json away (vim's backup) copies it and config.json stays" {
    mount_default
    run mv "$MNT/config.json" "$MNT/config.json~"
    assert_success
    [ -f "$MNT/config.json" ]
    cmp "$MNT/config.json" "$MNT/config.json~"
    in_force 100
    rm "$MNT/config.json~"
}

# --- SIGHUP ---------------------------------------------------------------------------

@test "SIGHUP re-reads the --config file: a valid change is applied" {
    mount_default
    jq '.tiers.fast.max_tokens = 77 | .tiers.hup = {"route": ["sim/c"], "retries": 0}' \
        "$RFS_DIR/config.json" >"$RFS_DIR/next.json"
    cat "$RFS_DIR/next.json" >"$RFS_DIR/config.json"
    kill -HUP "$RFS_PID"
    wait_for 5 _field_is .tiers.fast.max_tokens 77
    [ "$(config_field .tiers.fast.max_tokens)" = 77 ]
    [ -d "$MNT/hup" ]
    kill -0 "$RFS_PID"                 # SIGHUP does not end the daemon
    mountpoint -q "$MNT"
    in_force 77
    assert_config_ok
    grep -q "SIGHUP: config reloaded" "$RFS_LOG"
}

@test "SIGHUP with an invalid --config file: refused, previous config in force" {
    mount_default
    snapshot
    jq '.tiers.fast.route = ["nope/x", {"provider": "ghost", "model": "m"}]' \
        "$RFS_DIR/config.json" >"$RFS_DIR/next.json"
    cat "$RFS_DIR/next.json" >"$RFS_DIR/config.json"
    kill -HUP "$RFS_PID"
    wait_for 5 grep -q "REFUSED" "$MNT/status"
    run cat "$MNT/status"
    assert_output --partial 'config: REFUSED last edit: '
    assert_output --partial 'tiers.fast.route[1]: unknown provider "ghost"'
    grep "SIGHUP: config refused" "$RFS_LOG" | grep -qF 'unknown provider "ghost"'
    cat "$MNT/config.json" >"$RFS_DIR/after.mnt"
    cmp "$RFS_DIR/before.mnt" "$RFS_DIR/after.mnt"
    kill -0 "$RFS_PID"
    in_force 100
    # a syntax error too
    printf '{"providers": ' >"$RFS_DIR/config.json"
    kill -HUP "$RFS_PID"
    wait_for 5 grep -q "line 1, column" "$MNT/status"
    run cat "$MNT/status"
    assert_output --partial 'line 1, column'
    in_force 100
}

# --- routefs check --------------------------------------------------------------------

@test "routefs check: a valid file exits 0 and says ok" {
    rfs_default_config
    run rfs_cli check "$RFS_DIR/config.json"
    assert_success
    assert_output --partial "ok"
    assert_output --partial "2 tiers"
    run mountpoint -q "$MNT"
    assert_failure
}

@test "routefs check: invalid files exit nonzero with the message" {
    printf '{\n  "providers": {\n    "sim": {"base_url" "http://127.0.0.1:1/v1"}\n  }\n}\n' \
        >"$RFS_DIR/syntax.json"
    run rfs_cli check "$RFS_DIR/syntax.json"
    echo "$output"
    [ "$status" -ne 0 ] && [ "$status" -lt 124 ]
    assert_output --partial "line 3, column 24: invalid JSON"
    assert_output --partial "syntax.json"

    config_with_tiers '{"fast": {"route": ["sim/a", {"provider": "nope", "model": "m"}]}}' \
        >"$RFS_DIR/provider.json"
    run rfs_cli check "$RFS_DIR/provider.json"
    [ "$status" -ne 0 ] && [ "$status" -lt 124 ]
    assert_output --partial 'tiers.fast.route[1]: unknown provider "nope"'

    config_with_tiers '{"fast": {"route": []}}' >"$RFS_DIR/empty.json"
    run rfs_cli check "$RFS_DIR/empty.json"
    [ "$status" -ne 0 ] && [ "$status" -lt 124 ]
    assert_output --partial 'tiers.fast.route: empty route'

    config_with_tiers '{".hidden": {"route": ["sim/a"]}}' >"$RFS_DIR/name.json"
    run rfs_cli check "$RFS_DIR/name.json"
    [ "$status" -ne 0 ] && [ "$status" -lt 124 ]
    assert_output --partial "must not start with '.'"

    run rfs_cli check "$RFS_DIR/no-such.json"
    [ "$status" -ne 0 ] && [ "$status" -lt 124 ]
    assert_output --partial "no-such.json"
}

@test "routefs check and the mount agree: what check refuses, config.json refuses" {
    mount_default
    new_config '.tiers.fast.concurrency = 0' "$RFS_DIR/bad.json"
    run rfs_cli check "$RFS_DIR/bad.json"
    [ "$status" -ne 0 ] && [ "$status" -lt 124 ]
    msg=${output#"$RFS_DIR/bad.json: "}
    echo "check says: $msg"
    [ -n "$msg" ]
    refuse_with_cat "$RFS_DIR/bad.json" "$msg"
}

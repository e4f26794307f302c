#!/usr/bin/env bats
# routefs end-to-end: redaction at the sink.  A provider that echoes the caller's API key
# back in every form a server might (routefs-sim's echo_auth on a 401 error message,
# echo_auth_ok as the answer's "model": raw, JSON-escaped, percent-encoded, upper and
# lower case, cut to a prefix), and every place a person can see afterwards: NAME.meta,
# NAME.err, activity.jsonl, providers.json, status, metrics.prom, spend.json, the log,
# `routefs wait` output, report.html, an export, the state directory.
# Each test gets a fresh directory, simulator and daemon.

load helpers

# '-' and '_' so that the JSON-escaped and percent-encoded forms differ from the raw one
KEY="sk-Zq7-xK_9mW-4tR_p2Lv-8bNc"
FORMS="raw json_escaped percent upper lower prefix8 all"

setup() {
    rfs_setup
    export ROUTEFS_TEST_KEY="$KEY"
}

teardown() {
    rfs_teardown
}

# echo_config — provider "sim" sends the key; its breaker never opens here (every job
# below fails with a 401 on purpose, which would otherwise open it after 5).
echo_config() {
    rfs_config <<'JSON'
{
  "providers": {
    "sim": {"base_url": "http://127.0.0.1:SIM_PORT/v1", "api_key_env": "ROUTEFS_TEST_KEY",
            "failure_threshold": 1000, "cooldown_ms": 100}
  },
  "prices": {"sim/a": {"prompt": 1.0, "completion": 2.0}},
  "tiers": {"fast": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000}}
}
JSON
}

# key_leaks FILE... — prints "FILE: what" for each file holding the key or any 8
# characters of it in a row, in any case, raw or after undoing JSON escapes (\uXXXX, \/)
# and percent-encoding, once or twice, in any order; fails when one does.
key_leaks() {
    python3 - "$KEY" "$@" <<'PY'
import re, sys, urllib.parse
key, files = sys.argv[1].lower(), sys.argv[2:]
windows = {key[i:i + 8] for i in range(len(key) - 7)}
def unjson(t):
    t = re.sub(r'\\u([0-9a-fA-F]{4})', lambda m: chr(int(m.group(1), 16)), t)
    return t.replace('\\/', '/')
bad = 0
for f in files:
    try:
        raw = open(f, 'rb').read().decode('utf-8', 'replace')
    except OSError as e:
        print("%s: cannot read: %s" % (f, e)); bad = 1; continue
    unpct = urllib.parse.unquote
    undo = {'json': unjson, 'json2': lambda t: unjson(unjson(t.replace('\\\\', '\\'))),
            'percent': unpct, 'percent2': lambda t: unpct(unpct(t))}
    views = {'raw': raw}
    for a, fa in undo.items():
        views[a] = fa(raw)
        for b, fb in undo.items():
            views[a + '+' + b] = fb(fa(raw))
    for how, text in views.items():
        low = text.lower()
        hit = next((w for w in sorted(windows) if w in low), None)
        if hit:
            at = low.index(hit)
            print("%s: %s (%s view): ...%s..." % (f, "the key" if key in low else "part of the key",
                                                  how, text[max(0, at - 30):at + 40]))
            bad = 1
            break
sys.exit(bad)
PY
}

@test "key_leaks finds the key in each form the sim echoes it (the check can fail)" {
    for f in raw json_escaped percent upper lower prefix8; do
        printf '{"error": {"message": "key %s"}}\n' \
            "$(python3 -c 'import sys; k = sys.argv[1]; f = sys.argv[2]
print({"raw": k, "json_escaped": k.replace("-", "\\u002d").replace("_", "\\u005f"),
       "percent": "".join(c if c.isalnum() else "%%%02X" % ord(c) for c in k),
       "upper": k.upper(), "lower": k.lower(), "prefix8": k[:14] + "****"}[f])' "$KEY" "$f")" \
            >"$RFS_DIR/probe.$f"
        run key_leaks "$RFS_DIR/probe.$f"
        echo "$f: $output"
        assert_failure
    done
    # twice-encoded: a JSON text quoted in a JSON string, a percent-encoded URL encoded again
    printf '%s\n' 'sk\\u002dZq7\\u002dxK' 'sk%252DZq7%252DxK%255F9' >"$RFS_DIR/probe.twice"
    cat "$RFS_DIR/probe.twice"
    run key_leaks "$RFS_DIR/probe.twice"
    echo "twice: $output"
    assert_failure
    echo "nothing here: [REDACTED] sk-or-v1" >"$RFS_DIR/probe.clean"
    run key_leaks "$RFS_DIR/probe.clean"
    assert_success
}

@test "a key echoed in every form (401 message and answer model) shows in no sink" {
    echo_config
    rfs_mount
    local f
    for f in $FORMS; do
        sim_behave sim/a "{\"echo_auth\": \"$f\"}"
        run_job "$MNT/fast/err_$f" "echo in a 401: $f"
        [ "$(jq -r .state "$MNT/fast/err_$f.meta")" = failed ]
        [ "$(jq -r '.hops[0].status' "$MNT/fast/err_$f.meta")" = 401 ]
        sim_behave sim/a "{\"echo_auth_ok\": \"$f\"}"
        run_job "$MNT/fast/ok_$f" "echo in the answer: $f"
        [ "$(jq -r .state "$MNT/fast/ok_$f.meta")" = done ]
    done
    # the provider did get the key, and did echo it (the sim's own answer, seen directly)
    [ "$(sim_last_auth sim/a)" = "Bearer $KEY" ]
    sim_behave sim/a '{"echo_auth": "all"}'
    curl -s -H "Authorization: Bearer $KEY" -d '{"model": "sim/a", "messages": [{"role": "user", "content": "x"}]}' \
        "$SIM_URL/v1/chat/completions" >"$RFS_DIR/direct.json"
    run key_leaks "$RFS_DIR/direct.json"
    assert_failure
    # what routefs shows: redacted, and said to be
    cat "$MNT/fast/err_all.err"
    for f in $FORMS; do echo "ok_$f model: $(jq -r .model "$MNT/fast/ok_$f.meta")"; done
    run cat "$MNT/fast/err_raw.err"
    assert_output --partial "[REDACTED]"
    [ "$(jq -r .model "$MNT/fast/ok_raw.meta")" = "[REDACTED]" ]

    # every sink
    local sinks=() v
    for v in config.json status providers.json spend.json metrics.prom activity.jsonl; do
        cat "$MNT/$v" >"$RFS_DIR/sink.$v"
        sinks+=("$RFS_DIR/sink.$v")
    done
    for f in "$MNT"/fast/*.meta "$MNT"/fast/*.err "$MNT"/fast/ok_*.out; do
        sinks+=("$f")
    done
    run rfs_cli wait --timeout 10 "$MNT/fast"
    echo "wait: status $status"
    printf '%s\n' "$output" >"$RFS_DIR/sink.wait"
    [ "$status" -eq 1 ]                     # some failed, and are named
    grep -qF "err_raw" "$RFS_DIR/sink.wait"
    sinks+=("$RFS_DIR/sink.wait")
    timeout 30 "$ROUTEFS_BIN" report "$STATE" --config "$RFS_DIR/config.json" \
        >"$RFS_DIR/sink.report.html" 3>&-
    [ -s "$RFS_DIR/sink.report.html" ]
    sinks+=("$RFS_DIR/sink.report.html")
    mkdir "$RFS_DIR/export"
    timeout 30 "$ROUTEFS_BIN" export "$STATE" "$RFS_DIR/export" 3>&-
    while IFS= read -r -d '' f; do sinks+=("$f"); done < <(find "$RFS_DIR/export" -type f -print0)
    while IFS= read -r -d '' f; do sinks+=("$f"); done < <(find "$STATE" -type f -print0)
    sinks+=("$RFS_LOG" "$RFS_DIR/routefs.stderr")
    echo "${#sinks[@]} sinks"
    [ "${#sinks[@]}" -gt 40 ]
    run key_leaks "${sinks[@]}"
    echo "$output"
    assert_success
    # and what the unmount wrote last
    rfs_unmount
    sinks=("$RFS_LOG")
    while IFS= read -r -d '' f; do sinks+=("$f"); done < <(find "$STATE" -type f -print0)
    run key_leaks "${sinks[@]}"
    echo "$output"
    assert_success
}

@test "a key JSON-escaped twice or percent-encoded twice in an error message shows in no sink" {
    echo_config
    rfs_mount
    # the message as the provider's JSON carries it: "sk\\u002dZq7..." (a quoted JSON
    # text) and "sk%252DZq7..." (an encoded URL encoded again)
    local twice_json twice_pct
    twice_json="$(python3 -c 'import sys; print(sys.argv[1].replace("-", "\\u002d").replace("_", "\\u005f"))' "$KEY")"
    twice_pct="$(python3 -c 'import sys; print("".join(c if c.isalnum() else "%%25%02X" % ord(c) for c in sys.argv[1]))' "$KEY")"
    echo "forms: $twice_json $twice_pct"
    sim_behave sim/a "$(jq -cn --arg m "quoted: {\"key\": \"$twice_json\"} url: https://x.example/?k=$twice_pct" \
        '{status: 401, error_message: $m}')"
    run_job "$MNT/fast/twice" "twice"
    [ "$(jq -r .state "$MNT/fast/twice.meta")" = failed ]
    cat "$MNT/fast/twice.err"
    local sinks=("$MNT/fast/twice.err" "$MNT/fast/twice.meta") v
    for v in status providers.json activity.jsonl metrics.prom; do
        cat "$MNT/$v" >"$RFS_DIR/sink.$v"
        sinks+=("$RFS_DIR/sink.$v")
    done
    run rfs_cli wait --timeout 10 "$MNT/fast"
    printf '%s\n' "$output" >"$RFS_DIR/sink.wait"
    sinks+=("$RFS_DIR/sink.wait" "$RFS_LOG")
    run key_leaks "${sinks[@]}"
    echo "$output"
    assert_success
}

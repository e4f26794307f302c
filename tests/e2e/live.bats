#!/usr/bin/env bats
# Live output and cancellation (issue 12, points 3 and 4), on a real mount against
# routefs-sim streaming slowly (token_ms):
#   NAME.live grows under `tail -f`, is truncated and starts over when an attempt is
#   abandoned for the next hop, and is gone when the job ends; a truncated answer is never
#   a NAME.out; `status` and `routefs wait` show the tokens received so far;
#   deleting or rewriting a prompt, or removing its tier from the live config, aborts the
#   request on the wire (the sim counts the client leaving in "cancelled" and stops
#   sending) and bills what streamed as an estimate; an unstreamed request cancelled in
#   flight is billed at its worst case, marked estimated.
# Every wait is bounded; background readers are stopped by pid in teardown.

load helpers

# Prices: completion $1000 per million tokens ($0.001 a token), prompts free, so the
# worst case of a request is max_tokens × $0.001 = $1.00 and a streamed part of N tokens
# is billed N × $0.001.
MAX_TOKENS=1000
WORST_USD=1

setup() {
    rfs_setup
    rfs_config <<JSON
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1"},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"},
    "plain":  {"base_url": "http://127.0.0.1:SIM_PORT/v1", "stream": false}
  },
  "prices": {
    "sim/a": {"prompt": 0, "completion": 1000},
    "sim/b": {"prompt": 0, "completion": 1000},
    "sim/c": {"prompt": 0, "completion": 1000},
    "sim/d": {"prompt": 0, "completion": 1000}
  },
  "tiers": {
    "fast":  {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}], "retries": 0,
              "max_tokens": $MAX_TOKENS, "timeout_ms": 30000, "first_token_timeout_ms": 3000,
              "stall_timeout_ms": 800},
    "other": {"route": ["sim/c"], "retries": 0, "max_tokens": $MAX_TOKENS,
              "timeout_ms": 30000, "stall_timeout_ms": 800},
    "plain": {"route": [{"provider": "plain", "model": "sim/d"}], "retries": 0,
              "max_tokens": $MAX_TOKENS, "timeout_ms": 30000}
  }
}
JSON
}

teardown() {
    rfs_teardown
}

# words PREFIX N — "PREFIX1 PREFIX2 ... PREFIXN": a reply the sim streams word by word.
words() {
    local i out=""
    for ((i = 1; i <= $2; i++)); do out+="${out:+ }$1$i"; done
    printf '%s' "$out"
}

# size_of PATH — its size, or "none" when it does not exist.
size_of() { stat -c %s "$1" 2>/dev/null || echo none; }

# tokens_so_far PROMPT — the running job's tokens so far, from its .meta (0 when none).
tokens_so_far() { jq -r '.tokens_so_far // 0' "$1.meta" 2>/dev/null || echo 0; }
_tokens_at_least() { [ "$(tokens_so_far "$1")" -ge "$2" ]; }
_exists() { [ -e "$1" ]; }
_absent() { [ ! -e "$1" ]; }
_stat_is() { [ "$(sim_model_stat "$1" "$2")" = "$3" ]; }
_stat_at_least() { [ "$(sim_model_stat "$1" "$2")" -ge "$3" ]; }

# estimated_rows MODEL — the ledger rows of MODEL marked estimated, as JSON lines.
estimated_rows() { jq -c --arg m "$1" 'select(.model == $m and .estimated == 1)' "$(ledger_file)"; }

# assert_partial_bill MODEL SEEN SENT — exactly one estimated ledger row for MODEL, its
# cost more than 0 and less than the worst case, and within what streamed: at least the
# SEEN tokens routefs had before the abort, at most the SENT tokens the sim sent.
assert_partial_bill() {
    local rows cost
    wait_for 5 _has_estimated_row "$1" || { echo "no estimated ledger row for $1"; cat "$(ledger_file)"; return 1; }
    rows="$(estimated_rows "$1")"
    echo "estimated rows: $rows"
    [ "$(grep -c . <<<"$rows")" -eq 1 ]
    cost="$(jq -r .cost <<<"$rows")"
    jq -e --argjson c "$cost" --argjson w "$WORST_USD" --argjson lo "$2" --argjson hi "$3" \
        -n '$c > 0 and $c < $w and $c >= $lo * 0.001 - 1e-9 and $c <= $hi * 0.001 + 1e-9'
}
_has_estimated_row() { [ -n "$(estimated_rows "$1")" ]; }

# --- NAME.live ----------------------------------------------------------------------

@test "tail -f NAME.live shows the answer grow; .live is gone when the job ends and .out is whole" {
    rfs_mount
    sim_behave sim/a "{\"content\": \"$(words w 30)\", \"token_ms\": 100}"
    p="$MNT/fast/grow.txt"
    echo "grow" >"$p"
    wait_for 5 _exists "$p.live"
    rfs_bg timeout 20 tail -f -s 0.1 "$p.live" >"$RFS_DIR/tail.out" 2>"$RFS_DIR/tail.err"
    tailpid=$BG
    # several observations of a growing size, both of the file and of what tail printed
    sizes=() printed=()
    for ((i = 0; i < 40 && ${#sizes[@]} < 20; i++)); do
        s="$(size_of "$p.live")"
        [ "$s" = none ] && break
        sizes+=("$s")
        printed+=("$(stat -c %s "$RFS_DIR/tail.out")")
        sleep 0.25
    done
    echo "live sizes: ${sizes[*]}"
    echo "tail printed: ${printed[*]}"
    distinct() { printf '%s\n' "$@" | sort -n | uniq | wc -l; }
    [ "$(distinct "${sizes[@]}")" -ge 4 ]
    [ "$(distinct "${printed[@]}")" -ge 4 ]
    for ((i = 1; i < ${#sizes[@]}; i++)); do
        [ "${sizes[i]}" -ge "${sizes[i - 1]}" ]        # it only grows within one attempt
        [ "${printed[i]}" -ge "${printed[i - 1]}" ]
    done
    # the job ends: .live disappears (ENOENT), .out holds the whole answer
    wait_for 10 _absent "$p.live"
    run stat "$p.live"
    assert_failure
    assert_output --partial "No such file or directory"
    run cat "$p.live"
    assert_failure
    [ "$(read_out "$p.out")" = "$(words w 30)" ]
    [ "$(meta "$p.meta" .state)" = done ]
    # what tail showed is the answer as it arrived: a prefix of it, never anything else
    sleep 0.3
    kill "$tailpid" 2>/dev/null || true
    shown="$(cat "$RFS_DIR/tail.out")"
    [ -n "$shown" ]
    [ "${#shown}" -gt 20 ]
    [[ "$(words w 30)" == "$shown"* ]]
    not grep -q truncated "$RFS_DIR/tail.err"
    # .live is never listed
    not grep -q '\.live$' <<<"$(ls -a "$MNT/fast")"
}

@test "an abandoned attempt truncates .live, which starts over with the next hop; a cut answer is never .out" {
    rfs_mount
    # hop 1 streams 12 words, then stops sending (a stall past stall_timeout_ms); hop 2
    # answers in full, slowly
    sim_behave sim/a "{\"content\": \"$(words alpha 40)\", \"token_ms\": 60, \"stall_after\": 12, \"stall_ms\": 10000}"
    sim_behave sim/b "{\"content\": \"$(words bravo 20)\", \"first_token_ms\": 400, \"token_ms\": 60}"
    p="$MNT/fast/hop.txt"
    echo "hop" >"$p"
    wait_for 5 _exists "$p.live"
    rfs_bg timeout 20 tail -f -s 0.05 "$p.live" >"$RFS_DIR/tail.out" 2>"$RFS_DIR/tail.err"
    tailpid=$BG
    # watch the size: it grows (hop 1), drops (truncated), grows again (hop 2)
    sizes=()
    for ((i = 0; i < 200; i++)); do
        s="$(size_of "$p.live")"
        [ "$s" = none ] && break
        [ "${#sizes[@]}" -gt 0 ] && [ "${sizes[-1]}" = "$s" ] || sizes+=("$s")
        # while it runs no .out is listed, whatever the state of the attempt: a listed
        # .out means the job has ended (between the size and the ls), so .live goes too
        if grep -qx 'hop\.txt\.out' <<<"$(ls "$MNT/fast")"; then
            wait_for 2 _absent "$p.live"
            break
        fi
        sleep 0.05
    done
    echo "live sizes: ${sizes[*]}"
    drop=-1
    for ((i = 1; i < ${#sizes[@]}; i++)); do
        if [ "${sizes[i]}" -lt "${sizes[i - 1]}" ]; then drop=$i; break; fi
    done
    [ "$drop" -ge 2 ]                                  # it had grown before it dropped
    [ "${sizes[drop - 1]}" -ge "$(words alpha 12 | wc -c)" ]
    [ "${sizes[drop]}" -eq 0 ]                         # emptied while hop 2 has sent nothing
    [ "$((${#sizes[@]} - drop))" -ge 3 ]               # and grew again after
    # the answer is hop 2's, whole, and nothing of hop 1's cut answer is in it
    [ "$(read_out "$p.out")" = "$(words bravo 20)" ]
    not grep -q alpha "$p.out"
    [ "$(meta "$p.meta" .fallback)" = true ]
    [ "$(meta "$p.meta" .model)" = sim/b ]
    wait_for 5 _absent "$p.live"
    sleep 0.2
    kill "$tailpid" 2>/dev/null || true
    cat "$RFS_DIR/tail.err"
    grep -q 'file truncated' "$RFS_DIR/tail.err"
    grep -q 'alpha1 alpha2' "$RFS_DIR/tail.out"
    grep -q 'bravo1 bravo2' "$RFS_DIR/tail.out"
    # hop 1's stream was abandoned: the sim saw the client leave
    [ "$(sim_model_stat sim/a cancelled)" -eq 1 ]
}

@test "a stream cut on its only hop fails the job: no .out with the partial answer" {
    rfs_mount
    sim_behave sim/c "{\"content\": \"$(words cut 30)\", \"token_ms\": 40, \"cut_after\": 10}"
    p="$MNT/other/cut.txt"
    echo "cut" >"$p"
    wait_for 5 _exists "$p.live"
    wait_state "$p" failed 10
    # the job failed: .out reads EIO, .err says why, the partial text is nowhere a result
    run timeout 5 cat "$p.out"
    assert_failure
    assert_output --partial "Input/output error"
    [ -s "$p.err" ]
    not grep -q cut1 "$p.err"
    [ "$(meta "$p.meta" .state)" = failed ]
    [ ! -e "$p.live" ]
    run ls "$MNT/other"
    assert_output --partial "cut.txt.err"
    [ "$(sim_model_stat sim/c tokens_sent)" -eq 10 ]
}

# --- tokens so far ------------------------------------------------------------------

@test "status and routefs wait show the tokens received so far for running jobs" {
    rfs_mount
    sim_behave sim/a "{\"content\": \"$(words t 80)\", \"token_ms\": 60}"
    p="$MNT/fast/count.txt"
    echo "count" >"$p"
    wait_for 5 _tokens_at_least "$p" 5
    st1="$(cat "$MNT/status")"
    echo "$st1"
    n1="$(sed -n 's/^streaming: 1 job(s) running, \([0-9]*\) token(s) received so far$/\1/p' <<<"$st1")"
    [ -n "$n1" ]
    [ "$n1" -ge 5 ]
    [ "$n1" -lt 80 ]
    sleep 0.6
    st2="$(cat "$MNT/status")"
    n2="$(sed -n 's/^streaming: 1 job(s) running, \([0-9]*\) token(s) received so far$/\1/p' <<<"$st2")"
    echo "tokens: $n1 then $n2"
    [ -n "$n2" ]
    [ "$n2" -gt "$n1" ]
    # routefs wait: progress lines name the tokens so far; the timeout report too
    run timeout 20 "$ROUTEFS_BIN" wait --interval 0.2 --timeout 1 "$MNT/fast" 3>&-
    echo "$output"
    [ "$status" -eq 3 ]
    line="$(grep -m1 'ended:' <<<"$output")"
    [[ $line =~ 1\ running,\ ([0-9]+)\ tokens\ so\ far ]]
    [ "${BASH_REMATCH[1]}" -ge "$n2" ]
    assert_output --regexp "pending: fast/count.txt \(running, [0-9]+ tokens\)"
    # once it ended, neither says streaming any more
    wait_state "$p" done 15
    not grep -q '^streaming:' "$MNT/status"
    run timeout 20 "$ROUTEFS_BIN" wait --interval 0.2 "$MNT/fast" 3>&-
    assert_success
    refute_output --partial "tokens so far"
}

# --- cancellation -------------------------------------------------------------------

# start_slow TIER NAME MODEL — a prompt whose answer streams 200 words at 50 ms; returns
# once routefs has received at least 5 tokens; sets P and SEEN (tokens seen so far).
start_slow() {
    sim_behave "$3" "{\"content\": \"$(words s 200)\", \"token_ms\": 50}"
    P="$MNT/$1/$2"
    echo "slow $2" >"$P"
    wait_for 5 _tokens_at_least "$P" 5
    SEEN="$(tokens_so_far "$P")"
    [ "$SEEN" -ge 5 ]
}

# assert_aborted MODEL SEEN — within a second the sim saw the client leave, and sent no
# more than a second's worth of tokens past what routefs had seen.
assert_aborted() {
    local t0 t1 sent
    t0=$(now_ms)
    wait_for 1 _stat_is "$1" cancelled 1 || { echo "not cancelled within 1 s"; sim_stats | jq ".models[\"$1\"]"; return 1; }
    t1=$(now_ms)
    echo "cancelled after $((t1 - t0)) ms"
    [ "$(sim_model_stat "$1" in_flight)" -eq 0 ]
    sent="$(sim_model_stat "$1" tokens_sent)"
    echo "seen $2, sent $sent"
    [ "$sent" -lt 200 ]
    [ "$sent" -le $(( $2 + 25 )) ]
    SENT=$sent
    sleep 0.5
    [ "$(sim_model_stat "$1" tokens_sent)" -eq "$sent" ]   # nothing more went out
}

@test "rm of a prompt mid-stream aborts the request on the wire and bills the streamed part, estimated" {
    rfs_mount
    start_slow other rm.txt sim/c
    rm "$P"
    assert_aborted sim/c "$SEEN"
    [ ! -e "$P.live" ]
    [ ! -e "$P.out" ]
    [ ! -e "$P.meta" ]
    assert_partial_bill sim/c "$SEEN" "$SENT"
    [ "$(sim_count sim/c)" -eq 1 ]
}

@test "rewriting a prompt mid-stream aborts the old request and runs the new content" {
    rfs_mount
    start_slow other rw.txt sim/c
    sim_behave sim/c '{"content": "the new answer"}'
    echo "new content" >"$P"
    assert_aborted sim/c "$SEEN"
    [ "$(read_out "$P.out")" = "the new answer" ]
    [ "$(sim_count sim/c)" -eq 2 ]
    assert_partial_bill sim/c "$SEEN" "$SENT"
    # the new job's own bill is there too, not estimated
    [ "$(jq -c 'select(.model == "sim/c" and .estimated == 0)' "$(ledger_file)" | grep -c .)" -eq 1 ]
}

@test "removing a prompt's tier from the live config aborts its request and bills it, estimated" {
    rfs_mount
    start_slow other tier.txt sim/c
    cp "$MNT/config.json" "$RFS_DIR/orig.json"   # (the --config file follows the edits)
    jq 'del(.tiers.other)' "$MNT/config.json" >"$RFS_DIR/new.json"
    cp "$RFS_DIR/new.json" "$MNT/config.json"
    [ ! -e "$MNT/other" ]
    assert_aborted sim/c "$SEEN"
    assert_partial_bill sim/c "$SEEN" "$SENT"
    [ "$(sim_count sim/c)" -eq 1 ]
    # the tier comes back: its prompt is there, failed (cancelled), not resent
    cp "$RFS_DIR/orig.json" "$MNT/config.json"
    wait_for 5 _exists "$MNT/other/tier.txt"
    wait_state "$MNT/other/tier.txt" failed 5
    meta "$MNT/other/tier.txt.meta" .error | grep -qi 'tier'
    sleep 0.3
    [ "$(sim_count sim/c)" -eq 1 ]
}

@test "an unstreamed request cancelled in flight is billed at its worst case, marked estimated" {
    rfs_mount
    sim_behave sim/d '{"latency_ms": 5000, "content": "late"}'
    p="$MNT/plain/slow.txt"
    echo "slow" >"$p"
    wait_for 5 _stat_is sim/d in_flight 1
    # sent without streaming
    jq -e '.stream != true' <<<"$(sim_last_body sim/d)"
    [ "$(sim_model_stat sim/d streams)" -eq 0 ]
    t0=$(now_ms)
    rm "$p"
    wait_for 2 _stat_is sim/d in_flight 0
    t1=$(now_ms)
    echo "connection gone after $((t1 - t0)) ms"
    [ $((t1 - t0)) -lt 1500 ]        # aborted, not answered after its 5 s
    wait_for 5 _has_estimated_row sim/d
    rows="$(estimated_rows sim/d)"
    echo "$rows"
    [ "$(grep -c . <<<"$rows")" -eq 1 ]
    jq -e --argjson w "$WORST_USD" '(.cost - $w) * (.cost - $w) < 1e-12' <<<"$rows"
    jq -e '.note | test("worst case")' <<<"$rows"
    [ "$(sim_charged sim/d)" = 0 ]   # the sim never answered it, so never billed it
}

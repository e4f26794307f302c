#!/usr/bin/env bats
# routefs against a hostile provider: routefs-sim's corpus of bad answers, one behaviour
# mode each (`routefs-sim --help`, "mode" and HOSTILE MODES).
#
# One mount serves the whole file (setup_file).  Each corpus entry has a tier h-MODE whose
# primary hop is the model hostile/MODE, behaving as MODE, on a provider of its own
# (p-MODE: one entry's failures never open the circuit breaker of another), and whose
# secondary hop is the healthy sim/healthy on provider "backup"; timeout_ms 1500, retries 1
# (0 for the entries that fail by timing out, so each costs one timeout).  Each test sends
# one prompt through one tier and checks:
#   - the job succeeds through the secondary, NAME.meta's first hop naming the hostile
#     provider with a clear one-line error; or, where the hostile answer is legitimately
#     usable, through the primary with no error (the test name says so);
#   - the result was read within BOUND_MS (timeout, not a hang: every read is bounded);
#   - the daemon is still alive, `status` reads, and its stderr has no sanitizer report.

load helpers

TIMEOUT_MS=1500
BOUND_MS=6000      # the tier timeout, a fallback and a loaded 2-core machine's slack

# Every corpus entry; the ones failing by timeout get retries 0.
CORPUS=(hang close malformed truncated error_object finish_error no_choices empty_content
        html missing_choices choices_not_array message_not_object content_number
        invalid_utf8 nul_content dup_keys usage_garbage top_array object_error empty_body
        trailing_garbage bom binary_body deep_nesting text_plain gzip sse redirect
        retry_after_years status_204 status_304 interim_only headers_only short_length
        conflicting_length reset huge huge_chunked drip chunked_forever long_header
        no_status_line)
SLOW=" hang interim_only drip chunked_forever "

setup_file() {
    rfs_setup
    local m retries first=1
    {
        echo '{"providers": {'
        echo '  "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}'
        for m in "${CORPUS[@]}"; do
            printf '  ,"p-%s": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}\n' "$m"
        done
        echo '}, "tiers": {'
        for m in "${CORPUS[@]}"; do
            retries=1
            [[ $SLOW == *" $m "* ]] && retries=0
            [ $first = 1 ] || printf ','
            first=0
            printf '  "h-%s": {"route": [{"provider": "p-%s", "model": "hostile/%s"},
                {"provider": "backup", "model": "sim/healthy"}],
                "retries": %d, "timeout_ms": %d}\n' "$m" "$m" "$m" "$retries" "$TIMEOUT_MS"
        done
        echo '}}'
    } | rfs_config
    rfs_mount
    for m in "${CORPUS[@]}"; do
        sim_behave "hostile/$m" "{\"mode\": \"$m\"}"
    done
}

teardown_file() {
    rfs_teardown
}

# send MODE — write one prompt into tier h-MODE and read its result, bounded; leaves
# bats' status/output from the read, PROMPT, F (the prompt's path), M (its .meta) and
# ELAPSED_MS (write to end of read).
send() {
    local mode=$1 t0
    PROMPT="hello from the $mode test"
    F="$MNT/h-$mode/p$BATS_TEST_NUMBER"
    t0=$(now_ms)
    printf '%s' "$PROMPT" >"$F"
    run timeout 20 cat "$F.out"
    ELAPSED_MS=$(($(now_ms) - t0))
    M="$F.meta"
    echo "read status $status after $ELAPSED_MS ms: $output"
    jq -c . "$M" || true
}

# The daemon survived: alive, `status` answers, no sanitizer report on its stderr.
assert_daemon_ok() {
    kill -0 "$(cat "$RFS_DIR/routefs.pid")"
    run timeout 5 cat "$MNT/status"
    assert_success
    [ -n "$output" ]
    [ -z "$(sanitizer_report "$RFS_DIR/routefs.stderr")" ]
}

# assert_failed_over MODE — after send: served by the healthy secondary; the hostile
# hop's record carries a clear one-line error; no hang.
assert_failed_over() {
    local mode=$1 err
    assert_success
    assert_output "sim[sim/healthy]: $PROMPT"
    [ "$(meta "$M" .state)" = done ]
    [ "$(meta "$M" '.hops[0].provider')" = "p-$mode" ]
    [ "$(meta "$M" '.hops[0].model')" = "hostile/$mode" ]
    err=$(meta "$M" '.hops[0].error')
    echo "hop 0 error: $err"
    [ "$err" != null ]
    [ -n "$err" ]
    [ "$(meta "$M" '.hops[0].error | test("\n")')" = false ]
    [ "$(meta "$M" '.hops[-1].provider')" = backup ]
    [ "$(meta "$M" '.hops[-1].error')" = null ]
    [ "$(meta "$M" '[.hops[] | select(.provider == "backup")] | length')" = 1 ]
    [ "$(meta "$M" .endpoint)" = backup ]
    [ "$(meta "$M" .fallback)" = true ]
    [ "$(meta "$M" .error)" = null ]
    [ ! -e "$F.err" ]
    [ "$ELAPSED_MS" -lt "$BOUND_MS" ]
    HOP0_ERROR=$err
    assert_daemon_ok
}

# assert_served_by_primary MODE — after send: the hostile answer was usable as it was.
assert_served_by_primary() {
    local mode=$1
    assert_success
    assert_output "sim[hostile/$mode]: $PROMPT"
    [ "$(meta "$M" .state)" = done ]
    [ "$(meta "$M" '.hops | length')" = 1 ]
    [ "$(meta "$M" '.hops[0].provider')" = "p-$mode" ]
    [ "$(meta "$M" '.hops[0].error')" = null ]
    [ "$(meta "$M" '.hops[0].status')" = 200 ]
    [ "$(meta "$M" .endpoint)" = "p-$mode" ]
    [ "$(meta "$M" .fallback)" = false ]
    [ "$ELAPSED_MS" -lt "$BOUND_MS" ]
    assert_daemon_ok
}

# --- bodies that are not a completion -----------------------------------------------

@test "hostile malformed (200, invalid JSON): fails over" {
    send malformed
    assert_failed_over malformed
}

@test "hostile truncated (Content-Length longer than the body, then close): fails over" {
    send truncated
    assert_failed_over truncated
}

@test "hostile html (502 with an HTML page): fails over" {
    send html
    assert_failed_over html
    [ "$(meta "$M" '.hops[0].status')" = 502 ]
}

@test "hostile error_object (HTTP 200 with an error object): fails over" {
    send error_object
    assert_failed_over error_object
    [ "$(meta "$M" '.hops[0].status')" = 200 ]
}

@test "hostile object_error (200 with \"object\":\"error\", vLLM style): fails over" {
    send object_error
    assert_failed_over object_error
}

@test "hostile finish_error (finish_reason \"error\"): fails over" {
    send finish_error
    assert_failed_over finish_error
}

@test "hostile missing_choices (no \"choices\" key): fails over" {
    send missing_choices
    assert_failed_over missing_choices
}

@test "hostile no_choices (empty \"choices\" array): fails over" {
    send no_choices
    assert_failed_over no_choices
}

@test "hostile choices_not_array (\"choices\" an object): fails over" {
    send choices_not_array
    assert_failed_over choices_not_array
}

@test "hostile message_not_object (\"message\" a string): fails over" {
    send message_not_object
    assert_failed_over message_not_object
}

@test "hostile empty_content (content null): fails over" {
    send empty_content
    assert_failed_over empty_content
}

@test "hostile content_number (content 42): fails over" {
    send content_number
    assert_failed_over content_number
}

@test "hostile top_array (the completion inside a top-level JSON array): fails over" {
    send top_array
    assert_failed_over top_array
}

@test "hostile empty_body (200, Content-Length: 0): fails over" {
    send empty_body
    assert_failed_over empty_body
}

@test "hostile trailing_garbage (a completion, then a second JSON document): fails over" {
    send trailing_garbage
    assert_failed_over trailing_garbage
}

@test "hostile binary_body (bytes 0x00-0xff as application/json): fails over" {
    send binary_body
    assert_failed_over binary_body
}

@test "hostile deep_nesting (100000 nested arrays, valid JSON): fails over, no stack overflow" {
    send deep_nesting
    assert_failed_over deep_nesting
}

# JSON text must be UTF-8 (RFC 8259 8.1): invalid bytes make the body malformed, and a
# .out that is not text breaks every pipeline downstream.  Failing over is the answer
# (serving the primary's text repaired, U+FFFD for the bad bytes, would do too); a .out
# of invalid UTF-8 is not.
@test "hostile invalid_utf8 (raw 0xff 0xfe 0xc3 0x28 in content): fails over, never an invalid-UTF-8 .out" {
    send invalid_utf8
    valid=true
    python3 -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8")' "$F.out" || valid=false
    endpoint=$(meta "$M" .endpoint)
    echo "served by $endpoint; .out valid UTF-8: $valid"
    [ "$valid" = true ]
    if [ "$endpoint" = "p-invalid_utf8" ]; then
        [ "$(meta "$M" '.hops[0].error')" = null ]
        assert_daemon_ok
    else
        assert_failed_over invalid_utf8
    fi
}

# A JSON string may hold U+0000.  Either the completion arrives whole (NUL and all) or
# the hop fails; silently cutting the answer at the NUL loses what the user paid for.
@test "hostile nul_content (an escaped NUL character inside content): whole content or a failover, never cut at the NUL" {
    send nul_content
    assert_success
    want=$(printf 'sim[hostile/nul_content]: %s\x00 and the part after the NUL' "$PROMPT" | od -An -tx1 | tr -d ' \n')
    got=$(od -An -tx1 <"$F.out" | tr -d ' \n')
    endpoint=$(meta "$M" .endpoint)
    echo "served by $endpoint; .out bytes: $got"
    if [ "$endpoint" = "p-nul_content" ]; then
        [ "$got" = "$want" ]
        assert_daemon_ok
    else
        assert_failed_over nul_content
    fi
}

# --- framing and transport ----------------------------------------------------------

@test "hostile hang (never answers): fails over after the tier timeout" {
    send hang
    assert_failed_over hang
    [ "$(meta "$M" '.hops[0].status')" = null ]
    [ "$ELAPSED_MS" -ge "$TIMEOUT_MS" ]
}

@test "hostile close (connection dropped without a response): fails over" {
    send close
    assert_failed_over close
    [ "$(meta "$M" '.hops[0].status')" = null ]
}

@test "hostile reset (half the body, then TCP RST): fails over" {
    send reset
    assert_failed_over reset
}

@test "hostile headers_only (Content-Length > 0, then close before the body): fails over" {
    send headers_only
    assert_failed_over headers_only
}

@test "hostile short_length (Content-Length half the body, the rest left on the wire): fails over" {
    send short_length
    assert_failed_over short_length
    # The bytes past Content-Length must not poison a reused connection: the next
    # request on this provider still gets its own (equally short) answer and fails over.
    send short_length
    assert_failed_over short_length
}

# Two different Content-Length values are invalid framing (RFC 9112 6.3: discard the
# response).  libcurl takes the last one, so routefs sees the whole, correct body; what
# must never happen is a half answer.  Either outcome is accepted; the log says which.
@test "hostile conflicting_length (two Content-Length headers): the whole answer by the primary or a failover, never half" {
    send conflicting_length
    endpoint=$(meta "$M" .endpoint)
    echo "served by $endpoint"
    if [ "$endpoint" = "p-conflicting_length" ]; then
        assert_served_by_primary conflicting_length
    else
        assert_failed_over conflicting_length
    fi
}

@test "hostile interim_only (103 Early Hints, no final response): fails over after the timeout" {
    send interim_only
    assert_failed_over interim_only
}

@test "hostile drip (one byte every 200 ms, longer than the timeout): fails over in time" {
    send drip
    assert_failed_over drip
    [ "$(meta "$M" '.hops[0].status')" = null ]
}

@test "hostile chunked_forever (chunked, whitespace every 200 ms, never ends): fails over in time" {
    send chunked_forever
    assert_failed_over chunked_forever
}

@test "hostile huge (20 MiB of valid JSON with Content-Length): fails the hop at the 8 MiB cap" {
    send huge
    assert_failed_over huge
    [[ $HOP0_ERROR == *larger* ]]
}

@test "hostile huge_chunked (20 MiB of valid JSON, chunked): fails the hop at the 8 MiB cap" {
    send huge_chunked
    assert_failed_over huge_chunked
    [[ $HOP0_ERROR == *larger* ]]
}

@test "hostile long_header (one 512 KiB header line): fails over" {
    send long_header
    assert_failed_over long_header
}

@test "hostile no_status_line (HTTP/0.9: a body without status line or headers): fails over" {
    send no_status_line
    assert_failed_over no_status_line
}

# --- what the headers claim ----------------------------------------------------------

@test "hostile gzip (Content-Encoding: gzip, not asked for): fails over" {
    send gzip
    assert_failed_over gzip
}

@test "hostile sse (text/event-stream chunks): a stream is what routefs asks for: served by the primary" {
    send sse
    assert_served_by_primary sse
}

@test "hostile redirect (302 to an answering URL): not followed, fails over" {
    send redirect
    assert_failed_over redirect
    [ "$(meta "$M" '.hops[0].status')" = 302 ]
    [ "$(sim_count sim/redirect-target)" = 0 ]
}

@test "hostile retry_after_years (429, Retry-After: 99999999): no waiting, fails over" {
    send retry_after_years
    assert_failed_over retry_after_years
    [ "$(meta "$M" '.hops[0].status')" = 429 ]
    # retries is 1, but a Retry-After of 3 years is past the tier's cap: no second try
    [ "$(sim_count hostile/retry_after_years)" = 1 ]
}

@test "hostile status_204 (No Content): fails over" {
    send status_204
    assert_failed_over status_204
    [ "$(meta "$M" '.hops[0].status')" = 204 ]
}

@test "hostile status_304 (Not Modified): fails over" {
    send status_304
    assert_failed_over status_304
    [ "$(meta "$M" '.hops[0].status')" = 304 ]
}

# --- legitimately usable answers -----------------------------------------------------

# routefs parses the body whatever its Content-Type says (it asked for JSON and got
# JSON): a valid completion labelled text/plain is served.
@test "hostile text_plain (valid completion as text/plain): usable, served by the primary" {
    send text_plain
    assert_served_by_primary text_plain
}

# RFC 8259 lets a parser ignore a byte order mark; cJSON does.
@test "hostile bom (UTF-8 BOM before a valid completion): usable, served by the primary" {
    send bom
    assert_served_by_primary bom
}

# Duplicate names make a JSON object's meaning implementation-defined (RFC 8259 4);
# cJSON takes the first "choices", which here is the valid one.
@test "hostile dup_keys (a valid \"choices\", then an empty one): first wins, served by the primary" {
    send dup_keys
    assert_served_by_primary dup_keys
}

# Garbage in usage must not become spend: negative and textual token counts are unknown,
# an infinite cost is no cost; the job itself is fine.
@test "hostile usage_garbage (tokens -5 and \"many\", cost 1e999): served by the primary, spend stays finite" {
    send usage_garbage
    assert_served_by_primary usage_garbage
    echo "meta cost: $(jq -c .cost "$M"), tokens: $(jq -c .tokens "$M")"
    [ "$(jq -r '.cost == null or (.cost >= 0 and .cost < 1)' "$M")" = true ]
    run timeout 5 cat "$MNT/spend.json"
    assert_success
    echo "spend.json total: $(jq -c .total <<<"$output")"
    [ "$(jq -r '(.total | type) == "number" and .total >= 0 and .total < 1' <<<"$output")" = true ]
    # the ledger line of this request: no cost, or a finite one
    run jq -c 'select(.model == "hostile/usage_garbage")' "$(ledger_file)"
    echo "ledger: $output"
    [ "${#lines[@]}" -eq 1 ]
    [ "$(jq -r '.cost == null or (.cost >= 0 and .cost < 1)' <<<"${lines[0]}")" = true ]
}

# --- after the corpus ----------------------------------------------------------------

@test "after hostile answers: the daemon's memory stayed bounded and providers.json reads" {
    pid=$(cat "$RFS_DIR/routefs.pid")
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    echo "peak RSS: $hwm kB"
    [ "$hwm" -lt $((200 * 1024)) ]
    run timeout 5 cat "$MNT/providers.json"
    assert_success
    echo "$output" | jq -e '.providers | length > 0' >/dev/null
    assert_daemon_ok
}

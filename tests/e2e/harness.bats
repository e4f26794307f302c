#!/usr/bin/env bats
# The test harness's own check: rfs_teardown fails a test when a daemon built by
# `make test-asan` printed a sanitizer report (sanitizer_report in helpers.bash).  Checked
# on recorded reports in fixtures/sanitizer/, so that the filter for libfuse's own leak at
# exit cannot hide routefs's.  No mount is needed.

load helpers

FX="$RFS_REPO/tests/e2e/fixtures/sanitizer"

@test "harness: a leak routefs made is reported even beside libfuse's own; libfuse's alone is not" {
    run sanitizer_report "$FX/routefs-leak.txt"
    assert_success
    assert_line --index 0 "ERROR: LeakSanitizer: detected memory leaks"
    assert_line --partial "in events_open src/events.c:150"
    refute_line --partial "Direct leak of 128 byte(s)"
    run sanitizer_report "$FX/libfuse-interrupt.txt"
    assert_success
    assert_output ""
}

@test "harness: UBSan and ASan errors are reported; a missing or clean file says nothing" {
    run sanitizer_report "$RFS_REPO/tests/e2e/no-such-file" "$FX/errors.txt"
    assert_success
    assert_line --partial "runtime error: signed integer overflow"
    assert_line --partial "ERROR: AddressSanitizer: heap-use-after-free"
    assert_line --partial "in job_unref src/jobs.c:120"
    run sanitizer_report "$FX/clean.txt" "$RFS_REPO/tests/e2e/no-such-file"
    assert_success
    assert_output ""
}

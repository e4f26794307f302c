#!/bin/sh
# Run routefs's test suites and print one closing line: "N passed, N failed[, N skipped]".
#
#   sh tests/run-tests.sh MODE [BUILD]
#     MODE   unit | e2e | lint | all (lint, unit, then e2e)
#     BUILD  the build directory (default: build); unit tests are BUILD/unit/test_*,
#            the end-to-end tests run BUILD/routefs against BUILD/routefs-sim.
#            lint is tests/shellcheck.sh: each shell script checked counts as one test.
#
# Every suite's output is shown as it runs.  Exit status 1 when anything failed.
# Each unit binary and each bats file is bounded in time (UNIT_TIMEOUT, E2E_TIMEOUT seconds);
# running past it counts as a failure.
set -u

MODE=${1:-all}
BUILD=${2:-build}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
E2E_TIMEOUT=${E2E_TIMEOUT:-1200}
E2E_JOBS=${E2E_JOBS:-3}

case $MODE in
    unit|e2e|lint|all) ;;
    *) echo "usage: $0 unit|e2e|lint|all [BUILD]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
case $BUILD in
    /*) ;;
    *) BUILD="$ROOT/$BUILD" ;;
esac

PASSED=0
FAILED=0
SKIPPED=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/routefs-tests.XXXXXX") || exit 2
E2E_ROOT=""

cleanup() {
    if [ -n "$E2E_ROOT" ] && [ -d "$E2E_ROOT" ]; then
        for per_file in "$E2E_ROOT"/*/; do
            [ -d "$per_file" ] && reap_e2e "${per_file%/}"
        done
        rm -rf --one-file-system "$E2E_ROOT" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# reap_e2e DIR: what a bats file cut off by its timeout left behind.
. "$ROOT/tests/e2e-reap.sh"

run_unit() {
    found=0
    for t in "$BUILD"/unit/test_*; do
        if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
        found=1
        name=$(basename "$t")
        echo "== unit: $name"
        log="$TMP/$name.log"
        { timeout -k 10 "$UNIT_TIMEOUT" "$t"; echo $? >"$TMP/rc"; } 2>&1 | tee "$log"
        rc=$(cat "$TMP/rc")
        p=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s)\..*/\1/p' "$log" | head -n1)
        f=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s).*/\1/p' "$log" | head -n1)
        p=${p:-0}
        f=${f:-0}
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "!! $name: timed out after ${UNIT_TIMEOUT}s" | tee -a "$TMP/failures"
            f=$((f + 1))
        elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            # crashed, aborted (sanitizer) or exited nonzero without a failure summary
            echo "!! $name: exited with status $rc" | tee -a "$TMP/failures"
            f=1
        fi
        grep '^\[  FAILED  \] ' "$log" | sed "s|^|$name: |" >>"$TMP/failures"
        PASSED=$((PASSED + p))
        FAILED=$((FAILED + f))
    done
    if [ $found -eq 0 ]; then
        echo "== unit: no test binaries in $BUILD/unit"
    fi
}

run_e2e() {
    export ROUTEFS_BIN="$BUILD/routefs"
    export SIM_BIN="$BUILD/routefs-sim"
    if ! command -v bats >/dev/null 2>&1; then
        echo "!! e2e: bats is not installed (sh tests/install-deps.sh)"
        FAILED=$((FAILED + 1))
        return
    fi
    E2E_ROOT=$(mktemp -d /var/tmp/routefs-e2e-run.XXXXXX) || { FAILED=$((FAILED + 1)); return; }
    # traversable, like /var/tmp itself: security.bats checks that another user is refused
    # by the mount (and by the state directory), not by this wrapper directory
    chmod 755 "$E2E_ROOT"
    export TMP E2E_ROOT E2E_TIMEOUT
    # E2E_JOBS files at once (the tests mostly wait on timers and the simulator), the
    # largest first so that the longest do not start last; each file's output is shown
    # whole when it is done.
    files=$(ls -S "$ROOT"/tests/e2e/*.bats 2>/dev/null)
    if [ -z "$files" ]; then
        echo "== e2e: no .bats files in tests/e2e"
        return
    fi
    echo "== e2e: $(echo "$files" | wc -l) files, ${E2E_JOBS} at a time"
    echo "$files" | xargs -P "$E2E_JOBS" -I{} sh "$ROOT/tests/run-bats-file.sh" {} |
        while read -r done_name; do
            echo "== e2e: $done_name ($(cat "$TMP/$done_name.secs") s)"
            cat "$TMP/$done_name.log"
        done
    for b in "$ROOT"/tests/e2e/*.bats; do
        name=$(basename "$b")
        log="$TMP/$name.log"
        rc=$(cat "$TMP/$name.rc" 2>/dev/null || echo 1)
        plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$log" | head -n1)
        s=$(grep -c '^ok .* # skip' "$log")
        p=$(grep -c '^ok ' "$log")
        p=$((p - s))
        f=$(grep -c '^not ok ' "$log")
        seen=$((p + s + f))
        grep '^not ok ' "$log" | sed "s|^|$name: |" >>"$TMP/failures"
        missing=0
        if [ -n "$plan" ] && [ "$seen" -lt "$plan" ]; then
            missing=$((plan - seen))
        fi
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "!! $name: timed out after ${E2E_TIMEOUT}s; $missing test(s) did not report" |
                tee -a "$TMP/failures"
            [ "$missing" -gt 0 ] || missing=1
            f=$((f + missing))
        elif [ "$missing" -gt 0 ]; then
            echo "!! $name: $missing planned test(s) did not report (bats exited with status $rc)" |
                tee -a "$TMP/failures"
            f=$((f + missing))
        elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            echo "!! $name: bats exited with status $rc" | tee -a "$TMP/failures"
            f=1
        fi
        PASSED=$((PASSED + p))
        FAILED=$((FAILED + f))
        SKIPPED=$((SKIPPED + s))
    done
}

# Lint: tests/shellcheck.sh on every shell script, one test per file.
run_lint() {
    echo "== lint: shellcheck"
    log="$TMP/lint.log"
    { timeout -k 10 300 sh "$ROOT/tests/shellcheck.sh"; echo $? >"$TMP/rc"; } 2>&1 | tee "$log"
    rc=$(cat "$TMP/rc")
    grep '^failed ' "$log" | sed 's|^|shellcheck: |' >>"$TMP/failures"
    p=$(sed -n 's/^shellcheck: ok \([0-9][0-9]*\) \/ failed \([0-9][0-9]*\)$/\1/p' "$log" | tail -n1)
    f=$(sed -n 's/^shellcheck: ok \([0-9][0-9]*\) \/ failed \([0-9][0-9]*\)$/\2/p' "$log" | tail -n1)
    if [ -z "$p" ] || [ -z "$f" ]; then
        echo "!! lint: tests/shellcheck.sh exited with status $rc without its summary"
        p=0
        f=1
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "!! lint: tests/shellcheck.sh exited with status $rc"
        f=1
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
}

case $MODE in
    unit) run_unit ;;
    e2e)  run_e2e ;;
    lint) run_lint ;;
    all)  run_lint; run_unit; run_e2e ;;
esac

# what failed, again, next to the closing line (a CI log is often read from its tail)
if [ -s "$TMP/failures" ]; then
    echo "== failures"
    cat "$TMP/failures"
fi
if [ "$SKIPPED" -gt 0 ]; then
    echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
else
    echo "$PASSED passed, $FAILED failed"
fi
[ "$FAILED" -eq 0 ]

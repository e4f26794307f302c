#!/bin/sh
# run-bats-file.sh FILE — run one bats file for tests/run-tests.sh (which runs several at
# once through xargs -P) and print its name when it is done.  TMP, E2E_ROOT and
# E2E_TIMEOUT come from run-tests.sh's environment; ROUTEFS_BIN and SIM_BIN too.
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
. "$ROOT/tests/e2e-reap.sh"

# One bats file, run by run-tests.sh (several at once): its TAP output in $TMP/NAME.log, its
# exit status in NAME.rc and its wall time in NAME.secs.  Each file has a directory of its
# own under the run's, so a file cut off by its timeout is reaped without touching others.
run_one_bats() {
    b=$1
    name=$(basename "$b")
    root="$E2E_ROOT/${name%.bats}"
    mkdir -p "$root" && chmod 755 "$root"
    start=$(date +%s)
    RFS_E2E_ROOT="$root" timeout -k 10 "$E2E_TIMEOUT" bats --tap "$b" </dev/null \
        >"$TMP/$name.log" 2>&1
    rc=$?
    echo "$rc" >"$TMP/$name.rc"
    echo $(( $(date +%s) - start )) >"$TMP/$name.secs"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        reap_e2e "$root"
    fi
}

run_one_bats "$1"
basename "$1"

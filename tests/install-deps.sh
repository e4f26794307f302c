#!/bin/sh
# Install the Debian packages routefs needs to build, test and run (idempotent).
# Only when something is missing does it run apt-get (as root, or through sudo).
set -eu

# libsqlite3-dev: the state store and report.html; sqlite3: tests look into state databases.
# chromium: tests/e2e/report.bats draws report.html; prometheus: its promtool checks
# metrics.prom and examples/monitoring (tests/e2e/metrics.bats, monitoring.bats).
# libsystemd-dev: sd_notify (Type=notify).  shellcheck: the lint suite.  mandoc and
# groff-base: the man page checks (tests/e2e/docs.bats).  logrotate and util-linux (mount,
# unshare, prlimit): the examples/ checks in tests/e2e/service.bats.  perl-base: a reader
# that does not retry EINTR.  rsync, git and tar: re-syncing prompts costs nothing, and
# git works inside a tier (tests/e2e/money_sync.bats).
PKGS="build-essential pkg-config libfuse3-dev fuse3 libcurl4-openssl-dev libcjson-dev
libmicrohttpd-dev libcmocka-dev bats bats-assert bats-support jq curl attr valgrind
vim-tiny python3 libsqlite3-dev sqlite3 chromium prometheus libsystemd-dev shellcheck
mandoc groff-base logrotate util-linux perl-base libhiredis-dev redis-server rsync git
tar"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-deps: missing packages:$missing"

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-deps: not root and no sudo; please install as root:" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi

$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
echo "install-deps: done"

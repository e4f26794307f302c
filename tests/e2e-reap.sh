# shellcheck shell=sh
# e2e-reap.sh — sourced by run-tests.sh and run-bats-file.sh.
#
# reap_e2e DIR: a bats file cut off by its timeout did not run its teardowns.  Unmount and
# stop what its tests left behind in DIR (one directory per test: mnt/ and *.pid files;
# only this run's own directories and processes), then remove them.
reap_e2e() {
    for d in "$1"/*/; do
        [ -d "$d" ] || continue
        d=${d%/}
        for m in "$d"/mnt "$d"/*/mnt; do
            if mountpoint -q "$m" 2>/dev/null; then
                fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
            fi
        done
        for f in "$d"/*.pid "$d"/*/*.pid; do
            [ -f "$f" ] || continue
            pid=$(cat "$f" 2>/dev/null)
            case $pid in ''|*[!0-9]*) continue ;; esac
            kill -KILL "$pid" 2>/dev/null
        done
        rm -rf --one-file-system "$d" 2>/dev/null
    done
}

#!/bin/sh
# rss-summarise.sh — summarise a directory of feed items through a routefs mount.
#
#   ROUTEFS_MOUNT=~/llm examples/pipelines/rss-summarise.sh ITEMS_DIR OUT_DIR
#
# Every regular file in ITEMS_DIR (one feed item each, e.g. written by a feed fetcher)
# becomes a prompt "instruction + item" in MOUNT/TIER/TAG/ (a tag directory: its spend is
# counted apart in spend.json), copied in 8 at a time with xargs; `routefs wait` then
# blocks until every one of them has ended, and each summary is copied to OUT_DIR under
# the item's name.  Items that failed are listed in OUT_DIR/FAILED with the reason.
#
# Environment:
#   ROUTEFS_MOUNT     the mount point (default ~/llm)
#   ROUTEFS_BIN       the routefs binary (default: routefs from PATH, else the one built
#                     in this source tree, ../../build/routefs from this script)
#   RSS_TIER          tier (default high-volume)
#   RSS_TAG           tag directory inside the tier (default rss)
#   RSS_INSTRUCTION   put before each item (default: a two-sentence summary request;
#                     empty: the item is sent as it is)
#   RSS_PARALLEL      concurrent copies (default 8)
#   RSS_TIMEOUT       give up waiting after this long (default 1h; s/m/h suffixes)
#
# Exit status: 0 every item summarised, 1 some failed (the others are in OUT_DIR),
# 2 usage error, no mount or no routefs binary (nothing is submitted then), 3 timed out,
# 4 the mount went away (the exit status of `routefs wait`).  Submitting an item again (same name) starts a new
# job: name items uniquely (e.g. by feed GUID) and clear ITEMS_DIR between runs.
set -eu

MOUNT=${ROUTEFS_MOUNT:-$HOME/llm}
TIER=${RSS_TIER:-high-volume}
TAG=${RSS_TAG:-rss}
PARALLEL=${RSS_PARALLEL:-8}
TIMEOUT=${RSS_TIMEOUT:-1h}
INSTRUCTION=${RSS_INSTRUCTION-Summarise this feed item in two sentences for a news digest.}

die() { echo "rss-summarise: $*" >&2; exit 2; }

# The routefs binary: $ROUTEFS_BIN (a path or a command name), else routefs on PATH, else
# the one built in this source tree.  Checked before anything is submitted.
find_routefs() {
    case ${ROUTEFS_BIN:-} in
        '') command -v routefs 2>/dev/null || printf '%s\n' "$(dirname "$0")/../../build/routefs" ;;
        */*) printf '%s\n' "$ROUTEFS_BIN" ;;
        *) command -v "$ROUTEFS_BIN" 2>/dev/null || printf '%s\n' "$ROUTEFS_BIN" ;;
    esac
}

[ $# -eq 2 ] || { echo "usage: rss-summarise.sh ITEMS_DIR OUT_DIR" >&2; exit 2; }
ITEMS=$1
OUT=$2
[ -d "$ITEMS" ] || die "$ITEMS: not a directory"
ROUTEFS_BIN=$(find_routefs)
[ -x "$ROUTEFS_BIN" ] || die "routefs not found (tried $ROUTEFS_BIN): install it, build it (make) or set ROUTEFS_BIN"
[ -f "$MOUNT/spend.json" ] || die "$MOUNT: routefs is not mounted there (set ROUTEFS_MOUNT)"
[ -d "$MOUNT/$TIER" ] || die "$MOUNT/$TIER: no such tier in the mounted config"

DEST="$MOUNT/$TIER/$TAG"
mkdir -p "$DEST" "$OUT"

# Stage the prompts outside the mount, then copy complete files in: a job starts when a
# prompt is closed after writing, so each cp is exactly one job.
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/rss-summarise.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
n=0
for item in "$ITEMS"/*; do
    [ -f "$item" ] || continue
    name=${item##*/}
    case $name in
        .*|*~|*.swp|*.tmp|*.part|*.out|*.meta|*.err) continue ;;   # never prompts
    esac
    if [ -n "$INSTRUCTION" ]; then
        { printf '%s\n\n' "$INSTRUCTION"; cat "$item"; } >"$STAGE/$name"
    else
        cp "$item" "$STAGE/$name"
    fi
    n=$((n + 1))
done
if [ "$n" -eq 0 ]; then
    echo "rss-summarise: no items in $ITEMS"
    exit 0
fi

# Submit: 8 copies at a time.  cp into the mount returns once the prompt is accepted.
find "$STAGE" -mindepth 1 -maxdepth 1 -type f -print0 |
    xargs -0 -r -P "$PARALLEL" -I{} cp {} "$DEST/"

# Wait for exactly the prompts of this run (not older ones in the same tag directory).
set --
for p in "$STAGE"/*; do
    set -- "$@" "$DEST/${p##*/}"
done
status=0
"$ROUTEFS_BIN" wait --timeout "$TIMEOUT" "$@" || status=$?
if [ "$status" -ge 2 ]; then
    exit "$status"   # 3 timed out (it said which are pending), 4 the mount went away
fi

# Collect: NAME.out of every finished item; a failed one has NAME.err instead.
ok=0
failed=0
: >"$OUT/FAILED"
for p in "$STAGE"/*; do
    name=${p##*/}
    if [ -e "$DEST/$name.err" ]; then
        printf '%s: %s\n' "$name" "$(cat "$DEST/$name.err")" >>"$OUT/FAILED"
        failed=$((failed + 1))
    elif cat "$DEST/$name.out" >"$OUT/$name.tmp" && mv "$OUT/$name.tmp" "$OUT/$name"; then
        ok=$((ok + 1))
    else
        rm -f "$OUT/$name.tmp"
        printf '%s: could not read the result\n' "$name" >>"$OUT/FAILED"
        failed=$((failed + 1))
    fi
done
[ -s "$OUT/FAILED" ] || rm -f "$OUT/FAILED"
if [ "$failed" -gt 0 ]; then
    echo "rss-summarise: $ok of $n items summarised into $OUT; $failed failed (see $OUT/FAILED)"
    exit 1
fi
echo "rss-summarise: $ok of $n items summarised into $OUT"

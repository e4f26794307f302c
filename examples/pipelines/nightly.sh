#!/bin/sh
# nightly.sh — the nightly batch: submit a day's prompts into a dated tag directory, wait
# for them, copy the results out and print a summary with the day's spend.
#
# Run it from cron or from the systemd timer in examples/systemd/:
#   0 2 * * *  ROUTEFS_MOUNT=$HOME/llm $HOME/.local/bin/routefs-nightly
#
# Prompts are the regular files in NIGHTLY_INBOX (or in NIGHTLY_INBOX/DATE when that
# directory exists).  They go to MOUNT/TIER/nightly-DATE/: one tag per day, so spend.json
# shows each night's cost under "by_tag".  Results land in NIGHTLY_OUTBOX/DATE/NAME, and
# the reasons for failed prompts in NIGHTLY_OUTBOX/DATE/FAILED.
#
# Running it again for the same day is safe: a prompt already submitted with the same
# text and not failed is not sent again (no double spend); changed and failed ones are.
#
# Environment:
#   ROUTEFS_MOUNT    the mount point (default ~/llm)
#   ROUTEFS_BIN      the routefs binary (default: routefs from PATH, else the one built
#                    in this source tree, ../../build/routefs from this script)
#   NIGHTLY_INBOX    where the day's prompts are (default ~/nightly/inbox)
#   NIGHTLY_OUTBOX   where results go (default ~/nightly/results)
#   NIGHTLY_TIER     tier (default high-volume)
#   NIGHTLY_DATE     the day (default: today, UTC, YYYY-MM-DD: the day spend.json counts)
#   NIGHTLY_TIMEOUT  give up waiting after this long (default 4h; s/m/h suffixes)
#   NIGHTLY_MOUNT_WAIT  seconds to wait for the mount to appear (default 30: from cron,
#                    or right after a mount started some other way, it may be a moment
#                    late; routefs.service is Type=notify, so After= it the mount is up)
#
# Needs jq.  Exit status: 0 all done, 1 some prompts failed, 2 usage error, no mount or
# no routefs binary (nothing is submitted then), 3 timed out, 4 the mount went away while
# waiting (the exit status of `routefs wait`; the summary is printed after a wait).
set -eu

MOUNT=${ROUTEFS_MOUNT:-$HOME/llm}
INBOX=${NIGHTLY_INBOX:-$HOME/nightly/inbox}
OUTBOX=${NIGHTLY_OUTBOX:-$HOME/nightly/results}
TIER=${NIGHTLY_TIER:-high-volume}
DATE=${NIGHTLY_DATE:-$(date -u +%Y-%m-%d)}
TIMEOUT=${NIGHTLY_TIMEOUT:-4h}
MOUNT_WAIT=${NIGHTLY_MOUNT_WAIT:-30}
TAG="nightly-$DATE"

die() { echo "nightly: $*" >&2; exit 2; }

# The routefs binary: $ROUTEFS_BIN (a path or a command name), else routefs on PATH, else
# the one built in this source tree.  Checked before anything is submitted.
find_routefs() {
    case ${ROUTEFS_BIN:-} in
        '') command -v routefs 2>/dev/null || printf '%s\n' "$(dirname "$0")/../../build/routefs" ;;
        */*) printf '%s\n' "$ROUTEFS_BIN" ;;
        *) command -v "$ROUTEFS_BIN" 2>/dev/null || printf '%s\n' "$ROUTEFS_BIN" ;;
    esac
}

case $DATE in
    [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]) ;;
    *) die "NIGHTLY_DATE must be YYYY-MM-DD, not '$DATE'" ;;
esac
command -v jq >/dev/null 2>&1 || die "jq is not installed"
ROUTEFS_BIN=$(find_routefs)
[ -x "$ROUTEFS_BIN" ] || die "routefs not found (tried $ROUTEFS_BIN): install it, build it (make) or set ROUTEFS_BIN"
i=0
while [ ! -f "$MOUNT/spend.json" ] && [ "$i" -lt "$MOUNT_WAIT" ]; do
    sleep 1
    i=$((i + 1))
done
[ -f "$MOUNT/spend.json" ] || die "$MOUNT: routefs is not mounted there (set ROUTEFS_MOUNT)"
[ -d "$MOUNT/$TIER" ] || die "$MOUNT/$TIER: no such tier in the mounted config"
SRC=$INBOX
[ -d "$INBOX/$DATE" ] && SRC="$INBOX/$DATE"
[ -d "$SRC" ] || die "$SRC: no such directory"

DEST="$MOUNT/$TIER/$TAG"
OUT="$OUTBOX/$DATE"
mkdir -p "$DEST" "$OUT"

# ---- submit ----------------------------------------------------------------------
submitted=0
skipped=0
set --
for p in "$SRC"/*; do
    [ -f "$p" ] || continue
    name=${p##*/}
    case $name in
        .*|*~|*.swp|*.tmp|*.part|*.out|*.meta|*.err) continue ;;   # never prompts
    esac
    set -- "$@" "$DEST/$name"
    # Already sent tonight with this very text, and not failed: do not pay twice.
    if [ -f "$DEST/$name" ] && [ ! -e "$DEST/$name.err" ] && cmp -s "$p" "$DEST/$name"; then
        skipped=$((skipped + 1))
        continue
    fi
    # A prompt whose job failed runs again only as a new prompt: the same text copied
    # over it would keep the failed result.
    [ -e "$DEST/$name.err" ] && rm -f "$DEST/$name"
    cp "$p" "$DEST/$name"
    submitted=$((submitted + 1))
done
total=$#
echo "nightly $DATE: $submitted prompt(s) submitted to $TIER/$TAG, $skipped already there"

# ---- wait ------------------------------------------------------------------------
status=0
if [ "$total" -gt 0 ]; then
    "$ROUTEFS_BIN" wait --timeout "$TIMEOUT" "$@" || status=$?
fi

# ---- collect ---------------------------------------------------------------------
done_n=0
failed_n=0
pending_n=0
: >"$OUT/FAILED"
for prompt in "$@"; do
    name=${prompt##*/}
    if [ -e "$prompt.err" ]; then
        printf '%s: %s\n' "$name" "$(cat "$prompt.err")" >>"$OUT/FAILED"
        failed_n=$((failed_n + 1))
    elif [ "$(jq -r .state "$prompt.meta" 2>/dev/null)" = "done" ] &&
         cat "$prompt.out" >"$OUT/.$name.part" && mv "$OUT/.$name.part" "$OUT/$name"; then
        done_n=$((done_n + 1))
    else
        rm -f "$OUT/.$name.part"
        pending_n=$((pending_n + 1))
    fi
done
[ -s "$OUT/FAILED" ] || rm -f "$OUT/FAILED"

# ---- summary (spend.json) --------------------------------------------------------
echo "nightly $DATE: $done_n done, $failed_n failed, $pending_n unfinished; results in $OUT"
jq -r --arg tag "$TAG" '
    ["tonight", (.by_tag[$tag].total // 0), (.by_tag[$tag].requests // 0)],
    ["today", .today, (.caps.daily.cap // -1), (.caps.daily.remaining // -1)],
    ["month", .this_month, (.caps.monthly.cap // -1), (.caps.monthly.remaining // -1)],
    (.by_model | to_entries[] | select(.value.today > 0) | ["model", .value.today, .key])
    | @tsv' "$MOUNT/spend.json" |
awk -F '\t' -v tag="$TAG" '
    function usd(x) { return x < 0 ? "none" : (x > 0 && x < 0.01) ? sprintf("$%.6f", x) : sprintf("$%.2f", x) }
    $1 == "tonight" { printf "spend: tonight (%s) %s in %d request(s)\n", tag, usd($2), $3 }
    $1 == "today"   { printf "spend: today %s, daily cap %s, %s left\n", usd($2), usd($3), usd($4) }
    $1 == "month"   { printf "spend: this month %s, monthly cap %s, %s left\n", usd($2), usd($3), usd($4) }
    $1 == "model"   { printf "spend: today on %s: %s\n", $3, usd($2) }'
[ ! -s "$OUT/FAILED" ] || sed 's/^/failed: /' "$OUT/FAILED"
exit "$status"

#!/usr/bin/env bats
# For people who run it (issue 15, points 1 to 3), on a real mount against routefs-sim:
#   M/events: `while read -r e; do ...; done < M/events` and `jq --unbuffered` get one JSON
#   line per job as it ends (path, state, provider, model, cost, fallback), only for jobs
#   that end after the open; every reader gets every line; events survive a config edit;
#   unmounting ends a blocked reader.
#   Listings show results only once the job has ended: `ls`, `find`, `tar -c` and
#   `rsync -a` of a tier during a batch; `cat p.out` right after writing still waits; a
#   finished result's times never change.
#   M/report.html through the mount, drawn by headless Chromium.
# Every wait is bounded; background readers are stopped by pid in teardown.

load helpers
load chromium

setup() {
    rfs_setup
    rfs_config <<'JSON'
{
  "providers": {
    "sim":    {"base_url": "http://127.0.0.1:SIM_PORT/v1"},
    "backup": {"base_url": "http://127.0.0.1:SIM_PORT/v1"}
  },
  "prices": {
    "sim/a": {"prompt": 1, "completion": 2},
    "sim/b": {"prompt": 3, "completion": 4},
    "sim/c": {"prompt": 1, "completion": 2}
  },
  "budget": {"daily_usd": 5, "monthly_usd": 100},
  "tiers": {
    "fast":  {"route": ["sim/a", {"provider": "backup", "model": "sim/b"}], "retries": 0,
              "timeout_ms": 10000},
    "other": {"route": ["sim/c"], "retries": 0, "timeout_ms": 10000}
  }
}
JSON
}

teardown() {
    rfs_teardown
}

# lines FILE — how many lines FILE has (0 when it does not exist).
lines() { if [ -f "$1" ]; then grep -c '' "$1"; else echo 0; fi; }
_lines_at_least() { [ "$(lines "$1")" -ge "$2" ]; }
_exists() { [ -e "$1" ]; }
_gone() { ! kill -0 "$1" 2>/dev/null; }
# /proc/PID/syscall starts with the number of the system call it is blocked in: 0, read.
_in_read() { [ "$(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null)" = 0 ]; }

# read_loop OUT — the shell loop of the README: each event line appended to OUT; OUT.open
# appears once M/events is open.  Run in the background with rfs_bg; exec, so that the
# pid rfs_bg gives (and teardown kills) is the reader's own.
read_loop() {
    exec bash -c 'exec 4<"$1" || exit 9; : >"$2.open"
             while read -r e <&4; do printf "%s\n" "$e" >>"$2"; done
             echo "eof $?" >"$2.end"' _ "$MNT/events" "$1"
}

# submit TIER NAME [TEXT] — write a prompt.
submit() { printf '%s\n' "${3:-prompt $2}" >"$MNT/$1/$2"; }

# ev FILE PATH FIELD — FIELD of PATH's event in FILE (one line per event).
ev() { jq -r --arg p "$2" "select(.path == \$p) | .$3" "$1"; }

# --- M/events -----------------------------------------------------------------------

@test "events: while read gets one line per job as it ends, with its outcome, only after the open" {
    rfs_mount
    submit fast before.txt
    [ -n "$(read_out "$MNT/fast/before.txt.out")" ]   # ended before anyone listened
    rfs_bg read_loop "$RFS_DIR/ev"
    wait_for 5 _exists "$RFS_DIR/ev.open"
    # a plain job, a fallback (sim/a's first request fails), a failed job
    submit fast ok.txt
    read_out "$MNT/fast/ok.txt.out" >/dev/null
    sim_behave sim/a '{"status": 500, "fail_first": 1}'
    submit fast fb.txt
    read_out "$MNT/fast/fb.txt.out" >/dev/null
    sim_behave sim/c '{"status": 500}'
    submit other bad.txt
    wait_state "$MNT/other/bad.txt" failed
    wait_for 5 _lines_at_least "$RFS_DIR/ev" 3
    sleep 0.3
    cat "$RFS_DIR/ev"
    [ "$(lines "$RFS_DIR/ev")" -eq 3 ]
    jq -e . "$RFS_DIR/ev" >/dev/null                     # every line is JSON
    not grep -q before.txt "$RFS_DIR/ev"
    # in the order the jobs ended, each as its .meta says
    [ "$(jq -r .path "$RFS_DIR/ev" | paste -sd' ')" = "fast/ok.txt fast/fb.txt other/bad.txt" ]
    for p in fast/ok.txt fast/fb.txt other/bad.txt; do
        for f in state provider model cost fallback; do
            [ "$(ev "$RFS_DIR/ev" "$p" "$f")" = "$(meta "$MNT/$p.meta" ".$f")" ] ||
                { echo "$p: $f differs from the .meta"; return 1; }
        done
    done
    [ "$(ev "$RFS_DIR/ev" fast/ok.txt state)" = done ]
    [ "$(ev "$RFS_DIR/ev" fast/ok.txt model)" = sim/a ]
    [ "$(ev "$RFS_DIR/ev" fast/ok.txt fallback)" = false ]
    jq -en --argjson c "$(ev "$RFS_DIR/ev" fast/ok.txt cost)" '$c > 0'
    [ "$(ev "$RFS_DIR/ev" fast/fb.txt state)" = done ]
    [ "$(ev "$RFS_DIR/ev" fast/fb.txt model)" = sim/b ]
    [ "$(ev "$RFS_DIR/ev" fast/fb.txt fallback)" = true ]
    [ "$(ev "$RFS_DIR/ev" other/bad.txt state)" = failed ]
    [ "$(ev "$RFS_DIR/ev" other/bad.txt error)" != null ]
    [[ "$(ev "$RFS_DIR/ev" other/bad.txt error)" == *"HTTP 500"* ]]
    # the reader is still blocked, waiting for the next job
    kill -0 "$BG"
    [ ! -e "$RFS_DIR/ev.end" ]
}

@test "events: jq --unbuffered prints each job's line as that job ends, not later" {
    rfs_mount
    rfs_bg jq --unbuffered -c '{path, state, model}' "$MNT/events" >"$RFS_DIR/jq.out"
    wait_for 5 _in_read "$BG"   # jq has opened it and waits for a line
    sim_behave sim/c '{"latency_ms": 2500}'
    submit other slow.txt
    submit fast quick.txt
    read_out "$MNT/fast/quick.txt.out" >/dev/null
    # quick.txt's line is out while slow.txt still runs
    wait_for 2 _lines_at_least "$RFS_DIR/jq.out" 1
    [ "$(meta "$MNT/other/slow.txt.meta" .state)" = running ]
    [ "$(lines "$RFS_DIR/jq.out")" -eq 1 ]
    [ "$(jq -r .path "$RFS_DIR/jq.out")" = fast/quick.txt ]
    wait_for 10 _lines_at_least "$RFS_DIR/jq.out" 2
    [ "$(sed -n 2p "$RFS_DIR/jq.out")" = '{"path":"other/slow.txt","state":"done","model":"sim/c"}' ]
    kill -0 "$BG"   # still reading
}

@test "events: two readers each get every line; a reader opened late gets none of the old ones" {
    rfs_mount
    rfs_bg read_loop "$RFS_DIR/r1"
    rfs_bg cat "$MNT/events" >"$RFS_DIR/r2"
    wait_for 5 _in_read "$BG"
    wait_for 5 _exists "$RFS_DIR/r1.open"
    for n in 1 2 3 4 5; do submit fast "j$n.txt"; done
    timeout 20 "$ROUTEFS_BIN" wait --quiet "$MNT/fast" 3>&-
    wait_for 5 _lines_at_least "$RFS_DIR/r1" 5
    wait_for 5 _lines_at_least "$RFS_DIR/r2" 5
    sleep 0.3
    [ "$(lines "$RFS_DIR/r1")" -eq 5 ]
    [ "$(lines "$RFS_DIR/r2")" -eq 5 ]
    cmp "$RFS_DIR/r1" "$RFS_DIR/r2"          # the same lines, in the same order
    [ "$(jq -r .path "$RFS_DIR/r1" | sort | paste -sd' ')" = "fast/j1.txt fast/j2.txt fast/j3.txt fast/j4.txt fast/j5.txt" ]
    # a reader that opens now: only what ends from now on
    rfs_bg read_loop "$RFS_DIR/late"
    wait_for 5 _exists "$RFS_DIR/late.open"
    submit other after.txt
    read_out "$MNT/other/after.txt.out" >/dev/null
    wait_for 5 _lines_at_least "$RFS_DIR/late" 1
    wait_for 5 _lines_at_least "$RFS_DIR/r1" 6
    sleep 0.3
    [ "$(lines "$RFS_DIR/late")" -eq 1 ]
    [ "$(jq -r .path "$RFS_DIR/late")" = other/after.txt ]
    [ "$(tail -n 1 "$RFS_DIR/r1")" = "$(cat "$RFS_DIR/late")" ]
    # and a read with O_NONBLOCK when nothing is new says EAGAIN at once
    run timeout 5 python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
try:
    os.read(fd, 4096)
except BlockingIOError:
    print("EAGAIN")' "$MNT/events"
    assert_success
    assert_output EAGAIN
}

@test "events: a reader keeps its stream across a live config edit" {
    rfs_mount
    rfs_bg read_loop "$RFS_DIR/ev"
    reader=$BG
    wait_for 5 _exists "$RFS_DIR/ev.open"
    submit fast one.txt
    wait_for 10 _lines_at_least "$RFS_DIR/ev" 1
    # a live edit: the route of "fast" changes, a tier is added
    jq '.tiers.fast.route = ["sim/b"] | .tiers.more = {"route": ["sim/c"], "retries": 0}' \
        "$MNT/config.json" >"$RFS_DIR/new.json"
    cp "$RFS_DIR/new.json" "$MNT/config.json"
    [ -d "$MNT/more" ]
    submit fast two.txt
    submit more three.txt
    wait_for 10 _lines_at_least "$RFS_DIR/ev" 3
    sleep 0.3
    cat "$RFS_DIR/ev"
    [ "$(lines "$RFS_DIR/ev")" -eq 3 ]
    [ "$(ev "$RFS_DIR/ev" fast/two.txt model)" = sim/b ]     # under the new config
    [ "$(ev "$RFS_DIR/ev" more/three.txt state)" = done ]
    kill -0 "$reader"
}

@test "events: routefs umount ends blocked readers (EOF or EINTR), and the daemon exits" {
    rfs_mount
    rfs_bg read_loop "$RFS_DIR/loop"
    loop=$BG
    rfs_bg timeout 30 cat "$MNT/events" >"$RFS_DIR/cat.out" 2>"$RFS_DIR/cat.err"
    catpid=$BG
    rfs_bg timeout 30 jq --unbuffered -c . "$MNT/events" >"$RFS_DIR/jq.out" 2>"$RFS_DIR/jq.err"
    jqpid=$BG
    # one read(2) that does not retry an interrupted call, unlike cat, jq and bash
    rfs_bg perl -e 'alarm 30; open(my $f, "<", $ARGV[0]) or die "open: $!\n";
                my $n = sysread($f, my $buf, 65536);
                print defined $n ? "read $n\n" : "error: $!\n"' "$MNT/events" >"$RFS_DIR/perl.out" 2>&1
    perlpid=$BG
    wait_for 5 _exists "$RFS_DIR/loop.open"
    wait_for 5 _in_read "$perlpid"
    sleep 0.3
    kill -0 "$loop"
    kill -0 "$catpid"
    kill -0 "$jqpid"
    _in_read "$perlpid"
    t0=$(now_ms)
    run rfs_cli umount "$MNT"
    echo "routefs umount: $status: $output"
    assert_success
    # each reader ends within 5 s: end of file, or an error such as EINTR; not a hang
    wait_for 5 _gone "$loop"
    wait_for 5 _gone "$catpid"
    wait_for 5 _gone "$jqpid"
    wait_for 5 _gone "$perlpid"
    t1=$(now_ms)
    echo "readers ended $((t1 - t0)) ms after the umount began"
    for f in perl.out cat.err jq.err loop.end; do echo "$f: $(cat "$RFS_DIR/$f" 2>/dev/null)"; done
    _gone "$loop"
    _gone "$catpid"
    _gone "$jqpid"
    _gone "$perlpid"
    # the read that was waiting is answered EINTR (readers that retry it then see the
    # connection go: cat says so, jq and bash's read take it as the end)
    [ "$(cat "$RFS_DIR/perl.out")" = "error: Interrupted system call" ]
    [ -e "$RFS_DIR/loop.end" ]          # the loop ended on its own, not killed
    # not killed by the timeout (124) either
    wait "$catpid" && rc=0 || rc=$?
    [ "$rc" -ne 124 ]
    wait "$jqpid" && rc=0 || rc=$?
    [ "$rc" -ne 124 ]
    not grep -qF " $MNT " /proc/self/mounts
    _wait_pid "$RFS_PID" 10
    wait "$RFS_PID" && rc=0 || rc=$?
    RFS_PID=""
    [ "$rc" -eq 0 ]
}

# --- listings show what is ready ----------------------------------------------------

# stored_ended TIER/NAME — the store says the job of that prompt has ended (done or failed).
stored_ended() {
    [ "$(state_sql "SELECT count(*) FROM prompts WHERE path = '$1' AND state IN (3, 4) AND NOT writing")" -eq 1 ]
}

# check_listed KIND FILE — every result (.out / .meta / .err) named in FILE (one path
# relative to the mount per line) belongs to a job that has ended; says which did not.
check_listed() {
    local kind=$1 f=$2 path bad=0
    while IFS= read -r path; do
        case $path in
        *.out | *.meta | *.err) ;;
        *) continue ;;
        esac
        if ! stored_ended "${path%.*}"; then
            echo "$kind listed $path while its job had not ended"
            bad=1
        fi
    done <"$f"
    return $bad
}

pending_count() { state_sql "SELECT count(*) FROM prompts WHERE dir = 'fast' AND (state NOT IN (3, 4) OR writing)"; }

@test "listings during a batch: ls, find, tar -c and rsync -a see only prompts and finished results" {
    rfs_mount
    # 40 prompts whose answers stream for different times (n words at 80 ms a word); a
    # tier concurrency of 16 (the default) keeps some queued meanwhile
    sim_behave sim/a '{"token_ms": 80}'
    for ((n = 1; n <= 40; n++)); do
        submit fast "p$n.txt" "$(seq -s ' ' 1 $(( (n * 7) % 23 + 1 )))"
    done
    runs=0 mixed=0
    for ((round = 0; round < 60; round++)); do
        before="$(pending_count)"
        [ "$before" -eq 0 ] && break
        (cd "$MNT" && ls -1 fast | sed 's|^|fast/|') >"$RFS_DIR/ls.txt"
        (cd "$MNT" && find fast -type f) >"$RFS_DIR/find.txt"
        (cd "$MNT" && timeout 20 tar -cf - fast) >"$RFS_DIR/t.tar" 2>"$RFS_DIR/tar.err"
        tar -tvf "$RFS_DIR/t.tar" | awk '{print $3, $6}' >"$RFS_DIR/tar.sizes"
        awk '{print $2}' "$RFS_DIR/tar.sizes" >"$RFS_DIR/tar.txt"
        rm -rf "$RFS_DIR/copy"
        timeout 20 rsync -a "$MNT/fast" "$RFS_DIR/copy/" 2>"$RFS_DIR/rsync.err"
        (cd "$RFS_DIR/copy" && find fast -type f) >"$RFS_DIR/rsync.txt"
        after="$(pending_count)"
        for kind in ls find tar rsync; do
            check_listed "$kind" "$RFS_DIR/$kind.txt"
        done
        not grep -q . "$RFS_DIR/tar.err"
        not grep -q . "$RFS_DIR/rsync.err"
        # what tar and rsync copied of a result is the whole result
        while read -r size path; do
            case $path in *.out | *.meta) ;; *) continue ;; esac
            [ "$size" -eq "$(stat -c %s "$MNT/$path")" ] || { echo "tar: $path is $size bytes"; return 1; }
            cmp "$RFS_DIR/copy/$path" "$MNT/$path" || { echo "rsync: $path differs"; return 1; }
        done <"$RFS_DIR/tar.sizes"
        # prompts are always listed, whatever their job does
        [ "$(grep -c '\.txt$' "$RFS_DIR/ls.txt")" -eq 40 ]
        [ "$(grep -c '\.txt$' "$RFS_DIR/rsync.txt")" -eq 40 ]
        runs=$((runs + 1))
        # a round that saw pending jobs and finished ones at once
        if [ "$after" -gt 0 ] && grep -q '\.out$' "$RFS_DIR/ls.txt"; then mixed=$((mixed + 1)); fi
        sleep 0.1
    done
    echo "$runs rounds, $mixed with finished and pending jobs side by side"
    [ "$mixed" -ge 1 ]
    # all ended: now every result is listed
    timeout 20 "$ROUTEFS_BIN" wait --quiet "$MNT/fast" 3>&-
    [ "$(ls "$MNT/fast" | grep -c '\.txt\.out$')" -eq 40 ]
    [ "$(find "$MNT/fast" -name '*.meta' | wc -l)" -eq 40 ]
}

@test "listings: cat p.out right after writing waits for the answer; a pending result is looked up, not listed" {
    rfs_mount
    sim_behave sim/c '{"latency_ms": 1500}'
    printf 'wait for me\n' >"$MNT/other/w.txt"
    # looked up and stat-able while pending, but not in the listing
    [ -e "$MNT/other/w.txt.out" ]
    [ -e "$MNT/other/w.txt.meta" ]
    [ "$(ls "$MNT/other")" = w.txt ]
    [ -z "$(find "$MNT/other" -name 'w.txt.*')" ]
    t0=$(now_ms)
    out="$(read_out "$MNT/other/w.txt.out")"
    t1=$(now_ms)
    echo "cat took $((t1 - t0)) ms: $out"
    [ "$out" = "sim[sim/c]: wait for me" ]
    [ $((t1 - t0)) -ge 1000 ]
    [ "$(ls "$MNT/other" | paste -sd' ')" = "w.txt w.txt.meta w.txt.out" ]
}

# times PATH — modification and change times, to the nanosecond.
times() { stat -c '%y %z' "$1"; }

@test "listings: a finished result's times are fixed when its job ends (done and failed; find -newer)" {
    rfs_mount
    sim_behave sim/c '{"status": 500}'
    submit fast good.txt
    submit other bad.txt
    read_out "$MNT/fast/good.txt.out" >/dev/null
    wait_state "$MNT/other/bad.txt" failed
    files=("$MNT/fast/good.txt.out" "$MNT/fast/good.txt.meta"
           "$MNT/other/bad.txt.out" "$MNT/other/bad.txt.meta" "$MNT/other/bad.txt.err")
    declare -A first
    for f in "${files[@]}"; do first[$f]="$(times "$f")"; done
    # each result's mtime is when the job finished (its .meta's finished_at), not now
    for f in "${files[@]}"; do
        p="${f%.*}"
        fin="$(date -d "$(meta "$p.meta" .finished_at)" +%s%3N)"
        m="$(stat -c %.3Y "$f" | tr -d .)"
        echo "$f: mtime $m, finished $fin"
        [ $((m - fin)) -le 1 ]
        [ $((fin - m)) -le 1 ]
    done
    sleep 1.2
    touch "$RFS_DIR/ref"   # later than every result
    for round in 1 2 3 4 5 6; do
        for f in "${files[@]}"; do
            [ "$(times "$f")" = "${first[$f]}" ] || { echo "$f: ${first[$f]} became $(times "$f")"; return 1; }
        done
        found="$(find "$MNT/fast" "$MNT/other" -newer "$RFS_DIR/ref")"
        [ -z "$found" ] || { echo "find -newer found: $found"; return 1; }
        sleep 0.4
    done
    # and a prompt rewritten later is newer again: the check can see a change
    submit fast good.txt "changed"
    read_out "$MNT/fast/good.txt.out" >/dev/null
    [ -n "$(find "$MNT/fast" -name 'good.txt.out' -newer "$RFS_DIR/ref")" ]
}

# --- report.html through the mount ----------------------------------------------------
# (Chromium: chromium.bash)

@test "report.html through the mount: Chromium draws M/report.html with its charts and no console message" {
    need_chromium
    rfs_mount
    # spend to show: jobs on two tiers, one by a fallback, one failed
    submit fast a.txt
    submit fast b.txt
    submit other c.txt
    timeout 20 "$ROUTEFS_BIN" wait --quiet "$MNT" 3>&-
    sim_behave sim/a '{"status": 500, "fail_first": 1}'
    submit fast fb.txt
    sim_behave sim/c '{"status": 500}'
    submit other bad.txt
    timeout 20 "$ROUTEFS_BIN" wait --quiet "$MNT" 3>&- || true
    sleep 2.1   # past the page's 2 s render cache
    [ -s "$MNT/report.html" ]
    not grep -qi '<script' "$MNT/report.html"
    not grep -qiE '(src|href)=|url\(|@import|https?://' "$MNT/report.html"
    run chromium_run --window-size=1280,2000 --hide-scrollbars \
        --screenshot="$RFS_DIR/mount.png" "file://$MNT/report.html"
    echo "$output" >"$RFS_DIR/shot.err"
    assert_success
    [ -s "$RFS_DIR/mount.png" ]
    run png_check "$RFS_DIR/mount.png" 78,121,167
    echo "$output"
    assert_success
    run console_messages "$RFS_DIR/shot.err"
    echo "$output"
    assert_failure
    chromium_run --dump-dom "file://$MNT/report.html" >"$RFS_DIR/dom.html" 2>"$RFS_DIR/dom.err"
    dom="$RFS_DIR/dom.html"
    grep -q '<svg class="chart" id="daily-spend"' "$dom"
    [ "$(grep -o '<rect class="bar"' "$dom" | wc -l)" -ge 2 ]   # today: fast and other
    grep -q 'class="cap-line"' "$dom"
    grep -q 'daily cap \$5.00' "$dom"
    grep -q 'id="gauge-today"' "$dom"
    grep -q 'id="gauge-month"' "$dom"
    [ "$(grep -o '<svg class="chart provider-days"' "$dom" | wc -l)" -ge 1 ]
    grep -q 'other/bad.txt' "$dom"                               # failed now
    grep -q 'sim/b' "$dom"                                       # the fallback's model
    not grep -qi '<script' "$dom"
    run console_messages "$RFS_DIR/dom.err"
    assert_failure
}

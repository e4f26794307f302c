#!/usr/bin/env bats
# routefs end-to-end, issue 11: nothing is paid for twice.  Re-syncing or re-copying the
# same prompts (rsync -a, cp -p, tar -x, touch -d, chmod, chown) costs nothing and keeps
# their attributes; a changed prompt re-runs only itself; `routefs rerun` and delete +
# copy run the same text again on purpose.  Dot directories are scratch space (git works
# in a tier for free).  Names whose results could not be stored are refused.

load helpers
load money_helpers

setup() {
    rfs_setup
    money_config '{"daily_usd": 5}' '{"sim/a": {"prompt": 1000, "completion": 1000}}' \
        '{"t": {"route": ["sim/a"], "retries": 0, "timeout_ms": 5000, "max_tokens": 16}}'
    rfs_mount
    SRC="$RFS_DIR/src"
    mkdir -p "$SRC"
}

teardown() {
    money_teardown
}

# make_prompts N — SRC/p1..pN, mode 640, modified at 2020-01-02 03:04:05 UTC.
make_prompts() {
    local i
    for i in $(seq 1 "$1"); do printf 'prompt number %s\n' "$i" >"$SRC/p$i"; done
    chmod 640 "$SRC"/p*
    touch -d '2020-01-02 03:04:05 UTC' "$SRC"/p*
}

# prompt_names N — p1 .. pN
prompt_names() { seq 1 "$1" | sed 's/^/p/'; }

# attrs PATH — "mode uid gid mtime" as stat shows them (after the kernel's 1 s attribute
# cache, so that what routefs stored is what is seen).
attrs() { stat -c '%a %u %g %Y' "$1"; }

# stored_attrs KEY — the same from the state store's row.
stored_attrs() {
    state_sql "SELECT printf('%o %d %d %d', mode, uid, gid, mtime_ns / 1000000000)
               FROM prompts WHERE path = '$1'"
}

# sent_is N — the sim received N requests for sim/a.
sent_is() { [ "$(sim_count sim/a)" = "$1" ]; }

# transferred — the number rsync --stats says it transferred (from $output).
transferred() { sed -n 's/^Number of regular files transferred: //p' <<<"$output"; }

@test "rsync -a twice: the second sync sends nothing and rsync transfers nothing; a changed prompt re-runs only itself" {
    make_prompts 5
    run rsync -a --stats "$SRC/" "$MNT/t/"
    assert_success
    [ "$(transferred)" = 5 ]
    mapfile -t names < <(prompt_names 5)
    wait_for 20 all_ended "$MNT/t" "${names[@]}"
    [ "$(sim_count sim/a)" = 5 ]
    sleep 1.1
    for n in "${names[@]}"; do
        [ "$(attrs "$MNT/t/$n")" = "$(attrs "$SRC/$n")" ]
        [ "$(stored_attrs "t/$n")" = "$(attrs "$SRC/$n")" ]
    done
    run rsync -a --stats "$SRC/" "$MNT/t/"
    assert_success
    echo "$output" | grep -i transferred
    [ "$(transferred)" = 0 ]
    [ "$(sim_count sim/a)" = 5 ]
    # one prompt changes: only it runs again
    printf 'prompt number 3, revised\n' >"$SRC/p3"
    run rsync -a --stats "$SRC/" "$MNT/t/"
    assert_success
    [ "$(transferred)" = 1 ]
    run read_out "$MNT/t/p3.out"
    assert_output "sim[sim/a]: prompt number 3, revised"
    [ "$(sim_count sim/a)" = 6 ]
    run read_out "$MNT/t/p2.out"
    assert_output "sim[sim/a]: prompt number 2"
    run rsync -a --stats "$SRC/" "$MNT/t/"
    [ "$(transferred)" = 0 ]
    [ "$(sim_count sim/a)" = 6 ]
    [ "$(ledger_rows)" = 6 ]
    assert_spend_agrees
}

@test "cp -p and tar -x of the same prompts cost nothing and keep mtime and mode" {
    make_prompts 3
    mapfile -t names < <(prompt_names 3)
    cp -p "$SRC"/p* "$MNT/t/"
    wait_for 20 all_ended "$MNT/t" "${names[@]}"
    [ "$(sim_count sim/a)" = 3 ]
    sleep 1.1
    for n in "${names[@]}"; do
        [ "$(attrs "$MNT/t/$n")" = "$(attrs "$SRC/$n")" ]
        [ "$(stored_attrs "t/$n")" = "$(attrs "$SRC/$n")" ]
    done
    # again: the same bytes keep their answers; the times are those of the source
    cp -p "$SRC"/p* "$MNT/t/"
    sleep 1.1
    for n in "${names[@]}"; do
        [ "$(attrs "$MNT/t/$n")" = "$(attrs "$SRC/$n")" ]
    done
    [ "$(sim_count sim/a)" = 3 ]
    # tar -x removes each file before extracting it again: still nothing is sent
    (cd "$SRC" && tar cf "$RFS_DIR/prompts.tar" p1 p2 p3)
    (cd "$MNT/t" && tar xf "$RFS_DIR/prompts.tar")
    (cd "$MNT/t" && tar xf "$RFS_DIR/prompts.tar")
    sleep 1.1
    for n in "${names[@]}"; do
        [ "$(attrs "$MNT/t/$n")" = "$(attrs "$SRC/$n")" ]
        run read_out "$MNT/t/$n.out"
        assert_output "sim[sim/a]: prompt number ${n#p}"
        [ "$(meta "$MNT/t/$n.meta" .state)" = done ]
    done
    [ "$(sim_count sim/a)" = 3 ]
    # a changed file in the archive runs, and only it
    printf 'prompt number 2, revised\n' >"$SRC/p2"
    touch -d '2020-01-02 03:04:05 UTC' "$SRC/p2"
    (cd "$SRC" && tar cf "$RFS_DIR/prompts.tar" p1 p2 p3)
    (cd "$MNT/t" && tar xf "$RFS_DIR/prompts.tar")
    run read_out "$MNT/t/p2.out"
    assert_output "sim[sim/a]: prompt number 2, revised"
    [ "$(sim_count sim/a)" = 4 ]
    [ "$(ledger_rows)" = 4 ]
    # nothing deleted a moment ago lingers in the store once its time is up
    sleep 6
    printf 'x' >"$MNT/t/late"
    rm "$MNT/t/late"
    [ "$(state_sql "SELECT count(*) FROM prompts WHERE path NOT LIKE 't/%'")" -le 1 ]
    assert_spend_agrees
}

@test "touch -d, chmod and chown of a prompt are stored and shown, and cost nothing" {
    printf 'attributes\n' >"$MNT/t/a"
    run read_out "$MNT/t/a.out"
    assert_success
    touch -d '2021-02-03 04:05:06 UTC' "$MNT/t/a"
    chmod 600 "$MNT/t/a"
    chown 1234:5678 "$MNT/t/a"
    sleep 1.1
    want="600 1234 5678 $(date -d '2021-02-03 04:05:06 UTC' +%s)"
    [ "$(attrs "$MNT/t/a")" = "$want" ]
    [ "$(stored_attrs t/a)" = "$want" ]
    [ "$(sim_count sim/a)" = 1 ]
    [ "$(meta "$MNT/t/a.meta" .state)" = done ]
    # and they survive a remount
    rfs_unmount
    rfs_mount
    [ "$(attrs "$MNT/t/a")" = "$want" ]
    [ "$(sim_count sim/a)" = 1 ]
    assert_spend_agrees
}

@test "routefs rerun runs the same content again; deleting the prompt and copying it again runs it again" {
    printf 'again\n' >"$SRC/a"
    cp "$SRC/a" "$MNT/t/a"
    run read_out "$MNT/t/a.out"
    assert_success
    [ "$(sim_count sim/a)" = 1 ]
    first=$(meta "$MNT/t/a.meta" .ledger_id)
    run rfs_cli rerun "$MNT/t/a"
    assert_success
    wait_for 10 sent_is 2
    wait_for 10 ended "$MNT/t/a"
    run read_out "$MNT/t/a.out"
    assert_output "sim[sim/a]: again"
    [ "$(sim_count sim/a)" = 2 ]
    [ "$(meta "$MNT/t/a.meta" .ledger_id)" != "$first" ]
    # the same bytes copied over it: nothing
    cp "$SRC/a" "$MNT/t/a"
    sleep 0.3
    [ "$(sim_count sim/a)" = 2 ]
    # deleted, then copied again: a new job
    rm "$MNT/t/a"
    cp "$SRC/a" "$MNT/t/a"
    run read_out "$MNT/t/a.out"
    assert_success
    [ "$(sim_count sim/a)" = 3 ]
    # a deleted prompt written again by a shell runs again too
    rm "$MNT/t/a"
    printf 'again\n' >"$MNT/t/a"
    run read_out "$MNT/t/a.out"
    assert_success
    [ "$(sim_count sim/a)" = 4 ]
    [ "$(ledger_rows)" = 4 ]
    assert_spend_agrees
}

# --- dot directories ----------------------------------------------------------------------

@test "git init inside a tag directory costs nothing and makes no tags; git add, commit, status and log work" {
    mkdir "$MNT/t/proj"
    cd "$MNT/t/proj"
    git init -q .
    [ -d .git ]
    [ "$(sim_total)" = 0 ]
    [ "$(spend '.by_tag | length')" = 0 ]
    [ "$(state_sql "SELECT count(*) FROM prompts")" = 0 ]
    printf 'a tracked prompt\n' >f1
    git add f1
    git -c user.email=t@example.com -c user.name=t commit -q -m first
    run git status --porcelain --untracked-files=no
    assert_success
    assert_output ""
    run git log --oneline
    assert_success
    assert_output --partial first
    run read_out "$MNT/t/proj/f1.out"
    assert_output "sim[sim/a]: a tracked prompt"
    cd /
    [ "$(sim_total)" = 1 ]
    [ "$(spend '.by_tag | keys | join(",")')" = proj ]
    [ "$(state_sql "SELECT count(*) FROM prompts WHERE path LIKE '%/.%'")" = 0 ]
    [ "$(state_sql "SELECT count(*) FROM dirs WHERE path LIKE '%/.%'")" = 0 ]
    assert_spend_agrees
}

@test "git clone of a local 5-file repository into a tier costs exactly 5 requests; nothing under .git is a job" {
    mkdir "$RFS_DIR/repo"
    for i in 1 2 3 4 5; do printf 'file %s\n' "$i" >"$RFS_DIR/repo/f$i.txt"; done
    git -C "$RFS_DIR/repo" init -q
    git -C "$RFS_DIR/repo" add .
    git -C "$RFS_DIR/repo" -c user.email=t@example.com -c user.name=t commit -q -m five
    git clone -q "$RFS_DIR/repo" "$MNT/t/clone"
    wait_for 20 all_ended "$MNT/t/clone" f1.txt f2.txt f3.txt f4.txt f5.txt
    [ "$(sim_total)" = 5 ]
    [ "$(state_sql "SELECT count(*) FROM prompts")" = 5 ]
    [ "$(state_sql "SELECT count(*) FROM prompts WHERE dir = 't/clone'")" = 5 ]
    [ "$(spend '.by_tag | keys | join(",")')" = clone ]
    run git -C "$MNT/t/clone" status --porcelain --untracked-files=no
    assert_success
    assert_output ""
    run git -C "$MNT/t/clone" log --oneline
    assert_output --partial five
    run git -C "$MNT/t/clone" fsck --no-progress
    assert_success
    [ "$(sim_total)" = 5 ]
    [ "$(ledger_rows)" = 5 ]
    assert_spend_agrees
}

@test ".cache and other dot directories are never jobs, never tags, never billed" {
    mkdir -p "$MNT/t/.cache/sub" "$MNT/t/news/.cache"
    printf 'x\n' >"$MNT/t/.cache/x"
    printf 'y\n' >"$MNT/t/.cache/sub/y"
    printf 'z\n' >"$MNT/t/news/.cache/z"
    printf 'w\n' >"$MNT/t/news/.hidden"
    [ "$(cat "$MNT/t/.cache/sub/y")" = y ]
    [ ! -e "$MNT/t/.cache/x.out" ]
    sleep 0.5
    [ "$(sim_total)" = 0 ]
    [ "$(state_sql "SELECT count(*) FROM prompts")" = 0 ]
    [ "$(spend '.by_tag | length')" = 0 ]
    [ "$(ledger_rows)" = 0 ]
    assert_spend_agrees
}

# --- names whose results could not be stored ----------------------------------------------

@test "prompt names of 251-255 bytes are refused at create with ENAMETOOLONG; 250 works; a rename onto a long name is refused" {
    for n in 251 252 253 254 255; do
        name=$(printf 'n%.0s' $(seq "$n"))
        run bash -c 'printf "too long" >"$1"' _ "$MNT/t/$name"
        echo "$n: $output"
        assert_failure
        assert_output --partial "File name too long"
    done
    name=$(printf 'n%.0s' $(seq 250))
    printf 'just fits' >"$MNT/t/$name"
    run read_out "$MNT/t/$name.out"
    assert_success
    assert_output "sim[sim/a]: just fits"
    [ "$(meta "$MNT/t/$name.meta" .state)" = done ]
    [ "$(meta "$MNT/t/$name.meta" .file)" = "$name" ]
    # a rename onto a name too long for its results, from a prompt or from scratch space
    printf 'short' >"$MNT/t/short"
    run read_out "$MNT/t/short.out"
    long=$(printf 'm%.0s' $(seq 252))
    run mv "$MNT/t/short" "$MNT/t/$long"
    assert_failure
    assert_output --partial "File name too long"
    [ -e "$MNT/t/short" ]
    printf 'scratch' >"$MNT/t/.tmp-file"
    run mv "$MNT/t/.tmp-file" "$MNT/t/$long"
    assert_failure
    assert_output --partial "File name too long"
    [ "$(sim_total)" = 2 ]
    [ "$(state_sql "SELECT count(*) FROM prompts WHERE length(name) > 250")" = 0 ]
    [ "$(ledger_rows)" = 2 ]
    # nothing is billed again at a remount
    rfs_unmount
    rfs_mount
    sleep 0.5
    [ "$(sim_total)" = 2 ]
    assert_spend_agrees
}

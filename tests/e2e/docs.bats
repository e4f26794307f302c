#!/usr/bin/env bats
# The docs stay true: the example commands of README.md, routefs(1) and routefs-sim(1)
# run on a demo mount (routefs-sim + examples/demo.json, as `make run` mounts it) and
# print what the text shows; the man pages pass mandoc's lint; the exit codes of the
# commands are the same in --help, README.md and routefs(1); bash completion knows every
# subcommand.
#
# Which blocks run is decided by tests/docs-examples.py (its comment has the rules: blocks
# that name the demo mount, mnt/ or ~/llm, run; docs-test: markers skip or add checks).
# Examples that need the network or a real API key (OpenRouter), or that change the
# user's system (systemctl, /etc/fstab), are not run here: the test prints why for each.

load helpers

EXTRACT="$RFS_REPO/tests/docs-examples.py"
README="$RFS_REPO/README.md"
MAN="$RFS_REPO/src/man/routefs.1"
SIM_MAN="$RFS_REPO/src/man/routefs-sim.1"

setup() {
    rfs_setup
}

teardown() {
    rfs_teardown
}

# demo_mount — examples/demo.json on the sim, mounted at $RFS_DIR/mnt; the fixtures the
# examples use (brief.txt, items/, batch/) in $RFS_DIR; $RFS_DIR/home/llm is the mount.
demo_mount() {
    rfs_config <"$RFS_REPO/examples/demo.json"
    rfs_mount
    printf 'Summarise: a brief about FUSE.\n' >"$RFS_DIR/brief.txt"
    mkdir -p "$RFS_DIR/items" "$RFS_DIR/batch" "$RFS_DIR/home"
    printf 'Story one happened.\n' >"$RFS_DIR/items/item-1.txt"
    printf 'Story two happened.\n' >"$RFS_DIR/items/item-2.txt"
    printf 'Batch question one?\n' >"$RFS_DIR/batch/q1.txt"
    printf 'Batch question two?\n' >"$RFS_DIR/batch/q2.txt"
    ln -s "$MNT" "$RFS_DIR/home/llm"
}

# run_examples FILE... — every block of FILE that runs, each in its own bash from
# $RFS_DIR (bounded: 60 s); prints what ran, what was skipped and why; fails when a
# block failed or when none ran (the convention would have stopped matching).
run_examples() {
    local out="$RFS_DIR/docs" id where status why ran=0 failed=0
    rm -rf "$out"
    python3 "$EXTRACT" scripts "$out" "$@"
    while IFS=$'\t' read -r id where status why; do
        case $status in
            run) ;;
            skip) echo "not run: $where: $why"; continue ;;
            *) continue ;;
        esac
        ran=$((ran + 1))
        if (cd "$RFS_DIR" && HOME="$RFS_DIR/home" P="$SIM_PORT" \
                PATH="$(dirname "$ROUTEFS_BIN"):$(dirname "$SIM_BIN"):$PATH" \
                timeout 60 bash "$out/$id.sh" </dev/null >"$out/$id.log" 2>&1 3>&-); then
            echo "ok: $where"
        else
            echo "FAILED: $where (exit $?):"
            sed 's/^/    /' "$out/$id.sh"
            echo "  output:"
            sed 's/^/    /' "$out/$id.log"
            failed=$((failed + 1))
        fi
    done <"$out/index.tsv"
    echo "$ran run, $failed failed"
    [ "$ran" -gt 0 ] && [ "$failed" -eq 0 ]
}

# --- the extractor ----------------------------------------------------------------------

@test "docs: which blocks of README.md and the man pages run (the list, for whoever edits them)" {
    run env PATH="$(dirname "$ROUTEFS_BIN"):$PATH" python3 "$EXTRACT" list "$README" "$MAN" "$SIM_MAN"
    echo "$output"
    assert_success
    # README: the five-line session and the Operations example at least
    [ "$(grep -c "README.md:[0-9]* run" <<<"$output")" -ge 2 ]
    local five
    five=$(grep -n "^echo \"Summarise: FUSE turns files into an API.\" > mnt/" "$README" | cut -d: -f1)
    [ -n "$five" ]
    grep -q "README.md:$five run" <<<"$output"
    # the JSON config and the directory tree are data; the M/ transcript is illustrative
    grep -q "README.md:[0-9]* data \`\`\`json" <<<"$output"
    grep -q "README.md:14 illustrative" <<<"$output"
    [ "$(grep -c "routefs.1:[0-9]* run" <<<"$output")" -ge 4 ]
    grep -q "routefs.1:[0-9]* skip needs an OpenRouter key" <<<"$output"
    [ "$(grep -c "routefs-sim.1:[0-9]* run" <<<"$output")" -ge 1 ]
}

@test "docs: the extractor's rules on a sample (data, illustrative, run, skip, check, transcript)" {
    cat >"$RFS_DIR/sample.md" <<'MD'
```json
{"a": 1}
```

```
cat M/lightweight/x.out
```

```
cat mnt/lightweight/x.out
```

<!-- docs-test: skip needs the network -->
```
curl https://example.com/ > mnt/x
```

<!-- docs-test: check test -e done.flag -->
<!-- docs-test: run -->
```sh
touch done.flag
```

```
MOUNT/
  status
```

```
$ echo "a b"; echo c
a ...
c
$ printf 'x\ny\nz\n'
x
...
```

```
export OPENROUTER_API_KEY=sk-or-123 && routefs mnt/
```
MD
    run python3 "$EXTRACT" list "$RFS_DIR/sample.md"
    echo "$output"
    assert_success
    assert_line --index 0 --partial "data \`\`\`json"
    assert_line --index 1 --partial "illustrative"
    assert_line --index 2 --partial "run uses the demo mount"
    assert_line --index 3 --partial "skip needs the network"
    assert_line --index 4 --partial "run marked run"
    assert_line --index 5 --partial "data not a command: MOUNT/"
    assert_line --index 6 --partial "illustrative"
    assert_line --index 7 --partial "skip needs a real API key"
    # the transcript, and the check, run as scripts
    python3 "$EXTRACT" scripts "$RFS_DIR/out" "$RFS_DIR/sample.md"
    grep -q "test -e done.flag" "$RFS_DIR/out/005.sh"
    (cd "$RFS_DIR" && bash "$RFS_DIR/out/005.sh")
    printf '$ echo "a b"; echo c\na ...\nc\n$ printf %s\nx\n...\n' "'x\ny\nz\n'" >"$RFS_DIR/t.md"
    sed -i '1i ```' "$RFS_DIR/t.md"
    echo '```' >>"$RFS_DIR/t.md"
    sed -i '1i <!-- docs-test: run -->' "$RFS_DIR/t.md"
    python3 "$EXTRACT" scripts "$RFS_DIR/t" "$RFS_DIR/t.md"
    (cd "$RFS_DIR" && bash "$RFS_DIR/t/001.sh")
    # and a transcript whose output differs fails
    printf 'wrong\n' >"$RFS_DIR/t/001.expected-2"
    run bash -c "cd '$RFS_DIR' && bash '$RFS_DIR/t/001.sh'"
    assert_failure
    assert_output --partial "output differs from the text"
}

# --- the examples, on the demo mount ----------------------------------------------------

@test "docs: README.md's examples run on the demo mount as printed" {
    demo_mount
    run_examples "$README"
}

@test "docs: routefs.1's examples run on the demo mount, and do what the text says" {
    demo_mount
    run_examples "$MAN"
}

@test "docs: routefs-sim.1's examples that use a mount run on the demo mount" {
    demo_mount
    run_examples "$SIM_MAN"
}

# --- man pages ---------------------------------------------------------------------------

@test "docs: mandoc -T lint: routefs.1 has no warning or error, routefs-sim.1 no error" {
    command -v mandoc >/dev/null || skip "mandoc is not installed (sh tests/install-deps.sh)"
    run mandoc -T lint -W warning "$MAN"
    echo "$output"
    assert_success
    assert_output ""
    run mandoc -T lint -W error "$SIM_MAN"
    echo "$output"
    assert_success
    # and groff renders both without a warning
    run bash -c "LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$MAN' 2>&1 >/dev/null"
    assert_output ""
}

# --- exit codes: --help, README.md and routefs.1 say the same ---------------------------

# flat FILE — FILE on one line, runs of blanks squeezed (text wrapped anywhere matches).
flat() { tr '\n' ' ' <"$1" | tr -s ' '; }

@test "docs: routefs wait and routefs umount document the same exit codes everywhere" {
    run rfs_cli wait --help
    assert_success
    local help_wait=$output
    [[ $help_wait == *"0 every job done, 1 some failed, 2 usage error, 3 timed out,"* ]]
    [[ $help_wait == *"4 the mount (or a directory waited on) went away, 128+N signal N."* ]]
    grep -q "exit status is 0 when every.*" "$README"
    flat "$README" | grep -q "1 when any failed, 2 on a usage error, 3 on a timeout, 4 when the mount (or a directory waited on) went away, and 128+N"
    flat "$MAN" | grep -q "Exit status: 0 every job done, 1 at least one failed, 2 usage error, 3 timeout, 4 the mount went away"
    run rfs_cli umount --help
    assert_success
    [[ $output == *"Exit status: 0 unmounted, 1 the daemon could not be asked"* ]]
    [[ $output == *"2 usage error, 3 timed out (still"* ]]
    [[ $output == *"4 not a routefs mount."* ]]
    flat "$README" | grep -q "It exits 0 when the mount is gone, 1 when the daemon could not be asked (permission, or a dead mount), 2 on a usage error, 3 on a timeout, and 4 when MOUNTPOINT is not a routefs mount"
    flat "$MAN" | grep -q "Exit status: 0 the mount is gone, 1 the daemon could not be asked"
}

# --- bash completion ---------------------------------------------------------------------

# complete_words WORD... — what examples/completion/routefs.bash offers for the last WORD
# of the command line "routefs WORD...", one per line.
complete_words() {
    bash -c '. "$1"; shift; COMP_WORDS=(routefs "$@"); COMP_CWORD=$#
             _routefs 2>/dev/null; printf "%s\n" "${COMPREPLY[@]}"' \
        sh "$RFS_REPO/examples/completion/routefs.bash" "$@"
}

@test "completion: subcommands, their options and values; every subcommand of routefs --help" {
    run complete_words ""
    assert_line "check"
    assert_line "wait"
    assert_line "umount"
    assert_line "schema"
    run complete_words wait --e
    assert_output "--each"
    run complete_words umount --t
    assert_output "--timeout"
    run complete_words --con
    assert_output "--config"
    run complete_words mnt -o allow_other,sta
    assert_output "allow_other,state="
    cd "$RFS_REPO"
    run complete_words check examples/dem
    assert_output "examples/demo.json"
    # the routefs mounts in /proc/self/mounts, for umount
    rfs_config <"$RFS_REPO/examples/demo.json"
    rfs_mount
    run complete_words umount "$RFS_DIR/m"
    assert_line "$MNT"
    # every subcommand the usage names is completed
    run rfs_cli --help
    local sub subs
    subs=$(sed -n 's/^ *\(usage: \)\{0,1\}routefs \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\2/p' <<<"$output" | sort -u)
    [ "$(wc -l <<<"$subs")" -ge 4 ]
    while read -r sub; do
        echo "subcommand in --help: $sub"
        run complete_words "${sub:0:3}"
        assert_line "$sub"
    done <<<"$subs"
}

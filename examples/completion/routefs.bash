# bash completion for routefs.
#
# `make install` puts this file at $(PREFIX)/share/bash-completion/completions/routefs,
# where bash-completion loads it the first time `routefs` is completed.  Without
# bash-completion: `. examples/completion/routefs.bash` in ~/.bashrc.
#
#   routefs [SOURCE] MOUNTPOINT [options]   mount: directories, then the mount options
#   routefs check FILE                      config files (*.json)
#   routefs schema
#   routefs wait [options] PATH...          prompts, tiers and tag directories
#   routefs umount [options] MOUNTPOINT     the routefs mounts in /proc/self/mounts
#   routefs report STATE [options]          a state directory
#   routefs export STATE DIR [--tier T]     a state directory, then a directory
#   routefs prices [options] [MODEL...]
#   routefs rerun PROMPT...                 prompts in a mount
#
# To add a subcommand: add its name to _routefs_subcommands, its options to a variable
# _routefs_opts_NAME (dashes in NAME become underscores), and, when its arguments are not
# files, a case in _routefs_complete_args.  Options that take a value are listed in
# _routefs_value_opts with the kind of value.  tests/e2e/docs.bats checks that every
# subcommand `routefs --help` names is here.

_routefs_subcommands="check schema wait umount report export prices rerun"

_routefs_opts_mount="--config --state --log --foreground --debug -o --help --version"
_routefs_opts_check="--help --"
_routefs_opts_schema="--help"
_routefs_opts_wait="--timeout --interval --quiet --each --help"
_routefs_opts_umount="--timeout --help"
_routefs_opts_report="--config --days --help"
_routefs_opts_export="--tier --help"
_routefs_opts_prices="--state --config --help"
_routefs_opts_rerun="--help"

# OPTION:KIND for options that take a value: file, json, dir, mountopt, or none (a number
# or free text: nothing to complete).
_routefs_value_opts="--config:json -c:json --state:dir -s:dir --log:file -l:file
-o:mountopt --timeout:none -t:none --interval:none -i:none --days:none --tier:none"

# _routefs_reply CMD... — COMPREPLY from CMD's output, one candidate per line.
_routefs_reply() {
    mapfile -t COMPREPLY < <("$@")
}

# _routefs_mounts — the mount points of routefs mounts (fuse.routefs in /proc/self/mounts).
_routefs_mounts() {
    local _dev m type _rest
    while read -r _dev m type _rest; do
        [ "$type" = fuse.routefs ] && printf '%s\n' "${m//\\040/ }"
    done </proc/self/mounts 2>/dev/null
}

# _routefs_compgen KIND WORD — fill COMPREPLY with candidates of KIND for WORD.
_routefs_compgen() {
    local kind=$1 cur=$2
    case $kind in
        dir)
            _routefs_reply compgen -d -- "$cur"
            compopt -o filenames 2>/dev/null
            ;;
        json)
            _routefs_reply compgen -o plusdirs -f -X '!*.json' -- "$cur"
            compopt -o filenames 2>/dev/null
            ;;
        file)
            _routefs_reply compgen -f -- "$cur"
            compopt -o filenames 2>/dev/null
            ;;
        mountopt)
            # -o takes a comma-separated list: complete its last element
            local prefix="" last=$cur
            if [[ $cur == *,* ]]; then
                prefix=${cur%,*},
                last=${cur##*,}
            fi
            _routefs_reply compgen -P "$prefix" -W "config= state= log= allow_other
                default_permissions ro nodev nosuid" -- "$last"
            if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
                compopt -o nospace 2>/dev/null
            fi
            ;;
        mounts)
            local m
            local -a found=()
            while IFS= read -r m; do
                [[ $m == "$cur"* ]] && found+=("$m")
            done < <(_routefs_mounts)
            _routefs_reply compgen -d -- "$cur"
            COMPREPLY=("${found[@]}" "${COMPREPLY[@]}")
            compopt -o filenames 2>/dev/null
            ;;
        *)
            COMPREPLY=()
            ;;
    esac
}

# _routefs_complete_args SUBCOMMAND WORD — positional arguments.
_routefs_complete_args() {
    case $1 in
        mount)  _routefs_compgen dir "$2" ;;
        check)  _routefs_compgen json "$2" ;;
        schema) COMPREPLY=() ;;
        wait)   _routefs_compgen file "$2" ;;
        umount) _routefs_compgen mounts "$2" ;;
        report|export) _routefs_compgen dir "$2" ;;
        prices) COMPREPLY=() ;;
        rerun)  _routefs_compgen file "$2" ;;
        *)      _routefs_compgen file "$2" ;;
    esac
}

_routefs() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev="" sub=mount w entry
    [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()

    # The subcommand is the first word after routefs, if it is one.
    if [ "$COMP_CWORD" -ge 2 ]; then
        for w in $_routefs_subcommands; do
            [ "${COMP_WORDS[1]}" = "$w" ] && sub=$w
        done
    fi

    # The value of an option that takes one.
    for entry in $_routefs_value_opts; do
        if [ "$prev" = "${entry%%:*}" ]; then
            _routefs_compgen "${entry#*:}" "$cur"
            return 0
        fi
    done

    if [[ $cur == -* ]]; then
        local var=_routefs_opts_${sub//-/_}
        _routefs_reply compgen -W "${!var}" -- "$cur"
        return 0
    fi
    if [ "$COMP_CWORD" -eq 1 ]; then
        # routefs <TAB>: a subcommand, or the mount point (or SOURCE) of a mount
        _routefs_reply compgen -W "$_routefs_subcommands" -- "$cur"
        local -a dirs
        mapfile -t dirs < <(compgen -d -- "$cur")
        COMPREPLY+=("${dirs[@]}")
        compopt -o filenames 2>/dev/null
        return 0
    fi
    _routefs_complete_args "$sub" "$cur"
    return 0
}

complete -F _routefs routefs

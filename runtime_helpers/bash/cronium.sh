# Cronium runtime helpers for Bash scripts.
#
# The host runs `bash script.sh` with BASH_ENV pointing at this file, so the
# functions below exist before the first line of the script runs; nothing has
# to be sourced. They need only bash (>= 4.0; 4.4+ for the fast path on large
# values) and coreutils (cat, od, sha256sum, mkdir, rm). See
# runtime_helpers/PROTOCOL.md for the files they read and write.
#
# Because BASH_ENV is also read by every bash the script starts, this file must
# stay quiet and must not change shell options: it only defines functions and a
# few `_cronium_*` variables.

# Where the run folder is when CRONIUM_RUN_DIR is not set: this file lives in
# <run dir>/helpers/bash/.
case ${BASH_SOURCE[0]-} in
    */*) _cronium_home=${BASH_SOURCE[0]%/*}/../.. ;;
    *) _cronium_home=../.. ;;
esac

# `local -` (keep `set -x` out of the helpers) and `mapfile -d` need bash 4.4.
if (( BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 4) )); then
    _cronium_bash44=1
else
    _cronium_bash44=
fi

# ---------------------------------------------------------------- internals

# _cronium_replace_all CHAR REPLACEMENT: replace every CHAR in $_cronium_s.
# ${s//c/r} is quadratic in bash when there are many matches in a large
# string, so large strings are split on CHAR by mapfile and joined by printf.
_cronium_replace_all() {
    local LC_ALL=C
    local -a _cronium_parts
    if [[ $_cronium_s != *"$1"* ]]; then
        return 0
    fi
    if [[ -z $_cronium_bash44 ]] || (( ${#_cronium_s} < 8192 )); then
        _cronium_s=${_cronium_s//"$1"/"$2"}
        return 0
    fi
    # The here-string adds one "\n"; it ends up at the end of the last part
    # (or terminates it when CHAR is the newline itself).
    mapfile -t -d "$1" _cronium_parts <<< "$_cronium_s"
    local fmt=%s${2//%/%%}
    fmt=${fmt//\\/\\\\}
    # shellcheck disable=SC2059 # the format is built above, with % and \ escaped
    printf -v _cronium_s "$fmt" "${_cronium_parts[@]}"
    _cronium_s=${_cronium_s%"$2"}
    if [[ $1 != $'\n' ]]; then
        _cronium_s=${_cronium_s%$'\n'}
    fi
    return 0
}

# _cronium_json_string TEXT: set _cronium_json to TEXT as a JSON string literal
# (quotes included). UTF-8 is kept as is; control characters are escaped.
_cronium_json_string() {
    local LC_ALL=C
    local _cronium_s=$1 code char
    # shellcheck disable=SC1003 # a lone backslash in single quotes is meant
    _cronium_replace_all '\' '\\'
    _cronium_replace_all '"' '\"'
    _cronium_replace_all $'\n' '\n'
    _cronium_replace_all $'\r' '\r'
    _cronium_replace_all $'\t' '\t'
    if [[ $_cronium_s == *[$'\001'-$'\037']* ]]; then
        for code in 1 2 3 4 5 6 7 8 11 12 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31; do
            # shellcheck disable=SC2059 # an octal escape, built on purpose
            printf -v char "\\$(printf '%03o' "$code")"
            if [[ $_cronium_s == *"$char"* ]]; then
                _cronium_replace_all "$char" "$(printf '\\u%04x' "$code")"
            fi
        done
    fi
    _cronium_json=\"$_cronium_s\"
    return 0
}

# _cronium_check_key FUNCTION KEY: a key must be a non-empty string.
_cronium_check_key() {
    if [[ -z $2 ]]; then
        printf '%s: a variable key is required\n' "$1" >&2
        return 2
    fi
    return 0
}

# _cronium_key_file KEY: set _cronium_kf to variables.d/<hex of the UTF-8
# key>; keys longer than 120 bytes use variables.d/sha256-<hex digest>.
_cronium_key_file() {
    local hex
    hex=$(printf '%s' "$1" | od -An -v -tx1) || return 1
    hex=${hex//[!0-9a-f]/}
    if (( ${#hex} > 240 )); then
        hex=$(printf '%s' "$1" | sha256sum) || return 1
        hex=sha256-${hex%% *}
    fi
    _cronium_kf=${CRONIUM_RUN_DIR:-$_cronium_home}/variables.d/$hex
    return 0
}

# _cronium_journal LINE: append one line to variables.log.
_cronium_journal() {
    printf '%s\n' "$1" >> "${CRONIUM_RUN_DIR:-$_cronium_home}/variables.log"
}

# _cronium_store KEY TEXT JSON: record a set (JSON = the value as JSON) and
# keep variables.d/ in step (TEXT = what cronium_getVariable prints).
_cronium_store() {
    local _cronium_json key_json
    _cronium_key_file "$1" || return 1
    _cronium_json_string "$1"
    key_json=$_cronium_json
    _cronium_journal "{\"op\":\"set\",\"key\":$key_json,\"value\":$3}" || return 1
    if [[ ! -d ${_cronium_kf%/*} ]]; then
        mkdir -p -- "${_cronium_kf%/*}" || return 1
    fi
    printf '%s' "$2" > "$_cronium_kf"
}

# _cronium_print_file FILE DEFAULT: print FILE, or DEFAULT when it is missing.
_cronium_print_file() {
    if [[ -f $1 ]]; then
        cat -- "$1"
    else
        printf '%s\n' "$2"
    fi
}

# ------------------------------------------------------------ documented API

# cronium_input: print the run's input (JSON).
cronium_input() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    _cronium_print_file "${CRONIUM_RUN_DIR:-$_cronium_home}/input.json" '{}'
}

# cronium_event: print the event's metadata (JSON object).
cronium_event() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    _cronium_print_file "${CRONIUM_RUN_DIR:-$_cronium_home}/event.json" '{}'
}

# cronium_output [JSON]: make JSON the run's output; with no argument the JSON
# is read from stdin. It is stored verbatim; the host rejects invalid JSON.
cronium_output() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local file=${CRONIUM_RUN_DIR:-$_cronium_home}/output.json
    if (( $# )); then
        printf '%s' "$1" > "$file"
    else
        cat > "$file"
    fi
}

# cronium_getVariable KEY: print the value (a string as is, anything else as
# JSON), with no trailing newline added. Status 1 and no output when missing.
cronium_getVariable() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_kf
    _cronium_check_key cronium_getVariable "${1-}" || return
    _cronium_key_file "$1" || return 1
    if [[ -f $_cronium_kf ]]; then
        cat -- "$_cronium_kf"
    else
        return 1
    fi
}

# cronium_setVariable KEY VALUE: store VALUE (a JSON string).
cronium_setVariable() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_json _cronium_kf
    _cronium_check_key cronium_setVariable "${1-}" || return
    _cronium_json_string "${2-}"
    _cronium_store "$1" "${2-}" "$_cronium_json"
}

# cronium_setCondition VALUE: true|1|yes|on or false|0|no|off (any case).
cronium_setCondition() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local value
    case ${1-} in
        [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss] | [Oo][Nn]) value=true ;;
        [Ff][Aa][Ll][Ss][Ee] | 0 | [Nn][Oo] | [Oo][Ff][Ff]) value=false ;;
        *)
            printf 'cronium_setCondition: expected true|1|yes|on or false|0|no|off, got %q\n' \
                "${1-}" >&2
            return 2
            ;;
    esac
    printf '{"condition":%s}\n' "$value" > "${CRONIUM_RUN_DIR:-$_cronium_home}/condition.json"
}

# cronium_getCondition: print true or false (false when never set).
cronium_getCondition() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local file=${CRONIUM_RUN_DIR:-$_cronium_home}/condition.json text=
    if [[ -f $file ]]; then
        text=$(< "$file")
    fi
    if [[ $text =~ \"condition\"[[:space:]]*:[[:space:]]*true ]]; then
        printf 'true\n'
    else
        printf 'false\n'
    fi
}

# ------------------------------------------ names of other Cronium generations

# cronium_delete_variable KEY: remove a variable (no error when missing).
cronium_delete_variable() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_json _cronium_kf
    _cronium_check_key cronium_delete_variable "${1-}" || return
    _cronium_key_file "$1" || return 1
    _cronium_json_string "$1"
    _cronium_journal "{\"op\":\"delete\",\"key\":$_cronium_json}" || return 1
    rm -f -- "$_cronium_kf"
}

# cronium_variable_exists KEY: status 0 when the variable is set.
cronium_variable_exists() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_kf
    _cronium_check_key cronium_variable_exists "${1-}" || return
    _cronium_key_file "$1" || return 1
    [[ -f $_cronium_kf ]]
}

# cronium_increment_variable KEY [BY]: add BY (default 1) to an integer
# variable (missing counts as 0), store the sum as a JSON number, print it.
cronium_increment_variable() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_kf current=0 by=${2-1} sum
    _cronium_check_key cronium_increment_variable "${1-}" || return
    if [[ ! $by =~ ^[+-]?[0-9]+$ ]]; then
        printf 'cronium_increment_variable: %q is not an integer\n' "$by" >&2
        return 2
    fi
    _cronium_key_file "$1" || return 1
    if [[ -f $_cronium_kf ]]; then
        current=$(< "$_cronium_kf")
        if [[ ! $current =~ ^[+-]?[0-9]+$ ]]; then
            printf 'cronium_increment_variable: variable %q is not an integer\n' "$1" >&2
            return 1
        fi
    fi
    # 10# keeps numbers with leading zeros decimal; it takes no sign.
    local a b
    a=$(( 10#${current#[+-]} ))
    b=$(( 10#${by#[+-]} ))
    if [[ $current == -* ]]; then a=$(( -a )); fi
    if [[ $by == -* ]]; then b=$(( -b )); fi
    sum=$(( a + b ))
    _cronium_store "$1" "$sum" "$sum" || return 1
    printf '%s\n' "$sum"
}

cronium_get_variable() { cronium_getVariable "$@"; }
cronium_set_variable() { cronium_setVariable "$@"; }
cronium_deleteVariable() { cronium_delete_variable "$@"; }
cronium_set_condition() { cronium_setCondition "$@"; }
cronium_get_condition() { cronium_getCondition "$@"; }

cronium.input() { cronium_input "$@"; }
cronium.output() { cronium_output "$@"; }
cronium.event() { cronium_event "$@"; }
cronium.getVariable() { cronium_getVariable "$@"; }
cronium.setVariable() { cronium_setVariable "$@"; }
cronium.deleteVariable() { cronium_delete_variable "$@"; }
cronium.setCondition() { cronium_setCondition "$@"; }
cronium.getCondition() { cronium_getCondition "$@"; }

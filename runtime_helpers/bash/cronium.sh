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

# Two generations of names live here. The documented camelCase names
# (cronium_getVariable...) behave as they always did here; the snake_case names
# of Cronium's runtime SDK (apps/runtime/runtime-helpers/bash/cronium.sh) behave
# as that SDK does: cronium_get_variable of a missing variable prints nothing
# and succeeds, cronium_set_variable stores a JSON text as JSON. Tool actions
# (cronium_send_email...) are requests in actions.jsonl, carried out by the host
# after the script ended (the helpers use no network).

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

# _cronium_check_key FUNCTION KEY: a Cronium key is 1 to 100 of A-Z a-z 0-9
# _ . - with no '..' (keep in step with cronium_provider/naming.py); status 2
# and a message naming the key otherwise. The host checks the journal again.
_cronium_check_key() {
    local LC_ALL=C
    if [[ -z $2 ]]; then
        printf '%s: a variable key is required\n' "$1" >&2
        return 2
    fi
    if [[ ! $2 =~ ^[A-Za-z0-9_.-]{1,100}$ || $2 == *..* ]]; then
        printf "%s: variable key '%s' is refused: a key is 1 to 100 of A-Z a-z 0-9 _ . - with no '..'\n" \
            "$1" "$2" >&2
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

# _cronium_store KEY TEXT MEMBERS [OP]: journal OP (default set) of KEY with
# the JSON object members MEMBERS ("value":JSON, or "text":STRING for a text the
# host stores as the JSON it spells) and keep variables.d/ in step (TEXT = what
# cronium_getVariable prints afterwards).
_cronium_store() {
    local _cronium_json key_json
    _cronium_key_file "$1" || return 1
    _cronium_json_string "$1"
    key_json=$_cronium_json
    _cronium_journal "{\"op\":\"${4:-set}\",\"key\":$key_json,$3}" || return 1
    if [[ ! -d ${_cronium_kf%/*} ]]; then
        mkdir -p -- "${_cronium_kf%/*}" || return 1
    fi
    printf '%s' "$2" > "$_cronium_kf"
}

# _cronium_write_atomic FILE [TEXT]: write TEXT (or stdin) to FILE through
# FILE.tmp-PID and a rename.
_cronium_write_atomic() {
    if (( $# > 1 )); then
        printf '%s' "$2" > "$1.tmp-$$" || return 1
    else
        cat > "$1.tmp-$$" || return 1
    fi
    mv -f -- "$1.tmp-$$" "$1"
}

# _cronium_hex TEXT: set _cronium_hexed to the lowercase hex of TEXT's bytes.
_cronium_hex() {
    _cronium_hexed=$(printf '%s' "$1" | od -An -v -tx1) || return 1
    _cronium_hexed=${_cronium_hexed//[!0-9a-f]/}
}

# _cronium_looks_json TEXT: status 0 when TEXT is shaped like a JSON value
# (the host decides for certain; this only guides what the script sees).
_cronium_looks_json() {
    local number='-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?'
    [[ $1 =~ ^[[:space:]]*(\{.*\}|\[.*\]|\".*\"|true|false|null|$number)[[:space:]]*$ ]]
}

# _cronium_string_list TEXT: set _cronium_list to a JSON array of the
# comma-separated items of TEXT, blanks around them trimmed, empty ones left out.
_cronium_string_list() {
    local rest=$1 item items=
    local _cronium_json
    while :; do
        item=${rest%%,*}
        item=${item#"${item%%[![:space:]]*}"}
        item=${item%"${item##*[![:space:]]}"}
        if [[ -n $item ]]; then
            _cronium_json_string "$item"
            items+=${items:+,}$_cronium_json
        fi
        [[ $rest == *,* ]] || break
        rest=${rest#*,}
    done
    _cronium_list="[$items]"
}

# _cronium_request FUNCTION TOOL ACTION CONFIG: append one tool action request
# (CONFIG: a JSON object on one line) to actions.jsonl; at most 100 per run.
# Cronium's SDK names the sending action of slack, discord and email
# "send_message"; the provider's ids are written instead.
_cronium_request() {
    local file=${CRONIUM_RUN_DIR:-$_cronium_home}/actions.jsonl count=0 line
    local tool=${2,,} action=$3 _cronium_json tool_json
    tool=${tool//[[:space:]]/}
    case ${action,,} in
        send | send[_-]message | sendmessage | message | send[_-]email | sendemail)
            case $tool in
                slack) action=slack-send-message ;;
                discord) action=discord-send-message ;;
                email) action=send-email ;;
            esac
            ;;
    esac
    if [[ -f $file ]]; then
        while IFS= read -r line || [[ -n $line ]]; do
            if [[ -n ${line//[[:space:]]/} ]]; then
                count=$((count + 1))
            fi
        done < "$file"
    fi
    if (( count >= 100 )); then
        printf '%s: a run may ask for at most 100 tool actions\n' "$1" >&2
        return 1
    fi
    _cronium_json_string "$tool"
    tool_json=$_cronium_json
    _cronium_json_string "$action"
    printf '%s\n' "{\"tool\":$tool_json,\"action\":$_cronium_json,\"config\":$4}" >> "$file"
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

# cronium_output [TEXT]: make TEXT the run's output (with no argument it is read
# from stdin): the JSON value it spells, or TEXT itself as a string when it is
# not JSON, as Cronium does. It goes verbatim to output.txt and the host decides.
cronium_output() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local dir=${CRONIUM_RUN_DIR:-$_cronium_home}
    if (( $# )); then
        _cronium_write_atomic "$dir/output.txt" "$1" || return 1
    else
        _cronium_write_atomic "$dir/output.txt" || return 1
    fi
    # An output.json (written by hand before) would win over output.txt.
    rm -f -- "$dir/output.json"
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
    _cronium_store "$1" "${2-}" "\"value\":$_cronium_json"
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
    # journaled as an increment: the host adds BY to the Variable as it is then, so that runs
    # incrementing at once all count
    _cronium_store "$1" "$sum" "\"value\":$sum,\"by\":$b" increment || return 1
    printf '%s\n' "$sum"
}

# ------------------------------------------------- Cronium's runtime SDK names

# cronium_get_variable KEY: print the value and a newline (a string as is,
# anything else as JSON); a missing variable prints nothing and succeeds
# (runtime-helpers/bash/cronium.sh:147-158: jq -r '.data.value // empty').
cronium_get_variable() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_kf
    _cronium_check_key cronium_get_variable "${1-}" || return
    _cronium_key_file "$1" || return 1
    if [[ -f $_cronium_kf ]]; then
        cat -- "$_cronium_kf" || return 1
        printf '\n'
    fi
    return 0
}

# cronium_set_variable KEY VALUE: store VALUE as the JSON value it spells, or
# as a string when it is not JSON (runtime-helpers/bash/cronium.sh:161-174).
# The host decides which; the script reads VALUE back as it gave it.
cronium_set_variable() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_json _cronium_kf
    _cronium_check_key cronium_set_variable "${1-}" || return
    _cronium_json_string "${2-}"
    _cronium_store "$1" "${2-}" "\"text\":$_cronium_json"
}

# cronium_append_variable KEY VALUE [SEP]: a missing or empty variable becomes
# VALUE, anything else VALUE joined to it with SEP (runtime-helpers/bash/
# cronium.sh:356-368); a list gets VALUE as a new element. Journaled as an
# append, which the host applies to the variable as it is when the run ends.
cronium_append_variable() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_json _cronium_kf value=${2-} separator=${3-} current= joined text_json
    _cronium_check_key cronium_append_variable "${1-}" || return
    _cronium_key_file "$1" || return 1
    if [[ -f $_cronium_kf ]]; then
        current=$(cat -- "$_cronium_kf"; printf x) || return 1
        current=${current%x}
    fi
    if [[ -z $current || $current == null ]]; then
        joined=$value
    elif [[ $current =~ ^\[[[:space:]]*\]$ ]] || [[ $current == \[*\] ]]; then
        if _cronium_looks_json "$value"; then
            _cronium_json=$value
        else
            _cronium_json_string "$value"
        fi
        if [[ $current =~ ^\[[[:space:]]*\]$ ]]; then
            joined="[$_cronium_json]"
        else
            joined="${current%]},$_cronium_json]"
        fi
    else
        joined=$current$separator$value
    fi
    _cronium_json_string "$value"
    text_json=$_cronium_json
    _cronium_json_string "$separator"
    _cronium_store "$1" "$joined" "\"text\":$text_json,\"separator\":$_cronium_json" append
}

# cronium_event_field FIELD: print one field of the event and a newline (a jq
# path: name, server.name, tags[0]); nothing when it is missing or null
# (runtime-helpers/bash/cronium.sh:205-209). The host wrote event.d/.
cronium_event_field() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local field=${1-} _cronium_hexed file
    field=${field#.}
    if [[ -z $field ]]; then
        cronium_event
        return
    fi
    _cronium_hex "$field" || return 1
    file=${CRONIUM_RUN_DIR:-$_cronium_home}/event.d/$_cronium_hexed
    if [[ -f $file ]]; then
        cat -- "$file" || return 1
        printf '\n'
    elif [[ $field == executionId && -n ${CRONIUM_EXECUTION_ID-} ]]; then
        printf '%s\n' "$CRONIUM_EXECUTION_ID"
    fi
    return 0
}

# cronium_info: what these helpers are (never a secret).
cronium_info() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    printf 'Cronium Bash SDK v2.0.0 (airflow-provider-cronium, file protocol)\n'
    printf 'API URL: none (files in the run folder %s)\n' "${CRONIUM_RUN_DIR:-$_cronium_home}"
    printf 'Execution ID: %s\n' "${CRONIUM_EXECUTION_ID-}"
    printf 'Token: none\n'
}

# cronium_execute_tool_action TOOL ACTION CONFIG_JSON: ask for a tool action;
# the host carries it out after the run. Prints nothing: the script cannot see
# the result (Cronium prints the action's data, runtime-helpers/bash/cronium.sh:211-236).
cronium_execute_tool_action() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local config=${3-}
    config=${config//$'\r'/ }
    config=${config//$'\n'/ }
    if [[ -z ${config//[[:space:]]/} ]]; then
        config='{}'
    elif [[ ! $config =~ ^[[:space:]]*\{.*\}[[:space:]]*$ ]]; then
        printf 'Error: Invalid JSON configuration for tool action\n' >&2
        return 1
    fi
    if [[ -z ${1-} || -z ${2-} ]]; then
        printf 'cronium_execute_tool_action: a tool and an action are required\n' >&2
        return 2
    fi
    _cronium_request cronium_execute_tool_action "$1" "$2" "$config"
}

# cronium_send_email TO SUBJECT BODY [--cc LIST] [--bcc LIST] [--html]: TO, CC
# and BCC are comma-separated addresses (runtime-helpers/bash/cronium.sh:238-271).
cronium_send_email() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_json _cronium_list config
    _cronium_string_list "${1-}"
    config="{\"to\":$_cronium_list"
    _cronium_json_string "${2-}"
    config+=",\"subject\":$_cronium_json"
    _cronium_json_string "${3-}"
    config+=",\"body\":$_cronium_json"
    if (( $# > 3 )); then shift 3; else shift $#; fi
    while (( $# )); do
        case $1 in
            --cc | --bcc)
                _cronium_string_list "${2-}"
                config+=",\"${1#--}\":$_cronium_list"
                if (( $# > 1 )); then shift; fi
                ;;
            --html) config+=',"html":true' ;;
        esac
        shift
    done
    _cronium_request cronium_send_email email send_message "$config}"
}

# cronium_send_slack_message CHANNEL TEXT [--username NAME] [--icon-emoji EMOJI]
# [--icon-url URL] (runtime-helpers/bash/cronium.sh:273-304).
cronium_send_slack_message() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_json config name
    _cronium_json_string "${1-}"
    config="{\"channel\":$_cronium_json"
    _cronium_json_string "${2-}"
    config+=",\"text\":$_cronium_json"
    if (( $# > 2 )); then shift 2; else shift $#; fi
    while (( $# )); do
        case $1 in
            --username | --icon-emoji | --icon-url)
                name=${1#--}
                _cronium_json_string "${2-}"
                config+=",\"${name//-/_}\":$_cronium_json"
                if (( $# > 1 )); then shift; fi
                ;;
        esac
        shift
    done
    _cronium_request cronium_send_slack_message slack send_message "$config}"
}

# cronium_send_discord_message CHANNEL_ID CONTENT [--embed JSON]
# (runtime-helpers/bash/cronium.sh:306-324).
cronium_send_discord_message() {
    [[ -z $_cronium_bash44 ]] || { local -; set +x; }
    local _cronium_json config embed
    _cronium_json_string "${1-}"
    config="{\"channelId\":$_cronium_json"
    _cronium_json_string "${2-}"
    config+=",\"content\":$_cronium_json"
    if [[ ${3-} == --embed ]]; then
        embed=${4-}
        embed=${embed//$'\r'/ }
        embed=${embed//$'\n'/ }
        if [[ ! $embed =~ ^[[:space:]]*\{.*\}[[:space:]]*$ ]]; then
            printf 'cronium_send_discord_message: --embed needs a JSON object\n' >&2
            return 1
        fi
        config+=",\"embeds\":[$embed]"
    fi
    _cronium_request cronium_send_discord_message discord send_message "$config}"
}
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

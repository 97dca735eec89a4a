# shellcheck shell=bash
# An SMTP dialogue that the test script drives one command at a time, for what swaks cannot
# do: go on after a refused greeting, pause between two commands (to reload or kill the
# milter while the session is open), connect from another address of 127.0.0.0/8 (the
# milter's client.ip), send raw bytes such as a bare CR. Source it after tools/lib.sh.
#
#   dialogue_open [SOURCE_IP]  connects to 127.0.0.1:SMTP_PORT from SOURCE_IP (default
#                              127.0.0.1) and reads the greeting; SESSION starts afresh
#   say LINE                   sends LINE with CRLF and reads the reply (last line in REPLY);
#                              fails once the server has closed the connection
#   say_data TEXT              DATA, then send_message TEXT if the reply is 354
#   send_message TEXT          TEXT (LF line ends become CRLF, leading dots are doubled)
#                              and the final dot; reads the reply
#   dialogue_close             ends the dialogue (no QUIT: send it with say)
#   check_line NAME LINE       check_session for exactly LINE (of a dialogue or of swaks)
#   dialogue_suite NAME        rig_init NAME, WORK=RIG_DIR, and an EXIT trap that closes the
#                              dialogue, stops the rig, shows its logs if anything failed
#                              and removes it (kept with KEEP_E2E_DIR=1)
#
# SESSION gets the transcript in swaks's format (" -> " command, "<-  " reply, "<** " 4xx or
# 5xx reply, "*** " the connection closed), so check_session works on it. One dialogue at a
# time; dialogue_close is safe to call from an EXIT trap.

DIALOGUE_PID="" DIALOGUE_IN="" DIALOGUE_OUT="" REPLY=""
DIALOGUE_RELAY=$(dirname "${BASH_SOURCE[0]}")/tcp-relay.py

# Reads one reply, all its lines, into SESSION; the last line into REPLY.
dialogue_read() {
	local line mark rc=0
	[ -n "$DIALOGUE_IN" ] || return 1
	while :; do
		IFS= read -r -t 30 line <&"$DIALOGUE_IN" || { rc=$?; break; }
		line=${line%$'\r'}
		mark='<- '
		case $line in [45]*) mark='<**' ;; esac
		SESSION+="$mark $line"$'\n'
		[ "${line:3:1}" = - ] && continue
		REPLY=$line
		return 0
	done
	if [ $rc -gt 128 ]; then
		SESSION+="*** Timeout waiting for a reply."$'\n'
	else
		SESSION+="*** Remote host closed connection unexpectedly."$'\n'
	fi
	REPLY=""
	dialogue_close
	return 1
}

# shellcheck disable=SC2120  # SOURCE_IP is optional
dialogue_open() {
	dialogue_close
	SESSION="" REPLY=""
	local fifo=$RIG_DIR/dialogue
	rm -f "$fifo.in" "$fifo.out"
	mkfifo "$fifo.in" "$fifo.out"
	python3 "$DIALOGUE_RELAY" 127.0.0.1 "$SMTP_PORT" "${1:-127.0.0.1}" \
		< "$fifo.in" > "$fifo.out" 2>> "$RIG_DIR/dialogue.err" &
	DIALOGUE_PID=$!
	exec {DIALOGUE_OUT}> "$fifo.in" {DIALOGUE_IN}< "$fifo.out"
	dialogue_read
}

say() {
	[ -n "$DIALOGUE_OUT" ] || return 1
	SESSION+=" -> $1"$'\n'
	printf '%s\r\n' "$1" 1>&"$DIALOGUE_OUT" 2>/dev/null || true
	dialogue_read
}

say_data() {
	say DATA || return 1
	[ "${REPLY:0:3}" = 354 ] || return 1
	send_message "$1"
}

send_message() {
	SESSION+=" -> [message of $(printf '%s\n' "$1" | wc -c) bytes]"$'\n'
	{ printf '%s\n' "$1" | sed -e 's/^\./../' -e 's/$/\r/'; printf '.\r\n'; } \
		1>&"$DIALOGUE_OUT" 2>/dev/null || true
	dialogue_read
}

dialogue_close() {
	if [ -n "$DIALOGUE_OUT" ]; then exec {DIALOGUE_OUT}>&-; fi
	if [ -n "$DIALOGUE_IN" ]; then exec {DIALOGUE_IN}<&-; fi
	DIALOGUE_OUT="" DIALOGUE_IN=""
	if [ -n "$DIALOGUE_PID" ]; then
		kill "$DIALOGUE_PID" 2>/dev/null || true
		wait "$DIALOGUE_PID" 2>/dev/null || true
		DIALOGUE_PID=""
	fi
}

check_line() { check_session "$1" "$(ere_quote "$2")"; }

dialogue_suite_cleanup() {
	local rc=$?
	dialogue_close
	rig_stop
	if [ $rc -ne 0 ] || [ "$FAILED" -ne 0 ]; then rig_show_logs; fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}

dialogue_suite() {
	rig_init "$1"
	# shellcheck disable=SC2034  # the suites' own name for it
	WORK=$RIG_DIR
	trap dialogue_suite_cleanup EXIT
	trap 'exit 130' INT TERM
}

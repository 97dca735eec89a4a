#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: the unknown stage (field `command`) through a private Postfix and a real
# Sendmail, and the body conditions (`body matches`, `body contains`) through Postfix. Each
# check names the exact line the SMTP client gets: the reply to an unknown command, with
# hostile ones (very long, NUL and 8-bit bytes, '%'), and the reply after the final dot for
# a body match across the chunk boundary at byte 65,535, past body-scan-limit, in 8-bit
# and at a CRLF line end.
#
#   tests/e2e/unknown-body.sh PATH/TO/policy-milter
#
# Needs root, postfix and swaks (and for the Sendmail part what tests/e2e/lib/sendmail.sh
# needs, else that part is skipped with a note); exits 77 (ctest: skipped) without Postfix.
# Everything it starts is stopped on exit; the work directory is removed unless
# KEEP_E2E_DIR=1.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
# shellcheck source=tests/e2e/lib/sendmail.sh
. "$(dirname "$0")/lib/sendmail.sh"
# shellcheck source=tests/e2e/lib/dialogue.sh
. "$(dirname "$0")/lib/dialogue.sh"
rig_require

rig_init policy-milter-unknown-body
WORK=$RIG_DIR

cleanup() {
	local rc=$?
	dialogue_close
	sendmail_stop
	rig_stop
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then rig_show_logs; sendmail_show_logs || true; fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$WORK/rules.conf" <<'EOF'
rule "xyzzy" at unknown when command matches /^XYZZY/i
    reject 502 5.5.2 "Command {command} not recognized"
rule "plugh" at unknown when command matches /^plugh\b/i
    tempfail 421 4.7.0 "Go away"
rule "percent" at unknown when command matches /^PCT/
    reject 500 5.5.1 "{command}"
rule "eight" at unknown when command matches /^CAF/
    reject 500 5.5.1 "{command}"
rule "probe" at unknown when command matches /^(VRFY|EXPN|HELP|NOOP|TURN|ETRN|RSET|GET)\b/i
    reject 502 5.5.1 "milter saw {command}"
rule "vip" at mail when sender == "vip@example.net" accept
rule "lottery" at message when body contains "you are a lottery winner"
    reject 554 5.7.1 "Message content rejected"
rule "pills" at message when body matches /^cheap p[i1]lls$/i
    reject 550 5.7.1 "No pills"
rule "umlaut" at message when body contains "Grüße vom Spam"
    reject 554 5.7.1 "No greetings"
EOF

# say_raw FORMAT: printf FORMAT (NUL, 8-bit bytes) as one command line with CRLF.
say_raw() {
	SESSION+=" -> [raw] $1"$'\n'
	# shellcheck disable=SC2059  # the format is the point
	printf "$1\r\n" 1>&"$DIALOGUE_OUT" 2>/dev/null || true
	dialogue_read
}

CLOSED='*** Remote host closed connection unexpectedly.'

# reply_to NAME LINE: REPLY (the last reply read) is exactly LINE (swaks-style mark ignored).
reply_to() {
	if [ "$REPLY" = "${2#<** }" ] || [ "$REPLY" = "${2#<-  }" ]; then
		pass "$1: $2"
	else
		fail "$1: expected \"$2\", got \"$REPLY\""
	fi
}

# unknown_checks MTA: the same unknown commands through either MTA; the replies expected
# are in the associative array EXPECT (by case), as each MTA relays them.
declare -A EXPECT
unknown_checks() {
	local mta=$1 verb
	dialogue_open
	say "EHLO client.example"
	say "XYZZY foo bar"; reply_to "$mta: unknown, reject 502" "${EXPECT[args]}"
	say "FROBNICATE"; reply_to "$mta: unknown, no rule: the MTA's own reply" "${EXPECT[norule]}"
	say "PCT 100% %s %n %%"; reply_to "$mta: unknown, '%' in the command and in the reply" "${EXPECT[percent]}"
	say_raw 'CAF\303\251 x'; reply_to "$mta: unknown, UTF-8 bytes: '?' in the reply" "${EXPECT[utf8]}"
	say_raw 'XYZZY \377'; reply_to "$mta: unknown, a byte that is not UTF-8" "${EXPECT[notutf8]}"
	say_raw 'XYZZY a\000b'; reply_to "$mta: unknown, NUL: the command ends there" "${EXPECT[nul]}"
	say "XYZZY $(printf 'A%.0s' {1..1500})"
	if [ "${REPLY:0:24}" = "${EXPECT[long]}" ] && [ ${#REPLY} -le 510 ]; then
		pass "$mta: unknown, a 1,506-byte command: ${REPLY:0:40}... (${#REPLY} bytes)"
	else
		fail "$mta: unknown, a 1,506-byte command: got \"${REPLY:0:60}...\" (${#REPLY} bytes)"
	fi
	for verb in VRFY EXPN HELP NOOP TURN ETRN RSET; do
		say "$verb x"
		reply_to "$mta: $verb" "${EXPECT[$verb]}"
	done
	say "MAIL FROM:<alice@example.net>"
	say "XYZZY inside a transaction"
	reply_to "$mta: unknown inside a transaction" "${EXPECT[transaction]}"
	# Review finding: an accept at mail (rcpt, data) ends the milter's part of the message,
	# and both MTAs stop passing it that transaction's unknown commands (Postfix until
	# RSET, Sendmail until the next MAIL).
	say "RSET"
	say "MAIL FROM:<vip@example.net>"
	say "XYZZY after an accept"
	reply_to "$mta: unknown after an accept at mail: the MTA's own reply" "${EXPECT[accepted]}"
	say "RSET"
	say "XYZZY after RSET"
	reply_to "$mta: unknown after an accept and RSET" "${EXPECT[reset]}"
	say "MAIL FROM:<alice@example.net>"
	say "RCPT TO:<bob@example.org>"
	say "plugh NOW" || true
	reply_to "$mta: unknown, tempfail 421" '<** 421 4.7.0 Go away'
	say NOOP || true
	check_line "$mta: unknown, 421: then closed" "$CLOSED"
	dialogue_close
}

# --- Postfix -------------------------------------------------------------------------------

free_ports SMTP_PORT MILTER_PORT SM_PORT
milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
	--body-scan-limit 200K || { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "policy-milter and Postfix running"

echo "# Postfix: unknown commands"
# Postfix hands the milter the command's first word only, and answers its own 500 to a
# command it does not know; its smtputf8 check refuses a line that is not UTF-8 first.
EXPECT=(
	[args]='<** 502 5.5.2 Command XYZZY not recognized'
	[norule]='<** 500 5.5.2 Error: command not recognized'
	[percent]='<** 500 5.5.1 PCT'
	[utf8]='<** 500 5.5.1 CAF??'
	[notutf8]='<** 500 5.5.2 Error: bad UTF-8 syntax'
	[nul]='<** 502 5.5.2 Command XYZZY not recognized'
	[long]='502 5.5.2 Command XYZZY '
	[transaction]='<** 502 5.5.2 Command XYZZY not recognized'
	[accepted]='<** 500 5.5.2 Error: command not recognized'
	[reset]='<** 502 5.5.2 Command XYZZY not recognized'
	# Postfix answers VRFY, NOOP, ETRN and RSET itself; it does not know EXPN, HELP and
	# TURN, so they reach the milter as unknown commands.
	[VRFY]='<-  252 2.0.0 x'
	[EXPN]='<** 502 5.5.1 milter saw EXPN'
	[HELP]='<** 502 5.5.1 milter saw HELP'
	[NOOP]='<-  250 2.0.0 Ok'
	[TURN]='<** 502 5.5.1 milter saw TURN'
	[ETRN]='<** 459 <x>: service unavailable'
	[RSET]='<** 501 5.5.4 Syntax: RSET'
)
unknown_checks Postfix
milter_log_has 'NOQUEUE: client=unknown\[127\.0\.0\.1\] stage=unknown rule=xyzzy action=reject reply="502 5\.5\.2 Command XYZZY not recognized" helo=<client\.example> from=- to=-' \
	&& pass "Postfix: the decision line of an unknown command" || fail "Postfix: no decision line for XYZZY"
grep -qF 'NOQUEUE: milter-reject: UNKNOWN from unknown[127.0.0.1]: 502 5.5.2 Command XYZZY not recognized; proto=ESMTP helo=<client.example>' "$PF_MAILLOG" \
	&& pass "Postfix logs: NOQUEUE: milter-reject: UNKNOWN from ...: 502 5.5.2 ..." \
	|| fail "Postfix logged no milter-reject: UNKNOWN line"

# get_check MTA LINE: an HTTP request line (a rule matches it, were it passed on).
get_check() {
	dialogue_open
	say "EHLO client.example"
	say "GET / HTTP/1.0" || true
	reply_to "$1: GET" "$2"
	dialogue_close
}
# Commands Postfix refuses itself (smtpd_forbidden_commands: CONNECT, GET, POST and any
# command that does not start with a letter) never reach the milter.
get_check Postfix '<-  221 2.7.0 Error: I can break rules, too. Goodbye.'

echo "# Postfix: body conditions"
QUEUED_ERE='<-  250 2\.0\.0 Ok: queued as [0-9A-Za-z]+'
# 65,535 bytes of filler lines, so that the text straddles the end of Postfix's first body
# chunk (its milter client sends the body in pieces of 65,535 bytes).
filler() { local n=$1 line i; line=$(printf 'x%.0s' {1..70}); for ((i = 0; i < n; i++)); do echo "$line"; done; }
{ filler 910; echo "xxxxxxx you are a lottery winner"; } > "$WORK/boundary.txt"
{ filler 3000; echo "you are a lottery winner"; } > "$WORK/beyond.txt"
{ filler 2000; echo "you are a lottery winner"; } > "$WORK/within.txt"
expect_line "body contains across the first chunk boundary" '<** 554 5.7.1 Message content rejected' \
	--from alice@example.net --to bob@example.org --body "$WORK/boundary.txt"
expect_line "body matches at a CRLF line end" '<** 550 5.7.1 No pills' \
	--from alice@example.net --to bob@example.org --body $'Hello\nCheap P1lls\nbye'
expect_queued "body matches: not at a line start" \
	--from alice@example.net --to bob@example.org --body $'Hello\nvery cheap pills\nbye'
expect_line "body contains, 8-bit text" '<** 554 5.7.1 No greetings' \
	--from alice@example.net --to bob@example.org --body $'Hallo,\nGrüße vom Spam!\n'
expect_queued "body contains beyond body-scan-limit (200K): not scanned" \
	--from alice@example.net --to bob@example.org --body "$WORK/beyond.txt"
expect_line "body contains within body-scan-limit" '<** 554 5.7.1 Message content rejected' \
	--from alice@example.net --to bob@example.org --body "$WORK/within.txt"
expect_queued "body: no MIME decoding (base64 of the text)" \
	--from alice@example.net --to bob@example.org --body "$(printf 'you are a lottery winner' | base64)"

# --- Sendmail ------------------------------------------------------------------------------

missing=$(sendmail_missing)
if [ -n "$missing" ]; then
	echo "note: Sendmail part skipped: $missing"
else
	echo "# Sendmail: unknown commands"
	postfix_stop
	SMTP_PORT=$SM_PORT
	sendmail_start unknown "$SM_PORT" "inet:$MILTER_PORT@127.0.0.1" \
		|| { fail "Sendmail did not start"; exit 1; }
	# Sendmail hands the milter the whole line, 8-bit bytes included, and answers its own
	# 500 5.5.1 to a command it does not know.
	EXPECT=(
		[args]='<** 502 5.5.2 Command XYZZY foo bar not recognized'
		[norule]='<** 500 5.5.1 Command unrecognized: "FROBNICATE"'
		[percent]='<** 500 5.5.1 PCT 100% %s %n %%'
		[utf8]='<** 500 5.5.1 CAF?? x'
		[notutf8]='<** 502 5.5.2 Command XYZZY ? not recognized'
		[nul]='<** 502 5.5.2 Command XYZZY a not recognized'
		[long]='502 5.5.2 Command XYZZY '
		[transaction]='<** 502 5.5.2 Command XYZZY inside a transaction not recognized'
		[accepted]='<** 500 5.5.1 Command unrecognized: "XYZZY after an accept"'
		# Sendmail passes them on again only from the next MAIL on.
		[reset]='<** 500 5.5.1 Command unrecognized: "XYZZY after RSET"'
		# Sendmail answers all of these itself: none reaches the milter.
		[VRFY]='<-  250 2.1.5 <x@sendmail-e2e.localdomain>'
		[EXPN]='<-  250 2.1.5 <x@sendmail-e2e.localdomain>'
		[HELP]='<** 502 5.3.0 Sendmail 8.17.1.9 -- HELP not implemented'
		[NOOP]='<-  250 2.0.0 OK'
		[TURN]='<** 502 5.5.1 Command not implemented: "TURN x"'
		[ETRN]='<-  250 2.0.0 Queuing for node x started'
		[RSET]='<-  250 2.0.0 Reset state'
	)
	unknown_checks Sendmail
	get_check Sendmail '<** 502 5.5.1 milter saw GET / HTTP/1.0'  # an unknown command as any other
	QUEUED_ERE='<-  250 2\.0\.0 [0-9A-Za-z]+ Message accepted for delivery'
	expect_line "Sendmail: body contains after the final dot" '<** 554 5.7.1 Message content rejected' \
		--from alice@example.net --to bob@example.org --body "$WORK/boundary.txt"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

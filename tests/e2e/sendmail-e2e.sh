#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end test with a real Sendmail 8.17 (Debian's packages, unpacked by
# packaging/install-deps, run in private mount and UTS namespaces on 127.0.0.1): Sendmail
# relays policy-milter's replies to swaks at every stage, first with the milter on an inet
# socket, then on a unix socket.
#
#   tests/e2e/sendmail-e2e.sh PATH/TO/policy-milter
#
# Needs root, swaks, m4, unshare and the unpacked Sendmail (packaging/install-deps). Exits
# 77 (ctest: skipped) when they are missing. Everything it starts is stopped on exit; the
# work directory is removed unless KEEP_E2E_DIR=1.
#
# How Sendmail differs from Postfix (see README, "Running it beside Postfix or Sendmail"):
# a 5xx at MAIL or RCPT gets the address in front of the text ("<addr>... text"), a
# connect refusal loses the milter's code and text, and the queue ID macro {i} is sent
# from MAIL on, so even a RCPT decision is logged with it. Like Postfix, it answers a
# HELO refusal at MAIL.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tests/e2e/lib/sendmail.sh
. "$(dirname "$0")/lib/sendmail.sh"
# shellcheck source=tests/e2e/lib/dialogue.sh
. "$(dirname "$0")/lib/dialogue.sh"
missing=$(sendmail_missing)
[ -z "$missing" ] || skip "$missing"

work_init policy-milter-sendmail-e2e
WORK=$RIG_DIR

cleanup() {
	local rc=$?
	dialogue_close
	sendmail_stop
	milter_stop 20 || true
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then
		echo "--- policy-milter log ($MILTER_LOG)"; tail -n 60 "$MILTER_LOG" 2>/dev/null || true
		sendmail_show_logs
	fi
	rig_remove "${KEEP_E2E_DIR:-0}"
	[ -z "$SOCKET_DIR" ] || rm -rf "$SOCKET_DIR"
}
SOCKET_DIR=""
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- checks -----------------------------------------------------------------------------

H=(--helo client.example)

# expect_answer NAME COMMAND EXPECTED_LINE SWAKS_ARG...: one session into SESSION, in which
# the answer to the first COMMAND (MAIL, RCPT, DATA, or "." for the final dot of the
# message) is exactly EXPECTED_LINE, as swaks shows it.
expect_answer() {
	local name=$1 command=$2 expected=$3 got; shift 3
	SESSION=$(smtp_session "$@")
	got=$(awk -v c=" -> $command" 'found { print; exit }
		$0 == c || index($0, c " ") == 1 { found = 1 }' <<<"$SESSION")
	if [ "$got" = "$expected" ]; then
		pass "$name: $command -> $got"
	else
		fail "$name: the answer to $command is not \"$expected\", the session was:"
		smtp_commands <<<"$SESSION" | sed 's/^/     /'
	fi
}

# --- the rules ----------------------------------------------------------------------------

# Clients connect from other addresses of 127.0.0.0/8 to meet the connect rules.
cat > "$WORK/rules.conf" <<'EOF'
list no_such_user = file "invalid-recipients.txt"
list full_boxes   = [ "full@example.org" ]

rule "blocked-network" at connect
    when client.ip in [ 127.0.0.2 ]
    reject 554 5.7.1 "Access denied for {client.ip}"

rule "no-service" at connect
    when client.ip in [ 127.0.0.4 ]
    reject 521 5.7.1 "No mail service for {client.ip}"

rule "overloaded-network" at connect
    when client.ip in [ 127.0.0.3 ]
    tempfail 421 4.7.0 "Too many connections from {client.ip}"

rule "bogus-helo" at helo
    when helo == "bogus.example"
    reject 550 5.7.1 "Bogus HELO {helo}"

rule "spoofed-sender" at mail
    when sender.domain == "forged.example"
    reject 553 5.7.1 "Sender address rejected: not logged in"

rule "unknown-user" at rcpt
    when recipient in no_such_user
    reject 550 5.1.1 "Recipient address rejected: User unknown"

rule "mailbox-full" at rcpt
    when recipient in full_boxes
    tempfail 452 4.2.2 "Mailbox full, try again later"

rule "overloaded" at rcpt
    when recipient == "busy@example.org"
    tempfail 421 4.7.0 "Too busy, closing the connection"

rule "no-bulk" at data
    when sender == "bulk@example.net"
    reject 554 5.7.1 "Bulk mail is not accepted here"

rule "lottery" at message
    when header["Subject"] matches /lottery winner/i
    reject 554 5.7.1 "Message content rejected"
EOF
printf '# one address a line\nnobody@example.org\n' > "$WORK/invalid-recipients.txt"

# start_milter_and_sendmail LISTEN KIND PORT SPEC: policy-milter with rules.conf listening on
# LISTEN (a port or unix:PATH), then a private Sendmail of KIND (see sendmail_start) on PORT
# whose milter socket is SPEC. Either failing to start ends the script.
start_milter_and_sendmail() {
	local listen=$1 kind=$2 port=$3 spec=$4 mode=""
	milter_start "$MILTER_BIN" "$WORK/rules.conf" "$listen" --log-level debug \
		|| { fail "policy-milter did not listen on $spec"; exit 1; }
	# A unix socket's mode and owner are worth seeing in the log of the run.
	[[ $spec != unix:* ]] || mode=", $(stat -c 'mode %a %U:%G' "${spec#unix:}")"
	pass "policy-milter listening on $spec$mode (pid $MILTER_PID)"
	sendmail_start "$kind" "$port" "$spec" \
		|| { fail "Sendmail did not start with S=$spec"; exit 1; }
	pass "Sendmail listening on 127.0.0.1:$SMTP_PORT with S=$spec (pid $SM_PID)"
}

# === 1. the milter on an inet socket =========================================================

free_ports SMTP_PORT MILTER_PORT
start_milter_and_sendmail "$MILTER_PORT" inet "$SMTP_PORT" "inet:$MILTER_PORT@127.0.0.1"

# --- replies as the client sees them --------------------------------------------------------

expect_answer "rcpt reject" RCPT \
	"<** 550 5.1.1 <nobody@example.org>... Recipient address rejected: User unknown" \
	"${H[@]}" --from alice@example.net --to nobody@example.org --quit-after RCPT
# Only a 5xx gets the address in front.
expect_answer "rcpt tempfail" RCPT \
	"<** 452 4.2.2 Mailbox full, try again later" \
	"${H[@]}" --from alice@example.net --to full@example.org --quit-after RCPT
expect_answer "mail reject" MAIL \
	"<** 553 5.7.1 <someone@forged.example>... Sender address rejected: not logged in" \
	"${H[@]}" --from someone@forged.example --to bob@example.org --quit-after RCPT
expect_answer "data reject" DATA \
	"<** 554 5.7.1 Bulk mail is not accepted here" \
	"${H[@]}" --from bulk@example.net --to bob@example.org
expect_answer "message reject" . \
	"<** 554 5.7.1 Message content rejected" \
	"${H[@]}" --from alice@example.net --to bob@example.org --header "Subject: You are a Lottery Winner"
# Sendmail answers EHLO with 250 (and no extensions) and gives the milter's reply at MAIL.
expect_answer "helo reject" MAIL \
	"<** 550 5.7.1 Bogus HELO bogus.example" \
	--helo bogus.example --from alice@example.net --to bob@example.org --quit-after RCPT
check_session "helo reject: EHLO" "<-  250 ENHANCEDSTATUSCODES"
expect_answer "rcpt 421" RCPT \
	"<** 421 4.7.0 Too busy, closing the connection" \
	"${H[@]}" --from alice@example.net --to busy@example.org
check_line "rcpt 421: then closed" "*** Remote host closed connection unexpectedly."
expect_reply "accepted message" "$QUEUED_ERE" \
	"${H[@]}" --from alice@example.net --to bob@example.org --header "Subject: hello"

# --- what the logs say ------------------------------------------------------------------------

# Sendmail sends {i} from MAIL on: a RCPT decision carries the queue ID, not NOQUEUE.
milter_log_has '[0-9A-Za-z]{14}: client=sendmail-e2e\.localdomain\[127\.0\.0\.1\] stage=rcpt rule=unknown-user action=reject reply="550 5\.1\.1 Recipient address rejected: User unknown" helo=<[^ ]+> from=<alice@example\.net> to=<nobody@example\.org>' \
	&& pass "log: rcpt reject line with the queue ID and {client_name}" \
	|| fail "log: rcpt reject line missing"
milter_log_has '[0-9A-Za-z]{14}: client=[^ ]+ stage=message rule=lottery action=reject reply="554 5\.7\.1 Message content rejected"' \
	&& pass "log: message reject line with the queue ID" || fail "log: message reject line missing"
wait_for 5 sendmail_log_has 'Milter: to=<nobody@example\.org>, reject=550 5\.1\.1 Recipient address rejected: User unknown' \
	&& pass "Sendmail log: Milter: to=<nobody@example.org>, reject=550 5.1.1 ..." \
	|| fail "Sendmail log: no Milter reject line"

# --- refusals at connect: SMTP dialogues, since swaks gives up after a refused greeting ----

# A 5xx: Sendmail keeps neither the milter's code nor its text. The greeting is its own
# 554, EHLO is answered, then it refuses every transaction command until QUIT.
dialogue_open 127.0.0.2 || true
say "EHLO client.example" && say "MAIL FROM:<alice@example.net>" && say "RCPT TO:<bob@example.org>" \
	&& say DATA && say QUIT || true
dialogue_close
check_line "connect reject: greeting" "<** 554 sendmail-e2e.localdomain ESMTP not accepting messages"
check_line "connect reject: EHLO answered, ENHANCEDSTATUSCODES only" "<-  250 ENHANCEDSTATUSCODES"
[ "$(grep -cxF '<** 550 5.0.0 Command rejected' <<<"$SESSION")" = 3 ] \
	&& pass "connect reject: MAIL, RCPT and DATA each answered <** 550 5.0.0 Command rejected" \
	|| fail "connect reject: not MAIL, RCPT and DATA refused, the session was:"$'\n'"$SESSION"
check_line "connect reject: QUIT" "<-  221 2.0.0 sendmail-e2e.localdomain closing connection"
milter_log_has 'NOQUEUE: client=[^ ]+ stage=connect rule=blocked-network action=reject reply="554 5\.7\.1 Access denied for 127\.0\.0\.2"' \
	&& pass "log: connect reject line" || fail "log: connect reject line missing"
wait_for 5 sendmail_log_has 'Milter: connect: host=\[?127\.0\.0\.2\]?, addr=127\.0\.0\.2, rejecting commands' \
	&& pass "Sendmail log: Milter: connect: ... rejecting commands" \
	|| fail "Sendmail log: no connect reject line"

# A 521 goes the same way: Sendmail's 554 greeting, then it waits for QUIT.
dialogue_open 127.0.0.4 || true
say "EHLO client.example" && say "MAIL FROM:<alice@example.net>" && say QUIT || true
dialogue_close
check_line "connect reject 521: greeting" "<** 554 sendmail-e2e.localdomain ESMTP not accepting messages"
check_line "connect reject 521: MAIL" "<** 550 5.0.0 Command rejected"
check_line "connect reject 521: QUIT" "<-  221 2.0.0 sendmail-e2e.localdomain closing connection"

# A 421: the greeting is Sendmail's own 421 4.7.0 (the milter's text is lost), then it
# closes the connection.
dialogue_open 127.0.0.3 || true
say "EHLO client.example" || true
dialogue_close
check_line "connect 421: greeting" "<** 421 4.7.0 sendmail-e2e.localdomain closing connection"
check_line "connect 421: then closed" "*** Remote host closed connection unexpectedly."

sendmail_stop
pid=$MILTER_PID rc=0
milter_stop 20 || rc=$?
[ $rc = 0 ] && pass "inet milter stopped on SIGTERM, exit 0" || fail "inet milter (pid $pid): exit $rc"

# === 2. the milter on a unix socket ============================================================

# Sendmail will not use a socket with a world-writable directory on its path, such as /tmp
# (where WORK is): it does not even start.
if sendmail_start unsafe "$(free_port)" "unix:$WORK/milter.sock" 2>/dev/null; then
	fail "Sendmail started with its milter socket under /tmp"
else
	wait_for 5 sendmail_log_has 'local socket name .*/milter\.sock unsafe: World writable directory' \
		&& pass "Sendmail refuses a milter socket under /tmp: \"$(grep -o 'local socket name .*' "$SM_DIR/maillog" | head -n1)\"" \
		|| fail "Sendmail did not start, but did not log why"
fi
sendmail_stop

# So the socket goes in a directory of its own under /run, as it would in production
# (/run/policy-milter). Sendmail's daemon and SMTP children run as root (no RunAsUser,
# as with Debian's sendmail), so the socket's mode and owner do not matter here.
MILTER_LOG=$WORK/milter-unix.log
SOCKET_DIR=$(mktemp -d /run/policy-milter-sendmail-e2e.XXXXXX)
chmod 755 "$SOCKET_DIR"
SOCKET=$SOCKET_DIR/milter.sock
start_milter_and_sendmail "unix:$SOCKET" unix "$(free_port)" "unix:$SOCKET"

expect_answer "unix socket: rcpt reject" RCPT \
	"<** 550 5.1.1 <nobody@example.org>... Recipient address rejected: User unknown" \
	"${H[@]}" --from alice@example.net --to nobody@example.org --quit-after RCPT
expect_reply "unix socket: accepted message" "$QUEUED_ERE" \
	"${H[@]}" --from alice@example.net --to bob@example.org
milter_log_has ': client=sendmail-e2e\.localdomain\[127\.0\.0\.1\] stage=rcpt rule=unknown-user action=reject reply="550 5\.1\.1 Recipient address rejected: User unknown"' \
	&& pass "unix socket: log: rcpt reject line" || fail "unix socket: log: rcpt reject line missing"

sendmail_stop
pid=$MILTER_PID rc=0
milter_stop 20 || rc=$?
[ $rc = 0 ] && pass "unix milter stopped on SIGTERM, exit 0" || fail "unix milter (pid $pid): exit $rc"

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: limits, through a private Postfix and policy-milter with the built-in
# (in-memory) store. Each kind of limit answers at its own stage, with the exact reply line
# the SMTP client sees and where in the dialogue it comes:
#   - recipients per sender at RCPT: 452 4.5.3, the recipients before it accepted;
#   - full mailboxes from list files at RCPT: 452 4.2.2 (a rule) and 552 5.2.2 (a limit
#     keyed on the recipient);
#   - message size: 552 5.3.4 at MAIL FROM from the declared SIZE= (mail.size), and after
#     the final dot from the received size (message.size);
#   - a sender's hourly quota at MAIL FROM: 452 4.7.1 as configured, and a bytes quota
#     with the default reply 451 4.7.1;
#   - a client's connection rate at connect: 421 (Postfix writes that reply itself: the
#     limit's own "421 4.7.0" shows in the logs), and at helo: 421 4.7.0 at EHLO;
#   - what must not count: refused recipients, refused messages, aborted transactions (RSET,
#     QUIT, a connection dropped in the middle of DATA). After them the limits still admit
#     exactly what they would have admitted without them.
#
#   tests/e2e/postfix-limits.sh PATH/TO/policy-milter
#
# Needs root, postfix and swaks; exits 77 (ctest: skipped) without them. Everything it starts
# is stopped on exit; the work directory is removed unless KEEP_E2E_DIR=1.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
# shellcheck source=tests/e2e/lib/dialogue.sh
. "$(dirname "$0")/lib/dialogue.sh"
rig_require

dialogue_suite policy-milter-limits

# --- the rules: each limit scoped to the senders, recipients or clients of its own case, so
# that the cases do not count into each other ---------------------------------------------------

printf '%s\n' "# over quota for now" "full@sink.test" > "$WORK/full-mailboxes.txt"
printf '%s\n' "# take 2 messages a day" "small@sink.test" > "$WORK/small-mailboxes.txt"

cat > "$WORK/rules.conf" <<'EOF'
list full_boxes  = file "full-mailboxes.txt"
list small_boxes = file "small-mailboxes.txt"

# connect: connections per client address (the test's clients are 127.0.0.8 to 127.0.0.15)
limit "client-rate" at connect
    key client.ip
    when client.ip in [ 127.0.0.8/29 ]
    max 3 per 1m
    tempfail 421 4.7.0 "Too many connections from {client.ip}, try again later"

# helo: the same count a stage later, where Postfix relays the milter's 421 as it is
limit "client-rate-helo" at helo
    key client.ip
    when client.ip == 127.0.0.16
    max 2 per 1m
    tempfail 421 4.7.0 "Too many connections from {client.ip}, try again later"

# mail: messages per sender, with the admin's reply; declared bytes per sender, with the
# stage's default reply. Before the size rule, so a MAIL that rule refuses has staged a
# count that must not be kept.
limit "sender-hourly" at mail
    key sender
    when sender.domain == "quota.test"
    max 3 per 1h
    tempfail 452 4.7.1 "Too many messages from {sender}, try again later"
limit "sender-volume" at mail
    key sender
    when sender.domain == "volume.test"
    max 150K per 1h
    tempfail
rule "declared-size" at mail
    when mail.size > 100K
    reject 552 5.3.4 "Message size exceeds fixed limit"

# rcpt: recipients per sender, before the rules that refuse a recipient (a recipient they
# refuse has been staged by the limit and must not count)
limit "sender-recipients" at rcpt
    key sender
    when sender.domain == "bulk.test"
    max 3 recipients per 1h
    tempfail 452 4.5.3 "Too many recipients"
rule "unknown-user" at rcpt
    when recipient == "nobody@sink.test"
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown"
rule "mailbox-full" at rcpt
    when recipient in full_boxes
    tempfail 452 4.2.2 "<{recipient}>: Mailbox full, try again later"
limit "mailbox-quota" at rcpt
    key recipient
    when recipient in small_boxes
    max 2 per 1d
    reject 552 5.2.2 "<{recipient}>: Mailbox full"

# message
rule "size" at message
    when message.size > 100K
    reject 552 5.3.4 "Message size exceeds fixed limit"
rule "content" at message
    when header["Subject"] == "reject me"
    reject 554 5.7.1 "Message content rejected"
EOF

# --- helpers ----------------------------------------------------------------------------------

# One swaks session into SESSION (HELO client.example unless the arguments name one).
session() { SESSION=$(smtp_session --helo client.example "$@"); }

# reply_to COMMAND: the reply to the first COMMAND of SESSION, as swaks shows it (the last
# line of a multi-line reply). COMMAND "." is the final dot: the reply that follows the
# message after the first 354 (swaks shows the message line by line, or "N lines sent"
# with --suppress-data; a dialogue "[message of N bytes]").
reply_to() {
	awk -v c=" -> $1" -v dot="$([ "$1" = . ] && echo 1)" '
		found && /^(<-|<\*\*) / && !/^<-  [0-9][0-9][0-9]-/ { print; exit }
		dot ? /^<-  354 / : $0 == c { found = 1 }' <<<"$SESSION"
}

# check_reply NAME COMMAND LINE: the reply to COMMAND (see reply_to) is exactly LINE.
check_reply() {
	local name=$1 command=$2 line=$3 got
	got=$(reply_to "$command")
	[ "$command" != . ] || command="final dot"
	if [ "$got" = "$line" ]; then
		pass "$name: $command => $(sed -E 's/^<(-|\*\*) +//' <<<"$line")"
	else
		fail "$name: $command got \"${got:-no reply}\", not \"$line\"; the session was:"
		smtp_commands <<<"$SESSION" | sed 's/^/     /'
	fi
}

# check_count NAME LINE N: SESSION shows the line LINE exactly N times.
check_count() {
	local name=$1 line=$2 n=$3 got
	got=$(grep -c -x -F -- "$line" <<<"$SESSION" || true)
	if [ "$got" = "$n" ]; then
		pass "$name: \"$line\" $n times"
	else
		fail "$name: \"$line\" $got times, not $n; the session was:"
		smtp_commands <<<"$SESSION" | sed 's/^/     /'
	fi
}

# The queue ID of the last message of SESSION that Postfix queued.
queue_id() { sed -n 's/^<-  250 2\.0\.0 Ok: queued as \([0-9A-Za-z]*\)$/\1/p' <<<"$SESSION" | tail -n 1; }

# The recipients Postfix delivered (to its discard transport) the message ID to, sorted.
delivered_to() {
	sed -n "s/^.* postfix\/discard\[[0-9]*\]: $1: to=<\([^>]*\)>, .* status=sent .*/\1/p" \
		"$PF_MAILLOG" | sort | tr '\n' ' ' | sed 's/ $//'
}
removed() { grep -q ": $1: removed\$" "$PF_MAILLOG"; }

# check_delivered NAME RCPT...: the last message of SESSION was queued and delivered to
# exactly these recipients.
check_delivered() {
	local name=$1 id want got; shift
	id=$(queue_id)
	want=$(printf '%s\n' "$@" | sort | tr '\n' ' ' | sed 's/ $//')
	if [ -z "$id" ]; then
		fail "$name: not queued; the session was:"
		smtp_commands <<<"$SESSION" | sed 's/^/     /'
		return
	fi
	wait_for 10 removed "$id" || true
	got=$(delivered_to "$id")
	if [ "$got" = "$want" ]; then
		pass "$name: $id delivered to exactly $want"
	else
		fail "$name: $id delivered to \"$got\", not \"$want\""
	fi
}

# dialogue_mail ARG RCPT...: a dialogue's MAIL FROM:ARG (the address in <>, then any ESMTP
# parameters) and RCPT TO for each recipient. A command may fail once Postfix has closed
# the connection: the checks see it.
dialogue_mail() {
	local from=$1 rcpt; shift
	say "MAIL FROM:$from" || return 0
	for rcpt in "$@"; do say "RCPT TO:<$rcpt>" || return 0; done
}

message_of() {  # message_of SUBJECT: a short message as say_data takes it
	printf 'From: sender@example.net\nTo: bob@sink.test\nSubject: %s\n\nHello.' "$1"
}

# send N FROM RCPT...: N messages from FROM, one session each; counts the queued ones into
# QUEUED.
send() {
	local n=$1 from=$2 rcpts i; shift 2
	rcpts=$(IFS=,; echo "$*")
	QUEUED=0
	for ((i = 1; i <= n; i++)); do
		session --from "$from" --to "$rcpts" --header "Subject: message $i"
		if grep -qxE -- "$QUEUED_ERE" <<<"$SESSION"; then QUEUED=$((QUEUED + 1)); fi
	done
}

# fill_quota NAME FROM LINE: FROM's quota of 3 messages an hour (to bob@sink.test) is used
# up: 3 messages are queued, and the 4th's MAIL FROM gets exactly LINE.
fill_quota() {
	local name=$1 from=$2 line=$3
	send 3 "$from" bob@sink.test
	if [ "$QUEUED" = 3 ]; then pass "$name: 3 messages from $from queued"
	else fail "$name: $QUEUED of 3 messages from $from queued"; fi
	session --from "$from" --to bob@sink.test
	check_reply "$name: the 4th refused at MAIL FROM" "MAIL FROM:<$from>" "$line"
}

# A body of about 150 kB: over the 100K of the size rules, under Postfix's own
# message_size_limit (10 MB), so the milter is the one that refuses.
for ((i = 0; i < 2000; i++)); do printf '%076d\n' "$i"; done > "$WORK/big-body.txt"

# --- start policy-milter and Postfix ----------------------------------------------------------

free_ports SMTP_PORT MILTER_PORT
milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "policy-milter and Postfix running"

OK_RCPT='<-  250 2.1.5 Ok'
TOO_MANY='<** 452 4.5.3 Too many recipients'

# --- 1. recipients per sender at RCPT ------------------------------------------------------------

echo "# recipients: max 3 recipients per sender per hour, at rcpt"
session --from fan@bulk.test --to a@sink.test,b@sink.test,c@sink.test,d@sink.test
check_reply "4 recipients: 1st" "RCPT TO:<a@sink.test>" "$OK_RCPT"
check_reply "4 recipients: 2nd" "RCPT TO:<b@sink.test>" "$OK_RCPT"
check_reply "4 recipients: 3rd" "RCPT TO:<c@sink.test>" "$OK_RCPT"
check_reply "4 recipients: 4th refused" "RCPT TO:<d@sink.test>" "$TOO_MANY"
check_delivered "4 recipients: the message" a@sink.test b@sink.test c@sink.test
session --from fan@bulk.test --to e@sink.test
check_reply "next message: its 1st recipient is the 4th of the hour" "RCPT TO:<e@sink.test>" "$TOO_MANY"
session --from other@bulk.test --to e@sink.test
check_reply "another sender: own count" "RCPT TO:<e@sink.test>" "$OK_RCPT"

# --- 2. full mailboxes, from list files, at RCPT ---------------------------------------------------

echo "# mailbox full: list-driven, at rcpt"
session --from alice@example.net --to full@sink.test,bob@sink.test
check_reply "listed as full: tempfailed" "RCPT TO:<full@sink.test>" \
	'<** 452 4.2.2 <full@sink.test>: Mailbox full, try again later'
check_reply "listed as full: the other recipient" "RCPT TO:<bob@sink.test>" "$OK_RCPT"
check_delivered "listed as full: the message" bob@sink.test
for i in 1 2; do
	session --from alice@example.net --to small@sink.test --header "Subject: small $i"
	check_reply "small mailbox, message $i of 2 a day" "RCPT TO:<small@sink.test>" "$OK_RCPT"
	check_delivered "small mailbox, message $i of 2 a day" small@sink.test
done
session --from carol@example.net --to small@sink.test,bob@sink.test
check_reply "small mailbox, 3rd message: refused" "RCPT TO:<small@sink.test>" \
	'<** 552 5.2.2 <small@sink.test>: Mailbox full'
check_reply "small mailbox, 3rd message: the other recipient" "RCPT TO:<bob@sink.test>" "$OK_RCPT"
check_delivered "small mailbox, 3rd message" bob@sink.test

# --- 3. message size: declared at MAIL, received at the end of the message -----------------------

echo "# message size: mail.size at mail, message.size at message"
# swaks cannot add SIZE= to MAIL FROM: a dialogue sends it. Postfix hands the milter the
# ESMTP parameters as the client wrote them (and refuses a SIZE over its own
# message_size_limit itself, before the milter: 100K is far below it).
dialogue_open
say "EHLO client.example"
dialogue_mail "<big@size.test>" bob@sink.test
say RSET
dialogue_mail "<big@size.test> SIZE=204800" bob@sink.test
say RSET
dialogue_mail "<big@size.test> SIZE=102400" bob@sink.test
say_data "$(message_of "declared 100K")"
say QUIT || true
dialogue_close
check_count "only SIZE=204800 (200K) refused" '<** 552 5.3.4 Message size exceeds fixed limit' 1
check_reply "SIZE=204800 (200K): refused at MAIL FROM" "MAIL FROM:<big@size.test> SIZE=204800" \
	'<** 552 5.3.4 Message size exceeds fixed limit'
check_reply "no SIZE: MAIL FROM" "MAIL FROM:<big@size.test>" '<-  250 2.1.0 Ok'
check_reply "SIZE=102400 (exactly 100K): MAIL FROM" "MAIL FROM:<big@size.test> SIZE=102400" \
	'<-  250 2.1.0 Ok'
check_session "SIZE=102400 (exactly 100K): queued" "$QUEUED_ERE"
if milter_log_has 'stage=mail rule=declared-size action=reject reply="552 5\.3\.4 Message size exceeds fixed limit" .*from=<big@size\.test>'; then
	pass "SIZE=204800: policy-milter logged the decision at stage=mail"
else
	fail "SIZE=204800: no stage=mail decision line in policy-milter's log"
fi
session --from big@size.test --to bob@sink.test --body "$WORK/big-body.txt" --suppress-data
check_reply "150 kB message, no SIZE: DATA" DATA '<-  354 End data with <CR><LF>.<CR><LF>'
check_reply "150 kB message, no SIZE: refused" . '<** 552 5.3.4 Message size exceeds fixed limit'
if milter_log_has 'stage=message rule=size action=reject reply="552 5\.3\.4 Message size exceeds fixed limit"'; then
	pass "150 kB message: policy-milter logged the decision at stage=message"
else
	fail "150 kB message: no stage=message decision line in policy-milter's log"
fi

# --- 4. a sender's quota at MAIL ----------------------------------------------------------------

echo "# sender quota: max 3 messages per sender per hour, at mail"
fill_quota "sender quota" hourly@quota.test \
	'<** 452 4.7.1 Too many messages from hourly@quota.test, try again later'
session --from other@quota.test --to bob@sink.test
check_reply "another sender: own count" "MAIL FROM:<other@quota.test>" '<-  250 2.1.0 Ok'
check_session "another sender: queued" "$QUEUED_ERE"

echo "# sender volume: max 150K declared bytes per sender per hour, default reply, at mail"
dialogue_open
say "EHLO client.example"
for i in 1 2 3; do
	dialogue_mail "<bulk@volume.test> SIZE=$((60000 + i))" bob@sink.test
	say_data "$(message_of "volume $i")" || true
done
dialogue_mail "<bulk@volume.test> SIZE=$((150 * 1024 - 120003))" bob@sink.test
say_data "$(message_of "volume 4")" || true
say QUIT || true
dialogue_close
check_reply "SIZE=60001: 1st" "MAIL FROM:<bulk@volume.test> SIZE=60001" '<-  250 2.1.0 Ok'
check_reply "SIZE=60002: 2nd, 120003 bytes so far" "MAIL FROM:<bulk@volume.test> SIZE=60002" \
	'<-  250 2.1.0 Ok'
check_reply "SIZE=60003: over 150K, default reply" "MAIL FROM:<bulk@volume.test> SIZE=60003" \
	'<** 451 4.7.1 Temporarily rejected by policy, try again later'
check_reply "SIZE=33597: exactly up to 150K" "MAIL FROM:<bulk@volume.test> SIZE=33597" '<-  250 2.1.0 Ok'
if [ "$(grep -cxE -- "$QUEUED_ERE" <<<"$SESSION")" = 3 ]; then
	pass "sender volume: 3 of 4 messages queued"
else
	fail "sender volume: not 3 of 4 messages queued; the session was:"
	smtp_commands <<<"$SESSION" | sed 's/^/     /'
fi

# --- 5. a client's connection rate at connect -----------------------------------------------------

echo "# connection rate: max 3 connections per client per minute, at connect"
for i in 1 2 3; do
	session --local-interface 127.0.0.9 --quit-after CONNECT
	check_session "127.0.0.9, connection $i: greeted" '<-  220 e2e\.localdomain ESMTP Postfix'
done
session --local-interface 127.0.0.9 --from alice@example.net --to bob@sink.test
check_line "127.0.0.9, connection 4: Postfix's 421 greeting" \
	'<** 421 e2e.localdomain Service unavailable - try again later'
check_line "127.0.0.9, connection 4: then closed" '*** Remote host closed connection unexpectedly.'
# Postfix answers a 4xx at connect with its own 421 line, so the milter's reply shows only
# in the logs: Postfix's proves it got it.
if milter_log_has 'client=unknown\[127\.0\.0\.9\] stage=connect rule=client-rate action=tempfail reply="421 4\.7\.0 Too many connections from 127\.0\.0\.9, try again later" helo=- from=- to=-'; then
	pass "127.0.0.9, connection 4: policy-milter logged its reply at stage=connect"
else
	fail "127.0.0.9, connection 4: no connect decision line in policy-milter's log"
fi
ere='NOQUEUE: milter-reject: CONNECT from unknown\[127\.0\.0\.9\]: 421 4\.7\.0 Too many connections from 127\.0\.0\.9, try again later; proto=SMTP'
if wait_for 5 grep -qE -- "$ere" "$PF_MAILLOG"; then
	pass "127.0.0.9, connection 4: Postfix logged $(grep -m1 -oE -- "$ere" "$PF_MAILLOG")"
else
	fail "127.0.0.9, connection 4: Postfix did not log \"$ere\""
fi
session --local-interface 127.0.0.10 --from alice@example.net --to bob@sink.test
check_session "127.0.0.10: own count, greeted" '<-  220 e2e\.localdomain ESMTP Postfix'
check_session "127.0.0.10: queued" "$QUEUED_ERE"
# Counted at HELO instead, the limit's own reply reaches the client.
for i in 1 2; do
	session --local-interface 127.0.0.16 --from alice@example.net --to bob@sink.test
	check_session "127.0.0.16, connection $i, limit at helo: queued" "$QUEUED_ERE"
done
session --local-interface 127.0.0.16 --from alice@example.net --to bob@sink.test
check_reply "127.0.0.16, connection 3, limit at helo: refused at EHLO" "EHLO client.example" \
	'<** 421 4.7.0 Too many connections from 127.0.0.16, try again later'
check_line "127.0.0.16, connection 3: then closed" '*** Remote host closed connection unexpectedly.'

# --- 6. refused and aborted transactions count nothing ----------------------------------------------

echo "# not counted: refused recipients, refused messages, aborted transactions"
# Recipients: 2 of the 3 an hour taken by a message whose other recipients were refused,
# then transactions that reach RCPT and are refused or aborted; the 3rd recipient is still
# free afterwards, and only it.
session --from mixed@bulk.test --to nobody@sink.test,full@sink.test,a@sink.test,b@sink.test
check_reply "recipients: unknown user refused" "RCPT TO:<nobody@sink.test>" \
	'<** 550 5.1.1 <nobody@sink.test>: Recipient address rejected: User unknown'
check_reply "recipients: full mailbox refused" "RCPT TO:<full@sink.test>" \
	'<** 452 4.2.2 <full@sink.test>: Mailbox full, try again later'
check_delivered "recipients: 2 accepted of 4" a@sink.test b@sink.test
dialogue_open
say "EHLO client.example"
dialogue_mail "<mixed@bulk.test>" c@sink.test d@sink.test
say RSET
dialogue_mail "<mixed@bulk.test>" c@sink.test
say QUIT || true
dialogue_close
check_reply "recipients, RSET: the 3rd of the hour staged" "RCPT TO:<c@sink.test>" "$OK_RCPT"
check_reply "recipients, RSET: the 4th refused" "RCPT TO:<d@sink.test>" "$TOO_MANY"
check_count "recipients, RSET then QUIT after RCPT: the 3rd twice" "$OK_RCPT" 2
session --from mixed@bulk.test --to c@sink.test --header "Subject: reject me"
check_reply "recipients, message refused: the 3rd" "RCPT TO:<c@sink.test>" "$OK_RCPT"
check_reply "recipients, message refused after the dot" . '<** 554 5.7.1 Message content rejected'
session --from mixed@bulk.test --to c@sink.test --drop-after RCPT
check_reply "recipients, connection dropped after RCPT: the 3rd" "RCPT TO:<c@sink.test>" "$OK_RCPT"
session --from mixed@bulk.test --to c@sink.test,d@sink.test
check_reply "recipients afterwards: the 3rd of the hour still free" "RCPT TO:<c@sink.test>" "$OK_RCPT"
check_reply "recipients afterwards: the 4th refused" "RCPT TO:<d@sink.test>" "$TOO_MANY"
check_delivered "recipients afterwards: the message" c@sink.test

# Messages: a sender's whole hourly quota is still there after every way a transaction can
# fail to deliver.
REFUSED_MAIL='<** 452 4.7.1 Too many messages from quiet@quota.test, try again later'
session --from quiet@quota.test --to nobody@sink.test
check_reply "messages, every recipient refused" "RCPT TO:<nobody@sink.test>" \
	'<** 550 5.1.1 <nobody@sink.test>: Recipient address rejected: User unknown'
session --from quiet@quota.test --to bob@sink.test --header "Subject: reject me"
check_reply "messages, refused after the dot" . '<** 554 5.7.1 Message content rejected'
session --from quiet@quota.test --to bob@sink.test --body "$WORK/big-body.txt" --suppress-data
check_reply "messages, too big after the dot" . '<** 552 5.3.4 Message size exceeds fixed limit'
session --from quiet@quota.test --to bob@sink.test --quit-after RCPT
check_reply "messages, QUIT after RCPT" "RCPT TO:<bob@sink.test>" "$OK_RCPT"
dialogue_open
say "EHLO client.example"
dialogue_mail "<quiet@quota.test> SIZE=204800" bob@sink.test
say RSET
dialogue_mail "<quiet@quota.test>" bob@sink.test
say RSET
dialogue_mail "<quiet@quota.test>" bob@sink.test full@sink.test
say DATA
SESSION+=" -> [part of a message, then the connection dropped]"$'\n'
printf 'From: quiet@quota.test\r\nSubject: never ends\r\n\r\nno final dot\r\n' 1>&"$DIALOGUE_OUT"
dialogue_close
check_reply "messages, SIZE too big: refused at MAIL FROM" "MAIL FROM:<quiet@quota.test> SIZE=204800" \
	'<** 552 5.3.4 Message size exceeds fixed limit'
check_count "messages, RSET after RCPT, then DATA dropped: MAIL FROM accepted twice" \
	'<-  250 2.1.0 Ok' 2
check_reply "messages, DATA dropped before the dot: DATA" DATA '<-  354 End data with <CR><LF>.<CR><LF>'
# The dropped session has ended in Postfix (and the milter been told) before the quota is
# looked at again.
if wait_for 10 grep -qE 'lost connection after DATA \([0-9]+ bytes\) from unknown\[127\.0\.0\.1\]' "$PF_MAILLOG"; then
	pass "messages, DATA dropped before the dot: Postfix logged $(grep -m1 -oE 'lost connection after DATA \([0-9]+ bytes\)' "$PF_MAILLOG")"
else
	fail "messages, DATA dropped before the dot: Postfix did not log the lost connection"
fi
fill_quota "messages afterwards" quiet@quota.test "$REFUSED_MAIL"

# --- the milter's health ---------------------------------------------------------------------

if milter_log_has 'local error|store unavailable|concurrent transactions'; then
	fail "policy-milter logged an error:"; grep -E 'local error|store unavailable|concurrent' "$MILTER_LOG"
else
	pass "no error in policy-milter's log"
fi
rc=0
milter_stop 20 || rc=$?
if [ $rc = 0 ]; then pass "policy-milter: SIGTERM, exit 0"; else fail "policy-milter: exit $rc"; fi

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

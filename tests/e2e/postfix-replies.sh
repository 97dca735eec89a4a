#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: every action at every stage, through a private Postfix, as the SMTP client
# sees it. For each stage: reject and tempfail with the default and with a custom code, 421
# (which closes the connection), accept, pass, discard; at the message stage also quarantine
# (Postfix's hold queue) and add-header (seen in the delivered message, which an smtp-sink
# receives). Then several recipients with mixed outcomes in one transaction. Each check
# names the exact reply line and where in Postfix's dialogue it appears.
#
#   tests/e2e/postfix-replies.sh PATH/TO/policy-milter
#
# Needs root, postfix (with smtp-sink) and swaks; exits 77 (ctest: skipped) without them.
# Everything it starts is stopped on exit; the work directory is removed unless
# KEEP_E2E_DIR=1.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
# shellcheck source=tests/e2e/lib/dialogue.sh
. "$(dirname "$0")/lib/dialogue.sh"
rig_require
command -v smtp-sink >/dev/null || skip "smtp-sink is not installed (package postfix)"

rig_init policy-milter-replies
WORK=$RIG_DIR SINK_PID=""

cleanup() {
	local rc=$?
	dialogue_close
	rig_stop
	if [ -n "$SINK_PID" ]; then kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; fi
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then rig_show_logs; fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the rules: one rule per case, picked by the client address, HELO name, sender,
# recipient or Subject -----------------------------------------------------------------------

# The rules are a table of cases, kept as data beside this script (a policy file, not shell).
cp "$(dirname "$0")/postfix-replies.rules" "$WORK/rules.conf"

# --- helpers ----------------------------------------------------------------------------------

# The queue ID of the last message of SESSION that Postfix queued.
queue_id() { sed -n 's/^<-  250 2\.0\.0 Ok: queued as \([0-9A-Za-z]*\)$/\1/p' <<<"$SESSION" | tail -n 1; }

# The file in which smtp-sink received the message with this Subject.
sink_file() { grep -l -x -F -- "Subject: $1" "$WORK"/sink/* 2>/dev/null | head -n 1; }

# expect_delivered NAME SUBJECT LINE...: the message arrived at the sink with every LINE.
expect_delivered() {
	local name=$1 subject=$2 file line; shift 2
	if ! wait_for 15 sink_file "$subject" >/dev/null; then
		fail "$name: no message \"Subject: $subject\" reached the sink"
		return
	fi
	file=$(sink_file "$subject")
	for line in "$@"; do
		if grep -q -x -F -- "$line" "$file"; then
			pass "$name: delivered with \"$line\""
		else
			fail "$name: delivered without \"$line\":"
			sed -n '1,/^$/p' "$file" | sed 's/^/     /'
		fi
	done
}

# expect_dropped NAME COMMAND: Postfix logged that the milter discarded the last message of
# SESSION at COMMAND (MAIL, RCPT, DATA or END-OF-MESSAGE). At MAIL there is no queue ID yet:
# Postfix logs NOQUEUE, and the line is found by the sender.
expect_dropped() {
	local name=$1 command=$2 id ere
	id=$(queue_id)
	ere="${id:-none}: milter-discard: $command from unknown\[127\.0\.0\.1\]: milter triggers DISCARD action;"
	if [ "$command" = MAIL ]; then
		ere="NOQUEUE: milter-discard: MAIL from unknown\[127\.0\.0\.1\]: milter triggers DISCARD action; from=<$(sed -n 's/^ -> MAIL FROM:<\(.*\)>$/\1/p' <<<"$SESSION")>"
	fi
	if wait_for 10 grep -qE -- "$ere" "$PF_MAILLOG"; then
		pass "$name: Postfix logged $(grep -m1 -oE -- "$ere" "$PF_MAILLOG")"
	else
		fail "$name: Postfix did not log \"$ere\""
	fi
}

# --- start the sink, policy-milter and Postfix ---------------------------------------------------

free_ports SMTP_PORT MILTER_PORT SINK_PORT
mkdir -m 777 "$WORK/sink"
# smtp-sink drops to nobody; one file per message, named from the template.
smtp-sink -u nobody -d "$WORK/sink/%H%M%S." "127.0.0.1:$SINK_PORT" 20 \
	>"$WORK/sink.log" 2>&1 &
SINK_PID=$!
wait_for 10 listening "$SINK_PORT" || { fail "smtp-sink did not listen"; exit 1; }

milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
# Mail to sink.test goes to the sink; everything else is discarded by Postfix.
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	"transport_maps = inline:{sink.test=smtp:[127.0.0.1]:$SINK_PORT}" \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "policy-milter, Postfix and smtp-sink running"

CLOSED='*** Remote host closed connection unexpectedly.'
OK_FROM='<-  250 2.1.0 Ok'
OK_RCPT='<-  250 2.1.5 Ok'

# --- connect: Postfix answers the greeting itself; the milter's reply comes at MAIL FROM ---------

echo "# connect"
dialogue_open 127.0.0.2
say "EHLO client.example"; say "MAIL FROM:<alice@example.net>"; say "RCPT TO:<bob@sink.test>"
say QUIT || true
check_line "connect reject: greeting" '<** 554 e2e.localdomain ESMTP not accepting connections'
check_line "connect reject: EHLO answered, ENHANCEDSTATUSCODES only" '<-  250 ENHANCEDSTATUSCODES'
check_line "connect reject: default reply at MAIL FROM" '<** 554 5.7.1 Rejected by policy'
check_line "connect reject: RCPT then" '<** 503 5.5.1 Error: need MAIL command'

dialogue_open 127.0.0.3
say "EHLO client.example"; say "MAIL FROM:<alice@example.net>"; say "RCPT TO:<bob@sink.test>" || true
check_line "connect reject 521: greeting" '<** 554 e2e.localdomain ESMTP not accepting connections'
check_line "connect reject 521: custom reply at MAIL FROM" '<** 521 5.7.1 No SMTP service for 127.0.0.3'
check_line "connect reject 521: then closed" "$CLOSED"

dialogue_open 127.0.0.4
say "EHLO client.example" || true
check_line "connect tempfail: Postfix's 421 greeting" \
	'<** 421 e2e.localdomain Service unavailable - try again later'
check_line "connect tempfail: then closed" "$CLOSED"

dialogue_open 127.0.0.7
say "EHLO client.example" || true
check_line "connect tempfail 421 custom: Postfix's own text" \
	'<** 421 e2e.localdomain Service unavailable - try again later'
check_line "connect tempfail 421 custom: then closed" "$CLOSED"

expect_queued "connect accept: sender, recipient and content rules skipped" \
	--local-interface 127.0.0.5 --from reject@mail.test --to nobody@sink.test \
	--header "Subject: reject me"
expect_line "connect pass: the stage's later rule skipped" '<-  220 e2e.localdomain ESMTP Postfix' \
	--local-interface 127.0.0.6 --from alice@example.net --to bob@sink.test --quit-after RCPT
check_line "connect pass: RCPT" "$OK_RCPT"

# --- helo: a 5xx comes at MAIL FROM (EHLO is answered 250), a 421 at once -----------------------

echo "# helo"
expect_line "helo reject: EHLO answered, ENHANCEDSTATUSCODES only" '<-  250 ENHANCEDSTATUSCODES' \
	--helo reject.helo.test --from alice@example.net --to bob@sink.test
check_line "helo reject: default reply at MAIL FROM" '<** 550 5.7.1 Rejected by policy'
expect_line "helo reject 504: custom reply at MAIL FROM" '<** 504 5.5.2 HELO odd.helo.test looks odd' \
	--helo odd.helo.test --from alice@example.net --to bob@sink.test
expect_line "helo tempfail: default 421 at EHLO" \
	'<** 421 4.7.0 Temporarily rejected by policy, try again later' \
	--helo tempfail.helo.test --from alice@example.net --to bob@sink.test
check_line "helo tempfail: then closed" "$CLOSED"
expect_line "helo tempfail 421: custom reply at EHLO" '<** 421 4.3.2 Busy, HELO busy.helo.test later' \
	--helo busy.helo.test --from alice@example.net --to bob@sink.test
check_line "helo tempfail 421: then closed" "$CLOSED"
expect_queued "helo accept: later rules skipped" \
	--helo accept.helo.test --from reject@mail.test --to nobody@sink.test --header "Subject: reject me"
expect_line "helo pass: the stage's later rule skipped" "$OK_FROM" \
	--helo pass.helo.test --from alice@example.net --to bob@sink.test --quit-after RCPT

# --- mail ------------------------------------------------------------------------------------

echo "# mail"
expect_line "mail reject: default" '<** 550 5.7.1 Rejected by policy' \
	--from reject@mail.test --to bob@sink.test --quit-after RCPT
expect_line "mail reject 553: custom" '<** 553 5.7.1 <forged@mail.test>: Sender address rejected: not logged in' \
	--from forged@mail.test --to bob@sink.test --quit-after RCPT
expect_line "mail tempfail: default" '<** 451 4.7.1 Temporarily rejected by policy, try again later' \
	--from tempfail@mail.test --to bob@sink.test --quit-after RCPT
expect_line "mail tempfail 452: custom" '<** 452 4.3.1 Insufficient system storage' \
	--from busy@mail.test --to bob@sink.test --quit-after RCPT
expect_line "mail tempfail 421" '<** 421 4.3.2 Shutting down at MAIL' \
	--from close@mail.test --to bob@sink.test --quit-after RCPT
check_line "mail tempfail 421: then closed" "$CLOSED"
expect_queued "mail accept: recipient and content rules skipped" \
	--from accept@mail.test --to nobody@sink.test --header "Subject: reject me"
expect_queued "mail discard: queued for the client" \
	--from discard@mail.test --to bob@sink.test --header "Subject: discarded at mail"
expect_dropped "mail discard" MAIL
expect_line "mail pass: the stage's later rule skipped" "$OK_RCPT" \
	--from pass@mail.test --to bob@sink.test --quit-after RCPT

# --- rcpt ------------------------------------------------------------------------------------

echo "# rcpt"
expect_line "rcpt reject: default" '<** 550 5.7.1 Rejected by policy' \
	--from alice@example.net --to reject@sink.test --quit-after RCPT
expect_line "rcpt reject 550: custom" \
	'<** 550 5.1.1 <nobody@sink.test>: Recipient address rejected: User unknown' \
	--from alice@example.net --to nobody@sink.test --quit-after RCPT
expect_line "rcpt tempfail: default" '<** 450 4.7.1 Temporarily rejected by policy, try again later' \
	--from alice@example.net --to tempfail@sink.test --quit-after RCPT
expect_line "rcpt tempfail 452: custom" '<** 452 4.2.2 <full@sink.test>: Mailbox full, try again later' \
	--from alice@example.net --to full@sink.test --quit-after RCPT
expect_line "rcpt tempfail 421" '<** 421 4.3.2 Shutting down at RCPT' \
	--from alice@example.net --to close@sink.test --quit-after RCPT
check_line "rcpt tempfail 421: then closed" "$CLOSED"
expect_queued "rcpt accept: later recipients and content unchecked" \
	--from alice@example.net --to boss@sink.test,nobody@sink.test --header "Subject: reject me"
if [ "$(grep -c -x -F -- "$OK_RCPT" <<<"$SESSION")" = 2 ]; then
	pass "rcpt accept: the later recipient nobody@sink.test got $OK_RCPT too"
else
	fail "rcpt accept: the later recipient was checked:"; smtp_commands <<<"$SESSION" | sed 's/^/     /'
fi
expect_queued "rcpt discard: queued for the client" \
	--from alice@example.net --to bob@sink.test,spamtrap@sink.test --header "Subject: discarded at rcpt"
expect_dropped "rcpt discard" RCPT
expect_line "rcpt pass: the stage's later rule skipped" "$OK_RCPT" \
	--from alice@example.net --to postmaster@sink.test --quit-after RCPT

# --- data: the reply to the DATA command itself ------------------------------------------------

echo "# data"
expect_line "data reject: default, at DATA" '<** 554 5.7.1 Rejected by policy' \
	--from alice@example.net --to data-reject@sink.test
expect_line "data reject 554: custom, at DATA" '<** 554 5.7.0 No mail for data-custom@sink.test today' \
	--from alice@example.net --to data-custom@sink.test
expect_line "data tempfail: default, at DATA" \
	'<** 451 4.7.1 Temporarily rejected by policy, try again later' \
	--from alice@example.net --to data-tempfail@sink.test
expect_line "data tempfail 421: at DATA" '<** 421 4.3.2 Shutting down at DATA' \
	--from alice@example.net --to data-close@sink.test
check_line "data tempfail 421: then closed" "$CLOSED"
expect_queued "data accept: content rules skipped" \
	--from alice@example.net --to data-accept@sink.test --header "Subject: reject me"
expect_queued "data discard: queued for the client" \
	--from alice@example.net --to data-discard@sink.test --header "Subject: discarded at data"
expect_dropped "data discard" DATA
expect_queued "data pass: the stage's later rule skipped" \
	--from alice@example.net --to data-pass@sink.test --header "Subject: data pass"

# --- message: the reply to the final dot -----------------------------------------------------

echo "# message"
expect_line "message reject: default, after the dot" '<** 554 5.7.1 Rejected by policy' \
	--from alice@example.net --to bob@sink.test --header "Subject: reject me"
expect_line "message reject 552: custom" '<** 552 5.3.4 Message too big for bob@sink.test' \
	--from alice@example.net --to bob@sink.test --header "Subject: too big"
expect_line "message tempfail: default" '<** 451 4.7.1 Temporarily rejected by policy, try again later' \
	--from alice@example.net --to bob@sink.test --header "Subject: tempfail me"
expect_line "message tempfail 452: custom" '<** 452 4.3.1 Insufficient system storage' \
	--from alice@example.net --to bob@sink.test --header "Subject: later"
expect_line "message tempfail 421" '<** 421 4.3.2 Shutting down after DATA' \
	--from alice@example.net --to bob@sink.test --header "Subject: close"
check_line "message tempfail 421: then closed" "$CLOSED"

expect_queued "message quarantine: queued for the client" \
	--from carol@example.net --to bob@sink.test --header "Subject: suspicious"
id=$(queue_id)
if [ -n "$id" ] && wait_for 10 test -f "$PF_SPOOL/hold/$id"; then
	pass "message quarantine: $id is in Postfix's hold queue"
else
	fail "message quarantine: '${id:-no queue ID}' not in $PF_SPOOL/hold"
fi
if postqueue -c "$PF_CONF" -p | grep -q "^$id!"; then
	pass "message quarantine: postqueue -p shows $id! (on hold)"
else
	fail "message quarantine: postqueue -p does not show $id! :"
	postqueue -c "$PF_CONF" -p | sed 's/^/     /'
fi
# Postfix logs the hold but not the milter's reason; policy-milter's own line has it.
if grep -q "$id: milter-hold: END-OF-MESSAGE from unknown\[127.0.0.1\]: milter triggers HOLD action;" "$PF_MAILLOG"; then
	pass "message quarantine: Postfix logged $(grep -o "$id: milter-hold: [^;]*" "$PF_MAILLOG")"
else
	fail "message quarantine: no milter-hold line in Postfix's log"
fi
if milter_log_has "$id: client=[^ ]+ stage=message rule=message-quarantine action=quarantine helo=<[^ ]+> from=<[^ ]+> to=<[^ ]+> reason=\"held for review: carol@example\.net\""; then
	pass "message quarantine: policy-milter logged the reason"
else
	fail "message quarantine: policy-milter did not log the reason"
fi

expect_queued "message discard: queued for the client" \
	--from alice@example.net --to bob@sink.test --header "Subject: drop me"
expect_dropped "message discard" END-OF-MESSAGE
expect_queued "message accept" --from alice@example.net --to bob@sink.test --header "Subject: accept me"
expect_delivered "message accept: headers added before accept are kept" "accept me" \
	"X-Policy-Milter: checked for 127.0.0.1"
expect_queued "message pass: the stage's later rule skipped" \
	--from alice@example.net --to bob@sink.test --header "Subject: pass me"
expect_queued "message add-header" \
	--from alice@example.net --to bob@sink.test --header "Subject: cheap pills [spam]"
expect_delivered "message add-header" "cheap pills [spam]" \
	"X-Policy-Milter: checked for 127.0.0.1" "X-Spam-Flag: YES"

# --- several recipients, mixed outcomes, one message -----------------------------------------------

echo "# mixed recipients"
dialogue_open
say "EHLO client.example"
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<bob@sink.test>"
say "RCPT TO:<nobody@sink.test>"
say "RCPT TO:<full@sink.test>"
say "RCPT TO:<postmaster@sink.test>"
say "RCPT TO:<tempfail@sink.test>"
say_data $'From: alice@example.net\nTo: bob@sink.test\nSubject: mixed recipients\n\nHello.'
say QUIT || true
dialogue_close
check_line "mixed: bob accepted" "$OK_RCPT"
check_line "mixed: nobody rejected" '<** 550 5.1.1 <nobody@sink.test>: Recipient address rejected: User unknown'
check_line "mixed: full tempfailed" '<** 452 4.2.2 <full@sink.test>: Mailbox full, try again later'
check_line "mixed: tempfail tempfailed" '<** 450 4.7.1 Temporarily rejected by policy, try again later'
check_session "mixed: the message queued" "$QUEUED_ERE"
expect_delivered "mixed: only the accepted recipients got it" "mixed recipients" \
	"X-Rcpt-Args: <bob@sink.test> ORCPT=rfc822;bob@sink.test" \
	"X-Rcpt-Args: <postmaster@sink.test> ORCPT=rfc822;postmaster@sink.test"
if file=$(sink_file "mixed recipients") && [ "$(grep -c '^X-Rcpt-Args:' "$file")" = 2 ]; then
	pass "mixed: delivered to exactly 2 recipients"
else
	fail "mixed: not delivered to exactly 2 recipients"
fi

# --- nothing else was delivered, nothing is left in the queue but the held message ------------------

for subject in "discarded at mail" "discarded at rcpt" "discarded at data" "drop me"; do
	if [ -z "$(sink_file "$subject")" ]; then pass "discarded \"$subject\": never delivered"
	else fail "discarded \"$subject\": delivered"; fi
done
queued_count_is() { [ "$(postqueue -c "$PF_CONF" -p | grep -c '^[0-9A-F]')" = "$1" ]; }
if wait_for 10 queued_count_is 1; then
	pass "queue: only the quarantined message left"
else
	fail "queue: not only the quarantined message left:"
	postqueue -c "$PF_CONF" -p | sed 's/^/     /'
fi

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: the policy-delegation front end (policy-socket) through a real Postfix with
# `smtpd_recipient_restrictions = check_policy_service inet:...` and no milter. The exact
# reply lines swaks and a raw dialogue see:
#   1. RCPT: reject, tempfail, and a rule whose text already carries Postfix's own
#      "<addr>: Recipient address rejected:" prefix, which the client sees once;
#   2. VRFY (disable_vrfy_command = no): a vrfy rule's reply, and a VRFY it lets pass;
#      ETRN (smtpd_etrn_restrictions): an etrn rule's reply;
#   3. limits without END-OF-MESSAGE requests: counted at each accepted RCPT, a message once
#      however many recipients it has;
#   (SIGHUP reloads the rules of the policy service);
#   4. the same rules through the milter (Postfix restarted with smtpd_milters and no
#      policy service): the same reply lines on the wire, and the counts of section 3 (one
#      store for both);
#   (greylisting: the first attempt refused, a retry after the delay accepted, and the
#   triplet passed there has passed for the milter of section 4: one greylist store);
#   5. with the service also in smtpd_end_of_data_restrictions: limits counted at
#      END-OF-MESSAGE, so an abandoned transaction counts nothing; quarantine is HOLD.
#
#   tests/e2e/postfix-policy.sh PATH/TO/policy-milter
#
# Needs root, postfix and swaks; exits 77 (ctest: skipped) without them.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
# shellcheck source=tests/e2e/lib/dialogue.sh
. "$(dirname "$0")/lib/dialogue.sh"
rig_require

dialogue_suite policy-milter-policy

cat > "$WORK/rules.conf" <<'EOF'
rule "unknown-user" at rcpt
    when recipient == "nobody@sink.test"
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown"
rule "plain" at rcpt
    when recipient == "plain@sink.test"
    reject 550 5.7.1 "Not here"
rule "later" at rcpt
    when recipient == "later@sink.test"
    tempfail 450 4.2.0 "Try later"
rule "etrn-other" at etrn
    when domain != "sink.test"
    tempfail 459 4.7.1 "Not for {domain}"
rule "vrfy-root" at vrfy
    when recipient.local == "root"
    reject 550 5.7.1 "No VRFY of root"
limit "sender-hourly" at rcpt
    key sender
    when sender.domain == "quota.test"
    max 2 per 1h
    tempfail 450 4.7.1 "Too many messages from {sender}"
limit "eom-hourly" at rcpt
    key sender
    when sender.domain == "eom.test"
    max 1 per 1h
    tempfail 450 4.7.1 "Too many messages from {sender}"
rule "hold" at message
    when sender.domain == "hold.test"
    quarantine "held by policy"
rule "grey" at rcpt
    when recipient.domain == "grey.test"
    greylist delay 2s window 1h
EOF
mkdir -p "$WORK/state"

# check_reply NAME COMMAND LINE: the reply to the first " -> COMMAND" of SESSION is LINE.
check_reply() {
	local name=$1 command=$2 line=$3 got
	got=$(awk -v c=" -> $command" '
		found && /^(<-|<\*\*) / && !/^<-  [0-9][0-9][0-9]-/ { print; exit }
		$0 == c { found = 1 }' <<<"$SESSION")
	if [ "$got" = "$line" ]; then
		pass "$name: $command => ${line#<* }"
	else
		fail "$name: $command got \"${got:-no reply}\", not \"$line\"; the session was:"
		smtp_commands <<<"$SESSION" | sed 's/^/     /'
	fi
}
session() { SESSION=$(smtp_session --helo client.example "$@"); }
queued() { grep -qxE -- "$QUEUED_ERE" <<<"$SESSION"; }

free_ports SMTP_PORT MILTER_PORT POLICY_PORT
milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
	--policy-socket "inet:$POLICY_PORT@127.0.0.1" --state-dir "$WORK/state" \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
wait_for 10 listening "$POLICY_PORT" || { fail "no policy service on $POLICY_PORT"; exit 1; }
# Postfix with the policy service and no milter. smtpd_milters is emptied in place, not
# by a second line (bench/run-mta-bench says why).
policy_postfix() {
	postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain "disable_vrfy_command = no" \
		"smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:$POLICY_PORT" \
		"smtpd_etrn_restrictions = check_policy_service inet:127.0.0.1:$POLICY_PORT" "$@" \
		|| return 1
	postconf -c "$PF_CONF" -e "smtpd_milters ="
	touch -d '-10 seconds' "$PF_CONF/main.cf"
	postfix -c "$PF_CONF" reload >/dev/null 2>&1
	sleep 1
	[ -z "$(postconf -c "$PF_CONF" -h smtpd_milters)" ]
}
policy_postfix || { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "policy-milter (policy service on $POLICY_PORT) and Postfix running, no milter"

# --- 1. RCPT --------------------------------------------------------------------------------
echo "# RCPT through check_policy_service"
session --from alice@example.net --to nobody@sink.test,plain@sink.test,later@sink.test,bob@sink.test
check_reply "prefix in the rule: once on the wire" "RCPT TO:<nobody@sink.test>" \
	'<** 550 5.1.1 <nobody@sink.test>: Recipient address rejected: User unknown'
check_reply "plain text: Postfix's prefix" "RCPT TO:<plain@sink.test>" \
	'<** 550 5.7.1 <plain@sink.test>: Recipient address rejected: Not here'
check_reply "tempfail" "RCPT TO:<later@sink.test>" \
	'<** 450 4.2.0 <later@sink.test>: Recipient address rejected: Try later'
check_reply "no rule: DUNNO" "RCPT TO:<bob@sink.test>" '<-  250 2.1.5 Ok'
check "the message queued for bob" queued

# Greylisting from the daemon's one greylist store: postgrey's place in Postfix.
session --from alice@example.net --to g@grey.test
check_reply "greylist: the first attempt" "RCPT TO:<g@grey.test>" \
	'<** 451 4.7.1 <g@grey.test>: Recipient address rejected: Greylisted, try again later'
sleep 3
session --from alice@example.net --to g@grey.test
check_reply "greylist: a retry after the delay" "RCPT TO:<g@grey.test>" '<-  250 2.1.5 Ok'

# One reload for both front ends: SIGHUP, and the policy service answers with the new rules.
sed -i 's/"Not here"/"Not here any more"/' "$WORK/rules.conf"
kill -HUP "$MILTER_PID"
wait_for 10 milter_log_has 'reloaded' || true
session --from alice@example.net --to plain@sink.test
check_reply "SIGHUP reloads the policy service" "RCPT TO:<plain@sink.test>" \
	'<** 550 5.7.1 <plain@sink.test>: Recipient address rejected: Not here any more'

# --- 2. VRFY --------------------------------------------------------------------------------
echo "# VRFY (disable_vrfy_command = no)"
dialogue_open
say "EHLO client.example" || true
say "VRFY root" || true
say "VRFY bob@sink.test" || true
say "ETRN other.example" || true
say "QUIT" || true
dialogue_close
check_reply "vrfy rule" "VRFY root" '<** 550 5.7.1 <root>: Recipient address rejected: No VRFY of root'
check_reply "vrfy without a rule" "VRFY bob@sink.test" '<-  252 2.0.0 bob@sink.test'
check_reply "etrn rule (smtpd_etrn_restrictions)" "ETRN other.example" \
	'<** 459 4.7.1 <other.example>: Etrn command rejected: Not for other.example'

# --- 3. limits, counted at each accepted RCPT -------------------------------------------------
echo "# limits without END-OF-MESSAGE requests"
session --from a@quota.test --to x@sink.test,y@sink.test --header "Subject: 1"
check "quota: 1st message (2 recipients, counted once) queued" queued
session --from a@quota.test --to x@sink.test --header "Subject: 2"
check "quota: 2nd message queued" queued
session --from a@quota.test --to x@sink.test --header "Subject: 3"
check_reply "quota: the 3rd refused at RCPT" "RCPT TO:<x@sink.test>" \
	'<** 450 4.7.1 <x@sink.test>: Recipient address rejected: Too many messages from a@quota.test'

# --- 4. the same rules through the milter -----------------------------------------------------
echo "# the same rules through the milter: the same lines on the wire"
postfix_stop
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain || { fail "Postfix restart"; exit 1; }
session --from alice@example.net --to nobody@sink.test,later@sink.test,bob@sink.test
check_reply "milter: the same line" "RCPT TO:<nobody@sink.test>" \
	'<** 550 5.1.1 <nobody@sink.test>: Recipient address rejected: User unknown'
check_reply "milter: tempfail, the rule's text only" "RCPT TO:<later@sink.test>" \
	'<** 450 4.2.0 Try later'
# One store: the policy service's counts (section 3) hold for the milter too.
session --from a@quota.test --to x@sink.test
check_reply "milter: the quota the policy service filled" "RCPT TO:<x@sink.test>" \
	'<** 450 4.7.1 Too many messages from a@quota.test'
# One greylist store: a triplet passed through the policy service has passed for the milter.
session --from alice@example.net --to g@grey.test,h@grey.test
check_reply "milter: the triplet the policy service passed" "RCPT TO:<g@grey.test>" \
	'<-  250 2.1.5 Ok'
check_reply "milter: a new triplet greylisted" "RCPT TO:<h@grey.test>" \
	'<** 451 4.7.1 Greylisted, try again later'

# --- 5. the service also in smtpd_end_of_data_restrictions -------------------------------------
echo "# limits counted at END-OF-MESSAGE"
postfix_stop
policy_postfix "smtpd_end_of_data_restrictions = check_policy_service inet:127.0.0.1:$POLICY_PORT" \
	|| { fail "Postfix restart"; exit 1; }
# The service learns from the first END-OF-MESSAGE request that it is listed there.
session --from d@example.net --to x@sink.test
check "eom: a first message queued" queued
session --from b@eom.test --to x@sink.test --quit-after RCPT
check_reply "eom: an abandoned transaction" "RCPT TO:<x@sink.test>" '<-  250 2.1.5 Ok'
session --from b@eom.test --to x@sink.test
check "eom: abandoned not counted, this one queued" queued
session --from b@eom.test --to x@sink.test
check_reply "eom: the 2nd message refused" "RCPT TO:<x@sink.test>" \
	'<** 450 4.7.1 <x@sink.test>: Recipient address rejected: Too many messages from b@eom.test'
session --from c@hold.test --to x@sink.test
check "quarantine: queued" queued
id=$(sed -n 's/^<-  250 2\.0\.0 Ok: queued as \([0-9A-Za-z]*\)$/\1/p' <<<"$SESSION" | tail -n 1)
held() { [ -n "$id" ] && [ -e "$PF_SPOOL/hold/$id" ]; }
check "quarantine: HOLD put $id on hold" wait_for 5 held

check "policy-milter logs the policy service's decisions" \
	milter_log_has 'NOQUEUE: client=.* stage=rcpt rule=unknown-user action=reject'

echo "policy service: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

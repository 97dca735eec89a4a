#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end smoke test: a private Postfix on 127.0.0.1 relays policy-milter's replies
# to swaks, and SIGHUP changes a reply while the daemon keeps running.
#
#   tests/e2e/postfix-e2e.sh PATH/TO/policy-milter
#
# Needs root and the Debian packages postfix and swaks (packaging/install-deps). Exits 77
# (ctest: skipped) when they are missing. Everything it starts is stopped on exit; the
# work directory is removed unless KEEP_E2E_DIR=1.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
rig_require

rig_init policy-milter-e2e
WORK=$RIG_DIR

cleanup() {
	local rc=$?
	rig_stop
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then rig_show_logs; fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the rules ----------------------------------------------------------------------------

write_rules() {  # write_rules UNKNOWN_USER_TEXT
	cat > "$WORK/rules.conf" <<EOF
list no_such_user = file "invalid-recipients.txt"
list full_boxes   = [ "full@example.org" ]

rule "spoofed-sender" at mail
    when sender.domain == "forged.example"
    reject 553 5.7.1 "Sender address rejected: not logged in"

rule "unknown-user" at rcpt
    when recipient in no_such_user
    reject 550 5.1.1 "<{recipient}>: $1"

rule "mailbox-full" at rcpt
    when recipient in full_boxes
    tempfail 452 4.2.2 "<{recipient}>: Mailbox full, try again later"

rule "lottery" at message
    when header["Subject"] matches /lottery winner/i
    reject 554 5.7.1 "Message content rejected"
EOF
	printf '# one address a line\nnobody@example.org\n' > "$WORK/invalid-recipients.txt"
}

# --- start policy-milter and a private Postfix -------------------------------------------------

free_ports SMTP_PORT MILTER_PORT
write_rules "Recipient address rejected: User unknown"
milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
pass "policy-milter listening on inet:$MILTER_PORT@127.0.0.1 (pid $MILTER_PID)"

postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "Postfix listening on 127.0.0.1:$SMTP_PORT"

# --- replies as the client sees them --------------------------------------------------------

expect_line "rcpt reject" \
	"<** 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown" \
	--from alice@example.net --to nobody@example.org --quit-after RCPT
expect_line "rcpt tempfail" \
	"<** 452 4.2.2 <full@example.org>: Mailbox full, try again later" \
	--from alice@example.net --to full@example.org --quit-after RCPT
expect_line "mail reject" \
	"<** 553 5.7.1 Sender address rejected: not logged in" \
	--from someone@forged.example --to bob@example.org --quit-after RCPT
expect_line "message reject" \
	"<** 554 5.7.1 Message content rejected" \
	--from alice@example.net --to bob@example.org --header "Subject: You are a Lottery Winner"
expect_queued "accepted message" \
	--from alice@example.net --to bob@example.org --header "Subject: hello"

milter_log_has 'NOQUEUE: client=unknown\[127\.0\.0\.1\] stage=rcpt rule=unknown-user action=reject reply="550 5\.1\.1 <nobody@example\.org>: Recipient address rejected: User unknown" helo=(<[^ ]+>|-) from=<alice@example\.net> to=<nobody@example\.org>' \
	&& pass "log: rcpt reject line" || fail "log: rcpt reject line missing"
milter_log_has '[0-9A-F]{6,}: client=[^ ]+ stage=message rule=lottery action=reject reply="554 5\.7\.1 Message content rejected"' \
	&& pass "log: message reject line carries the queue ID" || fail "log: message reject line with queue ID missing"

# --- SIGHUP reload: a new reply, the same process ---------------------------------------------

write_rules "Mailbox unavailable, reloaded"
kill -HUP "$MILTER_PID"
wait_for 10 milter_log_has 'reloaded: ' && pass "SIGHUP: reloaded" || fail "SIGHUP: no reload logged"
expect_line "rcpt reject after SIGHUP" \
	"<** 550 5.1.1 <nobody@example.org>: Mailbox unavailable, reloaded" \
	--from alice@example.net --to nobody@example.org --quit-after RCPT
# libmilter's own signal thread would stop the milter a few seconds after a SIGHUP.
sleep 7
alive "$MILTER_PID" && pass "still running 7 s after SIGHUP" || fail "policy-milter died after SIGHUP"
expect_queued "accepted after SIGHUP" --from alice@example.net --to bob@example.org

# A broken reload keeps the running policy.
echo 'rule "broken" at rcpt reject 554 5.7.1 "not allowed at rcpt"' >> "$WORK/rules.conf"
kill -USR1 "$MILTER_PID"
wait_for 10 milter_log_has 'reload of .* failed, keeping the running policy' \
	&& pass "broken reload refused" || fail "broken reload not reported"
expect_line "old policy kept after a broken reload" \
	"<** 550 5.1.1 <nobody@example.org>: Mailbox unavailable, reloaded" \
	--from alice@example.net --to nobody@example.org --quit-after RCPT

# --- SIGTERM stops it ------------------------------------------------------------------------

pid=$MILTER_PID rc=0
milter_stop 20 || rc=$?
case $rc in
	0) pass "SIGTERM: stopped, exit 0" ;;
	124) fail "SIGTERM: still running after 20 s (pid $pid)" ;;
	*) fail "SIGTERM: exit code $rc" ;;
esac
milter_log_has 'stopped: ' && pass "log: stop logged" || fail "log: no stop line"

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

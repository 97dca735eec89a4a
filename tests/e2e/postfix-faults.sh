#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: bad input and faults, through a private Postfix.
#   - input that reply templates must make safe: '%', a bare CR, a folded header, 2 kB
#     addresses (the reply is cut to 512 octets), 1 MB headers;
#   - a reload that changes a reply while a session is open (the open transaction keeps the
#     old policy, the next one gets the new), a reload of a broken rules file (the old policy
#     keeps answering, the log names the error);
#   - the milter killed in the middle of a session (Postfix answers 451: the client keeps
#     the message), then restarted.
#
#   tests/e2e/postfix-faults.sh PATH/TO/policy-milter
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

dialogue_suite policy-milter-faults

write_rules() {  # write_rules UNKNOWN_USER_TEXT [MORE_RULES]
	cat > "$WORK/rules.conf" <<EOF
rule "helo-echo"    at helo    when helo matches /^bad/ reject 550 5.7.1 "Bad HELO {helo}"
rule "sender-echo"  at mail    when sender.domain == "echo.test"
    reject 553 5.7.1 "<{sender}>: Sender address rejected"
rule "rcpt-echo"    at rcpt    when recipient.domain == "echo.test"
    reject 550 5.1.1 "<{recipient}>: $1"
rule "subject-echo" at message when header["Subject"] matches /^echo/
    reject 554 5.7.1 "Subject was: {header[Subject]}"
rule "big-header"   at message when header["X-Big"] matches /^x/
    reject 552 5.3.4 "Header X-Big too long"
${2:-}
EOF
}

reloads() { grep -c 'reloaded: ' "$MILTER_LOG" || true; }
reloaded_since() { [ "$(reloads)" -gt "$1" ]; }  # reloaded_since COUNT

# milter_serving NAME: the milter is alive and answers a new session.
milter_serving() {
	if alive "$MILTER_PID"; then pass "$1: policy-milter still running"; else fail "$1: policy-milter died"; fi
	expect_line "$1: the next session is served" '<** 550 5.1.1 <next@echo.test>: User unknown' \
		--from alice@example.net --to next@echo.test --quit-after RCPT
}

free_ports SMTP_PORT MILTER_PORT
write_rules "User unknown"
milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "policy-milter and Postfix running"

# --- '%' and control characters in what reply texts quote ----------------------------------------

echo "# bad input"
dialogue_open
say $'EHLO bad%s%n%%\rinjected'
say "MAIL FROM:<alice@example.net>"
say QUIT || true
check_line "HELO with % and a bare CR: CR became a space, % kept" \
	'<** 550 5.7.1 Bad HELO bad%s%n%% injected'

dialogue_open
say "EHLO client.example"
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<100%_sure%s%n%%@echo.test>"
say $'RCPT TO:<cr\rinjected@echo.test>'
say QUIT || true
check_line "recipient with %: relayed as sent" '<** 550 5.1.1 <100%_sure%s%n%%@echo.test>: User unknown'
check_line "recipient with a bare CR: refused by Postfix before the milter" \
	'<** 501 5.1.3 Bad recipient address syntax'

dialogue_open
say "EHLO client.example"
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<bob@example.org>"
say_data $'From: alice@example.net\nSubject: echo line one\n\tline two\n\nbody'
say QUIT || true
check_line "folded Subject quoted in a reply: CR, LF and TAB became spaces" \
	'<** 554 5.7.1 Subject was: echo line one  line two'

long=$(printf 'a%.0s' $(seq 2000))
dialogue_open
say "EHLO client.example"
say "MAIL FROM:<$long@echo.test>"
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<$long@echo.test>"
say QUIT || true
full="553 5.7.1 <$long@echo.test>: Sender address rejected"
check_line "2 kB sender: reply cut to 510 octets + CRLF" "<** ${full:0:510}"
full="550 5.1.1 <$long@echo.test>: User unknown"
check_line "2 kB recipient: reply cut to 510 octets + CRLF" "<** ${full:0:510}"
if milter_log_has "stage=rcpt rule=rcpt-echo action=reject reply=\"${full:0:510}\" helo="; then
	pass "2 kB recipient: the log shows the reply as the client saw it"
else
	fail "2 kB recipient: no log line with the cut reply"
fi

# 1 MB headers. Postfix hands a milter at most about 60 kB of one header (measured with
# Postfix 3.7: 50 kB arrive whole, 60 kB to 1 MB arrive cut to about 60000 bytes), below
# libmilter's 64 KiB packet limit, so the rule sees the header's start.
x997=$(head -c 997 /dev/zero | tr '\0' x)
folded="X-Big: $x997"
for _ in $(seq 1050); do folded+=$'\n '$x997; done  # 1050 lines of 998 octets
dialogue_open
say "EHLO client.example"
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<bob@example.org>"
say_data "$folded"$'\nSubject: folded\n\nbody'
check_line "1 MB folded header: refused after the dot" '<** 552 5.3.4 Header X-Big too long'
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<bob@example.org>"
say_data "X-Big: $(head -c 1048576 /dev/zero | tr '\0' x)"$'\nSubject: one line\n\nbody'
check_line "1 MB one-line header: refused after the dot" '<** 552 5.3.4 Header X-Big too long'
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<bob@example.org>"
say_data "X-Other: $(head -c 1048576 /dev/zero | tr '\0' y)"$'\nSubject: no rule\n\nbody'
check_session "1 MB header no rule matches: accepted" "$QUEUED_ERE"
say QUIT || true
if milter_log_has 'local error|error:'; then fail "1 MB headers: policy-milter logged an error"
else pass "1 MB headers: no error in policy-milter's log"; fi
if grep -E 'warning: .*milter|fatal:|panic:' "$PF_MAILLOG"; then fail "1 MB headers: Postfix warned about the milter"
else pass "1 MB headers: no milter warning in Postfix's log"; fi
milter_serving "after 1 MB headers"

# --- reloads ------------------------------------------------------------------------------------

echo "# reload"
dialogue_open
say "EHLO client.example"
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<first@echo.test>"
before=$(reloads)
write_rules "Mailbox unavailable (reloaded)"
kill -HUP "$MILTER_PID"
if wait_for 10 reloaded_since "$before"; then pass "SIGHUP with a session open: reloaded"
else fail "SIGHUP with a session open: no reload logged"; fi
say "RCPT TO:<second@echo.test>"
say RSET
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<third@echo.test>"
say QUIT || true
check_line "before the reload" '<** 550 5.1.1 <first@echo.test>: User unknown'
check_line "same transaction after the reload: old policy" '<** 550 5.1.1 <second@echo.test>: User unknown'
check_line "next transaction, same session: new policy" \
	'<** 550 5.1.1 <third@echo.test>: Mailbox unavailable (reloaded)'
expect_line "new session: new policy" '<** 550 5.1.1 <fourth@echo.test>: Mailbox unavailable (reloaded)' \
	--from alice@example.net --to fourth@echo.test --quit-after RCPT

# Rules that need what an open connection did not ask the MTA for when it began (here:
# quarantine, which the old rules did not use) cannot apply to it: it keeps its old rules,
# whole, to its end; new connections get the new ones.
held_ids() { ls "$PF_SPOOL/hold" 2>/dev/null || true; }
held() { held_ids | grep -qx -- "$1"; }
dialogue_open
say "EHLO client.example"
before=$(reloads)
write_rules "Mailbox unavailable (reloaded)" 'rule "hold" at message when header["Subject"] == "hold me" quarantine "held"'
kill -HUP "$MILTER_PID"
wait_for 10 reloaded_since "$before" || fail "quarantine rule added: no reload logged"
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<bob@example.org>"
say_data $'Subject: hold me\n\nbody'
say QUIT || true
old_session=$(sed -n 's/^<-  250 2\.0\.0 Ok: queued as \([0-9A-F]*\)$/\1/p' <<<"$SESSION")
SESSION=$(smtp_session --helo client.example --from alice@example.net --to bob@example.org \
	--header "Subject: hold me")
new_session=$(sed -n 's/^<-  250 2\.0\.0 Ok: queued as \([0-9A-F]*\)$/\1/p' <<<"$SESSION")
wait_for 5 held "${new_session:-none}" || true
if [ -n "$old_session" ] && ! held "$old_session"; then
	pass "quarantine rule added, session open before: its next message ($old_session) not held, old rules kept"
else
	fail "quarantine rule added, session open before: '${old_session:-not queued}' held or refused"
fi
if [ -n "$new_session" ] && held "$new_session"; then
	pass "quarantine rule added, new session: its message ($new_session) held"
else
	fail "quarantine rule added, new session: '${new_session:-not queued}' not held"
fi
if milter_log_has 'smfi_(addheader|quarantine) .*failed'; then
	fail "quarantine rule added: policy-milter logged a failed action"
else
	pass "quarantine rule added: no failed smfi_quarantine (the open connection kept its rules)"
fi
postsuper -c "$PF_CONF" -d ALL hold >/dev/null 2>&1 || true  # the queue is checked below

# A broken rules file: the running policy stays, the log has the loader's diagnostic.
printf 'rule "broken" at rcpt\n    reject 554 5.7.1 "not a code for rcpt"\n' >> "$WORK/rules.conf"
diagnostic=$("$MILTER_BIN" --config "$WORK/empty.conf" --check --rules "$WORK/rules.conf" | grep "^$WORK/rules.conf:.*: error: " || true)
kill -HUP "$MILTER_PID"
if wait_for 10 milter_log_has 'reload of .* failed, keeping the running policy'; then
	pass "broken reload: $(grep -o 'reload of .* failed, keeping the running policy.*' "$MILTER_LOG")"
else
	fail "broken reload: no failure logged"
fi
if [ -n "$diagnostic" ] && grep -qF -- "error: $diagnostic" "$MILTER_LOG"; then
	pass "broken reload: the log names the error: $diagnostic"
else
	fail "broken reload: the log lacks the diagnostic '$diagnostic'"
fi
expect_line "broken reload: the old policy answers" \
	'<** 550 5.1.1 <fifth@echo.test>: Mailbox unavailable (reloaded)' \
	--from alice@example.net --to fifth@echo.test --quit-after RCPT
write_rules "User unknown"
before=$(reloads)
kill -HUP "$MILTER_PID"
if wait_for 10 reloaded_since "$before"; then pass "fixed rules: reloaded"; else fail "fixed rules: no reload"; fi
milter_serving "after the reloads"

# --- the milter killed in the middle of a session -------------------------------------------------

echo "# milter killed"
save_log() { cp "$MILTER_LOG" "$WORK/milter.$1.log"; }
kill_milter() {  # SIGKILL, and collect it at once (no "Killed" notice from bash later)
	kill -KILL "$MILTER_PID"
	wait "$MILTER_PID" 2>/dev/null || true
	MILTER_PID=""
}
restart_milter() {
	if milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT"; then
		pass "policy-milter restarted"
	else
		fail "policy-milter did not restart"; exit 1
	fi
}

dialogue_open
say "EHLO client.example"
say "MAIL FROM:<alice@example.net>"
kill_milter
say "RCPT TO:<bob@example.org>"
say QUIT || true
check_line "killed after MAIL FROM: RCPT answered 451 (milter_default_action = tempfail)" \
	'<** 451 4.7.1 Service unavailable - try again later'
expect_line "milter down: a new session gets 451 at MAIL FROM" \
	'<** 451 4.7.1 Service unavailable - try again later' \
	--from alice@example.net --to bob@example.org --quit-after RCPT
save_log 1
restart_milter

message=$'From: alice@example.net\nTo: bob@example.org\nSubject: keep me\n\nImportant.'
dialogue_open
say "EHLO client.example"
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<bob@example.org>"
say DATA
kill_milter
send_message "$message" || true
say QUIT || true
check_line "killed during DATA: the final dot answered 451" \
	'<** 451 4.7.1 Service unavailable - try again later'
# Messages accepted earlier leave through the discard transport at once; wait for that.
queue_empty() { postqueue -c "$PF_CONF" -p | grep -q '^Mail queue is empty'; }
if wait_for 10 queue_empty; then
	pass "killed during DATA: nothing queued unchecked (the client keeps the message)"
else
	fail "killed during DATA: Postfix queued something:"; postqueue -c "$PF_CONF" -p | sed 's/^/     /'
fi
save_log 2
restart_milter
dialogue_open
say "EHLO client.example"
say "MAIL FROM:<alice@example.net>"
say "RCPT TO:<bob@example.org>"
say_data "$message"
say QUIT || true
check_session "the client's retry after the restart: queued" "$QUEUED_ERE"

# --- stop -----------------------------------------------------------------------------------------

pid=$MILTER_PID rc=0
milter_stop 20 || rc=$?
if [ $rc -eq 0 ]; then pass "SIGTERM: policy-milter stopped, exit 0"
else fail "SIGTERM: exit code $rc (pid $pid)"; fi

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

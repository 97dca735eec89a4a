#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: greylisting through a private Postfix (issue 16; policy-milter.rules(5),
# GREYLISTING), with the memory store and its state file:
#   - the first attempt of a triplet gets "451 4.7.1 Greylisted, try again later" on the
#     wire, a retry before the delay (2 s here) the same, a retry after it is queued;
#   - each recipient of a message is judged on its own;
#   - a rule's own reply with {greylist.remaining}, and 450 at rcpt;
#   - whole-message greylisting at DATA;
#   - the decision line says action=tempfail with the greylist rule;
#   - the entries survive a reload, and a restart (saved in state-dir at stop);
#   - a corrupt state file: a warning, the daemon starts with no entries and serves.
#
#   tests/e2e/postfix-greylist.sh PATH/TO/policy-milter
#
# Needs root, postfix and swaks; exits 77 (ctest: skipped) without them.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
rig_require

rig_init policy-milter-greylist
WORK=$RIG_DIR

cleanup() {
	local rc=$?
	rig_stop
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then rig_show_logs; fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$WORK/rules.conf" <<'EOF2'
rule "greylist" at rcpt
    when recipient.domain == "grey.test"
    greylist delay 2s
rule "greylist-own-reply" at rcpt
    when recipient.domain == "wait.test"
    greylist delay 1h window 2h 450 4.7.1 "Greylisted for {greylist.remaining} more seconds"
rule "greylist-message" at data
    when sender.domain == "whole.test"
    greylist delay 2s
EOF2
STATE=$WORK/state
mkdir -p "$STATE"
GREY="<** 451 4.7.1 Greylisted, try again later"

start() {
	milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
		--state-dir "$STATE" --greylist-auto-whitelist 0 --greylist-save-interval 0 \
		|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
}

free_ports SMTP_PORT MILTER_PORT
start
pass "policy-milter listening (pid $MILTER_PID)"
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "Postfix listening on 127.0.0.1:$SMTP_PORT"

# --- first attempt, early retry, retry after the delay -------------------------------------

expect_line "first attempt" "$GREY" --from alice@example.net --to bob@grey.test --quit-after RCPT
expect_line "retry before the delay" "$GREY" --from alice@example.net --to bob@grey.test \
	--quit-after RCPT
sleep 2.2
expect_queued "retry after the delay" --from alice@example.net --to bob@grey.test
expect_queued "a passed triplet stays passed" --from Alice@Example.NET --to BOB@grey.test
# BATV: a new tag each message, the same triplet
expect_queued "BATV tag normalised" --from prvs=0123abcdef=alice@example.net --to bob@grey.test
expect_line "another recipient, its own triplet" "$GREY" \
	--from alice@example.net --to carol@grey.test --quit-after RCPT
milter_log_has 'NOQUEUE: client=[^ ]+ stage=rcpt rule=greylist action=tempfail reply="451 4\.7\.1 Greylisted, try again later" .*to=<carol@grey\.test>' \
	&& pass "log: action=tempfail rule=greylist" || fail "log: no greylist decision line"

# several recipients: bob passed, dave is new; Postfix takes the message for bob alone
SESSION=$(smtp_session --helo client.example --from alice@example.net \
	--to bob@grey.test,dave@grey.test)
grep -qxF "$GREY" <<<"$SESSION" && grep -qxE -- "$QUEUED_ERE" <<<"$SESSION" \
	&& pass "each recipient judged on its own: dave refused, the message queued for bob" \
	|| fail "several recipients: $(smtp_commands <<<"$SESSION" | tr '\n' '|')"

expect_reply "own reply, 450, {greylist.remaining}" \
	'^<\*\* 450 4\.7\.1 Greylisted for 3[0-9]{3} more seconds$' \
	--helo client.example --from alice@example.net --to x@wait.test --quit-after RCPT

expect_line "whole message at DATA" "<** 451 4.7.1 Greylisted, try again later" \
	--from a@whole.test --to bob@example.org
sleep 2.2
expect_queued "whole message after the delay" --from a@whole.test --to bob@example.org

# --- a reload keeps the entries ----------------------------------------------------------------

expect_line "greylisted before a reload" "$GREY" --from erin@example.net --to bob@grey.test \
	--quit-after RCPT
kill -HUP "$MILTER_PID"
wait_for 10 milter_log_has 'reloaded: ' && pass "SIGHUP: reloaded" || fail "SIGHUP: no reload"
sleep 2.2
expect_queued "passes after the delay across the reload" --from erin@example.net --to bob@grey.test

# --- a restart keeps them: saved in state-dir at stop, loaded at start --------------------------

expect_line "greylisted before the restart" "$GREY" --from frank@example.net --to bob@grey.test \
	--quit-after RCPT
milter_stop 20 && pass "stopped" || fail "stop: exit code $?"
[ -s "$STATE/greylist.state" ] && pass "state file written at stop" || fail "no $STATE/greylist.state"
[ ! -e "$STATE/greylist.state.tmp" ] && pass "no temporary file left" || fail "greylist.state.tmp left"
sleep 2.2
start
milter_log_has 'greylist: [0-9]+ entries loaded from ' && pass "log: entries loaded" \
	|| fail "log: no 'entries loaded' line"
expect_queued "passed before the restart: still passes" --from alice@example.net --to bob@grey.test
expect_queued "greylisted before the restart: passes after its delay" \
	--from frank@example.net --to bob@grey.test
expect_line "new after the restart: greylisted" "$GREY" --from gina@example.net --to bob@grey.test \
	--quit-after RCPT

# --- a corrupt state file: warned, started empty ----------------------------------------------

milter_stop 20 || true
head -c 100 "$STATE/greylist.state" > "$STATE/cut" && mv "$STATE/cut" "$STATE/greylist.state"
start
milter_log_has 'greylist: .*greylist\.state:[0-9]+: .*starting with no entries' \
	&& pass "corrupt state file: warning logged" || fail "corrupt state file: no warning"
expect_line "corrupt state file: started empty" "$GREY" --from alice@example.net --to bob@grey.test \
	--quit-after RCPT

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

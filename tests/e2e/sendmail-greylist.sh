#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: greylisting through a real Sendmail 8.17 (issue 16), as milter-greylist
# users would run it: the first attempt gets "451 4.7.1 Greylisted, try again later" at
# RCPT on the wire, a retry before the delay (2 s) the same, a retry after it is queued;
# whole-message greylisting at DATA likewise.
#
#   tests/e2e/sendmail-greylist.sh PATH/TO/policy-milter
#
# Needs root, swaks, m4, unshare and the unpacked Sendmail (packaging/install-deps), else
# exits 77 (ctest: skipped).
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tests/e2e/lib/sendmail.sh
. "$(dirname "$0")/lib/sendmail.sh"
missing=$(sendmail_missing)
[ -z "$missing" ] || skip "$missing"

work_init policy-milter-sendmail-greylist
WORK=$RIG_DIR

cleanup() {
	local rc=$?
	sendmail_stop
	milter_stop 20 || true
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then
		echo "--- policy-milter log ($MILTER_LOG)"; tail -n 60 "$MILTER_LOG" 2>/dev/null || true
		sendmail_show_logs
	fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# expect_answer NAME COMMAND EXPECTED_LINE SWAKS_ARG...: the answer to the first COMMAND
# of one session is exactly EXPECTED_LINE (as in sendmail-e2e.sh).
expect_answer() {
	local name=$1 command=$2 expected=$3 got; shift 3
	SESSION=$(smtp_session --helo client.example "$@")
	got=$(awk -v c=" -> $command" 'found { print; exit }
		$0 == c || index($0, c " ") == 1 { found = 1 }' <<<"$SESSION")
	if [ "$got" = "$expected" ]; then
		pass "$name: $command -> $got"
	else
		fail "$name: the answer to $command is not \"$expected\", the session was:"
		smtp_commands <<<"$SESSION" | sed 's/^/     /'
	fi
}

cat > "$WORK/rules.conf" <<'EOF2'
rule "greylist" at rcpt
    when recipient.domain == "grey.test"
    greylist delay 2s
rule "greylist-message" at data
    when sender.domain == "whole.test"
    greylist delay 2s
EOF2
mkdir -p "$WORK/state"
GREY="<** 451 4.7.1 Greylisted, try again later"

free_ports SMTP_PORT MILTER_PORT
milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
	--state-dir "$WORK/state" --greylist-auto-whitelist 0 \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
pass "policy-milter listening (pid $MILTER_PID)"
sendmail_start inet "$SMTP_PORT" "inet:$MILTER_PORT@127.0.0.1" \
	|| { fail "Sendmail did not start"; exit 1; }
pass "Sendmail listening on 127.0.0.1:$SMTP_PORT (pid $SM_PID)"

expect_answer "first attempt" RCPT "$GREY" --from alice@example.net --to bob@grey.test \
	--quit-after RCPT
expect_answer "retry before the delay" RCPT "$GREY" --from alice@example.net --to bob@grey.test \
	--quit-after RCPT
sleep 2.2
expect_reply "retry after the delay" "$QUEUED_ERE" --helo client.example \
	--from alice@example.net --to bob@grey.test
expect_answer "whole message at DATA" DATA "$GREY" --from a@whole.test --to bob@example.org
sleep 2.2
expect_reply "whole message after the delay" "$QUEUED_ERE" --helo client.example \
	--from a@whole.test --to bob@example.org
milter_log_has ': client=[^ ]+ stage=rcpt rule=greylist action=tempfail reply="451 4\.7\.1 Greylisted, try again later"' \
	&& pass "log: action=tempfail rule=greylist" || fail "log: no greylist decision line"

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

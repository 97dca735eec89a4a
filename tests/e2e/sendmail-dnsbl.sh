#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: DNS lists and the MTA's own reverse lookup through a real Sendmail 8.17 (as in
# sendmail-e2e.sh), with a real rbldnsd on a loopback port. Sendmail keeps neither the code
# nor the text of a connect refusal, so the dnsbl rule here decides at MAIL; it puts the
# address in front of a 5xx text at MAIL. client.resolve and client.ptr come from Sendmail's
# {client_resolve} and {client_ptr} (its private hosts file names 127.0.0.1 only).
#
#   tests/e2e/sendmail-dnsbl.sh PATH/TO/policy-milter
#
# Needs root, swaks, m4, unshare, rbldnsd and the unpacked Sendmail; exits 77 without them.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tests/e2e/lib/sendmail.sh
. "$(dirname "$0")/lib/sendmail.sh"
# shellcheck source=tests/e2e/lib/dialogue.sh
. "$(dirname "$0")/lib/dialogue.sh"
missing=$(sendmail_missing)
[ -z "$missing" ] || skip "$missing"
[ -x /usr/sbin/rbldnsd ] || skip "rbldnsd is not installed"

work_init policy-milter-sendmail-dnsbl
WORK=$RIG_DIR RBL_PID=""

cleanup() {
	local rc=$?
	dialogue_close
	sendmail_stop
	milter_stop 20 || true
	[ -z "$RBL_PID" ] || kill "$RBL_PID" 2>/dev/null || true
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then
		echo "--- policy-milter log ($MILTER_LOG)"; tail -n 60 "$MILTER_LOG" 2>/dev/null || true
		sendmail_show_logs
	fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chmod 755 "$WORK"
printf ':127.0.0.2:Blocked $\n127.0.0.2\n' > "$WORK/ip4"
printf ':127.0.1.2:Domain $ listed\nspam.example\n' > "$WORK/dbl"
chmod 644 "$WORK/ip4" "$WORK/dbl"
free_ports SMTP_PORT MILTER_PORT RBL_PORT
/usr/sbin/rbldnsd -n -q -b "127.0.0.1/$RBL_PORT" -w "$WORK" zen.test:ip4set:ip4 \
	dbl.test:dnset:dbl > "$WORK/rbldnsd.log" 2>&1 &
RBL_PID=$!

cat > "$WORK/rules.conf" <<'EOF'
list zen = dnsbl "zen.test"
list dbl = rhsbl "dbl.test"

rule "dnsbl" at mail
    when client.ip in zen
    reject 550 5.7.1 "Client [{client.ip}] blocked: {dnsbl.txt}"

rule "rhsbl" at mail
    when sender.domain in dbl
    reject 550 5.7.1 "Sender domain {sender.domain} listed: {dnsbl.txt}"

rule "resolve" at mail
    when sender == "resolve@example.org"
    reject 550 5.7.1 "resolve={client.resolve} ptr={client.ptr}"
EOF

milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
	--dns-servers "127.0.0.1:$RBL_PORT" \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
sendmail_start inet "$SMTP_PORT" "inet:$MILTER_PORT@127.0.0.1" \
	|| { fail "Sendmail did not start"; exit 1; }
pass "rbldnsd, policy-milter and Sendmail running"

dialogue_open 127.0.0.2
say "EHLO client.example"; say "MAIL FROM:<alice@example.net>" || true; say QUIT || true
check_line "dnsbl at MAIL" "<** 550 5.7.1 <alice@example.net>... Client [127.0.0.2] blocked: Blocked 127.0.0.2"

dialogue_open 127.0.0.1
say "EHLO client.example"; say "MAIL FROM:<bob@spam.example>" || true; say QUIT || true
check_line "rhsbl at MAIL" "<** 550 5.7.1 <bob@spam.example>... Sender domain spam.example listed: Domain spam.example listed"

dialogue_open 127.0.0.1
say "EHLO client.example"; say "MAIL FROM:<resolve@example.org>" || true; say QUIT || true
check_line "client.resolve ok from {client_resolve}" \
	"<** 550 5.7.1 <resolve@example.org>... resolve=ok ptr=$SM_HOSTNAME"

dialogue_open 127.0.0.3
say "EHLO client.example"; say "MAIL FROM:<resolve@example.org>" || true; say QUIT || true
check_line "client.resolve without a PTR name" \
	"<** 550 5.7.1 <resolve@example.org>... resolve=fail ptr=unknown"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: DNS lists (policy-milter.rules(5), DNS lists) through a private Postfix, with a
# real rbldnsd on a loopback port answering a dnsbl (ip4set) and an rhsbl (dnset) zone.
# Checks the exact reply lines the client sees (a connect reject's text comes at MAIL FROM),
# {dnsbl.txt}, a hostile HELO never queried, then a DNS server that never answers: the MTA is
# held at most dns-timeout, the list fails open with a warning naming its zone, and an
# `on-error tempfail` list makes the stage's default tempfail.
#
#   tests/e2e/postfix-dnsbl.sh PATH/TO/policy-milter
#
# Needs root, postfix, swaks and rbldnsd; exits 77 (ctest: skipped) without them.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
# shellcheck source=tests/e2e/lib/dialogue.sh
. "$(dirname "$0")/lib/dialogue.sh"
rig_require
command -v rbldnsd >/dev/null || [ -x /usr/sbin/rbldnsd ] || skip "rbldnsd is not installed"

RBL_PID="" SILENT_PID=""
dnsbl_cleanup() {
	[ -z "$RBL_PID" ] || kill "$RBL_PID" 2>/dev/null || true
	[ -z "$SILENT_PID" ] || kill "$SILENT_PID" 2>/dev/null || true
	dialogue_suite_cleanup
}
dialogue_suite policy-milter-dnsbl
trap dnsbl_cleanup EXIT

# --- rbldnsd and a server that never answers ------------------------------------------------

chmod 755 "$WORK"
cat > "$WORK/ip4" <<'EOF'
:127.0.0.2:Blocked $, see https://example.org/q?ip=$
127.0.0.2
127.0.0.10 :127.0.0.10:Listed in zen4
127.0.0.254 :127.255.255.254:Query refused
EOF
cat > "$WORK/dbl" <<'EOF'
:127.0.1.2:Domain $ listed
spam.example
EOF
chmod 644 "$WORK/ip4" "$WORK/dbl"
free_ports SMTP_PORT MILTER_PORT RBL_PORT SILENT_PORT
mkdir "$WORK/q" && chown rbldns "$WORK/q"  # its query log, written as user rbldns
/usr/sbin/rbldnsd -n -q -b "127.0.0.1/$RBL_PORT" -w "$WORK" -l "+$WORK/q/queries.log" zen.test:ip4set:ip4 \
	dbl.test:dnset:dbl > "$WORK/rbldnsd.log" 2>&1 &
RBL_PID=$!
# A UDP socket that reads nothing and answers nothing.
python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",int(sys.argv[1]))); time.sleep(3600)' \
	"$SILENT_PORT" &
SILENT_PID=$!

cat > "$WORK/rules.conf" <<'EOF'
list zen  = dnsbl "zen.test"
list zen4 = dnsbl "zen.test" returns [ 127.0.0.4, 127.0.0.10-127.0.0.11 ]
list dbl  = rhsbl "dbl.test"

rule "zen4" at connect
    when client.ip in zen4
    reject 554 5.7.1 "zen4: {dnsbl.txt}"

rule "dnsbl" at connect
    when client.ip in zen
    reject 554 5.7.1 "Service unavailable; client [{client.ip}] blocked: {dnsbl.txt}"

rule "helo" at mail
    when helo in dbl
    reject 550 5.7.1 "HELO {helo} listed"

rule "rhsbl" at mail
    when sender.domain in dbl
    reject 550 5.7.1 "Sender domain {sender.domain} listed"
EOF

milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
	--dns-servers "127.0.0.1:$RBL_PORT" --dns-timeout 2s \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "rbldnsd, policy-milter and Postfix running"

# --- listed and not listed --------------------------------------------------------------

echo "# dnsbl at connect"
dialogue_open 127.0.0.2
say "EHLO client.example"; say "MAIL FROM:<alice@example.net>"; say QUIT || true
check_line "dnsbl: greeting" '<** 554 e2e.localdomain ESMTP not accepting connections'
check_line "dnsbl: the milter's reply at MAIL FROM, with the TXT record" \
	'<** 554 5.7.1 Service unavailable; client [127.0.0.2] blocked: Blocked 127.0.0.2, see https://example.org/q?ip=127.0.0.2'

dialogue_open 127.0.0.10
say "EHLO client.example"; say "MAIL FROM:<alice@example.net>"; say QUIT || true
check_line "returns: 127.0.0.10 in zen4" '<** 554 5.7.1 zen4: Listed in zen4'

dialogue_open 127.0.0.254
say "EHLO client.example"; say "MAIL FROM:<alice@example.net>"; say "RCPT TO:<bob@example.org>"
say QUIT || true
check_line "127.255.255.254 never lists" '<-  250 2.1.5 Ok'
wait_for 5 milter_log_has 'dns list zen \(zen\.test\) answered 127\.255\.255\.x for 254\.0\.0\.127\.zen\.test' \
	&& pass "127.255.255.x logged as an error" || fail "no error line for 127.255.255.254"

expect_queued "not listed: 127.0.0.1 passes" --from alice@example.net --to bob@example.org

echo "# rhsbl at mail"
expect_line "rhsbl: sender domain" "<** 550 5.7.1 Sender domain Spam.Example listed" \
	--from bob@Spam.Example --to bob@example.org --quit-after RCPT
expect_line "rhsbl: HELO" "<** 550 5.7.1 HELO spam.example listed" \
	--ehlo spam.example --from alice@example.net --to bob@example.org --quit-after RCPT
# Hostile names are never sent to DNS (and so are not listed).
long=$(printf 'a%.0s' $(seq 70))
expect_queued "hostile HELO not queried" --ehlo "$long.spam.example" \
	--from alice@example.net --to bob@example.org
grep -q "spam.example.dbl.test" "$WORK/q/queries.log" && pass "rbldnsd logs its queries" \
	|| fail "rbldnsd query log empty"
grep -q "$long" "$WORK/q/queries.log" && fail "rbldnsd saw the hostile name" \
	|| pass "rbldnsd never saw the hostile name"

# --- a DNS server that never answers -----------------------------------------------------

echo "# timeout"
milter_stop 20 || true
cat >> "$WORK/rules.conf" <<'EOF'

list strict = dnsbl "strict.test" on-error tempfail
rule "strict" at mail
    when client.ip in strict
    reject 550 5.7.1 "strict"
EOF
milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --log-level debug \
	--dns-servers "127.0.0.1:$SILENT_PORT" --dns-timeout 1s \
	|| { fail "policy-milter did not listen on $MILTER_PORT (timeout run)"; exit 1; }
# A first session: Postfix's smtpd reconnects to the restarted milter (seconds, not ours).
dialogue_open 127.0.0.1; say QUIT || true
# The greeting waits for the milter's connect: timed on a plain bash socket (the dialogue's
# relay takes seconds to start on a loaded machine).
start=$(date +%s%N)
exec {smtp}<>"/dev/tcp/127.0.0.1/$SMTP_PORT"
IFS= read -r -t 10 greeting <&"$smtp" || true
connect_ms=$((($(date +%s%N) - start) / 1000000))
printf 'QUIT\r\n' >&"$smtp"
exec {smtp}>&-
case $greeting in 220*) pass "greeting: ${greeting%$'\r'}" ;; *) fail "greeting: '$greeting'" ;; esac
dialogue_open 127.0.0.1
say "EHLO client.example"
start=$(date +%s%N)
say "MAIL FROM:<alice@example.net>" || true
mail_ms=$((($(date +%s%N) - start) / 1000000))
say QUIT || true
check_line "on-error tempfail: 451 4.4.3 at MAIL" '<** 451 4.4.3 DNS list lookup failed, try again later'
# Connect waits for zen (1 s at most); MAIL for strict, asked at connect already.
# Two lists at connect (zen, zen4: one name), three at MAIL (strict, dbl twice): each stage
# waits one dns-timeout at most, not one per list (less when c-ares gives up on a query
# the warm-up session started). 1.5 s leaves room for a loaded machine.
[ "$connect_ms" -lt 1500 ] \
	&& pass "greeting after ${connect_ms} ms (dns-timeout 1s)" \
	|| fail "greeting after ${connect_ms} ms, not about dns-timeout 1s"
[ "$mail_ms" -lt 1500 ] \
	&& pass "MAIL answered after ${mail_ms} ms (dns-timeout 1s, three lookups)" \
	|| fail "MAIL answered after ${mail_ms} ms, not about dns-timeout 1s"
milter_log_has 'dns list zen \(zen\.test\): lookup of 1\.0\.0\.127\.zen\.test failed: timeout; not listed' \
	&& pass "timeout: warning names the zone" || fail "timeout: no warning naming zen.test"

# A reload while a stage waits for its lookups: the session keeps the policy it started
# MAIL with (the reloaded one has no strict list), the daemon goes on.
dialogue_open 127.0.0.1
say "EHLO client.example"
sed -i '/^list strict/,$d' "$WORK/rules.conf"
(sleep 0.3; kill -HUP "$MILTER_PID") &
say "MAIL FROM:<alice@example.net>" || true
say QUIT || true
wait_for 10 milter_log_has 'reloaded: 4 rules' && pass "reloaded while MAIL waited for DNS" \
	|| fail "no reload logged"
[ "$(grep -c '451 4\.4\.3' <<<"$SESSION")" = 1 ] \
	&& pass "the waiting MAIL kept its policy: 451 4.4.3" || fail "the waiting MAIL: $REPLY"
expect_queued "the next session runs the reloaded policy" --from alice@example.net --to bob@example.org

pid=$MILTER_PID rc=0
milter_stop 20 || rc=$?
[ $rc -eq 0 ] && pass "SIGTERM: exit 0 with lookups in flight" || fail "SIGTERM: exit $rc (pid $pid)"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

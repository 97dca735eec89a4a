#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Two MTAs share one limit through Redis: one redis-server, two policy-milter processes and
# two private Postfix instances, each Postfix with its own milter, both milters with
# store = redis://... A limit of 100 messages per hour per sender lets exactly 100 through
# across both, and the 101st gets the configured reply whichever Postfix receives it. With
# Redis stopped, store-on-error = tempfail answers 451 4.3.0 and nothing crashes; once
# Redis is back, the limit holds again (how soon is printed: about a second when the
# machine is idle; only an upper bound of 30 s is asserted: on a shared, loaded machine
# the 50 ms Redis timeout can fail the milters' probes for seconds).
#
#   tests/e2e/redis-shared-limit.sh PATH/TO/policy-milter
#
# Needs root, postfix, swaks, python3 and redis-server (packaging/install-deps); exits 77
# (ctest: skipped) without them. Starts its own redis-server on a free loopback port; a
# system Redis is neither needed nor touched. KEEP_E2E_DIR=1 keeps the work directory.
# PM_E2E_SLOWDOWN=N (set by ctest in the ASan build, a Debug build several times slower)
# multiplies the Redis timeout and the 30 s bound by N.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
rig_require
for tool in redis-server redis-cli; do command -v $tool >/dev/null || skip "$tool is not installed"; done

rig_init policy-milter-redis
WORK=$RIG_DIR
PID_A="" PID_B=""

# Two of everything: tools/postfix-rig.sh keeps one Postfix and one milter in globals, so each
# instance is selected before its helper runs.
use_postfix() {  # use_postfix a|b
	PF_CONF=$WORK/postfix-$1/etc PF_SPOOL=$WORK/postfix-$1/spool PF_DATA=$WORK/postfix-$1/data
	PF_MAILLOG=$WORK/postfix-$1/maillog
	if [ "$1" = a ]; then SMTP_PORT=$SMTP_A; else SMTP_PORT=$SMTP_B; fi
}

cleanup() {
	local rc=$?
	for i in a b; do use_postfix $i; postfix_stop; done
	MILTER_PID=$PID_A; milter_stop 20 || true
	MILTER_PID=$PID_B; milter_stop 20 || true
	redis_stop
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then
		for i in a b; do
			echo "--- policy-milter $i"; tail -n 40 "$WORK/milter-$i.log" 2>/dev/null || true
			echo "--- Postfix $i"; tail -n 20 "$WORK/postfix-$i/maillog" 2>/dev/null || true
		done
		echo "--- redis"; tail -n 20 "$WORK/redis.log" 2>/dev/null || true
	fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# send N FROM SMTP_PORT...: N messages from FROM, spread over the given Postfix ports in
# turn, each in its own transaction; prints how many were queued.
send() {
	python3 - "$@" <<-'EOF'
	import smtplib, sys
	n, sender, ports = int(sys.argv[1]), sys.argv[2], [int(p) for p in sys.argv[3:]]
	conns = [smtplib.SMTP("127.0.0.1", p, timeout=30) for p in ports]
	for c in conns: c.ehlo("client.example")
	queued = 0
	for i in range(n):
	    c = conns[i % len(conns)]
	    try:
	        c.sendmail(sender, ["bob@example.org"], f"Subject: {i}\r\n\r\nmessage {i}\r\n")
	        queued += 1
	    except smtplib.SMTPException:
	        c.rset()
	for c in conns: c.quit()
	print(queued)
	EOF
}

# back_within T0 PORT FROM SLOWDOWN: how long after T0 (date +%s%N) MAIL FROM stops getting 451
# (ms), and the reply it then gets. A new session every 50 ms, for at most 30 s × SLOWDOWN.
back_within() {
	python3 - "$@" <<-'EOF'
	import smtplib, sys, time
	start, port, sender = int(sys.argv[1]) / 1e9, int(sys.argv[2]), sys.argv[3]
	while True:
	    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
	    s.ehlo("client.example")
	    code, text = s.mail(sender)
	    s.quit()
	    elapsed = int((time.time() - start) * 1000)
	    if code != 451 or elapsed > 30000 * int(sys.argv[4]):
	        print(elapsed, code, text.decode())
	        break
	    time.sleep(0.05)
	EOF
}

# --- start Redis, two milters, two Postfix -------------------------------------------------

free_ports REDIS_PORT SMTP_A SMTP_B MILTER_A MILTER_B
redis_start "$WORK" "$REDIS_PORT" || { fail "redis-server did not listen on $REDIS_PORT"; exit 1; }
pass "redis-server on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"

cat > "$WORK/rules.conf" <<'EOF'
limit "sender-hourly" at mail
    key sender
    max 100 per 1h
    tempfail 452 4.7.1 "Too many messages from {sender}, try again later"
EOF
SLOWDOWN=${PM_E2E_SLOWDOWN:-1}
REDIS_TIMEOUT=$((50 * SLOWDOWN))
store_args=(--store "redis://127.0.0.1:$REDIS_PORT/0" --redis-prefix e2e: --redis-timeout "$REDIS_TIMEOUT"
	--store-on-error tempfail)
for i in a b; do
	if [ $i = a ]; then port=$MILTER_A; else port=$MILTER_B; fi
	MILTER_LOG=$WORK/milter-$i.log
	milter_start "$MILTER_BIN" "$WORK/rules.conf" "$port" "${store_args[@]}" \
		|| { fail "policy-milter $i did not listen on $port"; exit 1; }
	if [ $i = a ]; then PID_A=$MILTER_PID; else PID_B=$MILTER_PID; fi
	use_postfix $i
	postfix_start "$SMTP_PORT" "$port" "mx-$i.localdomain" \
		|| { fail "Postfix $i did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
	pass "Postfix $i on 127.0.0.1:$SMTP_PORT, policy-milter $i (pid $MILTER_PID) on $port"
done
grep -q "counter store redis://127.0.0.1:$REDIS_PORT/0 (prefix \"e2e:\", timeout $REDIS_TIMEOUT ms): connected" \
	"$WORK/milter-a.log" && pass "milter a: connected to Redis at start" \
	|| fail "milter a: no 'connected' line"

# expect_on_both LABEL REPLY SENDER: one session through each Postfix (a, then b) from
# SENDER, whose MAIL FROM reply must be REPLY; checks "LABEL a" and "LABEL b".
expect_on_both() {
	for i in a b; do
		use_postfix $i
		expect_reply "$1 $i" "$(ere_quote "$2")" --helo client.example \
			--from "$3" --to bob@example.org
	done
}

# --- one combined limit ------------------------------------------------------------------

queued=$(send 100 alice@example.net "$SMTP_A" "$SMTP_B")
[ "$queued" = 100 ] && pass "100 messages from alice across both MTAs: all queued" \
	|| fail "100 messages from alice across both MTAs: $queued queued"
count=$(redis-cli -p "$REDIS_PORT" --raw hgetall "$(printf 'e2e:sender-hourly\037alice@example.net')" \
	| awk 'NR % 2 == 1 { field = $0 } NR % 2 == 0 && field != "w" { sum += $0 } END { print sum + 0 }')
[ "$count" = 100 ] && pass "Redis holds the count 100" || fail "Redis holds the count '$count'"
refused="<** 452 4.7.1 Too many messages from alice@example.net, try again later"
expect_on_both "101st via Postfix" "$refused" alice@example.net
use_postfix a
expect_reply "another sender still passes" "$QUEUED_ERE" --helo client.example \
	--from carol@example.net --to bob@example.org

# --- Redis stopped: 451 4.3.0, no crash --------------------------------------------------

redis_stop save  # the counts in redis.rdb, which the next redis_start loads
pass "redis-server stopped (counts saved)"
tempfailed="<** 451 4.3.0 Local error in processing, try again later"
expect_on_both "Redis down, Postfix" "$tempfailed" dave@example.net
sleep 1
expect_on_both "Redis still down, Postfix" "$tempfailed" alice@example.net
alive "$PID_A" && alive "$PID_B" && pass "both milters still running" || fail "a milter died"
grep -qE 'stage=mail rule=sender-hourly action=tempfail reply="451 4\.3\.0 .*error="limit \\"sender-hourly\\": store unavailable' \
	"$WORK/milter-a.log" && pass "log: the store error is in the decision line" \
	|| fail "log: no store error in milter a's decision lines"

# --- Redis back: the limit holds again (the time is reported, not asserted: shared machines) --

# The milters have been failing for over a second: their backoff is at its longest. The
# clock runs from the moment redis-server is started, probes on both MTAs at once.
t0=$(date +%s%N)
redis_start "$WORK" "$REDIS_PORT" || { fail "redis-server did not start again"; exit 1; }
pass "redis-server back (pid $REDIS_PID) after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
use_postfix a; back_within "$t0" "$SMTP_PORT" alice@example.net "$SLOWDOWN" > "$WORK/back-a" & probe_a=$!
use_postfix b; back_within "$t0" "$SMTP_PORT" alice@example.net "$SLOWDOWN" > "$WORK/back-b" & probe_b=$!
wait "$probe_a" "$probe_b" || true
for i in a b; do
	read -r ms code text < "$WORK/back-$i" || true
	if [ "${code:-}" = 452 ] && [ "${ms:-99999}" -le $((30000 * SLOWDOWN)) ]; then
		pass "Postfix $i: limit holds again $ms ms after Redis was started: $code $text"
	else
		fail "Postfix $i: ${ms:-?} ms after Redis was started: ${code:-?} ${text:-}"
	fi
done
use_postfix b
expect_reply "other senders pass again" "$QUEUED_ERE" --helo client.example \
	--from dave@example.net --to bob@example.org
alive "$PID_A" && alive "$PID_B" && pass "both milters still running" || fail "a milter died"

for i in a b; do
	if [ $i = a ]; then MILTER_PID=$PID_A; else MILTER_PID=$PID_B; fi
	rc=0
	milter_stop 20 || rc=$?
	[ $rc = 0 ] && pass "policy-milter $i: SIGTERM, exit 0" || fail "policy-milter $i: exit $rc"
	if [ $i = a ]; then PID_A=""; else PID_B=""; fi
done

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

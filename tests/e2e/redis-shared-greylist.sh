#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# Two MTAs share one greylist through Redis (issue 16): one redis-server, two
# policy-milter processes (store = redis://...), two private Postfix instances. A triplet
# greylisted through Postfix a is greylisted through b too, and a retry through b after
# the delay (2 s) passes; it then passes through a as well. With Redis stopped,
# store-on-error applies: tempfail answers 451 4.3.0 through a, pass lets the recipient
# through b. No state file is written with a Redis store.
#
#   tests/e2e/redis-shared-greylist.sh PATH/TO/policy-milter
#
# Needs root, postfix, swaks and redis-server; exits 77 (ctest: skipped) without them.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
rig_require
for tool in redis-server redis-cli; do command -v $tool >/dev/null || skip "$tool is not installed"; done

rig_init policy-milter-redis-greylist
WORK=$RIG_DIR
PID_A="" PID_B=""

use_postfix() {  # use_postfix a|b (tools/postfix-rig.sh keeps one Postfix in globals)
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
		for i in a b; do echo "--- policy-milter $i"; tail -n 40 "$WORK/milter-$i.log" 2>/dev/null || true; done
		echo "--- redis"; tail -n 20 "$WORK/redis.log" 2>/dev/null || true
	fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports REDIS_PORT SMTP_A SMTP_B MILTER_A MILTER_B
redis_start "$WORK" "$REDIS_PORT" || { fail "redis-server did not listen on $REDIS_PORT"; exit 1; }
pass "redis-server on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"

cat > "$WORK/rules.conf" <<'EOF2'
rule "greylist" at rcpt
    greylist delay 2s
EOF2
SLOWDOWN=${PM_E2E_SLOWDOWN:-1}
mkdir -p "$WORK/state"
for i in a b; do
	if [ $i = a ]; then port=$MILTER_A on_error=tempfail; else port=$MILTER_B on_error=pass; fi
	MILTER_LOG=$WORK/milter-$i.log
	milter_start "$MILTER_BIN" "$WORK/rules.conf" "$port" --store "redis://127.0.0.1:$REDIS_PORT/0" \
		--redis-prefix e2e: --redis-timeout $((50 * SLOWDOWN)) --store-on-error $on_error \
		--greylist-auto-whitelist 0 --state-dir "$WORK/state" \
		|| { fail "policy-milter $i did not listen on $port"; exit 1; }
	if [ $i = a ]; then PID_A=$MILTER_PID; else PID_B=$MILTER_PID; fi
	use_postfix $i
	postfix_start "$SMTP_PORT" "$port" "mx-$i.localdomain" \
		|| { fail "Postfix $i did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
	pass "Postfix $i on 127.0.0.1:$SMTP_PORT, policy-milter $i (store-on-error $on_error)"
done

GREY="<** 451 4.7.1 Greylisted, try again later"
via() { use_postfix "$1"; shift; }

via a; expect_line "first attempt through a" "$GREY" --from alice@example.net --to bob@example.org --quit-after RCPT
via b; expect_line "retry through b before the delay" "$GREY" --from alice@example.net --to bob@example.org --quit-after RCPT
[ "$(redis-cli -p "$REDIS_PORT" --raw keys 'e2e:gl:*' | wc -l)" = 1 ] \
	&& pass "Redis holds one triplet (e2e:gl:...)" || fail "Redis: $(redis-cli -p "$REDIS_PORT" --raw keys '*')"
ttl=$(redis-cli -p "$REDIS_PORT" --raw pttl "$(redis-cli -p "$REDIS_PORT" --raw keys 'e2e:gl:*')")
[ "$ttl" -gt 80000000 ] && [ "$ttl" -le 86400000 ] && pass "its TTL is the window (24h): $ttl ms" \
	|| fail "TTL $ttl ms"
sleep 2.2
via b; expect_queued "retry through b after the delay" --from alice@example.net --to bob@example.org
via a; expect_queued "then through a" --from alice@example.net --to bob@example.org

# --- Redis down: store-on-error ----------------------------------------------------------------

redis_stop
pass "redis-server stopped"
via a; expect_line "Redis down, a (tempfail)" "<** 451 4.3.0 Local error in processing, try again later" \
	--from carol@example.net --to bob@example.org --quit-after RCPT
via b; expect_queued "Redis down, b (pass)" --from carol@example.net --to bob@example.org
grep -qE 'rule=greylist action=tempfail reply="451 4\.3\.0 .*error="greylist \\"greylist\\": store unavailable' \
	"$WORK/milter-a.log" && pass "log a: the store error in the decision line" || fail "log a: no store error line"
alive "$PID_A" && alive "$PID_B" && pass "both milters still running" || fail "a milter died"
for i in a b; do
	if [ $i = a ]; then MILTER_PID=$PID_A; else MILTER_PID=$PID_B; fi
	milter_stop 20 && pass "policy-milter $i: SIGTERM, exit 0" || fail "policy-milter $i: exit $?"
	if [ $i = a ]; then PID_A=""; else PID_B=""; fi
done
[ ! -e "$WORK/state/greylist.state" ] && pass "no state file with a Redis store" \
	|| fail "a state file was written with a Redis store"

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

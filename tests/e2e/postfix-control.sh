#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: the control socket (`control`, `policy-milter --ctl`) with a private Postfix,
# the daemon logging through syslog to a private /dev/log (tools/private-devlog):
#   - a sender's quota refuses the third message; `--ctl limit-show` shows its count,
#     `--ctl limit-reset` clears it (logged to syslog), and the next message is queued;
#     with the built-in store, then again with a redis-server of the test's own, where the
#     reset deletes the key under the configured prefix;
#   - `--ctl stats`; usage errors (exit 2) and failed commands (exit 1) with their reason;
#   - `--ctl reload` of a broken rules file fails (exit 1) with the loader's diagnostic,
#     and the daemon keeps serving its old rules; a good one reloads (exit 0);
#   - the socket is mode 0600, replaced when stale, removed at stop; --ctl then says that
#     the daemon is not running; the built-in default is skipped with a warning when its
#     directory does not exist, while a `control` that is set and cannot be opened fails
#     --check (at its line) and the start.
#
#   tests/e2e/postfix-control.sh PATH/TO/policy-milter
#
# Needs root, postfix, swaks and unshare; exits 77 (ctest: skipped) without them; the Redis
# half is skipped without redis-server. Everything it starts is stopped on exit; the work
# directory is removed unless KEEP_E2E_DIR=1.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
# shellcheck source=tests/e2e/lib/syslog.sh
. "$(dirname "$0")/lib/syslog.sh"
rig_require
unshare --mount --propagation private true 2>/dev/null || skip "unshare --mount is not permitted here"

rig_init policy-milter-control
WORK=$RIG_DIR
REDIS_PID=""

cleanup() {
	local rc=$?
	redis_stop
	syslog_rig_cleanup "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$WORK/rules.conf" <<'EOF2'
limit "sender-hourly" at mail
    key sender
    when sender.domain == "quota.test"
    max 2 per 1h
    tempfail 452 4.7.1 "Too many messages from {sender}, try again later"
rule "unknown-user" at rcpt when recipient == "nobody@example.org"
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown"
EOF2
cp "$WORK/rules.conf" "$WORK/rules.good"
CONTROL=$WORK/control.sock
# --ctl finds the socket in the config file, as an administrator's would.
printf 'control = unix:%s\n' "$CONTROL" > "$WORK/ctl.conf"

# ctl ARG...: runs --ctl into OUT, ERR and RC.
ctl() {
	RC=0
	OUT=$("$MILTER_BIN" -c "$WORK/ctl.conf" --ctl "$@" 2> "$WORK/ctl.err") || RC=$?
	ERR=$(cat "$WORK/ctl.err")
}
# expect_ctl NAME RC ERE ARG...: --ctl ARG... exits RC with a line of its output (stdout
# and stderr) that is ERE.
expect_ctl() {
	local name=$1 rc=$2 ere=$3; shift 3
	ctl "$@"
	if [ "$RC" = "$rc" ] && grep -qxE -- "$ere" <<<"$OUT
$ERR"; then
		pass "$name: exit $RC, $(grep -m1 -xE -- "$ere" <<<"$OUT
$ERR")"
	else
		fail "$name: exit $RC (want $rc), no line \"$ere\" in:"
		printf '%s\n%s\n' "$OUT" "$ERR" | sed 's/^/     /'
	fi
}
expect_syslog() {
	local name=$1 pri=$2 message=$3 ere
	ere="<$pri>[A-Z][a-z]{2} [ 0-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} policy-milter\\[$MILTER_PID\\]: $(ere_quote "$message")"
	if wait_for 5 syslog_line "$ere" >/dev/null; then
		pass "$name: $(syslog_line "$ere")"
	else
		fail "$name: no syslog line \"<$pri>... policy-milter[$MILTER_PID]: $message\""
	fi
}
refused_line='<** 452 4.7.1 Too many messages from alice@quota.test, try again later'

# quota_round STORE: two messages pass, the third is refused, limit-show shows 2 of 2,
# limit-reset clears it, the next one passes.
quota_round() {
	local store=$1
	expect_queued "$store: 1st message" --from alice@quota.test --to bob@example.org
	expect_queued "$store: 2nd message" --from alice@quota.test --to bob@example.org
	expect_line "$store: 3rd message refused" "$refused_line" \
		--from alice@quota.test --to bob@example.org --quit-after RCPT
	expect_ctl "$store: limit-show count" 0 'count: 2' limit-show sender-hourly alice@quota.test
	check "$store: limit-show max, window, resets-in" \
		grep -qxE 'max: 2 messages' <<<"$OUT"
	grep -qx 'window: 3600s' <<<"$OUT" && grep -qxE 'resets-in: (3[6-9][0-9][0-9])s' <<<"$OUT" \
		&& pass "$store: $(grep -x 'window: .*' <<<"$OUT"), $(grep -x 'resets-in: .*' <<<"$OUT")" \
		|| fail "$store: window/resets-in: $OUT"
	# The key is normalised as the session's: any case names the same counter.
	expect_ctl "$store: limit-reset" 0 'reset: the count was 2, it is 0 now' \
		limit-reset sender-hourly Alice@Quota.TEST
	expect_syslog "$store: the reset in syslog" 22 \
		'control: limit-reset sender-hourly sender="Alice@Quota.TEST": count was 2'
	expect_ctl "$store: limit-show after the reset" 0 'count: 0' \
		limit-show sender-hourly alice@quota.test
	expect_queued "$store: the next message passes" --from alice@quota.test --to bob@example.org
	expect_ctl "$store: it counts again" 0 'count: 1' limit-show sender-hourly alice@quota.test
}

# --- the built-in store ------------------------------------------------------------------------

SMTP_PORT=$(free_port)
MILTER_PORT=$(free_port)
syslog_start || { fail "the syslog catcher did not start"; exit 1; }
MILTER_WRAP=("${PRIVATE_DEVLOG[@]}") MILTER_LOG_TO=syslog
# A stale control socket: bound, nobody listening (a daemon killed with SIGKILL).
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$CONTROL"
milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --control "unix:$CONTROL" \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
expect_syslog "memory: control socket announced" 22 "control socket unix:$CONTROL"
mode=$(stat -c '%A %U' "$CONTROL")
if [ "$mode" = "srw------- root" ]; then pass "control socket: $mode (the stale one replaced)"
else fail "control socket: $mode, not srw------- root"; fi
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }

quota_round memory

expect_ctl "stats" 0 'stats: .*' stats
expect_ctl "usage: unknown command, exit 2" 2 ".*unknown command 'frobnicate'.*" frobnicate
expect_ctl "usage: stats takes no arguments, exit 2" 2 '.*stats takes no arguments' stats now
expect_ctl "unknown limit, exit 1" 1 \
	'no limit "nope" in the running rules; limits: sender-hourly \(key sender\)' limit-show nope x
expect_ctl "wrong number of key values, exit 1" 1 \
	'limit sender-hourly has 1 key field \(sender\), given 2 values' \
	limit-show sender-hourly a@quota.test extra
expect_ctl "a rule is not a limit, exit 1" 1 'unknown-user is a rule, not a limit; .*' \
	limit-reset unknown-user x
# An argument may start with '-' and hold any byte but NUL.
expect_ctl "odd key values are values" 0 'key: sender="--x\\x0ay"' \
	limit-show sender-hourly "--x
y"

# --- reload through the control socket -------------------------------------------------------

printf 'rule "broken" at connect\n    reject 550 "not a connect code"\n' >> "$WORK/rules.conf"
diagnostic=$("$MILTER_BIN" --config "$WORK/empty.conf" --check --rules "$WORK/rules.conf" | grep "^$WORK/rules.conf:.*: error: " | head -n 1 || true)
expect_ctl "reload, broken rules: exit 1 with the diagnostic" 1 "$(ere_quote "$diagnostic")" reload
expect_ctl "reload, broken rules: the old policy kept" 1 \
	"$(ere_quote "reload of $WORK/rules.conf failed, keeping the running policy (2 rules from $WORK/rules.conf)")" reload
check "reload, broken rules: says failed" grep -qx 'reload: failed' <<<"$ERR"
expect_syslog "reload, broken rules: in syslog (<19> = mail.err)" 19 "$diagnostic"
expect_line "the old policy still answers" \
	'<** 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown' \
	--from carol@example.net --to nobody@example.org --quit-after RCPT
expect_ctl "the counters survive a failed reload" 0 'count: 1' limit-show sender-hourly alice@quota.test
cp "$WORK/rules.good" "$WORK/rules.conf"
expect_ctl "reload, good rules: exit 0" 0 'reload: ok' reload
expect_syslog "reload, good rules: in syslog" 22 "reloading on request of the control socket"

# --- stop: the socket goes, --ctl says so -------------------------------------------------------

milter_stop 20 || true
if [ ! -e "$CONTROL" ]; then pass "the control socket is removed at stop"
else fail "the control socket is still there after the stop"; fi
expect_ctl "daemon not running: exit 1" 1 \
	".*no control socket $(ere_quote "$CONTROL"): is policy-milter running.*" stats

# The built-in default, /run/policy-milter/control.sock, where that directory does not exist:
# a warning, and the daemon runs.
if [ ! -d /run/policy-milter ]; then
	PLAIN_PORT=$(free_port)
	MILTER_WRAP=() MILTER_LOG_TO=stderr
	milter_start "$MILTER_BIN" "$WORK/rules.conf" "$PLAIN_PORT" \
		&& pass "default control, no /run/policy-milter: started" \
		|| fail "default control, no /run/policy-milter: not started"
	if grep -q 'warning: control socket /run/policy-milter/control.sock: directory /run/policy-milter: No such file or directory; running without a control socket' "$MILTER_LOG"; then
		pass "default control, no /run/policy-milter: warned"
	else
		fail "default control, no /run/policy-milter: no warning in $(cat "$MILTER_LOG")"
	fi
	milter_stop 20 || true
	MILTER_WRAP=("${PRIVATE_DEVLOG[@]}") MILTER_LOG_TO=syslog
fi

# A `control` that is set and cannot be opened: --check reports it at its line, the start
# stops with "not started" (exit 78).
printf 'control = unix:%s/missing/control.sock\n' "$WORK" > "$WORK/bad-control.conf"
out=$("$MILTER_BIN" -c "$WORK/bad-control.conf" --rules "$WORK/rules.conf" --check 2>&1) && rc=0 || rc=$?
if [ "$rc" = 2 ] && grep -qxF "$WORK/bad-control.conf:1:11: error: control socket directory $WORK/missing does not exist" <<<"$out"; then
	pass "--check: a set control whose directory is missing, exit 2, at its line"
else
	fail "--check: exit $rc: $out"
fi
out=$("$MILTER_BIN" -c "$WORK/bad-control.conf" --rules "$WORK/rules.conf" --foreground \
	--log stderr --socket "inet:$(free_port)@127.0.0.1" 2>&1) && rc=0 || rc=$?
if [ "$rc" = 78 ] && grep -qF "not started: control socket directory $WORK/missing does not exist" <<<"$out"; then
	pass "start: a set control whose directory is missing: not started, exit 78"
else
	fail "start: exit $rc: $out"
fi

# --- Redis -------------------------------------------------------------------------------------

if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	REDIS_PORT=$(free_port)
	redis_start "$WORK" "$REDIS_PORT" || { fail "redis-server did not listen on $REDIS_PORT"; exit 1; }
	milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --control "unix:$CONTROL" \
		--store "redis://127.0.0.1:$REDIS_PORT/0" --redis-prefix e2e: --redis-timeout 500 \
		|| { fail "policy-milter (redis) did not listen on $MILTER_PORT"; exit 1; }
	quota_round redis
	key=$(printf 'e2e:sender-hourly\037alice@quota.test')
	check "redis: the key lives under the prefix" test "$(redis-cli -p "$REDIS_PORT" exists "$key")" = 1
	expect_ctl "redis: limit-reset" 0 'reset: the count was 1, it is 0 now' \
		limit-reset sender-hourly alice@quota.test
	check "redis: the reset deleted the key" test "$(redis-cli -p "$REDIS_PORT" exists "$key")" = 0
	redis_stop
	expect_ctl "redis down: limit-show fails with the store's error" 1 'counter store: .*' \
		limit-show sender-hourly alice@quota.test
else
	echo "SKIP redis half: redis-server is not installed"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]

#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: policy-milter on a unix socket as another user, logging to syslog.
#   - it starts as root over a stale socket file, drops to nobody, and gives the socket
#     mode 0660 and group postfix (--socket-group), so that Postfix reaches it over unix:;
#     a second instance on the same socket is refused; --socket-mode 0600 locks Postfix out;
#   - its log goes to syslog: it runs in a private mount namespace whose /dev/log is a
#     catcher's socket, and the exact line of several decisions is checked, with its
#     priority (facility mail) and ident policy-milter.
#
#   tests/e2e/postfix-unix-syslog.sh PATH/TO/policy-milter
#
# Needs root, postfix, swaks and unshare; exits 77 (ctest: skipped) without them. Everything
# it starts is stopped on exit; the work directory is removed unless KEEP_E2E_DIR=1.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
# shellcheck source=tests/e2e/lib/syslog.sh
. "$(dirname "$0")/lib/syslog.sh"
rig_require
unshare --mount --propagation private true 2>/dev/null || skip "unshare --mount is not permitted here"
getent group postfix >/dev/null || skip "no group postfix"
getent passwd nobody >/dev/null || skip "no user nobody"

rig_init policy-milter-unix
WORK=$RIG_DIR

cleanup() { syslog_rig_cleanup $?; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$WORK/rules.conf" <<'EOF'
rule "spoofed-sender" at mail when sender.domain == "forged.example"
    reject 553 5.7.1 "Sender address rejected: not logged in"
rule "busy-sender" at mail when sender == "busy@example.net" tempfail
rule "unknown-user" at rcpt when recipient == "nobody@example.org"
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown"
rule "stamp" at message add-header "X-Policy-Milter" "checked"
rule "lottery" at message when header["Subject"] matches /lottery winner/i
    reject 554 5.7.1 "Message content rejected"
EOF

# expect_syslog NAME PRIORITY MESSAGE: SYSLOG_FILE has the line syslog(3) makes of MESSAGE
# from policy-milter (this PID) at PRIORITY: "<PRIORITY>Mmm dd hh:mm:ss policy-milter[PID]: ".
expect_syslog() {
	local name=$1 pri=$2 message=$3 ere
	ere="<$pri>[A-Z][a-z]{2} [ 0-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} policy-milter\\[$MILTER_PID\\]: $(ere_quote "$message")"
	if wait_for 5 syslog_line "$ere" >/dev/null; then
		pass "$name: $(syslog_line "$ere")"
	else
		fail "$name: no syslog line \"<$pri>... policy-milter[$MILTER_PID]: $message\""
	fi
}

socket_owner() { stat -c '%A %U:%G' "$SOCKET"; }
# Someone listens on the socket file.
socket_answers() {
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$SOCKET" 2>/dev/null
}

# --- start: a stale socket file, then policy-milter as nobody with group postfix ---------------

SMTP_PORT=$(free_port)
SOCKET=$WORK/policy-milter.sock
syslog_start || { fail "the syslog catcher did not start"; exit 1; }
MILTER_WRAP=("${PRIVATE_DEVLOG[@]}") MILTER_LOG_TO=syslog
# A socket file left by a milter that died: bound, nobody listening.
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$SOCKET"
if [ -S "$SOCKET" ] && ! socket_answers; then pass "a stale socket file is there: $(socket_owner)"
else fail "could not make a stale socket file"; fi
milter_start "$MILTER_BIN" "$WORK/rules.conf" "unix:$SOCKET" --user nobody --socket-group postfix \
	|| { fail "policy-milter did not listen on unix:$SOCKET"; exit 1; }
expect_syslog "started, facility mail (<22> = mail.info)" 22 \
	"started: policy-milter $("$MILTER_BIN" --version | sed -n 's/^policy-milter //p') (libmilter $("$MILTER_BIN" --version | sed -n 's/^libmilter //p')); 5 rules from $WORK/rules.conf; socket unix:$SOCKET; observe=no soft-bounce=no"
if socket_answers; then pass "the stale socket file was replaced by a listening one"
else fail "nobody listens on $SOCKET"; fi
if [ "$(socket_owner)" = "srw-rw---- nobody:postfix" ]; then pass "socket: $(socket_owner)"
else fail "socket: $(socket_owner), not srw-rw---- nobody:postfix"; fi
user=$(ps -o user= -p "$MILTER_PID")
if [ "$user" = nobody ]; then pass "policy-milter runs as nobody"
else fail "policy-milter runs as $user"; fi
if [ "$(readlink "/proc/$MILTER_PID/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]; then
	pass "policy-milter runs in its own mount namespace (private /dev/log)"
else
	fail "policy-milter shares the host's mount namespace"
fi

second=$("$MILTER_BIN" --config "$WORK/empty.conf" --rules "$WORK/rules.conf" --foreground \
	--log stderr --socket "unix:$SOCKET" 2>&1) && rc=0 || rc=$?
if [ "$rc" = 75 ] && grep -qF "not started: another process (pid $MILTER_PID, policy-milter) is listening on $SOCKET" <<<"$second"; then
	pass "a second instance on the socket: refused, exit 75"
else
	fail "a second instance on the socket: exit $rc: $second"
fi

postfix_start "$SMTP_PORT" "unix:$SOCKET" e2e.localdomain \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "Postfix listening on 127.0.0.1:$SMTP_PORT, milter unix:$SOCKET"

# --- replies relayed over the unix socket, and their syslog lines ----------------------------------

expect_line "unix: rcpt reject" '<** 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown' \
	--from alice@example.net --to nobody@example.org --quit-after RCPT
expect_syslog "syslog: rcpt reject" 22 'NOQUEUE: client=unknown[127.0.0.1] stage=rcpt rule=unknown-user action=reject reply="550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown" helo=<client.example> from=<alice@example.net> to=<nobody@example.org>'

expect_line "unix: mail reject" '<** 553 5.7.1 Sender address rejected: not logged in' \
	--from someone@forged.example --to bob@example.org --quit-after RCPT
expect_syslog "syslog: mail reject" 22 'NOQUEUE: client=unknown[127.0.0.1] stage=mail rule=spoofed-sender action=reject reply="553 5.7.1 Sender address rejected: not logged in" helo=<client.example> from=<someone@forged.example> to=-'

expect_line "unix: mail tempfail" '<** 451 4.7.1 Temporarily rejected by policy, try again later' \
	--from busy@example.net --to bob@example.org --quit-after RCPT
expect_syslog "syslog: mail tempfail" 22 'NOQUEUE: client=unknown[127.0.0.1] stage=mail rule=busy-sender action=tempfail reply="451 4.7.1 Temporarily rejected by policy, try again later" helo=<client.example> from=<busy@example.net> to=-'

expect_line "unix: message reject" '<** 554 5.7.1 Message content rejected' \
	--from alice@example.net --to bob@example.org --header "Subject: You are a Lottery Winner"
id=$(grep -o '[0-9A-F]*: milter-reject: END-OF-MESSAGE' "$PF_MAILLOG" | tail -n 1 | cut -d: -f1)
expect_syslog "syslog: message reject, Postfix's queue ID" 22 "${id:-QUEUEID}: client=unknown[127.0.0.1] stage=message rule=lottery action=reject reply=\"554 5.7.1 Message content rejected\" helo=<client.example> from=<alice@example.net> to=<bob@example.org> nrcpt=1"

expect_reply "unix: accepted" "$QUEUED_ERE" --helo client.example \
	--from alice@example.net --to bob@example.org --header "Subject: hello"
id=$(sed -n 's/^<-  250 2\.0\.0 Ok: queued as \([0-9A-F]*\)$/\1/p' <<<"$SESSION")
expect_syslog "syslog: header added" 22 "${id:-QUEUEID}: client=unknown[127.0.0.1] stage=message rule=stamp action=add-header helo=<client.example> from=<alice@example.net> to=<bob@example.org> header=\"X-Policy-Milter: checked\" nrcpt=1"
if grep -qE 'policy-milter\[[0-9]+\]: [^ ]+: client=[^ ]+ stage=[a-z]+ rule=- action=continue' "$SYSLOG_FILE"; then
	fail "syslog: debug lines logged at the default level info"
else
	pass "syslog: no debug line (no rule decided) at the default level info"
fi

# A broken reload is logged at err (<19> = mail.err), the loader's diagnostic first.
cp "$WORK/rules.conf" "$WORK/rules.good"
printf 'rule "broken" at connect\n    reject 550 "not a connect code"\n' >> "$WORK/rules.conf"
diagnostic=$("$MILTER_BIN" --config "$WORK/empty.conf" --check --rules "$WORK/rules.conf" | grep "^$WORK/rules.conf:.*: error: " || true)
kill -HUP "$MILTER_PID"
expect_syslog "syslog: reload requested" 22 "reloading on SIGHUP"
expect_syslog "syslog: broken reload, the error (<19> = mail.err)" 19 "$diagnostic"
expect_syslog "syslog: broken reload, the old policy kept" 19 \
	"reload of $WORK/rules.conf failed, keeping the running policy (5 rules from $WORK/rules.conf)"
expect_line "unix: the old policy still answers" \
	'<** 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown' \
	--from alice@example.net --to nobody@example.org --quit-after RCPT
cp "$WORK/rules.good" "$WORK/rules.conf"

# --- stop; restart with --socket-mode 0600: Postfix is locked out ------------------------------------

pid=$MILTER_PID rc=0
milter_stop 20 || rc=$?
if [ $rc -eq 0 ]; then pass "SIGTERM: stopped, exit 0"; else fail "SIGTERM: exit code $rc"; fi
MILTER_PID=$pid expect_syslog "syslog: stopped" 22 "stopped: 5 rules from $WORK/rules.conf"
# As nobody it cannot remove its socket from a directory of root's; the next start does.
if [ -S "$SOCKET" ] && ! socket_answers; then pass "after the stop: a stale socket file is left (the directory is root's)"
else fail "after the stop: no stale socket file left to test the restart with"; fi

milter_start "$MILTER_BIN" "$WORK/rules.conf" "unix:$SOCKET" --user nobody --socket-mode 0600 \
	|| { fail "policy-milter did not restart on unix:$SOCKET"; exit 1; }
expect_syslog "restarted over the old socket file" 22 \
	"started: policy-milter $("$MILTER_BIN" --version | sed -n 's/^policy-milter //p') (libmilter $("$MILTER_BIN" --version | sed -n 's/^libmilter //p')); 5 rules from $WORK/rules.conf; socket unix:$SOCKET; observe=no soft-bounce=no"
if [ "$(socket_owner)" = "srw------- nobody:nogroup" ]; then pass "socket-mode 0600: $(socket_owner)"
else fail "socket-mode 0600: $(socket_owner), not srw------- nobody:nogroup"; fi
expect_line "socket-mode 0600: Postfix cannot connect, answers 451" \
	'<** 451 4.7.1 Service unavailable - try again later' \
	--from alice@example.net --to nobody@example.org --quit-after RCPT
if grep -q "warning: connect to Milter service unix:$SOCKET: Permission denied" "$PF_MAILLOG"; then
	pass "socket-mode 0600: Postfix logged Permission denied"
else
	fail "socket-mode 0600: no Permission denied in Postfix's log"
fi

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

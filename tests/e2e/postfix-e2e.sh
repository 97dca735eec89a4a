#!/bin/bash
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
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "must run as root (Postfix needs it)"
command -v postfix >/dev/null || skip "postfix is not installed"
command -v swaks >/dev/null || skip "swaks is not installed"
command -v python3 >/dev/null || skip "python3 is not installed"

WORK=$(mktemp -d /tmp/policy-milter-e2e.XXXXXX)
chmod 755 "$WORK"  # the postfix user must traverse it
CONF=$WORK/postfix/etc SPOOL=$WORK/postfix/spool DATA=$WORK/postfix/data
MAILLOG=$WORK/postfix/maillog MILTER_LOG=$WORK/milter.log
MILTER_PID="" FAILED=0 PASSED=0

# --- process helpers --------------------------------------------------------------------

# alive PID: exists and is not a zombie (a stopped Postfix master may linger as one).
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [ "${st:0:1}" != Z ]; }
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q LISTEN; }
wait_for() {  # wait_for SECONDS COMMAND...: poll every 0.1 s
	local deadline=$((SECONDS + $1)); shift
	until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.1; done
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
master_pid() { [ -r "$SPOOL/pid/master.pid" ] && tr -dc '0-9' < "$SPOOL/pid/master.pid"; }

stop_postfix() {
	[ -d "$CONF" ] || return 0
	local pid; pid=$(master_pid) || return 0
	[ -n "$pid" ] && alive "$pid" || return 0
	postfix -c "$CONF" stop >/dev/null 2>&1 || true
	wait_for 10 eval '! alive '"$pid" || { postfix -c "$CONF" abort >/dev/null 2>&1 || true; sleep 1; }
	alive "$pid" && kill -9 "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	stop_postfix
	if [ -n "$MILTER_PID" ] && alive "$MILTER_PID"; then
		kill -TERM "$MILTER_PID" 2>/dev/null || true
		wait_for 15 eval '! alive '"$MILTER_PID" || kill -9 "$MILTER_PID" 2>/dev/null || true
	fi
	if [ $rc -ne 0 ] || [ $FAILED -ne 0 ]; then
		echo "--- policy-milter log ($MILTER_LOG)"; tail -n 60 "$MILTER_LOG" 2>/dev/null || true
		echo "--- Postfix log ($MAILLOG)"; tail -n 40 "$MAILLOG" 2>/dev/null || true
	fi
	[ "${KEEP_E2E_DIR:-0}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- checks -----------------------------------------------------------------------------

pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

# expect_line NAME EXPECTED_LINE SWAKS_ARGS...: the session shows exactly that line.
expect_line() {
	local name=$1 expected=$2; shift 2
	local out
	out=$(swaks --server 127.0.0.1 --port "$SMTP_PORT" --helo client.example \
		--timeout 30 "$@" 2>&1) || true
	if grep -qxF -- "$expected" <<<"$out"; then
		pass "$name: $expected"
	else
		fail "$name: wanted \"$expected\", the session was:"
		sed 's/^/     /' <<<"$out" | grep -E '^ +(<|->)' || true
	fi
}

# expect_accepted NAME SWAKS_ARGS...: the message was queued.
expect_accepted() {
	local name=$1; shift
	local out
	out=$(swaks --server 127.0.0.1 --port "$SMTP_PORT" --helo client.example \
		--timeout 30 "$@" 2>&1) || true
	if grep -qE '^<-  250 2\.0\.0 Ok: queued as [0-9A-Za-z]+$' <<<"$out"; then
		pass "$name: 250 2.0.0 Ok: queued"
	else
		fail "$name: not queued, the session was:"
		sed 's/^/     /' <<<"$out" | grep -E '^ +(<|->)' || true
	fi
}

milter_log_has() { grep -qE -- "$1" "$MILTER_LOG"; }

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

# --- start policy-milter --------------------------------------------------------------------

SMTP_PORT=$(free_port)
MILTER_PORT=$(free_port)
[ "$SMTP_PORT" != "$MILTER_PORT" ] || MILTER_PORT=$(free_port)
write_rules "Recipient address rejected: User unknown"
: > "$WORK/empty.conf"  # no system-wide config file may leak into the test
"$MILTER_BIN" --config "$WORK/empty.conf" --foreground --log stderr --log-level debug \
	--rules "$WORK/rules.conf" --socket "inet:$MILTER_PORT@127.0.0.1" 2> "$MILTER_LOG" &
MILTER_PID=$!
wait_for 10 listening "$MILTER_PORT" || { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
pass "policy-milter listening on inet:$MILTER_PORT@127.0.0.1 (pid $MILTER_PID)"

# --- start a private Postfix --------------------------------------------------------------

mkdir -p "$CONF" "$SPOOL" "$DATA"
chown postfix:postfix "$DATA"
cat > "$CONF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $SPOOL
data_directory = $DATA
maillog_file = $MAILLOG
maillog_file_prefixes = $WORK
myhostname = e2e.localdomain
mydomain = localdomain
mydestination =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
default_transport = discard
relay_transport = discard
local_transport = discard
alias_maps =
alias_database =
biff = no
smtpd_peername_lookup = no
dnssec_probe =
smtpd_milters = inet:127.0.0.1:$MILTER_PORT
non_smtpd_milters =
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 10s
milter_command_timeout = 10s
milter_content_timeout = 30s
EOF
# Column 5 (chroot) is n everywhere: nothing needs copying into a jail.
cat > "$CONF/master.cf" <<EOF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
# Postfix waits ~2 s before reading a config file changed in the last seconds.
touch -d '-10 seconds' "$CONF/main.cf" "$CONF/master.cf"
postfix -c "$CONF" check
postfix -c "$CONF" start >/dev/null 2>&1 || { fail "postfix start"; exit 1; }
wait_for 10 listening "$SMTP_PORT" || { fail "Postfix did not listen on $SMTP_PORT"; exit 1; }
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
expect_accepted "accepted message" \
	--from alice@example.net --to bob@example.org --header "Subject: hello"

milter_log_has 'NOQUEUE: stage=rcpt rule=unknown-user action=reject reply="550 5\.1\.1 <nobody@example\.org>: Recipient address rejected: User unknown" client=unknown\[127\.0\.0\.1\] from=<alice@example\.net> to=<nobody@example\.org>' \
	&& pass "log: rcpt reject line" || fail "log: rcpt reject line missing"
milter_log_has '[0-9A-F]{6,}: stage=message rule=lottery action=reject reply="554 5\.7\.1 Message content rejected"' \
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
expect_accepted "accepted after SIGHUP" --from alice@example.net --to bob@example.org

# A broken reload keeps the running policy.
echo 'rule "broken" at rcpt reject 554 5.7.1 "not allowed at rcpt"' >> "$WORK/rules.conf"
kill -USR1 "$MILTER_PID"
wait_for 10 milter_log_has 'reload of .* failed, keeping the running policy' \
	&& pass "broken reload refused" || fail "broken reload not reported"
expect_line "old policy kept after a broken reload" \
	"<** 550 5.1.1 <nobody@example.org>: Mailbox unavailable, reloaded" \
	--from alice@example.net --to nobody@example.org --quit-after RCPT

# --- SIGTERM stops it ------------------------------------------------------------------------

kill -TERM "$MILTER_PID"
# libmilter polls its listening socket every few seconds before smfi_main returns.
if wait_for 20 eval '! alive '"$MILTER_PID"; then
	rc=0; wait "$MILTER_PID" || rc=$?
	[ $rc -eq 0 ] && pass "SIGTERM: stopped, exit 0" || fail "SIGTERM: exit code $rc"
	MILTER_PID=""
else
	fail "SIGTERM: still running after 20 s"
fi
milter_log_has 'stopped: ' && pass "log: stop logged" || fail "log: no stop line"

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

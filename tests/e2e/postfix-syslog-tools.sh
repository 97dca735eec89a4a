#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: the tools that read policy-milter's syslog lines (issue 14), on lines the daemon
# wrote through syslog(3) while a real Postfix drove it with swaks:
#   - the fail2ban filter (packaging/fail2ban/policy-milter.conf) through the real
#     fail2ban-regex: each refused client's address is found, exactly as often as it was
#     refused; observed hits, store-error tempfails and the address an attacker wrote into
#     a recipient, a sender and a HELO (client=evil[6.6.6.6]) never are;
#   - policy-milter --report over that file, its gzip and stdin: the same summary, with the
#     exact counts.
# The daemon runs in a private mount namespace whose /dev/log is a catcher's socket
# (tests/e2e/lib/syslog.sh); the catcher's lines are written to a mail.log as rsyslog's
# traditional file format writes them ("Mmm dd hh:mm:ss HOST IDENT[PID]: MESSAGE").
# Postfix's XCLIENT gives each session the client address the test chooses.
#
#   tests/e2e/postfix-syslog-tools.sh PATH/TO/policy-milter
#
# Needs root, postfix, swaks, unshare, fail2ban-regex and gzip; exits 77 (ctest: skipped)
# without them. Everything it starts is stopped on exit; the work directory is removed
# unless KEEP_E2E_DIR=1.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
SRC=$(readlink -f "$(dirname "$0")/../..")
# shellcheck source=tools/postfix-rig.sh
. "$SRC/tools/postfix-rig.sh"
# shellcheck source=tests/e2e/lib/syslog.sh
. "$SRC/tests/e2e/lib/syslog.sh"
rig_require
unshare --mount --propagation private true 2>/dev/null || skip "unshare --mount is not permitted here"
command -v fail2ban-regex >/dev/null || skip "no fail2ban-regex (Debian package fail2ban)"
[ -f /etc/fail2ban/filter.d/common.conf ] || skip "no /etc/fail2ban/filter.d/common.conf"
command -v gzip >/dev/null || skip "no gzip"

rig_init policy-milter-syslog-tools
WORK=$RIG_DIR

cleanup() { syslog_rig_cleanup $?; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# The reply of "no-such-user" quotes the recipient: the injection reaches reply="..." too.
cat > "$WORK/rules.conf" <<'EOF'
rule "unknown-user" at rcpt when recipient == "nobody@example.org"
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown"
rule "no-such-user" at rcpt when recipient.domain == "example.com"
    reject 550 5.1.1 "<{recipient}>: no such user"
rule "busy-sender" at mail when sender == "busy@example.net" tempfail
rule "watched" at mail when sender == "watched@example.net"
    reject 553 5.7.1 "Watched" observe
# Reads HELO; helo= shows the HELO name either way (the daemon asks for it for the log).
rule "helo-seen" at helo when helo == "never.example" reject 550 5.7.1 "never"
limit "store-down" at mail key sender when sender == "limited@example.net"
    max 5 per 1h tempfail
EOF

# --- policy-milter on a private /dev/log, its store unreachable; Postfix with XCLIENT ----------

free_ports SMTP_PORT MILTER_PORT DEAD_PORT
syslog_start || { fail "the syslog catcher did not start"; exit 1; }
MILTER_WRAP=("${PRIVATE_DEVLOG[@]}") MILTER_LOG_TO=syslog
milter_start "$MILTER_BIN" "$WORK/rules.conf" "inet:$MILTER_PORT@127.0.0.1" \
	--store "redis://127.0.0.1:$DEAD_PORT/0" --store-on-error tempfail \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	"smtpd_authorized_xclient_hosts = 127.0.0.0/8" "mynetworks = 127.0.0.0/8 203.0.113.0/24" \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }
pass "policy-milter logging to a private /dev/log, Postfix on 127.0.0.1:$SMTP_PORT"

# session NAME ADDR REPLY_ERE SWAKS_ARG...: one session as client ADDR (XCLIENT), whose
# transcript has a line REPLY_ERE.
session() {
	local name=$1 addr=$2 ere=$3; shift 3
	expect_reply "$name" "$ere" --xclient-addr "$addr" --helo client.example "$@"
}

refused_rcpt='<\*\* 550 5\.1\.1 .*'
for i in 1 2 3; do
	session "203.0.113.1, session $i: rcpt reject" 203.0.113.1 "$refused_rcpt" \
		--from alice@example.net --to nobody@example.org --quit-after RCPT
done
for i in 1 2; do
	session "203.0.113.2, session $i: mail tempfail" 203.0.113.2 '<\*\* 451 4\.7\.1 .*' \
		--from busy@example.net --to bob@example.org --quit-after RCPT
done
session "203.0.113.3: observed, not refused" 203.0.113.3 '<-  250 2\.1\.5 .*' \
	--from watched@example.net --to bob@example.org --quit-after RCPT
session "203.0.113.4: store unreachable, tempfail with error=" 203.0.113.4 '<\*\* 451 4\.3\.0 .*' \
	--from limited@example.net --to bob@example.org --quit-after RCPT
# The injection of issue 14: a recipient, a sender and a HELO that spell a client=...[6.6.6.6]
# of their own, the recipient quoted back in the reply.
session "203.0.113.5: the injection, refused" 203.0.113.5 "$refused_rcpt" \
	--helo 'x] client=evil[6.6.6.6]' \
	--from '"y client=evil[6.6.6.6] "@example.net' \
	--to '"x client=evil[6.6.6.6] "@example.com' --quit-after RCPT
kill -HUP "$MILTER_PID"
wait_for 5 grep -q 'policy-milter\[[0-9]*\]: reloaded: ' "$SYSLOG_FILE" \
	&& pass "reloaded on SIGHUP" || fail "no reloaded: line after SIGHUP"
cp "$WORK/rules.conf" "$WORK/rules.good"
printf 'rule "broken" at connect\n    reject 550 "not a connect code"\n' >> "$WORK/rules.conf"
kill -HUP "$MILTER_PID"
wait_for 5 grep -q 'policy-milter\[[0-9]*\]: reload of .* failed, keeping the running policy' "$SYSLOG_FILE" \
	&& pass "a broken reload on SIGHUP: failed" || fail "no 'reload of ... failed' line"
cp "$WORK/rules.good" "$WORK/rules.conf"

# --- the syslog lines as a mail.log ---------------------------------------------------------------

inject_ere='client=[^ ]+ stage=rcpt rule=no-such-user action=reject reply="550 5\.1\.1 <\\"x client=evil\[6\.6\.6\.6\] \\"@example\.com>: no such user" helo=<x\\x5d\\x20client=evil\\x5b6\.6\.6\.6\\x5d> from=<\\x22y\\x20client=evil\\x5b6\.6\.6\.6\\x5d\\x20\\x22@example\.net> to=<\\x22x\\x20client=evil\\x5b6\.6\.6\.6\\x5d\\x20\\x22@example\.com>$'
if wait_for 5 grep -qE "policy-milter\[$MILTER_PID\]: NOQUEUE: $inject_ere" "$SYSLOG_FILE"; then
	pass "syslog: the injection's line, every client-chosen value escaped: $(grep -oE "NOQUEUE: $inject_ere" "$SYSLOG_FILE")"
else
	fail "syslog: no escaped line for the injection"
fi
milter_stop 20 || fail "policy-milter did not stop cleanly"
MAILLOG=$WORK/mail.log
sed -E 's/^<[0-9]+>(.{15}) /\1 e2e-host /' "$SYSLOG_FILE" > "$MAILLOG"
gzip -c "$MAILLOG" > "$MAILLOG.1.gz"
# The same lines with RFC 3339 timestamps, as rsyslog's high-precision format or
# journalctl -o short-iso-precise write them (the catcher's times are UTC: TZ=UTC below).
python3 - "$SYSLOG_FILE" "$WORK/mail-rfc3339.log" <<'PY'
import re, sys, time
year = time.gmtime().tm_year
with open(sys.argv[1], encoding="ascii") as src, open(sys.argv[2], "w") as out:
    for line in src:
        m = re.match(r"<\d+>(\w{3}) +(\d+) (\d\d:\d\d:\d\d) (.*)", line)
        t = time.strptime(f"{year} {m[1]} {m[2]}", "%Y %b %d")
        out.write(f"{year}-{t.tm_mon:02}-{t.tm_mday:02}T{m[3]}.000123+00:00 e2e-host {m[4]}\n")
PY
n=$(grep -c ' policy-milter\[' "$MAILLOG" || true)
[ "$n" -gt 0 ] && pass "mail.log: $n lines of policy-milter" || fail "mail.log: no lines of policy-milter"

# --- fail2ban-regex: the real client, exactly as often as refused; never 6.6.6.6 ---------------

# The filter beside the common.conf it includes, as in /etc/fail2ban/filter.d.
mkdir -p "$WORK/filter.d"
cp "$SRC/packaging/fail2ban/policy-milter.conf" "$WORK/filter.d/"
ln -s /etc/fail2ban/filter.d/common.conf "$WORK/filter.d/common.conf"
ips=$(fail2ban-regex -o ip "$MAILLOG" "$WORK/filter.d/policy-milter.conf" 2>"$WORK/f2b.err" | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
expected="203.0.113.1=3 203.0.113.2=2 203.0.113.5=1 "
if [ "$ips" = "$expected" ]; then
	pass "fail2ban-regex: matches per address: $ips"
else
	fail "fail2ban-regex: matches per address: '$ips', not '$expected' ($(cat "$WORK/f2b.err"))"
fi
summary=$(fail2ban-regex "$MAILLOG" "$WORK/filter.d/policy-milter.conf" 2>&1 | grep -E '^Lines: ' || true)
if grep -qE '^Lines: [0-9]+ lines, 1 ignored, 6 matched, [0-9]+ missed' <<<"$summary"; then
	pass "fail2ban-regex: $summary (the store-error tempfail ignored)"
else
	fail "fail2ban-regex: $summary, not 1 ignored and 6 matched"
fi
if fail2ban-regex -o ip "$MAILLOG" "$WORK/filter.d/policy-milter.conf" 2>/dev/null | grep -qF 6.6.6.6; then
	fail "fail2ban-regex: the injected 6.6.6.6 was matched"
else
	pass "fail2ban-regex: the injected 6.6.6.6 is never matched"
fi
# Review finding: fail2ban's prefix makes the daemon's name optional, so another
# program's tag once filled the queue-id slot. Lines of other programs never match.
printf '%s\n' \
	"$(date '+%b %e %H:%M:%S') e2e-host sshd[1]: client=x[6.6.6.7] stage=rcpt rule=r action=reject" \
	"$(date '+%b %e %H:%M:%S') e2e-host anything: client=x[6.6.6.7] stage=rcpt rule=r action=reject" \
	> "$WORK/others.log"
if fail2ban-regex -o ip "$WORK/others.log" "$WORK/filter.d/policy-milter.conf" 2>/dev/null | grep -qF 6.6.6.7; then
	fail "fail2ban-regex: another program's line (sshd[1]: client=...) was matched"
else
	pass "fail2ban-regex: other programs' lines are never matched"
fi
# Even an unanchored regex finds the real client first now: client= leads the line.
naive=$(fail2ban-regex -o ip "$MAILLOG" 'client=\S*\[<ADDR>\].* rule=no-such-user' 2>/dev/null || true)
if [ "$naive" = 203.0.113.5 ]; then
	pass "an unanchored client=\S*\[<ADDR>\] finds 203.0.113.5 in the injection's line, not 6.6.6.6"
else
	fail "an unanchored client=\S*\[<ADDR>\] finds '$naive' in the injection's line"
fi

# --- policy-milter --report: the file, its gzip and stdin ----------------------------------------

export TZ=UTC
report=$("$MILTER_BIN" --config "$WORK/empty.conf" --report "$MAILLOG" 2>&1) && rc=0 || rc=$?
[ "$rc" = 0 ] && pass "--report mail.log: exit 0" || fail "--report mail.log: exit $rc: $report"
report_gz=$("$MILTER_BIN" --config "$WORK/empty.conf" --report "$MAILLOG.1.gz" 2>&1) || true
report_stdin=$("$MILTER_BIN" --config "$WORK/empty.conf" --report - < "$MAILLOG" 2>&1) || true
[ "$report_gz" = "$report" ] && pass "--report mail.log.1.gz: the same summary" \
	|| fail "--report mail.log.1.gz differs: $(diff <(echo "$report") <(echo "$report_gz"))"
[ "$report_stdin" = "$report" ] && pass "--report - (stdin): the same summary" \
	|| fail "--report - differs: $(diff <(echo "$report") <(echo "$report_stdin"))"
report_iso=$("$MILTER_BIN" --config "$WORK/empty.conf" --report "$WORK/mail-rfc3339.log" 2>&1) || true
[ "$report_iso" = "$report" ] && pass "--report of the RFC 3339 copy: the same summary" \
	|| fail "--report of the RFC 3339 copy differs: $(diff <(echo "$report") <(echo "$report_iso"))"
both=$("$MILTER_BIN" --config "$WORK/empty.conf" --report "$MAILLOG" "$MAILLOG.1.gz" 2>&1) || true
grep -qE '^Lines read: [0-9]+, decision lines: 16$' <<<"$both" \
	&& pass "--report mail.log mail.log.1.gz: both counted" \
	|| fail "--report of both files: $(grep '^Lines read' <<<"$both")"

# report_has NAME LINE: the summary has LINE (whole line).
report_has() {
	if grep -qxF -- "$2" <<<"$report"; then pass "--report: $1: $2"
	else fail "--report: $1: no line '$2'"; fi
}
if grep -qE '^Lines read: [0-9]+, decision lines: 8$' <<<"$report"; then
	pass "--report: $(grep '^Lines read' <<<"$report")"
else
	fail "--report: $(grep '^Lines read' <<<"$report"), not 8 decision lines"
fi
report_has "per rule" "       3   rule=unknown-user action=reject stage=rcpt"
report_has "per rule" "       2   rule=busy-sender action=tempfail stage=mail"
report_has "per rule" "       1   rule=watched action=would-reject stage=mail"
report_has "per rule" "       1   rule=store-down action=tempfail stage=mail"
report_has "per rule" "       1   rule=no-such-user action=reject stage=rcpt"
report_has "reply codes" "       4   550 5.1.1"
report_has "reply codes" "       2   451 4.7.1"
report_has "top refused client" "       3   unknown[203.0.113.1]"
report_has "refused client of the injection" "       1   unknown[203.0.113.5]"
report_has "refused sender of the injection, escaped" "       1   <\\x22y\\x20client=evil\\x5b6.6.6.6\\x5d\\x20\\x22@example.net>"
report_has "refused recipient" "       3   <nobody@example.org>"
report_has "reloads" "       1   ok"
report_has "reloads" "       1   failed"
if grep -qF 'counter store redis://127.0.0.1:'"$DEAD_PORT" <<<"$report" \
	&& grep -qF 'error="limit \"store-down\": store unavailable' <<<"$report"; then
	pass "--report: store errors: the warning and the decision's error="
else
	fail "--report: store errors missing: $(sed -n '/^Store errors/,/^$/p' <<<"$report")"
fi
if grep -qE '\[6\.6\.6\.6\]' <<<"$report"; then
	fail "--report: an unescaped [6.6.6.6] in the summary"
else
	pass "--report: no unescaped [6.6.6.6] anywhere in the summary"
fi
"$MILTER_BIN" --config "$WORK/empty.conf" --report "$WORK/missing.log" >/dev/null 2>&1 && rc=0 || rc=$?
[ "$rc" = 1 ] && pass "--report of a missing file: exit 1" || fail "--report of a missing file: exit $rc"

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

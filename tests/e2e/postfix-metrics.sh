#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# End-to-end: the statistics (policy-milter(8), MONITORING), through a real Postfix.
#   - policy-milter logs to syslog on a private /dev/log (tests/e2e/lib/syslog.sh), with
#     stats-interval 1s and metrics on a free loopback port;
#   - swaks sessions through Postfix make known decisions (a rcpt reject twice, a mail
#     tempfail, an observed rule and an added header on a queued message), and reloads
#     (one good, one broken);
#   - promtool check metrics accepts a real scrape; anything but GET /metrics is 404;
#   - a real Prometheus scrapes the daemon, and its HTTP API gives back the exact counts;
#   - the stats: lines come through syslog every second and once more at the stop, with
#     the final counts; a second instance on the same metrics port is refused at start.
#
#   tests/e2e/postfix-metrics.sh PATH/TO/policy-milter
#
# Needs root, postfix, swaks, unshare, curl, prometheus and promtool; exits 77 (ctest:
# skipped) without them. Everything it starts is stopped on exit; the work directory is
# removed unless KEEP_E2E_DIR=1.
set -euo pipefail

MILTER_BIN=$(readlink -f "${1:?usage: $0 PATH/TO/policy-milter}")
# shellcheck source=tools/postfix-rig.sh
. "$(dirname "$0")/../../tools/postfix-rig.sh"
# shellcheck source=tests/e2e/lib/syslog.sh
. "$(dirname "$0")/lib/syslog.sh"
rig_require
for tool in curl prometheus promtool; do
	command -v "$tool" >/dev/null || skip "$tool is not installed"
done
unshare --mount --propagation private true 2>/dev/null || skip "unshare --mount is not permitted here"

rig_init policy-milter-metrics
WORK=$RIG_DIR
PROM_PID=""

show_prometheus_log() { echo "--- prometheus"; tail -n 20 "$WORK/prometheus.log" 2>/dev/null || true; }
cleanup() {
	local rc=$?
	if [ -n "$PROM_PID" ]; then kill -TERM "$PROM_PID" 2>/dev/null || true; wait "$PROM_PID" 2>/dev/null || true; fi
	syslog_rig_cleanup "$rc" show_prometheus_log
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat > "$WORK/rules.conf" <<'EOF_RULES'
rule "busy-sender" at mail when sender == "busy@example.net" tempfail
rule "unknown-user" at rcpt when recipient == "nobody@example.org"
    reject 550 5.1.1 "<{recipient}>: Recipient address rejected: User unknown"
rule "stamp" at message add-header "X-Policy-Milter" "checked"
rule "lottery" at message when header["Subject"] matches /lottery/i reject observe
EOF_RULES

free_ports SMTP_PORT MILTER_PORT METRICS_PORT PROM_PORT
METRICS=127.0.0.1:$METRICS_PORT

# --- start: syslog on a private /dev/log, metrics on loopback ------------------------------------

syslog_start || { fail "the syslog catcher did not start"; exit 1; }
MILTER_WRAP=("${PRIVATE_DEVLOG[@]}") MILTER_LOG_TO=syslog
CONTROL=$WORK/control.sock
printf 'control = unix:%s\n' "$CONTROL" > "$WORK/ctl.conf"
milter_start "$MILTER_BIN" "$WORK/rules.conf" "$MILTER_PORT" --metrics "$METRICS" --stats-interval 1s \
	--control "unix:$CONTROL" \
	|| { fail "policy-milter did not listen on $MILTER_PORT"; exit 1; }
PID=$MILTER_PID
postfix_start "$SMTP_PORT" "$MILTER_PORT" e2e.localdomain \
	|| { fail "Postfix did not start on 127.0.0.1:$SMTP_PORT"; exit 1; }

# syslog_has ERE: a line of policy-milter (this PID) at mail.info whose message is ERE.
syslog_has() {
	syslog_line "<22>[A-Z][a-z]{2} [ 0-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} policy-milter\\[$PID\\]: $1"
}
if wait_for 5 syslog_has "$(ere_quote "metrics: serving http://$METRICS/metrics")" >/dev/null; then
	pass "syslog: metrics: serving http://$METRICS/metrics"
else fail "syslog: no 'metrics: serving' line"; fi

# --- the same start again: the metrics port is taken ---------------------------------------------

second=$(timeout 10 "$MILTER_BIN" --config "$WORK/empty.conf" --rules "$WORK/rules.conf" --foreground \
	--log stderr --socket "inet:$(free_port)@127.0.0.1" --metrics "$METRICS" 2>&1) && rc=0 || rc=$?
if [ "$rc" = 75 ] && grep -qF "not started: metrics: cannot listen on $METRICS: Address already in use" <<<"$second"; then
	pass "a second instance on the metrics port: refused, exit 75"
else
	fail "a second instance on the metrics port: exit $rc: $second"
fi
out=$("$MILTER_BIN" --config "$WORK/empty.conf" --rules "$WORK/rules.conf" --check --metrics localhost:1 2>&1) && rc=0 || rc=$?
if [ "$rc" = 2 ] && grep -qF "metrics 'localhost:1': 'localhost' is not an IPv4 address" <<<"$out"; then
	pass "--check: a host name as metrics is refused, exit 2"
else
	fail "--check --metrics localhost:1: exit $rc: $out"
fi

# --- known decisions through Postfix --------------------------------------------------------------

for i in 1 2; do
	expect_line "rcpt reject $i" '<** 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown' \
		--from alice@example.net --to nobody@example.org --quit-after RCPT
done
expect_line "mail tempfail" '<** 451 4.7.1 Temporarily rejected by policy, try again later' \
	--from busy@example.net --to bob@example.org --quit-after RCPT
expect_queued "queued, header added, lottery observed" --from alice@example.net --to bob@example.org \
	--header "Subject: lottery"
kill -HUP "$PID"
wait_for 5 syslog_has "reloaded: .*" >/dev/null && pass "reload: ok" || fail "reload: no 'reloaded:' line"
cp "$WORK/rules.conf" "$WORK/rules.good"
echo 'rule "broken" at nowhere reject' >> "$WORK/rules.conf"
kill -HUP "$PID"
if wait_for 5 grep -q "reload of $WORK/rules.conf failed" "$SYSLOG_FILE"; then pass "reload: failed as meant"
else fail "reload: no failed reload"; fi
cp "$WORK/rules.good" "$WORK/rules.conf"

# --- one scrape: promtool, 404s --------------------------------------------------------------------

scrape=$(curl -sS --max-time 5 "http://$METRICS/metrics")
if out=$(promtool check metrics <<<"$scrape" 2>&1) && [ -z "$out" ]; then
	pass "promtool check metrics: a real scrape ($(wc -l <<<"$scrape") lines) is clean"
else
	fail "promtool check metrics: $out"
fi
# metric_is NAME_AND_LABELS VALUE: the scrape has the sample exactly.
metric_is() {
	if grep -qxF "$1 $2" <<<"$scrape"; then pass "scrape: $1 $2"
	else fail "scrape: no '$1 $2'; $(grep -F "${1%%\{*}" <<<"$scrape" | grep -v '^#' | head -5 | tr '\n' ';')"; fi
}
metric_is 'policy_milter_decisions_total{stage="rcpt",rule="unknown-user",action="reject"}' 2
metric_is 'policy_milter_decisions_total{stage="mail",rule="busy-sender",action="tempfail"}' 1
metric_is 'policy_milter_decisions_total{stage="message",rule="stamp",action="add-header"}' 1
metric_is 'policy_milter_decisions_total{stage="message",rule="lottery",action="would-reject"}' 1
metric_is 'policy_milter_replies_total{code="550"}' 2
metric_is 'policy_milter_replies_total{code="451"}' 1
metric_is 'policy_milter_connections_total' 4
metric_is 'policy_milter_messages_total' 1
metric_is 'policy_milter_store_errors_total' 0
metric_is 'policy_milter_reloads_total{result="ok"}' 1
metric_is 'policy_milter_reloads_total{result="failed"}' 1
metric_is 'policy_milter_callback_duration_seconds_count{callback="connect"}' 4
metric_is 'policy_milter_callback_duration_seconds_count{callback="eom"}' 1
metric_is 'policy_milter_callback_duration_seconds_count{callback="envfrom"}' 4
metric_is 'policy_milter_callback_duration_seconds_bucket{callback="envrcpt",le="+Inf"}' 3
for request in "/" "/metrics/x" "/metric"; do
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$METRICS$request")
	check "GET $request: $code, 404" [ "$code" = 404 ]
done
for method in POST PUT DELETE HEAD OPTIONS; do
	if [ "$method" = HEAD ]; then set -- -I; else set -- -X "$method"; fi
	code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "http://$METRICS/metrics" || true)
	check "$method /metrics: $code, 404" [ "$code" = 404 ]
done

# --- a flood of idle connections to the metrics port: the daemon's descriptors stay bounded ----------

fds() { find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
fds_before=$(fds)
# 300 connections that send nothing, held for 8 s (past the 5-s read timeout).
python3 -c '
import socket, sys, time
held = []
for _ in range(300):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", int(sys.argv[1])))
    held.append(s)
time.sleep(8)
' "$METRICS_PORT" &
flood=$!
sleep 2
fds_during=$(fds)
expect_line "during the flood: Postfix still gets the milter's reply" \
	'<** 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown' \
	--from alice@example.net --to nobody@example.org --quit-after RCPT
check "during the flood: $fds_during descriptors open, $fds_before before (at most 12 more)" \
	[ "$fds_during" -le $((fds_before + 12)) ]
wait "$flood" || true
if wait_for 10 eval 'curl -sf --max-time 2 "http://$METRICS/metrics" >/dev/null'; then
	pass "after the flood: /metrics answers again"
else fail "after the flood: /metrics does not answer"; fi

# --- review finding: endless header lines once grew the daemon by 500 MB in 15 s -------------------

rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
rss_before=$(rss)
python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
end = time.time() + 6
try:
    while time.time() < end:
        s.sendall(b"X-A: " + b"a" * 8000 + b"\r\n")
except OSError:
    pass
' "$METRICS_PORT" || true
rss_after=$(rss)
check "endless header lines: RSS ${rss_before} kB before, ${rss_after} kB after (at most 4 MB more)" \
	[ "$rss_after" -le $((rss_before + 4096)) ]

# --- a real Prometheus scrapes it --------------------------------------------------------------------

cat > "$WORK/prometheus.yml" <<EOF_PROM
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: policy-milter
    static_configs:
      - targets: ['$METRICS']
EOF_PROM
setsid prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" > "$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
# query PROMQL: the API's answer as "labels value" lines, sorted.
query() {
	curl -sS --max-time 5 -G "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
		python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["status"] == "success", r
for s in r["data"]["result"]:
    m = s["metric"]
    labels = ",".join(k + "=" + m[k] for k in sorted(m) if k not in ("instance", "job", "__name__"))
    print(labels, s["value"][1])
' | sort
}
up() { [ "$(query 'up{job="policy-milter"}')" = " 1" ]; }
if wait_for 30 up; then pass "Prometheus scrapes the daemon (up == 1)"
else fail "Prometheus: the target is not up: $(query up)"; fi
expected="action=add-header,rule=stamp,stage=message 1
action=reject,rule=unknown-user,stage=rcpt 3
action=tempfail,rule=busy-sender,stage=mail 1
action=would-reject,rule=lottery,stage=message 1"
got=$(query policy_milter_decisions_total)
if [ "$got" = "$expected" ]; then pass "Prometheus API: policy_milter_decisions_total, every series exact"
else fail "Prometheus API: policy_milter_decisions_total is: $got"; fi
check "Prometheus API: connections 5" [ "$(query policy_milter_connections_total)" = " 5" ]
check "Prometheus API: reloads" [ "$(query policy_milter_reloads_total)" = "$(printf 'result=failed 1\nresult=ok 1')" ]
got=$(query 'sum(policy_milter_callback_duration_seconds_count{callback=~"envfrom|envrcpt"})')
check "Prometheus API: envfrom and envrcpt timed, 9 callbacks ($got)" [ "$got" = " 9" ]
got=$(query 'histogram_quantile(0.5, sum by (le) (policy_milter_callback_duration_seconds_bucket{callback="envrcpt"}))')
if [[ $got =~ ^\ [0-9.e-]+$ ]]; then pass "Prometheus API: histogram_quantile of envrcpt: $got s"
else fail "Prometheus API: histogram_quantile: '$got'"; fi

# --- the stats: lines through syslog -----------------------------------------------------------------

summary='stats: since [0-9T:-]+Z \([0-9]+s\): connections=5 messages=1 decisions=6 replies=451:1,550:3 store-errors=0 reloads=1 reload-failures=1'
if wait_for 5 syslog_has "$summary" >/dev/null; then pass "syslog every second: $(syslog_has "$summary" | sed 's/^.*: stats:/stats:/')"
else fail "syslog: no summary line '$summary'"; fi
for line in 'stats: rule=busy-sender decisions=1 mail:tempfail=1' \
	'stats: rule=lottery decisions=1 message:would-reject=1' \
	'stats: rule=stamp decisions=1 message:add-header=1' \
	'stats: rule=unknown-user decisions=3 rcpt:reject=3'; do
	if syslog_has "$(ere_quote "$line")" >/dev/null; then pass "syslog: $line"
	else fail "syslog: no line '$line'"; fi
done
n=$(grep -cE "policy-milter\[$PID\]: stats: since " "$SYSLOG_FILE" || true)
check "syslog: a summary each second ($n so far)" [ "$n" -ge 2 ]

# --- the same lines through the control socket ------------------------------------------------------

ctl_out=$("$MILTER_BIN" -c "$WORK/ctl.conf" --ctl stats 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && grep -qE "^$summary\$" <<<"$ctl_out" &&
	[ "$(tail -n +2 <<<"$ctl_out")" = "stats: rule=busy-sender decisions=1 mail:tempfail=1
stats: rule=lottery decisions=1 message:would-reject=1
stats: rule=stamp decisions=1 message:add-header=1
stats: rule=unknown-user decisions=3 rcpt:reject=3" ]; then
	pass "--ctl stats: the summary and the rule lines, as in the log"
else
	fail "--ctl stats: exit $rc: $ctl_out"
fi

# --- the stop: one last summary, then 'stopped:' ----------------------------------------------------

expect_line "one more rcpt reject" '<** 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown' \
	--from alice@example.net --to nobody@example.org --quit-after RCPT
postfix_stop
# A client that sends its request a byte a second (httplib's timeouts are per read): the
# stop does not wait for it beyond 2 s.
python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    for i in range(60):
        s.send(b"G" if i == 0 else b"x")
        if i == 1:
            open(sys.argv[2], "w").close()  # connected, the request begun
        time.sleep(1)
except OSError:
    pass
' "$METRICS_PORT" "$WORK/slow-client-sending" &
slow=$!
wait_for 10 test -e "$WORK/slow-client-sending" || fail "the slow HTTP client did not connect"
before=$(wc -l < "$SYSLOG_FILE")
started=$(date +%s)
rc=0; milter_stop 20 || rc=$?
took=$(($(date +%s) - started))
kill "$slow" 2>/dev/null || true; wait "$slow" 2>/dev/null || true
check "SIGTERM: stopped, exit 0 ($rc)" [ "$rc" = 0 ]
check "SIGTERM with a slow HTTP client: stopped in $took s (at most 10)" [ "$took" -le 10 ]
wait_for 5 syslog_has "stopped: .*" >/dev/null || true
tail_lines=$(tail -n +"$((before + 1))" "$SYSLOG_FILE" | sed -n "s/^<22>.* policy-milter\[$PID\]: //p")
last=$(sed -n '/^stopping on SIGTERM$/,$p' <<<"$tail_lines")
if grep -qE "^stats: since [0-9T:-]+Z \([0-9]+s\): connections=6 messages=1 decisions=7 replies=451:1,550:4 " <<<"$last" &&
	grep -qxF 'stats: rule=unknown-user decisions=4 rcpt:reject=4' <<<"$last" &&
	[ "$(tail -n 1 <<<"$last")" = "stopped: 4 rules from $WORK/rules.conf" ]; then
	pass "at stop: the final summary and rule lines, then 'stopped:'"
	if grep -qxF "metrics: a client is still sending its request; not waiting for it" <<<"$(tail -n +"$((before + 1))" "$SYSLOG_FILE" | sed -n "s/^<20>.* policy-milter\[$PID\]: //p")"; then
		pass "at stop: the slow HTTP client is logged at warning (<20>) and not waited for"
	else
		fail "at stop: no warning about the slow HTTP client"
	fi
else
	fail "at stop: the lines after 'stopping on SIGTERM' were: $last"
fi
if curl -s --max-time 2 "http://$METRICS/metrics" >/dev/null; then fail "metrics still answer after the stop"
else pass "metrics: the port is closed after the stop"; fi

echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]

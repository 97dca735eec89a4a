# shellcheck shell=bash
# SPDX-License-Identifier: BSD-2-Clause
# The one shell library of the tests, the benchmarks and packaging/demo: processes and
# ports, policy-milter in the background, swaks sessions and checks, a private
# redis-server. Source it; tools/postfix-rig.sh (a private Postfix) sources it too.
#
#   TOOLS                        the directory of tools/ (this file's)
#   skip REASON                  prints "SKIP: REASON" and exits 77 (ctest: skipped)
#   alive PID                    exists and is not a zombie
#   listening PORT               something listens on 127.0.0.1:PORT (TCP)
#   wait_for SECONDS COMMAND...  polls COMMAND every 0.1 s until it succeeds
#   free_port                    a free TCP port on 127.0.0.1
#   free_ports VAR...            sets each VAR to a free TCP port on 127.0.0.1, all different
#   work_init NAME               creates RIG_DIR=/tmp/NAME.XXXXXX (mode 755: MTA users must
#                                traverse it), MILTER_LOG and an empty config file
#   rig_remove KEEP              removes RIG_DIR unless KEEP is 1
#   milter_start BIN RULES PORT|SPEC [ARG...]
#                                policy-milter on inet:PORT@127.0.0.1 (or on SPEC, such as
#                                unix:/path) in its own session, stderr to MILTER_LOG; sets
#                                MILTER_PID, fails if it does not listen within 10 s;
#                                MILTER_LOG_TO=syslog logs to syslog instead
#   milter_stop [SECONDS], milter_log_has ERE
#   redis_start DIR PORT         a private redis-server on 127.0.0.1:PORT, its files and log
#                                (redis.log) in DIR, no persistence unless DIR/redis.rdb is
#                                saved by redis_stop; sets REDIS_PID; fails if it does not
#                                answer PING within 10 s
#   redis_stop [save]            stops it (with "save": writes DIR/redis.rdb first, which
#                                the next redis_start in DIR loads)
#   smtp_session SWAKS_ARG...    one swaks session against 127.0.0.1:SMTP_PORT
#   smtp_commands                filter: the commands and replies of a swaks transcript
#   ere_quote TEXT               TEXT as an ERE that matches only itself
#   pass TEXT, fail TEXT         count into PASSED and FAILED, print "ok ..." or "FAIL ..."
#   check NAME COMMAND...        pass NAME if COMMAND succeeds, else fail NAME (never exits)
#   check_session NAME ERE       a check: a line of SESSION is ERE (whole line)
#   expect_reply NAME ERE SWAKS_ARG...
#                                a session into SESSION, then check_session
#   expect_line NAME LINE SWAKS_ARG...
#                                the same for exactly LINE, with HELO client.example unless
#                                the arguments name another
#   expect_queued NAME SWAKS_ARG...
#                                the same for the MTA's "queued" line (QUEUED_ERE, set by
#                                the MTA rig)
#
# tools/results-splice writes a benchmark's section into bench/RESULTS.md, and
# tools/private-devlog runs a program with a private /dev/log: both are programs, not
# functions, so that Python and C++ use them too.

RIG_DIR="" MILTER_PID="" MILTER_LOG="" SMTP_PORT="" REDIS_PID="" REDIS_PORT="" PASSED=0 FAILED=0
# The directory of this library, where its programs are.
# shellcheck disable=SC2034  # for the scripts that source this
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

skip() { echo "SKIP: $*"; exit 77; }

# --- processes --------------------------------------------------------------------------

# alive PID: exists and is not a zombie (a stopped Postfix master may linger as one).
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [ "${st:0:1}" != Z ]; }
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q LISTEN; }
wait_for() {  # wait_for SECONDS COMMAND...: poll every 0.1 s
	local deadline=$((SECONDS + $1)); shift
	until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.1; done
}
free_port() { local _fp_port; free_ports _fp_port && echo "$_fp_port"; }
# All bound at once, so no two can be the same port. The locals' odd names keep them from
# hiding a caller's variable of the same name from printf -v.
free_ports() {
	local _fp_ports _fp_name _fp_i=0
	read -r -a _fp_ports < <(python3 -c '
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))' "$#")
	[ "${#_fp_ports[@]}" = $# ] || return 1
	for _fp_name; do printf -v "$_fp_name" %s "${_fp_ports[_fp_i]}"; _fp_i=$((_fp_i + 1)); done
}

work_init() {
	RIG_DIR=$(mktemp -d "/tmp/$1.XXXXXX")
	chmod 755 "$RIG_DIR"
	MILTER_LOG=$RIG_DIR/milter.log
	: > "$RIG_DIR/empty.conf"  # no system-wide policy-milter.conf may leak in
}

rig_remove() {  # rig_remove KEEP: removes RIG_DIR unless KEEP is 1
	[ -n "$RIG_DIR" ] || return 0
	if [ "$1" = 1 ]; then echo "kept $RIG_DIR"; else rm -rf "$RIG_DIR"; fi
}

# --- policy-milter ------------------------------------------------------------------------

# milter_listening SPEC: a libmilter socket SPEC (inet:PORT@HOST or unix:/path) is there.
milter_listening() {
	case $1 in
		unix:* | local:*) [ -S "${1#*:}" ] ;;
		inet:*) local port=${1#inet:}; listening "${port%%@*}" ;;
		*) return 1 ;;
	esac
}

# In its own session, so that a Ctrl-C at the terminal reaches only the script, whose trap
# stops the MTA first.
milter_start() {
	local bin=$1 rules=$2 spec=$3; shift 3
	case $spec in *:*) ;; *) spec=inet:$spec@127.0.0.1 ;; esac
	# MILTER_WRAP (array): a command prefix, such as tools/private-devlog SOCKET.
	${MILTER_WRAP[@]+"${MILTER_WRAP[@]}"} setsid "$bin" --config "$RIG_DIR/empty.conf" \
		--foreground --log "${MILTER_LOG_TO:-stderr}" --rules "$rules" \
		--socket "$spec" "$@" 2> "$MILTER_LOG" &
	MILTER_PID=$!
	wait_for 10 milter_listening "$spec"
}

# milter_stop [SECONDS]: SIGTERM, then wait for the exit (libmilter polls its listening
# socket every few seconds before smfi_main returns), SIGKILL after SECONDS (20).
# Returns the milter's exit code, or 124 when it had to be killed. MILTER_PID is kept until
# the milter is gone, so that an EXIT trap that runs during the wait stops it too.
milter_stop() {
	local pid=$MILTER_PID rc=0
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_for "${1:-20}" eval '! alive '"$pid"; then
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		MILTER_PID=""
		return 124
	fi
	wait "$pid" 2>/dev/null || rc=$?
	MILTER_PID=""
	return $rc
}

milter_log_has() { grep -qE -- "$1" "$MILTER_LOG"; }

# --- redis-server ---------------------------------------------------------------------------

redis_answers() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

redis_start() {
	local dir=$1
	REDIS_PORT=$2
	setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$dir" --dbfilename redis.rdb --daemonize no >> "$dir/redis.log" 2>&1 &
	REDIS_PID=$!
	wait_for 10 redis_answers
}

redis_stop() {
	[ -n "$REDIS_PID" ] || return 0
	if [ "${1:-}" = save ]; then
		redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown save >/dev/null 2>&1 \
			|| kill "$REDIS_PID" 2>/dev/null || true
	else
		kill -TERM "$REDIS_PID" 2>/dev/null || true
	fi
	wait "$REDIS_PID" 2>/dev/null || true
	REDIS_PID=""
}

# --- SMTP sessions and checks -------------------------------------------------------------------

pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
check() {
	local name=$1; shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}

smtp_session() {
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --timeout 30 "$@" 2>&1 || true
}

# ere_quote TEXT: TEXT as an extended regular expression that matches only itself.
ere_quote() { sed 's/[][\.*^$+?(){}|]/\\&/g' <<<"$1"; }

# The SMTP commands and the server's replies of a swaks transcript: no EHLO keyword lines,
# no message.
smtp_commands() { grep -E '^(<-|<\*\*|\*\*\*) |^ -> [A-Z]+( |$)' | grep -vE '^<-  250-' || true; }

# check_session NAME ERE: a line of SESSION is ERE (whole line). Counts, does not fail.
check_session() {
	local name=$1 ere=$2 line
	if line=$(grep -m1 -xE -- "$ere" <<<"$SESSION"); then
		pass "$name: $line"
	else
		fail "$name: no line \"$ere\", the session was:"
		smtp_commands <<<"$SESSION" | sed 's/^/     /'
	fi
}

# expect_reply NAME ERE SWAKS_ARG...: one session into SESSION, then check_session.
expect_reply() {
	local name=$1 ere=$2; shift 2
	SESSION=$(smtp_session "$@")
	check_session "$name" "$ere"
}

# expect_line NAME LINE SWAKS_ARG...: one session shows exactly LINE.
expect_line() {
	local name=$1 line=$2; shift 2
	expect_reply "$name" "$(ere_quote "$line")" --helo client.example "$@"
}

# expect_queued NAME SWAKS_ARG...: the MTA queued the message.
expect_queued() {
	local name=$1; shift
	expect_reply "$name" "$QUEUED_ERE" --helo client.example "$@"
}

# shellcheck shell=bash
# A private Postfix on 127.0.0.1 beside policy-milter, for tests/e2e/postfix-e2e.sh and
# packaging/demo. Source it. The Postfix instance has its own config and queue directory
# under a temporary work directory, takes mail from 127.0.0.0/8 only and delivers nothing
# (every transport is discard); the system's Postfix, if any, is left alone.
#
#   rig_missing                  what this machine lacks (root, postfix, swaks...), or nothing
#   rig_init NAME                creates RIG_DIR=/tmp/NAME.XXXXXX and the paths below
#   milter_start BIN RULES PORT [ARG...]
#                                policy-milter on inet:PORT@127.0.0.1 in its own session,
#                                stderr to MILTER_LOG; sets MILTER_PID, fails if it does not
#                                listen within 10 s
#   postfix_start SMTP_PORT MILTER_PORT HOSTNAME [MAIN_CF_LINE...]
#                                Postfix on 127.0.0.1:SMTP_PORT with smtpd_milters pointing
#                                at the milter, logging to PF_MAILLOG; fails if it does not
#                                listen within 10 s
#   milter_stop [SECONDS], postfix_stop, rig_stop (both), rig_show_logs, rig_remove KEEP
#   alive PID, listening PORT, wait_for SECONDS COMMAND..., free_port, milter_log_has ERE
#   smtp_session SWAKS_ARG...    one swaks session against the private Postfix
#   smtp_commands                filter: the commands and replies of a swaks transcript
#   check_session NAME ERE       a check: a line of SESSION is ERE (whole line)
#   expect_reply NAME ERE SWAKS_ARG...
#                                a session into SESSION, then check_session
#
# Checks count into PASSED and FAILED and print "ok ..." or "FAIL ...".

RIG_DIR="" MILTER_PID="" SMTP_PORT="" PASSED=0 FAILED=0
# shellcheck disable=SC2034  # for the scripts that source this
# swaks shows the server's answer to DATA's end like this when the message is accepted.
QUEUED_ERE='<-  250 2\.0\.0 Ok: queued as [0-9A-Za-z]+'

# --- processes --------------------------------------------------------------------------

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

rig_missing() {
	if [ "$(id -u)" != 0 ]; then echo "must run as root (Postfix needs it)"; return; fi
	local tool
	for tool in postfix swaks python3 ss setsid; do
		command -v "$tool" >/dev/null || { echo "$tool is not installed"; return; }
	done
}

rig_init() {
	RIG_DIR=$(mktemp -d "/tmp/$1.XXXXXX")
	chmod 755 "$RIG_DIR"  # the postfix user must traverse it
	PF_CONF=$RIG_DIR/postfix/etc PF_SPOOL=$RIG_DIR/postfix/spool PF_DATA=$RIG_DIR/postfix/data
	PF_MAILLOG=$RIG_DIR/postfix/maillog MILTER_LOG=$RIG_DIR/milter.log
	: > "$RIG_DIR/empty.conf"  # no system-wide policy-milter.conf may leak in
}

# --- policy-milter ------------------------------------------------------------------------

# In its own session, so that a Ctrl-C at the terminal reaches only the script, whose trap
# stops Postfix first.
milter_start() {
	local bin=$1 rules=$2 port=$3; shift 3
	setsid "$bin" --config "$RIG_DIR/empty.conf" --foreground --log stderr --rules "$rules" \
		--socket "inet:$port@127.0.0.1" "$@" 2> "$MILTER_LOG" &
	MILTER_PID=$!
	wait_for 10 listening "$port"
}

# milter_stop [SECONDS]: SIGTERM, then wait for the exit (libmilter polls its listening
# socket every few seconds before smfi_main returns), SIGKILL after SECONDS (20).
# Returns the milter's exit code, or 124 when it had to be killed.
milter_stop() {
	local pid=$MILTER_PID rc=0
	[ -n "$pid" ] || return 0
	MILTER_PID=""
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_for "${1:-20}" eval '! alive '"$pid"; then
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		return 124
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return $rc
}

milter_log_has() { grep -qE -- "$1" "$MILTER_LOG"; }

# --- Postfix ------------------------------------------------------------------------------

postfix_start() {
	local smtp_port=$1 milter_port=$2 hostname=$3; shift 3
	SMTP_PORT=$smtp_port
	mkdir -p "$PF_CONF" "$PF_SPOOL" "$PF_DATA"
	chown postfix:postfix "$PF_DATA"
	cat > "$PF_CONF/main.cf" <<-EOF
	compatibility_level = 3.6
	queue_directory = $PF_SPOOL
	data_directory = $PF_DATA
	maillog_file = $PF_MAILLOG
	maillog_file_prefixes = $RIG_DIR
	myhostname = $hostname
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
	smtpd_milters = inet:127.0.0.1:$milter_port
	non_smtpd_milters =
	milter_protocol = 6
	milter_default_action = tempfail
	milter_connect_timeout = 10s
	milter_command_timeout = 10s
	milter_content_timeout = 30s
	EOF
	[ $# -eq 0 ] || printf '%s\n' "$@" >> "$PF_CONF/main.cf"
	# Column 5 (chroot) is n everywhere: nothing needs copying into a jail.
	cat > "$PF_CONF/master.cf" <<-EOF
	127.0.0.1:$smtp_port inet n - n - - smtpd
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
	touch -d '-10 seconds' "$PF_CONF/main.cf" "$PF_CONF/master.cf"
	postfix -c "$PF_CONF" check || return 1
	postfix -c "$PF_CONF" start >/dev/null 2>&1 || { echo "postfix start failed" >&2; return 1; }
	wait_for 10 listening "$smtp_port"
}

master_pid() { [ -r "$PF_SPOOL/pid/master.pid" ] && tr -dc '0-9' < "$PF_SPOOL/pid/master.pid"; }

postfix_stop() {
	[ -n "$RIG_DIR" ] && [ -d "$PF_CONF" ] || return 0
	local pid; pid=$(master_pid) || return 0
	[ -n "$pid" ] && alive "$pid" || return 0
	postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
	wait_for 10 eval '! alive '"$pid" || { postfix -c "$PF_CONF" abort >/dev/null 2>&1 || true; sleep 1; }
	alive "$pid" && kill -9 "$pid" 2>/dev/null || true
}

# --- the whole rig ----------------------------------------------------------------------------

rig_stop() { postfix_stop; milter_stop 20 || true; }

rig_show_logs() {
	echo "--- policy-milter log ($MILTER_LOG)"; tail -n 60 "$MILTER_LOG" 2>/dev/null || true
	echo "--- Postfix log ($PF_MAILLOG)"; tail -n 40 "$PF_MAILLOG" 2>/dev/null || true
}

rig_remove() {  # rig_remove KEEP: removes RIG_DIR unless KEEP is 1
	[ -n "$RIG_DIR" ] || return 0
	if [ "$1" = 1 ]; then echo "kept $RIG_DIR"; else rm -rf "$RIG_DIR"; fi
}

# --- SMTP sessions and checks -------------------------------------------------------------------

pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

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

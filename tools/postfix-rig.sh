# shellcheck shell=bash
# SPDX-License-Identifier: BSD-2-Clause
# A private Postfix on 127.0.0.1 beside policy-milter, for the end-to-end tests, the
# Postfix benchmark (bench/run-mta-bench) and packaging/demo. Source it. The Postfix
# instance has its own config and queue directory under a temporary work directory, takes
# mail from 127.0.0.0/8 only and delivers nothing (every transport is discard); the
# system's Postfix, if any, is left alone.
#
# It sources tools/lib.sh (work_init, milter_start, smtp_session, the checks...) and adds:
#
#   rig_missing                  what this machine lacks (root, postfix, swaks...), or nothing
#   rig_require                  skip (exit 77) naming what rig_missing names, if anything
#   rig_init NAME                work_init NAME and the Postfix paths below
#   postfix_start SMTP_PORT MILTER_PORT|MILTER HOSTNAME [MAIN_CF_LINE...]
#                                Postfix on 127.0.0.1:SMTP_PORT with smtpd_milters pointing
#                                at the milter (inet:127.0.0.1:MILTER_PORT, or MILTER as
#                                Postfix writes it, such as unix:/path), logging to
#                                PF_MAILLOG; fails if it does not listen within 10 s. An
#                                smtp service is there for a transport_maps entry.
#   postfix_stop, rig_stop (Postfix and the milter), rig_show_logs
#   QUEUED_ERE                   the line swaks shows when Postfix queued the message

# shellcheck source=tools/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# shellcheck disable=SC2034  # for the scripts that source this
# swaks shows the server's answer to DATA's end like this when the message is accepted.
QUEUED_ERE='<-  250 2\.0\.0 Ok: queued as [0-9A-Za-z]+'

rig_missing() {
	if [ "$(id -u)" != 0 ]; then echo "must run as root (Postfix needs it)"; return; fi
	local tool
	for tool in postfix swaks python3 ss setsid; do
		command -v "$tool" >/dev/null || { echo "$tool is not installed"; return; }
	done
}

rig_require() {
	local missing
	missing=$(rig_missing)
	[ -z "$missing" ] || skip "$missing"
}

rig_init() {
	work_init "$1"
	PF_CONF=$RIG_DIR/postfix/etc PF_SPOOL=$RIG_DIR/postfix/spool PF_DATA=$RIG_DIR/postfix/data
	PF_MAILLOG=$RIG_DIR/postfix/maillog
}

# --- Postfix ------------------------------------------------------------------------------

postfix_start() {
	local smtp_port=$1 milter_port=$2 hostname=$3 milter; shift 3
	SMTP_PORT=$smtp_port
	case $milter_port in *:*) milter=$milter_port ;; *) milter=inet:127.0.0.1:$milter_port ;; esac
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
	smtpd_milters = $milter
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
	smtp      unix  - - n -  - smtp
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

# shellcheck shell=bash
# A private syslog for a program under test: a catcher on a unix datagram socket that keeps
# every message exactly as the program's syslog(3) sent it ("<PRI>" included, so facility
# and severity can be checked), and a command prefix that runs a program in a private mount
# namespace whose /dev/log is that socket (tools/private-devlog). The host's /dev and syslog
# are left alone. Source it after tools/lib.sh.
#
#   syslog_start              the catcher on RIG_DIR/devlog, one line per message into
#                             SYSLOG_FILE (RIG_DIR/syslog); fails if it is not up in 5 s
#   syslog_stop               stops the catcher
#   syslog_line ERE           prints the first line of SYSLOG_FILE that is ERE (whole line)
#   PRIVATE_DEVLOG            (array, set by syslog_start) a command prefix: the rest of
#                             the command line runs with the same PID in a mount namespace
#                             whose /dev/log is the catcher's socket (tools/private-devlog).
#                             For example MILTER_WRAP=("${PRIVATE_DEVLOG[@]}") before
#                             milter_start.

SYSLOG_FILE="" SYSLOG_PID=""

SYSLOG_CATCHER='
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)  # the program may have dropped privileges
with open(out, "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\0\n") + b"\n")
'

syslog_start() {
	SYSLOG_FILE=$RIG_DIR/syslog
	: > "$SYSLOG_FILE"
	setsid python3 -c "$SYSLOG_CATCHER" "$RIG_DIR/devlog" "$SYSLOG_FILE" \
		</dev/null >"$RIG_DIR/syslog-catcher.out" 2>&1 &
	SYSLOG_PID=$!
	# shellcheck disable=SC2034  # for the scripts that source this
	PRIVATE_DEVLOG=("$TOOLS/private-devlog" "$RIG_DIR/devlog")
	wait_for 5 test -S "$RIG_DIR/devlog"
}

syslog_stop() {
	[ -n "$SYSLOG_PID" ] || return 0
	kill -TERM "$SYSLOG_PID" 2>/dev/null || true
	wait "$SYSLOG_PID" 2>/dev/null || true
	SYSLOG_PID=""
}

syslog_line() { grep -m1 -xE -- "$1" "$SYSLOG_FILE"; }

# syslog_rig_cleanup RC [SHOW_MORE]: the end of an e2e script with a private syslog, for
# its EXIT trap: stops Postfix, the milter and the catcher; when RC or a check failed,
# shows their logs (and calls SHOW_MORE, a function, for the script's own); then removes
# the rig unless KEEP_E2E_DIR=1.
syslog_rig_cleanup() {
	local rc=$1 show_more=${2:-}
	rig_stop
	syslog_stop
	if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
		rig_show_logs
		echo "--- syslog ($SYSLOG_FILE)"; tail -n 40 "$SYSLOG_FILE" 2>/dev/null || true
		[ -z "$show_more" ] || "$show_more"
	fi
	rig_remove "${KEEP_E2E_DIR:-0}"
}

# shellcheck shell=bash
# A private syslog for a program under test: a catcher on a unix datagram socket that keeps
# every message exactly as the program's syslog(3) sent it ("<PRI>" included, so facility
# and severity can be checked), and a command prefix that runs a program in a private mount
# namespace whose /dev/log is that socket. The host's /dev and syslog are left alone.
# Source it after lib/common.sh.
#
#   syslog_start              the catcher on RIG_DIR/devlog, one line per message into
#                             SYSLOG_FILE (RIG_DIR/syslog); fails if it is not up in 5 s
#   syslog_stop               stops the catcher
#   syslog_line ERE           prints the first line of SYSLOG_FILE that is ERE (whole line)
#   PRIVATE_DEVLOG            (array, set by syslog_start) a command prefix: the rest of
#                             the command line runs with the same PID (unshare and sh exec)
#                             in a mount namespace whose /dev is a small tmpfs with null,
#                             zero, full, random, urandom, fd and log, the catcher's socket.
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

# $1: the socket. The new /dev is built aside and moved over /dev, so that the host's
# device nodes stay reachable while it is filled; then the command runs in its place.
# shellcheck disable=SC2016  # expanded by sh -c
SYSLOG_NAMESPACE_SETUP='
set -e
sock=$1; shift
dev=$(mktemp -d "${sock%/*}/dev.XXXXXX")
mount -t tmpfs -o size=64k,mode=755 private-devlog "$dev"
for n in null zero full random urandom; do touch "$dev/$n"; mount --bind "/dev/$n" "$dev/$n"; done
ln -s /proc/self/fd "$dev/fd"
touch "$dev/log"; mount --bind "$sock" "$dev/log"
mount --move "$dev" /dev
exec "$@"
'

syslog_start() {
	SYSLOG_FILE=$RIG_DIR/syslog
	: > "$SYSLOG_FILE"
	setsid python3 -c "$SYSLOG_CATCHER" "$RIG_DIR/devlog" "$SYSLOG_FILE" \
		</dev/null >"$RIG_DIR/syslog-catcher.out" 2>&1 &
	SYSLOG_PID=$!
	# shellcheck disable=SC2034  # for the scripts that source this
	PRIVATE_DEVLOG=(unshare --mount --propagation private sh -c "$SYSLOG_NAMESPACE_SETUP" sh
		"$RIG_DIR/devlog")
	wait_for 5 test -S "$RIG_DIR/devlog"
}

syslog_stop() {
	[ -n "$SYSLOG_PID" ] || return 0
	kill -TERM "$SYSLOG_PID" 2>/dev/null || true
	wait "$SYSLOG_PID" 2>/dev/null || true
	SYSLOG_PID=""
}

syslog_line() { grep -m1 -xE -- "$1" "$SYSLOG_FILE"; }

#!/bin/bash
# SPDX-License-Identifier: BSD-2-Clause
# The shared tools themselves (tools/): free_ports, results-splice and private-devlog.
#
#   tests/tools/tools-test.sh
#
# The private /dev/log check needs root and unshare, and is skipped without them (the
# others run anyway). ctest: tools_test.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tools/lib.sh
. "$top/tools/lib.sh"
work=$(mktemp -d /tmp/pm-tools-test.XXXXXX)
catcher=""
cleanup() {
	[ -z "$catcher" ] || { kill "$catcher" 2>/dev/null || true; wait "$catcher" 2>/dev/null || true; }
	rm -rf "$work"
}
trap cleanup EXIT

# --- free_ports: distinct ports, into a caller's locals of the most common names ----------------
locals() { local name i ports; free_ports name i ports; echo "$name $i $ports"; }
read -r p1 p2 p3 <<<"$(locals)"
check "free_ports: into the caller's locals name, i and ports ($p1 $p2 $p3)" \
	bash -c '[[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ && $3 =~ ^[0-9]+$ ]]' sh "$p1" "$p2" "${p3:-}"
a="" b="" c="" d="" e="" f="" g="" h=""
free_ports a b c d e f g h
check "free_ports: eight ports, all different" \
	[ "$(printf '%s\n' "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h" | sort -u | wc -l)" = 8 ]

# --- results-splice: its section only, byte for byte the rest -------------------------------------
splice() { "$top/tools/results-splice" "$work/R.md" "$@" 2>/dev/null; }
printf '# Benchmark results\n\nintro $1 \\1\n\n<!-- a:begin x -->\nold a\n<!-- a:end -->\n\nmiddle\n\n<!-- b:begin -->\nold b\n<!-- b:end -->\ntail\n' > "$work/R.md"
cp "$work/R.md" "$work/before.md"
printf '<!-- a:begin y -->\nnew a \\1 \\g<0> $&\n<!-- a:end -->\n' | splice a
check "results-splice: only section a changed, replacement text kept literally" \
	diff <(sed '5,7d' "$work/before.md") <(sed '5,7d' "$work/R.md")
check "results-splice: the new section a" \
	grep -qxF 'new a \1 \g<0> $&' "$work/R.md"
cp "$work/R.md" "$work/again.md"
sed -n '/<!-- a:begin/,/<!-- a:end -->/p' "$work/R.md" | splice a
check "results-splice: writing the same section again changes nothing" cmp "$work/again.md" "$work/R.md"
printf '<!-- c:begin -->\nc\n<!-- c:end -->\n' | splice c
check "results-splice: a section the file lacks is appended" \
	bash -c "tail -n 3 '$work/R.md' | head -n 1 | grep -qx '<!-- c:begin -->'"
check "results-splice: a section without its markers is refused, the file untouched" \
	bash -c "! echo garbage | '$top/tools/results-splice' '$work/R.md' a 2>/dev/null && grep -qx 'new a.*' '$work/R.md'"

# --- private-devlog: a relative socket path, the same PID, the line caught ------------------------
if [ "$(id -u)" != 0 ] || ! unshare --mount --propagation private true 2>/dev/null; then
	echo "skip private-devlog: needs root and unshare"
else
	(cd "$work" && exec python3 -c '
import os, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind("devlog"); os.chmod("devlog", 0o666)
with open("caught", "ab", buffering=0) as f:
    while True: f.write(s.recv(65536) + b"\n")') &
	catcher=$!
	wait_for 20 test -S "$work/devlog" || fail "private-devlog: the catcher did not start"
	(cd "$work" && "$top/tools/private-devlog" devlog sh -c 'echo $$ > pid; exec logger -t pm-tools-test "hello $$"') &
	pid=$!
	wait "$pid" || true
	check "private-devlog: the program kept the PID ($pid)" [ "$(cat "$work/pid" 2>/dev/null)" = "$pid" ]
	check "private-devlog: its syslog line reached the socket" \
		wait_for 20 grep -q "pm-tools-test: hello $pid" "$work/caught"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]

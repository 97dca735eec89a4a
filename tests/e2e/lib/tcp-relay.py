#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""tcp-relay.py HOST PORT [SOURCE_IP]: a minimal netcat for lib/dialogue.sh.

Connects to HOST:PORT from SOURCE_IP (any address of 127.0.0.0/8 is local), then copies
stdin to the connection and the connection to stdout, byte for byte and unbuffered. Exits
when the server closes the connection; at the end of stdin it only half-closes it.
"""
import os
import select
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    source = (sys.argv[3], 0) if len(sys.argv) > 3 else None
    try:
        sock = socket.create_connection((host, port), timeout=10, source_address=source)
    except OSError as e:
        sys.stderr.write(f"tcp-relay: {host}:{port}: {e}\n")
        return 1
    sock.settimeout(None)
    stdin = sys.stdin.fileno()
    inputs = [sock, stdin]
    while True:
        ready, _, _ = select.select(inputs, [], [])
        if sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                return 0
            os.write(1, data)
        if stdin in ready:
            data = os.read(stdin, 65536)
            try:
                if data:
                    sock.sendall(data)
                else:
                    sock.shutdown(socket.SHUT_WR)
                    inputs.remove(stdin)
            except OSError:
                inputs.remove(stdin)  # the server is gone; its close ends the loop


if __name__ == "__main__":
    sys.exit(main())

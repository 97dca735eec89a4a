// SPDX-License-Identifier: BSD-2-Clause
// The socket of a milter connection, which libmilter keeps to itself: to tell a session
// that continues an MTA connection from a new one, and to acknowledge at once what the
// MTA sent at a step that gets no reply.
#pragma once

#include <libmilter/mfapi.h>
#include <sys/types.h>

#include <optional>

namespace pm {

struct MilterSocket {
    int fd = -1;
    ino_t inode = 0;   // the socket's identity while it is open (a reused fd gets another)
    bool tcp = false;  // else a unix socket
};

// The socket of the connection `ctx`, from a callback of that connection; none if it
// cannot be found (quick_ack.cpp).
std::optional<MilterSocket> milter_socket_of(SMFICTX* ctx);

// A step negotiated as no-reply (SMFIP_NR_*) leaves the MTA's packet unanswered. Over
// TCP the kernel then delays its ACK (up to 40 ms), and the MTA's next packet, held back
// by Nagle's algorithm until that ACK (Postfix does not set TCP_NODELAY on its milter
// connections), waits for it: one stall per unanswered step (bench/RESULTS.md).
// TCP_QUICKACK sends the pending ACK now. Nothing for a unix socket.
void acknowledge_now(const MilterSocket& socket);

}  // namespace pm

// SPDX-License-Identifier: BSD-2-Clause
#include "milter/quick_ack.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>

namespace pm {

namespace {

// libmilter's context (struct smfi_str in libmilter/libmilter.h, not installed) has begun
// with a thread id and the connection's socket since sendmail 8.12. Debian's libmilter
// leaves the thread id 0; any other value must be the thread running the callback. The
// socket must be a connected stream socket. Otherwise the socket is taken as unknown, and
// the milter asks for no no-reply step.
struct ContextHead {
    pthread_t thread;
    int socket;
};

}  // namespace

std::optional<MilterSocket> milter_socket_of(SMFICTX* ctx) {
    if (!ctx) return std::nullopt;
    ContextHead head;
    std::memcpy(&head, ctx, sizeof head);
    pthread_t none{};
    bool thread_ok = std::memcmp(&head.thread, &none, sizeof none) == 0 ||
                     pthread_equal(head.thread, pthread_self());
    if (!thread_ok || head.socket < 0) return std::nullopt;
    struct stat st;
    if (fstat(head.socket, &st) != 0 || !S_ISSOCK(st.st_mode)) return std::nullopt;
    int type = 0, listening = 1, protocol = 0;
    socklen_t size = sizeof type;
    if (getsockopt(head.socket, SOL_SOCKET, SO_TYPE, &type, &size) != 0 || type != SOCK_STREAM)
        return std::nullopt;
    size = sizeof listening;
    if (getsockopt(head.socket, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || listening)
        return std::nullopt;
    size = sizeof protocol;
    if (getsockopt(head.socket, SOL_SOCKET, SO_PROTOCOL, &protocol, &size) != 0)
        return std::nullopt;
    return MilterSocket{head.socket, st.st_ino, protocol == IPPROTO_TCP};
}

void acknowledge_now(const MilterSocket& socket) {
    int on = 1;
    if (socket.tcp) setsockopt(socket.fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

}  // namespace pm

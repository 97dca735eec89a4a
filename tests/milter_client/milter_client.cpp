// SPDX-License-Identifier: BSD-2-Clause
#include "milter_client.h"

#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mc {

namespace {

// A packet is a 4-byte length in network order, then the command byte and the payload;
// the length counts the command byte. libmilter reads and writes at most 65535 octets of
// payload (MILTER_MAX_DATA_SIZE; 1 MiB only with SMFIP_MDS_1M negotiated, which needs a
// libmilter and a milter built with _FFR_MDS_NEGOTIATE); a reply over 1 MiB is garbage.
constexpr std::uint32_t kMaxPacket = 1024 * 1024 + 1;

std::string errno_text(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

void put_u32(std::string& out, std::uint32_t v) {
    std::uint32_t n = htonl(v);
    out.append(reinterpret_cast<const char*>(&n), 4);
}

std::uint32_t get_u32(const std::string& in, std::size_t at) {
    std::uint32_t n;
    std::memcpy(&n, in.data() + at, 4);
    return ntohl(n);
}

// Splits a payload of NUL-terminated strings; a missing final NUL is a protocol error.
std::vector<std::string> split_strings(const std::string& payload, std::size_t from, char cmd) {
    std::vector<std::string> out;
    std::size_t pos = from;
    while (pos < payload.size()) {
        std::size_t nul = payload.find('\0', pos);
        if (nul == std::string::npos)
            throw ProtocolError(std::string("reply '") + cmd + "': string not NUL-terminated");
        out.push_back(payload.substr(pos, nul - pos));
        pos = nul + 1;
    }
    return out;
}

std::string join_args(const std::vector<std::string>& args) {
    std::string out;
    for (const auto& a : args) {
        out += a;
        out += '\0';
    }
    return out;
}

int connect_inet(const std::string& host, const std::string& port, int family) {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) throw ProtocolError("resolve " + host + ": " + gai_strerror(rc));
    int fd = -1;
    std::string error = "no address";
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        error = errno_text("connect");
        ::close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) throw ProtocolError("inet:" + port + "@" + host + ": " + error);
    return fd;
}

int connect_unix(const std::string& path) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (path.size() >= sizeof sun.sun_path) throw ProtocolError("socket path too long: " + path);
    std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw ProtocolError(errno_text("socket"));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
        std::string error = errno_text("connect");
        ::close(fd);
        throw ProtocolError("unix:" + path + ": " + error);
    }
    return fd;
}

}  // namespace

const char* to_string(Outcome o) {
    switch (o) {
        case Outcome::Continue: return "continue";
        case Outcome::Accept: return "accept";
        case Outcome::Reject: return "reject";
        case Outcome::Tempfail: return "tempfail";
        case Outcome::Discard: return "discard";
        case Outcome::ReplyCode: return "replycode";
        case Outcome::Skip: return "skip";
        case Outcome::ConnFail: return "connfail";
        case Outcome::Shutdown: return "shutdown";
        case Outcome::NoReply: return "noreply";
        case Outcome::NotSent: return "notsent";
    }
    return "?";
}

std::string Response::describe() const {
    std::string out = outcome == Outcome::ReplyCode ? reply : to_string(outcome);
    for (const auto& m : modifications) {
        out += " +";
        out += m.command;
        out += "(" + m.name + (m.value.empty() ? "" : ": " + m.value) + ")";
    }
    return out;
}

void parse_reply_line(const std::string& reply, int& code, std::string& enhanced,
                      std::string& text) {
    code = 0;
    enhanced.clear();
    text.clear();
    std::string first = reply.substr(0, reply.find("\r\n"));
    if (first.size() < 3) return;
    code = std::atoi(first.substr(0, 3).c_str());
    std::size_t pos = 3;
    if (pos < first.size() && (first[pos] == ' ' || first[pos] == '-')) ++pos;
    std::size_t space = first.find(' ', pos);
    std::string word =
        first.substr(pos, space == std::string::npos ? std::string::npos : space - pos);
    // An enhanced code is class.subject.detail, each all digits (RFC 3463).
    bool looks_enhanced =
        word.size() >= 5 && (word[0] == '2' || word[0] == '4' || word[0] == '5') && word[1] == '.';
    if (looks_enhanced) {
        enhanced = word;
        pos = space == std::string::npos ? first.size() : space + 1;
    }
    text = first.substr(std::min(pos, first.size()));
}

Client Client::connect(const std::string& spec, std::chrono::milliseconds timeout) {
    int fd;
    auto inet = [&](const std::string& rest, int family) {
        std::size_t at = rest.find('@');
        std::string port = rest.substr(0, at);
        std::string host = at == std::string::npos ? "127.0.0.1" : rest.substr(at + 1);
        return connect_inet(host, port, family);
    };
    if (spec.rfind("inet:", 0) == 0) {
        fd = inet(spec.substr(5), AF_INET);
    } else if (spec.rfind("inet6:", 0) == 0) {
        fd = inet(spec.substr(6), AF_INET6);
    } else if (spec.rfind("unix:", 0) == 0 || spec.rfind("local:", 0) == 0) {
        fd = connect_unix(spec.substr(spec.find(':') + 1));
    } else {
        fd = connect_unix(spec);
    }
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on unix
    return Client(fd);
}

Client::Client(Client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      pending_(std::move(other.pending_)),
      negotiated_(std::move(other.negotiated_)) {}

Client& Client::operator=(Client&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
        pending_ = std::move(other.pending_);
        negotiated_ = std::move(other.negotiated_);
    }
    return *this;
}

Client::~Client() {
    close();
}

void Client::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void Client::send_raw(std::string_view bytes) {
    if (fd_ < 0) throw ProtocolError("send on a closed connection");
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw ProtocolError(errno_text("send"));
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

void Client::queue_packet(char command, std::string_view payload) {
    put_u32(pending_, static_cast<std::uint32_t>(payload.size() + 1));
    pending_ += command;
    pending_.append(payload);
}

// Macros and their command leave in one write, as an MTA's buffered stream sends them: two
// small writes would meet Nagle's algorithm and the milter's delayed ACK (a 40 ms stall).
void Client::send_packet(char command, std::string_view payload) {
    queue_packet(command, payload);
    std::string packet = std::move(pending_);
    pending_.clear();
    send_raw(packet);
}

std::pair<char, std::string> Client::read_packet() {
    if (fd_ < 0) throw ProtocolError("read on a closed connection");
    auto read_exact = [&](char* to, std::size_t n) {
        std::size_t got = 0;
        while (got < n) {
            ssize_t r = ::recv(fd_, to + got, n - got, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                throw ProtocolError("timed out waiting for the milter");
            if (r < 0) throw ProtocolError(errno_text("recv"));
            if (r == 0) throw ProtocolError("milter closed the connection");
            got += static_cast<std::size_t>(r);
        }
    };
    char header[4];
    read_exact(header, 4);
    std::uint32_t len;
    std::memcpy(&len, header, 4);
    len = ntohl(len);
    if (len == 0 || len > kMaxPacket)
        throw ProtocolError("bad reply length " + std::to_string(len));
    std::string body(len, '\0');
    read_exact(body.data(), len);
    char cmd = body[0];
    return {cmd, body.substr(1)};
}

bool Client::closed_by_peer(std::chrono::milliseconds wait) {
    if (fd_ < 0) return true;
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(wait.count()));
    if (rc <= 0) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

Negotiated Client::negotiate(std::uint32_t actions, std::uint32_t protocol) {
    std::string payload;
    put_u32(payload, SMFI_PROT_VERSION);
    put_u32(payload, actions);
    put_u32(payload, protocol);
    send_packet(SMFIC_OPTNEG, payload);
    auto [cmd, reply] = read_packet();
    if (cmd != SMFIC_OPTNEG)
        throw ProtocolError(std::string("negotiation answered with '") + cmd + "'");
    if (reply.size() < MILTER_OPTLEN) throw ProtocolError("negotiation reply too short");
    Negotiated n;
    n.version = get_u32(reply, 0);
    n.actions = get_u32(reply, 4);
    n.protocol = get_u32(reply, 8);
    // Then symbol lists: a 32-bit stage and the macro names, NUL-terminated, repeated.
    std::size_t pos = MILTER_OPTLEN;
    while (pos + 4 <= reply.size()) {
        int stage = static_cast<int>(get_u32(reply, pos));
        pos += 4;
        std::size_t nul = reply.find('\0', pos);
        if (nul == std::string::npos) throw ProtocolError("symbol list not NUL-terminated");
        n.macros[stage] = reply.substr(pos, nul - pos);
        pos = nul + 1;
    }
    if (pos != reply.size()) throw ProtocolError("trailing bytes in the negotiation reply");
    negotiated_ = n;
    return n;
}

void Client::send_macros(char stage, const Macros& macros) {
    if (macros.empty()) return;
    std::string payload(1, stage);
    for (const auto& [name, value] : macros) {
        payload += name;
        payload += '\0';
        payload += value;
        payload += '\0';
    }
    queue_packet(SMFIC_MACRO, payload);
}

Response Client::command(char cmd, std::string_view payload, std::uint32_t not_sent_flag,
                         std::uint32_t no_reply_flag, char macro_stage, const Macros& macros) {
    Response r;
    if (not_sent_flag && (negotiated_.protocol & not_sent_flag)) {
        // An MTA still sends the macros of a switched-off step (Postfix does), unanswered.
        send_macros(macro_stage, macros);
        if (!pending_.empty()) send_raw(std::exchange(pending_, std::string()));
        r.outcome = Outcome::NotSent;
        return r;
    }
    send_macros(macro_stage, macros);
    send_packet(cmd, payload);
    if (no_reply_flag && (negotiated_.protocol & no_reply_flag)) {
        r.outcome = Outcome::NoReply;
        return r;
    }
    return read_response(cmd == SMFIC_BODYEOB);
}

Response Client::read_response(bool end_of_message) {
    Response r;
    for (;;) {
        auto [cmd, payload] = read_packet();
        switch (cmd) {
            case SMFIR_CONTINUE: r.outcome = Outcome::Continue; return r;
            case SMFIR_ACCEPT: r.outcome = Outcome::Accept; return r;
            case SMFIR_REJECT: r.outcome = Outcome::Reject; return r;
            case SMFIR_TEMPFAIL: r.outcome = Outcome::Tempfail; return r;
            case SMFIR_DISCARD: r.outcome = Outcome::Discard; return r;
            case SMFIR_SKIP: r.outcome = Outcome::Skip; return r;
            case SMFIR_CONN_FAIL: r.outcome = Outcome::ConnFail; return r;
            case SMFIR_SHUTDOWN: r.outcome = Outcome::Shutdown; return r;
            case SMFIR_REPLYCODE: {
                if (payload.empty() || payload.back() != '\0')
                    throw ProtocolError("reply code not NUL-terminated");
                r.outcome = Outcome::ReplyCode;
                r.reply = payload.substr(0, payload.size() - 1);
                parse_reply_line(r.reply, r.code, r.enhanced, r.text);
                if (r.code < 400 || r.code > 599)
                    throw ProtocolError("reply code out of range: " + r.reply);
                return r;
            }
            case SMFIR_PROGRESS: ++r.progress; continue;
            default: break;
        }
        // Everything else modifies the message: legal only in answer to end of message.
        if (!end_of_message)
            throw ProtocolError(std::string("unexpected reply '") + cmd + "' (" +
                                std::to_string(static_cast<unsigned char>(cmd)) +
                                ") outside end of message");
        Modification m;
        m.command = cmd;
        switch (cmd) {
            case SMFIR_ADDHEADER:
            case SMFIR_ADDRCPT_PAR:
            case SMFIR_CHGFROM: {
                auto s = split_strings(payload, 0, cmd);
                if (s.empty() || s.size() > 2) throw ProtocolError("malformed modification");
                m.name = s[0];
                if (s.size() > 1) m.value = s[1];
                break;
            }
            case SMFIR_INSHEADER:
            case SMFIR_CHGHEADER: {
                if (payload.size() < 4) throw ProtocolError("header change too short");
                m.index = get_u32(payload, 0);
                auto s = split_strings(payload, 4, cmd);
                if (s.size() != 2) throw ProtocolError("malformed header change");
                m.name = s[0];
                m.value = s[1];
                break;
            }
            case SMFIR_ADDRCPT:
            case SMFIR_DELRCPT:
            case SMFIR_QUARANTINE: {
                auto s = split_strings(payload, 0, cmd);
                if (s.size() != 1) throw ProtocolError("malformed modification");
                m.name = s[0];
                break;
            }
            case SMFIR_REPLBODY: m.body = payload; break;
            default:
                throw ProtocolError(std::string("unknown reply '") + cmd + "' (" +
                                    std::to_string(static_cast<unsigned char>(cmd)) + ")");
        }
        r.modifications.push_back(std::move(m));
    }
}

Response Client::connect_info(const std::string& hostname, char family, std::uint16_t port,
                              const std::string& address, const Macros& macros) {
    std::string payload = hostname;
    payload += '\0';
    payload += family;
    if (family != SMFIA_UNKNOWN) {
        std::uint16_t p = htons(port);
        payload.append(reinterpret_cast<const char*>(&p), 2);
        payload += address;
        payload += '\0';
    }
    return command(SMFIC_CONNECT, payload, SMFIP_NOCONNECT, SMFIP_NR_CONN, SMFIC_CONNECT, macros);
}

Response Client::helo(const std::string& name, const Macros& macros) {
    return command(SMFIC_HELO, name + '\0', SMFIP_NOHELO, SMFIP_NR_HELO, SMFIC_HELO, macros);
}

Response Client::mail(const std::vector<std::string>& args, const Macros& macros) {
    return command(SMFIC_MAIL, join_args(args), SMFIP_NOMAIL, SMFIP_NR_MAIL, SMFIC_MAIL, macros);
}

Response Client::rcpt(const std::vector<std::string>& args, const Macros& macros) {
    return command(SMFIC_RCPT, join_args(args), SMFIP_NORCPT, SMFIP_NR_RCPT, SMFIC_RCPT, macros);
}

Response Client::data(const Macros& macros) {
    return command(SMFIC_DATA, "", SMFIP_NODATA, SMFIP_NR_DATA, SMFIC_DATA, macros);
}

Response Client::header(const std::string& name, const std::string& value, const Macros& macros) {
    std::string payload = name;
    payload += '\0';
    payload += value;
    payload += '\0';
    return command(SMFIC_HEADER, payload, SMFIP_NOHDRS, SMFIP_NR_HDR, SMFIC_HEADER, macros);
}

Response Client::end_of_header(const Macros& macros) {
    return command(SMFIC_EOH, "", SMFIP_NOEOH, SMFIP_NR_EOH, SMFIC_EOH, macros);
}

Response Client::body(std::string_view chunk) {
    Response r;
    r.outcome = Outcome::Continue;
    do {
        std::string_view part = chunk.substr(0, MILTER_CHUNK_SIZE);
        chunk.remove_prefix(part.size());
        r = command(SMFIC_BODY, part, SMFIP_NOBODY, SMFIP_NR_BODY, 0, {});
        if (r.outcome != Outcome::Continue && r.outcome != Outcome::NoReply) return r;
    } while (!chunk.empty());
    return r;
}

Response Client::end_of_message(const Macros& macros) {
    return command(SMFIC_BODYEOB, "", 0, 0, SMFIC_BODYEOB, macros);
}

Response Client::unknown(const std::string& cmd) {
    return command(SMFIC_UNKNOWN, cmd + '\0', SMFIP_NOUNKNOWN, SMFIP_NR_UNKN, SMFIC_UNKNOWN, {});
}

void Client::abort() {
    send_packet(SMFIC_ABORT, "");
}

void Client::quit() {
    if (fd_ < 0) return;
    try {
        send_packet(SMFIC_QUIT, "");
    } catch (const ProtocolError&) {
        // The milter may have gone already; closing is all that is left.
    }
    close();
}

void Client::quit_new_connection() {
    send_packet(SMFIC_QUIT_NC, "");
}

}  // namespace mc

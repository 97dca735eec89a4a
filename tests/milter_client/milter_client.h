// SPDX-License-Identifier: BSD-2-Clause
// The MTA side of the milter wire protocol, for tests and load generation: it speaks to a
// milter the way Postfix or Sendmail would, and hands back every reply undigested so a
// test can assert the exact code, enhanced code and text of each callback — which Postfix
// hides until it relays them, and miltertest cannot read before end of message.
//
// Protocol errors from the milter (a bad packet, an unknown reply, a closed connection,
// a timeout) are thrown as mc::ProtocolError; the client never crashes on them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mc {

class ProtocolError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// What the milter answered to one command.
enum class Outcome {
    Continue,   // SMFIR_CONTINUE
    Accept,     // SMFIR_ACCEPT
    Reject,     // SMFIR_REJECT (the MTA's default 5xx)
    Tempfail,   // SMFIR_TEMPFAIL (the MTA's default 4xx)
    Discard,    // SMFIR_DISCARD
    ReplyCode,  // SMFIR_REPLYCODE: code, enhanced code and text below
    Skip,       // SMFIR_SKIP
    ConnFail,   // SMFIR_CONN_FAIL
    Shutdown,   // SMFIR_SHUTDOWN
    NoReply,    // the negotiation said this command gets no reply (SMFIP_NR_*)
    NotSent,    // the negotiation switched this command off (SMFIP_NO*)
};
const char* to_string(Outcome o);

// A modification requested at end of message (SMFIR_ADDHEADER, _QUARANTINE, ...).
struct Modification {
    char command = 0;         // the SMFIR_* byte
    std::uint32_t index = 0;  // insert/change header: the position
    std::string name;         // header name, recipient, sender, quarantine reason
    std::string value;        // header value, ESMTP arguments
    std::string body;         // SMFIR_REPLBODY chunk
};

struct Response {
    Outcome outcome = Outcome::Continue;
    std::string reply;     // SMFIR_REPLYCODE text as sent: "550 5.7.1 text" (may be multiline)
    int code = 0;          // 550, parsed from `reply`
    std::string enhanced;  // "5.7.1", or empty when the reply has none
    std::string text;      // the rest of the first line
    std::vector<Modification> modifications;  // end of message only
    int progress = 0;                         // SMFIR_PROGRESS packets seen before the answer

    // "550 5.7.1 text" for a reply code, else the outcome's name: handy in test failures.
    std::string describe() const;
};

// The result of option negotiation: what the milter asked for.
struct Negotiated {
    std::uint32_t version = 0;
    std::uint32_t actions = 0;          // SMFIF_*
    std::uint32_t protocol = 0;         // SMFIP_*: the steps switched off and unanswered
    std::map<int, std::string> macros;  // SMFIM_* stage -> "i {auth_authen}" (symbol lists)
};

// Macros sent before a command (SMFIC_MACRO), as name/value pairs: {"i", "4XyZ"}.
using Macros = std::vector<std::pair<std::string, std::string>>;

class Client {
  public:
    // "inet:PORT@HOST", "inet6:PORT@HOST", "unix:/path" (the milter socket syntax) or a
    // plain path. Throws ProtocolError if the connection fails.
    static Client connect(const std::string& socket_spec,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

    Client(Client&& other) noexcept;
    Client& operator=(Client&& other) noexcept;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client();

    // SMFIC_OPTNEG: offers protocol version 6 with `actions` and `protocol` flags (by
    // default everything an MTA can do). Must come first.
    Negotiated negotiate(std::uint32_t actions = 0x1FF, std::uint32_t protocol = 0x1FFFFF);
    const Negotiated& negotiated() const { return negotiated_; }

    // Each sends its macros (if any, and if the command is sent), then the command, and
    // waits for the answer unless the negotiation says there is none.
    // `family` is '4', '6', 'L' (unix) or 'U' (unknown).
    Response connect_info(const std::string& hostname, char family, std::uint16_t port,
                          const std::string& address, const Macros& macros = {});
    Response helo(const std::string& name, const Macros& macros = {});
    Response mail(const std::vector<std::string>& args, const Macros& macros = {});
    Response rcpt(const std::vector<std::string>& args, const Macros& macros = {});
    Response data(const Macros& macros = {});
    Response header(const std::string& name, const std::string& value, const Macros& macros = {});
    Response end_of_header(const Macros& macros = {});
    Response body(std::string_view chunk);
    Response end_of_message(const Macros& macros = {});
    Response unknown(const std::string& command);
    void abort();                // SMFIC_ABORT: ends the transaction; the milter does not answer
    void quit();                 // SMFIC_QUIT, then closes
    void quit_new_connection();  // SMFIC_QUIT_NC: the connection will be reused

    // The raw layer, for malformed-input tests and for anything not covered above.
    void send_packet(char command, std::string_view payload);
    void send_raw(std::string_view bytes);
    std::pair<char, std::string> read_packet();
    // True if the milter has closed the connection (reads EOF within `wait`).
    bool closed_by_peer(std::chrono::milliseconds wait);

    bool is_open() const { return fd_ >= 0; }
    void close();

  private:
    explicit Client(int fd) : fd_(fd) {}
    Response command(char cmd, std::string_view payload, std::uint32_t not_sent_flag,
                     std::uint32_t no_reply_flag, char macro_stage, const Macros& macros);
    Response read_response(bool end_of_message);
    void send_macros(char stage, const Macros& macros);
    void queue_packet(char command, std::string_view payload);

    int fd_ = -1;
    std::string pending_;  // packets waiting to leave with the next one
    Negotiated negotiated_;
};

// Parses "550 5.7.1 text" into code, enhanced code and text (used by Response).
void parse_reply_line(const std::string& reply, int& code, std::string& enhanced,
                      std::string& text);

}  // namespace mc

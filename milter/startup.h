// SPDX-License-Identifier: BSD-2-Clause
// Start-up checks: everything that would stop the daemon's start and can be found before
// it opens its socket. The start and `--check` run the same checks (check_startup), so
// that `--check` passing means the start gets past them; the start then uses what they
// resolved (the socket, the user, the group, the Redis password).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/options.h"
#include "config/socket_spec.h"
#include "policy/diagnostics.h"

namespace pm {

class Policy;

// Exit codes of a failed start (sysexits.h): a restart cannot fix EX_CONFIG (the unit
// has RestartPreventExitStatus=78), and may fix EX_TEMPFAIL.
inline constexpr int kExitConfig = 78;    // EX_CONFIG
inline constexpr int kExitTempFail = 75;  // EX_TEMPFAIL

enum class StartupPurpose {
    Check,  // --check, also run before a reload: the running daemon's socket is fine
    Start,
};

struct StartupProblem {
    Severity severity = Severity::Error;
    std::string where;  // "FILE:LINE:COL" of the setting; empty: command line or default
    std::string message;
    bool transient = false;  // a later start may succeed: socket in use, resolver failing

    // "FILE:LINE:COL: error: message", or "policy-milter: error: message".
    std::string to_string() const;
};

struct StartupPlan {
    std::vector<StartupProblem> problems;
    std::optional<SocketSpec> socket;
    std::optional<uid_t> uid;  // of `user`, with its primary group
    gid_t gid = 0;
    std::optional<gid_t> socket_gid;  // of `socket-group`
    std::string redis_password;       // from redis-password-file

    std::size_t errors() const;
    std::size_t warnings() const;
    // kExitTempFail if every error is transient, else kExitConfig.
    int exit_code() const;
    const StartupProblem* first_error() const;
};

// Runs every start-up check of `options`. `policy`, if loaded, names the rules and list
// files that reloads read again as `user`.
StartupPlan check_startup(const Options& options, StartupPurpose purpose, const Policy* policy);

// The daemon's pid file: created and locked before privileges are dropped, so the
// unprivileged daemon can still write and empty it; the lock, inherited across the
// fork, shows a running daemon.
class PidFile {
  public:
    PidFile() = default;
    PidFile(const PidFile&) = delete;
    PidFile& operator=(const PidFile&) = delete;
    ~PidFile();

    // Opens and locks `path`; the reason and whether it is transient (another daemon
    // holds the lock), or nullopt.
    std::optional<StartupProblem> open(const std::string& path);
    void write_pid();  // the calling process's ID, after the fork
    void remove();     // at stop: empties the file, then unlinks it if the directory allows

  private:
    int fd_ = -1;
    std::string path_;
};

// After the fork into the background: listen() again on the listening unix socket, so
// that SO_PEERCRED, which --check reads to recognise the running daemon, names this
// process rather than the parent that exited.
void claim_listening_sockets();

// Runs `open_socket` with the syslog lines libmilter writes (why a socket cannot be
// opened) copied to stderr, then leaves syslog set to syslog-name and syslog-facility
// for libmilter's later lines, whatever `log` says.
bool with_libmilter_errors_on_stderr(const Options& options,
                                     const std::function<bool()>& open_socket);

}  // namespace pm

// SPDX-License-Identifier: BSD-2-Clause
#include "milter/startup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/logging.h"
#include "milter/socket_file.h"
#include "policy/policy.h"
#include "store/factory.h"

namespace fs = std::filesystem;

namespace pm {

namespace {

constexpr const char* kDaemonName = "policy-milter";  // /proc/PID/comm of a running daemon

std::string in_quotes(const std::string& s) {
    return "'" + s + "'";
}

class Checker {
  public:
    Checker(const Options& o, StartupPurpose purpose, StartupPlan& plan)
        : o_(o), purpose_(purpose), plan_(plan) {}

    void error(const std::string& key, std::string message, bool transient = false) {
        add(Severity::Error, key, std::move(message), transient);
    }
    void warning(const std::string& key, std::string message) {
        add(Severity::Warning, key, std::move(message), false);
    }

    const Options& o_;
    StartupPurpose purpose_;
    StartupPlan& plan_;

  private:
    void add(Severity severity, const std::string& key, std::string message, bool transient) {
        auto origin = o_.origins.find(key);
        plan_.problems.push_back({severity, origin == o_.origins.end() ? "" : origin->second,
                                  std::move(message), transient});
    }
};

std::string process_name(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(in, name);
    return name;
}

// "pid 123, policy-milter" for a message, or empty when the process is unknown.
std::string describe_process(pid_t pid) {
    if (pid <= 0) return {};
    std::string name = process_name(pid);
    return "pid " + std::to_string(pid) + (name.empty() ? "" : ", " + name);
}

// --- unix sockets ----------------------------------------------------------------------

// Whether a process listens on the unix socket `path`, and which (SO_PEERCRED: the
// process that last called listen() on it; 0 if unknown).
bool unix_socket_listener(const std::string& path, pid_t& pid) {
    pid = 0;
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
    // Non-blocking: a listener that no longer accepts (its backlog full) must not hang
    // --check, which runs before every reload; EAGAIN still means someone listens.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    bool listening = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ||
                     errno == EAGAIN || errno == EINPROGRESS;
    if (listening) {
        ucred cred{};
        socklen_t size = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) == 0) pid = cred.pid;
    }
    close(fd);
    return listening;
}

void check_unix_socket(Checker& c, const std::string& path) {
    std::string dir = fs::path(path).parent_path().string();
    if (dir.empty()) dir = "/";
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) {
        c.error("socket",
                "socket directory " + dir + " " +
                    (errno == ENOENT ? std::string("does not exist")
                                     : std::string("cannot be read: ") + std::strerror(errno)) +
                    " (socket unix:" + path + ")");
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        c.error("socket", "socket directory " + dir + " is not a directory");
        return;
    }
    if (access(dir.c_str(), W_OK | X_OK) != 0) {
        c.error("socket", "cannot create the socket in " + dir + ": " + std::strerror(errno));
        return;
    }
    if (lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
        c.error("socket", path + " exists and is not a socket");
        return;
    }
    pid_t pid = 0;
    if (!unix_socket_listener(path, pid)) return;  // absent, or left behind: replaced at start
    bool own = c.purpose_ == StartupPurpose::Check && pid > 0 && process_name(pid) == kDaemonName;
    if (own) return;  // the running daemon, before a reload
    std::string who = describe_process(pid);
    c.error("socket",
            "another process " + (who.empty() ? "" : "(" + who + ") ") + "is listening on " + path,
            true);
}

// --- inet sockets ----------------------------------------------------------------------

// The inode of a TCP socket listening on `port` (any address), from /proc/self/net.
std::vector<unsigned long> tcp_listener_inodes(unsigned port) {
    std::vector<unsigned long> inodes;
    for (const char* table : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
            unsigned long inode = 0;
            fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
                timeout >> inode;
            auto colon = local.rfind(':');
            if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
            if (std::strtoul(local.c_str() + colon + 1, nullptr, 16) == port)
                inodes.push_back(inode);
        }
    }
    return inodes;
}

// The process holding one of `inodes` open, if this user may look (0 if not found).
pid_t socket_owner(const std::vector<unsigned long>& inodes) {
    std::error_code ec;
    for (fs::directory_iterator proc("/proc", ec), end; !ec && proc != end; proc.increment(ec)) {
        std::string name = proc->path().filename().string();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
        std::error_code fd_ec;
        for (fs::directory_iterator fd(proc->path() / "fd", fd_ec), fd_end; !fd_ec && fd != fd_end;
             fd.increment(fd_ec)) {
            std::error_code link_ec;
            std::string target = fs::read_symlink(fd->path(), link_ec).string();
            for (unsigned long inode : inodes)
                if (target == "socket:[" + std::to_string(inode) + "]")
                    return static_cast<pid_t>(std::atol(name.c_str()));
        }
    }
    return 0;
}

// What a failed test bind of the socket means (errno `bind_errno`); nothing for 0.
void report_bind_error(Checker& c, const SocketSpec& spec, int bind_errno) {
    std::string port = std::to_string(spec.port);
    if (bind_errno == EADDRINUSE) {
        pid_t pid = socket_owner(tcp_listener_inodes(spec.port));
        if (c.purpose_ == StartupPurpose::Check && pid > 0 && process_name(pid) == kDaemonName)
            return;  // the running daemon, before a reload
        std::string who = describe_process(pid);
        c.error("socket",
                "another process " + (who.empty() ? "" : "(" + who + ") ") + "is listening on " +
                    spec.to_libmilter(),
                true);
    } else if (bind_errno == EADDRNOTAVAIL) {
        c.error("socket", "socket " + in_quotes(c.o_.socket) + ": " + spec.host +
                              " is not an address of this host");
    } else if (bind_errno == EACCES) {
        c.error("socket", "socket " + in_quotes(c.o_.socket) + ": port " + port +
                              " needs a daemon started as root");
    } else if (bind_errno != 0) {
        c.error("socket", "socket " + in_quotes(c.o_.socket) + ": " + std::strerror(bind_errno));
    }
}

// libmilter binds the first address, with SO_REUSEADDR: a test bind tells whether it
// can. The errno of that bind, 0 if it worked (or no socket could be made to try).
int test_bind(const addrinfo& address) {
    int fd = socket(address.ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int one = 1, bind_errno = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, address.ai_addr, address.ai_addrlen) != 0) bind_errno = errno;
    close(fd);
    return bind_errno;
}

void check_inet_socket(Checker& c, const SocketSpec& spec) {
    bool v4 = spec.family == SocketFamily::Inet;
    if (spec.all_interfaces())
        c.warning("socket", "socket " + in_quotes(c.o_.socket) +
                                " listens on every interface, and the milter protocol has no "
                                "authentication: give the MTA's address, such as '" +
                                (v4 ? "inet:" : "inet6:") + std::to_string(spec.port) +
                                (v4 ? "@127.0.0.1'" : "@[::1]'"));
    addrinfo hints{};
    hints.ai_family = v4 ? AF_INET : AF_INET6;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | (spec.host_is_address ? AI_NUMERICHOST : 0);
    addrinfo* found = nullptr;
    std::string port = std::to_string(spec.port);
    int rc =
        getaddrinfo(spec.host.empty() ? nullptr : spec.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
        bool unknown = rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_ADDRFAMILY;
        c.error("socket",
                "socket host " + in_quotes(spec.host) + " does not resolve to an " +
                    (v4 ? "IPv4" : "IPv6") + " address: " + gai_strerror(rc),
                !unknown);
        return;
    }
    int bind_errno = test_bind(*found);
    freeaddrinfo(found);
    report_bind_error(c, spec, bind_errno);
}

// --- users, groups, files --------------------------------------------------------------

std::optional<gid_t> group_id(const std::string& name) {
    if (group* gr = getgrnam(name.c_str())) return gr->gr_gid;
    if (!name.empty() && name.size() <= 9 &&
        name.find_first_not_of("0123456789") == std::string::npos)
        return static_cast<gid_t>(std::stoul(name));
    return std::nullopt;
}

bool member_of(gid_t gid) {
    if (getegid() == gid) return true;
    std::vector<gid_t> groups(static_cast<std::size_t>(std::max(getgroups(0, nullptr), 0)));
    int n = getgroups(static_cast<int>(groups.size()), groups.data());
    return n > 0 && std::find(groups.begin(), groups.begin() + n, gid) != groups.begin() + n;
}

// Whether `user` (uid, gid, groups) may read `path`, by the permission bits of the file
// and of every directory above it (ACLs are not looked at). The first obstacle, or empty.
std::string read_obstacle(const std::string& path, uid_t uid, gid_t gid,
                          const std::vector<gid_t>& groups) {
    if (uid == 0) return {};
    auto allows = [&](const struct stat& st, mode_t user_bit, mode_t group_bit, mode_t other_bit) {
        if (st.st_uid == uid) return (st.st_mode & user_bit) != 0;
        if (st.st_gid == gid || std::find(groups.begin(), groups.end(), st.st_gid) != groups.end())
            return (st.st_mode & group_bit) != 0;
        return (st.st_mode & other_bit) != 0;
    };
    std::error_code ec;
    fs::path full = fs::absolute(path, ec);
    if (ec) return {};
    fs::path dir;
    for (auto part = full.begin(); part != full.end(); ++part) {
        dir /= *part;
        if (std::next(part) == full.end()) break;
        struct stat st;
        if (stat(dir.c_str(), &st) == 0 && !allows(st, S_IXUSR, S_IXGRP, S_IXOTH))
            return "directory " + dir.string() + " cannot be searched";
    }
    struct stat st;
    if (stat(full.c_str(), &st) != 0) return {};  // missing files are the loader's to report
    if (!allows(st, S_IRUSR, S_IRGRP, S_IROTH)) return "the file cannot be read";
    return {};
}

void check_readable_by_user(Checker& c, const std::string& user, const Policy* policy) {
    std::vector<std::string> files;
    if (fs::exists(c.o_.config_file)) files.push_back(c.o_.config_file);
    files.push_back(c.o_.rules_file);
    if (policy)
        for (const auto& f : policy->source_files())
            if (std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
    int n = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    if (getgrouplist(user.c_str(), c.plan_.gid, groups.data(), &n) < 0) {
        groups.resize(static_cast<std::size_t>(n));
        getgrouplist(user.c_str(), c.plan_.gid, groups.data(), &n);
    }
    groups.resize(static_cast<std::size_t>(std::max(n, 0)));
    for (const auto& f : files) {
        std::string obstacle = read_obstacle(f, *c.plan_.uid, c.plan_.gid, groups);
        if (!obstacle.empty())
            c.warning("user", "user " + in_quotes(user) + " cannot read " + f + " (" + obstacle +
                                  "): the daemon runs as " + user +
                                  " after the start, so every reload would fail");
    }
}

// The store's own checks (store/factory.h): the Redis password file, read here while
// still root, and the Redis host's name.
void check_store(Checker& c) {
    for (auto& p :
         check_store_settings(c.o_.store, c.o_.redis_password_file, c.plan_.redis_password))
        c.error(p.key, std::move(p.message), p.transient);
}

// A greylist with the memory store keeps its entries in state-dir: without the directory
// they would not survive a restart (the daemon still starts, and logs each failed save).
void check_state_dir(Checker& c, const Policy* policy) {
    if (!policy || !policy->uses_action(ActionKind::Greylist) || c.o_.store != "memory") return;
    std::error_code ec;
    if (!fs::is_directory(c.o_.state_dir, ec))
        c.warning("state-dir", "state-dir " + in_quotes(c.o_.state_dir) +
                                   " is not a directory: the greylist's entries will not "
                                   "survive a restart");
    else if (!c.plan_.uid && access(c.o_.state_dir.c_str(), W_OK) != 0)
        c.warning("state-dir", "state-dir " + in_quotes(c.o_.state_dir) +
                                   " is not writable: the greylist's entries will not "
                                   "survive a restart");
}

void check_pid_file(Checker& c) {
    const std::string& path = c.o_.pid_file;
    if (path.empty()) return;
    std::string dir = fs::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    struct stat st;
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        c.error("pid-file", "pid-file directory " + dir + " does not exist");
        return;
    }
    if (lstat(path.c_str(), &st) == 0 && (!S_ISREG(st.st_mode) || st.st_nlink != 1)) {
        c.error("pid-file", "pid-file " + path + " is not a regular file with a single link");
        return;
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return;  // created at start
    bool locked = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    char text[32] = {};
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    if (!locked || c.purpose_ == StartupPurpose::Check) return;  // Check: the running daemon
    pid_t pid = n > 0 ? static_cast<pid_t>(std::atol(text)) : 0;
    c.error("pid-file",
            "policy-milter is already running (" +
                (pid > 0 ? describe_process(pid) : std::string("pid unknown")) + ", pid-file " +
                path + ")",
            true);
}

}  // namespace

std::string StartupProblem::to_string() const {
    std::string kind = severity == Severity::Error ? ": error: " : ": warning: ";
    return (where.empty() ? std::string("policy-milter") : where) + kind + message;
}

std::size_t StartupPlan::errors() const {
    return static_cast<std::size_t>(std::count_if(
        problems.begin(), problems.end(), [](auto& p) { return p.severity == Severity::Error; }));
}

std::size_t StartupPlan::warnings() const {
    return problems.size() - errors();
}

int StartupPlan::exit_code() const {
    bool all_transient = std::all_of(problems.begin(), problems.end(), [](auto& p) {
        return p.severity != Severity::Error || p.transient;
    });
    return all_transient ? kExitTempFail : kExitConfig;
}

const StartupProblem* StartupPlan::first_error() const {
    for (const auto& p : problems)
        if (p.severity == Severity::Error) return &p;
    return nullptr;
}

namespace {

void check_socket_spec(Checker& c) {
    std::string why;
    c.plan_.socket = parse_socket_spec(c.o_.socket, why);
    if (!c.plan_.socket)
        c.error("socket", why);
    else if (c.plan_.socket->family == SocketFamily::Unix)
        check_unix_socket(c, c.plan_.socket->path);
    else
        check_inet_socket(c, *c.plan_.socket);
}

void check_user(Checker& c, bool root) {
    const Options& o = c.o_;
    StartupPlan& plan = c.plan_;
    if (o.user.empty()) {
        if (root && c.purpose_ == StartupPurpose::Start)
            c.warning("user",
                      "running as root: set 'user' (policy-milter.conf(5)) to drop privileges "
                      "once the socket is open");
        return;
    }
    errno = 0;
    if (passwd* pw = getpwnam(o.user.c_str())) {
        plan.uid = pw->pw_uid;
        plan.gid = pw->pw_gid;
    } else {
        c.error("user", "unknown user " + in_quotes(o.user));
    }
    if (plan.uid && !root && *plan.uid != geteuid() && c.purpose_ == StartupPurpose::Start)
        c.error("user", "user " + in_quotes(o.user) + " needs a daemon started as root");
}

void check_socket_group(Checker& c, bool root) {
    const Options& o = c.o_;
    StartupPlan& plan = c.plan_;
    if (o.socket_group.empty()) return;
    plan.socket_gid = group_id(o.socket_group);
    if (!plan.socket_gid)
        c.error("socket-group", "unknown group " + in_quotes(o.socket_group));
    else if (plan.socket && plan.socket->family != SocketFamily::Unix)
        c.warning("socket-group",
                  "socket-group applies to unix sockets only, not to " + in_quotes(o.socket));
    else if (!root && !member_of(*plan.socket_gid))
        c.error("socket-group",
                "a daemon not started as root can give its socket only to "
                "a group it is a member of, and " +
                    in_quotes(o.socket_group) + " is not one");
}

// Whoever can write the socket's directory can swap the socket for a file of their
// choosing before the start's chown, or for their own socket: only root and the user the
// daemon runs as may (milter/socket_file.h). Judged for that user, so after 'user'.
void check_socket_directory(Checker& c) {
    const StartupPlan& plan = c.plan_;
    if (plan.socket && plan.socket->family == SocketFamily::Unix)
        if (auto problem =
                socket_directory_problem(plan.socket->path, plan.uid ? *plan.uid : geteuid()))
            c.error("socket", *problem);
}

// A `control` that was set must open (the built-in default may stay off, with a warning at
// start: milter/control.h): its directory exists and is safe, and its path is no other file.
void check_control(Checker& c) {
    const Options& o = c.o_;
    if (!o.control_explicit || o.control == "none") return;
    std::string path = o.control.substr(5);  // after "unix:", checked with the config file
    std::string dir = fs::path(path).parent_path().string();
    struct stat st;
    bool found = stat(dir.c_str(), &st) == 0;
    if (!found || !S_ISDIR(st.st_mode)) {
        std::string why = found             ? " is not a directory"
                          : errno == ENOENT ? " does not exist"
                                            : ": " + std::string(std::strerror(errno));
        c.error("control", "control socket directory " + dir + why);
        return;
    }
    if (auto problem = socket_directory_problem(path, c.plan_.uid ? *c.plan_.uid : geteuid()))
        c.error("control", "control " + *problem);
    else if (lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
        c.error("control", "control socket " + path + " exists and is not a socket");
}

}  // namespace

StartupPlan check_startup(const Options& o, StartupPurpose purpose, const Policy* policy) {
    StartupPlan plan;
    Checker c(o, purpose, plan);
    bool root = geteuid() == 0;
    check_socket_spec(c);
    check_user(c, root);
    check_socket_group(c, root);
    check_socket_directory(c);
    check_control(c);
    check_pid_file(c);
    check_store(c);
    check_state_dir(c, policy);
    if (plan.uid) check_readable_by_user(c, o.user, policy);
    return plan;
}

// --- PidFile ----------------------------------------------------------------------------

PidFile::~PidFile() {
    if (fd_ >= 0) ::close(fd_);
}

std::optional<StartupProblem> PidFile::open(const std::string& path) {
    if (path.empty()) return std::nullopt;
    // O_NOFOLLOW: a root daemon must not follow a link someone put in its place.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return StartupProblem{Severity::Error, "",
                              "cannot open pid-file " + path + ": " + std::strerror(errno)};
    // Nor truncate a file someone linked there: the daemon may still be root.
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        ::close(fd);
        return StartupProblem{Severity::Error, "",
                              "pid-file " + path + " is not a regular file with a single link"};
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char text[32] = {};
        ssize_t n = pread(fd, text, sizeof text - 1, 0);
        ::close(fd);
        pid_t pid = n > 0 ? static_cast<pid_t>(std::atol(text)) : 0;
        return StartupProblem{Severity::Error, "",
                              "policy-milter is already running (" +
                                  (pid > 0 ? describe_process(pid) : "pid unknown") +
                                  ", pid-file " + path + ")",
                              true};
    }
    fd_ = fd;
    path_ = path;
    return std::nullopt;
}

void PidFile::write_pid() {
    if (fd_ < 0) return;
    std::string text = std::to_string(getpid()) + "\n";
    if (ftruncate(fd_, 0) != 0 ||
        pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
        syslog(LOG_WARNING, "cannot write pid-file %s: %s", path_.c_str(), std::strerror(errno));
}

void PidFile::remove() {
    if (fd_ < 0) return;
    // Emptied first: the daemon, no longer root, may not be allowed to unlink it, and a
    // stale PID must not lead a `kill -HUP $(cat FILE)` to another process.
    [[maybe_unused]] int rc = ftruncate(fd_, 0);
    unlink(path_.c_str());
}

void claim_listening_sockets() {
    std::error_code ec;
    for (fs::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
        int fd = std::atoi(it->path().filename().c_str());
        int listening = 0, domain = 0;
        socklen_t size = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening)
            continue;
        size = sizeof domain;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) == 0 && domain == AF_UNIX)
            listen(fd, SOMAXCONN);  // Linux sets the peer credentials anew at each listen()
    }
}

bool with_libmilter_errors_on_stderr(const Options& o, const std::function<bool()>& open_socket) {
    // syslog(3) keeps the ident pointer: it must outlive every later syslog call.
    static std::string ident;
    ident = o.syslog_name;
    int facility = syslog_facility_code(o.syslog_facility).value_or(LOG_MAIL);
    openlog(ident.c_str(), LOG_PID | LOG_PERROR, facility);
    bool opened = open_socket();
    openlog(ident.c_str(), LOG_PID, facility);
    return opened;
}

}  // namespace pm

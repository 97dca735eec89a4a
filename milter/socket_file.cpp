// SPDX-License-Identifier: BSD-2-Clause
#include "milter/socket_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace pm {

namespace {

std::string octal(mode_t mode) {
    char text[16];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

std::string parent_of(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

const char* kWhere =
    "the socket's directory, and every directory above it, may be writable only by root "
    "and the daemon's user (policy-milter(8), FILES)";

// The socket file this process created and secured: removed at exit only if the path
// still names that inode. Written once before libmilter's threads start; read by the
// main thread and by libmilter's exit path (mi_closener), hence the mutex.
struct OwnSocket {
    std::string path;
    dev_t dev = 0;
    ino_t ino = 0;
};
std::mutex g_own_mutex;
std::optional<OwnSocket> g_own;

}  // namespace

std::optional<std::string> socket_directory_problem(const std::string& path, uid_t daemon_uid) {
    std::string dir = parent_of(path);
    // Symlinks on the way (/var/run -> /run) are fine; the directories they lead to are
    // what is checked.
    char resolved[PATH_MAX];
    if (!realpath(dir.c_str(), resolved)) {
        if (errno == ENOENT) return std::nullopt;
        return "socket directory " + dir + ": " + std::strerror(errno);
    }
    std::string at = resolved;
    for (bool socket_dir = true;; socket_dir = false) {
        struct stat st;
        if (stat(at.c_str(), &st) != 0)
            return "socket directory " + at + ": " + std::strerror(errno);
        if (!S_ISDIR(st.st_mode)) return "socket directory " + at + " is not a directory";
        std::string what = socket_dir ? "socket directory " + at : at + ", above the socket,";
        if (st.st_uid != 0 && st.st_uid != daemon_uid)
            return "unsafe " + what + ": it belongs to uid " + std::to_string(st.st_uid) +
                   ", not to root or to the daemon's user (uid " + std::to_string(daemon_uid) +
                   "); " + kWhere;
        bool others_write = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
        if (others_write && (socket_dir || !(st.st_mode & S_ISVTX)))
            return "unsafe " + what + ": writable by " +
                   ((st.st_mode & S_IWOTH) ? "every user" : "its group") + " (mode " +
                   octal(st.st_mode) + "); " + kWhere;
        if (at == "/") return std::nullopt;
        at = parent_of(at);
    }
}

std::optional<std::string> secure_socket_file(const std::string& path, mode_t mode, uid_t uid,
                                              gid_t gid) {
    // O_PATH | O_NOFOLLOW: a descriptor of the directory entry itself, whatever it is
    // (a symlink is not followed); every check and change below goes through it.
    int fd = open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return "socket " + path + ": " + std::strerror(errno);
    struct stat st;
    std::optional<std::string> problem;
    if (fstat(fd, &st) != 0)
        problem = "socket " + path + ": " + std::strerror(errno);
    else if (S_ISLNK(st.st_mode))
        problem = "socket " + path + ": a symlink, not the socket just created";
    else if (!S_ISSOCK(st.st_mode))
        problem = "socket " + path + ": not a socket, not the socket just created";
    else if (st.st_uid != geteuid())
        problem = "socket " + path + ": belongs to uid " + std::to_string(st.st_uid) +
                  ", not the socket just created";
    else if (st.st_nlink != 1)
        problem = "socket " + path + ": has " + std::to_string(st.st_nlink) +
                  " links, not the socket just created";
    // The umask at bind time already gave the socket its mode; a default ACL of the
    // directory may not have. fchmod() refuses an O_PATH descriptor, but its /proc link
    // leads to the very inode, not to whatever the path names now.
    if (!problem && (st.st_mode & 07777) != mode) {
        std::string by_fd = "/proc/self/fd/" + std::to_string(fd);
        if (chmod(by_fd.c_str(), mode) != 0)
            problem = "chmod " + path + " (through " + by_fd + "): " + std::strerror(errno);
    }
    if (!problem && (uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
        fchownat(fd, "", uid, gid, AT_EMPTY_PATH) != 0)
        problem = "chown " + path + ": " + std::strerror(errno);
    if (!problem) {
        std::lock_guard<std::mutex> lock(g_own_mutex);
        g_own = OwnSocket{path, st.st_dev, st.st_ino};
    }
    close(fd);
    return problem;
}

bool remove_own_socket() {
    std::lock_guard<std::mutex> lock(g_own_mutex);
    if (!g_own) return false;
    bool removed = false;
    int fd = open(g_own->path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == g_own->dev && st.st_ino == g_own->ino)
        removed = unlinkat(AT_FDCWD, g_own->path.c_str(), 0) == 0;
    if (fd >= 0) close(fd);
    g_own.reset();  // once: whatever is there now is someone else's
    return removed;
}

}  // namespace pm

// libmilter removes the socket itself when smfi_main() ends (mi_closener(), when not
// running as root), if the path names any socket then: perhaps one a new instance has
// just bound. With -Wl,--wrap=unlink its unlink() of our socket comes here and removes
// it only if it is still ours; every other unlink() is passed on. The socket it removes
// at start (a stale one, before the bind) is not recorded yet, so that unlink() passes.
extern "C" int __real_unlink(const char* path);

extern "C" int __wrap_unlink(const char* path) {
    bool ours = false;
    {
        std::lock_guard<std::mutex> lock(pm::g_own_mutex);
        ours = path && pm::g_own && pm::g_own->path == path;
    }
    if (!ours) return __real_unlink(path);
    if (pm::remove_own_socket()) return 0;
    errno = ENOENT;
    return -1;
}

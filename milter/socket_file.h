// SPDX-License-Identifier: BSD-2-Clause
// The file of a unix milter socket: where it may live, its mode and owner, and its
// removal at exit, none of which a symlink or a file swapped in under the daemon can
// redirect to another file (policy-milter(8), FILES and BUGS).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace pm {

// Why the directory of the socket file `path` is not safe for it, or nullopt. Anyone who
// can write that directory can replace the socket (and so talk to the MTA in the
// daemon's place, or have the daemon's start chown a file of their choosing), so:
//  - the directory must belong to root or to `daemon_uid`, the user the daemon runs as
//    after start, and be writable by no group and by no other user;
//  - each directory above it must belong to root or to `daemon_uid`, and be writable
//    by a group or by others only if it is sticky (as /tmp): then nobody else can rename
//    or remove what is in it.
// A directory that does not exist yet is left to the bind to report.
std::optional<std::string> socket_directory_problem(const std::string& path, uid_t daemon_uid);

// After the bind, as the user that bound it: makes sure `path` is still the socket this
// process created (a socket, not a symlink, owned by the effective user, one link), then
// gives it `mode` and, where not -1, `uid` and `gid` through a descriptor of that very
// file, never through the path. Remembers it for remove_own_socket(). Returns why not.
std::optional<std::string> secure_socket_file(const std::string& path, mode_t mode, uid_t uid,
                                              gid_t gid);

// Removes the socket file secured above, if `path` still names that file (the same
// device and inode); leaves anything else in place. Also what libmilter's own unlink of
// the socket at exit does (the -Wl,--wrap=unlink in milter/CMakeLists.txt). Returns true
// if it removed it.
bool remove_own_socket();

}  // namespace pm
